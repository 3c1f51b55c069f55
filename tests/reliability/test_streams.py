"""Broken streams, silent servers and cancelled streams, through both adapters.

- A stream cut after N chunks (the TCP connection dropped, or the HTTP body ended
  cleanly without the final chunk) raises ``IncompleteStreamError`` carrying the partial
  text, through every streaming entry point; it never passes for a complete answer,
  including when every content piece arrived and only the final chunk is missing.
- A server that stops answering triggers the configured time-out (before the answer,
  and in the middle of a stream), after the configured retries.
- Cancelling an async stream closes its HTTP connection (the emulator sees the client
  go) and leaves no task or socket behind.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk
from llama_index.core.llms import ChatMessage

from langchain_siliconvision import ChatSiliconVision
from llama_index_siliconvision import SiliconVision
from siliconvision import SiliconVisionClient
from siliconvision.errors import IncompleteStreamError
from siliconvision.testing import LocalSiliconCloud

from .conftest import QWEN, Figures

PIECES = ["Once", " upon", " a", " time", " a", " stream", " was", " cut", "."]
TOTAL_CHUNKS = 1 + len(PIECES) + 1  # role chunk, content chunks, finish chunk
# Cut after the role chunk only, mid-answer, and after every content piece (only the
# final chunk, with finish_reason, is missing: the text looks complete but is not).
CUTS = [1, 4, len(PIECES) + 1]
HANG_GUARD = 30.0  # seconds: only a guard against a hang, never an assertion on speed


def _lc(emu: LocalSiliconCloud, **kwargs: Any) -> ChatSiliconVision:
    kwargs.setdefault("max_retries", 0)
    return ChatSiliconVision(model=QWEN, api_key=emu.api_key, base_url=emu.base_url, **kwargs)


def _li(emu: LocalSiliconCloud, **kwargs: Any) -> SiliconVision:
    kwargs.setdefault("max_retries", 0)
    return SiliconVision(model=QWEN, api_key=emu.api_key, base_url=emu.base_url, **kwargs)


def _question() -> list[ChatMessage]:
    return [ChatMessage(role="user", content="Tell me a story.")]


class ErrorSeen(BaseCallbackHandler):
    """Records LangChain's end/error callbacks (an error must not look like an end)."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.ends = 0

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.errors.append(error)

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.ends += 1


# --------------------------------------------------------------------------- cut streams


async def _consume(entry: str, model: Any, received: list[str]) -> None:
    """Stream through one adapter entry point, appending each text delta to ``received``."""
    if entry.startswith("langchain"):
        handler = ErrorSeen()
        config: Any = {"callbacks": [handler]}
        try:
            if entry == "langchain.stream":
                for chunk in model.stream("Tell me a story.", config=config):
                    received.append(chunk.text)
            elif entry == "langchain.astream":
                async for chunk in model.astream("Tell me a story.", config=config):
                    received.append(chunk.text)
            elif entry == "langchain.invoke":  # streaming=True: invoke streams underneath
                received.append(model.invoke("Tell me a story.", config=config).text)
            else:
                received.append((await model.ainvoke("Tell me a story.", config=config)).text)
        finally:
            # The error reached LangChain's callbacks as an error, never as an end.
            assert handler.ends == 0 and len(handler.errors) == 1
    elif entry == "llama_index.stream_chat":
        for response in model.stream_chat(_question()):
            received.append(response.delta or "")
    elif entry == "llama_index.astream_chat":
        async for response in await model.astream_chat(_question()):
            received.append(response.delta or "")
    elif entry == "llama_index.stream_complete":
        for completion in model.stream_complete("Tell me a story."):
            received.append(completion.delta or "")
    else:
        async for completion in await model.astream_complete("Tell me a story."):
            received.append(completion.delta or "")


ENTRIES = [
    "langchain.stream",
    "langchain.astream",
    "langchain.invoke",
    "langchain.ainvoke",
    "llama_index.stream_chat",
    "llama_index.astream_chat",
    "llama_index.stream_complete",
    "llama_index.astream_complete",
]


@pytest.mark.parametrize("mode", ["abort", "clean"])
@pytest.mark.parametrize("entry", ENTRIES)
async def test_a_cut_stream_raises_with_the_partial_text(
    emu: LocalSiliconCloud, figures: Figures, entry: str, mode: str
) -> None:
    if entry.startswith("langchain"):
        # (streaming=False set explicitly would make LangChain's stream() not stream)
        model: Any = _lc(emu, **({"streaming": True} if entry.endswith("invoke") else {}))
    else:
        model = _li(emu)
    outcomes = []
    for cut in CUTS:
        emu.clear()
        emu.script_reply(chunks=PIECES)
        emu.cut_stream_after = cut
        emu.cut_mode = mode  # type: ignore[assignment]
        received: list[str] = []
        with pytest.raises(IncompleteStreamError) as info:
            await asyncio.wait_for(_consume(entry, model, received), HANG_GUARD)
        expected = "".join(PIECES[: cut - 1])
        assert info.value.partial_text == expected
        if entry.endswith("invoke"):
            assert received == []  # no partial AIMessage passed off as the answer
        else:
            assert "".join(received) == expected  # what was shown is exactly the partial text
        assert "stream" in str(info.value) and "final chunk" in str(info.value)
        (request,) = emu.requests
        assert request.chunks_sent == cut < TOTAL_CHUNKS
        outcomes.append(len(expected))
    figures.record(cuts=CUTS, partial_chars=outcomes, silently_truncated=0)


@pytest.mark.parametrize("mode", ["abort", "clean"])
def test_the_incomplete_error_explains_itself(emu: LocalSiliconCloud, mode: str) -> None:
    emu.script_reply(chunks=PIECES)
    emu.cut_stream_after = 3
    emu.cut_mode = mode  # type: ignore[assignment]
    with pytest.raises(IncompleteStreamError) as info:
        list(_lc(emu).stream("Tell me a story."))
    message = str(info.value)
    assert message.startswith("SiliconCloud stream ")
    assert "after 3 chunk(s) and 9 characters" in message
    assert "the answer is incomplete (partial text on .partial_text)" in message
    assert info.value.partial_text == "Once upon"


# --------------------------------------------------------------------------- silent server


def _in_thread(fn: Callable[[], Any]) -> BaseException | None:
    """Run ``fn`` in a thread under the hang guard; return what it raised."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD)
    assert not thread.is_alive(), f"still waiting after {HANG_GUARD} s: no time-out applied"
    return outcome[0]


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


TIMEOUT = 0.25


def _stalled_call(adapter: str, stream: bool, emu: LocalSiliconCloud) -> Callable[[], Any]:
    if adapter == "langchain":
        llm = _lc(emu, timeout=TIMEOUT, max_retries=1, retry_initial_delay=0.001)
        return (lambda: list(llm.stream("hi"))) if stream else (lambda: llm.invoke("hi"))
    li = _li(emu, timeout=TIMEOUT, max_retries=1, retry_initial_delay=0.001)
    if stream:
        return lambda: list(li.stream_chat(_question()))
    return lambda: li.chat(_question())


@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
@pytest.mark.parametrize("adapter", ["langchain", "llama_index"])
def test_a_server_that_stops_answering_hits_the_configured_timeout(
    emu: LocalSiliconCloud, figures: Figures, adapter: str, stream: bool
) -> None:
    emu.stall = True
    started = time.monotonic()
    error = _in_thread(_stalled_call(adapter, stream, emu))
    elapsed = time.monotonic() - started
    assert isinstance(error, openai.APITimeoutError), repr(error)
    # The configured retries (1), then the error: two requests, both left unanswered,
    # and the client hung up on both (the emulator sees them go).
    assert len(emu.requests) == 2 and all(r.status == 0 for r in emu.requests)
    _wait_for(lambda: all(r.disconnected for r in emu.requests), "the client hung up")
    figures.record(timeout_s=TIMEOUT, attempts=2, elapsed_s=round(elapsed, 3))


@pytest.mark.parametrize("adapter", ["langchain", "llama_index"])
def test_a_stream_that_goes_silent_midway_times_out_as_incomplete(
    emu: LocalSiliconCloud, figures: Figures, adapter: str
) -> None:
    emu.script_reply(chunks=PIECES)
    emu.chunk_delay = 30.0  # after the first chunk, the server goes quiet (until stopped)
    received: list[str] = []

    def run() -> None:
        if adapter == "langchain":
            for chunk in _lc(emu, timeout=TIMEOUT).stream("hi"):
                received.append(chunk.text)
        else:
            for response in _li(emu, timeout=TIMEOUT).stream_chat(_question()):
                received.append(response.delta or "")

    started = time.monotonic()
    error = _in_thread(run)
    elapsed = time.monotonic() - started
    assert isinstance(error, IncompleteStreamError), repr(error)
    assert isinstance(error.__cause__, Exception) and "Timeout" in type(error.__cause__).__name__
    assert error.partial_text == "" and "".join(received) == ""
    assert emu.requests[0].chunks_sent == 1  # the role chunk came, then silence
    figures.record(timeout_s=TIMEOUT, elapsed_s=round(elapsed, 3), partial_chars=0)


# --------------------------------------------------------------------------- cancellation


def _open_client_sockets(port: int) -> int:
    """Sockets of this process connected to the emulator's port and not closed."""
    count = 0
    for obj in gc.get_objects():
        if isinstance(obj, socket.socket) and obj.fileno() != -1:
            try:
                peer = obj.getpeername()
            except OSError:
                continue
            if isinstance(peer, tuple) and peer[1] == port:
                count += 1
    return count


async def _lc_chunks(emu: LocalSiliconCloud) -> AsyncIterator[str]:
    async for chunk in _lc(emu).astream("Tell me a long story."):
        assert isinstance(chunk, AIMessageChunk)
        yield chunk.text


async def _li_chunks(emu: LocalSiliconCloud) -> AsyncIterator[str]:
    async for response in await _li(emu).astream_chat(_question()):
        yield response.delta or ""


@pytest.mark.parametrize("how", ["cancel", "aclose"])
@pytest.mark.parametrize("adapter", ["langchain", "llama_index"])
async def test_cancelling_an_async_stream_closes_the_connection(
    emu: LocalSiliconCloud, figures: Figures, adapter: str, how: str
) -> None:
    with warnings.catch_warnings():  # earlier tests' garbage is not this test's business
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    emu.reply_chunks = 400
    emu.chunk_delay = 0.01  # a long answer: about 4 s if nobody stopped it
    before = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    got: list[str] = []
    three = asyncio.Event()
    source = _lc_chunks(emu) if adapter == "langchain" else _li_chunks(emu)

    async def consume() -> None:
        async for text in source:
            got.append(text)
            if len(got) == 3:
                three.set()

    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(three.wait(), HANG_GUARD)
    if how == "cancel":
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:  # the consumer stops and closes the stream it was reading
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await source.aclose()
    deadline = time.monotonic() + HANG_GUARD
    while emu.disconnects < 1:
        assert time.monotonic() < deadline, "the emulator never saw the client go"
        await asyncio.sleep(0.01)
    (request,) = emu.requests
    assert request.disconnected and request.chunks_sent < 400
    # No task left behind, no socket to the emulator left open, no unclosed-resource warning.
    await asyncio.sleep(0)
    leftover = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} - before
    assert leftover == set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert _open_client_sockets(emu.port) == 0
    figures.record(
        chunks_received=len(got),
        chunks_sent_by_server=request.chunks_sent,
        disconnects_seen=emu.disconnects,
        tasks_leaked=len(leftover),
        sockets_left_open=0,
    )


# --------------------------------------------------------------------------- loop lifetime


@pytest.mark.parametrize("adapter", ["langchain", "llama_index", "core"])
def test_connections_do_not_outlive_their_event_loop(
    emu: LocalSiliconCloud, figures: Figures, adapter: str
) -> None:
    """``asyncio.run`` twice with one model: each loop's pooled connections are closed
    when that loop ends, not left for the garbage collector to tear down later from
    another loop ("Task exception was never retrieved ... Event loop is closed")."""
    if adapter == "langchain":
        lc = _lc(emu)

        async def ask() -> Any:
            return await lc.ainvoke("hi")
    elif adapter == "llama_index":
        li = _li(emu)

        async def ask() -> Any:
            return await li.achat(_question())
    else:
        core = SiliconVisionClient(api_key=emu.api_key, base_url=emu.base_url, max_retries=0)

        async def ask() -> Any:
            return await core.achat([{"role": "user", "content": "hi"}])

    for _ in range(2):
        asyncio.run(ask())
        assert _open_client_sockets(emu.port) == 0  # closed with the loop, right away
    errors: list[str] = []

    async def later() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: errors.append(str(context)))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gc.collect()
            await asyncio.sleep(0.05)
        errors.extend(str(w.message) for w in caught if issubclass(w.category, ResourceWarning))

    asyncio.run(later())
    assert errors == []
    figures.record(loops=2, sockets_left_open=0, errors_at_collection=0)


async def test_a_dropped_model_does_not_break_its_running_stream(emu: LocalSiliconCloud) -> None:
    """Only the stream references the model's client: collecting the model mid-stream
    must not close the connection under the stream."""
    emu.reply_chunks = 20
    emu.chunk_delay = 0.005
    deltas = []
    async for response in await _li(emu).astream_chat(_question()):  # a temporary model
        deltas.append(response.delta or "")
        if len(deltas) == 2:
            gc.collect()  # the model object is garbage by now
    assert len(deltas) == 22 and emu.requests[0].chunks_sent == 22
