"""SiliconCloud's HTTP errors as ``openai`` exception subclasses (see :mod:`siliconvision.errors`).

Separate from :mod:`siliconvision.errors` because defining them imports the
``openai`` SDK; import them from :mod:`siliconvision.errors` (they load lazily).
"""

from __future__ import annotations

from typing import Any

import openai

from .errors import TRACE_HEADER, IncompleteStreamError, SiliconVisionError, parse_error_body

__all__ = [
    "SiliconCloudAPIError",
    "SiliconCloudAuthenticationError",
    "SiliconCloudBadRequestError",
    "SiliconCloudIncompleteStreamError",
    "SiliconCloudInternalServerError",
    "SiliconCloudNotFoundError",
    "SiliconCloudPermissionDeniedError",
    "SiliconCloudRateLimitError",
    "map_status_error",
]


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


class SiliconCloudIncompleteStreamError(IncompleteStreamError, openai.APIConnectionError):
    """A cut stream (see :class:`~siliconvision.errors.IncompleteStreamError`), also an
    ``openai.APIConnectionError`` like every other failure to get an answer.

    ``partial_text``/``partial_reasoning`` hold what arrived; ``request`` is the HTTP
    request whose stream broke (``None`` when the chunks did not come from one).
    """

    def __init__(
        self,
        message: str,
        *,
        partial_text: str,
        partial_reasoning: str = "",
        request: Any = None,
    ) -> None:
        # IncompleteStreamError's __init__ would pass the message on positionally,
        # which APIConnectionError (keyword-only) refuses: set both sides here.
        openai.APIConnectionError.__init__(self, message=message, request=request)
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning


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


def _hint(status: int, response: Any) -> str:
    if status != 404:
        return _HINTS.get(status, "")
    try:
        path = str(response.request.url.path)
    except Exception:  # a response built without its request
        path = ""
    if path and not path.startswith("/v1/"):
        return (
            f" (the request went to {path}: SiliconCloud's API is under /v1; base_url "
            "should end in /v1, e.g. https://api.siliconflow.cn/v1)"
        )
    return " (check base_url and the endpoint path)"


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
    message += _hint(status, response)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = SiliconCloudInternalServerError if status >= 500 else SiliconCloudAPIError
    return cls(message, response=response, body=body)
