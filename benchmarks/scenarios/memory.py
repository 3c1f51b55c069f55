"""Memory: peak RSS of one request carrying a 20 MB image, one fresh process per run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from PIL import Image

from .._common import Check, Context, Metric, Row, ScenarioResult, median
from ._util import OURS, classes

_MB = 1024 * 1024


def _child(ctx: Context, key: str, image: Path, detail: str) -> dict[str, int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ctx.root), env.get("PYTHONPATH")]))
    args = [str(image), detail, str(ctx.media.small), ctx.server.base_url, ctx.server.api_key]
    proc = subprocess.run(
        [ctx.python, "-m", "benchmarks._memory_child", key, *args],
        capture_output=True,
        text=True,
        cwd=ctx.root,
        env=env,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory run of {key} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, int] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run(ctx: Context) -> ScenarioResult:
    reps = 1 if ctx.settings.quick else 2
    ctx.server.set(latency=0.0, chunk_delay=0.0, reply_chunks=None)
    cases = [("as is", ctx.media.heavy), ("downsized", ctx.media.heavy_big)]
    rows: list[Row] = []
    checks: list[Check] = []
    descriptions = []
    for case, image in cases:
        size = image.stat().st_size
        with Image.open(image) as img:
            width, height = img.size
        descriptions.append(
            f"**{case}** = {width}x{height} JPEG of {size / _MB:.1f} MiB"
            + (
                " (within what the server keeps at detail=high: every client sends it as it is)"
                if case == "as is"
                else f" ({width * height / 1e6:.0f} MP: we downsize it to what the server keeps,"
                " which needs its pixels decoded; Pillow holds 4 bytes a pixel, so its decoded"
                f" image alone is {width * height * 4 / _MB:.0f} MiB ="
                f" {width * height * 4 / size:.1f}x the file, more than 4x: libvips, which we"
                " use when pyvips is installed, decodes, resizes and encodes it a strip of"
                " rows at a time)"
            )
        )
        for cls in classes(ctx, "memory"):
            runs = [_child(ctx, cls.key, image, "high") for _ in range(reps)]
            extra = median([r["peak"] - r["before"] for r in runs])
            kept = median([r["after"] - r["before"] for r in runs])
            rows.append(
                Row(
                    f"{cls.key}:{case}",
                    cls.label,
                    cls.group,
                    {
                        "case": case,
                        "peak_mb": extra / _MB,
                        "x_image": extra / size,
                        "kept_mb": kept / _MB,
                    },
                )
            )
            if cls.key in OURS:
                checks.append(
                    Check(
                        f"{cls.label}: peak <= RSS before + 4x the image ({case})",
                        extra <= 4 * size,
                        f"+{extra / _MB:.0f} MiB = {extra / size:.1f}x the image",
                    )
                )
    return ScenarioResult(
        key="memory",
        title="Memory",
        description=(
            "One request carrying a ~20 MB image at detail=high, in a fresh process per "
            f"run ({reps} runs per client, median): everything is loaded by a small request "
            "first, then the peak RSS is reset and the big request made. Peak: peak RSS "
            "during the request minus RSS before it. Kept: RSS after it minus RSS before "
            "(our image cache keeps the prepared image for the next question). "
            + "; ".join(descriptions)
            + ". ChatSiliconVision's extra over our client is langchain-core's: "
            "`BaseChatModel` copies every base64 image block into a data URI for tracing "
            "(`_format_for_tracing`) on every call, with or without callbacks, and the "
            "message itself holds the block's base64."
        ),
        metrics=[
            Metric("case", "case", "{}", ratio=False),
            Metric("peak_mb", "peak over baseline (MiB)", "{:,.1f}", ratio=False),
            Metric("x_image", "x image size", "{:.2f}", ratio=False),
            Metric("kept_mb", "kept after (MiB)", "{:,.1f}", ratio=False),
        ],
        rows=rows,
        checks=checks,
    )
