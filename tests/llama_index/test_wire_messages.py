"""The LlamaIndex wire mapping, called directly on literal messages, blocks and nodes.

``to_wire_messages`` / ``completion_to_wire_messages`` turn LlamaIndex types into
OpenAI-style dicts whose content items are core objects; the core's
``prepare_messages`` then makes the wire parts. Both are pure (no LLM, no network),
and each test states the exact result.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    CacheControl,
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
from llama_index.core.schema import ImageDocument, ImageNode, NodeWithScore, TextNode
from PIL import Image as PILImage

from llama_index_siliconvision.utils import (
    completion_to_wire_messages,
    image_source_to_item,
    to_wire_messages,
)
from siliconvision import ContentError, ImageInputError, prepare_messages
from siliconvision.content import Image, Video
from siliconvision.images import Base64Image
from tests.imaging import make_image

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"  # default detail: high
VIDEO_MODEL = "Qwen/Qwen3-VL-8B-Instruct"
URL = "https://example.com/cat.png"
PNG = make_image((24, 16), "red")
B64 = base64.b64encode(PNG).decode("ascii")
PNG_URI = "data:image/png;base64," + B64


def wire(messages: list[ChatMessage], model: str = QWEN) -> list[dict[str, Any]]:
    return prepare_messages(to_wire_messages(messages), model=model, cache=None)


def image_url(url: str, detail: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, "detail": detail}}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def test_to_wire_messages_text_and_images_with_detail(tmp_path: Path) -> None:
    path = tmp_path / "red.png"
    path.write_bytes(PNG)
    message = ChatMessage(
        blocks=[
            TextBlock(text="Compare:"),
            ImageBlock(url=URL, detail="low"),
            ImageBlock(path=path),
            ImageBlock(image=PNG, detail="auto"),
            ImageBlock(url=PNG_URI),
        ]
    )
    assert to_wire_messages([message]) == [
        {
            "role": "user",
            "content": [
                "Compare:",
                Image(URL, detail="low"),
                Image(path),
                Image(PNG, detail="auto"),
                Image(PNG_URI),
            ],
        }
    ]
    assert wire([message]) == [
        {
            "role": "user",
            "content": [
                text("Compare:"),
                image_url(URL, "low"),
                image_url(PNG_URI, "high"),
                image_url(PNG_URI, "auto"),
                image_url(PNG_URI, "high"),
            ],
        }
    ]


def test_to_wire_messages_file_urls_are_left_to_the_message_policy(tmp_path: Path) -> None:
    path = tmp_path / "red.png"
    path.write_bytes(PNG)
    message = ChatMessage(blocks=[ImageBlock(url=path.as_uri(), detail="low")])
    assert to_wire_messages([message])[0]["content"] == [
        {"type": "image_url", "image_url": {"url": path.as_uri(), "detail": "low"}}
    ]
    with pytest.raises(ImageInputError, match="file: URL"):
        wire([message])  # no allowed_dirs: message content never reads a local file
    prepared = prepare_messages(to_wire_messages([message]), model=QWEN, allowed_dirs=[tmp_path])
    assert prepared[0]["content"] == [image_url(PNG_URI, "low")]


def test_to_wire_messages_tool_calls_and_tool_images_moved_after() -> None:
    messages = [
        ChatMessage(role=MessageRole.USER, content="Show page 2."),
        ChatMessage(
            role=MessageRole.ASSISTANT,
            blocks=[
                ThinkingBlock(content="The tool renders pages."),  # output only: not sent
                TextBlock(text=""),
                ToolCallBlock(tool_call_id="call_1", tool_name="render", tool_kwargs={"page": 2}),
            ],
        ),
        ChatMessage(
            role=MessageRole.TOOL,
            blocks=[TextBlock(text="Rendered."), ImageBlock(image=PNG)],
            additional_kwargs={"tool_call_id": "call_1"},
        ),
    ]
    tool_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "render", "arguments": '{"page": 2}'},
    }
    assert to_wire_messages(messages) == [
        {"role": "user", "content": ["Show page 2."]},
        {"role": "assistant", "content": [""], "tool_calls": [tool_call]},
        {"role": "tool", "content": ["Rendered.", Image(PNG)], "tool_call_id": "call_1"},
    ]
    assert wire(messages) == [
        {"role": "user", "content": [text("Show page 2.")]},
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {
            "role": "tool",
            "content": "Rendered.\n[1 image(s) returned by this tool follow in the next "
            "user message]",
            "tool_call_id": "call_1",
        },
        {
            "role": "user",
            "content": [text("Images returned by tool call call_1:"), image_url(PNG_URI, "high")],
        },
    ]


def test_to_wire_messages_legacy_tool_calls_in_additional_kwargs() -> None:
    message = ChatMessage(
        role=MessageRole.ASSISTANT,
        content="",
        additional_kwargs={
            "tool_calls": [
                {"id": "c9", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
            ]
        },
    )
    assert to_wire_messages([message])[0]["tool_calls"] == [
        {"id": "c9", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    ]


def test_to_wire_messages_video_and_cache_points() -> None:
    clip = "https://example.com/clip.mp4"
    mp4 = b"\x00\x00\x00\x18ftypmp42" + bytes(64)
    message = ChatMessage(
        blocks=[
            VideoBlock(url=clip, fps=2, detail="low"),
            VideoBlock(video=mp4, video_mimetype="video/mp4"),
            CachePoint(cache_control=CacheControl(type="ephemeral")),  # a hint, no content
            TextBlock(text="What happens?"),
        ]
    )
    data_uri = "data:video/mp4;base64," + base64.b64encode(mp4).decode("ascii")
    assert to_wire_messages([message])[0]["content"] == [
        Video(clip, detail="low", fps=2),
        Video(data_uri),
        "What happens?",
    ]
    assert wire([message], VIDEO_MODEL)[0]["content"] == [
        {"type": "video_url", "video_url": {"url": clip, "detail": "low", "fps": 2}},
        {"type": "video_url", "video_url": {"url": data_uri, "detail": "high"}},
        text("What happens?"),
    ]


@pytest.mark.parametrize(
    ("message", "named"),
    [
        (ChatMessage(blocks=[AudioBlock(audio=b"RIFF....WAVE")]), "AudioBlock is not supported"),
        (
            ChatMessage(blocks=[DocumentBlock(data=b"hello", document_mimetype="text/plain")]),
            "DocumentBlock of type 'text/plain' cannot be sent",
        ),
        (ChatMessage(blocks=[ThinkingBlock(content="x")]), "ThinkingBlock is not supported"),
        (
            ChatMessage(blocks=[ToolCallBlock(tool_name="f", tool_kwargs={})]),
            "ToolCallBlock is not supported",
        ),
        (ChatMessage(role=MessageRole.FUNCTION, content="42"), "role 'function'"),
        (ChatMessage(blocks=[VideoBlock(video=b"\x00\x00")]), "set video_mimetype"),
    ],
)
def test_to_wire_messages_refuses_blocks_by_name(message: ChatMessage, named: str) -> None:
    with pytest.raises(ContentError, match=named) as raised:
        to_wire_messages([message])
    assert str(raised.value).startswith("message 0")  # and where in it


def test_completion_to_wire_messages_images_first_in_the_order_given(tmp_path: Path) -> None:
    path = tmp_path / "red.png"
    path.write_bytes(PNG)
    documents: list[object] = [
        ImageDocument(image=B64),
        NodeWithScore(node=ImageNode(image_path=str(path)), score=0.9),
        ImageNode(image_url=URL),
        ImageBlock(url=URL, detail="low"),
        URL,
        str(path),
        path,
    ]
    messages = completion_to_wire_messages("Which is red?", documents)
    assert messages == [
        {
            "role": "user",
            "content": [
                Image(Base64Image(B64)),  # LlamaIndex keeps inline images as base64 text
                Image(path),
                Image(URL),
                Image(URL, detail="low"),
                Image(URL),
                Image(path),
                Image(path),
                "Which is red?",
            ],
        }
    ]
    sent = prepare_messages(messages, model=QWEN, cache=None)[0]["content"]
    assert sent == [
        image_url(PNG_URI, "high"),
        image_url(PNG_URI, "high"),
        image_url(URL, "high"),
        image_url(URL, "low"),
        image_url(URL, "high"),
        image_url(PNG_URI, "high"),
        image_url(PNG_URI, "high"),
        text("Which is red?"),
    ]


@pytest.mark.parametrize(
    "source",
    [
        PNG,
        bytearray(PNG),
        memoryview(PNG),
        Base64Image(B64, "image/png"),
        PILImage.open(io.BytesIO(PNG)),
    ],
    ids=["bytes", "bytearray", "memoryview", "Base64Image", "PIL"],
)
def test_every_core_image_source_is_an_image_document(source: object) -> None:
    assert image_source_to_item(source) == Image(source)  # type: ignore[arg-type]
    for documents in (source, [source]):
        content = completion_to_wire_messages("?", documents)[0]["content"]  # type: ignore[arg-type]
        assert content == [Image(source), "?"]  # type: ignore[arg-type]
        assert prepare_messages([{"role": "user", "content": content}], model=QWEN)[0]["content"][
            0
        ] == image_url(PNG_URI, "high")


def test_image_documents_that_are_no_image_are_refused_by_name() -> None:
    with pytest.raises(ContentError, match=r"TextNode .* carries no image"):
        completion_to_wire_messages("?", [TextNode(text="just text")])
    with pytest.raises(ContentError, match="cannot use a float as an image"):
        completion_to_wire_messages("?", [2.5])
    # LlamaIndex base64-encodes an image that is not base64 yet; the core decodes it
    bad = completion_to_wire_messages("?", [ImageDocument(image="not an image at all")])
    with pytest.raises(ImageInputError, match="not an image"):
        prepare_messages(bad, model=QWEN, cache=None)
