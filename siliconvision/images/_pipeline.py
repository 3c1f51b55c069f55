"""Encoded bytes or pixels in, a :class:`PreparedImage` or an :class:`EncodedImage` out.

:func:`prepare_bytes` plans from the header alone (:class:`_Plan`), then either checks
the bytes and sends them as they are, or has libvips render and encode them
(:mod:`._vips`, the common cases when pyvips is installed), or decodes them with
Pillow (a JPEG at the smallest DCT scale that still covers the target), renders
(:mod:`._resize`) and encodes (:mod:`._encode`). :func:`prepare_pixels` does the same
for a caller's ``PIL.Image``; :func:`keep_as_base64` is
:func:`~siliconvision.images.encode_image`'s step: the bytes checked, kept, as base64.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

from PIL import Image as PILImage

from .._datauri import base64_text, data_uri
from ..catalog import Detail, ModelSpec
from ..errors import ImageInputError
from ..tokens import client_target_size
from . import _vips
from ._cache import ImageCache
from ._decode import (
    check_size,
    exc_text,
    frame_count,
    is_intact,
    load_pixels,
    open_image,
    orientation,
    read_every_byte,
)
from ._encode import KEPT_FORMATS, MIME_TYPES, SENDABLE_MODES, encode_for_server, is_graphic
from ._resize import render
from ._results import EncodedImage, PreparedImage
from ._sources import EncodedBytes, is_pdf, nbytes

__all__ = [
    "NOT_ONE_IMAGE",
    "NO_MODEL",
    "Options",
    "as_encoded_image",
    "keep_as_base64",
    "not_one_image",
    "prepare_bytes",
    "prepare_pixels",
]

# A JPEG that Pillow's draft() decodes at 1/4 or 1/8 scale is decoded by Pillow (faster
# than libvips' shrink-on-load there: the benchmark's 12 MP JPEG at detail=low, 37 ms
# against 41) and resized and encoded by libvips.
_PILLOW_DRAFT_MIN: Final = 4
NO_MODEL: Final = ModelSpec(id="(no model)", known=False, source="no model given: no resizing")


@dataclass(frozen=True)
class Options:
    """What an image is prepared for, besides its bytes."""

    spec: ModelSpec
    detail: Detail
    image_count: int
    max_image_pixels: int
    cache: ImageCache | None

    def key(self) -> tuple[Hashable, ...]:
        """What, besides the bytes, decides the result."""
        return (self.spec.token_rule, self.detail, self.image_count, self.max_image_pixels)

    def check_size(self, width: int, height: int, label: str) -> None:
        check_size(width, height, label, self.max_image_pixels, self.spec)

    def target(self, shown: tuple[int, int]) -> tuple[int, int] | None:
        """The size to send ``shown`` (display orientation) at; ``None``: as it is."""
        return client_target_size(
            shown[0], shown[1], model=self.spec, detail=self.detail, image_count=self.image_count
        )


@dataclass(frozen=True)
class _Plan:
    """What to do with an opened image, decided from its header alone."""

    fmt: str
    size: tuple[int, int]
    shown: tuple[int, int]  # size as displayed (EXIF orientation applied)
    orientation: int
    target: tuple[int, int] | None
    sendable: bool  # the original bytes may go to the server as they are
    out_format: str | None  # format to re-encode in; None: PNG/JPEG by content

    @classmethod
    def of(cls, img: PILImage.Image, label: str, opts: Options) -> _Plan:
        fmt = img.format or "unknown"
        width, height = img.size
        opts.check_size(width, height, label)
        turn = orientation(img)
        shown = (height, width) if turn >= 5 else (width, height)
        still = frame_count(img, label) == 1
        sendable = still and turn == 1 and img.mode in SENDABLE_MODES.get(fmt, ())
        keeps_format = still and fmt in KEPT_FORMATS
        return cls(
            fmt=fmt,
            size=(width, height),
            shown=shown,
            orientation=turn,
            target=opts.target(shown),
            sendable=sendable,
            out_format=("JPEG" if fmt == "MPO" else fmt) if keeps_format else None,
        )


NOT_ONE_IMAGE: Final = "a PDF document, not one image"


def not_one_image(label: str) -> ImageInputError:
    """The error for a PDF given where one image is expected: say where it is taken."""
    return ImageInputError(
        label,
        f"{NOT_ONE_IMAGE}: pass it in message content (build_content, prepare_messages, "
        "the chat models), which sends each page as an image, or render its pages with "
        "siliconvision.images.prepare_pdf",
    )


def prepare_bytes(source: EncodedBytes, label: str, opts: Options) -> PreparedImage:
    """Validate encoded image bytes, maybe downsize/convert them, and encode them."""
    data = source.data
    if nbytes(data) == 0:
        raise ImageInputError(label, "empty (0 bytes)")
    if is_pdf(data):
        raise not_one_image(label)
    with open_image(data, label, opts.max_image_pixels) as img:
        plan = _Plan.of(img, label, opts)
        if plan.sendable and plan.target is None:
            read_every_byte(img, label)
            return _sent_as_is(source, plan, label, opts)
        rendered = None
        vips = plan.out_format is not None and _vips.handles(img, plan.fmt, plan.out_format)
        jpeg = plan.fmt in ("JPEG", "MPO")
        if jpeg and plan.target is not None:
            target = plan.target
            draft = _vips.draft_factor(plan.size, target, plan.orientation)
            if vips and draft >= _PILLOW_DRAFT_MIN and plan.out_format is not None:
                # Pillow's draft() decodes at 1/4 or 1/8 scale fastest (libjpeg-turbo's
                # fast DCT); the result (a sixteenth of the pixels or less) goes to libvips.
                img.draft(img.mode, (target[1], target[0]) if plan.orientation >= 5 else target)
                load_pixels(img, label)
                rendered = _vips.encode_pixels(img, plan.out_format, target, plan.orientation)
                vips = False
        if vips and plan.out_format is not None:
            rendered = _vips.render_and_encode(
                data, plan.fmt, plan.size, plan.out_format, plan.target, plan.orientation
            )  # None: libvips found fault with the data; Pillow's verdict is the one given
        if rendered is None:
            if jpeg and plan.target is not None:
                target = plan.target
                img.draft(img.mode, (target[1], target[0]) if plan.orientation >= 5 else target)
            load_pixels(img, label)
            rendered = _render_and_encode(
                img,
                source_format=plan.out_format,
                target=plan.target,
                orientation=plan.orientation,
                label=label,
            )
        encoded, out_fmt, size, resized = rendered
    if plan.sendable and len(encoded) >= nbytes(data):
        return _sent_as_is(source, plan, label, opts)  # re-encoding did not pay
    return _reencoded(encoded, out_fmt, size, plan.shown, plan.fmt, resized, label, opts)


def prepare_pixels(img: PILImage.Image, label: str, opts: Options) -> PreparedImage:
    """Encode a caller's ``PIL.Image`` (never modified; current frame)."""
    width, height = img.size
    opts.check_size(width, height, label)
    load_pixels(img, label)
    turn = orientation(img)
    shown = (height, width) if turn >= 5 else (width, height)
    fmt = img.format if img.format in KEPT_FORMATS else None
    if fmt is not None and getattr(img, "n_frames", 1) > 1 and fmt != "MPO":
        fmt = None
    encoded, out_fmt, size, resized = _render_and_encode(
        img, source_format=fmt, target=opts.target(shown), orientation=turn, label=label
    )
    return _reencoded(encoded, out_fmt, size, shown, img.format, resized, label, opts)


def keep_as_base64(source: EncodedBytes, label: str, opts: Options) -> EncodedImage:
    """:func:`~siliconvision.images.encode_image` for encoded bytes: a format the server
    takes is checked (header, structure; decoded only when the structure is not whole)
    and kept; any other is converted as :func:`prepare_bytes` converts it."""
    data = source.data
    if nbytes(data) == 0:
        raise ImageInputError(label, "empty (0 bytes)")
    if is_pdf(data):
        raise not_one_image(label)
    with open_image(data, label, opts.max_image_pixels) as img:
        fmt = img.format or "unknown"
        width, height = img.size
        opts.check_size(width, height, label)
        mime = MIME_TYPES.get(fmt)
        if mime is not None:
            whole = is_intact(img, data)
            frame_count(img, label)
            if not whole:  # cut short, or a harmless quirk: decoding tells (as prepare_image)
                read_every_byte(img, label)
    if mime is None:  # a format servers do not take: converted as prepare_image does
        return as_encoded_image(prepare_bytes(EncodedBytes(data), label, opts))
    payload = base64_text(data) if source.base64 is None else source.base64
    return EncodedImage(payload, mime, width, height, fmt, nbytes(data), False, label)


def as_encoded_image(prepared: PreparedImage) -> EncodedImage:
    """A converted image (encoded by us, as base64) as :func:`encode_image` returns it."""
    return EncodedImage(
        data=prepared.base64 or "",
        mime_type=prepared.mime_type or "",
        width=prepared.width or 0,
        height=prepared.height or 0,
        original_format=prepared.original_format or "unknown",
        byte_size=prepared.byte_size,
        converted=True,
        source_label=prepared.source_label,
    )


def _render_and_encode(
    img: PILImage.Image,
    *,
    source_format: str | None,
    target: tuple[int, int] | None,
    orientation: int,
    label: str,
) -> tuple[bytes, str, tuple[int, int], bool]:
    """Decoded image -> (bytes, Pillow format, sent size, resized)."""
    graphic = is_graphic(img)
    try:
        work, resized = render(img, target, orientation)
        data, fmt = encode_for_server(work, source_format, graphic)
    except ImageInputError:
        raise
    except Exception as exc:
        raise ImageInputError(
            label,
            f"unsupported image ({img.format or 'unknown format'}, mode {img.mode}): "
            f"{exc_text(exc)}",
        ) from None
    return data, fmt, work.size, resized


def _sent_as_is(source: EncodedBytes, plan: _Plan, label: str, opts: Options) -> PreparedImage:
    """The original bytes, as a data URI of their real type (the source's own text when
    it already is one)."""
    mime = MIME_TYPES[plan.fmt]
    if source.data_uri is not None and source.data_uri.startswith(f"data:{mime};base64,"):
        url = source.data_uri
    else:
        url = data_uri(source.data if source.base64 is None else source.base64, mime)
    return PreparedImage(
        url=url,
        detail=opts.detail,
        mime_type=mime,
        width=plan.size[0],
        height=plan.size[1],
        original_width=plan.size[0],
        original_height=plan.size[1],
        original_format=plan.fmt,
        byte_size=nbytes(source.data),
        resized=False,
        reencoded=False,
        source_label=label,
    )


def _reencoded(
    data: bytes,
    fmt: str,
    size: tuple[int, int],
    original: tuple[int, int],
    original_format: str | None,
    resized: bool,
    label: str,
    opts: Options,
) -> PreparedImage:
    """Bytes we encoded, as a data URI."""
    mime = MIME_TYPES[fmt]
    return PreparedImage(
        url=data_uri(data, mime),
        detail=opts.detail,
        mime_type=mime,
        width=size[0],
        height=size[1],
        original_width=original[0],
        original_height=original[1],
        original_format=original_format,
        byte_size=len(data),
        resized=resized,
        reencoded=True,
        source_label=label,
    )
