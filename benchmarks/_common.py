"""Results, statistics, profiling and the context every scenario gets."""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._media import MediaSet
    from ._server import EmulatorProcess
    from ._variants import Variant

__all__ = [
    "Check",
    "Context",
    "Metric",
    "Row",
    "ScenarioResult",
    "Settings",
    "clear_image_cache",
    "median",
    "profile_top",
    "quiet_gc",
]


@dataclass(frozen=True)
class Settings:
    """Sizes and repetitions; ``quick`` shrinks everything for the smoke test."""

    quick: bool = False
    overhead_calls: int = 300  # per variant, in blocks
    overhead_blocks: int = 6
    stream_chunks: int = 2000
    stream_reps: int = 7
    photo_reps: int = 5
    huge_reps: int = 3
    repeat_questions: int = 100
    reencode_questions: int = 20  # "re-encoding each time" is sampled, then scaled to 100
    batch_requests: int = 256
    batch_limit: int = 32
    batch_latency: float = 0.05
    batch_reps: int = 5
    import_reps: int = 5
    pdf_reps: int = 3

    @classmethod
    def for_run(cls, quick: bool) -> Settings:
        if not quick:
            return cls()
        return cls(
            quick=True,
            overhead_calls=6,
            overhead_blocks=1,
            stream_chunks=50,
            stream_reps=1,
            photo_reps=1,
            huge_reps=1,
            repeat_questions=5,
            reencode_questions=2,
            batch_requests=8,
            batch_limit=4,
            batch_latency=0.01,
            batch_reps=1,
            import_reps=1,
            pdf_reps=1,
        )


@dataclass
class Context:
    """What a scenario runs with."""

    server: EmulatorProcess
    media: MediaSet
    variants: list[type[Variant]]
    settings: Settings
    python: str  # interpreter for subprocess measurements
    root: Path  # repository root (for subprocesses' PYTHONPATH)


@dataclass(frozen=True)
class Metric:
    """A column: ``key`` in each row's values; ``ratio``: also shown as x raw SDK."""

    key: str
    title: str
    fmt: str = "{:.2f}"
    ratio: bool = True


@dataclass
class Row:
    """One variant's figures in one scenario."""

    key: str
    label: str
    group: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Check:
    """A target of the issue and whether this run met it (``None``: could not tell)."""

    target: str
    passed: bool | None
    detail: str


@dataclass
class ScenarioResult:
    key: str
    title: str
    description: str
    metrics: list[Metric]
    rows: list[Row]
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    row_title: str = "client"  # what the rows are (the first column's header)

    def row(self, key: str) -> Row | None:
        return next((r for r in self.rows if r.key == key), None)

    def value(self, key: str, metric: str) -> Any:
        row = self.row(key)
        return None if row is None else row.values.get(metric)

    def ratio(self, key: str, metric: str, base: str = "raw") -> float | None:
        value, reference = self.value(key, metric), self.value(base, metric)
        if not isinstance(value, (int, float)) or not isinstance(reference, (int, float)):
            return None
        return value / reference if reference else None


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


@contextmanager
def quiet_gc() -> Iterator[None]:
    """Collect first, so one variant does not pay for another's garbage."""
    gc.collect()
    yield


def clear_image_cache() -> None:
    """Empty ``siliconvision``'s process-wide image cache (if it is loaded)."""
    import sys

    images = sys.modules.get("siliconvision.images")
    if images is not None:
        images.DEFAULT_CACHE.clear()


def profile_top(fn: Callable[[], Any], *, repeat: int = 20, top: int = 12) -> str:
    """cProfile ``fn`` ``repeat`` times: the top entries by internal time, then the
    library frames (not this harness's) by cumulative time, as text."""
    profiler = cProfile.Profile()
    profiler.enable()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    elapsed = time.perf_counter() - start
    profiler.disable()
    head = f"{repeat} calls, {elapsed / repeat * 1000:.2f} ms each under the profiler"
    by_internal = _stats_lines(profiler, "tottime", top, None)
    by_cumulative = _stats_lines(profiler, "cumulative", top + 6, r"^(?!.*benchmarks/)")
    return "\n".join(
        [head, "", "by internal time:", *by_internal, "", "by cumulative time:", *by_cumulative]
    )


def _stats_lines(profiler: cProfile.Profile, key: str, top: int, pattern: str | None) -> list[str]:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(key)
    if pattern is None:
        stats.print_stats(top)
    else:
        stats.print_stats(pattern, top)
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    start_at = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return [_shorten_path(line) for line in lines[start_at:] if line.strip()]


def _shorten_path(line: str) -> str:
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        pos = line.find(marker)
        if pos >= 0:
            start = line.rfind(" ", 0, pos) + 1
            tail = line[pos + len(marker) :]
            if marker == "/lib/python3":
                tail = "stdlib:" + tail.split("/", 1)[-1]
            return line[:start] + tail
    return line
