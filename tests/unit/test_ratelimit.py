"""Rate limits: the limiter's arithmetic on a fake clock, then the client and the emulator
over real HTTP (windowed counts read from the emulator, no timed assertions)."""

from __future__ import annotations

import asyncio
import io
import itertools
import pickle
import threading
from collections.abc import Iterator

import openai
import pytest
from PIL import Image

from siliconvision import SiliconVisionClient
from siliconvision.ratelimit import RateLimits, estimate_request_tokens, limits_named
from siliconvision.testing import LocalSiliconCloud, rate_limit_body

QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"


def _png(size: tuple[int, int] = (64, 64), colour: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _starts(limits: RateLimits, count: int, tokens: float = 0, now: float = 0.0) -> list[float]:
    """Start times of ``count`` requests all asking at ``now`` (settled as they start)."""
    starts = []
    for _ in range(count):
        grant = limits.try_reserve(tokens, now=now)
        assert grant.granted
        starts.append(now + grant.wait)
    return starts


def _most_in(starts: list[float], seconds: float) -> int:
    """The most starts within any window of ``seconds`` (closed on the left)."""
    return max(sum(1 for t in starts if s <= t < s + seconds) for s in starts)


# --------------------------------------------------------------------------- pacing


def test_requests_start_evenly_at_rpm_over_60_beyond_a_small_burst() -> None:
    limits = RateLimits(rpm=600)  # 10 per second
    starts = _starts(limits, 100)
    assert starts == sorted(starts)  # first come, first served
    assert _most_in(starts, 1.0) <= 10 * (1 + limits.burst) + 1
    gaps = [b - a for a, b in itertools.pairwise(starts[4:])]
    assert all(gap == pytest.approx(0.1) for gap in gaps)  # after the burst: even
    assert starts[-1] == pytest.approx((100 - 1) / 10 - limits.burst, abs=0.11)


def test_tokens_start_evenly_at_tpm_over_60() -> None:
    limits = RateLimits(tpm=60_000, burst=0.0)  # 1,000 tokens per second
    starts = _starts(limits, 20, tokens=250)
    assert [round(t, 6) for t in starts[:5]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # A request bigger than a second's worth is not refused: the next ones wait for it.
    big = RateLimits(tpm=60_000, burst=0.0)
    assert _starts(big, 3, tokens=5_000) == pytest.approx([0.0, 5.0, 10.0])


def test_the_binding_limit_wins_when_both_are_set() -> None:
    limits = RateLimits(rpm=6000, tpm=60_000, burst=0.0)  # 100 req/s, 1,000 tok/s
    starts = _starts(limits, 10, tokens=500)  # tokens bind: 2 per second
    assert starts[1] - starts[0] == pytest.approx(0.5)


# --------------------------------------------------------------------------- the window


def test_requests_count_until_a_window_after_their_answer() -> None:
    # A big burst allowance, so that only the window can stop the third request.
    limits = RateLimits(rpm=60, window=2.0, burst=100.0)  # 2 per 2-second window
    first = limits.try_reserve(0, now=0.0)
    second = limits.try_reserve(0, now=0.0)
    assert first.granted and second.granted and first.wait == second.wait == 0
    third = limits.try_reserve(0, now=0.1)
    assert not third.granted  # both still in flight: no time can be promised
    assert first.id is not None
    limits.settle(first.id, None, now=0.5)  # answered at 0.5: counts until 2.5
    third = limits.try_reserve(0, now=0.6)
    assert third.granted and third.wait == pytest.approx(1.9)
    assert limits.usage(now=0.6) == (3, 0.0)
    assert limits.usage(now=2.6)[0] == 2  # the first one left the window


def test_real_usage_corrects_the_estimate_both_ways() -> None:
    def next_start_after(actual: int) -> float:
        limits = RateLimits(tpm=60_000, burst=0.0)  # 1,000 tokens/s
        grant = limits.try_reserve(2_000, now=0.0)
        assert grant.id is not None
        limits.settle(grant.id, actual, now=0.1)
        return limits.try_reserve(100, now=0.1).wait + 0.1

    assert next_start_after(2_000) == pytest.approx(2.0)
    assert next_start_after(500) == pytest.approx(0.5)  # refunded
    assert next_start_after(4_000) == pytest.approx(4.0)  # charged


def test_settling_twice_or_an_unknown_id_changes_nothing() -> None:
    limits = RateLimits(rpm=600, tpm=60_000)
    grant = limits.try_reserve(300, now=0.0)
    assert grant.id is not None
    limits.settle(grant.id, 100, now=0.1)
    limits.settle(grant.id, 9_999, now=0.1)
    limits.settle(12345, 9_999, now=0.1)
    assert limits.usage(now=0.2) == (1, 100.0)


def test_a_permit_dropped_unsettled_keeps_its_estimate_counted() -> None:
    limits = RateLimits(rpm=600, tpm=60_000, window=1.0)
    permit = limits.acquire(300)
    del permit
    requests, tokens = limits.usage()
    assert (requests, tokens) == (1, 300.0)
    assert limits._in_flight == {}  # settled (with the estimate), so it will expire


# --------------------------------------------------------------------------- 429s


def test_a_429_naming_tpm_pauses_and_slows_only_tokens() -> None:
    limits = RateLimits(rpm=600, tpm=60_000, burst=0.0, cooldown=1.0, window=60.0)
    limits.rate_limited("SiliconCloud HTTP 429: ... Details:TPM limit reached.", now=10.0)
    assert limits.rate_limited_count == 1
    first = limits.try_reserve(100, now=10.0)
    assert first.wait == pytest.approx(1.0)  # everyone waits out the cooldown
    second = limits.try_reserve(100, now=10.0)
    # the token pace is cut by 20%: 100 tokens at 800/s
    assert second.wait - first.wait == pytest.approx(100 / 800)
    # a second 429 within the cooldown (the same burst) does not cut again
    limits.rate_limited("Details:TPM limit reached.", now=10.5)
    assert limits._tokens is not None
    assert (limits._tokens.scale_at_penalty, limits._tokens.penalized_at) == (0.8, 10.0)
    # the pace recovers linearly over one window
    assert limits._tokens.scale(40.0, 60.0) == pytest.approx(0.9, abs=0.01)
    assert limits._tokens.scale(71.0, 60.0) == 1.0
    assert limits._requests is not None and limits._requests.blocked_until < 10.0


def test_a_429_naming_no_limit_slows_every_limit() -> None:
    limits = RateLimits(rpm=600, tpm=60_000, cooldown=2.0)
    limits.rate_limited("Request was rejected due to rate limiting.", now=0.0)
    assert limits._requests is not None and limits._tokens is not None
    assert limits._requests.blocked_until == limits._tokens.blocked_until == 2.0


def test_limit_names_in_429_messages() -> None:
    assert limits_named("Details:TPM limit reached.") == {"tokens"}
    assert limits_named("Details:RPM limit reached.") == {"requests"}
    assert limits_named("Details:RPD limit reached.") == {"requests"}
    assert limits_named("429 Too Many Requests") == frozenset()


# --------------------------------------------------------------------------- configuration


def test_bad_settings_are_refused_by_name() -> None:
    for kwargs, name in [
        ({}, "rpm, tpm"),
        ({"rpm": 0}, "rpm"),
        ({"rpm": -5}, "rpm"),
        ({"tpm": float("inf")}, "tpm"),
        ({"rpm": True}, "rpm"),
        ({"rpm": 10, "window": 0}, "window"),
        ({"rpm": 10, "burst": -1}, "burst"),
        ({"rpm": 10, "completion_tokens": 1.5}, "completion_tokens"),
    ]:
        with pytest.raises(ValueError, match=name):
            RateLimits(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rate_limits must be"):
        SiliconVisionClient(api_key="k", rate_limits={"rpm": 10})  # type: ignore[arg-type]


def test_a_pickled_copy_is_the_same_config_with_a_fresh_budget() -> None:
    limits = RateLimits(rpm=1000, tpm=50_000, completion_tokens=64, window=30.0)
    limits.try_reserve(500, now=0.0)
    copy = pickle.loads(pickle.dumps(limits))
    assert copy.config() == limits.config()
    assert copy.usage(now=0.0) == (0, 0.0) and limits.usage(now=0.0) == (1, 500.0)
    assert repr(copy) == (
        "RateLimits(rpm=1000, tpm=50000, completion_tokens=64, burst=0.25, window=30, cooldown=1)"
    )


def test_threads_share_one_budget_without_losing_count() -> None:
    limits = RateLimits(rpm=1e9, tpm=1e12)
    ids: list[int] = []
    lock = threading.Lock()

    def work(offset: int) -> None:
        for i in range(200):
            grant = limits.try_reserve(10, now=0.0)
            assert grant.id is not None
            with lock:
                ids.append(grant.id)
            if i % 2:
                limits.settle(grant.id, 20, now=0.0)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == len(set(ids)) == 1600
    assert limits.usage(now=0.0) == (1600, 800 * 10 + 800 * 20)


# --------------------------------------------------------------------------- with the client


@pytest.fixture
def limited_emu() -> Iterator[LocalSiliconCloud]:
    # 1-second windows keep the test short: 10 requests and 2,000 tokens per window.
    with LocalSiliconCloud(rate_limits=RateLimits(rpm=600, tpm=120_000, window=1.0)) as emu:
        yield emu


def _client(emu: LocalSiliconCloud, limits: RateLimits | None) -> SiliconVisionClient:
    return SiliconVisionClient(
        api_key=emu.api_key,
        base_url=emu.base_url,
        rate_limits=limits,
        max_retries=0,
        timeout=30,
    )


def test_threads_and_tasks_sharing_limits_stay_within_the_emulators_windows(
    limited_emu: LocalSiliconCloud,
) -> None:
    limits = RateLimits(rpm=600, tpm=120_000, window=1.0)
    client = _client(limited_emu, limits)
    image = _png()
    errors: list[BaseException] = []

    def thread_work() -> None:
        for _ in range(6):
            try:
                client.ask(image, "What colour?", max_tokens=20)
            except BaseException as exc:  # collected: the assertion below names it
                errors.append(exc)

    async def task_work() -> None:
        async def one() -> None:
            await client.achat(client.ask_messages(image, "Shape?"), max_tokens=20)

        await asyncio.gather(*(one() for _ in range(6)))

    threads = [threading.Thread(target=thread_work) for _ in range(3)]
    for thread in threads:
        thread.start()
    asyncio.run(task_work())
    for thread in threads:
        thread.join()
    assert errors == []
    stats = limited_emu.rate_stats()[QWEN]
    assert stats.arrived == stats.accepted == 24 and stats.refused == 0
    assert stats.request_cap is not None and stats.token_cap is not None
    assert stats.peak_requests <= stats.request_cap
    assert stats.peak_tokens <= stats.token_cap
    assert limits.rate_limited_count == 0


def test_without_limits_the_same_load_gets_429s(limited_emu: LocalSiliconCloud) -> None:
    client = _client(limited_emu, None)
    image = _png()
    refused: list[str] = []

    def work() -> None:
        for _ in range(6):
            try:
                client.ask(image, "What colour?", max_tokens=20)
            except openai.RateLimitError as exc:
                refused.append(str(exc))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = limited_emu.rate_stats()[QWEN]
    assert stats.request_cap is not None and stats.peak_requests > stats.request_cap
    assert stats.refused == len(refused) > 0
    assert all("RPM limit reached" in text or "TPM limit reached" in text for text in refused)


def test_a_429_is_retried_paced_and_slows_the_shared_limits(emulator: LocalSiliconCloud) -> None:
    limits = RateLimits(rpm=6000, tpm=1_000_000, cooldown=0.05)
    client = SiliconVisionClient(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        rate_limits=limits,
        max_retries=2,
        retry_initial_delay=0.01,
        retry_max_delay=0.02,
    )
    emulator.fail_next(429, rate_limit_body("TPM"))
    result = client.ask(_png(), "Colour?")
    assert "I see 1 image." in result.content
    assert [r.status for r in emulator.requests] == [429, 200]
    assert limits.rate_limited_count == 1
    assert limits._tokens is not None and limits._tokens.scale_at_penalty == pytest.approx(0.8)
    requests, tokens = limits.usage()
    # both attempts counted: the refused one with its estimate, the answer with its usage
    assert requests == 2
    assert result.usage is not None and tokens > result.usage.total_tokens


def test_out_of_retries_the_429_is_raised_and_counted(emulator: LocalSiliconCloud) -> None:
    limits = RateLimits(rpm=6000, cooldown=0.0)
    client = SiliconVisionClient(
        api_key=emulator.api_key, base_url=emulator.base_url, rate_limits=limits, max_retries=1,
        retry_initial_delay=0.0, retry_max_delay=0.0,
    )  # fmt: skip
    emulator.fail_next(429, rate_limit_body("RPM"), count=2)
    with pytest.raises(openai.RateLimitError, match="RPM limit reached"):
        client.ask(_png(), "Colour?")
    assert len(emulator.requests) == 2 and limits.rate_limited_count == 2
    assert limits._in_flight == {}  # nothing left reserved


def test_usage_settles_the_reservation_for_chat_and_streams(emulator: LocalSiliconCloud) -> None:
    limits = RateLimits(rpm=6000, tpm=1_000_000, completion_tokens=500)
    client = _client(emulator, limits)
    messages = client.ask_messages(_png(), "Colour?")
    request = client.build_request(messages)
    estimate = estimate_request_tokens(request, limits)  # no answer seen yet: 500 reserved
    result = client.chat(messages)
    assert result.usage is not None
    assert result.usage.prompt_tokens == estimate - 500  # our prompt rule, the emulator's count
    assert limits.usage()[1] == result.usage.total_tokens
    with client.stream(messages) as stream:
        text = "".join(delta.content or "" for delta in stream)
    streamed = stream.result().usage
    assert text and streamed is not None
    assert limits.usage() == (2, result.usage.total_tokens + streamed.total_tokens)
    assert limits._in_flight == {}
    # Answers seen: the next reservation counts the largest of them, not 500.
    assert limits.completion_estimate() == max(
        result.usage.completion_tokens, streamed.completion_tokens
    )
    assert estimate_request_tokens(request, limits) == estimate - 500 + limits.completion_estimate()


def test_the_answer_estimate_learns_from_answers_and_respects_max_tokens() -> None:
    limits = RateLimits(tpm=60_000, completion_tokens=256)
    assert limits.completion_estimate() == 256 and limits.completion_estimate(100) == 100
    for completion in (40, 55, 48):
        grant = limits.try_reserve(300, now=0.0)
        assert grant.id is not None
        limits.settle(grant.id, 250 + completion, completion, now=0.0)
    assert limits.completion_estimate() == 55  # the largest recent answer
    assert limits.completion_estimate(50) == 50  # never more than max_tokens
    assert limits.completion_estimate(4096) == 55  # nor a generous max_tokens in full
    for _ in range(32):  # the long one ages out
        grant = limits.try_reserve(300, now=0.0)
        assert grant.id is not None
        limits.settle(grant.id, 280, 30, now=0.0)
    assert limits.completion_estimate() == 30


async def test_async_streams_settle_too(emulator: LocalSiliconCloud) -> None:
    limits = RateLimits(rpm=6000, tpm=1_000_000)
    client = _client(emulator, limits)
    stream = await client.astream(client.ask_messages(_png(), "Colour?"))
    async with stream:
        async for _ in stream:
            pass
    usage = stream.result().usage
    assert usage is not None and limits.usage() == (1, usage.total_tokens)
    await client.aclose()


# --------------------------------------------------------------------------- the emulator


def test_emulator_refuses_over_its_window_with_siliconclouds_body() -> None:
    limits = RateLimits(rpm=120, tpm=60_000, window=1.0)  # 2 requests / 1,000 tokens per s
    with LocalSiliconCloud(rate_limits=limits) as emu:
        client = openai.OpenAI(api_key=emu.api_key, base_url=emu.base_url, max_retries=0)
        messages = [{"role": "user", "content": "hi"}]
        for _ in range(2):
            client.chat.completions.create(model=QWEN, messages=messages)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model=QWEN, messages=messages)  # type: ignore[arg-type]
        assert info.value.body == {
            "message": "Request was rejected due to rate limiting. If you want more, please "
            "contact contact@siliconflow.cn. Details:RPM limit reached.",
            "data": None,
        }
        assert not any(h.lower().startswith("x-ratelimit") for h in info.value.response.headers)
        # Another model has its own window.
        client.chat.completions.create(model="Qwen/Qwen2.5-VL-7B-Instruct", messages=messages)  # type: ignore[arg-type]
        big = [{"role": "user", "content": "x" * 8_000}]  # about 2,000 prompt tokens
        with pytest.raises(openai.RateLimitError, match="TPM limit reached"):
            client.chat.completions.create(model="Qwen/Qwen2.5-VL-32B-Instruct", messages=big)  # type: ignore[arg-type]
        stats = emu.rate_stats()
        assert (stats[QWEN].accepted, stats[QWEN].refused_rpm, stats[QWEN].peak_requests) == (
            2,
            1,
            3,
        )
        assert stats["Qwen/Qwen2.5-VL-32B-Instruct"].refused_tpm == 1
        assert [r.status for r in emu.requests] == [200, 200, 429, 200, 429]
        emu.clear()
        assert emu.rate_stats() == {}


def test_the_estimate_reads_sizes_from_headers_even_behind_a_big_exif_block() -> None:
    import base64

    from siliconvision.tokens import estimate_prompt_tokens

    buffer = io.BytesIO()
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + b"\x00" * 64_000  # ~64 KB before the SOF
    Image.new("RGB", (1024, 1024), (9, 9, 9)).save(buffer, "JPEG", exif=exif)
    data = buffer.getvalue()
    assert data.find(b"\xff\xc0") > 60_000  # the size comes after the first 48 KiB
    uri = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    part = {"type": "image_url", "image_url": {"url": uri, "detail": "high"}}
    messages = [{"role": "user", "content": [part, {"type": "text", "text": "x"}]}]
    assert estimate_prompt_tokens(messages, model=QWEN) == 4 + 1 + 1369  # 1036x1036 kept


def test_the_core_never_imports_ray() -> None:
    import subprocess
    import sys

    code = (
        "import sys, siliconvision, siliconvision.client, siliconvision.captions, "
        "siliconvision.cli, siliconvision.ratelimit, siliconvision.testing\n"
        "from siliconvision import RateLimits, SiliconVisionClient, caption_key\n"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
