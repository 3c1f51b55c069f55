"""Property tests for siliconvision.images: nothing crashes, sizes follow the rules.

Every input either becomes a ``PreparedImage`` whose data URI decodes to an image
of the size it claims, or raises ``ImageInputError``; never any other exception.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any, TypeVar, cast

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from siliconvision.catalog import Detail
from siliconvision.errors import ImageInputError
from siliconvision.images import PreparedImage, prepare_image
from siliconvision.tokens import client_target_size


def modest(max_examples: int) -> Callable[[F], F]:
    """Small, deterministic-enough runs: no deadline, no example database on disk."""
    chosen = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    return cast("Callable[[F], F]", chosen)


F = TypeVar("F", bound=Callable[..., Any])

MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F")
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
MODELS: tuple[tuple[str | None, Detail | None, int], ...] = (
    (None, None, 1),
    ("Qwen/Qwen2.5-VL-72B-Instruct", "low", 1),
    ("Qwen/Qwen2.5-VL-72B-Instruct", "high", 1),
    ("THUDM/GLM-4.1V-9B-Thinking", "high", 1),
    ("deepseek-ai/deepseek-vl2", "high", 1),
    ("deepseek-ai/deepseek-vl2", "high", 3),
    ("OpenGVLab/InternVL2-26B", "auto", 1),
    ("acme/unknown-vl", "low", 1),
)
MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"\x00\x00\x01\x00",
    b"P6\n",
)


def make(mode: str, size: tuple[int, int]) -> Image.Image:
    """A gradient image in ``mode`` (with varying alpha where the mode has it)."""
    grey = Image.linear_gradient("L").resize(size)
    if mode == "I;16":
        return grey.convert("I").point(lambda v: v * 200).convert("I;16")
    img = grey.convert(mode)
    if mode in ("LA", "RGBA"):
        img.putalpha(Image.linear_gradient("L").rotate(90).resize(size))
    return img


def encode(img: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt)
    return buffer.getvalue()


def _round_trips(mode: str, fmt: str) -> bool:
    try:
        Image.open(io.BytesIO(encode(make(mode, (5, 3)), fmt))).load()
    except Exception:
        return False
    return True


COMBOS = tuple((m, f) for m in MODES for f in FORMATS if _round_trips(m, f))
SAMPLES = {fmt: encode(make("RGB", (61, 47)), fmt) for fmt in FORMATS}


def check_result(prepared: PreparedImage) -> Image.Image:
    """The data URI is well formed and holds an image of the size it claims."""
    head, _, body = prepared.url.partition(",")
    assert head == f"data:{prepared.mime_type};base64"
    data = base64.b64decode(body, validate=True)
    assert len(data) == prepared.byte_size
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.format in ("JPEG", "PNG", "WEBP", "GIF", "MPO")
    assert (img.width, img.height) == (prepared.width, prepared.height)
    return img


def prepare_or_error(data: bytes, **kwargs: Any) -> PreparedImage | None:
    try:
        prepared = prepare_image(data, cache=None, **kwargs)
    except ImageInputError:
        return None
    check_result(prepared)
    return prepared


def test_combos_cover_every_mode_and_format() -> None:
    assert {m for m, _ in COMBOS} == set(MODES)
    assert {f for _, f in COMBOS} == set(FORMATS)


@modest(100)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    prepare_or_error(data)


@modest(100)
@given(st.sampled_from(MAGIC), st.binary(max_size=2048))
def test_bytes_behind_a_real_magic_number_never_crash(magic: bytes, rest: bytes) -> None:
    prepare_or_error(magic + rest)


@modest(80)
@given(st.sampled_from(FORMATS), st.data())
def test_truncated_images_never_crash(fmt: str, data: st.DataObject) -> None:
    whole = SAMPLES[fmt]
    cut = data.draw(st.integers(0, len(whole) - 1), label="cut")
    model, detail, count = data.draw(st.sampled_from(MODELS), label="model")
    prepare_or_error(whole[:cut], model=model, detail=detail, image_count=count)


@modest(80)
@given(st.sampled_from(FORMATS), st.data())
def test_corrupted_images_never_crash(fmt: str, data: st.DataObject) -> None:
    damaged = bytearray(SAMPLES[fmt])
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        index = data.draw(st.integers(0, len(damaged) - 1), label="index")
        damaged[index] = data.draw(st.integers(0, 255), label="byte")
    prepare_or_error(bytes(damaged), model="Qwen/Qwen2.5-VL-72B-Instruct", detail="low")


@modest(60)
@given(
    st.sampled_from(COMBOS),
    st.integers(1, 2000) | st.integers(300, 2000),
    st.integers(1, 2000) | st.integers(300, 2000),
    st.sampled_from(MODELS),
)
def test_valid_images_are_sized_by_the_rules(
    combo: tuple[str, str],
    width: int,
    height: int,
    model_case: tuple[str | None, Detail | None, int],
) -> None:
    mode, fmt = combo
    model, detail, count = model_case
    data = encode(make(mode, (width, height)), fmt)
    try:
        prepared = prepare_image(data, model=model, detail=detail, image_count=count, cache=None)  # type: ignore[arg-type]
    except ImageInputError as exc:
        # The only reason a valid image may be refused: Qwen-style aspect limits.
        assert "aspect ratio" in str(exc)
        assert max(width, height) / min(width, height) > 200
        return
    check_result(prepared)
    event("resized" if prepared.resized else "reencoded" if prepared.reencoded else "as is")
    target = (
        None
        if model is None
        else client_target_size(width, height, model=model, detail=detail, image_count=count)
    )
    assert (prepared.original_width, prepared.original_height) == (width, height)
    if target is None:
        assert (prepared.width, prepared.height) == (width, height)
        assert not prepared.resized
    elif prepared.resized:
        assert (prepared.width, prepared.height) == target
        assert prepared.reencoded
    else:  # re-encoding did not pay: the original went as it was
        assert (prepared.width, prepared.height) == (width, height)
        assert not prepared.reencoded
    if not prepared.reencoded:
        body = prepared.url.partition(",")[2]
        assert base64.b64decode(body) == data


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_sample_is_accepted(fmt: str) -> None:
    prepared = prepare_image(SAMPLES[fmt], cache=None)
    assert check_result(prepared).size == (61, 47)
