"""The simulator's server machinery, shared by every venue's protocol.

A ``SimServer`` owns the synthetic markets, drives them at the configured rate, and fans each step
out to its connections. A venue subclass supplies the ``SimConnection`` subclass that speaks the
protocol. Faults are applied here, on the way out, so every venue gets the same ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tickerterm.core.errors import ConfigError, no_debug
from tickerterm.sim.faults import Faults
from tickerterm.sim.market import DEFAULT_PRODUCTS, Market, ProductSpec, Step

log = logging.getLogger(__name__)
_wire_log = logging.getLogger("tickerterm.sim.wire")
_wire_log.addFilter(no_debug)  # frames carry JWTs: never logged

_HIGH_WATER = 5000
"""Frames queued for one connection beyond which the market waits (backpressure)."""


@dataclass(slots=True)
class SimTiming:
    """Intervals (seconds) of the simulator's periodic messages; tests shrink them."""

    l2_batch: float = 0.05
    """Book changes are sent as net changes per level, batched this often..."""
    l2_batch_max: int = 16
    """...or as soon as a product has this many changed levels waiting."""
    heartbeat: float = 1.0
    trades_batch: float = 0.25
    candles: float = 1.0
    ticker_batch: float = 5.0
    user: float = 2.0
    status: float = 30.0
    subscribe_deadline: float = 5.0
    ping_interval: float = 20.0
    """WebSocket pings from the server; a client that does not answer within the same time is closed."""


def rfc3339(ts: float) -> str:
    ns = int(ts * 1e9)
    sec, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


class SimConnection:
    """One client connection: a send queue drained by a writer task, with faults applied on the way."""

    def __init__(self, server: SimServer, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent = 0
        """Frames pushed (dropped ones included)."""
        self.dropped = 0
        self.malformed = 0
        self.unknown = 0
        self.stalled = False
        self.closing = False
        self.opened_at = time.monotonic()
        self.received: list[dict[str, Any]] = []
        """Every JSON frame this connection received from the client, in order (for tests)."""
        self.subscribed_once = asyncio.Event()
        self._close_code: tuple[int, str] = (1000, "")

    # --- outbound --------------------------------------------------------------------------

    def push(self, frame: str, *, data: bool = False, spoilable: bool | None = None) -> None:
        """Queue one frame. ``data`` frames may be dropped by the drop fault; ``spoilable`` ones (default:
        the data frames) spoiled by the corrupt fault — unsequenced book frames are spoilable, not data."""
        if self.closing or self.stalled:
            return
        faults = self.server.faults
        rng = self.server.fault_rng
        self.sent += 1
        if data and (faults.drop_next > 0 or (faults.drop_rate and rng.random() < faults.drop_rate)):
            if faults.drop_next > 0:
                faults.drop_next -= 1
            self.dropped += 1
            self.server.stats["dropped"] += 1
        elif (data if spoilable is None else spoilable) and (
            faults.corrupt_next > 0 or (faults.corrupt_rate and rng.random() < faults.corrupt_rate)
        ):
            spoiled = _corrupt(frame)
            if spoiled != frame and faults.corrupt_next > 0:
                faults.corrupt_next -= 1
            self.server.stats["corrupted"] += spoiled != frame
            self.queue.put_nowait(spoiled)
        else:
            self.queue.put_nowait(frame)
        if faults.malformed_next > 0 or (faults.malformed_rate and rng.random() < faults.malformed_rate):
            if faults.malformed_next > 0:
                faults.malformed_next -= 1
            self.malformed += 1
            self.server.stats["malformed"] += 1
            self.queue.put_nowait(_malformed(frame, rng))
        if faults.unknown_rate and rng.random() < faults.unknown_rate:
            self.unknown += 1
            self.server.stats["unknown"] += 1
            self.queue.put_nowait(self.unknown_frame())
        self._check_end_faults()

    def _check_end_faults(self) -> None:
        faults = self.server.faults
        server = self.server
        if (
            faults.stall_after_messages is not None
            and self.sent >= faults.stall_after_messages
            and server._spend("stall", faults.stall_connections)
        ):
            self.stalled = True
            server.stats["stalls"] += 1
            while not self.queue.empty():  # nothing more leaves, not even what was queued
                self.queue.get_nowait()
            return
        if (
            faults.close_code is not None
            and faults.close_after_messages is not None
            and self.sent >= faults.close_after_messages
            and server._spend("close", faults.close_connections)
        ):
            self.close_with(faults.close_code, faults.close_reason)

    def close_with(self, code: int, reason: str) -> None:
        """End the connection with ``code`` after what is queued (1006: cut the TCP connection)."""
        if self.closing:
            return
        self.closing = True
        self.server.stats["closes"] += 1
        self.queue.put_nowait(None)
        self._close_code = (code, reason)

    async def writer(self) -> None:
        ws = self.ws
        queue = self.queue
        try:
            while True:
                frame = await queue.get()
                if frame is None:
                    code, reason = self._close_code
                    if code == 1006:
                        ws.transport.abort()
                    else:
                        await ws.close(code, reason)
                    return
                await ws.send(frame)
        except ConnectionClosed:
            return

    def unknown_frame(self) -> str:
        """A frame of a type the protocol does not define (venue-specific)."""
        return '{"type":"mystery"}'

    # --- hooks for venues ------------------------------------------------------------------

    async def on_open(self) -> None:
        """Called once the connection is established."""

    async def on_frame(self, msg: Any) -> None:
        """Called with each JSON value the client sends."""

    def on_step(self, step: Step) -> None:
        """Called for each market step."""

    def on_timer(self, kind: str) -> None:
        """Called for each periodic tick: heartbeat, trades_batch, candles, ticker_batch, user, status."""

    def on_close(self) -> None:
        """Called once the connection has ended."""


class SimServer:
    """A venue simulator on a loopback port. Use ``async with`` or ``start()``/``stop()``."""

    venue: ClassVar[str] = ""
    connection_class: ClassVar[type[SimConnection]] = SimConnection
    default_products: ClassVar[tuple[ProductSpec, ...]] = DEFAULT_PRODUCTS

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 1,
        rate: float = 50.0,
        products: Iterable[ProductSpec] | None = None,
        depth: int = 2000,
        faults: Faults | None = None,
        timing: SimTiming | None = None,
        clock: Callable[[], float] = time.time,
        warmup: int = 0,
        warmup_span: float = 3600.0,
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.rate = rate
        """Market steps per second across all products; 0 = as fast as the connections take them."""
        specs = self.default_products if products is None else products
        self.markets: dict[str, Market] = {p.product: Market(p, seed, depth) for p in specs}
        self.faults = faults or Faults()
        self.fault_rng = random.Random(seed ^ 0x5EED)
        self.timing = timing or SimTiming()
        self.clock = clock
        self.connections: list[SimConnection] = []
        self.all_connections: list[SimConnection] = []
        """Every connection ever accepted, closed ones included (for tests)."""
        self.stats = {
            "dropped": 0,
            "corrupted": 0,
            "malformed": 0,
            "unknown": 0,
            "closes": 0,
            "stalls": 0,
            "connections": 0,
        }
        self._spent: dict[str, int] = {}
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._running = asyncio.Event()
        self._running.set()
        self._connected = asyncio.Condition()
        if warmup:  # a market with a past: recent trades and candles spread over the last warmup_span seconds
            start = clock() - warmup_span
            markets = list(self.markets.values())
            for i in range(warmup):
                markets[i % len(markets)].step(start + i * warmup_span / warmup)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """The same port answers plain HTTP GETs (the venue's REST endpoints the client uses)."""
        return f"http://{self.host}:{self.port}"

    def prepare_step(self, step: Step) -> None:
        """Called once per market step before the connections see it (venue-wide derived state)."""

    def client_credentials(self) -> object | None:
        """Credentials of the simulator's test account, for a client it starts (``--sim``)."""
        return None

    def write_key_file(self, path: str) -> None:
        """Write a key file of the simulator's test account, readable by ``--key-file`` (mode 0600)."""
        raise ConfigError(f"the {self.venue} simulator has no test account")

    @staticmethod
    def _write_private(path: str, data: dict[str, str]) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)

    async def http_get(self, path: str, query: dict[str, str], headers: Mapping[str, str]) -> tuple[int, Any]:
        """Answer a REST GET: ``(status, JSON body or encoded JSON bytes)``; venues with REST override it."""
        return 404, {"message": "NotFound"}

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        url = urlsplit(request.path)
        status, body = await self.http_get(url.path, dict(parse_qsl(url.query)), request.headers)
        text = body.decode() if isinstance(body, bytes) else json.dumps(body, separators=(",", ":"))
        response = connection.respond(status, text)  # bytes: JSON already encoded (exact numbers)
        response.headers["Content-Type"] = "application/json"
        return response

    def market(self, product: str) -> Market:
        return self.markets[product]

    def _spend(self, kind: str, budget: int) -> bool:
        """Take one use of a fault that ends connections; False once ``budget`` uses are spent."""
        used = self._spent.get(kind, 0)
        if budget and used >= budget:
            return False
        self._spent[kind] = used + 1
        return True

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> str:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            compression=None,
            max_size=2**20,
            process_request=self._process_request,
            ping_interval=self.timing.ping_interval,
            ping_timeout=self.timing.ping_interval,
            logger=_wire_log,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._tasks.append(asyncio.create_task(self._market_loop(), name="sim-market"))
        t = self.timing
        for kind, every in (
            ("l2_batch", t.l2_batch),
            ("heartbeat", t.heartbeat),
            ("trades_batch", t.trades_batch),
            ("candles", t.candles),
            ("ticker_batch", t.ticker_batch),
            ("user", t.user),
            ("status", t.status),
        ):
            self._tasks.append(asyncio.create_task(self._timer(kind, every), name=f"sim-{kind}"))
        log.info("%s simulator listening on %s", self.venue, self.url)
        return self.url

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def pause(self) -> None:
        """Stop the market (periodic frames such as heartbeats go on)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    async def wait_connections(self, n: int) -> None:
        """Wait until ``n`` connections have been accepted since start."""
        async with self._connected:
            await self._connected.wait_for(lambda: len(self.all_connections) >= n)

    def close_all(self, code: int, reason: str = "simulated close") -> None:
        for conn in list(self.connections):
            conn.close_with(code, reason)

    # --- internals -------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        conn = self.connection_class(self, ws)
        self.connections.append(conn)
        self.all_connections.append(conn)
        self.stats["connections"] += 1
        async with self._connected:
            self._connected.notify_all()
        writer = asyncio.create_task(conn.writer())
        deadline = asyncio.create_task(self._deadline(conn))
        closer = None
        if self.faults.close_code is not None and self.faults.close_after_seconds is not None:
            closer = asyncio.create_task(self._close_later(conn, self.faults.close_after_seconds))
        try:
            await conn.on_open()
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    msg = None
                if isinstance(msg, dict):
                    conn.received.append(msg)
                    if len(conn.received) > 2000:  # bounded however long a standalone server runs
                        del conn.received[:1000]
                await conn.on_frame(msg)
                if writer.done():
                    break
        except ConnectionClosed:
            pass
        finally:
            self.connections.remove(conn)
            conn.closing = True
            conn.on_close()
            for task in (deadline, closer):
                if task is not None:
                    task.cancel()
            if not writer.done():
                conn.closing = True
                conn.queue.put_nowait(None)
                conn._close_code = (1000, "")
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _deadline(self, conn: SimConnection) -> None:
        try:
            await asyncio.wait_for(conn.subscribed_once.wait(), self.timing.subscribe_deadline)
        except TimeoutError:
            conn.close_with(1008, "no subscribe within the deadline")

    async def _close_later(self, conn: SimConnection, delay: float) -> None:
        await asyncio.sleep(delay)
        faults = self.faults
        if faults.close_code is not None and self._spend("close", faults.close_connections):
            conn.close_with(faults.close_code, faults.close_reason)

    async def _market_loop(self) -> None:
        loop = asyncio.get_running_loop()
        markets = list(self.markets.values())
        i = 0
        credit = 0.0
        last = loop.time()
        while True:
            if not self._running.is_set():
                await self._running.wait()
                last = loop.time()
            if self.rate > 0:
                now = loop.time()
                credit = min(credit + (now - last) * self.rate, 1000.0)
                last = now
                n = int(credit)
                if n == 0:
                    await asyncio.sleep(max(0.0005, (1.0 - credit) / self.rate))
                    continue
                credit -= n
            else:
                n = 100
            wall = self.clock()
            for _ in range(n):
                market = markets[i % len(markets)]
                i += 1
                step = market.step(wall)
                self.prepare_step(step)
                for conn in self.connections:
                    conn.on_step(step)
            await asyncio.sleep(0)
            while any(c.queue.qsize() > _HIGH_WATER for c in self.connections):  # noqa: ASYNC110
                await asyncio.sleep(0.001)  # backpressure: let the writers catch up

    async def _timer(self, kind: str, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            for conn in list(self.connections):
                conn.on_timer(kind)


_QUOTED_DECIMAL = re.compile(r'"(\d+\.\d+)"')
_BARE_DECIMAL = re.compile(r"(?<=:)(\d+\.\d+)(?=[,}\]])")


def _corrupt(frame: str) -> str:
    """``frame`` with its first decimal value (a price, as text or as a JSON number) made unreadable,
    ``"1_0.5"``; sequence numbers and ids (integers) stay as they are."""
    match = _QUOTED_DECIMAL.search(frame) or _BARE_DECIMAL.search(frame)
    if match is None:
        return frame
    return f'{frame[: match.start()]}"1_{match.group(1)}"{frame[match.end() :]}'


def _malformed(frame: str, rng: random.Random) -> str:
    choice = rng.randrange(3)
    if choice == 0:
        return frame[: max(1, len(frame) // 2)]  # truncated JSON
    if choice == 1:
        return "\x00garbage{" + frame[:10]
    return "[1,2,3]"
