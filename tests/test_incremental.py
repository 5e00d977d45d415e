"""Incremental exposition: a render after a change re-renders only what changed, and its output
is the output of a full render of the same state, under any sequence of changes (hypothesis);
renders coalesce a burst of changes into one."""

from __future__ import annotations

import asyncio
import gc
import gzip
from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.api.endpoints import COLLECTORS
from exporter.api.records import CertError, Host, Item, Monitor
from exporter.metrics.delivery import GroupTable
from exporter.metrics.lines import Freshness
from exporter.metrics.render import Rendered, Renderer, bucket_count
from exporter.state.events import HetrixMonitor
from exporter.state.overlay import HostMark, MonitorMark, WebhookState
from exporter.state.snapshot import Snapshot
from exporter.state.store import StateStore
from tests.helpers.metrics import StillClock, scraper_for

NOW = 1_789_999_980.0  # a whole minute: days to expiry are computed at the minute (EXPIRY_STEP)
INTERVALS = dict.fromkeys(COLLECTORS, 60.0)
AGES = dict.fromkeys(COLLECTORS, 600.0)  # a snapshot not confirmed for 10 minutes is stale
HOST_IDS = [f"HT{i}" for i in range(4)]
MONITOR_IDS = [f"CM{i}" for i in range(3)]
HETRIX = ["192.0.2.1", "192.0.2.2", "198.51.100.0/24"]
RBLS = st.lists(st.sampled_from(["PSBL", "SpamCop", "Spamhaus ZEN", 'odd "rbl"']), max_size=3).map(tuple)


def host(ident: str, listed: bool, rbls: tuple[str, ...], paused: bool = False, name: str = "mx") -> Host:
    rbls = rbls if listed else ()
    return Host(
        ident,
        "192.0.2.1",
        name,
        "ip",
        "RP1",
        paused,
        listed,
        len(rbls),
        rbls,
        NOW - 100,
        NOW - 3600 if listed else None,
    )


def text(rendered: Rendered, openmetrics: bool = False) -> bytes:
    return b"".join(rendered.body(openmetrics))


def families(rendered: Rendered) -> dict[str, list[bytes]]:
    """Each family's lines, in order, the header lines included."""
    out: dict[str, list[bytes]] = {}
    name = ""
    for line in text(rendered).splitlines():
        if line.startswith(b"# HELP "):
            name = line.split()[2].decode()
        out.setdefault(name, []).append(line)
    return out


class World:
    """A state changed the way the exporter's state changes: snapshots replaced whole, webhook
    marks replaced, time moving on."""

    def __init__(self) -> None:
        self.now = NOW
        self.items: dict[str, dict[str, Any]] = {
            c: {} for c in ("rbl_hosts", "rbl_listings", "cert_monitors", "cert_errors")
        }
        self.snaps: dict[str, Snapshot] = {}
        self.webhooks = WebhookState()
        for i, ident in enumerate(HOST_IDS):  # an account to start from: every kind polled
            self.items["rbl_hosts"][ident] = host(ident, i == 0, ("PSBL",), paused=i == 1)
        self.items["rbl_listings"][HOST_IDS[0]] = host(HOST_IDS[0], True, ("PSBL",))
        for ident in MONITOR_IDS:
            self.apply(("monitor", ident, 30))
        for collector in self.items:
            self.poll(collector)

    def poll(self, collector: str) -> None:
        """A new snapshot of `collector`, fetched now (its records copied: equal, not the same)."""
        items = {k: replace(v) for k, v in self.items[collector].items()}
        times = dict.fromkeys(items, self.now) if collector == "rbl_hosts" else {}
        self.snaps[collector] = Snapshot(collector, items, self.now, self.now, None, times)

    def apply(self, op: tuple[Any, ...]) -> None:
        kind, *args = op
        if kind == "host":
            ident, listed, rbls, paused = args
            self.items["rbl_hosts"][ident] = host(ident, listed, rbls, paused)
            self.poll("rbl_hosts")
        elif kind == "drop_host":
            self.items["rbl_hosts"].pop(args[0], None)
            self.poll("rbl_hosts")
        elif kind == "listing":
            ident, listed, rbls = args
            if listed:
                self.items["rbl_listings"][ident] = host(ident, True, rbls)
            else:
                self.items["rbl_listings"].pop(ident, None)
            self.poll("rbl_listings")
        elif kind == "mark":
            ident, listed, rbls = args
            self.webhooks.hosts[ident] = HostMark(self.now, listed, len(rbls), rbls, self.now)
        elif kind == "monitor":
            ident, days = args
            self.items["cert_monitors"][ident] = Monitor(
                ident, "shop", "shop.example", "https", "443", "CP1", False, self.now + days * 86400, None
            )
            self.poll("cert_monitors")
        elif kind == "monitor_mark":
            ident, days = args
            self.webhooks.monitors[ident] = MonitorMark(days, self.now, ("connection",), self.now)
        elif kind == "error":
            ident, reason = args
            self.items["cert_errors"][f"E{ident}{reason}"] = CertError(f"E{ident}{reason}", ident, reason)
            self.poll("cert_errors")
        elif kind == "hetrix":
            name, listed_now = args
            rbls = tuple(f"rbl{i}.example" for i in range(listed_now))
            self.webhooks.apply_hetrix([HetrixMonitor(name, "edge", listed_now, rbls)], self.now)
        elif kind == "repoll":
            self.poll(args[0])
        elif kind == "tick":
            self.now += args[0]

    def freshness(self) -> Freshness:
        return Freshness(self.now, INTERVALS, AGES)


MARK = st.tuples(st.just("mark"), st.sampled_from(HOST_IDS), st.booleans(), RBLS)
OPS = st.one_of(
    MARK,
    MARK,
    st.tuples(st.just("hetrix"), st.sampled_from(HETRIX), st.integers(0, 3)),
    st.tuples(st.just("host"), st.sampled_from(HOST_IDS), st.booleans(), RBLS, st.booleans()),
    st.tuples(st.just("drop_host"), st.sampled_from(HOST_IDS)),
    st.tuples(st.just("listing"), st.sampled_from(HOST_IDS), st.booleans(), RBLS),
    st.tuples(st.just("monitor"), st.sampled_from(MONITOR_IDS), st.integers(-5, 90)),
    st.tuples(st.just("monitor_mark"), st.sampled_from(MONITOR_IDS), st.floats(-5, 90)),
    st.tuples(st.just("error"), st.sampled_from(MONITOR_IDS), st.sampled_from(["connection", "dns_caa"])),
    st.tuples(st.just("hetrix"), st.sampled_from(HETRIX), st.integers(0, 3)),
    st.tuples(st.just("repoll"), st.sampled_from(sorted(World().items))),
    st.tuples(st.just("tick"), st.sampled_from([1.0, 30.0, 61.0, 400.0, 900.0])),
)


@given(ops=st.lists(OPS, min_size=1, max_size=40), per_host=st.sampled_from(["all", "listed"]))
def test_an_incremental_render_equals_a_full_render_of_the_same_state(
    ops: list[tuple[Any, ...]], per_host: str
) -> None:
    """After every change, the renderer kept across changes writes what a new renderer writes:
    the same lines in each family (a kept object keeps its place, so the order may differ), with
    one bucket as with many small buckets; and a second renderer through the same changes
    writes the same bytes (the order depends only on the sequence of states)."""
    world = World()
    one_bucket = Renderer(per_host=per_host)
    twin = Renderer(per_host=per_host)
    small_buckets = Renderer(per_host=per_host, compress=False, bucket_size=2)
    for op in ops:
        world.apply(op)
        freshness = world.freshness()
        kept = one_bucket.update(world.snaps, freshness, world.webhooks.copy())
        fresh = Renderer(per_host=per_host).update(world.snaps, freshness, world.webhooks.copy())
        again = twin.update(world.snaps, freshness, world.webhooks.copy())
        for om in (False, True):
            assert sorted(text(kept, om).splitlines()) == sorted(text(fresh, om).splitlines())
            assert text(again, om) == text(kept, om)
        assert {k: sorted(v) for k, v in families(kept).items()} == {
            k: sorted(v) for k, v in families(fresh).items()
        }
        assert kept.stats == fresh.stats
        many = small_buckets.update(world.snaps, freshness, world.webhooks.copy())
        assert {k: sorted(v) for k, v in families(many).items()} == {
            k: sorted(v) for k, v in families(fresh).items()
        }
    list(parse_text(text(kept).decode()))
    list(parse_om(text(kept, True).decode() + "# EOF\n"))  # type: ignore[no-untyped-call]


def many_hosts(n: int) -> Snapshot:
    hosts = {f"HT{i:05d}": host(f"HT{i:05d}", i % 20 == 0, ("PSBL",)) for i in range(n)}
    return Snapshot("rbl_hosts", hosts, NOW - 10, NOW - 10, None, dict.fromkeys(hosts, NOW - 10))


def test_a_webhook_about_one_host_renders_only_that_hosts_bucket_again() -> None:
    snaps = {"rbl_hosts": many_hosts(3000)}
    freshness = Freshness(NOW, INTERVALS, AGES)
    renderer = Renderer()
    webhooks = WebhookState()
    before = renderer.update(snaps, freshness, webhooks.copy())
    webhooks.hosts["HT00007"] = HostMark(NOW, True, 2, ("PSBL", "SpamCop"), NOW)
    after = renderer.update(snaps, freshness, webhooks.copy())
    kept = {id(p) for p in before.parts(False)}
    changed = [p for p in after.parts(False) if id(p) not in kept]
    assert len(after.parts(False)) > 50  # 3,000 hosts: several buckets per family
    assert 0 < len(changed) <= 7 + 1  # the host's bucket of its families, and the listed total
    old, new = set(text(before).splitlines()), set(text(after).splitlines())
    assert all(
        b'"HT00007"' in line or line.startswith(b"generatorlabs_rbl_hosts_listed ") for line in old ^ new
    )
    assert b'generatorlabs_rbl_listing_info{host_id="HT00007",rbl="SpamCop"} 1' in new
    assert text(after) == text(Renderer().update(snaps, freshness, webhooks.copy()))
    assert gzip.decompress(b"".join(after.parts(False))) == text(after)


def test_a_poll_adding_and_dropping_hosts_renders_only_their_buckets_again() -> None:
    """Buckets hold runs of the API's order: a host new to a poll is written after the others
    (in the last bucket, which has room), one gone leaves its bucket; every other bucket is
    kept, however far the new host is from the end of the API's order."""
    freshness = Freshness(NOW, INTERVALS, AGES)
    renderer = Renderer()
    hosts = many_hosts(3000)
    before = renderer.update({"rbl_hosts": hosts}, freshness)
    items: dict[str, Any] = {}
    for i, (key, record) in enumerate(hosts.items.items()):
        if i == 1500:
            items["HT01499b"] = host("HT01499b", False, ())
        if key != "HT01000":
            items[key] = record
    polled = Snapshot("rbl_hosts", items, NOW - 5, NOW - 5, None, dict.fromkeys(items, NOW - 5))
    after = renderer.update({"rbl_hosts": polled}, freshness)
    kept = {id(p) for p in before.parts(False)}
    changed = [p for p in after.parts(False) if id(p) not in kept]
    assert len(after.parts(False)) > 50  # 3,000 hosts: several buckets per family
    # the 7 host families of the new host's bucket and of the dropped one's, and the totals
    assert 0 < len(changed) <= 2 * 7 + 2
    info = families(after)["generatorlabs_rbl_host_info"]
    assert b'host_id="HT01499b"' in info[-1]
    assert not any(b'"HT01000"' in line for line in text(after).splitlines())
    fresh = Renderer().update({"rbl_hosts": polled}, freshness)
    assert sorted(text(after).splitlines()) == sorted(text(fresh).splitlines())


def test_buckets_follow_the_object_count() -> None:
    assert [bucket_count(n) for n in (0, 1, 512, 513, 20_000, 100_000)] == [1, 1, 1, 2, 64, 256]


def test_a_growing_account_is_bucketed_again_and_renders_the_same_lines() -> None:
    renderer = Renderer(compress=False, bucket_size=4)
    freshness = Freshness(NOW, INTERVALS, AGES)
    for n in (3, 40, 400, 5):
        snaps = {"rbl_hosts": many_hosts(n)}
        fresh = Renderer(compress=False, bucket_size=4).update(snaps, freshness)
        kept = renderer.update(snaps, freshness)
        assert sorted(text(kept).splitlines()) == sorted(text(fresh).splitlines())
        assert f"generatorlabs_rbl_hosts {n}\n".encode() in text(kept)


def test_a_snapshot_going_stale_removes_its_series_and_its_return_brings_them_back() -> None:
    snaps = {"rbl_hosts": many_hosts(10)}
    renderer = Renderer()
    assert b"HT00003" in text(renderer.update(snaps, Freshness(NOW, INTERVALS, AGES)))
    stale = text(renderer.update(snaps, Freshness(NOW + 3600, INTERVALS, AGES)))
    assert b"HT00003" not in stale and b"\ngeneratorlabs_rbl_hosts " not in stale
    assert b"HT00003" in text(renderer.update(snaps, Freshness(NOW, INTERVALS, AGES)))


def test_a_new_interval_changes_the_help_text() -> None:
    snaps = {"rbl_hosts": many_hosts(2)}
    renderer = Renderer()
    renderer.update(snaps, Freshness(NOW, INTERVALS, AGES))
    slower = text(renderer.update(snaps, Freshness(NOW, {**INTERVALS, "rbl_hosts": 900.0}, AGES)))
    assert b"refreshed every 900s by rbl_hosts" in slower


def test_days_to_expiry_move_with_time() -> None:
    monitor = Monitor("CM1", "shop", "shop.example", "https", "443", "CP1", False, NOW + 10 * 86400, None)
    snaps = {"cert_monitors": Snapshot("cert_monitors", {"CM1": monitor}, NOW, NOW)}
    renderer = Renderer()
    assert b'generatorlabs_cert_expiry_days{monitor_id="CM1"} 10\n' in text(
        renderer.update(snaps, Freshness(NOW, INTERVALS, AGES))
    )
    later = text(renderer.update(snaps, Freshness(NOW + 300, INTERVALS, AGES)))  # 300 s = 0.0035 days
    assert b'generatorlabs_cert_expiry_days{monitor_id="CM1"} 9.9965\n' in later
    # computed at the start of the minute: 59 s later still the same, a minute later one less
    same_minute = text(renderer.update(snaps, Freshness(NOW + 359, INTERVALS, AGES)))
    assert b'generatorlabs_cert_expiry_days{monitor_id="CM1"} 9.9965\n' in same_minute
    next_minute = text(renderer.update(snaps, Freshness(NOW + 360, INTERVALS, AGES)))
    assert b'generatorlabs_cert_expiry_days{monitor_id="CM1"} 9.9958\n' in next_minute
    assert next_minute == text(Renderer().update(snaps, Freshness(NOW + 360, INTERVALS, AGES)))


def test_a_webhook_about_one_host_keeps_every_monitors_and_hetrixtools_part() -> None:
    """Neither the monitors (whose days to expiry move with time) nor the HetrixTools monitors
    are rendered again for a webhook about a host, however the clock moved within the minute."""
    monitors = {
        f"CM{i:04d}": Monitor(
            f"CM{i:04d}", "shop", "shop.example", "https", "443", "CP1", False, NOW + i * 3600, None
        )
        for i in range(1500)
    }
    snaps = {
        "rbl_hosts": many_hosts(1500),
        "cert_monitors": Snapshot("cert_monitors", monitors, NOW, NOW),
        "cert_errors": Snapshot("cert_errors", {"E1": CertError("E1", "CM0001", "connection")}, NOW, NOW),
    }
    webhooks = WebhookState()
    webhooks.apply_hetrix(
        [HetrixMonitor(f"192.0.2.{i}", "edge", 1, ("rbl.example",)) for i in range(800)], NOW
    )
    renderer = Renderer()
    before = renderer.update(snaps, Freshness(NOW + 1, INTERVALS, AGES), webhooks.copy())
    webhooks.hosts["HT00007"] = HostMark(NOW, True, 1, ("SpamCop",), NOW)
    after = renderer.update(snaps, Freshness(NOW + 59.5, INTERVALS, AGES), webhooks.copy())
    kept = {id(p) for p in before.parts(False)}
    changed = [p for p in after.parts(False) if id(p) not in kept]
    assert 0 < len(changed) <= 7 + 1  # the host's bucket of its families, and the listed total
    renewed = b"".join(gzip.decompress(p) for p in changed)
    assert b"generatorlabs_cert_" not in renewed and b"hetrixtools_" not in renewed
    old, new = set(text(before).splitlines()), set(text(after).splitlines())
    assert all(b'"HT00007"' in line or b"_rbl_hosts_listed " in line for line in old ^ new)
    assert text(after) == text(
        Renderer().update(snaps, Freshness(NOW + 59.5, INTERVALS, AGES), webhooks.copy())
    )
    assert after.stats == before.stats


async def test_a_burst_of_changes_costs_one_render_that_shows_them_all() -> None:
    store = StateStore([many_hosts(50)])
    scraper = scraper_for(store, NOW, clock=StillClock(NOW))
    store.on_change = scraper.changed.set
    task = asyncio.ensure_future(scraper.keep_rendered())

    async def rendered(count: int) -> None:
        for _ in range(100_000):  # yields to the loop while the worker thread renders
            if scraper.renders >= count:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"no render #{count}")

    try:
        await rendered(1)
        for i in range(50):  # a burst: webhooks about 50 hosts, each stored and announced
            store.webhooks.hosts[f"HT{i:05d}"] = HostMark(NOW, True, 1, (f"rbl{i}",), NOW)
            store.webhooks_changed()
        await rendered(2)
        body = b"".join(scraper.expose("", "").parts)
        assert body.count(b"generatorlabs_rbl_listing_info{") == 50
        for _ in range(1000):  # the renderer keeps looking: nothing else changed, no render
            await asyncio.sleep(0)
        assert scraper.renders == 2
    finally:
        task.cancel()


def test_a_repoll_that_brings_equal_records_renders_nothing_again() -> None:
    """A poll replaces the snapshot with new records; where they equal the last ones, every part
    of the exposition is kept as it was (no bucket rendered or compressed again)."""
    snaps = {"rbl_hosts": many_hosts(3000)}
    freshness = Freshness(NOW, INTERVALS, AGES)
    renderer = Renderer()
    before = renderer.update(snaps, freshness)
    snaps = {"rbl_hosts": many_hosts(3000)}  # equal records, not the same objects
    after = renderer.update(snaps, freshness)
    assert len(after.parts(False)) > 50
    assert all(a is b for a, b in zip(before.parts(False), after.parts(False), strict=True))
    changed = dict(snaps["rbl_hosts"].items)
    changed["HT00011"] = host("HT00011", True, ("SpamCop",))
    snaps = {
        "rbl_hosts": Snapshot(
            "rbl_hosts", changed, NOW - 10, NOW - 10, None, dict.fromkeys(changed, NOW - 10)
        )
    }
    third = renderer.update(snaps, freshness)
    renewed = [b for a, b in zip(after.parts(False), third.parts(False), strict=True) if a is not b]
    assert 0 < len(renewed) <= 7 + 1
    assert b'generatorlabs_rbl_listing_info{host_id="HT00011",rbl="SpamCop"} 1' in text(third)
    assert text(third) == text(Renderer().update(snaps, freshness))


def monitors_with_errors(n: int, erring: dict[str, str]) -> dict[str, Snapshot]:
    """`n` monitors, and one error of each monitor of `erring` (monitor id -> reason)."""
    monitors = {
        f"CM{i:04d}": Monitor(
            f"CM{i:04d}", "shop", "shop.example", "https", "443", "CP1", False, NOW + i * 3600, None
        )
        for i in range(n)
    }
    errors = {f"E{k}": CertError(f"E{k}", k, reason) for k, reason in erring.items()}
    return {
        "cert_monitors": Snapshot("cert_monitors", monitors, NOW, NOW),
        "cert_errors": Snapshot("cert_errors", errors, NOW, NOW),
    }


def test_a_new_error_of_one_monitor_renders_only_that_monitors_bucket_of_errors_again() -> None:
    """1,500 monitors in four buckets: an error polled for one of them renews its bucket of the
    two error families and the errors total, nothing of the monitors' own families."""
    freshness = Freshness(NOW, INTERVALS, AGES)
    renderer = Renderer()
    before = renderer.update(monitors_with_errors(1500, {"CM0001": "connection"}), freshness)
    snaps = monitors_with_errors(1500, {"CM0001": "connection", "CM0777": "dns_caa"})
    after = renderer.update(snaps, freshness)
    kept = {id(p) for p in before.parts(False)}
    renewed = b"".join(gzip.decompress(p) for p in after.parts(False) if id(p) not in kept)
    assert b'generatorlabs_cert_error_info{monitor_id="CM0777",reason="dns_caa"} 1' in renewed
    assert b'generatorlabs_cert_active_errors{monitor_id="CM0777"} 1' in renewed
    assert b"generatorlabs_cert_errors 2\n" in renewed
    assert b"generatorlabs_cert_monitor_info" not in renewed and b'"CM0001"' not in renewed
    assert renewed.count(b"generatorlabs_cert_active_errors{") < 1500 / 2  # one bucket of four
    assert text(after) == text(Renderer().update(snaps, freshness))


def test_a_render_leaves_the_garbage_collector_as_it_found_it() -> None:
    """A render runs without the cyclic garbage collector; it switches it back on only if it was
    on (an application that turned it off keeps it off)."""
    snaps = {"rbl_hosts": many_hosts(600), **monitors_with_errors(50, {"CM0001": "connection"})}
    was = gc.isenabled()
    try:
        for enabled in (True, False, True):
            if enabled:
                gc.enable()
            else:
                gc.disable()
            Renderer().update(snaps, Freshness(NOW, INTERVALS, AGES))
            assert gc.isenabled() is enabled
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()


def test_contact_groups_arriving_after_the_hosts_count_the_hosts_that_name_them() -> None:
    """Without a contact groups snapshot there is no group row (the hosts are not counted for
    nothing); when the groups arrive, the same host snapshot is counted, a broken record (no
    contact_group field) as naming no group."""
    hosts = {
        f"HT{i}": replace(host(f"HT{i}", False, ()), contact_group=",CG1,CG2," if i % 2 else ",CG1,")
        for i in range(5)
    }
    snap = Snapshot("rbl_hosts", {**hosts, "HTbroken": object()}, NOW, NOW)
    table = GroupTable()
    assert table.rows(None, None, snap, None) == {}
    groups = {g: Item(g, f"group {g}", "", False) for g in ("CG1", "CG2", "CG3")}
    rows = table.rows(Snapshot("contact_groups", groups, NOW, NOW), None, snap, None)
    assert {k: row.objects for k, row in rows.items()} == {"CG1": 5, "CG2": 2, "CG3": 0}
