"""The only module that touches the state file: SQLite (standard library), one file, WAL mode.

It keeps every collector's last good snapshot, the webhook-derived state and the events not yet
folded into it, the events set aside because they could not be applied, the replay-protection
keys, and the request ledger of the last hour. Every call runs on one dedicated thread, so the
event loop never blocks on disk. Webhook events are written in group commits: whatever arrived
while the previous commit ran goes in the next transaction, and each webhook is acknowledged only
once its transaction has committed.

The file belongs to one account and one process. It records the account SID and API base URL it
was written for; opened for another, the account's data is discarded (the request ledger is kept
when only the base URL changed: the hourly limit belongs to the API application). A `<path>.lock`
file, held with flock(2) while the file is open and released by the kernel even on a crash, keeps
a second process out. A file that cannot be read raises StateUnreadable naming the problem;
`StateDB.start(..., if_unreadable="move_aside")` renames it to `<path>.broken-<time>` and starts
fresh instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import math
import os
import sqlite3
import time
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import structlog

from exporter.api.endpoints import COLLECTORS
from exporter.api.ratelimit import HOURLY_WINDOW
from exporter.api.records import CertError, Host, Item, Monitor
from exporter.clock import SystemClock
from exporter.errors import StateError, StateUnreadable
from exporter.state.overlay import WebhookState
from exporter.state.snapshot import Snapshot

log = structlog.get_logger("exporter.state.sqlite")

# The columns each table must have; a file with other tables, or without these columns, is not ours.
TABLES: Mapping[str, tuple[str, ...]] = {
    "snapshots": ("collector", "fetched_at", "confirmed_at", "total", "body"),
    "kv": ("key", "value"),
    "events": ("seq", "kind", "received", "body"),
    "seen": ("key", "expires"),
    "ledger": ("ts",),
    "set_aside": ("seq", "kind", "received", "body", "reason", "at"),
}
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS snapshots ("
    " collector TEXT PRIMARY KEY, fetched_at REAL, confirmed_at REAL, total INTEGER, body TEXT)",
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE IF NOT EXISTS events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, received REAL, body BLOB)",
    "CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires REAL)",
    "CREATE TABLE IF NOT EXISTS ledger (ts REAL)",
    "CREATE INDEX IF NOT EXISTS ledger_ts ON ledger (ts)",
    "CREATE TABLE IF NOT EXISTS set_aside ("
    " seq INTEGER PRIMARY KEY, kind TEXT, received REAL, body BLOB, reason TEXT, at REAL)",
)
APPLICATION_ID = 0x474C4558  # "GLEX" in the SQLite header: this file is a generatorlabs-exporter's
SCHEMA_VERSION = 2  # 1 (user_version 0): no owner rows, no set_aside table
SET_ASIDE_KEEP = 1000  # the newest set-aside events kept for inspection
OWNER_KEYS = ("owner_account_sid", "owner_base_url")
RECORDS: Mapping[str, type] = {
    "rbl_listings": Host,
    "rbl_hosts": Host,
    "cert_monitors": Monitor,
    "cert_errors": CertError,
}
# sqlite3 error names that mean the file's content is broken (rather than the file unusable)
BROKEN = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


@dataclass(frozen=True, slots=True)
class Owner:
    """The account a state file's data belongs to."""

    account_sid: str
    base_url: str


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


@dataclass(frozen=True, slots=True)
class Binding:
    """What opening the file for an owner found: fresh, same, adopted (a file of the previous
    version, which recorded no owner) or discarded (another account's data was dropped)."""

    outcome: str
    previous: Owner | None = None
    ledger_kept: bool = True


# ---- snapshots: JSON rows, checked against the record types on the way in -----------------


def _row(record: Any) -> list[Any]:
    return [getattr(record, name) for name in record.__slots__]


def _finite(value: object) -> bool:
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
        float: _finite,
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    }
    return checks.get(kind, lambda v: True)


@functools.cache
def _field_checks(cls: type) -> tuple[tuple[str, Callable[[object], bool]], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _checker(hints[f.name])) for f in fields(cls))


def _record(cls: type, row: object) -> Any:
    checks = _field_checks(cls)
    if not isinstance(row, list) or len(row) != len(checks):
        raise ValueError(f"an item is not a list of {len(checks)} fields")
    for (name, check), value in zip(checks, row, strict=True):
        if not check(value):
            raise ValueError(f"an item's {name} has the wrong type")
    return cls(*(tuple(v) if isinstance(v, list) else v for v in row))


def _no_constant(name: str) -> None:
    """json.loads reads NaN and Infinity as absent: nothing the exporter stores may be one."""


def encode_snapshot(snapshot: Snapshot) -> str:
    return json.dumps(
        {"items": [_row(r) for r in snapshot.items.values()], "times": snapshot.item_times},
        separators=(",", ":"),
    )


def decode_snapshot(
    collector: str, fetched_at: object, confirmed_at: object, total: object, body: object
) -> Snapshot:
    """A stored snapshot, or ValueError naming what is wrong with it."""
    if (
        not isinstance(fetched_at, int | float)
        or not isinstance(confirmed_at, int | float)
        or not (_finite(fetched_at) and _finite(confirmed_at))
    ):
        raise ValueError("its times are not numbers")
    if total is not None and not (isinstance(total, int) and total >= 0):
        raise ValueError("its total is not a count")
    if not isinstance(body, str | bytes):
        raise ValueError("its body is not text")
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError alike
        raise ValueError("its body is not valid JSON") from err
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValueError("its body has no list of items")
    times = data.get("times", {})
    if not isinstance(times, dict) or not all(_finite(t) for t in times.values()):
        raise ValueError("its item times are not numbers")
    cls = RECORDS.get(collector, Item)
    items = {r.id: r for r in (_record(cls, row) for row in data["items"])}
    return Snapshot(collector, items, float(fetched_at), float(confirmed_at), total, times)


# ---- one account per file -------------------------------------------------------------------


def _public(url: str) -> str:
    """A base URL for a log line: without any user:password@."""
    scheme, sep, rest = url.partition("://")
    host, at, tail = rest.partition("@")
    return f"{scheme}{sep}{tail}" if at and "/" not in host else url


def _bind(conn: sqlite3.Connection, owner: Owner | None, existed: bool) -> Binding:
    """Inside the opening transaction: record the owner, discarding another account's data."""
    if owner is None:
        return Binding("same")
    owner = Owner(owner.account_sid, _public(owner.base_url))  # no password in the file
    stored = dict(conn.execute("SELECT key, value FROM kv WHERE key IN (?, ?)", OWNER_KEYS).fetchall())
    previous = (
        Owner(str(stored[OWNER_KEYS[0]]), str(stored[OWNER_KEYS[1]]))
        if len(stored) == len(OWNER_KEYS)
        else None
    )
    if previous == owner:
        return Binding("same", previous)
    binding = Binding("fresh")
    if previous is None and existed:
        binding = Binding("adopted")  # written by the previous version, which recorded no owner
    elif previous is not None:
        kept = previous.account_sid == owner.account_sid  # the hourly limit is the application's
        for table in ("snapshots", "events", "seen", "set_aside", "kv") + (() if kept else ("ledger",)):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 - table names are ours
        binding = Binding("discarded", previous, kept)
    conn.executemany(
        "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
        zip(OWNER_KEYS, (owner.account_sid, owner.base_url), strict=True),
    )
    return binding


# ---- one process per file -------------------------------------------------------------------


class StateLock:
    """`<path>.lock`, locked with flock(2) and holding the PID of the process using the file."""

    def __init__(self, state_path: str) -> None:
        self.state_path = state_path
        self.path = state_path + ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise StateError(
                self.state_path, f"cannot create its lock file {self.path} ({err.strerror})"
            ) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = "".join(c for c in os.pread(fd, 32, 0).decode(errors="replace") if c.isdigit())
            os.close(fd)
            raise StateError(
                self.state_path,
                f"in use by process {holder or '(unknown)'} "
                f"(it holds {self.path}); one exporter per state file",
            ) from err
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # the kernel releases the lock (it does on a crash too)
            self._fd = None


# ---- the file ---------------------------------------------------------------------------------


class StateDB:
    def __init__(self, path: str, now: Callable[[], float] | None = None) -> None:
        self.path = path
        self._now = now or SystemClock().time
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-db")
        self._conn: sqlite3.Connection | None = None
        self._lock = StateLock(path) if path != ":memory:" else None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "StateDB.open() first"  # noqa: S101
        return self._conn

    def _failed(self, err: sqlite3.Error) -> StateError:
        name = getattr(err, "sqlite_errorname", "")
        if name.startswith(BROKEN):
            return StateUnreadable(self.path, f"not a readable SQLite database ({err})")
        if name.startswith("SQLITE_READONLY"):
            return StateError(self.path, f"cannot be written ({err})")
        return StateError(self.path, f"cannot be used ({err})")

    # -- lifetime ---------------------------------------------------------------------------

    def _open(self, owner: Owner | None, now: float | None) -> tuple[Binding, Loaded | None]:
        """Lock, check, migrate and bind in one transaction; with `now`, also load, so that a file
        that turns out unusable is left exactly as it was found."""
        if self.path != ":memory:":
            if Path(self.path).is_dir():
                raise StateError(self.path, "is a directory, not a file")
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StateError(self.path, f"cannot create its directory ({err.strerror})") from err
        if self._lock is not None:
            self._lock.acquire()
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as err:
            raise self._failed(err) from err
        # Text that is not UTF-8 (a damaged or hand-edited file) reads as U+FFFD instead of
        # raising mid-query: the checks below then find the row unusable and say so.
        conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
        try:
            existed = self._inspect(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable against a crash of the process
            conn.execute("BEGIN IMMEDIATE")  # fails here if the file cannot be written
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            binding = _bind(conn, owner, existed)
            self._conn = conn
            loaded = self._read(now) if now is not None else None
            conn.execute("COMMIT")
        except BaseException as err:
            self._conn = None
            conn.close()  # rolls back
            if isinstance(err, sqlite3.Error):
                raise self._failed(err) from err
            raise
        return binding, loaded

    def _inspect(self, conn: sqlite3.Connection) -> bool:
        """Whether the file holds our tables already; StateUnreadable if it is broken or foreign."""
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise StateUnreadable(self.path, f"corrupt ({'; '.join(problems)[:300]})")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        foreign = sorted(tables - set(TABLES))
        if app_id not in (0, APPLICATION_ID) or foreign:
            shown = ", ".join(repr(t[:40]) for t in foreign[:5])
            raise StateUnreadable(
                self.path,
                "not a generatorlabs-exporter state file"
                + (f" (it has other tables: {shown})" if foreign else ""),
            )
        for table in tables:
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            missing = [c for c in TABLES[table] if c not in columns]
            if missing:
                raise StateUnreadable(
                    self.path,
                    f"not a generatorlabs-exporter state file (table {table} has no column {missing[0]})",
                )
        if version > SCHEMA_VERSION:
            raise StateUnreadable(
                self.path,
                f"written by a newer exporter (schema {version}; this one reads up to {SCHEMA_VERSION})",
            )
        return bool(tables)

    async def open(self, owner: Owner | None = None) -> Binding:
        """Lock, check and open the file (creating it), and bind it to `owner`, without loading
        it. Kept for bench/webhooks.py only; the exporter and the tests use `start`."""
        opened: tuple[Binding, None] = await self._run(self._open, owner, None)
        self._log(opened[0], owner)
        return opened[0]

    async def _start(self, owner: Owner | None, now: float) -> Loaded:
        opened: tuple[Binding, Loaded] = await self._run(self._open, owner, now)
        self._log(opened[0], owner)
        return opened[1]

    def _log(self, binding: Binding, owner: Owner | None) -> None:
        if owner is not None and binding.outcome == "adopted":
            log.info(
                "state.adopted", path=self.path, account=owner.account_sid, base_url=_public(owner.base_url)
            )
        elif owner is not None and binding.previous is not None and binding.outcome == "discarded":
            log.warning(
                "state.discarded",
                path=self.path,
                old_account=binding.previous.account_sid,
                new_account=owner.account_sid,
                old_base_url=_public(binding.previous.base_url),
                new_base_url=_public(owner.base_url),
                ledger="kept" if binding.ledger_kept else "discarded",
            )

    async def start(self, owner: Owner | None, now: float, *, if_unreadable: str = "fail") -> Loaded:
        """Open and load; a broken file either raises StateUnreadable (`fail`) or is renamed to
        `<path>.broken-<time>` and replaced by a fresh one (`move_aside`). Close it in any case."""
        try:
            return await self._start(owner, now)
        except StateUnreadable as err:
            if if_unreadable != "move_aside":
                raise
            moved = await self._run(self._move_aside, now)
            log.warning("state.moved_aside", path=self.path, moved_to=moved, problem=err.problem)
        return await self._start(owner, now)

    def _move_aside(self, now: float) -> str:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        target, n = f"{self.path}.broken-{stamp}", 1
        while os.path.lexists(target):
            target, n = f"{self.path}.broken-{stamp}-{n}", n + 1
        try:
            for suffix in ("", "-wal", "-shm", "-journal"):  # a stale WAL must not meet the new file
                if os.path.lexists(self.path + suffix):
                    os.rename(self.path + suffix, target + suffix)
        except OSError as err:
            raise StateError(self.path, f"cannot move it aside ({err.strerror})") from err
        return target

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
        if self._lock is not None:
            self._lock.release()

    # -- loading ----------------------------------------------------------------------------

    def _load(self, now: float) -> Loaded:
        try:
            return self._read(now)
        except sqlite3.Error as err:
            raise self._failed(err) from err

    def _read(self, now: float) -> Loaded:
        c = self.conn
        snapshots = []
        for row in c.execute("SELECT collector, fetched_at, confirmed_at, total, body FROM snapshots"):
            if row[0] not in COLLECTORS:
                continue  # a collector this version does not know
            try:
                snapshots.append(decode_snapshot(*row))
            except ValueError as err:
                raise StateUnreadable(self.path, f"the stored {row[0]} snapshot is unusable: {err}") from err
        row = c.execute("SELECT value FROM kv WHERE key = 'webhooks'").fetchone()
        try:
            webhooks = (
                WebhookState.from_json(json.loads(row[0], parse_constant=_no_constant))
                if row
                else WebhookState()
            )
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:
            raise StateUnreadable(
                self.path, f"the stored webhook state is unusable ({type(err).__name__})"
            ) from err
        events = [
            (seq, str(kind), body if isinstance(body, bytes) else str(body).encode())
            for seq, kind, body in c.execute(
                "SELECT seq, kind, body FROM events WHERE seq > ? ORDER BY seq", (webhooks.last_seq,)
            )
        ]
        ledger = [
            min(ts, now)
            for (ts,) in c.execute(
                "SELECT ts FROM ledger WHERE typeof(ts) IN ('real', 'integer') AND ts > ? ORDER BY ts",
                (now - HOURLY_WINDOW,),
            )
        ]
        return Loaded(snapshots, webhooks, events, ledger)

    async def load(self, now: float) -> Loaded:
        """Everything stored, or StateUnreadable naming the first row that cannot be used."""
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
                seen = any(c.execute("SELECT 1 FROM seen WHERE key = ?", (k,)).fetchone() for k in item.keys)
                if seen:
                    out.append(None)
                    continue
                c.executemany(
                    "INSERT INTO seen (key, expires) VALUES (?, ?)", [(k, item.expires) for k in item.keys]
                )
                cur = c.execute(
                    "INSERT INTO events (kind, received, body) VALUES (?, ?, ?)",
                    (item.kind, item.received, item.body),
                )
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
        try:
            c.execute("INSERT OR REPLACE INTO kv (key, value) VALUES ('webhooks', ?)", (state_json,))
            c.execute("DELETE FROM events WHERE seq <= ?", (last_seq,))
            c.execute("DELETE FROM seen WHERE expires < ?", (now,))
            c.execute("DELETE FROM ledger WHERE ts <= ?", (now - HOURLY_WINDOW,))
            c.execute("COMMIT")
        except BaseException:  # never leave the connection inside a transaction (disk full, busy)
            c.execute("ROLLBACK")
            raise

    async def checkpoint(self, state: WebhookState, now: float) -> None:
        """Fold applied events into the stored webhook state and forget what has expired."""
        await self._run(self._checkpoint, json.dumps(state.to_json()), state.last_seq, now)

    def _set_aside(self, seq: int, reason: str, now: float) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(
                "INSERT OR REPLACE INTO set_aside (seq, kind, received, body, reason, at) "
                "SELECT seq, kind, received, body, ?, ? FROM events WHERE seq = ?",
                (reason[:500], now, seq),
            )
            c.execute("DELETE FROM events WHERE seq = ?", (seq,))
            c.execute(
                "DELETE FROM set_aside WHERE seq NOT IN "
                "(SELECT seq FROM set_aside ORDER BY seq DESC LIMIT ?)",
                (SET_ASIDE_KEEP,),
            )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    async def set_aside(self, seq: int, reason: str) -> None:
        """Move committed event `seq` out of the events to replay, with why and when, in one
        transaction: an event that cannot be applied never blocks a start again. The newest
        SET_ASIDE_KEEP stay in the `set_aside` table for inspection. Unknown `seq`: nothing."""
        await self._run(self._set_aside, seq, reason, self._now())

    # -- snapshots and the ledger -----------------------------------------------------------

    def _save_snapshot(self, snapshot: Snapshot) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO snapshots (collector, fetched_at, confirmed_at, total, body) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                snapshot.collector,
                snapshot.fetched_at,
                snapshot.confirmed_at,
                snapshot.total,
                encode_snapshot(snapshot),
            ),
        )

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._run(self._save_snapshot, snapshot)

    async def confirm(self, collector: str, confirmed_at: float) -> None:
        await self._run(
            self.conn.execute,
            "UPDATE snapshots SET confirmed_at = ? WHERE collector = ?",
            (confirmed_at, collector),
        )

    async def drop(self, collector: str) -> None:
        await self._run(self.conn.execute, "DELETE FROM snapshots WHERE collector = ?", (collector,))

    async def record_sends(self, times: Iterable[float]) -> None:
        await self._run(self.conn.executemany, "INSERT INTO ledger (ts) VALUES (?)", [(t,) for t in times])


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
