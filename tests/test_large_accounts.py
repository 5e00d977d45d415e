"""The lighter exposition for large accounts (exposition.per_host: listed), and the compressed
exposition as a real Prometheus reads it.

Under `listed`, per-host series exist only for hosts listed or paused and per-monitor
HetrixTools series only for monitors listed, while the totals count every host; the shipped
alert rules still fire for a listed host (promtool, on series taken from a real render). Debian's
Prometheus scrapes the multi-member gzip body of a real exporter: up is 1 and every sample
arrives."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.api.records import Host
from exporter.config.model import PER_HOST_CHOICES
from exporter.config.parse import parse
from exporter.errors import ConfigError
from exporter.metrics.render import PER_HOST
from exporter.state.events import HetrixMonitor
from exporter.state.overlay import WebhookState
from exporter.state.snapshot import Snapshot
from exporter.state.store import StateStore
from tests.helpers.metrics import NOW, scrape, scraper_for
from tests.helpers.processes import (
    ROOT,
    get,
    need_binary,
    start_exporter,
    start_prometheus,
    terminate,
    wait_for,
)

RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"


def host(ident: str, listed: bool = False, paused: bool = False, name: str = "mx") -> Host:
    rbls = ("PSBL", "SpamCop") if listed else ()
    first = NOW - 3600 if listed else None
    return Host(
        ident, f"192.0.2.{ident[2:]}", name, "ip", "RP1", paused, listed, len(rbls), rbls, NOW - 100, first
    )


def account() -> StateStore:
    """Ten hosts: HT1 listed, HT2 paused, HT3 listed and paused, the others clean; two
    HetrixTools monitors, one listed."""
    hosts = {f"HT{i}": host(f"HT{i}", listed=i in (1, 3), paused=i in (2, 3)) for i in range(10)}
    times = dict.fromkeys(hosts, NOW - 10)
    webhooks = WebhookState()
    webhooks.apply_hetrix(
        [
            HetrixMonitor("192.0.2.50", "listed", 1, ("b.example",)),
            HetrixMonitor("192.0.2.51", "clean", 0, ()),
        ],
        NOW - 30,
    )
    return StateStore([Snapshot("rbl_hosts", hosts, NOW - 10, NOW - 10, None, times)], webhooks)


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {s.name: [] for f in parse_text(text) for s in f.samples} | {
        name: [(s.labels, s.value) for f in parse_text(text) for s in f.samples if s.name == name]
        for name in {s.name for f in parse_text(text) for s in f.samples}
    }


def test_the_setting_is_one_of_two_words_named_alike_in_config_and_renderer() -> None:
    assert PER_HOST == PER_HOST_CHOICES == ("all", "listed")
    assert parse({"exposition": {"per_host": "listed"}}).exposition.per_host == "listed"
    assert parse({}).exposition.per_host == "all"
    with pytest.raises(ConfigError) as info:
        parse({"exposition": {"per_host": "some"}})
    assert info.value.problems == ["exposition.per_host: must be one of all, listed, got 'some'"]


def test_listed_keeps_per_host_series_of_listed_and_paused_hosts_and_every_total() -> None:
    full = samples(scrape(scraper_for(account(), NOW, "all"), openmetrics=False))
    light = samples(scrape(scraper_for(account(), NOW, "listed"), openmetrics=False))
    ids = {labels["host_id"] for labels, _ in light["generatorlabs_rbl_host_info"]}
    assert ids == {"HT1", "HT2", "HT3"}
    assert {labels["host_id"] for labels, _ in full["generatorlabs_rbl_host_info"]} == {
        f"HT{i}" for i in range(10)
    }
    for name in (
        "generatorlabs_rbl_host_listed",
        "generatorlabs_rbl_host_paused",
        "generatorlabs_rbl_host_listings",
    ):
        assert {labels["host_id"] for labels, _ in light[name]} == ids, name
        assert [s for s in full[name] if s[0]["host_id"] in ids] == light[name], name
    assert light["generatorlabs_rbl_listing_info"] == full["generatorlabs_rbl_listing_info"]
    assert light["generatorlabs_rbl_hosts"] == full["generatorlabs_rbl_hosts"] == [({}, 10.0)]
    assert light["generatorlabs_rbl_hosts_listed"] == full["generatorlabs_rbl_hosts_listed"] == [({}, 2.0)]
    monitors = {labels["monitor"] for labels, _ in light["hetrixtools_blacklist_monitor_info"]}
    assert monitors == {"192.0.2.50"}
    assert len(full["hetrixtools_blacklist_monitor_info"]) == 2


def series_file(text: str, minutes: int) -> list[dict[str, str]]:
    """promtool input series: every sample of a text exposition, constant for `minutes`."""
    out = []
    for family in parse_text(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out.append({"series": f"{s.name}{{{labels}}}", "values": f"{s.value:g}x{minutes}"})
    return out


def firing(alert: str, label: str) -> str:
    return f'count by ({label}) (ALERTS{{alertname="{alert}",alertstate="firing"}})'


def test_the_shipped_alerts_fire_for_a_listed_host_under_listed(tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    text = scrape(scraper_for(account(), NOW, "listed"), openmetrics=False)
    cases = [  # (expression, evaluated at, the samples expected: labels and value)
        # HT1 is listed; HT3 too, but paused: silent; the others are not even exported
        (firing("GeneratorLabsHostListed", "host_id"), "15m", [('{host_id="HT1"}', 1)]),
        (firing("GeneratorLabsHostListed", "host_id"), "5m", []),  # inside its for: window
        (firing("HetrixToolsMonitorListed", "monitor"), "15m", [('{monitor="192.0.2.50"}', 1)]),
        (
            "count by (host_id) (generatorlabs_rbl_host_listed == 1)",
            "1m",
            [('{host_id="HT1"}', 1), ('{host_id="HT3"}', 1)],
        ),
        ("generatorlabs_rbl_hosts", "1m", [("generatorlabs_rbl_hosts", 10)]),
    ]
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series_file(text, 30),
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": at,
                        "exp_samples": [{"labels": labels, "value": value} for labels, value in expected],
                    }
                    for expr, at, expected in cases
                ],
            }
        ],
    }
    path = tmp_path / "listed_test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def query(base: str, expr: str) -> list[dict[str, Any]]:
    status, body = get(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}")
    assert status == 200, body
    result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
    return result


STABLE = ("generatorlabs_rbl_host_info", "generatorlabs_rbl_host_paused", "generatorlabs_cert_monitor_info")


def test_a_real_prometheus_reads_the_multi_member_gzip_body(tmp_path: Path) -> None:
    need_binary("prometheus")
    exporter = start_exporter(tmp_path, "--demo", "--config.file", str(write_config(tmp_path)))
    prom = start_prometheus(tmp_path, [f"127.0.0.1:{exporter.port}"])
    try:
        wait_for(
            lambda: query(prom.base, 'up{job="generatorlabs"} == 1'), "Prometheus to scrape the exporter"
        )
        status, text = get(exporter.base + "/metrics", {"Accept-Encoding": "identity"})
        assert status == 200
        ours = {name: len(samples) for name, samples in samples(text).items()}
        for name in STABLE:
            assert ours[name] > 10, name
            got = query(prom.base, f"count({name})")
            assert int(got[0]["value"][1]) == ours[name], name
        scraped = int(float(query(prom.base, 'scrape_samples_scraped{job="generatorlabs"}')[0]["value"][1]))
        own = sum(
            n for name, n in ours.items() if not name.startswith(("generatorlabs_rbl", "generatorlabs_cert"))
        )
        assert abs(scraped - sum(ours.values())) <= own  # only self-metrics may move between scrapes
    finally:
        terminate(prom.process, clean=False)
        terminate(exporter)


def write_config(home: Path) -> Path:
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump({"state": {"path": str(home / "state.sqlite")}}))
    return path
