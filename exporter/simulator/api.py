"""Pure: the simulated API's request handling (routes, auth, envelope, paging, rate limits,
faults). The aiohttp app and the in-process transport both call `SimulatedApi.handle`."""

from __future__ import annotations

import json
import math
import random
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter.api import basic_auth
from exporter.simulator.account import Account

HOURLY_LIMIT = 1000
PER_SECOND_LIMIT = 100
MAX_PAGE_SIZE = 500
LIST_ROUTES = {
    "rbl/listings.json": ("listings", "Listings"),
    "rbl/hosts.json": ("hosts", "Hosts"),
    "rbl/profiles.json": ("profiles", "Monitoring Profiles"),
    "rbl/sources.json": ("sources", "Sources"),
    "cert/monitors.json": ("monitors", "Certificate Monitors"),
    "cert/errors.json": ("errors", "Certificate Errors"),
    "contact/contacts.json": ("contacts", "Contacts"),
    "contact/groups.json": ("groups", "Contact Groups"),
}
ONE_ROUTE = re.compile(r"^(rbl/hosts|cert/monitors)/([A-Z]{2}[0-9a-f]{32})\.json$")


@dataclass(slots=True)
class Faults:
    """Injected failures: rates are per request; `rate_limit_at` forces a 429 at those times."""

    error_rate: float = 0.0  # HTTP 500 with the error envelope
    body_error_rate: float = 0.0  # HTTP 200 whose body says status_code 500
    malformed_rate: float = 0.0  # HTTP 200 with truncated JSON
    timeout_rate: float = 0.0  # no answer within the client's timeout
    rate_limit_at: list[float] = field(default_factory=list)
    forced_retry_after: float = 120.0


@dataclass(frozen=True, slots=True)
class SimResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    hang: bool = False  # the transport should time out instead of answering


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> SimResponse:
    body = json.dumps({"status_code": status, "status_message": message}).encode()
    return SimResponse(status, {"Content-Type": "application/json", **(headers or {})}, body)


class SimulatedApi:
    def __init__(self, account: Account, account_sid: str, auth_token: str, *,
                 hourly_limit: int = HOURLY_LIMIT, per_second_limit: int = PER_SECOND_LIMIT,
                 faults: Faults | None = None, seed: int = 7) -> None:
        self.account = account
        self._auth = basic_auth(account_sid, auth_token)
        self.hourly_limit = hourly_limit
        self.per_second_limit = per_second_limit
        self.faults = faults or Faults()
        self._rng = random.Random(seed)
        self._hour: deque[float] = deque()  # accepted requests, for the rolling hourly window
        self.accepted: list[float] = []  # every accepted request's time (for tests)
        self.rejected_429 = 0

    # -- rate limiting ----------------------------------------------------------------------

    def _window(self, now: float) -> tuple[int, int, float, float]:
        while self._hour and self._hour[0] <= now - 3600:
            self._hour.popleft()
        second = 0
        for t in reversed(self._hour):
            if t <= now - 1:
                break
            second += 1
        hour_left = self.hourly_limit - len(self._hour)
        second_left = self.per_second_limit - second
        hour_reset = (self._hour[0] + 3600 - now) if self._hour else 3600.0
        return hour_left, second_left, hour_reset, 1.0

    def _limit_headers(self, now: float) -> dict[str, str]:
        hour_left, second_left, hour_reset, second_reset = self._window(now)
        if second_left < hour_left:
            remaining, reset = second_left, second_reset
        else:
            remaining, reset = hour_left, hour_reset
        return {
            "RateLimit-Limit": f"{self.hourly_limit};w=3600, {self.per_second_limit};w=1",
            "RateLimit-Remaining": str(max(remaining, 0)),
            "RateLimit-Reset": str(max(1, math.ceil(reset))),
        }

    def consume(self, now: float, n: int = 1) -> None:
        """Requests made by another client of the same API application (shared quota)."""
        for _ in range(n):
            self._hour.append(now)

    # -- handling ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: Mapping[str, str], authorization: str | None,
               now: float) -> SimResponse:
        path = path.strip("/").removeprefix("4.0/")
        if authorization != self._auth:
            return _error(401, "Authentication failed.")
        hour_left, second_left, hour_reset, _ = self._window(now)
        forced = [t for t in self.faults.rate_limit_at if t <= now]
        if forced:
            self.faults.rate_limit_at = [t for t in self.faults.rate_limit_at if t > now]
        if forced or hour_left <= 0 or second_left <= 0:
            self.rejected_429 += 1
            retry = (self.faults.forced_retry_after if forced
                     else (hour_reset if hour_left <= 0 else 1.0))
            return _error(429, "Rate limit exceeded.",
                          {"Retry-After": str(max(1, math.ceil(retry))), **self._limit_headers(now)})
        self._hour.append(now)
        self.accepted.append(now)
        headers = {"Content-Type": "application/json", **self._limit_headers(now)}
        f, roll = self.faults, self._rng.random()
        if roll < f.timeout_rate:
            return SimResponse(504, headers, b"", hang=True)
        roll -= f.timeout_rate
        if roll < f.error_rate:
            return _error(500, "Internal server error (simulated).", self._limit_headers(now))
        roll -= f.error_rate
        if roll < f.malformed_rate:
            return SimResponse(200, headers, b'{"status_code": 200, "data": [{"id": "HT')
        roll -= f.malformed_rate
        if roll < f.body_error_rate:
            body = json.dumps({"status_code": 500, "status_message": "Validation failure (simulated)."})
            return SimResponse(200, headers, body.encode())
        if method != "GET":
            return _error(405, f"{method} is not supported by the simulator.", headers)
        self.account.advance(now)
        return self._route(path, query, headers)

    def _route(self, path: str, query: Mapping[str, str], headers: dict[str, str]) -> SimResponse:
        if path == "rbl/listings/count":
            return SimResponse(200, {**headers, "Content-Type": "text/plain"},
                               str(len(self.account.listed)).encode())
        if path == "cert/errors/count":
            return SimResponse(200, {**headers, "Content-Type": "text/plain"},
                               str(len(self.account.cert_errors())).encode())
        if path in LIST_ROUTES:
            return self._list(path, query, headers)
        m = ONE_ROUTE.match(path)
        if m:
            kind, ident = m.groups()
            objects: Mapping[str, Any] = (self.account.hosts if kind == "rbl/hosts"
                                          else self.account.monitors)
            obj = objects.get(ident)
            if obj is None:
                return _error(400, f"Invalid {kind.split('/')[1][:-1]} id provided.", headers)
            body = {"status_code": 200, "status_message": "OK", "page": 1, "page_size": 100,
                    "total_pages": 1, "total": 1, "data": [obj.to_json()]}
            return SimResponse(200, headers, json.dumps(body).encode())
        return _error(404, f"Unknown endpoint /4.0/{path}.", headers)

    def _list(self, path: str, query: Mapping[str, str], headers: dict[str, str]) -> SimResponse:
        name, message = LIST_ROUTES[path]
        try:
            page = max(1, int(query.get("page", "1")))
            size = min(MAX_PAGE_SIZE, max(1, int(query.get("page_size", "100"))))
        except ValueError:
            return _error(400, "page and page_size must be integers.", headers)
        items, total = self.account.page(name, page, size)
        body: dict[str, Any] = {
            "status_code": 200, "status_message": message, "page": page, "page_size": size,
            "total_pages": max(1, math.ceil(total / size)), "total": total, "data": items,
        }
        if name in ("hosts", "listings"):
            body["total_listed"] = len(self.account.listed)
        if name == "errors":
            body["total_errors"] = total
        return SimResponse(200, headers, json.dumps(body, separators=(",", ":")).encode())
