"""ChatOpenAI users' settings: every one is honoured on the wire (or in behaviour) or
refused by name, none silently dropped.

The list of settings is ChatOpenAI's own (``langchain_openai.ChatOpenAI.model_fields``
of the installed langchain-openai, field names and aliases): a setting ChatOpenAI adds
makes :func:`test_every_chat_openai_setting_is_classified` fail until it is decided
here. Each check reads what the emulator received (JSON body, headers) or what the
framework did with the setting.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import (
    BaseCallbackHandler,
    UsageMetadataCallbackHandler,
    get_usage_metadata_callback,
)
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_openai import ChatOpenAI

from langchain_siliconvision import ChatSiliconVision, SiliconVisionCaptionLoader, image_block
from langchain_siliconvision.chat_models import OPENAI_ALIASES
from langchain_siliconvision.tools import SiliconVisionTool
from siliconvision.errors import IncompleteStreamError
from siliconvision.testing import LocalSiliconCloud
from siliconvision.wire import ParameterError
from tests.imaging import make_image
from tests.langchain.support import EXAMPLE_IMAGES, QWEN, QWEN_7B, emulator_params

SECRET = "sk-settings-secret-0123456789"

Check = Callable[[ChatSiliconVision, LocalSiliconCloud, Any], None]


@dataclass(frozen=True)
class Case:
    """A sample value for a setting and how to see it honoured; ``check=None``: the
    setting is refused with a ``ValueError`` naming it. ``make`` builds a fresh value
    for each test (``value``: a constant)."""

    value: Any = None
    check: Check | None = None
    make: Callable[[], Any] | None = None

    def sample(self) -> Any:
        return self.make() if self.make is not None else self.value


def _body(emu: LocalSiliconCloud) -> dict[str, Any]:
    assert emu.last_request is not None
    body: dict[str, Any] = emu.last_request.body
    return body


def _sent(field: str, expected: Any | None = None) -> Check:
    """``invoke`` sends the field with the value set (or ``expected``)."""

    def check(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
        llm.invoke("hi")
        assert _body(emu)[field] == (value if expected is None else expected)

    return check


def _attribute(name: str) -> Check:
    """A setting of langchain-core's ``BaseChatModel`` (which does what it does): set."""

    def check(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
        assert getattr(llm, name) == value

    return check


def _subset(value: dict[str, Any], actual: dict[str, Any] | None) -> None:
    assert actual is not None and value.items() <= actual.items()


def _check_cache(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    first = llm.invoke("cached?")
    assert llm.invoke("cached?").content == first.content
    assert len(emu.requests) == 1  # the second answer came from the cache


class _Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.ends = 0

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.ends += 1


def _check_callbacks(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.invoke("hi")
    assert value[0].ends == 1


class _CountingLimiter(BaseRateLimiter):
    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        return self.acquire(blocking=blocking)


def _check_rate_limiter(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.invoke("hi")
    assert value.acquired == 1


def _check_disable_streaming(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    chunks = list(llm.stream("hi"))
    assert len(chunks) == 1 and emu.last_request is not None and not emu.last_request.stream


def _check_output_version(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    content = llm.invoke("hi").content
    assert isinstance(content, list) and content[0]["type"] == "text"


def _check_profile(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    assert llm.profile is not None and llm.profile["max_input_tokens"] == 1234


def _check_token_ids(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    assert llm.get_num_tokens("one two three") == 3


def _check_model(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.invoke("hi")
    assert emu.last_request is not None and emu.last_request.model == QWEN_7B
    assert llm.model == llm.model_name == QWEN_7B


def _check_key(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.invoke("hi")
    assert emu.last_request is not None and emu.last_request.status == 200  # authorised


def _check_base(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.invoke("hi")
    assert emu.last_request is not None and emu.last_request.path == "/v1/chat/completions"


def _check_timeout(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.invoke("hi")
    # the SDK tells the server the read time-out it applies
    assert emu.last_request is not None
    assert emu.last_request.headers["x-stainless-read-timeout"] == "10.0"


def _check_stream_usage(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    chunks = list(llm.stream("hi"))
    assert len(chunks) > 2 and all(c.usage_metadata is None for c in chunks)


def _check_retries(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    emu.fail_next(503, count=2)  # None is the SDK's default: 2 retries
    assert llm.invoke("hi").content
    assert [r.status for r in emu.requests] == [503, 503, 200]


def _check_streaming(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.invoke("hi")
    assert emu.last_request is not None and emu.last_request.stream


def _check_n(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    result = llm.generate([[HumanMessage("hi")]])
    assert _body(emu)["n"] == 2 and len(result.generations[0]) == 2


def _check_headers(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.invoke("hi")
    assert emu.last_request is not None and emu.last_request.headers["x-team"] == "vision"


def _hooked_client(sync: bool) -> Any:
    seen: list[str] = []
    if sync:
        client: Any = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
    else:

        async def hook(request: httpx.Request) -> None:
            seen.append(request.url.path)

        client = httpx.AsyncClient(event_hooks={"request": [hook]})
    client.seen = seen
    return client


def _check_http_client(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.invoke("hi")
    assert value.seen == ["/v1/chat/completions"]


def _check_http_async_client(llm: ChatSiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    async def run() -> None:
        await llm.ainvoke("hi")
        await value.aclose()

    asyncio.run(run())
    assert value.seen == ["/v1/chat/completions"]


#: Every ChatOpenAI field (langchain-openai's ``model_fields``), by field name.
CHAT_OPENAI: dict[str, Case] = {
    # langchain-core's BaseChatModel settings, inherited
    "name": Case("vision", _attribute("name")),
    "cache": Case(check=_check_cache, make=InMemoryCache),
    "verbose": Case(True, _attribute("verbose")),
    "callbacks": Case(check=_check_callbacks, make=lambda: [_Recorder()]),
    "tags": Case(["a"], _attribute("tags")),
    "metadata": Case({"k": "v"}, lambda llm, emu, value: _subset(value, llm.metadata)),
    "custom_get_token_ids": Case(
        check=_check_token_ids, make=lambda: lambda text: [1] * len(text.split())
    ),
    "rate_limiter": Case(check=_check_rate_limiter, make=_CountingLimiter),
    "disable_streaming": Case(True, _check_disable_streaming),
    "output_version": Case("v1", _check_output_version),
    "profile": Case({"max_input_tokens": 1234}, _check_profile),
    # ChatOpenAI's own
    "client": Case(make=object),
    "async_client": Case(make=object),
    "root_client": Case(make=object),
    "root_async_client": Case(make=object),
    "model_name": Case(QWEN_7B, _check_model),
    "temperature": Case(0.3, _sent("temperature")),
    "model_kwargs": Case({"min_p": 0.1}, _sent("min_p", 0.1)),
    "openai_api_key": Case(check=_check_key, make=lambda: SHARED_KEY[0]),
    "openai_api_base": Case(check=_check_base, make=lambda: SHARED_BASE[0]),
    "openai_organization": Case("org-1"),
    "openai_proxy": Case("http://127.0.0.1:9"),
    "request_timeout": Case((3, 10), _check_timeout),
    "stream_usage": Case(False, _check_stream_usage),
    "max_retries": Case(None, _check_retries),
    "presence_penalty": Case(0.5),
    "frequency_penalty": Case(0.5, _sent("frequency_penalty")),
    "seed": Case(7),
    "logprobs": Case(True),
    "top_logprobs": Case(3),
    "logit_bias": Case({1: 2}),
    "streaming": Case(True, _check_streaming),
    "n": Case(2, _check_n),
    "top_p": Case(0.5, _sent("top_p")),
    "max_tokens": Case(33, _sent("max_tokens")),
    "reasoning_effort": Case("low"),
    "reasoning": Case({"effort": "low"}),
    "verbosity": Case("low"),
    "tiktoken_model_name": Case("gpt-4o"),
    "default_headers": Case({"X-Team": "vision"}, _check_headers),
    "default_query": Case({"a": "b"}),
    "http_client": Case(check=_check_http_client, make=lambda: _hooked_client(True)),
    "http_async_client": Case(check=_check_http_async_client, make=lambda: _hooked_client(False)),
    "http_socket_options": Case([(1, 2, 3)]),
    "stream_chunk_timeout": Case(5.0),
    "stop": Case(["END"], _sent("stop")),
    "extra_body": Case({"custom_field": 1}, _sent("custom_field", 1)),
    "include_response_headers": Case(True),
    "disabled_params": Case({"parallel_tool_calls": None}),
    "context_management": Case([{"type": "compaction"}]),
    "include": Case(["reasoning.encrypted_content"]),
    "prompt_cache_options": Case({"key": "x"}),
    "service_tier": Case("flex"),
    "store": Case(True),
    "truncation": Case("auto"),
    "use_previous_response_id": Case(True),
    "use_responses_api": Case(True),
}
SHARED_KEY: list[str] = [""]
SHARED_BASE: list[str] = [""]


def _names() -> list[tuple[str, str]]:
    """(ChatOpenAI field, the keyword used): every field name, and every alias."""
    names = []
    for field, info in ChatOpenAI.model_fields.items():
        names.append((field, field))
        if info.alias and info.alias != field:
            names.append((field, info.alias))
    return names


def test_every_chat_openai_setting_is_classified() -> None:
    assert set(ChatOpenAI.model_fields) == set(CHAT_OPENAI)


@pytest.mark.parametrize(("field", "keyword"), _names(), ids=[k for _, k in _names()])
def test_each_chat_openai_setting_is_honoured_or_refused(
    emu: LocalSiliconCloud, field: str, keyword: str
) -> None:
    SHARED_KEY[0], SHARED_BASE[0] = emu.api_key, emu.base_url
    case = CHAT_OPENAI[field]
    value = case.sample()
    params = {
        **emulator_params(model=QWEN, retry_initial_delay=0, retry_max_delay=0),
        "api_key": SECRET if case.check is None else emu.api_key,
    }
    params.pop(OPENAI_ALIASES.get(keyword, keyword), None)  # the one under test wins
    params.pop(OPENAI_ALIASES.get(field, field), None)
    if case.check is None:
        with pytest.raises(ValueError, match=keyword) as refused:
            ChatSiliconVision(**params, **{keyword: value})
        assert SECRET not in str(refused.value)  # the other settings are not echoed
        assert emu.requests == []
        return
    llm = ChatSiliconVision(**params, **{keyword: value})
    case.check(llm, emu, value)


def test_none_and_false_ask_for_nothing_and_are_accepted(emu: LocalSiliconCloud) -> None:
    llm = ChatSiliconVision(
        **emulator_params(model=QWEN),
        seed=None,
        logprobs=False,
        openai_proxy=None,
        use_responses_api=False,
        include_response_headers=False,
    )
    llm.invoke("hi")
    assert not {"seed", "logprobs"} & set(_body(emu))


def test_unknown_keywords_and_typos_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown setting 'foo_bar'"):
        ChatSiliconVision(api_key=SECRET, foo_bar=1)
    with pytest.raises(ValueError, match=r"'temprature' \(did you mean 'temperature'\?\)") as e:
        ChatSiliconVision(api_key=SECRET, temprature=0.2)
    assert SECRET not in str(e.value)
    with pytest.raises(ValueError, match="both 'model_name' and 'model'"):
        ChatSiliconVision(model=QWEN, model_name=QWEN_7B)
    with pytest.raises(ValueError, match="seed"):
        ChatSiliconVision(model_kwargs={"seed": 1})  # checked at construction, too
    with pytest.raises(ValueError, match="n must be 1 when streaming"):
        ChatSiliconVision(n=2, streaming=True)
    with pytest.raises(ValueError, match="timeout must be"):
        ChatSiliconVision(timeout="soon")


def test_call_time_names_of_chat_openai(emu: LocalSiliconCloud) -> None:
    llm = ChatSiliconVision(**emulator_params(model=QWEN))
    llm.invoke("hi", max_completion_tokens=12, extra_headers={"X-Run": "7"})
    assert _body(emu)["max_tokens"] == 12 and "max_completion_tokens" not in _body(emu)
    assert emu.last_request is not None and emu.last_request.headers["x-run"] == "7"
    assert "extra_headers" not in _body(emu)
    chunks = list(llm.stream("hi", stream_usage=False))
    assert all(c.usage_metadata is None for c in chunks)
    with pytest.raises(ParameterError, match="parallel_tool_calls"):
        llm.invoke("hi", parallel_tool_calls=False)


def test_n_returns_n_generations_with_the_usage_counted_once(emu: LocalSiliconCloud) -> None:
    emu.script_reply("first")
    emu.script_reply("second")
    emu.script_reply("third")
    llm = ChatSiliconVision(**emulator_params(model=QWEN))
    result = llm.generate([[HumanMessage("three answers")]], n=3)
    (generations,) = result.generations
    assert [g.text for g in generations] == ["first", "second", "third"]
    assert _body(emu)["n"] == 3
    usages = [g.message.usage_metadata for g in generations]  # type: ignore[attr-defined]
    server = emu.last_request
    assert server is not None
    assert usages[0] is not None and usages[1:] == [None, None]
    assert result.llm_output is not None
    assert result.llm_output["token_usage"]["completion_tokens"] == usages[0]["output_tokens"]
    # invoke returns the first; streaming n > 1 is refused (the chunks would interleave)
    emu.script_reply("only")
    assert llm.invoke("hi", n=2).content == "only"
    with pytest.raises(ParameterError, match="n=2 cannot be streamed"):
        list(llm.stream("hi", n=2))


@pytest.mark.parametrize(
    ("timeout", "read"),
    [(2.5, "2.5"), ((3, 10), "10.0"), (httpx.Timeout(7.0), "7.0"), ((1, 4, 5, 6), "4.0")],
)
def test_timeouts_in_every_form_reach_the_sdk(
    emu: LocalSiliconCloud, timeout: Any, read: str
) -> None:
    ChatSiliconVision(**emulator_params(model=QWEN, timeout=timeout)).invoke("hi")
    assert emu.last_request is not None
    assert emu.last_request.headers["x-stainless-read-timeout"] == read


def test_a_cut_stream_is_an_openai_connection_error_with_its_partial_text(
    emu: LocalSiliconCloud,
) -> None:
    llm = ChatSiliconVision(**emulator_params(model=QWEN))
    emu.script_reply(chunks=["One ", "two ", "three ", "four"])
    emu.cut_stream_after = 3
    try:
        with pytest.raises(openai.APIConnectionError) as info:
            list(llm.stream("count"))
    finally:
        emu.cut_stream_after = None
    assert isinstance(info.value, IncompleteStreamError) and isinstance(info.value, openai.APIError)
    assert info.value.partial_text == "One two "
    assert info.value.request.url.path == "/v1/chat/completions"


def test_a_base_url_without_v1_gets_a_hint(emu: LocalSiliconCloud) -> None:
    base = emu.base_url.removesuffix("/v1")
    llm = ChatSiliconVision(**emulator_params(model=QWEN, base_url=base))
    with pytest.raises(openai.NotFoundError, match=r"went to /chat/completions.*end in /v1"):
        llm.invoke("hi")


def test_deep_copies_share_the_callers_http_clients(emu: LocalSiliconCloud) -> None:
    client = _hooked_client(True)
    llm = ChatSiliconVision(**emulator_params(model=QWEN, http_client=client))
    llm.invoke("hi")
    for clone in (copy.deepcopy(llm), llm.model_copy(deep=True)):
        assert clone.http_client is client
        clone.invoke("hi")
    assert len(client.seen) == 3


class _Billing:
    """HTTP clients that read the usage SiliconCloud (the emulator) answered with."""

    def __init__(self) -> None:
        self.usages: list[dict[str, int]] = []

    def _record(self, response: httpx.Response) -> None:
        if response.request.url.path.endswith("/chat/completions"):
            self.usages.append(json.loads(response.content)["usage"])

    def sync(self) -> httpx.Client:
        def hook(response: httpx.Response) -> None:
            response.read()
            self._record(response)

        return httpx.Client(event_hooks={"response": [hook]})

    def asynchronous(self) -> httpx.AsyncClient:
        async def hook(response: httpx.Response) -> None:
            await response.aread()
            self._record(response)

        return httpx.AsyncClient(event_hooks={"response": [hook]})

    @property
    def billed(self) -> tuple[int, int]:
        return (
            sum(u["prompt_tokens"] for u in self.usages),
            sum(u["completion_tokens"] for u in self.usages),
        )


def _counted(handler: UsageMetadataCallbackHandler) -> tuple[int, int]:
    (usage,) = handler.usage_metadata.values()
    return usage["input_tokens"], usage["output_tokens"]


def test_ask_image_reports_its_call_to_the_callbacks(emu: LocalSiliconCloud) -> None:
    billing = _Billing()
    llm = ChatSiliconVision(**emulator_params(model=QWEN, http_client=billing.sync()))
    tool = SiliconVisionTool(llm=llm, allowed_dirs=[EXAMPLE_IMAGES])
    usage = UsageMetadataCallbackHandler()
    answer = tool.invoke(
        {"image": "red_circle.png", "question": "Colour?"}, config={"callbacks": [usage]}
    )
    assert "(red)" in answer
    assert len(billing.usages) == 1 and _counted(usage) == billing.billed


def test_caption_loader_reports_every_request_to_the_callbacks(
    emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    for colour in ("red", "green", "blue"):
        (tmp_path / f"{colour}.png").write_bytes(make_image((64, 48), colour))
    billing = _Billing()
    usage = UsageMetadataCallbackHandler()
    recorder = _Recorder()
    llm = ChatSiliconVision(
        **emulator_params(model=QWEN, http_client=billing.sync()), callbacks=[recorder]
    )
    documents = SiliconVisionCaptionLoader([tmp_path], llm=llm, callbacks=[usage]).load()
    assert len(documents) == 3 and recorder.ends == 3  # the llm's own callbacks too
    assert len(billing.usages) == 3 and _counted(usage) == billing.billed
    # a callback set for a whole block of code (a context variable) sees them as well
    with get_usage_metadata_callback() as scoped:
        SiliconVisionCaptionLoader([tmp_path], llm=llm).load()
    assert _counted(scoped)[0] == billing.billed[0] // 2


def test_caption_loader_reports_async_requests_too(emu: LocalSiliconCloud, tmp_path: Path) -> None:
    for colour in ("red", "green"):
        (tmp_path / f"{colour}.png").write_bytes(make_image((64, 48), colour))
    billing = _Billing()
    usage = UsageMetadataCallbackHandler()
    llm = ChatSiliconVision(**emulator_params(model=QWEN, http_async_client=billing.asynchronous()))
    loader = SiliconVisionCaptionLoader([tmp_path], llm=llm, callbacks=[usage])

    async def run() -> list[Any]:
        return [d async for d in loader.alazy_load()]

    assert len(asyncio.run(run())) == 2
    assert len(billing.usages) == 2 and _counted(usage) == billing.billed


def test_image_block_helper_still_flows_with_openai_names(emu: LocalSiliconCloud) -> None:
    llm = ChatSiliconVision(
        model_name=QWEN, openai_api_key=emu.api_key, openai_api_base=emu.base_url
    )
    reply = llm.invoke([HumanMessage(content=[image_block(make_image()), "What is it?"])])
    assert isinstance(reply, AIMessage) and "I see 1 image." in reply.text
