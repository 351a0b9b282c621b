"""Bitzoom (Binance-style): exact parsing per stream, diff-depth sync through gaps, sharding past 200
streams, the outbound rate limit, listen keys (keepalive, expiry), shutdown notices and every fault."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, ClassVar

import pytest

from tickerterm.core.errors import ConfigError, FrameError
from tickerterm.core.events import (
    BalanceUpdate,
    BookResynced,
    BookSnapshot,
    BookUpdate,
    Candle,
    Closed,
    Event,
    Gap,
    GaveUp,
    Malformed,
    OrderUpdate,
    RetryScheduled,
    Subscribed,
    Ticker,
    Trade,
    VenueError,
    change,
)
from tickerterm.sim.bitzoom import BitzoomSim
from tickerterm.sim.faults import Faults
from tickerterm.sim.market import ProductSpec
from tickerterm.stream.feed import Feed
from tickerterm.stream.policy import RateLimiter
from tickerterm.venues.auth import ApiToken, Secret
from tickerterm.venues.bitzoom import KLINE_INTERVALS, Bitzoom, BitzoomParser, product_of

from .conftest import FAST, ExactBook, fast_policy, feed_book, settle_books, sim_book, take_until

V = "bitzoom"
R = 7.0


def enc(msg: Any) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


def wrap(stream: str, data: Any) -> bytes:
    return enc({"stream": stream, "data": data})


@pytest.fixture
def parser() -> BitzoomParser:
    return Bitzoom().parser(V)


# --- parsing ------------------------------------------------------------------------------------


def test_symbols_and_products() -> None:
    assert product_of("BTCUSDT") == "BTC-USDT" and product_of("ethbtc") == "ETH-BTC"
    assert product_of("BTCFDUSD") == "BTC-FDUSD"
    adapter = Bitzoom()
    assert adapter.normalize_product("btc-usdt") == "BTC-USDT"
    with pytest.raises(ConfigError, match="quote asset"):
        adapter.normalize_product("BTC-XYZ")


def test_tickers_mark_price_and_all_tickers(parser: BitzoomParser) -> None:
    tick = {
        "e": "24hrTicker",
        "E": 1672515782136,
        "s": "BTCUSDT",
        "p": "500.00",
        "P": "1.02",
        "w": "49500.00",
        "c": "50000.00",
        "Q": "0.500",
        "o": "49500.00",
        "h": "51000.00",
        "l": "49000.00",
        "v": "10000.000",
        "q": "495000000.00",
        "O": 0,
        "C": 0,
        "F": 100,
        "L": 200,
        "n": 101,
    }
    expected = Ticker(
        V,
        R,
        "BTC-USDT",
        1672515782.136,
        price="50000.00",
        volume_24h="10000.000",
        low_24h="49000.00",
        high_24h="51000.00",
        change_pct_24h="1.02",
    )
    assert parser.parse(wrap("btcusdt@ticker", tick), R) == [expected]
    assert parser.parse(enc(tick), R) == [expected]  # a raw (/ws) connection: the same event
    assert parser.parse(wrap("!ticker@arr", [tick, {**tick, "s": "ETHUSDT"}]), R)[1].product == "ETH-USDT"
    mini = {
        "e": "24hrMiniTicker",
        "E": 1672515782136,
        "s": "BTCUSDT",
        "c": "50000.00",
        "o": "49500.00",
        "h": "51000.00",
        "l": "49000.00",
        "v": "10000.000",
        "q": "1",
    }
    [m] = parser.parse(wrap("btcusdt@miniTicker", mini), R)
    assert (m.price, m.change_pct_24h) == ("50000.00", "1.01")
    mark = {
        "e": "markPriceUpdate",
        "E": 1672515782136,
        "s": "BTCUSDT",
        "p": "50000.00",
        "i": "50010.00",
        "P": "50001",
        "r": "-0.00010000",
        "T": 1672531200000,
    }
    assert parser.parse(wrap("btcusdt@markPrice@1s", mark), R) == [
        Ticker(
            V,
            R,
            "BTC-USDT",
            1672515782.136,
            mark="50000.00",
            index="50010.00",
            funding_rate="-0.00010000",
            next_funding=1672531200.0,
        )
    ]


def test_trades_aggressor_from_m_and_klines(parser: BitzoomParser) -> None:
    trade = {
        "e": "trade",
        "E": 1672515782136,
        "s": "BTCUSDT",
        "t": 12345,
        "p": "50000.00",
        "q": "0.100",
        "T": 1672515782100,
        "m": True,
    }
    # m: the buyer was the maker, so the seller took the price: a sell
    assert parser.parse(wrap("btcusdt@trade", trade), R) == [
        Trade(V, R, "BTC-USDT", 1672515782.1, "12345", "50000.00", "0.100", "sell")
    ]
    agg = {
        "e": "aggTrade",
        "E": 1,
        "s": "ETHUSDT",
        "a": 77,
        "p": "3000.5",
        "q": "2",
        "f": 1,
        "l": 3,
        "T": 1672515782100,
        "m": False,
    }
    assert parser.parse(wrap("ethusdt@aggTrade", agg), R) == [
        Trade(V, R, "ETH-USDT", 1672515782.1, "77", "3000.5", "2", "buy")
    ]
    for interval, seconds in KLINE_INTERVALS.items():
        k = {
            "t": 1672512000000,
            "T": 1672515599999,
            "s": "BTCUSDT",
            "i": interval,
            "o": "49500.00",
            "c": "50000.00",
            "h": "50100.00",
            "l": "49400.00",
            "v": "1000.000",
            "n": 500,
            "x": False,
            "q": "1",
        }
        assert parser.parse(
            wrap(f"btcusdt@kline_{interval}", {"e": "kline", "E": 1, "s": "BTCUSDT", "k": k}), R
        ) == [
            Candle(
                V,
                R,
                "BTC-USDT",
                0.001,
                1672512000,
                seconds,
                "49500.00",
                "50100.00",
                "49400.00",
                "50000.00",
                "1000.000",
            )
        ]
    assert len(KLINE_INTERVALS) == 15


def test_control_answers_and_nested_errors(parser: BitzoomParser) -> None:
    assert parser.parse(enc({"result": None, "id": 1}), R) == []
    assert parser.parse(
        enc({"result": ["btcusdt@aggTrade", "ethusdt@aggTrade", "!ticker@arr"], "id": 3}), R
    ) == [Subscribed(V, R, V, {"aggTrade": ["BTC-USDT", "ETH-USDT"], "!ticker@arr": []})]
    [err] = parser.parse(enc({"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 1}), R)
    assert err == VenueError(V, R, V, "error 2: Invalid request: invalid stream")
    assert Bitzoom().classify_error(err.message) == "command"
    [flat] = parser.parse(enc({"code": 3, "msg": "Invalid JSON"}), R)  # the docs' flat form, just in case
    assert flat.message == "error 3: Invalid JSON"
    for notice, text in (
        ({"e": "listenKeyExpired", "E": 1}, "listen key expired"),
        ({"e": "serverShutdown", "E": 1}, "server shutdown notice"),
    ):
        [ev] = parser.parse(enc(notice), R)
        assert ev.message == text and Bitzoom().classify_error(text) == "reconnect"


def test_user_data_events(parser: BitzoomParser) -> None:
    account = {
        "e": "ACCOUNT_UPDATE",
        "E": 1672515782136,
        "T": 1,
        "a": {
            "m": "ORDER",
            "B": [{"a": "USDT", "wb": "10000.00", "cw": "9500.00"}],
            "P": [{"s": "BTCUSDT", "pa": "-0.100", "ep": "50000.00", "up": "50.00"}],
        },
    }
    assert parser.parse(enc(account), R) == [
        BalanceUpdate(
            V,
            R,
            1672515782.136,
            {
                "reason": "ORDER",
                "USDT.wallet_balance": "10000.00",
                "USDT.cross_wallet": "9500.00",
                "BTC-USDT.position": "-0.100",
                "BTC-USDT.entry_price": "50000.00",
                "BTC-USDT.unrealized_pnl": "50.00",
            },
        )
    ]
    order = {
        "e": "ORDER_TRADE_UPDATE",
        "E": 1672515782136,
        "T": 1,
        "o": {
            "s": "BTCUSDT",
            "c": "myOrder123",
            "S": "BUY",
            "o": "LIMIT",
            "f": "GTC",
            "q": "0.100",
            "p": "50000.00",
            "ap": "0",
            "sp": "0",
            "x": "NEW",
            "X": "NEW",
            "i": 123456789,
            "l": "0",
            "z": "0.025",
            "L": "0",
            "T": 1,
            "t": 0,
            "n": "0.0125",
            "N": "USDT",
            "rp": "0",
        },
    }
    assert parser.parse(enc(order), R) == [
        OrderUpdate(
            V,
            R,
            "BTC-USDT",
            1672515782.136,
            "123456789",
            "buy",
            "LIMIT",
            "NEW",
            "50000.00",
            "0.025",
            "0.075",
            "0",
            client_order_id="myOrder123",
            fee="0.0125",
            fee_asset="USDT",
        )
    ]


def depth(
    U: int, u: int, pu: int, b: list[list[str]] | None = None, a: list[list[str]] | None = None
) -> bytes:
    return wrap(
        "btcusdt@depth@100ms",
        {
            "e": "depthUpdate",
            "E": 1000,
            "T": 1000,
            "s": "BTCUSDT",
            "U": U,
            "u": u,
            "pu": pu,
            "b": b or [],
            "a": a or [],
        },
    )


def test_diff_depth_sync_by_the_futures_rule(parser: BitzoomParser) -> None:
    # buffered until the snapshot; a snapshot is asked for
    assert parser.parse(depth(90, 95, 80, [["100", "1"]]), R) == []
    assert parser.parse(depth(96, 104, 95, [["101", "2"]]), R) == []
    assert parser.parse(depth(108, 110, 104, a=[["102", "3"]]), R) == []
    assert parser.snapshot_wanted == [("depth", "BTC-USDT")]
    body = enc({"lastUpdateId": 100, "bids": [["100", "5"], ["99", "1"]], "asks": [["102", "1"]]})
    out = parser.apply_snapshot("depth", "BTC-USDT", body, R)
    # u < lastUpdateId dropped; the first applied brackets it; the next links by pu
    assert out == [
        BookSnapshot(V, R, "BTC-USDT", None, [("100", "5"), ("99", "1")], [("102", "1")]),
        BookUpdate(V, R, "BTC-USDT", 1.0, [change("bid", "101", "2")]),
        BookUpdate(V, R, "BTC-USDT", 1.0, [change("ask", "102", "3")]),
    ]
    assert parser.parse(depth(111, 111, 110, [["100", "0"]]), R) == [
        BookUpdate(V, R, "BTC-USDT", 1.0, [change("bid", "100", "0")])
    ]
    assert parser.parse(depth(105, 109, 104), R) == []  # older than what was applied: ignored
    parser.snapshot_wanted.clear()
    # a broken link: events were lost
    assert parser.parse(depth(130, 131, 120), R) == [Gap(V, R, V, 111, 120, "depth:BTC-USDT")]
    assert parser.snapshot_wanted == [("depth", "BTC-USDT")]
    assert Bitzoom().gap_products(Gap(V, R, V, 1, 2, "depth:BTC-USDT"), ["BTC-USDT", "ETH-USDT"]) == [
        "BTC-USDT"
    ]


def test_first_event_links_by_pu_when_nothing_happened_since_the_snapshot(parser: BitzoomParser) -> None:
    parser.parse(depth(80, 90, 70), R)  # older than the snapshot: dropped
    out = parser.apply_snapshot("depth", "BTC-USDT", enc({"lastUpdateId": 95, "bids": [], "asks": []}), R)
    assert out == [BookSnapshot(V, R, "BTC-USDT", None, [], [])]
    # ids are shared by every symbol: this one starts well after 95 but links to it
    assert parser.parse(depth(140, 150, 95, [["1", "1"]]), R) == [
        BookUpdate(V, R, "BTC-USDT", 1.0, [change("bid", "1", "1")])
    ]


def test_a_snapshot_older_than_the_stream_is_refetched(parser: BitzoomParser) -> None:
    parser.parse(depth(200, 210, 190), R)
    parser.snapshot_wanted.clear()
    out = parser.apply_snapshot("depth", "BTC-USDT", enc({"lastUpdateId": 150, "bids": [], "asks": []}), R)
    assert out == [Gap(V, R, V, 150, 200, "depth:BTC-USDT")] and parser.snapshot_wanted == [
        ("depth", "BTC-USDT")
    ]


def test_partial_depth_is_a_whole_book_each_time(parser: BitzoomParser) -> None:
    msg = {
        "e": "depthUpdate",
        "E": 1,
        "T": 1,
        "s": "BTCUSDT",
        "U": 5,
        "u": 9,
        "pu": 4,
        "b": [["100", "1"]],
        "a": [["101", "2"]],
    }
    assert parser.parse(wrap("btcusdt@depth5@100ms", msg), R) == [
        BookSnapshot(V, R, "BTC-USDT", 0.001, [("100", "1")], [("101", "2")])
    ]


@pytest.mark.parametrize(
    "raw",
    [
        b"{oops",
        enc({"e": "trade", "s": "BTCUSDT", "t": 1, "p": "1", "q": "1", "T": 1, "m": "yes"}),
        enc({"e": "24hrTicker", "s": "BTCUSDT", "c": "NaN", "v": "1", "l": "1", "h": "1", "P": "0"}),
        wrap("btcusdt@depth", {"e": "depthUpdate", "s": "BTCUSDT", "U": "1", "u": 2, "b": [], "a": []}),
        enc({"e": "trade", "s": "BTCXYZ", "t": 1, "p": "1", "q": "1", "T": 1, "m": True}),
    ],
)
def test_malformed_frames_raise(parser: BitzoomParser, raw: bytes) -> None:
    with pytest.raises(FrameError):
        parser.parse(raw, R)


# --- frames, limits -----------------------------------------------------------------------------


def test_control_frames_lowercase_streams_ids_and_list() -> None:
    adapter = Bitzoom()
    frames = [json.loads(f) for f in adapter.subscribe_frames("depth@100ms", ["BTC-USDT", "ETH-USDT"])]
    assert frames == [
        {"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms", "ethusdt@depth@100ms"], "id": 1},
        {"method": "LIST_SUBSCRIPTIONS", "id": 2},
    ]
    frames = [json.loads(f) for f in adapter.unsubscribe_frames("markPrice@1s", None, listed=["SOL-USDT"])]
    assert frames[0] == {"method": "UNSUBSCRIBE", "params": ["solusdt@markPrice@1s"], "id": 3}
    assert adapter.subscribe_frames("user", []) == []  # the listen key in the URL is the subscription
    assert adapter.url("market") == "wss://stream.bitzoom.com/stream"
    assert adapter.url_with_key("user", "abc") == "wss://stream.bitzoom.com/ws/abc"
    assert adapter.display_url("user") == "wss://stream.bitzoom.com/ws/<listenKey>"


async def test_rate_limiter_never_lets_more_than_ten_go_in_a_second() -> None:
    limiter = RateLimiter(Bitzoom.outbound_per_second, Bitzoom.outbound_burst)
    times = []
    for _ in range(25):
        await limiter.acquire()
        times.append(time.monotonic())
    most = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert most <= 10


# --- against the simulator ----------------------------------------------------------------------


def make_bitzoom_sim(**kwargs: Any) -> BitzoomSim:
    options: dict[str, Any] = dict(rate=400.0, depth=300, seed=7, timing=FAST, faults=Faults())
    options.update(kwargs)
    return BitzoomSim(**options)


def bitzoom_feed(sim: BitzoomSim, channels: list[str], products: list[str] | None = None, **kw: Any) -> Feed:
    adapter = kw.pop("adapter", None) or Bitzoom(
        urls={"market": sim.url, "user": sim.url, "rest": sim.http_url}, credentials=sim.client_credentials()
    )
    return Feed(
        adapter,
        products or ["BTC-USDT", "ETH-USDT"],
        channels,
        policy=kw.pop("policy", None) or fast_policy(stale_after=2.0),
        seed=3,
        **kw,
    )


def true_book(sim: Any, product: str) -> ExactBook:
    return sim_book(sim, product)


def client_book(feed: Feed, product: str) -> ExactBook:
    return feed_book(feed, V, product)


async def settle(feed: Feed, sim: BitzoomSim, products: list[str], timeout: float = 15.0) -> None:
    """Settled once two ticker rounds stamped after the pause are in."""

    def ticker(e: Event, paused: float) -> bool:
        return isinstance(e, Ticker) and e.exch_ts is not None and e.exch_ts > paused + 0.05

    await settle_books(feed, sim, V, products, ticker, 2 * len(products), timeout)


async def test_diff_depth_book_equals_the_true_book_through_drops() -> None:
    async with make_bitzoom_sim(faults=Faults(drop_rate=0.03)) as sim:
        feed = bitzoom_feed(sim, ["miniTicker", "depth@100ms"])
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, BookResynced), 15)
            gaps = [e for e in events if isinstance(e, Gap)]
            assert gaps and gaps[0].scope.startswith("depth:")
            sim.faults.drop_rate = 0.0
            await settle(feed, sim, ["BTC-USDT", "ETH-USDT"])
            for product in ("BTC-USDT", "ETH-USDT"):
                assert client_book(feed, product) == true_book(sim, product)
                assert len(true_book(sim, product)[0]) > 100


async def test_partial_depth_and_streams_of_every_kind() -> None:
    async with make_bitzoom_sim() as sim:
        channels = ["depth10@500ms", "trade", "aggTrade", "kline_5m", "ticker", "markPrice", "!ticker@arr"]
        feed = bitzoom_feed(sim, channels)
        async with feed:
            seen: set[str] = set()

            def every(e: Event) -> bool:
                if isinstance(e, Ticker) and e.mark is not None:
                    seen.add("mark")
                seen.add(type(e).__name__)
                return {"BookSnapshot", "Trade", "Candle", "Ticker", "mark"} <= seen

            events = await take_until(feed, every, 15)
            snap = next(e for e in events if isinstance(e, BookSnapshot))
            assert len(snap.bids) == 10 and len(snap.asks) == 10
            candles = [e for e in events if isinstance(e, Candle)]
            assert all(c.interval == 300 for c in candles)
            # the last LIST_SUBSCRIPTIONS answer lists them all (the frames go out at 9 a second)
            await take_until(
                feed, lambda e: isinstance(e, Subscribed) and set(e.subscriptions) == set(channels), 10
            )
            assert feed.store.health[V].subscriptions["!ticker@arr"] == []


class _SmallShards(Bitzoom):
    max_streams_per_connection: ClassVar[int | None] = 10


async def test_streams_are_sharded_past_the_per_connection_limit() -> None:
    # 45 products x 5 channels = 225 streams: a second connection beyond the venue's 200
    specs = tuple(ProductSpec(f"C{i}-USDT", "10.00", "0.01") for i in range(45))
    async with make_bitzoom_sim(products=specs, rate=50.0, depth=40) as sim:
        products = [s.product for s in specs]
        feed = bitzoom_feed(sim, ["trade", "aggTrade", "miniTicker", "markPrice", "kline_1m"], products)
        assert sorted(feed.connections) == ["market", "market#2"]
        assert [c.stream_count() for c in feed.connections.values()] == [200, 25]
        async with feed:
            await take_until(
                feed,
                lambda _e: sorted(len(c.streams) for c in sim.connections) == [25, 200],  # type: ignore[attr-defined]
                10,
            )  # type: ignore[attr-defined]
            assert sorted(len(c.streams) for c in sim.connections) == [25, 200]  # type: ignore[attr-defined]
            await feed.subscribe("ticker", products[:3])  # live: goes where there is room
            await take_until(feed, lambda e: isinstance(e, Subscribed) and "ticker" in e.subscriptions, 10)
        assert sim.stats.get("rate_closes", 0) == 0  # the rate limiter kept us under 10 messages/s
    with pytest.raises(ConfigError, match="allows 10 streams on each of 5 connections"):
        Feed(_SmallShards(), products[:11], ["trade", "aggTrade", "miniTicker", "markPrice", "kline_1m"])


async def test_simulator_enforces_the_limits_with_1008() -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with make_bitzoom_sim() as sim:
        async with connect(sim.url) as ws:
            with pytest.raises(ConnectionClosed) as info:
                for i in range(15):
                    await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
                while True:
                    await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        async with connect(sim.url) as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["BTCUSDT@trade"], "id": 1}))
            assert json.loads(await ws.recv()) == {
                "error": {"code": 2, "msg": "Invalid request: invalid stream BTCUSDT@trade"},
                "id": 1,
            }
            await ws.send("not json")
            assert json.loads(await ws.recv())["error"]["code"] == 3
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 2}))
            assert json.loads(await ws.recv()) == {"result": None, "id": 2}
            await ws.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 3}))
            assert json.loads(await ws.recv()) == {"result": None, "id": 3}
            assert "stream" in json.loads(await ws.recv())  # events are wrapped now


async def test_user_data_with_listen_key_keepalive_and_expiry() -> None:
    async with make_bitzoom_sim(listen_key_ttl=0.6) as sim:
        adapter = Bitzoom(
            urls={"market": sim.url, "user": sim.url, "rest": sim.http_url},
            credentials=sim.client_credentials(),
        )
        adapter.listen_key_keepalive = 0.2  # type: ignore[misc]
        feed = bitzoom_feed(sim, ["user"], adapter=adapter)
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, BalanceUpdate), 10)
            assert any(isinstance(e, OrderUpdate) for e in events)
            await take_until(feed, lambda _e: sim.stats.get("keepalives", 0) >= 3, 10)
            assert len(sim.listen_keys) == 1  # kept alive: never expired
            assert all(sim.listen_keys[k] > sim.clock() for k in sim.listen_keys)
        # without keepalives the key expires: the venue says so, and a new key is fetched at once
        adapter = Bitzoom(
            urls={"market": sim.url, "user": sim.url, "rest": sim.http_url},
            credentials=sim.client_credentials(),
        )
        adapter.listen_key_keepalive = 60.0  # type: ignore[misc]
        feed = bitzoom_feed(sim, ["user"], adapter=adapter)
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, RetryScheduled), 10)
            assert any(isinstance(e, VenueError) and e.message == "listen key expired" for e in events)
            assert events[-1].attempt == 0  # type: ignore[attr-defined]  (announced: no backoff)
            await take_until(feed, lambda e: isinstance(e, OrderUpdate), 10)
            assert len(sim.listen_keys) == 3


async def test_refused_token_gives_up_naming_the_variable() -> None:
    async with make_bitzoom_sim(faults=Faults(refuse_auth=True)) as sim:
        feed = bitzoom_feed(sim, ["user"])
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, GaveUp), 10)
            assert "BITZOOM_API_TOKEN" in events[-1].reason  # type: ignore[attr-defined]


async def test_shutdown_notice_reconnects_at_once_and_rebuilds() -> None:
    async with make_bitzoom_sim(faults=Faults(shutdown_after_seconds=0.5)) as sim:
        feed = bitzoom_feed(sim, ["miniTicker", "depth@100ms"])
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, Closed), 10)
            assert any(isinstance(e, VenueError) and e.message == "server shutdown notice" for e in events)
            events = await take_until(feed, lambda e: isinstance(e, BookResynced), 10)
            assert any(isinstance(e, RetryScheduled) and e.attempt == 0 for e in events)
            await settle(feed, sim, ["BTC-USDT", "ETH-USDT"])
            assert client_book(feed, "BTC-USDT") == true_book(sim, "BTC-USDT")


@pytest.mark.parametrize(
    "faults",
    [
        Faults(close_code=1011, close_after_messages=200),
        Faults(close_code=1006, close_after_seconds=0.5),
        Faults(malformed_rate=0.05, unknown_rate=0.05),
        Faults(stall_after_messages=150),
        Faults(snapshot_delay=0.3),
    ],
    ids=["close-1011", "cut-1006", "malformed-unknown", "stall", "slow-snapshot"],
)
async def test_faults_are_survived_and_the_book_converges(faults: Faults) -> None:
    async with make_bitzoom_sim(faults=faults) as sim:
        feed = bitzoom_feed(sim, ["miniTicker", "depth@100ms"])
        async with feed:
            await take_until(feed, lambda e: isinstance(e, BookSnapshot), 10)
            if faults.malformed_rate:
                await take_until(feed, lambda e: isinstance(e, Malformed), 10)
            elif not faults.snapshot_delay:
                await take_until(feed, lambda e: isinstance(e, BookResynced), 15)
            for name in ("malformed_rate", "unknown_rate"):
                setattr(sim.faults, name, 0.0)
            await settle(feed, sim, ["BTC-USDT", "ETH-USDT"])
            for product in ("BTC-USDT", "ETH-USDT"):
                assert client_book(feed, product) == true_book(sim, product)


async def test_server_pings_are_answered() -> None:
    from dataclasses import replace

    async with make_bitzoom_sim(timing=replace(FAST, ping_interval=0.1)) as sim:
        feed = bitzoom_feed(sim, ["miniTicker"])
        async with feed:
            await take_until(feed, lambda e: isinstance(e, Ticker), 10)
            await take_until(feed, lambda _e: sim.connections and sim.connections[0].ws.latency > 0, 10)
            await asyncio.sleep(0.5)  # five more pings: a client that did not answer would be closed by now
            assert len(sim.all_connections) == 1 and not sim.connections[0].closing


async def test_klines_start_with_their_history_from_rest() -> None:
    async with make_bitzoom_sim(warmup=3000, rate=100.0) as sim:
        feed = bitzoom_feed(sim, ["kline_1m"], ["BTC-USDT"])
        async with feed:
            await take_until(
                feed, lambda _e: len(feed.store.venue_candles.get((V, "BTC-USDT"), {}).get(60, ())) > 20, 10
            )
            series = feed.store.candle_series(V, "BTC-USDT", 60)
            assert series is not None
            truth = sim.market("BTC-USDT").bars(60)
            by_start = {b.start: b for b in series.bars}
            for bar in truth[-20:-1]:  # closed minutes: exactly the simulator's
                got = by_start[bar.start]
                m = sim.market("BTC-USDT")
                assert (got.open, got.high, got.low, got.close) == tuple(
                    m.price_text(x) for x in (bar.open, bar.high, bar.low, bar.close)
                )
            assert not feed.store.health[V].errors  # no failed history call


def test_the_connection_cap_counts_the_user_data_connection() -> None:
    """Five connections per IP (the seed's limits table), user data included: 50 streams at 10 a
    connection fill five market connections, so the user-data stream cannot be a sixth."""
    products = [f"C{i}-USDT" for i in range(10)]
    channels = ["trade", "aggTrade", "miniTicker", "markPrice", "kline_1m"]
    token = ApiToken(Secret("t" * 20), "test")
    assert len(Feed(_SmallShards(credentials=token), products, channels).connections) == 5
    with pytest.raises(ConfigError, match=r"5 connections \(user data included\)"):
        Feed(_SmallShards(credentials=token), products, [*channels, "user"])
    with pytest.raises(ConfigError, match=r"5 connections \(user data included\)"):
        Feed(_SmallShards(credentials=token), products, ["user", *channels])


async def test_a_book_turned_off_and_on_starts_a_fresh_sync_not_a_gap() -> None:
    """The dashboard's ``b``, ``b``: the new depth stream numbers afresh (its first event links to
    nothing), so the book is synced again from a snapshot; no false gap is reported."""
    async with make_bitzoom_sim() as sim:
        feed = bitzoom_feed(sim, ["miniTicker", "depth@100ms"])
        async with feed:
            await take_until(feed, lambda e: isinstance(e, BookSnapshot) and e.product == "BTC-USDT", 10)
            await take_until(feed, lambda e: isinstance(e, BookUpdate) and e.product == "BTC-USDT", 10)
            await feed.unsubscribe("depth@100ms")
            await feed.subscribe("depth@100ms")
            events = await take_until(
                feed, lambda e: isinstance(e, BookUpdate) and e.product == "BTC-USDT", 10
            )
            events += await take_until(feed, lambda e: isinstance(e, BookUpdate), 5)
            assert not [e for e in events if isinstance(e, Gap)]
            assert any(isinstance(e, BookSnapshot) and e.product == "BTC-USDT" for e in events)
            assert feed.store.health["bitzoom"].gaps == 0
            await settle(feed, sim, ["BTC-USDT", "ETH-USDT"])
            assert client_book(feed, "BTC-USDT") == true_book(sim, "BTC-USDT")
