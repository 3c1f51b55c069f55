"""``SiliconVisionCaptionLoader``: image files as captioned ``Document``s for RAG.

Built on :func:`siliconvision.captions.caption_images`: bounded concurrency,
retries of rate limits and server errors, one failed image never stops the batch,
and no good caption is ever thrown away: by default a batch with failures returns
its good documents and warns (:class:`~siliconvision.errors.CaptionFailureWarning`);
with ``on_error="raise"`` the error carries them.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager, Callbacks
from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.outputs import LLMResult
from pydantic import SecretStr

from siliconvision.captions import (
    DEFAULT_CAPTION_PROMPT,
    CaptionRecord,
    acaption_images,
    caption_images,
    iter_image_files,
)
from siliconvision.catalog import Detail
from siliconvision.client import DEFAULT_MODEL, SiliconVisionClient
from siliconvision.errors import CaptionFailureWarning, SiliconVisionError, describe_failures
from siliconvision.wire import ChatReply

from .chat_models import PROVIDER, ChatSiliconVision, _chat_result

__all__ = ["CaptionLoadError", "SiliconVisionCaptionLoader"]

logger = logging.getLogger(__name__)

OnError = Literal["raise", "warn", "include"]


class CaptionLoadError(SiliconVisionError):
    r"""Some images could not be captioned (``on_error="raise"``): ``failed`` holds their
    records, ``documents`` the ``Document``\ s of every image that was captioned (in
    file order), so nothing already paid for is lost.

    Raised by :class:`SiliconVisionCaptionLoader` with ``on_error="raise"`` after every
    image was tried (``lazy_load`` has yielded every good ``Document`` by then).

    Example:
        >>> loader = SiliconVisionCaptionLoader(["photos/"], on_error="raise")
        >>> try:
        ...     docs = loader.load()  # doctest: +SKIP
        ... except CaptionLoadError as exc:  # doctest: +SKIP
        ...     docs = exc.documents
        ...     print([record.path for record in exc.failed])
    """

    def __init__(self, failed: Sequence[CaptionRecord], documents: Sequence[Document] = ()) -> None:
        self.failed = list(failed)
        self.documents = list(documents)
        total = len(self.failed) + len(self.documents)
        super().__init__(describe_failures(self.failed, total))


def _document(record: CaptionRecord) -> Document:
    metadata: dict[str, object] = {
        "source": record.path,
        "image_path": record.path,
        "mime_type": record.mime_type,
        "width": record.width,
        "height": record.height,
        "byte_size": record.byte_size,
        "model": record.model,
    }
    if record.page is not None:  # a page of a PDF: one document per page
        metadata["page"] = record.page
    if record.error is not None:
        metadata["error"] = record.error
    return Document(page_content=record.caption or "", metadata=metadata)


def _shown(messages: Sequence[Mapping[str, Any]]) -> list[BaseMessage]:
    """The caption request as LangChain messages, for callbacks and tracing (the parts
    are already in LangChain's OpenAI form: an ``image_url`` and a ``text``)."""
    return [HumanMessage(content=list(m["content"])) for m in messages]


def _llm_result(result: ChatReply, model: str) -> LLMResult:
    chat = _chat_result(result, model)
    return LLMResult(generations=[list(chat.generations)], llm_output=chat.llm_output)


class SiliconVisionCaptionLoader(BaseLoader):
    """Caption image files with a SiliconCloud vision model, one ``Document`` per image.

    ``paths``: files and/or directories (expanded to their image files, sorted,
    recursively unless ``recursive=False``). The model is ``llm``'s (a
    :class:`~langchain_siliconvision.ChatSiliconVision`), or ``client``'s, or built
    from ``model``/``api_key``/``base_url`` (environment defaults). At most
    ``concurrency`` images are captioned at a time; documents come lazily, in the
    order of the files.

    Each ``Document`` has the caption as ``page_content`` and metadata ``source`` and
    ``image_path`` (the file), ``mime_type``, ``width``, ``height`` and ``byte_size``
    (of the image as sent, after downsizing) and ``model``. A PDF named in ``paths``
    is captioned page by page: one ``Document`` per page, in page order, with its
    ``page`` (1 for the first) in the metadata (directories are expanded to their
    images only).

    Every caption request is reported to LangChain's callbacks as a chat model run
    (``on_chat_model_start`` / ``on_llm_end`` with ``usage_metadata``, or
    ``on_llm_error``): those of ``callbacks`` and of ``llm``, so token counting
    (``UsageMetadataCallbackHandler``) and tracing see every image's cost.

    ``on_error`` decides what a failed image (unreadable, not an image, API error
    after ``max_attempts``) becomes:

    - ``"warn"`` (default): it is left out, each failure is logged, and once the batch
      is done a :class:`~siliconvision.errors.CaptionFailureWarning` says how many
      failed: ``load()`` returns every good document;
    - ``"raise"``: every good document is yielded, then :class:`CaptionLoadError`
      names each failure and carries the good documents (``exc.documents``);
    - ``"include"``: a document with empty ``page_content`` and ``metadata["error"]``.

    Either way, :attr:`failed` holds the failed records of the last run (the images
    to run again).

    Files are the program's choice: each is read under the core file policy (a
    regular file of at most the client's ``max_file_bytes``; no FIFOs, devices,
    ``/proc``).

    Example:
        >>> from langchain_siliconvision import SiliconVisionCaptionLoader
        >>> loader = SiliconVisionCaptionLoader(["photos/"], concurrency=8)
        >>> for doc in loader.lazy_load():  # doctest: +SKIP
        ...     print(doc.metadata["image_path"], doc.page_content)
    """

    def __init__(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        llm: ChatSiliconVision | None = None,
        client: SiliconVisionClient | None = None,
        model: str | None = None,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        prompt: str = DEFAULT_CAPTION_PROMPT,
        detail: Detail | None = None,
        concurrency: int = 4,
        max_attempts: int = 3,
        recursive: bool = True,
        on_error: OnError = "warn",
        callbacks: Callbacks = None,
    ) -> None:
        if llm is not None and client is not None:
            raise ValueError("pass llm or client, not both")
        if on_error not in ("raise", "warn", "include"):
            raise ValueError(f"on_error must be 'raise', 'warn' or 'include', got {on_error!r}")
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = list(paths)
        self.llm = llm
        self._client = client
        self.model = model
        # Kept masked: a SecretStr never shows the key in a repr, a debugger or a report.
        self.api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self.base_url = base_url
        self.prompt = prompt
        self.detail = detail
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.recursive = recursive
        self.on_error: OnError = on_error
        self.callbacks = callbacks
        self.failed: list[CaptionRecord] = []
        self._own_client = False

    def __getstate__(self) -> dict[str, object]:
        # Never the key: an unpickled loader reads it from its environment. A client it
        # built itself is rebuilt; one it was given refuses to be pickled (it holds the key).
        state = dict(self.__dict__)
        state["api_key"] = None
        if state.pop("_own_client", False):
            state["_client"] = None
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._own_client = False

    def _sync_client(self) -> SiliconVisionClient:
        if self._client is not None:
            return self._client
        if self.llm is not None:
            return self.llm.client
        self._client = SiliconVisionClient(
            api_key=self.api_key, base_url=self.base_url, model=self.model or DEFAULT_MODEL
        )
        self._own_client = True
        return self._client

    async def _async_client(self) -> SiliconVisionClient:
        if self._client is None and self.llm is not None:
            return self.llm.client
        return self._sync_client()

    def _model(self, client: SiliconVisionClient) -> str:
        return self.model or (self.llm.model if self.llm is not None else client.model)

    # ------------------------------------------------------------------ callbacks

    def _callback_args(self, model: str) -> tuple[Any, ...]:
        """``CallbackManager.configure``'s arguments: the loader's callbacks, the llm's
        callbacks, tags and metadata, and LangSmith's model metadata."""
        llm = self.llm
        ls_metadata = {"ls_provider": PROVIDER, "ls_model_name": model, "ls_model_type": "chat"}
        if llm is None:
            return (self.callbacks, None, False, None, None, ls_metadata, None)
        return (
            self.callbacks,
            llm.callbacks,
            llm.verbose,
            None,
            llm.tags,
            ls_metadata,
            llm.metadata,
        )

    def _run_info(self, messages: Sequence[Mapping[str, Any]], model: str) -> dict[str, Any]:
        serialized = (
            self.llm._serialized
            if self.llm is not None
            else {"lc": 1, "type": "not_implemented", "id": [*__name__.split("."), "Loader"]}
        )
        return {
            "serialized": serialized,
            "messages": [_shown(messages)],
            "invocation_params": {"_type": "chat-siliconvision", "model": model},
            "name": self.llm.get_name() if self.llm is not None else "SiliconVisionCaptionLoader",
            "batch_size": 1,
        }

    def _send(
        self, client: SiliconVisionClient, path: Path, messages: Any, **options: Any
    ) -> ChatReply:
        manager = CallbackManager.configure(*self._callback_args(options["model"]))
        if not manager.handlers:
            return client.chat(messages, **options)
        (run,) = manager.on_chat_model_start(**self._run_info(messages, options["model"]))
        try:
            result = client.chat(messages, **options)
        except BaseException as exc:
            run.on_llm_error(exc)
            raise
        run.on_llm_end(_llm_result(result, options["model"]))
        return result

    async def _asend(
        self, client: SiliconVisionClient, path: Path, messages: Any, **options: Any
    ) -> ChatReply:
        manager = AsyncCallbackManager.configure(*self._callback_args(options["model"]))
        if not manager.handlers:
            return await client.achat(messages, **options)
        (run,) = await manager.on_chat_model_start(**self._run_info(messages, options["model"]))
        try:
            result = await client.achat(messages, **options)
        except BaseException as exc:
            await run.on_llm_error(exc)
            raise
        await run.on_llm_end(_llm_result(result, options["model"]))
        return result

    def _emit(self, record: CaptionRecord, done: list[Document]) -> Document | None:
        if record.ok:
            document = _document(record)
            done.append(document)
            return document
        self.failed.append(record)
        if self.on_error == "include":
            return _document(record)
        logger.warning("could not caption %s: %s", record.path, record.error)
        return None

    def _finish(self, done: list[Document]) -> None:
        if not self.failed or self.on_error == "include":
            return
        if self.on_error == "raise":
            raise CaptionLoadError(self.failed, done)
        total = len(self.failed) + len(done)
        warnings.warn(
            CaptionFailureWarning(
                f"{describe_failures(self.failed, total)}; the {len(done)} good document(s) "
                "are returned, and loader.failed names the images to run again"
            ),
            stacklevel=3,
        )

    def lazy_load(self) -> Iterator[Document]:
        """Caption the images, yielding each ``Document`` as soon as it is ready in order."""
        files = iter_image_files(self.paths, recursive=self.recursive)
        client = self._sync_client()
        self.failed = []
        done: list[Document] = []
        records = caption_images(
            client,
            files,
            prompt=self.prompt,
            model=self._model(client),
            detail=self.detail,
            concurrency=self.concurrency,
            max_attempts=self.max_attempts,
            send=lambda path, messages, **options: self._send(client, path, messages, **options),
            ordered=True,
        )
        for record in records:
            document = self._emit(record, done)
            if document is not None:
                yield document
        self._finish(done)

    async def alazy_load(self) -> AsyncIterator[Document]:
        """Async :meth:`lazy_load` (uses the client's async API)."""
        files = iter_image_files(self.paths, recursive=self.recursive)
        client = await self._async_client()
        self.failed = []
        done: list[Document] = []
        records = acaption_images(
            client,
            files,
            prompt=self.prompt,
            model=self._model(client),
            detail=self.detail,
            concurrency=self.concurrency,
            max_attempts=self.max_attempts,
            send=lambda path, messages, **options: self._asend(client, path, messages, **options),
            ordered=True,
        )
        async for record in records:
            document = self._emit(record, done)
            if document is not None:
                yield document
        self._finish(done)
