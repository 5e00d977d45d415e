"""Shared webhook test harness (not a test module): an exporter on a simulated account with the
webhook receivers and admin routes on a real aiohttp server over loopback, its applier running,
and the small readers of /metrics the webhook tests share. I/O: a loopback HTTP server and a
SQLite state file under the test's tmp_path."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter, open_exporter
from exporter.config.model import Config
from exporter.config.parse import parse
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import SimulatedApi
from exporter.demo.simulator.transport import SimulatorTransport
from exporter.web.routes import ServerParts, build_app
from exporter.webhooks.receivers import add_admin_routes, add_routes
from exporter.webhooks.signature import sign
from tests.helpers.rig import SID, TOKEN, FakeClock

SECRET = "whsec_test_secret_value"
HX_TOKEN = "hx-token-0123456789abcdef"


class Harness:
    def __init__(self, exporter: Exporter, client: TestClient[Any, Any], clock: FakeClock) -> None:
        self.exporter, self.client, self.clock = exporter, client, clock

    async def post(
        self,
        body: dict[str, Any] | bytes,
        *,
        secret: str = SECRET,
        t: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        stamp = int(self.clock.now) if t is None else t
        h = {"Content-Type": "application/json", "X-Webhook-Signature": sign(raw, secret, stamp)}
        h.update(headers or {})
        response = await self.client.post("/webhooks/generatorlabs", data=raw, headers=h)
        return response.status, await response.text()

    async def hetrix(self, body: list[Any] | bytes) -> tuple[int, str]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await self.client.post(
            f"/webhooks/hetrixtools/{HX_TOKEN}", data=raw, headers={"Content-Type": "application/json"}
        )
        return response.status, await response.text()

    async def settle(self) -> None:
        """Let the applier (off the request path) catch up. It may be waiting on the state
        file's thread (moving replayed events aside, a checkpoint) while acknowledged items queue
        up, for as long as the disk takes: wait, bounded in real time, until it has taken every
        queued item (it applies what it takes at once), then a few turns for what that set off."""
        for _ in range(2000):  # 20 s at most
            if not self.exporter.applier.pending:
                break
            await asyncio.sleep(0.01)
        for _ in range(50):
            await asyncio.sleep(0)

    async def metrics(self) -> str:
        await self.settle()
        self.exporter.scraper.render_now()
        response = await self.client.get("/metrics")
        assert response.status == 200
        return await response.text()


def sample(text: str, metric: str, /, **labels: str) -> float | None:
    """The value of one sample on /metrics (parsed, so the exposition must be valid)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == metric and s.labels == labels:
                return float(s.value)
    return None


def event(event_type: str, sid: str = "TA" + "1" * 32, **fields: Any) -> dict[str, Any]:
    # 15:00Z is after the fake clock's start (14:13:20Z), so events are newer than the first polls
    return {"event_sid": sid, "event_type": event_type, "event_date": "2026-09-21T15:00:00+00:00", **fields}


def webhook_config(raw: dict[str, Any] | None) -> Config:
    """`raw` parsed (by default: both receivers on, with a current and a rotated-out secret)."""
    default = {
        "webhooks": {
            "enabled": True,
            "secrets": [SECRET, "older_secret_value"],
            "hetrixtools_token": HX_TOKEN,
        }
    }
    return parse(raw or default).with_credentials(SID, TOKEN)


@contextlib.asynccontextmanager
async def running(
    aiohttp_client: Callable[..., Any],
    clock: FakeClock,
    path: Path,
    raw: dict[str, Any] | None = None,
) -> AsyncIterator[Harness]:
    """The exporter on a simulated account, warm-started from the state file at `path` and
    polled for 20 s, with the webhook receivers and admin routes on a real aiohttp server and
    the applier running. On exit the applier stops without a flush (a restart must replay what
    was committed) and the state file is closed."""
    api = SimulatedApi(Account(20, 6, clock.now), SID, TOKEN)
    transport = SimulatorTransport(api, clock, SID, TOKEN)
    async with contextlib.AsyncExitStack() as stack:
        with structlog.testing.capture_logs():
            exporter = await stack.enter_async_context(
                open_exporter(webhook_config(raw), transport, clock, str(path))
            )
            end = clock.now + 20
            while clock.now < end:
                await exporter.scheduler.step()

        async def reload() -> list[str]:
            return []

        app = build_app(ServerParts(exporter.scraper, exporter.store, exporter.live, reload, clock.time))
        assert exporter.webhook_parts is not None
        add_routes(app, exporter.webhook_parts)
        add_admin_routes(app, exporter.webhook_parts)
        client = await aiohttp_client(app)
        task = asyncio.create_task(exporter.applier.run())
        try:
            yield Harness(exporter, client, clock)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def host_id(h: Harness, listed: bool) -> str:
    snap = h.exporter.store.snapshot("rbl_hosts")
    assert snap is not None
    return next(i for i, host in sorted(snap.items.items()) if host.listed == listed)


def monitor_id(h: Harness) -> str:
    snap = h.exporter.store.snapshot("cert_monitors")
    assert snap is not None
    return sorted(snap.items)[0]


def rejected(text: str, reason: str, source: str = "generatorlabs") -> float:
    """generatorlabs_webhook_rejected_total of one (source, reason); every one exists from 0."""
    value = sample(text, "generatorlabs_webhook_rejected_total", source=source, reason=reason)
    assert value is not None, (source, reason)
    return value


REFRESH_ROUTES = ("rbl/hosts/{id}", "cert/monitors/{id}")


async def refreshes_sent(h: Harness, seconds: float = 10.0) -> float:
    """Targeted refreshes (one host or monitor by id) sent to the API while the scheduler runs
    for `seconds` of fake time, as /metrics counts them."""
    end = h.clock.now + seconds
    while h.clock.now < end:
        await h.exporter.scheduler.step()
    text = await h.metrics()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "generatorlabs_api_requests_total" and s.labels.get("endpoint") in REFRESH_ROUTES
    )
