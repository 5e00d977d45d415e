"""The exporter-toolkit web configuration file (`--web.config.file`): TLS (certificates as files
or inline, client certificates, versions, cipher suites, curves), bcrypt basic auth, response
headers, HTTP/2 and the rate limit of the exporter's own endpoints.

The format is the toolkit's current one (prometheus/exporter-toolkit, docs/web-configuration.md):
every key of it is read, and each is either applied or refused with a message naming the key and
why. What Python's ssl module cannot do the toolkit's way is refused, never silently changed:
`client_auth_type` RequireAnyClientCert (a certificate required but not verified), and more than
one `curve_preferences` entry (SSLContext sets a single curve). `http2` is accepted and changes
nothing: the listener speaks HTTP/1.1 only, and HTTP/2 clients fall back to it.

`parse` is pure and rejects unknown keys like the toolkit does. I/O: `load` reads the file and,
when it sets up TLS, the certificate, key and client CA files it names (through
`configure_tls`, which loads them into an SSLContext; inline PEM is handed to OpenSSL through an
in-memory file where the system has them, else a private temporary file). exporter.web.guard
enforces the result and re-reads the file when it changes.

Whatever a client sends as Authorization, the answer is 200 or 401, never an error: a header
that is not `Basic <base64 of UTF-8 user:password>`, and a password longer than bcrypt's 72
bytes (bcrypt refuses those; the toolkit's Go bcrypt does too), are simply wrong credentials.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.api.fields import shorten
from exporter.config.load import read_yaml
from exporter.config.model import MAX_DURATION
from exporter.config.parse import kind_of
from exporter.errors import ConfigError

# client_auth_type: the toolkit's names (Go's tls.ClientAuthType) and what Python's ssl does
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    # requested but never checked, by the toolkit too: the same as not asking
    "RequestClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH = ("RequireAnyClientCert", "RequireClientCert")  # the second: an old alias
VERIFYING = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")  # these need a client CA
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# cipher_suites: Go's names (crypto/tls CipherSuites()) to OpenSSL's, for TLS 1.2 and older.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
# TLS 1.3's suites are always on, in Go as in OpenSSL: accepted, and they change nothing
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
TLS_KEYS = {
    "cert_file",
    "key_file",
    "cert",
    "key",
    "client_ca",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
}
# keys whose presence turns TLS on (the toolkit's TLSConfig.IsEnabled); the others alone do not
TLS_ENABLING = ("cert_file", "key_file", "cert", "key", "client_ca", "client_ca_file", "client_auth_type")
HTTP_KEYS = {"http2", "headers"}
RATE_LIMIT_KEYS = {"interval", "burst"}
# the toolkit allows these response headers only, some with a fixed set of values
HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"}
DEFAULT_CLIENT_AUTH = "NoClientCert"
DEFAULT_MIN_VERSION = "TLS12"
BCRYPT_MAX_PASSWORD = 72  # bytes: bcrypt reads no more, and refuses longer passwords
BCRYPT_HASH = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
MAX_BURST = 1_000_000  # rate_limit.burst: requests at once; a larger one is a typo, not a wish
# a Go duration (time.ParseDuration), as the toolkit's rate_limit.interval is written
GO_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+")
GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Where each PEM comes from is exactly one of a file (`*_file`) or inline text."""

    cert_file: str | None = None
    key_file: str | None = None
    client_auth_type: str = DEFAULT_CLIENT_AUTH
    client_ca_file: str | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = DEFAULT_MIN_VERSION
    max_version: str | None = None
    cert: str | None = None
    key: str | None = field(default=None, repr=False)
    client_ca: str | None = None
    cipher_suites: tuple[str, ...] = ()  # Go's names, in preference order
    curve_preferences: tuple[str, ...] = ()  # Go's names (one at most)
    prefer_server_cipher_suites: bool = True


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: `burst` requests at once, then one per `interval` seconds."""

    interval: float
    burst: int


@dataclass(frozen=True, slots=True)
class WebConfig:
    tls: TLSConfig | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    headers: Mapping[str, str] = field(default_factory=dict)
    rate_limit: RateLimit | None = None  # None: no limit
    http2: bool = True  # accepted; the listener serves HTTP/1.1 either way


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
    http2, headers = _http(raw.get("http_server_config") or {}, problems)
    users = _users(raw.get("basic_auth_users") or {}, problems)
    rate_limit = _rate_limit(raw.get("rate_limit") or {}, problems)
    if problems:
        raise ConfigError(source, problems)
    return WebConfig(tls, users, headers, rate_limit, http2)


def _http(raw: object, problems: list[str]) -> tuple[bool, dict[str, str]]:
    """http_server_config: http2 (true or false) and the response headers."""
    if not isinstance(raw, Mapping):
        problems.append(f"http_server_config: must be a mapping, got {kind_of(raw)}")
        return True, {}
    problems += [f"http_server_config.{k}: unknown key" for k in raw if k not in HTTP_KEYS]
    http2 = raw.get("http2", True)
    if not isinstance(http2, bool):
        problems.append(f"http_server_config.http2: must be true or false, got {kind_of(http2)}")
        http2 = True
    return http2, _headers(raw.get("headers") or {}, problems)


def _headers(given: object, problems: list[str]) -> dict[str, str]:
    """The response headers the toolkit allows, each on one printable line, with one of the
    values the toolkit allows where it has a list; a blank value sets nothing (as in the toolkit)."""
    if not isinstance(given, Mapping):
        problems.append(f"http_server_config.headers: must be a mapping, got {kind_of(given)}")
        return {}
    headers: dict[str, str] = {}
    for name, value in given.items():
        text = "" if value is None else str(value)
        where = f"http_server_config.headers.{name}"
        if name not in HEADERS:
            problems.append(f"{where}: not an allowed header (one of {', '.join(sorted(HEADERS))})")
        elif not text.isprintable():  # CR/LF would be header injection: aiohttp refuses to send
            problems.append(f"{where}: must be printable text on one line (no control characters)")
        elif text and HEADERS[name] and text not in HEADERS[name]:
            problems.append(f"{where}: must be one of {', '.join(HEADERS[name])}, got {shorten(text)}")
        elif text:
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


def go_duration(value: object) -> float:
    """Seconds in a Go duration (`1s`, `100ms`, `1m30s`, or `0`); ValueError otherwise. A bare
    number other than 0 is refused: Go would read it as nanoseconds."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    if not isinstance(value, str) or not GO_DURATION.fullmatch(value.strip()):
        raise ValueError(f"must be a duration like 1s, 100ms or 1m30s (0 turns it off), got {shorten(value)}")
    seconds = sum(float(number) * GO_UNITS[unit] for number, unit in _GO_PART.findall(value.strip()))
    if not math.isfinite(seconds) or seconds > MAX_DURATION:  # Go refuses what overflows its int64
        raise ValueError(f"must be a finite duration of at most 365d, got {shorten(value)}")
    return seconds


def _rate_limit(raw: object, problems: list[str]) -> RateLimit | None:
    """rate_limit: a token bucket over the exporter's own endpoints; interval 0 (or none) is off."""
    if not isinstance(raw, Mapping):
        problems.append(f"rate_limit: must be a mapping, got {kind_of(raw)}")
        return None
    problems += [f"rate_limit.{k}: unknown key" for k in raw if k not in RATE_LIMIT_KEYS]
    try:
        interval = go_duration(raw.get("interval", 0))
    except ValueError as err:
        problems.append(f"rate_limit.interval: {err}")
        return None
    burst = raw.get("burst", 0)
    if isinstance(burst, bool) or not isinstance(burst, int) or not 0 <= burst <= MAX_BURST:
        problems.append(f"rate_limit.burst: must be a whole number of requests, got {shorten(burst)}")
        return None
    if not interval:
        return None
    if burst == 0:
        problems.append("rate_limit.burst: must be at least 1 when interval is set (0 refuses every request)")
        return None
    return RateLimit(interval, burst)


def _text(raw: Mapping[str, Any], key: str, problems: list[str], what: str = "a path") -> str | None:
    """An optional text key of tls_server_config (blank means unset, as in the toolkit)."""
    value = raw.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append(f"tls_server_config.{key}: must be {what}, got {kind_of(value)}")
        return None
    return value


def _one_source(raw: Mapping[str, Any], inline: str, problems: list[str], *, required: bool) -> None:
    """`inline` (PEM text) or `<inline>_file`: not both, and one of them when `required`."""
    path_key = f"{inline}_file"
    given = [k for k in (inline, path_key) if raw.get(k) not in (None, "")]
    if len(given) == 2:
        problems.append(f"tls_server_config.{inline}: give {inline} (inline PEM) or {path_key}, not both")
    elif required and not given:
        problems.append(f"tls_server_config.{path_key}: required (or {inline}, inline PEM), got nothing")


def _client_auth(raw: Mapping[str, Any], has_ca: bool, problems: list[str]) -> str:
    """client_auth_type, checked against the client CA and client_allowed_sans."""
    auth = raw.get("client_auth_type") or DEFAULT_CLIENT_AUTH
    where = "tls_server_config.client_auth_type"
    if auth in UNVERIFIED_CLIENT_AUTH:
        problems.append(
            f"{where}: {auth} is not supported: it accepts client certificates without verifying "
            "them, which Python's ssl module cannot do; use RequireAndVerifyClientCert with client_ca_file"
        )
        return DEFAULT_CLIENT_AUTH
    if not isinstance(auth, str) or auth not in CLIENT_AUTH:
        problems.append(f"{where}: must be one of {', '.join(CLIENT_AUTH)}, got {shorten(auth)}")
        return DEFAULT_CLIENT_AUTH
    if auth in VERIFYING and not has_ca:
        problems.append(f"tls_server_config.client_ca_file: required with client_auth_type {auth}")
    if has_ca and auth not in VERIFYING:
        problems.append(
            f"tls_server_config.client_ca_file: a client CA with client_auth_type {auth} would not be "
            "used: set client_auth_type to RequireAndVerifyClientCert (or VerifyClientCertIfGiven)"
        )
    if raw.get("client_allowed_sans") and auth != "RequireAndVerifyClientCert":
        problems.append(
            "tls_server_config.client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert "
            "(with the others a client may connect without a certificate)"
        )
    return auth


def _names(
    raw: Mapping[str, Any], key: str, known: Mapping[str, str] | tuple[str, ...], problems: list[str]
) -> tuple[str, ...]:
    """A list of names from `known` (cipher_suites, curve_preferences, client_allowed_sans)."""
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"tls_server_config.{key}: must be a list of names, got {kind_of(value)}")
        return ()
    unknown = [v for v in value if known and v not in known]
    if unknown:
        problems.append(f"tls_server_config.{key}: unknown {shorten(unknown[0])} (one of {', '.join(known)})")
    return tuple(value)


def _tls_options(raw: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """Versions, cipher suites, curves and the server's cipher preference."""
    for k in ("min_version", "max_version"):
        value = raw.get(k)
        if value is not None and (not isinstance(value, str) or value not in TLS_VERSIONS):
            problems.append(
                f"tls_server_config.{k}: must be one of {', '.join(TLS_VERSIONS)}, got {shorten(value)}"
            )
    curves = _names(raw, "curve_preferences", tuple(CURVES), problems)
    if len(curves) > 1:
        problems.append(
            f"tls_server_config.curve_preferences: give one curve, got {len(curves)}: Python's ssl "
            "module sets a single curve (SSLContext.set_ecdh_curve), not a preference list"
        )
    prefer = raw.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        problems.append(
            f"tls_server_config.prefer_server_cipher_suites: must be true or false, got {kind_of(prefer)}"
        )
    return {
        "min_version": raw.get("min_version") or DEFAULT_MIN_VERSION,
        "max_version": raw.get("max_version"),
        "cipher_suites": _names(raw, "cipher_suites", (*CIPHER_SUITES, *TLS13_SUITES), problems),
        "curve_preferences": curves,
        "prefer_server_cipher_suites": prefer is not False,
    }


def _tls(raw: Mapping[str, Any], base: Path, problems: list[str]) -> TLSConfig | None:
    """tls_server_config, or None when it turns nothing on (the toolkit then serves plain HTTP)."""
    problems += [f"tls_server_config.{k}: unknown key" for k in raw if k not in TLS_KEYS]
    if not any(raw.get(k) not in (None, "") for k in TLS_ENABLING):
        return None
    before = len(problems)
    paths = {k: _text(raw, k, problems) for k in ("cert_file", "key_file", "client_ca_file")}
    inline = {k: _text(raw, k, problems, "PEM text") for k in ("cert", "key", "client_ca")}
    _one_source(raw, "cert", problems, required=True)
    _one_source(raw, "key", problems, required=True)
    _one_source(raw, "client_ca", problems, required=False)
    has_ca = bool(paths["client_ca_file"] or inline["client_ca"])
    auth = _client_auth(raw, has_ca, problems)
    sans = _names(raw, "client_allowed_sans", (), problems)
    options = _tls_options(raw, problems)
    if len(problems) > before:
        return None

    def resolve(p: str | None) -> str | None:
        return None if p is None else str(Path(p) if Path(p).is_absolute() else base / p)

    return TLSConfig(
        cert_file=resolve(paths["cert_file"]),
        key_file=resolve(paths["key_file"]),
        client_auth_type=auth,
        client_ca_file=resolve(paths["client_ca_file"]),
        client_allowed_sans=sans,
        cert=inline["cert"],
        key=inline["key"],
        client_ca=inline["client_ca"],
        **options,
    )


def load(path: str) -> WebConfig:
    """Read, parse and check the file (its certificates must load); ConfigError otherwise."""
    config = parse(read_yaml(path), path, Path(path).resolve().parent)
    if config.tls is not None:
        configure_tls(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), config.tls, path)  # files must load
    return config


@contextlib.contextmanager
def _pem_path(text: str) -> Iterator[str]:
    """A path OpenSSL can read `text` from: an in-memory file on Linux (nothing on disk), else a
    private temporary file, removed on exit."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("generatorlabs-exporter-pem")
        try:
            os.write(fd, text.encode())
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as folder:  # pragma: no cover - systems without memfd
        path = Path(folder) / "pem"
        path.touch(mode=0o600)
        path.write_text(text)
        yield str(path)


def load_certificate(context: ssl.SSLContext, tls: TLSConfig) -> None:
    """The certificate and key (files or inline PEM) into `context` (ssl.SSLError, OSError)."""
    with contextlib.ExitStack() as stack:
        cert = tls.cert_file or stack.enter_context(_pem_path(tls.cert or ""))
        key = tls.key_file or stack.enter_context(_pem_path(tls.key or ""))
        context.load_cert_chain(cert, key)


def configure_tls(context: ssl.SSLContext, tls: TLSConfig, source: str) -> ssl.SSLContext:
    """Load certificates and settings into `context` (also used to reload a live context)."""
    try:
        load_certificate(context, tls)
        if tls.client_ca_file:
            context.load_verify_locations(tls.client_ca_file)
        elif tls.client_ca:
            context.load_verify_locations(cadata=tls.client_ca)
    except (OSError, ssl.SSLError, ValueError) as err:
        raise ConfigError(source, [f"tls_server_config: cannot load certificates: {err}"]) from err
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = (
        TLS_VERSIONS[tls.max_version] if tls.max_version else ssl.TLSVersion.MAXIMUM_SUPPORTED
    )
    _ciphers(context, tls, source)
    return context


def _ciphers(context: ssl.SSLContext, tls: TLSConfig, source: str) -> None:
    """cipher_suites (TLS 1.2 and older), the curve and whose preference picks the suite."""
    suites = [CIPHER_SUITES[name] for name in tls.cipher_suites if name in CIPHER_SUITES]
    try:
        if suites:
            context.set_ciphers(":".join(suites))
        for curve in tls.curve_preferences:
            context.set_ecdh_curve(CURVES[curve])
    except (ssl.SSLError, ValueError) as err:
        raise ConfigError(source, [f"tls_server_config: OpenSSL refuses the settings: {err}"]) from err
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
