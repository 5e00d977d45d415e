"""Pure: what the exporter knows. Per-collector snapshots, each replaced atomically (a whole
poll) or one object at a time (a targeted refresh, which copies neither the snapshot nor its
file rows), plus each collector's health. A version number moves on every change so renderers
know when to re-render. No I/O of its own: changes go to the Journal it is given (the state
file, in the app)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from exporter.state.overlay import WebhookState
from exporter.state.snapshot import Health, Journal, Snapshot


class StateStore:
    """Built complete: the snapshots and webhook state it starts from (a warm start: neither
    written back to the journal nor announced), where changes are written (`journal`) and whom
    to tell of one (`on_change`, e.g. wake the renderer)."""

    def __init__(
        self,
        snapshots: Iterable[Snapshot] = (),
        webhooks: WebhookState | None = None,
        *,
        journal: Journal | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.version = 0
        self.webhooks = webhooks if webhooks is not None else WebhookState()
        self.on_change = on_change
        self.journal = journal
        self._snapshots: dict[str, Snapshot] = {s.collector: s for s in snapshots}
        self._health: dict[str, Health] = {}

    def snapshot(self, collector: str) -> Snapshot | None:
        return self._snapshots.get(collector)

    def snapshots(self) -> Mapping[str, Snapshot]:
        return MappingProxyType(self._snapshots)

    def health(self, collector: str) -> Health:
        return self._health.get(collector, Health())

    def replace(self, snapshot: Snapshot) -> None:
        self._snapshots[snapshot.collector] = snapshot
        self.webhooks.reconcile(snapshot)
        if self.journal is not None:
            self.journal.replaced(snapshot)
        self._changed()

    def replace_object(self, collector: str, ident: str, record: Any, at: float) -> bool:
        """One object of `collector`'s snapshot replaced (or added), fetched at `at`: a new
        snapshot sharing the rest with the old one, and one row for the journal. An equal record
        keeps the old one's identity. False (nothing done) when the collector has no snapshot."""
        snap = self._snapshots.get(collector)
        if snap is None:
            return False
        old = snap.items.get(ident)
        if old is not None and old == record:
            record = old
        snapshot = snap.with_object(ident, record, at)
        self._snapshots[collector] = snapshot
        self.webhooks.reconcile(snapshot)
        if self.journal is not None:
            self.journal.replaced(snapshot, (ident,))
        self._changed()
        return True

    def confirm(self, collector: str, now: float) -> None:
        snap = self._snapshots.get(collector)
        if snap is not None:
            self._snapshots[collector] = replace(snap, confirmed_at=now)
            if self.journal is not None:
                self.journal.confirmed(collector, now)
            self._changed()

    def drop(self, collector: str) -> None:
        if self._snapshots.pop(collector, None) is not None:
            if self.journal is not None:
                self.journal.dropped(collector)
            self._changed()

    def webhooks_changed(self) -> None:
        """Call after folding events into `webhooks`."""
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        if self.on_change is not None:
            self.on_change()

    def set_health(self, collector: str, health: Health) -> None:
        self._health[collector] = health

    @property
    def has_data(self) -> bool:
        return bool(self._snapshots)
