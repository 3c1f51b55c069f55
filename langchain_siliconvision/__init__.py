"""SiliconCloud vision-language models in LangChain.

- :class:`ChatSiliconVision`: the chat model (images in every LangChain form,
  streaming, tools, structured output, reasoning, usage);
- :func:`image_block`: a local file, bytes, PIL image or URL as a standard image block;
  :func:`pdf_block`: a PDF as a standard file block (each page is sent as an image);
- :class:`SiliconVisionTool`: ``ask_image`` for agents, with guards on its arguments;
- :class:`SiliconVisionCaptionLoader`, :func:`content_from_documents` and
  :class:`SiliconVisionEmbeddings`: retrieval over captioned images.

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> from langchain_siliconvision import ChatSiliconVision, image_block
    >>> llm = ChatSiliconVision(model="Qwen/Qwen2.5-VL-72B-Instruct")
    >>> llm.invoke([HumanMessage(content=[image_block("cat.png"), "What is this?"])])
    ... # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._images import image_block, pdf_block
from .chat_models import ChatSiliconVision

# The retrieval and agent pieces load on first use (PEP 562): `import
# langchain_siliconvision` for the chat model alone stays cheap.
_LAZY = {
    "AskImageInput": "tools",
    "CaptionLoadError": "document_loaders",
    "SiliconVisionCaptionLoader": "document_loaders",
    "SiliconVisionEmbeddings": "embeddings",
    "SiliconVisionTool": "tools",
    "content_from_documents": "retrieval",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .document_loaders import CaptionLoadError, SiliconVisionCaptionLoader
    from .embeddings import SiliconVisionEmbeddings
    from .retrieval import content_from_documents
    from .tools import AskImageInput, SiliconVisionTool

__all__ = [
    "AskImageInput",
    "CaptionLoadError",
    "ChatSiliconVision",
    "SiliconVisionCaptionLoader",
    "SiliconVisionEmbeddings",
    "SiliconVisionTool",
    "content_from_documents",
    "image_block",
    "pdf_block",
]
