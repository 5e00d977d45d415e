"""The HTTP transport's edge cases (aioresponses) and a real round trip (loopback simulator)."""

from __future__ import annotations

import base64

import aiohttp
import pytest
from aioresponses import aioresponses

from exporter.api.envelope import decode_page
from exporter.api.transport import USER_AGENT, HttpTransport, basic_auth, make_session
from exporter.clock import SystemClock
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import SimulatedApi
from exporter.demo.simulator.app import start_simulator
from exporter.errors import ApiError
from tests.helpers.rig import SID, TOKEN

BASE = "https://api.example.test/4.0"


async def test_sends_basic_auth_user_agent_and_page_parameters() -> None:
    async with make_session(SID, TOKEN, 5.0) as session:
        with aioresponses() as mocked:
            mocked.get(
                f"{BASE}/rbl/hosts.json?page=2&page_size=100",
                status=200,
                body=b'{"status_code":200,"data":[]}',
                headers={"RateLimit-Remaining": "7"},
            )
            response = await HttpTransport(session, BASE).get(
                "rbl/hosts.json", {"page": "2", "page_size": "100"}
            )
            (call,) = next(iter(mocked.requests.values()))
    assert response.status == 200 and response.headers["RateLimit-Remaining"] == "7"
    assert call.kwargs["params"] == {"page": "2", "page_size": "100"}
    assert session.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("generatorlabs-exporter/")
    assert session.headers["Authorization"] == basic_auth(SID, TOKEN)
    assert base64.b64decode(basic_auth(SID, TOKEN).split()[1]).decode() == f"{SID}:{TOKEN}"


async def test_connection_errors_become_api_errors_without_the_token() -> None:
    async with make_session(SID, TOKEN, 5.0) as session:
        with aioresponses() as mocked:
            mocked.get(f"{BASE}/rbl/listings.json", exception=aiohttp.ClientConnectionError("refused"))
            with pytest.raises(ApiError) as info:
                await HttpTransport(session, BASE).get("rbl/listings.json", {})
    assert info.value.reason == "network" and info.value.status is None
    assert TOKEN not in str(info.value)


async def test_timeouts_become_api_errors() -> None:
    async with make_session(SID, TOKEN, 5.0) as session:
        with aioresponses() as mocked:
            mocked.get(f"{BASE}/cert/errors.json", exception=TimeoutError())
            with pytest.raises(ApiError) as info:
                await HttpTransport(session, BASE).get("cert/errors.json", {})
    assert info.value.reason == "timeout"


async def test_a_real_round_trip_against_the_simulator_over_loopback() -> None:
    clock = SystemClock()
    api = SimulatedApi(Account(250, 5, clock.time()), SID, TOKEN)
    runner, port = await start_simulator(api, clock)
    try:
        async with make_session(SID, TOKEN, 5.0) as session:
            transport = HttpTransport(session, f"http://127.0.0.1:{port}/4.0")
            raw = await transport.get("rbl/hosts.json", {"page": "3", "page_size": "100"})
            page = decode_page("rbl/hosts", "hosts", raw, clock.time())
            assert (page.page, page.total_pages, len(page.items), page.total) == (3, 3, 50, 250)
            assert raw.headers["RateLimit-Limit"] == "1000;w=3600, 100;w=1"
            count = await transport.get("rbl/listings/count", {})
            assert int(count.body) == len(api.account.listed)
        async with make_session(SID, "wrong", 5.0) as session:
            raw = await HttpTransport(session, f"http://127.0.0.1:{port}/4.0").get("rbl/hosts.json", {})
            assert raw.status == 401
    finally:
        await runner.cleanup()
