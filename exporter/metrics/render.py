"""Pure: the data part of /metrics, rendered again only where the state changed. No I/O.

The line text of each object comes from exporter.metrics.lines; this module decides what to
render again and keeps the result, so that a webhook about one host costs that host's bucket,
not the 14 MB of a 20,000-host account.

- Objects are kept per kind in a `Section`, partitioned into buckets by position, not by hash:
  the first time (and when re-bucketed) the objects are cut, in their mapping's order (a
  snapshot's: the API's, which is also the order they were allocated in, so a render walks
  memory in order), into runs of about 256 to 512 (`bucket_count` runs of equal length). After
  that a known key stays in its bucket, a new key goes to the last bucket while it holds fewer
  than BUCKET_SIZE, else to a new one, and a key gone leaves its bucket. A section is
  re-bucketed when its object count drifts DRIFT times from the one its buckets were made for,
  or when its buckets hold fewer than BUCKET_SIZE / (2 * DRIFT) objects on average. Lines within
  a family are in bucket order, then in the order the bucket holds its objects: for a first
  render, the snapshot's order; after changes, an object keeps its bucket (in it, the order of
  the last mapping that changed the bucket) and a new one comes after the others. The same
  sequence of states always writes the same bytes (no order comes from a set); the order is
  not the ids' (neither format asks for one).
- Each object is kept as what it is rendered from (the merged host, the monitor with its days to
  expiry, ...). A render compares each object with the one kept (`same`: the same object, or
  equal values of the same types) and renders again only the buckets that hold a changed, added
  or removed object. Snapshots and webhook marks are immutable and replaced when they change,
  so the common case is an identity check; hosts, the largest kind, are not even compared when
  neither snapshot was replaced: then only the hosts whose webhook mark changed are looked at.
- A bucket keeps, per family, one complete gzip member of its lines (and their length), not the
  text: members written one after the other are one valid gzip stream (RFC 1952, section 2.2,
  "a gzip file consists of a series of members"). HELP and TYPE lines are small members of
  their own, in each format (the data lines are the same in both). A gzip scrape writes the
  members as they are; an uncompressed one inflates them member by member as it writes.
- What a render left out or cut (RenderStats) is kept per bucket and summed.
- A group whose inputs are the same objects as at the last update is not looked at again: the
  monitors (same snapshots, same marks, same EXPIRY_STEP of time) and the HetrixTools monitors
  (the same records). So a webhook about one host costs that host's bucket, not a comparison of
  every monitor. Days to expiry are computed at `now` floored to EXPIRY_STEP for this reason.
- The active errors are kept per monitor id, in the monitors' buckets: when every monitor is
  rendered under its id, the error section's buckets are made from the monitors'
  (`_error_groups`, an error of a monitor not among them in the last bucket); else they are
  placed as any section's.
- An update runs without the cyclic garbage collector (`_without_cyclic_gc`): it allocates tens
  of thousands of containers and frees nearly all of them by reference counting, so collections
  during it (some of them full ones, over the whole heap) only cost time.

Renderer.update never raises: an object that cannot be rendered is left out and counted, and
a group of families that fails outside its objects (a broken snapshot) is left empty and counted
once under its object kind.
"""

from __future__ import annotations

import gc
import math
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from operator import attrgetter, is_, itemgetter
from typing import Any

from exporter.metrics import contract
from exporter.metrics.contract import DATA_METRICS, MetricSpec
from exporter.metrics.delivery import GroupTable, cert_profile_lines, rbl_profile_lines
from exporter.metrics.delivery import contact_lines as delivery_contact_lines
from exporter.metrics.delivery import group_lines as delivery_group_lines
from exporter.metrics.lines import (
    Body,
    Freshness,
    RenderStats,
    Unrenderable,
    agent_lines,
    billing_lines,
    change_lines,
    each,
    error_lines,
    errors_by_monitor,
    errors_total,
    event_lines,
    expiry_days,
    header,
    hetrix_lines,
    host_lines,
    hosts_listed_total,
    hosts_total,
    merge_host,
    merge_hosts,
    monitor_lines,
    source_lines,
    unsaid_expiry_days,
    utf8,
    without_expiry_total,
)
from exporter.state.overlay import Hetrix, HostMark, MonitorMark, WebhookState
from exporter.state.snapshot import Snapshot

GZIP_LEVEL = 1  # fastest: a member is compressed once per change of its bucket
BUCKET_SIZE = 512  # objects per bucket at most when a section's bucket count is chosen
DRIFT = 4  # re-bucket a section when its object count grows or shrinks this many times
# Days to expiry are computed at `now` floored to a multiple of EXPIRY_STEP seconds, so that they
# change (and the 5,000 monitors of a large account are rendered again) once per step, not on
# every render: a webhook about one host never pays for the monitors. The step is the minute
# after which the exporter renders again anyway (exporter.metrics.serve.TIME_BUCKET is this
# value): a value is at most a minute behind (0.0007 days), as it was between two renders.
EXPIRY_STEP = 60.0
# exposition.per_host: every host's series (today's output), or only listed and paused hosts'
PER_HOST_ALL = "all"
PER_HOST_LISTED = "listed"
PER_HOST = (PER_HOST_ALL, PER_HOST_LISTED)

Encode = Callable[[bytes], bytes]


def gzip_member(raw: bytes) -> bytes:
    """`raw` as one complete gzip member: header, deflate stream, CRC-32 and size (RFC 1952)."""
    return zlib.compress(raw, GZIP_LEVEL, wbits=31)


def _plain(raw: bytes) -> bytes:
    return raw


def _gunzip(members: Iterable[bytes]) -> Iterator[bytes]:
    """The text of gzip members, one member at a time."""
    for member in members:
        yield zlib.decompress(member, wbits=31)


# -- what changed --------------------------------------------------------------------------------

_MISSING: Any = object()
_FIELDS: dict[type, Callable[[Any], Any] | None] = {}


def _fields(kind: type) -> Callable[[Any], Any] | None:
    """A function returning the field values of a record type with slots (None: not one)."""
    if kind not in _FIELDS:
        slots = getattr(kind, "__slots__", None)
        names = tuple(slots) if isinstance(slots, tuple | list) else ()
        if len(names) > 1:
            _FIELDS[kind] = attrgetter(*names)
        elif names:
            one = attrgetter(names[0])
            _FIELDS[kind] = lambda obj: (one(obj),)
        else:
            _FIELDS[kind] = None
    return _FIELDS[kind]


def same(a: object, b: object) -> bool:
    """Whether `a` and `b` render alike: the same object, or values of the same type that are
    equal field by field with fields of the same types (True == 1 == 1.0, but `fmt` and `:d`
    write them differently). NaN is never equal: such an object is simply rendered again."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(map(same, a, b))
    if kind in (str, int, float, bool):
        return a == b
    get = _fields(kind)
    if get is None:
        return False
    va, vb = get(a), get(b)
    return bool(va == vb) and tuple(map(type, va)) == tuple(map(type, vb))


# -- buckets and sections ------------------------------------------------------------------------


def bucket_count(objects: int, size: int = BUCKET_SIZE) -> int:
    """The power of two that puts at most `size` objects in a bucket (size/2 to size)."""
    count = 1
    while objects > count * size:
        count *= 2
    return count


def _same_values(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether two mappings hold the same keys, each with the same object (by identity)."""
    if len(old) != len(new) or old.keys() != new.keys():
        return False
    return all(map(is_, old.values(), map(new.__getitem__, old)))


def expiry_now(now: float) -> float:
    """The time days to expiry are computed at: `now` floored to a multiple of EXPIRY_STEP."""
    return now - now % EXPIRY_STEP if math.isfinite(now) else now


def _alike(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two buckets' objects render alike: the same keys, each with the same object
    (checked first, without a Python call per object) or one that renders alike (`same`)."""
    if len(old) != len(new) or old.keys() != new.keys():
        return False
    theirs = map(new.__getitem__, old)
    if all(map(is_, old.values(), theirs)):
        return True
    return all(map(same, old.values(), map(new.__getitem__, old)))


def _same_keys(bucket: _Bucket, group: dict[str, Any]) -> bool:
    return bucket.objs.keys() == group.keys()


@dataclass(slots=True)
class _Bucket:
    """Some objects of a section (id -> what it is rendered from, in the order they are
    rendered) and their rendering: per family, the encoded lines and their length in bytes."""

    objs: dict[str, Any] = field(default_factory=dict)
    parts: tuple[bytes, ...] = ()
    sizes: tuple[int, ...] = ()
    kept: int = 0  # objects rendered (not left out)
    tally: int = 0  # what the section's body counts (listed hosts, active errors)
    left_out: frozenset[str] = frozenset()
    stats: RenderStats | None = None  # None: nothing left out or cut
    dirty: bool = True


class Section:
    """The objects of one kind and the families written per object, in buckets by position."""

    def __init__(
        self, kind: str, specs: tuple[MetricSpec, ...], body: Body[Any], encode: Encode, size: int
    ) -> None:
        self.kind = kind
        self.specs = specs
        self._body = body
        self._encode = encode
        self._size = size
        self.buckets = [_Bucket()]
        self._at: dict[str, int] | None = {}  # key -> its bucket's index (None: to be made)
        self._chosen_for = 0  # the object count the buckets were made for
        self._count = 0

    def index(self) -> dict[str, int]:
        """Each key's bucket (by its index in `buckets`)."""
        if self._at is None:
            at: dict[str, int] = {}
            for i, bucket in enumerate(self.buckets):
                at.update(dict.fromkeys(bucket.objs, i))
            self._at = at
        return self._at

    def put(self, key: str, obj: object) -> None:
        """Hold `obj` for `key` (a new key: in the last bucket while it has room, else in a new
        one); its bucket is rendered again unless it renders as before."""
        at = self.index()
        index = at.get(key)
        if index is None:
            if len(self.buckets[-1].objs) >= self._size:
                self.buckets.append(_Bucket())
            index = at[key] = len(self.buckets) - 1
            self._count += 1
        elif same(self.buckets[index].objs[key], obj):
            return
        bucket = self.buckets[index]
        bucket.objs[key] = obj
        bucket.dirty = True

    def drop(self, key: str) -> None:
        index = self.index().pop(key, None)
        if index is not None:
            del self.buckets[index].objs[key]
            self._count -= 1
            self.buckets[index].dirty = True

    def replace_all(self, objs: Mapping[str, Any]) -> None:
        """Hold exactly `objs`, in one pass: each known key in its bucket, new keys placed as
        `put` places them (or all of them in new buckets, in the mapping's order, if the count
        drifted or the buckets got sparse), each bucket compared whole with what it held and
        marked to be rendered again only if it differs."""
        n = len(objs)
        if self._drifted(n):
            self._chunk(objs)
        else:
            self._adopt(self._sliced(objs) or self._placed(objs), n)

    def adopt(self, groups: list[dict[str, Any]], n: int) -> None:
        """Hold exactly the `n` objects of `groups`, one bucket per group (another section's
        layout), each bucket rendered again only if its objects differ."""
        del self.buckets[len(groups) :]
        self._adopt(groups, n)
        self._at, self._chosen_for = None, n

    def _adopt(self, groups: list[dict[str, Any]], n: int) -> None:
        for bucket, group in zip(self.buckets, groups, strict=False):
            if not _alike(bucket.objs, group):
                bucket.objs = group
                bucket.dirty = True
        self.buckets.extend(_Bucket(group) for group in groups[len(self.buckets) :])
        self._count = n

    def _drifted(self, n: int) -> bool:
        """Whether `n` objects are to be bucketed again: their count drifted DRIFT times from
        the one the buckets were made for, or the buckets hold fewer than size / (2 * DRIFT)
        objects on average."""
        chosen, buckets = self._chosen_for, len(self.buckets)
        if not chosen // DRIFT <= n <= chosen * DRIFT and bucket_count(n, self._size) != buckets:
            return True
        return buckets > 1 and n * 2 * DRIFT < buckets * self._size

    def _chunk(self, objs: Mapping[str, Any]) -> None:
        """New buckets: `objs` cut in their mapping's order into bucket_count(n) equal runs."""
        n = len(objs)
        count = bucket_count(n, self._size)
        run = -(-n // count)
        items = iter(objs.items())
        self.buckets = [_Bucket(dict(islice(items, run))) for _ in range(count)]
        self._at, self._chosen_for, self._count = None, n, n

    def _sliced(self, objs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """`objs` cut as the buckets are, if each bucket's keys come together in it, bucket after
        bucket (the same keys in the same order as last time: the common case); else None."""
        items = iter(objs.items())
        groups = [dict(islice(items, len(bucket.objs))) for bucket in self.buckets]
        if next(items, None) is not None or not all(map(_same_keys, self.buckets, groups)):
            return None
        return groups

    def _placed(self, objs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """`objs` in the buckets of their keys; new keys as `put` places them."""
        at = self.index()
        groups: list[dict[str, Any]] = [{} for _ in self.buckets]
        new = []
        for key, obj in objs.items():
            index = at.get(key)
            if index is None:
                new.append(key)
            else:
                groups[index][key] = obj
        for key in at.keys() - objs.keys():
            del at[key]
        for key in new:
            if len(groups[-1]) >= self._size:
                groups.append({})
            groups[-1][key] = objs[key]
            at[key] = len(groups) - 1
        return groups

    def flush(self) -> None:
        """Render every bucket that changed (after re-bucketing, if the count drifted)."""
        if self._drifted(self._count):
            self._chunk({key: obj for bucket in self.buckets for key, obj in bucket.objs.items()})
        for bucket in self.buckets:
            if bucket.dirty:
                self._render(bucket)

    def _render(self, bucket: _Bucket) -> None:
        keys = list(bucket.objs)
        objs = list(bucket.objs.values())
        stats = RenderStats({}, {})
        lines, tally, kept = each(stats, self.kind, objs, len(self.specs), self._body)
        bucket.left_out = frozenset()
        if len(kept) != len(objs):
            rendered = {id(obj) for obj in kept}
            bucket.left_out = frozenset(
                k for k, obj in zip(keys, objs, strict=True) if id(obj) not in rendered
            )
        raw = list(map(utf8, lines))
        bucket.parts = tuple(self._encode(text) if text else b"" for text in raw)
        bucket.sizes = tuple(map(len, raw))
        bucket.kept, bucket.tally = len(kept), tally
        bucket.stats = stats if any(stats.skipped.values()) or any(stats.truncated.values()) else None
        bucket.dirty = False

    def kept(self) -> int:
        return sum(bucket.kept for bucket in self.buckets)

    def tally(self) -> int:
        return sum(bucket.tally for bucket in self.buckets)

    def left_out(self) -> frozenset[str]:
        return frozenset().union(*(bucket.left_out for bucket in self.buckets))


# -- which families each section writes ----------------------------------------------------------

# section -> (object kind, its families, its body given "listed only")
_SECTIONS: dict[str, tuple[str, tuple[MetricSpec, ...], Callable[[bool], Body[Any]]]] = {
    "hosts": (
        "host",
        (
            contract.RBL_HOST_INFO,
            contract.RBL_HOST_LISTED,
            contract.RBL_HOST_LISTINGS,
            contract.RBL_LISTING_INFO,
            contract.RBL_HOST_PAUSED,
            contract.RBL_HOST_LAST_CHECKED_TIMESTAMP_SECONDS,
            contract.RBL_HOST_FIRST_LISTED_TIMESTAMP_SECONDS,
        ),
        host_lines,
    ),
    "monitors": (
        "monitor",
        (
            contract.CERT_MONITOR_INFO,
            contract.CERT_MONITOR_PAUSED,
            contract.CERT_EXPIRY_DAYS,
            contract.CERT_NOT_AFTER_TIMESTAMP_SECONDS,
        ),
        lambda _: monitor_lines,
    ),
    "errors": ("cert_error", (contract.CERT_ACTIVE_ERRORS, contract.CERT_ERROR_INFO), lambda _: error_lines),
    "profiles": (
        "profile",
        (contract.RBL_PROFILE_INFO, contract.RBL_PROFILE_CHECK_INTERVAL_SECONDS),
        lambda _: rbl_profile_lines,
    ),
    "sources": ("source", (contract.RBL_SOURCE_INFO, contract.RBL_SOURCE_PAUSED), lambda _: source_lines),
    "contacts": (
        "contact",
        (contract.CONTACT_INFO, contract.CONTACT_PAUSED, contract.CONTACT_CONFIRMED),
        lambda _: delivery_contact_lines,
    ),
    "groups": (
        "contact_group",
        (
            contract.CONTACT_GROUP_INFO,
            contract.CONTACT_GROUP_DEFAULT,
            contract.CONTACT_GROUP_REACHABLE_CONTACTS,
            contract.CONTACT_GROUP_OBJECTS,
        ),
        lambda _: delivery_group_lines,
    ),
    "cert_profiles": (
        "cert_profile",
        (
            contract.CERT_PROFILE_INFO,
            contract.CERT_PROFILE_EXPIRY_WARNING_DAYS,
            contract.CERT_PROFILE_ALERT_ENABLED,
        ),
        lambda _: cert_profile_lines,
    ),
    "changes": (
        "cert_change",
        (contract.CERT_CHANGES_TOTAL, contract.CERT_LAST_CHANGE_TIMESTAMP_SECONDS),
        lambda _: change_lines,
    ),
    "agents": (
        "agent",
        (contract.AGENT_INFO, contract.AGENT_TIMED_OUT, contract.AGENT_TIMED_OUT_INSTANCES),
        lambda _: agent_lines,
    ),
    "billing": (
        "billing",
        (contract.BILLING_BALANCE_USD, contract.BILLING_BALANCE_THRESHOLD_USD),
        lambda _: billing_lines,
    ),
    "events": (
        "webhook_event",
        (contract.WEBHOOK_EVENTS_TOTAL, contract.WEBHOOK_LAST_EVENT_TIMESTAMP_SECONDS),
        lambda _: event_lines,
    ),
    "hetrix": (
        "hetrixtools_monitor",
        (
            contract.BLACKLIST_MONITOR_INFO,
            contract.BLACKLIST_MONITOR_LISTED,
            contract.BLACKLIST_MONITOR_LISTINGS,
            contract.BLACKLIST_LISTING_INFO,
            contract.BLACKLIST_MONITOR_LAST_UPDATE_TIMESTAMP_SECONDS,
        ),
        hetrix_lines,
    ),
}
# group -> (the object kind its failure is counted under, its sections, its one-line totals)
_GROUPS: dict[str, tuple[str, tuple[str, ...], tuple[MetricSpec, ...]]] = {
    "hosts": ("host", ("hosts",), (contract.RBL_HOSTS, contract.RBL_HOSTS_LISTED)),
    "monitors": (
        "monitor",
        ("monitors", "errors"),
        (contract.CERT_MONITORS_WITHOUT_EXPIRY, contract.CERT_ERRORS),
    ),
    "inventory": ("profile", ("profiles", "sources", "contacts", "groups", "cert_profiles"), ()),
    "webhooks": ("webhook_event", ("changes", "agents", "billing", "events"), ()),
    "hetrix": ("hetrixtools_monitor", ("hetrix",), ()),
}
_WRITTEN = [s.name for _, specs, _ in _SECTIONS.values() for s in specs] + [
    s.name for _, _, totals in _GROUPS.values() for s in totals
]
if sorted(_WRITTEN) != sorted(m.name for m in DATA_METRICS):  # pragma: no cover - a contract edit
    raise ValueError("every data family of the contract must be written by exactly one section or total")
# family -> (the section that writes it, its index among the section's families)
_PLACES = {spec.name: (name, i) for name, (_, specs, _) in _SECTIONS.items() for i, spec in enumerate(specs)}


# -- the rendered exposition ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rendered:
    """One render's data part, in each format: the parts (gzip members, or plain text when
    rendered without compression) written one after the other, and the length of the text."""

    text: tuple[bytes, ...]
    openmetrics: tuple[bytes, ...]
    text_size: int
    openmetrics_size: int
    stats: RenderStats
    compressed: bool

    def parts(self, openmetrics: bool) -> tuple[bytes, ...]:
        return self.openmetrics if openmetrics else self.text

    def size(self, openmetrics: bool) -> int:
        """Bytes of the uncompressed text."""
        return self.openmetrics_size if openmetrics else self.text_size

    def body(self, openmetrics: bool) -> Iterator[bytes]:
        """The uncompressed text, part by part (never whole)."""
        parts = self.parts(openmetrics)
        return _gunzip(parts) if self.compressed else iter(parts)


@dataclass(frozen=True, slots=True)
class Family:
    """A data family as rendered: its help and its sample lines (UTF-8, each ending in \\n),
    in parts to be written one after the other."""

    spec: MetricSpec
    help: str
    parts: tuple[bytes, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def body(self) -> str:
        """The sample lines as text."""
        return b"".join(self.parts).decode("utf-8")


def join(families: Iterable[Family], openmetrics: bool) -> bytes:
    """The families one after the other, each under its HELP and TYPE lines."""
    return b"".join(
        chain.from_iterable(
            # label values are clean already; never raise here
            (header(f.spec, f.help, openmetrics).encode("utf-8", "replace"), *f.parts)
            for f in families
        )
    )


_second = itemgetter(1)
# (monitors, errors, marks, time of the days to expiry, what the group left out) of an update
_MonitorInputs = tuple[Snapshot | None, Snapshot | None, dict[str, MonitorMark], float, RenderStats]


class Renderer:
    """The data part of the exposition, kept between renders: `update` renders again only what
    changed. Not thread-safe: one update at a time (the Rendered it returns is immutable and
    may be read anywhere while the next update runs).

    `per_host`: PER_HOST_ALL, or PER_HOST_LISTED (per-host series only for hosts listed or
    paused, per-monitor HetrixTools series only for monitors listed; totals over all)."""

    def __init__(
        self, *, per_host: str = PER_HOST_ALL, compress: bool = True, bucket_size: int = BUCKET_SIZE
    ) -> None:
        if per_host not in PER_HOST:
            raise ValueError(f"per_host must be one of {', '.join(PER_HOST)}, got {per_host!r}")
        self.per_host = per_host
        self._encode: Encode = gzip_member if compress else _plain
        self._compressed = compress
        self._bucket_size = bucket_size
        self._sections: dict[str, Section] = {}
        # what the monitors and HetrixTools groups were last rendered from (None: render them)
        self._monitor_inputs: _MonitorInputs | None = None
        self._hetrix_objs: dict[str, tuple[str, Hetrix]] | None = None
        self._ids_of: tuple[Snapshot | None, frozenset[str]] = (None, frozenset())
        for group in _GROUPS:
            self._reset(group)
        self._totals: dict[str, str] = {}
        self._encoded: dict[str, tuple[str, bytes, int]] = {}  # total family -> (text, part, size)
        # family -> (help, text header part, its size, OpenMetrics header part, its size)
        self._headers: dict[str, tuple[str, bytes, int, bytes, int]] = {}
        self._host_inputs: tuple[Snapshot | None, Snapshot | None, dict[str, HostMark]] | None = None
        self._freshness = Freshness(0.0, {}, {})  # the last update's
        self._group_table = GroupTable()  # contact groups' reachable contacts and objects

    def _reset(self, group: str) -> None:
        """Empty sections for `group` (its objects are all rendered again)."""
        listed_only = self.per_host == PER_HOST_LISTED
        for name in _GROUPS[group][1]:
            kind, specs, body = _SECTIONS[name]
            self._sections[name] = Section(kind, specs, body(listed_only), self._encode, self._bucket_size)
        if group == "hosts":
            self._host_inputs = None
        elif group == "monitors":
            self._monitor_inputs = None
        elif group == "hetrix":
            self._hetrix_objs = None

    def update(
        self, snapshots: Mapping[str, Snapshot], freshness: Freshness, webhooks: WebhookState | None = None
    ) -> Rendered:
        """Render what changed since the last update, from the snapshots fresh at `now`."""
        with _without_cyclic_gc():
            return self._update(snapshots, freshness, webhooks)

    def _update(
        self, snapshots: Mapping[str, Snapshot], freshness: Freshness, webhooks: WebhookState | None
    ) -> Rendered:
        w = webhooks if webhooks is not None else WebhookState()

        def fresh(collector: str) -> Snapshot | None:
            return freshness.fresh(snapshots.get(collector))

        updates: dict[str, Callable[[RenderStats], None]] = {
            "hosts": lambda _: self._hosts(fresh("rbl_hosts"), fresh("rbl_listings"), w.hosts),
            "monitors": lambda st: self._monitors(
                st, fresh("cert_monitors"), fresh("cert_errors"), w.monitors, freshness.now
            ),
            "inventory": lambda _: self._inventory(fresh),
            "webhooks": lambda _: self._webhooks(w, fresh("cert_monitors")),
            "hetrix": lambda _: self._hetrix(w),
        }
        stats = RenderStats()
        for group, run in updates.items():
            stats.add(self._guarded(group, run))
        for section in self._sections.values():
            for bucket in section.buckets:
                if bucket.stats is not None:
                    stats.add(bucket.stats)
        return self._assemble(freshness, stats)

    def _guarded(self, group: str, run: Callable[[RenderStats], None]) -> RenderStats:
        """Run one group's update; if it fails outside its objects, empty the group and count
        the failure once under its object kind."""
        stats = RenderStats({}, {})
        kind, sections, totals = _GROUPS[group]
        try:
            run(stats)
        except Exception as err:
            stats.skip(kind, err)
            self._reset(group)
            for name in sections:
                self._sections[name].flush()
            for spec in totals:
                self._totals[spec.name] = ""
        return stats

    def _replace(self, name: str, objs: Mapping[str, Any]) -> Section:
        section = self._sections[name]
        section.replace_all(objs)
        section.flush()
        return section

    # -- the groups ------------------------------------------------------------------------

    def _hosts(
        self, hosts: Snapshot | None, listings: Snapshot | None, marks: Mapping[str, HostMark]
    ) -> None:
        """Hosts merged from the inventory, the listings and the webhook marks. When neither
        snapshot was replaced since the last update, only hosts whose mark changed can have."""
        section = self._sections["hosts"]
        last, self._host_inputs = self._host_inputs, None
        if last is not None and last[0] is hosts and last[1] is listings:
            old = last[2]
            for key in [k for k in dict.fromkeys(chain(old, marks)) if old.get(k) is not marks.get(k)]:
                host = _merged(key, hosts, listings, marks)
                if host is None:
                    section.drop(key)
                else:
                    section.put(key, host)
        else:
            section.replace_all(merge_hosts(hosts, listings, marks))
        section.flush()
        self._host_inputs = (hosts, listings, dict(marks))
        self._totals[contract.RBL_HOSTS.name] = hosts_total(section.kept()) if hosts is not None else ""
        either = hosts is not None or listings is not None
        self._totals[contract.RBL_HOSTS_LISTED.name] = hosts_listed_total(section.tally()) if either else ""

    def _monitors(
        self,
        stats: RenderStats,
        snap: Snapshot | None,
        errors: Snapshot | None,
        marks: Mapping[str, MonitorMark],
        now: float,
    ) -> None:
        """The monitors and their errors, unless they are rendered from the same objects as at
        the last update, in the same EXPIRY_STEP of time: then they are kept as they are."""
        at = expiry_now(now)
        last, self._monitor_inputs = self._monitor_inputs, None
        if (
            last is not None
            and last[0] is snap
            and last[1] is errors
            and last[3] == at
            and _same_values(last[2], marks)
        ):
            stats.add(last[4])
            self._monitor_inputs = last
            return
        own = RenderStats({}, {})
        try:
            self._render_monitors(own, snap, errors, marks, at)
        finally:
            stats.add(own)
        self._monitor_inputs = (snap, errors, dict(marks), at, own)

    def _render_monitors(
        self,
        stats: RenderStats,
        snap: Snapshot | None,
        errors: Snapshot | None,
        marks: Mapping[str, MonitorMark],
        at: float,
    ) -> None:
        """Monitors with their days to expiry at `at` and how many active ones have none, then
        the active errors of every monitor rendered or named by an error; cert.error.* webhooks
        newer than the poll win. Without error data, no claim of 0 errors."""
        polled_at = snap.fetched_at if snap is not None else 0.0
        items: Mapping[str, Any] = snap.items if snap is not None else {}
        objs = _expiring(items, marks, at, polled_at)
        left_out = self._replace("monitors", objs).left_out()
        kept = [obj for k, obj in objs.items() if k not in left_out] if left_out else objs.values()
        unread = sum(1 for m in [m for m, days in kept if days is None] if not m.paused)
        self._totals[contract.CERT_MONITORS_WITHOUT_EXPIRY.name] = (
            without_expiry_total(unread) if snap is not None else ""
        )
        if errors is None:
            self._replace("errors", {})
            self._totals[contract.CERT_ERRORS.name] = ""
            return
        by_monitor = errors_by_monitor(errors, stats)
        ids = dict.fromkeys(m.id for m, _ in kept)  # dicts, not sets: in the monitors' order
        known = ids | dict.fromkeys(by_monitor)
        for monitor_id, mark in marks.items():
            if mark.errors is not None and monitor_id in known and mark.errors_at >= errors.fetched_at:
                by_monitor[monitor_id] = list(mark.errors)
        section = self._sections["errors"]
        if len(ids) == len(objs) and objs.keys() == ids.keys():
            # every monitor is rendered, under its id: the errors are bucketed as the monitors are
            section.adopt(_error_groups(self._sections["monitors"], by_monitor), len(known))
        else:  # (monitor id, its errors) of each known monitor: most have none, in one C pass
            pairs = dict(zip(known, zip(known, repeat(()), strict=False), strict=True))
            pairs.update((k, (k, tuple(errs))) for k, errs in by_monitor.items())
            section.replace_all(pairs)
        section.flush()
        self._totals[contract.CERT_ERRORS.name] = errors_total(section.tally())

    def _inventory(self, fresh: Callable[[str], Snapshot | None]) -> None:
        for name, collector in (
            ("profiles", "rbl_profiles"),
            ("cert_profiles", "cert_profiles"),
            ("sources", "rbl_sources"),
            ("contacts", "contacts"),
        ):
            snap = fresh(collector)
            self._replace(name, snap.items if snap is not None else {})
        rows = self._group_table.rows(
            fresh("contact_groups"), fresh("contacts"), fresh("rbl_hosts"), fresh("cert_monitors")
        )
        self._replace("groups", rows)

    def _webhooks(self, w: WebhookState, monitors: Snapshot | None) -> None:
        """State only webhooks tell: certificate changes (of known monitors), agents, the
        balance and the events seen."""
        known = self._monitor_ids(monitors) if w.cert_changes else frozenset()
        self._replace("changes", {k: (k, v) for k, v in w.cert_changes.items() if k in known})
        self._replace("agents", {k: (k, a) for k, a in w.agents.items()})
        self._replace("billing", {"": (w.balance, w.balance_threshold)})
        events = dict.fromkeys(chain(w.events, w.last_event))
        self._replace("events", {e: (e, w.events.get(e), w.last_event.get(e)) for e in events})

    def _monitor_ids(self, monitors: Snapshot | None) -> frozenset[str]:
        """The ids of the monitors of a snapshot, kept for as long as the snapshot is."""
        if self._ids_of[0] is not monitors:
            ids = {m.id for m in monitors.items.values() if type(m.id) is str} if monitors is not None else ()
            self._ids_of = (monitors, frozenset(ids))
        return self._ids_of[1]

    def _hetrix(self, w: WebhookState) -> None:
        """HetrixTools monitors: nothing is looked at again when every record is the one of the
        last update (records are replaced when they change, never changed in place: compared
        in order, by identity); else each unchanged record keeps the object it was rendered
        from, so that only the buckets of the changed ones are compared field by field and
        rendered again."""
        held, self._hetrix_objs = self._hetrix_objs, None
        records = w.hetrix
        if (
            held is not None
            and list(held) == list(records)
            and all(map(is_, map(_second, held.values()), records.values()))
        ):
            self._hetrix_objs = held
            return
        held = held or {}
        objs = {}
        for key, record in records.items():
            kept = held.get(key)
            objs[key] = kept if kept is not None and kept[1] is record else (key, record)
        self._replace("hetrix", objs)
        self._hetrix_objs = objs

    # -- assembling the parts --------------------------------------------------------------

    def _header(self, spec: MetricSpec, freshness: Freshness) -> tuple[str, bytes, int, bytes, int]:
        try:
            help_ = freshness.help(spec)
        except Exception:
            help_ = spec.help
        cached = self._headers.get(spec.name)
        if cached is None or cached[0] != help_:
            text, om = (header(spec, help_, om).encode("utf-8", "replace") for om in (False, True))
            cached = (help_, self._encode(text), len(text), self._encode(om), len(om))
            self._headers[spec.name] = cached
        return cached

    def _data(self, spec: MetricSpec) -> Iterator[tuple[bytes, int]]:
        """A family's sample lines: (part, bytes of text) for each part that has any."""
        if spec.name in self._totals:
            text = self._totals[spec.name]
            cached = self._encoded.get(spec.name)
            if cached is None or cached[0] != text:
                raw = text.encode("utf-8", "replace")
                cached = (text, self._encode(raw) if raw else b"", len(raw))
                self._encoded[spec.name] = cached
            if cached[2]:
                yield cached[1], cached[2]
            return
        section, index = self._where(spec)
        for bucket in section.buckets:
            if bucket.sizes[index]:
                yield bucket.parts[index], bucket.sizes[index]

    def _where(self, spec: MetricSpec) -> tuple[Section, int]:
        name, index = _PLACES[spec.name]
        return self._sections[name], index

    def _assemble(self, freshness: Freshness, stats: RenderStats) -> Rendered:
        text: list[bytes] = []
        om: list[bytes] = []
        text_size = om_size = 0
        for spec in DATA_METRICS:
            _, text_head, text_n, om_head, om_n = self._header(spec, freshness)
            text.append(text_head)
            om.append(om_head)
            text_size, om_size = text_size + text_n, om_size + om_n
            for part, n in self._data(spec):
                text.append(part)
                om.append(part)
                text_size, om_size = text_size + n, om_size + n
        self._freshness = freshness
        return Rendered(tuple(text), tuple(om), text_size, om_size, stats, self._compressed)

    def families(self) -> list[Family]:
        """The last update's data families, in contract order, as text (for tests and tools)."""
        out = []
        for spec in DATA_METRICS:
            parts = [part for part, _ in self._data(spec)]
            text = tuple(_gunzip(parts)) if self._compressed else tuple(parts)
            out.append(Family(spec, self._header(spec, self._freshness)[0], text))
        return out


def _error_groups(monitors: Section, by_monitor: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """(monitor id, its errors) of each monitor of `monitors` (a section whose keys are the
    monitors' ids) and of each monitor of `by_monitor`, bucketed as the monitors are (an error
    of a monitor not there in the last bucket): most have no error, a C pass per bucket; the
    others are put in their bucket one by one."""
    none: tuple[str, ...] = ()
    groups: list[dict[str, Any]] = [
        dict(zip(b.objs, zip(b.objs, repeat(none)), strict=True)) for b in monitors.buckets
    ]
    at = monitors.index() if by_monitor else {}
    last = len(groups) - 1
    for key, errs in by_monitor.items():
        groups[at.get(key, last)][key] = (key, tuple(errs))
    return groups


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """No cyclic garbage collection for the duration (an update allocates tens of thousands of
    lists and tuples, none of them in a cycle: the collector would walk them for nothing, about
    3 % of a full render), enabled again after it only if it was enabled before. The switch is
    the process's: another thread's allocations meanwhile are not collected either (for a few
    tens of milliseconds), and two renders at once in two threads leave it as it was."""
    enabled = gc.isenabled()
    if enabled:
        gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _merged(
    key: str, hosts: Snapshot | None, listings: Snapshot | None, marks: Mapping[str, HostMark]
) -> Any:
    try:
        return merge_host(key, hosts, listings, marks)
    except Exception as err:
        return Unrenderable(err)


def _with_expiry(m: Any, marks: Mapping[str, MonitorMark], now: float, polled_at: float) -> Any:
    """(monitor, its days to expiry at `now`): what a monitor's lines are rendered from."""
    try:
        return (m, expiry_days(m, marks.get(m.id), now, polled_at))
    except Exception as err:
        return Unrenderable(err)


def _expiring(
    items: Mapping[str, Any], marks: Mapping[str, MonitorMark], now: float, polled_at: float
) -> dict[str, Any]:
    """`_with_expiry` of every monitor: in one pass for those no webhook mark names (all of them,
    mostly), one by one for the others; one by one for all if a monitor is broken."""
    try:
        objs: dict[str, Any] = unsaid_expiry_days(items, now)
        marked = [k for k, m in items.items() if m.id in marks] if marks else []
    except Exception:
        return {k: _with_expiry(m, marks, now, polled_at) for k, m in items.items()}
    for k in marked:
        objs[k] = _with_expiry(items[k], marks, now, polled_at)
    return objs


def render(
    snapshots: Mapping[str, Snapshot],
    freshness: Freshness,
    webhooks: WebhookState | None = None,
    stats: RenderStats | None = None,
    *,
    per_host: str = PER_HOST_ALL,
) -> list[Family]:
    """Every data family, in contract order, from the snapshots that are fresh at `now`: a full
    render from nothing, as text. Objects left out and label values cut are added to `stats`."""
    exposition = Renderer(per_host=per_host, compress=False)
    rendered = exposition.update(snapshots, freshness, webhooks)
    if stats is not None:
        stats.add(rendered.stats)
    return exposition.families()
