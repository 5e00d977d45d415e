"""The soak's results: the invariants read off what the simulated API saw (budget overruns, the
Authorization header sent to another host, stalls), the results dictionary written to
bench/results/soak.json, and its human summary.

No I/O: pure functions of the soak's records."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from bench.soak_record import LogSink, Record
from exporter.demo.simulator.api import SimulatedApi

STALL_SECONDS = 3600.0 + 600.0  # Retry-After and RateLimit-Reset are capped at one hour
HOUR = 3600.0
# each must be 0; a failed one makes the exit status 1
MAIN_INVARIANTS = (
    "budget_overruns",
    "crashes",
    "unapplied_acknowledged_webhooks",
    "invalid_expositions",
    "secrets_in_logs",
)
OTHER_INVARIANTS = (
    "clean_answers_rejected",
    "hosts_dropped",
    "acknowledged_webhooks_applied_twice",
    "authorization_sent_to_other_host",
    "stalls",
    "objects_missing_after_recovery",
    "overruns",
)


# ---- invariants read off the simulated API ---------------------------------------------------


def check_budget(times: Sequence[float], budget: int, record: Record) -> None:
    """No rolling hour at the simulator holds more than `budget` requests."""
    over, lo, worst = 0, 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - HOUR:
            lo += 1
        worst = max(worst, hi - lo + 1)
        if hi - lo + 1 > budget:
            over += 1
    record.counts["max_requests_in_a_rolling_hour"] = worst
    if over:
        record.fail(
            "budget_overruns",
            f"{over} requests over the budget of {budget}/h (the worst rolling hour held {worst})",
            n=over,
        )


def check_other_host(api: SimulatedApi, record: Record) -> None:
    """No request to the other host (a cross-host redirect) carries an Authorization header."""
    leaks = [r for r in api.other_host_requests if r[2]]
    record.counts["other_host_requests"] = len(api.other_host_requests)
    if leaks:
        record.fail(
            "authorization_sent_to_other_host",
            f"{len(leaks)} requests to the other host carried an Authorization header "
            f"({sum(1 for r in leaks if r[3])} with the API credentials)",
            n=len(leaks),
        )


def check_stalls(api: SimulatedApi, start: float, end: float, record: Record) -> None:
    """No period longer than STALL_SECONDS without an API request, from `start` to `end`."""
    points = [start, *[t for t in api.received if t <= end], end]
    stalls = [(a, b) for a, b in itertools.pairwise(points) if b - a > STALL_SECONDS]
    record.counts["longest_gap_between_requests_s"] = round(
        max((b - a for a, b in itertools.pairwise(points)), default=0)
    )
    if not stalls:
        return
    record.fail(
        "stalls",
        f"{len(stalls)} periods without any API request longer than {STALL_SECONDS:.0f}s: "
        + ", ".join(f"+{a - start:.0f}s..+{b - start:.0f}s" for a, b in stalls[:5]),
        input="; ".join(
            f"+{t - start:.0f}s {p} {k} {d}"
            for t, p, k, d in api.recent
            if any(a - 60 <= t <= a + 60 for a, _ in stalls)
        )[:1500],
        n=len(stalls),
    )


# ---- the results -----------------------------------------------------------------------------


def invariant_counts(record: Record) -> dict[str, dict[str, int]]:
    """ "invariants" and "also_checked" of the results, as they stand in `record`."""
    inv = record.invariants
    return {
        "invariants": {k: inv.get(k, 0) for k in MAIN_INVARIANTS},
        "also_checked": {k: inv.get(k, 0) for k in OTHER_INVARIANTS},
    }


def _requests(api: SimulatedApi, record: Record) -> dict[str, Any]:
    return {
        "received_by_api": len(api.received),
        "accepted": len(api.accepted),
        "answered_429": api.rejected_429,
        "sent_by_exporter": record.counts["exporter_transport_requests"],
        "paths_outside_the_api": dict(api.unknown_routes.most_common(10)),
    }


def _webhooks(record: Record) -> dict[str, Any]:
    counts = record.counts
    return {
        "sent": counts["webhooks_sent"],
        "accepted": counts["webhooks_accepted"],
        "duplicates": counts["webhooks_duplicate"],
        "rejected": counts["webhooks_rejected"],
        "by_kind_and_status": dict(sorted(record.webhooks.items())),
    }


def _crashes(record: Record) -> dict[str, int]:
    counts = record.counts
    simulated = {
        k.removeprefix("crashes_simulated_"): v
        for k, v in counts.items()
        if k.startswith("crashes_simulated_")
    }
    return simulated | {"graceful_restarts": counts["graceful_restarts"]}


def _renders(record: Record, promtool_lint: Mapping[str, int]) -> dict[str, Any]:
    counts = record.counts
    return {
        "text": counts["renders_checked_text"],
        "openmetrics": counts["renders_checked_openmetrics"],
        "promtool": counts["renders_checked_promtool"],
        "promtool_lint": dict(promtool_lint),
    }


def _log(sink: LogSink) -> dict[str, Any]:
    return {
        "lines": sink.lines,
        "levels": dict(sink.levels),
        "top_events": dict(sink.events.most_common(25)),
    }


def assemble_results(
    *,
    options: Mapping[str, Any],
    promtool: str | None,
    record: Record,
    api: SimulatedApi,
    sink: LogSink,
    promtool_lint: Mapping[str, int],
    clock_odd_sleeps: Mapping[str, int],
    wall: float,
    phase_walls: Mapping[str, float],
) -> dict[str, Any]:
    """The results of the in-process soak, in the order bench/results/soak.json shows them."""
    return {
        "options": dict(options),
        "promtool": promtool,
        **invariant_counts(record),
        "requests": _requests(api, record),
        "faults_injected": dict(sorted(api.injected.items())),
        "webhooks": _webhooks(record),
        "crashes_simulated": _crashes(record),
        "renders_checked": _renders(record, promtool_lint),
        "counts": dict(sorted(record.counts.items())),
        "log": _log(sink),
        "clock_odd_sleeps": dict(clock_odd_sleeps),
        "wall_seconds": round(wall, 1),
        "phase_wall_seconds": dict(phase_walls),
        "findings": [vars(f) for f in record.findings],
    }


# ---- the summary -----------------------------------------------------------------------------


def _finding_lines(finding: Mapping[str, Any]) -> list[str]:
    lines = [f"FINDING [{finding['invariant']}] +{finding['at']}s {finding['what'][:300]}"]
    if finding["file"]:
        lines.append(f"    file: {finding['file']}")
    if finding["input"]:
        lines.append(f"    input: {finding['input'][:400]}")
    if finding["traceback"]:
        lines.append("    " + "\n    ".join(finding["traceback"].strip().splitlines()[-6:]))
    return lines


def summary(results: Mapping[str, Any]) -> str:
    """The results for a human: every invariant, what was done, and every finding."""
    lines = ["invariants (each must be 0):"]
    lines += [f"  {k:40s} {v}" for k, v in results["invariants"].items()]
    lines += [f"  {k:40s} {v}" for k, v in results["also_checked"].items()]
    r = results["requests"]
    lines.append(
        f"requests: {r['received_by_api']} received by the API ({r['accepted']} accepted, "
        f"{r['answered_429']} answered 429); max in a rolling hour "
        f"{results['counts'].get('max_requests_in_a_rolling_hour')} of {results['options']['budget']}"
    )
    lines.append(f"faults injected: {results['faults_injected']}")
    w = results["webhooks"]
    lines.append(
        f"webhooks: {w['sent']} sent, {w['accepted']} accepted, {w['duplicates']} duplicates, "
        f"{w['rejected']} rejected"
    )
    lines.append(f"crashes simulated: {results['crashes_simulated']}")
    if "real_sigkills" in results:
        k = results["real_sigkills"]
        lines.append(f"real SIGKILLs: {k['kills']} ({k['starts']} starts, ready in {k['ready_seconds']} s)")
    lines.append(f"renders checked: {results['renders_checked']}")
    lines.append(f"wall: {results['wall_seconds']} s {results['phase_wall_seconds']}")
    for finding in results["findings"]:
        lines += _finding_lines(finding)
    return "\n".join(lines)
