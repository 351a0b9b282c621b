"""Coinbase Exchange (the cbpro feed): exact parsing, frames, HMAC auth, and the simulator round trip
(L2 and L3 books equal to the simulator's true book through gaps, resyncs and faults)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any, ClassVar

import pytest

from tickerterm.core.errors import CredentialsError, FrameError
from tickerterm.core.events import (
    BookResynced,
    BookSnapshot,
    BookUnsafe,
    BookUpdate,
    Closed,
    Event,
    Gap,
    GaveUp,
    Heartbeat,
    Malformed,
    OrderUpdate,
    Stale,
    Subscribed,
    Ticker,
    Trade,
    VenueError,
    change,
)
from tickerterm.sim.auth import verify_exchange_auth
from tickerterm.sim.coinbase_exchange import AUTH_REQUIRED, CoinbaseExchangeSim
from tickerterm.sim.faults import Faults
from tickerterm.stream.feed import Feed
from tickerterm.venues.auth import ExchangeKey, Secret, exchange_signature, load_exchange_key
from tickerterm.venues.base import ChannelSpec
from tickerterm.venues.coinbase_exchange import CoinbaseExchange, CoinbaseExchangeParser

from .conftest import (
    FAST,
    ExactBook,
    fast_policy,
    feed_book,
    settle_books,
    sim_book,
    take_products,
    take_until,
)

V = "coinbase-exchange"
R = 50.0
T = "2024-05-01T12:00:00.123456Z"
TV = 1714564800.123456


def enc(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


@pytest.fixture
def parser() -> CoinbaseExchangeParser:
    return CoinbaseExchange().parser(V)


# --- parsing ------------------------------------------------------------------------------------


def test_ticker_match_last_match_aggressor_and_old_sequences(parser: CoinbaseExchangeParser) -> None:
    tick = {
        "type": "ticker", "sequence": 10, "product_id": "BTC-USD", "price": "64000.50",
        "open_24h": "64000.00",
        "volume_24h": "12.5", "low_24h": "63000", "high_24h": "65000", "volume_30d": "99",
        "best_bid": "64000.49", "best_ask": "64000.50", "side": "buy", "time": T, "trade_id": 7,
        "last_size": "0.01",
    }  # fmt: skip
    assert parser.parse(enc(tick), R) == [
        Ticker(
            V, R, "BTC-USD", TV, price="64000.50", bid="64000.49", bid_size=None, ask="64000.50",
            ask_size=None, volume_24h="12.5", low_24h="63000", high_24h="65000", change_pct_24h="0.00078125",
        )
    ]  # fmt: skip
    assert parser.parse(enc({**tick, "sequence": 9}), R) == []  # older: ignored, counted
    assert parser.out_of_order == 1
    match = {
        "type": "last_match", "trade_id": 280232, "maker_order_id": "m", "taker_order_id": "t",
        "side": "sell", "size": "985", "price": "0.00001305", "product_id": "SKL-BTC", "sequence": 177,
        "time": T,
    }  # fmt: skip
    # the maker sold, so the aggressor bought; the integer trade id becomes text
    assert parser.parse(enc(match), R) == [Trade(V, R, "SKL-BTC", TV, "280232", "0.00001305", "985", "buy")]
    assert parser.parse(enc({**match, "type": "match", "sequence": 178, "side": "buy"}), R) == [
        Trade(V, R, "SKL-BTC", TV, "280232", "0.00001305", "985", "sell")
    ]


def test_level2_snapshot_and_updates_with_every_zero_spelling(parser: CoinbaseExchangeParser) -> None:
    snap = {
        "type": "snapshot",
        "product_id": "BTC-USD",
        "bids": [["64000.01", "0.5"]],
        "asks": [["64000.02", "1.2"]],
    }
    assert parser.parse(enc(snap), R) == [
        BookSnapshot(V, R, "BTC-USD", None, [("64000.01", "0.5")], [("64000.02", "1.2")])
    ]
    zeros = ["0", "0.00", "0.0", "0.00000000", "0.000"]
    update = {
        "type": "l2update", "product_id": "BTC-USD", "time": T,
        "changes": [["buy", "64000.01", z] for z in zeros] + [["sell", "64000.03", "2"]],
    }  # fmt: skip
    [ev] = parser.parse(enc(update), R)
    assert ev == BookUpdate(
        V, R, "BTC-USD", TV, [change("bid", "64000.01", z) for z in zeros] + [change("ask", "64000.03", "2")]
    )
    assert all(c[4] == 0.0 for c in ev.changes[:5])  # every spelling removes the level


def test_errors_acks_status_heartbeat(parser: CoinbaseExchangeParser) -> None:
    err = {"type": "error", "message": "Failed to subscribe", "reason": AUTH_REQUIRED}
    [ev] = parser.parse(enc(err), R)
    assert ev == VenueError(V, R, V, f"Failed to subscribe: {AUTH_REQUIRED}")
    assert CoinbaseExchange().classify_error(ev.message) == "command"  # not retried, not an auth failure
    assert CoinbaseExchange().classify_error("Authentication Failed: invalid signature") == "auth"
    ack = {
        "type": "subscriptions",
        "channels": [{"name": "level2_batch", "product_ids": ["BTC-USD"]}, "status"],
    }
    assert parser.parse(enc(ack), R) == [Subscribed(V, R, V, {"level2_batch": ["BTC-USD"], "status": []})]
    hb = {"type": "heartbeat", "sequence": 90, "last_trade_id": 20, "product_id": "BTC-USD", "time": T}
    assert parser.parse(enc(hb), R) == [Heartbeat(V, R, V, 90, TV)]
    status = {"type": "status", "products": [{"id": "BTC-USD", "status": "online", "status_message": None}]}
    [st] = parser.parse(enc(status), R)
    assert (st.product, st.status, st.message) == ("BTC-USD", "online", "")
    assert parser.parse(enc({"type": "mystery"}), R) == [] and parser.unknown == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"{nope",
        b"[1,2]",
        enc({"type": "l2update", "product_id": "X", "changes": [["buy", "NaN", "1"]]}),
        enc({"type": "l2update", "product_id": "X", "changes": [["bid", "1", "1"]]}),  # not a side here
        enc({"type": "match", "product_id": "X", "trade_id": 1, "side": "sell", "size": 1, "price": "1"}),
        enc({"type": "ticker", "product_id": "X", "sequence": "7"}),
    ],
)
def test_malformed_frames_raise(parser: CoinbaseExchangeParser, raw: bytes) -> None:
    with pytest.raises(FrameError):
        parser.parse(raw, R)


def full(kind: str, seq: int, **fields: Any) -> bytes:
    return enc({"type": kind, "product_id": "BTC-USD", "sequence": seq, "time": T, **fields})


def test_full_channel_l3_book_from_rest_snapshot_buffer_and_gap(parser: CoinbaseExchangeParser) -> None:
    parser.parse(
        enc({"type": "subscriptions", "channels": [{"name": "full", "product_ids": ["BTC-USD"]}]}), R
    )
    assert parser.snapshot_wanted == [("full", "BTC-USD")]
    # messages before the snapshot are kept, not applied
    assert parser.parse(full("open", 101, order_id="o3", side="buy", price="99", remaining_size="1"), R) == []
    assert (
        parser.parse(full("open", 102, order_id="o4", side="sell", price="101", remaining_size="2"), R) == []
    )
    body = enc({"sequence": 101, "bids": [["100", "0.5", "o1"], ["100", "0.25", "o2"], ["99", "1", "o3"]],
                "asks": [["101", "3", "o5"]]})  # fmt: skip
    out = parser.apply_snapshot("full", "BTC-USD", body, R)
    # the snapshot aggregated per level, then only the buffered message newer than it
    assert out == [
        BookSnapshot(V, R, "BTC-USD", None, [("100", "0.75"), ("99", "1")], [("101", "3")]),
        BookUpdate(V, R, "BTC-USD", TV, [change("ask", "101", "5")]),
    ]
    # a match fills part of o1 (a trade, and the level shrinks); done removes o1; change resizes o2
    out = parser.parse(full("match", 103, trade_id=9, maker_order_id="o1", taker_order_id="t", side="buy",
                            size="0.2", price="100"), R)  # fmt: skip
    assert out == [
        Trade(V, R, "BTC-USD", TV, "9", "100", "0.2", "sell"),
        BookUpdate(V, R, "BTC-USD", TV, [change("bid", "100", "0.55")]),
    ]
    done = full("done", 104, order_id="o1", reason="canceled", side="buy", price="100", remaining_size="0.3")
    assert parser.parse(done, R) == [BookUpdate(V, R, "BTC-USD", TV, [change("bid", "100", "0.25")])]
    resized = full("change", 105, order_id="o2", side="buy", price="100", old_size="0.25", new_size="0.1")
    assert parser.parse(resized, R) == [BookUpdate(V, R, "BTC-USD", TV, [change("bid", "100", "0.1")])]
    assert (
        parser.parse(full("received", 106, order_id="o9", side="buy", order_type="market", funds="10"), R)
        == []
    )
    assert (
        parser.parse(full("done", 107, order_id="o9", reason="filled", side="buy"), R) == []
    )  # never on the book
    assert (
        parser.parse(full("open", 105, order_id="x", side="buy", price="1", remaining_size="1"), R) == []
    )  # old
    # a jump: that product's book is lost, a new snapshot is asked for, what follows is kept
    parser.snapshot_wanted.clear()
    out = parser.parse(full("open", 110, order_id="o7", side="buy", price="98", remaining_size="1"), R)
    assert out == [Gap(V, R, V, 108, 110, "sequence:BTC-USD")]
    assert parser.snapshot_wanted == [("full", "BTC-USD")]
    assert CoinbaseExchange().gap_products(out[0], ["BTC-USD", "ETH-USD"]) == ["BTC-USD"]  # type: ignore[arg-type]


def test_heartbeat_ahead_of_the_full_channel_is_a_gap(parser: CoinbaseExchangeParser) -> None:
    parser.parse(
        enc({"type": "subscriptions", "channels": [{"name": "full", "product_ids": ["BTC-USD"]}]}), R
    )
    parser.apply_snapshot("full", "BTC-USD", enc({"sequence": 5, "bids": [], "asks": []}), R)
    hb = {"type": "heartbeat", "sequence": 8, "last_trade_id": 1, "product_id": "BTC-USD", "time": T}
    assert parser.parse(enc(hb), R)[1] == Gap(V, R, V, 6, 8, "sequence:BTC-USD")


def test_own_orders_from_authenticated_messages(parser: CoinbaseExchangeParser) -> None:
    out = parser.parse(full("open", 1, order_id="mine", side="sell", price="101", remaining_size="2",
                            user_id="u", profile_id="p"), R)  # fmt: skip
    assert out == [OrderUpdate(V, R, "BTC-USD", TV, "mine", "sell", "", "open", "101", None, "2", None)]
    out = parser.parse(full("match", 2, trade_id=3, maker_order_id="mine", taker_order_id="t", side="sell",
                            size="0.5", price="101", user_id="u", profile_id="p"), R)  # fmt: skip
    assert out[0] == OrderUpdate(V, R, "BTC-USD", TV, "mine", "sell", "", "match", "101", "0.5", None, None)


# --- frames and auth ----------------------------------------------------------------------------


def test_subscribe_frames_objects_names_and_signed_private_channels() -> None:
    key = ExchangeKey("k1", Secret(base64.b64encode(b"s3cret").decode()), Secret("pp"), "test")
    adapter = CoinbaseExchange(credentials=key, clock=lambda: 1714564800.5)
    assert json.loads(adapter.subscribe_frames("ticker", ["BTC-USD"])[0]) == {
        "type": "subscribe", "channels": [{"name": "ticker", "product_ids": ["BTC-USD"]}],
    }  # fmt: skip
    assert json.loads(adapter.subscribe_frames("status", [])[0]) == {
        "type": "subscribe",
        "channels": ["status"],
    }
    signed = json.loads(adapter.subscribe_frames("full", ["ETH-USD"])[0])
    assert signed["timestamp"] == "1714564800.500000"
    assert signed["signature"] == exchange_signature(key.secret.reveal(), "1714564800.500000")
    assert verify_exchange_auth(signed, {"k1": (key.secret.reveal(), "pp")}, 1714564801.0) == "k1"
    assert json.loads(adapter.unsubscribe_frames("matches", None)[0]) == {
        "type": "unsubscribe",
        "channels": ["matches"],
    }
    with pytest.raises(ValueError, match="invalid signature"):
        verify_exchange_auth(
            {**signed, "signature": "AAAA"}, {"k1": (key.secret.reveal(), "pp")}, 1714564801.0
        )
    with pytest.raises(ValueError, match="expired"):
        verify_exchange_auth(signed, {"k1": (key.secret.reveal(), "pp")}, 1714564900.0)
    with pytest.raises(CredentialsError, match="COINBASE_EXCHANGE_API_KEY"):
        CoinbaseExchange().subscribe_frames("level2", ["BTC-USD"])


def test_credentials_from_env_and_file_never_shown(tmp_path: Any) -> None:
    secret = base64.b64encode(b"very secret bytes").decode()
    env = {"COINBASE_EXCHANGE_API_KEY": "k", "COINBASE_EXCHANGE_API_SECRET": secret}
    with pytest.raises(CredentialsError, match="COINBASE_EXCHANGE_PASSPHRASE is not set"):
        load_exchange_key(env)
    key = load_exchange_key({**env, "COINBASE_EXCHANGE_PASSPHRASE": "hunter2"})
    assert key is not None and secret not in repr(key) and "hunter2" not in repr(key)
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"key": "k", "secret": "not base64!", "passphrase": "p"}))
    with pytest.raises(CredentialsError, match="not base64") as info:
        load_exchange_key({}, key_file=str(path))
    assert "not base64!" not in str(info.value)
    assert load_exchange_key({}) is None


# --- against the simulator ----------------------------------------------------------------------


def make_exchange_sim(**kwargs: Any) -> CoinbaseExchangeSim:
    options: dict[str, Any] = dict(rate=400.0, depth=300, seed=7, timing=FAST, faults=Faults())
    options.update(kwargs)
    return CoinbaseExchangeSim(**options)


def exchange_feed(sim: CoinbaseExchangeSim, channels: list[str], *, auth: bool = True, **kw: Any) -> Feed:
    adapter = CoinbaseExchange(
        urls={"market": sim.url, "rest": sim.http_url}, credentials=sim.client_credentials() if auth else None
    )
    return Feed(
        adapter,
        ["BTC-USD", "ETH-USD"],
        channels,
        policy=kw.pop("policy", None) or fast_policy(),
        seed=3,
        **kw,
    )


def true_book(sim: Any, product: str) -> ExactBook:
    return sim_book(sim, product)


def client_book(feed: Feed, product: str) -> ExactBook:
    return feed_book(feed, V, product)


async def settle_exchange(feed: Feed, sim: CoinbaseExchangeSim, timeout: float = 15.0) -> None:
    """Settled once two heartbeats per product stamped after the pause are in."""

    def heartbeat(e: Event, paused: float) -> bool:
        return isinstance(e, Heartbeat) and e.exch_ts is not None and e.exch_ts > paused + 0.02

    await settle_books(feed, sim, V, ["BTC-USD", "ETH-USD"], heartbeat, 4, timeout)


@pytest.mark.parametrize("channel", ["level2_batch", "level2", "full"])
async def test_book_equals_the_true_book(channel: str) -> None:
    async with make_exchange_sim() as sim:
        feed = exchange_feed(sim, ["heartbeat", channel, "matches"])
        async with feed:
            await take_until(feed, lambda e: isinstance(e, Trade), 10)
            await settle_exchange(feed, sim)
            for product in ("BTC-USD", "ETH-USD"):
                assert client_book(feed, product) == true_book(sim, product)
                assert len(true_book(sim, product)[0]) > 100


async def test_full_channel_gaps_resync_over_rest_and_converge() -> None:
    async with make_exchange_sim(faults=Faults(drop_rate=0.02)) as sim:
        feed = exchange_feed(sim, ["heartbeat", "full"])
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, BookResynced), 15)
            gaps = [e for e in events if isinstance(e, Gap)]
            assert gaps and gaps[0].scope.startswith("sequence:")
            assert any(isinstance(e, BookUnsafe) and "sequence gap" in e.reason for e in events)
            sim.faults.drop_rate = 0.0
            await settle_exchange(feed, sim)
            for product in ("BTC-USD", "ETH-USD"):
                assert client_book(feed, product) == true_book(sim, product)
            assert sim.stats["dropped"] > 0


class OldCbpro(CoinbaseExchange):
    channels: ClassVar[dict[str, ChannelSpec]] = {
        **CoinbaseExchange.channels,
        "level2": ChannelSpec("level2", "book"),
    }


async def test_public_client_asking_for_level2_is_told_why_and_not_retried() -> None:
    async with make_exchange_sim() as sim:
        # a client of the cbpro era, for which level2 was public, asks for it without a key
        adapter = OldCbpro(urls={"market": sim.url, "rest": sim.http_url})
        feed = Feed(adapter, ["BTC-USD"], ["heartbeat", "ticker"], policy=fast_policy(), seed=3)
        async with feed:
            await take_until(feed, lambda e: isinstance(e, Ticker), 10)
            conn = feed.connections["market"]
            await conn.subscribe("level2", ["BTC-USD"])
            events = await take_until(feed, lambda e: isinstance(e, VenueError), 10)
            assert events[-1].message == f"Failed to subscribe: {AUTH_REQUIRED}" and events[-1].fatal  # type: ignore[attr-defined]
            assert not conn.subs.has("level2", "BTC-USD")  # dropped: not sent again on reconnect
            assert feed.store.health[V].errors[-1][1] == events[-1].message  # type: ignore[attr-defined]


async def test_bad_credentials_give_up_with_the_variables_named() -> None:
    async with make_exchange_sim(faults=Faults(refuse_auth=True)) as sim:
        feed = exchange_feed(sim, ["full"])
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, GaveUp), 10)
            assert "COINBASE_EXCHANGE_API_KEY" in events[-1].reason  # type: ignore[attr-defined]
            assert sim.stats["connections"] == 1


@pytest.mark.parametrize("code", [1001, 1006, 1011])
async def test_close_codes_reconnect_restore_and_resync(code: int) -> None:
    async with make_exchange_sim(faults=Faults(close_code=code, close_after_messages=300)) as sim:
        feed = exchange_feed(sim, ["heartbeat", "full", "matches"])
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, BookResynced), 15)
            closed = [e for e in events if isinstance(e, Closed)]
            assert closed and closed[0].code == code
            assert len(sim.all_connections) >= 2
            again = [m for m in sim.all_connections[-1].received if m.get("type") == "subscribe"]
            assert {c["name"] for m in again for c in m["channels"]} >= {"heartbeat", "full", "matches"}
            await settle_exchange(feed, sim)
            assert client_book(feed, "BTC-USD") == true_book(sim, "BTC-USD")


async def test_malformed_and_unknown_frames_are_counted_and_survived() -> None:
    async with make_exchange_sim(faults=Faults(malformed_rate=0.05, unknown_rate=0.05)) as sim:
        feed = exchange_feed(sim, ["heartbeat", "level2_batch", "matches"])
        async with feed:
            await take_until(feed, lambda e: isinstance(e, Malformed), 10)
            await take_until(feed, lambda _e: feed.store.health[V].unknown > 0, 10)
            sim.faults.malformed_rate = sim.faults.unknown_rate = 0.0
            await settle_exchange(feed, sim)
            assert client_book(feed, "ETH-USD") == true_book(sim, "ETH-USD")


async def test_live_unsubscribe_and_subscribe_send_exact_frames() -> None:
    async with make_exchange_sim() as sim:
        feed = exchange_feed(sim, ["heartbeat", "matches"], auth=False)
        async with feed:
            await take_until(feed, lambda e: isinstance(e, Trade), 10)
            await feed.unsubscribe("matches")
            await feed.subscribe("ticker", ["ETH-USD"])
            await take_until(feed, lambda e: isinstance(e, Ticker), 10)
            frames = sim.all_connections[0].received
            assert {"type": "unsubscribe", "channels": ["matches"]} in frames
            assert {
                "type": "subscribe",
                "channels": [{"name": "ticker", "product_ids": ["ETH-USD"]}],
            } in frames
            subs = feed.store.health[V].subscriptions  # the venue's cumulative ack
            assert "matches" not in subs and subs["ticker"] == ["ETH-USD"]


async def test_library_stream_and_sink_cover_what_cbpro_on_message_did() -> None:
    """cbpro's ``WebsocketClient(on_message=...)``: every message to your code, here normalized."""
    import tickerterm

    seen: list[Event] = []
    async with contextlib.aclosing(
        tickerterm.stream(V, ["BTC-USD"], ["ticker", "matches"], sim=True)
    ) as events:
        async for event in events:
            seen.append(event)
            if sum(isinstance(e, Trade) for e in seen) >= 3 and any(isinstance(e, Ticker) for e in seen):
                break
    assert all(e.venue == V for e in seen)

    batches: list[list[Event]] = []
    updated = asyncio.Event()

    def on_message(events: list[Event]) -> None:  # called with each frame's events, as they are applied
        batches.append(events)
        if any(isinstance(e, BookUpdate) for e in events):
            updated.set()

    async with tickerterm.open_feed(
        V, ["ETH-USD"], ["level2_batch"], sim=True, sink=on_message, sim_options={"rate": 400.0}
    ) as feed:
        await asyncio.wait_for(updated.wait(), 10)
        assert feed.store.book(V, "ETH-USD").state == "ok"


async def test_sandbox_endpoints_are_used_when_asked() -> None:
    import tickerterm
    from tickerterm.core.events import Connecting
    from tickerterm.stream.policy import RetryPolicy
    from tickerterm.venues.coinbase_exchange import SANDBOX_URL

    events: list[Event] = []
    policy = RetryPolicy(budget=0, open_timeout=2.0)
    async with tickerterm.open_feed(
        V, ["BTC-USD"], ["ticker"], sandbox=True, policy=policy, sink=events.extend
    ) as feed:
        await asyncio.wait_for(feed.wait_finished(), 15)
    assert [e.url for e in events if isinstance(e, Connecting)] == [SANDBOX_URL]  # type: ignore[attr-defined]


async def test_raw_protocol_names_objects_cumulative_acks_and_errors() -> None:
    """The simulator as a cbpro-era client sees it: channel names with top-level product_ids, objects,
    cumulative acks, per-product sequences, and the errors with their reasons."""
    from websockets.asyncio.client import connect

    async with make_exchange_sim(warmup=300) as sim, connect(sim.url) as ws:

        async def until_type(kind: str) -> dict[str, Any]:
            async with asyncio.timeout(5):
                while True:
                    msg = json.loads(await ws.recv())
                    if msg["type"] == kind:
                        return msg

        await ws.send(
            json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["heartbeat"]})
        )
        assert (await until_type("subscriptions"))["channels"] == [
            {"name": "heartbeat", "product_ids": ["BTC-USD"]}
        ]
        await ws.send(
            json.dumps({"type": "subscribe", "channels": [{"name": "matches", "product_ids": ["ETH-USD"]}]})
        )
        ack = await until_type("subscriptions")  # cumulative: both channels
        assert ack["channels"] == [
            {"name": "heartbeat", "product_ids": ["BTC-USD"]},
            {"name": "matches", "product_ids": ["ETH-USD"]},
        ]
        assert (await until_type("last_match"))["product_id"] == "ETH-USD"
        hb1, hb2 = await until_type("heartbeat"), await until_type("heartbeat")
        assert hb2["sequence"] >= hb1["sequence"] and hb1["product_id"] == "BTC-USD"
        await ws.send(
            json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"]})
        )  # cbpro 1.1.4: no channels
        assert (await until_type("error"))["message"] == "Failed to subscribe"
        await ws.send(json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["full"]}))
        assert await until_type("error") == {
            "type": "error",
            "message": "Failed to subscribe",
            "reason": AUTH_REQUIRED,
        }
        await ws.send(json.dumps({"type": "subscribe", "product_ids": ["NOPE-USD"], "channels": ["ticker"]}))
        assert (await until_type("error"))["reason"] == "NOPE-USD is not a valid product"


async def test_user_channel_carries_own_orders_only() -> None:
    async with make_exchange_sim(rate=800.0) as sim:
        feed = exchange_feed(sim, ["heartbeat", "user"])
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, OrderUpdate), 15)
            assert not any(isinstance(e, (BookUpdate, Trade)) for e in events)
            order = events[-1]
            assert isinstance(order, OrderUpdate) and order.product in ("BTC-USD", "ETH-USD")
            assert order.status in ("received", "open", "match", "change") or order.status.startswith("done")


async def test_stall_is_detected_and_reconnected_and_the_book_rebuilt() -> None:
    async with make_exchange_sim(faults=Faults(stall_after_messages=200)) as sim:
        feed = exchange_feed(sim, ["heartbeat", "full"])
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, Stale), 10)
            assert any(isinstance(e, BookSnapshot) for e in events)
            await take_until(feed, lambda e: isinstance(e, BookResynced), 10)
            await settle_exchange(feed, sim)
            assert client_book(feed, "BTC-USD") == true_book(sim, "BTC-USD")


async def test_slow_rest_snapshot_keeps_messages_and_applies_the_newer_ones() -> None:
    async with make_exchange_sim(rate=800.0, faults=Faults(snapshot_delay=0.4)) as sim:
        feed = exchange_feed(sim, ["heartbeat", "full"])
        async with feed:
            events = await take_products(feed, BookSnapshot, ["BTC-USD", "ETH-USD"], 10)
            snap = next(e for e in events if isinstance(e, BookSnapshot))
            # the market ran on during the 0.4 s the snapshot took: those messages were kept, and the
            # ones newer than the snapshot are applied right after it, in the same batch
            replayed = [e for e in events if isinstance(e, BookUpdate) and e.recv_ts == snap.recv_ts]
            assert replayed and all(e.product == snap.product for e in replayed)
            await settle_exchange(feed, sim)
            for product in ("BTC-USD", "ETH-USD"):
                assert client_book(feed, product) == true_book(sim, product)


async def test_the_chart_starts_with_rest_candles_and_goes_on_from_trades() -> None:
    """No candle channel on this venue: the minutes before come from REST (JSON numbers, kept exact),
    the ones after from the trades."""
    async with make_exchange_sim(warmup=3000, rate=200.0) as sim:
        feed = exchange_feed(sim, ["heartbeat", "matches"], auth=False)
        async with feed:
            await take_until(
                feed, lambda _e: len(feed.store.venue_candles.get((V, "BTC-USD"), {}).get(60, ())) > 10, 10
            )
            m = sim.market("BTC-USD")
            truth = {b.start: b for b in m.bars(60)}
            history = feed.store.venue_candles[(V, "BTC-USD")][60]
            for bar in list(history.bars)[-10:-1]:
                t = truth[bar.start]
                assert (bar.open, bar.high, bar.low, bar.close) == tuple(
                    m.price_text(x) for x in (t.open, t.high, t.low, t.close)
                )
            await take_until(feed, lambda e: isinstance(e, Trade), 10)
            series = feed.store.candle_series(V, "BTC-USD", 60)
            assert series is not None and series.bars[0].start == history.bars[0].start
