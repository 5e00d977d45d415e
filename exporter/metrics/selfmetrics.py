"""The exporter's own metrics: counters and a histogram on a private prometheus_client registry,
plus a collector that reads the scheduler, ledger, plan and the last render's health at scrape
time (no I/O)."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.metrics.contract import BY_NAME
from exporter.metrics.render import RenderStats
from exporter.polling.ledger import Ledger
from exporter.polling.plan import Plan
from exporter.state.store import StateStore

try:  # the _created series double the output and mean nothing for a daemon's counters
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # type: ignore[no-untyped-call]
except ImportError:  # pragma: no cover - older prometheus-client
    pass

# bounded label sets, present at 0 from the start so that the first increase is visible
TASKS = ("scheduler", "applier", "renderer", "demo_webhooks", "web_config_watcher")
WEBHOOK_SOURCES = ("generatorlabs", "hetrixtools")
FORGETTABLE = ("hetrixtools_monitor", "agent")
FORGET_REASONS = ("max_age", "request")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


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


def _gauge(name: str, value: float | None = None) -> GaugeMetricFamily:
    """A gauge family with the HELP and labels of the metric contract (exporter.metrics.contract)."""
    spec = BY_NAME[name]
    if value is not None:
        return GaugeMetricFamily(name, spec.help, value=value)
    return GaugeMetricFamily(name, spec.help, labels=list(spec.labels))


def _counter(name: str, registry: CollectorRegistry) -> Counter:
    spec = BY_NAME[name]
    return Counter(name.removesuffix("_total"), spec.help, list(spec.labels), registry=registry)


class SelfCollector(Collector):
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
        health = {c: live.store.health(c) for c in live.enabled}
        up = bool(health) and all(h.success for h in health.values())
        yield _gauge("generatorlabs_up", 1 if up else 0)
        success = _gauge("generatorlabs_collector_success")
        last = _gauge("generatorlabs_collector_last_success_timestamp_seconds")
        duration = _gauge("generatorlabs_collector_duration_seconds")
        interval = _gauge("generatorlabs_collector_interval_seconds")
        configured = _gauge("generatorlabs_collector_configured_interval_seconds")
        pages = _gauge("generatorlabs_collector_pages")
        planned = _gauge("generatorlabs_collector_planned_requests_per_hour")
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
        server = live.ledger.server
        if server is not None and server.remaining is not None:
            yield _gauge("generatorlabs_api_rate_limit_remaining", server.remaining)
        if server is not None and server.reset_at is not None:
            yield _gauge("generatorlabs_api_rate_limit_reset_timestamp_seconds", server.reset_at)
        backoff = live.ledger.backoff_until
        yield _gauge("generatorlabs_api_backoff_until_timestamp_seconds", backoff if backoff > now else 0)
        yield _gauge("generatorlabs_budget_requests_per_hour", live.ledger.per_hour)
        yield _gauge(
            "generatorlabs_budget_planned_requests_per_hour", live.plan.requests_per_hour if live.plan else 0
        )
        yield _gauge("generatorlabs_budget_used_requests", live.ledger.used(now))
        yield _gauge("generatorlabs_config_last_reload_successful", 1 if live.reload_ok else 0)
        yield _gauge("generatorlabs_config_last_reload_success_timestamp_seconds", live.reload_at)
        info = _gauge("generatorlabs_exporter_build_info")
        info.add_metric([__version__, platform.python_version()], 1)
        yield info
        stats = self._exposition()
        if stats is not None:  # from the first render on, every object kind and label, 0 or not
            skipped = _gauge("generatorlabs_exposition_skipped_objects")
            for kind, n in sorted(stats.skipped.items()):
                skipped.add_metric([kind], n)
            truncated = _gauge("generatorlabs_exposition_truncated_label_values")
            for label, n in sorted(stats.truncated.items()):
                truncated.add_metric([label], n)
            yield skipped
            yield truncated


class Telemetry:
    """Counters the edges increment, and the rendering of every self-metric."""

    def __init__(self, live: Live, now: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = _counter("generatorlabs_api_requests_total", self.registry)
        spec = BY_NAME["generatorlabs_api_request_duration_seconds"]
        self.latency = Histogram(
            spec.name, spec.help, list(spec.labels), buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.failures = _counter("generatorlabs_collector_failures_total", self.registry)
        self.parse_warnings = _counter("generatorlabs_parse_warnings_total", self.registry)
        self.webhook_requests = _counter("generatorlabs_webhook_requests_total", self.registry)
        self.webhook_rejected = _counter("generatorlabs_webhook_rejected_total", self.registry)
        self.task_restarts = _counter("generatorlabs_exporter_task_restarts_total", self.registry)
        for task in TASKS:
            self.task_restarts.labels(task)
        self.events_set_aside = _counter("generatorlabs_webhook_events_set_aside_total", self.registry)
        for source in WEBHOOK_SOURCES:
            self.events_set_aside.labels(source)
        self.forgotten = _counter("generatorlabs_webhook_objects_forgotten_total", self.registry)
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

    def render(self, openmetrics: bool) -> bytes:
        if openmetrics:
            body: bytes = generate_openmetrics(self.registry)  # type: ignore[no-untyped-call]
            return body
        return generate_latest(self.registry)
