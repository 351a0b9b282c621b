"""OHLCV candles: aggregated from trades, or taken as the venue sends them.

Prices stay the venue's strings; volume is summed with ``Decimal`` so it stays exact.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING

from tickerterm.core import native

if TYPE_CHECKING:
    from tickerterm.core.events import Trade

INTERVALS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}
"""The intervals the store aggregates from trades, by display name."""


_size = attrgetter("size")

PENDING = 256
"""Trade sizes a bar holds before it sums them (summing on read is cheaper, but must stay bounded)."""


class Bar:
    """One bucket. Prices are the venue's strings (their values cached for comparisons); the volume is
    exact: trade sizes are summed with ``Decimal`` when the volume is read, not once per trade."""

    __slots__ = (
        "_pending",
        "_volume",
        "close",
        "close_ts",
        "high",
        "high_v",
        "low",
        "low_v",
        "open",
        "open_ts",
        "start",
        "trades",
    )

    def __init__(
        self,
        start: int,
        open: str,
        high: str,
        low: str,
        close: str,
        volume: Decimal,
        open_ts: float,
        close_ts: float,
        trades: int = 0,
    ) -> None:
        self.start = start
        self.open, self.high, self.low, self.close = open, high, low, close
        self.high_v, self.low_v = float(high), float(low)
        self._volume = volume
        self._pending: list[str] = []
        self.open_ts, self.close_ts = open_ts, close_ts
        self.trades = trades

    @property
    def volume(self) -> Decimal:
        if self._pending:
            self._fold()
        return self._volume

    @volume.setter
    def volume(self, value: Decimal) -> None:
        self._volume = value
        self._pending.clear()

    def _fold(self) -> None:
        self._volume += native.decimal_sum(self._pending)  # exact; in C where it was built
        self._pending.clear()

    @property
    def volume_text(self) -> str:
        return format(self.volume, "f")

    def merge(self, other: Bar) -> None:
        """Fold a later bar of the same bucket into this one (for resampling)."""
        if other.high_v > self.high_v:
            self.high, self.high_v = other.high, other.high_v
        if other.low_v < self.low_v:
            self.low, self.low_v = other.low, other.low_v
        if other.open_ts < self.open_ts:
            self.open, self.open_ts = other.open, other.open_ts
        if other.close_ts >= self.close_ts:
            self.close, self.close_ts = other.close, other.close_ts
        self.volume += other.volume
        self.trades += other.trades


class CandleSeries:
    """Bars of one interval, oldest first, at most ``maxlen`` of them."""

    __slots__ = ("_last", "bars", "interval", "version")

    def __init__(self, interval: int, maxlen: int = 500) -> None:
        self.interval = interval
        self.bars: deque[Bar] = deque(maxlen=maxlen)
        self.version = 0
        self._last: Bar | None = None  # the bar the last trade went to: almost always the next one's

    def add_trade(self, ts: float, price: str, size: str, value: float | None = None) -> None:
        """Add a trade at ``price`` (``value`` is its float, when the caller already has it)."""
        start = int(ts // self.interval) * self.interval
        bar = self._last
        if bar is None or bar.start != start:
            bar = self._last = self._find(start)
        if bar is None:
            bar = Bar(start, price, price, price, price, Decimal(size), ts, ts, 1)
            if self._insert(bar):
                self._last = bar
        else:  # Bar.add_trade, written inline: this runs once per trade
            if value is None:
                value = float(price)
            if value > bar.high_v:
                bar.high, bar.high_v = price, value
            if value < bar.low_v:
                bar.low, bar.low_v = price, value
            if ts < bar.open_ts:
                bar.open, bar.open_ts = price, ts
            if ts >= bar.close_ts:
                bar.close, bar.close_ts = price, ts
            pending = bar._pending
            pending.append(size)
            if len(pending) >= PENDING:  # nobody read the volume (headless): fold, so memory stays flat
                bar._fold()
            bar.trades += 1
        self.version += 1

    def add_trades(self, trades: Sequence[Trade]) -> None:
        """``add_trade`` for each trade in order (at its venue time, else its receive time). A batch that
        falls wholly in the bar the last trade went to (nearly every one) is added at once, with the
        result of adding its trades one by one: the first trade at the highest price sets the high, the
        last at the latest time the close (``native.bar_span``, in C where it was built)."""
        bar = self._last
        if bar is not None and len(trades) > 1:
            span = native.bar_span(trades)
            if span is not None:
                interval, start = self.interval, bar.start
                if int(span[0] // interval) * interval == start == int(span[1] // interval) * interval:
                    self._into(bar, trades, span)
                    return
        self._one_by_one(trades)

    def _into(
        self, bar: Bar, trades: Sequence[Trade], span: tuple[float, float, str, str, float, str, float, str]
    ) -> None:
        first, last, open_, close, high, high_price, low, low_price = span
        if high > bar.high_v:
            bar.high, bar.high_v = high_price, high
        if low < bar.low_v:
            bar.low, bar.low_v = low_price, low
        if first < bar.open_ts:
            bar.open, bar.open_ts = open_, first
        if last >= bar.close_ts:
            bar.close, bar.close_ts = close, last
        pending = bar._pending
        pending.extend(map(_size, trades))
        if len(pending) >= PENDING:  # nobody read the volume (headless): fold, so memory stays flat
            bar._fold()
        bar.trades += len(trades)
        self.version += len(trades)

    def _one_by_one(self, trades: Iterable[Trade]) -> None:
        for t in trades:
            exch_ts = t.exch_ts
            self.add_trade(exch_ts if exch_ts is not None else t.recv_ts, t.price, t.size)

    def put(self, start: int, open_: str, high: str, low: str, close: str, volume: str) -> None:
        """Set a whole bar as the venue reports it (the venue's bar replaces ours)."""
        bar = self._find(start)
        new = Bar(start, open_, high, low, close, Decimal(volume), float(start), float(start))
        if bar is None:
            self._insert(new)
        else:
            bar.open, bar.high, bar.low, bar.close, bar.volume = open_, high, low, close, new.volume
            bar.high_v, bar.low_v = new.high_v, new.low_v
        self.version += 1

    def find(self, start: int) -> Bar | None:
        """The bar starting at ``start``, if there is one."""
        return self._find(start)

    def _find(self, start: int) -> Bar | None:
        for bar in reversed(self.bars):
            if bar.start == start:
                return bar
            if bar.start < start:
                return None
        return None

    def _insert(self, bar: Bar) -> bool:
        """Put ``bar`` in order; False when it is older than everything a full series keeps."""
        bars = self.bars
        if not bars or bars[-1].start < bar.start:
            bars.append(bar)
            return True
        if bars.maxlen is not None and len(bars) == bars.maxlen:
            if bar.start < bars[0].start:
                return False
            if bars.popleft() is self._last:
                self._last = None
        i = len(bars)
        while i > 0 and bars[i - 1].start > bar.start:
            i -= 1
        bars.insert(i, bar)
        return True

    def resample(self, interval: int, maxlen: int = 500) -> CandleSeries:
        """These bars folded into ``interval``-second buckets (exact: O/H/L/C and summed volume)."""
        out = CandleSeries(interval, maxlen)
        current: Bar | None = None
        for bar in self.bars:
            start = bar.start // interval * interval
            if current is None or current.start != start:
                current = Bar(
                    start,
                    bar.open,
                    bar.high,
                    bar.low,
                    bar.close,
                    bar.volume,
                    bar.open_ts,
                    bar.close_ts,
                    bar.trades,
                )
                out.bars.append(current)
            else:
                current.merge(bar)
        out.version = self.version
        return out

    def __len__(self) -> int:
        return len(self.bars)
