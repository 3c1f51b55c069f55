"""RAG: the caption reader, the embeddings, and retrieved images reaching the model."""

from __future__ import annotations

import math
from importlib.metadata import version
from pathlib import Path

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.indices.multi_modal import MultiModalVectorStoreIndex
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import ImageDocument, ImageNode, TextNode

from llama_index_siliconvision import (
    CaptionError,
    SiliconVision,
    SiliconVisionCaptionReader,
    SiliconVisionEmbedding,
)
from siliconvision.errors import CaptionFailureWarning
from siliconvision.testing import LocalSiliconCloud
from tests.imaging import make_image

_LLAMA_INDEX_CORE = tuple(int(p) for p in version("llama-index-core").split(".")[:3])

COLOURS = ("green", "red", "blue")


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    folder = tmp_path / "gallery"
    (folder / "sub").mkdir(parents=True)
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "green.jpg").write_bytes(make_image((300, 300), "green", "JPEG"))
    (folder / "red.png").write_bytes(make_image((200, 100), "red"))
    (folder / "sub" / "blue.webp").write_bytes(make_image((90, 60), "blue", "WEBP"))
    return folder


@pytest.fixture
def embed(emu: LocalSiliconCloud) -> SiliconVisionEmbedding:
    return SiliconVisionEmbedding(api_key=emu.api_key, base_url=emu.base_url, max_retries=0)


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def test_reader_makes_image_documents_in_file_order_and_skips_failures(
    llm: SiliconVision, emu: LocalSiliconCloud, gallery: Path
) -> None:
    reader = SiliconVisionCaptionReader(llm, on_error="skip", detail="low")
    documents = reader.load_data(gallery)

    assert [Path(d.metadata["image_path"]).name for d in documents] == [
        "green.jpg",
        "red.png",
        "blue.webp",
    ]
    green = documents[0]
    assert isinstance(green, ImageDocument)
    assert green.image_path == str(gallery / "green.jpg")
    assert green.text.startswith("I see 1 image.\nImage 1: 300x300 JPEG, detail low")
    assert "(green)" in green.text
    assert {k: green.metadata[k] for k in ("mime_type", "width", "height", "model")} == {
        "mime_type": "image/jpeg",
        "width": 300,
        "height": 300,
        "model": "Qwen/Qwen2.5-VL-72B-Instruct",
    }
    assert documents[2].metadata["mime_type"] == "image/webp"
    assert [Path(f.path).name for f in reader.failures] == ["broken.png"]
    assert "not an image" in str(reader.failures[0].error)
    assert len(emu.requests) == 3  # the broken file never reached the server


def test_reader_returns_the_good_documents_with_a_warning_by_default(
    llm: SiliconVision, emu: LocalSiliconCloud, gallery: Path
) -> None:
    reader = SiliconVisionCaptionReader(llm)
    with pytest.warns(CaptionFailureWarning, match=r"1 of 4 image\(s\).*broken\.png"):
        documents = reader.load_data([gallery])
    assert [Path(d.metadata["image_path"]).stem for d in documents] == list(COLOURS)
    assert [Path(r.path).name for r in reader.failures] == ["broken.png"]
    assert len(emu.requests) == len(COLOURS)  # every caption paid for is returned


def test_reader_raises_after_the_batch_keeping_what_worked(
    llm: SiliconVision, gallery: Path
) -> None:
    reader = SiliconVisionCaptionReader(llm, on_error="raise")
    with pytest.raises(CaptionError, match=r"1 of 4 image\(s\) could not be captioned") as info:
        reader.load_data([gallery])
    assert "broken.png" in str(info.value)
    assert [Path(d.metadata["image_path"]).stem for d in info.value.documents] == list(COLOURS)


def test_reader_bounds_concurrency(
    llm: SiliconVision, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    paths = []
    for i in range(6):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(make_image(color="gray"))
    emu.latency = 0.1
    documents = SiliconVisionCaptionReader(llm, concurrency=2).load_data(paths)
    assert [d.metadata["file_name"] for d in documents] == [f"{i}.png" for i in range(6)]
    spans = [(r.received_at, r.finished_at or math.inf) for r in emu.requests]
    in_flight = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert in_flight == 2


async def test_reader_async(llm: SiliconVision, gallery: Path) -> None:
    reader = SiliconVisionCaptionReader(llm, on_error="skip")
    documents = await reader.aload_data(gallery)
    assert [Path(d.metadata["image_path"]).stem for d in documents] == list(COLOURS)
    assert len(reader.failures) == 1
    lazy = [d async for d in reader.alazy_load_data(gallery / "red.png")]
    assert [d.metadata["file_name"] for d in lazy] == ["red.png"]


def test_text_embeddings(embed: SiliconVisionEmbedding, emu: LocalSiliconCloud) -> None:
    red, also_red, blue = embed.get_text_embedding_batch(
        ["a red circle", "the circle is red", "blue squares everywhere"]
    )
    assert len(red) == 1024 and math.isclose(_cosine(red, red), 1.0, rel_tol=1e-6)
    assert _cosine(red, also_red) > _cosine(red, blue)
    assert embed.get_query_embedding("a red circle") == red
    assert len(embed.get_text_embedding("")) == 1024  # empty text still gets a vector
    req = emu.last_request
    assert req is not None and req.body["model"] == "BAAI/bge-m3"


def test_image_embedding_is_the_embedding_of_its_caption(
    embed: SiliconVisionEmbedding, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    path = tmp_path / "red.png"
    path.write_bytes(make_image(color="red"))
    caption = embed.caption(str(path))
    assert "(red)" in caption
    assert embed.get_image_embedding(str(path)) == embed.get_text_embedding(caption)
    chat = [r for r in emu.requests if r.path.endswith("/chat/completions")]
    assert chat[0].model == "Qwen/Qwen2.5-VL-72B-Instruct"
    assert chat[0].images[0].color_name == "red"


def _rag_engine(
    llm: SiliconVision, embed: SiliconVisionEmbedding, gallery: Path, **kwargs: object
) -> RetrieverQueryEngine:
    documents = SiliconVisionCaptionReader(llm, on_error="skip").load_data(gallery)
    index = VectorStoreIndex.from_documents(documents, embed_model=embed)
    return RetrieverQueryEngine.from_args(
        index.as_retriever(similarity_top_k=1), llm=llm, multimodal=True, **kwargs
    )


def test_multimodal_query_engine_sends_the_retrieved_image(
    llm: SiliconVision, embed: SiliconVisionEmbedding, emu: LocalSiliconCloud, gallery: Path
) -> None:
    engine = _rag_engine(llm, embed, gallery)
    emu.clear()
    response = engine.query("Which picture is red?")

    (node,) = response.source_nodes
    assert isinstance(node.node, ImageNode) and node.node.metadata["file_name"] == "red.png"
    (req,) = [r for r in emu.requests if r.path.endswith("/chat/completions")]
    assert [(i.width, i.height, i.color_name) for i in req.images] == [(200, 100, "red")]
    assert "(red)" in str(response)
    user_text = " ".join(
        p["text"] for p in req.body["messages"][-1]["content"] if p["type"] == "text"
    )
    assert "Which picture is red?" in user_text


async def test_multimodal_query_engine_async_and_streaming(
    llm: SiliconVision, embed: SiliconVisionEmbedding, emu: LocalSiliconCloud, gallery: Path
) -> None:
    engine = _rag_engine(llm, embed, gallery)
    response = await engine.aquery("Show me the blue one.")
    assert response.source_nodes[0].node.metadata["file_name"] == "blue.webp"
    assert "(blue)" in str(response)

    streaming = _rag_engine(llm, embed, gallery, streaming=True)
    answer = streaming.query("Show me the green one.")
    tokens = list(answer.response_gen)  # type: ignore[union-attr]
    assert "(green)" in "".join(tokens)
    last = emu.last_request
    assert last is not None and last.stream and last.images[0].color_name == "green"
    if _LLAMA_INDEX_CORE >= (0, 14, 25):
        # earlier releases' refine synthesizer gathers the streamed tokens into one answer
        assert len(tokens) > 3


def test_multimodal_vector_store_index_retrieval_to_image_parts(
    llm: SiliconVision, embed: SiliconVisionEmbedding, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    nodes: list[ImageNode | TextNode] = []
    for colour in ("red", "blue", "yellow"):
        path = tmp_path / f"{colour}.png"
        path.write_bytes(make_image(color=colour))
        nodes.append(ImageNode(image_path=str(path), metadata={"file_name": path.name}))
    nodes.append(TextNode(text="Bananas are yellow."))
    index = MultiModalVectorStoreIndex(nodes, embed_model=embed, image_embed_model=embed)
    retriever = index.as_retriever(similarity_top_k=1, image_similarity_top_k=2)

    ranked = retriever.text_to_image_retrieve("something yellow")
    assert Path(str(ranked[0].node.image_path)).stem == "yellow"  # type: ignore[attr-defined]
    emu.clear()
    response = llm.complete("Describe these.", image_documents=[r.node for r in ranked])
    assert [i.color_name for i in emu.requests[0].images] == [
        Path(str(r.node.image_path)).stem  # type: ignore[attr-defined]
        for r in ranked
    ]
    assert response.text.startswith("I see 2 images.")

    engine = RetrieverQueryEngine.from_args(retriever, llm=llm, multimodal=True)
    emu.clear()
    answer = engine.query("something yellow")
    kinds = {type(n.node).__name__ for n in answer.source_nodes}
    assert kinds == {"ImageNode", "TextNode"}
    (req,) = [r for r in emu.requests if r.path.endswith("/chat/completions")]
    assert req.images[0].color_name == "yellow"  # the best image first
    assert len(req.images) == 2  # image_similarity_top_k
    assert "Bananas are yellow." in str(req.body["messages"])


def test_multimodal_chat_engine(
    llm: SiliconVision, embed: SiliconVisionEmbedding, emu: LocalSiliconCloud, tmp_path: Path
) -> None:
    path = tmp_path / "purple.png"
    path.write_bytes(make_image(color="purple"))
    index = MultiModalVectorStoreIndex(
        [ImageNode(image_path=str(path), metadata={"file_name": path.name})],
        embed_model=embed,
        image_embed_model=embed,
    )
    engine = index.as_chat_engine(chat_mode="context", llm=llm, image_similarity_top_k=1)
    emu.clear()
    reply = engine.chat("What colour is the picture?")
    assert "(purple)" in str(reply)
    assert emu.requests[-1].images[0].color_name == "purple"
