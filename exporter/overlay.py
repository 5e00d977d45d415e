"""Pure: what webhooks said, laid over the polled snapshots until a poll reconciles it.

Webhooks make the metrics move sooner; scheduled polls stay the source of truth. A mark is
dropped as soon as a poll that started after it covers the same object. State with no other
source (agents, billing, certificate changes, HetrixTools monitors) lives here for good and is
persisted with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from exporter import fields
from exporter.events import (
    EVENT_LABELS,
    Event,
    HetrixMonitor,
    error_reasons,
    listing,
)
from exporter.fields import Unreadable

if TYPE_CHECKING:
    from exporter.state import Snapshot


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
    at: float


@dataclass(frozen=True, slots=True)
class Hetrix:
    label: str
    listed_now: int
    rbls: tuple[str, ...]
    at: float


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

    def apply(self, event: Event) -> None:
        """Fold one verified event in. Idempotent for a repeated event of the same content."""
        self.misc_version += 1  # event counts and timestamps
        self.events[event.type] = self.events.get(event.type, 0) + 1
        self.last_event[event.type] = max(self.last_event.get(event.type, 0.0), event.date)
        ident = event.object_id
        body = event.body
        if event.type.startswith("rbl.") and ident:
            old = self.hosts.get(ident) or HostMark(event.date)
            mark = replace(old, at=max(old.at, event.date),
                           last_checked=max(old.last_checked or 0.0, event.date))
            state = listing(event)
            if state is not None:
                mark = replace(mark, listed=state[0], listings=state[1], rbls=state[2])
            self.hosts[ident] = mark
            self.hosts_version += 1
        elif event.type.startswith("cert.expiration.") and ident:
            try:
                days = fields.number(body.get("expiry_days"))
            except Unreadable:
                days = None
            self.monitors[ident] = replace(self.monitors.get(ident) or MonitorMark(),
                                           expiry_days=days, expiry_at=event.date)
            self.monitors_version += 1
        elif event.type in ("cert.error.trigger", "cert.error.resolve") and ident:
            self.monitors[ident] = replace(self.monitors.get(ident) or MonitorMark(),
                                           errors=error_reasons(body.get("current_errors")),
                                           errors_at=event.date)
            self.monitors_version += 1
        elif event.type == "cert.changed" and ident:
            count, last = self.cert_changes.get(ident, (0, 0.0))
            self.cert_changes[ident] = (count + 1, max(last, event.date))
        elif event.type.startswith("agent.") and ident:
            self._agent(ident, event)
        elif event.type == "billing.balance.alert":
            try:
                self.balance = fields.number(body.get("balance"))
                self.balance_threshold = fields.number(body.get("alert_threshold"))
            except Unreadable:
                pass

    def _agent(self, ident: str, event: Event) -> None:
        agent_obj = event.body.get("agent")
        name = fields.text(agent_obj.get("name")) if isinstance(agent_obj, Mapping) else None
        instances = event.body.get("instances")
        ids = {fields.text(i.get("id") or i.get("name")) if isinstance(i, Mapping) else fields.text(i)
               for i in instances} - {None} if isinstance(instances, list) else set()
        current = self.agents.get(ident) or Agent(name or "", False, (), event.date)
        timed_out = set(current.instances)
        if event.type == "agent.timeout":
            timed_out |= {i for i in ids if i}
        else:
            timed_out -= ids
        self.agents[ident] = Agent(name or current.name, event.type == "agent.timeout",
                                   tuple(sorted(timed_out)), max(current.at, event.date))

    def apply_hetrix(self, monitors: list[HetrixMonitor], now: float) -> None:
        for m in monitors:
            self.hetrix[m.monitor] = Hetrix(m.label, m.listed_now, m.rbls, now)
        self.hetrix_version += 1

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
            self.hosts = {k: v for k, v in self.hosts.items()
                          if k not in times or v.at >= times[k]}
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
        return WebhookState(dict(self.hosts), dict(self.monitors), dict(self.cert_changes),
                            dict(self.agents), self.balance, self.balance_threshold,
                            dict(self.events), dict(self.last_event), dict(self.hetrix),
                            self.last_seq, self.hosts_version, self.monitors_version,
                            self.misc_version, self.hetrix_version)

    # -- persistence ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WebhookState:
        state = cls()
        state.hosts = {k: HostMark(v["at"], v["listed"], v["listings"], tuple(v["rbls"]),
                                   v["last_checked"]) for k, v in data.get("hosts", {}).items()}
        state.monitors = {k: MonitorMark(v["expiry_days"], v["expiry_at"],
                                         tuple(v["errors"]) if v["errors"] is not None else None,
                                         v["errors_at"]) for k, v in data.get("monitors", {}).items()}
        state.cert_changes = {k: (int(v[0]), float(v[1]))
                              for k, v in data.get("cert_changes", {}).items()}
        state.agents = {k: Agent(v["name"], v["timed_out"], tuple(v["instances"]), v["at"])
                        for k, v in data.get("agents", {}).items()}
        state.balance = data.get("balance")
        state.balance_threshold = data.get("balance_threshold")
        state.events = {k: int(v) for k, v in data.get("events", {}).items() if k in EVENT_LABELS}
        state.last_event = {k: float(v) for k, v in data.get("last_event", {}).items()
                            if k in EVENT_LABELS}
        state.hetrix = {k: Hetrix(v["label"], v["listed_now"], tuple(v["rbls"]), v["at"])
                        for k, v in data.get("hetrix", {}).items()}
        state.last_seq = int(data.get("last_seq", 0))
        return state

