"""Pure: decode one API response (status, headers, body bytes) into a Page, a count, or an error.

The envelope (API reference, the `page`/`page_size` parameters and list response samples): `status_code` and
`status_message` on every body, `page`, `page_size`, `total_pages`, `total`, and the list under
`data`, or under a resource-named key (`hosts`, `listings`) as some official SDK fixtures have it.
A body `status_code >= 400` is an error even on HTTP 200, as in every official SDK.

A wrong envelope is an error (reason `decode`), never an empty page: the poll fails and the last
good snapshot stays. That covers a list of the wrong type (`"data": "temporarily unavailable"`, a
number, an object where a list belongs), a list whose items are none of them objects, and a
`total_pages` that is unreadable or above MAX_PAGES. Any 3xx is an error too (reason `redirect`):
redirects are never followed. Text from the body that reaches an error message is cut short and
made printable, so a log line can always be written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.api import fields, ratelimit
from exporter.errors import ApiError, RateLimited

MAX_PAGES = 100_000  # 10 million objects at page_size 100; more is a broken envelope
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[Mapping[str, Any], ...]
    page: int
    total_pages: int
    total: int | None
    dropped: int = 0  # list entries that were not objects (the caller counts them as warnings)


def _reason(status: int) -> str:
    if 300 <= status < 400:
        return "redirect"
    if status == 401:
        return "auth"
    if status == 403:
        return "forbidden"
    if status == 429:
        return "rate_limited"
    return "server_error" if status >= 500 else "client_error"


def _message(body: object) -> str:
    if isinstance(body, Mapping):
        message = body.get("status_message")
        if isinstance(message, str):
            return fields.loggable(message)
    return ""


def _json(body: bytes | str) -> object:
    """json.loads, raising only ValueError (deep nesting is a RecursionError otherwise)."""
    try:
        return json.loads(body)
    except RecursionError as err:
        raise ValueError("nested too deeply") from err


def check_status(endpoint: str, response: RawResponse, now: float) -> None:
    """Raise RateLimited on 429, ApiError on a redirect or any other HTTP status >= 400."""
    status = response.status
    if status == 429:
        raise RateLimited(endpoint, ratelimit.retry_after(response.headers, now))
    if 300 <= status < 400:
        location = response.headers.get("Location") or response.headers.get("location") or ""
        raise ApiError(
            endpoint,
            status,
            f"the API answered a redirect to {fields.loggable(location, 120)!r}; redirects are "
            "never followed: set api.base_url to the final address",
            "redirect",
        )
    if status >= 400:
        try:
            detail = _message(_json(response.body))
        except (ValueError, UnicodeDecodeError):
            detail = ""
        raise ApiError(endpoint, status, detail or f"HTTP {status}", _reason(status))


def _int(value: object, maximum: int = fields.MAX_COUNT) -> int | None:
    """A whole number from 0 to `maximum` (ints, digit strings, whole floats), else None.
    NaN, infinities, booleans, fractions and absurd sizes are None, never an exception."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= maximum else None
    if isinstance(value, str):
        text = value.strip()
        if 0 < len(text) <= 18 and text.isascii() and text.isdigit():
            number = int(text)
            return number if number <= maximum else None
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value) if 0 <= value <= maximum else None
    return None


def _shown(value: object) -> str:
    """A value from the body for an error message; never the repr of a (deep) container."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = value[:40] if isinstance(value, str) else value
        try:
            return fields.loggable(repr(text), 40)
        except ValueError:  # an int too long to print
            return "a huge number"
    return f"a {type(value).__name__}"


def _status_code(body: Mapping[str, Any]) -> int | None:
    code = _int(body.get("status_code"), 999)
    return code if code is not None and code >= 100 else None


def _body(endpoint: str, response: RawResponse, now: float) -> Mapping[str, Any]:
    """The JSON object of a 2xx answer whose body status_code is not an error."""
    check_status(endpoint, response, now)
    try:
        body = _json(response.body)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(
            endpoint, response.status, f"body is not JSON ({fields.loggable(str(err))})", "decode"
        ) from err
    if not isinstance(body, Mapping):
        raise ApiError(endpoint, response.status, f"body is a {type(body).__name__}, not an object", "decode")
    code = _status_code(body)
    if code is not None and code >= 400:
        if code == 429:
            raise RateLimited(endpoint, ratelimit.retry_after(response.headers, now))
        raise ApiError(endpoint, code, _message(body) or f"status_code {code}", _reason(code))
    return body


def _list(endpoint: str, key: str, status: int, body: Mapping[str, Any], single: bool) -> list[Any]:
    """The objects of the page: the list under `data`, else under the resource key. A single
    object counts only where one is expected (`single`, e.g. GET /rbl/hosts/{id})."""
    found = {k: body.get(k, _ABSENT) for k in ("data", key)}
    for value in found.values():
        if isinstance(value, list):
            return value
    if single:
        for value in found.values():
            if isinstance(value, Mapping):
                return [value]
    present = {k: v for k, v in found.items() if v is not _ABSENT and v is not None}
    if present:
        name, value = next(iter(present.items()))
        expected = "a list or an object" if single else "a list"
        raise ApiError(endpoint, status, f"'{name}' is a {type(value).__name__}, not {expected}", "decode")
    if all(v is _ABSENT for v in found.values()):
        raise ApiError(endpoint, status, f"no 'data' or '{key}' list in the body", "decode")
    # `"data": null`: an empty list, but only when nothing in the envelope says there is more
    total = _int(body.get("total", body.get(f"total_{key}")))
    if total:
        raise ApiError(endpoint, status, f"'data' is null but the total is {total}", "decode")
    return []


def decode_page(endpoint: str, key: str, response: RawResponse, now: float, *, single: bool = False) -> Page:
    body = _body(endpoint, response, now)
    status = response.status
    items = _list(endpoint, key, status, body, single)
    objects = tuple(i for i in items if isinstance(i, Mapping))
    if items and not objects:
        raise ApiError(endpoint, status, f"none of the {len(items)} list entries is an object", "decode")
    raw_pages = body.get("total_pages")
    if raw_pages is None:
        total_pages = 1  # the SDKs read a missing total_pages as 1
    else:
        pages = _int(raw_pages, MAX_PAGES)
        if pages is None:
            raise ApiError(
                endpoint,
                status,
                f"total_pages is {_shown(raw_pages)}, not a whole number up to {MAX_PAGES}",
                "decode",
            )
        total_pages = max(pages, 1)
    total = _int(body.get("total", body.get(f"total_{key}", body.get("total_hosts"))))
    return Page(
        items=objects,
        page=_int(body.get("page"), MAX_PAGES) or 1,
        total_pages=total_pages,
        total=total,
        dropped=len(items) - len(objects),
    )


def decode_count(endpoint: str, response: RawResponse, now: float) -> int:
    """The count endpoints (`rbl/listings/count`, `cert/errors/count`, as the vendor's Zabbix
    template polls them) answer a bare number; anything else is an error, and
    so is a number that is not a count (negative, fractional, non-finite, above MAX_COUNT)."""
    check_status(endpoint, response, now)
    text = response.body.decode("utf-8", "replace").strip()
    try:
        body: object = _json(text)
    except ValueError:
        body = text
    value: object = body
    if isinstance(body, Mapping):
        code = _status_code(body)
        if code is not None and code >= 400:
            raise ApiError(endpoint, code, _message(body), _reason(code))
        value = next((body[k] for k in ("count", "total", "data") if k in body), None)
    try:
        count = fields.count(value) if isinstance(value, str | int | float) else None
    except fields.Unreadable as err:
        raise ApiError(
            endpoint, response.status, f"not a count ({fields.loggable(str(err))})", "decode"
        ) from None
    if count is None:
        raise ApiError(
            endpoint, response.status, f"not a number: {fields.loggable(repr(text[:40]))}", "decode"
        )
    return count
