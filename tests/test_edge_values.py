"""Values tests rarely try, in the places an operator or a client hands them to us: NaN and
Infinity, lone surrogates, wrong types, absurd sizes and non-ASCII digits in config keys, web-config
lists and the status page's `?page=`. Each is refused by name, or read as the documented default,
and never crashes or echoes more than a short, printable repr of the value.

I/O: the status page's real aiohttp app over loopback (pytest-aiohttp's client)."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.config.parse import parse
from exporter.config.webconfig import parse as parse_web_config
from exporter.errors import ConfigError
from tests.helpers.metrics import NOW
from tests.helpers.status import host, snapshots, status_app, store_of

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]

SURROGATE = "\ud800"
HUGE = "x" * 1_000_000
ODD_VALUES: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    SURROGATE,
    "listed" + SURROGATE,
    ["listed"],
    {"listed": True},
    True,
    0,
    10**400,
    HUGE,
    "",
]


def _problems(err: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return list(err.value.problems)


def _printable_and_short(problem: str) -> None:
    """A problem can be logged and printed on any terminal: encodable, one line, and bounded
    whatever the value's size (a list of the names allowed may make it a few hundred characters)."""
    problem.encode("utf-8")  # a lone surrogate in a message would fail here (and in the log)
    assert "\n" not in problem
    assert len(problem) < 1000, problem[:200]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_exposition_per_host_refuses_every_odd_value_by_name(value: object) -> None:
    with pytest.raises(ConfigError) as err:
        parse({"exposition": {"per_host": value}})
    (problem,) = _problems(err)
    assert problem.startswith("exposition.per_host: must be one of all, listed, got ")
    _printable_and_short(problem)


@pytest.mark.parametrize("key", ["cipher_suites", "curve_preferences"])
@pytest.mark.parametrize(
    "value",
    [
        [SURROGATE],
        ["TLS_AES_128_GCM_SHA256" + SURROGATE],
        [HUGE],
        ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"] * 100_000 + [SURROGATE],
        [math.nan],
        [None],
        "X25519",
        {"a": 1},
        math.inf,
    ],
    ids=[
        "surrogate",
        "name+surrogate",
        "1MB-name",
        "100k-entries",
        "nan",
        "null",
        "string",
        "mapping",
        "inf",
    ],
)
def test_tls_name_lists_refuse_odd_values_by_name(key: str, value: object, tmp_path: Path) -> None:
    raw = {"tls_server_config": {"cert_file": "c.pem", "key_file": "k.pem", key: value}}
    with pytest.raises(ConfigError) as err:
        parse_web_config(raw, "web.yml", tmp_path)
    named = [p for p in _problems(err) if p.startswith(f"tls_server_config.{key}: ")]
    assert named, _problems(err)
    for problem in _problems(err):
        _printable_and_short(problem)


@pytest.mark.parametrize(
    "query",
    [
        "%D9%A3",
        "%EF%BC%93",
        "1%ED%A0%80",
        "%F0%9F%98%80",
        "1%00",
        "NaN",
        "Infinity",
        "1" * 5000,
        "+2",
        "%202",
    ],
    ids=[
        "arabic-3",
        "fullwidth-3",
        "1+surrogate-bytes",
        "emoji",
        "1+nul",
        "nan",
        "inf",
        "5000-digits",
        "+2",
        "sp2",
    ],
)
async def test_page_query_reads_odd_values_as_a_page_never_an_error(
    aiohttp_client: AiohttpClient, query: str
) -> None:
    """Only ASCII digits choose a page: anything else is page 1, a number past the end the last
    page; the page and its JSON twin answer 200 either way."""
    hosts = [host(f"HT{i:04d}", listed=True, rbls=("PSBL",), first=NOW - 100 + i) for i in range(120)]
    client = await aiohttp_client(status_app(store_of(snapshots(hosts))))
    for path in ("/", "/api/v1/status"):
        response = await client.get(f"{path}?page={query}")
        assert response.status == 200, (path, query)
    doc = json.loads(await (await client.get(f"/api/v1/status?page={query}")).text())
    listed = doc["listed"]
    expected = listed["pages"] if query == "1" * 5000 else 1
    assert listed["page"] == expected
