"""Pure: the text of the data series, object by object. No I/O.

Every family's name, type, labels and help come from the metric contract
(exporter.metrics.contract): the fixed text of each family's sample lines (`MetricSpec.pieces`)
is taken from it once, at import, and a line only pastes label and sample values in between.
The data lines are the same in the Prometheus text format and in OpenMetrics; only the HELP and
TYPE lines of the `_info` and counter families differ (`header`). exporter.metrics.render
decides which objects to render again and keeps the result.

Rendering never fails as a whole, whatever the records hold:
- every label value goes through a render's escaper (`_escaper`), which never raises: quotes,
  backslashes and newlines are escaped; lone surrogates and control characters become U+FFFD
  and values longer than MAX_LABEL_VALUE are cut (and counted per label name), both marked with
  a checksum of the original so that distinct values stay distinct series;
- every sample value goes through `fmt` (floats: NaN and ±Inf in the exposition's own spelling)
  or `format(n, "d")` (integers), so a value of the wrong type raises instead of printing text
  that no parser accepts;
- objects are rendered a batch at a time in one pass (`each`); only if that pass raises is the
  batch rendered again one object at a time, leaving out (and counting, in RenderStats) each
  object that raises. The common case pays for one `try` per batch, not per line.

The large kinds (hosts, monitors, their errors) are written a family at a time, not an object at
a time: their label values are checked for the whole batch at once, on the `_info` lines written
with them (only a batch that holds a value to escape, replace or cut goes through the escaper
value by value); a family whose value is nearly always the same (paused, listed, listings) is a
few joins of the ids; floats (timestamps, days) are checked as a batch and written without a
call of `fmt` each, as it writes them. A 20,000-host account renders in about 60 % of the time
an object-at-a-time loop takes (bench.profile_render).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain, compress
from typing import Any, TypeVar

from exporter.api.records import HOST_KINDS, CertError, Host, Item, Monitor
from exporter.clock import DAY
from exporter.metrics import contract
from exporter.metrics.contract import DATA_METRICS, MetricSpec
from exporter.state.overlay import Agent, Hetrix, HostMark, MonitorMark
from exporter.state.snapshot import Snapshot

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
    "cert_profile",
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
# The ASCII characters a label value may hold as it is: the printable ones but quote and backslash.
_SAFE_ASCII = bytes(c for c in range(0x20, 0x7F) if chr(c) not in '"\\')

T = TypeVar("T")
Esc = Callable[[str, str], str]  # (value, label name) -> the value, safe inside quotes
Lines = list[list[Any]]  # per family of a batch, its sample lines: text, or UTF-8 (`utf8`)
Body = Callable[[Sequence[T], Lines, Esc], int]  # writes a batch's lines, returns a tally


# -- the fixed text of every sample line, from the contract, computed once ------------------------

CLOSE = contract.RBL_HOST_LISTED.pieces[-1]  # what follows the last label value


def one_label(spec: MetricSpec) -> str:
    """A one-label family's sample line up to its label value (`name{label="`): the value,
    CLOSE and the sample value follow. Fails at import if the contract gives it other labels."""
    head, close = spec.pieces
    if close != CLOSE:
        raise ValueError(f"{spec.name}: unexpected sample line pieces {spec.pieces!r}")
    return head


def _bare(spec: MetricSpec) -> str:
    """A family without labels: its sample line up to the value (`name `)."""
    (head,) = spec.pieces
    return head


# rbl hosts and listings
_HOST_ID, _HOST, _NAME, _HOST_KIND, _PROFILE_ID, _TAGS, _CONTACT_GROUP = contract.RBL_HOST_INFO.labels
_HOST_INFO = contract.RBL_HOST_INFO.pieces
_HOST_LISTED = one_label(contract.RBL_HOST_LISTED)
_HOST_LISTINGS = one_label(contract.RBL_HOST_LISTINGS)
_, _RBL = contract.RBL_LISTING_INFO.labels
_LISTING_INFO = contract.RBL_LISTING_INFO.pieces
_HOST_PAUSED = one_label(contract.RBL_HOST_PAUSED)
_HOST_CHECKED = one_label(contract.RBL_HOST_LAST_CHECKED_TIMESTAMP_SECONDS)
_HOST_FIRST_LISTED = one_label(contract.RBL_HOST_FIRST_LISTED_TIMESTAMP_SECONDS)
_HOSTS = _bare(contract.RBL_HOSTS)
_HOSTS_LISTED = _bare(contract.RBL_HOSTS_LISTED)
# certificate monitors and errors
_MONITOR_ID, _, _HOSTNAME, _PROTOCOL, _PORT, _, _, _ = contract.CERT_MONITOR_INFO.labels
_MONITOR_INFO = contract.CERT_MONITOR_INFO.pieces
_MONITOR_PAUSED = one_label(contract.CERT_MONITOR_PAUSED)
_EXPIRY_DAYS = one_label(contract.CERT_EXPIRY_DAYS)
_NOT_AFTER = one_label(contract.CERT_NOT_AFTER_TIMESTAMP_SECONDS)
_WITHOUT_EXPIRY = _bare(contract.CERT_MONITORS_WITHOUT_EXPIRY)
_ACTIVE_ERRORS = one_label(contract.CERT_ACTIVE_ERRORS)
_, _REASON = contract.CERT_ERROR_INFO.labels
_ERROR_INFO = contract.CERT_ERROR_INFO.pieces
_ERRORS = _bare(contract.CERT_ERRORS)
# inventory
_PROFILE_INFO = contract.RBL_PROFILE_INFO.pieces
_SOURCE_ID, _, _ = contract.RBL_SOURCE_INFO.labels
_SOURCE_INFO = contract.RBL_SOURCE_INFO.pieces
_SOURCE_PAUSED = one_label(contract.RBL_SOURCE_PAUSED)
_CONTACT_ID, _CONTACT_KIND, _ = contract.CONTACT_INFO.labels
_CONTACT_INFO = contract.CONTACT_INFO.pieces
_CONTACT_PAUSED = one_label(contract.CONTACT_PAUSED)
_GROUP_ID, _ = contract.CONTACT_GROUP_INFO.labels
_GROUP_INFO = contract.CONTACT_GROUP_INFO.pieces
# webhook-only state
_CHANGES = one_label(contract.CERT_CHANGES_TOTAL)
_LAST_CHANGE = one_label(contract.CERT_LAST_CHANGE_TIMESTAMP_SECONDS)
_AGENT_ID, _ = contract.AGENT_INFO.labels
_AGENT_INFO = contract.AGENT_INFO.pieces
_AGENT_TIMED_OUT = one_label(contract.AGENT_TIMED_OUT)
_AGENT_INSTANCES = one_label(contract.AGENT_TIMED_OUT_INSTANCES)
_BALANCE = _bare(contract.BILLING_BALANCE_USD)
_BALANCE_THRESHOLD = _bare(contract.BILLING_BALANCE_THRESHOLD_USD)
(_EVENT,) = contract.WEBHOOK_EVENTS_TOTAL.labels
_EVENTS = one_label(contract.WEBHOOK_EVENTS_TOTAL)
_LAST_EVENT = one_label(contract.WEBHOOK_LAST_EVENT_TIMESTAMP_SECONDS)
# HetrixTools
_MONITOR, _LABEL = contract.BLACKLIST_MONITOR_INFO.labels
_HETRIX_INFO = contract.BLACKLIST_MONITOR_INFO.pieces
_HETRIX_LISTED = one_label(contract.BLACKLIST_MONITOR_LISTED)
_HETRIX_LISTINGS = one_label(contract.BLACKLIST_MONITOR_LISTINGS)
_HETRIX_LISTING_INFO = contract.BLACKLIST_LISTING_INFO.pieces
_HETRIX_UPDATED = one_label(contract.BLACKLIST_MONITOR_LAST_UPDATE_TIMESTAMP_SECONDS)


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


# The fields of the records that hold the values of an `_info` family's labels, in their order.
_FIELDS = {
    contract.RBL_HOST_INFO.name: ("id", "host", "name", "kind", "profile_id", "tags", "contact_group"),
    contract.CERT_MONITOR_INFO.name: (
        ("id", "name", "hostname", "protocol", "port", "profile_id", "tags", "contact_group")
    ),
}


def _clean_text(text: str) -> bool:
    """Whether `text` holds only what a label value may hold as it is: printable characters but
    quote and backslash (no length limit)."""
    if text.isascii():  # one C pass over the bytes: nothing is left once the safe ones are deleted
        return not text.encode("ascii").translate(None, _SAFE_ASCII)
    return text.isprintable() and '"' not in text and "\\" not in text


def _clean_rows(rows: Iterable[Iterable[str]]) -> bool:
    """Whether every label value of `rows` goes between quotes as it is (the common case: no
    value to escape, replace or cut), checked for a whole batch in a few passes over its joined
    text rather than value by value. Raises TypeError for a value that is not text."""
    values = list(chain.from_iterable(rows))
    text = "".join(values)
    if len(text) > MAX_LABEL_VALUE and max(map(len, values)) > MAX_LABEL_VALUE:
        return False
    return _clean_text(text)


def _pairs(objs: Sequence[tuple[Any, Any]]) -> tuple[Sequence[Any], Sequence[Any]]:
    """The first and the second values of pairs, as two sequences (raises for one that is not)."""
    if not objs:
        return (), ()
    first, second = zip(*objs, strict=True)
    return first, second


def _clean_lines(lines: list[str], text: str, quotes: int) -> bytes | None:
    """`text`, the join of `lines`, as UTF-8 if the label values written into the lines went
    between quotes as they are; else None. Checked on the lines themselves, whose fixed text is
    printable ASCII with `quotes` quotes and one newline per line: once the characters a value
    may hold are deleted, those must be all that is left. None also when the text is not ASCII
    or a line is long: then the values are looked at one by one."""
    if not text.isascii():
        return None
    raw = text.encode("ascii")
    if raw.translate(None, _SAFE_ASCII) != (b'"' * quotes + b"\n") * len(lines):
        return None
    return raw if max(map(len, lines), default=0) <= MAX_LABEL_VALUE else None


def _joined(pieces: tuple[str, ...], rows: Iterable[Sequence[str]]) -> list[str]:
    """`_info` lines: the fixed `pieces` with a row's label values in between, and the value 1."""
    last = pieces[-1] + "1\n"
    return ["".join(chain.from_iterable(zip(pieces, row, strict=False))) + last for row in rows]


def _info(
    objs: Sequence[Any], lines: Callable[[Sequence[Any]], list[str]], spec: MetricSpec, esc: Esc
) -> tuple[Sequence[str], str | bytes]:
    """(the id of each object as it goes between quotes, the text of the `_info` family, as
    UTF-8 when it is ready) of a batch. `lines` writes the lines from the objects' label values
    as they are (TypeError for a value that is not text); the values are checked on the lines,
    for the whole batch at once (`_clean_lines`). Only in a batch that fails the check are they
    looked at one by one, and only in a batch with a value to escape, replace or cut do they go
    through `esc`."""
    out = lines(objs)
    text = "".join(out)
    raw = _clean_lines(out, text, 2 * len(spec.labels))
    if raw is not None:
        return [o.id for o in objs], raw
    columns = [[getattr(o, name) for o in objs] for name in _FIELDS[spec.name]]
    if not _clean_rows(columns):
        columns = [
            [esc(v, label) for v in column] for column, label in zip(columns, spec.labels, strict=True)
        ]
        text = "".join(_joined(spec.pieces, zip(*columns, strict=True)))
    return columns[0], text


def _mostly(prefix: str, ids: Sequence[str], common: str, odd: Mapping[int, str]) -> str:
    """A one-label family's lines `prefix id CLOSE value`, one per id of `ids`: the value is
    `common`, but for the indexes of `odd` (index -> value, ascending). A run of the common
    value is one join, so that a family such as paused (nearly all 0) costs a few C loops."""
    if not ids:
        return ""
    sep, end = f"{CLOSE}{common}{prefix}", CLOSE + common
    parts: list[str] = []
    start = 0
    for i, value in odd.items():
        if i > start:  # three parts, not one concatenation: a run is copied once, by the join
            parts += (prefix, sep.join(ids[start:i]), end)
        parts.append(f"{prefix}{ids[i]}{CLOSE}{value}")
        start = i + 1
    if start < len(ids):
        parts += (prefix, sep.join(ids[start:]), end)
    return "".join(parts)


def _flags(prefix: str, ids: Sequence[str], flags: Sequence[Any]) -> str:
    """A 0/1 family: 1 where the flag is true."""
    return _mostly(prefix, ids, "0\n", dict.fromkeys(compress(range(len(flags)), flags), "1\n"))


def _counts(prefix: str, ids: Sequence[str], counts: Sequence[Any]) -> str:
    """A family of integers (`:d`, which raises for anything else), most of them 0."""
    if set(map(type, counts)) <= {int}:
        return _mostly(
            prefix, ids, "0\n", {i: f"{counts[i]:d}\n" for i in compress(range(len(counts)), counts)}
        )
    return "".join([f"{prefix}{hid}{CLOSE}{n:d}\n" for hid, n in zip(ids, counts, strict=True)])


def _column(prefix: str, ids: Sequence[str], values: Sequence[Any]) -> str:
    """A one-label family's lines `prefix id CLOSE value` (`fmt`), one for each value that is
    not None. A batch of floats within ±1e15 (timestamps, days to expiry) is checked in a few C
    loops and written as `fmt` writes them, without a call of it per value: int(v) for a whole
    one, else repr(v)."""
    try:
        whole = all(map(float.is_integer, values))  # then none is NaN or infinite
    except TypeError:  # a value that is not a float: None, or of a wrong type
        if None in values:
            kept = [(hid, value) for hid, value in zip(ids, values, strict=True) if value is not None]
            ids, values = [hid for hid, _ in kept], [value for _, value in kept]
        return "".join([f"{prefix}{hid}{CLOSE}{fmt(v)}\n" for hid, v in zip(ids, values, strict=True)])
    if not values or not _within(values, whole):
        return "".join([f"{prefix}{hid}{CLOSE}{fmt(v)}\n" for hid, v in zip(ids, values, strict=True)])
    if whole:  # int(v), as fmt writes a whole float (of any float type)
        return _interleaved(prefix, ids, list(map(str, map(int, values))))
    return _interleaved(prefix, ids, [str(int(v)) if v.is_integer() else repr(v) for v in values])


def _interleaved(prefix: str, ids: Sequence[str], texts: Sequence[str]) -> str:
    """The lines `prefix id CLOSE text`, one per id and text (as many of each, else ValueError),
    in one join of the pieces: no string is made per line."""
    pieces = [prefix, "", CLOSE, "", "\n"] * len(ids)
    pieces[1::5] = ids
    pieces[3::5] = texts
    return "".join(pieces)


def _within(values: Sequence[float], whole: bool) -> bool:
    """Whether floats, not empty, are all finite and within ±1e15, where `fmt` writes int(v) or
    repr(v); when they are not all `whole`, also of the type float itself (repr(v) of another
    float type could differ from `fmt`'s repr(float(v)))."""
    if not whole:
        total = sum(values)  # NaN or ±Inf if any value is: then min and max would not tell
        if total - total != 0 or set(map(type, values)) != {float}:
            return False
    return min(values) > -1e15 and max(values) < 1e15


# -- what a render left out, and the one-pass-then-one-by-one rendering of a batch ---------------


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


def each(
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


def utf8(lines: list[Any]) -> bytes:
    """A family's lines as UTF-8: a body writes them as text, or (a large batch's `_info`
    lines, checked as bytes) as UTF-8 already; lines that are not valid text are replaced."""
    if len(lines) == 1 and type(lines[0]) is bytes:
        return lines[0]
    if not any(type(chunk) is bytes for chunk in lines):
        return "".join(lines).encode("utf-8", "replace")
    return b"".join([c if type(c) is bytes else c.encode("utf-8", "replace") for c in lines])


# -- headers and freshness ----------------------------------------------------------------------


def header(spec: MetricSpec, help_: str, openmetrics: bool) -> str:
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


class Unrenderable:
    """Stands in for an object whose inputs could not even be combined (a broken record met
    while merging): rendering it raises that error again, so it is left out and counted."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        raise self.error

    def __getitem__(self, index: object) -> Any:
        raise self.error


# -- RBL hosts -----------------------------------------------------------------------------------


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


def merge_host(
    host_id: str, hosts: Snapshot | None, listings: Snapshot | None, marks: Mapping[str, HostMark]
) -> Host | None:
    """One host from the inventory, with its listing state from whichever source saw it last:
    the inventory page, the listings pass, or a webhook newer than both (a mark). None when
    neither the inventory nor the listings know it (a webhook never invents a host). The
    listings pass takes a host it saw, and a host it did not see is no longer listed, unless the
    inventory page that holds the host is newer."""
    h: Host | None = hosts.items.get(host_id) if hosts is not None else None
    page_at = hosts.item_times.get(host_id, 0.0) if hosts is not None else 0.0
    if listings is not None:
        seen: Host | None = listings.items.get(host_id)
        if seen is not None and (h is None or page_at <= listings.fetched_at):
            h = seen
        elif seen is None and h is not None and h.listed and page_at <= listings.fetched_at:
            h = replace(h, listed=False, listings=0, rbls=(), first_listed=None)
    mark = marks.get(host_id)
    if h is None or mark is None:
        return h
    polled = max(page_at, listings.fetched_at if listings is not None else 0.0)
    if mark.at < polled:  # a late webhook older than what the polls already saw
        return h
    return _mark_host(h, mark)


def merge_hosts(
    hosts: Snapshot | None, listings: Snapshot | None, marks: Mapping[str, HostMark]
) -> dict[str, Any]:
    """`merge_host` of every host the inventory or the listings know (Unrenderable for one
    whose records cannot be combined). In one pass: a host of the inventory that is not listed,
    that the listings pass did not see and that no webhook marked is its record as it is (the
    common case: the inventory is copied whole); only the others are merged one by one."""
    items: Mapping[str, Any] = hosts.items if hosts is not None else {}
    seen: Mapping[str, Any] = listings.items if listings is not None else {}
    out = dict(items)
    # in the mappings' order: a host only the listings know comes after the inventory's
    rest = dict.fromkeys(key for key, h in items.items() if type(h) is not Host or h.listed is not False)
    rest.update(dict.fromkeys(seen))
    rest.update(dict.fromkeys(marks.keys() & items.keys()))  # in `out` already: order unchanged
    for key in rest:
        try:
            out[key] = merge_host(key, hosts, listings, marks)
        except Exception as err:
            out[key] = Unrenderable(err)
    return out


def _host_info(hosts: Sequence[Host]) -> list[str]:
    i_id, i_host, i_name, i_kind, i_profile, i_tags, i_groups, close = _HOST_INFO
    close += "1\n"
    join = "".join  # one join of a tuple per line: it also refuses a value that is not text
    return [
        join(
            (
                i_id,
                h.id,
                i_host,
                h.host,
                i_name,
                h.name,
                i_kind,
                h.kind,
                i_profile,
                h.profile_id,
                i_tags,
                h.tags,
                i_groups,
                h.contact_group,
                close,
            )
        )
        for h in hosts
    ]


def _listed_lines(listed: Iterable[tuple[Host, str]], rbl: list[str], first: list[str], esc: Esc) -> int:
    """The lines only a listed host writes, from (host, its id as it goes between quotes) of
    each listed host: one per RBL, and when the listing began. Returns how many there were."""
    listing_host, listing_rbl, close = _LISTING_INFO
    n_listed = 0
    safe_rbls: set[str] = set()  # RBL names repeat across hosts: check each once
    for h, hid in listed:
        n_listed += 1
        for r in dict.fromkeys(h.rbls):  # one series per RBL, even if a source repeats it
            if r not in safe_rbls:
                clean = esc(r, _RBL)
                if clean is r:
                    safe_rbls.add(r)
                r = clean
            rbl.append(f"{listing_host}{hid}{listing_rbl}{r}{close}1\n")
        if h.first_listed is not None:
            first.append(f"{_HOST_FIRST_LISTED}{hid}{CLOSE}{fmt(h.first_listed)}\n")
    return n_listed


def host_lines(listed_only: bool) -> Body[Host]:
    """The seven per-host families; the tally is the number of listed hosts. With `listed_only`
    a host that is neither listed nor paused writes no line (it still counts as rendered).

    A family at a time, from the batch's field values taken once per host: a host that raises
    makes the batch raise, and `each` renders it again host by host, as for any body."""

    def lines(hosts: Sequence[Host], out: Lines, esc: Esc) -> int:
        info, listed, count, rbl, paused, checked, first = out
        shown = [h for h in hosts if h.listed or h.paused] if listed_only else hosts
        ids, info_text = _info(shown, _host_info, contract.RBL_HOST_INFO, esc)
        # field by field: a comprehension's attribute access is faster than an attrgetter's
        flags, counts = [h.listed for h in shown], [h.listings for h in shown]
        pauses, times = [h.paused for h in shown], [h.last_checked for h in shown]
        n_listed = _listed_lines(compress(zip(shown, ids, strict=True), flags), rbl, first, esc)
        info.append(info_text)
        listed.append(_flags(_HOST_LISTED, ids, flags))
        count.append(_counts(_HOST_LISTINGS, ids, counts))
        paused.append(_flags(_HOST_PAUSED, ids, pauses))
        checked.append(_column(_HOST_CHECKED, ids, times))
        return n_listed

    return lines


def hosts_total(kept: int) -> str:
    return f"{_HOSTS}{kept}\n"


def hosts_listed_total(listed: int) -> str:
    return f"{_HOSTS_LISTED}{listed}\n"


# -- certificate monitors and errors -------------------------------------------------------------


def expiry_days(m: Monitor, said: MonitorMark | None, now: float, polled_at: float) -> float | None:
    """Days to expiry: from a cert.expiration.* webhook newer than the poll (counted down since it
    came), else from the certificate's notAfter, else as the API gave it."""
    if said is not None and said.expiry_days is not None and said.expiry_at >= polled_at:
        elapsed = max(0.0, now - said.expiry_at)
        return round(said.expiry_days - elapsed / DAY, 4)
    if m.not_after is not None:
        return round((m.not_after - now) / DAY, 4)
    return m.expiry_days


def unsaid_expiry_days(
    monitors: Mapping[str, Monitor], now: float
) -> dict[str, tuple[Monitor, float | None]]:
    """(monitor, its days to expiry at `now`) of each monitor, as `expiry_days` gives them when
    no webhook said otherwise, in one pass. Raises what a broken monitor raises."""
    return {
        k: (m, m.expiry_days if m.not_after is None else round((m.not_after - now) / DAY, 4))
        for k, m in monitors.items()
    }


def _monitor_info(monitors: Sequence[Monitor]) -> list[str]:
    i_id, i_name, i_hostname, i_protocol, i_port, i_profile, i_tags, i_groups, close = _MONITOR_INFO
    close += "1\n"
    join = "".join  # one join of a tuple per line: it also refuses a value that is not text
    return [
        join(
            (
                i_id,
                m.id,
                i_name,
                m.name,
                i_hostname,
                m.hostname,
                i_protocol,
                m.protocol,
                i_port,
                m.port,
                i_profile,
                m.profile_id,
                i_tags,
                m.tags,
                i_groups,
                m.contact_group,
                close,
            )
        )
        for m in monitors
    ]


def monitor_lines(ms: Sequence[tuple[Monitor, float | None]], out: Lines, esc: Esc) -> int:
    """The four per-monitor families, from (monitor, its days to expiry)."""
    info, paused, days, not_after = out
    monitors, expiry = _pairs(ms)
    ids, info_text = _info(monitors, _monitor_info, contract.CERT_MONITOR_INFO, esc)
    pauses, dates = [m.paused for m in monitors], [m.not_after for m in monitors]
    info.append(info_text)
    paused.append(_flags(_MONITOR_PAUSED, ids, pauses))
    days.append(_column(_EXPIRY_DAYS, ids, expiry))
    not_after.append(_column(_NOT_AFTER, ids, dates))
    return 0


def without_expiry_total(n: int) -> str:
    """Active monitors whose expiry the API did not give in a form the parser reads."""
    return f"{_WITHOUT_EXPIRY}{n:d}\n"


def errors_by_monitor(errors: Snapshot, stats: RenderStats) -> dict[str, list[str]]:
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


def error_lines(monitors: Sequence[tuple[str, tuple[str, ...]]], out: Lines, esc: Esc) -> int:
    """Active errors per monitor and one line per active reason, from (monitor id, its errors);
    the tally is the number of errors."""
    active, reasons = out
    error_id, error_reason, close = _ERROR_INFO
    ids, errors = _pairs(monitors)
    if not _clean_rows((ids,)):
        ids = tuple(esc(monitor_id, _MONITOR_ID) for monitor_id in ids)
    counts = list(map(len, errors))
    with_errors = list(compress(range(len(counts)), counts))
    active.append(_mostly(_ACTIVE_ERRORS, ids, "0\n", {i: f"{counts[i]}\n" for i in with_errors}))
    for i in with_errors:
        mid = ids[i]
        for reason in sorted(set(errors[i])):
            reasons.append(f"{error_id}{mid}{error_reason}{esc(reason, _REASON)}{close}1\n")
    return sum(counts)


def errors_total(n: int) -> str:
    return f"{_ERRORS}{n}\n"


# -- inventory -----------------------------------------------------------------------------------


def profile_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
    profile_id, profile_name, close = _PROFILE_INFO
    out[0].extend(
        f"{profile_id}{esc(p.id, _PROFILE_ID)}{profile_name}{esc(p.name, _NAME)}{close}1\n" for p in items
    )
    return 0


def source_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
    info, paused = out
    info_id, info_rbl, info_kind, close = _SOURCE_INFO
    for s in items:
        sid = esc(s.id, _SOURCE_ID)
        kind = HOST_KINDS.get(s.kind, "unknown")
        info.append(f"{info_id}{sid}{info_rbl}{esc(s.name, _RBL)}{info_kind}{kind}{close}1\n")
        paused.append(f"{_SOURCE_PAUSED}{sid}{close}{1 if s.paused else 0}\n")
    return 0


def contact_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
    info, paused = out
    info_id, info_kind, info_groups, close = _CONTACT_INFO
    for c in items:
        cid = esc(c.id, _CONTACT_ID)
        groups = esc(c.contact_group, _CONTACT_GROUP)
        info.append(f"{info_id}{cid}{info_kind}{esc(c.kind, _CONTACT_KIND)}{info_groups}{groups}{close}1\n")
        paused.append(f"{_CONTACT_PAUSED}{cid}{close}{1 if c.paused else 0}\n")
    return 0


def group_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
    group_id, group_name, close = _GROUP_INFO
    out[0].extend(
        f"{group_id}{esc(g.id, _GROUP_ID)}{group_name}{esc(g.name, _NAME)}{close}1\n" for g in items
    )
    return 0


# -- webhook-only state --------------------------------------------------------------------------


def change_lines(changes: Sequence[tuple[str, tuple[int, float]]], out: Lines, esc: Esc) -> int:
    count, last = out
    for k, (n, t) in changes:
        if n < 0:
            raise ValueError("a counter cannot be negative")
        sel = esc(k, _MONITOR_ID) + CLOSE
        count.append(f"{_CHANGES}{sel}{n:d}\n")
        last.append(f"{_LAST_CHANGE}{sel}{fmt(t)}\n")
    return 0


def agent_lines(agents: Sequence[tuple[str, Agent]], out: Lines, esc: Esc) -> int:
    info, timed_out, instances = out
    info_id, info_name, close = _AGENT_INFO
    for k, a in agents:
        aid = esc(k, _AGENT_ID)
        info.append(f"{info_id}{aid}{info_name}{esc(a.name, _NAME)}{close}1\n")
        timed_out.append(f"{_AGENT_TIMED_OUT}{aid}{close}{1 if a.timed_out else 0}\n")
        instances.append(f"{_AGENT_INSTANCES}{aid}{close}{len(a.instances)}\n")
    return 0


def billing_lines(states: Sequence[tuple[float | None, float | None]], out: Lines, esc: Esc) -> int:
    """The balance and its alert threshold, from (balance, threshold); None: not reported."""
    balance, threshold = out
    for value, limit in states:
        if value is not None:
            balance.append(f"{_BALANCE}{fmt(value)}\n")
        if limit is not None:
            threshold.append(f"{_BALANCE_THRESHOLD}{fmt(limit)}\n")
    return 0


def event_lines(events: Sequence[tuple[str, int | None, float | None]], out: Lines, esc: Esc) -> int:
    """Events applied and the newest event's date per type, from (type, count, date); None: the
    state holds no count (or date) for the type."""
    count, last = out
    for e, n, at in events:
        sel = esc(e, _EVENT) + CLOSE
        if n is not None and n < 0:
            raise ValueError("a counter cannot be negative")
        if n is not None:
            count.append(f"{_EVENTS}{sel}{n:d}\n")
        if at is not None:
            last.append(f"{_LAST_EVENT}{sel}{fmt(at)}\n")
    return 0


def hetrix_lines(listed_only: bool) -> Body[tuple[str, Hetrix]]:
    """The five per-monitor HetrixTools families; with `listed_only`, only for monitors that are
    listed somewhere."""

    def lines(hetrix: Sequence[tuple[str, Hetrix]], out: Lines, esc: Esc) -> int:
        info, listed, count, rbls, updated = out
        info_monitor, info_label, close = _HETRIX_INFO
        listing_monitor, listing_rbl, _ = _HETRIX_LISTING_INFO
        for name, m in hetrix:
            is_listed = m.listed_now > 0
            if listed_only and not is_listed:
                continue
            monitor = esc(name, _MONITOR)
            sel = monitor + close
            info.append(f"{info_monitor}{monitor}{info_label}{esc(m.label, _LABEL)}{close}1\n")
            listed.append(f"{_HETRIX_LISTED}{sel}{1 if is_listed else 0}\n")
            count.append(f"{_HETRIX_LISTINGS}{sel}{m.listed_now:d}\n")
            rbls.extend(
                f"{listing_monitor}{monitor}{listing_rbl}{esc(r, _RBL)}{close}1\n"
                for r in dict.fromkeys(m.rbls)
            )
            updated.append(f"{_HETRIX_UPDATED}{sel}{fmt(m.at)}\n")
        return 0

    return lines
