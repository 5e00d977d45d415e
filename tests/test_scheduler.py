"""The poller's behaviour: retries, 429s, stale data, change detection, reloads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import structlog
from hypothesis import given
from hypothesis import strategies as st

from exporter.api.records import EXPIRY_DAYS_KEYS, NOT_AFTER_KEYS
from exporter.app import poll_settings
from exporter.config.model import CollectorConfig
from exporter.config.parse import parse
from exporter.metrics.lines import Freshness
from exporter.metrics.render import render
from exporter.metrics.selfmetrics import PARSE_WARNINGS
from exporter.polling.scheduler import PARSERS
from tests.helpers import ODD_VALUES, VALUE
from tests.helpers.rig import SID, TOKEN, Rig


def counted(rig: Rig, name: str, **labels: str) -> float:
    """A counter of the exporter's own metrics, as a scrape shows it (0 when absent)."""
    return rig.telemetry.registry.get_sample_value(name, labels) or 0.0


def series(rig: Rig, name: str) -> list[str]:
    freshness = Freshness(
        rig.clock.now,
        dict(rig.scheduler.plan.intervals),  # type: ignore[union-attr]
        rig.scheduler.max_ages(),
    )
    family = next(f for f in render(dict(rig.store.snapshots()), freshness) if f.name == name)
    return family.body.splitlines()


async def test_first_polls_fill_every_collector(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(30)
    assert set(rig.store.snapshots()) == set(rig.scheduler.max_ages())
    assert len(rig.store.snapshot("rbl_hosts").items) == 20  # type: ignore[union-attr]
    ok = [e for e in logs if e["event"] == "poll.ok"]
    assert {e["collector"] for e in ok} == set(rig.scheduler.max_ages())
    assert all({"pages", "requests", "duration"} <= set(e) for e in ok)


async def test_a_failed_poll_keeps_the_last_good_data_and_backs_off(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    await rig.run_for(30)
    before = rig.store.snapshot("rbl_listings")
    rig.api.faults.error_rate = 1.0
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(400)
    assert rig.store.snapshot("rbl_listings") is before  # the last good data is kept
    health = rig.store.health("rbl_listings")
    assert health.success is False and health.error == "server_error"
    retries = [
        e["retry_in"] for e in logs if e["event"] == "poll.failed" and e["collector"] == "rbl_listings"
    ]
    assert retries[:3] == [15.0, 30.0, 60.0]  # exponential, capped at the interval
    assert max(retries) == rig.scheduler.interval("rbl_listings")
    failures = counted(
        rig, "generatorlabs_collector_failures_total", collector="rbl_listings", reason="server_error"
    )
    assert failures == len(retries)
    rig.api.faults.error_rate = 0.0
    await rig.run_for(120)
    assert rig.store.health("rbl_listings").success is True


async def test_a_429_stops_every_request_until_retry_after(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    await rig.run_for(10)
    hit = rig.clock.now + 5
    rig.api.faults.rate_limit_at = [hit]
    rig.api.faults.forced_retry_after = 600
    await rig.run_for(900)
    after = [t for t in rig.api.accepted if t > hit]
    assert after and min(after) >= hit + 600
    assert rig.ledger.backoff_until >= hit + 600


async def test_data_older_than_max_age_stops_being_exported(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(raw={"collectors": {"rbl_listings": {"max_age": "5m"}}})
    await rig.run_for(30)
    assert series(rig, "generatorlabs_rbl_hosts_listed")
    rig.api.faults.error_rate = 1.0
    with structlog.testing.capture_logs():
        await rig.run_for(301)
    # listings are stale: hosts still come from the (fresh) inventory, listed counts from it too
    assert rig.clock.now - rig.store.snapshot("rbl_listings").confirmed_at > 300  # type: ignore[union-attr]
    assert series(rig, "generatorlabs_rbl_host_info")
    await rig.run_for(3600)
    assert series(rig, "generatorlabs_rbl_host_info") == []  # everything is stale now
    assert series(rig, "generatorlabs_cert_errors") == []


async def test_count_probe_skips_unchanged_multi_page_listings(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(hosts=2000, monitors=10, raw={"api": {"page_size": 50}}, churn_hours=1e6)
    await rig.run_for(200)
    pages = rig.live.pages["rbl_listings"]  # generatorlabs_collector_pages
    assert pages >= 2
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(600)
    runs = [e for e in logs if e["event"] == "poll.ok" and e["collector"] == "rbl_listings"]
    probes = [e for e in runs if e["probe"]]
    assert all(e["requests"] == 1 for e in probes)
    assert len(probes) >= len(runs) * 0.7  # a full refetch still comes every 5th run or so
    assert sum(e["requests"] for e in runs) < len(runs) * pages / 2


def no_text(name: str, page: int, size: int) -> None:
    """In place of Account.page_json: no ready JSON text, so the simulated API builds its pages
    from Account.page (which these tests replace)."""


async def test_a_changed_count_triggers_a_full_fetch(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(hosts=2000, monitors=10, raw={"api": {"page_size": 50}}, churn_hours=1e6)
    await rig.run_for(200)
    clean = next(h for h in rig.account.hosts.values() if not h.rbls and not h.paused)
    rig.account.list_host(clean, rig.clock.now)  # listed: the count moves
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(120)
    full = [e for e in logs if e["event"] == "poll.ok" and e["collector"] == "rbl_listings"]
    assert any(not e["probe"] and e["requests"] > 1 for e in full)
    assert clean.id in rig.store.snapshot("rbl_listings").items  # type: ignore[union-attr]


async def test_deleted_hosts_disappear_after_the_next_inventory_refresh(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    await rig.run_for(30)
    gone = next(iter(rig.account.hosts))
    assert any(gone in line for line in series(rig, "generatorlabs_rbl_host_info"))
    original = rig.account.page

    def without_gone(name: str, page: int, size: int) -> tuple[list[dict[str, object]], int]:
        items, total = original(name, page, size)
        if name == "hosts":  # deleted in the account: the API no longer lists it
            return [i for i in items if i["id"] != gone], total - 1
        return items, total

    rig.account.page = without_gone  # type: ignore[method-assign]
    rig.account.page_json = no_text  # type: ignore[method-assign]
    rig.account.delist_host(rig.account.hosts[gone])
    await rig.run_for(rig.scheduler.interval("rbl_hosts") + 30)
    assert not any(gone in line for line in series(rig, "generatorlabs_rbl_host_info"))


async def test_a_shared_quota_slows_the_exporter_down(make_rig: Callable[..., Rig]) -> None:
    """Another client of the same API application used 950 of the 1,000: fit what is left."""
    rig = make_rig(hosts=3000, monitors=300)
    rig.api.consume(rig.clock.now - 600, 950)
    with structlog.testing.capture_logs():
        await rig.run_for(3000)
    assert rig.api.rejected_429 == 0  # the server's count was respected, never exceeded
    assert len(rig.api.accepted) <= 50


async def test_reload_disables_a_collector_and_drops_its_data(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    await rig.run_for(30)
    config = parse({"collectors": {"contacts": {"enabled": False}}}).with_credentials(SID, TOKEN)
    rig.scheduler.configure(poll_settings(config))
    assert rig.store.snapshot("contacts") is None
    assert "contacts" not in rig.scheduler.max_ages()
    faster = {**config.collectors, "rbl_hosts": CollectorConfig(True, 120.0)}
    rig.scheduler.configure(poll_settings(replace(config, collectors=faster)))
    assert rig.scheduler.interval("rbl_hosts") == 120.0


async def test_bad_objects_are_counted_and_logged_once(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    for host in list(rig.account.hosts.values())[:3]:
        host.last_checked = None
    original = rig.account.page

    def broken_page(name: str, page: int, size: int):  # type: ignore[no-untyped-def]
        items, total = original(name, page, size)
        if name == "hosts":
            items = [{**i, "listed": "perhaps"} for i in items]
        return items, total

    rig.account.page = broken_page  # type: ignore[method-assign]
    rig.account.page_json = no_text  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(30)
    warnings = [e for e in logs if e["event"] == "parse.warning"]
    assert [(e["object"], e["field"]) for e in warnings] == [("host", "listed")]
    assert counted(rig, "generatorlabs_parse_warnings_total", object="host", field="listed") == 20
    assert len(rig.store.snapshot("rbl_hosts").items) == 20  # type: ignore[union-attr]


async def test_wrong_credentials_fail_with_reason_auth(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(token="wrong")
    with structlog.testing.capture_logs() as logs:
        await rig.run_for(20)
    failed = [e for e in logs if e["event"] == "poll.failed"]
    assert failed and all(e["reason"] == "auth" for e in failed)
    assert not rig.store.has_data
    assert all(TOKEN not in str(e) for e in logs)


async def test_a_targeted_refresh_fetches_one_object_once(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    await rig.run_for(30)
    snap = rig.store.snapshot("rbl_hosts")
    assert snap is not None
    missing = sorted(snap.items)[0]
    items = {k: v for k, v in snap.items.items() if k != missing}
    rig.store.replace(replace(snap, items=items))
    now = rig.clock.now
    assert rig.scheduler.request_refresh("host", missing, now)
    assert not rig.scheduler.request_refresh("host", missing, now + 1)  # debounced
    before = len(rig.api.accepted)
    with structlog.testing.capture_logs() as logs:
        await rig.scheduler.step()
    assert len(rig.api.accepted) == before + 1
    assert missing in rig.store.snapshot("rbl_hosts").items  # type: ignore[union-attr]
    assert [e["event"] for e in logs] == ["refresh.ok"]
    assert counted(rig, "generatorlabs_api_requests_total", endpoint="rbl/hosts/{id}", code="200") == 1


async def test_a_request_is_counted_when_it_leaves_not_when_its_journal_write_began(
    make_rig: Callable[..., Rig],
) -> None:
    """The send is journaled to the state file first; a slow write delays the request, and the
    ledger must hold the time the API really sees, or its window would end early."""

    async def slow_journal(now: float) -> None:
        await rig.clock.sleep(5.0)  # a write behind a large snapshot

    rig = make_rig(journal_send=slow_journal)
    started = rig.clock.now
    with structlog.testing.capture_logs():
        await rig.scheduler.step()
    sent = started + 5.0
    assert rig.api.accepted == [sent]
    assert rig.ledger.used(sent + 3600 - 0.5) == 1  # the ledger's hour ends when the API's does
    assert rig.ledger.used(sent + 3600) == 0


async def test_a_new_poll_keeps_the_records_that_did_not_change(make_rig: Callable[..., Rig]) -> None:
    """Unchanged objects are the very records of the snapshot before (one copy in memory, and a
    renderer comparing by identity re-renders only what changed); a changed one is new."""
    rig = make_rig(hosts=20, monitors=5, step=1e9)  # the account changes only when told to
    await rig.run_for(30)
    before = rig.store.snapshot("rbl_hosts")
    assert before is not None and len(before.items) == 20
    host = next(h for h in rig.account.hosts.values() if not h.rbls and not h.paused)
    rig.account.list_host(host, rig.clock.now)
    while rig.store.snapshot("rbl_hosts") is before:
        await rig.scheduler.step()
    after = rig.store.snapshot("rbl_hosts")
    assert after is not None and after.fetched_at > before.fetched_at
    assert after.items[host.id].listed and not before.items[host.id].listed
    assert all(after.items[k] is v for k, v in before.items.items() if k != host.id)
    listed = rig.store.snapshot("rbl_listings")
    assert listed is not None
    same = [k for k, v in listed.items.items() if after.items.get(k) == v]
    assert same  # a listed host polled both ways is one record, held by both collectors
    assert all(after.items[k] is listed.items[k] for k in same)


# every key a polled object's parser reads, and a few it does not
API_KEYS = (
    *("id", "sid", "host", "name", "type", "status", "paused", "listed", "listed_count", "total"),
    *("listings", "listed_details", "details", "last_checked", "first_listed", "profile", "port"),
    *("protocol", "hostname", "certificate", "monitor", "monitor_id", "monitor_sid", "error_type"),
    *("reason", "code", "category", "error", "label", "expires_soon", "unrelated"),
    *NOT_AFTER_KEYS,
    *EXPIRY_DAYS_KEYS,
)


@given(
    collector=st.sampled_from(sorted(PARSERS)),
    raw=st.dictionaries(st.sampled_from(API_KEYS), VALUE | st.sampled_from(ODD_VALUES), max_size=12),
)
def test_every_parse_warning_is_one_of_the_series_that_exist_from_the_start(
    collector: str, raw: dict[str, object]
) -> None:
    """generatorlabs_parse_warnings_total exists at 0 for PARSE_WARNINGS: the real parsers, fed
    any object, never warn about an (object, field) outside it."""
    warned: list[tuple[str, str]] = []
    PARSERS[collector](raw, lambda obj, fld, _detail: warned.append((obj, fld)))
    assert set(warned) <= set(PARSE_WARNINGS)
