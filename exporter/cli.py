"""Command line: flags in exporter-toolkit style, config loading, exit codes. The daemon's only
print() (the other is `python -m exporter.metrics`, which prints the README's metric table).

I/O: reads the config file, the web config file and the environment (through exporter.config),
prints to stdout and stderr, and runs the daemon (exporter.app.run) until it stops.

Exit codes: 0 after a clean stop, 2 for a config problem (file, flags, credentials), 1 when the
exporter cannot run (a broken or locked state file, a taken port); each with its reason on one
line of stderr (a config problem lists every problem found), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from dataclasses import replace

from exporter import __version__
from exporter.config.load import environ, load, read_text_file
from exporter.config.model import (
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_TELEMETRY_PATH,
    LOG_FORMATS,
    LOG_LEVELS,
    Config,
    LogConfig,
)
from exporter.config.parse import check_telemetry_path, credentials_from_env, parse_listen_address
from exporter.errors import ConfigError, ExporterError

EXIT_OK = 0  # --config.check found nothing, or the exporter stopped cleanly
EXIT_CANNOT_RUN = 1  # a broken or locked state file, a taken port
EXIT_CONFIG = 2  # a problem in the config file, the flags, the credentials or the web config
COMMAND_LINE = "(command line)"  # the source named in a ConfigError about a flag


def build_parser() -> argparse.ArgumentParser:
    """Every flag (pinned by tests/helpers/contract.py); the defaults live in the config model."""
    p = argparse.ArgumentParser(
        prog="generatorlabs-exporter",
        description="Prometheus exporter for Generator Labs RBL and certificate monitoring.",
    )
    p.add_argument(
        "--config.file",
        dest="config_file",
        metavar="PATH",
        help="YAML config file (see config.example.yaml); defaults apply without one",
    )
    p.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the config (and credentials) and exit: 0 ok, 2 problems",
    )
    p.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="ADDR",
        help=f"address to listen on (default {DEFAULT_LISTEN_ADDRESS}, or web.listen_address)",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="exporter-toolkit web config: TLS, client certificates, basic auth, headers",
    )
    p.add_argument(
        "--webhook.listen-address",
        dest="webhook_listen_address",
        metavar="ADDR",
        help="serve /webhooks/ on this separate address (and not on --web.listen-address)",
    )
    p.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        metavar="PATH",
        help=f"path of the metrics endpoint (default {DEFAULT_TELEMETRY_PATH})",
    )
    p.add_argument(
        "--log.level", dest="log_level", choices=LOG_LEVELS, help=f"log level (default {LogConfig().level})"
    )
    p.add_argument(
        "--log.format",
        dest="log_format",
        choices=LOG_FORMATS,
        help=f"logfmt (console on a terminal), json or console (default {LogConfig().format})",
    )
    p.add_argument(
        "--demo", action="store_true", help="run against a built-in simulated account: no credentials needed"
    )
    p.add_argument("--version", action="version", version=f"generatorlabs-exporter {__version__}")
    return p


def _flag_problem(flag: str, value: str, rule: Callable[[str], object]) -> str | None:
    """The problem with a flag's value by the same rule as its config key, or None."""
    try:
        rule(value)
    except ValueError as err:
        return f"{flag}: {err}, got {value!r}"
    return None


def apply_flags(config: Config, args: argparse.Namespace) -> Config:
    """Command-line flags win over the config file."""
    web, log = config.web, config.log
    problems = [
        problem
        for flag, value, rule in (
            ("--web.listen-address", args.listen_address, parse_listen_address),
            ("--web.telemetry-path", args.telemetry_path, check_telemetry_path),
        )
        if value is not None and (problem := _flag_problem(flag, value, rule))
    ]
    if problems:
        raise ConfigError(COMMAND_LINE, problems)
    if args.listen_address is not None:
        web = replace(web, listen_address=args.listen_address)
    if args.telemetry_path is not None:
        web = replace(web, telemetry_path=args.telemetry_path)
    if args.log_level is not None:
        log = replace(log, level=args.log_level)
    if args.log_format is not None:
        log = replace(log, format=args.log_format)
    return replace(config, web=web, log=log)


def check_listeners(args: argparse.Namespace) -> None:
    """The web config file and the webhook listener, checked like the config (ConfigError)."""
    if args.web_config_file:
        from exporter.config.webconfig import load as load_web_config

        load_web_config(args.web_config_file)
    if args.webhook_listen_address:
        address = args.webhook_listen_address
        if problem := _flag_problem("--webhook.listen-address", address, parse_listen_address):
            raise ConfigError(COMMAND_LINE, [problem])


def load_config(args: argparse.Namespace) -> Config:
    """The config file, the flags over it and, unless --demo, the credentials (ConfigError)."""
    source = args.config_file or "<defaults>"
    config = apply_flags(load(args.config_file), args)
    if not args.demo:
        config = credentials_from_env(config, environ(), read_text_file, source)
    return config


def _fail(err: ExporterError | OSError, code: int) -> int:
    print(f"generatorlabs-exporter: {err}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, check the config, then run until stopped; the process's exit code."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args)
        check_listeners(args)
    except ConfigError as err:
        return _fail(err, EXIT_CONFIG)
    if args.config_check:
        print(f"{args.config_file or '<defaults>'}: ok")
        return EXIT_OK
    from exporter.app import run
    from exporter.logs import configure_logging

    configure_logging(config.log.format, config.log.level)
    try:
        asyncio.run(
            run(
                config,
                lambda: load_config(args),
                demo=args.demo,
                web_config_file=args.web_config_file,
                webhook_listen_address=args.webhook_listen_address,
            )
        )
    except ConfigError as err:
        return _fail(err, EXIT_CONFIG)
    except (ExporterError, OSError) as err:  # a broken or locked state file, a taken port
        return _fail(err, EXIT_CANNOT_RUN)
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK
