"""The simulator is faithful: auth, envelope, paging, rate limits, faults, a changing account."""

from __future__ import annotations

import json

from aiohttp.test_utils import TestClient

from exporter.api import basic_auth
from exporter.simulator.account import Account
from exporter.simulator.api import Faults, SimulatedApi
from exporter.simulator.app import build_simulator_app
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
