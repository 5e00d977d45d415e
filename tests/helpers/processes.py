"""Real processes under test: free loopback ports, bounded waits and plain HTTP GETs over loopback.

Every wait has a deadline (DEADLINE); none is a fixed sleep of the test's own choosing."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

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


def exporter_env(**extra: str) -> dict[str, str]:
    """This process's environment without any GENERATORLABS_* or HETRIXTOOLS_* variable (no real
    credential or token of the developer's leaks into a test), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENERATORLABS_", "HETRIX"))}
    env.update(extra)
    return env


@dataclass
class Exporter:
    """A real `python -m exporter` process under test: its listen port and its log file."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_exporter(
    home: Path,
    *args: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    ready: bool = True,
    entry: Sequence[str] = ("-m", "exporter"),
) -> Exporter:
    """Start `python -m exporter --web.listen-address 127.0.0.1:<port> <args>` (or `python <entry>
    ...`) with its stderr
    appended to home/exporter.log; with `ready`, wait (bounded) until /-/ready answers 200."""
    port = port if port is not None else free_port()
    log_path = home / "exporter.log"
    argv = [sys.executable, *entry, "--web.listen-address", f"127.0.0.1:{port}", *args]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT, env=exporter_env() if env is None else env
        )
    exporter = Exporter(process, port, log_path)
    if ready:
        wait_for(
            lambda: process.poll() is not None or get(exporter.base + "/-/ready")[0] == 200,
            "the exporter to be ready",
        )
        if process.poll() is not None:
            pytest.fail(f"the exporter exited with {process.returncode}:\n{exporter.log()[-2000:]}")
    return exporter


def refused(exporter: Exporter) -> tuple[int, str]:
    """For a start expected to fail: wait (bounded) for the process to exit, stop it if it has
    not, and return its exit code and its log."""
    try:
        wait_for(lambda: exporter.process.poll() is not None, "the exporter to refuse to start")
    finally:
        code = terminate(exporter, clean=False)  # only stops it if it is still running
    return code, exporter.log()


def terminate(exporter: Exporter | subprocess.Popen[bytes], *, clean: bool = True) -> int:
    """SIGTERM a process under test (an exporter, Prometheus) and wait, bounded; with `clean`, its
    exit code must be 0. Returns the exit code."""
    process = exporter.process if isinstance(exporter, Exporter) else exporter
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=DEADLINE)
            pytest.fail("the exporter did not stop within the deadline after SIGTERM")
    if clean:
        assert process.returncode == 0, process.returncode
    return process.returncode


def need_binary(name: str) -> str:
    """The path of a Debian binary the real-stack tests use; CI must have it, a laptop may not."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed; .ci/run installs it with apt-get")
        pytest.skip(f"{name} not installed")
    return path


@dataclass
class Prometheus:
    """Debian's Prometheus, started for a test: its process and its HTTP API's base URL."""

    process: subprocess.Popen[bytes]
    base: str


def start_prometheus(
    home: Path, targets: list[str], *, job: str = "generatorlabs", interval: str = "1s"
) -> Prometheus:
    """Prometheus scraping `targets` (host:port) every `interval` (a Prometheus duration, which is
    also its scrape timeout), its data and log under `home`. Whatever the interval, the first
    scrape comes some 5 s after the start: Prometheus applies new targets at most every 5 s."""
    binary = need_binary("prometheus")
    port = free_port()
    scrape = {"job_name": job, "static_configs": [{"targets": targets}]}
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [scrape],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    argv = [
        binary,
        f"--config.file={home / 'prometheus.yml'}",
        f"--storage.tsdb.path={home / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with (home / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log)
    return Prometheus(process, f"http://127.0.0.1:{port}")
