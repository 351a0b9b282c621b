"""The store: everything the dashboard (or a script) reads, built by applying normalized events.

Stream workers call ``apply`` as frames arrive; readers poll the version counters at their own rate
and redraw only what changed. Everything is bounded: the tape, candles, orders and error lists have
fixed lengths, so memory does not grow however long it runs.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import replace

from tickerterm.core import native
from tickerterm.core.book import MAX_LEVELS, OrderBook
from tickerterm.core.candles import CandleSeries
from tickerterm.core.events import (
    Alert,
    BalanceUpdate,
    BookDropped,
    BookResynced,
    BookResyncing,
    BookSnapshot,
    BookUnsafe,
    BookUpdate,
    Candle,
    Closed,
    Connected,
    Connecting,
    Consolidated,
    Event,
    Gap,
    GaveUp,
    HealthEvent,
    Heartbeat,
    Malformed,
    OrderUpdate,
    ProductStatus,
    Recording,
    ReplayState,
    RetryScheduled,
    Stale,
    Subscribed,
    Ticker,
    Trade,
    VenueError,
)
from tickerterm.core.health import ConnectionHealth, GapRecord

Key = tuple[str, str]
"""``(venue, product)``."""

MINUTE_BARS = 2 * 24 * 60
"""One-minute bars kept per product (two days): enough for 1h candles to fill a wide chart."""


MAX_INTERVALS = 32
"""Candle intervals kept per product (Bitzoom, the most generous venue, has 15)."""
MAX_INTERVAL = 31 * 86400
MAX_BALANCE_FIELDS = 1024
"""Account fields kept per venue (assets x a few figures)."""


class Store:
    def __init__(
        self,
        *,
        tape_len: int = 500,
        candle_len: int = 500,
        orders_len: int = 500,
        max_levels: int = MAX_LEVELS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.max_levels = max_levels
        """Price levels kept per book side (see ``core.book.MAX_LEVELS``)."""
        self.tape_len = tape_len
        self.candle_len = candle_len
        self.orders_len = orders_len
        self.books: dict[Key, OrderBook] = {}
        self.tickers: dict[Key, Ticker] = {}
        self.tapes: dict[Key, deque[Trade]] = {}
        self.tape: deque[Trade] = deque(maxlen=tape_len)
        """Every product's trades, newest last."""
        self._seen_trades: dict[Key, tuple[set[str], set[str]]] = {}
        """Trade ids seen per product, in two generations: (recent, older)."""
        self.candles: dict[Key, CandleSeries] = {}
        """One-minute bars built from trades; coarser intervals are resampled from them on read."""
        self._resampled: dict[tuple[Key, int], CandleSeries] = {}
        self._merged: dict[tuple[Key, int], tuple[tuple[int, int], CandleSeries]] = {}
        self.venue_candles: dict[Key, dict[int, CandleSeries]] = {}
        """As the venue sent them, per interval in seconds."""
        self.statuses: dict[Key, ProductStatus] = {}
        self.orders: OrderedDict[tuple[str, str], OrderUpdate] = OrderedDict()
        self.balances: dict[str, dict[str, str]] = {}
        self.alerts: deque[Alert] = deque(maxlen=100)
        """The alerts that fired, newest last (``tickerterm.core.alerts``)."""
        self.alerts_version = 0
        self.consolidated: dict[str, Consolidated] = {}
        """Each asset's best bid/ask across venues, as last said (``tickerterm.core.consolidated``)."""
        self.consolidated_version = 0
        self.health: dict[str, ConnectionHealth] = {}
        self.recording: Recording | None = None
        """The recording in progress (``--record``), as last reported."""
        self.replay: ReplayState | None = None
        """The replay in progress (or last ended), where the venue replays history."""
        self.tickers_version = 0
        self.tape_version = 0
        self.candles_version = 0
        self.health_version = 0
        self.orders_version = 0
        self.books_version = 0
        self.on_frame: Callable[[], None] | None = None
        """Called after each venue frame's events are applied (the dashboard draws soon after new data)."""

    def reset(self) -> None:
        """Forget everything (a replay seeking back rebuilds from the start); readers holding this store
        see every version move on, so they redraw."""
        versions = (
            self.tickers_version,
            self.tape_version,
            self.candles_version,
            self.health_version,
            self.orders_version,
            self.books_version,
            self.consolidated_version,
        )
        on_frame = self.on_frame
        self.__init__(  # type: ignore[misc]
            tape_len=self.tape_len,
            candle_len=self.candle_len,
            orders_len=self.orders_len,
            max_levels=self.max_levels,
            clock=self.clock,
        )
        self.on_frame = on_frame
        top = max(versions) + 1
        self.tickers_version = self.tape_version = self.candles_version = top
        self.health_version = self.orders_version = self.books_version = top
        self.consolidated_version = top

    # --- reading ---------------------------------------------------------------------------

    def book(self, venue: str, product: str) -> OrderBook:
        key = (venue, product)
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = OrderBook(venue, product, self.max_levels)
        return book

    def drop_book(self, venue: str, product: str) -> None:
        """Forget a book nobody updates any more (its channel was unsubscribed)."""
        if self.books.pop((venue, product), None) is not None:
            self.books_version += 1

    def connection(self, conn: str, venue: str) -> ConnectionHealth:
        health = self.health.get(conn)
        if health is None:
            health = self.health[conn] = ConnectionHealth(conn, venue, state_since=self.clock())
        return health

    def candle_series(self, venue: str, product: str, interval: int) -> CandleSeries | None:
        """The venue's candles for ``interval`` where it sends them (or its finer ones, folded), followed by
        the trade-built bars after the venue's last one (venue history that stopped, or was only ever
        history, goes on from the trades); otherwise the trade-built candles alone."""
        key = (venue, product)
        trades = self._trade_series(key, interval)
        venue_bars = self._venue_series(key, interval)
        if venue_bars is None:
            return trades
        if trades is None or not len(trades) or trades.bars[-1].start <= venue_bars.bars[-1].start:
            return venue_bars
        version = (venue_bars.version, trades.version)
        cached = self._merged.get((key, interval))
        if cached is None or cached[0] != version:
            merged = CandleSeries(interval, self.candle_len)
            merged.bars.extend(venue_bars.bars)
            last = venue_bars.bars[-1].start
            merged.bars.extend(b for b in trades.bars if b.start > last)
            merged.version = venue_bars.version + trades.version
            cached = self._merged[(key, interval)] = (version, merged)
        return cached[1]

    def _venue_series(self, key: Key, interval: int) -> CandleSeries | None:
        series = self.venue_candles.get(key, {}).get(interval)
        if series is not None and len(series):
            return series
        base = self._finer_venue_series(key, interval)  # e.g. its 1m klines shown as 15m
        if base is None:
            return None
        cached = self._resampled.get((key, -interval))
        if cached is None or cached.version != base.version:
            cached = self._resampled[(key, -interval)] = base.resample(interval, self.candle_len)
        return cached

    def _trade_series(self, key: Key, interval: int) -> CandleSeries | None:
        minute = self.candles.get(key)
        if minute is None or interval == 60:
            return minute
        cached = self._resampled.get((key, interval))
        if cached is None or cached.version != minute.version:
            cached = self._resampled[(key, interval)] = minute.resample(interval, self.candle_len)
        return cached

    def frame_applied(self) -> None:
        if self.on_frame is not None:
            self.on_frame()

    def replay_progress(self, at: float) -> None:
        """Where the replay in progress stands (from the replayed frames; shown in the header)."""
        state = self.replay
        if state is None or state.state in ("stopped", "completed"):
            return
        if state.current is None or abs(at - state.current) >= 1.0:
            self.health_version += 1  # the header's clock moves a second at a time
        state.current = at

    def _finer_venue_series(self, key: Key, interval: int) -> CandleSeries | None:
        venue_series = self.venue_candles.get(key, {})
        finer = [s for i, s in venue_series.items() if i < interval and interval % i == 0 and len(s)]
        return max(finer, key=lambda s: s.interval) if finer else None

    def candle_source(self, venue: str, product: str, interval: int) -> str:
        """Where ``candle_series`` takes its bars from: ``venue``, ``venue 1m`` (the venue's finer bars
        folded), with ``+ trades`` when trade-built bars carry on after the venue's; or ``from trades``."""
        key = (venue, product)
        exact = self.venue_candles.get(key, {}).get(interval)
        if exact is not None and len(exact):
            text = "venue"
        else:
            base = self._finer_venue_series(key, interval)
            if base is None:
                return "from trades"
            text = f"venue {_interval_name(base.interval)}"
        series = self.candle_series(venue, product, interval)
        venue_bars = self._venue_series(key, interval)
        if series is not None and venue_bars is not None and series is not venue_bars:
            text += " + trades"
        return text

    # --- writing ---------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Apply one event. The store only applies: what an event implies (a gap taints books, a crossed
        book is rebuilt) is the venue session's to decide (``book_problem`` tells it what it needs)."""
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def apply_all(self, events: list[Event]) -> None:
        handlers = _HANDLERS
        trades: list[Trade] = []  # a frame's trades go in together (``_trades``), in their place
        for event in events:
            cls = type(event)
            if cls is Trade:
                trades.append(event)  # type: ignore[arg-type]
                continue
            if trades:
                self._trades(trades)
                trades = []
            handler = handlers.get(cls)
            if handler is not None:
                handler(self, event)
        if trades:
            self._trades(trades)

    def book_state(self, venue: str, product: str) -> str:
        book = self.books.get((venue, product))
        return "empty" if book is None else book.state

    def book_problem(self, venue: str, product: str) -> str | None:
        """Why ``product``'s book cannot be trusted as it stands (see ``OrderBook.problem``), or None."""
        book = self.books.get((venue, product))
        return None if book is None else book.problem()

    def note_frame(
        self, conn: str, venue: str, now: float, exch_ts: float | None, replayed_at: float | None
    ) -> None:
        """One frame received on ``conn`` (message rate, latency; in a replay, where it stands)."""
        self.connection(conn, venue).note_message(now, exch_ts)
        if replayed_at is not None:
            self.replay_progress(replayed_at)

    def note_frames(self, conn: str, venue: str, now: float, count: int, exch_times: list[float]) -> None:
        """``count`` frames received together on ``conn`` (one socket read; ``exch_times``: the venue's
        times of those that had one)."""
        self.connection(conn, venue).note_messages(now, count, exch_times)

    def note_ignored(self, conn: str, venue: str, unknown: int, out_of_order: int, unsolicited: int) -> None:
        """What a connection's venue sent that was ignored, counted (shown in the health panel)."""
        h = self.connection(conn, venue)
        if (h.unknown, h.out_of_order, h.unsolicited) != (unknown, out_of_order, unsolicited):
            h.unknown, h.out_of_order, h.unsolicited = unknown, out_of_order, unsolicited
            self.health_version += 1

    def _book_snapshot(self, ev: BookSnapshot) -> None:
        book = self.book(ev.venue, ev.product)
        book.apply_snapshot(ev.bids, ev.asks)
        book.exch_ts = ev.exch_ts
        book.recv_ts = ev.recv_ts
        self.books_version += 1

    def _book_update(self, ev: BookUpdate) -> None:
        book = self.books.get((ev.venue, ev.product))  # one call less per frame than ``book``
        if book is None:
            book = self.book(ev.venue, ev.product)
        if book.state == "empty":  # nothing to apply it to: the session sees ``problem()`` and rebuilds
            book.early = True
            return
        book.apply_changes(ev.changes)
        book.exch_ts = ev.exch_ts
        book.recv_ts = ev.recv_ts
        self.books_version += 1

    def _ticker(self, ev: Ticker) -> None:
        key = (ev.venue, ev.product)
        old = self.tickers.get(key)
        if old is not None:
            # ticker_batch-style frames omit best bid/ask: keep what we knew rather than blank it
            missing = {n: getattr(old, n) for n in _TICKER_FIELDS if getattr(ev, n) is None}
            if missing:
                ev = replace(ev, **missing)
        self.tickers[key] = ev
        self.tickers_version += 1

    def _trade(self, ev: Trade) -> None:
        self._trades([ev])

    def _trades(self, trades: list[Trade]) -> None:
        """Trades in the order they came: each on its product's tape and the whole tape, and in its
        one-minute bar; a trade id seen lately is a restatement (the snapshot after a resubscribe) and
        is skipped (``native.fresh_trades``; the ids remembered are the last 2-4 tape lengths). A frame's
        trades of one product (a venue's batch) go onto their tape and into their bars together."""
        kept, batches = native.fresh_trades(trades, self._seen_trades, 2 * self.tape_len)
        if not kept:
            return
        self.tape.extend(kept)
        for key, batch in batches.items():
            if batch:
                tape = self.tapes.get(key)
                if tape is None:
                    tape = self.tapes[key] = deque(maxlen=self.tape_len)
                tape.extend(batch)
                minute = self.candles.get(key)
                if minute is None:
                    minute = self.candles[key] = CandleSeries(60, MINUTE_BARS)
                minute.add_trades(batch)
        self.tape_version += len(kept)
        self.candles_version += len(kept)

    def _candle(self, ev: Candle) -> None:
        if ev.source == "trades":
            return  # said by --bars from trades the store has already made its own bars of
        per = self.venue_candles.setdefault((ev.venue, ev.product), {})
        series = per.get(ev.interval)
        if series is None:
            if len(per) >= MAX_INTERVALS or not 0 < ev.interval <= MAX_INTERVAL:
                return  # no venue has more: a series per made-up interval would grow without end
            series = per[ev.interval] = CandleSeries(ev.interval, self.candle_len)
        series.put(ev.start, ev.open, ev.high, ev.low, ev.close, ev.volume)
        self.candles_version += 1

    def _status(self, ev: ProductStatus) -> None:
        self.statuses[(ev.venue, ev.product)] = ev
        self.tickers_version += 1

    def _order(self, ev: OrderUpdate) -> None:
        key = (ev.venue, ev.order_id)
        self.orders.pop(key, None)
        self.orders[key] = ev
        while len(self.orders) > self.orders_len:
            self.orders.popitem(last=False)
        self.orders_version += 1

    def _balance(self, ev: BalanceUpdate) -> None:
        have = self.balances.setdefault(ev.venue, {})
        for name, value in ev.fields.items():
            if name in have or len(have) < MAX_BALANCE_FIELDS:
                have[name] = value
        self.orders_version += 1

    def _alert(self, ev: Alert) -> None:
        self.alerts.append(ev)
        self.alerts_version += 1

    def _consolidated(self, ev: Consolidated) -> None:
        self.consolidated[ev.product] = ev
        self.consolidated_version += 1

    def _health(self, ev: HealthEvent) -> None:
        if type(ev) is Recording:
            self.recording = ev
            self.health_version += 1
            return
        h = self.connection(ev.conn, ev.venue)
        now = ev.recv_ts
        match ev:
            case Connecting():
                h.url = ev.url
                h.next_retry_at = None
                h.set_state("connecting", now)
            case Connected():
                h.url = ev.url
                h.refused = {p: r for p, r in h.refused.items() if r}  # silence is judged again
                h.connected_at = now
                h.set_state("connected", now)
            case Subscribed():
                h.subscriptions = ev.subscriptions
                h.set_state("subscribed", now)
            case Closed():
                h.last_close_code = ev.code
                h.last_close_reason = ev.reason
                h.closes += 1
                h.set_state("closed", now)
            case RetryScheduled():
                h.last_failure = ev.reason
                h.retries += 1
                h.attempt = ev.attempt
                h.next_retry_at = now + ev.delay
                h.set_state("retrying", now)
            case GaveUp():
                h.gave_up_reason = ev.reason
                h.bad_input = ev.bad_input
                h.next_retry_at = None
                h.set_state("gave_up", now)
            case Gap():
                h.gaps += 1
                h.last_gap = GapRecord(ev.expected, ev.received, now, ev.scope, ev.describe())
            case VenueError():
                h.errors.append((now, ev.message))
                if ev.product is not None and (ev.product in h.refused or len(h.refused) < 64):
                    h.refused[ev.product] = ev.fatal
            case Stale():
                h.stale_count += 1
                h.set_state("stale", now)
            case Malformed():
                h.malformed += ev.count
            case Heartbeat():
                h.last_heartbeat_at = now
            case BookUnsafe():
                book = self.book(ev.venue, ev.product)
                if book.state != "unsafe" or book.reason != ev.reason:
                    book.mark_unsafe(ev.reason)
                    book.recv_ts = now
                self.books_version += 1
            case BookResynced():
                self.books_version += 1
            case ReplayState():
                old = self.replay
                if old is not None and ev.state != "started":  # later notices only say where it stands
                    ev = replace(
                        ev,
                        product=ev.product or old.product,
                        current=ev.current if ev.current is not None else old.current,
                        start=old.start if ev.start is None else ev.start,
                        end=old.end if ev.end is None else ev.end,
                        speed=old.speed if ev.speed is None else ev.speed,
                    )
                self.replay = ev
            case BookDropped():
                self.drop_book(ev.venue, ev.product)
            case BookResyncing():
                book = self.book(ev.venue, ev.product)
                book.mark_resyncing()
                book.recv_ts = now
                h.resyncs += 1
                self.books_version += 1
        self.health_version += 1


def _interval_name(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_HANDLERS: dict[type, Callable[[Store, Event], None]] = {
    BookSnapshot: Store._book_snapshot,  # type: ignore[dict-item]
    BookUpdate: Store._book_update,  # type: ignore[dict-item]
    Ticker: Store._ticker,  # type: ignore[dict-item]
    Trade: Store._trade,  # type: ignore[dict-item]
    Candle: Store._candle,  # type: ignore[dict-item]
    ProductStatus: Store._status,  # type: ignore[dict-item]
    OrderUpdate: Store._order,  # type: ignore[dict-item]
    BalanceUpdate: Store._balance,  # type: ignore[dict-item]
    Alert: Store._alert,  # type: ignore[dict-item]
    Consolidated: Store._consolidated,  # type: ignore[dict-item]
}
_TICKER_FIELDS = (
    "price",
    "bid",
    "bid_size",
    "ask",
    "ask_size",
    "volume_24h",
    "low_24h",
    "high_24h",
    "change_pct_24h",
    "mark",
    "index",
    "funding_rate",
    "next_funding",
)

for _cls in (
    Connecting,
    Connected,
    Subscribed,
    Closed,
    RetryScheduled,
    GaveUp,
    Gap,
    VenueError,
    Stale,
    Malformed,
    Heartbeat,
    BookUnsafe,
    BookResyncing,
    BookResynced,
    BookDropped,
    ReplayState,
    Recording,
):
    _HANDLERS[_cls] = Store._health  # type: ignore[assignment]
