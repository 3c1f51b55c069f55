"""LangChain: retrieval over images, by their captions.

    python examples/langchain_rag.py

1. ``SiliconVisionCaptionLoader`` captions every image in ``examples/images`` (a few at a
   time) into ``Document``s;
2. the captions are embedded (``SiliconVisionEmbeddings``, BAAI/bge-m3) into an
   in-memory vector store;
3. a question retrieves the best-matching images, and ``content_from_documents`` sends
   those images themselves (not only their captions) to the vision model with it.

With SILICONFLOW_API_KEY (or SILICONCLOUD_API_KEY) set, this uses SiliconCloud.
Without a key it runs against LocalSiliconCloud, the local emulator: its "captions"
describe size, format and dominant colour, so ask about colours.
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.messages import HumanMessage
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_siliconvision import (
    ChatSiliconVision,
    SiliconVisionCaptionLoader,
    SiliconVisionEmbeddings,
    content_from_documents,
)
from siliconvision.client import resolve_api_key
from siliconvision.testing import LocalSiliconCloud

MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
IMAGES = Path(__file__).parent / "images"
QUESTION = "Which picture has a red circle in it, and where is the circle?"


def run(llm: ChatSiliconVision, embeddings: SiliconVisionEmbeddings) -> str:
    loader = SiliconVisionCaptionLoader([IMAGES], llm=llm, detail="low", concurrency=4)
    documents = loader.load()
    for doc in documents:
        caption = doc.page_content.replace("\n", " ")
        print(f"captioned {Path(doc.metadata['image_path']).name}: {caption[:90]}")

    store = InMemoryVectorStore(embeddings)
    store.add_documents(documents)
    retrieved = store.as_retriever(search_kwargs={"k": 1}).invoke(QUESTION)
    print(
        f"\nretrieved for {QUESTION!r}: {[Path(d.metadata['image_path']).name for d in retrieved]}"
    )

    content = content_from_documents(retrieved, QUESTION, detail="high")
    answer = str(llm.invoke([HumanMessage(content=content)]).text)
    print(f"\nAnswer: {answer}")
    return answer


def main() -> None:
    if resolve_api_key() is not None:
        print(f"Using SiliconCloud ({MODEL}, BAAI/bge-m3).\n")
        run(ChatSiliconVision(model=MODEL, max_tokens=300), SiliconVisionEmbeddings())
    else:
        print("No SILICONFLOW_API_KEY set: using the local emulator (LocalSiliconCloud).\n")
        with LocalSiliconCloud() as emu:
            run(
                ChatSiliconVision(model=MODEL, base_url=emu.base_url, api_key=emu.api_key),
                SiliconVisionEmbeddings(base_url=emu.base_url, api_key=emu.api_key),
            )


if __name__ == "__main__":
    main()
