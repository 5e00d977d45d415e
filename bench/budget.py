"""Benchmark: requests per hour and freshness over simulated days, by account size.

Runs the real scheduler against the in-process simulator with a fake clock (no network, no
sleeping) and reports, per account size, what the plan promised (requests per hour, the listings
and hosts intervals) and what was spent: requests in all, on average per hour and at most in any
rolling hour, and the gaps between refreshes of the RBL listings. Each size has a wall-clock
limit (--wall-limit); a run that overruns it fails (exit status 1) with a message naming the size.
The fake clock makes each figure deterministic: one run per size is the figure, no spread. Results
go to <out>/budget.json. No network; the only I/O is that file.

    python -m bench.budget [--hours 24] [--sizes 20,5000,100000] [--wall-limit 1800] [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import structlog

from tests.helpers.rig import FakeClock, make_rig_factory
from tests.helpers.windows import max_in_any_window

RESULTS = Path(__file__).parent / "results"
SECONDS_PER_HOUR = 3600.0
HOSTS_PER_MONITOR = 20  # one certificate monitor per this many RBL hosts, as on the accounts we model
MIN_MONITORS = 10
DEFAULT_WALL_LIMIT = 1800.0  # wall-clock seconds one account size may take


class Overran(Exception):
    """A simulated run took longer in wall-clock time than its limit."""


def monitors_for(hosts: int) -> int:
    return max(MIN_MONITORS, hosts // HOSTS_PER_MONITOR)


async def one(hosts: int, hours: float, wall_limit: float) -> dict[str, Any]:
    """Run `hours` simulated hours on an account of `hosts` hosts: what was planned and spent."""
    clock = FakeClock()
    rig = make_rig_factory(clock)(hosts=hosts, monitors=monitors_for(hosts))
    refreshes: list[float] = []

    def on_change() -> None:
        snap = rig.store.snapshot("rbl_listings")
        if snap is not None and (not refreshes or refreshes[-1] != snap.confirmed_at):
            refreshes.append(snap.confirmed_at)

    rig.store.on_change = on_change
    began, wall = clock.now, time.perf_counter()
    try:
        async with asyncio.timeout(wall_limit):  # the fake clock yields on every sleep
            await rig.run_for(hours * SECONDS_PER_HOUR)
    except TimeoutError as err:
        raise Overran(
            f"{hours:g} simulated hours on {hosts} hosts did not finish within {wall_limit:g} s "
            f"(reached simulated hour {(clock.now - began) / SECONDS_PER_HOUR:.1f})"
        ) from err
    wall = time.perf_counter() - wall
    plan = rig.scheduler.plan
    if plan is None:
        raise Overran(f"the scheduler made no plan in {hours:g} simulated hours on {hosts} hosts")
    gaps = sorted(b - a for a, b in itertools.pairwise(refreshes))
    return {
        "hosts": hosts,
        "monitors": monitors_for(hosts),
        "simulated_hours": hours,
        "requests": len(rig.api.accepted),
        "requests_per_hour_avg": round(len(rig.api.accepted) / hours, 1),
        "max_requests_in_any_rolling_hour": max_in_any_window(rig.api.accepted),
        "planned_requests_per_hour": round(plan.requests_per_hour, 1),
        "listings_interval_s": round(plan.intervals["rbl_listings"]),
        "listings_refresh_gap_p50_s": round(gaps[len(gaps) // 2]) if gaps else None,
        "listings_refresh_gap_max_s": round(gaps[-1]) if gaps else None,
        "hosts_interval_s": round(plan.intervals["rbl_hosts"]),
        "wall_seconds": round(wall, 1),
    }


async def main(argv: list[str] | None = None) -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    p = argparse.ArgumentParser(prog="python -m bench.budget", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours per account size")
    p.add_argument("--sizes", default="20,5000,100000", help="account sizes in hosts, comma-separated")
    p.add_argument(
        "--wall-limit",
        type=float,
        default=DEFAULT_WALL_LIMIT,
        help="wall-clock seconds each account size may take",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="directory of budget.json")
    args = p.parse_args(argv)
    try:
        results = [await one(int(n), args.hours, args.wall_limit) for n in args.sizes.split(",")]
    except Overran as err:
        print(f"bench.budget: {err}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "budget.json").write_text(json.dumps(results, indent=2))
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
