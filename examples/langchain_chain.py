"""LangChain: an LCEL chain asking one question about several images, streamed token by token.

    python examples/langchain_chain.py

With SILICONFLOW_API_KEY (or SILICONCLOUD_API_KEY) set, this asks SiliconCloud.
Without a key it runs against LocalSiliconCloud, the built-in local emulator,
whose answer describes the images it received (size, format, colour) instead of
understanding them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda

from langchain_siliconvision import ChatSiliconVision, image_block
from siliconvision.client import resolve_api_key
from siliconvision.testing import LocalSiliconCloud

MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
IMAGES = Path(__file__).parent / "images"
SYSTEM = "You compare images carefully. Answer in at most three sentences."


class PrintTokens(BaseCallbackHandler):
    """Prints every token the moment the model streams it."""

    def __init__(self) -> None:
        self.tokens = 0

    def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        if isinstance(token, str) and token:
            self.tokens += 1
            print(token, end="", flush=True)


def to_messages(inputs: dict[str, Any]) -> list[BaseMessage]:
    """The prompt: the images (downsized for the model when sent), then the question."""
    content: list[str | dict[str, Any]] = [
        dict(image_block(path, detail=inputs.get("detail"))) for path in inputs["images"]
    ]
    content.append({"type": "text", "text": inputs["question"]})
    return [SystemMessage(SYSTEM), HumanMessage(content=content)]


def build_chain(llm: ChatSiliconVision) -> Runnable[dict[str, Any], str]:
    return RunnableLambda(to_messages) | llm | StrOutputParser()


def run(llm: ChatSiliconVision) -> str:
    chain = build_chain(llm)
    printer = PrintTokens()
    answer = chain.invoke(
        {
            "images": [IMAGES / "bar_chart.png", IMAGES / "receipt.png", IMAGES / "sunset.jpg"],
            "question": "Which quarter sold most, what is the receipt total, "
            "and what time of day is the photo?",
            "detail": "low",
        },
        config={"callbacks": [printer]},
    )
    print(f"\n\n[{printer.tokens} tokens streamed; {len(answer)} characters]")
    return answer


def main() -> None:
    if resolve_api_key() is not None:
        print(f"Using SiliconCloud ({MODEL}).\n")
        run(ChatSiliconVision(model=MODEL, streaming=True, max_tokens=300))
    else:
        print(
            "No SILICONFLOW_API_KEY set: using the local emulator (LocalSiliconCloud).\n"
            "It describes the images it received instead of answering.\n"
        )
        with LocalSiliconCloud() as emu:
            llm = ChatSiliconVision(
                model=MODEL, base_url=emu.base_url, api_key=emu.api_key, streaming=True
            )
            run(llm)


if __name__ == "__main__":
    main()
