"""The consolidated book: one asset's best bid and best ask across venues.

An asset is a base and a quote (``BTC-USD``). Each venue names its markets its own way (Coinbase
``BTC-USD``, Bitzoom ``BTC-USDT``, CoinAPI ``COINBASE:BTC-USD``); the venue module says which base and
quote a product has, and only markets with the same base and the same quote are consolidated. A quote
counts as another only where the user said so (``--same-quote USDT=USD``): a stablecoin is not the
dollar, and the difference is never guessed away. Markets of the same base kept apart for their quote
are named (``apart``), so nobody wonders where a venue went.

Only books in state ``ok`` are counted; every other (UNSAFE after a gap, resyncing, empty, crossed on
its own venue, its connection down or stale) is listed as excluded with why. When the best bid across
venues equals the best ask the market is ``locked``; above it, ``crossed``: an arbitrage signal, or a
venue's stale price.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from tickerterm.core.book import OrderBook, _plain
from tickerterm.core.errors import ConfigError
from tickerterm.core.events import (
    BookDropped,
    BookResynced,
    BookResyncing,
    BookSnapshot,
    BookUnsafe,
    BookUpdate,
    Consolidated,
    Event,
    HealthEvent,
)
from tickerterm.core.store import Store

DOWN = ("stale", "retrying", "closed", "gave_up", "connecting", "idle")
"""Connection states in which a venue's book is not counted, whatever its own state says."""
_BOOK_EVENTS = (BookSnapshot, BookUpdate, BookUnsafe, BookResyncing, BookResynced, BookDropped)


@dataclass(frozen=True, slots=True)
class Member:
    """One venue's market of an asset."""

    venue: str
    product: str
    label: str
    """How it is named where it is shown: the venue, or ``venue product`` where a venue lists two."""


def parse_same_quote(texts: Iterable[str]) -> dict[str, str]:
    """``["USDT=USD", "USDC=USD"]`` -> ``{"USDT": "USD", "USDC": "USD"}`` (ConfigError naming the form)."""
    out: dict[str, str] = {}
    for text in texts:
        quote, sep, counts_as = (part.strip().upper() for part in text.partition("="))
        if not sep or not quote.replace("-", "").isalnum() or not counts_as.replace("-", "").isalnum():
            raise ConfigError(f"--same-quote: {text!r} is not QUOTE=QUOTE (such as USDT=USD)")
        if quote == counts_as:
            raise ConfigError(f"--same-quote: {text!r} maps a quote to itself")
        out[quote] = counts_as
    return out


def assets(
    markets: Iterable[tuple[str, str, tuple[str, str] | None]], same_quote: Mapping[str, str]
) -> tuple[dict[str, list[Member]], list[str]]:
    """Which markets make which consolidated asset: ``markets`` are ``(venue, product, (base, quote))``
    (None: the venue cannot say, the market is not consolidated). Returns the assets listed on two
    markets or more, and a line for each base whose markets are kept apart for their quote."""
    by_asset: dict[str, list[tuple[str, str]]] = {}
    quotes: dict[str, dict[str, list[str]]] = {}
    for venue, product, pair in markets:
        if pair is None:
            continue
        base, quote = pair
        quote = same_quote.get(quote, quote)
        by_asset.setdefault(f"{base}-{quote}", []).append((venue, product))
        quotes.setdefault(base, {}).setdefault(quote, []).append(f"{venue} {product}")
    out: dict[str, list[Member]] = {}
    for asset, pairs in by_asset.items():
        if len(pairs) < 2:
            continue
        venues = [v for v, _ in pairs]
        out[asset] = [Member(v, p, v if venues.count(v) == 1 else f"{v} {p}") for v, p in pairs]
    apart = []
    for base, by_quote in quotes.items():
        if len(by_quote) > 1:
            ranked = sorted(by_quote, key=lambda q: -len(by_quote[q]))
            maps = " ".join(f"{q}={ranked[0]}" for q in ranked[1:])
            apart.append(f"{base}: quotes {', '.join(ranked)} kept apart (--same-quote {maps} joins them)")
    return out, apart


def why_not(store: Store, member: Member) -> str | None:
    """Why ``member``'s book is not counted, or None when it is."""
    book = store.books.get((member.venue, member.product))
    if book is None or book.state == "empty":
        return "no book yet"
    if book.state == "unsafe":
        return f"UNSAFE: {book.reason}" if book.reason else "UNSAFE"
    if book.state == "resyncing":  # being rebuilt: why it had to be
        return f"RESYNCING: {book.reason}" if book.reason else "RESYNCING"
    if book.crossed:
        return "crossed on its own venue"
    for h in store.health.values():
        if h.venue == member.venue and _market_connection(h.conn, member.venue) and h.state in DOWN:
            return f"connection {h.state.replace('_', ' ')}"
    return None


def _market_connection(conn: str, venue: str) -> bool:
    return conn == venue or conn.startswith(venue + "#")


def consolidate(store: Store, asset: str, members: Sequence[Member], now: float) -> Consolidated:
    """The best bid and ask across the trusted books of ``members``, who holds each, and what was left out."""
    out = Consolidated("*", now, asset)
    best_bid: tuple[Decimal, str, str, str] | None = None
    best_ask: tuple[Decimal, str, str, str] | None = None
    for m in members:
        reason = why_not(store, m)
        if reason is not None:
            out.excluded.append({"venue": m.label, "product": m.product, "reason": reason})
            continue
        out.counted.append(m.label)
        book = store.books[(m.venue, m.product)]
        bid, ask = book.best_bid, book.best_ask
        if bid is not None:
            value = Decimal(bid[0])
            if best_bid is None or value > best_bid[0]:  # a tie stays with the first venue listed
                best_bid = (value, bid[0], bid[1], m.label)
        if ask is not None:
            value = Decimal(ask[0])
            if best_ask is None or value < best_ask[0]:
                best_ask = (value, ask[0], ask[1], m.label)
    if best_bid is not None:
        _, out.bid, out.bid_size, out.bid_venue = best_bid
    if best_ask is not None:
        _, out.ask, out.ask_size, out.ask_venue = best_ask
    if best_bid is None and best_ask is None:
        out.market = "empty"
    elif best_bid is None or best_ask is None:
        out.market = "one-sided"
    else:
        spread = best_ask[0] - best_bid[0]
        out.spread = _plain(spread)
        out.market = "crossed" if spread < 0 else "locked" if spread == 0 else "normal"
    return out


def depth(
    store: Store, members: Sequence[Member], n: int
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]], list[tuple[str, str]]]:
    """The consolidated ladder: the best ``n`` levels from every counted book, each ``(price, size,
    venue)``, bids highest first and asks lowest first (one price on two venues: two rows); and the
    ``(venue, reason)`` of every book left out."""
    bids: list[tuple[Decimal, str, str, str]] = []
    asks: list[tuple[Decimal, str, str, str]] = []
    excluded: list[tuple[str, str]] = []
    for m in members:
        reason = why_not(store, m)
        if reason is not None:
            excluded.append((m.label, reason))
            continue
        book: OrderBook = store.books[(m.venue, m.product)]
        top_bids, top_asks = book.top(n)
        bids += [(Decimal(p), p, s, m.label) for p, s in top_bids]
        asks += [(Decimal(p), p, s, m.label) for p, s in top_asks]
    bids.sort(key=lambda level: -level[0])
    asks.sort(key=lambda level: level[0])
    return [b[1:] for b in bids[:n]], [a[1:] for a in asks[:n]], excluded


class Consolidator:
    """Says a ``Consolidated`` event for each asset whose best bid/ask, or whose counted and excluded
    venues, changed: after each frame that touched one of its books or connections (``check``), and on
    the clock (``tick``: a connection that went stale without a frame)."""

    def __init__(self, groups: Mapping[str, Sequence[Member]]) -> None:
        self.groups = {asset: list(members) for asset, members in groups.items()}
        self._by_book: dict[tuple[str, str], list[str]] = {}
        self._by_venue: dict[str, list[str]] = {}
        for asset, members in self.groups.items():
            for m in members:
                self._by_book.setdefault((m.venue, m.product), []).append(asset)
                venue_assets = self._by_venue.setdefault(m.venue, [])
                if asset not in venue_assets:
                    venue_assets.append(asset)
        self._said: dict[str, tuple[object, ...]] = {}

    def check(self, events: list[Event], store: Store, now: float) -> list[Event]:
        if not self.groups:
            return []
        touched: dict[str, None] = {}
        by_book, by_venue = self._by_book, self._by_venue
        for ev in events:
            if isinstance(ev, _BOOK_EVENTS):
                for asset in by_book.get((ev.venue, ev.product), ()):
                    touched[asset] = None
            elif isinstance(ev, HealthEvent):
                for asset in by_venue.get(ev.venue, ()):
                    touched[asset] = None
        return self._say(touched, store, now)

    def tick(self, store: Store, now: float) -> list[Event]:
        return self._say(dict.fromkeys(self.groups), store, now)

    def _say(self, assets: Iterable[str], store: Store, now: float) -> list[Event]:
        out: list[Event] = []
        for asset in assets:
            c = consolidate(store, asset, self.groups[asset], now)
            said = (c.bid, c.bid_size, c.bid_venue, c.ask, c.ask_size, c.ask_venue, c.counted, c.excluded)
            if self._said.get(asset) != said:
                self._said[asset] = said
                out.append(c)
        return out
