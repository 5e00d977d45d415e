"""Pure: parse webhook bodies (Generator Labs signed events, HetrixTools blacklist chunks) into
typed values, or say exactly what is wrong (API reference "RBL/Billing/Certificate/Agent Events";
HetrixTools "Blacklist Monitoring webhook")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter import fields
from exporter.errors import ExporterError
from exporter.fields import Unreadable
from exporter.records import error_reason, rbl_name

RBL_EVENTS = ("rbl.host.check.started", "rbl.host.check.completed", "rbl.host.listed",
              "rbl.host.delisted")
CERT_EVENTS = ("cert.expiration.trigger", "cert.expiration.resolve", "cert.error.trigger",
               "cert.error.resolve", "cert.changed")
AGENT_EVENTS = ("agent.timeout", "agent.timeout.resolve")
BILLING_EVENTS = ("billing.balance.alert", "billing.recharge.success", "billing.recharge.failed",
                  "billing.renewal.success", "billing.renewal.failed", "expiring.card.alert",
                  "expiring.plan.alert")
KNOWN_EVENTS = RBL_EVENTS + CERT_EVENTS + AGENT_EVENTS + BILLING_EVENTS
EVENT_LABELS = (*KNOWN_EVENTS, "other")  # the bounded `event` label set


class MalformedEvent(ExporterError):
    """A body that is not a usable event: the webhook gets a 400 saying why."""


@dataclass(frozen=True, slots=True)
class Event:
    sid: str
    type: str  # one of KNOWN_EVENTS, or "other"
    raw_type: str
    date: float
    body: Mapping[str, Any]

    @property
    def object_id(self) -> str | None:
        """The host, monitor or agent the event is about."""
        for key in ("host", "monitor", "agent"):
            obj = self.body.get(key)
            if isinstance(obj, Mapping):
                return fields.text(obj.get("id"))
        return None


def decode_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise MalformedEvent(f"body is not JSON: {err}") from err


def _require_object(body: Mapping[str, Any], key: str, event_type: str) -> None:
    obj = body.get(key)
    if not isinstance(obj, Mapping) or not fields.text(obj.get("id")):
        raise MalformedEvent(f"{event_type}: '{key}' must be an object with an id")


def parse_event(raw: bytes) -> Event:
    body = decode_json(raw)
    if not isinstance(body, Mapping):
        raise MalformedEvent("body must be a JSON object")
    sid = fields.text(body.get("event_sid"))
    raw_type = fields.text(body.get("event_type") or body.get("event"))
    if sid is None or raw_type is None:
        raise MalformedEvent("missing required field event_sid or event_type")
    try:
        date = fields.timestamp(body.get("event_date"))
    except Unreadable as err:
        raise MalformedEvent(f"event_date: {err}") from err
    if date is None:
        raise MalformedEvent("missing required field event_date")
    event_type = raw_type if raw_type in KNOWN_EVENTS else "other"
    if event_type in RBL_EVENTS:
        _require_object(body, "host", event_type)
    elif event_type in CERT_EVENTS:
        _require_object(body, "monitor", event_type)
        if event_type.startswith("cert.expiration.") and not isinstance(
            body.get("expiry_days"), int | float | str
        ):
            raise MalformedEvent(f"{event_type}: missing required field expiry_days")
    elif event_type in AGENT_EVENTS:
        _require_object(body, "agent", event_type)
    return Event(sid, event_type, raw_type, date, body)


# ---- what an event says, in plain values ---------------------------------------------------


def listing(event: Event) -> tuple[bool, int, tuple[str, ...]] | None:
    """(listed, listings, rbls) from rbl.host.listed/delisted/check.completed; None otherwise."""
    if event.type not in ("rbl.host.listed", "rbl.host.delisted", "rbl.host.check.completed"):
        return None
    details = event.body.get("details")
    rbls = tuple(dict.fromkeys(n for d in details if (n := rbl_name(d)))) if isinstance(
        details, list) else ()
    try:
        listed = fields.boolean(event.body.get("listed"))
        total = fields.number(event.body.get("total"))
    except Unreadable:
        listed, total = None, None
    if event.type == "rbl.host.delisted":
        return (False, 0, ())
    if listed is None:
        listed = event.type == "rbl.host.listed" or bool(total) or bool(rbls)
    count = int(total) if total is not None else len(rbls)
    return (listed, max(count, len(rbls), 1) if listed else 0, rbls if listed else ())


def error_reasons(items: object) -> tuple[str, ...]:
    """Bounded reasons of a `current_errors` list (webhook_cert_error objects or strings)."""
    if not isinstance(items, list):
        return ()
    out = []
    for item in items:
        if isinstance(item, Mapping):
            text = fields.text(item.get("error_type") or item.get("type") or item.get("reason")
                               or item.get("code") or item.get("error"))
        else:
            text = fields.text(item)
        out.append(error_reason(text))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class HetrixMonitor:
    monitor: str
    label: str
    listed_now: int
    rbls: tuple[str, ...]


def parse_hetrix_chunk(raw: bytes) -> list[HetrixMonitor]:
    """A JSON array of up to 100 monitor objects; numbers arrive as strings; blacklisted_on is a
    list of {rbl, delist} or null."""
    body = decode_json(raw)
    if not isinstance(body, list):
        raise MalformedEvent("body must be a JSON array of monitor objects")
    out = []
    for i, item in enumerate(body):
        if not isinstance(item, Mapping):
            raise MalformedEvent(f"item {i}: must be an object")
        monitor = fields.text(item.get("monitor"))
        if monitor is None:
            raise MalformedEvent(f"item {i}: missing required field monitor")
        try:
            now = fields.number(item.get("blacklisted_now"))
        except Unreadable as err:
            raise MalformedEvent(f"item {i}: blacklisted_now: {err}") from err
        listed_on = item.get("blacklisted_on")
        rbls = tuple(dict.fromkeys(
            n for entry in listed_on if isinstance(entry, Mapping) and (n := fields.text(entry.get("rbl")))
        )) if isinstance(listed_on, list) else ()
        count = int(now) if now is not None else len(rbls)
        out.append(HetrixMonitor(monitor, fields.text(item.get("label")) or "", count,
                                 rbls if count else ()))
    return out
