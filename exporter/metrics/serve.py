"""Serve an exposition: choose the format, reuse the cached data render, append the self-metrics.

The data part is re-rendered (off the event loop) when the state changes, the plan changes, or a
minute passes (days-to-expiry and freshness move with time); a scrape never renders it unless no
render exists yet, and never calls the API. An exposition is handed out as parts, the cached
data bytes themselves and the per-scrape tail, so that a scrape never copies the (multi-MB)
cached body: however many clients are being served, one copy of it exists.

The format follows the Accept header's weights (RFC 9110 §12.5.1): OpenMetrics only when it has
a positive q above the text format's (on a tie, whichever is listed first); `q=0` means "not
acceptable".

No I/O: renders run in a worker thread, and the bytes are written by exporter.web.routes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from exporter.clock import Clock, sleep_or_event
from exporter.metrics.render import Freshness, Memo, RenderCache, RenderStats, render
from exporter.metrics.selfmetrics import Telemetry
from exporter.state.overlay import WebhookState
from exporter.state.snapshot import Snapshot
from exporter.state.store import StateStore

log = structlog.get_logger("exporter.metrics.serve")

TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
OPENMETRICS_VERSIONS = {None, "0.0.1", "1.0.0"}  # what our OpenMetrics output satisfies
TEXT_RANGES = {"text/plain", "text/*", "*/*"}
TIME_BUCKET = 60.0  # seconds: re-render at least this often (ages and days-to-expiry move)
RENDER_LOOK = 5.0  # clock seconds between two looks at whether the render is stale
COALESCE = 0.05  # seconds to wait after a render at least, so a burst of changes costs one


@dataclass(frozen=True, slots=True)
class Exposition:
    """One scrape's answer: `parts` are written one after the other; the first is the cached
    render itself (shared by every scrape, never copied)."""

    parts: tuple[bytes, ...]
    content_type: str
    gzipped: bool


def _weighted(header: str) -> list[tuple[str, dict[str, str], float]]:
    """(value, parameters, q) for each element of an Accept-style header. A q that is not a
    number from 0 to 1 makes its element unacceptable (q=0)."""
    out = []
    for element in header.split(","):
        value, *params = element.split(";")
        parameters: dict[str, str] = {}
        for param in params:
            name, _, raw = param.partition("=")
            parameters[name.strip().lower()] = raw.strip().strip('"')
        q = 1.0
        if "q" in parameters:
            try:
                q = float(parameters["q"])
            except ValueError:
                q = 0.0
            if not 0.0 <= q <= 1.0:  # also NaN
                q = 0.0
        out.append((value.strip().lower(), parameters, q))
    return out


def wants_openmetrics(accept: str) -> bool:
    """OpenMetrics if the client weighs it above the text format (ties: the one listed first).
    Prometheus lists OpenMetrics first, at q=1 or at the highest q of its header."""
    best_om = best_text = (0.0, 0)  # (q, -position): the higher wins
    for position, (media, params, q) in enumerate(_weighted(accept)):
        rank = (q, -position)
        if media == "application/openmetrics-text" and params.get("version") in OPENMETRICS_VERSIONS:
            best_om = max(best_om, rank)
        elif media in TEXT_RANGES:
            best_text = max(best_text, rank)
    return best_om[0] > 0 and best_om > best_text


def wants_gzip(accept_encoding: str) -> bool:
    for coding, _, q in _weighted(accept_encoding):
        if coding == "gzip":
            return q > 0
    return False


class Scraper:
    """The cached data render and the answers built from it. `changed` is set by whoever changes
    what a render reads (the store, a reload): the renderer wakes up for it."""

    def __init__(
        self,
        clock: Clock,
        store: StateStore,
        telemetry: Telemetry,
        intervals: Callable[[], dict[str, float]],
        max_ages: Callable[[], dict[str, float]],
        changed: asyncio.Event,
    ) -> None:
        self._clock = clock
        self._store = store
        self._telemetry = telemetry
        self._now = clock.time
        self._intervals = intervals
        self._max_ages = max_ages
        self._cache: RenderCache | None = None
        self._memo: Memo = {}  # families reused across renders when their inputs are unchanged
        self.changed = changed
        self.last_render_seconds = 0.0
        self._last_skipped: dict[str, int] = {}

    def key(self) -> object:
        intervals = self._intervals()
        return (
            self._store.version,
            tuple(sorted(intervals.items())),
            tuple(sorted(self._max_ages().items())),
            int(self._now() // TIME_BUCKET),
        )

    def _inputs(self) -> tuple[object, dict[str, Snapshot], Freshness, WebhookState]:
        """Everything a render reads, copied on the event loop (snapshots are immutable; the
        webhook state is not, so it is copied)."""
        freshness = Freshness(self._now(), self._intervals(), self._max_ages())
        return (self.key(), dict(self._store.snapshots()), freshness, self._store.webhooks.copy())

    def _render(self, inputs: tuple[object, dict[str, Snapshot], Freshness, WebhookState]) -> RenderCache:
        key, snapshots, freshness, webhooks = inputs
        stats = RenderStats()
        cache = RenderCache(render(snapshots, freshness, webhooks, self._memo, stats), key, stats)
        cache.gzip(False)  # Prometheus asks for gzip by default: have it ready
        self._cache = cache
        self._report(stats)
        return cache

    def _report(self, stats: RenderStats) -> None:
        """Publish what the render left out or cut (self-metrics), and log a change once."""
        self._telemetry.exposition = stats
        skipped = {kind: n for kind, n in stats.skipped.items() if n}
        if skipped != self._last_skipped:
            self._last_skipped = skipped
            if skipped:
                log.warning("exposition.objects_skipped", skipped=skipped, errors=stats.errors)
            else:
                log.info("exposition.objects_skipped", skipped={})

    def render_now(self) -> RenderCache:
        """Render the data part for the current state, here and now."""
        return self._render(self._inputs())

    async def keep_rendered(self) -> None:
        """Background task: re-render after changes and once a time bucket passes.

        A burst of changes costs one render, and the pause after a render is at least as long
        as the render took, so rendering never takes more than about half the CPU away from
        serving requests however large the state grows."""
        while True:
            await sleep_or_event(self._clock, RENDER_LOOK, self.changed)
            if self._cache is None or self._cache.key != self.key():
                started = self._clock.monotonic()
                await asyncio.to_thread(self._render, self._inputs())
                self.last_render_seconds = self._clock.monotonic() - started
            await self._clock.sleep(max(COALESCE, self.last_render_seconds))

    def expose(self, accept: str, accept_encoding: str) -> Exposition:
        cache = self._cache if self._cache is not None else self.render_now()
        om = wants_openmetrics(accept)
        tail = self._telemetry.render(om)
        content_type = OPENMETRICS_TYPE if om else TEXT_TYPE
        if wants_gzip(accept_encoding):
            return Exposition(cache.gzip(om).pieces(tail), content_type, True)
        return Exposition((cache.body(om), tail), content_type, False)
