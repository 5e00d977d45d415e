"""Pure: read the API's RateLimit-* and Retry-After headers (API reference, "Rate Limiting")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

RETRY_AFTER_CAP = 3600.0  # a 429 from the hourly window can ask for up to an hour; never more
_POLICY = re.compile(r"^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The server's view of our quota at `observed_at` (shared with every other client of the
    same API application, which is why it can be lower than our own ledger thinks)."""

    policies: tuple[tuple[int, int], ...]  # (requests, window seconds), e.g. ((1000, 3600), (100, 1))
    remaining: int | None
    reset_at: float | None
    observed_at: float

    @property
    def hourly_limit(self) -> int | None:
        return next((n for n, w in self.policies if w == 3600), None)


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value


def parse_policies(value: str) -> tuple[tuple[int, int], ...]:
    """`1000;w=3600, 100;w=1` -> ((1000, 3600), (100, 1)); a bare number has no window (0)."""
    out = []
    for part in value.split(","):
        m = _POLICY.match(part)
        if m:
            out.append((int(m.group(1)), int(m.group(2) or 0)))
    return tuple(out)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip().split(",")[0].split(";")[0])
    except ValueError:
        return None
    return number if number >= 0 else None


def from_headers(headers: Mapping[str, str], now: float) -> RateLimit | None:
    """None when the response carried no RateLimit-* header at all."""
    limit = _get(headers, "RateLimit-Limit")
    remaining = _number(_get(headers, "RateLimit-Remaining"))
    reset = _number(_get(headers, "RateLimit-Reset"))
    if limit is None and remaining is None and reset is None:
        return None
    return RateLimit(
        policies=parse_policies(limit) if limit else (),
        remaining=int(remaining) if remaining is not None else None,
        reset_at=now + reset if reset is not None else None,
        observed_at=now,
    )


def retry_after(headers: Mapping[str, str], now: float, default: float = 60.0) -> float:
    """Seconds to wait after a 429: delta-seconds or an HTTP date, capped at one hour."""
    value = _get(headers, "Retry-After")
    seconds: float | None = None
    if value is not None:
        seconds = _number(value)
        if seconds is None:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - now
            except (TypeError, ValueError, IndexError):
                seconds = None
    if seconds is None:
        seconds = default
    return min(max(seconds, 1.0), RETRY_AFTER_CAP)
