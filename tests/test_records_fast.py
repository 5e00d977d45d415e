"""The short paths of host parsing against the careful ones: `usual_host` (what parse_host reads
a host of the usual shape with) and `fields.v3_seconds` (the arithmetic reading of v3 dates) give
exactly what the careful readers give, warnings included, for usual and hostile input alike."""

from __future__ import annotations

import json
import math
from datetime import date, time
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from exporter.api import fields
from exporter.api.records import Host, parse_host, parse_host_careful, usual_host
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.faults import HOSTILE_VALUES, RawJson
from tests.helpers.samples import V3_HOST

EXAMPLES = 200  # the most examples a property here may take in the suite
HOST_KEYS = (
    "id",
    "sid",
    "host_id",
    "host",
    "name",
    "type",
    "status",
    "paused",
    "profile",
    "rbl_profile",
    "profile_id",
    "listed",
    "listed_count",
    "total",
    "listings",
    "listed_details",
    "details",
    "last_checked",
    "first_listed",
    "tags",
    "contact_group",
    "contact_groups",
)


class Warnings(list[tuple[str, str, str]]):
    def __call__(self, obj: str, field: str, detail: str) -> None:
        self.append((obj, field, detail))


def shown(host: Host | None) -> str:
    """A host with the types of its values (repr tells 1 from 1.0 and True; == does not)."""
    return repr(host)


# -- strategies -------------------------------------------------------------------------------


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` three times in four, `odd` otherwise (one_of picks its branches evenly)."""
    return usual | usual | usual | odd


ZONES = tuple(fields.TZ_OFFSETS_HOURS)
v3_dates = st.builds(
    "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format,
    mostly(st.integers(1, 9999), st.sampled_from([0, 1969, 1970, 2999, 3000])),
    mostly(st.integers(1, 12), st.sampled_from([0, 13])),
    mostly(st.integers(1, 28), st.sampled_from([0, 29, 30, 31, 32])),
    mostly(st.just(" "), st.sampled_from(["T", "  ", "\t"])),
    mostly(st.integers(0, 23), st.sampled_from([24, 99])),
    mostly(st.integers(0, 59), st.sampled_from([60, 99])),
    mostly(st.integers(0, 59), st.sampled_from([60, 61])),
    mostly(st.just(""), st.just(".5")),
    mostly(
        st.sampled_from(ZONES).map(" {}".format), st.sampled_from(["", " est", " XYZ", " +05:30", " EST "])
    ),
)
odd_dates = st.sampled_from(
    [
        "2016-11-07 21:01:33 EST",
        "\uff12\uff10\uff11\uff16-11-07 21:01:33 EST",  # full-width digits
        "2016-11-07 21:01:3\uff13 EST",
        "2016-11-07 2l:01:33 EST",
        "+016-11-07 21:01:33 EST",
        "2016-1-07 21:01:33 EST",
        "2016-11-07 21:01:33 ESTX",
        "2016-11-07 21:01:33 Z",
        "0000-00-00 00:00:00 EST",
        "0001-01-01 00:00:00 JST",
        "1969-12-31 23:59:59 EST",
        "3000-01-01 05:00:01 EST",
        "2016-11-07",
        "2016-11-07T21:01:33Z",
        "1478570493",
        "",
        " ",
    ]
)
dates = mostly(v3_dates, odd_dates | st.integers(-10, 10**13) | st.floats() | st.none())
texts = st.text(max_size=12) | st.sampled_from(["", " ", "\ud800", "lone \udfff", " x ", "a,b", ", ,"])
hostile = st.sampled_from([v for v in HOSTILE_VALUES if not isinstance(v, RawJson)])
wild = hostile | texts | dates | st.integers() | st.booleans() | st.none() | st.lists(texts, max_size=3)
rbl_names = mostly(st.sampled_from(["Spamhaus ZEN", "SpamCop", " PSBL ", "URIBL black"]), texts | hostile)
websites = mostly(
    st.sampled_from(["", "https://check.spamhaus.org/", "http://x.example/a b"]),
    texts | hostile | st.sampled_from(["javascript:alert(1)", "//x.example"]),
)
detail = mostly(
    st.fixed_dictionaries({"host": rbl_names, "website": websites, "details": st.just("Listed")}),
    st.fixed_dictionaries({}, optional={"rbl": rbl_names, "name": rbl_names, "host": wild})
    | rbl_names
    | wild,
)
label_sets = mostly(
    st.sampled_from(["", "demo", "web, production", ",,", " CG1 ,CG2", [], ["demo"], ["a,b", " ", "c"]])
    | st.lists(texts, max_size=3),
    st.lists(st.fixed_dictionaries({"id": texts}) | st.integers() | texts, max_size=3) | wild,
)
usual_hosts = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["HTee06c4fa7c23aa8a3a4e8d66922b0834", " HT1 ", "HT2"]),
        "host": st.sampled_from(["198.51.100.7", "mail7.example.com", "10.0.0.0/24", "2001:db8::1", " x "]),
        "type": st.sampled_from(["rbl", "uribl", "ip_range", " RBL ", "", "other"]),
        "status": st.sampled_from(["active", "paused", "Inactive", ""]),
        "listed": st.sampled_from([0, 1, 2, True, False]),
        "listed_count": st.integers(0, 4),
        "listed_details": st.lists(detail, max_size=3),
        "last_checked": dates,
        "first_listed": dates,
    },
    optional={
        "name": st.sampled_from(["mx-000007", "198.51.100.7", " ", "", None]),
        "profile": st.sampled_from(["RP1", "", " ", None, " RP2 "]),
        "rbl_profile": st.sampled_from(["RP3", "", None]),
        "tags": label_sets,
        "contact_group": label_sets,
        "contact_groups": label_sets,
        "parent": st.just(""),
    },
)
host_dicts = st.builds(
    lambda base, spoil, drop: {k: v for k, v in {**base, **spoil}.items() if k not in drop},
    usual_hosts,
    mostly(st.just({}), st.dictionaries(st.sampled_from(HOST_KEYS), wild, max_size=2)),
    mostly(st.just(set()), st.sets(st.sampled_from(HOST_KEYS), max_size=2)),
)


def assert_read_alike(raw: dict[str, Any]) -> Host | None:
    """parse_host reads `raw` as parse_host_careful does, with the same warnings; usual_host
    answers only for a host with nothing to warn about. Returns usual_host's answer."""
    careful_warnings, warnings = Warnings(), Warnings()
    careful = parse_host_careful(raw, careful_warnings)
    assert shown(parse_host(raw, warnings)) == shown(careful)
    assert warnings == careful_warnings
    short = usual_host(raw)
    if short is not None:
        assert shown(short) == shown(careful)
        assert careful_warnings == []
    return short


# -- hosts ------------------------------------------------------------------------------------


@settings(max_examples=EXAMPLES)
@given(host_dicts)
def test_parse_host_reads_every_host_as_the_careful_path_does(raw: dict[str, Any]) -> None:
    assert_read_alike(raw)


def simulator_hosts() -> list[dict[str, Any]]:
    """A simulated account's hosts, listed ones included, as they arrive: decoded JSON."""
    account = Account(hosts=400, monitors=1, now=1_790_000_000.0, listed_fraction=0.3)
    return [json.loads(json.dumps(h)) for h in account.collection("hosts")]


def listed_host() -> dict[str, Any]:
    """A listed simulated host whose first RBL has a delisting page."""
    return next(h for h in simulator_hosts() if h["listed_details"] and h["listed_details"][0]["website"])


def test_usual_hosts_take_the_short_path_with_the_same_result() -> None:
    hosts = simulator_hosts()
    assert sum(1 for h in hosts if h["listed"]) > 50
    for raw in hosts:
        assert assert_read_alike(raw) is not None, raw


# Single changes to a usual host: each is read alike (short path or careful one).
CORNERS: list[dict[str, Any]] = [
    {"contact_group": [], "contact_groups": "CG1"},
    {"contact_group": "", "contact_groups": "CG1,CG2"},
    {"contact_group": None, "contact_groups": ["CG2", " CG1"]},
    {"contact_group": {}, "contact_groups": "CG1"},
    {"tags": ["a,b", " ", "c", ""]},
    {"tags": [1, "a"]},
    {"tags": ()},
    {"name": " "},
    {"name": " mx-1 "},
    {"name": 7},
    {"type": " RBL "},
    {"type": "Subnet", "host": "mail.example.com"},
    {"type": 1},
    {"type": None, "host": "198.51.100.7"},
    {"profile": " ", "rbl_profile": "RP3"},
    {"profile": "", "rbl_profile": "RP3"},
    {"profile": None, "rbl_profile": "", "profile_id": "RP4"},
    {"profile": 5},
    {"profile": " RP2 "},
    {"rbl_profile": " RP2 ", "profile": None},
    {"listed_details": ""},
    {"listed_details": None, "details": [{"host": "SpamCop"}]},
    {"listed_details": [{"host": " PSBL ", "website": "https://psbl.example/"}]},
    {"listed_details": [{"host": " ", "rbl": "PSBL"}]},
    {"listed_details": [{"host": "PSBL", "website": 0}, {"host": "PSBL", "website": "https://a.example/"}]},
    {"listed_details": ["PSBL"]},
    {"listed_details": [], "listed": 1, "listed_count": 0},
    {"listed": "1"},
    {"listed": 1.0},
    {"listed": 2},
    {"listed_count": True},
    {"listed_count": -1},
    {"listed_count": 10**10},
    {"listed_count": None, "total": "3"},
    {"first_listed": ["2016-11-06 10:14:58 EST"]},
    {"first_listed": True},
    {"first_listed": "", "listed": 1},
    {"last_checked": 0},
    {"last_checked": 1_478_570_493.5},
    {"last_checked": math.inf},
    {"last_checked": False},
    {"last_checked": "2016-11-07 24:00:00 EST"},
    {"status": 1},
    {"status": "Paused"},
    {"status": []},
    {"status": " paused"},
    {"paused": 0},
    {"paused": "yes"},
    {"id": " ", "sid": "HT9"},
    {"id": 12},
    {"host": " "},
    {"host": "\ud800"},
]


def test_corner_cases_are_read_alike() -> None:
    base = listed_host()
    for change in CORNERS:
        for listed in (1, 0):
            assert_read_alike({**base, "listed": listed, **change})


def test_the_v3_sample_and_its_v4_spellings_take_the_short_path() -> None:
    v4 = {**V3_HOST, "profile": V3_HOST["rbl_profile"], "tags": "production,web", "listed": True}
    for raw in (V3_HOST, v4):
        assert assert_read_alike(raw) is not None
    assert usual_host({**V3_HOST, "listed": "1"}) is None  # text flags are read carefully...
    assert parse_host({**V3_HOST, "listed": "1"}, Warnings()) == usual_host(V3_HOST)  # ...to the same host


def test_hosts_the_short_path_leaves_are_still_warned_about() -> None:
    spoils: list[dict[str, Any]] = [
        {"listed_count": math.nan},
        {"last_checked": "2024-13-45 10:00:00 EST"},
        {"tags": {}},
    ]
    for spoil in spoils:
        raw = {**listed_host(), **spoil}
        warnings = Warnings()
        assert usual_host(raw) is None
        assert parse_host(raw, warnings) is not None
        assert [field for _, field, _ in warnings] == list(spoil)


# -- dates ------------------------------------------------------------------------------------


@settings(max_examples=EXAMPLES)
@given(v3_dates | odd_dates | texts)
@example("2026-01-01 24:00:00 EST")
@example("2026-01-01 23:60:00 EST")
@example("2026-01-01 23:59:60 EST")
@example("2026-02-29 12:00:00 EST")
@example("2024-02-29 12:00:00 IST")
@example("2026-00-10 12:00:00 EST")
@example("2026-01-00 12:00:00 EST")
@example("0000-01-01 12:00:00 EST")
@example("2026-01-01 12:00:00 Z")
@example("2026-01-01 12:00:00 est")
@example("2026-01-01 +2:00:00 EST")
@example("2026-01-01 1_:00:00 EST")
@example("2026-01-01 12:00:00 ESTZ")
def test_v3_dates_read_by_arithmetic_as_the_careful_reading_does(text: str) -> None:
    seconds = fields.v3_seconds(text)
    if seconds is not None:
        assert repr(seconds) == repr(fields.date_text_seconds(text, text))


@given(
    st.dates(min_value=date(1, 1, 2), max_value=date(9999, 12, 30)),
    st.times(),
    st.sampled_from([z for z in fields.TZ_OFFSETS_HOURS if z != "Z"]),
)
def test_every_v3_date_takes_the_arithmetic_reading(day: date, clock: time, zone: str) -> None:
    text = f"{day.isoformat()} {clock:%H:%M:%S} {zone}"
    seconds = fields.v3_seconds(text)
    assert seconds is not None
    assert repr(seconds) == repr(fields.date_text_seconds(text, text))
