"""Shared fixtures: the fake clock and a factory for a scheduler wired to the simulator."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from exporter.config.model import Config
from exporter.config.parse import parse
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import Faults, SimulatedApi
from exporter.demo.simulator.transport import SimulatorTransport
from exporter.metrics.selfmetrics import Live, Telemetry
from exporter.polling.ledger import Ledger
from exporter.polling.scheduler import Scheduler
from exporter.state.store import StateStore

# Property-based tests: a modest number of examples in the suite; `python -m bench.fuzz` runs the
# same tests with FUZZ_EXAMPLES set much higher. Tests reuse one server across examples on purpose
# (state must survive hostile input), hence the function-scoped fixture health check is off.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
settings.register_profile(
    "exporter", max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=False, print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)
settings.load_profile("exporter")

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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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
    def make(hosts: int = 20, monitors: int = 10, raw: dict[str, Any] | None = None,
             faults: Faults | None = None, seed: int = 1, **account: Any) -> Rig:
        config: Config = parse(raw or {}).with_credentials(SID, TOKEN)
        acct = Account(hosts, monitors, clock.now, seed=seed, **account)
        api = SimulatedApi(acct, SID, TOKEN, faults=faults)
        store = StateStore()
        ledger = Ledger(config.budget.requests_per_hour, config.budget.requests_per_second)
        live = Live(store, ledger)
        telemetry = Telemetry(live, clock.time)
        transport = SimulatorTransport(api, clock, SID, TOKEN)
        scheduler = Scheduler(config, transport, ledger, store, telemetry, live, clock)
        return Rig(clock, acct, api, store, ledger, telemetry, live, scheduler)

    return make


@pytest.fixture
def make_rig(clock: FakeClock) -> Callable[..., Rig]:
    return make_rig_factory(clock)


def need_binary(name: str) -> str:
    """The path of a Debian binary the real-stack tests use; CI must have it, a laptop may not."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed; .ci/run installs it with apt-get")
        pytest.skip(f"{name} not installed")
    return path


# aioresponses 0.7.9 builds ClientResponse without the `stream_writer` argument that aiohttp 3.14
# requires (pnuckowski/aioresponses#289, fix pending in #288). Supply a harmless one until a fixed
# release is out; remove this block then.
def _patch_aioresponses() -> None:
    import inspect
    from unittest.mock import Mock

    import aioresponses.core
    from aiohttp import ClientResponse

    if "stream_writer" not in inspect.signature(ClientResponse.__init__).parameters:
        return

    class CompatResponse(ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", Mock(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = CompatResponse  # type: ignore[misc]


_patch_aioresponses()
