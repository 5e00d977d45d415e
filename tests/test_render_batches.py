"""A host's or a monitor's lines do not depend on the objects rendered beside it. The renderer
writes a bucket of hundreds a family at a time and checks its label values for the whole batch
at once; whatever one object of the batch holds (text to escape, cut or replace, a value of a
wrong type, NaN, a huge or fractional time, None), each object gets exactly the lines it gets
when rendered alone, values spelled as `fmt` spells them, and the counts add up."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from exporter.api.records import CertError, Host, Monitor
from exporter.metrics import contract
from exporter.metrics.lines import Freshness, RenderStats, fmt
from exporter.metrics.render import bucket_count, render
from exporter.state.snapshot import Snapshot

NOW = 1_789_999_980.0  # a whole minute: days to expiry are computed at the minute
FRESH = Freshness(NOW, {}, {"rbl_hosts": 1e9, "cert_monitors": 1e9})
BATCH = 300  # one bucket: rendered as one batch
ODD = 150  # the index of the one odd object
# one line for the whole account: rendered together, not the sum of the objects rendered alone
TOTALS = {
    m.name
    for m in (
        contract.RBL_HOSTS,
        contract.RBL_HOSTS_LISTED,
        contract.CERT_MONITORS_WITHOUT_EXPIRY,
        contract.CERT_ERRORS,
    )
}

HOSTS: dict[str, dict[str, Any]] = {
    "quote": {"name": 'mx "a"'},
    "backslash": {"host": "a\\b"},
    "newline in tags": {"tags": ",a\nb,"},
    "not ASCII": {"name": "Montréal"},
    "control character": {"kind": "\x1b[31m"},
    "lone surrogate": {"profile_id": "RP\ud800"},
    "long": {"contact_group": ",CG" * 400 + ","},
    "long but under the limit": {"tags": ",t" * 500 + ","},
    "name of a wrong type": {"name": 7},
    "NaN check time": {"last_checked": float("nan")},
    "huge check time": {"last_checked": 1e16},
    "fractional check time": {"last_checked": NOW - 0.25},
    "negative zero check time": {"last_checked": -0.0},
    "integer check time": {"last_checked": 5},
    "no check time": {"last_checked": None},
    "check time of a wrong type": {"last_checked": "yesterday"},
    "listings of bool": {"listings": True},
    "listings of float": {"listings": 2.0},
    "listed": {"listed": True, "listings": 2, "rbls": ("PSBL", 'b"l'), "first_listed": NOW - 60},
    "paused": {"paused": True},
}
# What the odd host's info line shows of the value (escaped, or replaced and marked, or cut).
SHOWN = {
    "quote": 'name="mx \\"a\\""',
    "backslash": 'host="a\\\\b"',
    "newline in tags": 'tags=",a\\nb,"',
    "not ASCII": 'name="Montréal"',
    "control character": 'host_kind="\ufffd[31m\u2026',
    "lone surrogate": 'profile_id="RP\ufffd\u2026',
    "long": 'contact_group=",CG,CG',
    "long but under the limit": f'tags="{",t" * 500},"',
}
LEFT_OUT = {"name of a wrong type", "check time of a wrong type", "listings of float", "port of a wrong type"}
MONITORS: dict[str, dict[str, Any]] = {
    "not ASCII": {"name": "boutique-é"},
    "quote": {"hostname": 'a"b'},
    "port of a wrong type": {"port": 443},
    "fractional notAfter": {"not_after": NOW + 86400.5},
    "NaN notAfter": {"not_after": float("nan")},
    "huge notAfter": {"not_after": 1e17},
    "no notAfter, days from the API": {"not_after": None, "expiry_days": 3.25},
    "no expiry at all": {"not_after": None},
    "negative zero notAfter": {"not_after": -0.0},
    "paused": {"paused": True},
}


def host(i: int) -> Host:
    return Host(
        f"HT{i:04d}", f"192.0.2.{i % 250}", f"mx-{i}", "ip", "RP1", False, False, 0, (), NOW - 100, None
    )


def monitor(i: int) -> Monitor:
    return Monitor(
        f"CM{i:04d}", f"shop-{i}", f"shop{i}.example", "https", "443", "CP1", False, NOW + i * 3600.0, None
    )


def rendered(collector: str, objs: dict[str, Any]) -> tuple[dict[str, list[str]], RenderStats]:
    stats = RenderStats()
    families = render({collector: Snapshot(collector, objs, NOW - 10, NOW - 10)}, FRESH, stats=stats)
    return {f.name: f.body.splitlines() for f in families}, stats


def assert_each_as_alone(collector: str, objs: dict[str, Any]) -> dict[str, list[str]]:
    """Render `objs` together and each alone: the same lines per family (in id order) and the
    same counts. Returns the lines rendered together."""
    assert bucket_count(len(objs)) == 1
    together, stats = rendered(collector, objs)
    alone: dict[str, list[str]] = {name: [] for name in together}
    skipped: dict[str, int] = {}
    truncated: dict[str, int] = {}
    for key in sorted(objs):
        lines, own = rendered(collector, {key: objs[key]})
        for name, family in lines.items():
            if name not in TOTALS:
                alone[name] += family
        for kind, n in own.skipped.items():
            skipped[kind] = skipped.get(kind, 0) + n
        for label, n in own.truncated.items():
            truncated[label] = truncated.get(label, 0) + n
    for name, family in alone.items():
        if name not in TOTALS:
            assert together[name] == family, name
    assert stats.skipped == skipped and stats.truncated == truncated
    return together


def value_of(lines: list[str], ident: str) -> str | None:
    """The sample value of the line of `ident` in a one-label family (None: no line)."""
    found = [line.rsplit(" ", 1)[1] for line in lines if f'"{ident}"' in line]
    return found[0] if found else None


@pytest.mark.parametrize("case", HOSTS)
def test_one_odd_host_among_hundreds_changes_only_its_own_lines(case: str) -> None:
    hosts = {h.id: h for h in map(host, range(BATCH))}
    odd = replace(hosts[f"HT{ODD:04d}"], **HOSTS[case])
    hosts[odd.id] = odd
    together = assert_each_as_alone("rbl_hosts", hosts)
    checked = together["generatorlabs_rbl_host_last_checked_timestamp_seconds"]
    assert value_of(checked, "HT0001") == fmt(NOW - 100)
    if isinstance(odd.last_checked, float) and case not in LEFT_OUT:
        assert value_of(checked, odd.id) == fmt(odd.last_checked)
    info = together["generatorlabs_rbl_host_info"]
    assert len(info) == BATCH - (case in LEFT_OUT)
    if case in SHOWN:
        (line,) = [line for line in info if f'host_id="{odd.id}"' in line]
        assert SHOWN[case] in line
        assert ("\u2026" in line) == (case in ("control character", "lone surrogate", "long"))


@pytest.mark.parametrize("case", MONITORS)
def test_one_odd_monitor_among_hundreds_changes_only_its_own_lines(case: str) -> None:
    monitors = {m.id: m for m in map(monitor, range(BATCH))}
    odd = replace(monitors[f"CM{ODD:04d}"], **MONITORS[case])
    monitors[odd.id] = odd
    together = assert_each_as_alone("cert_monitors", monitors)
    dates = together["generatorlabs_cert_not_after_timestamp_seconds"]
    assert value_of(dates, "CM0002") == fmt(NOW + 7200.0)
    assert len(together["generatorlabs_cert_monitor_info"]) == BATCH - (case in LEFT_OUT)
    if isinstance(odd.not_after, float) and case not in LEFT_OUT:
        assert value_of(dates, odd.id) == fmt(odd.not_after)
        days = round((odd.not_after - NOW) / 86400, 4) if odd.not_after == odd.not_after else float("nan")
        assert value_of(together["generatorlabs_cert_expiry_days"], odd.id) == fmt(days)


@pytest.mark.parametrize(
    "count", [1500, 1024]
)  # 1,024 monitors and one unknown: one more than their 2 buckets hold
@pytest.mark.parametrize("broken", [False, True])
def test_errors_of_monitors_in_many_buckets_are_in_the_monitors_order(count: int, broken: bool) -> None:
    """Each monitor rendered, and each monitor an error names (known or not), has its active
    errors line, ordered as documented for a first render: in the snapshot's order (here not
    the ids'), a monitor the snapshot does not hold after them; the monitors' own lines in the
    same order. A monitor left out (a broken record) has no line of either."""
    monitors = {m.id: m for m in map(monitor, reversed(range(count)))}
    if broken:
        monitors["CM0005"] = replace(monitors["CM0005"], port=443)  # type: ignore[arg-type]
    named = {"CM0003": "connection", "CM0700": "dns_caa", "CM0999": "expired", "CM9999": "unknown"}
    errors = {f"E{k}": CertError(f"E{k}", k, reason) for k, reason in named.items()}
    errors["E2"] = CertError("E2", "CM0003", "dns_caa")
    families = render(
        {
            "cert_monitors": Snapshot("cert_monitors", monitors, NOW - 10, NOW - 10),
            "cert_errors": Snapshot("cert_errors", errors, NOW - 10, NOW - 10),
        },
        Freshness(NOW, {}, {"cert_monitors": 1e9, "cert_errors": 1e9}),
    )
    lines = {f.name: f.body.splitlines() for f in families}
    shown = [k for k in monitors if not (broken and k == "CM0005")]

    active = lines[contract.CERT_ACTIVE_ERRORS.name]
    expected = dict.fromkeys(shown, "0") | {"CM0003": "2", "CM0700": "1", "CM0999": "1", "CM9999": "1"}
    assert active == [f'generatorlabs_cert_active_errors{{monitor_id="{k}"}} {expected[k]}' for k in expected]
    paused = lines[contract.CERT_MONITOR_PAUSED.name]
    assert paused == [f'generatorlabs_cert_monitor_paused{{monitor_id="{k}"}} 0' for k in shown]
    reasons = {"CM0003": ["connection", "dns_caa"], "CM0700": ["dns_caa"], "CM0999": ["expired"]}
    reasons["CM9999"] = ["unknown"]
    assert lines[contract.CERT_ERROR_INFO.name] == [
        f'generatorlabs_cert_error_info{{monitor_id="{k}",reason="{r}"}} 1'
        for k in expected
        for r in reasons.get(k, [])
    ]
    assert lines[contract.CERT_ERRORS.name] == ["generatorlabs_cert_errors 5"]
