"""Dashboard test support: the app wired to the simulator, and a frozen, seeded store for snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from tickerterm.core.clock import FrozenClock
from tickerterm.core.events import (
    BookSnapshot,
    BookUnsafe,
    Closed,
    Connected,
    Connecting,
    Gap,
    ReplayState,
    RetryScheduled,
    Subscribed,
    Ticker,
    Trade,
)
from tickerterm.core.store import Store
from tickerterm.sim.coinbase import CoinbaseSim
from tickerterm.sim.market import Market
from tickerterm.stream.feed import Feed
from tickerterm.ui.app import TickertermApp
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade

from .conftest import fast_policy

CHANNELS = {"ticker": "ticker", "book": "level2", "trades": "market_trades", "candles": "candles"}
NOW = 1714564800.0


def live_app(sim: CoinbaseSim, products: list[str], **kwargs: Any) -> TickertermApp:
    """The real app on a real feed to the simulator over loopback."""

    def opener(store: Store) -> Feed:
        adapter = CoinbaseAdvancedTrade(urls={"market": sim.url, "user": sim.url})
        return Feed(
            adapter, products, list(CHANNELS.values()), policy=fast_policy(), collect=False, store=store
        )

    return TickertermApp(
        opener, venue="coinbase", products=products, channels=CHANNELS, simulated=True, **kwargs
    )


async def until(pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await pilot.pause(0.02)


class StaticFeed:
    """A feed whose store is prepared in advance (for deterministic snapshots)."""

    def __init__(self, store: Store, products: list[str], channels: dict[str, str] | None = None) -> None:
        self.store = store
        self.products = products
        self.subs = {c: list(products) for c in (channels or CHANNELS).values()} | {"heartbeats": []}
        self.calls: list[tuple[str, str, list[str] | None]] = []

    async def __aenter__(self) -> StaticFeed:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def subscribe(self, channel: str, products: list[str] | None = None) -> None:
        self.calls.append(("subscribe", channel, products))
        self.subs[channel] = list(products or self.products)

    async def unsubscribe(self, channel: str, products: list[str] | None = None) -> None:
        self.calls.append(("unsubscribe", channel, products))
        self.subs.pop(channel, None)

    async def control(self, action: str, **args: Any) -> None:
        self.calls.append(("control", action, args))  # type: ignore[arg-type]

    def subscriptions(self) -> dict[str, list[str]]:
        return {c: list(p) for c, p in self.subs.items()}


def venue_scene(venue: str) -> tuple[list[str], dict[str, str]]:
    """A venue's first three simulator products and its channel per panel kind."""
    from tickerterm.sim import simulator_class
    from tickerterm.venues import venue_class

    if venue == "coinbase":
        return ["BTC-USD", "ETH-USD", "SOL-USD"], dict(CHANNELS)
    adapter = venue_class(venue)()
    channels = {}
    for kind in ("ticker", "book", "trades", "candles"):
        spec = adapter.channel_for_kind(kind)
        if spec is not None:
            channels[kind] = spec.name
    products = [spec.product for spec in simulator_class(venue).default_products[:3]]
    return products, channels


def seeded_store(
    state: str = "normal", venue: str = "coinbase", store: Store | None = None
) -> tuple[Store, FrozenClock]:
    """A store filled from the seeded simulator market with a frozen clock. ``state``: ``normal``,
    ``unsafe`` (the first book lost a message), ``reconnecting`` (the connection dropped) or ``replay``
    (history being replayed). Every venue: its own products, and tickers only where it has them."""
    clock = FrozenClock(NOW)
    store = store or Store(clock=clock)
    products, channels = venue_scene(venue)
    from tickerterm.sim import simulator_class

    specs = [s for s in simulator_class(venue).default_products if s.product in products]
    start = NOW - 3600
    conn = venue
    store.apply(Connecting(venue, start, conn, "ws://127.0.0.1:8765", 1))
    store.apply(Connected(venue, start + 0.01, conn, "ws://127.0.0.1:8765"))
    store.apply(
        Subscribed(
            venue,
            start + 0.02,
            conn,
            {"heartbeats": ["heartbeats"], **{c: [s.product for s in specs] for c in channels.values()}},
        )
    )
    health = store.health[conn]
    for spec in specs:
        market = Market(spec, 11, depth=300)
        for i in range(2400):
            ts = start + i * 1.5
            step = market.step(ts)
            for t in step.trades:
                side = "sell" if t.maker_side == "bid" else "buy"
                store.apply(Trade(venue, ts, spec.product, ts, str(t.trade_id), t.price, t.size, side))
        bids, asks = market.snapshot_levels()
        store.apply(BookSnapshot(venue, NOW - 0.5, spec.product, NOW - 0.5, bids, asks))
        bb, ba = market.best_bid(), market.best_ask()
        if "ticker" in channels:
            perpetual = venue == "bitzoom"
            store.apply(
                Ticker(
                    venue,
                    NOW - 0.5,
                    spec.product,
                    NOW - 0.5,
                    price=market.price_text(market.last_price),
                    bid=market.price_text(bb),
                    bid_size=market.size_text(market.bids[bb]),
                    ask=market.price_text(ba),
                    ask_size=market.size_text(market.asks[ba]),
                    volume_24h=market.size_text(market.volume_24h),
                    change_pct_24h="1.25",
                    mark=market.price_text(market.last_price) if perpetual else None,
                    funding_rate="0.00010000" if perpetual else None,
                    next_funding=NOW + 3 * 3600 + 12 * 60 if perpetual else None,
                )
            )
    for i in range(400):
        health.note_message(NOW - 4 + i * 0.01, NOW - 4 + i * 0.01 - 0.003 - (i % 7) * 0.001)
    first = specs[0].product
    if state == "unsafe":
        store.apply(Gap(venue, NOW - 0.2, conn, 9120, 9124, "connection"))
        store.apply(BookUnsafe(venue, NOW - 0.2, conn, first, "sequence gap: expected 9120, got 9124"))
    elif state == "reconnecting":
        store.apply(Closed(venue, NOW - 1.0, conn, 1011, "server internal error"))
        for spec in specs:
            store.apply(
                BookUnsafe(venue, NOW - 1.0, conn, spec.product, "connection lost: server internal error")
            )
        store.apply(RetryScheduled(venue, NOW - 1.0, conn, 1, 0.8, "server internal error"))
        store.apply(Connecting(venue, NOW - 0.2, conn, "ws://127.0.0.1:8765", 2))
        store.apply(Closed(venue, NOW - 0.1, conn, 1006, "dropped, no close frame"))
        store.apply(RetryScheduled(venue, NOW - 0.1, conn, 2, 1.7, "dropped, no close frame"))
    elif state == "replay":
        store.apply(ReplayState(venue, NOW, conn, "started", first, NOW - 1800, NOW - 3000, NOW - 300, 20.0))
    return store, clock


def static_app(state: str = "normal", venue: str = "coinbase", **kwargs: Any) -> TickertermApp:
    from tickerterm.venues import venue_class

    store, clock = seeded_store(state, venue)
    products, channels = venue_scene(venue)
    feed = StaticFeed(store, products, channels)
    kwargs.setdefault("intervals", venue_class(venue).candle_intervals)
    return TickertermApp(
        lambda _store: feed,
        venue=venue,
        products=products,
        channels=channels,
        simulated=True,
        clock=clock,
        store=store,
        replay=state == "replay",
        **kwargs,
    )


SEVERAL = ("coinbase", "bitzoom", "coinapi")


def several_app(unsafe: str | None = "bitzoom", **kwargs: Any) -> TickertermApp:
    """Three venues' seeded markets on one store (``unsafe``'s first book lost a message), BTC on each
    consolidated with USDT counted as USD, behind static feeds."""
    from tickerterm.core.consolidated import Consolidator, assets
    from tickerterm.ui.widgets import VenueView
    from tickerterm.venues import venue_class

    clock = FrozenClock(NOW)
    store = Store(clock=clock)
    views: dict[str, VenueView] = {}
    feeds: dict[str, StaticFeed] = {}
    for venue in SEVERAL:
        seeded_store("unsafe" if venue == unsafe else "normal", venue, store)
        products, channels = venue_scene(venue)
        products = products[:2]
        views[venue] = VenueView(products, channels)
        feeds[venue] = StaticFeed(store, products, channels)
    markets = [(v, p, venue_class(v)().base_quote(p)) for v, view in views.items() for p in view.products]
    groups, apart = assets(markets, {"USDT": "USD"})
    store.apply_all(list(Consolidator(groups).tick(store, NOW)))

    class SeveralFeeds:  # what the app reads of a ``tickerterm.Feeds``
        def __init__(self) -> None:
            self.store, self.feeds, self.assets, self.apart = store, feeds, groups, apart
            self.products = [p for v in views.values() for p in v.products]

        async def __aenter__(self) -> SeveralFeeds:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        def subscriptions(self) -> dict[str, list[str]]:
            return {}

    first = views[SEVERAL[0]]
    return TickertermApp(
        lambda _store: SeveralFeeds(),  # type: ignore[arg-type,return-value]
        venue=SEVERAL[0],
        products=first.products,
        channels=first.channels,
        simulated=True,
        clock=clock,
        store=store,
        venues=views,
        **kwargs,
    )
