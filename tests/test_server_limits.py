"""Slow and hostile clients against a real listener (exporter.web.server.serve) on 127.0.0.1: idle
connections beyond the cap, slowloris heads, oversized heads, clients that never read. While
they are connected, /metrics keeps answering and the listener never holds more connections than
its cap. Deadlines are small here so that each test ends in seconds; every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from exporter.api.records import Host
from exporter.app import Exporter
from exporter.state.snapshot import Snapshot
from exporter.web.routes import ServerParts, build_app
from exporter.web.server import WRITE_CHUNK, ConnectionGuard, Limits, Listener, serve
from tests.helpers.exporters import simulated_exporter
from tests.helpers.rig import FakeClock

DEADLINE = 20.0  # seconds: generous bounds on waits, never a timing assertion
HOSTS = 12_000  # an uncompressed /metrics of several MB: more than the socket buffers hold
BODY = 4_000_000  # bytes: the least that body is


@pytest.fixture
async def app_factory() -> AsyncIterator[Callable[[], object]]:
    """An exporter holding HOSTS hosts (a large /metrics), rendered once for the test."""
    clock = FakeClock()
    async with simulated_exporter(clock, hosts=1, monitors=1) as simulated:
        yield app_maker(simulated.exporter, clock)


def app_maker(exporter: Exporter, clock: FakeClock) -> Callable[[], object]:
    """Fills `exporter` with HOSTS hosts, renders once, and returns a factory of its web app."""
    hosts = {
        f"HT{i:032x}": Host(
            f"HT{i:032x}",
            f"mx{i}.mail.example.com",
            f"Mail relay {i}",
            "domain",
            "RP" + "0" * 32,
            False,
            i % 7 == 0,
            1 if i % 7 == 0 else 0,
            ("zen.spamhaus.org",) if i % 7 == 0 else (),
            clock.now - 60,
            None,
        )
        for i in range(HOSTS)
    }
    exporter.store.replace(Snapshot("rbl_hosts", hosts, clock.now, clock.now))
    exporter.scraper.render_now()

    async def reload() -> list[str]:
        return []

    def make() -> object:
        return build_app(ServerParts(exporter.scraper, exporter.store, exporter.live, reload, clock.time))

    return make


@contextlib.asynccontextmanager
async def listening(app_factory: Callable[[], object], limits: Limits) -> AsyncIterator[Listener]:
    listener = await serve(app_factory(), "127.0.0.1", 0, guard=ConnectionGuard(limits))  # type: ignore[arg-type]
    try:
        yield listener
    finally:
        await listener.cleanup()


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait (bounded by DEADLINE) for something the listener does in its own time."""
    step = 0.01
    for _ in range(int(DEADLINE / step)):
        if predicate():
            return
        await asyncio.sleep(step)
    pytest.fail(f"timed out waiting for {what}")


async def scrape(port: int, encoding: str = "identity") -> tuple[int, bytes]:
    timeout = aiohttp.ClientTimeout(total=DEADLINE)
    async with (
        aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
        session.get(f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": encoding}) as r,
    ):
        return r.status, await r.read()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (b"" if nothing)."""
    chunks = []
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@contextlib.asynccontextmanager
async def connections(
    port: int, n: int, *, rcvbuf: int | None = None
) -> AsyncIterator[list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]:
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(n):
            if rcvbuf is None:
                opened.append(await asyncio.open_connection("127.0.0.1", port))
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: small window
            sock.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            except BaseException:
                sock.close()
                raise
            opened.append(await asyncio.open_connection(sock=sock))
        yield opened
    finally:
        for _, writer in opened:
            writer.transport.abort()
        await asyncio.sleep(0)  # let the transports close their sockets


async def metrics_answer(port: int) -> None:
    status, body = await scrape(port)
    assert status == 200
    assert len(body) > BODY
    assert body.count(b"generatorlabs_rbl_host_info{") == HOSTS
    assert f"generatorlabs_rbl_hosts {HOSTS}\n".encode() in body


async def test_idle_connections_beyond_the_cap_neither_starve_metrics_nor_exceed_it(app_factory) -> None:  # type: ignore[no-untyped-def]
    cap = 100
    limits = Limits(max_connections=cap, evict_after=0.0)
    async with listening(app_factory, limits) as listener, connections(listener.port, 3 * cap) as idle:
        guard = listener.guard
        await until(lambda: guard.open + guard.evicted >= 3 * cap, "the listener to accept them all")
        await metrics_answer(listener.port)
        assert guard.peak <= cap
        assert guard.open <= cap
        # the oldest idle connections made room: the server closed them, without an answer
        first = idle[: 2 * cap - 1]
        sent = await asyncio.wait_for(asyncio.gather(*(closed_by_server(r) for r, _ in first)), DEADLINE)
        assert sent == [b""] * len(first)


async def test_at_the_cap_an_idle_keep_alive_connection_makes_room_for_a_scrape(app_factory) -> None:  # type: ignore[no-untyped-def]
    limits = Limits(max_connections=3, evict_after=0.0)
    async with listening(app_factory, limits) as listener, connections(listener.port, 3) as kept:
        for reader, writer in kept:  # one request each, answered; then idle on keep-alive
            writer.write(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
            assert head.startswith(b"HTTP/1.1 200 ")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(length), DEADLINE)
        await metrics_answer(listener.port)
        assert listener.guard.evicted == 1 and listener.guard.peak == 3
        assert await asyncio.wait_for(closed_by_server(kept[0][0]), DEADLINE) == b""


async def test_slowloris_heads_are_cut_off_and_metrics_answers_meanwhile(app_factory) -> None:  # type: ignore[no-untyped-def]
    # the head deadline, not keep-alive; it binds the scrapes below too, whose heads must arrive
    # within it on a loaded machine: 2 s, while a trickled head would take 200 s
    limits = Limits(head_timeout=2.0, keepalive_timeout=60.0)
    async with listening(app_factory, limits) as listener, connections(listener.port, 50) as slow:
        head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 10_000

        async def trickle(writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                for byte in head:  # a byte at a time, never the blank line that ends a head
                    if writer.transport.is_closing():
                        return
                    writer.write(bytes([byte]))
                    await asyncio.sleep(0.02)

        tricklers = [asyncio.create_task(trickle(w)) for _, w in slow]
        try:
            await metrics_answer(listener.port)
            sent = await asyncio.wait_for(asyncio.gather(*(closed_by_server(r) for r, _ in slow)), DEADLINE)
        finally:
            for task in tricklers:
                task.cancel()
            await asyncio.gather(*tricklers, return_exceptions=True)
        assert sent == [b""] * len(slow)  # closed, never answered
        assert listener.guard.head_timeouts == len(slow)
        await metrics_answer(listener.port)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # request line over MAX_LINE_SIZE
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",  # a header line
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(200)) + b"\r\n",
    ],
    ids=["request-line", "header-line", "header-count"],
)
async def test_oversized_heads_get_400_at_once_not_a_hang(app_factory, head: bytes) -> None:  # type: ignore[no-untyped-def]
    async with listening(app_factory, Limits()) as listener, connections(listener.port, 1) as [(r, w)]:
        w.write(head)
        answer = await asyncio.wait_for(closed_by_server(r), DEADLINE)
        assert answer.split(b"\r\n", 1)[0].split(b" ")[1] in (b"400", b"431")
        await metrics_answer(listener.port)


async def test_clients_that_never_read_hold_one_chunk_each_and_are_dropped(app_factory) -> None:  # type: ignore[no-untyped-def]
    limits = Limits(write_timeout=3.0)  # room for all ten to stall before the first is dropped
    async with (
        listening(app_factory, limits) as listener,
        connections(listener.port, 10, rcvbuf=4096) as stuck,
    ):
        guard = listener.guard
        for _, w in stuck:
            w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
        await until(
            lambda: sum(c.stalled for c in guard.connections()) == len(stuck),
            "every response to stall on its unread socket",
        )
        # the responses in flight share the cached body: each holds a couple of chunks, no copy
        buffered = [c.buffered for c in guard.connections()]
        assert max(buffered) <= 3 * WRITE_CHUNK < BODY // 20, buffered
        await metrics_answer(listener.port)  # answered meanwhile
        await until(
            lambda: guard.write_timeouts == len(stuck) and guard.open == 0,
            "the write deadline to drop the clients that do not read",
        )
        await metrics_answer(listener.port)


async def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused_at_once(app_factory) -> None:  # type: ignore[no-untyped-def]
    limits = Limits(max_connections=5, write_timeout=3.0, evict_after=0.0)
    async with listening(app_factory, limits) as listener:
        guard = listener.guard
        async with connections(listener.port, 5, rcvbuf=4096) as stuck:
            for _, w in stuck:
                w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
            await until(lambda: sum(c.stalled for c in guard.connections()) == 5, "five stalled responses")
            async with connections(listener.port, 1) as [(r, _)]:
                answer = await asyncio.wait_for(closed_by_server(r), DEADLINE)
            assert answer.startswith(b"HTTP/1.1 503 ")
            assert guard.refused == 1 and guard.peak == 5
        # the stalled clients hang up (the write deadline dropping them is the test above, and
        # takes its 3 s): their places are free again, and /metrics answers
        await until(lambda: guard.open == 0, "the stalled clients' connections to be released")
        await metrics_answer(listener.port)
