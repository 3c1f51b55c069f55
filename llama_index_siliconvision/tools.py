"""``SiliconVisionToolSpec``: "answer a question about an image" for LlamaIndex agents.

An agent's model chooses the ``image`` argument, so it is untrusted input: it goes
through :func:`siliconvision.guards.check_image_argument` (local files only inside
``allowed_dirs``; only public http(s) URLs unless ``allow_private_urls``) before
anything is read or sent; with an LLM that has ``fetch_urls=True``, the URL is fetched
here through the core's SSRF guard (:func:`siliconvision.guards.fetch_url`: the URL,
every redirect hop and every connection), exactly as the LangChain tool does. A
refused or unusable image comes back as readable tool output (``"Cannot answer: ..."``),
so the agent can correct itself instead of dying.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock
from llama_index.core.tools.tool_spec.base import BaseToolSpec

from siliconvision.catalog import Detail
from siliconvision.client import SiliconVisionClient
from siliconvision.errors import ContentError, ImageInputError
from siliconvision.guards import (
    DEFAULT_MAX_FILE_BYTES,
    AllowedFile,
    GuardError,
    Resolver,
    check_image_argument,
    fetch_url,
)
from siliconvision.images import is_pdf
from siliconvision.images._pipeline import NOT_ONE_IMAGE

from .base import SiliconVision

__all__ = ["SiliconVisionToolSpec"]

#: Errors the agent can act on (another path or URL, a smaller image): returned as text.


def _input_errors() -> tuple[type[Exception], ...]:
    """Refusals the agent can act on (imported late: the HTTP error classes load the
    ``openai`` SDK)."""
    from siliconvision.errors import SiliconCloudBadRequestError

    return (GuardError, ImageInputError, ContentError, SiliconCloudBadRequestError)


def _one_image(data: Any, where: str) -> Any:
    """``data``, unless it is a PDF (the tool answers about one image, as LangChain's)."""
    if isinstance(data, (bytes, bytearray, memoryview)) and is_pdf(data):
        raise ImageInputError(where, f"{NOT_ONE_IMAGE}: this tool answers about one image")
    return data


def _refusal(exc: BaseException) -> str:
    return f"Cannot answer: {exc}"


class SiliconVisionToolSpec(BaseToolSpec):
    """The ``ask_image(image, question)`` tool (sync and async) for agents.

    ``image`` is an http(s) URL or a local path; local files are read only inside
    ``allowed_dirs`` (none by default), and URLs to loopback, private, link-local or
    metadata addresses are refused unless ``allow_private_urls=True``. ``resolver``
    (host, port) -> addresses replaces DNS for the URL check (tests, custom DNS). When
    ``llm.fetch_urls`` is set, the tool fetches the image itself through the guard
    (every redirect hop checked with this tool's settings) and sends the bytes; the
    LLM never fetches an agent's URL. Downloads and local files above
    ``max_file_bytes`` are refused.
    Each question is a chat call of ``llm`` for LlamaIndex: its instrumentation events,
    ``CallbackManager`` (``TokenCountingHandler``) and ``rate_limiter`` see it.

    Example:
        >>> from llama_index.core.agent.workflow import FunctionAgent
        >>> llm = SiliconVision(model="Qwen/Qwen2.5-VL-72B-Instruct")
        >>> tools = SiliconVisionToolSpec(llm, allowed_dirs=["./photos"]).to_tool_list()
        >>> agent = FunctionAgent(tools=tools, llm=llm)  # doctest: +SKIP
        >>> await agent.run("What is written on ./photos/receipt.png?")  # doctest: +SKIP
    """

    spec_functions = [("ask_image", "aask_image")]  # noqa: RUF012 - BaseToolSpec's API

    def __init__(
        self,
        llm: SiliconVision | None = None,
        *,
        allowed_dirs: Sequence[str | os.PathLike[str]] = (),
        allow_private_urls: bool = False,
        detail: Detail | None = None,
        model: str | None = None,
        resolver: Resolver | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        self.llm = llm if llm is not None else SiliconVision()
        self.allowed_dirs = list(allowed_dirs)
        self.allow_private_urls = allow_private_urls
        self.detail = detail
        self.model = model
        self.resolver = resolver
        self.max_file_bytes = max_file_bytes

    @property
    def client(self) -> SiliconVisionClient:
        """The core client of :attr:`llm`."""
        return self.llm.client

    def _checked(self, image: Any) -> str | AllowedFile:
        return check_image_argument(
            image,
            allowed_dirs=self.allowed_dirs,
            allow_private_urls=self.allow_private_urls,
            resolver=self.resolver,
            max_bytes=self.max_file_bytes,
        )

    def _source(self, checked: str | AllowedFile) -> Any:
        if isinstance(checked, AllowedFile):
            return _one_image(checked.data, str(checked.path))
        if not self.llm.fetch_urls:
            return checked  # SiliconCloud fetches it
        fetched = fetch_url(
            checked,
            allow_private=self.allow_private_urls,
            resolver=self.resolver,
            max_bytes=self.max_file_bytes,
        )
        return _one_image(fetched, checked)

    def _messages(self, checked: str | AllowedFile, question: Any) -> list[dict[str, Any]]:
        if not isinstance(question, str) or not question.strip():
            raise ContentError("question must be a non-empty string")
        return self.client.ask_messages([self._source(checked)], question)

    def _shown(self, checked: str | AllowedFile, question: str) -> list[ChatMessage]:
        """The call as LlamaIndex messages, for its events and callbacks (no file read)."""
        image = (
            ImageBlock(path=checked.path)
            if isinstance(checked, AllowedFile)
            else ImageBlock(url=checked)
        )
        return [ChatMessage(role=MessageRole.USER, blocks=[image, TextBlock(text=question)])]

    def _options(self) -> dict[str, Any]:
        # The LLM's settings (sampling, thinking, extra_body), with this tool's model/detail.
        overrides: dict[str, Any] = {"model": self.model or self.llm.model}
        if self.detail is not None:
            overrides["detail"] = self.detail
        return self.llm.request_options(**overrides)

    def ask_image(self, image: str, question: str) -> str:
        """Answer a question about one image.

        Args:
            image: the image, as an http(s) URL or a local file path.
            question: what to find out about the image.
        """
        try:
            checked = self._checked(image)
            messages = self._messages(checked, question)
            options = self._options()
            result = self.llm.report_chat(
                self._shown(checked, question),
                lambda: self.client.chat(messages, **options),
                **options,
            )
            return result.content
        except _input_errors() as exc:
            return _refusal(exc)

    async def aask_image(self, image: str, question: str) -> str:
        """Answer a question about one image.

        Args:
            image: the image, as an http(s) URL or a local file path.
            question: what to find out about the image.
        """
        try:
            # The checks may read a file, resolve a host or fetch a URL: off the loop.
            checked = await asyncio.to_thread(self._checked, image)
            messages = await asyncio.to_thread(self._messages, checked, question)
            options = self._options()
            result = await self.llm.areport_chat(
                self._shown(checked, question),
                lambda: self.client.achat(messages, **options),
                **options,
            )
            return result.content
        except _input_errors() as exc:
            return _refusal(exc)
