"""The summary of a `python -m bench` run: figures (figure, value, goal, how measured) built from
each benchmark's results, written as summary.json and as the markdown table summary.md that the
README's figures are copied from. The goals are issue 9's ("Performance at scale"); "no
regression" marks a figure kept from before it, to be compared with the README's.

Pure, except `write`, which writes the two files."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Row = dict[str, str]
Results = Mapping[str, Any]

NO_REGRESSION = "no regression (README)"
LATENCY_GOAL = "p50 ≤ 100 ms, p99 ≤ 250 ms"
MB = 1024 * 1024


def row(figure: str, value: str, goal: str, how: str) -> Row:
    return {"figure": figure, "value": value, "goal": goal, "how": how}


def med(s: Mapping[str, float], unit: str = "", digits: int = 0) -> str:
    """A spread from bench.stats as "median (min, max; n runs)"."""
    f = f"{{:,.{digits}f}}"
    low, high = f.format(s["min"]), f.format(s["max"])
    return f"{f.format(s['median'])}{unit} (min {low}, max {high}; {s['runs']} runs)"


def lat(d: Mapping[str, Any]) -> str:
    p50, p99, top = (f"{d[k]:,.0f} ms" for k in ("p50_ms", "p99_ms", "max_ms"))
    return f"p50 {p50}, p99 {p99}, max {top} ({d['rounds']} webhooks)"


def budget_rows(r: Any) -> list[Row]:
    out = []
    how = "bench.budget: the real scheduler on the in-process simulator, fake clock, {h:g} simulated hours"
    for size in r:
        n = f"{size['hosts']:,} hosts, {size['monitors']:,} monitors"
        value = (
            f"{size['max_requests_in_any_rolling_hour']} in the busiest hour "
            f"(planned {size['planned_requests_per_hour']}/h)"
        )
        fresh = (
            f"listings every {size['listings_refresh_gap_p50_s']} s (worst gap "
            f"{size['listings_refresh_gap_max_s']} s), hosts every {size['hosts_interval_s']} s"
        )
        out.append(
            row(
                f"budget, {n}: requests",
                value,
                "≤ 900 (the default budget); " + NO_REGRESSION,
                how.format(h=size["simulated_hours"]),
            )
        )
        out.append(
            row(f"budget, {n}: freshness", fresh, NO_REGRESSION, how.format(h=size["simulated_hours"]))
        )
    return out


def webhook_rows(r: Any) -> list[Row]:
    intake, large = r["demo_account"]["intake"], r["large_account"]
    load = (
        f"bench.webhooks: {intake['concurrency']} connections, "
        f"{intake['runs']} alternating runs of {intake['seconds_per_run']:g} s"
    )
    share = intake["share_of_bare"]
    sizes = f"{large['hosts']:,} hosts + {large['monitors']:,} monitors"
    hx = large["hetrixtools_http"]
    poll = "bench.webhooks: signed rbl.host.listed posted, /metrics polled (gzip) until it shows"
    return [
        row(
            "webhooks/s, signed and durably stored",
            med(intake["exporter_signed_durable_rps"]),
            NO_REGRESSION,
            load,
        ),
        row("webhooks/s, bare aiohttp 204 (baseline)", med(intake["bare_aiohttp_204_rps"]), "-", load),
        row(
            "share of bare aiohttp",
            med({k: v * 100 for k, v in share.items() if k != "runs"} | {"runs": share["runs"]}, " %"),
            NO_REGRESSION,
            load,
        ),
        row(
            "webhook answer time",
            f"p50 {med(intake['exporter_answer_p50_ms'], ' ms', 1)}",
            NO_REGRESSION,
            load,
        ),
        row(
            "webhook → /metrics, demo account",
            lat(r["demo_account"]["webhook_to_metrics"]),
            NO_REGRESSION,
            poll,
        ),
        row(f"webhook → /metrics, {sizes}", lat(large["webhook_to_metrics"]), LATENCY_GOAL, poll),
        row(
            f"webhook → /metrics, {sizes}, after {hx['monitors_on_metrics']:,} HetrixTools monitors",
            lat(large["webhook_to_metrics_after_hetrix"]),
            LATENCY_GOAL,
            poll,
        ),
        row(
            "HetrixTools 512 KB chunk, in process (parse, commit, apply)",
            med(r["hetrixtools_in_process"]["chunk_ms"], " ms", 1),
            NO_REGRESSION,
            "bench.webhooks, no HTTP",
        ),
        row(
            f"HetrixTools chunks over HTTP, {sizes}",
            f"{hx['accepted']}/{hx['chunks']} accepted, all on /metrics after {hx['all_visible_after_s']} s",
            NO_REGRESSION,
            "bench.webhooks: posted back to back",
        ),
    ]


def render_rows(r: Any) -> list[Row]:
    n = f"{r['samples']:,} samples ({r['hosts']:,} hosts, {r['monitors']:,} monitors)"
    how = "bench.render_scrape: full render from scratch vs generate_latest over labelled Gauges, same run"
    scrape = "bench.render_scrape: the real app over loopback, one scrape after the other"
    gz, plain = r["scrape_gzip_ms"], r["scrape_identity_ms"]
    return [
        row(f"full render, {n}", med(r["full_render_ms"], " ms"), NO_REGRESSION, how),
        row(f"generate_latest, {n} (baseline)", med(r["baseline_generate_latest_ms"], " ms"), "-", how),
        row("full render vs generate_latest", f"{r['render_speedup']}x faster", "≥ 20x", how),
        row("gzip stream prepared after a render", med(r["gzip_prepare_ms"], " ms"), NO_REGRESSION, how),
        row(
            f"scrape, gzip ({r['scrape_gzip_bytes'] / MB:.1f} MB)",
            f"p50 {gz['median']} ms, p99 {gz['p99']} ms ({gz['runs']} scrapes)",
            NO_REGRESSION,
            scrape,
        ),
        row(
            f"scrape, uncompressed ({r['scrape_identity_bytes'] / MB:.1f} MB)",
            f"p50 {plain['median']} ms, p99 {plain['p99']} ms ({plain['runs']} scrapes)",
            NO_REGRESSION,
            scrape,
        ),
    ]


def exposition_rows(r: Any) -> list[Row]:
    how = "bench.exposition: the real app over loopback, per setting and size"
    out = []
    for e in r:
        goal = "a documented, lighter option for large accounts" if e["hosts"] >= 100_000 else "-"
        value = (
            f"{e['series']:,} series, {e['bytes_raw'] / MB:.1f} MB raw, {e['bytes_gzip'] / MB:.2f} MB gzip; "
            f"scrape {e['scrape_gzip_ms']['median']} ms gzip, {e['scrape_identity_ms']['median']} ms raw"
        )
        out.append(row(f"exposition, {e['hosts']:,} hosts, setting {e['setting']}", value, goal, how))
    return out


def memory_rows(r: Any) -> list[Row]:
    out = []
    goal = "≤ 200 MB, peak included"
    if "process" in r:
        p = r["process"]
        how = f"bench.memory: real exporter vs simulator; VmRSS every {p['sample_every_s']} s, peak VmHWM"
        size = f"{p['hosts']:,} hosts + {p['monitors']:,} monitors"
        for phase, label in (("first_inventory", "first full inventory"), ("scrapes", "repeated scrapes")):
            ph = p[phase]
            rss = ph["rss_mb"]
            value = (
                f"peak {ph['peak_vmhwm_mb']} MB; RSS sampled: max {rss['max']} MB, "
                f"median {rss['median']} MB, at the end {ph.get('rss_at_end_mb')} MB"
            )
            out.append(row(f"resident memory, {size}, {label}", value, goal, how + f" ({ph['seconds']:g} s)"))
    if "allocations" in r:
        a = r["allocations"]
        top = "; ".join(f"{t['where']} {t['mb']} MB" for t in a["top_lines"])
        out.append(
            row(
                f"traced allocations, {a['hosts']:,} hosts (in process)",
                f"{a['traced_mb']} MB; top: {top}",
                "find where it goes",
                "bench.memory: tracemalloc, state built through the public API",
            )
        )
    return out


def soak_rows(r: Any) -> list[Row]:
    bad = {k: v for k, v in {**r["invariants"], **r["also_checked"]}.items() if v}
    value = "every invariant 0" if not bad else ", ".join(f"{k} {v}" for k, v in bad.items())
    o = r["options"]
    how = f"bench.soak: {o['hours']:g} simulated hours, {o['hosts']} hosts, {o['kills']} real SIGKILLs"
    return [row("chaos soak", value, "every invariant 0", how)]


def fuzz_rows(r: Any) -> list[Row]:
    t = r["totals"]
    value = (
        f"{t['examples_run']:,} examples in {t['property_tests']} property tests, "
        f"{t['examples_failed']} failed; {t['tests_failed']} tests failed"
    )
    return [
        row(
            "property tests, long profile",
            value,
            "0 failed",
            f"bench.fuzz: FUZZ_EXAMPLES={r['fuzz_examples']}",
        )
    ]


ROWS: dict[str, Callable[[Any], list[Row]]] = {
    "budget": budget_rows,
    "webhooks": webhook_rows,
    "render_scrape": render_rows,
    "exposition": exposition_rows,
    "memory": memory_rows,
    "soak": soak_rows,
    "fuzz": fuzz_rows,
}


def figures(runs: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """Every figure of the benchmarks that ran; one row naming each that failed."""
    out: list[Row] = []
    for name, run in runs.items():
        if run["status"] != "ok":
            out.append(
                row(
                    f"{name}: FAILED",
                    run["message"].replace("\n", " ")[:300],
                    "-",
                    f"exit status {run['exit_code']}",
                )
            )
            continue
        try:
            out += ROWS[name](run["results"])
        except (KeyError, TypeError, ValueError) as err:
            out.append(row(f"{name}: results not understood", repr(err), "-", f"{name}.json"))
    return out


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(summary: Mapping[str, Any]) -> str:
    """The figures as a markdown table, then each benchmark's status and time."""
    lines = [
        f"# Benchmarks ({summary['mode']} run, {summary['started']})",
        "",
        f"Machine: {summary['machine']}. Written by `python -m bench`; figures from each benchmark's JSON.",
        "",
        "| figure | value | goal (issue 9) | how measured |",
        "|---|---|---|---|",
        *(
            f"| {cell(r['figure'])} | {cell(r['value'])} | {cell(r['goal'])} | {cell(r['how'])} |"
            for r in summary["figures"]
        ),
        "",
        "| benchmark | status | seconds |",
        "|---|---|---|",
        *(f"| {name} | {run['status']} | {run['seconds']} |" for name, run in summary["benchmarks"].items()),
    ]
    alloc = summary["benchmarks"].get("memory", {}).get("results", {}).get("allocations")
    if alloc:
        lines += ["", f"Top allocation sites at {alloc['hosts']:,} hosts (tracemalloc, in process):", ""]
        lines += ["| where | MB | blocks | code |", "|---|---|---|---|"]
        lines += [
            f"| {t['where']} | {t['mb']} | {t['blocks']:,} | `{cell(t.get('code', ''))}` |"
            for t in alloc["top_lines"]
        ]
    return "\n".join(lines) + "\n"


def write(out: Path, summary: Mapping[str, Any]) -> None:
    """summary.json and summary.md into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    (out / "summary.md").write_text(markdown(summary))
