"""An L2 order book that keeps the venue's exact decimal strings.

Levels are keyed by the float value of the price (two spellings of one number, ``"1.50"`` and
``"1.5"``, are one level), and each keeps the price and size strings exactly as the venue sent them,
so nothing shown is a float artefact. A sorted key list per side makes the best level O(1) and the
top N a slice; it changes only when a level appears or disappears, not when a size changes.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

from tickerterm.core.events import BookSide, Change, Level

BookState = Literal["empty", "ok", "unsafe", "resyncing"]

MAX_LEVELS = 200_000
"""Price levels kept per side: several times the deepest real book. A venue sending more does not grow
our memory: the levels past it are not kept and the book is UNSAFE (``overflow``), never silently cut."""


class OrderBook:
    """One product's book. ``state`` says whether it can be trusted (see ``mark_unsafe``)."""

    __slots__ = (
        "_ask_keys",
        "_bid_keys",
        "asks",
        "bids",
        "early",
        "exch_ts",
        "max_levels",
        "overflow",
        "product",
        "reason",
        "state",
        "updates",
        "venue",
        "version",
    )

    def __init__(self, venue: str, product: str, max_levels: int = MAX_LEVELS) -> None:
        self.venue = venue
        self.max_levels = max_levels
        self.early = False
        """An update came before any snapshot (it was not applied: the book cannot be right)."""
        self.overflow = False
        """True once a side went past ``max_levels`` (levels were not kept); cleared by a snapshot."""
        self.product = product
        self.bids: dict[float, Level] = {}
        self.asks: dict[float, Level] = {}
        self._bid_keys: list[float] = []  # negated prices, ascending: best bid first
        self._ask_keys: list[float] = []  # prices, ascending: best ask first
        self.state: BookState = "empty"
        self.reason = ""
        self.version = 0
        self.updates = 0
        self.exch_ts: float | None = None

    # --- writing ---------------------------------------------------------------------------

    def apply_snapshot(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book; the book is trustworthy again afterwards."""
        self.bids = {float(p): (p, s) for p, s in bids if float(s) != 0.0}
        self.asks = {float(p): (p, s) for p, s in asks if float(s) != 0.0}
        self._bid_keys = sorted(-k for k in self.bids)
        self._ask_keys = sorted(self.asks)
        cap = self.max_levels
        self.overflow = len(self._bid_keys) > cap or len(self._ask_keys) > cap
        if self.overflow:  # keep the best levels only; the store marks the book UNSAFE
            for k in self._bid_keys[cap:]:
                del self.bids[-k]
            for k in self._ask_keys[cap:]:
                del self.asks[k]
            del self._bid_keys[cap:], self._ask_keys[cap:]
        self.state = "ok"
        self.reason = ""
        self.early = False
        self.version += 1

    def apply(self, side: BookSide, price: str, size: str) -> None:
        """Set one level to an absolute size; a numerically-zero size removes it."""
        self.apply_changes([(side, price, size, float(price), float(size))])

    def apply_changes(self, changes: Iterable[Change]) -> None:
        """Apply level changes (one venue message) with the values the adapter already converted."""
        bids, asks, bid_keys, ask_keys = self.bids, self.asks, self._bid_keys, self._ask_keys
        cap = self.max_levels
        for side, price, size, key, value in changes:
            if side == "bid":
                levels, keys, sort_key = bids, bid_keys, -key
            else:
                levels, keys, sort_key = asks, ask_keys, key
            if value == 0.0:
                if levels.pop(key, None) is not None:
                    del keys[bisect_left(keys, sort_key)]
            else:
                if key not in levels:
                    if len(keys) >= cap:  # past any real book: not kept, and said so
                        self.overflow = True
                        continue
                    insort(keys, sort_key)
                levels[key] = (price, size)
        self.updates += 1
        self.version += 1

    def mark_unsafe(self, reason: str) -> None:
        self.state = "unsafe"
        self.reason = reason
        self.early = False
        self.version += 1

    def problem(self) -> str | None:
        """Why the book cannot be trusted as it stands, while it is not already marked so: an update
        before any snapshot, levels past the cap, a crossed book. None when nothing is wrong."""
        if self.state == "empty":
            return "update before snapshot" if self.early else None
        if self.state != "ok":
            return None
        if self.overflow:
            return f"more than {self.max_levels} price levels on a side: levels past it were not kept"
        if self.crossed:
            bid, ask = self.best_bid, self.best_ask
            assert bid is not None and ask is not None
            return f"crossed book: bid {bid[0]} >= ask {ask[0]}"
        return None

    def mark_resyncing(self) -> None:
        self.state = "resyncing"
        self.version += 1

    # --- reading ---------------------------------------------------------------------------

    @property
    def best_bid(self) -> Level | None:
        return self.bids[-self._bid_keys[0]] if self._bid_keys else None

    @property
    def best_ask(self) -> Level | None:
        return self.asks[self._ask_keys[0]] if self._ask_keys else None

    @property
    def crossed(self) -> bool:
        """True when the best bid is at or above the best ask: the book cannot be right."""
        return bool(self._bid_keys and self._ask_keys and -self._bid_keys[0] >= self._ask_keys[0])

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` bids (highest first) and asks (lowest first)."""
        bids, asks = self.bids, self.asks
        return [bids[-k] for k in self._bid_keys[:n]], [asks[k] for k in self._ask_keys[:n]]

    def spread(self) -> str | None:
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        return _plain(Decimal(ask[0]) - Decimal(bid[0]))

    def mid(self) -> str | None:
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        return _plain((Decimal(ask[0]) + Decimal(bid[0])) / 2)

    def grouped(self, step: str, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` price groups per side, ``step`` wide (e.g. ``"10"`` or ``"0.5"``).

        Bids round down and asks round up to the step, so a group never claims a better price
        than any level in it. Sizes are summed exactly.
        """
        q = Decimal(step)
        if q <= 0:
            raise ValueError(f"grouping step must be positive, got {step!r}")
        bids = _group((self.bids[-k] for k in self._bid_keys), q, ROUND_FLOOR, n)
        asks = _group((self.asks[k] for k in self._ask_keys), q, ROUND_CEILING, n)
        return bids, asks

    def levels(self, side: BookSide) -> dict[str, str]:
        """Every level of a side as ``{price: size}`` with the venue's strings (for checks and tests)."""
        book = self.bids if side == "bid" else self.asks
        return dict(book.values())

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)


def _group(levels: Iterable[Level], step: Decimal, rounding: str, n: int) -> list[Level]:
    out: list[Level] = []
    current: Decimal | None = None
    total = Decimal(0)
    for price, size in levels:
        bucket = (Decimal(price) / step).to_integral_value(rounding=rounding) * step
        if bucket != current:
            if current is not None:
                out.append((_plain(current), _plain(total)))
                if len(out) == n:
                    return out
            current, total = bucket, Decimal(0)
        total += Decimal(size)
    if current is not None and len(out) < n:
        out.append((_plain(current), _plain(total)))
    return out


def _plain(d: Decimal) -> str:
    """A decimal as plain positional text (no exponent), trailing zeros of a fraction removed."""
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
