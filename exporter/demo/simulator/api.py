"""Pure: the simulated API's request handling (routes, auth, envelope, paging, rate limits,
faults). The aiohttp app and the in-process transport both call `SimulatedApi.handle`.

Faults are off by default. When asked for, they cover what a misbehaving API or network can do:
5xx, an error in a 200 body, truncated JSON, garbage (non-JSON) bodies, hostile values in random
fields of random objects, `data` or envelope fields of the wrong type, timeouts, forced 429s and
429 storms (Retry-After as delta seconds or an HTTP date), absurd RateLimit-* values, bodies sent
in small pieces, and redirects: a 302 to another host and a same-host redirect loop. Every
request that reaches the API is recorded in `received`, every injected fault in `injected`, and
every request that reaches the other host of a redirect (and whether it carried an
Authorization header) in `other_host_requests`.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

from exporter.api.transport import basic_auth
from exporter.demo.simulator.account import Account

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
LOOP_PARAM = "_sim_loop"  # marks the hops of a same-host redirect loop
OTHER_HOST = "http://other-host.invalid"  # where a cross-host redirect points by default
STORM_KINDS = ("rate_limit", "redirect_loop", "redirect_other_host")
FAULT_KINDS = (
    "timeout",
    "server_error",
    "truncated_json",
    "error_in_body",
    "garbage",
    "wrong_types",
    "wrong_data",
    "wrong_envelope",
    "absurd_limits",
    "redirect",
    "redirect_loop",
    "trickle",
)
ABSURD_LIMITS = 19  # absurd RateLimit-* combinations, given in turn
RETRY_AFTER_FORMATS = ("delta", "date", "mixed")


class RawJson(str):
    """A JSON token written as it is (`1e400`, a 400-digit number): no Python value dumps to it."""


# Values a hostile or broken API could put in any field: non-finite and huge numbers, numbers
# as text, wrong types, lone surrogates, very long strings, impossible dates, path tricks.
HOSTILE_VALUES: tuple[Any, ...] = (
    math.nan,
    math.inf,
    -math.inf,
    RawJson("1e400"),
    RawJson("-1e400"),
    RawJson("9" * 400),
    "NaN",
    "Infinity",
    "-Infinity",
    "inf",
    "1e400",
    "9" * 400,
    -5,
    2**80,
    -(2**63),
    0.5,
    [],
    [1, "two", None],
    {},
    {"nested": {"deep": [1]}},
    True,
    False,
    None,
    "",
    "\ud800",
    "lone \udfff surrogate",
    "A" * 5000,
    "2024-13-45",
    "2024-13-45 10:00:00",
    "0000-00-00 00:00:00",
    '\x00\x01\n"\\{}',
    "HT3/../../../../etc",
    "é" * 10,
)
WRONG_DATA: tuple[Any, ...] = (
    "temporarily unavailable",
    42,
    None,
    True,
    {"id": "not a list"},
    [1, "a", None, []],
    math.nan,
    RawJson("1e400"),
)
ENVELOPE_FIELDS = ("page", "page_size", "total_pages", "total", "status_code", "status_message")
GARBAGE_BODIES: tuple[bytes, ...] = (
    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    b"\x00\xff\xfe garbage \x80\x81",
    b"Service Unavailable",
    b"",
    b"{'single': 'quotes'}",
    b"[1, 2, 3",
    b'\xef\xbb\xbf{"status_code": 200, "data": [}',
    b"null",
)


def _show(value: Any) -> str:
    """A short, printable description of a hostile value (for the record of faults)."""
    if isinstance(value, RawJson):
        return str(value) if len(value) < 20 else f"<{len(value)}-digit number>"
    if isinstance(value, str) and len(value) > 40:
        return f"<{len(value)}-char string>"
    return ascii(value)


def dumps(value: Any) -> bytes:
    """JSON as Python writes it (NaN, Infinity, lone surrogates escaped), with RawJson tokens."""
    raws: list[str] = []

    def mark(v: Any) -> Any:
        if isinstance(v, RawJson):
            raws.append(str(v))
            return f"@@raw{len(raws) - 1}@@"
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    text = json.dumps(mark(value), separators=(",", ":"))
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@raw{i}@@"', raw, 1)
    return text.encode()


@dataclass(slots=True)
class Faults:
    """Injected failures: rates are per request (at most one fault each); `rate_limit_at` forces
    a 429 at those times; `storms` make every request in a window fail one way."""

    error_rate: float = 0.0  # HTTP 500 with the error envelope
    body_error_rate: float = 0.0  # HTTP 200 whose body says status_code 500
    malformed_rate: float = 0.0  # HTTP 200 with truncated JSON
    timeout_rate: float = 0.0  # no answer within the client's timeout
    rate_limit_at: list[float] = field(default_factory=list)
    forced_retry_after: float = 120.0
    garbage_rate: float = 0.0  # HTTP 200 whose body is not JSON at all
    wrong_types_rate: float = 0.0  # hostile values in random fields of random objects
    wrong_data_rate: float = 0.0  # `data` of the wrong type
    wrong_envelope_rate: float = 0.0  # page, total_pages, total, status_code of the wrong type
    absurd_limits_rate: float = 0.0  # a good answer with absurd RateLimit-* headers
    redirect_rate: float = 0.0  # 302 to another host
    redirect_loop_rate: float = 0.0  # 302 to the same URL, forever
    trickle_rate: float = 0.0  # the body sent in small pieces with pauses (over HTTP)
    # (start, seconds, kind): every request in the window is a 429 ("rate_limit"), a redirect
    # loop ("redirect_loop") or a redirect to the other host ("redirect_other_host")
    storms: list[tuple[float, float, str]] = field(default_factory=list)
    storm_retry_after: tuple[float, float] = (5.0, 120.0)  # Retry-After range in a 429 storm
    retry_after_format: str = "delta"  # "delta", "date" (HTTP date) or "mixed"
    other_host: str = OTHER_HOST  # base URL (scheme://host:port) of the cross-host redirect
    # (time, kind): the first request at or after `time` gets fault `kind` (one of FAULT_KINDS),
    # so that a short run meets every kind
    scheduled: list[tuple[float, str]] = field(default_factory=list)

    def storm(self, now: float) -> str | None:
        return next((kind for start, seconds, kind in self.storms if start <= now < start + seconds), None)


@dataclass(frozen=True, slots=True)
class SimResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    hang: bool = False  # the transport should time out instead of answering
    trickle: bool = False  # send the body in small pieces with pauses (HTTP only)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> SimResponse:
    body = json.dumps({"status_code": status, "status_message": message}).encode()
    return SimResponse(status, {"Content-Type": "application/json", **(headers or {})}, body)


class SimulatedApi:
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
        self.recent: deque[tuple[float, str, str, str]] = deque(maxlen=64)
        self.unknown_routes: Counter[str] = Counter()  # paths asked for that are no API route
        self._absurd = 0
        self._at: tuple[float, str] = (0.0, "")
        # every request the other host of a redirect saw: (time, path, Authorization present,
        # the API's own credentials in it)
        self.other_host_requests: list[tuple[float, str, bool, bool]] = []

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

    def _retry_after(self, seconds: float, now: float) -> str:
        style = self.faults.retry_after_format
        if style == "mixed":
            style = self._rng.choice(("delta", "date"))
        if style == "date":
            return formatdate(now + seconds, usegmt=True)
        return str(max(1, math.ceil(seconds)))

    def _note(self, kind: str, detail: str = "") -> None:
        self.injected[kind] += 1
        now, path = self._at
        self.recent.append((now, path, kind, detail[:300]))

    def _absurd_limits(self, now: float) -> dict[str, str]:
        """Each absurd combination in turn, so that a short run meets every one."""
        choices = (  # the ones of issue 7 first
            ("inf", "60", None),
            ("0", "99999999999", None),
            ("0", str(int(now) + 120), None),
            ("1", str(int(now) + 3600 * 24 * 41), None),  # reset as an epoch, 41 days away
            ("NaN", "60", None),
            ("1e400", "60", None),
            ("-1", "60", None),
            ("9" * 400, "60", None),
            ("Infinity", "60", None),
            ("abc", "60", None),
            ("0", "inf", None),
            ("0", "NaN", None),
            ("0", "-5", None),
            ("0", "1e400", None),
            ("5", "9" * 400, None),
            (None, None, "garbage"),
            (None, None, "0;w=0"),
            (None, None, "9" * 400 + ";w=3600"),
            (None, None, "1000;w=inf, 100;w=-1"),
        )
        remaining, reset, limit = choices[self._absurd % len(choices)]
        self._absurd += 1
        headers = self._limit_headers(now)
        if remaining is not None:
            headers["RateLimit-Remaining"] = remaining
        if reset is not None:
            headers["RateLimit-Reset"] = reset
        if limit is not None:
            headers["RateLimit-Limit"] = limit
        self._note(
            "absurd_rate_limit_headers",
            f"Remaining={remaining} Reset={reset} Limit={limit}"
            if len(str(remaining)) + len(str(reset)) < 100
            else "400-digit values",
        )
        return headers

    # -- handling ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: Mapping[str, str], authorization: str | None, now: float
    ) -> SimResponse:
        path = path.strip("/").removeprefix("4.0/")
        self.received.append(now)
        self._at = (now, path)
        if authorization != self._auth:
            return _error(401, "Authentication failed.")
        hour_left, second_left, hour_reset, _ = self._window(now)
        forced = [t for t in self.faults.rate_limit_at if t <= now]
        if forced:
            self.faults.rate_limit_at = [t for t in self.faults.rate_limit_at if t > now]
        storm = self.faults.storm(now)
        loop_hop = LOOP_PARAM in query
        if storm == "rate_limit" and not loop_hop:
            self.rejected_429 += 1
            lo, hi = self.faults.storm_retry_after
            retry = self._retry_after(self._rng.uniform(lo, hi), now)
            self._note("rate_limit_storm", f"Retry-After: {retry}")
            return _error(429, "Rate limit exceeded.", {"Retry-After": retry, **self._limit_headers(now)})
        if forced or hour_left <= 0 or second_left <= 0:
            self.rejected_429 += 1
            seconds = self.faults.forced_retry_after if forced else (hour_reset if hour_left <= 0 else 1.0)
            retry = self._retry_after(seconds, now) if forced else str(max(1, math.ceil(seconds)))
            if forced:
                self._note("rate_limit", f"Retry-After: {retry}")
            return _error(429, "Rate limit exceeded.", {"Retry-After": retry, **self._limit_headers(now)})
        self._hour.append(now)
        self.accepted.append(now)
        headers = {"Content-Type": "application/json", **self._limit_headers(now)}
        if loop_hop or storm == "redirect_loop":
            return self._redirect_loop(path, query, headers)
        if storm == "redirect_other_host":
            return self._redirect_other(path, query, headers)
        fault = self._scheduled(now) or self._pick(self._rng.random())
        if fault == "timeout":
            self._note("timeout")
            return SimResponse(504, headers, b"", hang=True)
        if fault == "server_error":
            self._note("server_error")
            return _error(500, "Internal server error (simulated).", self._limit_headers(now))
        if fault == "truncated_json":
            self._note("truncated_json")
            return SimResponse(200, headers, b'{"status_code": 200, "data": [{"id": "HT')
        if fault == "error_in_body":
            self._note("error_in_body")
            body = json.dumps({"status_code": 500, "status_message": "Validation failure (simulated)."})
            return SimResponse(200, headers, body.encode())
        if method != "GET":
            return _error(405, f"{method} is not supported by the simulator.", headers)
        if fault == "garbage":
            garbage = self._rng.choice(GARBAGE_BODIES)
            self._note("garbage_body", repr(garbage[:60]))
            return SimResponse(200, headers, garbage)
        if fault == "redirect":
            return self._redirect_other(path, query, headers)
        if fault == "redirect_loop":
            return self._redirect_loop(path, query, headers)
        if fault == "absurd_limits":
            headers = {"Content-Type": "application/json", **self._absurd_limits(now)}
        self.account.advance(now)
        response = self._route(path, query, headers, fault)
        if fault == "trickle":
            self._note("trickled_body")
            return SimResponse(response.status, response.headers, response.body, trickle=True)
        return response

    def _scheduled(self, now: float) -> str | None:
        """The first fault of `faults.scheduled` that has fallen due, if any (consumed)."""
        due = self.faults.scheduled
        if not due or min(t for t, _ in due) > now:
            return None
        at, kind = min(due)
        due.remove((at, kind))
        return kind

    def _pick(self, roll: float) -> str | None:
        """The fault this roll lands on, if any (each kind has its share of [0, 1))."""
        f = self.faults
        for name, rate in (
            ("timeout", f.timeout_rate),
            ("server_error", f.error_rate),
            ("truncated_json", f.malformed_rate),
            ("error_in_body", f.body_error_rate),
            ("garbage", f.garbage_rate),
            ("wrong_types", f.wrong_types_rate),
            ("wrong_data", f.wrong_data_rate),
            ("wrong_envelope", f.wrong_envelope_rate),
            ("absurd_limits", f.absurd_limits_rate),
            ("redirect", f.redirect_rate),
            ("redirect_loop", f.redirect_loop_rate),
            ("trickle", f.trickle_rate),
        ):
            if roll < rate:
                return name
            roll -= rate
        return None

    def _redirect_other(self, path: str, query: Mapping[str, str], headers: dict[str, str]) -> SimResponse:
        qs = f"?{urlencode(dict(query))}" if query else ""
        location = f"{self.faults.other_host.rstrip('/')}/4.0/{path}{qs}"
        self._note("redirect_other_host", f"Location: {location}")
        return SimResponse(302, {**headers, "Location": location}, b"")

    def _redirect_loop(self, path: str, query: Mapping[str, str], headers: dict[str, str]) -> SimResponse:
        raw = str(query.get(LOOP_PARAM, "0"))
        hop = int(raw) if raw.isascii() and raw.isdigit() else 0
        location = f"/4.0/{path}?{urlencode({**dict(query), LOOP_PARAM: str(hop + 1)})}"
        self._note("redirect_loop_hop" if hop else "redirect_loop", f"Location: {location}")
        return SimResponse(302, {**headers, "Location": location}, b"")

    def other_host(self, path: str, authorization: str | None, now: float) -> SimResponse:
        """What the other host of a cross-host redirect answers; records who came, with what."""
        self.other_host_requests.append((now, path, authorization is not None, authorization == self._auth))
        return _error(404, "This is not the Generator Labs API.")

    # -- routes -----------------------------------------------------------------------------

    def _route(
        self, path: str, query: Mapping[str, str], headers: dict[str, str], fault: str | None = None
    ) -> SimResponse:
        if path in ("rbl/listings/count", "cert/errors/count"):
            count = (
                len(self.account.listed) if path == "rbl/listings/count" else len(self.account.cert_errors())
            )
            text = str(count)
            if fault == "wrong_types":
                text = self._rng.choice(
                    (
                        "Infinity",
                        "NaN",
                        "1e400",
                        "9" * 400,
                        "-3",
                        "2.5",
                        "[]",
                        '{"count": "inf"}',
                        '{"count": 1e400}',
                        "\ud800",
                    )
                )
                self._note("wrong_types", f"count body {text[:40]!r}")
            return SimResponse(
                200, {**headers, "Content-Type": "text/plain"}, text.encode("utf-8", "surrogatepass")
            )
        if path in LIST_ROUTES:
            return self._list(path, query, headers, fault)
        m = ONE_ROUTE.match(path)
        if m:
            kind, ident = m.groups()
            objects: Mapping[str, Any] = self.account.hosts if kind == "rbl/hosts" else self.account.monitors
            obj = objects.get(ident)
            if obj is None:
                return _error(400, f"Invalid {kind.split('/')[1][:-1]} id provided.", headers)
            body: dict[str, Any] = {
                "status_code": 200,
                "status_message": "OK",
                "page": 1,
                "page_size": 100,
                "total_pages": 1,
                "total": 1,
                "data": [obj.to_json()],
            }
            return SimResponse(200, headers, self._hostile(body, fault))
        if len(self.unknown_routes) < 100 or path in self.unknown_routes:
            self.unknown_routes[path[:200]] += 1
        return _error(404, f"Unknown endpoint /4.0/{path}.", headers)

    def _list(
        self, path: str, query: Mapping[str, str], headers: dict[str, str], fault: str | None = None
    ) -> SimResponse:
        name, message = LIST_ROUTES[path]
        try:
            page = max(1, int(query.get("page", "1")))
            size = min(MAX_PAGE_SIZE, max(1, int(query.get("page_size", "100"))))
        except ValueError:
            return _error(400, "page and page_size must be integers.", headers)
        items, total = self.account.page(name, page, size)
        body: dict[str, Any] = {
            "status_code": 200,
            "status_message": message,
            "page": page,
            "page_size": size,
            "total_pages": max(1, math.ceil(total / size)),
            "total": total,
            "data": items,
        }
        if name in ("hosts", "listings"):
            body["total_listed"] = len(self.account.listed)
        if name == "errors":
            body["total_errors"] = total
        if fault is None or fault in ("absurd_limits", "trickle"):
            return SimResponse(200, headers, json.dumps(body, separators=(",", ":")).encode())
        return SimResponse(200, headers, self._hostile(body, fault))

    def _hostile(self, body: dict[str, Any], fault: str | None) -> bytes:
        """The body with the chosen fault applied to it (objects, `data` or the envelope)."""
        rng = self._rng
        changed: list[str] = []
        if fault == "wrong_types" and body["data"]:
            items = body["data"]
            if rng.random() < 0.2:  # every field of one object
                i = rng.randrange(len(items))
                items[i] = {k: rng.choice(HOSTILE_VALUES) for k in items[i]}
                changed = [f"data[{i}].{k}={_show(v)}" for k, v in items[i].items()]
            else:  # random fields of random objects, nested ones too
                for i in rng.sample(range(len(items)), min(len(items), rng.randint(1, 3))):
                    obj = dict(items[i])
                    for key in rng.sample(sorted(obj), min(len(obj), rng.randint(1, 3))):
                        obj[key] = rng.choice(HOSTILE_VALUES)
                        changed.append(f"data[{i}].{key}={_show(obj[key])}")
                    details = obj.get("listed_details")
                    if isinstance(details, list) and details and rng.random() < 0.5:
                        value = rng.choice(HOSTILE_VALUES)
                        obj["listed_details"] = [
                            {**d, "host": value} if isinstance(d, dict) else d for d in details
                        ]
                        changed.append(f"data[{i}].listed_details[].host={_show(value)}")
                    items[i] = obj
            self._note("wrong_types", "; ".join(changed))
        elif fault == "wrong_data":
            body["data"] = rng.choice(WRONG_DATA)
            self._note("wrong_data", f"data={_show(body['data'])}")
        elif fault == "wrong_envelope":
            for key in rng.sample(ENVELOPE_FIELDS, rng.randint(1, 3)):
                body[key] = rng.choice(HOSTILE_VALUES)
                changed.append(f"{key}={_show(body[key])}")
            self._note("wrong_envelope", "; ".join(changed))
        return dumps(body)
