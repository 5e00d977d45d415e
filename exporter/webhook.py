"""Webhook receivers: Generator Labs' signed events and HetrixTools' blacklist chunks.

Each request is checked (method, content type, size, signature or token, source network),
parsed, made durable (a group commit to the state file), and only then acknowledged; folding it
into the state happens off the request path, in the Applier. Every rejection gets its 4xx and a
counted reason; secrets and tokens are never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from exporter.clock import Clock
from exporter.config import WebhookConfig
from exporter.events import Event, HetrixMonitor, MalformedEvent, parse_event, parse_hetrix_chunk
from exporter.persistence import GroupCommit, Incoming, StateDB
from exporter.signature import SignatureError, verify
from exporter.state import StateStore
from exporter.telemetry import Telemetry

log = structlog.get_logger("exporter.webhook")

CHECKPOINT_EVERY = 1.0  # seconds between folding applied events into the stored state
RefreshFn = Callable[[str, str, float], bool]


class Applier:
    """Folds committed events into the store's webhook state, in sequence, off the request path."""

    def __init__(self, store: StateStore, db: StateDB | None, clock: Clock,
                 refresh: RefreshFn | None = None) -> None:
        self._store = store
        self._db = db
        self._clock = clock
        self._refresh = refresh
        self._queue: asyncio.Queue[tuple[int, Event | list[HetrixMonitor]]] = asyncio.Queue()
        self._logged_other: set[str] = set()
        self.applied = 0

    def submit(self, seq: int, item: Event | list[HetrixMonitor]) -> None:
        self._queue.put_nowait((seq, item))

    def apply(self, seq: int, item: Event | list[HetrixMonitor]) -> None:
        webhooks = self._store.webhooks
        if isinstance(item, Event):
            webhooks.apply(item)
            self._unknown(item)
        else:
            webhooks.apply_hetrix(item, self._clock.time())
        webhooks.last_seq = max(webhooks.last_seq, seq)
        self.applied += 1

    def _unknown(self, event: Event) -> None:
        if event.type == "other" and event.raw_type not in self._logged_other:
            if len(self._logged_other) < 100:
                self._logged_other.add(event.raw_type)
            log.warning("webhook.unknown_event_type", event_type=event.raw_type[:80])
        ident, kind = event.object_id, None
        collectors: tuple[str, ...] = ()
        if event.type.startswith("rbl."):
            kind, collectors = "host", ("rbl_hosts", "rbl_listings")
        elif event.type.startswith("cert."):
            kind, collectors = "monitor", ("cert_monitors",)
        if kind is None or ident is None or self._refresh is None:
            return
        if not any(ident in (s.items if (s := self._store.snapshot(c)) else {}) for c in collectors):
            self._refresh(kind, ident, self._clock.time())
        elif event.type.startswith("cert.expiration."):
            self._refresh(kind, ident, self._clock.time())  # fetch the renewed notAfter

    def replay(self, events: list[tuple[int, str, bytes]]) -> None:
        """At start-up: fold in events that were acknowledged but not yet checkpointed."""
        for seq, kind, body in events:
            try:
                item: Event | list[HetrixMonitor] = (
                    parse_event(body) if kind == "generatorlabs" else parse_hetrix_chunk(body))
            except MalformedEvent:  # was valid when accepted; cannot happen unless edited
                continue
            self.apply(seq, item)
        if events:
            self._store.webhooks_changed()

    async def run(self) -> None:
        last_checkpoint = self._clock.time()
        while True:
            seq, item = await self._queue.get()
            self.apply(seq, item)
            while not self._queue.empty():  # drain a burst, then tell the renderer once
                seq, item = self._queue.get_nowait()
                self.apply(seq, item)
            self._store.webhooks_changed()
            now = self._clock.time()
            if self._db is not None and now - last_checkpoint >= CHECKPOINT_EVERY:
                await self._db.checkpoint(self._store.webhooks, now)
                last_checkpoint = now

    async def flush(self) -> None:
        """Apply whatever is queued and checkpoint (shutdown)."""
        while not self._queue.empty():
            self.apply(*self._queue.get_nowait())
        if self._db is not None:
            await self._db.checkpoint(self._store.webhooks, self._clock.time())


@dataclass(slots=True)
class WebhookParts:
    config: WebhookConfig
    commit: GroupCommit
    applier: Applier
    telemetry: Telemetry
    clock: Clock


WEBHOOKS = web.AppKey("webhooks", WebhookParts)


def _reject(parts: WebhookParts, source: str, status: int, reason: str, text: str,
            **fields: Any) -> web.Response:
    parts.telemetry.webhook_rejected.labels(source, reason).inc()
    log.warning("webhook.rejected", source=source, reason=reason, status=status, **fields)
    return web.Response(status=status, text=text + "\n")


async def _body(request: web.Request, parts: WebhookParts, source: str) -> bytes | web.Response:
    """Method, content type and size checks shared by both receivers; the body or a rejection."""
    if request.method != "POST":
        return _reject(parts, source, 405, "method", "only POST is accepted", method=request.method)
    limit = parts.config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _reject(parts, source, 413, "too_large", f"body over {limit} bytes")
    chunks, size = [], 0
    async for piece in request.content.iter_any():  # read(n) may stop at what is buffered
        size += len(piece)
        if size > limit:
            return _reject(parts, source, 413, "too_large", f"body over {limit} bytes")
        chunks.append(piece)
    return b"".join(chunks)


async def generatorlabs(request: web.Request) -> web.Response:
    parts = request.app[WEBHOOKS]
    parts.telemetry.webhook_requests.labels("generatorlabs").inc()
    if not parts.config.enabled:
        return _reject(parts, "generatorlabs", 404, "disabled", "not found")
    if request.method == "POST" and request.content_type != "application/json":
        return _reject(parts, "generatorlabs", 415, "content_type", "Content-Type must be "
                       "application/json", content_type=request.content_type[:60])
    body = await _body(request, parts, "generatorlabs")
    if isinstance(body, web.Response):
        return body
    now = parts.clock.time()
    try:  # the signature is checked before anything of the body is parsed
        verified = verify(request.headers.get("X-Webhook-Signature"), body, parts.config.secrets,
                          now=now, tolerance=parts.config.tolerance)
    except SignatureError as err:
        return _reject(parts, "generatorlabs", 401, err.reason, "bad signature", detail=str(err))
    try:
        event = parse_event(body)
    except MalformedEvent as err:
        return _reject(parts, "generatorlabs", 400, "malformed", str(err), detail=str(err))
    keep = max(2 * parts.config.tolerance, 600.0)
    seq = await parts.commit.submit(Incoming(
        "generatorlabs", (f"sid:{event.sid}", f"sig:{verified.signature}"), body, now, now + keep))
    if seq is None:
        # Already applied once: not applied again. 200, so an honest sender's retry stops.
        parts.telemetry.webhook_rejected.labels("generatorlabs", "replay").inc()
        log.info("webhook.replay", event_sid=event.sid[:40])
        return web.Response(status=200, text="duplicate event, already applied\n")
    parts.applier.submit(seq, event)
    log.debug("webhook.accepted", event_type=event.type, event_sid=event.sid[:40], seq=seq)
    return web.Response(status=204)


Networks = list[ipaddress.IPv4Network | ipaddress.IPv6Network]


def _client_ip(request: web.Request, trusted: Networks) -> str | None:
    """The peer address; through X-Forwarded-For only when the peer is a trusted proxy (then the
    right-most address that is not itself a trusted proxy)."""
    peer = request.remote
    if peer is None or not _in(peer, trusted):
        return peer
    chain = [p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",") if p.strip()]
    for address in reversed(chain):
        if not _in(address, trusted):
            return address
    return peer


def _in(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


async def hetrixtools(request: web.Request) -> web.Response:
    parts = request.app[WEBHOOKS]
    parts.telemetry.webhook_requests.labels("hetrixtools").inc()
    configured = parts.config.hetrixtools_token
    if configured is None:
        return _reject(parts, "hetrixtools", 404, "disabled", "not found")
    if not hmac.compare_digest(request.match_info["token"].encode(), configured.encode()):
        return _reject(parts, "hetrixtools", 401, "bad_token", "bad token")
    if parts.config.hetrixtools_allowed_cidrs:
        trusted = [ipaddress.ip_network(n, strict=False) for n in parts.config.trusted_proxies]
        allowed = [ipaddress.ip_network(n, strict=False) for n in parts.config.hetrixtools_allowed_cidrs]
        client = _client_ip(request, trusted)
        if client is None or not _in(client, allowed):
            return _reject(parts, "hetrixtools", 403, "source", "source address not allowed",
                           client=client)
    body = await _body(request, parts, "hetrixtools")
    if isinstance(body, web.Response):
        return body
    try:
        monitors = parse_hetrix_chunk(body)
    except MalformedEvent as err:
        return _reject(parts, "hetrixtools", 400, "malformed", str(err), detail=str(err))
    now = parts.clock.time()
    seq = await parts.commit.submit(Incoming("hetrixtools", (), body, now, now))
    assert seq is not None  # noqa: S101 - chunks carry no replay keys: always new
    parts.applier.submit(seq, monitors)
    log.debug("webhook.accepted", source="hetrixtools", monitors=len(monitors), seq=seq)
    return web.Response(status=200, text=f"accepted {len(monitors)} monitors\n")


def add_routes(app: web.Application, parts: WebhookParts) -> None:
    app[WEBHOOKS] = parts
    app.router.add_route("*", "/webhooks/generatorlabs", generatorlabs)
    app.router.add_route("*", "/webhooks/hetrixtools/{token}", hetrixtools)
