"""The upload invariant, for every family and detail, judged by the processors' code.

When :func:`client_target_size` says to upload a smaller size, the family's own
preprocessing (``tests/rules/families.py``) applied to that upload must give what it
gives applied to the original: the same resampled size or tile grid, the same fitted
contents in every padded view, the same tokens. And the upload must keep every row
and column the server uses: at least as many pixels in each direction as every size
the server resamples or fits the image to. Never larger than the original.
"""

from __future__ import annotations

import pytest

from siliconvision import tokens
from siliconvision.tokens import client_target_size

from . import upstream
from .families import FAMILIES, LOW_SQUARE, Seen, low_reference, reference
from .sizes import size_grid

CASES = [
    (family, detail, count)
    for family in FAMILIES
    for detail in ("high", "low")
    for count in ((1, 3) if family == "deepseek-vl2" else (1,))
    if not (family == "deepseek-ocr" and detail == "low")  # ignores detail: same as high
]


def _seen(family: str, detail: str, size: tuple[int, int], count: int) -> Seen | None:
    if detail == "low":
        return low_reference(family, *size)
    return reference(family, *size, image_count=count)


def _covers(upload: tuple[int, int], used: tuple[int, int]) -> bool:
    return upload[0] >= used[0] and upload[1] >= used[1]


@pytest.mark.parametrize("any_saving", [False, True], ids=["policy", "any-saving"])
@pytest.mark.parametrize(("family", "detail", "count"), CASES)
def test_the_server_makes_the_same_of_the_upload(
    family: str, detail: str, count: int, any_saving: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if any_saving:  # also every upload that saves less than the policy's tenth
        monkeypatch.setattr(tokens, "_MIN_SAVING", (1, 1))
    model = FAMILIES[family][0]
    failures: list[tuple[tuple[int, int], tuple[int, int], str]] = []
    resized = 0
    for size in size_grid():
        original = _seen(family, detail, size, count)
        if original is None:
            continue  # the processor refuses the original: nothing is uploaded
        target = client_target_size(*size, model=model, detail=detail, image_count=count)  # type: ignore[arg-type]
        if target is None:
            continue
        resized += 1
        if not (target[0] <= size[0] and target[1] <= size[1]):
            failures.append((size, target, "larger than the original"))
            continue
        uploaded = _seen(family, detail, target, count)
        if uploaded != original:
            failures.append((size, target, f"server sees {uploaded}, not {original}"))
            continue
        used = [s for s in (original.stretched, *original.fitted) if s is not None]
        if not all(_covers(target, u) for u in used):
            failures.append((size, target, f"fewer rows or columns than the server uses {used}"))
    assert failures == [], f"{len(failures)} failures, first: {failures[:5]}"
    assert resized > (500 if any_saving else 150)  # the invariant was exercised


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "deepseek-ocr"])
def test_low_uploads_keep_the_aspect_ratio_and_448_on_both_sides(family: str) -> None:
    """Both readings of "every low image is resized to 448x448": stretched, the server
    takes 448 rows and 448 columns; fitted and padded, it takes the contained size,
    which must be the same from the upload as from the original."""
    model = FAMILIES[family][0]
    for size in ((4000, 3000), (3000, 4000), (1920, 1080), (12000, 500), (600, 1000)):
        target = client_target_size(*size, model=model, detail="low")
        assert target is not None
        box = (384, 384) if family == "deepseek-vl2" else (LOW_SQUARE, LOW_SQUARE)
        assert upstream.pil_contain(target, box) == upstream.pil_contain(size, box)
        if family != "deepseek-vl2":  # DeepSeek-VL2's low pads into one tile: no stretch
            assert min(target) == LOW_SQUARE and target[0] * target[1] < size[0] * size[1]


def test_the_issue_s_examples() -> None:
    # InternVL stretches 1920x1080 to its 4x2 grid: upload the grid, not 1593x896.
    assert client_target_size(1920, 1080, model="OpenGVLab/InternVL2-26B") == (1792, 896)
    # Qwen3-VL keeps 4704x3520 of an 8000x6000 photo (16,170 tokens), and is sent that.
    assert client_target_size(8000, 6000, model="Qwen/Qwen3-VL-8B-Instruct") == (4704, 3520)
    # A 4:3 photo at low detail keeps 448 rows whichever way the server makes 448x448.
    assert client_target_size(4000, 3000, model="Qwen/Qwen2.5-VL-7B-Instruct", detail="low") == (
        597,
        448,
    )
    # Unknown rule: never resized.
    assert client_target_size(8000, 6000, model="stepfun-ai/step3") is None
