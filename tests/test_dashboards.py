"""The Grafana dashboards: made by exporter.kit, valid dashboard JSON, every query filtered by the
`job` and `instance` variables, and every panel's query returning data from a real Prometheus
(Debian's) that scrapes TWO exporters running the demo: data from each, and only from the one
selected."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import kit
from exporter.webhooks.signature import sign
from tests.helpers.processes import (
    ROOT,
    Exporter,
    get,
    start_exporter,
    start_prometheus,
    terminate,
    wait_for,
)

DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
MODERN = {"stat", "timeseries", "table", "bargauge", "gauge", "piechart", "state-timeline", "text", "row"}
SELECTOR = re.compile(r"\b((?:generatorlabs|hetrixtools)_[a-z0-9_]+)\b(\{[^}]*\})?")
BUILTIN = {"__rate_interval", "__interval", "__range", "datasource"}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in load(path)["panels"]:
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["expr"]))
    return out


def variables(d: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in d["templating"]["list"]}


def test_the_committed_dashboards_are_the_kits() -> None:
    """grafana/dashboards/ holds exactly what `print dashboards` hands an operator."""
    committed = {path.name: path.read_text() for path in DASHBOARDS}
    assert committed == kit.dashboards(), "run python deploy/kubernetes/generate.py"


def test_dashboards_are_valid_dashboard_json() -> None:
    assert len(DASHBOARDS) >= 2
    uids = set()
    for path in DASHBOARDS:
        d = load(path)
        assert d["uid"] and d["uid"] not in uids and len(d["uid"]) <= 40
        uids.add(d["uid"])
        assert d["title"] and isinstance(d["schemaVersion"], int)
        assert variables(d)["datasource"]["type"] == "datasource"
        assert variables(d)["datasource"]["query"] == "prometheus"
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
        for panel in d["panels"]:
            assert panel["type"] in MODERN, f"{path.name}: {panel['type']} is not a modern panel"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"] and target["expr"]
            refs = {target["refId"] for target in panel["targets"]}
            for step in panel.get("transformations", []):
                assert step["options"].get("configRefId", "A") in refs, (path.name, panel["title"])
    provisioning = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/generatorlabs.yaml").read_text())
    assert provisioning["providers"][0]["type"] == "file"


def test_job_and_instance_variables_filter_every_query() -> None:
    """Two exporters (two accounts) scraped by one Prometheus stay apart: every series a query
    reads is selected by the multi-value `job` and `instance` variables."""
    for path in DASHBOARDS:
        found = variables(load(path))
        for name in ("job", "instance"):
            assert found[name]["type"] == "query" and found[name]["multi"] and found[name]["includeAll"]
            assert found[name]["query"].startswith("label_values(generatorlabs_up")
    for dashboard, panel, expr in queries():
        for metric, labels in SELECTOR.findall(expr):
            assert 'job=~"$job"' in labels and 'instance=~"$instance"' in labels, (dashboard, panel, metric)


def test_every_variable_is_defined_and_used() -> None:
    """The warning and critical days, the host and RBL filters: each variable a dashboard defines
    is used by one of its queries, and each it uses is defined (no hard-coded thresholds left)."""
    for path in DASHBOARDS:
        d = load(path)
        defined = set(variables(d))
        texts = [t["expr"] for p in d["panels"] for t in p["targets"]]
        texts += [p["title"] for p in d["panels"]] + [v.get("query", "") for v in d["templating"]["list"]]
        used = {name for text in texts for name in re.findall(r"\$(\w+)", text)}
        assert used - BUILTIN <= defined, f"{path.name}: undefined {used - BUILTIN - defined}"
        exprs = " ".join(t["expr"] for p in d["panels"] for t in p["targets"])
        for name in defined - {"datasource"}:
            assert f"${name}" in exprs, f"{path.name}: ${name} is used by no query"
    rbl = variables(load(ROOT / "grafana/dashboards/rbl-certificates.json"))
    assert {"host", "rbl", "warning_days", "critical_days"} <= set(rbl)


def test_paused_hosts_and_monitors_are_left_out_as_the_alerts_do() -> None:
    for dashboard, panel, expr in queries():
        if re.search(r"generatorlabs_rbl_(host_listed|host_listings|listing_info|host_first_listed)", expr):
            assert "generatorlabs_rbl_host_paused" in expr, (dashboard, panel)
        if re.search(r"generatorlabs_cert_(expiry_days|error_info)", expr):
            assert "generatorlabs_cert_monitor_paused" in expr, (dashboard, panel)


def test_the_dashboards_link_to_each_other_carrying_the_variables() -> None:
    loaded = [load(path) for path in DASHBOARDS]
    for d in loaded:
        for other in (o for o in loaded if o is not d):
            reaching = [
                link
                for link in d["links"]
                if (link["type"] == "dashboards" and set(link["tags"]) <= set(other["tags"]))
                or other["uid"] in link.get("url", "")
            ]
            assert reaching, f"{d['uid']} has no link to {other['uid']}"
            assert all(link["includeVars"] and link["keepTime"] for link in reaching)


def test_the_rate_limit_panels_show_the_hourly_window() -> None:
    rate_limit = [q for q in queries() if "generatorlabs_api_rate_limit_remaining" in q[2]]
    assert rate_limit
    for dashboard, panel, expr in rate_limit:
        assert 'window="3600"' in expr, (dashboard, panel)


def test_a_listings_timeline_exists() -> None:
    panels = load(ROOT / "grafana/dashboards/rbl-certificates.json")["panels"]
    timeline = [
        p for p in panels if p["type"] in {"state-timeline", "timeseries"} and "timeline" in p["title"]
    ]
    assert timeline and "generatorlabs_rbl_listing_info" in timeline[0]["targets"][0]["expr"]


# ---- against a real Prometheus scraping two demo exporters ---------------------------------------


def expand(expr: str, instance: str = ".*") -> str:
    """Grafana's variables, as a dashboard fills them in; `instance` is a regex, All is `.*`."""
    values = {
        "__rate_interval": "1m",
        "job": "generatorlabs",
        "instance": instance,
        "host": ".*",
        "rbl": ".*",
        "warning_days": "14",
        "critical_days": "3",
    }
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], expr)


def one(instance: str) -> str:
    """The `instance` regex Grafana writes for a single selected exporter (escaped)."""
    return re.escape(instance).replace("\\", "\\\\")


@dataclass
class Stack:
    """Prometheus's API and the two exporters' instance labels."""

    base: str
    instances: tuple[str, str]


SECRET = "whsec_dashboard_test_secret"
HX_TOKEN = "hx-dashboard-token-0123456789"
HOSTILE_TEXT = '\ud800 lone surrogate, NUL \x00, bell \x07, "quotes", back\\slash,\nnewline ' + "x" * 5000
HOSTILE_AGENT = "AG" + "e" * 32


def start_demo(home: Path) -> Exporter:
    config = {
        "webhooks": {"enabled": True, "secrets": [SECRET], "hetrixtools_token": HX_TOKEN},
        "state": {"path": str(home / "state.sqlite")},
    }
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    return start_exporter(home, "--demo", "--config.file", str(home / "config.yaml"), ready=False)


def ready(url: str) -> None:
    """Wait (bounded) for the exporter. No webhook is rejected on purpose: the rejection panel
    must have data from the start (the counters exist at 0), on exporter B too, which gets no
    hostile webhook at all."""
    wait_for(lambda: get(url + "/-/ready")[0] == 200, "the exporter")


def scraped_enough(base: str, instance: str) -> None:
    at = f'instance="{instance}"'
    wait_for(
        lambda: (
            series(base, f"count_over_time(generatorlabs_rbl_hosts{{{at}}}[1m]) >= 8")
            and series(base, f"generatorlabs_agent_info{{{at}}}")
            and series(base, f"hetrixtools_blacklist_monitor_info{{{at}}}")
        ),
        f"Prometheus to scrape enough of {instance}",
    )


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two demo exporters (A gets the hostile webhooks too) and one Prometheus scraping both."""
    exporters = [start_demo(tmp_path_factory.mktemp(name)) for name in ("a", "b")]
    targets = [f"127.0.0.1:{e.port}" for e in exporters]
    prom = start_prometheus(tmp_path_factory.mktemp("prometheus"), targets, interval="500ms")
    instances = (f"127.0.0.1:{exporters[0].port}", f"127.0.0.1:{exporters[1].port}")
    try:
        for exporter in exporters:
            ready(exporter.base)
        send_hostile_webhooks(exporters[0].base, SECRET)
        for instance in instances:
            scraped_enough(prom.base, instance)
        yield Stack(prom.base, instances)
    finally:
        terminate(prom.process, clean=False)
        for exporter in exporters:
            terminate(exporter, clean=False)


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def send_hostile_webhooks(exporter_url: str, secret: str) -> None:
    """Text no label should ever hold, through both receivers, and values no gauge may take."""

    def signed(event: dict[str, Any]) -> int:
        body = json.dumps(event).encode()  # json escapes the lone surrogate as \ud800
        return post(
            exporter_url + "/webhooks/generatorlabs",
            body,
            {"X-Webhook-Signature": sign(body, secret, int(time.time()))},
        )

    base = {"event_date": "2026-01-01T00:00:00Z"}
    agent = {"id": HOSTILE_AGENT, "name": HOSTILE_TEXT}
    timeout = {**base, "event_sid": "TA" + "e" * 32, "event_type": "agent.timeout", "agent": agent}
    assert signed({**timeout, "instances": ["i-1"]}) == 204
    balance = {**base, "event_sid": "TA" + "f" * 32, "event_type": "billing.balance.alert"}
    assert signed({**balance, "balance": "NaN", "alert_threshold": "Infinity"}) == 400
    chunk = [
        {
            "monitor": "hostile-\u2028.example",
            "label": HOSTILE_TEXT,
            "blacklisted_now": "1",
            "blacklisted_on": [{"rbl": HOSTILE_TEXT, "delist": "x"}],
        },
        {"monitor": "infinite.example", "label": "", "blacklisted_now": "inf", "blacklisted_on": None},
    ]
    assert post(f"{exporter_url}/webhooks/hetrixtools/{HX_TOKEN}", json.dumps(chunk).encode(), {}) == 200


def series(base: str, expr: str) -> list[Any]:
    status, text = get(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}")
    assert status == 200, text
    result: list[Any] = json.loads(text)["data"]["result"]
    return result


def instances_of(base: str, expr: str) -> set[str | None]:
    return {r["metric"].get("instance") for r in series(base, expr)}


def test_prometheus_ingests_hostile_label_values_with_every_scrape_up(prometheus: Stack) -> None:
    """Debian's Prometheus scrapes the exporter after hostile webhooks: each scrape succeeds
    (up stays 1) and the odd objects are there, their label values made safe."""
    base, at = prometheus.base, f'instance="{prometheus.instances[0]}"'
    wait_for(
        lambda: (
            series(base, f'generatorlabs_agent_info{{{at},agent_id="{HOSTILE_AGENT}"}}')
            and series(base, f'hetrixtools_blacklist_monitor_info{{{at},monitor=~"hostile-.*"}}')
        ),
        "Prometheus to scrape the hostile objects",
    )
    up = series(base, 'min_over_time(up{job="generatorlabs"}[10m])')
    assert [float(r["value"][1]) for r in up] == [1.0, 1.0]
    agent = series(base, f'generatorlabs_agent_info{{agent_id="{HOSTILE_AGENT}"}}')[0]["metric"]
    assert "\ufffd" in agent["name"] and len(agent["name"]) <= 1100  # replaced, cut at 1,024 characters
    assert not series(base, 'hetrixtools_blacklist_monitor_info{monitor="infinite.example"}')
    balances = series(base, "generatorlabs_billing_balance_usd")  # the demos' own events
    assert all(math.isfinite(float(r["value"][1])) for r in balances)


@pytest.mark.parametrize(("dashboard", "panel", "expr"), queries())
def test_every_panel_query_returns_each_exporters_data_and_only_the_selected_ones(
    prometheus: Stack, dashboard: str, panel: str, expr: str
) -> None:
    """With All selected, a query shows both exporters, apart (each series keeps its instance);
    with one selected, that one's series alone. A query that reads no series (a threshold from a
    variable, for the panel's colours) returns its value."""
    base, both = prometheus.base, set(prometheus.instances)
    if not SELECTOR.search(expr):
        assert series(base, expand(expr)), f"{dashboard} / {panel}: no data for {expr}"
        return
    wait_for(lambda: instances_of(base, expand(expr)) == both, f"{dashboard} / {panel}: both exporters' data")
    for instance in prometheus.instances:
        assert instances_of(base, expand(expr, one(instance))) == {instance}, (dashboard, panel, instance)


def label_values(base: str, query: str) -> set[str]:
    """A `label_values(selector, label)` variable query, as Grafana runs it (the series API)."""
    found = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
    assert found, query
    selector, label = found.groups()
    params = urllib.parse.urlencode({"match[]": expand(selector)})
    status, text = get(f"{base}/api/v1/label/{label}/values?{params}")
    assert status == 200, text
    return set(json.loads(text)["data"])


def test_the_variables_offer_both_exporters_and_their_hosts_and_rbls(prometheus: Stack) -> None:
    found = variables(load(ROOT / "grafana/dashboards/rbl-certificates.json"))
    base = prometheus.base
    assert label_values(base, found["job"]["query"]) == {"generatorlabs"}
    assert label_values(base, found["instance"]["query"]) == set(prometheus.instances)
    assert label_values(base, found["host"]["query"])
    assert label_values(base, found["rbl"]["query"])
