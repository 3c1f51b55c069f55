"""The servers' image preprocessing, as the upstream code has it: the reference.

Everything here is either imported from the installed ``transformers`` (the models'
own image processors, instantiated from their published configs) or a faithful
transcription of an upstream function that is not in ``transformers``. Transcribed
bodies are unchanged but for formatting; they run on :class:`SizeOnly` stand-ins,
which have the ``size``/``resize``/``crop`` the functions use but no pixels, so a
12,000-pixel image costs nothing. Nothing here imports from ``siliconvision``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from PIL import ImageOps

# --------------------------------------------------------------------------- configs
# The models' published preprocessor configs, as on the Hugging Face Hub (the keys
# that matter for sizing; normalisation values are irrelevant to it). Copies read on
# the Hub pages:
# - Qwen/Qwen2-VL-2B preprocessor_config.json (and Qwen/QVQ-72B-Preview, same keys):
#   https://huggingface.co/Qwen/QVQ-72B-Preview/blob/main/preprocessor_config.json
#   (Qwen2.5-VL-*-Instruct: the same values, image_processor_type Qwen2VLImageProcessor)
# - Qwen/Qwen3-VL-*: huggingface.co/Qwen/Qwen3-VL-2B-Instruct lists a 390-byte
#   preprocessor_config.json; its duplicates (e.g. cdreetz/Qwen3-VL-8B-Instruct,
#   GreenBitAI/Qwen3-VL-32B-Instruct-...) read as below
# - Qwen/Qwen3-Omni-30B-A3B-*: duplicates (e.g. xianghe/2026_ARC, TheClusterDev/
#   Q3OT-FP8, processor_class Qwen3OmniMoeProcessor) read as below
# - GLM-4.1V/4.5V/4.6V: FriendliAI/GLM-4.1V-9B-Thinking (duplicate of THUDM's) video
#   config and zai-org/GLM-4.6V(-Flash) duplicates read size shortest_edge 12544,
#   longest_edge 9633792 for images, patch 14, merge 2, temporal 2
QWEN2_VL_CONFIG: dict[str, Any] = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
}
QWEN3_VL_CONFIG: dict[str, Any] = {
    "size": {"longest_edge": 16777216, "shortest_edge": 65536},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
}
QWEN3_OMNI_CONFIG: dict[str, Any] = {
    "max_pixels": 12845056,
    "merge_size": 2,
    "min_pixels": 3136,
    "patch_size": 16,
    "temporal_patch_size": 2,
}
GLM4V_CONFIG: dict[str, Any] = {
    "size": {"shortest_edge": 12544, "longest_edge": 9633792},
    "do_rescale": True,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
}
# deepseek-ai/deepseek-vl2 config.json candidate_resolutions, in order
# (https://huggingface.co/deepseek-ai/deepseek-vl2/blob/main/config.json), and its
# processor's patch_size 14, downsample_ratio 2.
DEEPSEEK_VL2_CANDIDATES = [
    [384, 384], [384, 768], [768, 384], [384, 1152], [1152, 384], [384, 1536], [1536, 384],
    [768, 768], [384, 1920], [1920, 384], [384, 2304], [2304, 384], [768, 1152], [1152, 768],
    [384, 2688], [2688, 384], [384, 3072], [3072, 384], [768, 1536], [1536, 768], [384, 3456],
    [3456, 384], [1152, 1152],
]  # fmt: skip


@dataclass(frozen=True)
class SizeOnly:
    """An image without pixels: the ``size``/``resize``/``crop`` the upstream code uses.

    ``resizes`` records the sizes it was resized to, in order.
    """

    size: tuple[int, int]
    mode: str = "RGB"
    resizes: list[tuple[int, int]] = field(default_factory=list, compare=False)

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    def resize(self, size: tuple[int, int], *args: Any, **kwargs: Any) -> SizeOnly:
        self.resizes.append((int(size[0]), int(size[1])))
        return SizeOnly((int(size[0]), int(size[1])))

    def crop(self, box: tuple[int, int, int, int]) -> SizeOnly:
        return SizeOnly((box[2] - box[0], box[3] - box[1]))


def pil_contain(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """Pillow's own ``ImageOps.contain`` (what ``ImageOps.pad`` fits an image to)."""
    out = ImageOps.contain(SizeOnly(size), box)  # type: ignore[arg-type]
    return (int(out.size[0]), int(out.size[1]))


# --------------------------------------------------------------------------- InternVL
# Transcribed from OpenGVLab/InternVL, commit 2410d1dbf208f0e799459aff9376e5747dbf41a2,
# README.md (the model cards' inference code): find_closest_aspect_ratio,
# dynamic_preprocess, and load_image's arguments (input_size=448, max_num=12,
# use_thumbnail=True).


def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):  # type: ignore[no-untyped-def]
    best_ratio_diff = float("inf")
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:  # noqa: SIM102 (verbatim)
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def dynamic_preprocess(image, min_num=1, max_num=12, image_size=448, use_thumbnail=False):  # type: ignore[no-untyped-def]
    orig_width, orig_height = image.size
    aspect_ratio = orig_width / orig_height

    # calculate the existing image aspect ratio
    target_ratios = set(
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if i * j <= max_num and i * j >= min_num
    )
    target_ratios = sorted(target_ratios, key=lambda x: x[0] * x[1])

    # find the closest aspect ratio to the target
    target_aspect_ratio = find_closest_aspect_ratio(
        aspect_ratio, target_ratios, orig_width, orig_height, image_size
    )

    # calculate the target width and height
    target_width = image_size * target_aspect_ratio[0]
    target_height = image_size * target_aspect_ratio[1]
    blocks = target_aspect_ratio[0] * target_aspect_ratio[1]

    # resize the image
    resized_img = image.resize((target_width, target_height))
    processed_images = []
    for i in range(blocks):
        box = (
            (i % (target_width // image_size)) * image_size,
            (i // (target_width // image_size)) * image_size,
            ((i % (target_width // image_size)) + 1) * image_size,
            ((i // (target_width // image_size)) + 1) * image_size,
        )
        # split the image
        split_img = resized_img.crop(box)
        processed_images.append(split_img)
    assert len(processed_images) == blocks
    if use_thumbnail and len(processed_images) != 1:
        thumbnail_img = image.resize((image_size, image_size))
        processed_images.append(thumbnail_img)
    return processed_images


@dataclass(frozen=True)
class InternVLResult:
    stretched_to: tuple[int, int]  # the size resized_img has (the tile grid)
    tokens: int


def internvl(width: int, height: int) -> InternVLResult:
    """load_image(max_num=12) + 256 <IMG_CONTEXT> tokens per 448 tile (448/14 = 32
    patches a side, pixel shuffle 0.5: 16 x 16; InternVL2 config downsample_ratio)."""
    image = SizeOnly((width, height))
    tiles = dynamic_preprocess(image, image_size=448, use_thumbnail=True, max_num=12)
    num_image_token = int((448 // 14) ** 2 * (0.5**2))
    return InternVLResult(image.resizes[0], num_image_token * len(tiles))


# --------------------------------------------------------------------------- DeepSeek-VL2
# Transcribed from deepseek-ai/DeepSeek-VL2, commit ef9f91e2b6426536b83294c11742c27be66361b1,
# deepseek_vl2/models/processing_deepseek_vl_v2.py: select_best_resolution, and the
# sizing and token lines of DeepseekVLV2Processor.tokenize_with_images, as they are
# (the image goes in as a SizeOnly; cropping =
# len(images) <= 2, image_size = candidate_resolutions[0][0] = 384, patch_size 14,
# downsample_ratio 2).


def select_best_resolution(image_size, candidate_resolutions):  # type: ignore[no-untyped-def]
    # used for cropping
    original_width, original_height = image_size
    best_fit = None
    max_effective_resolution = 0
    min_wasted_resolution = float("inf")

    for width, height in candidate_resolutions:
        scale = min(width / original_width, height / original_height)
        downscaled_width, downscaled_height = (
            int(original_width * scale),
            int(original_height * scale),
        )
        effective_resolution = min(
            downscaled_width * downscaled_height, original_width * original_height
        )
        wasted_resolution = (width * height) - effective_resolution

        if effective_resolution > max_effective_resolution or (
            effective_resolution == max_effective_resolution
            and wasted_resolution < min_wasted_resolution
        ):
            max_effective_resolution = effective_resolution
            min_wasted_resolution = wasted_resolution
            best_fit = (width, height)

    return best_fit


@dataclass(frozen=True)
class DeepSeekVL2Result:
    canvas: tuple[int, int]  # (best_width, best_height)
    local_content: tuple[int, int]  # the image's size inside ImageOps.pad(image, canvas)
    global_content: tuple[int, int]  # ... inside ImageOps.pad(image, (384, 384))
    tokens: int


def deepseek_vl2(width: int, height: int, image_count: int) -> DeepSeekVL2Result:
    image = SizeOnly((width, height))
    candidate_resolutions = DEEPSEEK_VL2_CANDIDATES
    image_size, patch_size, downsample_ratio = candidate_resolutions[0][0], 14, 2
    cropping = image_count <= 2
    image_token_id = -1  # any id: only the count matters
    # --- from tokenize_with_images
    if cropping:
        best_width, best_height = select_best_resolution(image.size, candidate_resolutions)
    else:
        best_width, best_height = image_size, image_size
    num_width_tiles, num_height_tiles = best_width // image_size, best_height // image_size
    h = w = math.ceil((image_size // patch_size) / downsample_ratio)
    # global views tokens h * (w + 1), 1 is for line seperator
    tokenized_image = [image_token_id] * h * (w + 1)
    # add a seperator between global and local views
    tokenized_image += [image_token_id]
    # local views tokens, (num_height_tiles * h) * (num_width_tiles * w + 1)
    tokenized_image += [image_token_id] * (num_height_tiles * h) * (num_width_tiles * w + 1)
    # ---
    return DeepSeekVL2Result(
        (best_width, best_height),
        pil_contain(image.size, (best_width, best_height)),
        pil_contain(image.size, (image_size, image_size)),
        len(tokenized_image),
    )


# --------------------------------------------------------------------------- DeepSeek-OCR
# Transcribed from deepseek-ai/DeepSeek-OCR, commit e4ac34e1e59b891163fb9325480fbedec865e1f0,
# DeepSeek-OCR-master/DeepSeek-OCR-vllm/config.py (Gundam: BASE_SIZE 1024, IMAGE_SIZE
# 640, CROP_MODE True, MIN_CROPS 2, MAX_CROPS 6) and process/image_process.py:
# dynamic_preprocess (its find_closest_aspect_ratio is InternVL's, above, verbatim) and
# the sizing and token lines of DeepseekOCRProcessor.tokenize_with_images, as they are.
BASE_SIZE, IMAGE_SIZE, CROP_MODE, MIN_CROPS, MAX_CROPS = 1024, 640, True, 2, 6


def ocr_dynamic_preprocess(
    image, min_num=MIN_CROPS, max_num=MAX_CROPS, image_size=640, use_thumbnail=False
):  # type: ignore[no-untyped-def]
    orig_width, orig_height = image.size
    aspect_ratio = orig_width / orig_height

    # calculate the existing image aspect ratio
    target_ratios = set(
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if i * j <= max_num and i * j >= min_num
    )
    # print(target_ratios)
    target_ratios = sorted(target_ratios, key=lambda x: x[0] * x[1])

    # find the closest aspect ratio to the target
    target_aspect_ratio = find_closest_aspect_ratio(
        aspect_ratio, target_ratios, orig_width, orig_height, image_size
    )

    # print(target_aspect_ratio)
    # calculate the target width and height
    target_width = image_size * target_aspect_ratio[0]
    target_height = image_size * target_aspect_ratio[1]
    blocks = target_aspect_ratio[0] * target_aspect_ratio[1]

    # resize the image
    resized_img = image.resize((target_width, target_height))
    processed_images = []
    for i in range(blocks):
        box = (
            (i % (target_width // image_size)) * image_size,
            (i // (target_width // image_size)) * image_size,
            ((i % (target_width // image_size)) + 1) * image_size,
            ((i // (target_width // image_size)) + 1) * image_size,
        )
        # split the image
        split_img = resized_img.crop(box)
        processed_images.append(split_img)
    assert len(processed_images) == blocks
    if use_thumbnail and len(processed_images) != 1:
        thumbnail_img = image.resize((image_size, image_size))
        processed_images.append(thumbnail_img)
    return processed_images, target_aspect_ratio


@dataclass(frozen=True)
class DeepSeekOCRResult:
    tiles_stretched_to: tuple[int, int] | None  # dynamic_preprocess's resized_img
    global_content: tuple[int, int]  # the image inside ImageOps.pad(image, (1024, 1024))
    tokens: int


def deepseek_ocr(width: int, height: int) -> DeepSeekOCRResult:
    image = SizeOnly((width, height))
    image_size, base_size, patch_size, downsample_ratio = IMAGE_SIZE, BASE_SIZE, 16, 4
    cropping = CROP_MODE
    image_token_id = -1  # any id: only the count matters
    # --- from tokenize_with_images
    if image.size[0] <= 640 and image.size[1] <= 640:
        crop_ratio = [1, 1]
    else:
        if cropping:
            images_crop_raw, crop_ratio = ocr_dynamic_preprocess(image, image_size=IMAGE_SIZE)  # noqa: RUF059
        else:
            crop_ratio = [1, 1]
    num_width_tiles, num_height_tiles = crop_ratio
    num_queries = math.ceil((image_size // patch_size) / downsample_ratio)
    num_queries_base = math.ceil((base_size // patch_size) / downsample_ratio)

    tokenized_image = ([image_token_id] * num_queries_base + [image_token_id]) * num_queries_base
    tokenized_image += [image_token_id]
    if num_width_tiles > 1 or num_height_tiles > 1:
        tokenized_image += (
            [image_token_id] * (num_queries * num_width_tiles) + [image_token_id]
        ) * (num_queries * num_height_tiles)
    # ---
    stretched = image.resizes[0] if image.resizes else None  # dynamic_preprocess's
    global_content = pil_contain(image.size, (base_size, base_size))
    return DeepSeekOCRResult(stretched, global_content, len(tokenized_image))
