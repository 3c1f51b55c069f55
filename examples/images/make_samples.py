"""Regenerate the sample images of ``examples/images/`` (drawn with Pillow, nothing downloaded).

    python examples/images/make_samples.py

- ``red_circle.png``: a red disc on white (the simplest "what colour/shape?" test);
- ``bar_chart.png``: a bar chart with a title, axis labels and values;
- ``receipt.png``: a shop receipt, several lines of text and a total;
- ``sunset.jpg``: a photo-like JPEG (sky gradient, sun, sea, a little noise).

Each file stays under 40 KB. The output is deterministic for a given Pillow version.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, OSError):
        return ImageFont.load_default()


def red_circle() -> Image.Image:
    image = Image.new("RGB", (256, 256), "white")
    ImageDraw.Draw(image).ellipse((12, 12, 244, 244), fill=(220, 20, 20))
    return image


def bar_chart() -> Image.Image:
    image = Image.new("RGB", (480, 320), "white")
    draw = ImageDraw.Draw(image)
    draw.text((130, 12), "Quarterly sales (k$)", fill="black", font=_font(18))
    left, bottom, top = 60, 270, 50
    draw.line((left, top, left, bottom), fill="black", width=2)
    draw.line((left, bottom, 450, bottom), fill="black", width=2)
    small = _font(13)
    for value in range(0, 101, 25):
        y = bottom - (bottom - top) * value / 100
        draw.line((left - 5, y, left, y), fill="black")
        draw.text((left - 32, y - 8), str(value), fill="black", font=small)
    bars = [
        ("Q1", 42, (66, 133, 244)),
        ("Q2", 65, (52, 168, 83)),
        ("Q3", 88, (251, 188, 5)),
        ("Q4", 57, (234, 67, 53)),
    ]
    for i, (label, value, colour) in enumerate(bars):
        x0 = left + 25 + i * 95
        y0 = bottom - (bottom - top) * value / 100
        draw.rectangle((x0, y0, x0 + 60, bottom - 1), fill=colour)
        draw.text((x0 + 18, y0 - 18), str(value), fill="black", font=small)
        draw.text((x0 + 20, bottom + 8), label, fill="black", font=small)
    draw.text((230, 298), "Quarter", fill="black", font=small)
    return image


def receipt() -> Image.Image:
    lines = [  # (left text, right-aligned amount, font size)
        ("GREEN LEAF MARKET", "", 18),
        ("12 Harbour Road", "", 13),
        ("2024-05-17  14:32", "", 13),
        ("", "", 13),
        ("Apples 1kg", "3.20", 14),
        ("Whole milk 1L", "1.45", 14),
        ("Sourdough bread", "4.10", 14),
        ("Coffee beans 250g", "7.90", 14),
        ("-", "", 13),
        ("TOTAL", "16.65", 18),
        ("Paid by card", "", 13),
        ("Thank you!", "", 13),
    ]
    image = Image.new("RGB", (300, 400), (250, 248, 240))
    draw = ImageDraw.Draw(image)
    y = 20
    for text, amount, size in lines:
        font = _font(size)
        if text == "-":
            draw.line((24, y + size // 2, 276, y + size // 2), fill=(120, 120, 120))
        else:
            draw.text((24, y), text, fill=(20, 20, 20), font=font)
            draw.text((276, y), amount, fill=(20, 20, 20), font=font, anchor="ra")
        y += size + 14
    return image


def sunset() -> Image.Image:
    width, height, horizon = 480, 320, 210
    sky_top, sky_bottom = (40, 40, 110), (250, 140, 60)
    sea_top, sea_bottom = (200, 110, 70), (30, 40, 80)
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)

    def gradient(rows: range, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
        for y in rows:
            t = (y - rows.start) / len(rows)
            draw.line(
                (0, y, width, y), fill=tuple(round(a[c] + (b[c] - a[c]) * t) for c in range(3))
            )

    gradient(range(0, horizon), sky_top, sky_bottom)
    draw.ellipse((195, horizon - 45, 285, horizon + 45), fill=(255, 210, 120))  # half set
    gradient(range(horizon, height), sea_top, sea_bottom)
    for y in range(horizon, height, 4):  # the sun's reflection on the water
        half = max(3, 45 - (y - horizon) // 3)
        draw.line((240 - half, y, 240 + half, y), fill=(240, 170, 90), width=2)
    rng = random.Random(7)
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    image = Image.blend(image, noise.convert("RGB"), 0.06)  # a little film grain
    for _ in range(600):  # ripples
        x, y = rng.randrange(width), rng.randrange(horizon, height)
        image.putpixel((x, y), (255, 200, 140))
    return image


SAMPLES = {
    "red_circle.png": red_circle,
    "bar_chart.png": bar_chart,
    "receipt.png": receipt,
    "sunset.jpg": sunset,
}


def main() -> None:
    for name, draw in SAMPLES.items():
        path = HERE / name
        image = draw()
        if path.suffix == ".jpg":
            image.save(path, "JPEG", quality=80, optimize=True)
        else:
            image.save(path, "PNG", optimize=True)
        size = path.stat().st_size
        assert size < 40_000, f"{name} is {size} bytes; keep samples under 40 KB"
        print(f"{name}: {image.width}x{image.height}, {size} bytes")


if __name__ == "__main__":
    main()
