"""``content_from_documents``: retrieved image ``Document``s as message content blocks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.documents import Document

from siliconvision.catalog import Detail, as_detail
from siliconvision.images import Base64Image, is_data_uri, is_image_url

from ._images import image_block

__all__ = ["content_from_documents"]


def _image_from_document(document: Document, detail: Detail | None) -> Any:
    metadata = document.metadata
    own = metadata.get("detail")
    chosen = as_detail(own) or detail
    if metadata.get("image_path"):
        return image_block(str(metadata["image_path"]), detail=chosen)
    if metadata.get("image_url"):
        url = str(metadata["image_url"])
        if is_image_url(url) or is_data_uri(url):
            return image_block(url, detail=chosen)
        # Not a web URL (a file: URL, a path): message content, for the chat model's
        # policy to decide (a local file only inside its allowed_dirs).
        url_block: dict[str, Any] = {"type": "image", "url": url}
        if chosen is not None:
            url_block["extras"] = {"detail": chosen}
        return url_block
    data = metadata.get("image_base64")
    if not isinstance(data, str) or not data:
        return None
    mime = metadata.get("mime_type")
    if isinstance(mime, str) and mime.startswith("image/"):
        block: dict[str, Any] = {"type": "image", "base64": data, "mime_type": mime}
        if chosen is not None:
            block["extras"] = {"detail": chosen}
        return block
    return image_block(Base64Image(data), detail=chosen)  # the core sniffs its format


def content_from_documents(
    documents: Iterable[Document],
    text: str | None = None,
    *,
    detail: Detail | None = None,
) -> list[str | dict[str, Any]]:
    """Content blocks for a ``HumanMessage``: one per document, in document order, then ``text``.

    A document carrying an image (metadata ``image_path``, ``image_url``, or
    ``image_base64`` with ``mime_type``; checked in that order) becomes a standard
    image block (``detail``: the document's ``metadata["detail"]``, else ``detail``);
    any other document becomes a text block of its ``page_content``. An ``image_path``
    is the program's own choice (the loader wrote it) and is read here; an
    ``image_url`` that is not http(s) or ``data:`` is left as a ``url`` block, which the
    chat model reads only inside its ``allowed_dirs``. Models that want
    images before text (InternVL) get them reordered by
    :class:`~langchain_siliconvision.ChatSiliconVision` (``image_order="auto"``).
    A missing or unreadable image file raises
    :class:`~siliconvision.errors.ImageInputError`.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_siliconvision import content_from_documents
        >>> docs = retriever.invoke("red warning lights")  # doctest: +SKIP
        >>> llm.invoke([HumanMessage(content=content_from_documents(
        ...     docs, "Which of these photos shows a warning light?"))])  # doctest: +SKIP
    """
    blocks: list[str | dict[str, Any]] = []
    for document in documents:
        image = _image_from_document(document, detail)
        if image is not None:
            blocks.append(dict(image))
        elif document.page_content:
            blocks.append({"type": "text", "text": document.page_content})
    if text is not None:
        blocks.append({"type": "text", "text": text})
    return blocks
