"""Pure: render the data series (the big part of /metrics) from the state, once per change.

The text is built straight from the snapshots with plain string work, in both the Prometheus
text format and OpenMetrics (they differ only in the `_info` families' TYPE lines), and cached
together with a gzip stream of it left open (sync-flushed) so that each scrape only compresses
the few self-metric lines that follow. A scrape then writes the cached bytes as they are.

Rendering never fails as a whole, whatever the records hold:
- every label value goes through `escape` (or a render's counting escaper), which never raises:
  quotes, backslashes and newlines are escaped; lone surrogates and control characters become
  U+FFFD and values longer than MAX_LABEL_VALUE are cut (and counted per label name), both
  marked with a checksum of the original so that distinct values stay distinct series;
- every sample value goes through `fmt` (floats: NaN and ±Inf in the exposition's own spelling)
  or `format(n, "d")` (integers), so a value of the wrong type raises instead of printing text
  that no parser accepts;
- each group of objects is rendered in one pass; only if that pass raises is the group rendered
  again one object at a time, leaving out (and counting, in RenderStats) each object that
  raises. The common case pays for one `try` per group, not per line.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any, TypeVar

from exporter.api.records import CertError, Host, Item, Monitor
from exporter.metrics.contract import DATA_METRICS
from exporter.state.snapshot import Snapshot
from exporter.webhooks.overlay import HostMark, MonitorMark, WebhookState

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"  # mtime 0, fastest (level 1), unknown OS
_HELP = {m.name: m.help for m in DATA_METRICS}
_TYPE = {m.name: m.type for m in DATA_METRICS}

MAX_LABEL_VALUE = 1024
"""The longest label value exported, in characters (before escaping).

A longer value (a host name or RBL text of kilobytes, most likely hostile or broken) is cut to
its first MAX_LABEL_VALUE - 9 characters, then "…" and 8 hex digits of the CRC-32 of the whole
value (see `_clean`), so that two long values that share a prefix still make two series. Each
cut is counted in `generatorlabs_exposition_truncated_label_values{label}`. 1,024 characters is
far beyond any real host name (253), RBL zone or display name, and keeps a hostile value from
inflating every scrape and the time-series database's index.
"""

# What a render may leave out, one kind per object it renders (the `object` label's values).
OBJECTS = (
    "host",
    "monitor",
    "cert_error",
    "profile",
    "source",
    "contact",
    "contact_group",
    "cert_change",
    "agent",
    "billing",
    "webhook_event",
    "hetrixtools_monitor",
)
# Label names whose values may be cut (the `label` label's values): every data label.
LABELS = tuple(sorted({label for m in DATA_METRICS for label in m.labels}))

# Replaced by U+FFFD in label values: C0 and C1 control characters but the newline (which is
# escaped) and DEL, the Unicode line and paragraph separators (some tools split lines on them),
# and lone surrogates (not encodable in UTF-8).
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_MARK = 9  # len("…") + 8 hex digits

T = TypeVar("T")
Esc = Callable[[str, str], str]  # (value, label name) -> the value, safe inside quotes
Lines = list[list[str]]  # one list of sample lines per family of a group


def _clean(value: str) -> tuple[str, bool]:
    """The slow path of escaping: (safe value, whether it was cut).

    Quotes, backslashes and newlines are escaped as both formats define. A value that had to be
    altered otherwise (unsafe characters replaced by U+FFFD, or cut to MAX_LABEL_VALUE) ends in
    "…" and the CRC-32 of the original, so that two values that differ only in what was lost
    still make two series (a duplicate series would make the whole exposition invalid
    OpenMetrics)."""
    unsafe = _UNSAFE.search(value) is not None
    cut = len(value) > MAX_LABEL_VALUE or (unsafe and len(value) > MAX_LABEL_VALUE - _MARK)
    if unsafe or cut:
        crc = zlib.crc32(value.encode("utf-8", "surrogatepass"))
        if cut:
            value = value[: MAX_LABEL_VALUE - _MARK]
        value = f"{_UNSAFE.sub(chr(0xFFFD), value)}\u2026{crc:08x}"
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value, cut


def escape(value: str) -> str:
    """A label value as it goes between the quotes of either format. Never raises for a str."""
    if len(value) <= MAX_LABEL_VALUE and value.isprintable() and '"' not in value and "\\" not in value:
        return value  # the common case: plain ids and names
    return _clean(value)[0]


def _escaper(truncated: dict[str, int]) -> Esc:
    """`escape`, counting the values it cuts per label name into `truncated`."""

    def esc(value: str, label: str) -> str:
        if len(value) <= MAX_LABEL_VALUE and value.isprintable() and '"' not in value and "\\" not in value:
            return value
        text, cut = _clean(value)
        if cut:
            truncated[label] = truncated.get(label, 0) + 1
        return text

    return esc


def fmt(value: float) -> str:
    """A sample value in the exposition's syntax: integers without a fraction, NaN, +Inf and -Inf
    as both formats spell them. Never raises for an int or float (other types raise TypeError,
    which leaves the object out of the render)."""
    try:
        if -1e15 < value < 1e15:  # False for NaN
            whole = int(value)
            return str(whole) if whole == value else repr(float(value))
        if value != value:
            return "NaN"
        number = float(value)  # an int beyond float's range overflows
    except OverflowError:
        return "+Inf" if value > 0 else "-Inf"
    if number == float("inf"):
        return "+Inf"
    if number == float("-inf"):
        return "-Inf"
    return repr(number)


@dataclass(slots=True)
class RenderStats:
    """What a render left out or cut: the exposition_* self-metrics, and the log."""

    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OBJECTS, 0))
    truncated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LABELS, 0))
    errors: dict[str, str] = field(default_factory=dict)  # object kind -> the first error seen

    def skip(self, kind: str, err: BaseException, count: int = 1) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + count
        self.errors.setdefault(kind, f"{type(err).__name__}: {str(err)[:200]}")

    def cut(self, truncated: Mapping[str, int]) -> None:
        for label, n in truncated.items():
            self.truncated[label] = self.truncated.get(label, 0) + n

    def add(self, other: RenderStats) -> None:
        for kind, n in other.skipped.items():
            self.skipped[kind] = self.skipped.get(kind, 0) + n
        self.cut(other.truncated)
        for kind, error in other.errors.items():
            self.errors.setdefault(kind, error)


def _each(
    stats: RenderStats,
    kind: str,
    objs: Sequence[T],
    width: int,
    body: Callable[[Sequence[T], Lines, Esc], int],
) -> tuple[Lines, int, Sequence[T]]:
    """Run `body` (which appends sample lines to `width` lists and returns a tally, e.g. how many
    hosts are listed) over all of `objs` in one pass. If that pass raises, run it again one
    object at a time and leave out each object that raises. Returns (lines, tally, the objects
    rendered)."""
    lines: Lines = [[] for _ in range(width)]
    truncated: dict[str, int] = {}
    try:
        tally = body(objs, lines, _escaper(truncated))
    except Exception:  # noqa: S110 - rendered again below, object by object
        pass
    else:
        stats.cut(truncated)
        return lines, tally, objs
    lines = [[] for _ in range(width)]
    tally, kept = 0, []
    for obj in objs:
        part: Lines = [[] for _ in range(width)]
        truncated = {}
        try:
            tally += body((obj,), part, _escaper(truncated))
        except Exception as err:
            stats.skip(kind, err)
            continue
        for whole, piece in zip(lines, part, strict=True):
            whole.extend(piece)
        stats.cut(truncated)
        kept.append(obj)
    return lines, tally, kept


def _sorted(objs: Iterable[T], key: Callable[[T], Any]) -> list[T]:
    """Sorted by `key`; keys that do not compare (a broken record) fall back to their repr."""
    items = list(objs)
    try:
        return sorted(items, key=key)
    except Exception:

        def safe(obj: T) -> str:
            try:
                return repr(key(obj))
            except Exception:
                return ""

        return sorted(items, key=safe)


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
    text = "".join(chain.from_iterable((_header(f.name, f.help, openmetrics), f.body) for f in families))
    return text.encode("utf-8", "replace")  # label values are clean already; never raise here


def _seconds(value: float) -> str:
    try:
        return fmt(round(value))
    except (ValueError, OverflowError):  # NaN, ±Inf
        return fmt(value)


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
        try:
            if age_limit is None or not self.now - snap.confirmed_at <= age_limit:  # NaN: stale
                return None
        except TypeError:  # a broken snapshot is not exported
            return None
        return snap

    def help(self, name: str, collectors: str) -> str:
        if collectors == "webhooks":
            return f"{_HELP[name]} (pushed by webhooks; kept across restarts)."
        parts = [
            f"every {_seconds(self.intervals[c])}s by {c}"
            for c in collectors.split(", ")
            if c in self.intervals
        ]
        refresh = "; ".join(parts) if parts else "by a disabled collector"
        return f"{_HELP[name]} (cached; refreshed {refresh})."


def _merge_hosts(
    hosts: Snapshot | None, listings: Snapshot | None, marks: Mapping[str, HostMark]
) -> list[Host]:
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
                merged[host_id] = Host(
                    host.id,
                    host.host,
                    host.name,
                    host.kind,
                    host.profile_id,
                    host.paused,
                    False,
                    0,
                    (),
                    host.last_checked,
                    None,
                )
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
        merged[host_id] = Host(
            h.id,
            h.host,
            h.name,
            h.kind,
            h.profile_id,
            h.paused,
            is_listed,
            count if is_listed else 0,
            rbls if is_listed else (),
            max(h.last_checked or 0.0, mark.last_checked or 0.0) or None,
            first if is_listed else None,
        )
    return _sorted(merged.values(), key=lambda h: h.id)


Fam = Callable[[str, str, str], None]  # (family, sample lines, collectors) -> None


def _host_lines(hosts: Sequence[Host], out: Lines, esc: Esc) -> int:
    info, listed, count, rbl, paused, checked, first = out
    n_listed = 0
    safe_rbls: set[str] = set()  # RBL names repeat across hosts: check each once
    for h in hosts:
        hid, host, name, kind, profile = h.id, h.host, h.name, h.kind, h.profile_id
        text = hid + host + name + kind + profile  # one check for all five (the common case)
        if len(text) > MAX_LABEL_VALUE or not text.isprintable() or '"' in text or "\\" in text:
            hid, host, name = esc(hid, "host_id"), esc(host, "host"), esc(name, "name")
            kind, profile = esc(kind, "host_kind"), esc(profile, "profile_id")
        sel = f'{{host_id="{hid}"}}'
        info.append(
            f'generatorlabs_rbl_host_info{{host_id="{hid}",host="{host}",name="{name}",'
            f'host_kind="{kind}",profile_id="{profile}"}} 1\n'
        )
        if h.listed:
            n_listed += 1
            listed.append(f"generatorlabs_rbl_host_listed{sel} 1\n")
            for r in dict.fromkeys(h.rbls):  # one series per RBL, even if a source repeats it
                if r not in safe_rbls:
                    clean = esc(r, "rbl")
                    if clean is r:
                        safe_rbls.add(r)
                    r = clean
                rbl.append(f'generatorlabs_rbl_listing_info{{host_id="{hid}",rbl="{r}"}} 1\n')
            if h.first_listed is not None:
                first.append(
                    f"generatorlabs_rbl_host_first_listed_timestamp_seconds{sel} {fmt(h.first_listed)}\n"
                )
        else:
            listed.append(f"generatorlabs_rbl_host_listed{sel} 0\n")
        count.append(f"generatorlabs_rbl_host_listings{sel} {h.listings:d}\n")
        paused.append(f"generatorlabs_rbl_host_paused{sel} {1 if h.paused else 0}\n")
        if h.last_checked is not None:
            checked.append(
                f"generatorlabs_rbl_host_last_checked_timestamp_seconds{sel} {fmt(h.last_checked)}\n"
            )
    return n_listed


def _render_hosts(
    fam: Fam, stats: RenderStats, hosts: list[Host], have_inventory: bool, have_listings: bool
) -> None:
    (info, listed, count, rbl, paused, checked, first), n_listed, kept = _each(
        stats, "host", hosts, 7, _host_lines
    )
    fam("generatorlabs_rbl_host_info", "".join(info), "rbl_hosts, rbl_listings")
    fam("generatorlabs_rbl_host_listed", "".join(listed), "rbl_listings, rbl_hosts")
    fam("generatorlabs_rbl_host_listings", "".join(count), "rbl_listings, rbl_hosts")
    fam("generatorlabs_rbl_listing_info", "".join(rbl), "rbl_listings, rbl_hosts")
    fam("generatorlabs_rbl_host_paused", "".join(paused), "rbl_hosts")
    fam("generatorlabs_rbl_host_last_checked_timestamp_seconds", "".join(checked), "rbl_hosts, rbl_listings")
    fam("generatorlabs_rbl_host_first_listed_timestamp_seconds", "".join(first), "rbl_listings, rbl_hosts")
    fam(
        "generatorlabs_rbl_hosts",
        f"generatorlabs_rbl_hosts {len(kept)}\n" if have_inventory else "",
        "rbl_hosts",
    )
    fam(
        "generatorlabs_rbl_hosts_listed",
        f"generatorlabs_rbl_hosts_listed {n_listed}\n" if have_listings or have_inventory else "",
        "rbl_listings, rbl_hosts",
    )


def _render_monitors(
    fam: Fam,
    stats: RenderStats,
    monitors: list[Monitor],
    errors: Snapshot | None,
    now: float,
    marks: Mapping[str, MonitorMark],
    polled_at: float,
) -> None:
    def monitor_lines(ms: Sequence[Monitor], out: Lines, esc: Esc) -> int:
        info, paused, days, not_after = out
        for m in ms:
            mid, name, hostname, protocol, port, profile = (
                m.id,
                m.name,
                m.hostname,
                m.protocol,
                m.port,
                m.profile_id,
            )
            text = mid + name + hostname + protocol + port + profile  # one check for all six
            if len(text) > MAX_LABEL_VALUE or not text.isprintable() or '"' in text or "\\" in text:
                mid, name, hostname = esc(mid, "monitor_id"), esc(name, "name"), esc(hostname, "hostname")
                protocol, port, profile = (
                    esc(protocol, "protocol"),
                    esc(port, "port"),
                    esc(profile, "profile_id"),
                )
            sel = f'{{monitor_id="{mid}"}}'
            info.append(
                f'generatorlabs_cert_monitor_info{{monitor_id="{mid}",name="{name}",'
                f'hostname="{hostname}",protocol="{protocol}",port="{port}",'
                f'profile_id="{profile}"}} 1\n'
            )
            paused.append(f"generatorlabs_cert_monitor_paused{sel} {1 if m.paused else 0}\n")
            said = marks.get(m.id)  # a cert.expiration.* webhook newer than the poll wins
            if said is not None and said.expiry_days is not None and said.expiry_at >= polled_at:
                elapsed = max(0.0, now - said.expiry_at)
                days.append(
                    f"generatorlabs_cert_expiry_days{sel} "
                    f"{fmt(round(said.expiry_days - elapsed / 86400, 4))}\n"
                )
            elif m.not_after is not None:
                days.append(
                    f"generatorlabs_cert_expiry_days{sel} {fmt(round((m.not_after - now) / 86400, 4))}\n"
                )
            elif m.expiry_days is not None:
                days.append(f"generatorlabs_cert_expiry_days{sel} {fmt(m.expiry_days)}\n")
            if m.not_after is not None:
                not_after.append(f"generatorlabs_cert_not_after_timestamp_seconds{sel} {fmt(m.not_after)}\n")
        return 0

    (info, paused, days, not_after), _, kept = _each(stats, "monitor", monitors, 4, monitor_lines)
    fam("generatorlabs_cert_monitor_info", "".join(info), "cert_monitors")
    fam("generatorlabs_cert_monitor_paused", "".join(paused), "cert_monitors")
    fam("generatorlabs_cert_expiry_days", "".join(days), "cert_monitors")
    fam("generatorlabs_cert_not_after_timestamp_seconds", "".join(not_after), "cert_monitors")
    active: list[str] = []
    reasons: list[str] = []
    total = ""
    if errors is not None:
        by_monitor: dict[str, list[str]] = {}

        def group_errors(errs: Iterable[CertError]) -> None:
            for e in errs:
                if type(e.monitor_id) is not str or type(e.reason) is not str:
                    raise TypeError("a certificate error's monitor_id and reason must be text")
                by_monitor.setdefault(e.monitor_id, []).append(e.reason)

        try:  # one pass; on a bad error record, again one record at a time
            group_errors(errors.items.values())
        except Exception:
            by_monitor.clear()
            for e in errors.items.values():
                try:
                    group_errors((e,))
                except Exception as err:
                    stats.skip("cert_error", err)
        known = {m.id for m in kept} | set(by_monitor)
        for monitor_id, mark in marks.items():  # cert.error.* webhooks newer than the poll
            if mark.errors is not None and monitor_id in known and mark.errors_at >= errors.fetched_at:
                by_monitor[monitor_id] = list(mark.errors)

        def error_lines(ids: Sequence[str], out: Lines, esc: Esc) -> int:
            active_, reasons_ = out
            n = 0
            for monitor_id in ids:
                errs = by_monitor.get(monitor_id, [])
                mid = esc(monitor_id, "monitor_id")
                active_.append(f'generatorlabs_cert_active_errors{{monitor_id="{mid}"}} {len(errs)}\n')
                for reason in sorted(set(errs)):
                    reasons_.append(
                        f'generatorlabs_cert_error_info{{monitor_id="{mid}",'
                        f'reason="{esc(reason, "reason")}"}} 1\n'
                    )
                n += len(errs)
            return n

        (active, reasons), n_errors, _ = _each(stats, "cert_error", _sorted(known, key=str), 2, error_lines)
        total = f"generatorlabs_cert_errors {n_errors}\n"
    fam("generatorlabs_cert_active_errors", "".join(active), "cert_errors")
    fam("generatorlabs_cert_error_info", "".join(reasons), "cert_errors")
    fam("generatorlabs_cert_errors", total, "cert_errors")


def _items(snap: Snapshot | None) -> list[Any]:
    return _sorted(snap.items.values(), key=lambda i: i.id) if snap is not None else []


def _render_inventory(fam: Fam, stats: RenderStats, fresh: Callable[[str], Snapshot | None]) -> None:
    def profile_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
        out[0].extend(
            f'generatorlabs_rbl_profile_info{{profile_id="{esc(p.id, "profile_id")}",'
            f'name="{esc(p.name, "name")}"}} 1\n'
            for p in items
        )
        return 0

    (profiles,), _, _ = _each(stats, "profile", _items(fresh("rbl_profiles")), 1, profile_lines)
    fam("generatorlabs_rbl_profile_info", "".join(profiles), "rbl_profiles")
    kinds = {"rbl": "ip", "uribl": "domain"}

    def source_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
        info, paused = out
        for s in items:
            sid = esc(s.id, "source_id")
            info.append(
                f'generatorlabs_rbl_source_info{{source_id="{sid}",rbl="{esc(s.name, "rbl")}",'
                f'host_kind="{kinds.get(s.kind, "unknown")}"}} 1\n'
            )
            paused.append(f'generatorlabs_rbl_source_paused{{source_id="{sid}"}} {1 if s.paused else 0}\n')
        return 0

    (info, paused), _, _ = _each(stats, "source", _items(fresh("rbl_sources")), 2, source_lines)
    fam("generatorlabs_rbl_source_info", "".join(info), "rbl_sources")
    fam("generatorlabs_rbl_source_paused", "".join(paused), "rbl_sources")

    def contact_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
        info, paused = out
        for c in items:
            cid = esc(c.id, "contact_id")
            info.append(
                f'generatorlabs_contact_info{{contact_id="{cid}",'
                f'contact_kind="{esc(c.kind, "contact_kind")}"}} 1\n'
            )
            paused.append(f'generatorlabs_contact_paused{{contact_id="{cid}"}} {1 if c.paused else 0}\n')
        return 0

    (info, paused), _, _ = _each(stats, "contact", _items(fresh("contacts")), 2, contact_lines)
    fam("generatorlabs_contact_info", "".join(info), "contacts")
    fam("generatorlabs_contact_paused", "".join(paused), "contacts")

    def group_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
        out[0].extend(
            f'generatorlabs_contact_group_info{{group_id="{esc(g.id, "group_id")}",'
            f'name="{esc(g.name, "name")}"}} 1\n'
            for g in items
        )
        return 0

    (groups,), _, _ = _each(stats, "contact_group", _items(fresh("contact_groups")), 1, group_lines)
    fam("generatorlabs_contact_group_info", "".join(groups), "contact_groups")


def _render_webhook_misc(fam: Fam, stats: RenderStats, w: WebhookState, monitors: list[Monitor]) -> None:
    known = {m.id for m in monitors if type(m.id) is str}

    def change_lines(changes: Sequence[tuple[str, tuple[int, float]]], out: Lines, esc: Esc) -> int:
        count, last = out
        for k, (n, t) in changes:
            if n < 0:
                raise ValueError("a counter cannot be negative")
            mid = esc(k, "monitor_id")
            count.append(f'generatorlabs_cert_changes_total{{monitor_id="{mid}"}} {n:d}\n')
            last.append(f'generatorlabs_cert_last_change_timestamp_seconds{{monitor_id="{mid}"}} {fmt(t)}\n')
        return 0

    changes = _sorted(((k, v) for k, v in w.cert_changes.items() if k in known), key=itemgetter(0))
    (count, last), _, _ = _each(stats, "cert_change", changes, 2, change_lines)
    fam("generatorlabs_cert_changes_total", "".join(count), "webhooks")
    fam("generatorlabs_cert_last_change_timestamp_seconds", "".join(last), "webhooks")

    def agent_lines(agents: Sequence[tuple[str, Any]], out: Lines, esc: Esc) -> int:
        info, timed_out, instances = out
        for k, a in agents:
            aid = esc(k, "agent_id")
            info.append(f'generatorlabs_agent_info{{agent_id="{aid}",name="{esc(a.name, "name")}"}} 1\n')
            timed_out.append(f'generatorlabs_agent_timed_out{{agent_id="{aid}"}} {1 if a.timed_out else 0}\n')
            instances.append(
                f'generatorlabs_agent_timed_out_instances{{agent_id="{aid}"}} {len(a.instances)}\n'
            )
        return 0

    (info, timed_out, instances), _, _ = _each(
        stats, "agent", _sorted(w.agents.items(), key=itemgetter(0)), 3, agent_lines
    )
    fam("generatorlabs_agent_info", "".join(info), "webhooks")
    fam("generatorlabs_agent_timed_out", "".join(timed_out), "webhooks")
    fam("generatorlabs_agent_timed_out_instances", "".join(instances), "webhooks")

    def billing_lines(states: Sequence[WebhookState], out: Lines, esc: Esc) -> int:
        balance, threshold = out
        for s in states:
            if s.balance is not None:
                balance.append(f"generatorlabs_billing_balance_usd {fmt(s.balance)}\n")
            if s.balance_threshold is not None:
                threshold.append(f"generatorlabs_billing_balance_threshold_usd {fmt(s.balance_threshold)}\n")
        return 0

    (balance, threshold), _, _ = _each(stats, "billing", (w,), 2, billing_lines)
    fam("generatorlabs_billing_balance_usd", "".join(balance), "webhooks")
    fam("generatorlabs_billing_balance_threshold_usd", "".join(threshold), "webhooks")

    def event_lines(events: Sequence[str], out: Lines, esc: Esc) -> int:
        count, last = out
        for e in events:
            label = esc(e, "event")
            if w.events.get(e, 0) < 0:
                raise ValueError("a counter cannot be negative")
            if e in w.events:
                count.append(f'generatorlabs_webhook_events_total{{event="{label}"}} {w.events[e]:d}\n')
            if e in w.last_event:
                last.append(
                    f'generatorlabs_webhook_last_event_timestamp_seconds{{event="{label}"}} '
                    f"{fmt(w.last_event[e])}\n"
                )
        return 0

    events = _sorted(set(w.events) | set(w.last_event), key=str)
    (count, last), _, _ = _each(stats, "webhook_event", events, 2, event_lines)
    fam("generatorlabs_webhook_events_total", "".join(count), "webhooks")
    fam("generatorlabs_webhook_last_event_timestamp_seconds", "".join(last), "webhooks")


def _hetrix_lines(hetrix: Sequence[tuple[str, Any]], out: Lines, esc: Esc) -> int:
    info, listed, count, rbls, updated = out
    for name, m in hetrix:
        monitor = esc(name, "monitor")
        sel = f'{{monitor="{monitor}"}}'
        info.append(
            f'hetrixtools_blacklist_monitor_info{{monitor="{monitor}",label="{esc(m.label, "label")}"}} 1\n'
        )
        listed.append(f"hetrixtools_blacklist_monitor_listed{sel} {1 if m.listed_now > 0 else 0}\n")
        count.append(f"hetrixtools_blacklist_monitor_listings{sel} {m.listed_now:d}\n")
        rbls.extend(
            f'hetrixtools_blacklist_listing_info{{monitor="{monitor}",rbl="{esc(r, "rbl")}"}} 1\n'
            for r in dict.fromkeys(m.rbls)
        )
        updated.append(f"hetrixtools_blacklist_monitor_last_update_timestamp_seconds{sel} {fmt(m.at)}\n")
    return 0


def _render_hetrix(fam: Fam, stats: RenderStats, w: WebhookState) -> None:
    (info, listed, count, rbls, updated), _, _ = _each(
        stats, "hetrixtools_monitor", _sorted(w.hetrix.items(), key=itemgetter(0)), 5, _hetrix_lines
    )
    fam("hetrixtools_blacklist_monitor_info", "".join(info), "webhooks")
    fam("hetrixtools_blacklist_monitor_listed", "".join(listed), "webhooks")
    fam("hetrixtools_blacklist_monitor_listings", "".join(count), "webhooks")
    fam("hetrixtools_blacklist_listing_info", "".join(rbls), "webhooks")
    fam("hetrixtools_blacklist_monitor_last_update_timestamp_seconds", "".join(updated), "webhooks")


Memo = dict[str, tuple[tuple[object, ...], dict[str, "Family"], RenderStats]]


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Keys hold snapshots (compared by identity: they are immutable and replaced whole) and
    plain values (compared by value)."""
    return len(a) == len(b) and all(
        x is y or (isinstance(x, int | float | str | tuple) and x == y) for x, y in zip(a, b, strict=True)
    )


def render(
    snapshots: Mapping[str, Snapshot],
    freshness: Freshness,
    webhooks: WebhookState | None = None,
    memo: Memo | None = None,
    stats: RenderStats | None = None,
) -> list[Family]:
    """Every data family, in contract order, from the snapshots that are fresh at `now`.

    With a `memo` (kept by the caller between renders) a group of families whose inputs did not
    change is reused: a webhook about one host re-renders the host families, not 300,000
    HetrixTools listing lines. Objects left out and label values cut are added to `stats`.
    Never raises: a group that fails outside its objects (a broken snapshot) is left empty and
    counted once under its object kind.
    """
    out: dict[str, Family] = {}
    total = stats if stats is not None else RenderStats()
    intervals = tuple(sorted(freshness.intervals.items()))

    def group(
        name: str, kind: str, key: tuple[object, ...], build: Callable[[Fam, RenderStats], None]
    ) -> None:
        key = (*key, intervals)
        if memo is not None and name in memo and _same(memo[name][0], key):
            out.update(memo[name][1])
            total.add(memo[name][2])
            return
        built: dict[str, Family] = {}
        group_stats = RenderStats({}, {})

        def fam(metric: str, body: str, collectors: str) -> None:
            built[metric] = Family(metric, freshness.help(metric, collectors), body)

        try:
            build(fam, group_stats)
        except Exception as err:
            group_stats.skip(kind, err)
        if memo is not None:
            memo[name] = (key, built, group_stats)
        out.update(built)
        total.add(group_stats)

    def fresh(collector: str) -> Snapshot | None:
        return freshness.fresh(snapshots.get(collector))

    w = webhooks if webhooks is not None else WebhookState()
    hosts, listings = fresh("rbl_hosts"), fresh("rbl_listings")
    group(
        "hosts",
        "host",
        (hosts, listings, w.hosts_version),
        lambda fam, st: _render_hosts(
            fam, st, _merge_hosts(hosts, listings, w.hosts), hosts is not None, listings is not None
        ),
    )
    monitor_snap, errors = fresh("cert_monitors"), fresh("cert_errors")
    monitors = _items(monitor_snap)
    polled_at = monitor_snap.fetched_at if monitor_snap is not None else 0.0
    group(
        "monitors",
        "monitor",
        (monitor_snap, errors, w.monitors_version, freshness.now),
        lambda fam, st: _render_monitors(fam, st, monitors, errors, freshness.now, w.monitors, polled_at),
    )
    inventory = tuple(fresh(c) for c in ("rbl_profiles", "rbl_sources", "contacts", "contact_groups"))
    group("inventory", "profile", inventory, lambda fam, st: _render_inventory(fam, st, fresh))
    group(
        "webhooks",
        "webhook_event",
        (w.misc_version, monitor_snap),
        lambda fam, st: _render_webhook_misc(fam, st, w, monitors),
    )
    group("hetrix", "hetrixtools_monitor", (w.hetrix_version,), lambda fam, st: _render_hetrix(fam, st, w))
    return [out.get(m.name) or _empty(m.name, m.source, freshness) for m in DATA_METRICS]


def _empty(name: str, source: str, freshness: Freshness) -> Family:
    """A family whose group failed as a whole: its HELP and TYPE, no samples."""
    try:
        help_ = freshness.help(name, "webhooks" if "webhooks" in source else source)
    except Exception:
        help_ = _HELP[name]
    return Family(name, help_, "")


class GzipPrefix:
    """A gzip stream of `data`, sync-flushed and left open, so a tail can be appended per scrape
    at the cost of compressing the tail alone (RFC 1952: CRC-32 and size are continued)."""

    def __init__(self, data: bytes, level: int = 1) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._prefix = (
            GZIP_HEADER + self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        )
        self._crc = zlib.crc32(data)
        self._size = len(data)

    def pieces(self, tail: bytes) -> tuple[bytes, bytes]:
        """The whole gzip stream as (the cached prefix itself, the compressed tail and trailer):
        written one after the other, the prefix is never copied per scrape."""
        c = self._compressor.copy()
        rest = c.compress(tail) + c.flush(zlib.Z_FINISH)
        crc = zlib.crc32(tail, self._crc)
        return self._prefix, rest + struct.pack("<II", crc, (self._size + len(tail)) & 0xFFFFFFFF)

    def complete(self, tail: bytes) -> bytes:
        return b"".join(self.pieces(tail))


class RenderCache:
    """The rendered data part for one state version, in each format, built lazily."""

    def __init__(self, families: list[Family], key: object, stats: RenderStats | None = None) -> None:
        self.key = key
        self.stats = stats if stats is not None else RenderStats()
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
