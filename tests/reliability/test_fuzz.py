"""Fuzzing: random message and block structures through both chat models.

Hypothesis mixes text, every image form each framework accepts (valid and broken),
video, tool calls and tool messages, reasoning, and block types SiliconCloud does not
take. The only acceptable outcomes are an answer (exactly one request sent, answered
200) or one of the documented input errors raised *before* sending
(``ContentError``, ``ImageInputError``, ``ParameterError``: all ``ValueError``
subclasses), with no request in the emulator's log. A server-side 400 would mean the
client let an invalid message through; any other exception is a crash.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from llama_index.core.base.llms.types import (
    AudioBlock,
    CachePoint,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    VideoBlock,
)
from PIL import Image

from langchain_siliconvision import ChatSiliconVision, image_block
from llama_index_siliconvision import SiliconVision
from siliconvision.errors import ContentError, ImageInputError
from siliconvision.testing import LocalSiliconCloud
from siliconvision.wire import ParameterError

from .conftest import QWEN, Figures, png

DOCUMENTED = (ContentError, ImageInputError, ParameterError)
EXAMPLES = 250
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

IMAGE_FORMS = [
    "png",
    "jpeg",
    "garbage",
    "empty",
    "text",
    "bomb",
    "data_uri",
    "data_uri_text",
    "data_uri_bad_base64",
    "served_url",
    "ftp_url",
    "file_url",
    "path",
    "missing_path",
    "text_file_path",
    "pil",
]
DETAILS: list[Any] = [None, "low", "high", "auto", "ultra", 3]


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "yellow").save(buffer, format="JPEG")
    return buffer.getvalue()


def _bomb() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


@dataclass
class Context:
    """What the strategies' specs are built against: files, served URLs, an emulator."""

    emu: LocalSiliconCloud
    folder: Path
    served: str
    lc: ChatSiliconVision
    li: SiliconVision
    outcomes: dict[str, int] = field(default_factory=dict)

    def raw(self, form: str) -> Any:
        """The image source of ``form``: bytes, a str (URL, data URI, path) or a PIL image."""
        png_bytes = png((24, 16), "purple")
        return {
            "png": png_bytes,
            "jpeg": _jpeg(),
            "garbage": b"\x00\x01garbage\xff" * 10,
            "empty": b"",
            "text": b"just some text, not an image",
            "bomb": _bomb(),
            "data_uri": "data:image/png;base64," + base64.b64encode(png_bytes).decode(),
            "data_uri_text": "data:text/plain;base64,aGVsbG8=",
            "data_uri_bad_base64": "data:image/png;base64,%%%not-base64%%%",
            "served_url": self.served,
            "ftp_url": "ftp://example.com/cat.png",
            "file_url": (self.folder / "ok.png").as_uri(),
            "path": str(self.folder / "ok.png"),
            "missing_path": str(self.folder / "missing.png"),
            "text_file_path": str(self.folder / "notes.png"),
            "pil": Image.new("RGB", (20, 20), "orange"),
        }[form]

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "ok.png").write_bytes(png((32, 32), "teal"))
    (folder / "notes.png").write_text("a text file with an image's name")
    with LocalSiliconCloud() as emu:
        served = emu.serve_url("https://images.example.com/cat.png", png((30, 20), "red"))
        where = {"api_key": emu.api_key, "base_url": emu.base_url, "max_retries": 0}
        yield Context(
            emu,
            folder,
            served,
            ChatSiliconVision(model=QWEN, **where),
            SiliconVision(model=QWEN, **where),
        )


def _run(context: Context, call: Callable[[], Any]) -> None:
    """The fuzz invariant around one call (message building included)."""
    before = len(context.emu.requests)
    try:
        call()
    except DOCUMENTED as exc:
        sent = context.emu.requests[before:]
        assert sent == [], f"{type(exc).__name__} ({exc}) but {len(sent)} request(s) were sent"
        assert str(exc), "an input error must say what is wrong"
        context.count(type(exc).__name__)
        return
    sent = context.emu.requests[before:]
    assert len(sent) == 1, f"one request per answer, got {len(sent)}"
    assert sent[0].status == 200, (
        f"the client sent a message the server refused: {sent[0].status} {sent[0].error_code}"
        f" {sent[0].reply_content} {sent[0].body}"
    )
    context.count("answered")


# --------------------------------------------------------------------------- LangChain

lc_image_spec = st.tuples(
    st.sampled_from(IMAGE_FORMS),
    st.sampled_from(DETAILS),
    st.sampled_from(["image_url", "image_url_str", "v1", "v0", "anthropic", "helper", "file_id"]),
)
lc_other_block = st.one_of(
    st.text(max_size=30).map(lambda t: ("str", t)),
    st.text(max_size=30).map(lambda t: ("text", t)),
    st.sampled_from(
        [
            ("raw", {"type": "text"}),
            ("raw", {"type": "text", "text": 5}),
            ("raw", {"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}),
            ("raw", {"type": "file", "url": "https://example.com/a.pdf"}),
            ("raw", {"type": "reasoning", "reasoning": "hmm"}),
            ("raw", {"type": "thinking", "thinking": "hmm"}),
            ("raw", {"type": "tool_use", "id": "x", "name": "f", "input": {}}),
            ("raw", {"type": "video", "url": "https://example.com/clip.mp4"}),
            ("raw", {"type": "video_url", "video_url": {"url": "https://example.com/c.mp4"}}),
            ("raw", {"type": "unknown_block", "payload": 1}),
            ("raw", {"type": None}),
            ("raw", {"no_type": True}),
            ("raw", {"type": "image"}),
            ("raw", {"type": "image_url", "image_url": {"url": 5}}),
            ("raw", {"type": "image", "source_type": "weird", "url": "x"}),
        ]
    ),
)
lc_block = st.one_of(lc_image_spec.map(lambda s: ("image", s)), lc_other_block)
lc_content = st.one_of(
    st.text(max_size=40).map(lambda t: ("plain", t)),
    st.lists(lc_block, max_size=4).map(lambda b: ("blocks", b)),
)
lc_message = st.tuples(
    st.sampled_from(["human", "system", "ai", "ai_tool_call", "tool"]), lc_content
)
lc_messages = st.lists(lc_message, min_size=1, max_size=4)


def _lc_image(context: Context, spec: tuple[str, Any, str]) -> dict[str, Any]:
    form, detail, style = spec
    source = context.raw(form)
    if style == "helper":
        return image_block(source, detail=detail)  # may raise ImageInputError/ValueError
    if style == "file_id":
        return {"type": "image", "file_id": "file-abc123"}
    if isinstance(source, Image.Image):
        return image_block(source, detail=detail)
    if isinstance(source, bytes):
        data = base64.b64encode(source).decode()
        if style in ("image_url", "image_url_str"):
            source = f"data:image/png;base64,{data}"
        elif style == "v1":
            return {
                "type": "image",
                "base64": data,
                "mime_type": "image/png",
                "extras": {"detail": detail},
            }
        elif style == "v0":
            return {
                "type": "image",
                "source_type": "base64",
                "data": data,
                "mime_type": "image/png",
            }
        else:
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": data},
            }
    if style == "image_url":
        return {"type": "image_url", "image_url": {"url": source, "detail": detail}}
    if style == "image_url_str":
        return {"type": "image_url", "image_url": source}
    if style == "v1":
        return {"type": "image", "url": source, "extras": {"detail": detail}}
    if style == "v0":
        return {"type": "image", "source_type": "url", "url": source}
    return {"type": "image", "source": {"type": "url", "url": source}}


def _lc_content(context: Context, content: tuple[str, Any]) -> Any:
    kind, value = content
    if kind == "plain":
        return value
    blocks: list[Any] = []
    for block_kind, spec in value:
        if block_kind == "image":
            blocks.append(_lc_image(context, spec))
        elif block_kind == "str":
            blocks.append(spec)
        elif block_kind == "text":
            blocks.append({"type": "text", "text": spec})
        else:
            blocks.append(dict(spec))
    return blocks


def _lc_messages(context: Context, specs: list[tuple[str, Any]]) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    for role, content in specs:
        body = _lc_content(context, content)
        if role == "human":
            messages.append(HumanMessage(content=body))
        elif role == "system":
            messages.append(SystemMessage(content=body))
        elif role == "ai":
            messages.append(AIMessage(content=body))
        elif role == "ai_tool_call":
            call = {"name": "ask_image", "args": {"image": "a.png"}, "id": "call_1"}
            messages.append(AIMessage(content=body, tool_calls=[call]))
        else:
            messages.append(ToolMessage(content=body, tool_call_id="call_1"))
    return messages


@given(specs=lc_messages)
@FUZZ
def test_langchain_messages_fuzz(context: Context, specs: list[tuple[str, Any]]) -> None:
    _run(context, lambda: context.lc.invoke(_lc_messages(context, specs)))


# --------------------------------------------------------------------------- LlamaIndex

li_block_spec = st.one_of(
    st.text(max_size=30).map(lambda t: ("text", t)),
    st.tuples(st.sampled_from(IMAGE_FORMS), st.sampled_from([None, "low", "high", "auto"])).map(
        lambda s: ("image", s)
    ),
    st.sampled_from(
        [
            ("video", "https://example.com/clip.mp4"),
            ("audio", None),
            ("document", None),
            ("thinking", None),
            ("tool_call", None),
            ("cache_point", None),
        ]
    ),
)
li_message = st.tuples(
    st.sampled_from(list(MessageRole)), st.lists(li_block_spec, min_size=0, max_size=4)
)
li_messages = st.lists(li_message, min_size=1, max_size=4)


def _li_image(context: Context, spec: tuple[str, Any]) -> Any:
    form, detail = spec
    source = context.raw(form)
    if isinstance(source, Image.Image):
        buffer = io.BytesIO()
        source.save(buffer, format="PNG")
        return ImageBlock(image=buffer.getvalue(), detail=detail)
    if isinstance(source, bytes):
        return ImageBlock(image=source, detail=detail)
    if form in ("path", "missing_path", "text_file_path"):
        return ImageBlock(path=Path(source), detail=detail)
    return ImageBlock(url=source, detail=detail)


def _li_block(context: Context, spec: tuple[str, Any]) -> Any:
    kind, value = spec
    if kind == "text":
        return TextBlock(text=value)
    if kind == "image":
        return _li_image(context, value)
    if kind == "video":
        return VideoBlock(url=value)
    if kind == "audio":
        return AudioBlock(audio=b"RIFF....WAVEfmt ", format="wav")
    if kind == "document":
        return DocumentBlock(data=b"%PDF-1.4 fake", document_mimetype="application/pdf")
    if kind == "thinking":
        return ThinkingBlock(content="let me think")
    if kind == "tool_call":
        return ToolCallBlock(tool_call_id="call_1", tool_name="ask_image", tool_kwargs={"x": 1})
    return CachePoint(cache_control={"type": "ephemeral"})


def _li_messages(context: Context, specs: list[tuple[MessageRole, list[Any]]]) -> list[ChatMessage]:
    messages = []
    for role, blocks in specs:
        extra = {"tool_call_id": "call_1"} if role == MessageRole.TOOL else {}
        messages.append(
            ChatMessage(
                role=role,
                blocks=[_li_block(context, b) for b in blocks],
                additional_kwargs=extra,
            )
        )
    return messages


def _framework_built(build: Callable[[], Any]) -> Any:
    """Objects LlamaIndex itself validates on construction (e.g. ``ImageBlock(path=...)``
    must exist): if LlamaIndex refuses one, our code never sees it; skip the example."""
    try:
        return build()
    except pydantic.ValidationError:
        reject()


@given(specs=li_messages)
@FUZZ
def test_llama_index_messages_fuzz(
    context: Context, specs: list[tuple[MessageRole, list[Any]]]
) -> None:
    llm = context.li
    messages = _framework_built(lambda: _li_messages(context, specs))
    _run(context, lambda: llm.chat(messages))


@given(
    prompt=st.text(max_size=40),
    documents=st.lists(
        st.tuples(st.sampled_from(IMAGE_FORMS), st.sampled_from(["raw", "block", "path"])),
        max_size=3,
    ),
)
@FUZZ
def test_llama_index_complete_with_image_documents_fuzz(
    context: Context, prompt: str, documents: list[tuple[str, str]]
) -> None:
    llm = context.li

    def call() -> Any:
        items: list[Any] = []
        for form, style in documents:
            source = context.raw(form)
            if style == "block" and not isinstance(source, Image.Image):
                items.append(_framework_built(lambda f=form: _li_image(context, (f, None))))
            elif style == "path" and isinstance(source, str):
                items.append(Path(source) if "://" not in source else source)
            else:
                items.append(source)
        return llm.complete(prompt, image_documents=items)

    _run(context, call)


def test_fuzz_figures(context: Context, figures: Figures) -> None:
    """Runs last in this module: reports what the fuzzers saw (and that both paths ran)."""
    if not context.outcomes:
        pytest.skip("reports the fuzz tests of this module: run them too")
    assert context.outcomes.get("answered", 0) > 0
    assert sum(v for k, v in context.outcomes.items() if k != "answered") > 0
    figures.record(
        examples=3 * EXAMPLES,
        requests_sent=len(context.emu.requests),
        refused_by_server=sum(1 for r in context.emu.requests if r.status != 200),
        crashes=0,
        **dict(sorted(context.outcomes.items())),
    )
