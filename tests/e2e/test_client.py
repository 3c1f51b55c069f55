"""SiliconVisionClient end to end: the real openai SDK over HTTP to LocalSiliconCloud."""

from __future__ import annotations

import asyncio
import math
import re

import openai
import pytest

from siliconvision import (
    ContentError,
    ImageInputError,
    IncompleteStreamError,
    SiliconCloudAPIError,
    SiliconCloudAuthenticationError,
    SiliconCloudBadRequestError,
    SiliconCloudInternalServerError,
    SiliconCloudPermissionDeniedError,
    SiliconCloudRateLimitError,
)
from siliconvision.client import MissingAPIKeyError, SiliconVisionClient
from siliconvision.testing import LocalSiliconCloud
from siliconvision.wire import ParameterError, Usage
from tests.imaging import make_image

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"


@pytest.fixture
def client(emulator: LocalSiliconCloud) -> SiliconVisionClient:
    return SiliconVisionClient(
        api_key=emulator.api_key, base_url=emulator.base_url, model=QWEN, max_retries=0
    )


def test_images_arrive_in_order_downsized_with_explicit_detail(
    client: SiliconVisionClient, emulator: LocalSiliconCloud
) -> None:
    big_red = make_image((4000, 3000), color="red", fmt="JPEG")
    blue = make_image((64, 64), color="blue")
    result = client.ask([big_red, blue], "Which is warmer?", detail="low")
    seen = emulator.last_request.images  # type: ignore[union-attr]
    assert [(i.width, i.height, i.color_name, i.detail) for i in seen] == [
        (597, 448, "red", "low"),
        (64, 64, "blue", "low"),
    ]
    lines = result.content.splitlines()
    assert lines[0] == "I see 2 images."
    assert lines[1].startswith("Image 1: 597x448 JPEG, detail low")
    assert lines[2].startswith("Image 2: 64x64 PNG, detail low")
    assert lines[3] == 'Text: "Which is warmer?"'
    assert result.usage is not None and result.usage.prompt_tokens >= 2 * 256
    assert re.fullmatch(r"[0-9a-f]{32}", result.id)
    assert result.trace_id and result.finish_reason == "stop"


def test_internvl_gets_images_before_text(
    client: SiliconVisionClient, emulator: LocalSiliconCloud
) -> None:
    messages = [{"role": "user", "content": ["Describe:", make_image(color="green")]}]
    result = client.chat(messages, model="OpenGVLab/InternVL2-26B")
    assert result.content.splitlines()[1].startswith("Image 1:")
    assert result.content.splitlines()[2] == 'Text: "Describe:"'


def test_stream_deltas_and_usage_totals(
    client: SiliconVisionClient, emulator: LocalSiliconCloud
) -> None:
    emulator.script_reply("one two three four")
    with client.stream([{"role": "user", "content": "count"}]) as stream:
        deltas = list(stream)
    text = "".join(d.content or "" for d in deltas)
    assert text == "one two three four"
    result = stream.result()
    assert result.content == text and result.finish_reason == "stop"
    assert result.usage is not None and result.usage.completion_tokens > 0
    summed = Usage()
    for d in deltas:
        inc = d.usage_increment or Usage()
        summed = Usage(
            summed.prompt_tokens + inc.prompt_tokens,
            summed.completion_tokens + inc.completion_tokens,
            summed.total_tokens + inc.total_tokens,
        )
    assert summed == Usage(
        result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens
    )
    # The emulator repeats cumulative usage on every chunk: naive summing overcounts.
    naive = sum(d.usage.total_tokens for d in deltas if d.usage)
    assert naive > result.usage.total_tokens


def test_reasoning_is_streamed_separately(
    client: SiliconVisionClient, emulator: LocalSiliconCloud
) -> None:
    emulator.script_reply("It is red.", reasoning="The pixels are red.")
    stream = client.stream(
        [{"role": "user", "content": [make_image(), "colour?"]}], model="Qwen/Qwen3-VL-8B-Thinking"
    )
    deltas = list(stream)
    assert "".join(d.reasoning or "" for d in deltas) == "The pixels are red."
    first_content = next(i for i, d in enumerate(deltas) if d.content)
    last_reasoning = max(i for i, d in enumerate(deltas) if d.reasoning)
    assert last_reasoning < first_content
    assert stream.result().reasoning_content == "The pixels are red."


def test_scripted_tool_calls(client: SiliconVisionClient, emulator: LocalSiliconCloud) -> None:
    emulator.script_reply(tool_calls=[{"name": "lookup", "arguments": {"q": "cat"}}])
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    result = client.chat([{"role": "user", "content": "find a cat"}], tools=tools)
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls[0].name == "lookup"
    assert result.tool_calls[0].parsed_arguments() == {"q": "cat"}
    assert emulator.last_request.body["tools"] == tools  # type: ignore[union-attr]


def test_extra_fields_reach_the_wire(
    client: SiliconVisionClient, emulator: LocalSiliconCloud
) -> None:
    client.chat(
        [{"role": "user", "content": "hi"}],
        model="zai-org/GLM-4.5V",
        enable_thinking=True,
        thinking_budget=512,
        top_k=5,
        min_p=0.1,
    )
    body = emulator.last_request.body  # type: ignore[union-attr]
    assert (body["enable_thinking"], body["thinking_budget"], body["top_k"], body["min_p"]) == (
        True,
        512,
        5,
        0.1,
    )


@pytest.mark.parametrize(
    ("status", "cls", "sdk_cls", "code", "text"),
    [
        (429, SiliconCloudRateLimitError, openai.RateLimitError, None, "rate limiting"),
        (503, SiliconCloudInternalServerError, openai.InternalServerError, 50505, "overloaded"),
        (401, SiliconCloudAuthenticationError, openai.AuthenticationError, None, "Invalid token"),
        (403, SiliconCloudPermissionDeniedError, openai.PermissionDeniedError, None, "Forbidden"),
        (504, SiliconCloudInternalServerError, openai.InternalServerError, None, ""),
    ],
)
def test_error_bodies_become_openai_compatible_exceptions(
    client: SiliconVisionClient,
    emulator: LocalSiliconCloud,
    status: int,
    cls: type[Exception],
    sdk_cls: type[Exception],
    code: int | None,
    text: str,
) -> None:
    emulator.fail_next(status)
    with pytest.raises(sdk_cls) as info:
        client.chat([{"role": "user", "content": "hi"}])
    error = info.value
    assert isinstance(error, cls) and isinstance(error, SiliconCloudAPIError)
    assert error.status_code == status and error.siliconcloud_code == code
    assert str(error).startswith(f"SiliconCloud HTTP {status}")
    assert text in str(error)
    assert error.trace_id
    assert emulator.api_key not in str(error)


def test_unknown_model_is_20012_and_wrong_key_is_401_without_the_key(
    emulator: LocalSiliconCloud,
) -> None:
    good = SiliconVisionClient(api_key=emulator.api_key, base_url=emulator.base_url, max_retries=0)
    with pytest.raises(SiliconCloudBadRequestError) as info:
        good.chat([{"role": "user", "content": "hi"}], model="acme/not-a-model")
    assert info.value.siliconcloud_code == 20012 and "(code 20012)" in str(info.value)
    secret = "sk-wrong-secret-123456"
    bad = SiliconVisionClient(api_key=secret, base_url=emulator.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        bad.chat([{"role": "user", "content": "hi"}])
    assert "region-bound" in str(auth.value)
    assert secret not in str(auth.value) and secret not in repr(auth.value)
    assert secret not in repr(bad) and secret not in repr(bad.openai)


def test_sdk_retries_transient_faults(emulator: LocalSiliconCloud) -> None:
    client = SiliconVisionClient(
        api_key=emulator.api_key, base_url=emulator.base_url, max_retries=2
    )
    emulator.fail_next(503, count=1)
    assert client.chat([{"role": "user", "content": "hi"}]).content.startswith("I see 0 images.")
    assert [r.status for r in emulator.requests] == [503, 200]


@pytest.mark.parametrize("mode", ["abort", "clean"])
def test_cut_stream_raises_with_partial_text(
    client: SiliconVisionClient, emulator: LocalSiliconCloud, mode: str
) -> None:
    emulator.script_reply("alpha beta gamma delta epsilon")
    emulator.cut_stream_after = 3
    emulator.cut_mode = mode  # type: ignore[assignment]
    received: list[str] = []
    with pytest.raises(IncompleteStreamError) as info:
        for delta in client.stream([{"role": "user", "content": "go"}]):
            received.append(delta.content or "")
    assert info.value.partial_text == "".join(received)
    assert info.value.partial_text and "epsilon" not in info.value.partial_text


def test_bad_input_raises_before_any_request(
    client: SiliconVisionClient, emulator: LocalSiliconCloud
) -> None:
    with pytest.raises(ImageInputError):
        client.ask([b"not an image"], "?")
    with pytest.raises(ContentError):
        client.chat([{"role": "user", "content": [{"type": "audio"}]}])
    with pytest.raises(ParameterError):
        client.chat([{"role": "user", "content": "hi"}], temperature=9)
    assert emulator.requests == []


def test_missing_key_is_a_clear_error_before_any_request(emulator: LocalSiliconCloud) -> None:
    client = SiliconVisionClient(base_url=emulator.base_url)
    with pytest.raises(MissingAPIKeyError, match="SILICONFLOW_API_KEY"):
        client.chat([{"role": "user", "content": "hi"}])
    assert emulator.requests == []


def test_key_and_base_url_from_the_environment(
    emulator: LocalSiliconCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SILICONCLOUD_API_KEY", emulator.api_key)
    monkeypatch.setenv("SILICONFLOW_BASE_URL", emulator.base_url)
    client = SiliconVisionClient(max_retries=0)
    assert client.chat([{"role": "user", "content": "hi"}]).content
    monkeypatch.setenv("SILICONFLOW_API_KEY", "sk-takes-precedence")
    assert SiliconVisionClient().api_key.get_secret_value() == "sk-takes-precedence"  # type: ignore[union-attr]


def test_embeddings_and_models(client: SiliconVisionClient) -> None:
    vectors = client.embed(["a red apple", "a red apple on a table", "tax law"])
    assert len(vectors) == 3 and len(vectors[0]) == 1024

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
            sum(x * x for x in a) * sum(y * y for y in b)
        )

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
    assert vectors == client.embed(["a red apple", "a red apple on a table", "tax law"])
    assert QWEN in client.list_models()


async def test_async_chat_and_stream(
    client: SiliconVisionClient, emulator: LocalSiliconCloud
) -> None:
    result = await client.achat([{"role": "user", "content": [make_image(), "?"]}])
    assert result.content.startswith("I see 1 image.")
    emulator.script_reply("a b c")
    stream = await client.astream([{"role": "user", "content": "go"}])
    pieces = [d.content async for d in stream if d.content]
    assert "".join(pieces) == "a b c"
    assert stream.result().usage is not None
    results = await asyncio.gather(
        *(client.achat([{"role": "user", "content": f"q{i}"}]) for i in range(8))
    )
    assert [r.content.splitlines()[1] for r in results] == [f'Text: "q{i}"' for i in range(8)]
    await client.aclose()


def test_repr_never_shows_the_key(emulator: LocalSiliconCloud) -> None:
    client = SiliconVisionClient(api_key="sk-very-secret-value", base_url=emulator.base_url)
    assert "sk-very-secret-value" not in repr(client)
    assert "**********" in repr(client)
    with pytest.raises(TypeError, match="not picklable"):
        import pickle

        pickle.dumps(client)


def test_async_calls_work_across_event_loops(client: SiliconVisionClient) -> None:
    """LangChain and LlamaIndex callers often run several loops (asyncio.run per call)."""
    for i in range(3):
        result = asyncio.run(client.achat([{"role": "user", "content": f"loop {i}"}]))
        assert result.content.splitlines()[1] == f'Text: "loop {i}"'


def test_key_never_in_debug_logs_or_emulator_log(
    emulator: LocalSiliconCloud, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    secret = emulator.api_key
    client = SiliconVisionClient(api_key=secret, base_url=emulator.base_url, max_retries=1)
    emulator.fail_next(429)
    with caplog.at_level(logging.DEBUG):
        for name in ("openai", "httpx", "httpx2", "httpcore", "siliconvision"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        client.ask([make_image()], "hi")
        list(client.stream([{"role": "user", "content": "hi"}]))
    assert caplog.records, "DEBUG logging captured nothing: the check would be vacuous"
    assert secret not in caplog.text
    for request in emulator.requests:
        assert secret not in repr(request)
        assert request.headers["authorization"] == "Bearer ***"


def _noise_png(size: tuple[int, int]) -> bytes:
    """A PNG that does not compress: big enough for the streamed-body path."""
    import io
    import os

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_big_image_body_is_streamed_and_resent_whole_on_a_retry(
    emulator: LocalSiliconCloud, use_async: bool
) -> None:
    client = SiliconVisionClient(
        api_key=emulator.api_key, base_url=emulator.base_url, model=QWEN, max_retries=1
    )
    png = _noise_png((300, 200))  # ~180 KB; within what the model keeps, so sent as it is
    emulator.fail_next(503, count=1)
    if use_async:
        result = await client.achat(client.ask_messages([png], "Describe."), detail="high")
        await client.aclose()
    else:
        result = client.ask([png], "Describe.", detail="high")
    assert result.content.startswith("I see 1 image")
    failed, answered = emulator.requests
    assert (failed.status, answered.status) == (503, 200)
    # Both attempts uploaded the whole body, of the announced length.
    assert failed.body_size == answered.body_size > len(png)
    assert int(answered.headers["content-length"]) == answered.body_size
    assert [(i.width, i.height, i.format) for i in answered.images] == [(300, 200, "PNG")]
