"""The LangChain message converters, called directly on literal messages.

``_format_messages`` turns LangChain messages into OpenAI-style dicts whose content
items the core takes; ``siliconvision.prepare_messages`` then makes the wire parts
(explicit ``detail``, data URIs, images moved out of tool messages). Both are pure:
no model, no network. Each test states the exact dicts expected.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_siliconvision import content_from_documents, image_block
from langchain_siliconvision.chat_models import _format_messages
from siliconvision import ContentError, ImageInputError, prepare_messages
from siliconvision.content import Image, Pdf
from siliconvision.images import Base64Image
from tests.imaging import make_image

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"  # default detail: high
VIDEO_MODEL = "Qwen/Qwen3-VL-8B-Instruct"
URL = "https://example.com/cat.png"
PNG = make_image((24, 16), "red")
B64 = base64.b64encode(PNG).decode("ascii")
PNG_URI = "data:image/png;base64," + B64


def wire(messages: list[BaseMessage], model: str = QWEN) -> list[dict[str, Any]]:
    """What the chat model sends for ``messages`` (the core's part, without a client)."""
    return prepare_messages(_format_messages(messages), model=model, cache=None)


def image_url(url: str, detail: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url}
    if detail is not None:
        body["detail"] = detail
    return {"type": "image_url", "image_url": body}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def test__format_messages_text_roles() -> None:
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("Hi"),
        AIMessage("Hello."),
        ChatMessage(role="human", content="And?"),
        ChatMessage(role="developer", content="Rules."),
    ]
    assert _format_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "And?"},
        {"role": "developer", "content": "Rules."},
    ]
    assert wire(messages)[-1] == {"role": "system", "content": "Rules."}  # no developer role


def test__format_messages_image_url_with_detail() -> None:
    messages = [
        HumanMessage(
            content=[
                {"type": "text", "text": "What is it?"},
                {"type": "image_url", "image_url": {"url": URL, "detail": "low"}},
                {"type": "image_url", "image_url": URL},  # the bare-string form
            ]
        )
    ]
    assert _format_messages(messages) == [
        {"role": "user", "content": [text("What is it?"), image_url(URL, "low"), image_url(URL)]}
    ]
    assert wire(messages) == [
        {
            "role": "user",
            "content": [text("What is it?"), image_url(URL, "low"), image_url(URL, "high")],
        }
    ]


def test__format_messages_v1_blocks() -> None:
    messages = [
        HumanMessage(
            content=[
                {"type": "image", "url": URL, "extras": {"detail": "low"}},
                {"type": "image", "base64": B64, "mime_type": "image/png"},
                {"type": "image", "base64": B64},  # no MIME type: the core sniffs it
                {"type": "text", "text": "Same?"},
            ]
        )
    ]
    assert _format_messages(messages) == [
        {
            "role": "user",
            "content": [
                image_url(URL, "low"),
                Image(Base64Image(B64, "image/png")),
                Image(Base64Image(B64)),
                text("Same?"),
            ],
        }
    ]
    assert wire(messages)[0]["content"] == [
        image_url(URL, "low"),
        image_url(PNG_URI, "high"),  # small enough: its own bytes, as they came
        image_url(PNG_URI, "high"),
        text("Same?"),
    ]


def test__format_messages_v0_source_type_blocks() -> None:
    messages = [
        HumanMessage(
            content=[
                {"type": "image", "source_type": "url", "url": URL, "metadata": {"detail": "auto"}},
                {"type": "image", "source_type": "base64", "data": B64, "mime_type": "image/png"},
            ]
        )
    ]
    assert _format_messages(messages)[0]["content"] == [
        image_url(URL, "auto"),
        Image(Base64Image(B64, "image/png")),
    ]
    assert wire(messages)[0]["content"] == [image_url(URL, "auto"), image_url(PNG_URI, "high")]


def test__format_messages_anthropic_source_blocks() -> None:
    messages = [
        HumanMessage(
            content=[
                {"type": "image", "source": {"type": "url", "url": URL}, "detail": "low"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": B64},
                },
            ]
        )
    ]
    assert _format_messages(messages)[0]["content"] == [
        image_url(URL, "low"),
        Image(Base64Image(B64, "image/png")),
    ]
    assert wire(messages)[0]["content"] == [image_url(URL, "low"), image_url(PNG_URI, "high")]


def test__format_messages_tool_call_and_tool_images_moved_after() -> None:
    call = {"name": "screenshot", "args": {"page": 2}, "id": "call_1", "type": "tool_call"}
    messages = [
        HumanMessage("Look at page 2."),
        AIMessage("", tool_calls=[call]),
        ToolMessage(
            content=[
                {"type": "text", "text": "Here it is."},
                {"type": "image", "base64": B64, "mime_type": "image/png"},
            ],
            tool_call_id="call_1",
        ),
        AIMessage("It shows a red square."),
    ]
    tool_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "screenshot", "arguments": '{"page": 2}'},
    }
    assert _format_messages(messages) == [
        {"role": "user", "content": "Look at page 2."},
        {"role": "assistant", "content": "", "tool_calls": [tool_call]},
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": [text("Here it is."), Image(Base64Image(B64, "image/png"))],
        },
        {"role": "assistant", "content": "It shows a red square."},
    ]
    assert wire(messages) == [
        {"role": "user", "content": "Look at page 2."},
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": "Here it is.\n[1 image(s) returned by this tool follow in the next "
            "user message]",
        },
        {  # the wire takes text only in tool messages: the image follows, in a user message
            "role": "user",
            "content": [
                text("Images returned by tool call call_1:"),
                image_url(PNG_URI, "high"),
            ],
        },
        {"role": "assistant", "content": "It shows a red square."},
    ]


def test__format_messages_invalid_tool_calls_are_sent_back_as_written() -> None:
    invalid = {"name": "f", "args": "{oops", "id": "c2", "error": None, "type": "invalid_tool_call"}
    message = AIMessage("", invalid_tool_calls=[invalid])  # type: ignore[list-item]
    assert _format_messages([message])[0]["tool_calls"] == [
        {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    ]


def test__format_messages_reasoning_blocks_of_the_model_are_not_sent_back() -> None:
    message = AIMessage(
        content=[
            {"type": "reasoning", "reasoning": "Thinking..."},
            {"type": "text", "text": "Done."},
        ]
    )
    assert _format_messages([message]) == [{"role": "assistant", "content": [text("Done.")]}]
    assert wire([message]) == [{"role": "assistant", "content": "Done."}]


def test__format_messages_video() -> None:
    clip = "https://example.com/clip.mp4"
    mp4 = base64.b64encode(b"\x00\x00\x00\x18ftypmp42" + bytes(64)).decode("ascii")
    messages = [
        HumanMessage(
            content=[
                {"type": "video", "url": clip, "extras": {"fps": 2, "detail": "low"}},
                {"type": "video", "base64": mp4, "mime_type": "video/mp4", "max_frames": 8},
                {"type": "video_url", "video_url": {"url": clip}},
                {"type": "text", "text": "What happens?"},
            ]
        )
    ]
    videos = [
        {"type": "video_url", "video_url": {"url": clip, "detail": "low", "fps": 2}},
        {
            "type": "video_url",
            "video_url": {"url": f"data:video/mp4;base64,{mp4}", "max_frames": 8},
        },
        {"type": "video_url", "video_url": {"url": clip}},
    ]
    assert _format_messages(messages)[0]["content"] == [*videos, text("What happens?")]
    assert wire(messages, VIDEO_MODEL)[0]["content"] == [
        {"type": "video_url", "video_url": {"url": clip, "detail": "low", "fps": 2}},
        {
            "type": "video_url",
            "video_url": {"url": f"data:video/mp4;base64,{mp4}", "detail": "high", "max_frames": 8},
        },
        {"type": "video_url", "video_url": {"url": clip, "detail": "high"}},
        text("What happens?"),
    ]


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ({"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}, "'audio'"),
        ({"type": "file", "base64": "AAAA", "mime_type": "text/plain"}, "'text/plain' cannot"),
        ({"type": "file", "file_id": "file-1", "mime_type": "application/pdf"}, "no files API"),
        ({"type": "file", "mime_type": "application/pdf"}, "needs 'base64'"),
        (
            {"type": "file", "base64": "JVBERi0=", "url": "https://x.test/a.pdf"},
            "both base64 and url",
        ),
        (
            {
                "type": "file",
                "base64": "JVBERi0=",
                "mime_type": "application/pdf",
                "extras": {"pages": [0]},
            },
            "1 for the first page",
        ),
        ({"type": "input_image", "image_url": URL}, "'input_image'"),
        ({"type": "image", "file_id": "file-1"}, "no files API"),
        ({"type": "image", "source_type": "id", "id": "file-1"}, "no files API"),
        ({"type": "image", "source": {"type": "file", "file_id": "f"}}, "no files API"),
        ({"type": "image", "source_type": "ftp", "url": URL}, "source_type 'ftp'"),
        ({"type": "image", "source": {"type": "s3"}}, "source type 's3'"),
        ({"type": "image"}, "needs 'url', 'base64'"),
        ({"type": "image", "base64": B64, "mime_type": "text/plain"}, "'text/plain'"),
        ({"type": "image", "base64": ""}, "non-empty string"),
        ({"type": "image_url", "image_url": {"detail": "low"}}, "image_url.url"),
        ({"type": "video", "base64": "AAAA", "mime_type": "image/png"}, "video/\\* mime_type"),
        ({"type": "video", "file_id": "f"}, "no files API"),
    ],
)
def test__format_messages_refuses_blocks_by_name(block: dict[str, Any], named: str) -> None:
    with pytest.raises(ContentError, match=named) as raised:
        _format_messages([HumanMessage(content=[{"type": "text", "text": "x"}, block])])
    assert "message 0 (human) block 1" in str(raised.value)


@pytest.mark.parametrize(
    ("message", "named"),
    [
        (FunctionMessage(content="42", name="f"), "FunctionMessage is not supported"),
        (ChatMessage(role="function", content="x"), "unsupported chat message role 'function'"),
    ],
)
def test__format_messages_refuses_messages_by_name(message: BaseMessage, named: str) -> None:
    with pytest.raises(ContentError, match=named):
        _format_messages([message])


def test_images_where_the_wire_takes_text_only_are_refused_by_the_core() -> None:
    system = SystemMessage(content=[{"type": "image_url", "image_url": {"url": URL}}])
    assert _format_messages([system]) == [{"role": "system", "content": [image_url(URL)]}]
    with pytest.raises(ContentError, match="'image_url' cannot be sent in this role"):
        wire([system, HumanMessage("hi")])


def test_bad_base64_is_refused_by_the_core_before_anything_is_sent() -> None:
    for block in (
        {"type": "image", "base64": "%%%not base64%%%", "mime_type": "image/png"},
        {"type": "image", "base64": "%%%not base64%%%"},  # no MIME type: same check
    ):
        with pytest.raises(ImageInputError, match="invalid base64"):
            wire([HumanMessage(content=[block])])


@pytest.mark.parametrize(
    "make",
    [
        lambda: PNG,
        lambda: bytearray(PNG),
        lambda: memoryview(PNG),
        lambda: io.BytesIO(PNG),
        lambda: Base64Image(B64),
        lambda: PNG_URI,
    ],
    ids=["bytes", "bytearray", "memoryview", "file object", "Base64Image", "data URI"],
)
def test_image_block_takes_every_form_of_bytes(make: Any) -> None:
    block = {"type": "image", "base64": B64, "mime_type": "image/png"}
    assert image_block(make()) == block
    assert image_block(make(), detail="low") == {**block, "extras": {"detail": "low"}}
    assert wire([HumanMessage(content=[image_block(make())])])[0]["content"] == [
        image_url(PNG_URI, "high")
    ]


def test_content_from_documents_hands_base64_to_the_core() -> None:
    documents = [
        Document("", metadata={"image_base64": B64}),  # no MIME type: sniffed by the core
        Document("", metadata={"image_base64": B64, "mime_type": "image/png", "detail": "low"}),
        Document("a caption"),
    ]
    assert content_from_documents(documents, "Which is red?") == [
        {"type": "image", "base64": B64, "mime_type": "image/png"},
        {"type": "image", "base64": B64, "mime_type": "image/png", "extras": {"detail": "low"}},
        text("a caption"),
        text("Which is red?"),
    ]
    with pytest.raises(ImageInputError, match="invalid base64"):
        content_from_documents([Document("", metadata={"image_base64": "%%%"})])


PDF_B64 = "JVBERi0xLjcK"  # "%PDF-1.7\n": converting reads nothing; the core sniffs it
PDF = "application/pdf"
PDF_URI = f"data:{PDF};base64,{PDF_B64}"


def test__format_messages_pdf_file_blocks() -> None:
    """Standard file blocks, OpenAI's file parts, v0 and Anthropic documents: all become
    a core Pdf (pages and detail from extras) or, for a url, the core's file part."""
    messages = [
        HumanMessage(
            content=[
                {"type": "file", "base64": PDF_B64, "mime_type": "application/pdf"},
                {
                    "type": "file",
                    "base64": PDF_B64,
                    "mime_type": "application/pdf",
                    "extras": {"pages": [3, 1], "detail": "low"},
                },
                {"type": "file", "file": {"filename": "a.pdf", "file_data": PDF_URI}},
                {"type": "file", "source_type": "base64", "mime_type": PDF, "data": PDF_B64},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": PDF, "data": PDF_B64},
                },
                {"type": "file", "url": "https://example.com/a.pdf", "mime_type": PDF},
                {"type": "file", "url": "https://example.com/b.pdf", "extras": {"pages": [2]}},
                {"type": "file", "base64": B64, "mime_type": "image/png"},
                "Summarize.",
            ]
        )
    ]
    pdf = Pdf(Base64Image(PDF_B64, "application/pdf"))
    assert _format_messages(messages) == [
        {
            "role": "user",
            "content": [
                pdf,
                Pdf(Base64Image(PDF_B64, "application/pdf"), pages=[1, 3], detail="low"),
                pdf,
                pdf,
                pdf,
                {"type": "file", "file": {"url": "https://example.com/a.pdf"}},
                {"type": "file", "file": {"url": "https://example.com/b.pdf", "pages": [2]}},
                Image(Base64Image(B64, "image/png")),
                text("Summarize."),
            ],
        }
    ]


def test__format_messages_pdf_in_a_tool_message() -> None:
    tool = ToolMessage(
        content_blocks=[{"type": "file", "base64": PDF_B64, "mime_type": "application/pdf"}],
        tool_call_id="c1",
    )
    assert _format_messages([tool]) == [
        {
            "role": "tool",
            "tool_call_id": "c1",
            "content": [Pdf(Base64Image(PDF_B64, "application/pdf"))],
        }
    ]
