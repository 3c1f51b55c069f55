"""The benchmark harness runs end to end (tiny sizes, one repetition): no rot.

No timing is asserted: only that every scenario produced sane rows and that the
correctness columns (usage totals, bytes and images sent) are right. The harness
runs as a subprocess (``python -m benchmarks.run --quick``), exactly as ``make
bench`` runs it, with the clients installed here (peers are skipped when absent).
"""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {
    "overhead",
    "streaming",
    "photo_low",
    "photo_high",
    "repeated",
    "concurrency",
    "memory",
    "imaging",
    "pdf_scan",
    "imports",
    "ray_limits",
    "ray_prep",
}
#: Scenarios whose rows are not clients (the imaging candidates run our pipeline).
NOT_CLIENTS = {"imaging"}
OURS = ("core", "lc_ours", "li_ours")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--out",
            str(out / "RESULTS.md"),
            "--json",
            str(out / "results.json"),
            "--media-dir",
            str(out / "media"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    data["markdown"] = (out / "RESULTS.md").read_text()
    data["media"] = out / "media" / "quick"
    return data


def _scenario(report: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in report["scenarios"] if s["key"] == key)


def _rows(report: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {row["key"]: row["values"] for row in _scenario(report, key)["rows"]}


def test_every_scenario_ran_with_the_baseline_and_ours(report: dict[str, Any]) -> None:
    assert {s["key"] for s in report["scenarios"]} == SCENARIOS
    for scenario in report["scenarios"]:
        assert scenario["rows"], scenario["key"]
        assert not any(c["detail"] == "crashed" for c in scenario["checks"]), scenario["notes"]
        keys = {row["key"].split(":")[0] for row in scenario["rows"]}
        assert scenario["key"] in NOT_CLIENTS or "core" in keys, scenario["key"]
    assert report["meta"]["quick"] is True
    assert "## Targets" in report["markdown"] and "raw openai SDK" in report["markdown"]
    for check in (c for s in report["scenarios"] for c in s["checks"]):
        assert check["passed"] in (True, False, None)


def test_timings_are_positive_numbers(report: dict[str, Any]) -> None:
    for key, metric in [
        ("overhead", "wall_ms"),
        ("overhead", "cpu_ms"),
        ("streaming", "ttfc_ms"),
        ("streaming", "per_chunk_us"),
        ("photo_low", "wall_ms"),
        ("photo_low", "uplink_ms"),
        ("photo_high", "wall_ms"),
        ("photo_high", "uplink_ms"),
        ("photo_high", "upload_ms"),
        ("concurrency", "wall_ms"),
        ("imports", "import_ms"),
    ]:
        for row_key, values in _rows(report, key).items():
            value = values[metric]
            assert isinstance(value, (int, float)) and value > 0 and math.isfinite(value), (
                key,
                row_key,
                metric,
            )


def test_streaming_usage_totals_are_right_for_ours_and_the_sdk(report: dict[str, Any]) -> None:
    rows = _rows(report, "streaming")
    question = "Tell me a long story."
    chunks = rows["raw"]["chunks"]
    expected = 4 + math.ceil(len(question.encode()) / 4) + chunks  # the emulator's rule
    assert rows["raw"]["total"] == expected
    for key in OURS:
        if key in rows:
            assert rows[key]["chunks"] == chunks
            assert rows[key]["total"] == expected
            assert rows[key]["correct"] == "yes"


def test_bytes_sent_match_what_each_client_should_send(report: dict[str, Any]) -> None:
    from siliconvision.images import prepare_image

    media: Path = report["media"]
    model = "Qwen/Qwen2.5-VL-72B-Instruct"
    cases = [("photo_low", "photo.jpg", "low"), ("photo_high", "huge.jpg", "high")]
    for key, name, detail in cases:
        rows = _rows(report, key)
        path = media / name
        original = path.stat().st_size
        b64 = len(base64.b64encode(path.read_bytes()))
        raw = rows["raw"]
        assert raw["image_kb"] * 1024 == original  # the file, as it is
        assert b64 <= raw["body_kb"] * 1024 <= b64 + 2048  # its base64 plus a little JSON
        prepared = prepare_image(path, model=model, detail=detail, cache=None)
        for our_key in OURS:
            if our_key not in rows:
                continue
            ours = rows[our_key]
            assert ours["sent"] == f"{prepared.width}x{prepared.height}"
            assert ours["image_kb"] * 1024 == prepared.byte_size
            assert ours["body_kb"] * 1024 <= len(prepared.url) + 2048
            if key == "photo_low":  # 1600x1200 sent as 597x448 (aspect kept, 448 rows)
                assert ours["body_kb"] < raw["body_kb"] / 5


def test_concurrency_answered_everything_and_repeated_reports_speedups(
    report: dict[str, Any],
) -> None:
    for values in _rows(report, "concurrency").values():
        assert values["answered"] == 8  # the quick run's batch
    repeated = _rows(report, "repeated")
    for key in OURS:
        if f"{key}:low" in repeated:
            assert repeated[f"{key}:low"]["speedup"] > 0
            assert repeated[f"{key}:low"]["cached_total_ms"] > 0
    for values in _rows(report, "memory").values():
        assert values["peak_mb"] >= 0


def test_ray_batches_caption_every_image_within_the_limits(report: dict[str, Any]) -> None:
    ours = _rows(report, "ray_limits")["core"]
    assert (ours["captioned"], ours["failed"], ours["refused"]) == (12, 0, 0)  # quick: 12 images
    assert ours["requests"] == 12 and ours["outcome"] == "finished"
    prep = _rows(report, "ray_prep")["core:low"]
    for metric in ("images_per_core_s", "peak_mib", "sent_kib", "wall_s"):
        assert isinstance(prep[metric], (int, float)) and prep[metric] > 0, metric


def test_imaging_candidates_send_what_the_server_keeps(report: dict[str, Any]) -> None:
    from PIL import Image

    from siliconvision.tokens import client_target_size

    scenario = _scenario(report, "imaging")
    media: Path = report["media"]
    cells: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in scenario["rows"]:
        megapixels, fmt, detail, candidate = row["key"].split(":")
        cells.setdefault((f"{megapixels}:{fmt}", detail), {})[candidate] = row["values"]
    assert len(cells) == 18  # 3 sizes x 3 formats x 2 details
    for (image, detail), rows in cells.items():
        assert {"pillow_before", "pillow_reduce", "original", "floor_pillow"} <= set(rows)
        megapixels, fmt = image.split(":")
        width, height = {"12": (800, 600), "24": (1200, 800), "48": (1600, 1200)}[megapixels]
        path = media / f"grid-{width}x{height}.{fmt.lower()}"
        with Image.open(path) as img:
            assert img.format == fmt and img.size == (width, height)
        target = client_target_size(
            width, height, model="Qwen/Qwen2.5-VL-72B-Instruct", detail=detail
        )  # type: ignore[arg-type]
        expected = "{}x{}".format(*(target or (width, height)))
        for key, values in rows.items():
            assert values["wall_ms"] > 0 and values["cpu_ms"] >= 0, (image, detail, key)
            if key.startswith("floor"):
                continue
            sent = expected if key != "original" else f"{width}x{height}"
            assert values["sent"] == sent, (image, detail, key)
            assert values["out_kb"] > 0
        assert rows["original"]["out_kb"] * 1024 == path.stat().st_size
    (floor,) = [c for c in scenario["checks"] if "DCT-scaled decode" in c["target"]]
    assert floor["passed"] in (True, False)


def test_pdf_pages_are_sent_at_the_size_kept_with_the_same_tokens(report: dict[str, Any]) -> None:
    rows = _rows(report, "pdf_scan")
    for detail in ("low", "high"):
        ours, png, jpeg = (rows[f"{k}:{detail}"] for k in ("core", "by_hand_png", "by_hand_jpeg"))
        assert ours["pages"] == png["pages"] == jpeg["pages"] == 3  # quick: 3 pages
        assert ours["tokens"] == png["tokens"] == jpeg["tokens"] > 0
        assert ours["body_mb"] < png["body_mb"]
        assert png["sent"] == jpeg["sent"] == "1653x2339"  # 200 dpi A4, by hand
    assert rows["core:low"]["sent"] == "448x634"  # 448 on the shorter side
    assert rows["core:low"]["body_mb"] < rows["by_hand_jpeg:low"]["body_mb"]
