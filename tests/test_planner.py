"""The planner: intervals follow account size and priority, and fit the budget."""

from __future__ import annotations

from exporter.api.endpoints import ENDPOINTS
from exporter.polling.plan import Demand, make_plan


def demands(pages: dict[str, float]) -> list[Demand]:
    return [Demand(n, e.tier, e.default_interval, pages.get(n, 1)) for n, e in ENDPOINTS.items()]


def test_small_account_runs_at_the_configured_intervals() -> None:
    plan = make_plan(demands({}), 900, 0.1)
    assert plan.stretched == frozenset()
    assert plan.intervals["rbl_listings"] == 60
    assert plan.requests_per_hour < 810


def test_tight_budget_stretches_inventory_before_alerting_data() -> None:
    plan = make_plan(demands({"rbl_hosts": 200, "cert_monitors": 50}), 900, 0.1)
    assert plan.intervals["rbl_listings"] == 60  # alerting stays at its floor
    assert plan.intervals["cert_errors"] == 60
    assert "rbl_hosts" in plan.stretched
    assert plan.requests_per_hour <= 810 + 1e-6


def test_huge_account_keeps_listings_fresh_and_spreads_inventory_over_hours() -> None:
    """100,000 hosts = 1,000 pages: a full pass cannot fit an hour, listings still refresh."""
    plan = make_plan(
        demands({"rbl_hosts": 1000, "rbl_listings": 50, "cert_monitors": 50, "cert_errors": 7}), 900, 0.1
    )
    assert plan.requests_per_hour <= 810 + 1e-6
    assert plan.intervals["rbl_hosts"] > 3600  # spread over several hours
    assert plan.intervals["rbl_listings"] < 600  # still minutes, not hours
    alerting = plan.hourly["rbl_listings"] + plan.hourly["cert_errors"]
    assert alerting >= 0.7 * 810 - 1e-6  # alerting keeps its share
    assert plan.hourly["rbl_hosts"] > 0 and plan.hourly["rbl_profiles"] > 0


def test_secondary_inventory_is_stretched_first() -> None:
    plan = make_plan(demands({"rbl_sources": 200, "contacts": 200, "rbl_hosts": 5}), 150, 0.1)
    assert plan.intervals["rbl_hosts"] == ENDPOINTS["rbl_hosts"].default_interval
    assert "rbl_sources" in plan.stretched and "contacts" in plan.stretched


def test_plan_never_exceeds_the_available_budget() -> None:
    for budget in (50, 200, 900):
        for size in (1, 10, 100, 1000):
            plan = make_plan(demands(dict.fromkeys(ENDPOINTS, size)), budget, 0.2)
            assert plan.requests_per_hour <= budget * 0.8 + 1e-6
