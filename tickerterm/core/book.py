"""An L2 order book that keeps the venue's exact decimal strings.

Levels are keyed by the float value of the price (two spellings of one number, ``"1.50"`` and
``"1.5"``, are one level), and each keeps the price and size strings exactly as the venue sent them,
so nothing shown is a float artefact.

The crossed-book check runs after every frame that set a level at or through the other side's top (the
C loop says so as it sets them: a level that goes cannot cross a book), the top N only when a screen
draws.
So each side keeps a heap of its prices beside the dict: a new level is one push, a level that goes
costs nothing until it reaches the top (then one pop), a size change touches the dict alone. The heap
holds each price once (a set says which), live or gone; it is rebuilt from the dict when it holds
twice the live levels, so it stays bounded. The top N is read by walking down the heap.
(A sorted list per side cost a bisect and a memmove of the list on every level that came or went:
a quarter of the book's time on a 2,000-level book, bench/README.md.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from heapq import heapify, nlargest, nsmallest
from typing import Literal

from tickerterm.core import native
from tickerterm.core.events import BookSide, Change, Level

BookState = Literal["empty", "ok", "unsafe", "resyncing"]

MAX_LEVELS = 200_000
"""Price levels kept per side: several times the deepest real book. A venue sending more does not grow
our memory: the levels past it are not kept and the book is UNSAFE (``overflow``), never silently cut."""


class OrderBook:
    """One product's book. ``state`` says whether it can be trusted (see ``mark_unsafe``)."""

    __slots__ = (
        "_ask_heap",
        "_ask_held",
        "_bid_heap",
        "_bid_held",
        "asks",
        "bids",
        "early",
        "exch_ts",
        "max_levels",
        "overflow",
        "product",
        "reason",
        "recv_ts",
        "state",
        "suspect",
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
        self._bid_heap: list[float] = []  # negated prices: the best bid on top (see the module docstring)
        self._ask_heap: list[float] = []  # prices: the best ask on top
        self._bid_held: set[float] = set()  # the prices each heap holds (live or gone), each once
        self._ask_held: set[float] = set()
        self.state: BookState = "empty"
        self.suspect = True
        """The book may have crossed since ``problem`` last found it not crossed."""
        self.reason = ""
        self.version = 0
        self.updates = 0
        self.exch_ts: float | None = None
        self.recv_ts = 0.0
        """When the last frame that changed it was received (the store sets it with ``exch_ts``)."""

    # --- writing ---------------------------------------------------------------------------

    def apply_snapshot(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book; the book is trustworthy again afterwards."""
        self.bids = {float(p): (p, s) for p, s in bids if float(s) != 0.0}
        self.asks = {float(p): (p, s) for p, s in asks if float(s) != 0.0}
        cap = self.max_levels
        self.overflow = len(self.bids) > cap or len(self.asks) > cap
        if self.overflow:  # keep the best levels only; the store marks the book UNSAFE
            self.bids = {k: self.bids[k] for k in nlargest(cap, self.bids)}
            self.asks = {k: self.asks[k] for k in nsmallest(cap, self.asks)}
        self._rebuild("bid")
        self._rebuild("ask")
        self.state = "ok"
        self.suspect = True
        self.reason = ""
        self.early = False
        self.version += 1

    def apply(self, side: BookSide, price: str, size: str) -> None:
        """Set one level to an absolute size; a numerically-zero size removes it."""
        self.apply_changes([(side, price, size, float(price), float(size))])

    def apply_changes(self, changes: Sequence[Change]) -> None:
        """Apply level changes (one venue message) with the values the adapter already converted."""
        bids, asks, bid_heap, ask_heap = self.bids, self.asks, self._bid_heap, self._ask_heap
        # the per-change loop: native.apply_levels (in C where it was built, else its Python twin)
        flags = native.apply_levels(
            changes, bids, asks, bid_heap, ask_heap, self._bid_held, self._ask_held, self.max_levels
        )
        if flags:
            if flags & native.OVERFLOW:
                self.overflow = True
            if flags & native.REACHED:
                self.suspect = True
            if flags & native.HEAPED:  # many gone prices in a heap
                self._rebuild("bid")
            if flags & native.HEAPED << 1:
                self._rebuild("ask")
        self.updates += 1
        self.version += 1

    def _rebuild(self, side: BookSide) -> None:
        """A side's heap made again from its live levels (in place: callers may hold it)."""
        if side == "bid":
            heap, held, levels, sign = self._bid_heap, self._bid_held, self.bids, -1.0
        else:
            heap, held, levels, sign = self._ask_heap, self._ask_held, self.asks, 1.0
        heap[:] = [sign * k for k in levels]
        heapify(heap)
        held.clear()
        held.update(levels)

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
        if self.suspect:
            if self.crossed:
                bid, ask = self.best_bid, self.best_ask
                assert bid is not None and ask is not None
                return f"crossed book: bid {bid[0]} >= ask {ask[0]}"
            self.suspect = False
        return None

    def mark_resyncing(self) -> None:
        self.state = "resyncing"
        self.version += 1

    # --- reading ---------------------------------------------------------------------------

    def _best_bid_key(self) -> float | None:
        return native.best_key(self._bid_heap, self.bids, self._bid_held, True)

    def _best_ask_key(self) -> float | None:
        return native.best_key(self._ask_heap, self.asks, self._ask_held, False)

    @property
    def best_bid(self) -> Level | None:
        key = self._best_bid_key()
        return None if key is None else self.bids[key]

    @property
    def best_ask(self) -> Level | None:
        key = self._best_ask_key()
        return None if key is None else self.asks[key]

    @property
    def crossed(self) -> bool:
        """True when the best bid is at or above the best ask: the book cannot be right."""
        bid, ask = self._best_bid_key(), self._best_ask_key()
        return bid is not None and ask is not None and bid >= ask

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` bids (highest first) and asks (lowest first)."""
        return self._top("bid", n), self._top("ask", n)

    def _top(self, side: BookSide, n: int) -> list[Level]:
        # ``_walk``'s first n levels in one call: native.top_levels, in C where it was built
        if side == "bid":
            self._best_bid_key()  # gone prices above the best popped first, as ``_walk`` does
            out, gone = native.top_levels(self._bid_heap, self.bids, n, True)
        else:
            self._best_ask_key()
            out, gone = native.top_levels(self._ask_heap, self.asks, n, False)
        if gone > 16 + n:  # gone prices among the best levels: walked past on every read until rebuilt
            self._rebuild(side)
        return out

    def _in_order(self, side: BookSide) -> Iterator[Level]:
        return (level for level in self._walk(side) if level is not None)

    def _walk(self, side: BookSide) -> Iterator[Level | None]:
        """A side's levels best first (``native.heap_walk``: None for a price that has gone), the gone
        prices above the best popped first; ``_top`` rebuilds a heap with many among the best."""
        if side == "bid":
            self._best_bid_key()
            return native.heap_walk(self._bid_heap, self.bids, True)
        self._best_ask_key()
        return native.heap_walk(self._ask_heap, self.asks, False)

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
        bids = _group(self._in_order("bid"), q, ROUND_FLOOR, n)
        asks = _group(self._in_order("ask"), q, ROUND_CEILING, n)
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
