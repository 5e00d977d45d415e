"""Pure (no I/O, no clock): turn the account's size into polling intervals that fit the hourly request budget.

Each collector costs `cost` requests per run (pages learnt from `total_pages`, plus a count probe
where one is used) and wants to run every `floor` seconds (the configured interval, the fastest
the user wants). Demand is requests/hour = cost * WINDOW / interval (WINDOW: the hour the
budget counts, exporter.polling.ledger).

The budget left after the reserve (kept for retries and webhook-triggered refreshes) is shared out
tier by tier, most important first. A tier takes what it needs but, when the next tiers need the
rest, no more than its share: alerting data (listings, certificate errors) may take 70 %, primary
inventory (hosts, monitors) 80 % of what is left, and secondary inventory the remainder. Inside a
tier every collector is stretched by the same factor. So a tight budget stretches inventory first
and a very large account still gets fresh listings, with its inventory spread over several hours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from exporter.api.endpoints import Tier
from exporter.polling.ledger import WINDOW

TIER_SHARE: Mapping[Tier, float] = MappingProxyType(
    {Tier.ALERTING: 0.7, Tier.INVENTORY: 0.8, Tier.SECONDARY: 1.0}
)
MAX_INTERVAL = 7 * 86400.0  # for a collector granted nothing
# an interval counts as stretched only when longer than its floor by more than float rounding
STRETCH_TOLERANCE = 1.0001


@dataclass(frozen=True, slots=True)
class Demand:
    collector: str
    tier: Tier
    floor: float  # the configured interval: never poll faster than this
    cost: float  # requests per run


@dataclass(frozen=True, slots=True)
class Plan:
    intervals: Mapping[str, float]
    requests_per_hour: float  # planned polling demand at those intervals
    budget_per_hour: float
    stretched: frozenset[str]  # collectors running slower than configured
    hourly: Mapping[str, float]  # planned requests per hour for each collector


def _hourly(cost: float, interval: float) -> float:
    return cost * WINDOW / interval


def make_plan(demands: Sequence[Demand], budget_per_hour: float, reserve: float) -> Plan:
    available = budget_per_hour * (1.0 - reserve)
    wanted = {d.collector: _hourly(d.cost, d.floor) for d in demands}
    tiers = sorted({d.tier for d in demands})
    tier_demand = {t: sum(wanted[d.collector] for d in demands if d.tier == t) for t in tiers}
    left = available
    intervals: dict[str, float] = {}
    for i, tier in enumerate(tiers):
        below = sum(tier_demand[t] for t in tiers[i + 1 :])
        grant = min(tier_demand[tier], max(left * TIER_SHARE[tier], left - below))
        grant = max(grant, 0.0)
        left -= grant
        factor = grant / tier_demand[tier] if tier_demand[tier] > 0 else 1.0
        for d in demands:
            if d.tier != tier:
                continue
            # a zero grant only happens for a tier without demand; keep it finite anyway
            interval = d.floor / factor if factor > 0 else MAX_INTERVAL
            intervals[d.collector] = max(interval, d.floor)
    hourly = {d.collector: _hourly(d.cost, intervals[d.collector]) for d in demands}
    stretched = frozenset(
        d.collector for d in demands if intervals[d.collector] > d.floor * STRETCH_TOLERANCE
    )
    return Plan(
        MappingProxyType(intervals),
        sum(hourly.values()),
        budget_per_hour,
        stretched,
        MappingProxyType(hourly),
    )
