"""The model catalog: what each SiliconCloud model id can do, as data.

SiliconCloud's ``GET /v1/models`` carries no capability flags, so which models see
images, take video, call tools or think comes from here. Every entry cites where
its facts come from (``source``): ``code`` (the model's own image processor and its
published config), ``doc`` (vendor documentation), ``seen`` (real traffic) or
``guess`` (an inference, overridable with :func:`register_model` or
:func:`get_model_spec` keyword overrides).

Image rules (:class:`TokenRule`) come from the code that runs on the server: the
models' Hugging Face image processors (``transformers`` 5.24.0, the ``*_pil_*``
modules, which need only numpy and Pillow) or the upstream repositories'
preprocessing, with the parameters of each model's published
``preprocessor_config.json`` / ``config.json``. The tests compare them with that
code over thousands of sizes (``tests/rules/``). A model id without a sourced rule
gets :data:`UNKNOWN_RULE`: its images are never resized and its image tokens are
unknown (:func:`siliconvision.tokens.estimate_image_tokens` returns ``None``).

``detail="low"`` (and ``"auto"``): SiliconCloud documents that every low image is
resized to 448x448. Whether that is a stretch or a fit-and-pad is not documented,
nor what happens on families it does not mention. Assumed here, for every family
that honours ``detail`` except DeepSeek-VL2: the server makes the image 448x448
(``low_size``) and the model's processor then sizes that canvas by its own rule, so
low costs the rule's tokens for 448x448: 256 on 28-pixel families (Qwen2/2.5-VL,
GLM-4.xV), 196 on 32-pixel ones (Qwen3-VL, Qwen3-Omni: 14x14), 256 on InternVL (one
tile). An upload for low keeps every row and column either reading could use: the
aspect ratio, with the shorter side at 448. DeepSeek-VL2's low is one 384 tile, as
documented (421 tokens).

Example:
    >>> spec = get_model_spec("Qwen/Qwen2.5-VL-72B-Instruct")
    >>> spec.vision, spec.image_order, spec.token_rule.kind, spec.token_rule.patch
    (True, 'preserve', 'qwen', 28)
    >>> get_model_spec("Qwen/Qwen3-VL-8B-Instruct").token_rule.patch
    32
    >>> get_model_spec("my-org/new-vl", tools=False).tools
    False
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = [
    "CATALOG",
    "Detail",
    "ImageOrder",
    "ModelKind",
    "ModelSpec",
    "ReasoningMode",
    "TokenRule",
    "as_detail",
    "detail_error",
    "get_model_spec",
    "known_model_ids",
    "register_model",
]

Detail = Literal["low", "high", "auto"]
ImageOrder = Literal["auto", "images_first", "preserve"]
ReasoningMode = Literal["none", "always", "optional"]
ModelKind = Literal["chat", "embedding"]
TokenRuleKind = Literal["qwen", "glm", "tiles", "deepseek_vl2", "deepseek_ocr", "none"]

DETAILS: tuple[Detail, ...] = get_args(Detail)
IMAGE_ORDERS: tuple[ImageOrder, ...] = get_args(ImageOrder)


def as_detail(value: object) -> Detail | None:
    """``value`` as one of :data:`DETAILS` (the plain string), or ``None`` when it is not
    one: the one check of an image's ``detail``.

    >>> as_detail("low"), as_detail("medium"), as_detail(None)
    ('low', None, None)
    """
    for known in DETAILS:
        if isinstance(value, str) and value == known:
            return known
    return None


def detail_error(value: object, what: str = "detail") -> str:
    """The message for a ``detail`` that :func:`as_detail` refuses.

    >>> detail_error("medium")
    "detail must be one of 'low', 'high', 'auto', got 'medium'"
    """
    allowed = ", ".join(repr(known) for known in DETAILS)
    return f"{what} must be one of {allowed}, got {value!r}"


@dataclass(frozen=True)
class TokenRule:
    """How the server sizes an image for a model, and what it costs in tokens.

    ``kind`` names the processor whose code the rule follows:

    - ``"qwen"``: Qwen2-VL's ``smart_resize``: each side **rounded to the nearest**
      multiple of ``patch`` (the processor's patch_size x merge_size: 14x2 = 28,
      16x2 = 32), then scaled into ``[min_pixels, max_pixels]`` (floor when
      shrinking, ceil when growing); the image is resized to exactly that size;
      tokens = (H/patch)*(W/patch). Aspect ratios over ``max_aspect_ratio`` (200)
      are refused.
    - ``"glm"``: GLM-4.1V's ``smart_resize``: as ``"qwen"``, but sides under
      ``patch`` are first scaled up to it, and a still image counts as ``frames``
      (2) temporal frames against the pixel bounds, so per image they are half of
      ``min_pixels``/``max_pixels`` (the config's values).
    - ``"tiles"``: InternVL's ``dynamic_preprocess``: the grid of ``tile`` x
      ``tile`` tiles (``min_tiles`` to ``max_tiles`` of them) closest to the aspect
      ratio; the image is **stretched** to the grid, plus a ``tile`` x ``tile``
      thumbnail when there is more than one tile (``thumbnail``);
      ``tokens_per_tile`` each.
    - ``"deepseek_vl2"``: DeepSeek-VL2's ``select_best_resolution`` over
      ``candidates`` (width, height), the image fitted and padded (not stretched)
      into that canvas of ``tile`` tiles, plus a padded ``tile`` global view;
      tokens = s*(s+1) + 1 + (s*h)*(s*w + 1) with s = ``tile_side_tokens`` (14) for
      w x h tiles. ``low``, or more than ``full_res_max_images`` images in the
      request: one tile (421 tokens).
    - ``"deepseek_ocr"``: DeepSeek-OCR's "Gundam" mode: a global view fitted and
      padded into ``base_size`` (1024; ``base_side_tokens`` 16: 273 tokens) and, for
      an image over ``tile`` (640) on a side, an InternVL-style grid of ``min_tiles``
      to ``max_tiles`` stretched ``tile`` tiles, (10*w + 1)*(10*h) tokens more.
      ``detail`` is ignored (``low_size`` is ``None``).
    - ``"none"``: no sourced rule: images are never resized and their tokens are
      unknown.

    ``low_size``: the square canvas SiliconCloud makes a ``low``/``auto`` image
    before the processor sees it (448; see the module doc), ``None`` where detail
    is ignored. ``low_tokens``: ``None`` means the rule's own count for that canvas;
    a number overrides it.
    """

    kind: TokenRuleKind = "none"
    patch: int = 28
    min_pixels: int = 56 * 56
    max_pixels: int | None = None
    low_size: int | None = None
    low_tokens: int | None = None
    tile: int = 384
    max_tiles: int = 9
    tokens_per_tile: int = 256
    full_res_max_images: int | None = None
    max_aspect_ratio: float | None = None
    frames: int = 1
    min_tiles: int = 1
    thumbnail: bool = True
    candidates: tuple[tuple[int, int], ...] = ()
    tile_side_tokens: int = 14
    base_size: int = 1024
    base_side_tokens: int = 16

    def __post_init__(self) -> None:
        # hashable and comparable however it was given (a dict from JSON holds lists)
        candidates = tuple((int(w), int(h)) for w, h in self.candidates)
        object.__setattr__(self, "candidates", candidates)
        if self.kind == "deepseek_vl2" and not candidates:
            raise ValueError("a deepseek_vl2 TokenRule needs candidates: (width, height) canvases")
        if self.patch < 1 or self.tile < 1:
            raise ValueError(f"patch and tile must be positive, got {self.patch} and {self.tile}")


# Where each rule comes from. transformers 5.24.0 is the version in locks/dev.txt;
# the configs are the models' published preprocessor_config.json / config.json.
QWEN2_VL_SOURCE = (
    "transformers 5.24.0 models/qwen2_vl/image_processing_pil_qwen2_vl.py "
    "(smart_resize, Qwen2VLImageProcessorPil); config Qwen/Qwen2-VL-*, Qwen2.5-VL-* "
    "preprocessor_config.json: patch_size 14, merge_size 2, min_pixels 3136, "
    "max_pixels 12845056"
)
QWEN3_VL_SOURCE = (
    "transformers 5.24.0 models/qwen2_vl/image_processing_pil_qwen2_vl.py (Qwen3-VL's "
    "image processor, auto/image_processing_auto.py); config Qwen/Qwen3-VL-* "
    "preprocessor_config.json: patch_size 16, merge_size 2, size shortest_edge 65536, "
    "longest_edge 16777216"
)
QWEN3_OMNI_SOURCE = (
    "transformers 5.24.0 models/qwen2_vl/image_processing_pil_qwen2_vl.py (Qwen3-Omni's "
    "image processor, auto/image_processing_auto.py); config Qwen/Qwen3-Omni-30B-A3B-* "
    "preprocessor_config.json: patch_size 16, merge_size 2, min_pixels 3136, "
    "max_pixels 12845056"
)
GLM_SOURCE = (
    "transformers 5.24.0 models/glm4v/image_processing_pil_glm4v.py and "
    "models/glm46v/image_processing_pil_glm46v.py (smart_resize with num_frames = "
    "temporal_patch_size 2); config THUDM/GLM-4.1V-9B-Thinking, zai-org/GLM-4.5V, "
    "zai-org/GLM-4.6V preprocessor_config.json: patch_size 14, merge_size 2, size "
    "shortest_edge 12544, longest_edge 9633792"
)
INTERNVL_SOURCE = (
    "OpenGVLab/InternVL @2410d1d README.md and internvl_chat/README.md "
    "(dynamic_preprocess, find_closest_aspect_ratio; load_image: image_size 448, "
    "max_num 12, use_thumbnail=True); 448/14 patches, pixel shuffle 0.5: 256 tokens a tile"
)
DEEPSEEK_VL2_SOURCE = (
    "deepseek-ai/DeepSeek-VL2 @ef9f91e deepseek_vl2/models/processing_deepseek_vl_v2.py "
    "(select_best_resolution, tokenize_with_images: cropping only for <= 2 images); "
    "config deepseek-ai/deepseek-vl2 config.json candidate_resolutions (23, 384 px tiles, "
    "at most 9), patch_size 14, downsample_ratio 2"
)
DEEPSEEK_OCR_SOURCE = (
    "deepseek-ai/DeepSeek-OCR @e4ac34e DeepSeek-OCR-master/DeepSeek-OCR-vllm/config.py "
    "(Gundam: BASE_SIZE 1024, IMAGE_SIZE 640, CROP_MODE, MIN_CROPS 2, MAX_CROPS 6) and "
    "process/image_process.py (dynamic_preprocess, tokenize_with_images: patch 16, "
    "downsample 4); which mode SiliconCloud runs is a guess"
)

QWEN_RULE = TokenRule(
    kind="qwen",
    patch=28,
    min_pixels=3136,
    max_pixels=12_845_056,
    low_size=448,
    max_aspect_ratio=200.0,
)
QWEN3_VL_RULE = TokenRule(
    kind="qwen",
    patch=32,
    min_pixels=65_536,
    max_pixels=16_777_216,
    low_size=448,
    max_aspect_ratio=200.0,
)
QWEN3_OMNI_RULE = TokenRule(
    kind="qwen",
    patch=32,
    min_pixels=3136,
    max_pixels=12_845_056,
    low_size=448,
    max_aspect_ratio=200.0,
)
GLM_RULE = TokenRule(
    kind="glm",
    patch=28,
    min_pixels=12_544,
    max_pixels=9_633_792,
    frames=2,
    low_size=448,
    max_aspect_ratio=200.0,
)
DEEPSEEK_VL2_RULE = TokenRule(
    kind="deepseek_vl2",
    tile=384,
    max_tiles=9,
    low_size=384,
    full_res_max_images=2,
    tile_side_tokens=14,
    # config.json candidate_resolutions, in its order (it breaks ties): (width, height)
    candidates=tuple(
        (w * 384, h * 384)
        for w, h in (
            (1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (1, 4), (4, 1), (2, 2), (1, 5), (5, 1),
            (1, 6), (6, 1), (2, 3), (3, 2), (1, 7), (7, 1), (1, 8), (8, 1), (2, 4), (4, 2),
            (1, 9), (9, 1), (3, 3),
        )
    ),
)  # fmt: skip
INTERNVL_RULE = TokenRule(
    kind="tiles",
    tile=448,
    min_tiles=1,
    max_tiles=12,
    thumbnail=True,
    tokens_per_tile=256,
    low_size=448,
)
DEEPSEEK_OCR_RULE = TokenRule(
    kind="deepseek_ocr",
    tile=640,
    min_tiles=2,
    max_tiles=6,
    base_size=1024,
    base_side_tokens=16,
    tile_side_tokens=10,
    low_size=None,
)
UNKNOWN_RULE = TokenRule(kind="none")


@dataclass(frozen=True)
class ModelSpec:
    """Capabilities of one model id. Frozen: derive variants with :meth:`replace`."""

    id: str
    kind: ModelKind = "chat"
    vision: bool = True
    video: bool = False
    tools: bool = True
    reasoning: ReasoningMode = "none"
    image_order: Literal["images_first", "preserve"] = "preserve"
    default_detail: Detail = "high"
    token_rule: TokenRule = UNKNOWN_RULE
    context_window: int = 32_768
    max_output_tokens: int | None = None
    accepts_image_urls: bool = True
    honours_detail: bool = True
    embedding_dimensions: int | None = None
    known: bool = True
    source: str = "guess"
    notes: str = ""

    def replace(self, **changes: Any) -> ModelSpec:
        """Return a copy with ``changes`` applied (unknown field names raise)."""
        return _replace_checked(self, changes)

    @property
    def structured_output(self) -> bool:
        """Whether ``response_format={"type":"json_object"}`` is worth sending."""
        return self.kind == "chat"


def _replace_checked(spec: ModelSpec, changes: dict[str, Any]) -> ModelSpec:
    names = {f.name for f in dataclasses.fields(ModelSpec)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ValueError(
            f"unknown ModelSpec field(s) {unknown}; valid fields: {sorted(names - {'id'})}"
        )
    if "token_rule" in changes and isinstance(changes["token_rule"], dict):
        changes = {**changes, "token_rule": TokenRule(**changes["token_rule"])}
    return dataclasses.replace(spec, **changes)


def _token_source(rule_source: str, rest: str) -> str:
    return f"code (token rule: {rule_source}); {rest}"


def _qwen_vl(
    model_id: str,
    *,
    context: int,
    video: bool = False,
    reasoning: ReasoningMode = "none",
    family: tuple[TokenRule, str] = (QWEN_RULE, QWEN2_VL_SOURCE),
) -> ModelSpec:
    rule, rule_source = family
    return ModelSpec(
        id=model_id,
        video=video,
        tools=True,
        reasoning=reasoning,
        token_rule=rule,
        context_window=context,
        source=_token_source(rule_source, "guess (tools, context window)"),
    )


def _build_catalog() -> dict[str, ModelSpec]:
    specs: list[ModelSpec] = [
        _qwen_vl("Qwen/Qwen2-VL-72B-Instruct", context=32_768),
        _qwen_vl("Pro/Qwen/Qwen2-VL-7B-Instruct", context=32_768),
        _qwen_vl("Qwen/Qwen2.5-VL-7B-Instruct", context=32_768),
        _qwen_vl("Pro/Qwen/Qwen2.5-VL-7B-Instruct", context=32_768),
        _qwen_vl("Qwen/Qwen2.5-VL-32B-Instruct", context=131_072),
        _qwen_vl("Qwen/Qwen2.5-VL-72B-Instruct", context=131_072),
        _qwen_vl(
            "Qwen/QVQ-72B-Preview",
            context=32_768,
            reasoning="always",
            family=(QWEN_RULE, QWEN2_VL_SOURCE + " (Qwen/QVQ-72B-Preview's is the same)"),
        ).replace(tools=False),
    ]
    qwen3_vl = (QWEN3_VL_RULE, QWEN3_VL_SOURCE)
    for size in ("8B", "32B", "30B-A3B", "235B-A22B"):
        specs.append(
            _qwen_vl(f"Qwen/Qwen3-VL-{size}-Instruct", context=262_144, video=True, family=qwen3_vl)
        )
        specs.append(
            _qwen_vl(
                f"Qwen/Qwen3-VL-{size}-Thinking",
                context=262_144,
                video=True,
                reasoning="always",
                family=qwen3_vl,
            )
        )
    omni = (QWEN3_OMNI_RULE, QWEN3_OMNI_SOURCE)
    specs += [
        _qwen_vl("Qwen/Qwen3-Omni-30B-A3B-Instruct", context=65_536, video=True, family=omni),
        _qwen_vl(
            "Qwen/Qwen3-Omni-30B-A3B-Thinking",
            context=65_536,
            video=True,
            reasoning="always",
            family=omni,
        ),
        _qwen_vl(
            "Qwen/Qwen3-Omni-30B-A3B-Captioner", context=65_536, video=True, family=omni
        ).replace(tools=False),
    ]
    for model_id, context in (
        ("OpenGVLab/InternVL2-26B", 32_768),
        ("OpenGVLab/InternVL2-Llama3-76B", 8_192),
        ("Pro/OpenGVLab/InternVL2-8B", 32_768),
    ):
        specs.append(
            ModelSpec(
                id=model_id,
                tools=False,
                image_order="images_first",
                token_rule=INTERNVL_RULE,
                context_window=context,
                source=_token_source(
                    INTERNVL_SOURCE, "doc (images before text); guess (tools, context window)"
                ),
            )
        )
    for model_id in ("THUDM/GLM-4.1V-9B-Thinking", "Pro/THUDM/GLM-4.1V-9B-Thinking"):
        specs.append(
            ModelSpec(
                id=model_id,
                tools=False,
                reasoning="always",
                token_rule=GLM_RULE,
                context_window=65_536,
                source=_token_source(GLM_SOURCE, "doc (reasoning); guess (tools, context window)"),
            )
        )
    for model_id, context in (("zai-org/GLM-4.5V", 65_536), ("zai-org/GLM-4.6V", 131_072)):
        specs.append(
            ModelSpec(
                id=model_id,
                tools=True,
                reasoning="optional",
                token_rule=GLM_RULE,
                context_window=context,
                source=_token_source(GLM_SOURCE, "guess (enable_thinking, tools, context window)"),
            )
        )
    specs += [
        ModelSpec(
            id="deepseek-ai/deepseek-vl2",
            tools=False,
            token_rule=DEEPSEEK_VL2_RULE,
            context_window=4_096,
            source=_token_source(
                DEEPSEEK_VL2_SOURCE, "doc (low is one tile); guess (context window)"
            ),
        ),
        ModelSpec(
            id="deepseek-ai/DeepSeek-OCR",
            tools=False,
            honours_detail=False,
            token_rule=DEEPSEEK_OCR_RULE,
            context_window=8_192,
            source=_token_source(
                DEEPSEEK_OCR_SOURCE, "doc (ignores detail); guess (context window)"
            ),
            notes="ignores detail",
        ),
        ModelSpec(
            id="stepfun-ai/step3",
            tools=True,
            reasoning="always",
            context_window=65_536,
            source="guess (tools, reasoning, context window); no sourced image rule",
        ),
        ModelSpec(
            id="TeleAI/TeleMM",
            tools=False,
            accepts_image_urls=False,
            context_window=32_768,
            source="doc (base64 images only); guess (context window); no sourced image rule",
            notes="base64 images only",
        ),
        ModelSpec(
            id="Qwen/Qwen2.5-7B-Instruct",
            vision=False,
            tools=True,
            context_window=32_768,
            source="doc (text-only chat model)",
        ),
        ModelSpec(
            id="BAAI/bge-m3",
            kind="embedding",
            vision=False,
            tools=False,
            context_window=8_192,
            embedding_dimensions=1024,
            source="doc (embedding model, 1024 dimensions)",
        ),
    ]
    return {spec.id: spec for spec in specs}


CATALOG: dict[str, ModelSpec] = _build_catalog()
_lock = threading.Lock()


def known_model_ids(kind: ModelKind | None = None) -> list[str]:
    """Catalogued model ids (optionally of one ``kind``), in catalog order."""
    return [m for m, spec in CATALOG.items() if kind is None or spec.kind == kind]


def get_model_spec(model: str | ModelSpec, **overrides: Any) -> ModelSpec:
    """The spec for ``model``; unknown ids get safe defaults (``known=False``).

    Safe defaults for an unknown id: it takes images, tools are allowed (the server
    decides), the caller's order is kept, and images are never downsized (we do not
    know what the server keeps). Any field can be overridden by keyword.
    """
    if isinstance(model, ModelSpec):
        spec = model
    else:
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty model id string, got {model!r}")
        spec = CATALOG.get(model) or ModelSpec(
            id=model, known=False, source="unknown id: safe defaults"
        )
    return _replace_checked(spec, overrides) if overrides else spec


def register_model(spec: ModelSpec | str, **fields: Any) -> ModelSpec:
    """Add or replace a catalog entry (process-wide) and return it.

    >>> register_model("acme/vl-1", tools=False, token_rule=QWEN_RULE).tools
    False
    """
    if isinstance(spec, str):
        spec = get_model_spec(spec).replace(known=True, **fields)
    elif fields:
        spec = spec.replace(**fields)
    with _lock:
        CATALOG[spec.id] = spec
    return spec
