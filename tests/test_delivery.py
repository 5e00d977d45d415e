"""Will the vendor's own alerts reach anyone? The parsers of profiles, contacts and contact groups
under hostile values, what the alert-delivery series are computed from, their lines, and the
simulator serving certificate profiles. (The three alerts are tested by promtool in
deploy/prometheus/alerts_test.yaml, run by tests/test_rules.py.)"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.api.records import ALERT_FLAGS, FIELDS, FREQUENCIES, Item, field_report, parse_item
from exporter.demo.simulator.account import GROUP_ID, ONCALL_ID, Account
from exporter.demo.simulator.api import SimulatedApi
from exporter.metrics import contract, delivery
from exporter.metrics.contract import MetricSpec
from exporter.metrics.delivery import GroupRow, GroupTable, group_rows, object_counts, reachable
from exporter.metrics.lines import Body, RenderStats, each
from exporter.state.snapshot import Snapshot
from tests.helpers.rig import SID, TOKEN
from tests.helpers.status import host, monitor

T0 = 1_790_000_000.0
AUTH_SIM = (SID, TOKEN)
# values no field of an API object should ever turn into data
HOSTILE: tuple[object, ...] = (
    math.nan,
    math.inf,
    -math.inf,
    1e400,
    "NaN",
    "Infinity",
    "\ud800",
    "x\udcff",
    [],
    {},
    [1, 2],
    {"a": 1},
    "maybe",
    -1,
    10**400,
)


class Warnings(list[tuple[str, str, str]]):
    def __call__(self, obj: str, field: str, detail: str) -> None:
        self.append((obj, field, detail))


def item(obj: str, raw: dict[str, Any]) -> tuple[Item, Warnings]:
    warn = Warnings()
    parsed = parse_item(obj, {"id": "X1", **raw}, warn)
    assert parsed is not None
    return parsed, warn


# -- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "seconds"), [*FREQUENCIES.items(), ("6 Hours", 21600.0), ("2-weeks", 1209600.0)]
)
def test_every_documented_frequency_is_a_check_interval_in_seconds(frequency: str, seconds: float) -> None:
    profile, warn = item("profile", {"name": "p", "frequency": frequency, "is_default": "1"})
    assert (profile.interval, profile.default, warn) == (seconds, True, [])


@pytest.mark.parametrize("value", [*HOSTILE, "hourly", "1_day", 3600, "3600", True])
def test_an_unknown_frequency_gives_no_interval_and_one_warning(value: object) -> None:
    """A number is refused too: nothing says whether it counts seconds, minutes or hours."""
    profile, warn = item("profile", {"name": "p", "frequency": value})
    assert profile.interval is None and profile.name == "p"
    assert [(o, f) for o, f, _ in warn] == [("profile", "frequency")]


@pytest.mark.parametrize(
    ("raw", "confirmed"),
    [
        ({"status": "pending"}, False),
        ({"status": "Unconfirmed"}, False),
        ({"status": "unverified"}, False),
        ({"status": "active"}, True),
        ({"status": "paused"}, True),
        ({"status": "confirmed"}, True),
        ({"status": "pending", "confirmed": 1}, True),  # a boolean key wins over the status
        ({"status": "active", "authorized": "false"}, False),
        ({"verified": True}, True),
        ({"status": "active", "confirmed": "maybe"}, True),  # an unreadable key: the status decides
    ],
)
def test_a_contact_is_confirmed_by_its_status_or_a_boolean_key(raw: dict[str, Any], confirmed: bool) -> None:
    contact, _ = item("contact", {"contact": "ops@example.com", **raw})
    assert contact.confirmed is confirmed


@pytest.mark.parametrize("status", [*HOSTILE, "archived", None])
def test_an_unknown_contact_status_is_not_a_confirmation_and_warns(status: object) -> None:
    contact, warn = item("contact", {"status": status, "contact_group": "CG1"})
    assert contact.confirmed is None and contact.contact_group == ",CG1,"
    assert [(o, f) for o, f, _ in warn] == [("contact", "status")]


def test_a_paused_contact_stays_paused_and_confirmed() -> None:
    contact, warn = item("contact", {"status": "paused"})
    assert (contact.paused, contact.confirmed, warn) == (True, True, [])


@pytest.mark.parametrize("status", ["disabled", "Inactive", "suspended"])
def test_a_contact_paused_by_another_word_is_paused_of_unknown_confirmation_without_a_warning(
    status: str,
) -> None:
    """Words _paused reads as paused but that do not say whether the contact ever confirmed:
    no confirmed series (not a guess) and no warning on every poll."""
    contact, warn = item("contact", {"status": status})
    assert (contact.paused, contact.confirmed, warn) == (True, None, [])


def test_no_contact_address_is_kept_or_warned_about() -> None:
    secret = "ops-secret@example.com"
    contact, warn = item("contact", {"contact": secret, "status": math.nan, "args": {"api_key": secret}})
    assert secret not in repr(contact) and secret not in repr(warn)


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ("CO2,CO1", ("CO1", "CO2")),
        (["CO1", {"id": "CO2"}, 7], ("7", "CO1", "CO2")),
        ("", ()),
        ([], ()),
    ],
)
def test_a_group_keeps_its_default_flag_and_its_contact_ids(
    members: object, expected: tuple[str, ...]
) -> None:
    group, warn = item("contact_group", {"name": "Ops", "is_default": 1, "contacts": members})
    assert (group.default, group.members, warn) == (True, expected, [])


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_group_field_costs_only_that_field(value: object) -> None:
    group, warn = item("contact_group", {"name": "Ops", "is_default": value, "contacts": value})
    assert group.name == "Ops" and group.default in (None, True, False)
    assert group.members is None or all(type(m) is str for m in group.members)
    if group.default is None and value not in ([], {}):
        assert ("contact_group", "is_default") in [(o, f) for o, f, _ in warn]


def test_a_certificate_profile_reads_its_thresholds_and_switches() -> None:
    raw = {
        "name": "Public Profile (Default)",
        "expiration_thresholds": "30,14,7",
        "alert_on_expiration": True,
        "alert_on_name_mismatch": "1",
        "alert_on_ca_failure": 1,
        "alert_on_connection_failure": "true",
        "alert_on_caa_failure": False,
        "alert_on_misconfigurations": 0,
        "is_default": "true",
    }
    profile, warn = item("cert_profile", raw)
    assert warn == []
    assert (profile.name, profile.warning_days, profile.default) == ("Public Profile (Default)", 30.0, True)
    assert profile.alerts_on == ("expiration", "name_mismatch", "ca_failure", "connection_failure")
    assert profile.alerts_off == ("caa_failure", "misconfigurations")  # `changes` was not sent: unknown


@pytest.mark.parametrize(
    ("thresholds", "days"), [([30, 14, 7], 30.0), ("7, 45 ,14", 45.0), (21, 21.0), ("", None)]
)
def test_the_earliest_warning_is_the_largest_threshold(thresholds: object, days: float | None) -> None:
    profile, warn = item("cert_profile", {"expiration_thresholds": thresholds})
    assert (profile.warning_days, warn) == (days, [])


@pytest.mark.parametrize(
    "value",
    [
        *(math.nan, math.inf, 1e400, "NaN", "Infinity", "\ud800", {}, {"a": 1}, "maybe", -1, 10**400),
        *("30,x,7", [30, None], [30, -1], "99999", [[30]], True),
    ],
)
def test_a_hostile_threshold_costs_only_that_field(value: object) -> None:
    profile, warn = item("cert_profile", {"name": "p", "expiration_thresholds": value, "alert_on_changes": 1})
    assert (profile.name, profile.warning_days, profile.alerts_on) == ("p", None, ("changes",))
    assert [(o, f) for o, f, _ in warn] == [("cert_profile", "expiration_thresholds")]


@pytest.mark.parametrize("value", [math.nan, math.inf, "NaN", "\ud800", [], {}, [1], {"a": 1}, "maybe", "2"])
def test_a_hostile_alert_switch_gives_no_series_and_one_warning(value: object) -> None:
    raw = {"name": "p", **{f"alert_on_{f}": value for f in ALERT_FLAGS}, "alert_on_changes": "false"}
    profile, warn = item("cert_profile", raw)
    assert (profile.alerts_on, profile.alerts_off) == ((), ("changes",))
    assert sorted(f for _, f, _ in warn) == sorted(f"alert_on_{f}" for f in ALERT_FLAGS if f != "changes")


def test_the_field_report_knows_every_new_field() -> None:
    account = Account(3, 3, T0)
    for obj, collection in (
        ("cert_profile", "cert_profiles"),
        ("profile", "profiles"),
        ("contact", "contacts"),
        ("contact_group", "groups"),
    ):
        keys = {k for raw in account.collection(collection) for k in raw}
        report = field_report(obj, keys)
        assert report.unknown == (), (obj, report.unknown)
        assert set(report.missing) <= {"type", "status"}, (obj, report.missing)  # inventory has none
        assert len(report.found) + len(report.missing) == len(FIELDS[obj])


# -- what the group series are computed from ------------------------------------------------------


def contact(ident: str, groups: str = "", *, confirmed: bool | None = True, paused: bool = False) -> Item:
    return Item(ident, "", "email", paused, contact_group=groups, confirmed=confirmed)


def group(ident: str, *, default: bool | None = False, members: tuple[str, ...] = ()) -> Item:
    return Item(ident, f"group {ident}", "", False, default=default, members=members)


def snap(collector: str, *records: Any) -> Snapshot:
    return Snapshot(collector, {r.id: r for r in records}, T0, T0)


def test_reachable_contacts_are_confirmed_and_not_paused() -> None:
    contacts = {
        "CO1": contact("CO1"),
        "CO2": contact("CO2", confirmed=False),
        "CO3": contact("CO3", paused=True),
        "CO4": contact("CO4", confirmed=None, paused=True),
        "CO5": contact("CO5", confirmed=None),
    }
    assert reachable(["CO1", "CO2", "CO3"], contacts) == 1
    assert reachable(["CO2", "CO3", "CO4"], contacts) == 0  # paused: unreachable whatever its status
    assert reachable(["CO2", "CO5"], contacts) is None  # perhaps CO5: the exporter does not guess
    assert reachable(["CO1", "CO5"], contacts) == 1
    assert reachable(["CO2", "CO9"], contacts) is None  # a member the contacts list does not hold
    assert reachable([], contacts) == 0


def test_membership_joins_each_contacts_groups_with_each_groups_contacts() -> None:
    contacts = snap(
        "contacts", contact("CO1", ",CG1,CG2,"), contact("CO2", ",CG2,", paused=True), contact("CO3")
    )
    groups = snap("contact_groups", group("CG1"), group("CG2", members=("CO3",)), group("CG3", default=True))
    rows = group_rows(groups, contacts, {"CG1": 4})
    assert {k: (r.reachable, r.objects) for k, r in rows.items()} == {
        "CG1": (1, 4),
        "CG2": (2, 0),  # CO1 by its own list, CO3 by the group's; CO2 is paused
        "CG3": (0, 0),
    }
    assert rows["CG3"].group.default is True


def test_a_group_that_does_not_say_who_is_in_it_and_no_contact_names_is_unknown() -> None:
    """A groups list without membership (no `contacts` key) and contacts that name other groups:
    the exporter cannot tell whether CG1 reaches anyone, so it exports no count (the alert stays
    silent); a group that lists nobody (`"contacts": []`) reaches nobody."""
    silent, _ = item("contact_group", {"id": "CG1", "name": "Ops"})
    empty, _ = item("contact_group", {"id": "CG2", "name": "Empty", "contacts": []})
    blank, _ = item("contact_group", {"id": "CG3", "name": "Blank", "contacts": ""})
    assert (silent.members, empty.members, blank.members) == (None, (), ())
    named, _ = item("contact_group", {"id": "CG4", "name": "Named"})
    contacts = snap("contacts", contact("CO1", ",CG4,"))
    rows = group_rows(snap("contact_groups", silent, empty, blank, named), contacts, {"CG1": 5})
    assert {k: r.reachable for k, r in rows.items()} == {"CG1": None, "CG2": 0, "CG3": 0, "CG4": 1}


def test_without_contacts_or_objects_data_the_counts_are_unknown() -> None:
    groups = snap("contact_groups", group("CG1"))
    assert group_rows(groups, None, None) == {"CG1": GroupRow(groups.items["CG1"], None, None)}
    assert group_rows(None, snap("contacts", contact("CO1", ",CG1,")), {"CG1": 1}) == {}


def test_objects_count_the_hosts_and_monitors_that_name_a_group() -> None:
    hosts = snap(
        "rbl_hosts",
        replace(host("HT1"), contact_group=",CG1,CG2,"),
        replace(host("HT2"), contact_group=",CG1,"),
        replace(host("HT3", listed=True, rbls=("zen",)), contact_group=",CG1,"),
        host("HT4"),
    )
    monitors = snap("cert_monitors", replace(monitor("CM1", 10), contact_group=",CG2,"), monitor("CM2", None))
    assert object_counts([hosts, monitors]) == {"CG1": 3, "CG2": 2}


def test_the_table_keeps_its_rows_while_the_inputs_are_the_same_snapshots() -> None:
    groups = snap("contact_groups", group("CG1"))
    contacts = snap("contacts", contact("CO1", ",CG1,"))
    hosts = snap("rbl_hosts", replace(host("HT1"), contact_group=",CG1,"))
    table = GroupTable()
    first = table.rows(groups, contacts, hosts, None)
    assert table.rows(groups, contacts, hosts, None) is first
    moved = table.rows(groups, snap("contacts", contact("CO1", ",CG1,", confirmed=False)), hosts, None)
    assert moved is not first and moved["CG1"] == GroupRow(groups.items["CG1"], 0, 1)
    assert table.rows(groups, contacts, None, None)["CG1"].objects is None


# -- the lines -----------------------------------------------------------------------------------


def rendered(
    specs: Sequence[MetricSpec], kind: str, objs: Sequence[Any], body: Body[Any]
) -> dict[str, list[Any]]:
    """The samples of `body` over `objs`, as prometheus_client's parser reads them, by family."""
    lines, _, kept = each(RenderStats(), kind, objs, len(specs), body)
    assert len(kept) == len(objs)
    text = "".join(
        f"# TYPE {s.name} gauge\n" + "".join(family) for s, family in zip(specs, lines, strict=True)
    )
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def values(samples: list[Any], label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in samples}


def test_profile_lines_carry_the_interval_where_the_frequency_is_known() -> None:
    specs = (contract.RBL_PROFILE_INFO, contract.RBL_PROFILE_CHECK_INTERVAL_SECONDS)
    profiles = [replace(group("RP1"), interval=21600.0), group("RP2")]
    out = rendered(specs, "profile", profiles, delivery.rbl_profile_lines)
    assert values(out["generatorlabs_rbl_profile_check_interval_seconds"], "profile_id") == {"RP1": 21600.0}
    assert len(out["generatorlabs_rbl_profile_info"]) == 2


def test_contact_lines_say_confirmed_only_where_known_and_never_an_address() -> None:
    specs = (contract.CONTACT_INFO, contract.CONTACT_PAUSED, contract.CONTACT_CONFIRMED)
    contacts = [contact("CO1"), contact("CO2", confirmed=False), contact("CO3", confirmed=None)]
    out = rendered(specs, "contact", contacts, delivery.contact_lines)
    assert values(out["generatorlabs_contact_confirmed"], "contact_id") == {"CO1": 1.0, "CO2": 0.0}
    assert len(out["generatorlabs_contact_paused"]) == 3


def test_group_lines_write_each_known_value() -> None:
    specs = (
        contract.CONTACT_GROUP_INFO,
        contract.CONTACT_GROUP_DEFAULT,
        contract.CONTACT_GROUP_REACHABLE_CONTACTS,
        contract.CONTACT_GROUP_OBJECTS,
    )
    rows = [
        GroupRow(group("CG1", default=True), 0, 12),
        GroupRow(group("CG2", default=None), None, None),
        GroupRow(group('CG"3\n'), 2, 0),
    ]
    out = rendered(specs, "contact_group", rows, delivery.group_lines)
    assert values(out["generatorlabs_contact_group_default"], "group_id") == {"CG1": 1.0, 'CG"3\n': 0.0}
    assert values(out["generatorlabs_contact_group_reachable_contacts"], "group_id") == {
        "CG1": 0.0,
        'CG"3\n': 2.0,
    }
    assert values(out["generatorlabs_contact_group_objects"], "group_id") == {"CG1": 12.0, 'CG"3\n': 0.0}
    assert len(out["generatorlabs_contact_group_info"]) == 3


def test_certificate_profile_lines_name_only_the_fixed_alert_kinds() -> None:
    specs = (
        contract.CERT_PROFILE_INFO,
        contract.CERT_PROFILE_EXPIRY_WARNING_DAYS,
        contract.CERT_PROFILE_ALERT_ENABLED,
    )
    hostile = replace(group("CP2"), alerts_on=("expiration", 'x"}\n', "bogus"), alerts_off=("changes",))
    profiles = [
        replace(group("CP1"), warning_days=30.0, alerts_on=ALERT_FLAGS[:3], alerts_off=ALERT_FLAGS[3:]),
        hostile,
    ]
    out = rendered(specs, "cert_profile", profiles, delivery.cert_profile_lines)
    alerts = out["generatorlabs_cert_profile_alert_enabled"]
    assert {s.labels["alert"] for s in alerts} == set(ALERT_FLAGS)
    assert {
        (s.labels["profile_id"], s.labels["alert"]): s.value
        for s in alerts
        if s.labels["profile_id"] == "CP2"
    } == {
        ("CP2", "expiration"): 1.0,
        ("CP2", "changes"): 0.0,
    }
    assert values(out["generatorlabs_cert_profile_expiry_warning_days"], "profile_id") == {"CP1": 30.0}
    assert {s.labels["name"] for s in out["generatorlabs_cert_profile_info"]} == {"group CP1", "group CP2"}


# -- the simulator -------------------------------------------------------------------------------


def sim_get(path: str, **query: str) -> dict[str, Any]:
    from exporter.api.transport import basic_auth

    api = SimulatedApi(Account(30, 20, T0), SID, TOKEN)
    response = api.handle("GET", path, query, basic_auth(SID, TOKEN), T0)
    assert response.status == 200
    body: dict[str, Any] = json.loads(response.body)
    return body


def test_the_simulator_serves_certificate_profiles_paged_like_the_other_lists() -> None:
    first = sim_get("cert/profiles.json", page="1", page_size="1")
    assert (first["status_message"], first["total"], first["total_pages"], len(first["data"])) == (
        "Certificate Profiles",
        2,
        2,
        1,
    )
    second = sim_get("cert/profiles.json", page="2", page_size="1")
    warn = Warnings()
    parsed = [parse_item("cert_profile", raw, warn) for raw in first["data"] + second["data"]]
    assert warn == []
    assert [(p.default, p.warning_days) for p in parsed if p is not None] == [(True, 30.0), (False, 60.0)]


def test_the_simulated_account_has_a_used_group_that_reaches_nobody() -> None:
    """The demo shows the problem: the on-call group's only contact is pending."""
    account = Account(30, 20, T0)
    warn = Warnings()
    contacts = snap("contacts", *(parse_item("contact", r, warn) for r in account.collection("contacts")))
    groups = snap(
        "contact_groups", *(parse_item("contact_group", r, warn) for r in account.collection("groups"))
    )
    monitors = [json.dumps(m) for m in account.collection("monitors")]
    used = sum(ONCALL_ID in m for m in monitors)
    assert warn == [] and used == 2
    rows = group_rows(groups, contacts, {ONCALL_ID: used, GROUP_ID: 50})
    assert (rows[ONCALL_ID].reachable, rows[GROUP_ID].reachable, rows[GROUP_ID].group.default) == (0, 1, True)


def test_simulated_hosts_are_checked_within_their_profiles_interval() -> None:
    account = Account(90, 0, T0)
    warn = Warnings()
    intervals = {p["id"]: parse_item("profile", p, warn) for p in account.collection("profiles")}
    assert warn == [] and {i.interval for i in intervals.values() if i is not None} == {
        3600.0,
        21600.0,
        86400.0,
    }
    now = T0
    for _ in range(3 * 24 * 60 // 10):  # three days in steps of ten minutes
        now += 600.0
        account.advance(now)
        late = [
            h.id
            for h in account.hosts.values()
            if not h.paused and now - (h.last_checked or 0.0) > 2 * account.intervals[h.profile]
        ]
        assert late == []
