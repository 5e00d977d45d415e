"""Shared test material (not a test module): a state in which every metric of the contract has
at least one series, and the scrape of it through the real Scraper (no I/O beyond memory)."""

from __future__ import annotations

import asyncio

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.samples import Sample

from exporter.api.endpoints import COLLECTORS
from exporter.api.ratelimit import RateLimit
from exporter.api.records import CertError, Host, Item, Monitor
from exporter.clock import Clock
from exporter.metrics.selfmetrics import Live, Telemetry
from exporter.metrics.serve import Scraper
from exporter.polling.ledger import Ledger
from exporter.polling.plan import Plan
from exporter.state.overlay import Agent, Hetrix, WebhookState
from exporter.state.snapshot import Health, Snapshot
from exporter.state.store import StateStore
from tests.helpers.rig import FakeClock

NOW = 1_790_000_000.0
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
INTERVALS = dict.fromkeys(COLLECTORS, 60.0)
MAX_AGES = dict.fromkeys(COLLECTORS, 3600.0)


def full_snapshots(now: float = NOW) -> dict[str, Snapshot]:
    """One listed host (with a check time and a listing date), one monitor with an expiry date
    and an error, and one object of each inventory kind: every polled family has a series."""
    listed = Host("HT1", "192.0.2.1", "mx", "ip", "RP1", False, True, 1, ("PSBL",), now - 100, now - 3600)
    monitor = Monitor("CM1", "shop", "shop.example", "https", "443", "CP1", False, now + 86400, None)
    items: dict[str, dict[str, object]] = {
        "rbl_hosts": {"HT1": listed},
        "rbl_listings": {"HT1": listed},
        "cert_monitors": {"CM1": monitor},
        "cert_errors": {"CE1": CertError("CE1", "CM1", "connection")},
        "rbl_profiles": {"RP1": Item("RP1", "Default", "", False, interval=3600.0, default=True)},
        "cert_profiles": {
            "CP1": Item(
                "CP1", "Public", "", False, warning_days=30.0, alerts_on=("expiration",), default=True
            )
        },
        "rbl_sources": {"RS1": Item("RS1", "Spamhaus ZEN", "rbl", False)},
        "contacts": {"CO1": Item("CO1", "", "email", False, contact_group=",CG1,", confirmed=True)},
        "contact_groups": {"CG1": Item("CG1", "Ops", "", False, default=True, members=("CO1",))},
    }
    return {c: Snapshot(c, objs, now - 10, now - 10) for c, objs in items.items()}


def full_webhooks(now: float = NOW) -> WebhookState:
    """Webhook-only state: a certificate change of the known monitor, an agent, a balance alert,
    event counts and a listed HetrixTools monitor."""
    return WebhookState(
        cert_changes={"CM1": (1, now - 50)},
        agents={"AG1": Agent("edge", True, ("i-1",), now - 40, now - 40)},
        balance=12.5,
        balance_threshold=10.0,
        events={"cert.changed": 1},
        last_event={"cert.changed": now - 50},
        hetrix={"192.0.2.9": Hetrix("edge", 1, ("b.example",), now - 30)},
    )


def full_telemetry(store: StateStore, now: float = NOW) -> Telemetry:
    """Self-metrics with every family present: each collector polled, a plan, rate-limit
    headers seen, and each counter and the histogram moved once."""
    ledger = Ledger(3600, 10.0)
    ledger.observe(RateLimit(((1000, 3600),), 900, now + 600, now))
    ledger.record(now - 1)
    for collector in COLLECTORS:
        store.set_health(collector, Health(True, now - 5, 0.25))
    plan = Plan(INTERVALS, 480.0, 3600.0, frozenset(), dict.fromkeys(COLLECTORS, 60.0))
    live = Live(store, ledger, plan, INTERVALS, dict.fromkeys(COLLECTORS, 1), True, now - 60)
    telemetry = Telemetry(live, lambda: now)
    telemetry.requests.labels("/rbl/hosts", "200").inc()
    telemetry.latency.labels("/rbl/hosts").observe(0.2)
    telemetry.failures.labels("rbl_hosts", "timeout").inc()
    telemetry.parse_warning("host", "name")
    telemetry.webhook_request("generatorlabs")
    telemetry.webhook_rejection("generatorlabs", "signature")
    return telemetry


class StillClock:
    """A clock whose time stands still; sleeping only yields to the event loop. Renders are
    then started by changes alone, never by a minute passing."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


def scraper_for(
    store: StateStore, now: float = NOW, per_host: str = "all", clock: Clock | None = None
) -> Scraper:
    """The real scrape path over `store`, with self-metrics and exposition.per_host `per_host`."""
    telemetry = full_telemetry(store, now)
    return Scraper(
        clock if clock is not None else FakeClock(now),
        store,
        telemetry,
        lambda: dict(INTERVALS),
        lambda: dict(MAX_AGES),
        asyncio.Event(),
        per_host=per_host,
    )


def full_scraper(now: float = NOW, per_host: str = "all") -> Scraper:
    """The real scrape path over the full state."""
    return scraper_for(StateStore(full_snapshots(now).values(), full_webhooks(now)), now, per_host)


def scrape(scraper: Scraper, openmetrics: bool) -> str:
    """One uncompressed scrape, as text."""
    return b"".join(scraper.expose(OPENMETRICS if openmetrics else "", "").parts).decode("utf-8")


def families(text: str, openmetrics: bool) -> dict[str, tuple[str, list[Sample]]]:
    """Parsed exposition: family name -> (type, samples), with the reference parsers."""
    parsed = parse_om(text) if openmetrics else parse_text(text)  # type: ignore[no-untyped-call]
    return {f.name: (f.type, list(f.samples)) for f in parsed}
