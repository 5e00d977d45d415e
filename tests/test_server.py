"""The HTTP surface through a real aiohttp server: metrics formats, health, readiness, reload."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter import __version__
from exporter.app import ConfigSource, Exporter, create_app
from exporter.config.model import Config
from exporter.config.parse import parse
from exporter.demo.simulator.api import SimulatedApi
from exporter.errors import ConfigError
from exporter.web.routes import ServerParts, build_app
from tests.helpers.exporters import simulated_exporter
from tests.helpers.processes import free_port, get, start_exporter, terminate
from tests.helpers.rig import SID, TOKEN, FakeClock

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def setup(clock: FakeClock) -> AsyncIterator[tuple[Exporter, SimulatedApi]]:
    async with simulated_exporter(clock, hosts=30, monitors=8) as simulated:
        yield simulated.exporter, simulated.api


async def poll(exporter: Exporter, seconds: float = 30) -> None:
    end = exporter.clock.time() + seconds
    with structlog.testing.capture_logs():
        while exporter.clock.time() < end:
            await exporter.scheduler.step()


def app_for(exporter: Exporter, source: ConfigSource | None = None) -> web.Application:
    async def reload() -> list[str]:
        return await exporter.reload(source or (lambda: exporter.config))

    return build_app(
        ServerParts(
            exporter.scraper,
            exporter.store,
            exporter.live,
            reload,
            exporter.clock.time,
            exporter.config.web.telemetry_path,
        )
    )


async def test_ready_only_once_data_is_loaded(aiohttp_client, setup) -> None:  # type: ignore[no-untyped-def]
    exporter, _ = setup
    client = await aiohttp_client(app_for(exporter))
    assert (await client.get("/-/healthy")).status == 200
    response = await client.get("/-/ready")
    assert response.status == 503
    metrics = await (await client.get("/metrics")).text()
    assert "generatorlabs_up 0.0" in metrics  # self-metrics only, no data series
    assert "generatorlabs_rbl_host_info{" not in metrics
    await poll(exporter)
    assert (await client.get("/-/ready")).status == 200


async def test_metrics_text_format_with_data_and_self_metrics(aiohttp_client, setup) -> None:  # type: ignore[no-untyped-def]
    exporter, api = setup
    await poll(exporter)
    client = await aiohttp_client(app_for(exporter))
    before = len(api.accepted)
    response = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Content-Encoding" not in response.headers
    body = await response.text()
    assert "generatorlabs_rbl_hosts 30" in body
    assert "generatorlabs_up 1.0" in body
    assert 'generatorlabs_exporter_build_info{python_version="' in body
    assert f'version="{__version__}"' in body
    for _ in range(5):
        await client.get("/metrics")
    assert len(api.accepted) == before  # a scrape never calls the API


async def test_openmetrics_when_negotiated(aiohttp_client, setup) -> None:  # type: ignore[no-untyped-def]
    exporter, _ = setup
    await poll(exporter)
    client = await aiohttp_client(app_for(exporter))
    response = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    body = await response.text()
    assert body.endswith("# EOF\n") and body.count("# EOF") == 1
    assert "# TYPE generatorlabs_rbl_host info" in body


async def test_gzip_when_asked(aiohttp_client, setup) -> None:  # type: ignore[no-untyped-def]
    exporter, _ = setup
    await poll(exporter)
    client = await aiohttp_client(app_for(exporter))
    response = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert response.headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(await response.read()).decode()
    assert "generatorlabs_rbl_hosts 30" in text and "generatorlabs_up 1.0" in text


async def test_landing_page_summarises_freshness_and_budget(aiohttp_client, setup) -> None:  # type: ignore[no-untyped-def]
    exporter, _ = setup
    await poll(exporter)
    client = await aiohttp_client(app_for(exporter))
    page = await (await client.get("/")).text()
    assert __version__ in page and 'href="/metrics"' in page
    assert "rbl_listings" in page and "of a budget of 900" in page


async def test_status_json_agrees_with_the_metrics(aiohttp_client, setup) -> None:  # type: ignore[no-untyped-def]
    """`/api/v1/status` is served next to `/`: its listed hosts are the ones /metrics counts."""
    exporter, _ = setup
    await poll(exporter)
    client = await aiohttp_client(app_for(exporter))
    exporter.scraper.render_now()
    metrics = await (await client.get("/metrics", headers={"Accept-Encoding": "identity"})).text()
    listed = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("generatorlabs_rbl_hosts_listed ")
    )
    response = await client.get("/api/v1/status")
    assert response.status == 200 and response.content_type == "application/json"
    doc = await response.json()
    assert doc["listed"]["total"] == listed > 0
    assert {c["name"] for c in doc["collectors"]} >= {"rbl_hosts", "rbl_listings"}
    assert (await client.post("/api/v1/status")).status == 405


async def test_reload_applies_a_good_config_and_keeps_the_old_on_a_bad_one(  # type: ignore[no-untyped-def]
    aiohttp_client, setup
) -> None:
    exporter, _ = setup
    await poll(exporter)
    configs: list[Config | ConfigError] = [
        parse({"budget": {"requests_per_hour": 500}}).with_credentials(SID, TOKEN),
        ConfigError("cfg.yaml", ["budget.requests_per_hour: must be a whole number, got 'x'"]),
    ]

    def source() -> Config:
        item = configs.pop(0)
        if isinstance(item, ConfigError):
            raise item
        return item

    client = await aiohttp_client(app_for(exporter, source))
    response = await client.post("/-/reload")
    assert response.status == 200
    assert exporter.ledger.per_hour == 500
    with structlog.testing.capture_logs() as logs:
        response = await client.post("/-/reload")
    assert response.status == 400
    assert "requests_per_hour: must be a whole number" in await response.text()
    assert exporter.ledger.per_hour == 500  # the old config is kept
    assert logs[0]["event"] == "config.reload_failed"
    metrics = await (await client.get("/metrics")).text()
    assert "generatorlabs_config_last_reload_successful 0.0" in metrics
    assert (await client.get("/-/reload")).status == 405


async def test_custom_telemetry_path(aiohttp_client, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    config = parse({"web": {"telemetry_path": "/prom"}}).with_credentials(SID, TOKEN)
    async with simulated_exporter(clock, config) as simulated:
        client = await aiohttp_client(create_app(simulated.exporter, lambda: config))
        assert (await client.get("/prom")).status == 200
        assert (await client.get("/metrics")).status == 404
        await client.close()  # the app's clean-up writes to the state, before it closes


async def test_a_nan_balance_and_an_unrenderable_host_cost_only_themselves(  # type: ignore[no-untyped-def]
    aiohttp_client, setup
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from exporter.api.records import Host
    from exporter.state.snapshot import Snapshot

    exporter, _ = setup
    await poll(exporter)
    webhooks = exporter.store.webhooks
    webhooks.balance, webhooks.balance_threshold = float("nan"), float("inf")  # a signed alert said so
    hosts = exporter.store.snapshot("rbl_hosts")
    broken = Host(
        "HT" + "e" * 32,
        "192.0.2.7",
        "odd",
        "ip",
        "",
        False,
        False,
        "many",  # type: ignore[arg-type]
        (),
        None,
        None,
    )
    exporter.store.replace(
        Snapshot(
            "rbl_hosts",
            {**hosts.items, broken.id: broken},
            hosts.fetched_at,
            hosts.confirmed_at,
            hosts.total,
            hosts.item_times,
        )
    )
    client = await aiohttp_client(app_for(exporter))
    for _ in range(2):  # and again: the scrape stays up for good
        response = await client.get("/metrics")
        assert response.status == 200
        body = await response.text()
        assert "generatorlabs_billing_balance_usd NaN\n" in body
        assert "generatorlabs_billing_balance_threshold_usd +Inf\n" in body
        assert body.count("generatorlabs_rbl_host_info{") == 30  # every other host is there
        assert broken.id not in body
        assert 'generatorlabs_exposition_skipped_objects{object="host"} 1.0' in body
        assert 'generatorlabs_exposition_truncated_label_values{label="name"} 0.0' in body
        assert {f.name for f in text_string_to_metric_families(body)} >= {
            "generatorlabs_rbl_host_info",
            "generatorlabs_exposition_skipped_objects",
        }


PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;"
    "escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (PROMETHEUS_2, True),
        (PROMETHEUS_3, True),
        ("application/openmetrics-text", True),
        ("application/openmetrics-text;q=0, text/plain", False),
        ("application/openmetrics-text; q=0.0", False),
        ("text/plain;q=0.5, application/openmetrics-text;q=0.4", False),
        ("text/plain;q=0.4, application/openmetrics-text;q=0.5", True),
        ("application/openmetrics-text;q=nan, text/plain", False),
        ("application/openmetrics-text;q=2", False),
        ("application/openmetrics-text;version=9.9.9", False),
        ("*/*", False),
        ("", False),
    ],
)
async def test_the_format_follows_the_accept_weights(  # type: ignore[no-untyped-def]
    aiohttp_client, setup, accept: str, openmetrics: bool
) -> None:
    exporter, _ = setup
    client = await aiohttp_client(app_for(exporter))
    response = await client.get("/metrics", headers={"Accept": accept})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith(
        "application/openmetrics-text" if openmetrics else "text/plain"
    )
    assert (await response.text()).endswith("# EOF\n") is openmetrics


async def test_head_answers_the_length_of_the_body_without_it(aiohttp_client, setup) -> None:  # type: ignore[no-untyped-def]
    exporter, _ = setup
    await poll(exporter)
    client = await aiohttp_client(app_for(exporter))
    headers = {"Accept-Encoding": "identity"}
    body = await (await client.get("/metrics", headers=headers)).read()
    head = await client.head("/metrics", headers=headers)
    assert head.status == 200
    assert int(head.headers["Content-Length"]) == len(body)
    assert await head.read() == b""


def test_a_scrape_hands_out_the_cached_members_themselves_not_a_copy(setup) -> None:  # type: ignore[no-untyped-def]
    exporter, _ = setup
    rendered = exporter.scraper.render_now()
    zipped = exporter.scraper.expose("", "gzip")
    parts = list(zipped.parts)
    assert len(parts) == len(rendered.parts(False)) + 1  # the cached members, then the self-metrics
    assert all(p is c for p, c in zip(parts, rendered.parts(False), strict=False))
    assert zipped.length == sum(map(len, parts))
    plain = exporter.scraper.expose("", "identity")
    body = b"".join(plain.parts)
    assert plain.length == len(body)
    assert gzip.decompress(b"".join(parts)) == body  # the same text, however it is asked for


async def test_gzip_and_identity_scrapes_carry_the_same_text_over_http(aiohttp_client, setup) -> None:  # type: ignore[no-untyped-def]
    exporter, _ = setup
    await poll(exporter)
    client = await aiohttp_client(app_for(exporter))
    zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert int(zipped.headers["Content-Length"]) == len(await zipped.read())
    text, unzipped = await plain.read(), gzip.decompress(await zipped.read())
    data = [line for line in text.splitlines() if line.startswith(b"generatorlabs_rbl")]
    assert len(data) > 30 * 4
    assert data == [line for line in unzipped.splitlines() if line.startswith(b"generatorlabs_rbl")]


def test_every_repeated_listen_address_is_served(tmp_path: Path) -> None:
    """Like the exporter-toolkit, a repeated --web.listen-address serves every address given."""
    second = free_port()
    exporter = start_exporter(tmp_path, "--demo", "--web.listen-address", f"127.0.0.1:{second}")
    try:
        for port in (exporter.port, second):
            status, text = get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200 and "generatorlabs_up" in text
    finally:
        terminate(exporter)
