"""Streaming: a 2,000-chunk answer; time per chunk, time to first chunk, usage totals."""

from __future__ import annotations

import math
import time

from .._common import Check, Context, Metric, Row, ScenarioResult, median, profile_top, quiet_gc
from .._variants import Variant
from ._util import OURS, instances, within

QUESTION = "Tell me a long story."


def _expected_total(chunks: int) -> int:
    """The emulator's rule: 4 + ceil(utf8 bytes / 4) prompt tokens, one token per piece."""
    return 4 + math.ceil(len(QUESTION.encode("utf-8")) / 4) + chunks


def _one(variant: Variant) -> tuple[float, float, float, int, int | None]:
    """(time to first chunk, time per chunk, CPU per chunk, chunks, reported total)."""
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    first = last = 0.0
    count = 0
    for piece in variant.stream(QUESTION, None):
        if piece:
            last = time.perf_counter()
            if not count:
                first = last
            count += 1
    cpu = time.process_time() - cpu0
    per_chunk = (last - first) / (count - 1) if count > 1 else float("nan")
    return first - t0, per_chunk, cpu / max(count, 1), count, variant.stream_total


def run(ctx: Context) -> ScenarioResult:
    settings = ctx.settings
    chunks = settings.stream_chunks
    ctx.server.set(latency=0.0, chunk_delay=0.0, reply_chunks=chunks)
    variants = instances(ctx, "streaming")
    for variant in variants:
        list(variant.stream(QUESTION, None))  # warm-up
    ttfc: dict[str, list[float]] = {v.key: [] for v in variants}
    per: dict[str, list[float]] = {v.key: [] for v in variants}
    cpu: dict[str, list[float]] = {v.key: [] for v in variants}
    totals: dict[str, int | None] = {}
    counts: dict[str, int] = {}
    for rep in range(settings.stream_reps):
        shift = rep % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            with quiet_gc():
                first, each, cpu_each, count, total = _one(variant)
            ttfc[variant.key].append(first)
            per[variant.key].append(each)
            cpu[variant.key].append(cpu_each)
            totals[variant.key] = total
            counts[variant.key] = count
    expected = _expected_total(chunks)
    result = ScenarioResult(
        key="streaming",
        title="Streaming",
        description=(
            f"A {chunks:,}-chunk answer to a text question, emulator latency 0, "
            f"{settings.stream_reps} streams per client (interleaved); medians. Time per chunk: "
            "from the first to the last content chunk, divided by the gaps. Usage total: what "
            "the library reports for the whole stream (LangChain: chunks added up as "
            "`chunk + chunk` does; LlamaIndex: the last cumulative response; raw SDK: the "
            f"last chunk's usage). The right total is {expected:,} "
            "(SiliconCloud repeats the cumulative usage on every chunk)."
        ),
        metrics=[
            Metric("ttfc_ms", "time to first chunk (ms)", "{:.3f}"),
            Metric("per_chunk_us", "time per chunk (µs)", "{:.1f}"),
            Metric("cpu_chunk_us", "client CPU per chunk (µs)", "{:.1f}"),
            Metric("chunks", "content chunks", "{:,}", ratio=False),
            Metric("total", "usage total reported", "{:,}", ratio=False),
            Metric("correct", "total correct", "{}", ratio=False),
        ],
        rows=[
            Row(
                v.key,
                v.label,
                v.group,
                {
                    "ttfc_ms": median(ttfc[v.key]) * 1000,
                    "per_chunk_us": median(per[v.key]) * 1e6,
                    "cpu_chunk_us": median(cpu[v.key]) * 1e6,
                    "chunks": counts[v.key],
                    "total": totals[v.key],
                    "correct": "yes" if totals[v.key] == expected else "**no**",
                },
            )
            for v in variants
        ],
    )
    keys = {v.key for v in variants}
    for key in OURS:
        if key in keys:
            result.checks.append(within(result, key, "per_chunk_us", 1.15, "time per chunk"))
            result.checks.append(within(result, key, "ttfc_ms", 1.15, "time to first chunk"))
            label = result.row(key).label  # type: ignore[union-attr]
            result.checks.append(
                Check(
                    f"{label}: usage total correct",
                    totals[key] == expected,
                    f"{totals[key]} (expected {expected})",
                )
            )
    for variant in variants:
        failed = any(
            c.passed is False and c.target.startswith(variant.label + ":") for c in result.checks
        )
        if failed and not settings.quick:
            result.profiles[variant.label] = profile_top(
                lambda v=variant: list(v.stream(QUESTION, None)), repeat=2
            )
    for variant in variants:
        variant.close()
    ctx.server.set(reply_chunks=None)
    return result
