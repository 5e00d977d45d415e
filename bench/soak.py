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

    python -m bench.soak [--hours 24] [--seed 1] [--hosts 300] [--budget 120] [--kills 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import heapq
import io
import itertools
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import structlog
import yaml
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.api.envelope import RawResponse
from exporter.api.transport import HttpTransport, basic_auth, make_session
from exporter.app import Exporter, build_exporter, create_app
from exporter.config.model import Config
from exporter.config.parse import parse
from exporter.demo.simulator.account import Account, iso, sid
from exporter.demo.simulator.api import (
    ABSURD_LIMITS,
    FAULT_KINDS,
    HOSTILE_VALUES,
    Faults,
    RawJson,
    SimulatedApi,
    dumps,
)
from exporter.demo.simulator.app import start_other_host, start_simulator
from exporter.demo.simulator.webhooks import HetrixFleet
from exporter.errors import ApiError
from exporter.state.sqlite import Owner, StateDB
from exporter.webhooks.payloads import KNOWN_EVENTS
from exporter.webhooks.signature import sign

T = TypeVar("T")

SID = "AC" + "5" * 32
TOKEN = "soak-auth-token-" + "7e1f" * 12
SECRETS = ("whsec_soak_primary_" + "a1b2" * 6, "whsec_soak_rotated_" + "c3d4" * 6)
HX_TOKEN = "hx-soak-token-" + "e5f6" * 6
START = 1_790_000_000.0
API_TIMEOUT = 0.3  # real seconds: a simulated timeout costs this much wall-clock time
HANG_REAL = 1.0  # real seconds the simulator holds a "timeout" answer (longer than API_TIMEOUT)
STALL_SECONDS = 3600.0 + 600.0  # Retry-After and RateLimit-Reset are capped at one hour
APPLY_GRACE = 10.0  # virtual seconds after the last webhook before checking it is on /metrics
TICK = 60.0  # virtual seconds between the harness's rounds of webhooks and scrapes
WALL_PER_HOUR = 240.0  # wall-clock cap per simulated hour
WALL_SETUP = 60.0
WALL_OP = 30.0  # one operation (a request, a start, a stop)
WALL_KILL_CYCLE = 60.0
RESULTS = Path(__file__).parent / "results"


class Overrun(Exception):
    """A phase or an operation took longer than its wall-clock cap: the soak would hang."""


# ---- the event loop, the virtual clock and the driver -------------------------------------------


class _Job:
    """One function run in a thread pool, tracked from submission to its end (or its
    cancellation before it started), so the harness knows when no thread work is pending."""

    def __init__(self, loop: SoakLoop) -> None:
        self.loop = loop
        self.state = "queued"
        with loop.lock:
            loop.jobs += 1

    def end(self, only_if: str | None = None) -> None:
        with self.loop.lock:
            if self.state in ("queued", "running") and only_if in (None, self.state):
                self.loop.jobs -= 1
                self.state = "done"

    def wrap(self, func: Callable[..., T]) -> Callable[..., T | None]:
        def run(*args: Any) -> T | None:
            with self.loop.lock:
                if self.state != "queued":
                    return None  # cancelled before it started
                self.state = "running"
            try:
                return func(*args)
            finally:
                self.end()

        return run

    def future_done(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self.end(only_if="queued")  # a job already running ends when it returns


class SoakLoop(asyncio.SelectorEventLoop):
    """An event loop that can tell when it is idle: no ready callback, no thread job pending,
    no HTTP request of the exporter's or the harness's in flight."""

    _ready: deque[Any]

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.jobs = 0
        self.inflight = 0

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        job = _Job(self)
        try:
            future = super().run_in_executor(executor, job.wrap(func), *args)
        except BaseException:
            job.end()
            raise
        future.add_done_callback(job.future_done)
        return future  # type: ignore[return-value]

    def idle(self) -> bool:
        return not self._ready and self.jobs == 0 and self.inflight == 0

    def busy_outside(self) -> bool:
        """Work that takes real time (threads, sockets) is pending."""
        return self.jobs > 0 or self.inflight > 0


class VirtualClock:
    """The exporter's clock (exporter.clock.Clock): time moves only when the driver says so."""

    def __init__(self, start: float) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.odd_sleeps: Counter[str] = Counter()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if math.isnan(seconds):
            self.odd_sleeps["nan"] += 1
            seconds = 0.0
        if seconds > 365 * 86400:
            self.odd_sleeps["over_a_year"] += 1
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), future))
        await future

    def next_deadline(self) -> float | None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def advance(self, to: float) -> None:
        self.now = max(self.now, to)
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)


class Driver:
    """Runs the loop until it is idle, moves virtual time, and bounds every wait in wall time."""

    def __init__(self, loop: SoakLoop, clock: VirtualClock) -> None:
        self.loop = loop
        self.clock = clock
        self.phase = "setup"
        self.phase_deadline = time.monotonic() + WALL_SETUP
        self.phase_walls: dict[str, float] = {}
        self._phase_started = time.monotonic()

    def start_phase(self, name: str, cap: float) -> None:
        now = time.monotonic()
        self.phase_walls[self.phase] = round(
            self.phase_walls.get(self.phase, 0.0) + now - self._phase_started, 2
        )
        self.phase, self.phase_deadline, self._phase_started = name, now + cap, now

    def end_phases(self) -> None:
        self.start_phase("done", 0.0)
        self.phase_walls.pop("done", None)

    def _check(self, deadline: float, what: str) -> None:
        now = time.monotonic()
        if now > deadline:
            raise Overrun(
                f"{what}: over its wall-clock cap (phase {self.phase}, virtual time "
                f"+{self.clock.now - START:.0f}s)"
            )
        if now > self.phase_deadline:
            raise Overrun(
                f"phase {self.phase}: over its wall-clock cap at virtual time "
                f"+{self.clock.now - START:.0f}s, during {what}"
            )

    async def settle(self, what: str = "settling") -> None:
        """Until the loop is idle twice in a row; virtual time stands still meanwhile."""
        deadline = time.monotonic() + WALL_OP
        idle = 0
        while idle < 2:
            await asyncio.sleep(0)
            if self.loop.idle():
                idle += 1
                continue
            idle = 0
            if self.loop.busy_outside():
                await asyncio.sleep(0.0002)
            self._check(deadline, what)

    async def run_until(self, t: float) -> None:
        """Move virtual time to `t`, waking every sleeper on the way in order."""
        while True:
            await self.settle()
            nxt = self.clock.next_deadline()
            if nxt is None or nxt > t:
                self.clock.advance(t)
                await self.settle()
                return
            self.clock.advance(nxt)
            self._check(self.phase_deadline, "running virtual time")

    async def complete(
        self, awaitable: Awaitable[T], what: str, *, advance: bool = False, cap: float = WALL_OP
    ) -> T:
        """Run one operation to its end. Virtual time moves only with `advance` and only when
        nothing else can run (a shutdown that waits on the clock)."""
        task = asyncio.ensure_future(awaitable)
        deadline = time.monotonic() + cap
        idle_since: float | None = None
        while not task.done():
            await asyncio.sleep(0)
            if self.loop.busy_outside():
                idle_since = None
                await asyncio.sleep(0.0002)
            elif advance and self.loop.idle():
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 0.02:
                    nxt = self.clock.next_deadline()
                    if nxt is not None:
                        self.clock.advance(nxt)
            try:
                self._check(deadline, what)
            except Overrun:
                task.cancel()
                raise
        return task.result()


# ---- what the harness records ------------------------------------------------------------------


@dataclass
class Finding:
    invariant: str
    what: str
    input: str = ""
    traceback: str = ""
    file: str = ""
    at: float = 0.0  # virtual seconds since the start

    def key(self) -> tuple[str, str, str]:
        return (self.invariant, self.what[:120], self.file)


def responsible_file(tb: str) -> str:
    """The last frame of a traceback inside the exporter (not the simulator): file:line."""
    frames = re.findall(r'File "([^"]*?/exporter/[^"]+)", line (\d+)', tb)
    frames = [(f, n) for f, n in frames if "/simulator/" not in f]
    if not frames:
        return ""
    path, line = frames[-1]
    return f"exporter/{path.rsplit('/exporter/', 1)[1]}:{line}"


@dataclass
class Record:
    findings: list[Finding] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    invariants: Counter[str] = field(default_factory=Counter)
    webhooks: Counter[str] = field(default_factory=Counter)  # "kind status" -> n
    _seen: set[tuple[str, str, str]] = field(default_factory=set)
    clock: VirtualClock | None = None
    # the exporter's last API answer: (request, status, no fault injected in it)
    last_answer: tuple[str, int, bool] | None = None

    def fail(self, invariant: str, what: str, *, input: str = "", tb: str = "", n: int = 1) -> None:
        self.invariants[invariant] += n
        at = self.clock.now - START if self.clock else 0.0
        finding = Finding(invariant, what, input[:1500], tb[-4000:], responsible_file(tb), round(at))
        if finding.key() not in self._seen and len(self.findings) < 200:
            self._seen.add(finding.key())
            self.findings.append(finding)


class LogSink:
    """Every structlog event and logging record of the process, rendered as in production
    (logfmt, tracebacks included), searched for secrets and for crashes as it arrives."""

    CRASH_EVENTS = re.compile(r"\.crashed$|^task\.returned$")

    def __init__(self, record: Record, secrets: Iterable[str], context: Callable[[], str]) -> None:
        self.record = record
        self.secrets = sorted({s for s in secrets if len(s) >= 12})
        self.context = context
        self.lines = 0
        self.events: Counter[str] = Counter()
        self.levels: Counter[str] = Counter()
        self.last_error_tb = ""
        self._renderer = structlog.processors.LogfmtRenderer(key_order=["ts", "level", "event"])
        self._handler: logging.Handler | None = None
        self._old: dict[str, Any] = {}
        self._old_level = logging.WARNING

    def _scan(self, text: str, event: str) -> None:
        self.lines += 1
        for secret in self.secrets:
            if secret in text:
                self.record.fail(
                    "secrets_in_logs",
                    f"log event {event!r} holds a secret",
                    input=text.replace(secret, "<SECRET>")[:600],
                )

    def processor(self, _: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        event = str(event_dict.get("event", ""))
        level = str(event_dict.get("level", method))
        self.events[event] += 1
        self.levels[level] += 1
        exc = event_dict.get("exc_info")
        tb = ""
        if isinstance(exc, BaseException):
            tb = "".join(traceback.format_exception(exc))
        elif exc is True or isinstance(exc, tuple):
            tb = traceback.format_exc()
        self._scan(repr(event_dict), event)
        rendered = self._renderer(
            _, method, dict(structlog.processors.format_exc_info(_, method, dict(event_dict)))
        )
        self._scan(rendered, event)
        answer = self.record.last_answer
        if event in ("poll.failed", "refresh.failed") and answer and answer[1] == 200 and answer[2]:
            fields = {k: v for k, v in event_dict.items() if k not in ("exc_info", "event", "ts")}
            self.record.fail(
                "clean_answers_rejected",
                f"{event} after a clean answer: {fields}"[:400],
                input=f"{answer[0]} answered 200 with no fault injected (a body sent in pieces "
                "counts as clean)",
            )
        if self.CRASH_EVENTS.search(event):
            fields = {k: v for k, v in event_dict.items() if k not in ("exc_info", "event", "ts")}
            self.record.fail("crashes", f"{event} {fields}"[:300], input=self.context(), tb=tb)
        elif level in ("error", "critical") and tb:
            self.record.fail(
                "crashes", f"{event} (logged at {level} with a traceback)", input=self.context(), tb=tb
            )
        return rendered

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        tb = ""
        if record.exc_info and record.exc_info[1] is not None:
            tb = "".join(traceback.format_exception(record.exc_info[1]))
        self.events[f"logging:{record.name}"] += 1
        self._scan(f"{record.name} {record.levelname} {text}\n{tb}", record.name)
        exc = record.exc_info[1] if record.exc_info else None
        if record.levelno >= logging.ERROR and text.startswith("Unclosed"):
            self.record.counts["unclosed_resource_warnings"] += 1
        elif isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            # aiohttp's own parser refused the request with a 4xx (and logs it as an error)
            self.record.counts[f"aiohttp_refused_{exc.code}"] += 1
        elif record.levelno >= logging.ERROR:
            self.last_error_tb = tb or text
            if record.name == "aiohttp.server":  # its 500 answer is what counts (once)
                self.record.counts["aiohttp_server_errors_logged"] += 1
            else:
                self.record.fail("crashes", f"{record.name}: {text}"[:300], input=self.context(), tb=tb)

    def install(self) -> None:
        self._old = structlog.get_config()
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", key="ts"),
                self.processor,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            logger_factory=structlog.ReturnLoggerFactory(),
            cache_logger_on_first_use=False,
        )
        sink = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                sink.emit(record)

        self._handler = Handler(logging.DEBUG)
        root = logging.getLogger()
        self._old_level = root.level
        root.addHandler(self._handler)
        root.setLevel(logging.DEBUG)

    def uninstall(self) -> None:
        structlog.configure(**self._old)
        root = logging.getLogger()
        if self._handler is not None:
            root.removeHandler(self._handler)
        root.setLevel(self._old_level)


class TrackedTransport:
    """The exporter's real HttpTransport, counted as in flight while it runs (so virtual time
    stands still) and watched for exceptions other than ApiError."""

    def __init__(
        self,
        inner: HttpTransport,
        loop: SoakLoop,
        record: Record,
        context: Callable[[], str],
        faults_so_far: Callable[[], int],
    ) -> None:
        self.inner = inner
        self.loop = loop
        self.record = record
        self.context = context
        self.faults_so_far = faults_so_far

    async def get(self, path: str, params: Mapping[str, str]) -> RawResponse:
        self.loop.inflight += 1
        self.record.counts["exporter_transport_requests"] += 1
        self.record.last_answer = None
        before = self.faults_so_far()
        try:
            response = await self.inner.get(path, params)
            clean = self.faults_so_far() == before
            self.record.last_answer = (f"GET {path} {dict(params)}", response.status, clean)
            return response
        except (ApiError, asyncio.CancelledError):
            raise
        except Exception as err:
            self.record.fail(
                "crashes",
                f"the transport raised {type(err).__name__}: {err}"[:300],
                input=f"GET {path} {dict(params)}; {self.context()}",
                tb="".join(traceback.format_exception(err)),
            )
            raise
        finally:
            self.loop.inflight -= 1


# ---- one exporter process, in-process ----------------------------------------------------------


@dataclass
class Incarnation:
    exporter: Exporter
    db: StateDB
    journal: Any
    session: aiohttp.ClientSession
    runner: web.AppRunner
    site: web.TCPSite
    base: str
    http: aiohttp.ClientSession
    tasks_before: set[asyncio.Task[Any]]
    fds_before: set[str]


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _fd_target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


# ---- webhooks ----------------------------------------------------------------------------------


@dataclass
class Sent:
    kind: str  # "valid", "valid_hetrix", or a hostile kind
    source: str  # "generatorlabs" or "hetrixtools"
    body: bytes
    headers: dict[str, str]
    label: str | None = None  # the event label of a valid event
    monitors: dict[str, int] = field(default_factory=dict)  # hetrix monitors that must show


def label_of(body: bytes) -> str | None:
    """The event label a signed body would be counted under (for telling which events are
    missing when counts differ): `event_type` (or `event`) as text, "other" when unknown."""
    try:
        event = json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
    except (ValueError, OSError, RecursionError):
        return None
    if not isinstance(event, dict):
        return None
    value = event.get("event_type") or event.get("event")
    if value is None or isinstance(value, bool | dict | list):
        return None
    return _event_label(str(value).strip())


def _event_label(event_type: object) -> str:
    return event_type if isinstance(event_type, str) and event_type in KNOWN_EVENTS else "other"


def deep_nest(depth: int) -> bytes:
    return (
        b'{"event_sid":"TA1","event_type":"billing.balance.alert","x":' + b"[" * depth + b"]" * depth + b"}"
    )


class Webhooks:
    """Valid events from the account's drift and the HetrixTools fleet, and hostile ones."""

    def __init__(self, account: Account, clock: VirtualClock, rng: random.Random) -> None:
        self.account = account
        self.clock = clock
        self.rng = rng
        self.fleet = HetrixFleet(40, seed=rng.randrange(1 << 30))
        self.serial = itertools.count(1)
        self.acked: list[Sent] = []  # answered 2xx, not as duplicates
        self.expected_events: Counter[str] = Counter()  # event label -> acknowledged new events
        self.valid_events: Counter[str] = Counter()
        self.hetrix: dict[str, int] = {}  # monitor -> last acknowledged listed count
        self.sent_log: deque[tuple[str, int, str]] = deque(maxlen=20)

    # -- building --------------------------------------------------------------------------

    def _sid(self) -> str:
        return f"TA{next(self.serial):032x}"

    def signed(
        self,
        event: Mapping[str, Any],
        *,
        secret: str | None = None,
        raw: bytes | None = None,
        t: int | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        body = raw if raw is not None else dumps(dict(event))
        stamp = int(self.clock.now) if t is None else t
        return body, {
            "Content-Type": "application/json",
            "X-Webhook-Signature": sign(body, secret or self.rng.choice(SECRETS), stamp),
        }

    def _base(self, event_type: str, **fields: Any) -> dict[str, Any]:
        return {
            "event_sid": self._sid(),
            "event_type": event_type,
            "event_date": iso(self.clock.now),
            **fields,
        }

    def valid_round(self) -> list[Sent]:
        """The account's changes since the last round, now and then an agent, billing or
        certificate-change event, and now and then a HetrixTools chunk."""
        self.account.advance(self.clock.now)
        out = [self._valid(dict(e)) for e in (self.account.outbox or [])]
        self.account.outbox = []
        roll = self.rng.random()
        agent = {"id": sid("AG", 1), "name": "eu-west-1", "status": "active"}
        if roll < 0.1:
            out.append(
                self._valid(
                    {
                        "event_type": "agent.timeout",
                        "agent": agent,
                        "timeout_minutes": 15,
                        "instances": [{"id": "i-1"}],
                    }
                )
            )
        elif roll < 0.2:
            out.append(
                self._valid(
                    {
                        "event_type": "agent.timeout.resolve",
                        "agent": agent,
                        "timeout_minutes": 15,
                        "instances": [{"id": "i-1"}],
                    }
                )
            )
        elif roll < 0.3:
            out.append(
                self._valid(
                    {
                        "event_type": "billing.balance.alert",
                        "balance": f"{self.rng.uniform(5, 20):.2f}",
                        "alert_threshold": "15.00",
                    }
                )
            )
        elif roll < 0.4 and self.account.monitors:
            monitor = self.rng.choice(list(self.account.monitors.values()))
            out.append(
                self._valid(
                    {
                        "event_type": "cert.changed",
                        "monitor": monitor.to_json(),
                        "previous_fingerprint": "SHA256:00",
                        "new_fingerprint": "SHA256:11",
                    }
                )
            )
        if self.rng.random() < 0.3:
            for chunk in self.fleet.chunks(self.rng.randrange(1, 6)):
                out.append(self._hetrix_chunk("valid_hetrix", chunk))
        return out

    def _valid(self, event: dict[str, Any]) -> Sent:
        event = {"event_sid": self._sid(), "event_date": iso(self.clock.now), **event}
        body, headers = self.signed(event)
        return Sent("valid", "generatorlabs", body, headers, label=_event_label(event["event_type"]))

    def _hetrix_chunk(self, kind: str, items: list[Any], good: dict[str, int] | None = None) -> Sent:
        if good is None:
            good = {i["monitor"]: int(i["blacklisted_now"]) for i in items}
        return Sent(kind, "hetrixtools", dumps(items), {"Content-Type": "application/json"}, monitors=good)

    def burst(self, n: int) -> list[Sent]:
        """Events and chunks that each name something new (for a crash in the middle)."""
        out = []
        for _ in range(n):
            if self.rng.random() < 0.5:
                out.append(
                    self._valid(
                        {
                            "event_type": self.rng.choice(
                                ("expiring.plan.alert", "billing.renewal.success", "expiring.card.alert")
                            ),
                            "plan": {},
                            "payment": {},
                        }
                    )
                )
            else:
                name = f"burst-{next(self.serial)}.example"
                count = self.rng.randrange(0, 3)
                items = [
                    {
                        "monitor": name,
                        "label": "burst",
                        "blacklisted_now": str(count),
                        "blacklisted_on": [{"rbl": f"rbl{j}.example", "delist": "x"} for j in range(count)]
                        or None,
                    }
                ]
                out.append(self._hetrix_chunk("valid_hetrix", items))
        return out

    # -- hostile ---------------------------------------------------------------------------

    def _odd(self) -> Any:
        return self.rng.choice(HOSTILE_VALUES)

    def _template(self) -> dict[str, Any]:
        host = self.rng.choice(list(self.account.hosts.values())).to_json()
        monitor = self.rng.choice(list(self.account.monitors.values())).to_json()
        agent = {"id": sid("AG", 2), "name": "us-east-1"}
        return self.rng.choice(
            (
                self._base(
                    "rbl.host.listed",
                    host=host,
                    listed=True,
                    total=2,
                    details=[{"host": "Spamhaus ZEN"}, {"host": "SpamCop"}],
                ),
                self._base("rbl.host.delisted", host=host, listed=False, total=0, details=[]),
                self._base("rbl.host.check.completed", host=host, listed=False, total=0),
                self._base("cert.expiration.trigger", monitor=monitor, expiry_days=5),
                self._base("cert.expiration.resolve", monitor=monitor, expiry_days=90),
                self._base(
                    "cert.error.trigger",
                    monitor=monitor,
                    errors=[{"id": "CE1", "error_type": "name_mismatch"}],
                    current_errors=[{"id": "CE1", "error_type": "name_mismatch"}],
                ),
                self._base("cert.error.resolve", monitor=monitor, resolved_errors=[], current_errors=[]),
                self._base("cert.changed", monitor=monitor, previous_fingerprint="a", new_fingerprint="b"),
                self._base("agent.timeout", agent=agent, timeout_minutes=15, instances=[{"id": "i-9"}]),
                self._base("billing.balance.alert", balance="12.50", alert_threshold="15.00"),
                self._base("billing.recharge.failed", payment={"amount": "10.00"}),
            )
        )

    def _mutate(self, event: dict[str, Any]) -> dict[str, Any]:
        """Replace 1-3 fields (top level or one level down) by odd values or wrong types."""
        for _ in range(self.rng.randint(1, 3)):
            key = self.rng.choice(sorted(event))
            value = event[key]
            if isinstance(value, dict) and value and self.rng.random() < 0.6:
                inner = dict(value)
                inner[self.rng.choice(sorted(inner))] = self._odd()
                event[key] = inner
            elif isinstance(value, list) and value and self.rng.random() < 0.5:
                event[key] = [self._odd() for _ in value]
            else:
                event[key] = self._odd()
        return event

    def hostile(self) -> Sent:
        kind = self.rng.choice(
            (
                "signed_odd_fields",
                "signed_odd_fields",
                "signed_odd_fields",
                "signed_odd_fields",
                "signed_path_id",
                "bad_signature",
                "bad_signature",
                "signed_not_json",
                "signed_nested",
                "gzip_lie",
                "wrong_content_type",
                "replay",
                "oversized",
                "wrong_method",
                "hetrix_bad_items",
                "hetrix_bad_items",
                "hetrix_bad_items",
                "hetrix_bad_body",
                "hetrix_bad_token",
                "hetrix_gzip_lie",
            )
        )
        return getattr(self, f"_h_{kind}")()  # type: ignore[no-any-return]

    def _h_signed_odd_fields(self) -> Sent:
        body, headers = self.signed(self._mutate(self._template()))
        return Sent("signed_odd_fields", "generatorlabs", body, headers, label=label_of(body))

    def _h_signed_path_id(self) -> Sent:
        event = self._template()
        key = next((k for k in ("host", "monitor", "agent") if k in event), None)
        if key is not None:
            event[key] = {
                **event[key],
                "id": self.rng.choice(
                    (
                        "HT3/../../../../etc",
                        "HT" + "0" * 32 + "/../../contact/contacts",
                        "HT%2e%2e%2fetc",
                        "HT00?page=2&x=",
                        "HT#frag",
                        "HT" + "a" * 5000,
                        "\ud800",
                    )
                ),
            }
        body, headers = self.signed(event)
        return Sent("signed_path_id", "generatorlabs", body, headers, label=label_of(body))

    def _h_bad_signature(self) -> Sent:
        event = self._template()
        body = dumps(event)
        now = int(self.clock.now)
        header = self.rng.choice(
            (
                sign(body, "whsec_wrong_secret", now),
                sign(body, SECRETS[0], now - 100_000),
                sign(body, SECRETS[0], now + 100_000),
                f"t={now},v1=é",
                "t=²,v1=00",
                f"t={'9' * 400},v1=00",
                f"t={now}",
                "v1=00",
                "",
                "t=,v1=",
                f"t={now},v1=" + "0" * 5000,
                "garbage",
                f"t=-{now},v1=00",
                f"t={now}.5,v1=00",
                f"t={now},v1=zz\x7f",
            )
        )
        headers = {"Content-Type": "application/json"}
        if header:
            headers["X-Webhook-Signature"] = header
        return Sent("bad_signature", "generatorlabs", body, headers)

    def _h_signed_not_json(self) -> Sent:
        raw = self.rng.choice(
            (
                b"not json",
                b"\xff\xfe\x00",
                b"[1,2,3]",
                b"null",
                b"NaN",
                b'"text"',
                b"\xef\xbb\xbf{}",
                b'{"event_sid": "TA1", ',
                b"{}" * 1000,
                b"",
            )
        )
        body, headers = self.signed({}, raw=raw)
        return Sent("signed_not_json", "generatorlabs", body, headers)

    def _h_signed_nested(self) -> Sent:
        body, headers = self.signed({}, raw=deep_nest(self.rng.choice((1000, 50_000, 200_000))))
        return Sent("signed_nested", "generatorlabs", body, headers)

    def _h_gzip_lie(self) -> Sent:
        body, headers = self.signed(self._template())
        if self.rng.random() < 0.5:  # a real gzip body whose signature covers the compressed bytes
            body = gzip.compress(body)
            body, headers = self.signed({}, raw=body)
        headers["Content-Encoding"] = self.rng.choice(("gzip", "deflate", "br", "x-unknown"))
        return Sent("gzip_lie", "generatorlabs", body, headers, label=label_of(body))

    def _h_wrong_content_type(self) -> Sent:
        body, headers = self.signed(self._template())
        headers["Content-Type"] = self.rng.choice(
            ("text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", "\x7f")
        )
        return Sent("wrong_content_type", "generatorlabs", body, headers, label=label_of(body))

    def _h_replay(self) -> Sent:
        previous = [s for s in self.acked[-50:] if s.source == "generatorlabs"]
        if not previous:
            return self._h_bad_signature()
        old = self.rng.choice(previous)
        event = json.loads(old.body)
        body, headers = (
            (old.body, dict(old.headers)) if self.rng.random() < 0.5 else self.signed(event, raw=old.body)
        )  # the same event, signed anew
        return Sent("replay", "generatorlabs", body, headers, label=label_of(body))

    def _h_oversized(self) -> Sent:
        event = self._base("billing.recharge.success", plan={"note": "x" * (1024 * 1024 + 10)})
        body, headers = self.signed(event)
        return Sent("oversized", "generatorlabs", body, headers, label=label_of(body))

    def _h_wrong_method(self) -> Sent:
        body, headers = self.signed(self._template())
        headers["X-Soak-Method"] = self.rng.choice(("GET", "PUT", "DELETE", "PATCH"))
        return Sent("wrong_method", "generatorlabs", body, headers, label=label_of(body))

    def _bad_item(self) -> Any:
        base: dict[str, Any] = {
            "monitor": f"hostile-{next(self.serial)}.example",
            "label": "hostile",
            "blacklisted_now": "1",
            "blacklisted_on": [{"rbl": "x.example", "delist": "x"}],
        }
        roll = self.rng.random()
        if roll < 0.15:
            return self._odd()  # not an object
        if roll < 0.3:
            base["monitor"] = self._odd()
        elif roll < 0.6:
            base["blacklisted_now"] = self.rng.choice(
                (
                    "inf",
                    "-inf",
                    "NaN",
                    "-5",
                    "1e400",
                    "9" * 400,
                    RawJson("1e400"),
                    math.nan,
                    [],
                    {},
                    True,
                    "2**80",
                    str(2**80),
                    "1.5",
                    "",
                    None,
                    "\ud800",
                )
            )
        elif roll < 0.8:
            base["blacklisted_on"] = self.rng.choice(
                ("zen", {"rbl": "x"}, [1, None, "x"], [{"rbl": self._odd()}], math.inf)
            )
        else:
            base["label"] = self._odd()
        return base

    def _h_hetrix_bad_items(self) -> Sent:
        items: list[Any] = []
        good: dict[str, int] = {}
        for _ in range(self.rng.randint(1, 8)):
            if self.rng.random() < 0.5:
                name = f"mixed-{next(self.serial)}.example"
                count = self.rng.randrange(0, 3)
                good[name] = count
                items.append(
                    {
                        "monitor": name,
                        "label": "mixed",
                        "blacklisted_now": str(count),
                        "blacklisted_on": [{"rbl": f"r{j}.example", "delist": "x"} for j in range(count)]
                        or None,
                    }
                )
            else:
                items.append(self._bad_item())
        return self._hetrix_chunk("hetrix_bad_items", items, good)

    def _h_hetrix_bad_body(self) -> Sent:
        raw = self.rng.choice(
            (
                b"not json",
                b"{}",
                b'{"monitor": "x"}',
                b"null",
                b"NaN",
                b"[" * 100_000,
                b"[]",
                b"\xff\xfe",
                b'[{"monitor": "a", "blacklisted_now": 1e400}]',
            )
        )
        return Sent("hetrix_bad_body", "hetrixtools", raw, {"Content-Type": "application/json"})

    def _h_hetrix_bad_token(self) -> Sent:
        sent = self._h_hetrix_bad_items()
        sent.kind = "hetrix_bad_token"
        sent.headers["X-Soak-Token"] = self.rng.choice(
            ("wrong", HX_TOKEN[:-1], HX_TOKEN + "x", "%00", "a" * 3000)
        )
        sent.monitors = {}
        return sent

    def _h_hetrix_gzip_lie(self) -> Sent:
        sent = self._h_hetrix_bad_items()
        sent.kind = "hetrix_gzip_lie"
        sent.headers["Content-Encoding"] = "gzip"
        sent.monitors = {}  # a body that cannot be decoded applies nothing
        return sent


# ---- the soak ---------------------------------------------------------------------------------


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


class Soak:
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
        self.faults = self._faults()
        self.api = SimulatedApi(self.account, SID, TOKEN, faults=self.faults, seed=options.seed)
        self.webhooks = Webhooks(self.account, self.clock, self.rng)
        self.current: Incarnation | None = None
        self.graveyard: list[Any] = []  # crashed incarnations: never finalised during the soak
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

    def _faults(self) -> Faults:
        hours, rng = self.o.hours, self.rng
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
        k = self.o.intensity
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

    # -- incarnations ----------------------------------------------------------------------

    async def start_exporter(self) -> Incarnation:
        assert self.config is not None
        tasks_before = set(asyncio.all_tasks())
        fds_before = _open_fds()
        db = StateDB(self.state_path, self.clock.time)
        loaded = await self.driver.complete(
            db.start(Owner(SID, self.config.api.base_url), self.clock.time()), "opening the state file"
        )
        session = make_session(SID, TOKEN, self.config.api.timeout)
        transport = TrackedTransport(
            HttpTransport(session, self.config.api.base_url),
            self.loop,
            self.record,
            self._context,
            lambda: sum(self.api.injected.values()) - self.api.injected["trickled_body"],
        )
        exporter = build_exporter(self.config, transport, self.clock, db, loaded)
        journal = exporter.journal
        config = self.config
        app = create_app(exporter, lambda: config)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.driver.complete(runner.setup(), "starting the app")
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await self.driver.complete(site.start(), "listening")
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        port = server.sockets[0].getsockname()[1]
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WALL_OP), auto_decompress=True)
        incarnation = Incarnation(
            exporter,
            db,
            journal,
            session,
            runner,
            site,
            f"http://127.0.0.1:{port}",
            http,
            tasks_before,
            fds_before,
        )
        self.current = incarnation
        self.counts["exporter_starts"] += 1
        return incarnation

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
                tb="".join(traceback.format_exception(err)),
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
        state_dir = str(Path(self.state_path).parent)
        sqlite_files = {self.state_path + s for s in ("", "-wal", "-shm", "-journal")}
        for fd in _open_fds():  # only one exporter is alive at a time: these are the crashed one's
            target = _fd_target(fd)
            # the lock file's descriptor: closing it is what the kernel does at a SIGKILL. SQLite's
            # own descriptors are left open: closing them under SQLite would corrupt its state.
            if target.startswith(state_dir + "/") and target not in sqlite_files:
                with contextlib.suppress(OSError):
                    os.close(int(fd))
        await self.driver.complete(inc.site.stop(), "closing the listening socket")
        await self.driver.complete(inc.http.close(), "closing the harness's client")
        await self.driver.complete(inc.session.close(), "closing the crashed exporter's sockets")
        self.graveyard.append(inc)
        self.current = None
        self.counts[f"crashes_simulated_{during}"] += 1

    # -- talking to the exporter -------------------------------------------------------------

    async def _http(
        self, method: str, path: str, data: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes, Mapping[str, str]]:
        inc = self.current
        assert inc is not None
        self.loop.inflight += 1
        try:
            payload: bytes | io.BytesIO | None = data
            if data is not None and len(data) > 512 * 1024:  # aiohttp wants big bodies as files
                payload = io.BytesIO(data)
            async with inc.http.request(
                method, inc.base + path, data=payload, headers=headers, allow_redirects=False
            ) as response:
                return response.status, await response.read(), response.headers
        except (ValueError, UnicodeError, aiohttp.InvalidURL):  # refused by aiohttp's client
            return await self._raw(method, path, data or b"", headers or {})
        except (aiohttp.ClientError, TimeoutError) as err:
            return -1, f"{type(err).__name__}: {err}".encode()[:300], {}
        finally:
            self.loop.inflight -= 1

    async def _raw(
        self, method: str, path: str, data: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """The request as raw bytes on a socket: header values no HTTP client would send."""
        inc = self.current
        assert inc is not None
        port = int(inc.base.rsplit(":", 1)[1])
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        head += f"Content-Length: {len(data)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as err:
            return -1, f"{type(err).__name__}: {err}".encode()[:300], {}
        self.counts["webhooks_sent_raw"] += 1
        try:
            writer.write(head.encode("utf-8", "surrogateescape") + b"\r\n" + data)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(4 * 1024 * 1024), WALL_OP)
        except (OSError, TimeoutError) as err:
            return -1, f"{type(err).__name__}: {err}".encode()[:300], {}
        finally:
            writer.close()
        status_line, _, rest = answer.partition(b"\r\n")
        parts = status_line.split(b" ")
        if len(parts) < 2 or not parts[1].isdigit():
            return -1, answer[:300], {}
        return int(parts[1]), rest.partition(b"\r\n\r\n")[2], {}

    async def request(
        self, method: str, path: str, data: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes, Mapping[str, str]]:
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
        w = self.webhooks
        excerpt = sent.body[:160].decode("utf-8", "replace")
        w.sent_log.append((sent.kind, status, excerpt))
        self.record.webhooks[f"{sent.kind} {status}"] += 1
        self.counts["webhooks_sent"] += 1
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
        duplicate = status == 200 and sent.source == "generatorlabs" and not retry
        if 200 <= status < 300 and not duplicate:
            self.counts["webhooks_accepted"] += 1
            w.acked.append(sent)
            if sent.source == "generatorlabs":
                label = sent.label or "?"  # "?": no label could be read (counted somewhere)
                w.expected_events[label] += 1
                if sent.kind == "valid":
                    w.valid_events[label] += 1
            else:
                w.hetrix.update(sent.monitors)
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

    async def post_all(self, items: list[Sent]) -> None:
        for sent in items:
            if sent.kind == "valid":  # the signature's timestamp is the time of sending
                sent.body, sent.headers = self.webhooks.signed({}, raw=sent.body)
            await self.post(sent)

    # -- checking ---------------------------------------------------------------------------

    async def scrape(
        self, *, openmetrics: bool = False, promtool: bool = False
    ) -> dict[str, list[tuple[dict[str, str], float]]]:
        headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
        status, body, _ = await self.request("GET", "/metrics", headers=headers)
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
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        try:
            families = (parse_openmetrics if openmetrics else parse_text)(text)
            for family in families:
                for s in family.samples:
                    samples.setdefault(s.name, []).append((s.labels, s.value))
            if self.current is not None:
                restarts = sum(v for _, v in samples.get("generatorlabs_exporter_task_restarts_total", []))
                key = str(id(self.current))
                self.max_restarts[key] = max(self.max_restarts.get(key, 0.0), restarts)
        except Exception as err:
            self.record.fail(
                "invalid_expositions",
                f"{'OpenMetrics' if openmetrics else 'text'} "
                f"exposition does not parse: {type(err).__name__}: {str(err)[:200]}",
                input=self._context(),
                tb="".join(traceback.format_exception(err)),
            )
        if promtool and self.o.promtool and not openmetrics:
            await self.promtool(text)
        return samples

    async def promtool(self, text: str) -> None:
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
            out, err = await asyncio.wait_for(proc.communicate(text.encode()), WALL_OP)
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
        counted: Counter[str] = Counter()
        for labels, value in samples.get("generatorlabs_webhook_events_total", []):
            counted[labels.get("event", "?")] += int(value)
        w = self.webhooks
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
        shown = {
            labels.get("monitor"): value
            for labels, value in samples.get("hetrixtools_blacklist_monitor_listings", [])
        }
        missing = [m for m in w.hetrix if m not in shown]
        wrong = [(m, v, shown[m]) for m, v in w.hetrix.items() if m in shown and shown[m] != v]
        if missing or wrong:
            self.record.fail(
                "unapplied_acknowledged_webhooks",
                f"{when}: HetrixTools monitors acknowledged but not shown: {missing[:5]} "
                f"({len(missing)}), shown with another value: {wrong[:5]} ({len(wrong)})",
                input=self._context(),
                n=len(missing) + len(wrong),
            )
        self.counts["applied_checks"] += 1

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
            samples = await self.scrape(promtool=minute % 180 == 0)
            hosts = samples.get("generatorlabs_rbl_hosts")
            if hosts:
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
        if minute % 10 == 0:
            await self.scrape(openmetrics=True)
            await self.health()

    async def crash_mid_burst(self) -> None:
        """Send a burst of new webhooks concurrently and crash after some are acknowledged;
        those without an answer are retried after the restart, as a sender would."""
        burst = self.webhooks.burst(30)
        for sent in burst:
            if sent.source == "generatorlabs":
                sent.body, sent.headers = self.webhooks.signed(json.loads(sent.body), raw=sent.body)
        kill_after = self.rng.randint(3, 20)
        answered: list[Sent] = []
        done = asyncio.Event()

        async def one(sent: Sent) -> None:
            inc = self.current
            assert inc is not None
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

        tasks = [asyncio.ensure_future(one(s)) for s in burst]
        waiter = asyncio.ensure_future(done.wait())
        await self.driver.complete(_first(waiter, tasks), "a webhook burst")
        done.set()
        await self.crash("mid_burst")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
        sim_runner = other_runner = None
        try:
            sim_runner, sim_port = await start_simulator(
                self.api, self.clock, hang=lambda: asyncio.sleep(HANG_REAL)
            )
            other_runner, other_port = await start_other_host(self.api, self.clock)
            self.faults.other_host = f"http://127.0.0.1:{other_port}"
            self.config = self._config(sim_port)
            await self.start_or_record()
            await self.soak()
            await self.recover()
        except Overrun as err:
            self.counts["overrun"] += 1
            self.record.fail("overruns", str(err), input=self._context())
        finally:
            self.driver.start_phase("shutdown", WALL_SETUP)
            if self.current is not None:
                try:
                    await self.stop_gracefully(final=True)
                except Exception as err:
                    self.record.fail(
                        "crashes",
                        f"the exporter does not stop: {type(err).__name__}: {err}",
                        tb="".join(traceback.format_exception(err)),
                    )
            self.driver.end_phases()
            for inc in self.graveyard:
                with contextlib.suppress(Exception):
                    await inc.http.close()
            for runner in (sim_runner, other_runner):
                if runner is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(runner.cleanup(), WALL_OP)
            self.sink.uninstall()
        self._invariants_from_api()
        return self.results(time.monotonic() - wall)

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
        self.driver.start_phase("final checks", 120.0)
        await self.check_applied("at the end")
        samples = await self.scrape(promtool=True)
        await self.scrape(openmetrics=True)
        await self.health()
        self._end_incarnation_counts()
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
        up = samples.get("generatorlabs_up", [({}, 0.0)])[0][1]
        self.counts["up_at_end"] = int(up)

    def _invariants_from_api(self) -> None:
        budget = self.o.budget
        times = self.api.received
        over, lo, worst = 0, 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - 3600:
                lo += 1
            worst = max(worst, hi - lo + 1)
            if hi - lo + 1 > budget:
                over += 1
        self.counts["max_requests_in_a_rolling_hour"] = worst
        if over:
            self.record.fail(
                "budget_overruns",
                f"{over} requests over the budget of {budget}/h (the worst rolling hour held {worst})",
                n=over,
            )
        leaks = [r for r in self.api.other_host_requests if r[2]]
        self.counts["other_host_requests"] = len(self.api.other_host_requests)
        if leaks:
            self.record.fail(
                "authorization_sent_to_other_host",
                f"{len(leaks)} requests to the other host carried an Authorization header "
                f"({sum(1 for r in leaks if r[3])} with the API credentials)",
                n=len(leaks),
            )
        end = self.chaos_end if self.chaos_end is not None else self.clock.now
        points = [START, *[t for t in times if t <= end], end]
        stalls = [(a, b) for a, b in itertools.pairwise(points) if b - a > STALL_SECONDS]
        self.counts["longest_gap_between_requests_s"] = round(
            max((b - a for a, b in itertools.pairwise(points)), default=0)
        )
        if stalls:
            self.record.fail(
                "stalls",
                f"{len(stalls)} periods without any API request longer than "
                f"{STALL_SECONDS:.0f}s: "
                + ", ".join(f"+{a - START:.0f}s..+{b - START:.0f}s" for a, b in stalls[:5]),
                input="; ".join(
                    f"+{t - START:.0f}s {p} {k} {d}"
                    for t, p, k, d in self.api.recent
                    if any(a - 60 <= t <= a + 60 for a, _ in stalls)
                )[:1500],
                n=len(stalls),
            )

    def results(self, wall: float) -> dict[str, Any]:
        api = self.api
        main = (
            "budget_overruns",
            "crashes",
            "unapplied_acknowledged_webhooks",
            "invalid_expositions",
            "secrets_in_logs",
        )
        extra = (
            "clean_answers_rejected",
            "hosts_dropped",
            "acknowledged_webhooks_applied_twice",
            "authorization_sent_to_other_host",
            "stalls",
            "objects_missing_after_recovery",
            "overruns",
        )
        inv = self.record.invariants
        return {
            "options": {k: v for k, v in vars(self.o).items() if k != "promtool"},
            "promtool": self.o.promtool,
            "invariants": {k: inv.get(k, 0) for k in main},
            "also_checked": {k: inv.get(k, 0) for k in extra},
            "requests": {
                "received_by_api": len(api.received),
                "accepted": len(api.accepted),
                "answered_429": api.rejected_429,
                "sent_by_exporter": self.counts["exporter_transport_requests"],
                "paths_outside_the_api": dict(api.unknown_routes.most_common(10)),
            },
            "faults_injected": dict(sorted(api.injected.items())),
            "webhooks": {
                "sent": self.counts["webhooks_sent"],
                "accepted": self.counts["webhooks_accepted"],
                "duplicates": self.counts["webhooks_duplicate"],
                "rejected": self.counts["webhooks_rejected"],
                "by_kind_and_status": dict(sorted(self.record.webhooks.items())),
            },
            "crashes_simulated": {
                k.removeprefix("crashes_simulated_"): v
                for k, v in self.counts.items()
                if k.startswith("crashes_simulated_")
            }
            | {"graceful_restarts": self.counts["graceful_restarts"]},
            "renders_checked": {
                "text": self.counts["renders_checked_text"],
                "openmetrics": self.counts["renders_checked_openmetrics"],
                "promtool": self.counts["renders_checked_promtool"],
                "promtool_lint": dict(self.promtool_lint),
            },
            "counts": dict(sorted(self.counts.items())),
            "log": {
                "lines": self.sink.lines,
                "levels": dict(self.sink.levels),
                "top_events": dict(self.sink.events.most_common(25)),
            },
            "clock_odd_sleeps": dict(self.clock.odd_sleeps),
            "wall_seconds": round(wall, 1),
            "phase_wall_seconds": self.driver.phase_walls,
            "findings": [vars(f) for f in self.record.findings],
        }


async def _first(waiter: asyncio.Future[Any], tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Until `waiter` is done or every task is."""
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    while not waiter.done() and not all(t.done() for t in tasks):
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)


# ---- real SIGKILLs of a real process --------------------------------------------------------------


def _free_port() -> int:
    from tests.helpers.processes import free_port

    return free_port()


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError as err:
        return -1, str(err).encode()


def sigkills(n: int, seed: int, record: Record) -> dict[str, Any]:
    """`n` SIGKILLs of `python -m exporter --demo` (explicit state.path) in the middle of
    webhook bursts; each restart must become ready and show every acknowledged webhook."""
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="generatorlabs-soak-kill-"))
    secret, hx = SECRETS[0], HX_TOKEN
    config = tmp / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "webhooks": {"enabled": True, "secrets": [secret], "hetrixtools_token": hx},
                "state": {"path": str(tmp / "state.sqlite")},
                "log": {"level": "debug"},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENERATORLABS_")}
    env["XDG_STATE_HOME"] = str(tmp / "xdg")
    log_path = tmp / "exporter.log"
    acked_monitors: set[str] = set()
    acked_events = 0
    out: dict[str, Any] = {"kills": 0, "starts": 0, "ready_seconds": [], "acked": 0, "statuses": Counter()}
    serial = itertools.count()

    def start() -> tuple[subprocess.Popen[bytes], str]:
        port = _free_port()
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "exporter",
                    "--demo",
                    "--config.file",
                    str(config),
                    "--web.listen-address",
                    f"127.0.0.1:{port}",
                    "--log.format",
                    "json",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )
        base = f"http://127.0.0.1:{port}"
        began = time.monotonic()
        while time.monotonic() - began < WALL_KILL_CYCLE:
            if proc.poll() is not None:
                record.fail(
                    "crashes",
                    f"the real exporter exited with {proc.returncode} at start",
                    tb=log_path.read_text(errors="replace")[-3000:],
                )
                raise Overrun("the real exporter does not start")
            if _get(base + "/-/ready", 1.0)[0] == 200:
                out["ready_seconds"].append(round(time.monotonic() - began, 2))
                out["starts"] += 1
                return proc, base
            time.sleep(0.1)
        proc.kill()
        proc.wait(10)
        record.fail(
            "crashes",
            "the real exporter did not become ready in time",
            tb=log_path.read_text(errors="replace")[-3000:],
        )
        raise Overrun("the real exporter does not become ready")

    def check(base: str, when: str) -> None:
        status, body = _get(base + "/metrics")
        if status != 200:
            record.fail("crashes", f"real exporter /metrics answered {status} {when}")
            return
        text = body.decode("utf-8", "replace")
        try:
            families = list(parse_text(text))
        except Exception as err:
            record.fail("invalid_expositions", f"real exporter /metrics does not parse {when}: {err}")
            return
        shown = {
            s.labels.get("monitor")
            for f in families
            for s in f.samples
            if s.name == "hetrixtools_blacklist_monitor_info"
        }
        missing = sorted(acked_monitors - shown)
        counted = sum(
            s.value
            for f in families
            for s in f.samples
            if s.name == "generatorlabs_webhook_events_total"
            and s.labels.get("event") == "expiring.plan.alert"
        )
        if missing:
            record.fail(
                "unapplied_acknowledged_webhooks",
                f"real SIGKILL {when}: {len(missing)} acknowledged HetrixTools monitors missing "
                f"({missing[:3]})",
                n=len(missing),
            )
        if counted < acked_events:
            record.fail(
                "unapplied_acknowledged_webhooks",
                f"real SIGKILL {when}: {acked_events - counted:.0f} acknowledged events not counted",
                n=int(acked_events - counted),
            )

    async def burst(base: str, proc: subprocess.Popen[bytes], total: int, kill_after: int) -> None:
        nonlocal acked_events
        acks = 0
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(total):
            queue.put_nowait(i)

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal acks, acked_events
            while not queue.empty():
                i = queue.get_nowait()
                n = next(serial)
                hostile = rng.random() < 0.2
                try:
                    if i % 2:
                        name = f"kill-{n}.example"
                        items: list[Any] = [
                            {
                                "monitor": name,
                                "label": "kill",
                                "blacklisted_now": "1",
                                "blacklisted_on": [{"rbl": "zen.example", "delist": "x"}],
                            }
                        ]
                        if hostile:
                            items.append(
                                {
                                    "monitor": f"bad-{n}",
                                    "blacklisted_now": rng.choice(("inf", "-5", "NaN", "9" * 400)),
                                }
                            )
                        r = await session.post(
                            f"{base}/webhooks/hetrixtools/{hx}",
                            data=json.dumps(items),
                            headers={"Content-Type": "application/json"},
                        )
                    else:
                        event: dict[str, Any] = {
                            "event_sid": f"TA{n:032x}",
                            "event_type": "expiring.plan.alert",
                            "event_date": "2026-01-01T00:00:00Z",
                            "plan": {},
                        }
                        if hostile:
                            event = {
                                **event,
                                "event_type": "billing.balance.alert",
                                "balance": rng.choice(("NaN", "Infinity", "1e400", [], "9" * 400)),
                            }
                        body = json.dumps(event).encode()
                        r = await session.post(
                            f"{base}/webhooks/generatorlabs",
                            data=body,
                            headers={
                                "Content-Type": "application/json",
                                "X-Webhook-Signature": sign(body, secret, int(time.time())),
                            },
                        )
                    out["statuses"][str(r.status)] += 1
                    if r.status >= 500:
                        record.fail("crashes", f"real exporter answered {r.status} to a webhook")
                    if r.status in (200, 204):
                        if i % 2:
                            acked_monitors.add(name)
                        elif not hostile and r.status == 204:
                            acked_events += 1
                        acks += 1
                        if acks == kill_after:
                            os.kill(proc.pid, signal.SIGKILL)
                except (TimeoutError, aiohttp.ClientError):
                    pass  # in flight when the process died: never acknowledged

        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.wait_for(asyncio.gather(*(worker(session) for _ in range(8))), WALL_KILL_CYCLE)

    began = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    try:
        for k in range(n):
            proc, base = start()
            check(base, f"after restart {k}")
            asyncio.run(burst(base, proc, total=300, kill_after=rng.randint(20, 200)))
            if proc.poll() is None:
                proc.kill()
            code = proc.wait(WALL_KILL_CYCLE)
            out["kills"] += 1 if code == -signal.SIGKILL else 0
        proc, base = start()
        check(base, "at the end")
        status, body = _get(base + "/metrics")
        promtool = shutil.which("promtool")
        if promtool and status == 200:
            result = subprocess.run(
                [promtool, "check", "metrics"], input=body, capture_output=True, check=False, timeout=WALL_OP
            )
            if result.returncode not in (0, 3):
                record.fail("invalid_expositions", f"real exporter: promtool: {result.stdout[:300]!r}")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(WALL_KILL_CYCLE)
        if code != 0:
            record.fail(
                "crashes",
                f"the real exporter exited with {code} on SIGTERM",
                tb=log_path.read_text(errors="replace")[-3000:],
            )
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    for s in (secret, hx):
        if s in log:
            record.fail(
                "secrets_in_logs",
                "the real exporter's log holds a webhook secret or token",
                input=log[max(0, log.index(s) - 200) : log.index(s) + 50].replace(s, "<SECRET>"),
            )
    for line in log.splitlines():
        if '"task.crashed"' in line or '"poll.internal_error"' in line or "Traceback" in line:
            record.fail("crashes", f"real exporter log: {line[:300]}")
    out["acked"] = len(acked_monitors) + acked_events
    out["statuses"] = dict(out["statuses"])
    out["wall_seconds"] = round(time.monotonic() - began, 1)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---- entry points ----------------------------------------------------------------------------------


def run_soak(options: Options) -> dict[str, Any]:
    """The in-process soak (and the real SIGKILLs when options.kills > 0); the results."""
    with asyncio.Runner(loop_factory=SoakLoop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, SoakLoop)
        soak = Soak(options, loop)
        results = runner.run(soak.run())
    if options.kills > 0:
        try:
            results["real_sigkills"] = sigkills(options.kills, options.seed, soak.record)
        except Overrun as err:
            soak.record.fail("overruns", str(err))
        results["invariants"] = {k: soak.record.invariants.get(k, 0) for k in results["invariants"]}
        results["also_checked"] = {k: soak.record.invariants.get(k, 0) for k in results["also_checked"]}
        results["findings"] = [vars(f) for f in soak.record.findings]
    shutil.rmtree(soak.tmp, ignore_errors=True)
    return results


def summary(results: Mapping[str, Any]) -> str:
    lines = ["invariants (each must be 0):"]
    lines += [f"  {k:40s} {v}" for k, v in results["invariants"].items()]
    lines += [f"  {k:40s} {v}" for k, v in results["also_checked"].items()]
    r = results["requests"]
    lines.append(
        f"requests: {r['received_by_api']} received by the API ({r['accepted']} accepted, "
        f"{r['answered_429']} answered 429); max in a rolling hour "
        f"{results['counts'].get('max_requests_in_a_rolling_hour')} of {results['options']['budget']}"
    )
    lines.append(f"faults injected: {results['faults_injected']}")
    w = results["webhooks"]
    lines.append(
        f"webhooks: {w['sent']} sent, {w['accepted']} accepted, {w['duplicates']} duplicates, "
        f"{w['rejected']} rejected"
    )
    lines.append(f"crashes simulated: {results['crashes_simulated']}")
    if "real_sigkills" in results:
        k = results["real_sigkills"]
        lines.append(f"real SIGKILLs: {k['kills']} ({k['starts']} starts, ready in {k['ready_seconds']} s)")
    lines.append(f"renders checked: {results['renders_checked']}")
    lines.append(f"wall: {results['wall_seconds']} s {results['phase_wall_seconds']}")
    for f in results["findings"]:
        lines.append(f"FINDING [{f['invariant']}] +{f['at']}s {f['what'][:300]}")
        if f["file"]:
            lines.append(f"    file: {f['file']}")
        if f["input"]:
            lines.append(f"    input: {f['input'][:400]}")
        if f["traceback"]:
            lines.append("    " + "\n    ".join(f["traceback"].strip().splitlines()[-6:]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
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
    results = run_soak(options)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(results, indent=2, default=str))
    print(summary(results))
    print(f"results: {RESULTS / 'soak.json'}")
    if results["also_checked"].get("overruns"):
        return 2
    failed = any(results["invariants"].values()) or any(results["also_checked"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
