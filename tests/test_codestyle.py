"""The code's own checks, run with the suite so that CI enforces them: ruff (lint and format) and
strict mypy over exporter/, tests/ and bench/, functions of at most 60 lines, and the README's
test command being the one `.ci/run` runs, with the coverage floor it promises."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers.processes import ROOT

TREES = ("exporter", "tests", "bench")
MAX_FUNCTION_LINES = 60
COVERAGE_FLOOR = 90


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", *TREES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_file_is_ruff_formatted() -> None:
    result = run("ruff", "format", "--check", *TREES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_mypy_finds_nothing() -> None:
    result = run("mypy")  # files and strictness come from pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


def long_functions(tree: Path) -> list[str]:
    """Every function under `tree` longer than MAX_FUNCTION_LINES, decorators included."""
    found = []
    for path in sorted(tree.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                length = (node.end_lineno or node.lineno) - first + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(tree)}:{node.lineno} {node.name} ({length} lines)")
    return found


@pytest.mark.parametrize("tree", TREES)
def test_no_function_is_longer_than_sixty_lines(tree: str) -> None:
    assert long_functions(ROOT / tree) == []


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"def long() -> None:\n{body}\n")
    (tmp_path / "short.py").write_text("def short() -> None:\n    pass\n")
    assert long_functions(tmp_path) == ["long.py:1 long (61 lines)"]


def readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return str(blocks[1]).strip()  # the Quick start's second command: "Run the tests"


def test_ci_runs_the_readme_test_command_with_coverage() -> None:
    command = readme_test_command()
    assert command == ".venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest --cov"
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == command


def test_the_coverage_floor_covers_subprocesses_and_branches() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]
    assert config["report"]["fail_under"] >= COVERAGE_FLOOR
    assert config["run"]["branch"] is True
    assert "subprocess" in config["run"]["patch"]
    assert config["run"]["source"] == ["exporter"]
