"""Import time of each integration, minus the import of its framework core.

Each figure comes from a fresh interpreter: import the framework core first, then
time the import of the package with ``time.perf_counter`` (median of several runs,
after one discarded run that writes the bytecode caches).
"""

from __future__ import annotations

import json
import os
import subprocess

from .._common import Check, Context, Metric, Row, ScenarioResult, median
from ._util import classes

LANGCHAIN_CORE = "langchain_core.language_models.chat_models"
LLAMA_INDEX_CORE = "llama_index.core"

#: key -> (framework core imported first, or "", the import measured)
CASES: dict[str, tuple[str, str]] = {
    "raw": ("", "openai"),
    "core": ("", "siliconvision.client"),
    "lc_ours": (LANGCHAIN_CORE, "langchain_siliconvision"),
    "li_ours": (LLAMA_INDEX_CORE, "llama_index_siliconvision"),
    "lc_openai": (LANGCHAIN_CORE, "langchain_openai"),
    "lc_siliconflow": (LANGCHAIN_CORE, "langchain_siliconflow"),
    "li_openailike": (LLAMA_INDEX_CORE, "llama_index.llms.openai_like"),
}
#: Diagnostic rows: our adapters when ``openai`` is already imported, i.e. what they
#: would cost if the ``openai`` SDK were imported lazily (on the first request).
WITHOUT_OPENAI: dict[str, tuple[str, str, str]] = {
    "lc_ours": ("lc_ours_no_sdk", f"{LANGCHAIN_CORE}, openai", "langchain_siliconvision"),
    "li_ours": ("li_ours_no_sdk", f"{LLAMA_INDEX_CORE}, openai", "llama_index_siliconvision"),
}

_CODE = """
import json, time
t0 = time.perf_counter()
{base}
t1 = time.perf_counter()
import {target}
t2 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1]))
"""


def _env(ctx: Context) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ctx.root), env.get("PYTHONPATH")]))
    return env


def _time(ctx: Context, base: str, target: str) -> tuple[float, float]:
    code = _CODE.format(base=f"import {base}" if base else "pass", target=target)
    proc = subprocess.run(
        [ctx.python, "-c", code],
        capture_output=True,
        text=True,
        cwd=ctx.root,
        env=_env(ctx),
        timeout=120,
        check=True,
    )
    base_s, target_s = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(base_s), float(target_s)


def importtime_top(ctx: Context, base: str, target: str, top: int = 12) -> str:
    """The slowest modules (cumulative) that ``import target`` adds after ``base``."""
    code = f"import {base}\nimport {target}" if base else f"import {target}"
    proc = subprocess.run(
        [ctx.python, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=ctx.root,
        env=_env(ctx),
        timeout=120,
        check=True,
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    entries = []
    for line in lines[1:]:  # the first line is the header
        self_us, cumulative_us, name = line.split(":", 1)[1].split("|", 2)
        entries.append((name.rstrip(), int(self_us), int(cumulative_us)))
    if base:
        base_end = max(i for i, e in enumerate(entries) if e[0].strip() == base)
        entries = entries[base_end + 1 :]
    entries.sort(key=lambda e: e[2], reverse=True)
    out = ["cumulative ms | self ms | module (indent = nesting)"]
    out += [f"{c / 1000:13.1f} | {s / 1000:7.1f} | {n}" for n, s, c in entries[:top]]
    return "\n".join(out)


def run(ctx: Context) -> ScenarioResult:
    reps = ctx.settings.import_reps
    available = {cls.key: cls for cls in classes(ctx, "imports")}
    rows: list[Row] = []
    for key, (base, target) in CASES.items():
        cls = available.get(key)
        if cls is None:
            continue
        if not ctx.settings.quick:
            _time(ctx, base, target)  # discarded: bytecode caches
        runs = [_time(ctx, base, target) for _ in range(reps)]
        rows.append(
            Row(
                key,
                cls.label,
                cls.group,
                {
                    "statement": f"`import {target}`",
                    "after": f"`import {base}`" if base else "(nothing)",
                    "base_ms": median([b for b, _ in runs]) * 1000,
                    "import_ms": median([t for _, t in runs]) * 1000,
                },
            )
        )
    for key, (row_key, base, target) in WITHOUT_OPENAI.items():
        cls = available.get(key)
        if cls is None:
            continue
        runs = [_time(ctx, base, target) for _ in range(reps)]
        rows.append(
            Row(
                row_key,
                f"{cls.label}, openai already imported",
                "diagnostic",
                {
                    "statement": f"`import {target}`",
                    "after": f"`import {base}`",
                    "base_ms": median([b for b, _ in runs]) * 1000,
                    "import_ms": median([t for _, t in runs]) * 1000,
                },
            )
        )
    result = ScenarioResult(
        key="imports",
        title="Import time",
        description=(
            f"Fresh interpreter per run, {reps} runs (median), after one discarded run. "
            "`import` of each integration timed after its framework core is already "
            f"imported: LangChain: `{LANGCHAIN_CORE}` (BaseChatModel and the message "
            f"types every chat model needs); LlamaIndex: `{LLAMA_INDEX_CORE}`. The last "
            "rows import `openai` first too: what our adapters would cost if the core "
            "imported the `openai` SDK lazily."
        ),
        metrics=[
            Metric("statement", "measured", "{}", ratio=False),
            Metric("after", "after", "{}", ratio=False),
            Metric("base_ms", "framework core (ms)", "{:.0f}", ratio=False),
            Metric("import_ms", "import (ms)", "{:.0f}", ratio=False),
        ],
        rows=rows,
    )
    for key in ("lc_ours", "li_ours"):
        row = result.row(key)
        if row is None:
            continue
        value = float(row.values["import_ms"])
        result.checks.append(
            Check(
                f"{row.label}: {row.values['statement']} minus its framework core <= 50 ms",
                value <= 50,
                f"{value:.0f} ms",
            )
        )
        if value > 50 and not ctx.settings.quick:
            base, target = CASES[key]
            result.profiles[f"import {target} (after import {base}), -X importtime"] = (
                importtime_top(ctx, base, target)
            )
    return result
