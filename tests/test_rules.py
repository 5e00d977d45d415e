"""The shipped Prometheus rules and configs: valid for the real tools, and every alert tested."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from exporter.metrics.contract import ALL_METRICS
from tests.helpers.processes import need_binary

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yaml"


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_promtool_checks_the_rules_and_the_example_config() -> None:
    promtool = need_binary("promtool")
    assert "SUCCESS" in run(promtool, "check", "rules", str(RULES))
    run(promtool, "check", "config", str(ROOT / "deploy" / "prometheus" / "prometheus.yml"))


def test_promtool_unit_tests_pass() -> None:
    promtool = need_binary("promtool")
    assert "SUCCESS" in run(promtool, "test", "rules", str(TESTS))


def test_alertmanager_example_config_is_valid() -> None:
    amtool = need_binary("amtool")
    config = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    assert "SUCCESS" in run(amtool, "check-config", str(config))


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
        anchor = str(annotations["runbook_url"]).rsplit("#", 1)[1]
        assert f'<a id="{anchor}"></a>' in readme, f"{name}: README has no runbook section {anchor}"
        used = set(re.findall(r"\b((?:generatorlabs|hetrixtools)_[a-z_]+)\b", str(rule["expr"]))) | (
            {"up"} if "up{" in str(rule["expr"]) else set()
        )
        assert used <= known, f"{name} uses unknown metrics {used - known}"


def test_paused_hosts_and_monitors_are_excluded_where_pausing_exists() -> None:
    for rule in alerts():
        expr = str(rule["expr"])
        if "generatorlabs_rbl_host_" in expr:
            assert "generatorlabs_rbl_host_paused == 1" in expr, rule["alert"]
        if "generatorlabs_cert_" in expr:
            assert "generatorlabs_cert_monitor_paused == 1" in expr, rule["alert"]
