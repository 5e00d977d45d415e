"""The exporter's HTTP routes: /metrics, the landing page, health, readiness and reload (I/O: aiohttp
handlers). They ask the parts for answers; the listener that serves them is exporter.web.server."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from exporter import __version__
from exporter.clock import HOUR, MIB, MINUTE
from exporter.config.model import DEFAULT_TELEMETRY_PATH, HEALTHY_PATH, LANDING_PATH, READY_PATH, RELOAD_PATH
from exporter.metrics.selfmetrics import Live
from exporter.metrics.serve import Scraper
from exporter.state.store import StateStore
from exporter.web.server import WRITE_CHUNK

log = structlog.get_logger("exporter.web.routes")
ReloadFn = Callable[[], Awaitable[list[str]]]
# bytes of a request body aiohttp reads whole (the webhook receivers stream theirs and check
# webhooks.max_body_bytes themselves); the webhook listener of its own has the same limit
LISTENER_MAX_BODY = MIB


@dataclass(slots=True)
class ServerParts:
    scraper: Scraper
    store: StateStore
    live: Live
    reload: ReloadFn
    now: Callable[[], float]
    telemetry_path: str = DEFAULT_TELEMETRY_PATH
    failing: Callable[[], Mapping[str, str]] = dict  # background tasks in a crash loop
    pending_webhooks: Callable[[], int] = int  # webhook items acknowledged, not yet applied


PARTS = web.AppKey("parts", ServerParts)


class CachedBody(web.StreamResponse):
    """A response whose body is the given bytes objects, written WRITE_CHUNK at a time once
    aiohttp sends the response (after the middlewares have set their headers): never copied
    whole, so every client being answered shares the one cached body, and each write waits
    while the client's socket buffer is full."""

    def __init__(self, parts: tuple[bytes, ...], *, head: bool, headers: Mapping[str, str]) -> None:
        super().__init__(headers=headers)
        self.content_length = sum(len(p) for p in parts)
        self._parts = parts if not head else ()
        self._body_sent = False

    async def write_eof(self, data: bytes = b"") -> None:
        if not self._body_sent:
            self._body_sent = True
            for part in self._parts:
                view = memoryview(part)
                for start in range(0, len(view), WRITE_CHUNK):
                    await self.write(view[start : start + WRITE_CHUNK])
        await super().write_eof(data)


async def metrics(request: web.Request) -> web.StreamResponse:
    parts = request.app[PARTS]
    exposition = parts.scraper.expose(
        request.headers.get("Accept", ""), request.headers.get("Accept-Encoding", "")
    )
    headers = {"Content-Type": exposition.content_type, "Vary": "Accept, Accept-Encoding"}
    if exposition.gzipped:
        headers["Content-Encoding"] = "gzip"
    return CachedBody(exposition.parts, head=request.method == "HEAD", headers=headers)


async def healthy(request: web.Request) -> web.Response:
    """503 while a background task is in a crash loop, so a liveness probe restarts us."""
    failing = request.app[PARTS].failing()
    if failing:
        lines = "".join(f"  - {task}: {error}\n" for task, error in sorted(failing.items()))
        return web.Response(status=503, text=f"Unhealthy: background tasks keep failing:\n{lines}")
    return web.Response(text="Healthy\n")


async def ready(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    if parts.store.has_data:
        return web.Response(text="Ready\n")
    return web.Response(status=503, text="Not ready: no data loaded yet\n")


async def reload(request: web.Request) -> web.Response:
    problems = await request.app[PARTS].reload()
    if problems:
        return web.Response(
            status=400,
            text="config not reloaded, old config kept:\n" + "\n".join(f"  - {p}" for p in problems) + "\n",
        )
    return web.Response(text="config reloaded\n")


def _age(now: float, ts: float | None) -> str:
    if ts is None:
        return "never"
    seconds, hour, minute = max(0, int(now - ts)), int(HOUR), int(MINUTE)
    return f"{seconds // hour}h{seconds % hour // minute:02d}m ago" if seconds >= hour else f"{seconds}s ago"


async def landing(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    live, now = parts.live, parts.now()
    rows = []
    for name, configured in sorted(live.enabled.items()):
        h = parts.store.health(name)
        effective = live.plan.intervals.get(name, configured) if live.plan else configured
        state = {None: "waiting", True: "ok", False: f"failing ({h.error})"}[h.success]
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(state)}</td>"
            f"<td>{_age(now, h.last_success)}</td><td>{effective:.0f}s</td><td>{configured:.0f}s</td>"
            f"<td>{live.pages.get(name, 1)}</td></tr>"
        )
    ledger = live.ledger
    planned = live.plan.requests_per_hour if live.plan else 0.0
    server = ledger.server
    remaining = server.remaining if server and server.remaining is not None else "unknown"
    backoff = (
        f"<p><b>Rate limited:</b> no requests for {ledger.backoff_until - now:.0f}s more.</p>"
        if ledger.backoff_until > now
        else ""
    )
    path = html.escape(parts.telemetry_path)
    pending = parts.pending_webhooks()
    backlog = f"<p>{pending} webhook events acknowledged and not yet applied.</p>" if pending else ""
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Generator Labs exporter</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
td,th{{padding:.2em .8em;text-align:left}}</style>
</head><body>
<h1>Generator Labs exporter</h1>
<p>Version {html.escape(__version__)}.
<a href="{path}">Metrics</a> · <a href="{HEALTHY_PATH}">Health</a> · <a href="{READY_PATH}">Readiness</a></p>
<h2>API budget</h2>
<p>{ledger.used(now)} requests in the last hour of a budget of {ledger.per_hour};
the plan needs {planned:.0f}/h. Server says {remaining} requests remain.</p>{backoff}{backlog}
<h2>Freshness</h2>
<table><tr><th>collector</th><th>state</th><th>last success</th><th>interval</th>
<th>configured</th><th>pages</th></tr>
{"".join(rows)}
</table>
<p>Values on {path} are cached; a scrape never calls the API.</p>
</body></html>
"""
    return web.Response(text=page, content_type="text/html")


def build_app(parts: ServerParts, middlewares: tuple[Any, ...] = ()) -> web.Application:
    """The main listener's app: the telemetry path and the fixed routes (config.model.ROUTES,
    which the telemetry path is checked against)."""
    app = web.Application(client_max_size=LISTENER_MAX_BODY, middlewares=middlewares)
    app[PARTS] = parts
    app.router.add_get(parts.telemetry_path, metrics)
    app.router.add_get(LANDING_PATH, landing)
    app.router.add_get(HEALTHY_PATH, healthy)
    app.router.add_get(READY_PATH, ready)
    app.router.add_post(RELOAD_PATH, reload)
    return app
