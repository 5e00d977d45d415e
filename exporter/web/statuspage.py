"""Pure, no I/O: the status page's HTML, rendered from the status document (exporter.web.status).

One self-contained page: no external asset (the exporter often runs where the internet is not
reachable), a viewport and CSS that fit a phone, every value escaped (html.escape; links only to
http and https URLs, exporter.api.fields.http_url). A small inline script fetches the JSON twin every
`refresh_seconds` and rebuilds the tables with createElement and textContent only, never
innerHTML, with the same texts this module writes (`age`, `when`, `budget_text`), so the page
stays live without a reload; without JavaScript it is still complete as served.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any

from exporter.api.fields import http_url
from exporter.clock import HOUR, MINUTE
from exporter.config.model import STATUS_PATH

STATUS_JSON = STATUS_PATH.lstrip("/")  # relative: it still works behind a reverse proxy's path prefix


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    s, hour, minute = int(max(0.0, seconds)), int(HOUR), int(MINUTE)
    return f"{s // hour}h{s % hour // minute:02d}m ago" if s >= hour else f"{s}s ago"


def when(at: float | None) -> str:
    """An epoch as a UTC minute ("2025-01-02 03:04 UTC"); "unknown" for none."""
    if at is None:
        return "unknown"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def budget_text(b: Mapping[str, Any]) -> str:
    text = (
        f"{b['used']} requests in the last hour of a budget of {b['limit_per_hour']}; "
        f"the plan needs {b['planned_per_hour']:.0f}/h."
    )
    said = [
        f"{r['remaining']} left in its {_window(r['window_seconds'])} window" for r in b["server_remaining"]
    ]
    text += (
        f" The API last said: {'; '.join(said)}."
        if said
        else " The API has not reported its remaining requests yet."
    )
    if b["backoff_seconds"] > 0:
        text += f" Rate limited: no requests for {b['backoff_seconds']:.0f}s more."
    if b["pending_webhooks"]:
        text += f" {b['pending_webhooks']} webhook events acknowledged and not yet applied."
    return text


def _window(seconds: int | None) -> str:
    return {None: "unidentified", int(HOUR): "hourly", 1: "per-second"}.get(seconds, f"{seconds} s")


def _rbls(rbls: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for r in rbls:
        url = http_url(r["delist"])
        delist = f' <a class="delist" href="{esc(url)}" rel="noopener noreferrer">delist</a>' if url else ""
        out.append(f"<span class=rbl>{esc(r['rbl'])}{delist}</span>")
    return " ".join(out)


def _row(cells: Sequence[str]) -> str:
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _listed_rows(items: Sequence[Mapping[str, Any]]) -> str:
    return "".join(
        _row(
            (
                esc(r["host"]),
                esc(r["name"]),
                f"{r['listings']}: {_rbls(r['rbls'])}",
                esc(when(r["first_listed"])),
                esc(f"{r['source']} {r['via']}"),
                esc(age(r["age_seconds"])),
            )
        )
        for r in items
    )


def _cert_rows(items: Sequence[Mapping[str, Any]]) -> str:
    return "".join(
        _row(
            (
                esc(c["name"]),
                esc(f"{c['hostname']}:{c['port']}" if c["port"] else c["hostname"]),
                esc(_days(c["expiry_days"])),
                esc(when(c["not_after"])),
                esc(c["via"]),
            )
        )
        for c in items
    )


def _days(days: float | None) -> str:
    if days is None:
        return "unknown"
    return f"in {days:.1f} days" if days >= 0 else f"{-days:.1f} days ago"


def _error_rows(items: Sequence[Mapping[str, Any]]) -> str:
    return "".join(
        _row(
            (
                esc(e["name"] or e["monitor_id"]),
                esc(e["hostname"]),
                esc(", ".join(e["reasons"])),
                esc(e["via"]),
            )
        )
        for e in items
    )


def _collector_rows(items: Sequence[Mapping[str, Any]]) -> str:
    return "".join(
        _row(
            (
                esc(c["name"]),
                esc(_state(c)),
                esc(age(c["age_seconds"])),
                esc(f"{c['interval_seconds']:.0f}s"),
                esc(f"{c['configured_seconds']:.0f}s"),
                esc(c["pages"]),
            )
        )
        for c in items
    )


def _state(c: Mapping[str, Any]) -> str:
    return f"failing ({c['error']})" if c["state"] == "failing" else str(c["state"])


def _pages(listed: Mapping[str, Any]) -> str:
    page, pages = listed["page"], listed["pages"]
    back = f'<a id="listed-prev" href="?page={page - 1}">previous</a> ' if page > 1 else ""
    on = f' <a id="listed-next" href="?page={page + 1}">next</a>' if page < pages else ""
    return f'{back}<span id="listed-page">page {page} of {pages}</span>{on}'


def _table(ident: str, heads: Sequence[str], rows: str) -> str:
    head = "".join(f"<th>{h}</th>" for h in heads)
    table = f'<table id="{ident}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
    return f"<div class=scroll>{table}</div>"


def page(doc: Mapping[str, Any]) -> str:
    """The whole page for the status document `doc`."""
    links, listed, certs = doc["links"], doc["listed"], doc["certificates"]
    nav = " · ".join(
        f'<a href="{esc(links[k])}">{name}</a>'
        for k, name in (
            ("metrics", "Metrics"),
            ("healthy", "Health"),
            ("ready", "Readiness"),
            ("status", "JSON"),
        )
    )
    listed_table = _table(
        "listed", ("host", "name", "RBLs", "listed since", "source", "as of"), _listed_rows(listed["items"])
    )
    cert_heads = ("name", "host", "expires", "not after", "source")
    expiring = _table("expiring", cert_heads, _cert_rows(certs["expiring"]["items"]))
    expired = _table("expired", cert_heads, _cert_rows(certs["expired"]["items"]))
    errors = _table("errors", ("monitor", "host", "reasons", "source"), _error_rows(certs["errors"]["items"]))
    freshness = _table(
        "collectors",
        ("collector", "state", "last success", "interval", "configured", "pages"),
        _collector_rows(doc["collectors"]),
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Generator Labs exporter</title>
<style>{_CSS}</style>
</head><body data-refresh="{int(doc["refresh_seconds"])}">
<h1>Generator Labs exporter</h1>
<p>Version {esc(doc["version"])}. {nav}</p>
<p class=muted>Updated <span id="updated">{esc(when(doc["generated_at"]))}</span>
<span id="refresh-error"></span></p>
<h2>Listed now (<span id="listed-total">{listed["total"]}</span>)</h2>
{listed_table}
<p id="listed-pages">{_pages(listed)}</p>
<h2>Certificates</h2>
<h3>Expiring soonest (<span id="expiring-total">{certs["expiring"]["total"]}</span>)</h3>
{expiring}
<h3>Expired (<span id="expired-total">{certs["expired"]["total"]}</span>)</h3>
{expired}
<h3>Active errors (<span id="errors-total">{certs["errors"]["total"]}</span>)</h3>
{errors}
<p>Active monitors whose expiry could not be read:
<span id="without-expiry">{certs["without_expiry"]}</span></p>
<h2>API budget</h2>
<p id="budget">{esc(budget_text(doc["budget"]))}</p>
<h2>Freshness</h2>
{freshness}
<p>Values on {esc(links["metrics"])} are cached; a scrape never calls the API.</p>
<script>{_SCRIPT}</script>
</body></html>
"""


_CSS = """body{font-family:system-ui,sans-serif;max-width:70em;margin:1em auto;padding:0 .8em;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:1.5em}h3{font-size:1.05em}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%}
td,th{padding:.25em .6em;text-align:left;vertical-align:top;border-bottom:1px solid #ddd}
td{overflow-wrap:anywhere}.rbl{display:inline-block;margin-right:.6em}
.muted{color:#666}#refresh-error{color:#b00}
@media (max-width:40em){body{margin:.5em auto;font-size:.95em}td,th{padding:.2em .35em}}"""

# The same texts as the Python above, built with textContent only. Any value may be hostile.
_SCRIPT = """
(function () {
  "use strict";
  var refresh = Number(document.body.dataset.refresh) || 5;
  var page = new URLSearchParams(location.search).get("page") || "1";
  function text(tag, value) {
    var e = document.createElement(tag);
    e.textContent = value === null || value === undefined ? "" : String(value);
    return e;
  }
  function safe(url) {
    try { var u = new URL(url); return u.protocol === "http:" || u.protocol === "https:" ? u.href : null; }
    catch (err) { return null; }
  }
  function when(t) {
    return t === null ? "unknown" : new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }
  function age(s) {
    if (s === null) return "never";
    s = Math.floor(Math.max(0, s));
    if (s < 3600) return s + "s ago";
    return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m ago";
  }
  function days(d) {
    return d === null ? "unknown" : d >= 0 ? "in " + d.toFixed(1) + " days" : (-d).toFixed(1) + " days ago";
  }
  function rbls(r) {
    var cell = text("span", r.listings + ": ");
    r.rbls.forEach(function (x, i) {
      var item = text("span", x.rbl);
      item.className = "rbl";
      var url = x.delist ? safe(x.delist) : null;
      if (url) {
        var a = text("a", "delist");
        a.className = "delist"; a.href = url; a.rel = "noopener noreferrer";
        item.appendChild(document.createTextNode(" "));
        item.appendChild(a);
      }
      if (i) cell.appendChild(document.createTextNode(" "));
      cell.appendChild(item);
    });
    return cell;
  }
  function fill(id, rows, cells) {
    var old = document.querySelector("#" + id + " tbody"), body = document.createElement("tbody");
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      cells(row).forEach(function (c) {
        var td = document.createElement("td");
        if (c instanceof Node) td.appendChild(c); else td.textContent = c === null ? "" : String(c);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    old.replaceWith(body);
  }
  function set(id, value) { document.getElementById(id).textContent = String(value); }
  function cert(c) {
    var host = c.port ? c.hostname + ":" + c.port : c.hostname;
    return [c.name, host, days(c.expiry_days), when(c.not_after), c.via];
  }
  function budget(b) {
    var t = b.used + " requests in the last hour of a budget of " + b.limit_per_hour + "; the plan needs "
      + b.planned_per_hour.toFixed(0) + "/h.";
    var names = {"3600": "hourly", "1": "per-second"};
    var said = b.server_remaining.map(function (r) {
      var w = r.window_seconds === null ? "unidentified"
        : names[String(r.window_seconds)] || r.window_seconds + " s";
      return r.remaining + " left in its " + w + " window";
    });
    t += said.length ? " The API last said: " + said.join("; ") + "."
      : " The API has not reported its remaining requests yet.";
    if (b.backoff_seconds > 0) {
      t += " Rate limited: no requests for " + b.backoff_seconds.toFixed(0) + "s more.";
    }
    if (b.pending_webhooks) {
      t += " " + b.pending_webhooks + " webhook events acknowledged and not yet applied.";
    }
    return t;
  }
  function show(d) {
    set("updated", when(d.generated_at));
    set("refresh-error", "");
    set("listed-total", d.listed.total);
    fill("listed", d.listed.items, function (r) {
      return [r.host, r.name, rbls(r), when(r.first_listed), r.source + " " + r.via, age(r.age_seconds)];
    });
    var pages = document.getElementById("listed-page");
    if (pages) pages.textContent = "page " + d.listed.page + " of " + d.listed.pages;
    var c = d.certificates;
    set("expiring-total", c.expiring.total); fill("expiring", c.expiring.items, cert);
    set("expired-total", c.expired.total); fill("expired", c.expired.items, cert);
    set("errors-total", c.errors.total);
    fill("errors", c.errors.items, function (e) {
      return [e.name || e.monitor_id, e.hostname, e.reasons.join(", "), e.via];
    });
    set("without-expiry", c.without_expiry);
    set("budget", budget(d.budget));
    fill("collectors", d.collectors, function (k) {
      return [k.name, k.state === "failing" ? "failing (" + k.error + ")" : k.state, age(k.age_seconds),
        k.interval_seconds.toFixed(0) + "s", k.configured_seconds.toFixed(0) + "s", k.pages];
    });
  }
  function tick() {
    fetch("STATUS_JSON?page=" + encodeURIComponent(page), {headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(show)
      .catch(function (err) { set("refresh-error", "(refresh failed: " + err.message + ")"); })
      .finally(function () { setTimeout(tick, refresh * 1000); });
  }
  setTimeout(tick, refresh * 1000);
})();
""".replace("STATUS_JSON", STATUS_JSON)
