"""The real stream worker against the simulator over loopback sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tickerterm.core.events import (
    BookResynced,
    BookResyncing,
    BookUnsafe,
    Closed,
    Connected,
    Event,
    Gap,
    GaveUp,
    Heartbeat,
    Malformed,
    OrderUpdate,
    RetryScheduled,
    Stale,
    Subscribed,
    VenueError,
)
from tickerterm.sim.auth import verify_cdp_jwt as verify_jwt
from tickerterm.sim.coinbase import CoinbaseSim
from tickerterm.sim.keys import generate_cdp_key

from .conftest import (
    assert_book_matches,
    fast_policy,
    make_feed,
    make_sim,
    settle,
    take_products,
    take_until,
)

PRODUCTS = ["BTC-USD", "ETH-USD"]


def of(events: list[Event], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def subscribe_frames(received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in received if m.get("type") == "subscribe"]


async def test_book_equals_true_book_after_snapshot_and_updates(sim: CoinbaseSim) -> None:
    async with make_feed(sim, PRODUCTS, ["level2", "market_trades"]) as feed:
        await take_until(feed, lambda e: feed.store.book("coinbase", "ETH-USD").updates >= 30)
        await settle(feed, sim)
        for product in PRODUCTS:
            assert_book_matches(feed, sim, product)
        health = feed.store.health["coinbase"]
        assert health.gaps == 0 and health.malformed == 0
        # what the venue got: heartbeats always, then one channel per frame, no JWT on public channels
        assert subscribe_frames(sim.all_connections[0].received) == [
            {"type": "subscribe", "product_ids": [], "channel": "heartbeats"},
            {"type": "subscribe", "product_ids": PRODUCTS, "channel": "level2"},
            {"type": "subscribe", "product_ids": PRODUCTS, "channel": "market_trades"},
        ]


async def test_dropped_frames_gap_unsafe_resync_equal_again(sim: CoinbaseSim) -> None:
    async with make_feed(sim, PRODUCTS, ["level2"]) as feed:
        await take_until(feed, lambda e: feed.store.book("coinbase", "BTC-USD").updates >= 10)
        sim.faults.drop_next = 3
        missing = 0

        def lost_three(e: Event) -> bool:
            nonlocal missing
            if isinstance(e, Gap):
                missing += e.received - e.expected
            return missing >= 3

        # three sequence numbers never arrive (a heartbeat may land between two dropped frames)
        events = await take_until(feed, lost_three)
        events += await settle(feed, sim)
        gaps = of(events, Gap)
        assert sum(g.received - g.expected for g in gaps) == 3
        assert all(g.conn == "coinbase" and g.scope == "connection" for g in gaps)
        gap = gaps[0]
        unsafe = of(events, BookUnsafe)
        assert [u.product for u in unsafe[:2]] == PRODUCTS  # one counter per connection: every book
        assert unsafe[0].reason == f"sequence gap: expected {gap.expected}, got {gap.received}"
        assert {r.product for r in of(events, BookResyncing)} == set(PRODUCTS)
        assert {r.product for r in of(events, BookResynced)} == set(PRODUCTS)
        # the venue really received the resync: unsubscribe + subscribe level2 for both products
        level2 = [m for m in sim.all_connections[0].received if m.get("channel") == "level2"]
        assert level2[-2:] == [
            {"type": "unsubscribe", "product_ids": PRODUCTS, "channel": "level2"},
            {"type": "subscribe", "product_ids": PRODUCTS, "channel": "level2"},
        ]
        for product in PRODUCTS:
            assert_book_matches(feed, sim, product)
        health = feed.store.health["coinbase"]
        assert sim.stats["dropped"] == 3
        assert health.gaps == len(gaps) and health.resyncs >= 2
        assert len(sim.all_connections) == 1  # resynced on the same connection


async def test_random_drops_books_still_converge() -> None:
    async with make_sim(rate=800.0) as sim:
        async with make_feed(sim, PRODUCTS, ["level2", "market_trades", "ticker"]) as feed:
            sim.faults.drop_rate = 0.05
            await take_until(feed, lambda e: feed.store.health["coinbase"].gaps >= 3, timeout=20)
            sim.faults.drop_rate = 0.0
            await settle(feed, sim, timeout=20)
            for product in PRODUCTS:
                assert_book_matches(feed, sim, product)


@pytest.mark.parametrize("code", [1000, 1001, 1006, 1008, 1011])
async def test_close_code_reconnects_with_backoff_and_restores_subscriptions(code: int) -> None:
    async with make_sim() as sim:
        sim.faults.close_code = code
        sim.faults.close_after_messages = 60
        sim.faults.close_reason = "maintenance"
        async with make_feed(sim, PRODUCTS, ["level2", "market_trades"]) as feed:
            events = await take_until(
                feed,
                lambda e: (
                    isinstance(e, Connected)
                    and len(sim.all_connections) == 2
                    and e.recv_ts > 0
                    and feed.store.health["coinbase"].retries == 1
                ),
            )
            closed = of(events, Closed)[0]
            assert closed.code == code
            assert closed.reason == ("maintenance" if code != 1006 else "dropped, no close frame")
            retry = of(events, RetryScheduled)[0]
            assert retry.attempt == 1 and retry.delay >= 0.02  # a short-lived connection: minimum delay
            # every book fed by the lost connection was marked unsafe until its new snapshot
            assert {u.product for u in of(events, BookUnsafe)} == set(PRODUCTS)
            await take_products(feed, BookResynced, PRODUCTS)
            first, second = sim.all_connections
            assert subscribe_frames(second.received) == subscribe_frames(first.received)
            await settle(feed, sim)
            for product in PRODUCTS:
                assert_book_matches(feed, sim, product)
            health = feed.store.health["coinbase"]
            assert (health.last_close_code, health.retries, health.closes) == (code, 1, 1)


async def test_auth_refused_gives_up_without_a_retry_loop() -> None:
    key, public = generate_cdp_key("ES256")
    async with make_sim(public_keys={key.name: public}) as sim:
        sim.faults.refuse_auth = True
        async with make_feed(sim, ["BTC-USD"], ["level2", "user"], credentials=key) as feed:
            events = await take_until(feed, lambda e: isinstance(e, GaveUp))
            error = of(events, VenueError)[0]
            assert (error.conn, error.message, error.fatal) == (
                "coinbase/user",
                "authentication failure",
                True,
            )
            gave_up = events[-1]
            assert gave_up.conn == "coinbase/user"
            assert gave_up.reason.startswith(
                "authentication failure (check the API key: set COINBASE_API_KEY"
            )
            # the market connection carries on; the user connection was tried exactly once
            await take_until(feed, lambda e: feed.store.book("coinbase", "BTC-USD").updates >= 5)
            user_conns = [c for c in sim.all_connections if "heartbeats" in c.subs and "level2" not in c.subs]
            assert len(sim.all_connections) == 2
            assert len(user_conns) <= 1
            assert feed.store.health["coinbase/user"].state == "gave_up"
            assert feed.store.health["coinbase/user"].retries == 0
            assert feed.store.health["coinbase"].state == "subscribed"


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
async def test_private_user_channel_with_jwt(alg: str) -> None:
    key, public = generate_cdp_key(alg)
    async with make_sim(public_keys={key.name: public}) as sim:
        async with make_feed(sim, ["BTC-USD"], ["user"], credentials=key) as feed:
            events = await take_until(feed, lambda e: isinstance(e, OrderUpdate) and not e.snapshot)
            snapshot = [o for o in of(events, OrderUpdate) if o.snapshot]
            assert {o.order_id for o in snapshot} == {"sim-order-000001", "sim-order-000003"}  # BTC-USD only
            update = events[-1]
            assert update.product == "BTC-USD" and update.status in ("OPEN", "FILLED")
            assert update.filled_size == "0.01"
            (conn,) = sim.all_connections
            user_frames = [m for m in conn.received if m.get("channel") == "user"]
            assert len(user_frames) == 1
            assert verify_jwt(user_frames[0]["jwt"], {key.name: public}, sim.clock()) == key.name
            assert "jwt" not in [m for m in conn.received if m.get("channel") == "heartbeats"][0]


async def test_fresh_jwt_for_every_private_frame() -> None:
    key, public = generate_cdp_key("ES256")
    async with make_sim(public_keys={key.name: public}) as sim:
        async with make_feed(sim, ["BTC-USD"], ["user"], credentials=key) as feed:
            await take_until(feed, lambda e: isinstance(e, Subscribed) and "user" in e.subscriptions)
            await feed.unsubscribe("user")
            await feed.subscribe("user", ["ETH-USD"])
            await take_until(
                feed, lambda e: isinstance(e, Subscribed) and e.subscriptions.get("user") == ["ETH-USD"]
            )
            tokens = [m["jwt"] for m in sim.all_connections[0].received if m.get("channel") == "user"]
            assert len(tokens) == 3 and len(set(tokens)) == 3
            for token in tokens:
                verify_jwt(token, {key.name: public}, sim.clock())


async def test_malformed_and_unknown_frames_are_counted_and_survived(sim: CoinbaseSim) -> None:
    async with make_feed(sim, PRODUCTS, ["level2"]) as feed:
        await take_until(feed, lambda e: feed.store.book("coinbase", "BTC-USD").updates >= 5)
        sim.faults.malformed_next = 7
        sim.faults.unknown_rate = 0.2
        events = await take_until(feed, lambda e: feed.store.health["coinbase"].malformed >= 7)
        sim.faults.unknown_rate = 0.0
        await settle(feed, sim)
        health = feed.store.health["coinbase"]
        assert health.malformed == 7 == sim.stats["malformed"]
        assert health.unknown == sim.stats["unknown"] > 0
        assert health.gaps == 0  # extra junk frames are not lost data
        assert {m.reason for m in of(events, Malformed)} <= {"not valid JSON", "not a JSON object"}
        for product in PRODUCTS:
            assert_book_matches(feed, sim, product)
        assert len(sim.all_connections) == 1


async def test_stall_is_detected_and_reconnected(sim: CoinbaseSim) -> None:
    sim.faults.stall_after_messages = 40
    async with make_feed(sim, PRODUCTS, ["level2"], policy=fast_policy(stale_after=0.4)) as feed:
        events = await take_until(feed, lambda e: isinstance(e, Connected) and len(sim.all_connections) == 2)
        stale = of(events, Stale)
        assert len(stale) == 1 and stale[0].age > 0.4
        closed = of(events, Closed)[0]
        assert closed.reason.startswith("stale: no message for")
        await take_products(feed, BookResynced, PRODUCTS)
        assert feed.store.health["coinbase"].stale_count == 1
        assert sim.stats["stalls"] == 1


async def test_quiet_but_healthy_feed_is_not_restarted(sim: CoinbaseSim) -> None:
    sim.pause()  # no market activity at all: only heartbeats flow
    async with make_feed(sim, ["SOL-USD"], ["market_trades"], policy=fast_policy(stale_after=0.3)) as feed:
        events = await take_until(feed, lambda e: isinstance(e, Heartbeat) and (e.counter or 0) >= 30)
        # 30 heartbeats at 50 ms is 1.5 s: five times the stale limit, yet nothing was restarted
        assert not of(events, Stale) and not of(events, Closed)
        assert len(sim.all_connections) == 1
        assert feed.store.health["coinbase"].state == "subscribed"


async def test_live_subscribe_and_unsubscribe(sim: CoinbaseSim) -> None:
    async with make_feed(sim, PRODUCTS, ["level2"]) as feed:
        await take_until(feed, lambda e: isinstance(e, Subscribed) and "level2" in e.subscriptions)
        await feed.subscribe("trades", ["SOL-USD"])
        await take_until(feed, lambda e: isinstance(e, Subscribed) and "market_trades" in e.subscriptions)
        await feed.unsubscribe("level2", ["ETH-USD"])
        events = await take_until(
            feed, lambda e: isinstance(e, Subscribed) and e.subscriptions.get("level2") == ["BTC-USD"]
        )
        assert events[-1].subscriptions == {
            "heartbeats": ["heartbeats"],
            "level2": ["BTC-USD"],
            "market_trades": ["SOL-USD"],
        }
        received = sim.all_connections[0].received
        assert received[-2:] == [
            {"type": "subscribe", "product_ids": ["SOL-USD"], "channel": "market_trades"},
            {"type": "unsubscribe", "product_ids": ["ETH-USD"], "channel": "level2"},
        ]
        assert ("coinbase", "ETH-USD") not in feed.store.books  # no longer updated: not shown as live
        assert feed.subscriptions() == {"heartbeats": [], "level2": ["BTC-USD"], "market_trades": ["SOL-USD"]}
        await feed.unsubscribe("market_trades")
        await take_until(feed, lambda e: isinstance(e, Subscribed) and "market_trades" not in e.subscriptions)
        assert received[-1] == {"type": "unsubscribe", "channel": "market_trades"}


async def test_command_error_is_not_resent_after_reconnect(sim: CoinbaseSim) -> None:
    async with make_feed(sim, ["BTC-USD"], ["level2"]) as feed:
        await take_until(feed, lambda e: isinstance(e, Subscribed) and "level2" in e.subscriptions)
        await feed.subscribe("ticker", ["XRP-USD"])  # well-formed, but the venue does not list it
        events = await take_until(feed, lambda e: isinstance(e, VenueError))
        assert events[-1].message == "failure to subscribe: unknown product XRP-USD"
        assert events[-1].fatal
        assert "ticker" not in feed.subscriptions()
        sim.close_all(1011)
        await take_until(
            feed,
            lambda e: (
                isinstance(e, Subscribed) and len(sim.all_connections) == 2 and "level2" in e.subscriptions
            ),
        )
        assert [m["channel"] for m in subscribe_frames(sim.all_connections[1].received)] == [
            "heartbeats",
            "level2",
        ]


async def test_unreachable_endpoint_retries_then_gives_up_with_hint() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    sim_like = type("S", (), {"url": f"ws://127.0.0.1:{port}"})()
    async with make_feed(sim_like, ["BTC-USD"], ["level2"], policy=fast_policy(budget=3)) as feed:  # type: ignore[arg-type]
        events = await take_until(feed, lambda e: isinstance(e, GaveUp))
        assert [r.attempt for r in of(events, RetryScheduled)] == [1, 2, 3]
        delays = [r.delay for r in of(events, RetryScheduled)]
        assert all(0.0 < d <= 0.05 for d in delays)
        reason = events[-1].reason
        assert reason.startswith("4 connection attempts failed in a row (3 retries allowed); last: connect")
        assert reason.endswith("(check the URL (--url) and the network; --sim runs the built-in simulator)")
        assert feed.store.health["coinbase"].retries == 3


async def test_subscribe_deadline_closes_silent_clients() -> None:
    timing = make_sim().timing
    timing.subscribe_deadline = 0.2
    async with make_sim(timing=timing) as sim, connect(sim.url) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 3)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_raw_protocol_sequence_is_one_counter_across_channels(sim: CoinbaseSim) -> None:
    async with connect(sim.url, max_size=None) as ws:
        for channel, products in (
            ("level2", ["BTC-USD"]),
            ("heartbeats", []),
            ("market_trades", ["BTC-USD"]),
        ):
            await ws.send(json.dumps({"type": "subscribe", "product_ids": products, "channel": channel}))
        frames = [json.loads(await ws.recv()) for _ in range(40)]
    assert [f["sequence_num"] for f in frames] == list(range(40))
    assert frames[0]["channel"] == "l2_data" and frames[0]["events"][0]["type"] == "snapshot"
    assert frames[1] == {
        **frames[1],
        "channel": "subscriptions",
        "client_id": "",
        "events": [{"subscriptions": {"level2": ["BTC-USD"]}}],
    }
    assert {f["channel"] for f in frames} >= {"l2_data", "subscriptions", "heartbeats", "market_trades"}
    sides = {
        u["side"] for f in frames if f["channel"] == "l2_data" for e in f["events"] for u in e["updates"]
    }
    assert sides == {"bid", "offer"}
    beats = [f for f in frames if f["channel"] == "heartbeats"]
    assert beats and all(isinstance(b["events"][0]["heartbeat_counter"], int) for b in beats)


async def test_no_token_reaches_the_logs_even_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key, public = generate_cdp_key("ES256")
    async with make_sim(public_keys={key.name: public}) as sim:
        async with make_feed(sim, ["BTC-USD"], ["user"], credentials=key) as feed:
            await take_until(feed, lambda e: isinstance(e, OrderUpdate))
            await feed.unsubscribe("user")
            await take_until(feed, lambda e: isinstance(e, Subscribed) and "user" not in e.subscriptions)
        tokens = [m["jwt"] for m in sim.all_connections[0].received if "jwt" in m]
    assert tokens and caplog.records
    for token in tokens:
        _header, payload, signature = token.split(".")
        assert signature[-12:] not in caplog.text and payload[:16] not in caplog.text
    assert "PRIVATE KEY" not in caplog.text


async def test_close_after_seconds() -> None:
    async with make_sim() as sim:
        sim.faults.close_code = 1001
        sim.faults.close_after_seconds = 0.3
        async with make_feed(sim, ["BTC-USD"], ["level2"]) as feed:
            events = await take_until(
                feed, lambda e: isinstance(e, Connected) and len(sim.all_connections) == 2
            )
            assert [(c.code, c.reason) for c in of(events, Closed)] == [(1001, "simulated close")]
            await take_products(feed, BookResynced, ["BTC-USD"])


async def test_as_fast_as_it_can_go() -> None:
    async with make_sim(rate=0) as sim:
        async with make_feed(sim, PRODUCTS, ["level2", "market_trades"]) as feed:
            await take_until(
                feed, lambda e: feed.store.book("coinbase", "BTC-USD").updates >= 2000, timeout=30
            )
            await settle(feed, sim, timeout=30)
            for product in PRODUCTS:
                assert_book_matches(feed, sim, product)
            assert feed.store.health["coinbase"].gaps == 0


async def test_slow_snapshot_keeps_the_book_resyncing_with_its_reason(sim: CoinbaseSim) -> None:
    sim.faults.snapshot_delay = 0.5
    async with make_feed(sim, ["BTC-USD"], ["level2"]) as feed:
        await take_until(feed, lambda e: feed.store.book("coinbase", "BTC-USD").updates >= 5)
        sim.faults.drop_next = 1
        events = await take_until(feed, lambda e: isinstance(e, BookResyncing))
        gap = of(events, Gap)[0]
        book = feed.store.book("coinbase", "BTC-USD")
        assert (book.state, book.reason) == (
            "resyncing",
            f"sequence gap: expected {gap.expected}, got {gap.received}",
        )
        events = await take_until(feed, lambda e: isinstance(e, BookResynced))
        assert book.state == "ok"
        assert events[-1].recv_ts - of(events, Heartbeat)[0].recv_ts > 0.3  # heartbeats flowed meanwhile


async def test_unsubscribed_book_is_not_revived_by_frames_in_flight() -> None:
    async with make_sim(rate=0) as sim:  # as fast as it goes: updates are always in flight
        async with make_feed(sim, PRODUCTS, ["level2"]) as feed:
            await take_until(
                feed, lambda e: feed.store.book("coinbase", "ETH-USD").updates >= 200, timeout=20
            )
            await feed.unsubscribe("level2", ["ETH-USD"])
            await take_until(
                feed, lambda e: isinstance(e, Subscribed) and e.subscriptions["level2"] == ["BTC-USD"]
            )
            updates = feed.store.book("coinbase", "BTC-USD").updates
            events = await take_until(
                feed, lambda e: feed.store.book("coinbase", "BTC-USD").updates >= updates + 200, timeout=20
            )
            assert ("coinbase", "ETH-USD") not in feed.store.books
            assert not [e for e in events if getattr(e, "product", None) == "ETH-USD"]
            level2 = [m for m in sim.all_connections[0].received if m.get("channel") == "level2"]
            assert level2[-1] == {"type": "unsubscribe", "product_ids": ["ETH-USD"], "channel": "level2"}
