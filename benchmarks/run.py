"""Run every benchmark side by side and write ``benchmarks/RESULTS.md``.

    python -m benchmarks.run                 # everything (what ``make bench`` runs)
    python -m benchmarks.run --quick         # tiny sizes, one repetition (smoke test)
    python -m benchmarks.run --only overhead,streaming --out /tmp/r.md --json /tmp/r.json

Clients that are not installed are skipped and said so; the peers need their own
virtual environment (``make bench`` makes ``.venv-bench``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ._common import Check, Context, ScenarioResult, Settings
from ._media import make_media
from ._server import EmulatorProcess
from ._variants import all_variants, available_variants

__all__ = ["main", "render_markdown", "run"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "RESULTS.md"
PACKAGES = (
    "siliconvision",
    "openai",
    "httpx",
    "httpx2",
    "pydantic",
    "pillow",
    "langchain-core",
    "langchain-openai",
    "langchain-siliconflow",
    "llama-index-core",
    "llama-index-llms-openai",
    "llama-index-llms-openai-like",
)


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    memory = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "packages": {name: v for name in PACKAGES if (v := _version(name)) is not None},
    }


def run(
    *,
    quick: bool = False,
    only: Sequence[str] | None = None,
    variant_keys: set[str] | None = None,
    media_dir: Path | None = None,
    log: Any = None,
) -> tuple[list[ScenarioResult], dict[str, Any]]:
    """Run the scenarios; returns their results and the run's metadata."""
    from .scenarios import SCENARIOS

    def say(text: str) -> None:
        if log is not None:
            print(text, file=log, flush=True)

    names = list(only) if only else list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}")
    variants = available_variants(variant_keys)
    if not variants or variants[0].key != "raw":
        raise SystemExit("the raw openai SDK baseline must be available")
    missing = [v.label for v in all_variants() if not v.available()]
    settings = Settings.for_run(quick)
    started = time.perf_counter()
    say("preparing images ...")
    media = make_media(media_dir, quick=quick)
    results: list[ScenarioResult] = []
    with EmulatorProcess() as server:
        ctx = Context(server, media, variants, settings, sys.executable, ROOT)
        for name in names:
            say(f"running {name} ...")
            t0 = time.perf_counter()
            try:
                result = SCENARIOS[name](ctx)
            except Exception:
                say(traceback.format_exc())
                result = ScenarioResult(
                    name,
                    name,
                    "The scenario failed: see the traceback below.",
                    [],
                    [],
                    [Check(f"{name}: ran", False, "crashed")],
                    notes=["```\n" + traceback.format_exc() + "```"],
                )
            result.seconds = time.perf_counter() - t0
            say(f"  {name}: {result.seconds:.1f} s")
            results.append(result)
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "seconds": time.perf_counter() - started,
        "machine": machine_info(),
        "variants": [v.label for v in variants],
        "missing": missing,
        "command": "python -m benchmarks.run" + (" --quick" if quick else ""),
    }
    return results, meta


def _cell(result: ScenarioResult, row_key: str, metric: Any) -> str:
    value = result.value(row_key, metric.key)
    if value is None:
        return "-"
    text = metric.fmt.format(value) if isinstance(value, (int, float)) else str(value)
    if metric.ratio and row_key != "raw":
        ratio = result.ratio(row_key, metric.key)
        if ratio is not None:
            text += f" ({ratio:.2f}x)"
    return text


def _verdict(check: Check) -> str:
    return {True: "met", False: "**NOT MET**", None: "n/a"}[check.passed]


def render_markdown(results: list[ScenarioResult], meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{meta['command']}` (`make bench`) on {meta['date']} in "
        f"{meta['seconds']:.0f} s. Every client ran in this one process against the same "
        "`LocalSiliconCloud` (in its own process, on 127.0.0.1), with the same payloads. "
        "Figures are medians; `(1.05x)` is the ratio to the raw `openai` SDK in the same run.",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']}; "
        f"{machine['platform']}; Python {machine['python']}",
        "- Packages: "
        + ", ".join(f"{name} {version}" for name, version in machine["packages"].items()),
        "- Clients: " + ", ".join(meta["variants"]),
    ]
    if meta["missing"]:
        lines.append("- Not installed here, so not measured: " + ", ".join(meta["missing"]))
    if meta["quick"]:
        lines.append("- **Quick run** (tiny sizes, one repetition): not for quoting.")
    lines += [
        "",
        "## Targets",
        "",
        "| scenario | target | result | measured |",
        "|---|---|---|---|",
    ]
    for result in results:
        for check in result.checks:
            lines.append(
                f"| {result.title} | {check.target} | {_verdict(check)} | {check.detail} |"
            )
    for result in results:
        lines += ["", f"## {result.title}", "", result.description, ""]
        if result.rows:
            header = [result.row_title, *(m.title for m in result.metrics)]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            for row in result.rows:
                name = {
                    "ours": f"**{row.label}**",
                    "floor": f"_{row.label}_",
                    "diagnostic": f"_{row.label}_",
                }.get(row.group, row.label)
                cells = [_cell(result, row.key, m) for m in result.metrics]
                lines.append("| " + " | ".join([name, *cells]) + " |")
        for note in result.notes:
            lines += ["", note]
        for title, profile in result.profiles.items():
            lines += [
                "",
                f"<details><summary>Profile: {title}</summary>",
                "",
                "```",
                profile,
                "```",
                "</details>",
            ]
        lines += ["", f"_{result.seconds:.1f} s_"]
    return "\n".join(lines) + "\n"


def to_json(results: list[ScenarioResult], meta: dict[str, Any]) -> dict[str, Any]:
    return {"meta": meta, "scenarios": [asdict(r) for r in results]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--only", help="comma-separated scenarios (default: all)")
    parser.add_argument("--variants", help="comma-separated client keys (default: all installed)")
    parser.add_argument("--out", type=Path, default=None, help="Markdown report path")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument("--media-dir", type=Path, default=None, help="where test images go")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    keys = {s.strip() for s in args.variants.split(",") if s.strip()} if args.variants else None
    if keys is not None:
        keys.add("raw")
    results, meta = run(
        quick=args.quick, only=only, variant_keys=keys, media_dir=args.media_dir, log=sys.stderr
    )
    out = args.out or (DEFAULT_OUT if not args.quick else None)
    markdown = render_markdown(results, meta)
    if out is not None:
        out.write_text(markdown, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(markdown)
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(results, meta), indent=1, default=str))
    failed = [c for r in results for c in r.checks if c.passed is False]
    print(f"{len(failed)} target(s) not met", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
