"""Decoding and validating encoded image bytes with Pillow: the header (format, size,
decompression bombs), what the model refuses (no pixels, aspect ratio), EXIF
orientation, frames, the pixel data itself, and the bytes' structure checked without
decoding (:func:`is_intact`).

Every failure is the input's fault and raises
:class:`~siliconvision.errors.ImageInputError` naming the source.
"""

from __future__ import annotations

import io
import struct
import threading
import warnings
from typing import Final, Literal

from PIL import ExifTags, UnidentifiedImageError
from PIL import Image as PILImage

from ..catalog import ModelSpec
from ..errors import ImageInputError

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "check_size",
    "exc_text",
    "frame_count",
    "is_intact",
    "load_pixels",
    "open_image",
    "orientation",
    "read_every_byte",
]

DEFAULT_MAX_IMAGE_PIXELS: Final = 89_478_485
"""Pillow's own decompression-bomb threshold (about 9459 x 9459 pixels)."""

# Ghostscript-backed EPS is never opened: untrusted input must not reach a PostScript
# interpreter.
_UNSAFE_FORMATS: Final = frozenset({"EPS"})
# ``warnings.catch_warnings`` swaps process-wide state: serialise our (header-only) opens.
_OPEN_LOCK: Final = threading.Lock()
_JPEG_EOI: Final = b"\xff\xd9"
_PNG_MAX_CHUNKS: Final = 100_000


def exc_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def open_image(data: bytes | bytearray | memoryview, label: str, max_pixels: int) -> PILImage.Image:
    """Parse the header only (lazy); Pillow's bomb warning becomes an error or is moot."""
    limit = PILImage.MAX_IMAGE_PIXELS
    bomb_action: Literal["error", "ignore"] = (
        "error" if limit is not None and max_pixels <= limit else "ignore"
    )
    buffer = io.BytesIO(data)
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's chatter about damaged headers
            warnings.simplefilter(bomb_action, PILImage.DecompressionBombWarning)
            PILImage.init()
            formats = tuple(f for f in PILImage.ID if f not in _UNSAFE_FORMATS)
            return PILImage.open(buffer, formats=formats)
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise ImageInputError(label, f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise ImageInputError(label, _not_an_image_reason(data)) from None
    except Exception as exc:
        raise ImageInputError(label, f"corrupt image header: {exc_text(exc)}") from None


def _not_an_image_reason(data: bytes | bytearray | memoryview) -> str:
    head = bytes(data[:64]).lstrip()
    reason = "not an image (Pillow cannot identify the format)"
    if head[:1] == b"<":
        return reason + "; it looks like HTML/XML/SVG text (SVG is not supported)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return reason
    if all(c.isprintable() or c.isspace() for c in text):
        return reason + "; it looks like text"
    return reason


def check_size(width: int, height: int, label: str, max_pixels: int, spec: ModelSpec) -> None:
    """Refuse no pixels, more than ``max_pixels`` and an aspect ratio ``spec`` refuses."""
    if width < 1 or height < 1:
        raise ImageInputError(label, f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageInputError(
            label,
            f"decompression bomb refused: {width}x{height} = {width * height:,} pixels exceeds "
            f"max_image_pixels={max_pixels:,}",
        )
    ratio_limit = spec.token_rule.max_aspect_ratio
    ratio = max(width, height) / min(width, height)
    if ratio_limit is not None and ratio > ratio_limit:
        raise ImageInputError(
            label,
            f"aspect ratio {ratio:.0f}:1 ({width}x{height}) exceeds {ratio_limit:g}:1, "
            f"which {spec.id} refuses; crop or pad the image",
        )


def orientation(img: PILImage.Image) -> int:
    """EXIF orientation 1..8 read from the header (never decodes pixels)."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1  # PngImageFile.getexif() would decode the whole image to look further
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def frame_count(img: PILImage.Image, label: str) -> int:
    if img.format == "MPO":
        return 1  # a JPEG with an extra (depth/preview) image, not an animation
    try:
        return int(getattr(img, "n_frames", 1))
    except Exception as exc:
        raise ImageInputError(label, f"truncated or corrupt image: {exc_text(exc)}") from None


def load_pixels(img: PILImage.Image, label: str) -> None:
    """Decode the pixels; every failure is the input's fault."""
    try:
        img.load()
    except PILImage.DecompressionBombError as exc:
        raise ImageInputError(label, f"decompression bomb refused: {exc}") from None
    except Exception as exc:
        raise ImageInputError(label, f"truncated or corrupt image: {exc_text(exc)}") from None


def read_every_byte(img: PILImage.Image, label: str) -> None:
    """Decode just enough to read every byte, so truncation is caught: a JPEG at its
    smallest DCT scale (1/8), other formats whole."""
    if img.format in ("JPEG", "MPO"):
        img.draft(img.mode, (1, 1))
    load_pixels(img, label)


def is_intact(img: PILImage.Image, data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` is structurally whole, read without decoding any pixels: JPEG has
    an end-of-image marker after its first scan (0xFF 0xD9 cannot occur inside
    entropy-coded data), PNG's chunks run whole up to IEND, WEBP's RIFF size fits, GIF
    ends with its trailer. False means "not sure": decode to find out."""
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    fmt = img.format
    if fmt in ("JPEG", "MPO"):
        if bytes(data[-2:]) == _JPEG_EOI:
            return True
        fp = getattr(img, "fp", None)  # just past the first scan's header
        if isinstance(data, memoryview) or fp is None:
            return False
        return data.rfind(_JPEG_EOI, fp.tell()) >= 0  # data appended after the image
    if fmt == "PNG":
        pos = 8
        for _ in range(_PNG_MAX_CHUNKS):
            if pos + 12 > size:
                return False
            length, kind = struct.unpack_from(">I4s", data, pos)
            pos += 12 + int(length)
            if kind == b"IEND":
                return pos <= size
        return False
    if fmt == "WEBP":
        return size >= 12 and int.from_bytes(data[4:8], "little") + 8 <= size
    if fmt == "GIF":
        return bytes(data[-1:]) == b";"
    return False
