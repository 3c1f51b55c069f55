"""The framework-neutral client: SiliconCloud through the ``openai`` SDK.

The SDK does HTTP, SSE, retries (429 and 5xx, with backoff) and time-outs; this
module adds what is SiliconCloud's: configuration from the environment, message
preparation (images, order, detail), request validation, error mapping, correct
streamed usage, and an API key that never shows.

Example:
    >>> from pathlib import Path
    >>> from siliconvision import SiliconVisionClient
    >>> client = SiliconVisionClient(model="Qwen/Qwen2.5-VL-72B-Instruct")  # doctest: +SKIP
    >>> client.ask([Path("cat.png")], "What animal is this?").content  # doctest: +SKIP
    >>> for delta in client.stream([{"role": "user", "content": "Hi"}]):  # doctest: +SKIP
    ...     print(delta.content or "", end="")
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import sys
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pydantic import SecretStr

from .catalog import Detail, ImageOrder, ModelSpec, get_model_spec
from .content import Image, Pdf, prepare_messages
from .errors import TRACE_HEADER, SiliconVisionError
from .guards import DEFAULT_MAX_FILE_BYTES
from .images import (
    DEFAULT_CACHE,
    ImageCache,
    PdfOptions,
    is_data_uri,
    is_image_source,
    is_image_url,
)
from .wire import (
    ChatReply,
    StreamAccumulator,
    StreamDelta,
    build_chat_request,
    parse_chat_completion,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MODEL",
    "DEFAULT_RETRY_INITIAL_DELAY",
    "DEFAULT_RETRY_MAX_DELAY",
    "SHARED_SETTINGS",
    "AsyncChatStream",
    "AsyncSiliconCloudOpenAI",
    "ChatStream",
    "MissingAPIKeyError",
    "SiliconCloudOpenAI",
    "SiliconVisionClient",
    "check_retry_delays",
    "check_timeout",
    "client_settings",
    "resolve_api_key",
    "resolve_base_url",
    "retry_delay",
]

if TYPE_CHECKING:
    from ._sdk import AsyncSiliconCloudOpenAI, MissingAPIKeyError, SiliconCloudOpenAI
    from .ratelimit import Permit, RateLimiter

_SDK_NAMES = frozenset({"AsyncSiliconCloudOpenAI", "MissingAPIKeyError", "SiliconCloudOpenAI"})


def __getattr__(name: str) -> Any:
    # The openai SDK subclasses load on first use (importing openai costs ~0.3 s).
    if name in _SDK_NAMES:
        from . import _sdk

        return getattr(_sdk, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEFAULT_BASE_URL = "https://api.siliconflow.cn/v1"
DEFAULT_MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
DEFAULT_EMBEDDING_MODEL = "BAAI/bge-m3"
API_KEY_ENV_VARS = ("SILICONFLOW_API_KEY", "SILICONCLOUD_API_KEY")
BASE_URL_ENV_VAR = "SILICONFLOW_BASE_URL"
DEFAULT_MAX_RETRIES = 2
"""Retries when ``max_retries=None`` (the ``openai`` SDK's own default)."""
DEFAULT_RETRY_INITIAL_DELAY = 0.5
"""Seconds before the first retry (the ``openai`` SDK's own default); doubles per retry."""
DEFAULT_RETRY_MAX_DELAY = 8.0
"""The longest wait between two attempts (the SDK's own default), ``Retry-After`` included."""


def resolve_api_key(explicit: str | SecretStr | None = None) -> SecretStr | None:
    """``explicit``, else ``SILICONFLOW_API_KEY``, else ``SILICONCLOUD_API_KEY``."""
    if isinstance(explicit, SecretStr):
        return explicit if explicit.get_secret_value() else None
    if explicit:
        return SecretStr(explicit)
    for name in API_KEY_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return SecretStr(value)
    return None


def resolve_base_url(explicit: str | None = None) -> str:
    """``explicit``, else ``SILICONFLOW_BASE_URL``, else the China endpoint."""
    return (explicit or os.environ.get(BASE_URL_ENV_VAR, "").strip() or DEFAULT_BASE_URL).rstrip(
        "/"
    )


def check_retry_delays(initial: float, maximum: float) -> tuple[float, float]:
    """``(initial, maximum)`` as floats; raises ``ValueError`` unless both are finite and
    >= 0."""
    for name, value in (("retry_initial_delay", initial), ("retry_max_delay", maximum)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number of seconds, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(initial), float(maximum)


def check_timeout(value: Any) -> Any:
    """``value`` as a time-out the ``openai`` SDK takes; raises ``ValueError`` otherwise.

    Accepted: ``None`` (no time-out), seconds (a finite number >= 0), a
    ``(connect, read)`` pair in seconds (as ``requests`` and ``ChatOpenAI`` take it; the
    write and pool time-outs are the read one, so no phase waits unbounded), an
    ``httpx``-style 4-tuple ``(connect, read, write, pool)``, or an ``httpx.Timeout``.
    Tuples become an ``httpx.Timeout`` (imported only then).

    >>> check_timeout(30)
    30.0
    >>> check_timeout((3, 10))
    Timeout(connect=3.0, read=10.0, write=10.0, pool=10.0)
    """
    if value is None:
        return None
    if _is_seconds(value):
        return float(value)
    if isinstance(value, tuple) and len(value) in (2, 4) and all(map(_is_seconds, value)):
        import httpx

        if len(value) == 2:
            connect, read = map(float, value)
            return httpx.Timeout(read, connect=connect)
        connect, read, write, pool = map(float, value)
        return httpx.Timeout(connect=connect, read=read, write=write, pool=pool)
    httpx_module = sys.modules.get("httpx")  # an httpx.Timeout means httpx is loaded
    if httpx_module is not None and isinstance(value, httpx_module.Timeout):
        return value
    raise ValueError(
        "timeout must be seconds (a number >= 0), None, a (connect, read) pair, a "
        f"(connect, read, write, pool) tuple or an httpx.Timeout; got {value!r}"
    )


def _is_seconds(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def retry_delay(
    retries_taken: int, *, initial: float, maximum: float, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry number ``retries_taken + 1``.

    ``initial * 2**retries_taken`` capped at ``maximum``, less up to 25% jitter (the
    SDK's shape, with its 0.5 s and 8 s made configurable). A server's ``Retry-After``
    is honoured, but never beyond ``maximum``: every wait is bounded.

    >>> retry_delay(10, initial=0.5, maximum=8.0) <= 8.0
    True
    >>> retry_delay(0, initial=0.5, maximum=8.0, retry_after=3.0)
    3.0
    """
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        return min(retry_after, maximum)
    base = min(initial * 2.0 ** min(max(retries_taken, 0), 60), maximum)
    return max(0.0, base * (1.0 - 0.25 * random.random()))


def _is_ours(exc: BaseException) -> bool:
    from openai import APIStatusError  # loaded by now: a request was made

    return isinstance(exc, (SiliconVisionError, APIStatusError))


def _request_of(sdk_stream: Any) -> Any:
    """The ``httpx.Request`` behind an SDK stream (``None`` if it has none)."""
    response = getattr(sdk_stream, "response", None)
    try:
        return response.request if response is not None else None
    except RuntimeError:  # an httpx.Response built without a request
        return None


class ChatStream:
    """A streamed answer: iterate for :class:`StreamDelta`; then :meth:`result`.

    Raises :class:`~siliconvision.IncompleteStreamError` (with the partial text) when
    the stream breaks or ends without its final chunk. Closing it (or leaving a
    ``with`` block) closes the HTTP response.

    >>> with client.stream(messages) as stream:  # doctest: +SKIP
    ...     for delta in stream:
    ...         print(delta.content or "", end="")
    ...     print(stream.result().usage)
    """

    def __init__(
        self, sdk_stream: Any, *, trace_id: str | None, permit: Permit | None = None
    ) -> None:
        self._sdk_stream = sdk_stream
        self.accumulator = StreamAccumulator()
        self.trace_id = trace_id
        self._permit = permit  # a rate-limit reservation, settled when the stream ends

    def __iter__(self) -> Iterator[StreamDelta]:
        accumulator = self.accumulator
        request = _request_of(self._sdk_stream)
        try:
            for chunk in self._sdk_stream:
                yield accumulator.add(chunk)
        except Exception as exc:
            if _is_ours(exc):
                raise
            why = f"broke ({type(exc).__name__}: {exc})"
            raise accumulator.incomplete_error(why, request=request) from exc
        finally:
            self.close()
        if not accumulator.complete:
            raise accumulator.incomplete_error("ended", request=request)

    def result(self) -> ChatReply:
        return self.accumulator.result().with_trace_id(self.trace_id)

    def close(self) -> None:
        self._sdk_stream.close()
        _settle_stream(self._permit, self.accumulator)

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncChatStream:
    """The async twin of :class:`ChatStream` (``async for`` / ``async with``)."""

    def __init__(
        self, sdk_stream: Any, *, trace_id: str | None, permit: Permit | None = None
    ) -> None:
        self._sdk_stream = sdk_stream
        self.accumulator = StreamAccumulator()
        self.trace_id = trace_id
        self._permit = permit  # a rate-limit reservation, settled when the stream ends

    async def __aiter__(self) -> AsyncIterator[StreamDelta]:
        accumulator = self.accumulator
        request = _request_of(self._sdk_stream)
        try:
            async for chunk in self._sdk_stream:
                yield accumulator.add(chunk)
        except Exception as exc:
            if _is_ours(exc):
                raise
            why = f"broke ({type(exc).__name__}: {exc})"
            raise accumulator.incomplete_error(why, request=request) from exc
        finally:
            await self.aclose()
        if not accumulator.complete:
            raise accumulator.incomplete_error("ended", request=request)

    def result(self) -> ChatReply:
        return self.accumulator.result().with_trace_id(self.trace_id)

    async def aclose(self) -> None:
        await self._sdk_stream.close()
        _settle_stream(self._permit, self.accumulator)

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _settle_stream(permit: Permit | None, accumulator: StreamAccumulator) -> None:
    """A finished stream's usage settles its reservation; a cut one keeps the estimate."""
    if permit is not None:
        permit.settle_usage(accumulator.result().usage if accumulator.complete else None)


def _image_item(image: Any) -> Any:
    """In :meth:`SiliconVisionClient.ask`, a ``str`` is a path or a URL, not text: a
    path is the caller's own choice; a URL (``file:`` ones too) is sent as message
    content, under the message policy."""
    if isinstance(image, str):
        if is_image_url(image) or is_data_uri(image) or image[:5].lower() == "file:":
            return {"type": "image_url", "image_url": {"url": image}}
        return Path(image)
    return image


#: Per event loop, the sentinels that close the async SDK clients made on it (by id).
_LOOP_SENTINELS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[int, AsyncGenerator[None, None]]
] = weakref.WeakKeyDictionary()


async def _close_at_loop_end(client: AsyncSiliconCloudOpenAI) -> None:
    """Have the running loop close ``client`` when the loop shuts down.

    ``asyncio.run`` (and ``asyncio.Runner``, pytest-asyncio...) finalise async generators
    before closing their loop: a started sentinel generator closes the client then, so
    pooled connections never outlive their loop (else they are torn down at garbage
    collection, from another loop: "Event loop is closed"). The sentinel holds the client
    weakly: a client dropped earlier is closed by the SDK on collection, and a client in
    use by a stream is never closed under it.
    """
    sentinels = _LOOP_SENTINELS.setdefault(asyncio.get_running_loop(), {})
    key = id(client)
    if key in sentinels:
        return
    sentinel = _sentinel(weakref.ref(client))
    await sentinel.__anext__()  # started: the loop's async-generator hooks track it now
    sentinels[key] = sentinel
    weakref.finalize(client, sentinels.pop, key, None)


async def _sentinel(
    client_ref: weakref.ref[AsyncSiliconCloudOpenAI],
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        client = client_ref()
        if client is not None:
            await client.close()


SHARED_SETTINGS: Final = (
    "base_url",
    "model",
    "detail",
    "image_order",
    "timeout",
    "max_retries",
    "retry_initial_delay",
    "retry_max_delay",
    "fetch_urls",
    "allow_private_urls",
    "allowed_dirs",
    "max_file_bytes",
    "default_headers",
    "rate_limits",
    "pdf",
)
"""The :class:`SiliconVisionClient` arguments an adapter exposes under the same name."""


def client_settings(settings: object, **held: Any) -> dict[str, Any]:
    """The keyword arguments of the :class:`SiliconVisionClient` an adapter (a LangChain
    model, a LlamaIndex LLM) is built from: its :data:`SHARED_SETTINGS` attributes,
    plus what it holds under other names (``api_key``, the HTTP clients). The one place
    a setting that reaches the core client is listed; adapters rebuild their client when
    this changes (compare with ``==``: it holds dicts and HTTP clients).

    >>> from types import SimpleNamespace
    >>> model = SimpleNamespace(**{name: None for name in SHARED_SETTINGS})
    >>> sorted(client_settings(model, api_key="k"))[:3]
    ['allow_private_urls', 'allowed_dirs', 'api_key']
    """
    values = {name: getattr(settings, name) for name in SHARED_SETTINGS}
    values["allowed_dirs"] = tuple(values["allowed_dirs"] or ())
    return {**values, **held}


class SiliconVisionClient:
    """SiliconCloud's vision models through the ``openai`` SDK, done right.

    Configuration: ``api_key`` (else ``SILICONFLOW_API_KEY``/``SILICONCLOUD_API_KEY``),
    ``base_url`` (else ``SILICONFLOW_BASE_URL``, else the China endpoint), the
    default ``model``, ``detail`` and ``image_order``, ``timeout`` (per attempt:
    seconds, a ``(connect, read)`` pair or an ``httpx.Timeout``; see
    :func:`check_timeout`), ``max_retries`` (the SDK retries 429, 408, 409, 5xx,
    connection errors and time-outs that many times; ``None``: the SDK's default, 2),
    ``default_headers`` (sent with every request), ``http_client`` /
    ``http_async_client`` (your own ``httpx`` clients),
    ``retry_initial_delay``/``retry_max_delay`` (the backoff: ``initial * 2**n``
    capped at ``max``, less up to 25% jitter; a ``Retry-After`` is honoured up to
    ``max``), ``fetch_urls`` (download URL images client-side, through the SSRF guard;
    off by default; ``allow_private_urls=True`` lifts the guard's address checks, for
    trusted URLs only), ``rate_limits`` (a :class:`~siliconvision.ratelimit.RateLimits`
    shared by every chat request sent with it: each attempt waits for its reservation,
    see :mod:`siliconvision.ratelimit`), ``pdf`` (a
    :class:`~siliconvision.images.PdfOptions`: how PDF pages are rendered, and the caps
    that bound a document; PDFs in messages are sent as one image per page).

    Local files: paths the program passes itself (``Path``, :class:`Image`, the
    ``images`` of :meth:`ask`) are read; a local path or ``file:`` URL in the ``url``
    of a message's ``image_url``/``video_url`` part is read only inside
    ``allowed_dirs`` (none by default), after resolving symlinks and ``..``. Every
    file read is a regular file of at most ``max_file_bytes`` (checked before reading).

    >>> client = SiliconVisionClient(model="OpenGVLab/InternVL2-26B", detail="low")
    >>> client.ask(["shelf.jpg", "https://example.com/bill.png"], "Total?")  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        detail: Detail | None = None,
        image_order: ImageOrder = "auto",
        timeout: Any = 60.0,
        max_retries: int | None = 2,
        retry_initial_delay: float = DEFAULT_RETRY_INITIAL_DELAY,
        retry_max_delay: float = DEFAULT_RETRY_MAX_DELAY,
        fetch_urls: bool = False,
        image_cache: ImageCache | None = DEFAULT_CACHE,
        allowed_dirs: Sequence[str | os.PathLike[str]] | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        allow_private_urls: bool = False,
        default_headers: Mapping[str, str] | None = None,
        http_client: Any = None,
        http_async_client: Any = None,
        rate_limits: RateLimiter | None = None,
        pdf: PdfOptions | None = None,
    ) -> None:
        self._api_key = resolve_api_key(api_key)
        self.base_url = resolve_base_url(base_url)
        self.model = model
        self.detail = detail
        self.image_order: ImageOrder = image_order
        self.timeout = check_timeout(timeout)
        if max_retries is None:
            max_retries = DEFAULT_MAX_RETRIES
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0 or None, got {max_retries!r}")
        self.max_retries = max_retries
        self.retry_initial_delay, self.retry_max_delay = check_retry_delays(
            retry_initial_delay, retry_max_delay
        )
        self.fetch_urls = fetch_urls
        self.image_cache = image_cache
        if isinstance(allowed_dirs, (str, os.PathLike)):
            allowed_dirs = [allowed_dirs]
        self.allowed_dirs: tuple[str | os.PathLike[str], ...] = tuple(allowed_dirs or ())
        self.max_file_bytes = max_file_bytes
        self.allow_private_urls = allow_private_urls
        if pdf is not None and not isinstance(pdf, PdfOptions):
            raise TypeError(f"pdf must be a siliconvision.images.PdfOptions, got {pdf!r}")
        self.pdf = pdf
        self._default_headers = dict(default_headers or {})
        self._http_client = http_client
        self._http_async_client = http_async_client
        self._sync: SiliconCloudOpenAI | None = None
        # One async SDK client per event loop: an httpx async client is bound to the
        # loop it first ran on, and LangChain/LlamaIndex callers often run several loops.
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncSiliconCloudOpenAI]
        self._async = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.rate_limits = _check_rate_limits(rate_limits)
        # Fail early on bad defaults rather than on the first request.
        prepare_messages(
            [{"role": "user", "content": "x"}],
            model=model,
            image_order=image_order,
            default_detail=detail,
        )

    def __repr__(self) -> str:
        key = "'**********'" if self._api_key else "None"
        return (
            f"SiliconVisionClient(model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key={key}, detail={self.detail!r}, image_order={self.image_order!r})"
        )

    @property
    def api_key(self) -> SecretStr | None:
        """The key as a ``SecretStr`` (prints as ``**********``)."""
        return self._api_key

    def _require_key(self) -> str:
        if self._api_key is None:
            from ._sdk import MissingAPIKeyError

            raise MissingAPIKeyError(
                "no SiliconCloud API key: pass api_key=... or set SILICONFLOW_API_KEY "
                "(or SILICONCLOUD_API_KEY); for offline use, start "
                "siliconvision.testing.LocalSiliconCloud and pass its base_url and api_key"
            )
        return self._api_key.get_secret_value()

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "api_key": self._require_key(),
            "base_url": self.base_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "retry_initial_delay": self.retry_initial_delay,
            "retry_max_delay": self.retry_max_delay,
        }
        if self._default_headers:
            kwargs["default_headers"] = self._default_headers
        return kwargs

    @property
    def openai(self) -> SiliconCloudOpenAI:
        """The underlying sync SDK client (created on first use)."""
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    kwargs = self._client_kwargs()
                    if self._http_client is not None:
                        kwargs["http_client"] = self._http_client
                    from ._sdk import SiliconCloudOpenAI

                    self._sync = SiliconCloudOpenAI(**kwargs)
        return self._sync

    @property
    def async_openai(self) -> AsyncSiliconCloudOpenAI:
        """The async SDK client of the running event loop (created on first use there)."""
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            with self._lock:
                client = self._async.get(loop)
                if client is None:
                    kwargs = self._client_kwargs()
                    if self._http_async_client is not None:
                        kwargs["http_client"] = self._http_async_client
                    from ._sdk import AsyncSiliconCloudOpenAI

                    client = self._async[loop] = AsyncSiliconCloudOpenAI(**kwargs)
        return client

    async def _aopenai(self) -> AsyncSiliconCloudOpenAI:
        """:attr:`async_openai`, closed by its own loop when that loop shuts down."""
        client = self.async_openai
        if self._http_async_client is None:  # (a caller's own HTTP client is theirs to close)
            await _close_at_loop_end(client)
        return client

    def spec(self, model: str | None = None) -> ModelSpec:
        """The catalog entry for ``model`` (default: this client's model)."""
        return get_model_spec(model or self.model)

    def prepare_messages(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        detail: Detail | None = None,
        image_order: ImageOrder | None = None,
    ) -> list[dict[str, Any]]:
        """Messages made ready for the wire with this client's defaults."""
        return prepare_messages(
            messages,
            model=model or self.model,
            image_order=image_order or self.image_order,
            detail=detail,
            default_detail=self.detail,
            fetch_urls=self.fetch_urls,
            cache=self.image_cache,
            allowed_dirs=self.allowed_dirs,
            max_file_bytes=self.max_file_bytes,
            allow_private_urls=self.allow_private_urls,
            pdf=self.pdf,
        )

    def build_request(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        stream: bool = False,
        detail: Detail | None = None,
        image_order: ImageOrder | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """The validated ``chat.completions.create`` keyword arguments (nothing is sent)."""
        model = model or self.model
        prepared = self.prepare_messages(
            messages, model=model, detail=detail, image_order=image_order
        )
        return build_chat_request(prepared, model=model, stream=stream, **params)

    def chat(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> ChatReply:
        """One answer. ``options``: ``model``, ``detail``, ``image_order``, request params."""
        request = self.build_request(messages, **options)
        if self.rate_limits is None:
            raw = self.openai.send_chat(request)
            return parse_chat_completion(raw.parse(), trace_id=raw.headers.get(TRACE_HEADER))
        from .ratelimit import send_limited

        raw, permit = send_limited(self, request)
        return _settled(permit, raw)

    async def achat(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> ChatReply:
        """Async :meth:`chat`."""
        request = self.build_request(messages, **options)
        if self.rate_limits is None:
            raw = await (await self._aopenai()).send_chat(request)
            return parse_chat_completion(raw.parse(), trace_id=raw.headers.get(TRACE_HEADER))
        from .ratelimit import asend_limited

        raw, permit = await asend_limited(self, request)
        return _settled(permit, raw)

    def stream(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> ChatStream:
        """A streamed answer (see :class:`ChatStream`)."""
        request = self.build_request(messages, stream=True, **options)
        permit: Permit | None = None
        if self.rate_limits is None:
            raw = self.openai.send_chat(request)
        else:
            from .ratelimit import send_limited

            raw, permit = send_limited(self, request)
        return ChatStream(raw.parse(), trace_id=raw.headers.get(TRACE_HEADER), permit=permit)

    async def astream(
        self, messages: Sequence[Mapping[str, Any]], **options: Any
    ) -> AsyncChatStream:
        """A streamed answer, async (see :class:`AsyncChatStream`)."""
        request = self.build_request(messages, stream=True, **options)
        permit: Permit | None = None
        if self.rate_limits is None:
            raw = await (await self._aopenai()).send_chat(request)
        else:
            from .ratelimit import asend_limited

            raw, permit = await asend_limited(self, request)
        return AsyncChatStream(raw.parse(), trace_id=raw.headers.get(TRACE_HEADER), permit=permit)

    def ask_messages(self, images: Sequence[Any] | Any, question: str) -> list[dict[str, Any]]:
        """One user message: ``images`` then ``question``. Here a ``str`` image is a path
        or an http(s)/data URL, never text; a PDF (a path, :class:`~siliconvision.Pdf`)
        is sent as its pages."""
        if (
            isinstance(images, (Image, Pdf))
            or is_image_source(images)
            or not isinstance(images, Sequence)
        ):
            images = [images]
        return [{"role": "user", "content": [*(_image_item(image) for image in images), question]}]

    def ask(self, images: Sequence[Any] | Any, question: str, **options: Any) -> ChatReply:
        """Ask one question about one or more images (``options`` as for :meth:`chat`)."""
        return self.chat(self.ask_messages(images, question), **options)

    def embed(
        self, texts: Sequence[str], *, model: str = DEFAULT_EMBEDDING_MODEL
    ) -> list[list[float]]:
        """Embeddings for ``texts`` (``POST /v1/embeddings``, e.g. ``BAAI/bge-m3``)."""
        texts = _check_texts(texts)
        response = self.openai.embeddings.create(model=model, input=texts)
        return [list(item.embedding) for item in sorted(response.data, key=lambda d: d.index)]

    async def aembed(
        self, texts: Sequence[str], *, model: str = DEFAULT_EMBEDDING_MODEL
    ) -> list[list[float]]:
        """Async :meth:`embed`."""
        texts = _check_texts(texts)
        response = await (await self._aopenai()).embeddings.create(model=model, input=texts)
        return [list(item.embedding) for item in sorted(response.data, key=lambda d: d.index)]

    def list_models(self, *, sub_type: str | None = "chat") -> list[str]:
        """Model ids the server lists (it carries no capabilities: see the catalog)."""
        query = {"type": "text", "sub_type": sub_type} if sub_type else None
        page = self.openai.models.list(extra_query=query)
        return [model.id for model in page.data]

    def close(self) -> None:
        """Close the sync HTTP client (the async one: :meth:`aclose`)."""
        if self._sync is not None:
            self._sync.close()

    async def aclose(self) -> None:
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def __enter__(self) -> SiliconVisionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> SiliconVisionClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("SiliconVisionClient holds a secret and open connections; not picklable")


def _check_rate_limits(rate_limits: object) -> RateLimiter | None:
    if rate_limits is None:
        return None
    from .ratelimit import RateLimiter

    if not isinstance(rate_limits, RateLimiter):
        raise TypeError(
            "rate_limits must be a siliconvision.RateLimits (or a stand-in with acquire, "
            "aacquire, rate_limited and completion_estimate), got "
            f"{type(rate_limits).__name__}"
        )
    return rate_limits


def _settled(permit: Permit, raw: Any) -> ChatReply:
    """The answer of a rate-limited request; its reservation settled with the real usage."""
    try:
        result = parse_chat_completion(raw.parse(), trace_id=raw.headers.get(TRACE_HEADER))
    except BaseException:
        permit.settle(None)
        raise
    permit.settle_usage(result.usage)
    return result


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise SiliconVisionError("embed() takes a non-empty list of non-empty strings")
    return texts
