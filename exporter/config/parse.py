"""Configuration parsing: a decoded YAML document in, a Config or every problem out; then the
credentials and webhook secrets from an environment mapping. Pure: no I/O of its own. The one
function that needs a file's content (credentials_from_env, for the *_FILE variables) is given the
reader; exporter.config.load passes the real one.

Each rule lives here once, as a named function, and the limits it checks are named in
exporter.config.model. A problem names the file, the key and what is wrong; it never echoes the
value of a secret key, nor raw YAML text (a syntax error is reported by line, column and kind, a
section of the wrong type by its type), since the text around a mistake is often a token."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from exporter.api.fields import shorten
from exporter.clock import DAY, HOUR, MILLISECOND, MINUTE, SECOND
from exporter.config.model import (
    ACCOUNT_SID,
    API_HOURLY_LIMIT,
    IF_UNREADABLE,
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_DURATION,
    MAX_PAGE_SIZE,
    MAX_PORT,
    MAX_REQUESTS_PER_HOUR,
    MAX_REQUESTS_PER_SECOND,
    MAX_RESERVE,
    MAX_WEBHOOK_BODY,
    MIN_HETRIXTOOLS_TOKEN,
    MIN_WEBHOOK_BODY,
    PER_HOST_CHOICES,
    ROUTES,
    ApiConfig,
    BudgetConfig,
    CollectorConfig,
    Config,
    ExpositionConfig,
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
_DURATION_UNITS = (DAY, HOUR, MINUTE, SECOND, MILLISECOND)  # the groups of _DURATION, in order
NOT_A_DURATION = "must be a duration like 30s, 15m or 1h"
TOO_LONG = "must be a finite duration of at most 365d"
NOT_PRINTABLE = "must be printable text (no control characters or lone surrogates)"


def parse_duration(value: object) -> float:
    """`30s`, `15m`, `1h30m`, `2d`, `500ms` or a number of seconds; must be positive."""
    if isinstance(value, bool):
        raise ValueError(NOT_A_DURATION)
    if isinstance(value, int | float):
        seconds = _finite(value, TOO_LONG)
    elif isinstance(value, str) and value and (m := _DURATION.match(value.strip())) and any(m.groups()):
        seconds = sum(float(g) * unit for g, unit in zip(m.groups(), _DURATION_UNITS, strict=True) if g)
    else:
        raise ValueError(NOT_A_DURATION)
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise ValueError(TOO_LONG)
    if seconds <= 0:
        raise ValueError("must be more than zero")
    return seconds


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
        raise ValueError(NOT_PRINTABLE)
    return text


def _secret_list(value: object) -> tuple[str, ...]:
    items = _text_list(value)
    if any(unusable_secret(item) for item in items):
        raise ValueError(NOT_PRINTABLE)
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
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_WEBHOOK_BODY <= value <= MAX_WEBHOOK_BODY
    ):
        raise ValueError(f"must be a number of bytes from {MIN_WEBHOOK_BODY} to {MAX_WEBHOOK_BODY}")
    return value


def check_hetrixtools_token(token: str) -> str:
    """The HetrixTools token rule, for webhooks.hetrixtools_token and HETRIXTOOLS_WEBHOOK_TOKEN alike:
    printable, and long enough not to be guessed (it is all that guards the receiver's URL)."""
    if unusable_secret(token):
        raise ValueError(NOT_PRINTABLE)
    if len(token) < MIN_HETRIXTOOLS_TOKEN:
        raise ValueError(
            f"must be at least {MIN_HETRIXTOOLS_TOKEN} characters (it is the only thing guarding the URL)"
        )
    return token


def _token(value: object) -> str | None:
    token = _optional_text(value)
    return None if token is None else check_hetrixtools_token(token)


def account_sid_problem(sid: str) -> str | None:
    """The account SID rule, for api.account_sid in the file and in the environment alike. A
    malformed SID is often the token pasted in the wrong place: only its shape is shown."""
    if ACCOUNT_SID.fullmatch(sid):
        return None
    return (
        "api.account_sid: must be 2 letters and 32 hex digits (AC...), "
        f"got {len(sid)} characters starting {sid[:2]!r}"
    )


def parse_listen_address(value: object) -> tuple[str, int]:
    """`host:port`, `:port` or `[v6]:port`; an empty host listens on every address."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError("must be host:port or :port")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not port_text.isdigit() or not 0 < int(port_text) <= MAX_PORT:
        raise ValueError(f"port must be a number from 1 to {MAX_PORT}")
    return host, int(port_text)


def _listen_address(value: object) -> str:
    parse_listen_address(value)
    assert isinstance(value, str)  # noqa: S101 - checked by parse_listen_address
    return value


def _route_pattern(template: str) -> re.Pattern[str]:
    """What an aiohttp route template matches: `{name}` one path segment, `{name:regex}` the
    regex, everything else itself."""
    out, at = [], 0
    for var in re.finditer(r"\{\w+(?::([^{}]+))?\}", template):
        out += [re.escape(template[at : var.start()]), var.group(1) or "[^/]+"]
        at = var.end()
    return re.compile("".join(out) + re.escape(template[at:]))


ROUTE_PATTERNS = tuple((_route_pattern(t), t, what) for t, what in ROUTES.items())


def check_telemetry_path(value: object) -> str:
    """The telemetry path rule, for web.telemetry_path and --web.telemetry-path alike: a path,
    and none that another route of the exporter serves (config.model.ROUTES)."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError("must be a path starting with /")
    for pattern, template, what in ROUTE_PATTERNS:
        if pattern.fullmatch(value):
            raise ValueError(f"must not be a path another route serves: {what} ({template})")
    return value


Checker = Callable[[object], Any]
# Every key of every section and its rule; a key left out keeps its dataclass default.
SECTIONS: dict[str, dict[str, Checker]] = {
    "api": {
        "base_url": _url,
        "page_size": _int_range(1, MAX_PAGE_SIZE),
        "timeout": parse_duration,
        "account_sid": _optional_text,
        "auth_token": _secret,
    },
    "budget": {
        "requests_per_hour": _int_range(1, MAX_REQUESTS_PER_HOUR),
        "allow_over_limit": _boolean,
        "requests_per_second": _number_range(0.0, MAX_REQUESTS_PER_SECOND, lo_open=True),
        "reserve": _number_range(0.0, MAX_RESERVE),
    },
    "web": {
        "listen_address": _listen_address,
        "telemetry_path": check_telemetry_path,
    },
    "log": {
        "level": _choice(LOG_LEVELS),
        "format": _choice(LOG_FORMATS),
    },
    "webhooks": {
        "enabled": _boolean,
        "secrets": _secret_list,
        "tolerance": parse_duration,
        "max_body_bytes": _size,
        "refresh_debounce": parse_duration,
        "hetrixtools_token": _token,
        "hetrixtools_allowed_cidrs": _cidr_list,
        "trusted_proxies": _cidr_list,
        "series_max_age": parse_duration,
    },
    "state": {
        "path": _file_path,
        "if_unreadable": _choice(IF_UNREADABLE),
    },
    "exposition": {
        "per_host": _choice(PER_HOST_CHOICES),
    },
}
SECTION_TYPES: dict[str, type] = {
    "api": ApiConfig,
    "budget": BudgetConfig,
    "web": ListenConfig,
    "log": LogConfig,
    "webhooks": WebhookConfig,
    "state": StateConfig,
    "exposition": ExpositionConfig,
}
COLLECTOR_KEYS: dict[str, Checker] = {
    "enabled": _boolean,
    "interval": parse_duration,
    "max_age": parse_duration,
}
_KEY_SHOWN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,39}$")  # a longer key is more likely a token
SECRET_KEYS = {"auth_token", "secrets", "hetrixtools_token"}


def _unknown(key: object, where: str, known: list[str]) -> str:
    """An unknown key is named when it looks like a key; anything else (a pasted token, a line of
    YAML that lost its colon) is not echoed."""
    if not isinstance(key, str) or not _KEY_SHOWN.match(key):
        return f"{where}<a key that is not shown>: unknown key (keys are {', '.join(known)})"
    hint = difflib.get_close_matches(key, known, n=1)
    suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
    return f"{where}{key}: unknown key{suggestion}"


def _shown(key: str, value: object) -> str:
    return "<hidden>" if key in SECRET_KEYS else shorten(value)


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


def _checked(
    given: object, where: str, checkers: Mapping[str, Checker], problems: list[str]
) -> dict[str, Any]:
    """The keys of one mapping (a section, or a collector's body) that pass their rule; a problem
    for each that does not, for an unknown key, and for a `given` that is not a mapping."""
    if not isinstance(given, Mapping):
        problems.append(f"{where}: must be a mapping, got {kind_of(given)}")
        return {}
    values: dict[str, Any] = {}
    for key, value in given.items():
        if key not in checkers:
            problems.append(_unknown(key, f"{where}.", list(checkers)))
            continue
        try:
            values[key] = checkers[key](value)
        except ValueError as err:
            problems.append(f"{where}.{key}: {err}, got {_shown(key, value)}")
    return values


def _parse_collectors(raw: Mapping[Any, Any], problems: list[str]) -> dict[str, CollectorConfig]:
    collectors = default_collectors()
    given = raw.get("collectors") or {}
    if not isinstance(given, Mapping):
        problems.append(f"collectors: must be a mapping, got {kind_of(given)}")
        return collectors
    for name, body in given.items():
        if name not in collectors:
            problems.append(_unknown(name, "collectors.", list(collectors)))
            continue
        values = _checked(body, f"collectors.{name}", COLLECTOR_KEYS, problems)
        collectors[name] = replace(collectors[name], **values)
    return collectors


def _whole_config_problems(config: Config) -> list[str]:
    """The rules that span keys: the hourly budget, the account SID's form, one collector on."""
    problems: list[str] = []
    budget = config.budget
    if budget.requests_per_hour > API_HOURLY_LIMIT and not budget.allow_over_limit:
        problems.append(
            f"budget.requests_per_hour: must be at most {API_HOURLY_LIMIT} (the API's hourly limit "
            f"per application) unless budget.allow_over_limit is true, got {budget.requests_per_hour}"
        )
    sid = config.api.account_sid
    if sid is not None and (problem := account_sid_problem(sid)):
        problems.append(problem)
    if not any(c.enabled for c in config.collectors.values()):
        problems.append("collectors: at least one collector must be enabled, got none")
    return problems


def parse(raw: object, source: str = "<config>") -> Config:
    """Turn a decoded YAML document into a Config, or raise ConfigError listing every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(source, [f"(top level): must be a mapping of sections, got {kind_of(raw)}"])
    problems: list[str] = []
    sections = {
        name: SECTION_TYPES[name](**_checked(raw.get(name) or {}, name, checkers, problems))
        for name, checkers in SECTIONS.items()
    }
    collectors = _parse_collectors(raw, problems)
    known = [*SECTIONS, "collectors"]
    problems += [_unknown(key, "", known) for key in raw if key not in known]
    config = Config(collectors=collectors, **sections)
    problems += _whole_config_problems(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def unreadable_why(err: OSError | UnicodeError) -> str:
    """Why a file could not be read, without a byte of its content."""
    if isinstance(err, UnicodeDecodeError):
        return f"not UTF-8 text: an invalid byte at offset {err.start}"
    if isinstance(err, UnicodeError):
        return "not UTF-8 text"
    return err.strerror or type(err).__name__


def _credential(
    var: str, env: Mapping[str, str], read_file: Callable[[str], str], problems: list[str]
) -> str | None:
    """The value of `var`, else the content of the file `var`_FILE names (stripped), else None."""
    value = env.get(var) or None
    file_path = env.get(f"{var}_FILE")
    if value is None and file_path:
        try:
            value = read_file(file_path).strip() or None
        except (OSError, UnicodeError) as err:
            problems.append(f"{var}_FILE: cannot read, got {file_path!r} ({unreadable_why(err)})")
    return value


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
        found[key] = _credential(var, env, read_file, problems) or current
        if not found[key]:
            problems.append(
                f"api.{key}: required, set {var} or {var}_FILE (or api.{key} in the config file), got nothing"
            )
    sid, token = found["account_sid"], found["auth_token"]
    if token and unusable_secret(token):
        problems.append(f"api.auth_token: {NOT_PRINTABLE}, got <hidden>")
    webhooks = webhook_secrets_from_env(config.webhooks, env, read_file, problems)
    if sid and (problem := account_sid_problem(sid)):
        problems.append(problem)
    if problems:
        raise ConfigError(source, problems)
    if sid is None or token is None:  # unreachable: each missing value added a problem above
        raise ConfigError(source, ["api: credentials missing"])
    return replace(config.with_credentials(sid, token), webhooks=webhooks)


def _secrets_from_env(
    env: Mapping[str, str], read_file: Callable[[str], str], problems: list[str]
) -> list[str]:
    """GENERATORLABS_WEBHOOK_SECRET (comma-separated for rotation), else the lines of the file
    GENERATORLABS_WEBHOOK_SECRET_FILE names."""
    value = env.get("GENERATORLABS_WEBHOOK_SECRET")
    file_path = env.get("GENERATORLABS_WEBHOOK_SECRET_FILE")
    if value:
        return [v.strip() for v in value.split(",") if v.strip()]
    if not file_path:
        return []
    try:
        return [v.strip() for v in read_file(file_path).splitlines() if v.strip()]
    except (OSError, UnicodeError) as err:
        problems.append(
            f"GENERATORLABS_WEBHOOK_SECRET_FILE: cannot read, got {file_path!r} ({unreadable_why(err)})"
        )
        return []


def webhook_secrets_from_env(
    webhooks: WebhookConfig,
    env: Mapping[str, str],
    read_file: Callable[[str], str],
    problems: list[str],
) -> WebhookConfig:
    """GENERATORLABS_WEBHOOK_SECRET (comma-separated for rotation) or _FILE (one per line) add to
    webhooks.secrets; HETRIXTOOLS_WEBHOOK_TOKEN replaces webhooks.hetrixtools_token. An enabled
    receiver without any secret is a config problem."""
    secrets = [*webhooks.secrets, *_secrets_from_env(env, read_file, problems)]
    if any(unusable_secret(secret) for secret in secrets):
        problems.append(f"GENERATORLABS_WEBHOOK_SECRET: {NOT_PRINTABLE}, got <hidden>")
    token = env.get("HETRIXTOOLS_WEBHOOK_TOKEN") or webhooks.hetrixtools_token
    if token is not None:
        try:
            check_hetrixtools_token(token)
        except ValueError as err:
            problems.append(f"HETRIXTOOLS_WEBHOOK_TOKEN: {err}, got <hidden>")
    if webhooks.enabled and not secrets:
        problems.append(
            "webhooks.secrets: required when webhooks.enabled is true, set "
            "GENERATORLABS_WEBHOOK_SECRET or GENERATORLABS_WEBHOOK_SECRET_FILE "
            "(or webhooks.secrets), got nothing"
        )
    return replace(webhooks, hetrixtools_token=token, secrets=tuple(dict.fromkeys(secrets)))
