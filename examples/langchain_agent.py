"""LangChain: an agent (langchain.agents.create_agent, on LangGraph) that looks at images
through the ``ask_image`` tool.

    python examples/langchain_agent.py

With SILICONFLOW_API_KEY (or SILICONCLOUD_API_KEY) set, both the agent and the tool
use SiliconCloud. Without a key everything runs against LocalSiliconCloud, the local
emulator. The emulator cannot *decide* to call a tool, so offline a tiny scripted
policy (``offline_agent_policy`` below) plays the agent model's part; the tool's own
request is answered by the emulator, which describes the image it received.

The tool only reads files inside ``allowed_dirs`` and refuses URLs to private
addresses: the agent's model chooses the arguments, so they are untrusted.
"""

from __future__ import annotations

import re
from pathlib import Path

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from langchain_siliconvision import ChatSiliconVision, SiliconVisionTool
from siliconvision.client import resolve_api_key
from siliconvision.testing import LocalSiliconCloud, ReceivedRequest, ScriptedReply

MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
IMAGES = Path(__file__).parent / "images"
QUESTION = "Look at receipt.png with the ask_image tool: what is the total?"
SYSTEM = "You help with images. Use the ask_image tool to look at an image before answering."


def offline_agent_policy(request: ReceivedRequest) -> ScriptedReply | None:
    """Offline stand-in for the agent model's decisions (the emulator's responder).

    Requests with tools come from the agent: first call ``ask_image`` on the image
    named in the user's question, then answer with what the tool returned.
    Requests without tools are the tool's own vision calls: the emulator answers.
    """
    body = request.body
    if not body.get("tools"):
        return None
    messages = body["messages"]
    results = [m["content"] for m in messages if m["role"] == "tool"]
    if results:
        return ScriptedReply(content=f"The vision tool says:\n{results[-1]}")
    question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    image = re.search(r"[\w./-]+\.(?:png|jpe?g|webp|gif)", str(question))
    arguments = {"image": image.group() if image else "", "question": str(question)}
    return ScriptedReply(tool_calls=[{"name": "ask_image", "arguments": arguments}])


def run(llm: ChatSiliconVision) -> str:
    tool = SiliconVisionTool(llm=llm, allowed_dirs=[IMAGES], detail="high")
    agent = create_agent(llm, tools=[tool], system_prompt=SYSTEM)
    result = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    for message in result["messages"]:
        if isinstance(message, AIMessage) and message.tool_calls:
            for call in message.tool_calls:
                print(f"-> agent calls {call['name']}({call['args']})")
        elif isinstance(message, ToolMessage):
            print(f"<- {message.name}: {message.content}\n")
    answer = str(result["messages"][-1].text)
    print(f"Agent: {answer}")
    return answer


def main() -> None:
    if resolve_api_key() is not None:
        print(f"Using SiliconCloud ({MODEL}).\n")
        run(ChatSiliconVision(model=MODEL, max_tokens=400))
    else:
        print(
            "No SILICONFLOW_API_KEY set: using the local emulator (LocalSiliconCloud),\n"
            "with a scripted policy in place of the agent model's decisions.\n"
        )
        with LocalSiliconCloud() as emu:
            emu.set_responder(offline_agent_policy)
            run(ChatSiliconVision(model=MODEL, base_url=emu.base_url, api_key=emu.api_key))


if __name__ == "__main__":
    main()
