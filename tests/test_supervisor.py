"""Supervised background tasks on the fake clock: a task that raises is logged, counted and
restarted with growing backoff; a crash loop turns /-/healthy 503 naming the task, and 200 again
once the task has recovered; stop() ends everything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import structlog

from exporter.app import Exporter
from exporter.supervisor import BACKOFF_CAP, BACKOFF_FIRST, CRASH_LOOP, STABLE_AFTER, Supervisor
from exporter.web.routes import ServerParts, build_app
from tests.helpers.exporters import simulated_exporter
from tests.helpers.rig import FakeClock


@pytest.fixture
async def exporter(clock: FakeClock) -> AsyncIterator[Exporter]:
    """The exporter as the app builds it: its supervisor counts restarts in its telemetry."""
    async with simulated_exporter(clock) as simulated:
        yield simulated.exporter


class Flaky:
    """A task factory: raises while `failing`, and each run first sleeps `runs_for` seconds."""

    def __init__(self, clock: FakeClock, runs_for: float = 0.0) -> None:
        self.clock = clock
        self.runs_for = runs_for
        self.failing = True
        self.message = "boom"
        self.starts: list[float] = []
        self.cancelled = False

    async def __call__(self) -> None:
        self.starts.append(self.clock.now)
        try:
            if self.runs_for:
                await self.clock.sleep(self.runs_for)
            if self.failing:
                raise RuntimeError(self.message)
            await asyncio.Event().wait()  # a healthy daemon task runs until cancelled
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def until(predicate: Callable[[], bool]) -> None:
    """Let the event loop run until `predicate` holds (bounded: no real sleep, no deadline)."""
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0)
    pytest.fail("the condition never held")


def restarts(exporter: Exporter, task: str) -> float:
    text = exporter.telemetry.render(False).decode()
    line = f'generatorlabs_exporter_task_restarts_total{{task="{task}"}} '
    return float(next(x for x in text.splitlines() if x.startswith(line)).rsplit(" ", 1)[1])


async def test_a_crashing_task_is_restarted_with_growing_backoff_and_counted(
    exporter: Exporter, clock: FakeClock
) -> None:
    flaky = Flaky(clock)
    with structlog.testing.capture_logs() as logs:
        exporter.supervisor.start("applier", flaky)
        await until(lambda: len(flaky.starts) >= 9)
        await exporter.supervisor.stop()
    gaps = [b - a for a, b in zip(flaky.starts, flaky.starts[1:], strict=False)]
    assert gaps[:8] == [min(BACKOFF_FIRST * 2**i, BACKOFF_CAP) for i in range(8)]
    assert restarts(exporter, "applier") == len(flaky.starts) - 1
    assert restarts(exporter, "scheduler") == 0
    crashed = [e for e in logs if e["event"] == "task.crashed"]
    # the traceback once, then one warning line per crash
    assert [e["log_level"] for e in crashed[:3]] == ["error", "warning", "warning"]
    assert "exc_info" in crashed[0] and all("exc_info" not in e for e in crashed[1:])
    assert crashed[0]["task"] == "applier" and crashed[0]["error"] == "RuntimeError: boom"


async def test_a_crash_loop_is_reported_by_failing(exporter: Exporter, clock: FakeClock) -> None:
    flaky = Flaky(clock)
    supervisor = exporter.supervisor
    with structlog.testing.capture_logs():
        supervisor.start("renderer", flaky)
        await until(lambda: len(flaky.starts) == CRASH_LOOP - 1)
        await until(lambda: clock.now > flaky.starts[-1])  # the fourth run crashed too
        assert supervisor.failing() == {}
        await until(lambda: len(flaky.starts) == CRASH_LOOP + 1)
        assert supervisor.failing() == {"renderer": "RuntimeError: boom"}
        await supervisor.stop()


async def test_a_task_that_ran_long_enough_starts_counting_again(
    exporter: Exporter, clock: FakeClock
) -> None:
    flaky = Flaky(clock, runs_for=STABLE_AFTER)  # each run lasts long enough, then raises
    with structlog.testing.capture_logs():
        exporter.supervisor.start("scheduler", flaky)
        await until(lambda: len(flaky.starts) >= CRASH_LOOP + 3)
        assert exporter.supervisor.failing() == {}
        await exporter.supervisor.stop()
    gaps = [b - a for a, b in zip(flaky.starts, flaky.starts[1:], strict=False)]
    assert set(gaps) == {STABLE_AFTER + BACKOFF_FIRST}  # the backoff never grows


async def test_a_recovered_task_is_no_longer_failing(exporter: Exporter, clock: FakeClock) -> None:
    flaky = Flaky(clock)
    supervisor = exporter.supervisor
    with structlog.testing.capture_logs():
        supervisor.start("applier", flaky)
        await until(lambda: bool(supervisor.failing()))
        flaky.failing = False
        runs = len(flaky.starts)
        await until(lambda: len(flaky.starts) > runs)  # restarted, and running now
        assert supervisor.failing() != {}  # not for long enough yet
        await clock.sleep(STABLE_AFTER)
        assert supervisor.failing() == {}
        await supervisor.stop()


async def test_stop_cancels_every_task(clock: FakeClock) -> None:
    supervisor = Supervisor(clock)
    healthy, crashing = Flaky(clock), Flaky(clock)
    healthy.failing = False
    with structlog.testing.capture_logs():
        supervisor.start("scheduler", healthy)
        supervisor.start("applier", crashing)
        with pytest.raises(RuntimeError, match="running already"):
            supervisor.start("scheduler", healthy)
        await until(lambda: bool(healthy.starts) and len(crashing.starts) > 2)
        await supervisor.stop()
    assert healthy.cancelled
    starts = len(crashing.starts)
    for _ in range(100):
        await asyncio.sleep(0)
    assert len(crashing.starts) == starts  # never restarted after stop()
    assert [t for t in asyncio.all_tasks() if t.get_name() in ("scheduler", "applier")] == []


async def test_healthy_answers_503_naming_the_failing_task_and_200_once_it_recovers(
    aiohttp_client: Any, exporter: Exporter, clock: FakeClock
) -> None:
    async def reload() -> list[str]:
        return []

    app = build_app(
        ServerParts(
            exporter.scraper,
            exporter.store,
            exporter.live,
            reload,
            clock.time,
            failing=exporter.supervisor.failing,
        )
    )
    client = await aiohttp_client(app)
    assert (await client.get("/-/healthy")).status == 200
    flaky = Flaky(clock)
    with structlog.testing.capture_logs():
        exporter.supervisor.start("applier", flaky)
        await until(lambda: bool(exporter.supervisor.failing()))
        response = await client.get("/-/healthy")
        assert response.status == 503
        assert "applier: RuntimeError: boom" in await response.text()
        flaky.failing, flaky.runs_for = False, STABLE_AFTER  # the next run stays up
        await until(lambda: not exporter.supervisor.failing())
        response = await client.get("/-/healthy")
        assert response.status == 200
        await exporter.supervisor.stop()


async def test_healthy_stays_readable_whatever_the_error_says(
    aiohttp_client: Any, exporter: Exporter, clock: FakeClock
) -> None:
    """An exception's message may carry hostile text (a lone surrogate); /-/healthy still
    answers 503 with it escaped, never a 500."""

    async def reload() -> list[str]:
        return []

    parts = ServerParts(
        exporter.scraper,
        exporter.store,
        exporter.live,
        reload,
        clock.time,
        failing=exporter.supervisor.failing,
    )
    client = await aiohttp_client(build_app(parts))
    flaky = Flaky(clock)
    flaky.message = "bad id \udcff\x00 from a webhook"
    with structlog.testing.capture_logs():
        exporter.supervisor.start("applier", flaky)
        await until(lambda: bool(exporter.supervisor.failing()))
        response = await client.get("/-/healthy")
        assert response.status == 503
        assert "applier: RuntimeError: bad id \\udcff\\x00 from a webhook" in await response.text()
        await exporter.supervisor.stop()
