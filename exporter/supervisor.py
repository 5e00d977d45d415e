"""Supervised background tasks: a task that raises is logged, counted and restarted with backoff.

No background task of the exporter may die in silence: the scheduler, the webhook applier, the
renderer, the demo's webhook sender and the web-config watcher all run under one Supervisor. A
task that keeps failing (CRASH_LOOP crashes in a row, each after less than STABLE_AFTER seconds
of running) is reported by `failing()`, which turns `/-/healthy` to 503 so that a liveness probe
restarts the process, until the task has run STABLE_AFTER seconds again. Time comes from the
injected clock, so tests run crash loops instantly. No I/O besides the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from exporter.api.fields import loggable
from exporter.clock import Clock

log = structlog.get_logger("exporter.supervisor")

BACKOFF_FIRST = 1.0  # seconds before the first restart; doubles per crash in a row
BACKOFF_CAP = 60.0
STABLE_AFTER = 60.0  # a run this long resets the crash count
CRASH_LOOP = 5  # crashes in a row that make the task (and /-/healthy) unhealthy
SHOWN_ERROR_CHARS = 200  # at most this much of an error's text reaches the log and /-/healthy
MAX_TRACEBACK_KINDS = 20  # distinct errors per task whose traceback is logged (memory bound)

TaskFactory = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class _Watch:
    crashes_in_a_row: int = 0
    last_error: str = ""
    logged: frozenset[str] = frozenset()  # error kinds whose traceback was logged already
    running_since: float | None = None  # None while waiting to restart


class Supervisor:
    """Named background tasks, each restarted with backoff whenever it raises (see above)."""

    def __init__(self, clock: Clock, on_restart: Callable[[str], None] | None = None) -> None:
        self._clock = clock
        self._on_restart = on_restart
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._watch: dict[str, _Watch] = {}

    def start(self, name: str, factory: TaskFactory) -> None:
        """Run `factory()` as task `name` until stopped, restarting it whenever it raises."""
        if name in self._tasks and not self._tasks[name].done():
            raise RuntimeError(f"task {name} is running already")
        self._watch[name] = _Watch()
        self._tasks[name] = asyncio.create_task(self._keep(name, factory), name=name)

    async def _keep(self, name: str, factory: TaskFactory) -> None:
        watch = self._watch[name]
        while True:
            started = watch.running_since = self._clock.monotonic()
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._crashed(name, watch, err, self._clock.monotonic() - started)
            else:
                log.warning("task.returned", task=name)  # a daemon task should never return
                watch.crashes_in_a_row = 0
            watch.running_since = None
            delay = min(BACKOFF_FIRST * 2 ** max(watch.crashes_in_a_row - 1, 0), BACKOFF_CAP)
            await self._clock.sleep(delay)
            if self._on_restart is not None:
                self._on_restart(name)

    def _crashed(self, name: str, watch: _Watch, err: Exception, ran: float) -> None:
        watch.crashes_in_a_row = 1 if ran >= STABLE_AFTER else watch.crashes_in_a_row + 1
        # the text goes into a log line and the /-/healthy answer, and an exception's message
        # may hold anything (a lone surrogate from hostile input)
        kind = loggable(f"{type(err).__name__}: {err}", SHOWN_ERROR_CHARS)
        watch.last_error = kind
        if kind not in watch.logged:  # the traceback once per distinct error, not per restart
            watch.logged = watch.logged | {kind} if len(watch.logged) < MAX_TRACEBACK_KINDS else watch.logged
            log.error(
                "task.crashed", task=name, error=kind, crashes_in_a_row=watch.crashes_in_a_row, exc_info=err
            )
        else:
            log.warning("task.crashed", task=name, error=kind, crashes_in_a_row=watch.crashes_in_a_row)

    def failing(self) -> dict[str, str]:
        """Tasks in a crash loop, with their last error: what `/-/healthy` reports. A task that
        has been running for STABLE_AFTER seconds since its last crash has recovered."""
        now = self._clock.monotonic()
        return {
            name: w.last_error
            for name, w in self._watch.items()
            if w.crashes_in_a_row >= CRASH_LOOP
            and (w.running_since is None or now - w.running_since < STABLE_AFTER)
        }

    async def stop(self, *names: str) -> None:
        """Cancel the named tasks (none named: every task) and wait for each to end (a
        cancellation of the caller itself is not swallowed)."""
        tasks = [self._tasks.pop(n) for n in (names or list(self._tasks)) if n in self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
