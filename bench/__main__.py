"""`python -m bench`: every benchmark, one after the other, each in a process (group) of its own
with a wall-clock deadline, then the summary: <out>/summary.json and the markdown table
<out>/summary.md (see bench.report).

A benchmark that fails (non-zero exit, or its deadline: SIGTERM to its process group, a bounded
wait, then SIGKILL) is reported in the summary with its message, and the run goes on with the
next; the exit status is 1 if any failed. Each benchmark's output goes to <out>/logs/<name>.log.

I/O: subprocesses, the results directory.

    python -m bench [--quick] [--only NAME[,NAME]] [--out bench/results]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
STOP_GRACE = 20.0  # seconds a benchmark has to exit after SIGTERM, then again after SIGKILL
MESSAGE_TAIL = 2000  # characters of a failed benchmark's output kept as its message


@dataclass(frozen=True)
class Bench:
    """One benchmark: its module, its arguments for a full and a quick run, and its deadlines."""

    name: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    full_deadline: float
    quick_deadline: float
    writes_to_out: bool = True  # whether it takes --out (bench.soak always writes bench/results/)


QUICK_WEBHOOKS = (
    *("--runs", "3", "--seconds", "2", "--rounds", "10", "--hetrix-chunks", "20"),
    *("--large-hosts", "2000", "--large-monitors", "200"),
)
BENCHES = (
    Bench("budget", ("--hours", "24"), ("--hours", "2"), 900, 240),
    Bench(
        "webhooks",
        (),
        QUICK_WEBHOOKS,
        1200,
        300,
    ),
    Bench(
        "render_scrape",
        (),
        ("--hosts", "2000", "--monitors", "500", "--scrapes", "20", "--repeat", "5"),
        600,
        180,
    ),
    Bench("exposition", (), ("--sizes", "20,5000", "--scrapes", "3"), 900, 180),
    Bench("memory", (), ("--hosts", "5000", "--monitors", "250", "--scrape-seconds", "10"), 1500, 300),
    Bench("soak", ("--hours", "24", "--kills", "3"), ("--hours", "1", "--kills", "1"), 900, 300, False),
    Bench(
        "fuzz",
        ("--examples", "300", "--deadline", "600"),
        ("--examples", "20", "--deadline", "200"),
        700,
        260,
    ),
)
NAMES = tuple(b.name for b in BENCHES)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the benchmark's process group, a bounded wait, then SIGKILL to the group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=STOP_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue
    print(f"bench: pid {proc.pid} survived SIGKILL for {STOP_GRACE:g} s", file=sys.stderr)


def tail(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    mine = [line for line in text.splitlines() if line.startswith("bench")]
    return "\n".join(mine[-3:]) if mine else text[-MESSAGE_TAIL:]


def execute(bench: Bench, quick: bool, out: Path) -> dict[str, Any]:
    """Run one benchmark in its own process group, bounded by its deadline: status and results."""
    argv = [sys.executable, "-m", f"bench.{bench.name}", *(bench.quick if quick else bench.full)]
    if bench.writes_to_out:
        argv += ["--out", str(out)]
    deadline = bench.quick_deadline if quick else bench.full_deadline
    log = out / "logs" / f"{bench.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    print(f"bench: {bench.name} (deadline {deadline:g} s): {' '.join(argv[1:])}", flush=True)
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            stop_group(proc)  # also whatever it started and left behind
    seconds = round(time.monotonic() - began, 1)
    if code is None:
        message = f"bench.{bench.name} did not finish within its deadline of {deadline:g} s; stopped"
        return {"status": "failed", "exit_code": None, "seconds": seconds, "message": message}
    if code != 0:
        return {"status": "failed", "exit_code": code, "seconds": seconds, "message": tail(log)}
    return {"status": "ok", "exit_code": 0, "seconds": seconds, "results": collect(bench, out)}


def collect(bench: Bench, out: Path) -> Any:
    """The benchmark's results file (bench.soak's copied into `out` when `out` is elsewhere)."""
    written = (out if bench.writes_to_out else RESULTS) / f"{bench.name}.json"
    if written.parent.resolve() != out.resolve():
        shutil.copyfile(written, out / written.name)
    return json.loads(written.read_text())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, a few minutes in total (a smoke run)")
    p.add_argument("--only", help=f"comma-separated benchmarks to run, of {', '.join(NAMES)}")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory of the results and the summary")
    args = p.parse_args(argv)
    only = args.only.split(",") if args.only else list(NAMES)
    unknown = [n for n in only if n not in NAMES]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    args.only = only
    return args


def main(argv: list[str] | None = None) -> int:
    """Exit status 0: every benchmark ran; 1: one failed or overran its deadline."""
    args = parse_args(argv)
    out: Path = args.out.resolve()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    runs = {}
    for bench in BENCHES:
        if bench.name in args.only:
            runs[bench.name] = execute(bench, args.quick, out)
            print(
                f"bench: {bench.name}: {runs[bench.name]['status']} in {runs[bench.name]['seconds']} s",
                flush=True,
            )
    python = platform.python_version()
    machine = f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.system()}, Python {python}"
    summary = {
        "mode": "quick" if args.quick else "full",
        "started": started,
        "machine": machine,
        "figures": report.figures(runs),
        "benchmarks": runs,
    }
    report.write(out, summary)
    print(report.markdown(summary))
    failed = [name for name, run in runs.items() if run["status"] != "ok"]
    for name in failed:
        print(f"bench: {name} failed: {runs[name]['message']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
