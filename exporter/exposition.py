"""Pure: render the data series (the big part of /metrics) from the state, once per change.

The text is built straight from the snapshots with plain string work, in both the Prometheus
text format and OpenMetrics (they differ only in the `_info` families' TYPE lines), and cached
together with a gzip stream of it left open (sync-flushed) so that each scrape only compresses
the few self-metric lines that follow. A scrape is then a copy of cached bytes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.metrics import DATA_METRICS
from exporter.overlay import HostMark, MonitorMark, WebhookState
from exporter.records import Host, Item, Monitor
from exporter.state import Snapshot

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"  # mtime 0, fastest (level 1), unknown OS
_HELP = {m.name: m.help for m in DATA_METRICS}
_TYPE = {m.name: m.type for m in DATA_METRICS}


def escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    help: str
    body: str  # sample lines, each ending in \n


def _header(name: str, help_: str, openmetrics: bool) -> str:
    help_ = help_.replace("\\", "\\\\").replace("\n", "\\n")
    kind = _TYPE.get(name, "gauge")
    if openmetrics and name.endswith("_info"):
        base = name[: -len("_info")]
        return f"# HELP {base} {help_}\n# TYPE {base} info\n"
    if openmetrics and kind == "counter":
        base = name[: -len("_total")]
        return f"# HELP {base} {help_}\n# TYPE {base} counter\n"
    return f"# HELP {name} {help_}\n# TYPE {name} {kind}\n"


def join(families: Iterable[Family], openmetrics: bool) -> bytes:
    return "".join(_header(f.name, f.help, openmetrics) + f.body for f in families).encode()


@dataclass(frozen=True, slots=True)
class Freshness:
    """Which snapshots may be exported at `now`, and how often each collector refreshes."""

    now: float
    intervals: Mapping[str, float]
    max_ages: Mapping[str, float]

    def fresh(self, snap: Snapshot | None) -> Snapshot | None:
        if snap is None:
            return None
        age_limit = self.max_ages.get(snap.collector)
        if age_limit is None or self.now - snap.confirmed_at > age_limit:
            return None
        return snap

    def help(self, name: str, collectors: str) -> str:
        if collectors == "webhooks":
            return f"{_HELP[name]} (pushed by webhooks; kept across restarts)."
        parts = [
            f"every {fmt(round(self.intervals[c]))}s by {c}"
            for c in collectors.split(", ") if c in self.intervals
        ]
        refresh = "; ".join(parts) if parts else "by a disabled collector"
        return f"{_HELP[name]} (cached; refreshed {refresh})."


def _merge_hosts(hosts: Snapshot | None, listings: Snapshot | None,
                 marks: Mapping[str, HostMark]) -> list[Host]:
    """Hosts from the inventory, with listing state from whichever source saw the host last:
    the inventory page, the listings pass, or a webhook newer than both (a mark)."""
    merged: dict[str, Host] = {}
    times: Mapping[str, float] = hosts.item_times if hosts is not None else {}
    if hosts is not None:
        merged.update(hosts.items)
    if listings is not None:
        listed: Mapping[str, Host] = listings.items
        for host_id, host in merged.items():
            if host_id not in listed and host.listed and times.get(host_id, 0.0) <= listings.fetched_at:
                merged[host_id] = Host(host.id, host.host, host.name, host.kind, host.profile_id,
                                       host.paused, False, 0, (), host.last_checked, None)
        for host_id, host in listed.items():
            if host_id not in merged or times.get(host_id, 0.0) <= listings.fetched_at:
                merged[host_id] = host
    for host_id, mark in marks.items():
        h = merged.get(host_id)
        if h is None:  # never invent a host from webhook text; the poller is asked for it
            continue
        polled = max(times.get(host_id, 0.0), listings.fetched_at if listings is not None else 0.0)
        if mark.at < polled:  # a late webhook older than what the polls already saw
            continue
        is_listed = mark.listed if mark.listed is not None else h.listed
        count, rbls = (mark.listings, mark.rbls) if mark.listed is not None else (h.listings, h.rbls)
        first = h.first_listed if h.listed else (mark.at if is_listed else None)
        merged[host_id] = Host(h.id, h.host, h.name, h.kind, h.profile_id, h.paused, is_listed,
                               count if is_listed else 0, rbls if is_listed else (),
                               max(h.last_checked or 0.0, mark.last_checked or 0.0) or None,
                               first if is_listed else None)
    return sorted(merged.values(), key=lambda h: h.id)


def _render_hosts(fam: Callable[[str, str, str], None], hosts: list[Host],
                  have_inventory: bool, have_listings: bool) -> None:
    info, listed, count, rbl, paused, checked, first = ([] for _ in range(7))
    n_listed = 0
    for h in hosts:
        hid = escape(h.id)
        sel = f'{{host_id="{hid}"}}'
        info.append(
            f'generatorlabs_rbl_host_info{{host_id="{hid}",host="{escape(h.host)}",'
            f'name="{escape(h.name)}",host_kind="{h.kind}",profile_id="{escape(h.profile_id)}"}} 1\n'
        )
        if h.listed:
            n_listed += 1
            listed.append(f"generatorlabs_rbl_host_listed{sel} 1\n")
            for r in h.rbls:
                rbl.append(f'generatorlabs_rbl_listing_info{{host_id="{hid}",rbl="{escape(r)}"}} 1\n')
            if h.first_listed is not None:
                first.append(f"generatorlabs_rbl_host_first_listed_timestamp_seconds{sel} "
                             f"{fmt(h.first_listed)}\n")
        else:
            listed.append(f"generatorlabs_rbl_host_listed{sel} 0\n")
        count.append(f"generatorlabs_rbl_host_listings{sel} {h.listings}\n")
        paused.append(f"generatorlabs_rbl_host_paused{sel} {1 if h.paused else 0}\n")
        if h.last_checked is not None:
            checked.append(f"generatorlabs_rbl_host_last_checked_timestamp_seconds{sel} "
                           f"{fmt(h.last_checked)}\n")
    fam("generatorlabs_rbl_host_info", "".join(info), "rbl_hosts, rbl_listings")
    fam("generatorlabs_rbl_host_listed", "".join(listed), "rbl_listings, rbl_hosts")
    fam("generatorlabs_rbl_host_listings", "".join(count), "rbl_listings, rbl_hosts")
    fam("generatorlabs_rbl_listing_info", "".join(rbl), "rbl_listings, rbl_hosts")
    fam("generatorlabs_rbl_host_paused", "".join(paused), "rbl_hosts")
    fam("generatorlabs_rbl_host_last_checked_timestamp_seconds", "".join(checked),
        "rbl_hosts, rbl_listings")
    fam("generatorlabs_rbl_host_first_listed_timestamp_seconds", "".join(first),
        "rbl_listings, rbl_hosts")
    fam("generatorlabs_rbl_hosts", f"generatorlabs_rbl_hosts {len(hosts)}\n" if have_inventory
        else "", "rbl_hosts")
    fam("generatorlabs_rbl_hosts_listed", f"generatorlabs_rbl_hosts_listed {n_listed}\n"
        if have_listings or have_inventory else "", "rbl_listings, rbl_hosts")


def _render_monitors(fam: Callable[[str, str, str], None], monitors: list[Monitor],
                     errors: Snapshot | None, now: float, marks: Mapping[str, MonitorMark],
                     polled_at: float) -> None:
    info, paused, days, not_after, active, reasons = ([] for _ in range(6))
    by_monitor: dict[str, list[str]] = {}
    if errors is not None:
        for e in errors.items.values():
            by_monitor.setdefault(e.monitor_id, []).append(e.reason)
        known = {m.id for m in monitors} | set(by_monitor)
        for monitor_id, mark in marks.items():  # cert.error.* webhooks newer than the poll
            if mark.errors is not None and monitor_id in known and mark.errors_at >= errors.fetched_at:
                by_monitor[monitor_id] = list(mark.errors)
    for m in monitors:
        mid = escape(m.id)
        sel = f'{{monitor_id="{mid}"}}'
        info.append(
            f'generatorlabs_cert_monitor_info{{monitor_id="{mid}",name="{escape(m.name)}",'
            f'hostname="{escape(m.hostname)}",protocol="{escape(m.protocol)}",port="{m.port}",'
            f'profile_id="{escape(m.profile_id)}"}} 1\n'
        )
        paused.append(f"generatorlabs_cert_monitor_paused{sel} {1 if m.paused else 0}\n")
        said = marks.get(m.id)  # a cert.expiration.* webhook newer than the poll wins
        if said is not None and said.expiry_days is not None and said.expiry_at >= polled_at:
            elapsed = max(0.0, now - said.expiry_at)
            days.append(f"generatorlabs_cert_expiry_days{sel} "
                        f"{fmt(round(said.expiry_days - elapsed / 86400, 4))}\n")
        elif m.not_after is not None:
            days.append(f"generatorlabs_cert_expiry_days{sel} {fmt(round((m.not_after - now) / 86400, 4))}\n")
        elif m.expiry_days is not None:
            days.append(f"generatorlabs_cert_expiry_days{sel} {fmt(m.expiry_days)}\n")
        if m.not_after is not None:
            not_after.append(f"generatorlabs_cert_not_after_timestamp_seconds{sel} {fmt(m.not_after)}\n")
    if errors is not None:
        ids = sorted({m.id for m in monitors} | set(by_monitor))
        for monitor_id in ids:
            errs = by_monitor.get(monitor_id, [])
            mid = escape(monitor_id)
            active.append(f'generatorlabs_cert_active_errors{{monitor_id="{mid}"}} {len(errs)}\n')
            for reason in sorted(set(errs)):
                reasons.append(f'generatorlabs_cert_error_info{{monitor_id="{mid}",reason="{reason}"}} 1\n')
    fam("generatorlabs_cert_monitor_info", "".join(info), "cert_monitors")
    fam("generatorlabs_cert_monitor_paused", "".join(paused), "cert_monitors")
    fam("generatorlabs_cert_expiry_days", "".join(days), "cert_monitors")
    fam("generatorlabs_cert_not_after_timestamp_seconds", "".join(not_after), "cert_monitors")
    fam("generatorlabs_cert_active_errors", "".join(active), "cert_errors")
    fam("generatorlabs_cert_error_info", "".join(reasons), "cert_errors")
    total = (f"generatorlabs_cert_errors {sum(len(v) for v in by_monitor.values())}\n"
             if errors is not None else "")
    fam("generatorlabs_cert_errors", total, "cert_errors")


def _items(snap: Snapshot | None) -> list[Any]:
    return sorted(snap.items.values(), key=lambda i: i.id) if snap is not None else []


def _render_inventory(fam: Callable[[str, str, str], None], fresh: Callable[[str], Snapshot | None]) -> None:
    profiles: list[Item] = _items(fresh("rbl_profiles"))
    fam("generatorlabs_rbl_profile_info", "".join(
        f'generatorlabs_rbl_profile_info{{profile_id="{escape(p.id)}",name="{escape(p.name)}"}} 1\n'
        for p in profiles), "rbl_profiles")
    sources: list[Item] = _items(fresh("rbl_sources"))
    kinds = {"rbl": "ip", "uribl": "domain"}
    fam("generatorlabs_rbl_source_info", "".join(
        f'generatorlabs_rbl_source_info{{source_id="{escape(s.id)}",rbl="{escape(s.name)}",'
        f'host_kind="{kinds.get(s.kind, "unknown")}"}} 1\n' for s in sources), "rbl_sources")
    fam("generatorlabs_rbl_source_paused", "".join(
        f'generatorlabs_rbl_source_paused{{source_id="{escape(s.id)}"}} {1 if s.paused else 0}\n'
        for s in sources), "rbl_sources")
    contacts: list[Item] = _items(fresh("contacts"))
    fam("generatorlabs_contact_info", "".join(
        f'generatorlabs_contact_info{{contact_id="{escape(c.id)}",contact_kind="{escape(c.kind)}"}} 1\n'
        for c in contacts), "contacts")
    fam("generatorlabs_contact_paused", "".join(
        f'generatorlabs_contact_paused{{contact_id="{escape(c.id)}"}} {1 if c.paused else 0}\n'
        for c in contacts), "contacts")
    groups: list[Item] = _items(fresh("contact_groups"))
    fam("generatorlabs_contact_group_info", "".join(
        f'generatorlabs_contact_group_info{{group_id="{escape(g.id)}",name="{escape(g.name)}"}} 1\n'
        for g in groups), "contact_groups")


def _render_webhook_misc(fam: Callable[[str, str, str], None], w: WebhookState,
                        monitors: list[Monitor]) -> None:
    known = {m.id for m in monitors}
    changes = sorted((k, v) for k, v in w.cert_changes.items() if k in known)
    fam("generatorlabs_cert_changes_total", "".join(
        f'generatorlabs_cert_changes_total{{monitor_id="{escape(k)}"}} {n}\n' for k, (n, _) in changes),
        "webhooks")
    fam("generatorlabs_cert_last_change_timestamp_seconds", "".join(
        f'generatorlabs_cert_last_change_timestamp_seconds{{monitor_id="{escape(k)}"}} {fmt(t)}\n'
        for k, (_, t) in changes), "webhooks")
    agents = sorted(w.agents.items())
    fam("generatorlabs_agent_info", "".join(
        f'generatorlabs_agent_info{{agent_id="{escape(k)}",name="{escape(a.name)}"}} 1\n'
        for k, a in agents), "webhooks")
    fam("generatorlabs_agent_timed_out", "".join(
        f'generatorlabs_agent_timed_out{{agent_id="{escape(k)}"}} {1 if a.timed_out else 0}\n'
        for k, a in agents), "webhooks")
    fam("generatorlabs_agent_timed_out_instances", "".join(
        f'generatorlabs_agent_timed_out_instances{{agent_id="{escape(k)}"}} {len(a.instances)}\n'
        for k, a in agents), "webhooks")
    fam("generatorlabs_billing_balance_usd", f"generatorlabs_billing_balance_usd {fmt(w.balance)}\n"
        if w.balance is not None else "", "webhooks")
    fam("generatorlabs_billing_balance_threshold_usd",
        f"generatorlabs_billing_balance_threshold_usd {fmt(w.balance_threshold)}\n"
        if w.balance_threshold is not None else "", "webhooks")
    fam("generatorlabs_webhook_events_total", "".join(
        f'generatorlabs_webhook_events_total{{event="{e}"}} {n}\n' for e, n in sorted(w.events.items())),
        "webhooks")
    fam("generatorlabs_webhook_last_event_timestamp_seconds", "".join(
        f'generatorlabs_webhook_last_event_timestamp_seconds{{event="{e}"}} {fmt(t)}\n'
        for e, t in sorted(w.last_event.items())), "webhooks")


def _render_hetrix(fam: Callable[[str, str, str], None], w: WebhookState) -> None:
    hetrix = sorted(w.hetrix.items())
    info: list[str] = []
    listed: list[str] = []
    count: list[str] = []
    rbls: list[str] = []
    updated: list[str] = []
    for name, m in hetrix:
        sel = f'{{monitor="{escape(name)}"}}'
        info.append(f'hetrixtools_blacklist_monitor_info{{monitor="{escape(name)}",'
                    f'label="{escape(m.label)}"}} 1\n')
        listed.append(f"hetrixtools_blacklist_monitor_listed{sel} {1 if m.listed_now else 0}\n")
        count.append(f"hetrixtools_blacklist_monitor_listings{sel} {m.listed_now}\n")
        rbls.extend(f'hetrixtools_blacklist_listing_info{{monitor="{escape(name)}",rbl="{escape(r)}"}} 1\n'
                    for r in m.rbls)
        updated.append(f"hetrixtools_blacklist_monitor_last_update_timestamp_seconds{sel} {fmt(m.at)}\n")
    fam("hetrixtools_blacklist_monitor_info", "".join(info), "webhooks")
    fam("hetrixtools_blacklist_monitor_listed", "".join(listed), "webhooks")
    fam("hetrixtools_blacklist_monitor_listings", "".join(count), "webhooks")
    fam("hetrixtools_blacklist_listing_info", "".join(rbls), "webhooks")
    fam("hetrixtools_blacklist_monitor_last_update_timestamp_seconds", "".join(updated), "webhooks")


Memo = dict[str, tuple[tuple[object, ...], dict[str, "Family"]]]


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Keys hold snapshots (compared by identity: they are immutable and replaced whole) and
    plain values (compared by value)."""
    return len(a) == len(b) and all(
        x is y or (isinstance(x, int | float | str | tuple) and x == y) for x, y in zip(a, b, strict=True))


def render(snapshots: Mapping[str, Snapshot], freshness: Freshness,
           webhooks: WebhookState | None = None, memo: Memo | None = None) -> list[Family]:
    """Every data family, in contract order, from the snapshots that are fresh at `now`.

    With a `memo` (kept by the caller between renders) a group of families whose inputs did not
    change is reused: a webhook about one host re-renders the host families, not 300,000
    HetrixTools listing lines.
    """
    out: dict[str, Family] = {}
    intervals = tuple(sorted(freshness.intervals.items()))

    def group(name: str, key: tuple[object, ...],
              build: Callable[[Callable[[str, str, str], None]], None]) -> None:
        key = (*key, intervals)
        if memo is not None and name in memo and _same(memo[name][0], key):
            out.update(memo[name][1])
            return
        built: dict[str, Family] = {}

        def fam(metric: str, body: str, collectors: str) -> None:
            built[metric] = Family(metric, freshness.help(metric, collectors), body)

        build(fam)
        if memo is not None:
            memo[name] = (key, built)
        out.update(built)

    def fresh(collector: str) -> Snapshot | None:
        return freshness.fresh(snapshots.get(collector))

    w = webhooks if webhooks is not None else WebhookState()
    hosts, listings = fresh("rbl_hosts"), fresh("rbl_listings")
    group("hosts", (hosts, listings, w.hosts_version), lambda fam: _render_hosts(
        fam, _merge_hosts(hosts, listings, w.hosts), hosts is not None, listings is not None))
    monitor_snap, errors = fresh("cert_monitors"), fresh("cert_errors")
    monitors = _items(monitor_snap)
    polled_at = monitor_snap.fetched_at if monitor_snap is not None else 0.0
    group("monitors", (monitor_snap, errors, w.monitors_version, freshness.now),
          lambda fam: _render_monitors(fam, monitors, errors, freshness.now, w.monitors, polled_at))
    inventory = tuple(fresh(c) for c in ("rbl_profiles", "rbl_sources", "contacts", "contact_groups"))
    group("inventory", inventory, lambda fam: _render_inventory(fam, fresh))
    group("webhooks", (w.misc_version, monitor_snap), lambda fam: _render_webhook_misc(fam, w, monitors))
    group("hetrix", (w.hetrix_version,), lambda fam: _render_hetrix(fam, w))
    return [out[m.name] for m in DATA_METRICS]


class GzipPrefix:
    """A gzip stream of `data`, sync-flushed and left open, so a tail can be appended per scrape
    at the cost of compressing the tail alone (RFC 1952: CRC-32 and size are continued)."""

    def __init__(self, data: bytes, level: int = 1) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._prefix = GZIP_HEADER + self._compressor.compress(data) + self._compressor.flush(
            zlib.Z_SYNC_FLUSH
        )
        self._crc = zlib.crc32(data)
        self._size = len(data)

    def complete(self, tail: bytes) -> bytes:
        c = self._compressor.copy()
        rest = c.compress(tail) + c.flush(zlib.Z_FINISH)
        crc = zlib.crc32(tail, self._crc)
        return self._prefix + rest + struct.pack("<II", crc, (self._size + len(tail)) & 0xFFFFFFFF)


class RenderCache:
    """The rendered data part for one state version, in each format, built lazily."""

    def __init__(self, families: list[Family], key: object) -> None:
        self.key = key
        self._families = families
        self._bytes: dict[bool, bytes] = {}
        self._gzip: dict[bool, GzipPrefix] = {}

    def body(self, openmetrics: bool) -> bytes:
        if openmetrics not in self._bytes:
            self._bytes[openmetrics] = join(self._families, openmetrics)
        return self._bytes[openmetrics]

    def gzip(self, openmetrics: bool) -> GzipPrefix:
        if openmetrics not in self._gzip:
            self._gzip[openmetrics] = GzipPrefix(self.body(openmetrics))
        return self._gzip[openmetrics]
