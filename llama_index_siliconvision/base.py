"""``SiliconVision``: SiliconCloud's vision-language models as a LlamaIndex LLM.

This module only wires LlamaIndex's ``FunctionCallingLLM`` interface to the core
client (:class:`siliconvision.client.SiliconVisionClient`); the converters live in
:mod:`llama_index_siliconvision.utils`, and everything SiliconCloud-specific (images,
order, detail, catalog, wire, errors, usage) lives in :mod:`siliconvision`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_validator
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from pydantic import SecretStr
from typing_extensions import Self

from siliconvision.catalog import Detail, ImageOrder, ModelSpec, get_model_spec
from siliconvision.client import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    DEFAULT_RETRY_INITIAL_DELAY,
    DEFAULT_RETRY_MAX_DELAY,
    AsyncChatStream,
    ChatStream,
    SiliconVisionClient,
    client_settings,
    resolve_api_key,
    resolve_base_url,
)
from siliconvision.guards import DEFAULT_MAX_FILE_BYTES
from siliconvision.images import PdfOptions
from siliconvision.ratelimit import RateLimits
from siliconvision.wire import ChatReply, ParameterError

from .utils import (
    StreamState,
    chat_response_from_result,
    completion_response_from_chat,
    completion_to_wire_messages,
    llm_metadata,
    openai_like_settings,
    resolve_tool_choice,
    split_request_fields,
    to_wire_messages,
    tool_selections_from_message,
    tools_to_wire,
)

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["SiliconVision"]

#: Instance fields sent as request parameters when set (``None`` = server default).
_SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "max_tokens",
    "frequency_penalty",
    "stop",
    "enable_thinking",
    "thinking_budget",
)


#: The request a reported call sends, and where its result goes (see report_chat).
_PENDING: ContextVar[tuple[Callable[[], Any], list[ChatReply]] | None] = ContextVar(
    "siliconvision_pending_call", default=None
)


def _pending() -> tuple[Callable[[], Any], list[ChatReply]]:
    pending = _PENDING.get()
    if pending is None:
        raise RuntimeError("_reported_chat runs only through report_chat/areport_chat")
    return pending


def _one_of(name: str, value: Any, alias: str, alias_value: Any) -> Any:
    if alias_value is None:
        return value
    if value is not None and value != alias_value:
        raise ValueError(f"SiliconVision got both {name!r} and {alias!r}; pass one")
    return alias_value


def _images(formatted: bool | Sequence[Any], image_documents: Sequence[Any] | None) -> Any:
    """``image_documents``, also when passed positionally in ``MultiModalLLM`` style
    (``complete(prompt, image_documents)``), where ``LLM`` has ``formatted``."""
    if isinstance(formatted, bool):
        return image_documents
    if image_documents is not None:
        raise TypeError("image_documents given twice (positionally and by keyword)")
    return formatted


def _chat_stream(stream: ChatStream) -> Iterator[ChatResponse]:
    state = StreamState(stream.accumulator)
    with stream:
        for delta in stream:
            yield state.response(delta)


async def _achat_stream(stream: AsyncChatStream) -> AsyncIterator[ChatResponse]:
    state = StreamState(stream.accumulator)
    async with stream:
        async for delta in stream:
            yield state.response(delta)


def _completion_stream(stream: ChatStream) -> Iterator[CompletionResponse]:
    for response in _chat_stream(stream):
        yield completion_response_from_chat(response)


async def _acompletion_stream(stream: AsyncChatStream) -> AsyncIterator[CompletionResponse]:
    async for response in _achat_stream(stream):
        yield completion_response_from_chat(response)


class SiliconVision(FunctionCallingLLM):
    """SiliconCloud's vision-language models (Qwen-VL, GLM-V, InternVL, ...) in LlamaIndex.

    ``ChatMessage(blocks=[...])`` takes ``TextBlock``, ``ImageBlock`` (bytes, path or
    URL; its ``detail`` wins over the instance's), ``DocumentBlock`` (a PDF: each page
    sent as one image, rendered at the size the model's server keeps; ``pdf`` sets the
    caps) and ``VideoBlock`` (video models);
    ``complete(prompt, image_documents=[...])`` takes ``ImageDocument``, ``ImageNode``,
    ``ImageBlock``, paths and URLs, in retrieval order. ``ImageBlock(path=...)`` is the
    program's own choice and is read; a block's ``url`` (and a node's ``image_url``) is
    message content: a ``file:`` URL there is read only inside ``allowed_dirs`` (none by
    default). Files read are regular files of at most ``max_file_bytes``; with
    ``fetch_urls=True`` URLs are fetched through the SSRF guard. Reasoning arrives as
    ``ThinkingBlock`` (streamed as ``additional_kwargs["thinking_delta"]``); token
    counts are in ``additional_kwargs`` (correct totals, also when streaming).

    ``OpenAILike``'s settings work under its names (``api_base``, ``default_headers``,
    ``context_window``, ``is_function_calling_model``, ``http_client``,
    ``async_http_client``, ``max_new_tokens``, ``additional_kwargs`` with
    ``extra_headers``, ...); the ones SiliconCloud cannot honour (``is_chat_model=False``,
    ``seed``, ``logprobs``, ``reasoning_effort``, ...) and unknown keywords raise
    ``ValueError`` naming them (see :func:`~llama_index_siliconvision.utils.openai_like_settings`).

    The API key comes from ``api_key``, else ``SILICONFLOW_API_KEY``, else
    ``SILICONCLOUD_API_KEY``; it is never a field, so it is absent from ``repr``,
    ``to_dict``/``to_json``, ``to_payload``, instrumentation events and pickles.

    Example:
        >>> from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
        >>> llm = SiliconVision(model="Qwen/Qwen2.5-VL-72B-Instruct", detail="low")
        >>> msg = ChatMessage(blocks=[
        ...     ImageBlock(path="before.png"), ImageBlock(url="https://example.com/after.png"),
        ...     TextBlock(text="What changed between these two images?"),
        ... ])  # doctest: +SKIP
        >>> print(llm.chat([msg]).message.content)  # doctest: +SKIP
        >>> for r in llm.stream_complete("Describe it.", image_documents=["cat.jpg"]):
        ...     print(r.delta, end="")  # doctest: +SKIP
    """

    model: str = Field(default=DEFAULT_MODEL, description="SiliconCloud model id.")
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="API base URL (default: SILICONFLOW_BASE_URL, else the China endpoint).",
    )
    detail: Detail | None = Field(
        default=None,
        description="Default image detail (an ImageBlock's own detail wins); None = catalog.",
    )
    image_order: ImageOrder = Field(
        default="auto",
        description="'auto' (catalog: images first for InternVL), 'images_first' or 'preserve'.",
    )
    temperature: float | None = Field(default=None, description="Sampling temperature (0-2).")
    top_p: float | None = Field(default=None, description="Nucleus sampling (0-1).")
    top_k: int | None = Field(default=None, description="Top-k sampling (SiliconCloud extra).")
    min_p: float | None = Field(default=None, description="Min-p sampling (SiliconCloud extra).")
    max_tokens: int | None = Field(default=None, description="Maximum tokens to generate.")
    frequency_penalty: float | None = Field(default=None, description="Frequency penalty.")
    stop: list[str] | None = Field(default=None, description="Up to 4 stop sequences.")
    enable_thinking: bool | None = Field(
        default=None, description="Turn reasoning on/off for models where it is optional."
    )
    thinking_budget: int | None = Field(
        default=None, description="Reasoning token budget (128-32768)."
    )
    timeout: Any = Field(
        default=60.0,
        description="Per attempt: seconds, None, a (connect, read) pair or an httpx.Timeout.",
    )
    max_retries: int = Field(
        default=2, ge=0, description="SDK retries on 429 and 5xx (None: the SDK's 2)."
    )
    retry_initial_delay: float = Field(
        default=DEFAULT_RETRY_INITIAL_DELAY,
        ge=0,
        allow_inf_nan=False,
        description="Seconds before the first retry; doubled per retry.",
    )
    retry_max_delay: float = Field(
        default=DEFAULT_RETRY_MAX_DELAY,
        ge=0,
        allow_inf_nan=False,
        description="Longest wait between two attempts (Retry-After included).",
    )
    fetch_urls: bool = Field(
        default=False,
        description="Download URL images client-side (else sent as URLs), always through "
        "the SSRF guard (the URL, every redirect hop, every connection).",
    )
    allow_private_urls: bool = Field(
        default=False,
        description="With fetch_urls: allow loopback/private/link-local hosts (trusted URLs).",
    )
    allowed_dirs: list[str] = Field(
        default_factory=list,
        description="Directories whose files an ImageBlock/VideoBlock url (file: URL) may "
        "name, after resolving symlinks and '..'; empty: none. ImageBlock(path=...) is the "
        "program's own choice and is read whatever this says.",
    )
    max_file_bytes: int = Field(
        default=DEFAULT_MAX_FILE_BYTES,
        ge=1,
        description="Local files larger than this are refused (checked before reading).",
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="More request fields, sent as given (ones the core does not name go to "
        "extra_body); 'extra_headers' are HTTP headers.",
    )
    default_headers: dict[str, str] | None = Field(
        default=None, description="HTTP headers sent with every request."
    )
    context_window: int | None = Field(
        default=None, description="Context window for LlamaIndex (None: the catalog's)."
    )
    is_function_calling_model: bool | None = Field(
        default=None,
        description="Tool calling on (True) or off (False) for this model, overriding the "
        "catalog (None).",
    )
    is_chat_model: bool = Field(
        default=True, description="Always True: SiliconCloud serves its VLMs as chat models."
    )
    rate_limits: RateLimits | None = Field(
        default=None,
        exclude=True,
        description="An account's RPM/TPM budget shared by every request sent with it.",
    )
    pdf: PdfOptions | None = Field(
        default=None,
        exclude=True,
        description="How PDF pages are rendered (dpi) and the caps that bound a document "
        "(max_pages, max_pixels, timeout); None: the defaults.",
    )

    _api_key: SecretStr | None = PrivateAttr(default=None)
    _client: SiliconVisionClient | None = PrivateAttr(default=None)
    _client_config: tuple[Any, ...] | None = PrivateAttr(default=None)
    _http_client: Any = PrivateAttr(default=None)
    _http_async_client: Any = PrivateAttr(default=None)

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        api_base: str | None = None,
        http_client: Any = None,
        http_async_client: Any = None,
        async_http_client: Any = None,
        **kwargs: Any,
    ) -> None:
        base_url = _one_of("base_url", base_url, "api_base", api_base)
        http_async_client = _one_of(
            "http_async_client", http_async_client, "async_http_client", async_http_client
        )
        kwargs = openai_like_settings(kwargs, type(self).model_fields)
        super().__init__(model=model, base_url=resolve_base_url(base_url), **kwargs)
        self._api_key = resolve_api_key(api_key)
        self._http_client = http_client
        self._http_async_client = http_async_client
        # Fail at construction, with the core's rules, on a bad model/setting.
        self.client.build_request([{"role": "user", "content": "x"}], **self._options({}))

    @field_validator("allowed_dirs", mode="before")
    @classmethod
    def _dirs(cls, value: Any) -> Any:
        if isinstance(value, (str, os.PathLike)):
            value = [value]
        if isinstance(value, Sequence):
            return [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
        return value

    @classmethod
    def class_name(cls) -> str:
        # "multi" tells LlamaIndex multimodal indexes this LLM takes images (no warning).
        return "siliconvision_multi_modal_llm"

    @property
    def api_base(self) -> str:
        """OpenAILike's name for :attr:`base_url`."""
        return self.base_url

    def spec(self, model: str | None = None) -> ModelSpec:
        """The catalog entry the requests use for ``model`` (default: this LLM's), with
        ``is_function_calling_model`` applied when it is set."""
        if self.is_function_calling_model is None:
            return get_model_spec(model or self.model)
        return get_model_spec(model or self.model, tools=self.is_function_calling_model)

    @property
    def metadata(self) -> LLMMetadata:
        """From the core catalog (context window, tool support, output budget), with
        ``context_window`` and ``is_function_calling_model`` applied when set."""
        metadata = llm_metadata(self.spec(), self.max_tokens)
        if self.context_window is not None:
            metadata.context_window = self.context_window
        return metadata

    def _client_settings(self) -> dict[str, Any]:
        """The core client's arguments (it is rebuilt when one changes)."""
        return client_settings(
            self,
            api_key=self._api_key,
            http_client=self._http_client,
            http_async_client=self._http_async_client,
        )

    @property
    def client(self) -> SiliconVisionClient:
        """The core client (rebuilt when a connection or image setting changes)."""
        settings = self._client_settings()
        config = tuple(settings.items())  # compared with ==, never hashed
        if self._client is None or self._client_config != config:
            self._client = SiliconVisionClient(**settings)
            self._client_config = config
        return self._client

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        # The core client (a secret and open connections) is not copied: the copy
        # builds its own on first use. The caller's HTTP clients are shared.
        memo = {} if memo is None else memo
        if self._client is not None:
            memo[id(self._client)] = None
        for shared in (self._http_client, self._http_async_client):
            if shared is not None:
                memo[id(shared)] = shared
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[str, Any]:
        # Never pickle the key (or the connections): an unpickled copy re-reads the
        # key from the environment.
        clone = self.model_copy()
        clone._api_key = None
        clone._client = None
        clone._client_config = None
        clone._http_client = None
        clone._http_async_client = None
        state: dict[str, Any] = super(SiliconVision, clone).__getstate__()
        return state

    # ------------------------------------------------------------------ requests

    def _request_params(self) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in _SAMPLING_FIELDS}
        named, _ = split_request_fields(self.additional_kwargs)
        params.update(named)
        return {k: v for k, v in params.items() if v is not None}

    def request_options(self, **kwargs: Any) -> dict[str, Any]:
        """The options a call passes to the core client's ``chat``/``stream``: model,
        detail, image_order, sampling fields, ``extra_body`` and ``extra_headers``.

        Per-call ``kwargs`` win over instance settings; names the core does not know
        raise its ``ParameterError`` when sent (pass provider fields in ``extra_body=``).

        >>> SiliconVision(top_k=5).request_options(detail="low")
        {'model': 'Qwen/Qwen2.5-VL-72B-Instruct', 'detail': 'low', 'top_k': 5}
        """
        options = self._options(kwargs)
        if isinstance(options["model"], ModelSpec):
            options["model"] = options["model"].id
        return options

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(kwargs)
        model = kwargs.pop("model", None) or self.model
        # A ModelSpec when is_function_calling_model overrides the catalog's tools flag.
        options: dict[str, Any] = {
            "model": model if self.is_function_calling_model is None else self.spec(model)
        }
        for name in ("detail", "image_order"):
            value = kwargs.pop(name, None)
            if value is not None:
                options[name] = value
        _, extra = split_request_fields(self.additional_kwargs)
        headers = {**(extra.pop("extra_headers", None) or {})}
        extra.update(extra.pop("extra_body", None) or {})
        extra.update(kwargs.pop("extra_body", None) or {})
        headers.update(kwargs.pop("extra_headers", None) or {})
        if "max_new_tokens" in kwargs:
            kwargs["max_tokens"] = kwargs.pop("max_new_tokens")
        if extra:
            options["extra_body"] = extra
        if headers:
            options["extra_headers"] = headers
        options.update(self._request_params())
        options.update(kwargs)
        if (options.get("n") or 1) > 1:
            raise ParameterError(
                f"n={options['n']}: a LlamaIndex response holds one message, so SiliconVision "
                "asks for one answer per call (call again for more)"
            )
        return options

    # ------------------------------------------------------------------ reported calls

    def report_chat(
        self, shown: Sequence[ChatMessage], send: Callable[[], ChatReply], **kwargs: Any
    ) -> ChatReply:
        """Run ``send`` (one core request) as a chat call of this LLM: LlamaIndex's
        instrumentation events and span, its ``CallbackManager`` (token counting) and
        ``rate_limiter`` see it as they see :meth:`chat`, with ``shown`` as its messages.
        The tool spec and the caption reader send through here."""
        box: list[ChatReply] = []
        token = _PENDING.set((send, box))
        try:
            self._reported_chat(shown, **kwargs)
        finally:
            _PENDING.reset(token)
        return box[0]

    async def areport_chat(
        self,
        shown: Sequence[ChatMessage],
        send: Callable[[], Awaitable[ChatReply]],
        **kwargs: Any,
    ) -> ChatReply:
        """Async :meth:`report_chat`."""
        box: list[ChatReply] = []
        token = _PENDING.set((send, box))
        try:
            await self._areported_chat(shown, **kwargs)
        finally:
            _PENDING.reset(token)
        return box[0]

    @llm_chat_callback()
    def _reported_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        send, box = _pending()
        result = send()
        box.append(result)
        return chat_response_from_result(result)

    @llm_chat_callback()
    async def _areported_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        send, box = _pending()
        result = await send()
        box.append(result)
        return chat_response_from_result(result)

    # ------------------------------------------------------------------ chat

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        result = self.client.chat(to_wire_messages(messages), **self._options(kwargs))
        return chat_response_from_result(result)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        stream = self.client.stream(to_wire_messages(messages), **self._options(kwargs))
        return _chat_stream(stream)  # type: ignore[return-value]

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        result = await self.client.achat(to_wire_messages(messages), **self._options(kwargs))
        return chat_response_from_result(result)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        stream = await self.client.astream(to_wire_messages(messages), **self._options(kwargs))
        return _achat_stream(stream)  # type: ignore[return-value]

    # ------------------------------------------------------------------ complete

    def _prompt(self, prompt: str, formatted: bool | Sequence[Any]) -> str:
        # As OpenAILike: ``completion_to_prompt`` formats a prompt not yet formatted.
        format_prompt = self.completion_to_prompt
        if formatted is True or format_prompt is None or not isinstance(prompt, str):
            return prompt
        return format_prompt(prompt)

    @llm_completion_callback()
    def complete(
        self,
        prompt: str,
        formatted: bool | Sequence[Any] = False,
        image_documents: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> CompletionResponse:
        """One answer to ``prompt`` about ``image_documents`` (``ImageDocument``,
        ``ImageNode``, ``ImageBlock``, paths, URLs, bytes), sent first, in their order."""
        messages = completion_to_wire_messages(
            self._prompt(prompt, formatted), _images(formatted, image_documents)
        )
        result = self.client.chat(messages, **self._options(kwargs))
        return completion_response_from_chat(chat_response_from_result(result))

    @llm_completion_callback()
    def stream_complete(
        self,
        prompt: str,
        formatted: bool | Sequence[Any] = False,
        image_documents: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> CompletionResponseGen:
        messages = completion_to_wire_messages(
            self._prompt(prompt, formatted), _images(formatted, image_documents)
        )
        stream = self.client.stream(messages, **self._options(kwargs))
        return _completion_stream(stream)  # type: ignore[return-value]

    @llm_completion_callback()
    async def acomplete(
        self,
        prompt: str,
        formatted: bool | Sequence[Any] = False,
        image_documents: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> CompletionResponse:
        messages = completion_to_wire_messages(
            self._prompt(prompt, formatted), _images(formatted, image_documents)
        )
        result = await self.client.achat(messages, **self._options(kwargs))
        return completion_response_from_chat(chat_response_from_result(result))

    @llm_completion_callback()
    async def astream_complete(
        self,
        prompt: str,
        formatted: bool | Sequence[Any] = False,
        image_documents: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> CompletionResponseAsyncGen:
        messages = completion_to_wire_messages(
            self._prompt(prompt, formatted), _images(formatted, image_documents)
        )
        stream = await self.client.astream(messages, **self._options(kwargs))
        return _acompletion_stream(stream)  # type: ignore[return-value]

    # ------------------------------------------------------------------ tools

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Messages, ``tools`` and ``tool_choice`` for :meth:`chat`.

        ``allow_parallel_tool_calls=False`` is enforced on the response (SiliconCloud
        documents no ``parallel_tool_calls`` field, so none is sent).
        """
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        wire_tools = tools_to_wire(tools)
        return {
            "messages": messages,
            "tools": wire_tools or None,
            "tool_choice": resolve_tool_choice(tool_choice, tool_required) if wire_tools else None,
            **kwargs,
        }

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        if not allow_parallel_tool_calls:
            calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
            if len(calls) > 1:
                response.message.blocks = [
                    b for b in response.message.blocks if not isinstance(b, ToolCallBlock)
                ] + [calls[0]]
        return response

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """The ``ToolSelection``s of a response (its ``ToolCallBlock``s)."""
        return tool_selections_from_message(
            response.message, error_on_no_tool_call=error_on_no_tool_call
        )
