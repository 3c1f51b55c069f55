"""The size a PDF page is drawn at, judged by the processors' code.

:func:`page_render_size` is what a page read at some pixel size is drawn at. The
family's own preprocessing (``tests/rules/families.py``) applied to the drawn page must
give what it gives applied to the page at its full reading size: the same resampled
size or tile grid, the same fitted contents in every padded view, the same tokens; and
the drawn page must hold every row and column the server uses. Checked over real page
sizes (paper, slides, receipts, cards, posters, at 72 to 300 dpi) and the image grid.
"""

from __future__ import annotations

import pytest

from siliconvision.tokens import page_render_size

from .families import FAMILIES, Seen, low_reference, reference
from .sizes import size_grid
from .test_upload_invariant import CASES

# width x height in points: A4, A3, A5, Letter, Legal, their landscapes, 16:9 slides,
# a receipt, a business card, an A0 poster
PAGES_PT = (
    (595, 842), (842, 1191), (420, 595), (612, 792), (612, 1008), (842, 595), (792, 612),
    (960, 540), (720, 405), (227, 1417), (252, 144), (2384, 3370),
)  # fmt: skip
DPIS = (72, 96, 150, 200, 300)


def _paper(dpis: tuple[int, ...] = DPIS) -> list[tuple[int, int]]:
    return sorted({(round(w * dpi / 72), round(h * dpi / 72)) for w, h in PAGES_PT for dpi in dpis})


def _page_sizes() -> list[tuple[int, int]]:
    return _paper() + list(size_grid()[::9])


def _seen(family: str, detail: str, size: tuple[int, int], count: int) -> Seen | None:
    if detail == "low":
        return low_reference(family, *size)
    return reference(family, *size, image_count=count)


@pytest.mark.parametrize(("family", "detail", "count"), CASES)
def test_the_server_makes_of_the_drawn_page_what_it_makes_of_the_whole(
    family: str, detail: str, count: int
) -> None:
    model = FAMILIES[family][0]
    paper = {s for s in _paper((150, 200, 300)) if min(s) >= 800}  # not the card
    failures: list[tuple[tuple[int, int], object, str]] = []
    drawn = 0
    for size in _page_sizes():
        whole = _seen(family, detail, size, count)
        if whole is None:
            continue  # the processor refuses the page's aspect ratio
        target = page_render_size(*size, model=model, detail=detail, image_count=count)  # type: ignore[arg-type]
        if target is None:
            # drawn at its reading size instead, which the server takes as any image:
            # where no size gives the same (a page smaller than the views the server
            # builds, whose upscaling would change its grid; a ~190:1 page that the
            # server rounds past the 200:1 limit). Never for paper at 150 dpi and more.
            if size in paper:
                failures.append((size, None, "no size to draw at"))
            continue
        drawn += 1
        seen = _seen(family, detail, target, count)
        if seen != whole:
            failures.append((size, target, f"server sees {seen}, not {whole}"))
            continue
        used = [s for s in (whole.stretched, *whole.fitted) if s is not None]
        if not all(target[0] >= u[0] and target[1] >= u[1] for u in used):
            failures.append((size, target, f"fewer rows or columns than the server uses {used}"))
    assert failures == [], f"{len(failures)} failures, first: {failures[:5]}"
    assert drawn > 300


def test_a4_at_200_dpi() -> None:
    a4 = (1654, 2339)
    assert page_render_size(*a4, model="Qwen/Qwen2.5-VL-72B-Instruct") == (1652, 2352)
    assert page_render_size(*a4, model="OpenGVLab/InternVL2-26B") == (896, 1344)
    assert page_render_size(*a4, model="Qwen/Qwen2.5-VL-72B-Instruct", detail="low") == (448, 634)
    assert page_render_size(*a4, model="stepfun-ai/step3") is None  # no rule: drawn at 200 dpi
