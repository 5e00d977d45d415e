"""The only module that touches the state file: SQLite (standard library), one file, WAL mode.

It keeps every collector's last good snapshot, one row per object with its metadata apart (see
exporter.state.rows), so that a poll writes only the objects that differ from the stored ones and
a targeted refresh writes one row; the webhook-derived state, one row per mark, of which a
checkpoint writes only the marks that changed; the events not yet folded into it, the events set
aside because they could not be applied, the replay-protection keys, and the request ledger of
the last hour. A file of an older schema (one JSON body per snapshot) is moved into rows when it
is opened. A row that does not read back costs only itself: it is left out and logged
(`state.rows_skipped`, with how many and the first problem). Every statement runs on one
dedicated thread, so the event loop never blocks on disk; the page cache is bounded (CACHE_KIB).
Webhook events are written in group commits: whatever arrived while the previous commit ran goes
in the next transaction, and each webhook is acknowledged only once its transaction has committed.

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
import json
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from exporter.api.endpoints import COLLECTORS
from exporter.api.ratelimit import HOURLY_WINDOW
from exporter.clock import SystemClock
from exporter.errors import StateError, StateUnreadable
from exporter.state import rows
from exporter.state.overlay import WebhookState
from exporter.state.rows import Written
from exporter.state.snapshot import Snapshot

log = structlog.get_logger("exporter.state.sqlite")

# The columns each table must have; a file with other tables, or without these columns, is not ours.
TABLES: Mapping[str, tuple[str, ...]] = {
    "snapshot_info": ("collector", "fetched_at", "confirmed_at", "total", "pages"),
    "objects": ("collector", "id", "page", "body"),
    "marks": ("section", "id", "body"),
    "kv": ("key", "value"),
    "events": ("seq", "kind", "received", "body"),
    "seen": ("key", "expires"),
    "ledger": ("ts",),
    "set_aside": ("seq", "kind", "received", "body", "reason", "at"),
}
# Schemas 1 and 2 stored each snapshot as one JSON body; such a file is moved into rows on opening.
LEGACY_TABLES: Mapping[str, tuple[str, ...]] = {
    "snapshots": ("collector", "fetched_at", "confirmed_at", "total", "body"),
}
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS snapshot_info ("
    " collector TEXT PRIMARY KEY, fetched_at REAL, confirmed_at REAL, total INTEGER, pages TEXT)",
    "CREATE TABLE IF NOT EXISTS objects ("
    " collector TEXT, id TEXT, page INTEGER, body TEXT, PRIMARY KEY (collector, id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS marks ("
    " section TEXT, id TEXT, body TEXT, PRIMARY KEY (section, id)) WITHOUT ROWID",
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
# 1 (user_version 0): no owner rows, no set_aside table; 2: snapshots and webhook state as one
# JSON body each; 3: one row per object and per webhook mark
SCHEMA_VERSION = 3
SET_ASIDE_KEEP = 1000  # the newest set-aside events kept for inspection
OWNER_KEYS = ("owner_account_sid", "owner_base_url")
# SQLite's page cache, in KiB (a negative cache_size): bounded whatever the file's size
CACHE_KIB = 2048
WAL_KEEP_BYTES = 8 * 1024 * 1024  # the write-ahead log is cut back to this after a checkpoint
# sqlite3 error names that mean the file's content is broken (rather than the file unusable)
BROKEN = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
# tables that hold an account's data (the request ledger is the API application's)
ACCOUNT_TABLES = ("snapshot_info", "objects", "marks", "events", "seen", "set_aside", "kv")


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
class Skipped:
    """Stored rows that did not read back: each cost only itself (an object, or a mark)."""

    what: str  # the collector, or "webhook <section>"
    count: int
    problem: str  # the first one's


@dataclass(frozen=True, slots=True)
class Loaded:
    snapshots: list[Snapshot]
    webhooks: WebhookState
    events: list[tuple[int, str, bytes]]  # committed but not yet folded into `webhooks`
    ledger: list[float]
    skipped: list[Skipped] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Binding:
    """What opening the file for an owner found: fresh, same, adopted (a file of the previous
    version, which recorded no owner) or discarded (another account's data was dropped)."""

    outcome: str
    previous: Owner | None = None
    ledger_kept: bool = True


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
        for table in ACCOUNT_TABLES + (() if kept else ("ledger",)):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 - table names are ours
        binding = Binding("discarded", previous, kept)
    conn.executemany(
        "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
        zip(OWNER_KEYS, (owner.account_sid, owner.base_url), strict=True),
    )
    return binding


# ---- snapshots and webhook marks, row by row ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpointed:
    """One section of webhook marks as the file holds it: a copy of the section taken when it
    was written, and which state and change counter it was taken from."""

    state: WebhookState
    version: int
    marks: Mapping[str, Any]


MarkRow = tuple[str, str | bytes, str]  # section, id (rows.row_id), body
ChangedMark = tuple[str, str, object]  # section, id, the mark (immutable: serialised off the loop)
# Sections whose changed marks a checkpoint may write before the transaction that records which
# events they fold in: replaying a HetrixTools chunk replaces its monitors whole, so after a crash
# in between, the replay writes over them what they already hold. (Other marks are merged with
# the events replayed over them, cert_changes counts them, so they are written in that
# transaction.) They are written AHEAD_SLICE marks per transaction, each its own task on the state
# file's thread: a webhook committed meanwhile waits for one slice, not for the thousands of
# marks (about 4 KB each) that a burst of HetrixTools chunks leaves to checkpoint.
AHEAD_SECTIONS = frozenset({"hetrix"})
AHEAD_SLICE = 500
DELETE_SLICE_BYTES = 4 * 1024 * 1024  # of folded events' bodies deleted per transaction


@dataclass(slots=True)
class _Taken:
    """What a checkpoint writes, taken from the webhook state at one instant."""

    scalars: str
    last_seq: int
    ahead: list[ChangedMark] = field(default_factory=list)  # AHEAD_SECTIONS' changed marks
    changed: list[ChangedMark] = field(default_factory=list)  # the others'
    gone: list[tuple[str, str | bytes]] = field(default_factory=list)
    whole: list[str] = field(default_factory=list)  # sections rewritten whole
    marks: dict[str, Checkpointed] = field(default_factory=dict)  # the new base, once written


def _write_snapshot(
    conn: sqlite3.Connection, old: Written | None, snapshot: Snapshot, changed: Collection[str] | None
) -> Written:
    """Inside a transaction: the rows that differ from `old` (all of them without it), and the
    snapshot's metadata."""
    new, upserts, gone, whole = rows.plan_write(old, snapshot, changed)
    if whole:
        conn.execute("DELETE FROM objects WHERE collector = ?", (snapshot.collector,))
    conn.executemany(
        "INSERT OR REPLACE INTO objects (collector, id, page, body) VALUES (?, ?, ?, ?)", upserts
    )
    conn.executemany("DELETE FROM objects WHERE collector = ? AND id = ?", gone)
    if old is not None and new.pages == old.pages:  # a refresh at a known page time, a probe
        conn.execute(
            "UPDATE snapshot_info SET fetched_at = ?, confirmed_at = ?, total = ? WHERE collector = ?",
            (snapshot.fetched_at, snapshot.confirmed_at, snapshot.total, snapshot.collector),
        )
    else:
        conn.execute(
            "INSERT OR REPLACE INTO snapshot_info (collector, fetched_at, confirmed_at, total, pages) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                snapshot.collector,
                snapshot.fetched_at,
                snapshot.confirmed_at,
                snapshot.total,
                json.dumps(new.pages),
            ),
        )
    return new


def _changed_marks(section: str, marks: Mapping[str, Any], before: Mapping[str, Any]) -> list[ChangedMark]:
    """The marks of `section` that are not the very objects of `before` (marks are replaced,
    never changed in place, so identity tells what changed)."""
    return [(section, key, mark) for key, mark in marks.items() if before.get(key) is not mark]


def _mark_rows(changed: Iterable[ChangedMark]) -> list[MarkRow]:
    return [
        (section, rows.row_id(key), json.dumps(WebhookState.mark_json(mark)))
        for section, key, mark in changed
    ]


def _migrate(conn: sqlite3.Connection) -> list[Skipped]:
    """Inside the opening transaction, a file of schema 1 or 2 moved into rows: each snapshot
    body into object rows (one that cannot be read is left out: it costs its collector, and the
    next poll fetches it again), the webhook state's marks into mark rows."""
    skipped = []
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "snapshots" in tables:
        for row in conn.execute("SELECT collector, fetched_at, confirmed_at, total, body FROM snapshots"):
            try:
                snapshot, bad = rows.decode_legacy(*row)
            except ValueError as err:
                skipped.append(Skipped(str(row[0])[:40], 1, f"its stored snapshot: {err}"))
                continue
            _write_snapshot(conn, None, snapshot, None)
            if bad:
                skipped.append(Skipped(snapshot.collector[:40], bad, "stored items that do not read"))
        conn.execute("DROP TABLE snapshots")
    stored = conn.execute("SELECT value FROM kv WHERE key = 'webhooks'").fetchone()
    try:
        data = rows.json_value(stored[0]) if stored else None
    except ValueError:
        return skipped  # left as found: loading it refuses the file, naming it
    if isinstance(data, dict):
        state = WebhookState.from_json(data)
        for section, (_, marks) in state.sections().items():
            conn.executemany(
                "INSERT OR REPLACE INTO marks (section, id, body) VALUES (?, ?, ?)",
                _mark_rows(_changed_marks(section, marks, {})),
            )
        conn.execute("UPDATE kv SET value = ? WHERE key = 'webhooks'", (json.dumps(state.scalars_json()),))
    return skipped


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
        # what the file holds, to write only what changed: per collector, the snapshot last
        # written (none: rewrite all its rows); per webhook section, the marks last checkpointed
        self._written: dict[str, Written] = {}
        self._marks: dict[str, Checkpointed] = {}

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
            existed, version = self._inspect(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable against a crash of the process
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_KEEP_BYTES}")
            conn.execute("BEGIN IMMEDIATE")  # fails here if the file cannot be written
            for statement in SCHEMA:
                conn.execute(statement)
            migrated = _migrate(conn) if existed and version < SCHEMA_VERSION else []
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            binding = _bind(conn, owner, existed)
            self._conn = conn
            loaded = None
            if now is not None:
                loaded, self._written, self._marks = self._read(now)
                loaded.skipped[:0] = migrated
            conn.execute("COMMIT")
        except BaseException as err:
            self._conn = None
            conn.close()  # rolls back
            if isinstance(err, sqlite3.Error):
                raise self._failed(err) from err
            raise
        return binding, loaded

    def _inspect(self, conn: sqlite3.Connection) -> tuple[bool, int]:
        """Whether the file holds our tables already, and its schema version; StateUnreadable if
        it is broken, foreign or newer."""
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
        known = {**TABLES, **(LEGACY_TABLES if version < SCHEMA_VERSION else {})}
        foreign = sorted(tables - set(known))
        if app_id not in (0, APPLICATION_ID) or foreign:
            shown = ", ".join(repr(t[:40]) for t in foreign[:5])
            raise StateUnreadable(
                self.path,
                "not a generatorlabs-exporter state file"
                + (f" (it has other tables: {shown})" if foreign else ""),
            )
        for table in tables:
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            missing = [c for c in known[table] if c not in columns]
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
        return bool(tables), version

    async def open(self, owner: Owner | None = None) -> Binding:
        """Lock, check and open the file (creating it), and bind it to `owner`, without loading
        it. Kept for bench/webhooks.py only; the exporter and the tests use `start`."""
        opened: tuple[Binding, None] = await self._run(self._open, owner, None)
        self._log(opened[0], owner)
        return opened[0]

    async def _start(self, owner: Owner | None, now: float) -> Loaded:
        opened: tuple[Binding, Loaded] = await self._run(self._open, owner, now)
        self._log(opened[0], owner)
        for skipped in opened[1].skipped:
            log.warning(
                "state.rows_skipped",
                path=self.path,
                of=skipped.what,
                count=skipped.count,
                problem=skipped.problem,
            )
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
            return self._read(now)[0]
        except sqlite3.Error as err:
            raise self._failed(err) from err

    def _read(self, now: float) -> tuple[Loaded, dict[str, Written], dict[str, Checkpointed]]:
        """Everything stored, and what the file holds (to write only changes from now on)."""
        c = self.conn
        snapshots, written, skipped = self._read_snapshots()
        webhooks, marks, bad_marks = self._read_webhooks()
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
        return Loaded(snapshots, webhooks, events, ledger, skipped + bad_marks), written, marks

    def _read_snapshots(self) -> tuple[list[Snapshot], dict[str, Written], list[Skipped]]:
        """Each known collector's snapshot; a row that does not read back costs only itself (a
        collector whose metadata does not, costs the collector), and is reported in Skipped."""
        snapshots, written, skipped = [], {}, []
        for name, fetched_at, confirmed_at, total, pages_text in self.conn.execute(
            "SELECT collector, fetched_at, confirmed_at, total, pages FROM snapshot_info"
        ).fetchall():
            if name not in COLLECTORS:
                continue  # a collector this version does not know
            try:
                fetched, confirmed = rows.check_times(fetched_at, confirmed_at, total)
                pages = rows.decode_pages(pages_text)
            except ValueError as err:
                skipped.append(Skipped(name, 1, f"its stored snapshot: {err}"))
                continue
            items, times, bad = self._read_objects(name, pages)
            snapshot = Snapshot(name, items, fetched, confirmed, total, times)
            snapshots.append(snapshot)
            if bad is None:
                written[name] = Written.of(snapshot, pages)
            else:  # rows it could not read stay in the file: its next write replaces them all
                skipped.append(bad)
        return snapshots, written, skipped

    def _read_objects(
        self, name: str, pages: tuple[float, ...]
    ) -> tuple[dict[str, Any], dict[str, float], Skipped | None]:
        items: dict[str, Any] = {}
        times: dict[str, float] = {}
        count, problem = 0, ""
        for ident, page, body in self.conn.execute(
            "SELECT id, page, body FROM objects WHERE collector = ?", (name,)
        ):
            try:
                found = rows.decode_object(name, ident, page, body, len(pages))
            except ValueError as err:
                count, problem = count + 1, problem or str(err)
                continue
            items[found.id] = found
            if page is not None:
                times[found.id] = pages[page]  # one float per page, shared
        return items, times, (Skipped(name, count, problem) if count else None)

    def _read_webhooks(self) -> tuple[WebhookState, dict[str, Checkpointed], list[Skipped]]:
        row = self.conn.execute("SELECT value FROM kv WHERE key = 'webhooks'").fetchone()
        try:
            webhooks = (
                WebhookState.from_json(json.loads(row[0], parse_constant=rows.no_constant))
                if row
                else WebhookState()
            )
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:
            raise StateUnreadable(
                self.path, f"the stored webhook state is unusable ({type(err).__name__})"
            ) from err
        bad: dict[str, list[str]] = {}
        known = webhooks.sections()
        for section, ident, body in self.conn.execute("SELECT section, id, body FROM marks"):
            if section not in known:
                continue  # a section this version does not know
            try:
                key = rows.id_of(ident)
                if not isinstance(key, str):
                    raise ValueError("its id is not text")
                if not webhooks.load_mark(str(section), key, rows.json_value(body)):
                    raise ValueError("it does not read back as a mark")
            except ValueError as err:
                bad.setdefault(str(section)[:40], []).append(str(err))
        marks = {
            section: Checkpointed(webhooks, version, dict(held))
            for section, (version, held) in webhooks.sections().items()
            if section not in bad  # unread rows stay in the file: the next checkpoint replaces them
        }
        skipped = [Skipped(f"webhook {s}", len(problems), problems[0]) for s, problems in bad.items()]
        return webhooks, marks, skipped

    async def load(self, now: float) -> Loaded:
        """Everything stored, as a restart would load it (rows that do not read back left out,
        in `skipped`), or StateUnreadable when the webhook state cannot be used."""
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

    def _write_ahead(self, changed: list[ChangedMark]) -> None:
        """Marks of AHEAD_SECTIONS written before their checkpoint, in a transaction of their own."""
        marks = _mark_rows(changed)
        c = self.conn
        c.execute("BEGIN")
        try:
            c.executemany("INSERT OR REPLACE INTO marks (section, id, body) VALUES (?, ?, ?)", marks)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _checkpoint(
        self, scalars: str, changed: list[ChangedMark], gone: list[tuple[str, str | bytes]], whole: list[str]
    ) -> None:
        marks = _mark_rows(changed)  # here, on the state file's thread, not on the event loop
        c = self.conn
        c.execute("BEGIN")
        try:
            c.execute("INSERT OR REPLACE INTO kv (key, value) VALUES ('webhooks', ?)", (scalars,))
            c.executemany("DELETE FROM marks WHERE section = ?", [(s,) for s in whole])
            c.executemany("INSERT OR REPLACE INTO marks (section, id, body) VALUES (?, ?, ?)", marks)
            c.executemany("DELETE FROM marks WHERE section = ? AND id = ?", gone)
            c.execute("COMMIT")
        except BaseException:  # never leave the connection inside a transaction (disk full, busy)
            c.execute("ROLLBACK")
            raise

    def _folded_cuts(self, last_seq: int) -> list[int]:
        """Sequence numbers that cut the events folded in (at most `last_seq`) into runs of
        about DELETE_SLICE_BYTES each, in order; the last is `last_seq`."""
        cuts, size = [], 0
        for seq, length in self.conn.execute(
            "SELECT seq, length(body) FROM events WHERE seq <= ? ORDER BY seq", (last_seq,)
        ):
            size += length or 0
            if size >= DELETE_SLICE_BYTES:
                cuts.append(seq)
                size = 0
        return [*cuts, last_seq]

    def _forget_folded(self, upto: int, now: float | None) -> None:
        """The events folded in up to `upto` (never replayed again: their sequence is at most
        the stored last_seq); with `now`, also the expired replay keys and the ledger's past hour."""
        c = self.conn
        c.execute("BEGIN")
        try:
            c.execute("DELETE FROM events WHERE seq <= ?", (upto,))
            if now is not None:
                c.execute("DELETE FROM seen WHERE expires < ?", (now,))
                c.execute("DELETE FROM ledger WHERE ts <= ?", (now - HOURLY_WINDOW,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def checkpoint(self, state: WebhookState, now: float) -> Coroutine[Any, Any, None]:
        """Fold applied events into the stored webhook state and forget what has expired. Only
        the marks that changed since the last checkpoint are written (compared by identity: a
        mark is replaced, never changed in place), and those gone are deleted.

        What is written is taken from `state` when this is called, not when the coroutine it
        returns first runs: a caller that starts it as a task and goes on applying events
        checkpoints exactly the events applied (and the set-aside ones settled) before the call.

        Nothing but the small scalars is serialised on the event loop: marks are immutable, so
        they are turned into JSON on the state file's thread. The work is split into short
        transactions, each a task of its own, so that webhooks committed meanwhile are not held
        up for long: the marks of AHEAD_SECTIONS in slices first, then the scalars with the other
        marks (what a restart replays from), then the events folded in, DELETE_SLICE_BYTES of
        them at a time (a HetrixTools chunk is about 512 KB)."""
        return self._write_checkpoint(self._take(state), now)

    def _take(self, state: WebhookState) -> _Taken:
        taken = _Taken(json.dumps(state.scalars_json()), state.last_seq)  # they change in place
        for section, (version, held) in state.sections().items():
            before = self._marks.get(section)
            if before is not None and before.state is state and before.version == version:
                continue
            if before is None:
                taken.whole.append(section)  # rewritten whole, in the checkpoint's own transaction
            old = before.marks if before is not None else {}
            ahead = before is not None and section in AHEAD_SECTIONS
            (taken.ahead if ahead else taken.changed).extend(_changed_marks(section, held, old))
            taken.gone += [(section, rows.row_id(key)) for key in old if key not in held]
            taken.marks[section] = Checkpointed(state, version, dict(held))
        return taken

    async def _write_checkpoint(self, taken: _Taken, now: float) -> None:
        ahead = taken.ahead
        try:
            for start in range(0, len(ahead), AHEAD_SLICE):
                await self._run(self._write_ahead, ahead[start : start + AHEAD_SLICE])
            await self._run(self._checkpoint, taken.scalars, taken.changed, taken.gone, taken.whole)
        except BaseException:
            # Some marks written ahead may be in the file, but what it holds is no longer known:
            # a mark new in this checkpoint and gone before the next would be in neither its
            # changes nor its deletions, and come back at a restart. The next checkpoint
            # rewrites those sections whole.
            for section in {section for section, _, _ in ahead}:
                self._marks.pop(section, None)
            raise
        self._marks.update(taken.marks)
        cuts: list[int] = await self._run(self._folded_cuts, taken.last_seq)
        for i, upto in enumerate(cuts):
            await self._run(self._forget_folded, upto, now if i == len(cuts) - 1 else None)

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

    def _save_snapshot(self, snapshot: Snapshot, changed: Collection[str] | None) -> None:
        c, name = self.conn, snapshot.collector
        old = self._written.pop(name, None)  # until this commits, the file's rows are not known
        c.execute("BEGIN")
        try:
            written = _write_snapshot(c, old, snapshot, changed)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        self._written[name] = written

    async def save_snapshot(self, snapshot: Snapshot, changed: Collection[str] | None = None) -> None:
        """Write `snapshot` over the collector's stored one: only the object rows that differ
        (records compared by equality, and their page), those gone deleted. `changed`, when
        given, holds every id that may differ (a targeted refresh: one row)."""
        await self._run(self._save_snapshot, snapshot, changed)

    async def confirm(self, collector: str, confirmed_at: float) -> None:
        await self._run(
            self.conn.execute,
            "UPDATE snapshot_info SET confirmed_at = ? WHERE collector = ?",
            (confirmed_at, collector),
        )

    def _drop(self, collector: str) -> None:
        c = self.conn
        self._written.pop(collector, None)
        c.execute("BEGIN")
        try:
            c.execute("DELETE FROM snapshot_info WHERE collector = ?", (collector,))
            c.execute("DELETE FROM objects WHERE collector = ?", (collector,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    async def drop(self, collector: str) -> None:
        await self._run(self._drop, collector)

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
