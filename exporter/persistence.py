"""The only module that touches the state file: SQLite (standard library), one file, WAL mode.

It keeps every collector's last good snapshot, the webhook-derived state and the events not yet
folded into it, the replay-protection keys, and the request ledger of the last hour. Every call
runs on one dedicated thread, so the event loop never blocks on disk. Webhook events are written
in group commits: whatever arrived while the previous commit ran goes in the next transaction,
and each webhook is acknowledged only once its transaction has committed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.overlay import WebhookState
from exporter.records import CertError, Host, Item, Monitor
from exporter.state import Snapshot

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    collector TEXT PRIMARY KEY, fetched_at REAL, confirmed_at REAL, total INTEGER, body TEXT);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, received REAL, body BLOB);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires REAL);
CREATE TABLE IF NOT EXISTS ledger (ts REAL);
CREATE INDEX IF NOT EXISTS ledger_ts ON ledger (ts);
"""
RECORDS: Mapping[str, type] = {
    "rbl_listings": Host, "rbl_hosts": Host, "cert_monitors": Monitor, "cert_errors": CertError,
}


@dataclass(frozen=True, slots=True)
class Incoming:
    """A webhook to make durable: its replay keys (none for idempotent HetrixTools chunks)."""

    kind: str  # "generatorlabs" or "hetrixtools"
    keys: tuple[str, ...]
    body: bytes
    received: float
    expires: float


@dataclass(frozen=True, slots=True)
class Loaded:
    snapshots: list[Snapshot]
    webhooks: WebhookState
    events: list[tuple[int, str, bytes]]  # committed but not yet folded into `webhooks`
    ledger: list[float]


def _row(record: Any) -> list[Any]:
    return [getattr(record, name) for name in record.__slots__]


def _record(cls: type, row: list[Any]) -> Any:
    return cls(*(tuple(v) if isinstance(v, list) else v for v in row))


def encode_snapshot(snapshot: Snapshot) -> str:
    return json.dumps({"items": [_row(r) for r in snapshot.items.values()],
                       "times": snapshot.item_times}, separators=(",", ":"))


def decode_snapshot(collector: str, fetched_at: float, confirmed_at: float, total: int | None,
                    body: str) -> Snapshot:
    data = json.loads(body)
    cls = RECORDS.get(collector, Item)
    items = {r.id: r for r in (_record(cls, row) for row in data["items"])}
    return Snapshot(collector, items, fetched_at, confirmed_at, total, data.get("times", {}))


class StateDB:
    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-db")
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "StateDB.open() first"  # noqa: S101
        return self._conn

    # -- lifetime ---------------------------------------------------------------------------

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # durable against a crash of the process
        conn.executescript(SCHEMA)
        self._conn = conn

    async def open(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    # -- loading ----------------------------------------------------------------------------

    def _load(self, now: float) -> Loaded:
        c = self.conn
        snapshots = [decode_snapshot(*row) for row in c.execute(
            "SELECT collector, fetched_at, confirmed_at, total, body FROM snapshots")]
        row = c.execute("SELECT value FROM kv WHERE key = 'webhooks'").fetchone()
        webhooks = WebhookState.from_json(json.loads(row[0])) if row else WebhookState()
        events = [(seq, kind, bytes(body)) for seq, kind, body in c.execute(
            "SELECT seq, kind, body FROM events WHERE seq > ? ORDER BY seq", (webhooks.last_seq,))]
        ledger = [ts for (ts,) in c.execute("SELECT ts FROM ledger WHERE ts > ? ORDER BY ts",
                                            (now - 3600,))]
        return Loaded(snapshots, webhooks, events, ledger)

    async def load(self, now: float) -> Loaded:
        result: Loaded = await self._run(self._load, now)
        return result

    # -- webhooks ---------------------------------------------------------------------------

    def _accept(self, batch: list[Incoming]) -> list[int | None]:
        """One transaction for the batch: a sequence number per new event, None per replay."""
        c = self.conn
        out: list[int | None] = []
        c.execute("BEGIN IMMEDIATE")
        try:
            for item in batch:
                seen = any(c.execute("SELECT 1 FROM seen WHERE key = ?", (k,)).fetchone()
                           for k in item.keys)
                if seen:
                    out.append(None)
                    continue
                c.executemany("INSERT INTO seen (key, expires) VALUES (?, ?)",
                              [(k, item.expires) for k in item.keys])
                cur = c.execute("INSERT INTO events (kind, received, body) VALUES (?, ?, ?)",
                                (item.kind, item.received, item.body))
                out.append(cur.lastrowid)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return out

    async def accept(self, batch: list[Incoming]) -> list[int | None]:
        result: list[int | None] = await self._run(self._accept, batch)
        return result

    def _checkpoint(self, state_json: str, last_seq: int, now: float) -> None:
        c = self.conn
        c.execute("BEGIN")
        c.execute("INSERT OR REPLACE INTO kv (key, value) VALUES ('webhooks', ?)", (state_json,))
        c.execute("DELETE FROM events WHERE seq <= ?", (last_seq,))
        c.execute("DELETE FROM seen WHERE expires < ?", (now,))
        c.execute("DELETE FROM ledger WHERE ts <= ?", (now - 3600,))
        c.execute("COMMIT")

    async def checkpoint(self, state: WebhookState, now: float) -> None:
        """Fold applied events into the stored webhook state and forget what has expired."""
        await self._run(self._checkpoint, json.dumps(state.to_json()), state.last_seq, now)

    # -- snapshots and the ledger -----------------------------------------------------------

    def _save_snapshot(self, snapshot: Snapshot) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO snapshots (collector, fetched_at, confirmed_at, total, body) "
            "VALUES (?, ?, ?, ?, ?)", (snapshot.collector, snapshot.fetched_at,
                                       snapshot.confirmed_at, snapshot.total, encode_snapshot(snapshot)))

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._run(self._save_snapshot, snapshot)

    async def confirm(self, collector: str, confirmed_at: float) -> None:
        await self._run(self.conn.execute, "UPDATE snapshots SET confirmed_at = ? WHERE collector = ?",
                        (confirmed_at, collector))

    async def drop(self, collector: str) -> None:
        await self._run(self.conn.execute, "DELETE FROM snapshots WHERE collector = ?", (collector,))

    async def record_sends(self, times: Iterable[float]) -> None:
        await self._run(self.conn.executemany, "INSERT INTO ledger (ts) VALUES (?)",
                        [(t,) for t in times])


class GroupCommit:
    """Batches concurrent webhooks into one transaction each: submit() returns once committed."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        self._pending: list[tuple[Incoming, asyncio.Future[int | None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def submit(self, item: Incoming) -> int | None:
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._db.accept([item for item, _ in batch])
            except Exception as err:  # the callers answer 5xx; nothing was acknowledged
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), seq in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(seq)


class VolatileDB(StateDB):
    """Replay protection without a file, for an exporter built without a state file (tests):
    nothing survives the process. A running exporter always attaches a StateDB."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self._seq = 0
        self._seen: set[str] = set()

    async def accept(self, batch: list[Incoming]) -> list[int | None]:
        out: list[int | None] = []
        for item in batch:
            if any(k in self._seen for k in item.keys):
                out.append(None)
                continue
            self._seen.update(item.keys)
            self._seq += 1
            out.append(self._seq)
        return out
