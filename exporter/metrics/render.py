"""Pure: render the data series (the big part of /metrics) from the state, once per change.

Every family's name, type, labels and help come from the metric contract
(exporter.metrics.contract): the fixed text of each family's sample lines (`MetricSpec.pieces`)
is taken from it once, at import, and a render only pastes label and sample values in between.
The text is built straight from the snapshots with plain string work, in both the Prometheus
text format and OpenMetrics (they differ only in the TYPE lines of the `_info` and counter
families), and cached together with a gzip stream of it left open (sync-flushed) so that each
scrape only compresses the few self-metric lines that follow. A scrape then writes the cached
bytes as they are.

Rendering never fails as a whole, whatever the records hold:
- every label value goes through a render's escaper (`_escaper`), which never raises: quotes,
  backslashes and newlines are escaped; lone surrogates and control characters become U+FFFD
  and values longer than MAX_LABEL_VALUE are cut (and counted per label name), both marked with
  a checksum of the original so that distinct values stay distinct series;
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
from dataclasses import dataclass, field, replace
from itertools import chain
from operator import itemgetter
from typing import Any, TypeVar

from exporter.api.records import HOST_KINDS, CertError, Host, Item, Monitor
from exporter.clock import DAY
from exporter.metrics import contract
from exporter.metrics.contract import DATA_METRICS, MetricSpec
from exporter.state.overlay import Agent, Hetrix, HostMark, MonitorMark, WebhookState
from exporter.state.snapshot import Snapshot

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"  # mtime 0, fastest (level 1), unknown OS

# The longest label value exported, in characters (before escaping). A longer value (a host name
# or RBL text of kilobytes, most likely hostile or broken) is cut to its first MAX_LABEL_VALUE - 9
# characters, then "…" and 8 hex digits of the CRC-32 of the whole value (see `_clean`), so that
# two long values that share a prefix still make two series. Each cut is counted in the
# exposition_truncated_label_values self-metric, by label name. 1,024 characters is far beyond
# any real host name (253), RBL zone or display name, and keeps a hostile value from inflating
# every scrape and the time-series database's index.
MAX_LABEL_VALUE = 1024

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
Body = Callable[[Sequence[T], Lines, Esc], int]  # writes a group's lines, returns a tally


# -- the fixed text of every sample line, from the contract, computed once ------------------------

_CLOSE = contract.RBL_HOST_LISTED.pieces[-1]  # what follows the last label value


def _one(spec: MetricSpec) -> str:
    """A one-label family's sample line up to its label value (`name{label="`): the value,
    _CLOSE and the sample value follow. Fails at import if the contract gives it other labels."""
    head, close = spec.pieces
    if close != _CLOSE:
        raise ValueError(f"{spec.name}: unexpected sample line pieces {spec.pieces!r}")
    return head


def _bare(spec: MetricSpec) -> str:
    """A family without labels: its sample line up to the value (`name `)."""
    (head,) = spec.pieces
    return head


# rbl hosts and listings
_HOST_ID, _HOST, _NAME, _HOST_KIND, _PROFILE_ID = contract.RBL_HOST_INFO.labels
_HOST_INFO = contract.RBL_HOST_INFO.pieces
_HOST_LISTED = _one(contract.RBL_HOST_LISTED)
_HOST_LISTINGS = _one(contract.RBL_HOST_LISTINGS)
_, _RBL = contract.RBL_LISTING_INFO.labels
_LISTING_INFO = contract.RBL_LISTING_INFO.pieces
_HOST_PAUSED = _one(contract.RBL_HOST_PAUSED)
_HOST_CHECKED = _one(contract.RBL_HOST_LAST_CHECKED_TIMESTAMP_SECONDS)
_HOST_FIRST_LISTED = _one(contract.RBL_HOST_FIRST_LISTED_TIMESTAMP_SECONDS)
_HOSTS = _bare(contract.RBL_HOSTS)
_HOSTS_LISTED = _bare(contract.RBL_HOSTS_LISTED)
# certificate monitors and errors
_MONITOR_ID, _, _HOSTNAME, _PROTOCOL, _PORT, _ = contract.CERT_MONITOR_INFO.labels
_MONITOR_INFO = contract.CERT_MONITOR_INFO.pieces
_MONITOR_PAUSED = _one(contract.CERT_MONITOR_PAUSED)
_EXPIRY_DAYS = _one(contract.CERT_EXPIRY_DAYS)
_NOT_AFTER = _one(contract.CERT_NOT_AFTER_TIMESTAMP_SECONDS)
_ACTIVE_ERRORS = _one(contract.CERT_ACTIVE_ERRORS)
_, _REASON = contract.CERT_ERROR_INFO.labels
_ERROR_INFO = contract.CERT_ERROR_INFO.pieces
_ERRORS = _bare(contract.CERT_ERRORS)
# inventory
_PROFILE_INFO = contract.RBL_PROFILE_INFO.pieces
_SOURCE_ID, _, _ = contract.RBL_SOURCE_INFO.labels
_SOURCE_INFO = contract.RBL_SOURCE_INFO.pieces
_SOURCE_PAUSED = _one(contract.RBL_SOURCE_PAUSED)
_CONTACT_ID, _CONTACT_KIND = contract.CONTACT_INFO.labels
_CONTACT_INFO = contract.CONTACT_INFO.pieces
_CONTACT_PAUSED = _one(contract.CONTACT_PAUSED)
_GROUP_ID, _ = contract.CONTACT_GROUP_INFO.labels
_GROUP_INFO = contract.CONTACT_GROUP_INFO.pieces
# webhook-only state
_CHANGES = _one(contract.CERT_CHANGES_TOTAL)
_LAST_CHANGE = _one(contract.CERT_LAST_CHANGE_TIMESTAMP_SECONDS)
_AGENT_ID, _ = contract.AGENT_INFO.labels
_AGENT_INFO = contract.AGENT_INFO.pieces
_AGENT_TIMED_OUT = _one(contract.AGENT_TIMED_OUT)
_AGENT_INSTANCES = _one(contract.AGENT_TIMED_OUT_INSTANCES)
_BALANCE = _bare(contract.BILLING_BALANCE_USD)
_BALANCE_THRESHOLD = _bare(contract.BILLING_BALANCE_THRESHOLD_USD)
(_EVENT,) = contract.WEBHOOK_EVENTS_TOTAL.labels
_EVENTS = _one(contract.WEBHOOK_EVENTS_TOTAL)
_LAST_EVENT = _one(contract.WEBHOOK_LAST_EVENT_TIMESTAMP_SECONDS)
# HetrixTools
_MONITOR, _LABEL = contract.BLACKLIST_MONITOR_INFO.labels
_HETRIX_INFO = contract.BLACKLIST_MONITOR_INFO.pieces
_HETRIX_LISTED = _one(contract.BLACKLIST_MONITOR_LISTED)
_HETRIX_LISTINGS = _one(contract.BLACKLIST_MONITOR_LISTINGS)
_HETRIX_LISTING_INFO = contract.BLACKLIST_LISTING_INFO.pieces
_HETRIX_UPDATED = _one(contract.BLACKLIST_MONITOR_LAST_UPDATE_TIMESTAMP_SECONDS)


# -- values --------------------------------------------------------------------------------------


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


def _escaper(truncated: dict[str, int]) -> Esc:
    """A label value as it goes between the quotes of either format (never raises for a str),
    counting the values it cuts per label name into `truncated`."""

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


def _seconds(value: float) -> str:
    try:
        return fmt(round(value))
    except (ValueError, OverflowError):  # NaN, ±Inf
        return fmt(value)


# -- what a render left out, and the one-pass-then-one-by-one rendering of a group ---------------


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
    stats: RenderStats, kind: str, objs: Sequence[T], width: int, body: Body[T]
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


# -- families and the exposition text ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Family:
    spec: MetricSpec
    help: str
    body: str  # sample lines, each ending in \n

    @property
    def name(self) -> str:
        return self.spec.name


def _header(spec: MetricSpec, help_: str, openmetrics: bool) -> str:
    """HELP and TYPE lines. OpenMetrics names an `_info` family without the suffix, as type
    info, and a counter without `_total`; the text format names every family as its samples."""
    help_ = help_.replace("\\", "\\\\").replace("\n", "\\n")
    name, kind = spec.name, spec.type
    if openmetrics and name.endswith("_info"):
        base = name.removesuffix("_info")
        return f"# HELP {base} {help_}\n# TYPE {base} info\n"
    if openmetrics and kind == "counter":
        base = name.removesuffix("_total")
        return f"# HELP {base} {help_}\n# TYPE {base} counter\n"
    return f"# HELP {name} {help_}\n# TYPE {name} {kind}\n"


def join(families: Iterable[Family], openmetrics: bool) -> bytes:
    text = "".join(chain.from_iterable((_header(f.spec, f.help, openmetrics), f.body) for f in families))
    return text.encode("utf-8", "replace")  # label values are clean already; never raise here


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

    def help(self, spec: MetricSpec) -> str:
        """The contract's help, and where the series come from: webhooks, or the collectors
        named in the family's source with how often each refreshes."""
        if "webhooks" in spec.source:
            return f"{spec.help} (pushed by webhooks; kept across restarts)."
        parts = [
            f"every {_seconds(self.intervals[c])}s by {c}"
            for c in spec.source.split(", ")
            if c in self.intervals
        ]
        refresh = "; ".join(parts) if parts else "by a disabled collector"
        return f"{spec.help} (cached; refreshed {refresh})."


Fam = Callable[[MetricSpec, str], None]  # (family, its sample lines) -> None


# -- RBL hosts -----------------------------------------------------------------------------------


def _merge_listings(merged: dict[str, Host], times: Mapping[str, float], listings: Snapshot) -> None:
    """The listings pass over the inventory: a host it saw is taken from it, and a host it did not
    see is no longer listed, unless the inventory page that holds the host is newer."""
    listed: Mapping[str, Host] = listings.items
    for host_id, host in merged.items():
        if host_id not in listed and host.listed and times.get(host_id, 0.0) <= listings.fetched_at:
            merged[host_id] = replace(host, listed=False, listings=0, rbls=(), first_listed=None)
    for host_id, host in listed.items():
        if host_id not in merged or times.get(host_id, 0.0) <= listings.fetched_at:
            merged[host_id] = host


def _mark_host(h: Host, mark: HostMark) -> Host:
    """A host as a webhook newer than its polls says it is."""
    is_listed = mark.listed if mark.listed is not None else h.listed
    count, rbls = (mark.listings, mark.rbls) if mark.listed is not None else (h.listings, h.rbls)
    first = h.first_listed if h.listed else (mark.at if is_listed else None)
    return replace(
        h,
        listed=is_listed,
        listings=count if is_listed else 0,
        rbls=rbls if is_listed else (),
        last_checked=max(h.last_checked or 0.0, mark.last_checked or 0.0) or None,
        first_listed=first if is_listed else None,
    )


def _merge_hosts(
    hosts: Snapshot | None, listings: Snapshot | None, marks: Mapping[str, HostMark]
) -> list[Host]:
    """Hosts from the inventory, with listing state from whichever source saw the host last:
    the inventory page, the listings pass, or a webhook newer than both (a mark)."""
    merged: dict[str, Host] = dict(hosts.items) if hosts is not None else {}
    times: Mapping[str, float] = hosts.item_times if hosts is not None else {}
    if listings is not None:
        _merge_listings(merged, times, listings)
    for host_id, mark in marks.items():
        h = merged.get(host_id)
        if h is None:  # never invent a host from webhook text; the poller is asked for it
            continue
        polled = max(times.get(host_id, 0.0), listings.fetched_at if listings is not None else 0.0)
        if mark.at < polled:  # a late webhook older than what the polls already saw
            continue
        merged[host_id] = _mark_host(h, mark)
    return _sorted(merged.values(), key=lambda h: h.id)


def _host_lines(hosts: Sequence[Host], out: Lines, esc: Esc) -> int:
    info, listed, count, rbl, paused, checked, first = out
    info_id, info_host, info_name, info_kind, info_profile, close = _HOST_INFO
    listing_host, listing_rbl, _ = _LISTING_INFO
    n_listed = 0
    safe_rbls: set[str] = set()  # RBL names repeat across hosts: check each once
    for h in hosts:
        hid, host, name, kind, profile = h.id, h.host, h.name, h.kind, h.profile_id
        text = hid + host + name + kind + profile  # one check for all five (the common case)
        if len(text) > MAX_LABEL_VALUE or not text.isprintable() or '"' in text or "\\" in text:
            hid, host, name = esc(hid, _HOST_ID), esc(host, _HOST), esc(name, _NAME)
            kind, profile = esc(kind, _HOST_KIND), esc(profile, _PROFILE_ID)
        info.append(
            f"{info_id}{hid}{info_host}{host}{info_name}{name}{info_kind}{kind}{info_profile}{profile}{close}1\n"
        )
        sel = hid + close  # the rest of each one-label line
        if h.listed:
            n_listed += 1
            listed.append(f"{_HOST_LISTED}{sel}1\n")
            for r in dict.fromkeys(h.rbls):  # one series per RBL, even if a source repeats it
                if r not in safe_rbls:
                    clean = esc(r, _RBL)
                    if clean is r:
                        safe_rbls.add(r)
                    r = clean
                rbl.append(f"{listing_host}{hid}{listing_rbl}{r}{close}1\n")
            if h.first_listed is not None:
                first.append(f"{_HOST_FIRST_LISTED}{sel}{fmt(h.first_listed)}\n")
        else:
            listed.append(f"{_HOST_LISTED}{sel}0\n")
        count.append(f"{_HOST_LISTINGS}{sel}{h.listings:d}\n")
        paused.append(f"{_HOST_PAUSED}{sel}{1 if h.paused else 0}\n")
        if h.last_checked is not None:
            checked.append(f"{_HOST_CHECKED}{sel}{fmt(h.last_checked)}\n")
    return n_listed


def _render_hosts(
    fam: Fam, stats: RenderStats, hosts: list[Host], have_inventory: bool, have_listings: bool
) -> None:
    (info, listed, count, rbl, paused, checked, first), n_listed, kept = _each(
        stats, "host", hosts, 7, _host_lines
    )
    fam(contract.RBL_HOST_INFO, "".join(info))
    fam(contract.RBL_HOST_LISTED, "".join(listed))
    fam(contract.RBL_HOST_LISTINGS, "".join(count))
    fam(contract.RBL_LISTING_INFO, "".join(rbl))
    fam(contract.RBL_HOST_PAUSED, "".join(paused))
    fam(contract.RBL_HOST_LAST_CHECKED_TIMESTAMP_SECONDS, "".join(checked))
    fam(contract.RBL_HOST_FIRST_LISTED_TIMESTAMP_SECONDS, "".join(first))
    fam(contract.RBL_HOSTS, f"{_HOSTS}{len(kept)}\n" if have_inventory else "")
    fam(
        contract.RBL_HOSTS_LISTED,
        f"{_HOSTS_LISTED}{n_listed}\n" if have_listings or have_inventory else "",
    )


# -- certificate monitors and errors -------------------------------------------------------------


def _expiry_days(m: Monitor, said: MonitorMark | None, now: float, polled_at: float) -> float | None:
    """Days to expiry: from a cert.expiration.* webhook newer than the poll (counted down since it
    came), else from the certificate's notAfter, else as the API gave it."""
    if said is not None and said.expiry_days is not None and said.expiry_at >= polled_at:
        elapsed = max(0.0, now - said.expiry_at)
        return round(said.expiry_days - elapsed / DAY, 4)
    if m.not_after is not None:
        return round((m.not_after - now) / DAY, 4)
    return m.expiry_days


def _monitor_lines(now: float, marks: Mapping[str, MonitorMark], polled_at: float) -> Body[Monitor]:
    def lines(ms: Sequence[Monitor], out: Lines, esc: Esc) -> int:
        info, paused, days, not_after = out
        info_id, info_name, info_hostname, info_protocol, info_port, info_profile, close = _MONITOR_INFO
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
                mid, name, hostname = esc(mid, _MONITOR_ID), esc(name, _NAME), esc(hostname, _HOSTNAME)
                protocol, port = esc(protocol, _PROTOCOL), esc(port, _PORT)
                profile = esc(profile, _PROFILE_ID)
            info.append(
                f"{info_id}{mid}{info_name}{name}{info_hostname}{hostname}{info_protocol}{protocol}"
                f"{info_port}{port}{info_profile}{profile}{close}1\n"
            )
            sel = mid + close
            paused.append(f"{_MONITOR_PAUSED}{sel}{1 if m.paused else 0}\n")
            expiry = _expiry_days(m, marks.get(m.id), now, polled_at)
            if expiry is not None:
                days.append(f"{_EXPIRY_DAYS}{sel}{fmt(expiry)}\n")
            if m.not_after is not None:
                not_after.append(f"{_NOT_AFTER}{sel}{fmt(m.not_after)}\n")
        return 0

    return lines


def _render_monitors(
    fam: Fam,
    stats: RenderStats,
    monitors: list[Monitor],
    errors: Snapshot | None,
    now: float,
    marks: Mapping[str, MonitorMark],
    polled_at: float,
) -> None:
    (info, paused, days, not_after), _, kept = _each(
        stats, "monitor", monitors, 4, _monitor_lines(now, marks, polled_at)
    )
    fam(contract.CERT_MONITOR_INFO, "".join(info))
    fam(contract.CERT_MONITOR_PAUSED, "".join(paused))
    fam(contract.CERT_EXPIRY_DAYS, "".join(days))
    fam(contract.CERT_NOT_AFTER_TIMESTAMP_SECONDS, "".join(not_after))
    if errors is None:  # no error data: no claim of 0 errors
        active, reasons, total = "", "", ""
    else:
        active, reasons, total = _render_errors(stats, kept, errors, marks)
    fam(contract.CERT_ACTIVE_ERRORS, active)
    fam(contract.CERT_ERROR_INFO, reasons)
    fam(contract.CERT_ERRORS, total)


def _errors_by_monitor(errors: Snapshot, stats: RenderStats) -> dict[str, list[str]]:
    """The reasons of the active errors, per monitor id. In one pass; on a bad error record,
    again one record at a time, leaving out (and counting) each bad one."""
    by_monitor: dict[str, list[str]] = {}

    def group(errs: Iterable[CertError]) -> None:
        for e in errs:
            if type(e.monitor_id) is not str or type(e.reason) is not str:
                raise TypeError("a certificate error's monitor_id and reason must be text")
            by_monitor.setdefault(e.monitor_id, []).append(e.reason)

    try:
        group(errors.items.values())
    except Exception:
        by_monitor.clear()
        for e in errors.items.values():
            try:
                group((e,))
            except Exception as err:
                stats.skip("cert_error", err)
    return by_monitor


def _render_errors(
    stats: RenderStats, kept: Sequence[Monitor], errors: Snapshot, marks: Mapping[str, MonitorMark]
) -> tuple[str, str, str]:
    """(active errors per monitor, one line per active reason, the account's total) for every
    monitor rendered or named by an error; cert.error.* webhooks newer than the poll win."""
    by_monitor = _errors_by_monitor(errors, stats)
    known = {m.id for m in kept} | set(by_monitor)
    for monitor_id, mark in marks.items():
        if mark.errors is not None and monitor_id in known and mark.errors_at >= errors.fetched_at:
            by_monitor[monitor_id] = list(mark.errors)
    error_id, error_reason, close = _ERROR_INFO

    def error_lines(ids: Sequence[str], out: Lines, esc: Esc) -> int:
        active, reasons = out
        n = 0
        for monitor_id in ids:
            errs = by_monitor.get(monitor_id, [])
            mid = esc(monitor_id, _MONITOR_ID)
            active.append(f"{_ACTIVE_ERRORS}{mid}{close}{len(errs)}\n")
            for reason in sorted(set(errs)):
                reasons.append(f"{error_id}{mid}{error_reason}{esc(reason, _REASON)}{close}1\n")
            n += len(errs)
        return n

    (active, reasons), n_errors, _ = _each(stats, "cert_error", _sorted(known, key=str), 2, error_lines)
    return "".join(active), "".join(reasons), f"{_ERRORS}{n_errors}\n"


# -- inventory -----------------------------------------------------------------------------------


def _items(snap: Snapshot | None) -> list[Any]:
    return _sorted(snap.items.values(), key=lambda i: i.id) if snap is not None else []


def _profile_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
    profile_id, profile_name, close = _PROFILE_INFO
    out[0].extend(
        f"{profile_id}{esc(p.id, _PROFILE_ID)}{profile_name}{esc(p.name, _NAME)}{close}1\n" for p in items
    )
    return 0


def _source_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
    info, paused = out
    info_id, info_rbl, info_kind, close = _SOURCE_INFO
    for s in items:
        sid = esc(s.id, _SOURCE_ID)
        kind = HOST_KINDS.get(s.kind, "unknown")
        info.append(f"{info_id}{sid}{info_rbl}{esc(s.name, _RBL)}{info_kind}{kind}{close}1\n")
        paused.append(f"{_SOURCE_PAUSED}{sid}{close}{1 if s.paused else 0}\n")
    return 0


def _contact_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
    info, paused = out
    info_id, info_kind, close = _CONTACT_INFO
    for c in items:
        cid = esc(c.id, _CONTACT_ID)
        info.append(f"{info_id}{cid}{info_kind}{esc(c.kind, _CONTACT_KIND)}{close}1\n")
        paused.append(f"{_CONTACT_PAUSED}{cid}{close}{1 if c.paused else 0}\n")
    return 0


def _group_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
    group_id, group_name, close = _GROUP_INFO
    out[0].extend(
        f"{group_id}{esc(g.id, _GROUP_ID)}{group_name}{esc(g.name, _NAME)}{close}1\n" for g in items
    )
    return 0


def _render_inventory(fam: Fam, stats: RenderStats, fresh: Callable[[str], Snapshot | None]) -> None:
    (profiles,), _, _ = _each(stats, "profile", _items(fresh("rbl_profiles")), 1, _profile_lines)
    fam(contract.RBL_PROFILE_INFO, "".join(profiles))
    (info, paused), _, _ = _each(stats, "source", _items(fresh("rbl_sources")), 2, _source_lines)
    fam(contract.RBL_SOURCE_INFO, "".join(info))
    fam(contract.RBL_SOURCE_PAUSED, "".join(paused))
    (info, paused), _, _ = _each(stats, "contact", _items(fresh("contacts")), 2, _contact_lines)
    fam(contract.CONTACT_INFO, "".join(info))
    fam(contract.CONTACT_PAUSED, "".join(paused))
    (groups,), _, _ = _each(stats, "contact_group", _items(fresh("contact_groups")), 1, _group_lines)
    fam(contract.CONTACT_GROUP_INFO, "".join(groups))


# -- webhook-only state --------------------------------------------------------------------------


def _change_lines(changes: Sequence[tuple[str, tuple[int, float]]], out: Lines, esc: Esc) -> int:
    count, last = out
    for k, (n, t) in changes:
        if n < 0:
            raise ValueError("a counter cannot be negative")
        sel = esc(k, _MONITOR_ID) + _CLOSE
        count.append(f"{_CHANGES}{sel}{n:d}\n")
        last.append(f"{_LAST_CHANGE}{sel}{fmt(t)}\n")
    return 0


def _agent_lines(agents: Sequence[tuple[str, Agent]], out: Lines, esc: Esc) -> int:
    info, timed_out, instances = out
    info_id, info_name, close = _AGENT_INFO
    for k, a in agents:
        aid = esc(k, _AGENT_ID)
        info.append(f"{info_id}{aid}{info_name}{esc(a.name, _NAME)}{close}1\n")
        timed_out.append(f"{_AGENT_TIMED_OUT}{aid}{close}{1 if a.timed_out else 0}\n")
        instances.append(f"{_AGENT_INSTANCES}{aid}{close}{len(a.instances)}\n")
    return 0


def _billing_lines(states: Sequence[WebhookState], out: Lines, esc: Esc) -> int:
    balance, threshold = out
    for s in states:
        if s.balance is not None:
            balance.append(f"{_BALANCE}{fmt(s.balance)}\n")
        if s.balance_threshold is not None:
            threshold.append(f"{_BALANCE_THRESHOLD}{fmt(s.balance_threshold)}\n")
    return 0


def _event_lines(w: WebhookState) -> Body[str]:
    def lines(events: Sequence[str], out: Lines, esc: Esc) -> int:
        count, last = out
        for e in events:
            sel = esc(e, _EVENT) + _CLOSE
            if w.events.get(e, 0) < 0:
                raise ValueError("a counter cannot be negative")
            if e in w.events:
                count.append(f"{_EVENTS}{sel}{w.events[e]:d}\n")
            if e in w.last_event:
                last.append(f"{_LAST_EVENT}{sel}{fmt(w.last_event[e])}\n")
        return 0

    return lines


def _render_webhook_misc(fam: Fam, stats: RenderStats, w: WebhookState, monitors: list[Monitor]) -> None:
    known = {m.id for m in monitors if type(m.id) is str}
    changes = _sorted(((k, v) for k, v in w.cert_changes.items() if k in known), key=itemgetter(0))
    (count, last), _, _ = _each(stats, "cert_change", changes, 2, _change_lines)
    fam(contract.CERT_CHANGES_TOTAL, "".join(count))
    fam(contract.CERT_LAST_CHANGE_TIMESTAMP_SECONDS, "".join(last))
    agents = _sorted(w.agents.items(), key=itemgetter(0))
    (info, timed_out, instances), _, _ = _each(stats, "agent", agents, 3, _agent_lines)
    fam(contract.AGENT_INFO, "".join(info))
    fam(contract.AGENT_TIMED_OUT, "".join(timed_out))
    fam(contract.AGENT_TIMED_OUT_INSTANCES, "".join(instances))
    (balance, threshold), _, _ = _each(stats, "billing", (w,), 2, _billing_lines)
    fam(contract.BILLING_BALANCE_USD, "".join(balance))
    fam(contract.BILLING_BALANCE_THRESHOLD_USD, "".join(threshold))
    events = _sorted(set(w.events) | set(w.last_event), key=str)
    (count, last), _, _ = _each(stats, "webhook_event", events, 2, _event_lines(w))
    fam(contract.WEBHOOK_EVENTS_TOTAL, "".join(count))
    fam(contract.WEBHOOK_LAST_EVENT_TIMESTAMP_SECONDS, "".join(last))


def _hetrix_lines(hetrix: Sequence[tuple[str, Hetrix]], out: Lines, esc: Esc) -> int:
    info, listed, count, rbls, updated = out
    info_monitor, info_label, close = _HETRIX_INFO
    listing_monitor, listing_rbl, _ = _HETRIX_LISTING_INFO
    for name, m in hetrix:
        monitor = esc(name, _MONITOR)
        sel = monitor + close
        info.append(f"{info_monitor}{monitor}{info_label}{esc(m.label, _LABEL)}{close}1\n")
        listed.append(f"{_HETRIX_LISTED}{sel}{1 if m.listed_now > 0 else 0}\n")
        count.append(f"{_HETRIX_LISTINGS}{sel}{m.listed_now:d}\n")
        rbls.extend(
            f"{listing_monitor}{monitor}{listing_rbl}{esc(r, _RBL)}{close}1\n" for r in dict.fromkeys(m.rbls)
        )
        updated.append(f"{_HETRIX_UPDATED}{sel}{fmt(m.at)}\n")
    return 0


def _render_hetrix(fam: Fam, stats: RenderStats, w: WebhookState) -> None:
    (info, listed, count, rbls, updated), _, _ = _each(
        stats, "hetrixtools_monitor", _sorted(w.hetrix.items(), key=itemgetter(0)), 5, _hetrix_lines
    )
    fam(contract.BLACKLIST_MONITOR_INFO, "".join(info))
    fam(contract.BLACKLIST_MONITOR_LISTED, "".join(listed))
    fam(contract.BLACKLIST_MONITOR_LISTINGS, "".join(count))
    fam(contract.BLACKLIST_LISTING_INFO, "".join(rbls))
    fam(contract.BLACKLIST_MONITOR_LAST_UPDATE_TIMESTAMP_SECONDS, "".join(updated))


# -- a whole render ------------------------------------------------------------------------------

Memo = dict[str, tuple[tuple[object, ...], dict[str, Family], RenderStats]]
Build = Callable[[Fam, RenderStats], None]


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Keys hold snapshots (compared by identity: they are immutable and replaced whole) and
    plain values (compared by value)."""
    return len(a) == len(b) and all(
        x is y or (isinstance(x, int | float | str | tuple) and x == y) for x, y in zip(a, b, strict=True)
    )


class _Groups:
    """The families of one render, built group by group; with a memo, a group whose inputs did
    not change is reused, with what it left out."""

    def __init__(self, freshness: Freshness, memo: Memo | None, stats: RenderStats) -> None:
        self._freshness = freshness
        self._memo = memo
        self._stats = stats
        self._intervals = tuple(sorted(freshness.intervals.items()))
        self._out: dict[str, Family] = {}

    def build(self, name: str, kind: str, key: tuple[object, ...], build: Build) -> None:
        """Build group `name` (its objects are of `kind`) unless the memo holds it for `key`.
        A group that fails outside its objects is left empty and counted once under `kind`."""
        key = (*key, self._intervals)
        memo = self._memo
        if memo is not None and name in memo and _same(memo[name][0], key):
            self._out.update(memo[name][1])
            self._stats.add(memo[name][2])
            return
        built: dict[str, Family] = {}
        group_stats = RenderStats({}, {})

        def fam(spec: MetricSpec, body: str) -> None:
            built[spec.name] = Family(spec, self._freshness.help(spec), body)

        try:
            build(fam, group_stats)
        except Exception as err:
            group_stats.skip(kind, err)
        if memo is not None:
            memo[name] = (key, built, group_stats)
        self._out.update(built)
        self._stats.add(group_stats)

    def families(self) -> list[Family]:
        """Every data family in contract order; one whose group failed is empty."""
        return [self._out.get(m.name) or _empty(m, self._freshness) for m in DATA_METRICS]


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
    groups = _Groups(freshness, memo, stats if stats is not None else RenderStats())

    def fresh(collector: str) -> Snapshot | None:
        return freshness.fresh(snapshots.get(collector))

    w = webhooks if webhooks is not None else WebhookState()
    hosts, listings = fresh("rbl_hosts"), fresh("rbl_listings")
    groups.build(
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
    groups.build(
        "monitors",
        "monitor",
        (monitor_snap, errors, w.monitors_version, freshness.now),
        lambda fam, st: _render_monitors(fam, st, monitors, errors, freshness.now, w.monitors, polled_at),
    )
    inventory = tuple(fresh(c) for c in ("rbl_profiles", "rbl_sources", "contacts", "contact_groups"))
    groups.build("inventory", "profile", inventory, lambda fam, st: _render_inventory(fam, st, fresh))
    groups.build(
        "webhooks",
        "webhook_event",
        (w.misc_version, monitor_snap),
        lambda fam, st: _render_webhook_misc(fam, st, w, monitors),
    )
    groups.build(
        "hetrix", "hetrixtools_monitor", (w.hetrix_version,), lambda fam, st: _render_hetrix(fam, st, w)
    )
    return groups.families()


def _empty(spec: MetricSpec, freshness: Freshness) -> Family:
    """A family whose group failed as a whole: its HELP and TYPE, no samples."""
    try:
        help_ = freshness.help(spec)
    except Exception:
        help_ = spec.help
    return Family(spec, help_, "")


# -- the cached bytes ----------------------------------------------------------------------------


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
