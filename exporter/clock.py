"""Time: the units every module counts seconds in, the Clock protocol, the real clock and
`sleep_or_event`. Reads the time and sleeps (SystemClock), no other I/O.

Everything that decides with the wall clock (timestamps, the request ledger, ages, backoff) or
waits for one (poll intervals, renders, sweeps) goes through a Clock, so tests and benchmarks
drive it with a fake one. Exceptions, all bounds on the event loop's own time rather than
decisions: the listener's per-connection deadlines (exporter.web.server, loop.time and
call_later), and the asyncio timeouts of the webhook receivers and the applier's idle wait.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

# units of durations (in seconds) and sizes (in bytes)
SECOND = 1.0
MILLISECOND = SECOND / 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
YEAR = 365 * DAY
MIB = 1024 * 1024


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (exported timestamps, the request ledger)."""

    def monotonic(self) -> float:
        """Seconds for measuring durations."""

    async def sleep(self, seconds: float) -> None:
        """Wait; a fake clock advances instead."""


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


async def sleep_or_event(clock: Clock, seconds: float, event: asyncio.Event) -> None:
    """Sleep on `clock` for `seconds`, or less if `event` is (or gets) set; it is cleared after.

    An event set while the caller was busy ends the sleep at once, so no wake-up is lost.
    """
    if event.is_set():
        event.clear()
        return
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    waker = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, waker):
            task.cancel()
        event.clear()
