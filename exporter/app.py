"""Composition root: builds every real object, owns every lifetime, runs the daemon.

Nothing else constructs sessions, tasks or servers; everything else receives what it needs.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from exporter import __version__
from exporter.api import HttpTransport, make_session
from exporter.budget import Ledger
from exporter.clock import Clock, SystemClock
from exporter.config import Config, default_state_path, environ, parse_listen_address
from exporter.demo import Demo, demo_config, send_demo_webhooks, start_demo
from exporter.errors import ConfigError
from exporter.persistence import GroupCommit, StateDB, VolatileDB
from exporter.scheduler import Scheduler, Transport
from exporter.scrape import Scraper
from exporter.server import ServerParts, build_app
from exporter.state import Snapshot, StateStore
from exporter.supervisor import Supervisor
from exporter.telemetry import Live, Telemetry
from exporter.webconfig import WebGuard
from exporter.webhook import Applier, WebhookParts, add_routes

log = structlog.get_logger("exporter.app")

# Loads the config again (file + environment) for a reload; raises ConfigError.
ConfigSource = Callable[[], Config]

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
        self.live.reload_ok, self.live.reload_at = True, self.clock.time()
        self.scraper.changed.set()
        log.info("config.reloaded", budget=config.budget.requests_per_hour,
                 collectors=[n for n, c in config.collectors.items() if c.enabled])
        return []


def build_exporter(config: Config, transport: Transport, clock: Clock) -> Exporter:
    store = StateStore()
    ledger = Ledger(config.budget.requests_per_hour, config.budget.requests_per_second)
    live = Live(store, ledger, reload_at=clock.time())
    telemetry = Telemetry(live, clock.time)
    scheduler = Scheduler(config, transport, ledger, store, telemetry, live, clock)
    scraper = Scraper(clock, store, telemetry, clock.time,
                      lambda: dict(scheduler.plan.intervals) if scheduler.plan else {},
                      scheduler.max_ages)
    store.on_change = scraper.changed.set
    scheduler.refresh_debounce = config.webhooks.refresh_debounce
    applier = Applier(store, None, clock, scheduler.request_refresh)
    supervisor = Supervisor(clock, lambda task: telemetry.task_restarts.labels(task).inc())
    exporter = Exporter(config, clock, store, ledger, live, telemetry, scheduler, scraper, applier,
                        supervisor)
    if config.webhooks.enabled or config.webhooks.hetrixtools_token:
        exporter.webhook_parts = WebhookParts(config.webhooks, GroupCommit(VolatileDB()), applier,
                                              telemetry, clock)
    return exporter


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


async def attach_state(exporter: Exporter, db: StateDB) -> DbJournal:
    """Load the state file into a fresh exporter (warm start) and keep the file up to date."""
    now = exporter.clock.time()
    loaded = await db.load(now)
    store = exporter.store
    for snapshot in loaded.snapshots:
        if snapshot.collector in exporter.config.collectors and \
                exporter.config.collectors[snapshot.collector].enabled:
            store.replace(snapshot)
    store.webhooks = loaded.webhooks
    for ts in loaded.ledger:
        exporter.ledger.record(ts)
    exporter.scheduler.restore(now)
    exporter.db = db
    exporter.applier = Applier(store, db, exporter.clock, exporter.scheduler.request_refresh)
    exporter.applier.replay(loaded.events)
    if exporter.webhook_parts is not None:
        exporter.webhook_parts.commit = GroupCommit(db)
        exporter.webhook_parts.applier = exporter.applier
    journal = DbJournal(db)
    store.journal = journal

    async def sent(ts: float) -> None:
        await db.record_sends([ts])

    exporter.scheduler.journal_send = sent
    log.info("state.loaded", path=db.path, snapshots=len(loaded.snapshots),
             replayed_events=len(loaded.events), ledger=len(loaded.ledger))
    return journal


def create_app(exporter: Exporter, source: ConfigSource, *, middlewares: tuple[Any, ...] = (),
               webhooks: bool = True) -> web.Application:
    """The web app, whose start-up starts the poller and the renderer and whose clean-up stops them."""

    async def reload() -> list[str]:
        return await exporter.reload(source)

    app = build_app(ServerParts(exporter.scraper, exporter.store, exporter.live, reload,
                                exporter.clock.time, exporter.config.web.telemetry_path,
                                exporter.supervisor.failing), middlewares)
    if exporter.webhook_parts is not None and webhooks:
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


async def run(config: Config, source: ConfigSource, *, demo: bool,
              ready: Callable[[int], Awaitable[None]] | None = None,
              web_config_file: str | None = None, webhook_listen_address: str | None = None) -> None:
    """Run the daemon until SIGTERM/SIGINT; SIGHUP reloads the config."""
    clock = SystemClock()
    cleanups: list[Callable[[], Awaitable[None]]] = []
    simulation: Demo | None = None
    if demo:
        simulation = await start_demo(clock)
        cleanups.append(simulation.runner.cleanup)
        config = demo_config(config, simulation)
        base_source = source
        sim = simulation

        def source() -> Config:
            return demo_config(base_source(), sim)

        log.info("demo.started", api=simulation.base_url)
    account_sid, auth_token = config.api.account_sid, config.api.auth_token
    if not account_sid or not auth_token:  # the CLI checks this; direct callers get it too
        raise ConfigError("<config>", ["api.account_sid and api.auth_token: required, got nothing"])
    session = make_session(account_sid, auth_token, config.api.timeout)
    cleanups.append(session.close)
    exporter = build_exporter(config, HttpTransport(session, config.api.base_url), clock)
    db = StateDB(config.state.path or default_state_path(environ(), demo))
    await db.open()
    journal = await attach_state(exporter, db)

    async def close_db() -> None:
        await journal.drain()
        await db.close()

    cleanups.append(close_db)
    guard = WebGuard(web_config_file)
    exporter.web_guard = guard
    separate = webhook_listen_address is not None
    app = create_app(exporter, source, middlewares=(guard.middleware,), webhooks=not separate)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    cleanups.insert(0, runner.cleanup)
    host, port = parse_listen_address(config.web.listen_address)
    site = web.TCPSite(runner, host or None, port, ssl_context=guard.context)
    if separate and exporter.webhook_parts is not None:
        hook_app = web.Application(client_max_size=1024 * 1024)
        add_routes(hook_app, exporter.webhook_parts)
        hook_runner = web.AppRunner(hook_app, access_log=None, handle_signals=False)
        await hook_runner.setup()
        cleanups.insert(0, hook_runner.cleanup)
        hook_host, hook_port = parse_listen_address(webhook_listen_address or "")
        await web.TCPSite(hook_runner, hook_host or None, hook_port).start()
        log.info("webhooks.listening", listen=webhook_listen_address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        await site.start()
        log.info("exporter.started", version=__version__, listen=config.web.listen_address,
                 telemetry_path=config.web.telemetry_path,
                 budget=config.budget.requests_per_hour)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP,
                                lambda: asyncio.ensure_future(exporter.reload(source)))
        if ready is not None:
            await ready(port)
        if simulation is not None:
            demo_sim, demo_config_now = simulation, config
            exporter.supervisor.start(
                "demo_webhooks", lambda: send_demo_webhooks(demo_sim, demo_config_now, clock, port))
        await stop.wait()
        log.info("exporter.stopping")
    finally:
        for cleanup in cleanups:
            await cleanup()
