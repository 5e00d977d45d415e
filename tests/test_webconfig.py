"""--web.config.file (exporter-toolkit format) against real clients: TLS, client certificates,
bcrypt basic auth, headers, reload on change; webhooks stay behind their own authentication,
optionally on a separate listener."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import structlog
import yaml
from aiohttp import web

from exporter.config.webconfig import parse
from exporter.errors import ConfigError
from exporter.web.guard import WebGuard
from exporter.webhooks.signature import sign
from tests.conftest import need_binary
from tests.helpers.processes import DEADLINE, free_port, wait_for

SECRET = "whsec_webconfig_secret"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    openssl = need_binary("openssl")
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (d / "client.ext").write_text("subjectAltName=DNS:prometheus.example\n")
    for name in ("server", "client"):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
        )
    return d


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def start(tmp: Path, web_config: dict[str, Any], *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (tmp / "web.yml").write_text(yaml.safe_dump(web_config))
    (tmp / "config.yaml").write_text(
        yaml.safe_dump(
            {"webhooks": {"enabled": True, "secrets": [SECRET]}, "state": {"path": str(tmp / "s.sqlite")}}
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENERATORLABS_")}
    with (tmp / "exporter.log").open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                "--demo",
                "--config.file",
                str(tmp / "config.yaml"),
                "--web.config.file",
                str(tmp / "web.yml"),
                "--web.listen-address",
                f"127.0.0.1:{port}",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
    return process, port


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=DEADLINE)


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
    process, port = start(
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
                    f"https://127.0.0.1:{port}/-/healthy",
                    context=client_context(pki),
                    auth=("prometheus", "right-password"),
                )[0]
                == 200
            ),
            "TLS to answer",
        )
        yield port, tmp_path
    finally:
        stop(process)


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
    process, port = start(
        tmp_path,
        {
            "tls_server_config": {
                "cert_file": str(pki / "server.crt"),
                "key_file": str(pki / "server.key"),
                "client_auth_type": "RequireAndVerifyClientCert",
                "client_ca_file": str(pki / "ca.crt"),
                "client_allowed_sans": ["prometheus.example"],
                "min_version": "TLS12",
            }
        },
    )
    try:
        url = f"https://127.0.0.1:{port}/-/healthy"
        wait_for(lambda: request(url, context=client_context(pki, with_cert=True))[0] == 200, "mTLS")
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            request(url, context=client_context(pki))
    finally:
        stop(process)


def test_webhooks_on_a_separate_listener(pki: Path, tmp_path: Path) -> None:
    hook_port = free_port()
    process, port = start(
        tmp_path,
        {"basic_auth_users": {"prometheus": hashed("pw")}},
        "--webhook.listen-address",
        f"127.0.0.1:{hook_port}",
    )
    try:
        wait_for(
            lambda: request(f"http://127.0.0.1:{port}/-/healthy", auth=("prometheus", "pw"))[0] == 200,
            "the exporter",
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
                f"http://127.0.0.1:{port}/webhooks/generatorlabs",
                data=body,
                headers=headers,
                auth=("prometheus", "pw"),
            )[0]
            == 404
        )
    finally:
        stop(process)


def test_unknown_keys_and_bad_values_are_rejected(tmp_path: Path) -> None:
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
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "--demo",
            "--config.check",
            "--web.config.file",
            str(tmp_path / "web.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "basic_auth_users.u: must be a bcrypt hash" in result.stderr


def basic(user: str | bytes, password: str | bytes = b"") -> str:
    raw = user if isinstance(user, bytes) else f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@pytest.fixture
def guarded_app(tmp_path: Path) -> web.Application:
    """The real middleware in front of a trivial /metrics, from a real web config file."""
    (tmp_path / "web.yml").write_text(
        yaml.safe_dump({"basic_auth_users": {"prometheus": hashed("right-password")}})
    )
    guard = WebGuard(str(tmp_path / "web.yml"))

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application(middlewares=(guard.middleware,))
    app.router.add_get("/metrics", ok)
    return app


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
