"""A snapshot with one object replaced shares the rest with the one before (Patched): it reads
exactly as a copied dictionary would, and neither the old snapshot nor its mappings change.
Pure, no I/O."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from exporter.state.snapshot import MIN_PATCH, Patched, Snapshot

KEYS = st.text(alphabet="abcdef", min_size=1, max_size=3)


@given(
    base=st.dictionaries(KEYS, st.integers(), max_size=50),
    changes=st.lists(st.tuples(KEYS, st.integers()), max_size=3 * MIN_PATCH),
)
def test_replacing_objects_one_by_one_reads_as_a_copied_dict(
    base: dict[str, int], changes: list[tuple[str, int]]
) -> None:
    model = dict(base)
    snapshots = [Snapshot("rbl_hosts", dict(base), 1.0, 2.0, 3, dict.fromkeys(base, 1.0))]
    for n, (key, value) in enumerate(changes):
        before = dict(snapshots[-1].items)
        snapshots.append(snapshots[-1].with_object(key, value, 10.0 + n))
        assert dict(snapshots[-2].items) == before  # the old one is left as it was
        model[key] = value
    last = snapshots[-1]
    assert dict(last.items) == model and len(last.items) == len(model)
    assert list(last.items) == list(model)  # the order a dict would have: new keys at the end
    assert list(last.items.items()) == list(model.items())
    assert list(last.items.values()) == list(model.values())
    assert all(k in last.items and last.items.get(k) == v for k, v in model.items())
    assert "zzz" not in last.items and last.items.get("zzz") is None
    assert (last.fetched_at, last.confirmed_at, last.total) == (1.0, 2.0, 3)
    expected_times = {**dict.fromkeys(base, 1.0), **{k: 10.0 + n for n, (k, _) in enumerate(changes)}}
    assert dict(last.item_times) == expected_times


def test_a_long_run_of_replacements_folds_the_patch_into_a_new_base() -> None:
    base = {f"k{i}": i for i in range(10_000)}
    items: object = base
    snap = Snapshot("rbl_hosts", base, 1.0, 1.0)
    sizes = []
    for i in range(1000):
        snap = snap.with_object(f"k{i}", -i, 2.0)
        items = snap.items
        sizes.append(len(items.patch) if isinstance(items, Patched) else 0)
    assert max(sizes) <= 100  # sqrt(10,000): a refresh never copies more than that...
    assert sizes.count(0) >= 9  # ...and the whole base only once every hundred refreshes
    assert base == {f"k{i}": i for i in range(10_000)}  # the first snapshot's is unchanged
    assert dict(snap.items) == {**base, **{f"k{i}": -i for i in range(1000)}}
