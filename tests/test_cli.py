"""The command line: flags (pinned), --config.check, exit codes, secrets kept out of output."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import __version__
from exporter.cli import build_parser, main

FLAGS = ["--config.file", "--config.check", "--web.listen-address", "--web.telemetry-path",
         "--web.config.file", "--webhook.listen-address",
         "--log.level", "--log.format", "--demo", "--version", "--help"]


def test_the_flags_are_exactly_the_documented_ones() -> None:
    options = [o for a in build_parser()._actions for o in a.option_strings if o.startswith("--")]
    assert sorted(options) == sorted(FLAGS)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"generatorlabs-exporter {__version__}"


def test_config_check_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
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


def test_demo_needs_no_credentials(capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
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
