"""PDFs through ChatSiliconVision, against LocalSiliconCloud: every page reaches the model
as an image, in human and tool messages, counted in the token estimate."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from langchain_siliconvision import ChatSiliconVision, image_block, pdf_block
from siliconvision import ContentError, ImageInputError
from siliconvision.images import PdfOptions
from siliconvision.testing import LocalSiliconCloud, PdfPage, make_pdf
from tests.langchain.support import QWEN, emulator_params

COLOURS = {"red": (255, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 255)}


def coloured(*names: str) -> bytes:
    return make_pdf([PdfPage(rects=[((0, 0, 595, 842), COLOURS[n])]) for n in names])


def file_block(pdf: bytes, **extras: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "file",
        "base64": base64.b64encode(pdf).decode(),
        "mime_type": "application/pdf",
    }
    if extras:
        block["extras"] = extras
    return block


def llm(**settings: Any) -> ChatSiliconVision:
    return ChatSiliconVision(**emulator_params(model=QWEN, **settings))


def seen(emu: LocalSiliconCloud) -> list[tuple[str, tuple[int, int]]]:
    assert emu.last_request is not None
    return [(i.color_name, (i.width, i.height)) for i in emu.last_request.images]


def test_a_file_block_sends_every_page(emu: LocalSiliconCloud) -> None:
    message = HumanMessage(
        [{"type": "text", "text": "Colours?"}, file_block(coloured("red", "blue"))]
    )
    llm(detail="low").invoke([message])
    assert seen(emu) == [("red", (448, 634)), ("blue", (448, 634))]
    parts = emu.last_request.body["messages"][0]["content"]  # type: ignore[union-attr]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url"]


def test_extras_select_pages_and_detail(emu: LocalSiliconCloud) -> None:
    block = file_block(coloured("red", "green", "blue"), pages=[3, 2], detail="low")
    llm().invoke([HumanMessage([block, {"type": "text", "text": "?"}])])
    assert seen(emu) == [("green", (448, 634)), ("blue", (448, 634))]


def test_openai_and_anthropic_forms(emu: LocalSiliconCloud) -> None:
    data = base64.b64encode(coloured("green")).decode()
    uri = f"data:application/pdf;base64,{data}"
    source = {"type": "base64", "media_type": "application/pdf", "data": data}
    for block in (
        {"type": "file", "file": {"filename": "a.pdf", "file_data": uri}},
        {"type": "document", "source": source},
    ):
        llm(detail="low").invoke([HumanMessage([block, {"type": "text", "text": "?"}])])
        assert seen(emu) == [("green", (448, 634))]


def test_a_pdf_returned_by_a_tool_reaches_the_model(emu: LocalSiliconCloud) -> None:
    messages = [
        HumanMessage("Get the report."),
        AIMessage([], tool_calls=[{"type": "tool_call", "id": "1", "name": "report", "args": {}}]),
        ToolMessage(content_blocks=[file_block(coloured("red", "green"))], tool_call_id="1"),
    ]
    llm(detail="low").invoke(messages)
    assert seen(emu) == [("red", (448, 634)), ("green", (448, 634))]
    sent = emu.last_request.body["messages"]  # type: ignore[union-attr]
    assert sent[2]["role"] == "tool" and "2 image(s)" in sent[2]["content"]
    assert sent[3]["role"] == "user"


def test_token_estimate_counts_every_page(emu: LocalSiliconCloud) -> None:
    model = llm(detail="low")
    one = [HumanMessage([file_block(coloured("red")), {"type": "text", "text": "?"}])]
    three = [
        HumanMessage([file_block(coloured("red", "green", "blue")), {"type": "text", "text": "?"}])
    ]
    assert (
        model.get_num_tokens_from_messages(three) - model.get_num_tokens_from_messages(one)
        == 2 * 256
    )  # two more 448-pixel pages, 256 tokens each on Qwen
    answer = model.invoke(three)
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["input_tokens"] == model.get_num_tokens_from_messages(three)


def test_a_pdf_url_is_fetched_only_when_asked(emu: LocalSiliconCloud) -> None:
    url = emu.add_file("report.pdf", coloured("blue"), "application/pdf")
    block = {"type": "file", "url": url, "mime_type": "application/pdf"}
    with pytest.raises(ImageInputError, match="pass fetch_urls=True"):
        llm().invoke([HumanMessage([block])])
    llm(fetch_urls=True, allow_private_urls=True, detail="low").invoke([HumanMessage([block])])
    assert seen(emu) == [("blue", (448, 634))]


def test_a_local_pdf_in_message_content_needs_allowed_dirs(
    emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    (tmp_path / "a.pdf").write_bytes(coloured("red"))
    block = {"type": "file", "url": str(tmp_path / "a.pdf"), "mime_type": "application/pdf"}
    with pytest.raises(ImageInputError, match="read only when the program allows it"):
        llm().invoke([HumanMessage([block])])
    llm(allowed_dirs=[tmp_path], detail="low").invoke([HumanMessage([block])])
    assert seen(emu) == [("red", (448, 634))]


def test_pdf_block_reads_a_file_the_program_names(emu: LocalSiliconCloud, tmp_path: Path) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(coloured("red", "green"))
    block = pdf_block(path, pages=[2], detail="low")
    assert block["mime_type"] == "application/pdf" and block["extras"] == {
        "pages": [2],
        "detail": "low",
    }
    llm().invoke([HumanMessage([block])])
    assert seen(emu) == [("green", (448, 634))]
    with pytest.raises(ImageInputError, match="not a PDF"):
        pdf_block(Path(__file__).parents[2] / "examples" / "images" / "red_circle.png")
    with pytest.raises(ImageInputError, match="use pdf_block"):
        image_block(path)
    with pytest.raises(ContentError, match="page numbers"):
        pdf_block(path, pages=[-1])


def test_the_caps_are_settings(emu: LocalSiliconCloud) -> None:
    block = file_block(coloured("red", "green", "blue"))
    with pytest.raises(ImageInputError, match="more than max_pages=2"):
        llm(pdf=PdfOptions(max_pages=2)).invoke([HumanMessage([block])])
    assert emu.requests == []  # refused before any request


def test_the_profile_says_pdfs_only_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    profile = ChatSiliconVision(model=QWEN, api_key="x").profile
    assert profile is not None and profile["pdf_inputs"] and profile["pdf_tool_message"]
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pypdfium2" else real(name, *a),
    )
    profile = ChatSiliconVision(model="Qwen/Qwen2.5-VL-7B-Instruct", api_key="x").profile
    assert profile is not None and not profile["pdf_inputs"]
