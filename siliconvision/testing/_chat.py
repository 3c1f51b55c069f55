"""Chat completions for the emulator: validation, image decoding, replies, wire encoding.

Pure functions (no sockets), so the HTTP handler stays thin and this is testable
on its own. See :mod:`siliconvision.testing.emulator` for the documented rules.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from ..catalog import CATALOG, Detail, ModelSpec, get_model_spec
from ..tokens import estimate_image_tokens
from ._imaging import ImageDecodeError, decode_image
from ._records import ScriptedReply, SeenImage, ToolCallSpec, normalise_tool_calls

__all__ = [
    "IMAGE_URL_MESSAGE",
    "INVALID_MESSAGE",
    "MODEL_MISSING_MESSAGE",
    "ChatRequest",
    "ReplyPlan",
    "WireError",
    "bad_request",
    "build_reply",
    "completion_body",
    "iter_chunk_payloads",
    "parse_chat",
    "redact_body",
    "split_pieces",
]

MODEL_MISSING_MESSAGE = "Model does not exist. Please check it carefully."
INVALID_MESSAGE = "The parameter is invalid. Please check again."
IMAGE_URL_MESSAGE = (
    "Image url should be a valid url or should like data:image/TYPE;base64,YOUR-BASE64-CONTENT"
)
FETCH_FAILED_DETAIL = "could not fetch image url"

_ROLES = frozenset({"system", "user", "assistant", "tool"})
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_DATA_IMAGE = re.compile(r"data:image/([A-Za-z0-9.+-]+);base64,(.*)", re.DOTALL)
_DATA_ANY = re.compile(r"(data:[^,;]*(?:;[^,;]*)*;base64,)(.*)", re.DOTALL)
_PIECE = re.compile(r"\s*\S+|\s+")
_FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
_ARG_PIECE = 16  # tool-call arguments are streamed in pieces of this many characters


class WireError(Exception):
    """An error answer: HTTP ``status`` and the exact ``body`` to send."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body!r}")
        self.status = status
        self.body = body


def bad_request(code: int, message: str) -> WireError:
    """A 400 with SiliconCloud's ``{"code","message","data":null}`` body."""
    return WireError(400, {"code": code, "message": message, "data": None})


def invalid(detail: str | None = None) -> WireError:
    """A 400 code 20015, optionally with a short detail after the standard message."""
    return bad_request(20015, f"{INVALID_MESSAGE} ({detail})" if detail else INVALID_MESSAGE)


# --------------------------------------------------------------------------- redaction


def _b64_size(payload: str) -> int:
    payload = payload.strip()
    return max(0, len(payload) * 3 // 4 - payload[-2:].count("="))


def redact_body(obj: Any) -> Any:
    """A copy of a parsed JSON body with every base64 data URI payload elided."""
    if isinstance(obj, dict):
        return {k: redact_body(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_body(v) for v in obj]
    if isinstance(obj, str) and obj.startswith("data:") and ";base64," in obj:
        m = _DATA_ANY.match(obj)
        if m:
            return f"{m.group(1)}<{_b64_size(m.group(2))} bytes>"
    return obj


# --------------------------------------------------------------------------- parsing


@dataclass
class TextPart:
    """A text part of a user message."""

    message_index: int
    text: str


@dataclass
class VideoPart:
    """A video part (not decoded)."""

    message_index: int
    url: str


Part = TextPart | SeenImage | VideoPart


@dataclass
class ChatRequest:
    """A validated chat request, with its images decoded."""

    model: str
    spec: ModelSpec
    stream: bool
    parts: list[Part]
    images: list[SeenImage]
    prompt_tokens: int
    max_tokens: int | None
    json_mode: bool
    thinking: bool


@dataclass
class _ImageRef:
    message_index: int
    url: str
    detail: str | None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_range(body: Mapping[str, Any], name: str, lo: float, hi: float) -> None:
    if name in body and body[name] is not None:
        value = body[name]
        if not _is_number(value) or not lo <= value <= hi:
            raise invalid(f"{name} must be a number in [{lo:g}, {hi:g}]")


def _check_params(body: Mapping[str, Any]) -> None:
    _check_range(body, "temperature", 0, 2)
    _check_range(body, "top_p", 0, 1)
    _check_range(body, "min_p", 0, 1)
    _check_range(body, "frequency_penalty", -2, 2)
    _check_range(body, "presence_penalty", -2, 2)
    for name in ("max_tokens", "n"):
        value = body.get(name)
        if value is not None and (not _is_int(value) or value < 1):
            raise invalid(f"{name} must be a positive integer")
    top_k = body.get("top_k")
    if top_k is not None and not _is_number(top_k):
        raise invalid("top_k must be a number")
    for name in ("stream", "enable_thinking"):
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            raise invalid(f"{name} must be a boolean")
    budget = body.get("thinking_budget")
    if budget is not None and (not _is_int(budget) or not 128 <= budget <= 32768):
        raise invalid("thinking_budget must be an integer in [128, 32768]")
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, list):
            if len(stop) > 4 or not all(isinstance(s, str) for s in stop):
                raise invalid("stop must be a string or at most 4 strings")
        elif not isinstance(stop, str):
            raise invalid("stop must be a string or at most 4 strings")
    fmt = body.get("response_format")
    if fmt is not None and (
        not isinstance(fmt, dict) or fmt.get("type") not in ("json_object", "text")
    ):
        raise invalid("response_format.type must be json_object or text")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or len(tools) > 128:
            raise invalid("tools must be a list of at most 128 tools")
        for tool in tools:
            if not isinstance(tool, dict):
                raise invalid("each tool must be an object")
            fn = tool.get("function")
            tool_name = fn.get("name") if isinstance(fn, dict) else None
            if tool.get("type", "function") != "function" or not isinstance(tool_name, str):
                raise invalid("each tool must be a function with a name")
            if not _TOOL_NAME.fullmatch(tool_name):
                raise invalid("tool names must match [a-zA-Z0-9_-]{1,64}")
    choice = body.get("tool_choice")
    if choice is not None and not (
        choice in ("none", "auto", "required") or isinstance(choice, dict)
    ):
        raise invalid("tool_choice must be none, auto, required or an object")


def _message_text_and_refs(
    index: int, message: Any, texts: list[Part | _ImageRef], image_refs: list[_ImageRef]
) -> str:
    """Validate one message; collect its parts in order; return its text for tokens."""
    if not isinstance(message, dict):
        raise invalid("each message must be an object")
    role = message.get("role")
    if role not in _ROLES:
        raise invalid(f"unsupported message role {role!r}")
    content = message.get("content")
    token_text: list[str] = []
    if content is None:
        if role != "assistant":
            raise invalid(f"{role} message needs content")
    elif isinstance(content, str):
        token_text.append(content)
        if role == "user":
            texts.append(TextPart(index, content))
    elif isinstance(content, list):
        if not content and role == "user":
            raise invalid("user message content must not be empty")
        for part in content:
            if not isinstance(part, dict):
                raise invalid("each content part must be an object")
            kind = part.get("type")
            if kind == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise invalid("text part needs a string 'text'")
                token_text.append(text)
                if role == "user":
                    texts.append(TextPart(index, text))
            elif kind == "image_url":
                if role == "tool":
                    raise invalid("tool message content must be text")
                ref = _image_ref(index, part.get("image_url"))
                texts.append(ref)
                image_refs.append(ref)
            elif kind == "video_url":
                if role == "tool":
                    raise invalid("tool message content must be text")
                video = part.get("video_url")
                url = video.get("url") if isinstance(video, dict) else video
                if not isinstance(url, str) or not url:
                    raise invalid("video_url part needs a url")
                texts.append(VideoPart(index, url))
            else:
                raise invalid(f"unsupported content part type {kind!r}")
    else:
        raise invalid("message content must be a string or a list of parts")
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if role != "assistant" or not isinstance(tool_calls, list):
            raise invalid("tool_calls only in assistant messages, as a list")
        for call in tool_calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise invalid("each tool call needs function.name")
            token_text.append(fn["name"])
            args = fn.get("arguments")
            if isinstance(args, str):
                token_text.append(args)
    return "".join(token_text)


def _image_ref(index: int, image_url: Any) -> _ImageRef:
    if isinstance(image_url, str):
        return _ImageRef(index, image_url, None)
    if not isinstance(image_url, dict):
        raise invalid("image_url part needs an image_url object")
    url = image_url.get("url")
    if not isinstance(url, str):
        raise invalid("image_url needs a string url")
    detail = image_url.get("detail")
    if detail is not None and detail not in ("low", "high", "auto"):
        raise invalid("detail must be low, high or auto")
    return _ImageRef(index, url, detail)


def _image_bytes(
    ref: _ImageRef, spec: ModelSpec, resolve_url: Callable[[str], bytes | None]
) -> tuple[bytes, Literal["data", "url"], str]:
    url = ref.url
    if url.startswith("data:"):
        m = _DATA_IMAGE.fullmatch(url)
        if not m:
            raise bad_request(20040, IMAGE_URL_MESSAGE)
        try:
            data = base64.b64decode(m.group(2), validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(20040, IMAGE_URL_MESSAGE) from None
        if not data:
            raise bad_request(20040, IMAGE_URL_MESSAGE)
        return data, "data", f"data:image/{m.group(1)};base64,"
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise bad_request(20040, IMAGE_URL_MESSAGE)
    if not spec.accepts_image_urls:
        raise invalid("this model takes base64 images only")
    fetched = resolve_url(url)
    if fetched is None:
        raise invalid(FETCH_FAILED_DETAIL)
    return fetched, "url", url


def parse_chat(
    body: Any,
    *,
    model_allowed: Callable[[str], bool],
    resolve_url: Callable[[str], bytes | None],
) -> ChatRequest:
    """Validate a chat request like SiliconCloud does and decode its images.

    Raises :class:`WireError` with SiliconCloud's status and body.
    """
    if not isinstance(body, dict):
        raise invalid("malformed JSON body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model is required")
    if not model_allowed(model):
        if model in CATALOG:
            raise invalid("model does not support chat completions")
        raise bad_request(20012, MODEL_MISSING_MESSAGE)
    spec = get_model_spec(model)
    _check_params(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty list")
    ordered: list[Part | _ImageRef] = []
    refs: list[_ImageRef] = []
    texts_per_message = [
        _message_text_and_refs(i, m, ordered, refs) for i, m in enumerate(messages)
    ]
    if refs and not spec.vision:
        raise invalid("this model does not take images")
    if any(isinstance(p, VideoPart) for p in ordered) and not spec.video:
        raise invalid("this model does not take video")
    images: list[SeenImage] = []
    by_ref: dict[int, SeenImage] = {}
    for k, ref in enumerate(refs, start=1):
        data, source, shown_url = _image_bytes(ref, spec, resolve_url)
        try:
            info = decode_image(data)
        except ImageDecodeError:
            raise bad_request(20040, IMAGE_URL_MESSAGE) from None
        try:
            tokens = estimate_image_tokens(
                info.width,
                info.height,
                model=spec,
                detail=cast(Detail, ref.detail or "high"),
                image_count=len(refs),
            )
        except ValueError as exc:  # the model's image processor refuses this size
            raise invalid(str(exc)) from None
        seen = SeenImage(
            index=k,
            message_index=ref.message_index,
            width=info.width,
            height=info.height,
            format=info.format,
            mode=info.mode,
            dominant_color=info.dominant_color,
            color_name=info.color_name,
            detail=ref.detail,
            source=source,
            url=shown_url,
            byte_size=info.byte_size,
            # no sourced rule: SiliconCloud's count is unknown, so none is invented
            tokens=0 if tokens is None else tokens,
        )
        images.append(seen)
        by_ref[id(ref)] = seen
    parts: list[Part] = [by_ref[id(p)] if isinstance(p, _ImageRef) else p for p in ordered]
    prompt_tokens = sum(4 + math.ceil(len(t.encode("utf-8")) / 4) for t in texts_per_message)
    prompt_tokens += sum(img.tokens for img in images)
    tools = body.get("tools")
    if tools:
        prompt_tokens += math.ceil(len(json.dumps(tools).encode("utf-8")) / 4)
    fmt = body.get("response_format")
    thinking = spec.reasoning == "always" or (
        spec.reasoning == "optional" and body.get("enable_thinking") is True
    )
    return ChatRequest(
        model=model,
        spec=spec,
        stream=body.get("stream") is True,
        parts=parts,
        images=images,
        prompt_tokens=prompt_tokens,
        max_tokens=body.get("max_tokens"),
        json_mode=isinstance(fmt, dict) and fmt.get("type") == "json_object",
        thinking=thinking,
    )


# --------------------------------------------------------------------------- replies


def _plural(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _one_line(text: str) -> str:
    return text[:200].replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def default_content(req: ChatRequest) -> str:
    """The default reply: what the emulator saw, in wire order (see the module docs)."""
    if req.json_mode:
        payload = {
            "images": [
                {
                    "index": img.index,
                    "width": img.width,
                    "height": img.height,
                    "format": img.format,
                    "dominant_color": img.dominant_color,
                    "color_name": img.color_name,
                    "detail": img.detail,
                }
                for img in req.images
            ],
            "text": [p.text[:200] for p in req.parts if isinstance(p, TextPart)],
        }
        return json.dumps(payload, ensure_ascii=False)
    lines = [f"I see {_plural(len(req.images))}."]
    video_no = 0
    for part in req.parts:
        if isinstance(part, SeenImage):
            lines.append(
                f"Image {part.index}: {part.width}x{part.height} {part.format}, "
                f"detail {part.detail or 'none'}, dominant colour {part.dominant_color} "
                f"({part.color_name})."
            )
        elif isinstance(part, TextPart):
            lines.append(f'Text: "{_one_line(part.text)}"')
        else:
            video_no += 1
            shown = part.url.split(",", 1)[0] + "," if part.url.startswith("data:") else part.url
            lines.append(f"Video {video_no}: {shown}.")
    return "\n".join(lines)


def default_reasoning(req: ChatRequest) -> str:
    """The default reasoning of thinking models."""
    n_text = sum(1 for p in req.parts if isinstance(p, TextPart))
    return (
        f"Looking at {len(req.images)} image(s) and {n_text} text part(s), "
        "in the order they were sent, then describing each one."
    )


def split_pieces(text: str, n: int | None = None) -> list[str]:
    """Split ``text`` into stream pieces: word-like runs, or exactly ``n`` even pieces."""
    if n is None:
        return _PIECE.findall(text) if text else []
    if n <= 0:
        return []
    size, extra = divmod(len(text), n)
    pieces: list[str] = []
    pos = 0
    for i in range(n):
        step = size + (1 if i < extra else 0)
        pieces.append(text[pos : pos + step])
        pos += step
    return pieces


def _pad(text: str, n: int) -> str:
    if len(text) >= n:
        return text
    words: list[str] = []
    total = len(text) + 1
    i = 0
    while total < n:
        word = _FILLER[i % len(_FILLER)]
        words.append(word)
        total += len(word) + 1
        i += 1
    return text + "\n" + " ".join(words)


@dataclass
class ToolCallPlan:
    """A tool call to send, with its argument pieces."""

    spec: ToolCallSpec
    pieces: list[str]


@dataclass
class ReplyPlan:
    """Everything needed to answer a chat request, streamed or not."""

    reasoning: list[str]
    content: list[str]
    tool_calls: list[ToolCallPlan]
    finish_reason: str
    content_null: bool = False
    prompt_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def completion_tokens(self) -> int:
        return len(self.reasoning) + len(self.content) + sum(len(t.pieces) for t in self.tool_calls)

    @property
    def content_text(self) -> str | None:
        if self.content_null and not self.content:
            return None
        return "".join(self.content)

    @property
    def reasoning_text(self) -> str | None:
        return "".join(self.reasoning) if self.reasoning else None


def build_reply(
    req: ChatRequest, script: ScriptedReply | None, *, reply_chunks: int | None
) -> ReplyPlan:
    """Plan the reply: pieces of reasoning, content and tool calls; ``max_tokens`` cut."""
    if script is None:
        content = default_content(req)
        if reply_chunks is not None:
            content = _pad(content, reply_chunks)
        content_pieces = split_pieces(content, reply_chunks)
        reasoning_pieces = split_pieces(default_reasoning(req)) if req.thinking else []
        calls: list[ToolCallSpec] = []
        forced_finish: str | None = None
        content_null = False
    else:
        calls = normalise_tool_calls(script.tool_calls)
        if script.chunks is not None:
            content_pieces = list(script.chunks)
        elif script.content:
            n = None if reply_chunks is None else min(reply_chunks, len(script.content))
            content_pieces = split_pieces(script.content, n)
        else:
            content_pieces = []
        reasoning_pieces = split_pieces(script.reasoning) if script.reasoning else []
        forced_finish = script.finish_reason
        content_null = script.content is None and script.chunks is None and bool(calls)
    call_plans = [
        ToolCallPlan(c, split_pieces(c.arguments, max(1, math.ceil(len(c.arguments) / _ARG_PIECE))))
        for c in calls
    ]
    truncated = False
    if req.max_tokens is not None:
        budget = req.max_tokens
        if len(reasoning_pieces) > budget:
            reasoning_pieces, truncated = reasoning_pieces[:budget], True
        budget -= len(reasoning_pieces)
        if len(content_pieces) > budget:
            content_pieces, truncated = content_pieces[:budget], True
        budget -= len(content_pieces)
        kept: list[ToolCallPlan] = []
        for plan in call_plans:
            if len(plan.pieces) <= budget and not truncated:
                kept.append(plan)
                budget -= len(plan.pieces)
            else:
                truncated = True
        call_plans = kept
    if forced_finish is not None:
        finish = forced_finish
    elif truncated:
        finish = "length"
    elif call_plans:
        finish = "tool_calls"
    else:
        finish = "stop"
    return ReplyPlan(
        reasoning=reasoning_pieces,
        content=content_pieces,
        tool_calls=call_plans,
        finish_reason=finish,
        content_null=content_null,
        prompt_tokens=req.prompt_tokens,
    )


def _usage(prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def _message(plan: ReplyPlan) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": plan.content_text,
        "reasoning_content": plan.reasoning_text,
    }
    if plan.tool_calls:
        message["tool_calls"] = [
            {
                "id": t.spec.id,
                "type": "function",
                "function": {"name": t.spec.name, "arguments": "".join(t.pieces)},
            }
            for t in plan.tool_calls
        ]
    return message


def completion_body(
    plan: ReplyPlan,
    *,
    chat_id: str,
    created: int,
    model: str,
    more: Sequence[ReplyPlan] = (),
) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` body; ``more``: the plans of choices 2..n
    (``n > 1``), whose completion tokens add to the usage."""
    plans = [plan, *more]
    return {
        "id": chat_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": i, "message": _message(p), "finish_reason": p.finish_reason}
            for i, p in enumerate(plans)
        ],
        "usage": _usage(
            plan.prompt_tokens,
            sum(p.completion_tokens for p in plans),
            sum(len(p.reasoning) for p in plans),
        ),
        "system_fingerprint": "",
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def iter_chunk_payloads(
    plan: ReplyPlan, *, chat_id: str, created: int, model: str
) -> Iterator[bytes]:
    """SSE events (``data: {...}\\n\\n``) of the stream, ``[DONE]`` excluded.

    The constant parts of every chunk are serialised once; each chunk carries the
    cumulative usage.
    """
    head = (
        f'data: {{"id":"{chat_id}","object":"chat.completion.chunk","created":{created},'
        f'"model":{_dumps(model)},"system_fingerprint":"","choices":[{{"index":0,"delta":'
    )
    prompt = plan.prompt_tokens
    usage_fmt = (
        '}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,'
        '"completion_tokens_details":{"reasoning_tokens":%d},'
        '"prompt_tokens_details":{"cached_tokens":0}}}\n\n'
    )
    completion = 0
    reasoning = 0

    def event(delta: str, finish: str | None = None) -> bytes:
        tail = usage_fmt % (prompt, completion, prompt + completion, reasoning)
        fin = "null" if finish is None else _dumps(finish)
        return (head + delta + ',"finish_reason":' + fin + tail).encode("utf-8")

    yield event('{"role":"assistant","content":"","reasoning_content":null}')
    for piece in plan.reasoning:
        completion += 1
        reasoning += 1
        yield event('{"content":null,"reasoning_content":' + _dumps(piece) + "}")
    for piece in plan.content:
        completion += 1
        yield event('{"content":' + _dumps(piece) + ',"reasoning_content":null}')
    for index, call in enumerate(plan.tool_calls):
        first = {
            "content": None,
            "tool_calls": [
                {
                    "index": index,
                    "id": call.spec.id,
                    "type": "function",
                    "function": {"name": call.spec.name, "arguments": ""},
                }
            ],
        }
        yield event(_dumps(first))
        for piece in call.pieces:
            completion += 1
            delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            yield event(_dumps(delta))
    yield event('{"content":"","reasoning_content":null}', plan.finish_reason)
