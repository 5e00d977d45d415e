"""Defensive parsing of API objects: every field variant public samples show (the v4.0 reference, the
v3 SDK READMEs), and the warnings they raise."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.api import fields
from exporter.api.records import (
    ERROR_REASONS,
    error_reason,
    field_report,
    label_set,
    parse_cert_error,
    parse_host,
    parse_item,
    parse_monitor,
)
from tests.helpers.samples import V3_HOST


class Warnings(list[tuple[str, str, str]]):
    def __call__(self, obj: str, field: str, detail: str) -> None:
        self.append((obj, field, detail))


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_real_v3_host_sample_parses_without_warnings() -> None:
    warn = Warnings()
    host = parse_host(V3_HOST, warn)
    assert warn == []
    assert host is not None
    assert host.kind == "domain"
    assert host.profile_id == "RP15d4e891d784977cacbfcbb00c48f133"
    assert host.listed and host.listings == 1 and host.rbls == ("Google Safe Browsing",)
    assert host.last_checked == ts("2016-11-08T02:01:33")  # EST is UTC-5
    assert host.first_listed == ts("2016-11-06T15:14:58")
    assert not host.paused
    assert host.tags == ""  # v3 hosts had no tags
    assert host.contact_group == ",CGd3dca251d33135e0a518d7c49b89dc61,"


@pytest.mark.parametrize("listed", [True, "1", 1, "true"])
def test_listed_as_bool_int_or_string(listed: object) -> None:
    host = parse_host({**V3_HOST, "listed": listed}, Warnings())
    assert host is not None and host.listed


def test_clean_v3_host_with_empty_strings_is_not_listed() -> None:
    raw = {
        **V3_HOST,
        "listed": 0,
        "listed_count": 0,
        "listed_details": [],
        "first_listed": "",
        "listed_period": "",
        "profile": "RPaaaa",
        "rbl_profile": None,
    }
    host = parse_host(raw, Warnings())
    assert host is not None
    assert (host.listed, host.listings, host.rbls, host.first_listed) == (False, 0, (), None)
    assert host.profile_id == "RPaaaa"


def test_missing_listed_flag_is_inferred_from_details() -> None:
    raw = {k: v for k, v in V3_HOST.items() if k not in ("listed", "listed_count")}
    host = parse_host(raw, Warnings())
    assert host is not None and host.listed and host.listings == 1


def test_unreadable_fields_warn_and_keep_the_object() -> None:
    warn = Warnings()
    host = parse_host(
        {**V3_HOST, "last_checked": "yesterday-ish", "listed": "maybe", "listed_details": "Spamhaus"}, warn
    )
    assert host is not None and host.last_checked is None
    assert {f for _, f, _ in warn} == {"last_checked", "listed", "listed_details"}


def test_object_without_id_is_skipped_with_a_warning() -> None:
    warn = Warnings()
    assert parse_host({"host": "1.2.3.4"}, warn) is None
    assert warn[0][:2] == ("host", "id")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ({"type": "rbl", "host": "1.2.3.4"}, "ip"),
        ({"host": "10.0.0.0/24"}, "ip_range"),
        ({"host": "2001:db8::1"}, "ip"),
        ({"host": "example.com"}, "domain"),
        ({"type": "ip_range", "host": "x"}, "ip_range"),
    ],
)
def test_host_kind_is_bounded(raw: dict[str, str], kind: str) -> None:
    host = parse_host({"id": "HT1", **raw}, Warnings())
    assert host is not None and host.kind == kind


def test_paused_hosts() -> None:
    host = parse_host({**V3_HOST, "status": "paused"}, Warnings())
    assert host is not None and host.paused


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T03:04:05Z", ts("2026-01-02T03:04:05")),
        ("2026-01-02T03:04:05+02:00", ts("2026-01-02T01:04:05")),
        ("2026-01-02 03:04:05 PDT", ts("2026-01-02T10:04:05")),
        ("2026-01-02 03:04:05 +0100", ts("2026-01-02T02:04:05")),
        ("2026-01-02", ts("2026-01-02T00:00:00")),
        (1767323045, 1767323045.0),
        (1767323045000, 1767323045.0),
        ("1767323045", 1767323045.0),
        ("", None),
        (None, None),
        ("0000-00-00 00:00:00", None),
    ],
)
def test_dates_in_every_form(value: object, expected: float | None) -> None:
    assert fields.timestamp(value) == expected


def test_unknown_time_zone_is_unreadable() -> None:
    with pytest.raises(fields.Unreadable, match="unknown time zone"):
        fields.timestamp("2026-01-02 03:04:05 XYZT")


def test_monitor_with_an_iso_expiry_date() -> None:
    warn = Warnings()
    monitor = parse_monitor(
        {
            "id": "CM1",
            "name": "shop",
            "hostname": "shop.example.com",
            "protocol": "https",
            "profile": "CP1",
            "status": "active",
            "expiration_date": "2027-01-01T00:00:00+00:00",
        },
        warn,
    )
    assert warn == []
    assert monitor is not None
    assert monitor.port == "443"  # derived from the protocol when absent
    assert monitor.not_after == ts("2027-01-01T00:00:00")


@pytest.mark.parametrize("key", ["not_after", "valid_to", "expires_at", "cert_expiry_date_utc"])
def test_monitor_expiry_under_other_names(key: str) -> None:
    monitor = parse_monitor({"id": "CM1", key: "2027-01-01 00:00:00 UTC"}, Warnings())
    assert monitor is not None and monitor.not_after == ts("2027-01-01T00:00:00")


def test_monitor_with_days_only_and_with_nothing() -> None:
    monitor = parse_monitor({"id": "CM1", "days_remaining": "12"}, Warnings())
    assert monitor is not None and monitor.not_after is None and monitor.expiry_days == 12
    warn = Warnings()
    bare = parse_monitor({"id": "CM2", "port": 8443}, warn)
    assert bare is not None and bare.expiry_days is None and bare.port == "8443"
    assert ("monitor", "not_after", "no expiry date or days field") in warn


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("expiration", "expiration"),
        ("Certificate expired", "expiration"),
        ("name_mismatch", "name_mismatch"),
        ("Hostname mismatch", "name_mismatch"),
        ("ca_verification", "ca_verification"),
        ("untrusted root", "ca_verification"),
        ("chain_integrity", "chain_integrity"),
        ("Missing intermediate", "chain_integrity"),
        ("connection", "connection"),
        ("Connection refused", "connection"),
        ("dns_caa", "dns_caa"),
        ("CAA record missing", "dns_caa"),
        ("invalid certificate", "other"),
        ("something new", "other"),
        (None, "other"),
    ],
)
def test_error_reasons_map_onto_a_bounded_set(text: str | None, reason: str) -> None:
    assert error_reason(text) == reason
    assert reason in {r for r, _ in ERROR_REASONS} | {"other"}


def test_cert_error_monitor_id_in_several_shapes() -> None:
    for raw in (
        {"id": "CE1", "monitor_id": "CM1", "error_type": "connection"},
        {"id": "CE1", "monitor": {"id": "CM1"}, "type": "connection"},
        {"id": "CE1", "monitor": "CM1", "reason": "connection"},
    ):
        error = parse_cert_error(raw, Warnings())
        assert error is not None and (error.monitor_id, error.reason) == ("CM1", "connection")
    warn = Warnings()
    assert parse_cert_error({"id": "CE2"}, warn) is None and warn


def test_contacts_never_carry_their_address() -> None:
    item = parse_item(
        "contact",
        {"id": "CO1", "contact": "ops@example.com", "type": "email", "status": "paused"},
        Warnings(),
    )
    assert item is not None and item.name == "" and item.kind == "email" and item.paused


@pytest.mark.parametrize(
    "count",
    ["Infinity", float("inf"), float("nan"), "1e400", -5, 2**80, 1.5, True, [1], {"n": 1}, "lots", "9" * 400],
)
def test_an_unusable_listed_count_costs_only_that_field(count: object) -> None:
    """Issue 7: `"listed_count": "Infinity"` (or 1e400) crashed every rbl_listings poll. The
    host is now kept, its count taken from its RBL list, and the field is warned once."""
    warn = Warnings()
    host = parse_host({**V3_HOST, "listed_count": count}, warn)
    assert host is not None and host.listed and host.listings == 1
    assert host.rbls == ("Google Safe Browsing",)
    assert [(o, f) for o, f, _ in warn] == [("host", "listed_count")]


def test_a_listing_count_under_another_name_is_warned_under_that_name() -> None:
    raw = {k: v for k, v in V3_HOST.items() if k != "listed_count"} | {"total": "NaN"}
    warn = Warnings()
    host = parse_host(raw, warn)
    assert host is not None and host.listings == 1
    assert [(o, f) for o, f, _ in warn] == [("host", "total")]
    assert parse_host({**raw, "total": "3"}, Warnings()).listings == 3  # type: ignore[union-attr]


def test_an_impossible_date_costs_only_that_field() -> None:
    warn = Warnings()
    host = parse_host({**V3_HOST, "last_checked": "2024-13-45 10:00:00", "first_listed": "9" * 400}, warn)
    assert host is not None and host.last_checked is None and host.first_listed is None
    assert host.listings == 1
    assert {f for _, f, _ in warn} == {"last_checked", "first_listed"}


@pytest.mark.parametrize(
    ("port", "expected", "warned"),
    [
        (8443, "8443", False),
        ("993", "993", False),
        (993.0, "993", False),
        (None, "443", False),
        ("", "443", False),
        (0, "", True),
        (65536, "", True),
        (-443, "", True),
        (443.5, "", True),
        ("NaN", "", True),
        (float("inf"), "", True),
        (True, "", True),
        ([443], "", True),
        ("443/tcp", "", True),
    ],
)
def test_a_port_is_a_whole_number_from_1_to_65535(port: object, expected: str, warned: bool) -> None:
    warn = Warnings()
    monitor = parse_monitor({"id": "CM1", "protocol": "https", "port": port, "not_after": "2027-01-01"}, warn)
    assert monitor is not None and monitor.port == expected
    assert [(o, f) for o, f, _ in warn] == ([("monitor", "port")] if warned else [])


@pytest.mark.parametrize("days", ["NaN", float("inf"), "1e400", True, [3], 2**80])
def test_unusable_expiry_days_cost_only_that_field(days: object) -> None:
    warn = Warnings()
    monitor = parse_monitor({"id": "CM1", "hostname": "a.example", "days_remaining": days}, warn)
    assert monitor is not None and monitor.expiry_days is None and monitor.hostname == "a.example"
    assert ("monitor", "days_remaining") in [(o, f) for o, f, _ in warn]


ODD = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**60)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-1e400",
            "2024-13-45 10:00:00",
            "0000-00-00",
            "9" * 70,
            "\ud800",
            "HT" + "0" * 32,
        ]
    )
)
FIELD_NAMES = st.sampled_from(
    [
        "id",
        "sid",
        "host",
        "name",
        "type",
        "status",
        "paused",
        "listed",
        "listed_count",
        "total",
        "listings",
        "listed_details",
        "details",
        "last_checked",
        "first_listed",
        "profile",
        "port",
        "protocol",
        "hostname",
        "not_after",
        "expiration_date",
        "cert_expiry",
        "expiry_days",
        "days_remaining",
        "certificate",
        "monitor",
        "monitor_id",
        "error_type",
        "contact",
    ]
)
OBJECTS = st.recursive(
    ODD,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(FIELD_NAMES, children, max_size=5),
    max_leaves=15,
)


@given(st.dictionaries(FIELD_NAMES, OBJECTS, max_size=12))
def test_no_parser_raises_on_any_object_and_every_number_is_clean(raw: dict[str, object]) -> None:
    """Whatever an object holds, a parse returns a record or None, never raises, and every
    number in the record is finite and in range."""
    for parse in (parse_host, parse_monitor, parse_cert_error, lambda r, w: parse_item("profile", r, w)):
        record = parse(raw, Warnings())
        if record is None:
            continue
        for value in (getattr(record, name) for name in record.__slots__):
            if isinstance(value, float):
                assert math.isfinite(value)
            if isinstance(value, int) and not isinstance(value, bool):
                assert 0 <= value <= fields.MAX_COUNT
        if hasattr(record, "port") and record.port:
            assert 1 <= int(record.port) <= 65535


def test_label_values_many_objects_share_are_held_once() -> None:
    """Two hosts on one profile and one RBL hold one profile string and one RBL name (parsed from
    distinct copies, as two JSON objects give them), and a host named as itself one string."""
    raw = [
        {
            **V3_HOST,
            "id": f"HT{i:032x}",
            "rbl_profile": "".join(["RP", "15d4e891" * 4]),
            "listed_details": [{"host": "".join(["Google ", "Safe Browsing"])}],
        }
        for i in range(2)
    ]
    first, second = (parse_host(r, Warnings()) for r in raw)
    assert first is not None and second is not None
    assert first.profile_id == second.profile_id and first.profile_id is second.profile_id
    assert first.rbls == ("Google Safe Browsing",) and first.rbls[0] is second.rbls[0]
    assert first.name is first.host
    monitors = [
        parse_monitor({"id": f"CM{i:032x}", "protocol": "".join(["ht", "tps"]), "port": 8443}, Warnings())
        for i in range(2)
    ]
    assert monitors[0] is not None and monitors[1] is not None
    assert monitors[0].protocol is monitors[1].protocol and monitors[0].port is monitors[1].port


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("production,web", ",production,web,"),  # the reference's request form
        (["prod", "mta"], ",mta,prod,"),  # sorted
        ([" prod ", "prod", "", "mta,edge"], ",edge,mta,prod,"),  # trimmed, distinct, split
        ([{"id": "CG2"}, {"name": "CG1"}, 7, None, [], {}], ",7,CG1,CG2,"),
        ("", ""),
        ([], ""),
        (" , ,", ""),
        (None, ""),
    ],
)
def test_tags_and_contact_groups_follow_the_service_discovery_convention(
    value: object, expected: str
) -> None:
    """`,a,b,` so that `tags=~".*,prod,.*"` matches wherever the tag stands; "" for none."""
    assert label_set(value) == expected


def test_tags_and_contact_groups_reach_hosts_monitors_and_contacts() -> None:
    warn = Warnings()
    host = parse_host({**V3_HOST, "tags": "web, production", "contact_group": ["CG2", "CG1"]}, warn)
    monitor = parse_monitor(
        {"id": "CM1", "hostname": "a.example", "expiration_date": "2030-01-01", "tags": ["ssl"]}, warn
    )
    contact = parse_item(
        "contact", {"id": "CO1", "type": "email", "status": "active", "contact_group": "CG1,CG3"}, warn
    )
    assert warn == []
    assert host is not None and host.tags == ",production,web," and host.contact_group == ",CG1,CG2,"
    assert monitor is not None and monitor.tags == ",ssl," and monitor.contact_group == ""
    assert contact is not None and contact.contact_group == ",CG1,CG3,"


def test_unreadable_tags_cost_only_that_field() -> None:
    warn = Warnings()
    host = parse_host({**V3_HOST, "tags": {"team": "mail"}}, warn)
    assert host is not None and host.tags == "" and host.listed
    assert [(obj, field) for obj, field, _ in warn] == [("host", "tags")]


def test_tags_and_contact_groups_are_read_fields_not_unknown_ones() -> None:
    report = field_report("host", ["id", "host", "tags", "contact_group"])
    assert {"tags", "contact_group"} <= set(report.found) and report.unknown == ()
    assert "tags" in field_report("monitor", ["id", "tags"]).found
    assert "contact_group" in field_report("contact", ["id", "contact_group"]).found
