"""Benchmark: what the webhook receivers cost, measured over loopback against real processes.

It measures five things and writes them to bench/results/webhooks.json:

- signed Generator Labs webhooks per second with durable storage (the exporter in `--demo` mode,
  webhooks on, state in a temporary SQLite file), beside a bare aiohttp handler answering 204,
  the ceiling of this stack; both driven by the same aiohttp load generator (this process);
- webhook-to-/metrics latency: from posting a signed `rbl.host.listed` to its value on /metrics;
- HetrixTools 512 KB chunks posted back to back, as HetrixTools sends them, and how long until
  every accepted monitor shows on /metrics;
- the same chunks in-process (parse, commit to SQLite, apply), without HTTP;
- webhook-to-/metrics latency again, after those monitors, and on a large account (the exporter
  polling a standalone simulator of --large-hosts hosts and --large-monitors monitors).

Every wait has a deadline: a process that does not become ready, a request that gets no answer
or a change that never reaches /metrics fails the run with a message naming what was awaited.
The processes it starts are stopped (SIGTERM, then SIGKILL) however the run ends.

I/O: starts subprocesses, HTTP over loopback, a temporary directory and the results file.

    python -m bench.webhooks [--seconds 10] [--concurrency 64] [--rounds 20] [--hetrix-chunks 100]
                             [--large-hosts 20000] [--large-monitors 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from exporter.webhooks.signature import sign
from tests.helpers.processes import ROOT, free_port

RESULTS = Path(__file__).parent / "results"
SECRET = "whsec_bench_secret_value"
HX_TOKEN = "hx-bench-token-0123456789abcdef"
LOOPBACK = "127.0.0.1"
BARE = """
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(status=204)
app = web.Application()
app.router.add_post("/webhooks/generatorlabs", ok)
web.run_app(app, host="127.0.0.1", port={port}, access_log=None, print=None)
"""

# Deadlines, in wall-clock seconds
READY_DEADLINE = 30.0  # a started process answers HTTP below 500
REQUEST_TIMEOUT = 30.0  # one HTTP request over loopback, /metrics of a large account included
VISIBLE_DEADLINE = 30.0  # every accepted HetrixTools monitor shows on /metrics
LATENCY_DEADLINE = 30.0  # one webhook's change shows on /metrics
INVENTORY_DEADLINE = 120.0  # the large account's whole inventory is polled
STOP_GRACE = 30.0  # a process has this long to exit after SIGTERM, then again after SIGKILL

# Poll intervals, in seconds
READY_POLL = 0.1
READY_PROBE_TIMEOUT = 1.0  # one readiness probe
LATENCY_POLL = 0.05  # a tighter loop would steal the renderer's CPU
INVENTORY_POLL = 1.0

# Sizes
HETRIX_CHUNKS = 100  # chunks posted; 100 chunks of 100 monitors make 10,000 monitors
MONITORS_PER_CHUNK = 100  # HetrixTools sends its monitors in chunks of 100
RBLS_PER_MONITOR = 29  # listed on 29 RBLs each, which makes a chunk about 512 KB
MAX_BODY_BYTES = 1024 * 1024  # the exporter's webhooks.max_body_bytes, above a chunk's size
LATENCY_ROUNDS = 20
LARGE_HOSTS = 20_000
LARGE_MONITORS = 5_000
LARGE_PAGE_SIZE = 500  # items per page, so the large inventory loads in few requests
MS = 1000  # milliseconds per second
P99 = 0.99

HX_INFO = 'hetrixtools_blacklist_monitor_info{monitor="mx'  # one per HetrixTools monitor on /metrics
LISTED = "generatorlabs_rbl_host_listed{"  # one per RBL host on /metrics


class Failed(Exception):
    """The benchmark could not measure: a deadline passed, a process died or an answer was wrong."""


def timed_out(seconds: float, what: str) -> Failed:
    return Failed(f"timed out after {seconds:g} s waiting for {what}")


@contextlib.asynccontextmanager
async def within(seconds: float, what: str) -> AsyncIterator[None]:
    """Fail with a message naming `what` unless the block ends within `seconds`; this also
    names a request that timed out inside the block (aiohttp raises TimeoutError too)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as err:
        raise timed_out(seconds, what) from err


def client(connector: aiohttp.BaseConnector | None = None) -> aiohttp.ClientSession:
    """A session whose every request has REQUEST_TIMEOUT in all."""
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))


def stop(proc: subprocess.Popen[bytes], what: str) -> None:
    """SIGTERM, then SIGKILL if `proc` has not exited within STOP_GRACE."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        print(f"bench.webhooks: {what} ignored SIGTERM for {STOP_GRACE:g} s; killing it", file=sys.stderr)
        proc.kill()
        proc.wait(timeout=STOP_GRACE)


@contextlib.contextmanager
def running(
    argv: list[str],
    what: str,
    *,
    env: Mapping[str, str] | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A process started from the repository root, stopped when the block ends, however it ends."""
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
    try:
        yield proc
    finally:
        stop(proc, what)


def answers(url: str) -> bool:
    """Whether `url` answers with a status below 500."""
    try:
        with urllib.request.urlopen(url, timeout=READY_PROBE_TIMEOUT) as r:  # noqa: S310 - loopback
            return bool(r.status < 500)
    except urllib.error.HTTPError as err:
        return err.code < 500
    except OSError:
        return False


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    """Wait until `url` answers below 500; fail if `proc` exits first or READY_DEADLINE passes."""
    end = time.monotonic() + READY_DEADLINE
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise Failed(f"{what} exited with code {proc.returncode} before {url} answered")
        if answers(url):
            return
        time.sleep(READY_POLL)
    raise timed_out(READY_DEADLINE, f"{what} to answer {url}")


def quantile_ms(ordered: list[float], q: float, digits: int | None) -> float:
    """The `q` quantile of sorted seconds, in milliseconds rounded to `digits`."""
    return round(ordered[min(int(len(ordered) * q), len(ordered) - 1)] * MS, digits)


def renewal_body(i: int) -> bytes:
    """A billing.renewal.success event with a fresh event_sid."""
    event = {
        "event_sid": "TA" + secrets.token_hex(16),
        "event_type": "billing.renewal.success",
        "event_date": "2026-11-22T00:00:00Z",
        "plan": {"id": f"PL{i}"},
        "payment": {},
    }
    return json.dumps(event).encode()


def signed_headers(raw: bytes, timestamp: float) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Webhook-Signature": sign(raw, SECRET, int(timestamp))}


async def load(url: str, seconds: float, concurrency: int) -> dict[str, float]:
    """`concurrency` workers posting signed webhooks to `url` back to back for `seconds`."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        i = 0
        while time.monotonic() < stop_at:
            raw = renewal_body(i)
            i += 1
            start = time.perf_counter()
            async with session.post(url, data=raw, headers=signed_headers(raw, time.time())) as r:
                await r.read()
                if r.status not in (200, 204):
                    errors += 1
            latencies.append(time.perf_counter() - start)

    began = time.monotonic()
    async with (
        client(aiohttp.TCPConnector(limit=concurrency)) as session,
        within(seconds + REQUEST_TIMEOUT, f"answers to {concurrency} workers posting to {url}"),
    ):
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.monotonic() - began
    if not latencies:
        raise Failed(f"no POST to {url} completed in {seconds:g} s")
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed),
        "p50_ms": quantile_ms(latencies, 0.5, 2),
        "p99_ms": quantile_ms(latencies, P99, 2),
    }


def chunk_512k(start: int) -> bytes:
    """A HetrixTools chunk of MONITORS_PER_CHUNK monitors, numbered from `start`."""
    items = [
        {
            "monitor": f"mx{start + i}.example.net",
            "label": f"bench {start + i}",
            "blacklisted_before": "28",
            "blacklisted_now": "29",
            "blacklisted_on": [
                {
                    "rbl": f"rbl{j}.blacklist.example.org",
                    "delist": f"https://rbl{j}.blacklist.example.org/delist?ip={start + i}&" + "x" * 60,
                }
                for j in range(RBLS_PER_MONITOR)
            ],
            "links": {
                "report_link": "https://hetrixtools.com/report/blacklist/" + "a" * 32 + "/",
                "whitelabel_report_link": "http://status.example/report/" + "b" * 32 + "/",
            },
        }
        for i in range(MONITORS_PER_CHUNK)
    ]
    return json.dumps(items).encode()


async def post_chunks(session: aiohttp.ClientSession, url: str, chunks: list[bytes]) -> dict[str, Any]:
    """Post `chunks` back to back, as HetrixTools sends them: statuses and time per chunk."""
    times: list[float] = []
    statuses: list[int] = []
    for c in chunks:
        start = time.perf_counter()
        async with session.post(url, data=c, headers={"Content-Type": "application/json"}) as r:
            await r.read()
            statuses.append(r.status)
        times.append(time.perf_counter() - start)
    return {
        "accepted": statuses.count(200),
        "statuses": sorted(set(statuses)),
        "chunk_ms_p50": round(statistics.median(times) * MS, 1),
        "chunk_ms_max": round(max(times) * MS, 1),
    }


async def hetrix(base: str, chunk_count: int) -> dict[str, Any]:
    """HetrixTools chunks over HTTP, then how long until every monitor shows on /metrics."""
    url = f"{base}/webhooks/hetrixtools/{HX_TOKEN}"
    chunks = [chunk_512k(k * MONITORS_PER_CHUNK) for k in range(chunk_count)]
    expected = chunk_count * MONITORS_PER_CHUNK
    async with client() as session:
        posted = await post_chunks(session, url, chunks)
        start, present = time.perf_counter(), 0
        while present < expected:
            if time.perf_counter() - start > VISIBLE_DEADLINE:
                raise timed_out(
                    VISIBLE_DEADLINE, f"{expected} HetrixTools monitors on /metrics (saw {present})"
                )
            async with session.get(f"{base}/metrics") as r:
                present = (await r.text()).count(HX_INFO)
        visible_after = time.perf_counter() - start
    return {
        "chunk_bytes": len(chunks[0]),
        "chunks": len(chunks),
        "accepted": posted["accepted"],
        "statuses": posted["statuses"],
        "monitors_on_metrics": present,
        "all_visible_after_s": round(visible_after, 2),
        "chunk_ms_p50": posted["chunk_ms_p50"],
        "chunk_ms_max": posted["chunk_ms_max"],
    }


async def hetrix_in_process(tmp: Path, chunk_count: int) -> dict[str, Any]:
    """What the receiver does with one 512 KB chunk: parse, commit to SQLite, apply."""
    from exporter.state.sqlite import Incoming, StateDB
    from exporter.webhooks.overlay import WebhookState
    from exporter.webhooks.payloads import check_hetrix_chunk

    db = StateDB(str(tmp / "inproc.sqlite"))
    await db.open()
    state, times = WebhookState(), []
    try:
        for k in range(chunk_count):
            raw = chunk_512k(k * MONITORS_PER_CHUNK)
            start = time.perf_counter()
            monitors = check_hetrix_chunk(raw).monitors
            await db.accept([Incoming("hetrixtools", (), raw, time.time(), 0)])
            state.apply_hetrix(monitors, time.time())
            times.append(time.perf_counter() - start)
    finally:
        await db.close()
    return {
        "chunks": chunk_count,
        "monitors": len(state.hetrix),
        "ms_p50": round(statistics.median(times) * MS, 1),
        "ms_max": round(max(times) * MS, 1),
    }


def listed_body(host: str, k: int, now: float) -> bytes:
    """A signed-to-be rbl.host.listed for `host` on "Bench RBL k", dated a second after `now`."""
    event = {
        "event_sid": "TA" + secrets.token_hex(16),
        "event_type": "rbl.host.listed",
        "event_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 1)),
        "host": {"id": host},
        "listed": True,
        "total": 1,
        "details": [{"host": f"Bench RBL {k}"}],
    }
    return json.dumps(event).encode()


async def one_round(session: aiohttp.ClientSession, base: str, host: str, k: int) -> float:
    """Seconds from posting a listing of `host` on "Bench RBL k" to seeing it on /metrics."""
    now = time.time()
    raw = listed_body(host, k, now)
    start = time.perf_counter()
    async with session.post(
        f"{base}/webhooks/generatorlabs", data=raw, headers=signed_headers(raw, now)
    ) as r:
        if r.status != 204:
            raise Failed(f"POST {base}/webhooks/generatorlabs answered {r.status}, not 204: {await r.text()}")
    needle = f'rbl="Bench RBL {k}"'
    async with within(LATENCY_DEADLINE, f"the listing of host {host} on {needle} to show on {base}/metrics"):
        while True:
            async with session.get(f"{base}/metrics") as r:
                if needle in await r.text():
                    break
            await asyncio.sleep(LATENCY_POLL)
    return time.perf_counter() - start


async def latency(base: str, rounds: int) -> dict[str, float]:
    """Arrival of a signed rbl.host.listed to the changed value on /metrics, over `rounds` hosts."""
    async with client() as session:
        async with session.get(f"{base}/metrics") as r:
            text = await r.text()
        hosts = [line.split('"')[1] for line in text.splitlines() if line.startswith(LISTED)]
        if not hosts:
            raise Failed(f"{base}/metrics shows no RBL host to list")
        out = sorted([await one_round(session, base, hosts[k % len(hosts)], k) for k in range(rounds)])
    return {"rounds": rounds, "p50_ms": round(out[len(out) // 2] * MS), "max_ms": round(out[-1] * MS)}


def wait_for_inventory(base: str, proc: subprocess.Popen[bytes], hosts: int) -> None:
    """Wait until /metrics counts all `hosts` RBL hosts; fail if the exporter exits first."""
    needle = f"generatorlabs_rbl_hosts {hosts}".encode()
    end = time.monotonic() + INVENTORY_DEADLINE
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise Failed(f"the exporter exited with code {proc.returncode} while loading {hosts} hosts")
        with urllib.request.urlopen(f"{base}/metrics", timeout=REQUEST_TIMEOUT) as r:  # noqa: S310 - loopback
            if needle in r.read():
                return
        time.sleep(INVENTORY_POLL)
    raise timed_out(INVENTORY_DEADLINE, f"the inventory of {hosts} hosts on {base}/metrics")


def simulator_argv(port: int, hosts: int, monitors: int, sid: str, token: str) -> list[str]:
    """A standalone simulator with limits raised so that a large inventory loads quickly."""
    return [
        *(sys.executable, "-m", "exporter.demo.simulator", "--port", str(port), "--quiet"),
        *("--hosts", str(hosts), "--monitors", str(monitors)),
        *("--account-sid", sid, "--auth-token", token),
        *("--hourly-limit", "1000000", "--per-second-limit", "1000"),
    ]


def large_account_latency(tmp: Path, hosts: int, monitors: int, rounds: int) -> dict[str, Any]:
    """Webhook-to-/metrics latency on an account of `hosts` hosts and `monitors` monitors (the
    exporter polls a standalone simulator with a raised limit so the inventory loads quickly)."""
    sim_port, port = free_port(), free_port()
    sid, token = "AC" + "2" * 32, "d" * 64
    config = {
        "api": {"base_url": f"http://{LOOPBACK}:{sim_port}/4.0", "page_size": LARGE_PAGE_SIZE},
        "budget": {"requests_per_hour": 100000, "allow_over_limit": True, "requests_per_second": 50},
        "webhooks": {"enabled": True, "secrets": [SECRET]},
        "state": {"path": str(tmp / "large.sqlite")},
        "log": {"level": "warning"},
    }
    (tmp / "large.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "GENERATORLABS_ACCOUNT_SID": sid, "GENERATORLABS_AUTH_TOKEN": token}
    exporter_argv = [sys.executable, "-m", "exporter", "--config.file", str(tmp / "large.yaml")]
    exporter_argv += ["--web.listen-address", f"{LOOPBACK}:{port}"]
    simulator = simulator_argv(sim_port, hosts, monitors, sid, token)
    with (
        running(simulator, "the simulator", stdout=subprocess.DEVNULL),
        running(exporter_argv, "the large-account exporter", env=env, stderr=subprocess.DEVNULL) as proc,
    ):
        base = f"http://{LOOPBACK}:{port}"
        wait_ready(f"{base}/-/ready", proc, "the large-account exporter")
        wait_for_inventory(base, proc, hosts)
        return asyncio.run(latency(base, rounds))


def demo_config(tmp: Path) -> Path:
    """The demo exporter's config: webhooks on, HetrixTools token set, state in `tmp`."""
    path = tmp / "config.yaml"
    webhooks = {
        "enabled": True,
        "secrets": [SECRET],
        "hetrixtools_token": HX_TOKEN,
        "max_body_bytes": MAX_BODY_BYTES,
    }
    path.write_text(
        yaml.safe_dump(
            {"webhooks": webhooks, "state": {"path": str(tmp / "state.sqlite")}, "log": {"level": "warning"}}
        )
    )
    return path


def measure(args: argparse.Namespace, tmp: Path, bare_base: str, base: str) -> dict[str, Any]:
    """Everything measured against the bare server and the demo exporter."""
    ceiling = asyncio.run(load(f"{bare_base}/webhooks/generatorlabs", args.seconds, args.concurrency))
    ours = asyncio.run(load(f"{base}/webhooks/generatorlabs", args.seconds, args.concurrency))
    monitors = args.hetrix_chunks * MONITORS_PER_CHUNK
    return {
        "bare_aiohttp_204": ceiling,
        "exporter_signed_durable": ours,
        "share_of_ceiling": round(ours["rps"] / ceiling["rps"], 2),
        "webhook_to_metrics_demo_account": asyncio.run(latency(base, args.rounds)),
        "hetrixtools_http": asyncio.run(hetrix(base, args.hetrix_chunks)),
        "hetrixtools_in_process": asyncio.run(hetrix_in_process(tmp, args.hetrix_chunks)),
        f"webhook_to_metrics_after_{monitors}_hetrix_monitors": asyncio.run(latency(base, args.rounds)),
    }


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start the bare server and the demo exporter, measure, stop them; then the large account."""
    bare_port, port = free_port(), free_port()
    bare_base, base = f"http://{LOOPBACK}:{bare_port}", f"http://{LOOPBACK}:{port}"
    exporter_argv = [sys.executable, "-m", "exporter", "--demo", "--config.file", str(demo_config(tmp))]
    exporter_argv += ["--web.listen-address", f"{LOOPBACK}:{port}"]
    env = {**os.environ, "XDG_STATE_HOME": str(tmp)}
    with (
        running([sys.executable, "-c", BARE.replace("{port}", str(bare_port))], "the bare server") as bare,
        running(exporter_argv, "the demo exporter", env=env, stderr=subprocess.DEVNULL) as exporter,
    ):
        wait_ready(f"{bare_base}/", bare, "the bare server")
        wait_ready(f"{base}/-/ready", exporter, "the demo exporter")
        result = measure(args, tmp, bare_base, base)
    large = f"webhook_to_metrics_{args.large_hosts}_hosts_{args.large_monitors}_monitors"
    result[large] = large_account_latency(tmp, args.large_hosts, args.large_monitors, args.rounds)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.webhooks", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--seconds", type=float, default=10, help="seconds of load on each server")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent connections of the load")
    p.add_argument("--rounds", type=int, default=LATENCY_ROUNDS, help="webhooks per latency measurement")
    p.add_argument(
        "--hetrix-chunks",
        type=int,
        default=HETRIX_CHUNKS,
        help=f"HetrixTools chunks of {MONITORS_PER_CHUNK} monitors to post",
    )
    p.add_argument("--large-hosts", type=int, default=LARGE_HOSTS, help="RBL hosts of the large account")
    p.add_argument("--large-monitors", type=int, default=LARGE_MONITORS, help="monitors of the large account")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="generatorlabs-bench-webhooks-") as tmp:
            result = run(args, Path(tmp))
    except Failed as err:
        print(f"bench.webhooks: {err}", file=sys.stderr)
        return 1
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "webhooks.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
