"""The local SiliconCloud emulator, through the real openai SDK and raw HTTP."""

from __future__ import annotations

import base64
import http.client
import io
import json
import math
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, cast

import httpx
import httpx2
import openai
import pytest
from PIL import Image

from siliconvision.catalog import known_model_ids
from siliconvision.testing import LocalSiliconCloud, ReceivedRequest, ScriptedReply
from siliconvision.testing._imaging import colour_name
from siliconvision.tokens import estimate_image_tokens

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
THINKING = "Qwen/Qwen3-VL-8B-Thinking"
GLM45V = "zai-org/GLM-4.5V"
TEXT_ONLY = "Qwen/Qwen2.5-7B-Instruct"
EMBED = "BAAI/bge-m3"
IMAGE_URL_MESSAGE = (
    "Image url should be a valid url or should like data:image/TYPE;base64,YOUR-BASE64-CONTENT"
)


# --------------------------------------------------------------------------- helpers


def image_bytes(color: Any = "red", size: tuple[int, int] = (64, 32), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def data_uri(data: bytes, subtype: str = "png") -> str:
    return f"data:image/{subtype};base64," + base64.b64encode(data).decode()


def image_part(url: str, detail: str | None = None) -> Any:
    spec: dict[str, Any] = {"url": url}
    if detail is not None:
        spec["detail"] = detail
    return {"type": "image_url", "image_url": spec}


def user(*parts: Any) -> Any:
    return {"role": "user", "content": list(parts)}


def text(value: str) -> Any:
    return {"type": "text", "text": value}


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def logged(emu: LocalSiliconCloud, count: int) -> bool:
    return len(emu.requests) == count


def sse_events(raw: bytes) -> list[str]:
    return [line[len("data: ") :] for line in raw.decode().split("\n\n") if line]


@pytest.fixture
def emu() -> Iterator[LocalSiliconCloud]:
    with LocalSiliconCloud() as server:
        yield server


@pytest.fixture
def client(emu: LocalSiliconCloud) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=emu.api_key, base_url=emu.base_url, max_retries=0) as c:
        yield c


@pytest.fixture
def raw(emu: LocalSiliconCloud) -> Iterator[httpx2.Client]:
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    with httpx2.Client(base_url=emu.base_url, headers=headers, timeout=10) as c:
        yield c


def chat(raw: httpx2.Client, **body: Any) -> httpx2.Response:
    body.setdefault("model", QWEN)
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return raw.post("/chat/completions", json=body)


# --------------------------------------------------------------------------- auth, routes


def test_auth_missing_and_wrong_key_get_bare_invalid_token(emu: LocalSiliconCloud) -> None:
    with httpx2.Client(base_url=emu.base_url) as anon:
        missing = anon.post("/chat/completions", json={"model": QWEN, "messages": []})
        wrong = anon.get("/models", headers={"Authorization": "Bearer sk-wrong"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json() == "Invalid token"
        assert response.headers["x-siliconcloud-trace-id"]
    with (
        openai.OpenAI(api_key="sk-wrong", base_url=emu.base_url, max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError),
    ):
        bad.models.list()
    assert [r.status for r in emu.requests] == [401, 401, 401]


def test_unknown_path_is_404_bare_string(raw: httpx2.Client, emu: LocalSiliconCloud) -> None:
    assert raw.get("/nothing").json() == "404 page not found"
    response = raw.get(emu.base_url.replace("/v1", "/elsewhere"))
    assert response.status_code == 404
    assert raw.get("/chat/completions").status_code == 404  # wrong method


def test_models_list_and_filters(emu: LocalSiliconCloud, client: openai.OpenAI) -> None:
    emu.extra_models.update({"acme/new-vl", "acme/embed-x"})
    ids = [m.id for m in client.models.list()]
    assert set(known_model_ids()) <= set(ids) and "acme/new-vl" in ids
    with httpx2.Client(headers={"Authorization": f"Bearer {emu.api_key}"}) as c:
        chat_ids = [
            m["id"] for m in c.get(f"{emu.base_url}/models?type=text&sub_type=chat").json()["data"]
        ]
        body = c.get(f"{emu.base_url}/models?sub_type=embedding").json()
    assert EMBED not in chat_ids and QWEN in chat_ids and "acme/new-vl" in chat_ids
    assert [m["id"] for m in body["data"]] == [EMBED, "acme/embed-x"]
    assert body["object"] == "list"
    assert body["data"][0] == {"id": EMBED, "object": "model", "created": 0, "owned_by": ""}


# --------------------------------------------------------------------------- validation


def test_unknown_model_is_20012(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="nope/nothing", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body == {
        "code": 20012,
        "message": "Model does not exist. Please check it carefully.",
        "data": None,
    }


def test_extra_models_are_accepted() -> None:
    with (
        LocalSiliconCloud(extra_models=["acme/vl-9"]) as emu,
        openai.OpenAI(api_key=emu.api_key, base_url=emu.base_url, max_retries=0) as client,
    ):
        reply = client.chat.completions.create(
            model="acme/vl-9", messages=[user(image_part(data_uri(image_bytes())))]
        )
        assert (reply.choices[0].message.content or "").startswith("I see 1 image.")


RED = data_uri(image_bytes("red"))


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": None},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"messages": [{"role": "user"}]},
        {"temperature": 2.5},
        {"temperature": -0.1},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"tools": [{"type": "function", "function": {"name": f"t{i}"}} for i in range(129)]},
        {"tools": [{"type": "function", "function": {"name": "bad name!"}}]},
        {"thinking_budget": 64},
        {"thinking_budget": 40000},
        {"response_format": {"type": "json_schema"}},
        {"model": TEXT_ONLY, "messages": [user(image_part(RED))]},
        {"messages": [user({"type": "video_url", "video_url": {"url": "https://x/v.mp4"}})]},
        {"messages": [user(image_part(RED, detail="ultra"))]},
        {"messages": [{"role": "tool", "content": [image_part(RED)], "tool_call_id": "c1"}]},
        {"model": EMBED},
    ],
)
def test_invalid_parameters_are_20015(raw: httpx2.Client, body: dict[str, Any]) -> None:
    response = chat(raw, **body)
    assert response.status_code == 400
    assert response.json()["code"] == 20015
    assert response.json()["message"].startswith("The parameter is invalid. Please check again.")


def test_malformed_json_is_20015(raw: httpx2.Client, emu: LocalSiliconCloud) -> None:
    response = raw.post(
        "/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["code"] == 20015
    assert emu.last_request is not None and emu.last_request.body is None


def test_tools_and_stop_within_limits_are_fine(raw: httpx2.Client) -> None:
    tools = [{"type": "function", "function": {"name": f"tool_{i}-x"}} for i in range(128)]
    assert chat(raw, tools=tools, stop=["a", "b", "c", "d"], temperature=2).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "not a url",
        "data:image/png;base64,!!!notbase64",
        "data:text/plain;base64,aGVsbG8=",
        "data:image/png;base64," + base64.b64encode(b"definitely not an image").decode(),
    ],
)
def test_malformed_image_url_is_20040(client: openai.OpenAI, url: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=QWEN, messages=[user(image_part(url))])
    assert info.value.body == {"code": 20040, "message": IMAGE_URL_MESSAGE, "data": None}


def test_unregistered_url_cannot_be_fetched(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=QWEN,
            messages=[user(image_part("https://example.com/dog.png"))],
        )
    assert info.value.body == {
        "code": 20015,
        "message": "The parameter is invalid. Please check again. (could not fetch image url)",
        "data": None,
    }


def test_serve_url_and_add_file(emu: LocalSiliconCloud, client: openai.OpenAI) -> None:
    url = emu.serve_url("https://example.com/dog.png", image_bytes("green", (40, 20)))
    loopback = emu.add_file("cat.jpg", image_bytes("blue", (30, 30), "JPEG"))
    assert loopback == f"{emu.base_url[:-3]}/files/cat.jpg"
    with httpx2.Client() as anon:  # served for real, without auth
        fetched = anon.get(loopback)
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/jpeg"
        assert fetched.content == image_bytes("blue", (30, 30), "JPEG")
        assert anon.get(loopback + "x").status_code == 404
    client.chat.completions.create(
        model=QWEN,
        messages=[user(image_part(url), image_part(loopback, "low"))],
    )
    assert emu.last_request is not None
    seen = emu.last_request.images
    assert [(i.source, i.url, i.color_name, i.format) for i in seen] == [
        ("url", url, "green", "PNG"),
        ("url", loopback, "blue", "JPEG"),
    ]
    assert len(emu.file_requests) == 2 and len(emu.requests) == 1


# --------------------------------------------------------------------------- replies


def test_non_streaming_shape(raw: httpx2.Client, emu: LocalSiliconCloud) -> None:
    response = chat(raw, messages=[user(image_part(RED, "low"), text("What?"))])
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-siliconcloud-trace-id"])
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["id"])
    assert body["object"] == "chat.completion" and body["model"] == QWEN
    assert body["system_fingerprint"] == "" and isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    message = choice["message"]
    assert message["role"] == "assistant" and message["reasoning_content"] is None
    usage = body["usage"]
    # user message: 4 + ceil(5/4) = 6; low-detail Qwen image = 256 tokens.
    assert usage["prompt_tokens"] == 6 + 256
    assert usage["completion_tokens"] == len(re.findall(r"\s*\S+|\s+", message["content"]))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert emu.last_request is not None and emu.last_request.status == 200


def test_streaming_shape_raw(raw: httpx2.Client) -> None:
    body = {"model": QWEN, "messages": [user(text("hello there"))], "stream": True}
    with raw.stream("POST", "/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["x-siliconcloud-trace-id"]
        events = sse_events(response.read())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and re.fullmatch(r"[0-9a-f]{32}", chunks[0]["id"])
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "",
        "reasoning_content": None,
    }
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"][0]["delta"]["content"] == ""
    usages = [c["usage"] for c in chunks]
    assert len({u["prompt_tokens"] for u in usages}) == 1
    completions = [u["completion_tokens"] for u in usages]
    assert completions == sorted(completions) and completions[0] == 0
    content = "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks)
    assert content == 'I see 0 images.\nText: "hello there"'
    assert completions[-1] == len(chunks) - 2  # one piece per content delta
    assert all(u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] for u in usages)
    # Same usage as the non-streaming answer.
    same = chat(raw, model=QWEN, messages=body["messages"]).json()["usage"]
    assert same == usages[-1]


def test_keep_alive_serves_streams_and_plain_requests_on_one_connection(
    emu: LocalSiliconCloud,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    headers = {"Authorization": f"Bearer {emu.api_key}", "Content-Type": "application/json"}
    try:
        for stream in (True, False, True):
            payload = json.dumps({"model": QWEN, "messages": [user(text("x"))], "stream": stream})
            conn.request("POST", "/v1/chat/completions", body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
            assert response.status == 200 and response.will_close is False
            assert (b"data: [DONE]" in data) is stream
            sock = conn.sock
            assert sock is not None
            if stream:
                first_sock = sock
            assert sock is first_sock
    finally:
        conn.close()


def test_reasoning_deltas_for_thinking_models(client: openai.OpenAI) -> None:
    messages: Any = [user(image_part(RED), text("describe"))]
    kinds: list[str] = []
    reasoning = content = ""
    for chunk in client.chat.completions.create(model=THINKING, messages=messages, stream=True):
        delta: Any = chunk.choices[0].delta
        if getattr(delta, "reasoning_content", None):
            kinds.append("r")
            reasoning += delta.reasoning_content
            assert delta.content is None
        elif delta.content:
            kinds.append("c")
            content += delta.content
        last = chunk
    assert reasoning.startswith("Looking at 1 image(s)")
    assert content.startswith("I see 1 image.")
    assert "".join(kinds) == "r" * kinds.count("r") + "c" * kinds.count("c")
    assert last.usage is not None
    assert last.usage.completion_tokens_details is not None
    assert last.usage.completion_tokens_details.reasoning_tokens == kinds.count("r")


def test_glm45v_thinks_only_with_enable_thinking(client: openai.OpenAI) -> None:
    messages: Any = [user(text("hi"))]
    plain = client.chat.completions.create(model=GLM45V, messages=messages)
    thinking = client.chat.completions.create(
        model=GLM45V, messages=messages, extra_body={"enable_thinking": True}
    )
    assert getattr(plain.choices[0].message, "reasoning_content", None) is None
    assert getattr(thinking.choices[0].message, "reasoning_content", "").startswith("Looking at")
    assert thinking.usage is not None and thinking.usage.completion_tokens_details is not None
    assert (thinking.usage.completion_tokens_details.reasoning_tokens or 0) > 0


def test_scripted_content_reasoning_and_tool_calls(
    emu: LocalSiliconCloud, client: openai.OpenAI
) -> None:
    emu.script_reply("Hello world", reasoning="Let me think")
    emu.script_reply(
        tool_calls=[
            {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"},
            {"name": "lookup", "arguments": '{"q": "a long query string here"}'},
        ]
    )
    messages: Any = [user(text("hi"))]
    first = client.chat.completions.create(model=QWEN, messages=messages)
    message: Any = first.choices[0].message
    assert (message.content, message.reasoning_content) == ("Hello world", "Let me think")
    assert first.usage is not None and first.usage.completion_tokens == 2 + 3
    second = client.chat.completions.create(model=QWEN, messages=messages)
    calls = second.choices[0].message.tool_calls
    assert second.choices[0].finish_reason == "tool_calls"
    assert second.choices[0].message.content is None
    assert calls is not None
    first_call: Any = calls[0]
    assert (first_call.id, first_call.function.name, json.loads(first_call.function.arguments)) == (
        "call_1",
        "get_weather",
        {"city": "Paris"},
    )
    assert calls[1].id.startswith("call_")
    third = client.chat.completions.create(model=QWEN, messages=messages)  # queue empty
    assert third.choices[0].message.content == 'I see 0 images.\nText: "hi"'


def test_scripted_stream_with_tool_calls_and_exact_chunks(
    emu: LocalSiliconCloud, client: openai.OpenAI
) -> None:
    emu.script_reply(chunks=["Hel", "lo", "!"], reasoning="hmm ok")
    emu.script_reply(
        "Calling.",
        tool_calls=[{"name": "search", "arguments": {"query": "x" * 40}, "id": "c9"}],
        finish_reason="tool_calls",
    )
    messages: Any = [user(text("hi"))]
    deltas = [
        c.choices[0].delta.content
        for c in client.chat.completions.create(model=QWEN, messages=messages, stream=True)
        if c.choices[0].delta.content
    ]
    assert deltas == ["Hel", "lo", "!"]
    names: dict[int, str] = {}
    args: dict[int, str] = {}
    first_deltas = []
    finish = None
    for chunk in client.chat.completions.create(model=QWEN, messages=messages, stream=True):
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        calls: Any = choice.delta.tool_calls or []
        for call in calls:
            if call.id:
                first_deltas.append(call)
                names[call.index] = call.function.name
            args[call.index] = args.get(call.index, "") + (call.function.arguments or "")
    assert finish == "tool_calls"
    assert [(c.index, c.id, c.type, c.function.arguments) for c in first_deltas] == [
        (0, "c9", "function", "")
    ]
    assert names == {0: "search"} and json.loads(args[0]) == {"query": "x" * 40}


def test_script_reply_validates_early(emu: LocalSiliconCloud) -> None:
    with pytest.raises(ValueError):
        emu.script_reply("abc", chunks=["a", "b"])
    with pytest.raises(ValueError):
        emu.script_reply(tool_calls=[{"arguments": {}}])
    with pytest.raises(TypeError):
        emu.script_reply(tool_calls=[{"name": "x", "arguments": 3}])


def test_responder_sees_the_request(emu: LocalSiliconCloud, client: openai.OpenAI) -> None:
    seen: list[ReceivedRequest] = []

    def responder(request: ReceivedRequest) -> ScriptedReply | None:
        seen.append(request)
        if request.images:
            return ScriptedReply(content=f"{request.images[0].color_name} thing")
        return None

    emu.set_responder(responder)
    emu.script_reply("from the queue")
    messages: Any = [user(image_part(RED))]
    answers = [
        client.chat.completions.create(model=QWEN, messages=messages).choices[0].message.content
        for _ in range(2)
    ]
    plain = client.chat.completions.create(model=QWEN, messages=[{"role": "user", "content": "x"}])
    assert answers == ["from the queue", "red thing"]
    assert plain.choices[0].message.content == 'I see 0 images.\nText: "x"'
    assert len(seen) == 2 and seen[0].model == QWEN

    def broken(request: ReceivedRequest) -> ScriptedReply | None:
        raise RuntimeError("boom")

    emu.set_responder(broken)
    with pytest.raises(openai.InternalServerError, match="boom"):
        client.chat.completions.create(model=QWEN, messages=messages)


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("status", "expected", "exc"),
    [
        (429, None, openai.RateLimitError),
        (503, None, openai.InternalServerError),
        (401, "Invalid token", openai.AuthenticationError),
        (504, None, openai.InternalServerError),
        (403, None, openai.PermissionDeniedError),
    ],
)
def test_fail_next_uses_real_bodies(
    raw: httpx2.Client,
    client: openai.OpenAI,
    emu: LocalSiliconCloud,
    status: int,
    expected: Any,
    exc: type[Exception],
) -> None:
    emu.fail_next(status, count=2)
    response = chat(raw)
    assert response.status_code == status
    body = response.json()
    if status == 429:
        assert set(body) == {"message", "data"} and "TPM limit reached" in body["message"]
        assert body["message"].startswith("Request was rejected due to rate limiting.")
    elif status == 503:
        assert body == {
            "code": 50505,
            "message": "Model service overloaded. Please try again later.",
            "data": None,
        }
    elif status == 504:
        assert isinstance(body, str)
    elif status == 403:
        assert body == "Forbidden"
    else:
        assert body == expected
    with pytest.raises(exc):
        client.models.list()
    assert chat(raw).status_code == 200  # the faults are used up
    assert [r.status for r in emu.requests] == [status, status, 200]


def test_fail_next_custom_bodies(raw: httpx2.Client, emu: LocalSiliconCloud) -> None:
    emu.fail_next(503, {"code": 50603, "message": "System is really busy.", "data": None})
    emu.fail_next(500, "bare words")
    emu.fail_next(502, b"<html>bad gateway</html>")
    first, second, third = chat(raw), chat(raw), chat(raw)
    assert first.json()["code"] == 50603 and emu.requests[0].error_code == 50603
    assert second.status_code == 500 and second.content == b'"bare words"'
    assert third.status_code == 502 and third.content == b"<html>bad gateway</html>"


def test_fault_rate_is_seeded_and_reproducible() -> None:
    def statuses(seed: int) -> list[int]:
        with LocalSiliconCloud() as emu, httpx2.Client(base_url=emu.base_url) as c:
            emu.set_fault_rate(0.5, statuses=(429, 503), seed=seed)
            headers = {"Authorization": f"Bearer {emu.api_key}"}
            return [c.get("/models", headers=headers).status_code for _ in range(30)]

    first, again, other = statuses(7), statuses(7), statuses(8)
    assert first == again and first != other
    assert {429, 503, 200} == set(first)


# --------------------------------------------------------------------------- knobs


def test_latency_and_chunk_delay_are_recorded(
    emu: LocalSiliconCloud, client: openai.OpenAI
) -> None:
    emu.latency = 0.05
    emu.chunk_delay = 0.002
    messages: Any = [user(text("hi"))]
    list(client.chat.completions.create(model=QWEN, messages=messages, stream=True))
    client.models.list()
    streamed, models = emu.requests
    assert (streamed.latency, streamed.chunk_delay) == (0.05, 0.002)
    assert streamed.chunks_sent > 2 and streamed.finished_at is not None
    assert streamed.finished_at - streamed.received_at >= 0.05
    assert models.latency == 0.0  # latency applies to chat and embeddings only


def test_reply_chunks_splits_into_exactly_n_deltas(client: openai.OpenAI) -> None:
    with (
        LocalSiliconCloud(reply_chunks=300) as emu,
        openai.OpenAI(api_key=emu.api_key, base_url=emu.base_url, max_retries=0) as c,
    ):
        messages: Any = [user(text("hi"))]
        deltas = [
            ch.choices[0].delta.content
            for ch in c.chat.completions.create(model=QWEN, messages=messages, stream=True)
        ]
        content_deltas = [d for d in deltas[1:-1] if d is not None]
        assert len(content_deltas) == 300 and all(content_deltas)
        assert "".join(content_deltas).startswith('I see 0 images.\nText: "hi"\n')
        assert emu.last_request is not None and emu.last_request.chunks_sent == 302


def test_stream_cut_abort_raises_in_the_sdk(emu: LocalSiliconCloud, client: openai.OpenAI) -> None:
    emu.cut_stream_after = 3
    messages: Any = [user(text("one two three four five"))]
    received = []
    # openai 2.x wraps the broken read in APIConnectionError; 1.55 lets httpx's error through
    with pytest.raises((openai.APIConnectionError, httpx.TransportError, httpx2.TransportError)):
        for chunk in client.chat.completions.create(model=QWEN, messages=messages, stream=True):
            received.append(chunk)
    assert len(received) == 3
    assert emu.last_request is not None and emu.last_request.chunks_sent == 3


def test_stream_cut_clean_ends_silently_without_finish(
    emu: LocalSiliconCloud, client: openai.OpenAI
) -> None:
    emu.cut_stream_after = 4
    emu.cut_mode = "clean"
    messages: Any = [user(text("one two three four five"))]
    chunks = list(client.chat.completions.create(model=QWEN, messages=messages, stream=True))
    assert len(chunks) == 4
    assert all(c.choices[0].finish_reason is None for c in chunks)
    # The connection stays usable after a clean cut.
    emu.cut_stream_after = None
    assert client.chat.completions.create(model=QWEN, messages=messages).choices


def test_stall_and_client_timeout(emu: LocalSiliconCloud) -> None:
    emu.stall = True
    with openai.OpenAI(
        api_key=emu.api_key, base_url=emu.base_url, max_retries=0, timeout=0.3
    ) as client:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model=QWEN, messages=[{"role": "user", "content": "x"}])
        assert time.monotonic() - started < 5
    assert emu.last_request is not None and emu.last_request.status == 0


def test_stop_wakes_stalled_and_sleeping_handlers() -> None:
    baseline = threading.active_count()
    emu = LocalSiliconCloud(latency=30).start()
    sockets = []
    for stalled in (True, False):
        emu.stall = stalled
        s = socket.create_connection(("127.0.0.1", emu.port))
        body = json.dumps({"model": QWEN, "messages": [{"role": "user", "content": "x"}]})
        s.sendall(
            (
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {emu.api_key}\r\nContent-Length: {len(body)}\r\n\r\n{body}"
            ).encode()
        )
        sockets.append(s)
        assert wait_until(partial(logged, emu, len(sockets)))
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 2
    for s in sockets:
        s.settimeout(2)
        assert s.recv(100) == b""  # closed without an answer
        s.close()
    assert wait_until(lambda: threading.active_count() == baseline)


def test_client_disconnect_is_counted(emu: LocalSiliconCloud, client: openai.OpenAI) -> None:
    emu.chunk_delay = 0.01
    emu.reply_chunks = 500
    messages: Any = [user(text("hi"))]
    stream = client.chat.completions.create(model=QWEN, messages=messages, stream=True)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    assert wait_until(lambda: emu.disconnects == 1)
    request = emu.last_request
    assert request is not None and request.disconnected
    assert request.chunks_sent < 100


# --------------------------------------------------------------------------- images, text


def test_images_are_decoded(emu: LocalSiliconCloud, client: openai.OpenAI) -> None:
    rgba = io.BytesIO()
    Image.new("RGBA", (50, 70), (255, 165, 0, 255)).save(rgba, "PNG")
    parts: Any = [
        image_part(data_uri(image_bytes((255, 0, 0), (224, 448))), "high"),
        image_part(data_uri(image_bytes((0, 0, 255), (1024, 1024), "JPEG"), "jpeg")),
        image_part(data_uri(rgba.getvalue()), "low"),
        image_part(data_uri(image_bytes("white", (10, 10), "GIF"), "gif"), "auto"),
    ]
    client.chat.completions.create(model=QWEN, messages=[user(*parts)])
    request = emu.last_request
    assert request is not None
    images = request.images
    assert [(i.index, i.message_index) for i in images] == [(1, 0), (2, 0), (3, 0), (4, 0)]
    assert [(i.width, i.height, i.format) for i in images] == [
        (224, 448, "PNG"),
        (1024, 1024, "JPEG"),
        (50, 70, "PNG"),
        (10, 10, "GIF"),
    ]
    assert [i.mode for i in images][:3] == ["RGB", "RGB", "RGBA"]
    assert images[0].dominant_color == "#ff0000"
    assert [i.color_name for i in images] == ["red", "blue", "orange", "white"]
    assert [i.detail for i in images] == ["high", None, "low", "auto"]
    assert [i.tokens for i in images] == [128, 1369, 256, 256]
    for image in images:
        assert image.tokens == estimate_image_tokens(
            image.width,
            image.height,
            model=QWEN,
            detail=cast(Any, image.detail or "high"),
            image_count=4,
        )
    assert images[0].url == "data:image/png;base64," and images[1].url == "data:image/jpeg;base64,"
    assert images[0].byte_size == len(image_bytes((255, 0, 0), (224, 448)))


def test_deepseek_vl2_image_count_rule_and_prompt_tokens(
    emu: LocalSiliconCloud, client: openai.OpenAI
) -> None:
    parts: Any = [image_part(RED, "high") for _ in range(3)] + [text("three ü")]
    reply = client.chat.completions.create(
        model="deepseek-ai/deepseek-vl2",
        messages=[{"role": "system", "content": "Be brief."}, user(*parts)],
    )
    assert emu.last_request is not None
    images = emu.last_request.images
    assert [i.tokens for i in images] == [421, 421, 421]  # > 2 images: one tile each
    text_tokens = (4 + math.ceil(len(b"Be brief.") / 4)) + (
        4 + math.ceil(len("three ü".encode()) / 4)
    )
    assert reply.usage is not None and reply.usage.prompt_tokens == text_tokens + 3 * 421


def test_default_reply_lists_images_and_text_in_wire_order(client: openai.OpenAI) -> None:
    blue = data_uri(image_bytes((0, 0, 255), (20, 10)))
    messages: Any = [
        {"role": "system", "content": "system text is not listed"},
        user(text("first"), image_part(RED, "low"), text("line\nbreak")),
        {"role": "assistant", "content": "ok"},
        user(image_part(blue), text("x" * 300)),
    ]
    content = (
        client.chat.completions.create(model=QWEN, messages=messages).choices[0].message.content
    )
    assert content is not None
    assert content.split("\n") == [
        "I see 2 images.",
        'Text: "first"',
        "Image 1: 64x32 PNG, detail low, dominant colour #ff0000 (red).",
        'Text: "line break"',
        "Image 2: 20x10 PNG, detail none, dominant colour #0000ff (blue).",
        f'Text: "{"x" * 200}"',
    ]


def test_json_object_reply(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=QWEN,
        messages=[user(image_part(RED, "high"), text("as json"))],
        response_format={"type": "json_object"},
    )
    data = json.loads(reply.choices[0].message.content or "")
    assert data == {
        "images": [
            {
                "index": 1,
                "width": 64,
                "height": 32,
                "format": "PNG",
                "dominant_color": "#ff0000",
                "color_name": "red",
                "detail": "high",
            }
        ],
        "text": ["as json"],
    }


def test_max_tokens_cuts_with_finish_length(client: openai.OpenAI) -> None:
    messages: Any = [user(text("hi"))]
    reply = client.chat.completions.create(model=QWEN, messages=messages, max_tokens=3)
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "I see 0"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    chunks = list(
        client.chat.completions.create(model=THINKING, messages=messages, max_tokens=2, stream=True)
    )
    assert chunks[-1].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2
    assert all(not c.choices[0].delta.content for c in chunks)  # reasoning took the budget


def test_request_log_redacts_key_and_payloads(
    emu: LocalSiliconCloud, client: openai.OpenAI
) -> None:
    payload = image_bytes("red", (300, 300))
    client.chat.completions.create(model=QWEN, messages=[user(image_part(data_uri(payload)))])
    request = emu.last_request
    assert request is not None
    assert request.headers["authorization"] == "Bearer ***"
    assert request.headers["Authorization"] == "Bearer ***" and "AUTHORIZATION" in request.headers
    assert request.headers.get("Content-Type") == "application/json"
    url = request.body["messages"][0]["content"][0]["image_url"]["url"]
    assert url == f"data:image/png;base64,<{len(payload)} bytes>"
    dumped = repr(emu.requests) + repr(emu) + str(emu.requests)
    assert emu.api_key not in dumped and "sk-" not in repr(emu)
    assert base64.b64encode(payload).decode()[:40] not in dumped


# --------------------------------------------------------------------------- embeddings


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_float_and_base64(emu: LocalSiliconCloud, client: openai.OpenAI) -> None:
    texts = ["a red cat on a mat", "a red cat sits on the mat", "quarterly tax law revenue"]
    default = client.embeddings.create(model=EMBED, input=texts)  # SDK asks for base64
    floats = client.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    assert emu.requests[0].body["encoding_format"] == "base64"
    assert [len(d.embedding) for d in default.data] == [1024] * 3
    assert [d.index for d in floats.data] == [0, 1, 2]
    for a, b in zip(default.data, floats.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding)
        assert math.isclose(cosine(b.embedding, b.embedding), 1.0, rel_tol=1e-5)
    v = [d.embedding for d in floats.data]
    assert cosine(v[0], v[1]) > 0.5 > abs(cosine(v[0], v[2])) + 0.3
    assert floats.usage.prompt_tokens == sum(math.ceil(len(t) / 4) for t in texts)
    single = client.embeddings.create(model=EMBED, input=texts[0], encoding_format="float")
    assert single.data[0].embedding == floats.data[0].embedding  # deterministic


def test_embeddings_raw_base64_is_little_endian_float32(raw: httpx2.Client) -> None:
    body = raw.post(
        "/embeddings", json={"model": EMBED, "input": "hello", "encoding_format": "base64"}
    ).json()
    assert body["object"] == "list" and body["model"] == EMBED
    assert body["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    blob = base64.b64decode(body["data"][0]["embedding"])
    values = struct.unpack("<1024f", blob)
    assert math.isclose(sum(x * x for x in values), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "nope/embed", "input": "x"}, 20012),
        ({"model": QWEN, "input": "x"}, 20015),
        ({"model": EMBED, "input": []}, 20015),
        ({"model": EMBED, "input": [1, 2]}, 20015),
        ({"model": EMBED, "input": "x", "encoding_format": "int8"}, 20015),
    ],
)
def test_embeddings_validation(raw: httpx2.Client, body: dict[str, Any], code: int) -> None:
    response = raw.post("/embeddings", json=body)
    assert response.status_code == 400 and response.json()["code"] == code


# --------------------------------------------------------------------------- lifecycle


def test_concurrent_requests(emu: LocalSiliconCloud, client: openai.OpenAI) -> None:
    def one(i: int) -> str:
        color = ("red", "green", "blue", "yellow")[i % 4]
        messages: Any = [user(image_part(data_uri(image_bytes(color))), text(str(i)))]
        if i % 2:
            parts = client.chat.completions.create(model=QWEN, messages=messages, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in parts)
        return (
            client.chat.completions.create(model=QWEN, messages=messages).choices[0].message.content
            or ""
        )

    with ThreadPoolExecutor(max_workers=64) as pool:
        answers = list(pool.map(one, range(64)))
    for i, answer in enumerate(answers):
        assert f"({('red', 'green', 'blue', 'yellow')[i % 4]})" in answer
        assert answer.endswith(f'Text: "{i}"')
    assert len(emu.requests) == 64 and {r.status for r in emu.requests} == {200}


def test_stop_releases_port_and_threads() -> None:
    baseline = threading.active_count()
    emu = LocalSiliconCloud()
    with pytest.raises(RuntimeError):
        _ = emu.base_url
    emu.start()
    port = emu.port
    with openai.OpenAI(api_key=emu.api_key, base_url=emu.base_url, max_retries=0) as client:
        client.models.list()  # leaves a keep-alive connection open on the server
        messages: Any = [user(text("x"))]
        list(client.chat.completions.create(model=QWEN, messages=messages, stream=True))
        assert threading.active_count() > baseline
        emu.stop()
        emu.stop()  # idempotent
    assert threading.active_count() == baseline
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(("127.0.0.1", port))
    probe.close()


async def test_async_context_manager_and_async_client() -> None:
    async with (
        LocalSiliconCloud() as emu,
        openai.AsyncOpenAI(api_key=emu.api_key, base_url=emu.base_url, max_retries=0) as client,
    ):
        emu.script_reply(chunks=["a", "b"])
        stream = await client.chat.completions.create(
            model=QWEN, messages=[{"role": "user", "content": "x"}], stream=True
        )
        text_out = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text_out == "ab"
    assert not emu.running


def test_clear_forgets_log_scripts_and_faults(emu: LocalSiliconCloud, raw: httpx2.Client) -> None:
    emu.script_reply("scripted")
    emu.fail_next(503)
    emu.set_fault_rate(1.0)
    emu.stall = True
    emu.cut_stream_after = 1
    emu.clear()
    assert emu.requests == [] and emu.last_request is None and emu.disconnects == 0
    response = chat(raw)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"].startswith("I see 0 images.")


def test_colour_names() -> None:
    expected = {
        (255, 0, 0): "red",
        (0, 128, 0): "green",
        (0, 255, 0): "green",
        (0, 0, 255): "blue",
        (255, 255, 0): "yellow",
        (0, 255, 255): "cyan",
        (255, 0, 255): "magenta",
        (255, 255, 255): "white",
        (0, 0, 0): "black",
        (128, 128, 128): "gray",
        (255, 165, 0): "orange",
        (128, 0, 128): "purple",
        (139, 69, 19): "brown",
        (255, 192, 203): "pink",
    }
    assert {rgb: colour_name(rgb) for rgb in expected} == expected
