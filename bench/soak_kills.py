"""The soak's real SIGKILLs: a real `python -m exporter --demo` process (explicit state.path)
killed in the middle of webhook bursts, restarted on the same state file; each restart must
become ready and show every acknowledged webhook, and the last one must stop cleanly on SIGTERM.

Every wait has a deadline; one that passes raises Overrun naming what was awaited.

I/O: subprocesses, HTTP over loopback, a temporary directory (removed at the end)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families as parse_text

from bench.soak_loop import WALL_OP, Overrun
from bench.soak_record import Record
from bench.soak_webhooks import HX_TOKEN, SECRETS
from exporter.webhooks.signature import sign
from tests.helpers.processes import exporter_env, start_exporter

WALL_KILL_CYCLE = 60.0  # wall-clock cap of a start until ready, of a burst, of an exit
GET_TIMEOUT = 5.0  # one GET of the real exporter
PROBE_TIMEOUT = 1.0  # one readiness probe
READY_POLL = 0.1  # seconds between readiness probes
STOP_GRACE = 10.0  # a killed process is reaped within this
POST_TIMEOUT = 10.0  # one webhook POST
BURST_SIZE = 300  # webhooks per burst, half of them HetrixTools chunks
BURST_WORKERS = 8  # concurrent senders in a burst
HOSTILE_FRACTION = 0.2  # webhooks of a burst with a hostile value in them
COUNTED_EVENT = "expiring.plan.alert"  # the event type whose count on /metrics is checked

Metrics = dict[str, list[tuple[dict[str, str], float]]]


def _get(url: str, timeout: float = GET_TIMEOUT) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError as err:
        return -1, str(err).encode()


def _wait(proc: subprocess.Popen[bytes], cap: float, what: str) -> int:
    """The exit status, within `cap` seconds."""
    try:
        return proc.wait(cap)
    except subprocess.TimeoutExpired as err:
        raise Overrun(f"the real exporter (pid {proc.pid}) did not exit within {cap:g} s {what}") from err


def _reap(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.kill()
    return _wait(proc, STOP_GRACE, "after SIGKILL")


@dataclass
class _Burst:
    """One burst of webhooks at one process, killed after `kill_after` acknowledgements."""

    base: str
    proc: subprocess.Popen[bytes]
    kill_after: int
    pending: deque[int] = field(default_factory=deque)
    acks: int = 0


class RealKills:
    """`n` SIGKILLs of a real exporter process, then a last start, a check and a SIGTERM."""

    def __init__(self, seed: int, record: Record) -> None:
        self.rng = random.Random(seed)
        self.record = record
        self.tmp = Path(tempfile.mkdtemp(prefix="generatorlabs-soak-kill-"))
        self.config = self.tmp / "config.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "webhooks": {"enabled": True, "secrets": [SECRETS[0]], "hetrixtools_token": HX_TOKEN},
                    "state": {"path": str(self.tmp / "state.sqlite")},
                    "log": {"level": "debug"},
                }
            )
        )
        self.env = exporter_env(XDG_STATE_HOME=str(self.tmp / "xdg"))
        self.log_path = self.tmp / "exporter.log"  # where start_exporter appends every run's stderr
        self.acked_monitors: set[str] = set()
        self.acked_events = 0
        self.kills = 0
        self.starts = 0
        self.ready_seconds: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.serial = itertools.count()

    def run(self, n: int) -> dict[str, Any]:
        began = time.monotonic()
        proc: subprocess.Popen[bytes] | None = None
        try:
            for k in range(n):
                proc, base = self.start()
                self.check(base, f"after restart {k}")
                self.kill_in_a_burst(proc, base)
            proc, base = self.start()
            self.check(base, "at the end")
            self.promtool(base)
            self.stop(proc)
            self.scan_log()
        finally:
            if proc is not None and proc.poll() is None:
                _reap(proc)
            shutil.rmtree(self.tmp, ignore_errors=True)
        return {
            "kills": self.kills,
            "starts": self.starts,
            "ready_seconds": self.ready_seconds,
            "acked": len(self.acked_monitors) + self.acked_events,
            "statuses": dict(self.statuses),
            "wall_seconds": round(time.monotonic() - began, 1),
        }

    # -- one process ---------------------------------------------------------------------------

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def start(self) -> tuple[subprocess.Popen[bytes], str]:
        """A new process on the state file, once it answers /-/ready with 200."""
        args = ("--demo", "--config.file", str(self.config), "--log.format", "json")
        # not awaited by the helper: a start here has its own cap and records what went wrong
        exporter = start_exporter(self.tmp, *args, env=self.env, ready=False)
        proc, base = exporter.process, exporter.base
        began = time.monotonic()
        while time.monotonic() - began < WALL_KILL_CYCLE:
            if proc.poll() is not None:
                what = f"the real exporter exited with {proc.returncode} at start"
                self.record.fail("crashes", what, tb=self._log_tail())
                raise Overrun(f"{what}: it does not start")
            if _get(base + "/-/ready", PROBE_TIMEOUT)[0] == 200:
                self.ready_seconds.append(round(time.monotonic() - began, 2))
                self.starts += 1
                return proc, base
            time.sleep(READY_POLL)
        _reap(proc)
        self.record.fail("crashes", "the real exporter did not become ready in time", tb=self._log_tail())
        raise Overrun(f"the real exporter did not become ready within {WALL_KILL_CYCLE:g} s")

    def kill_in_a_burst(self, proc: subprocess.Popen[bytes], base: str) -> None:
        burst = _Burst(base, proc, self.rng.randint(20, 200), deque(range(BURST_SIZE)))
        try:
            asyncio.run(asyncio.wait_for(self.burst(burst), WALL_KILL_CYCLE))
        except TimeoutError as err:
            raise Overrun(f"a webhook burst at the real exporter took over {WALL_KILL_CYCLE:g} s") from err
        if proc.poll() is None:
            proc.kill()
        code = _wait(proc, WALL_KILL_CYCLE, "after SIGKILL")
        self.kills += 1 if code == -signal.SIGKILL else 0

    def promtool(self, base: str) -> None:
        status, body = _get(base + "/metrics")
        promtool = shutil.which("promtool")
        if not promtool or status != 200:
            return
        try:
            result = subprocess.run(
                [promtool, "check", "metrics"], input=body, capture_output=True, check=False, timeout=WALL_OP
            )
        except subprocess.TimeoutExpired as err:
            raise Overrun(f"promtool check metrics took over {WALL_OP:g} s on the real exporter") from err
        if result.returncode not in (0, 3):  # 3: lint problems only
            self.record.fail("invalid_expositions", f"real exporter: promtool: {result.stdout[:300]!r}")

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGTERM)
        code = _wait(proc, WALL_KILL_CYCLE, "after SIGTERM")
        if code != 0:
            what = f"the real exporter exited with {code} on SIGTERM"
            self.record.fail("crashes", what, tb=self._log_tail())

    # -- checks --------------------------------------------------------------------------------

    def _metrics(self, base: str, when: str) -> Metrics | None:
        status, body = _get(base + "/metrics")
        if status != 200:
            self.record.fail("crashes", f"real exporter /metrics answered {status} {when}")
            return None
        samples: Metrics = {}
        try:
            for family in parse_text(body.decode("utf-8", "replace")):
                for s in family.samples:
                    samples.setdefault(s.name, []).append((s.labels, s.value))
        except Exception as err:
            self.record.fail("invalid_expositions", f"real exporter /metrics does not parse {when}: {err}")
            return None
        return samples

    def check(self, base: str, when: str) -> None:
        """Every acknowledged HetrixTools monitor shown, every acknowledged event counted."""
        samples = self._metrics(base, when)
        if samples is None:
            return
        shown = {labels.get("monitor") for labels, _ in samples.get("hetrixtools_blacklist_monitor_info", [])}
        missing = sorted(self.acked_monitors - shown)
        counted = sum(
            value
            for labels, value in samples.get("generatorlabs_webhook_events_total", [])
            if labels.get("event") == COUNTED_EVENT
        )
        if missing:
            self.record.fail(
                "unapplied_acknowledged_webhooks",
                f"real SIGKILL {when}: {len(missing)} acknowledged HetrixTools monitors missing "
                f"({missing[:3]})",
                n=len(missing),
            )
        if counted < self.acked_events:
            self.record.fail(
                "unapplied_acknowledged_webhooks",
                f"real SIGKILL {when}: {self.acked_events - counted:.0f} acknowledged events not counted",
                n=int(self.acked_events - counted),
            )

    def scan_log(self) -> None:
        """No webhook secret in the log of any process, no crash or traceback."""
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        for s in (SECRETS[0], HX_TOKEN):
            if s in log:
                self.record.fail(
                    "secrets_in_logs",
                    "the real exporter's log holds a webhook secret or token",
                    input=log[max(0, log.index(s) - 200) : log.index(s) + 50].replace(s, "<SECRET>"),
                )
        for line in log.splitlines():
            if '"task.crashed"' in line or '"poll.internal_error"' in line or "Traceback" in line:
                self.record.fail("crashes", f"real exporter log: {line[:300]}")

    # -- a burst of webhooks -------------------------------------------------------------------

    async def burst(self, burst: _Burst) -> None:
        timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._worker(session, burst) for _ in range(BURST_WORKERS)))

    async def _worker(self, session: aiohttp.ClientSession, burst: _Burst) -> None:
        while burst.pending:
            i = burst.pending.popleft()
            # a webhook in flight when the process died gets no answer: never acknowledged
            with contextlib.suppress(TimeoutError, aiohttp.ClientError):
                await self._send(session, burst, i)

    async def _send(self, session: aiohttp.ClientSession, burst: _Burst, i: int) -> None:
        """Webhook `i` of the burst: odd ones are HetrixTools chunks, even ones signed events."""
        n = next(self.serial)
        hostile = self.rng.random() < HOSTILE_FRACTION
        monitor: str | None = None
        if i % 2:
            monitor = f"kill-{n}.example"
            status = await self._post_chunk(session, burst.base, monitor, n, hostile)
        else:
            status = await self._post_event(session, burst.base, n, hostile)
        self.statuses[str(status)] += 1
        if status >= 500:
            self.record.fail("crashes", f"real exporter answered {status} to a webhook")
        if status not in (200, 204):
            return
        if monitor is not None:
            self.acked_monitors.add(monitor)
        elif not hostile and status == 204:  # 200: a duplicate, counted once already
            self.acked_events += 1
        burst.acks += 1
        if burst.acks == burst.kill_after:
            os.kill(burst.proc.pid, signal.SIGKILL)

    async def _post_chunk(
        self, session: aiohttp.ClientSession, base: str, monitor: str, n: int, hostile: bool
    ) -> int:
        items: list[Any] = [
            {
                "monitor": monitor,
                "label": "kill",
                "blacklisted_now": "1",
                "blacklisted_on": [{"rbl": "zen.example", "delist": "x"}],
            }
        ]
        if hostile:
            bad = self.rng.choice(("inf", "-5", "NaN", "9" * 400))
            items.append({"monitor": f"bad-{n}", "blacklisted_now": bad})
        async with session.post(
            f"{base}/webhooks/hetrixtools/{HX_TOKEN}",
            data=json.dumps(items),
            headers={"Content-Type": "application/json"},
        ) as r:
            return r.status

    async def _post_event(self, session: aiohttp.ClientSession, base: str, n: int, hostile: bool) -> int:
        event: dict[str, Any] = {
            "event_sid": f"TA{n:032x}",
            "event_type": COUNTED_EVENT,
            "event_date": "2026-01-01T00:00:00Z",
            "plan": {},
        }
        if hostile:
            balance: object = self.rng.choice(("NaN", "Infinity", "1e400", [], "9" * 400))
            event = {**event, "event_type": "billing.balance.alert", "balance": balance}
        body = json.dumps(event).encode()
        signature = sign(body, SECRETS[0], int(time.time()))  # the real exporter's clock is real
        headers = {"Content-Type": "application/json", "X-Webhook-Signature": signature}
        async with session.post(f"{base}/webhooks/generatorlabs", data=body, headers=headers) as r:
            return r.status
