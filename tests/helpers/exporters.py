"""A complete exporter for tests, built by the app's own wiring (exporter.app.open_exporter) on a
simulated account through the in-process transport. Its state lives in memory unless a path is
given (then that file is the only I/O)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from exporter.app import Exporter, open_exporter
from exporter.clock import Clock
from exporter.config.model import Config
from exporter.config.parse import parse
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import SimulatedApi
from exporter.demo.simulator.transport import SimulatorTransport
from exporter.state.sqlite import Owner
from tests.helpers.rig import SID, TOKEN


@dataclass(frozen=True, slots=True)
class Simulated:
    """The exporter and the simulated API it polls."""

    exporter: Exporter
    api: SimulatedApi


@contextlib.asynccontextmanager
async def simulated_exporter(
    clock: Clock,
    config: Config | None = None,
    *,
    hosts: int = 5,
    monitors: int = 2,
    path: str = ":memory:",
    owner: Owner | None = None,
    sid: str = SID,
    token: str = TOKEN,
    **account: Any,
) -> AsyncIterator[Simulated]:
    """The exporter on an account of `hosts` hosts and `monitors` monitors (credentials `sid` and
    `token`; `account`: more of the simulated Account's settings), for as long as the context
    lasts; its state file (or memory) is closed after."""
    config = config if config is not None else parse({}).with_credentials(sid, token)
    api = SimulatedApi(Account(hosts, monitors, clock.time(), **account), sid, token)
    transport = SimulatorTransport(api, clock, sid, token)
    async with open_exporter(config, transport, clock, path, owner) as exporter:
        yield Simulated(exporter, api)
