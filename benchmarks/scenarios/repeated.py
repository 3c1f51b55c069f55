"""Repeated image: the same file in 100 consecutive questions; preparation time.

Preparation = from the moment the caller starts building the message to the moment
the library hands the request to the ``openai`` SDK's HTTP layer
(``SyncAPIClient.request``, which ``chat.completions.create`` and ``post`` both reach;
the call is stopped there, so no network time is mixed in). Every library is measured
the same way. "Re-encoding each time" empties our image cache before every question.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._common import (
    Check,
    Context,
    Metric,
    Row,
    ScenarioResult,
    clear_image_cache,
    median,
    profile_top,
)
from .._variants import ImageArg, Variant
from ._util import OURS, classes, instances

QUESTION = "What changed since the last question?"


class _Reached(Exception):
    """Raised in place of the HTTP request: preparation is over."""


@contextmanager
def stop_at_sdk() -> Iterator[list[float]]:
    """Patch the SDK's ``SyncAPIClient.request`` to stamp the time and stop."""
    from openai._base_client import SyncAPIClient

    original = SyncAPIClient.request
    stamps: list[float] = []

    def request(self: Any, *args: Any, **kwargs: Any) -> Any:
        stamps.append(time.perf_counter())
        raise _Reached

    SyncAPIClient.request = request  # type: ignore[method-assign,assignment]
    try:
        yield stamps
    finally:
        SyncAPIClient.request = original  # type: ignore[method-assign]


def _prep(variant: Variant, image: ImageArg, stamps: list[float]) -> float:
    t0 = time.perf_counter()
    try:
        variant.ask(QUESTION, image)
    except _Reached:
        return stamps[-1] - t0
    raise RuntimeError(f"{variant.label} did not reach the SDK")


def _measure(
    variant: Variant, image: ImageArg, stamps: list[float], questions: int, samples: int, ours: bool
) -> dict[str, Any]:
    clear_image_cache()
    cached = [_prep(variant, image, stamps) for _ in range(questions)]
    values: dict[str, Any] = {
        "first_ms": cached[0] * 1000,
        "repeat_ms": median(cached[1:] or cached) * 1000,
        "cached_total_ms": sum(cached) * 1000,
    }
    if ours:
        cold = []
        for _ in range(samples):
            clear_image_cache()
            cold.append(_prep(variant, image, stamps))
        reencode_total = median(cold) * questions
        values["reencode_total_ms"] = reencode_total * 1000
        values["speedup"] = reencode_total / sum(cached)
    return values


def run(ctx: Context) -> ScenarioResult:
    settings = ctx.settings
    questions, samples = settings.repeat_questions, settings.reencode_questions
    cases = [
        ("low", ImageArg(ctx.media.photo, "low"), True),
        ("high", ImageArg(ctx.media.huge, "high"), False),
    ]
    rows: list[Row] = []
    profiles: dict[str, str] = {}
    with stop_at_sdk() as stamps:
        variants = instances(ctx, "repeated")  # created after the patch: they call the stamp
        for case, image, with_peers in cases:
            for variant in variants:
                ours = variant.key in OURS
                if not ours and not with_peers:
                    continue
                n_samples = samples if case == "low" else max(1, samples // 4)
                values = _measure(variant, image, stamps, questions, n_samples, ours)
                values["case"] = case
                rows.append(Row(f"{variant.key}:{case}", f"{variant.label}", variant.group, values))
        for variant in variants:
            variant.close()
    photo, huge = ctx.media.photo, ctx.media.huge
    result = ScenarioResult(
        key="repeated",
        title="Repeated image",
        description=(
            f"The same file in {questions} consecutive questions: "
            f"**low** = {photo.name} ({photo.stat().st_size / 1e6:.1f} MB, 4000x3000) at "
            f"detail=low; **high** = {huge.name} ({huge.stat().st_size / 1e6:.1f} MB, "
            "6000x4000) at detail=high. Preparation time only (stopped where the SDK "
            "sends, see the module doc). Cached: our image cache kept across the "
            f"questions (the first one fills it). Re-encoding each time: the median of {samples} "
            f"(high: {max(1, samples // 4)}) questions with the cache emptied before each, "
            f"x {questions}. The peers base64 the file for every question and never resize, "
            "so they have no re-encoding column."
        ),
        metrics=[
            Metric("case", "case", "{}", ratio=False),
            Metric("first_ms", "first question (ms)", "{:.2f}", ratio=False),
            Metric("repeat_ms", "each repeat, median (ms)", "{:.3f}", ratio=False),
            Metric("cached_total_ms", f"{questions} questions, cached (ms)", "{:,.1f}", False),
            Metric(
                "reencode_total_ms", f"{questions} questions, re-encoding (ms)", "{:,.1f}", False
            ),
            Metric("speedup", "re-encoding / cached", "{:.1f}x", ratio=False),
        ],
        rows=rows,
        profiles=profiles,
    )
    for row in rows:
        if "speedup" in row.values:
            speedup = float(row.values["speedup"])
            result.checks.append(
                Check(
                    f"{row.label}: cached preparation >= 10x faster than re-encoding "
                    f"each time ({row.values['case']})",
                    speedup >= 10,
                    f"{speedup:.1f}x",
                )
            )
    if not settings.quick:
        for check in result.checks:
            if check.passed is False:
                label = check.target.split(":", 1)[0]
                case = "low" if check.target.endswith("(low)") else "high"
                image = cases[0][1] if case == "low" else cases[1][1]
                with stop_at_sdk() as stamps:
                    cls = next(c for c in classes(ctx, "repeated") if c.label == label)
                    variant = cls()
                    variant.setup(ctx.server.base_url, ctx.server.api_key)
                    _prep(variant, image, stamps)  # fill the cache

                    def again(v: Variant = variant, img: ImageArg = image) -> None:
                        _prep(v, img, stamps)

                    result.profiles[f"{label} (cached, {case})"] = profile_top(again, repeat=10)
                    variant.close()
    return result
