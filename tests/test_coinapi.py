"""CoinAPI: exact numbers, hello semantics and filters, per-(type, symbol) sequences, the book through
gaps, the reconnect notice, final errors and every fault, against the simulator over loopback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tickerterm.core.errors import ConfigError, FrameError
from tickerterm.core.events import (
    BookResynced,
    BookSnapshot,
    BookUpdate,
    Candle,
    Closed,
    Gap,
    GaveUp,
    Heartbeat,
    Malformed,
    RetryScheduled,
    Ticker,
    Trade,
    VenueError,
    change,
)
from tickerterm.sim.coinapi import CoinApiSim
from tickerterm.sim.faults import Faults
from tickerterm.stream.feed import Feed
from tickerterm.venues.coinapi import CoinApi, CoinApiParser

from .conftest import FAST, ExactBook, fast_policy, feed_book, settle_books, sim_book, take_until

V = "coinapi"
R = 3.0
T = "2025-01-14T16:49:58.3318050Z"
TV = 1736873398.331805
BTC = "COINBASE:BTC-USD"


@pytest.fixture
def parser() -> CoinApiParser:
    return CoinApi().parser(V)


def test_products_and_symbol_ids() -> None:
    adapter = CoinApi()
    assert adapter.normalize_product("btc-usd") == "COINBASE:BTC-USD"  # the default exchange
    assert adapter.normalize_product("BITSTAMP:BTC-USD") == "BITSTAMP:BTC-USD"
    assert adapter.normalize_product("BITSTAMP_SPOT_BTC_USD") == "BITSTAMP:BTC-USD"
    with pytest.raises(ConfigError, match="EXCHANGE:BASE-QUOTE"):
        adapter.normalize_product("BTCUSD")


def test_trade_numbers_stay_exact_and_taker_side(parser: CoinApiParser) -> None:
    # field order as on the wire: type last; JSON numbers, not strings
    raw = (
        b'{"time_exchange":"' + T.encode() + b'","time_coinapi":"' + T.encode() + b'","uuid":"fa42708a",'
        b'"price":95495.10,"size":0.00310908,"taker_side":"BUY_ESTIMATED",'
        b'"symbol_id":"COINBASE_SPOT_BTC_USD","sequence":5231604,"type":"trade"}'
    )
    assert parser.parse(raw, R) == [Trade(V, R, BTC, TV, "fa42708a", "95495.10", "0.00310908", "buy")]
    more = raw.replace(b"5231604", b"5231605").replace(b"0.00310908", b"2").replace(b"BUY_ESTIMATED", b"SELL")
    assert parser.parse(more, R) == [Trade(V, R, BTC, TV, "fa42708a", "95495.10", "2", "sell")]
    index_point = raw.replace(b"5231604", b"5231606").replace(b"0.00310908", b"0")
    assert parser.parse(index_point, R) == []  # size 0: an index data point, not a trade
    assert parser.parse(raw, R) == [] and parser.out_of_order == 1  # older than the last: ignored


def test_quote_book_ohlcv_heartbeat(parser: CoinApiParser) -> None:
    quote = {
        "time_exchange": T,
        "time_coinapi": T,
        "ask_price": 1,
        "ask_size": 0,
        "bid_price": 0.5,
        "bid_size": 2.25,
        "symbol_id": "COINBASE_SPOT_BTC_USD",
        "sequence": 1,
        "type": "quote",
    }
    assert parser.parse(json.dumps(quote), R) == [
        Ticker(V, R, BTC, TV, bid="0.5", bid_size="2.25", ask="1", ask_size=None)  # size 0: unknown
    ]
    base = {"symbol_id": "COINBASE_SPOT_BTC_USD", "time_exchange": T, "time_coinapi": T, "type": "book"}
    update = {**base, "sequence": 1, "is_snapshot": False, "bids": [{"price": 99, "size": 1}], "asks": []}
    assert parser.parse(json.dumps(update), R) == []  # before the first snapshot: dropped, counted
    assert parser.before_snapshot == 1
    snap = {
        **base,
        "sequence": 2,
        "is_snapshot": True,
        "bids": [{"price": 100.5, "size": 1.5}],
        "asks": [{"price": 101, "size": 0.25}],
    }
    assert parser.parse(json.dumps(snap), R) == [
        BookSnapshot(V, R, BTC, TV, [("100.5", "1.5")], [("101", "0.25")])
    ]
    update = {**base, "sequence": 3, "is_snapshot": False, "bids": [{"price": 100.5, "size": 0}], "asks": []}
    assert parser.parse(json.dumps(update), R) == [BookUpdate(V, R, BTC, TV, [change("bid", "100.5", "0")])]
    top = {**base, "type": "book5", "sequence": 1, "bids": [{"price": 1, "size": 1}], "asks": []}
    assert parser.parse(json.dumps(top), R) == [BookSnapshot(V, R, BTC, TV, [("1", "1")], [])]
    bar = {
        "symbol_id": "COINBASE_SPOT_BTC_USD",
        "sequence": 1,
        "period_id": "1MIN",
        "time_period_start": "2025-01-14T16:49:00.0000000Z",
        "time_period_end": "2025-01-14T16:50:00.0000000Z",
        "price_open": 10,
        "price_high": 12.5,
        "price_low": 9.75,
        "price_close": 11,
        "volume_traded": 3.5,
        "trades_count": 4,
        "type": "ohlcv",
    }
    assert parser.parse(json.dumps(bar), R) == [
        Candle(V, R, BTC, None, 1736873340, 60, "10", "12.5", "9.75", "11", "3.5")
    ]
    assert parser.parse(b'{"type":"hearbeat"}', R) == [Heartbeat(V, R, V, None)]  # sic


def test_sequences_per_type_and_symbol_and_book_gaps(parser: CoinApiParser) -> None:
    def book(seq: int, snapshot: bool, symbol: str = "COINBASE_SPOT_BTC_USD") -> str:
        return json.dumps(
            {
                "symbol_id": symbol,
                "sequence": seq,
                "is_snapshot": snapshot,
                "type": "book",
                "bids": [{"price": 1, "size": seq}],
                "asks": [],
            }
        )

    parser.parse(book(1, True), R)
    parser.parse(book(1, True, "BITSTAMP_SPOT_BTC_USD"), R)  # its own counter
    assert len(parser.parse(book(2, False), R)) == 1
    out = parser.parse(book(5, False), R)
    assert out == [Gap(V, R, V, 3, 5, "book:COINBASE:BTC-USD")]  # lost: and this update is not applied
    assert CoinApi().gap_products(out[0], [BTC, "BITSTAMP:BTC-USD"]) == [BTC]  # type: ignore[arg-type]
    assert parser.parse(book(6, False), R) == []  # still waiting for a snapshot
    assert parser.parse(book(7, True), R)[0].type == "book_snapshot"
    trade = {
        "symbol_id": "COINBASE_SPOT_BTC_USD",
        "sequence": 1,
        "uuid": "u",
        "price": 1,
        "size": 1,
        "taker_side": "BUY",
        "type": "trade",
    }
    parser.parse(json.dumps(trade), R)
    [gap, _] = parser.parse(json.dumps({**trade, "sequence": 4}), R)
    assert gap == Gap(V, R, V, 2, 4, "trade:COINBASE:BTC-USD")
    assert CoinApi().gap_products(gap, [BTC]) == []  # lost trades are reported; no book is touched


def test_notices_and_errors(parser: CoinApiParser) -> None:
    # the docs' example of this message is broken JSON; this is the real shape
    [ev] = parser.parse(
        b'{"type":"reconnect","within_seconds":10,"before_time":"2020-08-06T19:19:09.7035429Z"}', R
    )
    assert ev.message == "the venue asks to reconnect before 2020-08-06T19:19:09.7035429Z"
    assert CoinApi().classify_error(ev.message) == "reconnect"
    [err] = parser.parse(b'{"type":"error","message":"Invalid API key"}', R)
    assert CoinApi().classify_error(err.message) == "auth"
    assert CoinApi().classify_error("book data types require a subscribe_filter_symbol_id filter") == "fatal"
    assert (
        CoinApi().classify_error("Reached maximum allowed buffered messages for this connection.")
        == "transient"
    )
    for raw in (
        b"[",
        b"[1]",
        b'{"type":"trade","symbol_id":"COINBASE_SPOT_BTC_USD","price":"1","size":1,"uuid":"u","taker_side":"BUY"}',
        b'{"type":"trade","symbol_id":"COINBASE_SPOT_BTC_USD","price":-1,"size":1,"uuid":"u","taker_side":"BUY"}',
    ):
        with pytest.raises(FrameError):
            parser.parse(raw, R)


def test_hello_states_the_whole_scope_with_exact_filters_and_no_key() -> None:
    adapter = CoinApi(credentials=CoinApiSim().client_credentials())
    [frame] = adapter.scope_frames({"book": [BTC, "BITSTAMP:BTC-USD"], "trade": [BTC], "ohlcv": [BTC]})
    assert json.loads(frame) == {
        "type": "hello",
        "heartbeat": True,
        "subscribe_data_type": ["book", "trade", "ohlcv"],
        "subscribe_filter_symbol_id": ["BITSTAMP_SPOT_BTC_USD$", "COINBASE_SPOT_BTC_USD$"],
        "subscribe_filter_period_id": ["1MIN"],
    }
    assert "apikey" not in frame and adapter.connect_headers("market")["X-CoinAPI-Key"]


# --- against the simulator ----------------------------------------------------------------------


def make_coinapi_sim(**kwargs: Any) -> CoinApiSim:
    options: dict[str, Any] = dict(rate=400.0, depth=300, seed=7, timing=FAST, faults=Faults())
    options.update(kwargs)
    return CoinApiSim(**options)


def coinapi_feed(sim: CoinApiSim, channels: list[str], products: list[str] | None = None, **kw: Any) -> Feed:
    adapter = CoinApi(urls={"market": sim.url, "rest": sim.http_url}, credentials=sim.client_credentials())
    return Feed(adapter, products or [BTC, "COINBASE:ETH-USD"], channels, policy=fast_policy(), seed=3, **kw)


def true_book(sim: Any, product: str) -> ExactBook:
    return sim_book(sim, product)


def client_book(feed: Feed, product: str) -> ExactBook:
    return feed_book(feed, V, product)


async def settle(feed: Feed, sim: CoinApiSim, products: list[str], timeout: float = 15.0) -> None:
    """Settled once two heartbeats are in (sent after a quiet second, so after every batch)."""
    await settle_books(feed, sim, V, products, lambda e, _paused: isinstance(e, Heartbeat), 2, timeout)


async def test_book_equals_the_true_book_through_gaps() -> None:
    async with make_coinapi_sim(faults=Faults(drop_rate=0.03)) as sim:
        feed = coinapi_feed(sim, ["book", "trade"])
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, BookResynced), 15)
            assert any(isinstance(e, Gap) and e.scope.startswith("book:") for e in events)
            hellos = [m for m in sim.all_connections[0].received if m["type"] == "hello"]
            assert len(hellos) >= 2  # the resync resent the hello: a fresh snapshot
            sim.faults.drop_rate = 0.0
            await settle(feed, sim, [BTC, "COINBASE:ETH-USD"])
            for product in (BTC, "COINBASE:ETH-USD"):
                assert client_book(feed, product) == true_book(sim, product)


async def test_filter_semantics_prefix_exact_and_hello_subscribe_unsubscribe() -> None:
    from websockets.asyncio.client import connect

    async with make_coinapi_sim(rate=2000.0) as sim:  # many quotes a second: each step below reads 60
        key = sim.client_credentials().secret.reveal()
        async with connect(sim.url, additional_headers={"X-CoinAPI-Key": key}) as ws:

            async def symbols(n: int = 60) -> set[str]:
                got = set()
                for _ in range(n):
                    msg = json.loads(await ws.recv())
                    if "symbol_id" in msg:
                        got.add(msg["symbol_id"])
                return got

            await ws.send(
                json.dumps(
                    {
                        "type": "hello",
                        "subscribe_data_type": ["trade", "quote"],
                        "subscribe_filter_symbol_id": ["COINBASE_"],
                    }
                )
            )
            assert await symbols() == {
                "COINBASE_SPOT_BTC_USD",
                "COINBASE_SPOT_ETH_USD",
                "COINBASE_SPOT_SOL_USD",
            }
            await ws.send(
                json.dumps(
                    {
                        "type": "hello",
                        "subscribe_data_type": ["quote"],
                        "subscribe_filter_symbol_id": ["COINBASE_SPOT_BTC_USD$"],
                    }
                )
            )
            await symbols(10)  # what was in flight
            assert await symbols() == {"COINBASE_SPOT_BTC_USD"}  # hello replaced the scope; $ is exact
            await ws.send(json.dumps({"type": "subscribe", "subscribe_filter_symbol_id": ["BITSTAMP_"]}))
            await symbols(10)
            assert await symbols(100) == {"COINBASE_SPOT_BTC_USD", "BITSTAMP_SPOT_BTC_USD"}
            await ws.send(
                json.dumps({"type": "unsubscribe", "subscribe_filter_symbol_id": ["COINBASE_SPOT_BTC_USD$"]})
            )
            await symbols(10)
            assert await symbols() == {"BITSTAMP_SPOT_BTC_USD"}
            await ws.send(
                json.dumps(
                    {"type": "hello", "subscribe_data_type": ["book20"], "subscribe_filter_symbol_id": []}
                )
            )
            while (msg := json.loads(await ws.recv()))["type"] != "error":
                pass
            assert msg == {
                "type": "error",
                "message": "book data types require a subscribe_filter_symbol_id filter",
            }
        async with connect(sim.url) as ws:  # the key in the hello itself (older docs) works too
            await ws.send(json.dumps({"type": "hello", "apikey": "wrong", "subscribe_data_type": ["trade"]}))
            assert json.loads(await ws.recv()) == {"type": "error", "message": "Invalid API key"}


async def test_reconnect_notice_is_honoured_before_the_deadline_without_losing_state() -> None:
    async with make_coinapi_sim(faults=Faults(reconnect_notice_after=0.5)) as sim:
        feed = coinapi_feed(sim, ["book", "quote", "ohlcv"])
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, RetryScheduled), 10)
            assert any(isinstance(e, VenueError) and "reconnect before" in e.message for e in events)
            assert events[-1].attempt == 0  # type: ignore[attr-defined]
            assert not any(isinstance(e, Closed) and e.code == 1001 for e in events)  # we left first
            await take_until(feed, lambda e: isinstance(e, BookResynced), 10)
            hello = [m for m in sim.all_connections[-1].received if m["type"] == "hello"][-1]
            assert hello["subscribe_data_type"] == ["book", "quote", "ohlcv"]
            await take_until(feed, lambda e: isinstance(e, Candle), 10)
            await settle(feed, sim, [BTC, "COINBASE:ETH-USD"])
            assert client_book(feed, BTC) == true_book(sim, BTC)
            await asyncio.sleep(1.2)  # past the notice's deadline: the server closes only the old one
            assert not sim.all_connections[-1].closing and len(sim.all_connections) == 2
            assert feed.store.health["coinapi"].retries == 1  # one planned reconnect, not a second


async def test_live_changes_resend_the_whole_scope() -> None:
    async with make_coinapi_sim() as sim:
        feed = coinapi_feed(sim, ["trade"], [BTC])
        async with feed:
            await take_until(feed, lambda e: isinstance(e, Trade), 10)
            await feed.subscribe("book5", ["BITSTAMP:BTC-USD"])
            await take_until(
                feed, lambda e: isinstance(e, BookSnapshot) and e.product == "BITSTAMP:BTC-USD", 10
            )
            await feed.unsubscribe("trade")

            def hellos_of() -> list[dict[str, Any]]:
                return [m for m in sim.all_connections[0].received if m["type"] == "hello"]

            await take_until(feed, lambda _e: len(hellos_of()) == 3, 10)
            hellos = hellos_of()
            assert [h["subscribe_data_type"] for h in hellos] == [["trade"], ["trade", "book5"], ["book5"]]
            assert hellos[1]["subscribe_filter_symbol_id"] == [
                "BITSTAMP_SPOT_BTC_USD$",
                "COINBASE_SPOT_BTC_USD$",
            ]


async def test_refused_key_gives_up_naming_the_variable() -> None:
    async with make_coinapi_sim(faults=Faults(refuse_auth=True)) as sim:
        feed = coinapi_feed(sim, ["trade"])
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, GaveUp), 10)
            assert "COINAPI_KEY" in events[-1].reason  # type: ignore[attr-defined]
            assert sim.stats["connections"] == 1  # not retried in a loop


@pytest.mark.parametrize(
    "faults",
    [
        Faults(close_code=1011, close_after_messages=300),
        Faults(close_code=1006, close_after_seconds=0.5),
        Faults(malformed_rate=0.05, unknown_rate=0.05),
        Faults(stall_after_messages=200),
    ],
    ids=["close-1011", "cut-1006", "malformed-unknown", "stall"],
)
async def test_faults_are_survived_and_the_book_converges(faults: Faults) -> None:
    async with make_coinapi_sim(faults=faults) as sim:
        feed = coinapi_feed(sim, ["book", "trade"])
        async with feed:
            await take_until(feed, lambda e: isinstance(e, BookSnapshot), 10)
            if faults.malformed_rate:
                await take_until(feed, lambda e: isinstance(e, Malformed), 10)
            else:
                await take_until(feed, lambda e: isinstance(e, BookResynced), 15)
            sim.faults.malformed_rate = sim.faults.unknown_rate = 0.0
            await settle(feed, sim, [BTC, "COINBASE:ETH-USD"])
            assert client_book(feed, BTC) == true_book(sim, BTC)


async def test_ohlcv_starts_with_its_history_from_rest_with_the_key() -> None:
    async with make_coinapi_sim(warmup=3000, rate=200.0) as sim:
        feed = coinapi_feed(sim, ["ohlcv"], [BTC])
        async with feed:
            await take_until(
                feed, lambda _e: len(feed.store.venue_candles.get((V, BTC), {}).get(60, ())) > 10, 10
            )
            m = sim.market(BTC)
            truth = {b.start: b for b in m.bars(60)}
            bars = list(feed.store.venue_candles[(V, BTC)][60].bars)
            for bar in bars[-10:-1]:  # exact: JSON numbers decoded from their text
                t = truth[bar.start]
                assert (bar.open, bar.high, bar.low, bar.close) == tuple(
                    m.price_text(x) for x in (t.open, t.high, t.low, t.close)
                )
            assert not feed.store.health[V].errors  # the REST call carried the key (else 401)
