"""The simulated API as an aiohttp app under /4.0/ (thin: `SimulatedApi.handle` does the work)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from exporter.clock import Clock
from exporter.simulator.api import SimulatedApi

API = web.AppKey("api", SimulatedApi)
CLOCK = web.AppKey("clock", Clock)
HANG_SECONDS = 120.0  # a simulated timeout: longer than any sane client timeout


async def handle(request: web.Request) -> web.StreamResponse:
    api, clock = request.app[API], request.app[CLOCK]
    path = request.match_info["path"]
    result = api.handle(request.method, path, dict(request.query),
                        request.headers.get("Authorization"), clock.time())
    if result.hang:
        await clock.sleep(HANG_SECONDS)
    headers = dict(result.headers)
    content_type = headers.pop("Content-Type", "application/json")
    return web.Response(status=result.status, body=result.body, headers=headers,
                        content_type=content_type.split(";")[0])


def build_simulator_app(api: SimulatedApi, clock: Clock) -> web.Application:
    app = web.Application()
    app[API] = api
    app[CLOCK] = clock
    app.router.add_route("*", "/4.0/{path:.*}", handle)
    return app


async def start_simulator(api: SimulatedApi, clock: Clock, host: str = "127.0.0.1",
                          port: int = 0) -> tuple[web.AppRunner, int]:
    """Serve the simulator; returns the runner (for cleanup) and the bound port."""
    runner = web.AppRunner(build_simulator_app(api, clock), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # the bound port when port=0; aiohttp has no public accessor
    assert isinstance(server, asyncio.base_events.Server)  # noqa: S101
    return runner, server.sockets[0].getsockname()[1]
