"""An order-by-order (L3) book, kept exactly, that reports the level changes it causes.

Venues with a full order feed (Coinbase Exchange ``full``) send orders, not levels: an order opens
at a price, is matched (partly) or done, or has its size changed. This book keeps every open order
and the total of each price level; each operation returns the ``Change`` of the level it touched
(absolute size, ``"0"`` when the level is gone), so the aggregated L2 ``OrderBook`` — what the ladder
draws — is fed the same way as from an L2 feed. Sizes are summed with ``Decimal``: exact.
"""

from __future__ import annotations

from decimal import Decimal

from tickerterm.core.events import BookSide, Change, Level

_ZERO = Decimal(0)

MAX_ORDERS = 1_000_000
"""Open orders kept: many times a real book's. Past it ``open`` raises ``ValueError``: the venue's
message is malformed for us, and the book is marked UNSAFE and rebuilt, never silently incomplete."""


class L3Book:
    __slots__ = ("_levels", "_orders")

    def __init__(self) -> None:
        self._orders: dict[str, tuple[BookSide, str, float, Decimal]] = {}
        """order id -> (side, price text, price value, remaining size)"""
        self._levels: dict[tuple[BookSide, float], tuple[str, Decimal, int]] = {}
        """(side, price value) -> (price text, total size, order count)"""

    def load(self, bids: list[tuple[str, str, str]], asks: list[tuple[str, str, str]]) -> None:
        """Replace everything with a snapshot's orders: ``(price, size, order_id)`` per side."""
        self._orders.clear()
        self._levels.clear()
        for side, orders in (("bid", bids), ("ask", asks)):
            for price, size, order_id in orders:
                self.open(order_id, side, price, size)  # type: ignore[arg-type]

    def open(self, order_id: str, side: BookSide, price: str, size: str) -> Change | None:
        """An order rests on the book (a repeated id replaces the old one)."""
        self.done(order_id)
        amount = Decimal(size)
        if amount <= _ZERO:
            return None
        if len(self._orders) >= MAX_ORDERS:
            raise ValueError(f"more than {MAX_ORDERS} open orders")
        value = float(price)
        self._orders[order_id] = (side, price, value, amount)
        return self._adjust(side, price, value, amount, 1)

    def done(self, order_id: str) -> Change | None:
        """An order left the book (filled or canceled); None if it was not on it (e.g. a market order)."""
        order = self._orders.pop(order_id, None)
        if order is None:
            return None
        side, price, value, remaining = order
        return self._adjust(side, price, value, -remaining, -1)

    def match(self, maker_order_id: str, size: str) -> Change | None:
        """``size`` of a resting order was filled (its ``done`` follows when nothing is left)."""
        return self.resize(maker_order_id, None, size)

    def change(self, order_id: str, new_size: str) -> Change | None:
        """An order's remaining size became ``new_size`` (a modify or self-trade prevention)."""
        return self.resize(order_id, new_size, None)

    def resize(self, order_id: str, new_size: str | None, filled: str | None) -> Change | None:
        order = self._orders.get(order_id)
        if order is None:
            return None
        side, price, value, remaining = order
        after = Decimal(new_size) if new_size is not None else remaining - Decimal(filled or "0")
        if after < _ZERO:
            raise ValueError(f"order {order_id[:12]} would go below zero")
        self._orders[order_id] = (side, price, value, after)
        return self._adjust(side, price, value, after - remaining, 0)

    def _adjust(self, side: BookSide, price: str, value: float, delta: Decimal, count: int) -> Change:
        key = (side, value)
        level = self._levels.get(key)
        text, total, n = level if level is not None else (price, _ZERO, 0)
        total += delta
        n += count
        if n <= 0:
            self._levels.pop(key, None)
        else:  # orders filled down to nothing stay counted until their ``done``
            self._levels[key] = (text, total, n)
        if total <= _ZERO:
            return (side, text, "0", value, 0.0)
        return (side, text, _plain(total), value, float(total))

    def levels(self) -> tuple[list[Level], list[Level]]:
        """Aggregated levels: bids highest first, asks lowest first."""
        live = [(side, v, t, s) for (side, v), (t, s, _) in self._levels.items() if s > _ZERO]
        bids = sorted(((v, t, s) for side, v, t, s in live if side == "bid"), reverse=True)
        asks = sorted((v, t, s) for side, v, t, s in live if side == "ask")
        return [(t, _plain(s)) for _, t, s in bids], [(t, _plain(s)) for _, t, s in asks]

    def has(self, order_id: str) -> bool:
        return order_id in self._orders

    def __len__(self) -> int:
        return len(self._orders)


def _plain(d: Decimal) -> str:
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
