"""Benchmark: the resident memory of the exporter, and where its allocations are.

Real process: `python -m exporter` polling `python -m exporter.demo.simulator --hosts H --monitors M`
(quiet, limits raised) with a generous budget, so that the first full inventory loads in a few
minutes. A thread reads VmRSS and VmHWM from /proc/<pid>/status every --sample seconds. Two
phases are reported separately, each with the sampled RSS (median, max) and the kernel's peak:
- the first full inventory, until /metrics counts every host and every monitor (scraped, gzip,
  every INVENTORY_POLL seconds, as a Prometheus would); its peak is VmHWM at that moment;
- then --scrape-seconds of scrapes (gzip once a second, uncompressed every fifth), after the peak
  is reset (writing 5 to /proc/<pid>/clear_refs); its peak is VmHWM at the end.

In process (--top > 0): the same account's state built through the public API (snapshots parsed
from the simulated account, written to an exporter on an in-memory state file, rendered, one
gzip exposition served) with tracemalloc on: traced memory and the top allocation sites by line
and by file, after the simulated account's own data is freed.

Every wait has a deadline: the processes starting, the inventory (--inventory-deadline), each
scrape; one that passes fails the run (exit status 1) with a message naming what was awaited.
The processes are stopped (SIGTERM, then SIGKILL) however the run ends.

I/O: subprocesses, /proc, HTTP over loopback, a temporary directory and <out>/memory.json.

    python -m bench.memory [--hosts 100000] [--monitors 5000] [--scrape-seconds 60] [--top 5]
                           [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import linecache
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.harness import LOOPBACK, ROOT, Failed, client, exited, free_port, running, wait_ready, within
from bench.render_scrape import FrozenClock, loaded_exporter, snapshots
from bench.stats import spread
from tests.helpers.processes import exporter_env

RESULTS = Path(__file__).parent / "results"
SID, TOKEN = "AC" + "3" * 32, "e" * 64
KB_PER_MB = 1024.0
BYTES_PER_MB = 1024.0 * 1024.0
INVENTORY_DEADLINE = 900.0  # seconds the first full inventory may take
INVENTORY_POLL = 5.0  # seconds between scrapes while the inventory loads
SCRAPE_EVERY = 1.0  # seconds between scrapes after it
IDENTITY_EVERY = 5  # every fifth scrape is uncompressed
PAGE_SIZE = 500  # the simulator's largest page
HOST_INFO = b"generatorlabs_rbl_host_info{"
MONITOR_INFO = b"generatorlabs_cert_monitor_info{"


def status_kb(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM of `pid`, in kB, from /proc/<pid>/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(rest.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def reset_peak(pid: int) -> bool:
    """Reset the kernel's peak RSS (VmHWM) of `pid` to its current RSS; whether that worked."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Sampler:
    """A thread that reads `pid`'s RSS every `every` seconds into the current phase's list."""

    pid: int
    every: float
    phases: dict[str, list[int]] = field(default_factory=dict)
    phase: str = "start"
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, KeyError):
                self.phases.setdefault(self.phase, []).append(status_kb(self.pid)[0])
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def summary(self, phase: str, peak_kb: int) -> dict[str, Any]:
        samples = self.phases.get(phase, [])
        rss = spread(samples, 1 / KB_PER_MB, 1) if samples else {}
        last = round(samples[-1] / KB_PER_MB, 1) if samples else None
        peak = round(peak_kb / KB_PER_MB, 1)
        return {"samples": len(samples), "rss_mb": rss, "rss_at_end_mb": last, "peak_vmhwm_mb": peak}


def exporter_config(tmp: Path, sim_port: int) -> Path:
    """A generous budget and the largest pages, so that the first inventory loads quickly."""
    config = {
        "api": {"base_url": f"http://{LOOPBACK}:{sim_port}/4.0", "page_size": PAGE_SIZE},
        "budget": {"requests_per_hour": 100000, "allow_over_limit": True, "requests_per_second": 50},
        "state": {"path": str(tmp / "memory.sqlite")},
        "log": {"level": "warning"},
    }
    path = tmp / "memory.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _get(session: aiohttp.ClientSession, url: str, gzip: bool) -> bytes:
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    async with session.get(url, headers=headers) as r:
        if r.status != 200:
            raise Failed(f"GET {url} answered {r.status}, not 200")
        return await r.read()


async def inventory(url: str, alive: Callable[[], None], hosts: int, monitors: int) -> float:
    """Seconds until /metrics shows every host and every monitor; fails if the exporter exits."""
    began = time.monotonic()
    what = f"the first full inventory ({hosts} hosts, {monitors} monitors) on {url}"
    async with client() as session, within(INVENTORY_DEADLINE, what):
        while True:
            alive()
            body = await _get(session, url, gzip=True)
            if body.count(HOST_INFO) >= hosts and body.count(MONITOR_INFO) >= monitors:
                return time.monotonic() - began
            await asyncio.sleep(INVENTORY_POLL)


async def scrapes(url: str, alive: Callable[[], None], seconds: float) -> dict[str, Any]:
    """Scrapes for `seconds`: gzip once a second, uncompressed every IDENTITY_EVERY-th."""
    times: dict[bool, list[float]] = {True: [], False: []}
    sizes: dict[bool, int] = {}
    end = time.monotonic() + seconds
    async with client(decompress=False) as session, within(seconds * 2 + 120, f"scrapes of {url}"):
        n = 0
        while time.monotonic() < end:
            alive()
            gzip = n % IDENTITY_EVERY != IDENTITY_EVERY - 1
            started = time.perf_counter()
            sizes[gzip] = len(await _get(session, url, gzip))
            times[gzip].append(time.perf_counter() - started)
            n += 1
            await asyncio.sleep(SCRAPE_EVERY)
    return {
        "scrapes_gzip": len(times[True]),
        "scrapes_identity": len(times[False]),
        "bytes_gzip": sizes.get(True),
        "bytes_identity": sizes.get(False),
    }


async def measure_process(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """RSS of a real exporter through its first full inventory, then through repeated scrapes."""
    sim_port, port = free_port(), free_port()
    sim = [sys.executable, "-m", "exporter.demo.simulator", "--port", str(sim_port), "--quiet"]
    sim += ["--hosts", str(args.hosts), "--monitors", str(args.monitors), "--account-sid", SID]
    sim += ["--auth-token", TOKEN, "--hourly-limit", "1000000", "--per-second-limit", "1000"]
    argv = [sys.executable, "-m", "exporter", "--config.file", str(exporter_config(tmp, sim_port))]
    argv += ["--web.listen-address", f"{LOOPBACK}:{port}"]
    env = exporter_env(GENERATORLABS_ACCOUNT_SID=SID, GENERATORLABS_AUTH_TOKEN=TOKEN)
    log, url = tmp / "exporter.log", f"http://{LOOPBACK}:{port}/metrics"
    with (
        running(sim, "the simulator"),
        running(argv, "the exporter", env=env, log=log) as proc,
        Sampler(proc.pid, args.sample) as sampler,
    ):
        alive = exited(proc, "the exporter", log)
        sampler.phase = "inventory"
        await asyncio.to_thread(wait_ready, f"http://{LOOPBACK}:{port}/-/ready", proc, "the exporter", log)
        loaded = await inventory(url, alive, args.hosts, args.monitors)
        inventory_peak = status_kb(proc.pid)[1]
        reset = reset_peak(proc.pid)
        sampler.phase = "scrapes"
        served = await scrapes(url, alive, args.scrape_seconds)
        scrape_peak = status_kb(proc.pid)[1]
    return {
        "hosts": args.hosts,
        "monitors": args.monitors,
        "sample_every_s": args.sample,
        "first_inventory": {"seconds": round(loaded, 1), **sampler.summary("inventory", inventory_peak)},
        "scrapes": {
            "seconds": args.scrape_seconds,
            "peak_was_reset": reset,
            **served,
            **sampler.summary("scrapes", scrape_peak),
        },
        "peak_overall_mb": round(max(inventory_peak, scrape_peak) / KB_PER_MB, 1),
    }


def _top(snapshot: tracemalloc.Snapshot, key: str, top: int) -> list[dict[str, Any]]:
    """The `top` allocation sites by `key` ("lineno" or "filename"): where (relative to the
    repository), MB, blocks, and for a line its source text."""
    out = []
    for stat in snapshot.statistics(key)[:top]:
        frame = stat.traceback[0]
        path = Path(frame.filename)
        where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else frame.filename
        site: dict[str, Any] = {
            "where": where,
            "mb": round(stat.size / BYTES_PER_MB, 1),
            "blocks": stat.count,
        }
        if key == "lineno":
            site["where"] = f"{where}:{frame.lineno}"
            site["code"] = linecache.getline(frame.filename, frame.lineno).strip()
        out.append(site)
    return out


async def measure_allocations(hosts: int, monitors: int, top: int) -> dict[str, Any]:
    """The account's state built through the public API with tracemalloc on: the top sites."""
    now = time.time()
    tracemalloc.start()
    try:
        snaps = snapshots(hosts, monitors, now)  # the simulated account's raw data is freed here
        async with contextlib.AsyncExitStack() as lifetime:
            exporter = await loaded_exporter(lifetime, snaps, FrozenClock(now))
            served = sum(len(p) for p in exporter.scraper.expose("", "gzip").parts)
            del snaps
            gc.collect()
            current, peak = tracemalloc.get_traced_memory()
            taken = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
            )
    finally:
        tracemalloc.stop()
    return {
        "hosts": hosts,
        "monitors": monitors,
        "gzip_exposition_bytes": served,
        "traced_mb": round(current / BYTES_PER_MB, 1),
        "traced_peak_mb": round(peak / BYTES_PER_MB, 1),
        "top_lines": _top(taken, "lineno", top),
        "top_files": _top(taken, "filename", top),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--hosts", type=int, default=100_000, help="RBL hosts of the simulated account")
    p.add_argument("--monitors", type=int, default=5_000, help="certificate monitors of the account")
    p.add_argument(
        "--scrape-seconds", type=float, default=60.0, help="seconds of scrapes after the inventory"
    )
    p.add_argument("--sample", type=float, default=0.5, help="seconds between RSS samples")
    p.add_argument("--top", type=int, default=5, help="allocation sites reported in process (0: none)")
    p.add_argument("--no-process", action="store_true", help="only the in-process allocation sites")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory of memory.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Exit status 0: measured and written; 1: a deadline passed or a process died."""
    args = parse_args(argv)
    result: dict[str, Any] = {}
    try:
        if not args.no_process:
            with tempfile.TemporaryDirectory(prefix="generatorlabs-bench-memory-") as tmp:
                result["process"] = asyncio.run(measure_process(args, Path(tmp)))
        if args.top > 0:
            result["allocations"] = asyncio.run(measure_allocations(args.hosts, args.monitors, args.top))
    except Failed as err:
        print(f"bench.memory: {err}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
