"""``ChatSiliconVision(rate_limits=...)``: the field reaches the core client, so every
request of the model (invoke, stream, batch) waits for its reservation and settles it."""

from __future__ import annotations

import pickle

from langchain_core.messages import HumanMessage

from langchain_siliconvision import ChatSiliconVision
from siliconvision import RateLimits
from siliconvision.testing import LocalSiliconCloud


def test_requests_of_the_model_go_through_the_shared_limits(emu: LocalSiliconCloud) -> None:
    limits = RateLimits(rpm=6000, tpm=1_000_000)
    llm = ChatSiliconVision(api_key=emu.api_key, base_url=emu.base_url, rate_limits=limits)
    assert llm.client.rate_limits is limits
    answer = llm.invoke([HumanMessage(content="Hi")])
    chunks = list(llm.stream("Hello"))
    llm.batch(["a", "b"])
    assert answer.usage_metadata is not None
    requests, tokens = limits.usage()
    assert requests == 4 == len(emu.requests)
    assert tokens >= answer.usage_metadata["total_tokens"] and chunks
    assert limits._in_flight == {}  # every reservation settled
    # The same limits shared by a second model: one budget.
    other = ChatSiliconVision(
        api_key=emu.api_key, base_url=emu.base_url, model="Qwen/Qwen2.5-VL-7B-Instruct",
        rate_limits=limits,
    )  # fmt: skip
    other.invoke("x")
    assert limits.usage()[0] == 5
    # A pickled model carries the limits' settings, not their state (nor the key).
    copy = pickle.loads(pickle.dumps(llm))
    assert copy.rate_limits is not None and copy.rate_limits.config() == limits.config()
    assert copy.rate_limits.usage()[0] == 0
