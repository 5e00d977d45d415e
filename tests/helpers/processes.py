"""Real processes under test: free loopback ports, bounded waits and plain HTTP GETs over loopback.

Every wait has a deadline (DEADLINE); none is a fixed sleep of the test's own choosing."""

from __future__ import annotations

import contextlib
import random
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 30.0  # seconds: bounded waits for a real process, never a fixed sleep


_HANDED_OUT: set[int] = set()  # ports free_port() returned in this session


def free_port() -> int:
    """A free loopback port below Linux's ephemeral range (32768-60999), so that no socket the
    processes under test bind to port 0 (the demo's simulator, client connections) can take it
    between this check and the process binding it. Never the same port twice in a session: a
    test that asks for several ports before binding any (the real stack asks for five) gets
    distinct ones, and a process still letting go of an earlier test's port cannot collide."""
    rng = random.Random()  # noqa: S311 - picking a port, not a secret
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port in 20000-32000")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def wait_for(predicate: Callable[[], object], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        with contextlib.suppress(OSError):
            if predicate():
                return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def value(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + "{", name + " "))
    )
