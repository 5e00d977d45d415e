"""Webhooks through the real HTTP server: every accept and reject path, state on /metrics,
replays across restarts, HetrixTools chunks, tokens and source networks."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from exporter.metrics.selfmetrics import PARSE_WARNINGS, REQUEST_CODES, ROUTES
from exporter.webhooks.receivers import REJECTIONS
from exporter.webhooks.signature import sign
from tests.helpers.rig import FakeClock
from tests.helpers.webhooks import (
    HX_TOKEN,
    SECRET,
    Harness,
    event,
    host_id,
    monitor_id,
    refreshes_sent,
    rejected,
    running,
    sample,
)


@pytest.fixture
async def harness(
    aiohttp_client: Callable[..., Any], clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running(aiohttp_client, clock, tmp_path / "state.sqlite") as h:
        yield h


async def test_bounded_counters_exist_at_zero_before_their_first_event(harness: Harness) -> None:
    """So that `increase(...) > 0` sees the first rejection, 429 or parse warning."""
    text = await harness.metrics()
    for source, reasons in REJECTIONS.items():
        for reason in reasons:
            assert rejected(text, reason, source) == 0
    for route in ROUTES:
        for code in REQUEST_CODES:
            assert sample(text, "generatorlabs_api_requests_total", endpoint=route, code=code) is not None
        assert sample(text, "generatorlabs_api_requests_total", endpoint=route, code="429") == 0
    for obj, fld in PARSE_WARNINGS:
        assert sample(text, "generatorlabs_parse_warnings_total", object=obj, field=fld) is not None


async def test_host_listed_shows_on_the_next_scrape(harness: Harness) -> None:
    hid = host_id(harness, listed=False)
    status, _ = await harness.post(
        event(
            "rbl.host.listed",
            host={"id": hid},
            listed=True,
            total=2,
            details=[{"host": "Spamhaus ZEN"}, {"host": "SpamCop"}],
        )
    )
    assert status == 204
    text = await harness.metrics()
    assert f'generatorlabs_rbl_host_listed{{host_id="{hid}"}} 1' in text
    assert f'generatorlabs_rbl_host_listings{{host_id="{hid}"}} 2' in text
    assert f'generatorlabs_rbl_listing_info{{host_id="{hid}",rbl="SpamCop"}} 1' in text
    assert 'generatorlabs_webhook_events_total{event="rbl.host.listed"} 1' in text
    status, _ = await harness.post(
        event("rbl.host.delisted", sid="TA" + "2" * 32, host={"id": hid}, listed=False, total=0, details=[])
    )
    text = await harness.metrics()
    assert f'generatorlabs_rbl_host_listed{{host_id="{hid}"}} 0' in text
    assert f'host_id="{hid}",rbl=' not in text


async def test_check_events_move_last_checked(harness: Harness) -> None:
    hid = host_id(harness, listed=False)
    await harness.post(event("rbl.host.check.started", host={"id": hid}, check_sid="PP" + "0" * 64))
    text = await harness.metrics()
    assert f'generatorlabs_rbl_host_last_checked_timestamp_seconds{{host_id="{hid}"}} 1790002800' in text
    assert 'generatorlabs_webhook_events_total{event="rbl.host.check.started"} 1' in text


@pytest.mark.parametrize(
    ("mutate", "status", "reason"),
    [
        (lambda h: {"X-Webhook-Signature": ""}, 401, "missing_signature"),
        (lambda h: {"X-Webhook-Signature": "t=abc,v1=00"}, 401, "malformed_signature"),
        (lambda h: {"X-Webhook-Signature": "v1=00"}, 401, "malformed_signature"),
        (lambda h: {"X-Webhook-Signature": sign(b"{}", SECRET, int(h.clock.now))}, 401, "bad_signature"),
        (
            lambda h: {"X-Webhook-Signature": sign(b"x", SECRET, int(h.clock.now) - 301)},
            401,
            "stale_timestamp",
        ),
        (lambda h: {"Content-Type": "text/plain"}, 415, "content_type"),
    ],
)
async def test_rejections_get_their_status_and_a_counted_reason(
    harness: Harness, mutate: Callable[[Harness], dict[str, str]], status: int, reason: str
) -> None:
    with structlog.testing.capture_logs() as logs:
        got, _ = await harness.post(event("rbl.host.listed", host={"id": "HTx"}), headers=mutate(harness))
    assert got == status
    assert rejected(await harness.metrics(), reason) == 1
    assert logs[-1]["event"] == "webhook.rejected" and logs[-1]["reason"] == reason
    assert SECRET not in json.dumps(logs)


async def test_stale_timestamp_is_checked_before_the_signature(harness: Harness) -> None:
    body = json.dumps(event("rbl.host.listed", host={"id": "HTx"})).encode()
    got, _ = await harness.post(body, t=int(harness.clock.now) + 400)  # from the future
    assert got == 401
    assert rejected(await harness.metrics(), "stale_timestamp") == 1


async def test_a_rotated_secret_is_accepted(harness: Harness) -> None:
    got, _ = await harness.post(event("billing.renewal.success"), secret="older_secret_value")
    assert got == 204


async def test_malformed_oversized_and_wrong_method(harness: Harness) -> None:
    assert (await harness.post(b"{not json"))[0] == 400
    status, text = await harness.post({"event_type": "rbl.host.listed"})
    assert status == 400 and "event_sid" in text
    status, text = await harness.post(event("rbl.host.listed"))  # no host object
    assert status == 400 and "'host' must be an object" in text
    big = json.dumps(event("other.thing", padding="x" * (1024 * 1024))).encode()
    response = await harness.client.post(
        "/webhooks/generatorlabs",
        data=io.BytesIO(big),
        headers={
            "Content-Type": "application/json",
            "X-Webhook-Signature": sign(big, SECRET, int(harness.clock.now)),
        },
    )
    assert response.status == 413
    assert (await harness.client.get("/webhooks/generatorlabs")).status == 405
    text = await harness.metrics()
    assert rejected(text, "malformed") == 3 and rejected(text, "too_large") == 1
    assert rejected(text, "method") == 1


async def test_replays_are_applied_once(harness: Harness) -> None:
    body = json.dumps(event("billing.recharge.failed", falls_below="5.00", recharge_to="25.00")).encode()
    assert (await harness.post(body))[0] == 204
    assert (await harness.post(body))[0] == 200  # same signature
    harness.clock.now += 10
    assert (await harness.post(body))[0] == 200  # same event_sid, newly signed
    text = await harness.metrics()
    assert 'generatorlabs_webhook_events_total{event="billing.recharge.failed"} 1' in text
    assert rejected(text, "replay") == 2


async def test_unknown_event_types_are_accepted_as_other(harness: Harness) -> None:
    with structlog.testing.capture_logs() as logs:
        for i in range(3):
            assert (await harness.post(event("shiny.new.event", sid=f"TA{i:032d}")))[0] == 204
        text = await harness.metrics()
    assert 'generatorlabs_webhook_events_total{event="other"} 3' in text
    assert "shiny.new.event" not in text  # never a label value
    assert [e["event"] for e in logs].count("webhook.unknown_event_type") == 1


async def test_unknown_ids_ask_for_a_refresh_and_invent_no_series(harness: Harness) -> None:
    stranger = "HT" + "e" * 32
    assert (
        await harness.post(
            event("rbl.host.listed", host={"id": stranger}, listed=True, total=1, details=[{"host": "PSBL"}])
        )
    )[0] == 204
    text = await harness.metrics()
    assert stranger not in text
    assert await refreshes_sent(harness) == 1  # the exporter asked the API for that one host


async def test_certificate_events(harness: Harness) -> None:
    mid = monitor_id(harness)
    await harness.post(
        event("cert.expiration.trigger", sid="TA" + "a" * 32, monitor={"id": mid}, expiry_days=14)
    )
    await harness.post(
        event(
            "cert.error.trigger",
            sid="TA" + "b" * 32,
            monitor={"id": mid},
            errors=[{"error_type": "name_mismatch"}],
            current_errors=[{"error_type": "name_mismatch"}, {"error_type": "connection"}],
        )
    )
    await harness.post(
        event(
            "cert.changed",
            sid="TA" + "c" * 32,
            monitor={"id": mid},
            previous_fingerprint="SHA256:aa",
            new_fingerprint="SHA256:bb",
        )
    )
    text = await harness.metrics()
    assert f'generatorlabs_cert_expiry_days{{monitor_id="{mid}"}} 14' in text
    assert f'generatorlabs_cert_active_errors{{monitor_id="{mid}"}} 2' in text
    assert f'generatorlabs_cert_error_info{{monitor_id="{mid}",reason="name_mismatch"}} 1' in text
    assert f'generatorlabs_cert_changes_total{{monitor_id="{mid}"}} 1' in text
    await harness.post(
        event(
            "cert.error.resolve",
            sid="TA" + "d" * 32,
            monitor={"id": mid},
            resolved_errors=[{"error_type": "name_mismatch"}, {"error_type": "connection"}],
            current_errors=[],
        )
    )
    text = await harness.metrics()
    assert f'generatorlabs_cert_active_errors{{monitor_id="{mid}"}} 0' in text
    assert f'generatorlabs_cert_error_info{{monitor_id="{mid}"' not in text


async def test_agent_and_billing_events(harness: Harness) -> None:
    agent = {"id": "AG" + "1" * 32, "name": "eu-west"}
    await harness.post(
        event(
            "agent.timeout",
            sid="TA" + "e" * 32,
            agent=agent,
            instances=[{"id": "i-1"}, {"id": "i-2"}],
            timeout_minutes=15,
        )
    )
    await harness.post(
        event("billing.balance.alert", sid="TA" + "f" * 32, balance="12.34", alert_threshold="15.00")
    )
    text = await harness.metrics()
    assert f'generatorlabs_agent_timed_out{{agent_id="{agent["id"]}"}} 1' in text
    assert f'generatorlabs_agent_timed_out_instances{{agent_id="{agent["id"]}"}} 2' in text
    assert "generatorlabs_billing_balance_usd 12.34" in text
    assert "generatorlabs_billing_balance_threshold_usd 15" in text
    await harness.post(
        event(
            "agent.timeout.resolve",
            sid="TA" + "9" * 32,
            agent=agent,
            instances=[{"id": "i-1"}, {"id": "i-2"}],
            timeout_minutes=15,
        )
    )
    text = await harness.metrics()
    assert f'generatorlabs_agent_timed_out{{agent_id="{agent["id"]}"}} 0' in text


def chunk(n: int, listed: int = 2, start: int = 0) -> bytes:
    return json.dumps(
        [
            {
                "monitor": f"203.0.113.{i}",
                "label": f"mx {i}",
                "blacklisted_before": "0",
                "blacklisted_now": str(listed),
                "blacklisted_on": [{"rbl": f"rbl{j}.example", "delist": "https://x"} for j in range(listed)]
                or None,
                "links": {"report_link": "https://hetrixtools.com/report/x/"},
            }
            for i in range(start, start + n)
        ]
    ).encode()


async def test_hetrixtools_chunks_are_applied_idempotently(harness: Harness) -> None:
    url = f"/webhooks/hetrixtools/{HX_TOKEN}"
    for _ in range(2):  # the sender retries on timeouts: same state either way
        response = await harness.client.post(
            url, data=chunk(100), headers={"Content-Type": "application/json"}
        )
        assert response.status == 200
    await harness.client.post(url, data=chunk(1, listed=0, start=5))
    text = await harness.metrics()
    assert text.count("hetrixtools_blacklist_monitor_info{") == 100
    assert 'hetrixtools_blacklist_monitor_listed{monitor="203.0.113.7"} 1' in text
    assert 'hetrixtools_blacklist_monitor_listings{monitor="203.0.113.7"} 2' in text
    assert 'hetrixtools_blacklist_listing_info{monitor="203.0.113.7",rbl="rbl1.example"} 1' in text
    assert 'hetrixtools_blacklist_monitor_listed{monitor="203.0.113.5"} 0' in text  # stays exported
    assert 'monitor="203.0.113.5",rbl=' not in text


async def test_hetrixtools_bad_token_and_bad_body(harness: Harness) -> None:
    with structlog.testing.capture_logs() as logs:
        response = await harness.client.post("/webhooks/hetrixtools/wrong-token-123456", data=chunk(1))
    assert response.status == 401
    assert HX_TOKEN not in json.dumps(logs) and "wrong-token" not in json.dumps(logs)
    response = await harness.client.post(f"/webhooks/hetrixtools/{HX_TOKEN}", data=b'{"monitor": 1}')
    assert response.status == 400
    text = await harness.metrics()
    assert 'generatorlabs_webhook_rejected_total{reason="bad_token",source="hetrixtools"} 1.0' in text


async def test_hetrixtools_source_allowlist_and_trusted_proxies(
    aiohttp_client: Callable[..., Any], clock: FakeClock, tmp_path: Path
) -> None:
    raw = {
        "webhooks": {
            "hetrixtools_token": HX_TOKEN,
            "hetrixtools_allowed_cidrs": ["198.51.100.0/24"],
            "trusted_proxies": ["127.0.0.0/8"],
        }
    }
    async with running(aiohttp_client, clock, tmp_path / "s.sqlite", raw) as h:
        url = f"/webhooks/hetrixtools/{HX_TOKEN}"
        assert (await h.client.post(url, data=chunk(1))).status == 403  # 127.0.0.1 itself
        ok = await h.client.post(url, data=chunk(1), headers={"X-Forwarded-For": "198.51.100.7"})
        assert ok.status == 200
        spoof = await h.client.post(
            url, data=chunk(1), headers={"X-Forwarded-For": "198.51.100.7, 192.0.2.1"}
        )  # the right-most untrusted hop decides
        assert spoof.status == 403
        assert (await h.client.post("/webhooks/generatorlabs", data=b"{}")).status == 404  # disabled


async def test_state_and_replay_protection_survive_a_restart(
    aiohttp_client: Callable[..., Any], clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "state.sqlite"
    body = json.dumps(event("expiring.card.alert", payment_source={})).encode()
    async with running(aiohttp_client, clock, path) as first:  # stopped with no checkpoint
        assert (await first.post(body))[0] == 204
        response = await first.client.post(f"/webhooks/hetrixtools/{HX_TOKEN}", data=chunk(3))
        assert response.status == 200
    async with running(aiohttp_client, clock, path) as second:  # replays the committed events
        assert second.exporter.store.has_data
        text = await second.metrics()
        assert text.count("hetrixtools_blacklist_monitor_info{") == 3
        assert 'generatorlabs_webhook_events_total{event="expiring.card.alert"} 1' in text
        assert (await second.post(body))[0] == 200  # still a replay after the restart


async def test_a_later_poll_reconciles_what_a_webhook_said(harness: Harness) -> None:
    hid = host_id(harness, listed=False)  # the simulator keeps it clean
    now = datetime.fromtimestamp(harness.clock.now, UTC).isoformat()
    status, _ = await harness.post(
        event(
            "rbl.host.listed",
            host={"id": hid},
            listed=True,
            total=1,
            details=[{"host": "PSBL"}],
            event_date=now,
        )
    )
    assert status == 204
    assert f'generatorlabs_rbl_host_listed{{host_id="{hid}"}} 1' in await harness.metrics()
    with structlog.testing.capture_logs():
        end = harness.clock.now + 90  # past the next listings poll
        while harness.clock.now < end:
            await harness.exporter.scheduler.step()
    assert f'generatorlabs_rbl_host_listed{{host_id="{hid}"}} 0' in await harness.metrics()
    assert hid not in harness.exporter.store.webhooks.hosts  # the mark is gone
