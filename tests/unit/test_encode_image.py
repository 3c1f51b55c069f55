"""siliconvision.images.encode_image and Base64Image: an image's own bytes as base64,
checked from its header and structure without decoding its pixels, and base64 data
prepared as the ``data:`` URI it stands for.

Decoding is observed on Pillow itself (``ImageFile.load`` calls with pixel data to
read, in the test's thread), not by mocking our code.
"""

from __future__ import annotations

import base64
import io
import os
import re
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from siliconvision.content import build_content
from siliconvision.errors import ImageInputError
from siliconvision.images import (
    Base64Image,
    EncodedImage,
    ImageCache,
    encode_image,
    prepare_image,
)
from tests.imaging import png_header

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Incompressible pixels: a truncated file is missing real image data."""
    return Image.effect_noise(size, 64).convert(mode)


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


JPEG = encoded(noise((640, 480)), "JPEG")
PROGRESSIVE = encoded(noise((640, 480)), "JPEG", progressive=True)
PNG = encoded(noise((320, 240)), "PNG")
GIF = encoded(noise((96, 64), "L").convert("P"), "GIF")
WEBP = encoded(noise((96, 64)), "WEBP")


# --------------------------------------------------------------------------- kept as is


@pytest.mark.parametrize(
    ("data", "mime", "size"),
    [
        (JPEG, "image/jpeg", (640, 480)),
        (PROGRESSIVE, "image/jpeg", (640, 480)),
        (PNG, "image/png", (320, 240)),
        (GIF, "image/gif", (96, 64)),
        (WEBP, "image/webp", (96, 64)),
    ],
    ids=["jpeg", "progressive-jpeg", "png", "gif", "webp"],
)
def test_whole_images_are_kept_as_they_are_without_decoding(
    data: bytes, mime: str, size: tuple[int, int], decodes: list[object]
) -> None:
    result = encode_image(data, cache=None)
    assert isinstance(result, EncodedImage)
    assert result.data == b64(data)  # the original bytes, not a re-encoding
    assert (result.mime_type, (result.width, result.height)) == (mime, size)
    assert (result.byte_size, result.converted) == (len(data), False)
    if mime != "image/webp":  # WEBP decodes through its own loader
        assert decodes == []


def test_every_source_form_gives_the_same_block(tmp_path: Path, decodes: list[object]) -> None:
    path = tmp_path / "photo.png"  # the name lies: the bytes are JPEG
    path.write_bytes(JPEG)
    forms: list[object] = [
        path,
        str(path),
        JPEG,
        bytearray(JPEG),
        memoryview(JPEG),
        io.BytesIO(JPEG),
        f"data:image/png;base64,{b64(JPEG)}",
        Base64Image(b64(JPEG), "image/png"),
    ]
    for form in forms:
        result = encode_image(form, cache=None)  # type: ignore[arg-type]
        assert (result.data, result.mime_type) == (b64(JPEG), "image/jpeg"), form
    assert decodes == []


def test_a_canonical_data_uri_keeps_its_own_payload() -> None:
    uri = f"data:image/jpeg;base64,{b64(JPEG)}"
    assert encode_image(uri, cache=None).data == uri.partition(",")[2]
    spaced = "data:image/jpeg;base64," + "\n".join(re.findall(".{1,76}", b64(JPEG)))
    assert encode_image(spaced, cache=None).data == b64(JPEG)  # re-encoded clean


def test_paths_are_cached_by_file_identity(tmp_path: Path, decodes: list[object]) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(JPEG)
    cache = ImageCache()
    first = encode_image(path, cache=cache)
    again = encode_image(str(path), cache=cache)
    assert again.data is first.data  # the same string, not a new copy
    assert (cache.hits, cache.misses, len(cache), cache.total_bytes) == (1, 1, 1, len(first.data))
    path.write_bytes(PNG)  # a new file version: a new entry
    os.utime(path, ns=(1, 1))
    assert encode_image(path, cache=cache).mime_type == "image/png"
    assert (cache.misses, len(cache)) == (2, 2)
    cache.clear()
    assert len(cache) == 0 and cache.total_bytes == 0


def verdict(function: object, data: bytes) -> str:
    try:
        function(data, cache=None)  # type: ignore[operator]
    except ImageInputError as exc:
        return f"refused: {exc.reason}"
    return "accepted"


def test_inconclusive_structure_is_decoded_for_prepare_image_s_verdict(
    decodes: list[object],
) -> None:
    """Bytes whose end marker is missing or followed by other data may still be a
    whole image: the structure is not conclusive, so they are decoded (once), and
    refused exactly when prepare_image refuses them."""
    cases = {
        "jpeg without its end marker": JPEG[:-2],
        "png without IEND": PNG[:-12],
        "gif without its trailer": GIF[:-1],
    }
    for name, data in cases.items():
        decodes.clear()
        expected = verdict(prepare_image, data)
        decodes.clear()
        assert verdict(encode_image, data) == expected, name
        assert len(decodes) == 1, name
    decodes.clear()  # data appended after the end marker / IEND: still conclusive
    for data in (JPEG + b"trailer", PNG + b"PK\x03\x04" + b"\x00" * 26):
        assert encode_image(data, cache=None).data == b64(data)
    assert decodes == []


# --------------------------------------------------------------------------- refused


BAD: dict[str, tuple[bytes, str]] = {
    "empty": (b"", r"empty \(0 bytes\)"),
    "text": (b"hello, I am not an image\n", r"not an image.*looks like text"),
    "html": (b"<html><script>alert(1)</script></html>", r"HTML/XML/SVG"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"/>', r"SVG is not supported"),
    "eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", r"not an image"),
    "zip": (b"PK\x03\x04" + b"\x00" * 40, r"not an image"),
    "png signature, then html": (b"\x89PNG\r\n\x1a\n<html></html>", r"not an image"),
    "decompression bomb": (png_header(100_000, 100_000), r"decompression bomb"),
    "bomb just over the limit": (png_header(10_000, 10_000), r"decompression bomb"),
    "corrupt jpeg header": (JPEG[:300], r"corrupt image header"),
    "truncated jpeg": (JPEG[: len(JPEG) // 2], r"truncated or corrupt"),
    "truncated progressive jpeg": (PROGRESSIVE[: len(PROGRESSIVE) * 9 // 10], r"truncated"),
    "truncated png": (PNG[: len(PNG) * 6 // 10], r"truncated or corrupt"),
    "truncated gif": (GIF[: len(GIF) * 9 // 10], r"truncated or corrupt"),
    "truncated webp": (WEBP[: len(WEBP) * 9 // 10], r"corrupt"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_images_are_refused_with_the_reason(name: str) -> None:
    data, reason = BAD[name]
    with pytest.raises(ImageInputError, match=reason) as caught:
        encode_image(data, cache=None)
    assert caught.value.reason  # the source and the reason, like prepare_image's
    with pytest.raises(ImageInputError, match=reason):  # the same verdict as prepare_image
        prepare_image(data, cache=None)


def test_bad_paths_urls_and_base64_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="does not exist"):
        encode_image(tmp_path / "missing.png")
    with pytest.raises(ImageInputError, match="directory"):
        encode_image(tmp_path)
    with pytest.raises(ImageInputError, match="URL"):
        encode_image("https://example.com/a.png")
    with pytest.raises(ImageInputError, match="invalid base64"):
        encode_image(Base64Image("%%%not base64%%%", "image/png"))
    with pytest.raises(ImageInputError, match="not image/"):
        encode_image(Base64Image(b64(PNG), "text/html"))
    with pytest.raises(ImageInputError, match="unsupported image source type"):
        encode_image(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_image_pixels"):
        encode_image(PNG, max_image_pixels=0)
    with pytest.raises(ImageInputError, match="decompression bomb"):
        encode_image(PNG, max_image_pixels=1000, cache=None)


def test_formats_servers_do_not_take_are_converted() -> None:
    bmp = encoded(noise((40, 30)), "BMP")
    result = encode_image(bmp, cache=None)
    assert result.converted and result.original_format == "BMP"
    assert result.mime_type in ("image/png", "image/jpeg")
    with Image.open(io.BytesIO(base64.b64decode(result.data))) as img:
        assert img.size == (40, 30) and img.format in ("PNG", "JPEG")
    pil = encode_image(noise((20, 10)), cache=None)
    assert pil.converted and (pil.width, pil.height) == (20, 10)


# --------------------------------------------------------------------------- Base64Image


def test_base64_image_is_prepared_as_its_data_uri_and_shares_its_cache_entries(
    decodes: list[object],
) -> None:
    photo = encoded(noise((1600, 1200)), "JPEG")
    uri = f"data:image/jpeg;base64,{b64(photo)}"
    cache = ImageCache()
    from_uri = prepare_image(uri, model=QWEN, detail="low", cache=cache)
    assert len(decodes) == 1
    from_base64 = prepare_image(
        Base64Image(b64(photo), "image/jpeg"), model=QWEN, detail="low", cache=cache
    )
    assert len(decodes) == 1 and cache.hits == 1  # found by the text's digest: not decoded
    assert from_base64.url == from_uri.url and (from_base64.width, from_base64.height) == (597, 448)
    assert from_base64.source_label.startswith("<base64 image/jpeg")
    # Sent as it is, the URI is built from the base64 data (whatever MIME was declared).
    small = prepare_image(Base64Image(b64(PNG), "image/jpeg"), cache=None)
    assert small.url == f"data:image/png;base64,{b64(PNG)}" and not small.reencoded
    parts = build_content([Base64Image(b64(PNG), "image/png"), "What?"], model=QWEN)
    assert parts[0]["image_url"]["url"] == small.url and parts[1]["type"] == "text"


def test_an_encoded_image_sent_again_is_recognised_and_the_index_never_outlives_it(
    tmp_path: Path, decodes: list[object]
) -> None:
    """Sent again, a block's data is found by its digest (remembered, not recomputed:
    the speed shows in the benchmarks) and never decoded again."""
    cache = ImageCache(max_entries=4)
    for index, color in enumerate(["red", "green", "blue", "white", "black"]):
        path = tmp_path / f"{index}.png"
        Image.new("RGB", (30 + index, 20), color).save(path)
        block = encode_image(path, cache=cache)
        as_sent = Base64Image(block.data, block.mime_type)
        first = prepare_image(as_sent, model=QWEN, cache=cache)
        hits, decoded = cache.hits, len(decodes)
        again = prepare_image(Base64Image(block.data, block.mime_type), model=QWEN, cache=cache)
        assert (cache.hits, len(decodes)) == (hits + 1, decoded)
        assert again.url == first.url == prepare_image(path.read_bytes(), cache=None).url
        # Only what the cache holds is indexed: evicted entries leave no trace behind.
        held = {id(v.data) for v in cache._entries.values() if isinstance(v, EncodedImage)}
        assert set(cache._digests) == held
    cache.clear()
    assert cache._digests == {}
