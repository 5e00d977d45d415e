"""Shared test material for the status page (not a test module): records and stores to serve it
from, the real web app over them, and a reader of the served HTML. No I/O beyond memory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

from exporter.api.ratelimit import RateLimit
from exporter.api.records import CertError, Host, Monitor
from exporter.clock import DAY
from exporter.metrics.selfmetrics import Live
from exporter.polling.ledger import Ledger
from exporter.polling.plan import Plan
from exporter.state.overlay import WebhookState
from exporter.state.snapshot import Health, Snapshot
from exporter.state.store import StateStore
from exporter.web.routes import ServerParts, build_app
from tests.helpers.metrics import INTERVALS, NOW, scraper_for

BUDGET = 3600


def host(ident: str, *, listed: bool = False, rbls: tuple[str, ...] = (), first: float | None = None) -> Host:
    """A host named after its id; a listed one is listed on `rbls` since `first`."""
    return Host(
        ident,
        f"{ident}.example",
        f"name-{ident}",
        "domain",
        "RP1",
        False,
        listed,
        len(rbls),
        rbls,
        NOW - 60,
        first,
    )


def monitor(ident: str, days: float | None, *, paused: bool = False, name: str = "") -> Monitor:
    """A monitor whose certificate expires in `days` days from NOW (None: expiry unknown)."""
    not_after = None if days is None else NOW + days * DAY
    return Monitor(
        ident, name or f"cert-{ident}", f"{ident}.example", "https", "443", "CP1", paused, not_after, None
    )


def snapshots(
    hosts: Iterable[Host] = (), monitors: Iterable[Monitor] = (), errors: Iterable[CertError] = ()
) -> list[Snapshot]:
    """The four polled snapshots, fetched 10 s before NOW (the listings hold the listed hosts)."""
    hosts = list(hosts)
    items: dict[str, Mapping[str, Any]] = {
        "rbl_hosts": {h.id: h for h in hosts},
        "rbl_listings": {h.id: h for h in hosts if h.listed},
        "cert_monitors": {m.id: m for m in monitors},
        "cert_errors": {e.id: e for e in errors},
    }
    return [Snapshot(c, objs, NOW - 10, NOW - 10) for c, objs in items.items()]


def status_app(store: StateStore, *, used: int = 3) -> web.Application:
    """The real main listener's app over `store` at NOW: `used` requests in the last hour of a
    budget of BUDGET, a plan needing 480 requests an hour, each collector polled 5 s ago."""
    ledger = Ledger(BUDGET, 10.0)
    ledger.observe(RateLimit(((1000, 3600),), 900, NOW + 600, NOW))
    for i in range(used):
        ledger.record(NOW - 1 - i)
    plan = Plan(INTERVALS, 480.0, float(BUDGET), frozenset(), dict.fromkeys(INTERVALS, 60.0))
    live = Live(store, ledger, plan, INTERVALS, dict.fromkeys(INTERVALS, 1))
    scraper = scraper_for(store)
    for collector in INTERVALS:
        store.set_health(collector, Health(True, NOW - 5, 0.25))
    store.set_health("cert_errors", Health(False, NOW - 600, 0.25, "timeout"))

    async def reload() -> list[str]:
        return []

    return build_app(ServerParts(scraper, store, live, reload, lambda: NOW))


def store_of(snaps: Iterable[Snapshot], webhooks: WebhookState | None = None) -> StateStore:
    return StateStore(snaps, webhooks)


class Page(HTMLParser):
    """A served page as a browser reads it: the text of each table's body rows (by table id),
    every link's href with its text, and the text of each element with an id."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: dict[str, list[str]] = {}
        self.links: list[tuple[str, str]] = []
        self.by_id: dict[str, str] = {}
        self.scripts: list[str] = []
        self._table: str | None = None
        self._open: list[tuple[str, str | None]] = []  # (tag, id) of open elements
        self._href: str | None = None
        self._texts: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            self._table = found.get("id")
            self.rows.setdefault(self._table or "", [])
        if tag == "tr" and self._table is not None and self._open and self._open[-1][0] == "tbody":
            self.rows[self._table].append("")
        if tag == "a":
            self._href, self._texts = found.get("href") or "", []
        if tag == "script":
            self.scripts.append("")
        if found.get("id"):
            self.by_id[found["id"] or ""] = ""
        if tag not in ("meta", "br"):
            self._open.append((tag, found.get("id")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._texts)))
            self._href = None
        if tag == "table":
            self._table = None
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1][0] == "script":
            self.scripts[-1] += data
            return
        for _, ident in self._open:
            if ident:
                self.by_id[ident] += data
        if self._href is not None:
            self._texts.append(data)
        if self._table is not None and self.rows[self._table] and any(t == "tbody" for t, _ in self._open):
            self.rows[self._table][-1] += data + " | "
