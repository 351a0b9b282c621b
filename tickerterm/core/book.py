"""An L2 order book that keeps the venue's exact decimal strings.

Levels are keyed by the float value of the price (two spellings of one number, ``"1.50"`` and
``"1.5"``, are one level), and each keeps the price and size strings exactly as the venue sent them,
so nothing shown is a float artefact.

The crossed-book check runs after every frame that set a level at or through the other side's best (the
C loop says so as it sets them: a level that goes cannot cross a book), the top N only when a screen
draws. Each side is a ``native.Levels``: its levels kept sorted, best first, in blocks of a few dozen
(in C where it was built): a level is found by binary search and set or removed by moving at most one
block's entries, the best N are the first N, and no tuple is made per level but for what is read.
(The first sessions kept a dict and a heap of prices per side: each update hashed its price for the
dict and a set, and the heap kept gone prices until they reached the top; a single sorted list had
cost a memmove of the whole list on every level that came or went. bench/README.md has the figures.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from heapq import nlargest, nsmallest
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
        self.bids = native.Levels(True)
        """The bids, best (highest) first: a read-only mapping of a price's value to ``(price, size)``."""
        self.asks = native.Levels(False)
        """The asks, best (lowest) first."""
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
        new_bids = {float(p): (p, s) for p, s in bids if float(s) != 0.0}
        new_asks = {float(p): (p, s) for p, s in asks if float(s) != 0.0}
        cap = self.max_levels
        self.overflow = len(new_bids) > cap or len(new_asks) > cap
        if self.overflow:  # keep the best levels only; the store marks the book UNSAFE
            new_bids = {k: new_bids[k] for k in nlargest(cap, new_bids)}
            new_asks = {k: new_asks[k] for k in nsmallest(cap, new_asks)}
        self.bids.fill(new_bids)
        self.asks.fill(new_asks)
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
        # the per-change loop: native.apply_levels (in C where it was built, else its Python twin)
        flags = native.apply_levels(changes, self.bids, self.asks, self.max_levels)
        if flags:
            if flags & native.OVERFLOW:
                self.overflow = True
            if flags & native.REACHED:
                self.suspect = True
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

    @property
    def best_bid(self) -> Level | None:
        top = self.bids.top(1)
        return top[0] if top else None

    @property
    def best_ask(self) -> Level | None:
        top = self.asks.top(1)
        return top[0] if top else None

    @property
    def crossed(self) -> bool:
        """True when the best bid is at or above the best ask: the book cannot be right."""
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid >= ask

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` bids (highest first) and asks (lowest first)."""
        return self.bids.top(n), self.asks.top(n)

    def _in_order(self, side: BookSide) -> Iterator[Level]:
        """A side's levels best first, read a few at a time (a grouped ladder reads only what it shows)."""
        levels = self.bids if side == "bid" else self.asks
        done, n = 0, 64
        while True:
            batch = levels.top(n)
            yield from batch[done:]
            if len(batch) < n:
                return
            done, n = n, 4 * n

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
        return dict((self.bids if side == "bid" else self.asks).values())

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
