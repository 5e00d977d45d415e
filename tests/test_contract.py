"""The metric contract is the exposition: a scrape of a state in which every metric has a series
shows exactly the contract's families, each with its type, label set and help, in both formats;
no module but the contract spells a metric's name; the README table comes from the contract."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.metrics import contract
from exporter.metrics.contract import ALL_METRICS, DATA_METRICS, MetricSpec, markdown_table
from tests.helpers.metrics import families, full_scraper, scrape
from tests.helpers.processes import ROOT

EXPORTER = ROOT / "exporter"
SUFFIXES = {"histogram": ("_bucket", "_count", "_sum")}


def text_family(spec: MetricSpec) -> tuple[str, str]:
    """(family name, type) as prometheus_client's text parser reads the family of `spec`."""
    return spec.name.removesuffix("_total") if spec.type == "counter" else spec.name, spec.type


def openmetrics_family(spec: MetricSpec) -> tuple[str, str]:
    """(family name, type) in OpenMetrics: the renderer writes its `_info` gauges as info
    families; the self-metrics (prometheus_client) keep exporter_build_info a gauge."""
    if spec in DATA_METRICS and spec.name.endswith("_info"):
        return spec.name.removesuffix("_info"), "info"
    return text_family(spec)


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_a_full_scrape_shows_exactly_the_contract_families(openmetrics: bool) -> None:
    """Every family of the contract, and no other, with the contract's type, labels and samples."""
    parsed = families(scrape(full_scraper(), openmetrics), openmetrics)
    expected = {spec: (openmetrics_family if openmetrics else text_family)(spec) for spec in ALL_METRICS}
    assert set(parsed) == {name for name, _ in expected.values()}
    for spec, (name, kind) in expected.items():
        parsed_kind, samples = parsed[name]
        assert parsed_kind == kind, spec.name
        assert samples, f"{spec.name} has no series in the full state"
        labels = {label for s in samples for label in s.labels} - {"le"}
        assert labels == set(spec.labels), spec.name
        assert all(set(s.labels) - {"le"} == labels for s in samples), spec.name
        names = {spec.name + suffix for suffix in SUFFIXES.get(spec.type, ("",))}
        assert {s.name for s in samples} == names, spec.name


def test_every_family_carries_the_contract_help() -> None:
    """Data families add where their series come from; the self-metrics' help is the contract's."""
    text = scrape(full_scraper(), openmetrics=False)
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))
    for spec in ALL_METRICS:
        name, _ = text_family(spec)
        shown = helps[spec.name if spec.type != "counter" else f"{name}_total"]
        if spec in DATA_METRICS:
            assert shown.startswith(spec.help + " ("), spec.name
        else:
            assert shown == spec.help, spec.name


def test_the_contract_declares_each_metric_once() -> None:
    specs = [value for value in vars(contract).values() if isinstance(value, MetricSpec)]
    assert len({s.name for s in ALL_METRICS}) == len(ALL_METRICS)
    assert set(specs) == set(ALL_METRICS)


def test_sample_line_pieces_put_each_label_value_in_its_place() -> None:
    spec = MetricSpec("m", "gauge", ("a", "b"), "", "", "")
    first, between, close = spec.pieces
    assert f"{first}1{between}2{close}3\n" == 'm{a="1",b="2"} 3\n'
    assert MetricSpec("m", "gauge", (), "", "", "").pieces == ("m ",)


# -- no metric is spelled outside the contract ---------------------------------------------------

NAMES = (
    {m.name for m in ALL_METRICS}
    | {m.name.removesuffix("_total") for m in ALL_METRICS}  # how prometheus_client is given a counter
    | {m.name.removesuffix("_info") for m in ALL_METRICS}  # an info family in OpenMetrics
)
SPELLED = re.compile(
    r"(?<![\w])(" + "|".join(sorted(map(re.escape, NAMES), key=len, reverse=True)) + r")(?!\w)"
)
LABEL_SET = re.compile(
    r"(?<![\w])(" + "|".join({re.escape(lbl) for m in ALL_METRICS for lbl in m.labels}) + ')="'
)


def literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal but docstrings (f-strings: their literal parts)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def spelled(source: str, pattern: re.Pattern[str]) -> list[str]:
    return [f"{line}: {m.group(0)}" for line, text in literals(source) for m in pattern.finditer(text)]


def modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if p.name != "contract.py")


def test_the_scan_sees_a_metric_name_or_a_label_selector_in_code_but_not_in_a_docstring() -> None:
    source = '"""Sets generatorlabs_up."""\nUP = "generatorlabs_up"\nLINE = f\'x{{host_id="{1}"}}\'\n'
    assert spelled(source, SPELLED) == ["2: generatorlabs_up"]
    assert spelled(source, LABEL_SET) == ['3: host_id="']
    assert spelled('X = "generatorlabs_upper generatorlabs_up_x"\n', SPELLED) == []


def test_no_module_but_the_contract_spells_a_metric_name() -> None:
    found = {
        str(path.relative_to(ROOT)): hits
        for path in modules(EXPORTER)
        if (hits := spelled(path.read_text(encoding="utf-8"), SPELLED))
    }
    assert found == {}


def test_the_renderer_and_self_metrics_spell_no_label_selector() -> None:
    found = {
        str(path.relative_to(ROOT)): hits
        for path in modules(EXPORTER / "metrics")
        if (hits := spelled(path.read_text(encoding="utf-8"), LABEL_SET))
    }
    assert found == {}


# -- the README table ----------------------------------------------------------------------------


def test_the_metric_table_is_printed_from_the_contract() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter.metrics"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == markdown_table() + "\n"
    assert result.stdout.count("\n| `") == len(ALL_METRICS)
