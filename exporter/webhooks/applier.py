"""The Applier: folds committed webhook events into the store's webhook state, in sequence, off the
request path, and sweeps webhook-only objects past their maximum age. No HTTP; its only I/O is the
state file (set-aside events and checkpoints, through StateDB)."""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog

from exporter.api.fields import loggable
from exporter.clock import Clock
from exporter.state.events import (
    BY_MAX_AGE,
    FORGET,
    GENERATORLABS,
    HETRIXTOOLS,
    ON_REQUEST,
    WEBHOOK_SOURCES,
    Event,
    HetrixMonitor,
)
from exporter.state.sqlite import StateDB
from exporter.state.store import StateStore
from exporter.webhooks.payloads import Forget, MalformedEvent, check_hetrix_chunk, parse_event, parse_forget

log = structlog.get_logger("exporter.webhooks.applier")
CHECKPOINT_EVERY = 1.0  # seconds between folding applied events into the stored state
SWEEP_EVERY = 60.0  # clock seconds between two max-age sweeps of webhook-only objects
IDLE_WAKE = 300.0  # event-loop seconds without a webhook after which the applier sweeps anyway
MAX_REASON_CHARS = 500  # of a set-aside event's reason, in the log and the state file
MAX_LOGGED_TYPES = 100  # unknown event types remembered so each is logged once (memory bound)
SHOWN_TYPE_CHARS = 80  # of an unknown event type, in the log
SHOWN_ID_CHARS = 100  # of a forgotten object's id, in the log
RefreshFn = Callable[[str, str, float], bool]
Item = Event | list[HetrixMonitor] | Forget


class WebhookCounts(Protocol):
    """What the webhook code counts, by bounded labels (exporter.metrics.selfmetrics.Telemetry
    is the real one): requests and rejections per source, parse warnings, events set aside, and
    webhook-only objects forgotten."""

    def webhook_request(self, source: str) -> None: ...
    def webhook_rejection(self, source: str, reason: str) -> None: ...
    def parse_warning(self, obj: str, fld: str) -> bool: ...
    def set_aside(self, source: str) -> None: ...
    def forgotten_objects(self, kind: str, reason: str, count: int = 1) -> None: ...
    def expect_rejections(self, rejections: Mapping[str, tuple[str, ...]]) -> None: ...


def _source(item: Item) -> str:
    """The record kind (and, for webhooks, the `source` label) of an item."""
    if isinstance(item, Event):
        return GENERATORLABS
    if isinstance(item, Forget):
        return FORGET
    return HETRIXTOOLS


class Applier:
    """Folds committed events into the store's webhook state, in sequence, off the request path.

    It never dies of an item: one that cannot be read or applied (e.g. stored by an older version
    that accepted `"total": "1e999"`) is set aside, counted, logged once with its traceback and
    moved out of the replay set in the state file (`StateDB.set_aside`); later items are applied
    as usual. It also forgets HetrixTools monitors and agents not heard of for
    `series_max_age` seconds (checked at most every SWEEP_EVERY seconds, and when idle)."""

    def __init__(
        self,
        store: StateStore,
        db: StateDB,
        clock: Clock,
        refresh: RefreshFn,
        counts: WebhookCounts,
        series_max_age: float,
    ) -> None:
        self._store = store
        self._db = db
        self._clock = clock
        self._refresh = refresh
        self._counts = counts
        self.series_max_age = series_max_age
        self._queue: collections.deque[tuple[int, Item]] = collections.deque()
        self._arrived = asyncio.Event()
        self._logged_other: set[str] = set()
        self._to_set_aside: list[tuple[int, str]] = []  # not yet moved out in the state file
        self._last_sweep = -math.inf
        self._checkpointing: asyncio.Future[None] | None = None  # the checkpoint being written

    @property
    def pending(self) -> int:
        """Items acknowledged and not yet taken up (taking one up and applying it are one step);
        the landing page shows it, so a backlog behind a slow disk is visible."""
        return len(self._queue)

    def submit(self, seq: int, item: Item) -> None:
        self._queue.append((seq, item))
        self._arrived.set()

    def knows(self, kind: str, ident: str) -> bool:
        return self._store.webhooks.knows(kind, ident)

    def apply(self, seq: int, item: Item) -> bool:
        """Fold one item in; False when it failed and was set aside instead."""
        webhooks = self._store.webhooks
        try:
            if isinstance(item, Event):
                webhooks.apply(item, self._clock.time())
            elif isinstance(item, Forget):
                self._forget(item)
            else:
                webhooks.apply_hetrix(item, self._clock.time())
        except Exception as err:
            self._put_aside(seq, _source(item), f"{type(err).__name__}: {err}", err)
            return False
        finally:
            webhooks.last_seq = max(webhooks.last_seq, seq)
        if isinstance(item, Event):
            try:
                self._unknown(item)
            except Exception as err:  # a refresh request is a nicety; the event stays applied
                log.error("webhook.refresh_request_failed", error=loggable(repr(err)), exc_info=err)
        return True

    def _put_aside(self, seq: int, source: str, reason: str, err: BaseException | None) -> None:
        reason = loggable(reason, MAX_REASON_CHARS)
        self._to_set_aside.append((seq, reason))
        if source in WEBHOOK_SOURCES:
            self._counts.set_aside(source)
        log.error("webhook.set_aside", source=source, seq=seq, reason=reason, exc_info=err)

    def _forget(self, item: Forget) -> None:
        if self._store.webhooks.forget(item.kind, item.ident):
            self._counts.forgotten_objects(item.kind, ON_REQUEST)
            log.info(
                "webhook.forgotten",
                kind=item.kind,
                id=loggable(item.ident, SHOWN_ID_CHARS),
                reason=ON_REQUEST,
            )

    def _unknown(self, event: Event) -> None:
        if event.type == "other" and event.raw_type not in self._logged_other:
            if len(self._logged_other) < MAX_LOGGED_TYPES:
                self._logged_other.add(event.raw_type)
            log.warning("webhook.unknown_event_type", event_type=loggable(event.raw_type, SHOWN_TYPE_CHARS))
        ident, kind = event.object_id, None
        collectors: tuple[str, ...] = ()
        if event.type.startswith("rbl."):
            kind, collectors = "host", ("rbl_hosts", "rbl_listings")
        elif event.type.startswith("cert."):
            kind, collectors = "monitor", ("cert_monitors",)
        if kind is None or ident is None:
            return
        if not any(ident in (s.items if (s := self._store.snapshot(c)) else {}) for c in collectors):
            self._refresh(kind, ident, self._clock.time())
        elif event.type.startswith("cert.expiration."):
            self._refresh(kind, ident, self._clock.time())  # fetch the renewed notAfter

    def sweep(self, *, force: bool = False) -> bool:
        """Forget webhook-only objects older than series_max_age (at most every SWEEP_EVERY
        seconds unless forced); True when something was forgotten."""
        now = self._clock.time()
        if not force and now - self._last_sweep < SWEEP_EVERY:
            return False
        self._last_sweep = now
        forgotten = self._store.webhooks.expire(now, self.series_max_age)
        for kind, n in forgotten.items():
            self._counts.forgotten_objects(kind, BY_MAX_AGE, n)
            log.info("webhook.forgotten", kind=kind, count=n, reason=BY_MAX_AGE, max_age=self.series_max_age)
        return bool(forgotten)

    def replay(self, events: list[tuple[int, str, bytes]]) -> list[tuple[int, str]]:
        """At start-up: fold in events that were acknowledged but not yet checkpointed. One that
        cannot be read or applied is set aside, never raised: start-up is never blocked. Returns
        the (seq, reason) pairs set aside; run() and flush() move them out of the replay set in
        the state file before their next checkpoint."""
        first = len(self._to_set_aside)
        for seq, kind, body in events:
            try:
                item = _stored(kind, body)
            except Exception as err:  # MalformedEvent, or anything a future parser may raise
                self._put_aside(seq, kind, f"unreadable: {err}", None)
                webhooks = self._store.webhooks
                webhooks.last_seq = max(webhooks.last_seq, seq)
                continue
            self.apply(seq, item)
        if events:
            self._store.webhooks_changed()
        return list(self._to_set_aside[first:])

    async def _settle(self) -> None:
        """Move set-aside events out of the replay set, before any checkpoint deletes them."""
        while self._to_set_aside:
            seq, reason = self._to_set_aside[0]
            await self._db.set_aside(seq, reason)
            self._to_set_aside.pop(0)

    async def _wait(self) -> bool:
        """Wait for submitted items, at most IDLE_WAKE seconds; False when none came. (Not
        asyncio.wait_for: on Python 3.11 it can swallow a cancellation that races a result.)"""
        if self._queue:
            return True
        self._arrived.clear()
        waiter = asyncio.ensure_future(self._arrived.wait())
        try:
            await asyncio.wait({waiter}, timeout=IDLE_WAKE)
        finally:
            waiter.cancel()
        return bool(self._queue)

    def _checkpoint(self, now: float) -> bool:
        """Start writing a checkpoint in the background, unless one is still being written
        (then False). Items keep being applied meanwhile: the checkpoint takes what it writes
        from the state when it starts (marks are replaced, never changed in place), so a
        checkpoint after a burst of HetrixTools chunks (thousands of marks) does not hold up
        the next webhook."""
        if self._checkpointing is not None and not self._checkpointing.done():
            return False
        self._raise_failed_checkpoint()
        self._checkpointing = asyncio.ensure_future(self._db.checkpoint(self._store.webhooks, now))
        return True

    def _raise_failed_checkpoint(self) -> None:
        """The error of a background checkpoint that has failed, raised in the applier's task
        (its supervisor logs it, counts a restart and shows it on /-/healthy), at the latest
        IDLE_WAKE seconds after the failure, even on an idle exporter."""
        task = self._checkpointing
        if task is not None and task.done():
            self._checkpointing = None
            task.result()

    async def run(self) -> None:
        await self._settle()
        if self.sweep(force=True):
            self._store.webhooks_changed()
        last_checkpoint = self._clock.time()
        while True:
            self._raise_failed_checkpoint()
            if await self._wait():
                while self._queue:  # drain a burst, then tell the renderer once
                    self.apply(*self._queue.popleft())
                self.sweep()
            elif not self.sweep():  # nothing arrived for a while, and nothing aged out
                continue
            self._store.webhooks_changed()
            await self._settle()
            now = self._clock.time()
            if now - last_checkpoint >= CHECKPOINT_EVERY and self._checkpoint(now):
                last_checkpoint = now

    async def flush(self) -> None:
        """Apply whatever is queued and checkpoint (shutdown), after the checkpoint being
        written, if any (whether that one failed does not matter: this one writes it all)."""
        while self._queue:
            self.apply(*self._queue.popleft())
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
            self._checkpointing = None
        await self._settle()
        await self._db.checkpoint(self._store.webhooks, self._clock.time())


def _stored(kind: str, body: bytes) -> Item:
    """A committed record read back: the same checks as at intake."""
    if kind == GENERATORLABS:
        return parse_event(body)
    if kind == HETRIXTOOLS:
        chunk = check_hetrix_chunk(body)
        if chunk.unusable:
            raise MalformedEvent(chunk.summary())
        return chunk.monitors
    if kind == FORGET:
        return parse_forget(body)
    raise MalformedEvent(f"unknown record kind {kind[:40]!r}")
