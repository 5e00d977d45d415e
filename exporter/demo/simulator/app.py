"""I/O (loopback sockets): the simulated API as an aiohttp app under /4.0/ (thin:
`SimulatedApi.handle` does the work), its optional control routes, and the "other host" a
cross-host redirect fault points at: a second tiny server that records every request it gets and
whether it carried an Authorization header."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from exporter.clock import Clock
from exporter.demo.simulator.api import SimResponse, SimulatedApi

API = web.AppKey("api", SimulatedApi)
CLOCK = web.AppKey("clock", Clock)
HANG: web.AppKey[Callable[[], Awaitable[None]]] = web.AppKey("hang")
HANG_SECONDS = 120.0  # a simulated timeout: longer than any sane client timeout
TRICKLE_PIECE = 4096  # bytes per piece of a trickled body
TRICKLE_PAUSE = 0.002  # real seconds between pieces (loopback would deliver it whole otherwise)
DEFAULT_EXPIRE_DAYS = "5"  # /_sim/monitors/{id}/expire without ?days=
DEFAULT_ERROR_TYPE = "name_mismatch"  # /_sim/monitors/{id}/error without ?type=


async def _respond(request: web.Request, result: SimResponse) -> web.StreamResponse:
    """Send `result`, at once or (a trickle fault) in TRICKLE_PIECE pieces with pauses."""
    headers = dict(result.headers)
    content_type = headers.pop("Content-Type", "application/json")
    if not result.trickle:
        return web.Response(
            status=result.status, body=result.body, headers=headers, content_type=content_type.split(";")[0]
        )
    response = web.StreamResponse(status=result.status, headers=headers)
    response.content_type = content_type.split(";")[0]
    await response.prepare(request)
    for start in range(0, len(result.body), TRICKLE_PIECE):
        await response.write(result.body[start : start + TRICKLE_PIECE])
        await asyncio.sleep(TRICKLE_PAUSE)
    await response.write_eof()
    return response


async def handle(request: web.Request) -> web.StreamResponse:
    """Any method on /4.0/{path}: what the simulated API answers (a "timeout" waits first)."""
    api, clock = request.app[API], request.app[CLOCK]
    path = request.match_info["path"]
    result = api.handle(
        request.method, path, dict(request.query), request.headers.get("Authorization"), clock.time()
    )
    if result.hang:
        await request.app[HANG]()
    return await _respond(request, result)


async def other_host(request: web.Request) -> web.StreamResponse:
    """Anything on the other host: a 404, recorded."""
    api, clock = request.app[API], request.app[CLOCK]
    result = api.other_host(request.path, request.headers.get("Authorization"), clock.time())
    return await _respond(request, result)


async def control(request: web.Request) -> web.Response:
    """Test control (only with --control): change the account on purpose.

    POST /_sim/hosts/{id}/list | /delist, /_sim/monitors/{id}/expire?days=N | /renew,
    /_sim/monitors/{id}/error?type=T | /clear. Changes emit webhooks like natural drift does;
    an unknown action changes nothing. Answers the object as the API shows it after the change."""
    account, now = request.app[API].account, request.app[CLOCK].time()
    kind, ident, action = (request.match_info[k] for k in ("kind", "id", "action"))
    if kind == "hosts" and ident in account.hosts:
        host = account.hosts[ident]
        if action == "list":
            account.list_host(host, now)
        elif action == "delist":
            account.delist_host(host)
        return web.json_response(host.to_json())
    if kind == "monitors" and ident in account.monitors:
        monitor = account.monitors[ident]
        if action == "expire":
            account.expire_certificate(monitor, now, float(request.query.get("days", DEFAULT_EXPIRE_DAYS)))
        elif action == "renew":
            account.renew_certificate(monitor, now)
        elif action == "error":
            account.break_certificate(monitor, request.query.get("type", DEFAULT_ERROR_TYPE))
        elif action == "clear":
            account.clear_certificate(monitor)
        return web.json_response(monitor.to_json())
    return web.json_response({"error": f"no {kind} {ident}"}, status=404)


def build_simulator_app(
    api: SimulatedApi,
    clock: Clock,
    *,
    control_routes: bool = False,
    hang: Callable[[], Awaitable[None]] | None = None,
) -> web.Application:
    """`hang` is how a simulated timeout waits (default: HANG_SECONDS on `clock`); a harness
    whose clock only moves between requests passes a short real sleep instead."""
    app = web.Application()
    app[API] = api
    app[CLOCK] = clock
    app[HANG] = hang or (lambda: clock.sleep(HANG_SECONDS))
    app.router.add_route("*", "/4.0/{path:.*}", handle)
    if control_routes:
        app.router.add_post("/_sim/{kind}/{id}/{action}", control)
    return app


def build_other_host_app(api: SimulatedApi, clock: Clock) -> web.Application:
    """The other host of a cross-host redirect: records each request in
    `api.other_host_requests` and answers 404."""
    app = web.Application()
    app[API] = api
    app[CLOCK] = clock
    app.router.add_route("*", "/{path:.*}", other_host)
    return app


async def start_simulator(
    api: SimulatedApi,
    clock: Clock,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    control_routes: bool = False,
    hang: Callable[[], Awaitable[None]] | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve the simulator; returns the runner (for cleanup) and the bound port."""
    app = build_simulator_app(api, clock, control_routes=control_routes, hang=hang)
    return await _serve(app, host, port)


async def start_other_host(
    api: SimulatedApi, clock: Clock, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Serve the other host; point `api.faults.other_host` at the URL it returns."""
    return await _serve(build_other_host_app(api, clock), host, port)


async def _serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, int(runner.addresses[0][1])  # the bound port, also when port=0
