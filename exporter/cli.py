"""Command line: flags in exporter-toolkit style, config loading, exit codes, and the subcommands
`print rules|dashboards|config`, `healthcheck` and `capture`. The daemon's only print() (the other is
`python -m exporter.metrics`, which prints the README's metric table).

    generatorlabs-exporter [FLAGS]                 run (the flags alone, as ever)
    generatorlabs-exporter print rules [--threshold NAME=VALUE]... [--runbook-base URL]
    generatorlabs-exporter print dashboards [--output-dir DIR] [NAME]...
    generatorlabs-exporter print config            the annotated example config (config.example.yaml)
    generatorlabs-exporter healthcheck [FLAGS] [--args-file PATH] [--timeout SECONDS]
    generatorlabs-exporter capture --output FILE [--config.file PATH] [--demo]

I/O: reads the config file, the web config file and the environment (through exporter.config),
prints to stdout and stderr, writes dashboards to a folder when asked, GETs /-/healthy of a
running exporter (healthcheck), captures API responses into a file (capture: see
exporter.capture), and runs the daemon (exporter.app.run) until it stops.

Exit codes: 0 after a clean stop (or a check or print that found nothing wrong), 2 for a config
problem (file, flags, credentials with --config.check=strict), 1 when the exporter cannot run (a
broken or locked state file, a taken port) or a print cannot write; each with its reason on one
line of stderr (a config problem lists every problem found), never a traceback. healthcheck
exits 0 (healthy) or 1 (anything else), the codes Docker's HEALTHCHECK knows.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.metadata
import math
import os
import platform
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path

from exporter import __version__
from exporter.config.load import environ, load, read_text_file
from exporter.config.model import (
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_TELEMETRY_PATH,
    HEALTHY_PATH,
    LOG_FORMATS,
    LOG_LEVELS,
    Config,
    LogConfig,
)
from exporter.config.parse import check_telemetry_path, credentials_from_env, parse_listen_address
from exporter.config.webconfig import WebConfig, load_certificate
from exporter.errors import ConfigError, ExporterError

PROG = "generatorlabs-exporter"
EXIT_OK = 0  # --config.check found nothing, a print or healthcheck succeeded, or a clean stop
EXIT_CANNOT_RUN = 1  # a broken or locked state file, a taken port; an unhealthy healthcheck
EXIT_CONFIG = 2  # a problem in the config file, the flags, the credentials or the web config
COMMAND_LINE = "(command line)"  # the source named in a ConfigError about a flag
LENIENT, STRICT = "lenient", "strict"  # --config.check's values
MISSING = "got nothing"  # how a credential problem ends when the credential is not set at all
LOG_LEVEL_ALIASES = {"warn": "warning"}  # the toolkit's spelling, and the config model's
LOG_LEVEL_CHOICES = tuple(dict.fromkeys(("debug", "info", "warn", *LOG_LEVELS)))
HEALTHCHECK_TIMEOUT = 2.0  # seconds; Docker's HEALTHCHECK allows 3
# the address to reach a listener that listens on every address
LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - hosts to replace
CREDENTIAL_HELP = """\
environment:
  GENERATORLABS_ACCOUNT_SID, GENERATORLABS_ACCOUNT_SID_FILE   the account SID (or a file holding it)
  GENERATORLABS_AUTH_TOKEN, GENERATORLABS_AUTH_TOKEN_FILE     the auth token (or a file holding it)
  GENERATORLABS_WEBHOOK_SECRET                                webhook signing secrets, comma-separated
  GENERATORLABS_WEBHOOK_SECRET_FILE                           a file of signing secrets, one per line
  HETRIXTOOLS_WEBHOOK_TOKEN                                   the HetrixTools webhook path token
  The environment wins over the config file; never pass secrets as flags.

subcommands:
  print rules|dashboards|config   the alert rules, the Grafana dashboards, the example config
  healthcheck                     GET /-/healthy of the exporter these flags describe (exit 0 or 1)
  capture                         one anonymised page of each endpoint, for a bug report

exit codes:
  0  a clean stop, or --config.check found nothing (missing credentials are warnings unless
     --config.check=strict)
  1  the exporter cannot run: a broken or locked state file, a taken port
  2  a problem in the config file, the flags, the web config or (strict) the credentials
"""
HEALTHCHECK_HELP = """\
Reads the same flags, config file and web config file as the exporter (listen address, TLS,
basic auth) and GETs /-/healthy of its first --web.listen-address over loopback.

environment:
  GENERATORLABS_HEALTHCHECK_USER                  basic auth user (default: the only one configured)
  GENERATORLABS_HEALTHCHECK_PASSWORD, ..._FILE    its password (or a file holding it), when the web
                                                  config sets basic_auth_users
The server's certificate is not verified (this checks the local process, not its identity); when
the web config requires client certificates, the server's own certificate is presented.

exit codes: 0 healthy, 1 anything else (Docker's HEALTHCHECK codes).
"""


def version_text() -> str:
    """`generatorlabs-exporter, version X (python ..., aiohttp ..., prometheus_client ...)`, as
    the Go exporters print theirs."""
    aiohttp = importlib.metadata.version("aiohttp")
    client = importlib.metadata.version("prometheus-client")
    python = platform.python_version()
    return f"{PROG}, version {__version__} (python {python}, aiohttp {aiohttp}, prometheus_client {client})"


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The exporter's flags (pinned by tests/helpers/contract.py); the defaults live in the config
    model. The healthcheck reads the same ones."""
    p.add_argument(
        "--config.file",
        dest="config_file",
        metavar="PATH",
        help="YAML config file (see config.example.yaml, or `print config`); defaults apply without one",
    )
    p.add_argument(
        "--config.check",
        dest="config_check",
        nargs="?",
        const=LENIENT,
        choices=(LENIENT, STRICT),
        help="validate the config and the web config and exit: 0 ok, 2 problems; missing "
        "credentials are warnings unless --config.check=strict",
    )
    p.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="ADDR",
        action="append",
        help=f"address to listen on, repeat for several (default {DEFAULT_LISTEN_ADDRESS}, or "
        "web.listen_address)",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="exporter-toolkit web config: TLS, client certificates, basic auth, headers, rate limit",
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
    add_log_flags(p)
    p.add_argument(
        "--demo", action="store_true", help="run against a built-in simulated account: no credentials needed"
    )


def add_log_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log.level",
        dest="log_level",
        choices=LOG_LEVEL_CHOICES,
        help=f"log level (default {LogConfig().level}; warn and warning are the same)",
    )
    p.add_argument(
        "--log.format",
        dest="log_format",
        choices=LOG_FORMATS,
        help=f"logfmt (console on a terminal), json or console (default {LogConfig().format})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The run command line: every flag, and the environment and exit codes in its help."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Prometheus exporter for Generator Labs RBL and certificate monitoring.",
        epilog=CREDENTIAL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_flags(p)
    p.add_argument("--version", action="version", version=version_text())
    return p


def _flag_problem(flag: str, value: str, rule: Callable[[str], object]) -> str | None:
    """The problem with a flag's value by the same rule as its config key, or None."""
    try:
        rule(value)
    except ValueError as err:
        return f"{flag}: {err}, got {value!r}"
    return None


def listen_addresses(args: argparse.Namespace) -> list[str]:
    """Every --web.listen-address, in order, each once."""
    return list(dict.fromkeys(args.listen_address or ()))


def apply_flags(config: Config, args: argparse.Namespace) -> Config:
    """Command-line flags win over the config file (the first --web.listen-address becomes
    web.listen_address; the daemon is handed the others)."""
    web, log = config.web, config.log
    checks: list[tuple[str, str, Callable[[str], object]]] = [
        ("--web.listen-address", a, parse_listen_address) for a in listen_addresses(args)
    ]
    if args.telemetry_path is not None:
        checks.append(("--web.telemetry-path", args.telemetry_path, check_telemetry_path))
    problems = [p for flag, value, rule in checks if (p := _flag_problem(flag, value, rule))]
    if problems:
        raise ConfigError(COMMAND_LINE, problems)
    if args.listen_address:
        web = replace(web, listen_address=args.listen_address[0])
    if args.telemetry_path is not None:
        web = replace(web, telemetry_path=args.telemetry_path)
    if args.log_level is not None:
        log = replace(log, level=LOG_LEVEL_ALIASES.get(args.log_level, args.log_level))
    if args.log_format is not None:
        log = replace(log, format=args.log_format)
    return replace(config, web=web, log=log)


def load_web_config(args: argparse.Namespace) -> WebConfig:
    """The web config file (its certificates must load), or none (ConfigError)."""
    if not args.web_config_file:
        return WebConfig()
    from exporter.config.webconfig import load as load_web

    return load_web(args.web_config_file)


def check_listeners(args: argparse.Namespace) -> None:
    """The web config file and the webhook listener, checked like the config (ConfigError)."""
    load_web_config(args)
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


def _fail(err: ExporterError | OSError | str, code: int) -> int:
    print(f"{PROG}: {err}", file=sys.stderr)
    return code


def config_check(args: argparse.Namespace) -> int:
    """--config.check: the file, the flags and the web config; the credentials too, though only
    strict mode fails when one is not set at all (lenient mode warns, so CI can lint a file)."""
    source = args.config_file or "<defaults>"
    try:
        config = apply_flags(load(args.config_file), args)
        check_listeners(args)
        if not args.demo:
            credentials_from_env(config, environ(), read_text_file, source)
    except ConfigError as err:
        missing = [p for p in err.problems if p.endswith(MISSING)]
        if args.config_check == STRICT or len(missing) < len(err.problems):
            return _fail(err, EXIT_CONFIG)
        for problem in missing:
            print(f"{PROG}: warning: {source}: {problem}", file=sys.stderr)
    print(f"{source}: ok")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Check the config, then run until stopped; the process's exit code."""
    try:
        config = load_config(args)
        check_listeners(args)
    except ConfigError as err:
        return _fail(err, EXIT_CONFIG)
    from exporter.app import run as run_daemon
    from exporter.logs import configure_logging

    configure_logging(config.log.format, config.log.level)
    try:
        asyncio.run(
            run_daemon(
                config,
                lambda: load_config(args),
                demo=args.demo,
                web_config_file=args.web_config_file,
                webhook_listen_address=args.webhook_listen_address,
                extra_listen_addresses=tuple(listen_addresses(args)[1:]),  # the toolkit serves all
            )
        )
    except ConfigError as err:
        return _fail(err, EXIT_CONFIG)
    except (ExporterError, OSError) as err:  # a broken or locked state file, a taken port
        return _fail(err, EXIT_CANNOT_RUN)
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


# --- print rules|dashboards|config ---


def build_print_parser() -> argparse.ArgumentParser:
    from exporter.kit import THRESHOLD_HELP, THRESHOLDS

    p = argparse.ArgumentParser(
        prog=f"{PROG} print",
        description="Print what an operator needs next to the exporter.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="what", required=True, metavar="{rules,dashboards,config}")
    names = "\n".join(f"  {n}={THRESHOLDS[n]:g}  {THRESHOLD_HELP[n]}" for n in THRESHOLDS)
    rules = sub.add_parser(
        "rules",
        help="the Prometheus alert rules (YAML)",
        epilog=f"thresholds (name=default):\n{names}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rules.add_argument(
        "--threshold", action="append", default=[], metavar="NAME=VALUE", help="set a threshold, repeatable"
    )
    rules.add_argument(
        "--runbook-base", metavar="URL", help="where the README's runbooks are (links end #runbook-<alert>)"
    )
    dashboards = sub.add_parser("dashboards", help="the Grafana dashboards (JSON)")
    dashboards.add_argument("names", nargs="*", metavar="NAME", help="a dashboard to print (default: all)")
    dashboards.add_argument("--output-dir", metavar="DIR", help="write each dashboard to a file in DIR")
    sub.add_parser("config", help="the annotated example config file (every key with its default)")
    return p


def _thresholds(given: list[str]) -> dict[str, float]:
    """NAME=VALUE pairs (ValueError naming the one that is not)."""
    thresholds: dict[str, float] = {}
    for pair in given:
        name, equals, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not equals or not math.isfinite(number):
            raise ValueError(f"--threshold: must be NAME=NUMBER, got {pair!r}")
        thresholds[name.strip()] = number
    return thresholds


def print_dashboards(names: list[str], output_dir: str | None) -> int:
    from exporter.kit import dashboards

    available = dashboards()
    wanted = [n if n in available else f"{n}.json" for n in names] or list(available)
    unknown = [n for n in wanted if n not in available]
    if unknown:
        return _fail(f"print dashboards: no dashboard {unknown[0]!r} (one of {', '.join(available)})", 2)
    if output_dir is None:
        if len(wanted) > 1:
            return _fail(f"print dashboards: name one of {', '.join(wanted)}, or give --output-dir", 2)
        sys.stdout.write(available[wanted[0]])
        return EXIT_OK
    folder = Path(output_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in wanted:
            (folder / name).write_text(available[name], encoding="utf-8")
    except OSError as err:
        return _fail(f"print dashboards: cannot write to {output_dir}: {err}", EXIT_CANNOT_RUN)
    for name in wanted:
        print(folder / name)
    return EXIT_OK


def print_command(argv: list[str]) -> int:
    args = build_print_parser().parse_args(argv)
    if args.what == "config":
        sys.stdout.write(example_config())
        return EXIT_OK
    if args.what == "dashboards":
        return print_dashboards(args.names, args.output_dir)
    from exporter.kit import rules

    try:
        text = rules(_thresholds(args.threshold), args.runbook_base)
    except ValueError as err:
        return _fail(f"print rules: {err}", EXIT_CONFIG)
    sys.stdout.write(text)
    return EXIT_OK


# --- healthcheck ---


def build_healthcheck_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{PROG} healthcheck",
        description="Exit 0 when the running exporter answers /-/healthy with 200, else 1.",
        epilog=HEALTHCHECK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_flags(p)
    p.add_argument(
        "--args-file",
        metavar="PATH",
        help="read the exporter's flags from this NUL-separated command line first, e.g. "
        "/proc/1/cmdline in its container",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=HEALTHCHECK_TIMEOUT,
        metavar="SECONDS",
        help="give up after this long",
    )
    return p


def exporter_args(cmdline: bytes) -> list[str]:
    """The flags in an exporter's NUL-separated command line (/proc/<pid>/cmdline): what follows
    the `generatorlabs-exporter` program or `-m exporter` (ValueError when neither is there)."""
    words = [w.decode(errors="replace") for w in cmdline.split(b"\0")]
    words = words[:-1] if words and not words[-1] else words
    for i, word in enumerate(words):
        if Path(word).name == PROG:
            return words[i + 1 :]
        if word == "-m" and words[i + 1 : i + 2] == ["exporter"]:
            return words[i + 2 :]
    raise ValueError("no generatorlabs-exporter command line in it")


def _healthcheck_args(argv: list[str]) -> argparse.Namespace:
    """The healthcheck's flags, those of --args-file first (the ones given here win)."""
    parser = build_healthcheck_parser()
    args = parser.parse_args(argv)
    if args.args_file:
        try:
            from_file = exporter_args(Path(args.args_file).read_bytes())
        except (OSError, ValueError) as err:
            raise ValueError(f"--args-file {args.args_file}: {err}") from err
        args = parser.parse_args([*from_file, *argv])
    return args


def health_url(config: Config, web: WebConfig) -> str:
    """/-/healthy on the first listen address, over loopback when it listens on every address."""
    host, port = parse_listen_address(config.web.listen_address)
    host = LOOPBACK.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if web.tls else 'http'}://{shown}:{port}{HEALTHY_PATH}"


def _client_context(web: WebConfig) -> ssl.SSLContext | None:
    """TLS for the healthcheck: no verification of the server (a liveness check of the local
    process), and the server's own certificate when client certificates are asked for."""
    if web.tls is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if web.tls.client_auth_type != "NoClientCert":
        load_certificate(context, web.tls)
    return context


def _authorization(web: WebConfig, env: dict[str, str]) -> dict[str, str]:
    """The Authorization header from GENERATORLABS_HEALTHCHECK_* (none without basic auth)."""
    if not web.users:
        return {}
    user = env.get("GENERATORLABS_HEALTHCHECK_USER") or (next(iter(web.users)) if len(web.users) == 1 else "")
    password = env.get("GENERATORLABS_HEALTHCHECK_PASSWORD")
    if password is None and env.get("GENERATORLABS_HEALTHCHECK_PASSWORD_FILE"):
        password = read_text_file(env["GENERATORLABS_HEALTHCHECK_PASSWORD_FILE"]).strip()
    if not user or password is None:
        raise ValueError(
            "the web config sets basic_auth_users: set GENERATORLABS_HEALTHCHECK_PASSWORD or "
            "GENERATORLABS_HEALTHCHECK_PASSWORD_FILE (and GENERATORLABS_HEALTHCHECK_USER with several users)"
        )
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def healthcheck(argv: list[str]) -> int:
    """GET /-/healthy of the exporter the flags describe: 0 on a 200, 1 on anything else."""
    try:
        args = _healthcheck_args(argv)
        config = apply_flags(load(args.config_file), args)
        web = load_web_config(args)
        url = health_url(config, web)
        request = urllib.request.Request(url, headers=_authorization(web, dict(os.environ)))  # noqa: S310
        context = _client_context(web)
    except (ConfigError, OSError, ssl.SSLError, ValueError) as err:
        return _fail(f"healthcheck: {err}", EXIT_CANNOT_RUN)
    try:
        with urllib.request.urlopen(request, timeout=args.timeout, context=context) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
    except (OSError, ssl.SSLError) as err:  # refused, timed out, TLS handshake failed
        return _fail(f"healthcheck: {url}: {getattr(err, 'reason', err)}", EXIT_CANNOT_RUN)
    if status != 200:
        return _fail(f"healthcheck: {url} answered {status}", EXIT_CANNOT_RUN)
    print(f"{url}: healthy")
    return EXIT_OK


# --- capture ---


CAPTURE_HELP = """\
Sends at most 20 requests (one page of each endpoint the exporter polls, both count endpoints,
one host and one monitor by id) and writes the answers to one JSON file, anonymised: ids hashed,
addresses, names and free text replaced, structure and types kept. Attach it to a bug report;
dropped into tests/fixtures/captures/, the test suite replays it through the parsers.

The requests count against the budget: the state file's request ledger (state.path) is read and
extended, and capture refuses to start when it says the hour's budget is spent. A 429, or the
API's RateLimit headers saying nothing is left, ends the capture early (what came is written).
When a running exporter holds the state file, only the API's RateLimit headers apply.

environment: the credentials as for the exporter (GENERATORLABS_ACCOUNT_SID[_FILE],
GENERATORLABS_AUTH_TOKEN[_FILE]); they are never written to the file.

exit codes: 0 written, 1 refused (budget spent), nothing answered or not writable, 2 a config
problem.
"""


def build_capture_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{PROG} capture",
        description="Record one anonymised page of each API endpoint the exporter reads into one file.",
        epilog=CAPTURE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config.file", dest="config_file", metavar="PATH", help="the exporter's YAML config file"
    )
    p.add_argument("--output", required=True, metavar="FILE", help="write the capture to this file")
    p.add_argument(
        "--demo",
        action="store_true",
        help="capture from the built-in simulated account: no credentials needed",
    )
    return p


def capture(argv: list[str]) -> int:
    """Capture the API's answers into --output: 0 written, 1 refused or failed, 2 a config problem."""
    args = build_capture_parser().parse_args(argv)
    try:
        config = load(args.config_file)
        if not args.demo:
            source = args.config_file or "<defaults>"
            config = credentials_from_env(config, environ(), read_text_file, source)
    except ConfigError as err:
        return _fail(err, EXIT_CONFIG)
    from exporter.capture.run import capture_to_file
    from exporter.logs import configure_logging

    configure_logging(config.log.format, "warning")
    try:
        result = asyncio.run(capture_to_file(config, args.output, environ(), demo=args.demo))
    except (ExporterError, OSError) as err:
        return _fail(err, EXIT_CANNOT_RUN)
    for warning in result.warnings:
        print(f"{PROG}: warning: capture: {warning}", file=sys.stderr)
    if result.stopped:
        print(f"{PROG}: capture stopped early ({result.stopped}): {result.detail}", file=sys.stderr)
    print(f"{result.output}: {result.answered} answers to {result.requests} requests, anonymised")
    return EXIT_OK if result.answered else EXIT_CANNOT_RUN


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "print": print_command,
    "healthcheck": healthcheck,
    "capture": capture,
}


def example_config() -> str:
    """The annotated example config, shipped in the package (config.example.yaml is the same text)."""
    return resources.files("exporter.config").joinpath("example.yaml").read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """A subcommand (`print`, `healthcheck`, `capture`), or the flags alone: check or run the
    exporter."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    args = build_parser().parse_args(argv)
    if args.config_check:
        return config_check(args)
    return run(args)
