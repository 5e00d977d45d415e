"""The Quick start's first command needs the package alone, not the test extra: every module the
exporter imports is the standard library, the package itself or a declared dependency, and the
demo runs in a process where importing any test-only package fails."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

from tests.helpers.processes import ROOT, get, start_exporter, terminate

# Import names of the runtime dependencies in pyproject.toml (distribution name -> import name).
IMPORT_NAMES = {"pyyaml": "yaml", "prometheus-client": "prometheus_client"}
TEST_ONLY = ("pytest", "hypothesis", "aioresponses", "kubernetes_validate", "coverage", "mypy", "ruff")


def declared() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {dep.split(">")[0].split("=")[0].split("[")[0].strip().lower() for dep in deps}
    return {IMPORT_NAMES.get(name, name.replace("-", "_")) for name in names}


def imported(tree: Path) -> set[str]:
    found: set[str] = set()
    for path in tree.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_the_package_imports_only_declared_dependencies() -> None:
    third_party = imported(ROOT / "exporter") - set(sys.stdlib_module_names) - {"exporter"}
    # aiohttp's own dependencies are not imported directly
    assert third_party - declared() == set()
    assert not third_party & set(TEST_ONLY)


BLOCKER = """
import importlib.abc, runpy, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is test-only and must not be needed by the demo")
        return None
sys.meta_path.insert(0, Blocked())
sys.argv = ["generatorlabs-exporter", *sys.argv[1:]]
runpy.run_module("exporter", run_name="__main__")
"""


def test_the_demo_runs_without_any_test_only_package(tmp_path: Path) -> None:
    script = tmp_path / "no_test_extra.py"
    script.write_text(BLOCKER.format(blocked=set(TEST_ONLY)))
    exporter = start_exporter(tmp_path, "--demo", entry=[str(script)])  # fails if it exits
    try:
        status, text = get(exporter.base + "/metrics")
        assert status == 200 and "generatorlabs_up" in text
    finally:
        terminate(exporter)
