"""Pure: what webhooks said, laid over the polled snapshots until a poll reconciles it.

Webhooks make the metrics move sooner; scheduled polls stay the source of truth. A mark is
dropped as soon as a poll that started after it covers the same object. State with no other
source (agents, billing, certificate changes, HetrixTools monitors) lives here and is persisted
with it; HetrixTools monitors and agents, which only webhooks create, are forgotten when not heard
of for `series_max_age` seconds (`expire`) or on an operator's request (`forget`).

Events arrive already validated (exporter.webhooks.payloads parses them into the records of
exporter.state.events), so folding one in only stores typed values and cannot fail. Loading
stored state (`from_json`) checks every value again: a state file written by an older version
may hold what that version let through (NaN, negative counts). The state file keeps each mark
as a row of its own (`sections`, `mark_json`, `load_mark`) and the rest as one small record
(`scalars_json`), so that a checkpoint writes only the marks that changed.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from dataclasses import fields as dataclass_fields
from typing import Any

from exporter.api import fields
from exporter.api.fields import Unreadable
from exporter.state.events import (
    AGENT,
    EVENT_LABELS,
    HETRIXTOOLS_MONITOR,
    MAX_EXPIRY_DAYS,
    Event,
    HetrixMonitor,
)
from exporter.state.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class HostMark:
    at: float
    listed: bool | None = None
    listings: int = 0
    rbls: tuple[str, ...] = ()
    last_checked: float | None = None


@dataclass(frozen=True, slots=True)
class MonitorMark:
    expiry_days: float | None = None
    expiry_at: float = 0.0
    errors: tuple[str, ...] | None = None
    errors_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    timed_out: bool
    instances: tuple[str, ...]
    at: float  # newest event_date
    seen: float = 0.0  # when an event about it was last applied (its max age counts from here)


@dataclass(frozen=True, slots=True)
class Hetrix:
    label: str
    listed_now: int
    rbls: tuple[str, ...]
    at: float  # when HetrixTools last pushed it (its max age counts from here)
    delist: tuple[str, ...] = ()  # per RBL of `rbls`, its delist link as sent ("": none)
    report: str = ""  # the monitor's report link as sent


@dataclass(slots=True)
class WebhookState:
    hosts: dict[str, HostMark] = field(default_factory=dict)
    monitors: dict[str, MonitorMark] = field(default_factory=dict)
    cert_changes: dict[str, tuple[int, float]] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)
    balance: float | None = None
    balance_threshold: float | None = None
    events: dict[str, int] = field(default_factory=dict)  # by bounded event label
    last_event: dict[str, float] = field(default_factory=dict)
    hetrix: dict[str, Hetrix] = field(default_factory=dict)
    last_seq: int = 0  # the last durable event folded in (persistence replays the rest)
    # change counters per part, so a render can reuse what did not change (not persisted)
    hosts_version: int = 0
    monitors_version: int = 0
    misc_version: int = 0
    hetrix_version: int = 0

    # -- applying ---------------------------------------------------------------------------

    def apply(self, event: Event, now: float | None = None) -> None:
        """Fold one validated event in (`now`: when it is applied; its date if not given).
        Idempotent for a repeated event of the same content."""
        ident = event.object_id
        self.misc_version += 1  # event counts and timestamps
        self.events[event.type] = self.events.get(event.type, 0) + 1
        self.last_event[event.type] = max(self.last_event.get(event.type, 0.0), event.date)
        if event.type.startswith("rbl.") and ident:
            old = self.hosts.get(ident) or HostMark(event.date)
            mark = replace(
                old, at=max(old.at, event.date), last_checked=max(old.last_checked or 0.0, event.date)
            )
            said = event.listing
            if said is not None:
                mark = replace(mark, listed=said.listed, listings=said.listings, rbls=said.rbls)
            self.hosts[ident] = mark
            self.hosts_version += 1
        elif event.type.startswith("cert.expiration.") and ident:
            self.monitors[ident] = replace(
                self.monitors.get(ident) or MonitorMark(), expiry_days=event.expiry_days, expiry_at=event.date
            )
            self.monitors_version += 1
        elif event.type in ("cert.error.trigger", "cert.error.resolve") and ident:
            self.monitors[ident] = replace(
                self.monitors.get(ident) or MonitorMark(), errors=event.errors, errors_at=event.date
            )
            self.monitors_version += 1
        elif event.type == "cert.changed" and ident:
            count, last = self.cert_changes.get(ident, (0, 0.0))
            self.cert_changes[ident] = (count + 1, max(last, event.date))
        elif event.type.startswith("agent.") and ident:
            self._agent(ident, event, event.date if now is None else now)
        elif event.type == "billing.balance.alert":
            if event.balance is not None:
                self.balance = event.balance
            if event.alert_threshold is not None:
                self.balance_threshold = event.alert_threshold

    def _agent(self, ident: str, event: Event, now: float) -> None:
        current = self.agents.get(ident) or Agent(event.agent_name or "", False, (), event.date)
        timed_out = set(current.instances)
        if event.type == "agent.timeout":
            timed_out |= set(event.instances)
        else:
            timed_out -= set(event.instances)
        self.agents[ident] = Agent(
            event.agent_name or current.name,
            event.type == "agent.timeout",
            tuple(sorted(timed_out)),
            max(current.at, event.date),
            max(current.seen, now),
        )

    def apply_hetrix(self, monitors: list[HetrixMonitor], now: float) -> None:
        for m in monitors:
            self.hetrix[m.monitor] = Hetrix(m.label, m.listed_now, m.rbls, now, m.delist, m.report)
        self.hetrix_version += 1

    # -- forgetting webhook-only objects ----------------------------------------------------

    def knows(self, kind: str, ident: str) -> bool:
        """Whether a HetrixTools monitor (HETRIXTOOLS_MONITOR) or an agent (AGENT) is known."""
        return ident in (self.hetrix if kind == HETRIXTOOLS_MONITOR else self.agents)

    def forget(self, kind: str, ident: str) -> bool:
        """Forget one HetrixTools monitor or agent; False when it was not known."""
        if kind == HETRIXTOOLS_MONITOR and self.hetrix.pop(ident, None) is not None:
            self.hetrix_version += 1
            return True
        if kind == AGENT and self.agents.pop(ident, None) is not None:
            self.misc_version += 1
            return True
        return False

    def expire(self, now: float, max_age: float) -> dict[str, int]:
        """Forget HetrixTools monitors and agents not heard of for more than `max_age` seconds
        (0 or less: never). How many of each kind were forgotten.

        A monitor still listed or an agent still timed out is never forgotten by age: HetrixTools
        pushes only on change, so a long silence says nothing, and forgetting would resolve its
        alert without anyone having fixed anything. Those go only when a push clears them or an
        operator forgets them on request."""
        if not max_age > 0:
            return {}
        cutoff = now - max_age
        out = {}
        old = [k for k, m in self.hetrix.items() if m.at < cutoff and not m.listed_now]
        if old:
            for k in old:
                del self.hetrix[k]
            self.hetrix_version += 1
            out[HETRIXTOOLS_MONITOR] = len(old)
        old = [k for k, a in self.agents.items() if a.seen < cutoff and not a.timed_out]
        if old:
            for k in old:
                del self.agents[k]
            self.misc_version += 1
            out[AGENT] = len(old)
        return out

    # -- reconciling with polls -------------------------------------------------------------

    def reconcile(self, snapshot: Snapshot) -> None:
        """Drop marks that a poll started after them has superseded."""
        start = snapshot.fetched_at
        self.hosts_version += 1
        self.monitors_version += 1
        if snapshot.collector == "rbl_listings":
            self.hosts = {k: v for k, v in self.hosts.items() if v.at >= start}
        elif snapshot.collector == "rbl_hosts":
            times = snapshot.item_times
            self.hosts = {k: v for k, v in self.hosts.items() if k not in times or v.at >= times[k]}
        elif snapshot.collector in ("cert_errors", "cert_monitors"):
            kept = {}
            for key, mark in self.monitors.items():
                if snapshot.collector == "cert_errors" and mark.errors_at < start:
                    mark = replace(mark, errors=None)
                if snapshot.collector == "cert_monitors" and mark.expiry_at < start:
                    mark = replace(mark, expiry_days=None)
                if mark.errors is not None or mark.expiry_days is not None:
                    kept[key] = mark
            self.monitors = kept

    def copy(self) -> WebhookState:
        """A copy a render can read while events keep arriving: marks are never changed in
        place (they are replaced), so copying the dictionaries is enough."""
        return WebhookState(
            dict(self.hosts),
            dict(self.monitors),
            dict(self.cert_changes),
            dict(self.agents),
            self.balance,
            self.balance_threshold,
            dict(self.events),
            dict(self.last_event),
            dict(self.hetrix),
            self.last_seq,
            self.hosts_version,
            self.monitors_version,
            self.misc_version,
            self.hetrix_version,
        )

    # -- persistence ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def scalars_json(self) -> dict[str, Any]:
        """What is stored besides the marks (which the state file keeps one row each, see
        `sections`): the balance, the event counts and times, and the last folded sequence."""
        return {
            "balance": self.balance,
            "balance_threshold": self.balance_threshold,
            "events": dict(self.events),
            "last_event": dict(self.last_event),
            "last_seq": self.last_seq,
        }

    def sections(self) -> dict[str, tuple[int, dict[str, Any]]]:
        """Each section of marks with the change counter that moves when it changes. A mark is
        never changed in place (it is replaced), so a section compared entry by entry, by
        identity, with a copy taken earlier shows exactly what changed since."""
        return {
            "hosts": (self.hosts_version, self.hosts),
            "monitors": (self.monitors_version, self.monitors),
            "cert_changes": (self.misc_version, self.cert_changes),
            "agents": (self.misc_version, self.agents),
            "hetrix": (self.hetrix_version, self.hetrix),
        }

    @staticmethod
    def mark_json(mark: object) -> object:
        """One mark as stored: a record's fields by name (tuples become JSON lists), or a list.
        What `dataclasses.asdict` gives, without its deep copy (a mark's fields are numbers,
        text and tuples of text, all immutable): a checkpoint after a HetrixTools burst writes
        thousands of marks."""
        if isinstance(mark, tuple):
            return list(mark)
        names = _FIELD_NAMES.get(type(mark))
        if names is None:
            names = _FIELD_NAMES[type(mark)] = tuple(f.name for f in dataclass_fields(mark))  # type: ignore[arg-type]
        return {name: getattr(mark, name) for name in names}

    def load_mark(self, section: str, ident: str, data: object) -> bool:
        """Put back one stored mark, checked as `from_json` checks it; False (and nothing put
        back) when it does not read back or the section is unknown."""
        read = _READERS.get(section)
        if read is None:
            return False
        try:
            mark = read(data)
        except (Unreadable, KeyError, TypeError, ValueError, IndexError, AttributeError):
            return False
        getattr(self, section)[ident] = mark
        return True

    @classmethod
    def from_json(cls, data: object) -> WebhookState:
        """Stored state, value by value: an entry that does not read back (a non-finite or
        negative number, a wrong type) is left out rather than served; the rest is kept."""
        state = cls()
        if not isinstance(data, Mapping):
            return state
        for section in _READERS:
            setattr(state, section, _entries(data.get(section), _READERS[section]))
        state.balance = _number_or_none(data.get("balance"))
        state.balance_threshold = _number_or_none(data.get("balance_threshold"))
        state.events = {k: v for k, v in _entries(data.get("events"), _count).items() if k in EVENT_LABELS}
        state.last_event = {
            k: v for k, v in _entries(data.get("last_event"), _time).items() if k in EVENT_LABELS
        }
        last_seq = _number_or_none(data.get("last_seq"))
        state.last_seq = int(last_seq) if last_seq is not None and last_seq > 0 else 0
        return state


# ---- reading stored state back ---------------------------------------------------------------


def _entries(section: object, read: Any) -> dict[str, Any]:
    if not isinstance(section, Mapping):
        return {}
    out = {}
    for key, value in section.items():
        try:
            out[str(key)] = read(value)
        except (Unreadable, KeyError, TypeError, ValueError, IndexError, AttributeError):
            continue
    return out


def _number_or_none(value: object) -> float | None:
    try:
        return fields.number(value)
    except Unreadable:
        return None


def _time(value: object) -> float:
    out = fields.number(value)
    if out is None or not math.isfinite(out):
        raise Unreadable("not a time")
    return out


def _count(value: object) -> int:
    out = fields.count(value)
    if out is None:
        raise Unreadable("not a count")
    return out


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Unreadable("not a list")
    return tuple(sys.intern(v) for v in value if type(v) is str)


def _optional_time(value: object) -> float | None:
    return None if value is None else _time(value)


def _host_mark(v: Mapping[str, Any]) -> HostMark:
    listed = v["listed"]
    if listed is not None and not isinstance(listed, bool):
        raise Unreadable("listed")
    return HostMark(
        _time(v["at"]), listed, _count(v["listings"]), _texts(v["rbls"]), _optional_time(v["last_checked"])
    )


def _monitor_mark(v: Mapping[str, Any]) -> MonitorMark:
    days = _number_or_none(v["expiry_days"])
    if days is not None and abs(days) > MAX_EXPIRY_DAYS:
        days = None
    errors = _texts(v["errors"]) if v["errors"] is not None else None
    return MonitorMark(days, _time(v["expiry_at"]), errors, _time(v["errors_at"]))


def _cert_change(v: list[Any]) -> tuple[int, float]:
    return _count(v[0]), _time(v[1])


def _agent(v: Mapping[str, Any]) -> Agent:
    at = _time(v["at"])
    seen = _time(v["seen"]) if "seen" in v else at  # state written before `seen` existed
    return Agent(str(v["name"]), bool(v["timed_out"]), _texts(v["instances"]), at, seen)


def _hetrix(v: Mapping[str, Any]) -> Hetrix:
    """A stored HetrixTools monitor; one stored before the links were kept has none, and links
    that do not pair up with its RBLs one to one are left out (the monitor is kept)."""
    rbls = _texts(v["rbls"])
    links = v.get("delist")
    delist = tuple(links) if isinstance(links, list) and len(links) == len(rbls) and _all_text(links) else ()
    report = v.get("report")
    return Hetrix(
        str(v["label"]),
        _count(v["listed_now"]),
        rbls,
        _time(v["at"]),
        delist,
        report if isinstance(report, str) else "",
    )


def _all_text(values: list[Any]) -> bool:
    return all(type(x) is str for x in values)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # a mark type's field names, in order (mark_json)

_READERS: dict[str, Any] = {
    "hosts": _host_mark,
    "monitors": _monitor_mark,
    "cert_changes": _cert_change,
    "agents": _agent,
    "hetrix": _hetrix,
}
