"""Hostile webhooks through the real aiohttp server (issue 7): every failure found by fuzzing is
reproduced here and now gets a 4xx with a counted reason, never a 5xx; /metrics stays valid; the
applier keeps applying; a bad stored event never blocks a start; webhook-only series age out or
are forgotten on request. Ends with property-based tests for both receivers (FUZZ_EXAMPLES
scales them; see tests/conftest.py)."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter.state.overlay import WebhookState
from exporter.state.sqlite import Incoming, StateDB
from exporter.webhooks import applier
from exporter.webhooks import receivers as webhook
from exporter.webhooks.signature import sign
from tests.helpers import FIELDS, ODD_VALUES, VALUE
from tests.helpers.rig import FakeClock
from tests.helpers.webhooks import (
    HX_TOKEN,
    SECRET,
    Harness,
    event,
    host_id,
    monitor_id,
    refreshes_sent,
    rejected,
    running,
    sample,
)

AGENT = {"id": "AG" + "1" * 32, "name": "eu-west"}
_sids = iter(range(1, 10**9))


def sid() -> str:
    return f"TA{next(_sids):032x}"


def warnings(text: str, obj: str, field: str) -> float:
    return sample(text, "generatorlabs_parse_warnings_total", object=obj, field=field) or 0.0


def set_aside(text: str, source: str) -> float:
    return sample(text, "generatorlabs_webhook_events_set_aside_total", source=source) or 0.0


def forgotten(text: str, kind: str, reason: str) -> float:
    return sample(text, "generatorlabs_webhook_objects_forgotten_total", kind=kind, reason=reason) or 0.0


@pytest.fixture
async def harness(
    aiohttp_client: Callable[..., Any], clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running(aiohttp_client, clock, tmp_path / "state.sqlite") as h:
        yield h


# ---- what issue 7 found, one by one ----------------------------------------------------------


async def test_a_nan_balance_is_refused_and_metrics_stay_up(harness: Harness) -> None:
    status, text = await harness.post(
        event("billing.balance.alert", sid=sid(), balance="NaN", alert_threshold="15.00")
    )
    assert status == 400 and "balance" in text
    metrics = await harness.metrics()
    assert rejected(metrics, "malformed") == 1
    assert warnings(metrics, "webhook_event", "balance") == 1
    assert sample(metrics, "generatorlabs_billing_balance_usd") is None  # never stored
    status, _ = await harness.post(
        event("billing.balance.alert", sid=sid(), balance="12.34", alert_threshold="Infinity")
    )
    assert status == 400
    assert (
        await harness.post(
            event("billing.balance.alert", sid=sid(), balance="12.34", alert_threshold="15.00")
        )
    )[0] == 204
    assert sample(await harness.metrics(), "generatorlabs_billing_balance_usd") == 12.34


async def test_a_nan_balance_in_an_old_state_file_is_not_served(
    aiohttp_client: Callable[..., Any], clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "state.sqlite"
    old = StateDB(str(path))
    await old.start(None, clock.now)
    state = WebhookState(balance=math.nan, balance_threshold=math.inf)  # as a previous version stored
    await old.checkpoint(state, clock.now)
    await old.close()
    async with running(aiohttp_client, clock, path) as h:
        metrics = await h.metrics()  # parses: the renderer never met the NaN
        assert sample(metrics, "generatorlabs_billing_balance_usd") is None


async def test_total_nan_is_refused_and_later_events_are_still_applied(harness: Harness) -> None:
    hid = host_id(harness, listed=False)
    for total in ("NaN", "1e999", -1, [2], True):
        status, _ = await harness.post(
            event(
                "rbl.host.listed",
                sid=sid(),
                host={"id": hid},
                listed=True,
                total=total,
                details=[{"host": "PSBL"}],
            )
        )
        assert status == 400
    metrics = await harness.metrics()
    assert rejected(metrics, "malformed") == 5 and warnings(metrics, "webhook_event", "total") == 5
    assert sample(metrics, "generatorlabs_rbl_host_listed", host_id=hid) == 0
    status, _ = await harness.post(
        event(
            "rbl.host.listed", sid=sid(), host={"id": hid}, listed=True, total=1, details=[{"host": "PSBL"}]
        )
    )
    assert status == 204
    metrics = await harness.metrics()
    assert sample(metrics, "generatorlabs_rbl_host_listed", host_id=hid) == 1
    assert sample(metrics, "generatorlabs_rbl_listing_info", host_id=hid, rbl="PSBL") == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"event_date": "2024-13-45"}, "event_date"),
        ({"event_date": 10**400}, "event_date"),
        ({"event_date": "NaN"}, "event_date"),
        ({"event_type": "cert.expiration.trigger", "expiry_days": 10**400}, "expiry_days"),
        ({"event_type": "cert.expiration.trigger", "expiry_days": "Infinity"}, "expiry_days"),
        ({"event_type": "cert.error.trigger", "current_errors": "connection"}, "current_errors"),
        ({"event_type": "agent.timeout", "agent": AGENT, "instances": {"id": "i-1"}}, "instances"),
        ({"event_type": "agent.timeout", "agent": {"id": 7}, "instances": []}, "agent"),
        ({"event_sid": 12345}, "event_sid"),
        ({"event_sid": "TA\ud800"}, "event_sid"),  # a lone surrogate: SQLite cannot store it
    ],
)
async def test_signed_events_with_unusable_fields_are_400_and_never_stored(
    harness: Harness, fields: dict[str, Any], field: str
) -> None:
    mid = monitor_id(harness)
    body = {**event("cert.changed", sid=sid(), monitor={"id": mid}), **fields}
    status, text = await harness.post(body)
    assert status == 400 and field in text
    metrics = await harness.metrics()
    assert warnings(metrics, "webhook_event", field) == 1
    assert sample(metrics, "generatorlabs_webhook_events_total", event=body["event_type"]) is None
    loaded = await harness.exporter.db.load(harness.clock.now)
    assert loaded.events == []  # nothing committed


async def test_an_id_is_never_taken_into_an_api_path(harness: Harness) -> None:
    status, _ = await harness.post(
        event("rbl.host.listed", sid=sid(), host={"id": "HT3/../../../../etc"}, listed=True, total=1)
    )
    assert status == 400
    assert await refreshes_sent(harness) == 0  # no targeted refresh was asked for


@pytest.mark.parametrize(
    ("parts", "body"),
    [
        ("t={now},v1=\u00e9", b"{}"),
        ("t=\u00b2,v1=" + "0" * 64, b"{}"),
        ("t=" + "9" * 400 + ",v1=" + "0" * 64, b"{}"),
        (",,,=,t=,v1=", b"{}"),
        ("t={now},v1=" + "0" * 64 + "," * 3000, b"{}"),
    ],
)
async def test_hostile_signature_headers_are_401_before_any_secret(
    harness: Harness, parts: str, body: bytes
) -> None:
    header = parts.format(now=int(harness.clock.now))
    response = await harness.client.post(
        "/webhooks/generatorlabs",
        data=body,
        headers={"Content-Type": "application/json", "X-Webhook-Signature": header},
    )
    assert response.status == 401
    assert rejected(await harness.metrics(), "malformed_signature") == 1


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("gzip", b'{"event_sid": "not gzip at all"}'),
        ("deflate", b"not deflate either"),
        ("gzip", gzip.compress(b'{"a": 1}') + b"trailing garbage"),
        ("gzip", b"\x1f\x8b" + b"\x00" * 64),
    ],
)
async def test_a_body_that_does_not_decode_is_400_for_both_receivers(
    harness: Harness, encoding: str, data: bytes
) -> None:
    with structlog.testing.capture_logs():
        for url in ("/webhooks/generatorlabs", f"/webhooks/hetrixtools/{HX_TOKEN}"):
            response = await harness.client.post(
                url,
                data=data,
                headers={
                    "Content-Type": "application/json",
                    "Content-Encoding": encoding,
                    "X-Webhook-Signature": sign(data, SECRET, int(harness.clock.now)),
                },
            )
            assert response.status == 400
    metrics = await harness.metrics()
    for source in ("generatorlabs", "hetrixtools"):
        assert (
            sample(metrics, "generatorlabs_webhook_rejected_total", source=source, reason="bad_encoding") == 1
        )
    # the connection was closed after the answer; the next request is served as usual
    assert (await harness.post(event("billing.renewal.success", sid=sid())))[0] == 204


async def test_a_compressed_signed_event_is_applied(harness: Harness) -> None:
    raw = json.dumps(event("billing.renewal.failed", sid=sid())).encode()
    for encoding, packed in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
        response = await harness.client.post(
            "/webhooks/generatorlabs",
            data=packed,
            headers={
                "Content-Type": "application/json",
                "Content-Encoding": encoding,
                "X-Webhook-Signature": sign(raw, SECRET, int(harness.clock.now)),
            },
        )
        assert response.status in (204, 200)  # the second is a replay of the first
    metrics = await harness.metrics()
    assert sample(metrics, "generatorlabs_webhook_events_total", event="billing.renewal.failed") == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 50_000 + b"]" * 50_000,
        b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
        b'[{"monitor": "\xed\xa0\x80"}]',
        b'[{"monitor": "\xff\xfe"}]',
        b"\xef\xbb\xbf[]",
    ],
)
async def test_deep_nesting_and_bad_utf8_are_400_in_both_receivers(harness: Harness, raw: bytes) -> None:
    assert (await harness.post(raw))[0] == 400
    assert (await harness.hetrix(raw))[0] == 400
    metrics = await harness.metrics()
    for source in ("generatorlabs", "hetrixtools"):
        assert sample(metrics, "generatorlabs_webhook_rejected_total", source=source, reason="malformed") == 1


def monitor(name: str, now: Any = "2", rbls: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "monitor": name,
        "label": f"label {name}",
        "blacklisted_before": "0",
        "blacklisted_now": now,
        "blacklisted_on": [{"rbl": f"rbl{j}.example", "delist": "https://x"} for j in range(rbls)] or None,
        **extra,
    }


async def test_hetrixtools_bad_items_are_skipped_and_good_ones_applied(harness: Harness) -> None:
    status, text = await harness.hetrix(
        [
            monitor("192.0.2.1"),
            monitor("192.0.2.2", now="inf"),
            monitor("192.0.2.3", now="-5"),
            monitor("192.0.2.4", now=[1]),
            {"label": "no monitor"},
            "not an object",
        ]
    )
    assert status == 200 and "accepted 1 monitors, skipped 5" in text
    metrics = await harness.metrics()
    assert sample(metrics, "hetrixtools_blacklist_monitor_listings", monitor="192.0.2.1") == 2
    for name in ("192.0.2.2", "192.0.2.3", "192.0.2.4"):
        assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor=name) is None
    assert warnings(metrics, "hetrixtools_monitor", "blacklisted_now") == 3
    assert warnings(metrics, "hetrixtools_monitor", "monitor") == 1
    assert warnings(metrics, "hetrixtools_monitor", "item") == 1
    for family in text_string_to_metric_families(metrics):  # never a negative listing count
        if family.name == "hetrixtools_blacklist_monitor_listings":
            assert all(s.value >= 0 for s in family.samples)


async def test_hetrixtools_minus_five_never_gives_a_negative_listing(harness: Harness) -> None:
    assert (await harness.hetrix([monitor("192.0.2.9", now="3")]))[0] == 200
    status, _ = await harness.hetrix([monitor("192.0.2.9", now="-5")])
    assert status == 400  # every item unusable: nothing stored, the last good state stays
    metrics = await harness.metrics()
    assert sample(metrics, "hetrixtools_blacklist_monitor_listings", monitor="192.0.2.9") == 3
    assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.9") == 1
    assert rejected(metrics, "malformed", "hetrixtools") == 1


async def test_hetrixtools_zero_with_a_list_of_rbls_reads_as_listed(harness: Harness) -> None:
    """`blacklisted_now: "0"` next to a `blacklisted_on` naming RBLs: the list names where the
    monitor is listed, so it reads as listed (never stop alerting in silence), counted from the
    list, as a Generator Labs count of 0 naming RBLs would be."""
    assert (await harness.hetrix([monitor("192.0.2.7", now="0", rbls=2)]))[0] == 200
    assert (await harness.hetrix([monitor("192.0.2.8", now="0", rbls=0)]))[0] == 200
    metrics = await harness.metrics()
    assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.7") == 1
    assert sample(metrics, "hetrixtools_blacklist_monitor_listings", monitor="192.0.2.7") == 2
    assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.8") == 0


@pytest.mark.parametrize(
    ("kind", "ident", "status"),
    [
        ("host", "HT" + "ab12" * 8, 204),
        ("host", "HT" + "AB12" * 8, 204),  # the SID rule of polls: hex digits of either case
        ("host", "CM" + "ab12" * 8, 400),  # another kind's prefix
        ("host", "ht" + "ab12" * 8, 400),
        ("host", "HT" + "ab12" * 7, 400),
        ("monitor", "CM" + "Ab12" * 8, 204),
        ("monitor", "HT" + "ab12" * 8, 400),
        ("monitor", "CM" + "zz12" * 8, 400),
    ],
)
async def test_webhook_object_ids_follow_the_one_sid_rule(
    harness: Harness, kind: str, ident: str, status: int
) -> None:
    """Host and monitor ids of events go into API paths (a targeted refresh): the rule is the one
    polls use, `HT`/`CM` and 32 hex digits of either case."""
    event_type = "rbl.host.check.started" if kind == "host" else "cert.changed"
    body = {**event(event_type), kind: {"id": ident}}
    got, text = await harness.post(body)
    assert got == status, text
    if status == 400:
        assert f"{kind}: not a documented id" in text


async def test_a_failing_apply_is_set_aside_and_the_applier_goes_on(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    poisoned = sid()
    original = WebhookState.apply

    def apply(self: WebhookState, ev: Any, now: float | None = None) -> None:
        if ev.sid == poisoned:
            raise RuntimeError("boom")
        original(self, ev, now)

    monkeypatch.setattr(WebhookState, "apply", apply)
    moved: list[tuple[int, str]] = []
    db = harness.exporter.db
    assert db is not None
    real = db.set_aside

    async def spy(seq: int, reason: str) -> None:
        moved.append((seq, reason))
        await real(seq, reason)

    monkeypatch.setattr(db, "set_aside", spy)
    with structlog.testing.capture_logs() as logs:
        assert (await harness.post(event("billing.recharge.failed", sid=poisoned)))[0] == 204
        assert (await harness.post(event("billing.recharge.success", sid=sid())))[0] == 204
        metrics = await harness.metrics()
    assert sample(metrics, "generatorlabs_webhook_events_total", event="billing.recharge.success") == 1
    assert set_aside(metrics, "generatorlabs") == 1
    assert len(moved) == 1 and "RuntimeError: boom" in moved[0][1]
    errors = [e for e in logs if e["event"] == "webhook.set_aside"]
    assert len(errors) == 1 and errors[0]["exc_info"] is not None  # once, with the traceback
    loaded = await db.load(harness.clock.now)
    assert moved[0][0] not in [seq for seq, _, _ in loaded.events]  # never replayed again


async def test_a_bad_stored_event_never_blocks_startup(
    aiohttp_client: Callable[..., Any], clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "state.sqlite"
    old = StateDB(str(path))  # events accepted by the previous version, never checkpointed
    await old.start(None, clock.now)
    bad = [
        ("generatorlabs", event("rbl.host.listed", sid=sid(), host={"id": "HT" + "0" * 32}, total="1e999")),
        (
            "generatorlabs",
            event("cert.expiration.trigger", sid=sid(), monitor={"id": "CM" + "0" * 32}, expiry_days=10**400),
        ),
        ("hetrixtools", [monitor("192.0.2.5", now="inf")]),
        ("hetrixtools", [monitor("192.0.2.6", now="-5"), monitor("192.0.2.7")]),  # one good item
        ("generatorlabs", event("billing.renewal.success", sid=sid())),  # good
    ]
    await old.accept(
        [Incoming(kind, (), json.dumps(body).encode(), clock.now, clock.now + 600) for kind, body in bad]
    )
    await old.close()
    async with running(aiohttp_client, clock, path) as h:  # starts: replay sets the bad ones aside
        metrics = await h.metrics()
        assert set_aside(metrics, "generatorlabs") == 2 and set_aside(metrics, "hetrixtools") == 1
        assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.7") == 1
        assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.6") is None
        assert sample(metrics, "generatorlabs_webhook_events_total", event="billing.renewal.success") == 1
        assert (await h.post(event("expiring.plan.alert", sid=sid())))[0] == 204
        assert (
            sample(await h.metrics(), "generatorlabs_webhook_events_total", event="expiring.plan.alert") == 1
        )
        assert h.exporter.db is not None
        left = await h.exporter.db.load(clock.now)
        assert [kind for _, kind, _ in left.events].count("generatorlabs") == 2  # only the good
    async with running(aiohttp_client, clock, path) as again:  # and the next start is clean
        assert set_aside(await again.metrics(), "generatorlabs") == 0


async def test_webhook_only_series_are_forgotten_after_their_max_age(harness: Harness) -> None:
    """Quiet, clear objects age out after webhooks.series_max_age (30 days); a monitor still
    listed or an agent still timed out never does (HetrixTools pushes only on change, so silence
    says nothing, and forgetting would resolve an alert nobody fixed)."""
    still_down = {"id": "AG" + "2" * 32, "name": "us-east"}
    cleared = [monitor("192.0.2.1", now="0", rbls=0), monitor("192.0.2.4")]
    assert (await harness.hetrix(cleared))[0] == 200
    for agent, kind in (
        (AGENT, "agent.timeout"),
        (AGENT, "agent.timeout.resolve"),
        (still_down, "agent.timeout"),
    ):
        answer = await harness.post(event(kind, sid=sid(), agent=agent, instances=[{"id": "i-1"}]))
        assert answer[0] == 204
    metrics = await harness.metrics()
    assert sample(metrics, "generatorlabs_agent_timed_out", agent_id=AGENT["id"]) == 0
    harness.clock.now += 20 * 86400
    assert (await harness.hetrix([monitor("192.0.2.2", now="0", rbls=0)]))[0] == 200  # heard of again
    harness.clock.now += 11 * 86400  # 31 days after the first push: past the 30-day default
    assert (await harness.hetrix([monitor("192.0.2.3")]))[0] == 200
    metrics = await harness.metrics()
    assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.1") is None
    assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.2") == 0
    assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.3") == 1
    assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.4") == 1
    assert sample(metrics, "generatorlabs_agent_timed_out", agent_id=AGENT["id"]) is None
    assert sample(metrics, "generatorlabs_agent_timed_out", agent_id=still_down["id"]) == 1
    assert forgotten(metrics, "hetrixtools_monitor", "max_age") == 1
    assert forgotten(metrics, "agent", "max_age") == 1


async def test_webhook_only_series_age_out_even_when_no_webhook_arrives(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(applier, "IDLE_WAKE", 0.0)  # the idle wake-up at once, not after 300 s
    assert (await harness.hetrix([monitor("192.0.2.1", now="0", rbls=0)]))[0] == 200
    assert sample(await harness.metrics(), "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.1") == 0
    harness.clock.now += 31 * 86400
    metrics = await harness.metrics()
    assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.1") is None
    assert forgotten(metrics, "hetrixtools_monitor", "max_age") == 1


async def test_forgetting_on_request_is_durable_and_in_order(
    aiohttp_client: Callable[..., Any], clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "state.sqlite"
    async with running(aiohttp_client, clock, path) as h:
        monitors = [monitor("192.0.2.1"), monitor("mx.example.com"), monitor("198.51.100.0/24")]
        assert (await h.hetrix(monitors))[0] == 200
        assert (await h.post(event("agent.timeout", sid=sid(), agent=AGENT, instances=[])))[0] == 204
        await h.settle()
        client = h.client
        assert (await client.delete("/-/webhooks/hetrixtools/monitors/192.0.2.1")).status == 204
        assert (await client.delete(f"/-/webhooks/agents/{AGENT['id']}")).status == 204
        assert (await client.delete("/-/webhooks/hetrixtools/monitors/198.51.100.0/24")).status == 204
        assert (await client.delete("/-/webhooks/hetrixtools/monitors/192.0.2.99")).status == 404
        assert (await client.delete("/-/webhooks/agents/AGunknown")).status == 404
        metrics = await h.metrics()
        assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.1") is None
        assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="mx.example.com") == 1
        assert sample(metrics, "generatorlabs_agent_info", agent_id=AGENT["id"], name="eu-west") is None
        assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="198.51.100.0/24") is None
        assert forgotten(metrics, "hetrixtools_monitor", "request") == 2
        assert forgotten(metrics, "agent", "request") == 1
    async with running(aiohttp_client, clock, path) as again:  # no checkpoint: all replayed in order
        metrics = await again.metrics()
        assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="192.0.2.1") is None
        assert sample(metrics, "hetrixtools_blacklist_monitor_listed", monitor="mx.example.com") == 1
        assert sample(metrics, "generatorlabs_agent_info", agent_id=AGENT["id"], name="eu-west") is None


# ---- property-based: hostile input through the real server ----------------------------------


async def assert_still_healthy(h: Harness, canary: int) -> None:
    """/metrics parses in both formats, and a valid event and chunk sent now are applied."""
    assert (
        await h.post(event("billing.balance.alert", sid=sid(), balance=str(canary), alert_threshold="1"))
    )[0] == 204
    assert (await h.hetrix([monitor("canary.example", now=str(canary % 7), rbls=canary % 7)]))[0] == 200
    text = await h.metrics()
    assert sample(text, "generatorlabs_billing_balance_usd") == canary
    assert sample(text, "hetrixtools_blacklist_monitor_listings", monitor="canary.example") == canary % 7
    for family in text_string_to_metric_families(text):
        if family.name == "hetrixtools_blacklist_monitor_listings":
            assert all(s.value >= 0 for s in family.samples)
    rejections = {
        (s.labels["source"], s.labels["reason"])
        for family in text_string_to_metric_families(text)
        if family.name == "generatorlabs_webhook_rejected"
        for s in family.samples
    }
    # whatever was sent, every rejection was counted under a reason the receivers name
    assert rejections == {(source, r) for source, reasons in webhook.REJECTIONS.items() for r in reasons}
    response = await h.client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status == 200
    list(openmetrics_families(await response.text()))  # type: ignore[no-untyped-call]


def template(h: Harness, kind: str) -> dict[str, Any]:
    hid, mid = host_id(h, listed=False), monitor_id(h)
    return {
        "listed": event(
            "rbl.host.listed", sid=sid(), host={"id": hid}, listed=True, total=1, details=[{"host": "PSBL"}]
        ),
        "completed": event(
            "rbl.host.check.completed", sid=sid(), host={"id": hid}, listed=False, total=0, details=[]
        ),
        "expiry": event("cert.expiration.trigger", sid=sid(), monitor={"id": mid}, expiry_days=14),
        "errors": event(
            "cert.error.trigger",
            sid=sid(),
            monitor={"id": mid},
            current_errors=[{"error_type": "connection"}],
        ),
        "agent": event("agent.timeout", sid=sid(), agent=dict(AGENT), instances=[{"id": "i-1"}]),
        "balance": event("billing.balance.alert", sid=sid(), balance="3", alert_threshold="5"),
    }[kind]


@given(
    kind=st.sampled_from(["listed", "completed", "expiry", "errors", "agent", "balance"]),
    replacements=st.dictionaries(st.sampled_from(FIELDS), VALUE, min_size=1, max_size=3),
    nested=st.sampled_from([None, "host", "monitor", "agent"]),
    nested_value=VALUE,
    canary=st.integers(0, 10**6),
)
async def test_signed_events_with_odd_fields_never_break_anything(
    harness: Harness,
    kind: str,
    replacements: dict[str, Any],
    nested: str | None,
    nested_value: Any,
    canary: int,
) -> None:
    body = {**template(harness, kind), **replacements}
    if nested is not None:
        body[nested] = {"id": nested_value, "name": nested_value}
    status, _ = await harness.post(json.dumps(body).encode())
    assert status in (200, 204, 400)
    await assert_still_healthy(harness, canary)


async def test_every_odd_value_in_every_field_is_answered_without_a_5xx(harness: Harness) -> None:
    """The exhaustive companion of the property test below: each odd value in each field of
    each kind of event, one at a time."""
    paths = {
        "balance": ("event_sid", "event_type", "event_date", "balance", "alert_threshold"),
        "listed": ("host", "host.id", "listed", "total", "details", "details.0"),
        "completed": ("host.id", "listed", "total", "details", "details.0"),
        "expiry": ("monitor", "monitor.id", "expiry_days"),
        "errors": ("monitor.id", "current_errors", "current_errors.0"),
        "agent": ("agent", "agent.id", "agent.name", "instances", "instances.0"),
    }
    with structlog.testing.capture_logs():
        for kind, fields in paths.items():
            for path in fields:
                for value in ODD_VALUES:
                    body = replaced(template(harness, kind), path, value)
                    status, _ = await harness.post(json.dumps(body).encode())
                    assert status in (200, 204, 400), (kind, path, value)  # 200: a replay
    await assert_still_healthy(harness, 42)


async def test_every_odd_value_in_every_hetrixtools_field_costs_only_its_item(harness: Harness) -> None:
    with structlog.testing.capture_logs():
        for path in ("monitor", "label", "blacklisted_now", "blacklisted_on", "blacklisted_on.0"):
            for value in ODD_VALUES:
                item = replaced(monitor("192.0.2.50"), path, value)
                status, text = await harness.hetrix([monitor("192.0.2.51"), item])
                assert status == 200 and text.startswith("accepted "), (path, value)
                item_alone_status, _ = await harness.hetrix([item])
                assert item_alone_status in (200, 400), (path, value)
    metrics = await harness.metrics()
    assert sample(metrics, "hetrixtools_blacklist_monitor_listings", monitor="192.0.2.51") == 2
    await assert_still_healthy(harness, 43)


def replaced(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`body` with the value at `path` ("key" or "key.sub", "key.0") replaced or added."""
    key, _, sub = path.partition(".")
    if not sub:
        return {**body, key: value}
    inner = body.get(key)
    if isinstance(inner, list) and sub.isdigit():
        return {**body, key: [value, *inner[1:]]}
    return {**body, key: {**(inner if isinstance(inner, dict) else {}), sub: value}}


HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"), max_size=120
)


@given(
    body=st.binary(max_size=300) | VALUE.map(lambda v: json.dumps(v).encode()),
    signature=st.sampled_from(["valid", "none", "text", "t_text", "v1_text", "stale", "many"]),
    sig_text=HEADER_TEXT,
    encoding=st.sampled_from([None, "gzip", "deflate", "identity", "x-unknown"]),
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain"]),
    canary=st.integers(0, 10**6),
)
async def test_random_generatorlabs_requests_never_get_a_5xx(
    harness: Harness,
    body: bytes,
    signature: str,
    sig_text: str,
    encoding: str | None,
    content_type: str,
    canary: int,
) -> None:
    now = int(harness.clock.now)
    good = sign(body, SECRET, now)
    header = {
        "valid": good,
        "none": None,
        "text": sig_text,
        "t_text": f"t={sig_text},v1={'0' * 64}",
        "v1_text": f"t={now},v1={sig_text}",
        "stale": sign(body, SECRET, now - 10_000),
        "many": ",".join([good] * 20),
    }[signature]
    headers = {"Content-Type": content_type}
    if header is not None:
        headers["X-Webhook-Signature"] = header
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    with structlog.testing.capture_logs():
        response = await harness.client.post("/webhooks/generatorlabs", data=body, headers=headers)
    assert response.status < 500
    await assert_still_healthy(harness, canary)


ITEM = st.one_of(
    VALUE,
    st.fixed_dictionaries(
        {"monitor": st.text(max_size=10) | VALUE},
        optional={
            "label": VALUE,
            "blacklisted_now": VALUE,
            "blacklisted_on": st.lists(st.fixed_dictionaries({"rbl": VALUE}), max_size=3) | VALUE,
        },
    ),
)


@given(
    chunk=st.lists(ITEM, max_size=6).map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200)
    | VALUE.map(lambda v: json.dumps(v).encode()),
    encoding=st.sampled_from([None, "gzip"]),
    canary=st.integers(0, 10**6),
)
async def test_random_hetrixtools_chunks_never_get_a_5xx(
    harness: Harness, chunk: bytes, encoding: str | None, canary: int
) -> None:
    headers = {"Content-Type": "application/json"}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    with structlog.testing.capture_logs():
        response = await harness.client.post(f"/webhooks/hetrixtools/{HX_TOKEN}", data=chunk, headers=headers)
    assert response.status in (200, 400)
    if response.status == 200:
        assert (await response.text()).startswith("accepted ")
    await assert_still_healthy(harness, canary)


@pytest.mark.parametrize("path", ["/webhooks/generatorlabs", f"/webhooks/hetrixtools/{HX_TOKEN}"])
async def test_a_body_trickled_too_slowly_is_408_and_the_connection_closed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A sender that announces a body and never finishes it cannot hold a connection (and so a
    place under the server's connection cap) for ever."""
    monkeypatch.setattr(webhook, "BODY_TIMEOUT", 0.2)  # event-loop seconds; 30 s in production
    reader, writer = await asyncio.open_connection(harness.client.host, harness.client.port)
    body = b'{"event_sid": "TA'
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-Webhook-Signature: {sign(body, SECRET, int(harness.clock.now))}\r\n"
        "Content-Length: 4096\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"Connection: close" in answer
    metrics = await harness.metrics()
    source = "generatorlabs" if "generatorlabs" in path else "hetrixtools"
    assert sample(metrics, "generatorlabs_webhook_rejected_total", source=source, reason="timeout") == 1


async def trickle_start(
    h: Harness, path: str, content_type: str = "application/json"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A request whose head announces 4 KB of body, of which only a few bytes are sent."""
    reader, writer = await asyncio.open_connection(h.client.host, h.client.port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        "X-Webhook-Signature: t=1,v1=00\r\nContent-Length: 4096\r\n\r\n"
    )
    writer.write(head.encode() + b'{"ev')
    await writer.drain()
    return reader, writer


@pytest.mark.parametrize(
    ("path", "content_type", "status"),
    [
        ("/webhooks/generatorlabs", "text/plain", b"415"),
        ("/webhooks/hetrixtools/wrong-token-0123456789", "application/json", b"401"),
    ],
)
async def test_a_refused_request_whose_body_trickles_is_answered_and_closed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, path: str, content_type: str, status: bytes
) -> None:
    """Refusals read and drop the body before answering, but only for DRAIN_TIMEOUT: a sender
    that never finishes its body cannot hold the connection."""
    monkeypatch.setattr(webhook, "DRAIN_TIMEOUT", 0.2)  # event-loop seconds; 2 s in production
    reader, writer = await trickle_start(harness, path, content_type)
    answer = await asyncio.wait_for(reader.read(), timeout=10)  # read() ends when the server closes
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 " + status)


async def test_webhook_bodies_in_flight_are_capped_and_metrics_still_answers(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Senders trickling bodies hold at most MAX_BODIES_IN_FLIGHT connections; the next webhook
    is told to come back (503, Retry-After) at once, and /metrics is served meanwhile."""
    monkeypatch.setattr(webhook, "MAX_BODIES_IN_FLIGHT", 2)
    held = [await trickle_start(harness, "/webhooks/generatorlabs") for _ in range(2)]
    parts = harness.exporter.webhook_parts
    assert parts is not None
    for _ in range(1000):  # let the server start reading both bodies (bounded: 10 s at most)
        if parts.bodies_in_flight >= 2:
            break
        await asyncio.sleep(0.01)
    assert parts.bodies_in_flight == 2
    refused = await harness.client.post(
        f"/webhooks/hetrixtools/{HX_TOKEN}", data=b"[]", headers={"Content-Type": "application/json"}
    )
    assert refused.status == 503 and refused.headers["Retry-After"] == "5"
    metrics = await harness.metrics()
    assert sample(metrics, "generatorlabs_webhook_rejected_total", source="hetrixtools", reason="busy") == 1
    for _, writer in held:
        writer.close()
        await writer.wait_closed()
