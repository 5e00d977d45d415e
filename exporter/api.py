"""The only module that talks to the Generator Labs API: one GET, its bytes, and errors.

It never retries (the scheduler is the one retry owner) and never parses more than it must:
decoding is `exporter.envelope`'s job, which is pure.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping

import aiohttp

from exporter import __version__
from exporter.envelope import RawResponse
from exporter.errors import ApiError

USER_AGENT = f"generatorlabs-exporter/{__version__}"
MAX_BODY = 64 * 1024 * 1024  # a page of 100 objects is a few tens of KB; refuse absurd bodies


def make_session(account_sid: str, auth_token: str, timeout: float) -> aiohttp.ClientSession:
    """The process's one client session: Basic auth (account SID / auth token) and a timeout."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json",
                 "Authorization": basic_auth(account_sid, auth_token)},
        raise_for_status=False,
    )


def basic_auth(account_sid: str, auth_token: str) -> str:
    """HTTP Basic: the account SID is the user, the auth token the password (evidence §2)."""
    return "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()


class HttpTransport:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/") + "/"

    async def get(self, path: str, params: Mapping[str, str]) -> RawResponse:
        route = path.removesuffix(".json")
        try:
            async with self._session.get(self._base + path, params=dict(params)) as response:
                body = await response.content.read(MAX_BODY + 1)
                if len(body) > MAX_BODY:
                    raise ApiError(route, response.status, "body larger than 64 MiB", "decode")
                return RawResponse(response.status, dict(response.headers), body)
        except TimeoutError as err:
            raise ApiError(route, None, "no answer before the timeout", "timeout") from err
        except asyncio.CancelledError:
            raise
        except aiohttp.ClientError as err:
            # the message names the host and the error class, never the credentials
            raise ApiError(route, None, f"{type(err).__name__}: {err}", "network") from err
