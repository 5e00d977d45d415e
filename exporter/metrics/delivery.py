"""Pure: will the vendor's own alerts reach anyone? The alert-delivery series and what they are
computed from. No I/O.

Generator Labs sends its alerts to the contacts of the contact groups a host or certificate
monitor names (API reference, "Create Host": `contact_group`); a contact that never confirmed
its address (status `pending`) or is paused receives nothing. From the inventory snapshots:

- `group_rows`: per contact group, its record, its reachable contacts (confirmed and not paused;
  members from each contact's `contact_group` list, joined with the group's own `contacts` list
  when it gives one) and the hosts and monitors that name it. A group none of whose possible
  members is known reachable, but one of which has an unknown confirmation (the API did not say,
  or the contact is not in the contacts snapshot), has no reachable count: the alert on it must
  not fire on a guess. A group without contacts data has none either, nor one that no contact
  names and that does not list its own contacts (the API did not say who is in it: an empty
  group and an unknown one must not look alike); one without host and monitor data has no
  object count.
- `GroupTable` keeps the rows between renders: the same inputs (by identity) give the same rows
  (the same objects, so the renderer compares nothing), and a host or monitor snapshot is counted
  once, whatever else changed (100,000 hosts cost one pass per snapshot, over their distinct
  `contact_group` strings), and not at all while there is no groups snapshot to count for.

The line bodies have the signature of those in exporter.metrics.lines (`x_lines(items, out,
esc) -> int`, one list of lines per family in the order of their section's families):
rbl_profile_lines (RBL_PROFILE_INFO, RBL_PROFILE_CHECK_INTERVAL_SECONDS), contact_lines
(CONTACT_INFO, CONTACT_PAUSED, CONTACT_CONFIRMED), group_lines (CONTACT_GROUP_INFO,
CONTACT_GROUP_DEFAULT, CONTACT_GROUP_REACHABLE_CONTACTS, CONTACT_GROUP_OBJECTS) and
cert_profile_lines (CERT_PROFILE_INFO, CERT_PROFILE_EXPIRY_WARNING_DAYS,
CERT_PROFILE_ALERT_ENABLED). No contact address is read or written here: records never hold one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from exporter.api.records import ALERT_FLAGS, Item
from exporter.metrics import contract
from exporter.metrics.lines import CLOSE, Esc, Lines, fmt, one_label
from exporter.metrics.lines import contact_lines as contact_info_lines
from exporter.metrics.lines import group_lines as group_info_lines
from exporter.metrics.lines import profile_lines as profile_info_lines
from exporter.state.snapshot import Snapshot

(_PROFILE_ID,) = contract.RBL_PROFILE_CHECK_INTERVAL_SECONDS.labels
(_CONTACT_ID,) = contract.CONTACT_CONFIRMED.labels
(_GROUP_ID,) = contract.CONTACT_GROUP_DEFAULT.labels
_, _NAME = contract.CERT_PROFILE_INFO.labels
_INTERVAL = one_label(contract.RBL_PROFILE_CHECK_INTERVAL_SECONDS)
_CONFIRMED = one_label(contract.CONTACT_CONFIRMED)
_DEFAULT = one_label(contract.CONTACT_GROUP_DEFAULT)
_REACHABLE = one_label(contract.CONTACT_GROUP_REACHABLE_CONTACTS)
_OBJECTS = one_label(contract.CONTACT_GROUP_OBJECTS)
_CERT_PROFILE_INFO = contract.CERT_PROFILE_INFO.pieces
_WARNING_DAYS = one_label(contract.CERT_PROFILE_EXPIRY_WARNING_DAYS)
_ALERT_ENABLED = contract.CERT_PROFILE_ALERT_ENABLED.pieces


# -- what the group series are computed from -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupRow:
    """A contact group as its series are rendered from it; None: not known (no series)."""

    group: Item
    reachable: int | None
    objects: int | None


def _ids(label: object) -> list[str]:
    """The ids of a `,a,b,` label set (records.label_set); nothing for anything else."""
    return [part for part in label.split(",") if part] if type(label) is str else []


_contact_group = attrgetter("contact_group")


def object_counts(snapshots: Iterable[Snapshot]) -> Counter[str]:
    """How many objects (hosts, monitors) of `snapshots` name each contact group: counted over
    the distinct `contact_group` strings (a large account repeats a handful), then split."""
    by_label: Counter[object] = Counter()
    for snap in snapshots:
        try:  # in one C pass; a record without the field (a broken one) is rare
            counted = Counter(map(_contact_group, snap.items.values()))
        except AttributeError:  # counted again from nothing, the broken record as naming none
            counted = Counter(getattr(obj, "contact_group", None) for obj in snap.items.values())
        by_label.update(counted)
    counts: Counter[str] = Counter()
    for label, n in by_label.items():
        for group in dict.fromkeys(_ids(label)):
            counts[group] += n
    return counts


def _members(groups: Mapping[str, Any], contacts: Mapping[str, Any]) -> dict[str, set[str]]:
    """Contact ids per group id: each contact's own list of groups, and each group's `contacts`."""
    members: dict[str, set[str]] = {key: set() for key in groups}
    for key, c in contacts.items():
        for group in _ids(getattr(c, "contact_group", None)):
            if group in members:
                members[group].add(key)
    for key, g in groups.items():
        listed = getattr(g, "members", ())
        if isinstance(listed, tuple):
            members[key].update(m for m in listed if type(m) is str)
    return members


def reachable(members: Iterable[str], contacts: Mapping[str, Any]) -> int | None:
    """Members that are confirmed and not paused; None when there is none, but a member not
    paused whose confirmation is unknown (not said, or not among `contacts`)."""
    known = unknown = 0
    for key in members:
        c = contacts.get(key)
        paused = getattr(c, "paused", False) is True
        confirmed = getattr(c, "confirmed", None) if c is not None else None
        if paused:
            continue
        if confirmed is True:
            known += 1
        elif confirmed is None:
            unknown += 1
    return None if known == 0 and unknown else known


def group_rows(
    groups: Snapshot | None,
    contacts: Snapshot | None,
    objects: Mapping[str, int] | None,
) -> dict[str, GroupRow]:
    """Per group id (the keys of the groups snapshot), what its series are rendered from.
    `objects`: object_counts of the fresh host and monitor snapshots, None if neither is."""
    if groups is None:
        return {}
    people: Mapping[str, Any] = contacts.items if contacts is not None else {}
    members = _members(groups.items, people)
    rows = {}
    for key, g in groups.items.items():
        count = None if contacts is None else reachable(members[key], people)
        if not members[key] and getattr(g, "members", None) is None:
            count = None  # no contact names the group and it does not list its own: unknown
        used = None if objects is None else objects.get(key, 0)
        rows[key] = GroupRow(g, count, used)
    return rows


class GroupTable:
    """group_rows kept between renders. `rows` returns the very dict of the last call when its
    four inputs are the same objects; the object counts of a host or monitor snapshot are kept
    for as long as that snapshot is. Not thread-safe (one render at a time)."""

    def __init__(self) -> None:
        self._inputs: tuple[Any, ...] = ()
        self._rows: dict[str, GroupRow] = {}
        self._counted: tuple[tuple[Snapshot, ...], Counter[str] | None] = ((), None)

    def rows(
        self,
        groups: Snapshot | None,
        contacts: Snapshot | None,
        hosts: Snapshot | None,
        monitors: Snapshot | None,
    ) -> dict[str, GroupRow]:
        inputs = (groups, contacts, hosts, monitors)
        if len(self._inputs) == len(inputs) and all(map(_is, self._inputs, inputs)):
            return self._rows
        fresh = tuple(s for s in (hosts, monitors) if s is not None)
        stale = len(fresh) != len(self._counted[0]) or not all(map(_is, fresh, self._counted[0]))
        if stale and groups is not None:  # without groups, no row: nothing to count for
            self._counted = (fresh, object_counts(fresh) if fresh else None)
        self._rows = group_rows(groups, contacts, self._counted[1])
        self._inputs = inputs
        return self._rows


def _is(a: object, b: object) -> bool:
    return a is b


# -- the line bodies ---------------------------------------------------------------------------


def rbl_profile_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
    """RBL profiles: info, and the check interval where the API gives a known frequency."""
    info, interval = out
    profile_info_lines(items, [info], esc)
    for p in items:
        if p.interval is not None:
            interval.append(f"{_INTERVAL}{esc(p.id, _PROFILE_ID)}{CLOSE}{fmt(p.interval)}\n")
    return 0


def contact_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
    """Contacts: info and paused (as exporter.metrics.lines writes them), and confirmed where
    the API says; the tally is the number of contacts known to be unconfirmed."""
    info, paused, confirmed = out
    contact_info_lines(items, [info, paused], esc)
    pending = 0
    for c in items:
        if c.confirmed is not None:
            confirmed.append(f"{_CONFIRMED}{esc(c.id, _CONTACT_ID)}{CLOSE}{1 if c.confirmed else 0}\n")
            pending += c.confirmed is False
    return pending


def group_lines(rows: Sequence[GroupRow], out: Lines, esc: Esc) -> int:
    """Contact groups: info, default where the API says, reachable contacts and objects where
    known; the tally is the number of groups known to reach nobody."""
    info, default, reach, objects = out
    group_info_lines([r.group for r in rows], [info], esc)
    nobody = 0
    for r in rows:
        sel = esc(r.group.id, _GROUP_ID) + CLOSE
        if r.group.default is not None:
            default.append(f"{_DEFAULT}{sel}{1 if r.group.default else 0}\n")
        if r.reachable is not None:
            reach.append(f"{_REACHABLE}{sel}{r.reachable:d}\n")
            nobody += r.reachable == 0
        if r.objects is not None:
            objects.append(f"{_OBJECTS}{sel}{r.objects:d}\n")
    return nobody


def cert_profile_lines(items: Sequence[Item], out: Lines, esc: Esc) -> int:
    """Certificate profiles: info, the earliest warning in days where thresholds are given, and
    one line per alert switch the API states (the `alert` label from records.ALERT_FLAGS only)."""
    info, warning, alerts = out
    info_id, info_name, close = _CERT_PROFILE_INFO
    alert_id, alert_name, _ = _ALERT_ENABLED
    for p in items:
        pid = esc(p.id, _PROFILE_ID)
        info.append(f"{info_id}{pid}{info_name}{esc(p.name, _NAME)}{close}1\n")
        if p.warning_days is not None:
            warning.append(f"{_WARNING_DAYS}{pid}{close}{fmt(p.warning_days)}\n")
        on, off = set(p.alerts_on), set(p.alerts_off)
        for flag in ALERT_FLAGS:
            if flag in on or flag in off:
                alerts.append(f"{alert_id}{pid}{alert_name}{flag}{close}{1 if flag in on else 0}\n")
    return 0
