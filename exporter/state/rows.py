"""Pure, no I/O: how snapshots are laid out in the state file's rows, and which rows a change
needs written. exporter.state.sqlite runs the statements.

Each object is one row (collector, id, page, body): `body` is the record's fields as a JSON list,
`page` indexes the snapshot's list of page fetch times (`pages`, sorted, stored with the
snapshot's other metadata), so the fetch times of 100,000 hosts cost a thousand numbers, and a
new poll of an unchanged host on the same page rewrites nothing. A record read back is checked
field by field against its type (finite numbers, text, flags); a row that fails costs only itself.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from exporter.api.records import CertError, Host, Item, Monitor
from exporter.state.snapshot import Snapshot

RECORDS: Mapping[str, type] = {
    "rbl_listings": Host,
    "rbl_hosts": Host,
    "cert_monitors": Monitor,
    "cert_errors": CertError,
}
ObjectRow = tuple[str, str | bytes, int | None, str]  # collector, id (row_id), page, body
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


@dataclass(frozen=True, slots=True)
class Written:
    """What the file holds for one collector: the snapshot last written, and its page times
    (`index` maps each to its position), against which the next write is compared."""

    snapshot: Snapshot
    pages: tuple[float, ...]
    index: Mapping[float, int]

    @classmethod
    def of(cls, snapshot: Snapshot, pages: tuple[float, ...]) -> Written:
        return cls(snapshot, pages, {t: i for i, t in enumerate(pages)})

    def page(self, ident: str) -> int | None:
        at = self.snapshot.item_times.get(ident)
        return None if at is None else self.index.get(at)


def row_id(ident: str) -> str | bytes:
    """An id (of an object or a webhook mark) as its row stores it: the text itself, or, for
    text UTF-8 cannot encode (a lone surrogate, which a JSON body may carry as `"\\ud800"`),
    its bytes with the surrogates passed through, a BLOB SQLite stores and `id_of` reads back
    as the same text. Such an id is an API's or a sender's odd value, not ours to drop."""
    if ident.isascii():
        return ident
    try:
        ident.encode("utf-8")
    except UnicodeEncodeError:
        return ident.encode("utf-8", "surrogatepass")
    return ident


def id_of(stored: object) -> object:
    """The id a row stores (`row_id`), as text again; a BLOB that is not one stays as it is
    (and does not match its body's id)."""
    if isinstance(stored, bytes):
        try:
            return stored.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return stored
    return stored


def encode_record(record: Any) -> str:
    return _ENCODE([getattr(record, name) for name in record.__slots__])


def page_times(snapshot: Snapshot) -> tuple[float, ...]:
    return tuple(sorted(set(snapshot.item_times.values())))


def _extended(old: Written, snapshot: Snapshot, changed: Collection[str]) -> Written | None:
    """`old`'s pages with the fetch times of `changed` added at the end, or None when one falls
    before the last (the indices would shift: the whole snapshot must be compared)."""
    pages = old.pages
    for ident in changed:
        at = snapshot.item_times.get(ident)
        if at is None or at in old.index or at in pages:
            continue
        if pages and at < pages[-1]:
            return None
        pages = (*pages, at)
    if pages is old.pages:
        return Written(snapshot, pages, old.index)
    return Written.of(snapshot, pages)


def plan_write(
    old: Written | None, snapshot: Snapshot, changed: Collection[str] | None
) -> tuple[Written, Iterator[ObjectRow], Iterator[tuple[str, str | bytes]], bool]:
    """What writing `snapshot` over `old` takes: the new Written, the object rows to write, the
    (collector, id) rows to delete, and whether every row of the collector must go first (no
    `old`: the file's rows are not known). Rows are generated one at a time, never listed."""
    new: Written | None = None
    if old is not None and changed is not None:
        new = _extended(old, snapshot, changed)
    if new is None:
        new, changed = Written.of(snapshot, page_times(snapshot)), None
    ids: Collection[str] = snapshot.items if changed is None else changed
    rows = _changed_rows(old, new, ids)
    gone: Iterator[tuple[str, str | bytes]] = iter(())
    if old is not None and changed is None:
        items, name = snapshot.items, snapshot.collector
        gone = ((name, row_id(k)) for k in old.snapshot.items if k not in items)
    return new, rows, gone, old is None


def _changed_rows(old: Written | None, new: Written, ids: Collection[str]) -> Iterator[ObjectRow]:
    items, name = new.snapshot.items, new.snapshot.collector
    before = old.snapshot.items if old is not None else {}
    for ident in ids:
        record = items.get(ident)
        if record is None:
            continue
        page = new.page(ident)
        was = before.get(ident)
        if (
            was is not None
            and (was is record or was == record)
            and old is not None
            and old.page(ident) == page
        ):
            continue
        yield name, row_id(ident), page, encode_record(record)


# ---- reading back -----------------------------------------------------------------------------


def finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _checker(kind: Any) -> Callable[[object], bool]:
    """Whether a JSON value fits a record field's type (str, bool, int, float, X | None,
    tuple[X, ...]); numbers must be finite. Built once per field, not per row."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        options = [_checker(k) for k in typing.get_args(kind)]
        return lambda v: any(check(v) for check in options)
    if typing.get_origin(kind) is tuple:
        inner = _checker(typing.get_args(kind)[0])
        return lambda v: isinstance(v, list) and all(inner(x) for x in v)
    checks: dict[Any, Callable[[object], bool]] = {
        type(None): lambda v: v is None,
        str: lambda v: isinstance(v, str),
        bool: lambda v: isinstance(v, bool),
        float: finite,
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    }
    return checks.get(kind, lambda v: True)


@functools.cache
def _field_checks(cls: type) -> tuple[tuple[str, Callable[[object], bool]], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _checker(hints[f.name])) for f in fields(cls))


def no_constant(name: str) -> None:
    """json.loads reads NaN and Infinity as absent: nothing the exporter stores may be one."""


def _required(cls: type) -> int:
    """How many leading fields a stored record must have: a row written before later fields (with
    defaults) were added is short by those, and reads back with their defaults."""
    return sum(
        1
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )


def record(cls: type, row: object) -> Any:
    """A record from its fields as a JSON list, or ValueError naming what is wrong. A row of an
    older version, without the later fields that have defaults, reads back with the defaults."""
    checks = _field_checks(cls)
    if not isinstance(row, list) or not _required(cls) <= len(row) <= len(checks):
        raise ValueError(f"an item is not a list of {len(checks)} fields")
    for (name, check), value in zip(checks, row, strict=False):
        if not check(value):
            raise ValueError(f"an item's {name} has the wrong type")
    return cls(*(tuple(v) if isinstance(v, list) else v for v in row))


def json_value(body: object) -> Any:
    """Stored JSON text read back, or ValueError."""
    if not isinstance(body, str | bytes):
        raise ValueError("its body is not text")
    try:
        return json.loads(body, parse_constant=no_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError alike
        raise ValueError("its body is not valid JSON") from err


def decode_object(collector: str, ident: object, page: object, body: object, pages: int) -> Any:
    """One stored object of `collector`, or ValueError naming what is wrong with its row."""
    found = record(RECORDS.get(collector, Item), json_value(body))
    if found.id != id_of(ident):
        raise ValueError("its id is not the id of its row")
    if page is not None and not (type(page) is int and 0 <= page < pages):
        raise ValueError("its page is not one of the snapshot's")
    return found


def check_times(fetched_at: object, confirmed_at: object, total: object) -> tuple[float, float]:
    if not (finite(fetched_at) and finite(confirmed_at)):
        raise ValueError("its times are not numbers")
    if total is not None and not (type(total) is int and total >= 0):
        raise ValueError("its total is not a count")
    return float(fetched_at), float(confirmed_at)  # type: ignore[arg-type]


def decode_pages(text: object) -> tuple[float, ...]:
    pages = json_value(text)
    if not isinstance(pages, list) or not all(finite(t) for t in pages):
        raise ValueError("its page times are not numbers")
    return tuple(float(t) for t in pages)


def decode_legacy(
    collector: str, fetched_at: object, confirmed_at: object, total: object, body: object
) -> tuple[Snapshot, int]:
    """A snapshot as schema 1 and 2 stored it (one JSON body) and how many of its items did not
    read (each costs only itself), or ValueError naming what is wrong with the snapshot as a
    whole; read only to move it into rows."""
    fetched, confirmed = check_times(fetched_at, confirmed_at, total)
    data = json_value(body)
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValueError("its body has no list of items")
    times = data.get("times", {})
    if not isinstance(times, dict) or not all(finite(t) for t in times.values()):
        raise ValueError("its item times are not numbers")
    cls = RECORDS.get(collector, Item)
    items, bad = {}, 0
    for row in data["items"]:
        try:
            found = record(cls, row)
        except ValueError:
            bad += 1
            continue
        items[found.id] = found
    return Snapshot(collector, items, fetched, confirmed, total, times), bad  # type: ignore[arg-type]
