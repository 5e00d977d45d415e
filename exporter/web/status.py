"""Pure, no I/O: the live status page's data (`/` and its JSON twin `/api/v1/status`).

What is listed now (Generator Labs hosts merged from the rbl_hosts and rbl_listings snapshots
with the webhook marks, as the metrics merge them, and HetrixTools monitors), the certificates
expiring soonest, the expired ones and the active certificate errors, the API budget and each
collector's freshness.

Cost: the lists that scale with the account (`Lists`: every listed host sorted, every monitor
with an expiry sorted, every monitor with errors) are built from the immutable snapshots and
copies of the webhook marks (`Inputs`), in a worker thread, at most once per store version and
minute (`StatusCache` in exporter.web.routes); a request only slices them (`document`), so a page
costs O(shown rows) however large the account, and nothing of it runs on the /metrics path.

The JSON document (`document`), every time an epoch in seconds and every age in seconds:

- `version`, `generated_at`, `refresh_seconds`, `links` (metrics, healthy, ready, status);
- `listed`: `total` (listed hosts and monitors), `page`, `pages`, `per_page`, `items`, newest
  listing first: `source` (generatorlabs | hetrixtools), `id`, `host`, `name`, `listings`,
  `rbls` [{`rbl`, `delist`: an http(s) URL or null; HetrixTools gives one, Generator Labs its
  `listed_details[].website` where that is one}], `first_listed` (null when the source does
  not say), `via` (poll | webhook), `as_of`, `age_seconds`, `report` (URL or null);
- `certificates`: `expiring` and `expired` ({`total`, `items`}: `id`, `name`, `hostname`,
  `protocol`, `port`, `expiry_days`, `not_after`, `via`), soonest first and most recently expired
  first; `errors` ({`total`, `items`}: `monitor_id`, `name`, `hostname`, `reasons`, `via`);
  `without_expiry` (active monitors whose expiry could not be read); paused monitors are left out;
- `budget`: `used`, `planned_per_hour`, `limit_per_hour`, `backoff_seconds`, `server_remaining`
  [{`window_seconds`, `remaining`}], `pending_webhooks`;
- `collectors`: [{`name`, `state` (waiting | ok | failing), `error`, `last_success`,
  `age_seconds`, `interval_seconds`, `configured_seconds`, `pages`}].

Every text comes from outside: it is cut to MAX_TEXT characters and lone surrogates become
U+FFFD, so that it always encodes; the HTML escapes it (exporter.web.statuspage).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter import __version__
from exporter.api.fields import http_url
from exporter.metrics.lines import expiry_days, merge_host
from exporter.metrics.render import expiry_now
from exporter.metrics.selfmetrics import Live, remaining_by_window
from exporter.state.overlay import Hetrix, HostMark, MonitorMark
from exporter.state.snapshot import Health, Snapshot

PER_PAGE = 50  # listed hosts per page
MAX_PAGE = 10_000  # a larger ?page= reads as the last page
CERTS_SHOWN = 20  # expiring, expired: the first of each
ERRORS_SHOWN = 50  # monitors with active errors shown
MAX_TEXT = 256  # characters of a name, host or RBL shown (a longer one is cut with "...")
MAX_RBLS = 50  # RBLs shown per listed host (the count says how many in all)
REFRESH_SECONDS = 5  # how often the page fetches the JSON again
GENERATORLABS = "generatorlabs"
HETRIXTOOLS = "hetrixtools"
POLL = "poll"
WEBHOOK = "webhook"
_SURROGATE = re.compile("[\ud800-\udfff]")
_DIGITS = re.compile("[0-9]+")
CertRow = tuple[Any, float, str]  # a monitor, its days to expiry, whence they came (POLL, WEBHOOK)


def shown(value: object) -> str:
    """Text from outside, fit to show: lone surrogates replaced, at most MAX_TEXT characters."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    text = _SURROGATE.sub("\ufffd", text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the lists are built from: the snapshots (never changed once made) and copies of the
    webhook marks taken on the event loop, so that a worker thread may read them."""

    snapshots: Mapping[str, Snapshot]
    host_marks: Mapping[str, HostMark]
    monitor_marks: Mapping[str, MonitorMark]
    hetrix: Mapping[str, Hetrix]
    now: float


@dataclass(frozen=True, slots=True)
class Listed:
    """One listed host or monitor, as built (cheap: its row for the page is made only when shown,
    `row`). `record` is a merged Generator Labs host, or (name, Hetrix) for HetrixTools."""

    first_listed: float | None
    as_of: float | None
    via: str
    record: Any


@dataclass(frozen=True, slots=True)
class Lists:
    """The account-sized lists, sorted once: the listed rows, newest listing first; the expiring
    and expired monitors as (monitor, days to expiry, via); the monitors with errors, by name."""

    listed: list[Listed] = field(default_factory=list)
    expiring: list[CertRow] = field(default_factory=list)
    expired: list[CertRow] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    without_expiry: int = 0


def build(inputs: Inputs) -> Lists:
    """The sorted lists of `inputs` (in a worker thread: it reads only what `inputs` holds)."""
    listed = [*_generatorlabs(inputs), *_hetrixtools(inputs.hetrix)]
    listed.sort(key=_newest_first)
    monitors = inputs.snapshots.get("cert_monitors")
    expiring, expired, without = _expiries(monitors, inputs.monitor_marks, inputs.now)
    errors = _errors(monitors, inputs.snapshots.get("cert_errors"), inputs.monitor_marks)
    return Lists(listed, expiring, expired, errors, without)


# ---- listed hosts ------------------------------------------------------------------------------


def _newest_first(item: Listed) -> float:
    return -(item.first_listed or item.as_of or 0.0)


def _generatorlabs(inputs: Inputs) -> Iterable[Listed]:
    """Every listed host as the metrics merge it (exporter.metrics.lines.merge_host): a host
    that is not listed in the inventory, not seen by the listings pass and not marked by a
    webhook is not listed, so only the others are merged."""
    hosts, listings = inputs.snapshots.get("rbl_hosts"), inputs.snapshots.get("rbl_listings")
    marks = inputs.host_marks
    candidates: set[str] = set()
    if hosts is not None:
        candidates.update(k for k, h in hosts.items.items() if getattr(h, "listed", True) is not False)
    if listings is not None:
        candidates.update(listings.items)
    candidates.update(marks)
    times: Mapping[str, float] = hosts.item_times if hosts is not None else {}
    fetched = listings.fetched_at if listings is not None else 0.0
    confirmed = max(fetched, listings.confirmed_at) if listings is not None else 0.0
    for key in candidates:
        try:
            h = merge_host(key, hosts, listings, marks)
        except Exception:  # noqa: S112 - the renderer counts such a record as skipped; so it is here
            continue
        if h is None or not h.listed:
            continue
        page_at = times.get(key, 0.0)
        mark = marks.get(key)
        if mark is not None and mark.at >= max(page_at, fetched):  # as merge_host decides
            yield Listed(h.first_listed, mark.at, WEBHOOK, h)
        else:  # a count probe that saw no change confirms the listings pass
            yield Listed(h.first_listed, max(page_at, confirmed) or None, POLL, h)


def _hetrixtools(monitors: Mapping[str, Hetrix]) -> Iterable[Listed]:
    """Listed HetrixTools monitors; HetrixTools pushes changes, not when a listing began."""
    return (Listed(None, m.at, WEBHOOK, (name, m)) for name, m in monitors.items() if m.listed_now)


def row(item: Listed, now: float) -> dict[str, Any]:
    """The page's row for one listed host or monitor, with its age at `now`."""
    age = None if item.as_of is None else round(max(0.0, now - item.as_of), 1)
    common = {"first_listed": item.first_listed, "via": item.via, "as_of": item.as_of, "age_seconds": age}
    if isinstance(item.record, tuple):
        name, m = item.record
        links = m.delist if len(m.delist) == len(m.rbls) else ("",) * len(m.rbls)
        rbls = zip(m.rbls[:MAX_RBLS], links[:MAX_RBLS], strict=True)
        return {
            "source": HETRIXTOOLS,
            "id": shown(name),
            "host": shown(name),
            "name": shown(m.label),
            "listings": m.listed_now,
            "rbls": [{"rbl": shown(r), "delist": http_url(d)} for r, d in rbls],
            **common,
            "report": http_url(m.report),
        }
    h = item.record
    sites = _sites(h)
    return {
        "source": GENERATORLABS,
        "id": shown(h.id),
        "host": shown(h.host),
        "name": shown(h.name),
        "listings": h.listings,
        "rbls": [{"rbl": shown(r), "delist": http_url(sites.get(r))} for r in h.rbls[:MAX_RBLS]],
        **common,
        "report": None,  # Generator Labs has no report page per host
    }


def _sites(h: Any) -> dict[str, str]:
    """A Generator Labs host's delist links by RBL name (records.Host.delist: flattened pairs).
    By name, not by position: a webhook may have changed the host's RBLs since the poll."""
    pairs = getattr(h, "delist", ())
    if not isinstance(pairs, tuple) or len(pairs) % 2:
        return {}
    return dict(zip(pairs[::2], pairs[1::2], strict=True))


# ---- certificates ------------------------------------------------------------------------------


def _expiries(
    monitors: Snapshot | None, marks: Mapping[str, MonitorMark], now: float
) -> tuple[list[CertRow], list[CertRow], int]:
    """Active monitors with an expiry, as (monitor, its days to expiry, via): those not expired
    soonest first, the expired most recently expired first; and how many have no expiry."""
    if monitors is None:
        return [], [], 0
    polled_at = monitors.fetched_at
    rows, without = [], 0
    for m in monitors.items.values():
        try:
            if m.paused:
                continue
            days = expiry_days(m, marks.get(m.id), expiry_now(now), polled_at)  # as /metrics shows
        except Exception:  # noqa: S112 - the renderer counts such a record as skipped; so it is here
            continue
        if days is None or not math.isfinite(days):
            without += 1
            continue
        mark = marks.get(m.id)
        by_webhook = mark is not None and mark.expiry_days is not None and mark.expiry_at >= polled_at
        rows.append((days, m, WEBHOOK if by_webhook else POLL))
    rows.sort(key=lambda row: row[0])
    expiring = [(m, days, via) for days, m, via in rows if days >= 0]
    expired = [(m, days, via) for days, m, via in reversed(rows) if days < 0]
    return expiring, expired, without


def _errors(
    monitors: Snapshot | None, errors: Snapshot | None, marks: Mapping[str, MonitorMark]
) -> list[dict[str, Any]]:
    """Monitors with active errors and their reasons, by name: the poll's, or a cert.error.*
    webhook's when newer than the poll (as the metrics take them)."""
    if errors is None:
        return []
    by_monitor: dict[str, tuple[list[str], str]] = {}
    for e in errors.items.values():
        if type(e.monitor_id) is str and type(e.reason) is str:
            by_monitor.setdefault(e.monitor_id, ([], POLL))[0].append(e.reason)
    for monitor_id, mark in marks.items():
        if mark.errors is not None and mark.errors_at >= errors.fetched_at:
            by_monitor[monitor_id] = (list(mark.errors), WEBHOOK)
    known = monitors.items if monitors is not None else {}
    rows = []
    for monitor_id, (reasons, via) in by_monitor.items():
        if not reasons:
            continue
        m = known.get(monitor_id)
        rows.append(
            {
                "monitor_id": shown(monitor_id),
                "name": shown(getattr(m, "name", "")),
                "hostname": shown(getattr(m, "hostname", "")),
                "reasons": sorted({shown(r) for r in reasons}),
                "via": via,
            }
        )
    rows.sort(key=lambda row: (row["name"], row["monitor_id"]))
    return rows


def certificate(m: Any, days: float | None, via: str) -> dict[str, Any]:
    return {
        "id": shown(m.id),
        "name": shown(m.name),
        "hostname": shown(m.hostname),
        "protocol": shown(m.protocol),
        "port": shown(m.port),
        "expiry_days": None if days is None else round(days, 2),
        "not_after": m.not_after,
        "via": via,
    }


# ---- the document ------------------------------------------------------------------------------


def listed_page(lists: Lists, page: int, now: float) -> dict[str, Any]:
    """One page of the listed hosts (1-based, clamped to the pages there are), each with its age."""
    total = len(lists.listed)
    pages = max(1, math.ceil(total / PER_PAGE))
    page = min(max(1, page), pages)
    items = [row(item, now) for item in lists.listed[(page - 1) * PER_PAGE : page * PER_PAGE]]
    return {"total": total, "page": page, "pages": pages, "per_page": PER_PAGE, "items": items}


def certificates(lists: Lists) -> dict[str, Any]:
    """The first expiring and expired certificates (their days counted when the lists were built,
    at most a minute ago) and the monitors with errors."""
    return {
        "expiring": {
            "total": len(lists.expiring),
            "items": [certificate(m, d, via) for m, d, via in lists.expiring[:CERTS_SHOWN]],
        },
        "expired": {
            "total": len(lists.expired),
            "items": [certificate(m, d, via) for m, d, via in lists.expired[:CERTS_SHOWN]],
        },
        "errors": {"total": len(lists.errors), "items": lists.errors[:ERRORS_SHOWN]},
        "without_expiry": lists.without_expiry,
    }


def page_of(query: str | None) -> int:
    """The `?page=` asked for: a whole number from 1 up to MAX_PAGE (a larger one reads as
    MAX_PAGE, then as the last page; anything else as 1)."""
    if query is None or not _DIGITS.fullmatch(query):
        return 1
    return min(max(1, int(query)), MAX_PAGE) if len(query) <= len(str(MAX_PAGE)) else MAX_PAGE


# ---- budget and freshness ----------------------------------------------------------------------


def budget(live: Live, now: float, pending_webhooks: int) -> dict[str, Any]:
    """The API budget: requests in the last hour, the plan's hourly demand, the hourly limit, how
    long a rate limit still holds us back, what the API last said of each window."""
    ledger = live.ledger
    return {
        "used": ledger.used(now),
        "planned_per_hour": round(live.plan.requests_per_hour, 1) if live.plan else 0.0,
        "limit_per_hour": ledger.per_hour,
        "backoff_seconds": round(max(0.0, ledger.backoff_until - now), 1),
        "server_remaining": [
            {"window_seconds": window, "remaining": left} for window, left in remaining_by_window(ledger)
        ],
        "pending_webhooks": pending_webhooks,
    }


def collectors(live: Live, health: Callable[[str], Health], now: float) -> list[dict[str, Any]]:
    """Each enabled collector's state and freshness, by name."""
    out = []
    for name, configured in sorted(live.enabled.items()):
        h = health(name)
        out.append(
            {
                "name": name,
                "state": {None: "waiting", True: "ok", False: "failing"}[h.success],
                "error": None if h.error is None else shown(h.error),
                "last_success": h.last_success,
                "age_seconds": None if h.last_success is None else round(max(0.0, now - h.last_success), 1),
                "interval_seconds": live.plan.intervals.get(name, configured) if live.plan else configured,
                "configured_seconds": configured,
                "pages": live.pages.get(name, 1),
            }
        )
    return out


def document(
    lists: Lists,
    page: int,
    now: float,
    links: Mapping[str, str],
    budget_: Mapping[str, Any],
    collectors_: list[dict[str, Any]],
) -> dict[str, Any]:
    """The status document (the JSON twin, and what the HTML is rendered from)."""
    return {
        "version": __version__,
        "generated_at": now,
        "refresh_seconds": REFRESH_SECONDS,
        "links": dict(links),
        "listed": listed_page(lists, page, now),
        "certificates": certificates(lists),
        "budget": dict(budget_),
        "collectors": collectors_,
    }
