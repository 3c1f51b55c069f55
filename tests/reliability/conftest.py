"""Reliability suite support: per-test figures, request accounting, retry-log capture.

Every test of this suite reports its figures (requests sent, faults injected,
retries, results lost...) through the ``figures`` fixture; they are printed in a
"reliability figures" section at the end of the run (``pytest_terminal_summary``),
so CI logs show them, and attached to each test's ``user_properties`` (JUnit XML).
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from siliconvision.testing import LocalSiliconCloud, ReceivedRequest

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"
FAULT_STATUSES = (429, 503)

# LlamaIndex's instrumentation and agent code use deprecated pydantic APIs (third party).
_THIRD_PARTY_WARNINGS = (
    # the base class of PydanticDeprecatedSince20 / Since211 (the latter is new in 2.11)
    "ignore::pydantic.warnings.PydanticDeprecationWarning",
)

_COLLECTED: list[tuple[str, dict[str, Any]]] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            for spec in _THIRD_PARTY_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@dataclass
class Figures:
    """The figures one test reports (insertion-ordered name -> value)."""

    test: str
    values: dict[str, Any] = field(default_factory=dict)

    def record(self, **values: Any) -> None:
        self.values.update(values)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    fig = Figures(test=request.node.nodeid.split("::", 1)[-1])
    yield fig
    if fig.values:
        _COLLECTED.append((fig.test, dict(fig.values)))
        request.node.user_properties.append(("figures", dict(fig.values)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _COLLECTED:
        return
    terminalreporter.section("reliability figures")
    for test, values in _COLLECTED:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        terminalreporter.write_line(f"{test}: {shown}")


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- file watch


class FileWatch:
    """Every path opened (``open``, ``os.open``, ``io.open``; any thread) while watching.

    One audit hook for the whole process (audit hooks cannot be removed): it records
    only inside :meth:`watching`, so the rest of the suite pays a flag check per event.
    """

    def __init__(self) -> None:
        self._active = threading.Event()
        self._lock = threading.Lock()
        self._opened: list[str] = []

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and self._active.is_set() and args:
            path = args[0]
            if isinstance(path, (str, bytes, os.PathLike)):
                with self._lock:
                    self._opened.append(os.fsdecode(path))

    @contextmanager
    def watching(self) -> Iterator[list[str]]:
        """The paths opened inside the block (the list fills in as they are opened)."""
        with self._lock:
            self._opened = opened = []
        self._active.set()
        try:
            yield opened
        finally:
            self._active.clear()


_WATCH: FileWatch | None = None


@pytest.fixture(scope="session")
def file_watch() -> FileWatch:
    """The process-wide :class:`FileWatch` (its audit hook is installed once)."""
    global _WATCH
    if _WATCH is None:
        _WATCH = FileWatch()
        sys.addaudithook(_WATCH.hook)
    return _WATCH


# --------------------------------------------------------------------------- emulator


@pytest.fixture
def emu() -> Iterator[LocalSiliconCloud]:
    with LocalSiliconCloud() as emulator:
        yield emulator


def user_text(request: ReceivedRequest) -> str:
    """The text parts of the user messages of a logged chat request, joined by newlines."""
    body = request.body if isinstance(request.body, Mapping) else {}
    texts: list[str] = []
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [
                str(p.get("text"))
                for p in content
                if isinstance(p, Mapping) and p.get("type") == "text"
            ]
    return "\n".join(texts)


@dataclass
class Traffic:
    """What the emulator saw for a batch, keyed by the caller's input."""

    requests: int
    faults: int
    other_errors: int
    ok_per_key: Counter[str]
    attempts_per_key: Counter[str]

    def lost(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if self.ok_per_key[k] == 0]

    def duplicated(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if self.ok_per_key[k] > 1]

    @property
    def retries(self) -> int:
        return self.requests - len(self.attempts_per_key)

    @property
    def max_attempts(self) -> int:
        return max(self.attempts_per_key.values(), default=0)

    def figures(self, keys: list[str]) -> dict[str, Any]:
        return {
            "inputs": len(keys),
            "requests_sent": self.requests,
            "faults_injected": self.faults,
            "retries": self.retries,
            "max_attempts_per_input": self.max_attempts,
            "lost": len(self.lost(keys)),
            "duplicated": len(self.duplicated(keys)),
        }


def traffic(requests: list[ReceivedRequest], key: Any = user_text) -> Traffic:
    ok: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    faults = other = 0
    for request in requests:
        k = key(request)
        attempts[k] += 1
        if request.status == 200:
            ok[k] += 1
        elif request.status in FAULT_STATUSES:
            faults += 1
        else:
            other += 1
    return Traffic(len(requests), faults, other, ok, attempts)


# --------------------------------------------------------------------------- retry log


@dataclass
class RetryLog:
    """The SDK's own "Retrying request in X seconds (retry i of n)" log lines."""

    delays: list[float] = field(default_factory=list)
    retry_numbers: list[int] = field(default_factory=list)
    budgets: set[int] = field(default_factory=set)


# openai 3.x: "Retrying request in X seconds (retry i of n)"; 2.x: "Retrying request to
# /path in X seconds" (no count: the tests then number a call's retries in order).
_RETRY_LINE = re.compile(
    r"Retrying request(?: to \S+)? in ([0-9.e+-]+) seconds(?: \(retry (\d+) of (\d+)\))?"
)


class _RetryHandler(logging.Handler):
    def __init__(self, log: RetryLog) -> None:
        super().__init__(logging.INFO)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        match = _RETRY_LINE.search(record.getMessage())
        if match:
            self.log.delays.append(float(match.group(1)))
            if match.group(2) is not None:
                self.log.retry_numbers.append(int(match.group(2)))
                self.log.budgets.add(int(match.group(3)))


@contextmanager
def retry_log() -> Iterator[RetryLog]:
    """Capture the backoff the ``openai`` SDK really applied (its INFO log)."""
    log = RetryLog()
    logger = logging.getLogger("openai")
    handler = _RetryHandler(log)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield log
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


# --------------------------------------------------------------------------- images


def png(size: tuple[int, int], color: str | tuple[int, int, int] = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()
