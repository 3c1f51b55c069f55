"""PDF documents: pages rendered once at the size the server keeps, the caps that bound
untrusted documents, and the same file policy as images. Real PDFium renders every
document here; they are written from scratch by siliconvision.testing.make_pdf."""

from __future__ import annotations

import base64
import io
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from siliconvision import SiliconVisionClient, build_content, prepare_messages
from siliconvision.content import Image, Pdf
from siliconvision.errors import ContentError, ImageInputError
from siliconvision.images import (
    Base64Image,
    ImageCache,
    PdfOptions,
    _pdf,
    encode_image,
    prepare_image,
    prepare_pdf,
)
from siliconvision.testing import LocalSiliconCloud, PdfImage, PdfPage, make_pdf, scan_page
from siliconvision.tokens import (
    estimate_image_tokens,
    estimate_prompt_tokens,
    page_render_size,
    server_image_size,
)
from tests.imaging import decode_part, make_image

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
INTERNVL = "OpenGVLab/InternVL2-26B"
DEEPSEEK = "deepseek-ai/deepseek-vl2"
A4 = (595.0, 842.0)
COLOURS = {"red": (255, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 255)}


def coloured(*names: str, size: tuple[float, float] = A4, rotate: int = 0) -> bytes:
    """A PDF with one page per colour, each page filled with it."""
    return make_pdf(
        [
            PdfPage(size=size, rotate=rotate, rects=[((0, 0, *size), COLOURS[name])])
            for name in names
        ]
    )


@pytest.fixture
def draws(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """The bitmap size of every page PDFium is asked to draw (its own function, wrapped)."""
    import pypdfium2.raw as pdfium_c

    seen: list[tuple[int, int]] = []
    original = pdfium_c.FPDF_RenderPageBitmap_Start

    def start(bitmap: Any, page: Any, x: int, y: int, w: int, h: int, *rest: Any) -> Any:
        seen.append((w, h))
        return original(bitmap, page, x, y, w, h, *rest)

    monkeypatch.setattr(pdfium_c, "FPDF_RenderPageBitmap_Start", start)
    yield seen


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("model", "detail"),
    [(QWEN, "high"), (QWEN, "low"), (INTERNVL, "high"), ("Qwen/Qwen3-VL-8B-Instruct", "high")],
)
def test_each_page_is_drawn_once_at_the_size_the_server_keeps(
    model: str, detail: str, draws: list[tuple[int, int]]
) -> None:
    doc = prepare_pdf(coloured("red", "green"), model=model, detail=detail, cache=None)
    native = (round(595 * 200 / 72), round(842 * 200 / 72))  # A4 read at 200 dpi
    kept = page_render_size(*native, model=model, detail=detail, image_count=2)
    assert kept is not None
    assert draws == [kept, kept]  # drawn at that size, once per page: never big, then shrunk
    assert [(p.width, p.height) for p in doc.pages] == [kept, kept]
    # the server keeps the drawn page as it is, at the tokens of the full-resolution page
    assert server_image_size(*kept, model=model, detail=detail) == server_image_size(
        *native, model=model, detail=detail
    )
    assert estimate_image_tokens(*kept, model=model, detail=detail) == estimate_image_tokens(
        *native, model=model, detail=detail
    )


def test_qwen_keeps_the_drawn_page_exactly_by_its_own_processor() -> None:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    for detail, size in (("high", A4), ("high", (612.0, 1008.0)), ("high", (842.0, 595.0))):
        doc = prepare_pdf(coloured("blue", size=size), model=QWEN, detail=detail, cache=None)  # type: ignore[arg-type]
        page = doc.pages[0]
        assert page.width is not None and page.height is not None
        # smart_resize maps the drawn size onto itself: the server resamples nothing
        assert smart_resize(page.height, page.width, factor=28, max_pixels=12_845_056) == (
            page.height,
            page.width,
        )


def test_low_detail_keeps_the_aspect_ratio_and_448_on_the_shorter_side() -> None:
    doc = prepare_pdf(coloured("red"), model=QWEN, detail="low", cache=None)
    page = doc.pages[0]
    assert (page.width, page.height) == (448, 634)
    assert abs(page.width / page.height - 595 / 842) < 0.01


def test_dpi_is_the_reference_resolution_without_a_model() -> None:
    doc = prepare_pdf(coloured("red"), options=PdfOptions(dpi=72), cache=None)
    assert (doc.pages[0].width, doc.pages[0].height) == (595, 842)
    doc = prepare_pdf(coloured("red"), options=PdfOptions(dpi=144), cache=None)
    assert (doc.pages[0].width, doc.pages[0].height) == (1190, 1684)


def test_deepseek_sizes_every_page_for_the_request_s_real_image_count() -> None:
    # three pages: more than two images, so DeepSeek-VL2 makes each one 384 tile
    three = build_content(["Read", coloured("red", "green", "blue")], model=DEEPSEEK)
    sizes = [decode_part(p).size for p in three if p["type"] == "image_url"]
    assert sizes == [(271, 384)] * 3
    # one page and one image: two images, full resolution for both
    photo = make_image((1600, 1200), "red", "JPEG")
    two = build_content([coloured("green"), photo, "Compare"], model=DEEPSEEK)
    assert [decode_part(p).size for p in two if p["type"] == "image_url"] == [
        (page_render_size(1653, 2339, model=DEEPSEEK, image_count=2)),
        decode_part(build_content([photo, photo], model=DEEPSEEK)[0]).size,
    ]
    # a 2-page PDF and an image: three images, so the image shrinks to one tile too
    three_again = build_content([coloured("red", "green"), photo], model=DEEPSEEK)
    assert (
        decode_part(three_again[-1]).size
        == decode_part(build_content([photo, photo, photo], model=DEEPSEEK)[0]).size
    )


# --------------------------------------------------------------------------- order, pages


def test_pages_become_image_parts_in_page_order_then_the_text() -> None:
    parts = build_content(
        [Pdf(coloured("red", "green", "blue"), pages=[3, 1]), "What colours?"],
        model=QWEN,
        detail="low",
    )
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    colours = [decode_part(p).convert("RGB").getpixel((100, 100)) for p in parts[:2]]
    assert colours[0][0] > 200 and colours[1][2] > 200  # page 1 (red), then page 3 (blue)


def test_every_page_by_default_and_a_plain_source_is_sent_as_its_pages(tmp_path: Path) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(coloured("red", "green", "blue"))
    for item in (path, Image(path), Pdf(path)):
        parts = build_content([item], model=QWEN, detail="low")
        assert len(parts) == 3


@pytest.mark.parametrize(
    ("pages", "message"),
    [
        ([0], "1 for the first page"),
        ([2, 2], "more than once"),
        ([], "selects no page"),
        ("1-2", "page numbers"),
        ([1.5], "page numbers"),
    ],
)
def test_bad_page_selections_are_refused(pages: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pdf(coloured("red"), pages=pages)


def test_a_page_beyond_the_document_is_refused_before_anything_is_drawn(
    draws: list[tuple[int, int]],
) -> None:
    with pytest.raises(ImageInputError, match="page 4 was selected, but the document has 3"):
        prepare_pdf(coloured("red", "green", "blue"), pages=[1, 4], cache=None)
    assert draws == []


def test_a_rotated_page_is_drawn_upright() -> None:
    # a landscape page turned a quarter clockwise: its top-left corner is drawn top right
    page = PdfPage(size=(842, 595), rotate=90, rects=[((0, 495, 100, 100), (255, 0, 0))])
    doc = prepare_pdf(make_pdf([page]), options=PdfOptions(dpi=72), cache=None)
    image = decode_part(doc.to_parts()[0]).convert("RGB")
    assert image.size == (595, 842)
    assert image.getpixel((580, 15))[0] > 200 and image.getpixel((15, 15)) == (255, 255, 255)


def test_the_pixels_are_the_page_s() -> None:
    parts = prepare_pdf(coloured("green"), model=QWEN, detail="low", cache=None).to_parts()
    r, g, b = decode_part(parts[0]).convert("RGB").getpixel((200, 300))
    assert g > 140 and r < 30 and b < 30


# --------------------------------------------------------------------------- caps


def test_more_pages_than_the_cap_are_refused_never_cut_short(
    draws: list[tuple[int, int]],
) -> None:
    pdf = coloured("red", "green", "blue")
    with pytest.raises(ImageInputError, match=r"it has 3 pages, more than max_pages=2; select"):
        prepare_pdf(pdf, options=PdfOptions(max_pages=2), cache=None)
    with pytest.raises(ImageInputError, match="3 pages were selected, more than max_pages=2"):
        prepare_pdf(pdf, pages=[1, 2, 3], options=PdfOptions(max_pages=2), cache=None)
    assert draws == []
    assert len(prepare_pdf(pdf, pages=[1, 3], options=PdfOptions(max_pages=2)).pages) == 2


def test_the_total_pixels_cap_is_checked_before_drawing(draws: list[tuple[int, int]]) -> None:
    pdf = coloured("red", "green")
    options = PdfOptions(max_pixels=2 * 448 * 634 - 1)
    with pytest.raises(ImageInputError, match=r"drawn at 568,064 pixels together, more than"):
        prepare_pdf(pdf, model=QWEN, detail="low", options=options, cache=None)
    assert draws == []
    doc = prepare_pdf(pdf, model=QWEN, detail="low", options=PdfOptions(max_pixels=2 * 448 * 634))
    assert len(doc.pages) == 2


def test_a_page_too_big_to_draw_is_a_bomb_whatever_the_document_says(
    draws: list[tuple[int, int]],
) -> None:
    poster = coloured("red", size=(14_400.0, 14_400.0))  # 200 x 200 inches, 40000 px at 200 dpi
    with pytest.raises(ImageInputError, match="decompression bomb refused"):
        prepare_pdf(poster, cache=None)  # no model: drawn at 200 dpi
    assert draws == []
    kept = prepare_pdf(poster, model=QWEN, detail="high", cache=None)  # the server keeps less
    page = kept.pages[0]
    assert (page.width, page.height) == server_image_size(40_000, 40_000, model=QWEN)


def test_an_embedded_image_bomb_is_refused_before_the_page_is_drawn(
    draws: list[tuple[int, int]],
) -> None:
    bomb = make_pdf([PdfPage(images=[PdfImage((0, 0, 595, 842), size=(30_000, 30_000))])])
    with pytest.raises(ImageInputError, match=r"page 1 embeds images of 900,000,000 pixels"):
        prepare_pdf(bomb, model=QWEN, detail="low", cache=None)
    assert draws == []


def test_rendering_time_is_bounded_inside_a_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline is watched while PDFium draws (its pause callback): a clock that
    passes the deadline mid-page stops the drawing there."""
    ticks = iter(range(10_000))
    calls: list[str] = []
    real_passed = _pdf._Deadline.passed

    def passed(self: _pdf._Deadline) -> bool:
        calls.append("checked")
        return next(ticks) >= 40 or real_passed(self)

    monkeypatch.setattr(_pdf._Deadline, "passed", passed)
    many = PdfPage(rects=[((i % 50 * 10, i // 50 * 10, 8, 8), (0, 0, 0)) for i in range(4000)])
    with pytest.raises(ImageInputError, match=r"timeout=60 s \(drawing page 1\)"):
        prepare_pdf(make_pdf([many]), model=QWEN, detail="low", cache=None)
    assert len(calls) > 40  # PDFium asked whether to pause, many times in one page


def test_a_tiny_timeout_stops_before_the_next_page() -> None:
    with pytest.raises(ImageInputError, match=r"longer than timeout=0\.001 s"):
        prepare_pdf(coloured("red", "green"), options=PdfOptions(timeout=0.001), cache=None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dpi": 0}, "dpi must be between"),
        ({"dpi": float("nan")}, "dpi must be between"),
        ({"max_pages": 0}, "max_pages must be an integer"),
        ({"max_pixels": True}, "max_pixels must be an integer"),
        ({"timeout": -1}, "timeout must be between"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PdfOptions(**options)


# --------------------------------------------------------------------------- refused documents


def test_a_document_that_needs_a_password_is_refused() -> None:
    locked = make_pdf([PdfPage()], user_password="secret", owner_password="owner")
    with pytest.raises(
        ImageInputError, match=r"PDF .*: refused: it is encrypted and needs a password"
    ):
        prepare_pdf(locked, cache=None)


def test_an_owner_password_only_document_opens_and_is_drawn() -> None:
    """Encrypted for permissions only: every viewer opens it without a password."""
    restricted = make_pdf(
        [PdfPage(rects=[((0, 0, 595, 842), COLOURS["red"])])], owner_password="owner"
    )
    part = prepare_pdf(restricted, model=QWEN, detail="low", cache=None).to_parts()[0]
    assert decode_part(part).convert("RGB").getpixel((100, 100))[0] > 200


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"%PDF-1.7\nthis is not a pdf at all", "refused: it is not a valid PDF"),
        (b"%PDF-", "refused: it is not a valid PDF"),
        (make_pdf([])[:-40] + b"garbage", "refused"),
    ],
)
def test_broken_documents_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ImageInputError, match=message):
        prepare_pdf(data, cache=None)


def test_a_document_without_pages_is_refused() -> None:
    with pytest.raises(ImageInputError, match=r"no pages|not a valid PDF"):
        prepare_pdf(make_pdf([]), cache=None)


def test_a_truncated_document_is_refused_or_drawn_never_a_crash() -> None:
    whole = coloured("red", "green", "blue")
    for cut in (len(whole) // 3, len(whole) // 2, len(whole) - 30):
        try:
            doc = prepare_pdf(whole[:cut], cache=None)
        except ImageInputError as exc:
            assert exc.kind == "PDF"
        else:  # PDFium rebuilds what it can: what it draws is whole pages
            assert all(p.width and p.height for p in doc.pages)


def test_an_image_is_not_a_pdf() -> None:
    with pytest.raises(ImageInputError, match=r"not a PDF \(its bytes do not start with %PDF-\)"):
        prepare_pdf(make_image(), cache=None)
    with pytest.raises(ImageInputError, match="not a PDF"):
        build_content([Pdf(make_image())], model=QWEN)


def test_one_image_entry_points_refuse_a_pdf_and_say_where_it_goes(tmp_path: Path) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(coloured("red"))
    for source in (path, path.read_bytes()):
        with pytest.raises(ImageInputError, match="a PDF document, not one image: pass it"):
            prepare_image(source, cache=None)
        with pytest.raises(ImageInputError, match="a PDF document, not one image"):
            encode_image(source, cache=None)


def test_the_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdfium2", None)  # import pypdfium2 -> ImportError
    monkeypatch.setitem(sys.modules, "pypdfium2.raw", None)
    with pytest.raises(ImageInputError, match=r"needs pypdfium2, the \[pdf\] extra: pip install"):
        build_content(["Read", coloured("red")], model=QWEN)
    # images still work without it
    assert build_content([make_image()], model=QWEN)[0]["type"] == "image_url"


# --------------------------------------------------------------------------- sources


def test_every_form_of_pdf_source_is_read(tmp_path: Path) -> None:
    pdf = coloured("red", "green")
    text = base64.b64encode(pdf).decode()
    path = tmp_path / "d.pdf"
    path.write_bytes(pdf)
    sources: list[Any] = [
        pdf,
        bytearray(pdf),
        memoryview(pdf),
        io.BytesIO(pdf),
        path,
        str(path),
        f"data:application/pdf;base64,{text}",
        Base64Image(text, "application/pdf"),
        Base64Image(text),
        Base64Image("\n".join(text[i : i + 76] for i in range(0, len(text), 76)), None),
    ]
    for source in sources:
        doc = prepare_pdf(source, model=QWEN, detail="low", cache=None)
        assert doc.page_numbers == (1, 2), source


def test_a_pdf_url_is_fetched_only_when_asked(emulator: LocalSiliconCloud) -> None:
    url = emulator.add_file("doc.pdf", coloured("red", "blue"), "application/pdf")
    with pytest.raises(ImageInputError, match="a PDF given by URL is rendered here"):
        build_content([Pdf(url)], model=QWEN)
    doc = prepare_pdf(url, model=QWEN, detail="low", fetch_urls=True, allow_private_urls=True)
    assert doc.page_numbers == (1, 2)
    # an unmarked URL stays an image URL for the server (nothing fetched)
    assert build_content([Image(url)], model=QWEN)[0]["image_url"]["url"] == url


def test_the_cache_renders_a_document_once(tmp_path: Path, draws: list[tuple[int, int]]) -> None:
    cache = ImageCache()
    path = tmp_path / "d.pdf"
    path.write_bytes(coloured("red", "green"))
    first = prepare_pdf(path, model=QWEN, detail="low", cache=cache)
    again = prepare_pdf(path, model=QWEN, detail="low", cache=cache)
    assert len(draws) == 2 and first == again
    prepare_pdf(path.read_bytes(), model=QWEN, detail="low", cache=cache)  # by its bytes
    prepare_pdf(path, model=QWEN, detail="high", cache=cache)  # another size: drawn again
    assert len(draws) == 6
    relabelled = prepare_pdf(Path(str(path)), model=QWEN, detail="low", cache=cache)
    assert relabelled.pages[1].source_label == f"{path} page 2"


def test_concurrent_documents_take_turns_in_pdfium() -> None:
    pdfs = [coloured(*("red", "green", "blue")[: 1 + i % 3]) for i in range(6)]
    expected = [prepare_pdf(p, model=QWEN, detail="low", cache=None) for p in pdfs]
    results: dict[int, Any] = {}

    def work(index: int) -> None:
        results[index] = prepare_pdf(pdfs[index], model=QWEN, detail="low", cache=None)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i] for i in range(6)] == expected


# --------------------------------------------------------------------------- file policy


def test_a_pdf_path_in_message_content_is_read_only_where_allowed(tmp_path: Path) -> None:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "a.pdf").write_bytes(coloured("red"))
    (outside / "b.pdf").write_bytes(coloured("red"))
    for part in (
        {"type": "file", "file": {"url": str(allowed / "a.pdf")}},
        {"type": "image_url", "image_url": {"url": (allowed / "a.pdf").as_uri()}},
    ):
        messages = [{"role": "user", "content": [part]}]
        with pytest.raises(ImageInputError, match="read only when the program allows it"):
            prepare_messages(messages, model=QWEN)
        sent = prepare_messages(messages, model=QWEN, allowed_dirs=[allowed], detail="low")
        assert len(sent[0]["content"]) == 1
    outside_part = {"type": "file", "file": {"url": str(outside / "b.pdf")}}
    with pytest.raises(ImageInputError, match="outside the allowed directories"):
        prepare_messages([{"role": "user", "content": [outside_part]}], model=QWEN,
                         allowed_dirs=[allowed])  # fmt: skip


def test_pdf_files_the_program_names_follow_the_file_policy(tmp_path: Path) -> None:
    path = tmp_path / "big.pdf"
    path.write_bytes(coloured("red", "green"))
    with pytest.raises(ImageInputError, match="more than the 100-byte limit"):
        build_content([Pdf(path)], model=QWEN, max_file_bytes=100)
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)
    with pytest.raises(ImageInputError, match="not a regular file"):
        build_content([Pdf(fifo)], model=QWEN)


def test_openai_file_parts(tmp_path: Path) -> None:
    pdf = coloured("red", "green", "blue")
    data = "data:application/pdf;base64," + base64.b64encode(pdf).decode()
    part = {"type": "file", "file": {"file_data": data, "pages": [2], "detail": "low"}}
    [image] = build_content([part], model=QWEN)
    assert image["image_url"]["detail"] == "low" and decode_part(image).size == (448, 634)
    raw = {"type": "file", "file": {"file_data": base64.b64encode(pdf).decode()}}
    assert len(build_content([raw], model=QWEN, detail="low")) == 3
    with pytest.raises(ContentError, match="no files API"):
        build_content([{"type": "file", "file": {"file_id": "file-1"}}], model=QWEN)
    with pytest.raises(ContentError, match=r"needs file\.file_data"):
        build_content([{"type": "file", "file": {}}], model=QWEN)
    both = {"type": "file", "file": {"file_data": data, "url": "https://example.com/a.pdf"}}
    with pytest.raises(ContentError, match="both file_data and url"):
        build_content([both], model=QWEN)


def test_a_non_vision_model_refuses_a_pdf() -> None:
    with pytest.raises(ContentError, match="does not take images"):
        build_content([Pdf(coloured("red"))], model="Qwen/Qwen2.5-7B-Instruct")


# --------------------------------------------------------------------------- the wire


def test_the_emulator_sees_every_page_and_counts_its_tokens(emulator: LocalSiliconCloud) -> None:
    client = SiliconVisionClient(api_key=emulator.api_key, base_url=emulator.base_url)
    messages = [
        {"role": "user", "content": [Pdf(coloured("red", "green", "blue")), "What colours?"]}
    ]
    result = client.chat(messages, detail="low")
    seen = emulator.last_request.images
    assert [i.color_name for i in seen] == ["red", "green", "blue"]
    assert [(i.width, i.height) for i in seen] == [(448, 634)] * 3
    prepared = client.prepare_messages(messages, detail="low")
    estimate = estimate_prompt_tokens(prepared, model=QWEN)
    assert result.usage is not None and result.usage.prompt_tokens == estimate
    assert estimate > 3 * estimate_image_tokens(448, 634, model=QWEN, detail="low")


def test_a_pdf_returned_by_a_tool_reaches_the_model_as_its_pages() -> None:
    messages = [
        {"role": "user", "content": "Fetch the report"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "report", "arguments": "{}"}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": [Pdf(coloured("red", "green"))]},
    ]  # fmt: skip
    sent = prepare_messages(messages, model=QWEN, detail="low")
    assert "2 image(s)" in sent[2]["content"]
    assert [p["type"] for p in sent[3]["content"]] == ["text", "image_url", "image_url"]


def test_scanned_pages_go_as_jpeg_small_pages_as_the_smaller_encoding() -> None:
    noise = PILImage.effect_noise((1240, 1754), 60).convert("RGB")
    doc = prepare_pdf(make_pdf([scan_page(noise), PdfPage()]), model=QWEN, cache=None)
    assert doc.pages[0].mime_type == "image/jpeg"  # 3.9 MP: JPEG, as for any big image
    low = prepare_pdf(make_pdf([PdfPage()]), model=QWEN, detail="low", cache=None)
    assert low.pages[0].mime_type == "image/png"  # a blank page: PNG is smaller


def test_a_page_covered_by_an_image_goes_as_jpeg_without_trying_png(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from siliconvision.images import _encode, _pdf

    saved: list[str] = []
    save_as = _encode.save_as

    def counted(img: PILImage.Image, fmt: str) -> bytes:
        saved.append(fmt)
        return save_as(img, fmt)

    monkeypatch.setattr(_encode, "save_as", counted)
    monkeypatch.setattr(_pdf, "save_as", counted)
    blank_scan = scan_page(PILImage.new("RGB", (1240, 1754), "white"))
    doc = prepare_pdf(make_pdf([blank_scan]), model=QWEN, detail="low", cache=None)
    assert doc.pages[0].mime_type == "image/jpeg" and saved == ["JPEG"]
    saved.clear()
    logo = PdfImage((50, 750, 50, 50), jpeg=_jpeg(PILImage.new("RGB", (400, 400), "red")))
    doc = prepare_pdf(make_pdf([PdfPage(images=[logo])]), model=QWEN, detail="low", cache=None)
    assert sorted(saved) == ["JPEG", "PNG"]  # a small image on a page: the smaller of the two
    assert doc.pages[0].mime_type == "image/png"


def _jpeg(image: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()
