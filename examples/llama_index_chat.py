"""LlamaIndex: one chat message with several images, the answer streamed; then the
older ``complete(prompt, image_documents=[...])`` style.

    python examples/llama_index_chat.py

With SILICONFLOW_API_KEY (or SILICONCLOUD_API_KEY) set, this asks SiliconCloud.
Without a key it runs against LocalSiliconCloud, the built-in local emulator, whose
answers describe the images it received (size, format, colour) instead of
understanding them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
from llama_index.core.schema import ImageDocument
from PIL import Image, ImageDraw

from llama_index_siliconvision import SiliconVision
from siliconvision.client import resolve_api_key
from siliconvision.testing import LocalSiliconCloud

MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
SAMPLES = ("bar_chart.png", "receipt.png", "red_circle.png", "sunset.jpg")


@contextmanager
def sample_images() -> Iterator[Path]:
    """``examples/images``, or freshly drawn stand-ins if it is missing."""
    folder = Path(__file__).parent / "images"
    if all((folder / name).is_file() for name in SAMPLES):
        yield folder
        return
    with tempfile.TemporaryDirectory() as tmp:
        colours = ("steelblue", "white", "red", "orange")
        for name, colour in zip(SAMPLES, colours, strict=True):
            image = Image.new("RGB", (256, 256), "white")
            ImageDraw.Draw(image).ellipse((16, 16, 240, 240), fill=colour)
            image.save(Path(tmp) / name)
        yield Path(tmp)


@contextmanager
def vision_llm() -> Iterator[SiliconVision]:
    """SiliconCloud when a key is set, else the local emulator."""
    if resolve_api_key() is not None:
        print(f"Using SiliconCloud ({MODEL}).\n")
        yield SiliconVision(model=MODEL, max_tokens=400)
        return
    print("No SILICONFLOW_API_KEY set: using the local emulator (LocalSiliconCloud).\n")
    with LocalSiliconCloud() as emu:
        yield SiliconVision(model=MODEL, api_key=emu.api_key, base_url=emu.base_url)


def run(llm: SiliconVision, images: Path) -> tuple[str, str]:
    # 1. Several images in one message, each with its own detail; streamed.
    message = ChatMessage(
        blocks=[
            ImageBlock(path=images / "bar_chart.png"),
            ImageBlock(path=images / "receipt.png", detail="high"),  # small print: high
            ImageBlock(path=images / "red_circle.png", detail="low"),  # a disc: low is plenty
            TextBlock(
                text="Which quarter sold most, what is the receipt total, and what "
                "colour is the disc?"
            ),
        ]
    )
    last = None
    for last in llm.stream_chat([message]):
        print(last.delta, end="", flush=True)
    assert last is not None
    usage = last.additional_kwargs
    print(
        f"\n\n[{usage.get('prompt_tokens')} prompt + "
        f"{usage.get('completion_tokens')} completion tokens]\n"
    )

    # 2. The multimodal "complete" style: a prompt plus image documents, in rank order.
    documents = [ImageDocument(image_path=str(images / "sunset.jpg"))]
    completion = llm.complete("Describe this photo in one sentence.", image_documents=documents)
    print(completion.text)
    return last.message.content or "", completion.text


def main() -> tuple[str, str]:
    with sample_images() as images, vision_llm() as llm:
        return run(llm, images)


if __name__ == "__main__":
    main()
