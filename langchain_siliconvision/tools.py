"""``SiliconVisionTool``: "answer a question about an image" for LangChain agents.

An agent's model chooses the tool's arguments, so they are untrusted: the image is
checked by :mod:`siliconvision.guards` before anything is read or sent (local files
only inside ``allowed_dirs``; http(s) URLs only to public addresses unless
``allow_private_urls=True``; an ``llm`` with ``fetch_urls=True`` has the URL fetched
through the same guard, on every redirect hop). A refused or unreadable image comes
back to the agent as a readable tool error, never as a crash.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field, field_validator

from siliconvision.catalog import Detail
from siliconvision.errors import ContentError, ImageInputError
from siliconvision.guards import (
    DEFAULT_MAX_FILE_BYTES,
    AllowedFile,
    GuardError,
    Resolver,
    check_image_argument,
    fetch_url,
)

from ._images import image_block
from .chat_models import ChatSiliconVision

__all__ = ["AskImageInput", "SiliconVisionTool"]

_DESCRIPTION = (
    "Answer a question about one image. Arguments: `image`, a local image file path "
    "or an http(s) URL of an image; `question`, what to find out about it. "
    "Returns the answer as text."
)


def _model_refusals() -> tuple[type[Exception], ...]:
    """Errors that mean "this image cannot be used" (imported late: the HTTP error
    classes load the ``openai`` SDK)."""
    from siliconvision.errors import SiliconCloudBadRequestError

    return (ContentError, ImageInputError, SiliconCloudBadRequestError)


class AskImageInput(BaseModel):
    """Arguments of the ``ask_image`` tool (what the agent's model fills in).

    Example:
        >>> AskImageInput(image="receipt.png", question="What is the total?").image
        'receipt.png'
    """

    image: str = Field(description="A local image file path or an http(s) URL of an image.")
    question: str = Field(description="The question to answer about the image.")


class SiliconVisionTool(BaseTool):
    """Answer a question about an image with a SiliconCloud vision model (``ask_image``).

    Arguments chosen by the agent: ``image`` (a local path, allowed only inside
    ``allowed_dirs``; or an http(s) URL, refused when it points to a loopback,
    private, link-local or metadata address unless ``allow_private_urls=True``) and
    ``question``. URLs are passed to SiliconCloud, which fetches them; when ``llm``
    has ``fetch_urls=True``, the tool fetches the image itself through the core's
    SSRF guard (:func:`siliconvision.guards.fetch_url`: the URL, every redirect hop
    and every connection are checked with this tool's ``allow_private_urls`` and
    ``resolver``), and sends the bytes. Refusals and bad images are returned to the
    agent as tool errors it can read (``handle_tool_error=True``).

    Example:
        >>> from langchain.agents import create_agent
        >>> from langchain_siliconvision import ChatSiliconVision, SiliconVisionTool
        >>> vision = ChatSiliconVision(model="Qwen/Qwen2.5-VL-72B-Instruct")
        >>> tool = SiliconVisionTool(llm=vision, allowed_dirs=["./uploads"])
        >>> agent = create_agent(vision, tools=[tool])  # doctest: +SKIP
        >>> tool.invoke({"image": "uploads/receipt.png", "question": "Total?"})  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "ask_image"
    description: str = _DESCRIPTION
    args_schema: type[BaseModel] = AskImageInput
    handle_tool_error: bool | str | Callable[[ToolException], str] | None = True
    """Refusals and bad images are returned to the agent as text (``True``)."""

    llm: ChatSiliconVision
    """The vision model that answers."""
    allowed_dirs: list[Path] = Field(default_factory=list)
    """Directories whose files may be read; empty (the default): no local files."""
    allow_private_urls: bool = False
    """Allow URLs to loopback/private/link-local addresses (trusted input only)."""
    detail: Detail | None = None
    """Image detail for this tool's requests (default: the llm's)."""
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    """Local files (and, with a fetching ``llm``, downloads) larger than this are refused."""
    resolver: Resolver | None = Field(default=None, exclude=True)
    """``resolver(host, port)`` -> addresses, replacing DNS for the URL check (tests,
    custom DNS); as in :class:`llama_index_siliconvision.SiliconVisionToolSpec`."""

    @field_validator("allowed_dirs", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        if isinstance(value, (str, os.PathLike)):
            value = [value]
        return [Path(v) for v in value] if isinstance(value, Sequence) else value

    def _check(self, image: str) -> str | AllowedFile:
        try:
            return check_image_argument(
                image,
                allowed_dirs=self.allowed_dirs,
                allow_private_urls=self.allow_private_urls,
                resolver=self.resolver,
                max_bytes=self.max_file_bytes,
            )
        except GuardError as exc:
            raise ToolException(str(exc)) from None

    def _source(self, checked: str | AllowedFile) -> Any:
        """What to send: the file's bytes, the URL, or (``llm.fetch_urls``) the URL's
        bytes fetched here through the guard (never by the model, which would check
        redirects without this tool's resolver)."""
        if isinstance(checked, AllowedFile):
            return checked.data
        if not self.llm.fetch_urls:
            return checked
        try:
            return fetch_url(
                checked,
                allow_private=self.allow_private_urls,
                resolver=self.resolver,
                max_bytes=self.max_file_bytes,
            )
        except ImageInputError as exc:
            raise ToolException(_image_error(checked, exc)) from None

    def _messages(self, checked: str | AllowedFile, question: str) -> list[BaseMessage]:
        if not isinstance(question, str) or not question.strip():
            raise ToolException("question must be a non-empty string")
        source = self._source(checked)
        try:
            block = image_block(source, detail=self.detail)
        except ImageInputError as exc:
            raise ToolException(_image_error(checked, exc)) from None
        return [HumanMessage(content=[dict(block), {"type": "text", "text": question}])]

    def _run(
        self,
        image: str,
        question: str,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> str:
        checked = self._check(image)
        messages = self._messages(checked, question)
        config = RunnableConfig(callbacks=run_manager.get_child()) if run_manager else None
        try:
            return self.llm.invoke(messages, config=config).text
        except _model_refusals() as exc:
            raise ToolException(f"the vision model could not use this image: {exc}") from None

    async def _arun(
        self,
        image: str,
        question: str,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> str:
        # Checks may resolve a host name, read a file or fetch a URL: off the event loop.
        checked = await asyncio.to_thread(self._check, image)
        messages = await asyncio.to_thread(self._messages, checked, question)
        config = RunnableConfig(callbacks=run_manager.get_child()) if run_manager else None
        try:
            return (await self.llm.ainvoke(messages, config=config)).text
        except _model_refusals() as exc:
            raise ToolException(f"the vision model could not use this image: {exc}") from None


def _image_error(checked: str | AllowedFile, exc: ImageInputError) -> str:
    where = exc.source if isinstance(checked, str) else str(checked.path)
    return f"cannot use image {where}: {exc.reason}"
