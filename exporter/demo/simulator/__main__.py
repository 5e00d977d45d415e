"""`python -m exporter.demo.simulator`: run the fake Generator Labs API on its own."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys

import aiohttp

from exporter.clock import SystemClock
from exporter.demo.simulator.account import Account
from exporter.demo.simulator.api import RETRY_AFTER_FORMATS, Faults, SimulatedApi
from exporter.demo.simulator.app import start_other_host, start_simulator
from exporter.demo.simulator.webhooks import WebhookSender


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m exporter.demo.simulator",
        description="A fake Generator Labs v4 API for demos and tests.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--hosts", type=int, default=200, help="RBL-monitored hosts")
    p.add_argument("--monitors", type=int, default=50, help="certificate monitors")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--listed-fraction", type=float, default=0.05)
    p.add_argument("--churn-hours", type=float, default=6.0, help="mean listing duration")
    p.add_argument("--step", type=float, default=60.0, help="seconds between account changes")
    p.add_argument("--account-sid", default="AC" + "0" * 32)
    p.add_argument("--auth-token", default=None, help="default: random, printed at start")
    p.add_argument("--hourly-limit", type=int, default=1000)
    p.add_argument("--per-second-limit", type=int, default=100)
    p.add_argument("--error-rate", type=float, default=0.0, help="share of HTTP 500 answers")
    p.add_argument(
        "--body-error-rate",
        type=float,
        default=0.0,
        help="share of HTTP 200 answers whose body says status_code 500",
    )
    p.add_argument("--malformed-rate", type=float, default=0.0, help="share of truncated JSON")
    p.add_argument("--timeout-rate", type=float, default=0.0, help="share of requests never answered")
    p.add_argument("--garbage-rate", type=float, default=0.0, help="share of bodies that are not JSON")
    p.add_argument(
        "--wrong-types-rate",
        type=float,
        default=0.0,
        help="share of pages with hostile values in random fields of random objects",
    )
    p.add_argument(
        "--wrong-data-rate", type=float, default=0.0, help="share of pages whose `data` has the wrong type"
    )
    p.add_argument(
        "--wrong-envelope-rate",
        type=float,
        default=0.0,
        help="share of pages whose page/total fields have the wrong type",
    )
    p.add_argument(
        "--absurd-limits-rate",
        type=float,
        default=0.0,
        help="share of answers with absurd RateLimit-* headers",
    )
    p.add_argument(
        "--redirect-rate",
        type=float,
        default=0.0,
        help="share of answers that redirect to another host (served on --other-host-port)",
    )
    p.add_argument(
        "--redirect-loop-rate",
        type=float,
        default=0.0,
        help="share of answers that start a same-host redirect loop",
    )
    p.add_argument(
        "--trickle-rate", type=float, default=0.0, help="share of bodies sent in 4 KB pieces with pauses"
    )
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
    p.add_argument("--webhook-url", help="POST signed Generator Labs webhooks here as the account changes")
    p.add_argument("--webhook-secret", default=None, help="signing secret (default: random, printed)")
    p.add_argument("--hetrix-url", help="POST HetrixTools-style chunks here now and then")
    p.add_argument("--webhook-period", type=float, default=5.0, help="seconds between webhook rounds")
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
    return p.parse_args(argv)


async def serve(args: argparse.Namespace, token: str) -> None:
    clock = SystemClock()
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
        account.list_rate = account.delist_rate = account.error_rate = account.clear_rate = 0.0
    faults = Faults(
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
    api = SimulatedApi(
        account,
        args.account_sid,
        token,
        hourly_limit=args.hourly_limit,
        per_second_limit=args.per_second_limit,
        faults=faults,
    )
    runner, port = await start_simulator(api, clock, args.host, args.port, control_routes=args.control)
    other_runner = None
    if args.redirect_rate > 0 or args.other_host_port:
        other_runner, other_port = await start_other_host(api, clock, args.host, args.other_host_port)
        faults.other_host = f"http://{args.host}:{other_port}"
        print(f"simulator: other host for redirects at {faults.other_host}/", flush=True)
    print(
        f"simulator: http://{args.host}:{port}/4.0/  account_sid={args.account_sid} auth_token={token}",
        flush=True,
    )
    session = aiohttp.ClientSession()
    sender_task = None
    if args.webhook_url:
        secret = args.webhook_secret or secrets.token_hex(16)
        sender = WebhookSender(
            account,
            session,
            clock,
            url=args.webhook_url,
            secret=secret,
            hetrix_url=args.hetrix_url,
            period=args.webhook_period,
        )
        sender.quiet = args.quiet
        sender_task = asyncio.create_task(sender.run())
        print(f"simulator: webhooks to {args.webhook_url} every {args.webhook_period:g}s", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        if sender_task is not None:
            sender_task.cancel()
        await session.close()
        await runner.cleanup()
        if other_runner is not None:
            await other_runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = args.auth_token or secrets.token_hex(32)
    try:
        asyncio.run(serve(args, token))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
