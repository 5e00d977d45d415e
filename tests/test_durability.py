"""Durability through real processes: SIGKILL in the middle of a webhook burst loses nothing
that was acknowledged, and restarts keep the hourly request ledger (and spend no burst).

I/O: real exporter processes (tests/helpers/processes.py), HTTP over loopback, files under tmp_path."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import aiohttp
import yaml

from exporter.webhooks.signature import sign
from tests.helpers.processes import (
    DEADLINE,
    Exporter,
    free_port,
    get,
    start_exporter,
    terminate,
    value,
    wait_for,
)

SECRET = "whsec_durability_secret"
HX_TOKEN = "hx-durability-token-0123456789"


def start(tmp_path: Path, port: int | None = None) -> Exporter:
    """The demo exporter with webhooks on and its state file in `tmp_path`, once it is ready."""
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "webhooks": {"enabled": True, "secrets": [SECRET], "hetrixtools_token": HX_TOKEN},
                "state": {"path": str(tmp_path / "state.sqlite")},
            }
        )
    )
    return start_exporter(tmp_path, "--demo", "--config.file", str(config), "--log.format", "json", port=port)


async def burst(base: str, process: subprocess.Popen[bytes], total: int, kill_after: int) -> set[int]:
    """Send `total` webhooks, 16 at a time; SIGKILL the exporter after `kill_after` acks."""
    acked: set[int] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            try:
                if i % 2:
                    chunk = [
                        {
                            "monitor": f"kill-{i}.example",
                            "label": "burst",
                            "blacklisted_now": "1",
                            "blacklisted_on": [{"rbl": "zen.spamhaus.org", "delist": "x"}],
                        }
                    ]
                    r = await session.post(f"{base}/webhooks/hetrixtools/{HX_TOKEN}", json=chunk)
                else:
                    body = json.dumps(
                        {
                            "event_sid": f"TA{i:032x}",
                            "event_type": "expiring.plan.alert",
                            "event_date": "2026-01-01T00:00:00Z",
                            "plan": {},
                        }
                    ).encode()
                    r = await session.post(
                        f"{base}/webhooks/generatorlabs",
                        data=body,
                        headers={
                            "Content-Type": "application/json",
                            "X-Webhook-Signature": sign(body, SECRET, int(time.time())),
                        },
                    )
                if r.status in (200, 204):
                    acked.add(i)
                    if len(acked) == kill_after:
                        os.kill(process.pid, signal.SIGKILL)
            except (TimeoutError, aiohttp.ClientError):
                pass  # in flight when the process died: never acknowledged

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(16)))
    return acked


def test_sigkill_mid_burst_loses_no_acknowledged_webhook(tmp_path: Path) -> None:
    killed = start(tmp_path)
    base = killed.base
    acked = asyncio.run(burst(base, killed.process, total=1200, kill_after=300))
    assert killed.process.wait(timeout=DEADLINE) == -signal.SIGKILL
    assert 300 <= len(acked) < 1200  # killed mid-burst
    exporter = start(tmp_path, killed.port)  # restarted on the same port, as a daemon is
    try:
        _, text = get(base + "/metrics")
        missing = [i for i in acked if i % 2 and f'monitor="kill-{i}.example"' not in text]
        assert missing == []
        plans = value(text, 'generatorlabs_webhook_events_total{event="expiring.plan.alert"}')
        assert plans >= len([i for i in acked if i % 2 == 0])
        # and replay protection survived: an acknowledged event is still a duplicate
        i = min(i for i in acked if i % 2 == 0)
        body = json.dumps(
            {
                "event_sid": f"TA{i:032x}",
                "event_type": "expiring.plan.alert",
                "event_date": "2026-01-01T00:00:00Z",
                "plan": {},
            }
        ).encode()

        request = urllib.request.Request(
            base + "/webhooks/generatorlabs",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Webhook-Signature": sign(body, SECRET, int(time.time())),
            },
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200 and b"duplicate" in response.read()
    finally:
        terminate(exporter)


def test_restarts_keep_the_hourly_ledger_and_spend_no_burst(tmp_path: Path) -> None:
    port = free_port()  # every restart on the same port, as a daemon's
    base = f"http://127.0.0.1:{port}"
    sent_before = 0.0
    for _ in range(3):
        exporter = start(tmp_path, port)
        try:
            _, text = get(base + "/metrics")
            # the ledger came back: every request of the earlier runs is still counted
            assert value(text, "generatorlabs_budget_used_requests") >= sent_before
            if sent_before:
                # warm start: stored data is served at once, and polls resume when due
                assert value(text, "generatorlabs_api_requests_total") <= 2
                assert "generatorlabs_rbl_hosts 120" in text
            wait_for(
                lambda: "generatorlabs_up 1.0" in get(base + "/metrics")[1], "every collector to have data"
            )
            _, text = get(base + "/metrics")
            sent_before += value(text, "generatorlabs_api_requests_total")
        finally:
            terminate(exporter)
    assert sent_before >= 6
