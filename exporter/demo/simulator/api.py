"""Pure: the simulated API's request handling (routes, auth, envelope, paging, rate limits,
faults). No I/O: the aiohttp app (app.py) and the in-process transport (transport.py) both call
`SimulatedApi.handle` and deliver what it returns.

It follows the v4 API reference ("Rate Limiting", "Error Responses"): HTTP Basic auth with the
account SID and auth token, every JSON answer carries `status_code` and `status_message`, two
rolling windows (1,000 requests an hour and 100 a second by default) announced on every answer
in `RateLimit-Limit/-Remaining/-Reset`, and a 429 with `Retry-After` when a window is full.

Faults are off by default. When asked for (see faults.py), they cover what a misbehaving API or
network can do: 5xx, an error in a 200 body, truncated JSON, garbage (non-JSON) bodies, hostile
values in random fields of random objects, `data` or envelope fields of the wrong type, timeouts,
forced 429s and 429 storms (Retry-After as delta seconds or an HTTP date), absurd RateLimit-*
values, bodies sent in small pieces, and redirects: a 302 to another host and a same-host
redirect loop. Every request that reaches the API is recorded in `received`, every injected fault
in `injected`, and every request that reaches the other host of a redirect (and whether it
carried an Authorization header) in `other_host_requests`.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

from exporter.api.transport import basic_auth
from exporter.demo.simulator.account import HOUR, Account
from exporter.demo.simulator.faults import (
    ABSURD_LIMITS,
    ENVELOPE_FIELDS,
    FAULT_KINDS,
    GARBAGE_BODIES,
    HOSTILE_COUNT_BODIES,
    HOSTILE_VALUES,
    OTHER_HOST,
    RETRY_AFTER_FORMATS,
    STORM_KINDS,
    TRUNCATED_BODY,
    WRONG_DATA,
    Faults,
    RawJson,
    absurd_limit_headers,
    dumps,
    show,
)

# Kept importable from here: the tests, bench/soak.py and the CLI use these names through api.py.
__all__ = [
    "ABSURD_LIMITS",
    "FAULT_KINDS",
    "HOSTILE_VALUES",
    "OTHER_HOST",
    "RETRY_AFTER_FORMATS",
    "STORM_KINDS",
    "Faults",
    "RawJson",
    "SimResponse",
    "SimulatedApi",
    "dumps",
]

HOURLY_LIMIT = 1000  # "Hourly limit: 1,000 requests per hour per API application"
PER_SECOND_LIMIT = 100  # "100 RPS for reads"
SECOND = 1.0  # the short rate-limit window
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
MAX_UNKNOWN_ROUTES = 100  # distinct unknown paths remembered (a scanner cannot grow it without bound)
RECENT_FAULTS = 64  # faults remembered in `recent`
LIST_ROUTES = {
    "rbl/listings.json": ("listings", "Listings"),
    "rbl/hosts.json": ("hosts", "Hosts"),
    "rbl/profiles.json": ("profiles", "Monitoring Profiles"),
    "rbl/sources.json": ("sources", "Sources"),
    "cert/monitors.json": ("monitors", "Certificate Monitors"),
    "cert/errors.json": ("errors", "Certificate Errors"),
    "cert/profiles.json": ("cert_profiles", "Certificate Profiles"),
    "contact/contacts.json": ("contacts", "Contacts"),
    "contact/groups.json": ("groups", "Contact Groups"),
}
COUNT_ROUTES: dict[str, Callable[[Account], int]] = {
    "rbl/listings/count": lambda account: len(account.listed),
    "cert/errors/count": Account.cert_error_count,
}
ONE_ROUTE = re.compile(r"^(rbl/hosts|cert/monitors)/([A-Z]{2}[0-9a-f]{32})\.json$")
LOOP_PARAM = "_sim_loop"  # marks the hops of a same-host redirect loop
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class SimResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    hang: bool = False  # the transport should time out instead of answering
    trickle: bool = False  # send the body in small pieces with pauses (HTTP only)


@dataclass(frozen=True, slots=True)
class Windows:
    """What is left of the two rate-limit windows at one moment."""

    hour_left: int
    second_left: int
    hour_reset: float  # seconds until the oldest request leaves the hourly window


@dataclass(frozen=True, slots=True)
class Call:
    """An accepted request, and the headers its answer carries so far."""

    method: str
    path: str  # without the leading /4.0/
    query: Mapping[str, str]
    now: float
    headers: dict[str, str]


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> SimResponse:
    """The documented error envelope ("Error Responses")."""
    body = json.dumps({"status_code": status, "status_message": message}).encode()
    return SimResponse(status, {"Content-Type": JSON, **(headers or {})}, body)


def _envelope(message: str, page: int, size: int, total: int, data: Any) -> dict[str, Any]:
    """A success body with the paging envelope, keys in the order the API writes them."""
    return {
        "status_code": 200,
        "status_message": message,
        "page": page,
        "page_size": size,
        "total_pages": max(1, math.ceil(total / size)),
        "total": total,
        "data": data,
    }


def _with_data(body: dict[str, Any], data: list[str]) -> bytes:
    """`json.dumps(body)` (compact) with `body["data"]` the objects already encoded as `data`."""
    text = json.dumps({**body, "data": None}, separators=(",", ":"))
    return text.replace('"data":null', f'"data":[{",".join(data)}]', 1).encode()


class SimulatedApi:
    """The API of one account: answers `handle(...)` calls, enforces the rate limits, injects the
    faults asked for and records what it saw."""

    def __init__(
        self,
        account: Account,
        account_sid: str,
        auth_token: str,
        *,
        hourly_limit: int = HOURLY_LIMIT,
        per_second_limit: int = PER_SECOND_LIMIT,
        faults: Faults | None = None,
        seed: int = 7,
    ) -> None:
        self.account = account
        self._auth = basic_auth(account_sid, auth_token)
        self.hourly_limit = hourly_limit
        self.per_second_limit = per_second_limit
        self.faults = faults or Faults()
        self._rng = random.Random(seed)
        self._hour: deque[float] = deque()  # accepted requests, for the rolling hourly window
        self.accepted: list[float] = []  # every accepted request's time (for tests)
        self.received: list[float] = []  # every request that reached the API, answered or not
        self.rejected_429 = 0
        self.injected: Counter[str] = Counter()  # faults injected, by kind
        # the last faults injected: (time, path, kind, what exactly), to explain what follows
        self.recent: deque[tuple[float, str, str, str]] = deque(maxlen=RECENT_FAULTS)
        self.unknown_routes: Counter[str] = Counter()  # paths asked for that are no API route
        self._absurd = 0
        self._at: tuple[float, str] = (0.0, "")
        # every request the other host of a redirect saw: (time, path, Authorization present,
        # the API's own credentials in it)
        self.other_host_requests: list[tuple[float, str, bool, bool]] = []
        # Faults that break the answer to any method, and those that only answer a GET (after
        # the 405 for other methods).
        self._any_method_faults: dict[str, Callable[[Call], SimResponse]] = {
            "timeout": self._hang,
            "server_error": self._server_error,
            "truncated_json": self._truncated_json,
            "error_in_body": self._error_in_body,
        }
        self._get_faults: dict[str, Callable[[Call], SimResponse]] = {
            "garbage": self._garbage,
            "redirect": self._redirect_other,
            "redirect_loop": self._redirect_loop,
        }

    # -- rate limiting ----------------------------------------------------------------------

    def _window(self, now: float) -> Windows:
        while self._hour and self._hour[0] <= now - HOUR:
            self._hour.popleft()
        second = 0
        for t in reversed(self._hour):
            if t <= now - SECOND:
                break
            second += 1
        return Windows(
            hour_left=self.hourly_limit - len(self._hour),
            second_left=self.per_second_limit - second,
            hour_reset=(self._hour[0] + HOUR - now) if self._hour else float(HOUR),
        )

    def _limit_headers(self, now: float) -> dict[str, str]:
        """RateLimit-* for the most restrictive window ("Rate Limiting")."""
        left = self._window(now)
        if left.second_left < left.hour_left:
            remaining, reset = left.second_left, SECOND
        else:
            remaining, reset = left.hour_left, left.hour_reset
        return {
            "RateLimit-Limit": f"{self.hourly_limit};w={HOUR}, {self.per_second_limit};w={SECOND:g}",
            "RateLimit-Remaining": str(max(remaining, 0)),
            "RateLimit-Reset": str(max(1, math.ceil(reset))),
        }

    def consume(self, now: float, n: int = 1) -> None:
        """Requests made by another client of the same API application (shared quota)."""
        for _ in range(n):
            self._hour.append(now)

    def _retry_after(self, seconds: float, now: float) -> str:
        style = self.faults.retry_after_format
        if style == "mixed":
            style = self._rng.choice(("delta", "date"))
        if style == "date":
            return formatdate(now + seconds, usegmt=True)
        return str(max(1, math.ceil(seconds)))

    def _refuse(self, now: float, *, in_rate_limit_storm: bool) -> SimResponse | None:
        """The 429 for this request, if it gets one: a 429 storm, a forced 429 that fell due, or
        a full window (then Retry-After says when the window has room again)."""
        left = self._window(now)
        forced = self.faults.take_forced_429(now)
        if in_rate_limit_storm:
            lo, hi = self.faults.storm_retry_after
            retry = self._retry_after(self._rng.uniform(lo, hi), now)
            self._note("rate_limit_storm", f"Retry-After: {retry}")
        elif forced:
            retry = self._retry_after(self.faults.forced_retry_after, now)
            self._note("rate_limit", f"Retry-After: {retry}")
        elif left.hour_left <= 0 or left.second_left <= 0:
            retry = str(max(1, math.ceil(left.hour_reset if left.hour_left <= 0 else SECOND)))
        else:
            return None
        self.rejected_429 += 1
        return _error(429, "Rate limit exceeded.", {"Retry-After": retry, **self._limit_headers(now)})

    # -- handling ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: Mapping[str, str], authorization: str | None, now: float
    ) -> SimResponse:
        """The answer to one request at time `now`."""
        path = path.strip("/").removeprefix("4.0/")
        self.received.append(now)
        self._at = (now, path)
        if authorization != self._auth:
            return _error(401, "Authentication failed.")
        storm = self.faults.storm(now)
        loop_hop = LOOP_PARAM in query
        refused = self._refuse(now, in_rate_limit_storm=storm == "rate_limit" and not loop_hop)
        if refused is not None:
            return refused
        self._hour.append(now)
        self.accepted.append(now)
        call = Call(method, path, query, now, {"Content-Type": JSON, **self._limit_headers(now)})
        if loop_hop or storm == "redirect_loop":
            return self._redirect_loop(call)
        if storm == "redirect_other_host":
            return self._redirect_other(call)
        fault = self.faults.take_scheduled(now) or self.faults.pick(self._rng.random())
        return self._answer(call, fault)

    def _answer(self, call: Call, fault: str | None) -> SimResponse:
        """The answer to an accepted request, with `fault` (if any) applied."""
        if fault in self._any_method_faults:
            return self._any_method_faults[fault](call)
        if call.method != "GET":
            return _error(405, f"{call.method} is not supported by the simulator.", call.headers)
        if fault in self._get_faults:
            return self._get_faults[fault](call)
        if fault == "absurd_limits":
            call = replace(call, headers={"Content-Type": JSON, **self._absurd_limits(call.now)})
        self.account.advance(call.now)
        response = self._route(call, fault)
        if fault == "trickle":
            self._note("trickled_body")
            return replace(response, trickle=True)
        return response

    def _note(self, kind: str, detail: str = "") -> None:
        self.injected[kind] += 1
        now, path = self._at
        self.recent.append((now, path, kind, detail[:300]))

    # -- faults that replace the answer -----------------------------------------------------

    def _hang(self, call: Call) -> SimResponse:
        self._note("timeout")
        return SimResponse(504, call.headers, b"", hang=True)

    def _server_error(self, call: Call) -> SimResponse:
        self._note("server_error")
        return _error(500, "Internal server error (simulated).", self._limit_headers(call.now))

    def _truncated_json(self, call: Call) -> SimResponse:
        self._note("truncated_json")
        return SimResponse(200, call.headers, TRUNCATED_BODY)

    def _error_in_body(self, call: Call) -> SimResponse:
        self._note("error_in_body")
        body = json.dumps({"status_code": 500, "status_message": "Validation failure (simulated)."})
        return SimResponse(200, call.headers, body.encode())

    def _garbage(self, call: Call) -> SimResponse:
        garbage = self._rng.choice(GARBAGE_BODIES)
        self._note("garbage_body", repr(garbage[:60]))
        return SimResponse(200, call.headers, garbage)

    def _absurd_limits(self, now: float) -> dict[str, str]:
        """Each absurd combination in turn, so that a short run meets every one."""
        headers, detail = absurd_limit_headers(self._absurd, self._limit_headers(now), now)
        self._absurd += 1
        self._note("absurd_rate_limit_headers", detail)
        return headers

    def _redirect_other(self, call: Call) -> SimResponse:
        qs = f"?{urlencode(dict(call.query))}" if call.query else ""
        location = f"{self.faults.other_host.rstrip('/')}/4.0/{call.path}{qs}"
        self._note("redirect_other_host", f"Location: {location}")
        return SimResponse(302, {**call.headers, "Location": location}, b"")

    def _redirect_loop(self, call: Call) -> SimResponse:
        raw = str(call.query.get(LOOP_PARAM, "0"))
        hop = int(raw) if raw.isascii() and raw.isdigit() else 0
        location = f"/4.0/{call.path}?{urlencode({**dict(call.query), LOOP_PARAM: str(hop + 1)})}"
        self._note("redirect_loop_hop" if hop else "redirect_loop", f"Location: {location}")
        return SimResponse(302, {**call.headers, "Location": location}, b"")

    def other_host(self, path: str, authorization: str | None, now: float) -> SimResponse:
        """What the other host of a cross-host redirect answers; records who came, with what."""
        self.other_host_requests.append((now, path, authorization is not None, authorization == self._auth))
        return _error(404, "This is not the Generator Labs API.")

    # -- routes -----------------------------------------------------------------------------

    def _route(self, call: Call, fault: str | None) -> SimResponse:
        if call.path in COUNT_ROUTES:
            return self._count(call, fault)
        if call.path in LIST_ROUTES:
            return self._list(call, fault)
        one = ONE_ROUTE.match(call.path)
        if one:
            return self._one(call, one.group(1), one.group(2), fault)
        if len(self.unknown_routes) < MAX_UNKNOWN_ROUTES or call.path in self.unknown_routes:
            self.unknown_routes[call.path[:200]] += 1
        return _error(404, f"Unknown endpoint /4.0/{call.path}.", call.headers)

    def _count(self, call: Call, fault: str | None) -> SimResponse:
        """`rbl/listings/count`, `cert/errors/count`: a bare number as text/plain."""
        text = str(COUNT_ROUTES[call.path](self.account))
        if fault == "wrong_types":
            text = self._rng.choice(HOSTILE_COUNT_BODIES)
            self._note("wrong_types", f"count body {text[:40]!r}")
        headers = {**call.headers, "Content-Type": "text/plain"}
        return SimResponse(200, headers, text.encode("utf-8", "surrogatepass"))

    def _one(self, call: Call, kind: str, ident: str, fault: str | None) -> SimResponse:
        """`rbl/hosts/{HT…}.json`, `cert/monitors/{CM…}.json`: one object in a one-item page."""
        objects: Mapping[str, Any] = self.account.hosts if kind == "rbl/hosts" else self.account.monitors
        obj = objects.get(ident)
        if obj is None:
            return _error(400, f"Invalid {kind.split('/')[1][:-1]} id provided.", call.headers)
        body = _envelope("OK", 1, DEFAULT_PAGE_SIZE, 1, [obj.to_json()])
        return SimResponse(200, call.headers, self._hostile(body, fault))

    def _list(self, call: Call, fault: str | None) -> SimResponse:
        """A collection, one page of it, in the paging envelope."""
        name, message = LIST_ROUTES[call.path]
        try:
            page = max(1, int(call.query.get("page", "1")))
            size = min(MAX_PAGE_SIZE, max(1, int(call.query.get("page_size", str(DEFAULT_PAGE_SIZE)))))
        except ValueError:
            return _error(400, "page and page_size must be integers.", call.headers)
        plain = fault is None or fault in ("absurd_limits", "trickle")
        texts = self.account.page_json(name, page, size) if plain else None
        items, total = self.account.page(name, page, size) if texts is None else texts
        body = _envelope(message, page, size, total, items)
        if name in ("hosts", "listings"):
            body["total_listed"] = len(self.account.listed)
        if name == "errors":
            body["total_errors"] = total
        if texts is not None:  # hosts and listings: the objects come encoded
            return SimResponse(200, call.headers, _with_data(body, texts[0]))
        if plain:
            return SimResponse(200, call.headers, json.dumps(body, separators=(",", ":")).encode())
        return SimResponse(200, call.headers, self._hostile(body, fault))

    # -- faults that spoil a body -----------------------------------------------------------

    def _hostile(self, body: dict[str, Any], fault: str | None) -> bytes:
        """The body with the chosen fault applied to it (objects, `data` or the envelope)."""
        rng = self._rng
        if fault == "wrong_types" and body["data"]:
            self._note("wrong_types", "; ".join(self._spoil_objects(body["data"])))
        elif fault == "wrong_data":
            body["data"] = rng.choice(WRONG_DATA)
            self._note("wrong_data", f"data={show(body['data'])}")
        elif fault == "wrong_envelope":
            changed = []
            for key in rng.sample(ENVELOPE_FIELDS, rng.randint(1, 3)):
                body[key] = rng.choice(HOSTILE_VALUES)
                changed.append(f"{key}={show(body[key])}")
            self._note("wrong_envelope", "; ".join(changed))
        return dumps(body)

    def _spoil_objects(self, items: list[dict[str, Any]]) -> list[str]:
        """Hostile values in `items` (in place): every field of one object (a fifth of the time)
        or random fields of random objects, nested ones too. Returns what changed."""
        rng = self._rng
        if rng.random() < 0.2:
            i = rng.randrange(len(items))
            items[i] = {k: rng.choice(HOSTILE_VALUES) for k in items[i]}
            return [f"data[{i}].{k}={show(v)}" for k, v in items[i].items()]
        changed: list[str] = []
        for i in rng.sample(range(len(items)), min(len(items), rng.randint(1, 3))):
            obj = dict(items[i])
            for key in rng.sample(sorted(obj), min(len(obj), rng.randint(1, 3))):
                obj[key] = rng.choice(HOSTILE_VALUES)
                changed.append(f"data[{i}].{key}={show(obj[key])}")
            details = obj.get("listed_details")
            if isinstance(details, list) and details and rng.random() < 0.5:
                value = rng.choice(HOSTILE_VALUES)
                obj["listed_details"] = [{**d, "host": value} if isinstance(d, dict) else d for d in details]
                changed.append(f"data[{i}].listed_details[].host={show(value)}")
            items[i] = obj
        return changed
