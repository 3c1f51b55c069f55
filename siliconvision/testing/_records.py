"""The emulator's records: images it saw, requests it logged, replies it was told to give."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ReceivedRequest", "ScriptedReply", "SeenImage"]


class Headers(dict[str, str]):
    """A plain ``dict`` of lower-case header names whose lookups ignore case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class SeenImage:
    """One image the emulator decoded from a request, in wire order.

    ``index`` is 1-based across the whole request; ``message_index`` is the 0-based
    index of the message that carried it. ``url`` is the image URL, or for a data
    URI only its prefix (``"data:image/png;base64,"``), never the payload.
    ``tokens`` is what the image costs in prompt tokens by the model's image
    processor rule (0 for a model without a sourced rule).

    Example:
        >>> img = emu.last_request.images[0]  # doctest: +SKIP
        >>> (img.width, img.height, img.format, img.color_name)  # doctest: +SKIP
        (64, 32, 'PNG', 'red')
    """

    index: int
    message_index: int
    width: int
    height: int
    format: str
    mode: str
    dominant_color: str
    color_name: str
    detail: str | None
    source: Literal["data", "url"]
    url: str
    byte_size: int
    tokens: int


@dataclass
class ReceivedRequest:
    """One request as the emulator saw it (secrets redacted, image payloads elided).

    ``headers`` keys are lower-case (lookups ignore case); ``Authorization`` reads
    ``"Bearer ***"`` and other credential headers ``"***"``.
    ``body`` is the parsed JSON with every base64 payload replaced by a
    ``"data:image/png;base64,<N bytes>"`` placeholder. ``status`` is the HTTP status
    the emulator answered (0 while unanswered, e.g. when stalled). The extra fields
    make the behaviour knobs observable without wall-clock asserts: ``latency`` and
    ``chunk_delay`` applied, ``chunks_sent`` (SSE data events written, ``[DONE]``
    excluded), ``error_code`` (SiliconCloud's ``code`` of an error answer),
    ``reply_content`` (the assistant content sent, possibly truncated),
    ``body_size`` (bytes of the request body as received: what the client uploaded),
    ``upload_seconds`` (from the end of the request head to the last body byte),
    ``upload_mbit_per_s`` (the upload cap applied, ``None``: unthrottled) and
    ``upload_paused`` (seconds of ``upload_seconds`` the throttle slept).

    Example:
        >>> req = emu.last_request  # doctest: +SKIP
        >>> req.path, req.model, req.status, len(req.images)  # doctest: +SKIP
        ('/v1/chat/completions', 'Qwen/Qwen2.5-VL-72B-Instruct', 200, 1)
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    model: str | None
    stream: bool
    images: list[SeenImage] = field(default_factory=list)
    status: int = 0
    disconnected: bool = False
    latency: float = 0.0
    chunk_delay: float = 0.0
    chunks_sent: int = 0
    error_code: int | None = None
    reply_content: str | None = None
    received_at: float = 0.0
    finished_at: float | None = None
    body_size: int = 0
    upload_seconds: float = 0.0
    upload_mbit_per_s: float | None = None
    upload_paused: float = 0.0


@dataclass
class ScriptedReply:
    """A reply the emulator gives instead of its default description.

    ``tool_calls`` items are ``{"name": ..., "arguments": dict or JSON str, "id":
    optional}``. ``chunks`` fixes the streamed content deltas exactly (``content``
    is then their concatenation). ``finish_reason`` overrides the computed one.

    Example:
        >>> emu.set_responder(lambda req: ScriptedReply(content=f"{len(req.images)} img"))
        ... # doctest: +SKIP
    """

    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    chunks: list[str] | None = None


@dataclass(frozen=True)
class ToolCallSpec:
    """A normalised scripted tool call: id, function name and JSON arguments."""

    id: str
    name: str
    arguments: str


def normalise_tool_calls(items: Sequence[Mapping[str, Any]] | None) -> list[ToolCallSpec]:
    """Check and normalise scripted tool calls; raises ``TypeError``/``ValueError``."""
    if items is None:
        return []
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise TypeError("tool_calls must be a sequence of mappings")
    out: list[ToolCallSpec] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise TypeError(f"each tool call must be a mapping, got {type(item).__name__}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"tool call needs a non-empty 'name', got {name!r}")
        args = item.get("arguments", {})
        if args is None:
            args = {}
        if isinstance(args, Mapping):
            args_text = json.dumps(dict(args), ensure_ascii=False)
        elif isinstance(args, str):
            args_text = args
        else:
            raise TypeError("tool call 'arguments' must be a dict or a JSON string")
        call_id = item.get("id") or f"call_{uuid.uuid4().hex[:24]}"
        out.append(ToolCallSpec(id=str(call_id), name=name, arguments=args_text))
    return out


def check_scripted(reply: ScriptedReply) -> None:
    """Validate a :class:`ScriptedReply` early (raises ``TypeError``/``ValueError``)."""
    if reply.content is not None and not isinstance(reply.content, str):
        raise TypeError("content must be a str or None")
    if reply.reasoning is not None and not isinstance(reply.reasoning, str):
        raise TypeError("reasoning must be a str or None")
    if reply.finish_reason is not None and not isinstance(reply.finish_reason, str):
        raise TypeError("finish_reason must be a str or None")
    if reply.chunks is not None and (
        isinstance(reply.chunks, str) or not all(isinstance(c, str) for c in reply.chunks)
    ):
        raise TypeError("chunks must be a sequence of str")
    if (
        reply.chunks is not None
        and reply.content is not None
        and "".join(reply.chunks) != reply.content
    ):
        raise ValueError("content must equal ''.join(chunks) when both are given")
    normalise_tool_calls(reply.tool_calls)
