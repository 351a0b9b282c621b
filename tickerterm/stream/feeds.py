"""Several venues at once: one ``Feed`` per venue, one store, one stream of events.

    async with tickerterm.open_feeds({"coinbase": ["BTC-USD"], "bitzoom": ["BTC-USDT"]}, sim=True) as feeds:
        async for event in feeds:      # every venue's events, each carrying its venue
            ...
        await feeds.subscribe("trade", ["BTC-USDT"], venue="bitzoom")

Each venue keeps its own connections, retry state and alert rules (a venue's trouble never stops
another's stream). What needs every venue, the consolidated book, is made here: after each frame of
any venue, and twice a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from tickerterm.core.alerts import Rule, parse_rule
from tickerterm.core.errors import ConfigError
from tickerterm.core.events import Event
from tickerterm.core.store import Store
from tickerterm.stream.feed import Derived, Feed, next_event
from tickerterm.stream.worker import Sink
from tickerterm.venues import VENUES
from tickerterm.venues.base import VenueAdapter

log = logging.getLogger(__name__)


class Feeds:
    """Venue feeds sharing one store. Build it, hand ``sink`` to each venue's ``Feed``, ``add`` them (each
    may already run), then ``start`` (``tickerterm.open_feeds`` does all of it)."""

    def __init__(
        self,
        store: Store,
        *,
        collect: bool = True,
        sink: Sink | None = None,
        derived: Derived | None = None,
        queue_size: int = 10_000,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.clock = clock
        self.feeds: dict[str, Feed] = {}
        """By venue name, in the order given."""
        self.derived = derived
        """What needs every venue's books (the consolidated book), when there is such a thing."""
        self.assets: dict[str, list[Any]] = {}
        """The consolidated assets and their markets (``core.consolidated.Member``)."""
        self.apart: list[str] = []
        """Markets of one base kept apart for their quote, in words (``core.consolidated.assets``)."""
        self._user_sink = sink
        self._queue: asyncio.Queue[list[Event] | None] | None = (
            asyncio.Queue(maxsize=queue_size) if collect and sink is None else None
        )
        self._pending: deque[Event] = deque()
        self._ended = False
        self._tasks: list[asyncio.Task[None]] = []

    # --- wiring ------------------------------------------------------------------------------

    def sink(self, events: list[Event]) -> Awaitable[None] | None:
        """Each venue's frames, as applied: what they make across venues is applied and follows them."""
        derived = self.derived
        if derived is not None:
            made = derived.check(events, self.store, self.clock())
            if made:
                self.store.apply_all(list(made))
                events = [*events, *made]
        return self._hand_on(events)

    def add(self, feed: Feed) -> None:
        name = feed.adapter.name
        if name in self.feeds:
            raise ConfigError(f"{name} is given twice")
        self.feeds[name] = feed

    async def start(self) -> None:
        """The clock of what is made across venues, and the watch that ends iteration once every venue's
        connections have ended."""
        if self.derived is not None:
            self._tasks.append(asyncio.create_task(self._clock(), name="feeds:clock"))
        self._tasks.append(asyncio.create_task(self._watch(), name="feeds:watch"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _clock(self) -> None:
        derived = self.derived
        assert derived is not None
        while True:
            await asyncio.sleep(0.5)
            try:
                made = list(derived.tick(self.store, self.clock()))
            except Exception:  # a bug here must not end the clock (nor any venue's stream): logged
                log.exception("%s failed", type(derived).__name__)
                continue
            if made:
                self.store.apply_all(made)
                result = self._hand_on(made)
                if result is not None:
                    await result

    def _hand_on(self, events: list[Event]) -> Awaitable[None] | None:
        """To the user's sink, or the queue the iteration reads (it blocks when the reader lags:
        backpressure, not loss)."""
        if self._user_sink is not None:
            return self._user_sink(events)
        if self._queue is not None:
            return self._queue.put(events)
        return None

    async def _watch(self) -> None:
        await asyncio.gather(*(feed.wait_finished() for feed in self.feeds.values()))
        if self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)

    # --- the surface of a Feed ---------------------------------------------------------------

    @property
    def products(self) -> list[str]:
        """Every venue's products, each once."""
        return list(dict.fromkeys(p for feed in self.feeds.values() for p in feed.products))

    @property
    def running(self) -> bool:
        return any(feed.running for feed in self.feeds.values())

    async def wait_finished(self) -> None:
        await asyncio.gather(*(feed.wait_finished() for feed in self.feeds.values()))

    def venue(self, venue: str | None) -> Feed:
        """The feed of ``venue`` (None: the only one); ConfigError naming the venues otherwise."""
        if venue is None and len(self.feeds) == 1:
            return next(iter(self.feeds.values()))
        feed = self.feeds.get(venue or "")
        if feed is None:
            raise ConfigError(f"say which venue: {', '.join(self.feeds)}")
        return feed

    async def subscribe(
        self, channel: str, products: Sequence[str] | None = None, venue: str | None = None
    ) -> None:
        await self.venue(venue).subscribe(channel, products)

    async def unsubscribe(
        self, channel: str, products: Sequence[str] | None = None, venue: str | None = None
    ) -> None:
        await self.venue(venue).unsubscribe(channel, products)

    def subscriptions(self) -> dict[str, list[str]]:
        """Every venue's subscriptions, channels named ``venue:channel``."""
        return {
            f"{name}:{channel}": products
            for name, feed in self.feeds.items()
            for channel, products in feed.subscriptions().items()
        }

    async def control(self, action: str, **args: Any) -> None:
        raise ConfigError("several venues do not replay")

    def add_alert(self, text: str) -> None:
        """A rule from now on, for the venue it names (``coinbase:BTC-USD > 65000``) or for every venue
        showing its product; ConfigError when it is not a rule or no venue here shows its product."""
        rule = parse_rule(text)
        adapters = {name: feed.adapter for name, feed in self.feeds.items()}
        products = {name: feed.products for name, feed in self.feeds.items()}
        for name in venues_for_rule(rule, text, adapters, products):
            self.feeds[name].add_alert(text)

    def alert_rules(self) -> list[tuple[str, bool]]:
        """Every rule as written, each once, and whether it is waiting to fire on every venue (armed)."""
        rules: dict[str, bool] = {}
        for feed in self.feeds.values():
            for text, armed in feed.alert_rules():
                rules[text] = rules.get(text, True) and armed
        return list(rules.items())

    # --- events ------------------------------------------------------------------------------

    def __aiter__(self) -> Feeds:
        return self

    async def __anext__(self) -> Event:
        return await next_event(self)


def venues_for_rule(
    rule: Rule, text: str, adapters: Mapping[str, VenueAdapter], products: Mapping[str, Sequence[str]]
) -> list[str]:
    """The venues an alert rule is for: the one it names, or every venue showing its product (a rule
    about connections: every venue). ConfigError when there is none."""
    out = []
    for name, adapter in adapters.items():
        if rule.venue not in (None, name):
            continue
        if rule.product is not None:
            try:
                product = adapter.normalize_product(rule.product)
            except ConfigError:
                continue
            if product not in products.get(name, ()):
                continue
        out.append(name)
    if not out:
        shown = f" shows {rule.product}" if rule.product else f" is {rule.venue}"
        raise ConfigError(f"alert {text!r}: no venue here ({', '.join(adapters)}){shown}")
    return out


def split_products(venues: Sequence[str], products: Iterable[str]) -> dict[str, list[str]]:
    """``--products`` for several venues: ``coinbase:BTC-USD`` for one venue, a plain product for every
    venue. A prefix that is not one of ``venues`` is part of the product (CoinAPI's ``COINBASE:BTC-USD``)."""
    out: dict[str, list[str]] = {v: [] for v in venues}
    for text in products:
        venue, sep, product = text.partition(":")
        if sep and venue in out:
            out[venue].append(product)
        elif sep and venue in VENUES:
            raise ConfigError(f"--products: {text!r} names venue {venue!r}, not one of {', '.join(venues)}")
        else:
            for v in venues:
                out[v].append(text)
    return out
