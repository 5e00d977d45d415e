"""HTTP I/O: the webhook receivers (Generator Labs' signed events, HetrixTools' blacklist chunks)
and the admin routes that forget a webhook-only object.

Each request is checked (method, content type, size, body encoding, signature or token, source
network), parsed and validated, made durable (a group commit to the state file), and only then
acknowledged; folding it into the state happens off the request path, in the Applier. Every
rejection gets its 4xx and a counted reason, never a 5xx; unusable fields are also counted as
parse warnings; secrets and tokens are never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from exporter.api.fields import loggable
from exporter.clock import Clock
from exporter.config.model import (
    FORGET_AGENT_PATH,
    FORGET_MONITOR_PATH,
    GENERATORLABS_WEBHOOK_PATH,
    HETRIXTOOLS_WEBHOOK_PATH,
    WebhookConfig,
)
from exporter.state.events import AGENT, FORGET, GENERATORLABS, HETRIXTOOLS, HETRIXTOOLS_MONITOR
from exporter.state.sqlite import GroupCommit, Incoming
from exporter.webhooks.applier import Applier, WebhookCounts
from exporter.webhooks.payloads import (
    EVENT_OBJECT,
    HETRIX_OBJECT,
    Forget,
    MalformedEvent,
    check_hetrix_chunk,
    parse_event,
)
from exporter.webhooks.signature import SIGNATURE_REASONS, SignatureError, verify

log = structlog.get_logger("exporter.webhooks.receivers")
# Event-loop seconds to receive a whole body once its head is in: HetrixTools' 512 KB chunks take
# well under a second; a body trickled in slower is answered 408 and its connection closed, so
# slow senders cannot fill the server's connection cap.
BODY_TIMEOUT = 30.0
DRAIN_TIMEOUT = 2.0  # event-loop seconds to read and drop the body of a request refused before it
# Webhook bodies being received at once, at most. Both listeners share one connection cap
# (exporter.web.server); without this, senders trickling bodies could hold every connection for
# BODY_TIMEOUT and leave none for /metrics. Past it a webhook gets 503 (the senders retry).
MAX_BODIES_IN_FLIGHT = 64
RETRY_AFTER_BUSY = 5  # seconds a sender refused for MAX_BODIES_IN_FLIGHT is asked to wait
# Seconds an event's SID and signature are kept as replay keys: twice the signature tolerance
# (a signature is accepted that far either side of now), and at least this long.
MIN_REPLAY_MEMORY = 600.0

# The bounded `reason` label values of generatorlabs_webhook_rejected_total, named once. Every
# rejection below uses one of these; tests/test_webhook_hostile.py checks that the receivers never
# count another, and the counters exist at 0 from the start (so `increase()` sees the first one).
DISABLED = "disabled"  # the receiver is not configured: 404
METHOD = "method"  # not POST: 405
CONTENT_TYPE = "content_type"  # not application/json: 415
TOO_LARGE = "too_large"  # over webhooks.max_body_bytes: 413
BUSY = "busy"  # MAX_BODIES_IN_FLIGHT reached: 503
TIMEOUT = "timeout"  # body not received within BODY_TIMEOUT: 408
BAD_ENCODING = "bad_encoding"  # Content-Encoding or chunked framing that does not decode: 400
MALFORMED = "malformed"  # the body is not a usable event or chunk: 400
REPLAY = "replay"  # an event already applied: 200, not applied again
BAD_TOKEN = "bad_token"  # noqa: S105 - a reason, not a secret: the URL token does not match (401)
SOURCE = "source"  # HetrixTools sender outside hetrixtools_allowed_cidrs: 403
# exporter.webhooks.signature.SignatureError's reasons: 401
REJECTIONS: dict[str, tuple[str, ...]] = {
    GENERATORLABS: (
        DISABLED,
        METHOD,
        CONTENT_TYPE,
        TOO_LARGE,
        BUSY,
        TIMEOUT,
        BAD_ENCODING,
        *SIGNATURE_REASONS,
        MALFORMED,
        REPLAY,
    ),
    HETRIXTOOLS: (DISABLED, METHOD, TOO_LARGE, BUSY, TIMEOUT, BAD_ENCODING, BAD_TOKEN, SOURCE, MALFORMED),
}


@dataclass(slots=True)
class WebhookParts:
    config: WebhookConfig
    commit: GroupCommit
    applier: Applier
    telemetry: WebhookCounts
    clock: Clock
    bodies_in_flight: int = 0  # see MAX_BODIES_IN_FLIGHT


WEBHOOKS = web.AppKey("webhooks", WebhookParts)
WEBHOOK_ADMIN = web.AppKey("webhook_admin", WebhookParts)


def _reject(
    parts: WebhookParts, source: str, status: int, reason: str, text: str, **fields: Any
) -> web.Response:
    parts.telemetry.webhook_rejection(source, reason)
    log.warning(
        "webhook.rejected",
        source=source,
        reason=reason,
        status=status,
        **{k: loggable(v) if isinstance(v, str) else v for k, v in fields.items()},
    )
    return web.Response(status=status, text=loggable(text) + "\n")


async def _refuse(
    request: web.Request, parts: WebhookParts, source: str, status: int, reason: str, text: str, **fields: Any
) -> web.Response:
    """A rejection before the body was read. The body is read and dropped first (at most
    max_body_bytes within DRAIN_TIMEOUT, as aiohttp would after the answer): a body that cannot
    be decoded would otherwise raise inside aiohttp after our answer. The connection is closed
    when the body is too large, too slow or cannot be decoded."""
    response = _reject(parts, source, status, reason, text, **fields)
    limit = parts.config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        response.force_close()
        return response
    size = 0
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT):
            async for piece in request.content.iter_any():
                size += len(piece)
                if size > limit:
                    response.force_close()
                    break
    except (web.RequestPayloadError, TimeoutError):
        _ended(request, response)
    return response


def _ended(request: web.Request, response: web.StreamResponse) -> None:
    """After a body failed to decode: the stream keeps raising, so mark it ended (or aiohttp
    reads it again after our answer and logs an "Unhandled exception"), and close the
    connection. The parser has stopped at the error, so no more data is fed to the stream."""
    request.content.feed_eof()
    response.force_close()


def _malformed(parts: WebhookParts, source: str, obj: str, err: MalformedEvent) -> web.Response:
    """400 for a body whose fields are unusable: counted as a rejection and a parse warning."""
    parts.telemetry.parse_warning(obj, err.field)
    return _reject(parts, source, 400, MALFORMED, str(err), detail=str(err), field=err.field)


async def _body(request: web.Request, parts: WebhookParts, source: str) -> bytes | web.Response:
    """Method, content type, size and encoding checks shared by both receivers; the body (after
    aiohttp has undone any Content-Encoding) or a rejection."""
    if request.method != "POST":
        return await _refuse(
            request, parts, source, 405, METHOD, "only POST is accepted", method=request.method
        )
    limit = parts.config.max_body_bytes
    too_large = f"body over {limit} bytes"
    if request.content_length is not None and request.content_length > limit:
        return await _refuse(request, parts, source, 413, TOO_LARGE, too_large)
    if parts.bodies_in_flight >= MAX_BODIES_IN_FLIGHT:
        response = _reject(parts, source, 503, BUSY, "too many webhook bodies in flight, retry later")
        response.headers["Retry-After"] = str(RETRY_AFTER_BUSY)
        response.force_close()
        return response
    parts.bodies_in_flight += 1
    try:
        return await _read_body(request, parts, source, limit, too_large)
    finally:
        parts.bodies_in_flight -= 1


async def _read_body(
    request: web.Request, parts: WebhookParts, source: str, limit: int, too_large: str
) -> bytes | web.Response:
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            async for piece in request.content.iter_any():  # read(n) may stop at what is buffered
                size += len(piece)
                if size > limit:
                    response = _reject(parts, source, 413, TOO_LARGE, too_large)
                    response.force_close()
                    return response
                chunks.append(piece)
    except TimeoutError:  # a body trickled in slowly must not hold a connection for ever
        response = _reject(parts, source, 408, TIMEOUT, f"body not received within {BODY_TIMEOUT:g}s")
        response.force_close()
        return response
    except web.RequestPayloadError as err:  # e.g. `Content-Encoding: gzip` on a body that is not
        response = _reject(
            parts,
            source,
            400,
            BAD_ENCODING,
            "body could not be decoded (Content-Encoding or chunked framing)",
            detail=str(err).strip()[:120],
            content_encoding=request.headers.get("Content-Encoding", "")[:40],
        )
        _ended(request, response)
        return response
    return b"".join(chunks)


async def generatorlabs(request: web.Request) -> web.Response:
    parts = request.app[WEBHOOKS]
    parts.telemetry.webhook_request(GENERATORLABS)
    if not parts.config.enabled:
        return await _refuse(request, parts, GENERATORLABS, 404, DISABLED, "not found")
    if request.method == "POST" and request.content_type != "application/json":
        return await _refuse(
            request,
            parts,
            GENERATORLABS,
            415,
            CONTENT_TYPE,
            "Content-Type must be application/json",
            content_type=request.content_type[:60],
        )
    body = await _body(request, parts, GENERATORLABS)
    if isinstance(body, web.Response):
        return body
    now = parts.clock.time()
    try:  # the signature is checked before anything of the body is parsed
        verified = verify(
            request.headers.get("X-Webhook-Signature"),
            body,
            parts.config.secrets,
            now=now,
            tolerance=parts.config.tolerance,
        )
    except SignatureError as err:
        return _reject(parts, GENERATORLABS, 401, err.reason, "bad signature", detail=str(err))
    try:
        event = parse_event(body)
    except MalformedEvent as err:  # signed, but unusable: never stored
        return _malformed(parts, GENERATORLABS, EVENT_OBJECT, err)
    keep = max(2 * parts.config.tolerance, MIN_REPLAY_MEMORY)
    seq = await parts.commit.submit(
        Incoming(GENERATORLABS, (f"sid:{event.sid}", f"sig:{verified.signature}"), body, now, now + keep)
    )
    if seq is None:
        # Already applied once: not applied again. 200, so an honest sender's retry stops.
        parts.telemetry.webhook_rejection(GENERATORLABS, REPLAY)
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
    parts.telemetry.webhook_request(HETRIXTOOLS)
    configured = parts.config.hetrixtools_token
    if configured is None:
        return await _refuse(request, parts, HETRIXTOOLS, 404, DISABLED, "not found")
    given = request.match_info["token"].encode("utf-8", "surrogatepass")  # any text compares
    if not hmac.compare_digest(given, configured.encode("utf-8", "surrogatepass")):
        return await _refuse(request, parts, HETRIXTOOLS, 401, BAD_TOKEN, "bad token")
    if parts.config.hetrixtools_allowed_cidrs:
        trusted = [ipaddress.ip_network(n, strict=False) for n in parts.config.trusted_proxies]
        allowed = [ipaddress.ip_network(n, strict=False) for n in parts.config.hetrixtools_allowed_cidrs]
        client = _client_ip(request, trusted)
        if client is None or not _in(client, allowed):
            return await _refuse(
                request, parts, HETRIXTOOLS, 403, SOURCE, "source address not allowed", client=client
            )
    body = await _body(request, parts, HETRIXTOOLS)
    if isinstance(body, web.Response):
        return body
    try:
        chunk = check_hetrix_chunk(body)
    except MalformedEvent as err:  # not a JSON array
        return _reject(parts, HETRIXTOOLS, 400, MALFORMED, str(err), detail=str(err))
    for skipped in chunk.skipped:  # each bad item costs only itself
        parts.telemetry.parse_warning(HETRIX_OBJECT, skipped.field)
    if chunk.unusable:  # items, and none usable: a format problem the operator must see
        return _reject(parts, HETRIXTOOLS, 400, MALFORMED, chunk.summary(), detail=chunk.summary())
    if chunk.skipped:
        log.warning("webhook.items_skipped", source=HETRIXTOOLS, detail=loggable(chunk.summary()))
    now = parts.clock.time()
    seq = await parts.commit.submit(Incoming(HETRIXTOOLS, (), body, now, now))
    assert seq is not None  # noqa: S101 - chunks carry no replay keys: always new
    parts.applier.submit(seq, chunk.monitors)
    log.debug(
        "webhook.accepted",
        source=HETRIXTOOLS,
        monitors=len(chunk.monitors),
        skipped=len(chunk.skipped),
        seq=seq,
    )
    # 200 even with skipped items: the sender must not retry a chunk that will never get better
    return web.Response(
        status=200, text=f"accepted {len(chunk.monitors)} monitors, skipped {len(chunk.skipped)}\n"
    )


def add_routes(app: web.Application, parts: WebhookParts) -> None:
    """Both receivers on `app`; every (source, reason) of REJECTIONS is counted from 0 on."""
    app[WEBHOOKS] = parts
    parts.telemetry.expect_rejections(REJECTIONS)
    app.router.add_route("*", GENERATORLABS_WEBHOOK_PATH, generatorlabs)
    app.router.add_route("*", HETRIXTOOLS_WEBHOOK_PATH, hetrixtools)


async def _forget(request: web.Request, kind: str, ident: str) -> web.Response:
    """204 once the request to forget is durable (it is applied in order with the webhooks
    before it), 404 when the object is not known."""
    parts = request.app[WEBHOOK_ADMIN]
    if not parts.applier.knows(kind, ident):
        return web.Response(status=404, text=f"no such {kind.replace('_', ' ')}\n")
    item = Forget(kind, ident)
    now = parts.clock.time()
    seq = await parts.commit.submit(Incoming(FORGET, (), item.to_json(), now, now))
    assert seq is not None  # noqa: S101 - forget records carry no replay keys: always new
    parts.applier.submit(seq, item)
    log.info("webhook.forget_requested", kind=kind, id=loggable(ident, 100), seq=seq)
    return web.Response(status=204)


async def forget_hetrixtools_monitor(request: web.Request) -> web.Response:
    return await _forget(request, HETRIXTOOLS_MONITOR, request.match_info["monitor"])


async def forget_agent(request: web.Request) -> web.Response:
    return await _forget(request, AGENT, request.match_info["agent_id"])


def add_admin_routes(app: web.Application, parts: WebhookParts) -> None:
    """`DELETE /-/webhooks/hetrixtools/monitors/{monitor}` and `DELETE /-/webhooks/agents/{agent_id}`:
    forget one webhook-only object now (counted as reason "request"). They belong on the main
    listener, behind its web config, even when webhooks have a listener of their own."""
    app[WEBHOOK_ADMIN] = parts
    app.router.add_delete(FORGET_MONITOR_PATH, forget_hetrixtools_monitor)
    app.router.add_delete(FORGET_AGENT_PATH, forget_agent)
