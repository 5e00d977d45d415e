"""The state file belongs to one account and one process, and a broken one never aborts with a
traceback: real exporter processes, and StateDB itself where a process would be slow to set up.

I/O: SQLite files under tmp_path, real exporter processes (tests/helpers/processes.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from exporter.api.records import Host
from exporter.app import open_exporter
from exporter.config.parse import parse
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import SimulatedApi
from exporter.demo.simulator.transport import SimulatorTransport
from exporter.state.events import HetrixMonitor
from exporter.state.overlay import WebhookState
from exporter.state.snapshot import Snapshot
from exporter.state.sqlite import Incoming, Loaded, Owner, StateDB
from tests.helpers.processes import (
    DEADLINE,
    Exporter,
    exporter_env,
    refused,
    start_exporter,
    terminate,
)
from tests.helpers.rig import START, TOKEN, FakeClock
from tests.helpers.schemas import SCHEMA_1

SID_A, SID_B = "AC" + "a" * 32, "AC" + "b" * 32
API = "https://api.generatorlabs.com/4.0"
EVENT_KEY = "TA" + "e" * 32


def hosts(n: int) -> dict[str, Host]:
    made = (
        Host(f"RH{i:032x}", f"192.0.2.{i % 250}", f"host {i}", "ip", "", False, False, 0, (), START, None)
        for i in range(n)
    )
    return {h.id: h for h in made}


def legacy_body(items: dict[str, Host]) -> str:
    """A snapshot as schemas 1 and 2 stored it: one JSON body, each record a list of its fields."""
    rows = [[getattr(h, f) for f in h.__slots__] for h in items.values()]
    return json.dumps({"items": rows, "times": dict.fromkeys(items, START)})


def event(key: str = EVENT_KEY) -> Incoming:
    return Incoming("generatorlabs", (key,), b'{"event_sid": "x"}', START, START + 86400)


async def fill(path: Path, owner: Owner | None, n: int = 3) -> None:
    """A state file as an exporter leaves it: a snapshot, webhook state, an acknowledged event not
    yet folded in (with its replay key) and a request in the hourly ledger."""
    db = StateDB(str(path))
    await db.start(owner, START)
    await db.save_snapshot(Snapshot("rbl_hosts", hosts(n), START, START, n))
    state = WebhookState()
    state.balance = 12.5
    await db.checkpoint(state, START)
    await db.accept([event()])
    await db.record_sends([START])
    await db.close()


async def reopen(path: Path, owner: Owner) -> tuple[Loaded, bool, list[MutableMapping[str, Any]]]:
    """What a start with `owner` loads, whether the stored event is still a replay, the logs."""
    with structlog.testing.capture_logs() as logs:
        db = StateDB(str(path))
        try:
            loaded = await db.start(owner, START + 60)
            replay = (await db.accept([event()]))[0] is None
        finally:
            await db.close()
    return loaded, replay, logs


async def test_the_same_account_gets_all_its_state_back(tmp_path: Path) -> None:
    await fill(tmp_path / "s.sqlite", Owner(SID_A, API))
    loaded, replay, logs = await reopen(tmp_path / "s.sqlite", Owner(SID_A, API))
    assert [len(s.items) for s in loaded.snapshots] == [3]
    assert loaded.webhooks.balance == 12.5 and len(loaded.events) == 1
    assert replay and loaded.ledger == [START]
    assert logs == []


async def test_another_account_starts_afresh_with_one_log_line(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.sqlite"
    await fill(path, Owner(SID_A, API))
    loaded, replay, logs = await reopen(path, Owner(SID_B, API))
    assert loaded.snapshots == [] and loaded.events == [] and loaded.ledger == []
    assert loaded.webhooks.balance is None
    assert not replay  # the other account's replay keys went too
    assert logs == [
        {
            "event": "state.discarded",
            "log_level": "warning",
            "path": str(path),
            "old_account": SID_A,
            "new_account": SID_B,
            "old_base_url": API,
            "new_base_url": API,
            "ledger": "discarded",
        }
    ]
    # and the new account's exporter serves none of the old account's hosts
    api = SimulatedApi(Account(2, 1, clock.now), SID_B, TOKEN)
    config = parse({}).with_credentials(SID_B, TOKEN)
    transport = SimulatorTransport(api, clock, SID_B, TOKEN)
    with structlog.testing.capture_logs():
        async with open_exporter(config, transport, clock, str(path), Owner(SID_B, API)) as exporter:
            assert not exporter.store.has_data


async def test_another_base_url_keeps_only_the_request_ledger(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    await fill(path, Owner(SID_A, API))
    staging = "https://user:pass@staging.example/4.0"
    loaded, replay, logs = await reopen(path, Owner(SID_A, staging))
    assert loaded.snapshots == [] and loaded.events == [] and not replay
    assert loaded.ledger == [START]  # the hourly limit belongs to the API application
    assert [(e["event"], e["ledger"], e["new_base_url"]) for e in logs] == [
        ("state.discarded", "kept", "https://staging.example/4.0")
    ]
    assert "pass" not in repr(logs) and b"pass@" not in path.read_bytes()


async def test_a_file_of_the_previous_version_is_adopted_by_the_first_account(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(SCHEMA_1)
        conn.execute(
            "INSERT INTO snapshots VALUES ('rbl_hosts', ?, ?, 2, ?)",
            (START, START, legacy_body(hosts(2))),
        )
        conn.execute("INSERT INTO seen VALUES (?, ?)", (EVENT_KEY, START + 86400))
    loaded, replay, logs = await reopen(path, Owner(SID_A, API))
    assert [s.items for s in loaded.snapshots] == [hosts(2)] and replay
    assert [dict(s.item_times) for s in loaded.snapshots] == [dict.fromkeys(hosts(2), START)]
    assert [(e["event"], e["account"]) for e in logs] == [("state.adopted", SID_A)]
    _, _, logs = await reopen(path, Owner(SID_B, API))  # from now on it is SID_A's
    assert [(e["event"], e["old_account"]) for e in logs] == [("state.discarded", SID_A)]


async def test_a_set_aside_event_is_never_replayed(tmp_path: Path, clock: FakeClock) -> None:
    db = StateDB(str(tmp_path / "s.sqlite"), clock.time)
    await db.start(Owner(SID_A, API), clock.now)
    try:
        first, second = await db.accept([event("TA" + "1" * 32), event("TA" + "2" * 32)])
        assert first is not None and second is not None
        await db.set_aside(first, "total: not a finite number")
        await db.set_aside(12345, "no such event")  # nothing to move: nothing happens
        assert [seq for seq, _, _ in (await db.load(clock.now)).events] == [second]
        row = db.conn.execute("SELECT seq, reason, at FROM set_aside").fetchall()
        assert row == [(first, "total: not a finite number", clock.now)]
        assert (await db.accept([event("TA" + "1" * 32)])) == [None]  # still a replay
    finally:
        await db.close()
    loaded, _, _ = await reopen(tmp_path / "s.sqlite", Owner(SID_A, API))
    assert [seq for seq, _, _ in loaded.events] == [second]


async def test_a_failed_checkpoint_leaves_webhooks_and_the_ledger_writable(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A checkpoint that fails half-way (disk full, a busy file) is rolled back: webhooks are
    still committed and acknowledged afterwards, and the next checkpoint succeeds."""
    db = StateDB(str(tmp_path / "s.sqlite"), clock.time)
    await db.start(Owner(SID_A, API), clock.now)
    try:
        db.conn.execute(
            "CREATE TRIGGER full BEFORE INSERT ON kv WHEN NEW.key = 'webhooks' "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        with pytest.raises(sqlite3.IntegrityError, match="disk full"):
            await db.checkpoint(WebhookState(), clock.now)
        assert (await db.accept([event("TA" + "3" * 32)]))[0] is not None
        await db.record_sends([clock.now])
        db.conn.execute("DROP TRIGGER full")
        await db.checkpoint(WebhookState(), clock.now)
    finally:
        await db.close()
    loaded, _, _ = await reopen(tmp_path / "s.sqlite", Owner(SID_A, API))
    assert loaded.ledger == [clock.now]


# ---- through the real process -----------------------------------------------------------------


def demo_args(tmp_path: Path, state: dict[str, str]) -> list[str]:
    """A demo exporter's arguments, with `state` as its config file's state section."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"state": state}))
    return ["--demo", "--config.file", str(config), "--log.format", "json"]


def start(home: Path, args: list[str], env: dict[str, str] | None = None) -> Exporter:
    """The exporter, once ready; its log is home/exporter.log."""
    home.mkdir(exist_ok=True)
    return start_exporter(home, *args, env=env or exporter_env())


def fails_to_start(tmp_path: Path, state: dict[str, str]) -> str:
    """Run the demo exporter, expecting it to refuse to start: its last line of stderr."""
    home = Path(tempfile.mkdtemp(prefix="refused-", dir=tmp_path))  # a log of its own
    exporter = start_exporter(home, *demo_args(tmp_path, state), env=exporter_env(), ready=False)
    code, stderr = refused(exporter)
    assert code == 1, stderr
    assert "Traceback" not in stderr and "Unclosed" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


def update(path: Path, sql: str) -> None:
    asyncio.run(fill(path, None, n=300))  # several pages, so that a cut loses some
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql)


def truncate(path: Path) -> None:
    asyncio.run(fill(path, None, n=300))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def foreign(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")


# What refuses the whole file. A stored object or webhook mark that does not read back costs only
# itself instead (tests/test_state_rows.py).
BROKEN: dict[str, tuple[Callable[[Path], object], str]] = {
    "garbage": (
        lambda p: p.write_bytes(b"\x00not sqlite\xff" * 400),
        "not a readable SQLite database (file is not a database)",
    ),
    "truncated": (truncate, "not a readable SQLite database (database disk image is malformed)"),
    "foreign schema": (foreign, "not a generatorlabs-exporter state file (it has other tables: 'users')"),
    "bad webhook state": (
        lambda p: update(p, "UPDATE kv SET value = '{\"hosts\": ' WHERE key = 'webhooks'"),
        "the stored webhook state is unusable (JSONDecodeError)",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_state_file_is_refused_in_one_line(tmp_path: Path, case: str) -> None:
    path = tmp_path / "state.sqlite"
    make, problem = BROKEN[case]
    make(path)
    before = path.read_bytes()
    line = fails_to_start(tmp_path, {"path": str(path)})
    assert line == (
        f"generatorlabs-exporter: state file {path}: {problem}; to start fresh, move it "
        "away or set state.if_unreadable: move_aside"
    )
    assert path.read_bytes() == before  # refused, not repaired


def test_move_aside_keeps_the_broken_file_and_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"\x00not sqlite\xff" * 400)
    exporter = start(tmp_path, demo_args(tmp_path, {"path": str(path), "if_unreadable": "move_aside"}))
    terminate(exporter)
    (moved,) = tmp_path.glob("state.sqlite.broken-*")
    assert moved.read_bytes() == b"\x00not sqlite\xff" * 400
    lines = [json.loads(x) for x in exporter.log().splitlines() if '"state.moved_aside"' in x]
    assert [(x["path"], x["moved_to"], x["level"]) for x in lines] == [(str(path), str(moved), "warning")]
    loaded, _, _ = asyncio.run(reopen(path, Owner("AC" + "de30" * 8, "demo://simulator/4.0")))
    assert loaded.snapshots  # the fresh file was written by the run


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` cannot be written, even by root (the tests may run as root: chattr +i)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if (
        chattr is None
        or subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False).returncode
    ):
        pytest.skip("cannot make a path read-only for root here (chattr +i)")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_an_unusable_state_path_is_refused_and_never_moved(tmp_path: Path) -> None:
    asked = {"if_unreadable": "move_aside"}  # moving would not help: never done for these
    directory = tmp_path / "dir.sqlite"
    directory.mkdir()
    line = fails_to_start(tmp_path, {**asked, "path": str(directory)})
    assert line == f"generatorlabs-exporter: state file {directory}: is a directory, not a file"

    written = tmp_path / "written.sqlite"
    asyncio.run(fill(written, None))
    with read_only(written):
        line = fails_to_start(tmp_path, {**asked, "path": str(written)})
    assert line == (
        f"generatorlabs-exporter: state file {written}: cannot be written "
        "(attempt to write a readonly database)"
    )

    locked_dir = tmp_path / "ro"
    locked_dir.mkdir()
    with read_only(locked_dir):
        line = fails_to_start(tmp_path, {**asked, "path": str(locked_dir / "s.sqlite")})
    assert line.startswith(
        f"generatorlabs-exporter: state file {locked_dir / 's.sqlite'}: cannot "
        f"create its lock file {locked_dir / 's.sqlite.lock'} ("
    )
    assert list(tmp_path.glob("*.broken-*")) == []


def test_a_second_process_on_the_same_file_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    first = start(tmp_path / "first", demo_args(tmp_path, {"path": str(path)}))
    try:
        line = fails_to_start(tmp_path, {"path": str(path)})
        assert line == (
            f"generatorlabs-exporter: state file {path}: in use by process {first.process.pid} "
            f"(it holds {path}.lock); one exporter per state file"
        )
        first.process.send_signal(signal.SIGKILL)  # the kernel releases the lock of a crashed process
        first.process.wait(timeout=DEADLINE)
        second = start(tmp_path / "second", demo_args(tmp_path, {"path": str(path)}))
        terminate(second)
    finally:
        if first.process.poll() is None:
            first.process.kill()
            first.process.wait(timeout=DEADLINE)


def test_two_demos_never_share_a_state_file(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = exporter_env(TMPDIR=str(tmp), XDG_STATE_HOME=str(tmp_path / "xdg"))
    demos: list[Exporter] = []
    try:
        for i in range(2):
            demos.append(start(tmp_path / f"demo{i}", ["--demo"], env))
        assert len(list(tmp.glob("generatorlabs-exporter-demo-*/demo.sqlite"))) == 2
    finally:
        for demo in demos:
            terminate(demo)
    assert list(tmp.iterdir()) == []  # each demo removed its own state file
    assert not (tmp_path / "xdg").exists()


async def test_ids_with_lone_surrogates_are_stored_and_read_back(tmp_path: Path) -> None:
    """An API object or a HetrixTools monitor whose id JSON spelled with a lone surrogate
    (`"\\ud800"`, which UTF-8 cannot encode) is written, replaced, deleted and read back like any
    other: before, saving such a snapshot raised in the state file's thread and lost the write."""
    odd = {h.id: h for h in (replace(h, id=h.id + "\ud800") for h in hosts(2).values())}
    plain = hosts(1)
    path = tmp_path / "s.sqlite"
    db = StateDB(str(path))
    await db.start(Owner(SID_A, API), START)
    await db.save_snapshot(Snapshot("rbl_hosts", {**odd, **plain}, START, START, 3))
    first, second = odd
    changed = {second: replace(odd[second], name="renamed \udcff")}
    later = Snapshot("rbl_hosts", {**plain, **changed}, START + 60, START + 60, 2)
    await db.save_snapshot(later)  # one odd host gone, the other changed
    state = WebhookState()
    state.apply_hetrix([HetrixMonitor("mx\ud800", "label \udcff", 1, ("zen",), ("",), "")], START)
    await db.checkpoint(state, START)
    await db.close()
    loaded, _, logs = await reopen(path, Owner(SID_A, API))
    (snapshot,) = loaded.snapshots
    assert snapshot.items == {**plain, **changed} and loaded.skipped == []
    assert list(loaded.webhooks.hetrix) == ["mx\ud800"]
    assert loaded.webhooks.hetrix["mx\ud800"].label == "label \udcff"
    assert first not in snapshot.items and logs == []


async def test_a_mark_row_whose_id_is_not_text_is_skipped_and_named(tmp_path: Path) -> None:
    """A damaged marks row whose id is a BLOB that is not UTF-8 (even with surrogates passed) is
    left out and counted, never read back under a made-up id such as "b'\\xff'"."""
    path = tmp_path / "s.sqlite"
    db = StateDB(str(path))
    await db.start(Owner(SID_A, API), START)
    state = WebhookState()
    state.apply_hetrix([HetrixMonitor("mx1", "label", 1, ("zen",), ("",), "")], START)
    await db.checkpoint(state, START)
    await db.close()
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        (body,) = conn.execute("SELECT body FROM marks WHERE id = 'mx1'").fetchone()
        conn.execute("INSERT INTO marks (section, id, body) VALUES ('hetrix', ?, ?)", (b"\xff", body))
    loaded, _, _ = await reopen(path, Owner(SID_A, API))
    assert list(loaded.webhooks.hetrix) == ["mx1"]
    assert [(s.what, s.count, s.problem) for s in loaded.skipped] == [
        ("webhook hetrix", 1, "its id is not text")
    ]
