"""Synthetic, deterministic test images (no downloads), cached on disk.

The "photos" are camera-like JPEGs: a smooth sky, textured ground at several
scales, a few objects with hard edges and sensor grain, saved at quality 92 as
phones do (about 2.5 bits per pixel, so a 12 MP photo is 3-4 MB). The preparation
grid (``imaging``) saves such photos of 12, 24 and 48 MP as PNG (zlib level 6) and WEBP
(quality 90) too.

The "scanned PDF" is what a scanner writes: each page one JPEG (quality 80) of the
page at 300 dpi (A4: 2480x3508), paper with scanner grain, lines of text, and a photo
on every third page; about 1.5 MB a page.
"""

from __future__ import annotations

import io
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

__all__ = [
    "GRID_FORMATS",
    "GRID_SIZES",
    "GridImage",
    "MediaSet",
    "make_media",
    "photo_bytes",
    "scan_pdf_bytes",
]

_VERSION = 1


def _photo(width: int, height: int, *, grain: float, grain_mix: float, seed: int) -> Image.Image:
    rnd = random.Random(seed)
    w, h = width, height
    gradient = Image.linear_gradient("L").resize((w, h), Image.Resampling.BILINEAR)
    coarse = Image.effect_noise((max(1, w // 24), max(1, h // 24)), 64).resize(
        (w, h), Image.Resampling.BICUBIC
    )
    medium = Image.effect_noise((max(1, w // 6), max(1, h // 6)), 40).resize(
        (w, h), Image.Resampling.BICUBIC
    )
    red = ImageChops.add(ImageChops.multiply(gradient, coarse), medium, scale=1.6, offset=-20)
    green = Image.blend(coarse, gradient, 0.5)
    blue = Image.blend(ImageChops.invert(gradient), medium, 0.4)
    ground = Image.merge("RGB", (red, green, blue))
    sky = Image.merge(
        "RGB",
        (
            gradient.point(lambda v: 90 + v // 3),
            gradient.point(lambda v: 140 + v // 4),
            gradient.point(lambda v: 230 - v // 8),
        ),
    )
    horizon = int(h * 0.38)
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).rectangle((0, horizon, w, h), fill=255)
    mask = mask.filter(ImageFilter.BoxBlur(max(1, h // 200)))
    scene = Image.composite(ground, sky, mask)
    draw = ImageDraw.Draw(scene)
    for _ in range(6):
        cx, cy = rnd.randrange(w), rnd.randrange(horizon // 2, h)
        rx, ry = rnd.randrange(w // 30, w // 8), rnd.randrange(h // 30, h // 8)
        colour = (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)
    fine = Image.effect_noise((w, h), grain)
    return Image.blend(scene, Image.merge("RGB", (fine, fine, fine)), grain_mix)


def photo_bytes(
    width: int,
    height: int,
    *,
    quality: int = 92,
    grain: float = 30.0,
    grain_mix: float = 0.12,
    seed: int = 0,
) -> bytes:
    """A photo-like JPEG of ``width`` x ``height``."""
    image = _photo(width, height, grain=grain, grain_mix=grain_mix, seed=seed)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def photo_encoded(width: int, height: int, fmt: str, *, seed: int) -> bytes:
    """A photo-like image of ``width`` x ``height`` as a camera or editor saves it:
    JPEG quality 92, PNG zlib level 6, WEBP quality 90."""
    if fmt == "JPEG":
        return photo_bytes(width, height, seed=seed)
    image = _photo(width, height, grain=30.0, grain_mix=0.12, seed=seed)
    buf = io.BytesIO()
    if fmt == "PNG":
        image.save(buf, "PNG", compress_level=6)
    else:
        image.save(buf, "WEBP", quality=90, method=4)
    return buf.getvalue()


@dataclass(frozen=True)
class GridImage:
    """One image of the preparation grid (``imaging``)."""

    megapixels: int
    fmt: str  # JPEG, PNG or WEBP
    path: Path

    @property
    def label(self) -> str:
        return f"{self.megapixels} MP {self.fmt}"


#: The preparation grid's sizes: 12, 24 and 48 MP photos (4:3 and 3:2, as cameras make).
GRID_SIZES = ((12, (4000, 3000)), (24, (6000, 4000)), (48, (8000, 6000)))
GRID_FORMATS = ("JPEG", "PNG", "WEBP")


_WORDS = [
    "invoice",
    "total",
    "amount",
    "due",
    "net",
    "tax",
    "quantity",
    "item",
    "date",
    "reference",
    "account",
    "payment",
    "terms",
    "delivery",
    "order",
    "customer",
    "supplier",
    "number",
    "price",
    "unit",
    "discount",
    "balance",
]


def _scan(width: int, height: int, seed: int) -> Image.Image:
    """A scanned page: paper with grain, text lines, a photo on every third page."""
    rnd = random.Random(seed)
    grain = Image.effect_noise((width, height), 5).point(lambda v: min(255, v + 112))
    page = Image.merge("RGB", (grain, grain, grain.point(lambda v: max(0, v - 8))))
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=max(10, height // 85))
    step = max(12, height // 60)
    y = height // 12
    if seed % 3 == 0:
        photo = _photo(width * 2 // 3, height // 4, grain=30.0, grain_mix=0.12, seed=seed)
        page.paste(photo, (width // 6, y))
        y += height // 4 + step
    while y < height - height // 12:
        line = " ".join(rnd.choice(_WORDS) for _ in range(rnd.randrange(6, 12)))
        draw.text((width // 10, y), line, fill=(35, 35, 40), font=font)
        y += step
    return page


def scan_pdf_bytes(pages: int, width: int = 2480, height: int = 3508) -> bytes:
    """A scanned PDF of ``pages`` A4 pages, each one ``width`` x ``height`` JPEG."""
    from siliconvision.testing import make_pdf, scan_page

    return make_pdf([scan_page(_scan(width, height, seed), quality=80) for seed in range(pages)])


@dataclass(frozen=True)
class MediaSet:
    """Paths of the benchmark's images."""

    small: Path  # 256x256 JPEG: sent as it is by every client
    photo: Path  # 4000x3000 JPEG, 12 MP (a phone photo)
    huge: Path  # 6000x4000 JPEG, 24 MP
    heavy: Path  # about 20 MB JPEG, 4000x3000 (within what the server keeps at high detail)
    heavy_big: Path  # about 20 MB JPEG, 8000x6000 (48 MP: downsized at high detail)
    warm: Path  # 1600x1200 JPEG: downsized at detail=low to warm a pipeline up
    grid: tuple[GridImage, ...]  # 12/24/48 MP x JPEG/PNG/WEBP photos
    scan_pdf: Path  # a scanned PDF: 20 A4 pages, each a 300 dpi JPEG (about 30 MB)


def _grid(base: Path, quick: bool) -> tuple[GridImage, ...]:
    out = []
    for megapixels, (width, height) in GRID_SIZES:
        if quick:  # the same shapes, a fifth of the sides (still downsized at low detail)
            width, height = width // 5, height // 5
        for fmt in GRID_FORMATS:
            name = f"grid-{width}x{height}.{fmt.lower()}"
            path = _cached(
                base,
                name,
                lambda w=width, h=height, f=fmt: photo_encoded(w, h, f, seed=w + len(f)),
            )
            out.append(GridImage(megapixels, fmt, path))
    return tuple(out)


def _cached(directory: Path, name: str, make: object) -> Path:
    path = directory / name
    if not path.exists():
        assert callable(make)
        data = make()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def make_media(directory: Path | None = None, *, quick: bool = False) -> MediaSet:
    """Create (once) and return the images; ``quick``: tiny stand-ins for smoke tests."""
    base = directory or Path(tempfile.gettempdir()) / f"siliconvision-bench-media-v{_VERSION}"
    base = base / ("quick" if quick else "full")
    base.mkdir(parents=True, exist_ok=True)

    def small() -> bytes:
        return photo_bytes(256, 256, seed=1)

    warm = _cached(base, "warm.jpg", lambda: photo_bytes(1600, 1200, seed=6))
    grid = _grid(base, quick)
    if quick:
        # Same shapes of problem, 1/10 of the sides: fast enough for the test suite.
        return MediaSet(
            warm=warm,
            grid=grid,
            small=_cached(base, "small.jpg", small),
            photo=_cached(base, "photo.jpg", lambda: photo_bytes(1600, 1200, seed=2)),
            huge=_cached(base, "huge.jpg", lambda: photo_bytes(4200, 2800, seed=3)),
            heavy=_cached(
                base,
                "heavy.jpg",
                lambda: photo_bytes(800, 600, quality=100, grain=128, grain_mix=0.6, seed=4),
            ),
            heavy_big=_cached(
                base,
                "heavy_big.jpg",
                lambda: photo_bytes(4800, 3600, quality=75, seed=5),
            ),
            scan_pdf=_cached(base, "scan.pdf", lambda: scan_pdf_bytes(3, 1240, 1754)),
        )
    return MediaSet(
        warm=warm,
        grid=grid,
        small=_cached(base, "small.jpg", small),
        photo=_cached(base, "photo.jpg", lambda: photo_bytes(4000, 3000, seed=2)),
        huge=_cached(base, "huge.jpg", lambda: photo_bytes(6000, 4000, seed=3)),
        heavy=_cached(
            base,
            "heavy.jpg",
            lambda: photo_bytes(4000, 3000, quality=100, grain=128, grain_mix=0.72, seed=4),
        ),
        heavy_big=_cached(
            base,
            "heavy_big.jpg",
            lambda: photo_bytes(8000, 6000, quality=93, grain=60, grain_mix=0.14, seed=5),
        ),
        scan_pdf=_cached(base, "scan.pdf", lambda: scan_pdf_bytes(20)),
    )
