"""siliconvision: SiliconCloud's vision-language models, first-class in LangChain and LlamaIndex.

The framework-neutral core: images, content ordering, the model catalog, token
rules, the wire format and its errors, and a local SiliconCloud emulator.
"""

from .catalog import CATALOG, ModelSpec, TokenRule, get_model_spec, known_model_ids, register_model
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
from .tokens import client_target_size, estimate_image_tokens, server_image_size

__version__ = "0.1.0"

__all__ = [
    "CATALOG",
    "ContentError",
    "ImageInputError",
    "IncompleteStreamError",
    "ModelSpec",
    "SiliconCloudAPIError",
    "SiliconCloudAuthenticationError",
    "SiliconCloudBadRequestError",
    "SiliconCloudInternalServerError",
    "SiliconCloudNotFoundError",
    "SiliconCloudPermissionDeniedError",
    "SiliconCloudRateLimitError",
    "SiliconVisionError",
    "TokenRule",
    "__version__",
    "client_target_size",
    "estimate_image_tokens",
    "get_model_spec",
    "known_model_ids",
    "register_model",
    "server_image_size",
]
