"""``SiliconVision(rate_limits=...)``: the field reaches the core client, so chat, complete
and streams wait for their reservations and settle them with the real usage."""

from __future__ import annotations

from collections.abc import Callable

from llama_index.core.llms import ChatMessage

from llama_index_siliconvision import SiliconVision
from siliconvision import RateLimits
from siliconvision.testing import LocalSiliconCloud


async def test_requests_go_through_the_shared_limits(
    emu: LocalSiliconCloud, make_llm: Callable[..., SiliconVision]
) -> None:
    limits = RateLimits(rpm=6000, tpm=1_000_000)
    llm = make_llm(rate_limits=limits)
    assert llm.client.rate_limits is limits
    llm.chat([ChatMessage(role="user", content="Hi")])
    llm.complete("Hello")
    "".join(r.delta or "" for r in llm.stream_complete("Stream"))
    await llm.achat([ChatMessage(role="user", content="Async")])
    requests, tokens = limits.usage()
    assert requests == 4 == len(emu.requests) and tokens > 0
    assert limits._in_flight == {}
    assert "rate_limits" not in llm.to_dict()  # settings with state are not serialized
