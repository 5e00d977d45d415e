"""The webhook-state checkpoint after a burst of HetrixTools chunks: it must not hold up the
webhooks that arrive meanwhile, and whatever it has written when it is cut short must not lose
an acknowledged chunk. (The latency itself is measured by `python -m bench.webhooks`; these tests
check the behaviour that keeps it short, with no clock.)"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import pytest

from exporter.state.events import HETRIXTOOLS, HETRIXTOOLS_MONITOR, HetrixMonitor
from exporter.state.overlay import Agent, Hetrix, HostMark, MonitorMark, WebhookState
from exporter.state.sqlite import AHEAD_SLICE, Incoming, Owner, StateDB
from exporter.state.store import StateStore
from exporter.webhooks.applier import Applier
from tests.helpers.rig import SID, FakeClock

OWNER = Owner(SID, "http://127.0.0.1:1/4.0")
RBLS = tuple(f"rbl{j}.example.org" for j in range(29))


def chunk(first: int, count: int, label: str) -> list[HetrixMonitor]:
    """`count` monitors numbered from `first`, each listed on 29 RBLs (about 4 KB stored)."""
    return [
        HetrixMonitor(
            f"mx{i}.example.net",
            f"{label} {i}",
            len(RBLS),
            RBLS,
            tuple(f"https://{r}/delist?ip={i}&{'x' * 60}" for r in RBLS),
            "https://hetrixtools.com/report/blacklist/" + "a" * 32 + "/",
        )
        for i in range(first, first + count)
    ]


def body(monitors: list[HetrixMonitor]) -> bytes:
    """The chunk as HetrixTools sends it (what the receiver commits)."""
    return json.dumps(
        [
            {
                "monitor": m.monitor,
                "label": m.label,
                "blacklisted_now": str(m.listed_now),
                "blacklisted_on": [{"rbl": r, "delist": d} for r, d in zip(m.rbls, m.delist, strict=True)],
                "links": {"report_link": m.report},
            }
            for m in monitors
        ]
    ).encode()


class Counts:
    """What the applier counts, kept for the asserts."""

    def __init__(self) -> None:
        self.set_aside_sources: list[str] = []

    def webhook_request(self, source: str) -> None: ...
    def webhook_rejection(self, source: str, reason: str) -> None: ...
    def parse_warning(self, obj: str, fld: str) -> bool:
        return True

    def set_aside(self, source: str) -> None:
        self.set_aside_sources.append(source)

    def forgotten_objects(self, kind: str, reason: str, count: int = 1) -> None: ...
    def expect_rejections(self, rejections: Mapping[str, tuple[str, ...]]) -> None: ...


async def started(path: Path, clock: FakeClock) -> tuple[StateDB, WebhookState, list[tuple[int, str, bytes]]]:
    db = StateDB(str(path), clock.time)
    loaded = await db.start(OWNER, clock.now)
    return db, loaded.webhooks, loaded.events


async def commit(db: StateDB, clock: FakeClock, monitors: list[HetrixMonitor]) -> int:
    (seq,) = await db.accept([Incoming(HETRIXTOOLS, (), body(monitors), clock.now, clock.now)])
    assert seq is not None
    return seq


async def received(db: StateDB, state: WebhookState, clock: FakeClock, monitors: list[HetrixMonitor]) -> None:
    """A chunk of `monitors` applied to `state` and committed, as the applier leaves them."""
    state.apply_hetrix(monitors, clock.now)
    state.last_seq = await commit(db, clock, monitors)


async def failed_checkpoint(db: StateDB, state: WebhookState, clock: FakeClock) -> None:
    """A checkpoint whose transaction that records the folded events fails (a full disk), after
    the marks it writes ahead are in."""
    db.conn.execute(
        "CREATE TRIGGER full BEFORE INSERT ON kv WHEN NEW.key = 'webhooks' "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    try:
        with pytest.raises(sqlite3.IntegrityError, match="disk full"):
            await db.checkpoint(state, clock.now)
    finally:
        db.conn.execute("DROP TRIGGER full")


async def test_a_webhook_is_committed_while_a_large_checkpoint_runs(tmp_path: Path, clock: FakeClock) -> None:
    """Thousands of HetrixTools monitors to checkpoint: a webhook that arrives meanwhile is
    committed (and so acknowledged) before the checkpoint has finished, not after it."""
    db, state, _ = await started(tmp_path / "s.sqlite", clock)
    try:
        await db.checkpoint(state, clock.now)  # the file now holds the (empty) sections
        monitors = chunk(0, 4 * AHEAD_SLICE, "burst")
        await received(db, state, clock, monitors)
        finished: list[str] = []
        checkpoint = asyncio.ensure_future(db.checkpoint(state, clock.now))
        checkpoint.add_done_callback(lambda _: finished.append("checkpoint"))
        await asyncio.sleep(0)  # the checkpoint has begun writing
        webhook = asyncio.ensure_future(db.accept([Incoming("generatorlabs", ("sid:x",), b"{}", 0.0, 1.0)]))
        webhook.add_done_callback(lambda _: finished.append("webhook"))
        await asyncio.gather(checkpoint, webhook)
        assert finished == ["webhook", "checkpoint"]
    finally:
        await db.close()
    db, back, events = await started(tmp_path / "s.sqlite", clock)
    await db.close()
    assert back.hetrix == state.hetrix  # every monitor written, whatever the slices
    assert [kind for _, kind, _ in events] == ["generatorlabs"]  # the chunk was folded in


async def test_a_checkpoint_cut_short_after_its_first_writes_loses_no_chunk(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The monitors of a checkpoint are written before the transaction that says which events
    they fold in. If that transaction fails (a crash, a full disk), a restart replays the chunks
    over them and ends with exactly what was acknowledged."""
    path = tmp_path / "s.sqlite"
    db, state, _ = await started(path, clock)
    try:
        old = chunk(0, 3 * AHEAD_SLICE, "old")
        await received(db, state, clock, old)
        await db.checkpoint(state, clock.now)
        clock.now += 10
        new = chunk(AHEAD_SLICE, 3 * AHEAD_SLICE, "new")  # overlaps the old, and adds
        await received(db, state, clock, new)
        await failed_checkpoint(db, state, clock)
    finally:
        await db.close()
    db, back, events = await started(path, clock)
    try:
        assert len(events) == 1  # the new chunk, still to replay
        store, counts = StateStore(webhooks=back), Counts()
        applier = Applier(store, db, clock, lambda *_: False, counts, 0.0)
        assert applier.replay(events) == []
    finally:
        await db.close()
    expected = {m.monitor: (m.label, m.rbls, m.delist, m.report) for m in old + new}
    assert {k: (h.label, h.rbls, h.delist, h.report) for k, h in back.hetrix.items()} == expected
    assert counts.set_aside_sources == []


async def test_a_monitor_written_ahead_by_a_failed_checkpoint_and_then_forgotten_stays_gone(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A chunk adds a monitor; the checkpoint writes it ahead, then fails; the operator forgets
    the monitor; the next checkpoint succeeds. After a restart the monitor is not back: the
    failed checkpoint's early rows are rewritten, not trusted."""
    path = tmp_path / "s.sqlite"
    db, state, _ = await started(path, clock)
    try:
        old = chunk(0, 3, "old")
        await received(db, state, clock, old)
        await db.checkpoint(state, clock.now)
        added = chunk(100, 1, "new")
        await received(db, state, clock, added)
        await failed_checkpoint(db, state, clock)
        assert state.forget(HETRIXTOOLS_MONITOR, added[0].monitor)
        await db.checkpoint(state, clock.now)
    finally:
        await db.close()
    db, back, events = await started(path, clock)
    await db.close()
    assert events == []  # everything folded in by the second checkpoint
    assert sorted(back.hetrix) == sorted(m.monitor for m in old)


async def test_a_checkpoint_writes_the_state_as_it_was_when_it_was_started(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The applier starts a checkpoint as a task and goes on applying: an event applied after
    the start (before the task first runs) is neither folded in nor deleted, so a restart
    replays it."""
    path = tmp_path / "s.sqlite"
    db, state, _ = await started(path, clock)
    try:
        first = chunk(0, 2, "first")
        await received(db, state, clock, first)
        pending = db.checkpoint(state, clock.now)  # taken now
        later = chunk(10, 2, "later")
        await received(db, state, clock, later)
        await pending
    finally:
        await db.close()
    db, back, events = await started(path, clock)
    await db.close()
    assert sorted(back.hetrix) == sorted(m.monitor for m in first)
    assert [json.loads(b)[0]["monitor"] for _, _, b in events] == [later[0].monitor]


@pytest.mark.parametrize(
    "mark",
    [
        Hetrix("label", 2, ("a", "b"), 1.5, ("https://a/x", ""), "https://report"),
        HostMark(1.0, True, 2, ("a", "b"), None),
        MonitorMark(None, 0.0, ("expired",), 3.0),
        Agent("agent", True, ("i-1",), 1.0, 2.0),
    ],
)
def test_a_mark_is_stored_as_before(mark: object) -> None:
    """The stored form of a mark did not change when it stopped being deep-copied: files written
    before and after read the same."""
    assert json.dumps(WebhookState.mark_json(mark)) == json.dumps(asdict(mark))  # type: ignore[call-overload]


class HeldDB(StateDB):
    """A state file whose checkpoints wait until released, to look at the applier meanwhile."""

    def __init__(self, path: str, clock: FakeClock) -> None:
        super().__init__(path, clock.time)
        self.started, self.released = asyncio.Event(), asyncio.Event()

    async def checkpoint(self, state: WebhookState, now: float) -> None:
        self.started.set()
        await self.released.wait()
        await super().checkpoint(state, now)


async def test_webhooks_are_applied_while_a_checkpoint_is_written(tmp_path: Path, clock: FakeClock) -> None:
    """The applier does not stop folding webhooks in while the state file takes a checkpoint
    (after a burst of HetrixTools chunks, thousands of marks): the next webhook shows at once."""
    db = HeldDB(str(tmp_path / "s.sqlite"), clock)
    loaded = await db.start(OWNER, clock.now)
    store = StateStore(webhooks=loaded.webhooks)
    applier = Applier(store, db, clock, lambda *_: False, Counts(), 0.0)
    task = asyncio.ensure_future(applier.run())
    try:
        await asyncio.sleep(0)  # the applier has started: its first checkpoint is due in a second
        clock.now += 2
        applier.submit(1, chunk(0, 2 * AHEAD_SLICE, "burst"))
        for _ in range(100):
            await asyncio.sleep(0)
        assert db.started.is_set()
        applier.submit(2, chunk(5000, 1, "next"))
        for _ in range(100):
            await asyncio.sleep(0)
        assert not db.released.is_set()  # the checkpoint is still being written ...
        assert store.webhooks.hetrix["mx5000.example.net"].label == "next 5000"  # ... yet applied
        db.released.set()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        db.released.set()
        await applier.flush()
        await db.close()
    db2, back, _ = await started(tmp_path / "s.sqlite", clock)
    await db2.close()
    assert len(back.hetrix) == 2 * AHEAD_SLICE + 1 and back.last_seq == 2
