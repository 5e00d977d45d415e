"""The live web configuration (I/O): the aiohttp middleware that enforces the rate limit, TLS
client names, bcrypt basic auth and response headers, the TLS context it loads certificates into,
and the watcher that re-reads --web.config.file when its content changes. Parsing the file is
exporter.config.webconfig.

The rate limit (`rate_limit` in the file) is one token bucket for the exporter's own endpoints on
the listener, as in the toolkit: past it, a request is answered 429 before its credentials are
checked. Webhook paths are outside it, as they are outside basic auth: they authenticate by their
own signature, and a 429 would drop an event the sender may not send again."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import bcrypt
import structlog
from aiohttp import web

from exporter.config.webconfig import (
    BCRYPT_MAX_PASSWORD,
    RateLimit,
    TLSConfig,
    WebConfig,
    configure_tls,
    load,
)
from exporter.errors import ConfigError

log = structlog.get_logger("exporter.web.guard")
WATCH_EVERY = 1.0  # seconds between checks of the file (a change applies after two that agree)
WEBHOOK_PREFIX = "/webhooks/"  # paths that authenticate by their own signature or token


def _san(value: str) -> str:
    """A subjectAltName value as the toolkit compares it: IP addresses in their short form
    (Python writes an IPv6 one out in full, Go shortens it), the rest as written."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return value


def _client_sans(request: web.Request) -> set[str]:
    """The subjectAltName values of the client's verified certificate (none without one)."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport else None
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    return {_san(value) for kind, value in (cert or {}).get("subjectAltName", ())}


class TokenBucket:
    """`burst` requests at once, refilled at one per `interval` seconds; starts full (Go's
    rate.Limiter, which the toolkit uses)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self.limit = limit
        self._clock = clock
        self._tokens = float(limit.burst)
        self._at = clock()

    def allow(self) -> bool:
        """Take a token if there is one."""
        now = self._clock()
        elapsed = max(0.0, now - self._at)
        self._tokens = min(float(self.limit.burst), self._tokens + elapsed / self.limit.interval)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class WebGuard:
    """The live web configuration and the aiohttp middleware that enforces it."""

    def __init__(self, path: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        """`clock` (seconds, monotonic) refills the rate limit's bucket."""
        self.path = path
        self._clock = clock
        self._loaded = self._fingerprint()  # before reading: a change meanwhile is seen later
        self._pending: bytes | None = None
        self.config = load(path) if path else WebConfig()
        self._verified: set[str] = set()  # sha256 of user:password pairs bcrypt accepted
        self.context: ssl.SSLContext | None = None
        if self.config.tls is not None and path:
            self.context = configure_tls(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), self.config.tls, path)
        self._bucket = self._new_bucket(self.config.rate_limit)

    def _new_bucket(self, limit: RateLimit | None) -> TokenBucket | None:
        return TokenBucket(limit, self._clock) if limit is not None else None

    def _fingerprint(self) -> bytes | None:
        """A hash of the file's content (None when it cannot be read). Content, not the
        modification time: a rewrite within the same timestamp tick is still seen."""
        try:
            return hashlib.sha256(Path(self.path).read_bytes()).digest() if self.path else None
        except OSError:
            return None

    def reload(self) -> list[str]:
        """Re-read the file; a bad one keeps the old settings. Returns the problems."""
        if not self.path:
            return []
        self._loaded, self._pending = self._fingerprint(), None
        try:
            config = load(self.path)
            if config.tls is not None and self.context is not None:
                configure_tls(self.context, config.tls, self.path)  # new handshakes use new certs
        except ConfigError as err:
            log.error("webconfig.reload_failed", problems=err.problems)
            return err.problems
        if config.tls is not None and self.context is None:
            log.warning("webconfig.restart_needed", reason="TLS was off at start")
        elif _sticky_tls_change(self.config.tls, config.tls):
            log.warning(
                "webconfig.restart_needed",
                reason="removed cipher_suites or curve_preferences stay until a restart",
            )
        if config.rate_limit != self.config.rate_limit:
            self._bucket = self._new_bucket(config.rate_limit)
        self.config = config
        self._verified.clear()
        log.info("webconfig.reloaded", path=self.path)
        return []

    def check(self) -> None:
        """Reload when the file's content changed and then stayed the same for one more check.
        A file rewritten in place is truncated before it is written: loading it in between
        would read an empty file, which means "no basic auth", and open the endpoints."""
        current = self._fingerprint()
        if current == self._loaded:
            self._pending = None
        elif current != self._pending:
            self._pending = current  # changed: wait one check for the writer to finish
        else:
            self.reload()

    async def watch(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        """Background task (supervised): check the file once a second on the given clock."""
        while True:
            await sleep(WATCH_EVERY)
            self.check()

    async def _authorised(self, request: web.Request) -> bool:
        """No users configured, or Basic credentials bcrypt accepts (remembered until a reload)."""
        users = self.config.users
        if not users:
            return True
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            return False
        user, colon, password = decoded.partition(":")
        secret = password.encode()
        if not colon or len(secret) > BCRYPT_MAX_PASSWORD:
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).hexdigest()
        if key in self._verified:
            return True
        hashed = users.get(user)
        if hashed is None:
            return False
        try:  # bcrypt is slow on purpose: keep it off the event loop
            if not await asyncio.to_thread(bcrypt.checkpw, secret, hashed):
                return False
        except ValueError:  # bcrypt refuses the input: not these credentials
            return False
        self._verified.add(key)
        return True

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """429 past the rate limit, 403 for a client certificate whose names are not allowed, 401
        without the basic auth credentials (webhooks authenticate by their own signature, and are
        not rate limited), the headers on every answer."""
        tls = self.config.tls
        webhook = request.path.startswith(WEBHOOK_PREFIX)
        if (
            tls is not None
            and tls.client_allowed_sans
            and not (_client_sans(request) & {_san(name) for name in tls.client_allowed_sans})
        ):
            return web.Response(status=403, text="client certificate not allowed\n")
        response: web.StreamResponse
        if not webhook and self._bucket is not None and not self._bucket.allow():
            response = web.Response(status=429, text="Too Many Requests\n")
        elif not webhook and not await self._authorised(request):
            response = web.Response(
                status=401,
                text="Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="generatorlabs-exporter"'},
            )
        else:
            response = await handler(request)
        for name, value in self.config.headers.items():
            response.headers[name] = value
        return response


def _sticky_tls_change(old: TLSConfig | None, new: TLSConfig | None) -> bool:
    """A reload cannot take cipher suites or a curve back out of a live TLS context (only put
    others in): True when the new settings drop some the old ones set."""
    if old is None or new is None:
        return False
    dropped_suites = bool(old.cipher_suites) and not new.cipher_suites
    dropped_curve = bool(old.curve_preferences) and not new.curve_preferences
    return dropped_suites or dropped_curve
