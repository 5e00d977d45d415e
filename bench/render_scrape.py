"""Benchmark: render after a change and serve a scrape, at 20,000 hosts and 5,000 monitors.

Compares our render with prometheus_client.generate_latest over ordinary labelled Gauges holding
the same series, then times scrapes of a real aiohttp server over loopback.

Every wait has a deadline: a server that does not start or stop, a scrape that gets no answer,
or a state that is not written in time fails the run (exit status 2) with a message naming what
was awaited.

I/O: a loopback HTTP server and its client, and the results file bench/results/render_scrape.json.

    python -m bench.render_scrape [--hosts 20000] [--monitors 5000] [--scrapes 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.api.records import parse_cert_error, parse_host, parse_monitor
from exporter.app import Exporter, open_exporter
from exporter.config.parse import parse
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import SimulatedApi
from exporter.demo.simulator.transport import SimulatorTransport
from exporter.metrics.render import Freshness, GzipPrefix, join, render
from exporter.state.snapshot import Snapshot
from exporter.web.routes import ServerParts, build_app

T = TypeVar("T")

SID, TOKEN = "AC" + "1" * 32, "f" * 64
RESULTS = Path(__file__).parent / "results"
SCRAPE_DEADLINE = 60.0  # wall-clock seconds for one scrape over loopback
SETUP_DEADLINE = 120.0  # the state written, a server started or stopped, the exporter closed
POLL_INTERVAL = 60.0  # seconds: the poll interval and age the snapshots are rendered with
FRESHNESS_LIMIT = 3600.0  # seconds a snapshot stays fresh


class Overrun(Exception):
    """A wait of the benchmark passed its deadline."""


class FrozenClock:
    """The exporter's clock: wall time stands still, monotonic time runs, sleeps only yield."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


async def within(awaitable: Awaitable[T], seconds: float, what: str) -> T:
    """`awaitable`'s result, or Overrun naming `what` after `seconds`."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError as err:
        raise Overrun(f"{what}: no end within {seconds:g} s") from err


def snapshots(hosts: int, monitors: int, now: float) -> dict[str, Snapshot]:
    account = Account(hosts, monitors, now, seed=5, listed_fraction=0.05)
    ignore = lambda *_: None  # noqa: E731
    parsed_hosts = {h.id: h for raw in account.collection("hosts") if (h := parse_host(raw, ignore))}
    listed = {h.id: h for raw in account.listings() if (h := parse_host(raw, ignore))}
    mons = {m.id: m for raw in account.collection("monitors") if (m := parse_monitor(raw, ignore))}
    errs = {e.id: e for raw in account.cert_errors() if (e := parse_cert_error(raw, ignore))}
    times = dict.fromkeys(parsed_hosts, now - 60)
    return {
        "rbl_hosts": Snapshot("rbl_hosts", parsed_hosts, now - 60, now - 60, None, times),
        "rbl_listings": Snapshot("rbl_listings", listed, now - 5, now - 5),
        "cert_monitors": Snapshot("cert_monitors", mons, now - 60, now - 60),
        "cert_errors": Snapshot("cert_errors", errs, now - 5, now - 5),
    }


def baseline_registry(text: str) -> CollectorRegistry:
    """The same families and samples as ordinary labelled prometheus_client Gauges."""
    registry = CollectorRegistry()
    for family in text_string_to_metric_families(text):
        labels = sorted({k for s in family.samples for k in s.labels})
        if not family.samples:
            continue
        gauge = Gauge(family.name, family.documentation, labels, registry=registry)
        for sample in family.samples:
            target = gauge.labels(**sample.labels) if labels else gauge
            target.set(sample.value)
    return registry


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def ms(values: list[float], q: float = 0.5) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2)


def measure_render(snaps: dict[str, Snapshot], now: float, repeat: int) -> dict[str, Any]:
    """Our render (and its gzip) beside generate_latest over Gauges holding the same samples."""
    freshness = Freshness(now, dict.fromkeys(snaps, POLL_INTERVAL), dict.fromkeys(snaps, FRESHNESS_LIMIT))
    ours_text = join(render(snaps, freshness), False)
    samples = sum(1 for line in ours_text.splitlines() if line and not line.startswith(b"#"))
    render_times = timed(lambda: join(render(snaps, freshness), False), repeat)
    gzip_times = timed(lambda: GzipPrefix(ours_text), repeat)
    registry = baseline_registry(ours_text.decode())
    baseline_times = timed(lambda: generate_latest(registry), repeat)
    baseline_lines = len(generate_latest(registry).splitlines())
    if baseline_lines < samples:
        raise RuntimeError(f"the baseline holds {baseline_lines} lines for our {samples} samples")
    return {
        "samples": samples,
        "exposition_bytes": len(ours_text),
        "render_ms_median": ms(render_times),
        "gzip_prepare_ms_median": ms(gzip_times),
        "baseline_generate_latest_ms_median": ms(baseline_times),
        "render_speedup": round(statistics.median(baseline_times) / statistics.median(render_times), 1),
    }


async def _scrape(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> bytes:
    async with session.get(url, headers=headers) as r:
        return await r.read()


async def scrape_times(
    app: web.Application, scrapes: int, headers: dict[str, str]
) -> tuple[list[float], int]:
    """`scrapes` GET /metrics of `app` served on loopback, one after the other: times, last size."""
    runner = web.AppRunner(app, access_log=None)
    await within(runner.setup(), SETUP_DEADLINE, "setting the server up")
    out, size = [], 0
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await within(site.start(), SETUP_DEADLINE, "starting the server")
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
        timeout = aiohttp.ClientTimeout(total=SCRAPE_DEADLINE)
        async with aiohttp.ClientSession(auto_decompress=False, timeout=timeout) as session:
            for _ in range(scrapes):
                start = time.perf_counter()
                body = await within(_scrape(session, url, headers), SCRAPE_DEADLINE, "a scrape of /metrics")
                out.append(time.perf_counter() - start)
                size = len(body)
    finally:
        await within(runner.cleanup(), SETUP_DEADLINE, "stopping the server")
    return out, size


async def _reload() -> list[str]:
    return []


async def _loaded_exporter(
    lifetime: contextlib.AsyncExitStack, snaps: dict[str, Snapshot], clock: FrozenClock
) -> Exporter:
    """An exporter on an in-memory state holding `snaps`, written and rendered."""
    config = parse({}).with_credentials(SID, TOKEN)
    api = SimulatedApi(Account(1, 1, clock.now), SID, TOKEN)
    transport = SimulatorTransport(api, clock, SID, TOKEN)
    opening = open_exporter(config, transport, clock, ":memory:")
    exporter = await within(lifetime.enter_async_context(opening), SETUP_DEADLINE, "opening the exporter")
    for snap in snaps.values():
        exporter.store.replace(snap)
    # the in-memory state written before anything is timed
    await within(exporter.journal.drain(), SETUP_DEADLINE, "writing the state")
    exporter.scraper.render_now()
    return exporter


async def measure_serving(snaps: dict[str, Snapshot], now: float, scrapes: int) -> dict[str, Any]:
    """Scrapes of the real app over loopback (gzip and identity) and the in-process expose."""
    clock = FrozenClock(now)
    lifetime = contextlib.AsyncExitStack()
    try:
        exporter = await _loaded_exporter(lifetime, snaps, clock)
        parts = ServerParts(exporter.scraper, exporter.store, exporter.live, _reload, clock.time)
        gz, gz_size = await scrape_times(build_app(parts), scrapes, {"Accept-Encoding": "gzip"})
        parts = ServerParts(exporter.scraper, exporter.store, exporter.live, _reload, clock.time)
        plain, plain_size = await scrape_times(
            build_app(parts), max(20, scrapes // 4), {"Accept-Encoding": "identity"}
        )
        expose = timed(lambda: exporter.scraper.expose("", "gzip"), scrapes)
    finally:
        await within(lifetime.aclose(), SETUP_DEADLINE, "closing the exporter")
    return {
        "scrape_gzip_ms_p50": ms(gz),
        "scrape_gzip_ms_p99": ms(gz, 0.99),
        "scrape_gzip_bytes": gz_size,
        "scrape_identity_ms_p50": ms(plain),
        "scrape_identity_ms_p99": ms(plain, 0.99),
        "scrape_identity_bytes": plain_size,
        "expose_in_process_gzip_ms_p50": ms(expose),
        "expose_in_process_gzip_ms_p99": ms(expose, 0.99),
    }


async def measure(hosts: int, monitors: int, scrapes: int, repeat: int) -> dict[str, Any]:
    now = time.time()
    snaps = snapshots(hosts, monitors, now)
    rendering = measure_render(snaps, now, repeat)
    serving = await measure_serving(snaps, now, scrapes)
    return {"hosts": hosts, "monitors": monitors, **rendering, **serving}


def main(argv: list[str] | None = None) -> int:
    """Exit status 0: measured and written; 2: a wait passed its deadline."""
    p = argparse.ArgumentParser(
        prog="python -m bench.render_scrape", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--hosts", type=int, default=20_000)
    p.add_argument("--monitors", type=int, default=5_000)
    p.add_argument("--scrapes", type=int, default=200, help="gzip scrapes (identity: a quarter, at least 20)")
    p.add_argument("--repeat", type=int, default=5, help="renders timed")
    args = p.parse_args(argv)
    try:
        result = asyncio.run(measure(args.hosts, args.monitors, args.scrapes, args.repeat))
    except Overrun as err:
        print(f"bench.render_scrape: {err}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "render_scrape.json").write_text(json.dumps(result, indent=2))
    for key, val in result.items():
        print(f"{key:40} {val}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
