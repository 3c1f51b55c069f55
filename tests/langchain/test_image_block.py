"""``image_block``: checked at once but not decoded; the image is decoded and
downsized once, when ChatSiliconVision sends it (request log of the emulator, decodes
seen on Pillow itself in the test's thread, the image cache's counters)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from PIL import Image

from langchain_siliconvision import ChatSiliconVision, image_block
from siliconvision.errors import ImageInputError
from siliconvision.images import DEFAULT_CACHE
from siliconvision.testing import LocalSiliconCloud
from tests.langchain.support import QWEN, emulator_params


def photo_jpeg(size: tuple[int, int], **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 48).convert("RGB").save(buffer, "JPEG", **params)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def cache() -> Iterator[None]:
    DEFAULT_CACHE.clear()
    yield
    DEFAULT_CACHE.clear()


def test_the_block_holds_the_file_and_nothing_is_decoded_until_it_is_sent(
    emu: LocalSiliconCloud,
    tmp_path: Path,
    decodes: list[tuple[str, tuple[int, int]]],
    cache: None,
) -> None:
    data = photo_jpeg((1600, 1200))
    path = tmp_path / "photo.png"  # the name lies: the format is read from the bytes
    path.write_bytes(data)
    block = image_block(path, detail="low")
    assert block == {
        "type": "image",
        "base64": b64(data),
        "mime_type": "image/jpeg",
        "extras": {"detail": "low"},
    }
    assert decodes == []
    llm = ChatSiliconVision(**emulator_params(model=QWEN))
    message = HumanMessage(content=[block, "What is this?"])
    llm.invoke([message])
    assert len(decodes) == 1 and decodes[0][0] == "JPEG"  # prepared once, when sent
    sent = emu.last_request.images  # type: ignore[union-attr]
    assert [(i.width, i.height, i.format, i.detail) for i in sent] == [(597, 448, "JPEG", "low")]
    # The same message again (a history re-sent) and a new block for the same file:
    # found in the cache, never decoded again, the same image on the wire.
    hits = DEFAULT_CACHE.hits
    llm.invoke([message])
    again = image_block(path, detail="low")
    assert again["base64"] is block["base64"]  # the cached string, not a new copy
    llm.invoke([HumanMessage(content=[again, "And now?"])])
    assert len(decodes) == 1 and DEFAULT_CACHE.hits >= hits + 3
    requests = emu.requests
    assert len(requests) == 3
    assert {r.images[0].byte_size for r in requests} == {sent[0].byte_size}


def test_every_bad_image_is_refused_by_image_block_before_any_request(
    emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    photo = photo_jpeg((320, 240))
    png = io.BytesIO()
    Image.effect_noise((200, 150), 48).save(png, "PNG")
    bomb = io.BytesIO()
    Image.new("1", (12_000, 9_000)).save(bomb, "PNG")  # 108 M pixels in a small file
    bad = {
        "empty.png": (b"", r"empty \(0 bytes\)"),
        "text.jpg": (b"just some text\n", r"not an image.*looks like text"),
        "page.png": (b"<html><body>hi</body></html>", r"HTML/XML/SVG"),
        "archive.png": (b"PK\x03\x04" + b"\x00" * 40, r"not an image"),
        "bomb.png": (bomb.getvalue(), r"decompression bomb"),
        "header_only.jpg": (photo[:300], r"corrupt image header"),
        "cut.jpg": (photo[: len(photo) // 2], r"truncated or corrupt"),
        "cut.png": (png.getvalue()[: len(png.getvalue()) * 6 // 10], r"truncated or corrupt"),
    }
    for name, (data, reason) in bad.items():
        path = tmp_path / name
        path.write_bytes(data)
        for source in (path, data):
            with pytest.raises(ImageInputError, match=reason):
                image_block(source)
    with pytest.raises(ImageInputError, match="does not exist"):
        image_block(tmp_path / "missing.jpg")
    with pytest.raises(ImageInputError, match="directory"):
        image_block(tmp_path)
    assert emu.requests == []


def test_a_rotated_photo_keeps_its_bytes_and_is_sent_upright(emu: LocalSiliconCloud) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = photo_jpeg((60, 40), exif=exif.tobytes())
    block = image_block(data)
    assert block["base64"] == b64(data)  # not re-encoded here: one lossy encode at most
    ChatSiliconVision(**emulator_params(model=QWEN)).invoke([HumanMessage(content=[block, "?"])])
    sent = emu.last_request.images  # type: ignore[union-attr]
    assert [(i.width, i.height) for i in sent] == [(40, 60)]


def test_formats_servers_do_not_take_are_converted_in_the_block(emu: LocalSiliconCloud) -> None:
    bmp = io.BytesIO()
    Image.new("RGB", (30, 20), "green").save(bmp, "BMP")
    block = image_block(bmp.getvalue())
    assert block["mime_type"] in ("image/png", "image/jpeg")
    ChatSiliconVision(**emulator_params(model=QWEN)).invoke([HumanMessage(content=[block, "?"])])
    sent = emu.last_request.images  # type: ignore[union-attr]
    assert [(i.width, i.height, i.color_name) for i in sent] == [(30, 20, "green")]


def test_blocks_sent_again_are_found_by_identity_never_confused(
    emu: LocalSiliconCloud, tmp_path: Path, cache: None
) -> None:
    """A block from image_block sent again is recognised without hashing its text
    again (the cache remembers its string's digest while it holds that string); a
    different image is never taken for it, even when the cache was emptied and a new
    string lands at a freed one's address, or the block's MIME type is edited."""
    llm = ChatSiliconVision(**emulator_params(model=QWEN))
    colors = ["red", "green", "blue", "yellow", "white", "black"]
    for index, color in enumerate(colors):
        path = tmp_path / f"{index}.png"
        Image.new("RGB", (40 + index, 30), color).save(path)
        block = image_block(path)
        for _ in range(2):
            llm.invoke([HumanMessage(content=[block, "?"])])
            sent = emu.last_request.images  # type: ignore[union-attr]
            assert [(i.width, i.color_name) for i in sent] == [(40 + index, color)]
        if index % 2:
            DEFAULT_CACHE.clear()
    edited = {**image_block(tmp_path / "0.png"), "mime_type": "image/jpeg"}  # a wrong label
    llm.invoke([HumanMessage(content=[edited, "?"])])
    sent = emu.last_request.images  # type: ignore[union-attr]
    assert [(i.width, i.format, i.color_name) for i in sent] == [(40, "PNG", "red")]
