"""Chat request bodies written to the socket in slices, so a big image is not copied.

Serialising a request the usual way (``json.dumps(body).encode()``) holds three copies
of every base64 image at once: the string in the message, the JSON text and its bytes.
For a 20 MB photo that is 80 MB more than the request needs. :class:`JSONBody`
serialises everything but the long strings (small), and the HTTP client reads the long
strings in slices while it sends; the bytes are exactly ``json.dumps``'s.
"""

from __future__ import annotations

import bisect
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

__all__ = ["AsyncJSONBody", "AsyncRestartingBody", "JSONBody", "RestartingBody"]

#: Strings at least this long are written in slices instead of joining the JSON text.
STREAM_MIN_CHARS = 1 << 16
_SLICE = 1 << 20
# Characters JSON writes as they are: printable ASCII except the quote and the backslash.
_AS_IS = bytes(b for b in range(0x20, 0x7F) if b not in b'"\\')


def _writes_as_is(text: str) -> bool:
    """Whether JSON writes ``text`` unescaped (true of every base64 ``data:`` URI)."""
    if not text.isascii():
        return False
    return not any(
        text[start : start + _SLICE].encode("ascii").translate(None, _AS_IS)
        for start in range(0, len(text), _SLICE)
    )


class JSONBody:
    """``body`` as compact JSON bytes (``json.dumps(body, ensure_ascii=False,
    separators=(",", ":"))``), read as a seekable binary file without ever being
    joined: the SDK rewinds it to re-send on a retry (openai >= 3.20; for SDKs that do not,
    :meth:`restarting`), and the HTTP client reads it in 64 KiB pieces. :attr:`length`
    is the exact byte count, for ``Content-Length``. ``TypeError``/``ValueError`` as
    ``json.dumps`` raises them.

    >>> body = JSONBody({"messages": [{"content": "data:image/png;base64," + "A" * 70_000}]})
    >>> data = b"".join(body)
    >>> len(data) == body.length and json.loads(data)["messages"][0]["content"][-3:]
    'AAA'
    """

    def __init__(self, body: Mapping[str, Any]) -> None:
        token = f"siliconvision-body-{secrets.token_hex(12)}"
        long_strings: list[str] = []

        def swap(value: Any) -> Any:
            if type(value) is str:
                if len(value) >= STREAM_MIN_CHARS and _writes_as_is(value):
                    long_strings.append(value)
                    return token
                return value
            if isinstance(value, Mapping):
                return {key: swap(item) for key, item in value.items()}
            if isinstance(value, (list, tuple)):
                return [swap(item) for item in value]
            return value

        skeleton = _dumps(swap(body))
        pieces = skeleton.split(f'"{token}"')
        if len(pieces) != len(long_strings) + 1:  # the random token was in the body itself
            pieces, long_strings = [_dumps(body)], []
        # Segments in order: JSON text (bytes) and, between them, the long strings
        # (ASCII ``str``: one character is one byte), each in its quotes.
        segments: list[bytes | str] = []
        for index, piece in enumerate(pieces):
            opening = b'"' if index > 0 else b""
            closing = b'"' if index < len(long_strings) else b""
            segments.append(opening + piece.encode() + closing)
            if index < len(long_strings):
                segments.append(long_strings[index])
        self._segments = segments
        self._starts: list[int] = []
        offset = 0
        for segment in segments:
            self._starts.append(offset)
            offset += len(segment)
        self.length = offset
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the current position (all that is left for -1)."""
        data = self._read_at(self._position, size)
        self._position += len(data)
        return data

    def _read_at(self, position: int, size: int) -> bytes:
        end = self.length if size is None or size < 0 else min(self.length, position + size)
        out: list[bytes] = []
        index = bisect.bisect_right(self._starts, position) - 1
        while position < end:
            segment, start = self._segments[index], self._starts[index]
            stop = min(end - start, len(segment))
            part = segment[position - start : stop]
            out.append(part.encode("ascii") if isinstance(part, str) else part)
            position = start + stop
            index += 1
        return out[0] if len(out) == 1 else b"".join(out)

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self.length}[whence]
        self._position = max(0, base + offset)
        return self._position

    def __iter__(self) -> Iterator[bytes]:
        """The whole body from the start, whatever the position (which it leaves alone)."""
        position = 0
        while chunk := self._read_at(position, _SLICE):
            position += len(chunk)
            yield chunk

    def asynchronous(self) -> AsyncJSONBody:
        """This body for an async HTTP client (which must not see ``__iter__``)."""
        return AsyncJSONBody(self)

    def restarting(self) -> RestartingBody:
        """This body as a plain iterable (no ``read``): an HTTP client iterates it from
        the start on every attempt, for SDKs that retry without rewinding a file."""
        return RestartingBody(self)


class AsyncJSONBody:
    """A :class:`JSONBody` read asynchronously (``aread``); shares its position."""

    def __init__(self, body: JSONBody) -> None:
        self.body = body
        self.length = body.length
        self.read, self.seek, self.tell, self.seekable = (
            body.read,
            body.seek,
            body.tell,
            body.seekable,
        )

    async def aread(self, size: int = -1) -> bytes:
        return self.body.read(size)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The whole body from the start, like :meth:`JSONBody.__iter__`."""
        for chunk in self.body:
            yield chunk


class RestartingBody:
    """:meth:`JSONBody.restarting`: iterable (sync or async) from the start, every time."""

    def __init__(self, body: JSONBody) -> None:
        self.body = body
        self.length = body.length

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def asynchronous(self) -> AsyncRestartingBody:
        """This body for an async HTTP client (``__aiter__`` only)."""
        return AsyncRestartingBody(self.body)


class AsyncRestartingBody:
    """:class:`RestartingBody` for an async HTTP client (``__aiter__`` only)."""

    def __init__(self, body: JSONBody) -> None:
        self.body = body
        self.length = body.length

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.body:
            yield chunk


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
