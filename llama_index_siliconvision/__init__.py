"""LlamaIndex integration for SiliconCloud's vision-language models.

- :class:`SiliconVision`: a ``FunctionCallingLLM`` (chat/complete, sync/async/
  streaming, ``ImageBlock``/``VideoBlock``, ``image_documents``, tools, reasoning);
- :class:`SiliconVisionToolSpec`: ``ask_image(image, question)`` for agents, with
  guards for untrusted arguments;
- :class:`SiliconVisionCaptionReader`: captions image files into ``ImageDocument``s;
- :class:`SiliconVisionEmbedding`: SiliconCloud embeddings (``BAAI/bge-m3``) for text,
  and caption-then-embed for images (``MultiModalVectorStoreIndex``).

Example:
    >>> from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
    >>> from llama_index_siliconvision import SiliconVision
    >>> llm = SiliconVision(model="Qwen/Qwen2.5-VL-72B-Instruct")  # SILICONFLOW_API_KEY
    >>> llm.chat([ChatMessage(blocks=[ImageBlock(path="cat.png"),
    ...     TextBlock(text="What animal is this?")])])  # doctest: +SKIP
"""

from __future__ import annotations

from .base import SiliconVision
from .embeddings import SiliconVisionEmbedding
from .readers import CaptionError, SiliconVisionCaptionReader
from .tools import SiliconVisionToolSpec

__all__ = [
    "CaptionError",
    "SiliconVision",
    "SiliconVisionCaptionReader",
    "SiliconVisionEmbedding",
    "SiliconVisionToolSpec",
]
