"""--web.config.file (exporter-toolkit format) against real clients: every key of the toolkit's
format (TLS with files or inline PEM, client certificates, versions, cipher suites and their
order, the curve, bcrypt basic auth, headers, HTTP/2, the rate limit), or its refusal naming the
key; reload on change; webhooks stay behind their own authentication, optionally on a separate
listener.

I/O: real exporter processes (tests/helpers/processes.py), HTTP(S) over loopback, files under
tmp_path and an openssl-made PKI."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
import yaml
from aiohttp import web

from exporter.api.fields import shorten
from exporter.cli import main
from exporter.config.webconfig import RateLimit, load, parse
from exporter.errors import ConfigError
from exporter.web.guard import WebGuard
from exporter.webhooks.signature import sign
from tests.helpers.config import hashed, make_pki, write_web_config
from tests.helpers.processes import Exporter, free_port, need_binary, start_exporter, terminate, wait_for

SECRET = "whsec_webconfig_secret"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    return make_pki(need_binary("openssl"), tmp_path_factory.mktemp("pki"))


def start(tmp: Path, web_config: dict[str, Any], *extra: str) -> Exporter:
    """The demo exporter with webhooks on and `web_config` as its web config file. Not awaited:
    /-/ready may need TLS or a password, so each test waits for an answer it can get."""
    (tmp / "web.yml").write_text(yaml.safe_dump(web_config))
    (tmp / "config.yaml").write_text(
        yaml.safe_dump(
            {"webhooks": {"enabled": True, "secrets": [SECRET]}, "state": {"path": str(tmp / "s.sqlite")}}
        )
    )
    args = ["--demo", "--config.file", str(tmp / "config.yaml"), "--web.config.file", str(tmp / "web.yml")]
    return start_exporter(tmp, *args, *extra, ready=False)


def mutual_tls(pki: Path) -> dict[str, Any]:
    """tls_server_config for TLS 1.2+ that requires a client certificate named prometheus.example."""
    return {
        "cert_file": str(pki / "server.crt"),
        "key_file": str(pki / "server.key"),
        "client_auth_type": "RequireAndVerifyClientCert",
        "client_ca_file": str(pki / "ca.crt"),
        "client_allowed_sans": ["prometheus.example"],
        "min_version": "TLS12",
    }


def request(
    url: str,
    *,
    context: ssl.SSLContext | None = None,
    auth: tuple[str, str] | None = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str]]:
    h = dict(headers or {})
    if auth:
        h["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    req = urllib.request.Request(url, data=data, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


def client_context(pki: Path, with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if with_cert:
        context.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    return context


@pytest.fixture
def tls_basic(pki: Path, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    exporter = start(
        tmp_path,
        {
            "tls_server_config": {"cert_file": str(pki / "server.crt"), "key_file": str(pki / "server.key")},
            "basic_auth_users": {"prometheus": hashed("right-password")},
            "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
        },
    )
    try:
        wait_for(
            lambda: (
                request(
                    f"https://127.0.0.1:{exporter.port}/-/healthy",
                    context=client_context(pki),
                    auth=("prometheus", "right-password"),
                )[0]
                == 200
            ),
            "TLS to answer",
        )
        yield exporter.port, tmp_path
    finally:
        terminate(exporter, clean=False)


def test_tls_and_basic_auth(pki: Path, tls_basic: tuple[int, Path]) -> None:
    port, _ = tls_basic
    url, ctx = f"https://127.0.0.1:{port}/metrics", client_context(pki)
    status, headers = request(url, context=ctx, auth=("prometheus", "right-password"))
    assert status == 200 and headers["X-Frame-Options"] == "deny"
    assert request(url, context=ctx, auth=("prometheus", "wrong"))[0] == 401
    assert request(url, context=ctx, auth=("nobody", "right-password"))[0] == 401
    status, headers = request(url, context=ctx)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_webhooks_need_their_signature_not_basic_auth(pki: Path, tls_basic: tuple[int, Path]) -> None:
    port, _ = tls_basic
    body = json.dumps(
        {
            "event_sid": "TA" + "7" * 32,
            "event_type": "billing.renewal.success",
            "event_date": "2026-01-01T00:00:00Z",
        }
    ).encode()
    status, _ = request(
        f"https://127.0.0.1:{port}/webhooks/generatorlabs",
        context=client_context(pki),
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Webhook-Signature": sign(body, SECRET, int(time.time())),
        },
    )
    assert status == 204


def test_the_file_is_re_read_when_it_changes(pki: Path, tls_basic: tuple[int, Path]) -> None:
    port, tmp = tls_basic
    config = yaml.safe_load((tmp / "web.yml").read_text())
    config["basic_auth_users"] = {"prometheus": hashed("rotated-password")}
    (tmp / "web.yml").write_text(yaml.safe_dump(config))
    url, ctx = f"https://127.0.0.1:{port}/metrics", client_context(pki)
    wait_for(
        lambda: request(url, context=ctx, auth=("prometheus", "rotated-password"))[0] == 200,
        "the new password",
    )
    assert request(url, context=ctx, auth=("prometheus", "right-password"))[0] == 401
    (tmp / "web.yml").write_text("tls_server_config: {cert_file: x}\n")  # broken: the old stays
    log = tmp / "exporter.log"
    seen = log.read_text().count("webconfig.reload_failed")
    wait_for(
        lambda: log.read_text().count("webconfig.reload_failed") > seen, "the watcher to read the broken file"
    )
    assert request(url, context=ctx, auth=("prometheus", "rotated-password"))[0] == 200


def test_client_certificates_are_required_and_verified(pki: Path, tmp_path: Path) -> None:
    exporter = start(
        tmp_path,
        {"tls_server_config": mutual_tls(pki)},
    )
    try:
        url = f"https://127.0.0.1:{exporter.port}/-/healthy"
        wait_for(lambda: request(url, context=client_context(pki, with_cert=True))[0] == 200, "mTLS")
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            request(url, context=client_context(pki))
    finally:
        terminate(exporter, clean=False)


def test_webhooks_on_a_separate_listener(pki: Path, tmp_path: Path) -> None:
    hook_port = free_port()
    exporter = start(
        tmp_path,
        {"basic_auth_users": {"prometheus": hashed("pw")}},
        "--webhook.listen-address",
        f"127.0.0.1:{hook_port}",
    )
    try:
        wait_for(
            lambda: request(exporter.base + "/-/healthy", auth=("prometheus", "pw"))[0] == 200, "the exporter"
        )
        body = json.dumps(
            {
                "event_sid": "TA" + "8" * 32,
                "event_type": "billing.renewal.success",
                "event_date": "2026-01-01T00:00:00Z",
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Signature": sign(body, SECRET, int(time.time())),
        }
        hook = f"http://127.0.0.1:{hook_port}/webhooks/generatorlabs"
        assert request(hook, data=body, headers=headers)[0] == 204
        assert (
            request(
                exporter.base + "/webhooks/generatorlabs",
                data=body,
                headers=headers,
                auth=("prometheus", "pw"),
            )[0]
            == 404
        )
    finally:
        terminate(exporter, clean=False)


def test_unknown_keys_and_bad_values_are_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse(
            {
                "tls_server_config": {
                    "cert_file": "a",
                    "key_file": "b",
                    "client_auth_type": "Maybe",
                    "cipher_suits": [],
                },
                "basic_auth_users": {"u": "plaintext"},
                "http_server_config": {"headers": {"X-Evil": "1"}},
                "extra": 1,
            },
            "web.yml",
            tmp_path,
        )
    problems = info.value.problems
    assert "extra: unknown key" in problems
    assert "tls_server_config.cipher_suits: unknown key" in problems
    assert any(p.startswith("tls_server_config.client_auth_type: must be one of") for p in problems)
    assert "basic_auth_users.u: must be a bcrypt hash ($2b$...), got <hidden>" in problems
    assert any(p.startswith("http_server_config.headers.X-Evil: not an allowed header") for p in problems)
    (tmp_path / "web.yml").write_text("basic_auth_users: {u: plain}\n")
    assert main(["--demo", "--config.check", "--web.config.file", str(tmp_path / "web.yml")]) == 2
    assert "basic_auth_users.u: must be a bcrypt hash" in capsys.readouterr().err


def basic(user: str | bytes, password: str = "") -> str:
    raw = user if isinstance(user, bytes) else f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


async def ok(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def guarded(guard: WebGuard) -> web.Application:
    """The guard's middleware in front of a trivial /metrics."""
    app = web.Application(middlewares=(guard.middleware,))
    app.router.add_get("/metrics", ok)
    return app


@pytest.fixture
def guarded_app(tmp_path: Path) -> web.Application:
    """The real middleware in front of a trivial /metrics, from a real web config file."""
    (tmp_path / "web.yml").write_text(
        yaml.safe_dump({"basic_auth_users": {"prometheus": hashed("right-password")}})
    )
    return guarded(WebGuard(str(tmp_path / "web.yml")))


@pytest.mark.parametrize(
    "authorization",
    [
        basic("prometheus", "p" * 73),  # over bcrypt's 72 bytes: bcrypt raises on it
        basic("prometheus", "right-password" + "x" * 100),
        basic("prometheus", "\u00e9" * 40),  # 80 bytes of UTF-8
        basic("prometheus", "right\x00password"),
        basic(b"\xff\xfe:right-password"),  # not UTF-8
        basic(b"prometheus"),  # no colon
        "Basic",
        "Basic ",
        "Basic !!!!",
        "Basic " + "A" * 4000,
        "Basic cHJvbWV0aGV1czpy=ZXN0",
        "Bearer " + base64.b64encode(b"prometheus:right-password").decode(),
        "NTLM TlRMTVNTUAABAAAA",
    ],
    ids=[
        "73-bytes",
        "right-then-100",
        "80-bytes-utf8",
        "nul",
        "not-utf8",
        "no-colon",
        "bare-scheme",
        "empty",
        "not-base64",
        "4000-chars",
        "padding-inside",
        "bearer",
        "ntlm",
    ],
)
async def test_odd_and_overlong_credentials_are_a_401_never_an_error(  # type: ignore[no-untyped-def]
    aiohttp_client, guarded_app: web.Application, authorization: str
) -> None:
    client = await aiohttp_client(guarded_app)
    response = await client.get("/metrics", headers={"Authorization": authorization})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


async def test_the_right_password_still_passes_with_either_case_of_the_scheme(  # type: ignore[no-untyped-def]
    aiohttp_client, guarded_app: web.Application
) -> None:
    client = await aiohttp_client(guarded_app)
    right = basic("prometheus", "right-password")
    assert (await client.get("/metrics", headers={"Authorization": right})).status == 200
    lower = "basic" + right[len("Basic") :]
    assert (await client.get("/metrics", headers={"Authorization": lower})).status == 200


def test_a_malformed_bcrypt_hash_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse({"basic_auth_users": {"u": "$2b$10$short"}}, "web.yml", tmp_path)
    assert info.value.problems == ["basic_auth_users.u: must be a bcrypt hash ($2b$...), got <hidden>"]


@pytest.mark.parametrize(
    "raw",
    [
        ["$2b$04$" + "s" * 53],
        {"basic_auth_users": ["$2b$04$" + "s" * 53]},
        {"tls_server_config": ["$2b$04$" + "s" * 53]},
        {"http_server_config": "$2b$04$" + "s" * 53},
        {"http_server_config": {"headers": ["$2b$04$" + "s" * 53]}},
        {"tls_server_config": {"cert_file": ["a"], "key_file": {"b": 1}}},
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "client_auth_type": ["x"]}},
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "min_version": {"TLS12": 1}}},
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "client_ca_file": 7}},
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "client_allowed_sans": "x"}},
    ],
)
def test_wrong_types_are_config_errors_that_never_echo_the_value(tmp_path: Path, raw: object) -> None:
    """Wrong types anywhere give a ConfigError naming the key (never a crash), and a section of
    the wrong type is described by its type, never printed (it may hold password hashes)."""
    with pytest.raises(ConfigError) as info:
        parse(raw, "web.yml", tmp_path)
    assert info.value.problems
    assert "$2b$" not in str(info.value)


def test_a_header_value_with_a_line_break_is_a_config_error(tmp_path: Path) -> None:
    """aiohttp refuses to send a header holding CR/LF, which would break every response."""
    with pytest.raises(ConfigError) as info:
        parse(
            {"http_server_config": {"headers": {"X-Frame-Options": "DENY\r\nSet-Cookie: x=1"}}},
            "web.yml",
            tmp_path,
        )
    [problem] = info.value.problems
    assert problem.startswith("http_server_config.headers.X-Frame-Options: must be printable text")


def test_a_file_rewritten_in_place_is_never_loaded_half_written(tmp_path: Path) -> None:
    """Writing a file in place truncates it first; a check landing then must not load the empty
    file (no users: basic auth off). A change applies once two checks see the same content."""
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed("first-password")}}))
    guard = WebGuard(str(path))
    path.write_text("")  # the writer has truncated and not yet written
    with structlog.testing.capture_logs():
        guard.check()
        assert set(guard.config.users) == {"prometheus"}  # still on
        path.write_text(yaml.safe_dump({"basic_auth_users": {"grafana": hashed("second-password")}}))
        guard.check()  # a new content: wait one check more
        assert set(guard.config.users) == {"prometheus"}
        guard.check()  # the same content twice: applied
        assert set(guard.config.users) == {"grafana"}
        guard.check()  # nothing changed: nothing reloaded
        assert set(guard.config.users) == {"grafana"}


# --- in-process: the web config file as load() reads it and WebGuard enforces and reloads it ---


def tls_section(pki: Path, **extra: object) -> dict[str, Any]:
    return {
        "tls_server_config": {
            "cert_file": str(pki / "server.crt"),
            "key_file": str(pki / "server.key"),
            **extra,
        }
    }


@contextlib.asynccontextmanager
async def served(guard: WebGuard) -> AsyncIterator[str]:
    """A trivial /metrics behind the guard's middleware and TLS context, on a loopback port."""
    runner = web.AppRunner(guarded(guard))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=guard.context).start()
    try:
        _, port = runner.addresses[0][:2]
        yield f"https://127.0.0.1:{port}/metrics"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("allowed", "status"),
    [("prometheus.example", 200), ("grafana.example", 403), ("2001:db8:0::1", 200), ("2001:db8::2", 403)],
)
async def test_only_client_certificates_with_an_allowed_name_get_through(
    pki: Path, tmp_path: Path, allowed: str, status: int
) -> None:
    path = write_web_config(
        tmp_path / "web.yml",
        tls_section(
            pki,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=str(pki / "ca.crt"),
            client_allowed_sans=[allowed],
        ),
    )
    async with (
        served(WebGuard(path)) as url,
        aiohttp.ClientSession() as session,
        session.get(url, ssl=client_context(pki, with_cert=True)) as response,
    ):
        assert response.status == status
        if status == 403:
            assert await response.text() == "client certificate not allowed\n"


def test_tls_versions_and_client_auth_reach_the_tls_context(pki: Path, tmp_path: Path) -> None:
    path = write_web_config(
        tmp_path / "web.yml",
        tls_section(
            pki,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=str(pki / "ca.crt"),
            min_version="TLS12",
            max_version="TLS12",
        ),
    )
    context = WebGuard(path).context
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert (context.minimum_version, context.maximum_version) == (ssl.TLSVersion.TLSv1_2,) * 2


def test_relative_certificate_paths_are_read_from_the_files_folder(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "tls"
    folder.mkdir()
    for name in ("server.crt", "server.key"):
        (folder / name).write_bytes((pki / name).read_bytes())
    path = write_web_config(
        folder / "web.yml", {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}}
    )
    monkeypatch.chdir(tmp_path)
    tls = load(path).tls
    assert tls is not None
    assert (tls.cert_file, tls.key_file) == (str(folder / "server.crt"), str(folder / "server.key"))


def test_certificates_that_do_not_load_are_a_config_error_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_web_config(
        tmp_path / "web.yml", {"tls_server_config": {"cert_file": "no.crt", "key_file": "no.key"}}
    )
    with pytest.raises(ConfigError) as info:
        load(path)
    [problem] = info.value.problems
    assert problem.startswith("tls_server_config: cannot load certificates: ")
    assert main(["--demo", "--config.check", "--web.config.file", path]) == 2
    assert (
        f"invalid config {path}:\n  - tls_server_config: cannot load certificates" in capsys.readouterr().err
    )


# (web config, the one problem it must be refused with): every key named
WEB_CONFIG_PROBLEMS = [
    (
        {"tls_server_config": {"cert_file": "a"}},
        "tls_server_config.key_file: required (or key, inline PEM), got nothing",
    ),
    (
        {"tls_server_config": {"cert_file": "a", "cert": "PEM", "key_file": "b"}},
        "tls_server_config.cert: give cert (inline PEM) or cert_file, not both",
    ),
    (
        {
            "tls_server_config": {
                "cert_file": "a",
                "key_file": "b",
                "client_auth_type": "RequireAnyClientCert",
            }
        },
        "tls_server_config.client_auth_type: RequireAnyClientCert is not supported: it accepts client "
        "certificates without verifying them, which Python's ssl module cannot do; use "
        "RequireAndVerifyClientCert with client_ca_file",
    ),
    (
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "client_ca_file": "ca.crt"}},
        "tls_server_config.client_ca_file: a client CA with client_auth_type NoClientCert would not be "
        "used: set client_auth_type to RequireAndVerifyClientCert (or VerifyClientCertIfGiven)",
    ),
    (
        {
            "tls_server_config": {
                "cert_file": "a",
                "key_file": "b",
                "client_auth_type": "VerifyClientCertIfGiven",
                "client_ca": "PEM",
                "client_allowed_sans": ["prometheus.example"],
            }
        },
        "tls_server_config.client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert (with "
        "the others a client may connect without a certificate)",
    ),
    (
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "cipher_suites": ["RC4"]}},
        "tls_server_config.cipher_suites: unknown 'RC4' (one of TLS_RSA_WITH_AES_128_CBC_SHA, "
        "TLS_RSA_WITH_AES_256_CBC_SHA, TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_256_GCM_SHA384, "
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, "
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, "
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "
        "TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256)",
    ),
    (
        {
            "tls_server_config": {
                "cert_file": "a",
                "key_file": "b",
                "curve_preferences": ["X25519", "CurveP256"],
            }
        },
        "tls_server_config.curve_preferences: give one curve, got 2: Python's ssl module sets a single "
        "curve (SSLContext.set_ecdh_curve), not a preference list",
    ),
    (
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "curve_preferences": ["P-256"]}},
        "tls_server_config.curve_preferences: unknown 'P-256' (one of CurveP256, CurveP384, "
        "CurveP521, X25519)",
    ),
    (
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "prefer_server_cipher_suites": "yes"}},
        "tls_server_config.prefer_server_cipher_suites: must be true or false, got a string",
    ),
    (
        {"http_server_config": {"http2": "on"}},
        "http_server_config.http2: must be true or false, got a string",
    ),
    (
        {"http_server_config": {"headers": {"X-Frame-Options": "allow"}}},
        "http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin, got 'allow'",
    ),
    (
        {"http_server_config": {"headers": {"X-Content-Type-Options": "sniff"}}},
        "http_server_config.headers.X-Content-Type-Options: must be one of nosniff, got 'sniff'",
    ),
    ({"rate_limit": {"interval": "1s", "burst": 1, "per": "ip"}}, "rate_limit.per: unknown key"),
    (
        {"rate_limit": {"interval": 1, "burst": 1}},
        "rate_limit.interval: must be a duration like 1s, 100ms or 1m30s (0 turns it off), got 1",
    ),
    (
        {"rate_limit": {"interval": "-1s", "burst": 1}},
        "rate_limit.interval: must be a duration like 1s, 100ms or 1m30s (0 turns it off), got '-1s'",
    ),
    (
        {"rate_limit": {"interval": "1s", "burst": -1}},
        "rate_limit.burst: must be a whole number of requests, got -1",
    ),
    (
        {"rate_limit": {"interval": "1s", "burst": 10**400}},
        "rate_limit.burst: must be a whole number of requests, got " + shorten(10**400),
    ),
    (
        {"rate_limit": {"interval": "9" * 400 + "h", "burst": 1}},
        "rate_limit.interval: must be a finite duration of at most 365d, got " + shorten("9" * 400 + "h"),
    ),
    (
        {"rate_limit": {"interval": "8761h", "burst": 1}},
        "rate_limit.interval: must be a finite duration of at most 365d, got '8761h'",
    ),
    (
        {"rate_limit": {"interval": "1s"}},
        "rate_limit.burst: must be at least 1 when interval is set (0 refuses every request)",
    ),
    ({"rate_limit": "1s"}, "rate_limit: must be a mapping, got a string"),
    (
        {
            "tls_server_config": {
                "cert_file": "a",
                "key_file": "b",
                "client_auth_type": "VerifyClientCertIfGiven",
            }
        },
        "tls_server_config.client_ca_file: required with client_auth_type VerifyClientCertIfGiven",
    ),
    (
        {"tls_server_config": {"cert_file": "a", "key_file": "b", "max_version": "TLS14"}},
        "tls_server_config.max_version: must be one of TLS10, TLS11, TLS12, TLS13, got 'TLS14'",
    ),
    ({"http_server_config": {"http3": True}}, "http_server_config.http3: unknown key"),
    (
        {"http_server_config": {"headers": "X-Frame-Options: deny"}},
        "http_server_config.headers: must be a mapping, got a string",
    ),
    (
        {"basic_auth_users": "prometheus"},
        "basic_auth_users: must be a mapping of user to bcrypt hash, got a string",
    ),
    ("tls_server_config", "(top level): must be a mapping, got a string"),
]


@pytest.mark.parametrize(("raw", "problem"), WEB_CONFIG_PROBLEMS)
def test_web_config_problems_name_the_key(tmp_path: Path, raw: object, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(raw, "web.yml", tmp_path)
    assert info.value.problems == [problem]


async def test_an_empty_file_or_none_at_all_leaves_the_endpoints_open(  # type: ignore[no-untyped-def]
    aiohttp_client, tmp_path: Path
) -> None:
    (tmp_path / "web.yml").write_text("")
    for guard in (WebGuard(str(tmp_path / "web.yml")), WebGuard(None)):
        assert guard.context is None
        assert guard.reload() == []
        client = await aiohttp_client(guarded(guard))
        response = await client.get("/metrics")
        assert response.status == 200 and "X-Frame-Options" not in response.headers


async def test_configured_headers_are_on_every_answer_even_a_401(  # type: ignore[no-untyped-def]
    aiohttp_client, tmp_path: Path
) -> None:
    path = write_web_config(
        tmp_path / "web.yml",
        {
            "basic_auth_users": {"prometheus": hashed("right-password")},
            "http_server_config": {
                "headers": {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"}
            },
        },
    )
    guard = WebGuard(path)
    client = await aiohttp_client(guarded(guard))
    for authorization in ("", basic("prometheus", "right-password"), basic("prometheus", "right-password")):
        response = await client.get(
            "/metrics", headers={"Authorization": authorization} if authorization else {}
        )
        assert response.status == (200 if authorization else 401)
        assert (response.headers["X-Frame-Options"], response.headers["X-Content-Type-Options"]) == (
            "deny",
            "nosniff",
        )


async def test_a_hash_bcrypt_cannot_use_is_a_401_not_an_error(  # type: ignore[no-untyped-def]
    aiohttp_client, tmp_path: Path
) -> None:
    """The form is checked when the file is read, bcrypt's cost only when a password is tried."""
    usable = hashed("right-password")
    path = write_web_config(
        tmp_path / "web.yml", {"basic_auth_users": {"prometheus": "$2b$99$" + usable[7:]}}
    )
    guard = WebGuard(path)
    client = await aiohttp_client(guarded(guard))
    response = await client.get("/metrics", headers={"Authorization": basic("prometheus", "right-password")})
    assert response.status == 401


def test_a_reload_applies_a_good_file_and_keeps_the_old_settings_for_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    guard = WebGuard(write_web_config(path, {"basic_auth_users": {"prometheus": hashed("first")}}))
    write_web_config(path, {"basic_auth_users": {"grafana": hashed("second")}})
    with structlog.testing.capture_logs() as logs:
        assert guard.reload() == []
        assert set(guard.config.users) == {"grafana"}
        path.write_text("basic_auth_users: {grafana: plain}\n")
        problems = guard.reload()
    assert problems == ["basic_auth_users.grafana: must be a bcrypt hash ($2b$...), got <hidden>"]
    assert set(guard.config.users) == {"grafana"}
    assert [e["event"] for e in logs] == ["webconfig.reloaded", "webconfig.reload_failed"]
    assert logs[1]["problems"] == problems


def test_turning_tls_on_by_a_reload_needs_a_restart(pki: Path, tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    guard = WebGuard(write_web_config(path, {}))
    write_web_config(path, tls_section(pki))
    with structlog.testing.capture_logs() as logs:
        assert guard.reload() == []
    assert guard.context is None  # still serving plain HTTP
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("webconfig.restart_needed", "warning"),
        ("webconfig.reloaded", "info"),
    ]


def test_a_reload_puts_new_tls_settings_into_the_live_context(pki: Path, tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    guard = WebGuard(write_web_config(path, tls_section(pki)))
    live = guard.context
    assert live is not None
    before = live.verify_mode
    write_web_config(
        path,
        tls_section(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki / "ca.crt")),
    )
    with structlog.testing.capture_logs():
        assert guard.reload() == []
    assert guard.context is live  # new handshakes use the new settings
    assert (before, live.verify_mode) == (ssl.CERT_NONE, ssl.CERT_REQUIRED)


def test_a_deleted_file_keeps_the_last_settings(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    guard = WebGuard(write_web_config(path, {"basic_auth_users": {"prometheus": hashed("pw")}}))
    path.unlink()
    with structlog.testing.capture_logs() as logs:
        guard.check()
        guard.check()
    assert set(guard.config.users) == {"prometheus"}
    [failed] = logs
    assert failed["event"] == "webconfig.reload_failed"
    assert failed["problems"][0].startswith("(file): cannot read")


async def test_the_watcher_checks_the_file_once_a_second_on_its_clock(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    guard = WebGuard(write_web_config(path, {"basic_auth_users": {"prometheus": hashed("first")}}))
    naps: list[float] = []

    class Stop(Exception):
        pass

    async def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            write_web_config(path, {"basic_auth_users": {"grafana": hashed("second")}})
        if len(naps) == 4:
            raise Stop

    with structlog.testing.capture_logs() as logs, pytest.raises(Stop):
        await guard.watch(sleep)
    assert naps == [1.0] * 4
    assert set(guard.config.users) == {"grafana"}
    assert [e["event"] for e in logs] == ["webconfig.reloaded"]


# --- every key of the toolkit's current format ---


def every_key(pki: Path) -> dict[str, Any]:
    """A web config using every key of the exporter-toolkit's format (docs/web-configuration.md)."""
    return {
        "tls_server_config": {
            **mutual_tls(pki),
            "max_version": "TLS13",
            "cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"],
            "curve_preferences": ["X25519"],
            "prefer_server_cipher_suites": False,
        },
        "http_server_config": {
            "http2": True,
            "headers": {
                "Strict-Transport-Security": "max-age=31536000",
                "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "sameorigin",
                "X-XSS-Protection": "1; mode=block",
                "Content-Security-Policy": "default-src 'self'",
            },
        },
        "basic_auth_users": {"prometheus": hashed("pw")},
        "rate_limit": {"interval": "1m30s", "burst": 20},
    }


def test_a_file_with_every_key_of_the_toolkits_format_loads(pki: Path, tmp_path: Path) -> None:
    config = load(write_web_config(tmp_path / "web.yml", every_key(pki)))
    assert config.tls is not None
    assert config.tls.cipher_suites == ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256")
    assert (config.tls.curve_preferences, config.tls.prefer_server_cipher_suites) == (("X25519",), False)
    assert config.rate_limit == RateLimit(90.0, 20)
    assert config.http2 is True and len(config.headers) == 5 and set(config.users) == {"prometheus"}


@pytest.mark.parametrize(
    ("interval", "seconds"),
    [("1s", 1.0), ("100ms", 0.1), ("1m30s", 90.0), (".5s", 0.5), ("1h", 3600.0), ("250us", 0.00025)],
)
def test_rate_limit_intervals_are_go_durations(tmp_path: Path, interval: str, seconds: float) -> None:
    config = parse({"rate_limit": {"interval": interval, "burst": 3}}, "web.yml", tmp_path)
    assert config.rate_limit is not None
    assert config.rate_limit.interval == pytest.approx(seconds)


@pytest.mark.parametrize(
    "raw", [{"rate_limit": {"interval": 0, "burst": 0}}, {"rate_limit": {"interval": "0s"}}]
)
def test_an_interval_of_zero_turns_the_rate_limit_off(tmp_path: Path, raw: dict[str, Any]) -> None:
    assert parse(raw, "web.yml", tmp_path).rate_limit is None


def test_tls_server_config_that_sets_no_certificate_leaves_tls_off(tmp_path: Path) -> None:
    """As in the toolkit: only a certificate, key, client CA or client_auth_type turns TLS on."""
    assert parse({"tls_server_config": {}}, "web.yml", tmp_path).tls is None
    assert parse({"tls_server_config": {"min_version": "TLS13"}}, "web.yml", tmp_path).tls is None


def test_a_blank_header_sets_nothing(tmp_path: Path) -> None:
    raw = {
        "http_server_config": {"http2": False, "headers": {"X-Frame-Options": "", "X-XSS-Protection": "0"}}
    }
    config = parse(raw, "web.yml", tmp_path)
    assert dict(config.headers) == {"X-XSS-Protection": "0"} and config.http2 is False


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limited(tmp_path: Path, clock: Clock, **extra: Any) -> tuple[WebGuard, web.Application]:
    path = write_web_config(tmp_path / "web.yml", {"rate_limit": {"interval": "500ms", "burst": 2}, **extra})
    guard = WebGuard(path, clock)
    app = guarded(guard)
    app.router.add_post("/webhooks/generatorlabs", ok)
    return guard, app


async def test_the_rate_limit_answers_429_past_the_burst_and_refills_one_per_interval(  # type: ignore[no-untyped-def]
    aiohttp_client, tmp_path: Path
) -> None:
    clock = Clock()
    _, app = limited(tmp_path, clock, http_server_config={"headers": {"X-Frame-Options": "deny"}})
    client = await aiohttp_client(app)

    async def statuses(n: int) -> list[int]:
        return [(await client.get("/metrics")).status for _ in range(n)]

    assert await statuses(3) == [200, 200, 429]
    response = await client.get("/metrics")
    assert response.status == 429 and response.headers["X-Frame-Options"] == "deny"
    assert [(await client.post("/webhooks/generatorlabs")).status for _ in range(5)] == [200] * 5
    clock.now += 0.5
    assert await statuses(2) == [200, 429]
    clock.now += 60  # a long quiet spell refills the bucket to its burst, not beyond
    assert await statuses(3) == [200, 200, 429]


async def test_the_rate_limit_comes_before_basic_auth(  # type: ignore[no-untyped-def]
    aiohttp_client, tmp_path: Path
) -> None:
    """As in the toolkit: a client guessing passwords is slowed down too."""
    _, app = limited(tmp_path, Clock(), basic_auth_users={"prometheus": hashed("pw")})
    client = await aiohttp_client(app)
    assert [(await client.get("/metrics")).status for _ in range(3)] == [401, 401, 429]


async def test_a_reload_applies_a_new_rate_limit_and_keeps_the_bucket_of_an_unchanged_one(  # type: ignore[no-untyped-def]
    aiohttp_client, tmp_path: Path
) -> None:
    guard, app = limited(tmp_path, Clock())
    client = await aiohttp_client(app)
    assert [(await client.get("/metrics")).status for _ in range(3)] == [200, 200, 429]
    path = tmp_path / "web.yml"
    raw = yaml.safe_load(path.read_text())
    write_web_config(path, {**raw, "http_server_config": {"headers": {"X-Frame-Options": "deny"}}})
    with structlog.testing.capture_logs():
        assert guard.reload() == []
        assert (await client.get("/metrics")).status == 429  # same limit: same bucket
        write_web_config(path, {"rate_limit": {"interval": "500ms", "burst": 4}})
        assert guard.reload() == []
        assert [(await client.get("/metrics")).status for _ in range(5)] == [200] * 4 + [429]
        write_web_config(path, {})
        assert guard.reload() == []
        assert [(await client.get("/metrics")).status for _ in range(5)] == [200] * 5


def handshake(url: str, context: ssl.SSLContext) -> str:
    """The cipher suite a TLS handshake with the server at `url` settles on."""
    port = int(url.split(":")[2].split("/")[0])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return cipher[0]


def tls12_client(pki: Path, ciphers: str) -> ssl.SSLContext:
    context = client_context(pki)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    return context


AES128 = "ECDHE-RSA-AES128-GCM-SHA256"
AES256 = "ECDHE-RSA-AES256-GCM-SHA384"


async def test_cipher_suites_are_the_only_ones_a_tls12_client_can_get(pki: Path, tmp_path: Path) -> None:
    path = write_web_config(
        tmp_path / "web.yml", tls_section(pki, cipher_suites=["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])
    )
    async with served(WebGuard(path)) as url:
        assert await asyncio.to_thread(handshake, url, tls12_client(pki, f"{AES256}:{AES128}")) == AES128
        with pytest.raises(ssl.SSLError):
            await asyncio.to_thread(handshake, url, tls12_client(pki, AES256))


@pytest.mark.parametrize(("prefer", "chosen"), [(True, AES256), (False, AES128)])
async def test_prefer_server_cipher_suites_decides_whose_order_wins(
    pki: Path, tmp_path: Path, prefer: bool, chosen: str
) -> None:
    suites = ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    path = write_web_config(
        tmp_path / "web.yml", tls_section(pki, cipher_suites=suites, prefer_server_cipher_suites=prefer)
    )
    async with served(WebGuard(path)) as url:
        assert await asyncio.to_thread(handshake, url, tls12_client(pki, f"{AES128}:{AES256}")) == chosen


async def test_curve_preferences_set_the_curve(pki: Path, tmp_path: Path) -> None:
    path = write_web_config(tmp_path / "web.yml", tls_section(pki, curve_preferences=["CurveP384"]))
    async with served(WebGuard(path)) as url:
        for curve, works in (("secp384r1", True), ("prime256v1", False)):
            context = client_context(pki)
            context.set_ecdh_curve(curve)
            if works:
                await asyncio.to_thread(handshake, url, context)
            else:
                with pytest.raises(ssl.SSLError):
                    await asyncio.to_thread(handshake, url, context)


async def test_certificates_key_and_client_ca_may_be_inline(pki: Path, tmp_path: Path) -> None:
    tls = {
        "cert": (pki / "server.crt").read_text(),
        "key": (pki / "server.key").read_text(),
        "client_ca": (pki / "ca.crt").read_text(),
        "client_auth_type": "RequireAndVerifyClientCert",
    }
    path = write_web_config(tmp_path / "web.yml", {"tls_server_config": tls})
    async with (
        served(WebGuard(path)) as url,
        aiohttp.ClientSession() as session,
        session.get(url, ssl=client_context(pki, with_cert=True)) as response,
    ):
        assert response.status == 200
    assert "PRIVATE KEY" not in repr(load(path))  # the key is never shown


def test_an_inline_certificate_that_does_not_load_is_a_config_error(tmp_path: Path) -> None:
    path = write_web_config(
        tmp_path / "web.yml", {"tls_server_config": {"cert": "nonsense", "key": "secret"}}
    )
    with pytest.raises(ConfigError) as info:
        load(path)
    [problem] = info.value.problems
    assert problem.startswith("tls_server_config: cannot load certificates: ") and "secret" not in problem


async def test_request_client_cert_lets_a_client_without_a_certificate_in(pki: Path, tmp_path: Path) -> None:
    """The toolkit requests a certificate and never checks it: the same as not asking."""
    path = write_web_config(tmp_path / "web.yml", tls_section(pki, client_auth_type="RequestClientCert"))
    async with (
        served(WebGuard(path)) as url,
        aiohttp.ClientSession() as session,
        session.get(url, ssl=client_context(pki)) as response,
    ):
        assert response.status == 200


def test_a_reload_that_drops_cipher_suites_says_they_stay_until_a_restart(pki: Path, tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    guard = WebGuard(write_web_config(path, tls_section(pki, cipher_suites=["TLS_RSA_WITH_AES_128_CBC_SHA"])))
    write_web_config(path, tls_section(pki))
    with structlog.testing.capture_logs() as logs:
        assert guard.reload() == []
    assert [e["event"] for e in logs] == ["webconfig.restart_needed", "webconfig.reloaded"]
