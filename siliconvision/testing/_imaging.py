"""Decoding the images the emulator receives: size, format, mode and dominant colour."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import cast

from PIL import Image, ImageChops, ImageStat

__all__ = ["PALETTE", "DecodedImage", "ImageDecodeError", "colour_name", "decode_image"]

# Named palette: several anchors per name so common shades land on the obvious name.
PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (255, 0, 0)),
    ("red", (200, 30, 30)),
    ("red", (139, 0, 0)),
    ("green", (0, 255, 0)),
    ("green", (0, 128, 0)),
    ("green", (34, 139, 34)),
    ("green", (100, 200, 100)),
    ("blue", (0, 0, 255)),
    ("blue", (0, 0, 139)),
    ("blue", (30, 144, 255)),
    ("blue", (70, 90, 200)),
    ("yellow", (255, 255, 0)),
    ("yellow", (240, 230, 140)),
    ("cyan", (0, 255, 255)),
    ("cyan", (0, 139, 139)),
    ("magenta", (255, 0, 255)),
    ("white", (255, 255, 255)),
    ("black", (0, 0, 0)),
    ("gray", (128, 128, 128)),
    ("gray", (192, 192, 192)),
    ("gray", (80, 80, 80)),
    ("orange", (255, 165, 0)),
    ("orange", (255, 128, 0)),
    ("purple", (128, 0, 128)),
    ("purple", (160, 32, 240)),
    ("brown", (165, 42, 42)),
    ("brown", (139, 69, 19)),
    ("brown", (150, 75, 0)),
    ("pink", (255, 192, 203)),
    ("pink", (255, 105, 180)),
)

_SAMPLE_SIDE = 64  # dominant colour is computed on at most 64x64 sampled pixels


class ImageDecodeError(ValueError):
    """The bytes are not an image Pillow can decode."""


@dataclass(frozen=True)
class DecodedImage:
    """What the emulator learned from one image's bytes."""

    width: int
    height: int
    format: str
    mode: str
    dominant_color: str
    color_name: str
    byte_size: int


def colour_name(rgb: tuple[int, int, int]) -> str:
    """The nearest palette name for an RGB triple (squared Euclidean distance)."""
    r, g, b = rgb
    best_name = "black"
    best = 1 << 30
    for name, (pr, pg, pb) in PALETTE:
        d = (r - pr) ** 2 + (g - pg) ** 2 + (b - pb) ** 2
        if d < best:
            best, best_name = d, name
    return best_name


_QUANTISE: list[int] = [v >> 4 for v in range(256)] * 3  # 16 levels per RGB channel
_EXCLUDED = (255, 255, 255)  # a quantised "colour" no real pixel has (levels are 0..15)


def _dominant(img: Image.Image) -> tuple[int, int, int]:
    """Bucket the sampled pixels into 16 levels per channel; the most populated bucket
    (ties: the largest bucket key) wins and its pixels' mean colour is the answer
    (exact for solid areas). With transparency, only pixels with alpha >= 128 count,
    unless there are none. All of it runs in Pillow's C code (no per-colour loop)."""
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    work = img.convert("RGBA") if has_alpha else img.convert("RGB")
    w, h = work.size
    if w > _SAMPLE_SIDE or h > _SAMPLE_SIDE:
        work = work.resize((min(w, _SAMPLE_SIDE), min(h, _SAMPLE_SIDE)), Image.Resampling.NEAREST)
    rgb = work.convert("RGB") if has_alpha else work
    buckets = rgb.point(_QUANTISE)
    if has_alpha:
        opaque = work.getchannel("A").point([0] * 128 + [255] * 128)
        if opaque.getextrema()[1] == 255:
            buckets = Image.composite(buckets, Image.new("RGB", buckets.size, _EXCLUDED), opaque)
    sw, sh = buckets.size
    counts = [
        (count, cast(tuple[int, int, int], colour))
        for count, colour in buckets.getcolors(maxcolors=sw * sh + 1) or []
        if colour != _EXCLUDED
    ]
    if not counts:  # pragma: no cover - an image always has pixels
        return (0, 0, 0)
    _, key = max(counts)
    chosen: Image.Image | None = None
    for band, level in zip(buckets.split(), key, strict=True):
        match = band.point([255 if v == level else 0 for v in range(256)])
        chosen = match if chosen is None else ImageChops.darker(chosen, match)
    stat = ImageStat.Stat(rgb, chosen)
    n = stat.count[0]
    return (round(stat.sum[0] / n), round(stat.sum[1] / n), round(stat.sum[2] / n))


def decode_image(data: bytes) -> DecodedImage:
    """Decode ``data`` with Pillow (first frame); raises :class:`ImageDecodeError`."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or "UNKNOWN"
            width, height = img.size
            mode = img.mode
            if fmt == "JPEG":
                # DCT scaling: decode at >= 1/8 size; enough for the colour sample.
                img.draft("RGB", (_SAMPLE_SIDE, _SAMPLE_SIDE))
            img.load()
            rgb = _dominant(img)
    except Exception as exc:
        raise ImageDecodeError(f"{type(exc).__name__}: {exc}") from None
    return DecodedImage(
        width=width,
        height=height,
        format=fmt,
        mode=mode,
        dominant_color="#{:02x}{:02x}{:02x}".format(*rgb),
        color_name=colour_name(rgb),
        byte_size=len(data),
    )
