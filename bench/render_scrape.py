"""Benchmark: a full render and the scrapes of /metrics, at 20,000 hosts and 5,000 monitors
(about 128,000 samples).

The full render (every family from scratch, no reuse) is timed --repeat times beside its baseline
measured in the same run: prometheus_client.generate_latest over ordinary labelled Gauges holding
the same samples; both as median and spread, and their ratio. Then scrapes of the real aiohttp app
of an exporter holding that state (in-memory state file), over loopback, gzip (what Prometheus
asks for) and uncompressed: p50 and p99.

Every wait has a deadline: a server that does not start or stop, a scrape that gets no answer, or
a state that is not written in time fails the run (exit status 2) with a message naming what was
awaited. `loaded_exporter` and `scrape_times` are shared with bench.exposition.

I/O: a loopback HTTP server and its client, and the results file <out>/render_scrape.json.

    python -m bench.render_scrape [--hosts 20000] [--monitors 5000] [--scrapes 200] [--repeat 7]
                                  [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import LOOPBACK, Failed, within
from bench.stats import MS, ratio, spread, timed
from exporter.api.records import parse_cert_error, parse_host, parse_monitor
from exporter.app import Exporter, open_exporter
from exporter.config.parse import parse
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import SimulatedApi
from exporter.demo.simulator.transport import SimulatorTransport
from exporter.metrics.lines import Freshness
from exporter.metrics.render import Renderer, gzip_member
from exporter.state.snapshot import Snapshot
from exporter.web.routes import ServerParts, build_app

T = TypeVar("T")

SID, TOKEN = "AC" + "1" * 32, "f" * 64
RESULTS = Path(__file__).parent / "results"
SCRAPE_DEADLINE = 60.0  # wall-clock seconds for one scrape over loopback
SETUP_DEADLINE = 300.0  # the state written, a server started or stopped, the exporter closed
POLL_INTERVAL = 60.0  # seconds: the poll interval and age the snapshots are rendered with
FRESHNESS_LIMIT = 3600.0  # seconds a snapshot stays fresh
GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


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


async def bounded(awaitable: Awaitable[T], seconds: float, what: str) -> T:
    """`awaitable`'s result, or Failed naming `what` after `seconds`."""
    async with within(seconds, what):
        return await awaitable


def snapshots(hosts: int, monitors: int, now: float) -> dict[str, Snapshot]:
    """The four main collectors' snapshots of a simulated account, 5 % of its hosts listed."""
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


def freshness_for(snaps: Mapping[str, Snapshot], now: float) -> Freshness:
    return Freshness(now, dict.fromkeys(snaps, POLL_INTERVAL), dict.fromkeys(snaps, FRESHNESS_LIMIT))


def full_render(snaps: Mapping[str, Snapshot], freshness: Freshness) -> bytes:
    """Every data family rendered from scratch by a new Renderer (nothing reused), without
    compression, as the exporter's own code path does it: the text exposition. The one place that
    names the renderer's entry points."""
    return b"".join(Renderer(compress=False).update(snaps, freshness).parts(False))


def gzip_prepare(text: bytes) -> object:
    """The gzip stream a scrape is served from, prepared from the rendered text."""
    return gzip_member(text)


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


def samples_in(text: bytes) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


def measure_render(snaps: dict[str, Snapshot], now: float, repeat: int) -> dict[str, Any]:
    """Our full render (and its gzip) beside generate_latest over Gauges holding the same samples."""
    freshness = freshness_for(snaps, now)
    ours_text = full_render(snaps, freshness)
    samples = samples_in(ours_text)
    render_times = timed(lambda: full_render(snaps, freshness), repeat)
    gzip_times = timed(lambda: gzip_prepare(ours_text), repeat)
    registry = baseline_registry(ours_text.decode())
    baseline_times = timed(lambda: generate_latest(registry), repeat)
    baseline_samples = samples_in(generate_latest(registry))
    if baseline_samples < samples:
        raise Failed(f"the baseline holds {baseline_samples} samples for our {samples}")
    return {
        "samples": samples,
        "exposition_bytes": len(ours_text),
        "full_render_ms": spread(render_times, MS),
        "gzip_prepare_ms": spread(gzip_times, MS),
        "baseline_generate_latest_ms": spread(baseline_times, MS),
        "render_speedup": ratio(baseline_times, render_times),
    }


async def _scrape(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> bytes:
    async with session.get(url, headers=headers) as r:
        if r.status != 200:
            raise Failed(f"GET {url} answered {r.status}, not 200")
        return await r.read()


async def scrape_times(
    app: web.Application, scrapes: int, headers: dict[str, str]
) -> tuple[list[float], bytes]:
    """`scrapes` GET /metrics of `app` served on loopback, one after the other: times, last body."""
    runner = web.AppRunner(app, access_log=None)
    await bounded(runner.setup(), SETUP_DEADLINE, "setting the server up")
    out, body = [], b""
    try:
        site = web.TCPSite(runner, LOOPBACK, 0)
        await bounded(site.start(), SETUP_DEADLINE, "starting the server")
        url = f"http://{LOOPBACK}:{runner.addresses[0][1]}/metrics"
        timeout = aiohttp.ClientTimeout(total=SCRAPE_DEADLINE)
        async with aiohttp.ClientSession(auto_decompress=False, timeout=timeout) as session:
            for _ in range(scrapes):
                start = time.perf_counter()
                body = await bounded(_scrape(session, url, headers), SCRAPE_DEADLINE, f"a scrape of {url}")
                out.append(time.perf_counter() - start)
    finally:
        await bounded(runner.cleanup(), SETUP_DEADLINE, "stopping the server")
    return out, body


async def _reload() -> list[str]:
    return []


async def loaded_exporter(
    lifetime: contextlib.AsyncExitStack,
    snaps: Mapping[str, Snapshot],
    clock: FrozenClock,
    setting: Mapping[str, Any] | None = None,
) -> Exporter:
    """An exporter configured with `setting` (config keys, as in the YAML file) on an in-memory
    state holding `snaps`, written and rendered."""
    config = parse(dict(setting or {})).with_credentials(SID, TOKEN)
    api = SimulatedApi(Account(1, 1, clock.now), SID, TOKEN)
    transport = SimulatorTransport(api, clock, SID, TOKEN)
    opening = open_exporter(config, transport, clock, ":memory:")
    exporter = await bounded(lifetime.enter_async_context(opening), SETUP_DEADLINE, "opening the exporter")
    for snap in snaps.values():
        exporter.store.replace(snap)
    # the in-memory state written before anything is timed
    await bounded(exporter.journal.drain(), SETUP_DEADLINE, "writing the state")
    exporter.scraper.render_now()
    return exporter


def app_of(exporter: Exporter, clock: FrozenClock) -> web.Application:
    return build_app(ServerParts(exporter.scraper, exporter.store, exporter.live, _reload, clock.time))


async def measure_serving(snaps: dict[str, Snapshot], now: float, scrapes: int) -> dict[str, Any]:
    """Scrapes of the real app over loopback (gzip and identity) and the in-process expose."""
    clock = FrozenClock(now)
    async with contextlib.AsyncExitStack() as lifetime:
        exporter = await loaded_exporter(lifetime, snaps, clock)
        gz, gz_body = await scrape_times(app_of(exporter, clock), scrapes, GZIP)
        plain, plain_body = await scrape_times(app_of(exporter, clock), max(20, scrapes // 4), IDENTITY)
        expose = timed(lambda: exporter.scraper.expose("", "gzip"), scrapes)
    return {
        "scrape_gzip_ms": spread(gz, MS),
        "scrape_gzip_bytes": len(gz_body),
        "scrape_identity_ms": spread(plain, MS),
        "scrape_identity_bytes": len(plain_body),
        "expose_in_process_gzip_ms": spread(expose, MS),
    }


async def measure(hosts: int, monitors: int, scrapes: int, repeat: int) -> dict[str, Any]:
    now = time.time()
    snaps = snapshots(hosts, monitors, now)
    rendering = measure_render(snaps, now, repeat)
    serving = await measure_serving(snaps, now, scrapes)
    return {"hosts": hosts, "monitors": monitors, **rendering, **serving}


def main(argv: list[str] | None = None) -> int:
    """Exit status 0: measured and written; 2: a wait passed its deadline or an answer was wrong."""
    p = argparse.ArgumentParser(
        prog="python -m bench.render_scrape", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--hosts", type=int, default=20_000)
    p.add_argument("--monitors", type=int, default=5_000)
    p.add_argument("--scrapes", type=int, default=200, help="gzip scrapes (identity: a quarter, at least 20)")
    p.add_argument("--repeat", type=int, default=7, help="full renders (and baselines) timed")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory of render_scrape.json")
    args = p.parse_args(argv)
    try:
        result = asyncio.run(measure(args.hosts, args.monitors, args.scrapes, args.repeat))
    except Failed as err:
        print(f"bench.render_scrape: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "render_scrape.json").write_text(json.dumps(result, indent=2))
    for key, val in result.items():
        print(f"{key:32} {val}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
