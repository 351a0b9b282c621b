"""A frame whose changes are lost although its sequence number is not (a spoiled value) never leaves a
wrong book shown as good: the book is marked UNSAFE, rebuilt, and ends equal to the venue's true book.
Every venue with a book, on its simulator, over a real socket (``corrupt`` fault)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import assert_book_matches, make_feed, make_sim, settle, take_until
from tests.test_bitzoom import bitzoom_feed, make_bitzoom_sim
from tests.test_bitzoom import client_book as bitzoom_book
from tests.test_bitzoom import settle as settle_bitzoom
from tests.test_bitzoom import true_book as bitzoom_true
from tests.test_coinapi import BTC, coinapi_feed, make_coinapi_sim
from tests.test_coinapi import client_book as coinapi_book
from tests.test_coinapi import settle as settle_coinapi
from tests.test_coinapi import true_book as coinapi_true
from tests.test_coinbase_exchange import client_book as exchange_book
from tests.test_coinbase_exchange import exchange_feed, make_exchange_sim, settle_exchange
from tests.test_coinbase_exchange import true_book as exchange_true
from tickerterm.core.events import BookResynced, BookUnsafe, Event, Malformed
from tickerterm.sim.faults import Faults


def tainted(e: Event) -> bool:
    return isinstance(e, BookUnsafe) and e.reason.startswith("malformed frame:")


async def spoil_then_heal(feed: Any, sim: Any) -> list[Event]:
    """Spoil data frames until a book is tainted by one, then stop and wait for that book's rebuild."""
    events = await take_until(feed, tainted, 15)
    assert any(isinstance(e, Malformed) for e in events)
    sim.faults.corrupt_rate = 0.0
    events += await take_until(feed, lambda e: isinstance(e, BookResynced), 15)
    assert sim.stats["corrupted"] > 0
    return events


async def test_coinbase_level2() -> None:
    async with make_sim(faults=Faults(corrupt_rate=0.05)) as sim:
        async with make_feed(sim, ["BTC-USD", "ETH-USD"], ["level2", "market_trades"]) as feed:
            await spoil_then_heal(feed, sim)
            await settle(feed, sim)
            for product in ("BTC-USD", "ETH-USD"):
                assert_book_matches(feed, sim, product)


@pytest.mark.parametrize("channel", ["level2_batch", "level2", "full"])
async def test_coinbase_exchange(channel: str) -> None:
    """``level2_batch`` and ``level2`` carry no sequence numbers at all; ``full`` does (a spoiled
    ``received`` or ``open`` uses its number up, so no gap is ever seen)."""
    async with make_exchange_sim(faults=Faults(corrupt_rate=0.05)) as sim:
        feed = exchange_feed(sim, ["heartbeat", channel])
        async with feed:
            await spoil_then_heal(feed, sim)
            await settle_exchange(feed, sim)
            for product in ("BTC-USD", "ETH-USD"):
                assert exchange_book(feed, product) == exchange_true(sim, product)


Books = Callable[[Any, str], Any]


async def test_bitzoom_diff_depth() -> None:
    async with make_bitzoom_sim(faults=Faults(corrupt_rate=0.05)) as sim:
        feed = bitzoom_feed(sim, ["miniTicker", "depth@100ms"])
        async with feed:
            await spoil_then_heal(feed, sim)
            await settle_bitzoom(feed, sim, ["BTC-USDT", "ETH-USDT"])
            for product in ("BTC-USDT", "ETH-USDT"):
                assert bitzoom_book(feed, product) == bitzoom_true(sim, product)


async def test_coinapi_book() -> None:
    async with make_coinapi_sim(faults=Faults(corrupt_rate=0.05)) as sim:
        feed = coinapi_feed(sim, ["book", "trade"])
        async with feed:
            await spoil_then_heal(feed, sim)
            await settle_coinapi(feed, sim, [BTC, "COINBASE:ETH-USD"])
            for product in (BTC, "COINBASE:ETH-USD"):
                assert coinapi_book(feed, product) == coinapi_true(sim, product)


@pytest.mark.parametrize("channel", ["orderbook", "l4_diffs"])
async def test_oxarchive(channel: str) -> None:
    """``orderbook`` is a whole top-20 book every time (the next one restores it); ``l4_diffs`` is
    incremental and is rebuilt from a new ``l4_snapshot`` (a new subscription)."""
    from tests.test_oxarchive import V, feed_book, make_ox_sim, ox_feed, quiet, sim_book, top

    async with make_ox_sim(faults=Faults(corrupt_rate=0.05)) as sim:
        feed = ox_feed(sim, [channel, "trades"])
        async with feed:
            await spoil_then_heal(feed, sim)
            sim.faults.corrupt_rate = 0.0
            await take_until(
                feed, lambda _e: all(feed.store.book(V, p).state == "ok" for p in ("BTC", "ETH")), 15
            )
            await quiet(feed, sim)
            for product in ("BTC", "ETH"):
                want = sim_book(sim, product)
                assert feed_book(feed, V, product) == (top(want) if channel == "orderbook" else want)
