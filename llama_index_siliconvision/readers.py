"""``SiliconVisionCaptionReader``: image files -> captioned ``ImageDocument``s for RAG.

Built on :mod:`siliconvision.captions` (bounded concurrency, retries of 429/5xx,
one failure never stops the batch). Each image becomes an ``ImageDocument`` whose
text is the caption and whose ``image_path`` points at the file, so a
``VectorStoreIndex`` over them retrieves ``ImageNode``s that a vision LLM can look
at again (``RetrieverQueryEngine.from_args(..., multimodal=True)``).

Failures: every image is attempted, and no good caption is thrown away. With
``on_error="warn"`` (the default) failed images are left out, each is logged, a
:class:`~siliconvision.errors.CaptionFailureWarning` sums them up at the end, and
``load_data`` returns every good document; with ``on_error="raise"`` a batch with
failures raises :class:`CaptionError` at the end, carrying the documents that did
succeed and the failed records; ``on_error="skip"`` is ``"warn"`` without the warning
(logged only). Either way :attr:`SiliconVisionCaptionReader.failures` names the
images to run again.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock
from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document, ImageDocument

from siliconvision.captions import (
    DEFAULT_CAPTION_PROMPT,
    CaptionRecord,
    acaption_images,
    caption_images,
    iter_image_files,
)
from siliconvision.catalog import Detail
from siliconvision.errors import CaptionFailureWarning, SiliconVisionError, describe_failures
from siliconvision.wire import ChatReply

from .base import SiliconVision

__all__ = ["CaptionError", "SiliconVisionCaptionReader"]

logger = logging.getLogger(__name__)

PathsArg = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

#: Metadata that describes the file, not its content: kept out of embeddings and prompts.
_TECHNICAL_KEYS = ["image_path", "mime_type", "width", "height", "byte_size", "model"]


class CaptionError(SiliconVisionError):
    """Some images could not be captioned (``on_error="raise"``).

    ``failures`` are their :class:`~siliconvision.captions.CaptionRecord`\\ s (with
    ``error``); ``documents`` are the documents of the images that succeeded.
    """

    def __init__(self, failures: list[CaptionRecord], documents: list[Document]) -> None:
        self.failures = failures
        self.documents = documents
        super().__init__(describe_failures(failures, len(failures) + len(documents)))


def _as_list(paths: PathsArg) -> list[str | os.PathLike[str]]:
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    return list(paths)


def record_to_document(record: CaptionRecord) -> Document:
    """The ``ImageDocument`` of one captioned image (its id is the file path), or the
    ``Document`` of one page of a PDF (id ``<path>#page=<n>``; ``file_path`` and
    ``page_label`` in the metadata, as LlamaIndex's PDF readers write them)."""
    metadata: dict[str, Any] = {
        "image_path": record.path,
        "file_name": Path(record.path).name,
        "mime_type": record.mime_type,
        "width": record.width,
        "height": record.height,
        "byte_size": record.byte_size,
        "model": record.model,
    }
    if record.page is not None:  # a page of a PDF: no image file to point at
        metadata.pop("image_path")
        metadata.update(file_path=record.path, page_label=str(record.page))
        return Document(
            id_=f"{record.path}#page={record.page}",
            text=record.caption or "",
            metadata=metadata,
            excluded_embed_metadata_keys=[*_TECHNICAL_KEYS, "file_path"],
            excluded_llm_metadata_keys=[*_TECHNICAL_KEYS, "file_path"],
        )
    return ImageDocument(
        id_=record.path,
        text=record.caption or "",
        image_path=record.path,
        metadata=metadata,
        excluded_embed_metadata_keys=list(_TECHNICAL_KEYS),
        excluded_llm_metadata_keys=list(_TECHNICAL_KEYS),
    )


class SiliconVisionCaptionReader(BaseReader):
    """Caption image files (or whole folders) into ``ImageDocument``s.

    Each caption request is a chat call of ``llm`` for LlamaIndex: its instrumentation
    events and span, its ``CallbackManager`` (``TokenCountingHandler``) and its
    ``rate_limiter`` see every image.

    Example:
        >>> from llama_index.core import VectorStoreIndex
        >>> reader = SiliconVisionCaptionReader(SiliconVision(), concurrency=8)
        >>> docs = reader.load_data(["photos/"])  # doctest: +SKIP
        >>> index = VectorStoreIndex.from_documents(docs, embed_model=SiliconVisionEmbedding())
        ... # doctest: +SKIP
    """

    def __init__(
        self,
        llm: SiliconVision | None = None,
        *,
        prompt: str = DEFAULT_CAPTION_PROMPT,
        model: str | None = None,
        detail: Detail | None = None,
        concurrency: int = 4,
        max_attempts: int = 3,
        recursive: bool = True,
        on_error: Literal["warn", "raise", "skip"] = "warn",
    ) -> None:
        if on_error not in ("warn", "raise", "skip"):
            raise ValueError(f"on_error must be 'warn', 'raise' or 'skip', got {on_error!r}")
        self.llm = llm if llm is not None else SiliconVision()
        self.prompt = prompt
        self.model = model
        self.detail = detail
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.recursive = recursive
        self.on_error = on_error
        self.failures: list[CaptionRecord] = []

    def _files(self, paths: PathsArg) -> list[Path]:
        return iter_image_files(_as_list(paths), recursive=self.recursive)

    def _options(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "model": self.model or self.llm.model,
            "detail": self.detail if self.detail is not None else self.llm.detail,
            "concurrency": self.concurrency,
            "max_attempts": self.max_attempts,
        }

    def _shown(self, path: Path) -> list[ChatMessage]:
        """One caption request as LlamaIndex messages, for events and callbacks."""
        blocks = [ImageBlock(path=path), TextBlock(text=self.prompt)]
        return [ChatMessage(role=MessageRole.USER, blocks=blocks)]

    def _send(self, path: Path, messages: Any, **options: Any) -> ChatReply:
        client = self.llm.client
        return self.llm.report_chat(
            self._shown(path), lambda: client.chat(messages, **options), **options
        )

    async def _asend(self, path: Path, messages: Any, **options: Any) -> ChatReply:
        client = self.llm.client
        return await self.llm.areport_chat(
            self._shown(path), lambda: client.achat(messages, **options), **options
        )

    def _take(self, record: CaptionRecord) -> Document | None:
        if record.ok:
            return record_to_document(record)
        self.failures.append(record)
        logger.warning("could not caption %s: %s", record.path, record.error)
        return None

    def _finish(self, documents: list[Document]) -> None:
        if not self.failures:
            return
        if self.on_error == "raise":
            raise CaptionError(list(self.failures), documents)
        if self.on_error == "warn":
            total = len(self.failures) + len(documents)
            warnings.warn(
                CaptionFailureWarning(
                    f"{describe_failures(self.failures, total)}; the {len(documents)} good "
                    "document(s) are returned, and reader.failures names the images to run again"
                ),
                stacklevel=3,
            )

    def lazy_load_data(self, paths: PathsArg) -> Iterable[Document]:  # type: ignore[override]
        """Documents as captions finish (completion order); see the module docs for errors."""
        return self._lazy(self._files(paths))

    def _lazy(self, files: list[Path]) -> Iterator[Document]:
        self.failures = []
        done: list[Document] = []
        records = caption_images(self.llm.client, files, send=self._send, **self._options())
        for record in records:
            document = self._take(record)
            if document is not None:
                done.append(document)
                yield document
        self._finish(done)

    def load_data(self, paths: PathsArg) -> list[Document]:  # type: ignore[override]
        """One document per image, in file order (folders expanded, sorted)."""
        files = self._files(paths)
        try:
            documents = list(self._lazy(files))
        except CaptionError as exc:
            exc.documents.sort(key=_ranker(files))
            raise
        documents.sort(key=_ranker(files))
        return documents

    async def alazy_load_data(  # type: ignore[override]
        self, paths: PathsArg
    ) -> AsyncIterator[Document]:
        """Async :meth:`lazy_load_data` (the core's asyncio batch, same bound)."""
        self.failures = []
        done: list[Document] = []
        files = self._files(paths)
        records = acaption_images(self.llm.client, files, send=self._asend, **self._options())
        async for record in records:
            document = self._take(record)
            if document is not None:
                done.append(document)
                yield document
        self._finish(done)

    async def aload_data(self, paths: PathsArg) -> list[Document]:  # type: ignore[override]
        """Async :meth:`load_data`."""
        files = self._files(paths)
        documents: list[Document] = []
        try:
            async for document in self.alazy_load_data(files):
                documents.append(document)
        except CaptionError as exc:
            exc.documents.sort(key=_ranker(files))
            raise
        documents.sort(key=_ranker(files))
        return documents


def _ranker(files: list[Path]) -> Callable[[Document], tuple[int, int]]:
    """File order, then page order (a PDF's pages)."""
    rank = {str(path): i for i, path in enumerate(files)}

    def key(document: Document) -> tuple[int, int]:
        page = document.metadata.get("page_label")
        path = document.metadata.get("image_path") or document.metadata.get("file_path")
        return rank.get(str(path), len(rank)), int(page) if page else 0

    return key
