"""Concurrency: 256 requests, 50 ms server latency, at most 32 in flight."""

from __future__ import annotations

import asyncio
import time

from .._common import Check, Context, Metric, Row, ScenarioResult, median
from .._variants import ImageArg, Variant
from ._util import OURS, instances, within

QUESTION = "What is in this picture?"


async def _all(
    variants: list[Variant], image: ImageArg, count: int, limit: int, reps: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    walls: dict[str, list[float]] = {v.key: [] for v in variants}
    answered: dict[str, int] = {}
    for variant in variants:  # warm-up: pools, per-loop clients, imports
        await variant.gather(QUESTION, image, limit, limit)
    for rep in range(reps):
        shift = rep % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            t0 = time.perf_counter()
            answers = await variant.gather(QUESTION, image, count, limit)
            walls[variant.key].append(time.perf_counter() - t0)
            answered[variant.key] = sum(1 for a in answers if a.content)
    for variant in variants:
        await variant.aclose()
    return walls, answered


def run(ctx: Context) -> ScenarioResult:
    settings = ctx.settings
    count, limit, latency = settings.batch_requests, settings.batch_limit, settings.batch_latency
    ctx.server.set(latency=latency, chunk_delay=0.0, reply_chunks=None)
    image = ImageArg(ctx.media.small, "high")
    variants = instances(ctx, "concurrency")
    try:
        walls, answered = asyncio.run(_all(variants, image, count, limit, settings.batch_reps))
    finally:
        ctx.server.set(latency=0.0)
        for variant in variants:
            variant.close()
    ideal = count / limit * latency
    result = ScenarioResult(
        key="concurrency",
        title="Concurrency",
        description=(
            f"{count} requests (text + the small image), emulator latency "
            f"{latency * 1000:.0f} ms, at most {limit} in flight; median wall time of "
            f"{settings.batch_reps} runs (the ideal is {count}/{limit} x "
            f"{latency * 1000:.0f} ms = {ideal * 1000:.0f} ms). Raw SDK, our client and "
            "LlamaIndex: `asyncio.gather` over async calls under an `asyncio.Semaphore"
            f"({limit})`; LangChain: `abatch(..., config={{'max_concurrency': {limit}}})`."
        ),
        metrics=[
            Metric("wall_ms", "wall time (ms)", "{:,.0f}"),
            Metric("vs_ideal", "x ideal", "{:.2f}", ratio=False),
            Metric("answered", "answers", "{}", ratio=False),
        ],
        rows=[
            Row(
                v.key,
                v.label,
                v.group,
                {
                    "wall_ms": median(walls[v.key]) * 1000,
                    "vs_ideal": median(walls[v.key]) / ideal,
                    "answered": answered[v.key],
                },
            )
            for v in variants
        ],
    )
    keys = {v.key for v in variants}
    for key in OURS:
        if key in keys:
            result.checks.append(within(result, key, "wall_ms", 1.1, "wall time"))
            label = result.row(key).label  # type: ignore[union-attr]
            result.checks.append(
                Check(
                    f"{label}: every request answered", answered[key] == count, str(answered[key])
                )
            )
    return result
