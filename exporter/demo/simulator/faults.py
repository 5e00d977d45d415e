"""Pure: what the simulated API can do wrong, as data. No I/O.

`Faults` says which failures to inject and how often; the tables below are the hostile material a
fault draws from (values for random fields, wrong `data`, bodies that are not JSON, absurd
RateLimit-* headers). `dumps` writes JSON the way a broken server might, including tokens no
Python value serialises to (`1e400`, a 400-digit number). `SimulatedApi` (api.py) applies them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from exporter.demo.simulator.account import DAY

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
RETRY_AFTER_FORMATS = ("delta", "date", "mixed")
FORCED_RETRY_AFTER = 120.0  # seconds a forced 429 asks the client to wait
STORM_RETRY_AFTER = (5.0, 120.0)  # the range of Retry-After seconds in a 429 storm


class RawJson(str):
    """A JSON token written as it is (`1e400`, a 400-digit number): no Python value dumps to it."""


HUGE_NUMBER = "9" * 400  # a JSON number no float or int64 holds
LONG_STRING = "A" * 5000

# Values a hostile or broken API could put in any field: non-finite and huge numbers, numbers
# as text, wrong types, lone surrogates, very long strings, impossible dates, path tricks.
HOSTILE_VALUES: tuple[Any, ...] = (
    math.nan,
    math.inf,
    -math.inf,
    RawJson("1e400"),
    RawJson("-1e400"),
    RawJson(HUGE_NUMBER),
    "NaN",
    "Infinity",
    "-Infinity",
    "inf",
    "1e400",
    HUGE_NUMBER,
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
    LONG_STRING,
    "2024-13-45",
    "2024-13-45 10:00:00",
    "0000-00-00 00:00:00",
    '\x00\x01\n"\\{}',
    "HT3/../../../../etc",
    "é" * 10,
)
# What a `data` field of the wrong type can hold instead of a list of objects.
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
# Bodies of an HTTP 200 that are not JSON (or not the JSON an API answers with).
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
# What a count route (`rbl/listings/count`, `cert/errors/count`) answers instead of a count.
HOSTILE_COUNT_BODIES = (
    "Infinity",
    "NaN",
    "1e400",
    HUGE_NUMBER,
    "-3",
    "2.5",
    "[]",
    '{"count": "inf"}',
    '{"count": 1e400}',
    "\ud800",
)
TRUNCATED_BODY = b'{"status_code": 200, "data": [{"id": "HT'


@dataclass(frozen=True, slots=True)
class EpochIn:
    """A RateLimit-Reset given as an epoch timestamp this many seconds after the request."""

    seconds: int


# Absurd RateLimit-* values: (Remaining, Reset, Limit); None keeps the honest value. They are given
# in turn, so that a short run meets every one; the ones of issue 7 come first.
ABSURD_LIMIT_HEADERS: tuple[tuple[str | None, str | EpochIn | None, str | None], ...] = (
    ("inf", "60", None),
    ("0", "99999999999", None),
    ("0", EpochIn(120), None),
    ("1", EpochIn(41 * DAY), None),
    ("NaN", "60", None),
    ("1e400", "60", None),
    ("-1", "60", None),
    (HUGE_NUMBER, "60", None),
    ("Infinity", "60", None),
    ("abc", "60", None),
    ("0", "inf", None),
    ("0", "NaN", None),
    ("0", "-5", None),
    ("0", "1e400", None),
    ("5", HUGE_NUMBER, None),
    (None, None, "garbage"),
    (None, None, "0;w=0"),
    (None, None, HUGE_NUMBER + ";w=3600"),
    (None, None, "1000;w=inf, 100;w=-1"),
)
ABSURD_LIMITS = len(ABSURD_LIMIT_HEADERS)


def absurd_limit_headers(turn: int, honest: dict[str, str], now: float) -> tuple[dict[str, str], str]:
    """The honest RateLimit-* headers with absurd combination number `turn` (cyclic) put in, and
    a short description of it for the record of faults."""
    remaining, reset, limit = ABSURD_LIMIT_HEADERS[turn % len(ABSURD_LIMIT_HEADERS)]
    if isinstance(reset, EpochIn):
        reset = str(int(now) + reset.seconds)
    headers = dict(honest)
    if remaining is not None:
        headers["RateLimit-Remaining"] = remaining
    if reset is not None:
        headers["RateLimit-Reset"] = reset
    if limit is not None:
        headers["RateLimit-Limit"] = limit
    short = len(str(remaining)) + len(str(reset)) < 100
    return headers, f"Remaining={remaining} Reset={reset} Limit={limit}" if short else "400-digit values"


def show(value: Any) -> str:
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
    a 429 at those times; `storms` make every request in a window fail one way. All off by default."""

    error_rate: float = 0.0  # HTTP 500 with the error envelope
    body_error_rate: float = 0.0  # HTTP 200 whose body says status_code 500
    malformed_rate: float = 0.0  # HTTP 200 with truncated JSON
    timeout_rate: float = 0.0  # no answer within the client's timeout
    rate_limit_at: list[float] = field(default_factory=list)
    forced_retry_after: float = FORCED_RETRY_AFTER
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
    storm_retry_after: tuple[float, float] = STORM_RETRY_AFTER
    retry_after_format: str = "delta"  # "delta", "date" (HTTP date) or "mixed"
    other_host: str = OTHER_HOST  # base URL (scheme://host:port) of the cross-host redirect
    # (time, kind): the first request at or after `time` gets fault `kind` (one of FAULT_KINDS),
    # so that a short run meets every kind
    scheduled: list[tuple[float, str]] = field(default_factory=list)

    def storm(self, now: float) -> str | None:
        """The kind of the storm under way at `now`, if any."""
        return next((kind for start, seconds, kind in self.storms if start <= now < start + seconds), None)

    def rates(self) -> tuple[tuple[str, float], ...]:
        """Each random fault kind and its share of requests, in the order a roll is matched."""
        return (
            ("timeout", self.timeout_rate),
            ("server_error", self.error_rate),
            ("truncated_json", self.malformed_rate),
            ("error_in_body", self.body_error_rate),
            ("garbage", self.garbage_rate),
            ("wrong_types", self.wrong_types_rate),
            ("wrong_data", self.wrong_data_rate),
            ("wrong_envelope", self.wrong_envelope_rate),
            ("absurd_limits", self.absurd_limits_rate),
            ("redirect", self.redirect_rate),
            ("redirect_loop", self.redirect_loop_rate),
            ("trickle", self.trickle_rate),
        )

    def pick(self, roll: float) -> str | None:
        """The fault a roll in [0, 1) lands on, if any (each kind has its share)."""
        for name, rate in self.rates():
            if roll < rate:
                return name
            roll -= rate
        return None

    def take_scheduled(self, now: float) -> str | None:
        """The first scheduled fault that has fallen due, if any (consumed)."""
        due = self.scheduled
        if not due or min(t for t, _ in due) > now:
            return None
        at, kind = min(due)
        due.remove((at, kind))
        return kind

    def take_forced_429(self, now: float) -> bool:
        """Whether a forced 429 has fallen due (every one due is consumed)."""
        due = [t for t in self.rate_limit_at if t <= now]
        if due:
            self.rate_limit_at = [t for t in self.rate_limit_at if t > now]
        return bool(due)
