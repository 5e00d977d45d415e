"""The only module that talks to the Generator Labs API: one GET, its bytes, and errors (I/O).

It never retries (the scheduler is the one retry owner) and never parses more than it must:
decoding is `exporter.api.envelope`'s job, which is pure. It never follows a redirect either: every
request the ledger counts is exactly one request on the wire, and the Authorization header never
travels to another address. A 3xx comes back as a response, which `envelope` turns into a failed
poll with reason `redirect`.

The whole body is read, however it arrives (over TLS, in records of at most 16 KB), up to
MAX_BODY; a larger body is an error as soon as the cap is passed, never buffered whole.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping

import aiohttp

from exporter import __version__
from exporter.api.endpoints import route_of
from exporter.api.envelope import RawResponse
from exporter.api.fields import loggable
from exporter.errors import ApiError

USER_AGENT = f"generatorlabs-exporter/{__version__}"
MAX_BODY = 64 * 1024 * 1024  # a page of 1,000 hosts is about 420 KB; refuse absurd bodies
READ_CHUNK = 64 * 1024
# The scheduler sends one request at a time; a few connections cover a targeted refresh and a
# slow close. The keep-alive bound keeps idle connections (and file descriptors) from piling up.
CONNECTION_LIMIT = 4
KEEPALIVE_SECONDS = 15.0  # aiohttp's default, stated on purpose


def make_session(account_sid: str, auth_token: str, timeout: float) -> aiohttp.ClientSession:
    """The process's one client session: Basic auth (account SID / auth token), a timeout for
    the whole request including its body, and a small, bounded connection pool."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=CONNECTION_LIMIT, limit_per_host=CONNECTION_LIMIT, keepalive_timeout=KEEPALIVE_SECONDS
        ),
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Authorization": basic_auth(account_sid, auth_token),
        },
        raise_for_status=False,
    )


def basic_auth(account_sid: str, auth_token: str) -> str:
    """HTTP Basic: the account SID is the user, the auth token the password (API reference:
    `basicAuth` on every endpoint)."""
    return "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n} bytes"


async def read_body(response: aiohttp.ClientResponse, route: str, limit: int) -> bytes:
    """Every byte of the body, however many pieces it arrives in; ApiError once past `limit`."""
    too_large = ApiError(route, response.status, f"body larger than {_size(limit)}", "decode")
    if response.content_length is not None and response.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


class HttpTransport:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/") + "/"

    async def get(self, path: str, params: Mapping[str, str]) -> RawResponse:
        route = route_of(path)
        try:
            async with self._session.get(
                self._base + path, params=dict(params), allow_redirects=False
            ) as response:
                body = await read_body(response, route, MAX_BODY)
                return RawResponse(response.status, dict(response.headers), body)
        except TimeoutError as err:
            raise ApiError(route, None, "no answer before the timeout", "timeout") from err
        except asyncio.CancelledError:
            raise
        except aiohttp.ClientError as err:
            # the message names the host and the error class, never the credentials
            raise ApiError(route, None, loggable(f"{type(err).__name__}: {err}"), "network") from err
