"""The Grafana dashboards: valid dashboard JSON, and every panel's query returns data from a real
Prometheus (Debian's) that has scraped the exporter running in demo mode."""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.webhooks.signature import sign
from tests.helpers.processes import ROOT, get, start_exporter, start_prometheus, terminate, wait_for

DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
MODERN = {"stat", "timeseries", "table", "bargauge", "gauge", "piechart", "text", "row"}


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


def test_dashboards_are_valid_dashboard_json() -> None:
    assert len(DASHBOARDS) >= 2
    uids = set()
    for path in DASHBOARDS:
        d = load(path)
        assert d["uid"] and d["uid"] not in uids and len(d["uid"]) <= 40
        uids.add(d["uid"])
        assert d["title"] and isinstance(d["schemaVersion"], int)
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
        for panel in d["panels"]:
            assert panel["type"] in MODERN, f"{path.name}: {panel['type']} is not a modern panel"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"] and target["expr"]
    provisioning = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/generatorlabs.yaml").read_text())
    assert provisioning["providers"][0]["type"] == "file"


def expand(expr: str) -> str:
    """Grafana's variables, as a dashboard would fill them in."""
    return (
        expr.replace("$__rate_interval", "1m").replace("$warning_days", "14").replace("$critical_days", "3")
    )


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("stack")
    secret = "whsec_dashboard_test_secret"
    (home / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "webhooks": {"enabled": True, "secrets": [secret], "hetrixtools_token": HX_TOKEN},
                "state": {"path": str(home / "state.sqlite")},
            }
        )
    )
    exporter = start_exporter(home, "--demo", "--config.file", str(home / "config.yaml"), ready=False)
    prom = start_prometheus(home, [f"127.0.0.1:{exporter.port}"])
    base = prom.base
    try:
        exporter_url = exporter.base
        wait_for(lambda: get(exporter_url + "/-/ready")[0] == 200, "the exporter")
        # one rejected webhook, so the rejection panel has a series to show
        body = b'{"event_sid": "TA00", "event_type": "x", "event_date": "2026-01-01T00:00:00Z"}'

        request = urllib.request.Request(
            exporter_url + "/webhooks/generatorlabs",
            data=body,
            headers={"Content-Type": "application/json", "X-Webhook-Signature": sign(body, "wrong", 1)},
        )
        with pytest.raises(urllib.error.HTTPError) as rejected:
            urllib.request.urlopen(request, timeout=5)
        assert rejected.value.code == 401
        send_hostile_webhooks(exporter_url, secret)
        wait_for(
            lambda: (
                series(base, "count_over_time(generatorlabs_rbl_hosts[1m]) >= 8")
                and series(base, "generatorlabs_agent_info")
                and series(base, "hetrixtools_blacklist_monitor_info")
            ),
            "Prometheus to scrape enough",
        )
        yield base
    finally:
        terminate(prom.process, clean=False)
        terminate(exporter, clean=False)


HX_TOKEN = "hx-dashboard-token-0123456789"
HOSTILE_TEXT = '\ud800 lone surrogate, NUL \x00, bell \x07, "quotes", back\\slash,\nnewline ' + "x" * 5000
HOSTILE_AGENT = "AG" + "e" * 32


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
    assert (
        signed(
            {
                **base,
                "event_sid": "TA" + "e" * 32,
                "event_type": "agent.timeout",
                "agent": {"id": HOSTILE_AGENT, "name": HOSTILE_TEXT},
                "instances": ["i-1"],
            }
        )
        == 204
    )
    assert (
        signed(
            {
                **base,
                "event_sid": "TA" + "f" * 32,
                "event_type": "billing.balance.alert",
                "balance": "NaN",
                "alert_threshold": "Infinity",
            }
        )
        == 400
    )
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


def test_prometheus_ingests_hostile_label_values_with_every_scrape_up(prometheus: str) -> None:
    """Debian's Prometheus scrapes the exporter after hostile webhooks: each scrape succeeds
    (up stays 1) and the odd objects are there, their label values made safe."""
    wait_for(
        lambda: (
            series(prometheus, f'generatorlabs_agent_info{{agent_id="{HOSTILE_AGENT}"}}')
            and series(prometheus, 'hetrixtools_blacklist_monitor_info{monitor=~"hostile-.*"}')
        ),
        "Prometheus to scrape the hostile objects",
    )
    up = series(prometheus, 'min_over_time(up{job="generatorlabs"}[10m])')
    assert [float(r["value"][1]) for r in up] == [1.0]
    agent = series(prometheus, f'generatorlabs_agent_info{{agent_id="{HOSTILE_AGENT}"}}')[0]["metric"]
    assert "\ufffd" in agent["name"] and len(agent["name"]) <= 1100  # replaced, cut at 1,024 characters
    assert not series(prometheus, 'hetrixtools_blacklist_monitor_info{monitor="infinite.example"}')
    balances = series(prometheus, "generatorlabs_billing_balance_usd")  # the demo's own events
    assert all(math.isfinite(float(r["value"][1])) for r in balances)


def series(base: str, expr: str) -> list[Any]:
    status, text = get(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}")
    assert status == 200, text
    result: list[Any] = json.loads(text)["data"]["result"]
    return result


@pytest.mark.parametrize(("dashboard", "panel", "expr"), queries())
def test_every_panel_query_returns_data(prometheus: str, dashboard: str, panel: str, expr: str) -> None:
    assert series(prometheus, expand(expr)), f"{dashboard} / {panel}: no data for {expr}"
