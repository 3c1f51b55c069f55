"""SiliconCloud vision-language models in LangChain.

- :class:`ChatSiliconVision`: the chat model (images in every LangChain form,
  streaming, tools, structured output, reasoning, usage);
- :func:`image_block`: a local file, bytes, PIL image or URL as a standard image block;
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

from ._images import image_block
from .chat_models import ChatSiliconVision
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
]
