"""The simulated account under a fake clock: a scheduler wired to the simulator through the
in-process transport, so that hours of polling run in milliseconds (no I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.app import poll_settings
from exporter.config.model import Config
from exporter.config.parse import parse
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import Faults, SimulatedApi
from exporter.demo.simulator.transport import SimulatorTransport
from exporter.metrics.selfmetrics import Live, Telemetry
from exporter.polling.ledger import Ledger
from exporter.polling.scheduler import Scheduler, SendJournal, Transport
from exporter.state.store import StateStore

SID = "AC" + "1" * 32
TOKEN = "f" * 64
START = 1_790_000_000.0  # 2026-09-21


class FakeClock:
    """Time moves only when something sleeps; sleeping still yields to the event loop."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


@dataclass
class Rig:
    """A scheduler polling a simulated account through the in-process transport."""

    clock: FakeClock
    account: Account
    api: SimulatedApi
    store: StateStore
    ledger: Ledger
    telemetry: Telemetry
    live: Live
    scheduler: Scheduler

    async def run_for(self, seconds: float) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            await self.scheduler.step()


def make_rig_factory(clock: FakeClock) -> Callable[..., Rig]:
    """`make(...)` builds a Rig. `wrap` replaces the simulator transport by what it returns (a
    recorder around it, or another transport); `token` is the auth token the exporter sends;
    `journal_send` is awaited before each request, as the state file's ledger write is."""

    def make(
        hosts: int = 20,
        monitors: int = 10,
        raw: dict[str, Any] | None = None,
        faults: Faults | None = None,
        seed: int = 1,
        *,
        wrap: Callable[[Transport], Transport] | None = None,
        token: str = TOKEN,
        journal_send: SendJournal | None = None,
        **account: Any,
    ) -> Rig:
        config: Config = parse(raw or {}).with_credentials(SID, TOKEN)
        acct = Account(hosts, monitors, clock.now, seed=seed, **account)
        api = SimulatedApi(acct, SID, TOKEN, faults=faults)
        store = StateStore()
        ledger = Ledger(config.budget.requests_per_hour, config.budget.requests_per_second)
        live = Live(store, ledger)
        telemetry = Telemetry(live, clock.time)
        transport: Transport = SimulatorTransport(api, clock, SID, token)
        if wrap is not None:
            transport = wrap(transport)
        scheduler = Scheduler(
            poll_settings(config), transport, ledger, store, telemetry, live, clock, journal_send=journal_send
        )
        return Rig(clock, acct, api, store, ledger, telemetry, live, scheduler)

    return make
