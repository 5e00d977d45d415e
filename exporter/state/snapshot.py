"""Pure, no I/O: the records of what the exporter knows. A collector's last good data
(Snapshot), its last poll (Health), and the Journal protocol that the state file implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One collector's last good data.

    `fetched_at` is when the pass that produced it started (its oldest page); `confirmed_at`
    moves when a cheap count probe shows nothing changed; `item_times` gives, for paged
    inventory, when each object's page was fetched (hosts vs listings merge).
    """

    collector: str
    items: Mapping[str, Any]
    fetched_at: float
    confirmed_at: float
    total: int | None = None
    item_times: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Health:
    """One collector's last poll, for the self-metrics and the landing page."""

    success: bool | None = None  # None: not polled yet
    last_success: float | None = None
    duration: float = 0.0  # seconds the last poll took
    error: str | None = None  # bounded reason of the last failure, None after a success


class Journal(Protocol):
    """Where snapshot changes are written for a warm restart (exporter.state.sqlite)."""

    def replaced(self, snapshot: Snapshot) -> None: ...
    def confirmed(self, collector: str, at: float) -> None: ...
    def dropped(self, collector: str) -> None: ...
