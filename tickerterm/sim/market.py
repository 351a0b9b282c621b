"""A seeded synthetic market: a deep order book per product, order flow, trades consistent with the book.

Prices are integer ticks and sizes integer lots internally, and are formatted to exact decimal text
the same way every time, so the simulator's true book can be compared string-for-string with what a
client built. The same seed gives the same sequence of steps.

Markets of one asset on different venues (``BTC-USD`` on Coinbase, ``BTC-USDT`` on Bitzoom,
``COINBASE:BTC-USD`` on CoinAPI) follow one value: each market's fair value wanders on its own and is
pulled towards the asset's value at the step's time (``asset_value``: a function of the seed, the base
asset and the time alone, so simulators started apart agree), as arbitrage holds real venues together.
Their prices then differ by a few ticks and now and then cross, as real venues' do.
"""

from __future__ import annotations

import heapq
import math
import random
import zlib
from dataclasses import dataclass, field

SIZE_DECIMALS = 8
"""Sizes are multiples of 1e-8."""
PULL = 0.2
"""How much of the gap to the asset's value a market's fair value closes per step."""
_WAVES = ((900.0, 0.0006), (3600.0, 0.0015), (14400.0, 0.004))
"""The asset's value: waves of these periods (s) and amplitudes (fractions of the price), phases by seed."""


def asset_value(seed: int, base: str, at: float) -> float:
    """The asset's value at ``at`` (UNIX seconds) as a fraction of its starting price, minus one."""
    rng = random.Random(seed * 7_919 + zlib.crc32(base.encode()))
    return sum(a * math.sin(2 * math.pi * at / period + rng.random() * 2 * math.pi) for period, a in _WAVES)


def base_of(product: str) -> str:
    """``COINBASE:BTC-USD`` / ``BTC-USDT`` / ``BTC`` -> ``BTC``: what an asset's markets have in common."""
    return product.rsplit(":", 1)[-1].split("-", 1)[0].upper()


@dataclass(frozen=True, slots=True)
class ProductSpec:
    product: str
    price: str
    """Starting mid price."""
    tick: str
    """Price increment, e.g. ``"0.01"``."""


DEFAULT_PRODUCTS: tuple[ProductSpec, ...] = (
    ProductSpec("BTC-USD", "64000.00", "0.01"),
    ProductSpec("ETH-USD", "3100.00", "0.01"),
    ProductSpec("SOL-USD", "145.000", "0.001"),
    ProductSpec("DOGE-USD", "0.150000", "0.000001"),
    ProductSpec("BTC-EUR", "59000.00", "0.01"),
    ProductSpec("ETH-BTC", "0.04850", "0.00001"),
)


@dataclass(slots=True)
class SimTrade:
    trade_id: int
    price: str
    size: str
    maker_side: str
    """``bid`` when a resting bid was hit (the aggressor sold), ``ask`` when an ask was lifted."""
    ts: float


@dataclass(slots=True)
class Step:
    product: str
    changes: list[tuple[str, str, str]] = field(default_factory=list)
    """``(side, price, size)`` with ``side`` ``bid``/``ask`` and absolute sizes; ``"0"`` removes."""
    trades: list[SimTrade] = field(default_factory=list)


@dataclass(slots=True)
class SimCandle:
    start: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    trades: int = 1

    def add(self, price: int, lots: int) -> None:
        """One more trade in this bar."""
        self.high, self.low, self.close = max(self.high, price), min(self.low, price), price
        self.volume += lots
        self.trades += 1

    def merge(self, later: SimCandle) -> None:
        """Fold a later bar of the same bucket into this one."""
        self.high, self.low, self.close = max(self.high, later.high), min(self.low, later.low), later.close
        self.volume += later.volume
        self.trades += later.trades


def _add_trade(bars: list[SimCandle], start: int, price: int, lots: int, keep: int, trim: int) -> None:
    """A trade into the bar starting at ``start`` (a new one if the last bar is older); at most ``keep``
    bars, the oldest ``trim`` dropped when that is reached."""
    if bars and bars[-1].start == start:
        bars[-1].add(price, lots)
        return
    bars.append(SimCandle(start, price, price, price, price, lots))
    if len(bars) > keep:
        del bars[:trim]


class Market:
    """One product's synthetic market."""

    CANDLE_SECONDS = 300

    def __init__(self, spec: ProductSpec, seed: int, depth: int = 2000) -> None:
        self.product = spec.product
        self.decimals = len(spec.tick.partition(".")[2])
        scale = 10**self.decimals
        self.tick = round(float(spec.tick) * scale)
        self.rng = random.Random(seed * 1_000_003 + zlib.crc32(spec.product.encode()))
        self.depth = depth
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.trade_id = 1000
        self.steps = 0
        mid = round(float(spec.price) * scale)
        mid -= mid % self.tick
        self.open_24h = mid
        self.high_24h = mid
        self.low_24h = mid
        self.volume_24h = 0
        self.last_price = mid
        self.candles: list[SimCandle] = []
        self.minute_bars: list[SimCandle] = []
        """One-minute bars of the market's trades (the last two days), for venues that serve history."""
        self.recent_trades: list[SimTrade] = []
        self._best_bid: int | None = None
        self._best_ask: int | None = None
        self._unit = max(1, round(10**SIZE_DECIMALS / max(1.0, float(spec.price)) * 50))  # ~$50 lots
        # levels thin out with a typical spacing of ~2e-6 of the price, and a fair value wanders
        # (~1e-5 of the price per step); order flow leans towards it, so prices really move
        self._spacing = max(1.0, mid * 2e-6 / self.tick)
        self._sigma = max(0.2, mid * 1e-5 / self.tick)
        self.fair = float(mid)
        self._start = float(mid)
        self._seed = seed
        self._base = base_of(spec.product)
        self._value_at: tuple[int, float] = (-1, 0.0)
        """The asset's value, kept for the second it was computed in (it moves slowly)."""
        bid = mid - self.tick
        ask = mid + self.tick
        for _ in range(depth):
            self.bids[bid] = self._size()
            self.asks[ask] = self._size()
            bid -= self._gap()
            ask += self._gap()

    # --- formatting ------------------------------------------------------------------------

    def price_text(self, ticks: int) -> str:
        if self.decimals == 0:
            return str(ticks)
        whole, frac = divmod(ticks, 10**self.decimals)
        return f"{whole}.{frac:0{self.decimals}d}"

    @staticmethod
    def size_text(lots: int) -> str:
        if lots == 0:
            return "0"
        whole, frac = divmod(lots, 10**SIZE_DECIMALS)
        text = f"{whole}.{frac:0{SIZE_DECIMALS}d}".rstrip("0")
        return text.rstrip(".")

    # --- state -----------------------------------------------------------------------------

    def best_bid(self) -> int:
        if self._best_bid is None:
            self._best_bid = max(self.bids)
        return self._best_bid

    def best_ask(self) -> int:
        if self._best_ask is None:
            self._best_ask = min(self.asks)
        return self._best_ask

    def book_text(self) -> tuple[dict[str, str], dict[str, str]]:
        """The true book as ``{price: size}`` per side, formatted as sent on the wire."""
        pt, st = self.price_text, self.size_text
        return ({pt(p): st(s) for p, s in self.bids.items()}, {pt(p): st(s) for p, s in self.asks.items()})

    def top_levels(self, n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The best ``n`` levels per side, as ``snapshot_levels`` gives them (without sorting the book)."""
        pt, st = self.price_text, self.size_text
        bids = [(pt(p), st(self.bids[p])) for p in heapq.nlargest(n, self.bids)]
        asks = [(pt(p), st(self.asks[p])) for p in heapq.nsmallest(n, self.asks)]
        return bids, asks

    def snapshot_levels(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        pt, st = self.price_text, self.size_text
        bids = [(pt(p), st(self.bids[p])) for p in sorted(self.bids, reverse=True)]
        asks = [(pt(p), st(self.asks[p])) for p in sorted(self.asks)]
        return bids, asks

    # --- order flow ------------------------------------------------------------------------

    def _gap(self) -> int:
        return int(self.tick * (1 + int(self.rng.expovariate(1 / self._spacing))))

    def _size(self) -> int:
        return max(1, int(self._unit * self.rng.lognormvariate(0.0, 1.0)))

    def step(self, now: float) -> Step:
        """Advance by one event: a limit order, a cancel or a market order."""
        self.steps += 1
        out = Step(self.product)
        self.fair += self.rng.gauss(0.0, self._sigma)
        if now > 0:  # the asset's value at this time pulls: one asset's markets stay together
            second = int(now)
            if self._value_at[0] != second:
                self._value_at = (second, asset_value(self._seed, self._base, second))
            self.fair += PULL * (self._start * (1 + self._value_at[1]) - self.fair)
        r = self.rng.random()
        if r < 0.55:
            self._limit(out)
        elif r < 0.9:
            self._cancel(out)
        else:
            self._market(out, now)
        return out

    def _set(self, out: Step, side: str, price: int, lots: int) -> None:
        if side == "bid":
            book = self.bids
            if lots <= 0 and price == self._best_bid:
                self._best_bid = None
            elif lots > 0 and self._best_bid is not None and price > self._best_bid:
                self._best_bid = price
        else:
            book = self.asks
            if lots <= 0 and price == self._best_ask:
                self._best_ask = None
            elif lots > 0 and self._best_ask is not None and price < self._best_ask:
                self._best_ask = price
        if lots <= 0:
            if book.pop(price, None) is None:
                return
            out.changes.append((side, self.price_text(price), "0"))
        else:
            book[price] = lots
            out.changes.append((side, self.price_text(price), self.size_text(lots)))

    def _limit(self, out: Step) -> None:
        """A limit order near the fair value (never crossing the book)."""
        rng = self.rng
        side = "bid" if rng.random() < 0.5 else "ask"
        tick = self.tick
        fair = int(self.fair // tick) * tick
        offset = tick * int(rng.expovariate(1 / (3 * self._spacing)))
        if side == "bid":
            price = min(fair - offset, self.best_ask() - tick)
            book = self.bids
        else:
            price = max(fair + tick + offset, self.best_bid() + tick)
            book = self.asks
        if price <= 0:
            return
        self._set(out, side, price, book.get(price, 0) + self._size())
        self._trim(out, side)

    def _cancel(self, out: Step) -> None:
        rng = self.rng
        side = "bid" if rng.random() < 0.5 else "ask"
        book = self.bids if side == "bid" else self.asks
        if len(book) <= self.depth // 2:
            self._refill(out, side)
            return
        best = self.best_bid() if side == "bid" else self.best_ask()
        away = self.tick * int(rng.expovariate(1 / (6 * self._spacing)))
        target = best - away if side == "bid" else best + away
        lots = None
        for k in range(int(4 * self._spacing) + 1):  # the nearest existing level at or behind target
            price = target - k * self.tick if side == "bid" else target + k * self.tick
            lots = book.get(price)
            if lots is not None:
                break
        if lots is None:
            return
        if rng.random() < 0.4 or len(book) < 10:
            cut = max(1, lots // 2)
            self._set(out, side, price, lots - cut)
        else:
            self._set(out, side, price, 0)

    def _market(self, out: Step, now: float) -> None:
        rng = self.rng
        mid = (self.best_bid() + self.best_ask()) / 2
        lean = math.tanh((self.fair - mid) / (5 * self._sigma * self.tick))
        aggressor_buys = rng.random() < 0.5 + 0.45 * lean
        side = "ask" if aggressor_buys else "bid"  # the side that gets eaten
        book = self.asks if aggressor_buys else self.bids
        want = int(self._size() * rng.uniform(0.5, 3.0))
        while want > 0 and len(book) > 10:
            price = self.best_ask() if aggressor_buys else self.best_bid()
            lots = book[price]
            take = min(lots, want)
            want -= take
            self.trade_id += 1
            trade = SimTrade(self.trade_id, self.price_text(price), self.size_text(take), side, now)
            out.trades.append(trade)
            self._record_trade(trade, price, take, now)
            self._set(out, side, price, lots - take)
        self._refill(out, side)

    def _record_trade(self, trade: SimTrade, price: int, lots: int, now: float) -> None:
        self.last_price = price
        self.high_24h = max(self.high_24h, price)
        self.low_24h = min(self.low_24h, price)
        self.volume_24h += lots
        self.recent_trades.append(trade)
        if len(self.recent_trades) > 100:
            del self.recent_trades[:50]
        _add_trade(self.candles, int(now // self.CANDLE_SECONDS) * self.CANDLE_SECONDS, price, lots, 300, 100)
        _add_trade(self.minute_bars, int(now // 60) * 60, price, lots, 2880, 480)

    def bars(self, seconds: int, limit: int = 500) -> list[SimCandle]:
        """The last ``limit`` bars of ``seconds`` (a multiple of 60), folded from the one-minute bars
        (only the ones those bars need are read)."""
        minutes = self.minute_bars
        if not minutes:
            return []
        first = (minutes[-1].start // seconds - limit + 1) * seconds
        i = len(minutes)
        while i > 0 and minutes[i - 1].start >= first:
            i -= 1
        out: list[SimCandle] = []
        for b in minutes[i:]:
            start = b.start // seconds * seconds
            if out and out[-1].start == start:
                out[-1].merge(b)
            else:
                out.append(SimCandle(start, b.open, b.high, b.low, b.close, b.volume, b.trades))
        return out

    def _refill(self, out: Step, side: str) -> None:
        """Keep each side deep: add levels behind the worst one when a side gets thin."""
        book = self.bids if side == "bid" else self.asks
        while len(book) < self.depth:
            if side == "bid":
                price = min(book) - self._gap()
                if price <= 0:
                    return
            else:
                price = max(book) + self._gap()
            self._set(out, side, price, self._size())

    def _trim(self, out: Step, side: str) -> None:
        book = self.bids if side == "bid" else self.asks
        if len(book) > self.depth * 1.2:
            worst = min(book) if side == "bid" else max(book)
            self._set(out, side, worst, 0)
