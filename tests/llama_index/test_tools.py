"""Tool calling, and agents whose model decisions are scripted by the test.

The emulator never guesses what a test wants: each test scripts the model's replies
(``emu.script_reply`` / ``emu.set_responder``), and the assertions check what the
emulator received.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, ToolCallBlock
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from llama_index_siliconvision import SiliconVision, SiliconVisionToolSpec
from siliconvision.testing import LocalSiliconCloud, ReceivedRequest, ScriptedReply
from siliconvision.wire import ParameterError
from tests.imaging import make_image

from .conftest import INTERNVL

MakeLLM = Callable[..., SiliconVision]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


ADD = FunctionTool.from_defaults(fn=add)


def test_chat_with_tools_sends_tools_and_reads_calls(
    llm: SiliconVision, emu: LocalSiliconCloud
) -> None:
    emu.script_reply(tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}, "id": "call_a"}])
    history = [ChatMessage(content="Be exact.", role="system")]
    response = llm.chat_with_tools([ADD], user_msg="2+3?", chat_history=history)
    assert len(history) == 1  # the caller's list is not modified
    req = emu.last_request
    assert req is not None
    assert req.body["tools"] == [ADD.metadata.to_openai_tool(skip_length_check=True)]
    assert "tool_choice" not in req.body and "parallel_tool_calls" not in req.body
    assert [m["role"] for m in req.body["messages"]] == ["system", "user"]
    assert llm.get_tool_calls_from_response(response) == [
        ToolSelection(tool_id="call_a", tool_name="add", tool_kwargs={"a": 2, "b": 3})
    ]
    assert response.additional_kwargs["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"tool_required": True}, "required"),
        ({"tool_choice": "add"}, {"type": "function", "function": {"name": "add"}}),
        ({"tool_choice": "none"}, "none"),
    ],
)
def test_tool_choice(
    llm: SiliconVision, emu: LocalSiliconCloud, kwargs: dict[str, Any], expected: object
) -> None:
    emu.script_reply("no tool")
    llm.chat_with_tools([ADD], user_msg="2+3?", **kwargs)
    req = emu.last_request
    assert req is not None and req.body["tool_choice"] == expected


def test_parallel_tool_calls_only_when_allowed(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    calls = [{"name": "add", "arguments": {"a": i, "b": i}} for i in (1, 2)]
    emu.script_reply(tool_calls=calls)
    single = llm.chat_with_tools([ADD], user_msg="twice")
    assert [s.tool_kwargs for s in llm.get_tool_calls_from_response(single)] == [{"a": 1, "b": 1}]
    emu.script_reply(tool_calls=calls)
    both = llm.chat_with_tools([ADD], user_msg="twice", allow_parallel_tool_calls=True)
    assert len(llm.get_tool_calls_from_response(both)) == 2


def test_no_tool_call(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    emu.script_reply("I will not call anything.")
    response = llm.chat_with_tools([ADD], user_msg="hello")
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="at least one tool call"):
        llm.get_tool_calls_from_response(response)


def test_predict_and_call_runs_the_tool(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    emu.script_reply(tool_calls=[{"name": "add", "arguments": {"a": 20, "b": 22}}])
    output = llm.predict_and_call([ADD], user_msg="20+22?")
    assert output.response == "42"
    assert output.sources[0].tool_name == "add"


async def test_streamed_tool_calls_assemble_across_chunks(
    llm: SiliconVision, emu: LocalSiliconCloud
) -> None:
    arguments = {"a": 123456789, "b": 987654321}  # long enough to arrive in pieces
    emu.script_reply(tool_calls=[{"name": "add", "arguments": arguments, "id": "call_s"}])
    responses = [r async for r in await llm.astream_chat_with_tools([ADD], user_msg="sum")]
    partial = [
        b.tool_kwargs for r in responses for b in r.message.blocks if isinstance(b, ToolCallBlock)
    ]
    assert len({str(p) for p in partial}) > 2  # the arguments grew chunk by chunk
    assert llm.get_tool_calls_from_response(responses[-1]) == [
        ToolSelection(tool_id="call_s", tool_name="add", tool_kwargs=arguments)
    ]


class Colour(BaseModel):
    """The main colour of an image."""

    name: str
    hex_code: str


def test_structured_predict_through_tool_calling(
    llm: SiliconVision, emu: LocalSiliconCloud
) -> None:
    emu.script_reply(
        tool_calls=[{"name": "Colour", "arguments": {"name": "red", "hex_code": "#ff0000"}}]
    )
    colour = llm.structured_predict(Colour, PromptTemplate("Colour of {thing}?"), thing="a tomato")
    assert colour == Colour(name="red", hex_code="#ff0000")
    req = emu.last_request
    assert req is not None
    assert req.body["tools"][0]["function"]["name"] == "Colour"
    assert req.body["messages"][-1]["content"] == [{"type": "text", "text": "Colour of a tomato?"}]


def test_a_model_without_tools(make_llm: MakeLLM, emu: LocalSiliconCloud) -> None:
    llm = make_llm(model=INTERNVL)
    assert llm.metadata.is_function_calling_model is False
    with pytest.raises(ParameterError, match="tool"):
        llm.chat_with_tools([ADD], user_msg="2+3?")
    assert emu.requests == []


def _agent_responder(image: str) -> Callable[[ReceivedRequest], ScriptedReply | None]:
    """The test's script for the agent's model: call ask_image, then answer from it."""

    def respond(req: ReceivedRequest) -> ScriptedReply | None:
        if "tools" not in req.body:
            return None  # the tool's own question about the image: the default description
        last = req.body["messages"][-1]
        if last["role"] == "tool":
            return ScriptedReply(content=f"The tool says: {last['content']}")
        question = {"image": image, "question": "What colour is it?"}
        return ScriptedReply(tool_calls=[{"name": "ask_image", "arguments": question}])

    return respond


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_with_the_image_tool(
    llm: SiliconVision, emu: LocalSiliconCloud, tmp_path: Path, streaming: bool
) -> None:
    (tmp_path / "red.png").write_bytes(make_image((300, 200), "red"))
    spec = SiliconVisionToolSpec(llm, allowed_dirs=[tmp_path])
    agent = FunctionAgent(tools=spec.to_tool_list(), llm=llm, streaming=streaming)
    emu.set_responder(_agent_responder("red.png"))

    result = await agent.run(user_msg="What colour is red.png?")

    first, inner, last = emu.requests
    assert first.body["tools"][0]["function"]["name"] == "ask_image"
    assert "tools" not in inner.body
    assert [(i.width, i.height, i.color_name) for i in inner.images] == [(300, 200, "red")]
    assert [m["role"] for m in last.body["messages"]][-2:] == ["assistant", "tool"]
    assert "dominant colour #ff0000 (red)" in str(result.response.content)
    assert result.tool_calls[0].tool_name == "ask_image"


async def test_function_agent_refusal_is_readable_tool_output(
    llm: SiliconVision, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    spec = SiliconVisionToolSpec(llm, allowed_dirs=[tmp_path])
    agent = FunctionAgent(tools=spec.to_tool_list(), llm=llm)
    emu.set_responder(_agent_responder("/etc/passwd"))
    result = await agent.run(user_msg="Look at /etc/passwd")
    assert len(emu.requests) == 2  # no request for the refused image
    assert "Cannot answer: refused path /etc/passwd" in str(result.response.content)
    assert result.tool_calls[0].tool_output.is_error is False


async def test_images_returned_by_a_tool_reach_the_model(
    llm: SiliconVision, emu: LocalSiliconCloud
) -> None:
    def snapshot() -> ImageBlock:
        """Take a photo of the scene."""
        return ImageBlock(image=make_image((120, 80), "green"))

    def respond(req: ReceivedRequest) -> ScriptedReply:
        if req.images:
            seen = req.images[0]
            return ScriptedReply(
                content=f"The photo is {seen.width}x{seen.height} {seen.color_name}"
            )
        return ScriptedReply(tool_calls=[{"name": "snapshot", "arguments": {}}])

    emu.set_responder(respond)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=snapshot)], llm=llm)
    result = await agent.run(user_msg="What do you see?")
    assert str(result.response.content) == "The photo is 120x80 green"
    messages = emu.requests[-1].body["messages"]
    assert [m["role"] for m in messages][-3:] == ["assistant", "tool", "user"]
    assert emu.requests[-1].images[0].message_index == len(messages) - 1


async def test_react_agent_with_the_image_tool(
    llm: SiliconVision, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    (tmp_path / "blue.png").write_bytes(make_image(color="blue"))
    spec = SiliconVisionToolSpec(llm, allowed_dirs=[tmp_path])
    agent = ReActAgent(tools=spec.to_tool_list(), llm=llm)

    def respond(req: ReceivedRequest) -> ScriptedReply | None:
        if req.images:
            return None  # the tool's question about the image
        last = req.body["messages"][-1]["content"]
        if "Observation:" in str(last):
            return ScriptedReply(
                content="Thought: I can answer without using any more tools.\nAnswer: It is blue."
            )
        return ScriptedReply(
            content="Thought: I need to look.\nAction: ask_image\nAction Input: "
            '{"image": "blue.png", "question": "What colour is it?"}'
        )

    emu.set_responder(respond)
    result = await agent.run(user_msg="What colour is blue.png?")
    assert str(result.response.content) == "It is blue."
    assert [i.color_name for r in emu.requests for i in r.images] == ["blue"]
