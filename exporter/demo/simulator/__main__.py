"""`python -m exporter.demo.simulator`: run the fake Generator Labs API on its own.

I/O: listens on --host/--port (and a second port for cross-host redirects when asked), prints
where and with which credentials to stdout, and POSTs webhooks when --webhook-url is given.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from contextlib import AsyncExitStack

import aiohttp

from exporter.clock import Clock, SystemClock
from exporter.demo.simulator.account import CHURN_HOURS, LISTED_FRACTION, STEP, Account
from exporter.demo.simulator.api import HOURLY_LIMIT, PER_SECOND_LIMIT, RETRY_AFTER_FORMATS, SimulatedApi
from exporter.demo.simulator.app import start_other_host, start_simulator
from exporter.demo.simulator.faults import Faults
from exporter.demo.simulator.webhooks import PERIOD, WebhookSender

PROG = "python -m exporter.demo.simulator"
DEFAULT_PORT = 8080
DEFAULT_HOSTS = 200
DEFAULT_MONITORS = 50
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
TOKEN_BYTES = 32  # a random auth token: 64 hex digits, as the API's
SECRET_BYTES = 16  # a random webhook signing secret

# The random faults: (flag, help), each a share of requests (the `Faults` field of that name).
FAULT_RATE_OPTIONS = (
    ("--error-rate", "share of HTTP 500 answers"),
    ("--body-error-rate", "share of HTTP 200 answers whose body says status_code 500"),
    ("--malformed-rate", "share of truncated JSON"),
    ("--timeout-rate", "share of requests never answered"),
    ("--garbage-rate", "share of bodies that are not JSON"),
    ("--wrong-types-rate", "share of pages with hostile values in random fields of random objects"),
    ("--wrong-data-rate", "share of pages whose `data` has the wrong type"),
    ("--wrong-envelope-rate", "share of pages whose page/total fields have the wrong type"),
    ("--absurd-limits-rate", "share of answers with absurd RateLimit-* headers"),
    ("--redirect-rate", "share of answers that redirect to another host (served on --other-host-port)"),
    ("--redirect-loop-rate", "share of answers that start a same-host redirect loop"),
    ("--trickle-rate", "share of bodies sent in 4 KB pieces with pauses"),
)


def _add_account_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--hosts", type=int, default=DEFAULT_HOSTS, help="RBL-monitored hosts")
    p.add_argument("--monitors", type=int, default=DEFAULT_MONITORS, help="certificate monitors")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--listed-fraction", type=float, default=LISTED_FRACTION)
    p.add_argument("--churn-hours", type=float, default=CHURN_HOURS, help="mean listing duration")
    p.add_argument("--step", type=float, default=STEP, help="seconds between account changes")
    p.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    p.add_argument("--auth-token", default=None, help="default: random, printed at start")
    p.add_argument("--hourly-limit", type=int, default=HOURLY_LIMIT)
    p.add_argument("--per-second-limit", type=int, default=PER_SECOND_LIMIT)


def _add_fault_options(p: argparse.ArgumentParser) -> None:
    for flag, text in FAULT_RATE_OPTIONS:
        p.add_argument(flag, type=float, default=0.0, help=text)
    p.add_argument(
        "--retry-after-format",
        choices=RETRY_AFTER_FORMATS,
        default="delta",
        help="how forced 429s give Retry-After: delta seconds, an HTTP date, or either",
    )
    p.add_argument(
        "--other-host-port",
        type=int,
        default=0,
        help="port of the other host that cross-host redirects point at (0: any free)",
    )


def _add_webhook_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--webhook-url", help="POST signed Generator Labs webhooks here as the account changes")
    p.add_argument("--webhook-secret", default=None, help="signing secret (default: random, printed)")
    p.add_argument("--hetrix-url", help="POST HetrixTools-style chunks here now and then")
    p.add_argument("--webhook-period", type=float, default=PERIOD, help="seconds between webhook rounds")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no random drift: the account changes only through the control routes",
    )
    p.add_argument(
        "--control",
        action="store_true",
        help="serve POST /_sim/... routes that list/delist hosts and expire/break certificates",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description="A fake Generator Labs v4 API for demos and tests.")
    _add_account_options(p)
    _add_fault_options(p)
    _add_webhook_options(p)
    return p.parse_args(argv)


def _faults(args: argparse.Namespace) -> Faults:
    return Faults(
        error_rate=args.error_rate,
        body_error_rate=args.body_error_rate,
        malformed_rate=args.malformed_rate,
        timeout_rate=args.timeout_rate,
        garbage_rate=args.garbage_rate,
        wrong_types_rate=args.wrong_types_rate,
        wrong_data_rate=args.wrong_data_rate,
        wrong_envelope_rate=args.wrong_envelope_rate,
        absurd_limits_rate=args.absurd_limits_rate,
        redirect_rate=args.redirect_rate,
        redirect_loop_rate=args.redirect_loop_rate,
        trickle_rate=args.trickle_rate,
        retry_after_format=args.retry_after_format,
    )


def _api(args: argparse.Namespace, token: str, clock: Clock) -> SimulatedApi:
    account = Account(
        args.hosts,
        args.monitors,
        clock.time(),
        seed=args.seed,
        listed_fraction=args.listed_fraction,
        churn_hours=args.churn_hours,
        step=args.step,
    )
    if args.quiet:
        account.stop_drift()
    return SimulatedApi(
        account,
        args.account_sid,
        token,
        hourly_limit=args.hourly_limit,
        per_second_limit=args.per_second_limit,
        faults=_faults(args),
    )


async def _start_webhooks(
    args: argparse.Namespace, api: SimulatedApi, clock: Clock, stack: AsyncExitStack
) -> None:
    """With --webhook-url: a sender in the background until `stack` closes."""
    if not args.webhook_url:
        return
    session = await stack.enter_async_context(aiohttp.ClientSession())
    sender = WebhookSender(
        api.account,
        session,
        clock,
        url=args.webhook_url,
        secret=args.webhook_secret or secrets.token_hex(SECRET_BYTES),
        hetrix_url=args.hetrix_url,
        period=args.webhook_period,
        quiet=args.quiet,
    )
    task = asyncio.create_task(sender.run())
    stack.callback(task.cancel)
    print(f"simulator: webhooks to {args.webhook_url} every {args.webhook_period:g}s", flush=True)


async def serve(args: argparse.Namespace, token: str) -> None:
    """Serve until cancelled; everything started is released on the way out."""
    clock = SystemClock()
    api = _api(args, token, clock)
    async with AsyncExitStack() as stack:
        runner, port = await start_simulator(api, clock, args.host, args.port, control_routes=args.control)
        stack.push_async_callback(runner.cleanup)
        if args.redirect_rate > 0 or args.other_host_port:
            other_runner, other_port = await start_other_host(api, clock, args.host, args.other_host_port)
            stack.push_async_callback(other_runner.cleanup)
            api.faults.other_host = f"http://{args.host}:{other_port}"
            print(f"simulator: other host for redirects at {api.faults.other_host}/", flush=True)
        print(
            f"simulator: http://{args.host}:{port}/4.0/  account_sid={args.account_sid} auth_token={token}",
            flush=True,
        )
        await _start_webhooks(args, api, clock, stack)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = args.auth_token or secrets.token_hex(TOKEN_BYTES)
    try:
        asyncio.run(serve(args, token))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
