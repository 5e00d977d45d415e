"""Property: the renderer survives any records. Arbitrary hosts, monitors, certificate errors,
inventory items and webhook state (text with lone surrogates, control characters, quotes and
5,000-character values; NaN, ±Inf and huge numbers; now and then a field of the wrong type) are
rendered without an exception, into text that prometheus_client's parsers (both formats) and
promtool accept. An object that cannot be rendered is left out and counted, never more."""

from __future__ import annotations

import dataclasses
import subprocess
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.api.endpoints import COLLECTORS
from exporter.api.records import ALERT_FLAGS, CertError, Host, Item, Monitor
from exporter.metrics.contract import DATA_METRICS
from exporter.metrics.lines import LABELS, OBJECTS, Freshness, RenderStats
from exporter.metrics.render import join, render
from exporter.state.overlay import Agent, Hetrix, HostMark, MonitorMark, WebhookState
from exporter.state.snapshot import Snapshot
from tests.helpers.processes import need_binary

NOW = 1_790_000_000.0
AGES = dict.fromkeys(COLLECTORS, 1e12)  # everything fresh: render it all
PROMTOOL_SAMPLES = 8  # expositions checked with promtool per run (a process each)

HOSTILE = st.sampled_from(
    [
        '"',
        "\\",
        "\n",
        "\r",
        "\t",
        "\x00",
        "\x1b",
        "\x7f",
        "\x85",
        "\u2028",
        "\ud800",
        "\udfff",
        "\ufffd",
        "\u2026",
        "{",
        "}",
        ",",
        "=",
        "#",
        " ",
    ]
)
CHARS = st.one_of(st.characters(exclude_categories=()), HOSTILE)  # every code point, surrogates too
TEXT = st.one_of(
    st.text(CHARS, max_size=12),
    st.builds(lambda s, n: s * n, st.text(CHARS, min_size=1, max_size=3), st.integers(400, 2500)),
)
IDS = st.one_of(st.sampled_from(["HT1", "HT2", "CM1", "CM2", "RP1", ""]), TEXT)  # ids that meet
FLOATS = st.floats()  # NaN and ±Inf included
TIMES = st.one_of(st.floats(NOW - 1e8, NOW + 1e8), FLOATS)
INTS = st.one_of(st.integers(-(10**6), 10**6), st.integers(-(2**80), 2**80), st.just(10**5000))
ODD = st.sampled_from([None, 7, 2.5, b"bytes", ("t",), float("nan"), "text"])
RBLS = st.lists(TEXT, max_size=3).map(tuple)


COUNTS = st.integers(0, 2**80)  # counters: never negative
SANE_INTS = st.integers(-(2**80), 2**80)


def sometimes_broken(records: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly well-typed records; one in four with one field of a wrong type."""

    def break_one(draw: Any) -> Any:
        record = draw(records)
        name = draw(st.sampled_from([f.name for f in dataclasses.fields(record)]))
        return dataclasses.replace(record, **{name: draw(ODD)})

    return st.one_of(records, records, records, st.composite(break_one)())


def maybe(typed: bool, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`strategy` as it is if `typed`, else with a field of a wrong type now and then."""
    return strategy if typed else sometimes_broken(strategy)


def items(typed: bool) -> st.SearchStrategy[Any]:
    """Inventory records (profiles, sources, contacts, groups, certificate profiles)."""
    flags = st.lists(st.sampled_from(ALERT_FLAGS) | TEXT, max_size=3).map(tuple)
    return maybe(
        typed,
        st.builds(
            Item,
            id=IDS,
            name=TEXT,
            kind=TEXT,
            paused=st.booleans(),
            contact_group=TEXT,
            interval=st.none() | FLOATS,
            default=st.none() | st.booleans(),
            confirmed=st.none() | st.booleans(),
            members=st.none() | st.lists(IDS, max_size=3).map(tuple),
            warning_days=st.none() | FLOATS,
            alerts_on=flags,
            alerts_off=flags,
        ),
    )


def records(typed: bool) -> dict[str, st.SearchStrategy[Any]]:
    """The records each collector's snapshot holds. `typed`: every field of its declared type
    (ints within ±2**80); otherwise anything, wrong types now and then."""

    ints = SANE_INTS if typed else INTS
    host = maybe(
        typed,
        st.builds(
            Host,
            id=IDS,
            host=TEXT,
            name=TEXT,
            kind=TEXT,
            profile_id=TEXT,
            paused=st.booleans(),
            listed=st.booleans(),
            listings=ints,
            rbls=RBLS,
            last_checked=st.none() | TIMES,
            first_listed=st.none() | TIMES,
        ),
    )
    monitor = maybe(
        typed,
        st.builds(
            Monitor,
            id=IDS,
            name=TEXT,
            hostname=TEXT,
            protocol=TEXT,
            port=TEXT,
            profile_id=TEXT,
            paused=st.booleans(),
            not_after=st.none() | TIMES,
            expiry_days=st.none() | FLOATS,
        ),
    )
    cert_error = maybe(typed, st.builds(CertError, id=IDS, monitor_id=IDS, reason=TEXT))
    inventory = dict.fromkeys(
        ("rbl_profiles", "cert_profiles", "rbl_sources", "contacts", "contact_groups"), items(typed)
    )
    return {
        "rbl_hosts": host,
        "rbl_listings": host,
        "cert_monitors": monitor,
        "cert_errors": cert_error,
        **inventory,
    }


def webhook_states(typed: bool) -> st.SearchStrategy[WebhookState]:
    """Webhook state. `typed`: every field of its declared type (counters not negative);
    otherwise anything, wrong types now and then."""

    ints = SANE_INTS if typed else INTS
    counts = COUNTS if typed else INTS
    host_mark = st.builds(
        HostMark,
        at=TIMES,
        listed=st.none() | st.booleans(),
        listings=ints,
        rbls=RBLS,
        last_checked=st.none() | TIMES,
    )
    monitor_mark = st.builds(
        MonitorMark, expiry_days=st.none() | FLOATS, expiry_at=TIMES, errors=st.none() | RBLS, errors_at=TIMES
    )
    agent = maybe(typed, st.builds(Agent, name=TEXT, timed_out=st.booleans(), instances=RBLS, at=TIMES))
    hetrix = maybe(typed, st.builds(Hetrix, label=TEXT, listed_now=ints, rbls=RBLS, at=TIMES))
    return st.builds(
        WebhookState,
        hosts=st.dictionaries(IDS, host_mark, max_size=3),
        monitors=st.dictionaries(IDS, monitor_mark, max_size=3),
        cert_changes=st.dictionaries(IDS, st.tuples(counts, TIMES), max_size=3),
        agents=st.dictionaries(IDS, agent, max_size=3),
        balance=st.none() | FLOATS if typed else st.none() | FLOATS | ODD,
        balance_threshold=st.none() | FLOATS,
        events=st.dictionaries(TEXT, counts, max_size=3),
        last_event=st.dictionaries(TEXT, TIMES, max_size=3),
        hetrix=st.dictionaries(TEXT, hetrix, max_size=3),
    )


def states(typed: bool) -> st.SearchStrategy[tuple[dict[str, Snapshot], WebhookState]]:
    """(snapshots, webhook state): a snapshot of some of the collectors, up to five records each."""
    by_collector = records(typed)

    @st.composite
    def snapshots(draw: Any) -> dict[str, Snapshot]:
        out = {}
        for collector in draw(st.sets(st.sampled_from(COLLECTORS))):
            objs = draw(st.lists(by_collector[collector], max_size=5))
            items = {r.id if isinstance(r.id, str) else str(i): r for i, r in enumerate(objs)}
            out[collector] = Snapshot(
                collector, items, draw(TIMES), NOW - 10, None, draw(st.dictionaries(IDS, TIMES, max_size=3))
            )
        return out

    return st.tuples(snapshots(), webhook_states(typed))


INTERVALS = st.dictionaries(st.sampled_from(COLLECTORS), st.one_of(st.floats(1, 86400), FLOATS))


def exposition(
    snaps: dict[str, Snapshot], webhooks: WebhookState, intervals: dict[str, float]
) -> tuple[bytes, RenderStats]:
    """Render, and check what every exposition must be; returns the text format and the stats."""
    stats = RenderStats()
    families = render(snaps, Freshness(NOW, intervals, AGES), webhooks, stats)
    assert [f.name for f in families] == [m.name for m in DATA_METRICS]
    assert set(stats.skipped) == set(OBJECTS) and set(stats.truncated) == set(LABELS)
    text = join(families, False)
    list(parse_text(text.decode("utf-8")))  # the Prometheus text format; UTF-8 throughout
    list(parse_om(join(families, True).decode("utf-8") + "# EOF\n"))  # type: ignore[no-untyped-call]
    return text, stats


def test_any_records_render_into_an_exposition_every_parser_accepts() -> None:
    texts: list[bytes] = []

    @given(state=states(typed=False), intervals=INTERVALS)
    def renders(state: tuple[dict[str, Snapshot], WebhookState], intervals: dict[str, float]) -> None:
        text, _ = exposition(*state, intervals)
        texts.append(text)

    renders()
    promtool = need_binary("promtool")
    largest = sorted(texts, key=len)[-PROMTOOL_SAMPLES // 2 :]
    spread = texts[:: max(1, len(texts) // (PROMTOOL_SAMPLES // 2))][: PROMTOOL_SAMPLES // 2]
    for text in largest + spread:
        result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, check=False)
        problems = (result.stdout + result.stderr).decode().strip().splitlines()
        # the one lint finding allowed (see tests/test_demo.py): the mandated days unit
        assert all("_expiry_days" in p or "_expiry_warning_days" in p for p in problems), problems


@given(state=states(typed=True), intervals=INTERVALS)
def test_records_of_the_declared_types_are_never_left_out(
    state: tuple[dict[str, Snapshot], WebhookState], intervals: dict[str, float]
) -> None:
    _, stats = exposition(*state, intervals)
    assert not any(stats.skipped.values()), stats.errors
