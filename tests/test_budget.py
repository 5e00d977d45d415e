"""The ledger: rolling-hour budget, per-second spacing, 429 back-off, the server's own count."""

from __future__ import annotations

import random

from exporter.api.ratelimit import RateLimit
from exporter.polling.ledger import Ledger
from tests.helpers.windows import max_in_any_window

T0 = 1_000_000.0


def send_greedily(ledger: Ledger, until: float, start: float = T0) -> list[float]:
    """Send whenever the ledger allows, as a busy poller would."""
    sent: list[float] = []
    now = start
    while True:
        now = ledger.next_allowed(now)
        if now >= until:
            return sent
        ledger.record(now)
        sent.append(now)


def test_no_rolling_hour_ever_holds_more_than_the_budget() -> None:
    ledger = Ledger(900, 5.0)
    sent = send_greedily(ledger, T0 + 6 * 3600)
    assert max_in_any_window(sent) == 900
    assert len(sent) >= 900 * 6 - 10  # and the budget is actually used


def test_budget_holds_with_irregular_demand() -> None:
    rng = random.Random(3)  # noqa: S311 - demand pattern, not security
    ledger, now, sent = Ledger(100, 2.0), T0, []
    for _ in range(5000):
        now += rng.expovariate(1 / 20.0)
        at = ledger.next_allowed(now)
        if at <= now:
            ledger.record(now)
            sent.append(now)
    assert max_in_any_window(sent) <= 100


def test_sends_are_spaced_by_the_per_second_cap() -> None:
    ledger = Ledger(1000, 4.0)
    ledger.record(T0)
    assert ledger.next_allowed(T0) == T0 + 0.25


def test_429_stops_everything_until_retry_after() -> None:
    ledger = Ledger(900, 5.0)
    ledger.rate_limited(T0, 120)
    assert ledger.next_allowed(T0 + 1) == T0 + 120
    ledger.rate_limited(T0, 10**6)
    assert ledger.backoff_until == T0 + 3600  # capped at an hour


def test_server_with_nothing_left_means_wait_for_its_reset() -> None:
    ledger = Ledger(900, 5.0)
    ledger.observe(RateLimit(((1000, 3600),), 0, T0 + 600, T0))
    assert ledger.next_allowed(T0) == T0 + 600


def test_lower_server_remaining_spreads_requests_to_fit_its_reset() -> None:
    """Other clients share the API application's quota: fit the 10 left into 600 s."""
    ledger = Ledger(900, 5.0)
    ledger.record(T0)
    ledger.observe(RateLimit(((1000, 3600),), 10, T0 + 600, T0))
    now, sends = T0, []
    for _ in range(9):
        now = ledger.next_allowed(now)
        ledger.record(now)
        sends.append(now)
    assert sends == [T0 + 60 * k for k in range(1, 10)]  # evenly spread, all before the reset
    ledger.record(T0 + 599)
    assert ledger.server_remaining(T0 + 599) == 0
    assert ledger.next_allowed(T0 + 599) == T0 + 600


def test_server_view_expires_at_its_reset() -> None:
    ledger = Ledger(900, 5.0)
    ledger.observe(RateLimit((), 0, T0 + 5, T0))
    assert ledger.server_remaining(T0 + 6) is None
    assert ledger.next_allowed(T0 + 6) == T0 + 6


def test_used_counts_only_the_last_hour() -> None:
    ledger = Ledger(900, 5.0, sent=[T0 - 4000, T0 - 100, T0 - 1])
    assert ledger.used(T0) == 2
    assert ledger.used(T0 + 3600 - 100) == 1  # a send leaves the window an hour after it
    assert ledger.used(T0 + 3600 - 1) == 0


def test_server_with_nothing_left_shows_the_wait_as_backoff() -> None:
    """The self-metric generatorlabs_api_backoff_until_timestamp_seconds reads backoff_until:
    it must show the wait for the server's reset, not 0."""
    ledger = Ledger(900, 5.0)
    ledger.observe(RateLimit(((1000, 3600),), 0, T0 + 600, T0))
    assert ledger.backoff_until == T0 + 600
    ledger.observe(RateLimit(((1000, 3600),), 5, T0 + 900, T0 + 1))  # some left: no new wait
    assert ledger.backoff_until == T0 + 600


def test_no_server_reset_stops_requests_for_more_than_an_hour() -> None:
    ledger = Ledger(900, 5.0)
    ledger.observe(RateLimit((), 0, T0 + 1e11, T0))  # built by hand: not capped by the parser
    assert ledger.next_allowed(T0) == T0 + 3600
    assert ledger.backoff_until == T0 + 3600
    spread = Ledger(900, 5.0)
    spread.record(T0)
    spread.observe(RateLimit((), 10, T0 + 1e11, T0))
    assert spread.next_allowed(T0) <= T0 + 360  # 10 left, spread over at most the hour


def test_a_non_finite_retry_after_waits_the_cap_never_forever() -> None:
    for value, expected in ((float("nan"), 3600.0), (float("inf"), 3600.0), (-5.0, 0.0)):
        ledger = Ledger(900, 5.0)
        ledger.rate_limited(T0, value)
        assert ledger.backoff_until == T0 + expected


def test_each_windows_last_word_is_kept_and_decisions_use_the_latest() -> None:
    ledger = Ledger(per_hour=1000, per_second=10)
    both = ((1000, 3600), (100, 1))
    hourly = RateLimit(both, 900, T0 + 1800, T0)
    ledger.observe(hourly)
    ledger.observe(RateLimit(both, 0, T0 + 2, T0 + 1))  # the per-second window, empty
    assert ledger.by_window[3600] == hourly  # not hidden by the later per-second answer
    assert ledger.by_window[1].remaining == 0
    assert ledger.next_allowed(T0 + 1) >= T0 + 2  # the latest observation still backs off


def test_the_windows_kept_are_bounded_whatever_the_headers_name() -> None:
    ledger = Ledger(per_hour=1000, per_second=10)
    for i in range(1, 50):
        ledger.observe(RateLimit(((1, i),), 1, T0 + i, T0 + i))
    assert 0 < len(ledger.by_window) <= 4
    assert ledger.by_window[49].observed_at == T0 + 49  # the newest stays
