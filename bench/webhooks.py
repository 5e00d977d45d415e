"""Benchmark: what the webhook receivers cost, measured over loopback against real processes.

It measures, and writes to <out>/webhooks.json:

- intake throughput: signed Generator Labs webhooks per second with durable storage (the exporter
  in `--demo` mode, webhooks on, state in a temporary SQLite file) beside its baseline, a bare
  aiohttp handler answering 204 (the ceiling of this stack), both driven by the same aiohttp load
  generator (this process), alternately, over --runs runs: the median and spread of each and of
  the share of the ceiling;
- webhook-to-/metrics latency on the demo account: from posting a signed `rbl.host.listed` to its
  value on /metrics (p50, p99, max over --rounds webhooks);
- HetrixTools 512 KB chunks posted back to back, as HetrixTools sends them, and how long until
  every accepted monitor shows on /metrics; the same chunks in-process (parse, commit, apply);
- on a large account (the exporter polling a standalone simulator of --large-hosts hosts and
  --large-monitors monitors): webhook-to-/metrics latency, then the HetrixTools chunks pushed,
  then the latency again, now with those monitors on /metrics.

Latency is measured by polling /metrics (gzip) every LATENCY_POLL seconds, so it is rounded up to
that poll plus one scrape. The probe (`shows`) inflates the body as it arrives, gzip member by
gzip member, and stops reading at the needle or at the end of the needle's family: on the
20,000-host account it inflates a few MB per poll, not the whole 14.7 MB body, so that it takes
less of the CPU it shares with the exporter (the figure it measures is the same: the first poll
whose /metrics holds the change). Every wait has a deadline: a process that does not become ready, a
request that gets no answer or a change that never reaches /metrics fails the run (exit status 1)
with a message naming what was awaited. The processes it starts are stopped (SIGTERM, then
SIGKILL) however the run ends.

I/O: starts subprocesses, HTTP over loopback, a temporary directory and the results file.

    python -m bench.webhooks [--runs 5] [--seconds 4] [--concurrency 64] [--rounds 50]
                             [--hetrix-chunks 100] [--large-hosts 20000] [--large-monitors 5000]
                             [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.harness import LOOPBACK, Failed, client, exited, free_port, running, wait_ready, within
from bench.stats import MS, spread
from exporter.webhooks.signature import sign
from tests.helpers.processes import exporter_env

RESULTS = Path(__file__).parent / "results"
SECRET = "whsec_bench_secret_value"
HX_TOKEN = "hx-bench-token-0123456789abcdef"
SID, TOKEN = "AC" + "2" * 32, "d" * 64
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
LOAD_GRACE = 60.0  # after a load run's seconds, its last answers must arrive within this
VISIBLE_DEADLINE = 120.0  # every accepted HetrixTools monitor shows on /metrics
LATENCY_DEADLINE = 30.0  # one webhook's change shows on /metrics
CHUNKS_DEADLINE = 300.0  # every HetrixTools chunk posted and answered (over HTTP, or in-process)
INVENTORY_DEADLINE = 300.0  # the large account's whole inventory is polled

# Poll intervals, in seconds
LATENCY_POLL = 0.02  # a tighter loop would steal the renderer's CPU
INVENTORY_POLL = 1.0

# Sizes
RUNS = 5
HETRIX_CHUNKS = 100  # chunks posted; 100 chunks of 100 monitors make 10,000 monitors
MONITORS_PER_CHUNK = 100  # HetrixTools sends its monitors in chunks of 100
RBLS_PER_MONITOR = 29  # listed on 29 RBLs each, which makes a chunk about 512 KB
MAX_BODY_BYTES = 1024 * 1024  # the exporter's webhooks.max_body_bytes, above a chunk's size
LATENCY_ROUNDS = 50
LARGE_HOSTS = 20_000
LARGE_MONITORS = 5_000
LARGE_PAGE_SIZE = 500  # items per page, so the large inventory loads in few requests

HX_INFO = b'hetrixtools_blacklist_monitor_info{monitor="mx'  # one per HetrixTools monitor on /metrics
LISTED = "generatorlabs_rbl_host_listed{"  # one per RBL host on /metrics
LISTING_FAMILY_END = b"\n# HELP generatorlabs_rbl_host_paused "  # the family after rbl_listing_info
PROBE_CHUNK = 256 * 1024  # bytes of gzip read at a time by the probe


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
        within(seconds + LOAD_GRACE, f"answers to {concurrency} workers posting to {url}"),
    ):
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.monotonic() - began
    if not latencies:
        raise Failed(f"no POST to {url} completed in {seconds:g} s")
    answer = spread(latencies, MS)
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed, **_ms(answer)}


def _ms(s: dict[str, float]) -> dict[str, float]:
    return {"p50_ms": s["median"], "p99_ms": s["p99"]}


async def throughput(bare_url: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """The bare handler and the exporter, alternately, --runs times: rps and share, with spread."""
    bare, ours = [], []
    for _ in range(args.runs):
        bare.append(await load(bare_url, args.seconds, args.concurrency))
        ours.append(await load(url, args.seconds, args.concurrency))
    return {
        "runs": args.runs,
        "seconds_per_run": args.seconds,
        "concurrency": args.concurrency,
        "bare_aiohttp_204_rps": spread([r["rps"] for r in bare], digits=0),
        "exporter_signed_durable_rps": spread([r["rps"] for r in ours], digits=0),
        "share_of_bare": spread([o["rps"] / b["rps"] for o, b in zip(ours, bare, strict=True)]),
        "exporter_answer_p50_ms": spread([r["p50_ms"] for r in ours]),
        "exporter_answer_p99_ms": spread([r["p99_ms"] for r in ours]),
        "exporter_errors": sum(int(r["errors"]) for r in ours),
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
        "chunk_ms": spread(times, MS, 1),
    }


async def hetrix(base: str, chunk_count: int) -> dict[str, Any]:
    """HetrixTools chunks over HTTP, then how long until every monitor shows on /metrics."""
    url = f"{base}/webhooks/hetrixtools/{HX_TOKEN}"
    chunks = [chunk_512k(k * MONITORS_PER_CHUNK) for k in range(chunk_count)]
    expected = chunk_count * MONITORS_PER_CHUNK
    async with client() as session:
        async with within(CHUNKS_DEADLINE, f"answers to {len(chunks)} HetrixTools chunks posted to {base}"):
            posted = await post_chunks(session, url, chunks)
        start, present = time.perf_counter(), 0
        async with within(VISIBLE_DEADLINE, f"{expected} HetrixTools monitors on {base}/metrics"):
            while present < expected:
                async with session.get(f"{base}/metrics") as r:
                    present = (await r.read()).count(HX_INFO)
                if present < expected:
                    await asyncio.sleep(INVENTORY_POLL / 4)
        visible_after = time.perf_counter() - start
    return {
        "chunk_bytes": len(chunks[0]),
        "chunks": len(chunks),
        "monitors_on_metrics": present,
        "all_visible_after_s": round(visible_after, 2),
        **posted,
    }


async def hetrix_in_process(tmp: Path, chunk_count: int) -> dict[str, Any]:
    """What the receiver does with one 512 KB chunk: parse, commit to SQLite, apply."""
    from exporter.state.overlay import WebhookState
    from exporter.state.sqlite import Incoming, StateDB
    from exporter.webhooks.payloads import check_hetrix_chunk

    db = StateDB(str(tmp / "inproc.sqlite"))
    state, times = WebhookState(), []
    try:
        async with within(CHUNKS_DEADLINE, f"{chunk_count} HetrixTools chunks committed in-process"):
            await db.start(None, time.time())
            for k in range(chunk_count):
                raw = chunk_512k(k * MONITORS_PER_CHUNK)
                start = time.perf_counter()
                monitors = check_hetrix_chunk(raw).monitors
                await db.accept([Incoming("hetrixtools", (), raw, time.time(), 0)])
                state.apply_hetrix(monitors, time.time())
                times.append(time.perf_counter() - start)
    finally:
        await db.close()
    return {"chunks": chunk_count, "monitors": len(state.hetrix), "chunk_ms": spread(times, MS, 1)}


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


def _finder(needle: bytes, until: bytes | None) -> Callable[[bytes], bool | None]:
    """A function fed the inflated text piece by piece: True once `needle` has been seen, False
    once `until` has (without the needle before it), None while neither has."""
    keep = max(len(needle), len(until or b"")) - 1
    tail = b""

    def feed(piece: bytes) -> bool | None:
        nonlocal tail
        text = tail + piece
        at = text.find(needle)
        end = text.find(until) if until else -1
        if at >= 0 and (end < 0 or at < end):
            return True
        if end >= 0:
            return False
        tail = text[-keep:] if keep else b""
        return None

    return feed


async def shows(session: aiohttp.ClientSession, url: str, needle: bytes, until: bytes | None = None) -> bool:
    """Whether the body of `url` holds `needle` (before `until`, if given). `session` must not
    decompress: the gzip body is inflated here as it arrives, member after member (a gzip stream
    may be several members, RFC 1952 section 2.2), and the rest is not read once the answer is
    known (the connection is then closed, not reused)."""
    find = _finder(needle, until)
    async with session.get(url, headers={"Accept-Encoding": "gzip"}) as r:
        if r.headers.get("Content-Encoding", "") != "gzip":
            return find(await r.read()) is True
        inflate = zlib.decompressobj(wbits=31)
        async for chunk in r.content.iter_chunked(PROBE_CHUNK):
            while chunk:
                found = find(inflate.decompress(chunk))
                if found is not None:
                    r.close()
                    return found
                chunk = b""
                if inflate.eof:  # the member ended: the next one starts in what is left
                    chunk, inflate = inflate.unused_data, zlib.decompressobj(wbits=31)
        return False


async def one_round(session: aiohttp.ClientSession, base: str, host: str, k: int) -> float:
    """Seconds from posting a listing of `host` on "Bench RBL k" to seeing it on /metrics."""
    now = time.time()
    raw = listed_body(host, k, now)
    start = time.perf_counter()
    needle = f'rbl="Bench RBL {k}"'
    async with within(LATENCY_DEADLINE, f"the listing of host {host} on {needle} to show on {base}/metrics"):
        async with session.post(
            f"{base}/webhooks/generatorlabs", data=raw, headers=signed_headers(raw, now)
        ) as r:
            if r.status != 204:
                text = await r.text()
                raise Failed(f"POST {base}/webhooks/generatorlabs answered {r.status}, not 204: {text}")
        while True:
            if await shows(session, f"{base}/metrics", needle.encode(), LISTING_FAMILY_END):
                return time.perf_counter() - start
            await asyncio.sleep(LATENCY_POLL)


async def latency(base: str, rounds: int, first: int = 0) -> dict[str, Any]:
    """Arrival of a signed rbl.host.listed to the changed value on /metrics, over `rounds` hosts
    (RBL names numbered from `first`, so that each round's change is new)."""
    async with client() as session, session.get(f"{base}/metrics") as r:
        text = await r.text()
    hosts = [line.split('"')[1] for line in text.splitlines() if line.startswith(LISTED)]
    if not hosts:
        raise Failed(f"{base}/metrics shows no RBL host to list")
    async with client(decompress=False) as session:
        out = [await one_round(session, base, hosts[k % len(hosts)], first + k) for k in range(rounds)]
    s = spread(out, MS, 0)
    return {"rounds": rounds, "p50_ms": s["median"], "p99_ms": s["p99"], "max_ms": s["max"]}


async def wait_for_inventory(base: str, alive: Callable[[], None], hosts: int) -> float:
    """Seconds until /metrics counts all `hosts` RBL hosts; fails if the exporter exits first."""
    needle = f"generatorlabs_rbl_hosts {hosts}\n".encode()
    began = time.monotonic()
    async with (
        client() as session,
        within(INVENTORY_DEADLINE, f"the inventory of {hosts} hosts on {base}/metrics"),
    ):
        while True:
            alive()
            async with session.get(f"{base}/metrics") as r:
                if needle in await r.read():
                    return time.monotonic() - began
            await asyncio.sleep(INVENTORY_POLL)


def simulator_argv(port: int, hosts: int, monitors: int) -> list[str]:
    """A standalone, quiet simulator with limits raised so that a large inventory loads quickly."""
    return [
        *(sys.executable, "-m", "exporter.demo.simulator", "--port", str(port), "--quiet"),
        *("--hosts", str(hosts), "--monitors", str(monitors)),
        *("--account-sid", SID, "--auth-token", TOKEN),
        *("--hourly-limit", "1000000", "--per-second-limit", "1000"),
    ]


def large_config(tmp: Path, sim_port: int) -> Path:
    """The large-account exporter's config: a generous budget, webhooks and HetrixTools on."""
    config = {
        "api": {"base_url": f"http://{LOOPBACK}:{sim_port}/4.0", "page_size": LARGE_PAGE_SIZE},
        "budget": {"requests_per_hour": 100000, "allow_over_limit": True, "requests_per_second": 50},
        "webhooks": {
            "enabled": True,
            "secrets": [SECRET],
            "hetrixtools_token": HX_TOKEN,
            "max_body_bytes": MAX_BODY_BYTES,
        },
        "state": {"path": str(tmp / "large.sqlite")},
        "log": {"level": "warning"},
    }
    path = tmp / "large.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def large_account(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """On an account of --large-hosts hosts and --large-monitors monitors: the latency, the
    HetrixTools chunks pushed, the latency again."""
    sim_port, port = free_port(), free_port()
    env = exporter_env(GENERATORLABS_ACCOUNT_SID=SID, GENERATORLABS_AUTH_TOKEN=TOKEN)
    argv = [sys.executable, "-m", "exporter", "--config.file", str(large_config(tmp, sim_port))]
    argv += ["--web.listen-address", f"{LOOPBACK}:{port}"]
    log = tmp / "large-exporter.log"
    with (
        running(simulator_argv(sim_port, args.large_hosts, args.large_monitors), "the simulator"),
        running(argv, "the large-account exporter", env=env, log=log) as proc,
    ):
        base = f"http://{LOOPBACK}:{port}"
        await asyncio.to_thread(wait_ready, f"{base}/-/ready", proc, "the large-account exporter", log)
        alive = exited(proc, "the large-account exporter", log)
        loaded = await wait_for_inventory(base, alive, args.large_hosts)
        before = await latency(base, args.rounds)
        pushed = await hetrix(base, args.hetrix_chunks)
        after = await latency(base, args.rounds, first=args.rounds)
        alive()
    return {
        "hosts": args.large_hosts,
        "monitors": args.large_monitors,
        "inventory_loaded_after_s": round(loaded, 1),
        "webhook_to_metrics": before,
        "hetrixtools_http": pushed,
        "webhook_to_metrics_after_hetrix": after,
    }


def demo_config(tmp: Path) -> Path:
    """The demo exporter's config: webhooks on, HetrixTools token set, state in `tmp`."""
    path = tmp / "config.yaml"
    webhooks = {
        "enabled": True,
        "secrets": [SECRET],
        "hetrixtools_token": HX_TOKEN,
        "max_body_bytes": MAX_BODY_BYTES,
    }
    state = {"path": str(tmp / "state.sqlite")}
    path.write_text(yaml.safe_dump({"webhooks": webhooks, "state": state, "log": {"level": "warning"}}))
    return path


async def demo_account(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Throughput against the bare server, latency and HetrixTools chunks on the demo exporter."""
    bare_port, port = free_port(), free_port()
    bare_base, base = f"http://{LOOPBACK}:{bare_port}", f"http://{LOOPBACK}:{port}"
    argv = [sys.executable, "-m", "exporter", "--demo", "--config.file", str(demo_config(tmp))]
    argv += ["--web.listen-address", f"{LOOPBACK}:{port}"]
    log = tmp / "demo-exporter.log"
    with (
        running([sys.executable, "-c", BARE.replace("{port}", str(bare_port))], "the bare server") as bare,
        running(argv, "the demo exporter", env=exporter_env(XDG_STATE_HOME=str(tmp)), log=log) as proc,
    ):
        await asyncio.to_thread(wait_ready, f"{bare_base}/", bare, "the bare server")
        await asyncio.to_thread(wait_ready, f"{base}/-/ready", proc, "the demo exporter", log)
        intake = await throughput(
            f"{bare_base}/webhooks/generatorlabs", f"{base}/webhooks/generatorlabs", args
        )
        demo_latency = await latency(base, args.rounds)
        pushed = await hetrix(base, args.hetrix_chunks)
        exited(proc, "the demo exporter", log)()
    return {"intake": intake, "webhook_to_metrics": demo_latency, "hetrixtools_http": pushed}


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    demo = await demo_account(tmp, args)
    return {
        "demo_account": demo,
        "hetrixtools_in_process": await hetrix_in_process(tmp, args.hetrix_chunks),
        "large_account": await large_account(tmp, args),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.webhooks", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--runs", type=int, default=RUNS, help="throughput runs on each server, alternately")
    p.add_argument("--seconds", type=float, default=4, help="seconds of load in each run")
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
    p.add_argument("--out", type=Path, default=RESULTS, help="directory of webhooks.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Exit status 0: measured and written; 1: a deadline passed, a process died or an answer was wrong."""
    args = parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="generatorlabs-bench-webhooks-") as tmp:
            result = asyncio.run(run(args, Path(tmp)))
    except Failed as err:
        print(f"bench.webhooks: {err}", file=sys.stderr)
        return 1
    result["options"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "webhooks.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
