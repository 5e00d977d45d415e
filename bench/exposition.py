"""Benchmark: what the exposition costs under each exposition setting, by account size.

For each account size (--sizes, hosts; monitors as in bench.budget: one per 20 hosts, at least
10) and each setting of SETTINGS (config keys, as in the YAML file), an exporter on an in-memory
state holding the account's snapshots serves its real aiohttp app on loopback, and this measures:
series on /metrics (sample lines), bytes uncompressed and gzipped, and scrape times (median and
spread, gzip and uncompressed), and how long loading the state and its first render took.

There is one setting today, "default" ({}); a setting for large accounts is added by listing it
in SETTINGS (e.g. "per_host_listed": {"exposition": {"per_host": "listed"}}), or picked with
--settings. A setting the exporter's config refuses fails the run with the config's message.

Every wait has a deadline (see bench.render_scrape); one that passes fails the run (exit status 2)
with a message naming what was awaited.

I/O: a loopback HTTP server and its client, and the results file <out>/exposition.json.

    python -m bench.exposition [--sizes 20,5000,100000] [--scrapes 5] [--settings default]
                               [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.budget import monitors_for
from bench.harness import Failed
from bench.render_scrape import (
    GZIP,
    IDENTITY,
    FrozenClock,
    app_of,
    loaded_exporter,
    samples_in,
    scrape_times,
    snapshots,
)
from bench.stats import MS, spread
from exporter.errors import ConfigError

RESULTS = Path(__file__).parent / "results"
SIZES = (20, 5_000, 100_000)

# Each exposition setting measured: its name and the config keys that select it.
SETTINGS: dict[str, Mapping[str, Any]] = {
    "default": {},
    "per_host_listed": {"exposition": {"per_host": "listed"}},
}


async def one(hosts: int, setting: str, scrapes: int) -> dict[str, Any]:
    """The cost of the exposition of an account of `hosts` hosts under `setting`."""
    now = time.time()
    monitors = monitors_for(hosts)
    snaps = snapshots(hosts, monitors, now)
    clock = FrozenClock(now)
    async with contextlib.AsyncExitStack() as lifetime:
        began = time.perf_counter()
        try:
            exporter = await loaded_exporter(lifetime, snaps, clock, SETTINGS[setting])
        except ConfigError as err:
            raise Failed(f"the exporter refuses setting {setting!r}: {err}") from err
        loaded = time.perf_counter() - began
        gz, gz_body = await scrape_times(app_of(exporter, clock), scrapes, GZIP)
        plain, plain_body = await scrape_times(app_of(exporter, clock), scrapes, IDENTITY)
    return {
        "setting": setting,
        "config": dict(SETTINGS[setting]),
        "hosts": hosts,
        "monitors": monitors,
        "series": samples_in(plain_body),
        "bytes_raw": len(plain_body),
        "bytes_gzip": len(gz_body),
        "load_and_first_render_s": round(loaded, 2),
        "scrape_gzip_ms": spread(gz, MS),
        "scrape_identity_ms": spread(plain, MS),
    }


async def measure(sizes: list[int], settings: list[str], scrapes: int) -> list[dict[str, Any]]:
    out = []
    for hosts in sizes:
        for setting in settings:
            row = await one(hosts, setting, scrapes)
            print(json.dumps({k: v for k, v in row.items() if not isinstance(v, dict)}), flush=True)
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    """Exit status 0: measured and written; 2: a wait passed its deadline or a setting was refused."""
    p = argparse.ArgumentParser(prog="python -m bench.exposition", description=(__doc__ or "").split("\n")[0])
    p.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="account sizes in hosts, comma-separated"
    )
    p.add_argument("--scrapes", type=int, default=5, help="scrapes timed per size, setting and encoding")
    p.add_argument(
        "--settings", default=",".join(SETTINGS), help=f"settings measured, of {', '.join(SETTINGS)}"
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="directory of exposition.json")
    args = p.parse_args(argv)
    settings = args.settings.split(",")
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        p.error(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    try:
        rows = asyncio.run(measure([int(n) for n in args.sizes.split(",")], settings, args.scrapes))
    except Failed as err:
        print(f"bench.exposition: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "exposition.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
