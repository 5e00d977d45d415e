"""Configuration loading (I/O): the YAML file, secret files and the process environment. The only
functions here that read files or the environment; what they read goes to exporter.config.parse."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from exporter.config.model import Config
from exporter.config.parse import parse, unreadable_why
from exporter.errors import ConfigError

_QUOTED = re.compile(r"'([^']*)'")


def yaml_problem(err: BaseException) -> str:
    """Where and what a YAML syntax error is, never the text around it: PyYAML's own message
    quotes the lines near the mistake, which may hold a token (an unterminated auth_token: "...)."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.context_mark or err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "an unknown place"
        what = ", ".join(p for p in (err.context, err.problem) if p) or "a syntax error"
        # PyYAML quotes its own tokens ('<stream end>') and single characters; nothing longer
        what = _QUOTED.sub(lambda m: m[0] if len(m[1]) <= 2 or m[1].startswith("<") else "'…'", what)
        return f"not valid YAML at {where}: {what}"
    if isinstance(err, yaml.reader.ReaderError):
        return f"not valid YAML: a character it does not allow at offset {err.position}"
    if isinstance(err, RecursionError):
        return "not valid YAML: nested too deeply"
    return f"not valid YAML: a value it holds cannot be read ({type(err).__name__})"


def read_yaml(path: str) -> object:
    """A YAML file's document, or ConfigError naming the file, the line and column, and the kind
    of problem (config files and the web config file alike)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as err:
        raise ConfigError(path, [f"(file): cannot read, got {path!r} ({unreadable_why(err)})"]) from err
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as err:  # ValueError: a date like 2024-13-45
        raise ConfigError(path, [f"(file): {yaml_problem(err)}"]) from None


def load(path: str | None) -> Config:
    """Read and parse the config file (the only file read in this module besides *_FILE secrets)."""
    if path is None:
        return parse({}, "<defaults>")
    return parse(read_yaml(path), path)


def default_state_path(env: Mapping[str, str]) -> str:
    """systemd's $STATE_DIRECTORY, else $XDG_STATE_HOME or ~/.local/state, per user. (A demo
    without state.path uses a file of its own, removed on exit: see exporter.demo.wiring.)"""
    if env.get("STATE_DIRECTORY"):
        return str(Path(env["STATE_DIRECTORY"].split(":")[0]) / "state.sqlite")
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", ".")) / ".local" / "state")
    return str(Path(base) / "generatorlabs-exporter" / "state.sqlite")


def read_text_file(path: str) -> str:
    """A secret file's text (the reader credentials_from_env is given)."""
    return Path(path).read_text(encoding="utf-8")


def environ() -> Mapping[str, str]:
    """The process environment, where credentials and secrets may come from."""
    return os.environ
