"""The encoding policy: which formats and modes go to the server as they are, and how
pixels are encoded when they cannot (see :mod:`siliconvision.images` for the rules).
"""

from __future__ import annotations

import io
from typing import Final

from PIL import Image as PILImage

__all__ = [
    "ACCEPTED_FORMATS",
    "KEPT_FORMATS",
    "MIME_TYPES",
    "SENDABLE_MODES",
    "encode_for_server",
    "is_graphic",
    "save_as",
]

ACCEPTED_FORMATS: Final = frozenset({"JPEG", "PNG", "WEBP", "GIF"})
"""Pillow format names SiliconCloud takes as they are (GIF only when not animated)."""

MIME_TYPES: Final = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
"""The MIME type each format the server takes is sent as."""

# Modes in which the server's decoder surely reads each accepted format right: CMYK JPEG
# (inverted Adobe CMYK is a classic), 16/32-bit grey PNG (``convert("RGB")`` clips it to
# white) and odd modes are converted to 8-bit RGB/L first.
SENDABLE_MODES: Final[dict[str, tuple[str, ...]]] = {
    "JPEG": ("L", "RGB"),
    "MPO": ("L", "RGB"),
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA"),
    "WEBP": ("RGB", "RGBA"),
    "GIF": ("L", "P"),
}
KEPT_FORMATS: Final = ("JPEG", "MPO", "PNG", "WEBP")
"""Formats a still image is re-encoded in as it came (MPO as JPEG)."""

_JPEG_QUALITY: Final = 90
_WEBP_QUALITY: Final = 90
_JPEG_MIN_PIXELS: Final = 1_000_000


def is_graphic(img: PILImage.Image) -> bool:
    """Palette or bilevel art: lossless PNG keeps it small and sharp."""
    return img.mode in ("1", "P", "PA")


def save_as(img: PILImage.Image, fmt: str) -> bytes:
    """``img`` encoded as ``fmt`` (JPEG, WEBP or PNG) with our settings, no metadata."""
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=_JPEG_QUALITY)
    elif fmt == "WEBP":
        img.save(buf, "WEBP", quality=_WEBP_QUALITY, method=4)
    else:
        # zlib level 6: optimize=True measured 2-5x slower for at most ~3% fewer bytes.
        img.save(buf, "PNG", compress_level=6, icc_profile=None, transparency=None)
    return buf.getvalue()


def encode_for_server(
    img: PILImage.Image, source_format: str | None, graphic: bool
) -> tuple[bytes, str]:
    """(bytes, format): JPEG, PNG and WEBP stay in their format; anything else becomes
    PNG (transparency, palette/bilevel art), JPEG (1 MP and more), or whichever of the
    two is smaller."""
    if source_format in ("JPEG", "MPO") and img.mode in ("RGB", "L"):
        return save_as(img, "JPEG"), "JPEG"
    if source_format == "PNG":
        return save_as(img, "PNG"), "PNG"
    if source_format == "WEBP":
        if img.mode not in ("RGB", "RGBA"):
            img = img.convert("RGBA" if img.mode == "LA" else "RGB")
        return save_as(img, "WEBP"), "WEBP"
    img = _drop_opaque_alpha(img)
    if graphic or img.mode in ("RGBA", "LA"):
        return save_as(img, "PNG"), "PNG"
    if img.width * img.height >= _JPEG_MIN_PIXELS:
        return save_as(img, "JPEG"), "JPEG"
    png, jpeg = save_as(img, "PNG"), save_as(img, "JPEG")
    return (jpeg, "JPEG") if len(jpeg) < len(png) else (png, "PNG")


def _drop_opaque_alpha(img: PILImage.Image) -> PILImage.Image:
    if img.mode not in ("RGBA", "LA"):
        return img
    if img.getchannel("A").getextrema() == (255, 255):
        return img.convert("RGB" if img.mode == "RGBA" else "L")
    return img
