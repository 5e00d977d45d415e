"""Pure: read the API's RateLimit-* and Retry-After headers (API reference, "Rate Limiting").

Header values come from outside and are checked here, once: a value that is not a finite,
non-negative number of sane size (`inf`, `nan`, `1e400`, 400 digits, text) is ignored, never an
error. Every wait the server can impose is capped at RETRY_AFTER_CAP (the hourly window), so no
header can stop the exporter for longer than an hour.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from exporter.clock import DAY, HOUR, YEAR

# The API's hourly window, in seconds: 1,000 requests per hour per API application
# (RateLimit-Limit: `1000;w=3600`). The request ledger of the state file keeps this long.
HOURLY_WINDOW = HOUR
RETRY_AFTER_CAP = HOURLY_WINDOW  # a 429 from the hourly window can ask for up to an hour; never more
RESET_CAP = RETRY_AFTER_CAP  # the most restrictive window resets within the hour, by definition
# A RateLimit-Reset larger than ten years of seconds is not a delay but an absolute epoch time
# (some servers send it that way); it is read as such, then capped like a delay.
EPOCH_THRESHOLD = 10 * YEAR
MAX_POLICY_WINDOW = YEAR + DAY  # seconds; a policy over a longer window (a leap year at most) is absurd
MAX_POLICIES = 16  # policies read of one RateLimit-Policy header
MAX_REMAINING = 1_000_000_000  # a larger "remaining" is garbage, not a quota
MAX_HEADER_NUMBER = 32  # characters; a longer number is not read at all
MAX_HEADER_DATE = 64  # characters for an HTTP date
# Seconds a reset delay may exceed its window: reset_at - observed_at at epoch magnitudes is off
# by float rounding (about 2e-7 s), and a per-second window's 1 s delay must still read as 1 s.
RESET_ROUNDING = 1e-3
_POLICY = re.compile(r"^\s*(\d{1,10})\s*(?:;\s*w\s*=\s*(\d{1,10}))?", re.ASCII)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The server's view of our quota at `observed_at` (shared with every other client of the
    same API application, which is why it can be lower than our own ledger thinks)."""

    policies: tuple[tuple[int, int], ...]  # (requests, window seconds), e.g. ((1000, 3600), (100, 1))
    remaining: int | None
    reset_at: float | None  # never later than observed_at + RESET_CAP
    observed_at: float

    @property
    def window(self) -> int | None:
        """The policy window (seconds) that Remaining and Reset describe: see `window_of`."""
        delay = None if self.reset_at is None else max(self.reset_at - self.observed_at, 0.0)
        return window_of(self.policies, self.remaining, delay)


def window_of(
    policies: tuple[tuple[int, int], ...], remaining: int | None, delay: float | None
) -> int | None:
    """Which window a response's RateLimit-Remaining and -Reset describe. The API sends them for
    "the most restrictive active window" without naming it (API reference, "Rate Limiting"), so it
    is inferred: the smallest policy window that is at least the reset delay (a window resets
    within its own length) and whose limit is at least the remaining count (no window has more
    left than its limit). A value that is absent does not constrain. With `1000;w=3600, 100;w=1`,
    remaining 97 and a reset 1 s ahead is the per-second window; 940 or a reset 20 min ahead is
    the hourly one. None when no policy fits (no RateLimit-Limit, or values no policy explains)."""
    timed = sorted((window, requests) for requests, window in policies if window > 0)
    for window, requests in timed:
        if (delay is None or window + RESET_ROUNDING >= delay) and (
            remaining is None or requests >= remaining
        ):
            return window
    return None


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value


def parse_policies(value: str) -> tuple[tuple[int, int], ...]:
    """`1000;w=3600, 100;w=1` -> ((1000, 3600), (100, 1)); a bare number has no window (0).
    Parts that are not a policy, or whose numbers are absurd, are left out."""
    out = []
    for part in value.split(",")[:MAX_POLICIES]:
        m = _POLICY.match(part)
        if m:
            requests, window = int(m.group(1)), int(m.group(2) or 0)
            if requests <= MAX_REMAINING and window <= MAX_POLICY_WINDOW:
                out.append((requests, window))
    return tuple(out)


def _number(value: str | None) -> float | None:
    """A finite, non-negative number, or None for anything else (never raises)."""
    if value is None:
        return None
    text = value.strip().split(",")[0].split(";")[0].strip()
    if not text or len(text) > MAX_HEADER_NUMBER:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def reset_delay(value: float, now: float) -> float:
    """Seconds until the reset from a RateLimit-Reset value: delta seconds, or an absolute epoch
    time when it is larger than EPOCH_THRESHOLD. A reset in the past is now (0); any reset is
    at most RESET_CAP away."""
    delay = value - now if value > EPOCH_THRESHOLD else value
    return min(max(delay, 0.0), RESET_CAP)


def from_headers(headers: Mapping[str, str], now: float) -> RateLimit | None:
    """None when the response carried no RateLimit-* header at all."""
    limit = _get(headers, "RateLimit-Limit")
    remaining = _number(_get(headers, "RateLimit-Remaining"))
    reset = _number(_get(headers, "RateLimit-Reset"))
    if remaining is not None and remaining > MAX_REMAINING:
        remaining = None
    if limit is None and remaining is None and reset is None:
        return None
    return RateLimit(
        policies=parse_policies(limit) if limit else (),
        remaining=int(remaining) if remaining is not None else None,
        reset_at=now + reset_delay(reset, now) if reset is not None else None,
        observed_at=now,
    )


def retry_after(headers: Mapping[str, str], now: float, default: float = 60.0) -> float:
    """Seconds to wait after a 429: delta-seconds or an HTTP date, at least 1 s and capped at
    one hour. An unreadable value means the default; this never raises."""
    value = _get(headers, "Retry-After")
    seconds: float | None = None
    if value is not None:
        seconds = _number(value)
        if seconds is None and len(value) <= MAX_HEADER_DATE:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - now
            except (TypeError, ValueError, IndexError, OverflowError, OSError):
                seconds = None
    if seconds is None or not math.isfinite(seconds):
        seconds = default
    return min(max(seconds, 1.0), RETRY_AFTER_CAP)
