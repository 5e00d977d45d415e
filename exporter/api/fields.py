"""Pure: lenient readers for the API's loosely specified fields.

The v4 reference gives few response schemas, and the v3 samples it stays compatible with send
`listed` as 0/1, dates as `2016-11-07 21:01:33 EST`, empty strings for null and ids as comma lists.

Each reader returns a clean value or None; None means "absent or unreadable" and the caller
decides whether that deserves a parse warning.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, date, datetime, timedelta, timezone
from urllib.parse import urlsplit

# US zone abbreviations seen in v3 samples (`2016-11-07 21:01:33 EST`) and the common others.
TZ_OFFSETS_HOURS = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
    "AKST": -9,
    "AKDT": -8,
    "HST": -10,
    "BST": 1,
    "CET": 1,
    "CEST": 2,
    "EET": 2,
    "EEST": 3,
    "IST": 5.5,
    "JST": 9,
    "AEST": 10,
    "AEDT": 11,
}
# Zones read by arithmetic in the v3 form (`v3_seconds`), in seconds east of UTC; "Z" is left to
# the careful reading, for which "... Z" is an ISO-8601 date.
_V3_ZONE_SECONDS = {zone: round(hours * 3600) for zone, hours in TZ_OFFSETS_HOURS.items() if "Z" not in zone}
_EPOCH_DAY = date(1970, 1, 1).toordinal()
V3_SEPARATORS = "-- :: "  # the characters at 4, 7, 10, 13, 16 and 19 of `YYYY-MM-DD HH:MM:SS EST`
V3_SHORTEST = 20 + min(map(len, _V3_ZONE_SECONDS))  # `YYYY-MM-DD HH:MM:SS ` and a zone
V3_LONGEST = 20 + max(map(len, _V3_ZONE_SECONDS))
_V3_DATE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.\d+)?(?:\s+([A-Za-z]{1,5}|[+-]\d{2}:?\d{2}))?$"
)
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TRUE_WORDS = {"1", "true", "yes", "y", "on"}
# Every number read from outside is finite and inside these bounds, or it is Unreadable: the
# renderer, int() and the overlay can then never meet NaN, an infinity or a 400-digit integer.
MAX_MAGNITUDE = 1e15  # exact as a float, far beyond any count, day or balance the API sends
MAX_COUNT = 1_000_000_000  # listings, totals, pages: a count above this is nonsense, not data
MAX_TIMESTAMP = 32_503_680_000.0  # 3000-01-01: a later "date" is a unit mistake or garbage
MAX_TEXT_NUMBER = 64  # characters: a longer "number" or date string is not read at all
# The SID form of the Generator Labs API reference: two upper case letters that say what the id
# names (AC an account, HT a host, CM a certificate monitor, TA an event) and 32 hex digits.
SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
HOST_PREFIX = "HT"  # an RBL host's SID
MONITOR_PREFIX = "CM"  # a certificate monitor's SID
FALSE_WORDS = {"0", "false", "no", "n", "off", ""}
DATE_CACHE = 4096  # date strings remembered with their parsed value
MAX_URL = 2048  # characters of a link kept (a longer "URL" is not one anybody should follow)


class Unreadable(ValueError):
    """A value was present but could not be read; the message says what was found."""


def is_sid(value: object, prefix: str) -> bool:
    """Whether `value` is a SID (the one rule for ids that go into API paths, polled or pushed)
    naming what `prefix` names: HOST_PREFIX for a host, MONITOR_PREFIX for a monitor."""
    return isinstance(value, str) and SID.fullmatch(value) is not None and value.startswith(prefix)


def text(value: object) -> str | None:
    """Strings as they are (stripped), numbers as text; empty strings are null (the v3 samples
    send `""` for a host that was never listed)."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    out = str(value).strip()
    return out or None


def boolean(value: object) -> bool | None:
    """`listed` arrives as 0/1, "0"/"1" or a JSON bool."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise Unreadable(f"not a boolean: {shorten(value)}")
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise Unreadable(f"not a boolean: {shorten(value)}")


def number(value: object) -> float | None:
    """A finite number, including numbers sent as strings ("12.34"), within ±MAX_MAGNITUDE.

    NaN, ±Infinity, `1e400`, booleans, lists and objects are Unreadable, never a value."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Unreadable(f"not a number: {value!r}")
    if isinstance(value, int):
        if -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
            return float(value)
        raise Unreadable(f"number out of range: {shorten(value)}")
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, str) and len(value) <= MAX_TEXT_NUMBER:
        try:
            parsed = float(value.strip())
        except ValueError:
            pass
        else:
            return _finite(parsed)
    raise Unreadable(f"not a number: {shorten(value)}")


def _finite(value: float) -> float:
    if math.isfinite(value) and -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
        return value
    raise Unreadable(f"not a finite number in range: {value!r}")


def count(value: object) -> int | None:
    """A whole number from 0 to MAX_COUNT (listing counts, totals); "3", 3 and 3.0 read as 3."""
    parsed = number(value)
    if parsed is None:
        return None
    if parsed < 0 or parsed > MAX_COUNT or not parsed.is_integer():
        raise Unreadable(f"not a count from 0 to {MAX_COUNT}: {shorten(value)}")
    return int(parsed)


def http_url(value: object) -> str | None:
    """An http or https URL with a host, as it is; None for anything else (javascript:, data:,
    relative paths, text with spaces, control characters or lone surrogates, over MAX_URL). The
    one rule for a link: what records keep and what the status page links to."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        return None
    if not value.isprintable() or any(c.isspace() for c in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def loggable(text: str, limit: int = 200) -> str:
    """Text from outside, fit for a log line or an HTTP answer: printable, with control
    characters and lone surrogates escaped (`\\x00`, `\\udcff`) so that it always encodes, and
    at most `limit` characters long (cut with "...")."""
    if not text[: limit + 1].isprintable():
        text = "".join(
            c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[: limit + 1]
        )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shorten(value: object) -> str:
    """A value for an error or log message: its repr, never more than 60 characters of it."""
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def timestamp(value: object) -> float | None:
    """Seconds since the epoch from ISO-8601, the v3 `YYYY-MM-DD HH:MM:SS TZ` form, a date, or
    epoch seconds/milliseconds. Empty strings, zero and negative dates are null; a date that
    does not exist (`2024-13-45`), a non-finite number or one past the year 3000 is Unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Unreadable(f"not a date: {value!r}")
    if isinstance(value, int | float):
        return _epoch(value)
    if not isinstance(value, str):
        raise Unreadable(f"not a date: {shorten(value)}")
    if len(value) > MAX_TEXT_NUMBER:
        raise Unreadable(f"not a date: {shorten(value)}")
    return _parse_date(value)


def _epoch(value: int | float) -> float | None:
    """Epoch seconds, or milliseconds when larger than 1e11 (both forms occur)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise Unreadable(f"not a date: {value!r}")
    if value <= 0:
        return None
    try:
        seconds = float(value) / 1000.0 if value > 1e11 else float(value)
    except OverflowError:
        raise Unreadable(f"date out of range: {shorten(value)}") from None
    if seconds > MAX_TIMESTAMP:
        raise Unreadable(f"date out of range: {shorten(value)}")
    return seconds


@functools.lru_cache(maxsize=DATE_CACHE)
def _parse_date(value: str) -> float | None:
    """Date strings repeat within a page and across webhooks; parsing each once keeps them cheap.
    The cache is small on purpose: each entry holds its string, and 100,000 hosts checked at
    different seconds would fill a large one with strings no later page repeats."""
    raw = value.strip()
    if raw.startswith("0000-00-00"):
        return None
    if raw.isascii() and raw.isdigit():  # "²".isdigit() is True, and int() refuses it
        return _epoch(int(raw))
    seconds = v3_seconds(raw)
    if seconds is None:
        seconds = _careful_date_seconds(raw, value)
    return None if seconds is None else _in_range(seconds, value)


def _in_range(seconds: float, value: str) -> float | None:
    """A date read from `value`: None if not after the epoch, Unreadable if past MAX_TIMESTAMP."""
    if seconds <= 0:
        return None
    if seconds > MAX_TIMESTAMP:
        raise Unreadable(f"date out of range: {shorten(value)}")
    return seconds


def _careful_date_seconds(raw: str, value: str) -> float | None:
    try:
        return date_text_seconds(raw, value)
    except (ValueError, OverflowError) as err:  # e.g. month 13, day 45, year 0
        if isinstance(err, Unreadable):
            raise
        raise Unreadable(f"not a date: {shorten(value)} ({err})") from None


def v3_seconds(raw: str) -> float | None:
    """The short reading of the common v3 form, `YYYY-MM-DD HH:MM:SS EST` with ASCII digits and a
    zone of TZ_OFFSETS_HOURS in capitals, by arithmetic: what `date_text_seconds` reads it as.
    None for any other text, and for a day or time that does not exist (the careful reading then
    says what is wrong)."""
    if not V3_SHORTEST <= len(raw) <= V3_LONGEST or raw[4:20:3] != V3_SEPARATORS or not raw.isascii():
        return None
    offset = _V3_ZONE_SECONDS.get(raw[20:])
    clock = raw[11:13] + raw[14:16] + raw[17:19]
    if offset is None or not clock.isdigit() or clock[:2] > "23" or clock[2:4] > "59" or clock[4:] > "59":
        return None
    day = _day_seconds(raw[:10])
    if day is None:
        return None
    return float(day + int(clock[:2]) * 3600 + int(clock[2:4]) * 60 + int(clock[4:]) - offset)


@functools.lru_cache(maxsize=DATE_CACHE)
def _day_seconds(day: str) -> int | None:
    """Seconds from the epoch to the start (UTC) of `YYYY-MM-DD` (ASCII, its dashes checked);
    None if that is no day (month 13, year 0, a sign or a space for a digit)."""
    if not (day[:4] + day[5:7] + day[8:]).isdigit():
        return None
    try:
        ordinal = date(int(day[:4]), int(day[5:7]), int(day[8:])).toordinal()
    except ValueError:
        return None
    return (ordinal - _EPOCH_DAY) * 86400


def date_text_seconds(raw: str, value: str) -> float | None:
    """The careful reading of a date string `raw` (`value` stripped, named in errors): ISO-8601,
    a day, or the v3 form with any zone of TZ_OFFSETS_HOURS or a numeric offset."""
    if _DATE_ONLY.match(raw):
        return datetime.fromisoformat(raw).replace(tzinfo=UTC).timestamp()
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is not None:
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    m = _V3_DATE.match(raw)
    if not m:
        raise Unreadable(f"not a date: {shorten(value)}")
    day, clock, zone = m.groups()
    base = datetime.fromisoformat(f"{day}T{clock}")
    if zone is None:
        offset = timedelta(0)
    elif zone[0] in "+-":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    elif zone.upper() in TZ_OFFSETS_HOURS:
        offset = timedelta(hours=TZ_OFFSETS_HOURS[zone.upper()])
    else:
        raise Unreadable(f"unknown time zone {zone!r} in {shorten(value)}")
    return base.replace(tzinfo=timezone(offset)).timestamp()
