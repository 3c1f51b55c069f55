"""LlamaIndex: multimodal RAG over a folder of images.

    python examples/llama_index_rag.py

1. ``SiliconVisionCaptionReader`` captions every image (bounded concurrency) into
   ``ImageDocument``s: caption text + the image's path;
2. a ``VectorStoreIndex`` embeds the captions with ``SiliconVisionEmbedding``
   (SiliconCloud's ``BAAI/bge-m3``);
3. ``RetrieverQueryEngine.from_args(..., multimodal=True)`` retrieves the best
   images for a question and sends them, as images, to the vision model, whose answer
   is streamed.

With SILICONFLOW_API_KEY set this uses SiliconCloud; without it, the local emulator
(captions and answers then describe sizes and colours; its embeddings are a
deterministic word hash, so retrieval still works on the caption words).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llama_index.core import VectorStoreIndex
from llama_index.core.base.response.schema import StreamingResponse
from llama_index.core.query_engine import RetrieverQueryEngine

from llama_index_siliconvision import (
    SiliconVision,
    SiliconVisionCaptionReader,
    SiliconVisionEmbedding,
)
from siliconvision.client import resolve_api_key
from siliconvision.testing import LocalSiliconCloud

MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
IMAGES = Path(__file__).parent / "images"
QUESTION = "Which picture shows a red circle, and what else is in it?"


@contextmanager
def models() -> Iterator[tuple[SiliconVision, SiliconVisionEmbedding]]:
    """SiliconCloud when a key is set, else the local emulator."""
    if resolve_api_key() is not None:
        print(f"Using SiliconCloud ({MODEL}, BAAI/bge-m3).\n")
        yield SiliconVision(model=MODEL), SiliconVisionEmbedding()
        return
    print("No SILICONFLOW_API_KEY set: using the local emulator (LocalSiliconCloud).\n")
    with LocalSiliconCloud() as emu:
        yield (
            SiliconVision(model=MODEL, api_key=emu.api_key, base_url=emu.base_url),
            SiliconVisionEmbedding(api_key=emu.api_key, base_url=emu.base_url),
        )


def run(llm: SiliconVision, embed: SiliconVisionEmbedding, images: Path = IMAGES) -> str:
    documents = SiliconVisionCaptionReader(llm, concurrency=4).load_data(images)
    for document in documents:
        caption = " ".join(document.text.split())
        print(f"captioned {document.metadata['file_name']}: {caption[:100]}")

    index = VectorStoreIndex.from_documents(documents, embed_model=embed)
    engine = RetrieverQueryEngine.from_args(
        index.as_retriever(similarity_top_k=1), llm=llm, multimodal=True, streaming=True
    )
    print(f"\nQ: {QUESTION}\nA: ", end="")
    response = engine.query(QUESTION)
    assert isinstance(response, StreamingResponse)  # streaming=True above
    answer = ""
    for token in response.response_gen:
        print(token, end="", flush=True)
        answer += token
    print()
    sources = [n.node.metadata["file_name"] for n in response.source_nodes]
    print(f"\n[answered from: {', '.join(sources)}]")
    return answer


def main() -> str:
    with models() as (llm, embed):
        return run(llm, embed)


if __name__ == "__main__":
    main()
