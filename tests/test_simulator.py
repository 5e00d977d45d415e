"""The simulator is faithful: auth, envelope, paging, rate limits, faults, a changing account; its
hostile faults (issue 7) do what they say, and none is on by default; its control routes, webhook
sender and command line do what the demo and the end-to-end tests rely on."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient, AiohttpServer

from exporter.api.transport import basic_auth
from exporter.demo.simulator.__main__ import parse_args
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import SimResponse, SimulatedApi
from exporter.demo.simulator.app import build_simulator_app, start_other_host, start_simulator
from exporter.demo.simulator.faults import ABSURD_LIMITS, FAULT_KINDS, OTHER_HOST, Faults, RawJson, dumps
from exporter.demo.simulator.transport import AIOHTTP_MAX_REDIRECTS, SimulatorTransport
from exporter.demo.simulator.webhooks import WebhookSender
from exporter.errors import ApiError
from exporter.webhooks.signature import verify
from tests.helpers.rig import SID, TOKEN, FakeClock

AUTH = basic_auth(SID, TOKEN)
T0 = 1_790_000_000.0
DAY = 86400.0


def api(
    hosts: int = 250,
    *,
    faults: Faults | None = None,
    hourly_limit: int = 1000,
    per_second_limit: int = 100,
) -> SimulatedApi:
    account = Account(hosts, 20, T0)
    return SimulatedApi(
        account, SID, TOKEN, faults=faults, hourly_limit=hourly_limit, per_second_limit=per_second_limit
    )


def body(response: SimResponse) -> Any:
    return json.loads(response.body)


def get(sim: SimulatedApi, path: str, now: float = T0, **query: str) -> SimResponse:
    return sim.handle("GET", path, query, AUTH, now)


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


def test_page_size_is_capped_and_bad_paging_is_a_400() -> None:
    sim = api(hosts=600)
    assert body(get(sim, "rbl/hosts.json", page_size="1000"))["page_size"] == 500
    refused = get(sim, "rbl/hosts.json", page="two")
    assert refused.status == 400 and body(refused)["status_message"] == "page and page_size must be integers."


def test_the_hourly_limit_is_enforced_with_retry_after() -> None:
    sim = api(hourly_limit=10)
    for i in range(10):
        assert get(sim, "rbl/profiles.json", T0 + i * 2).status == 200
    refused = get(sim, "rbl/profiles.json", T0 + 100)
    assert refused.status == 429 and refused.headers["Retry-After"] == "3500"
    assert get(sim, "rbl/profiles.json", T0 + 3601).status == 200


def test_the_per_second_limit_is_enforced() -> None:
    sim = api(per_second_limit=3)
    statuses = [get(sim, "rbl/profiles.json").status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert sim.rejected_429 == 1


def test_another_client_of_the_same_application_uses_up_the_quota() -> None:
    sim = api(hourly_limit=10)
    sim.consume(T0 - 600, 9)
    assert get(sim, "rbl/profiles.json").headers["RateLimit-Remaining"] == "0"
    assert get(sim, "rbl/profiles.json", T0 + 1).status == 429


def test_faults_can_be_injected() -> None:
    assert get(api(faults=Faults(error_rate=1.0)), "rbl/hosts.json").status == 500
    broken = get(api(faults=Faults(malformed_rate=1.0)), "rbl/hosts.json")
    assert broken.status == 200 and not broken.body.endswith(b"}")
    in_body = body(get(api(faults=Faults(body_error_rate=1.0)), "rbl/hosts.json"))
    assert in_body["status_code"] == 500
    assert get(api(faults=Faults(timeout_rate=1.0)), "rbl/hosts.json").hang


def test_counts_single_objects_and_unknown_routes() -> None:
    sim = api()
    assert int(get(sim, "rbl/listings/count").body) == len(sim.account.listed)
    assert int(get(sim, "cert/errors/count").body) == len(sim.account.cert_errors())
    host_id = next(iter(sim.account.hosts))
    one = body(get(sim, f"rbl/hosts/{host_id}.json"))
    assert one["data"][0]["id"] == host_id
    assert get(sim, "rbl/hosts/HT" + "0" * 32 + ".json").status == 400
    assert get(sim, "nope.json").status == 404
    assert sim.unknown_routes == {"nope.json": 1}
    assert sim.handle("POST", "rbl/hosts.json", {}, AUTH, T0).status == 405


def test_every_collection_route_answers_in_the_envelope() -> None:
    sim = api()
    for path in ("rbl/profiles.json", "rbl/sources.json", "contact/contacts.json", "contact/groups.json"):
        data = body(get(sim, path))
        assert data["status_code"] == 200 and data["total"] == len(data["data"]) > 0
    errors = body(get(sim, "cert/errors.json"))
    assert errors["total_errors"] == errors["total"] == len(sim.account.cert_errors())


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


def test_a_still_account_changes_only_on_purpose() -> None:
    account = Account(500, 50, T0, churn_hours=1.0)
    account.stop_drift()
    listed = set(account.listed)
    account.outbox = []
    for step in range(1, 25):
        account.advance(T0 + step * 3600)
    assert account.listed == listed
    assert not [e for e in account.outbox if e["event_type"].startswith("rbl.")]
    host = next(h for h in account.hosts.values() if not h.rbls)
    account.list_host(host, T0 + DAY)
    assert host.id in account.listed and account.outbox[-1]["event_type"] == "rbl.host.listed"


def test_a_removed_host_is_gone_from_every_route() -> None:
    sim = api(hosts=30)
    gone = sorted(sim.account.listed)[0] if sim.account.listed else next(iter(sim.account.hosts))
    sim.account.remove_host(gone)
    hosts = body(get(sim, "rbl/hosts.json"))
    assert hosts["total"] == 29 and gone not in {h["id"] for h in hosts["data"]}
    assert gone not in {h["id"] for h in body(get(sim, "rbl/listings.json"))["data"]}
    assert get(sim, f"rbl/hosts/{gone}.json").status == 400


def expected_page(sim: SimulatedApi, name: str, page: int, size: int) -> bytes:
    """A page of hosts or listings as the route must write it: json.dumps of the envelope."""
    objects = sim.account.collection(name)
    envelope = {
        "status_code": 200,
        "status_message": "Listings" if name == "listings" else "Hosts",
        "page": page,
        "page_size": size,
        "total_pages": max(1, math.ceil(len(objects) / size)),
        "total": len(objects),
        "data": objects[(page - 1) * size : page * size],
        "total_listed": len(sim.account.listed),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def test_pages_of_hosts_and_listings_are_the_accounts_objects_as_json_writes_them() -> None:
    sim = api(hosts=300)
    sim.account.advance(T0 + 3600)
    for name, path in (("hosts", "rbl/hosts.json"), ("listings", "rbl/listings.json")):
        for page, size in ((1, 100), (2, 7), (3, 500)):
            answer = get(sim, path, T0 + 3600, page=str(page), page_size=str(size))
            assert answer.body == expected_page(sim, name, page, size)
    assert any(d["website"] for h in body(get(sim, "rbl/listings.json"))["data"] for d in h["listed_details"])


def listed_on_the_listings_route(sim: SimulatedApi) -> list[str]:
    return [h["id"] for h in body(get(sim, "rbl/listings.json", T0, page_size="500"))["data"]]


def test_the_listings_route_follows_every_listing_delisting_and_removal() -> None:
    sim = api(hosts=300)
    account = sim.account
    listed = listed_on_the_listings_route(sim)
    clean = next(h for h in account.hosts.values() if not h.rbls)
    changes: list[Callable[[], None]] = [
        lambda: account.delist_host(account.hosts[listed[0]]),
        lambda: account.list_host(clean, T0),
        lambda: account.remove_host(listed[1]),
    ]
    for change in changes:
        change()
        assert listed_on_the_listings_route(sim) == sorted(account.listed)
    assert listed[0] not in account.listed and listed[1] not in account.listed and clean.id in account.listed


def test_certificates_get_their_expiry_error_and_renewal_at_the_step_they_fall_due() -> None:
    account = Account(10, 80, T0)
    account.stop_drift()
    account.advance(T0 + 60)
    active = next(m for m in account.monitors.values() if not m.paused and not m.errors)
    paused = next(m for m in account.monitors.values() if m.paused)
    for monitor in (active, paused):
        account.expire_certificate(monitor, T0, 20)
    account.advance(T0 + 6 * DAY - 60)
    assert "expiration" not in active.errors and "expiration" not in paused.errors
    account.advance(T0 + 6 * DAY + 60)  # 14 days before expiry: the expiry error
    assert "expiration" in active.errors and "expiration" in paused.errors
    account.advance(T0 + 17 * DAY - 60)
    assert active.not_after == T0 + 20 * DAY
    account.advance(T0 + 17 * DAY + 60)  # 3 days before expiry: renewed, the error gone
    assert active.not_after == T0 + 17 * DAY + 60 + 90 * DAY and "expiration" not in active.errors
    account.advance(T0 + 30 * DAY)  # a paused monitor is not renewed
    assert paused.not_after == T0 + 20 * DAY and "expiration" in paused.errors


def test_certificate_errors_set_on_purpose_are_corrected_at_the_next_step() -> None:
    account = Account(10, 80, T0)
    account.stop_drift()
    account.advance(T0 + 60)
    far = next(m for m in account.monitors.values() if m.not_after > T0 + 30 * DAY and not m.errors)
    near = next(
        m for m in account.monitors.values() if "expiration" in m.errors and m.not_after > T0 + 4 * DAY
    )
    account.break_certificate(far, "expiration")  # a certificate months from expiry...
    account.clear_certificate(near)  # ...and one days from it
    assert "expiration" in far.errors and "expiration" not in near.errors
    account.advance(T0 + 180)
    assert "expiration" not in far.errors and "expiration" in near.errors


async def test_served_over_http(aiohttp_client: AiohttpClient) -> None:
    sim = api()
    client = await aiohttp_client(build_simulator_app(sim, FakeClock(T0)))
    response = await client.get("/4.0/cert/monitors.json", headers={"Authorization": AUTH})
    assert response.status == 200
    data = await response.json()
    assert data["data"][0]["id"].startswith("CM") and "expiration_date" in data["data"][0]
    assert "RateLimit-Remaining" in response.headers


# ---- the control routes (--control): change the account on purpose, with webhooks -----------


async def test_control_routes_list_and_delist_a_host(aiohttp_client: AiohttpClient) -> None:
    sim = api(hosts=40)
    sim.account.outbox = []
    client = await aiohttp_client(build_simulator_app(sim, FakeClock(T0), control_routes=True))
    clean = next(h for h in sim.account.hosts.values() if not h.rbls)
    listed = await (await client.post(f"/_sim/hosts/{clean.id}/list")).json()
    assert listed["listed"] == 1 and listed["listed_count"] >= 1
    count = await client.get("/4.0/rbl/listings/count", headers={"Authorization": AUTH})
    assert int(await count.text()) == len(sim.account.listed)
    delisted = await (await client.post(f"/_sim/hosts/{clean.id}/delist")).json()
    assert delisted["listed"] == 0
    assert [e["event_type"] for e in sim.account.outbox] == ["rbl.host.listed", "rbl.host.delisted"]
    assert (await client.post("/_sim/hosts/HT" + "0" * 32 + "/list")).status == 404


async def test_control_routes_expire_renew_break_and_clear_a_certificate(
    aiohttp_client: AiohttpClient,
) -> None:
    sim = api()
    client = await aiohttp_client(build_simulator_app(sim, FakeClock(T0), control_routes=True))
    monitor = next(m for m in sim.account.monitors.values() if not m.errors)
    sim.account.outbox = []
    base = f"/_sim/monitors/{monitor.id}"
    await client.post(f"{base}/expire?days=5")
    assert monitor.not_after == T0 + 5 * DAY and "expiration" in monitor.errors
    await client.post(f"{base}/renew")
    assert monitor.not_after == T0 + 90 * DAY and not monitor.errors
    await client.post(f"{base}/error?type=dns_caa")
    assert set(monitor.errors) == {"dns_caa"}
    await client.post(f"{base}/clear")
    assert not monitor.errors
    assert [e["event_type"] for e in sim.account.outbox] == [
        "cert.expiration.trigger",
        "cert.error.trigger",
        "cert.expiration.resolve",
        "cert.error.resolve",
        "cert.error.trigger",
        "cert.error.resolve",
    ]


async def test_control_routes_are_off_unless_asked_for(aiohttp_client: AiohttpClient) -> None:
    sim = api()
    client = await aiohttp_client(build_simulator_app(sim, FakeClock(T0)))
    host_id = next(iter(sim.account.hosts))
    assert (await client.post(f"/_sim/hosts/{host_id}/list")).status == 404


# ---- the webhook sender -------------------------------------------------------------------


async def webhook_receiver(aiohttp_server: AiohttpServer) -> tuple[str, list[tuple[str, bytes, str]]]:
    """A loopback receiver: its base URL and every POST it got (path, body, signature)."""
    received: list[tuple[str, bytes, str]] = []

    async def record(request: web.Request) -> web.Response:
        received.append((request.path, await request.read(), request.headers.get("X-Webhook-Signature", "")))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{hook}", record)
    server = await aiohttp_server(app)
    return str(server.make_url("/")), received


async def test_the_sender_posts_signed_events_for_every_change(aiohttp_server: AiohttpServer) -> None:
    base, received = await webhook_receiver(aiohttp_server)
    clock = FakeClock(T0)
    account = Account(40, 10, T0, step=1.0)
    async with aiohttp.ClientSession() as session:
        sender = WebhookSender(
            account, session, clock, url=f"{base}gl", secret="s3cret", hetrix_url=f"{base}hx"
        )
        clean = next(h for h in account.hosts.values() if not h.rbls)
        account.list_host(clean, T0)
        await sender.step()
    events = [json.loads(b) for path, b, _ in received if path == "/gl"]
    types = [e["event_type"] for e in events]
    assert types[0] == "rbl.host.listed" and events[0]["host"]["id"] == clean.id
    # the first round shows every family: an agent, billing and a certificate-change event
    assert {"agent.timeout", "billing.balance.alert", "cert.changed"} <= set(types)
    assert set(types) & {
        "billing.recharge.success",
        "billing.renewal.success",
        "expiring.card.alert",
        "expiring.plan.alert",
    }
    for path, raw, signature in received:
        if path == "/gl":
            verify(signature, raw, ["s3cret"], now=T0)
    chunks = [json.loads(b) for path, b, _ in received if path == "/hx"]
    assert sum(len(c) for c in chunks) == 30 and all(len(c) <= 100 for c in chunks)
    assert sender.sent == len(events)


async def test_a_quiet_sender_posts_only_the_accounts_changes(aiohttp_server: AiohttpServer) -> None:
    base, received = await webhook_receiver(aiohttp_server)
    account = Account(40, 10, T0)
    account.stop_drift()
    async with aiohttp.ClientSession() as session:
        sender = WebhookSender(account, session, FakeClock(T0), url=f"{base}gl", secret="s", quiet=True)
        await sender.step()
        assert received == []  # no agent, billing or certificate-change events of its own
        host = next(h for h in account.hosts.values() if not h.rbls)
        account.list_host(host, T0)
        await sender.step()
    assert [json.loads(b)["event_type"] for _, b, _ in received] == ["rbl.host.listed"]


# ---- the command line ---------------------------------------------------------------------


def test_the_command_line_keeps_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        parse_args(["--help"])
    assert done.value.code == 0
    flags = set(re.findall(r"--[a-z-]+[a-z]", capsys.readouterr().out))
    assert flags == {
        "--help",
        "--host",
        "--port",
        "--hosts",
        "--monitors",
        "--seed",
        "--listed-fraction",
        "--churn-hours",
        "--step",
        "--account-sid",
        "--auth-token",
        "--hourly-limit",
        "--per-second-limit",
        "--error-rate",
        "--body-error-rate",
        "--malformed-rate",
        "--timeout-rate",
        "--garbage-rate",
        "--wrong-types-rate",
        "--wrong-data-rate",
        "--wrong-envelope-rate",
        "--absurd-limits-rate",
        "--redirect-rate",
        "--redirect-loop-rate",
        "--trickle-rate",
        "--retry-after-format",
        "--other-host-port",
        "--webhook-url",
        "--webhook-secret",
        "--hetrix-url",
        "--webhook-period",
        "--quiet",
        "--control",
    }


def test_command_line_defaults() -> None:
    args = parse_args([])
    assert (args.host, args.port, args.hosts, args.monitors) == ("127.0.0.1", 8080, 200, 50)
    assert (args.hourly_limit, args.per_second_limit, args.retry_after_format) == (1000, 100, "delta")
    assert args.error_rate == args.trickle_rate == 0.0 and not args.quiet and not args.control


# ---- the hostile faults (issue 7): each does what it says, and none is on by default ---------


def test_defaults_inject_nothing() -> None:
    sim = api()
    for i in range(300):
        response = get(sim, "rbl/hosts.json", T0 + i * 4, page="1")
        assert response.status == 200 and not response.hang and not response.trickle
        assert "Location" not in response.headers
    assert not sim.injected and not sim.recent and not sim.other_host_requests


def test_garbage_and_wrong_data_and_envelope() -> None:
    garbage = get(api(faults=Faults(garbage_rate=1.0)), "rbl/hosts.json")
    assert garbage.status == 200
    try:
        parsed = json.loads(garbage.body)
    except ValueError:
        parsed = None
    assert not isinstance(parsed, dict)
    wrong = api(faults=Faults(wrong_data_rate=1.0))
    for i in range(20):
        assert not isinstance(body(get(wrong, "rbl/hosts.json", T0 + i * 2))["data"], list)
    envelope = api(faults=Faults(wrong_envelope_rate=1.0))
    assert get(envelope, "rbl/hosts.json").status == 200
    assert envelope.injected["wrong_envelope"] == 1 and envelope.recent[-1][3]


def test_wrong_types_put_hostile_values_in_objects() -> None:
    sim = api(faults=Faults(wrong_types_rate=1.0))
    seen: set[str] = set()
    for i in range(60):
        for item in body(get(sim, "rbl/hosts.json", T0 + i * 2))["data"]:
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


def test_wrong_types_on_a_count_route_answer_no_count() -> None:
    sim = api(faults=Faults(wrong_types_rate=1.0))
    honest = str(len(sim.account.listed)).encode()
    texts = {get(sim, "rbl/listings/count", T0 + i).body for i in range(40)}
    assert honest not in texts and len(texts) > 5 and sim.injected["wrong_types"] == 40


def test_absurd_rate_limit_headers_come_in_turn() -> None:
    sim = api(faults=Faults(absurd_limits_rate=1.0), hourly_limit=10**6, per_second_limit=10**6)
    seen = set()
    for i in range(ABSURD_LIMITS):
        h = get(sim, "rbl/profiles.json", T0 + i).headers
        seen.add((h["RateLimit-Remaining"], h["RateLimit-Reset"], h["RateLimit-Limit"]))
    assert len(seen) == ABSURD_LIMITS == 19
    remaining = {r for r, _, _ in seen}
    assert {"inf", "NaN", "9" * 400} <= remaining
    assert ("0", "99999999999") in {(r, s) for r, s, _ in seen}
    assert ("0", str(int(T0) + 2 + 120)) in {(r, s) for r, s, _ in seen}  # a reset as an epoch


def test_429_storms_and_http_date_retry_after() -> None:
    sim = api(faults=Faults(storms=[(T0 + 10, 60.0, "rate_limit")], retry_after_format="date"))
    assert get(sim, "rbl/hosts.json").status == 200
    storm = [get(sim, "rbl/hosts.json", T0 + 10 + i) for i in range(30)]
    assert all(r.status == 429 for r in storm)
    assert all(r.headers["Retry-After"].endswith(" GMT") for r in storm)
    assert get(sim, "rbl/hosts.json", T0 + 71).status == 200
    forced = api(faults=Faults(rate_limit_at=[T0], retry_after_format="date"))
    assert get(forced, "rbl/hosts.json").headers["Retry-After"].endswith(" GMT")


def test_a_forced_429_comes_once_with_its_retry_after() -> None:
    sim = api(faults=Faults(rate_limit_at=[T0 + 5], forced_retry_after=300.0))
    assert get(sim, "rbl/hosts.json").status == 200
    forced = get(sim, "rbl/hosts.json", T0 + 6)
    assert forced.status == 429 and forced.headers["Retry-After"] == "300"
    assert get(sim, "rbl/hosts.json", T0 + 7).status == 200
    assert sim.injected == {"rate_limit": 1}


def test_scheduled_faults_come_in_order_once() -> None:
    sim = api(faults=Faults(scheduled=[(T0 + 5, "server_error"), (T0 + 1, "garbage")]))
    statuses = [get(sim, "rbl/hosts.json", T0 + i).status for i in range(8)]
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
    unfollowed = await SimulatorTransport(other, clock, SID, TOKEN).get("rbl/hosts.json", {})
    assert unfollowed.status == 302 and unfollowed.headers["Location"].startswith(OTHER_HOST)


async def test_a_timeout_costs_the_client_its_timeout_on_the_clock(clock: FakeClock) -> None:
    sim = api(faults=Faults(timeout_rate=1.0))
    start = clock.now
    with pytest.raises(ApiError, match="no answer in 30s") as caught:
        await SimulatorTransport(sim, clock, SID, TOKEN).get("rbl/hosts.json", {})
    assert caught.value.reason == "timeout" and clock.now == start + 30.0


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
