"""The exporter's HTTP routes: /metrics, the status page (`/`) and its JSON twin (`/api/v1/status`),
health, readiness and reload (I/O: aiohttp handlers). They ask the parts for answers; the listener
that serves them is exporter.web.server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from exporter.clock import MIB, MINUTE
from exporter.config.model import (
    DEFAULT_TELEMETRY_PATH,
    HEALTHY_PATH,
    LANDING_PATH,
    READY_PATH,
    RELOAD_PATH,
    STATUS_PATH,
)
from exporter.metrics.selfmetrics import Live
from exporter.metrics.serve import Scraper
from exporter.state.store import StateStore
from exporter.web import statuspage
from exporter.web.server import WRITE_CHUNK
from exporter.web.status import Inputs, Lists, budget, build, collectors, document, page_of
from exporter.web.statuspage import STATUS_JSON

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
    """A response whose body is the given parts (`length` bytes in all), written WRITE_CHUNK at
    a time once aiohttp sends the response (after the middlewares have set their headers). The
    parts may be the cached bytes themselves (never copied whole, so every client being answered
    shares the one cached body) or an iterator that makes each part as it is reached (an
    uncompressed scrape inflates the cached gzip members one by one); each write waits while the
    client's socket buffer is full."""

    def __init__(
        self, parts: Iterable[bytes], length: int, *, head: bool, headers: Mapping[str, str]
    ) -> None:
        super().__init__(headers=headers)
        self.content_length = length
        self._parts: Iterable[bytes] = parts if not head else ()
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
    head = request.method == "HEAD"
    return CachedBody(exposition.parts, exposition.length, head=head, headers=headers)


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


class StatusCache:
    """The status page's account-sized lists (exporter.web.status.Lists), built in a worker
    thread at most once per store version and minute (ages and days to expiry move with time),
    and only by one request at a time: the others wait for it and share what it built."""

    def __init__(self) -> None:
        self._key: tuple[int, int] | None = None
        self._lists = Lists()
        self._lock = asyncio.Lock()

    async def lists(self, store: StateStore, now: float) -> Lists:
        key = (store.version, int(now // MINUTE))
        async with self._lock:
            if key != self._key:
                w = store.webhooks  # copied here, on the loop: events keep arriving
                inputs = Inputs(dict(store.snapshots()), dict(w.hosts), dict(w.monitors), dict(w.hetrix), now)
                self._lists = await asyncio.to_thread(build, inputs)
                self._key = key
            return self._lists


STATUS = web.AppKey("status", StatusCache)


async def _status(request: web.Request) -> dict[str, Any]:
    parts = request.app[PARTS]
    now = parts.now()
    lists = await request.app[STATUS].lists(parts.store, now)
    links = {
        "metrics": parts.telemetry_path,
        "healthy": HEALTHY_PATH,
        "ready": READY_PATH,
        "status": STATUS_JSON,
    }
    return document(
        lists,
        page_of(request.query.get("page")),
        now,
        links,
        budget(parts.live, now, parts.pending_webhooks()),
        collectors(parts.live, parts.store.health, now),
    )


async def landing(request: web.Request) -> web.Response:
    """The live status page (exporter.web.statuspage)."""
    return web.Response(text=statuspage.page(await _status(request)), content_type="text/html")


async def status_json(request: web.Request) -> web.Response:
    """The status page's JSON twin (fields: exporter.web.status)."""
    return web.json_response(await _status(request), headers={"Cache-Control": "no-store"})


def build_app(parts: ServerParts, middlewares: tuple[Any, ...] = ()) -> web.Application:
    """The main listener's app: the telemetry path and the fixed routes (config.model.ROUTES,
    which the telemetry path is checked against)."""
    app = web.Application(client_max_size=LISTENER_MAX_BODY, middlewares=middlewares)
    app[PARTS] = parts
    app.router.add_get(parts.telemetry_path, metrics)
    app[STATUS] = StatusCache()
    app.router.add_get(LANDING_PATH, landing)
    app.router.add_get(STATUS_PATH, status_json)
    app.router.add_get(HEALTHY_PATH, healthy)
    app.router.add_get(READY_PATH, ready)
    app.router.add_post(RELOAD_PATH, reload)
    return app
