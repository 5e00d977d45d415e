"""The polling loop, and the one owner of retries and pacing.

One task sends every request, one at a time: it picks the most important due collector
(alerting tier first, then the least recently served), waits until the ledger allows a request,
sends it, and files the result. A collector's run spans as many requests as its pages, so a long
inventory pass (a 100,000-host account has 1,000 pages) is interleaved with the fast collectors
instead of blocking them. A failure keeps the last good snapshot and retries the same page with
backoff; a 429 stops every request until Retry-After has passed.

Nothing one response holds can stop polling. An unexpected exception while a run's request is
handled (a bug, or input nobody foresaw) is a failure of that run with reason `internal`: its
traceback is logged once, it backs off like any failure, and the other collectors keep polling.
One object that cannot be parsed costs only that object (a parse warning with field `object`).
What still escapes `step()` is a bug in the loop itself: `run_forever` lets it propagate to the
supervisor (exporter.supervisor), which logs, counts and restarts the task.

Ids that arrive from webhooks go into URLs only when they have the documented form (two upper
case letters and 32 hex digits, the prefix matching the kind), and every path segment is
percent-encoded besides.

At the end of each collector's first successful pass with objects, one `poll.fields` line says
which fields its parser reads were found, which no object had, and which keys it does not know:
the v4 object schemas are largely undocumented, and a renamed field shows there first.

The scheduler takes only the settings it uses (PollSettings) and reports through two small
protocols, Reports (counters) and Board (the plan the self-metrics show); time comes from the
injected clock. I/O only through the Transport it is given.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import structlog

from exporter.api.endpoints import ENDPOINTS, Endpoint, Tier, route_of
from exporter.api.envelope import RawResponse, decode_count, decode_page
from exporter.api.fields import HOST_PREFIX, MONITOR_PREFIX, is_sid, loggable
from exporter.api.ratelimit import from_headers
from exporter.api.records import (
    Warn,
    field_report,
    parse_cert_error,
    parse_host,
    parse_item,
    parse_monitor,
)
from exporter.clock import Clock, sleep_or_event
from exporter.config.model import DEFAULT_PAGE_SIZE, DEFAULT_REFRESH_DEBOUNCE, BudgetConfig, CollectorConfig
from exporter.errors import ApiError, RateLimited
from exporter.polling.ledger import WINDOW, Ledger
from exporter.polling.plan import Demand, Plan, make_plan
from exporter.state.snapshot import Health, Snapshot
from exporter.state.store import StateStore

log = structlog.get_logger("exporter.polling.scheduler")

PARSERS: Mapping[str, Callable[[Mapping[str, Any], Warn], Any]] = {
    "rbl_listings": parse_host,
    "rbl_hosts": parse_host,
    "cert_monitors": parse_monitor,
    "cert_errors": parse_cert_error,
    "rbl_profiles": functools.partial(parse_item, "profile"),
    "rbl_sources": functools.partial(parse_item, "source"),
    "contacts": functools.partial(parse_item, "contact"),
    "contact_groups": functools.partial(parse_item, "contact_group"),
    "cert_profiles": functools.partial(parse_item, "cert_profile"),
}
# the `object` label of parse warnings for each collector's objects (as records.py names them)
OBJECTS: Mapping[str, str] = {
    "rbl_listings": "host",
    "rbl_hosts": "host",
    "cert_monitors": "monitor",
    "cert_errors": "cert_error",
    "rbl_profiles": "profile",
    "rbl_sources": "source",
    "contacts": "contact",
    "contact_groups": "contact_group",
    "cert_profiles": "cert_profile",
}
FULL_REFRESH_RUNS = 5  # with a count probe, refetch everything at least every 5th run anyway
RETRY_BASE = 15.0  # seconds before the first retry of a failed run; doubles per failure in a row
MIN_MAX_AGE = 600.0  # data is exported at least this long after its last confirmation...
MAX_AGE_INTERVALS = 3  # ...and at least this many effective intervals (unless max_age is set)
BURST_SHARE = 0.05  # an inventory pass may burst up to 5 % of the hourly budget
COST_RUNS = 5  # a collector's cost is the most requests any of its last COST_RUNS runs took
IDLE_LOOK = 60.0  # seconds to sleep when no collector is enabled (a reload wakes it earlier)
MAX_DEBOUNCE_KEYS = 10_000  # past this many remembered refresh requests, expired ones go


# kind -> (path template, list key, collector) of a targeted refresh; its route is route_of(template)
REFRESH_PATHS = {
    "host": ("rbl/hosts/{id}.json", "hosts", "rbl_hosts"),
    "monitor": ("cert/monitors/{id}.json", "monitors", "cert_monitors"),
}
ID_PREFIXES = {"host": HOST_PREFIX, "monitor": MONITOR_PREFIX}
# collectors whose objects are also another's: a listed host is both a listing and a host
SHARED_RECORDS: Mapping[str, tuple[str, ...]] = {
    "rbl_listings": ("rbl_hosts",),
    "rbl_hosts": ("rbl_listings",),
}
MAX_LOGGED_ERRORS = 100  # distinct internal errors whose traceback is logged (memory bound)
SHOWN_ID_CHARS = 80  # at most this much of an invalid id reaches the log
MAX_TALLY_KEYS = 1000  # distinct keys remembered for a collector's field summary (memory bound)
SHOWN_UNKNOWN_FIELDS = 50  # unknown keys named in a field summary; the rest are only counted
SendJournal = Callable[[float], Awaitable[None]]


def valid_id(kind: str, object_id: object) -> bool:
    """True for an id of the documented form whose prefix matches `kind` (HT for a host)."""
    return kind in ID_PREFIXES and is_sid(object_id, ID_PREFIXES[kind])


class Transport(Protocol):
    async def get(self, path: str, params: Mapping[str, str]) -> RawResponse:
        """GET `path` (relative to the API base URL); raise ApiError when no response came."""


class Increment(Protocol):
    def inc(self, amount: float = ...) -> None: ...


class Observe(Protocol):
    def observe(self, amount: float) -> None: ...


class Counting(Protocol):
    def labels(self, *values: str) -> Increment: ...


class Timing(Protocol):
    def labels(self, *values: str) -> Observe: ...


class Reports(Protocol):
    """What the scheduler counts (exporter.metrics.selfmetrics.Telemetry implements it)."""

    @property
    def requests(self) -> Counting:
        """Requests sent, by route and status code."""

    @property
    def latency(self) -> Timing:
        """Request durations, by route."""

    @property
    def failures(self) -> Counting:
        """Failed runs, by collector and reason."""

    def parse_warning(self, obj: str, fld: str) -> bool:
        """Count a parse warning; True the first time this (object, field) is seen."""


class Board(Protocol):
    """Where the scheduler posts its plan for the self-metrics (exporter.metrics.selfmetrics.Live)."""

    plan: Plan | None
    enabled: Mapping[str, float]  # collector -> configured interval
    pages: Mapping[str, int]  # collector -> pages per full pass, as known


@dataclass(frozen=True, slots=True)
class PollSettings:
    """The parts of the configuration polling uses (the app derives them from Config)."""

    collectors: Mapping[str, CollectorConfig]
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    page_size: int = DEFAULT_PAGE_SIZE
    refresh_debounce: float = DEFAULT_REFRESH_DEBOUNCE  # seconds a second ask for one object is declined


@dataclass(slots=True)
class Run:
    """One collector's progress: when it is due, and the pass under way."""

    endpoint: Endpoint
    floor: float
    max_age: float | None
    due_at: float = 0.0
    active: bool = False
    probing: bool = False
    page: int = 1
    total_pages: int = 1
    total: int | None = None
    items: dict[str, Any] = field(default_factory=dict)
    item_times: dict[str, float] = field(default_factory=dict)
    started_at: float = 0.0
    started_mono: float = 0.0
    requests: int = 0
    failures: int = 0
    pages_known: int = 1
    last_count: int | None = None
    last_full_at: float | None = None
    costs: deque[int] = field(default_factory=lambda: deque(maxlen=COST_RUNS))
    tokens: float = 0.0  # inventory pacing (see Scheduler._page_spacing)
    tokens_at: float | None = None

    @property
    def name(self) -> str:
        return self.endpoint.collector

    def probe_eligible(self) -> bool:
        return self.endpoint.count_path is not None and self.pages_known >= 2

    def cost(self) -> float:
        if self.costs:
            return float(max(self.costs))
        return self.pages_known + (1 if self.probe_eligible() else 0)


class Scheduler:
    def __init__(
        self,
        settings: PollSettings,
        transport: Transport,
        ledger: Ledger,
        store: StateStore,
        reports: Reports,
        board: Board,
        clock: Clock,
        *,
        journal_send: SendJournal | None = None,
    ) -> None:
        """`journal_send(t)` is awaited before each request is sent (the state file's ledger)."""
        self._transport = transport
        self._ledger = ledger
        self._store = store
        self._reports = reports
        self._board = board
        self._clock = clock
        self._journal_send = journal_send
        self._runs: dict[str, Run] = {}
        self._wake = asyncio.Event()
        self.plan: Plan | None = None
        self._wanted: dict[tuple[str, str], float] = {}  # targeted refreshes asked for
        self._asked: dict[tuple[str, str], float] = {}  # last time each was asked (debounce)
        self._refreshes: list[float] = []  # targeted refreshes sent in the last hour
        self._logged_errors: set[str] = set()  # internal errors whose traceback was logged
        self._logged_bad_ids: set[str] = set()  # kinds for which an invalid id was logged
        # keys seen in each collector's objects until its field summary is logged (once each)
        self._field_keys: dict[str, set[str]] = {}
        self._fields_logged: set[str] = set()
        self.configure(settings)

    # -- configuration and planning -------------------------------------------------------

    def configure(self, settings: PollSettings) -> None:
        """Apply (re)loaded settings; runs of collectors that stay enabled keep their progress."""
        self._page_size = settings.page_size
        self._reserve = settings.budget.reserve
        self._refresh_debounce = settings.refresh_debounce
        self._ledger.per_hour = settings.budget.requests_per_hour
        self._ledger.per_second = settings.budget.requests_per_second
        runs: dict[str, Run] = {}
        for name, cc in settings.collectors.items():
            if not cc.enabled:
                self._store.drop(name)
                continue
            run = self._runs.get(name) or Run(ENDPOINTS[name], cc.interval, cc.max_age)
            run.floor, run.max_age = cc.interval, cc.max_age
            runs[name] = run
        self._runs = runs
        self._board.enabled = {n: r.floor for n, r in runs.items()}
        self.replan()
        self._wake.set()

    def replan(self) -> Plan:
        demands = [Demand(r.name, r.endpoint.tier, r.floor, r.cost()) for r in self._runs.values()]
        self.plan = make_plan(demands, self._ledger.per_hour, self._reserve)
        self._board.plan = self.plan
        self._board.pages = {r.name: r.pages_known for r in self._runs.values()}
        return self.plan

    def interval(self, collector: str) -> float:
        assert self.plan is not None  # noqa: S101 - set in __init__
        return self.plan.intervals[collector]

    def max_age(self, collector: str) -> float:
        run = self._runs[collector]
        if run.max_age is not None:
            return run.max_age
        return max(MAX_AGE_INTERVALS * self.interval(collector), MIN_MAX_AGE)

    def max_ages(self) -> dict[str, float]:
        return {name: self.max_age(name) for name in self._runs}

    # -- warm start and targeted refreshes ----------------------------------------------------

    def restore(self, now: float) -> None:
        """After a restart with stored snapshots: poll each collector when its stored data falls
        due, not at once, so a restart (or a crash loop) spends no burst of requests."""
        for run in self._runs.values():
            snap = self._store.snapshot(run.name)
            if snap is None:
                continue
            run.pages_known = max(1, -(-len(snap.items) // self._page_size))
            run.last_count = len(snap.items)
            run.last_full_at = snap.fetched_at
            run.due_at = max(now, snap.confirmed_at + self.interval(run.name))
            self._store.set_health(run.name, Health(True, snap.confirmed_at, 0.0))
        self.replan()

    def request_refresh(self, kind: str, object_id: str, now: float) -> bool:
        """Ask for one object (a webhook named an id we have not seen). Debounced; spent from the
        reserve only (at most `reserve` x budget per hour); False when declined, which includes
        any id that is not of the documented form for its kind (it never reaches a URL)."""
        if kind not in REFRESH_PATHS:
            return False
        if not valid_id(kind, object_id):
            self._invalid_id(kind, object_id)
            return False
        key = (kind, object_id)
        asked = self._asked.get(key)
        if asked is not None and now - asked < self._refresh_debounce:
            return False
        if len(self._asked) > MAX_DEBOUNCE_KEYS:  # forget debounce entries that have expired
            self._asked = {k: t for k, t in self._asked.items() if now - t < self._refresh_debounce}
        self._asked[key] = now
        self._wanted[key] = now
        self._wake.set()
        return True

    def _invalid_id(self, kind: str, object_id: object) -> None:
        shown = loggable(
            repr(object_id) if isinstance(object_id, str) else type(object_id).__name__, SHOWN_ID_CHARS
        )
        if kind not in self._logged_bad_ids:  # once per kind at info, then at debug
            self._logged_bad_ids.add(kind)
            log.info(
                "refresh.invalid_id",
                kind=kind,
                object_id=shown,
                expected=f"{ID_PREFIXES[kind]} and 32 hex digits",
            )
        else:
            log.debug("refresh.invalid_id", kind=kind, object_id=shown)

    def _refresh_allowed(self, now: float) -> bool:
        self._refreshes = [t for t in self._refreshes if t > now - WINDOW]
        return len(self._refreshes) < max(1, int(self._reserve * self._ledger.per_hour))

    async def _refresh(self, kind: str, object_id: str, now: float) -> None:
        template, key, collector = REFRESH_PATHS[kind]
        route = route_of(template)
        if not valid_id(kind, object_id):  # checked when asked; never let one into a URL
            self._invalid_id(kind, object_id)
            return
        self._refreshes.append(now)
        try:
            response, done = await self._send(template.format(id=quote(object_id, safe="")), {}, route, now)
            page = decode_page(route, key, response, done, single=True)
            records = self._parse_page(collector, page.items, page.dropped)
            for record in records:  # one row each in the state file; the snapshot is not copied
                self._store.replace_object(collector, record.id, record, done)
            log.info("refresh.ok", kind=kind, object_id=object_id, found=bool(records))
        except RateLimited as err:
            self._ledger.rate_limited(self._clock.time(), err.retry_after)
            log.warning("refresh.failed", kind=kind, object_id=object_id, reason=err.reason)
        except ApiError as err:
            log.warning(
                "refresh.failed", kind=kind, object_id=object_id, reason=err.reason, status=err.status
            )
        except Exception as err:  # a bug must not take the loop down: this refresh fails alone
            self._internal_error(err, "refresh", route)
            log.warning("refresh.failed", kind=kind, object_id=object_id, reason="internal", status=None)

    async def _send_journal(self, now: float) -> None:
        if self._journal_send is not None:
            await self._journal_send(now)

    # -- deciding ---------------------------------------------------------------------------

    def pick(self, now: float) -> Run | float:
        """The run to serve now, or the time the next one falls due."""
        due = [r for r in self._runs.values() if r.due_at <= now]
        if due:
            return min(due, key=lambda r: (r.endpoint.tier, r.due_at))
        return min((r.due_at for r in self._runs.values()), default=now + IDLE_LOOK)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early when the config changes (reload) or work is queued."""
        await sleep_or_event(self._clock, seconds, self._wake)

    async def run_forever(self) -> None:
        """Poll until cancelled. Runs under exporter.supervisor: an exception that escapes a
        step (a bug in the loop itself; a run's own errors never escape) ends this call, and the
        supervisor logs it, counts it and restarts the task with backoff."""
        while True:
            await self.step()

    async def step(self) -> None:
        """One decision: sleep until something is due or allowed, or send one request."""
        now = self._clock.time()
        if self._wanted and self._refresh_allowed(now) and self._ledger.next_allowed(now) <= now:
            (kind, object_id), _ = min(self._wanted.items(), key=lambda kv: kv[1])
            del self._wanted[(kind, object_id)]
            await self._refresh(kind, object_id, now)
            return
        choice = self.pick(now)
        if not isinstance(choice, Run):
            await self._sleep(max(choice - now, 0.0))
            return
        allowed = self._ledger.next_allowed(now)
        if allowed > now:
            await self._sleep(allowed - now)
            return
        await self._request(choice, now)

    # -- doing ------------------------------------------------------------------------------

    def _warn(self, obj: str, fld: str, detail: str) -> None:
        if self._reports.parse_warning(obj, fld):
            log.warning("parse.warning", object=obj, field=fld, detail=loggable(detail))

    def _internal_error(self, err: Exception, where: str, route: str) -> str:
        """Log an unexpected exception: the traceback once per distinct error, then one line.
        Returns the error's short description."""
        kind = loggable(f"{type(err).__name__}: {err}")
        if kind not in self._logged_errors and len(self._logged_errors) < MAX_LOGGED_ERRORS:
            self._logged_errors.add(kind)
            log.error("poll.internal_error", where=where, route=route, error=kind, exc_info=err)
        else:
            log.debug("poll.internal_error", where=where, route=route, error=kind)
        return kind

    def _parse_page(
        self, collector: str, raw_items: tuple[Mapping[str, Any], ...], dropped: int
    ) -> list[Any]:
        """Records from one page. An entry that is not an object, or whose parse raises, is a
        parse warning (field `object`) and costs only itself."""
        parse, obj = PARSERS[collector], OBJECTS[collector]
        for _ in range(dropped):
            self._warn(obj, "object", "list entry that is not an object skipped")
        records = []
        for raw in raw_items:
            try:
                record = parse(raw, self._warn)
            except Exception as err:  # records.py never raises by contract; a bug costs one object
                kind = self._internal_error(err, "parse", collector)
                self._warn(obj, "object", f"object skipped: {kind}")
                continue
            if record is not None:
                records.append(record)
        return records

    def _tally_fields(self, collector: str, raw_items: tuple[Mapping[str, Any], ...]) -> None:
        """Remember the keys of a page's objects until the collector's field summary is out."""
        if collector in self._fields_logged:
            return
        keys = self._field_keys.setdefault(collector, set())
        for raw in raw_items:
            if len(keys) >= MAX_TALLY_KEYS:
                return
            keys.update(raw)  # JSON keys: always strings

    def _log_fields(self, collector: str, parsed: int) -> None:
        """Once per collector and process, at the end of its first successful pass with objects:
        which fields its parser reads were found, which were missing from every object, and
        which keys it does not know (the API's v4 object schemas are largely undocumented)."""
        keys = self._field_keys.get(collector)
        if collector in self._fields_logged or not keys:
            return
        self._fields_logged.add(collector)
        del self._field_keys[collector]
        report = field_report(OBJECTS[collector], keys)
        log.info(
            "poll.fields",
            collector=collector,
            objects=parsed,
            found=list(report.found),
            missing=list(report.missing),
            unknown=[loggable(k, 60) for k in report.unknown[:SHOWN_UNKNOWN_FIELDS]],
            unknown_count=len(report.unknown),
        )

    def _start(self, run: Run, now: float) -> None:
        run.active = True
        run.page, run.total_pages, run.total = 1, 1, None
        run.items, run.item_times = {}, {}
        run.started_at, run.started_mono = now, self._clock.monotonic()
        run.requests = 0
        recent = run.last_full_at is not None and (
            now - run.last_full_at < FULL_REFRESH_RUNS * self.interval(run.name)
        )
        run.probing = run.probe_eligible() and run.last_count is not None and recent

    async def _request(self, run: Run, now: float) -> None:
        if not run.active:
            self._start(run, now)
        endpoint = run.endpoint
        if run.probing:
            assert endpoint.count_path is not None  # noqa: S101 - probe_eligible checked it
            path, route, params = endpoint.count_path, endpoint.count_path, {}
        else:
            path, route = endpoint.path, route_of(endpoint.path)
            params = {"page": str(run.page), "page_size": str(self._page_size)}
        run.requests += 1
        try:
            response, done = await self._send(path, params, route, now)
            if run.probing:
                self._after_probe(run, decode_count(route, response, done), done)
            else:
                page = decode_page(route, endpoint.key, response, done)
                self._tally_fields(run.name, page.items)
                records = self._parse_page(run.name, page.items, page.dropped)
                self._after_page(run, records, bool(page.items), page.total_pages, page.total, done)
        except RateLimited as err:
            self._ledger.rate_limited(self._clock.time(), err.retry_after)
            self._failed(run, err, retry_in=err.retry_after)
        except ApiError as err:
            self._backoff(run, err)
        except Exception as err:  # a bug, or input nobody foresaw: this run fails, not the loop
            kind = self._internal_error(err, "poll", route)
            self._backoff(run, ApiError(route, None, kind, "internal"))

    def _backoff(self, run: Run, err: ApiError) -> None:
        run.failures += 1
        retry_in = min(RETRY_BASE * 2 ** (run.failures - 1), self.interval(run.name))
        self._failed(run, err, retry_in=retry_in)

    async def _send(
        self, path: str, params: Mapping[str, str], route: str, now: float
    ) -> tuple[RawResponse, float]:
        """Every request goes through here: journaled and recorded in the ledger before it is
        sent, its RateLimit-* headers read, and counted by route and status."""
        await self._send_journal(now)
        # the request leaves after the journal write: record when it really goes, or the local
        # window could let one request more through at its edge than the server counts
        self._ledger.record(max(now, self._clock.time()))
        started, code = self._clock.monotonic(), "error"
        try:
            response = await self._transport.get(path, params)
            code = str(response.status)
        finally:
            self._reports.requests.labels(route, code).inc()
            self._reports.latency.labels(route).observe(self._clock.monotonic() - started)
        done = self._clock.time()
        limit = from_headers(response.headers, done)
        if limit is not None:
            self._ledger.observe(limit)
        return response, done

    def _after_probe(self, run: Run, count: int, now: float) -> None:
        if count == run.last_count:
            self._store.confirm(run.name, now)
            self._finish(run, now, pages=0)
        else:
            run.probing = False  # it changed: fetch it all, starting now
            run.due_at = now

    def _known(self, collector: str) -> tuple[Mapping[str, Any], ...]:
        """The stored snapshots a new record of `collector` may equal: its own, and for hosts the
        other host collector's (a listed host is in both)."""
        names = (collector, *SHARED_RECORDS.get(collector, ()))
        return tuple(snap.items for name in names if (snap := self._store.snapshot(name)) is not None)

    def _after_page(
        self,
        run: Run,
        records: list[Any],
        had_items: bool,
        total_pages: int,
        total: int | None,
        now: float,
    ) -> None:
        known = self._known(run.name)
        for record in records:
            ident = record.id
            for items in known:  # an unchanged record is the stored one: one copy, same identity
                old = items.get(ident)
                if old is not None and old == record:
                    record = old
                    break
            run.items[ident] = record
            run.item_times[ident] = now
        run.total_pages, run.total = total_pages, total
        run.failures = 0  # backoff grows only over consecutive failures
        if not run.costs and total_pages != run.pages_known:
            run.pages_known = total_pages  # first pass: learn the size and plan with it at once
            self.replan()
        if run.page < total_pages and had_items:
            run.page += 1
            run.due_at = now + self._page_spacing(run, now)
            return
        # the pass's dictionaries become the snapshot's (never changed again), not copies
        snapshot = Snapshot(run.name, run.items, run.started_at, now, run.total, run.item_times)
        run.items, run.item_times = {}, {}
        self._store.replace(snapshot)
        run.last_full_at = run.started_at
        run.last_count = len(snapshot.items)
        run.pages_known = max(run.page, 1)
        self._log_fields(run.name, len(snapshot.items))
        self._finish(run, now, pages=run.page)

    def _page_spacing(self, run: Run, now: float) -> float:
        """How long the next page of an active pass waits.

        Alerting passes run as fast as the ledger allows, to finish fresh. Inventory passes draw
        on a small token bucket filled at their planned share of the budget: a short pass (a few
        pages) goes at once, a 1,000-page pass spreads over its whole (long) interval instead of
        starving everything else.
        """
        if run.endpoint.tier == Tier.ALERTING or self.plan is None:
            return 0.0
        rate = self.plan.hourly.get(run.name, 0.0) / WINDOW
        if rate <= 0:
            return 0.0
        capacity = max(1.0, min(run.cost(), BURST_SHARE * self._ledger.per_hour))
        if run.tokens_at is None:
            run.tokens = capacity
        else:
            run.tokens = min(capacity, run.tokens + (now - run.tokens_at) * rate)
        run.tokens_at = now
        run.tokens -= 1.0
        return 0.0 if run.tokens >= 0 else -run.tokens / rate

    def _finish(self, run: Run, now: float, pages: int) -> None:
        duration = self._clock.monotonic() - run.started_mono
        run.costs.append(run.requests)
        run.active, run.failures = False, 0
        self._store.set_health(run.name, Health(True, now, duration))
        self.replan()
        # a pass longer than its interval (a huge inventory) is followed at once by the next
        run.due_at = run.started_at + self.interval(run.name)
        log.info(
            "poll.ok",
            collector=run.name,
            pages=pages,
            requests=run.requests,
            duration=round(duration, 3),
            probe=pages == 0,
        )

    def _failed(self, run: Run, err: ApiError, retry_in: float) -> None:
        now = self._clock.time()
        previous = self._store.health(run.name)
        self._store.set_health(
            run.name,
            Health(False, previous.last_success, self._clock.monotonic() - run.started_mono, err.reason),
        )
        self._reports.failures.labels(run.name, err.reason).inc()
        run.due_at = now + retry_in
        log.warning(
            "poll.failed",
            collector=run.name,
            reason=err.reason,
            status=err.status,
            detail=err.detail,
            page=run.page,
            requests=run.requests,
            retry_in=round(retry_in, 1),
        )
