"""siliconvision: SiliconCloud's vision-language models, first-class in LangChain and LlamaIndex.

The framework-neutral core: images, content ordering, the model catalog, token
rules, the wire format and its errors, and a local SiliconCloud emulator
(:mod:`siliconvision.testing`).

Example:
    >>> from pathlib import Path
    >>> from siliconvision import SiliconVisionClient
    >>> client = SiliconVisionClient(model="Qwen/Qwen2.5-VL-72B-Instruct")  # doctest: +SKIP
    >>> client.ask([Path("chart.png")], "What does this chart show?").content  # doctest: +SKIP

Names are imported lazily (PEP 562), so ``import siliconvision`` stays cheap for
the adapters; the ``openai`` SDK loads on first use of a name that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # catalog and token rules
    "CATALOG": "catalog",
    "ModelSpec": "catalog",
    "TokenRule": "catalog",
    "get_model_spec": "catalog",
    "known_model_ids": "catalog",
    "register_model": "catalog",
    "client_target_size": "tokens",
    "estimate_image_tokens": "tokens",
    "server_image_size": "tokens",
    # images and content
    "ImageCache": "images",
    "PreparedImage": "images",
    "image_part": "images",
    "prepare_image": "images",
    "Image": "content",
    "Video": "content",
    "build_content": "content",
    "prepare_messages": "content",
    # wire and client
    "ChatReply": "wire",
    "ChatResult": "wire",
    "ParameterError": "wire",
    "StreamDelta": "wire",
    "ToolCall": "wire",
    "Usage": "wire",
    "MissingAPIKeyError": "client",
    "SiliconVisionClient": "client",
    "RateLimits": "ratelimit",
    # captioning batches
    "CaptionRecord": "captions",
    "caption_key": "captions",
    "acaption_images": "captions",
    "caption_images": "captions",
    "iter_image_files": "captions",
    # errors
    "ContentError": "errors",
    "ImageInputError": "errors",
    "IncompleteStreamError": "errors",
    "SiliconCloudAPIError": "errors",
    "SiliconCloudAuthenticationError": "errors",
    "SiliconCloudBadRequestError": "errors",
    "SiliconCloudInternalServerError": "errors",
    "SiliconCloudNotFoundError": "errors",
    "SiliconCloudPermissionDeniedError": "errors",
    "SiliconCloudRateLimitError": "errors",
    "SiliconVisionError": "errors",
}

__all__ = [
    "CATALOG",
    "CaptionRecord",
    "ChatReply",
    "ChatResult",
    "ContentError",
    "Image",
    "ImageCache",
    "ImageInputError",
    "IncompleteStreamError",
    "MissingAPIKeyError",
    "ModelSpec",
    "ParameterError",
    "PreparedImage",
    "RateLimits",
    "SiliconCloudAPIError",
    "SiliconCloudAuthenticationError",
    "SiliconCloudBadRequestError",
    "SiliconCloudInternalServerError",
    "SiliconCloudNotFoundError",
    "SiliconCloudPermissionDeniedError",
    "SiliconCloudRateLimitError",
    "SiliconVisionClient",
    "SiliconVisionError",
    "StreamDelta",
    "TokenRule",
    "ToolCall",
    "Usage",
    "Video",
    "__version__",
    "acaption_images",
    "build_content",
    "caption_images",
    "caption_key",
    "client_target_size",
    "estimate_image_tokens",
    "get_model_spec",
    "image_part",
    "iter_image_files",
    "known_model_ids",
    "prepare_image",
    "prepare_messages",
    "register_model",
    "server_image_size",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'siliconvision' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from .captions import (
        CaptionRecord,
        acaption_images,
        caption_images,
        caption_key,
        iter_image_files,
    )
    from .catalog import (
        CATALOG,
        ModelSpec,
        TokenRule,
        get_model_spec,
        known_model_ids,
        register_model,
    )
    from .client import MissingAPIKeyError, SiliconVisionClient
    from .content import Image, Video, build_content, prepare_messages
    from .errors import (
        ContentError,
        ImageInputError,
        IncompleteStreamError,
        SiliconCloudAPIError,
        SiliconCloudAuthenticationError,
        SiliconCloudBadRequestError,
        SiliconCloudInternalServerError,
        SiliconCloudNotFoundError,
        SiliconCloudPermissionDeniedError,
        SiliconCloudRateLimitError,
        SiliconVisionError,
    )
    from .images import ImageCache, PreparedImage, image_part, prepare_image
    from .ratelimit import RateLimits
    from .tokens import client_target_size, estimate_image_tokens, server_image_size
    from .wire import ChatReply, ChatResult, ParameterError, StreamDelta, ToolCall, Usage
