"""Streaming: chunks reach callbacks as they arrive, usage totals, reasoning, tool-call chunks.

"As they arrive" is checked without clocks: the emulator waits ``chunk_delay`` between
SSE chunks and counts the chunks it has written (``chunks_sent``); a callback that
fires while the server has not yet written the rest proves the chunk was delivered
before the stream ended.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk

from langchain_siliconvision import ChatSiliconVision, image_block
from siliconvision import IncompleteStreamError
from siliconvision.testing import LocalSiliconCloud
from tests.imaging import make_image
from tests.langchain.support import QWEN, THINKING, emulator_params

PIECES = ["Alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta ", "eta ", "theta"]
#: SSE data chunks for a scripted reply of len(PIECES) pieces: role + pieces + finish.
TOTAL_CHUNKS = len(PIECES) + 2


class ServerProgress(BaseCallbackHandler):
    """Records, for each new token, how many chunks the server had sent at that moment."""

    def __init__(self, emu: LocalSiliconCloud) -> None:
        self.emu = emu
        self.tokens: list[tuple[str, int]] = []

    def on_llm_new_token(
        self,
        token: str,
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        request = self.emu.last_request
        assert request is not None
        self.tokens.append((token, request.chunks_sent))


class AsyncServerProgress(AsyncCallbackHandler):
    def __init__(self, emu: LocalSiliconCloud) -> None:
        self.emu = emu
        self.tokens: list[tuple[str, int]] = []

    async def on_llm_new_token(
        self,
        token: str,
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        request = self.emu.last_request
        assert request is not None
        self.tokens.append((token, request.chunks_sent))


def _check_interleaved(tokens: list[tuple[str, int]]) -> None:
    content = [(t, sent) for t, sent in tokens if t]
    assert [t for t, _ in content] == PIECES
    # Each piece reached the callback while the server still had chunks to send.
    assert all(sent < TOTAL_CHUNKS for _, sent in content), content
    # In order, following the server (the emulator bumps its counter just after
    # writing a chunk, so a fast client may see it one behind: no lower bound).
    sent_counts = [sent for _, sent in content]
    assert sent_counts == sorted(sent_counts)


@pytest.fixture
def slow_emu(emu: LocalSiliconCloud) -> LocalSiliconCloud:
    emu.chunk_delay = 0.06
    emu.script_reply(chunks=PIECES)
    return emu


@pytest.fixture
def llm(emu: LocalSiliconCloud) -> ChatSiliconVision:
    return ChatSiliconVision(**emulator_params(model=QWEN))


def test_stream_callbacks_fire_per_chunk_as_it_arrives(
    llm: ChatSiliconVision, slow_emu: LocalSiliconCloud
) -> None:
    progress = ServerProgress(slow_emu)
    chunks = list(llm.stream("Count.", config={"callbacks": [progress]}))
    _check_interleaved(progress.tokens)
    assert "".join(c.text for c in chunks) == "".join(PIECES)
    assert chunks[-1].chunk_position == "last"


def test_streaming_true_makes_invoke_stream(emu: LocalSiliconCloud) -> None:
    emu.chunk_delay = 0.06
    emu.script_reply(chunks=PIECES)
    llm = ChatSiliconVision(**emulator_params(model=QWEN, streaming=True))
    progress = ServerProgress(emu)
    result = llm.invoke("Count.", config={"callbacks": [progress]})
    assert emu.last_request is not None and emu.last_request.body["stream"] is True
    _check_interleaved(progress.tokens)
    assert result.text == "".join(PIECES)
    assert result.response_metadata["finish_reason"] == "stop"
    assert result.usage_metadata is not None
    assert result.usage_metadata["output_tokens"] == len(PIECES)


async def test_astream_callbacks_and_events_as_chunks_arrive(
    llm: ChatSiliconVision, slow_emu: LocalSiliconCloud
) -> None:
    progress = AsyncServerProgress(slow_emu)
    text = ""
    async for chunk in llm.astream("Count.", config={"callbacks": [progress]}):
        text += chunk.text
    assert text == "".join(PIECES)
    _check_interleaved(progress.tokens)

    slow_emu.script_reply(chunks=PIECES)
    events: list[tuple[str, int]] = []
    async for event in llm.astream_events("Count.", version="v2"):
        if event["event"] == "on_chat_model_stream" and event["data"]["chunk"].text:
            request = slow_emu.last_request
            assert request is not None
            events.append((event["data"]["chunk"].text, request.chunks_sent))
    _check_interleaved(events)


def test_stream_usage_totals_are_not_summed_twice(
    llm: ChatSiliconVision, emu: LocalSiliconCloud
) -> None:
    message = HumanMessage(content=[image_block(make_image((280, 280))), "Describe."])
    emu.script_reply(chunks=PIECES)
    invoked = llm.invoke([message])
    emu.script_reply(chunks=PIECES)
    full: AIMessageChunk | None = None
    with_input = 0
    for chunk in llm.stream([message]):
        if chunk.usage_metadata and chunk.usage_metadata["input_tokens"]:
            with_input += 1
        full = chunk if full is None else full + chunk
    assert full is not None and invoked.usage_metadata is not None
    # 280x280 high on Qwen-VL: 10x10 patches = 100 tokens, plus the text.
    prompt = emu.last_request.images[0].tokens + 4 + 3  # type: ignore[union-attr]
    expected = {"input_tokens": prompt, "output_tokens": 8, "total_tokens": prompt + 8}
    assert full.usage_metadata == expected
    assert invoked.usage_metadata == expected
    assert with_input == 1  # cumulative usage on every SSE chunk, counted once
    assert full.response_metadata["model_name"] == QWEN
    assert full.response_metadata["model_provider"] == "siliconflow"
    assert full.response_metadata["finish_reason"] == "stop"


def test_reasoning_streams_as_reasoning_blocks_before_the_answer(emu: LocalSiliconCloud) -> None:
    thinking = ChatSiliconVision(**emulator_params(model=THINKING))
    emu.script_reply("It is red.", reasoning="The pixels are mostly red.")
    chunks = list(thinking.stream([HumanMessage(content=[image_block(make_image()), "Colour?"])]))
    kinds = [
        "reasoning" if c.additional_kwargs.get("reasoning_content") else "text"
        for c in chunks
        if c.additional_kwargs.get("reasoning_content") or c.text
    ]
    assert kinds == sorted(kinds)  # all reasoning, then all text
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.additional_kwargs["reasoning_content"] == "The pixels are mostly red."
    assert full.text == "It is red."
    assert full.content_blocks[0] == {
        "type": "reasoning",
        "reasoning": "The pixels are mostly red.",
    }
    assert full.usage_metadata is not None
    assert full.usage_metadata.get("output_token_details") == {"reasoning": 5}

    emu.script_reply("It is red.", reasoning="The pixels are mostly red.")
    v1 = ChatSiliconVision(**emulator_params(model=THINKING, output_version="v1"))
    message = v1.invoke("Colour?")
    assert message.content == [
        {"type": "reasoning", "reasoning": "The pixels are mostly red."},
        {"type": "text", "text": "It is red."},
    ]
    emu.script_reply("It is red.", reasoning="The pixels are mostly red.")
    v1_chunks = list(v1.stream("Colour?"))
    blocks = [b for c in v1_chunks for b in c.content if isinstance(b, dict)]
    reasoning = "".join(b["reasoning"] for b in blocks if b["type"] == "reasoning")
    assert reasoning == "The pixels are mostly red."


def test_tool_call_chunks_stream_and_assemble(
    llm: ChatSiliconVision, emu: LocalSiliconCloud
) -> None:
    def lookup(query: str, limit: int) -> str:
        """Look something up."""
        return query * limit

    emu.script_reply(
        tool_calls=[{"name": "lookup", "arguments": {"query": "红色的圆 red circle", "limit": 3}}]
    )
    chunks = list(llm.bind_tools([lookup]).stream("Find it."))
    pieces = [c for c in chunks if c.tool_call_chunks]
    assert len(pieces) > 2  # the arguments arrive in several pieces
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.tool_calls == [
        {
            "name": "lookup",
            "args": {"query": "红色的圆 red circle", "limit": 3},
            "id": full.tool_calls[0]["id"],
            "type": "tool_call",
        }
    ]
    assert full.response_metadata["finish_reason"] == "tool_calls"


def test_a_cut_stream_raises_instead_of_passing_for_complete(
    llm: ChatSiliconVision, emu: LocalSiliconCloud
) -> None:
    emu.script_reply(chunks=PIECES)
    emu.cut_stream_after = 4
    received = []
    with pytest.raises(IncompleteStreamError) as info:
        for chunk in llm.stream("Count."):
            received.append(chunk.text)
    assert "".join(received) == "".join(PIECES[:3])
    assert info.value.partial_text == "".join(PIECES[:3])


def test_v3_stream_events_carry_reasoning_and_tool_calls(emu: LocalSiliconCloud) -> None:
    from langchain_tests.utils.stream_lifecycle import assert_valid_event_stream

    def lookup(query: str) -> str:
        """Look something up."""
        return query

    thinking = ChatSiliconVision(**emulator_params(model=THINKING))
    emu.script_reply(
        reasoning="I should look it up.",
        tool_calls=[{"name": "lookup", "arguments": {"query": "a fairly long query string"}}],
    )
    stream = thinking.bind_tools([lookup]).stream_events("Find it.", version="v3")
    events = list(stream)
    assert_valid_event_stream(events)
    output = stream.output
    blocks = output.content_blocks
    assert blocks[0] == {"type": "reasoning", "reasoning": "I should look it up.", "index": 0}
    assert [b["type"] for b in blocks] == ["reasoning", "tool_call"]
    assert output.tool_calls[0]["args"] == {"query": "a fairly long query string"}
