"""What every benchmark shares to wait and to run processes safely: the one failure a benchmark
raises (Failed, naming what was awaited), bounded waits (synchronous and async), child processes
started in their own process group and always stopped (SIGTERM, a bounded wait, SIGKILL of the
whole group), readiness probes and an aiohttp client whose every request has a total timeout.

I/O: subprocesses and HTTP over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import aiohttp

from tests.helpers.processes import ROOT, free_port

__all__ = [
    "LOOPBACK",
    "ROOT",
    "Failed",
    "answers",
    "client",
    "exited",
    "free_port",
    "running",
    "stop",
    "timed_out",
    "wait_ready",
    "wait_until",
    "within",
]

LOOPBACK = "127.0.0.1"
REQUEST_TIMEOUT = 60.0  # seconds for one HTTP request over loopback, a 57 MB /metrics included
READY_DEADLINE = 60.0  # a started process answers HTTP below 500
STOP_GRACE = 20.0  # seconds a process has to exit after SIGTERM, then again after SIGKILL
PROBE_TIMEOUT = 2.0  # one readiness probe
PROBE_POLL = 0.1


class Failed(Exception):
    """The benchmark could not measure: a deadline passed, a process died or an answer was wrong."""


def timed_out(seconds: float, what: str) -> Failed:
    return Failed(f"timed out after {seconds:g} s waiting for {what}")


@contextlib.asynccontextmanager
async def within(seconds: float, what: str) -> AsyncIterator[None]:
    """Fail with a message naming `what` unless the block ends within `seconds`; this also names
    a request that timed out inside the block (aiohttp raises TimeoutError too)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as err:
        raise timed_out(seconds, what) from err


def wait_until(
    check: Callable[[], bool],
    seconds: float,
    what: str,
    *,
    poll: float = PROBE_POLL,
    alive: Callable[[], None],
) -> float:
    """Call `check` every `poll` seconds until it is true: the seconds that took. `alive` raises
    when a process the wait depends on has died; past `seconds` this fails naming `what`."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        alive()
        if check():
            return time.monotonic() - began
        time.sleep(poll)
    raise timed_out(seconds, what)


def client(
    connector: aiohttp.BaseConnector | None = None, *, decompress: bool = True
) -> aiohttp.ClientSession:
    """A session whose every request has REQUEST_TIMEOUT in all."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=decompress)


def stop(proc: subprocess.Popen[bytes], what: str) -> None:
    """SIGTERM to `proc`, then SIGKILL to its whole process group if it has not exited within
    STOP_GRACE; a process that survives even that is reported, never waited for forever."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        print(f"bench: {what} ignored SIGTERM for {STOP_GRACE:g} s; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            print(f"bench: {what} (pid {proc.pid}) survived SIGKILL for {STOP_GRACE:g} s", file=sys.stderr)
    with contextlib.suppress(ProcessLookupError):  # whatever it started and left behind
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running(
    argv: list[str],
    what: str,
    *,
    env: Mapping[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
    stderr: int | None = None,
    log: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A process started from the repository root in a process group of its own (its stderr to
    `log` when given), stopped when the block ends, however it ends."""
    with contextlib.ExitStack() as stack:
        if log is not None:
            stderr = stack.enter_context(log.open("ab")).fileno()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
        try:
            yield proc
        finally:
            stop(proc, what)


def answers(url: str) -> bool:
    """Whether `url` answers with a status below 500."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as r:  # noqa: S310 - loopback
            return bool(r.status < 500)
    except urllib.error.HTTPError as err:
        return err.code < 500
    except OSError:
        return False


def exited(proc: subprocess.Popen[bytes], what: str, log: Path | None = None) -> Callable[[], None]:
    """A check for wait_until: fails naming `what` (and the end of its log) once `proc` has exited."""

    def check() -> None:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:] if log is not None and log.exists() else ""
            raise Failed(f"{what} exited with code {proc.returncode}" + (f":\n{tail}" if tail else ""))

    return check


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, log: Path | None = None) -> None:
    """Wait until `url` answers below 500; fail if `proc` exits first or READY_DEADLINE passes."""
    wait_until(lambda: answers(url), READY_DEADLINE, f"{what} to answer {url}", alive=exited(proc, what, log))
