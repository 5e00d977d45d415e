"""The package's layers: the imports between exporter's units (subpackages and top-level modules)
are the ones exporter/__init__.py's table documents, and that table has no cycle."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path

import exporter
from tests.helpers.processes import ROOT

Graph = Mapping[str, frozenset[str]]


def unit_of(module: str) -> str:
    """`exporter.state.store` -> `state`; `exporter` -> `exporter`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "exporter"


def imported_units(package: Path) -> dict[str, frozenset[str]]:
    """For each unit under `package`, the other units its modules import (at any depth, also
    inside functions and under TYPE_CHECKING)."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
        unit = unit_of(module)
        targets = found.setdefault(unit, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == package.name:
                targets.update("exporter" if a.name == "__version__" else a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package.name + "."):
                targets.add(unit_of(node.module or ""))
            elif isinstance(node, ast.Import):
                targets.update(unit_of(a.name) for a in node.names if a.name.startswith(package.name + "."))
    return {unit: frozenset(t - {unit}) for unit, t in found.items()}


def documented_layers(doc: str) -> dict[str, frozenset[str]]:
    """The `unit -> units` table of a docstring."""
    rows = re.findall(r"^ {4}(\w+)\s+->(.*)$", doc, re.M)
    return {unit: frozenset(allowed.split()) for unit, allowed in rows}


def cycle(graph: Graph) -> list[str]:
    """A cycle of `graph` (its units in order, the first repeated at the end), or []."""
    done: set[str] = set()

    def visit(unit: str, path: list[str]) -> list[str]:
        if unit in path:
            return [*path[path.index(unit) :], unit]
        if unit in done:
            return []
        for target in sorted(graph.get(unit, ())):
            found = visit(target, [*path, unit])
            if found:
                return found
        done.add(unit)
        return []

    for unit in sorted(graph):
        found = visit(unit, [])
        if found:
            return found
    return []


def test_the_documented_layers_have_no_cycle() -> None:
    layers = documented_layers(exporter.__doc__ or "")
    assert "state" in layers and "webhooks" in layers["app"]  # the table was read
    assert cycle(layers) == []


def test_every_import_between_units_is_a_documented_one() -> None:
    layers = documented_layers(exporter.__doc__ or "")
    imports = imported_units(ROOT / "exporter")
    assert set(imports) <= set(layers), "units missing from the table in exporter/__init__.py"
    undocumented = {unit: sorted(targets - layers[unit]) for unit, targets in imports.items()}
    assert {unit: t for unit, t in undocumented.items() if t} == {}
    assert cycle(imports) == []


def test_an_import_cycle_between_subpackages_is_found(tmp_path: Path) -> None:
    """The check sees the kind of cycle the layering removed (state <-> webhooks, through a
    function-level import) and an undocumented import."""
    package = tmp_path / "exporter"
    for unit, source in {
        "state": "from exporter.webhooks.overlay import WebhookState\n",
        "webhooks": "def f() -> None:\n    from exporter.state import store\n",
        "api": "",
    }.items():
        (package / unit).mkdir(parents=True)
        (package / unit / "__init__.py").write_text(source)
    imports = imported_units(package)
    assert imports == {
        "state": frozenset({"webhooks"}),
        "webhooks": frozenset({"state"}),
        "api": frozenset(),
    }
    assert cycle(imports) == ["state", "webhooks", "state"]
    assert cycle(documented_layers("    api ->\n    state -> api\n    webhooks -> state api\n")) == []
