"""The model catalog and the documented image token rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from siliconvision import (
    CATALOG,
    client_target_size,
    estimate_image_tokens,
    get_model_spec,
    known_model_ids,
    register_model,
    server_image_size,
)
from siliconvision.catalog import QWEN_RULE, ModelSpec

FACTS = Path(__file__).resolve().parents[3] / "shared" / "siliconcloud-api.md"
QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"


def _facts_model_ids() -> set[str]:
    """Every model id the facts file names (expanding its {a,b} shorthand)."""
    text = FACTS.read_text(encoding="utf-8")
    section = text.split("## Models", 1)[1].split("## Extra request fields", 1)[0]
    ids: set[str] = set()
    for raw in re.findall(r"`([^`\s]+/[^`\s]+)`", section):
        expansions = [raw]
        while any("{" in e for e in expansions):
            nxt = []
            for e in expansions:
                m = re.search(r"\{([^}]*)\}", e)
                if not m:
                    nxt.append(e)
                    continue
                for option in m.group(1).split(","):
                    nxt.append(e[: m.start()] + option + e[m.end() :])
            expansions = nxt
        ids.update(expansions)
    return ids


@pytest.mark.skipif(not FACTS.exists(), reason="shared/ facts file not beside the checkout")
def test_every_model_in_the_facts_file_is_catalogued() -> None:
    wanted = _facts_model_ids()
    # "THUDM/GLM-4.1V-9B-Thinking (and Pro/)" names the Pro variant in prose.
    wanted.add("Pro/THUDM/GLM-4.1V-9B-Thinking")
    assert len(wanted) >= 25
    missing = sorted(wanted - set(CATALOG))
    assert missing == []


def test_capabilities_follow_the_facts() -> None:
    assert get_model_spec("OpenGVLab/InternVL2-26B").image_order == "images_first"
    assert get_model_spec(QWEN).image_order == "preserve"
    assert get_model_spec("Qwen/Qwen3-VL-8B-Instruct").video
    assert not get_model_spec(QWEN).video
    assert get_model_spec("Qwen/Qwen3-VL-8B-Thinking").reasoning == "always"
    assert get_model_spec("Qwen/QVQ-72B-Preview").reasoning == "always"
    assert get_model_spec("THUDM/GLM-4.1V-9B-Thinking").reasoning == "always"
    assert get_model_spec("zai-org/GLM-4.5V").reasoning == "optional"
    assert not get_model_spec("TeleAI/TeleMM").accepts_image_urls
    assert not get_model_spec("deepseek-ai/DeepSeek-OCR").honours_detail
    assert get_model_spec("BAAI/bge-m3").kind == "embedding"
    assert known_model_ids("embedding") == ["BAAI/bge-m3"]
    for spec in CATALOG.values():
        assert spec.source, spec.id
        assert spec.context_window > 0


def test_unknown_ids_get_safe_defaults_and_overrides() -> None:
    spec = get_model_spec("acme/brand-new-vl")
    assert not spec.known
    assert spec.vision and spec.tools and spec.image_order == "preserve"
    # We do not know what such a server keeps: never downsize.
    assert client_target_size(8000, 6000, model=spec) is None
    assert get_model_spec("acme/brand-new-vl", tools=False, context_window=4096).tools is False
    with pytest.raises(ValueError, match="unknown ModelSpec field"):
        get_model_spec(QWEN, colour="blue")
    with pytest.raises(ValueError, match="non-empty model id"):
        get_model_spec("")


def test_register_model_overrides_catalog_entry() -> None:
    try:
        spec = register_model("acme/registered-vl", token_rule=QWEN_RULE, tools=False)
        assert spec.known and get_model_spec("acme/registered-vl") == spec
        # low: the aspect ratio kept, the shorter side 448 (see siliconvision.catalog)
        assert client_target_size(4000, 3000, model="acme/registered-vl", detail="low") == (
            597,
            448,
        )
        replaced = register_model(ModelSpec(id="acme/registered-vl", video=True))
        assert get_model_spec("acme/registered-vl").video and replaced.video
    finally:
        CATALOG.pop("acme/registered-vl", None)


@pytest.mark.parametrize(
    ("size", "kept", "tokens"),
    [
        ((224, 448), (224, 448), 128),
        ((1024, 1024), (1036, 1036), 1369),
        ((3172, 4096), (3136, 4060), 16_240),
    ],
)
def test_qwen_worked_examples(size: tuple[int, int], kept: tuple[int, int], tokens: int) -> None:
    width, height = size
    assert server_image_size(width, height, model=QWEN) == kept
    assert estimate_image_tokens(width, height, model=QWEN, detail="high") == tokens


@pytest.mark.parametrize("detail", ["low", "auto"])
def test_qwen_low_and_auto_are_256_tokens_at_448(detail: str) -> None:
    assert estimate_image_tokens(4000, 3000, model=QWEN, detail=detail) == 256  # type: ignore[arg-type]
    assert server_image_size(4000, 3000, model=QWEN, detail=detail) == (448, 448)  # type: ignore[arg-type]
    assert client_target_size(4000, 3000, model=QWEN, detail=detail) == (597, 448)  # type: ignore[arg-type]


def test_qwen_high_caps_at_the_pixel_limit_and_never_upscales() -> None:
    assert client_target_size(6000, 4000, model=QWEN) == (4368, 2912)
    w, h = client_target_size(6000, 4000, model=QWEN) or (0, 0)
    assert w * h <= 3584 * 3584 and w % 28 == 0 and h % 28 == 0
    assert client_target_size(1024, 1024, model=QWEN) is None  # server upsizes; we don't
    assert client_target_size(20, 20, model=QWEN) is None
    assert estimate_image_tokens(20, 20, model=QWEN) == 4  # scaled up to 56x56


def test_glm_rule() -> None:
    # A still image is two temporal frames: per image, half the config's pixel bounds.
    glm = "THUDM/GLM-4.1V-9B-Thinking"
    assert estimate_image_tokens(800, 600, model=glm, detail="low") == 256
    w, h = server_image_size(4000, 3000, model=glm) or (0, 0)
    assert w * h <= 9_633_792 // 2 and w % 28 == 0 and h % 28 == 0
    assert estimate_image_tokens(4000, 3000, model=glm) == (w // 28) * (h // 28)
    assert server_image_size(50, 50, model=glm) == (84, 84)  # >= 12,544 / 2 pixels


def test_deepseek_vl2_rule() -> None:
    ds = "deepseek-ai/deepseek-vl2"
    assert estimate_image_tokens(800, 600, model=ds, detail="low") == 421
    assert estimate_image_tokens(384, 384, model=ds) == 421
    # w x h tiles: 14*15 + 1 + (14*h)*(14*w + 1) = 211 + 196*w*h + 14*h
    assert server_image_size(768, 768, model=ds) == (768, 768)
    assert estimate_image_tokens(768, 768, model=ds) == 211 + 196 * 4 + 14 * 2
    # a wide image: 3 tiles across, 1 down (one row separator per row, not column)
    assert server_image_size(1152, 384, model=ds) == (1152, 384)
    assert estimate_image_tokens(1152, 384, model=ds) == 211 + 196 * 3 + 14 * 1
    # never more than 9 tiles
    w, h = server_image_size(10_000, 10_000, model=ds) or (0, 0)
    assert (w // 384) * (h // 384) <= 9
    # more than two images: every image is one 384x384 tile, detail ignored
    assert estimate_image_tokens(1152, 1152, model=ds, image_count=3) == 421
    assert client_target_size(1152, 1152, model=ds, image_count=3) == (384, 384)
    assert client_target_size(1152, 1152, model=ds, image_count=2) is None


def test_internvl_tiles() -> None:
    iv = "OpenGVLab/InternVL2-26B"
    assert estimate_image_tokens(448, 448, model=iv) == 256
    assert estimate_image_tokens(896, 448, model=iv) == 3 * 256  # 2 tiles + thumbnail
    assert estimate_image_tokens(5000, 5000, model=iv, detail="low") == 256
    assert client_target_size(5000, 5000, model=iv, detail="low") == (448, 448)


def test_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        estimate_image_tokens(0, 10, model=QWEN)


def test_estimate_prompt_tokens_counts_prepared_images_by_their_rule() -> None:
    from siliconvision.content import prepare_messages
    from siliconvision.tokens import estimate_prompt_tokens, estimate_text_tokens
    from tests.imaging import make_image

    big = make_image((1024, 1024), color="white")
    prepared = prepare_messages(
        [{"role": "user", "content": ["What is this?", big]}], model=QWEN, detail="high"
    )
    text_only = 4 + estimate_text_tokens("What is this?")
    assert estimate_prompt_tokens(prepared, model=QWEN) == text_only + 1369
    low = prepare_messages(
        [{"role": "user", "content": ["What is this?", big]}], model=QWEN, detail="low"
    )
    assert estimate_prompt_tokens(low, model=QWEN) == text_only + 256
    url = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "high"}}
            ],
        }
    ]
    assert estimate_prompt_tokens(url, model=QWEN) == 4 + 1369  # 1024x1024 assumed
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert estimate_prompt_tokens(prepared, model=QWEN, tools=tools) > text_only + 1369


def test_unsourced_models_have_no_estimate_and_are_never_resized() -> None:
    from siliconvision.tokens import estimate_prompt_tokens

    for model in ("stepfun-ai/step3", "TeleAI/TeleMM", "acme/brand-new-vl"):
        assert get_model_spec(model).token_rule.kind == "none"
        assert estimate_image_tokens(4000, 3000, model=model) is None
        assert server_image_size(4000, 3000, model=model, detail="low") is None
        assert client_target_size(4000, 3000, model=model, detail="low") is None
    part = {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "high"}}
    messages = [{"role": "user", "content": [part, {"type": "text", "text": "hi"}]}]
    with pytest.raises(
        ValueError, match=r"no sourced image token rule for model 'stepfun-ai/step3'"
    ):
        estimate_prompt_tokens(messages, model="stepfun-ai/step3")
    counted = estimate_prompt_tokens(messages, model="stepfun-ai/step3", unknown_image_tokens=500)
    assert counted == 4 + 1 + 500
    # no image, no question
    assert (
        estimate_prompt_tokens([{"role": "user", "content": "hi"}], model="stepfun-ai/step3") == 5
    )


def test_every_vision_model_cites_its_rule_or_has_none() -> None:
    for spec in CATALOG.values():
        rule = spec.token_rule
        if rule.kind == "none":
            assert "code (token rule" not in spec.source, spec.id
            if spec.vision:
                assert "no sourced image rule" in spec.source, spec.id
        else:
            assert spec.vision and spec.source.startswith("code (token rule: "), spec.id
            assert "@" in spec.source or "transformers 5.24.0" in spec.source, spec.id


def test_processor_refusals_are_errors() -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        server_image_size(1, 300, model=QWEN)
    with pytest.raises(ValueError, match="aspect ratio"):
        estimate_image_tokens(6000, 20, model="zai-org/GLM-4.6V")
    assert client_target_size(11990, 60, model=QWEN) is None  # 11984x56 would be refused
