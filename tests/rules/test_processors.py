"""Our token rules against the models' own processors, over thousands of sizes.

For every family: the size the server works at (:func:`server_image_size`) and the
tokens (:func:`estimate_image_tokens`) must be exactly what the family's processor
gives (``tests/rules/families.py``), and a size the processor refuses must be
refused. Zero mismatches over the whole grid (``tests/rules/sizes.py``).
"""

from __future__ import annotations

import pytest
from PIL import Image

from siliconvision.catalog import get_model_spec
from siliconvision.tokens import estimate_image_tokens, server_image_size

from .families import FAMILIES, PATCH_FAMILIES, low_reference, processor, reference
from .sizes import size_grid

Mismatch = tuple[tuple[int, int], object, object]


def _ours(model: str, width: int, height: int, detail: str, count: int = 1) -> object:
    try:
        size = server_image_size(width, height, model=model, detail=detail, image_count=count)  # type: ignore[arg-type]
        tokens = estimate_image_tokens(width, height, model=model, detail=detail, image_count=count)  # type: ignore[arg-type]
    except ValueError:
        return None
    return size, tokens


def _expected(family: str, width: int, height: int, count: int = 1) -> object:
    seen = reference(family, width, height, count)
    if seen is None:
        return None
    if family == "deepseek-vl2":
        return seen.canvas, seen.tokens
    if family == "deepseek-ocr" and seen.stretched is None:
        return (1024, 1024), seen.tokens  # the padded global view is all there is
    return seen.stretched, seen.tokens


def test_the_grid_has_the_edges_the_issue_asks_for() -> None:
    sizes = size_grid()
    assert len(sizes) >= 4000
    assert (1, 1) in sizes and any(w == 1 and h > 100 for w, h in sizes)
    assert max(max(s) for s in sizes) == 12_000
    ratios = [max(w, h) / min(w, h) for w, h in sizes]
    assert any(199 <= r <= 200 for r in ratios) and any(r > 200 for r in ratios)
    assert (9973, 11003) in sizes  # primes


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_id_of_a_family_has_the_family_rule(family: str) -> None:
    rules = {get_model_spec(model_id).token_rule for model_id in FAMILIES[family]}
    assert len(rules) == 1 and next(iter(rules)).kind != "none"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_kept_size_and_tokens_match_the_processor(family: str) -> None:
    model = FAMILIES[family][0]
    counts = (1, 3) if family == "deepseek-vl2" else (1,)
    mismatches: list[Mismatch] = []
    refused = 0
    for width, height in size_grid():
        for count in counts:
            expected = _expected(family, width, height, count)
            refused += expected is None
            ours = _ours(model, width, height, "high", count)
            if ours != expected:
                mismatches.append(((width, height), ours, expected))
    assert mismatches == [], f"{len(mismatches)} mismatches, first: {mismatches[:5]}"
    if family in PATCH_FAMILIES:
        assert refused > 0  # the grid reaches the 200:1 limit, and refusals agree


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "deepseek-ocr"])
@pytest.mark.parametrize("detail", ["low", "auto"])
def test_low_detail_tokens_are_the_processor_s_for_its_square(family: str, detail: str) -> None:
    model = FAMILIES[family][0]
    mismatches: list[Mismatch] = []
    for width, height in size_grid()[::7]:
        if reference(family, width, height) is None:
            continue  # refused whatever the detail
        seen = low_reference(family, width, height)
        assert seen is not None
        ours = estimate_image_tokens(width, height, model=model, detail=detail)  # type: ignore[arg-type]
        if ours != seen.tokens:
            mismatches.append(((width, height), ours, seen.tokens))
    assert mismatches == [], f"{len(mismatches)} mismatches, first: {mismatches[:5]}"


def test_low_detail_token_counts() -> None:
    # 448x448 through each processor: 16x16 patches of 28, 14x14 of 32, one tile.
    expected = {
        "qwen2-vl": 256,
        "qwen3-vl": 196,
        "qwen3-omni": 196,
        "glm-4.1v": 256,
        "glm-4.6v": 256,
        "internvl": 256,
        "deepseek-vl2": 421,
    }
    for family, tokens in expected.items():
        assert estimate_image_tokens(4000, 3000, model=FAMILIES[family][0], detail="low") == tokens
        seen = low_reference(family, 4000, 3000)
        assert seen is not None and seen.tokens == tokens


def test_deepseek_ocr_ignores_detail() -> None:
    model = FAMILIES["deepseek-ocr"][0]
    assert not get_model_spec(model).honours_detail
    for width, height in ((1920, 1080), (600, 400), (5000, 700)):
        high = estimate_image_tokens(width, height, model=model, detail="high")
        assert estimate_image_tokens(width, height, model=model, detail="low") == high


# The figures the issue and the vendor guide quote, each from the processor itself.
@pytest.mark.parametrize(
    ("family", "size", "kept", "tokens"),
    [
        ("qwen2-vl", (224, 448), (224, 448), 128),
        ("qwen2-vl", (1024, 1024), (1036, 1036), 1369),
        ("qwen2-vl", (3172, 4096), (3136, 4060), 16_240),
        ("qwen3-vl", (8000, 6000), (4704, 3520), 16_170),
        ("qwen3-vl", (4116, 3080), (4128, 3072), 12_384),  # what the old 28-pixel upload got
        ("glm-4.1v", (4000, 3000), (2520, 1876), 6030),
        ("internvl", (1920, 1080), (1792, 896), 9 * 256),
        ("deepseek-vl2", (1920, 1080), (1536, 768), 211 + 196 * 8 + 14 * 2),
        ("deepseek-ocr", (1920, 1080), (1280, 640), 483),
    ],
)
def test_quoted_figures(
    family: str, size: tuple[int, int], kept: tuple[int, int], tokens: int
) -> None:
    assert _expected(family, *size) == (kept, tokens)
    assert _ours(FAMILIES[family][0], *size, "high") == (kept, tokens)


# The transformers functions above are the processors' own; these run the whole
# preprocess on real images, to tie those functions to what the processor outputs.
SMALL = ((1, 1), (1, 150), (13, 7), (29, 57), (100, 200), (224, 448), (300, 97), (449, 447))


@pytest.mark.parametrize("family", PATCH_FAMILIES)
def test_the_processor_s_output_grid_is_the_kept_size(family: str) -> None:
    proc = processor(family)
    model = FAMILIES[family][0]
    unit = proc.patch_size
    for width, height in SMALL:
        out = proc(images=[Image.new("RGB", (width, height), "gray")], return_tensors="np")
        _, rows, cols = (int(v) for v in out["image_grid_thw"][0])
        assert out["pixel_values"].shape[0] == rows * cols
        assert server_image_size(width, height, model=model) == (cols * unit, rows * unit)
        tokens = rows * cols // proc.merge_size**2
        assert estimate_image_tokens(width, height, model=model) == tokens
