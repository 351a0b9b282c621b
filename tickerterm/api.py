"""The library surface: open a venue feed (live or on the built-in simulator) and read its events."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from tickerterm.core.events import Event
from tickerterm.core.store import Store
from tickerterm.sim import SimServer, simulator_class
from tickerterm.sim.keys import generate_cdp_key
from tickerterm.stream.feed import Feed
from tickerterm.stream.policy import RetryPolicy
from tickerterm.stream.worker import Sink
from tickerterm.venues import venue_class
from tickerterm.venues.auth import load_cdp_key


@contextlib.asynccontextmanager
async def open_feed(
    venue: str,
    products: Sequence[str],
    channels: Iterable[str] | None = None,
    *,
    url: str | None = None,
    user_url: str | None = None,
    sim: bool = False,
    sim_options: dict[str, Any] | None = None,
    key_file: str | None = None,
    policy: RetryPolicy | None = None,
    collect: bool = True,
    sink: Sink | None = None,
    store: Store | None = None,
) -> AsyncIterator[Feed]:
    """A started ``Feed`` for ``venue``; with ``sim=True`` the venue is the built-in simulator on a
    loopback port (the feed's ``sim`` attribute), with a generated key for its test account."""
    cls = venue_class(venue)
    server: SimServer | None = None
    credentials: Any = None
    urls: dict[str, str] = {}
    if sim:
        options = dict(sim_options or {})
        key, public = generate_cdp_key("ES256")
        options.setdefault("public_keys", {key.name: public})
        server = simulator_class(cls.name)(**options)
        await server.start()
        urls = dict.fromkeys(cls.endpoints, server.url)
        credentials = key
    else:
        credentials = load_cdp_key(key_file=key_file) if cls.name == "coinbase" else None
        if url:
            urls["market"] = url
            urls.setdefault("user", user_url or url)
        if user_url:
            urls["user"] = user_url
    try:
        adapter = cls(urls=urls, credentials=credentials)
        feed = Feed(adapter, products, channels, policy=policy, collect=collect, sink=sink, store=store)
        feed.sim = server  # type: ignore[attr-defined]
        async with feed:
            yield feed
    finally:
        if server is not None:
            await server.stop()


async def stream(
    venue: str,
    products: Sequence[str],
    channels: Iterable[str] | None = None,
    **options: Any,
) -> AsyncIterator[Event]:
    """Every normalized event of a venue feed, as it is applied::

    async for event in tickerterm.stream("coinbase", ["BTC-USD"], ["level2"], sim=True):
        print(event)
    """
    async with open_feed(venue, products, channels, **options) as feed:
        async for event in feed:
            yield event
