"""Pure, no I/O: the records of what the exporter knows. A collector's last good data
(Snapshot), its last poll (Health), the Journal protocol that the state file implements, and
Patched, the read-only mapping that lets one object of a large snapshot change without copying
the rest."""

from __future__ import annotations

import math
from collections.abc import Collection, ItemsView, Iterator, Mapping, ValuesView
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

V = TypeVar("V")
MIN_PATCH = 64  # a patch may hold this many changed keys before it is folded into a new base


class Patched(Mapping[str, V]):
    """A read-only mapping: `base` with the (few) keys of `patch` laid over it. Neither is ever
    changed after construction, so a render may read one in a worker thread while the store
    builds the next. `with_item` costs O(patch), not O(base); once the patch outgrows
    max(MIN_PATCH, sqrt(len(base))) it is folded into a plain dict (one copy, amortised)."""

    __slots__ = ("_len", "base", "patch")

    def __init__(self, base: Mapping[str, V], patch: Mapping[str, V]) -> None:
        self.base = base
        self.patch = patch
        self._len = len(base) + sum(1 for k in patch if k not in base)

    @staticmethod
    def with_item(mapping: Mapping[str, V], key: str, value: V) -> Mapping[str, V]:
        """`mapping` with `key` set to `value`; `mapping` itself is left as it was."""
        if isinstance(mapping, Patched):
            base, patch = mapping.base, {**mapping.patch, key: value}
        else:
            base, patch = mapping, {key: value}
        if len(patch) > max(MIN_PATCH, math.isqrt(len(base))):
            return {**base, **patch}
        return Patched(base, patch)

    def __getitem__(self, key: str) -> V:
        patch = self.patch
        if key in patch:
            return patch[key]
        return self.base[key]

    def __contains__(self, key: object) -> bool:
        return key in self.patch or key in self.base

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        yield from self.base
        base = self.base
        yield from (k for k in self.patch if k not in base)

    def items(self) -> ItemsView[str, V]:
        return _PatchedItems(self)

    def values(self) -> ValuesView[V]:
        return _PatchedValues(self)


class _PatchedItems(ItemsView[str, V]):
    _mapping: Patched[V]

    def __iter__(self) -> Iterator[tuple[str, V]]:
        m = self._mapping
        patch, base = m.patch, m.base
        for key, value in base.items():
            yield key, patch.get(key, value)
        yield from ((k, v) for k, v in patch.items() if k not in base)


class _PatchedValues(ValuesView[V]):
    _mapping: Patched[V]

    def __iter__(self) -> Iterator[V]:
        return (value for _, value in _PatchedItems(self._mapping))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One collector's last good data.

    `fetched_at` is when the pass that produced it started (its oldest page); `confirmed_at`
    moves when a cheap count probe shows nothing changed; `item_times` gives, for paged
    inventory, when each object's page was fetched (hosts vs listings merge). Objects whose page
    came at the same moment share one float. Neither mapping is ever changed: a new snapshot is
    made instead, and records that did not change keep their identity from one to the next.
    """

    collector: str
    items: Mapping[str, Any]
    fetched_at: float
    confirmed_at: float
    total: int | None = None
    item_times: Mapping[str, float] = field(default_factory=dict)

    def with_object(self, ident: str, record: Any, at: float) -> Snapshot:
        """This snapshot with one object replaced (or added), fetched at `at`: the rest is
        shared, not copied (see Patched)."""
        return Snapshot(
            self.collector,
            Patched.with_item(self.items, ident, record),
            self.fetched_at,
            self.confirmed_at,
            self.total,
            Patched.with_item(self.item_times, ident, at),
        )


@dataclass(frozen=True, slots=True)
class Health:
    """One collector's last poll, for the self-metrics and the landing page."""

    success: bool | None = None  # None: not polled yet
    last_success: float | None = None
    duration: float = 0.0  # seconds the last poll took
    error: str | None = None  # bounded reason of the last failure, None after a success


class Journal(Protocol):
    """Where snapshot changes are written for a warm restart (exporter.state.sqlite)."""

    def replaced(self, snapshot: Snapshot, changed: Collection[str] | None = None) -> None:
        """`snapshot` replaces the collector's previous one; `changed`, when given, holds every
        id that may differ from it (a targeted refresh), so only those need writing."""

    def confirmed(self, collector: str, at: float) -> None: ...
    def dropped(self, collector: str) -> None: ...
