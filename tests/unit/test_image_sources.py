"""The one union of image sources and the one dispatch over it.

Every form of :data:`siliconvision.images.ImageSource` is told apart once
(``open_source``), and every core entry point that takes images asks the core
(``is_image_source``) instead of keeping its own list: so ``bytearray``,
``memoryview``, file objects and :class:`Base64Image` work wherever ``bytes`` does.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, get_args

import pytest
from PIL import Image as PILImage

from siliconvision import SiliconVisionClient, build_content, prepare_messages
from siliconvision.errors import ContentError, ImageInputError
from siliconvision.images import (
    Base64Image,
    ImageSource,
    encode_image,
    image_part,
    is_image_source,
    prepare_image,
)
from siliconvision.images._sources import (
    Base64Data,
    Buffer,
    DataURI,
    LocalFile,
    Pixels,
    RemoteImage,
    Stream,
    open_source,
)
from tests.imaging import make_image

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
PNG = make_image((24, 16), "red")
B64 = base64.b64encode(PNG).decode("ascii")

# One sample of every member of the union, and the kind the dispatch names it.
SAMPLES: dict[str, tuple[Callable[[], object], type]] = {
    "url": (lambda: "https://example.com/a.png", RemoteImage),
    "data URI": (lambda: "data:image/png;base64," + B64, DataURI),
    "str path": (lambda: "/no/such/a.png", LocalFile),
    "Path": (lambda: Path("/no/such/a.png"), LocalFile),
    "bytes": (lambda: PNG, Buffer),
    "bytearray": (lambda: bytearray(PNG), Buffer),
    "memoryview": (lambda: memoryview(PNG), Buffer),
    "file object": (lambda: io.BytesIO(PNG), Stream),
    "PIL.Image": (lambda: PILImage.new("RGB", (24, 16), "red"), Pixels),
    "Base64Image": (lambda: Base64Image(B64, "image/png"), Base64Data),
}
# What each entry point must send for PNG, whatever form it came in.
BYTES_FORMS: dict[str, Callable[[], Any]] = {
    "bytes": lambda: PNG,
    "bytearray": lambda: bytearray(PNG),
    "memoryview": lambda: memoryview(PNG),
    "memoryview of bytearray": lambda: memoryview(bytearray(PNG)),
    "file object": lambda: io.BytesIO(PNG),
    "Base64Image": lambda: Base64Image(B64, "image/png"),
    "Base64Image without a type": lambda: Base64Image(B64),
    "data URI": lambda: "data:image/png;base64," + B64,
}


def test_every_member_of_the_union_has_a_sample() -> None:
    members = {getattr(member, "__origin__", member) for member in get_args(ImageSource)}
    seen = {
        BinaryIO if isinstance(make(), io.IOBase) else type(make()) for make, _ in SAMPLES.values()
    }
    seen = {os.PathLike if issubclass(kind, os.PathLike) else kind for kind in seen}
    seen = {PILImage.Image if issubclass(kind, PILImage.Image) else kind for kind in seen}
    assert members == seen


@pytest.mark.parametrize("form", list(SAMPLES))
def test_the_dispatch_names_each_form_without_reading_it(form: str) -> None:
    make, kind = SAMPLES[form]
    value = make()
    assert is_image_source(value)
    found = open_source(value)
    assert type(found) is kind
    assert found.label  # a name safe to show, made without reading anything
    if isinstance(value, io.BytesIO):
        assert value.tell() == 0  # not read yet
    if isinstance(found, LocalFile):  # not stat-ed yet: a missing file is found when read
        with pytest.raises(ImageInputError, match="file does not exist"):
            found.read()


@pytest.mark.parametrize("value", [3, 2.5, None, ["a.png"], ("a.png",), {"url": "x"}, object()])
def test_what_is_not_an_image_source_is_refused_by_type(value: object) -> None:
    assert not is_image_source(value)
    with pytest.raises(
        ImageInputError, match=f"unsupported image source type {type(value).__name__}"
    ):
        open_source(value)
    with pytest.raises(ImageInputError, match="unsupported image source type"):
        prepare_image(value, cache=None)  # type: ignore[arg-type]
    with pytest.raises(ImageInputError, match="unsupported image source type"):
        encode_image(value, cache=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("form", list(BYTES_FORMS))
def test_every_core_entry_point_takes_every_form_of_bytes(form: str) -> None:
    make = BYTES_FORMS[form]
    expected = prepare_image(PNG, model=QWEN, cache=None).to_part()
    assert prepare_image(make(), model=QWEN, cache=None).to_part() == expected
    assert image_part(make(), model=QWEN, cache=None) == expected
    assert base64.b64decode(encode_image(make(), cache=None).data) == PNG
    if not isinstance(make(), str):  # in content, a str is text
        assert build_content(make(), model=QWEN, cache=None) == [expected]
        assert build_content(["What?", make()], model=QWEN, cache=None)[1] == expected
        messages = [
            {"role": "user", "content": [make(), "What?"]},
            {"role": "assistant", "content": "", "tool_calls": [_call("t1")]},
            {"role": "tool", "tool_call_id": "t1", "content": ["found:", make()]},
        ]
        prepared = prepare_messages(messages, model=QWEN, cache=None)
        assert prepared[0]["content"][0] == expected
        assert prepared[3]["content"][1] == expected  # the tool's image, moved after
    client = SiliconVisionClient(api_key="sk-x", base_url="http://127.0.0.1:9/v1")
    for images in (make(), [make()], (make(), make())):
        sent = client.prepare_messages(client.ask_messages(images, "q"))[0]["content"]
        assert sent[:-1] == [expected] * (2 if isinstance(images, tuple) else 1)


def test_base64_is_decoded_by_the_core_only() -> None:
    """Base64 without a declared type (a framework block without ``mime_type``) is
    decoded once, by the core, with the same checks as any other."""
    assert prepare_image(Base64Image(B64), cache=None).mime_type == "image/png"  # sniffed
    assert encode_image(Base64Image(B64), cache=None).data == B64  # clean: kept as it is
    with pytest.raises(ImageInputError, match=r"<base64 \?, 8 chars>.*invalid base64"):
        prepare_image(Base64Image("%%%%%%%%"), cache=None)
    with pytest.raises(ImageInputError, match="not an image"):
        encode_image(Base64Image(base64.b64encode(b"hello").decode()), cache=None)
    with pytest.raises(ImageInputError, match="is not image/<type>"):
        prepare_image(Base64Image(B64, "text/plain"), cache=None)


def test_a_file_object_is_one_item_not_a_sequence_of_lines() -> None:
    # build_content used to iterate a file object (its lines) as if it were a list.
    with open(os.devnull, "rb") as empty, pytest.raises(ImageInputError, match="empty"):
        build_content(empty, model=QWEN, cache=None)
    parts = build_content(io.BytesIO(PNG), model=QWEN, cache=None)
    assert [part["type"] for part in parts] == ["image_url"]


def test_content_refuses_what_is_neither_text_nor_an_image_by_type() -> None:
    with pytest.raises(ContentError, match="cannot send an item of type float"):
        build_content(["What?", 2.5], model=QWEN, cache=None)


def _call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "look", "arguments": "{}"}}
