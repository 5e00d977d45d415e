"""The daemon takes its long-lived objects out of the cyclic garbage collector's view (gc.freeze)
once started and once its first complete inventory is in, so that Python's full collections,
which run on the event loop, walk only the newer objects. (Their pauses are measured by an
instrumented `python -m bench.webhooks`; these tests check when the freezes happen, no clock.)"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from exporter.app import HeapFreezer, freeze_heap
from exporter.state.snapshot import Snapshot
from exporter.state.store import StateStore
from tests.helpers.exporters import simulated_exporter
from tests.helpers.rig import START, FakeClock


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Each test starts and ends with nothing frozen in this process."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def snapshot(collector: str) -> Snapshot:
    return Snapshot(collector, {}, START, START, 0, {})


async def test_the_heap_is_frozen_again_once_the_first_complete_inventory_is_in() -> None:
    store = StateStore()
    freezer = HeapFreezer(store, ["rbl_hosts", "cert_monitors"])
    store.on_change = freezer.changed
    freezer.freeze()  # started
    assert freezer.freezes == 1 and gc.get_freeze_count() > 0
    gc.unfreeze()
    store.replace(snapshot("rbl_hosts"))
    await asyncio.sleep(0)
    assert freezer.freezes == 1 and gc.get_freeze_count() == 0  # one collector has data, not all
    store.replace(snapshot("cert_monitors"))
    assert freezer.freezes == 1  # not inside the store's change: once the current step is done
    await asyncio.sleep(0)
    assert freezer.freezes == 2 and gc.get_freeze_count() > 0
    store.replace(snapshot("rbl_hosts"))  # later polls: no more freezes
    store.drop("cert_monitors")
    store.replace(snapshot("cert_monitors"))
    await asyncio.sleep(0)
    assert freezer.freezes == 2


async def test_the_daemon_freezes_once_started_and_its_renderer_still_hears_of_changes(
    clock: FakeClock,
) -> None:
    async with simulated_exporter(clock) as simulated:
        exporter = simulated.exporter
        freezer = freeze_heap(exporter)
        assert freezer.freezes == 1 and gc.get_freeze_count() > 0
        exporter.scraper.changed.clear()
        exporter.store.replace(snapshot("rbl_hosts"))
        assert exporter.scraper.changed.is_set()  # whom the store told before is still told


async def test_the_daemon_freezes_again_without_waiting_for_the_secondary_collectors(
    clock: FakeClock,
) -> None:
    """Listings, errors, hosts and monitors in: the second freeze runs, even though the small
    secondary collectors (certificate profiles on a plan without them, say) have nothing yet."""
    async with simulated_exporter(clock) as simulated:
        exporter = simulated.exporter
        freezer = freeze_heap(exporter)
        for collector in ("rbl_listings", "cert_errors", "rbl_hosts"):
            exporter.store.replace(snapshot(collector))
        await asyncio.sleep(0)
        assert freezer.freezes == 1
        exporter.store.replace(snapshot("cert_monitors"))
        await asyncio.sleep(0)
        assert freezer.freezes == 2
