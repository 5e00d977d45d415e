"""One exporter of the soak, in-process: what one incarnation holds, its API transport watched by
the harness, and the kernel's part of a SIGKILL (descriptors) and raw requests to its listener.

I/O: HTTP over loopback (TrackedTransport, raw_request) and /proc/self/fd (the process's own
descriptors, read and closed the way the kernel closes them at a SIGKILL)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.soak_loop import WALL_OP, SoakLoop
from bench.soak_record import Record, format_traceback
from exporter.api.envelope import RawResponse
from exporter.api.transport import HttpTransport
from exporter.app import DbJournal, Exporter
from exporter.errors import ApiError
from exporter.state.sqlite import StateDB

Answer = tuple[int, bytes, Mapping[str, str]]  # status (-1: no answer), body, headers
RAW_ANSWER_LIMIT = 4 * 1024 * 1024  # bytes read of a raw answer


@dataclass
class Incarnation:
    """Everything one exporter of the soak holds, from its start to its stop or crash."""

    exporter: Exporter
    db: StateDB
    journal: DbJournal
    session: aiohttp.ClientSession  # the exporter's API session
    runner: web.AppRunner
    site: web.TCPSite
    base: str  # its listener's URL
    http: aiohttp.ClientSession  # the harness's client of the listener
    tasks_before: set[asyncio.Task[Any]]  # tasks that are not this exporter's


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
                tb=format_traceback(err),
            )
            raise
        finally:
            self.loop.inflight -= 1


def release_lock_file(state_path: str) -> None:
    """The kernel's part of a SIGKILL for the state file: the lock file's descriptor closed.
    Only one exporter is alive at a time, so descriptors into the state directory are the crashed
    one's. SQLite's own descriptors are left open: closing them under SQLite would corrupt it."""
    state_dir = str(Path(state_path).parent)
    sqlite_files = {state_path + s for s in ("", "-wal", "-shm", "-journal")}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(state_dir + "/") and target not in sqlite_files:
            with contextlib.suppress(OSError):
                os.close(int(fd))


def listening_port(runner: web.AppRunner) -> int:
    """The port the runner's one site listens on."""
    return int(runner.addresses[0][1])


async def raw_request(port: int, method: str, path: str, data: bytes, headers: Mapping[str, str]) -> Answer:
    """The request as raw bytes on a socket: header values no HTTP client would send. Bounded
    by WALL_OP from connecting to the last byte of the answer."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    head += f"Content-Length: {len(data)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    try:
        answer = await asyncio.wait_for(
            _exchange(port, head.encode("utf-8", "surrogateescape") + b"\r\n" + data), WALL_OP
        )
    except (OSError, TimeoutError) as err:
        return -1, f"{type(err).__name__}: {err}".encode()[:300], {}
    status_line, _, rest = answer.partition(b"\r\n")
    parts = status_line.split(b" ")
    if len(parts) < 2 or not parts[1].isdigit():
        return -1, answer[:300], {}
    return int(parts[1]), rest.partition(b"\r\n\r\n")[2], {}


async def _exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await reader.read(RAW_ANSWER_LIMIT)
    finally:
        writer.close()
