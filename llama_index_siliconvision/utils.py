"""Pure converters between LlamaIndex types and the ``siliconvision`` core.

Nothing here talks to the network or knows SiliconCloud's rules: messages become
OpenAI-format dicts whose content items are core objects
(:class:`siliconvision.content.Image`, :class:`siliconvision.content.Video`), and the
core's :func:`~siliconvision.content.prepare_messages` then applies order, detail,
downsizing and the tool-image move. Results (:class:`~siliconvision.wire.ChatReply`,
:class:`~siliconvision.wire.StreamDelta`) become ``ChatResponse``/``CompletionResponse``.

Block policy (every LlamaIndex block is either sent or refused, never dropped):

- ``TextBlock``: text; ``ImageBlock``: an image (bytes, path or URL, its ``detail``
  wins); ``VideoBlock``: a video (models catalogued with ``video=True`` only);
  ``DocumentBlock``: a PDF, each page sent as one image (bytes, path or URL; other
  document types are refused by name);
- ``ToolCallBlock`` in an assistant message: its ``tool_calls``;
- ``ThinkingBlock`` in an assistant message: **not sent**. SiliconCloud's reasoning is
  output only (no request field takes it back) and agents replay whole assistant
  messages, so refusing it would break every agent run on a thinking model;
- ``CachePoint``: ignored (a caching hint with no content; SiliconCloud has no cache
  control);
- anything else (``AudioBlock``, ``CitableBlock``,
  ``CitationBlock``, a ``ThinkingBlock`` outside assistant messages, ...) raises
  :class:`~siliconvision.errors.ContentError` naming the block and the message.

Example:
    >>> from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock
    >>> msg = ChatMessage(blocks=[TextBlock(text="What is it?"),
    ...     ImageBlock(url="https://example.com/cat.png", detail="low")])
    >>> to_wire_messages([msg])
    [{'role': 'user', 'content': ['What is it?', Image(source='https://example.com/cat.png', detail='low')]}]
"""  # noqa: E501

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    DocumentBlock,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    VideoBlock,
)
from llama_index.core.constants import DEFAULT_NUM_OUTPUTS
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json
from llama_index.core.schema import BaseNode, ImageNode, NodeWithScore

from siliconvision.catalog import ModelSpec, get_model_spec
from siliconvision.content import Image, Pdf, Video
from siliconvision.errors import ContentError, ImageInputError
from siliconvision.images import (
    PDF_MIME_TYPE,
    Base64Image,
    is_data_uri,
    is_image_source,
    is_image_url,
)
from siliconvision.wire import (
    EXTRA_FIELDS,
    STANDARD_FIELDS,
    ChatReply,
    StreamAccumulator,
    StreamDelta,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = [
    "REQUEST_FIELDS",
    "StreamState",
    "chat_response_from_result",
    "completion_response_from_chat",
    "completion_to_wire_messages",
    "document_block_to_item",
    "image_block_to_item",
    "image_source_to_item",
    "llm_metadata",
    "openai_like_settings",
    "raw_dict",
    "resolve_tool_choice",
    "split_request_fields",
    "to_wire_messages",
    "tool_selections_from_message",
    "tools_to_wire",
    "usage_kwargs",
    "video_block_to_item",
]

#: Request fields the core's ``build_chat_request`` takes by name (others go to
#: ``extra_body``).
REQUEST_FIELDS: frozenset[str] = frozenset(STANDARD_FIELDS) | frozenset(EXTRA_FIELDS)

_ASSISTANT_ROLES = frozenset({MessageRole.ASSISTANT, MessageRole.CHATBOT, MessageRole.MODEL})
_SUPPORTED = "TextBlock, ImageBlock, DocumentBlock (PDFs), VideoBlock (video models)"


# --------------------------------------------------------------------------- inputs


def _block_name(block: object) -> str:
    return type(block).__name__


def _message_image(url: str, detail: Any) -> dict[str, Any]:
    """A ``url`` from message content, as the core's message form: the core's message
    policy decides (http(s) and ``data:`` as they are; a ``file:`` URL only inside the
    LLM's ``allowed_dirs``; other schemes refused by name)."""
    body: dict[str, Any] = {"url": url}
    if detail is not None:
        body["detail"] = detail
    return {"type": "image_url", "image_url": body}


def image_block_to_item(block: ImageBlock, where: str = "ImageBlock") -> Image | dict[str, Any]:
    """The core item for an ``ImageBlock``: a :class:`~siliconvision.content.Image`, or
    for a ``url`` that is neither http(s) nor ``data:`` an ``image_url`` part.

    Precedence: inline ``image`` bytes, then ``path`` (the program's own choice: read),
    then ``url``. A ``url`` is message content: http(s) URLs stay URLs, ``data:`` URIs
    are decoded by the core, and anything else (a ``file:`` URL) goes to the core's
    message policy, which reads a local file only inside the LLM's ``allowed_dirs``.
    The block's ``detail`` is kept (the core validates it and lets it win).

    >>> image_block_to_item(ImageBlock(url="https://example.com/a.png", detail="high"))
    Image(source='https://example.com/a.png', detail='high')
    """
    detail = cast(Any, block.detail)
    if block.image is not None:
        # Inline bytes are stored base64-encoded by LlamaIndex; resolve_image decodes
        # them (and never fetches anything when ``image`` is set).
        try:
            data = block.resolve_image().read()
        except ValueError as exc:  # LlamaIndex: "resolve_image returned zero bytes"
            raise ImageInputError(where, f"ImageBlock image is unusable: {exc}") from None
        return Image(data, detail=detail)
    if block.path is not None:
        return Image(Path(block.path), detail=detail)
    if block.url is not None:
        url = str(block.url)
        if is_image_url(url) or is_data_uri(url):
            return Image(url, detail=detail)
        return _message_image(url, detail)
    raise ContentError(f"{where}: ImageBlock has no image, path or url")


def document_block_to_item(
    block: DocumentBlock, where: str = "DocumentBlock"
) -> Pdf | Image | dict[str, Any]:
    """The core item for a ``DocumentBlock``: a :class:`~siliconvision.content.Pdf` (its
    pages are sent as images), or for a ``url`` the core's ``file`` part (message
    content: an http(s) PDF is downloaded only with the LLM's ``fetch_urls``, a
    ``file:`` URL read only inside its ``allowed_dirs``).

    Precedence as LlamaIndex's own: inline ``data`` (stored base64-encoded), then
    ``path`` (the program's own choice: read), then ``url``. A document declared as an
    image is sent as one; any other type but ``application/pdf`` is refused by name.

    >>> document_block_to_item(DocumentBlock(path="report.pdf"))
    Pdf(source=PosixPath('report.pdf'), pages=None, detail=None)
    """
    mime = (block.document_mimetype or "").lower()
    if mime.startswith("image/"):
        path = Path(block.path) if block.path is not None else None
        as_image = ImageBlock(image=block.data, path=path, url=block.url, image_mimetype=mime)
        return image_block_to_item(as_image, where)
    if mime and mime != PDF_MIME_TYPE:
        raise ContentError(
            f"{where}: a DocumentBlock of type {block.document_mimetype!r} cannot be sent: "
            "SiliconCloud's vision models read images, and PDFs as their pages' images"
        )
    declared = PDF_MIME_TYPE if mime else None
    if isinstance(block.data, bytes) and block.data:
        return Pdf(Base64Image(block.data.decode("ascii", "replace"), declared))
    if block.data is not None and not isinstance(block.data, bytes):  # a binary stream
        return Pdf(cast(Any, block.data))
    if block.path is not None:
        return Pdf(Path(block.path))
    if block.url is not None:
        url = str(block.url)
        if is_data_uri(url):
            return {"type": "file", "file": {"file_data": url}}
        return {"type": "file", "file": {"url": url}}
    raise ContentError(f"{where}: DocumentBlock has no data, path or url")


def video_block_to_item(block: VideoBlock, where: str = "VideoBlock") -> Video | dict[str, Any]:
    """The core item for a ``VideoBlock``: a :class:`~siliconvision.content.Video`, or for
    a ``url`` that is neither http(s) nor ``data:`` a ``video_url`` part.

    ``path`` is the program's own choice (the core checks the model takes video and
    encodes the file); a ``url`` is message content (a ``file:`` URL is read only
    inside the LLM's ``allowed_dirs``); inline bytes need a known video MIME type.

    >>> video_block_to_item(VideoBlock(url="https://example.com/clip.mp4", fps=2))
    Video(source='https://example.com/clip.mp4', detail=None, max_frames=None, fps=2)
    """
    detail = cast(Any, block.detail)
    if block.video is not None:
        mime = block.video_mimetype
        if not mime or not mime.startswith("video/"):
            raise ContentError(
                f"{where}: VideoBlock bytes of unknown type; set video_mimetype (e.g. 'video/mp4')"
            )
        payload = block.resolve_video(as_base64=True).read().decode("ascii")
        return Video(f"data:{mime};base64,{payload}", detail=detail, fps=block.fps)
    if block.path is not None:
        return Video(Path(block.path), detail=detail, fps=block.fps)
    if block.url is not None:
        url = str(block.url)
        if is_image_url(url) or is_data_uri(url):
            return Video(url, detail=detail, fps=block.fps)
        body: dict[str, Any] = {"url": url}
        for key, value in (("detail", detail), ("fps", block.fps)):
            if value is not None:
                body[key] = value
        return {"type": "video_url", "video_url": body}
    raise ContentError(f"{where}: VideoBlock has no video, path or url")


def _tool_call_wire(block: ToolCallBlock, index: int) -> dict[str, Any]:
    kwargs = block.tool_kwargs
    arguments = kwargs if isinstance(kwargs, str) else json.dumps(kwargs, ensure_ascii=False)
    return {
        "id": block.tool_call_id or f"call_{index}",
        "type": "function",
        "function": {"name": block.tool_name, "arguments": arguments},
    }


def _legacy_tool_calls(raw_calls: Any) -> list[dict[str, Any]]:
    """``additional_kwargs["tool_calls"]`` of older LlamaIndex messages, as wire dicts."""
    calls: list[dict[str, Any]] = []
    for raw in raw_calls or ():
        call = raw_dict(raw) or {}
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments or {}, ensure_ascii=False)
        calls.append(
            {
                "id": str(call.get("id") or ""),
                "type": "function",
                "function": {"name": str(function.get("name") or ""), "arguments": arguments},
            }
        )
    return calls


def _role(message: ChatMessage, where: str) -> str:
    role = message.role
    if role in _ASSISTANT_ROLES:
        return "assistant"
    if role == MessageRole.FUNCTION:
        raise ContentError(
            f"{where}: role 'function' (legacy OpenAI function calling) is not supported; "
            "send tool results as role 'tool' with additional_kwargs['tool_call_id']"
        )
    return str(role.value)


def to_wire_message(message: ChatMessage, where: str = "message") -> dict[str, Any]:
    """One ``ChatMessage`` as an OpenAI-format dict whose content items are core objects."""
    role = _role(message, where)
    items: list[object] = []
    tool_calls: list[dict[str, Any]] = []
    for i, block in enumerate(message.blocks):
        at = f"{where} ({role}) block {i}"
        if isinstance(block, TextBlock):
            items.append(block.text)
        elif isinstance(block, ImageBlock):
            items.append(image_block_to_item(block, at))
        elif isinstance(block, VideoBlock):
            items.append(video_block_to_item(block, at))
        elif isinstance(block, DocumentBlock):
            items.append(document_block_to_item(block, at))
        elif isinstance(block, CachePoint):
            continue
        elif isinstance(block, ThinkingBlock) and role == "assistant":
            continue  # reasoning is output only: see the module docs
        elif isinstance(block, ToolCallBlock) and role == "assistant":
            tool_calls.append(_tool_call_wire(block, len(tool_calls)))
        else:
            raise ContentError(
                f"{at}: {_block_name(block)} is not supported by SiliconCloud chat in a "
                f"{role} message (supported: {_SUPPORTED}; assistant messages may also carry "
                "ToolCallBlock and ThinkingBlock)"
            )
    out: dict[str, Any] = {"role": role, "content": items}
    if role == "assistant":
        if not tool_calls:
            tool_calls = _legacy_tool_calls(message.additional_kwargs.get("tool_calls"))
        if tool_calls:
            out["tool_calls"] = tool_calls
    elif role == "tool":
        call_id = message.additional_kwargs.get("tool_call_id")
        if call_id is not None:
            out["tool_call_id"] = str(call_id)
    return out


def to_wire_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """``ChatMessage``s as OpenAI-format dicts for :func:`siliconvision.content.prepare_messages`.

    Raises :class:`~siliconvision.errors.ContentError` for blocks SiliconCloud cannot
    take (see the module docs).
    """
    if isinstance(messages, ChatMessage):
        messages = [messages]
    return [to_wire_message(m, f"message {i}") for i, m in enumerate(messages)]


def _node_item(node: BaseNode, where: str) -> Image | dict[str, Any]:
    """An ``ImageNode``/``ImageDocument``/``Node`` with an image resource, without fetching."""
    image: Any = getattr(node, "image", None)
    image_path: Any = getattr(node, "image_path", None)
    image_url: Any = getattr(node, "image_url", None)
    resource = getattr(node, "image_resource", None)
    if resource is not None and not isinstance(node, ImageNode):
        image = image or (resource.data.decode("ascii") if resource.data else None)
        image_path = image_path or (str(resource.path) if resource.path else None)
        image_url = image_url or (str(resource.url) if resource.url else None)
    if image:  # base64 text (LlamaIndex stores images so), decoded by the core
        text = image.decode("latin-1") if isinstance(image, (bytes, bytearray)) else str(image)
        return Image(Base64Image(text))
    if image_path:
        return Image(Path(image_path))
    if image_url:  # a URL field: message policy for anything but http(s) and data:
        url = str(image_url)
        return Image(url) if is_image_url(url) or is_data_uri(url) else _message_image(url, None)
    file_path = node.metadata.get("file_path") or node.metadata.get("image_path")
    if file_path:
        return Image(Path(str(file_path)))
    raise ContentError(f"{where}: {type(node).__name__} {node.node_id!r} carries no image")


def image_source_to_item(source: object, where: str = "image") -> Image | dict[str, Any]:
    """One entry of ``image_documents`` as a core item (:class:`~siliconvision.content.Image`,
    or an ``image_url`` part for a URL the message policy decides on).

    Accepts ``ImageDocument``, ``ImageNode``, any node with an image resource (also
    wrapped in the ``NodeWithScore`` a retriever returns), ``ImageBlock``, a ``str``
    (http(s) URL, data URI, ``file:`` URL or file path), or any other
    :data:`~siliconvision.images.ImageSource` (an ``os.PathLike``, ``bytes``,
    ``bytearray``, ``memoryview``, a binary file object, a ``PIL.Image``, a
    :class:`~siliconvision.images.Base64Image`);
    anything else raises ``ContentError``. Paths (a ``str`` path, ``image_path``) are
    the program's own choice and are read; a ``file:`` URL (also in a node's
    ``image_url``) is read only inside the LLM's ``allowed_dirs``. URLs are never
    fetched here (the core sends them as URLs unless ``fetch_urls=True``).

    >>> image_source_to_item("https://example.com/a.png")
    Image(source='https://example.com/a.png', detail=None)
    """
    if isinstance(source, Image):
        return source
    if isinstance(source, NodeWithScore):  # what a retriever returns
        source = source.node
    if isinstance(source, ImageBlock):
        return image_block_to_item(source, where)
    if isinstance(source, BaseNode):
        return _node_item(source, where)
    if isinstance(source, str):
        if is_image_url(source) or is_data_uri(source):
            return Image(source)
        if source[:5].lower() == "file:":
            return _message_image(source, None)
        return Image(Path(source))
    if is_image_source(source):  # bytes-likes, paths, file objects, PIL images, base64
        return Image(source)
    raise ContentError(
        f"{where}: cannot use a {type(source).__name__} as an image; pass ImageDocument, "
        "ImageNode, ImageBlock, a path, a URL, bytes or a PIL image"
    )


def completion_to_wire_messages(
    prompt: str, image_documents: Sequence[object] | None = None
) -> list[dict[str, Any]]:
    """The one user message of ``complete(prompt, image_documents=...)``.

    Images come first, in the given order (their retrieval rank), then the prompt
    once; the core's ``image_order`` then has nothing to move, whatever the policy.

    >>> completion_to_wire_messages("Which is red?", ["https://example.com/a.png"])
    [{'role': 'user', 'content': [Image(source='https://example.com/a.png', detail=None), 'Which is red?']}]
    """  # noqa: E501
    if not isinstance(prompt, str):
        raise ContentError(f"prompt must be a string, got {type(prompt).__name__}")
    if image_documents is None:
        image_documents = []
    elif is_image_source(image_documents) or not isinstance(image_documents, Sequence):
        image_documents = [image_documents]
    items: list[object] = [
        image_source_to_item(doc, f"image_documents[{i}]") for i, doc in enumerate(image_documents)
    ]
    items.append(prompt)
    return [{"role": "user", "content": items}]


# --------------------------------------------------------------------------- settings

_OWN_CLIENT = (
    "the openai client is built here (SiliconCloud's errors, backoff and image handling); "
    "pass http_client=httpx.Client(...) / async_http_client=httpx.AsyncClient(...) instead"
)

#: ``OpenAI``/``OpenAILike`` constructor arguments SiliconVision refuses, with the reason,
#: unless given their "off" value (``None``, or the value in :data:`OPENAI_LIKE_OFF`).
OPENAI_LIKE_REFUSED: dict[str, str] = {
    "api_version": "it is Azure OpenAI's; SiliconCloud has no API versions",
    "openai_client": _OWN_CLIENT,
    "async_openai_client": _OWN_CLIENT,
    "reasoning_effort": "use enable_thinking and thinking_budget",
    "modalities": "SiliconCloud's vision models answer in text",
    "audio_config": "SiliconCloud's vision models answer in text",
    "strict": "SiliconCloud documents no strict tool schemas",
    "should_use_structured_outputs": "SiliconCloud documents only "
    "response_format={'type': 'json_object'}; structured output goes through tool calls",
    "tokenizer": "max_tokens is never inferred here; token counts follow each model's own "
    "rules (siliconvision.tokens)",
    "reuse_client": "SiliconVision always reuses its connections (one async client per "
    "event loop, closed with it)",
    "messages_to_prompt": "SiliconVision is a chat model: messages are sent as messages, "
    "so it would never be used",
    "query_wrapper_prompt": "SiliconVision is a chat model: LlamaIndex applies it to "
    "completion-model prompts only, so it would never be used",
    "is_chat_model": "SiliconCloud serves its vision models as chat models only (no "
    "/completions endpoint for them)",
}
#: The value of a refused argument that asks for what happens anyway.
OPENAI_LIKE_OFF: dict[str, Any] = {
    "strict": False,
    "should_use_structured_outputs": False,
    "reuse_client": True,
    "is_chat_model": True,
    "modalities": ["text"],
    "top_logprobs": 0,
    "logprobs": False,
}
#: Request fields SiliconCloud does not document: refused as settings; sent only when
#: given explicitly in ``additional_kwargs`` or ``extra_body``.
OPENAI_LIKE_UNDOCUMENTED = ("seed", "presence_penalty", "logprobs", "top_logprobs")
#: ``OpenAI``'s names for our settings.
OPENAI_LIKE_ALIASES = {"max_new_tokens": "max_tokens"}


def openai_like_settings(kwargs: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """``SiliconVision`` keyword arguments with ``OpenAILike``'s names mapped to ours;
    its settings that cannot be honoured and unknown names raise ``ValueError`` naming
    them, with what to do instead.

    >>> openai_like_settings({"max_new_tokens": 64, "reuse_client": True}, {"max_tokens": 0})
    {'max_tokens': 64}
    """
    out = dict(kwargs)
    for alias, name in OPENAI_LIKE_ALIASES.items():
        if alias in out:
            value = out.pop(alias)
            if name in out and out[name] != value:
                raise ValueError(f"SiliconVision got both {alias!r} and {name!r}; pass one")
            out[name] = value
    if "max_retries" in out and out["max_retries"] is None:
        del out["max_retries"]  # the SDK's default, 2
    for name in list(out):
        value = out[name]
        refused = name in OPENAI_LIKE_REFUSED or name in OPENAI_LIKE_UNDOCUMENTED
        if refused:
            if value is None or (name in OPENAI_LIKE_OFF and value == OPENAI_LIKE_OFF[name]):
                if name not in fields:
                    del out[name]  # "off": what happens anyway
                continue
            if name in OPENAI_LIKE_UNDOCUMENTED:
                raise ValueError(
                    f"SiliconVision: setting {name!r} is not a request field SiliconCloud "
                    "documents, so it is not sent as if it were honoured; if your model "
                    f"takes it, send it explicitly: additional_kwargs={{{name!r}: ...}} "
                    f"(or extra_body={{{name!r}: ...}} per call)"
                )
            raise ValueError(
                f"SiliconVision does not take {name}={value!r}: {OPENAI_LIKE_REFUSED[name]}"
            )
        if name not in fields:
            close = difflib.get_close_matches(name, [*fields, *OPENAI_LIKE_ALIASES], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"SiliconVision got an unknown setting {name!r}{hint}; request fields go in "
                "additional_kwargs (sent as given)"
            )
    return out


# --------------------------------------------------------------------------- request


def split_request_fields(fields: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(named request parameters, ``extra_body`` fields) of an ``additional_kwargs`` dict.

    >>> split_request_fields({"top_k": 5, "repetition_penalty": 1.1})
    ({'top_k': 5}, {'repetition_penalty': 1.1})
    """
    named = {k: v for k, v in fields.items() if k in REQUEST_FIELDS}
    extra = {k: v for k, v in fields.items() if k not in REQUEST_FIELDS}
    return named, extra


def tools_to_wire(tools: Sequence[BaseTool]) -> list[dict[str, Any]]:
    """LlamaIndex tools as OpenAI-style ``tools`` definitions."""
    return [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]


def resolve_tool_choice(
    tool_choice: str | Mapping[str, Any] | None, tool_required: bool
) -> str | dict[str, Any] | None:
    """``tool_choice`` for the wire: ``none``/``auto``/``required``, a tool name, or a dict.

    >>> resolve_tool_choice("lookup", False)
    {'type': 'function', 'function': {'name': 'lookup'}}
    >>> resolve_tool_choice(None, True)
    'required'
    """
    if tool_choice is None:
        return "required" if tool_required else None
    if isinstance(tool_choice, Mapping):
        return dict(tool_choice)
    if tool_choice in ("none", "auto", "required"):
        return tool_choice
    return {"type": "function", "function": {"name": tool_choice}}


def llm_metadata(spec: ModelSpec | str, max_tokens: int | None = None) -> LLMMetadata:
    """``LLMMetadata`` from the core catalog entry of a model.

    >>> llm_metadata("Qwen/Qwen2.5-VL-72B-Instruct").is_function_calling_model
    True
    """
    spec = get_model_spec(spec)
    return LLMMetadata(
        context_window=spec.context_window,
        num_output=max_tokens or spec.max_output_tokens or DEFAULT_NUM_OUTPUTS,
        is_chat_model=True,
        is_function_calling_model=spec.tools,
        model_name=spec.id,
        system_role=MessageRole.SYSTEM,
    )


# --------------------------------------------------------------------------- outputs


def raw_dict(obj: Any) -> dict[str, Any] | None:
    """A plain dict of an SDK object or mapping (``None`` for anything else)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return dict(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        value = dump()
        return dict(value) if isinstance(value, Mapping) else None
    return None


def usage_kwargs(usage: Usage | None) -> dict[str, int]:
    """Token counts for ``additional_kwargs`` (the core's totals: cumulative, not summed).

    >>> usage_kwargs(Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5))
    {'prompt_tokens': 3, 'completion_tokens': 2, 'total_tokens': 5}
    """
    if usage is None:
        return {}
    out = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.reasoning_tokens:
        out["reasoning_tokens"] = usage.reasoning_tokens
    return out


def _usage_dict(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def _with_usage(raw: dict[str, Any] | None, usage: Usage | None) -> dict[str, Any] | None:
    """``raw`` with its ``usage`` set to the correct totals (token counters read it)."""
    if raw is None or usage is None:
        return raw
    return {**raw, "usage": _usage_dict(usage)}


def _assistant_blocks(
    content: str,
    reasoning: str | None,
    tool_calls: Sequence[ToolCall],
    reasoning_tokens: int | None = None,
) -> list[Any]:
    blocks: list[Any] = []
    if reasoning:
        blocks.append(ThinkingBlock(content=reasoning, num_tokens=reasoning_tokens or None))
    blocks.append(TextBlock(text=content))
    blocks.extend(
        ToolCallBlock(tool_call_id=call.id or None, tool_name=call.name, tool_kwargs=call.arguments)
        for call in tool_calls
    )
    return blocks


def _assistant_message(blocks: list[Any], tool_calls: Sequence[ToolCall]) -> ChatMessage:
    """The assistant message; tool calls also in ``additional_kwargs["tool_calls"]``
    (OpenAI's form), which llama-index-core's streaming structured output reads."""
    extra: dict[str, Any] = {}
    if tool_calls:
        extra["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in tool_calls
        ]
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=extra)


def _response_kwargs(result: ChatReply) -> dict[str, Any]:
    out: dict[str, Any] = dict(usage_kwargs(result.usage))
    if result.finish_reason:
        out["finish_reason"] = result.finish_reason
    if result.trace_id:
        out["trace_id"] = result.trace_id
    return out


def chat_response_from_result(result: ChatReply) -> ChatResponse:
    """A ``ChatResponse``: ``ThinkingBlock`` (reasoning), ``TextBlock``, ``ToolCallBlock``s.

    ``raw`` is the response dict; ``additional_kwargs`` holds the token counts,
    ``finish_reason`` and SiliconCloud's ``trace_id``.
    """
    reasoning_tokens = result.usage.reasoning_tokens if result.usage else None
    message = _assistant_message(
        _assistant_blocks(
            result.content, result.reasoning_content, result.tool_calls, reasoning_tokens
        ),
        result.tool_calls,
    )
    return ChatResponse(
        message=message,
        raw=_with_usage(raw_dict(result.raw), result.usage),
        additional_kwargs=_response_kwargs(result),
    )


def completion_response_from_chat(response: ChatResponse) -> CompletionResponse:
    """The ``CompletionResponse`` for a ``ChatResponse`` (reasoning kept in
    ``additional_kwargs["reasoning_content"]``, thinking deltas as ``thinking_delta``)."""
    extra = dict(response.additional_kwargs)
    thinking = [b.content for b in response.message.blocks if isinstance(b, ThinkingBlock)]
    if thinking and thinking[0]:
        extra["reasoning_content"] = thinking[0]
    return CompletionResponse(
        text=response.message.content or "",
        delta=response.delta,
        raw=response.raw,
        additional_kwargs=extra,
    )


class StreamState:
    """Turns the core's stream deltas into cumulative ``ChatResponse``s, one per chunk.

    Reads the core's accumulator (content, reasoning, tool calls, usage so far), so
    nothing is summed here: token counts are the correct cumulative totals.

    >>> state = StreamState(stream.accumulator)                  # doctest: +SKIP
    >>> for delta in stream:                                     # doctest: +SKIP
    ...     print(state.response(delta).delta, end="")
    """

    def __init__(self, accumulator: StreamAccumulator) -> None:
        self.accumulator = accumulator

    def response(self, delta: StreamDelta) -> ChatResponse:
        """The cumulative response after ``delta`` (its own text in ``delta``)."""
        acc = self.accumulator
        usage = acc.usage
        tool_calls = acc.tool_calls
        message = _assistant_message(
            _assistant_blocks(
                acc.content,
                acc.reasoning,
                tool_calls,
                usage.reasoning_tokens if usage else None,
            ),
            tool_calls,
        )
        extra: dict[str, Any] = dict(usage_kwargs(usage))
        if delta.reasoning:
            extra["thinking_delta"] = delta.reasoning
        if delta.finish_reason:
            extra["finish_reason"] = delta.finish_reason
        return ChatResponse(
            message=message,
            delta=delta.content or "",
            raw=_with_usage(raw_dict(delta.raw), usage),
            additional_kwargs=extra,
        )


def _parse_arguments(arguments: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        try:
            value = parse_partial_json(arguments)  # a stream still writing it
        except (ValueError, TypeError):
            return {}
    return value if isinstance(value, dict) else {}


def tool_selections_from_message(
    message: ChatMessage, *, error_on_no_tool_call: bool = True
) -> list[ToolSelection]:
    """``ToolSelection``s from the ``ToolCallBlock``s of an assistant message."""
    selections = [
        ToolSelection(
            tool_id=block.tool_call_id or "",
            tool_name=block.tool_name,
            tool_kwargs=_parse_arguments(block.tool_kwargs),
        )
        for block in message.blocks
        if isinstance(block, ToolCallBlock)
    ]
    if not selections:
        for call in _legacy_tool_calls(message.additional_kwargs.get("tool_calls")):
            selections.append(
                ToolSelection(
                    tool_id=call["id"],
                    tool_name=call["function"]["name"],
                    tool_kwargs=_parse_arguments(call["function"]["arguments"]),
                )
            )
    if not selections and error_on_no_tool_call:
        raise ValueError("Expected at least one tool call, but the response has none.")
    return selections
