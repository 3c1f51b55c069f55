"""Every input form of SiliconVision, asserted on what LocalSiliconCloud received."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    CacheControl,
    CachePoint,
    ChatMessage,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    VideoBlock,
)
from llama_index.core.schema import ImageDocument, ImageNode, TextNode

from llama_index_siliconvision import SiliconVision
from siliconvision import ContentError, ImageInputError
from siliconvision.testing import LocalSiliconCloud
from siliconvision.wire import ParameterError
from tests.imaging import make_image

from .conftest import INTERNVL, QWEN, VIDEO

MakeLLM = Callable[..., SiliconVision]


def _seen(emu: LocalSiliconCloud) -> list[tuple[int, int, str, str | None, str]]:
    req = emu.last_request
    assert req is not None
    return [(i.width, i.height, i.color_name, i.detail, i.source) for i in req.images]


def _part_types(emu: LocalSiliconCloud, message: int = 0) -> list[str]:
    req = emu.last_request
    assert req is not None
    return [p["type"] for p in req.body["messages"][message]["content"]]


def test_image_blocks_bytes_path_url_in_order_with_detail_and_downscaled(
    llm: SiliconVision, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    path = tmp_path / "blue.png"
    path.write_bytes(make_image((800, 600), "blue"))
    url = emu.serve_url("https://images.example.com/green.png", make_image((50, 40), "green"))
    message = ChatMessage(
        blocks=[
            TextBlock(text="First:"),
            ImageBlock(image=make_image((4000, 3000), "red", "JPEG"), detail="low"),
            TextBlock(text="Second:"),
            ImageBlock(path=path),
            ImageBlock(url=url, detail="auto"),
            TextBlock(text="Compare them."),
        ]
    )
    response = llm.chat([message])

    assert _part_types(emu) == ["text", "image_url", "text", "image_url", "image_url", "text"]
    assert _seen(emu) == [
        (597, 448, "red", "low", "data"),  # downsized for low: aspect kept, 448 rows
        (800, 600, "blue", "high", "data"),  # catalog default detail, written explicitly
        (50, 40, "green", "auto", "url"),  # a URL stays a URL: no client-side download
    ]
    req = emu.last_request
    assert req is not None
    assert req.body["messages"][0]["content"][4]["image_url"]["url"] == url
    assert response.message.content is not None
    lines = response.message.content.splitlines()
    assert lines[0] == "I see 3 images."
    assert lines[1] == 'Text: "First:"'
    assert lines[-1] == 'Text: "Compare them."'


def test_detail_precedence_block_then_call_then_instance(
    make_llm: MakeLLM, emu: LocalSiliconCloud
) -> None:
    llm = make_llm(detail="low")
    message = ChatMessage(
        blocks=[
            ImageBlock(image=make_image(color="red"), detail="auto"),
            ImageBlock(image=make_image(color="blue")),
            TextBlock(text="?"),
        ]
    )
    llm.chat([message])
    assert [s[3] for s in _seen(emu)] == ["auto", "low"]
    llm.chat([message], detail="high")
    assert [s[3] for s in _seen(emu)] == ["auto", "high"]


def test_high_detail_downsizes_to_the_models_pixel_limit(
    llm: SiliconVision, emu: LocalSiliconCloud
) -> None:
    huge = make_image((5000, 5000), "orange", "JPEG")
    llm.chat([ChatMessage(blocks=[ImageBlock(image=huge, detail="high"), TextBlock(text="?")])])
    ((width, height, colour, detail, _),) = _seen(emu)
    assert (colour, detail) == ("orange", "high")
    assert width == height and width % 28 == 0 and width * height <= 3584 * 3584
    assert width < 5000


@pytest.mark.parametrize(
    ("model", "image_order", "expected"),
    [
        (INTERNVL, "auto", ["image_url", "image_url", "text"]),  # catalog: images first
        (INTERNVL, "preserve", ["text", "image_url", "image_url"]),
        (QWEN, "auto", ["text", "image_url", "image_url"]),  # catalog: caller's order
        (QWEN, "images_first", ["image_url", "image_url", "text"]),
    ],
)
def test_image_order(
    make_llm: MakeLLM,
    emu: LocalSiliconCloud,
    model: str,
    image_order: str,
    expected: list[str],
) -> None:
    llm = make_llm(model=model, image_order=image_order)
    message = ChatMessage(
        blocks=[
            TextBlock(text="Describe:"),
            ImageBlock(image=make_image(color="red")),
            ImageBlock(image=make_image(color="blue")),
        ]
    )
    llm.chat([message])
    assert _part_types(emu) == expected
    assert [s[2] for s in _seen(emu)] == ["red", "blue"]  # images keep their own order


def test_image_order_per_call(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    message = ChatMessage(blocks=[TextBlock(text="?"), ImageBlock(image=make_image())])
    llm.chat([message], image_order="images_first")
    assert _part_types(emu) == ["image_url", "text"]


def test_fetch_urls_downloads_only_when_asked(make_llm: MakeLLM, emu: LocalSiliconCloud) -> None:
    url = emu.add_file("big.png", make_image((2000, 1000), "cyan"))
    message = ChatMessage(blocks=[ImageBlock(url=url, detail="low"), TextBlock(text="?")])
    make_llm().chat([message])
    assert _seen(emu) == [(2000, 1000, "cyan", "low", "url")]
    assert emu.file_requests == []  # the client never fetched it
    sent = len(emu.requests)
    with pytest.raises(ImageInputError, match="loopback"):  # the SSRF guard: 127.0.0.1
        make_llm(fetch_urls=True).chat([message])
    assert emu.file_requests == [] and len(emu.requests) == sent
    make_llm(fetch_urls=True, allow_private_urls=True).chat([message])
    assert _seen(emu) == [(896, 448, "cyan", "low", "data")]  # fetched, then downsized


def test_video_block_for_video_models(make_llm: MakeLLM, emu: LocalSiliconCloud) -> None:
    llm = make_llm(model=VIDEO)
    clip = "https://videos.example.com/clip.mp4"
    message = ChatMessage(
        blocks=[VideoBlock(url=clip, fps=2, detail="low"), TextBlock(text="What happens?")]
    )
    response = llm.chat([message])
    req = emu.last_request
    assert req is not None
    video = req.body["messages"][0]["content"][0]
    assert video == {"type": "video_url", "video_url": {"url": clip, "detail": "low", "fps": 2}}
    assert response.message.content is not None
    assert f"Video 1: {clip}." in response.message.content


def test_video_block_bytes_become_a_data_uri(make_llm: MakeLLM, emu: LocalSiliconCloud) -> None:
    clip = b"\x00\x00\x00\x18ftypmp42" + bytes(64)  # an MP4 header is enough here
    message = ChatMessage(blocks=[VideoBlock(video=clip, video_mimetype="video/mp4")])
    make_llm(model=VIDEO).chat([message])
    req = emu.last_request
    assert req is not None
    video = req.body["messages"][0]["content"][0]["video_url"]
    assert video["url"].startswith("data:video/mp4;base64,")
    assert video["detail"] == "high"


def test_video_block_refused_by_an_image_only_model(
    llm: SiliconVision, emu: LocalSiliconCloud
) -> None:
    message = ChatMessage(blocks=[VideoBlock(url="https://videos.example.com/clip.mp4")])
    with pytest.raises(ContentError, match="does not take video"):
        llm.chat([message])
    assert emu.requests == []


@pytest.mark.parametrize(
    ("block", "name"),
    [
        (AudioBlock(url="https://example.com/a.mp3"), "AudioBlock"),
        (ThinkingBlock(content="hmm"), "ThinkingBlock"),
        (ToolCallBlock(tool_name="x", tool_kwargs={}), "ToolCallBlock"),
    ],
)
def test_unsupported_blocks_raise_naming_the_block_before_any_request(
    llm: SiliconVision, emu: LocalSiliconCloud, block: object, name: str
) -> None:
    message = ChatMessage(blocks=[TextBlock(text="hi"), block])  # type: ignore[list-item]
    with pytest.raises(ContentError, match=rf"message 0 \(user\) block 1: {name} is not supported"):
        llm.chat([message])
    assert emu.requests == []


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (
            lambda llm: llm.chat([ChatMessage(blocks=[ImageBlock(image=b"not an image at all")])]),
            ImageInputError,
        ),
        (
            lambda llm: llm.chat(
                [ChatMessage(blocks=[ImageBlock(image=make_image(), detail="ultra")])]
            ),
            ContentError,
        ),
        (lambda llm: llm.complete("?", image_documents=["/no/such/image.png"]), ImageInputError),
        (lambda llm: llm.complete("?", image_documents=[TextNode(text="no image")]), ContentError),
        (lambda llm: llm.complete("?", image_documents=[42]), ContentError),
        (
            lambda llm: list(llm.stream_complete("?", image_documents=[b"GIF89a broken"])),
            ImageInputError,
        ),
        (
            lambda llm: llm.chat(
                [ChatMessage(role="system", blocks=[ImageBlock(image=make_image())])]
            ),
            ContentError,
        ),
        (lambda llm: llm.chat([ChatMessage(content="hi")], temperature=9.0), ParameterError),
        (lambda llm: llm.chat([ChatMessage(content="hi")], no_such_parameter=1), ParameterError),
    ],
    ids=[
        "not-an-image",
        "bad-detail",
        "missing-file",
        "node-without-image",
        "int",
        "broken-gif-streaming",
        "image-in-system-message",
        "temperature-out-of-range",
        "unknown-parameter",
    ],
)
def test_bad_inputs_raise_before_any_request(
    llm: SiliconVision,
    emu: LocalSiliconCloud,
    call: Callable[[SiliconVision], object],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        call(llm)
    assert emu.requests == []


def test_image_input_error_names_the_source(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    with pytest.raises(ImageInputError, match=r"not-an-image\.png"):
        llm.complete("?", image_documents=["/tmp/not-an-image.png"])
    assert emu.requests == []


def test_bad_settings_fail_at_construction(emu: LocalSiliconCloud) -> None:
    with pytest.raises(ValueError, match="thinking_budget"):
        SiliconVision(api_key=emu.api_key, base_url=emu.base_url, thinking_budget=5)
    with pytest.raises(ValueError):
        SiliconVision(api_key=emu.api_key, base_url=emu.base_url, image_order="random")


def test_complete_with_mixed_image_documents_keeps_rank_and_sends_prompt_once(
    llm: SiliconVision, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    green = tmp_path / "green.png"
    green.write_bytes(make_image(color="green"))
    blue = tmp_path / "blue.png"
    blue.write_bytes(make_image(color="blue"))
    yellow_url = emu.serve_url("https://images.example.com/y.png", make_image(color="yellow"))
    black = tmp_path / "black.png"
    black.write_bytes(make_image(color="black"))
    documents: list[object] = [
        ImageDocument(image=base64.b64encode(make_image(color="red")).decode()),
        ImageNode(image_path=str(green), text="a caption that is not sent"),
        ImageBlock(url=yellow_url, detail="low"),
        str(blue),
        black,
        make_image(color="white"),
        emu.serve_url("https://images.example.com/p.png", make_image(color="purple")),
    ]
    response = llm.complete("Which one is warm?", image_documents=documents)

    assert [s[2] for s in _seen(emu)] == [
        "red",
        "green",
        "yellow",
        "blue",
        "black",
        "white",
        "purple",
    ]
    assert [s[3] for s in _seen(emu)] == ["high", "high", "low", "high", "high", "high", "high"]
    req = emu.last_request
    assert req is not None
    texts = [p["text"] for p in req.body["messages"][0]["content"] if p["type"] == "text"]
    assert texts == ["Which one is warm?"]  # the prompt, once, after the images
    assert _part_types(emu)[-1] == "text"
    assert response.text.splitlines()[0] == "I see 7 images."
    assert response.additional_kwargs["prompt_tokens"] > 0


async def test_acomplete_with_image_nodes_and_call_detail(
    llm: SiliconVision, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    path = tmp_path / "red.png"
    path.write_bytes(make_image((1200, 900), "red"))
    url = emu.serve_url("https://images.example.com/b.png", make_image(color="blue"))
    nodes = [ImageNode(image_url=url), ImageNode(image_path=str(path))]
    response = await llm.acomplete("Describe.", image_documents=nodes, detail="low")
    assert _seen(emu) == [(64, 48, "blue", "low", "url"), (597, 448, "red", "low", "data")]
    assert "Image 2: 597x448" in response.text


def test_image_documents_positionally_in_multimodal_llm_style(
    llm: SiliconVision, emu: LocalSiliconCloud
) -> None:
    llm.complete("?", [make_image(color="red"), make_image(color="blue")])
    assert [s[2] for s in _seen(emu)] == ["red", "blue"]
    with pytest.raises(TypeError, match="given twice"):
        llm.complete("?", [make_image()], image_documents=[make_image()])


def test_image_document_from_a_loopback_url(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    url = emu.add_file("doc.png", make_image(color="magenta"))
    document = ImageDocument(image_url=url)  # LlamaIndex itself fetches the URL to check it
    llm.complete("?", image_documents=[document])
    assert _seen(emu) == [(64, 48, "magenta", "high", "url")]  # sent as a URL, not as bytes
    agents = {r.headers.get("user-agent", "").split("/")[0] for r in emu.file_requests}
    assert agents <= {"python-requests"}  # only LlamaIndex's check, never our client


def test_history_thinking_dropped_tool_calls_kept_tool_images_moved(
    llm: SiliconVision, emu: LocalSiliconCloud
) -> None:
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="Be brief."),
        ChatMessage(content="Find the picture of the cat."),
        ChatMessage(
            role=MessageRole.ASSISTANT,
            blocks=[
                ThinkingBlock(content="I should call the camera tool."),
                TextBlock(text=""),
                ToolCallBlock(tool_call_id="call_1", tool_name="camera", tool_kwargs={"n": 1}),
            ],
        ),
        ChatMessage(
            role=MessageRole.TOOL,
            blocks=[TextBlock(text="Here it is."), ImageBlock(image=make_image(color="brown"))],
            additional_kwargs={"tool_call_id": "call_1"},
        ),
        ChatMessage(
            role=MessageRole.USER,
            blocks=[CachePoint(cache_control=CacheControl(type="ephemeral")), TextBlock(text="?")],
        ),
    ]
    llm.chat(messages)
    req = emu.last_request
    assert req is not None
    sent = req.body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "user", "user"]
    assert sent[0]["content"] == "Be brief."
    assistant = sent[2]
    assert "reasoning_content" not in assistant and "camera tool" not in str(assistant)
    assert assistant["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "camera", "arguments": '{"n": 1}'},
        }
    ]
    assert sent[3]["tool_call_id"] == "call_1"
    assert sent[3]["content"].startswith("Here it is.")
    assert [p["type"] for p in sent[4]["content"]] == ["text", "image_url"]
    assert sent[5]["content"] == [{"type": "text", "text": "?"}]
    assert _seen(emu) == [(64, 48, "brown", "high", "data")]
    assert req.images[0].message_index == 4  # moved into the user message after the tool


def test_legacy_tool_calls_in_additional_kwargs(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    legacy = {"id": "c9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        ChatMessage(content="go"),
        ChatMessage(
            role=MessageRole.ASSISTANT, content="", additional_kwargs={"tool_calls": [legacy]}
        ),
        ChatMessage(
            role=MessageRole.TOOL, content="done", additional_kwargs={"tool_call_id": "c9"}
        ),
    ]
    llm.chat(messages)
    req = emu.last_request
    assert req is not None
    assert req.body["messages"][1]["tool_calls"] == [legacy]


def test_file_urls_in_blocks_are_read_only_inside_allowed_dirs(
    make_llm: MakeLLM, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    path = tmp_path / "red.png"
    path.write_bytes(make_image((20, 10), "red"))
    by_url = ChatMessage(blocks=[ImageBlock(url=path.as_uri()), TextBlock(text="?")])
    with pytest.raises(ImageInputError, match=r"is a file: URL.*allowed_dirs=\[\.\.\.\]"):
        make_llm().chat([by_url])
    with pytest.raises(ImageInputError, match="is a file: URL"):
        make_llm().complete("?", image_documents=[path.as_uri()])
    assert emu.requests == []
    make_llm(allowed_dirs=[tmp_path]).chat([by_url])
    assert _seen(emu) == [(20, 10, "red", "high", "data")]
    # ImageBlock(path=...) is the program's own choice: read with no allowed_dirs.
    make_llm().chat([ChatMessage(blocks=[ImageBlock(path=path), TextBlock(text="?")])])
    assert _seen(emu) == [(20, 10, "red", "high", "data")]


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_bytearray_and_memoryview_images(
    make_llm: MakeLLM, emu: LocalSiliconCloud, wrap: Any
) -> None:
    make_llm().complete("?", image_documents=[wrap(make_image((20, 10), "red"))])
    assert _seen(emu) == [(20, 10, "red", "high", "data")]
    make_llm().complete("?", image_documents=wrap(make_image((20, 10), "blue")))
    assert _seen(emu) == [(20, 10, "blue", "high", "data")]
