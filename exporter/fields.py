"""Pure: lenient readers for the API's loosely specified fields (evidence note §4, §11.4).

Each reader returns a clean value or None; None means "absent or unreadable" and the caller
decides whether that deserves a parse warning.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta, timezone

# US zone abbreviations seen in v3 samples (`2016-11-07 21:01:33 EST`) and the common others.
TZ_OFFSETS_HOURS = {
    "UTC": 0, "GMT": 0, "Z": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7,
    "MDT": -6, "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10, "BST": 1, "CET": 1,
    "CEST": 2, "EET": 2, "EEST": 3, "IST": 5.5, "JST": 9, "AEST": 10, "AEDT": 11,
}
_V3_DATE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.\d+)?(?:\s+([A-Za-z]{1,5}|[+-]\d{2}:?\d{2}))?$"
)
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TRUE_WORDS = {"1", "true", "yes", "y", "on"}
FALSE_WORDS = {"0", "false", "no", "n", "off", ""}


class Unreadable(ValueError):
    """A value was present but could not be read; the message says what was found."""


def text(value: object) -> str | None:
    """Strings as they are (stripped), numbers as text; empty strings are null (evidence §4.1)."""
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
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise Unreadable(f"not a boolean: {value!r}")


def number(value: object) -> float | None:
    """Numbers, including numbers sent as strings ("12.34")."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise Unreadable(f"not a number: {value!r}")


def id_list(value: object) -> tuple[str, ...]:
    """`contact_group` as a string, a comma list or an array."""
    if value is None or value == "":
        return ()
    if isinstance(value, list | tuple):
        return tuple(t for v in value if (t := text(v if not isinstance(v, dict) else v.get("id"))))
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    raise Unreadable(f"not a list of ids: {value!r}")


def timestamp(value: object) -> float | None:
    """Seconds since the epoch from ISO-8601, the v3 `YYYY-MM-DD HH:MM:SS TZ` form, a date, or
    epoch seconds/milliseconds. Empty strings and zero dates are null."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if value <= 0:
            return None
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if not isinstance(value, str):
        raise Unreadable(f"not a date: {value!r}")
    return _parse_date(value)


@functools.lru_cache(maxsize=65536)
def _parse_date(value: str) -> float | None:
    """Date strings repeat across pages and polls; parsing each once keeps 1,000-page passes cheap."""
    raw = value.strip()
    if raw.startswith("0000-00-00"):
        return None
    if raw.isdigit():
        return timestamp(int(raw))
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
        raise Unreadable(f"not a date: {value!r}")
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
        raise Unreadable(f"unknown time zone {zone!r} in {value!r}")
    return base.replace(tzinfo=timezone(offset)).timestamp()
