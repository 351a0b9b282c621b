"""The library surface: open a venue feed (live or on the built-in simulator) and read its events."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from tickerterm.core.events import Event
from tickerterm.core.store import Store
from tickerterm.sim import SimServer, simulator_class
from tickerterm.stream.feed import Feed
from tickerterm.stream.policy import RetryPolicy
from tickerterm.stream.worker import Sink
from tickerterm.venues import venue_class
from tickerterm.venues.session import ReplayPlan


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
    sandbox: bool = False,
    rest_url: str | None = None,
    policy: RetryPolicy | None = None,
    collect: bool = True,
    sink: Sink | None = None,
    store: Store | None = None,
    replay: ReplayPlan | None = None,
) -> AsyncIterator[Feed]:
    """A started ``Feed`` for ``venue``; with ``sim=True`` the venue is the built-in simulator on a
    loopback port (the feed's ``sim`` attribute), with a generated key for its test account."""
    cls = venue_class(venue)
    server: SimServer | None = None
    credentials: Any = None
    urls: dict[str, str] = {}
    if sim:
        server = simulator_class(cls.name)(**dict(sim_options or {}))
        credentials = server.client_credentials()  # the simulator's test account
        await server.start()
        urls = {name: server.http_url if name == "rest" else server.url for name in cls.endpoints}
    else:
        credentials = cls.load_credentials(key_file)
        if sandbox:
            urls.update(cls.sandbox_endpoints)
        if rest_url:
            urls["rest"] = rest_url
        if url:
            urls["market"] = url
            urls.setdefault("user", user_url or url)
        if user_url:
            urls["user"] = user_url
    try:
        adapter = cls(urls=urls, credentials=credentials)
        feed = Feed(
            adapter, products, channels, policy=policy, collect=collect, sink=sink, store=store, replay=replay
        )
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
