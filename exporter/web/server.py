"""The HTTP listener (I/O): it serves an aiohttp app (exporter.web.routes, the webhook receivers)
with deliberate limits.

Slow and hostile clients must not starve /metrics, nor the process of file descriptors. The
limits, all in `Limits` (defaults below), and who enforces each:

- KEEPALIVE_TIMEOUT (aiohttp): an idle keep-alive connection is closed after it. aiohttp >= 3.14
  also starts this timer when a connection opens and after each response, and closes the
  connection if no complete request head has arrived when it fires.
- HEAD_TIMEOUT (here, any aiohttp version): a new connection must deliver its first complete
  request head within it, however it trickles in (slowloris); later heads on a keep-alive
  connection are bounded by KEEPALIVE_TIMEOUT.
- MAX_LINE_SIZE, MAX_FIELD_SIZE, MAX_HEADERS (aiohttp's parser): a longer request line, a longer
  header line or more header lines get 400 and the connection is closed, at once.
- WRITE_TIMEOUT (here): a client that stops reading while its response does not fit in the
  socket buffers (the transport stays paused that long) is disconnected. Responses are written
  in WRITE_CHUNK pieces of the cached body, so such a client holds at most about two chunks of
  memory, never a copy of the body.
- max_connections (here; MAX_CONNECTIONS, lowered to fit the process's open-file limit, see
  `connection_cap`): at the cap, a new connection first evicts the connection that has been
  quiet longest among those waiting for a request (a new connection that has not sent its head,
  or an idle keep-alive one); if every connection is busy with a request, the new one is
  answered 503 and closed at once. Either way the process never holds more. (Whether a keep-
  alive connection is between requests is read from aiohttp's handler; if that ever cannot be
  read, such connections count as busy and are not evicted.)
- TLS_HANDSHAKE_TIMEOUT (asyncio): a TLS handshake that does not finish in time is dropped.
- LINGERING_TIME (aiohttp): after answering a request whose body was not read (a 413, a 408 from
  a webhook body that arrives too slowly, see exporter.webhooks.receivers.BODY_TIMEOUT), the rest of the
  body is read and dropped for at most this long before the connection closes.
- handler_cancellation stays off: a handler (a webhook being stored) finishes even if its client
  goes away, so that what was acknowledged or not stays clear.

`serve(app, host, port, ...)` starts a listener with these limits.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = structlog.get_logger("exporter.web.server")
KEEPALIVE_TIMEOUT = 30.0
"""Seconds an idle keep-alive connection is kept. Prometheus reuses a connection from one scrape
to the next at intervals up to 30 s; a longer interval costs it a new connection, nothing more."""
HEAD_TIMEOUT = 10.0
"""Seconds a new connection has to deliver a complete request head (slowloris)."""
WRITE_TIMEOUT = 30.0
"""Seconds a response may wait for a client that does not read before the client is dropped.
A scrape that takes longer has timed out at Prometheus's end anyway (scrape_timeout <= interval)."""
TLS_HANDSHAKE_TIMEOUT = 10.0
LINGERING_TIME = 2.0
"""Seconds a connection keeps reading (and dropping) a request body it answered before reading
(a 413, a 408): long enough for the client to see the answer rather than a reset, short enough
that a slow sender is gone soon (aiohttp's default is 10 s)."""
MAX_LINE_SIZE = 4096
"""Bytes in the request line: our paths are short; a longer line is an attack or a mistake."""
MAX_FIELD_SIZE = 8190
"""Bytes in one header line (aiohttp's default; room for large Authorization or Cookie values)."""
MAX_HEADERS = 32
"""Header lines per request: Prometheus sends about 6, a browser about 15, a proxy adds a few."""
MAX_CONNECTIONS = 512
"""Open connections per ConnectionGuard at most (before lowering to the open-file limit); the
listeners that share a guard share its cap."""
RESERVED_FILES = 128
"""Open files left to everything else (the API client's pool, the state file, logs, the other
listener) when the connection cap is fitted to the open-file limit."""
MIN_CONNECTIONS = 16
EVICT_AFTER = 1.0
"""Seconds a connection must have been quiet before a new connection at the cap may evict it."""
WRITE_CHUNK = 64 * 1024
"""Bytes per write of a response body: one chunk is buffered at a time per slow client."""
LIMIT_LOG_EVERY = 60.0  # seconds between log lines about the connection cap
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\n\r\ntoo many connections\n"
)


class _QuietClientErrors(logging.Filter):
    """aiohttp logs a traceback for every malformed request it answers 400 and for every client
    that goes away mid-answer (a hostile client could fill the log with them); those are
    dropped, errors of our own handlers are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, HttpProcessingError | ConnectionError)


http_log = logging.getLogger("exporter.http")  # aiohttp's server messages for our listeners
http_log.addFilter(_QuietClientErrors())


def connection_cap(ceiling: int = MAX_CONNECTIONS) -> int:
    """MAX_CONNECTIONS, or fewer so that the connections fit in the process's open-file limit
    (RLIMIT_NOFILE) with RESERVED_FILES to spare (but at least MIN_CONNECTIONS)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return ceiling
    return max(MIN_CONNECTIONS, min(ceiling, soft - RESERVED_FILES))


@dataclass(frozen=True, slots=True)
class Limits:
    """What a listener allows; see the module docstring."""

    keepalive_timeout: float = KEEPALIVE_TIMEOUT
    head_timeout: float = HEAD_TIMEOUT
    write_timeout: float = WRITE_TIMEOUT
    tls_handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT
    lingering_time: float = LINGERING_TIME
    max_line_size: int = MAX_LINE_SIZE
    max_field_size: int = MAX_FIELD_SIZE
    max_headers: int = MAX_HEADERS
    max_connections: int = field(default_factory=connection_cap)
    evict_after: float = EVICT_AFTER

    def handler_options(self) -> dict[str, Any]:
        """aiohttp's own knobs (web.AppRunner keyword arguments)."""
        return {
            "keepalive_timeout": self.keepalive_timeout,
            "lingering_time": self.lingering_time,
            "max_line_size": self.max_line_size,
            "max_field_size": self.max_field_size,
            "max_headers": self.max_headers,
            "handler_cancellation": False,
            "logger": http_log,
        }


class _Connection(asyncio.Protocol):
    """One accepted connection: everything goes to aiohttp's handler for it (`inner`); this adds
    the head deadline, the write deadline and the bookkeeping for the connection cap."""

    def __init__(self, guard: ConnectionGuard, make_handler: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._make_handler = make_handler
        self.inner: asyncio.Protocol | None = None  # None: refused, never handed to aiohttp
        self.transport: asyncio.Transport | None = None
        self.head_seen = False
        self.last_activity = 0.0
        self._tail = b""
        self._head_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # a stream server's transport
        self.transport = transport
        loop = asyncio.get_running_loop()
        self.last_activity = loop.time()
        if not self._guard.admit(self):
            transport.write(_REFUSED)
            transport.close()
            return
        self._head_timer = loop.call_later(self._guard.limits.head_timeout, self._expired, "head")
        self.inner = self._make_handler()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if not self.head_seen:  # a request head ends with an empty line
            seen = self._tail + data
            if b"\n\r\n" in seen or b"\n\n" in seen:
                self.head_seen = True
                self._cancel_head_timer()
            else:
                self._tail = seen[-2:]
        self._guard.touch(self)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._write_timer is None:
            self._write_timer = asyncio.get_running_loop().call_later(
                self._guard.limits.write_timeout, self._expired, "write"
            )
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self._guard.touch(self)
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self._guard.release(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expired(self, deadline: str) -> None:
        if deadline == "head":
            self._head_timer = None
            self._guard.head_timeouts += 1
        else:
            self._write_timer = None
            self._guard.write_timeouts += 1
        self.abort()

    def abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    @property
    def stalled(self) -> bool:
        """Writing is paused: the client does not read what was sent (the write deadline runs)."""
        return self._write_paused

    @property
    def buffered(self) -> int:
        """Bytes of response waiting in this connection's transport."""
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def waiting(self, now: float, quiet_for: float) -> bool:
        """True if the connection is waiting for a request (not sending, not being answered)
        and has been quiet for `quiet_for` seconds: it may be evicted at the cap."""
        if now - self.last_activity < quiet_for or self.transport is None:
            return False
        if not self.head_seen:
            return True
        busy = getattr(self.inner, "_request_in_progress", True)  # aiohttp's flag; unknown: busy
        return not busy and not self._write_paused and self.transport.get_write_buffer_size() == 0


class ConnectionGuard:
    """Counts a listener's connections (one guard may serve several listeners: they then share
    the cap) and enforces the cap: see the module docstring."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits if limits is not None else Limits()
        self._open: OrderedDict[_Connection, None] = OrderedDict()  # least recently active first
        self.peak = 0
        self.evicted = 0
        self.refused = 0
        self.head_timeouts = 0
        self.write_timeouts = 0
        self._logged_at: float | None = None

    @property
    def open(self) -> int:
        return len(self._open)

    def connections(self) -> list[_Connection]:
        return list(self._open)

    def admit(self, conn: _Connection) -> bool:
        if len(self._open) >= self.limits.max_connections:
            now = asyncio.get_running_loop().time()
            victim = next((c for c in self._open if c.waiting(now, self.limits.evict_after)), None)
            if victim is None:
                self.refused += 1
                self._log(now)
                return False
            del self._open[victim]
            victim.abort()
            self.evicted += 1
            self._log(now)
        self._open[conn] = None
        self.peak = max(self.peak, len(self._open))
        return True

    def touch(self, conn: _Connection) -> None:
        if conn in self._open:
            conn.last_activity = asyncio.get_running_loop().time()
            self._open.move_to_end(conn)

    def release(self, conn: _Connection) -> None:
        self._open.pop(conn, None)

    def _log(self, now: float) -> None:
        if self._logged_at is None or now - self._logged_at >= LIMIT_LOG_EVERY:
            self._logged_at = now
            log.warning(
                "server.connection_limit",
                cap=self.limits.max_connections,
                evicted=self.evicted,
                refused=self.refused,
            )


class _GuardedSite(web.BaseSite):
    """A TCP site whose connections go through a ConnectionGuard."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        guard: ConnectionGuard,
        ssl_context: Any = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host or '0.0.0.0'}:{self._port}"  # noqa: S104 - a display name

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        await super().start()
        handlers = self._runner.server
        if handlers is None:
            raise RuntimeError("call runner.setup() before starting a site")
        guard = self._guard
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(guard, handlers),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=guard.limits.tls_handshake_timeout if self._ssl_context else None,
        )
        if self._server.sockets:
            self._port = self._server.sockets[0].getsockname()[1]


@dataclass(slots=True)
class Listener:
    """A running listener: its bound port, its guard, and how to stop it."""

    runner: web.AppRunner
    port: int
    guard: ConnectionGuard

    async def cleanup(self) -> None:
        await self.runner.cleanup()


async def serve(
    app: web.Application,
    host: str | None,
    port: int,
    *,
    ssl_context: Any = None,
    guard: ConnectionGuard | None = None,
    also: Sequence[tuple[str | None, int]] = (),
) -> Listener:
    """Serve `app` on host:port (port 0: any free port), and on each (host, port) of `also`, with
    the guard's limits (default: Limits()); one runner, so the app starts once. Raises OSError if
    an address cannot be bound (nothing is left running then). The Listener's port is host:port's."""
    guard = guard if guard is not None else ConnectionGuard()
    runner = web.AppRunner(app, access_log=None, handle_signals=False, **guard.limits.handler_options())
    await runner.setup()
    sites = [_GuardedSite(runner, h, p, guard, ssl_context) for h, p in ((host, port), *also)]
    try:
        for site in sites:
            await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return Listener(runner, sites[0].port, guard)
