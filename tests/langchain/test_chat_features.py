"""Tools, structured output, profile, LangSmith params, token counts, secrets, parameters."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.load import dumpd, dumps, load
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, Field

from langchain_siliconvision import ChatSiliconVision, image_block
from siliconvision.testing import LocalSiliconCloud
from siliconvision.wire import ParameterError
from tests.imaging import make_image
from tests.langchain.support import INTERNVL, QWEN, QWEN_7B, THINKING, emulator_params

SECRET = "sk-test-secret-0123456789"


class Receipt(BaseModel):
    """A shop receipt."""

    shop: str = Field(description="Shop name")
    total: float = Field(description="Total paid")


def get_weather(city: str) -> str:
    """Weather in a city."""
    return "sunny"


def get_time(zone: str) -> str:
    """Time in a zone."""
    return "noon"


@pytest.fixture
def llm(emu: LocalSiliconCloud) -> ChatSiliconVision:
    return ChatSiliconVision(**emulator_params(model=QWEN))


def body(emu: LocalSiliconCloud) -> dict[str, Any]:
    assert emu.last_request is not None
    result: dict[str, Any] = emu.last_request.body
    return result


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("any", "required"),
        ("required", "required"),
        (True, "required"),
        ("get_time", {"type": "function", "function": {"name": "get_time"}}),
        (None, None),
    ],
)
def test_bind_tools_and_tool_choice_on_the_wire(
    llm: ChatSiliconVision, emu: LocalSiliconCloud, choice: Any, wire: Any
) -> None:
    llm.bind_tools([get_weather, get_time], tool_choice=choice).invoke("Weather?")
    sent = body(emu)
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["tools"][0]["function"]["parameters"]["properties"] == {"city": {"type": "string"}}
    assert sent.get("tool_choice") == wire


def test_tool_calls_come_back_parsed(llm: ChatSiliconVision, emu: LocalSiliconCloud) -> None:
    emu.script_reply(
        tool_calls=[
            {"name": "get_weather", "arguments": {"city": "Hangzhou"}, "id": "call_a"},
            {"name": "get_time", "arguments": "{not json", "id": "call_b"},
        ]
    )
    message = llm.bind_tools([get_weather, get_time]).invoke("Both?")
    assert message.tool_calls == [
        {"name": "get_weather", "args": {"city": "Hangzhou"}, "id": "call_a", "type": "tool_call"}
    ]
    assert [(c["name"], c["args"], c["id"]) for c in message.invalid_tool_calls] == [
        ("get_time", "{not json", "call_b")
    ]
    assert message.response_metadata["finish_reason"] == "tool_calls"


def test_bad_tool_choice_and_tools_on_a_model_without_tools_raise_early(
    emu: LocalSiliconCloud,
) -> None:
    llm = ChatSiliconVision(**emulator_params(model=QWEN))
    with pytest.raises(ValueError, match="not one of the bound tools"):
        llm.bind_tools([get_weather], tool_choice="get_time")
    internvl = ChatSiliconVision(**emulator_params(model=INTERNVL))
    with pytest.raises(ParameterError, match="tool"):
        internvl.bind_tools([get_weather]).invoke("Weather?")
    assert emu.requests == []


def test_structured_output_function_calling(llm: ChatSiliconVision, emu: LocalSiliconCloud) -> None:
    emu.script_reply(tool_calls=[{"name": "Receipt", "arguments": {"shop": "Ace", "total": 9.5}}])
    result = llm.with_structured_output(Receipt).invoke([HumanMessage(content=["Read it."])])
    assert result == Receipt(shop="Ace", total=9.5)
    assert body(emu)["tool_choice"] == {"type": "function", "function": {"name": "Receipt"}}

    emu.script_reply(tool_calls=[{"name": "Receipt", "arguments": {"shop": "Ace"}}])
    raw = llm.with_structured_output(Receipt, include_raw=True).invoke("Read it.")
    assert isinstance(raw, dict)
    assert isinstance(raw["raw"], AIMessage) and raw["parsed"] is None
    assert raw["parsing_error"] is not None


def test_structured_output_json_mode(llm: ChatSiliconVision, emu: LocalSiliconCloud) -> None:
    emu.script_reply('{"shop": "Ace", "total": 3}')
    result = llm.with_structured_output(Receipt, method="json_mode").invoke("JSON please.")
    assert result == Receipt(shop="Ace", total=3.0)
    assert body(emu)["response_format"] == {"type": "json_object"}
    assert "tools" not in body(emu)


def test_structured_output_json_schema_is_json_object_plus_the_schema(
    emu: LocalSiliconCloud,
) -> None:
    internvl = ChatSiliconVision(**emulator_params(model=INTERNVL))  # no tools: json_schema
    emu.script_reply('```json\n{"shop": "Ace", "total": 12.5}\n```')
    result = internvl.with_structured_output(Receipt).invoke(
        [HumanMessage(content=[image_block(make_image()), "Read the receipt."])]
    )
    assert result == Receipt(shop="Ace", total=12.5)
    sent = body(emu)
    assert sent["response_format"] == {"type": "json_object"}
    system = sent["messages"][0]
    assert system["role"] == "system"
    schema = json.loads(system["content"].split("\n", 1)[1])
    assert schema["properties"].keys() == {"shop", "total"}
    assert schema["required"] == ["shop", "total"]

    emu.script_reply('{"shop": "Ace"}')  # schema-invalid: the parser says so
    with pytest.raises(OutputParserException):
        internvl.with_structured_output(Receipt, method="json_schema").invoke("Read it.")


def test_profile_comes_from_the_catalog() -> None:
    qwen = ChatSiliconVision(model=QWEN, api_key="x").profile
    assert qwen is not None
    assert qwen["image_inputs"] and qwen["image_url_inputs"] and qwen["tool_calling"]
    assert qwen["max_input_tokens"] == 131_072 and not qwen["reasoning_output"]
    assert not qwen["video_inputs"] and qwen["pdf_inputs"] and qwen["pdf_tool_message"]
    thinking = ChatSiliconVision(model=THINKING, api_key="x").profile
    assert thinking is not None and thinking["reasoning_output"] and thinking["video_inputs"]
    internvl = ChatSiliconVision(model=INTERNVL, api_key="x").profile
    assert internvl is not None and not internvl["tool_calling"]
    tele = ChatSiliconVision(model="TeleAI/TeleMM", api_key="x").profile
    assert tele is not None and tele["image_inputs"] and not tele["image_url_inputs"]


@pytest.mark.filterwarnings("ignore:The function `load` is in beta")
def test_ls_params_and_no_key_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = ChatSiliconVision(
        model=QWEN, api_key=SECRET, temperature=0.3, max_tokens=77, stop=["END"]
    )
    params = llm._get_ls_params()
    assert params == {
        "ls_provider": "siliconflow",
        "ls_model_name": QWEN,
        "ls_model_type": "chat",
        "ls_temperature": 0.3,
        "ls_max_tokens": 77,
        "ls_stop": ["END"],
    }
    assert llm._get_ls_params(model=QWEN_7B)["ls_model_name"] == QWEN_7B
    serialized = dumps(llm)
    for text in (repr(llm), str(llm), serialized, json.dumps(params), str(llm.asdict())):
        assert SECRET not in text
    assert repr(llm.client).count("**********") == 1 and SECRET not in repr(llm.client)
    assert dumpd(llm)["kwargs"]["api_key"] == {
        "lc": 1,
        "type": "secret",
        "id": ["SILICONFLOW_API_KEY"],
    }
    monkeypatch.setenv("SILICONFLOW_API_KEY", SECRET)
    loaded = load(
        dumpd(llm),
        valid_namespaces=["langchain_siliconvision"],
        allowed_objects=[ChatSiliconVision],
        secrets_from_env=True,
    )
    assert isinstance(loaded, ChatSiliconVision)
    assert loaded.api_key is not None and loaded.api_key.get_secret_value() == SECRET
    assert loaded.asdict() == llm.asdict()


def test_key_and_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ChatSiliconVision().api_key is None
    assert ChatSiliconVision().base_url == "https://api.siliconflow.cn/v1"
    monkeypatch.setenv("SILICONCLOUD_API_KEY", "sk-cloud")
    assert ChatSiliconVision().api_key.get_secret_value() == "sk-cloud"  # type: ignore[union-attr]
    monkeypatch.setenv("SILICONFLOW_API_KEY", "sk-flow")
    monkeypatch.setenv("SILICONFLOW_BASE_URL", "https://api.siliconflow.com/v1/")
    llm = ChatSiliconVision()
    assert llm.api_key.get_secret_value() == "sk-flow"  # type: ignore[union-attr]
    assert llm.base_url == "https://api.siliconflow.com/v1"


def test_missing_key_is_a_clear_error(emu: LocalSiliconCloud) -> None:
    llm = ChatSiliconVision(model=QWEN, base_url=emu.base_url)
    with pytest.raises(openai.OpenAIError, match="SILICONFLOW_API_KEY"):
        llm.invoke("hi")
    assert emu.requests == []


def test_request_parameters_reach_the_wire(emu: LocalSiliconCloud) -> None:
    llm = ChatSiliconVision(
        **emulator_params(
            model="zai-org/GLM-4.5V",
            temperature=0.2,
            top_p=0.9,
            top_k=20,
            max_tokens=64,
            stop=["###"],
            enable_thinking=True,
            thinking_budget=256,
            model_kwargs={"min_p": 0.05, "frequency_penalty": 0.5},
            extra_body={"custom_flag": 1},
        )
    )
    llm.invoke("hi", stop=["STOP"], extra_body={"seed": 7})
    sent = body(emu)
    picked = {k: sent.get(k) for k in ("temperature", "top_p", "top_k", "max_tokens", "stop")}
    assert picked == {
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 20,
        "max_tokens": 64,
        "stop": ["STOP"],
    }
    assert (sent["enable_thinking"], sent["thinking_budget"]) == (True, 256)
    assert (sent["min_p"], sent["frequency_penalty"], sent["seed"]) == (0.05, 0.5, 7)
    assert sent["custom_flag"] == 1
    llm.invoke("hi", model=QWEN_7B)
    assert body(emu)["model"] == QWEN_7B
    with pytest.raises(ParameterError, match="unknown request parameter"):
        llm.invoke("hi", bogus_option=True)
    with pytest.raises(ParameterError, match="temperature"):
        llm.invoke("hi", temperature=5)
    # seed is not a field SiliconCloud documents: refused by name, extra_body sends it
    with pytest.raises(
        ParameterError, match=r"'seed' is not one SiliconCloud documents.*extra_body"
    ):
        llm.invoke("hi", seed=7)


def test_api_errors_keep_their_openai_types(emu: LocalSiliconCloud) -> None:
    llm = ChatSiliconVision(**emulator_params(model=QWEN))
    emu.fail_next(429)
    with pytest.raises(openai.RateLimitError, match="TPM limit reached"):
        llm.invoke("hi")
    with pytest.raises(openai.BadRequestError, match="20012"):
        ChatSiliconVision(**emulator_params(model="no/such-model")).invoke("hi")


def test_num_tokens_matches_what_the_server_counts(emu: LocalSiliconCloud) -> None:
    messages = [
        HumanMessage(
            content=[
                image_block(make_image((1024, 1024), "red")),
                image_block(make_image((3000, 2000), "blue", "JPEG"), detail="low"),
                "Compare these two images, please.",
            ]
        ),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "X"}, "id": "c1"}]),
        ToolMessage("sunny", tool_call_id="c1"),
    ]
    for model in (QWEN, "deepseek-ai/deepseek-vl2"):
        llm = ChatSiliconVision(**emulator_params(model=model))
        estimate = llm.get_num_tokens_from_messages(messages)
        if model == QWEN:
            with_tools = llm.get_num_tokens_from_messages(messages, tools=[get_weather])
            usage = llm.bind_tools([get_weather]).invoke(messages).usage_metadata
            assert usage is not None and usage["input_tokens"] == with_tools
        usage = llm.invoke(messages).usage_metadata
        assert usage is not None and usage["input_tokens"] == estimate
    # 1024x1024 high on Qwen-VL is 1036x1036 -> 37*37 = 1369 tokens; low is 256.
    qwen = ChatSiliconVision(model=QWEN, api_key="x")
    text_only = qwen.get_num_tokens_from_messages([HumanMessage("Compare.")])
    one = qwen.get_num_tokens_from_messages(
        [HumanMessage(content=[image_block(make_image((1024, 1024))), "Compare."])]
    )
    assert one - text_only == 1369
