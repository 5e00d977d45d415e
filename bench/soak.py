"""Chaos soak: a whole exporter through simulated hours of hostile API answers, crashes and
hostile webhooks, and the invariants that must hold throughout.

What runs: the real exporter (build_exporter, warm-started from a real SQLite state file, the real
aiohttp app from create_app with its supervised scheduler, renderer and applier, the real
HttpTransport) on loopback against the simulator (exporter.demo.simulator) and a second tiny server,
the "other host" that cross-host redirects point at. Time is virtual: every `clock.sleep` of the
exporter waits on a virtual clock that this harness moves forward only when nothing else can run
(no ready callback, no thread job, no HTTP request in flight), so 24 hours take about a minute
and every request is seen at the same virtual time by the exporter's ledger and the simulator.

What is injected, throughout: API faults (5xx, errors in 200 bodies, timeouts, truncated and
garbage bodies, hostile values in random fields of random objects, `data` and envelope fields of
the wrong type, forced 429s and 429 storms with Retry-After as delta seconds or an HTTP date,
absurd RateLimit-* values, bodies sent in small pieces, redirects to another host and same-host
redirect loops); crashes (every object dropped without cleanup or flush, the state file's lock
released as the kernel would, a new exporter built from the same file; some in the middle of a
webhook burst, with the unanswered webhooks retried afterwards as a sender would) and graceful
restarts; a stream of hostile webhooks (signed events with odd values and wrong types, bad
signatures, HetrixTools chunks with bad items, lying Content-Encoding, oversized and deeply nested
bodies) interleaved with valid ones. At the end, with the faults off, a recovery period. Then a
few real SIGKILLs of a real `python -m exporter --demo` process (--kills).

Invariants, each must be 0 (the exit status is 1 otherwise, 2 if a phase overran its wall-clock
cap): budget overruns (requests that made some rolling 3600 s window at the simulator hold more
than requests_per_hour; every hop of a redirect counts), crashes (unexpected exceptions logged or
raised, 5xx answers, tasks that returned), unapplied acknowledged webhooks (every acknowledged
event counted exactly once on /metrics, every acknowledged HetrixTools monitor shown with its
last value, across crashes), invalid expositions (every /metrics parsed by prometheus_client, text
and OpenMetrics, and a sample by promtool), secrets in logs (auth token, its Basic header, webhook
secrets, HetrixTools token, in every structlog and logging record at debug level). Also checked:
the Authorization header never reaching the other host, no stall of polling longer than
STALL_SECONDS, and every account host exported after the recovery.

Where things are: bench/soak_loop.py (the idle-aware loop, the virtual clock and the driver that
bounds every wait), soak_exporter.py (one in-process exporter), soak_webhooks.py (valid and hostile
webhooks), soak_record.py (findings and the log sink), soak_results.py (API-side invariants, the
results and the summary), soak_kills.py (the real SIGKILLs); this module runs the soak.

I/O: servers and HTTP over loopback, a temporary directory, subprocesses (promtool, the real
exporter), and the results file bench/results/soak.json.

    python -m bench.soak [--hours 24] [--seed 1] [--hosts 300] [--budget 120] [--kills 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from bench.soak_exporter import (
    Answer,
    Incarnation,
    TrackedTransport,
    listening_port,
    raw_request,
    release_lock_file,
)
from bench.soak_kills import RealKills
from bench.soak_loop import WALL_OP, WALL_SETUP, Driver, Overrun, SoakLoop, VirtualClock
from bench.soak_record import LogSink, Record, format_traceback
from bench.soak_results import (
    assemble_results,
    check_budget,
    check_other_host,
    check_stalls,
    invariant_counts,
    summary,
)
from bench.soak_webhooks import HX_TOKEN, SECRETS, Sent, Webhooks
from exporter.api.transport import HttpTransport, basic_auth, make_session
from exporter.app import build_exporter, create_app
from exporter.config.model import Config
from exporter.config.parse import parse
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import ABSURD_LIMITS, FAULT_KINDS, Faults, SimulatedApi
from exporter.demo.simulator.app import start_other_host, start_simulator
from exporter.state.sqlite import Owner, StateDB
from exporter.web.guard import WebGuard

SID = "AC" + "5" * 32
TOKEN = "soak-auth-token-" + "7e1f" * 12
START = 1_790_000_000.0
API_TIMEOUT = 0.3  # real seconds: a simulated timeout costs this much wall-clock time
HANG_REAL = 1.0  # real seconds the simulator holds a "timeout" answer (longer than API_TIMEOUT)
APPLY_GRACE = 10.0  # virtual seconds after the last webhook before checking it is on /metrics
TICK = 60.0  # virtual seconds between the harness's rounds of webhooks and scrapes
WALL_PER_HOUR = 240.0  # wall-clock cap per simulated hour
WALL_FINAL_CHECKS = 120.0
BIG_BODY = 512 * 1024  # bytes from which a request body is handed to aiohttp as a file
BURST = 30  # webhooks in a burst that a crash interrupts
OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}
RESULTS = Path(__file__).parent / "results"

Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass
class Options:
    hours: float = 24.0
    seed: int = 1
    hosts: int = 300
    monitors: int | None = None
    budget: int = 120
    kills: int = 3
    recovery_minutes: float = 60.0
    hostile_per_tick: float = 1.5
    crashes: int | None = None  # crash/restart events (default: one per 4 simulated hours)
    intensity: float = 1.0  # multiplies every per-request fault rate (their sum is 0.11 at 1)
    promtool: str | None = shutil.which("promtool")


def _faults(hours: float, intensity: float, rng: random.Random) -> Faults:
    """Per-request fault rates, storms at random times, and every fault kind at least once."""
    span = hours * 3600

    def times(n: int, lo: float = 0.05, hi: float = 0.95) -> list[float]:
        return sorted(START + rng.uniform(lo, hi) * span for _ in range(n))

    # a short run keeps its storms in its first half and its absurd RateLimit-* headers
    # (a "Remaining: 0" with a huge reset pauses requests for up to an hour) in the middle
    short = hours < 6
    lo, hi = (0.05, 0.45) if short else (0.05, 0.9)
    storms = (
        [(t, 600.0, "rate_limit") for t in times(max(1, round(hours / 6)), lo, hi)]
        + [(t, 300.0, "redirect_loop") for t in times(max(1, round(hours / 8)), lo, hi)]
        + [(t, 300.0, "redirect_other_host") for t in times(max(1, round(hours / 12)), lo, hi)]
    )
    absurd = times(min(ABSURD_LIMITS, max(3, round(hours))), 0.5, 0.6 if short else 0.9)
    k = intensity
    return Faults(
        error_rate=0.01 * k,
        body_error_rate=0.005 * k,
        malformed_rate=0.005 * k,
        timeout_rate=0.003 * k,
        rate_limit_at=times(max(2, round(hours / 3)), lo, hi),
        forced_retry_after=300.0,
        garbage_rate=0.006 * k,
        wrong_types_rate=0.03 * k,
        wrong_data_rate=0.006 * k,
        wrong_envelope_rate=0.006 * k,
        absurd_limits_rate=0.008 * k,
        redirect_rate=0.004 * k,
        redirect_loop_rate=0.004 * k,
        trickle_rate=0.02 * k,
        storms=storms,
        retry_after_format="mixed",
        # every kind at least once, and the absurd RateLimit-* combinations in turn, whatever the rates
        scheduled=sorted(
            [(t, kind) for kind in FAULT_KINDS for t in times(1, 0.05, 0.45)]
            + [(t, "absurd_limits") for t in absurd]
        ),
    )


def _parse_exposition(text: str, openmetrics: bool, samples: Samples) -> None:
    """Every sample of the exposition into `samples` (those before a parse error stay)."""
    for family in (parse_openmetrics if openmetrics else parse_text)(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))


def _counted_events(samples: Samples) -> Counter[str]:
    counted: Counter[str] = Counter()
    for labels, value in samples.get("generatorlabs_webhook_events_total", []):
        counted[labels.get("event", "?")] += int(value)
    return counted


async def _first(waiter: asyncio.Future[Any], tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Until `waiter` is done or every task is."""
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    while not waiter.done() and not all(t.done() for t in tasks):
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)


class Soak:
    """One in-process soak: the simulator, the other host, the exporters one after the other."""

    def __init__(self, options: Options, loop: SoakLoop) -> None:
        self.o = options
        self.loop = loop
        self.rng = random.Random(options.seed)
        self.clock = VirtualClock(START)
        self.driver = Driver(loop, self.clock)
        self.record = Record(clock=self.clock)
        self.tmp = Path(tempfile.mkdtemp(prefix="generatorlabs-soak-"))
        self.state_path = str(self.tmp / "state" / "state.sqlite")
        monitors = options.monitors if options.monitors is not None else max(10, options.hosts // 10)
        self.account = Account(
            options.hosts, monitors, START, seed=options.seed, listed_fraction=0.08, churn_hours=3.0
        )
        self.account.outbox = []
        self.faults = _faults(options.hours, options.intensity, self.rng)
        self.api = SimulatedApi(self.account, SID, TOKEN, faults=self.faults, seed=options.seed)
        self.webhooks = Webhooks(self.account, self.clock, self.rng)
        self.current: Incarnation | None = None
        self.graveyard: list[Incarnation] = []  # crashed incarnations: never finalised during the soak
        # each secret's distinctive start and end, so that a cut-off secret is found too
        basic = basic_auth(SID, TOKEN).split(" ", 1)[1]
        self.sink = LogSink(
            self.record,
            [part for secret in (TOKEN, basic, *SECRETS, HX_TOKEN) for part in (secret[:24], secret[-16:])],
            self._context,
        )
        self.counts = self.record.counts
        self.ambiguous: list[Sent] = []  # sent when a crash came; retried after the restart
        self.max_restarts: dict[str, float] = {}
        self.promtool_lint: Counter[str] = Counter()
        self.hosts_seen: list[float] = []
        self.config: Config | None = None
        self.chaos_end: float | None = None

    # -- set-up ----------------------------------------------------------------------------

    def _config(self, sim_port: int) -> Config:
        return parse(
            {
                "api": {
                    "base_url": f"http://127.0.0.1:{sim_port}/4.0",
                    "timeout": f"{API_TIMEOUT * 1000:.0f}ms",
                },
                "budget": {"requests_per_hour": self.o.budget},
                "webhooks": {"enabled": True, "secrets": list(SECRETS), "hetrixtools_token": HX_TOKEN},
                "state": {"path": self.state_path},
                "log": {"level": "debug"},
            }
        ).with_credentials(SID, TOKEN)

    def _context(self) -> str:
        """What was going on: the last faults the simulator injected and the last webhooks."""
        faults = [
            f"+{t - START:.0f}s {path} {kind} {detail}"
            for t, path, kind, detail in list(self.api.recent)[-4:]
        ]
        hooks = [f"{kind}:{status}:{excerpt}" for kind, status, excerpt in list(self.webhooks.sent_log)[-3:]]
        return f"recent API faults: {faults}; recent webhooks: {hooks}"

    def _faults_so_far(self) -> int:
        """Faults injected in answers (a body sent in pieces is a clean answer)."""
        return sum(self.api.injected.values()) - self.api.injected["trickled_body"]

    # -- incarnations ----------------------------------------------------------------------

    async def start_exporter(self) -> Incarnation:
        config = self.config
        assert config is not None
        tasks_before = set(asyncio.all_tasks())
        db = StateDB(self.state_path, self.clock.time)
        loaded = await self.driver.complete(
            db.start(Owner(SID, config.api.base_url), self.clock.time()), "opening the state file"
        )
        session = make_session(SID, TOKEN, config.api.timeout)
        transport = TrackedTransport(
            HttpTransport(session, config.api.base_url),
            self.loop,
            self.record,
            self._context,
            self._faults_so_far,
        )
        exporter = build_exporter(config, transport, self.clock, db, loaded, WebGuard(None))
        runner = web.AppRunner(create_app(exporter, lambda: config), access_log=None, handle_signals=False)
        await self.driver.complete(runner.setup(), "starting the app")
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await self.driver.complete(site.start(), "listening")
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WALL_OP), auto_decompress=True)
        base = f"http://127.0.0.1:{listening_port(runner)}"
        inc = Incarnation(exporter, db, exporter.journal, session, runner, site, base, http, tasks_before)
        self.current = inc
        self.counts["exporter_starts"] += 1
        return inc

    async def start_or_record(self) -> None:
        """Start an exporter on the state file; a start that fails is a crash, and the soak
        goes on with the file moved aside (what an operator would have to do)."""
        try:
            await self.start_exporter()
        except Overrun:
            raise
        except Exception as err:
            self.record.fail(
                "crashes",
                f"the exporter cannot start from its state file: {type(err).__name__}: {err}"[:400],
                input=self._context(),
                tb=format_traceback(err),
            )
            self.counts["state_files_abandoned"] += 1
            self.state_path = str(self.tmp / f"state-{self.counts['state_files_abandoned']}" / "state.sqlite")
            self.webhooks.expected_events.clear()  # what the old file held is lost to the operator
            self.webhooks.hetrix.clear()
            await self.start_exporter()

    async def stop_gracefully(self, *, final: bool = False) -> None:
        """What `run` does on SIGTERM: the app's clean-up (tasks stopped, applier flushed), the
        journal drained, the API session and the state file closed."""
        inc = self.current
        assert inc is not None
        await self.scrape()
        await self.driver.complete(inc.http.close(), "closing the harness's client")
        await self.driver.complete(inc.runner.cleanup(), "the app's clean-up", advance=True)
        await self.driver.complete(inc.journal.drain(), "draining the journal", advance=True)
        await self.driver.complete(inc.session.close(), "closing the API session")
        await self.driver.complete(inc.db.close(), "closing the state file")
        self.current = None
        if not final:
            self.counts["graceful_restarts"] += 1

    async def crash(self, during: str) -> None:
        """SIGKILL, in-process: every task of this exporter cancelled where it stands, nothing
        flushed or closed; the kernel's part done by hand (the state file's lock released, its
        sockets closed); every object kept unfinalised so that nothing runs on their behalf."""
        inc = self.current
        assert inc is not None
        mine = asyncio.current_task()
        victims = [t for t in asyncio.all_tasks() if t not in inc.tasks_before and t is not mine]
        for task in victims:
            task.cancel()
        await self.driver.complete(
            asyncio.gather(*victims, return_exceptions=True), "cancelling the crashed exporter's tasks"
        )
        await self.driver.settle("thread jobs of the crashed exporter")
        release_lock_file(self.state_path)
        await self.driver.complete(inc.site.stop(), "closing the listening socket")
        await self.driver.complete(inc.http.close(), "closing the harness's client")
        await self.driver.complete(inc.session.close(), "closing the crashed exporter's sockets")
        self.graveyard.append(inc)
        self.current = None
        self.counts[f"crashes_simulated_{during}"] += 1

    # -- talking to the exporter -------------------------------------------------------------

    async def _http(
        self, method: str, path: str, data: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Answer:
        """One request to the current exporter, counted as in flight; -1: no answer."""
        inc = self.current
        assert inc is not None
        self.loop.inflight += 1
        try:
            payload: bytes | io.BytesIO | None = data
            if data is not None and len(data) > BIG_BODY:  # aiohttp wants big bodies as files
                payload = io.BytesIO(data)
            async with inc.http.request(
                method, inc.base + path, data=payload, headers=headers, allow_redirects=False
            ) as response:
                return response.status, await response.read(), response.headers
        except (ValueError, UnicodeError, aiohttp.InvalidURL):  # refused by aiohttp's client
            self.counts["webhooks_sent_raw"] += 1
            port = listening_port(inc.runner)
            return await raw_request(port, method, path, data or b"", headers or {})
        except (aiohttp.ClientError, TimeoutError) as err:
            return -1, f"{type(err).__name__}: {err}".encode()[:300], {}
        finally:
            self.loop.inflight -= 1

    async def request(
        self, method: str, path: str, data: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Answer:
        return await self.driver.complete(self._http(method, path, data, headers), f"{method} {path}")

    async def post(self, sent: Sent, *, retry: bool = False) -> int:
        headers = {k: v for k, v in sent.headers.items() if not k.startswith("X-Soak-")}
        method = sent.headers.get("X-Soak-Method", "POST")
        if sent.source == "hetrixtools":
            path = f"/webhooks/hetrixtools/{sent.headers.get('X-Soak-Token', HX_TOKEN)}"
        else:
            path = "/webhooks/generatorlabs"
        status, body, _ = await self.request(method, path, sent.body, headers)
        self.settle_answer(sent, status, body, retry=retry)
        return status

    def settle_answer(self, sent: Sent, status: int, body: bytes, *, retry: bool = False) -> None:
        """Count the answer; `retry`: a resend of a webhook whose first delivery got no answer
        (a crash came), so "duplicate" means the first one was stored."""
        excerpt = sent.body[:160].decode("utf-8", "replace")
        self.webhooks.sent_log.append((sent.kind, status, excerpt))
        self.record.webhooks[f"{sent.kind} {status}"] += 1
        self.counts["webhooks_sent"] += 1
        self._flag_no_answer(sent, status, body)
        duplicate = status == 200 and sent.source == "generatorlabs" and not retry
        if 200 <= status < 300 and not duplicate:
            self._acknowledged(sent)
        elif duplicate:
            self.counts["webhooks_duplicate"] += 1
        elif 400 <= status < 500:
            self.counts["webhooks_rejected"] += 1
            if sent.kind in ("valid", "valid_hetrix"):
                self.record.fail(
                    "unapplied_acknowledged_webhooks",
                    f"a valid webhook was refused ({status})",
                    input=f"{sent.kind} {body[:200]!r} body={sent.body[:400]!r}",
                )
        if sent.kind == "hetrix_bad_items" and status >= 400 and sent.monitors:
            self.counts["hetrix_chunks_with_good_items_refused"] += 1

    def _flag_no_answer(self, sent: Sent, status: int, body: bytes) -> None:
        """A 5xx or no answer at all is a crash."""
        if status >= 500:
            self.record.fail(
                "crashes",
                f"webhook answered {status}: {body[:200]!r}",
                input=f"{sent.kind} {dict(sent.headers)} body={sent.body[:600]!r}",
                tb=self.sink.last_error_tb,
            )
        if status == -2:
            self.counts["webhooks_not_sendable"] += 1
        if status == -1:
            self.counts["webhook_no_answer"] += 1
            self.record.fail(
                "crashes",
                f"webhook got no answer: {body[:200]!r}",
                input=f"{sent.kind} body={sent.body[:400]!r}",
                tb=self.sink.last_error_tb,
            )

    def _acknowledged(self, sent: Sent) -> None:
        """What an acknowledged webhook must show on /metrics from now on."""
        w = self.webhooks
        self.counts["webhooks_accepted"] += 1
        w.acked.append(sent)
        if sent.source != "generatorlabs":
            w.hetrix.update(sent.monitors)
            return
        label = sent.label or "?"  # "?": no label could be read (counted somewhere)
        w.expected_events[label] += 1
        if sent.kind == "valid":
            w.valid_events[label] += 1

    async def post_all(self, items: list[Sent]) -> None:
        for sent in items:
            if sent.kind == "valid":  # the signature's timestamp is the time of sending
                sent.body, sent.headers = self.webhooks.signed({}, raw=sent.body)
            await self.post(sent)

    # -- checking ---------------------------------------------------------------------------

    async def scrape(self, *, openmetrics: bool = False, promtool: bool = False) -> Samples:
        """GET /metrics, parsed (text or OpenMetrics), and checked by promtool when asked."""
        status, body, _ = await self.request("GET", "/metrics", headers=OPENMETRICS if openmetrics else {})
        self.counts["renders_checked_openmetrics" if openmetrics else "renders_checked_text"] += 1
        if status != 200:
            self.record.fail(
                "crashes" if status >= 500 or status == -1 else "invalid_expositions",
                f"/metrics answered {status}: {body[:200]!r}",
                input=self._context(),
                tb=self.sink.last_error_tb,
            )
            return {}
        text = body.decode("utf-8", "replace")
        samples: Samples = {}
        try:
            _parse_exposition(text, openmetrics, samples)
        except Exception as err:
            self.record.fail(
                "invalid_expositions",
                f"{'OpenMetrics' if openmetrics else 'text'} "
                f"exposition does not parse: {type(err).__name__}: {str(err)[:200]}",
                input=self._context(),
                tb=format_traceback(err),
            )
        else:
            self._note_restarts(samples)
        if promtool and self.o.promtool and not openmetrics:
            await self.promtool(text)
        return samples

    def _note_restarts(self, samples: Samples) -> None:
        if self.current is not None:
            restarts = sum(v for _, v in samples.get("generatorlabs_exporter_task_restarts_total", []))
            key = str(id(self.current))
            self.max_restarts[key] = max(self.max_restarts.get(key, 0.0), restarts)

    async def promtool(self, text: str) -> None:
        """`promtool check metrics` on a text exposition, within WALL_OP."""
        assert self.o.promtool is not None
        self.loop.inflight += 1
        try:
            proc = await asyncio.create_subprocess_exec(
                self.o.promtool,
                "check",
                "metrics",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(proc.communicate(text.encode()), WALL_OP)
            except TimeoutError:
                proc.kill()
                await asyncio.wait_for(proc.wait(), WALL_OP)
                raise Overrun(f"promtool check metrics: no answer within {WALL_OP:g} s") from None
        finally:
            self.loop.inflight -= 1
        self.counts["renders_checked_promtool"] += 1
        problems = (out + err).decode(errors="replace").strip()
        if proc.returncode == 3:  # lint problems only: reported, not an invalid exposition
            for line in problems.splitlines():
                self.promtool_lint[line.split(" ", 1)[0]] += 1
        elif proc.returncode != 0:
            self.record.fail(
                "invalid_expositions", f"promtool check metrics: {problems[:300]}", input=self._context()
            )

    async def health(self) -> None:
        for path in ("/-/healthy", "/-/ready", "/"):
            status, body, _ = await self.request("GET", path)
            if status >= 500 and not (path in ("/-/healthy", "/-/ready") and status == 503):
                self.record.fail(
                    "crashes",
                    f"{path} answered {status}: {body[:200]!r}",
                    input=self._context(),
                    tb=self.sink.last_error_tb,
                )
            if path == "/-/healthy" and status == 503:
                self.counts["healthy_503"] += 1
                self.record.fail(
                    "crashes",
                    f"/-/healthy says a task keeps failing: {body[:300].decode(errors='replace')}",
                    input=self._context(),
                )

    async def check_applied(self, when: str) -> None:
        """Every acknowledged event counted once; every acknowledged HetrixTools monitor shown
        with its last acknowledged value. Looked at a little later ("afterwards"): /metrics is
        re-rendered at most every `coalesce` seconds after a change."""
        await self.driver.run_until(self.clock.now + APPLY_GRACE)
        samples = await self.scrape()
        self._check_events_counted(samples, when)
        self._check_monitors_shown(samples, when)
        self.counts["applied_checks"] += 1

    def _check_events_counted(self, samples: Samples, when: str) -> None:
        w = self.webhooks
        counted = _counted_events(samples)
        expected_total, counted_total = sum(w.expected_events.values()), sum(counted.values())
        if counted_total < expected_total:
            short = {k: n - counted[k] for k, n in w.expected_events.items() if counted[k] < n}
            aside = sum(v for _, v in samples.get("generatorlabs_webhook_events_set_aside_total", []))
            suspects = [
                f"{s.kind}: {s.body[:300].decode('utf-8', 'replace')}"
                for s in w.acked
                if s.source == "generatorlabs" and s.kind != "valid" and (s.label or "?") in short
            ]
            self.record.fail(
                "unapplied_acknowledged_webhooks",
                f"{when}: {expected_total - counted_total} acknowledged events not counted; short by "
                f"label: {short}; set aside: {aside:g}",
                input=f"acknowledged hostile events of those labels (last 3 of {len(suspects)}): "
                f"{suspects[-3:]}",
                n=expected_total - counted_total,
            )
        elif counted_total > expected_total:
            self.record.fail(
                "acknowledged_webhooks_applied_twice",
                f"{when}: {counted_total - expected_total} more events counted than "
                f"acknowledged (expected {dict(w.expected_events)}, /metrics {dict(counted)})",
                input=self._context(),
                n=counted_total - expected_total,
            )

    def _check_monitors_shown(self, samples: Samples, when: str) -> None:
        hetrix = self.webhooks.hetrix
        shown = {
            labels.get("monitor"): value
            for labels, value in samples.get("hetrixtools_blacklist_monitor_listings", [])
        }
        missing = [m for m in hetrix if m not in shown]
        wrong = [(m, v, shown[m]) for m, v in hetrix.items() if m in shown and shown[m] != v]
        if missing or wrong:
            self.record.fail(
                "unapplied_acknowledged_webhooks",
                f"{when}: HetrixTools monitors acknowledged but not shown: {missing[:5]} "
                f"({len(missing)}), shown with another value: {wrong[:5]} ({len(wrong)})",
                input=self._context(),
                n=len(missing) + len(wrong),
            )

    def _check_hosts_kept(self, samples: Samples) -> None:
        """Once every host was exported, the count never drops by more than one object's worth."""
        hosts = samples.get("generatorlabs_rbl_hosts")
        if not hosts:
            return
        self.hosts_seen.append(hosts[0][1])
        full = len(self.account.hosts)
        if hosts[0][1] >= full:
            self.counts["hosts_complete_scrapes"] += 1
        elif self.counts["hosts_complete_scrapes"] and hosts[0][1] < 0.9 * full:
            self.record.fail(
                "hosts_dropped",
                f"generatorlabs_rbl_hosts fell to {hosts[0][1]:g} of {full} (more than one "
                "object's worth: a page read as empty?)",
                input=self._context(),
            )

    def _check_every_host_shown(self, samples: Samples) -> None:
        shown = {
            labels.get("host_id"): labels.get("name")
            for labels, _ in samples.get("generatorlabs_rbl_host_info", [])
        }
        missing = [h.id for h in self.account.hosts.values() if shown.get(h.id) != h.name]
        if missing:
            self.record.fail(
                "objects_missing_after_recovery",
                f"{len(missing)} of {len(self.account.hosts)} hosts not exported (or with "
                f"another name) after {self.o.recovery_minutes:g} fault-free minutes: {missing[:3]}",
                n=len(missing),
            )

    # -- the run ---------------------------------------------------------------------------

    async def tick(self, minute: int) -> None:
        """One minute of the outside world: webhooks (valid and hostile) and checks."""
        w = self.webhooks
        items = w.valid_round()
        hostile = int(self.o.hostile_per_tick) + (self.rng.random() < self.o.hostile_per_tick % 1)
        items += [w.hostile() for _ in range(hostile)]
        self.rng.shuffle(items)
        await self.post_all(items)
        if minute % 2 == 0:
            self._check_hosts_kept(await self.scrape(promtool=minute % 180 == 0))
        if minute % 10 == 0:
            await self.scrape(openmetrics=True)
            await self.health()

    async def _post_in_burst(
        self, sent: Sent, answered: list[Sent], done: asyncio.Event, kill_after: int
    ) -> None:
        path = (
            "/webhooks/generatorlabs"
            if sent.source == "generatorlabs"
            else f"/webhooks/hetrixtools/{HX_TOKEN}"
        )
        status, body, _ = await self._http("POST", path, sent.body, sent.headers)
        if status != -1 and not done.is_set():
            answered.append(sent)
            self.settle_answer(sent, status, body)
            if len(answered) >= kill_after:
                done.set()

    async def crash_mid_burst(self) -> None:
        """Send a burst of new webhooks concurrently and crash after some are acknowledged;
        those without an answer are retried after the restart, as a sender would."""
        burst = self.webhooks.burst(BURST)
        for sent in burst:
            if sent.source == "generatorlabs":
                sent.body, sent.headers = self.webhooks.signed(json.loads(sent.body), raw=sent.body)
        kill_after = self.rng.randint(3, 20)
        answered: list[Sent] = []
        done = asyncio.Event()
        tasks = [asyncio.ensure_future(self._post_in_burst(s, answered, done, kill_after)) for s in burst]
        waiter = asyncio.ensure_future(done.wait())
        await self.driver.complete(_first(waiter, tasks), "a webhook burst")
        done.set()
        await self.crash("mid_burst")
        for task in tasks:
            task.cancel()
        await self.driver.complete(
            asyncio.gather(*tasks, return_exceptions=True), "cancelling the burst's unanswered webhooks"
        )
        waiter.cancel()
        self.ambiguous = [s for s in burst if s not in answered]
        self.counts["webhooks_unanswered_at_crash"] += len(self.ambiguous)

    async def retry_ambiguous(self) -> None:
        for sent in self.ambiguous:
            if sent.source == "generatorlabs":  # a sender's retry: same event, signed anew
                sent.body, sent.headers = self.webhooks.signed(json.loads(sent.body), raw=sent.body)
            await self.post(sent, retry=True)
        self.ambiguous = []

    async def lifecycle_event(self, kind: str) -> None:
        if kind == "restart":
            await self.stop_gracefully()
        elif kind == "crash_idle":
            await self.crash("idle")
        else:
            await self.crash_mid_burst()
        self._end_incarnation_counts()
        await self.start_or_record()
        await self.retry_ambiguous()
        await self.driver.settle()
        await self.check_applied(f"after {kind} at +{self.clock.now - START:.0f}s")

    def _end_incarnation_counts(self) -> None:
        self.counts["task_restarts"] = int(sum(self.max_restarts.values()))

    async def run(self) -> dict[str, Any]:
        wall = time.monotonic()
        self.sink.install()
        servers: list[web.AppRunner] = []
        try:
            await self._start_servers(servers)
            await self.start_or_record()
            await self.soak()
            await self.recover()
        except Overrun as err:
            self.counts["overrun"] += 1
            self.record.fail("overruns", str(err), input=self._context())
        finally:
            await self._shutdown(servers)
        self._invariants_from_api()
        return self.results(time.monotonic() - wall)

    async def _start_servers(self, servers: list[web.AppRunner]) -> None:
        """The simulator and the other host (appended to `servers` as they start), the config."""
        sim_runner, sim_port = await self.driver.complete(
            start_simulator(self.api, self.clock, hang=lambda: asyncio.sleep(HANG_REAL)),
            "starting the simulator",
        )
        servers.append(sim_runner)
        other_runner, other_port = await self.driver.complete(
            start_other_host(self.api, self.clock), "starting the other host"
        )
        servers.append(other_runner)
        self.faults.other_host = f"http://127.0.0.1:{other_port}"
        self.config = self._config(sim_port)

    async def _shutdown(self, servers: list[web.AppRunner]) -> None:
        """The last exporter stopped gracefully, the crashed ones' clients and the servers closed."""
        self.driver.start_phase("shutdown", WALL_SETUP)
        if self.current is not None:
            try:
                await self.stop_gracefully(final=True)
            except Exception as err:
                self.record.fail(
                    "crashes",
                    f"the exporter does not stop: {type(err).__name__}: {err}",
                    tb=format_traceback(err),
                )
        self.driver.end_phases()
        for inc in self.graveyard:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(inc.http.close(), WALL_OP)
        for runner in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner.cleanup(), WALL_OP)
        self.sink.uninstall()

    async def soak(self) -> None:
        minutes = round(self.o.hours * 60)
        n_events = self.o.crashes if self.o.crashes is not None else max(1, round(self.o.hours / 4))
        kinds = itertools.cycle(("crash_mid_burst", "restart", "crash_idle"))
        events = {max(1, round((i + 0.5) * minutes / n_events)): next(kinds) for i in range(n_events)}
        for minute in range(1, minutes + 1):
            if minute % 60 == 1:
                self.driver.start_phase(f"hour {minute // 60 + 1}", WALL_PER_HOUR)
            await self.driver.run_until(START + minute * TICK)
            await self.tick(minute)
            if minute in events:
                await self.lifecycle_event(events[minute])

    async def recover(self) -> None:
        """The faults off; then every host exported again and every acknowledged webhook applied."""
        self.driver.start_phase("recovery", WALL_PER_HOUR)
        self.api.faults = Faults(other_host=self.faults.other_host)
        self.chaos_end = self.clock.now
        end = self.clock.now + self.o.recovery_minutes * 60
        while self.clock.now < end:
            await self.driver.run_until(min(end, self.clock.now + TICK))
            items = self.webhooks.valid_round()
            await self.post_all(items)
        self.driver.start_phase("final checks", WALL_FINAL_CHECKS)
        await self.check_applied("at the end")
        samples = await self.scrape(promtool=True)
        await self.scrape(openmetrics=True)
        await self.health()
        self._end_incarnation_counts()
        self._check_every_host_shown(samples)
        up = samples.get("generatorlabs_up", [({}, 0.0)])[0][1]
        self.counts["up_at_end"] = int(up)

    def _invariants_from_api(self) -> None:
        check_budget(self.api.received, self.o.budget, self.record)
        check_other_host(self.api, self.record)
        end = self.chaos_end if self.chaos_end is not None else self.clock.now
        check_stalls(self.api, START, end, self.record)

    def results(self, wall: float) -> dict[str, Any]:
        return assemble_results(
            options={k: v for k, v in vars(self.o).items() if k != "promtool"},
            promtool=self.o.promtool,
            record=self.record,
            api=self.api,
            sink=self.sink,
            promtool_lint=self.promtool_lint,
            clock_odd_sleeps=self.clock.odd_sleeps,
            wall=wall,
            phase_walls=self.driver.phase_walls,
        )


# ---- entry points ----------------------------------------------------------------------------------


def run_soak(options: Options) -> dict[str, Any]:
    """The in-process soak (and the real SIGKILLs when options.kills > 0); the results."""
    with asyncio.Runner(loop_factory=SoakLoop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, SoakLoop)
        soak = Soak(options, loop)
        outcome = runner.run(soak.run())
    if options.kills > 0:
        try:
            outcome["real_sigkills"] = RealKills(options.seed, soak.record).run(options.kills)
        except Overrun as err:
            soak.record.fail("overruns", str(err))
        outcome.update(invariant_counts(soak.record))
        outcome["findings"] = [vars(f) for f in soak.record.findings]
    shutil.rmtree(soak.tmp, ignore_errors=True)
    return outcome


def main(argv: list[str] | None = None) -> int:
    """Exit status 0: every invariant held; 1: one did not; 2: a phase overran its wall-clock cap."""
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours of chaos")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hosts", type=int, default=300, help="hosts on the simulated account")
    p.add_argument("--budget", type=int, default=120, help="budget.requests_per_hour (tight on purpose)")
    p.add_argument("--kills", type=int, default=3, help="real SIGKILLs of a real --demo process (0: none)")
    p.add_argument("--recovery-minutes", type=float, default=60.0)
    p.add_argument("--crashes", type=int, default=None, help="crash/restart events (default: one per 4 h)")
    p.add_argument("--intensity", type=float, default=1.0, help="multiplies every per-request fault rate")
    args = p.parse_args(argv)
    options = Options(
        hours=args.hours,
        seed=args.seed,
        hosts=args.hosts,
        budget=args.budget,
        kills=args.kills,
        intensity=args.intensity,
        recovery_minutes=args.recovery_minutes,
        crashes=args.crashes,
    )
    outcome = run_soak(options)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(outcome, indent=2, default=str))
    print(summary(outcome))
    print(f"results: {RESULTS / 'soak.json'}")
    if outcome["also_checked"].get("overruns"):
        return 2
    failed = any(outcome["invariants"].values()) or any(outcome["also_checked"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
