"""Caption batches over 200 images under a seeded 30% of 429/503: the CLI and both loaders.

With enough retries every image is captioned exactly once (one 200 per image in the
emulator log, one record/document per image, each caption describing its own image).
With a retry budget too small for the faults, the failures are recorded per image
(after the retries), and a rerun completes only the missing images.

Each image has a unique width, so the emulator log (which keeps image metadata) and the
emulator's captions ("Image 1: WxH PNG ...") tell which image a request or caption is.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document as LCDocument
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from langchain_siliconvision import CaptionLoadError, ChatSiliconVision, SiliconVisionCaptionLoader
from llama_index_siliconvision import CaptionError, SiliconVision, SiliconVisionCaptionReader
from siliconvision.captions import load_done
from siliconvision.cli import main
from siliconvision.testing import LocalSiliconCloud, ReceivedRequest

from .conftest import QWEN, Figures, Traffic, png, traffic

N_IMAGES = 200
# 42 rows: Qwen-VL rounds 42/28 = 1.5 to 2 rows of 28, more than the image has, so no
# image is resized and every file goes as it is (requests are told apart by byte count).
HEIGHT = 42
FAULT_RATE = 0.3
RESILIENT = {"max_retries": 10, "retry_initial_delay": 0.002, "retry_max_delay": 0.01}
# Too small a budget for 30% faults: one SDK retry, one attempt per image (~9% fail).
FRAGILE = {"max_retries": 1, "retry_initial_delay": 0.002, "retry_max_delay": 0.01}
CONCURRENCY = 8
_SIZE = re.compile(r"Image 1: (\d+)x(\d+) PNG")


BASE_BYTES = 2048  # image i is a file of exactly BASE_BYTES + i bytes


def _padded_png(index: int) -> bytes:
    """A PNG of width 40 + index and exactly BASE_BYTES + index bytes (a tEXt pad chunk)."""
    size, color = (40 + index, HEIGHT), (index, 255 - index, 128)
    base = len(png(size, color))
    info = PngInfo()
    info.add_text("pad", "x" * (BASE_BYTES + index - base - 16))
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG", pnginfo=info)
    data = buffer.getvalue()
    assert len(data) == BASE_BYTES + index
    return data


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i in range(N_IMAGES):
        path = folder / f"img_{i:03d}.png"
        path.write_bytes(_padded_png(i))
        paths.append(path)
    return paths


_PAYLOAD = re.compile(r"data:image/png;base64,<(\d+) bytes>")


def _width_of(request: ReceivedRequest) -> str:
    """Which image a logged request carried, also for a faulted one (whose image the
    emulator did not decode): the redacted body keeps each payload's byte count."""
    sizes = _PAYLOAD.findall(json.dumps(request.body))
    assert len(sizes) == 1, request.body
    return str(40 + int(sizes[0]) - BASE_BYTES)


def _width(path: str | Path) -> str:
    return str(40 + int(Path(path).stem.split("_")[1]))


def _caption_width(caption: str) -> str:
    match = _SIZE.search(caption)
    assert match is not None, caption
    assert int(match.group(2)) == HEIGHT
    return match.group(1)


def _faulty(emu: LocalSiliconCloud, seed: int) -> None:
    emu.set_fault_rate(FAULT_RATE, statuses=(429, 503), seed=seed)


def _check_complete_once(
    emu: LocalSiliconCloud, captioned: dict[str, str], wanted: list[Path]
) -> dict[str, Any]:
    """``captioned`` maps path -> caption; every wanted image exactly once, its own caption."""
    assert sorted(captioned) == sorted(str(p) for p in wanted)
    wrong = [p for p, caption in captioned.items() if _caption_width(caption) != _width(p)]
    assert wrong == []
    keys = [_width(p) for p in wanted]
    seen = traffic(emu.requests, key=_width_of)
    assert seen.lost(keys) == [] and seen.duplicated(keys) == []
    assert set(seen.attempts_per_key) == set(keys) and seen.other_errors == 0
    return seen.figures(keys)


def _check_failures_recorded(
    emu: LocalSiliconCloud, ok: dict[str, str], failed: dict[str, str], images: list[Path]
) -> Traffic:
    """The lossy run recorded every image, failures with their error, after the retries."""
    keys = [_width(p) for p in images]
    first = traffic(emu.requests, key=_width_of)
    assert failed, "the fragile budget let every image through: the scenario proves nothing"
    assert sorted([*ok, *failed]) == sorted(str(p) for p in images)  # nothing unrecorded
    assert not set(ok) & set(failed)
    for path, error in failed.items():
        assert re.search(r"SiliconCloud HTTP (429|503)", error), error
        # after its retries: 1 request + 1 SDK retry, both faults, none answered 200
        assert first.attempts_per_key[_width(path)] == 2 and first.ok_per_key[_width(path)] == 0
    wrong = [p for p, caption in ok.items() if _caption_width(caption) != _width(p)]
    assert wrong == [] and first.duplicated(keys) == []
    return first


def _start_rerun(emu: LocalSiliconCloud) -> None:
    emu.clear()
    _faulty(emu, seed=99)  # the same faults during the rerun


def _check_rerun(
    emu: LocalSiliconCloud,
    first: Traffic,
    ok: dict[str, str],
    failed: dict[str, str],
    done: dict[str, str],
    images: list[Path],
    figures: Figures,
) -> None:
    """The rerun sent requests for the failed images only, and completed each once."""
    second = traffic(emu.requests, key=_width_of)
    assert set(second.attempts_per_key) == {_width(p) for p in failed}  # only the missing
    _check_complete_once(emu, done, [Path(p) for p in failed])
    assert sorted([*ok, *done]) == sorted(str(p) for p in images)
    figures.record(
        fragile_requests=first.requests,
        fragile_faults=first.faults,
        failed_after_retries=len(failed),
        rerun_requests=second.requests,
        rerun_faults=second.faults,
        lost=0,
        captioned_twice=0,
    )


# --------------------------------------------------------------------------- CLI


def _cli(out: Path, folder: Path, budget: dict[str, Any], attempts: int) -> int:
    return main(
        [
            "caption",
            str(folder),
            "--out",
            str(out),
            "--model",
            QWEN,
            "--concurrency",
            str(CONCURRENCY),
            "--max-attempts",
            str(attempts),
            "--max-retries",
            str(budget["max_retries"]),
            "--retry-delay",
            str(budget["retry_initial_delay"]),
            "--retry-max-delay",
            str(budget["retry_max_delay"]),
        ]
    )


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]


def test_cli_caption_batch_captions_every_image_exactly_once(
    emu: LocalSiliconCloud,
    images: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: Figures,
) -> None:
    monkeypatch.setenv("SILICONFLOW_API_KEY", emu.api_key)
    monkeypatch.setenv("SILICONFLOW_BASE_URL", emu.base_url)
    out = tmp_path / "captions.jsonl"
    _faulty(emu, seed=21)
    assert _cli(out, images[0].parent, RESILIENT, attempts=3) == 0
    records = _records(out)
    assert len(records) == N_IMAGES and all(r["error"] is None for r in records)
    captioned = {r["path"]: r["caption"] for r in records}
    figures.record(**_check_complete_once(emu, captioned, images))
    # A rerun of the same command has nothing left to do: no request at all.
    emu.clear()
    assert _cli(out, images[0].parent, RESILIENT, attempts=3) == 0
    assert emu.requests == []


def test_cli_records_failures_per_image_and_a_rerun_completes_only_them(
    emu: LocalSiliconCloud,
    images: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    figures: Figures,
) -> None:
    monkeypatch.setenv("SILICONFLOW_API_KEY", emu.api_key)
    monkeypatch.setenv("SILICONFLOW_BASE_URL", emu.base_url)
    out = tmp_path / "captions.jsonl"
    _faulty(emu, seed=22)
    assert _cli(out, images[0].parent, FRAGILE, attempts=1) == 1
    assert "rerun the same command" in capsys.readouterr().err
    first = _records(out)
    assert len(first) == N_IMAGES  # one record per image, failed or not
    for record in first:
        if record["error"] is not None:
            assert record["caption"] is None and record["attempts"] == 1
    ok = {r["path"]: r["caption"] for r in first if r["error"] is None}
    failed = {r["path"]: r["error"] for r in first if r["error"] is not None}
    first_traffic = _check_failures_recorded(emu, ok, failed, images)
    # The user reruns the same command (whole folder): only the failed images go out.
    _start_rerun(emu)
    assert _cli(out, images[0].parent, RESILIENT, attempts=3) == 0
    done = {r["path"]: r["caption"] for r in _records(out)[N_IMAGES:]}
    _check_rerun(emu, first_traffic, ok, failed, done, images, figures)
    done_keys = {r["key"] for r in _records(out) if r["error"] is None}
    assert load_done(out) == done_keys and len(done_keys) == N_IMAGES
    ok_records = [r["path"] for r in _records(out) if r["error"] is None]
    assert len(ok_records) == len(set(ok_records)) == N_IMAGES  # no image captioned twice


# --------------------------------------------------------------------------- LangChain


def _lc_llm(emu: LocalSiliconCloud, budget: dict[str, Any]) -> ChatSiliconVision:
    return ChatSiliconVision(model=QWEN, api_key=emu.api_key, base_url=emu.base_url, **budget)


async def _lc_load(loader: SiliconVisionCaptionLoader, mode: str) -> list[LCDocument]:
    if mode == "sync":
        return list(loader.lazy_load())
    return [doc async for doc in loader.alazy_load()]


async def _lc_load_partial(
    loader: SiliconVisionCaptionLoader, mode: str
) -> tuple[list[LCDocument], CaptionLoadError]:
    documents: list[LCDocument] = []
    with pytest.raises(CaptionLoadError) as info:
        if mode == "sync":
            for document in loader.lazy_load():
                documents.append(document)
        else:
            async for document in loader.alazy_load():
                documents.append(document)
    return documents, info.value


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_langchain_caption_loader_under_faults(
    emu: LocalSiliconCloud, images: list[Path], figures: Figures, mode: str
) -> None:
    folder = images[0].parent
    _faulty(emu, seed=31)
    resilient = _lc_llm(emu, RESILIENT)
    loader = SiliconVisionCaptionLoader(folder, llm=resilient, concurrency=CONCURRENCY)
    documents = await _lc_load(loader, mode)
    assert [d.metadata["image_path"] for d in documents] == [str(p) for p in images]  # in order
    captioned = {d.metadata["image_path"]: d.page_content for d in documents}
    complete = _check_complete_once(emu, captioned, images)
    figures.record(**{f"resilient_{k}": v for k, v in complete.items()})

    emu.clear()
    _faulty(emu, seed=32)
    fragile = SiliconVisionCaptionLoader(
        folder,
        llm=_lc_llm(emu, FRAGILE),
        concurrency=CONCURRENCY,
        max_attempts=1,
        on_error="raise",
    )
    good, error = await _lc_load_partial(fragile, mode)
    ok = {d.metadata["image_path"]: d.page_content for d in good}
    failed = {r.path: str(r.error) for r in error.failed}
    assert all(r.attempts == 1 and r.caption is None for r in error.failed)
    first = _check_failures_recorded(emu, ok, failed, images)
    # Rerun the failed images only (CaptionLoadError.failed names them).
    _start_rerun(emu)
    again = SiliconVisionCaptionLoader(
        [Path(p) for p in sorted(failed)], llm=resilient, concurrency=CONCURRENCY
    )
    done = {d.metadata["image_path"]: d.page_content for d in await _lc_load(again, mode)}
    _check_rerun(emu, first, ok, failed, done, images, figures)


# --------------------------------------------------------------------------- LlamaIndex


def _li_llm(emu: LocalSiliconCloud, budget: dict[str, Any]) -> SiliconVision:
    return SiliconVision(model=QWEN, api_key=emu.api_key, base_url=emu.base_url, **budget)


async def _li_load(reader: SiliconVisionCaptionReader, paths: Any, mode: str) -> list[Any]:
    if mode == "sync":
        return reader.load_data(paths)
    return await reader.aload_data(paths)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_llama_index_caption_reader_under_faults(
    emu: LocalSiliconCloud, images: list[Path], figures: Figures, mode: str
) -> None:
    folder = images[0].parent
    _faulty(emu, seed=41)
    resilient = _li_llm(emu, RESILIENT)
    reader = SiliconVisionCaptionReader(resilient, concurrency=CONCURRENCY)
    documents = await _li_load(reader, folder, mode)
    assert [d.metadata["image_path"] for d in documents] == [str(p) for p in images]  # in order
    captioned = {d.metadata["image_path"]: d.text for d in documents}
    complete = _check_complete_once(emu, captioned, images)
    figures.record(**{f"resilient_{k}": v for k, v in complete.items()})

    emu.clear()
    _faulty(emu, seed=42)
    fragile = SiliconVisionCaptionReader(
        _li_llm(emu, FRAGILE), concurrency=CONCURRENCY, max_attempts=1, on_error="raise"
    )
    with pytest.raises(CaptionError) as info:
        await _li_load(fragile, folder, mode)
    ok = {d.metadata["image_path"]: d.text for d in info.value.documents}
    failed = {r.path: str(r.error) for r in info.value.failures}
    assert fragile.failures == info.value.failures
    assert all(r.attempts == 1 and r.caption is None for r in info.value.failures)
    first = _check_failures_recorded(emu, ok, failed, images)
    # Rerun the failed images only (CaptionError.failures names them).
    _start_rerun(emu)
    rerun = await _li_load(reader, sorted(failed), mode)
    done = {d.metadata["image_path"]: d.text for d in rerun}
    _check_rerun(emu, first, ok, failed, done, images, figures)
