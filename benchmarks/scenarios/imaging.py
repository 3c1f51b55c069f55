"""Image preparation: the candidates side by side on 12, 24 and 48 MP JPEG, PNG and WEBP.

Time: ``prepare_image`` from the file's path with each backend (``_candidates``),
interleaved repetitions, median; CPU counts every thread. Memory: peak RSS growth in
a fresh process per candidate and image (``_prep_memory_child``). Checked: a 12 MP
JPEG at detail=low prepares within 1.3x of decoding it at the smallest DCT scale that
covers the target (the floor: nothing can be faster than decoding the pixels it needs).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from .._candidates import MODEL, Candidate, available_candidates
from .._common import Check, Context, Metric, Row, ScenarioResult, median, quiet_gc
from .._media import GridImage

_MB = 1024 * 1024
#: The floor target: preparation of a 12 MP JPEG at detail=low, x the fastest floor.
FLOOR_LIMIT = 1.3
#: Upload speeds the break-even column is read against.
_BASE64 = 4 / 3  # the image travels as base64 text


def _child(ctx: Context, key: str, image: Path, detail: str) -> dict[str, int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ctx.root), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [
            ctx.python,
            "-m",
            "benchmarks._prep_memory_child",
            key,
            str(image),
            detail,
            str(ctx.media.warm),
        ],
        capture_output=True,
        text=True,
        cwd=ctx.root,
        env=env,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory run of {key} on {image.name} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, int] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _times(
    candidates: list[Candidate], image: GridImage, detail: str, reps: int
) -> dict[str, tuple[float, float, int, str]]:
    """key -> (median wall s, median CPU s, bytes made, size made)."""
    walls: dict[str, list[float]] = {c.key: [] for c in candidates}
    cpus: dict[str, list[float]] = {c.key: [] for c in candidates}
    made: dict[str, tuple[int, str]] = {}
    for rep in range(reps):
        shift = rep % len(candidates)
        for candidate in candidates[shift:] + candidates[:shift]:
            with quiet_gc():
                wall, cpu = time.perf_counter(), time.process_time()
                outcome = candidate.run(image.path, detail)
                cpus[candidate.key].append(time.process_time() - cpu)
                walls[candidate.key].append(time.perf_counter() - wall)
            made[candidate.key] = (outcome.byte_size, f"{outcome.width}x{outcome.height}")
    return {c.key: (median(walls[c.key]), median(cpus[c.key]), *made[c.key]) for c in candidates}


def _break_even(original: tuple[float, int], other: tuple[float, int]) -> float | None:
    """Mbit/s above which sending the original is faster end to end than ``other``
    (None: the original is never slower, or ``other`` is never slower)."""
    (t_orig, b_orig), (t_other, b_other) = original, other
    saved_bits = (b_orig - b_other) * _BASE64 * 8
    extra_seconds = t_other - t_orig
    if saved_bits <= 0 or extra_seconds <= 0:
        return None
    return saved_bits / extra_seconds / 1e6


def run(ctx: Context) -> ScenarioResult:
    quick = ctx.settings.quick
    reps = 1 if quick else 3
    candidates = available_candidates()
    default = next(c for c in candidates if c.group == "ours")
    for candidate in candidates:  # libraries loaded, libvips' threads started
        candidate.run(ctx.media.warm, "low")
    rows: list[Row] = []
    checks: list[Check] = []
    grid = ctx.media.grid
    for image in grid:
        file_size = image.path.stat().st_size
        for detail in ("low", "high"):
            measured = _times(candidates, image, detail, reps)
            original = measured.get("original")
            for candidate in candidates:
                wall, cpu, made_bytes, made_size = measured[candidate.key]
                memory = None
                if candidate.prepares and (
                    not quick or (image.megapixels == 12 and image.fmt == "JPEG")
                ):
                    memory = _child(ctx, candidate.key, image.path, detail)
                values: dict[str, object] = {
                    "image": image.label,
                    "detail": detail,
                    "wall_ms": wall * 1000,
                    "cpu_ms": cpu * 1000,
                    "sent": made_size if candidate.prepares else "-",
                    "out_kb": made_bytes / 1024 if candidate.prepares else None,
                    "file_mb": file_size / _MB,
                }
                if memory is not None:
                    growth = memory["peak"] - memory["before"]
                    values["peak_mb"] = growth / _MB
                    values["x_file"] = growth / file_size
                if original is not None and candidate.prepares and candidate.key != "original":
                    even = _break_even((original[0], original[2]), (wall, made_bytes))
                    values["break_even"] = "never" if even is None else f"{even:,.0f}"
                rows.append(
                    Row(
                        f"{image.megapixels}:{image.fmt}:{detail}:{candidate.key}",
                        candidate.label,
                        candidate.group,
                        values,
                    )
                )
            if image.megapixels == 12 and image.fmt == "JPEG" and detail == "low":
                floors = [measured[k][0] for k in ("floor_pillow", "floor_vips") if k in measured]
                ratio = measured[default.key][0] / min(floors)
                checks.append(
                    Check(
                        f"{default.label}: preparing a 12 MP JPEG at detail=low <= "
                        f"{FLOOR_LIMIT:g}x its DCT-scaled decode (the fastest floor)",
                        ratio <= FLOOR_LIMIT,
                        f"{ratio:.2f}x",
                    )
                )
    sizes = ", ".join(sorted({f"{g.megapixels} MP" for g in grid}, key=lambda s: int(s.split()[0])))
    return ScenarioResult(
        key="imaging",
        title="Image preparation: the candidates",
        description=(
            f"`prepare_image(path, model={MODEL!r}, detail=..., cache=None)` on photo-like "
            f"images of {sizes} (4000x3000, 6000x4000, 8000x6000) saved as JPEG (quality "
            "92), PNG (zlib level 6) and WEBP (quality 90), with each candidate backend; "
            f"median of {reps} interleaved runs. CPU: process time, every thread counted "
            "(libvips decodes, resizes and encodes on a thread pool: CPU above wall is "
            "parallel work). Peak: peak RSS growth while preparing, in a fresh process "
            "per candidate and image (loaded and warmed up on a small image first), as "
            "MiB and as x the file's size. Sent: the size the server keeps (as sent). "
            "Break-even: the uplink (Mbit/s, the image as base64) above which sending the "
            "original bytes would be faster end to end than this candidate's downsizing. "
            "Floors decode only: nothing can prepare faster than decoding the pixels it "
            "needs. Candidates: Pillow as before (Pillow only; `reduce()` first past 3x), "
            "Pillow with `draft()` and `reduce()` wherever they apply (to within 2x, then "
            "BICUBIC: the fallback without pyvips), libvips through pyvips (shrink-on-load, "
            "streamed, threaded: the default when installed), the original bytes as "
            "validated for sending as they are."
        ),
        metrics=[
            Metric("image", "image", "{}", ratio=False),
            Metric("detail", "detail", "{}", ratio=False),
            Metric("wall_ms", "time (ms)", "{:,.1f}", ratio=False),
            Metric("cpu_ms", "CPU (ms)", "{:,.1f}", ratio=False),
            Metric("peak_mb", "peak (MiB)", "{:,.1f}", ratio=False),
            Metric("x_file", "peak x file", "{:.2f}", ratio=False),
            Metric("sent", "sent", "{}", ratio=False),
            Metric("out_kb", "bytes (KiB)", "{:,.0f}", ratio=False),
            Metric("break_even", "original faster above (Mbit/s)", "{}", ratio=False),
        ],
        rows=rows,
        checks=checks,
        row_title="candidate",
    )
