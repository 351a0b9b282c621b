"""Stream-worker rules against tiny hand-written servers on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from tickerterm.core.events import BookResynced, BookUnsafe, Closed, RetryScheduled
from tickerterm.stream.feed import Feed
from tickerterm.stream.policy import RateLimiter, RetryPolicy
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade

from .conftest import fast_policy, take_until

TS = "2024-05-01T12:00:00Z"


def l2(seq: int, kind: str, updates: list[tuple[str, str, str]]) -> str:
    return json.dumps(
        {
            "channel": "l2_data",
            "client_id": "",
            "timestamp": TS,
            "sequence_num": seq,
            "events": [
                {
                    "type": kind,
                    "product_id": "BTC-USD",
                    "updates": [
                        {"side": s, "event_time": TS, "price_level": p, "new_quantity": q}
                        for s, p, q in updates
                    ],
                }
            ],
        }
    )


def feed_for(url: str, policy: RetryPolicy) -> Feed:
    adapter = CoinbaseAdvancedTrade(urls={"market": url, "user": url})
    return Feed(adapter, ["BTC-USD"], ["level2"], policy=policy, seed=1)


async def test_crossed_book_is_resynced_from_a_fresh_snapshot() -> None:
    received: list[dict[str, Any]] = []

    async def venue(ws: ServerConnection) -> None:
        seq = 0
        async for raw in ws:
            msg = json.loads(raw)
            received.append(msg)
            if msg["type"] == "subscribe" and msg["channel"] == "level2":
                await ws.send(l2(seq, "snapshot", [("bid", "100", "1"), ("offer", "101", "1")]))
                seq += 1
                if seq == 1:  # the first time, follow with an update that crosses the book
                    await ws.send(l2(seq, "update", [("bid", "101.5", "2")]))
                    seq += 1

    async with serve(venue, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]  # type: ignore[index]
        async with feed_for(f"ws://127.0.0.1:{port}", fast_policy()) as feed:
            events = await take_until(feed, lambda e: isinstance(e, BookResynced))
    unsafe = [e for e in events if isinstance(e, BookUnsafe)]
    assert [u.reason for u in unsafe] == ["crossed book: bid 101.5 >= ask 101"]
    assert received[-2:] == [
        {"type": "unsubscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
    ]
    assert feed.store.book("coinbase", "BTC-USD").top(5) == ([("100", "1")], [("101", "1")])


async def test_a_connection_that_dies_right_after_subscribing_waits_the_minimum() -> None:
    async def venue(ws: ServerConnection) -> None:
        async for raw in ws:
            if json.loads(raw)["channel"] == "level2":
                await ws.close(1011, "nope")

    async with serve(venue, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]  # type: ignore[index]
        policy = fast_policy(base=0.001, cap=0.002, min_after_short=0.25, short_lived=5.0)
        async with feed_for(f"ws://127.0.0.1:{port}", policy) as feed:
            started = time.monotonic()
            events = await take_until(feed, lambda e: isinstance(e, RetryScheduled) and e.attempt == 3)
            elapsed = time.monotonic() - started
    retries = [e for e in events if isinstance(e, RetryScheduled)]
    assert [r.delay for r in retries] == [0.25, 0.25, 0.25]
    assert [c.code for c in events if isinstance(c, Closed)] == [1011, 1011, 1011]
    assert elapsed >= 0.5  # no tight loop: two full minimum delays went by


def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(base=0.5, factor=2.0, cap=30.0, jitter=0.5)
    rng = random.Random(4)
    for attempt in range(1, 40):
        raw = min(30.0, 0.5 * 2 ** (attempt - 1))
        delay = policy.delay(attempt, rng)
        assert raw * 0.5 <= delay <= raw
    assert max(policy.delay(100, rng) for _ in range(100)) <= 30.0


async def test_rate_limiter_spaces_sends() -> None:
    limiter = RateLimiter(rate=50.0, burst=1.0)
    started = time.monotonic()
    for _ in range(11):
        await limiter.acquire()
    assert time.monotonic() - started >= 10 / 50 * 0.95


async def test_resync_that_never_completes_reconnects() -> None:
    connections = 0

    async def venue(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        async for raw in ws:
            msg = json.loads(raw)
            if msg["type"] == "subscribe" and msg["channel"] == "level2":
                if first:  # snapshot once, then a gap, then silence on resubscribe (heartbeats go on)
                    await ws.send(l2(0, "snapshot", [("bid", "100", "1"), ("offer", "101", "1")]))
                    await ws.send(l2(5, "update", [("bid", "99", "1")]))
                    first = False
                    asyncio.get_running_loop().create_task(beat(ws, 6))
                elif connections > 1:
                    await ws.send(l2(0, "snapshot", [("bid", "100", "2"), ("offer", "101", "2")]))

    async def beat(ws: ServerConnection, seq: int) -> None:
        while True:
            await asyncio.sleep(0.05)
            try:
                await ws.send(
                    json.dumps(
                        {
                            "channel": "heartbeats",
                            "sequence_num": seq,
                            "timestamp": TS,
                            "events": [{"current_time": "x", "heartbeat_counter": seq}],
                        }
                    )
                )
            except Exception:
                return
            seq += 1

    async with serve(venue, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]  # type: ignore[index]
        async with feed_for(f"ws://127.0.0.1:{port}", fast_policy(resync_timeout=0.3)) as feed:
            events = await take_until(feed, lambda e: isinstance(e, BookResynced))
    closed = [e for e in events if isinstance(e, Closed)]
    assert [c.reason for c in closed] == ["resync of BTC-USD did not complete"]
    assert connections == 2
    assert feed.store.book("coinbase", "BTC-USD").top(1) == ([("100", "2")], [("101", "2")])


async def test_subscribing_before_the_feed_starts_only_records_it() -> None:
    from tickerterm.stream.feed import Feed
    from tickerterm.venues.coinbase import CoinbaseAdvancedTrade

    feed = Feed(CoinbaseAdvancedTrade(), ["BTC-USD"], ["ticker"])
    await feed.subscribe("market_trades", ["ETH-USD"])
    assert feed.subscriptions()["market_trades"] == ["ETH-USD"]
    assert not feed.running and not any(c.started for c in feed.connections.values())
