"""RAG pieces: the caption loader, content_from_documents and the embeddings."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_siliconvision import (
    CaptionLoadError,
    ChatSiliconVision,
    SiliconVisionCaptionLoader,
    SiliconVisionEmbeddings,
    content_from_documents,
)
from siliconvision import ImageInputError
from siliconvision.errors import CaptionFailureWarning
from siliconvision.testing import LocalSiliconCloud
from tests.imaging import make_image
from tests.langchain.support import EXAMPLE_IMAGES, INTERNVL, QWEN, emulator_params

COLOURS = {
    "a_red.png": "red",
    "b_green.png": "green",
    "c_blue.jpg": "blue",
    "d_yellow.png": "yellow",
}


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    folder = tmp_path / "gallery"
    (folder / "nested").mkdir(parents=True)
    for name, colour in COLOURS.items():
        fmt = "JPEG" if name.endswith(".jpg") else "PNG"
        target = folder / ("nested" if colour == "yellow" else "") / name
        target.write_bytes(make_image((900, 600), colour, fmt))
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return folder


@pytest.fixture
def llm(emu: LocalSiliconCloud) -> ChatSiliconVision:
    return ChatSiliconVision(**emulator_params(model=QWEN, detail="low"))


def test_loader_captions_each_image_lazily_in_file_order(
    llm: ChatSiliconVision, emu: LocalSiliconCloud, gallery: Path
) -> None:
    emu.chunk_delay = 0.0
    loader = SiliconVisionCaptionLoader([gallery], llm=llm, prompt="Caption it.", concurrency=2)
    documents = loader.lazy_load()
    assert emu.requests == []  # lazy: nothing sent yet
    docs = list(documents)
    expected = [
        gallery / "a_red.png",
        gallery / "b_green.png",
        gallery / "c_blue.jpg",
        gallery / "nested" / "d_yellow.png",
    ]
    assert [d.metadata["image_path"] for d in docs] == [str(p) for p in expected]
    for doc, colour in zip(docs, ["red", "green", "blue", "yellow"], strict=True):
        assert f"({colour})" in doc.page_content
        assert doc.metadata["source"] == doc.metadata["image_path"]
        assert (doc.metadata["width"], doc.metadata["height"]) == (672, 448)  # as sent
        assert doc.metadata["model"] == QWEN and doc.metadata["byte_size"] > 0
    assert [d.metadata["mime_type"] for d in docs] == [
        "image/png",
        "image/png",
        "image/jpeg",
        "image/png",
    ]
    assert len(emu.requests) == 4
    assert all(r.body["messages"][0]["content"][-1]["text"] == "Caption it." for r in emu.requests)


def test_loader_failures_keep_every_good_document(
    llm: ChatSiliconVision, emu: LocalSiliconCloud, gallery: Path
) -> None:
    """The issue's scenario: one bad file among good ones. By default load() returns the
    good documents and warns; with on_error="raise" the error carries them."""
    broken = gallery / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    files = [gallery / "a_red.png", broken, gallery / "b_green.png"]
    loader = SiliconVisionCaptionLoader(files, llm=llm, concurrency=1)
    with pytest.warns(CaptionFailureWarning, match=r"1 of 3 image\(s\).*broken\.png"):
        docs = loader.load()
    assert [Path(d.metadata["image_path"]).name for d in docs] == ["a_red.png", "b_green.png"]
    assert [Path(r.path).name for r in loader.failed] == ["broken.png"]
    assert len(emu.requests) == 2  # the two captions paid for are the two returned
    emu.clear()

    raising = SiliconVisionCaptionLoader(files, llm=llm, concurrency=1, on_error="raise")
    got: list[Document] = []
    with pytest.raises(CaptionLoadError, match=r"broken\.png") as info:
        for doc in raising.lazy_load():
            got.append(doc)
    assert [Path(d.metadata["image_path"]).name for d in got] == ["a_red.png", "b_green.png"]
    assert [Path(r.path).name for r in info.value.failed] == ["broken.png"]
    assert info.value.documents == got
    with pytest.raises(CaptionLoadError) as info:
        raising.load()
    assert [Path(d.metadata["image_path"]).name for d in info.value.documents] == [
        "a_red.png",
        "b_green.png",
    ]

    included = SiliconVisionCaptionLoader(files, llm=llm, on_error="include").load()
    assert [d.page_content == "" for d in included] == [False, True, False]
    assert "broken.png" in included[1].metadata["source"] and included[1].metadata["error"]


async def test_loader_async(llm: ChatSiliconVision, emu: LocalSiliconCloud, gallery: Path) -> None:
    loader = SiliconVisionCaptionLoader(gallery, llm=llm, concurrency=3, recursive=False)
    docs = [doc async for doc in loader.alazy_load()]
    assert [Path(d.metadata["image_path"]).name for d in docs] == [
        "a_red.png",
        "b_green.png",
        "c_blue.jpg",
    ]
    assert "(blue)" in docs[2].page_content


def test_loader_from_settings(emu: LocalSiliconCloud, tmp_path: Path) -> None:
    shutil.copy(EXAMPLE_IMAGES / "red_circle.png", tmp_path / "disc.png")
    loader = SiliconVisionCaptionLoader(
        tmp_path, model=INTERNVL, api_key=emu.api_key, base_url=emu.base_url, detail="high"
    )
    (doc,) = loader.load()
    assert doc.metadata["model"] == INTERNVL and "(red)" in doc.page_content
    assert emu.last_request is not None and emu.last_request.images[0].detail == "high"


def test_content_from_documents_keeps_document_order_and_puts_text_last(
    emu: LocalSiliconCloud, gallery: Path
) -> None:
    url = emu.serve_url("https://img.example.com/green.png", make_image((50, 50), "green"))
    documents = [
        Document(
            "a red image", metadata={"image_path": str(gallery / "a_red.png"), "detail": "low"}
        ),
        Document("a caption only"),
        Document("green", metadata={"image_url": url}),
        Document(
            "blue",
            metadata={
                "image_base64": base64.b64encode(make_image((40, 40), "blue")).decode(),
                "mime_type": "image/png",
            },
        ),
        Document(
            "", metadata={"image_base64": base64.b64encode(make_image((20, 20), "white")).decode()}
        ),
    ]
    blocks = content_from_documents(documents, "Which is greenest?", detail="high")
    assert [b["type"] for b in blocks] == ["image", "text", "image", "image", "image", "text"]
    assert blocks[1]["text"] == "a caption only" and blocks[-1]["text"] == "Which is greenest?"
    assert [b.get("extras", {}).get("detail") for b in blocks if b["type"] == "image"] == [
        "low",
        "high",
        "high",
        "high",
    ]
    qwen = ChatSiliconVision(**emulator_params(model=QWEN))
    qwen.invoke([HumanMessage(content=blocks)])
    request = emu.last_request
    assert request is not None
    assert [(i.color_name, i.detail) for i in request.images] == [
        ("red", "low"),
        ("green", "high"),
        ("blue", "high"),
        ("white", "high"),
    ]
    kinds = [p["type"] for p in request.body["messages"][0]["content"]]
    assert kinds == ["image_url", "text", "image_url", "image_url", "image_url", "text"]
    # InternVL wants images first: the chat model reorders, the images keep their order.
    ChatSiliconVision(**emulator_params(model=INTERNVL)).invoke([HumanMessage(content=blocks)])
    kinds = [p["type"] for p in emu.last_request.body["messages"][0]["content"]]  # type: ignore[union-attr]
    assert kinds == ["image_url"] * 4 + ["text", "text"]


def test_content_from_documents_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError):
        content_from_documents([Document("x", metadata={"image_path": str(tmp_path / "gone.png")})])


async def test_embeddings_and_retrieval_offline(emu: LocalSiliconCloud) -> None:
    embeddings = SiliconVisionEmbeddings(api_key=emu.api_key, base_url=emu.base_url, batch_size=2)
    vectors = embeddings.embed_documents(["a red circle", "a bar chart", "a sunset", "a receipt"])
    assert len(vectors) == 4 and all(len(v) == 1024 for v in vectors)
    assert [r.body["input"] for r in emu.requests] == [
        ["a red circle", "a bar chart"],
        ["a sunset", "a receipt"],
    ]
    store = InMemoryVectorStore(embeddings)
    await store.aadd_texts(["a red circle on white", "a blue bar chart", "an orange sunset"])
    (best,) = await store.asimilarity_search("red circle", k=1)
    assert best.page_content == "a red circle on white"
    assert embeddings.embed_query("x") == (await embeddings.aembed_query("x"))


def test_content_from_documents_leaves_non_web_image_urls_to_the_policy(
    llm: ChatSiliconVision, emu: LocalSiliconCloud, gallery: Path
) -> None:
    """image_path is the program's (the loader wrote it); a file: image_url is message
    content, read only inside the chat model's allowed_dirs."""
    url = (gallery / "a_red.png").as_uri()
    blocks = content_from_documents([Document("red", metadata={"image_url": url})], "?")
    assert blocks[0] == {"type": "image", "url": url}
    with pytest.raises(ImageInputError, match="is a file: URL"):
        llm.invoke([HumanMessage(content=blocks)])
    assert emu.requests == []
    opted = ChatSiliconVision(**emulator_params(model=QWEN, allowed_dirs=[gallery]))
    assert "(red)" in opted.invoke([HumanMessage(content=blocks)]).text
