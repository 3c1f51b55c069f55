"""PDFs in the caption engine, the CLI and the loaders: one record per page, keyed per
page (one key rule), resumed page by page; against LocalSiliconCloud."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from siliconvision.captions import (
    DEFAULT_CAPTION_PROMPT,
    caption_images,
    caption_key,
    image_identity,
    iter_image_files,
    load_done,
)
from siliconvision.cli import main
from siliconvision.client import SiliconVisionClient
from siliconvision.images import PdfOptions
from siliconvision.testing import LocalSiliconCloud, PdfPage, make_pdf

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
SECRET = "sk-test-DO-NOT-PRINT-9b1d"
COLOURS = {"red": (255, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 255)}


def coloured(*names: str) -> bytes:
    return make_pdf([PdfPage(rects=[((0, 0, 595, 842), COLOURS[n])]) for n in names])


def chat_requests(emu: LocalSiliconCloud) -> list:  # type: ignore[type-arg]
    return [r for r in emu.requests if r.path.endswith("/chat/completions")]


@pytest.fixture
def client(emulator: LocalSiliconCloud) -> Iterator[SiliconVisionClient]:
    with SiliconVisionClient(
        api_key=emulator.api_key, base_url=emulator.base_url, model=QWEN, detail="low"
    ) as made:
        yield made


def test_one_record_per_page_each_request_one_page(
    client: SiliconVisionClient, emulator: LocalSiliconCloud, tmp_path: Path
) -> None:
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(coloured("red", "green", "blue"))
    records = list(caption_images(client, [pdf], concurrency=3, ordered=True))
    assert [r.page for r in records] == [1, 2, 3] and all(r.ok for r in records)
    assert [r.path for r in records] == [str(pdf)] * 3
    assert {(r.width, r.height, r.mime_type) for r in records} == {(448, 634, "image/png")}
    # each request carried one page, and the pages were the document's own
    seen = sorted((len(r.images), r.images[0].color_name) for r in chat_requests(emulator))
    assert seen == [(1, "blue"), (1, "green"), (1, "red")]
    # the key: the one rule, the PDF's bytes plus the page (and the resolution read at)
    identity = image_identity(pdf.read_bytes())
    assert [r.key for r in records] == [
        caption_key(
            identity, model=QWEN, prompt=DEFAULT_CAPTION_PROMPT, detail="low", page=n, dpi=200.0
        )
        for n in (1, 2, 3)
    ]
    assert len({r.key for r in records}) == 3
    assert all(r.image_sha256 == identity.partition(":")[2] for r in records)


def test_done_pages_are_skipped_and_pages_select(
    client: SiliconVisionClient, emulator: LocalSiliconCloud, tmp_path: Path
) -> None:
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(coloured("red", "green", "blue"))
    first = list(caption_images(client, [pdf], pages=[1, 3], ordered=True))
    assert [r.page for r in first] == [1, 3]
    emulator.clear()
    rest = list(caption_images(client, [pdf], done={r.key for r in first if r.key}))
    assert [r.page for r in rest] == [2]
    assert [r.images[0].color_name for r in chat_requests(emulator)] == ["green"]


def test_a_pdf_that_cannot_be_read_is_one_failure_and_the_batch_goes_on(
    client: SiliconVisionClient, tmp_path: Path
) -> None:
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(make_pdf([PdfPage()], user_password="u"))
    image = tmp_path / "ok.png"
    Image.new("RGB", (40, 30), "red").save(image)
    records = list(caption_images(client, [locked, image], ordered=True))
    assert [(Path(r.path).name, r.page, r.ok) for r in records] == [
        ("locked.pdf", None, False),
        ("ok.png", None, True),
    ]
    assert "encrypted and needs a password" in (records[0].error or "")


def test_the_page_cap_refuses_a_long_pdf(emulator: LocalSiliconCloud, tmp_path: Path) -> None:
    capped = SiliconVisionClient(
        api_key=emulator.api_key, base_url=emulator.base_url, pdf=PdfOptions(max_pages=2)
    )
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(coloured("red", "green", "blue"))
    (record,) = caption_images(capped, [pdf])
    assert "more than max_pages=2" in (record.error or "") and record.attempts == 0
    assert chat_requests(emulator) == []


async def test_async_batches_pages_too(
    client: SiliconVisionClient, emulator: LocalSiliconCloud, tmp_path: Path
) -> None:
    from siliconvision.captions import acaption_images

    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(coloured("red", "blue"))
    records = [r async for r in acaption_images(client, [pdf], concurrency=2, ordered=True)]
    assert [(r.page, r.ok) for r in records] == [(1, True), (2, True)]


def test_directories_give_their_pdfs_when_asked(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "b.pdf").write_bytes(b"x")
    assert [p.name for p in iter_image_files([tmp_path])] == ["a.png"]
    assert [p.name for p in iter_image_files([tmp_path], pdfs=True)] == ["a.png", "b.pdf"]


def test_missing_extra_is_a_record_naming_it(
    client: SiliconVisionClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pypdfium2", None)
    monkeypatch.setitem(sys.modules, "pypdfium2.raw", None)
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(coloured("red"))
    (record,) = caption_images(client, [pdf])
    assert "pip install 'siliconvision[pdf]'" in (record.error or "")


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalSiliconCloud]:
    with LocalSiliconCloud(api_key=SECRET) as emulator:
        monkeypatch.setenv("SILICONFLOW_API_KEY", SECRET)
        monkeypatch.setenv("SILICONFLOW_BASE_URL", emulator.base_url)
        yield emulator


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and SECRET not in out + err
    return code, out, err


def test_cli_caption_writes_a_record_per_page_and_resumes_per_page(
    emu: LocalSiliconCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "doc.pdf").write_bytes(coloured("red", "green", "blue"))
    Image.new("RGB", (40, 30), "blue").save(scans / "photo.png")
    out_file = tmp_path / "captions.jsonl"
    code, _, err = run(capsys, "caption", scans, "--out", out_file, "--detail", "low")
    assert code == 0, err
    assert "captioning 4 image(s) and PDF page(s)" in err and "[4/4] captioned 4" in err
    records = [json.loads(line) for line in out_file.read_text().splitlines()]
    pages = sorted(r["page"] for r in records if r["path"].endswith("doc.pdf"))
    assert pages == [1, 2, 3] and [r["page"] for r in records if r["path"].endswith(".png")] == [
        None
    ]
    # lose one page's record: the rerun sends that page alone
    kept = [r for r in records if r["page"] != 2]
    out_file.write_text("".join(json.dumps(r) + "\n" for r in kept))
    emu.clear()
    code, _, err = run(capsys, "caption", scans, "--out", out_file, "--detail", "low")
    assert code == 0, err
    assert "captioning 1 image(s) and PDF page(s)" in err and "3 already captioned" in err
    (request,) = chat_requests(emu)
    assert request.images[0].color_name == "green"
    assert len(load_done(out_file)) == 4
    emu.clear()
    code, _, err = run(capsys, "caption", scans, "--out", out_file, "--detail", "low")
    assert code == 0 and "nothing to do" in err and emu.requests == []
    # --pages: another selection of the same document
    code, _, err = run(
        capsys, "caption", scans / "doc.pdf", "--out", tmp_path / "p.jsonl", "--pages", "2-3"
    )
    assert code == 0, err
    assert sorted(
        json.loads(line)["page"] for line in (tmp_path / "p.jsonl").read_text().splitlines()
    ) == [2, 3]


def test_cli_ask_sends_the_pages(
    emu: LocalSiliconCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(coloured("red", "green", "blue"))
    code, out, err = run(capsys, "ask", pdf, "-q", "Colours?", "--detail", "low")
    assert code == 0, err
    (request,) = chat_requests(emu)
    assert [i.color_name for i in request.images] == ["red", "green", "blue"]
    assert "I see 3 images" in out
    emu.clear()
    code, _, err = run(capsys, "ask", pdf, "-q", "Colours?", "--pages", "3,1")
    assert code == 0, err
    assert [i.color_name for i in chat_requests(emu)[0].images] == ["red", "blue"]
    photo = tmp_path / "a.png"
    Image.new("RGB", (40, 30), "red").save(photo)
    code, _, err = run(capsys, "ask", photo, "-q", "Q", "--pages", "1")
    assert code == 2 and "no PDF was given" in err
    code, _, err = run(capsys, "ask", pdf, "-q", "Q", "--pages", "0-2")
    assert code == 2 and "pages count from 1" in err
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(make_pdf([PdfPage()], user_password="u"))
    emu.clear()
    code, _, err = run(capsys, "ask", locked, "-q", "Q")
    assert code == 2 and "needs a password" in err and emu.requests == []


# --------------------------------------------------------------------------- the loaders


def test_langchain_loader_gives_a_document_per_page_in_order(
    emulator: LocalSiliconCloud, tmp_path: Path
) -> None:
    from langchain_siliconvision import ChatSiliconVision, SiliconVisionCaptionLoader

    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(coloured("red", "green", "blue"))
    image = tmp_path / "z.png"
    Image.new("RGB", (40, 30), "red").save(image)
    llm = ChatSiliconVision(api_key=emulator.api_key, base_url=emulator.base_url, detail="low")
    documents = SiliconVisionCaptionLoader([pdf, image], llm=llm, concurrency=4).load()
    assert [(Path(d.metadata["source"]).name, d.metadata.get("page")) for d in documents] == [
        ("doc.pdf", 1),
        ("doc.pdf", 2),
        ("doc.pdf", 3),
        ("z.png", None),
    ]


def test_llama_index_reader_gives_a_document_per_page(
    emulator: LocalSiliconCloud, tmp_path: Path
) -> None:
    from llama_index_siliconvision import SiliconVision, SiliconVisionCaptionReader

    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(coloured("red", "green"))
    llm = SiliconVision(api_key=emulator.api_key, base_url=emulator.base_url, detail="low")
    documents = SiliconVisionCaptionReader(llm, concurrency=2).load_data([pdf])
    assert [d.id_ for d in documents] == [f"{pdf}#page=1", f"{pdf}#page=2"]
    assert [d.metadata["page_label"] for d in documents] == ["1", "2"]
    assert all(d.metadata["file_path"] == str(pdf) for d in documents)
