"""The command line: flags (pinned), --config.check, exit codes, secrets and YAML text kept out
of output."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

import exporter.app
from exporter import __version__
from exporter.cli import main
from exporter.config.model import Config
from exporter.errors import ConfigError, StateError
from tests.helpers.config import hashed, write_web_config
from tests.helpers.contract import FLAGS


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


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"generatorlabs-exporter {__version__}"


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
    # credentials are checked once the file itself is valid
    path.write_text("{}\n")
    assert main(["--config.file", str(path), "--config.check"]) == 2
    err = capsys.readouterr().err
    assert "api.account_sid: required, set GENERATORLABS_ACCOUNT_SID" in err
    assert "very-secret-token" not in err


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
        ("/", TAKEN + "the landing page (/)"),
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
    assert options == {"demo": True, "web_config_file": web, "webhook_listen_address": None}
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
