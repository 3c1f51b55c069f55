"""The model catalog: what each SiliconCloud model id can do, as data.

SiliconCloud's ``GET /v1/models`` carries no capability flags, so which models see
images, take video, call tools or think comes from here. Every entry cites where
its facts come from (``source``): ``doc`` (vendor documentation), ``seen`` (real
traffic) or ``guess`` (an inference, overridable with :func:`register_model` or
:func:`get_model_spec` keyword overrides).

Example:
    >>> spec = get_model_spec("Qwen/Qwen2.5-VL-72B-Instruct")
    >>> spec.vision, spec.image_order, spec.token_rule.kind
    (True, 'preserve', 'qwen')
    >>> get_model_spec("my-org/new-vl", tools=False).tools
    False
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CATALOG",
    "Detail",
    "ImageOrder",
    "ModelKind",
    "ModelSpec",
    "ReasoningMode",
    "TokenRule",
    "get_model_spec",
    "known_model_ids",
    "register_model",
]

Detail = Literal["low", "high", "auto"]
ImageOrder = Literal["auto", "images_first", "preserve"]
ReasoningMode = Literal["none", "always", "optional"]
ModelKind = Literal["chat", "embedding"]
TokenRuleKind = Literal["qwen", "deepseek_vl2", "tiles", "none"]

DETAILS: tuple[Detail, ...] = ("low", "high", "auto")
IMAGE_ORDERS: tuple[ImageOrder, ...] = ("auto", "images_first", "preserve")


@dataclass(frozen=True)
class TokenRule:
    """How the server sizes an image for a model, and what it costs in tokens.

    ``kind``:
      - ``"qwen"``: sides rounded up to multiples of ``patch`` (28), scaled into
        ``[min_pixels, max_pixels]``; tokens = (H/patch)*(W/patch). ``low`` resizes
        every image to ``low_size`` x ``low_size`` (= ``low_tokens``).
      - ``"deepseek_vl2"``: ``tile`` x ``tile`` tiles, at most ``max_tiles`` of them;
        tokens = (h*w+1)*196 + (w+1)*14 + 1; ``low`` = one tile (421 tokens); with
        more than ``full_res_max_images`` images every image is one tile.
      - ``"tiles"``: InternVL-style ``tile`` x ``tile`` tiles (at most ``max_tiles``)
        plus a thumbnail, ``tokens_per_tile`` each.
      - ``"none"``: unknown; no resizing, no estimate beyond ``low_tokens``.
    """

    kind: TokenRuleKind = "none"
    patch: int = 28
    min_pixels: int = 56 * 56
    max_pixels: int | None = None
    low_size: int | None = None
    low_tokens: int = 256
    tile: int = 384
    max_tiles: int = 9
    tokens_per_tile: int = 256
    full_res_max_images: int | None = None
    max_aspect_ratio: float | None = None


QWEN_RULE = TokenRule(
    kind="qwen",
    patch=28,
    min_pixels=56 * 56,
    max_pixels=3584 * 3584,
    low_size=448,
    low_tokens=256,
    max_aspect_ratio=200.0,
)
GLM_RULE = TokenRule(
    kind="qwen",
    patch=28,
    min_pixels=12_544,
    max_pixels=4_816_894,
    low_size=448,
    low_tokens=256,
    max_aspect_ratio=200.0,
)
DEEPSEEK_VL2_RULE = TokenRule(
    kind="deepseek_vl2",
    tile=384,
    max_tiles=9,
    low_size=384,
    low_tokens=421,
    full_res_max_images=2,
)
INTERNVL_RULE = TokenRule(
    kind="tiles", tile=448, max_tiles=12, low_size=448, low_tokens=256, tokens_per_tile=256
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


def _qwen_vl(
    model_id: str, *, context: int, video: bool = False, reasoning: ReasoningMode = "none"
) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        video=video,
        tools=True,
        reasoning=reasoning,
        token_rule=QWEN_RULE,
        context_window=context,
        source="doc (token rule); guess (tools, context window)",
    )


def _build_catalog() -> dict[str, ModelSpec]:
    specs: list[ModelSpec] = [
        _qwen_vl("Qwen/Qwen2-VL-72B-Instruct", context=32_768),
        _qwen_vl("Pro/Qwen/Qwen2-VL-7B-Instruct", context=32_768),
        _qwen_vl("Qwen/Qwen2.5-VL-7B-Instruct", context=32_768),
        _qwen_vl("Pro/Qwen/Qwen2.5-VL-7B-Instruct", context=32_768),
        _qwen_vl("Qwen/Qwen2.5-VL-32B-Instruct", context=131_072),
        _qwen_vl("Qwen/Qwen2.5-VL-72B-Instruct", context=131_072),
        _qwen_vl("Qwen/QVQ-72B-Preview", context=32_768, reasoning="always").replace(tools=False),
    ]
    for size in ("8B", "32B", "30B-A3B", "235B-A22B"):
        specs.append(_qwen_vl(f"Qwen/Qwen3-VL-{size}-Instruct", context=262_144, video=True))
        specs.append(
            _qwen_vl(
                f"Qwen/Qwen3-VL-{size}-Thinking", context=262_144, video=True, reasoning="always"
            )
        )
    specs += [
        _qwen_vl("Qwen/Qwen3-Omni-30B-A3B-Instruct", context=65_536, video=True),
        _qwen_vl(
            "Qwen/Qwen3-Omni-30B-A3B-Thinking", context=65_536, video=True, reasoning="always"
        ),
        _qwen_vl("Qwen/Qwen3-Omni-30B-A3B-Captioner", context=65_536, video=True).replace(
            tools=False
        ),
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
                source="doc (images before text); guess (tiles, tools, context window)",
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
                source="doc (token rule, reasoning); guess (tools, context window)",
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
                source="guess (GLM-4.1V token rule, enable_thinking, tools, context window)",
            )
        )
    specs += [
        ModelSpec(
            id="deepseek-ai/deepseek-vl2",
            tools=False,
            token_rule=DEEPSEEK_VL2_RULE,
            context_window=4_096,
            source="doc (token rule); guess (context window)",
        ),
        ModelSpec(
            id="deepseek-ai/DeepSeek-OCR",
            tools=False,
            honours_detail=False,
            token_rule=UNKNOWN_RULE,
            context_window=8_192,
            source="doc (ignores detail); guess (context window)",
            notes="ignores detail",
        ),
        ModelSpec(
            id="stepfun-ai/step3",
            tools=True,
            reasoning="always",
            context_window=65_536,
            source="guess (tools, reasoning, context window)",
        ),
        ModelSpec(
            id="TeleAI/TeleMM",
            tools=False,
            accepts_image_urls=False,
            context_window=32_768,
            source="doc (base64 images only); guess (context window)",
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
