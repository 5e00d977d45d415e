"""Lifetimes: whatever stops a start (a taken port, a locked state file, a bad web config),
everything started so far is released, in reverse order, without a traceback or an "Unclosed"
warning, and a second start on the same state file succeeds; a clean stop releases everything too.
The daemon without --demo never loads the simulator.

I/O: the app run in-process on loopback, real `python -m exporter` processes, files under tmp_path."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog

from exporter.app import run
from exporter.config.model import Config
from exporter.config.parse import parse
from exporter.errors import ConfigError, StateError
from exporter.state.sqlite import StateDB
from tests.helpers.processes import (
    DEADLINE,
    ROOT,
    exporter_env,
    free_port,
    refused,
    start_exporter,
)


@contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port another socket is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_taken_port_fails_in_one_line_and_leaves_nothing_behind(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with taken_port() as port:
        exporter = start_exporter(
            tmp_path, "--demo", port=port, env=exporter_env(TMPDIR=str(tmp)), ready=False
        )
        code, stderr = refused(exporter)
    assert code == 1, stderr
    assert "Unclosed" not in stderr and "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("generatorlabs-exporter: ") and "address already in use" in last.lower()
    assert list(tmp.iterdir()) == []  # the demo's own state directory is gone too


class Leaks:
    """What an unreleased object reports: loop exception-handler calls ("Unclosed client
    session") and ResourceWarnings, collected while the block runs and at a final gc."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.found.append(str(context.get("message")))


@contextmanager
def no_leaks() -> Iterator[Leaks]:
    leaks = Leaks()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(leaks.handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield leaks
            gc.collect()
        leaks.found += [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    finally:
        loop.set_exception_handler(None)
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == [], others  # no background task left running
    assert leaks.found == [], "\n".join(leaks.found)


async def stop_when_ready(port: int) -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # handled by the exporter: a clean stop


def config_for(tmp_path: Path, port: int, **state: str) -> Config:
    return parse({"web": {"listen_address": f"127.0.0.1:{port}"}, "state": state})


def can_lock(path: Path) -> bool:
    """Whether this process can take the state file's lock now (its holder released it)."""
    import fcntl

    with open(f"{path}.lock", "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True


async def test_a_failed_start_releases_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a demo puts its own state
    path = tmp_path / "state.sqlite"
    with taken_port() as port:
        config = config_for(tmp_path, port, path=str(path))
        with no_leaks(), structlog.testing.capture_logs(), pytest.raises(OSError, match="in use"):
            await run(config, lambda: config, demo=True)
        assert can_lock(path)  # the state file was closed and its lock released
        config = config_for(tmp_path, port)
        with no_leaks(), structlog.testing.capture_logs(), pytest.raises(OSError, match="in use"):
            await run(config, lambda: config, demo=True)
    left = sorted(p.name for p in os.scandir(tmp_path))  # the demo's own directory is gone
    assert left == ["state.sqlite", "state.sqlite.lock"]


async def test_a_locked_state_file_names_its_holder_and_releases_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    holder = StateDB(str(path))
    await holder.start(None, 0.0)
    try:
        config = config_for(tmp_path, free_port(), path=str(path))
        with no_leaks(), structlog.testing.capture_logs(), pytest.raises(StateError) as info:
            await run(config, lambda: config, demo=True)
        assert str(info.value) == (
            f"state file {path}: in use by process {os.getpid()} (it holds "
            f"{path}.lock); one exporter per state file"
        )
    finally:
        await holder.close()


async def test_a_clean_stop_releases_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    config = config_for(tmp_path, free_port(), path=str(path))
    with no_leaks(), structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(run(config, lambda: config, demo=True, ready=stop_when_ready), DEADLINE)
    assert [e["event"] for e in logs if e["event"].startswith("exporter.")] == [
        "exporter.started",
        "exporter.stopping",
    ]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # our handlers are gone
    assert can_lock(path)


async def test_after_a_failed_start_a_second_start_on_the_same_file_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with taken_port() as port:
        config = config_for(tmp_path, port, path=str(path))
        with no_leaks(), structlog.testing.capture_logs(), pytest.raises(OSError, match="in use"):
            await run(config, lambda: config, demo=True)
    config = config_for(tmp_path, free_port(), path=str(path))
    with no_leaks(), structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(run(config, lambda: config, demo=True, ready=stop_when_ready), DEADLINE)
    assert "exporter.started" in [e["event"] for e in logs]
    assert can_lock(path)


def refuses_connections(url: str) -> bool:
    """Whether nothing listens at the host and port of `url` any more."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=DEADLINE).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_a_bad_web_config_fails_the_start_and_stops_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a demo puts its own state
    web_config = tmp_path / "web.yml"
    web_config.write_text("basic_auth_users: [not, a, mapping]\n")
    config = config_for(tmp_path, free_port())
    with no_leaks(), structlog.testing.capture_logs() as logs, pytest.raises(ConfigError):
        await run(config, lambda: config, demo=True, web_config_file=str(web_config))
    [simulator] = [e["api"] for e in logs if e["event"] == "demo.started"]
    assert refuses_connections(simulator)  # the simulator's listener is closed
    assert [p.name for p in os.scandir(tmp_path)] == ["web.yml"]  # the demo's state directory is gone


def test_the_daemon_without_demo_never_imports_the_simulator(tmp_path: Path) -> None:
    """Loading the app and checking a config (what a production start does before it runs)."""
    program = (
        "import sys\n"
        "import exporter.app, exporter.cli\n"
        "code = exporter.cli.main(['--config.check'])\n"
        "print(code, sorted(m for m in sys.modules if m.startswith('exporter.demo')))\n"
    )
    env = exporter_env(GENERATORLABS_ACCOUNT_SID="AC" + "1" * 32, GENERATORLABS_AUTH_TOKEN="f" * 64)
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        cwd=ROOT,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0 []"
