"""The command line: flags (pinned), --config.check, exit codes, secrets and YAML text kept out
of output."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from aiohttp import web

import exporter.app
from exporter import __version__, kit
from exporter.cli import main
from exporter.config.model import Config
from exporter.config.parse import parse
from exporter.errors import ConfigError, StateError
from exporter.logs import configure_logging
from exporter.web.guard import WebGuard
from tests.helpers.config import hashed, make_pki, write_web_config
from tests.helpers.contract import FLAGS, SUBCOMMAND_FLAGS
from tests.helpers.processes import ROOT, free_port, need_binary


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No credentials or secrets from the machine running the tests; structlog as it was (main
    configures logging before it runs the exporter)."""
    for name in list(os.environ):
        if name.startswith(("GENERATORLABS_", "HETRIXTOOLS_")):
            monkeypatch.delenv(name)
    yield
    structlog.reset_defaults()


def test_the_flags_are_exactly_the_documented_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert set(re.findall(r"(?<![\w.-])--[a-z][a-z.-]*[a-z]", capsys.readouterr().out)) == set(FLAGS)


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--log.level", "loud"], "argument --log.level: invalid choice: 'loud'"),
        (["--log.format", "xml"], "argument --log.format: invalid choice: 'xml'"),
        (["--config.file"], "argument --config.file: expected one argument"),
    ],
)
def test_a_flag_that_does_not_parse_exits_2_with_the_usage(
    capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: generatorlabs-exporter") and complaint in err


def test_help_names_the_credential_environment_and_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in (
        "GENERATORLABS_ACCOUNT_SID",
        "GENERATORLABS_ACCOUNT_SID_FILE",
        "GENERATORLABS_AUTH_TOKEN",
        "GENERATORLABS_AUTH_TOKEN_FILE",
        "GENERATORLABS_WEBHOOK_SECRET",
        "GENERATORLABS_WEBHOOK_SECRET_FILE",
        "HETRIXTOOLS_WEBHOOK_TOKEN",
    ):
        assert re.search(rf"\b{name}\b", out), name
    assert "exit codes:" in out and "print rules|dashboards|config" in out and "healthcheck" in out


def test_version_names_python_aiohttp_and_prometheus_client(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == (
        f"generatorlabs-exporter, version {__version__} (python {platform.python_version()}, "
        f"aiohttp {importlib.metadata.version('aiohttp')}, "
        f"prometheus_client {importlib.metadata.version('prometheus-client')})"
    )


def test_config_check_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENERATORLABS_ACCOUNT_SID", "AC" + "b" * 32)
    monkeypatch.setenv("GENERATORLABS_AUTH_TOKEN", "t" * 64)
    path = tmp_path / "c.yaml"
    path.write_text("budget:\n  requests_per_hour: 600\n")
    assert main(["--config.file", str(path), "--config.check"]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: ok"


def test_config_check_lists_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENERATORLABS_AUTH_TOKEN", "very-secret-token")
    monkeypatch.delenv("GENERATORLABS_ACCOUNT_SID", raising=False)
    monkeypatch.delenv("GENERATORLABS_ACCOUNT_SID_FILE", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text("budget:\n  requests_per_hour: 5000\napi:\n  page_sise: 10\n")
    assert main(["--config.file", str(path), "--config.check"]) == 2
    err = capsys.readouterr().err
    assert f"invalid config {path}:" in err
    assert "budget.requests_per_hour: must be at most 1000" in err
    assert "api.page_sise: unknown key (did you mean 'page_size'?)" in err
    # credentials are checked once the file itself is valid; strict mode fails on a missing one
    path.write_text("{}\n")
    assert main(["--config.file", str(path), "--config.check=strict"]) == 2
    err = capsys.readouterr().err
    assert "api.account_sid: required, set GENERATORLABS_ACCOUNT_SID" in err
    assert "very-secret-token" not in err


def test_config_check_warns_about_missing_credentials_unless_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config can be linted in CI, where no credential is set: the file is checked, each
    missing credential is a warning on stderr, and the exit code is 0; strict mode exits 2."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"webhooks": {"enabled": True}}))
    assert main(["--config.file", str(path), "--config.check"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok\n"
    assert err.splitlines() == [
        f"generatorlabs-exporter: warning: {path}: api.account_sid: required, set GENERATORLABS_ACCOUNT_SID "
        "or GENERATORLABS_ACCOUNT_SID_FILE (or api.account_sid in the config file), got nothing",
        f"generatorlabs-exporter: warning: {path}: api.auth_token: required, set GENERATORLABS_AUTH_TOKEN "
        "or GENERATORLABS_AUTH_TOKEN_FILE (or api.auth_token in the config file), got nothing",
        f"generatorlabs-exporter: warning: {path}: webhooks.secrets: required when webhooks.enabled is "
        "true, set GENERATORLABS_WEBHOOK_SECRET or GENERATORLABS_WEBHOOK_SECRET_FILE (or "
        "webhooks.secrets), got nothing",
    ]
    assert main(["--config.file", str(path), "--config.check", "strict"]) == 2
    assert capsys.readouterr().err.startswith(f"generatorlabs-exporter: invalid config {path}:\n")


def test_config_check_still_fails_on_a_credential_that_is_set_but_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENERATORLABS_ACCOUNT_SID", "not-a-sid")
    monkeypatch.setenv("GENERATORLABS_AUTH_TOKEN_FILE", str(tmp_path / "absent"))
    assert main(["--config.check"]) == 2
    err = capsys.readouterr().err
    assert "GENERATORLABS_AUTH_TOKEN_FILE: cannot read" in err and "api.account_sid" in err
    assert main(["--config.check=lenient"]) == 2


def test_config_check_takes_only_lenient_or_strict(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--config.check=loose"])
    assert info.value.code == 2
    assert "argument --config.check: invalid choice: 'loose'" in capsys.readouterr().err


def test_demo_needs_no_credentials(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GENERATORLABS_ACCOUNT_SID", raising=False)
    monkeypatch.delenv("GENERATORLABS_AUTH_TOKEN", raising=False)
    assert main(["--demo", "--config.check"]) == 0


def test_bad_flags_are_config_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--demo", "--web.listen-address", "nowhere", "--config.check"]) == 2
    assert "--web.listen-address: must be host:port or :port, got 'nowhere'" in capsys.readouterr().err
    assert main(["--demo", "--web.telemetry-path", "metrics", "--config.check"]) == 2


def test_missing_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config.file", "/does/not/exist.yaml", "--config.check"]) == 2
    assert "cannot read, got '/does/not/exist.yaml'" in capsys.readouterr().err


SECRET = "tok_SECRET_0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            f'api:\n  auth_token: "{SECRET}\nbudget: {{}}\n',
            "(file): not valid YAML at line 2, column 15: while scanning a quoted scalar, found "
            "unexpected end of stream",
        ),
        (f"api:\n  auth_token {SECRET}\n", "api: must be a mapping, got a string"),
        (f"webhooks:\n  - whsec_{SECRET}\n", "webhooks: must be a mapping, got a list"),
        (f'"{SECRET}"\n', "(top level): must be a mapping of sections, got a string"),
        (f"api:\n  {SECRET}: 1\n", "api.tok_SECRET_0123456789abcdef: unknown key"),
        (f"api:\n  {SECRET * 2}: 1\n", "api.<a key that is not shown>: unknown key"),
    ],
)
def test_config_check_never_echoes_yaml_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["--demo", "--config.file", str(path), "--config.check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"generatorlabs-exporter: invalid config {path}:\n  - {problem}")
    assert (SECRET * 2) not in err and f'"{SECRET}' not in err and f"whsec_{SECRET}" not in err
    if "unknown key" not in problem:  # a key that looks like a key is named: values never are
        assert SECRET not in err


def test_a_config_file_that_is_not_utf8_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"api:\n  auth_token: \xfftok\n")
    assert main(["--demo", "--config.file", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"generatorlabs-exporter: invalid config {path}:\n  - (file): cannot "
        f"read, got '{path}' (not UTF-8 text: an invalid byte at offset 19)\n"
    )


def test_a_secret_file_that_is_not_utf8_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "auth_token"
    token.write_bytes(b"tok_\xff\xfe" + SECRET.encode())
    monkeypatch.setenv("GENERATORLABS_ACCOUNT_SID", "AC" + "b" * 32)
    monkeypatch.setenv("GENERATORLABS_AUTH_TOKEN_FILE", str(token))
    assert main([]) == 2
    err = capsys.readouterr().err
    assert (
        f"GENERATORLABS_AUTH_TOKEN_FILE: cannot read, got '{token}' (not UTF-8 text: an invalid "
        "byte at offset 4)"
    ) in err
    assert SECRET not in err


NOT_A_PATH = "must be a path starting with /"
TAKEN = "must not be a path another route serves: "


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("metrics", NOT_A_PATH),
        ("", NOT_A_PATH),
        ("/", TAKEN + "the status page (/)"),
        ("/api/v1/status", TAKEN + "the status page's JSON twin (/api/v1/status)"),
        ("/-/healthy", TAKEN + "the liveness check (/-/healthy)"),
        ("/-/ready", TAKEN + "the readiness check (/-/ready)"),
        ("/-/reload", TAKEN + "the reload endpoint (/-/reload)"),
        ("/webhooks/generatorlabs", f"{TAKEN}the Generator Labs webhook receiver (/webhooks/generatorlabs)"),
        (
            "/webhooks/hetrixtools/t",
            f"{TAKEN}the HetrixTools webhook receiver (/webhooks/hetrixtools/{{token}})",
        ),
        (
            "/-/webhooks/agents/a1",
            f"{TAKEN}the endpoint that forgets an agent (/-/webhooks/agents/{{agent_id}})",
        ),
        (
            "/-/webhooks/hetrixtools/monitors/192.0.2.0/24",
            TAKEN + "the endpoint that forgets a HetrixTools monitor "
            "(/-/webhooks/hetrixtools/monitors/{monitor:.+})",
        ),
    ],
)
def test_the_telemetry_path_flag_follows_the_config_keys_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str, why: str
) -> None:
    """A telemetry path on another route would silently take it over (e.g. /-/ready answering
    with metrics): refused, from the file and the flag alike, naming the route."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"web": {"telemetry_path": path}}))
    assert main(["--demo", "--config.file", str(config), "--config.check"]) == 2
    from_file = capsys.readouterr().err.split("web.telemetry_path: ")[1]
    assert main(["--demo", "--web.telemetry-path", path, "--config.check"]) == 2
    from_flag = capsys.readouterr().err.split("--web.telemetry-path: ")[1]
    assert from_flag == from_file == f"{why}, got {path!r}\n"


@pytest.mark.parametrize("path", ["/probe", "/-/metrics", "/webhooks/hetrixtools/a/b", "/webhooks"])
def test_a_telemetry_path_no_route_serves_is_accepted(path: str) -> None:
    assert main(["--demo", "--web.telemetry-path", path, "--config.check"]) == 0


def test_both_bad_listener_flags_are_reported_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--demo", "--web.listen-address", ":0", "--web.telemetry-path", "x", "--config.check"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "generatorlabs-exporter: invalid config (command line):\n"
        "  - --web.listen-address: port must be a number from 1 to 65535, got ':0'\n"
        "  - --web.telemetry-path: must be a path starting with /, got 'x'\n"
    )


def test_the_webhook_listener_flag_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--demo", "--webhook.listen-address", "hooks", "--config.check"]) == 2
    assert capsys.readouterr().err == (
        "generatorlabs-exporter: invalid config (command line):\n"
        "  - --webhook.listen-address: must be host:port or :port, got 'hooks'\n"
    )
    assert main(["--demo", "--webhook.listen-address", "127.0.0.1:9817", "--config.check"]) == 0
    assert capsys.readouterr().out == "<defaults>: ok\n"


def test_config_check_reads_the_web_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    web = write_web_config(tmp_path / "web.yml", {"basic_auth_users": {"prometheus": hashed("pw")}})
    assert main(["--demo", "--web.config.file", web, "--config.check"]) == 0
    missing = str(tmp_path / "absent.yml")
    assert main(["--demo", "--web.config.file", missing, "--config.check"]) == 2
    assert f"invalid config {missing}:\n  - (file): cannot read, got '{missing}'" in capsys.readouterr().err


class FakeRun:
    """Stands in for exporter.app.run: records what the command line hands the daemon, then
    returns or raises as the exporter would."""

    def __init__(self, outcome: BaseException | None = None) -> None:
        self.outcome = outcome
        self.calls: list[tuple[Config, Any, dict[str, Any]]] = []

    async def __call__(self, config: Config, source: Any, **options: Any) -> None:
        self.calls.append((config, source, options))
        if self.outcome is not None:
            raise self.outcome


def test_flags_win_over_the_config_file_and_again_on_every_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = FakeRun()
    monkeypatch.setattr(exporter.app, "run", run)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"web": {"listen_address": ":9000"}, "log": {"level": "warning"}}))
    web = write_web_config(tmp_path / "web.yml", {})
    flags = ["--web.listen-address", "127.0.0.1:9100", "--web.telemetry-path", "/probe"]
    flags += ["--log.level", "debug", "--log.format", "json", "--web.config.file", web]
    assert main(["--demo", "--config.file", str(path), *flags]) == 0
    [(config, source, options)] = run.calls
    assert (config.web.listen_address, config.web.telemetry_path) == ("127.0.0.1:9100", "/probe")
    assert (config.log.level, config.log.format) == ("debug", "json")
    assert options == {
        "demo": True,
        "web_config_file": web,
        "webhook_listen_address": None,
        "extra_listen_addresses": (),
    }
    path.write_text(
        yaml.safe_dump({"web": {"listen_address": ":9001"}, "budget": {"requests_per_hour": 600}})
    )
    reloaded = source()
    assert reloaded.budget.requests_per_hour == 600
    assert (reloaded.web.listen_address, reloaded.log.level) == ("127.0.0.1:9100", "debug")
    path.write_text("budget: {requests_per_hour: lots}\n")
    with pytest.raises(ConfigError, match=r"budget\.requests_per_hour: must be a whole number"):
        source()


def test_a_reload_reads_the_credentials_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeRun()
    monkeypatch.setattr(exporter.app, "run", run)
    token = tmp_path / "token"
    token.write_text("first-token-0123456789\n")
    monkeypatch.setenv("GENERATORLABS_ACCOUNT_SID", "AC" + "c" * 32)
    monkeypatch.setenv("GENERATORLABS_AUTH_TOKEN_FILE", str(token))
    assert main([]) == 0
    [(config, source, _)] = run.calls
    assert config.api.auth_token == "first-token-0123456789"
    token.write_text("second-token-0123456789\n")
    assert source().api.auth_token == "second-token-0123456789"


@pytest.mark.parametrize(
    ("outcome", "code", "stderr"),
    [
        (None, 0, ""),
        (KeyboardInterrupt(), 0, ""),
        (
            ConfigError("<config>", ["api.account_sid and api.auth_token: required, got nothing"]),
            2,
            "generatorlabs-exporter: invalid config <config>:\n"
            "  - api.account_sid and api.auth_token: required, got nothing\n",
        ),
        (
            StateError("/var/lib/x/state.sqlite", "in use by another process"),
            1,
            "generatorlabs-exporter: state file /var/lib/x/state.sqlite: in use by another process\n",
        ),
        (
            OSError(98, "Address already in use"),
            1,
            "generatorlabs-exporter: [Errno 98] Address already in use\n",
        ),
    ],
    ids=["clean-stop", "interrupted", "config", "state-file", "port-taken"],
)
def test_how_the_exporter_ends_decides_the_exit_code(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    outcome: BaseException | None,
    code: int,
    stderr: str,
) -> None:
    monkeypatch.setattr(exporter.app, "run", FakeRun(outcome))
    assert main(["--demo"]) == code
    assert capsys.readouterr().err == stderr


def test_a_state_file_that_is_a_directory_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real daemon, in-process: it stops at the state file, before any request is sent."""
    monkeypatch.setenv("GENERATORLABS_ACCOUNT_SID", "AC" + "d" * 32)
    monkeypatch.setenv("GENERATORLABS_AUTH_TOKEN", "t" * 64)
    path = tmp_path / "c.yaml"
    config = {"api": {"base_url": "http://127.0.0.1:9"}, "state": {"path": str(tmp_path)}}
    path.write_text(yaml.safe_dump(config))
    assert main(["--config.file", str(path), "--web.listen-address", "127.0.0.1:9816"]) == 1
    err = capsys.readouterr().err
    assert err == f"generatorlabs-exporter: state file {tmp_path}: is a directory, not a file\n"


def test_log_level_warn_is_the_toolkit_spelling_of_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = FakeRun()
    monkeypatch.setattr(exporter.app, "run", run)
    for spelling in ("warn", "warning"):
        assert main(["--demo", "--log.level", spelling, "--log.format", "logfmt"]) == 0
    assert [config.log.level for config, _, _ in run.calls] == ["warning", "warning"]
    configure_logging("logfmt", "warn")
    log = structlog.get_logger("test")
    log.info("quiet.event")
    log.warning("loud.event")
    err = capsys.readouterr().err
    assert "loud.event" in err and "quiet.event" not in err


def test_a_repeated_listen_address_hands_the_daemon_every_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like the toolkit, every --web.listen-address is served: the first is web.listen_address
    (and wins over the file on every reload), the others are handed to the daemon, each once."""
    run = FakeRun()
    monkeypatch.setattr(exporter.app, "run", run)
    addresses = ["127.0.0.1:9100", "[::1]:9100", "127.0.0.1:9100", ":9200"]
    assert main(["--demo", *(f"--web.listen-address={a}" for a in addresses)]) == 0
    [(config, source, options)] = run.calls
    assert config.web.listen_address == "127.0.0.1:9100"
    assert options["extra_listen_addresses"] == ("[::1]:9100", ":9200")
    assert source().web.listen_address == "127.0.0.1:9100"


def test_every_repeated_listen_address_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--demo", "--web.listen-address", ":9100", "--web.listen-address", "nowhere", "--config.check"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "generatorlabs-exporter: invalid config (command line):\n"
        "  - --web.listen-address: must be host:port or :port, got 'nowhere'\n"
    )


# --- print rules|dashboards|config ---


def test_print_rules_are_the_kits_rules_with_the_thresholds_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["print", "rules"]) == 0
    assert capsys.readouterr().out == kit.rules()
    argv = ["print", "rules", "--threshold", "cert_expiry_warning_days=21", "--threshold"]
    argv += ["cert_expiry_critical_days=7", "--runbook-base", "https://wiki.example/exporter"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    expected = {"cert_expiry_warning_days": 21.0, "cert_expiry_critical_days": 7.0}
    assert out == kit.rules(expected, "https://wiki.example/exporter")
    assert out != kit.rules() and "https://wiki.example/exporter#runbook-" in out
    yaml.safe_load(out)


@pytest.mark.parametrize(
    ("threshold", "complaint"),
    [
        ("cert_expiry_warning_days", "--threshold: must be NAME=NUMBER, got 'cert_expiry_warning_days'"),
        ("cert_expiry_warning_days=soon", "--threshold: must be NAME=NUMBER"),
        ("cert_expiry_warning_days=nan", "--threshold: must be NAME=NUMBER"),
        ("no_such_threshold=1", "unknown threshold 'no_such_threshold'"),
        ("budget_used_ratio=2", "budget_used_ratio: must be at most 1"),
    ],
)
def test_print_rules_refuses_a_bad_threshold(
    capsys: pytest.CaptureFixture[str], threshold: str, complaint: str
) -> None:
    assert main(["print", "rules", "--threshold", threshold]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("generatorlabs-exporter: print rules: ") and complaint in err


def test_print_rules_help_lists_every_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["print", "rules", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert all(f"{name}={default:g}" in out for name, default in kit.THRESHOLDS.items())


def test_print_dashboards_to_a_folder_or_one_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dashboards = kit.dashboards()
    folder = tmp_path / "grafana" / "dashboards"
    assert main(["print", "dashboards", "--output-dir", str(folder)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(folder / name) for name in dashboards]
    assert {p.name: p.read_text() for p in folder.iterdir()} == dashboards
    name = next(iter(dashboards))
    for given in (name, name.removesuffix(".json")):
        assert main(["print", "dashboards", given]) == 0
        assert json.loads(capsys.readouterr().out) == json.loads(dashboards[name])


def test_print_dashboards_refuses_what_it_cannot_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["print", "dashboards"]) == 2  # several dashboards, one stdout
    assert "name one of " in capsys.readouterr().err
    assert main(["print", "dashboards", "nope"]) == 2
    assert "no dashboard 'nope.json'" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["print", "dashboards", "--output-dir", str(tmp_path / "file")]) == 1
    assert "cannot write to" in capsys.readouterr().err


def test_print_config_is_the_example_config_and_parses_to_the_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["print", "config"]) == 0
    out = capsys.readouterr().out
    assert out == (ROOT / "config.example.yaml").read_text()
    assert parse(yaml.safe_load(out)) == Config()


def test_print_needs_to_know_what(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["print"])
    assert info.value.code == 2
    assert "usage: generatorlabs-exporter print" in capsys.readouterr().err


def test_the_subcommands_flags_are_the_documented_ones(capsys: pytest.CaptureFixture[str]) -> None:
    for command, flags in SUBCOMMAND_FLAGS.items():
        with pytest.raises(SystemExit):
            main([*command.split(), "--help"])
        found = set(re.findall(r"(?<![\w.-])--[a-z][a-z.-]*[a-z]", capsys.readouterr().out))
        assert found == set(flags), command


# --- healthcheck ---


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(need_binary("openssl"), tmp_path_factory.mktemp("pki"))


@contextlib.asynccontextmanager
async def health_server(web_config: str | None, status: int = 200) -> AsyncIterator[str]:
    """/-/healthy answering `status`, behind a WebGuard for `web_config` (its TLS, its basic
    auth), on a loopback port; yields the --web.listen-address to reach it."""

    async def healthy(_: web.Request) -> web.Response:
        return web.Response(status=status, text="ok\n")

    guard = WebGuard(web_config)
    app = web.Application(middlewares=(guard.middleware,))
    app.router.add_get("/-/healthy", healthy)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=guard.context).start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def healthcheck(*argv: str) -> int:
    return await asyncio.to_thread(main, ["healthcheck", *argv])


async def test_healthcheck_exits_0_on_a_200_and_1_otherwise(capsys: pytest.CaptureFixture[str]) -> None:
    async with health_server(None) as address:
        assert await healthcheck("--web.listen-address", address) == 0
        assert capsys.readouterr().out == f"http://{address}/-/healthy: healthy\n"
    async with health_server(None, status=503) as address:
        assert await healthcheck("--web.listen-address", address) == 1
        assert (
            capsys.readouterr().err
            == f"generatorlabs-exporter: healthcheck: http://{address}/-/healthy answered 503\n"
        )
    port = free_port()  # nothing listens there
    assert await healthcheck("--web.listen-address", f":{port}") == 1
    assert f"healthcheck: http://127.0.0.1:{port}/-/healthy: " in capsys.readouterr().err


async def test_healthcheck_reads_the_listen_address_from_the_config_file(tmp_path: Path) -> None:
    async with health_server(None) as address:
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({"web": {"listen_address": address}}))
        assert await healthcheck("--config.file", str(config)) == 0


async def test_healthcheck_speaks_tls_and_basic_auth_as_the_web_config_says(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = {"cert_file": str(pki / "server.crt"), "key_file": str(pki / "server.key")}
    tls |= {"client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(pki / "ca.crt")}
    path = write_web_config(
        tmp_path / "web.yml", {"tls_server_config": tls, "basic_auth_users": {"prometheus": hashed("pw")}}
    )
    async with health_server(path) as address:
        argv = ("--web.listen-address", address, "--web.config.file", path)
        assert await healthcheck(*argv) == 1
        assert "set GENERATORLABS_HEALTHCHECK_PASSWORD" in capsys.readouterr().err
        monkeypatch.setenv("GENERATORLABS_HEALTHCHECK_PASSWORD", "wrong")
        assert await healthcheck(*argv) == 1
        assert "answered 401" in capsys.readouterr().err
        (tmp_path / "password").write_text("pw\n")
        monkeypatch.delenv("GENERATORLABS_HEALTHCHECK_PASSWORD")
        monkeypatch.setenv("GENERATORLABS_HEALTHCHECK_PASSWORD_FILE", str(tmp_path / "password"))
        assert await healthcheck(*argv) == 0
        assert capsys.readouterr().out == f"https://{address}/-/healthy: healthy\n"


async def test_healthcheck_takes_the_flags_of_a_running_exporter_from_its_command_line(
    tmp_path: Path,
) -> None:
    """In a container, /proc/1/cmdline holds the exporter's flags: the healthcheck reads them."""
    cmdline = tmp_path / "cmdline"
    async with health_server(None) as address:
        for program in (
            [b"/usr/local/bin/python3.12", b"/usr/local/bin/generatorlabs-exporter"],
            [b"python", b"-m", b"exporter"],
        ):
            argv = [*program, b"--log.format=json", b"--web.listen-address=" + address.encode(), b""]
            cmdline.write_bytes(b"\0".join(argv))
            assert await healthcheck("--args-file", str(cmdline)) == 0
        cmdline.write_bytes(b"sleep\x00100\x00")
        assert await healthcheck("--args-file", str(cmdline)) == 1


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--web.config.file", "/does/not/exist.yml"], "cannot read, got '/does/not/exist.yml'"),
        (["--args-file", "/does/not/exist"], "--args-file /does/not/exist:"),
        (["--web.listen-address", "nowhere"], "--web.listen-address: must be host:port"),
    ],
)
def test_a_healthcheck_that_cannot_start_exits_1(
    capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    """Never 2: Docker reserves it."""
    assert main(["healthcheck", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("generatorlabs-exporter: healthcheck: ") and complaint in err
