"""Serve an exposition: choose the format, reuse the cached data render, append the self-metrics.

The data part is re-rendered (off the event loop) when the state changes, the plan changes, or a
minute passes (days-to-expiry and freshness move with time); a scrape never renders it unless no
render exists yet, and never calls the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from exporter.clock import Clock, sleep_or_event
from exporter.exposition import Freshness, Memo, RenderCache, render
from exporter.overlay import WebhookState
from exporter.state import Snapshot, StateStore
from exporter.telemetry import Telemetry

TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TIME_BUCKET = 60.0


@dataclass(frozen=True, slots=True)
class Exposition:
    body: bytes
    content_type: str
    gzipped: bool


def wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept


def wants_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.lower().split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        if coding == "gzip":
            return not any(p.replace(" ", "") in {"q=0", "q=0.0", "q=0.00", "q=0.000"} for p in params)
    return False


class Scraper:
    def __init__(
        self,
        clock: Clock,
        store: StateStore,
        telemetry: Telemetry,
        now: Callable[[], float],
        intervals: Callable[[], dict[str, float]],
        max_ages: Callable[[], dict[str, float]],
    ) -> None:
        self._clock = clock
        self._store = store
        self._telemetry = telemetry
        self._now = now
        self._intervals = intervals
        self._max_ages = max_ages
        self._cache: RenderCache | None = None
        self._memo: Memo = {}  # families reused across renders when their inputs are unchanged
        self.changed = asyncio.Event()
        self.renders = 0
        self.last_render_seconds = 0.0

    def key(self) -> object:
        intervals = self._intervals()
        return (self._store.version, tuple(sorted(intervals.items())),
                tuple(sorted(self._max_ages().items())), int(self._now() // TIME_BUCKET))

    def _inputs(self) -> tuple[object, dict[str, Snapshot], Freshness, WebhookState]:
        """Everything a render reads, copied on the event loop (snapshots are immutable; the
        webhook state is not, so it is copied)."""
        freshness = Freshness(self._now(), self._intervals(), self._max_ages())
        return (self.key(), dict(self._store.snapshots()), freshness,
                self._store.webhooks.copy())

    def _render(self, inputs: tuple[object, dict[str, Snapshot], Freshness, WebhookState]) -> RenderCache:
        key, snapshots, freshness, webhooks = inputs
        cache = RenderCache(render(snapshots, freshness, webhooks, self._memo), key)
        cache.gzip(False)  # Prometheus asks for gzip by default: have it ready
        self._cache = cache
        self.renders += 1
        return cache

    def render_now(self) -> RenderCache:
        """Render the data part for the current state, here and now."""
        return self._render(self._inputs())

    async def keep_rendered(self, coalesce: float = 0.05) -> None:
        """Background task: re-render after changes and once a time bucket passes.

        A burst of changes costs one render, and the pause after a render is at least as long
        as the render took, so rendering never takes more than about half the CPU away from
        serving requests however large the state grows."""
        while True:
            await sleep_or_event(self._clock, 5.0, self.changed)
            if self._cache is None or self._cache.key != self.key():
                started = self._clock.monotonic()
                await asyncio.to_thread(self._render, self._inputs())
                self.last_render_seconds = self._clock.monotonic() - started
            await self._clock.sleep(max(coalesce, self.last_render_seconds))

    def expose(self, accept: str, accept_encoding: str) -> Exposition:
        cache = self._cache if self._cache is not None else self.render_now()
        om = wants_openmetrics(accept)
        tail = self._telemetry.render(om)
        content_type = OPENMETRICS_TYPE if om else TEXT_TYPE
        if wants_gzip(accept_encoding):
            return Exposition(cache.gzip(om).complete(tail), content_type, True)
        return Exposition(cache.body(om) + tail, content_type, False)
