"""The long fuzz profile: the project's property-based tests (every tests/test_*.py with an
`@given`; they use hypothesis with the settings profile of tests/conftest.py) run with many more
examples than the suite's, and how many examples ran per test and how many failed.

pytest runs in a subprocess with FUZZ_EXAMPLES set (the profile's max_examples) and
--hypothesis-show-statistics; the per-test counts come from those statistics, the outcomes from a
JUnit report. The whole run has a wall-clock deadline: past it the subprocess is killed and the
command fails with a clear message. Results go to bench/results/fuzz.json.

    python -m bench.fuzz [--examples 2000] [--deadline 3600] [-k EXPR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
GIVEN = re.compile(r"^\s*@given\(", re.MULTILINE)  # a file with property-based tests
_TEST = re.compile(r"^(\S+\.py::\S+?):\s*$")
# "5 passing, 0 failing, and 0 invalid test cases" (newer) or
# "5 passing examples, 0 failing examples, 0 invalid examples" (older hypothesis)
_COUNTS = re.compile(r"(\d+) passing(?: examples)?, (\d+) failing(?: examples)?,? (?:and )?(\d+) invalid")
_STOPPED = re.compile(r"^\s*- Stopped because (.+)$")


def test_files() -> list[str]:
    """Every test file holding a property-based test (`@given`)."""
    found = [p for p in (ROOT / "tests").glob("test_*.py") if GIVEN.search(p.read_text())]
    return sorted(str(p.relative_to(ROOT)) for p in found)


def parse_statistics(output: str) -> dict[str, dict[str, Any]]:
    """Per test id: passing, failing and invalid examples summed over the phases, and why it
    stopped (hypothesis's --hypothesis-show-statistics)."""
    tests: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    in_stats = False
    for line in output.splitlines():
        if "Hypothesis Statistics" in line:
            in_stats = True
            continue
        if not in_stats:
            continue
        m = _TEST.match(line)
        if m:
            current = tests.setdefault(
                m.group(1), {"passing": 0, "failing": 0, "invalid": 0, "phases": 0, "stopped_because": None}
            )
            continue
        if current is None:
            continue
        counts = _COUNTS.search(line)
        if counts:
            current["passing"] += int(counts.group(1))
            current["failing"] += int(counts.group(2))
            current["invalid"] += int(counts.group(3))
            current["phases"] += 1
        stopped = _STOPPED.match(line)
        if stopped:
            current["stopped_because"] = stopped.group(1).strip()
    return tests


def parse_junit(path: Path) -> dict[str, str]:
    """Per test id (file::name): passed, failed, error or skipped."""
    if not path.exists():
        return {}
    outcomes: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314 - our own report
        module = case.get("classname", "").replace(".", "/")
        name = case.get("name", "")
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
        outcomes[f"{module}.py::{name}"] = outcome
    return outcomes


def run(examples: int, deadline: float, files: list[str], keyword: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="generatorlabs-fuzz-") as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--no-header",
            "--hypothesis-show-statistics",
            f"--junitxml={junit}",
            *files,
        ]
        if keyword:
            cmd += ["-k", keyword]
        env = {**os.environ, "FUZZ_EXAMPLES": str(examples)}
        began = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        overran = False
        try:
            output, _ = proc.communicate(timeout=deadline)
        except subprocess.TimeoutExpired:
            overran = True
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate(timeout=60)
        wall = time.monotonic() - began
        stats = parse_statistics(output or "")
        outcomes = parse_junit(junit)
    tests = {}
    for test_id in sorted(set(stats) | set(outcomes)):
        tests[test_id] = {
            "outcome": outcomes.get(test_id, "unknown" if overran else "not reported"),
            **stats.get(test_id, {"passing": None, "failing": None, "invalid": None}),
        }
    tail = (output or "").strip().splitlines()[-1:] or [""]
    return {
        "fuzz_examples": examples,
        "files": files,
        "deadline_seconds": deadline,
        "overran_deadline": overran,
        "pytest_exit_code": None if overran else proc.returncode,
        "pytest_summary": tail[0],
        "tests": tests,
        "totals": {
            "tests": len(tests),
            "property_tests": sum(1 for t in tests.values() if t.get("passing") is not None),
            "examples_run": sum((t.get("passing") or 0) + (t.get("failing") or 0) for t in tests.values()),
            "examples_failed": sum(t.get("failing") or 0 for t in tests.values()),
            "examples_invalid": sum(t.get("invalid") or 0 for t in tests.values()),
            "tests_failed": sum(1 for t in tests.values() if t["outcome"] in ("failed", "error")),
        },
        "wall_seconds": round(wall, 1),
        "failure_output": (output or "")[-6000:] if proc.returncode not in (0, None) or overran else "",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=2000, help="FUZZ_EXAMPLES: examples per property test")
    p.add_argument("--deadline", type=float, default=3600.0, help="wall-clock seconds for the whole run")
    p.add_argument("-k", dest="keyword", help="only tests matching this pytest -k expression")
    args = p.parse_args(argv)
    files = test_files()
    if not files:
        print("no test file with a property-based test (@given) found", file=sys.stderr)
        return 2
    result = run(args.examples, args.deadline, files, args.keyword)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fuzz.json").write_text(json.dumps(result, indent=2))
    others = {k: t for k, t in result["tests"].items() if t.get("passing") is None}
    for test_id, t in result["tests"].items():
        if t.get("passing") is not None:
            print(
                f"{t['outcome']:8s} {test_id}: {t['passing'] + t['failing']} examples, "
                f"{t['failing']} failing, {t['invalid']} invalid"
            )
    failed_others = [k for k, t in others.items() if t["outcome"] != "passed"]
    print(
        f"{len(others)} other tests in those files: {len(others) - len(failed_others)} passed"
        + "".join(f"\n{others[k]['outcome']:8s} {k}" for k in failed_others)
    )
    totals = result["totals"]
    print(
        f"{totals['property_tests']} property tests, {totals['examples_run']} examples run, "
        f"{totals['examples_failed']} failed; {totals['tests_failed']} of {totals['tests']} tests failed "
        f"({result['wall_seconds']} s; FUZZ_EXAMPLES={args.examples})"
    )
    print(f"results: {RESULTS / 'fuzz.json'}")
    if result["overran_deadline"]:
        print(f"bench.fuzz: the run overran its {args.deadline:g} s deadline and was killed", file=sys.stderr)
        return 2
    if result["failure_output"]:
        print(result["failure_output"][-3000:], file=sys.stderr)
    return 0 if result["pytest_exit_code"] == 0 and totals["tests_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
