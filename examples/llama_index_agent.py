"""LlamaIndex: a FunctionAgent that looks at images with the ``ask_image`` tool.

    python examples/llama_index_agent.py

With SILICONFLOW_API_KEY set, SiliconCloud's model decides when to call the tool.
Without a key the local emulator stands in, and because an emulator cannot decide
anything, this script plays the model's two decisions itself (call ``ask_image``,
then answer from its result) with ``emu.set_responder``. The tool's own question
about the image still goes to the emulator, which describes the image it received.

The tool only reads files under ``allowed_dirs`` and refuses loopback/private URLs:
the agent's model chooses its arguments, so they are untrusted input.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llama_index.core.agent.workflow import AgentOutput, FunctionAgent, ToolCall, ToolCallResult

from llama_index_siliconvision import SiliconVision, SiliconVisionToolSpec
from siliconvision.client import resolve_api_key
from siliconvision.testing import LocalSiliconCloud, ReceivedRequest, ScriptedReply

MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
IMAGES = Path(__file__).parent / "images"
QUESTION = "What is the total on receipt.png?"


def scripted_model(request: ReceivedRequest) -> ScriptedReply | None:
    """The agent model's decisions, played by this script when offline."""
    if "tools" not in request.body:
        return None  # the tool asking about the image: the emulator describes it
    last = request.body["messages"][-1]
    if last["role"] == "tool":
        return ScriptedReply(content=f"Here is what the image tool found:\n{last['content']}")
    arguments = {"image": "receipt.png", "question": "What is the total on this receipt?"}
    return ScriptedReply(tool_calls=[{"name": "ask_image", "arguments": arguments}])


@contextmanager
def vision_llm() -> Iterator[SiliconVision]:
    """SiliconCloud when a key is set, else the local emulator with a scripted model."""
    if resolve_api_key() is not None:
        print(f"Using SiliconCloud ({MODEL}).\n")
        yield SiliconVision(model=MODEL)
        return
    print(
        "No SILICONFLOW_API_KEY set: using the local emulator (LocalSiliconCloud); "
        "the agent's decisions are scripted.\n"
    )
    with LocalSiliconCloud() as emu:
        emu.set_responder(scripted_model)
        yield SiliconVision(model=MODEL, api_key=emu.api_key, base_url=emu.base_url)


async def run(llm: SiliconVision, images: Path = IMAGES) -> str:
    tools = SiliconVisionToolSpec(llm, allowed_dirs=[images]).to_tool_list()
    agent = FunctionAgent(
        tools=list(tools),
        llm=llm,
        system_prompt="You answer questions about local images with the ask_image tool.",
    )
    handler = agent.run(user_msg=QUESTION)
    async for event in handler.stream_events():
        if isinstance(event, ToolCall) and not isinstance(event, ToolCallResult):
            print(f"-> {event.tool_name}({json.dumps(event.tool_kwargs)})")
        elif isinstance(event, ToolCallResult):
            print(f"<- {event.tool_output.content[:120]!r}")
    result: AgentOutput = await handler
    answer = str(result.response.content)
    print(f"\n{answer}")
    return answer


def main() -> str:
    with vision_llm() as llm:
        return asyncio.run(run(llm))


if __name__ == "__main__":
    main()
