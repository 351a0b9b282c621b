"""A venue feed: the connections one venue needs, one store, and an async iterator of events.

    async with Feed(CoinbaseAdvancedTrade(), ["BTC-USD"], ["level2", "market_trades"]) as feed:
        async for event in feed:
            ...
        await feed.subscribe("ticker", ["ETH-USD"])

Channels are split over the venue's endpoints (Coinbase serves private channels on a separate user
endpoint); each endpoint gets its own ``Connection`` with its own retry state.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from tickerterm.core.events import Event
from tickerterm.core.store import Store
from tickerterm.stream.policy import RetryPolicy
from tickerterm.stream.worker import Connection, Sink
from tickerterm.venues.base import VenueAdapter


class Feed:
    def __init__(
        self,
        adapter: VenueAdapter,
        products: Sequence[str],
        channels: Iterable[str] | None = None,
        *,
        store: Store | None = None,
        policy: RetryPolicy | None = None,
        collect: bool = True,
        sink: Sink | None = None,
        queue_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> None:
        """``collect=False`` skips the event queue (a dashboard reads the store instead); ``sink`` is
        called with each frame's events right after they are applied, instead of the queue."""
        self.adapter = adapter
        self.products = [adapter.normalize_product(p) for p in products]
        names = list(channels) if channels is not None else list(adapter.default_channels)
        specs = [adapter.channel(c) for c in names]
        adapter.check_credentials(s.name for s in specs)
        self.store = store or Store(clock=clock)
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self._queue: asyncio.Queue[list[Event] | None] | None = (
            asyncio.Queue(maxsize=queue_size) if collect and sink is None else None
        )
        self._user_sink = sink
        rng = random.Random(seed)
        self.connections: dict[str, Connection] = {}
        for spec in specs:
            conn = self._connection(spec.endpoint, rng)
            conn.subs.add(spec.name, self.products if spec.per_product else [])
        self._tasks: list[asyncio.Task[None]] = []
        self._rng = rng
        self._pending: deque[Event] = deque()
        self._ended = False

    def _connection(self, endpoint: str, rng: random.Random) -> Connection:
        conn = self.connections.get(endpoint)
        if conn is None:
            sink = self._user_sink or (self._sink if self._queue is not None else None)
            conn = Connection(
                self.adapter,
                endpoint,
                self.store,
                sink=sink,
                policy=self.policy,
                clock=self.clock,
                rng=random.Random(rng.random()),
            )
            self.connections[endpoint] = conn
        return conn

    async def _sink(self, events: list[Event]) -> None:
        assert self._queue is not None
        await self._queue.put(events)  # blocks when the reader lags: backpressure, not loss

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        for conn in self.connections.values():
            self._start(conn)

    def _start(self, conn: Connection) -> None:
        task = asyncio.create_task(conn.run(), name=f"stream:{conn.conn_id}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if all(t.done() for t in self._tasks) and self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)  # every connection has ended: end the iteration

    async def stop(self) -> None:
        for conn in self.connections.values():
            await conn.stop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Feed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    async def wait_finished(self) -> None:
        """Return once every connection has ended (given up or stopped)."""
        while self._tasks and not all(t.done() for t in self._tasks):
            await asyncio.wait(list(self._tasks))

    # --- events ----------------------------------------------------------------------------

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> Event:
        """The next event; iteration can stop and resume without losing any."""
        pending = self._pending
        while not pending:
            if self._queue is None:
                raise RuntimeError("this feed was made with collect=False")
            if self._ended:
                raise StopAsyncIteration
            batch = await self._queue.get()
            if batch is None:
                self._ended = True
                raise StopAsyncIteration
            pending.extend(batch)
        return pending.popleft()

    # --- live changes ----------------------------------------------------------------------

    async def subscribe(self, channel: str, products: Sequence[str] | None = None) -> None:
        """Subscribe a channel (for ``products``, default: the feed's products) on the running feed."""
        spec = self.adapter.channel(channel)
        self.adapter.check_credentials([spec.name])
        wanted = [self.adapter.normalize_product(p) for p in products] if products else self.products
        conn = self.connections.get(spec.endpoint)
        if conn is None:
            conn = self._connection(spec.endpoint, self._rng)
            conn.subs.add(spec.name, wanted if spec.per_product else [])
            self._start(conn)
            return
        await conn.subscribe(spec.name, wanted)

    async def unsubscribe(self, channel: str, products: Sequence[str] | None = None) -> None:
        """Unsubscribe ``products`` from a channel (the whole channel when None) on the running feed."""
        spec = self.adapter.channel(channel)
        conn = self.connections.get(spec.endpoint)
        if conn is None:
            return
        wanted = [self.adapter.normalize_product(p) for p in products] if products else None
        await conn.unsubscribe(spec.name, wanted)

    def subscriptions(self) -> dict[str, list[str]]:
        """What the feed keeps subscribed (restored after every reconnect), over all connections."""
        out: dict[str, list[str]] = {}
        for conn in self.connections.values():
            for channel, products in conn.subs.as_dict().items():
                out.setdefault(channel, []).extend(products)
        return out
