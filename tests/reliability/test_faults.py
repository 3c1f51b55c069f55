"""Transient faults: 300 requests through each adapter's batch while the emulator answers a
seeded random 30% with SiliconCloud's real 429 and 503 bodies.

Every request must complete with its own answer (the emulator's default reply quotes
the user's text), in input order, answered 200 exactly once (emulator log), with a
bounded, configured number of retries and backoff (the SDK's own retry log).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage
from llama_index.core.llms import ChatMessage
from openai._models import FinalRequestOptions

from langchain_siliconvision import ChatSiliconVision
from llama_index_siliconvision import SiliconVision
from siliconvision.errors import SiliconCloudInternalServerError, SiliconCloudRateLimitError
from siliconvision.testing import DEFAULT_ERROR_BODIES, LocalSiliconCloud

from .conftest import QWEN, Figures, retry_log, traffic

N_REQUESTS = 300
FAULT_RATE = 0.3
CONCURRENCY = 16
MAX_RETRIES = 15  # a request is lost only if 16 attempts in a row fail: 0.3**16 ~ 4e-9
RETRY_DELAY = 0.002  # seconds before the first retry (tiny, so the suite runs in seconds)
RETRY_MAX_DELAY = 0.01  # no wait may exceed this


def _inputs(tag: str) -> list[str]:
    return [f"{tag} request {i:03d}: what is {i} + {i}?" for i in range(N_REQUESTS)]


def _answered_text(answer: str) -> str:
    """The user text the emulator's default reply quotes (line 2: ``Text: "..."``)."""
    lines = answer.splitlines()
    assert lines[0] == "I see 0 images.", answer
    assert lines[1].startswith('Text: "') and lines[1].endswith('"'), answer
    return lines[1][len('Text: "') : -1]


def _check(
    emu: LocalSiliconCloud,
    inputs: list[str],
    answers: list[str],
    delays: list[float],
    figures: Figures,
) -> None:
    # Every request completed, with its own answer, in input order.
    assert len(answers) == len(inputs)
    mismatched = [
        i for i, (q, a) in enumerate(zip(inputs, answers, strict=True)) if _answered_text(a) != q
    ]
    assert mismatched == []
    # The server answered each distinct input 200 exactly once: nothing lost, nothing twice.
    seen = traffic(emu.requests)
    figures.record(**seen.figures(inputs), longest_backoff_s=max(delays, default=0.0))
    assert seen.lost(inputs) == [] and seen.duplicated(inputs) == []
    assert set(seen.attempts_per_key) == set(inputs)
    assert seen.other_errors == 0
    # The faults really happened (about 30%), and each was retried: one retry per fault.
    assert seen.faults >= N_REQUESTS * FAULT_RATE * 0.6
    assert seen.retries == seen.faults == len(delays)
    # Retry count and backoff bounded, by the configured values.
    assert seen.max_attempts <= MAX_RETRIES + 1
    assert delays and max(delays) <= RETRY_MAX_DELAY


def _faulty(emu: LocalSiliconCloud, seed: int) -> None:
    emu.set_fault_rate(FAULT_RATE, statuses=(429, 503), seed=seed)


def _langchain(emu: LocalSiliconCloud, **overrides: Any) -> ChatSiliconVision:
    params: dict[str, Any] = {
        "model": QWEN,
        "api_key": emu.api_key,
        "base_url": emu.base_url,
        "max_retries": MAX_RETRIES,
        "retry_initial_delay": RETRY_DELAY,
        "retry_max_delay": RETRY_MAX_DELAY,
        "timeout": 30.0,
    }
    params.update(overrides)
    return ChatSiliconVision(**params)


def _llama(emu: LocalSiliconCloud, **overrides: Any) -> SiliconVision:
    params: dict[str, Any] = {
        "model": QWEN,
        "api_key": emu.api_key,
        "base_url": emu.base_url,
        "max_retries": MAX_RETRIES,
        "retry_initial_delay": RETRY_DELAY,
        "retry_max_delay": RETRY_MAX_DELAY,
        "timeout": 30.0,
    }
    params.update(overrides)
    return SiliconVision(**params)


def _text(message: AIMessage) -> str:
    assert isinstance(message, AIMessage)
    return message.text


# --------------------------------------------------------------------------- LangChain


def test_langchain_batch_survives_429_and_503(emu: LocalSiliconCloud, figures: Figures) -> None:
    llm = _langchain(emu)
    inputs = _inputs("lc-batch")
    _faulty(emu, seed=11)
    with retry_log() as retries:
        results = llm.batch(inputs, config={"max_concurrency": CONCURRENCY})
    _check(emu, inputs, [_text(r) for r in results], retries.delays, figures)


async def test_langchain_abatch_survives_429_and_503(
    emu: LocalSiliconCloud, figures: Figures
) -> None:
    llm = _langchain(emu)
    inputs = _inputs("lc-abatch")
    _faulty(emu, seed=12)
    with retry_log() as retries:
        results = await llm.abatch(inputs, config={"max_concurrency": CONCURRENCY})
    _check(emu, inputs, [_text(r) for r in results], retries.delays, figures)


# --------------------------------------------------------------------------- LlamaIndex


def test_llama_index_thread_pool_chat_survives_429_and_503(
    emu: LocalSiliconCloud, figures: Figures
) -> None:
    llm = _llama(emu)
    inputs = _inputs("li-chat")
    _faulty(emu, seed=13)

    def ask(text: str) -> str:
        return llm.chat([ChatMessage(role="user", content=text)]).message.content or ""

    with retry_log() as retries, ThreadPoolExecutor(CONCURRENCY) as pool:
        answers = list(pool.map(ask, inputs))
    _check(emu, inputs, answers, retries.delays, figures)


async def test_llama_index_gathered_achat_survives_429_and_503(
    emu: LocalSiliconCloud, figures: Figures
) -> None:
    llm = _llama(emu)
    inputs = _inputs("li-achat")
    _faulty(emu, seed=14)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def ask(text: str) -> str:
        async with limit:
            response = await llm.achat([ChatMessage(role="user", content=text)])
        return response.message.content or ""

    with retry_log() as retries:
        answers = await asyncio.gather(*(ask(text) for text in inputs))
    _check(emu, inputs, list(answers), retries.delays, figures)


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("adapter", ["langchain", "llama_index"])
async def test_retry_budget_is_bounded_then_the_error_surfaces(
    emu: LocalSiliconCloud, figures: Figures, adapter: str, status: int
) -> None:
    """A fault that outlasts the budget: exactly ``max_retries + 1`` attempts, each wait
    within the configured bounds, then SiliconCloud's error (its code and text) surfaces."""
    max_retries, initial, cap = 4, 0.004, 0.02
    emu.fail_next(status, count=50)
    expected = SiliconCloudRateLimitError if status == 429 else SiliconCloudInternalServerError
    with retry_log() as retries:
        if adapter == "langchain":
            llm = _langchain(
                emu, max_retries=max_retries, retry_initial_delay=initial, retry_max_delay=cap
            )
            with pytest.raises(expected) as info:
                llm.invoke("hello")
            with pytest.raises(expected):
                await llm.ainvoke("hello")
        else:
            li = _llama(
                emu, max_retries=max_retries, retry_initial_delay=initial, retry_max_delay=cap
            )
            message = [ChatMessage(role="user", content="hello")]
            with pytest.raises(expected) as info:
                li.chat(message)
            with pytest.raises(expected):
                await li.achat(message)
    body = DEFAULT_ERROR_BODIES[status]
    assert body["message"] in str(info.value)
    assert isinstance(info.value, openai.APIStatusError)
    assert [r.status for r in emu.requests] == [status] * 2 * (max_retries + 1)
    numbers = list(range(1, max_retries + 1)) * 2  # two calls, one after the other
    if retries.retry_numbers or retries.budgets:  # the SDK's log line counts (openai 3.x)
        assert retries.retry_numbers == numbers and retries.budgets == {max_retries}
    # Exponential from `initial`, capped at `cap`, less up to 25% jitter.
    for number, delay in zip(numbers, retries.delays, strict=True):
        nominal = min(initial * 2 ** (number - 1), cap)
        assert nominal * 0.75 <= delay <= nominal
    figures.record(
        requests_sent=len(emu.requests),
        faults_injected=len(emu.requests),
        retries=len(retries.delays),
        backoff_s=[round(d, 4) for d in retries.delays[:max_retries]],
    )


def test_retry_after_is_honoured_but_never_beyond_the_cap(
    emu: LocalSiliconCloud, figures: Figures
) -> None:
    """SiliconCloud documents no Retry-After; if a proxy sends one, it is obeyed up to
    ``retry_max_delay`` (a server cannot park a batch for minutes)."""
    llm = _llama(emu, max_retries=1, retry_initial_delay=0.001, retry_max_delay=0.05)
    client = llm.client.openai
    options = FinalRequestOptions.construct(method="post", url="/x", max_retries=1)
    waits = {  # (the SDK reads the headers with .get: a dict of lower-case names will do)
        header: client._calculate_retry_timeout(1, options, {"retry-after": header})
        for header in ("0.02", "120", "3600")
    }
    assert waits == {"0.02": 0.02, "120": 0.05, "3600": 0.05}
    figures.record(retry_after_waits=waits)
