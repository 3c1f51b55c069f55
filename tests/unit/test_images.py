"""siliconvision.images: every source form, every error, conversions, sizing, cache, fetching.

All images are made with Pillow inside the tests; the only network is a
``ThreadingHTTPServer`` on 127.0.0.1 started by the test that needs it.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image, ImageOps

from siliconvision.catalog import get_model_spec
from siliconvision.errors import ImageInputError
from siliconvision.images import (
    DEFAULT_CACHE,
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageCache,
    PreparedImage,
    image_part,
    is_data_uri,
    is_image_url,
    prepare_image,
)
from siliconvision.tokens import client_target_size
from tests.imaging import png_header

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
DEEPSEEK = "deepseek-ai/deepseek-vl2"
TELEMM = "TeleAI/TeleMM"


# --------------------------------------------------------------------------- helpers


def photo(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A photo-like image (gradients plus noise) that JPEG compresses realistically."""
    red = Image.linear_gradient("L").resize(size)
    green = Image.linear_gradient("L").rotate(90).resize(size)
    small = (max(1, size[0] // 3), max(1, size[1] // 3))
    noise = Image.effect_noise(small, 48).resize(size, Image.Resampling.BILINEAR)
    img = Image.merge("RGB", (red, green, noise))
    return img if mode == "RGB" else img.convert(mode)


@functools.lru_cache(maxsize=16)
def photo_bytes(size: tuple[int, int], fmt: str = "JPEG", quality: int = 90) -> bytes:
    """Encoded :func:`photo` (memoised: the large ones are slow to make)."""
    return encode(photo(size), fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def payload(prepared: PreparedImage) -> bytes:
    head, _, data = prepared.url.partition(",")
    assert head == f"data:{prepared.mime_type};base64", head
    return base64.b64decode(data, validate=True)


def decoded(prepared: PreparedImage) -> Image.Image:
    img = Image.open(io.BytesIO(payload(prepared)))
    img.load()
    assert Image.MIME[img.format or ""] == prepared.mime_type
    assert img.size == (prepared.width, prepared.height)
    return img


def reason(exc: pytest.ExceptionInfo[ImageInputError]) -> str:
    return str(exc.value)


@pytest.fixture
def small_png() -> bytes:
    return encode(photo((64, 48)), "PNG")


@pytest.fixture
def small_jpeg() -> bytes:
    return encode(photo((64, 48)), "JPEG", quality=85)


# --------------------------------------------------------------------------- source forms


def test_path_str_and_pathlib_pass_through_byte_for_byte(tmp_path: Path, small_png: bytes) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(small_png)
    for source in (str(path), path):
        prepared = prepare_image(source, cache=None)
        assert payload(prepared) == small_png
        assert prepared.mime_type == "image/png"
        assert (prepared.width, prepared.height) == (64, 48)
        assert prepared.original_format == "PNG"
        assert not prepared.resized and not prepared.reencoded
        assert prepared.byte_size == len(small_png)
        assert prepared.source_label == str(path)


def test_extension_is_ignored_format_is_sniffed(tmp_path: Path, small_jpeg: bytes) -> None:
    path = tmp_path / "really-a-jpeg.png"
    path.write_bytes(small_jpeg)
    prepared = prepare_image(path, cache=None)
    assert prepared.mime_type == "image/jpeg"
    assert prepared.url.startswith("data:image/jpeg;base64,")
    assert payload(prepared) == small_jpeg


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "memoryview-of-bytearray"])
def test_bytes_like_sources(kind: str, small_jpeg: bytes) -> None:
    sources: dict[str, bytes | bytearray | memoryview] = {
        "bytes": small_jpeg,
        "bytearray": bytearray(small_jpeg),
        "memoryview": memoryview(small_jpeg),
        "memoryview-of-bytearray": memoryview(bytearray(small_jpeg)),
    }
    prepared = prepare_image(sources[kind], cache=None)
    assert payload(prepared) == small_jpeg
    assert prepared.byte_size == len(small_jpeg)
    assert f"{len(small_jpeg):,} bytes" in prepared.source_label


def test_memoryview_with_wide_items_is_read_as_bytes(small_png: bytes) -> None:
    padded = small_png + b"\x00" * (-len(small_png) % 4)
    view = memoryview(padded).cast("I")
    prepared = prepare_image(view, cache=None)
    assert payload(prepared) == padded


def test_binary_file_objects(tmp_path: Path, small_png: bytes) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(small_png)
    with open(path, "rb") as handle:
        prepared = prepare_image(handle, cache=None)
    assert payload(prepared) == small_png
    assert prepared.source_label == str(path)
    prepared = prepare_image(io.BytesIO(small_png), cache=None)
    assert payload(prepared) == small_png
    assert prepared.source_label == "<BytesIO>"


def test_file_object_is_read_from_its_current_position(small_png: bytes) -> None:
    stream = io.BytesIO(b"HEADER" + small_png)
    stream.read(6)
    assert payload(prepare_image(stream, cache=None)) == small_png


def test_text_mode_file_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("hello")
    with open(path) as handle, pytest.raises(ImageInputError, match="text mode"):
        prepare_image(handle, cache=None)  # type: ignore[arg-type]
    with pytest.raises(ImageInputError, match="text mode"):
        prepare_image(io.StringIO("hello"), cache=None)  # type: ignore[arg-type]


def test_closed_file_object_is_unreadable(small_png: bytes) -> None:
    stream = io.BytesIO(small_png)
    stream.close()
    with pytest.raises(ImageInputError, match="unreadable"):
        prepare_image(stream, cache=None)


def test_pil_image_source_is_encoded_and_left_untouched() -> None:
    img = photo((300, 200))
    before = img.tobytes()
    prepared = prepare_image(img, cache=None)
    assert prepared.reencoded and not prepared.resized
    assert prepared.original_format is None
    assert decoded(prepared).size == (300, 200)
    assert img.size == (300, 200) and img.mode == "RGB" and img.tobytes() == before
    assert prepared.source_label == "<PIL.Image RGB 300x200>"


def test_pil_image_opened_from_jpeg_stays_jpeg_and_is_downsized(small_jpeg: bytes) -> None:
    img = Image.open(io.BytesIO(photo_bytes((4000, 3000), quality=75)))
    prepared = prepare_image(img, model=QWEN, detail="low", cache=None)
    assert prepared.mime_type == "image/jpeg"
    assert (prepared.width, prepared.height) == (597, 448)
    assert prepared.original_format == "JPEG" and prepared.resized
    assert img.size == (4000, 3000)


def test_pil_image_with_alpha_becomes_png() -> None:
    img = Image.new("RGBA", (1200, 1000), (255, 0, 0, 128))
    prepared = prepare_image(img, cache=None)
    out = decoded(prepared)
    assert prepared.mime_type == "image/png" and out.mode == "RGBA"
    assert out.getpixel((5, 5)) == (255, 0, 0, 128)


def test_large_opaque_pil_photo_becomes_jpeg() -> None:
    prepared = prepare_image(photo((1600, 1200)), cache=None)
    assert prepared.mime_type == "image/jpeg"


def test_data_uri_passes_through_as_the_same_string(small_png: bytes) -> None:
    uri = "data:image/png;base64," + base64.b64encode(small_png).decode()
    prepared = prepare_image(uri, cache=None)
    assert prepared.url == uri
    assert payload(prepared) == small_png
    assert prepared.source_label.startswith("<data URI image/png")


def test_data_uri_with_wrong_type_or_line_breaks_is_rebuilt(small_jpeg: bytes) -> None:
    body = base64.encodebytes(small_jpeg).decode()  # wrapped at 76 chars
    prepared = prepare_image("data:image/png;base64," + body, cache=None)
    assert prepared.mime_type == "image/jpeg"
    assert prepared.url.startswith("data:image/jpeg;base64,")
    assert payload(prepared) == small_jpeg


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("data:image/png,notbase64", "malformed data URI"),
        ("data:text/plain;base64,aGVsbG8=", "malformed data URI"),
        ("data:;base64,aGVsbG8=", "malformed data URI"),
        ("data:image/png;base64,%%%%", "invalid base64"),
        ("data:image/png;base64,aGVsbG8", "invalid base64"),
        ("data:image/png;base64,aGVsbG8é", "invalid base64"),  # not ASCII: no bare ValueError
        ("data:image/png;base64,", "empty"),
        ("data:image/png;base64,aGVsbG8gd29ybGQ=", "not an image"),
    ],
)
def test_bad_data_uris(uri: str, why: str) -> None:
    with pytest.raises(ImageInputError, match=why):
        prepare_image(uri, cache=None)


def test_url_passes_through_untouched() -> None:
    url = "https://example.com/cat.png?X-Signature=abc&size=large"
    prepared = prepare_image(url, model=QWEN, detail="low")
    assert prepared.url == url
    assert prepared.to_part() == {"type": "image_url", "image_url": {"url": url, "detail": "low"}}
    assert prepared.mime_type is None and prepared.width is None and prepared.height is None
    assert prepared.original_format is None and prepared.byte_size == 0
    assert not prepared.resized and not prepared.reencoded and prepared.is_url
    assert "abc" not in prepared.source_label
    assert prepared.source_label == "https://example.com/cat.png?…"


def test_http_url_scheme_is_case_insensitive() -> None:
    assert prepare_image("HTTP://Example.com/a.png").url == "HTTP://Example.com/a.png"


@pytest.mark.parametrize("url", ["https://", "http:///path.png", "https://exa mple.com/a.png"])
def test_malformed_urls(url: str) -> None:
    with pytest.raises(ImageInputError, match="malformed URL"):
        prepare_image(url)


def test_url_for_base64_only_model_is_refused_before_any_network() -> None:
    with pytest.raises(ImageInputError) as exc:
        prepare_image("https://user:secret@example.com/a.png?token=XYZ", model=TELEMM)
    text = reason(exc)
    assert "base64 images only" in text and "fetch_urls=True" in text
    assert "secret" not in text and "XYZ" not in text and "user" not in text


def test_base64_only_model_takes_local_images(small_png: bytes) -> None:
    prepared = prepare_image(small_png, model=TELEMM, cache=None)
    assert payload(prepared) == small_png


def test_image_part_shortcut(small_png: bytes) -> None:
    part = image_part(small_png, detail="auto", cache=None)
    assert part["type"] == "image_url"
    assert part["image_url"]["detail"] == "auto"
    assert part["image_url"]["url"].startswith("data:image/png;base64,")


def test_predicates() -> None:
    assert is_image_url("https://a.b/c.png") and is_image_url("HTTP://a.b")
    assert not is_image_url("ftp://a.b/c.png") and not is_image_url("/tmp/x.png")
    assert not is_image_url(b"https://a.b")
    assert is_data_uri("data:image/png;base64,xx") and is_data_uri("DATA:image/png;base64,")
    assert not is_data_uri("image.png") and not is_data_uri(None)


def test_repr_does_not_dump_the_whole_payload() -> None:
    prepared = prepare_image(photo((500, 400)), cache=None)
    assert len(repr(prepared)) < 600
    assert "chars" in repr(prepared)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("source", [42, None, 3.5, ["a.png"], {"url": "x"}, object()])
def test_unsupported_source_types_name_the_type(source: object) -> None:
    with pytest.raises(ImageInputError) as exc:
        prepare_image(source, cache=None)  # type: ignore[arg-type]
    assert type(source).__name__ in reason(exc)
    assert "unsupported image source type" in reason(exc)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "photo.jpg"
    with pytest.raises(ImageInputError) as exc:
        prepare_image(str(missing), cache=None)
    assert "file does not exist" in reason(exc) and str(missing) in reason(exc)
    assert exc.value.source == str(missing)


def test_raw_base64_string_is_not_mistaken_for_a_path(small_png: bytes) -> None:
    with pytest.raises(ImageInputError) as exc:
        prepare_image(base64.b64encode(small_png).decode(), cache=None)
    assert "does not exist" in reason(exc) and "raw base64?" in reason(exc)
    assert len(reason(exc)) < 400  # the label is shortened, not the whole payload


def test_other_url_schemes_are_not_fetched_or_passed() -> None:
    with pytest.raises(ImageInputError, match="only http:// and https://"):
        prepare_image("ftp://example.com/a.png", cache=None)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="directory"):
        prepare_image(tmp_path, cache=None)


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root ignores file permissions"
)
def test_unreadable_file(tmp_path: Path, small_png: bytes) -> None:
    path = tmp_path / "secret.png"
    path.write_bytes(small_png)
    path.chmod(0)
    try:
        with pytest.raises(ImageInputError, match="unreadable"):
            prepare_image(path, cache=None)
    finally:
        path.chmod(0o600)


def test_empty_sources(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    for source in (path, b"", bytearray(), io.BytesIO(b"")):
        with pytest.raises(ImageInputError, match=r"empty \(0 bytes\)"):
            prepare_image(source, cache=None)


def test_random_bytes_are_not_an_image() -> None:
    with pytest.raises(ImageInputError, match="not an image"):
        prepare_image(os.urandom(4096), cache=None)


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n")
    with pytest.raises(ImageInputError) as exc:
        prepare_image(path, cache=None)
    assert "not an image" in reason(exc) and "looks like text" in reason(exc)
    assert str(path) in reason(exc)


def test_html_error_page_gets_a_hint() -> None:
    with pytest.raises(ImageInputError, match="HTML"):
        prepare_image(b"<!DOCTYPE html><html><body>403</body></html>", cache=None)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_images(fmt: str, keep: float) -> None:
    data = encode(photo((320, 240)), fmt)
    with pytest.raises(ImageInputError) as exc:
        prepare_image(data[: int(len(data) * keep)], cache=None)
    assert "truncated or corrupt" in reason(exc) or "corrupt image header" in reason(exc)


def test_truncated_jpeg_is_caught_when_downsizing_too() -> None:
    data = encode(photo((2000, 1500)), "JPEG")
    with pytest.raises(ImageInputError, match="truncated or corrupt"):
        prepare_image(data[: len(data) // 2], model=QWEN, detail="low", cache=None)


def test_decompression_bomb_from_header_without_warning_output() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for size in ((10_000, 10_000), (100_000, 100_000)):
            with pytest.raises(ImageInputError, match="decompression bomb"):
                prepare_image(png_header(*size), cache=None)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]


def test_decompression_bomb_with_small_limit_is_checked_before_decoding() -> None:
    # The header claims 4000x4000 but there is no pixel data: had we decoded, the
    # error would be "truncated"; the bomb check must come first.
    with pytest.raises(ImageInputError) as exc:
        prepare_image(png_header(4000, 4000), max_image_pixels=1_000_000, cache=None)
    assert "decompression bomb" in reason(exc) and "max_image_pixels=1,000,000" in reason(exc)
    with pytest.raises(ImageInputError, match="decompression bomb"):
        prepare_image(photo((200, 200)), max_image_pixels=100, cache=None)


def test_raising_the_pixel_limit_above_pillows_default() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ImageInputError, match="truncated or corrupt"):
            prepare_image(png_header(10_000, 10_000), max_image_pixels=120_000_000, cache=None)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert DEFAULT_MAX_IMAGE_PIXELS == 89_478_485


def test_extreme_aspect_ratio_is_refused_for_qwen_only() -> None:
    strip = encode(Image.new("L", (100_000, 1), 128), "PNG")
    with pytest.raises(ImageInputError) as exc:
        prepare_image(strip, model=QWEN, cache=None)
    assert "aspect ratio" in reason(exc) and "200" in reason(exc)
    prepared = prepare_image(strip, cache=None)  # unknown model: the server decides
    assert payload(prepared) == strip
    ok = encode(Image.new("L", (4000, 20), 128), "PNG")  # exactly 200:1 is allowed
    assert prepare_image(ok, model=QWEN, cache=None).width is not None


def test_invalid_detail_and_arguments(small_png: bytes) -> None:
    with pytest.raises(ImageInputError, match="detail must be one of"):
        prepare_image(small_png, detail="medium", cache=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="image_count"):
        prepare_image(small_png, image_count=0, cache=None)
    with pytest.raises(ValueError, match="max_image_pixels"):
        prepare_image(small_png, max_image_pixels=0, cache=None)


def test_eps_is_never_opened() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(ImageInputError, match="not an image"):
        prepare_image(eps, cache=None)


# --------------------------------------------------------------------------- conversions


def test_tiff_conversion_rule() -> None:
    translucent = photo((200, 150)).convert("RGBA")
    translucent.putalpha(128)
    small = prepare_image(encode(translucent, "TIFF"), cache=None)
    assert small.mime_type == "image/png" and small.original_format == "TIFF"
    assert small.reencoded and not small.resized
    assert decoded(small).mode == "RGBA"
    # Fully opaque alpha is dropped; a small photo then goes to whichever is smaller.
    opaque = prepare_image(encode(photo((200, 150)).convert("RGBA"), "TIFF"), cache=None)
    assert decoded(opaque).mode == "RGB"
    flat = prepare_image(encode(Image.new("RGB", (200, 150), "navy"), "TIFF"), cache=None)
    assert flat.mime_type == "image/png"  # lossless wins when it is smaller
    large = prepare_image(encode(photo((1500, 1000)), "TIFF"), cache=None)
    assert large.mime_type == "image/jpeg" and decoded(large).size == (1500, 1000)


def test_bmp_and_other_formats_are_converted() -> None:
    for fmt in ("BMP", "PPM", "TGA", "ICO"):
        source = photo((64, 64))
        prepared = prepare_image(encode(source, fmt), cache=None)
        assert prepared.original_format == fmt
        assert prepared.mime_type in ("image/png", "image/jpeg")
        assert decoded(prepared).size == (64, 64)


def test_palette_art_stays_lossless_png() -> None:
    art = Image.new("P", (1600, 1200), 3)
    art.putpalette([i % 256 for i in range(768)])
    prepared = prepare_image(encode(art, "BMP"), cache=None)
    assert prepared.mime_type == "image/png"


def test_animated_gif_becomes_its_first_frame() -> None:
    frames = [Image.new("RGB", (80, 60), color) for color in ("red", "lime", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    prepared = prepare_image(data, cache=None)
    assert prepared.mime_type == "image/png" and prepared.original_format == "GIF"
    first = decoded(prepared).convert("RGB")
    assert first.size == (80, 60)
    assert first.getpixel((40, 30)) == (255, 0, 0)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_png_and_webp_become_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (80, 60), color) for color in ("red", "blue")]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    prepared = prepare_image(data, cache=None)
    assert prepared.reencoded and prepared.mime_type == "image/png"
    red, _, blue = decoded(prepared).convert("RGB").getpixel((40, 30))  # type: ignore[misc]
    assert red > 200 and blue < 50


def test_still_gif_passes_through(small_png: bytes) -> None:
    data = encode(Image.new("P", (50, 50), 1), "GIF")
    prepared = prepare_image(data, cache=None)
    assert prepared.mime_type == "image/gif" and payload(prepared) == data


def test_cmyk_jpeg_is_converted_to_rgb() -> None:
    data = encode(photo((300, 200), "CMYK"), "JPEG", quality=92)
    prepared = prepare_image(data, cache=None)
    assert prepared.mime_type == "image/jpeg" and prepared.reencoded
    assert decoded(prepared).mode == "RGB"


def test_palette_with_transparency_keeps_alpha_when_resized() -> None:
    img = Image.new("P", (1000, 800), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(0, (0, 0, 500, 800))
    data = encode(img, "PNG", transparency=0)
    small = prepare_image(data, cache=None)  # small enough: as it is, palette and all
    assert payload(small) == data
    prepared = prepare_image(data, model=QWEN, detail="low", cache=None)
    out = decoded(prepared)
    assert prepared.mime_type == "image/png" and out.mode == "RGBA"
    assert out.size == (560, 448)  # low: the aspect ratio kept, 448 rows
    assert out.getpixel((10, 10))[3] == 0  # type: ignore[index]
    assert out.getpixel((440, 350)) == (255, 0, 0, 255)


def test_sixteen_bit_grey_png_is_scaled_to_eight_bits() -> None:
    img = Image.new("I;16", (256, 16))
    img.putdata([x * 257 for _ in range(16) for x in range(256)])
    data = encode(img, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    prepared = prepare_image(data, cache=None)
    out = decoded(prepared)
    assert prepared.reencoded and out.mode == "L"
    assert [out.getpixel((x, 0)) for x in (0, 128, 255)] == [0, 128, 255]


def test_float_tiff_is_stretched_to_grey() -> None:
    img = Image.linear_gradient("L").convert("F").point(lambda v: v * 0.01 - 1.0)
    prepared = prepare_image(encode(img, "TIFF"), cache=None)
    out = decoded(prepared)
    assert out.mode == "L"
    low, high = out.getextrema()  # type: ignore[misc]
    assert low == 0 and high == 255


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_is_baked_in(orientation: int) -> None:
    source = Image.new("RGB", (120, 60), "red")
    source.paste((0, 0, 255), (0, 0, 60, 30))  # blue top-left quarter marks the corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretCam"  # camera make: must not leak
    data = encode(source, "JPEG", quality=95, exif=exif.tobytes())
    prepared = prepare_image(data, cache=None)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    out = decoded(prepared)
    assert prepared.reencoded and out.size == expected.size
    assert (prepared.original_width, prepared.original_height) == expected.size
    for x, y in ((5, 5), (out.width - 5, out.height - 5), (5, out.height - 5)):
        got, want = out.getpixel((x, y)), expected.getpixel((x, y))
        assert all(abs(a - b) < 40 for a, b in zip(got, want, strict=True))  # type: ignore[arg-type]
    assert b"SecretCam" not in payload(prepared)
    assert not out.getexif()


def test_exif_orientation_with_downsizing_uses_the_displayed_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    data = encode(photo((6000, 4000)), "JPEG", exif=exif.tobytes())
    prepared = prepare_image(data, model=QWEN, cache=None)
    assert (prepared.width, prepared.height) == client_target_size(4000, 6000, model=QWEN)
    assert (prepared.original_width, prepared.original_height) == (4000, 6000)
    assert decoded(prepared).size == (2912, 4368)


def test_reencoded_output_carries_no_metadata() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    exif[0x8825] = {2: (1.0, 2.0, 3.0)}  # GPS
    data = encode(photo((3000, 2000)), "JPEG", exif=exif.tobytes(), icc_profile=b"x" * 100)
    prepared = prepare_image(data, model=QWEN, detail="low", cache=None)
    assert prepared.reencoded
    out = payload(prepared)
    assert b"SecretCam" not in out and b"Exif" not in out and b"ICC_PROFILE" not in out


# --------------------------------------------------------------------------- sizing


def test_qwen_low_detail_keeps_448_on_the_shorter_side() -> None:
    # Whether the server stretches to 448x448 or fits into it, it finds every row and
    # column it would have used from the original (see siliconvision.catalog).
    data = photo_bytes((4000, 3000))
    prepared = prepare_image(data, model=QWEN, detail="low", cache=None)
    assert (prepared.width, prepared.height) == (597, 448)
    assert prepared.resized and prepared.reencoded and prepared.mime_type == "image/jpeg"
    assert (prepared.original_width, prepared.original_height) == (4000, 3000)
    assert prepared.byte_size < len(data) // 10
    decoded(prepared)


def test_qwen_high_detail_is_the_exact_kept_size() -> None:
    data = photo_bytes((6000, 4000))
    prepared = prepare_image(data, model=QWEN, detail="high", cache=None)
    assert (prepared.width, prepared.height) == (4368, 2912)
    assert decoded(prepared).size == (4368, 2912)
    assert prepared.detail == "high" and prepared.resized


def test_png_is_downsized_as_png() -> None:
    data = photo_bytes((2000, 1000), "PNG")
    prepared = prepare_image(data, model=QWEN, detail="auto", cache=None)
    assert prepared.mime_type == "image/png" and (prepared.width, prepared.height) == (896, 448)


def test_webp_is_downsized_as_webp() -> None:
    data = encode(photo((2000, 1000)), "WEBP", quality=95)
    prepared = prepare_image(data, model=QWEN, detail="low", cache=None)
    assert prepared.mime_type == "image/webp" and decoded(prepared).size == (896, 448)


def test_deepseek_vl2_with_three_images_uses_one_tile() -> None:
    data = encode(photo((1600, 1200)), "JPEG")
    prepared = prepare_image(data, model=DEEPSEEK, image_count=3, cache=None)
    assert prepared.detail == "high"
    assert (prepared.width, prepared.height) == (384, 288)
    full = prepare_image(data, model=DEEPSEEK, image_count=2, cache=None)
    assert (full.width, full.height) == client_target_size(1600, 1200, model=DEEPSEEK) or (
        not full.resized
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_small_accepted_images_pass_through_byte_for_byte(fmt: str) -> None:
    data = encode(photo((320, 240)), fmt)
    prepared = prepare_image(data, model=QWEN, detail="high", cache=None)
    assert payload(prepared) == data
    assert not prepared.reencoded and not prepared.resized
    assert prepared.mime_type == Image.MIME[fmt]


def test_reencode_only_when_smaller() -> None:
    # A very low quality JPEG: re-encoding it at quality 90, even smaller, is bigger.
    data = photo_bytes((6000, 4000), quality=3)
    prepared = prepare_image(data, model=QWEN, detail="high", cache=None)
    assert payload(prepared) == data
    assert not prepared.resized and not prepared.reencoded
    assert (prepared.width, prepared.height) == (6000, 4000)


def test_unknown_or_no_model_never_resizes() -> None:
    data = photo_bytes((6000, 4000), quality=80)
    for model in (None, "acme/brand-new-vl"):
        prepared = prepare_image(data, model=model, detail="low", cache=None)
        assert payload(prepared) == data and not prepared.resized


# --------------------------------------------------------------------------- detail


def test_detail_resolution(small_png: bytes) -> None:
    assert prepare_image(small_png, cache=None).detail == "high"
    assert prepare_image(small_png, model=QWEN, cache=None).detail == "high"
    low_default = get_model_spec(QWEN, default_detail="low")
    assert prepare_image(small_png, model=low_default, cache=None).detail == "low"
    for detail in ("low", "high", "auto"):
        got = prepare_image(small_png, model=QWEN, detail=detail, cache=None)  # type: ignore[arg-type]
        assert got.detail == detail
        assert got.to_part()["image_url"]["detail"] == detail


def test_model_spec_object_is_accepted() -> None:
    spec = get_model_spec(QWEN)
    data = photo_bytes((4000, 3000), quality=75)
    prepared = prepare_image(data, model=spec, detail="low", cache=None)
    assert (prepared.width, prepared.height) == (597, 448)


# --------------------------------------------------------------------------- cache


def test_cache_hit_for_unchanged_file_and_invalidation(tmp_path: Path) -> None:
    cache = ImageCache()
    path = tmp_path / "a.png"
    path.write_bytes(encode(photo((100, 80)), "PNG"))
    first = prepare_image(path, cache=cache)
    second = prepare_image(str(path), cache=cache)
    assert second is first
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)

    path.write_bytes(encode(photo((90, 70)), "PNG"))  # new content, new size
    third = prepare_image(path, cache=cache)
    assert (third.width, third.height) == (90, 70)
    assert cache.misses == 2

    stat = path.stat()  # same size, only the mtime moves
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    prepare_image(path, cache=cache)
    assert cache.misses == 3


def test_cache_does_not_decode_on_a_hit(tmp_path: Path) -> None:
    cache = ImageCache()
    path = tmp_path / "a.png"
    data = encode(photo((100, 80)), "PNG")
    path.write_bytes(data)
    first = prepare_image(path, cache=cache)
    # Same size and times, different bytes: only a decode could tell (a hit must not).
    stat = path.stat()
    path.write_bytes(b"x" * len(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    if path.stat().st_ctime_ns == stat.st_ctime_ns:  # pragma: no cover - coarse clocks
        assert prepare_image(path, cache=cache) is first
    else:
        with pytest.raises(ImageInputError):
            prepare_image(path, cache=cache)


def test_cache_keys_on_sizing_inputs(small_png: bytes) -> None:
    cache = ImageCache()
    prepare_image(small_png, model=QWEN, detail="low", cache=cache)
    prepare_image(small_png, model=QWEN, detail="high", cache=cache)
    prepare_image(small_png, model=DEEPSEEK, detail="high", cache=cache)
    prepare_image(small_png, model=DEEPSEEK, detail="high", image_count=3, cache=cache)
    prepare_image(small_png, model=DEEPSEEK, detail="high", max_image_pixels=10**6, cache=cache)
    assert (cache.hits, cache.misses, len(cache)) == (0, 5, 5)
    again = prepare_image(bytearray(small_png), model=QWEN, detail="low", cache=cache)
    assert cache.hits == 1
    assert again.source_label.startswith("<bytearray")  # label of this call, not the cached one
    assert again.detail == "low"


def test_cache_works_for_data_uris_and_file_objects(small_png: bytes) -> None:
    cache = ImageCache()
    uri = "data:image/png;base64," + base64.b64encode(small_png).decode()
    prepare_image(uri, cache=cache)
    prepare_image(io.BytesIO(small_png), cache=cache)
    prepare_image(small_png, cache=cache)
    assert (cache.hits, cache.misses) == (2, 1)


def test_pil_images_and_urls_are_not_cached() -> None:
    cache = ImageCache()
    prepare_image(photo((10, 10)), cache=cache)
    prepare_image("https://example.com/a.png", cache=cache)
    assert len(cache) == 0


def test_cache_bounds_and_lru_eviction() -> None:
    cache = ImageCache(max_entries=2)
    images = [encode(Image.new("RGB", (8, 8), (i, 0, 0)), "PNG") for i in range(3)]
    prepare_image(images[0], cache=cache)
    prepare_image(images[1], cache=cache)
    prepare_image(images[0], cache=cache)  # 0 is now most recently used
    prepare_image(images[2], cache=cache)  # evicts 1
    assert len(cache) == 2
    hits = cache.hits
    prepare_image(images[0], cache=cache)
    assert cache.hits == hits + 1
    prepare_image(images[1], cache=cache)
    assert cache.hits == hits + 1  # 1 was evicted

    sizes = [len(prepare_image(data, cache=None).url) for data in images]
    limit = sizes[1] + sizes[2]
    assert sum(sizes) > limit
    by_bytes = ImageCache(max_bytes=limit)
    for data in images:
        prepare_image(data, cache=by_bytes)
    assert len(by_bytes) == 2 and by_bytes.total_bytes == limit

    tiny = ImageCache(max_bytes=10)
    prepare_image(images[0], cache=tiny)
    assert len(tiny) == 0

    cache.clear()
    assert (len(cache), cache.hits, cache.misses, cache.total_bytes) == (0, 0, 0, 0)
    with pytest.raises(ValueError):
        ImageCache(max_entries=-1)


def test_default_cache_is_used() -> None:
    # The default cache is process-wide: use bytes no other test uses.
    data = encode(Image.new("RGB", (7, 5), (1, 2, 3)), "PNG")
    misses = DEFAULT_CACHE.misses
    hits = DEFAULT_CACHE.hits
    prepare_image(data)
    prepare_image(data)
    assert DEFAULT_CACHE.misses == misses + 1 and DEFAULT_CACHE.hits == hits + 1


def test_errors_are_not_cached() -> None:
    cache = ImageCache()
    for _ in range(2):
        with pytest.raises(ImageInputError):
            prepare_image(b"not an image at all", cache=cache)
    assert len(cache) == 0


def test_thread_safety_shared_cache() -> None:
    cache = ImageCache(max_entries=4)
    sources = [encode(photo((300 + i, 200)), "JPEG") for i in range(6)]
    expected = [prepare_image(s, model=QWEN, detail="low", cache=None).url for s in sources]

    def work(i: int) -> str:
        return prepare_image(sources[i % 6], model=QWEN, detail="low", cache=cache).url

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(96)))
    assert results == [expected[i % 6] for i in range(96)]
    assert len(cache) <= 4 and cache.hits + cache.misses == 96


# --------------------------------------------------------------------------- fetching


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, dict[str, str], bytes]]] = {}

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        status, headers, body = self.routes.get(path, (404, {}, b"missing"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers and path != "/unsized":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, tuple[int, dict[str, str], bytes]]]]:
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_fetch_urls_downloads_and_encodes(
    server: tuple[str, dict[str, tuple[int, dict[str, str], bytes]]],
) -> None:
    base, routes = server
    big = photo_bytes((4000, 3000), quality=75)
    small = encode(photo((64, 48)), "PNG")
    routes["/big.jpg"] = (200, {"Content-Type": "image/jpeg"}, big)
    routes["/small"] = (200, {"Content-Type": "application/octet-stream"}, small)
    prepared = prepare_image(
        f"{base}/big.jpg?sig=1",
        model=QWEN,
        detail="low",
        fetch_urls=True,
        allow_private_urls=True,
        cache=None,
    )
    assert (prepared.width, prepared.height) == (597, 448) and prepared.resized
    assert prepared.source_label == f"{base}/big.jpg?…"
    passthrough = prepare_image(
        f"{base}/small", model=TELEMM, fetch_urls=True, allow_private_urls=True, cache=None
    )
    assert payload(passthrough) == small


def test_fetch_follows_http_redirects_only(
    server: tuple[str, dict[str, tuple[int, dict[str, str], bytes]]],
) -> None:
    base, routes = server
    small = encode(photo((64, 48)), "PNG")
    routes["/img"] = (200, {}, small)
    routes["/moved"] = (302, {"Location": "/img"}, b"")
    routes["/to-file"] = (302, {"Location": "file:///etc/passwd"}, b"")
    assert (
        payload(
            prepare_image(f"{base}/moved", fetch_urls=True, allow_private_urls=True, cache=None)
        )
        == small
    )
    with pytest.raises(ImageInputError, match="fetch failed"):
        prepare_image(f"{base}/to-file", fetch_urls=True, allow_private_urls=True, cache=None)


def test_fetch_errors(server: tuple[str, dict[str, tuple[int, dict[str, str], bytes]]]) -> None:
    base, routes = server
    routes["/text"] = (200, {"Content-Type": "text/html"}, b"<html>login page</html>")
    routes["/huge"] = (200, {}, b"\xff" * 5000)
    routes["/unsized"] = (200, {"Connection": "close"}, b"\xff" * 5000)
    with pytest.raises(ImageInputError, match="not an image"):
        prepare_image(f"{base}/text", fetch_urls=True, allow_private_urls=True, cache=None)
    with pytest.raises(ImageInputError, match="exceeds max_fetch_bytes"):
        prepare_image(
            f"{base}/huge",
            fetch_urls=True,
            allow_private_urls=True,
            max_fetch_bytes=1000,
            cache=None,
        )
    with pytest.raises(ImageInputError, match="exceeds max_fetch_bytes"):
        prepare_image(
            f"{base}/unsized",
            fetch_urls=True,
            allow_private_urls=True,
            max_fetch_bytes=1000,
            cache=None,
        )
    with pytest.raises(ImageInputError) as exc:
        prepare_image(
            f"{base}/gone?token=SECRET", fetch_urls=True, allow_private_urls=True, cache=None
        )
    assert "HTTP 404" in reason(exc) and "SECRET" not in reason(exc)


def test_fetch_connection_refused_is_an_input_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ImageInputError, match="fetch failed"):
        prepare_image(
            f"http://127.0.0.1:{port}/a.png", fetch_urls=True, allow_private_urls=True, cache=None
        )


def test_fetch_timeout() -> None:
    import socket

    with socket.socket() as sock:  # accepts connections, never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(ImageInputError, match="timed out"):
            prepare_image(
                f"http://127.0.0.1:{port}/a.png",
                fetch_urls=True,
                allow_private_urls=True,
                fetch_timeout=0.3,
                cache=None,
            )


def _photo_like(size: tuple[int, int], mode: str) -> Image.Image:
    """Smooth gradients with mild grain: what cameras make (pure noise is no photo)."""
    gradient = Image.linear_gradient("L").resize(size)
    r, g = gradient, gradient.rotate(90).resize(size)
    b = Image.radial_gradient("L").resize(size)
    img = Image.merge("RGB", (r, g, b))
    img = Image.blend(img, Image.effect_noise(size, 30).convert("RGB"), 0.15)
    if mode == "RGBA":  # alpha from 128: below, un-premultiplying magnifies any rounding
        img.putalpha(Image.linear_gradient("L").point(lambda v: 128 + v // 2).resize(size))
    return img.convert(mode)


@pytest.mark.parametrize("strip_bytes", [1 << 40, 3 << 20, 1 << 20], ids=["2", "6", "18"])
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_strip_resize_matches_one_plain_bicubic_resize(
    mode: str, strip_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big, mild reductions are resized in strips by two threads; the result is one
    ``resize(size, BICUBIC)`` (what Qwen2-VL's image processor makes of the original)
    to within rounding, however many strips."""
    from PIL import ImageChops, ImageStat

    from siliconvision.images import _resize

    monkeypatch.setattr(_resize, "_RESIZE_STRIP_BYTES", strip_bytes)
    src = _photo_like((2400, 1800), mode)  # 4.3 MP: the strip path
    target = (1764, 1316)
    assert _resize._RESAMPLE == Image.Resampling.BICUBIC
    assert src.width * src.height >= _resize._PARALLEL_RESIZE_MIN_PIXELS
    out = _resize.resize(src, target)
    assert out.mode == mode and out.size == target
    difference = ImageChops.difference(out, src.resize(target, Image.Resampling.BICUBIC))
    extrema = difference.getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    assert max(high for _, high in bands) <= 4
    mean_square = sum(v * v for v in ImageStat.Stat(difference).rms) / len(mode)
    assert mean_square == 0 or 10 * math.log10(255**2 / mean_square) >= 50
