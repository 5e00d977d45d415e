"""Pure: decode one API response (status, headers, body bytes) into a Page, a count, or an error.

The envelope (evidence §3): `status_code`/`status_message` on every body, `page`, `page_size`,
`total_pages`, and the list under `data` or a resource-named key. A body `status_code >= 400` is
an error even on HTTP 200, as in every official SDK.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter import ratelimit
from exporter.errors import ApiError, RateLimited


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


def _reason(status: int) -> str:
    if status == 401:
        return "auth"
    if status == 403:
        return "forbidden"
    if status == 429:
        return "rate_limited"
    return "server_error" if status >= 500 else "client_error"


def _message(body: object) -> str:
    if isinstance(body, Mapping):
        return str(body.get("status_message") or "")[:200]
    return ""


def check_status(endpoint: str, response: RawResponse, now: float) -> None:
    """Raise RateLimited on 429, ApiError on any other HTTP status >= 400."""
    if response.status == 429:
        raise RateLimited(endpoint, ratelimit.retry_after(response.headers, now))
    if response.status >= 400:
        try:
            detail = _message(json.loads(response.body))
        except ValueError:
            detail = ""
        raise ApiError(endpoint, response.status, detail or f"HTTP {response.status}",
                       _reason(response.status))


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def decode_page(endpoint: str, key: str, response: RawResponse, now: float) -> Page:
    check_status(endpoint, response, now)
    try:
        body = json.loads(response.body)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(endpoint, response.status, f"body is not JSON ({err})", "decode") from err
    if not isinstance(body, Mapping):
        raise ApiError(endpoint, response.status, f"body is a {type(body).__name__}, not an object",
                       "decode")
    code = _int(body.get("status_code"))
    if code is not None and code >= 400:
        if code == 429:
            raise RateLimited(endpoint, ratelimit.retry_after(response.headers, now))
        raise ApiError(endpoint, code, _message(body) or f"status_code {code}", _reason(code))
    items = body.get("data")
    if not isinstance(items, list):
        items = body.get(key)
    if isinstance(items, Mapping):  # a single object (GET /rbl/hosts/{id} may answer this way)
        items = [items]
    if not isinstance(items, list):
        if items is None and "data" not in body and key not in body:
            raise ApiError(endpoint, response.status, f"no 'data' or '{key}' list in the body",
                           "decode")
        items = []
    page = _int(body.get("page")) or 1
    total_pages = _int(body.get("total_pages")) or 1
    total = _int(body.get("total", body.get(f"total_{key}", body.get("total_hosts"))))
    return Page(
        items=tuple(i for i in items if isinstance(i, Mapping)),
        page=page,
        total_pages=max(total_pages, 1),
        total=total,
    )


def decode_count(endpoint: str, response: RawResponse, now: float) -> int:
    """The count endpoints answer a bare number (evidence §3.3); anything else is an error."""
    check_status(endpoint, response, now)
    text = response.body.decode("utf-8", "replace").strip()
    try:
        value = float(text)
    except ValueError:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, Mapping):
            code = _int(body.get("status_code"))
            if code is not None and code >= 400:
                raise ApiError(endpoint, code, _message(body), _reason(code)) from None
            for k in ("count", "total", "data"):
                if _int(body.get(k)) is not None:
                    return int(body[k])
        raise ApiError(endpoint, response.status, f"not a number: {text[:40]!r}", "decode") from None
    if value < 0 or not value.is_integer():
        raise ApiError(endpoint, response.status, f"not a count: {text[:40]!r}", "decode")
    return int(value)
