"""Pure: the capture file's format, and each recorded response run through the exporter's parsers.

A capture file is one JSON object:

    {"format": "generatorlabs-exporter-capture", "format_version": 1, "exporter_version": "...",
     "captured_at": "2026-09-21T10:00:00+00:00", "page_size": 100, "requests": 12,
     "stopped": null, "notes": [...], "exchanges": [EXCHANGE, ...]}

and each EXCHANGE is one request and its answer:

    {"collector": "rbl_hosts", "kind": "page" | "count" | "object", "path": "rbl/hosts.json",
     "params": {"page": "1", "page_size": "100"}, "status": 200,
     "headers": {"RateLimit-Limit": "...", "RateLimit-Remaining": "...", ...},
     "body": <the anonymised JSON body, or null with "body_note" saying why>,
     "original": {"objects": 100, "parsed": 100, "warnings": [["host", "last_checked"]], ...},
     "fields": {"found": [...], "missing": [...], "unknown": [...]}}

`original` is what the exporter's parsers made of the response as it came, before anonymising;
`replay` runs the anonymised body through the same decoder and parsers (exporter.api.envelope
decode_page or decode_count, and the parse_* functions the scheduler uses), and `problems` says
where the two differ: another number of objects or records, another decode error, or a parse
warning the original did not have. A file that replays without problems is a test fixture.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.api import fields
from exporter.api.endpoints import ENDPOINTS, route_of
from exporter.api.envelope import RawResponse, decode_count, decode_page
from exporter.api.records import field_report
from exporter.capture.anonymise import IDENT_KEY
from exporter.errors import ApiError
from exporter.polling.scheduler import OBJECTS, PARSERS, REFRESH_PATHS

FORMAT = "generatorlabs-exporter-capture"
FORMAT_VERSION = 1
KINDS = ("page", "count", "object")
# The response headers a capture keeps, with their values: the rate-limit ones the exporter reads
# (API reference, "Rate Limiting"), their X- and draft spellings, and the content type.
KEPT_HEADERS = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
    "RateLimit",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "Content-Type",
)
MAX_HEADER_VALUE = 200  # characters of a kept header's value


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the exporter made of one response: objects in the list, records parsed, the distinct
    (object, field) parse warnings, the decode error's reason, or a count endpoint's number."""

    objects: int = 0
    parsed: int = 0
    warnings: tuple[tuple[str, str], ...] = ()
    error: str | None = None
    count: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "parsed": self.parsed,
            "warnings": [list(w) for w in self.warnings],
            "error": self.error,
            "count": self.count,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Outcome:
        warnings = tuple(sorted((str(w[0]), str(w[1])) for w in raw.get("warnings") or ()))
        count = raw.get("count")
        return cls(
            int(raw.get("objects") or 0),
            int(raw.get("parsed") or 0),
            warnings,
            raw.get("error"),
            count if isinstance(count, int) else None,
        )


def object_kind(collector: str) -> str:
    """The `object` name of a collector's records (`host` for both host collectors)."""
    return OBJECTS[collector]


def list_key(collector: str, kind: str) -> str:
    """The resource-named key a list may sit under (`hosts`); single GETs use REFRESH_PATHS'."""
    if kind == "object":
        return next(key for _, key, owner in REFRESH_PATHS.values() if owner == collector)
    return ENDPOINTS[collector].key


def outcome(collector: str, kind: str, path: str, response: RawResponse, now: float) -> Outcome:
    """Decode and parse one response as the scheduler does; never raises on any input."""
    route = route_of(path)
    try:
        if kind == "count":
            return Outcome(count=decode_count(route, response, now))
        page = decode_page(route, list_key(collector, kind), response, now, single=kind == "object")
    except ApiError as err:
        return Outcome(error=err.reason)
    seen: set[tuple[str, str]] = set()
    obj = object_kind(collector)

    def warn(name: str, fld: str, _detail: str) -> None:
        seen.add((name, fld))

    parsed = 0
    for raw in page.items:
        try:
            record = PARSERS[collector](raw, warn)
        except Exception:  # records.py never raises by contract; a bug costs one object
            seen.add((obj, "object"))
            continue
        parsed += record is not None
    if page.dropped:
        seen.add((obj, "object"))
    return Outcome(len(page.items), parsed, tuple(sorted(seen)))


def fields_of(collector: str, body: object) -> dict[str, list[str]] | None:
    """The field report (found, missing, unknown) of the objects in a decoded body, or None."""
    if not isinstance(body, Mapping):
        return None
    items = body.get("data", body.get(ENDPOINTS[collector].key))
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list):
        return None
    # only keys that are plain identifiers (never an address or an id used as a key)
    keys = {
        str(k)
        for item in items
        if isinstance(item, Mapping)
        for k in item
        if IDENT_KEY.match(str(k)) and not fields.SID.fullmatch(str(k))
    }
    if not keys:
        return None
    report = field_report(object_kind(collector), keys)
    return {"found": list(report.found), "missing": list(report.missing), "unknown": list(report.unknown)}


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers and the content type, by their usual spelling, values kept."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    return {
        name: lowered[name.lower()][:MAX_HEADER_VALUE] for name in KEPT_HEADERS if name.lower() in lowered
    }


def load(text: str) -> dict[str, Any]:
    """A capture file's content (ValueError when it is not one)."""
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f'not a capture file (no "format": {FORMAT!r})')
    if document.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"capture format version {document.get('format_version')!r}, not {FORMAT_VERSION}")
    exchanges = document.get("exchanges")
    if not isinstance(exchanges, list) or not all(isinstance(e, dict) for e in exchanges):
        raise ValueError('a capture file\'s "exchanges" is a list of objects')
    return document


def replay(exchange: Mapping[str, Any], now: float = 0.0) -> Outcome | None:
    """The Outcome of an exchange's recorded (anonymised) answer; None when no body was kept."""
    collector, kind = exchange.get("collector"), exchange.get("kind")
    if collector not in ENDPOINTS or kind not in KINDS or exchange.get("status") is None:
        return None
    if exchange.get("body") is None and exchange.get("body_note"):
        return None
    body = json.dumps(exchange.get("body")).encode()
    response = RawResponse(int(exchange["status"]), dict(exchange.get("headers") or {}), body)
    return outcome(str(collector), str(kind), str(exchange.get("path", "")), response, now)


def problems(document: Mapping[str, Any]) -> list[str]:
    """Where replaying a capture's exchanges differs from what the exporter saw originally."""
    found: list[str] = []
    for number, exchange in enumerate(document.get("exchanges") or ()):
        replayed = replay(exchange)
        if replayed is None or not isinstance(exchange.get("original"), Mapping):
            continue
        original = Outcome.from_json(exchange["original"])
        where = f"exchange {number} ({exchange.get('path')})"
        if (replayed.objects, replayed.parsed) != (original.objects, original.parsed):
            found.append(
                f"{where}: {replayed.objects} objects and {replayed.parsed} records, "
                f"originally {original.objects} and {original.parsed}"
            )
        if (replayed.error, replayed.count) != (original.error, original.count):
            found.append(
                f"{where}: error {replayed.error}, count {replayed.count}; originally {original.error}"
            )
        extra = sorted(set(replayed.warnings) - set(original.warnings))
        if extra:
            found.append(f"{where}: parse warnings the original did not have: {extra}")
    return found
