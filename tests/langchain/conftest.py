"""Fixtures of the LangChain adapter tests: a session-wide LocalSiliconCloud, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from siliconvision.testing import LocalSiliconCloud
from tests.langchain.support import SHARED


@pytest.fixture(scope="session", autouse=True)
def _shared_emulator() -> Iterator[LocalSiliconCloud]:
    with LocalSiliconCloud() as emu:
        SHARED.emulator = emu
        try:
            yield emu
        finally:
            SHARED.emulator = None


@pytest.fixture
def emu(_shared_emulator: LocalSiliconCloud) -> Iterator[LocalSiliconCloud]:
    """The shared emulator with a clean log, no script/responder, default knobs."""
    _shared_emulator.clear()
    _shared_emulator.chunk_delay = 0.0
    _shared_emulator.latency = 0.0
    _shared_emulator.reply_chunks = None
    yield _shared_emulator
    _shared_emulator.clear()
    _shared_emulator.chunk_delay = 0.0
    _shared_emulator.reply_chunks = None
