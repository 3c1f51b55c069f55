"""Decoded pixels made ready to encode: a mode every output format stores, the size the
server keeps, and upright (EXIF orientation baked in).

:func:`render` is the one entry; :func:`resize` is BICUBIC, as the servers' own image
processors resize, in strips on two threads for big, mild reductions.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Final, cast

from PIL import Image as PILImage

__all__ = ["render", "resize"]

_TRANSPOSE: Final = {
    2: PILImage.Transpose.FLIP_LEFT_RIGHT,
    3: PILImage.Transpose.ROTATE_180,
    4: PILImage.Transpose.FLIP_TOP_BOTTOM,
    5: PILImage.Transpose.TRANSPOSE,
    6: PILImage.Transpose.ROTATE_270,
    7: PILImage.Transpose.TRANSVERSE,
    8: PILImage.Transpose.ROTATE_90,
}

# A reduction of more than twice the size is first reduce()d by an integer factor (a box
# filter: each output pixel the mean of a k x k block) to at most twice the size, then
# resized BICUBIC: as libvips resizes (its ``gap``, 2.0), and what Pillow documents as
# indistinguishable from the full filter in most cases. The benchmark's 12 and 24 MP
# photos to detail=low: 3.3x and 4.4x faster than the full BICUBIC (a gap of 3.0: 2.6x
# and 2.1x), 53 dB PSNR from it and at most 5 of 255 apart (3.0: 55 dB, 3).
_REDUCING_GAP: Final = 2.0
# BICUBIC, as the servers' own image processors resize (Qwen2-VL/2.5-VL and GLM-4.1V
# ``resample=BICUBIC``, InternVL's ``T.Resize(..., BICUBIC)``): an image we shrink to the
# exact size the server keeps gets (to within rounding, see ``resize``) the pixels a
# Pillow-backed server would have made from the original. LANCZOS differed from it by
# ~52 dB PSNR on the benchmark photo (far below JPEG q90's own error, ~39 dB) and made
# the 24 MP -> 12.7 MP resize 1.3x slower.
_RESAMPLE: Final = PILImage.Resampling.BICUBIC
# Mild downsizing of big images (high detail: a 24 MP photo to the 12.7 MP Qwen keeps)
# is the slowest step of preparing an image; Pillow releases the GIL while resizing,
# so it is done in strips by two threads, each strip resized from the full source with
# ``box`` (the filter reads past the box). Pillow may order a strip's two passes
# differently from a whole resize, so a pixel can differ by a few levels (the benchmark
# photo: at most 3 of 255, 54 dB PSNR; JPEG q90 itself is ~39 dB).
_PARALLEL_RESIZE_MIN_PIXELS: Final = 4_000_000
_CPUS: Final = os.cpu_count() or 1
# Per strip, the intermediate image of a big reduction (see ``resize``).
_RESIZE_STRIP_BYTES: Final = 16 << 20


def render(
    img: PILImage.Image, target: tuple[int, int] | None, orientation: int
) -> tuple[PILImage.Image, bool]:
    """Working-mode, resized (to ``target``, display orientation) and upright pixels,
    and whether they were resized."""
    work = _to_working_mode(img)
    resized = False
    if target is not None:
        stored = (target[1], target[0]) if orientation >= 5 else target
        if work.size != stored:
            work = resize(work, stored)
        resized = True
    if orientation != 1:
        work = work.transpose(_TRANSPOSE[orientation])
    return work, resized


def resize(img: PILImage.Image, size: tuple[int, int]) -> PILImage.Image:
    """BICUBIC resize to ``size``.

    A big, mild reduction is resized as horizontal strips (Pillow resizes a ``box`` of
    the source exactly as that part of the whole resize): two threads take turns
    (Pillow releases the GIL), and each strip's intermediate image (Pillow resizes
    rows, then columns) is a slice of the ``dst_w x src_h`` one a single call makes:
    100 MiB for 48 MP -> 12.7 MP, next to the 183 MiB of decoded source.
    """
    src_w, src_h = img.size
    dst_w, dst_h = size
    if (
        src_w * src_h < _PARALLEL_RESIZE_MIN_PIXELS
        or dst_h < 2
        or max(src_w / dst_w, src_h / dst_h) >= _REDUCING_GAP  # reduce() first: keep it simple
    ):
        return img.resize(size, _RESAMPLE, reducing_gap=_REDUCING_GAP)
    pairs = math.ceil(dst_w * src_h * 4 / _RESIZE_STRIP_BYTES / 2)  # even: both threads busy
    strips = min(dst_h, 2 * max(1, pairs))
    rows = [dst_h * index // strips for index in range(strips + 1)]
    out = PILImage.new(img.mode, size, None)  # not filled: every row is pasted over
    failure: list[BaseException] = []

    def resize_strips(first: int) -> None:
        try:  # strips first, first + 2, ...: disjoint rows of ``out``
            for index in range(first, strips, 2):
                top, bottom = rows[index], rows[index + 1]
                box = (0.0, top * src_h / dst_h, float(src_w), bottom * src_h / dst_h)
                out.paste(img.resize((dst_w, bottom - top), _RESAMPLE, box=box), (0, top))
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)

    if _CPUS < 2:
        resize_strips(0)
        resize_strips(1)
    else:
        helper = threading.Thread(
            target=resize_strips, args=(1,), name="siliconvision-resize", daemon=True
        )
        helper.start()
        try:
            resize_strips(0)
        finally:
            helper.join()
    if failure:
        raise failure[0]
    return out


def _has_alpha(img: PILImage.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _stretch_to_l(img: PILImage.Image) -> PILImage.Image:
    """32-bit integer or float image to 8-bit grey, stretched over its own range."""
    work = img if img.mode in ("I", "F") else img.convert("I")
    low, high = cast(tuple[float, float], work.getextrema())
    if not (math.isfinite(low) and math.isfinite(high)):
        scale, offset = 0.0, 0.0
    elif high <= low:  # a constant image keeps its value, clipped to 0..255
        scale, offset = 0.0, min(max(low, 0.0), 255.0)
    else:
        scale = 255.0 / (high - low)
        offset = -low * scale
    return work.point(lambda v: v * scale + offset).convert("L")


def _to_working_mode(img: PILImage.Image) -> PILImage.Image:
    """A mode that resizes well and that PNG/JPEG/WEBP can store (RGB, RGBA, L, LA)."""
    mode = img.mode
    if mode in ("RGB", "L") and "transparency" in img.info:
        return img.convert("RGBA")
    if mode in ("RGB", "RGBA", "L", "LA"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I;16"):
        return img.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if mode in ("I", "F"):
        return _stretch_to_l(img)
    if mode == "La":
        return img.convert("LA")
    return img.convert("RGBA" if _has_alpha(img) else "RGB")
