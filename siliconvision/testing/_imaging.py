"""Decoding the images the emulator receives: size, format, mode and dominant colour."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

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


def _dominant(img: Image.Image) -> tuple[int, int, int]:
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    work = img.convert("RGBA") if has_alpha else img.convert("RGB")
    w, h = work.size
    if w > _SAMPLE_SIDE or h > _SAMPLE_SIDE:
        work = work.resize((min(w, _SAMPLE_SIDE), min(h, _SAMPLE_SIDE)), Image.Resampling.NEAREST)
    sw, sh = work.size
    colors = work.getcolors(maxcolors=sw * sh + 1) or []
    pixels: list[tuple[int, tuple[int, ...]]] = []
    for count, colour in colors:
        if not isinstance(colour, tuple):  # pragma: no cover - RGB/RGBA give tuples
            colour = (int(colour),) * 3
        pixels.append((count, tuple(int(c) for c in colour)))
    if has_alpha:
        opaque = [(c, col) for c, col in pixels if col[3] >= 128]
        pixels = opaque or pixels
    # Bucket into 16 levels per channel; the most populated bucket wins and its
    # pixels' mean colour is the answer (exact for solid areas).
    buckets: dict[tuple[int, int, int], list[int]] = {}
    for count, col in pixels:
        key = (col[0] >> 4, col[1] >> 4, col[2] >> 4)
        acc = buckets.setdefault(key, [0, 0, 0, 0])
        acc[0] += count
        acc[1] += col[0] * count
        acc[2] += col[1] * count
        acc[3] += col[2] * count
    if not buckets:  # pragma: no cover - an image always has pixels
        return (0, 0, 0)
    _, acc = max(buckets.items(), key=lambda kv: (kv[1][0], kv[0]))
    n = acc[0]
    return (round(acc[1] / n), round(acc[2] / n), round(acc[3] / n))


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
