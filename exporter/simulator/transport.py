"""An in-process transport straight into the simulator: hours of polling in milliseconds with a
fake clock (tests, the budget proof, the benchmarks)."""

from __future__ import annotations

from collections.abc import Mapping

from exporter.api import basic_auth
from exporter.clock import Clock
from exporter.envelope import RawResponse
from exporter.errors import ApiError
from exporter.simulator.api import SimulatedApi


class SimulatorTransport:
    def __init__(self, api: SimulatedApi, clock: Clock, account_sid: str, auth_token: str, *,
                 latency: float = 0.05, timeout: float = 30.0) -> None:
        self._api = api
        self._clock = clock
        self._auth = basic_auth(account_sid, auth_token)
        self._latency = latency
        self._timeout = timeout

    async def get(self, path: str, params: Mapping[str, str]) -> RawResponse:
        response = self._api.handle("GET", path, params, self._auth, self._clock.time())
        if response.hang:
            await self._clock.sleep(self._timeout)
            raise ApiError(path.removesuffix(".json"), None, f"no answer in {self._timeout:g}s",
                           "timeout")
        await self._clock.sleep(self._latency)
        return RawResponse(response.status, response.headers, response.body)
