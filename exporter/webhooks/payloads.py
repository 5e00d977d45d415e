"""Pure: parse and validate webhook bodies once, at intake, into typed facts (API reference
"RBL/Billing/Certificate/Agent Events"; HetrixTools "Blacklist Monitoring webhook").

A Generator Labs event is either wholly usable or a MalformedEvent naming the one field that is
not (the receiver answers 400 and never stores it). Every number goes through the bounded
readers of exporter.api.fields (NaN, infinities, `1e400`, 400-digit integers, booleans, lists and
objects are refused); ids must be text of a bounded length, and host and monitor ids must have
their documented form (`HT`/`CM` and 32 hex digits) because they go into API paths. Free text
(names, labels, RBL names) is kept whatever it holds: the renderer escapes and cuts label values.

A HetrixTools chunk is checked item by item: good items are kept, bad ones are listed as skipped
with the field that made them unusable, so one odd monitor never costs the rest of the chunk. The
per-RBL `delist` links and the monitor's `report_link` are kept as text (a link that is not text
is dropped, never a reason to skip the monitor) for the status page.

The overlay folds only these typed values in, so applying a parsed event cannot fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from exporter.api import fields
from exporter.api.fields import HOST_PREFIX, MONITOR_PREFIX, Unreadable
from exporter.api.records import Listing, error_reason, label_text, listing, rbl_names
from exporter.errors import ExporterError
from exporter.state.events import (
    AGENT_EVENTS,
    CERT_EVENTS,
    FORGETTABLE,
    KNOWN_EVENTS,
    MAX_EXPIRY_DAYS,
    RBL_EVENTS,
    Event,
    HetrixMonitor,
)

T = TypeVar("T")

LISTING_EVENTS = ("rbl.host.listed", "rbl.host.delisted", "rbl.host.check.completed")

# Bounds on what one webhook may say; anything larger is nonsense, not data.
MAX_ID_CHARS = 256  # event_sid, agent ids, instance ids, HetrixTools monitors (a DNS name <= 253)
MAX_LIST_ITEMS = 1_000  # RBLs per host or monitor, errors per monitor, instances per agent
MAX_LINK_CHARS = 2_048  # a HetrixTools delist or report link (a longer one is dropped, not cut)
# Host and monitor ids go into API paths (targeted refresh): only the SID form
# (exporter.api.fields.is_sid, the rule polls use too) with the prefix of their kind.
# The event SID becomes a replay key in the state file (SQLite refuses lone surrogates) and a
# log field: printable ASCII only (documented as `TA` and 32 hex digits).
EVENT_SID = re.compile(r"[!-~]+")

# The bounded `field` label values of generatorlabs_parse_warnings_total for webhooks.
EVENT_OBJECT = "webhook_event"
HETRIX_OBJECT = "hetrixtools_monitor"


class MalformedEvent(ExporterError):
    """A body that is not a usable event: the webhook gets a 400 saying why. `field` is the
    bounded name of the field at fault ("body" when the whole body is)."""

    def __init__(self, message: str, field: str = "body") -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Skipped:
    """One chunk item that was not usable: its index and the field at fault."""

    index: int
    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class HetrixChunk:
    monitors: list[HetrixMonitor]
    skipped: list[Skipped]

    @property
    def unusable(self) -> bool:
        """Items, and not one of them usable: the receiver answers 400 and stores nothing."""
        return bool(self.skipped) and not self.monitors

    def summary(self) -> str:
        first = f"; item {self.skipped[0].index}: {self.skipped[0].field}: {self.skipped[0].reason}"
        return f"{len(self.monitors)} usable monitors, {len(self.skipped)} items skipped" + (
            first if self.skipped else ""
        )


@dataclass(frozen=True, slots=True)
class Forget:
    """An operator's request to forget one webhook-only object (`DELETE /-/webhooks/...`)."""

    kind: str  # one of FORGETTABLE
    ident: str

    def to_json(self) -> bytes:
        return json.dumps({"kind": self.kind, "id": self.ident}).encode()


def decode_json(body: bytes) -> Any:
    """JSON in UTF-8 (RFC 8259), or MalformedEvent: invalid UTF-8 (raw surrogates included,
    which json.loads alone would let through), deep nesting and numbers of thousands of digits
    are all refused here, never an exception of another kind. Escaped surrogates (`"\\ud800"`)
    are valid JSON text and are kept."""
    try:
        return json.loads(body.decode("utf-8"))
    except RecursionError:
        raise MalformedEvent("body is not JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise MalformedEvent(f"body is not JSON: {str(err)[:200]}") from None


# ---- Generator Labs events -----------------------------------------------------------------


def _ident(value: object, field: str, pattern: re.Pattern[str] | None = None, prefix: str = "") -> str:
    """An id: text, stripped, 1 to MAX_ID_CHARS characters, of the form given if any (`pattern`,
    or a SID starting with `prefix`)."""
    if not isinstance(value, str) or not value.strip():
        raise MalformedEvent(f"{field}: must be a non-empty string, got {fields.shorten(value)}", field)
    ident = value.strip()
    if len(ident) > MAX_ID_CHARS:
        raise MalformedEvent(f"{field}: longer than {MAX_ID_CHARS} characters", field)
    if (pattern is not None and not pattern.fullmatch(ident)) or (
        prefix and not fields.is_sid(ident, prefix)
    ):
        raise MalformedEvent(f"{field}: not a documented id: {fields.shorten(ident)}", field)
    return ident


def _object_id(body: Mapping[str, Any], key: str, prefix: str = "") -> str:
    """The id of the object `key` (a SID starting with `prefix`, when given)."""
    obj = body.get(key)
    if not isinstance(obj, Mapping):
        raise MalformedEvent(f"'{key}' must be an object with an id, got {fields.shorten(obj)}", key)
    return _ident(obj.get("id"), key, prefix=prefix)


def _read(reader: Callable[[object], T], body: Mapping[str, Any], key: str) -> T:
    try:
        return reader(body.get(key))
    except Unreadable as err:
        raise MalformedEvent(f"{key}: {err}", key) from None


def _list(body: Mapping[str, Any], key: str) -> list[Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise MalformedEvent(f"{key}: must be an array, got {fields.shorten(value)}", key)
    if len(value) > MAX_LIST_ITEMS:
        raise MalformedEvent(f"{key}: more than {MAX_LIST_ITEMS} entries", key)
    return value


def _listing(event_type: str, body: Mapping[str, Any]) -> Listing:
    """What rbl.host.listed/delisted/check.completed say about the host, read by the one rule
    (exporter.api.records.listing). A delisted host is not listed, whatever else the body says;
    a listed event with no `listed` flag is listed. Every field is validated either way."""
    listed = _read(fields.boolean, body, "listed")
    total = _read(fields.count, body, "total")
    rbls = rbl_names(_list(body, "details"))
    if event_type == "rbl.host.delisted":
        listed = False
    elif listed is None and event_type == "rbl.host.listed":
        listed = True
    return listing(listed, total, rbls)


def _expiry_days(body: Mapping[str, Any]) -> float:
    days = _read(fields.number, body, "expiry_days")
    if days is None:
        raise MalformedEvent("missing required field expiry_days", "expiry_days")
    if abs(days) > MAX_EXPIRY_DAYS:
        raise MalformedEvent(f"expiry_days: beyond {MAX_EXPIRY_DAYS:g} days: {days:g}", "expiry_days")
    return days


def _error_reasons(items: list[Any] | None) -> tuple[str, ...]:
    """Bounded reasons of a `current_errors` list (webhook_cert_error objects or strings)."""
    out = []
    for item in items or ():
        if isinstance(item, Mapping):
            text = fields.text(
                item.get("error_type")
                or item.get("type")
                or item.get("reason")
                or item.get("code")
                or item.get("error")
            )
        elif isinstance(item, str):
            text = fields.text(item)
        else:
            raise MalformedEvent(
                f"current_errors: entries must be objects, got {fields.shorten(item)}", "current_errors"
            )
        out.append(error_reason(text))
    return tuple(out)


def _instances(items: list[Any] | None) -> tuple[str, ...]:
    out = []
    for item in items or ():
        raw = (item.get("id") or item.get("name")) if isinstance(item, Mapping) else item
        out.append(_ident(raw, "instances"))
    return tuple(dict.fromkeys(out))


def _agent_name(body: Mapping[str, Any]) -> str | None:
    agent = body.get("agent")
    name = agent.get("name") if isinstance(agent, Mapping) else None
    if isinstance(name, bool) or not isinstance(name, str | int | float | None):
        raise MalformedEvent(f"agent: name must be text, got {fields.shorten(name)}", "agent")
    return fields.text(name)


def parse_event(raw: bytes) -> Event:
    """A signed Generator Labs event, validated; MalformedEvent names the field at fault."""
    body = decode_json(raw)
    if not isinstance(body, Mapping):
        raise MalformedEvent("body must be a JSON object")
    for key in ("event_sid", "event_type", "event_date"):
        if body.get(key) is None and not (key == "event_type" and body.get("event") is not None):
            raise MalformedEvent(f"missing required field {key}", key)
    sid = _ident(body.get("event_sid"), "event_sid", EVENT_SID)
    raw_type = _ident(body.get("event_type") or body.get("event"), "event_type")
    date = _read(fields.timestamp, body, "event_date")
    if date is None:
        raise MalformedEvent("event_date: not a date after 1970", "event_date")
    event_type = raw_type if raw_type in KNOWN_EVENTS else "other"
    if event_type in RBL_EVENTS:
        host = _object_id(body, "host", HOST_PREFIX)
        said = _listing(event_type, body) if event_type in LISTING_EVENTS else None
        return Event(sid, event_type, raw_type, date, host, listing=said)
    if event_type in CERT_EVENTS:
        monitor = _object_id(body, "monitor", MONITOR_PREFIX)
        if event_type.startswith("cert.expiration."):
            return Event(sid, event_type, raw_type, date, monitor, expiry_days=_expiry_days(body))
        if event_type.startswith("cert.error."):
            errors = _error_reasons(_list(body, "current_errors"))
            return Event(sid, event_type, raw_type, date, monitor, errors=errors)
        return Event(sid, event_type, raw_type, date, monitor)
    if event_type in AGENT_EVENTS:
        agent = _object_id(body, "agent")
        return Event(
            sid,
            event_type,
            raw_type,
            date,
            agent,
            agent_name=_agent_name(body),
            instances=_instances(_list(body, "instances")),
        )
    if event_type == "billing.balance.alert":
        return Event(
            sid,
            event_type,
            raw_type,
            date,
            balance=_read(fields.number, body, "balance"),
            alert_threshold=_read(fields.number, body, "alert_threshold"),
        )
    return Event(sid, event_type, raw_type, date)


# ---- HetrixTools chunks --------------------------------------------------------------------


class _Skip(Exception):
    """Internal: one chunk item is unusable (never escapes this module)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason


def _hetrix_item(item: object) -> HetrixMonitor:
    if not isinstance(item, Mapping):
        raise _Skip("item", f"must be an object, got {fields.shorten(item)}")
    monitor = item.get("monitor")
    if not isinstance(monitor, str) or not monitor.strip():
        raise _Skip("monitor", f"must be a non-empty string, got {fields.shorten(monitor)}")
    if len(monitor.strip()) > MAX_ID_CHARS:
        raise _Skip("monitor", f"longer than {MAX_ID_CHARS} characters")
    label = item.get("label")
    if isinstance(label, bool) or not isinstance(label, str | int | float | None):
        raise _Skip("label", f"must be text, got {fields.shorten(label)}")
    try:
        now = fields.count(item.get("blacklisted_now"))
    except Unreadable as err:
        raise _Skip("blacklisted_now", str(err)) from None
    listed_on = item.get("blacklisted_on")
    if listed_on is not None and not isinstance(listed_on, list):
        raise _Skip("blacklisted_on", f"must be an array or null, got {fields.shorten(listed_on)}")
    if listed_on is not None and len(listed_on) > MAX_LIST_ITEMS:
        raise _Skip("blacklisted_on", f"more than {MAX_LIST_ITEMS} entries")
    links: dict[str, str] = {}  # each RBL named, in order, with its first delist link
    for entry in listed_on or ():
        if isinstance(entry, Mapping) and (name := label_text(entry.get("rbl"))):
            links[name] = links.get(name) or _link(entry.get("delist"))
    said = listing(None, now, tuple(links))  # the same rule as Generator Labs hosts
    return HetrixMonitor(
        monitor.strip(),
        fields.text(label) or "",
        said.listings,
        said.rbls,
        tuple(links[n] for n in said.rbls),
        _link(item["links"].get("report_link")) if isinstance(item.get("links"), Mapping) else "",
    )


def _link(value: object) -> str:
    """A link as HetrixTools sent it ("" when it is not text or longer than MAX_LINK_CHARS).
    Kept as text: the status page links only http and https URLs."""
    text = value.strip() if isinstance(value, str) else ""
    return text if len(text) <= MAX_LINK_CHARS else ""


def check_hetrix_chunk(raw: bytes) -> HetrixChunk:
    """A JSON array of up to 100 monitor objects (numbers arrive as strings; blacklisted_on is a
    list of {rbl, delist} or null), checked item by item: the usable monitors and the skipped
    items. MalformedEvent only when the body is not a JSON array."""
    body = decode_json(raw)
    if not isinstance(body, list):
        raise MalformedEvent("body must be a JSON array of monitor objects")
    monitors, skipped = [], []
    for i, item in enumerate(body):
        try:
            monitors.append(_hetrix_item(item))
        except _Skip as skip:
            skipped.append(Skipped(i, skip.field, skip.reason))
    return HetrixChunk(monitors, skipped)


def parse_forget(raw: bytes) -> Forget:
    """A stored `forget` record: {"kind": one of FORGETTABLE, "id": text}."""
    body = decode_json(raw)
    if not isinstance(body, Mapping) or body.get("kind") not in FORGETTABLE:
        raise MalformedEvent("forget record must name a kind of " + ", ".join(FORGETTABLE), "kind")
    return Forget(body["kind"], _ident(body.get("id"), "id"))
