"""OHLCV candles: aggregated from trades, or taken as the venue sends them.

Prices stay the venue's strings; volume is summed with ``Decimal`` so it stays exact.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

INTERVALS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}
"""The intervals the store aggregates from trades, by display name."""


@dataclass(slots=True)
class Bar:
    start: int
    open: str
    high: str
    low: str
    close: str
    volume: Decimal
    open_ts: float
    close_ts: float
    trades: int = 0

    @property
    def volume_text(self) -> str:
        return format(self.volume, "f")

    def merge(self, other: Bar) -> None:
        """Fold a later bar of the same bucket into this one (for resampling)."""
        if float(other.high) > float(self.high):
            self.high = other.high
        if float(other.low) < float(self.low):
            self.low = other.low
        if other.open_ts < self.open_ts:
            self.open, self.open_ts = other.open, other.open_ts
        if other.close_ts >= self.close_ts:
            self.close, self.close_ts = other.close, other.close_ts
        self.volume += other.volume
        self.trades += other.trades


class CandleSeries:
    """Bars of one interval, oldest first, at most ``maxlen`` of them."""

    __slots__ = ("bars", "interval", "version")

    def __init__(self, interval: int, maxlen: int = 500) -> None:
        self.interval = interval
        self.bars: deque[Bar] = deque(maxlen=maxlen)
        self.version = 0

    def add_trade(self, ts: float, price: str, size: str) -> None:
        start = int(ts // self.interval) * self.interval
        bar = self._find(start)
        if bar is None:
            bar = Bar(start, price, price, price, price, Decimal(size), ts, ts, 1)
            self._insert(bar)
        else:
            p = float(price)
            if p > float(bar.high):
                bar.high = price
            if p < float(bar.low):
                bar.low = price
            if ts < bar.open_ts:
                bar.open, bar.open_ts = price, ts
            if ts >= bar.close_ts:
                bar.close, bar.close_ts = price, ts
            bar.volume += Decimal(size)
            bar.trades += 1
        self.version += 1

    def put(self, start: int, open_: str, high: str, low: str, close: str, volume: str) -> None:
        """Set a whole bar as the venue reports it (the venue's bar replaces ours)."""
        bar = self._find(start)
        new = Bar(start, open_, high, low, close, Decimal(volume), float(start), float(start))
        if bar is None:
            self._insert(new)
        else:
            bar.open, bar.high, bar.low, bar.close, bar.volume = open_, high, low, close, new.volume
        self.version += 1

    def _find(self, start: int) -> Bar | None:
        for bar in reversed(self.bars):
            if bar.start == start:
                return bar
            if bar.start < start:
                return None
        return None

    def _insert(self, bar: Bar) -> None:
        bars = self.bars
        if not bars or bars[-1].start < bar.start:
            bars.append(bar)
            return
        if bars.maxlen is not None and len(bars) == bars.maxlen:
            if bar.start < bars[0].start:
                return  # older than everything we keep
            bars.popleft()
        i = len(bars)
        while i > 0 and bars[i - 1].start > bar.start:
            i -= 1
        bars.insert(i, bar)

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
