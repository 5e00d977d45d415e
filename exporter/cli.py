"""Command line: flags in exporter-toolkit style, config loading, exit codes. The only print().

Exit codes: 0 after a clean stop, 2 for a config problem (file, flags, credentials), 1 when the
exporter cannot run (a broken or locked state file, a taken port); each with its reason on one
line of stderr (a config problem lists every problem found), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace

from exporter import __version__
from exporter.config.load import environ, load, read_text_file
from exporter.config.model import LOG_FORMATS, LOG_LEVELS, Config
from exporter.config.parse import credentials_from_env, parse_listen_address
from exporter.errors import ConfigError, ExporterError


def build_parser() -> argparse.ArgumentParser:
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
        help="address to listen on (default :9816, or web.listen_address)",
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
        help="path of the metrics endpoint (default /metrics)",
    )
    p.add_argument("--log.level", dest="log_level", choices=LOG_LEVELS, help="log level (default info)")
    p.add_argument(
        "--log.format",
        dest="log_format",
        choices=LOG_FORMATS,
        help="logfmt (console on a terminal), json or console (default logfmt)",
    )
    p.add_argument(
        "--demo", action="store_true", help="run against a built-in simulated account: no credentials needed"
    )
    p.add_argument("--version", action="version", version=f"generatorlabs-exporter {__version__}")
    return p


def apply_flags(config: Config, args: argparse.Namespace) -> Config:
    """Command-line flags win over the config file."""
    problems = []
    web, log = config.web, config.log
    if args.listen_address is not None:
        try:
            parse_listen_address(args.listen_address)
            web = replace(web, listen_address=args.listen_address)
        except ValueError as err:
            problems.append(f"--web.listen-address: {err}, got {args.listen_address!r}")
    if args.telemetry_path is not None:
        if not args.telemetry_path.startswith("/") or args.telemetry_path in {"/", "/-/healthy"}:
            problems.append(
                f"--web.telemetry-path: must be a path starting with / (not / itself), "
                f"got {args.telemetry_path!r}"
            )
        else:
            web = replace(web, telemetry_path=args.telemetry_path)
    if args.log_level is not None:
        log = replace(log, level=args.log_level)
    if args.log_format is not None:
        log = replace(log, format=args.log_format)
    if problems:
        raise ConfigError("(command line)", problems)
    return replace(config, web=web, log=log)


def check_listeners(args: argparse.Namespace) -> None:
    """The web config file and the webhook listener, checked like the config (ConfigError)."""
    if args.web_config_file:
        from exporter.config.webconfig import load as load_web_config

        load_web_config(args.web_config_file)
    if args.webhook_listen_address:
        try:
            parse_listen_address(args.webhook_listen_address)
        except ValueError as err:
            raise ConfigError(
                "(command line)", [f"--webhook.listen-address: {err}, got {args.webhook_listen_address!r}"]
            ) from err


def load_config(args: argparse.Namespace) -> Config:
    source = args.config_file or "<defaults>"
    config = apply_flags(load(args.config_file), args)
    if not args.demo:
        config = credentials_from_env(config, environ(), read_text_file, source)
    return config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args)
        check_listeners(args)
    except ConfigError as err:
        print(f"generatorlabs-exporter: {err}", file=sys.stderr)
        return 2
    if args.config_check:
        print(f"{args.config_file or '<defaults>'}: ok")
        return 0
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
        print(f"generatorlabs-exporter: {err}", file=sys.stderr)
        return 2
    except (ExporterError, OSError) as err:  # a broken or locked state file, a taken port
        print(f"generatorlabs-exporter: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
