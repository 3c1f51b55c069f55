"""Streaming, instrumentation events, usage, raw responses, reasoning and errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import openai
import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ImageBlock,
    TextBlock,
    ThinkingBlock,
)
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler

from llama_index_siliconvision import SiliconVision
from siliconvision import IncompleteStreamError, SiliconCloudRateLimitError
from siliconvision.client import MissingAPIKeyError
from siliconvision.testing import LocalSiliconCloud
from tests.imaging import make_image

from .conftest import THINKING, EventRecorder

MakeLLM = Callable[..., SiliconVision]
PIECES = ["one", " two", " three", " four", " five"]
CHUNKS = 1 + len(PIECES) + 1  # role chunk, content chunks, finish chunk


def _question() -> list[ChatMessage]:
    return [ChatMessage(blocks=[ImageBlock(image=make_image()), TextBlock(text="Count.")])]


def test_stream_chat_yields_each_chunk_as_it_arrives_with_an_event_each(
    llm: SiliconVision, emu: LocalSiliconCloud, recorder: EventRecorder
) -> None:
    emu.script_reply(chunks=PIECES)
    emu.chunk_delay = 0.05
    timeline: list[tuple[Any, ...]] = []

    def on_event(event: Any) -> None:
        if type(event).__name__ == "LLMChatInProgressEvent":
            req = emu.last_request
            assert req is not None
            timeline.append(("event", event.response.delta, req.chunks_sent))

    recorder.on_event = on_event
    responses = []
    for response in llm.stream_chat(_question()):
        timeline.append(("got", response.delta))
        responses.append(response)

    assert len(responses) == CHUNKS
    # Each chunk: its event, then the consumer gets it (interleaved, not batched).
    assert [t[0] for t in timeline] == ["event", "got"] * CHUNKS
    assert [t[1] for t in timeline if t[0] == "got"] == ["", *PIECES, ""]
    # Really streamed: when the first chunk reached us the server had not sent the rest.
    assert timeline[0][2] < CHUNKS
    names = recorder.names()
    first, last = names.index("LLMChatStartEvent"), names.index("LLMChatEndEvent")
    assert names[first + 1 : last].count("LLMChatInProgressEvent") == CHUNKS
    assert responses[-1].message.content == "".join(PIECES)


def test_streamed_usage_is_the_total_not_the_sum_and_raw_is_each_chunk(
    llm: SiliconVision, emu: LocalSiliconCloud
) -> None:
    emu.script_reply(chunks=PIECES)
    streamed = list(llm.stream_chat(_question()))
    emu.script_reply("".join(PIECES))
    whole = llm.chat(_question())

    final = streamed[-1].additional_kwargs
    assert final["completion_tokens"] == len(PIECES)
    assert final["prompt_tokens"] == whole.additional_kwargs["prompt_tokens"] > 0
    assert final["total_tokens"] == final["prompt_tokens"] + len(PIECES)
    assert final["finish_reason"] == "stop"
    # SiliconCloud repeats cumulative usage on every chunk: summing would overcount.
    assert sum(r.additional_kwargs["total_tokens"] for r in streamed) > final["total_tokens"]
    for response in streamed:
        assert isinstance(response.raw, dict)
        assert re.fullmatch(r"[0-9a-f]{32}", response.raw["id"])
        assert response.raw["object"] == "chat.completion.chunk"
    assert streamed[-1].raw["usage"]["total_tokens"] == final["total_tokens"]
    assert streamed[1].raw["choices"][0]["delta"]["content"] == "one"
    assert isinstance(whole.raw, dict) and whole.raw["object"] == "chat.completion"
    assert whole.raw["choices"][0]["message"]["content"] == "".join(PIECES)
    assert whole.additional_kwargs["completion_tokens"] == len(PIECES)
    assert re.fullmatch(r"[0-9a-f]{32}", whole.additional_kwargs["trace_id"])


def test_token_counting_handler_sees_correct_streamed_totals(
    llm: SiliconVision, emu: LocalSiliconCloud
) -> None:
    counter = TokenCountingHandler()
    llm.callback_manager = CallbackManager([counter])
    emu.script_reply(chunks=PIECES)
    last = list(llm.stream_chat(_question()))[-1]
    assert len(counter.llm_token_counts) == 1
    count = counter.llm_token_counts[0]
    assert count.prompt_token_count == last.additional_kwargs["prompt_tokens"]
    assert count.completion_token_count == len(PIECES)


async def test_astream_chat_yields_each_chunk_with_an_event_each(
    llm: SiliconVision, emu: LocalSiliconCloud, recorder: EventRecorder
) -> None:
    emu.script_reply(chunks=PIECES)
    emu.chunk_delay = 0.05
    sent_at_event: list[int] = []

    def on_event(event: Any) -> None:
        if type(event).__name__ == "LLMChatInProgressEvent":
            req = emu.last_request
            assert req is not None
            sent_at_event.append(req.chunks_sent)

    recorder.on_event = on_event
    deltas = []
    async for response in await llm.astream_chat(_question()):
        deltas.append((len(sent_at_event), response.delta))
    assert deltas == [(i + 1, d) for i, d in enumerate(["", *PIECES, ""])]
    assert sent_at_event[0] < CHUNKS
    assert len(recorder.of("LLMChatEndEvent")) == 1


def test_stream_complete_events_and_text(
    llm: SiliconVision, emu: LocalSiliconCloud, recorder: EventRecorder
) -> None:
    emu.script_reply(chunks=PIECES)
    responses = list(llm.stream_complete("Count.", image_documents=[make_image()]))
    assert [r.delta for r in responses] == ["", *PIECES, ""]
    assert [r.text for r in responses][-1] == "".join(PIECES)
    assert len(recorder.of("LLMCompletionInProgressEvent")) == CHUNKS
    assert responses[-1].additional_kwargs["completion_tokens"] == len(PIECES)
    req = emu.last_request
    assert req is not None and len(req.images) == 1


async def test_astream_complete_and_achat(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    emu.script_reply(chunks=PIECES)
    texts = [r.text async for r in await llm.astream_complete("Count.")]
    assert texts[-1] == "".join(PIECES)
    emu.script_reply("done")
    response = await llm.achat(_question())
    assert response.message.content == "done"
    assert response.additional_kwargs["completion_tokens"] == 1


def test_reasoning_as_thinking_blocks_and_thinking_deltas(
    make_llm: MakeLLM, emu: LocalSiliconCloud
) -> None:
    llm = make_llm(model=THINKING)
    reasoning = "The pixels look red."
    emu.script_reply("It is red.", reasoning=reasoning)
    streamed = list(llm.stream_chat(_question()))
    thinking = [r.additional_kwargs.get("thinking_delta") for r in streamed]
    assert "".join(t for t in thinking if t) == reasoning
    last_thought = max(i for i, t in enumerate(thinking) if t)
    first_text = min(i for i, r in enumerate(streamed) if r.delta)
    assert last_thought < first_text  # reasoning streams before the answer
    blocks = streamed[-1].message.blocks
    assert isinstance(blocks[0], ThinkingBlock) and blocks[0].content == reasoning
    assert streamed[-1].message.content == "It is red."

    emu.script_reply("It is red.", reasoning=reasoning)
    whole = llm.chat(_question())
    thought = whole.message.blocks[0]
    assert isinstance(thought, ThinkingBlock) and thought.content == reasoning
    assert thought.num_tokens == whole.additional_kwargs["reasoning_tokens"] == 4
    assert whole.message.content == "It is red."

    emu.script_reply("It is red.", reasoning=reasoning)
    completion = llm.complete("Colour?", image_documents=[make_image()])
    assert completion.text == "It is red."
    assert completion.additional_kwargs["reasoning_content"] == reasoning


def test_enable_thinking_and_extra_fields_reach_the_wire(
    make_llm: MakeLLM, emu: LocalSiliconCloud
) -> None:
    llm = make_llm(
        model="zai-org/GLM-4.5V",
        enable_thinking=True,
        thinking_budget=512,
        temperature=0.3,
        top_k=20,
        additional_kwargs={"min_p": 0.05, "repetition_penalty": 1.05},
    )
    response = llm.chat(_question(), max_tokens=200, extra_body={"seed_mode": "x"})
    req = emu.last_request
    assert req is not None
    body = req.body
    assert body["enable_thinking"] is True and body["thinking_budget"] == 512
    assert (body["temperature"], body["top_k"], body["min_p"]) == (0.3, 20, 0.05)
    assert body["repetition_penalty"] == 1.05 and body["seed_mode"] == "x"
    assert body["max_tokens"] == 200
    assert isinstance(response.message.blocks[0], ThinkingBlock)  # the emulator thought


def test_cut_stream_raises_with_the_partial_text_and_an_exception_event(
    llm: SiliconVision, emu: LocalSiliconCloud, recorder: EventRecorder
) -> None:
    emu.script_reply(chunks=PIECES)
    emu.cut_stream_after = 3
    got = []
    with pytest.raises(IncompleteStreamError) as info:
        for response in llm.stream_chat(_question()):
            got.append(response.delta)
    assert got == ["", "one", " two"]
    assert info.value.partial_text == "one two"
    assert len(recorder.of("ExceptionEvent")) == 1
    assert recorder.of("LLMChatEndEvent") == []


def test_api_errors_keep_their_openai_types(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    emu.fail_next(429)
    with pytest.raises(openai.RateLimitError) as info:
        llm.chat(_question())
    assert isinstance(info.value, SiliconCloudRateLimitError)
    assert "SiliconCloud HTTP 429" in str(info.value) and "TPM limit" in str(info.value)
    emu.fail_next(503)
    with pytest.raises(openai.InternalServerError, match="50505"):
        list(llm.stream_chat(_question()))


def test_wrong_key_is_an_authentication_error(emu: LocalSiliconCloud) -> None:
    llm = SiliconVision(api_key="sk-wrong", base_url=emu.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="401"):
        llm.complete("hi")


def test_missing_key_fails_before_any_request(emu: LocalSiliconCloud) -> None:
    llm = SiliconVision(base_url=emu.base_url)  # the env vars are removed for every test
    with pytest.raises(MissingAPIKeyError, match="SILICONFLOW_API_KEY"):
        llm.chat(_question())
    assert emu.requests == []


def test_key_from_the_environment(emu: LocalSiliconCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SILICONCLOUD_API_KEY", emu.api_key)
    monkeypatch.setenv("SILICONFLOW_BASE_URL", emu.base_url)
    llm = SiliconVision()
    assert llm.base_url == emu.base_url
    emu.script_reply("ok")
    assert llm.complete("hi").text == "ok"
