"""An in-process transport straight into the simulator: hours of polling in milliseconds with a
fake clock (tests, the budget proof, the benchmarks). No I/O: latency and timeouts are sleeps on
the injected clock.

Like the real transport (exporter.api.transport), it does not follow redirects: a 3xx is answered as it
is. `max_redirects > 0` models a client that follows them as aiohttp does by default (up to 10
hops, the Authorization header dropped when a hop leaves the API's origin), to show what that
would cost; a hop to another host then reaches the simulator's stand-in for that host
(`SimulatedApi.other_host`), which records it.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from exporter.api.endpoints import route_of
from exporter.api.envelope import RawResponse
from exporter.api.transport import basic_auth
from exporter.clock import Clock
from exporter.demo.simulator.api import REDIRECT_STATUSES, SimResponse, SimulatedApi
from exporter.errors import ApiError

AIOHTTP_MAX_REDIRECTS = 10  # what aiohttp follows by default, for max_redirects
LATENCY = 0.05  # clock seconds an answer takes
TIMEOUT = 30.0  # clock seconds a client waits for an answer that never comes


class SimulatorTransport:
    """The exporter's transport seam (`get(path, params)`), answered by a `SimulatedApi`."""

    def __init__(
        self,
        api: SimulatedApi,
        clock: Clock,
        account_sid: str,
        auth_token: str,
        *,
        latency: float = LATENCY,
        timeout: float = TIMEOUT,
        max_redirects: int = 0,
    ) -> None:
        self._api = api
        self._clock = clock
        self._auth = basic_auth(account_sid, auth_token)
        self._latency = latency
        self._timeout = timeout
        self._max_redirects = max_redirects  # 0: answer a redirect as it is

    async def get(self, path: str, params: Mapping[str, str]) -> RawResponse:
        route = route_of(path)
        response = self._api.handle("GET", path, params, self._auth, self._clock.time())
        hops = 0
        while response.status in REDIRECT_STATUSES and self._max_redirects > 0:
            if hops >= self._max_redirects:
                raise ApiError(route, None, f"TooManyRedirects: {hops} hops", "network")
            hops += 1
            location = urlsplit(response.headers.get("Location", ""))
            query = dict(parse_qsl(location.query, keep_blank_values=True))
            if location.netloc:  # another origin: the credentials stay behind
                response = self._api.other_host(location.path, None, self._clock.time())
                continue
            response = self._api.handle("GET", location.path, query, self._auth, self._clock.time())
        return await self._answer(route, response)

    async def _answer(self, route: str, response: SimResponse) -> RawResponse:
        if response.hang:
            await self._clock.sleep(self._timeout)
            raise ApiError(route, None, f"no answer in {self._timeout:g}s", "timeout")
        await self._clock.sleep(self._latency)
        return RawResponse(response.status, response.headers, response.body)
