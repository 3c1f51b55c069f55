"""The ``openai`` SDK subclasses behind :class:`~siliconvision.client.SiliconVisionClient`.

Kept apart from :mod:`siliconvision.client` because importing ``openai`` costs about
0.3 s: the client (and so both adapters) imports this module on first use only.
Import these names from :mod:`siliconvision.client`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import openai
from openai._constants import RAW_RESPONSE_HEADER
from typing_extensions import Self

from ._api_errors import map_status_error
from ._body import JSONBody
from .client import (
    DEFAULT_RETRY_INITIAL_DELAY,
    DEFAULT_RETRY_MAX_DELAY,
    check_retry_delays,
    retry_delay,
)
from .errors import SiliconVisionError

__all__ = ["AsyncSiliconCloudOpenAI", "MissingAPIKeyError", "SiliconCloudOpenAI"]

# Bodies go as a JSONBody where the SDK takes ``post(content=...)``. From about openai
# 3.20 the SDK rewinds a seekable body before it retries (``_RequestBodyReplay``, and it
# retries no other iterable); before, it re-sends what it was given, so there the body
# goes as a plain iterable that starts over on every attempt. Should the class be
# renamed, retries of such bodies would stop: tests/e2e retries a big body to catch it.
_POST_TAKES_CONTENT = "content" in inspect.signature(openai.OpenAI.post).parameters
_SDK_REWINDS_BODIES = hasattr(openai._base_client, "_RequestBodyReplay")


class MissingAPIKeyError(SiliconVisionError, openai.OpenAIError):
    """No API key was given and none is in the environment."""


class _SiliconCloudSDK:
    """What both SDK clients add: SiliconCloud's errors, a bounded configurable backoff
    (the SDK still does the retrying, ``max_retries`` times) and a repr without the key.
    Mixed in before ``openai.OpenAI`` / ``openai.AsyncOpenAI``."""

    retry_initial_delay: float
    retry_max_delay: float
    max_retries: int

    def __init__(
        self,
        *args: Any,
        retry_initial_delay: float = DEFAULT_RETRY_INITIAL_DELAY,
        retry_max_delay: float = DEFAULT_RETRY_MAX_DELAY,
        **kwargs: Any,
    ) -> None:
        self.retry_initial_delay, self.retry_max_delay = check_retry_delays(
            retry_initial_delay, retry_max_delay
        )
        super().__init__(*args, **kwargs)

    def _calculate_retry_timeout(
        self, remaining_retries: int, options: Any, response_headers: Any = None
    ) -> float:
        max_retries = options.get_max_retries(self.max_retries)
        return retry_delay(
            max_retries - remaining_retries,
            initial=self.retry_initial_delay,
            maximum=self.retry_max_delay,
            retry_after=self._parse_retry_after_header(response_headers),  # type: ignore[attr-defined]
        )

    def copy(self, *args: Any, **kwargs: Any) -> Self:
        client: Self = super().copy(*args, **kwargs)  # type: ignore[misc]
        client.retry_initial_delay = self.retry_initial_delay
        client.retry_max_delay = self.retry_max_delay
        return client

    with_options = copy

    def send_chat(self, request: Mapping[str, Any], *, max_retries: int | None = None) -> Any:
        """POST a :func:`~siliconvision.wire.build_chat_request` result to
        ``/chat/completions``; the SDK's raw response (``.headers``, ``.parse()``).

        This is the SDK's own request path (retries, time-outs, errors, SSE decoding),
        entered through ``post`` rather than ``chat.completions.create`` to skip three
        costs our requests do not need: ``create`` walks the whole body against its
        TypedDicts (about a third of a call's client time with an image) and builds a
        pydantic ``ChatCompletionChunk`` for every stream chunk (two thirds of the time
        per chunk), and the JSON text of the body holds two more copies of every image.
        The body is already validated plain JSON, sent as a :class:`JSONBody`, and
        :mod:`siliconvision.wire` reads the parsed dicts. Async clients return an
        awaitable. ``max_retries`` overrides the client's for this request (a rate
        limiter makes its own attempts, each one paced).
        """
        body = dict(request)
        headers = {**(body.pop("extra_headers", None) or {}), RAW_RESPONSE_HEADER: "true"}
        options: dict[str, Any] = {"headers": headers}
        if max_retries is not None:
            options["max_retries"] = max_retries
        if "timeout" in body:
            options["timeout"] = body.pop("timeout")
        body.update(body.pop("extra_body", None) or {})
        is_async = isinstance(self, openai.AsyncOpenAI)
        stream_cls = openai.AsyncStream if is_async else openai.Stream
        payload: dict[str, Any] = {"body": body}
        if _POST_TAKES_CONTENT:
            try:
                json_body = JSONBody(body)
            except (TypeError, ValueError):
                pass  # not plain JSON: the SDK's own encoder knows more types
            else:
                headers["Content-Type"] = "application/json"
                headers["Content-Length"] = str(json_body.length)
                content: Any = json_body
                if not _SDK_REWINDS_BODIES:
                    content = json_body.restarting()
                payload = {"content": content.asynchronous() if is_async else content}
        return self.post(  # type: ignore[attr-defined]
            "/chat/completions",
            cast_to=object,
            options=options,
            stream=bool(body.get("stream")),
            stream_cls=stream_cls[object],
            **payload,
        )

    def _make_status_error(self, err_msg: str, *, body: object, response: Any) -> Any:
        return map_status_error(response, body)

    def __repr__(self) -> str:
        base_url = getattr(self, "base_url", "")
        return f"{type(self).__name__}(base_url={str(base_url)!r}, api_key='**********')"


class SiliconCloudOpenAI(_SiliconCloudSDK, openai.OpenAI):
    """``openai.OpenAI`` whose HTTP errors are SiliconCloud's (still ``openai`` subclasses)
    and whose retry backoff is configurable (``retry_initial_delay``, ``retry_max_delay``).

    >>> SiliconCloudOpenAI(api_key="sk-...", base_url=emu.base_url)  # doctest: +SKIP
    SiliconCloudOpenAI(base_url='http://127.0.0.1:.../v1/', api_key='**********')
    """


class AsyncSiliconCloudOpenAI(_SiliconCloudSDK, openai.AsyncOpenAI):
    """``openai.AsyncOpenAI`` whose HTTP errors are SiliconCloud's and whose retry backoff
    is configurable (as :class:`SiliconCloudOpenAI`)."""
