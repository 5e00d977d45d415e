"""The command line: flags (pinned), --config.check, exit codes, secrets and YAML text kept out
of output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporter import __version__
from exporter.cli import build_parser, main
from tests.helpers.contract import FLAGS


def test_the_flags_are_exactly_the_documented_ones() -> None:
    options = [o for a in build_parser()._actions for o in a.option_strings if o.startswith("--")]
    assert sorted(options) == sorted(FLAGS)


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


ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 30.0


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GENERATORLABS_")}
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        cwd=ROOT,
        env={**base, **(env or {})},
        check=False,
    )


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"api:\n  auth_token: \xfftok\n")
    result = run_cli("--demo", "--config.file", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (
        f"generatorlabs-exporter: invalid config {path}:\n  - (file): cannot "
        f"read, got '{path}' (not UTF-8 text: an invalid byte at offset 19)\n"
    )


def test_a_secret_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    token = tmp_path / "auth_token"
    token.write_bytes(b"tok_\xff\xfe" + SECRET.encode())
    result = run_cli(
        env={"GENERATORLABS_ACCOUNT_SID": "AC" + "b" * 32, "GENERATORLABS_AUTH_TOKEN_FILE": str(token)}
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        f"GENERATORLABS_AUTH_TOKEN_FILE: cannot read, got '{token}' (not UTF-8 text: an invalid "
        "byte at offset 4)"
    ) in result.stderr
    assert SECRET not in result.stderr
