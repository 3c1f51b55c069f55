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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

__all__ = [
    "CaptionFailureWarning",
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
    "describe_failures",
    "map_status_error",
]

TRACE_HEADER = "x-siliconcloud-trace-id"


class SiliconVisionError(Exception):
    """Base class of every error this package raises itself."""


class ImageInputError(SiliconVisionError, ValueError):
    """An image (or video) source that cannot be sent: names the source and the reason.

    ``kind`` is what the source is (``"image"``, ``"video"``): the first word of the
    message.

    >>> str(ImageInputError("photo.jpg", "file does not exist"))
    'image photo.jpg: file does not exist'
    >>> str(ImageInputError("clip.mp4", "not a video", kind="video"))
    'video clip.mp4: not a video'
    """

    def __init__(self, source: str, reason: str, *, kind: str = "image") -> None:
        self.source = source
        self.reason = reason
        self.kind = kind
        super().__init__(f"{kind} {source}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles (multiprocessing, Ray) rebuild it from its parts, not from its message.
        return (_rebuild_input_error, (type(self), self.source, self.reason, self.kind))


def _rebuild_input_error(
    cls: type[ImageInputError], source: str, reason: str, kind: str
) -> ImageInputError:
    error = cls.__new__(cls)
    ImageInputError.__init__(error, source, reason, kind=kind)
    return error


class ContentError(SiliconVisionError, ValueError):
    """A message or content part that the target model cannot take (raised before sending)."""


class CaptionFailureWarning(UserWarning):
    """Some images of a caption batch failed; the good documents were returned anyway.

    Issued by the LangChain loader and the LlamaIndex reader (``on_error="warn"``, their
    default). Turn it into an error with ``warnings.simplefilter("error",
    CaptionFailureWarning)``, or pass ``on_error="raise"``.
    """


def describe_failures(failed: Sequence[Any], total: int) -> str:
    """One line naming failed caption records (``.path``, ``.error``), at most ten.

    >>> from types import SimpleNamespace as R
    >>> describe_failures([R(path="a.png", error="not an image")], 3)
    '1 of 3 image(s) could not be captioned: a.png: not an image'
    """
    lines = "; ".join(f"{r.path}: {r.error}" for r in failed[:10])
    more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
    return f"{len(failed)} of {total} image(s) could not be captioned: {lines}{more}"


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
