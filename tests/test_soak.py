"""A short chaos soak (bench.soak): two simulated hours of every API fault kind, 429 and redirect
storms, a crash in the middle of a webhook burst and a stream of hostile webhooks, through the
real app on loopback with a virtual clock. Every invariant must be 0. `python -m bench.soak`
runs the long version (24 simulated hours, several crashes, real SIGKILLs). Also: the soak's virtual
time wakes sleepers in order, and an operation past its wall-clock deadline fails by name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from bench.soak import START, Options, run_soak
from bench.soak_loop import Driver, Overrun, SoakLoop, VirtualClock
from bench.soak_results import summary

T = TypeVar("T")


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


def run_on_soak_loop(scenario: Callable[[Driver, VirtualClock], Coroutine[Any, Any, T]]) -> T:
    """`scenario` run on the soak's own loop, with a virtual clock at START and its driver."""
    with asyncio.Runner(loop_factory=SoakLoop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, SoakLoop)
        clock = VirtualClock(START)
        return runner.run(scenario(Driver(loop, clock), clock))


def test_virtual_time_wakes_sleepers_in_order_at_their_virtual_times() -> None:
    async def scenario(driver: Driver, clock: VirtualClock) -> tuple[list[tuple[str, float]], ...]:
        woke: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append((name, clock.time() - START))

        tasks = [asyncio.ensure_future(sleeper("late", 120)), asyncio.ensure_future(sleeper("early", 30))]
        await driver.run_until(START + 60)
        halfway = list(woke)
        await driver.run_until(START + 180)
        await asyncio.gather(*tasks)
        return halfway, woke

    halfway, woke = run_on_soak_loop(scenario)
    assert halfway == [("early", 30.0)]
    assert woke == [("early", 30.0), ("late", 120.0)]


def test_an_operation_past_its_deadline_fails_naming_it_instead_of_hanging() -> None:
    async def scenario(driver: Driver, clock: VirtualClock) -> None:
        never = asyncio.get_running_loop().create_future()
        await driver.complete(never, "opening the state file", cap=0.0)

    with pytest.raises(Overrun, match=r"^opening the state file: over its wall-clock cap"):
        run_on_soak_loop(scenario)
