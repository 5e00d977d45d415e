"""How the renderer paces itself: a change that follows one long render (the minute's, or a burst
of HetrixTools chunks') is rendered at once, not after a pause as long as that render, while a
stream of long renders still leaves about half of the time to intake and scrapes. Time here is
a scripted clock that each render moves on by a set amount: no wall clock is read."""

from __future__ import annotations

import asyncio
from typing import cast

from exporter.metrics.lines import RenderStats
from exporter.metrics.selfmetrics import Telemetry
from exporter.metrics.serve import COALESCE, RENDER_BURST, RENDER_LOOK, RENDER_SHARE, Scraper
from exporter.state.store import StateStore

NOW = 1_800_000_000.0


class ScriptedClock:
    """Wall time stands still (no minute passes); monotonic time moves by each sleep, and by
    `render_seconds` during each render. Every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.render_seconds = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return NOW

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Renders:
    """Stands for the telemetry: a render publishes its stats here, from the render's thread.
    That moves the clock on by the render's duration and, while `changes` is left, makes the
    store change again (as webhooks keep arriving during the render)."""

    def __init__(self, clock: ScriptedClock, store: StateStore, loop: asyncio.AbstractEventLoop) -> None:
        self.clock, self.store, self.loop = clock, store, loop
        self.changes = 0
        self.durations: list[float] = []

    @property
    def exposition(self) -> RenderStats:
        return RenderStats()

    @exposition.setter
    def exposition(self, stats: RenderStats) -> None:
        self.clock.now += self.clock.render_seconds
        self.durations.append(self.clock.render_seconds)
        if self.changes > 0:
            self.changes -= 1
            self.loop.call_soon_threadsafe(self.store.webhooks_changed)


async def paced(render_seconds: float, changes: int) -> tuple[ScriptedClock, Renders]:
    """Run the renderer until it has rendered `changes` + 1 times, each render taking
    `render_seconds`, a change arriving during each of the first `changes`; then one look more."""
    clock, store = ScriptedClock(), StateStore()
    renders = Renders(clock, store, asyncio.get_running_loop())
    renders.changes = changes
    changed = asyncio.Event()
    store.on_change = changed.set
    scraper = Scraper(clock, store, cast(Telemetry, renders), dict, dict, changed)
    clock.render_seconds = render_seconds
    task = asyncio.ensure_future(scraper.keep_rendered())
    try:
        for _ in range(100_000):  # yields to the loop while the worker thread renders
            if scraper.renders > changes and RENDER_LOOK in clock.sleeps:
                break
            await asyncio.sleep(0)
        else:
            raise AssertionError(f"{scraper.renders} renders, not {changes + 1}")
    finally:
        task.cancel()
    assert scraper.renders == changes + 1  # each change rendered once, nothing more
    return clock, renders


def pauses(clock: ScriptedClock) -> list[float]:
    """The pauses after renders (the other sleeps are the renderer's looks)."""
    return [s for s in clock.sleeps if s != RENDER_LOOK]


async def test_a_change_after_one_long_render_is_rendered_without_a_long_pause() -> None:
    clock, renders = await paced(render_seconds=0.8, changes=1)
    assert renders.durations == [0.8, 0.8]
    # the change that arrived during the first render waited only to coalesce with others
    assert pauses(clock)[0] == COALESCE


async def test_a_stream_of_long_renders_takes_about_half_of_the_time() -> None:
    clock, renders = await paced(render_seconds=0.8, changes=12)
    rendering, elapsed = sum(renders.durations), clock.now
    assert rendering <= RENDER_SHARE * elapsed + RENDER_BURST + 1e-9
    assert pauses(clock)[-2] >= 0.8 - 1e-9  # once the budget is spent: a pause as long as a render


async def test_short_renders_wait_only_to_coalesce() -> None:
    clock, _ = await paced(render_seconds=0.005, changes=20)
    assert set(pauses(clock)) == {COALESCE}
