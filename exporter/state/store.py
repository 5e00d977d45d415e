"""Pure: what the exporter knows. Whole per-collector snapshots replaced atomically, plus each
collector's health. A version number moves on every change so renderers know when to re-render."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType

from exporter.state.snapshot import Health, Journal, Snapshot
from exporter.webhooks.overlay import WebhookState


class StateStore:
    def __init__(self) -> None:
        self.version = 0
        self.webhooks = WebhookState()
        self.on_change: Callable[[], None] | None = None  # e.g. wake the renderer
        self.journal: Journal | None = None
        self._snapshots: dict[str, Snapshot] = {}
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
