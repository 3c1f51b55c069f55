"""Secrets: a recognisable API key must appear nowhere it could leak from.

Checked: ``repr``/``str`` of every public object holding the key (and of its
attributes), exception messages and formatted tracebacks (also with local variables,
as error reporters capture them, for frames of our own code), log output at DEBUG
(ours, ``openai``, ``httpx``/``httpx2``, ``httpcore``, LangChain, LlamaIndex),
LangChain serialization (``dumpd``/``dumps``), LangSmith params and traced runs,
LangChain callbacks, LlamaIndex ``to_dict``/``to_json``/``to_payload``, pickles,
instrumentation events and spans, and the emulator's request log.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import pickle
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, dumps
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.span.simple import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.llms import ChatMessage
from pydantic import SecretStr

from langchain_siliconvision import (
    ChatSiliconVision,
    SiliconVisionCaptionLoader,
    SiliconVisionEmbeddings,
    SiliconVisionTool,
)
from llama_index_siliconvision import (
    SiliconVision,
    SiliconVisionCaptionReader,
    SiliconVisionEmbedding,
    SiliconVisionToolSpec,
)
from siliconvision import SiliconVisionClient
from siliconvision.errors import IncompleteStreamError
from siliconvision.testing import LocalSiliconCloud

from .conftest import QWEN, Figures, png

SECRET = "sk-RELIABILITY-7f3c9a1e5b2d4f6a8c0e"
LOGGERS = (
    "siliconvision",
    "langchain_siliconvision",
    "llama_index_siliconvision",
    "openai",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "langchain_core",
    "llama_index",
)


@pytest.fixture
def secret_emu() -> Iterator[LocalSiliconCloud]:
    with LocalSiliconCloud(api_key=SECRET) as emulator:
        yield emulator


class Exposure:
    """Everything a check looked at, and where the secret was found (if anywhere)."""

    def __init__(self) -> None:
        self.checked = 0
        self.leaks: list[str] = []

    def check(self, where: str, text: Any) -> None:
        self.checked += 1
        shown = text if isinstance(text, str) else repr(text)
        if SECRET in shown:
            self.leaks.append(where)

    def check_object(self, where: str, obj: Any) -> None:
        """``repr``/``str`` of ``obj``, and the ``repr`` of everything reachable from its
        attributes (what debuggers and error reporters show), through our own objects and
        containers. Not looked into: ``SecretStr`` (masked by design) and the ``openai``
        SDK clients, which must hold the key to send it (their ``repr`` is checked)."""
        self.check(f"repr({where})", repr(obj))
        self.check(f"str({where})", str(obj))
        for path, value in _reachable(obj, where, depth=4, seen=set()):
            self.check(path, repr(value))

    def check_exception(self, where: str, exc: BaseException) -> None:
        self.check(f"str({where})", str(exc))
        self.check(f"repr({where})", repr(exc))
        self.check(f"traceback({where})", "".join(traceback.format_exception(exc)))
        # What error reporters (Sentry...) capture: the locals of each frame. Checked for
        # the frames of our packages (third-party frames are theirs to keep clean).
        own = traceback.TracebackException.from_exception(exc, capture_locals=True)
        for frame in _own_frames(own):
            for name, value in (frame.locals or {}).items():
                self.check(f"{where}: {frame.name}() local {name}", value)


def _ours(obj: Any) -> bool:
    module = type(obj).__module__
    return module.split(".")[0] in (
        "siliconvision",
        "langchain_siliconvision",
        "llama_index_siliconvision",
    )


def _reachable(obj: Any, where: str, depth: int, seen: set[int]) -> Iterator[tuple[str, Any]]:
    if (
        depth == 0
        or id(obj) in seen
        or isinstance(obj, (SecretStr, openai.OpenAI, openai.AsyncOpenAI))
    ):
        return
    seen.add(id(obj))
    children: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        children = [(f"[{k!r}]", v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = [(f"[{i}]", v) for i, v in enumerate(obj)]
    elif _ours(obj) or depth == 4:
        for holder in (getattr(obj, "__dict__", None), getattr(obj, "__pydantic_private__", None)):
            if isinstance(holder, dict):
                children += [(f".{k}", v) for k, v in holder.items()]
    for name, value in children:
        if isinstance(value, (SecretStr, openai.OpenAI, openai.AsyncOpenAI)):
            continue
        yield f"{where}{name}", value
        yield from _reachable(value, f"{where}{name}", depth - 1, seen)


_OURS = ("/siliconvision/", "/langchain_siliconvision/", "/llama_index_siliconvision/")


def _own_frames(exc: traceback.TracebackException) -> Iterator[traceback.FrameSummary]:
    seen: set[int] = set()
    pending: list[traceback.TracebackException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        for frame in current.stack:
            if any(part in frame.filename for part in _OURS):
                yield frame
        pending += [current.__cause__, current.__context__]


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Every record of our loggers and the HTTP stack's, at DEBUG, formatted."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    previous = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        previous[name] = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield buffer
    finally:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(previous[name])


class Recorder(BaseCallbackHandler):
    """Every LangChain callback and its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.calls.append(("on_chat_model_start", serialized, kwargs))

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.calls.append(("on_llm_end", response, kwargs))

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.calls.append(("on_llm_error", error, kwargs))

    def on_tool_start(self, serialized: Any, input_str: str, **kwargs: Any) -> None:
        self.calls.append(("on_tool_start", serialized, kwargs))


class RunCollector(BaseTracer):
    """A tracer keeping each finished run: what LangSmith would be sent."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Run] = []

    def _persist_run(self, run: Run) -> None:
        self.runs.append(run)


class EventCollector(BaseEventHandler):
    events: list[BaseEvent] = []  # noqa: RUF012 - a pydantic field

    @classmethod
    def class_name(cls) -> str:
        return "EventCollector"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


SPAN_LINES: list[str] = []


class SpanCollector(BaseSpanHandler[SimpleSpan]):
    """Records each span's bound arguments, instance, result and error, as text."""

    @classmethod
    def class_name(cls) -> str:
        return "SpanCollector"

    def new_span(
        self,
        id_: str,
        bound_args: Any,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        SPAN_LINES.append(f"{id_} {bound_args!r} {instance!r} {tags!r}")
        return SimpleSpan(id_=id_, parent_id=parent_span_id)

    def prepare_to_exit_span(
        self, id_: str, bound_args: Any, instance: Any = None, result: Any = None, **kwargs: Any
    ) -> Any:
        SPAN_LINES.append(f"exit {id_} {result!r}")
        return None

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: Any,
        instance: Any = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> Any:
        SPAN_LINES.append(f"drop {id_} {err!r}")
        return None


def _raises(call: Any) -> BaseException:
    try:
        call()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


async def _araises(call: Any) -> BaseException:
    try:
        await call()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


async def test_the_api_key_never_leaks(
    secret_emu: LocalSiliconCloud,
    debug_log: io.StringIO,
    tmp_path: Path,
    figures: Figures,
) -> None:
    emu = secret_emu
    seen = Exposure()
    image = tmp_path / "red.png"
    image.write_bytes(png((40, 40), "red"))
    user = [ChatMessage(role="user", content="hello")]

    # ---- objects holding the key
    client = SiliconVisionClient(api_key=SECRET, base_url=emu.base_url, max_retries=1)
    lc = ChatSiliconVision(model=QWEN, api_key=SECRET, base_url=emu.base_url, max_retries=1)
    lc_tool = SiliconVisionTool(llm=lc, allowed_dirs=[tmp_path])
    lc_loader = SiliconVisionCaptionLoader([image], api_key=SECRET, base_url=emu.base_url)
    lc_embed = SiliconVisionEmbeddings(api_key=SECRET, base_url=emu.base_url)
    li = SiliconVision(model=QWEN, api_key=SECRET, base_url=emu.base_url, max_retries=1)
    li_spec = SiliconVisionToolSpec(li, allowed_dirs=[tmp_path])
    li_reader = SiliconVisionCaptionReader(li)
    li_embed = SiliconVisionEmbedding(api_key=SECRET, base_url=emu.base_url)

    recorder, tracer = Recorder(), RunCollector()
    events, spans = EventCollector(events=[]), SpanCollector()
    SPAN_LINES.clear()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(events)
    dispatcher.add_span_handler(spans)
    try:
        # ---- traffic: successes, retries, streams, tools, loaders, embeddings
        config = {"callbacks": [recorder, tracer]}
        emu.fail_next(429)
        lc.invoke("hello", config=config)
        list(lc.stream("hello", config=config))
        await lc.ainvoke("hello", config=config)
        lc_tool.invoke({"image": "red.png", "question": "colour?"}, config=config)
        lc_loader.load()
        lc_embed.embed_query("red")
        client.ask([image], "colour?")
        emu.fail_next(503)
        li.chat(user)
        list(li.stream_chat(user))
        await li.achat(user)
        li_spec.ask_image("red.png", "colour?")
        li_reader.load_data([image])
        li_embed.get_text_embedding("red")
        # async clients exist now: their reprs too
        seen.check_object("client.async_openai", client.async_openai)

        # ---- failures: wrong key (401), exhausted retries, cut stream, bad input, network
        wrong = ChatSiliconVision(model=QWEN, api_key=SECRET + "-x", base_url=emu.base_url)
        failures: dict[str, BaseException] = {
            "401 (LangChain)": _raises(lambda: wrong.invoke("hello", config=config)),
        }
        emu.fail_next(429, count=2)
        failures["429 after retries"] = _raises(lambda: li.chat(user))
        emu.cut_stream_after = 2
        failures["cut stream"] = _raises(lambda: list(lc.stream("hello", config=config)))
        emu.cut_stream_after = None
        failures["bad image"] = _raises(lambda: client.ask([b"not an image"], "?"))
        closed = SiliconVisionClient(
            api_key=SECRET, base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2
        )
        failures["connection refused"] = _raises(lambda: closed.chat(user_dicts()))
        emu.stall = True
        slow = SiliconVision(
            model=QWEN, api_key=SECRET, base_url=emu.base_url, max_retries=0, timeout=0.2
        )
        failures["timeout"] = await _araises(lambda: slow.achat(user))
        emu.stall = False
        assert isinstance(failures["401 (LangChain)"], openai.AuthenticationError)
        assert isinstance(failures["cut stream"], IncompleteStreamError)
        assert isinstance(failures["timeout"], openai.APITimeoutError)
        for where, exc in failures.items():
            seen.check_exception(where, exc)
    finally:
        dispatcher.event_handlers.remove(events)
        dispatcher.span_handlers.remove(spans)

    for where, obj in {
        "SiliconVisionClient": client,
        "client.openai": client.openai,
        "client.api_key": client.api_key,
        "ChatSiliconVision": lc,
        "SiliconVisionTool": lc_tool,
        "SiliconVisionCaptionLoader": lc_loader,
        "SiliconVisionEmbeddings": lc_embed,
        "SiliconVision": li,
        "SiliconVision.client": li.client,
        "SiliconVisionToolSpec": li_spec,
        "SiliconVisionCaptionReader": li_reader,
        "SiliconVisionEmbedding": li_embed,
    }.items():
        seen.check_object(where, obj)

    # ---- LangChain serialization, LangSmith params, callbacks and traced runs
    seen.check("dumpd(ChatSiliconVision)", json.dumps(dumpd(lc)))
    seen.check("dumps(ChatSiliconVision)", dumps(lc, pretty=True))
    seen.check("dumpd(SiliconVisionTool)", json.dumps(dumpd(lc_tool), default=repr))
    seen.check("ChatSiliconVision.model_dump_json", lc.model_dump_json())
    seen.check("_get_ls_params", lc._get_ls_params())
    seen.check("_identifying_params", lc._identifying_params)
    seen.check("_get_invocation_params", lc._get_invocation_params())
    assert recorder.calls and tracer.runs
    for name, payload, extra in recorder.calls:
        seen.check(f"callback {name}", json.dumps([payload, extra], default=repr))
    for run in tracer.runs:
        seen.check(f"traced run {run.name}", run.model_dump_json())

    # ---- pickles: every object of ours that holds the key pickles without it (used,
    # so their clients exist), and comes back; the core client refuses to be pickled.
    for where, obj in {
        "ChatSiliconVision": lc,
        "SiliconVisionTool": lc_tool,
        "SiliconVisionCaptionLoader": lc_loader,
        "SiliconVisionEmbeddings": lc_embed,
        "SiliconVision": li,
        "SiliconVisionToolSpec": li_spec,
        "SiliconVisionCaptionReader": li_reader,
        "SiliconVisionEmbedding": li_embed,
    }.items():
        data = pickle.dumps(obj)
        seen.check(f"pickle({where})", data.decode("latin-1"))
        assert type(pickle.loads(data)) is type(obj)
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(client)

    # ---- LlamaIndex serialization, instrumentation
    for where, obj in {"SiliconVision": li, "SiliconVisionEmbedding": li_embed}.items():
        seen.check(f"{where}.to_dict", obj.to_dict())
        seen.check(f"{where}.to_json", obj.to_json())
        seen.check(f"{where}.model_dump_json", obj.model_dump_json())
    seen.check("SiliconVision.to_payload", li.to_payload())
    seen.check("tool metadata", [t.metadata.to_openai_tool() for t in li_spec.to_tool_list()])
    assert events.events and SPAN_LINES
    for event in events.events:
        seen.check(f"event {event.class_name()}", event.model_dump_json())
        seen.check(f"repr(event {event.class_name()})", repr(event))
    for line in SPAN_LINES:
        seen.check("span", line)

    # ---- logs and the emulator's log
    log_text = debug_log.getvalue()
    assert "HTTP Request: POST" in log_text and "Retrying request" in log_text  # not vacuous
    seen.check("DEBUG log", log_text)
    assert len(emu.requests) > 10
    for request in emu.requests:
        seen.check(f"emulator log {request.path}", repr(request))
        assert request.headers["authorization"] == "Bearer ***"

    assert seen.leaks == [], "the key appears in:\n" + "\n".join(seen.leaks)
    figures.record(
        places_checked=seen.checked,
        leaks=0,
        log_lines=log_text.count("\n"),
        requests_logged=len(emu.requests),
        events=len(events.events),
        langchain_runs=len(tracer.runs),
    )
    await asyncio.sleep(0)


def user_dicts() -> list[dict[str, Any]]:
    return [{"role": "user", "content": "hello"}]
