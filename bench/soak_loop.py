"""The soak's time: an event loop that can tell when it is idle, the virtual clock the exporter
sleeps on, and the driver that moves virtual time only when nothing else can run and bounds
every wait in wall-clock time (an operation or a phase over its cap raises Overrun).

No I/O of its own: it runs the event loop and reads the wall clock (time.monotonic) for deadlines."""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar, TypeVarTuple, Unpack

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

WALL_SETUP = 60.0  # wall-clock cap of the set-up phase and of the shutdown
WALL_OP = 30.0  # wall-clock cap of one operation (a request, a start, a stop)
IDLE_BEFORE_ADVANCE = 0.02  # real seconds the loop stays idle before `complete` moves the clock
POLL_BUSY = 0.0002  # real seconds between looks at a loop waiting on threads or sockets


class Overrun(Exception):
    """A phase or an operation took longer than its wall-clock cap: the soak would hang."""


class _Job:
    """One function run in a thread pool, tracked from submission to its end (or its
    cancellation before it started), so the harness knows when no thread work is pending."""

    def __init__(self, loop: SoakLoop) -> None:
        self.loop = loop
        self.state = "queued"
        with loop.lock:
            loop.jobs += 1

    def end(self, only_if: str | None = None) -> None:
        with self.loop.lock:
            if self.state in ("queued", "running") and only_if in (None, self.state):
                self.loop.jobs -= 1
                self.state = "done"

    def wrap(self, func: Callable[[Unpack[Ts]], T]) -> Callable[[Unpack[Ts]], T]:
        def run(*args: *Ts) -> T:
            with self.loop.lock:
                if self.state != "queued":  # cancelled before it started: nobody awaits a result
                    raise concurrent.futures.CancelledError
                self.state = "running"
            try:
                return func(*args)
            finally:
                self.end()

        return run

    def future_done(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self.end(only_if="queued")  # a job already running ends when it returns


class SoakLoop(asyncio.SelectorEventLoop):
    """An event loop that can tell when it is idle: no ready callback, no thread job pending,
    no HTTP request of the exporter's or the harness's in flight (`inflight`, counted by them)."""

    _ready: deque[Any]  # BaseEventLoop's queue of callbacks to run; read only by _has_ready_callbacks

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.jobs = 0
        self.inflight = 0

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[Ts]], T], *args: *Ts
    ) -> asyncio.Future[T]:
        job = _Job(self)
        try:
            future = super().run_in_executor(executor, job.wrap(func), *args)
        except BaseException:
            job.end()
            raise
        future.add_done_callback(job.future_done)
        return future

    def _has_ready_callbacks(self) -> bool:
        # asyncio has no public way to ask whether callbacks are queued to run: I/O callbacks and
        # due timers go straight into BaseEventLoop's private `_ready` deque (CPython 3.11), never
        # through a public method a subclass could count. This is the soak's only private read.
        return bool(self._ready)

    def idle(self) -> bool:
        return not self._has_ready_callbacks() and not self.busy_outside()

    def busy_outside(self) -> bool:
        """Work that takes real time (threads, sockets) is pending."""
        return self.jobs > 0 or self.inflight > 0


class VirtualClock:
    """The exporter's clock (exporter.clock.Clock): time moves only when the driver says so."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.odd_sleeps: Counter[str] = Counter()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def elapsed(self) -> float:
        """Virtual seconds since the start."""
        return self.now - self.start

    async def sleep(self, seconds: float) -> None:
        if math.isnan(seconds):
            self.odd_sleeps["nan"] += 1
            seconds = 0.0
        if seconds > 365 * 86400:
            self.odd_sleeps["over_a_year"] += 1
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), future))
        await future

    def next_deadline(self) -> float | None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def advance(self, to: float) -> None:
        self.now = max(self.now, to)
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)


class Driver:
    """Runs the loop until it is idle, moves virtual time, and bounds every wait in wall time."""

    def __init__(self, loop: SoakLoop, clock: VirtualClock) -> None:
        self.loop = loop
        self.clock = clock
        self.phase = "setup"
        self.phase_deadline = time.monotonic() + WALL_SETUP
        self.phase_walls: dict[str, float] = {}
        self._phase_started = time.monotonic()

    def start_phase(self, name: str, cap: float) -> None:
        now = time.monotonic()
        self.phase_walls[self.phase] = round(
            self.phase_walls.get(self.phase, 0.0) + now - self._phase_started, 2
        )
        self.phase, self.phase_deadline, self._phase_started = name, now + cap, now

    def end_phases(self) -> None:
        self.start_phase("done", 0.0)
        self.phase_walls.pop("done", None)

    def _check(self, deadline: float, what: str) -> None:
        now = time.monotonic()
        at = f"virtual time +{self.clock.elapsed():.0f}s"
        if now > deadline:
            raise Overrun(f"{what}: over its wall-clock cap (phase {self.phase}, {at})")
        if now > self.phase_deadline:
            raise Overrun(f"phase {self.phase}: over its wall-clock cap at {at}, during {what}")

    async def settle(self, what: str = "settling") -> None:
        """Until the loop is idle twice in a row; virtual time stands still meanwhile."""
        deadline = time.monotonic() + WALL_OP
        idle = 0
        while idle < 2:
            await asyncio.sleep(0)
            if self.loop.idle():
                idle += 1
                continue
            idle = 0
            if self.loop.busy_outside():
                await asyncio.sleep(POLL_BUSY)
            self._check(deadline, what)

    async def run_until(self, t: float) -> None:
        """Move virtual time to `t`, waking every sleeper on the way in order."""
        while True:
            await self.settle()
            nxt = self.clock.next_deadline()
            if nxt is None or nxt > t:
                self.clock.advance(t)
                await self.settle()
                return
            self.clock.advance(nxt)
            self._check(self.phase_deadline, "running virtual time")

    async def complete(
        self, awaitable: Awaitable[T], what: str, *, advance: bool = False, cap: float = WALL_OP
    ) -> T:
        """Run one operation to its end. Virtual time moves only with `advance` and only when
        nothing else can run (a shutdown that waits on the clock)."""
        task = asyncio.ensure_future(awaitable)
        deadline = time.monotonic() + cap
        idle_since: float | None = None
        while not task.done():
            await asyncio.sleep(0)
            if self.loop.busy_outside():
                idle_since = None
                await asyncio.sleep(POLL_BUSY)
            elif advance and self.loop.idle():
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > IDLE_BEFORE_ADVANCE:
                    self._wake_next_sleeper()
            try:
                self._check(deadline, what)
            except Overrun:
                task.cancel()
                raise
        return task.result()

    def _wake_next_sleeper(self) -> None:
        nxt = self.clock.next_deadline()
        if nxt is not None:
            self.clock.advance(nxt)
