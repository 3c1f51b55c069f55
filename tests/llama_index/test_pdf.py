"""PDFs through SiliconVision (LlamaIndex), against LocalSiliconCloud: a DocumentBlock's
pages reach the model as images, and LlamaIndex's token counting sees every page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from llama_index.core.base.llms.types import ChatMessage, DocumentBlock, TextBlock
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler

from llama_index_siliconvision import SiliconVision
from llama_index_siliconvision.utils import document_block_to_item, to_wire_messages
from siliconvision import ContentError, ImageInputError
from siliconvision.content import Pdf
from siliconvision.images import Base64Image, PdfOptions
from siliconvision.testing import LocalSiliconCloud, PdfPage, make_pdf

MakeLLM = Callable[..., SiliconVision]
COLOURS = {"red": (255, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 255)}


def coloured(*names: str) -> bytes:
    return make_pdf([PdfPage(rects=[((0, 0, 595, 842), COLOURS[n])]) for n in names])


def seen(emu: LocalSiliconCloud) -> list[tuple[str, tuple[int, int]]]:
    assert emu.last_request is not None
    return [(i.color_name, (i.width, i.height)) for i in emu.last_request.images]


def ask(*blocks: object) -> list[ChatMessage]:
    return [ChatMessage(blocks=[*blocks, TextBlock(text="What colours?")])]  # type: ignore[list-item]


def test_document_blocks_from_bytes_path_and_url(
    make_llm: MakeLLM, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    llm = make_llm(detail="low")
    llm.chat(ask(DocumentBlock(data=coloured("red", "blue"))))
    assert seen(emu) == [("red", (448, 634)), ("blue", (448, 634))]
    path = tmp_path / "doc.pdf"
    path.write_bytes(coloured("green"))
    llm.chat(ask(DocumentBlock(path=path)))
    assert seen(emu) == [("green", (448, 634))]
    url = emu.add_file("doc.pdf", coloured("blue", "red"), "application/pdf")
    with pytest.raises(ImageInputError, match="pass fetch_urls=True"):
        llm.chat(ask(DocumentBlock(url=url)))
    make_llm(detail="low", fetch_urls=True, allow_private_urls=True).chat(
        ask(DocumentBlock(url=url))
    )
    assert seen(emu) == [("blue", (448, 634)), ("red", (448, 634))]


def test_a_file_url_needs_allowed_dirs(
    make_llm: MakeLLM, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(coloured("red"))
    block = DocumentBlock(url=path.as_uri())
    with pytest.raises(ImageInputError, match="read only when the program allows it"):
        make_llm().chat(ask(block))
    make_llm(allowed_dirs=[tmp_path], detail="low").chat(ask(block))
    assert seen(emu) == [("red", (448, 634))]


def test_token_counting_sees_every_page(make_llm: MakeLLM, emu: LocalSiliconCloud) -> None:
    counter = TokenCountingHandler()
    llm = make_llm(detail="low", callback_manager=CallbackManager([counter]))
    response = llm.chat(ask(DocumentBlock(data=coloured("red", "green", "blue"))))
    usage = response.raw["usage"] if isinstance(response.raw, dict) else response.raw.usage
    prompt = usage["prompt_tokens"] if isinstance(usage, dict) else usage.prompt_tokens
    assert counter.prompt_llm_token_count == prompt > 3 * 256  # three 448-pixel pages


def test_other_documents_are_refused_by_name(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    block = DocumentBlock(data=b"just text", document_mimetype="text/plain")
    with pytest.raises(ContentError, match="DocumentBlock of type 'text/plain' cannot be sent"):
        llm.chat(ask(block))
    with pytest.raises(ImageInputError, match="not a PDF"):
        llm.chat(ask(DocumentBlock(data=b"hello, no pdf here")))
    assert emu.requests == []


def test_the_caps_are_settings(make_llm: MakeLLM, emu: LocalSiliconCloud) -> None:
    with pytest.raises(ImageInputError, match="more than max_pages=1"):
        make_llm(pdf=PdfOptions(max_pages=1)).chat(ask(DocumentBlock(data=coloured("red", "red"))))
    assert emu.requests == []


def test_document_block_to_item_literal() -> None:
    pdf = coloured("red")
    block = DocumentBlock(data=pdf)
    assert block.data is not None
    assert document_block_to_item(block) == Pdf(
        Base64Image(block.data.decode("ascii"), "application/pdf")
    )
    assert to_wire_messages([ChatMessage(blocks=[DocumentBlock(url="https://e.com/a.pdf")])]) == [
        {"role": "user", "content": [{"type": "file", "file": {"url": "https://e.com/a.pdf"}}]}
    ]
