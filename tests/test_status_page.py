"""The live status page (`/`) and its JSON twin (`/api/v1/status`) through the real aiohttp app:
what is listed and where to get it delisted, certificates, budget and freshness, caps and pages
at a large account, escaping of hostile text, and the HetrixTools links kept from the webhook to
the state file."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.api.records import CertError, parse_host
from exporter.state.events import HetrixMonitor
from exporter.state.overlay import HostMark, MonitorMark, WebhookState
from exporter.web.status import CERTS_SHOWN, PER_PAGE
from exporter.webhooks.payloads import check_hetrix_chunk
from tests.helpers.metrics import NOW
from tests.helpers.status import BUDGET, Page, host, monitor, snapshots, status_app, store_of

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
SPAMHAUS = "https://www.spamhaus.org/query/ip/192.0.2.7"


async def fetch(client: Client, path: str = "/") -> tuple[Page, dict[str, Any]]:
    """The page at `path` (with its query) and the JSON twin for the same query, both 200."""
    query = path.partition("?")[2]
    page = await client.get(path)
    assert page.status == 200 and page.content_type == "text/html"
    twin = await client.get("/api/v1/status" + (f"?{query}" if query else ""))
    assert twin.status == 200 and twin.content_type == "application/json"
    return Page(await page.text()), await twin.json()


def hetrix(monitor: str, rbls: dict[str, str], label: str = "edge") -> HetrixMonitor:
    return HetrixMonitor(
        monitor, label, len(rbls), tuple(rbls), tuple(rbls.values()), "https://hx.example/r/1"
    )


async def test_a_listed_host_shows_its_rbls_since_when_and_where_to_delist(
    aiohttp_client: AiohttpClient,
) -> None:
    """A polled Generator Labs host and a HetrixTools monitor, each with its RBLs; the monitor's
    delist links are links, and each row says where its data came from and how old it is."""
    listed = host("HT1", listed=True, rbls=("PSBL", "Spamhaus ZEN"), first=NOW - 7200)
    webhooks = WebhookState()
    webhooks.apply_hetrix([hetrix("192.0.2.7", {"zen.spamhaus.org": SPAMHAUS})], NOW - 30)
    client = await aiohttp_client(status_app(store_of(snapshots([listed, host("HT2")]), webhooks)))
    page, doc = await fetch(client)
    rows = page.rows["listed"]
    assert len(rows) == 2 and page.by_id["listed-total"] == "2"
    gl = next(r for r in rows if "HT1.example" in r)
    assert "PSBL" in gl and "Spamhaus ZEN" in gl and "generatorlabs poll" in gl
    assert "2026-09-21" in gl  # first_listed, NOW - 2 h, as a UTC date
    hx = next(r for r in rows if "192.0.2.7" in r)
    assert "zen.spamhaus.org" in hx and "hetrixtools webhook" in hx and "30s ago" in hx
    assert (SPAMHAUS, "delist") in page.links
    by_id = {item["id"]: item for item in doc["listed"]["items"]}
    assert by_id["HT1"]["rbls"] == [{"rbl": "PSBL", "delist": None}, {"rbl": "Spamhaus ZEN", "delist": None}]
    assert by_id["HT1"]["first_listed"] == NOW - 7200 and by_id["HT1"]["via"] == "poll"
    assert by_id["192.0.2.7"]["rbls"] == [{"rbl": "zen.spamhaus.org", "delist": SPAMHAUS}]
    assert (
        by_id["192.0.2.7"]["age_seconds"] == 30.0 and by_id["192.0.2.7"]["report"] == "https://hx.example/r/1"
    )


async def test_generator_labs_delist_links_come_from_listed_details_websites(
    aiohttp_client: AiohttpClient,
) -> None:
    """Each RBL's `listed_details[].website` is its delist link, in the JSON and as a link on the
    page, when it is an http(s) URL; "" (the v3 sample's) and javascript: give none. A webhook
    that changes the host's RBLs keeps each remaining RBL's link (matched by name)."""
    raw = {
        "id": "HT1",
        "host": "192.0.2.1",
        "name": "mx1",
        "listed": 1,
        "first_listed": NOW - 600,
        "listed_details": [
            {"host": "Spamhaus ZEN", "website": SPAMHAUS, "details": "listed"},
            {"host": "PSBL", "website": "", "details": "listed"},
            {"host": "Evil", "website": "javascript:alert(1)", "details": "listed"},
        ],
    }
    listed = parse_host(raw, lambda *_: None)
    assert listed is not None and listed.delist == ("Spamhaus ZEN", SPAMHAUS)
    client = await aiohttp_client(status_app(store_of(snapshots([listed]))))
    page, doc = await fetch(client)
    [item] = doc["listed"]["items"]
    assert item["rbls"] == [
        {"rbl": "Spamhaus ZEN", "delist": SPAMHAUS},
        {"rbl": "PSBL", "delist": None},
        {"rbl": "Evil", "delist": None},
    ]
    assert (SPAMHAUS, "delist") in page.links
    assert not any("javascript:" in href for href, _ in page.links)
    webhooks = WebhookState()
    webhooks.hosts["HT1"] = HostMark(NOW - 5, True, 2, ("PSBL", "Spamhaus ZEN"), None)
    client = await aiohttp_client(status_app(store_of(snapshots([listed]), webhooks)))
    _, doc = await fetch(client)
    [item] = doc["listed"]["items"]
    assert item["via"] == "webhook"
    assert item["rbls"] == [{"rbl": "PSBL", "delist": None}, {"rbl": "Spamhaus ZEN", "delist": SPAMHAUS}]


async def test_a_webhook_listing_shows_at_once_and_says_it_came_by_webhook(
    aiohttp_client: AiohttpClient,
) -> None:
    """A host the polls saw clean is listed by an rbl.host.listed newer than them: the next
    request shows it (no stale cache), newest first, and a mark older than the poll does not."""
    store = store_of(snapshots([host("HT1"), host("HT2", listed=True, rbls=("PSBL",), first=NOW - 3600)]))
    client = await aiohttp_client(status_app(store))
    _, before = await fetch(client)
    assert [i["id"] for i in before["listed"]["items"]] == ["HT2"]
    store.webhooks.hosts["HT1"] = HostMark(NOW - 2, True, 1, ("Barracuda",), NOW - 2)
    store.webhooks_changed()
    page, after = await fetch(client)
    assert [i["id"] for i in after["listed"]["items"]] == ["HT1", "HT2"]
    first = after["listed"]["items"][0]
    assert first["via"] == "webhook" and first["first_listed"] == NOW - 2 and first["age_seconds"] == 2.0
    assert "Barracuda" in page.rows["listed"][0] and "generatorlabs webhook" in page.rows["listed"][0]
    store.webhooks.hosts["HT1"] = HostMark(NOW - 20, True, 1, ("Old",), NOW - 20)  # older than the poll
    store.webhooks_changed()
    _, stale = await fetch(client)
    assert [i["id"] for i in stale["listed"]["items"]] == ["HT2"]


async def test_certificates_expiring_expired_and_errors_with_reasons(aiohttp_client: AiohttpClient) -> None:
    """Expiring soonest first, expired most recently first, paused ones left out, a
    cert.expiration webhook newer than the poll wins, errors by monitor with their reasons."""
    monitors = [
        monitor("CM1", 30.0),
        monitor("CM2", 3.0),
        monitor("CM3", -2.0),
        monitor("CM4", -0.5),
        monitor("CM5", 1.0, paused=True),
        monitor("CM6", None),
        monitor("CM7", 90.0),
    ]
    errors = [CertError("E1", "CM1", "name_mismatch"), CertError("E2", "CM1", "connection")]
    webhooks = WebhookState(monitors={"CM7": MonitorMark(expiry_days=0.25, expiry_at=NOW)})
    client = await aiohttp_client(status_app(store_of(snapshots([], monitors, errors), webhooks)))
    page, doc = await fetch(client)
    certs = doc["certificates"]
    assert [c["id"] for c in certs["expiring"]["items"]] == ["CM7", "CM2", "CM1"]
    assert (
        certs["expiring"]["items"][0]["via"] == "webhook" and certs["expiring"]["items"][1]["via"] == "poll"
    )
    assert certs["expiring"]["items"][1]["expiry_days"] == 3.0
    assert [c["id"] for c in certs["expired"]["items"]] == ["CM4", "CM3"] and certs["expired"]["total"] == 2
    assert certs["without_expiry"] == 1
    assert certs["errors"]["items"] == [
        {
            "monitor_id": "CM1",
            "name": "cert-CM1",
            "hostname": "CM1.example",
            "reasons": ["connection", "name_mismatch"],
            "via": "poll",
        }
    ]
    assert "cert-CM2" in page.rows["expiring"][1] and "in 3.0 days" in page.rows["expiring"][1]
    assert "0.5 days ago" in page.rows["expired"][0]
    assert "connection, name_mismatch" in page.rows["errors"][0]
    assert page.by_id["without-expiry"] == "1"


async def test_budget_and_each_collectors_freshness(aiohttp_client: AiohttpClient) -> None:
    """The budget used, planned and its limit, what the API said, and each collector's state."""
    client = await aiohttp_client(status_app(store_of(snapshots()), used=7))
    page, doc = await fetch(client)
    assert doc["budget"]["used"] == 7 and doc["budget"]["limit_per_hour"] == BUDGET
    assert doc["budget"]["planned_per_hour"] == 480.0
    assert doc["budget"]["server_remaining"] == [{"window_seconds": 3600, "remaining": 900}]
    assert (
        f"7 requests in the last hour of a budget of {BUDGET}; the plan needs 480/h." in page.by_id["budget"]
    )
    assert "900 left in its hourly window" in page.by_id["budget"]
    failing = next(c for c in doc["collectors"] if c["name"] == "cert_errors")
    assert failing["state"] == "failing" and failing["error"] == "timeout" and failing["age_seconds"] == 600.0
    assert any(
        "cert_errors" in r and "failing (timeout)" in r and "600s ago" in r for r in page.rows["collectors"]
    )
    assert any("rbl_hosts" in r and "ok" in r and "5s ago" in r for r in page.rows["collectors"])
    hrefs = {href for href, _ in page.links}
    assert {"/metrics", "/-/healthy", "/-/ready", "api/v1/status"} <= hrefs


async def test_a_large_account_is_capped_and_paged(aiohttp_client: AiohttpClient) -> None:
    """100,000 hosts, 2,000 of them listed: a page holds PER_PAGE, newest listing first, with
    the count and the page links; a page past the end is the last, a bad one the first."""
    hosts = [
        host(f"HT{i:06d}", listed=i < 2000, rbls=("PSBL",) if i < 2000 else (), first=NOW - 10_000 + i)
        for i in range(100_000)
    ]
    monitors = [monitor(f"CM{i:05d}", 1.0 + i / 100) for i in range(5000)]
    client = await aiohttp_client(status_app(store_of(snapshots(hosts, monitors))))
    page, doc = await fetch(client)
    listed = doc["listed"]
    assert (listed["total"], listed["page"], listed["pages"], listed["per_page"]) == (2000, 1, 40, PER_PAGE)
    assert [i["id"] for i in listed["items"]][:2] == ["HT001999", "HT001998"]
    assert len(page.rows["listed"]) == PER_PAGE and page.by_id["listed-total"] == "2000"
    assert ("?page=2", "next") in page.links
    assert len(doc["certificates"]["expiring"]["items"]) == CERTS_SHOWN
    assert doc["certificates"]["expiring"]["total"] == 5000
    last, last_doc = await fetch(client, "/?page=40")
    assert [i["id"] for i in last_doc["listed"]["items"]][-1] == "HT000000"
    assert ("?page=39", "previous") in last.links and "next" not in {t for _, t in last.links}
    _, beyond = await fetch(client, "/?page=999999999")
    assert beyond["listed"]["page"] == 40
    for bad in ("abc", "-3", "0", "1e3"):
        _, doc = await fetch(client, f"/?page={bad}")
        assert doc["listed"]["page"] == 1


HOSTILE = '<script>alert("x")</script>\'" onmouseover="alert(1)\udcff'


async def test_hostile_text_is_escaped_and_only_web_links_are_linked(aiohttp_client: AiohttpClient) -> None:
    """Names, hosts and RBL names with markup, quotes and a lone surrogate are shown as text
    (the surrogate as U+FFFD); javascript:, data: and relative delist links are not linked."""
    listed = host("HT1", listed=True, rbls=(HOSTILE,), first=NOW - 60)
    listed = replace(listed, host=HOSTILE, name=HOSTILE)
    links = {
        "a.example": "javascript:alert(1)",
        "b.example": "data:text/html,<script>alert(1)</script>",
        "c.example": "/relative/path",
        "d.example": 'https://ok.example/?a=1&b="><script>',
        HOSTILE: "https://fine.example/",
    }
    webhooks = WebhookState()
    webhooks.apply_hetrix([hetrix(HOSTILE, links, label=HOSTILE)], NOW - 5)
    client = await aiohttp_client(
        status_app(store_of(snapshots([listed], [monitor("CM1", 2.0, name=HOSTILE)]), webhooks))
    )
    response = await client.get("/")
    raw = await response.text()
    page = Page(raw)
    assert "<script>alert" not in raw and 'onmouseover="' not in raw
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27;&quot; onmouseover=&quot;alert(1)\ufffd"
        in raw
    )
    assert len(page.scripts) == 1 and "alert" not in page.scripts[0]  # only the page's own script
    hrefs = [href for href, _ in page.links]
    assert all(h.startswith(("https://", "http://", "?", "/", "api/")) for h in hrefs), hrefs
    assert not any("javascript:" in h or "data:" in h or h == "/relative/path" for h in hrefs)
    assert 'https://ok.example/?a=1&b="><script>' in hrefs  # escaped in the attribute, intact when read
    assert "https://fine.example/" in hrefs
    visible = HOSTILE.replace("\udcff", "\ufffd")
    assert any(visible in row for row in page.rows["listed"]) and visible in page.rows["expiring"][0]
    doc = await (await client.get("/api/v1/status")).json()
    hx = next(i for i in doc["listed"]["items"] if i["source"] == "hetrixtools")
    assert {r["rbl"]: r["delist"] for r in hx["rbls"]} == {
        "a.example": None,
        "b.example": None,
        "c.example": None,
        "d.example": 'https://ok.example/?a=1&b="><script>',
        visible: "https://fine.example/",
    }


def _kinds(value: Any) -> Any:
    """The shape of a JSON value: the type names of its fields, recursively (lists by their first
    item)."""
    if isinstance(value, dict):
        return {k: _kinds(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_kinds(value[0])] if value else []
    return type(value).__name__


async def test_the_json_twin_has_the_documented_fields(aiohttp_client: AiohttpClient) -> None:
    """Every documented field, with its type, for a listed host, certificates and collectors."""
    store = store_of(
        snapshots(
            [host("HT1", listed=True, rbls=("PSBL",), first=NOW - 60)],
            [monitor("CM1", 2.0), monitor("CM2", -1.0)],
            [CertError("E1", "CM1", "connection")],
        )
    )
    client = await aiohttp_client(status_app(store))
    response = await client.get("/api/v1/status?page=1")
    assert response.headers["Cache-Control"] == "no-store"
    doc = json.loads(await response.text())
    listed: dict[str, Any] = {"source": "str", "id": "str", "host": "str", "name": "str", "listings": "int"}
    listed |= {"rbls": [{"rbl": "str", "delist": "NoneType"}], "first_listed": "float", "via": "str"}
    listed |= {"as_of": "float", "report": "NoneType", "age_seconds": "float"}
    cert: dict[str, Any] = {"id": "str", "name": "str", "hostname": "str", "protocol": "str", "port": "str"}
    cert |= {"expiry_days": "float", "not_after": "float", "via": "str"}
    error = {"monitor_id": "str", "name": "str", "hostname": "str", "reasons": ["str"], "via": "str"}
    collector: dict[str, Any] = {
        "name": "str",
        "state": "str",
        "error": "str",
        "last_success": "float",
    }  # failing
    collector |= {"age_seconds": "float", "interval_seconds": "float", "configured_seconds": "float"}
    collector |= {"pages": "int"}
    assert _kinds(doc) == {
        "version": "str",
        "generated_at": "float",
        "refresh_seconds": "int",
        "links": {"metrics": "str", "healthy": "str", "ready": "str", "status": "str"},
        "listed": {"total": "int", "page": "int", "pages": "int", "per_page": "int", "items": [listed]},
        "certificates": {
            "expiring": {"total": "int", "items": [cert]},
            "expired": {"total": "int", "items": [cert]},
            "errors": {"total": "int", "items": [error]},
            "without_expiry": "int",
        },
        "budget": {
            "used": "int",
            "planned_per_hour": "float",
            "limit_per_hour": "int",
            "backoff_seconds": "float",
            "server_remaining": [{"window_seconds": "int", "remaining": "int"}],
            "pending_webhooks": "int",
        },
        "collectors": [collector],
    }


def test_hetrixtools_delist_links_are_kept_pairwise_and_a_bad_link_costs_only_itself() -> None:
    """Each RBL keeps the delist link sent with it ("" for none or one that is not text); the
    report link is kept; the monitor is never skipped for a link."""
    chunk = check_hetrix_chunk(
        json.dumps(
            [
                {
                    "monitor": "192.0.2.7",
                    "label": "mx",
                    "blacklisted_now": "3",
                    "blacklisted_on": [
                        {"rbl": "a.example", "delist": "https://a.example/delist"},
                        {"rbl": "b.example", "delist": {"not": "text"}},
                        {"rbl": "c.example"},
                        {"rbl": "a.example", "delist": "https://other.example/"},
                    ],
                    "links": {"report_link": "https://hetrixtools.com/report/blacklist/x/"},
                },
                {"monitor": "192.0.2.8", "blacklisted_now": "0", "blacklisted_on": None, "links": "odd"},
            ]
        ).encode()
    )
    assert not chunk.skipped
    first, second = chunk.monitors
    assert first.rbls == ("a.example", "b.example", "c.example")
    assert first.delist == ("https://a.example/delist", "", "")
    assert first.report == "https://hetrixtools.com/report/blacklist/x/"
    assert (second.rbls, second.delist, second.report) == ((), (), "")


def test_stored_hetrixtools_monitors_load_with_and_without_links() -> None:
    """A monitor stored with its links reads back with them; one stored before links were kept
    (or with links that do not pair up with its RBLs) reads back without them, and is kept."""
    state = WebhookState()
    state.apply_hetrix([hetrix("192.0.2.7", {"a.example": "https://a.example/", "b.example": ""})], NOW)
    stored = json.loads(json.dumps(state.to_json()))
    again = WebhookState.from_json(stored)
    assert again.hetrix == state.hetrix
    old = {"label": "mx", "listed_now": 1, "rbls": ["a.example"], "at": NOW}
    loaded = WebhookState()
    assert loaded.load_mark("hetrix", "old", old)
    assert loaded.load_mark("hetrix", "odd", {**old, "delist": ["x", "y"], "report": 5})
    assert (loaded.hetrix["old"].rbls, loaded.hetrix["old"].delist, loaded.hetrix["old"].report) == (
        ("a.example",),
        (),
        "",
    )
    assert loaded.hetrix["odd"].delist == () and loaded.hetrix["odd"].listed_now == 1
    assert WebhookState.from_json({"hetrix": {"old": old}}).hetrix["old"].label == "mx"
