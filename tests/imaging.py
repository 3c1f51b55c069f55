"""Test helpers: make images with Pillow and read back what a data URI holds."""

from __future__ import annotations

import base64
import io
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
