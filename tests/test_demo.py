"""End to end: the README's first command as a real process, scraped over loopback and checked
with Debian's promtool; and the metric contract pinned against that real scrape."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator

import pytest

from exporter.api.endpoints import COLLECTORS
from exporter.config.parse import COLLECTOR_KEYS, SECTIONS
from exporter.metrics.contract import ALL_METRICS
from tests.helpers.contract import FLAGS
from tests.helpers.processes import (
    DEADLINE,
    ROOT,
    Exporter,
    exporter_env,
    get,
    need_binary,
    start_exporter,
    terminate,
    value,
    wait_for,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exporter]:
    home = tmp_path_factory.mktemp("demo")
    # a fresh state file: a cold start
    exporter = start_exporter(
        home, "--demo", "--log.format", "json", env=exporter_env(XDG_STATE_HOME=str(home / "state"))
    )
    try:
        yield exporter
    finally:
        terminate(exporter, clean=False)


def scrape(base: str) -> str:
    status, text = get(base + "/metrics")
    assert status == 200
    return text


def test_demo_serves_every_metric_of_the_contract(demo: Exporter) -> None:
    base = demo.base
    wait_for(lambda: "generatorlabs_up 1.0" in scrape(base), "every collector to succeed")
    wait_for(
        lambda: (
            "hetrixtools_blacklist_monitor_info{" in scrape(base)
            and "generatorlabs_agent_info{" in scrape(base)
        ),
        "the simulator's first webhooks",
    )
    text = scrape(base)
    declared = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    ours = {n for n in declared if n.startswith(("generatorlabs_", "hetrixtools_"))}
    assert ours == {m.name for m in ALL_METRICS}
    for name in (
        "generatorlabs_rbl_host_info",
        "generatorlabs_rbl_host_listed",
        "generatorlabs_rbl_listing_info",
        "generatorlabs_cert_expiry_days",
        "generatorlabs_cert_monitor_info",
        "generatorlabs_cert_active_errors",
        "generatorlabs_api_rate_limit_remaining",
        "generatorlabs_collector_success",
        "generatorlabs_webhook_events_total",
        "generatorlabs_cert_changes_total",
        "generatorlabs_billing_balance_usd",
        "hetrixtools_blacklist_monitor_listed",
    ):
        assert re.search(rf"^{name}[{{ ]", text, re.M), name
    assert value(text, "generatorlabs_rbl_hosts") == 120


def test_the_rate_limit_is_shown_per_window_and_the_status_page_names_it(demo: Exporter) -> None:
    """The demo API answers mostly for its per-second window (remaining 95-98): that is labelled
    window="1", never mixed with the hourly one, and the status page says which window it is."""
    base = demo.base
    wait_for(
        lambda: 'generatorlabs_api_rate_limit_remaining{window="1"}' in scrape(base),
        "a per-second rate-limit answer",
    )
    text = scrape(base)
    windows = set(re.findall(r'^generatorlabs_api_rate_limit_remaining\{window="([^"]*)"\}', text, re.M))
    assert windows <= {"1", "3600", "unknown"}
    assert re.search(r'^generatorlabs_api_rate_limit_reset_timestamp_seconds\{window="1"\} ', text, re.M)
    status, page = get(base + "/")
    assert status == 200 and re.search(r"\d+ left in its per-second window", page)


def test_promtool_checks_a_demo_scrape(demo: Exporter) -> None:
    promtool = need_binary("promtool")
    base = demo.base
    result = subprocess.run(
        [promtool, "check", "metrics"], input=scrape(base).encode(), capture_output=True, check=False
    )
    problems = (result.stdout + result.stderr).decode().strip().splitlines()
    days = ("generatorlabs_cert_expiry_days", "generatorlabs_cert_profile_expiry_warning_days")
    assert all(any(name in p for name in days) for p in problems), problems  # days, as the alerts read


def test_demo_data_changes_by_itself(demo: Exporter) -> None:
    base = demo.base
    first = value(scrape(base), "generatorlabs_api_requests_total")
    wait_for(
        lambda: value(scrape(base), "generatorlabs_api_requests_total") > first,
        "new polls to show on /metrics",
    )
    status, page = get(base + "/")
    assert status == 200 and "API budget" in page


def test_sighup_reloads_and_sigterm_stops_cleanly(demo: Exporter) -> None:
    demo.process.send_signal(signal.SIGHUP)
    demo.process.send_signal(signal.SIGTERM)
    assert demo.process.wait(timeout=DEADLINE) == 0
    log = demo.log()
    events = [json.loads(line)["event"] for line in log.splitlines() if line.startswith("{")]
    assert "config.reloaded" in events and "exporter.stopping" in events
    assert events.count("poll.ok") >= 8


def test_readme_documents_every_metric_flag_key_and_endpoint() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [m.name for m in ALL_METRICS if f"`{m.name}`" not in readme]
    missing += [f for f in FLAGS if f"`{f}" not in readme and f != "--help"]
    missing += [f"{s}.{k}" for s, keys in SECTIONS.items() for k in keys if f"`{s}.{k}`" not in readme]
    missing += [f"collectors.<name>.{k}" for k in COLLECTOR_KEYS if f"`collectors.<name>.{k}`" not in readme]
    missing += [c for c in COLLECTORS if f"`{c}`" not in readme]
    endpoints = (
        "/metrics",
        "/-/healthy",
        "/-/ready",
        "/-/reload",
        "/webhooks/generatorlabs",
        "/webhooks/hetrixtools/<token>",
        "/-/webhooks/hetrixtools/monitors/<monitor>",
        "/-/webhooks/agents/<agent_id>",
    )
    missing += [e for e in endpoints if f"`{e}`" not in readme]
    assert missing == []


def test_readme_metric_table_is_the_generated_one() -> None:
    from exporter.metrics.contract import markdown_table

    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- metrics:begin", 1)[1].split("-->", 1)[1]
    section = section.split("<!-- metrics:end -->", 1)[0]
    assert section.strip() == markdown_table()
