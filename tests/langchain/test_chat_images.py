"""Every image form a LangChain user writes, checked on what LocalSiliconCloud received."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from PIL import Image

from langchain_siliconvision import ChatSiliconVision, image_block
from siliconvision import ContentError, ImageInputError
from siliconvision.testing import LocalSiliconCloud
from tests.imaging import make_image
from tests.langchain.support import EXAMPLE_IMAGES, INTERNVL, QWEN, emulator_params


@pytest.fixture
def llm(emu: LocalSiliconCloud) -> ChatSiliconVision:
    return ChatSiliconVision(**emulator_params(model=QWEN))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def seen(emu: LocalSiliconCloud) -> list[tuple[int, int, str, str, str | None, str]]:
    request = emu.last_request
    assert request is not None and request.status == 200, request
    return [(i.width, i.height, i.format, i.color_name, i.detail, i.source) for i in request.images]


def wire_parts(emu: LocalSiliconCloud, message: int = -1) -> list[str]:
    """The part types of one wire message, text parts shown as ``text:<text>``."""
    request = emu.last_request
    assert request is not None
    content = request.body["messages"][message]["content"]
    return [p["type"] if p["type"] != "text" else f"text:{p['text']}" for p in content]


def test_every_image_form_arrives_in_order_with_its_detail(
    llm: ChatSiliconVision, emu: LocalSiliconCloud
) -> None:
    url = emu.serve_url("https://images.example.com/blue.png", make_image((40, 30), "blue"))
    pil = Image.new("RGB", (50, 20), "yellow")
    message = HumanMessage(
        content=[
            {"type": "text", "text": "Compare:"},
            {  # OpenAI image_url, data URI, with detail
                "type": "image_url",
                "image_url": {"url": f"data:image/png;base64,{b64(make_image())}", "detail": "low"},
            },
            {"type": "image_url", "image_url": {"url": url, "detail": "high"}},  # OpenAI, URL
            {  # v1 standard base64 block, detail in extras
                "type": "image",
                "base64": b64(make_image((30, 30), "green", "JPEG")),
                "mime_type": "image/jpeg",
                "extras": {"detail": "auto"},
            },
            {"type": "image", "url": url},  # v1 standard URL block, no detail
            {  # the older v0 form
                "type": "image",
                "source_type": "base64",
                "data": b64(make_image((20, 10), "white")),
                "mime_type": "image/png",
            },
            {"type": "image", "source_type": "url", "url": url, "detail": "low"},
            image_block(EXAMPLE_IMAGES / "red_circle.png", detail="low"),  # local path
            image_block(make_image((16, 16), "black", "WEBP")),  # bytes
            image_block(pil, detail="high"),  # PIL
            {  # Anthropic's source form
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": b64(make_image())},
            },
            "What differs?",
        ]
    )
    llm.invoke([message])
    assert seen(emu) == [
        (64, 48, "PNG", "red", "low", "data"),
        (40, 30, "PNG", "blue", "high", "url"),
        (30, 30, "JPEG", "green", "auto", "data"),
        (40, 30, "PNG", "blue", "high", "url"),  # no detail: the catalog's, explicit
        (20, 10, "PNG", "white", "high", "data"),
        (40, 30, "PNG", "blue", "low", "url"),
        (256, 256, "PNG", "red", "low", "data"),
        (16, 16, "WEBP", "black", "high", "data"),
        (50, 20, "PNG", "yellow", "high", "data"),
        (64, 48, "PNG", "red", "high", "data"),
    ]
    parts = wire_parts(emu)
    assert parts[0] == "text:Compare:" and parts[-1] == "text:What differs?"
    assert parts[1:-1] == ["image_url"] * 10


def test_images_are_downsized_to_what_the_model_keeps(
    llm: ChatSiliconVision, emu: LocalSiliconCloud
) -> None:
    big = make_image((6000, 4000), "red", "JPEG")
    llm.invoke([HumanMessage(content=[image_block(big), image_block(big, detail="low"), "Sizes?"])])
    # Qwen-VL: high keeps at most 3584*3584 pixels in multiples of 28; low keeps the
    # aspect ratio with the shorter side at 448 (whichever way the server makes 448x448).
    assert [(w, h, d) for w, h, _, _, d, _ in seen(emu)] == [
        (4368, 2912, "high"),
        (672, 448, "low"),
    ]


def test_detail_precedence_block_then_call_then_instance_then_catalog(
    emu: LocalSiliconCloud,
) -> None:
    image = {"type": "image", "base64": b64(make_image()), "mime_type": "image/png"}
    own = {**image, "extras": {"detail": "high"}}
    message = HumanMessage(content=[own, image, "?"])
    ChatSiliconVision(**emulator_params(model=QWEN)).invoke([message])
    assert [s[4] for s in seen(emu)] == ["high", "high"]  # catalog default
    instance = ChatSiliconVision(**emulator_params(model=QWEN, detail="low"))
    instance.invoke([message])
    assert [s[4] for s in seen(emu)] == ["high", "low"]
    instance.invoke([message], detail="auto")
    assert [s[4] for s in seen(emu)] == ["high", "auto"]


def test_internvl_gets_images_before_text_unless_told_otherwise(emu: LocalSiliconCloud) -> None:
    message = HumanMessage(content=["First text", image_block(make_image()), "Last text"])
    internvl = ChatSiliconVision(**emulator_params(model=INTERNVL))
    internvl.invoke([message])
    assert wire_parts(emu) == ["image_url", "text:First text", "text:Last text"]
    internvl.invoke([message], image_order="preserve")
    assert wire_parts(emu) == ["text:First text", "image_url", "text:Last text"]
    ChatSiliconVision(**emulator_params(model=QWEN)).invoke([message])
    assert wire_parts(emu) == ["text:First text", "image_url", "text:Last text"]


def test_tool_message_images_move_to_a_following_user_message(
    llm: ChatSiliconVision, emu: LocalSiliconCloud
) -> None:
    messages = [
        HumanMessage("Take two photos and compare them."),
        AIMessage(
            "",
            tool_calls=[{"name": "camera", "args": {"n": 2}, "id": "call_1", "type": "tool_call"}],
        ),
        ToolMessage(
            content=[
                {"type": "text", "text": "two photos"},
                image_block(make_image((32, 32), "green")),
                {
                    "type": "image_url",
                    "image_url": {"url": f"data:image/png;base64,{b64(make_image())}"},
                },
            ],
            tool_call_id="call_1",
        ),
    ]
    llm.invoke(messages)
    body = emu.last_request.body  # type: ignore[union-attr]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "tool", "user"]
    assert body["messages"][1]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "camera", "arguments": '{"n": 2}'},
        }
    ]
    tool = body["messages"][2]
    assert tool["tool_call_id"] == "call_1" and tool["content"].startswith("two photos")
    assert [(s[3], s[5]) for s in seen(emu)] == [("green", "data"), ("red", "data")]
    assert [i.message_index for i in emu.last_request.images] == [3, 3]  # type: ignore[union-attr]


def test_system_and_conversation_roles(llm: ChatSiliconVision, emu: LocalSiliconCloud) -> None:
    llm.invoke(
        [SystemMessage("Be brief."), HumanMessage("hi"), AIMessage("hello"), HumanMessage("?")]
    )
    body = emu.last_request.body  # type: ignore[union-attr]
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("system", "Be brief."),
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "?"),
    ]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"type": "image", "file_id": "file-123"}, "no files API"),
        ({"type": "image", "source_type": "id", "id": "file-9"}, "no files API"),
        ({"type": "file", "base64": "aGk=", "mime_type": "text/plain"}, "'text/plain'"),
        ({"type": "audio", "base64": "UklGRg==", "mime_type": "audio/wav"}, "'audio'"),
        # LangChain itself turns OpenAI input_audio into a standard audio block first
        ({"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}, "'audio'"),
        ({"type": "mystery", "x": 1}, "'mystery'"),
    ],
)
def test_unsendable_blocks_raise_clearly_before_any_request(
    llm: ChatSiliconVision, emu: LocalSiliconCloud, block: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ContentError, match=expected):
        llm.invoke([HumanMessage(content=[block, "what is this?"])])
    assert emu.requests == []


def test_bad_images_raise_before_any_request(
    llm: ChatSiliconVision, emu: LocalSiliconCloud, tmp_path: Any
) -> None:
    with pytest.raises(ImageInputError, match=r"does not exist|no such|missing"):
        image_block(tmp_path / "missing.png")
    not_image = {"type": "image", "base64": b64(b"hello, not an image"), "mime_type": "image/png"}
    with pytest.raises(ImageInputError, match=r"not an image|unidentified|cannot identify"):
        llm.invoke([HumanMessage(content=[not_image])])
    not_base64 = {"type": "image", "base64": "%%%not-base64%%%", "mime_type": "image/png"}
    with pytest.raises(ImageInputError):
        llm.invoke([HumanMessage(content=[not_base64])])
    with pytest.raises(ContentError, match="system"):
        llm.invoke([SystemMessage(content=[image_block(make_image())]), HumanMessage("hi")])
    assert emu.requests == []


def test_image_block_shapes() -> None:
    block = image_block(make_image((10, 10), "blue", "JPEG"), detail="low")
    assert block["type"] == "image" and block.get("mime_type") == "image/jpeg"
    assert block.get("extras") == {"detail": "low"}
    assert Image.open(io.BytesIO(base64.b64decode(block["base64"]))).size == (10, 10)  # type: ignore[typeddict-item]
    url_block = image_block("https://example.com/a.png")
    assert url_block == {"type": "image", "url": "https://example.com/a.png"}
    # With a model, the block is downsized now (to what that model keeps for low).
    small = image_block(make_image((4000, 3000)), detail="low", model=QWEN)
    decoded = Image.open(io.BytesIO(base64.b64decode(small["base64"])))  # type: ignore[typeddict-item]
    assert decoded.size == (597, 448)
    with pytest.raises(ValueError, match="detail"):
        image_block(make_image(), detail="medium")  # type: ignore[arg-type]


async def test_async_invoke_sends_the_same_images(
    llm: ChatSiliconVision, emu: LocalSiliconCloud
) -> None:
    photo = make_image((1600, 1200), "blue", "JPEG")
    message = HumanMessage(content=[image_block(photo, detail="low"), "?"])
    result = await llm.ainvoke([message])
    assert seen(emu) == [(597, 448, "JPEG", "blue", "low", "data")]
    assert "Image 1: 597x448 JPEG, detail low" in result.text


def test_video_blocks_reach_video_models_only(emu: LocalSiliconCloud) -> None:
    video = {
        "type": "video",
        "url": "https://videos.example.com/clip.mp4",
        "extras": {"max_frames": 8, "fps": 1.0, "detail": "low"},
    }
    message = HumanMessage(content=[video, "What happens?"])
    ChatSiliconVision(**emulator_params(model="Qwen/Qwen3-VL-8B-Instruct")).invoke([message])
    content = emu.last_request.body["messages"][0]["content"]  # type: ignore[union-attr]
    assert content[0] == {
        "type": "video_url",
        "video_url": {
            "url": "https://videos.example.com/clip.mp4",
            "detail": "low",
            "max_frames": 8,
            "fps": 1.0,
        },
    }
    with pytest.raises(ContentError, match="does not take video"):
        ChatSiliconVision(**emulator_params(model=QWEN)).invoke([message])


def test_message_urls_name_local_files_only_when_the_program_opts_in(
    llm: ChatSiliconVision, emu: LocalSiliconCloud, tmp_path: Any
) -> None:
    """The issue's first report: a message url that is a local path is not read by
    default (ChatOpenAI would send the string; the server answers 400); with
    allowed_dirs, every url form may name a file inside them; image_block(path), the
    program's own choice, works either way."""
    (tmp_path / "red.png").write_bytes(make_image((20, 10), "red"))
    forms = [
        {"type": "image", "url": "red.png"},
        {"type": "image_url", "image_url": {"url": "red.png"}},
        {"type": "image", "source_type": "url", "url": "red.png"},
        {"type": "image", "url": (tmp_path / "red.png").as_uri()},
    ]
    for block in forms:
        with pytest.raises(ImageInputError, match=r"allowed_dirs=\[\.\.\.\]"):
            llm.invoke([HumanMessage(content=[block, "?"])])
    assert emu.requests == []
    opted = ChatSiliconVision(**emulator_params(model=QWEN, allowed_dirs=[tmp_path]))
    for block in forms:
        opted.invoke([HumanMessage(content=[block, "?"])])
        assert seen(emu) == [(20, 10, "PNG", "red", "high", "data")]
    llm.invoke([HumanMessage(content=[image_block(tmp_path / "red.png"), "?"])])
    assert seen(emu) == [(20, 10, "PNG", "red", "high", "data")]
    assert len(emu.requests) == len(forms) + 1


def test_chat_model_pickles_without_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    monkeypatch.delenv("SILICONFLOW_API_KEY", raising=False)
    monkeypatch.delenv("SILICONCLOUD_API_KEY", raising=False)
    llm = ChatSiliconVision(api_key="sk-PICKLE-ME-NOT-123", allowed_dirs="photos")
    data = pickle.dumps(llm)
    assert b"PICKLE-ME-NOT" not in data
    copy = pickle.loads(data)
    assert copy.api_key is None and copy.allowed_dirs == ["photos"]  # the env has none
    assert llm.api_key is not None and llm.api_key.get_secret_value() == "sk-PICKLE-ME-NOT-123"
    monkeypatch.setenv("SILICONFLOW_API_KEY", "sk-from-env")
    restored = pickle.loads(data)  # an unpickled copy reads its own environment
    assert restored.api_key is not None and restored.api_key.get_secret_value() == "sk-from-env"
