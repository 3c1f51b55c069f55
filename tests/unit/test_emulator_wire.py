"""Emulator details: pure wire helpers, and the less common request shapes over HTTP."""

from __future__ import annotations

import base64
import http.client
import io
import json
import math
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from PIL import Image

from siliconvision.testing import LocalSiliconCloud, ScriptedReply
from siliconvision.testing._chat import (
    ChatRequest,
    TextPart,
    build_reply,
    redact_body,
    split_pieces,
)
from siliconvision.testing._embeddings import embed_text
from siliconvision.testing._imaging import decode_image
from siliconvision.testing.emulator import _UploadPacer, upload_floor_seconds

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"


def png(color: Any = "red", size: tuple[int, int] = (16, 16), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture
def emu() -> Iterator[LocalSiliconCloud]:
    with LocalSiliconCloud() as server:
        yield server


@pytest.fixture
def raw(emu: LocalSiliconCloud) -> Iterator[httpx2.Client]:
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    with httpx2.Client(base_url=emu.base_url, headers=headers, timeout=10) as c:
        yield c


def request(text: str = "hi", max_tokens: int | None = None) -> ChatRequest:
    from siliconvision.catalog import get_model_spec

    return ChatRequest(
        model=QWEN,
        spec=get_model_spec(QWEN),
        stream=False,
        parts=[TextPart(0, text)],
        images=[],
        prompt_tokens=7,
        max_tokens=max_tokens,
        json_mode=False,
        thinking=False,
    )


# --------------------------------------------------------------------------- pure helpers


def test_split_pieces() -> None:
    assert split_pieces("Hello big  world\n") == ["Hello", " big", "  world", "\n"]
    assert split_pieces("") == []
    assert split_pieces("abcdefg", 3) == ["abc", "de", "fg"]
    assert "".join(split_pieces("x" * 1001, 7)) == "x" * 1001


def test_redact_body_elides_every_base64_payload() -> None:
    payload = base64.b64encode(b"\x00" * 300).decode()
    body = {
        "messages": [
            {"content": [{"image_url": {"url": f"data:image/png;base64,{payload}"}}]},
            {"content": [{"video_url": {"url": f"data:video/mp4;base64,{payload}"}}]},
        ],
        "other": "data:text is kept",
    }
    out = redact_body(body)
    assert out["messages"][0]["content"][0]["image_url"]["url"] == (
        "data:image/png;base64,<300 bytes>"
    )
    assert out["messages"][1]["content"][0]["video_url"]["url"] == (
        "data:video/mp4;base64,<300 bytes>"
    )
    assert out["other"] == "data:text is kept"
    assert body["messages"][0]["content"][0]["image_url"]["url"].endswith(payload)  # type: ignore[index]


def test_build_reply_max_tokens_drops_whole_tool_calls() -> None:
    script = ScriptedReply(
        content="one two",
        tool_calls=[{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": "{}"}],
    )
    full = build_reply(request(), script, reply_chunks=None)
    assert full.finish_reason == "tool_calls" and full.completion_tokens == 2 + 1 + 1
    cut = build_reply(request(max_tokens=3), script, reply_chunks=None)
    assert [t.spec.name for t in cut.tool_calls] == ["f"]
    assert cut.finish_reason == "length" and cut.completion_tokens == 3


def test_scripted_reply_chunks_never_produce_empty_deltas() -> None:
    plan = build_reply(request(), ScriptedReply(content="abc"), reply_chunks=10)
    assert plan.content == ["a", "b", "c"]
    plan = build_reply(request(), ScriptedReply(tool_calls=[{"name": "f"}]), reply_chunks=10)
    assert plan.content == [] and plan.content_text is None


def test_embeddings_are_deterministic_unit_vectors() -> None:
    v = embed_text("Hello world", 64)
    assert v == embed_text("hello WORLD", 64) and len(v) == 64
    assert abs(sum(x * x for x in v) - 1.0) < 1e-5
    empty = embed_text("", 64)
    assert abs(sum(x * x for x in empty) - 1.0) < 1e-5


def test_decode_image_transparency_and_palette() -> None:
    buf = io.BytesIO()
    img = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    img.paste((0, 0, 255, 255), (0, 0, 5, 5))  # small opaque blue square on transparency
    img.save(buf, "PNG")
    info = decode_image(buf.getvalue())
    assert (info.mode, info.color_name, info.dominant_color) == ("RGBA", "blue", "#0000ff")
    pal = decode_image(png("green", mode="P"))
    assert (pal.mode, pal.color_name) == ("P", "green")
    gray = decode_image(png(128, mode="L"))
    assert (gray.mode, gray.color_name, gray.dominant_color) == ("L", "gray", "#808080")


# --------------------------------------------------------------------------- over HTTP


def test_video_parts_and_images_in_assistant_messages(raw: httpx2.Client) -> None:
    messages = [
        {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": uri(png())}}]},
        {
            "role": "user",
            "content": [
                {"type": "video_url", "video_url": {"url": "https://v.example/clip.mp4"}},
                {"type": "text", "text": "what happens?"},
            ],
        },
    ]
    body = raw.post(
        "/chat/completions", json={"model": "Qwen/Qwen3-VL-8B-Instruct", "messages": messages}
    ).json()
    assert body["choices"][0]["message"]["content"].split("\n") == [
        "I see 1 image.",
        "Image 1: 16x16 PNG, detail none, dominant colour #ff0000 (red).",
        "Video 1: https://v.example/clip.mp4.",
        'Text: "what happens?"',
    ]


def test_base64_only_model_rejects_urls(emu: LocalSiliconCloud, raw: httpx2.Client) -> None:
    url = emu.serve_url("https://example.com/x.png", png())
    part = {"type": "image_url", "image_url": {"url": url}}
    response = raw.post(
        "/chat/completions",
        json={"model": "TeleAI/TeleMM", "messages": [{"role": "user", "content": [part]}]},
    )
    assert response.status_code == 400 and response.json()["code"] == 20015


def test_chunked_request_body_and_http10_stream(emu: LocalSiliconCloud) -> None:
    payload = json.dumps({"model": QWEN, "messages": [{"role": "user", "content": "x"}]}).encode()
    headers = {"Authorization": f"Bearer {emu.api_key}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        chunks = iter([payload[:10], payload[10:]])
        conn.request(
            "POST", "/v1/chat/completions", body=chunks, headers=headers, encode_chunked=True
        )
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["choices"][0]["message"]["content"].startswith("I see")
    finally:
        conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"  # type: ignore[attr-defined]
    try:
        streamed = json.dumps(
            {"model": QWEN, "messages": [{"role": "user", "content": "x"}], "stream": True}
        )
        conn.request("POST", "/v1/chat/completions", body=streamed, headers=headers)
        response = conn.getresponse()
        data = response.read()
        assert response.status == 200 and data.endswith(b"data: [DONE]\n\n")
    finally:
        conn.close()


def test_requests_is_a_snapshot_and_log_limit(emu: LocalSiliconCloud, raw: httpx2.Client) -> None:
    emu.log_limit = 5
    for _ in range(12):
        assert raw.get("/models").status_code == 200
    snapshot = emu.requests
    assert 5 <= len(snapshot) <= 6
    snapshot.clear()
    assert emu.requests


def test_embedding_dimensions_must_match(raw: httpx2.Client) -> None:
    ok = raw.post("/embeddings", json={"model": "BAAI/bge-m3", "input": "x", "dimensions": 1024})
    bad = raw.post("/embeddings", json={"model": "BAAI/bge-m3", "input": "x", "dimensions": 256})
    assert ok.status_code == 200 and bad.json()["code"] == 20015


def test_constructor_validation_and_restart() -> None:
    with pytest.raises(TypeError):
        LocalSiliconCloud(extra_models="acme/x")
    with pytest.raises(ValueError):
        LocalSiliconCloud(reply_chunks=0)
    emu = LocalSiliconCloud(api_key="sk-secret-123")
    assert "sk-secret-123" not in repr(emu) and "not started" in repr(emu)
    with pytest.raises(RuntimeError):
        emu.add_file("a.png", png())
    for _ in range(2):
        with emu, httpx2.Client() as c:
            response = c.get(
                f"{emu.base_url}/models", headers={"Authorization": "Bearer sk-secret-123"}
            )
            assert response.status_code == 200
    assert not emu.running


# --------------------------------------------------------------------------- upload throttle


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.01)
    return predicate()


def noise_png(size: tuple[int, int] = (256, 256)) -> bytes:
    rnd = random.Random(7)
    img = Image.frombytes(
        "RGB", size, bytes(rnd.getrandbits(8) for _ in range(size[0] * size[1] * 3))
    )
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("bad", [0, -1, 0.0, math.nan, math.inf, True, "100"])
def test_upload_rate_is_validated(bad: Any) -> None:
    with pytest.raises(ValueError, match="upload_mbit_per_s"):
        LocalSiliconCloud(upload_mbit_per_s=bad)
    emu = LocalSiliconCloud(upload_mbit_per_s=100)
    assert emu.upload_mbit_per_s == 100.0 and isinstance(emu.upload_mbit_per_s, float)
    with pytest.raises(ValueError, match="upload_mbit_per_s"):
        emu.upload_mbit_per_s = bad
    assert emu.upload_mbit_per_s == 100.0  # a refused value changes nothing
    emu.clear()
    assert emu.upload_mbit_per_s == 100.0  # a knob, kept like latency
    emu.upload_mbit_per_s = None
    assert emu.upload_mbit_per_s is None and LocalSiliconCloud().upload_mbit_per_s is None


class FakeClock:
    """Time that passes only when the pacer sleeps (or when a read is made slow)."""

    def __init__(self, per_read: float = 0.0) -> None:
        self.now = 100.0
        self.per_read = per_read
        self.sleeps: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        self.now += seconds
        return False

    def stream(self, data: bytes) -> Any:
        clock = self

        class Slow(io.BytesIO):
            def read(self, size: int | None = -1, /) -> bytes:
                clock.now += clock.per_read
                return super().read(size)

        return Slow(data)


def test_upload_pacer_paces_by_elapsed_time() -> None:
    assert upload_floor_seconds(1_000_000, 8) == pytest.approx(1.0)
    assert upload_floor_seconds(12_500_000, 100) == pytest.approx(1.0)
    data = bytes(range(256)) * 4096  # 1 MiB
    clock = FakeClock()
    pacer = _UploadPacer(8, wait=clock.wait, clock=lambda: clock.now)  # 1,000,000 bytes/s
    assert pacer.bytes_per_s == pytest.approx(1e6) and pacer.piece == 10_000  # 10 ms a piece
    stream = clock.stream(data)
    got = pacer.read(stream, 600_000) + pacer.read(stream, len(data) - 600_000)
    assert got == data and pacer.received == len(data)
    assert len(clock.sleeps) == math.ceil(600_000 / 10_000) + math.ceil(448_576 / 10_000)
    # Instant reads: the throttle sleeps exactly the floor, whatever the split.
    assert pacer.paused == pytest.approx(upload_floor_seconds(len(data), 8))
    assert clock.now - 100.0 == pytest.approx(upload_floor_seconds(len(data), 8))


def test_upload_pacer_never_slows_a_slower_client_and_can_let_go() -> None:
    slow = FakeClock(per_read=0.05)  # 10,000-byte pieces at 200 kB/s: slower than the cap
    pacer = _UploadPacer(8, wait=slow.wait, clock=lambda: slow.now)
    assert pacer.read(slow.stream(b"x" * 100_000), 100_000) == b"x" * 100_000
    assert slow.sleeps == [] and pacer.paused == 0.0
    # wait() returning True (the client closed its side) stops pacing: the rest at once.
    calls: list[float] = []

    def let_go(seconds: float) -> bool:
        calls.append(seconds)
        return True

    clock = FakeClock()
    pacer = _UploadPacer(8, wait=let_go, clock=lambda: clock.now)
    assert pacer.read(io.BytesIO(b"y" * 50_000), 50_000) == b"y" * 50_000
    assert len(calls) == 1 and not pacer.paced
    # A body cut short comes back short (the handler turns that into "client gone").
    pacer = _UploadPacer(8, wait=clock.wait, clock=lambda: clock.now)
    assert pacer.read(io.BytesIO(b"z" * 25_000), 40_000) == b"z" * 25_000
    # Pieces stay between 256 bytes and 256 KiB whatever the rate.
    assert _UploadPacer(0.001, wait=clock.wait).piece == 256
    assert _UploadPacer(100_000, wait=clock.wait).piece == 256 * 1024


def test_throttled_uploads_arrive_intact() -> None:
    picture = noise_png()
    body = {
        "model": QWEN,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": uri(picture), "detail": "high"}},
                    {"type": "text", "text": "what?"},
                ],
            }
        ],
    }
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    with LocalSiliconCloud(upload_mbit_per_s=400) as emu:
        headers["Authorization"] = f"Bearer {emu.api_key}"
        with httpx2.Client(base_url=emu.base_url, headers=headers, timeout=10) as c:
            plain = c.post("/chat/completions", content=payload)
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
        try:  # chunked transfer-encoding, in uneven chunks
            pieces = iter([payload[:1000], payload[1000:70_001], payload[70_001:]])
            conn.request(
                "POST", "/v1/chat/completions", body=pieces, headers=headers, encode_chunked=True
            )
            chunked = conn.getresponse()
            chunked_body = chunked.read()
        finally:
            conn.close()
        emu.upload_mbit_per_s = None
        with httpx2.Client(base_url=emu.base_url, headers=headers, timeout=10) as c:
            free = c.post("/chat/completions", content=payload)
        first, second, third = emu.requests
    expected = "Image 1: 256x256 PNG, detail high"
    assert plain.status_code == 200 and expected in plain.json()["choices"][0]["message"]["content"]
    assert (
        chunked.status == 200
        and expected in json.loads(chunked_body)["choices"][0]["message"]["content"]
    )
    assert free.status_code == 200
    for rec in (first, second, third):
        assert rec.body_size == len(payload) and rec.images[0].byte_size == len(picture)
    assert first.upload_mbit_per_s == second.upload_mbit_per_s == 400.0
    assert third.upload_mbit_per_s is None and third.upload_paused == 0.0


def _start_upload(emu: LocalSiliconCloud, sent: int, declared: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", emu.port))
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {emu.api_key}\r\nContent-Length: {declared}\r\n\r\n"
    )
    s.sendall(head.encode() + b"x" * sent)
    return s


def _handlers(port: int) -> int:
    name = f"siliconcloud-emulator-conn-{port}"
    return sum(t.name == name for t in threading.enumerate())


def test_throttled_upload_ends_when_the_client_leaves_or_the_server_stops() -> None:
    # 1,250 bytes/s: reading the 50 kB already sent would take 40 s at the cap.
    emu = LocalSiliconCloud(upload_mbit_per_s=0.01).start()
    port = emu.port
    try:
        s = _start_upload(emu, 50_000, 100_000)
        assert wait_until(lambda: _handlers(port) == 1)
        s.close()  # the client gives up mid-upload: its handler ends without the 40 s
        assert wait_until(lambda: _handlers(port) == 0)
        assert emu.requests == []  # a body cut short is never logged
        s = _start_upload(emu, 50_000, 100_000)
        assert wait_until(lambda: _handlers(port) == 1)
    finally:
        emu.stop()  # wakes the throttled reader
    assert _handlers(port) == 0
    s.close()
