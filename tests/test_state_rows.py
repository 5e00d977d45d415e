"""The state file stores objects and webhook marks one row each: a targeted refresh writes one
object row, a poll writes only the objects that changed, a checkpoint only the marks that
changed; a restart restores everything; a row that does not read back costs only itself; a file
of the previous schema is moved into rows.

Rows written are observed in the file itself: temporary SQLite triggers on the state file's
connection log every row inserted, updated or deleted. I/O: SQLite files under tmp_path."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import structlog

from exporter.api.records import Host, Listing
from exporter.state.events import Event
from exporter.state.overlay import WebhookState
from exporter.state.rows import record
from exporter.state.snapshot import Snapshot
from exporter.state.sqlite import Loaded, Owner, Skipped, StateDB
from exporter.state.store import StateStore
from tests.helpers.exporters import Simulated, simulated_exporter
from tests.helpers.rig import SID, START, FakeClock
from tests.helpers.schemas import SCHEMA_2

OWNER = Owner(SID, "https://api.generatorlabs.com/4.0")
LARGE = 5_000  # hosts: fifty pages
QUIET = 1e9  # the simulated account's step: it changes only when a test changes it


def hosts(n: int, at: float = START) -> dict[str, Host]:
    made = (
        Host(f"HT{i:032x}", f"192.0.2.{i % 250}", f"host {i}", "ip", "RP1", False, False, 0, (), at, None)
        for i in range(n)
    )
    return {h.id: h for h in made}


def watch(conn: sqlite3.Connection) -> None:
    """From now on, every object and mark row written or deleted is logged in temp.written."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS written (tbl TEXT, what TEXT, id TEXT, op TEXT)")
    conn.execute("DELETE FROM temp.written")
    for table, what in (("objects", "collector"), ("marks", "section")):
        for op, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            log = f"INSERT INTO written VALUES ('{table}', {row}.{what}, {row}.id, '{op}')"  # noqa: S608
            conn.execute(
                f"CREATE TEMP TRIGGER IF NOT EXISTS {table}_{op} AFTER {op} ON main.{table} BEGIN {log}; END"
            )


def written(conn: sqlite3.Connection) -> list[tuple[str, str, str, str]]:
    return conn.execute("SELECT tbl, what, id, op FROM temp.written ORDER BY rowid").fetchall()


@contextlib.asynccontextmanager
async def opened(path: Path, clock: FakeClock) -> AsyncIterator[tuple[StateDB, Loaded]]:
    db = StateDB(str(path), clock.time)
    try:
        yield db, await db.start(OWNER, clock.now)
    finally:
        await db.close()


async def inventory(simulated: Simulated) -> None:
    """Poll until every collector has data, and let the state file catch up."""
    exporter = simulated.exporter
    for _ in range(10_000):
        if {"rbl_hosts", "rbl_listings", "cert_monitors", "cert_errors"} <= set(exporter.store.snapshots()):
            break
        await exporter.scheduler.step()
    await exporter.journal.drain()


def same_snapshots(loaded: Loaded, store: StateStore) -> None:
    stored = {s.collector: s for s in loaded.snapshots}
    assert set(stored) == set(store.snapshots())
    for name, snap in store.snapshots().items():
        back = stored[name]
        assert dict(back.items) == dict(snap.items), name
        assert dict(back.item_times) == dict(snap.item_times), name
        assert (back.fetched_at, back.confirmed_at, back.total) == (
            snap.fetched_at,
            snap.confirmed_at,
            snap.total,
        )


async def test_a_targeted_refresh_at_a_large_account_writes_one_object_row(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = str(tmp_path / "s.sqlite")
    with structlog.testing.capture_logs():
        async with simulated_exporter(clock, hosts=LARGE, monitors=20, path=path, step=QUIET) as simulated:
            exporter, account = simulated.exporter, simulated.api.account
            await inventory(simulated)
            host = account.hosts[sorted(account.hosts)[7]]
            before = exporter.store.snapshot("rbl_hosts")
            assert before is not None and len(before.items) == LARGE
            watch(exporter.db.conn)
            account.list_host(host, clock.now)
            assert exporter.scheduler.request_refresh("host", host.id, clock.now)
            while exporter.store.snapshot("rbl_hosts") is before:
                await exporter.scheduler.step()
            await exporter.journal.drain()
            rows = [row for row in written(exporter.db.conn) if row[1] == "rbl_hosts"]
            assert rows == [("objects", "rbl_hosts", host.id, "INSERT")]
            after = exporter.store.snapshot("rbl_hosts")
            assert after is not None and after.items[host.id].listed
            unchanged = sorted(account.hosts)[8]
            assert after.items[unchanged] is before.items[unchanged]  # shared, not copied
            same_snapshots(await exporter.db.load(clock.now), exporter.store)
            kept = dict(after.items)
        # a restart restores everything, the refreshed host included
        async with simulated_exporter(clock, hosts=LARGE, monitors=20, path=path, step=QUIET) as again:
            restored = again.exporter.store.snapshot("rbl_hosts")
            assert restored is not None and dict(restored.items) == kept


async def test_a_poll_with_one_change_writes_one_row(tmp_path: Path, clock: FakeClock) -> None:
    """A new listings poll finds one more listed host: one row, though every fetch time moved."""
    path = str(tmp_path / "s.sqlite")
    with structlog.testing.capture_logs():
        async with simulated_exporter(clock, hosts=300, monitors=5, path=path, step=QUIET) as simulated:
            exporter, account = simulated.exporter, simulated.api.account
            await inventory(simulated)
            before = exporter.store.snapshot("rbl_listings")
            assert before is not None and before.items
            watch(exporter.db.conn)
            host = next(h for h in account.hosts.values() if not h.rbls and not h.paused)
            account.list_host(host, clock.now)
            while exporter.store.snapshot("rbl_listings") is before:
                await exporter.scheduler.step()
            await exporter.journal.drain()
            after = exporter.store.snapshot("rbl_listings")
            assert after is not None and after.fetched_at > before.fetched_at
            assert set(after.items) == {*before.items, host.id}
            rows = [row for row in written(exporter.db.conn) if row[1] == "rbl_listings"]
            assert rows == [("objects", "rbl_listings", host.id, "INSERT")]
            same_snapshots(await exporter.db.load(clock.now), exporter.store)


async def test_a_full_write_writes_only_what_differs_and_deletes_what_went(
    tmp_path: Path, clock: FakeClock
) -> None:
    first = hosts(1000)
    second = dict(first)
    del second[next(iter(first))]
    changed = list(first)[500]
    second[changed] = replace(first[changed], listed=True, listings=1, rbls=("Spamhaus ZEN",))
    # ten pages of a hundred, each poll's fetched at its own times
    before = {k: START + i // 100 for i, k in enumerate(first)}
    times = {k: START + 60 + i // 100 for i, k in enumerate(second)}
    async with opened(tmp_path / "s.sqlite", clock) as (db, _):
        await db.save_snapshot(Snapshot("rbl_hosts", first, START, START, 1000, before))
        watch(db.conn)
        await db.save_snapshot(Snapshot("rbl_hosts", second, START + 60, START + 70, 999, times))
        assert (
            sorted(written(db.conn))
            == sorted(
                [
                    ("objects", "rbl_hosts", changed, "INSERT"),
                    ("objects", "rbl_hosts", next(iter(first)), "DELETE"),
                ]
                # the first page lost a host: its last one moved to the page before (fetch times are
                # stored per page, each object names its page)
                + [("objects", "rbl_hosts", k, "INSERT") for k in list(second)[99::100] if k != changed]
            )
        )
    async with opened(tmp_path / "s.sqlite", clock) as (_, loaded):
        (back,) = loaded.snapshots
        assert dict(back.items) == second and dict(back.item_times) == times
        assert (back.fetched_at, back.confirmed_at, back.total) == (START + 60, START + 70, 999)


def listed(host_id: str, at: float) -> Event:
    return Event(
        "TA" + "0" * 32,
        "rbl.host.listed",
        "rbl.host.listed",
        at,
        host_id,
        Listing(True, 1, ("Spamhaus ZEN",)),
    )


async def test_a_checkpoint_writes_only_the_marks_that_changed(tmp_path: Path, clock: FakeClock) -> None:
    ids = list(hosts(200))
    async with opened(tmp_path / "s.sqlite", clock) as (db, loaded):
        state = loaded.webhooks
        for ident in ids:
            state.apply(listed(ident, START))
        await db.checkpoint(state, clock.now)
        watch(db.conn)
        state.apply(listed(ids[3], START + 5))
        state.reconcile(Snapshot("rbl_hosts", {}, START + 1, START + 1, 0, {ids[4]: START + 1}))
        await db.checkpoint(state, clock.now)
        assert written(db.conn) == [
            ("marks", "hosts", ids[3], "INSERT"),
            ("marks", "hosts", ids[4], "DELETE"),
        ]
        await db.checkpoint(state, clock.now)  # nothing changed: nothing written
        assert len(written(db.conn)) == 2
        expected = dict(state.hosts)
    async with opened(tmp_path / "s.sqlite", clock) as (db, loaded):
        assert loaded.webhooks.hosts == expected and loaded.webhooks.events == {"rbl.host.listed": 201}
        watch(db.conn)
        await db.checkpoint(loaded.webhooks, clock.now)  # what was loaded is known to be there
        assert written(db.conn) == []


async def test_a_row_that_does_not_read_back_costs_only_itself(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.sqlite"
    stored = hosts(50)
    bad_host, bad_mark = list(stored)[10], list(stored)[20]
    async with opened(path, clock) as (db, loaded):
        await db.save_snapshot(Snapshot("rbl_hosts", stored, START, START, 50, dict.fromkeys(stored, START)))
        for ident in (bad_host, bad_mark):
            loaded.webhooks.apply(listed(ident, START))
        await db.checkpoint(loaded.webhooks, clock.now)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE objects SET body = json_replace(body, '$[7]', 'many') WHERE id = ?", (bad_host,))
        conn.execute("UPDATE marks SET body = '{\"at\": 1e999}' WHERE id = ?", (bad_mark,))
    with structlog.testing.capture_logs() as logs:
        async with opened(path, clock) as (db, loaded):
            (snap,) = loaded.snapshots
            assert set(snap.items) == set(stored) - {bad_host}
            assert set(loaded.webhooks.hosts) == {bad_host}
            assert loaded.skipped == [
                Skipped("rbl_hosts", 1, "an item's listings has the wrong type"),
                Skipped("webhook hosts", 1, "it does not read back as a mark"),
            ]
            # the next writes replace the collector's and the section's rows whole
            await db.save_snapshot(replace(snap, items=stored))
            await db.checkpoint(loaded.webhooks, clock.now)
    assert [(e["event"], e["of"], e["count"]) for e in logs] == [
        ("state.rows_skipped", "rbl_hosts", 1),
        ("state.rows_skipped", "webhook hosts", 1),
    ]
    async with opened(path, clock) as (_, loaded):
        assert loaded.skipped == [] and dict(loaded.snapshots[0].items) == stored
        assert set(loaded.webhooks.hosts) == {bad_host}


async def test_a_file_of_schema_2_is_moved_into_rows(tmp_path: Path, clock: FakeClock) -> None:
    """Each snapshot body becomes object rows (a body that cannot be read costs its collector, an
    item that cannot be read costs only itself), the webhook state's marks become mark rows, and
    the file is of the current schema after."""
    path = tmp_path / "s.sqlite"
    stored = hosts(30)
    state = WebhookState()
    state.apply(listed(next(iter(stored)), START))
    rows = [[getattr(h, f) for f in h.__slots__] for h in stored.values()]
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(SCHEMA_2)
        conn.executemany(
            "INSERT INTO kv VALUES (?, ?)",
            [
                ("owner_account_sid", OWNER.account_sid),
                ("owner_base_url", OWNER.base_url),
                ("webhooks", json.dumps(state.to_json())),
            ],
        )
        body = json.dumps({"items": [*rows, "not a host"], "times": dict.fromkeys(stored, START)})
        conn.execute("INSERT INTO snapshots VALUES ('rbl_hosts', ?, ?, 30, ?)", (START, START, body))
        conn.execute(
            "INSERT INTO snapshots VALUES ('cert_monitors', ?, ?, 1, '{\"items\": [[')", (START, START)
        )
    with structlog.testing.capture_logs() as logs:
        async with opened(path, clock) as (_, loaded):
            assert [(s.collector, dict(s.items)) for s in loaded.snapshots] == [("rbl_hosts", stored)]
            assert loaded.webhooks.hosts == state.hosts
    assert [(e["event"], e["of"], e["problem"]) for e in logs] == [
        ("state.rows_skipped", "rbl_hosts", "stored items that do not read"),
        ("state.rows_skipped", "cert_monitors", "its stored snapshot: its body is not valid JSON"),
    ]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "snapshots" not in tables and {"objects", "marks", "snapshot_info"} <= tables
        assert conn.execute("PRAGMA user_version").fetchone() == (3,)


def test_a_host_row_written_before_tags_existed_reads_back_without_them() -> None:
    """An upgrade keeps the state file: a stored host of 11 fields (no tags, no contact groups)
    reads back with their empty defaults; a row missing a required field is still refused."""
    old = ["HT" + "a" * 32, "192.0.2.7", "mx", "ip", "RP1", False, True, 1, ["zen"], START, START]
    host = record(Host, old)
    assert (host.id, host.rbls, host.tags, host.contact_group) == (old[0], ("zen",), "", "")
    with pytest.raises(ValueError, match="fields"):
        record(Host, old[:10])
