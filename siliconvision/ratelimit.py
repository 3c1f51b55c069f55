"""Client-side rate limits: SiliconCloud's RPM and TPM, held by every request that shares them.

SiliconCloud limits each account per model in requests per minute (RPM) and tokens
per minute (TPM); a request over either gets HTTP 429 whose message names the limit
("...Details:TPM limit reached."), with no rate-limit headers. :class:`RateLimits`
keeps a batch inside both:

- **Reserve, then correct.** Before a request it reserves one request and its
  estimated tokens: the prompt by our token rules
  (:func:`~siliconvision.tokens.estimate_prompt_tokens`) plus the answer's, which is
  ``completion_tokens`` until answers arrive, then the largest of the last 32 answers
  (``max_tokens`` caps it). The real ``usage`` replaces the estimate when the answer
  arrives.
- **Even pacing.** Providers enforce per-minute limits over shorter sub-windows, so
  starts are spread out: at most about ``rpm/60`` requests and ``tpm/60`` tokens
  start in any one second, beyond a burst of ``burst`` seconds' worth (a generic cell
  rate algorithm: every request gets the next free start time, in arrival order).
- **The window holds.** Every request counts until ``window`` seconds after its
  answer arrived (the server counted it at some moment before that), and a request
  starts only when its reservation fits in what the window still allows; requests
  still in flight count with their estimate. So the server's count over any window
  stays within the limits, however long the requests take.
- **A 429 slows everyone.** A 429 naming a limit pauses every request of that kind
  sharing the object for ``cooldown`` seconds and cuts its pace by 20%, which
  recovers linearly over one window (another client on the same account, or limits
  set higher than the account's, then cost a few 429s, not a storm).

One :class:`RateLimits` object is one budget: share it between the clients (threads,
asyncio tasks) that send to the same account and model. It is thread- and
asyncio-safe (the waits are ``time.sleep`` or ``asyncio.sleep`` outside its lock).
Across processes and machines, :func:`siliconvision.ray_data.caption_dataset` serves
one from a named Ray actor. A pickled copy is a fresh, independent budget.

Example:
    >>> limits = RateLimits(rpm=1000, tpm=80_000)
    >>> client = SiliconVisionClient(rate_limits=limits)  # doctest: +SKIP
    >>> grant = limits.try_reserve(1500, now=0.0)  # what acquire() does, without sleeping
    >>> grant.granted, grant.wait
    (True, 0.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .client import SiliconVisionClient
    from .wire import Usage

__all__ = [
    "DEFAULT_COMPLETION_TOKENS",
    "Grant",
    "Permit",
    "RateLimiter",
    "RateLimits",
    "asend_limited",
    "estimate_request_tokens",
    "limits_named",
    "send_limited",
]

DEFAULT_COMPLETION_TOKENS: Final = 256
"""Completion tokens reserved for a request without ``max_tokens`` (a caption is ~100)."""

_POLL: Final = 0.02  # seconds between tries while requests in flight fill the window
_MIN_SCALE: Final = 0.2
_CUT: Final = 0.8
_LIMIT_NAME: Final = re.compile(r"\b([RTI]P[MHD])\b", re.IGNORECASE)


def limits_named(message: str) -> frozenset[str]:
    """Which of ``"requests"``/``"tokens"`` a 429's message names (empty: it names none).

    >>> sorted(limits_named("Request was rejected due to rate limiting. Details:TPM limit reached"))
    ['tokens']
    >>> sorted(limits_named("Details:RPM limit reached."))
    ['requests']
    """
    kinds = set()
    for name in _LIMIT_NAME.findall(message or ""):
        kinds.add("tokens" if name.upper().startswith("T") else "requests")
    return frozenset(kinds)


def _check_limit(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number > 0 or None, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0 or None, got {value!r}")
    return float(value)


def _check_seconds(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Grant:
    """The answer of :meth:`RateLimits.try_reserve`: ``granted`` with a reservation
    ``id`` that may start in ``wait`` seconds, or not granted (requests in flight fill
    the window): try again in ``wait`` seconds."""

    id: int | None
    wait: float

    @property
    def granted(self) -> bool:
        return self.id is not None


class _Dimension:
    """Pacing and window state of one limit (requests or tokens)."""

    __slots__ = ("blocked_until", "cap", "penalized_at", "rate", "scale_at_penalty", "tat")

    def __init__(self, per_minute: float, window: float) -> None:
        self.rate = per_minute / 60.0  # units per second
        self.cap = per_minute * window / 60.0  # units per window
        self.tat = -math.inf  # the generic cell rate algorithm's "theoretical arrival time"
        self.blocked_until = -math.inf
        self.scale_at_penalty = 1.0
        self.penalized_at = -math.inf

    def scale(self, now: float, window: float) -> float:
        """1.0, or less after a 429 (recovering linearly to 1.0 over one window)."""
        if self.scale_at_penalty >= 1.0:
            return 1.0
        recovered = (now - self.penalized_at) / window
        if recovered >= 1.0:
            self.scale_at_penalty = 1.0
            return 1.0
        return self.scale_at_penalty + (1.0 - self.scale_at_penalty) * max(0.0, recovered)


@dataclass
class _Entry:
    requests: int
    tokens: float
    expires: float = math.inf


class RateLimits:
    """A shared RPM/TPM budget for one account and model (see the module doc).

    ``rpm``/``tpm``: the limits (``None``: not limited). ``completion_tokens``: what a
    request reserves for its answer until answers have been seen (then the largest of
    the last 32; ``max_tokens`` caps it). ``burst``: seconds' worth
    of the rate that may start at once after a pause. ``window``: the seconds over
    which the server counts (60 for per-minute limits). ``cooldown``: the pause after
    a 429 naming a limit.

    >>> limits = RateLimits(rpm=600)
    >>> [round(limits.try_reserve(10, now=0.0).wait, 2) for _ in range(4)]
    [0.0, 0.0, 0.0, 0.05]
    """

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        completion_tokens: int = DEFAULT_COMPLETION_TOKENS,
        burst: float = 0.25,
        window: float = 60.0,
        cooldown: float = 1.0,
    ) -> None:
        self.rpm = _check_limit("rpm", rpm)
        self.tpm = _check_limit("tpm", tpm)
        if self.rpm is None and self.tpm is None:
            raise ValueError("RateLimits needs rpm, tpm or both")
        if (
            isinstance(completion_tokens, bool)
            or not isinstance(completion_tokens, int)
            or completion_tokens < 0
        ):
            raise ValueError(f"completion_tokens must be an int >= 0, got {completion_tokens!r}")
        self.completion_tokens = completion_tokens
        self._answers = _AnswerSizes(completion_tokens)
        self.burst = _check_seconds("burst", burst)
        self.window = _check_seconds("window", window, positive=True)
        self.cooldown = _check_seconds("cooldown", cooldown)
        self._lock = threading.Lock()
        self._requests = _Dimension(self.rpm, self.window) if self.rpm else None
        self._tokens = _Dimension(self.tpm, self.window) if self.tpm else None
        self._ids = itertools.count(1)
        self._in_flight: dict[int, _Entry] = {}
        self._settled: deque[_Entry] = deque()  # in order of expiry
        self._used = [0, 0.0]  # requests, tokens: in flight + settled and not expired
        self.rate_limited_count = 0
        """429s reported by :meth:`rate_limited`."""

    def __repr__(self) -> str:
        return (
            f"RateLimits(rpm={_num(self.rpm)}, tpm={_num(self.tpm)}, "
            f"completion_tokens={self.completion_tokens}, burst={self.burst:g}, "
            f"window={self.window:g}, cooldown={self.cooldown:g})"
        )

    def config(self) -> dict[str, Any]:
        """The constructor's arguments (what a copy is built from)."""
        return {
            "rpm": self.rpm,
            "tpm": self.tpm,
            "completion_tokens": self.completion_tokens,
            "burst": self.burst,
            "window": self.window,
            "cooldown": self.cooldown,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.config(),))

    # ------------------------------------------------------------------ the state machine

    def try_reserve(self, tokens: float, *, now: float | None = None) -> Grant:
        """Reserve one request and ``tokens`` at the earliest start the limits allow.

        Never blocks: the :class:`Grant` says how long to wait. A granted reservation
        counts from now on; settle it with :meth:`settle` (the real token count) when
        its answer arrives, or it counts with its estimate forever.
        """
        tokens = max(0.0, float(tokens))
        with self._lock:
            now = time.monotonic() if now is None else now
            self._expire(now)
            start = now
            dims = self._dims()
            for dim in dims:
                start = max(start, dim.blocked_until, dim.tat - self.burst)
            fitting = self._window_start(start, tokens, now)
            if fitting is None:
                return Grant(None, _POLL)
            start = fitting
            for dim, cost in self._costs(tokens):
                rate = dim.rate * dim.scale(now, self.window)
                dim.tat = max(dim.tat, start) + cost / rate
            grant_id = next(self._ids)
            self._in_flight[grant_id] = _Entry(1, tokens)
            self._used[0] += 1
            self._used[1] += tokens
            return Grant(grant_id, start - now)

    def completion_estimate(self, max_tokens: int | None = None) -> int:
        """The tokens to reserve for an answer (see ``completion_tokens``)."""
        return self._answers.estimate(max_tokens)

    def settle(
        self,
        grant_id: int,
        tokens: float | None,
        completion: int | None = None,
        *,
        now: float | None = None,
    ) -> None:
        """The answer of reservation ``grant_id`` arrived: it used ``tokens`` (``None``:
        unknown, keep the estimate), ``completion`` of them for the answer. It counts
        until ``window`` seconds from now. Unknown or already settled ids are ignored."""
        if completion is not None:
            self._answers.observe(completion)
        with self._lock:
            entry = self._in_flight.pop(grant_id, None)
            if entry is None:
                return
            now = time.monotonic() if now is None else now
            if tokens is not None:
                actual = max(0.0, float(tokens))
                if self._tokens is not None and actual != entry.tokens:
                    rate = self._tokens.rate * self._tokens.scale(now, self.window)
                    self._tokens.tat += (actual - entry.tokens) / rate
                self._used[1] += actual - entry.tokens
                entry.tokens = actual
            entry.expires = now + self.window
            self._settled.append(entry)

    def rate_limited(self, message: str = "", *, now: float | None = None) -> None:
        """The server answered 429 with ``message``: pause and slow the limit it names
        (every limit set here when it names none of them)."""
        named = limits_named(message)
        with self._lock:
            now = time.monotonic() if now is None else now
            self.rate_limited_count += 1
            dims = []
            if self._requests is not None and (not named or "requests" in named):
                dims.append(self._requests)
            if self._tokens is not None and (not named or "tokens" in named):
                dims.append(self._tokens)
            if not dims:  # it names a limit not set here: slow what is set
                dims = self._dims()
            for dim in dims:
                if now >= dim.blocked_until:  # 429s of one burst count once
                    dim.scale_at_penalty = max(_MIN_SCALE, dim.scale(now, self.window) * _CUT)
                    dim.penalized_at = now
                dim.blocked_until = max(dim.blocked_until, now + self.cooldown)

    def usage(self, *, now: float | None = None) -> tuple[int, float]:
        """(requests, tokens) counted in the window right now (in flight included)."""
        with self._lock:
            self._expire(time.monotonic() if now is None else now)
            return int(self._used[0]), float(self._used[1])

    def _dims(self) -> list[_Dimension]:
        return [d for d in (self._requests, self._tokens) if d is not None]

    def _costs(self, tokens: float) -> list[tuple[_Dimension, float]]:
        costs: list[tuple[_Dimension, float]] = []
        if self._requests is not None:
            costs.append((self._requests, 1.0))
        if self._tokens is not None:
            costs.append((self._tokens, tokens))
        return costs

    def _expire(self, now: float) -> None:
        settled = self._settled
        while settled and settled[0].expires <= now:
            entry = settled.popleft()
            self._used[0] -= entry.requests
            self._used[1] -= entry.tokens

    def _fits(self, freed: tuple[int, float], tokens: float, now: float) -> bool:
        for dim, used, cost in (
            (self._requests, self._used[0] - freed[0], 1.0),
            (self._tokens, self._used[1] - freed[1], tokens),
        ):
            if dim is None or used <= 0:  # an empty window takes any one request
                continue
            if used + cost > dim.cap * dim.scale(now, self.window) + 1e-9:
                return False
        return True

    def _window_start(self, start: float, tokens: float, now: float) -> float | None:
        """The earliest time >= ``start`` at which the reservation fits in the window, or
        ``None`` when only answers of requests still in flight can make room."""
        freed_requests, freed_tokens = 0, 0.0
        candidate = start
        for entry in self._settled:
            if entry.expires > candidate:
                if self._fits((freed_requests, freed_tokens), tokens, now):
                    return candidate
                candidate = entry.expires
            freed_requests += entry.requests
            freed_tokens += entry.tokens
        if self._fits((freed_requests, freed_tokens), tokens, now):
            return candidate
        return None

    # ------------------------------------------------------------------ blocking use

    def acquire(self, tokens: float) -> Permit:
        """Wait (``time.sleep``) until a request of ``tokens`` may start; its permit."""
        while True:
            grant = self.try_reserve(tokens)
            if grant.wait > 0:
                time.sleep(grant.wait)
            if grant.id is not None:
                return Permit(self, grant.id)

    async def aacquire(self, tokens: float) -> Permit:
        """The async :meth:`acquire` (``asyncio.sleep``)."""
        while True:
            grant = self.try_reserve(tokens)
            if grant.wait > 0:
                await asyncio.sleep(grant.wait)
            if grant.id is not None:
                return Permit(self, grant.id)


class _AnswerSizes:
    """What an answer costs: a first guess, then the largest of the last answers seen
    (one long answer keeps the estimate high for a while: under-reserving is what risks
    a 429)."""

    def __init__(self, initial: int, keep: int = 32) -> None:
        self._initial = initial
        self._recent: deque[int] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def observe(self, completion_tokens: int) -> None:
        if isinstance(completion_tokens, int) and completion_tokens >= 0:
            with self._lock:
                self._recent.append(completion_tokens)

    def estimate(self, max_tokens: int | None) -> int:
        with self._lock:
            guess = max(self._recent) if self._recent else None
        if max_tokens is not None and max_tokens > 0:
            return max_tokens if guess is None else min(guess, max_tokens)
        return self._initial if guess is None else guess


def _num(value: float | None) -> str:
    return "None" if value is None else f"{value:g}"


def _rebuild(config: Mapping[str, Any]) -> RateLimits:
    return RateLimits(**config)


class _Settles(Protocol):
    def settle(
        self, grant_id: int, tokens: float | None, completion: int | None = None
    ) -> None: ...


class Permit:
    """A granted reservation; :meth:`settle` it with the real usage once (again: no-op).

    A permit dropped unsettled counts with its estimate (settled when collected).
    """

    __slots__ = ("__weakref__", "_id", "_limiter")

    def __init__(self, limiter: _Settles, grant_id: int) -> None:
        self._limiter: _Settles | None = limiter
        self._id = grant_id

    def settle(self, tokens: float | None = None, completion: int | None = None) -> None:
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter.settle(self._id, tokens, completion)

    def settle_usage(self, usage: Usage | None) -> None:
        """Settle with ``usage.total_tokens`` (the estimate when ``usage`` is ``None``)."""
        if usage is None or not usage.total_tokens:
            self.settle(None)
        else:
            self.settle(usage.total_tokens, usage.completion_tokens)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # (interpreter shutdown)
            self.settle(None)


@runtime_checkable
class RateLimiter(Protocol):
    """What :class:`~siliconvision.client.SiliconVisionClient` needs of ``rate_limits``:
    :class:`RateLimits`, or a stand-in for one elsewhere (a Ray actor's proxy)."""

    def completion_estimate(self, max_tokens: int | None = None) -> int: ...

    def acquire(self, tokens: float) -> Permit: ...

    async def aacquire(self, tokens: float) -> Permit: ...

    def rate_limited(self, message: str = "") -> None: ...


# --------------------------------------------------------------------------- the client's path


def estimate_request_tokens(request: Mapping[str, Any], limiter: RateLimiter) -> int:
    """Tokens a :func:`~siliconvision.wire.build_chat_request` result may use: its prompt
    by our token rules plus the limiter's estimate of the answer (capped by
    ``max_tokens``)."""
    from .tokens import estimate_prompt_tokens

    prompt = estimate_prompt_tokens(
        request["messages"], model=request["model"], tools=request.get("tools")
    )
    max_tokens = request.get("max_tokens")
    cap = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None
    return prompt + limiter.completion_estimate(cap)


def _retry_plan(client: SiliconVisionClient, sdk: Any, exc: BaseException) -> bool:
    """Whether the SDK would have retried ``exc`` (429, 408, 409, 5xx, ``x-should-retry``,
    connection errors and time-outs); reports a 429 to the limiter."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429 and client.rate_limits is not None:
            client.rate_limits.rate_limited(str(exc))
        return bool(sdk._should_retry(exc.response))
    return isinstance(exc, openai.APIConnectionError)


def _retry_after(sdk: Any, exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    value = sdk._parse_retry_after_header(response.headers)
    return float(value) if value is not None else None


def send_limited(client: SiliconVisionClient, request: Mapping[str, Any]) -> tuple[Any, Permit]:
    """Send ``request`` under ``client.rate_limits``: each attempt (the first and every
    retry, ``client.max_retries`` of them, backed off as the SDK would) waits for its
    reservation; a 429 slows the limiter. Returns the raw response and the permit to
    settle with the real usage."""
    from .client import retry_delay

    limiter = client.rate_limits
    assert limiter is not None
    estimate = estimate_request_tokens(request, limiter)
    sdk = client.openai
    retries = 0
    while True:
        permit = limiter.acquire(estimate)
        try:
            return sdk.send_chat(request, max_retries=0), permit
        except Exception as exc:
            permit.settle(None)
            if not _retry_plan(client, sdk, exc) or retries >= client.max_retries:
                raise
            delay = retry_delay(
                retries,
                initial=client.retry_initial_delay,
                maximum=client.retry_max_delay,
                retry_after=_retry_after(sdk, exc),
            )
        retries += 1
        time.sleep(delay)


async def asend_limited(
    client: SiliconVisionClient, request: Mapping[str, Any]
) -> tuple[Any, Permit]:
    """The async :func:`send_limited`."""
    from .client import retry_delay

    limiter = client.rate_limits
    assert limiter is not None
    estimate = estimate_request_tokens(request, limiter)
    sdk = await client._aopenai()
    retries = 0
    while True:
        permit = await limiter.aacquire(estimate)
        try:
            return await sdk.send_chat(request, max_retries=0), permit
        except Exception as exc:
            permit.settle(None)
            if not _retry_plan(client, sdk, exc) or retries >= client.max_retries:
                raise
            delay = retry_delay(
                retries,
                initial=client.retry_initial_delay,
                maximum=client.retry_max_delay,
                retry_after=_retry_after(sdk, exc),
            )
        retries += 1
        await asyncio.sleep(delay)
