"""The Clock protocol and the real clock: the only place that reads time or sleeps."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


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
