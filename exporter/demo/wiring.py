"""The built-in demo (`--demo`): the simulator in-process on a loopback port, a lively account,
fast intervals, and the simulator's webhooks pointed at the running exporter.

Its account SID is fixed, so that a demo restarted on the same `state.path` keeps its state (the
state file belongs to one account); only its auth token is random. Without a `state.path`, each
demo process keeps its state in a temporary directory of its own, removed on exit, so that two
demos never share a state file. I/O: the simulator's socket and that directory.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
from aiohttp import web

from exporter.clock import Clock
from exporter.config.model import CollectorConfig, Config
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import SimulatedApi
from exporter.demo.simulator.app import start_simulator
from exporter.demo.simulator.webhooks import WebhookSender

DEMO_INTERVALS = {
    "rbl_listings": 15.0,
    "cert_errors": 15.0,
    "rbl_hosts": 60.0,
    "cert_monitors": 60.0,
    "rbl_profiles": 300.0,
    "cert_profiles": 300.0,
    "rbl_sources": 600.0,
    "contacts": 600.0,
    "contact_groups": 600.0,
}
DEMO_SID = "AC" + "de30" * 8  # fixed: the demo's state file stays bound to one account
# The API base URL a demo's state file is bound to: the simulator's port changes on every run.
DEMO_BASE_URL = "demo://simulator/4.0"


@dataclass(slots=True)
class Demo:
    """The in-process simulator the demo polls, and the secrets its webhooks are signed with."""

    runner: web.AppRunner
    account: Account
    base_url: str
    sid: str
    token: str
    webhook_secret: str
    hetrix_token: str
    state_path: str | None = None  # this process's own state file, when state.path is unset


async def start_demo(clock: Clock, state_path: str | None = None) -> Demo:
    """The simulator, in-process on a free loopback port, with a small lively account; the demo's
    own state file is `state_path` (none: the configured one)."""
    sid, token = DEMO_SID, secrets.token_hex(32)
    account = Account(120, 30, clock.time(), seed=42, listed_fraction=0.1, churn_hours=0.05, step=5.0)
    account.error_rate, account.clear_rate = 1 / 600.0, 1 / 120.0
    runner, port = await start_simulator(SimulatedApi(account, sid, token), clock)
    return Demo(
        runner,
        account,
        f"http://127.0.0.1:{port}/4.0",
        sid,
        token,
        "whsec_demo_" + secrets.token_hex(16),
        secrets.token_hex(16),
        state_path,
    )


@contextlib.asynccontextmanager
async def running_demo(clock: Clock, state_path: str | None) -> AsyncIterator[Demo]:
    """The demo for as long as the context lasts; without `state_path`, with a state file of its
    own in a fresh temporary directory, removed (with the file) when the context ends."""
    directory = None if state_path else tempfile.mkdtemp(prefix="generatorlabs-exporter-demo-")
    try:
        demo = await start_demo(clock, str(Path(directory) / "demo.sqlite") if directory else None)
        try:
            yield demo
        finally:
            await demo.runner.cleanup()
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def demo_config(config: Config, demo: Demo) -> Config:
    """Poll the simulator, faster than a real account would allow, with both webhooks on."""
    collectors = {
        name: CollectorConfig(c.enabled, min(c.interval, DEMO_INTERVALS[name]), c.max_age)
        for name, c in config.collectors.items()
    }
    api = replace(config.api, base_url=demo.base_url)
    webhooks = replace(
        config.webhooks,
        enabled=True,
        secrets=(*config.webhooks.secrets, demo.webhook_secret),
        hetrixtools_token=config.webhooks.hetrixtools_token or demo.hetrix_token,
    )
    state = config.state if config.state.path else replace(config.state, path=demo.state_path)
    return replace(config, api=api, collectors=collectors, webhooks=webhooks, state=state).with_credentials(
        demo.sid, demo.token
    )


async def send_demo_webhooks(demo: Demo, config: Config, clock: Clock, port: int) -> None:
    """Until cancelled: the simulator pushes signed events and HetrixTools chunks to us."""
    base = f"http://127.0.0.1:{port}/webhooks"
    async with aiohttp.ClientSession() as session:
        sender = WebhookSender(
            demo.account,
            session,
            clock,
            url=f"{base}/generatorlabs",
            secret=demo.webhook_secret,
            hetrix_url=f"{base}/hetrixtools/{config.webhooks.hetrixtools_token}",
        )
        await sender.run()
