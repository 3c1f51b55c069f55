"""langchain-tests' integration suites against LocalSiliconCloud (no internet).

Where a test needs a model's decision (which tool, what JSON), the emulator answers
through :func:`tests.langchain.policy.deterministic_model`, a generic policy of our
test setup; everything else is the emulator's SiliconCloud behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests, ToolsIntegrationTests

from langchain_siliconvision import ChatSiliconVision, SiliconVisionTool
from siliconvision.testing import LocalSiliconCloud
from tests.langchain.policy import deterministic_model
from tests.langchain.support import (
    EXAMPLE_IMAGES,
    QWEN,
    SHARED,
    THINKING,
    SiliconVisionCapabilities,
    emulator_params,
    standard_image_served,
)


@pytest.fixture(autouse=True)
def _model_policy(emu: LocalSiliconCloud) -> Iterator[LocalSiliconCloud]:
    emu.set_responder(deterministic_model)
    with standard_image_served(emu):
        yield emu


class TestChatSiliconVisionIntegration(SiliconVisionCapabilities, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return emulator_params(model=QWEN)

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True

    @property
    def supported_usage_metadata_details(self) -> dict[Any, Any]:
        return {"invoke": ["reasoning_output"], "stream": ["reasoning_output"]}

    def invoke_with_reasoning_output(self, *, stream: bool = False) -> AIMessage:
        llm = ChatSiliconVision(**emulator_params(model=THINKING))
        prompt = "Think first: which is larger, 9.11 or 9.9?"
        if not stream:
            return llm.invoke(prompt)
        full = None
        for chunk in llm.stream(prompt):
            full = chunk if full is None else full + chunk
        assert full is not None
        return full


class TestSiliconVisionToolIntegration(ToolsIntegrationTests):
    @property
    def tool_constructor(self) -> type[SiliconVisionTool]:
        return SiliconVisionTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        llm = ChatSiliconVision(**emulator_params(model=QWEN))
        return {"llm": llm, "allowed_dirs": [EXAMPLE_IMAGES]}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"image": "red_circle.png", "question": "What colour is the disc?"}


def test_tool_suite_really_reached_the_model(emu: LocalSiliconCloud) -> None:
    """The tool suite's example makes a real request: the disc arrives, red."""
    tool = SiliconVisionTool(**TestSiliconVisionToolIntegration().tool_constructor_params)
    answer = tool.invoke({"image": "red_circle.png", "question": "Colour?"})
    assert "(red)" in answer
    assert SHARED.emu.last_request is not None
    assert [i.color_name for i in SHARED.emu.last_request.images] == ["red"]
