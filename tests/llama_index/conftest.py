"""Fixtures for the LlamaIndex adapter tests: an LLM on the emulator, an event recorder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent

from llama_index_siliconvision import SiliconVision
from siliconvision.testing import LocalSiliconCloud

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
INTERNVL = "OpenGVLab/InternVL2-26B"
THINKING = "Qwen/Qwen3-VL-8B-Thinking"
VIDEO = "Qwen/Qwen3-VL-8B-Instruct"


# LlamaIndex's agent workflows inspect their own pydantic fields (inspect.getmembers)
# and ReActAgent reads a deprecated property: third-party noise, not ours.
_THIRD_PARTY_WARNINGS = (
    # the base class of PydanticDeprecatedSince20 / Since211 (the latter is new in 2.11)
    "ignore::pydantic.warnings.PydanticDeprecationWarning",
    "ignore:is_running called from within a step:DeprecationWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            for spec in _THIRD_PARTY_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


class EventRecorder(BaseEventHandler):
    """Records every instrumentation event; ``on_event`` runs inside the dispatch."""

    events: list[BaseEvent] = []  # noqa: RUF012 - a pydantic field (copied per instance)
    on_event: Callable[[BaseEvent], None] | None = None

    @classmethod
    def class_name(cls) -> str:
        return "EventRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def of(self, name: str) -> list[Any]:
        return [e for e in self.events if type(e).__name__ == name]

    def names(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


@pytest.fixture
def emu(emulator: LocalSiliconCloud) -> LocalSiliconCloud:
    return emulator


@pytest.fixture
def make_llm(emu: LocalSiliconCloud) -> Callable[..., SiliconVision]:
    def make(**kwargs: Any) -> SiliconVision:
        kwargs.setdefault("model", QWEN)
        kwargs.setdefault("max_retries", 0)
        return SiliconVision(api_key=emu.api_key, base_url=emu.base_url, **kwargs)

    return make


@pytest.fixture
def llm(make_llm: Callable[..., SiliconVision]) -> SiliconVision:
    return make_llm()


@pytest.fixture
def recorder() -> Iterator[EventRecorder]:
    dispatcher = get_dispatcher()  # the root: every LlamaIndex event reaches it
    handler = EventRecorder(events=[])
    dispatcher.add_event_handler(handler)
    try:
        yield handler
    finally:
        dispatcher.event_handlers.remove(handler)
