"""One module per scenario; each has ``run(ctx) -> ScenarioResult``."""

from __future__ import annotations

from collections.abc import Callable

from .._common import Context, ScenarioResult
from . import (
    concurrency,
    imaging,
    imports,
    memory,
    overhead,
    pdfs,
    photos,
    ray_batch,
    repeated,
    streaming,
)

__all__ = ["SCENARIOS"]

SCENARIOS: dict[str, Callable[[Context], ScenarioResult]] = {
    "overhead": overhead.run,
    "streaming": streaming.run,
    "photo_low": photos.run_low,
    "photo_high": photos.run_high,
    "pdf_scan": pdfs.run,
    "repeated": repeated.run,
    "concurrency": concurrency.run,
    "memory": memory.run,
    "imaging": imaging.run,
    "imports": imports.run,
    "ray_limits": ray_batch.run_limits,
    "ray_prep": ray_batch.run_prep,
}
