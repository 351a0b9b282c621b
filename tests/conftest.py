"""Shared helpers: a fast simulator, a feed wired to it over a real loopback socket, and waits that
consume events (never sleeps) until a condition holds."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from tickerterm.core.events import BookResynced, Event, Heartbeat
from tickerterm.sim.coinbase import CoinbaseSim, CoinbaseSimConnection
from tickerterm.sim.faults import Faults
from tickerterm.sim.server import SimTiming
from tickerterm.stream.feed import Feed
from tickerterm.stream.policy import RetryPolicy
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade

os.environ["TZ"] = "UTC"  # times on screen (tape, chart axis) must not depend on where tests run
time.tzset()
# nor on the developer's own config file, TICKERTERM_* variables or remembered theme: every test (and
# every command it starts) sees an empty config and state directory of its own
_HOME = tempfile.mkdtemp(prefix="tickerterm-tests-")
os.environ["XDG_CONFIG_HOME"] = os.path.join(_HOME, "config")
os.environ["XDG_STATE_HOME"] = os.path.join(_HOME, "state")
for _name in [n for n in os.environ if n.startswith("TICKERTERM_") and n != "TICKERTERM_TEST_POSTGRES"]:
    del os.environ[_name]

FAST = SimTiming(
    l2_batch=0.01,
    heartbeat=0.05,
    trades_batch=0.02,
    candles=0.1,
    ticker_batch=0.2,
    user=0.1,
    status=1.0,
    subscribe_deadline=5.0,
)


def fast_policy(**overrides: Any) -> RetryPolicy:
    options: dict[str, Any] = dict(
        base=0.01,
        factor=2.0,
        cap=0.05,
        jitter=0.5,
        budget=5,
        short_lived=5.0,
        min_after_short=0.02,
        stable_after=30.0,
        open_timeout=2.0,
        resync_timeout=3.0,
        stale_after=0.6,
    )
    options.update(overrides)
    return RetryPolicy(**options)


def make_sim(**kwargs: Any) -> CoinbaseSim:
    options: dict[str, Any] = dict(rate=400.0, depth=300, seed=7, timing=FAST, faults=Faults())
    options.update(kwargs)
    return CoinbaseSim(**options)


@pytest.fixture
async def sim() -> AsyncIterator[CoinbaseSim]:
    async with make_sim() as server:
        yield server  # type: ignore[misc]


def make_feed(sim: CoinbaseSim, products: list[str], channels: list[str], **kwargs: Any) -> Feed:
    credentials = kwargs.pop("credentials", None)
    policy = kwargs.pop("policy", None) or fast_policy()
    adapter = CoinbaseAdvancedTrade(urls={"market": sim.url, "user": sim.url}, credentials=credentials)
    return Feed(adapter, products, channels, policy=policy, seed=3, **kwargs)


async def take_until(feed: Feed, pred: Callable[[Event], bool], timeout: float = 10.0) -> list[Event]:
    """Consume events until one satisfies ``pred``; returns every event consumed (that one last)."""
    seen: list[Event] = []
    async with asyncio.timeout(timeout):
        async for ev in feed:
            seen.append(ev)
            if pred(ev):
                return seen
    raise AssertionError(f"feed ended before the condition held; last events: {seen[-5:]}")


def market_connection(sim: CoinbaseSim) -> CoinbaseSimConnection:
    conns = [c for c in sim.connections if isinstance(c, CoinbaseSimConnection) and "level2" in c.subs]
    assert conns, "no simulator connection carries level2"
    return conns[-1]


async def settle(feed: Feed, sim: CoinbaseSim, timeout: float = 10.0) -> list[Event]:
    """Pause the market and consume until the client has everything the simulator sent before the pause
    (a heartbeat generated after the pause has arrived) and every book is trusted again."""
    seen: list[Event] = []
    async with asyncio.timeout(timeout):
        while True:
            sim.pause()
            conn = market_connection(sim)
            target = conn.heartbeat_counter
            seen += await take_until(
                feed,
                lambda e: isinstance(e, Heartbeat) and e.conn == "coinbase" and (e.counter or 0) > target,
                timeout,
            )
            states = {b.product: b.state for b in feed.store.books.values()}
            if all(s == "ok" for s in states.values()):
                return seen
            sim.resume()
            seen += await take_until(feed, lambda e: isinstance(e, BookResynced), timeout)


def assert_book_matches(feed: Feed, sim: CoinbaseSim, product: str) -> None:
    book = feed.store.book("coinbase", product)
    true_bids, true_asks = sim.market(product).book_text()
    assert book.state == "ok", (book.state, book.reason)
    assert book.levels("bid") == true_bids
    assert book.levels("ask") == true_asks
    assert len(true_bids) > 100 and len(true_asks) > 100


async def take_products(feed: Feed, cls: type, products: list[str], timeout: float = 10.0) -> list[Event]:
    """Consume events until one of type ``cls`` has been seen for each of ``products``."""
    got: set[str] = set()

    def pred(e: Event) -> bool:
        if isinstance(e, cls):
            got.add(e.product)  # type: ignore[attr-defined]
        return got >= set(products)

    return await take_until(feed, pred, timeout)


ExactBook = tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]


def sim_book(sim: Any, product: str) -> ExactBook:
    """The simulator's true book as exact numbers per side (venues spell sizes differently)."""
    bids, asks = sim.market(product).book_text()
    return (
        {Decimal(p): Decimal(s) for p, s in bids.items()},
        {Decimal(p): Decimal(s) for p, s in asks.items()},
    )


def feed_book(feed: Feed, venue: str, product: str) -> ExactBook:
    """The book a feed built, as exact numbers per side."""
    book = feed.store.book(venue, product)
    bids, asks = book.levels("bid"), book.levels("ask")
    return (
        {Decimal(p): Decimal(s) for p, s in bids.items()},
        {Decimal(p): Decimal(s) for p, s in asks.items()},
    )


async def settle_books(
    feed: Feed,
    sim: Any,
    venue: str,
    products: list[str],
    after_pause: Callable[[Event, float], bool],
    count: int,
    timeout: float = 15.0,
) -> None:
    """Pause the market; once ``count`` events for which ``after_pause(event, paused_at)`` holds have come
    (a venue's heartbeats or periodic frames stamped after the pause: every batch before them is in),
    every book must be trusted — else resume until a resync and try again."""
    async with asyncio.timeout(timeout):
        while True:
            sim.pause()
            paused = sim.clock()
            seen = 0

            def enough(e: Event) -> bool:
                nonlocal seen
                seen += after_pause(e, paused)
                return seen >= count

            await take_until(feed, enough, timeout)
            if all(feed.store.book(venue, p).state == "ok" for p in products):
                return
            sim.resume()
            await take_until(feed, lambda e: isinstance(e, BookResynced), timeout)


POSTGRES = os.environ.get("TICKERTERM_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")
"""The PostgreSQL server tests record into (the machines run one; CI uses it)."""


async def postgres_or_skip() -> str:
    """The test server's DSN; without a server the test is skipped with one line, or fails under CI."""
    import asyncpg

    try:
        conn = await asyncpg.connect(POSTGRES, timeout=5)
    except Exception as exc:
        reason = f"no PostgreSQL at {POSTGRES} ({type(exc).__name__}: {exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must have one")
        pytest.skip(reason)
    await conn.close()
    return POSTGRES


NATS_URL = os.environ.get("TICKERTERM_TEST_NATS", "nats://127.0.0.1:4222")
"""The NATS server with JetStream the relay tests publish to (the machines run one; CI uses it)."""


async def nats_or_skip() -> str:
    """The test broker's URL once it answers with JetStream; without one the test is skipped with one
    line, or fails under CI."""
    import nats

    try:
        nc = await nats.connect(NATS_URL, connect_timeout=3, allow_reconnect=False, max_reconnect_attempts=0)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()
    except Exception as exc:
        reason = f"no NATS with JetStream at {NATS_URL} ({type(exc).__name__}: {exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must have one")
        pytest.skip(reason)
    return NATS_URL
