"""The ``siliconvision`` CLI, run in-process against LocalSiliconCloud (real HTTP)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from siliconvision.catalog import CATALOG
from siliconvision.cli import main
from siliconvision.testing import LocalSiliconCloud

SECRET = "sk-test-DO-NOT-PRINT-4f1c2a9e"


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalSiliconCloud]:
    """An emulator the CLI is pointed at through the environment, like a real server."""
    with LocalSiliconCloud(api_key=SECRET, extra_models=["acme/brand-new-vl"]) as emulator:
        monkeypatch.setenv("SILICONFLOW_API_KEY", SECRET)
        monkeypatch.setenv("SILICONFLOW_BASE_URL", emulator.base_url)
        yield emulator


def png(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def chat_requests(emu: LocalSiliconCloud) -> list:  # type: ignore[type-arg]
    return [r for r in emu.requests if r.path.endswith("/chat/completions")]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert SECRET not in out and SECRET not in err  # the key never shows
    assert "Traceback" not in err
    return code, out, err


def read_jsonl(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- ask


@pytest.mark.parametrize("stream", [False, True])
def test_ask_describes_each_image_in_order(
    tmp_path: Path, emu: LocalSiliconCloud, capsys: pytest.CaptureFixture[str], stream: bool
) -> None:
    red = png(tmp_path / "red.png", (64, 32), (255, 0, 0))
    blue = png(tmp_path / "blue.png", (40, 50), (0, 0, 255))
    args = ["ask", red, blue, "-q", "Which is bigger?", "--detail", "low"]
    code, out, err = run(capsys, *args, *(["--stream"] if stream else []))
    assert code == 0, err
    assert "emulator" not in err  # a key is set: no local-emulator notice
    first = out.index("Image 1: 64x32 PNG, detail low, dominant colour #ff0000 (red).")
    second = out.index("Image 2: 40x50 PNG, detail low, dominant colour #0000ff (blue).")
    assert first < second < out.index('Text: "Which is bigger?"')
    assert out.endswith("\n")
    (request,) = chat_requests(emu)
    assert request.stream is stream
    assert [(i.width, i.height) for i in request.images] == [(64, 32), (40, 50)]


def test_ask_image_order_and_model(
    tmp_path: Path, emu: LocalSiliconCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    red = png(tmp_path / "red.png", (30, 30), (255, 0, 0))
    code, _, err = run(capsys, "ask", red, "-q", "Q?", "--model", "OpenGVLab/InternVL2-26B")
    assert code == 0, err
    code, _, err = run(
        capsys, "ask", red, "-q", "Q?", "--model", "Qwen/Qwen2.5-VL-7B-Instruct",
        "--image-order", "preserve",
    )  # fmt: skip
    assert code == 0, err
    internvl, qwen = chat_requests(emu)
    assert internvl.model == "OpenGVLab/InternVL2-26B"
    kinds = [part["type"] for part in internvl.body["messages"][0]["content"]]
    assert kinds == ["image_url", "text"]
    assert qwen.model == "Qwen/Qwen2.5-VL-7B-Instruct"


def test_ask_without_key_uses_the_local_emulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    red = png(tmp_path / "red.png", (20, 20), (255, 0, 0))
    code, out, err = run(capsys, "ask", red, "-q", "Colour?")
    assert code == 0, err
    assert "local emulator" in err and "not real model output" in err
    assert "I see 1 image." in out and "20x20 PNG" in out and "(red)" in out


def test_ask_emulator_flag_uses_the_emulator_even_with_a_key(
    tmp_path: Path, emu: LocalSiliconCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    red = png(tmp_path / "red.png", (20, 20), (255, 0, 0))
    code, out, err = run(capsys, "ask", red, "-q", "Colour?", "--emulator")
    assert code == 0, err
    assert "--emulator" in err and "not real model output" in err
    assert "20x20 PNG" in out
    assert emu.requests == []  # the configured server got nothing


def test_bad_input_exits_2_with_one_clear_line(
    tmp_path: Path, emu: LocalSiliconCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    red = png(tmp_path / "red.png", (20, 20), (255, 0, 0))
    cases = [
        (["ask", tmp_path / "missing.png", "-q", "Q"], "missing.png"),
        (["ask", text, "-q", "Q"], "not an image"),
        (["ask", red, "-q", "Q", "--detail", "medium"], "invalid choice: 'medium'"),
        (["ask", red, "-q", "Q", "--model", "Qwen/Qwen2.5-7B-Instruct"], "does not take images"),
        (["ask", red], "-q/--question"),
        (["caption", tmp_path / "nowhere", "--out", tmp_path / "o.jsonl"], "nowhere"),
        (["caption", red, "--out", tmp_path / "o.jsonl", "--concurrency", "0"], "at least 1"),
        (["caption", red, "--out", tmp_path / "o.jsonl", "--model", "BAAI/bge-m3"], "take images"),
    ]
    for argv, expected in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2, (argv, err)
        assert expected in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
        assert out == ""
    assert chat_requests(emu) == []
    assert not (tmp_path / "o.jsonl").exists()


def test_api_errors_exit_1_with_status_and_text(
    tmp_path: Path, emu: LocalSiliconCloud, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    red = png(tmp_path / "red.png", (20, 20), (255, 0, 0))
    balance = {"code": 30001, "message": "Sorry, your account balance is insufficient"}
    emu.fail_next(403, balance)  # not retried by the SDK
    code, out, err = run(capsys, "ask", red, "-q", "Q")
    assert code == 1 and out == ""
    assert "HTTP 403" in err and "30001" in err and "balance is insufficient" in err
    assert len(err.strip().splitlines()) == 1
    emu.clear()
    monkeypatch.setenv("SILICONFLOW_API_KEY", "sk-wrong-key-ALSO-SECRET")
    code, out, err = run(capsys, "ask", red, "-q", "Q", "--stream")
    assert code == 1 and "HTTP 401" in err and "Invalid token" in err
    assert "sk-wrong-key-ALSO-SECRET" not in out + err


# --------------------------------------------------------------------------- caption


def test_caption_writes_jsonl_and_resumes(
    tmp_path: Path, emu: LocalSiliconCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    png(photos / "a.png", (30, 20), (255, 0, 0))
    png(photos / "sub" / "b.png", (31, 20), (0, 128, 0))
    png(photos / "c.jpg", (32, 20), (0, 0, 255))
    (photos / "readme.txt").write_text("not an image, not picked up")
    out_file = tmp_path / "out" / "captions.jsonl"

    code, out, err = run(capsys, "caption", photos, "--out", out_file, "--concurrency", "2")
    assert code == 0, err
    assert "[3/3] captioned 3, failed 0" in err  # not a TTY: plain progress lines
    assert "\r" not in err
    records = read_jsonl(out_file)
    assert sorted(Path(r["path"]).name for r in records) == ["a.png", "b.png", "c.jpg"]
    assert all(r["error"] is None and "I see 1 image." in r["caption"] for r in records)
    assert {(r["width"], r["mime_type"]) for r in records} == {
        (30, "image/png"), (31, "image/png"), (32, "image/jpeg"),
    }  # fmt: skip
    assert len(chat_requests(emu)) == 3

    # A new image appears; the rerun captions only that one.
    emu.clear()
    png(photos / "d.png", (33, 20), (255, 255, 0))
    code, out, err = run(capsys, "caption", photos, "--out", out_file)
    assert code == 0, err
    assert "3 already captioned" in err and out == ""
    (request,) = chat_requests(emu)
    assert (request.images[0].width, request.images[0].height) == (33, 20)
    assert len(read_jsonl(out_file)) == 4

    # Nothing left to do: no request at all.
    emu.clear()
    code, _, err = run(capsys, "caption", photos, "--out", out_file)
    assert code == 0 and "nothing to do" in err
    assert emu.requests == []


def test_caption_records_a_failure_and_the_rerun_completes_only_it(
    tmp_path: Path, emu: LocalSiliconCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    for i in range(3):
        png(photos / f"{i}.png", (40 + i, 20), (255, 0, 0))
    out_file = tmp_path / "captions.jsonl"
    emu.fail_next(400)  # the first image (concurrency 1, sorted order) is refused
    code, out, err = run(capsys, "caption", photos, "--out", out_file, "--concurrency", "1")
    assert code == 1 and out == ""
    assert "captioned 2, failed 1" in err and "HTTP 400" in err and "0.png" in err
    records = read_jsonl(out_file)
    assert [Path(r["path"]).name for r in records if r["error"]] == ["0.png"]

    emu.clear()
    code, _, err = run(capsys, "caption", photos, "--out", out_file)
    assert code == 0, err
    (request,) = chat_requests(emu)
    assert request.images[0].width == 40  # only 0.png was sent again
    records = read_jsonl(out_file)
    assert len(records) == 4 and records[-1]["error"] is None
    assert Path(records[-1]["path"]).name == "0.png"


def test_caption_resumes_after_a_truncated_last_line(
    tmp_path: Path, emu: LocalSiliconCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    a = png(photos / "a.png", (30, 20), (255, 0, 0))
    b = png(photos / "b.png", (31, 20), (0, 0, 255))
    out_file = tmp_path / "captions.jsonl"
    code, _, err = run(capsys, "caption", a, "--out", out_file)  # a is done
    assert code == 0, err
    (record_a,) = read_jsonl(out_file)
    cut = json.dumps({**record_a, "path": str(b)})
    out_file.write_text(out_file.read_text() + cut[:20])  # interrupted mid-write
    emu.clear()
    code, _, err = run(capsys, "caption", photos, "--out", out_file)
    assert code == 0, err
    (request,) = chat_requests(emu)
    assert request.images[0].width == 31
    lines = out_file.read_text().splitlines()
    assert lines[1] == cut[:20]  # the fragment is left alone, on its own line
    assert json.loads(lines[2])["path"] == str(b)


def test_caption_without_key_refuses_unless_the_emulator_is_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png(tmp_path / "p" / "a.png", (30, 20), (255, 0, 0))
    out_file = tmp_path / "o.jsonl"
    code, out, err = run(capsys, "caption", tmp_path / "p", "--out", out_file)
    assert code == 2 and out == ""
    assert "SILICONFLOW_API_KEY" in err and "--emulator" in err
    assert len(err.strip().splitlines()) == 1, err
    assert not out_file.exists()  # nothing written, no emulator started

    code, _, err = run(capsys, "caption", tmp_path / "p", "--out", out_file, "--emulator")
    assert code == 0, err
    assert "local emulator" in err and "not real model output" in err
    (record,) = read_jsonl(out_file)
    assert "30x20 PNG" in record["caption"]
    assert record["backend"] == "emulator"  # marked as such in the file


@contextlib.contextmanager
def _emulator_process() -> Iterator[str]:
    """An independent SiliconCloud stand-in: `siliconvision emulator` in its own process
    (so this process does not know it is an emulator). Yields its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SILICON",))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "siliconvision", "emulator"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base_url = line.rsplit(" ", 1)[-1].strip()
        assert base_url.startswith("http://127.0.0.1:"), line
        yield base_url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_emulator_output_never_counts_as_done_for_siliconcloud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    png(photos / "a.png", (30, 20), (255, 0, 0))
    png(photos / "b.png", (31, 20), (0, 0, 255))
    out_file = tmp_path / "captions.jsonl"
    code, _, err = run(capsys, "caption", photos, "--out", out_file, "--emulator")
    assert code == 0, err
    assert [r["backend"] for r in read_jsonl(out_file)] == ["emulator", "emulator"]

    with _emulator_process() as base_url:
        monkeypatch.setenv("SILICONFLOW_API_KEY", "sk-local-emulator")
        monkeypatch.setenv("SILICONFLOW_BASE_URL", base_url)
        code, _, err = run(capsys, "caption", photos, "--out", out_file)
        assert code == 0, err
        assert "already captioned" not in err  # the emulator's records count for nothing
        records = read_jsonl(out_file)
        assert len(records) == 4
        assert {r["backend"] for r in records[2:]} == {base_url}
        assert {Path(r["path"]).name for r in records[2:]} == {"a.png", "b.png"}
        # ... while this backend's own records do count.
        code, _, err = run(capsys, "caption", photos, "--out", out_file)
        assert code == 0 and "nothing to do" in err
        assert len(read_jsonl(out_file)) == 4


def test_changing_model_prompt_detail_or_bytes_recaptions(
    tmp_path: Path, emu: LocalSiliconCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    a = png(photos / "a.png", (30, 20), (255, 0, 0))
    png(photos / "b.png", (31, 20), (0, 0, 255))
    out_file = tmp_path / "captions.jsonl"

    def sent(*extra: str) -> list[tuple[int, str, str | None]]:
        emu.clear()
        code, _, err = run(capsys, "caption", photos, "--out", out_file, *extra)
        assert code == 0, err
        return sorted(
            (r.images[0].width, r.model or "", r.images[0].detail) for r in chat_requests(emu)
        )

    qwen = "Qwen/Qwen2.5-VL-72B-Instruct"
    assert sent() == [(30, qwen, "high"), (31, qwen, "high")]
    assert sent() == []  # the same command: nothing to do
    assert sent("--prompt", "List the colours.") == [(30, qwen, "high"), (31, qwen, "high")]
    assert sent("--prompt", "List the colours.") == []
    other = "Qwen/Qwen2.5-VL-7B-Instruct"
    assert sent("--model", other) == [(30, other, "high"), (31, other, "high")]
    assert sent("--detail", "low") == [(30, qwen, "low"), (31, qwen, "low")]
    assert sent() == []  # every earlier combination is still done
    png(a, (40, 20), (255, 0, 0))  # a.png's bytes changed
    assert sent() == [(40, qwen, "high")]
    records = read_jsonl(out_file)
    assert len(records) == 9
    for record in records:
        assert record["backend"] == "emulator" and record["key"]
        assert record["model"] in (qwen, other) and record["detail"] in ("high", "low")
        assert record["prompt"] and len(record["image_sha256"]) == 64
    assert len({r["key"] for r in records}) == 9


def test_caption_rpm_paces_the_batch_within_the_servers_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from siliconvision.ratelimit import RateLimits

    photos = tmp_path / "photos"
    for i in range(6):
        png(photos / f"{i}.png", (30 + i, 20), (255, 0, 0))
    fragile = ["--concurrency", "6", "--max-attempts", "1", "--max-retries", "0"]
    # The server allows 4 requests in any 1-second window.
    with LocalSiliconCloud(api_key=SECRET, rate_limits=RateLimits(rpm=240, window=1.0)) as emu:
        monkeypatch.setenv("SILICONFLOW_API_KEY", SECRET)
        monkeypatch.setenv("SILICONFLOW_BASE_URL", emu.base_url)
        code, _, err = run(capsys, "caption", photos, "--out", tmp_path / "a.jsonl", *fragile)
        refused = emu.rate_stats()["Qwen/Qwen2.5-VL-72B-Instruct"].refused
        assert code == 1 and refused > 0 and "RPM limit reached" in err  # 6 at once: too many
        emu.clear()
        code, _, err = run(
            capsys, "caption", photos, "--out", tmp_path / "b.jsonl", *fragile, "--rpm", "120"
        )
        assert code == 0, err
        assert "within 120 RPM" in err
        stats = emu.rate_stats()["Qwen/Qwen2.5-VL-72B-Instruct"]
        assert (stats.accepted, stats.refused) == (6, 0)
        assert stats.request_cap is not None and stats.peak_requests <= stats.request_cap
    assert len(read_jsonl(tmp_path / "b.jsonl")) == 6


# --------------------------------------------------------------------------- models


def test_models_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "models")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "VISION", "VIDEO", "TOOLS", "REASONING", "IMAGE", "ORDER",
                                "CONTEXT"]  # fmt: skip
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert set(rows) == set(CATALOG)
    assert rows["OpenGVLab/InternVL2-26B"] == ["yes", "-", "-", "-", "images_first", "32K"]
    assert rows["Qwen/Qwen3-VL-8B-Thinking"] == ["yes", "yes", "yes", "always", "preserve", "256K"]


def test_models_remote_marks_served_and_unknown_ids(
    emu: LocalSiliconCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "models", "--remote")
    assert code == 0, err
    assert out.splitlines()[0].split()[-1] == "SERVED"
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1 : len(CATALOG) + 1]}
    assert set(rows) == set(CATALOG)
    assert all(row[-1] == "yes" for row in rows.values())  # the emulator serves the catalog
    assert "Served but not in the catalog (1" in out
    assert "  acme/brand-new-vl" in out
    (request,) = emu.requests
    assert request.path == "/v1/models"


def test_models_remote_without_key_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "models", "--remote")
    assert code == 2 and out == ""
    assert "needs SILICONFLOW_API_KEY" in err and "siliconvision emulator" in err


# --------------------------------------------------------------------------- emulator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_emulator_command_serves_until_ctrl_c(capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    served: list[int] = []

    def poke_then_interrupt() -> None:
        url = f"http://127.0.0.1:{port}/v1/models"
        request = urllib.request.Request(url, headers={"Authorization": "Bearer sk-local-emulator"})
        for _ in range(200):
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    served.append(response.status)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.02)
        time.sleep(0.2)  # let the banner finish printing
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    helper = threading.Thread(target=poke_then_interrupt)
    helper.start()
    code, out, err = run(capsys, "emulator", "--port", str(port))
    helper.join()
    assert code == 0 and served == [200]
    assert f"http://127.0.0.1:{port}/v1" in out
    assert f"SILICONFLOW_BASE_URL=http://127.0.0.1:{port}/v1" in out
    assert "SILICONFLOW_API_KEY=sk-local-emulator" in out
    assert "stopped" in err


# --------------------------------------------------------------------------- subprocess


def test_python_dash_m_ask_without_key(tmp_path: Path) -> None:
    red = png(tmp_path / "red.png", (24, 24), (255, 0, 0))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SILICONFLOW_API_KEY", "SILICONCLOUD_API_KEY", "SILICONFLOW_BASE_URL")
    }
    proc = subprocess.run(
        [sys.executable, "-m", "siliconvision", "ask", str(red), "-q", "What colour?", "--stream"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "local emulator" in proc.stderr
    assert "I see 1 image." in proc.stdout and "24x24 PNG" in proc.stdout
    assert "(red)" in proc.stdout and 'Text: "What colour?"' in proc.stdout
