"""Test helpers: make images with Pillow and read back what a data URI holds."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

from PIL import Image


def make_image(
    size: tuple[int, int] = (64, 48),
    color: str | tuple[int, ...] = "red",
    fmt: str = "PNG",
    mode: str = "RGB",
) -> bytes:
    """Encoded bytes of a solid image."""
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def decode_part(part: dict[str, Any]) -> Image.Image:
    """The image inside an ``image_url`` part's data URI."""
    url = part["image_url"]["url"]
    assert url.startswith("data:image/"), url[:40]
    payload = url.split(",", 1)[1]
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    image.load()
    return image


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but holds (almost) no pixels
    (a decompression bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )
