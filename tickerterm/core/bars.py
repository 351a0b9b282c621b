"""Bars built from trades, said when they close (``--bars 1m``): the cbpro seed's VolumeAnalyzer, as
NDJSON ``candle`` lines with ``source: "trades"``, the bar's volume and its VWAP.

A bar closes when the first trade of a later bar arrives, or on the clock once its time has passed by
``GRACE`` seconds (a quiet market still gets its bar). Prices stay the venue's text; volume and
notional are summed with ``Decimal``, so the volume and the VWAP are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from tickerterm.core.events import Candle, Event, Trade
from tickerterm.core.store import Store

GRACE = 2.0
"""Seconds after a bar's end before the clock closes it (late trades of that bar still count)."""


@dataclass(slots=True)
class _Open:
    start: int
    open: str
    high: str
    low: str
    close: str
    high_v: Decimal
    low_v: Decimal
    volume: Decimal
    notional: Decimal


class BarCloser:
    """``check`` after each frame's events, ``tick`` on a clock: both return the ``Candle`` events of the
    bars that closed."""

    def __init__(self, interval: int, venue: str) -> None:
        self.interval = interval
        self.venue = venue
        self._bars: dict[str, _Open] = {}
        self._said: dict[str, int] = {}
        """The start of the last bar said per product: a late trade never makes it again."""

    def check(self, events: list[Event], store: Store, now: float) -> list[Event]:
        out: list[Event] = []
        for ev in events:
            if type(ev) is not Trade:
                continue
            t: Trade = ev
            try:
                price, size = Decimal(t.price), Decimal(t.size)
            except InvalidOperation:
                continue
            when = t.exch_ts if t.exch_ts is not None else t.recv_ts
            start = int(when // self.interval) * self.interval
            bar = self._bars.get(t.product)
            if start <= self._said.get(t.product, -1) or (bar is not None and start < bar.start):
                continue  # a late trade of a bar already said: not counted twice
            if bar is not None and start > bar.start:
                out.append(self._candle(t.product, bar, now))
                bar = None
            if bar is None:
                self._bars[t.product] = _Open(
                    start, t.price, t.price, t.price, t.price, price, price, size, price * size
                )
                continue
            bar.close = t.price
            if price > bar.high_v:
                bar.high, bar.high_v = t.price, price
            if price < bar.low_v:
                bar.low, bar.low_v = t.price, price
            bar.volume += size
            bar.notional += price * size
        return out

    def tick(self, store: Store, now: float) -> list[Event]:
        """Bars whose time has passed with no later trade to close them."""
        out: list[Event] = []
        for product, bar in list(self._bars.items()):
            if now >= bar.start + self.interval + GRACE:
                out.append(self._candle(product, bar, now))
                del self._bars[product]
        return out

    def _candle(self, product: str, bar: _Open, now: float) -> Candle:
        self._said[product] = bar.start
        vwap = bar.notional / bar.volume if bar.volume else None
        return Candle(
            self.venue,
            now,
            product,
            None,
            bar.start,
            self.interval,
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            format(bar.volume, "f"),
            source="trades",
            vwap=format(vwap.quantize(Decimal(1).scaleb(-8)).normalize(), "f") if vwap is not None else None,
        )
