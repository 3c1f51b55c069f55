"""OpenAILike users' settings: every one is honoured on the wire (or in behaviour) or
refused by name, none silently dropped; plus what OpenAILike users expect of a
LlamaIndex LLM (streaming structured output, callbacks for the tools and readers,
deep copies, retrieved nodes as images, batched image embeddings).

llama-index-llms-openai-like pins openai<3 and so cannot be installed next to the
locked openai 3.x: its constructor arguments are listed here from its source,
llama-index-llms-openai-like 0.8.1 (``OpenAILike``'s fields) on
llama-index-llms-openai 0.8.3 (``OpenAI.__init__``'s parameters and fields), with
llama-index-core's ``LLM`` fields they pass through.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage, ImageBlock
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.indices.multi_modal import MultiModalVectorStoreIndex
from llama_index.core.llms.llm import LLM
from llama_index.core.output_parsers import PydanticOutputParser
from llama_index.core.prompts import PromptTemplate
from llama_index.core.rate_limiter import BaseRateLimiter
from llama_index.core.schema import ImageNode, NodeWithScore
from llama_index.core.tools import FunctionTool
from llama_index.core.types import PydanticProgramMode
from pydantic import BaseModel

from llama_index_siliconvision import (
    SiliconVision,
    SiliconVisionCaptionReader,
    SiliconVisionEmbedding,
    SiliconVisionToolSpec,
)
from siliconvision.testing import LocalSiliconCloud
from siliconvision.wire import ParameterError
from tests.imaging import make_image

from .conftest import INTERNVL, QWEN, EventRecorder

SECRET = "sk-openai-like-secret-0123456789"

#: ``OpenAI.__init__`` (llama-index-llms-openai 0.8.3) parameters, in order.
OPENAI_INIT = (
    "model",
    "temperature",
    "max_tokens",
    "additional_kwargs",
    "max_retries",
    "timeout",
    "reuse_client",
    "api_key",
    "api_base",
    "api_version",
    "callback_manager",
    "default_headers",
    "http_client",
    "async_http_client",
    "openai_client",
    "async_openai_client",
    "system_prompt",
    "messages_to_prompt",
    "completion_to_prompt",
    "pydantic_program_mode",
    "output_parser",
    "strict",
    "reasoning_effort",
    "modalities",
    "audio_config",
)
#: ``OpenAI``'s fields that are not ``__init__`` parameters (set through ``**kwargs``),
#: the ``max_new_tokens`` keyword it maps to ``max_tokens``, ``OpenAILike``'s own
#: fields (0.8.1), and ``LLM``'s fields not named above (llama-index-core).
OPENAI_KWARGS = ("logprobs", "top_logprobs", "max_new_tokens")
OPENAI_LIKE_FIELDS = (
    "context_window",
    "is_chat_model",
    "is_function_calling_model",
    "should_use_structured_outputs",
    "tokenizer",
)
LLM_FIELDS = ("rate_limiter", "query_wrapper_prompt")
ALL_SETTINGS = (*OPENAI_INIT, *OPENAI_KWARGS, *OPENAI_LIKE_FIELDS, *LLM_FIELDS)

Check = Callable[[SiliconVision, LocalSiliconCloud, Any], None]


@dataclass(frozen=True)
class Case:
    """A sample value (``make`` builds a fresh one) and how to see it honoured;
    ``check=None``: refused with a ``ValueError`` naming the setting. ``params``:
    more constructor arguments this case needs."""

    value: Any = None
    check: Check | None = None
    make: Callable[[LocalSiliconCloud], Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def sample(self, emu: LocalSiliconCloud) -> Any:
        return self.make(emu) if self.make is not None else self.value


def _hi() -> list[ChatMessage]:
    return [ChatMessage(role="user", content="hi")]


def _body(emu: LocalSiliconCloud) -> dict[str, Any]:
    assert emu.last_request is not None
    body: dict[str, Any] = emu.last_request.body
    return body


def _sent(name: str, expected: Any) -> Check:
    def check(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
        llm.chat(_hi())
        assert _body(emu)[name] == expected

    return check


def _check_model(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.chat(_hi())
    assert emu.last_request is not None and emu.last_request.model == value


def _check_additional(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.chat(_hi())
    body = _body(emu)
    assert (body["top_k"], body["repetition_penalty"]) == (5, 1.1)
    assert emu.last_request is not None and emu.last_request.headers["x-trace"] == "t1"
    assert "extra_headers" not in body  # headers, not a JSON field


def _check_retries(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    emu.fail_next(503, count=2)
    llm.chat(_hi())
    assert [r.status for r in emu.requests] == [503, 503, 200]


def _check_timeout(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.chat(_hi())
    assert emu.last_request is not None
    assert emu.last_request.headers["x-stainless-read-timeout"] == "10.0"


def _check_authorised(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.chat(_hi())
    assert emu.last_request is not None and emu.last_request.status == 200


def _check_callback_manager(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.chat(_hi())
    llm.chat(_hi())
    counter = value.handlers[0]
    assert len(counter.llm_token_counts) == 2 and counter.prompt_llm_token_count > 0


def _check_headers(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.chat(_hi())
    assert emu.last_request is not None and emu.last_request.headers["x-team"] == "vision"


def _hooked(sync: bool) -> Any:
    seen: list[str] = []
    if sync:
        client: Any = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
    else:

        async def hook(request: httpx.Request) -> None:
            seen.append(request.url.path)

        client = httpx.AsyncClient(event_hooks={"request": [hook]})
    client.seen = seen
    return client


def _check_http_client(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.chat(_hi())
    assert value.seen == ["/v1/chat/completions"]


def _check_async_http_client(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    async def run() -> None:
        await llm.achat(_hi())
        await value.aclose()

    asyncio.run(run())
    assert value.seen == ["/v1/chat/completions"]


def _check_system_prompt(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.predict(PromptTemplate("Say {word}."), word="hi")
    first = _body(emu)["messages"][0]
    assert first["role"] == "system" and "Be brief." in json.dumps(first["content"])


def _check_completion_to_prompt(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.complete("hi")
    assert _body(emu)["messages"][-1]["content"][-1]["text"] == "<<hi>>"
    llm.complete("hi", formatted=True)  # LlamaIndex's "already formatted"
    assert _body(emu)["messages"][-1]["content"][-1]["text"] == "hi"


class Colour(BaseModel):
    name: str


def _check_program_mode(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    emu.script_reply('{"name": "red"}')
    assert llm.structured_predict(Colour, PromptTemplate("Colour?")) == Colour(name="red")
    assert "tools" not in _body(emu)  # PydanticProgramMode.LLM: text, no tool call


def _check_output_parser(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    emu.script_reply('{"name": "blue"}')
    assert llm.predict(PromptTemplate("Colour?")) == str(Colour(name="blue"))
    assert "JSON" in json.dumps(_body(emu)["messages"])  # its format instructions went out


def _check_context_window(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    assert llm.metadata.context_window == 4096


def _check_function_calling(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    assert llm.metadata.is_function_calling_model
    tool = FunctionTool.from_defaults(fn=lambda a: a, name="echo")
    emu.script_reply(tool_calls=[{"name": "echo", "arguments": {"a": 1}}])
    response = llm.chat_with_tools([tool], user_msg="echo 1")
    assert _body(emu)["tools"][0]["function"]["name"] == "echo"
    assert llm.get_tool_calls_from_response(response)[0].tool_kwargs == {"a": 1}


class _CountingLimiter(BaseRateLimiter):
    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, num_tokens: int = 0) -> None:
        self.acquired += 1

    async def async_acquire(self, num_tokens: int = 0) -> None:
        self.acquired += 1


def _check_rate_limiter(llm: SiliconVision, emu: LocalSiliconCloud, value: Any) -> None:
    llm.chat(_hi())
    assert value.acquired == 1


#: Every OpenAILike constructor argument (see the module docs for the source).
OPENAI_LIKE: dict[str, Case] = {
    "model": Case("Qwen/Qwen2.5-VL-7B-Instruct", _check_model),
    "temperature": Case(0.3, _sent("temperature", 0.3)),
    "max_tokens": Case(40, _sent("max_tokens", 40)),
    "additional_kwargs": Case(
        {"top_k": 5, "repetition_penalty": 1.1, "extra_headers": {"X-Trace": "t1"}},
        _check_additional,
    ),
    "max_retries": Case(None, _check_retries),
    "timeout": Case((3, 10), _check_timeout),
    "reuse_client": Case(False),
    "api_key": Case(check=_check_authorised, make=lambda emu: emu.api_key),
    "api_base": Case(check=_check_authorised, make=lambda emu: emu.base_url),
    "api_version": Case("2024-01-01"),
    "callback_manager": Case(
        check=_check_callback_manager,
        make=lambda emu: CallbackManager([TokenCountingHandler()]),
    ),
    "default_headers": Case({"X-Team": "vision"}, _check_headers),
    "http_client": Case(check=_check_http_client, make=lambda emu: _hooked(True)),
    "async_http_client": Case(check=_check_async_http_client, make=lambda emu: _hooked(False)),
    "openai_client": Case(make=lambda emu: object()),
    "async_openai_client": Case(make=lambda emu: object()),
    "system_prompt": Case("Be brief.", _check_system_prompt),
    "messages_to_prompt": Case(make=lambda emu: lambda messages: "x"),
    "completion_to_prompt": Case(
        check=_check_completion_to_prompt, make=lambda emu: lambda prompt: f"<<{prompt}>>"
    ),
    "pydantic_program_mode": Case(PydanticProgramMode.LLM, _check_program_mode),
    "output_parser": Case(
        check=_check_output_parser, make=lambda emu: PydanticOutputParser(output_cls=Colour)
    ),
    "strict": Case(True),
    "reasoning_effort": Case("low"),
    "modalities": Case(["text", "audio"]),
    "audio_config": Case({"voice": "alloy"}),
    "logprobs": Case(True),
    "top_logprobs": Case(3),
    "max_new_tokens": Case(41, _sent("max_tokens", 41)),
    "context_window": Case(4096, _check_context_window),
    "is_chat_model": Case(False),
    "is_function_calling_model": Case(True, _check_function_calling, params={"model": INTERNVL}),
    "should_use_structured_outputs": Case(True),
    "tokenizer": Case("Qwen/Qwen2.5-VL-7B-Instruct"),
    "rate_limiter": Case(check=_check_rate_limiter, make=lambda emu: _CountingLimiter()),
    "query_wrapper_prompt": Case(make=lambda emu: PromptTemplate("[INST] {query_str} [/INST]")),
}


class _Billing:
    """HTTP clients that keep the usage the emulator answered each chat request with."""

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

    def total(self, key: str) -> int:
        return sum(u[key] for u in self.usages)


def test_every_openai_like_setting_is_classified() -> None:
    assert set(OPENAI_LIKE) == set(ALL_SETTINGS)
    # what llama-index-core's LLM declares is covered too
    assert set(LLM.model_fields) <= set(ALL_SETTINGS)


@pytest.mark.parametrize("name", ALL_SETTINGS)
def test_each_openai_like_setting_is_honoured_or_refused(emu: LocalSiliconCloud, name: str) -> None:
    case = OPENAI_LIKE[name]
    value = case.sample(emu)
    params: dict[str, Any] = {
        "model": QWEN,
        "api_key": SECRET if case.check is None else emu.api_key,
        "base_url": emu.base_url,
        "max_retries": 0,
        "retry_initial_delay": 0,
        "retry_max_delay": 0,
        **case.params,
    }
    params.pop({"api_base": "base_url", "max_new_tokens": "max_tokens"}.get(name, name), None)
    if case.check is None:
        with pytest.raises(ValueError, match=name) as refused:
            SiliconVision(**params, **{name: value})
        assert SECRET not in str(refused.value)
        assert emu.requests == []
        return
    llm = SiliconVision(**params, **{name: value})
    case.check(llm, emu, value)


def test_off_values_of_refused_settings_are_accepted(emu: LocalSiliconCloud) -> None:
    llm = SiliconVision(
        api_key=emu.api_key,
        api_base=emu.base_url,
        reuse_client=True,
        strict=False,
        is_chat_model=True,
        should_use_structured_outputs=False,
        logprobs=None,
        api_version=None,
    )
    llm.chat(_hi())
    assert emu.last_request is not None and emu.last_request.status == 200


def test_unknown_settings_and_undocumented_fields(emu: LocalSiliconCloud) -> None:
    with pytest.raises(ValueError, match=r"'temprature' \(did you mean 'temperature'\?\)"):
        SiliconVision(api_key=SECRET, temprature=0.1)
    with pytest.raises(ValueError, match=r"'seed'.*additional_kwargs=\{'seed'"):
        SiliconVision(api_key=SECRET, seed=1)
    with pytest.raises(ValueError, match="both 'base_url' and 'api_base'"):
        SiliconVision(base_url="https://a.example/v1", api_base="https://b.example/v1")
    llm = SiliconVision(api_key=emu.api_key, base_url=emu.base_url, max_retries=0)
    with pytest.raises(ParameterError, match="'seed' is not one SiliconCloud documents"):
        llm.chat(_hi(), seed=3)
    llm.chat(_hi(), extra_body={"seed": 3})  # the explicit way
    assert _body(emu)["seed"] == 3
    with pytest.raises(ParameterError, match="one answer per call"):
        llm.chat(_hi(), n=2)


def test_per_call_extra_headers_are_headers(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    llm.chat(_hi(), extra_headers={"X-Call": "c1"})
    assert emu.last_request is not None and emu.last_request.headers["x-call"] == "c1"
    assert "extra_headers" not in _body(emu)


def test_the_tools_off_error_gives_advice_that_works(emu: LocalSiliconCloud) -> None:
    tool = FunctionTool.from_defaults(fn=lambda a: a, name="echo")
    off = SiliconVision(INTERNVL, api_key=emu.api_key, base_url=emu.base_url, max_retries=0)
    with pytest.raises(ParameterError, match="is_function_calling_model=True") as info:
        off.chat_with_tools([tool], user_msg="echo 1")
    assert emu.requests == []
    advice = str(info.value).split("in LlamaIndex ", 1)[1].split(", in LangChain")[0]
    assert advice == f"SiliconVision(model={INTERNVL!r}, is_function_calling_model=True)"
    on = SiliconVision(
        INTERNVL,
        api_key=emu.api_key,
        base_url=emu.base_url,
        max_retries=0,
        is_function_calling_model=True,
    )
    on.chat_with_tools([tool], user_msg="echo 1")
    assert _body(emu)["tools"][0]["function"]["name"] == "echo"
    # and off for a model the catalog lists with tools
    qwen_off = SiliconVision(
        api_key=emu.api_key, base_url=emu.base_url, is_function_calling_model=False
    )
    assert not qwen_off.metadata.is_function_calling_model
    with pytest.raises(ParameterError, match="tool"):
        qwen_off.chat_with_tools([tool], user_msg="echo 1")


class Receipt(BaseModel):
    total: float | None = None
    shop: str | None = None


def _receipt_call(emu: LocalSiliconCloud) -> None:
    emu.script_reply(tool_calls=[{"name": "Receipt", "arguments": {"total": 9.5, "shop": "Ace"}}])


def test_streaming_structured_output_is_filled(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    _receipt_call(emu)
    *_, last = llm.stream_structured_predict(Receipt, PromptTemplate("Read it."))
    assert last == Receipt(total=9.5, shop="Ace")
    assert _body(emu)["stream"] is True
    _receipt_call(emu)
    structured = llm.as_structured_llm(Receipt)
    *_, final = structured.stream_chat(_hi())
    assert final.raw == Receipt(total=9.5, shop="Ace")


async def test_async_streaming_structured_output_is_filled(
    llm: SiliconVision, emu: LocalSiliconCloud
) -> None:
    _receipt_call(emu)
    results = [
        r async for r in await llm.astream_structured_predict(Receipt, PromptTemplate("Read."))
    ]
    assert results[-1] == Receipt(total=9.5, shop="Ace")


def test_the_reader_and_the_tool_spec_are_counted_and_traced(
    emu: LocalSiliconCloud, recorder: EventRecorder, tmp_path: Path
) -> None:
    for colour in ("red", "green"):
        (tmp_path / f"{colour}.png").write_bytes(make_image((64, 48), colour))
    counter = TokenCountingHandler()
    billing = _Billing()
    llm = SiliconVision(
        api_key=emu.api_key,
        base_url=emu.base_url,
        max_retries=0,
        callback_manager=CallbackManager([counter]),
        http_client=billing.sync(),
    )
    documents = SiliconVisionCaptionReader(llm).load_data(tmp_path)
    spec = SiliconVisionToolSpec(llm, allowed_dirs=[tmp_path])
    answer = spec.ask_image(str(tmp_path / "red.png"), "Colour?")
    assert len(documents) == 2 and "(red)" in answer
    assert len(billing.usages) == 3 and len(counter.llm_token_counts) == 3
    assert counter.prompt_llm_token_count == billing.total("prompt_tokens")
    assert counter.completion_llm_token_count == billing.total("completion_tokens")
    assert len(recorder.of("LLMChatStartEvent")) == len(recorder.of("LLMChatEndEvent")) == 3
    shown = recorder.of("LLMChatStartEvent")[-1].messages[0]
    assert isinstance(shown.blocks[0], ImageBlock) and shown.blocks[1].text == "Colour?"


async def test_async_reader_and_tool_spec_are_counted(
    emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    (tmp_path / "blue.png").write_bytes(make_image((64, 48), "blue"))
    counter = TokenCountingHandler()
    billing = _Billing()
    llm = SiliconVision(
        api_key=emu.api_key,
        base_url=emu.base_url,
        callback_manager=CallbackManager([counter]),
        http_async_client=billing.asynchronous(),
    )
    await SiliconVisionCaptionReader(llm).aload_data(tmp_path)
    await SiliconVisionToolSpec(llm, allowed_dirs=[tmp_path]).aask_image(
        str(tmp_path / "blue.png"), "Colour?"
    )
    assert len(billing.usages) == 2 and len(counter.llm_token_counts) == 2
    assert counter.total_llm_token_count == billing.total("total_tokens")


def test_deep_copies(emu: LocalSiliconCloud) -> None:
    client = _hooked(True)
    llm = SiliconVision(api_key=emu.api_key, base_url=emu.base_url, http_client=client)
    for clone in (copy.deepcopy(llm), llm.model_copy(deep=True)):
        assert clone.base_url == llm.base_url and clone is not llm
        clone.chat(_hi())
        assert clone.client is not llm.client
    llm.chat(_hi())
    assert len(client.seen) == 3  # the caller's HTTP client is shared, not copied
    tuned = SiliconVision(api_key="x", context_window=4096, is_function_calling_model=False)
    assert SiliconVision.from_dict(tuned.to_dict()).metadata == tuned.metadata
    embed = SiliconVisionEmbedding(api_key=emu.api_key, base_url=emu.base_url)
    embed.get_text_embedding("built")
    clone_embed = copy.deepcopy(embed)
    assert clone_embed.get_text_embedding("built") == embed.get_text_embedding("built")


def test_retrieved_nodes_go_straight_in_as_image_documents(
    llm: SiliconVision, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    nodes = []
    for colour in ("red", "blue"):
        path = tmp_path / f"{colour}.png"
        path.write_bytes(make_image(color=colour))
        nodes.append(NodeWithScore(node=ImageNode(image_path=str(path)), score=0.5))
    llm.complete("Which?", image_documents=nodes)
    assert emu.last_request is not None
    assert [i.color_name for i in emu.last_request.images] == ["red", "blue"]


def test_sync_multimodal_index_batches_embeddings_and_captions_concurrently(
    emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    nodes = []
    for i in range(6):
        path = tmp_path / f"img{i}.png"
        path.write_bytes(make_image((48, 48), ("red", "green", "blue")[i % 3]))
        nodes.append(ImageNode(image_path=str(path), metadata={"file_name": path.name}))
    embed = SiliconVisionEmbedding(
        api_key=emu.api_key, base_url=emu.base_url, max_retries=0, caption_concurrency=3
    )
    emu.latency = 0.3
    try:
        MultiModalVectorStoreIndex(nodes, embed_model=embed, image_embed_model=embed)
    finally:
        emu.latency = 0.0
    captions = [r for r in emu.requests if r.path.endswith("/chat/completions")]
    embeddings = [r for r in emu.requests if r.path.endswith("/embeddings")]
    assert len(captions) == 6
    assert len(embeddings) == 1 and len(embeddings[0].body["input"]) == 6
    # the server's own log: how many caption requests it held at once (3 unless a
    # loaded machine starts a thread late; one at a time before)
    assert 2 <= _peak_overlap(captions) <= 3  # caption_concurrency bounds it


def _peak_overlap(requests: list[Any]) -> int:
    edges = []
    for request in requests:
        assert request.finished_at is not None
        edges += [(request.received_at, 1), (request.finished_at, -1)]
    peak = current = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        current += step
        peak = max(peak, current)
    return peak


async def test_react_agent_hands_tool_images_to_the_model_as_text_only(
    llm: SiliconVision, emu: LocalSiliconCloud
) -> None:
    """What the README says: FunctionAgent delivers a tool's ImageBlock (see
    test_tools.py); LlamaIndex's ReActAgent turns tool output into an Observation text."""
    from llama_index.core.agent.workflow import ReActAgent

    from siliconvision.testing import ReceivedRequest, ScriptedReply

    def snapshot() -> ImageBlock:
        """Take a photo of the scene."""
        return ImageBlock(image=make_image((120, 80), "green"))

    def respond(req: ReceivedRequest) -> ScriptedReply:
        if "Observation:" in str(req.body["messages"][-1]["content"]):
            return ScriptedReply(content="Thought: done.\nAnswer: seen.")
        return ScriptedReply(content="Thought: look.\nAction: snapshot\nAction Input: {}")

    emu.set_responder(respond)
    agent = ReActAgent(tools=[FunctionTool.from_defaults(fn=snapshot)], llm=llm)
    await agent.run(user_msg="What do you see?")
    assert len(emu.requests) == 2
    assert [len(r.images) for r in emu.requests] == [0, 0]  # the photo never arrived
