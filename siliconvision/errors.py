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

import json
from typing import Any

import openai

__all__ = [
    "ContentError",
    "ImageInputError",
    "IncompleteStreamError",
    "SiliconCloudAPIError",
    "SiliconCloudAuthenticationError",
    "SiliconCloudBadRequestError",
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
    """

    def __init__(self, message: str, *, partial_text: str, partial_reasoning: str = "") -> None:
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning
        super().__init__(message)


class SiliconCloudAPIError(SiliconVisionError, openai.APIStatusError):
    """An HTTP error from SiliconCloud, with its code and text.

    Attributes: ``status_code``, ``siliconcloud_code`` (``None`` when the body has
    none), ``siliconcloud_message``, ``trace_id`` (``x-siliconcloud-trace-id``).
    """

    siliconcloud_code: int | None
    siliconcloud_message: str
    trace_id: str | None

    def __init__(self, message: str, *, response: Any, body: object | None) -> None:
        super().__init__(message, response=response, body=body)
        self.siliconcloud_code, self.siliconcloud_message = parse_error_body(body)
        self.trace_id = response.headers.get(TRACE_HEADER)


class SiliconCloudBadRequestError(SiliconCloudAPIError, openai.BadRequestError):
    """HTTP 400: unknown model (20012), invalid parameter (20015), bad image URL (20040)."""


class SiliconCloudAuthenticationError(SiliconCloudAPIError, openai.AuthenticationError):
    """HTTP 401: the key is invalid (keys are bound to the region of ``base_url``)."""


class SiliconCloudPermissionDeniedError(SiliconCloudAPIError, openai.PermissionDeniedError):
    """HTTP 403: forbidden, or the balance is insufficient (30001)."""


class SiliconCloudNotFoundError(SiliconCloudAPIError, openai.NotFoundError):
    """HTTP 404: usually a wrong ``base_url`` path."""


class SiliconCloudRateLimitError(SiliconCloudAPIError, openai.RateLimitError):
    """HTTP 429: RPM/RPD/TPM/TPD/IPM/IPD limit reached (retried by the SDK)."""


class SiliconCloudInternalServerError(SiliconCloudAPIError, openai.InternalServerError):
    """HTTP 5xx: overloaded (50505), busy (50603), gateway time-out (retried by the SDK)."""


_BY_STATUS: dict[int, type[SiliconCloudAPIError]] = {
    400: SiliconCloudBadRequestError,
    401: SiliconCloudAuthenticationError,
    403: SiliconCloudPermissionDeniedError,
    404: SiliconCloudNotFoundError,
    429: SiliconCloudRateLimitError,
}

_HINTS: dict[int, str] = {
    401: " (SiliconCloud keys are region-bound: a .com key fails on .cn and vice versa;"
    " check base_url)",
}


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


def map_status_error(response: Any, body: object | None = None) -> SiliconCloudAPIError:
    """The exception for an error ``response`` (an ``httpx`` response) and its body.

    ``body`` defaults to the response's text. The message never contains request
    headers, so the API key cannot leak through it.
    """
    if body is None:
        try:
            body = response.json()
        except Exception:
            body = response.text
    status = int(response.status_code)
    code, text = parse_error_body(body)
    code_part = f" (code {code})" if code is not None else ""
    message = f"SiliconCloud HTTP {status}{code_part}: {text or '(empty body)'}"
    message += _HINTS.get(status, "")
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = SiliconCloudInternalServerError if status >= 500 else SiliconCloudAPIError
    return cls(message, response=response, body=body)
