"""The shipped Prometheus rules and Alertmanager example: made by exporter.kit, valid for the real
tools, every alert tested by promtool (firing on the first event, silent otherwise), thresholds
and the runbook base set when the rules are generated."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import kit
from exporter.metrics.contract import ALL_METRICS
from tests.helpers.processes import ROOT, need_binary

RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yaml"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def rule_groups(text: str) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(text)["groups"]
    return groups


def alerts(text: str | None = None) -> list[dict[str, Any]]:
    groups = rule_groups(RULES.read_text() if text is None else text)
    return [r for g in groups for r in g["rules"] if "alert" in r]


def run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_committed_rules_and_alertmanager_example_are_the_kits_defaults() -> None:
    """deploy/prometheus/alerts.yaml and deploy/alertmanager/alertmanager.yml are generated
    (python deploy/kubernetes/generate.py): what `print rules` hands an operator is what is tested."""
    assert RULES.read_text() == kit.rules(), "run python deploy/kubernetes/generate.py"
    assert ALERTMANAGER.read_text() == kit.alertmanager_example(), "run python deploy/kubernetes/generate.py"


def test_promtool_checks_the_rules_and_the_example_config() -> None:
    promtool = need_binary("promtool")
    assert "SUCCESS" in run(promtool, "check", "rules", str(RULES))
    run(promtool, "check", "config", str(ROOT / "deploy" / "prometheus" / "prometheus.yml"))


def test_promtool_unit_tests_pass() -> None:
    promtool = need_binary("promtool")
    assert "SUCCESS" in run(promtool, "test", "rules", str(TESTS))


def test_alertmanager_example_is_valid_and_inhibits_only_within_one_exporter() -> None:
    amtool = need_binary("amtool")
    assert "SUCCESS" in run(amtool, "check-config", str(ALERTMANAGER))
    config = yaml.safe_load(ALERTMANAGER.read_text())
    for rule in config["inhibit_rules"]:
        assert {"job", "instance"} <= set(rule.get("equal", [])), rule
    assert {"job", "instance"} <= set(config["route"]["group_by"])


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ('tags=",edge,mta,prod,"', "mail-team"),
        ('tags=",mta,"', "mail-team"),
        ('tags=",mta,prod,"', "mail-team"),
        ('tags=",mtax,prod,"', "team-email"),  # a tag is matched whole, not as a prefix
        ('tags=""', "team-email"),
    ],
)
def test_the_alertmanager_example_routes_by_one_tag_wherever_it_stands(labels: str, receivers: str) -> None:
    """The tags the alert rules copy from the _info series (`,a,b,`) route with one matcher."""
    out = run(
        need_binary("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        "alertname=GeneratorLabsHostListed",
        "severity=warning",
        labels,
    )
    assert out.strip() == receivers


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [c for t in yaml.safe_load(TESTS.read_text())["tests"] for c in t.get("alert_rule_test", [])]
    for rule in alerts():
        name = rule["alert"]
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"{name}: no firing case"
        assert any(not c["exp_alerts"] for c in mine), f"{name}: no silent case"


def test_every_alert_is_well_formed() -> None:
    readme = ROOT.joinpath("README.md").read_text()
    known = {m.name for m in ALL_METRICS} | {"up"}
    for rule in alerts():
        name = str(rule["alert"])
        assert re.fullmatch(r"[A-Z][A-Za-z]+", name), name
        assert rule["labels"]["severity"] in {"warning", "critical"}
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}
        assert "{{ $labels.instance }}" in annotations["summary"], f"{name}: the summary names no exporter"
        base, anchor = str(annotations["runbook_url"]).rsplit("#", 1)
        assert base == kit.RUNBOOK_BASE
        assert f'<a id="{anchor}"></a>' in readme, f"{name}: README has no runbook section {anchor}"
        used = set(re.findall(r"\b((?:generatorlabs|hetrixtools)_[a-z_]+)\b", str(rule["expr"]))) | (
            {"up"} if "up{" in str(rule["expr"]) else set()
        )
        assert used <= known, f"{name} uses unknown metrics {used - known}"


def test_paused_hosts_and_monitors_are_excluded_where_pausing_exists() -> None:
    """An alert on a per-host or per-monitor series leaves paused ones out (account totals such
    as generatorlabs_cert_monitors_without_expiry count only active objects already)."""
    per_host = {m.name for m in ALL_METRICS if "host_id" in m.labels}
    per_monitor = {m.name for m in ALL_METRICS if "monitor_id" in m.labels and m.type == "gauge"}
    for rule in alerts():
        used = set(re.findall(r"\bgeneratorlabs_[a-z_]+\b", str(rule["expr"])))
        if used & per_host:
            assert "generatorlabs_rbl_host_paused == 1" in str(rule["expr"]), rule["alert"]
        if used & per_monitor:
            assert "generatorlabs_cert_monitor_paused == 1" in str(rule["expr"]), rule["alert"]


def test_every_join_and_aggregation_keeps_exporters_apart() -> None:
    """Two exporters (two accounts) scraped by one Prometheus: no rule matches one exporter's
    series with another's, or adds them up."""
    for group in rule_groups(RULES.read_text()):
        for rule in group["rules"]:
            expr = str(rule["expr"])
            for labels in re.findall(r"\b(?:on|by)\s*\(([^)]*)\)", expr):
                assert {"job", "instance"} <= {x.strip() for x in labels.split(",")}, (rule, labels)
            assert not re.search(r"\b(sum|count|max|min|avg)\s*\(", expr), f"unlabelled aggregation: {expr}"


def test_alerts_read_counters_through_the_rules_that_count_their_first_value() -> None:
    """A counter may appear already at 1; increase() alone misses that first event. Alerts read
    counters only through the `...:increase15m` rules, recorded in the same group before them
    (evaluated in order, at the same instant)."""
    counters = {m.name for m in ALL_METRICS if m.type == "counter"}
    for group in rule_groups(RULES.read_text()):
        recorded: set[str] = set()
        for rule in group["rules"]:
            expr = str(rule["expr"])
            if "record" in rule:
                recorded.add(str(rule["record"]))
                continue
            assert not {c for c in counters if c in expr}, f"{rule['alert']} reads a counter directly"
            for name in re.findall(r"\bgeneratorlabs:\w+:increase15m\b", expr):
                assert name in recorded, f"{rule['alert']}: {name} is not recorded before it in its group"


def promtool_cases(tmp_path: Path, rules: str, series: list[dict[str, str]], cases: dict[str, int]) -> str:
    """Run promtool on `rules` with `series`; `cases` maps `alertname@minutes` to whether it must
    be firing then (1) or not (0). Returns promtool's output (its failures on failure)."""
    (tmp_path / "rules.yaml").write_text(rules)
    tests = []
    for key, firing in cases.items():
        alertname, minutes = key.split("@")
        expected = [{"labels": "{}", "value": 1}] if firing else []
        expr = f'count(ALERTS{{alertstate="firing",alertname="{alertname}"}})'
        tests.append({"expr": expr, "eval_time": f"{minutes}m", "exp_samples": expected})
    test = {"interval": "1m", "input_series": series, "promql_expr_test": tests}
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [test]})
    )
    result = subprocess.run(
        [need_binary("promtool"), "test", "rules", str(tmp_path / "test.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    return "SUCCESS" if result.returncode == 0 else result.stdout + result.stderr


EXPORTER = 'job="generatorlabs",instance="a:9816"'


def given(metric: str, labels: str, values: str) -> dict[str, str]:
    """A promtool input series of exporter a."""
    return {"series": f"{metric}{{{EXPORTER}{labels}}}", "values": values}


SERIES = [
    given("up", "", "1x120"),
    # one webhook with a bad signature, at t=20m
    given(
        "generatorlabs_webhook_rejected_total", ',source="generatorlabs",reason="bad_signature"', "0x19 1x100"
    ),
    # a certificate with 10 days left
    given(
        "generatorlabs_cert_monitor_info",
        ',monitor_id="CM1",name="shop",hostname="shop.example.com"',
        "1x120",
    ),
    given("generatorlabs_cert_expiry_days", ',monitor_id="CM1"', "10x120"),
    given("generatorlabs_cert_monitor_paused", ',monitor_id="CM1"', "0x120"),
    # a host on 4 RBLs
    given("generatorlabs_rbl_host_info", ',host_id="HT1",host="192.0.2.1",name="mx1"', "1x120"),
    given("generatorlabs_rbl_host_listings", ',host_id="HT1"', "4x120"),
    given("generatorlabs_rbl_host_paused", ',host_id="HT1"', "0x120"),
]


def test_thresholds_set_when_generating_change_when_alerts_fire(tmp_path: Path) -> None:
    """The same series under the default rules and under rules generated with other thresholds:
    one bad signature alerts with a threshold of 0 (not with 5); 10 days left warns with 14 (not
    with 7); 4 RBLs is critical with 3 (not with 5)."""
    default = {
        "GeneratorLabsWebhookSignatureFailures@20": 0,
        "GeneratorLabsCertificateExpiringSoon@90": 1,
        "GeneratorLabsHostListedWidely@15": 1,
    }
    assert promtool_cases(tmp_path, kit.rules(), SERIES, default) == "SUCCESS"
    custom = kit.rules(
        thresholds={
            "webhook_signature_failures": 0,
            "cert_expiry_warning_days": 7,
            "rbl_listings_critical": 5,
        }
    )
    assert "# Thresholds: cert_expiry_warning_days=7, " in custom
    changed = {
        "GeneratorLabsWebhookSignatureFailures@19": 0,
        "GeneratorLabsWebhookSignatureFailures@20": 1,
        "GeneratorLabsCertificateExpiringSoon@90": 0,
        "GeneratorLabsHostListedWidely@15": 0,
        "GeneratorLabsHostListed@15": 1,
    }
    assert promtool_cases(tmp_path, custom, SERIES, changed) == "SUCCESS"


def test_every_threshold_has_a_meaning_and_a_place_in_the_rules() -> None:
    assert set(kit.THRESHOLD_HELP) == set(kit.THRESHOLDS)
    for name, default in kit.THRESHOLDS.items():
        changed = kit.rules(thresholds={name: default + 0.5 if name != "budget_used_ratio" else 0.5})
        assert changed != kit.rules(), f"threshold {name} changes nothing"
    assert "<<" not in kit.rules() and ">>" not in kit.rules()


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        (
            {"cert_expiry_warn_days": 7},
            "unknown threshold 'cert_expiry_warn_days'; known: cert_expiry_warning_days",
        ),
        ({"stale_intervals": math.nan}, "threshold stale_intervals: must be a finite number"),
        ({"stale_intervals": math.inf}, "threshold stale_intervals: must be a finite number"),
        ({"rbl_listings_critical": -1}, "threshold rbl_listings_critical: must be >= 0"),
        ({"budget_used_ratio": 95}, "threshold budget_used_ratio: must be at most 1"),
        (
            {"cert_expiry_critical_days": 20},
            "cert_expiry_critical_days must not exceed cert_expiry_warning_days",
        ),
    ],
)
def test_a_bad_threshold_is_refused_by_name(thresholds: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        kit.rules(thresholds=thresholds)


def test_the_runbook_base_is_one_setting() -> None:
    base = "https://git.example.com/ops/generatorlabs-exporter/blob/main/README.md"
    urls = {str(r["annotations"]["runbook_url"]) for r in alerts(kit.rules(runbook_base=base))}
    default = {str(r["annotations"]["runbook_url"]) for r in alerts(kit.rules())}
    assert {u.replace(base, kit.RUNBOOK_BASE, 1) for u in urls} == default
    assert all(u.startswith(base + "#runbook-") for u in urls)
    assert kit.rules(runbook_base=base + "#") == kit.rules(runbook_base=base)
    with pytest.raises(ValueError, match="runbook base must be a URL"):
        kit.rules(runbook_base='https://x/"README')
