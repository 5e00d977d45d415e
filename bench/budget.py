"""Benchmark: requests per hour and freshness over simulated days, by account size.

Runs the real scheduler against the simulator with a fake clock (no network, no sleeping) and
reports what the plan promised and what was spent.

    python bench/budget.py [--hours 24] [--sizes 20,5000,100000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import time
from pathlib import Path

import structlog

from tests.conftest import FakeClock, make_rig_factory
from tests.helpers.windows import max_in_any_window


async def one(hosts: int, hours: float) -> dict[str, object]:
    clock = FakeClock()
    rig = make_rig_factory(clock)(hosts=hosts, monitors=max(10, hosts // 20))
    refreshes: list[float] = []

    def on_change() -> None:
        snap = rig.store.snapshot("rbl_listings")
        if snap is not None and (not refreshes or refreshes[-1] != snap.confirmed_at):
            refreshes.append(snap.confirmed_at)

    rig.store.on_change = on_change
    wall = time.perf_counter()
    await rig.run_for(hours * 3600)
    wall = time.perf_counter() - wall
    plan = rig.scheduler.plan
    assert plan is not None
    gaps = sorted(b - a for a, b in itertools.pairwise(refreshes))
    return {
        "hosts": hosts, "monitors": max(10, hosts // 20), "simulated_hours": hours,
        "requests": len(rig.api.accepted),
        "requests_per_hour_avg": round(len(rig.api.accepted) / hours, 1),
        "max_requests_in_any_rolling_hour": max_in_any_window(rig.api.accepted),
        "planned_requests_per_hour": round(plan.requests_per_hour, 1),
        "listings_interval_s": round(plan.intervals["rbl_listings"]),
        "listings_refresh_gap_p50_s": round(gaps[len(gaps) // 2]),
        "listings_refresh_gap_max_s": round(gaps[-1]),
        "hosts_interval_s": round(plan.intervals["rbl_hosts"]),
        "wall_seconds": round(wall, 1),
    }


async def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    p = argparse.ArgumentParser()
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--sizes", default="20,5000,100000")
    args = p.parse_args()
    results = [await one(int(n), args.hours) for n in args.sizes.split(",")]
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "budget.json").write_text(json.dumps(results, indent=2))
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    asyncio.run(main())
