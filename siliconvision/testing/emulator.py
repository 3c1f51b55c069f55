"""A local SiliconCloud: a real HTTP server on 127.0.0.1 that speaks its wire format.

It is the test double of the whole project and the offline default of the demo and
the CLI. It really decodes every image it receives (Pillow) and, unless told
otherwise, answers with what it saw, in wire order, so a test can prove that an
image arrived intact and in the right place::

    from siliconvision.testing import LocalSiliconCloud
    import openai

    with LocalSiliconCloud() as emu:
        client = openai.OpenAI(api_key=emu.api_key, base_url=emu.base_url)
        reply = client.chat.completions.create(
            model="Qwen/Qwen2.5-VL-72B-Instruct",
            messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": data_uri, "detail": "low"}},
                {"type": "text", "text": "What is this?"},
            ]}],
        )
        print(reply.choices[0].message.content)
        # I see 1 image.
        # Image 1: 64x64 PNG, detail low, dominant colour #ff0000 (red).
        # Text: "What is this?"

Endpoints
    ``GET /v1/models`` (``type``/``sub_type`` filters), ``POST /v1/chat/completions``,
    ``POST /v1/embeddings`` (Bearer auth on all of them; a missing or wrong key gets
    401 and the bare JSON string ``"Invalid token"``), ``GET /files/<name>`` (files
    added with :meth:`LocalSiliconCloud.add_file`, no auth). Anything else: 404 with
    the bare JSON string ``"404 page not found"``.

Order of processing of an API request
    read (paced by ``upload_mbit_per_s``) and log -> ``stall`` -> route (404) -> auth
    (401) -> ``latency`` (chat and embeddings only) -> injected fault (``fail_next``
    queue first, then the seeded fault rate) -> validation (400: 20012 unknown model,
    20015 invalid parameter, 20040 malformed image URL) -> rate limits (429, chat
    only) -> scripted reply queue -> responder -> default reply.

Rate limits
    ``rate_limits=RateLimits(rpm=..., tpm=..., window=...)`` makes the emulator enforce
    them per model over a sliding window of ``window`` seconds (60 for per-minute
    limits; tests use shorter ones), as SiliconCloud does per account and model: a
    chat request is refused when the requests accepted in the last ``window`` seconds
    plus itself exceed ``rpm * window / 60``, or when their tokens (prompt plus
    completion, counted at acceptance) plus its prompt tokens exceed ``tpm * window /
    60``. The refusal is SiliconCloud's 429 body, naming the limit: ``{"message":
    "Request was rejected due to rate limiting. ... Details:RPM limit reached.",
    "data": null}`` (or ``TPM``), without rate-limit headers. Refused requests do not
    count. :meth:`LocalSiliconCloud.rate_stats` reports, per model, the most requests
    that arrived and the most tokens accepted within any one window, and the refusals.

Default reply (no script, no responder)
    Line 1 ``I see N image(s).`` ("I see 1 image." / "I see 2 images."), then one line
    per part in wire order: every image of any role
    ``Image k: WxH FORMAT, detail D, dominant colour #rrggbb (name).`` (D is the
    detail sent or ``none``), every text part of user messages
    ``Text: "<first 200 chars, newlines turned into spaces>"``, and video parts
    ``Video k: URL.``. With ``response_format={"type":"json_object"}`` the reply is
    the JSON object ``{"images":[{index,width,height,format,dominant_color,
    color_name,detail}...],"text":[...]}``. Models whose catalog ``reasoning`` is
    ``"always"`` (or ``"optional"`` with ``enable_thinking: true``) also think:
    ``Looking at N image(s) and M text part(s), ...``. When ``reply_chunks`` is
    larger than the default reply's length, filler words are appended on a last line
    so that every delta is non-empty.

Token rules (deterministic, so tests can assert exact numbers)
    - ``prompt_tokens`` = sum over messages of ``4 + ceil(utf8_bytes(text) / 4)``
      (text = the concatenation of its text parts, or of the string content, plus
      the names and arguments of assistant tool calls), plus each image's
      :attr:`SeenImage.tokens` (:func:`siliconvision.tokens.estimate_image_tokens`,
      the model's own image processor rule, with the request's model, the detail as
      sent (omitted -> ``"high"``) and ``image_count`` = images in the request; 0 for
      a model without a sourced rule, whose real count is unknown), plus
      ``ceil(utf8_bytes(json(tools)) / 4)`` when tools are sent. Video parts cost
      nothing. An image whose size the model's processor refuses (an aspect ratio
      over 200:1 on Qwen and GLM) gets 400 ``20015``.
    - A *piece* is one streamed delta: content is split into word-like runs
      (``\\s*\\S+``) or into exactly ``reply_chunks`` even pieces (or a script's
      ``chunks``; scripted content shorter than ``reply_chunks`` characters gets one
      piece per character, never empty deltas); reasoning into word-like runs;
      tool-call arguments into pieces of 16 characters. ``completion_tokens`` =
      reasoning pieces + content pieces + tool-argument pieces (same count when
      not streaming); ``reasoning_tokens`` = reasoning pieces. ``max_tokens`` keeps that many
      pieces (reasoning first, then content, then whole tool calls) and sets
      ``finish_reason="length"``.
    - Embeddings: ``prompt_tokens`` = sum of ``max(1, ceil(utf8_bytes / 4))``.

Embeddings
    Deterministic unit vectors of the catalog's ``embedding_dimensions`` (1024 by
    default) from a signed hashing trick over lower-case words and their character
    trigrams, so texts sharing words are close. ``encoding_format`` ``"float"`` or
    ``"base64"`` (little-endian float32; the openai SDK asks for it by default).
    ``dimensions`` other than the model's own is rejected (20015).

Streaming
    SSE with chunked transfer-encoding (keep-alive works for streams): a role
    chunk, reasoning deltas, content deltas, tool-call deltas (first delta per call
    carries index, id, type, name and ``arguments: ""``), a finish chunk, then
    ``data: [DONE]``. Every chunk carries the cumulative usage. ``cut_stream_after=N``
    sends the first N chunks (the role chunk counts) and then, never sending
    ``[DONE]``, either drops the TCP connection (``cut_mode="abort"``) or ends the
    HTTP body properly (``cut_mode="clean"``). A client that goes away mid-stream is
    counted in :attr:`LocalSiliconCloud.disconnects` and marked on its request.

Upload bandwidth
    ``upload_mbit_per_s`` (``None``, the default: as fast as loopback goes) caps how fast
    request bodies are read, like a client's uplink, so that what an upload costs is
    measured rather than estimated. The body is read in pieces (at most about 10 ms of
    transfer each) and the reader sleeps so that the first ``n`` bytes are not taken before
    ``n * 8 / (upload_mbit_per_s * 1e6)`` seconds after the request head: pacing by
    elapsed time, so a client slower than the cap is not slowed further, and TCP's own
    flow control holds the client back (its send blocks) as a real link would. Request
    heads and responses are not throttled, and there is no per-request round trip (see
    ``latency``). Each request records the cap applied (``upload_mbit_per_s``), the
    time its body took to arrive (``upload_seconds``) and how much of that the throttle
    slept (``upload_paused``). ``stop()`` wakes a throttled reader; a client that
    closes mid-upload is no longer paced (Linux ``POLLRDHUP``), so what it sent is
    drained at once and the request is dropped unlogged, like any body cut short.

Other behaviour
    ``n`` is validated; a non-streamed answer has ``n`` choices (each further choice
    takes the next scripted reply if one is queued, else repeats the first; their
    completion tokens add up), a stream has one. Image parts in ``tool`` messages
    are rejected (20015: the wire allows text only there); images in system or
    assistant messages are accepted and described. A stalled request (``stall``)
    never gets an answer; its handler ends at ``stop()`` or when the client leaves
    (the request is then marked ``disconnected`` but not counted in
    ``disconnects``, which counts streams only). The request log keeps image
    metadata, never image bytes.

Assumptions (tagged [guess] in the facts file) are kept configurable
(:data:`DEFAULT_ERROR_BODIES`): default error bodies for statuses the facts do not
pin (403 the bare ``"Forbidden"``, not the 30001 balance body; 500 a ``50000``
object; 502/504 bare strings). Also guessed: the ``type=text`` listing of every
model, and that an uncatalogued extra model whose id contains ``embed`` or ``bge``
is listed as an embedding model.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import random
import select
import selectors
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ..catalog import CATALOG
from ..ratelimit import RateLimits
from ._chat import (
    WireError,
    build_reply,
    completion_body,
    invalid,
    iter_chunk_payloads,
    parse_chat,
    redact_body,
)
from ._embeddings import embeddings_body
from ._records import Headers, ReceivedRequest, ScriptedReply, SeenImage, check_scripted

__all__ = [
    "LocalSiliconCloud",
    "RateWindowStats",
    "ReceivedRequest",
    "ScriptedReply",
    "SeenImage",
    "rate_limit_body",
]

Responder = Callable[[ReceivedRequest], "ScriptedReply | None"]
CutMode = Literal["abort", "clean"]

_MAX_BODY = 600 * 1024 * 1024
_JSON = "application/json; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/v1/chat/completions"): "chat",
    ("POST", "/v1/embeddings"): "embeddings",
    ("GET", "/v1/models"): "models",
}
_SECRET_HEADERS = frozenset({"x-api-key", "api-key", "cookie", "proxy-authorization"})
_RATE_LIMIT_TEXT = (
    "Request was rejected due to rate limiting. If you want more, please contact "
    "contact@siliconflow.cn. Details:{limit} limit reached."
)
_RATE_LIMIT_MESSAGE = _RATE_LIMIT_TEXT.format(limit="TPM")


_SERVING: set[str] = set()  # base URLs of the emulators running in this process
_SERVING_LOCK = threading.Lock()


def is_local_emulator(base_url: str) -> bool:
    """Whether ``base_url`` is that of a :class:`LocalSiliconCloud` running in this process."""
    with _SERVING_LOCK:
        return base_url.rstrip("/") in _SERVING


def rate_limit_body(limit: str) -> dict[str, Any]:
    """SiliconCloud's 429 body for ``limit`` (``"RPM"``, ``"TPM"``, ``"RPD"``, ...)."""
    return {"message": _RATE_LIMIT_TEXT.format(limit=limit), "data": None}


DEFAULT_ERROR_BODIES: dict[int, Any] = {
    400: {"code": 20015, "message": "The parameter is invalid. Please check again.", "data": None},
    401: "Invalid token",
    403: "Forbidden",
    404: "404 page not found",
    413: {"code": 20043, "message": "Request entity too large.", "data": None},
    429: {"message": _RATE_LIMIT_MESSAGE, "data": None},
    500: {"code": 50000, "message": "Internal server error.", "data": None},
    502: "Bad Gateway",
    503: {
        "code": 50505,
        "message": "Model service overloaded. Please try again later.",
        "data": None,
    },
    504: "Gateway Timeout",
}


def default_error_body(status: int) -> Any:
    """SiliconCloud's body for an error ``status`` (see the facts file's table)."""
    if status in DEFAULT_ERROR_BODIES:
        return DEFAULT_ERROR_BODIES[status]
    phrase = BaseHTTPRequestHandler.responses.get(status, ("Error", ""))[0]
    return phrase


@dataclass(frozen=True)
class RateWindowStats:
    """What the emulator's rate limits saw for one model (see "Rate limits").

    ``peak_requests``: the most chat requests that *arrived* (accepted or refused)
    within any one window; ``peak_tokens``: the most tokens *accepted* within any one
    window; ``request_cap``/``token_cap``: what one window allows (``None``: no limit);
    ``accepted_tokens``: the tokens of every accepted request (prompt and completion).

    >>> stats = emu.rate_stats()["Qwen/Qwen2.5-VL-72B-Instruct"]  # doctest: +SKIP
    >>> stats.peak_requests <= stats.request_cap and stats.refused == 0  # doctest: +SKIP
    True
    """

    model: str
    window: float
    request_cap: float | None
    token_cap: float | None
    arrived: int
    accepted: int
    refused_rpm: int
    refused_tpm: int
    peak_requests: int
    peak_tokens: int
    accepted_tokens: int = 0

    @property
    def refused(self) -> int:
        return self.refused_rpm + self.refused_tpm


class _Window:
    """One model's sliding window: accepted requests as [time, tokens], all arrivals."""

    def __init__(self) -> None:
        self.accepted: deque[list[float]] = deque()
        self.tokens = 0.0
        self.arrivals: deque[float] = deque()
        self.counts = {
            "arrived": 0,
            "accepted": 0,
            "refused_rpm": 0,
            "refused_tpm": 0,
            "accepted_tokens": 0,
        }
        self.peak_requests = 0
        self.peak_tokens = 0.0

    def expire(self, now: float, window: float) -> None:
        while self.accepted and self.accepted[0][0] <= now - window:
            self.tokens -= self.accepted.popleft()[1]
        while self.arrivals and self.arrivals[0] <= now - window:
            self.arrivals.popleft()


class _ClientGone(Exception):
    """The client closed the connection while we were reading its request."""


class _BodyError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def check_upload_rate(value: object) -> float | None:
    """``upload_mbit_per_s`` validated: ``None`` or a finite number > 0 (as a float)."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"upload_mbit_per_s must be None or a finite number > 0, got {value!r}")
    return float(value)


def upload_floor_seconds(nbytes: int, mbit_per_s: float) -> float:
    """The least time ``nbytes`` take to arrive at ``mbit_per_s`` (megabits: 10**6 bits)."""
    return nbytes * 8 / (mbit_per_s * 1e6)


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


_PACE_TICK = 0.01  # seconds of transfer per piece read
_PACE_PIECE_MIN = 256
_PACE_PIECE_MAX = 256 * 1024


class _UploadPacer:
    """Reads a request body no faster than ``mbit_per_s`` (the ``upload_mbit_per_s`` knob).

    Paced by elapsed time: once ``n`` bytes are in, the reader sleeps until
    ``start + n / bytes_per_s`` (``start``: the first read), so the body as a whole takes
    at least :func:`upload_floor_seconds` and a client slower than that is not slowed
    further. ``wait(seconds)`` sleeps (it may raise to abandon the request) and returns
    ``True`` to stop pacing: the rest is then read as fast as it comes. ``clock`` and
    ``wait`` are parameters so that the arithmetic can be tested without sleeping.
    """

    def __init__(
        self,
        mbit_per_s: float,
        *,
        wait: Callable[[float], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bytes_per_s = mbit_per_s * 1e6 / 8
        self.piece = int(min(_PACE_PIECE_MAX, max(_PACE_PIECE_MIN, self.bytes_per_s * _PACE_TICK)))
        self.received = 0
        self.paused = 0.0  # seconds slept so far
        self.paced = True
        self._wait = wait
        self._clock = clock
        self._start: float | None = None

    def read(self, stream: _Readable, size: int) -> bytes:
        """``size`` bytes from ``stream`` (fewer only if it ends first), paced."""
        if not self.paced:
            return stream.read(size)
        if self._start is None:
            self._start = self._clock()
        parts: list[bytes] = []
        left = size
        while left > 0:
            data = stream.read(min(self.piece, left) if self.paced else left)
            if not data:
                break
            parts.append(data)
            left -= len(data)
            self.received += len(data)
            if not self.paced:
                continue
            delay = self._start + self.received / self.bytes_per_s - self._clock()
            if delay > 0:
                self.paused += delay
                if self._wait(delay):
                    self.paced = False
        return b"".join(parts)


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that tracks its connections so that it can end them."""

    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: LocalSiliconCloud) -> None:
        self.emulator = emulator
        self.stop_event = threading.Event()
        self._track_lock = threading.Lock()
        self._conn_threads: set[threading.Thread] = set()
        self._conns: set[socket.socket] = set()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's getfqdn(): a reverse DNS lookup per start.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def serve(self, wake: socket.socket) -> None:
        """Accept connections until ``wake`` becomes readable (see ``stop()``)."""
        self.socket.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not self.stop_event.is_set():
                for key, _ in selector.select():
                    if key.fileobj is wake:
                        return
                    self._accept_one()

    def _accept_one(self) -> None:
        try:
            conn, addr = self.socket.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError:  # EMFILE/ENFILE...: back off instead of spinning
            self.stop_event.wait(0.01)
            return
        conn.setblocking(True)
        try:
            self.process_request(conn, addr)
        except Exception:  # pragma: no cover - thread start failure
            self.shutdown_request(conn)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._run_connection,
            args=(request, client_address),
            name=f"siliconcloud-emulator-conn-{self.server_port}",
            daemon=True,
        )
        with self._track_lock:
            if self.stop_event.is_set():
                self.shutdown_request(request)
                return
            self._conn_threads.add(thread)
            self._conns.add(request)
        thread.start()

    def _run_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._track_lock:
                self._conns.discard(request)
                self._conn_threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)) or self.stop_event.is_set():
            return
        super().handle_error(request, client_address)  # pragma: no cover - a bug

    def end_connections(self, timeout: float) -> None:
        """Wake every handler (sockets shut down) and join their threads."""
        with self._track_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        while True:
            with self._track_lock:
                threads = [t for t in self._conn_threads if t is not threading.current_thread()]
            if not threads:  # (stop() may be called from a handler, e.g. a responder)
                return
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:  # pragma: no cover - a handler refused to end
                return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "siliconcloud-emulator"
    sys_version = ""
    server: _Server
    _pacer: _UploadPacer | None = None

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """No per-request logging to stderr."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    # ------------------------------------------------------------------ plumbing

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise _BodyError(400, DEFAULT_ERROR_BODIES[400]) from None
        if n < 0:
            raise _BodyError(400, DEFAULT_ERROR_BODIES[400])
        if n > _MAX_BODY:
            raise _BodyError(413, DEFAULT_ERROR_BODIES[413])
        data = self._read_exact(n)
        if len(data) < n:
            raise _ClientGone
        return data

    def _read_exact(self, n: int) -> bytes:
        pacer = self._pacer
        return self.rfile.read(n) if pacer is None else pacer.read(self.rfile, n)

    def _pace_wait(self, seconds: float) -> bool:
        """The upload pacer's sleep: ``True`` once the client has closed its side (no
        point pacing what is already sent); ``stop()`` abandons the request."""
        stop = self.server.stop_event
        deadline = time.monotonic() + seconds
        while True:
            if self._peer_closed():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if stop.wait(min(left, 0.05)):
                raise _ClientGone

    def _peer_closed(self) -> bool:
        """Whether the client shut its sending side (Linux ``POLLRDHUP``; else ``False``)."""
        rdhup = getattr(select, "POLLRDHUP", 0)
        if not rdhup or not hasattr(select, "poll"):  # pragma: no cover - not Linux
            return False
        poller = select.poll()
        poller.register(self.connection, rdhup | select.POLLHUP | select.POLLERR)
        try:
            return bool(poller.poll(0))
        except OSError:  # pragma: no cover - the socket is already gone
            return True

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise _ClientGone
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BodyError(400, DEFAULT_ERROR_BODIES[400]) from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > _MAX_BODY:
                raise _BodyError(413, DEFAULT_ERROR_BODIES[413])
            data = self._read_exact(size + 2)
            if len(data) < size + 2:
                raise _ClientGone
            chunks.append(data[:size])

    def _head(self, status: int, headers: Sequence[tuple[str, str]]) -> bytes:
        phrase = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {phrase}"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines.append(f"x-siliconcloud-trace-id: {uuid.uuid4().hex}")
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            return True
        except OSError:
            self.close_connection = True
            return False

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        head = self._head(
            status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
        )
        self._write(head + payload)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _client_gone(self) -> bool:
        flags = getattr(socket, "MSG_DONTWAIT", 0)
        if not flags:  # pragma: no cover - Windows: rely on write errors
            return False
        try:
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK | flags)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        return peeked == b""

    def _answer(self, rec: ReceivedRequest | None, status: int, body: Any) -> None:
        if isinstance(body, (bytes, bytearray)):
            payload, ctype = bytes(body), _TEXT
        else:
            payload, ctype = json.dumps(body, ensure_ascii=False).encode("utf-8"), _JSON
        if rec is not None:
            rec.status = status
            if status >= 400 and isinstance(body, Mapping):
                code = body.get("code")
                rec.error_code = code if isinstance(code, int) else None
        self._send(status, payload, ctype)

    def _log_headers(self) -> Headers:
        out = Headers()
        for key, value in self.headers.items():
            k = key.lower()
            if k == "authorization":
                value = "Bearer ***"
            elif k in _SECRET_HEADERS:
                value = "***"
            out[k] = f"{out[k]}, {value}" if k in out else value
        return out

    def _authorised(self, api_key: str) -> bool:
        value = self.headers.get("Authorization") or ""
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode("utf-8"), api_key.encode("utf-8"))

    # ------------------------------------------------------------------ routing

    def _dispatch(self) -> None:
        emu = self.server.emulator
        path, _, query = self.path.partition("?")
        rate = emu.upload_mbit_per_s
        pacer = self._pacer = None if rate is None else _UploadPacer(rate, wait=self._pace_wait)
        started = time.monotonic()
        try:
            raw = self._read_body()
        except _ClientGone:
            self.close_connection = True
            return
        except _BodyError as exc:
            self.close_connection = True
            self._answer(None, exc.status, exc.body)
            return
        if self.command == "GET" and path.startswith("/files/"):
            self._serve_file(emu, path, query)
            return
        rec = ReceivedRequest(
            method=self.command,
            path=path,
            query=query,
            headers=self._log_headers(),
            body=None,
            model=None,
            stream=False,
            received_at=time.monotonic(),
            body_size=len(raw),
            upload_mbit_per_s=rate,
            upload_paused=pacer.paused if pacer is not None else 0.0,
        )
        rec.upload_seconds = rec.received_at - started
        parsed: Any = None
        malformed = False
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                malformed = True
            else:
                rec.body = redact_body(parsed)
                if isinstance(parsed, dict):
                    model = parsed.get("model")
                    rec.model = model if isinstance(model, str) else None
                    rec.stream = parsed.get("stream") is True
        emu._record(rec)
        try:
            self._route(emu, rec, parsed, malformed)
        finally:
            rec.finished_at = time.monotonic()

    def _route(
        self, emu: LocalSiliconCloud, rec: ReceivedRequest, parsed: Any, malformed: bool
    ) -> None:
        stop = self.server.stop_event
        if emu.stall:
            self._stall(rec)
            return
        endpoint = _ROUTES.get((self.command, rec.path))
        if endpoint is None:
            self._answer(rec, 404, DEFAULT_ERROR_BODIES[404])
            return
        if not self._authorised(emu.api_key):
            self._answer(rec, 401, DEFAULT_ERROR_BODIES[401])
            return
        if endpoint != "models":
            latency = float(emu.latency)
            rec.latency = latency
            if latency > 0 and stop.wait(latency):
                self._drop()
                return
        fault = emu._take_fault()
        if fault is not None:
            status, body = fault
            self._answer(rec, status, default_error_body(status) if body is None else body)
            return
        if endpoint == "models":
            params = parse_qs(rec.query)
            ids = emu._model_ids(
                (params.get("type") or [""])[0], (params.get("sub_type") or [""])[0]
            )
            data = [{"id": m, "object": "model", "created": 0, "owned_by": ""} for m in ids]
            self._answer(rec, 200, {"object": "list", "data": data})
            return
        if malformed:
            self._answer(rec, 400, invalid("malformed JSON body").body)
            return
        if endpoint == "embeddings":
            try:
                answer = embeddings_body(parsed, model_allowed=emu._embedding_model_allowed)
            except WireError as exc:
                self._answer(rec, exc.status, exc.body)
                return
            self._answer(rec, 200, answer)
            return
        self._chat(emu, rec, parsed)

    def _stall(self, rec: ReceivedRequest) -> None:
        stop = self.server.stop_event
        while not stop.wait(0.05):
            if self._client_gone():
                rec.disconnected = True
                break
        self._drop()

    def _serve_file(self, emu: LocalSiliconCloud, path: str, query: str) -> None:
        name = unquote(path[len("/files/") :])
        found = emu._file(name)
        rec = ReceivedRequest(
            method="GET",
            path=path,
            query=query,
            headers=self._log_headers(),
            body=None,
            model=None,
            stream=False,
            received_at=time.monotonic(),
        )
        if found is None:
            self._answer(rec, 404, DEFAULT_ERROR_BODIES[404])
        else:
            data, ctype = found
            rec.status = 200
            self._send(200, data, ctype)
        rec.finished_at = time.monotonic()
        emu._record_file(rec)

    # ------------------------------------------------------------------ chat

    def _chat(self, emu: LocalSiliconCloud, rec: ReceivedRequest, parsed: Any) -> None:
        try:
            req = parse_chat(
                parsed, model_allowed=emu._chat_model_allowed, resolve_url=emu._resolve_url
            )
        except WireError as exc:
            self._answer(rec, exc.status, exc.body)
            return
        rec.images = req.images
        admitted = emu._admit(req.model, req.prompt_tokens)
        if isinstance(admitted, dict):
            self._answer(rec, 429, admitted)
            return
        try:
            script = emu._next_script()
            if script is None:
                responder = emu._responder
                script = responder(rec) if responder is not None else None
                if script is not None:
                    if isinstance(script, str):
                        script = ScriptedReply(content=script)
                    check_scripted(script)
            plan = build_reply(req, script, reply_chunks=emu.reply_chunks)
        except Exception as exc:
            message = f"emulator responder failed: {type(exc).__name__}: {exc}"
            self._answer(rec, 500, {"code": 50000, "message": message, "data": None})
            return
        if admitted is not None:
            emu._count_completion(req.model, admitted, plan.completion_tokens)
        chat_id = uuid.uuid4().hex
        created = int(time.time())
        rec.reply_content = plan.content_text
        if not req.stream:
            # n > 1: every further choice takes the next scripted reply, else repeats.
            n = parsed.get("n") if isinstance(parsed.get("n"), int) else 1
            more = [
                build_reply(req, emu._next_script() or script, reply_chunks=emu.reply_chunks)
                for _ in range(n - 1)
            ]
            body = completion_body(
                plan, chat_id=chat_id, created=created, model=req.model, more=more
            )
            self._answer(rec, 200, body)
            return
        chunked = self.request_version != "HTTP/1.0"
        if not chunked:
            self.close_connection = True
        headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
        ]
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        rec.status = 200
        delay = float(emu.chunk_delay)
        cut = emu.cut_stream_after
        rec.chunk_delay = delay
        stop = self.server.stop_event
        if not self._write(self._head(200, headers)):
            self._disconnected(emu, rec)
            return
        payloads = iter_chunk_payloads(plan, chat_id=chat_id, created=created, model=req.model)
        for sent, payload in enumerate(payloads):
            if cut is not None and sent >= cut:
                break
            if sent:
                if delay > 0:
                    if stop.wait(delay):
                        self._drop()
                        return
                    gone = self._client_gone()
                else:
                    gone = sent % 32 == 0 and self._client_gone()
                if gone:
                    self._disconnected(emu, rec)
                    return
            frame = b"%x\r\n%b\r\n" % (len(payload), payload) if chunked else payload
            if not self._write(frame):
                self._disconnected(emu, rec)
                return
            rec.chunks_sent = sent + 1
        if cut is not None:
            if emu.cut_mode == "clean" and chunked:
                if not self._write(b"0\r\n\r\n"):
                    self._disconnected(emu, rec)
            else:
                self._drop()
            return
        done = b"data: [DONE]\n\n"
        if chunked:
            done = b"%x\r\n%b\r\n0\r\n\r\n" % (len(done), done)
        if not self._write(done):
            self._disconnected(emu, rec)

    def _disconnected(self, emu: LocalSiliconCloud, rec: ReceivedRequest) -> None:
        self._drop()
        rec.disconnected = True
        emu._count_disconnect()


class LocalSiliconCloud:
    """A local SiliconCloud on 127.0.0.1: real HTTP, real wire format, real image decoding.

    Example:
        >>> with LocalSiliconCloud() as emu:  # doctest: +SKIP
        ...     client = openai.OpenAI(api_key=emu.api_key, base_url=emu.base_url)
        ...     emu.script_reply("Hello!")
        ...     client.chat.completions.create(model="Qwen/Qwen2.5-VL-72B-Instruct",
        ...         messages=[{"role": "user", "content": "Hi"}]).choices[0].message.content
        'Hello!'

    Behaviour knobs are plain attributes, safe to change between requests:
    ``latency``, ``chunk_delay``, ``reply_chunks``, ``upload_mbit_per_s`` (validated on
    assignment), ``cut_stream_after``, ``cut_mode``, ``stall``, ``extra_models`` (a set)
    and ``log_limit`` (the log keeps about the
    last ``log_limit`` requests, 100,000 by default; ``None`` keeps all). See the
    module documentation for the rules it follows.
    """

    def __init__(
        self,
        *,
        api_key: str = "sk-local-emulator",
        host: str = "127.0.0.1",
        port: int = 0,
        extra_models: Iterable[str] = (),
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        reply_chunks: int | None = None,
        upload_mbit_per_s: float | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty string")
        if isinstance(extra_models, str):
            raise TypeError("extra_models must be an iterable of model ids, not a str")
        if latency < 0 or chunk_delay < 0:
            raise ValueError("latency and chunk_delay must be >= 0")
        if reply_chunks is not None and reply_chunks < 1:
            raise ValueError("reply_chunks must be None or >= 1")
        self.api_key = api_key
        self.host = host
        self._requested_port = int(port)
        self.extra_models: set[str] = set(extra_models)
        self.latency = float(latency)
        self.chunk_delay = float(chunk_delay)
        self.reply_chunks = reply_chunks
        self.upload_mbit_per_s = upload_mbit_per_s
        self.cut_stream_after: int | None = None
        self.cut_mode: CutMode = "abort"
        self.stall = False
        self.log_limit: int | None = 100_000
        self._lock = threading.Lock()
        self._log: list[ReceivedRequest] = []
        self._file_log: list[ReceivedRequest] = []
        self._scripts: deque[ScriptedReply] = deque()
        self._responder: Responder | None = None
        self._faults: deque[tuple[int, Any]] = deque()
        self._fault_rate = 0.0
        self._fault_statuses: tuple[int, ...] = (429, 503)
        self._fault_rng = random.Random(0)
        self._urls: dict[str, tuple[bytes, str | None]] = {}
        self._files: dict[str, tuple[bytes, str]] = {}
        self._disconnects = 0
        self.rate_limits = rate_limits
        self._windows: dict[str, _Window] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalSiliconCloud:
        """Bind and serve in a daemon thread (returns at once). Idempotent."""
        with self._lock:
            if self._server is not None:
                return self
            server = _Server((self.host, self._requested_port), self)
            wake_r, wake_w = socket.socketpair()
            thread = threading.Thread(
                target=server.serve,
                args=(wake_r,),
                name=f"siliconcloud-emulator-{server.server_port}",
                daemon=True,
            )
            self._server, self._thread, self._wake = server, thread, (wake_r, wake_w)
        thread.start()
        with _SERVING_LOCK:
            _SERVING.add(self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving: close the port, end every connection, join every thread."""
        with self._lock:
            server, thread, wake = self._server, self._thread, self._wake
            self._server = self._thread = self._wake = None
        if server is None:
            return
        with _SERVING_LOCK:
            _SERVING.discard(self._url_of(server))
        server.stop_event.set()
        if wake is not None:
            with contextlib.suppress(OSError):
                wake[1].send(b"x")
        if thread is not None:
            thread.join(5.0)
        server.server_close()
        server.end_connections(timeout=5.0)
        if wake is not None:
            wake[0].close()
            wake[1].close()

    @property
    def upload_mbit_per_s(self) -> float | None:
        """How fast request bodies are read, in Mbit/s (``None``: unthrottled).

        Emulates the client's uplink (see "Upload bandwidth" in the module doc); a
        finite number > 0, applied from the next request on.
        """
        return self._upload_mbit_per_s

    @upload_mbit_per_s.setter
    def upload_mbit_per_s(self, value: float | None) -> None:
        self._upload_mbit_per_s = check_upload_rate(value)

    @property
    def rate_limits(self) -> RateLimits | None:
        """The limits enforced per model (``None``: none); see "Rate limits". Only the
        limits and the window are read: the object's own state is not touched."""
        return self._rate_limits

    @rate_limits.setter
    def rate_limits(self, value: RateLimits | None) -> None:
        if value is not None and not isinstance(value, RateLimits):
            raise TypeError(f"rate_limits must be a RateLimits or None, got {value!r}")
        self._rate_limits = value

    def rate_stats(self) -> dict[str, RateWindowStats]:
        """Per model: peaks within one window and refusals since start (or ``clear()``)."""
        limits = self._rate_limits
        window = limits.window if limits is not None else 60.0
        with self._lock:
            return {
                model: RateWindowStats(
                    model=model,
                    window=window,
                    request_cap=_cap(limits.rpm, window) if limits is not None else None,
                    token_cap=_cap(limits.tpm, window) if limits is not None else None,
                    peak_requests=w.peak_requests,
                    peak_tokens=round(w.peak_tokens),
                    **w.counts,
                )
                for model, w in self._windows.items()
            }

    @property
    def running(self) -> bool:
        """Whether the server is started."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port once started, else the requested one (0 = any free port)."""
        server = self._server
        return server.server_port if server is not None else self._requested_port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``; valid after :meth:`start`."""
        return f"{self._origin()}/v1"

    def _origin(self) -> str:
        server = self._server
        if server is None:
            raise RuntimeError("LocalSiliconCloud is not started: call start() first")
        return self._url_of(server, "")

    def _url_of(self, server: _Server, path: str = "/v1") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{server.server_port}{path}"

    def __enter__(self) -> LocalSiliconCloud:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalSiliconCloud:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self.running else "not started"
        return f"LocalSiliconCloud({where}, requests={len(self._log)})"

    # ------------------------------------------------------------------ scripting

    def script_reply(
        self,
        content: str | None = None,
        *,
        reasoning: str | None = None,
        tool_calls: Sequence[Mapping[str, Any]] | None = None,
        finish_reason: str | None = None,
        chunks: Sequence[str] | None = None,
    ) -> None:
        """Queue a reply (FIFO) for the next valid chat request.

        ``tool_calls`` items: ``{"name": ..., "arguments": dict or JSON str, "id":
        optional}``. ``chunks`` fixes the content deltas exactly.
        """
        reply = ScriptedReply(
            content=content,
            reasoning=reasoning,
            tool_calls=[dict(t) for t in tool_calls] if tool_calls is not None else None,
            finish_reason=finish_reason,
            chunks=list(chunks) if chunks is not None else None,
        )
        check_scripted(reply)
        with self._lock:
            self._scripts.append(reply)

    def set_responder(self, fn: Responder | None) -> None:
        """Call ``fn(request)`` for each chat request once the script queue is empty.

        It returns a :class:`ScriptedReply`, or ``None`` for the default reply. If it
        raises, the client gets HTTP 500 naming the exception.
        """
        self._responder = fn

    def fail_next(self, status: int, body: Any = None, *, count: int = 1) -> None:
        """Answer the next ``count`` API requests with ``status``.

        ``body=None`` uses SiliconCloud's real body for that status; a dict is sent as
        a JSON object, a str as a bare JSON string, bytes raw.
        """
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {status!r}")
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._faults.extend([(status, body)] * count)

    def set_fault_rate(
        self, rate: float, *, statuses: Sequence[int] = (429, 503), seed: int = 0
    ) -> None:
        """Fail a random share ``rate`` of API requests (seeded: reproducible in order)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be in [0, 1]")
        if not statuses:
            raise ValueError("statuses must not be empty")
        with self._lock:
            self._fault_rate = float(rate)
            self._fault_statuses = tuple(int(s) for s in statuses)
            self._fault_rng = random.Random(seed)

    def serve_url(self, url: str, data: bytes, content_type: str | None = None) -> str:
        """Let requests carrying image URL ``url`` see ``data`` (no network). Returns url."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise ValueError(f"serve_url needs an http(s) URL, got {url!r}")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("data must be bytes")
        with self._lock:
            self._urls[url] = (bytes(data), content_type)
        return url

    def add_file(self, name: str, data: bytes, content_type: str | None = None) -> str:
        """Serve ``data`` at ``GET /files/<name>`` (no auth); returns that loopback URL.

        The URL is also registered like :meth:`serve_url`.
        """
        if not name or name.startswith("/") or ".." in name.split("/") or "?" in name:
            raise ValueError(f"bad file name {name!r}")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("data must be bytes")
        url = f"{self._origin()}/files/{quote(name)}"
        ctype = content_type or _sniff_content_type(bytes(data))
        with self._lock:
            self._files[name] = (bytes(data), ctype)
            self._urls[url] = (bytes(data), ctype)
        return url

    # ------------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot copy of the log of API requests (``/files`` fetches excluded)."""
        with self._lock:
            return list(self._log)

    @property
    def file_requests(self) -> list[ReceivedRequest]:
        """A snapshot copy of the log of ``GET /files/...`` fetches."""
        with self._lock:
            return list(self._file_log)

    @property
    def last_request(self) -> ReceivedRequest | None:
        """The most recent API request, or ``None``."""
        with self._lock:
            return self._log[-1] if self._log else None

    @property
    def disconnects(self) -> int:
        """Client disconnects seen while streaming."""
        return self._disconnects

    def clear(self) -> None:
        """Forget the log, scripts, responder and faults (fail_next, fault rate, stream cut,
        stall); keep latency, chunk_delay, reply_chunks, upload_mbit_per_s, registered URLs
        and files."""
        with self._lock:
            self._log.clear()
            self._file_log.clear()
            self._scripts.clear()
            self._faults.clear()
            self._fault_rate = 0.0
            self._disconnects = 0
            self._windows.clear()
            self._responder = None
            self.cut_stream_after = None
            self.stall = False

    # ------------------------------------------------------------------ handler side

    def _record(self, rec: ReceivedRequest) -> None:
        with self._lock:
            self._log.append(rec)
            self._trim(self._log)

    def _record_file(self, rec: ReceivedRequest) -> None:
        with self._lock:
            self._file_log.append(rec)
            self._trim(self._file_log)

    def _trim(self, log: list[ReceivedRequest]) -> None:
        limit = self.log_limit
        if limit is not None and len(log) > limit + max(1, limit // 10):
            del log[: len(log) - limit]

    def _count_disconnect(self) -> None:
        with self._lock:
            self._disconnects += 1

    def _next_script(self) -> ScriptedReply | None:
        with self._lock:
            return self._scripts.popleft() if self._scripts else None

    def _take_fault(self) -> tuple[int, Any] | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            if self._fault_rate > 0.0 and self._fault_rng.random() < self._fault_rate:
                return self._fault_rng.choice(self._fault_statuses), None
        return None

    def _admit(self, model: str, prompt_tokens: int) -> list[float] | dict[str, Any] | None:
        """Count a chat request against the rate limits: its window entry when accepted
        (``None`` when no limits are set), else the 429 body."""
        limits = self._rate_limits
        if limits is None:
            return None
        window = limits.window
        with self._lock:
            now = time.monotonic()
            w = self._windows.setdefault(model, _Window())
            w.expire(now, window)
            w.arrivals.append(now)
            w.counts["arrived"] += 1
            w.peak_requests = max(w.peak_requests, len(w.arrivals))
            request_cap, token_cap = _cap(limits.rpm, window), _cap(limits.tpm, window)
            if request_cap is not None and len(w.accepted) + 1 > request_cap + 1e-9:
                w.counts["refused_rpm"] += 1
                return rate_limit_body("RPM")
            if token_cap is not None and w.tokens + prompt_tokens > token_cap + 1e-9:
                w.counts["refused_tpm"] += 1
                return rate_limit_body("TPM")
            entry = [now, float(prompt_tokens)]
            w.accepted.append(entry)
            w.tokens += prompt_tokens
            w.counts["accepted"] += 1
            w.counts["accepted_tokens"] += prompt_tokens
            w.peak_tokens = max(w.peak_tokens, w.tokens)
            return entry

    def _count_completion(self, model: str, entry: list[float], completion_tokens: int) -> None:
        with self._lock:
            w = self._windows.get(model)
            if w is None:  # cleared meanwhile
                return
            entry[1] += completion_tokens
            w.counts["accepted_tokens"] += completion_tokens
            if w.accepted and entry[0] >= w.accepted[0][0]:  # still in the window
                w.tokens += completion_tokens
                w.peak_tokens = max(w.peak_tokens, w.tokens)

    def _file(self, name: str) -> tuple[bytes, str] | None:
        with self._lock:
            return self._files.get(name)

    def _resolve_url(self, url: str) -> bytes | None:
        with self._lock:
            found = self._urls.get(url)
        if found is not None:
            return found[0]
        parts = urlsplit(url)
        if (
            parts.hostname in ("127.0.0.1", "localhost", "::1", self.host)
            and parts.port == self.port
            and parts.path.startswith("/files/")
        ):
            file = self._file(unquote(parts.path[len("/files/") :]))
            return file[0] if file is not None else None
        return None

    def _chat_model_allowed(self, model: str) -> bool:
        spec = CATALOG.get(model)
        return spec.kind == "chat" if spec is not None else model in self.extra_models

    def _embedding_model_allowed(self, model: str) -> bool:
        spec = CATALOG.get(model)
        return spec.kind == "embedding" if spec is not None else model in self.extra_models

    def _model_ids(self, type_: str, sub_type: str) -> list[str]:
        entries: list[tuple[str, str]] = [(m, spec.kind) for m, spec in list(CATALOG.items())]
        for model in sorted(self.extra_models):
            if model not in CATALOG:
                low = model.lower()
                kind = "embedding" if "embed" in low or "bge" in low else "chat"
                entries.append((model, kind))
        if type_ and type_ != "text":
            return []
        if sub_type in ("chat", "embedding"):
            return [m for m, kind in entries if kind == sub_type]
        return [m for m, _ in entries] if not sub_type else []


def _cap(per_minute: float | None, window: float) -> float | None:
    return None if per_minute is None else per_minute * window / 60.0


def _sniff_content_type(data: bytes) -> str:
    signatures = (
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"BM", "image/bmp"),
    )
    for magic, ctype in signatures:
        if data.startswith(magic):
            return ctype
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"
