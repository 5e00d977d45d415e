"""Composition root: builds every real object, owns every lifetime, runs the daemon.

Nothing else constructs sessions, tasks or servers; everything else receives what it needs, and
each object is built complete, once. `run` enters every lifetime (the demo, the state file, the
API session, the listeners, the signal handlers) on one AsyncExitStack as it is created, so that
whatever fails (a taken port, a locked or broken state file, a bad web config) everything started
so far is released, in reverse order. The demo and its simulator are imported only for `--demo`.
I/O: the state file, the API session, the listeners and the signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from exporter import __version__
from exporter.api.endpoints import ENDPOINTS, Tier
from exporter.api.transport import HttpTransport, make_session
from exporter.clock import Clock, SystemClock
from exporter.config.load import default_state_path, environ
from exporter.config.model import Config
from exporter.config.parse import parse_listen_address
from exporter.errors import ConfigError
from exporter.metrics.selfmetrics import (
    APPLIER,
    DEMO_WEBHOOKS,
    RENDERER,
    SCHEDULER,
    WEB_CONFIG_WATCHER,
    Live,
    Telemetry,
)
from exporter.metrics.serve import Scraper
from exporter.polling.ledger import Ledger
from exporter.polling.scheduler import PollSettings, Scheduler, Transport
from exporter.state.snapshot import Snapshot
from exporter.state.sqlite import GroupCommit, Loaded, Owner, StateDB
from exporter.state.store import StateStore
from exporter.supervisor import Supervisor
from exporter.web.guard import WebGuard
from exporter.web.routes import LISTENER_MAX_BODY, ServerParts, build_app
from exporter.web.server import ConnectionGuard, serve
from exporter.webhooks.applier import Applier
from exporter.webhooks.receivers import WebhookParts, add_admin_routes, add_routes

if TYPE_CHECKING:
    from exporter.demo.wiring import Demo

log = structlog.get_logger("exporter.app")

# Loads the config again (file + environment) for a reload; raises ConfigError.
ConfigSource = Callable[[], Config]
ReadyFn = Callable[[int], Awaitable[None]]


@dataclass(slots=True)
class Exporter:
    """Every long-lived object of one running exporter, built together by build_exporter."""

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
    db: StateDB
    journal: DbJournal
    web_guard: WebGuard
    webhook_parts: WebhookParts | None = None

    async def reload(self, source: ConfigSource) -> list[str]:
        """Re-read the config (and the web config); a bad one keeps the old and is reported."""
        web_problems = self.web_guard.reload()
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
        self.scheduler.configure(poll_settings(config))
        if self.webhook_parts is not None:
            self.webhook_parts.config = config.webhooks  # secrets rotate without a restart
        self.applier.series_max_age = config.webhooks.series_max_age
        self.live.reload_ok, self.live.reload_at = True, self.clock.time()
        self.scraper.per_host = config.exposition.per_host
        self.scraper.changed.set()
        log.info(
            "config.reloaded",
            budget=config.budget.requests_per_hour,
            collectors=[n for n, c in config.collectors.items() if c.enabled],
        )
        return []


class HeapFreezer:
    """Takes what the daemon holds for good out of the cyclic garbage collector's view
    (gc.freeze): once started (the modules, the warm-started state) and once more when the
    first complete inventory is in (every collector in `collectors` has a snapshot).

    Python's full collections walk every tracked object that is not frozen, on the event loop:
    at 20,000 hosts and 5,000 monitors about 100,000 of them, half of which are the modules and
    objects made at start-up, and a collection took 13 to 170 ms on a loaded 2-core machine
    (bench.webhooks, instrumented). Freezing leaves those collections only the newer objects.
    A frozen object is still freed when nothing refers to it any more (a snapshot replaced by
    a poll is), so only garbage cycles among frozen objects would stay: each freeze is preceded
    by a full collection, so none is frozen. `freezes` counts the freezes done."""

    def __init__(self, store: StateStore, collectors: Collection[str]) -> None:
        self.freezes = 0
        self._store = store
        self._collectors = frozenset(collectors)
        self._inventory_in = False

    def freeze(self) -> None:
        gc.collect()
        gc.freeze()
        self.freezes += 1
        log.info("gc.frozen", objects=gc.get_freeze_count(), freezes=self.freezes)

    def changed(self) -> None:
        """Call on every change of the store, on the event loop: the first time every collector
        has a snapshot, a freeze runs once the current step is done."""
        if not self._inventory_in and self._collectors <= self._store.snapshots().keys():
            self._inventory_in = True
            asyncio.get_running_loop().call_soon(self.freeze)


def freeze_heap(exporter: Exporter) -> HeapFreezer:
    """Freeze what `exporter` holds now, and again after its first complete inventory: every
    enabled alerting and inventory collector (listings, errors, hosts, monitors: what is large)
    has a snapshot. The small secondary ones are not waited for: one the account's plan does
    not offer (certificate profiles, say) never succeeds. The store tells the freezer of each
    change, after whoever it told before."""
    enabled = [
        name
        for name, collector in exporter.config.collectors.items()
        if collector.enabled and ENDPOINTS[name].tier is not Tier.SECONDARY
    ]
    freezer = HeapFreezer(exporter.store, enabled)
    before = exporter.store.on_change

    def changed() -> None:
        if before is not None:
            before()
        freezer.changed()

    exporter.store.on_change = changed
    freezer.freeze()
    return freezer


def poll_settings(config: Config) -> PollSettings:
    """The parts of the config the scheduler uses."""
    return PollSettings(
        config.collectors, config.budget, config.api.page_size, config.webhooks.refresh_debounce
    )


class DbJournal:
    """Writes snapshot changes and sends to the state file, in order, without blocking the caller."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        self._tasks: set[asyncio.Future[None]] = set()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def replaced(self, snapshot: Snapshot, changed: Collection[str] | None = None) -> None:
        self._spawn(self._db.save_snapshot(snapshot, changed))

    def confirmed(self, collector: str, at: float) -> None:
        self._spawn(self._db.confirm(collector, at))

    def dropped(self, collector: str) -> None:
        self._spawn(self._db.drop(collector))

    async def sent(self, at: float) -> None:
        """A request is about to leave: on file before it does (the hourly ledger)."""
        await self._db.record_sends([at])

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def build_exporter(
    config: Config,
    transport: Transport,
    clock: Clock,
    db: StateDB,
    loaded: Loaded,
    web_guard: WebGuard | None = None,
) -> Exporter:
    """The exporter, complete, on the open state file `db`: warm-started from what was `loaded`
    from it (snapshots of enabled collectors, webhook state, the hourly ledger, the events
    acknowledged but not yet checkpointed), and writing every change to it from now on.

    `web_guard` enforces the web config file; without one, there is none (no --web.config.file).
    Drain `exporter.journal` before `db` closes (`open_exporter` does both)."""
    now = clock.time()
    journal = DbJournal(db)
    changed = asyncio.Event()  # wakes the renderer
    store = _restored_store(config, loaded, journal, changed.set)
    ledger = Ledger(config.budget.requests_per_hour, config.budget.requests_per_second, sent=loaded.ledger)
    live = Live(store, ledger, reload_at=now)
    telemetry = Telemetry(live, clock.time)
    scheduler = Scheduler(
        poll_settings(config), transport, ledger, store, telemetry, live, clock, journal_send=journal.sent
    )
    scheduler.restore(now)
    scraper = Scraper(
        clock,
        store,
        telemetry,
        lambda: dict(scheduler.plan.intervals) if scheduler.plan else {},
        scheduler.max_ages,
        changed,
        per_host=config.exposition.per_host,
    )
    applier = _replaying_applier(config, store, db, clock, scheduler.request_refresh, telemetry, loaded)
    parts = None
    if config.webhooks.enabled or config.webhooks.hetrixtools_token:
        parts = WebhookParts(config.webhooks, GroupCommit(db), applier, telemetry, clock)
    supervisor = Supervisor(clock, lambda task: telemetry.task_restarts.labels(task).inc())
    return Exporter(
        config=config,
        clock=clock,
        store=store,
        ledger=ledger,
        live=live,
        telemetry=telemetry,
        scheduler=scheduler,
        scraper=scraper,
        applier=applier,
        supervisor=supervisor,
        db=db,
        journal=journal,
        web_guard=web_guard if web_guard is not None else WebGuard(None),  # no web config file
        webhook_parts=parts,
    )


def _replaying_applier(
    config: Config,
    store: StateStore,
    db: StateDB,
    clock: Clock,
    refresh: Callable[[str, str, float], bool],
    telemetry: Telemetry,
    loaded: Loaded,
) -> Applier:
    """The webhook applier, writing to `db`, with the events acknowledged but not yet
    checkpointed folded in (one that cannot be applied is set aside, never raised)."""
    applier = Applier(store, db, clock, refresh, telemetry, config.webhooks.series_max_age)
    aside = applier.replay(loaded.events)
    if aside:
        log.warning("state.events_set_aside", path=db.path, count=len(aside))
    log.info(
        "state.loaded",
        path=db.path,
        snapshots=len(loaded.snapshots),
        replayed_events=len(loaded.events),
        ledger=len(loaded.ledger),
    )
    return applier


def _restored_store(
    config: Config, loaded: Loaded, journal: DbJournal, on_change: Callable[[], None]
) -> StateStore:
    """A store holding the stored snapshots of enabled collectors and the webhook state (not
    written back), writing changes to `journal` from now on."""
    enabled = [
        snapshot
        for snapshot in loaded.snapshots
        if (collector := config.collectors.get(snapshot.collector)) is not None and collector.enabled
    ]
    return StateStore(enabled, loaded.webhooks, journal=journal, on_change=on_change)


@contextlib.asynccontextmanager
async def open_exporter(
    config: Config,
    transport: Transport,
    clock: Clock,
    path: str,
    owner: Owner | None = None,
    *,
    web_guard: WebGuard | None = None,
) -> AsyncIterator[Exporter]:
    """The state file at `path` (":memory:": none) locked, checked, bound to `owner` and loaded,
    and the exporter built on it; on exit the journal is drained and the file closed, also when
    the start fails half-way."""
    db = StateDB(path, clock.time)
    try:
        loaded = await db.start(owner, clock.time(), if_unreadable=config.state.if_unreadable)
        exporter = build_exporter(config, transport, clock, db, loaded, web_guard)
        try:
            yield exporter
        finally:
            await exporter.journal.drain()  # before the file closes
    finally:
        await db.close()


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
            lambda: exporter.applier.pending,
        ),
        middlewares,
    )
    if exporter.webhook_parts is not None:
        add_admin_routes(app, exporter.webhook_parts)  # on this listener even when webhooks aren't
        if webhooks:
            add_routes(app, exporter.webhook_parts)

    async def background(_: web.Application) -> AsyncIterator[None]:
        supervisor = exporter.supervisor
        supervisor.start(SCHEDULER, exporter.scheduler.run_forever)
        supervisor.start(RENDERER, exporter.scraper.keep_rendered)
        supervisor.start(APPLIER, exporter.applier.run)
        guard = exporter.web_guard
        if guard.path:
            supervisor.start(WEB_CONFIG_WATCHER, lambda: guard.watch(exporter.clock.sleep))
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
    extra_listen_addresses: Sequence[str] = (),
) -> None:
    """Run the daemon until SIGTERM/SIGINT; SIGHUP reloads the config. The web app listens on
    config.web.listen_address and on each of `extra_listen_addresses` (a repeated
    --web.listen-address: the toolkit serves every one)."""
    clock = SystemClock()
    async with contextlib.AsyncExitStack() as stack:
        simulation: Demo | None = None
        if demo:
            simulation = await _start_demo(stack, clock, config.state.path)
            config, source = _demo_config(config, simulation), _demo_source(source, simulation)
        guard = WebGuard(web_config_file)  # a bad file fails here, before the state file opens
        exporter = await _start_exporter(stack, config, clock, guard, demo=demo)
        freeze_heap(exporter)
        port = await _serve(stack, exporter, source, webhook_listen_address, extra_listen_addresses)
        stop = _handle_signals(stack, exporter, source)
        if ready is not None:
            await ready(port)
        if simulation is not None:
            _start_demo_webhooks(stack, exporter, simulation, port)
        await stop.wait()
        log.info("exporter.stopping")


async def _start_demo(stack: contextlib.AsyncExitStack, clock: Clock, state_path: str | None) -> Demo:
    """The simulator (imported here: the daemon without --demo never loads it), released by `stack`."""
    from exporter.demo.wiring import running_demo

    simulation = await stack.enter_async_context(running_demo(clock, state_path))
    log.info("demo.started", api=simulation.base_url)
    return simulation


def _demo_config(config: Config, simulation: Demo) -> Config:
    from exporter.demo.wiring import demo_config

    return demo_config(config, simulation)


def _demo_source(source: ConfigSource, simulation: Demo) -> ConfigSource:
    return lambda: _demo_config(source(), simulation)


def _start_demo_webhooks(
    stack: contextlib.AsyncExitStack, exporter: Exporter, simulation: Demo, port: int
) -> None:
    """The simulator's webhooks to our listener, stopped first on the way out (so that no webhook
    connects while the server shuts down)."""
    from exporter.demo.wiring import send_demo_webhooks

    config, clock = exporter.config, exporter.clock
    exporter.supervisor.start(DEMO_WEBHOOKS, lambda: send_demo_webhooks(simulation, config, clock, port))
    stack.push_async_callback(exporter.supervisor.stop, DEMO_WEBHOOKS)


async def _start_exporter(
    stack: contextlib.AsyncExitStack, config: Config, clock: Clock, guard: WebGuard, *, demo: bool
) -> Exporter:
    """The state file (locked, checked, bound to the account), the API session and the exporter
    loaded from the file; each released by `stack`."""
    account_sid, auth_token = config.api.account_sid, config.api.auth_token
    if not account_sid or not auth_token:  # the CLI checks this; direct callers get it too
        raise ConfigError("<config>", ["api.account_sid and api.auth_token: required, got nothing"])
    # a demo's state file is bound to the demo, not to the simulator's port of the day
    owner_url = config.api.base_url
    if demo:
        from exporter.demo.wiring import DEMO_BASE_URL

        owner_url = DEMO_BASE_URL
    session = await stack.enter_async_context(make_session(account_sid, auth_token, config.api.timeout))
    return await stack.enter_async_context(
        open_exporter(
            config,
            HttpTransport(session, config.api.base_url),
            clock,
            config.state.path or default_state_path(environ()),
            Owner(account_sid, owner_url),
            web_guard=guard,
        )
    )


async def _serve(
    stack: contextlib.AsyncExitStack,
    exporter: Exporter,
    source: ConfigSource,
    webhook_listen_address: str | None,
    extra_listen_addresses: Sequence[str] = (),
) -> int:
    """The web app (whose start-up starts the background tasks) on its address and the extra
    ones and, when asked, the webhook receiver on its own address; the port of the web app."""
    guard = exporter.web_guard
    separate = webhook_listen_address is not None
    app = create_app(exporter, source, middlewares=(guard.middleware,), webhooks=not separate)
    connections = ConnectionGuard()  # one cap for both listeners
    if webhook_listen_address is not None and exporter.webhook_parts is not None:
        hook_app = web.Application(client_max_size=LISTENER_MAX_BODY)
        add_routes(hook_app, exporter.webhook_parts)
        await _listen(stack, hook_app, webhook_listen_address, None, connections)
        log.info("webhooks.listening", listen=webhook_listen_address)
    port = await _listen(
        stack, app, exporter.config.web.listen_address, guard.context, connections, extra_listen_addresses
    )
    config = exporter.config
    log.info(
        "exporter.started",
        version=__version__,
        listen=config.web.listen_address,
        also_listen=list(extra_listen_addresses),
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
    also: Sequence[str] = (),
) -> int:
    """Serve `app` on `address` and the `also` addresses with the server's limits
    (exporter.web.server); the port bound for `address`."""
    host, port = parse_listen_address(address)
    others = [(h or None, p) for h, p in map(parse_listen_address, also)]
    listener = await serve(app, host or None, port, ssl_context=ssl_context, guard=connections, also=others)
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
