"""The simulator is faithful: auth, envelope, paging, rate limits, faults, a changing account; and
its hostile faults (issue 7) do what they say, and none is on by default."""

from __future__ import annotations

import json
import math

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from exporter.api.transport import basic_auth
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import (
    ABSURD_LIMITS,
    FAULT_KINDS,
    OTHER_HOST,
    Faults,
    RawJson,
    SimulatedApi,
    dumps,
)
from exporter.demo.simulator.app import build_simulator_app, start_other_host, start_simulator
from exporter.demo.simulator.transport import AIOHTTP_MAX_REDIRECTS, SimulatorTransport
from exporter.errors import ApiError
from tests.conftest import SID, TOKEN, FakeClock

AUTH = basic_auth(SID, TOKEN)
T0 = 1_790_000_000.0


def api(hosts: int = 250, **kwargs: object) -> SimulatedApi:
    return SimulatedApi(Account(hosts, 20, T0), SID, TOKEN, **kwargs)  # type: ignore[arg-type]


def body(response: object) -> dict:  # type: ignore[type-arg]
    return json.loads(response.body)  # type: ignore[attr-defined]


def test_wrong_credentials_get_the_documented_401() -> None:
    response = api().handle("GET", "rbl/hosts.json", {}, "Basic eDp5", T0)
    assert response.status == 401
    assert body(response) == {"status_code": 401, "status_message": "Authentication failed."}


def test_paging_envelope_and_rate_limit_headers() -> None:
    sim = api()
    response = sim.handle("GET", "/4.0/rbl/hosts.json", {"page": "3", "page_size": "100"}, AUTH, T0)
    data = body(response)
    assert (data["page"], data["page_size"], data["total_pages"], data["total"]) == (3, 100, 3, 250)
    assert len(data["data"]) == 50 and data["data"][0]["id"].startswith("HT")
    assert data["total_listed"] == len(sim.account.listed)
    assert response.headers["RateLimit-Limit"] == "1000;w=3600, 100;w=1"
    assert response.headers["RateLimit-Remaining"] == "99"  # the per-second window is tighter


def test_the_hourly_limit_is_enforced_with_retry_after() -> None:
    sim = api(hourly_limit=10)
    for i in range(10):
        assert sim.handle("GET", "rbl/profiles.json", {}, AUTH, T0 + i * 2).status == 200
    refused = sim.handle("GET", "rbl/profiles.json", {}, AUTH, T0 + 100)
    assert refused.status == 429 and refused.headers["Retry-After"] == "3500"
    assert sim.handle("GET", "rbl/profiles.json", {}, AUTH, T0 + 3601).status == 200


def test_the_per_second_limit_is_enforced() -> None:
    sim = api(per_second_limit=3)
    statuses = [sim.handle("GET", "rbl/profiles.json", {}, AUTH, T0).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_faults_can_be_injected() -> None:
    assert api(faults=Faults(error_rate=1.0)).handle("GET", "rbl/hosts.json", {}, AUTH, T0).status == 500
    broken = api(faults=Faults(malformed_rate=1.0)).handle("GET", "rbl/hosts.json", {}, AUTH, T0)
    assert broken.status == 200 and not broken.body.endswith(b"}")
    in_body = body(api(faults=Faults(body_error_rate=1.0)).handle("GET", "rbl/hosts.json", {}, AUTH, T0))
    assert in_body["status_code"] == 500
    assert api(faults=Faults(timeout_rate=1.0)).handle("GET", "rbl/hosts.json", {}, AUTH, T0).hang


def test_counts_single_objects_and_unknown_routes() -> None:
    sim = api()
    assert int(sim.handle("GET", "rbl/listings/count", {}, AUTH, T0).body) == len(sim.account.listed)
    host_id = next(iter(sim.account.hosts))
    one = body(sim.handle("GET", f"rbl/hosts/{host_id}.json", {}, AUTH, T0))
    assert one["data"][0]["id"] == host_id
    assert sim.handle("GET", "rbl/hosts/HT" + "0" * 32 + ".json", {}, AUTH, T0).status == 400
    assert sim.handle("GET", "nope.json", {}, AUTH, T0).status == 404
    assert sim.handle("POST", "rbl/hosts.json", {}, AUTH, T0).status == 405


def test_the_account_changes_over_time() -> None:
    account = Account(2000, 200, T0, churn_hours=1.0)
    listed_before = set(account.listed)
    expiry_before = {m.id: m.not_after for m in account.monitors.values()}
    for step in range(1, 25):
        account.advance(T0 + step * 3600)
    assert account.listed != listed_before  # hosts got listed and delisted
    assert 0.02 * 2000 < len(account.listed) < 0.1 * 2000  # around the steady state
    renewed = [m for m in account.monitors.values() if m.not_after != expiry_before[m.id]]
    assert renewed  # certificates approaching expiry were renewed
    assert all(m.not_after > T0 + 24 * 3600 for m in renewed)


async def test_served_over_http(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    sim = api()
    client: TestClient = await aiohttp_client(build_simulator_app(sim, FakeClock(T0)))
    response = await client.get("/4.0/cert/monitors.json", headers={"Authorization": AUTH})
    assert response.status == 200
    data = await response.json()
    assert data["data"][0]["id"].startswith("CM") and "expiration_date" in data["data"][0]
    assert "RateLimit-Remaining" in response.headers


# ---- the hostile faults (issue 7): each does what it says, and none is on by default ---------


def test_defaults_inject_nothing() -> None:
    sim = api()
    for i in range(300):
        response = sim.handle("GET", "rbl/hosts.json", {"page": "1"}, AUTH, T0 + i * 4)
        assert response.status == 200 and not response.hang and not response.trickle
        assert "Location" not in response.headers
    assert not sim.injected and not sim.recent and not sim.other_host_requests


def test_garbage_and_wrong_data_and_envelope() -> None:
    garbage = api(faults=Faults(garbage_rate=1.0)).handle("GET", "rbl/hosts.json", {}, AUTH, T0)
    assert garbage.status == 200
    try:
        parsed = json.loads(garbage.body)
    except ValueError:
        parsed = None
    assert not isinstance(parsed, dict)
    wrong = api(faults=Faults(wrong_data_rate=1.0))
    for i in range(20):
        assert not isinstance(body(wrong.handle("GET", "rbl/hosts.json", {}, AUTH, T0 + i * 2))["data"], list)
    envelope = api(faults=Faults(wrong_envelope_rate=1.0))
    assert envelope.handle("GET", "rbl/hosts.json", {}, AUTH, T0).status == 200
    assert envelope.injected["wrong_envelope"] == 1 and envelope.recent[-1][3]


def test_wrong_types_put_hostile_values_in_objects() -> None:
    sim = api(faults=Faults(wrong_types_rate=1.0))
    seen: set[str] = set()
    for i in range(60):
        items = body(sim.handle("GET", "rbl/hosts.json", {}, AUTH, T0 + i * 2))["data"]
        for item in items:
            for value in item.values():
                if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
                    seen.add("non-finite")
                elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
                    seen.add("huge")
                elif isinstance(value, list | dict | bool):
                    seen.add("wrong type")
                elif isinstance(value, str) and len(value) >= 5000:
                    seen.add("long")
                elif isinstance(value, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in value):
                    seen.add("surrogate")
    assert seen == {"non-finite", "huge", "wrong type", "long", "surrogate"}
    assert b"1e400" in dumps({"x": RawJson("1e400")})


def test_absurd_rate_limit_headers_come_in_turn() -> None:
    sim = api(faults=Faults(absurd_limits_rate=1.0), hourly_limit=10**6, per_second_limit=10**6)
    seen = set()
    for i in range(ABSURD_LIMITS):
        h = sim.handle("GET", "rbl/profiles.json", {}, AUTH, T0 + i).headers
        seen.add((h["RateLimit-Remaining"], h["RateLimit-Reset"], h["RateLimit-Limit"]))
    assert len(seen) == ABSURD_LIMITS
    remaining = {r for r, _, _ in seen}
    assert {"inf", "NaN", "9" * 400} <= remaining
    assert ("0", "99999999999") in {(r, s) for r, s, _ in seen}


def test_429_storms_and_http_date_retry_after() -> None:
    sim = api(faults=Faults(storms=[(T0 + 10, 60.0, "rate_limit")], retry_after_format="date"))
    assert sim.handle("GET", "rbl/hosts.json", {}, AUTH, T0).status == 200
    storm = [sim.handle("GET", "rbl/hosts.json", {}, AUTH, T0 + 10 + i) for i in range(30)]
    assert all(r.status == 429 for r in storm)
    assert all(r.headers["Retry-After"].endswith(" GMT") for r in storm)
    assert sim.handle("GET", "rbl/hosts.json", {}, AUTH, T0 + 71).status == 200
    forced = api(faults=Faults(rate_limit_at=[T0], retry_after_format="date"))
    assert forced.handle("GET", "rbl/hosts.json", {}, AUTH, T0).headers["Retry-After"].endswith(" GMT")


def test_scheduled_faults_come_in_order_once() -> None:
    sim = api(faults=Faults(scheduled=[(T0 + 5, "server_error"), (T0 + 1, "garbage")]))
    statuses = [sim.handle("GET", "rbl/hosts.json", {}, AUTH, T0 + i).status for i in range(8)]
    assert statuses[:5] == [200, 200, 200, 200, 200] and statuses[5] == 500
    assert sim.injected == {"garbage_body": 1, "server_error": 1}
    assert set(FAULT_KINDS) >= {"redirect", "redirect_loop", "trickle", "absurd_limits"}


async def test_redirects_in_process_follow_aiohttps_rules_only_when_asked(clock: FakeClock) -> None:
    loop = api(faults=Faults(redirect_loop_rate=1.0))
    transport = SimulatorTransport(loop, clock, SID, TOKEN, max_redirects=AIOHTTP_MAX_REDIRECTS)
    with pytest.raises(ApiError, match="TooManyRedirects") as caught:
        await transport.get("rbl/hosts.json", {"page": "1"})
    assert caught.value.reason == "network"
    assert len(loop.received) == 11  # the request and its 10 hops all reached the API
    assert loop.injected["redirect_loop_hop"] == 10
    other = api(faults=Faults(redirect_rate=1.0))
    follows = SimulatorTransport(other, clock, SID, TOKEN, max_redirects=AIOHTTP_MAX_REDIRECTS)
    answer = await follows.get("rbl/hosts.json", {})
    assert answer.status == 404
    assert [(p, has_auth) for _, p, has_auth, _ in other.other_host_requests] == [
        ("/4.0/rbl/hosts.json", False)
    ]
    unfollowed = await SimulatorTransport(other, clock, SID, TOKEN).get(
        "rbl/hosts.json", {}
    )  # as exporter.api.transport
    assert unfollowed.status == 302 and unfollowed.headers["Location"].startswith(OTHER_HOST)


async def test_redirect_to_the_other_host_over_http(clock: FakeClock) -> None:
    sim = api(faults=Faults(redirect_rate=1.0))
    runner, port = await start_simulator(sim, clock)
    other_runner, other_port = await start_other_host(sim, clock)
    sim.faults.other_host = f"http://127.0.0.1:{other_port}"
    try:
        async with aiohttp.ClientSession(headers={"Authorization": AUTH}) as session:
            async with session.get(f"http://127.0.0.1:{port}/4.0/rbl/hosts.json") as response:
                assert response.status == 404  # aiohttp followed it to the other host...
            async with session.get(
                f"http://127.0.0.1:{port}/4.0/rbl/hosts.json", allow_redirects=False
            ) as response:
                assert response.status == 302
        # ...which recorded the visit, and that no Authorization header came along
        assert [(p, has_auth) for _, p, has_auth, _ in sim.other_host_requests] == [
            ("/4.0/rbl/hosts.json", False)
        ]
    finally:
        await runner.cleanup()
        await other_runner.cleanup()


async def test_a_trickled_body_arrives_whole_over_http(clock: FakeClock) -> None:
    sim = api(hosts=600, faults=Faults(trickle_rate=1.0))
    runner, port = await start_simulator(sim, clock)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": AUTH}) as session:
            url = f"http://127.0.0.1:{port}/4.0/rbl/hosts.json?page_size=500"
            async with session.get(url) as response:
                data = json.loads(await response.read())
        assert len(data["data"]) == 500 and sim.injected["trickled_body"] == 1
    finally:
        await runner.cleanup()
