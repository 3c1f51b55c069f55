"""The emulator bills images as the models' processors count them (over real HTTP)."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from PIL import Image

from siliconvision.testing import LocalSiliconCloud

from .families import FAMILIES, low_reference, reference

SIZES = ((300, 200), (1000, 700), (1921, 1079))
QUESTION = "What is it?"


@pytest.fixture(scope="module")
def emu() -> Iterator[LocalSiliconCloud]:
    with LocalSiliconCloud() as server:
        yield server


@pytest.fixture(scope="module")
def client(emu: LocalSiliconCloud) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=emu.api_key, base_url=emu.base_url, max_retries=0) as c:
        yield c


def _part(size: tuple[int, int], detail: str) -> dict[str, Any]:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url, "detail": detail}}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_prompt_tokens_are_the_processor_s_count(
    family: str, emu: LocalSiliconCloud, client: openai.OpenAI
) -> None:
    model = FAMILIES[family][0]
    for size in SIZES:
        content: Any = [_part(size, "high"), _part(size, "low"), {"type": "text", "text": QUESTION}]
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": content}]
        )
        high = reference(family, *size)
        low = high if family == "deepseek-ocr" else low_reference(family, *size)
        assert high is not None and low is not None
        request = emu.last_request
        assert request is not None
        assert [i.tokens for i in request.images] == [high.tokens, low.tokens], (family, size)
        text = 4 + math.ceil(len(QUESTION.encode()) / 4)
        assert reply.usage is not None
        assert reply.usage.prompt_tokens == text + high.tokens + low.tokens


def test_a_size_the_processor_refuses_is_a_400(client: openai.OpenAI) -> None:
    content: Any = [_part((2010, 10), "high"), {"type": "text", "text": QUESTION}]
    with pytest.raises(openai.BadRequestError, match="aspect ratio"):
        client.chat.completions.create(
            model="Qwen/Qwen2.5-VL-7B-Instruct", messages=[{"role": "user", "content": content}]
        )


def test_a_model_without_a_sourced_rule_bills_no_invented_image_tokens(
    emu: LocalSiliconCloud, client: openai.OpenAI
) -> None:
    content: Any = [_part((300, 200), "high"), {"type": "text", "text": QUESTION}]
    client.chat.completions.create(
        model="stepfun-ai/step3", messages=[{"role": "user", "content": content}]
    )
    assert emu.last_request is not None and emu.last_request.images[0].tokens == 0
