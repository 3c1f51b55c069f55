"""``SiliconVision``: SiliconCloud's vision-language models as a LlamaIndex LLM.

This module only wires LlamaIndex's ``FunctionCallingLLM`` interface to the core
client (:class:`siliconvision.client.SiliconVisionClient`); the converters live in
:mod:`llama_index_siliconvision.utils`, and everything SiliconCloud-specific (images,
order, detail, catalog, wire, errors, usage) lives in :mod:`siliconvision`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
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
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from pydantic import SecretStr

from siliconvision.catalog import Detail, ImageOrder
from siliconvision.client import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    DEFAULT_RETRY_INITIAL_DELAY,
    DEFAULT_RETRY_MAX_DELAY,
    AsyncChatStream,
    ChatStream,
    SiliconVisionClient,
    resolve_api_key,
    resolve_base_url,
)
from siliconvision.ratelimit import RateLimits

from .utils import (
    StreamState,
    chat_response_from_result,
    completion_response_from_chat,
    completion_to_wire_messages,
    llm_metadata,
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
    "presence_penalty",
    "stop",
    "seed",
    "enable_thinking",
    "thinking_budget",
)


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
    URL; its ``detail`` wins over the instance's) and ``VideoBlock`` (video models);
    ``complete(prompt, image_documents=[...])`` takes ``ImageDocument``, ``ImageNode``,
    ``ImageBlock``, paths and URLs, in retrieval order. Reasoning arrives as
    ``ThinkingBlock`` (streamed as ``additional_kwargs["thinking_delta"]``); token
    counts are in ``additional_kwargs`` (correct totals, also when streaming).

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
    presence_penalty: float | None = Field(default=None, description="Presence penalty.")
    stop: list[str] | None = Field(default=None, description="Up to 4 stop sequences.")
    seed: int | None = Field(default=None, description="Sampling seed.")
    enable_thinking: bool | None = Field(
        default=None, description="Turn reasoning on/off for models where it is optional."
    )
    thinking_budget: int | None = Field(
        default=None, description="Reasoning token budget (128-32768)."
    )
    timeout: float | None = Field(default=60.0, description="Request time-out in seconds.")
    max_retries: int = Field(default=2, ge=0, description="SDK retries on 429 and 5xx.")
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
        default=False, description="Download URL images client-side (else sent as URLs)."
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="More request fields; ones the core does not name go to extra_body.",
    )
    rate_limits: RateLimits | None = Field(
        default=None,
        exclude=True,
        description="An account's RPM/TPM budget shared by every request sent with it.",
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
        http_client: Any = None,
        http_async_client: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model=model, base_url=resolve_base_url(base_url), **kwargs)
        self._api_key = resolve_api_key(api_key)
        self._http_client = http_client
        self._http_async_client = http_async_client
        # Fail at construction, with the core's rules, on a bad model/setting.
        self.client.build_request(
            [{"role": "user", "content": "x"}], model=self.model, **self._request_params()
        )

    @classmethod
    def class_name(cls) -> str:
        # "multi" tells LlamaIndex multimodal indexes this LLM takes images (no warning).
        return "siliconvision_multi_modal_llm"

    @property
    def metadata(self) -> LLMMetadata:
        """From the core catalog: context window, tool support, output budget."""
        return llm_metadata(self.model, self.max_tokens)

    @property
    def client(self) -> SiliconVisionClient:
        """The core client (rebuilt when a connection or image setting changes)."""
        config = (
            self.base_url,
            self.model,
            self.detail,
            self.image_order,
            self.timeout,
            self.max_retries,
            self.retry_initial_delay,
            self.retry_max_delay,
            self.fetch_urls,
            self.rate_limits,
        )
        if self._client is None or self._client_config != config:
            self._client = SiliconVisionClient(
                api_key=self._api_key,
                base_url=self.base_url,
                model=self.model,
                detail=self.detail,
                image_order=self.image_order,
                timeout=self.timeout,
                max_retries=self.max_retries,
                retry_initial_delay=self.retry_initial_delay,
                retry_max_delay=self.retry_max_delay,
                fetch_urls=self.fetch_urls,
                http_client=self._http_client,
                http_async_client=self._http_async_client,
                rate_limits=self.rate_limits,
            )
            self._client_config = config
        return self._client

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
        detail, image_order, sampling fields and ``extra_body``.

        Per-call ``kwargs`` win over instance settings; names the core does not know
        raise its ``ParameterError`` when sent (pass provider fields in ``extra_body=``).

        >>> SiliconVision(top_k=5).request_options(detail="low")
        {'model': 'Qwen/Qwen2.5-VL-72B-Instruct', 'detail': 'low', 'top_k': 5}
        """
        return self._options(kwargs)

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(kwargs)
        options: dict[str, Any] = {"model": kwargs.pop("model", None) or self.model}
        for name in ("detail", "image_order"):
            value = kwargs.pop(name, None)
            if value is not None:
                options[name] = value
        _, extra = split_request_fields(self.additional_kwargs)
        extra.update(kwargs.pop("extra_body", None) or {})
        if extra:
            options["extra_body"] = extra
        options.update(self._request_params())
        options.update(kwargs)
        return options

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
        messages = completion_to_wire_messages(prompt, _images(formatted, image_documents))
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
        messages = completion_to_wire_messages(prompt, _images(formatted, image_documents))
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
        messages = completion_to_wire_messages(prompt, _images(formatted, image_documents))
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
        messages = completion_to_wire_messages(prompt, _images(formatted, image_documents))
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
