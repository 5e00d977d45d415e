"""A short chaos soak (bench.soak): two simulated hours of every API fault kind, 429 and redirect
storms, a crash in the middle of a webhook burst and a stream of hostile webhooks, through the
real app on loopback with a virtual clock. Every invariant must be 0. `python -m bench.soak`
runs the long version (24 simulated hours, several crashes, real SIGKILLs)."""

from __future__ import annotations

import json

from bench.soak import Options, run_soak, summary


def test_a_short_soak_breaks_no_invariant() -> None:
    results = run_soak(
        Options(
            hours=2,
            hosts=60,
            budget=120,
            kills=0,
            recovery_minutes=60,
            intensity=3.0,
            hostile_per_tick=1.5,
            crashes=1,
            seed=7,
        )
    )
    problems = {**results["invariants"], **results["also_checked"]}
    assert all(v == 0 for v in problems.values()), summary(results)
    # the soak did what it says: faults of every kind, a crash, hostile webhooks, checked renders
    injected = results["faults_injected"]
    for kind in (
        "timeout",
        "server_error",
        "truncated_json",
        "error_in_body",
        "garbage_body",
        "wrong_types",
        "wrong_data",
        "wrong_envelope",
        "absurd_rate_limit_headers",
        "redirect_other_host",
        "redirect_loop",
        "trickled_body",
        "rate_limit_storm",
    ):
        assert injected.get(kind, 0) > 0, (kind, injected)
    assert results["crashes_simulated"]["mid_burst"] == 1
    hostile = sum(
        n for key, n in results["webhooks"]["by_kind_and_status"].items() if not key.startswith("valid")
    )
    assert hostile >= 36, json.dumps(results["webhooks"])
    assert results["renders_checked"]["text"] > 30 and results["renders_checked"]["openmetrics"] > 5
