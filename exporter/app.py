"""Composition root: builds every real object, owns every lifetime, runs the daemon.

Nothing else constructs sessions, tasks or servers; everything else receives what it needs.
`run` enters every lifetime on one AsyncExitStack, so that whatever fails (a taken port, a
locked or broken state file), everything started so far is released, in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from exporter import __version__
from exporter.api.transport import HttpTransport, make_session
from exporter.clock import Clock, SystemClock
from exporter.config.load import default_state_path, environ
from exporter.config.model import Config
from exporter.config.parse import parse_listen_address
from exporter.demo.wiring import DEMO_BASE_URL, Demo, demo_config, running_demo, send_demo_webhooks
from exporter.errors import ConfigError
from exporter.metrics.selfmetrics import Live, Telemetry
from exporter.metrics.serve import Scraper
from exporter.polling.ledger import Ledger
from exporter.polling.scheduler import Scheduler, Transport
from exporter.state.snapshot import Snapshot
from exporter.state.sqlite import GroupCommit, Loaded, Owner, StateDB, VolatileDB
from exporter.state.store import StateStore
from exporter.supervisor import Supervisor
from exporter.web.guard import WebGuard
from exporter.web.routes import ServerParts, build_app
from exporter.web.server import ConnectionGuard, serve
from exporter.webhooks.applier import Applier
from exporter.webhooks.receivers import WebhookParts, add_admin_routes, add_routes

log = structlog.get_logger("exporter.app")

# Loads the config again (file + environment) for a reload; raises ConfigError.
ConfigSource = Callable[[], Config]
ReadyFn = Callable[[int], Awaitable[None]]


@dataclass(slots=True)
class Exporter:
    """Every long-lived object of one running exporter."""

    config: Config
    clock: Clock
    store: StateStore
    ledger: Ledger
    live: Live
    telemetry: Telemetry
    scheduler: Scheduler
    scraper: Scraper
    applier: Applier
    supervisor: Supervisor
    db: StateDB | None = None
    web_guard: WebGuard | None = None
    webhook_parts: WebhookParts | None = None

    async def reload(self, source: ConfigSource) -> list[str]:
        """Re-read the config (and the web config); a bad one keeps the old and is reported."""
        web_problems = self.web_guard.reload() if self.web_guard is not None else []
        try:
            config = source()
        except ConfigError as err:
            self.live.reload_ok = False
            log.error("config.reload_failed", problems=err.problems)
            return err.problems + web_problems
        if web_problems:
            self.live.reload_ok = False
            return web_problems
        if config.web != self.config.web:
            log.warning("config.restart_needed", reason="web.* changes apply after a restart")
        if config.api != self.config.api:
            log.warning("config.restart_needed", reason="api.* changes apply after a restart")
        self.config = config
        self.scheduler.configure(config)
        self.scheduler.refresh_debounce = config.webhooks.refresh_debounce
        if self.webhook_parts is not None:
            self.webhook_parts.config = config.webhooks  # secrets rotate without a restart
        self.applier.series_max_age = config.webhooks.series_max_age
        self.live.reload_ok, self.live.reload_at = True, self.clock.time()
        self.scraper.changed.set()
        log.info(
            "config.reloaded",
            budget=config.budget.requests_per_hour,
            collectors=[n for n, c in config.collectors.items() if c.enabled],
        )
        return []


def build_exporter(config: Config, transport: Transport, clock: Clock) -> Exporter:
    store = StateStore()
    ledger = Ledger(config.budget.requests_per_hour, config.budget.requests_per_second)
    live = Live(store, ledger, reload_at=clock.time())
    telemetry = Telemetry(live, clock.time)
    scheduler = Scheduler(config, transport, ledger, store, telemetry, live, clock)
    scraper = Scraper(
        clock,
        store,
        telemetry,
        clock.time,
        lambda: dict(scheduler.plan.intervals) if scheduler.plan else {},
        scheduler.max_ages,
    )
    store.on_change = scraper.changed.set
    scheduler.refresh_debounce = config.webhooks.refresh_debounce
    applier = make_applier(config, store, None, clock, scheduler, telemetry)
    supervisor = Supervisor(clock, lambda task: telemetry.task_restarts.labels(task).inc())
    exporter = Exporter(
        config, clock, store, ledger, live, telemetry, scheduler, scraper, applier, supervisor
    )
    if config.webhooks.enabled or config.webhooks.hetrixtools_token:
        exporter.webhook_parts = WebhookParts(
            config.webhooks, GroupCommit(VolatileDB()), applier, telemetry, clock
        )
    return exporter


def make_applier(
    config: Config,
    store: StateStore,
    db: StateDB | None,
    clock: Clock,
    scheduler: Scheduler,
    telemetry: Telemetry,
) -> Applier:
    """The webhook applier as the app wires it: the one place an Applier is made."""
    return Applier(
        store,
        db,
        clock,
        scheduler.request_refresh,
        telemetry=telemetry,
        series_max_age=config.webhooks.series_max_age,
    )


class DbJournal:
    """Writes snapshot changes to the state file, in order, without blocking the caller."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        self._tasks: set[asyncio.Future[None]] = set()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def replaced(self, snapshot: Snapshot) -> None:
        self._spawn(self._db.save_snapshot(snapshot))

    def confirmed(self, collector: str, at: float) -> None:
        self._spawn(self._db.confirm(collector, at))

    def dropped(self, collector: str) -> None:
        self._spawn(self._db.drop(collector))

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def attach_state(exporter: Exporter, db: StateDB, loaded: Loaded | None = None) -> DbJournal:
    """Load the state file (or what `db.start` loaded from it) into a fresh exporter (a warm
    start) and keep the file up to date."""
    now = exporter.clock.time()
    if loaded is None:
        loaded = await db.load(now)
    _restore(exporter, loaded, now)
    exporter.db = db
    _replay(exporter, db, loaded)
    journal = _keep_written(exporter, db)
    log.info(
        "state.loaded",
        path=db.path,
        snapshots=len(loaded.snapshots),
        replayed_events=len(loaded.events),
        ledger=len(loaded.ledger),
    )
    return journal


def _restore(exporter: Exporter, loaded: Loaded, now: float) -> None:
    """Stored snapshots (of enabled collectors), webhook state and the hourly ledger."""
    for snapshot in loaded.snapshots:
        collector = exporter.config.collectors.get(snapshot.collector)
        if collector is not None and collector.enabled:
            exporter.store.replace(snapshot)
    exporter.store.webhooks = loaded.webhooks
    for ts in loaded.ledger:
        exporter.ledger.record(ts)
    exporter.scheduler.restore(now)


def _replay(exporter: Exporter, db: StateDB, loaded: Loaded) -> None:
    """An applier writing to the file folds in the events acknowledged but not yet checkpointed;
    from now on webhooks are committed to the file."""
    exporter.applier = make_applier(
        exporter.config, exporter.store, db, exporter.clock, exporter.scheduler, exporter.telemetry
    )
    aside = exporter.applier.replay(loaded.events)
    if aside:
        log.warning("state.events_set_aside", path=db.path, count=len(aside))
    if exporter.webhook_parts is not None:
        exporter.webhook_parts.commit = GroupCommit(db)
        exporter.webhook_parts.applier = exporter.applier


def _keep_written(exporter: Exporter, db: StateDB) -> DbJournal:
    """Snapshot changes and every request sent are written to the file."""
    journal = DbJournal(db)
    exporter.store.journal = journal

    async def sent(ts: float) -> None:
        await db.record_sends([ts])

    exporter.scheduler.journal_send = sent
    return journal


def create_app(
    exporter: Exporter, source: ConfigSource, *, middlewares: tuple[Any, ...] = (), webhooks: bool = True
) -> web.Application:
    """The web app, whose start-up starts the poller and the renderer and whose clean-up stops them."""

    async def reload() -> list[str]:
        return await exporter.reload(source)

    app = build_app(
        ServerParts(
            exporter.scraper,
            exporter.store,
            exporter.live,
            reload,
            exporter.clock.time,
            exporter.config.web.telemetry_path,
            exporter.supervisor.failing,
        ),
        middlewares,
    )
    if exporter.webhook_parts is not None:
        add_admin_routes(app, exporter.webhook_parts)  # on this listener even when webhooks aren't
        if webhooks:
            add_routes(app, exporter.webhook_parts)

    async def background(_: web.Application) -> AsyncIterator[None]:
        supervisor = exporter.supervisor
        supervisor.start("scheduler", exporter.scheduler.run_forever)
        supervisor.start("renderer", exporter.scraper.keep_rendered)
        supervisor.start("applier", lambda: exporter.applier.run())
        guard = exporter.web_guard
        if guard is not None and guard.path:
            supervisor.start("web_config_watcher", lambda: guard.watch(exporter.clock.sleep))
        yield
        await supervisor.stop()
        await exporter.applier.flush()

    app.cleanup_ctx.append(background)
    return app


async def run(
    config: Config,
    source: ConfigSource,
    *,
    demo: bool,
    ready: ReadyFn | None = None,
    web_config_file: str | None = None,
    webhook_listen_address: str | None = None,
) -> None:
    """Run the daemon until SIGTERM/SIGINT; SIGHUP reloads the config."""
    clock = SystemClock()
    async with contextlib.AsyncExitStack() as stack:
        simulation: Demo | None = None
        if demo:
            simulation = await stack.enter_async_context(running_demo(clock, config.state.path))
            config, source = demo_config(config, simulation), _demo_source(source, simulation)
            log.info("demo.started", api=simulation.base_url)
        exporter = await _start_exporter(stack, config, clock, DEMO_BASE_URL if demo else None)
        exporter.web_guard = WebGuard(web_config_file)
        port = await _serve(stack, exporter, source, webhook_listen_address)
        stop = _handle_signals(stack, exporter, source)
        if ready is not None:
            await ready(port)
        if simulation is not None:
            sim, demo_now = simulation, config
            exporter.supervisor.start("demo_webhooks", lambda: send_demo_webhooks(sim, demo_now, clock, port))
            # stopped first: no webhook connects while the server shuts down
            stack.push_async_callback(exporter.supervisor.stop, "demo_webhooks")
        await stop.wait()
        log.info("exporter.stopping")


def _demo_source(source: ConfigSource, simulation: Demo) -> ConfigSource:
    return lambda: demo_config(source(), simulation)


async def _start_exporter(
    stack: contextlib.AsyncExitStack, config: Config, clock: Clock, owner_url: str | None
) -> Exporter:
    """The state file (locked, checked, bound to the account), the API session and the exporter
    loaded from the file; each released by `stack`."""
    account_sid, auth_token = config.api.account_sid, config.api.auth_token
    if not account_sid or not auth_token:  # the CLI checks this; direct callers get it too
        raise ConfigError("<config>", ["api.account_sid and api.auth_token: required, got nothing"])
    db = StateDB(config.state.path or default_state_path(environ()), clock.time)
    stack.push_async_callback(db.close)
    loaded = await db.start(
        Owner(account_sid, owner_url or config.api.base_url),
        clock.time(),
        if_unreadable=config.state.if_unreadable,
    )
    session = make_session(account_sid, auth_token, config.api.timeout)
    stack.push_async_callback(session.close)
    exporter = build_exporter(config, HttpTransport(session, config.api.base_url), clock)
    journal = await attach_state(exporter, db, loaded)
    stack.push_async_callback(journal.drain)  # before the file closes
    return exporter


async def _serve(
    stack: contextlib.AsyncExitStack,
    exporter: Exporter,
    source: ConfigSource,
    webhook_listen_address: str | None,
) -> int:
    """The web app (whose start-up starts the background tasks) and, when asked, the webhook
    receiver on its own address; the port of the web app."""
    guard = exporter.web_guard
    assert guard is not None  # noqa: S101 - set by run()
    separate = webhook_listen_address is not None
    app = create_app(exporter, source, middlewares=(guard.middleware,), webhooks=not separate)
    connections = ConnectionGuard()  # one cap for both listeners
    if webhook_listen_address is not None and exporter.webhook_parts is not None:
        hook_app = web.Application(client_max_size=1024 * 1024)
        add_routes(hook_app, exporter.webhook_parts)
        await _listen(stack, hook_app, webhook_listen_address, None, connections)
        log.info("webhooks.listening", listen=webhook_listen_address)
    port = await _listen(stack, app, exporter.config.web.listen_address, guard.context, connections)
    config = exporter.config
    log.info(
        "exporter.started",
        version=__version__,
        listen=config.web.listen_address,
        telemetry_path=config.web.telemetry_path,
        budget=config.budget.requests_per_hour,
    )
    return port


async def _listen(
    stack: contextlib.AsyncExitStack,
    app: web.Application,
    address: str,
    ssl_context: Any,
    connections: ConnectionGuard,
) -> int:
    """Serve `app` on `address` with the server's limits (exporter.web.server); the bound port."""
    host, port = parse_listen_address(address)
    listener = await serve(app, host or None, port, ssl_context=ssl_context, guard=connections)
    stack.push_async_callback(listener.cleanup)
    return listener.port


def _handle_signals(
    stack: contextlib.AsyncExitStack, exporter: Exporter, source: ConfigSource
) -> asyncio.Event:
    """SIGTERM and SIGINT set the returned event; SIGHUP reloads. Handlers removed on exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Future[list[str]]] = set()

    def reload() -> None:
        task = asyncio.ensure_future(exporter.reload(source))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig, handler in ((signal.SIGTERM, stop.set), (signal.SIGINT, stop.set), (signal.SIGHUP, reload)):
        loop.add_signal_handler(sig, handler)
        stack.callback(loop.remove_signal_handler, sig)
    return stop
