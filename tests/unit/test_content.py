"""Content building: order, detail, media checks, tool-message images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from siliconvision.catalog import get_model_spec
from siliconvision.content import Image, Video, build_content, prepare_messages, resolve_detail
from siliconvision.errors import ContentError, ImageInputError
from tests.imaging import decode_part, make_image

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
INTERNVL = "OpenGVLab/InternVL2-26B"
RED, BLUE = make_image(color="red"), make_image(color="blue")


def kinds(parts: list[dict[str, Any]]) -> list[str]:
    return [p["type"] for p in parts]


def colors(parts: list[dict[str, Any]]) -> list[tuple[int, ...]]:
    return [
        decode_part(p).convert("RGB").getpixel((0, 0)) for p in parts if p["type"] == "image_url"
    ]


def test_auto_order_puts_images_first_for_internvl_only() -> None:
    items = ["Compare", RED, "and", BLUE]
    qwen = build_content(items, model=QWEN)
    assert kinds(qwen) == ["text", "image_url", "text", "image_url"]
    internvl = build_content(items, model=INTERNVL)
    assert kinds(internvl) == ["image_url", "image_url", "text", "text"]
    assert [p["text"] for p in internvl if p["type"] == "text"] == ["Compare", "and"]
    assert colors(internvl) == [(255, 0, 0), (0, 0, 255)]  # relative image order kept


def test_explicit_orders_override_the_catalog() -> None:
    items = ["Compare", RED, BLUE]
    assert kinds(build_content(items, model=QWEN, image_order="images_first")) == [
        "image_url",
        "image_url",
        "text",
    ]
    assert kinds(build_content(items, model=INTERNVL, image_order="preserve")) == [
        "text",
        "image_url",
        "image_url",
    ]
    with pytest.raises(ContentError, match="image_order must be one of"):
        build_content(items, model=QWEN, image_order="random")  # type: ignore[arg-type]


def test_detail_precedence_image_then_call_then_instance_then_catalog() -> None:
    def details(**kwargs: Any) -> list[str]:
        parts = build_content([Image(RED, detail="low"), BLUE], model=QWEN, **kwargs)
        return [p["image_url"]["detail"] for p in parts]

    assert details() == ["low", "high"]  # catalog default is explicit on the wire
    assert details(default_detail="auto") == ["low", "auto"]
    assert details(detail="high", default_detail="low") == ["low", "high"]
    assert resolve_detail(None, None, spec=get_model_spec(QWEN)) == "high"
    with pytest.raises(ContentError, match="detail must be one of"):
        build_content([RED], model=QWEN, detail="medium")  # type: ignore[arg-type]


def test_every_item_form_becomes_a_part(tmp_path: Path) -> None:
    path = tmp_path / "green.png"
    path.write_bytes(make_image(color="green"))
    items: list[Any] = [
        "text",
        {"type": "text", "text": "dict text"},
        path,
        bytearray(RED),
        PILImage.new("RGB", (10, 10), "blue"),
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
        {"type": "image_url", "image_url": "https://example.com/b.png"},
    ]
    parts = build_content(items, model=QWEN)
    assert kinds(parts) == ["text", "text"] + ["image_url"] * 5
    assert parts[5]["image_url"] == {"url": "https://example.com/a.png", "detail": "low"}
    assert parts[6]["image_url"] == {"url": "https://example.com/b.png", "detail": "high"}
    assert colors(parts[2:5]) == [(0, 128, 0), (255, 0, 0), (0, 0, 255)]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"type": "audio", "data": "x"}, "'audio' is not supported"),
        ({"type": "text", "text": 3}, "text must be a string"),
        ({"type": "image_url", "image_url": {"detail": "low"}}, "image_url.url"),
        (42, "cannot send an item of type int"),
        (None, "cannot send an item of type NoneType"),
    ],
)
def test_unsupported_items_raise_never_drop(item: Any, message: str) -> None:
    with pytest.raises(ContentError, match=message):
        build_content(["hi", item], model=QWEN)


def test_images_to_a_text_model_raise() -> None:
    with pytest.raises(ContentError, match="does not take images"):
        build_content(["hi", RED], model="Qwen/Qwen2.5-7B-Instruct")


def test_video_only_for_video_models() -> None:
    video = Video("https://example.com/clip.mp4", max_frames=8, fps=1.0)
    with pytest.raises(ContentError, match="does not take video"):
        build_content([video, "what happens?"], model=QWEN)
    parts = build_content([video, "what happens?"], model="Qwen/Qwen3-VL-8B-Instruct")
    assert parts[0] == {
        "type": "video_url",
        "video_url": {
            "url": "https://example.com/clip.mp4",
            "detail": "high",
            "max_frames": 8,
            "fps": 1.0,
        },
    }


def test_local_video_becomes_a_data_uri(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    parts = build_content([Video(clip)], model="Qwen/Qwen3-VL-8B-Instruct")
    assert parts[0]["video_url"]["url"].startswith("data:video/mp4;base64,")
    with pytest.raises(ContentError, match="does not exist"):
        build_content([Video(tmp_path / "nope.mp4")], model="Qwen/Qwen3-VL-8B-Instruct")


def test_bad_image_raises_image_input_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match=r"missing\.png"):
        build_content([tmp_path / "missing.png"], model=QWEN)


def test_tool_images_move_to_a_user_message_after_the_tool_run() -> None:
    messages = [
        {"role": "user", "content": "look up two pictures"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "first"}, RED]},
        {"role": "tool", "tool_call_id": "c2", "content": [BLUE]},
        {"role": "user", "content": "which is warmer?"},
    ]
    prepared = prepare_messages(messages, model=QWEN)
    assert [m["role"] for m in prepared] == ["user", "assistant", "tool", "tool", "user", "user"]
    assert prepared[2]["content"].startswith("first\n[1 image(s)")
    assert isinstance(prepared[3]["content"], str)
    moved = prepared[4]["content"]
    assert kinds(moved) == ["text", "image_url", "text", "image_url"]
    assert "c1" in moved[0]["text"] and "c2" in moved[2]["text"]
    assert colors(moved) == [(255, 0, 0), (0, 0, 255)]
    assert prepared[1]["content"] is None


def test_system_and_assistant_take_text_only() -> None:
    prepared = prepare_messages(
        [
            {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "a"}, "b"]},
        ],
        model=QWEN,
    )
    assert prepared[0] == {"role": "system", "content": "be brief"}
    assert prepared[2]["content"] == "ab"
    with pytest.raises(ContentError, match="cannot be sent in this role"):
        prepare_messages([{"role": "system", "content": [RED]}], model=QWEN)


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([{"role": "robot", "content": "x"}], "unknown role"),
        ([{"role": "tool", "content": "x"}], "tool_call_id"),
        ([{"role": "user", "content": []}], "no content"),
        (["hi"], "must be a dict"),
    ],
)
def test_malformed_messages_raise(messages: Any, message: str) -> None:
    with pytest.raises(ContentError, match=message):
        prepare_messages(messages, model=QWEN)


def test_deepseek_vl2_more_than_two_images_are_sized_to_one_tile() -> None:
    big = make_image((1152, 1152), color="white")
    two = prepare_messages(
        [{"role": "user", "content": [big, big, "?"]}], model="deepseek-ai/deepseek-vl2"
    )
    assert [decode_part(p).size for p in two[0]["content"][:2]] == [(1152, 1152)] * 2
    three = prepare_messages(
        [{"role": "user", "content": [big, big]}, {"role": "user", "content": [big, "?"]}],
        model="deepseek-ai/deepseek-vl2",
    )
    sizes = [decode_part(p).size for m in three for p in m["content"] if p["type"] == "image_url"]
    assert sizes == [(384, 384)] * 3
