"""Helpers shared by the scenarios."""

from __future__ import annotations

from .._common import Check, Context, ScenarioResult
from .._variants import Variant

__all__ = ["ADAPTERS", "OURS", "PEERS", "classes", "instances", "ratio_check", "within"]

OURS = ("core", "lc_ours", "li_ours")
ADAPTERS = ("lc_ours", "li_ours")
PEERS = ("lc_openai", "lc_siliconflow", "li_openailike")
#: The peer of each adapter in its own framework.
SAME_FRAMEWORK_PEERS = {"lc_ours": ("lc_openai", "lc_siliconflow"), "li_ours": ("li_openailike",)}


def classes(ctx: Context, scenario: str) -> list[type[Variant]]:
    """The available variants that take part in ``scenario``."""
    return [c for c in ctx.variants if c.scenarios is None or scenario in c.scenarios]


def instances(ctx: Context, scenario: str) -> list[Variant]:
    """Fresh, set-up instances of the variants that take part in ``scenario``."""
    out = []
    for cls in classes(ctx, scenario):
        variant = cls()
        variant.setup(ctx.server.base_url, ctx.server.api_key)
        out.append(variant)
    return out


def within(result: ScenarioResult, key: str, metric: str, limit: float, what: str) -> Check:
    """``key``'s ``metric`` is at most ``limit`` x the raw SDK's."""
    row = result.row(key)
    ratio = result.ratio(key, metric)
    label = row.label if row else key
    target = f"{label}: {what} <= {limit:g}x raw SDK"
    if ratio is None:
        return Check(target, None, "not measured")
    return Check(target, ratio <= limit, f"{ratio:.2f}x")


def ratio_check(
    result: ScenarioResult,
    key: str,
    others: tuple[str, ...],
    metric: str,
    what: str,
    limit: float | None = None,
) -> Check:
    """``key``'s ``metric`` is lower than every one of ``others`` (those measured), or
    with ``limit``: at most ``limit`` x the lowest of them."""
    row = result.row(key)
    label = row.label if row else key
    value = result.value(key, metric)
    measured = [o for o in others if isinstance(result.value(o, metric), (int, float))]
    names = ", ".join(r.label for o in others if (r := result.row(o)) is not None) or (
        "peers (not installed)"
    )
    if limit is None:
        target = f"{label}: {what} lower than {names}"
    else:
        target = f"{label}: {what} <= {limit:g}x the best of {names}"
    if not isinstance(value, (int, float)) or not measured:
        return Check(target, None, "peers not installed" if not measured else "not measured")
    worst = min(measured, key=lambda o: result.value(o, metric))
    best_peer = result.value(worst, metric)
    if limit is None:
        passed = all(value < result.value(o, metric) for o in measured)
    else:
        passed = value <= limit * best_peer
    return Check(target, passed, f"{value / best_peer:.2f}x the best of them")
