"""Each model family's reference: what its processor makes of a (width, height).

``reference(family, width, height, image_count)`` returns a :class:`Seen` from the
family's own code only: the ``transformers`` image processors built from the
published configs (Qwen, GLM) or the transcriptions in :mod:`tests.rules.upstream`
(InternVL, DeepSeek-VL2, DeepSeek-OCR). ``None`` means the processor refuses the
size (Qwen and GLM: aspect ratio over 200).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil
from transformers.models.glm4v.image_processing_pil_glm4v import smart_resize as glm_resize
from transformers.models.glm46v.image_processing_pil_glm46v import Glm46VImageProcessorPil
from transformers.models.glm46v.image_processing_pil_glm46v import (
    smart_resize as glm46v_resize,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
    Qwen2VLImageProcessorPil,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
    smart_resize as qwen_resize,
)

from . import upstream

# family -> the catalog ids it covers
FAMILIES: dict[str, tuple[str, ...]] = {
    "qwen2-vl": (
        "Qwen/Qwen2-VL-72B-Instruct",
        "Pro/Qwen/Qwen2-VL-7B-Instruct",
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "Pro/Qwen/Qwen2.5-VL-7B-Instruct",
        "Qwen/Qwen2.5-VL-32B-Instruct",
        "Qwen/Qwen2.5-VL-72B-Instruct",
        "Qwen/QVQ-72B-Preview",
    ),
    "qwen3-vl": tuple(
        f"Qwen/Qwen3-VL-{size}-{kind}"
        for size in ("8B", "32B", "30B-A3B", "235B-A22B")
        for kind in ("Instruct", "Thinking")
    ),
    "qwen3-omni": tuple(
        f"Qwen/Qwen3-Omni-30B-A3B-{kind}" for kind in ("Instruct", "Thinking", "Captioner")
    ),
    # GLM-4.5V (glm4v_moe) takes Glm4vImageProcessor; GLM-4.6V its own Glm46V copy
    "glm-4.1v": (
        "THUDM/GLM-4.1V-9B-Thinking",
        "Pro/THUDM/GLM-4.1V-9B-Thinking",
        "zai-org/GLM-4.5V",
    ),
    "glm-4.6v": ("zai-org/GLM-4.6V",),
    "internvl": (
        "OpenGVLab/InternVL2-26B",
        "OpenGVLab/InternVL2-Llama3-76B",
        "Pro/OpenGVLab/InternVL2-8B",
    ),
    "deepseek-vl2": ("deepseek-ai/deepseek-vl2",),
    "deepseek-ocr": ("deepseek-ai/DeepSeek-OCR",),
}  # fmt: skip
PATCH_FAMILIES = ("qwen2-vl", "qwen3-vl", "qwen3-omni", "glm-4.1v", "glm-4.6v")


@cache
def processor(family: str) -> Any:
    """The family's transformers image processor, built from its published config."""
    if family == "qwen2-vl":
        return Qwen2VLImageProcessorPil(**upstream.QWEN2_VL_CONFIG)
    if family == "qwen3-vl":
        return Qwen2VLImageProcessorPil(**upstream.QWEN3_VL_CONFIG)
    if family == "qwen3-omni":
        return Qwen2VLImageProcessorPil(**upstream.QWEN3_OMNI_CONFIG)
    if family == "glm-4.1v":
        return Glm4vImageProcessorPil(**upstream.GLM4V_CONFIG)
    if family == "glm-4.6v":
        return Glm46VImageProcessorPil(**upstream.GLM4V_CONFIG)
    raise KeyError(family)


@dataclass(frozen=True)
class Seen:
    """What the server's code makes of an image of some size."""

    tokens: int
    stretched: tuple[int, int] | None  # the size it resamples the image to, aspect not kept
    fitted: tuple[tuple[int, int], ...] = ()  # contents fitted (aspect kept) into padded views
    canvas: tuple[int, int] | None = None  # the padded canvas, for fitted views


def _patch_family(family: str, width: int, height: int) -> Seen | None:
    proc = processor(family)
    factor = proc.patch_size * proc.merge_size
    size = proc.size
    try:
        if family.startswith("glm"):
            # Glm4vImageProcessorPil.resize: num_frames = temporal_factor
            resize = glm_resize if family == "glm-4.1v" else glm46v_resize
            rh, rw = resize(
                height=height,
                width=width,
                num_frames=proc.temporal_patch_size,
                factor=factor,
                temporal_factor=proc.temporal_patch_size,
                min_pixels=size.shortest_edge,
                max_pixels=size.longest_edge,
            )
        else:  # Qwen2VLImageProcessorPil.resize
            rh, rw = qwen_resize(
                height,
                width,
                factor=factor,
                min_pixels=size.shortest_edge,
                max_pixels=size.longest_edge,
            )
        patches = proc.get_number_of_image_patches(height, width)
    except ValueError:  # "absolute aspect ratio must be smaller than 200"
        return None
    # the processors' prompt expansion: image_grid_thw.prod() // merge_size**2
    return Seen(tokens=patches // proc.merge_size**2, stretched=(rw, rh))


@cache  # the transcriptions are slow on purpose (verbatim); the grid repeats sizes
def reference(family: str, width: int, height: int, image_count: int = 1) -> Seen | None:
    """What ``family``'s own preprocessing makes of a ``width`` x ``height`` image."""
    if family in PATCH_FAMILIES:
        return _patch_family(family, width, height)
    if family == "internvl":
        iv = upstream.internvl(width, height)
        return Seen(tokens=iv.tokens, stretched=iv.stretched_to)
    if family == "deepseek-vl2":
        ds = upstream.deepseek_vl2(width, height, image_count)
        return Seen(
            tokens=ds.tokens,
            stretched=None,
            fitted=(ds.local_content, ds.global_content),
            canvas=ds.canvas,
        )
    if family == "deepseek-ocr":
        ocr = upstream.deepseek_ocr(width, height)
        return Seen(
            tokens=ocr.tokens, stretched=ocr.tiles_stretched_to, fitted=(ocr.global_content,)
        )
    raise KeyError(family)


LOW_SQUARE = 448  # SiliconCloud: every low/auto image becomes 448x448 (its vision guide)


@cache
def low_reference(family: str, width: int, height: int) -> Seen | None:
    """detail=low: the server makes a 448x448 square (stretched, or fitted and padded:
    undocumented), then the family's processor sees that square. DeepSeek-VL2's low is
    its one-tile path (cropping off, as for more than two images)."""
    if family == "deepseek-vl2":
        return reference(family, width, height, image_count=3)
    square = reference(family, LOW_SQUARE, LOW_SQUARE)
    assert square is not None
    fitted = upstream.pil_contain((width, height), (LOW_SQUARE, LOW_SQUARE))
    return Seen(tokens=square.tokens, stretched=(LOW_SQUARE, LOW_SQUARE), fitted=(fitted,))
