"""The wire: request parameters in, responses and stream chunks out.

- :func:`build_chat_request` validates sampling parameters and SiliconCloud's
  extra fields (``enable_thinking``, ``thinking_budget``, ``top_k``, ``min_p``)
  and returns keyword arguments for ``openai``'s ``chat.completions.create``,
  the extras in ``extra_body``.
- :func:`parse_chat_completion` reads a non-streaming response.
- :class:`StreamAccumulator` reads a stream chunk by chunk. A request and a
  stream share the same processing: the accumulator's :meth:`~StreamAccumulator.result`
  is the same :class:`ChatReply` a non-streaming call returns.

SiliconCloud repeats the *cumulative* usage on every chunk; summing it (what
LangChain does with ``usage_metadata``) overcounts. Each :class:`StreamDelta`
therefore carries both ``usage`` (cumulative so far) and ``usage_increment``
(what this chunk added), whose sum is the correct total.

Example:
    >>> acc = StreamAccumulator()
    >>> for chunk in client.chat.completions.create(stream=True, **kwargs):  # doctest: +SKIP
    ...     delta = acc.add(chunk)
    ...     print(delta.content or "", end="")
    >>> acc.result().usage                                                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .catalog import ModelSpec, get_model_spec
from .errors import IncompleteStreamError, SiliconVisionError

__all__ = [
    "UNDOCUMENTED_FIELDS",
    "ChatReply",
    "ChatResult",
    "ParameterError",
    "StreamAccumulator",
    "StreamDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "build_chat_request",
    "parse_chat_completion",
    "tools_off_error",
    "undocumented_field_error",
]

#: Fields SiliconCloud documents that the ``openai`` SDK sends as top-level keyword
#: arguments (see the facts file, "Extra request fields SiliconCloud accepts").
STANDARD_FIELDS = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "n",
    "frequency_penalty",
    "response_format",
    "tools",
    "tool_choice",
)
#: SiliconCloud-only fields, sent in ``extra_body``.
EXTRA_FIELDS = ("enable_thinking", "thinking_budget", "top_k", "min_p")

#: OpenAI request fields SiliconCloud does not document, with what to do instead. They
#: are refused by name (never sent as if honoured); a caller who knows a model takes
#: one sends it explicitly in ``extra_body``.
UNDOCUMENTED_FIELDS: dict[str, str] = {
    "seed": "",
    "presence_penalty": "",
    "logprobs": "",
    "top_logprobs": "",
    "logit_bias": "",
    "parallel_tool_calls": "",
    "user": "",
    "stream_options": " (every SiliconCloud stream chunk carries the usage already)",
    "max_completion_tokens": " (SiliconCloud's name for it is max_tokens)",
    "reasoning_effort": " (use enable_thinking and thinking_budget)",
    "modalities": " (the models answer in text)",
    "audio": " (the models answer in text)",
    "prediction": "",
    "service_tier": "",
    "store": "",
    "metadata": "",
    "verbosity": "",
    "web_search_options": "",
    "prompt_cache_key": "",
    "safety_identifier": "",
}


def undocumented_field_error(name: str, where: str = "request parameter") -> str:
    """The message that refuses an OpenAI field SiliconCloud does not document.

    >>> undocumented_field_error("seed")
    "request parameter 'seed' is not one SiliconCloud documents, so it is not sent as if it were honoured; if your model takes it, send it explicitly: extra_body={'seed': ...}"
    """  # noqa: E501
    return (
        f"{where} {name!r} is not one SiliconCloud documents, so it is not sent as if it "
        f"were honoured{UNDOCUMENTED_FIELDS.get(name, '')}; if your model takes it, send it "
        f"explicitly: extra_body={{{name!r}: ...}}"
    )


_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ParameterError(SiliconVisionError, ValueError):
    """A request parameter SiliconCloud would refuse (raised before sending)."""


def _check_range(name: str, value: Any, low: float, high: float, *, integer: bool = False) -> None:
    if value is None:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    if not (low <= value <= high) or (isinstance(value, float) and math.isnan(value)):
        raise ParameterError(f"{name} must be between {low} and {high}, got {value!r}")


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, Sequence) or isinstance(tools, (str, bytes)):
        raise ParameterError("tools must be a list of tool definitions")
    if len(tools) > 128:
        raise ParameterError(f"SiliconCloud takes at most 128 tools, got {len(tools)}")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise ParameterError(
                f"tools[{i}]: function name {name!r} must match [a-zA-Z0-9_-]{{1,64}}"
            )


def _check_stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, Sequence) or not all(isinstance(s, str) for s in stop):
        raise ParameterError("stop must be a string or a list of strings")
    if len(stop) > 4:
        raise ParameterError(f"SiliconCloud takes at most 4 stop sequences, got {len(stop)}")


def build_chat_request(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str | ModelSpec,
    stream: bool = False,
    extra_body: Mapping[str, Any] | None = None,
    extra_headers: Mapping[str, str] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create``, validated.

    ``messages`` should already be prepared (:func:`siliconvision.content.prepare_messages`).
    ``params`` are the standard fields (``temperature``, ``top_p``, ``max_tokens``,
    ``stop``, ``n``, ``response_format``, ``tools``, ``tool_choice``, ...) and
    SiliconCloud's extras (``enable_thinking``, ``thinking_budget``, ``top_k``,
    ``min_p``); ``None`` values are left out. Anything else goes in ``extra_body``;
    an unknown keyword raises instead of being dropped, and so does an OpenAI field
    SiliconCloud does not document (:data:`UNDOCUMENTED_FIELDS`: ``seed``,
    ``presence_penalty``, ``logprobs``, ...). ``extra_headers`` are sent as HTTP
    headers of this request. ``n > 1`` is refused with ``stream=True`` (the chunks of
    several choices would interleave).

    >>> build_chat_request([{"role": "user", "content": "hi"}],
    ...     model="Qwen/Qwen2.5-VL-72B-Instruct", temperature=0.2, top_k=20)["extra_body"]
    {'top_k': 20}
    """
    spec = get_model_spec(model)
    unknown = sorted(set(params) - set(STANDARD_FIELDS) - set(EXTRA_FIELDS))
    undocumented = [name for name in unknown if name in UNDOCUMENTED_FIELDS]
    if undocumented:
        raise ParameterError(undocumented_field_error(undocumented[0]))
    if unknown:
        raise ParameterError(
            f"unknown request parameter(s) {unknown}; pass provider-specific fields in extra_body"
        )
    if not messages:
        raise ParameterError("messages must not be empty")
    _check_range("temperature", params.get("temperature"), 0.0, 2.0)
    _check_range("top_p", params.get("top_p"), 0.0, 1.0)
    _check_range("min_p", params.get("min_p"), 0.0, 1.0)
    _check_range("top_k", params.get("top_k"), -1, 1_000_000, integer=True)
    _check_range("max_tokens", params.get("max_tokens"), 1, 10_000_000, integer=True)
    _check_range("n", params.get("n"), 1, 128, integer=True)
    _check_range("frequency_penalty", params.get("frequency_penalty"), -2.0, 2.0)
    _check_range("thinking_budget", params.get("thinking_budget"), 128, 32_768, integer=True)
    if stream and (params.get("n") or 1) > 1:
        raise ParameterError(
            f"n={params['n']} cannot be streamed (the choices' chunks would interleave); "
            "stream with n=1 or call without streaming"
        )
    _check_stop(params.get("stop"))
    _check_tools(params.get("tools"))
    if params.get("tools") and not spec.tools:
        raise ParameterError(tools_off_error(spec.id))
    headers = _check_headers(extra_headers)
    if params.get("enable_thinking") is not None and not isinstance(
        params["enable_thinking"], bool
    ):
        raise ParameterError(f"enable_thinking must be a bool, got {params['enable_thinking']!r}")

    request: dict[str, Any] = {"model": spec.id, "messages": list(messages)}
    if stream:
        request["stream"] = True
    for name in STANDARD_FIELDS:
        value = params.get(name)
        if value is not None:
            request[name] = value
    body = {name: params[name] for name in EXTRA_FIELDS if params.get(name) is not None}
    if extra_body:
        body.update(extra_body)
    if body:
        request["extra_body"] = body
    if headers:
        request["extra_headers"] = headers
    return request


def tools_off_error(model_id: str) -> str:
    """The message for tools sent to a model the catalog marks as tool-less."""
    return (
        f"model {model_id!r} is not catalogued as supporting tool calls; use a model that "
        "does, or, if you know this one does, switch them on: in LlamaIndex "
        f"SiliconVision(model={model_id!r}, is_function_calling_model=True), in LangChain "
        f"or the core siliconvision.catalog.register_model({model_id!r}, tools=True) "
        "(process-wide)"
    )


def _check_headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ParameterError("extra_headers must be a dict of header names to string values")
    return dict(headers)


@dataclass(frozen=True)
class Usage:
    """Token counts (``reasoning_tokens`` and ``cached_tokens`` from the details)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0

    # minus/at_least/is_zero run once per stream chunk: fields are spelled out (no
    # ``dataclasses.fields`` walk, no kwargs dict), which makes them several times faster.

    def minus(self, earlier: Usage | None) -> Usage:
        """Field-wise increment over ``earlier`` (never negative)."""
        if earlier is None:
            return self
        return Usage(
            max(0, self.prompt_tokens - earlier.prompt_tokens),
            max(0, self.completion_tokens - earlier.completion_tokens),
            max(0, self.total_tokens - earlier.total_tokens),
            max(0, self.reasoning_tokens - earlier.reasoning_tokens),
            max(0, self.cached_tokens - earlier.cached_tokens),
        )

    def at_least(self, other: Usage | None) -> Usage:
        """Field-wise maximum: cumulative counters only grow."""
        if other is None:
            return self
        if (
            self.prompt_tokens >= other.prompt_tokens
            and self.completion_tokens >= other.completion_tokens
            and self.total_tokens >= other.total_tokens
            and self.reasoning_tokens >= other.reasoning_tokens
            and self.cached_tokens >= other.cached_tokens
        ):
            return self  # the usual case: nothing went down
        return Usage(
            max(self.prompt_tokens, other.prompt_tokens),
            max(self.completion_tokens, other.completion_tokens),
            max(self.total_tokens, other.total_tokens),
            max(self.reasoning_tokens, other.reasoning_tokens),
            max(self.cached_tokens, other.cached_tokens),
        )

    @property
    def is_zero(self) -> bool:
        return not (
            self.prompt_tokens
            or self.completion_tokens
            or self.total_tokens
            or self.reasoning_tokens
            or self.cached_tokens
        )

    @classmethod
    def from_api(cls, usage: Any) -> Usage | None:
        """From the SDK's usage object or a dict; ``None`` when absent."""
        if usage is None:
            return None
        completion_details = _field(usage, "completion_tokens_details")
        prompt_details = _field(usage, "prompt_tokens_details")
        return cls(
            prompt_tokens=_int(_field(usage, "prompt_tokens")),
            completion_tokens=_int(_field(usage, "completion_tokens")),
            total_tokens=_int(_field(usage, "total_tokens")),
            reasoning_tokens=_int(_field(completion_details, "reasoning_tokens")),
            cached_tokens=_int(_field(prompt_details, "cached_tokens")),
        )


_MISSING: Any = object()


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` of a mapping, else ``obj.name``; ``None`` when absent.

    Called many times per stream chunk: plain dicts and attribute access (SDK
    objects) are tried before the slower ``Mapping`` check.
    """
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(name)
    value = getattr(obj, name, _MISSING)
    if value is not _MISSING:
        return value
    if isinstance(obj, Mapping):
        return obj.get(name)
    return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class ToolCall:
    """A complete tool call: ``arguments`` is the JSON text the model wrote."""

    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> Any:
        """``arguments`` decoded; an empty string is ``{}``; bad JSON raises ``ValueError``."""
        if not self.arguments.strip():
            return {}
        try:
            return json.loads(self.arguments)
        except ValueError as exc:
            raise ValueError(
                f"tool call {self.name!r} ({self.id}) has arguments that are not JSON: {exc}"
            ) from exc


@dataclass(frozen=True)
class ChatReply:
    """One answer, from a response or a finished stream (what ``client.chat`` returns).

    Example:
        >>> reply = ChatReply(id="r1", model="Qwen/Qwen2.5-VL-72B-Instruct", content="A cat.")
        >>> reply.content, reply.choices == (reply,)
        ('A cat.', True)
    """

    id: str
    model: str
    content: str
    reasoning_content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    created: int | None = None
    system_fingerprint: str | None = None
    trace_id: str | None = None
    #: The response as received (SDK object or dict), for adapters that expose it.
    raw: Any = field(default=None, compare=False, repr=False)
    #: With ``n > 1``: the other choices, in order (``usage`` is on this one only: it
    #: counts the whole request).
    other_choices: tuple[ChatReply, ...] = ()

    def with_trace_id(self, trace_id: str | None) -> ChatReply:
        return replace(self, trace_id=trace_id)

    @property
    def choices(self) -> tuple[ChatReply, ...]:
        """Every choice of the response: this one, then :attr:`other_choices`."""
        return (self, *self.other_choices)


ChatResult = ChatReply
"""The former name of :class:`ChatReply`, kept for existing code (LangChain has its own
``ChatResult``, which this one was mistaken for)."""


def _tool_calls_from_message(raw_calls: Any) -> tuple[ToolCall, ...]:
    calls: list[ToolCall] = []
    for raw in raw_calls or ():
        function = _field(raw, "function")
        calls.append(
            ToolCall(
                id=str(_field(raw, "id") or ""),
                name=str(_field(function, "name") or ""),
                arguments=str(_field(function, "arguments") or ""),
            )
        )
    return tuple(calls)


def parse_chat_completion(completion: Any, *, trace_id: str | None = None) -> ChatReply:
    """A :class:`ChatReply` from an SDK ``ChatCompletion`` (or its dict form); with
    several choices (``n > 1``) the others are in :attr:`ChatReply.other_choices`."""
    choices = _field(completion, "choices") or []
    if not choices:
        raise SiliconVisionError("SiliconCloud returned a response without choices")
    ordered = sorted(
        choices,
        key=lambda c: i if isinstance(i := _field(c, "index"), int) else 0,
    )
    results = [
        _choice_result(completion, choice, trace_id=trace_id, with_usage=position == 0)
        for position, choice in enumerate(ordered)
    ]
    return replace(results[0], other_choices=tuple(results[1:])) if len(results) > 1 else results[0]


def _choice_result(
    completion: Any, choice: Any, *, trace_id: str | None, with_usage: bool
) -> ChatReply:
    message = _field(choice, "message")
    return ChatReply(
        id=str(_field(completion, "id") or ""),
        model=str(_field(completion, "model") or ""),
        content=_field(message, "content") or "",
        reasoning_content=_field(message, "reasoning_content") or None,
        tool_calls=_tool_calls_from_message(_field(message, "tool_calls")),
        finish_reason=_field(choice, "finish_reason"),
        usage=Usage.from_api(_field(completion, "usage")) if with_usage else None,
        created=_field(completion, "created"),
        system_fingerprint=_field(completion, "system_fingerprint"),
        trace_id=trace_id,
        raw=completion,
    )


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a streamed tool call; pieces with the same ``index`` concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass(frozen=True)
class StreamDelta:
    """What one stream chunk added.

    ``content``/``reasoning`` are ``None`` when the chunk has none; ``usage`` is the
    cumulative usage so far and ``usage_increment`` the part this chunk added (sum
    the increments, never the cumulative values).
    """

    content: str | None = None
    reasoning: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    usage_increment: Usage | None = None
    role: str | None = None
    id: str | None = None
    model: str | None = None
    #: The chunk as received (SDK object or dict), for adapters that expose it.
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass
class _ToolCallBuffer:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class StreamAccumulator:
    """Reads stream chunks one at a time; :meth:`result` gives the whole answer.

    >>> acc = StreamAccumulator()
    >>> delta = acc.add({"id": "x", "model": "m", "choices": [{"index": 0,
    ...     "delta": {"content": "Hi"}, "finish_reason": "stop"}],
    ...     "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
    >>> acc.result().content, acc.result().usage.total_tokens
    ('Hi', 4)
    """

    def __init__(self) -> None:
        # Running strings, not lists joined on every read: adapters read the whole text
        # after each chunk, and a join per chunk makes a long stream quadratic.
        self._content = ""
        self._reasoning = ""
        self._tool_calls: dict[int, _ToolCallBuffer] = {}
        self.id = ""
        self.model = ""
        self.created: int | None = None
        self.system_fingerprint: str | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.chunks = 0

    @property
    def content(self) -> str:
        return self._content

    @property
    def reasoning(self) -> str:
        return self._reasoning

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls assembled so far (arguments may be partial JSON mid-stream)."""
        return tuple(
            ToolCall(id=b.id, name=b.name, arguments="".join(b.arguments))
            for _, b in sorted(self._tool_calls.items())
        )

    def add(self, chunk: Any) -> StreamDelta:
        """Take one chunk (SDK ``ChatCompletionChunk`` or dict) and return its delta."""
        self.chunks += 1
        chunk_id = _field(chunk, "id")
        if chunk_id and not self.id:
            self.id = str(chunk_id)
            self.model = str(_field(chunk, "model") or "")
            self.created = _field(chunk, "created")
            self.system_fingerprint = _field(chunk, "system_fingerprint")
        usage = Usage.from_api(_field(chunk, "usage"))
        increment = None
        if usage is not None:
            increment = usage.minus(self.usage)
            self.usage = usage.at_least(self.usage)
        choices = _field(chunk, "choices") or []
        if not choices:
            return StreamDelta(
                usage=self.usage,
                usage_increment=increment,
                id=chunk_id,
                model=self.model,
                raw=chunk,
            )
        choice = choices[0]
        delta = _field(choice, "delta")
        content = _field(delta, "content")
        reasoning = _field(delta, "reasoning_content")
        if content:
            self._content += content
        if reasoning:
            self._reasoning += reasoning
        raw_calls = _field(delta, "tool_calls")
        tool_deltas = tuple(self._add_tool_calls(raw_calls)) if raw_calls else ()
        finish_reason = _field(choice, "finish_reason")
        if finish_reason:
            self.finish_reason = finish_reason
        return StreamDelta(
            content=content,
            reasoning=reasoning,
            tool_calls=tool_deltas,
            finish_reason=finish_reason,
            usage=self.usage,
            usage_increment=increment,
            role=_field(delta, "role"),
            id=chunk_id,
            model=self.model,
            raw=chunk,
        )

    def _add_tool_calls(self, raw_calls: Any) -> list[ToolCallDelta]:
        out: list[ToolCallDelta] = []
        for position, raw in enumerate(raw_calls or ()):
            index = _field(raw, "index")
            index = index if isinstance(index, int) else position
            function = _field(raw, "function")
            piece = ToolCallDelta(
                index=index,
                id=_field(raw, "id"),
                name=_field(function, "name"),
                arguments=_field(function, "arguments"),
            )
            buffer = self._tool_calls.setdefault(index, _ToolCallBuffer())
            if piece.id:
                buffer.id = piece.id
            if piece.name:
                buffer.name += piece.name
            if piece.arguments:
                buffer.arguments.append(piece.arguments)
            out.append(piece)
        return out

    @property
    def complete(self) -> bool:
        """Whether the final chunk (the one with ``finish_reason``) has arrived."""
        return self.finish_reason is not None

    def incomplete_error(self, why: str, *, request: Any = None) -> IncompleteStreamError:
        """The error for a stream that ended early, carrying the partial answer: a
        :class:`~siliconvision.errors.SiliconCloudIncompleteStreamError`, which is also an
        ``openai.APIConnectionError`` (``request``: the HTTP request of the stream)."""
        from ._api_errors import SiliconCloudIncompleteStreamError  # loads the openai SDK

        text = self.content
        return SiliconCloudIncompleteStreamError(
            f"SiliconCloud stream {why} after {self.chunks} chunk(s) and {len(text)} characters, "
            "before its final chunk; the answer is incomplete (partial text on .partial_text)",
            partial_text=text,
            partial_reasoning=self.reasoning,
            request=request,
        )

    def result(self) -> ChatReply:
        """The whole answer; raises :class:`IncompleteStreamError` if the stream was cut."""
        if not self.complete:
            raise self.incomplete_error("ended")
        calls = self.tool_calls
        return ChatReply(
            id=self.id,
            model=self.model,
            content=self.content,
            reasoning_content=self.reasoning or None,
            tool_calls=calls,
            finish_reason=self.finish_reason,
            usage=self.usage,
            created=self.created,
            system_fingerprint=self.system_fingerprint,
        )
