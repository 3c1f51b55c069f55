"""``ChatSiliconVision``: SiliconCloud's vision-language models as a LangChain chat model.

The model translates LangChain messages into OpenAI-style message dicts and hands
them to the core (:mod:`siliconvision`), which encodes and downsizes images, applies
``detail`` and ``image_order``, moves images out of tool messages, validates the
request, sends it and reads responses and streams (with correct usage totals).

Message conversion lives in small module-level functions (:func:`_format_image`,
:func:`_format_block`, :func:`_convert_message`, :func:`_format_messages`).
"""

from __future__ import annotations

import difflib
import importlib.util
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, Literal, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    InvalidToolCall,
    SystemMessage,
    ToolCall,
    ToolCallChunk,
    ToolMessage,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from typing_extensions import Self

from siliconvision.catalog import Detail, ImageOrder, get_model_spec
from siliconvision.client import (
    DEFAULT_MODEL,
    DEFAULT_RETRY_INITIAL_DELAY,
    DEFAULT_RETRY_MAX_DELAY,
    SiliconVisionClient,
    check_timeout,
    client_settings,
    resolve_base_url,
)
from siliconvision.content import Image, Pdf
from siliconvision.errors import ContentError
from siliconvision.guards import DEFAULT_MAX_FILE_BYTES
from siliconvision.images import Base64Image, PdfOptions
from siliconvision.images._pdf import normalize_pages
from siliconvision.ratelimit import RateLimits
from siliconvision.tokens import estimate_prompt_tokens, estimate_text_tokens
from siliconvision.wire import (
    ChatReply,
    StreamDelta,
    Usage,
    build_chat_request,
    undocumented_field_error,
)

from ._client import ClientHolder, KeylessPickle, allowed_dirs_list, default_api_key

__all__ = ["ChatSiliconVision"]

PROVIDER = "siliconflow"
"""``ls_provider`` and ``response_metadata["model_provider"]``."""

#: Size assumed for an http(s) image URL whose pixels are unknown (not fetched).

# Content block types that only record the model's own output in an AIMessage
# (reasoning, tool calls: sent through ``tool_calls``); they are not sent back.
_AI_ONLY_BLOCKS = frozenset(
    {
        "reasoning",
        "thinking",
        "redacted_thinking",
        "tool_call",
        "tool_call_chunk",
        "invalid_tool_call",
        "tool_use",
        "server_tool_call",
        "server_tool_call_chunk",
        "server_tool_result",
    }
)
_SUPPORTED = "text, image, image_url, video, video_url, file (PDFs)"


# --------------------------------------------------------------------------- input


def _detail_of(block: Mapping[str, Any]) -> Any:
    """``detail`` of a content block: ``extras["detail"]`` (v1), else a top-level key."""
    extras = block.get("extras")
    if isinstance(extras, Mapping) and extras.get("detail") is not None:
        return extras["detail"]
    metadata = block.get("metadata")  # langchain-core < 1.0 kept extras here
    if isinstance(metadata, Mapping) and metadata.get("detail") is not None:
        return metadata["detail"]
    return block.get("detail")


def _image_url_part(url: str, detail: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url}
    if detail is not None:
        body["detail"] = detail
    return {"type": "image_url", "image_url": body}


def _from_base64(data: Any, mime_type: Any, detail: Any, where: str) -> Image:
    """Base64 data as the core's :class:`~siliconvision.images.Base64Image`, decoded (and
    its real format sniffed) by the core when it is prepared. Not a ``data:`` URI: that
    would copy the whole payload once more, for nothing when the image is downsized."""
    if not isinstance(data, str) or not data:
        raise ContentError(f"{where}: base64 image data must be a non-empty string")
    if mime_type and not (isinstance(mime_type, str) and mime_type.lower().startswith("image/")):
        raise ContentError(f"{where}: mime_type {mime_type!r} is not an image type")
    return Image(Base64Image(data, mime_type or None), detail=detail)


def _no_files_api(file_id: Any, where: str) -> ContentError:
    return ContentError(
        f"{where}: an image given by file_id ({file_id!r}) cannot be sent: SiliconCloud has "
        "no files API; pass the image as a URL, as base64 data, or from a local file with "
        "langchain_siliconvision.image_block(path)"
    )


def _format_image(block: Mapping[str, Any], where: str) -> dict[str, Any] | Image:
    """One image block (v1 standard, v0 ``source_type``, or Anthropic ``source``) as an
    ``image_url`` part (URLs) or a :class:`~siliconvision.content.Image` (base64 data:
    a :class:`~siliconvision.images.Base64Image`), with its ``detail``."""
    detail = _detail_of(block)
    source_type = block.get("source_type")
    if source_type is not None:  # the older v0 form
        if source_type == "url":
            url = block.get("url")
            if not isinstance(url, str):
                raise ContentError(f"{where}: image block with source_type 'url' needs a url")
            return _image_url_part(url, detail)
        if source_type == "base64":
            return _from_base64(block.get("data"), block.get("mime_type"), detail, where)
        if source_type == "id":
            raise _no_files_api(block.get("id"), where)
        raise ContentError(f"{where}: unknown image source_type {source_type!r}")
    source = block.get("source")
    if isinstance(source, Mapping):  # Anthropic's {"source": {"type": ...}}
        kind = source.get("type")
        if kind == "base64":
            return _from_base64(source.get("data"), source.get("media_type"), detail, where)
        if kind == "url" and isinstance(source.get("url"), str):
            return _image_url_part(source["url"], detail)
        if kind == "file":
            raise _no_files_api(source.get("file_id"), where)
        raise ContentError(f"{where}: unknown image source type {kind!r}")
    if block.get("url") is not None:
        url = block["url"]
        if not isinstance(url, str):
            raise ContentError(f"{where}: image url must be a string")
        return _image_url_part(url, detail)
    if block.get("base64") is not None:
        return _from_base64(block["base64"], block.get("mime_type"), detail, where)
    if block.get("file_id") is not None:
        raise _no_files_api(block["file_id"], where)
    raise ContentError(f"{where}: image block needs 'url', 'base64' (+ 'mime_type') or 'file_id'")


_DOCUMENT_MIME = "application/pdf"


def _file_extras(block: Mapping[str, Any]) -> tuple[Any, Any]:
    """``(pages, detail)`` of a file block, from its ``extras`` (or top-level keys)."""
    extras = block.get("extras")
    extras = extras if isinstance(extras, Mapping) else {}
    pages = extras.get("pages", block.get("pages"))
    return pages, _detail_of(block)


def _format_file(block: Mapping[str, Any], where: str) -> dict[str, Any] | Image | Pdf:
    """A standard file block (``{"type": "file", "base64" | "url": ...,
    "mime_type": "application/pdf"}``) as a core PDF: its selected pages are sent as
    images (``extras``: ``pages``, ``detail``). An image in a file block is an image;
    other document types are refused (SiliconCloud's models read images)."""
    mime = block.get("mime_type")
    if mime is not None and not isinstance(mime, str):
        raise ContentError(f"{where}: file block mime_type must be a string")
    kind = (mime or "").lower().split(";", 1)[0].strip()
    if kind and kind != _DOCUMENT_MIME and not kind.startswith("image/"):
        raise ContentError(
            f"{where}: a file of type {mime!r} cannot be sent: SiliconCloud's vision models "
            "read images, and PDFs as their pages' images (mime_type 'application/pdf')"
        )
    pages, detail = _file_extras(block)
    if kind.startswith("image/"):
        if pages is not None:
            raise ContentError(f"{where}: pages= applies to PDFs, not to a {mime} image")
        return _format_image({**block, "type": "image"}, where)
    try:
        pages = normalize_pages(pages)
    except ValueError as exc:
        raise ContentError(f"{where}: {exc}") from None
    if block.get("base64") is not None and block.get("url") is not None:
        raise ContentError(f"{where}: file block gives both base64 and url; give one")
    if block.get("base64") is not None:
        data = block["base64"]
        if not isinstance(data, str) or not data:
            raise ContentError(f"{where}: base64 file data must be a non-empty string")
        return Pdf(Base64Image(data, _DOCUMENT_MIME if kind else None), pages=pages, detail=detail)
    if block.get("url") is not None:
        url = block["url"]
        if not isinstance(url, str):
            raise ContentError(f"{where}: file url must be a string")
        body: dict[str, Any] = {"url": url}  # message content: the core's message policy
        if pages is not None:
            body["pages"] = list(pages)
        if detail is not None:
            body["detail"] = detail
        return {"type": "file", "file": body}
    if block.get("file_id") is not None:
        raise ContentError(
            f"{where}: a file given by file_id ({block['file_id']!r}) cannot be sent: "
            "SiliconCloud has no files API; pass the PDF as base64 data, or from a local "
            "file with langchain_siliconvision.pdf_block(path)"
        )
    raise ContentError(f"{where}: file block needs 'base64' (+ 'mime_type') or 'url'")


def _format_video(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    raw_extras = block.get("extras")
    extras: Mapping[str, Any] = raw_extras if isinstance(raw_extras, Mapping) else {}
    if isinstance(block.get("url"), str):
        url = block["url"]
    elif isinstance(block.get("base64"), str):
        mime = block.get("mime_type")
        if not isinstance(mime, str) or not mime.startswith("video/"):
            raise ContentError(f"{where}: base64 video needs a video/* mime_type")
        url = f"data:{mime};base64,{block['base64']}"
    elif block.get("file_id") is not None:
        raise ContentError(f"{where}: video by file_id: SiliconCloud has no files API")
    else:
        raise ContentError(f"{where}: video block needs 'url' or 'base64' + 'mime_type'")
    body: dict[str, Any] = {"url": url}
    for key in ("detail", "max_frames", "fps"):
        value = extras.get(key, block.get(key))
        if value is not None:
            body[key] = value
    return {"type": "video_url", "video_url": body}


def _translated(block: Mapping[str, Any]) -> dict[str, Any] | None:
    """Another provider's block as a v1 standard block, by LangChain's own translators."""
    try:
        blocks = HumanMessage(content=[dict(block)]).content_blocks
    except Exception:
        return None
    if len(blocks) == 1 and blocks[0].get("type") in ("text", "image", "video", "file"):
        return dict(blocks[0])
    return None


def _format_block(
    block: Any, where: str, *, role: str, translate: bool = True
) -> list[dict[str, Any] | Image | Pdf]:
    """One content item as the parts the core takes (usually one; none for AI bookkeeping)."""
    if isinstance(block, str):
        return [{"type": "text", "text": block}]
    if not isinstance(block, Mapping):
        raise ContentError(
            f"{where}: content items must be strings or dicts, got {type(block).__name__}"
        )
    kind = block.get("type")
    if kind == "text":
        return [{"type": "text", "text": block.get("text")}]
    if kind == "image_url":
        image_url = block.get("image_url")
        if isinstance(image_url, str):
            return [_image_url_part(image_url, _detail_of(block))]
        if isinstance(image_url, Mapping) and isinstance(image_url.get("url"), str):
            return [_image_url_part(image_url["url"], image_url.get("detail"))]
        raise ContentError(f"{where}: image_url block needs image_url.url as a string")
    if kind == "image":
        return [_format_image(block, where)]
    if kind == "video":
        return [_format_video(block, where)]
    if kind == "video_url":
        return [dict(block)]
    if kind == "file" and "file" not in block and "source_type" not in block:
        return [_format_file(block, where)]
    if kind in _AI_ONLY_BLOCKS and role == "assistant":
        return []
    if translate and kind not in ("non_standard", "audio", "input_audio"):
        converted = _translated(block)
        if converted is not None and converted != dict(block):
            return _format_block(converted, where, role=role, translate=False)
    raise ContentError(
        f"{where}: content block type {kind!r} cannot be sent to a SiliconCloud chat model "
        f"(supported: {_SUPPORTED})"
    )


def _format_content(content: Any, where: str, *, role: str) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ContentError(f"{where}: content must be a string or a list")
    parts: list[dict[str, Any] | Image | Pdf] = []
    for i, item in enumerate(content):
        parts.extend(_format_block(item, f"{where} block {i}", role=role))
    return parts


def _tool_call_dict(call: Mapping[str, Any], arguments: str) -> dict[str, Any]:
    return {
        "id": call.get("id") or "",
        "type": "function",
        "function": {"name": call.get("name") or "", "arguments": arguments},
    }


def _convert_message(message: BaseMessage, index: int) -> dict[str, Any]:
    """One LangChain message as an OpenAI-style dict whose content the core takes."""
    where = f"message {index} ({message.type})"
    if isinstance(message, HumanMessage):
        return {"role": "user", "content": _format_content(message.content, where, role="user")}
    if isinstance(message, SystemMessage):
        return {
            "role": "system",
            "content": _format_content(message.content, where, role="system"),
        }
    if isinstance(message, AIMessage):
        out: dict[str, Any] = {
            "role": "assistant",
            "content": _format_content(message.content, where, role="assistant"),
        }
        calls = [
            _tool_call_dict(call, json.dumps(call["args"], ensure_ascii=False))
            for call in message.tool_calls
        ]
        calls += [
            _tool_call_dict(call, call.get("args") or "") for call in message.invalid_tool_calls
        ]
        if calls:
            out["tool_calls"] = calls
        return out
    if isinstance(message, ToolMessage):
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id,
            "content": _format_content(message.content, where, role="tool"),
        }
    if isinstance(message, ChatMessage):
        role = {"human": "user", "ai": "assistant"}.get(message.role, message.role)
        if role not in ("user", "system", "developer", "assistant"):
            raise ContentError(f"{where}: unsupported chat message role {message.role!r}")
        return {"role": role, "content": _format_content(message.content, where, role=role)}
    if isinstance(message, FunctionMessage):
        raise ContentError(f"{where}: FunctionMessage is not supported; use ToolMessage")
    raise ContentError(f"{where}: unsupported message type {type(message).__name__}")


def _format_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as OpenAI-style dicts for :func:`siliconvision.prepare_messages`."""
    return [_convert_message(message, i) for i, message in enumerate(messages)]


def _json_schema_instruction(schema: Any) -> str:
    return (
        "Answer with one JSON object only (no prose, no code fences) that is valid against "
        f"this JSON Schema:\n{json.dumps(schema, ensure_ascii=False)}"
    )


def _apply_json_schema(
    messages: list[dict[str, Any]], response_format: Any
) -> tuple[list[dict[str, Any]], Any]:
    """SiliconCloud documents only ``{"type": "json_object"}``: a ``json_schema``
    response format is sent as ``json_object`` plus the schema as a system
    instruction (the structured-output parser validates the result)."""
    if not isinstance(response_format, Mapping) or response_format.get("type") != "json_schema":
        return messages, response_format
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if not isinstance(schema, Mapping):
        raise ContentError("response_format json_schema needs json_schema.schema as a dict")
    instruction = _json_schema_instruction(schema)
    if messages and messages[0].get("role") in ("system", "developer"):
        first = dict(messages[0])
        content = first.get("content")
        if isinstance(content, list):
            first["content"] = [*content, {"type": "text", "text": "\n\n" + instruction}]
        else:
            first["content"] = f"{content or ''}\n\n{instruction}".lstrip()
        messages = [first, *messages[1:]]
    else:
        messages = [{"role": "system", "content": instruction}, *messages]
    return messages, {"type": "json_object"}


# --------------------------------------------------------------------------- output


def _usage_metadata(usage: Usage | None) -> UsageMetadata | None:
    if usage is None:
        return None
    total = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
    metadata = UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=total,
    )
    if usage.cached_tokens:
        metadata["input_token_details"] = InputTokenDetails(cache_read=usage.cached_tokens)
    if usage.reasoning_tokens:
        metadata["output_token_details"] = OutputTokenDetails(reasoning=usage.reasoning_tokens)
    return metadata


def _parse_tool_calls(result: ChatReply) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for call in result.tool_calls:
        try:
            args = call.parsed_arguments()
        except ValueError as exc:
            invalid.append(
                InvalidToolCall(
                    type="invalid_tool_call",
                    name=call.name,
                    args=call.arguments,
                    id=call.id,
                    error=str(exc),
                )
            )
            continue
        if not isinstance(args, dict):
            invalid.append(
                InvalidToolCall(
                    type="invalid_tool_call",
                    name=call.name,
                    args=call.arguments,
                    id=call.id,
                    error="tool call arguments are not a JSON object",
                )
            )
            continue
        calls.append(ToolCall(type="tool_call", name=call.name, args=args, id=call.id))
    return calls, invalid


def _response_metadata(
    *,
    model: str,
    finish_reason: str | None,
    response_id: str | None,
    trace_id: str | None,
    system_fingerprint: str | None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "model_name": model,
        "model_provider": PROVIDER,
        "finish_reason": finish_reason,
    }
    if response_id:
        metadata["id"] = response_id
    if trace_id:
        metadata["trace_id"] = trace_id
    if system_fingerprint:
        metadata["system_fingerprint"] = system_fingerprint
    return metadata


def _ai_message(result: ChatReply, model_name: str) -> AIMessage:
    calls, invalid = _parse_tool_calls(result)
    additional_kwargs: dict[str, Any] = {}
    if result.reasoning_content:
        additional_kwargs["reasoning_content"] = result.reasoning_content
    return AIMessage(
        content=result.content,
        additional_kwargs=additional_kwargs,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=_usage_metadata(result.usage),
        response_metadata=_response_metadata(
            model=model_name,
            finish_reason=result.finish_reason,
            response_id=result.id,
            trace_id=result.trace_id,
            system_fingerprint=result.system_fingerprint,
        ),
        id=result.id or None,
    )


def _chat_result(result: ChatReply, requested_model: str) -> ChatResult:
    """One generation per choice (``n > 1``: several). The usage counts the whole
    request, so it is on the first generation's message only (summing the messages'
    usage gives the bill)."""
    model_name = result.model or requested_model
    generations = [
        ChatGeneration(
            message=_ai_message(choice, model_name),
            generation_info={"finish_reason": choice.finish_reason}
            if choice.finish_reason
            else None,
        )
        for choice in result.choices
    ]
    llm_output: dict[str, Any] = {"model_name": model_name}
    usage = _usage_metadata(result.usage)
    if usage is not None:
        llm_output["token_usage"] = {
            "prompt_tokens": usage["input_tokens"],
            "completion_tokens": usage["output_tokens"],
            "total_tokens": usage["total_tokens"],
        }
    return ChatResult(generations=generations, llm_output=llm_output)


def _chunk_from_delta(delta: StreamDelta, *, with_usage: bool = True) -> AIMessageChunk:
    additional_kwargs: dict[str, Any] = {}
    if delta.reasoning:
        additional_kwargs["reasoning_content"] = delta.reasoning
    tool_chunks = [
        ToolCallChunk(
            type="tool_call_chunk",
            name=piece.name,
            args=piece.arguments,
            id=piece.id,
            index=piece.index,
        )
        for piece in delta.tool_calls
    ]
    increment = delta.usage_increment
    usage = (
        None
        if not with_usage or increment is None or increment.is_zero
        else _usage_metadata(increment)
    )
    return AIMessageChunk(
        content=delta.content or "",
        additional_kwargs=additional_kwargs,
        tool_call_chunks=tool_chunks,
        usage_metadata=usage,
        id=delta.id or None,
    )


def _last_chunk(stream: Any, requested_model: str) -> AIMessageChunk:
    accumulator = stream.accumulator
    return AIMessageChunk(
        content="",
        chunk_position="last",
        id=accumulator.id or None,
        response_metadata=_response_metadata(
            model=accumulator.model or requested_model,
            finish_reason=accumulator.finish_reason,
            response_id=accumulator.id,
            trace_id=stream.trace_id,
            system_fingerprint=accumulator.system_fingerprint,
        ),
    )


# --------------------------------------------------------------------------- model


def _renders_pdfs() -> bool:
    """Whether PDF pages can be rendered here (the ``[pdf]`` extra is installed)."""
    return importlib.util.find_spec("pypdfium2") is not None


#: ``ChatOpenAI``'s names for our settings (its field names and aliases).
OPENAI_ALIASES: dict[str, str] = {
    "model_name": "model",
    "openai_api_key": "api_key",
    "openai_api_base": "base_url",
    "request_timeout": "timeout",
    "max_completion_tokens": "max_tokens",
    "stop_sequences": "stop",
}

_RESPONSES_API = "it belongs to OpenAI's Responses API; SiliconCloud serves chat completions"
_OWN_CLIENT = (
    "the openai client is built here (SiliconCloud's errors, backoff and image handling); "
    "to bring your own connection settings pass http_client=httpx.Client(...) and "
    "http_async_client=httpx.AsyncClient(...)"
)

#: ``ChatOpenAI`` settings this model refuses, with the reason. ``None`` and ``False``
#: (unset, or "off") are accepted: there is nothing to honour.
OPENAI_REFUSED: dict[str, str] = {
    "client": _OWN_CLIENT,
    "async_client": _OWN_CLIENT,
    "root_client": _OWN_CLIENT,
    "root_async_client": _OWN_CLIENT,
    "openai_organization": "SiliconCloud has no organizations",
    "organization": "SiliconCloud has no organizations",
    "openai_proxy": "pass http_client=httpx.Client(proxy=...) and "
    "http_async_client=httpx.AsyncClient(proxy=...)",
    "http_socket_options": "pass http_client/http_async_client built with those socket options",
    "default_query": "SiliconCloud documents no query parameters for chat completions",
    "stream_chunk_timeout": "the read time-out (timeout=, or a (connect, read) pair) already "
    "bounds the wait for every chunk",
    "tiktoken_model_name": "token counts follow each model's own rules "
    "(get_num_tokens_from_messages); tiktoken does not know SiliconCloud's models",
    "include_response_headers": "response_metadata carries SiliconCloud's trace_id "
    "(x-siliconcloud-trace-id), the header worth keeping",
    "disabled_params": "every setting is checked against what SiliconCloud documents",
    "reasoning_effort": "use enable_thinking and thinking_budget",
    "reasoning": "use enable_thinking and thinking_budget",
    "context_management": _RESPONSES_API,
    "include": _RESPONSES_API,
    "prompt_cache_options": _RESPONSES_API,
    "service_tier": "SiliconCloud documents no service tiers",
    "store": _RESPONSES_API,
    "truncation": _RESPONSES_API,
    "use_previous_response_id": _RESPONSES_API,
    "use_responses_api": _RESPONSES_API,
}
#: Request fields SiliconCloud does not document: refused as settings, with the
#: ``extra_body`` way to send one anyway.
OPENAI_UNDOCUMENTED = (
    "presence_penalty",
    "seed",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "verbosity",
)


def _refusal(name: str) -> str:
    if name in OPENAI_UNDOCUMENTED:
        return "ChatSiliconVision: " + undocumented_field_error(name, "setting")
    return f"ChatSiliconVision does not take {name!r}: {OPENAI_REFUSED[name]}"


def _unknown_setting(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"ChatSiliconVision got an unknown setting {name!r}{hint}; request fields go in "
        "model_kwargs (checked against what SiliconCloud documents) or, sent as they are, "
        "in extra_body"
    )


def _openai_settings(values: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor keywords with ``ChatOpenAI``'s names mapped to ours; its settings we
    cannot honour and unknown keywords raise ``ValueError`` naming them."""
    values = dict(values)
    for alias, name in OPENAI_ALIASES.items():
        if alias in values:
            value = values.pop(alias)
            if name in values and values[name] != value:
                raise ValueError(f"ChatSiliconVision got both {alias!r} and {name!r}; pass one")
            values[name] = value
    known = [*fields, *OPENAI_ALIASES]
    for name in list(values):
        if name in fields:
            continue
        if name in OPENAI_REFUSED or name in OPENAI_UNDOCUMENTED:
            if values[name] is None or values[name] is False:
                del values[name]  # unset or "off": what happens anyway
                continue
            raise ValueError(_refusal(name))
        raise ValueError(_unknown_setting(name, known))
    if isinstance(values.get("stop"), str):
        values["stop"] = [values["stop"]]
    if values.get("max_retries", 0) is None:
        del values["max_retries"]  # ChatOpenAI's None: the SDK's default, 2
    return values


class ChatSiliconVision(KeylessPickle, BaseChatModel):
    """SiliconCloud's vision-language models (Qwen-VL, InternVL, GLM-V, DeepSeek-VL2...).

    Configuration: ``model``, ``api_key`` (else ``SILICONFLOW_API_KEY``, then
    ``SILICONCLOUD_API_KEY``), ``base_url`` (else ``SILICONFLOW_BASE_URL``, else
    ``https://api.siliconflow.cn/v1``), ``detail`` and ``image_order`` (defaults for
    every image), sampling (``temperature``, ``top_p``, ``top_k``, ``max_tokens``,
    ``stop``, ``n``, ``frequency_penalty``), thinking (``enable_thinking``,
    ``thinking_budget``), ``timeout`` (seconds, ``(connect, read)`` or
    ``httpx.Timeout``), ``max_retries`` and its backoff (``retry_initial_delay``,
    ``retry_max_delay``), ``streaming``, ``stream_usage``, ``default_headers``,
    ``http_client``/``http_async_client``, ``model_kwargs`` (more request fields,
    validated), ``extra_body`` (sent as is) and ``rate_limits``
    (:class:`~siliconvision.RateLimits`: requests wait for the account's RPM/TPM); local
    files and URLs: ``allowed_dirs``, ``max_file_bytes``, ``fetch_urls`` and
    ``allow_private_urls``.

    ``ChatOpenAI``'s names work too (``model_name``, ``openai_api_key``,
    ``openai_api_base``, ``request_timeout``, ``max_completion_tokens``,
    ``stop_sequences``). Its settings SiliconCloud cannot honour (``seed``,
    ``presence_penalty``, ``logprobs``, ``openai_proxy``, ``reasoning_effort``, ...)
    and unknown keywords raise ``ValueError`` naming them, with what to do instead;
    nothing is dropped silently. ``n > 1`` returns ``n`` generations.

    Images may be written in any form: OpenAI ``image_url`` dicts (with ``detail``),
    standard ``{"type": "image", "url" | "base64"}`` blocks (``detail`` in
    ``extras``), the older ``source_type`` form, and local files, bytes or PIL images
    through :func:`~langchain_siliconvision.image_block`. Images returned by tools
    (``ToolMessage``) reach the model too.

    PDFs: standard file blocks (``{"type": "file", "base64": ..., "mime_type":
    "application/pdf"}``, also OpenAI's ``{"type": "file", "file": {"file_data": ...}}``
    and Anthropic's ``document`` blocks), in human and tool messages; each page is sent
    as one image, rendered at the size the model's server keeps (``extras``:
    ``pages`` selects pages, ``detail`` sizes them; ``pdf`` sets the caps). A file
    block's ``url`` is message content: an http(s) PDF is downloaded only with
    ``fetch_urls=True``, a local one only inside ``allowed_dirs``; local files you
    choose go through :func:`~langchain_siliconvision.pdf_block`.

    Message content is untrusted: a block's ``url`` is sent as it is when it is an
    http(s) URL or a ``data:`` URI, and a local path or ``file:`` URL there is read only
    inside ``allowed_dirs`` (none by default: it raises ``ImageInputError``). Files the
    program chooses go through :func:`~langchain_siliconvision.image_block`.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_siliconvision import ChatSiliconVision, image_block
        >>> llm = ChatSiliconVision(model="Qwen/Qwen2.5-VL-72B-Instruct", detail="low")
        >>> answer = llm.invoke([HumanMessage(content=[
        ...     image_block("before.png"),
        ...     image_block("after.png"),
        ...     {"type": "text", "text": "What changed between these two screenshots?"},
        ... ])])  # doctest: +SKIP
        >>> for chunk in llm.stream("Describe a sunset in one line."):  # doctest: +SKIP
        ...     print(chunk.text, end="")
    """

    # hide_input_in_errors: a refused setting must not print the other ones (the key).
    model_config = ConfigDict(populate_by_name=True, hide_input_in_errors=True)

    model: str = DEFAULT_MODEL
    """SiliconCloud model id (see ``siliconvision models``); unknown ids work with safe
    defaults."""
    api_key: SecretStr | None = Field(default_factory=default_api_key)
    """API key; defaults to ``SILICONFLOW_API_KEY``, then ``SILICONCLOUD_API_KEY``."""
    base_url: str = Field(default_factory=resolve_base_url)
    """API base URL; defaults to ``SILICONFLOW_BASE_URL``, then the China endpoint."""
    detail: Detail | None = None
    """Default image detail (an image's own ``detail`` wins); ``None``: the catalog's."""
    image_order: ImageOrder = "auto"
    """``"auto"`` (images first for InternVL), ``"images_first"`` or ``"preserve"``."""
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    enable_thinking: bool | None = None
    """Turn thinking on/off on models where it is optional (GLM-4.5V, ...)."""
    thinking_budget: int | None = None
    """Reasoning token budget (128-32768)."""
    n: int | None = Field(default=None, ge=1)
    """Answers per request (``n > 1``: that many generations; not when streaming)."""
    frequency_penalty: float | None = None
    """Penalise repeated tokens (-2 to 2)."""
    timeout: Any = 60.0
    """Per attempt: seconds, ``None`` (no limit), a ``(connect, read)`` pair or an
    ``httpx.Timeout`` (``ChatOpenAI``'s ``request_timeout`` is the same setting)."""
    max_retries: int = Field(default=2, ge=0)
    """Retries of 429, 5xx, connection errors and time-outs (by the ``openai`` SDK);
    ``None`` is taken as the SDK's default, 2."""
    retry_initial_delay: float = Field(
        default=DEFAULT_RETRY_INITIAL_DELAY, ge=0, allow_inf_nan=False
    )
    """Seconds before the first retry; doubled per retry, less up to 25% jitter."""
    retry_max_delay: float = Field(default=DEFAULT_RETRY_MAX_DELAY, ge=0, allow_inf_nan=False)
    """The longest wait between two attempts (a ``Retry-After`` is honoured up to it)."""
    streaming: bool = False
    """Stream by default (``invoke`` then streams too, so callbacks get every token)."""
    stream_usage: bool | None = None
    """Token usage on streamed chunks (SiliconCloud always sends it); ``False`` leaves it
    out of the chunks' ``usage_metadata``."""
    fetch_urls: bool = False
    """Download URL images client-side (and downsize them) instead of passing URLs on;
    always through the SSRF guard (the URL, every redirect hop, every connection)."""
    allow_private_urls: bool = False
    """With ``fetch_urls``: allow loopback/private/link-local hosts (trusted URLs only)."""
    allowed_dirs: list[str] = Field(default_factory=list)
    """Directories whose files a message ``url`` may name (a local path or ``file:``
    URL), after resolving symlinks and ``..``; empty (the default): message content
    never makes the model read a local file. Files you choose yourself go through
    :func:`~langchain_siliconvision.image_block`, whatever this says."""
    max_file_bytes: int = Field(default=DEFAULT_MAX_FILE_BYTES, ge=1)
    """Local files larger than this are refused (checked before reading)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """More request fields (``min_p``, ...), checked against what SiliconCloud documents."""
    extra_body: dict[str, Any] | None = None
    """Fields sent as they are in the JSON body (the way to send a field SiliconCloud
    does not document, such as ``seed``)."""
    default_headers: dict[str, str] | None = None
    """HTTP headers sent with every request."""
    http_client: Any = Field(default=None, exclude=True)
    """Your own ``httpx.Client`` for sync calls (proxies, transports, event hooks)."""
    http_async_client: Any = Field(default=None, exclude=True)
    """Your own ``httpx.AsyncClient`` for async calls."""
    rate_limits: RateLimits | None = None
    """An account's RPM/TPM budget, shared by every request sent with it (one object
    for all the models, chains and threads that send to the same account and model)."""
    pdf: PdfOptions | None = None
    """How PDF pages are rendered (the reference ``dpi``) and the caps that bound a
    document (``max_pages``, ``max_pixels``, ``timeout``); ``None``: the defaults."""

    _holder: ClientHolder = PrivateAttr(default_factory=ClientHolder)

    @model_validator(mode="before")
    @classmethod
    def _openai_names(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return _openai_settings(values, cls.model_fields)
        return values

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        return resolve_base_url(value)

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, value: Any) -> Any:
        return check_timeout(value)

    @model_validator(mode="after")
    def _check_request_settings(self) -> Self:
        """Refuse at construction what the first request would refuse."""
        if self.streaming and (self.n or 1) > 1:
            raise ValueError("n must be 1 when streaming (streaming=True)")
        params = {k: v for k, v in self._default_params().items() if v is not None}
        build_chat_request([{"role": "user", "content": "x"}], model=self.model, **params)
        return self

    @property
    def model_name(self) -> str:
        """The model id (``ChatOpenAI``'s name for :attr:`model`)."""
        return self.model

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        # The caller's HTTP clients are shared, not copied (they hold locks and sockets).
        memo = {} if memo is None else memo
        for shared in (self.http_client, self.http_async_client):
            if shared is not None:
                memo[id(shared)] = shared
        return super().__deepcopy__(memo)

    @field_validator("allowed_dirs", mode="before")
    @classmethod
    def _dirs(cls, value: Any) -> Any:
        return allowed_dirs_list(value)

    # ------------------------------------------------------------------ LangChain meta

    @property
    def _llm_type(self) -> str:
        return "chat-siliconvision"

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": "SILICONFLOW_API_KEY"}

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_siliconvision", "chat_models"]

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "base_url": self.base_url,
            "detail": self.detail,
            "image_order": self.image_order,
            **self._default_params(),
            "streaming": self.streaming,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=PROVIDER,
            ls_model_name=str(kwargs.get("model") or self.model),
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, (int, float)):
            params["ls_temperature"] = float(temperature)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        stop_sequences = stop or self.stop
        if stop_sequences:
            params["ls_stop"] = list(stop_sequences)
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        spec = get_model_spec(self.model)
        profile = ModelProfile(
            name=spec.id,
            max_input_tokens=spec.context_window,
            text_inputs=True,
            image_inputs=spec.vision,
            image_url_inputs=spec.vision and spec.accepts_image_urls,
            video_inputs=spec.video,
            audio_inputs=False,
            pdf_inputs=spec.vision and _renders_pdfs(),
            image_tool_message=spec.vision,
            pdf_tool_message=spec.vision and _renders_pdfs(),
            reasoning_output=spec.reasoning != "none",
            text_outputs=True,
            image_outputs=False,
            audio_outputs=False,
            video_outputs=False,
            tool_calling=spec.tools,
            tool_choice=spec.tools,
            tool_call_streaming=spec.tools,
            structured_output=False,
            temperature=True,
        )
        if spec.max_output_tokens is not None:
            profile["max_output_tokens"] = spec.max_output_tokens
        return profile

    # ------------------------------------------------------------------ client

    def _client_settings(self) -> dict[str, Any]:
        """The core client's arguments (it is rebuilt when one changes)."""
        # The SecretStr itself, not its value: it compares by value, and its repr stays
        # masked (error reporters show locals and attributes).
        return client_settings(
            self,
            api_key=self.api_key,
            http_client=self.http_client,
            http_async_client=self.http_async_client,
        )

    def _client_key(self) -> tuple[Any, ...]:
        # Compared with ==, never hashed: dicts, httpx clients and Timeouts are fine.
        return tuple(self._client_settings().items())

    def _new_client(self) -> SiliconVisionClient:
        return SiliconVisionClient(**self._client_settings())

    @property
    def client(self) -> SiliconVisionClient:
        """The core client this model sends with (built on first use from its fields)."""
        return self._holder.get(self._client_key(), self._new_client)

    # ------------------------------------------------------------------ requests

    def _default_params(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "max_tokens": self.max_tokens,
            "stop": self.stop or None,
            "n": self.n,
            "frequency_penalty": self.frequency_penalty,
            "enable_thinking": self.enable_thinking,
            "thinking_budget": self.thinking_budget,
            **self.model_kwargs,
        }

    def _prepare(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Wire-ready messages dicts and the options for the core client."""
        kwargs = dict(kwargs)
        for name in (
            "ls_structured_output_format",
            "structured_output_format",
            "stream",
            "stream_usage",
        ):
            kwargs.pop(name, None)
        for alias in ("max_completion_tokens", "stop_sequences"):  # ChatOpenAI's names
            if alias in kwargs:
                kwargs[OPENAI_ALIASES[alias]] = kwargs.pop(alias)
        options: dict[str, Any] = {
            "model": kwargs.pop("model", None) or self.model,
            "detail": kwargs.pop("detail", None),
            "image_order": kwargs.pop("image_order", None),
        }
        params = self._default_params()
        if stop is not None:
            params["stop"] = stop or None
        params.update(kwargs)
        extra_body = {**(self.extra_body or {}), **(params.pop("extra_body", None) or {})}
        wire = _format_messages(messages)
        wire, params["response_format"] = _apply_json_schema(wire, params.get("response_format"))
        options.update({k: v for k, v in params.items() if v is not None})
        if extra_body:
            options["extra_body"] = extra_body
        return wire, options

    def _combine_llm_outputs(self, llm_outputs: list[dict[str, Any] | None]) -> dict[str, Any]:
        """``generate``'s ``llm_output`` over several prompts: the token usage summed."""
        totals: dict[str, int] = {}
        model_name = None
        for output in llm_outputs:
            if not output:
                continue
            model_name = model_name or output.get("model_name")
            for key, value in (output.get("token_usage") or {}).items():
                totals[key] = totals.get(key, 0) + value
        combined: dict[str, Any] = {"model_name": model_name or self.model}
        if totals:
            combined["token_usage"] = totals
        return combined

    def _stream_usage(self, kwargs: Mapping[str, Any]) -> bool:
        value = kwargs.get("stream_usage", self.stream_usage)
        return value is not False

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        wire, options = self._prepare(messages, stop, kwargs)
        result = self.client.chat(wire, **options)
        return _chat_result(result, options["model"])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        wire, options = self._prepare(messages, stop, kwargs)
        result = await self.client.achat(wire, **options)
        return _chat_result(result, options["model"])

    # LangChain's ``stream``/``astream`` (and ``invoke`` when streaming) dispatch
    # ``on_llm_new_token`` for every chunk these generators yield, as they yield it;
    # the generators yield each SSE chunk as soon as it is read.

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with_usage = self._stream_usage(kwargs)
        wire, options = self._prepare(messages, stop, kwargs)
        with self.client.stream(wire, **options) as stream:
            for delta in stream:
                yield ChatGenerationChunk(message=_chunk_from_delta(delta, with_usage=with_usage))
            yield ChatGenerationChunk(message=_last_chunk(stream, options["model"]))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        with_usage = self._stream_usage(kwargs)
        wire, options = self._prepare(messages, stop, kwargs)
        stream = await self.client.astream(wire, **options)
        async with stream:
            async for delta in stream:
                yield ChatGenerationChunk(message=_chunk_from_delta(delta, with_usage=with_usage))
            yield ChatGenerationChunk(message=_last_chunk(stream, options["model"]))

    # ------------------------------------------------------------------ tokens

    def get_num_tokens(self, text: str) -> int:
        """Estimated tokens of ``text`` (a quarter of its UTF-8 bytes), or the count of
        ``custom_get_token_ids(text)`` when one is set."""
        if self.custom_get_token_ids is not None:
            return len(self.custom_get_token_ids(text))
        return estimate_text_tokens(text)

    def get_num_tokens_from_messages(
        self,
        messages: list[BaseMessage],
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool] | None = None,
    ) -> int:
        """Estimated prompt tokens of ``messages`` (and ``tools``), images included.

        Each image is prepared exactly as it would be sent (downsized for this model
        and its ``detail``) and counted by the rule of the model's own image processor;
        see :func:`siliconvision.tokens.estimate_prompt_tokens` (which raises for an
        image sent to a model without a sourced rule).
        """
        prepared = self.client.prepare_messages(_format_messages(messages))
        schemas = [convert_to_openai_tool(tool) for tool in tools] if tools else None
        return estimate_prompt_tokens(prepared, model=self.model, tools=schemas)

    # ------------------------------------------------------------------ tools

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (OpenAI function format on the wire).

        ``tool_choice``: ``"auto"``, ``"none"``, ``"required"``/``"any"``/``True``
        (call some tool), a tool name (call that tool), or an OpenAI-style dict.

        Example:
            >>> llm.bind_tools([get_weather], tool_choice="get_weather")  # doctest: +SKIP
        """
        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        names = [tool["function"]["name"] for tool in formatted]
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_choice"] = _tool_choice(tool_choice, names)
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["function_calling", "json_mode", "json_schema"] | None = None,
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """A runnable that answers with an instance of ``schema`` (or a dict).

        ``method``:
          - ``"function_calling"`` (default for models with tool calling): the schema
            is a tool the model is made to call;
          - ``"json_mode"``: ``response_format={"type": "json_object"}``; describe
            the wanted keys in the prompt;
          - ``"json_schema"`` (default for models without tools): SiliconCloud
            documents only ``json_object``, so this sends ``json_object`` with the
            schema as a system instruction and validates the answer client-side.

        Example:
            >>> class Receipt(BaseModel):
            ...     total: float
            >>> llm.with_structured_output(Receipt).invoke([...])  # doctest: +SKIP
        """
        if kwargs:
            raise ValueError(f"unexpected arguments: {sorted(kwargs)}")
        if method is None:
            method = "function_calling" if get_model_spec(self.model).tools else "json_schema"
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        structured_format = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        llm: Runnable[LanguageModelInput, Any]
        parser: Runnable[Any, Any]
        if method == "function_calling":
            tool = convert_to_openai_tool(schema, strict=strict)
            name = tool["function"]["name"]
            llm = self.bind_tools(
                [schema],
                tool_choice=name,
                strict=strict,
                ls_structured_output_format=structured_format,
            )
            if is_pydantic:
                parser = PydanticToolsParser(tools=[cast(Any, schema)], first_tool_only=True)
            else:
                parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        elif method == "json_mode":
            llm = self.bind(
                response_format={"type": "json_object"},
                ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
            )
            parser = _json_parser(schema, is_pydantic)
        elif method == "json_schema":
            json_schema = convert_to_json_schema(schema)
            llm = self.bind(
                response_format={
                    "type": "json_schema",
                    "json_schema": {
                        "name": json_schema.get("title", "output"),
                        "schema": json_schema,
                        "strict": strict,
                    },
                },
                ls_structured_output_format=structured_format,
            )
            parser = _json_parser(schema, is_pydantic)
        else:
            raise ValueError(
                f"method must be 'function_calling', 'json_mode' or 'json_schema', got {method!r}"
            )
        if not include_raw:
            return llm | parser
        parse = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        no_parse = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parse.with_fallbacks(
            [no_parse], exception_key="parsing_error"
        )


def _json_parser(schema: Any, is_pydantic: bool) -> Runnable[Any, Any]:
    if is_pydantic:
        return PydanticOutputParser(pydantic_object=schema)
    return JsonOutputParser()


def _tool_choice(choice: dict[str, Any] | str | bool, names: list[str]) -> Any:
    if choice is True or choice in ("any", "required"):
        return "required"
    if choice in ("auto", "none"):
        return choice
    if isinstance(choice, str):
        if choice not in names:
            raise ValueError(f"tool_choice {choice!r} is not one of the bound tools {names}")
        return {"type": "function", "function": {"name": choice}}
    if isinstance(choice, dict):
        return choice
    raise ValueError(f"unsupported tool_choice {choice!r}")
