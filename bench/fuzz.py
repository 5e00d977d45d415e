"""The long fuzz profile: the project's property-based tests (every tests/test_*.py with an
`@given`; they use hypothesis with the settings profile of tests/conftest.py) run with many more
examples than the suite's, and how many examples ran per test and how many failed.

pytest runs in a subprocess with FUZZ_EXAMPLES set (the profile's max_examples) and
--hypothesis-show-statistics; the per-test counts come from those statistics, the outcomes from a
JUnit report. The whole run has a wall-clock deadline: past it the subprocess is killed and the
command fails with a clear message. Results go to <out>/fuzz.json.

    python -m bench.fuzz [--examples 2000] [--deadline 3600] [-k EXPR] [--out bench/results]

Exit status: 0 when every test passed, 1 when a test or an example failed, 2 when there was
nothing to fuzz or the deadline killed the run. No I/O beyond the pytest subprocess, its
temporary JUnit report and the results file.
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

DEFAULT_EXAMPLES = 2000  # examples per property test; the suite's own profile runs 40
DEFAULT_DEADLINE = 3600.0  # wall-clock seconds for the whole run (2000 examples took about 400 s)
KILL_GRACE = 60.0  # seconds to collect the output of a pytest killed at the deadline
FAILURE_TAIL = 6000  # characters of pytest's output kept in fuzz.json when something failed
PRINTED_TAIL = 3000  # of those, the characters printed to stderr
EXIT_FAILED = 1  # a test or an example failed
EXIT_UNUSABLE = 2  # no run to judge: nothing to fuzz, or the deadline killed it


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


def pytest_command(junit: Path, files: list[str], keyword: str | None) -> list[str]:
    """The pytest invocation: quiet, no cache, hypothesis statistics and a JUnit report."""
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
    return [*cmd, "-k", keyword] if keyword else cmd


def run_pytest(cmd: list[str], examples: int, deadline: float) -> tuple[str, int | None, bool]:
    """Run `cmd` with FUZZ_EXAMPLES set: its combined output, its exit code (None when it was
    killed) and whether it overran `deadline`. Past the deadline the whole process group is
    killed; if even that does not end it within KILL_GRACE, this fails with a clear message."""
    env = {**os.environ, "FUZZ_EXAMPLES": str(examples)}
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=deadline)
        return output or "", proc.returncode, False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        output, _ = proc.communicate(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired as err:
        raise SystemExit(
            f"bench.fuzz: pytest (pid {proc.pid}) overran its {deadline:g} s deadline and still had not "
            f"exited {KILL_GRACE:g} s after SIGKILL"
        ) from err
    return output or "", None, True


def per_test(output: str, junit: Path, overran: bool) -> dict[str, dict[str, Any]]:
    """Per test id: its outcome (from the JUnit report) and its example counts (from the
    statistics; None for a test that is not property-based)."""
    stats = parse_statistics(output)
    outcomes = parse_junit(junit)
    tests = {}
    for test_id in sorted(set(stats) | set(outcomes)):
        tests[test_id] = {
            "outcome": outcomes.get(test_id, "unknown" if overran else "not reported"),
            **stats.get(test_id, {"passing": None, "failing": None, "invalid": None}),
        }
    return tests


def totals(tests: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Tests, property tests, examples run, failed and invalid, and tests failed."""
    return {
        "tests": len(tests),
        "property_tests": sum(1 for t in tests.values() if t.get("passing") is not None),
        "examples_run": sum((t.get("passing") or 0) + (t.get("failing") or 0) for t in tests.values()),
        "examples_failed": sum(t.get("failing") or 0 for t in tests.values()),
        "examples_invalid": sum(t.get("invalid") or 0 for t in tests.values()),
        "tests_failed": sum(1 for t in tests.values() if t["outcome"] in ("failed", "error")),
    }


def run(examples: int, deadline: float, files: list[str], keyword: str | None) -> dict[str, Any]:
    """Run the property-based tests of `files` with `examples` examples each: the result
    written to fuzz.json."""
    with tempfile.TemporaryDirectory(prefix="generatorlabs-fuzz-") as tmp:
        junit = Path(tmp) / "junit.xml"
        began = time.monotonic()
        output, exit_code, overran = run_pytest(pytest_command(junit, files, keyword), examples, deadline)
        wall = time.monotonic() - began
        tests = per_test(output, junit, overran)
    tail = output.strip().splitlines()[-1:] or [""]
    return {
        "fuzz_examples": examples,
        "files": files,
        "deadline_seconds": deadline,
        "overran_deadline": overran,
        "pytest_exit_code": exit_code,
        "pytest_summary": tail[0],
        "tests": tests,
        "totals": totals(tests),
        "wall_seconds": round(wall, 1),
        "failure_output": output[-FAILURE_TAIL:] if exit_code not in (0, None) or overran else "",
    }


def print_report(result: dict[str, Any]) -> None:
    """Per property test its examples; the other tests of those files in one line unless they failed;
    then the totals."""
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
        f"({result['wall_seconds']} s; FUZZ_EXAMPLES={result['fuzz_examples']})"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fuzz", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument(
        "--examples", type=int, default=DEFAULT_EXAMPLES, help="FUZZ_EXAMPLES: examples per property test"
    )
    p.add_argument(
        "--deadline", type=float, default=DEFAULT_DEADLINE, help="wall-clock seconds for the whole run"
    )
    p.add_argument("-k", dest="keyword", help="only tests matching this pytest -k expression")
    p.add_argument("--out", type=Path, default=RESULTS, help="directory of fuzz.json")
    args = p.parse_args(argv)
    files = test_files()
    if not files:
        print("no test file with a property-based test (@given) found", file=sys.stderr)
        return EXIT_UNUSABLE
    result = run(args.examples, args.deadline, files, args.keyword)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz.json").write_text(json.dumps(result, indent=2))
    print_report(result)
    print(f"results: {args.out / 'fuzz.json'}")
    if result["overran_deadline"]:
        print(f"bench.fuzz: the run overran its {args.deadline:g} s deadline and was killed", file=sys.stderr)
        return EXIT_UNUSABLE
    if result["failure_output"]:
        print(result["failure_output"][-PRINTED_TAIL:], file=sys.stderr)
    return 0 if result["pytest_exit_code"] == 0 and result["totals"]["tests_failed"] == 0 else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
