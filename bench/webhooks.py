"""Benchmark: signed webhooks per second with durable storage, beside a bare aiohttp handler
answering 204 (the ceiling of this stack); HetrixTools 512 KB chunks; webhook-to-/metrics latency.

Starts the real exporter (`--demo`, webhooks on, state in a temporary SQLite file) and a bare
aiohttp server as separate processes, and drives both with the same aiohttp load generator
(this process) over loopback.

    python -m bench.webhooks [--seconds 10] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from exporter.webhooks.signature import sign
from tests.helpers.processes import free_port

SECRET = "whsec_bench_secret_value"
HX_TOKEN = "hx-bench-token-0123456789abcdef"
BARE = """
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(status=204)
app = web.Application()
app.router.add_post("/webhooks/generatorlabs", ok)
web.run_app(app, host="127.0.0.1", port={port}, access_log=None, print=None)
"""


def wait_ready(url: str) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - loopback
                if r.status < 500:
                    return
        except urllib.error.HTTPError as err:
            if err.code < 500:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"not ready: {url}")


def body(i: int) -> bytes:
    return json.dumps({"event_sid": "TA" + secrets.token_hex(16),
                       "event_type": "billing.renewal.success", "event_date": "2026-11-22T00:00:00Z",
                       "plan": {"id": f"PL{i}"}, "payment": {}}).encode()


async def load(url: str, seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        i = 0
        while time.monotonic() < stop:
            raw = body(i)
            i += 1
            headers = {"Content-Type": "application/json",
                       "X-Webhook-Signature": sign(raw, SECRET, int(time.time()))}
            start = time.perf_counter()
            async with session.post(url, data=raw, headers=headers) as r:
                await r.read()
                if r.status not in (200, 204):
                    errors += 1
            latencies.append(time.perf_counter() - start)

    began = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.monotonic() - began
    latencies.sort()
    return {"requests": len(latencies), "errors": errors, "rps": round(len(latencies) / elapsed),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2)}


def chunk_512k(start: int) -> bytes:
    items = [{"monitor": f"mx{start + i}.example.net", "label": f"bench {start + i}",
              "blacklisted_before": "28", "blacklisted_now": "29",
              "blacklisted_on": [{"rbl": f"rbl{j}.blacklist.example.org",
                                  "delist": f"https://rbl{j}.blacklist.example.org/delist?ip={start + i}&"
                                            + "x" * 60} for j in range(29)],
              "links": {"report_link": "https://hetrixtools.com/report/blacklist/" + "a" * 32 + "/",
                        "whitelabel_report_link": "http://status.example/report/" + "b" * 32 + "/"}}
             for i in range(100)]
    return json.dumps(items).encode()


async def hetrix(base: str) -> dict[str, float]:
    url = f"{base}/webhooks/hetrixtools/{HX_TOKEN}"
    chunks = [chunk_512k(k * 100) for k in range(100)]
    times, statuses = [], []
    async with aiohttp.ClientSession() as session:
        for c in chunks:  # back to back, as HetrixTools sends them
            start = time.perf_counter()
            async with session.post(url, data=c, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                statuses.append(r.status)
            times.append(time.perf_counter() - start)
        # every accepted monitor must show up; how long the renderer takes to catch up is reported
        start, present = time.perf_counter(), 0
        while present < 10_000 and time.perf_counter() - start < 30:
            async with session.get(f"{base}/metrics") as r:
                present = (await r.text()).count('hetrixtools_blacklist_monitor_info{monitor="mx')
        visible_after = time.perf_counter() - start
    return {"chunk_bytes": len(chunks[0]), "chunks": len(chunks),
            "accepted": statuses.count(200), "statuses": sorted(set(statuses)),
            "monitors_on_metrics": present, "all_visible_after_s": round(visible_after, 2),
            "chunk_ms_p50": round(statistics.median(times) * 1000, 1),
            "chunk_ms_max": round(max(times) * 1000, 1)}


async def hetrix_in_process(tmp: Path) -> dict[str, float]:
    """What the receiver does with one 512 KB chunk: parse, commit to SQLite, apply."""
    from exporter.state.sqlite import Incoming, StateDB
    from exporter.webhooks.overlay import WebhookState
    from exporter.webhooks.payloads import parse_hetrix_chunk

    db = StateDB(str(tmp / "inproc.sqlite"))
    await db.open()
    state, times = WebhookState(), []
    for k in range(100):
        raw = chunk_512k(k * 100)
        start = time.perf_counter()
        monitors = parse_hetrix_chunk(raw)
        await db.accept([Incoming("hetrixtools", (), raw, time.time(), 0)])
        state.apply_hetrix(monitors, time.time())
        times.append(time.perf_counter() - start)
    await db.close()
    return {"chunks": 100, "monitors": len(state.hetrix),
            "ms_p50": round(statistics.median(times) * 1000, 1), "ms_max": round(max(times) * 1000, 1)}


async def latency(base: str, rounds: int = 20) -> dict[str, float]:
    """Arrival of a signed rbl.host.listed to the changed value on /metrics."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/metrics") as r:
            text = await r.text()
        hosts = [line.split('"')[1] for line in text.splitlines()
                 if line.startswith("generatorlabs_rbl_host_listed{")]
        out = []
        for k in range(rounds):
            host = hosts[k % len(hosts)]
            now = time.time()
            raw = json.dumps({"event_sid": "TA" + secrets.token_hex(16), "event_type": "rbl.host.listed",
                              "event_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 1)),
                              "host": {"id": host}, "listed": True, "total": 1,
                              "details": [{"host": f"Bench RBL {k}"}]}).encode()
            start = time.perf_counter()
            async with session.post(f"{base}/webhooks/generatorlabs", data=raw, headers={
                    "Content-Type": "application/json",
                    "X-Webhook-Signature": sign(raw, SECRET, int(now))}) as r:
                assert r.status == 204, r.status
            needle = f'rbl="Bench RBL {k}"'
            while True:  # poll every 50 ms: a tighter loop would steal the renderer's CPU
                async with session.get(f"{base}/metrics") as r:
                    if needle in await r.text():
                        break
                await asyncio.sleep(0.05)
            out.append(time.perf_counter() - start)
    out.sort()
    return {"rounds": rounds, "p50_ms": round(out[len(out) // 2] * 1000), "max_ms": round(out[-1] * 1000)}


def large_account_latency(tmp: Path) -> dict[str, Any]:
    """Webhook-to-/metrics latency on an account of 20,000 hosts and 5,000 monitors (the
    exporter polls a standalone simulator with a raised limit so the inventory loads quickly)."""
    sim_port, port = free_port(), free_port()
    sid, token = "AC" + "2" * 32, "d" * 64
    sim = subprocess.Popen([sys.executable, "-m", "exporter.demo.simulator", "--port", str(sim_port),
                            "--hosts", "20000", "--monitors", "5000", "--quiet", "--account-sid", sid,
                            "--auth-token", token, "--hourly-limit", "1000000",
                            "--per-second-limit", "1000"], stdout=subprocess.DEVNULL)
    (tmp / "large.yaml").write_text(yaml.safe_dump({
        "api": {"base_url": f"http://127.0.0.1:{sim_port}/4.0", "page_size": 500},
        "budget": {"requests_per_hour": 100000, "allow_over_limit": True, "requests_per_second": 50},
        "webhooks": {"enabled": True, "secrets": [SECRET]},
        "state": {"path": str(tmp / "large.sqlite")}, "log": {"level": "warning"}}))
    env = {**os.environ, "GENERATORLABS_ACCOUNT_SID": sid, "GENERATORLABS_AUTH_TOKEN": token}
    exporter = subprocess.Popen([sys.executable, "-m", "exporter", "--config.file", str(tmp / "large.yaml"),
                                 "--web.listen-address", f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL,
                                env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/-/ready")
        end = time.monotonic() + 120
        while time.monotonic() < end:  # wait for the whole inventory
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:  # noqa: S310 - loopback
                if b"generatorlabs_rbl_hosts 20000" in r.read():
                    break
            time.sleep(1)
        return asyncio.run(latency(base))
    finally:
        for proc in (exporter, sim):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=64)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "config.yaml").write_text(yaml.safe_dump({
        "webhooks": {"enabled": True, "secrets": [SECRET], "hetrixtools_token": HX_TOKEN,
                     "max_body_bytes": 1024 * 1024},
        "state": {"path": str(tmp / "state.sqlite")}, "log": {"level": "warning"}}))
    bare_port, port = free_port(), free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE.replace("{port}", str(bare_port))])
    exporter = subprocess.Popen([sys.executable, "-m", "exporter", "--demo", "--config.file",
                                 str(tmp / "config.yaml"), "--web.listen-address", f"127.0.0.1:{port}"],
                                stderr=subprocess.DEVNULL, env={**os.environ, "XDG_STATE_HOME": str(tmp)})
    try:
        wait_ready(f"http://127.0.0.1:{bare_port}/")
        wait_ready(f"http://127.0.0.1:{port}/-/ready")
        base = f"http://127.0.0.1:{port}"
        ceiling = asyncio.run(load(f"http://127.0.0.1:{bare_port}/webhooks/generatorlabs",
                                   args.seconds, args.concurrency))
        ours = asyncio.run(load(f"{base}/webhooks/generatorlabs", args.seconds, args.concurrency))
        result = {"bare_aiohttp_204": ceiling, "exporter_signed_durable": ours,
                  "share_of_ceiling": round(ours["rps"] / ceiling["rps"], 2),
                  "webhook_to_metrics_demo_account": asyncio.run(latency(base)),
                  "hetrixtools_http": asyncio.run(hetrix(base)),
                  "hetrixtools_in_process": asyncio.run(hetrix_in_process(tmp)),
                  "webhook_to_metrics_after_10000_hetrix_monitors": asyncio.run(latency(base))}
        result["webhook_to_metrics_20000_hosts_5000_monitors"] = large_account_latency(tmp)
    finally:
        for proc in (bare, exporter):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "webhooks.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
