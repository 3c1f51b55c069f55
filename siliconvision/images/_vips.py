"""The libvips backend: the common cases of :func:`~._pipeline.prepare_bytes`, faster and
in far less memory than Pillow, when ``pyvips`` is installed (``siliconvision[vips]``).

libvips streams: it decodes, resizes and encodes a strip of rows at a time on a small
thread pool, so a 48 MP JPEG is never held decoded whole (Pillow holds 4 bytes a
pixel, 183 MiB), a JPEG or WEBP is decoded at the smallest integer scale that still
covers the target (shrink-on-load), and decoding overlaps resizing and encoding.
Pillow still reads every header and plans every image (:class:`~._pipeline._Plan`);
this module only renders and encodes what it is handed, and only what it renders as
Pillow would (see :func:`handles`): an 8-bit still JPEG (RGB or grey), PNG (grey, RGB,
with or without alpha; no ``tRNS`` colour key) or WEBP (RGB, RGBA) that stays in its
format. Anything else (CMYK, 16-bit, palettes, animations, other formats) goes to
Pillow, which is also the whole pipeline when ``pyvips`` is missing.

Same pixels within resampling: the resize is libvips' cubic (Catmull-Rom, as Pillow's
BICUBIC) with the kernel widened by the reduction, alpha premultiplied as Pillow does;
``tests/unit/test_images_backends.py`` bounds the difference from Pillow's output.

Untrusted input only reaches the JPEG, PNG and WEBP loaders, named explicitly (never
libvips' sniffing ``new_from_buffer``, which would reach its other loaders), after
Pillow's header checks. Any fault libvips finds (``fail_on="warning"``: truncation,
corrupt data, even a harmless quirk) hands the image back to Pillow, whose verdict is
the one given: what is refused and what is read never depends on the backend.
libvips' operation cache is turned off for the process on first use (it would keep
the last hundred source images' bytes alive). A process forked after libvips started
(``multiprocessing``'s fork, a pre-forking server) uses Pillow: libvips' threads do not
survive a fork, and its next pipeline would wait for them forever.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["draft_factor", "encode_pixels", "handles", "render_and_encode", "set_enabled"]

# Pillow format -> (the libvips loader, the modes this backend renders as Pillow does).
_LOADERS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "JPEG": ("jpegload_source", ("L", "RGB")),
    "MPO": ("jpegload_source", ("L", "RGB")),
    "PNG": ("pngload_source", ("L", "LA", "RGB", "RGBA")),
    "WEBP": ("webpload_source", ("RGB", "RGBA")),
}
# 8.15: ``keep`` (earlier releases name metadata stripping otherwise); pyvips-binary
# brings a current libvips, a system one may be older (then Pillow does it all).
_MIN_LIBVIPS: Final = (8, 15)
_JPEG_QUALITY: Final = 90  # as Pillow's save_as: see _encode
_WEBP_QUALITY: Final = 90
_PNG_LEVEL: Final = 6
_PNG_ALL_FILTERS: Final = 0xF8  # adaptive per row, as Pillow's PNG encoder chooses
# EXIF orientation -> the libvips operations that make it upright (Pillow's transposes).
_UPRIGHT: Final[dict[int, tuple[tuple[str, str], ...]]] = {
    2: (("flip", "horizontal"),),
    3: (("rot", "d180"),),
    4: (("flip", "vertical"),),
    5: (("rot", "d90"), ("flip", "horizontal")),
    6: (("rot", "d90"),),
    7: (("rot", "d270"), ("flip", "horizontal")),
    8: (("rot", "d270"),),
}

_state_lock: Final = threading.Lock()
_pyvips: Any = None  # the module once imported; False: not installed (or its library)
_enabled = True


def set_enabled(enabled: bool) -> bool:
    """Use libvips (when installed) or not; returns the previous setting (for tests and
    the benchmarks, which compare both backends)."""
    global _enabled
    previous, _enabled = _enabled, enabled
    return previous


def _module() -> Any:
    """``pyvips``, imported on first use (about 50 ms: not at ``import siliconvision``),
    or ``None`` when it or libvips is not installed."""
    global _pyvips
    if _pyvips is None:
        with _state_lock:
            if _pyvips is None:
                try:
                    import pyvips
                except (ImportError, OSError):
                    _pyvips = False
                else:
                    if pyvips.at_least_libvips(*_MIN_LIBVIPS):
                        pyvips.cache_set_max(0)
                        os.register_at_fork(after_in_child=_forked)
                        _pyvips = pyvips
                    else:
                        _pyvips = False
    return _pyvips or None


def _forked() -> None:
    """In a child forked after libvips started, its thread pool is gone and the next
    pipeline would wait for it forever: Pillow does it all there."""
    global _pyvips
    _pyvips = False


def handles(img: PILImage.Image, fmt: str, out_format: str | None) -> bool:
    """Whether this backend renders ``img`` (opened, header read) as Pillow would."""
    entry = _LOADERS.get(fmt)
    return (
        _enabled
        and entry is not None
        and out_format in ("JPEG", "PNG", "WEBP")
        and img.mode in entry[1]
        and "transparency" not in img.info
        and _module() is not None
    )


def render_and_encode(
    data: bytes | bytearray | memoryview,
    fmt: str,
    size: tuple[int, int],
    out_format: str,
    target: tuple[int, int] | None,
    orientation: int,
) -> tuple[bytes, str, tuple[int, int], bool] | None:
    """(bytes, format, sent size, resized): ``data`` (``fmt``, ``size`` as stored)
    resized to ``target`` (display orientation), made upright, encoded as
    ``out_format``; ``None`` when libvips finds any fault with the data (then Pillow
    decides: it refuses what it refuses, and reads what it reads)."""
    pyvips = _module()
    loader = getattr(pyvips.Image, _LOADERS[fmt][0])
    turned = orientation >= 5
    stored = None if target is None else ((target[1], target[0]) if turned else target)
    options: dict[str, Any] = {}
    factor = 1 if stored is None or fmt == "PNG" else _load_factor(size, stored)
    if factor > 1:  # shrink-on-load: JPEG's DCT scaling, libwebp's scaled decoding
        options = {"shrink": factor} if fmt != "WEBP" else {"scale": 1.0 / factor}
    try:
        # a source reads the bytes where they are (a buffer loader copies them first)
        source = pyvips.Source.new_from_memory(data)
        image = loader(source, access="sequential", fail_on="warning", **options)
        return _finish(image, stored, orientation, out_format)
    except pyvips.Error:
        return None


def encode_pixels(
    img: PILImage.Image, out_format: str, target: tuple[int, int] | None, orientation: int
) -> tuple[bytes, str, tuple[int, int], bool]:
    """:func:`render_and_encode` for pixels Pillow decoded (mode L, LA, RGB or RGBA): a
    JPEG that Pillow's ``draft()`` decoded at 1/4 or 1/8 scale, which libjpeg-turbo
    does fastest there (its fast DCT), and libvips resizes and encodes fastest."""
    pyvips = _module()
    bands = len(img.getbands())
    image = pyvips.Image.new_from_memory(img.tobytes(), img.width, img.height, bands, "uchar")
    if bands <= 2:
        image = image.copy(interpretation="b-w")
    stored = None if target is None else ((target[1], target[0]) if orientation >= 5 else target)
    return _finish(image, stored, orientation, out_format)


def _finish(
    image: Any, stored: tuple[int, int] | None, orientation: int, out_format: str
) -> tuple[bytes, str, tuple[int, int], bool]:
    """Resized to ``stored``, upright, encoded."""
    if stored is not None and (image.width, image.height) != stored:
        image = _resize(image, stored)
    if orientation != 1:
        image = image.copy_memory()  # turning reads out of order: the (small) result
        for operation, direction in _UPRIGHT[orientation]:
            image = getattr(image, operation)(direction)
    return _save(image, out_format), out_format, (image.width, image.height), stored is not None


def draft_factor(size: tuple[int, int], target: tuple[int, int], orientation: int) -> int:
    """The DCT scale denominator a JPEG of ``size`` (stored) is decoded at for ``target``
    (display orientation)."""
    return _load_factor(size, (target[1], target[0]) if orientation >= 5 else target)


def _load_factor(size: tuple[int, int], stored: tuple[int, int]) -> int:
    """The largest of 8, 4, 2 that still decodes at least ``stored`` (as Pillow's
    ``draft``), else 1."""
    for factor in (8, 4, 2):
        if size[0] // factor >= stored[0] and size[1] // factor >= stored[1]:
            return factor
    return 1


def _resize(image: Any, size: tuple[int, int]) -> Any:
    """Cubic resize to exactly ``size`` (alpha premultiplied, as Pillow resizes)."""
    alpha = image.hasalpha()
    work = image.premultiply() if alpha else image
    out = work.resize(size[0] / image.width, vscale=size[1] / image.height, kernel="cubic")
    if alpha:
        out = out.unpremultiply().cast("uchar")
    if (out.width, out.height) != size:  # rounding: never seen, but never sent wrong
        out = out.embed(0, 0, size[0], size[1], extend="copy")
    return out


def _save(image: Any, fmt: str) -> bytes:
    if fmt == "JPEG":
        data = image.jpegsave_buffer(Q=_JPEG_QUALITY, subsample_mode="on", keep="none")
    elif fmt == "WEBP":
        data = image.webpsave_buffer(Q=_WEBP_QUALITY, effort=4, keep="none")
    else:
        data = image.pngsave_buffer(compression=_PNG_LEVEL, filter=_PNG_ALL_FILTERS, keep="none")
    return data if isinstance(data, bytes) else bytes(data)
