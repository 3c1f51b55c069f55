"""Quickstart: one question about several images, the answer streamed as it arrives.

    python examples/quickstart.py

With SILICONFLOW_API_KEY (or SILICONCLOUD_API_KEY) set, this asks SiliconCloud
(SILICONFLOW_BASE_URL picks the region; default https://api.siliconflow.cn/v1).
Without a key it runs against LocalSiliconCloud, the built-in local emulator,
whose answer describes the images it received instead of understanding them.
"""

from __future__ import annotations

from pathlib import Path

from siliconvision.client import SiliconVisionClient, resolve_api_key
from siliconvision.testing import LocalSiliconCloud

MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
IMAGES = Path(__file__).parent / "images"
QUESTION = "Which quarter sold most, what is the receipt total, and what colour is the disc?"


def ask(client: SiliconVisionClient) -> None:
    images = [IMAGES / "bar_chart.png", IMAGES / "receipt.png", IMAGES / "red_circle.png"]
    messages = client.ask_messages(images, QUESTION)  # images, then the question
    with client.stream(messages, max_tokens=300) as stream:
        for delta in stream:
            print(delta.content or "", end="", flush=True)
    usage = stream.result().usage
    if usage is not None:
        print(f"\n\n[{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens]")


def main() -> None:
    if resolve_api_key() is not None:
        print(f"Using SiliconCloud ({MODEL}).\n")
        with SiliconVisionClient(model=MODEL) as client:
            ask(client)
    else:
        print(
            "No SILICONFLOW_API_KEY set: using the local emulator (LocalSiliconCloud).\n"
            "It describes the images it received instead of answering.\n"
        )
        with (
            LocalSiliconCloud() as emu,
            SiliconVisionClient(model=MODEL, base_url=emu.base_url, api_key=emu.api_key) as client,
        ):
            ask(client)


if __name__ == "__main__":
    main()
