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
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from tickerterm.core.alerts import Alerts
from tickerterm.core.bars import BarCloser
from tickerterm.core.errors import ConfigError
from tickerterm.core.events import Alert, Event, Recording
from tickerterm.core.store import Store
from tickerterm.stream.alert_command import AlertCommand
from tickerterm.stream.policy import RetryPolicy
from tickerterm.stream.worker import Connection, Journal, ReplayPlan, Sink
from tickerterm.venues.base import VenueAdapter

STOP_TIMEOUT = 2.0
"""Seconds ``Feed.stop`` gives connections to close cleanly before it cancels them."""
RECORDING_EVERY = 5.0
"""Seconds between two ``recording`` events for its size and counts (a change of state, a loss or an
error is said at once)."""
FLUSH_EVERY = 0.1
"""Seconds between two looks of the recorder at the store (its top-of-book rows are at most five a
second per book: a look every tenth of a second keeps them to their window, not to the look's)."""


log = logging.getLogger(__name__)


class Recorder(Journal, Protocol):
    """A recording (``tickerterm.record``): the journal of every session, and the events as applied."""

    def events(self, events: list[Event], store: Store | None) -> None: ...

    def flush(self, store: Store | None, now: float, venue: str | None = None) -> None:
        """Rows that come from looking at the store rather than at events (the books' tops and
        snapshots), for ``venue``'s books; called every ``FLUSH_EVERY`` s."""

    def status(self, now: float) -> Recording: ...

    async def aclose(self) -> None: ...


class Derived(Protocol):
    """Makes events of its own from applied events (``check``) and from the clock (``tick``)."""

    def check(self, events: list[Event], store: Store, now: float) -> Sequence[Event]: ...

    def tick(self, store: Store, now: float) -> Sequence[Event]: ...


class Queued(Protocol):
    """What ``next_event`` reads: a queue of event batches (None: ended), those taken but not yet handed
    out, and whether the end was seen."""

    _queue: asyncio.Queue[list[Event] | None] | None
    _pending: deque[Event]
    _ended: bool


async def next_event(source: Queued) -> Event:
    """The next event of a feed (or of several); iteration can stop and resume without losing any."""
    pending = source._pending
    while not pending:
        if source._queue is None:
            raise RuntimeError("this feed was made with collect=False")
        if source._ended:
            raise StopAsyncIteration
        batch = await source._queue.get()
        if batch is None:
            source._ended = True
            raise StopAsyncIteration
        pending.extend(batch)
    return pending.popleft()


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
        replay: ReplayPlan | None = None,
        recorder: Recorder | None = None,
        alerts: Alerts | None = None,
        alert_command: str | None = None,
        alert_timeout: float = 10.0,
        bars: int | None = None,
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
        self.recorder = recorder
        """Keeps every session's journal and the applied events (``--record``), when set."""
        self._look_failed = False
        """The recorder's look at the books failed once (logged; not again)."""
        self._recording_task: asyncio.Task[None] | None = None
        self.alerts = alerts
        """Alert rules checked after each frame and twice a second (``tickerterm.core.alerts``)."""
        self.bars = BarCloser(bars, adapter.name) if bars else None
        """``--bars``: bars built from trades said as ``candle`` events when they close."""
        self._derived: list[Derived] = [d for d in (alerts, self.bars) if d is not None]
        """What makes events of its own from the applied events and the clock (alerts, bars)."""
        self._alert_task: asyncio.Task[None] | None = None
        self.alert_command = (
            AlertCommand(alert_command, self._hand_on, clock, timeout=alert_timeout)
            if alert_command and alerts is not None
            else None
        )
        """``--alert-exec``: a command run for each alert that fires (bounded; failures are alerts too)."""
        rng = random.Random(seed)
        self._rng = rng
        self.replay = replay
        """History replayed instead of live data (a venue with replay; one product)."""
        self.connections: dict[str, Connection] = {}
        """By endpoint; a venue that limits streams per connection gets ``market#2``, ``market#3``..."""
        for spec in specs:
            for conn, products in self._place(
                spec.endpoint, spec.name, self.products if spec.per_product else []
            ):
                conn.subs.add(spec.name, products)
        self._tasks: list[asyncio.Task[None]] = []

        self._pending: deque[Event] = deque()
        self._ended = False

    def _connection(self, endpoint: str, rng: random.Random, shard: int = 1) -> Connection:
        key = endpoint if shard == 1 else f"{endpoint}#{shard}"
        conn = self.connections.get(key)
        if conn is None:
            self._room_for_one_more()
            sink = self._plain_sink()
            if self.recorder is not None:
                sink = self._recording(sink)
            if self._derived:
                sink = self._deriving(sink)
            conn = Connection(
                self.adapter,
                endpoint,
                self.store,
                sink=sink,
                policy=self.policy,
                clock=self.clock,
                rng=random.Random(rng.random()),
                shard=shard,
                replay=self.replay if endpoint == "market" else None,
                products=self.products,
                journal=self.recorder,
            )
            self.connections[key] = conn
        return conn

    def _room_for_one_more(self) -> None:
        """The venue's connection cap counts every connection, the user-data one included."""
        most = self.adapter.max_connections
        if most is None or len(self.connections) < most:
            return
        limit = self.adapter.max_streams_per_connection
        per = f"{limit} streams on each of " if limit else ""
        raise ConfigError(
            f"{self.adapter.name} allows {per}{most} connection{'s' if most > 1 else ''} "
            f"(user data included): too many channels x products"
        )

    def _shards(self, endpoint: str) -> list[Connection]:
        return [c for c in self.connections.values() if c.endpoint == endpoint]

    def _place(self, endpoint: str, channel: str, products: list[str]) -> list[tuple[Connection, list[str]]]:
        """Which connection takes which of ``products`` on ``channel``: the one already carrying them,
        else the first with room under the venue's stream limit (opening another if allowed)."""
        limit = self.adapter.max_streams_per_connection
        shards = self._shards(endpoint)
        if limit is None or not products:
            conn = shards[0] if shards else self._connection(endpoint, self._rng)
            return [(conn, products)]
        placed: dict[int, list[str]] = {}
        for product in products:
            home = next((c for c in shards if c.subs.has(channel, product)), None)
            if home is None:
                home = next(
                    (c for c in shards if c.stream_count() + len(placed.get(c.shard, ())) < limit), None
                )
            if home is None:
                home = self._connection(endpoint, self._rng, len(shards) + 1)
                shards.append(home)
            placed.setdefault(home.shard, []).append(product)
        by_shard = {c.shard: c for c in shards}
        return [(by_shard[n], ps) for n, ps in placed.items()]

    def _recording(self, sink: Sink | None) -> Sink:
        """``sink``, with the recorder handed every frame's events first (as applied)."""
        recorder, store = self.recorder, self.store
        assert recorder is not None

        add = recorder.events

        def recorded(events: list[Event]) -> Awaitable[None] | None:
            add(events, store)
            return sink(events) if sink is not None else None

        return recorded

    def add_alert(self, text: str) -> None:
        """A rule from now on (the dashboard's ``a``); ConfigError when it is not one, or when this feed
        was made without alerts."""
        if self.alerts is None:
            raise ConfigError("this feed checks no alerts")
        self.alerts.add(text, self.adapter.normalize_product)

    def alert_rules(self) -> list[tuple[str, bool]]:
        """Every rule as written, and whether it is waiting to fire (armed)."""
        return [(r.text, r.armed) for r in self.alerts.rules] if self.alerts is not None else []

    def _deriving(self, sink: Sink | None) -> Sink:
        """``sink``, handed each frame's events followed by those they made (alerts, closed bars),
        applied first."""
        derived, store, clock = self._derived, self.store, self.clock

        def deriving(events: list[Event]) -> Awaitable[None] | None:
            made: list[Event] = []
            now = clock()
            for d in derived:
                made += d.check(events, store, now)
            if made:
                store.apply_all(made)
                events = [*events, *made]
                self._run_alert_command(made)
            return sink(events) if sink is not None else None

        return deriving

    def _run_alert_command(self, events: list[Event]) -> None:
        if self.alert_command is not None:
            alerts = [ev for ev in events if type(ev) is Alert]
            if alerts:
                self.alert_command.submit(alerts)

    async def _derived_clock(self) -> None:
        """What time passing makes (an UNSAFE book's alert, a quiet market's bar), twice a second."""
        while True:
            await asyncio.sleep(0.5)
            made: list[Event] = []
            for d in self._derived:
                try:
                    made += d.tick(self.store, self.clock())
                except Exception:  # a rule's bug must not end the clock (nor the feed): logged
                    log.exception("%s failed", type(d).__name__)
            if made:
                await self._hand_on(made)
                self._run_alert_command(made)

    async def _report_recording(self) -> None:
        """The recorder's rows from the store (``flush``), every ``FLUSH_EVERY`` s; a ``recording`` event
        when the recording's state or counts changed (its size at most every few seconds), applied to
        the store (the header shows it) and handed on like any event."""
        recorder = self.recorder
        assert recorder is not None
        said: tuple[Any, ...] | None = None
        said_at = 0.0
        while True:
            now = self.clock()
            self._look(recorder, now)
            status = recorder.status(now)
            status.venue = self.adapter.name
            trouble = (status.state, status.lost, status.error, status.retries)  # said at once
            counts = (status.bytes, status.rows, status.behind)  # said every RECORDING_EVERY s
            if said is None or trouble != said[0] or (counts != said[1] and now - said_at >= RECORDING_EVERY):
                said, said_at = (trouble, counts), now
                await self._hand_on([status])
            await asyncio.sleep(FLUSH_EVERY)

    def _look(self, recorder: Recorder, now: float) -> None:
        """The recorder's rows from this feed's books (``Recorder.flush``); a failure (a bug) is logged
        once and never ends the recording or the feed."""
        try:
            recorder.flush(self.store, now, self.adapter.name)
        except Exception:
            if not self._look_failed:
                log.exception("recording the books' rows failed")
            self._look_failed = True

    async def start_recording(self, recorder: Recorder) -> None:
        """Record from now on (a started recorder): every connection reconnects at once, so the recording
        starts with new connections and whole books (``Connection.start_journal``)."""
        if self.recorder is not None:
            raise ConfigError("already recording")
        self.recorder = recorder
        for conn in self.connections.values():
            conn.sink = self._recording(conn.sink)
            await conn.start_journal(recorder)
        self._recording_task = asyncio.create_task(self._report_recording(), name="recording")

    async def stop_recording(self) -> Recording | None:
        """Stop recording (what is queued is written): the final status, or None when not recording."""
        recorder = self.recorder
        if recorder is None:
            return None
        for conn in self.connections.values():
            conn.stop_journal()
            conn.sink = self._plain_sink()
        self.recorder = None
        if self._recording_task is not None:
            self._recording_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recording_task
            self._recording_task = None
        self._look(recorder, math.inf)  # the books' last changes: all due
        await recorder.aclose()
        status = recorder.status(self.clock())
        status.venue = self.adapter.name
        await self._hand_on([status])
        return status

    def _plain_sink(self) -> Sink | None:
        return self._user_sink or (self._sink if self._queue is not None else None)

    async def _hand_on(self, events: list[Event]) -> None:
        for ev in events:
            self.store.apply(ev)
        sink = self._plain_sink()
        if sink is not None:
            result = sink(events)
            if result is not None:
                await result

    async def _sink(self, events: list[Event]) -> None:
        assert self._queue is not None
        await self._queue.put(events)  # blocks when the reader lags: backpressure, not loss

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        for conn in self.connections.values():
            self._start(conn)
        if self.recorder is not None:
            self._recording_task = asyncio.create_task(self._report_recording(), name="recording")
        if self._derived:
            self._alert_task = asyncio.create_task(self._derived_clock(), name="derived")

    def _start(self, conn: Connection) -> None:
        conn.started = True
        task = asyncio.create_task(conn.run(), name=f"stream:{conn.conn_id}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if all(t.done() for t in self._tasks) and self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)  # every connection has ended: end the iteration

    async def stop(self) -> None:
        """Close every connection (at once, not one after another) and end their tasks: what has not
        ended after ``STOP_TIMEOUT`` seconds is cancelled."""
        stops = [asyncio.ensure_future(conn.stop()) for conn in self.connections.values()]
        if stops:
            await asyncio.wait(stops, timeout=STOP_TIMEOUT)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
        for task in stops:
            task.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._recording_task is not None:
            self._recording_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recording_task
            self._recording_task = None
        if self._alert_task is not None:
            self._alert_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._alert_task
            self._alert_task = None
        if self.alert_command is not None:
            with contextlib.suppress(Exception):  # a reader that stopped reading: the log says it
                await self.alert_command.aclose()
        recorder = self.recorder
        if recorder is not None:
            self._look(recorder, math.inf)  # the books' last changes: all due
            await recorder.aclose()  # what is queued is written before it returns
            status = recorder.status(self.clock())
            status.venue = self.adapter.name
            with contextlib.suppress(Exception):  # a reader that stopped reading: the file says it all
                await asyncio.wait_for(self._hand_on([status]), 1.0)

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
        return await next_event(self)

    # --- live changes ----------------------------------------------------------------------

    async def subscribe(self, channel: str, products: Sequence[str] | None = None) -> None:
        """Subscribe a channel (for ``products``, default: the feed's products) on the running feed."""
        spec = self.adapter.channel(channel)
        self.adapter.check_credentials([spec.name])
        wanted = [self.adapter.normalize_product(p) for p in products] if products else self.products
        started = {id(c) for c in self._shards(spec.endpoint) if c.started}
        for conn, chunk in self._place(spec.endpoint, spec.name, wanted if spec.per_product else []):
            if id(conn) in started:
                await conn.subscribe(spec.name, chunk)
            else:  # a new connection (a new endpoint, or a new shard): it subscribes when it connects
                conn.subs.add(spec.name, chunk)
                if self._tasks:  # the feed runs: start it now (else start() will)
                    self._start(conn)

    async def unsubscribe(self, channel: str, products: Sequence[str] | None = None) -> None:
        """Unsubscribe ``products`` from a channel (the whole channel when None) on the running feed."""
        spec = self.adapter.channel(channel)
        wanted = [self.adapter.normalize_product(p) for p in products] if products else None
        for conn in self._shards(spec.endpoint):
            if spec.name in conn.subs:
                await conn.unsubscribe(spec.name, wanted)

    async def control(self, action: str, **args: Any) -> None:
        """Drive a replay: ``pause``, ``resume``, ``stop``, ``seek`` (``timestamp=``), ``speed``."""
        conn = self.connections.get("market")
        if conn is None or conn.replay is None:
            raise ConfigError("this feed is not replaying")
        await conn.control(action, **args)

    def subscriptions(self) -> dict[str, list[str]]:
        """What the feed keeps subscribed (restored after every reconnect), over all connections."""
        out: dict[str, list[str]] = {}
        for conn in self.connections.values():
            for channel, products in conn.subs.as_dict().items():
                out.setdefault(channel, []).extend(products)
        return out
