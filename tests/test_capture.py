"""`generatorlabs-exporter capture`: what it sends (within the budget, the ledger and the API's
rate limits), what it writes (anonymised, nothing identifying), and that its files replay
through the exporter's parsers; and the field summary the scheduler logs once per collector."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.api.endpoints import ENDPOINTS
from exporter.api.envelope import RawResponse
from exporter.api.records import FIELDS
from exporter.capture import replay
from exporter.capture.anonymise import Anonymiser
from exporter.capture.run import MAX_REQUESTS, MAX_WAIT, Capturer, planned
from exporter.cli import main
from exporter.demo.simulator.account import GROUP_ID, RBL_WEBSITES, RBLS, Account
from exporter.demo.simulator.api import SimulatedApi
from exporter.demo.simulator.transport import SimulatorTransport
from exporter.demo.wiring import DEMO_SID
from exporter.polling.ledger import Ledger
from exporter.polling.scheduler import OBJECTS, Transport
from exporter.state.sqlite import StateDB
from tests.helpers import VALUE
from tests.helpers.rig import SID, TOKEN, FakeClock, Rig

FIXTURES = Path(__file__).parent / "fixtures" / "captures"
SALT = b"test salt"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No credentials from the machine running the tests; structlog as it was (the CLI configures
    logging)."""
    for name in [n for n in os.environ if n.startswith(("GENERATORLABS_", "HETRIXTOOLS_"))]:
        monkeypatch.delenv(name)
    yield
    structlog.reset_defaults()


def identifying(account: Account) -> set[str]:
    """Everything in a simulated account that names it or its customers."""
    found = {DEMO_SID, GROUP_ID, "Operations", "example.com", *RBLS}
    found |= {v for h in account.hosts.values() for v in (h.id, h.host, h.name)}
    found |= {v for m in account.monitors.values() for v in (m.id, m.name, m.hostname)}
    found |= {*account.profile_ids, *account.cert_profile_ids}
    found |= set(RBL_WEBSITES.values())
    for name in ("profiles", "cert_profiles", "sources", "contacts", "groups"):
        for item in account.collection(name):
            found |= {str(item[k]) for k in ("id", "name", "contact") if k in item}
    return found


def sids(text: str) -> set[str]:
    return set(re.findall(r"[A-Z]{2}[0-9a-fA-F]{32}", text))


# --- the real command against the built-in simulator ---------------------------------------


@pytest.fixture(scope="module")
def demo_capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str]:
    """`capture --demo` run once for this module: its exit code, what it printed, the file."""
    output = tmp_path_factory.mktemp("capture") / "capture.json"
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()) as printed:
        for name in [n for n in os.environ if n.startswith(("GENERATORLABS_", "HETRIXTOOLS_"))]:
            patch.delenv(name)
        code = main(["capture", "--demo", "--output", str(output)])
    structlog.reset_defaults()
    return code, printed.getvalue(), output.read_text() if output.exists() else ""


def test_capture_demo_leaves_nothing_identifying_and_replays_like_the_original(
    demo_capture: tuple[int, str, str],
) -> None:
    code, printed, text = demo_capture
    assert code == 0 and "13 answers to 13 requests" in printed
    demo_account = Account(120, 30, 0.0, seed=42)  # the demo's account: its ids and names are the seed's
    survivors = sorted(v for v in identifying(demo_account) if v in text)
    assert survivors == []
    assert sids(text).isdisjoint(identifying(demo_account))
    document = replay.load(text)
    assert replay.problems(document) == []
    replayed = {(e["collector"], e["kind"]): replay.replay(e) for e in document["exchanges"]}
    hosts = replayed[("rbl_hosts", "page")]
    assert hosts is not None and hosts.objects == hosts.parsed == 100  # page 1 of 120 hosts
    monitors = replayed[("cert_monitors", "page")]
    assert monitors is not None and monitors.parsed == 30
    assert {kind for _, kind in replayed} == {"page", "count", "object"}


def test_the_capture_file_keeps_rate_limit_headers_and_the_structure(
    demo_capture: tuple[int, str, str],
) -> None:
    document = replay.load(demo_capture[2])
    first = document["exchanges"][0]
    assert first["status"] == 200 and first["params"] == {"page": "1", "page_size": "100"}
    assert set(first["headers"]) >= {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
    hosts = next(e for e in document["exchanges"] if e["collector"] == "rbl_hosts")
    host = hosts["body"]["data"][0]
    assert host["type"] in ("rbl", "uribl") and host["status"] in ("active", "paused")
    assert isinstance(host["listed"], int) and isinstance(host["listed_details"], list)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d EST", host["last_checked"])
    assert hosts["fields"]["missing"] == [] and hosts["fields"]["unknown"] == []


# --- the budget ------------------------------------------------------------------------------


def write_config(tmp_path: Path, state: Path, per_hour: int) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"api:\n  base_url: http://127.0.0.1:9/4.0\nbudget:\n  requests_per_hour: {per_hour}\n"
        f"state:\n  path: {state}\n"
    )
    return config


async def fill_ledger(state: Path, sends: list[float]) -> None:
    db = StateDB(str(state))
    await db.start(None, max(sends))
    await db.record_sends(sends)
    await db.close()


async def ledger_of(state: Path, now: float) -> list[float]:
    db = StateDB(str(state))
    loaded = await db.start(None, now)
    await db.close()
    return loaded.ledger


def test_capture_refuses_when_the_state_files_ledger_says_the_hour_is_spent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.sqlite"
    now = time.time()
    asyncio.run(fill_ledger(state, [now - 60.0 * i for i in range(10)]))
    monkeypatch.setenv("GENERATORLABS_ACCOUNT_SID", SID)
    monkeypatch.setenv("GENERATORLABS_AUTH_TOKEN", TOKEN)
    config = write_config(tmp_path, state, per_hour=10)
    output = tmp_path / "capture.json"
    assert main(["capture", "--config.file", str(config), "--output", str(output)]) == 1
    assert "budget is spent (10 of 10 requests in the last hour" in capsys.readouterr().err
    assert not output.exists()
    assert len(asyncio.run(ledger_of(state, now))) == 10  # nothing was sent


def test_capture_without_credentials_is_a_config_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["capture", "--output", str(tmp_path / "c.json")]) == 2
    assert "GENERATORLABS_ACCOUNT_SID" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_capture_that_reaches_no_api_fails_and_counts_its_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.sqlite"
    now = time.time()
    asyncio.run(fill_ledger(state, [now - 120.0]))
    monkeypatch.setenv("GENERATORLABS_ACCOUNT_SID", SID)
    monkeypatch.setenv("GENERATORLABS_AUTH_TOKEN", TOKEN)
    config = write_config(tmp_path, state, per_hour=10)  # port 9 on loopback: refused
    output = tmp_path / "capture.json"
    assert main(["capture", "--config.file", str(config), "--output", str(output)]) == 1
    assert "stopped early (network)" in capsys.readouterr().err
    document = replay.load(output.read_text())
    assert [e["status"] for e in document["exchanges"]] == [None]  # one try, then it stopped
    assert len(asyncio.run(ledger_of(state, now + 1))) == 2  # the state file counts it
    assert SID not in output.read_text() and TOKEN not in output.read_text()


class Scripted:
    """A transport answering from the simulator, except where `answers` says otherwise; it
    counts what was sent."""

    def __init__(self, inner: Transport, answers: Mapping[int, RawResponse]) -> None:
        self.inner, self.answers, self.sent = inner, answers, 0

    async def get(self, path: str, params: Mapping[str, str]) -> RawResponse:
        self.sent += 1
        if self.sent in self.answers:
            return self.answers[self.sent]
        return await self.inner.get(path, params)


def capturer(
    clock: FakeClock, answers: Mapping[int, RawResponse], **kwargs: Any
) -> tuple[Capturer, Scripted]:
    api = SimulatedApi(Account(150, 10, clock.now, seed=3), SID, TOKEN)
    transport = Scripted(SimulatorTransport(api, clock, SID, TOKEN), answers)
    ledger = kwargs.pop("ledger", None) or Ledger(900, 5.0)
    return Capturer(transport, ledger, clock, Anonymiser(SALT), **kwargs), transport


async def test_a_capture_sends_each_endpoint_once_and_never_more_than_its_limit(clock: FakeClock) -> None:
    journal: list[float] = []

    async def record(at: float) -> None:
        journal.append(at)

    full, transport = capturer(clock, {}, journal=record)
    await full.run(100)
    assert transport.sent == full.sent == len(planned(100)) + 2 <= MAX_REQUESTS
    assert journal == sorted(journal) and len(journal) == transport.sent  # every send on file first
    assert full.stopped is None
    short, transport = capturer(clock, {}, limit=3)
    await short.run(100)
    assert transport.sent == 3 and short.stopped == "request_limit"


async def test_a_429_ends_the_capture_and_is_recorded_with_its_headers(clock: FakeClock) -> None:
    busy = RawResponse(429, {"Retry-After": "120"}, b'{"status_code": 429, "status_message": "Too Many"}')
    run, transport = capturer(clock, {2: busy})
    await run.run(100)
    assert transport.sent == 2 and run.stopped == "rate_limited"
    last = run.exchanges[-1]
    assert last["status"] == 429 and last["headers"] == {"Retry-After": "120"}
    assert last["original"]["error"] == "rate_limited"
    assert run.ledger.next_allowed(clock.now) >= clock.now + 119  # the ledger holds off too


async def test_the_apis_remaining_zero_stops_the_capture_instead_of_waiting(clock: FakeClock) -> None:
    empty = RawResponse(
        200,
        {"RateLimit-Limit": "1000;w=3600", "RateLimit-Remaining": "0", "RateLimit-Reset": "900"},
        b'{"status_code": 200, "data": [], "total": 0}',
    )
    started = clock.now
    run, transport = capturer(clock, {1: empty})
    await run.run(100)
    assert transport.sent == 1 and run.stopped == "budget"
    assert clock.now < started + MAX_WAIT  # it did not sit out the reset


# --- anonymising -------------------------------------------------------------------------------


def test_anonymising_keeps_types_and_replaces_addresses_with_their_kind() -> None:
    host_id, group = "HT" + "ab12" * 8, "CG" + "9" * 32
    body = {
        "status_code": 200,
        "status_message": "OK",
        "data": [
            {
                "id": host_id,
                "host": "203.0.113.77",
                "name": "mail.customer-one.com",
                "type": "uribl",
                "status": "active",
                "contact_group": f"{group},{host_id}",
                "listed": 1,
                "paused": False,
                "parent": None,
                "last_checked": "2016-11-07 21:01:33 EST",
                "listed_details": [{"host": "Private RBL", "website": "https://rbl.customer-one.com/x?y"}],
            },
            {
                "id": host_id,
                "host": "mail.customer-one.com:25",
                "range": "2a00:1450::/32",
                "net": "10.1.2.0/24",
            },
            {"contact": "Jane.Doe@Customer-One.com", "phone": "+44 20 7946 0958", "notes": "call Jane"},
        ],
    }
    out = Anonymiser(SALT).body(body)
    assert isinstance(out, dict) and out["status_code"] == 200 and out["status_message"] == "OK"
    first, second, third = out["data"]
    assert first["id"] == second["id"] != host_id and re.fullmatch(r"HT[0-9a-f]{32}", first["id"])
    assert first["contact_group"].split(",")[1] == first["id"]  # the same id, the same hash
    assert first["host"] == "192.0.2.1" and first["name"] == "host-1.example.net"
    assert second["host"] == "host-1.example.net:25"  # the same domain, the same placeholder
    assert second["range"] == "2001:db8::1/32" and second["net"] == "192.0.2.2/24"
    assert (first["type"], first["status"], first["listed"], first["paused"]) == ("uribl", "active", 1, False)
    assert first["parent"] is None and first["last_checked"] == "2016-11-07 21:01:33 EST"
    detail = first["listed_details"][0]
    assert len(detail["host"]) == len("Private RBL") and "Private" not in detail["host"]
    assert detail["website"] == "https://host-2.example.net/"
    assert third["contact"] == "user-1@example.net" and third["phone"] == "+15550100001"
    assert len(third["notes"]) == len("call Jane") and "Jane" not in json.dumps(out)


def test_an_enumeration_field_still_loses_an_address_or_a_sentence() -> None:
    out = Anonymiser(SALT).body({"data": [{"type": "mx.customer.com", "status": "paused by Jane"}]})
    assert out == {"data": [{"type": "host-1.example.net", "status": "text-1xxxxxxxx"}]}


# one spelling of every field a parser reads, with the collector whose objects carry it
READ_FIELDS = [
    (collector, spelling)
    for collector, obj in OBJECTS.items()
    for _, spellings in FIELDS[obj]
    for spelling in spellings
]
BASE_OBJECTS = {
    "host": {"id": "HT" + "1" * 32, "host": "192.0.2.9"},
    "monitor": {"id": "CM" + "2" * 32, "hostname": "mx.customer.com", "not_after": "2030-01-01"},
    "cert_error": {"id": "CE" + "3" * 32, "monitor_id": "CM" + "2" * 32, "error_type": "expiration"},
}


@settings(max_examples=400, deadline=None)
@given(field=st.sampled_from(READ_FIELDS), value=VALUE, other=VALUE)
def test_anonymising_never_costs_an_object_or_adds_a_parse_warning(
    field: tuple[str, str], value: Any, other: Any
) -> None:
    collector, spelling = field
    obj = dict(BASE_OBJECTS.get(OBJECTS[collector], {"id": "RP" + "4" * 32}))
    obj.update({spelling: value, "name": other})
    body = {"status_code": 200, "data": [obj, other]}
    raw = RawResponse(200, {}, json.dumps(body).encode())
    path = ENDPOINTS[collector].path
    before = replay.outcome(collector, "page", path, raw, 0.0)
    anonymised = RawResponse(200, {}, json.dumps(Anonymiser(SALT).body(body)).encode())
    after = replay.outcome(collector, "page", path, anonymised, 0.0)
    assert (after.objects, after.parsed, after.error) == (before.objects, before.parsed, before.error)
    assert set(after.warnings) <= set(before.warnings)


# --- replaying captures: the committed ones and any a user drops in ---------------------------


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.name)
def test_every_capture_in_the_fixtures_replays_like_the_original(path: Path) -> None:
    document = replay.load(path.read_text())
    assert replay.problems(document) == []
    replayed = [r for e in document["exchanges"] if (r := replay.replay(e)) is not None]
    assert sum(r.parsed for r in replayed) > 0


def test_the_committed_demo_capture_names_nothing_of_the_demo_account() -> None:
    text = (FIXTURES / "demo-simulator.json").read_text()  # `capture --demo`, api.page_size 20
    demo_account = Account(120, 30, 0.0, seed=42)
    assert sorted(v for v in identifying(demo_account) if v in text) == []
    assert replay.load(text)["requests"] == 13


def test_replaying_notices_a_parser_that_reads_less_than_the_original() -> None:
    document = replay.load((sorted(FIXTURES.glob("*.json"))[0]).read_text())
    hosts = next(e for e in document["exchanges"] if e["collector"] == "rbl_hosts" and e["kind"] == "page")
    for item in hosts["body"]["data"]:
        del item["id"]  # what a renamed id field would do
    assert any("rbl/hosts.json" in p for p in replay.problems(document))


# --- the field summary at the first successful poll --------------------------------------------


def renaming(old: str, new: str) -> Callable[[Transport], Transport]:
    """A transport wrapper renaming a field in every certificate monitor the API sends."""

    class Renaming:
        def __init__(self, inner: Transport) -> None:
            self.inner = inner

        async def get(self, path: str, params: Mapping[str, str]) -> RawResponse:
            response = await self.inner.get(path, params)
            if not path.startswith("cert/monitors"):
                return response
            body = json.loads(response.body)
            for item in body.get("data") or ():
                item[new] = item.pop(old, None)
            return RawResponse(response.status, response.headers, json.dumps(body).encode())

    return Renaming


async def test_the_first_successful_poll_logs_a_field_summary_once_per_collector(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(hosts=250, monitors=12, wrap=renaming("expiration_date", "ssl_valid_thru"))
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(7200)
    summaries = [e for e in logs if e["event"] == "poll.fields"]
    by_collector = {e["collector"]: e for e in summaries}
    assert len(summaries) == len(by_collector)  # once each, though hosts span 3 pages and many runs
    runs = [e for e in logs if e["event"] == "poll.ok" and e["collector"] == "rbl_hosts" and not e["probe"]]
    assert len(runs) >= 2 and max(e["pages"] for e in runs) == 3
    hosts = by_collector["rbl_hosts"]
    assert hosts["objects"] == 250 and hosts["missing"] == [] and hosts["unknown"] == []
    assert "listed_details" in hosts["found"]
    monitors = by_collector["cert_monitors"]
    assert "not_after" in monitors["missing"] and monitors["unknown"] == ["ssl_valid_thru"]
    assert "not_after" not in monitors["found"]


def test_numbers_that_identify_are_replaced_and_counts_and_times_kept() -> None:
    """An IPv4 address or an account number sent as a JSON number is replaced like its text form;
    counts, ports, booleans and epoch times keep their values."""
    body = {
        "data": [
            {
                "ip": 3232235777,
                "account": 987654321,
                "port": 25,
                "listed": 1,
                "paused": True,
                "date_added": 1700000000,
            }
        ]
    }
    item = Anonymiser(SALT).body(body)["data"][0]  # type: ignore[index]
    assert item["ip"] != 3232235777 and isinstance(item["ip"], int) and len(str(item["ip"])) == 10
    assert item["account"] != 987654321 and isinstance(item["account"], int)
    assert (item["port"], item["listed"], item["paused"], item["date_added"]) == (25, 1, True, 1700000000)


def test_the_field_report_never_names_a_key_that_is_an_address_or_an_id() -> None:
    sid = "HT" + "c" * 32
    report = replay.fields_of("rbl_hosts", {"data": [{"id": sid, sid: 1, "mail.example.org": 2, "novel": 3}]})
    assert report is not None and report["unknown"] == ["novel"]
