"""The exporter's own metrics: counters and a histogram on a private prometheus_client registry,
plus a collector that reads the scheduler, ledger, plan and the last render's health at scrape
time. Every name, help text and label set comes from the metric contract
(exporter.metrics.contract). No I/O."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.api.endpoints import ENDPOINTS, route_of
from exporter.api.records import (
    ALERT_FLAGS,
    CONFIRMED_KEYS,
    DEFAULT_KEYS,
    EXPIRY_DAYS_KEYS,
    FREQUENCY_KEYS,
    MEMBER_KEYS,
    NOT_AFTER_KEYS,
    THRESHOLD_KEYS,
)
from exporter.metrics import contract
from exporter.metrics.contract import MetricSpec
from exporter.metrics.lines import RenderStats
from exporter.polling.ledger import Ledger
from exporter.polling.plan import Plan
from exporter.polling.scheduler import REFRESH_PATHS
from exporter.state.events import FORGET_REASONS, FORGETTABLE, WEBHOOK_SOURCES
from exporter.state.store import StateStore

# the _created series double the output and mean nothing for a daemon's counters
disable_created_metrics()  # type: ignore[no-untyped-call]

# bounded label sets, present at 0 from the start so that the first increase is visible
# the background tasks the app supervises (the `task` label of exporter_task_restarts_total)
SCHEDULER = "scheduler"
APPLIER = "applier"
RENDERER = "renderer"
DEMO_WEBHOOKS = "demo_webhooks"
WEB_CONFIG_WATCHER = "web_config_watcher"
TASKS = (SCHEDULER, APPLIER, RENDERER, DEMO_WEBHOOKS, WEB_CONFIG_WATCHER)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# the `window` label of a RateLimit-* observation that no RateLimit-Limit policy explains
UNKNOWN_WINDOW = "unknown"
# generatorlabs_api_requests_total: every route the scheduler requests (polled lists, their count
# probes, targeted refreshes) x the codes the alerts and dashboards use. NO_RESPONSE is the code
# the scheduler counts when no response came (exporter.polling.scheduler, `_send`).
NO_RESPONSE = "error"
REQUEST_CODES = ("200", "429", NO_RESPONSE)
ROUTES = tuple(
    dict.fromkeys(
        [route_of(e.path) for e in ENDPOINTS.values()]
        + [e.count_path for e in ENDPOINTS.values() if e.count_path]
        + [route_of(template) for template, _, _ in REFRESH_PATHS.values()]
    )
)
# generatorlabs_parse_warnings_total: each (object, field) the API parsers (exporter.api.records)
# can warn about; a field read from one of several keys is warned under the key it came from.
# tests/test_scheduler.py feeds the parsers hostile objects and checks none warns outside this.
ITEM_OBJECTS = ("profile", "source", "contact", "contact_group", "cert_profile")
PARSE_WARNINGS: tuple[tuple[str, str], ...] = (
    *(
        ("host", f)
        for f in (
            "id",
            "host",
            "listed_details",
            "listed_count",
            "total",
            "listings",
            "listed",
            "paused",
            "last_checked",
            "first_listed",
        )
    ),
    *(("monitor", f) for f in ("id", "port", *NOT_AFTER_KEYS, *EXPIRY_DAYS_KEYS, "paused")),
    ("cert_error", "monitor_id"),
    ("cert_error", "error_type"),
    *((obj, f) for obj in ITEM_OBJECTS for f in ("id", "paused")),
    # alert delivery: profiles' frequency, contacts' confirmation, groups' members, the
    # certificate profiles' thresholds and switches, and the default flags
    *(("profile", f) for f in FREQUENCY_KEYS),
    *(("contact", f) for f in ("status", *CONFIRMED_KEYS)),
    *(("contact_group", f) for f in MEMBER_KEYS),
    *(("cert_profile", f) for f in (*THRESHOLD_KEYS, *(f"alert_on_{flag}" for flag in ALERT_FLAGS))),
    *((obj, f) for obj in ("profile", "contact_group", "cert_profile") for f in DEFAULT_KEYS),
)


@dataclass(slots=True)
class Live:
    """What the self-metrics collector reads at scrape time; the app keeps it current."""

    store: StateStore
    ledger: Ledger
    plan: Plan | None = None
    enabled: Mapping[str, float] = field(default_factory=dict)  # collector -> configured interval
    pages: Mapping[str, int] = field(default_factory=dict)
    reload_ok: bool = True
    reload_at: float = 0.0


def _gauge(spec: MetricSpec, value: float | None = None) -> GaugeMetricFamily:
    """A gauge family with the name, help and labels of the contract: a single sample of `value`,
    or (without it) a labelled family to add samples to."""
    if value is not None:
        return GaugeMetricFamily(spec.name, spec.help, value=value)
    return GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))


def _counter(spec: MetricSpec, registry: CollectorRegistry) -> Counter:
    """A counter of the contract (prometheus_client appends the `_total` the contract spells)."""
    return Counter(spec.name.removesuffix("_total"), spec.help, list(spec.labels), registry=registry)


class SelfCollector(Collector):
    """Gauges read at scrape time from what the app keeps current (Live) and the last render."""

    def __init__(
        self,
        live: Live,
        now: Callable[[], float],
        exposition: Callable[[], RenderStats | None] = lambda: None,
    ) -> None:
        self._live = live
        self._now = now
        self._exposition = exposition

    def collect(self) -> Iterator[Metric]:
        live, now = self._live, self._now()
        yield from _collectors(live)
        yield from _api_and_budget(live, now)
        yield _gauge(contract.CONFIG_LAST_RELOAD_SUCCESSFUL, 1 if live.reload_ok else 0)
        yield _gauge(contract.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, live.reload_at)
        info = _gauge(contract.EXPORTER_BUILD_INFO)
        info.add_metric([__version__, platform.python_version()], 1)
        yield info
        stats = self._exposition()
        if stats is not None:  # from the first render on, every object kind and label, 0 or not
            yield from _exposition_health(stats)


def _collectors(live: Live) -> Iterator[Metric]:
    """`up`, and each enabled collector's last poll, interval, pages and planned share."""
    health = {c: live.store.health(c) for c in live.enabled}
    up = bool(health) and all(h.success for h in health.values())
    yield _gauge(contract.UP, 1 if up else 0)
    success = _gauge(contract.COLLECTOR_SUCCESS)
    last = _gauge(contract.COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS)
    duration = _gauge(contract.COLLECTOR_DURATION_SECONDS)
    interval = _gauge(contract.COLLECTOR_INTERVAL_SECONDS)
    configured = _gauge(contract.COLLECTOR_CONFIGURED_INTERVAL_SECONDS)
    pages = _gauge(contract.COLLECTOR_PAGES)
    planned = _gauge(contract.COLLECTOR_PLANNED_REQUESTS_PER_HOUR)
    for name, h in sorted(health.items()):
        if h.success is not None:
            success.add_metric([name], 1 if h.success else 0)
            duration.add_metric([name], h.duration)
        if h.last_success is not None:
            last.add_metric([name], h.last_success)
        configured.add_metric([name], live.enabled[name])
        pages.add_metric([name], live.pages.get(name, 1))
        if live.plan is not None and name in live.plan.intervals:
            interval.add_metric([name], live.plan.intervals[name])
            planned.add_metric([name], live.plan.hourly[name])
    yield from (success, last, interval, configured, duration, pages, planned)


def _api_and_budget(live: Live, now: float) -> Iterator[Metric]:
    """What the server said of our quota, the backoff, and the request budget and its use."""
    yield from _rate_limits(live.ledger)
    backoff = live.ledger.backoff_until
    yield _gauge(contract.API_BACKOFF_UNTIL_TIMESTAMP_SECONDS, backoff if backoff > now else 0)
    yield _gauge(contract.BUDGET_REQUESTS_PER_HOUR, live.ledger.per_hour)
    yield _gauge(contract.BUDGET_PLANNED_REQUESTS_PER_HOUR, live.plan.requests_per_hour if live.plan else 0)
    yield _gauge(contract.BUDGET_USED_REQUESTS, live.ledger.used(now))


def window_label(window: int | None) -> str:
    """The `window` label of a rate-limit window: its length in seconds, or UNKNOWN_WINDOW."""
    return UNKNOWN_WINDOW if window is None else str(window)


def remaining_by_window(ledger: Ledger) -> list[tuple[int | None, int]]:
    """The server's last remaining count of each rate-limit window, the longest window first
    (the hourly budget before the per-second one), an unidentified window last."""
    known = [(w, limit.remaining) for w, limit in ledger.by_window.items() if limit.remaining is not None]
    return sorted(known, key=lambda item: -1 if item[0] is None else -item[0])


def _rate_limits(ledger: Ledger) -> Iterator[Metric]:
    """What the server last said of each rate-limit window (the ledger keeps one per window):
    the hourly window's remaining count is never hidden by a later per-second one."""
    remaining = _gauge(contract.API_RATE_LIMIT_REMAINING)
    reset = _gauge(contract.API_RATE_LIMIT_RESET_TIMESTAMP_SECONDS)
    observed = sorted(ledger.by_window.items(), key=lambda item: window_label(item[0]))
    for window, limit in observed:
        if limit.remaining is not None:
            remaining.add_metric([window_label(window)], limit.remaining)
        if limit.reset_at is not None:
            reset.add_metric([window_label(window)], limit.reset_at)
    if observed:
        yield remaining
        yield reset


def _exposition_health(stats: RenderStats) -> Iterator[Metric]:
    """What the last render left out, per object kind, and cut, per label name."""
    skipped = _gauge(contract.EXPOSITION_SKIPPED_OBJECTS)
    for kind, n in sorted(stats.skipped.items()):
        skipped.add_metric([kind], n)
    truncated = _gauge(contract.EXPOSITION_TRUNCATED_LABEL_VALUES)
    for label, n in sorted(stats.truncated.items()):
        truncated.add_metric([label], n)
    yield skipped
    yield truncated


class Telemetry:
    """Counters the edges increment, and the rendering of every self-metric."""

    def __init__(self, live: Live, now: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = _counter(contract.API_REQUESTS_TOTAL, self.registry)
        for route in ROUTES:
            for code in REQUEST_CODES:
                self.requests.labels(route, code)
        spec = contract.API_REQUEST_DURATION_SECONDS
        self.latency = Histogram(
            spec.name, spec.help, list(spec.labels), buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.failures = _counter(contract.COLLECTOR_FAILURES_TOTAL, self.registry)
        self.parse_warnings = _counter(contract.PARSE_WARNINGS_TOTAL, self.registry)
        for obj, fld in PARSE_WARNINGS:
            self.parse_warnings.labels(obj, fld)
        self.webhook_requests = _counter(contract.WEBHOOK_REQUESTS_TOTAL, self.registry)
        self.webhook_rejected = _counter(contract.WEBHOOK_REJECTED_TOTAL, self.registry)
        self.task_restarts = _counter(contract.EXPORTER_TASK_RESTARTS_TOTAL, self.registry)
        for task in TASKS:
            self.task_restarts.labels(task)
        self.events_set_aside = _counter(contract.WEBHOOK_EVENTS_SET_ASIDE_TOTAL, self.registry)
        for source in WEBHOOK_SOURCES:
            self.events_set_aside.labels(source)
        self.forgotten = _counter(contract.WEBHOOK_OBJECTS_FORGOTTEN_TOTAL, self.registry)
        for kind in FORGETTABLE:
            for reason in FORGET_REASONS:
                self.forgotten.labels(kind, reason)
        self.exposition: RenderStats | None = None  # the last render's health (exporter.metrics.serve)
        self.registry.register(SelfCollector(live, now, lambda: self.exposition))
        self._warned: set[tuple[str, str]] = set()

    def parse_warning(self, obj: str, fld: str) -> bool:
        """Count a parse warning; True the first time this (object, field) is seen (log it)."""
        self.parse_warnings.labels(obj, fld).inc()
        first = (obj, fld) not in self._warned
        self._warned.add((obj, fld))
        return first

    # -- what the webhook code counts (exporter.webhooks.applier.WebhookCounts) ---------------

    def webhook_request(self, source: str) -> None:
        self.webhook_requests.labels(source).inc()

    def webhook_rejection(self, source: str, reason: str) -> None:
        self.webhook_rejected.labels(source, reason).inc()

    def expect_rejections(self, rejections: Mapping[str, Iterable[str]]) -> None:
        """Every (source, reason) the receivers can count, present at 0 from now on
        (exporter.webhooks.receivers.REJECTIONS, given when the receivers are added)."""
        for source, reasons in rejections.items():
            for reason in reasons:
                self.webhook_rejected.labels(source, reason)

    def set_aside(self, source: str) -> None:
        self.events_set_aside.labels(source).inc()

    def forgotten_objects(self, kind: str, reason: str, count: int = 1) -> None:
        self.forgotten.labels(kind, reason).inc(count)

    def render(self, openmetrics: bool) -> bytes:
        if openmetrics:
            body: bytes = generate_openmetrics(self.registry)  # type: ignore[no-untyped-call]
            return body
        return generate_latest(self.registry)
