"""Call overhead: text + one small image, non-streaming, emulator latency 0."""

from __future__ import annotations

import time

from .._common import Context, Metric, Row, ScenarioResult, median, profile_top, quiet_gc
from .._variants import ImageArg
from ._util import ADAPTERS, OURS, SAME_FRAMEWORK_PEERS, instances, ratio_check, within

QUESTION = "What is in this picture?"


def run(ctx: Context) -> ScenarioResult:
    settings = ctx.settings
    ctx.server.set(latency=0.0, chunk_delay=0.0, reply_chunks=None)
    image = ImageArg(ctx.media.small, "high")
    variants = instances(ctx, "overhead")
    for variant in variants:  # warm-up: connections, caches, lazy imports
        for _ in range(3 if settings.quick else 10):
            variant.ask(QUESTION, image)
    walls: dict[str, list[float]] = {v.key: [] for v in variants}
    cpus: dict[str, list[float]] = {v.key: [] for v in variants}
    per_block = max(1, settings.overhead_calls // settings.overhead_blocks)
    for block in range(settings.overhead_blocks):
        shift = block % len(variants)
        for variant in variants[shift:] + variants[:shift]:  # rotate: no fixed order bias
            with quiet_gc():
                cpu0 = time.process_time()
                for _ in range(per_block):
                    t0 = time.perf_counter()
                    variant.ask(QUESTION, image)
                    walls[variant.key].append(time.perf_counter() - t0)
                cpus[variant.key].append((time.process_time() - cpu0) / per_block)
    result = ScenarioResult(
        key="overhead",
        title="Call overhead",
        description=(
            f"Text + one small image ({ctx.media.small.stat().st_size:,}-byte 256x256 JPEG, "
            "read from its file on every call the way each library's users do), "
            f"non-streaming, emulator latency 0; {len(walls[variants[0].key])} calls per "
            f"client in {settings.overhead_blocks} interleaved blocks. Wall: median per call. "
            "CPU: client process CPU per call (the emulator runs in its own process)."
        ),
        metrics=[
            Metric("wall_ms", "wall per call (ms)", "{:.3f}"),
            Metric("cpu_ms", "client CPU per call (ms)", "{:.3f}"),
        ],
        rows=[
            Row(
                v.key,
                v.label,
                v.group,
                {"wall_ms": median(walls[v.key]) * 1000, "cpu_ms": median(cpus[v.key]) * 1000},
            )
            for v in variants
        ],
    )
    keys = {v.key for v in variants}
    for key in OURS:
        if key in keys:
            result.checks.append(within(result, key, "wall_ms", 1.15, "median per call"))
    for key in ADAPTERS:
        if key in keys:
            result.checks.append(
                ratio_check(result, key, SAME_FRAMEWORK_PEERS[key], "wall_ms", "median per call")
            )
    for variant in variants:
        failed = any(
            c.passed is False and c.target.startswith(variant.label + ":") for c in result.checks
        )
        if failed and not settings.quick:
            result.profiles[variant.label] = profile_top(lambda v=variant: v.ask(QUESTION, image))
    for variant in variants:
        variant.close()
    return result
