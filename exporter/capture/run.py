"""The capture itself (I/O: the API, the state file's request ledger, the demo, the output file).

One page (the first) of each endpoint the exporter polls, both count endpoints, and one single
GET of a host and of a monitor when the pages named one: twelve requests, never more than
MAX_REQUESTS. They go through the daemon's own transport and request ledger:

- the ledger starts from the state file's record of the last hour (when the file exists and no
  running exporter holds it), and capture refuses to start when that record says the hour's
  budget (budget.requests_per_hour) is spent; it spends at most what is left of it. Its own
  requests are added to the file's record, so the exporter counts them after its next start;
- when a running exporter holds the state file, its record cannot be read: capture says so and
  relies on the API's RateLimit headers and on its own limit of MAX_REQUESTS instead;
- RateLimit-* headers are observed as the scheduler does; a wait longer than MAX_WAIT (the
  API says nothing is left, or the per-second pace) ends the capture early, and so does a 429
  (recorded, never retried) or a request that got no answer.

Whatever was captured is written, anonymised (exporter.capture.anonymise), with what the exporter's
parsers made of each original response (exporter.capture.replay). The credentials are never
written: the file is checked for them before it is, and not written if it held them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from exporter import __version__
from exporter.api.endpoints import ENDPOINTS
from exporter.api.envelope import RawResponse, decode_page
from exporter.api.ratelimit import from_headers, retry_after
from exporter.api.transport import HttpTransport, make_session
from exporter.capture.anonymise import Anonymiser
from exporter.capture.replay import (
    FORMAT,
    FORMAT_VERSION,
    fields_of,
    kept_headers,
    list_key,
    outcome,
)
from exporter.clock import Clock, SystemClock
from exporter.config.load import default_state_path
from exporter.config.model import Config
from exporter.errors import ApiError, ExporterError, StateError
from exporter.polling.ledger import Ledger
from exporter.polling.scheduler import REFRESH_PATHS, Transport, valid_id
from exporter.state.sqlite import StateDB

MAX_REQUESTS = 20  # a capture never sends more
MAX_WAIT = 10.0  # seconds a capture waits for the ledger before it stops
DEMO_PACE = 50.0  # requests per second to the built-in simulator
NOTES = (
    "ids are hashed with a key that is not in this file; addresses, names and free text are "
    "placeholders; numbers, booleans, nulls, dates, list lengths and enumeration values are kept",
    "`original` is what the exporter's parsers made of each response before it was anonymised",
)
SendJournal = Callable[[float], Awaitable[None]]
# the pages whose first object's id a single GET (REFRESH_PATHS) then asks for
ID_SOURCES = {"rbl_listings": "host", "rbl_hosts": "host", "cert_monitors": "monitor"}


class CaptureRefused(ExporterError):
    """The capture cannot or may not run (the hour's budget is spent); the CLI exits 1."""


@dataclass(frozen=True, slots=True)
class Request:
    collector: str
    kind: str  # page, count or object (see exporter.capture.replay)
    path: str
    params: Mapping[str, str]


def planned(page_size: int) -> list[Request]:
    """The first page of every collector's endpoint, then the count endpoints."""
    params = {"page": "1", "page_size": str(page_size)}
    pages = [Request(e.collector, "page", e.path, params) for e in ENDPOINTS.values()]
    counts = [Request(e.collector, "count", e.count_path, {}) for e in ENDPOINTS.values() if e.count_path]
    return pages + counts


@dataclass(slots=True)
class Capturer:
    """Sends a capture's requests through the ledger and records each answer, anonymised."""

    transport: Transport
    ledger: Ledger
    clock: Clock
    anonymiser: Anonymiser
    limit: int = MAX_REQUESTS
    journal: SendJournal | None = None
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0
    stopped: str | None = None  # why the capture ended early (a reason, never a host or a detail)
    detail: str = ""  # the error behind `stopped`, for the terminal only
    ids: dict[str, str] = field(default_factory=dict)  # kind -> an id a page named (host, monitor)

    async def run(self, page_size: int) -> None:
        """Every planned request, then one host and one monitor by id, until stopped."""
        for request in planned(page_size):
            if self.stopped is None:
                await self.fetch(request)
        for kind, (template, _, collector) in REFRESH_PATHS.items():
            ident = self.ids.get(kind)
            if self.stopped is None and ident is not None:
                path = template.format(id=quote(ident, safe=""))
                await self.fetch(Request(collector, "object", path, {}))

    async def fetch(self, request: Request) -> None:
        if self.sent >= self.limit:
            self.stopped = "request_limit"
            self.detail = f"this capture may send {self.limit} requests"
            return
        now = self.clock.time()
        wait = self.ledger.next_allowed(now) - now
        if wait > MAX_WAIT:
            self.stopped = "budget"
            self.detail = f"the request ledger allows the next request only in {wait:.0f}s"
            return
        if wait > 0:
            await self.clock.sleep(wait)
        now = self.clock.time()
        if self.journal is not None:
            await self.journal(now)
        self.ledger.record(now)
        self.sent += 1
        try:
            response = await self.transport.get(request.path, request.params)
        except ApiError as err:
            self.exchanges.append({**self._request(request), "status": None, "error": err.reason})
            self.stopped, self.detail = err.reason, str(err)
            return
        self._answered(request, response)

    def _answered(self, request: Request, response: RawResponse) -> None:
        done = self.clock.time()
        limit = from_headers(response.headers, done)
        if limit is not None:
            self.ledger.observe(limit)
        exchange = self.exchange(request, response, done)
        self.exchanges.append(exchange)
        if response.status == 429 or exchange["original"]["error"] == "rate_limited":
            self.ledger.rate_limited(done, retry_after(response.headers, done))
            self.stopped, self.detail = "rate_limited", "the API answered 429 (not retried)"
        elif request.kind == "page":
            self._note_id(request, response, done)

    def _request(self, request: Request) -> dict[str, Any]:
        return {
            "collector": request.collector,
            "kind": request.kind,
            "path": self.anonymiser.text(request.path),
            "params": dict(request.params),
        }

    def exchange(self, request: Request, response: RawResponse, now: float) -> dict[str, Any]:
        """One request and its answer, as the file holds it."""
        entry = self._request(request)
        entry.update(status=response.status, headers=kept_headers(response.headers))
        try:
            body = json.loads(response.body)
            entry["body"] = self.anonymiser.body(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            what = "nested too deeply" if isinstance(err, RecursionError) else "not JSON"
            entry.update(body=None, body_note=f"{what} ({len(response.body)} bytes, not kept)")
        else:
            if request.kind != "count":
                entry["fields"] = fields_of(request.collector, body)
        entry["original"] = outcome(request.collector, request.kind, request.path, response, now).to_json()
        return entry

    def _note_id(self, request: Request, response: RawResponse, now: float) -> None:
        """The first id of a page whose objects a single GET can ask for (listings come first,
        so the host is a listed one when there is one: its listing details are the richest)."""
        kind = ID_SOURCES.get(request.collector)
        if kind is None or kind in self.ids:
            return
        try:
            items = decode_page(request.path, list_key(request.collector, "page"), response, now).items
        except ApiError:
            return
        ident = next((i["id"] for i in items if valid_id(kind, i.get("id"))), None)
        if isinstance(ident, str):
            self.ids[kind] = ident

    def document(self, page_size: int, notes: tuple[str, ...] = ()) -> dict[str, Any]:
        """The capture file's content."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "exporter_version": __version__,
            "captured_at": datetime.fromtimestamp(self.clock.time(), UTC).isoformat(timespec="seconds"),
            "page_size": page_size,
            "requests": self.sent,
            "stopped": self.stopped,
            "notes": [*NOTES, *notes],
            "exchanges": self.exchanges,
        }


@dataclass(frozen=True, slots=True)
class Result:
    """What a capture did, for the terminal."""

    output: str
    requests: int
    answered: int  # requests that got an HTTP answer (of any status)
    stopped: str | None
    detail: str
    warnings: tuple[str, ...]


def render(document: Mapping[str, Any], forbidden: tuple[str | None, ...]) -> str:
    """The file's text; CaptureRefused if it holds a credential (nothing is written then)."""
    text = json.dumps(document, indent=1, ensure_ascii=True) + "\n"
    for secret in forbidden:
        if secret and (secret in text or secret.lower() in text.lower()):
            raise CaptureRefused("capture: the file would hold a credential; nothing was written")
    return text


def write_file(path: str, text: str) -> None:
    """Atomically: a reader never sees half a file (CaptureRefused when it cannot be written)."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
    except OSError as err:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise CaptureRefused(f"capture: cannot write {path}: {err.strerror or err}") from err


async def state_ledger(
    config: Config, env: Mapping[str, str], clock: Clock, stack: contextlib.AsyncExitStack
) -> tuple[list[float], SendJournal | None, str | None]:
    """The state file's sends of the last hour and a journal adding ours; or, when the file is
    missing or held by a running exporter, no record, no journal and why (None: no warning)."""
    path = config.state.path or default_state_path(env)
    if not await asyncio.to_thread(Path(path).exists):
        return [], None, None
    db = StateDB(path, clock.time)
    try:
        loaded = await db.start(None, clock.time())
    except StateError as err:
        await db.close()
        return [], None, f"{err}: its request ledger was not read; the API's RateLimit headers apply"
    stack.push_async_callback(db.close)

    async def journal(at: float) -> None:
        await db.record_sends([at])

    return loaded.ledger, journal, None


def budget_left(ledger: Ledger, config: Config, now: float) -> int:
    """Requests this capture may send: CaptureRefused when the hour's budget is spent."""
    used, per_hour = ledger.used(now), config.budget.requests_per_hour
    if used >= per_hour:
        raise CaptureRefused(
            f"capture: the hour's budget is spent ({used} of {per_hour} requests in the last hour, "
            "by the state file's request ledger); try again later"
        )
    return min(MAX_REQUESTS, per_hour - used)


async def capture_to_file(
    config: Config,
    output: str,
    env: Mapping[str, str],
    *,
    demo: bool = False,
    clock: Clock | None = None,
    salt: bytes | None = None,
) -> Result:
    """Capture from the configured account (or, with `demo`, the built-in simulator) into `output`."""
    clock = clock or SystemClock()
    warnings: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        journal: SendJournal | None = None
        sent: list[float] = []
        if demo:
            config = await _start_demo(config, clock, stack)
        else:
            sent, journal, warning = await state_ledger(config, env, clock, stack)
            warnings += [warning] if warning else []
        ledger = Ledger(config.budget.requests_per_hour, config.budget.requests_per_second, sent=sent)
        limit = budget_left(ledger, config, clock.time())
        api = config.api
        session = await stack.enter_async_context(
            make_session(api.account_sid or "", api.auth_token or "", api.timeout)
        )
        capturer = Capturer(
            HttpTransport(session, api.base_url),
            ledger,
            clock,
            Anonymiser(salt or secrets.token_bytes(32)),
            limit,
            journal,
        )
        await capturer.run(api.page_size)
    text = render(capturer.document(api.page_size), (api.account_sid, api.auth_token))
    write_file(output, text)
    return Result(
        output,
        capturer.sent,
        sum(e["status"] is not None for e in capturer.exchanges),
        capturer.stopped,
        capturer.detail,
        tuple(warnings),
    )


async def _start_demo(config: Config, clock: Clock, stack: contextlib.AsyncExitStack) -> Config:
    """The built-in simulator on a loopback port, for as long as `stack` lasts; the config that
    polls it (no state file: the simulator's budget is its own)."""
    from exporter.demo.wiring import start_demo

    demo = await start_demo(clock)
    stack.push_async_callback(demo.runner.cleanup)
    api = replace(config.api, base_url=demo.base_url, account_sid=demo.sid, auth_token=demo.token)
    # the simulator allows 100 requests a second (its RateLimit-Limit says so): no need to pace
    # a local capture at a real account's rate
    budget = replace(config.budget, requests_per_second=max(config.budget.requests_per_second, DEMO_PACE))
    return replace(config, api=api, budget=budget)
