"""Exceptions: bad input raised before any request, and SiliconCloud's error bodies.

SiliconCloud answers errors with different bodies per status: a JSON object with
``code``/``message``/``data``, a JSON object with only ``message`` (429), or a bare
JSON string (401, 404, 504). :func:`map_status_error` turns each into an exception
that subclasses the matching ``openai`` exception, so ``except openai.RateLimitError``
keeps working, and whose message carries the status, SiliconCloud's code and text:

    >>> try:
    ...     client.chat(...)                                   # doctest: +SKIP
    ... except openai.RateLimitError as exc:                  # doctest: +SKIP
    ...     print(exc)  # "SiliconCloud HTTP 429: Request was rejected ... TPM limit reached."
"""

from __future__ import annotations

import importlib
import json
from typing import TYPE_CHECKING, Any

__all__ = [
    "ContentError",
    "ImageInputError",
    "IncompleteStreamError",
    "SiliconCloudAPIError",
    "SiliconCloudAuthenticationError",
    "SiliconCloudBadRequestError",
    "SiliconCloudIncompleteStreamError",
    "SiliconCloudInternalServerError",
    "SiliconCloudNotFoundError",
    "SiliconCloudPermissionDeniedError",
    "SiliconCloudRateLimitError",
    "SiliconVisionError",
    "map_status_error",
]

TRACE_HEADER = "x-siliconcloud-trace-id"


class SiliconVisionError(Exception):
    """Base class of every error this package raises itself."""


class ImageInputError(SiliconVisionError, ValueError):
    """An image source that cannot be sent: names the source and the reason.

    >>> raise ImageInputError("photo.jpg", "file does not exist")  # doctest: +SKIP
    ImageInputError: image photo.jpg: file does not exist
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"image {source}: {reason}")


class ContentError(SiliconVisionError, ValueError):
    """A message or content part that the target model cannot take (raised before sending)."""


class IncompleteStreamError(SiliconVisionError):
    """A stream that ended before its final chunk; ``partial_text`` holds what arrived.

    SiliconCloud's last chunk carries ``finish_reason``; a stream without one was
    cut (network, proxy, server crash) and must not pass for a complete answer.
    What a stream raises is :class:`SiliconCloudIncompleteStreamError`, which is also
    an ``openai.APIConnectionError`` (``except openai.APIError`` catches it too).
    """

    def __init__(self, message: str, *, partial_text: str, partial_reasoning: str = "") -> None:
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning
        super().__init__(message)


def parse_error_body(body: object) -> tuple[int | None, str]:
    """(code, message) from any SiliconCloud error body: object, bare string or raw text."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        text = body
        try:
            body = json.loads(text)
        except ValueError:
            return None, text.strip()
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):
            body = inner
        code = body.get("code")
        message = body.get("message")
        code_int = code if isinstance(code, int) and not isinstance(code, bool) else None
        if isinstance(code, str) and code.isdigit():
            code_int = int(code)
        return code_int, str(message) if message is not None else json.dumps(body)
    if isinstance(body, str):
        return None, body
    return None, "" if body is None else str(body)


# The HTTP error classes subclass ``openai``'s, so defining them imports the SDK
# (about 0.3 s). They live in ``_api_errors`` and load on first use, which keeps
# ``import siliconvision`` and the adapters' imports cheap.
_API_ERRORS = frozenset(
    {
        "SiliconCloudAPIError",
        "SiliconCloudAuthenticationError",
        "SiliconCloudBadRequestError",
        "SiliconCloudIncompleteStreamError",
        "SiliconCloudInternalServerError",
        "SiliconCloudNotFoundError",
        "SiliconCloudPermissionDeniedError",
        "SiliconCloudRateLimitError",
        "map_status_error",
    }
)


def __getattr__(name: str) -> Any:
    if name in _API_ERRORS:
        value = getattr(importlib.import_module("._api_errors", __package__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from ._api_errors import (
        SiliconCloudAPIError,
        SiliconCloudAuthenticationError,
        SiliconCloudBadRequestError,
        SiliconCloudIncompleteStreamError,
        SiliconCloudInternalServerError,
        SiliconCloudNotFoundError,
        SiliconCloudPermissionDeniedError,
        SiliconCloudRateLimitError,
        map_status_error,
    )
