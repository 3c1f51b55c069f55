"""The clients compared, each used the way its own users write it.

Every variant gets the same question and the same image *file*, and turns them into
a request the idiomatic way for its library:

- raw ``openai`` SDK, ``ChatOpenAI``, ``ChatSiliconFlow``: the file's bytes,
  base64-encoded into a ``data:`` URI in an ``image_url`` part (what their docs show);
- ``siliconvision`` core client: ``Image(Path(file), detail=...)``;
- ``ChatSiliconVision``: ``image_block(file, detail=...)``;
- LlamaIndex (``SiliconVision`` and ``OpenAILike``): ``ImageBlock(path=file, detail=...)``.

The image always comes first, then the text. Framework imports happen in
:meth:`Variant.setup`, so listing variants costs nothing.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MODEL",
    "Answer",
    "ImageArg",
    "Variant",
    "all_variants",
    "available_variants",
    "variant_by_key",
]

MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"


@dataclass(frozen=True)
class ImageArg:
    """An image file and the detail to ask for."""

    path: Path
    detail: str = "high"


@dataclass
class Answer:
    """What a call returned: the text and the usage total the library reports."""

    content: str
    total_tokens: int | None


def _data_uri(path: Path) -> str:
    """What users of OpenAI-style clients write: base64 of the file, as it is."""
    payload = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:image/jpeg;base64,{payload}"


def _openai_parts(question: str, image: ImageArg | None) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if image is not None:
        parts.append(
            {
                "type": "image_url",
                "image_url": {"url": _data_uri(image.path), "detail": image.detail},
            }
        )
    parts.append({"type": "text", "text": question})
    return parts


class Variant:
    """One client under test. Subclasses implement the calls their users would write."""

    key: str = ""
    label: str = ""
    group: str = ""  # "baseline", "ours" or "peer"
    framework: str = ""  # "", "langchain" or "llama-index"
    requires: tuple[str, ...] = ()
    #: Scenarios this variant takes part in (``None``: all).
    scenarios: frozenset[str] | None = None

    def __init__(self) -> None:
        self.base_url = ""
        self.api_key = ""
        self._last_total: int | None = None

    @classmethod
    def available(cls) -> bool:
        """Whether its packages are importable here."""
        return all(importlib.util.find_spec(name) is not None for name in cls.requires)

    def setup(self, base_url: str, api_key: str) -> None:
        self.base_url, self.api_key = base_url, api_key

    def close(self) -> None:
        """Release connections (sync side)."""

    # -- calls -----------------------------------------------------------------

    def ask(self, question: str, image: ImageArg | None) -> Answer:
        raise NotImplementedError

    async def aask(self, question: str, image: ImageArg | None) -> Answer:
        raise NotImplementedError

    def stream(self, question: str, image: ImageArg | None) -> Iterator[str]:
        """Content pieces as they arrive; :attr:`stream_total` is set at the end."""
        raise NotImplementedError

    @property
    def stream_total(self) -> int | None:
        """The usage total the library reported for the last stream."""
        return self._last_total

    async def gather(
        self, question: str, image: ImageArg | None, count: int, limit: int
    ) -> list[Answer]:
        """``count`` concurrent calls, at most ``limit`` in flight (asyncio + semaphore)."""
        semaphore = asyncio.Semaphore(limit)

        async def one() -> Answer:
            async with semaphore:
                return await self.aask(question, image)

        return list(await asyncio.gather(*(one() for _ in range(count))))

    async def aclose(self) -> None:
        """Release connections (async side)."""


# --------------------------------------------------------------------------- raw SDK


class RawSDK(Variant):
    key = "raw"
    label = "raw openai SDK"
    group = "baseline"
    requires = ("openai",)

    def setup(self, base_url: str, api_key: str) -> None:
        super().setup(base_url, api_key)
        import openai

        self.client = openai.OpenAI(base_url=base_url, api_key=api_key)
        self.aclient: Any = None

    def _messages(self, question: str, image: ImageArg | None) -> Any:
        return [{"role": "user", "content": _openai_parts(question, image)}]

    def ask(self, question: str, image: ImageArg | None) -> Answer:
        reply = self.client.chat.completions.create(
            model=MODEL, messages=self._messages(question, image)
        )
        usage = reply.usage
        return Answer(reply.choices[0].message.content or "", usage.total_tokens if usage else None)

    async def aask(self, question: str, image: ImageArg | None) -> Answer:
        if self.aclient is None:
            import openai

            self.aclient = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key)
        reply = await self.aclient.chat.completions.create(
            model=MODEL, messages=self._messages(question, image)
        )
        usage = reply.usage
        return Answer(reply.choices[0].message.content or "", usage.total_tokens if usage else None)

    def stream(self, question: str, image: ImageArg | None) -> Iterator[str]:
        self._last_total = None
        total = None
        with self.client.chat.completions.create(
            model=MODEL, messages=self._messages(question, image), stream=True
        ) as stream:
            for chunk in stream:
                if chunk.usage is not None:  # SiliconCloud: cumulative, on every chunk
                    total = chunk.usage.total_tokens
                if chunk.choices:
                    yield chunk.choices[0].delta.content or ""
        self._last_total = total

    def close(self) -> None:
        self.client.close()

    async def aclose(self) -> None:
        if self.aclient is not None:
            await self.aclient.close()
            self.aclient = None


# --------------------------------------------------------------------------- ours


class OursCore(Variant):
    key = "core"
    label = "siliconvision client"
    group = "ours"
    requires = ("siliconvision",)

    def setup(self, base_url: str, api_key: str) -> None:
        super().setup(base_url, api_key)
        from siliconvision import SiliconVisionClient

        self.client = SiliconVisionClient(model=MODEL, base_url=base_url, api_key=api_key)

    def _messages(self, question: str, image: ImageArg | None) -> list[dict[str, Any]]:
        from siliconvision import Image

        content: list[Any] = []
        if image is not None:
            content.append(Image(image.path, detail=image.detail))  # type: ignore[arg-type]
        content.append(question)
        return [{"role": "user", "content": content}]

    def ask(self, question: str, image: ImageArg | None) -> Answer:
        result = self.client.chat(self._messages(question, image))
        return Answer(result.content, result.usage.total_tokens if result.usage else None)

    async def aask(self, question: str, image: ImageArg | None) -> Answer:
        result = await self.client.achat(self._messages(question, image))
        return Answer(result.content, result.usage.total_tokens if result.usage else None)

    def stream(self, question: str, image: ImageArg | None) -> Iterator[str]:
        self._last_total = None
        with self.client.stream(self._messages(question, image)) as stream:
            for delta in stream:
                yield delta.content or ""
            usage = stream.result().usage
        self._last_total = usage.total_tokens if usage else None

    def close(self) -> None:
        self.client.close()

    async def aclose(self) -> None:
        await self.client.aclose()


# --------------------------------------------------------------------------- LangChain


class _LangChain(Variant):
    framework = "langchain"

    def setup(self, base_url: str, api_key: str) -> None:
        super().setup(base_url, api_key)
        self.llm = self._make(base_url, api_key)

    def _make(self, base_url: str, api_key: str) -> Any:
        raise NotImplementedError

    def _messages(self, question: str, image: ImageArg | None) -> list[Any]:
        from langchain_core.messages import HumanMessage

        return [HumanMessage(content=_openai_parts(question, image))]  # type: ignore[arg-type]

    @staticmethod
    def _answer(message: Any) -> Answer:
        usage = message.usage_metadata
        return Answer(str(message.content), usage["total_tokens"] if usage else None)

    def ask(self, question: str, image: ImageArg | None) -> Answer:
        return self._answer(self.llm.invoke(self._messages(question, image)))

    async def aask(self, question: str, image: ImageArg | None) -> Answer:
        return self._answer(await self.llm.ainvoke(self._messages(question, image)))

    def stream(self, question: str, image: ImageArg | None) -> Iterator[str]:
        from langchain_core.messages.ai import add_usage

        self._last_total = None
        usages: list[Any] = []
        for chunk in self.llm.stream(self._messages(question, image)):
            if chunk.usage_metadata:
                usages.append(chunk.usage_metadata)
            yield chunk.content if isinstance(chunk.content, str) else ""
        usage: Any = None
        for item in usages:  # what ``chunk + chunk`` does: usage is summed
            usage = add_usage(usage, item)
        self._last_total = usage["total_tokens"] if usage else None

    async def gather(
        self, question: str, image: ImageArg | None, count: int, limit: int
    ) -> list[Answer]:
        """LangChain's own way: ``abatch`` with ``max_concurrency``."""
        inputs = [self._messages(question, image) for _ in range(count)]
        results = await self.llm.abatch(inputs, config={"max_concurrency": limit})
        return [self._answer(message) for message in results]


class OursLangChain(_LangChain):
    key = "lc_ours"
    label = "ChatSiliconVision"
    group = "ours"
    requires = ("langchain_siliconvision", "langchain_core")

    def _make(self, base_url: str, api_key: str) -> Any:
        from langchain_siliconvision import ChatSiliconVision

        return ChatSiliconVision(model=MODEL, base_url=base_url, api_key=api_key)  # type: ignore[arg-type]

    def _messages(self, question: str, image: ImageArg | None) -> list[Any]:
        from langchain_core.messages import HumanMessage

        from langchain_siliconvision import image_block

        content: list[Any] = []
        if image is not None:
            content.append(image_block(image.path, detail=image.detail))  # type: ignore[arg-type]
        content.append({"type": "text", "text": question})
        return [HumanMessage(content=content)]


class ChatOpenAIPeer(_LangChain):
    key = "lc_openai"
    label = "ChatOpenAI"
    group = "peer"
    requires = ("langchain_openai",)

    def _make(self, base_url: str, api_key: str) -> Any:
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=MODEL, base_url=base_url, api_key=api_key)  # type: ignore[arg-type]


class ChatSiliconFlowPeer(_LangChain):
    key = "lc_siliconflow"
    label = "ChatSiliconFlow"
    group = "peer"
    requires = ("langchain_siliconflow",)

    def _make(self, base_url: str, api_key: str) -> Any:
        from langchain_siliconflow import ChatSiliconFlow

        return ChatSiliconFlow(model=MODEL, base_url=base_url, api_key=api_key)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- LlamaIndex


class _LlamaIndex(Variant):
    framework = "llama-index"

    def setup(self, base_url: str, api_key: str) -> None:
        super().setup(base_url, api_key)
        self.llm = self._make(base_url, api_key)

    def _make(self, base_url: str, api_key: str) -> Any:
        raise NotImplementedError

    def _messages(self, question: str, image: ImageArg | None) -> list[Any]:
        from llama_index.core.llms import ChatMessage, ImageBlock, TextBlock

        blocks: list[Any] = []
        if image is not None:
            blocks.append(ImageBlock(path=image.path, detail=image.detail))
        blocks.append(TextBlock(text=question))
        return [ChatMessage(role="user", blocks=blocks)]

    @staticmethod
    def _total(kwargs: dict[str, Any], raw: Any) -> int | None:
        total = kwargs.get("total_tokens")
        if isinstance(total, int):
            return total
        usage = raw.get("usage") if isinstance(raw, dict) else getattr(raw, "usage", None)
        if usage is None:
            return None
        value = usage.get("total_tokens") if isinstance(usage, dict) else usage.total_tokens
        return value if isinstance(value, int) else None

    def _answer(self, response: Any) -> Answer:
        return Answer(
            response.message.content or "", self._total(response.additional_kwargs, response.raw)
        )

    def ask(self, question: str, image: ImageArg | None) -> Answer:
        return self._answer(self.llm.chat(self._messages(question, image)))

    async def aask(self, question: str, image: ImageArg | None) -> Answer:
        return self._answer(await self.llm.achat(self._messages(question, image)))

    def stream(self, question: str, image: ImageArg | None) -> Iterator[str]:
        self._last_total = None
        last: Any = None
        for response in self.llm.stream_chat(self._messages(question, image)):
            last = response
            yield response.delta or ""
        if last is not None:  # LlamaIndex responses are cumulative: read the last one
            self._last_total = self._total(last.additional_kwargs, last.raw)


class OursLlamaIndex(_LlamaIndex):
    key = "li_ours"
    label = "SiliconVision (LlamaIndex)"
    group = "ours"
    requires = ("llama_index_siliconvision", "llama_index.core")

    def _make(self, base_url: str, api_key: str) -> Any:
        from llama_index_siliconvision import SiliconVision

        return SiliconVision(model=MODEL, base_url=base_url, api_key=api_key)


class OpenAILikePeer(_LlamaIndex):
    key = "li_openailike"
    label = "OpenAILike"
    group = "peer"
    requires = ("llama_index.llms.openai_like",)

    @classmethod
    def available(cls) -> bool:
        try:
            return importlib.util.find_spec("llama_index.llms.openai_like") is not None
        except ModuleNotFoundError:
            return False

    def _make(self, base_url: str, api_key: str) -> Any:
        from llama_index.llms.openai_like import OpenAILike

        return OpenAILike(
            model=MODEL,
            api_base=base_url,
            api_key=api_key,
            is_chat_model=True,
            context_window=32768,
        )


# --------------------------------------------------------------------------- floors
#
# The least a framework integration can cost: a minimal chat model on the raw SDK that
# only wraps its answer in the framework's types (no image handling, no usage while
# streaming, user messages only). Shown so that a ratio to the raw SDK can be read
# against what the framework itself takes.

_FLOOR_SCENARIOS = frozenset({"overhead", "streaming", "concurrency"})


def _lc_floor(base_url: str, api_key: str) -> Any:
    import openai
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

    sync = openai.OpenAI(base_url=base_url, api_key=api_key)
    holder: dict[str, Any] = {}

    def wire(messages: list[BaseMessage]) -> Any:
        return [{"role": "user", "content": m.content} for m in messages]

    class FloorChatModel(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "floor"

        def _generate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> Any:
            reply = sync.chat.completions.create(model=MODEL, messages=wire(messages))
            return ChatResult(
                generations=[
                    ChatGeneration(
                        message=AIMessage(content=reply.choices[0].message.content or "")
                    )
                ]
            )

        async def _agenerate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> Any:
            if "async" not in holder:
                holder["async"] = openai.AsyncOpenAI(base_url=base_url, api_key=api_key)
            reply = await holder["async"].chat.completions.create(
                model=MODEL, messages=wire(messages)
            )
            return ChatResult(
                generations=[
                    ChatGeneration(
                        message=AIMessage(content=reply.choices[0].message.content or "")
                    )
                ]
            )

        def _stream(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> Any:
            with sync.chat.completions.create(
                model=MODEL, messages=wire(messages), stream=True
            ) as stream:
                for chunk in stream:
                    if chunk.choices:
                        text = chunk.choices[0].delta.content or ""
                        yield ChatGenerationChunk(message=AIMessageChunk(content=text))

    model = FloorChatModel()
    model.__dict__["_floor_async"] = holder
    return model


class LangChainFloor(_LangChain):
    key = "lc_floor"
    label = "LangChain floor (minimal model)"
    group = "floor"
    requires = ("langchain_core", "openai")
    scenarios = _FLOOR_SCENARIOS

    def _make(self, base_url: str, api_key: str) -> Any:
        return _lc_floor(base_url, api_key)

    async def aclose(self) -> None:
        client = self.llm.__dict__["_floor_async"].pop("async", None)
        if client is not None:
            await client.close()


def _li_floor(base_url: str, api_key: str) -> Any:
    import openai
    from llama_index.core.base.llms.types import (
        ChatMessage,
        ChatResponse,
        ImageBlock,
        LLMMetadata,
        MessageRole,
        TextBlock,
    )
    from llama_index.core.llms.callbacks import llm_chat_callback
    from llama_index.core.llms.llm import LLM

    sync = openai.OpenAI(base_url=base_url, api_key=api_key)
    holder: dict[str, Any] = {}

    def wire(messages: Any) -> Any:
        out = []
        for message in messages:
            parts: list[dict[str, Any]] = []
            for block in message.blocks:
                if isinstance(block, TextBlock):
                    parts.append({"type": "text", "text": block.text})
                elif isinstance(block, ImageBlock) and block.path is not None:
                    parts.append(
                        {
                            "type": "image_url",
                            "image_url": {
                                "url": _data_uri(Path(block.path)),
                                "detail": block.detail,
                            },
                        }
                    )
            out.append({"role": "user", "content": parts})
        return out

    def response(text: str, delta: str | None = None) -> Any:
        return ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta
        )

    class FloorLLM(LLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(is_chat_model=True, model_name=MODEL)

        @llm_chat_callback()
        def chat(self, messages: Any, **kwargs: Any) -> Any:
            reply = sync.chat.completions.create(model=MODEL, messages=wire(messages))
            return response(reply.choices[0].message.content or "")

        @llm_chat_callback()
        def stream_chat(self, messages: Any, **kwargs: Any) -> Any:
            def gen() -> Any:
                text = ""
                with sync.chat.completions.create(
                    model=MODEL, messages=wire(messages), stream=True
                ) as stream:
                    for chunk in stream:
                        if chunk.choices:
                            delta = chunk.choices[0].delta.content or ""
                            text += delta
                            yield response(text, delta)

            return gen()

        @llm_chat_callback()
        async def achat(self, messages: Any, **kwargs: Any) -> Any:
            if "async" not in holder:
                holder["async"] = openai.AsyncOpenAI(base_url=base_url, api_key=api_key)
            reply = await holder["async"].chat.completions.create(
                model=MODEL, messages=wire(messages)
            )
            return response(reply.choices[0].message.content or "")

        def complete(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        def stream_complete(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        async def acomplete(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        async def astream_complete(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        async def astream_chat(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    llm = FloorLLM()
    return llm, holder


class LlamaIndexFloor(_LlamaIndex):
    key = "li_floor"
    label = "LlamaIndex floor (minimal LLM)"
    group = "floor"
    requires = ("llama_index.core", "openai")
    scenarios = _FLOOR_SCENARIOS

    def _make(self, base_url: str, api_key: str) -> Any:
        llm, self._holder = _li_floor(base_url, api_key)
        return llm

    async def aclose(self) -> None:
        client = self._holder.pop("async", None)
        if client is not None:
            await client.close()


_ALL: tuple[type[Variant], ...] = (
    RawSDK,
    OursCore,
    OursLangChain,
    OursLlamaIndex,
    ChatOpenAIPeer,
    ChatSiliconFlowPeer,
    OpenAILikePeer,
    LangChainFloor,
    LlamaIndexFloor,
)


def all_variants() -> list[type[Variant]]:
    """Every variant, baseline first, then ours, then the peers."""
    return list(_ALL)


def available_variants(keys: set[str] | None = None) -> list[type[Variant]]:
    """The variants whose packages are importable (and in ``keys`` when given)."""
    return [v for v in _ALL if v.available() and (keys is None or v.key in keys)]


def variant_by_key(key: str) -> type[Variant]:
    for variant in _ALL:
        if variant.key == key:
            return variant
    raise KeyError(key)


async def drain(iterator: AsyncIterator[Any]) -> list[Any]:
    """Collect an async iterator (helper for scenarios)."""
    return [item async for item in iterator]
