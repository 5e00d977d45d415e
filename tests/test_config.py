"""Config parsing: defaults, every problem at once, credentials, and the example file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from exporter.api.endpoints import COLLECTORS
from exporter.config.load import default_state_path, load
from exporter.config.model import Config
from exporter.config.parse import (
    COLLECTOR_KEYS,
    SECTIONS,
    credentials_from_env,
    parse,
    parse_duration,
)
from exporter.errors import ConfigError
from exporter.web.routes import ServerParts, build_app
from tests.helpers.exporters import simulated_exporter
from tests.helpers.rig import FakeClock

ROOT = Path(__file__).resolve().parent.parent
SID = "AC" + "a" * 32
TOKEN = "secret-token-value-" + "0" * 40


def problems(raw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(raw, "cfg.yaml")
    return info.value.problems


def test_empty_config_gives_the_documented_defaults() -> None:
    config = parse(None)
    assert config.api.base_url == "https://api.generatorlabs.com/4.0"
    assert config.api.page_size == 100
    assert config.budget.requests_per_hour == 900
    assert config.web.listen_address == ":9816"
    assert config.web.telemetry_path == "/metrics"
    for name in ("rbl_listings", "rbl_hosts", "cert_monitors", "cert_errors"):
        assert config.collectors[name].enabled


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2d", 172800),
        ("500ms", 0.5),
        (45, 45),
        ("90", None),
    ],
)
def test_durations(text: object, seconds: float | None) -> None:
    if seconds is None:
        with pytest.raises(ValueError, match="duration"):
            parse_duration(text)
    else:
        assert parse_duration(text) == seconds


def test_every_problem_is_reported_at_once_with_key_problem_and_value() -> None:
    found = problems(
        {
            "api": {"page_size": 0, "base_url": "ftp://x"},
            "budget": {"requests_per_hour": "lots"},
            "collectors": {"rbl_listings": {"interval": "soon"}},
        }
    )
    assert "api.page_size: must be between 1 and 1000, got 0" in found
    assert "api.base_url: must be an http:// or https:// URL, got 'ftp://x'" in found
    assert "budget.requests_per_hour: must be a whole number, got 'lots'" in found
    assert "collectors.rbl_listings.interval: must be a duration like 30s, 15m or 1h, got 'soon'" in found
    assert len(found) == 4


def test_unknown_keys_get_a_did_you_mean() -> None:
    found = problems(
        {
            "budjet": {},
            "api": {"page_sise": 10},
            "collectors": {"rbl_listing": {}, "cert_errors": {"intreval": "1m"}},
        }
    )
    assert "budjet: unknown key (did you mean 'budget'?)" in found
    assert "api.page_sise: unknown key (did you mean 'page_size'?)" in found
    assert "collectors.rbl_listing: unknown key (did you mean 'rbl_listings'?)" in found
    assert "collectors.cert_errors.intreval: unknown key (did you mean 'interval'?)" in found


def test_what_to_do_with_an_unreadable_state_file_is_one_of_two_choices() -> None:
    assert parse({"state": {"if_unreadable": "move_aside"}}).state.if_unreadable == "move_aside"
    assert problems({"state": {"if_unreadable": "delete"}}) == [
        "state.if_unreadable: must be one of fail, move_aside, got 'delete'"
    ]


def test_budget_above_the_api_limit_needs_an_explicit_override() -> None:
    (problem,) = problems({"budget": {"requests_per_hour": 1500}})
    assert problem.startswith("budget.requests_per_hour: must be at most 1000")
    assert problem.endswith("got 1500")
    config = parse({"budget": {"requests_per_hour": 1500, "allow_over_limit": True}})
    assert config.budget.requests_per_hour == 1500


def test_disabling_every_collector_is_refused() -> None:
    raw = {"collectors": {name: {"enabled": False} for name in COLLECTORS}}
    assert problems(raw) == ["collectors: at least one collector must be enabled, got none"]


def test_auth_token_in_a_bad_config_is_never_echoed() -> None:
    found = problems({"api": {"auth_token": 12345678}})
    assert found == ["api.auth_token: must be a string, got <hidden>"]


def test_credentials_come_from_the_environment_first() -> None:
    config = credentials_from_env(
        parse({}), {"GENERATORLABS_ACCOUNT_SID": SID, "GENERATORLABS_AUTH_TOKEN": TOKEN}, _no_file, "x"
    )
    assert (config.api.account_sid, config.api.auth_token) == (SID, TOKEN)
    assert TOKEN not in repr(config)


def _no_file(path: str) -> str:
    raise FileNotFoundError(2, "No such file or directory")


def test_credentials_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    env = {"GENERATORLABS_ACCOUNT_SID": SID, "GENERATORLABS_AUTH_TOKEN_FILE": str(tmp_path / "token")}
    config = credentials_from_env(parse({}), env, lambda p: Path(p).read_text(), "x")
    assert config.api.auth_token == TOKEN


def test_missing_credentials_say_how_to_set_them() -> None:
    with pytest.raises(ConfigError) as info:
        credentials_from_env(parse({}), {"GENERATORLABS_AUTH_TOKEN_FILE": "/nope"}, _no_file, "x")
    text = str(info.value)
    assert "GENERATORLABS_AUTH_TOKEN_FILE: cannot read, got '/nope'" in text
    assert "api.account_sid: required, set GENERATORLABS_ACCOUNT_SID" in text


def test_malformed_sid_is_named() -> None:
    with pytest.raises(ConfigError, match=r"api.account_sid: must be 2 letters and 32 hex"):
        credentials_from_env(
            parse({}), {"GENERATORLABS_ACCOUNT_SID": "nope", "GENERATORLABS_AUTH_TOKEN": TOKEN}, _no_file, "x"
        )


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("api:\n  page_size: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load(str(path))


def test_example_config_documents_every_key_with_its_default() -> None:
    """config.example.yaml is the key reference: it must parse to exactly the defaults."""
    raw = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    assert parse(raw) == Config()
    for section, keys in SECTIONS.items():
        assert set(raw[section]) == set(keys), section
    assert set(raw["collectors"]) == set(COLLECTORS)
    for body in raw["collectors"].values():
        assert set(body) >= set(COLLECTOR_KEYS) - {"max_age"}


def test_webhook_secrets_from_the_environment_and_refusal_without_one(tmp_path: Path) -> None:
    env = {"GENERATORLABS_ACCOUNT_SID": SID, "GENERATORLABS_AUTH_TOKEN": TOKEN}
    enabled = parse({"webhooks": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"webhooks\.secrets: required when webhooks\.enabled is true"):
        credentials_from_env(enabled, env, _no_file, "x")
    config = credentials_from_env(enabled, {**env, "GENERATORLABS_WEBHOOK_SECRET": "new,old"}, _no_file, "x")
    assert config.webhooks.secrets == ("new", "old")
    (tmp_path / "s").write_text("secret-one\nsecret-two\n")
    files = {**env, "GENERATORLABS_WEBHOOK_SECRET_FILE": str(tmp_path / "s")}
    config = credentials_from_env(enabled, files, lambda p: Path(p).read_text(), "x")
    assert config.webhooks.secrets == ("secret-one", "secret-two")
    assert "secret-one" not in repr(config)
    hx = credentials_from_env(parse({}), {**env, "HETRIXTOOLS_WEBHOOK_TOKEN": "t" * 20}, _no_file, "x")
    assert hx.webhooks.hetrixtools_token == "t" * 20


def test_webhook_keys_are_checked() -> None:
    found = problems(
        {
            "webhooks": {
                "secrets": "",
                "hetrixtools_token": "short",
                "hetrixtools_allowed_cidrs": ["nope"],
                "max_body_bytes": 10,
            }
        }
    )
    assert (
        "webhooks.hetrixtools_token: must be at least 16 characters (it is the only thing "
        "guarding the URL), got <hidden>"
    ) in found
    assert any(
        p.startswith("webhooks.hetrixtools_allowed_cidrs: must be a list of IP networks") for p in found
    )
    assert "webhooks.max_body_bytes: must be a number of bytes from 1024 to 67108864, got 10" in found


BROKEN_YAML = f'api:\n  auth_token: "tok_{TOKEN}\nbudget: {{}}\n'
BROKEN_SECTION = f"webhooks:\n  - whsec_{TOKEN}\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            BROKEN_YAML,
            "(file): not valid YAML at line 2, column 15: while scanning a quoted scalar, "
            "found unexpected end of stream",
        ),
        (BROKEN_SECTION, "webhooks: must be a mapping, got a list"),
    ],
)
async def test_a_failed_reload_names_the_problem_not_the_text(
    aiohttp_client: Any, clock: FakeClock, tmp_path: Path, text: str, problem: str
) -> None:
    """Both the 400 answer of POST /-/reload and the config.reload_failed log line."""
    path = tmp_path / "c.yaml"
    path.write_text("{}\n")
    config = load(str(path)).with_credentials(SID, TOKEN)
    async with simulated_exporter(clock, config, hosts=2, monitors=1, sid=SID, token=TOKEN) as simulated:
        exporter = simulated.exporter

        async def reload() -> list[str]:
            return await exporter.reload(lambda: load(str(path)).with_credentials(SID, TOKEN))

        client = await aiohttp_client(
            build_app(ServerParts(exporter.scraper, exporter.store, exporter.live, reload, clock.time))
        )
        path.write_text(text)
        with structlog.testing.capture_logs() as logs:
            response = await client.post("/-/reload")
        body = await response.text()
        assert response.status == 400
        assert body == f"config not reloaded, old config kept:\n  - {problem}\n"
        assert [(e["event"], e["problems"]) for e in logs] == [("config.reload_failed", [problem])]
        assert TOKEN not in body + repr(logs)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("api:\n  timeout: 2024-13-45\n", "not valid YAML: a value it holds cannot be read (ValueError)"),
        ("api:\n  auth_token: tok\x00en\n", "not valid YAML: a character it does not allow at offset 22"),
        ("api: " + "[" * 5000, "not valid YAML: nested too deeply"),
        (
            "api:\n  auth_token: *secret_alias\n",
            "not valid YAML at line 2, column 15: found undefined alias '…'",
        ),
    ],
)
def test_any_unreadable_yaml_is_a_config_error_without_its_text(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert info.value.problems == [f"(file): {problem}"]


HUGE = 10**400  # YAML reads 400 digits as an int that float() and math.isfinite() refuse


@pytest.mark.parametrize(
    "raw",
    [
        {"budget": {"requests_per_second": HUGE}},
        {"budget": {"reserve": -HUGE}},
        {"budget": {"requests_per_hour": HUGE, "allow_over_limit": True}},
        {"api": {"timeout": HUGE}},
        {"api": {"page_size": HUGE}},
        {"webhooks": {"tolerance": HUGE}},
        {"webhooks": {"series_max_age": HUGE}},
        {"webhooks": {"max_body_bytes": HUGE}},
        {"collectors": {"rbl_hosts": {"interval": HUGE}}},
        {"collectors": {"cert_errors": {"max_age": -HUGE}}},
        {"api": {"timeout": "9" * 400 + "s"}},
    ],
)
def test_huge_numbers_are_config_problems_naming_the_key(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse(raw)
    [problem] = info.value.problems
    section = next(iter(raw))
    assert problem.startswith(f"{section}.")
    assert len(problem) < 200  # the value is shown shortened, never 400 digits


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"api": {"auth_token": "token-\ud800"}}, "api.auth_token"),
        ({"webhooks": {"secrets": ["fine-secret", "line\r\nbreak"]}}, "webhooks.secrets"),
        ({"webhooks": {"hetrixtools_token": "a" * 16 + "\x00"}}, "webhooks.hetrixtools_token"),
        ({"state": {"path": "/var/lib/x\x00y.sqlite"}}, "state.path"),
    ],
)
def test_secrets_and_paths_that_could_never_be_used_are_config_problems(
    raw: dict[str, Any], key: str
) -> None:
    """A lone surrogate or control character in a secret would make every HMAC or header built
    from it raise; a NUL in a path makes every open() raise. Secrets stay hidden."""
    with pytest.raises(ConfigError) as info:
        parse(raw)
    [problem] = info.value.problems
    assert problem.startswith(f"{key}: ")
    assert "\ud800" not in problem and "break" not in problem


def test_secrets_from_the_environment_are_checked_the_same_way() -> None:
    env = {
        "GENERATORLABS_ACCOUNT_SID": "AC" + "1" * 32,
        "GENERATORLABS_AUTH_TOKEN": "token\udcff",  # an undecodable byte, as os.environ gives it
        "GENERATORLABS_WEBHOOK_SECRET": "secret\udcff",
        "HETRIXTOOLS_WEBHOOK_TOKEN": "hx-token-0123456789\x07",
    }
    with pytest.raises(ConfigError) as info:
        credentials_from_env(parse({}), env, lambda path: "", "<env>")
    assert [p.split(":")[0] for p in info.value.problems] == [
        "api.auth_token",
        "GENERATORLABS_WEBHOOK_SECRET",
        "HETRIXTOOLS_WEBHOOK_TOKEN",
    ]
    assert all(p.endswith("got <hidden>") for p in info.value.problems)


def test_the_hetrixtools_token_rule_is_the_same_in_the_file_and_the_environment() -> None:
    rule = "must be at least 16 characters (it is the only thing guarding the URL), got <hidden>"
    assert problems({"webhooks": {"hetrixtools_token": "t" * 15}}) == [f"webhooks.hetrixtools_token: {rule}"]
    env = {"GENERATORLABS_ACCOUNT_SID": SID, "GENERATORLABS_AUTH_TOKEN": TOKEN}
    with pytest.raises(ConfigError) as info:
        credentials_from_env(parse({}), {**env, "HETRIXTOOLS_WEBHOOK_TOKEN": "t" * 15}, _no_file, "x")
    assert info.value.problems == [f"HETRIXTOOLS_WEBHOOK_TOKEN: {rule}"]
    config = credentials_from_env(parse({}), {**env, "HETRIXTOOLS_WEBHOOK_TOKEN": "t" * 16}, _no_file, "x")
    assert config.webhooks.hetrixtools_token == "t" * 16


@pytest.mark.parametrize("sid", ["AC" + "a" * 31, "ac" + "a" * 32, "AC" + "g" * 32, TOKEN])
def test_the_account_sid_rule_is_the_same_in_the_file_and_the_environment(sid: str) -> None:
    """Only the shape of a malformed SID is shown: it is often the token pasted in its place."""
    expected = (
        f"api.account_sid: must be 2 letters and 32 hex digits (AC...), "
        f"got {len(sid)} characters starting {sid[:2]!r}"
    )
    assert problems({"api": {"account_sid": sid}}) == [expected]
    with pytest.raises(ConfigError) as info:
        credentials_from_env(
            parse({}), {"GENERATORLABS_ACCOUNT_SID": sid, "GENERATORLABS_AUTH_TOKEN": TOKEN}, _no_file, "x"
        )
    assert info.value.problems == [expected]


@pytest.mark.parametrize(
    "raw",
    [
        {"collectors": ["rbl_hosts"]},
        {"collectors": {"rbl_hosts": {"enabled": "yes"}}},
        {"budget": {"reserve": "a lot"}},
        {"budget": {"reserve": 0.95}},
        {"api": {"timeout": 0}},
        {"api": {"timeout": True}},
        {"webhooks": {"tolerance": ".inf"}},
        {"webhooks": {"trusted_proxies": None, "hetrixtools_allowed_cidrs": 7}},
        {"log": "debug"},
    ],
)
def test_each_wrong_value_is_one_problem_naming_its_key(raw: dict[str, Any]) -> None:
    [problem] = problems(raw)
    assert problem.startswith(f"{next(iter(raw))}")
    assert ": must be " in problem


@pytest.mark.parametrize(
    ("env", "path"),
    [
        ({"STATE_DIRECTORY": "/var/lib/gl:/var/lib/other", "HOME": "/home/u"}, "/var/lib/gl/state.sqlite"),
        ({"XDG_STATE_HOME": "/x/state", "HOME": "/home/u"}, "/x/state/generatorlabs-exporter/state.sqlite"),
        ({"HOME": "/home/u"}, "/home/u/.local/state/generatorlabs-exporter/state.sqlite"),
    ],
)
def test_the_state_file_goes_where_systemd_or_xdg_say(env: dict[str, str], path: str) -> None:
    assert default_state_path(env) == path


def test_a_webhook_secret_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    env = {
        "GENERATORLABS_ACCOUNT_SID": SID,
        "GENERATORLABS_AUTH_TOKEN": TOKEN,
        "GENERATORLABS_WEBHOOK_SECRET_FILE": str(tmp_path / "absent"),
    }
    with pytest.raises(ConfigError) as info:
        credentials_from_env(parse({}), env, _no_file, "x")
    assert info.value.problems == [
        f"GENERATORLABS_WEBHOOK_SECRET_FILE: cannot read, got '{tmp_path / 'absent'}' "
        "(No such file or directory)"
    ]
