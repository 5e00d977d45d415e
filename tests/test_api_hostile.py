"""Hostile and broken API answers (issue 7), end to end: through a real aiohttp server on
127.0.0.1 with the real client session where the wire matters (bodies in pieces, a 1,000-host
page, redirects, the body cap), and through the in-process simulator with a tampering transport
for everything else. Each test asserts what an operator sees: the objects in the snapshot, the
collector's health, the self-metrics, and that every other collector keeps polling.

Time for the scheduler comes from FakeClock; nothing waits on the wall clock (the test server
only yields to the event loop between the pieces of a body).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from hypothesis import example, given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter.api import transport as api_module
from exporter.api.envelope import MAX_PAGES, RawResponse, decode_page
from exporter.api.ratelimit import RETRY_AFTER_CAP, from_headers, retry_after
from exporter.api.records import Host, Monitor
from exporter.api.transport import CONNECTION_LIMIT, HttpTransport, basic_auth, make_session
from exporter.app import poll_settings
from exporter.config.parse import parse
from exporter.demo.simulator import api as simulator_api
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import SimulatedApi
from exporter.errors import ApiError
from exporter.metrics.selfmetrics import Live, Telemetry
from exporter.polling import scheduler as scheduler_module
from exporter.polling.ledger import Ledger
from exporter.polling.scheduler import Scheduler, Transport
from exporter.state.store import StateStore
from tests.helpers.rig import SID, TOKEN, FakeClock, Rig

PIECE = 4096


# -- helpers ---------------------------------------------------------------------------------


def metric(rig: Rig, name: str, **labels: str) -> float | None:
    """One self-metric value as a scrape would show it (prometheus_client's own parser)."""
    text = rig.telemetry.render(False).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def metric_samples(rig: Rig, name: str) -> list[float]:
    text = rig.telemetry.render(False).decode()
    return [
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def hosts(rig: Rig, collector: str = "rbl_hosts") -> dict[str, Host]:
    snap = rig.store.snapshot(collector)
    assert snap is not None
    return dict(snap.items)


Tamper = Callable[[str, Mapping[str, str], RawResponse], RawResponse]


@dataclass
class Tampering:
    """Wraps the rig's transport: `tamper(path, params, response)` may rewrite any answer, or
    raise (a transport bug). Records every path sent."""

    inner: Transport
    tamper: Tamper | None = None
    paths: list[str] = field(default_factory=list)

    async def get(self, path: str, params: Mapping[str, str]) -> RawResponse:
        self.paths.append(path)
        response = await self.inner.get(path, params)
        return self.tamper(path, params, response) if self.tamper else response


def tampering_rig(make_rig: Callable[..., Rig], *args: Any, **kwargs: Any) -> tuple[Rig, Tampering]:
    """A rig whose transport is wrapped in a Tampering (passing every answer through until a
    test sets its `tamper`)."""
    made: list[Tampering] = []

    def wrap(inner: Transport) -> Transport:
        made.append(Tampering(inner))
        return made[0]

    rig = make_rig(*args, wrap=wrap, **kwargs)
    return rig, made[0]


def rewrite_items(
    response: RawResponse,
    change: Callable[[list[Any]], list[Any]],
    replace: Mapping[bytes, bytes] | None = None,
) -> RawResponse:
    """The same answer with its `data` list changed; `replace` then swaps raw JSON tokens (for
    values json.dumps cannot write, such as the literal 1e400)."""
    body = json.loads(response.body)
    body["data"] = change(body["data"])
    raw = json.dumps(body).encode()
    for old, new in (replace or {}).items():
        raw = raw.replace(old, new)
    return RawResponse(response.status, response.headers, raw)


def with_body(response: RawResponse, body: bytes, status: int | None = None) -> RawResponse:
    return RawResponse(status or response.status, response.headers, body)


def polls_ok(logs: Sequence[Mapping[str, Any]], collector: str) -> int:
    return sum(1 for e in logs if e["event"] == "poll.ok" and e["collector"] == collector)


# -- a real server: bodies in pieces, big pages, the body cap ---------------------------------


@dataclass
class Served:
    """A SimulatedApi served over loopback by a handler that can trickle bodies in pieces."""

    api: SimulatedApi
    port: int
    trickle: bool = True
    requests: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/4.0"


async def serve(api: SimulatedApi, clock: FakeClock) -> AsyncIterator[Served]:
    served = Served(api, 0)

    async def handle(request: web.Request) -> web.StreamResponse:
        served.requests += 1
        result = api.handle(
            "GET",
            request.match_info["path"],
            dict(request.query),
            request.headers.get("Authorization"),
            clock.time(),
        )
        if not served.trickle:
            return web.Response(status=result.status, body=result.body, headers=result.headers)
        response = web.StreamResponse(status=result.status, headers=result.headers)
        await response.prepare(request)
        for start in range(0, len(result.body), PIECE):
            await response.write(result.body[start : start + PIECE])
            await asyncio.sleep(0)  # the client reads between pieces, as with TLS records
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/4.0/{path:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    served.port = runner.addresses[0][1]
    try:
        yield served
    finally:
        await runner.cleanup()


def http_rig(
    clock: FakeClock, transport: Transport, account: Account | None, raw: dict[str, Any] | None = None
) -> Rig:
    """A scheduler wired to a real HTTP transport (the Rig's api/account may be placeholders)."""
    config = parse(raw or {}).with_credentials(SID, TOKEN)
    store = StateStore()
    ledger = Ledger(config.budget.requests_per_hour, config.budget.requests_per_second)
    live = Live(store, ledger)
    telemetry = Telemetry(live, clock.time)
    scheduler = Scheduler(poll_settings(config), transport, ledger, store, telemetry, live, clock)
    account = account or Account(1, 1, clock.now)
    return Rig(clock, account, SimulatedApi(account, SID, TOKEN), store, ledger, telemetry, live, scheduler)


@pytest.fixture
async def served(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    monkeypatch.setattr(simulator_api, "MAX_PAGE_SIZE", 1000)  # the exporter allows 1,000
    account = Account(1000, 50, clock.now, churn_hours=1e6)
    async for s in serve(SimulatedApi(account, SID, TOKEN, hourly_limit=100_000), clock):
        yield s


@pytest.mark.parametrize(("trickle", "page_size"), [(True, 100), (True, 1000), (False, 1000)])
async def test_bodies_in_pieces_and_1000_host_pages_parse_fully(
    served: Served,
    clock: FakeClock,
    trickle: bool,
    page_size: int,
) -> None:
    """Issue 7: bodies were cut at what happened to be buffered, every poll failed as "body is
    not JSON". A page of 100 in 4 KB pieces, and a 1,000-host page (~420 KB) whole or in pieces,
    now load every host, through the real client session."""
    served.trickle = trickle
    async with make_session(SID, TOKEN, 30.0) as session:
        rig = http_rig(
            clock, HttpTransport(session, served.base), served.api.account, {"api": {"page_size": page_size}}
        )
        raw = await HttpTransport(session, served.base).get(
            "rbl/hosts.json", {"page": "1", "page_size": "1000"}
        )
        assert len(raw.body) > 350_000  # the 1,000-host page: about 400 KB, read whole
        with structlog.testing.capture_logs() as logs:
            await rig.run_for(60)
    assert not [e for e in logs if e["event"] == "poll.failed"]
    assert len(hosts(rig)) == 1000
    assert set(hosts(rig)) == set(served.api.account.hosts)
    expected = served.api.account.hosts
    for ident, host in hosts(rig).items():
        assert host.listings == len(expected[ident].rbls)
    assert rig.store.health("rbl_hosts").success is True
    assert metric(rig, "generatorlabs_up") == 1


async def test_a_body_over_the_cap_is_refused_while_it_streams(
    served: Served,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api_module, "MAX_BODY", 16 * 1024)
    async with make_session(SID, TOKEN, 30.0) as session:
        transport = HttpTransport(session, served.base)
        for trickle in (True, False):  # in pieces (no length known) and with a Content-Length
            served.trickle = trickle
            with pytest.raises(ApiError) as info:
                await transport.get("rbl/hosts.json", {"page": "1", "page_size": "200"})
            assert info.value.reason == "decode"
            assert "larger than 16384 bytes" in info.value.detail
        small = await transport.get("rbl/listings/count", {})
    assert int(small.body) == len(served.api.account.listed)


async def test_the_client_session_has_a_bounded_connection_pool() -> None:
    async with make_session(SID, TOKEN, 5.0) as session:
        assert isinstance(session.connector, aiohttp.TCPConnector)
        assert session.connector.limit == CONNECTION_LIMIT
        assert session.connector.limit_per_host == CONNECTION_LIMIT


# -- a real server: redirects are never followed ----------------------------------------------


@dataclass
class Redirecting:
    port: int = 0
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)


def fixed(location: str) -> Callable[[web.Request], str]:
    """A redirect target that is always `location`."""
    return lambda request: location


async def redirect_server(target: Callable[[web.Request], str]) -> AsyncIterator[Redirecting]:
    state = Redirecting()

    async def handle(request: web.Request) -> web.StreamResponse:
        state.seen.append((request.path, request.headers.get("Authorization")))
        return web.Response(status=302, headers={"Location": target(request)}, body=b'{"status_code": 302}')

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_a_redirect_loop_costs_one_request_per_ledger_entry(clock: FakeClock) -> None:
    """Issue 7: aiohttp followed up to 10 redirects per request, and the ledger counted one; a
    same-host loop sent 30 requests under a 30/h budget in 60 s. Now each poll is one request,
    it fails with reason `redirect`, and the budget holds."""
    async for server in redirect_server(lambda request: str(request.rel_url)):  # to itself
        async with make_session(SID, TOKEN, 5.0) as session:
            rig = http_rig(
                clock,
                HttpTransport(session, f"http://127.0.0.1:{server.port}/4.0"),
                None,
                {"budget": {"requests_per_hour": 30}},
            )
            with structlog.testing.capture_logs() as logs:
                await rig.run_for(1800)
        recorded = sum(metric_samples(rig, "generatorlabs_api_requests_total"))
        assert len(server.seen) == recorded == 30  # one on the wire per request the ledger counts
        assert len(server.seen) >= 8  # and every collector did try
        failed = [e for e in logs if e["event"] == "poll.failed"]
        assert failed and {e["reason"] for e in failed} == {"redirect"}
        assert "set api.base_url" in failed[0]["detail"]
        for collector in rig.scheduler.max_ages():
            assert rig.store.health(collector).error == "redirect"
        assert metric(rig, "generatorlabs_up") == 0
        assert metric(
            rig, "generatorlabs_collector_failures_total", reason="redirect", collector="rbl_listings"
        )


async def test_the_authorization_header_never_follows_a_redirect_elsewhere(clock: FakeClock) -> None:
    async for elsewhere in redirect_server(lambda request: "/"):
        target = f"http://127.0.0.1:{elsewhere.port}/4.0/steal"
        async for server in redirect_server(fixed(target)):
            async with make_session(SID, TOKEN, 5.0) as session:
                transport = HttpTransport(session, f"http://127.0.0.1:{server.port}/4.0")
                raw = await transport.get("rbl/hosts.json", {"page": "1", "page_size": "100"})
                with pytest.raises(ApiError) as info:
                    decode_page("rbl/hosts", "hosts", raw, clock.now)
            assert info.value.reason == "redirect" and info.value.status == 302
            assert target in info.value.detail
            assert [auth for _, auth in server.seen] == [basic_auth(SID, TOKEN)]
        assert elsewhere.seen == []  # nothing, let alone the credentials, went to the other host


# -- hostile values in objects: only the field is lost --------------------------------------


@pytest.mark.parametrize("value", ["Infinity", "1e400", "NaN", -5, 2**80, True, [1], {"n": 1}])
async def test_an_unusable_listed_count_costs_only_that_field(
    make_rig: Callable[..., Rig],
    value: object,
) -> None:
    """Issue 7: one host with `"listed_count": "Infinity"` (or 1e400) crashed every
    rbl_listings poll. Now the host is exported, its count derived from its RBL list."""
    rig, wrapper = tampering_rig(make_rig, listed_fraction=0.3, churn_hours=1e6)
    victim = sorted(rig.account.listed)[0]
    marker = "__VALUE__"

    def tamper(path: str, params: Mapping[str, str], response: RawResponse) -> RawResponse:
        if path not in ("rbl/listings.json", "rbl/hosts.json"):
            return response
        literal = b"1e400" if value == "1e400" else json.dumps(value).encode()
        return rewrite_items(
            response,
            lambda items: [{**i, "listed_count": marker} if i["id"] == victim else i for i in items],
            {json.dumps(marker).encode(): literal},
        )

    wrapper.paths.clear()
    wrapper.tamper = tamper
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(300)
    assert polls_ok(logs, "rbl_listings") >= 4 and polls_ok(logs, "rbl_hosts") >= 1
    assert not [e for e in logs if e["event"] == "poll.failed"]
    for collector in ("rbl_listings", "rbl_hosts"):
        host = hosts(rig, collector)[victim]
        assert host.listed and host.listings == len(rig.account.hosts[victim].rbls) > 0
        assert len(hosts(rig, collector)) == len(
            rig.account.listed if collector == "rbl_listings" else rig.account.hosts
        )
    assert metric(rig, "generatorlabs_parse_warnings_total", object="host", field="listed_count")
    assert metric(rig, "generatorlabs_up") == 1


async def test_an_impossible_date_costs_only_that_field(make_rig: Callable[..., Rig]) -> None:
    """Issue 7: `"2024-13-45 10:00:00"` raised a plain ValueError and stalled polling while
    health said all was well."""
    rig, wrapper = tampering_rig(make_rig)
    victim = sorted(rig.account.hosts)[3]

    def tamper(path: str, params: Mapping[str, str], response: RawResponse) -> RawResponse:
        if path != "rbl/hosts.json":
            return response
        return rewrite_items(
            response,
            lambda items: [
                {**i, "last_checked": "2024-13-45 10:00:00"} if i["id"] == victim else i for i in items
            ],
        )

    wrapper.paths.clear()
    wrapper.tamper = tamper
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(60)
    host = hosts(rig)[victim]
    assert host.last_checked is None and host.host == rig.account.hosts[victim].host
    assert len(hosts(rig)) == 20 and rig.store.health("rbl_hosts").success is True
    warned = [e for e in logs if e["event"] == "parse.warning"]
    assert [(e["object"], e["field"]) for e in warned] == [("host", "last_checked")]
    assert metric(rig, "generatorlabs_parse_warnings_total", object="host", field="last_checked") == 1


@pytest.mark.parametrize(
    ("port", "shown"),
    [(8443, "8443"), ("993", "993"), (70000, ""), (0, ""), (443.5, ""), ("NaN", ""), (True, "")],
)
async def test_a_monitor_port_must_be_a_real_port(
    make_rig: Callable[..., Rig],
    port: object,
    shown: str,
) -> None:
    rig, wrapper = tampering_rig(make_rig)
    victim = sorted(rig.account.monitors)[0]

    def tamper(path: str, params: Mapping[str, str], response: RawResponse) -> RawResponse:
        if path != "cert/monitors.json":
            return response
        return rewrite_items(
            response, lambda items: [{**i, "port": port} if i["id"] == victim else i for i in items]
        )

    wrapper.paths.clear()
    wrapper.tamper = tamper
    await rig.run_for(60)
    snap = rig.store.snapshot("cert_monitors")
    assert snap is not None
    monitors: dict[str, Monitor] = dict(snap.items)
    assert len(monitors) == 10 and monitors[victim].port == shown
    warned = metric(rig, "generatorlabs_parse_warnings_total", object="monitor", field="port")
    assert bool(warned) == (shown == "")


async def test_entries_that_are_not_objects_are_counted_and_the_rest_kept(
    make_rig: Callable[..., Rig],
) -> None:
    rig, wrapper = tampering_rig(make_rig)

    def tamper(path: str, params: Mapping[str, str], response: RawResponse) -> RawResponse:
        if path != "rbl/hosts.json":
            return response
        return rewrite_items(response, lambda items: ["junk", 3, None, *items, [1]])

    wrapper.paths.clear()
    wrapper.tamper = tamper
    await rig.run_for(60)
    assert len(hosts(rig)) == 20 and rig.store.health("rbl_hosts").success is True
    assert metric(rig, "generatorlabs_parse_warnings_total", object="host", field="object") == 4


async def test_a_parser_that_raises_costs_one_object_not_the_page(
    make_rig: Callable[..., Rig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = make_rig()
    victim = sorted(rig.account.hosts)[5]
    original = scheduler_module.PARSERS["rbl_hosts"]

    def fragile(raw: Mapping[str, Any], warn: Callable[[str, str, str], None]) -> Any:
        if raw.get("id") == victim:
            raise ZeroDivisionError("a bug in a parser")
        return original(raw, warn)

    monkeypatch.setitem(scheduler_module.PARSERS, "rbl_hosts", fragile)
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(2000)  # several passes of rbl_hosts
    assert set(hosts(rig)) == set(rig.account.hosts) - {victim}
    assert rig.store.health("rbl_hosts").success is True
    assert polls_ok(logs, "rbl_hosts") >= 2
    tracebacks = [e for e in logs if e["event"] == "poll.internal_error" and e["log_level"] == "error"]
    assert len(tracebacks) == 1  # logged once, however many passes meet it
    assert metric(rig, "generatorlabs_parse_warnings_total", object="host", field="object") == polls_ok(
        logs, "rbl_hosts"
    )


# -- hostile envelopes: the poll fails, the last good data stays ------------------------------


@pytest.mark.parametrize("data", ['"temporarily unavailable"', "42", "true", '{"id": "HTx"}', '["a", "b"]'])
async def test_data_of_the_wrong_type_fails_the_poll_and_keeps_the_last_good_data(
    make_rig: Callable[..., Rig],
    data: str,
) -> None:
    """Issue 7: `"data": "temporarily unavailable"` was read as an empty page: poll.ok, and
    generatorlabs_rbl_hosts dropped to 0 with no warning."""
    rig, wrapper = tampering_rig(make_rig)
    await rig.run_for(30)
    before = rig.store.snapshot("rbl_hosts")
    assert before is not None and len(before.items) == 20
    body = '{"status_code": 200, "page": 1, "total_pages": 1, "total": 20, "data": ' + data + "}"

    def tamper(path: str, params: Mapping[str, str], response: RawResponse) -> RawResponse:
        return with_body(response, body.encode()) if path == "rbl/hosts.json" else response

    wrapper.paths.clear()
    wrapper.tamper = tamper
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(rig.scheduler.interval("rbl_hosts") + 120)  # the next hosts poll, and more
    assert rig.store.snapshot("rbl_hosts") is before
    assert rig.store.health("rbl_hosts").error == "decode"
    assert any(e["event"] == "poll.failed" and e["collector"] == "rbl_hosts" for e in logs)
    assert polls_ok(logs, "rbl_listings") >= 1  # everything else keeps polling
    assert metric(rig, "generatorlabs_collector_success", collector="rbl_hosts") == 0


@pytest.mark.parametrize(
    "pages",
    [b"1" + b"0" * 400, b"1e9", b"1e400", b"-1", b"2.5", b'"many"', b"true", str(MAX_PAGES + 1).encode()],
)
async def test_an_absurd_total_pages_fails_instead_of_paging_forever(
    make_rig: Callable[..., Rig],
    pages: bytes,
) -> None:
    rig, wrapper = tampering_rig(make_rig)

    def tamper(path: str, params: Mapping[str, str], response: RawResponse) -> RawResponse:
        if path != "rbl/hosts.json":
            return response
        body = json.loads(response.body)
        body["total_pages"] = "__PAGES__"
        return with_body(response, json.dumps(body).encode().replace(b'"__PAGES__"', pages))

    wrapper.paths.clear()
    wrapper.tamper = tamper
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(600)
    assert rig.store.health("rbl_hosts").error == "decode"
    assert wrapper.paths.count("rbl/hosts.json") <= 10  # retries with backoff, never paging on
    assert polls_ok(logs, "rbl_listings") >= 5
    assert rig.store.snapshot("rbl_hosts") is None


async def test_error_text_of_any_size_or_encoding_logs_cleanly(make_rig: Callable[..., Rig]) -> None:
    rig, wrapper = tampering_rig(make_rig)
    message = "\ud800\x00\n" + "x" * 5000

    def tamper(path: str, params: Mapping[str, str], response: RawResponse) -> RawResponse:
        body = json.dumps({"status_code": 500, "status_message": message}).encode()
        return RawResponse(500, response.headers, body)

    wrapper.paths.clear()
    wrapper.tamper = tamper
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(30)
    failed = [e for e in logs if e["event"] == "poll.failed"]
    assert failed
    for event in failed:
        detail = event["detail"]
        assert len(detail) <= 200 and detail.isprintable()
        detail.encode("utf-8")  # a lone surrogate would make writing the log line raise


# -- hostile rate-limit headers ------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e400", "9" * 400, "1e30", "\ud800"])
async def test_an_unusable_ratelimit_remaining_never_stalls_polling(
    make_rig: Callable[..., Rig],
    value: str,
) -> None:
    """Issue 7: `RateLimit-Remaining: inf` hit int(inf); the failed run stayed due first,
    starved every other collector, and generatorlabs_up stayed 1."""
    rig, wrapper = tampering_rig(make_rig)

    def tamper(path: str, params: Mapping[str, str], response: RawResponse) -> RawResponse:
        return RawResponse(response.status, {**response.headers, "RateLimit-Remaining": value}, response.body)

    wrapper.paths.clear()
    wrapper.tamper = tamper
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(300)
    assert not [e for e in logs if e["event"] == "poll.failed"]
    for collector in rig.scheduler.max_ages():
        assert rig.store.health(collector).success is True
    assert polls_ok(logs, "rbl_listings") >= 4
    assert metric(rig, "generatorlabs_up") == 1


@pytest.mark.parametrize("reset", ["99999999999", "1e300", "inf"])
async def test_an_absurd_ratelimit_reset_stops_requests_for_at_most_an_hour(
    make_rig: Callable[..., Rig],
    reset: str,
) -> None:
    """Issue 7: `Remaining: 0, Reset: 99999999999` stopped every request until the year 5195
    while the backoff gauge showed 0. Now the wait is capped at one hour and shown."""
    rig, wrapper = tampering_rig(make_rig)
    await rig.run_for(30)
    hit: list[float] = []

    def tamper(path: str, params: Mapping[str, str], response: RawResponse) -> RawResponse:
        if hit:
            return response
        hit.append(rig.clock.now)
        return RawResponse(
            response.status,
            {**response.headers, "RateLimit-Remaining": "0", "RateLimit-Reset": reset},
            response.body,
        )

    wrapper.paths.clear()
    wrapper.tamper = tamper
    while not hit:
        await rig.scheduler.step()  # until the one answer that says "none left"
    (at,) = hit
    backoff = metric(rig, "generatorlabs_api_backoff_until_timestamp_seconds")
    if reset == "inf":  # unreadable: ignored, no wait at all
        assert backoff == 0
    else:
        assert backoff is not None and at < backoff <= at + RETRY_AFTER_CAP + 1
    sent = len(rig.api.accepted)
    await rig.run_for(RETRY_AFTER_CAP + 120)
    later = rig.api.accepted[sent:]
    assert later and min(later) <= at + RETRY_AFTER_CAP + 60  # polling resumes within the hour
    assert rig.store.health("rbl_listings").success is True


async def test_a_ratelimit_reset_given_as_epoch_seconds_is_read_as_a_time(
    make_rig: Callable[..., Rig],
) -> None:
    """Issue 7: a reset given as epoch seconds spaced requests 41 days apart."""
    rig, wrapper = tampering_rig(make_rig)
    await rig.run_for(30)
    reset_at = rig.clock.now + 600

    def tamper(path: str, params: Mapping[str, str], response: RawResponse) -> RawResponse:
        return RawResponse(
            response.status,
            {**response.headers, "RateLimit-Remaining": "10", "RateLimit-Reset": str(int(reset_at))},
            response.body,
        )

    wrapper.paths.clear()
    wrapper.tamper = tamper
    start = len(rig.api.accepted)
    await rig.run_for(600)
    sent = rig.api.accepted[start:]
    assert len(sent) >= 10  # spread to fit before the reset, not weeks apart
    assert rig.ledger.server is not None
    assert rig.ledger.server.reset_at == pytest.approx(reset_at, abs=2)
    assert rig.store.health("rbl_listings").success is True
    assert rig.clock.now - rig.store.health("rbl_listings").last_success < 180  # type: ignore[operator]


@given(
    st.dictionaries(
        st.sampled_from(
            ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After", "ratelimit-reset"]
        ),
        st.one_of(st.text(max_size=80), st.from_regex(r"-?[0-9.e+inf]{1,40}")),
    )
)
@example({"RateLimit-Remaining": "inf"})  # the cases, every run
@example({"RateLimit-Remaining": "0", "RateLimit-Reset": "99999999999"})
@example({"RateLimit-Remaining": "nan", "RateLimit-Reset": "1e400", "Retry-After": "inf"})
@example({"RateLimit-Limit": "9" * 5000, "Retry-After": "Thu, 01 Jan 99999 12:00:00 GMT"})
def test_no_rate_limit_header_can_raise_or_ask_for_more_than_an_hour(headers: dict[str, str]) -> None:
    now = 1_790_000_000.0
    limit = from_headers(headers, now)
    if limit is not None:
        assert limit.remaining is None or 0 <= limit.remaining <= 10**9
        assert limit.reset_at is None or now <= limit.reset_at <= now + RETRY_AFTER_CAP
    assert 1.0 <= retry_after(headers, now) <= RETRY_AFTER_CAP
    ledger = Ledger(900, 5.0)
    if limit is not None:
        ledger.observe(limit)
    assert now <= ledger.next_allowed(now) <= now + RETRY_AFTER_CAP


# -- an unexpected exception fails one run, never the loop ----------------------------------


async def test_an_unexpected_exception_fails_only_that_collector(make_rig: Callable[..., Rig]) -> None:
    """Issue 7: an exception that was not an ApiError left the run due first and `_failed`
    uncalled: every other collector starved and health said all was well."""
    rig, wrapper = tampering_rig(make_rig)

    def tamper(path: str, params: Mapping[str, str], response: RawResponse) -> RawResponse:
        if path == "rbl/hosts.json":
            raise RuntimeError("something nobody foresaw")
        return response

    wrapper.paths.clear()
    wrapper.tamper = tamper
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(1200)
    health = rig.store.health("rbl_hosts")
    assert health.success is False and health.error == "internal"
    assert metric(rig, "generatorlabs_collector_success", collector="rbl_hosts") == 0
    assert metric(rig, "generatorlabs_up") == 0
    assert metric(
        rig, "generatorlabs_collector_failures_total", collector="rbl_hosts", reason="internal"
    ) == len([e for e in logs if e["event"] == "poll.failed" and e["collector"] == "rbl_hosts"])
    retries = [e["retry_in"] for e in logs if e["event"] == "poll.failed" and e["collector"] == "rbl_hosts"]
    assert retries[:4] == [15.0, 30.0, 60.0, 120.0]  # backs off like any other failure
    assert polls_ok(logs, "rbl_listings") >= 10  # the others keep polling
    assert rig.store.health("rbl_listings").success is True
    tracebacks = [e for e in logs if e["event"] == "poll.internal_error" and e["log_level"] == "error"]
    assert len(tracebacks) == 1 and tracebacks[0]["exc_info"] is not None


async def test_a_bug_in_the_loop_itself_reaches_the_supervisor(
    make_rig: Callable[..., Rig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = make_rig()

    def broken(now: float) -> float:
        raise LookupError("a bug in pick")

    monkeypatch.setattr(rig.scheduler, "pick", broken)
    with pytest.raises(LookupError):
        await asyncio.wait_for(rig.scheduler.run_forever(), 5)


# -- ids from webhooks never shape a URL ----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "ident"),
    [
        ("host", "HT3/../../../../etc"),
        ("host", "HT" + "a" * 31 + "/"),
        ("host", "HT" + "a" * 32 + "\n"),
        ("host", "HT" + "a" * 32 + "?x=1"),
        ("host", "ht" + "a" * 32),
        ("host", "CM" + "a" * 32),  # a monitor id is not a host id
        ("monitor", "HT" + "a" * 32),
        ("host", "HT" + "g" * 32),
        ("host", "HT" + "\u0661" * 32),  # non-ASCII digits
        ("host", ""),
    ],
)
async def test_an_id_not_of_the_documented_form_is_never_requested(
    make_rig: Callable[..., Rig],
    kind: str,
    ident: str,
) -> None:
    """Issue 7: a signed host.id of `HT3/../../../../etc` made the exporter GET /etc.json."""
    rig, wrapper = tampering_rig(make_rig)
    await rig.run_for(30)
    wrapper.paths.clear()
    with structlog.testing.capture_logs() as logs:
        assert rig.scheduler.request_refresh(kind, ident, rig.clock.now) is False
        await rig.run_for(120)
    assert not [p for p in wrapper.paths if p.startswith(("rbl/hosts/", "cert/monitors/"))]
    assert all("etc" not in p for p in wrapper.paths)
    invalid = [e for e in logs if e["event"] == "refresh.invalid_id"]
    assert invalid and invalid[0]["log_level"] == "info"


async def test_a_valid_id_is_requested_with_every_segment_encoded(make_rig: Callable[..., Rig]) -> None:
    rig, wrapper = tampering_rig(make_rig)
    await rig.run_for(30)
    host_id, monitor_id = sorted(rig.account.hosts)[0], sorted(rig.account.monitors)[0]
    wrapper.paths.clear()
    assert rig.scheduler.request_refresh("host", host_id, rig.clock.now)
    assert rig.scheduler.request_refresh("monitor", monitor_id, rig.clock.now)
    with structlog.testing.capture_logs() as logs:
        await rig.scheduler.step()
        await rig.run_for(1)
    refreshes = [p for p in wrapper.paths if p.startswith(("rbl/hosts/", "cert/monitors/"))]
    assert refreshes == [f"rbl/hosts/{host_id}.json", f"cert/monitors/{monitor_id}.json"]
    assert [e["found"] for e in logs if e["event"] == "refresh.ok"] == [True, True]
