"""Profiling aid: where a full render of a large account spends its time, and a byte-exact dump
of its text to compare two versions of the renderer.

The account is bench.render_scrape's (20,000 hosts, 5,000 monitors, 5 % listed by default) at a
fixed time, so that two runs of different code render the same input. Modes:

- `time`: the full render's median over --repeat runs beside generate_latest's, and their ratio;
- `profile`: cProfile of --repeat full renders, the top --top functions by own time;
- `dump FILE`: the full render's text (both per-host settings, one after the other) into FILE.

I/O: writes FILE in `dump` mode; prints to stdout.

    python -m bench.profile_render {time,profile,dump} [FILE] [--hosts N] [--monitors N]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

from prometheus_client import generate_latest

from bench.render_scrape import baseline_registry, freshness_for, full_render, snapshots
from bench.stats import MS, ratio, spread, timed
from exporter.metrics.render import PER_HOST, Renderer

NOW = 1_700_000_000.0  # a fixed time: the same input in every run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.profile_render", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("mode", choices=("time", "profile", "dump"))
    p.add_argument("file", nargs="?", type=Path)
    p.add_argument("--hosts", type=int, default=20_000)
    p.add_argument("--monitors", type=int, default=5_000)
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    snaps = snapshots(args.hosts, args.monitors, NOW)
    freshness = freshness_for(snaps, NOW)
    if args.mode == "dump":
        if args.file is None:
            p.error("dump needs a FILE")
        texts = [
            b"".join(Renderer(per_host=setting, compress=False).update(snaps, freshness).parts(om))
            for setting in PER_HOST
            for om in (False, True)
        ]
        args.file.write_bytes(b"".join(texts))
        print(f"{sum(map(len, texts))} bytes written to {args.file}")
    elif args.mode == "profile":
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.repeat):
            full_render(snaps, freshness)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    else:
        ours = timed(lambda: full_render(snaps, freshness), args.repeat)
        registry = baseline_registry(full_render(snaps, freshness).decode())
        theirs = timed(lambda: generate_latest(registry), args.repeat)
        print(f"full render     {spread(ours, MS)}")
        print(f"generate_latest {spread(theirs, MS)}")
        print(f"ratio           {ratio(theirs, ours)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
