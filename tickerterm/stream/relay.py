"""One feed, many screens: the relay publishes a feed's events to NATS JetStream, viewers read them back.

``Relay`` takes the events of a running feed (its ``sink``) and publishes each on its subject with the
subject's next number (``tickerterm.core.relay`` says what goes where); a task sends them in order, and
while the broker is away they wait in a bounded buffer (past it the oldest are dropped and counted: the
viewers see the gap). Every ``snapshot_every`` seconds each trusted book is published whole, with a
pointer a late joiner starts from, and each connection's health is restated.

``RelayFeed`` is a feed like ``Feed`` (the dashboard, headless mode and the library take either) that
reads a relay through the broker instead of connecting to the venue: one ordered JetStream consumer per
product and kind it shows, started where the kind needs (a book at its last snapshot, the tape a few
minutes back, the ticker at its last message). Its own connection to the broker is a connection in the
health panel like any venue's (conn ``relay``); the relay's venue connections are shown as the relay
reports them.

The broker is NATS with JetStream (nats-py), chosen over Redis Streams because JetStream keeps a bounded
history by age and size per stream, delivers in order to consumers that start at a sequence or a time, and
reconnects and resumes consumers itself: what a late joiner and a restart need. See README "Many screens".
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoServersError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from tickerterm.core.alerts import Alerts, parse_rule
from tickerterm.core.boundary import secrets_of
from tickerterm.core.errors import ConfigError
from tickerterm.core.events import (
    BalanceUpdate,
    BookDropped,
    BookSnapshot,
    Closed,
    Connected,
    Connecting,
    Event,
    GaveUp,
    Heartbeat,
    OrderUpdate,
    RetryScheduled,
    Subscribed,
)
from tickerterm.core.relay import (
    ROOT,
    STREAM,
    RelayInput,
    broker_url,
    encode,
    shown_url,
    subject,
    subject_of,
    token,
)
from tickerterm.core.safe import Redactor
from tickerterm.core.store import Store
from tickerterm.stream.feed import next_event
from tickerterm.stream.playback import Replaying
from tickerterm.stream.policy import RetryPolicy
from tickerterm.venues.base import VenueAdapter

log = logging.getLogger(__name__)

CONN = "relay"
"""The viewer's connection to the broker, as the health panel names it."""
PRIVATE = (OrderUpdate, BalanceUpdate)
"""Account data is never published: everyone who can read the broker would read it."""
STATE_EVENTS = (Connecting, Connected, Subscribed, Closed, RetryScheduled, GaveUp)
"""Health events that set a connection's state: the last of each connection is restated for late joiners."""
KINDS = {"book": ("book",), "trades": ("trade",), "ticker": ("ticker",), "candles": ("candle",)}
"""The subjects (kinds) a channel of each kind reads; other channels (status...) read their event type."""
Sink = Callable[[list[Event]], Awaitable[None] | None]


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, NoServersError):
        return "no broker answered (is nats-server running with JetStream, -js?)"
    return text[:200]


async def _connect(url: str, name: str, open_timeout: float, **callbacks: Any) -> NATS:
    """A broker connection that, once made, reconnects for ever; the first attempt fails within seconds
    (nats-py retries a first connection for ever unless its attempts are bounded, and the reason must be
    shown from the first retry: our callers retry with their own backoff and say why)."""
    nc = await nats.connect(
        url,
        name=name,
        allow_reconnect=True,
        max_reconnect_attempts=1,
        reconnect_time_wait=1,
        connect_timeout=max(1, int(open_timeout)),
        **{"error_cb": _quiet, **callbacks},
    )
    nc.options["max_reconnect_attempts"] = -1  # from now on: the broker restarting is waited for
    return nc


async def _quiet(exc: Exception) -> None:
    """nats-py logs every error with a traceback unless given a callback: ours say it in one line."""
    log.debug("broker: %s", _describe(exc))


@dataclass(slots=True)
class _Out:
    subject: str
    headers: dict[str, str]
    body: bytes
    pointer: str | None = None
    """For a book snapshot: the subject its pointer goes to once the broker has said its sequence."""


class _RawTap:
    """A connection's journal that publishes its frames (``Relay.tap``)."""

    def __init__(self, relay: Relay, redact: Redactor) -> None:
        self.relay, self.redact = relay, redact

    def record(
        self,
        conn: str,
        venue: str,
        now: float,
        kind: str,
        arg: str | None = None,
        body: bytes | str | None = None,
    ) -> None:
        if kind != "frame" or body is None:
            return
        if self.redact:  # a venue that echoes a key: the broker never gets it
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            body = self.redact(text)
        self.relay.put_raw(venue, conn, now, body)

    def frames(self, conn: str, venue: str, now: float, raws: list[bytes]) -> None:
        for raw in raws:
            self.record(conn, venue, now, "frame", None, raw)


class Relay:
    """Publishes what its feed's ``sink`` is given (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        root: str = ROOT,
        stream: str = STREAM,
        history: float = 3600.0,
        max_bytes: int = 2**30,
        snapshot_every: float = 5.0,
        buffer: int = 200_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = broker_url(url)
        self.root, self.stream = root, stream
        self.history, self.max_bytes = history, max_bytes
        self.snapshot_every = snapshot_every
        self.buffer = buffer
        self.clock = clock
        self.epoch = f"{int(clock() * 1000):x}.{os.getpid():x}.{random.getrandbits(32):08x}"
        self.queue: deque[_Out] = deque()
        self.published = 0
        self.dropped = 0
        """Messages dropped from the full buffer while the broker was away (the viewers see the gaps)."""
        self.too_large = 0
        """Messages larger than the broker takes (its max_payload): not published, and counted; the screens
        see the gap in that subject's numbers."""
        self.connected = False
        self.last_failure = ""
        """Why the broker could not be reached, while it cannot."""
        self._stopping = False
        self._seq: dict[str, int] = {}
        self._health: dict[str, Event] = {}
        self._snapped: dict[tuple[str, str], tuple[int, float]] = {}
        """Each book's version and time at its last snapshot."""
        self.restate_every = min(60.0, history / 2)
        """An unchanged book is published whole again this often (its last snapshot must stay in the
        history for screens that start later)."""
        self._wake = asyncio.Event()
        self._online = asyncio.Event()
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.store: Store | None = None

    # --- what the feed hands over ------------------------------------------------------------

    def sink(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, PRIVATE) or type(ev) is Heartbeat:
                continue
            if isinstance(ev, STATE_EVENTS):
                self._health[ev.conn] = ev
            self._put(ev, pointer=type(ev) is BookSnapshot)  # a late joiner can start from it at once

    def _put(self, ev: Event, *, restate: bool = False, pointer: bool = False) -> None:
        name = subject_of(ev, self.root)
        seq = self._seq[name] = self._seq.get(name, 0) + 1
        body, compressed = encode(ev)
        headers = {"Tt-Type": ev.type, "Tt-Seq": str(seq), "Tt-Epoch": self.epoch}
        if compressed:
            headers["Tt-Encoding"] = "zlib"
        if restate:
            headers["Tt-Restate"] = "1"
        at = name.rsplit(".", 1)[0] + ".book_at" if pointer else None
        self._enqueue(_Out(name, headers, body, at))

    def _enqueue(self, out: _Out) -> None:
        """Into the buffer for the broker; a full buffer (the broker away) drops its oldest, counted."""
        if len(self.queue) >= self.buffer:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(out)
        self._wake.set()

    def tap(self, feed: Any) -> None:
        """Publish the raw frames of ``feed``'s connections too (``--raw``: ``<root>.<venue>.raw``),
        each venue's secrets removed first; frames that came before this call are not."""
        feeds = getattr(feed, "feeds", None) or {feed.adapter.name: feed}
        for one in feeds.values():
            redact = Redactor(secrets_of(one.adapter.credentials))
            for conn in one.connections.values():
                conn.journal = _RawTap(self, redact)

    def put_raw(self, venue: str, conn: str, now: float, body: bytes | str) -> None:
        name = f"{self.root}.{token(venue)}.raw"  # three tokens: no screen's consumer takes it
        seq = self._seq[name] = self._seq.get(name, 0) + 1
        data = body.encode() if isinstance(body, str) else body
        headers = {
            "Tt-Type": "raw",
            "Tt-Seq": str(seq),
            "Tt-Epoch": self.epoch,
            "Tt-Conn": conn,
            "Tt-Time": f"{now:.6f}",
        }
        self._enqueue(_Out(name, headers, data))

    def snapshot(self, store: Store, now: float) -> None:
        """Each trusted book whole (a late joiner starts from it) and each connection's last state."""
        for key, book in list(store.books.items()):
            if book.state != "ok" or not len(book):
                continue
            said = self._snapped.get(key)
            if said is not None and said[0] == book.version and now - said[1] < self.restate_every:
                continue  # unchanged since its last snapshot (a quiet market): no need to say it again yet
            self._snapped[key] = (book.version, now)
            venue, product = key
            bids, asks = list(book.bids.values()), list(book.asks.values())
            self._put(BookSnapshot(venue, now, product, book.exch_ts, bids, asks), pointer=True)
        for ev in list(self._health.values()):
            self._put(ev, restate=True)

    # --- the broker ------------------------------------------------------------------------

    async def start(self, store: Store, policy: RetryPolicy | None = None) -> None:
        """Start publishing ``store``'s feed: the broker is connected in the background, retried with
        backoff until it answers (what the feed sends meanwhile waits in the buffer)."""
        self.store = store
        self._tasks = [
            asyncio.create_task(self._connect(policy or RetryPolicy(budget=None)), name="relay:connect"),
            asyncio.create_task(self._snapshots(), name="relay:snapshots"),
        ]

    async def _connect(self, policy: RetryPolicy) -> None:
        attempt, rng = 0, random.Random()
        while True:
            try:
                self._nc = await _connect(
                    self.url,
                    "tickerterm relay",
                    policy.open_timeout,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                )
                self._js = self._nc.jetstream()
                await self._ensure_stream()
                break
            except Exception as exc:
                if self._nc is not None:
                    with contextlib.suppress(Exception):
                        await self._nc.close()
                    self._nc = None
                attempt += 1
                delay = policy.delay(attempt, rng)
                self.last_failure = f"{shown_url(self.url)}: {_describe(exc)}"
                log.warning(
                    "relay: cannot reach the broker at %s; retry %d in %.1fs",
                    self.last_failure,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)
        log.info("relay: publishing to %s (stream %s)", shown_url(self.url), self.stream)
        self.connected = True
        self._online.set()
        self._wake.set()
        await self._send()

    async def _ensure_stream(self) -> None:
        assert self._js is not None
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.root}.>"],
            max_age=self.history,
            max_bytes=self.max_bytes,
            storage=StorageType.FILE,
        )
        try:
            await self._js.add_stream(config)
        except BadRequestError:  # it exists with other limits: ours now
            await self._js.update_stream(config)

    async def _disconnected(self) -> None:
        self.connected = False
        self._online.clear()
        if self._stopping:
            return
        log.warning("relay: broker connection lost; buffering (at most %d messages)", self.buffer)

    async def _reconnected(self) -> None:
        log.info("relay: broker connection back")
        with contextlib.suppress(Exception):
            await self._ensure_stream()  # a broker that restarted without its store
        self.connected = True
        self._online.set()
        self._wake.set()

    async def _error(self, exc: Exception) -> None:
        log.info("relay: broker: %s", _describe(exc))

    async def _send(self) -> None:
        assert self._nc is not None and self._js is not None
        nc, js, queue = self._nc, self._js, self.queue
        while True:
            await self._wake.wait()
            self._wake.clear()
            while queue:
                if not self.connected:
                    await self._online.wait()
                out = queue[0]
                if len(out.body) > nc.max_payload:  # the broker would refuse it for ever: counted, and
                    self.too_large += 1  # the screens see the gap in its subject (a book waits for the next)
                    queue.popleft()
                    continue
                try:
                    if out.pointer is None:
                        await nc.publish(out.subject, out.body, headers=out.headers)
                    else:
                        ack = await js.publish(out.subject, out.body, headers=out.headers, timeout=5)
                        where = {"seq": ack.seq, "book_seq": int(out.headers["Tt-Seq"]), "epoch": self.epoch}
                        await js.publish(out.pointer, json.dumps(where).encode(), timeout=5)
                except (TimeoutError, NatsError) as exc:
                    log.info("relay: publish held back: %s", _describe(exc))
                    await asyncio.sleep(0.2)
                    continue
                except Exception:  # publishing must not end silently: said, the message counted as lost
                    log.exception("relay: a message could not be published: dropped")
                    self.dropped += 1
                    if queue and queue[0] is out:
                        queue.popleft()
                    continue
                if queue and queue[0] is out:
                    queue.popleft()
                    self.published += 1

    async def _snapshots(self) -> None:
        while True:
            await asyncio.sleep(self.snapshot_every)
            if self.store is not None:
                try:
                    self.snapshot(self.store, self.clock())
                except Exception:  # the next interval tries again; the log says why
                    log.exception("relay: the books' snapshot failed")

    async def stop(self) -> None:
        """Send what waits (for a moment, if the broker is there), then close."""
        self._stopping = True
        deadline = time.monotonic() + 2.0
        while self.queue and self.connected and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.drain(), 2.0)
            with contextlib.suppress(Exception):
                await self._nc.close()


class RelayFeed:
    """A feed read from a relay (see the module docstring); used like ``Feed``."""

    def __init__(
        self,
        url: str,
        adapter: VenueAdapter,
        products: Sequence[str],
        channels: Iterable[str] | None = None,
        *,
        store: Store | None = None,
        collect: bool = True,
        sink: Sink | None = None,
        root: str = ROOT,
        stream: str = STREAM,
        backfill: float = 300.0,
        restated_within: float = 15.0,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        queue_size: int = 10_000,
        alerts: Sequence[str] = (),
        conn: str = CONN,
    ) -> None:
        self.url = broker_url(url)
        self.adapter = adapter
        self.alerts = Alerts([parse_rule(text) for text in alerts], adapter.name)
        """Alert rules checked on this screen's events and twice a second, as a venue feed does."""
        self.products = [adapter.normalize_product(p) for p in products]
        names = list(channels) if channels is not None else list(adapter.default_channels)
        self.channels: dict[str, list[str]] = {}
        for name in names:
            spec = adapter.channel(name)
            if spec.private:
                raise ConfigError(
                    f"{spec.name}: a relay carries market data only (account data is never published)"
                )
            self.channels[spec.name] = list(self.products) if spec.per_product else []
        self.store = store or Store(clock=clock)
        self.root, self.stream = root, stream
        self.backfill, self.restated_within = backfill, restated_within
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.conn = conn
        """This screen's broker connection in the health panel (``relay``; ``<venue>/relay`` with several)."""
        self.input = RelayInput(adapter.name, conn, list(self.products))
        self._queue: asyncio.Queue[list[Event] | None] | None = (
            asyncio.Queue(maxsize=queue_size) if collect and sink is None else None
        )
        self._user_sink = sink
        self._pending: deque[Event] = deque()
        self._ended = False
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._subs: dict[str, Any] = {}
        """JetStream subscriptions by subject."""
        self._task: asyncio.Task[None] | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = asyncio.Event()
        self._retries = 0
        self._rng = random.Random()

    # --- events in -------------------------------------------------------------------------

    async def _hand_on(self, events: list[Event], *, applied: bool = False) -> None:
        if not events:
            return
        if not applied:
            self.store.apply_all(events)
            made: list[Event] = list(self.alerts.check(events, self.store, self.clock()))
            if made:
                self.store.apply_all(made)
                events = [*events, *made]
        self.store.frame_applied()
        sink = self._user_sink
        if sink is None and self._queue is not None:
            await self._queue.put(events)
            return
        if sink is not None:
            result = sink(events)
            if result is not None:
                await result

    async def _on_message(self, msg: Msg) -> None:
        now = self.clock()
        try:
            events = self.input.received(msg.subject, msg.headers, msg.data, now)
        except Exception as exc:  # no message can end the stream: counted, and its book rebuilt
            events = self.input._malformed(msg.subject, f"{type(exc).__name__}: {exc}", now)
        self.store.note_frame(self.conn, self.adapter.name, now, None, None)
        await self._hand_on(events)

    # --- the broker ------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"relay-viewer:{self.adapter.name}")
        self._clock_task = asyncio.create_task(self._alert_clock(), name="relay-viewer:alerts")

    async def _alert_clock(self) -> None:
        """What time passing makes (an UNSAFE book's alert, a quiet market), twice a second."""
        while True:
            await asyncio.sleep(0.5)
            try:
                made: list[Event] = list(self.alerts.tick(self.store, self.clock()))
            except Exception:  # a rule's bug must not end the clock
                log.exception("alerts failed")
                continue
            if made:
                self.store.apply_all(made)
                await self._hand_on(made, applied=True)

    async def _run(self) -> None:
        venue, shown = self.adapter.name, shown_url(self.url)
        attempt = 0
        while not self._stopping:
            await self._hand_on([Connecting(venue, self.clock(), self.conn, shown, attempt + 1)])
            try:
                self._nc = await _connect(
                    self.url,
                    "tickerterm viewer",
                    self.policy.open_timeout,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    error_cb=self._error,
                )
                self._js = self._nc.jetstream()
                await self._js.stream_info(self.stream)
                await self._hand_on([Connected(venue, self.clock(), self.conn, shown)])
                for channel, products in list(self.channels.items()):
                    await self._read(channel, products)
            except Exception as exc:  # no failure ends this screen's stream silently: said, and retried
                for name in list(self._subs):
                    await self._unread(name)
                if self._nc is not None:
                    with contextlib.suppress(Exception):
                        await self._nc.close()
                    self._nc = None
                attempt += 1
                reason = _describe(exc)
                if isinstance(exc, NotFoundError):
                    reason = f"no relay has published to {shown} yet (stream {self.stream})"
                if self.policy.budget is not None and attempt > self.policy.budget:
                    await self._hand_on([GaveUp(venue, self.clock(), self.conn, reason)])
                    return
                delay = self.policy.delay(attempt, self._rng)
                await self._hand_on(
                    [RetryScheduled(venue, self.clock(), self.conn, attempt, round(delay, 3), reason)]
                )
                await asyncio.sleep(delay)
                continue
            await self._hand_on([Subscribed(venue, self.clock(), self.conn, self.subscriptions())])
            await self._forever()
            return

    async def _forever(self) -> None:
        await self._stopped.wait()

    async def _disconnected(self) -> None:
        if self._stopping:
            return
        await self._hand_on(
            [Closed(self.adapter.name, self.clock(), self.conn, None, "broker connection lost")]
        )

    async def _reconnected(self) -> None:
        self._retries = 0
        await self._hand_on([Connected(self.adapter.name, self.clock(), self.conn, shown_url(self.url))])
        await self._hand_on([Subscribed(self.adapter.name, self.clock(), self.conn, self.subscriptions())])

    async def _error(self, exc: Exception) -> None:
        if self._stopping or self._nc is None or not self._nc.is_reconnecting:
            log.info("relay viewer: broker: %s", _describe(exc))
            return
        self._retries += 1
        await self._hand_on(
            [RetryScheduled(self.adapter.name, self.clock(), self.conn, self._retries, 1.0, _describe(exc))]
        )

    def _kinds(self, channel: str) -> tuple[str, ...]:
        spec = self.adapter.channel(channel)
        return KINDS.get(spec.kind, (spec.kind,))

    async def _read(self, channel: str, products: list[str]) -> None:
        """Start the consumers of ``channel`` for ``products`` (and the venue's connection events)."""
        assert self._js is not None
        venue = self.adapter.name
        connection = subject(venue, None, "*", self.root)
        if connection not in self._subs:
            since = self.clock() - self.restated_within
            await self._consume(connection, DeliverPolicy.BY_START_TIME, start_time=since)
        for product in products or [None]:  # type: ignore[list-item]
            for kind in self._kinds(channel):
                name = subject(venue, product, kind, self.root)
                if name in self._subs:
                    continue
                if kind == "book":
                    await self._read_book(name, product)
                elif kind in ("trade", "candle"):
                    await self._consume(
                        name, DeliverPolicy.BY_START_TIME, start_time=self.clock() - self.backfill
                    )
                else:
                    await self._consume(name, DeliverPolicy.LAST)

    async def _read_book(self, name: str, product: str) -> None:
        assert self._js is not None
        try:
            pointer = await self._js.get_last_msg(self.stream, name + "_at")
            where = json.loads(pointer.data or b"{}")
            start = int(where["seq"])
        except NotFoundError:
            await self._hand_on(
                self.input.start_book(product, "waiting for the relay's first snapshot", self.clock())
            )
            await self._consume(name, DeliverPolicy.NEW)
            return
        except (ValueError, KeyError, TypeError):
            start = 0
        if start <= 0:
            await self._hand_on(self.input.start_book(product, "no usable snapshot pointer", self.clock()))
            await self._consume(name, DeliverPolicy.NEW)
            return
        await self._consume(name, DeliverPolicy.BY_START_SEQUENCE, start_seq=start)

    async def _consume(
        self,
        name: str,
        policy: DeliverPolicy,
        *,
        start_seq: int | None = None,
        start_time: float | None = None,
    ) -> None:
        assert self._js is not None
        config = ConsumerConfig(deliver_policy=policy)
        if start_seq is not None:
            config.opt_start_seq = start_seq
        if start_time is not None:
            config.opt_start_time = datetime.datetime.fromtimestamp(start_time, datetime.UTC)
        self._subs[name] = await self._js.subscribe(
            name, stream=self.stream, cb=self._on_message, ordered_consumer=True, config=config
        )

    async def _unread(self, name: str) -> None:
        sub = self._subs.pop(name, None)
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self.input.forget(name)

    async def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for name in list(self._subs):
            await self._unread(name)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), 2.0)
        if self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)

    async def __aenter__(self) -> RelayFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def wait_finished(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def __aiter__(self) -> RelayFeed:
        return self

    async def __anext__(self) -> Event:
        return await next_event(self)

    # --- live changes ----------------------------------------------------------------------

    async def subscribe(self, channel: str, products: Sequence[str] | None = None) -> None:
        spec = self.adapter.channel(channel)
        if spec.private:
            raise ConfigError(f"{spec.name}: a relay carries market data only")
        wanted = [self.adapter.normalize_product(p) for p in products] if products else self.products
        have = self.channels.setdefault(spec.name, [])
        new = [p for p in wanted if p not in have] if spec.per_product else []
        have.extend(new)
        if self._js is not None and self._nc is not None and self._nc.is_connected:
            await self._read(spec.name, new if spec.per_product else [])

    async def unsubscribe(self, channel: str, products: Sequence[str] | None = None) -> None:
        spec = self.adapter.channel(channel)
        have = self.channels.get(spec.name)
        if have is None:
            return
        gone = [self.adapter.normalize_product(p) for p in products] if products else list(have)
        for product in gone or [None]:  # type: ignore[list-item]
            for kind in self._kinds(spec.name):
                await self._unread(subject(self.adapter.name, product, kind, self.root))
                if kind == "book" and product is not None:
                    self.input.waiting.pop(product, None)
                    await self._hand_on([BookDropped(self.adapter.name, self.clock(), self.conn, product)])
        left = [p for p in have if p not in gone]
        if left and products:
            self.channels[spec.name] = left
        else:
            del self.channels[spec.name]

    def subscriptions(self) -> dict[str, list[str]]:
        return {channel: list(products) for channel, products in self.channels.items()}

    async def control(self, action: str, **args: Any) -> None:
        raise ConfigError("this feed is read from a relay: replay its history with tickerterm replay")

    def add_alert(self, text: str) -> None:
        """A rule from now on (the dashboard's ``a``); ConfigError when it is not one."""
        self.alerts.add(text, self.adapter.normalize_product)

    def alert_rules(self) -> list[tuple[str, bool]]:
        return [(r.text, r.armed) for r in self.alerts.rules]


class RelayReplay(Replaying):
    """A relay's history in JetStream played back as a feed (``tickerterm replay nats://…``), with the
    controls of a file replay: pause, resume, speed, seek, stop.

    Messages are read in the stream's order from a little before the start (``lookback``: the books need
    a snapshot to start from; what comes before the start is applied silently), through the same checks
    as a live viewer, and paced by the relay's receive times."""

    def __init__(
        self,
        url: str,
        adapter: VenueAdapter,
        products: Sequence[str],
        *,
        root: str = ROOT,
        stream: str = STREAM,
        store: Store | None = None,
        sink: Sink | None = None,
        collect: bool = True,
        speed: float = 1.0,
        start: float | None = None,
        end: float | None = None,
        lookback: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        before_gap: bool = False,
    ) -> None:
        self.url = broker_url(url)
        self.adapter = adapter
        self.venue = adapter.name
        self.before_gap = before_gap
        """Start a minute before the last gap, close or stale feed in the history (``--before-gap``)."""
        self.products = [adapter.normalize_product(p) for p in products]
        self.root, self.stream = root, stream
        self._replaying(store, sink, collect, speed, clock)
        self.lookback = lookback
        self.first = self.last = 0.0
        self._asked = (start, end)
        self.start = self.end = 0.0
        self._nc: NATS | None = None

    async def open(self) -> None:
        """Connect and find the history's span: ConfigError in one line when there is none to play."""
        try:
            self._nc = await _connect(self.url, "tickerterm replay", 3)
            js = self._nc.jetstream()
            info = await js.stream_info(self.stream)
            if not info.state.messages:
                raise ConfigError(f"stream {self.stream} at {shown_url(self.url)} holds no history")
            first = await js.get_msg(self.stream, seq=info.state.first_seq)
            last = await js.get_msg(self.stream, seq=info.state.last_seq)
        except ConfigError:
            await self._close()
            raise
        except NotFoundError:
            await self._close()
            raise ConfigError(
                f"no relay has published to {shown_url(self.url)} (stream {self.stream})"
            ) from None
        except Exception as exc:
            await self._close()
            raise ConfigError(f"cannot read history at {shown_url(self.url)}: {_describe(exc)}") from None
        assert first.time is not None and last.time is not None
        self.first, self.last = first.time.timestamp(), last.time.timestamp()
        start, end = self._asked
        if self.before_gap:
            trouble = await self._last_trouble()
            if trouble is None:
                await self._close()
                raise ConfigError("--before-gap: the relay's history has no gap, close or stale feed")
            start = trouble - 60.0
        self.start = self.first if start is None else max(self.first, start)
        self.end = self.last if end is None else min(self.last, end)
        if not self.start < self.end:
            await self._close()
            raise ConfigError("the window asked for holds none of the relay's history")
        self.position = self.start

    async def _close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None

    async def __aenter__(self) -> RelayReplay:
        if self._nc is None:
            await self.open()
        self._start_task("relay-replay")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        await self._stop_task()
        await self._close()

    async def _last_trouble(self) -> float | None:
        """When the history's last gap, close or stale feed was published (the relay's and the venue's)."""
        assert self._nc is not None
        js = self._nc.jetstream()
        times: list[float] = []
        for kind in ("gap", "closed", "stale"):
            try:
                msg = await js.get_last_msg(self.stream, subject(self.venue, None, kind, self.root))
            except NotFoundError:
                continue
            if msg.time is not None:
                times.append(msg.time.timestamp())
        return max(times) if times else None

    async def _play(self, at: float) -> float | None:
        """Play from ``lookback`` before ``at``, silently up to ``at``; returns where to seek (None: done)."""
        assert self._nc is not None
        self._rebuilding()
        got = RelayInput(self.venue, CONN, list(self.products))
        wanted = set(self.products)
        js = self._nc.jetstream()
        since = datetime.datetime.fromtimestamp(max(self.first, at - self.lookback), datetime.UTC)
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)
        everything = f"{self.root}.{token(self.venue)}.>"
        sub = await js.pull_subscribe(everything, stream=self.stream, config=config)
        playback = self.playback
        try:
            while True:
                try:
                    batch = await sub.fetch(256, timeout=1.0)
                except TimeoutError:
                    return None  # the end of the history
                for msg in batch:
                    if playback.stopped:
                        return None
                    seek = playback.take_seek()
                    if seek is not None:
                        return seek
                    assert msg.metadata.timestamp is not None
                    now = msg.metadata.timestamp.timestamp()
                    if now > self.end:
                        return None
                    events = got.received(msg.subject, msg.headers, msg.data, now)
                    events = [e for e in events if getattr(e, "product", None) in (None, *wanted)]
                    live = now >= at
                    if live:
                        await playback.pace(now)
                    self.store.apply_all(events)
                    self.position = now
                    if live and events:
                        self.store.frame_applied()
                        await self._hand_on(events)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
