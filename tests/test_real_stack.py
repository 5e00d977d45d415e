"""End to end on the real stack: the simulator, the exporter (webhooks on), Debian's Prometheus
with the project's rules and Debian's Alertmanager delivering to a receiver this test runs.

The simulator lists a host, brings a certificate close to expiry and breaks another (each change
reaches the exporter by webhook and by poll); the alerts must reach the receiver with the right
labels and annotations, and resolve when the simulator clears them. Loopback only, bounded in
time; every process is stopped at the end. The rules' `for:` windows are shortened to 500 ms in
the test's copy (the windows themselves are covered by promtool's unit tests), and Prometheus
scrapes every 500 ms and evaluates every 250 ms: its first scrape still waits for its target discovery (about
5 s after it starts), and everything after that takes a fraction of a second per step.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from exporter.demo.simulator.account import sid
from tests.helpers.processes import free_port, need_binary

ROOT = Path(__file__).resolve().parent.parent
SID, TOKEN = "AC" + "5" * 32, "e" * 64
SECRET = "whsec_real_stack_secret"
HOST, MONITOR, BROKEN = sid("HT", 1, 0), sid("CM", 1, 0), sid("CM", 1, 1)
DEADLINE = 60.0
SCRAPE = "500ms"  # Prometheus's scrape interval (and so its scrape timeout)
TICK = "250ms"  # Prometheus's rule evaluation interval, Alertmanager's group wait and interval


class Stack:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.processes: list[subprocess.Popen[bytes]] = []
        self.notifications: list[dict[str, Any]] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        with (self.home / f"{name}.log").open("wb") as log:
            self.processes.append(subprocess.Popen(args, stdout=log, stderr=log, env=env))

    def alerts(self, status: str, since: int = 0) -> list[dict[str, Any]]:
        """The alerts of `status` in the notifications received, from the `since`th on."""
        return [a for n in self.notifications[since:] for a in n["alerts"] if a["status"] == status]

    async def wait_for(self, what: str, check: Any) -> Any:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            found = check()
            if found:
                return found
            await asyncio.sleep(0.2)
        logs = {p.name: p.read_text()[-1500:] for p in self.home.glob("*.log")}
        pytest.fail(f"timed out waiting for {what}; got {self.notifications!r}; logs {logs}")


async def ready(url: str) -> None:
    end = time.monotonic() + DEADLINE
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < end:
            try:
                async with session.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail(f"{url} never became ready")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, str]]:
    prometheus, alertmanager = need_binary("prometheus"), need_binary("prometheus-alertmanager")
    stack = Stack(tmp_path)
    sim_port, exp_port, prom_port, am_port, recv_port = (free_port() for _ in range(5))

    async def receive(request: web.Request) -> web.Response:
        stack.notifications.append(await request.json())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/alerts", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", recv_port).start()

    try:
        spawn_exporter_and_simulator(stack, tmp_path, sim_port, exp_port)
        spawn_prometheus(stack, tmp_path, prometheus, exp_port, prom_port, am_port)
        spawn_alertmanager(stack, tmp_path, alertmanager, am_port, recv_port)
        await ready(f"http://127.0.0.1:{exp_port}/-/ready")
        await ready(f"http://127.0.0.1:{prom_port}/-/ready")
        await ready(f"http://127.0.0.1:{am_port}/-/ready")
        yield stack, f"http://127.0.0.1:{sim_port}"
    finally:
        for process in stack.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in stack.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        await runner.cleanup()


def spawn_exporter_and_simulator(stack: Stack, tmp_path: Path, sim_port: int, exp_port: int) -> None:
    stack.spawn(
        "simulator",
        [
            sys.executable,
            "-m",
            "exporter.demo.simulator",
            "--port",
            str(sim_port),
            "--hosts",
            "20",
            "--monitors",
            "4",
            "--listed-fraction",
            "0",
            "--quiet",
            "--control",
            "--step",
            "0.25",
            "--account-sid",
            SID,
            "--auth-token",
            TOKEN,
            "--hourly-limit",
            "100000",
            "--webhook-url",
            f"http://127.0.0.1:{exp_port}/webhooks/generatorlabs",
            "--webhook-secret",
            SECRET,
            "--webhook-period",
            "0.25",
        ],
    )
    config = {
        "api": {"base_url": f"http://127.0.0.1:{sim_port}/4.0"},
        "budget": {"requests_per_hour": 20000, "allow_over_limit": True, "requests_per_second": 20},
        "collectors": {
            "rbl_listings": {"interval": "1s"},
            "cert_errors": {"interval": "1s"},
            "rbl_hosts": {"interval": "3s"},
            "cert_monitors": {"interval": "3s"},
        },
        "webhooks": {"enabled": True, "secrets": [SECRET]},
        "state": {"path": str(tmp_path / "state.sqlite")},
    }
    (tmp_path / "exporter.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "GENERATORLABS_ACCOUNT_SID": SID, "GENERATORLABS_AUTH_TOKEN": TOKEN}
    stack.spawn(
        "exporter",
        [
            sys.executable,
            "-m",
            "exporter",
            "--config.file",
            str(tmp_path / "exporter.yaml"),
            "--web.listen-address",
            f"127.0.0.1:{exp_port}",
        ],
        env=env,
    )


def spawn_prometheus(
    stack: Stack, tmp_path: Path, prometheus: str, exp_port: int, prom_port: int, am_port: int
) -> None:
    rules = re.sub(r"for: \d+[smh]", "for: 500ms", (ROOT / "deploy/prometheus/alerts.yaml").read_text())
    (tmp_path / "alerts.yaml").write_text(rules)
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": SCRAPE, "evaluation_interval": TICK},
                "rule_files": [str(tmp_path / "alerts.yaml")],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                "scrape_configs": [
                    {"job_name": "generatorlabs", "static_configs": [{"targets": [f"127.0.0.1:{exp_port}"]}]}
                ],
            }
        )
    )
    stack.spawn(
        "prometheus",
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
    )


def spawn_alertmanager(stack: Stack, tmp_path: Path, alertmanager: str, am_port: int, recv_port: int) -> None:
    (tmp_path / "alertmanager.yml").write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "test",
                    "group_by": ["alertname", "host_id", "monitor_id", "reason"],
                    "group_wait": TICK,
                    "group_interval": TICK,
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "test",
                        "webhook_configs": [
                            {"url": f"http://127.0.0.1:{recv_port}/alerts", "send_resolved": True}
                        ],
                    }
                ],
            }
        )
    )
    stack.spawn(
        "alertmanager",
        [
            alertmanager,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
    )


def firing(stack: Stack, alertname: str, **labels: str) -> dict[str, Any] | None:
    for alert in stack.alerts("firing"):
        got = alert["labels"]
        if got.get("alertname") == alertname and all(got.get(k) == v for k, v in labels.items()):
            return alert
    return None


def resolved(stack: Stack, since: int, alertname: str, **labels: str) -> bool:
    """Whether a notification from the `since`th on resolved the alert (an earlier one, say a
    missed scrape before the simulator cleared it, does not count)."""
    return any(
        a["labels"].get("alertname") == alertname and all(a["labels"].get(k) == v for k, v in labels.items())
        for a in stack.alerts("resolved", since)
    )


async def test_alerts_reach_alertmanager_and_resolve(stack: tuple[Stack, str]) -> None:
    s, sim = stack
    async with aiohttp.ClientSession() as session:
        for path in (
            f"hosts/{HOST}/list",
            f"monitors/{MONITOR}/expire?days=10",
            f"monitors/{BROKEN}/error?type=name_mismatch",
        ):
            async with session.post(f"{sim}/_sim/{path}") as r:
                assert r.status == 200
        listed = await s.wait_for(
            "GeneratorLabsHostListed",
            lambda: firing(s, "GeneratorLabsHostListed", host_id=HOST, severity="warning"),
        )
        assert listed["labels"]["name"] == "mx-000000" and listed["labels"]["host"] == "198.0.0.0"
        instance = listed["labels"]["instance"]  # every summary names the exporter
        assert listed["labels"]["job"] == "generatorlabs" and instance.startswith("127.0.0.1:")
        assert listed["annotations"]["summary"].startswith(f"{instance}: mx-000000 (198.0.0.0) is listed on ")
        assert listed["annotations"]["runbook_url"].endswith("#runbook-generatorlabshostlisted")
        expiring = await s.wait_for(
            "GeneratorLabsCertificateExpiringSoon",
            lambda: firing(s, "GeneratorLabsCertificateExpiringSoon", monitor_id=MONITOR, severity="warning"),
        )
        assert expiring["labels"]["hostname"] == "svc0.example.com"
        assert re.fullmatch(
            re.escape(instance) + r": certificate of svc0\.example\.com expires in (9\.9|10\.0) days",
            expiring["annotations"]["summary"],
        )
        broken = await s.wait_for(
            "GeneratorLabsCertificateError",
            lambda: firing(s, "GeneratorLabsCertificateError", monitor_id=BROKEN, reason="name_mismatch"),
        )
        assert (
            broken["annotations"]["summary"]
            == f"{instance}: certificate error on svc1.example.com: name_mismatch"
        )

        cleared = len(s.notifications)
        for path in (f"hosts/{HOST}/delist", f"monitors/{MONITOR}/renew", f"monitors/{BROKEN}/clear"):
            async with session.post(f"{sim}/_sim/{path}") as r:
                assert r.status == 200
    await s.wait_for(
        "the host alert to resolve", lambda: resolved(s, cleared, "GeneratorLabsHostListed", host_id=HOST)
    )
    await s.wait_for(
        "the expiry alert to resolve",
        lambda: resolved(s, cleared, "GeneratorLabsCertificateExpiringSoon", monitor_id=MONITOR),
    )
    await s.wait_for(
        "the error alert to resolve",
        lambda: resolved(s, cleared, "GeneratorLabsCertificateError", monitor_id=BROKEN),
    )
