"""LlamaIndex integration conventions, metadata from the catalog, and the key as a secret."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock
from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.schema import CBEventType
from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.readers.base import BaseReader
from llama_index.core.tools import FunctionTool
from llama_index.core.tools.tool_spec.base import BaseToolSpec

from llama_index_siliconvision import (
    SiliconVision,
    SiliconVisionCaptionReader,
    SiliconVisionEmbedding,
    SiliconVisionToolSpec,
)
from siliconvision.catalog import get_model_spec
from siliconvision.testing import LocalSiliconCloud
from tests.imaging import make_image

from .conftest import INTERNVL, QWEN, THINKING, EventRecorder

SECRET = "sk-do-not-leak-4f1c2a9e8b7d6c5a"


def test_class_hierarchy() -> None:
    names = [base.__name__ for base in SiliconVision.__mro__]
    assert BaseLLM.__name__ in names and FunctionCallingLLM.__name__ in names
    assert issubclass(SiliconVisionEmbedding, MultiModalEmbedding)
    assert issubclass(SiliconVisionEmbedding, BaseEmbedding)
    assert issubclass(SiliconVisionToolSpec, BaseToolSpec)
    assert issubclass(SiliconVisionCaptionReader, BaseReader)
    assert "multi" in SiliconVision.class_name()  # LlamaIndex's multimodal indexes check this
    assert SiliconVisionEmbedding.class_name() == "SiliconVisionEmbedding"


@pytest.mark.parametrize("model", [QWEN, INTERNVL, THINKING, "acme/unknown-vl"])
def test_metadata_comes_from_the_catalog(emu: LocalSiliconCloud, model: str) -> None:
    llm = SiliconVision(model=model, api_key=emu.api_key, base_url=emu.base_url)
    spec = get_model_spec(model)
    metadata = llm.metadata
    assert metadata.is_chat_model is True
    assert metadata.is_function_calling_model is spec.tools
    assert metadata.context_window == spec.context_window
    assert metadata.model_name == model
    assert (
        SiliconVision(
            model=model, api_key=emu.api_key, base_url=emu.base_url, max_tokens=1234
        ).metadata.num_output
        == 1234
    )


def test_settings_changes_take_effect(llm: SiliconVision, emu: LocalSiliconCloud) -> None:
    message = ChatMessage(blocks=[ImageBlock(image=make_image((1000, 800))), TextBlock(text="?")])
    llm.detail = "low"
    llm.chat([message])
    req = emu.last_request
    assert req is not None and (req.images[0].width, req.images[0].detail) == (560, "low")
    copy = llm.model_copy(update={"model": "Qwen/Qwen2.5-VL-7B-Instruct", "detail": "high"})
    copy.chat([message])
    req = emu.last_request
    assert req is not None and req.model == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert req.images[0].detail == "high"


def test_dict_round_trip_rereads_the_key(
    emu: LocalSiliconCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = SiliconVision(
        model=INTERNVL, api_key=emu.api_key, base_url=emu.base_url, detail="low", top_k=5
    )
    monkeypatch.setenv("SILICONFLOW_API_KEY", emu.api_key)
    again = SiliconVision.from_dict(llm.to_dict())
    assert (again.model, again.detail, again.top_k, again.base_url) == (
        INTERNVL,
        "low",
        5,
        emu.base_url,
    )
    emu.script_reply("ok")
    assert again.complete("hi").text == "ok"


class PayloadRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self.payloads: list[Any] = []

    def on_event_start(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        self.payloads.append(payload)
        return event_id

    def on_event_end(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        **kwargs: Any,
    ) -> None:
        self.payloads.append(payload)

    def start_trace(self, trace_id: str | None = None) -> None:
        return None

    def end_trace(
        self, trace_id: str | None = None, trace_map: dict[str, list[str]] | None = None
    ) -> None:
        return None


@pytest.fixture
def secret_emu() -> Iterator[LocalSiliconCloud]:
    with LocalSiliconCloud(api_key=SECRET) as emu:
        yield emu


async def test_the_key_never_leaks(
    secret_emu: LocalSiliconCloud,
    recorder: EventRecorder,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    callbacks = PayloadRecorder()
    llm = SiliconVision(
        api_key=SECRET,
        base_url=secret_emu.base_url,
        max_retries=0,
        callback_manager=CallbackManager([callbacks]),
    )
    message = ChatMessage(blocks=[ImageBlock(image=make_image()), TextBlock(text="?")])
    llm.chat([message])
    list(llm.stream_chat([message]))
    await llm.achat([message])
    llm.complete("?", image_documents=[make_image()])
    secret_emu.script_reply(tool_calls=[{"name": "f", "arguments": {}}])
    llm.chat_with_tools([FunctionTool.from_defaults(fn=lambda: "x", name="f")], user_msg="go")
    embed = SiliconVisionEmbedding(api_key=SECRET, base_url=secret_emu.base_url)
    embed.get_text_embedding("hello")
    (tmp_path / "a.png").write_bytes(make_image())
    reader = SiliconVisionCaptionReader(llm)
    documents = reader.load_data(tmp_path)
    spec = SiliconVisionToolSpec(llm, allowed_dirs=[tmp_path])
    wrong = SiliconVision(api_key=SECRET + "-wrong", base_url=secret_emu.base_url, max_retries=0)
    with pytest.raises(Exception) as failure:
        wrong.chat([message])

    assert "api_key" not in SiliconVision.model_fields
    assert "api_key" not in SiliconVisionEmbedding.model_fields
    assert llm.client.api_key is not None  # it is there, just never shown
    texts: list[str] = [
        repr(llm),
        str(llm),
        llm.to_json(),
        json.dumps(llm.to_dict()),
        llm.model_dump_json(),
        str(llm.to_payload()),
        repr(llm.client),
        repr(llm.client.openai),
        repr(embed),
        embed.to_json(),
        str(embed.to_payload()),
        repr(spec.__dict__),
        repr(reader.__dict__),
        repr(documents),
        str(failure.value),
        repr(failure.value),
        caplog.text,
        pickle.dumps(llm).decode("latin-1"),
        pickle.dumps(embed).decode("latin-1"),
        repr(callbacks.payloads),
        *(str(event.model_dump()) for event in recorder.events),
        *(repr(event) for event in recorder.events),
        *(json.dumps(r.headers) for r in secret_emu.requests),
    ]
    # 6 calls, start+end each: chat, stream_chat, achat, complete, chat_with_tools and
    # the reader's caption (reported as a chat call of llm)
    assert len(recorder.events) > 20 and len(callbacks.payloads) == 12
    leaks = [text[:200] for text in texts if SECRET in text]
    assert leaks == []
    assert pickle.loads(pickle.dumps(llm)).client.api_key is None  # env has none: not restored
