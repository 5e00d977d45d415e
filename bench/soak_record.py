"""What the soak records: findings (an invariant broken, with what was going on), counters, and
the log sink that renders every structlog event and logging record of the process as in
production and searches it for secrets and crashes as it arrives.

No I/O: LogSink installs itself in structlog's configuration and on the root logger, in memory."""

from __future__ import annotations

import logging
import re
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError

from bench.soak_loop import VirtualClock

MAX_FINDINGS = 200  # distinct findings kept (every failure is counted in `invariants`)


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


def format_traceback(err: BaseException) -> str:
    return "".join(traceback.format_exception(err))


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
        at = self.clock.elapsed() if self.clock else 0.0
        finding = Finding(invariant, what, input[:1500], tb[-4000:], responsible_file(tb), round(at))
        if finding.key() not in self._seen and len(self.findings) < MAX_FINDINGS:
            self._seen.add(finding.key())
            self.findings.append(finding)


def _fields(event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event_dict.items() if k not in ("exc_info", "event", "ts")}


def _event_traceback(event_dict: MutableMapping[str, Any]) -> str:
    exc = event_dict.get("exc_info")
    if isinstance(exc, BaseException):
        return format_traceback(exc)
    if exc is True or isinstance(exc, tuple):
        return traceback.format_exc()
    return ""


class _RootHandler(logging.Handler):
    """Hands every logging record of the process to the sink."""

    def __init__(self, sink: LogSink) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.emit(record)


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

    def processor(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        """The last structlog processor: count, render, scan and judge the event."""
        event = str(event_dict.get("event", ""))
        level = str(event_dict.get("level", method))
        self.events[event] += 1
        self.levels[level] += 1
        self._scan(repr(event_dict), event)
        rendered = self._renderer(
            logger, method, dict(structlog.processors.format_exc_info(logger, method, dict(event_dict)))
        )
        self._scan(rendered, event)
        self._judge(event, level, event_dict)
        return rendered

    def _judge(self, event: str, level: str, event_dict: MutableMapping[str, Any]) -> None:
        answer = self.record.last_answer
        if event in ("poll.failed", "refresh.failed") and answer and answer[1] == 200 and answer[2]:
            self.record.fail(
                "clean_answers_rejected",
                f"{event} after a clean answer: {_fields(event_dict)}"[:400],
                input=f"{answer[0]} answered 200 with no fault injected (a body sent in pieces "
                "counts as clean)",
            )
        tb = _event_traceback(event_dict)
        if self.CRASH_EVENTS.search(event):
            what = f"{event} {_fields(event_dict)}"[:300]
            self.record.fail("crashes", what, input=self.context(), tb=tb)
        elif level in ("error", "critical") and tb:
            what = f"{event} (logged at {level} with a traceback)"
            self.record.fail("crashes", what, input=self.context(), tb=tb)

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        tb = format_traceback(exc) if exc is not None else ""
        self.events[f"logging:{record.name}"] += 1
        self._scan(f"{record.name} {record.levelname} {text}\n{tb}", record.name)
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
        self._handler = _RootHandler(self)
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
