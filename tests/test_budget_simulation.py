"""The budget proof: simulated hours against the simulator at three account sizes, with three
429s, 5xx, malformed bodies and timeouts injected. No rolling hour over budget, and listings
refreshed at the interval the plan promises. The smallest and the largest account run a whole
day; the middle one runs 8 hours (its listings refresh every minute, so 8 hours already give
some 450 refreshes to judge, and a day would cost the suite 20 s more). No I/O."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import pytest
import structlog

from exporter.api.envelope import RawResponse
from exporter.demo.simulator.api import Faults
from exporter.polling.scheduler import Transport
from tests.helpers.rig import FakeClock, Rig
from tests.helpers.windows import max_in_any_window

HOUR = 3600.0
BUDGET = 900
FORCED_RETRY_AFTER = 300.0


class Recording:
    """Wraps the transport: the time of every request the exporter sends, answered or not."""

    def __init__(self, clock: FakeClock) -> None:
        self.inner: Transport | None = None
        self.clock = clock
        self.sent: list[float] = []

    def around(self, inner: Transport) -> Transport:
        self.inner = inner
        return self

    async def get(self, path: str, params: Mapping[str, str]) -> RawResponse:
        assert self.inner is not None
        self.sent.append(self.clock.now)
        return await self.inner.get(path, params)


# The large accounts run the same code paths as the small one, 20x to 5,000x more often: they are
# left out of coverage measurement (pytest-cov's no_cover), which would triple their time.
LARGE = pytest.mark.no_cover
# The forced 429s fall at these fractions of the run (3 h, 10.5 h and 17 h into a day).
RATE_LIMITED_AT = (3 / 24, 10.5 / 24, 17 / 24)


@pytest.mark.parametrize(
    ("hosts", "monitors", "hours"),
    [
        (20, 10, 24),
        pytest.param(5_000, 500, 8, marks=LARGE),
        pytest.param(100_000, 5_000, 24, marks=LARGE),
    ],
)
async def test_hours_within_budget_with_fresh_listings(
    make_rig: Callable[..., Rig], clock: FakeClock, hosts: int, monitors: int, hours: int
) -> None:
    start = 1_790_000_000.0
    faults = Faults(
        error_rate=0.01,
        body_error_rate=0.003,
        malformed_rate=0.003,
        timeout_rate=0.002,
        forced_retry_after=FORCED_RETRY_AFTER,
        rate_limit_at=[start + f * hours * HOUR for f in RATE_LIMITED_AT],
    )
    recording = Recording(clock)
    rig = make_rig(hosts=hosts, monitors=monitors, faults=faults, wrap=recording.around)
    refreshes: list[tuple[float, float]] = []  # (listings confirmed at, promised interval then)

    def on_change() -> None:
        snap = rig.store.snapshot("rbl_listings")
        if snap is not None and (not refreshes or refreshes[-1][0] != snap.confirmed_at):
            refreshes.append((snap.confirmed_at, rig.scheduler.interval("rbl_listings")))

    rig.store.on_change = on_change
    with structlog.testing.capture_logs():
        await rig.run_for(hours * HOUR)

    # 1. the budget: no rolling hour over it, and the simulator never had to refuse us
    assert max_in_any_window(recording.sent) <= BUDGET
    assert rig.api.rejected_429 == 3  # exactly the three injected ones
    # 2. the budget is used sensibly: the plan fits, and big accounts do use what they have
    plan = rig.scheduler.plan
    assert plan is not None and plan.requests_per_hour <= BUDGET * 0.9 + 1e-6
    if hosts >= 5_000:
        assert len(recording.sent) > 0.5 * BUDGET * hours
    # 3. listings refreshed at the promised interval (faults and the 429s aside)
    gaps = [(b - a, promised) for (a, promised), (b, _) in itertools.pairwise(refreshes)]
    assert len(gaps) > hours * HOUR / plan.intervals["rbl_listings"] * 0.8
    on_time = [g for g, promised in gaps if g <= promised * 1.1 + 30]
    assert len(on_time) >= 0.95 * len(gaps)
    worst = max(g - promised for g, promised in gaps)
    assert worst <= FORCED_RETRY_AFTER + 120 + 60
    # 4. every collector ends the run with data
    assert set(rig.store.snapshots()) == set(rig.scheduler.max_ages())
    if hosts == 100_000:
        assert plan.intervals["rbl_hosts"] > 3600  # the inventory spreads over hours...
        assert plan.intervals["rbl_listings"] < 900  # ...while listings stay fresh
        assert len(rig.store.snapshot("rbl_hosts").items) == hosts  # type: ignore[union-attr]
