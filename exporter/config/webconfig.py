"""The exporter-toolkit web configuration file (`--web.config.file`): TLS, client certificates,
bcrypt basic auth and response headers for the exporter's own endpoints.

`parse` is pure and rejects unknown keys like the toolkit does. I/O: `load` reads the file and,
when it sets up TLS, the certificate, key and client CA files it names (through
`configure_tls`, which loads them into an SSLContext). exporter.web.guard enforces the result
and re-reads the file when it changes.

Whatever a client sends as Authorization, the answer is 200 or 401, never an error: a header
that is not `Basic <base64 of UTF-8 user:password>`, and a password longer than bcrypt's 72
bytes (bcrypt refuses those; the toolkit's Go bcrypt does too), are simply wrong credentials.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.api.fields import shorten
from exporter.config.load import read_yaml
from exporter.config.parse import kind_of
from exporter.errors import ConfigError

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
TLS_KEYS = {
    "cert_file",
    "key_file",
    "cert",
    "key",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
}
HTTP_KEYS = {"http2", "headers"}
# the toolkit allows these response headers only
HEADERS = {
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
}
TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users"}
DEFAULT_CLIENT_AUTH = "NoClientCert"
DEFAULT_MIN_VERSION = "TLS12"
VERIFYING = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")  # these need client_ca_file
BCRYPT_MAX_PASSWORD = 72  # bytes: bcrypt reads no more, and refuses longer passwords
BCRYPT_HASH = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True, slots=True)
class TLSConfig:
    cert_file: str
    key_file: str
    client_auth_type: str = DEFAULT_CLIENT_AUTH
    client_ca_file: str | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = DEFAULT_MIN_VERSION
    max_version: str | None = None


@dataclass(frozen=True, slots=True)
class WebConfig:
    tls: TLSConfig | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    headers: Mapping[str, str] = field(default_factory=dict)


def parse(raw: object, source: str, base: Path) -> WebConfig:
    """Every problem at once, as ConfigError; file paths are relative to the file's folder."""
    problems: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(source, [f"(top level): must be a mapping, got {kind_of(raw)}"])
    problems += [f"{k}: unknown key" for k in raw if k not in TOP_KEYS]
    tls = None
    tls_raw = raw.get("tls_server_config")
    if tls_raw is not None:
        if not isinstance(tls_raw, Mapping):
            problems.append(f"tls_server_config: must be a mapping, got {kind_of(tls_raw)}")
        else:
            tls = _tls(tls_raw, base, problems)
    headers = _headers(raw.get("http_server_config") or {}, problems)
    users = _users(raw.get("basic_auth_users") or {}, problems)
    if problems:
        raise ConfigError(source, problems)
    return WebConfig(tls, users, headers)


def _headers(raw: object, problems: list[str]) -> dict[str, str]:
    """http_server_config: the response headers the toolkit allows, each on one printable line."""
    if not isinstance(raw, Mapping):
        problems.append(f"http_server_config: must be a mapping, got {kind_of(raw)}")
        return {}
    problems += [f"http_server_config.{k}: unknown key" for k in raw if k not in HTTP_KEYS]
    given = raw.get("headers") or {}
    if not isinstance(given, Mapping):
        problems.append(f"http_server_config.headers: must be a mapping, got {kind_of(given)}")
        return {}
    headers: dict[str, str] = {}
    for name, value in given.items():
        text = str(value)
        if name not in HEADERS:
            problems.append(
                f"http_server_config.headers.{name}: not an allowed header "
                f"(one of {', '.join(sorted(HEADERS))})"
            )
        elif not text.isprintable():  # CR/LF would be header injection: aiohttp refuses to send
            problems.append(
                f"http_server_config.headers.{name}: must be printable text on one line "
                "(no control characters)"
            )
        else:
            headers[name] = text
    return headers


def _users(raw: object, problems: list[str]) -> dict[str, bytes]:
    """basic_auth_users: user name to bcrypt hash; a hash is never shown, even a malformed one."""
    if not isinstance(raw, Mapping):
        problems.append(f"basic_auth_users: must be a mapping of user to bcrypt hash, got {kind_of(raw)}")
        return {}
    users: dict[str, bytes] = {}
    for user, hashed in raw.items():
        if not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed):
            problems.append(f"basic_auth_users.{user}: must be a bcrypt hash ($2b$...), got <hidden>")
        else:
            users[str(user)] = hashed.encode()
    return users


def _tls(raw: Mapping[str, Any], base: Path, problems: list[str]) -> TLSConfig | None:
    problems += [f"tls_server_config.{k}: unknown key" for k in raw if k not in TLS_KEYS]
    cert, key = raw.get("cert_file"), raw.get("key_file")
    if not isinstance(cert, str) or not cert or not isinstance(key, str) or not key:
        problems.append(
            "tls_server_config: cert_file and key_file are both required as paths, got "
            f"cert_file as {kind_of(cert)} and key_file as {kind_of(key)}"
        )
        return None
    auth = raw.get("client_auth_type", DEFAULT_CLIENT_AUTH)
    if not isinstance(auth, str) or auth not in CLIENT_AUTH:
        problems.append(
            f"tls_server_config.client_auth_type: must be one of {', '.join(CLIENT_AUTH)}, "
            f"got {shorten(auth)}"
        )
        auth = DEFAULT_CLIENT_AUTH
    ca = raw.get("client_ca_file")
    if ca is not None and not isinstance(ca, str):
        problems.append(f"tls_server_config.client_ca_file: must be a path, got {kind_of(ca)}")
        ca = None
    if auth in VERIFYING and not ca:
        problems.append(f"tls_server_config.client_ca_file: required with client_auth_type {auth}")
    for k in ("min_version", "max_version"):
        value = raw.get(k)
        if value is not None and (not isinstance(value, str) or value not in TLS_VERSIONS):
            problems.append(
                f"tls_server_config.{k}: must be one of {', '.join(TLS_VERSIONS)}, got {shorten(value)}"
            )
    sans = raw.get("client_allowed_sans") or []
    if not isinstance(sans, list) or not all(isinstance(v, str) for v in sans):
        problems.append(
            f"tls_server_config.client_allowed_sans: must be a list of names, got {kind_of(sans)}"
        )
    if problems:
        return None

    def resolve(p: str) -> str:
        path = Path(p)
        return str(path if path.is_absolute() else base / path)

    return TLSConfig(
        resolve(cert),
        resolve(key),
        auth,
        resolve(ca) if ca else None,
        tuple(raw.get("client_allowed_sans") or ()),
        raw.get("min_version") or DEFAULT_MIN_VERSION,
        raw.get("max_version"),
    )


def load(path: str) -> WebConfig:
    """Read, parse and check the file (its certificates must load); ConfigError otherwise."""
    config = parse(read_yaml(path), path, Path(path).resolve().parent)
    if config.tls is not None:
        configure_tls(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), config.tls, path)  # files must load
    return config


def configure_tls(context: ssl.SSLContext, tls: TLSConfig, source: str) -> ssl.SSLContext:
    """Load certificates and settings into `context` (also used to reload a live context)."""
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file:
            context.load_verify_locations(tls.client_ca_file)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(source, [f"tls_server_config: cannot load certificates: {err}"]) from err
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    return context
