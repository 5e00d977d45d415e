"""Benchmark: render after a change and serve a scrape, at 20,000 hosts and 5,000 monitors.

Compares our render with prometheus_client.generate_latest over ordinary labelled Gauges holding
the same series, then times scrapes of a real aiohttp server over loopback.

    python -m bench.render_scrape [--hosts 20000] [--monitors 5000] [--scrapes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from exporter.api.records import parse_cert_error, parse_host, parse_monitor
from exporter.app import open_exporter
from exporter.config.parse import parse
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.transport import SimulatorTransport
from exporter.metrics.render import Freshness, join, render
from exporter.state.snapshot import Snapshot
from exporter.web.routes import ServerParts, build_app

SID, TOKEN = "AC" + "1" * 32, "f" * 64


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


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
    from prometheus_client.parser import text_string_to_metric_families

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


def timed(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


async def scrape_times(
    app: web.Application, scrapes: int, headers: dict[str, str]
) -> tuple[list[float], int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    out, size = [], 0
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            for _ in range(scrapes):
                start = time.perf_counter()
                async with session.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as r:
                    body = await r.read()
                out.append(time.perf_counter() - start)
                size = len(body)
    finally:
        await runner.cleanup()
    return out, size


def ms(values: list[float], q: float = 0.5) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", type=int, default=20_000)
    p.add_argument("--monitors", type=int, default=5_000)
    p.add_argument("--scrapes", type=int, default=200)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    now = time.time()
    snaps = snapshots(args.hosts, args.monitors, now)
    intervals = dict.fromkeys(snaps, 60.0)
    freshness = Freshness(now, intervals, dict.fromkeys(snaps, 3600.0))

    ours_text = join(render(snaps, freshness), False)
    samples = sum(1 for line in ours_text.splitlines() if line and not line.startswith(b"#"))
    render_times = timed(lambda: join(render(snaps, freshness), False), args.repeat)
    from exporter.metrics.render import GzipPrefix

    gzip_times = timed(lambda: GzipPrefix(ours_text), args.repeat)

    registry = baseline_registry(ours_text.decode())
    baseline_times = timed(lambda: generate_latest(registry), args.repeat)
    assert len(generate_latest(registry).splitlines()) >= samples

    clock = Clock(now)
    config = parse({}).with_credentials(SID, TOKEN)
    account = Account(1, 1, now)
    from exporter.demo.simulator.api import SimulatedApi

    transport = SimulatorTransport(SimulatedApi(account, SID, TOKEN), clock, SID, TOKEN)
    lifetime = contextlib.AsyncExitStack()
    exporter = await lifetime.enter_async_context(open_exporter(config, transport, clock, ":memory:"))
    for snap in snaps.values():
        exporter.store.replace(snap)
    await exporter.journal.drain()  # the in-memory state written before anything is timed
    exporter.scraper.render_now()

    async def reload() -> list[str]:
        return []

    app = build_app(ServerParts(exporter.scraper, exporter.store, exporter.live, reload, clock.time))
    gz, gz_size = await scrape_times(app, args.scrapes, {"Accept-Encoding": "gzip"})
    app = build_app(ServerParts(exporter.scraper, exporter.store, exporter.live, reload, clock.time))
    plain, plain_size = await scrape_times(app, max(20, args.scrapes // 4), {"Accept-Encoding": "identity"})
    expose = timed(lambda: exporter.scraper.expose("", "gzip"), args.scrapes)
    await lifetime.aclose()

    result = {
        "hosts": args.hosts, "monitors": args.monitors, "samples": samples,
        "exposition_bytes": len(ours_text),
        "render_ms_median": ms(render_times), "gzip_prepare_ms_median": ms(gzip_times),
        "baseline_generate_latest_ms_median": ms(baseline_times),
        "render_speedup": round(statistics.median(baseline_times) / statistics.median(render_times), 1),
        "scrape_gzip_ms_p50": ms(gz), "scrape_gzip_ms_p99": ms(gz, 0.99), "scrape_gzip_bytes": gz_size,
        "scrape_identity_ms_p50": ms(plain), "scrape_identity_ms_p99": ms(plain, 0.99),
        "scrape_identity_bytes": plain_size,
        "expose_in_process_gzip_ms_p50": ms(expose), "expose_in_process_gzip_ms_p99": ms(expose, 0.99),
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "render_scrape.json").write_text(json.dumps(result, indent=2))
    for key, val in result.items():
        print(f"{key:40} {val}")


if __name__ == "__main__":
    asyncio.run(main())
