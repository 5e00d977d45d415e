"""Pure configuration parsing: a raw mapping and an environment in, a Config or every problem out.

A problem names the file, the key and what is wrong; it never echoes the value of a secret key,
nor raw YAML text (a syntax error is reported by line, column and kind, a section of the wrong
type by its type), since the text around a mistake is often a token."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from exporter.api.fields import shorten
from exporter.config.model import (
    API_HOURLY_LIMIT,
    DEFAULT_BASE_URL,
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_SERIES_MAX_AGE,
    IF_UNREADABLE,
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_DURATION,
    MAX_REQUESTS_PER_HOUR,
    ApiConfig,
    BudgetConfig,
    CollectorConfig,
    Config,
    ListenConfig,
    LogConfig,
    StateConfig,
    WebhookConfig,
    default_collectors,
)
from exporter.errors import ConfigError

_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?"
    r"(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$"
)
_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")


def parse_duration(value: object) -> float:
    """`30s`, `15m`, `1h30m`, `2d`, `500ms` or a number of seconds; must be positive."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like 30s, 15m or 1h")
    if isinstance(value, int | float):
        seconds = _finite(value, "must be a finite duration of at most 365d")
    elif isinstance(value, str) and value and (m := _DURATION.match(value.strip())) and any(m.groups()):
        d, h, mi, s, ms = (float(g) if g else 0.0 for g in m.groups())
        seconds = d * 86400 + h * 3600 + mi * 60 + s + ms / 1000
    else:
        raise ValueError("must be a duration like 30s, 15m or 1h")
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise ValueError("must be a finite duration of at most 365d")
    if seconds <= 0:
        raise ValueError("must be more than zero")
    return seconds



def format_duration(seconds: float) -> str:
    """The shortest exact spelling in the config's own duration syntax."""
    if seconds >= 60 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"



def _int_range(lo: int, hi: int | None = None) -> Callable[[object], int]:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        if value < lo or (hi is not None and value > hi):
            raise ValueError(f"must be between {lo} and {hi}" if hi else f"must be at least {lo}")
        return value

    return check



def _finite(value: int | float, problem: str) -> float:
    """A YAML number as a float; `.inf`, `.nan` and integers too large for a float (400 digits
    raise OverflowError in float() and math.isfinite()) are ValueError(problem)."""
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(problem) from None
    if not math.isfinite(number):
        raise ValueError(problem)
    return number



def _number_range(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[object], float]:
    def check(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        problem = f"must be {'more than' if lo_open else 'at least'} {lo:g} and at most {hi:g}"
        number = _finite(value, problem)
        if number > hi or number < lo or (lo_open and number == lo):
            raise ValueError(problem)
        return number

    return check



def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value



def _url(value: object) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")



def _choice(options: tuple[str, ...]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        assert isinstance(value, str)  # noqa: S101 - narrowed by the membership test
        return value

    return check



def _optional_text(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value.strip()



def unusable_secret(text: str) -> bool:
    """A secret, token or password that cannot be sent or compared: it holds a control character
    or a lone surrogate (YAML's "\ud800", or an environment variable with undecodable bytes),
    which would make every HTTP header or HMAC built from it fail."""
    return not text.isprintable()  # False for control characters and for lone surrogates



def _secret(value: object) -> str | None:
    text = _optional_text(value)
    if text is not None and unusable_secret(text):
        raise ValueError("must be printable text (no control characters or lone surrogates)")
    return text



def _secret_list(value: object) -> tuple[str, ...]:
    items = _text_list(value)
    if any(unusable_secret(item) for item in items):
        raise ValueError("must be printable text (no control characters or lone surrogates)")
    return items



def _file_path(value: object) -> str | None:
    path = _optional_text(value)
    if path is not None and ("\0" in path or any("\ud800" <= c <= "\udfff" for c in path)):
        raise ValueError("must be a file path (no NUL or lone surrogates)")
    return path



def _text_list(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError("must be a list of non-empty strings")
    return tuple(v.strip() for v in value)



def _cidr_list(value: object) -> tuple[str, ...]:
    items = _text_list(value)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(
                f"must be a list of IP networks like 173.245.48.0/20 ({item!r} is not)"
            ) from None
    return items



def _size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value <= 64 * 1024 * 1024:
        raise ValueError("must be a number of bytes from 1024 to 67108864")
    return value



def _token(value: object) -> str | None:
    token = _secret(value)
    if token is not None and len(token) < 16:
        raise ValueError("must be at least 16 characters (it is the only thing guarding the URL)")
    return token



def parse_listen_address(value: object) -> tuple[str, int]:
    """`host:port`, `:port` or `[v6]:port`; an empty host listens on every address."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError("must be host:port or :port")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("port must be a number from 1 to 65535")
    return host, int(port_text)



def _listen_address(value: object) -> str:
    parse_listen_address(value)
    assert isinstance(value, str)  # noqa: S101 - checked by parse_listen_address
    return value



def _path(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/") or value in {"/", "/-/healthy"}:
        raise ValueError("must be a path starting with / (not / itself)")
    return value

Checker = Callable[[object], Any]
SECTIONS: dict[str, dict[str, tuple[Checker, Any]]] = {
    "api": {
        "base_url": (_url, DEFAULT_BASE_URL),
        "page_size": (_int_range(1, 1000), 100),
        "timeout": (parse_duration, 30.0),
        "account_sid": (_optional_text, None),
        "auth_token": (_secret, None),
    },
    "budget": {
        "requests_per_hour": (_int_range(1, MAX_REQUESTS_PER_HOUR), 900),
        "allow_over_limit": (_boolean, False),
        "requests_per_second": (_number_range(0.0, 50.0, lo_open=True), 5.0),
        "reserve": (_number_range(0.0, 0.9), 0.1),
    },
    "web": {
        "listen_address": (_listen_address, DEFAULT_LISTEN_ADDRESS),
        "telemetry_path": (_path, "/metrics"),
    },
    "log": {
        "level": (_choice(LOG_LEVELS), "info"),
        "format": (_choice(LOG_FORMATS), "logfmt"),
    },
    "webhooks": {
        "enabled": (_boolean, False),
        "secrets": (_secret_list, ()),
        "tolerance": (parse_duration, 300.0),
        "max_body_bytes": (_size, 1024 * 1024),
        "refresh_debounce": (parse_duration, 60.0),
        "hetrixtools_token": (_token, None),
        "hetrixtools_allowed_cidrs": (_cidr_list, ()),
        "trusted_proxies": (_cidr_list, ()),
        "series_max_age": (parse_duration, DEFAULT_SERIES_MAX_AGE),
    },
    "state": {
        "path": (_file_path, None),
        "if_unreadable": (_choice(IF_UNREADABLE), "fail"),
    },
}
COLLECTOR_KEYS: dict[str, Checker] = {
    "enabled": _boolean,
    "interval": parse_duration,
    "max_age": parse_duration,
}
_KEY_SHOWN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,39}$")


def _unknown(key: object, where: str, known: list[str]) -> str:
    """An unknown key is named when it looks like a key; anything else (a pasted token, a line of
    YAML that lost its colon) is not echoed."""
    if not isinstance(key, str) or not _KEY_SHOWN.match(key):
        return f"{where}<a key that is not shown>: unknown key (keys are {', '.join(known)})"
    hint = difflib.get_close_matches(key, known, n=1)
    suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
    return f"{where}{key}: unknown key{suggestion}"

SECRET_KEYS = {"auth_token", "secrets", "hetrixtools_token"}


def _shown(key: str, value: object) -> str:
    return "<hidden>" if key in SECRET_KEYS else shorten(value)



def _sid_shown(sid: str) -> str:
    """A malformed SID is often the token pasted in the wrong place: show its shape only."""
    return f"{len(sid)} characters starting {sid[:2]!r}"



def kind_of(value: object) -> str:
    """A value's type in words, for a section that is not a mapping: never its content."""
    if isinstance(value, bool):
        return "true or false"
    kinds: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (str, "a string"),
        ((int, float), "a number"),
        ((list, tuple), "a list"),
        (Mapping, "a mapping"),
    )
    return next(
        (text for cls, text in kinds if isinstance(value, cls)), f"a value of type {type(value).__name__}"
    )



def _parse_sections(raw: Mapping[Any, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {}
    for name, keys in SECTIONS.items():
        given = raw.get(name) or {}
        values = {k: default for k, (_, default) in keys.items()}
        if not isinstance(given, Mapping):
            problems.append(f"{name}: must be a mapping, got {kind_of(given)}")
            given = {}
        for key, value in given.items():
            if key not in keys:
                problems.append(_unknown(key, f"{name}.", list(keys)))
                continue
            try:
                values[key] = keys[key][0](value)
            except ValueError as err:
                problems.append(f"{name}.{key}: {err}, got {_shown(key, value)}")
        sections[name] = values
    return sections



def _parse_collectors(raw: Mapping[Any, Any], problems: list[str]) -> dict[str, CollectorConfig]:
    collectors = default_collectors()
    given_collectors = raw.get("collectors") or {}
    if not isinstance(given_collectors, Mapping):
        problems.append(f"collectors: must be a mapping, got {kind_of(given_collectors)}")
        given_collectors = {}
    for cname, body in given_collectors.items():
        if cname not in collectors:
            problems.append(_unknown(cname, "collectors.", list(collectors)))
            continue
        if not isinstance(body, Mapping):
            problems.append(f"collectors.{cname}: must be a mapping, got {kind_of(body)}")
            continue
        current = collectors[cname]
        fields: dict[str, Any] = {
            "enabled": current.enabled,
            "interval": current.interval,
            "max_age": current.max_age,
        }
        for key, value in body.items():
            if key not in COLLECTOR_KEYS:
                problems.append(_unknown(key, f"collectors.{cname}.", list(COLLECTOR_KEYS)))
                continue
            try:
                fields[key] = COLLECTOR_KEYS[key](value)
            except ValueError as err:
                problems.append(f"collectors.{cname}.{key}: {err}, got {_shown(key, value)}")
        collectors[cname] = CollectorConfig(**fields)
    return collectors



def parse(raw: object, source: str = "<config>") -> Config:
    """Turn a decoded YAML document into a Config, or raise ConfigError listing every problem."""
    problems: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(source, [f"(top level): must be a mapping of sections, got {kind_of(raw)}"])
    sections = _parse_sections(raw, problems)
    collectors = _parse_collectors(raw, problems)
    for key in raw:
        if key not in SECTIONS and key != "collectors":
            problems.append(_unknown(key, "", [*SECTIONS, "collectors"]))

    budget = sections["budget"]
    if budget["requests_per_hour"] > API_HOURLY_LIMIT and not budget["allow_over_limit"]:
        problems.append(
            f"budget.requests_per_hour: must be at most {API_HOURLY_LIMIT} (the API's hourly limit "
            f"per application) unless budget.allow_over_limit is true, got {budget['requests_per_hour']}"
        )
    sid = sections["api"]["account_sid"]
    if sid is not None and not _SID.match(sid):
        problems.append(
            f"api.account_sid: must be 2 letters and 32 hex digits (AC...), got {_sid_shown(sid)}"
        )
    if not any(c.enabled for c in collectors.values()):
        problems.append("collectors: at least one collector must be enabled, got none")
    if problems:
        raise ConfigError(source, problems)
    return Config(
        api=ApiConfig(**sections["api"]),
        budget=BudgetConfig(**sections["budget"]),
        collectors=collectors,
        web=ListenConfig(**sections["web"]),
        log=LogConfig(**sections["log"]),
        webhooks=WebhookConfig(**sections["webhooks"]),
        state=StateConfig(**sections["state"]),
    )



def unreadable_why(err: OSError | UnicodeError) -> str:
    """Why a file could not be read, without a byte of its content."""
    if isinstance(err, UnicodeDecodeError):
        return f"not UTF-8 text: an invalid byte at offset {err.start}"
    if isinstance(err, UnicodeError):
        return "not UTF-8 text"
    return err.strerror or type(err).__name__




def credentials_from_env(
    config: Config, env: Mapping[str, str], read_file: Callable[[str], str], source: str
) -> Config:
    """Fill the account SID and auth token: environment first, then *_FILE, then the config file.

    Raises ConfigError (without ever echoing the token) when either is missing.
    """
    problems: list[str] = []
    found: dict[str, str | None] = {}
    for var, key, current in (
        ("GENERATORLABS_ACCOUNT_SID", "account_sid", config.api.account_sid),
        ("GENERATORLABS_AUTH_TOKEN", "auth_token", config.api.auth_token),
    ):
        value = env.get(var) or None
        file_path = env.get(f"{var}_FILE")
        if value is None and file_path:
            try:
                value = read_file(file_path).strip() or None
            except (OSError, UnicodeError) as err:
                problems.append(f"{var}_FILE: cannot read, got {file_path!r} ({unreadable_why(err)})")
        found[key] = value or current
        if not found[key]:
            problems.append(
                f"api.{key}: required, set {var} or {var}_FILE (or api.{key} in the config file), got nothing"
            )
    token = found["auth_token"]
    if token and unusable_secret(token):
        problems.append(
            "api.auth_token: must be printable text (no control characters or lone surrogates), got <hidden>"
        )
    webhooks = webhook_secrets_from_env(config.webhooks, env, read_file, problems)
    sid = found["account_sid"]
    if sid and not _SID.match(sid):
        problems.append(
            f"api.account_sid: must be 2 letters and 32 hex digits (AC...), got {_sid_shown(sid)}"
        )
    if problems:
        raise ConfigError(source, problems)
    if sid is None or token is None:  # unreachable: each missing value added a problem above
        raise ConfigError(source, ["api: credentials missing"])
    return replace(config.with_credentials(sid, token), webhooks=webhooks)



def webhook_secrets_from_env(
    webhooks: WebhookConfig,
    env: Mapping[str, str],
    read_file: Callable[[str], str],
    problems: list[str],
) -> WebhookConfig:
    """GENERATORLABS_WEBHOOK_SECRET (comma-separated for rotation) or _FILE (one per line) add to
    webhooks.secrets; an enabled receiver without any secret is a config problem."""
    secrets = list(webhooks.secrets)
    value = env.get("GENERATORLABS_WEBHOOK_SECRET")
    file_path = env.get("GENERATORLABS_WEBHOOK_SECRET_FILE")
    if value:
        secrets += [v.strip() for v in value.split(",") if v.strip()]
    elif file_path:
        try:
            secrets += [v.strip() for v in read_file(file_path).splitlines() if v.strip()]
        except (OSError, UnicodeError) as err:
            problems.append(
                f"GENERATORLABS_WEBHOOK_SECRET_FILE: cannot read, got {file_path!r} ({unreadable_why(err)})"
            )
    if any(unusable_secret(secret) for secret in secrets):
        problems.append(
            "GENERATORLABS_WEBHOOK_SECRET: must be printable text (no control characters "
            "or lone surrogates), got <hidden>"
        )
    token = env.get("HETRIXTOOLS_WEBHOOK_TOKEN") or webhooks.hetrixtools_token
    if token is not None and len(token) < 16:
        problems.append("HETRIXTOOLS_WEBHOOK_TOKEN: must be at least 16 characters, got <hidden>")
    elif token is not None and unusable_secret(token):
        problems.append(
            "HETRIXTOOLS_WEBHOOK_TOKEN: must be printable text (no control characters "
            "or lone surrogates), got <hidden>"
        )
    webhooks = replace(webhooks, hetrixtools_token=token)
    if webhooks.enabled and not secrets:
        problems.append(
            "webhooks.secrets: required when webhooks.enabled is true, set "
            "GENERATORLABS_WEBHOOK_SECRET or GENERATORLABS_WEBHOOK_SECRET_FILE "
            "(or webhooks.secrets), got nothing"
        )
    return replace(webhooks, secrets=tuple(dict.fromkeys(secrets)))

