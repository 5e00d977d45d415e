"""Webhook bodies are validated once, at intake: an unusable field is a MalformedEvent naming it,
a usable event carries typed facts that the overlay folds in without ever raising, and
HetrixTools chunks are checked item by item. Stored state is read back value by value."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.api.records import Listing, parse_host
from exporter.state.events import HetrixMonitor
from exporter.state.overlay import WebhookState
from exporter.webhooks.payloads import (
    MalformedEvent,
    check_hetrix_chunk,
    parse_event,
    parse_forget,
)
from tests.helpers import FIELDS, VALUE

HOST = "HT" + "a" * 32
MONITOR = "CM" + "b" * 32
AGENT = "AG" + "c" * 32
DATE = "2026-09-21T15:00:00+00:00"


def body(event_type: str, **fields: Any) -> bytes:
    return json.dumps(
        {"event_sid": "TA" + "1" * 32, "event_type": event_type, "event_date": DATE, **fields}
    ).encode()


def field_at_fault(raw: bytes) -> str:
    with pytest.raises(MalformedEvent) as info:
        parse_event(raw)
    return info.value.field


def test_a_listed_host_gives_its_listing() -> None:
    event = parse_event(
        body(
            "rbl.host.listed",
            host={"id": HOST},
            listed=True,
            total="2",
            details=[{"host": "Spamhaus ZEN"}, "SpamCop", {"host": "SpamCop"}],
        )
    )
    assert event.object_id == HOST
    assert event.listing == Listing(True, 2, ("Spamhaus ZEN", "SpamCop"))
    delisted = parse_event(body("rbl.host.delisted", host={"id": HOST}, listed=False, total=0))
    assert delisted.listing == Listing(False, 0, ())


@pytest.mark.parametrize(
    ("listed", "count", "rbls", "expected"),
    [
        (True, 1, ["Spamhaus ZEN", "SpamCop"], Listing(True, 2, ("Spamhaus ZEN", "SpamCop"))),
        (True, 3, ["SpamCop"], Listing(True, 3, ("SpamCop",))),
        (True, 0, [], Listing(True, 1, ())),
        (None, 0, ["PSBL"], Listing(True, 1, ("PSBL",))),
        (None, 2, [], Listing(True, 2, ())),
        (None, None, [], Listing(False, 0, ())),
        (False, 2, ["PSBL"], Listing(False, 0, ())),
    ],
)
def test_a_polled_host_and_a_webhook_read_the_same_listing(
    listed: bool | None, count: int | None, rbls: list[str], expected: Listing
) -> None:
    """The count and the RBL list disagreed between the two readers: a count of 1 naming two
    RBLs was 1 on the polled host and 2 from rbl.host.check.completed. Both now say 2."""
    flag = {} if listed is None else {"listed": listed}
    total = {} if count is None else {"total": count}
    polled = parse_host(
        {
            "id": HOST,
            "host": "192.0.2.1",
            **flag,
            **({} if count is None else {"listed_count": count}),
            "listed_details": [{"host": r} for r in rbls],
        },
        lambda obj, field, detail: None,
    )
    event = parse_event(
        body(
            "rbl.host.check.completed",
            host={"id": HOST},
            **flag,
            **total,
            details=[{"host": r} for r in rbls],
        )
    )
    assert polled is not None
    assert (polled.listed, polled.listings, polled.rbls) == (
        expected.listed,
        expected.listings,
        expected.rbls,
    )
    assert event.listing == expected


def test_a_hetrixtools_monitor_reads_its_listing_by_the_same_rule() -> None:
    item = {"monitor": "192.0.2.1", "blacklisted_now": "1", "blacklisted_on": [{"rbl": "a"}, {"rbl": "b"}]}
    (monitor,) = check_hetrix_chunk(json.dumps([item]).encode()).monitors
    assert (monitor.listed_now, monitor.rbls) == (2, ("a", "b"))


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (body("rbl.host.listed", host={"id": HOST}, total="NaN"), "total"),
        (body("rbl.host.listed", host={"id": HOST}, total="1e999"), "total"),
        (body("rbl.host.listed", host={"id": HOST}, total=-1), "total"),
        (body("rbl.host.listed", host={"id": HOST}, total=[1]), "total"),
        (body("rbl.host.listed", host={"id": HOST}, total=True), "total"),
        (body("rbl.host.listed", host={"id": HOST}, total=10**400), "total"),
        (body("rbl.host.listed", host={"id": HOST}, listed="maybe"), "listed"),
        (body("rbl.host.listed", host={"id": HOST}, listed=[True]), "listed"),
        (body("rbl.host.listed", host={"id": HOST}, details="PSBL"), "details"),
        (body("rbl.host.listed", host={"id": HOST}, details=["x"] * 100_000), "details"),
        (body("rbl.host.listed", host={"id": 12}), "host"),
        (body("rbl.host.listed", host={"id": "HT3/../../../../etc"}), "host"),
        (body("rbl.host.listed", host="HT" + "a" * 32), "host"),
        (body("cert.expiration.trigger", monitor={"id": MONITOR}, expiry_days="NaN"), "expiry_days"),
        (body("cert.expiration.trigger", monitor={"id": MONITOR}, expiry_days=10**400), "expiry_days"),
        (body("cert.expiration.trigger", monitor={"id": MONITOR}, expiry_days="9" * 400), "expiry_days"),
        (body("cert.expiration.trigger", monitor={"id": MONITOR}, expiry_days=1e9), "expiry_days"),
        (body("cert.expiration.trigger", monitor={"id": MONITOR}), "expiry_days"),
        (body("cert.error.trigger", monitor={"id": MONITOR}, current_errors={"a": 1}), "current_errors"),
        (body("cert.error.trigger", monitor={"id": MONITOR}, current_errors=[3]), "current_errors"),
        (body("agent.timeout", agent={"id": AGENT}, instances="i-1"), "instances"),
        (body("agent.timeout", agent={"id": AGENT}, instances=[{"id": ["i-1"]}]), "instances"),
        (body("agent.timeout", agent={"id": AGENT, "name": {"x": 1}}, instances=[]), "agent"),
        (body("agent.timeout", agent={"id": None}, instances=[]), "agent"),
        (body("billing.balance.alert", balance="NaN", alert_threshold="15"), "balance"),
        (body("billing.balance.alert", balance="1", alert_threshold="Infinity"), "alert_threshold"),
        (body("billing.balance.alert", balance=float("inf")), "balance"),
        (body("other.event", event_date="2024-13-45"), "event_date"),
        (body("other.event", event_date="9" * 400), "event_date"),
        (body("other.event", event_date=float("nan")), "event_date"),
        (body("other.event", event_sid=["TA1"]), "event_sid"),
        (body("other.event", event_sid=7), "event_sid"),
        (body("other.event", event_sid="TA\ud800"), "event_sid"),  # no replay key in SQLite
        (body("other.event", event_sid="TA 1"), "event_sid"),
        (b'{"event_type": "x", "event_date": "2026-01-01"}', "event_sid"),
        (b"[" * 100_000 + b"]" * 100_000, "body"),  # RecursionError in json.loads
        (b'{"event_sid": "TA\xed\xa0\x80"}', "body"),  # a raw surrogate: not UTF-8
        (b'{"event_sid": "TA\xff"}', "body"),
        (b"[]", "body"),
    ],
)
def test_unusable_fields_are_named(raw: bytes, field: str) -> None:
    assert field_at_fault(raw) == field


def test_text_is_kept_whatever_it_holds() -> None:
    odd = "\ud800 NUL\x00 " + "x" * 5000
    event = parse_event(
        body("agent.timeout", agent={"id": AGENT, "name": odd}, instances=[{"id": "i-\ud800"}])
    )
    assert event.agent_name == odd.strip() and event.instances == ("i-\ud800",)
    listed = parse_event(body("rbl.host.listed", host={"id": HOST}, details=[{"host": odd}]))
    assert listed.listing is not None and listed.listing.rbls == (odd.strip(),)


def test_hetrixtools_items_are_checked_one_by_one() -> None:
    good = {
        "monitor": "192.0.2.1",
        "label": "mx",
        "blacklisted_now": "1",
        "blacklisted_on": [{"rbl": "zen.spamhaus.org"}],
    }
    chunk = check_hetrix_chunk(
        json.dumps(
            [
                good,
                {**good, "blacklisted_now": "inf"},
                {**good, "blacklisted_now": "-5"},
                {**good, "blacklisted_now": [1]},
                {"label": "no monitor"},
                "not an object",
                {**good, "monitor": 42},
                {**good, "blacklisted_on": "zen"},
                {**good, "label": [1]},
                {**good, "monitor": "192.0.2.2", "blacklisted_now": "0", "blacklisted_on": None},
            ]
        ).encode()
    )
    assert chunk.monitors == [
        HetrixMonitor("192.0.2.1", "mx", 1, ("zen.spamhaus.org",), delist=("",)),
        HetrixMonitor("192.0.2.2", "mx", 0, ()),
    ]
    assert [s.field for s in chunk.skipped] == [
        "blacklisted_now",
        "blacklisted_now",
        "blacklisted_now",
        "monitor",
        "item",
        "monitor",
        "blacklisted_on",
        "label",
    ]
    assert not chunk.unusable
    assert check_hetrix_chunk(b'[{"monitor": "x", "blacklisted_now": "NaN"}]').unusable
    with pytest.raises(MalformedEvent):
        check_hetrix_chunk(b'{"monitor": "x"}')


def test_forget_records_round_trip() -> None:
    with pytest.raises(MalformedEvent):
        parse_forget(b'{"kind": "host", "id": "x"}')
    assert parse_forget(b'{"kind": "agent", "id": "AG1"}').ident == "AG1"


def test_webhook_only_objects_expire_and_can_be_forgotten() -> None:
    state = WebhookState()
    old = [
        HetrixMonitor("old", "", 0, ()),
        HetrixMonitor("listed", "", 1, ("a",)),
        HetrixMonitor("new", "", 0, ()),
    ]
    state.apply_hetrix(old, 0.0)
    state.apply_hetrix([HetrixMonitor("new", "", 0, ())], 1000.0)
    down = "AG" + "d" * 32
    for agent, kind in ((AGENT, "agent.timeout"), (AGENT, "agent.timeout.resolve"), (down, "agent.timeout")):
        state.apply(parse_event(body(kind, agent={"id": agent}, instances=["i-1"])), 0.0)
    assert state.expire(1500.0, 0) == {}  # 0: never
    assert state.expire(1500.0, 1000.0) == {"hetrixtools_monitor": 1, "agent": 1}
    # still listed, still timed out: kept however long HetrixTools or the agent stays silent
    assert set(state.hetrix) == {"listed", "new"} and set(state.agents) == {down}
    assert state.forget("hetrixtools_monitor", "new") and not state.forget("agent", AGENT)


def test_stored_state_is_read_back_value_by_value() -> None:
    stored = {
        "balance": float("nan"),
        "balance_threshold": "15",
        "hetrix": {
            "neg": {"label": "", "listed_now": -5, "rbls": [], "at": 1.0},
            "inf": {"label": "", "listed_now": float("inf"), "rbls": [], "at": 1.0},
            "ok": {"label": "x", "listed_now": 2, "rbls": ["a", "b"], "at": 1.0},
        },
        "monitors": {"m": {"expiry_days": float("inf"), "expiry_at": 1.0, "errors": None, "errors_at": 0.0}},
        "agents": {"a": {"name": "n", "timed_out": True, "instances": ["i"], "at": 5.0}},
        "events": {"billing.balance.alert": 3, "made.up": 1},
        "hosts": "garbage",
        "last_seq": "7",
    }
    state = WebhookState.from_json(json.loads(json.dumps(stored)))
    assert state.balance is None and state.balance_threshold == 15
    assert set(state.hetrix) == {"ok"}
    assert state.monitors["m"].expiry_days is None
    assert state.agents["a"].seen == 5.0  # written before `seen` existed
    assert state.events == {"billing.balance.alert": 3} and state.hosts == {} and state.last_seq == 7
    assert WebhookState.from_json(["not", "a", "mapping"]).hetrix == {}


TEMPLATES = [
    {
        "event_type": "rbl.host.listed",
        "host": {"id": HOST},
        "listed": True,
        "total": 1,
        "details": [{"host": "PSBL"}],
    },
    {
        "event_type": "rbl.host.check.completed",
        "host": {"id": HOST},
        "listed": False,
        "total": 0,
        "details": [],
    },
    {"event_type": "cert.expiration.trigger", "monitor": {"id": MONITOR}, "expiry_days": 14},
    {
        "event_type": "cert.error.trigger",
        "monitor": {"id": MONITOR},
        "current_errors": [{"error_type": "name_mismatch"}],
    },
    {"event_type": "agent.timeout", "agent": {"id": AGENT, "name": "eu"}, "instances": [{"id": "i"}]},
    {"event_type": "billing.balance.alert", "balance": "12.34", "alert_threshold": "15.00"},
]


@given(
    template=st.sampled_from(TEMPLATES),
    key=st.sampled_from(FIELDS),
    value=VALUE,
)
def test_any_field_value_is_parsed_or_named_and_applying_never_raises(
    template: dict[str, Any], key: str, value: Any
) -> None:
    raw = json.dumps({"event_sid": "TA" + "1" * 32, "event_date": DATE, **template, key: value})
    try:
        event = parse_event(raw.encode())
    except MalformedEvent as err:
        at_fault: str | None = err.field
    else:
        at_fault = None
    if at_fault is not None:  # the field replaced, or (a new event type) one that type needs
        assert at_fault in {key, "body"} or key == "event_type"
        return
    state = WebhookState()
    state.apply(event, 0.0)
    for mark in state.hosts.values():
        assert mark.listings >= 0
    for days in (m.expiry_days for m in state.monitors.values()):
        assert days is None or math.isfinite(days)
    assert state.balance is None or math.isfinite(state.balance)
    WebhookState.from_json(json.loads(json.dumps(state.to_json())))
