"""Request building, response parsing and stream accumulation (no network)."""

from __future__ import annotations

from typing import Any

import pytest

from siliconvision.errors import IncompleteStreamError, parse_error_body
from siliconvision.wire import (
    ParameterError,
    StreamAccumulator,
    Usage,
    build_chat_request,
    parse_chat_completion,
)

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
MSGS = [{"role": "user", "content": "hi"}]


def test_extras_go_to_extra_body_and_none_is_left_out() -> None:
    request = build_chat_request(
        MSGS,
        model=QWEN,
        stream=True,
        temperature=0.3,
        top_p=None,
        top_k=20,
        min_p=0.05,
        enable_thinking=False,
        thinking_budget=1024,
        extra_body={"custom": 1},
    )
    assert request["model"] == QWEN and request["stream"] is True
    assert request["temperature"] == 0.3 and "top_p" not in request
    assert request["extra_body"] == {
        "top_k": 20,
        "min_p": 0.05,
        "enable_thinking": False,
        "thinking_budget": 1024,
        "custom": 1,
    }
    assert "extra_body" not in build_chat_request(MSGS, model=QWEN)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": 2.5}, "temperature must be between"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"top_p": 1.5}, "top_p"),
        ({"thinking_budget": 64}, "thinking_budget must be between 128"),
        ({"thinking_budget": 40_000}, "thinking_budget"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4 stop"),
        ({"stop": [1]}, "stop must be"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"enable_thinking": "yes"}, "enable_thinking must be a bool"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "must match"),
        (
            {"tools": [{"type": "function", "function": {"name": f"t{i}"}} for i in range(129)]},
            "at most 128 tools",
        ),
        ({"temprature": 0.1}, "unknown request parameter"),
    ],
)
def test_invalid_parameters_raise_before_sending(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        build_chat_request(MSGS, model=QWEN, **params)


def test_tools_on_a_model_without_tools_raise_with_the_override_hint() -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    with pytest.raises(ParameterError, match="tools=True"):
        build_chat_request(MSGS, model="OpenGVLab/InternVL2-26B", tools=tools)
    assert build_chat_request(MSGS, model=QWEN, tools=tools)["tools"] == tools


def test_empty_messages_raise() -> None:
    with pytest.raises(ParameterError, match="messages must not be empty"):
        build_chat_request([], model=QWEN)


def test_parse_chat_completion_reads_siliconcloud_fields() -> None:
    result = parse_chat_completion(
        {
            "id": "0" * 32,
            "model": QWEN,
            "created": 1,
            "system_fingerprint": "",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "reasoning_content": "think",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"a": 1}'},
                            }
                        ],
                    },
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "total_tokens": 15,
                "completion_tokens_details": {"reasoning_tokens": 2},
                "prompt_tokens_details": {"cached_tokens": 3},
            },
        },
        trace_id="abc",
    )
    assert result.content == "" and result.reasoning_content == "think"
    assert result.tool_calls[0].parsed_arguments() == {"a": 1}
    assert result.usage == Usage(10, 5, 15, reasoning_tokens=2, cached_tokens=3)
    assert result.trace_id == "abc" and result.finish_reason == "tool_calls"


def _chunk(
    delta: dict[str, Any], usage: tuple[int, int] | None, finish: str | None = None
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "f" * 32,
        "model": QWEN,
        "created": 2,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        prompt, completion = usage
        chunk["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return chunk


def test_cumulative_usage_on_every_chunk_is_not_summed_twice() -> None:
    acc = StreamAccumulator()
    chunks = [
        _chunk({"role": "assistant", "content": "", "reasoning_content": None}, (7, 0)),
        _chunk({"content": None, "reasoning_content": "hmm"}, (7, 1)),
        _chunk({"content": "Hel"}, (7, 2)),
        _chunk({"content": "lo"}, (7, 3)),
        _chunk({"content": ""}, (7, 3), finish="stop"),
    ]
    deltas = [acc.add(c) for c in chunks]
    summed = Usage()
    for d in deltas:
        assert d.usage_increment is not None
        summed = Usage(
            summed.prompt_tokens + d.usage_increment.prompt_tokens,
            summed.completion_tokens + d.usage_increment.completion_tokens,
            summed.total_tokens + d.usage_increment.total_tokens,
        )
    assert summed == Usage(7, 3, 10)
    result = acc.result()
    assert result.usage == Usage(7, 3, 10)
    assert result.content == "Hello" and result.reasoning_content == "hmm"
    assert deltas[1].reasoning == "hmm" and deltas[1].content is None


def test_openai_style_final_usage_chunk_also_works() -> None:
    acc = StreamAccumulator()
    acc.add(_chunk({"content": "a"}, None))
    acc.add(_chunk({"content": "b"}, None, finish="stop"))
    last = acc.add(
        {
            "id": "f" * 32,
            "choices": [],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
        }
    )
    assert last.usage_increment == Usage(4, 2, 6)
    assert acc.result().usage == Usage(4, 2, 6)


def test_streamed_tool_calls_are_assembled_by_index() -> None:
    acc = StreamAccumulator()
    acc.add(
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "c0",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": ""},
                    }
                ]
            },
            None,
        )
    )
    acc.add(
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "other", "arguments": "{}"},
                    }
                ]
            },
            None,
        )
    )
    acc.add(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": '}}]}, None))
    acc.add(
        _chunk(
            {"tool_calls": [{"index": 0, "function": {"arguments": '"cat"}'}}]},
            None,
            finish="tool_calls",
        )
    )
    calls = acc.result().tool_calls
    assert [(c.id, c.name) for c in calls] == [("c0", "lookup"), ("c1", "other")]
    assert calls[0].parsed_arguments() == {"q": "cat"}


def test_stream_without_final_chunk_is_an_error_with_the_partial_text() -> None:
    acc = StreamAccumulator()
    acc.add(_chunk({"content": "The answer is"}, (3, 1)))
    with pytest.raises(IncompleteStreamError) as info:
        acc.result()
    assert info.value.partial_text == "The answer is"
    assert "incomplete" in str(info.value)


def test_bad_tool_arguments_raise_a_clear_error() -> None:
    acc = StreamAccumulator()
    acc.add(
        _chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "c", "function": {"name": "f", "arguments": "{oops"}}
                ]
            },
            None,
            finish="tool_calls",
        )
    )
    with pytest.raises(ValueError, match="not JSON"):
        acc.result().tool_calls[0].parsed_arguments()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"code": 20012, "message": "Model does not exist.", "data": None},
            (20012, "Model does not exist."),
        ),
        (
            {"message": "Request was rejected due to rate limiting.", "data": None},
            (None, "Request was rejected due to rate limiting."),
        ),
        ("Invalid token", (None, "Invalid token")),
        ('"Api key is invalid"', (None, "Api key is invalid")),
        (b"404 page not found", (None, "404 page not found")),
        ({"error": {"code": "30001", "message": "balance"}}, (30001, "balance")),
        (None, (None, "")),
    ],
)
def test_every_error_body_form_is_read(body: object, expected: tuple[int | None, str]) -> None:
    assert parse_error_body(body) == expected


@pytest.mark.parametrize("name", ["seed", "presence_penalty", "logprobs", "parallel_tool_calls"])
def test_undocumented_openai_fields_are_refused_by_name_and_go_through_extra_body(
    name: str,
) -> None:
    with pytest.raises(ParameterError, match=rf"'{name}' is not one SiliconCloud documents"):
        build_chat_request(MSGS, model=QWEN, **{name: 1})
    request = build_chat_request(MSGS, model=QWEN, extra_body={name: 1})
    assert request["extra_body"] == {name: 1} and name not in request


def test_max_completion_tokens_points_at_max_tokens() -> None:
    with pytest.raises(ParameterError, match="max_tokens"):
        build_chat_request(MSGS, model=QWEN, max_completion_tokens=5)


def test_n_above_one_is_refused_only_when_streaming() -> None:
    assert build_chat_request(MSGS, model=QWEN, n=3)["n"] == 3
    with pytest.raises(ParameterError, match="n=3 cannot be streamed"):
        build_chat_request(MSGS, model=QWEN, stream=True, n=3)
    assert build_chat_request(MSGS, model=QWEN, stream=True, n=1)["n"] == 1


def test_extra_headers_are_checked_and_kept_apart_from_the_body() -> None:
    request = build_chat_request(MSGS, model=QWEN, extra_headers={"X-A": "1"})
    assert request["extra_headers"] == {"X-A": "1"}
    with pytest.raises(ParameterError, match="extra_headers"):
        build_chat_request(MSGS, model=QWEN, extra_headers={"X-A": 1})


def test_every_choice_is_kept_in_index_order_with_the_usage_once() -> None:
    completion = {
        "id": "x",
        "model": "m",
        "choices": [
            {"index": 1, "message": {"content": "second"}, "finish_reason": "stop"},
            {"index": 0, "message": {"content": "first"}, "finish_reason": "length"},
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    result = parse_chat_completion(completion)
    assert [c.content for c in result.choices] == ["first", "second"]
    assert [c.finish_reason for c in result.choices] == ["length", "stop"]
    assert result.usage == Usage(3, 4, 7) and result.other_choices[0].usage is None


def test_the_incomplete_stream_error_is_an_openai_connection_error() -> None:
    import openai

    accumulator = StreamAccumulator()
    accumulator.add({"id": "x", "choices": [{"index": 0, "delta": {"content": "Hal"}}]})
    error = accumulator.incomplete_error("broke")
    assert isinstance(error, IncompleteStreamError)
    assert isinstance(error, openai.APIConnectionError)
    assert error.partial_text == "Hal" and "broke" in str(error)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), (5, 5.0), ((2, 9), (2.0, 9.0, 9.0, 9.0)), ((1, 2, 3, 4), (1.0, 2.0, 3.0, 4.0))],
)
def test_timeouts_in_each_form(value: Any, expected: Any) -> None:
    import httpx

    from siliconvision.client import check_timeout

    timeout = check_timeout(value)
    if isinstance(expected, tuple):
        assert isinstance(timeout, httpx.Timeout)
        assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == expected
    else:
        assert timeout == expected
    given = httpx.Timeout(3.0)
    assert check_timeout(given) is given


@pytest.mark.parametrize("value", ["10", -1, float("nan"), (1,), (1, "2"), True])
def test_bad_timeouts_are_refused(value: Any) -> None:
    from siliconvision.client import check_timeout

    with pytest.raises(ValueError, match="timeout must be"):
        check_timeout(value)


def test_the_reply_class_keeps_its_former_name() -> None:
    """``ChatReply`` no longer shares LangChain's ``ChatResult`` name; the old name
    still imports, from the wire and the package, as the same class."""
    import siliconvision
    from siliconvision.wire import ChatReply, ChatResult, parse_chat_completion

    assert ChatResult is ChatReply is siliconvision.ChatResult is siliconvision.ChatReply
    reply = parse_chat_completion({"id": "r", "model": "m", "choices": [{"message": {}}]})
    assert isinstance(reply, ChatResult) and type(reply).__name__ == "ChatReply"
