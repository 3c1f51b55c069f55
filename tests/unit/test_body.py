"""JSONBody: the streamed request body is byte for byte ``json.dumps``'s, re-readable."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siliconvision import _body
from siliconvision._body import JSONBody


def reference(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


texts = st.one_of(
    st.text(max_size=40),  # anything, escaped by json
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=60
    ),
    st.text(alphabet='Ab"\\\n\x01é', max_size=60),  # long but needing escapes
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    sizes=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=8),
)
def test_bytes_equal_json_dumps_in_any_read_sizes_and_after_a_rewind(
    body: dict[str, Any], sizes: list[int]
) -> None:
    expected = reference(body)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_body, "STREAM_MIN_CHARS", 8)  # so short strings take the long path too
        stream = JSONBody(body)
    assert stream.length == len(expected)
    # Iterating always gives the whole body (the restarting form relies on it).
    assert b"".join(stream) == expected == b"".join(stream.restarting())
    assert stream.read() == expected and stream.read() == b""
    assert stream.tell() == len(expected)
    # A retry rewinds and reads again, in the HTTP client's own piece sizes.
    stream.seek(0)
    pieces, turn = [], 0
    while chunk := stream.read(sizes[turn % len(sizes)]):
        pieces.append(chunk)
        turn += 1
    assert b"".join(pieces) == expected
    assert stream.seek(0, os.SEEK_END) == len(expected)


def test_a_big_data_uri_is_not_copied_into_the_json_text() -> None:
    uri = "data:image/jpeg;base64," + "QUJD" * 500_000  # 2 MB
    body = JSONBody({"messages": [{"role": "user", "content": [{"image_url": {"url": uri}}]}]})
    # The segments hold the caller's own string object, not a copy of it.
    assert any(segment is uri for segment in body._segments)
    assert sum(len(s) for s in body._segments if isinstance(s, bytes)) < 200
    assert json.loads(b"".join(body))["messages"][0]["content"][0]["image_url"]["url"] == uri


def test_long_strings_that_need_escaping_are_serialised_by_json() -> None:
    text = 'a "quoted" \\ line\n' * 10_000 + "é"
    body = JSONBody({"content": text})
    assert not any(segment is text for segment in body._segments)
    assert b"".join(body) == reference({"content": text})


@pytest.mark.parametrize("bad", [{"x": object()}, {"x": float("nan")}])
def test_values_json_cannot_write_raise_like_json_dumps(bad: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        JSONBody(bad)


async def test_the_async_view_reads_the_same_bytes() -> None:
    body = JSONBody({"content": "data:image/png;base64," + "A" * 200_000})
    view = body.asynchronous()
    assert not hasattr(view, "__iter__")  # an async HTTP client must not take it as sync
    assert b"".join([chunk async for chunk in view]) == reference(
        {"content": "data:image/png;base64," + "A" * 200_000}
    )
    view.seek(0)
    assert await view.aread(10) == b'{"content"'


async def test_the_restarting_form_gives_the_whole_body_on_every_attempt() -> None:
    """For an SDK that retries without rewinding (openai 2.x): a plain iterable, no
    ``read``, so the HTTP client iterates it afresh on every attempt."""
    content = {"content": "data:image/png;base64," + "B" * 150_000}
    body = JSONBody(content)
    body.read(1000)  # a position left mid-body by an earlier attempt changes nothing
    restarting = body.restarting()
    assert not hasattr(restarting, "read")
    assert b"".join(restarting) == b"".join(restarting) == reference(content)
    view = restarting.asynchronous()
    assert not hasattr(view, "__iter__")
    for _ in range(2):
        assert b"".join([chunk async for chunk in view]) == reference(content)
