"""Pure data, no I/O: the typed facts webhooks deliver, as the overlay (exporter.state.overlay)
folds them in and the state file stores them. The event types of the API reference ("RBL Events",
"Certificate Events", "Agent Events", "Billing Events"), the record kinds of the state file's
event log, and the webhook-only object kinds an operator may forget. Parsing a body into these
is exporter.webhooks.payloads.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.api.records import Listing

RBL_EVENTS = ("rbl.host.check.started", "rbl.host.check.completed", "rbl.host.listed", "rbl.host.delisted")
CERT_EVENTS = (
    "cert.expiration.trigger",
    "cert.expiration.resolve",
    "cert.error.trigger",
    "cert.error.resolve",
    "cert.changed",
)
AGENT_EVENTS = ("agent.timeout", "agent.timeout.resolve")
BILLING_EVENTS = (
    "billing.balance.alert",
    "billing.recharge.success",
    "billing.recharge.failed",
    "billing.renewal.success",
    "billing.renewal.failed",
    "expiring.card.alert",
    "expiring.plan.alert",
)
KNOWN_EVENTS = RBL_EVENTS + CERT_EVENTS + AGENT_EVENTS + BILLING_EVENTS
EVENT_LABELS = (*KNOWN_EVENTS, "other")  # the bounded `event` label set
# The record kinds of the state file's event log: the two webhook sources (also the bounded
# `source` label of the webhook self-metrics) and an operator's request to forget an object.
GENERATORLABS = "generatorlabs"
HETRIXTOOLS = "hetrixtools"
FORGET = "forget"
WEBHOOK_SOURCES = (GENERATORLABS, HETRIXTOOLS)
# Objects only webhooks create, which are forgotten by age or on request (the `kind` label).
HETRIXTOOLS_MONITOR = "hetrixtools_monitor"
AGENT = "agent"
FORGETTABLE = (HETRIXTOOLS_MONITOR, AGENT)
# Why one was forgotten (the `reason` label): not heard of for series_max_age, or on request.
BY_MAX_AGE = "max_age"
ON_REQUEST = "request"
FORGET_REASONS = (BY_MAX_AGE, ON_REQUEST)
MAX_EXPIRY_DAYS = 36_525.0  # a hundred years either way


@dataclass(frozen=True, slots=True)
class Event:
    """A verified, validated Generator Labs event: only the facts the overlay folds in."""

    sid: str
    type: str  # one of KNOWN_EVENTS, or "other"
    raw_type: str
    date: float
    object_id: str | None = None  # the host, monitor or agent the event is about
    listing: Listing | None = None  # rbl.host.listed/delisted/check.completed
    expiry_days: float | None = None  # cert.expiration.* (always set for those)
    errors: tuple[str, ...] = ()  # cert.error.*: bounded reasons of current_errors
    agent_name: str | None = None  # agent.*
    instances: tuple[str, ...] = ()  # agent.*: instance ids
    balance: float | None = None  # billing.balance.alert
    alert_threshold: float | None = None  # billing.balance.alert


@dataclass(frozen=True, slots=True)
class HetrixMonitor:
    """One monitor of a HetrixTools chunk. `delist` holds, for each RBL of `rbls` in the same
    order, the removal link HetrixTools gave for it ("" when none); `report` is the monitor's
    report link. Both are text as sent: only the status page decides what it links."""

    monitor: str
    label: str
    listed_now: int
    rbls: tuple[str, ...]
    delist: tuple[str, ...] = ()
    report: str = ""
