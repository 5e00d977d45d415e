"""Serve an exposition: choose the format, reuse the cached data render, append the self-metrics.

The data part is rendered again (off the event loop, and only where the state changed: see
exporter.metrics.render) when the state changes, the plan changes, or a minute passes
(days-to-expiry and freshness move with time); a scrape never renders it unless no render
exists yet, and never calls the API. An exposition is handed out as parts: the cached gzip
members themselves and one member for the per-scrape self-metrics (a stream of gzip members is
one gzip stream), or, uncompressed, the members inflated one by one as they are written. So a
scrape never copies the cached body, and no uncompressed copy of it is ever held whole.

Renders coalesce: changes that arrive while a render runs or during the pause after it are
folded into the next one. Rendering is paced by a budget that fills at RENDER_SHARE of the time
up to RENDER_BURST seconds and is spent by each render's duration; when it runs out, the
renderer pauses until it is back to zero. So over the long run rendering takes at most about
half the CPU however large the state and however many webhooks arrive (a stream of long renders
each waits as long as the one before took), while a change that follows one long render is not
made to wait for a pause as long as that render. Intake and scrapes stay on the event loop,
never waiting for a render.

The format follows the Accept header's weights (RFC 9110 §12.5.1): OpenMetrics only when it has
a positive q above the text format's (on a tie, whichever is listed first); `q=0` means "not
acceptable".

No I/O: renders run in a worker thread, and the bytes are written by exporter.web.routes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain

import structlog

from exporter.clock import Clock, sleep_or_event
from exporter.metrics.lines import Freshness, RenderStats
from exporter.metrics.render import EXPIRY_STEP, PER_HOST_ALL, Rendered, Renderer, gzip_member
from exporter.metrics.selfmetrics import Telemetry
from exporter.state.overlay import WebhookState
from exporter.state.snapshot import Snapshot
from exporter.state.store import StateStore

log = structlog.get_logger("exporter.metrics.serve")

TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
OPENMETRICS_VERSIONS = {None, "0.0.1", "1.0.0"}  # what our OpenMetrics output satisfies
TEXT_RANGES = {"text/plain", "text/*", "*/*"}
# seconds: re-render at least this often (ages and days-to-expiry move); days to expiry are
# computed at the start of the bucket (exporter.metrics.render.EXPIRY_STEP)
TIME_BUCKET = EXPIRY_STEP
RENDER_LOOK = 5.0  # clock seconds between two looks at whether the render is stale
COALESCE = 0.01  # seconds to wait after a render at least, so a burst of changes costs one
RENDER_SHARE = 0.5  # of the (monotonic) time, the most rendering takes over the long run
# seconds of rendering allowed ahead of that share: a lone change that follows a long render (the
# minute's, a HetrixTools burst's) is rendered at once, not after a pause as long as that render
RENDER_BURST = 1.0


@dataclass(frozen=True, slots=True)
class Exposition:
    """One scrape's answer: `parts` are written one after the other (`length` bytes in all).
    Gzipped, they are the cached members themselves (shared by every scrape, never copied) and
    the self-metrics' member; uncompressed, an iterator that inflates them one at a time."""

    parts: Iterable[bytes]
    length: int
    content_type: str
    gzipped: bool


@dataclass(frozen=True, slots=True)
class _Inputs:
    """Everything a render reads, taken on the event loop."""

    key: object
    snapshots: dict[str, Snapshot]
    freshness: Freshness
    webhooks: WebhookState
    per_host: str


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
    what a render reads (the store, a reload): the renderer wakes up for it. `per_host` is the
    exposition.per_host setting (exporter.metrics.render.PER_HOST); set it, then `changed`."""

    def __init__(
        self,
        clock: Clock,
        store: StateStore,
        telemetry: Telemetry,
        intervals: Callable[[], dict[str, float]],
        max_ages: Callable[[], dict[str, float]],
        changed: asyncio.Event,
        *,
        per_host: str = PER_HOST_ALL,
    ) -> None:
        self._clock = clock
        self._store = store
        self._telemetry = telemetry
        self._now = clock.time
        self._intervals = intervals
        self._max_ages = max_ages
        self.per_host = per_host
        self._data = Renderer(per_host=per_host)  # what is kept between renders
        self._lock = threading.Lock()  # one render at a time
        self._current: tuple[object, Rendered] | None = None  # (its key, the render)
        self.changed = changed
        self.last_render_seconds = 0.0
        self.last_lag_seconds = 0.0  # from the wake-up for a change to the new render served
        self.renders = 0  # renders done
        self._last_skipped: dict[str, int] = {}

    def key(self) -> object:
        intervals = self._intervals()
        return (
            self._store.version,
            tuple(sorted(intervals.items())),
            tuple(sorted(self._max_ages().items())),
            int(self._now() // TIME_BUCKET),
            self.per_host,
        )

    def _inputs(self) -> _Inputs:
        """Everything a render reads, copied on the event loop (snapshots are immutable; the
        webhook state is not, so it is copied: its marks and records are replaced when they
        change, never changed in place, so the copy shares them and a render can tell by
        identity what changed)."""
        freshness = Freshness(self._now(), self._intervals(), self._max_ages())
        webhooks = self._store.webhooks.copy()
        return _Inputs(self.key(), dict(self._store.snapshots()), freshness, webhooks, self.per_host)

    def _render(self, inputs: _Inputs) -> Rendered:
        with self._lock:
            if self._data.per_host != inputs.per_host:
                self._data = Renderer(per_host=inputs.per_host)
            rendered = self._data.update(inputs.snapshots, inputs.freshness, inputs.webhooks)
            self._current = (inputs.key, rendered)
            self.renders += 1
        self._report(rendered.stats)
        return rendered

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

    def render_now(self) -> Rendered:
        """Render the data part for the current state, here and now."""
        return self._render(self._inputs())

    async def keep_rendered(self) -> None:
        """Background task: render again after changes and once a time bucket passes.

        A burst of changes costs one render, and renders are paced by a budget (RENDER_SHARE of
        the time, RENDER_BURST ahead at most), so rendering never takes more than about half
        the CPU away from serving requests however large the state grows."""
        budget, at = RENDER_BURST, self._clock.monotonic()
        while True:
            await sleep_or_event(self._clock, RENDER_LOOK, self.changed)
            if self._current is None or self._current[0] != self.key():
                started = self._clock.monotonic()
                await asyncio.to_thread(self._render, self._inputs())
                self.last_render_seconds = self.last_lag_seconds = self._clock.monotonic() - started
                budget -= self.last_render_seconds
            now = self._clock.monotonic()
            budget, at = min(RENDER_BURST, budget + (now - at) * RENDER_SHARE), now
            await self._clock.sleep(max(COALESCE, -budget / RENDER_SHARE))

    def expose(self, accept: str, accept_encoding: str) -> Exposition:
        rendered = self._current[1] if self._current is not None else self.render_now()
        om = wants_openmetrics(accept)
        tail = self._telemetry.render(om)
        content_type = OPENMETRICS_TYPE if om else TEXT_TYPE
        if wants_gzip(accept_encoding):
            parts = (*rendered.parts(om), gzip_member(tail))
            return Exposition(parts, sum(map(len, parts)), content_type, True)
        body = chain(rendered.body(om), (tail,))
        return Exposition(body, rendered.size(om) + len(tail), content_type, False)
