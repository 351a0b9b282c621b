"""The Coinbase Advanced Trade adapter on frames built to protocols.md section 1: exact events."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from tickerterm.core.errors import ConfigError, CredentialsError, FrameError
from tickerterm.core.events import (
    BalanceUpdate,
    BookSnapshot,
    BookUpdate,
    Candle,
    Gap,
    Heartbeat,
    OrderUpdate,
    ProductStatus,
    Subscribed,
    Ticker,
    Trade,
    VenueError,
    change,
)
from tickerterm.sim.keys import generate_cdp_key
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade, CoinbaseParser

TS = "2024-05-01T12:00:00.123456789Z"
T = 1714564800.123456  # what TS parses to (Python keeps microseconds)
R = 99.0  # receive time


def frame(channel: str, seq: int, events: list[Any], **extra: Any) -> str:
    return json.dumps(
        {"channel": channel, "client_id": "", "timestamp": TS, "sequence_num": seq, "events": events, **extra}
    )


def compact(raw: str | bytes) -> bytes:
    try:
        return json.dumps(json.loads(raw), separators=(",", ":")).encode()
    except ValueError:  # not JSON at all: as it is
        return raw if isinstance(raw, bytes) else raw.encode()


@pytest.fixture
def parser() -> CoinbaseParser:
    return CoinbaseAdvancedTrade().parser("coinbase")


def test_l2_snapshot_bid_and_offer(parser: CoinbaseParser) -> None:
    raw = frame(
        "l2_data",
        0,
        [
            {
                "type": "snapshot",
                "product_id": "BTC-USD",
                "updates": [
                    {
                        "side": "bid",
                        "event_time": "1970-01-01T00:00:00Z",
                        "price_level": "64000.01",
                        "new_quantity": "0.5",
                    },
                    {
                        "side": "offer",
                        "event_time": "1970-01-01T00:00:00Z",
                        "price_level": "64000.02",
                        "new_quantity": "1.25",
                    },
                    {"side": "bid", "event_time": TS, "price_level": "63999.10", "new_quantity": "2"},
                ],
            }
        ],
    )
    assert parser.parse(raw, R) == [
        BookSnapshot(
            "coinbase",
            R,
            "BTC-USD",
            T,
            bids=[("64000.01", "0.5"), ("63999.10", "2")],
            asks=[("64000.02", "1.25")],
        ),
    ]


def test_l2_update_routes_several_products_in_one_frame(parser: CoinbaseParser) -> None:
    raw = frame(
        "l2_data",
        0,
        [
            {
                "type": "update",
                "product_id": "BTC-USD",
                "updates": [
                    {
                        "side": "offer",
                        "event_time": TS,
                        "price_level": "64000.02",
                        "new_quantity": "0.00000000",
                    }
                ],
            },
            {
                "type": "update",
                "product_id": "ETH-USD",
                "updates": [
                    {"side": "bid", "event_time": TS, "price_level": "3000.5", "new_quantity": "7.1"},
                    {"side": "offer", "event_time": TS, "price_level": "3000.6", "new_quantity": "0"},
                ],
            },
        ],
    )
    assert parser.parse(raw.encode(), R) == [
        BookUpdate("coinbase", R, "BTC-USD", T, [change("ask", "64000.02", "0.00000000")]),
        BookUpdate(
            "coinbase", R, "ETH-USD", T, [change("bid", "3000.5", "7.1"), change("ask", "3000.6", "0")]
        ),
    ]


async def test_typed_fast_path_gives_the_generic_paths_events(sim: Any) -> None:
    """l2_data and market_trades frames as the venue sends them (compact bytes) are decoded by typed
    structs; the same frames as text go through the generic decoder. Both must give exactly the same
    events (a trade's time shared by its batch, trade ids, aggressor sides)."""
    from websockets.asyncio.client import connect

    frames: list[bytes] = []
    async with connect(sim.url) as ws:
        for channel in ("level2", "market_trades"):
            await ws.send(
                json.dumps({"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": channel})
            )
        while len(frames) < 80:
            frames.append(await ws.recv(decode=False))
    l2 = [f for f in frames if f.startswith(b'{"channel":"l2_data",')]
    trades = [f for f in frames if f.startswith(b'{"channel":"market_trades",')]
    assert len(l2) > 10 and len(trades) > 2
    typed, generic = CoinbaseAdvancedTrade().parser("c"), CoinbaseAdvancedTrade().parser("c")
    n_updates = 0
    for raw in frames:
        a, b = typed.parse(raw, R), generic.parse(raw.decode(), R)
        assert a == b
        n_updates += sum(len(e.changes) for e in a if isinstance(e, BookUpdate))
    assert n_updates > 0 and typed.last_seq == generic.last_seq
    n_trades = sum(
        isinstance(e, Trade) for raw in trades for e in CoinbaseAdvancedTrade().parser("c").parse(raw, R)
    )
    assert n_trades >= len(trades)  # each frame at least one trade
    from tickerterm.venues import coinbase

    for raw in trades:  # the typed path took them (it falls back to the generic one on a surprise)
        coinbase._decode_trades(raw)


@pytest.mark.parametrize(
    ("trade", "error"),
    [
        ({"price": "1.2.3"}, "ValueError"),
        ({"price": "1e5"}, "not plain decimal text"),
        ({"size": "-1"}, "not plain decimal text"),
        ({"side": "UP"}, "KeyError"),
        ({"price": "9" * 65}, "FrameError"),
    ],
)
def test_a_bad_trade_is_a_malformed_frame_on_either_path(trade: dict[str, str], error: str) -> None:
    good = {"trade_id": "7", "product_id": "BTC-USD", "price": "1.5", "size": "2", "side": "BUY"}
    body = {"channel": "market_trades", "timestamp": "2024-05-01T12:00:00Z", "sequence_num": 0,
            "events": [{"type": "update", "trades": [good | trade]}]}  # fmt: skip
    for raw in (json.dumps(body, separators=(",", ":")).encode(), json.dumps(body)):  # typed, generic
        with pytest.raises(FrameError) as caught:
            CoinbaseAdvancedTrade().parser("c").parse(raw, R)
        assert error in f"{type(caught.value).__name__} {caught.value}"


def test_market_trades_side_is_the_maker_so_aggressor_is_opposite(parser: CoinbaseParser) -> None:
    raw = frame(
        "market_trades",
        0,
        [
            {
                "type": "update",
                "trades": [
                    {
                        "trade_id": "892262231",
                        "product_id": "BTC-USD",
                        "price": "64000.5",
                        "size": "0.0015",
                        "side": "BUY",
                        "time": "2024-05-01T12:00:00.5Z",
                    },
                    {
                        "trade_id": "892262232",
                        "product_id": "BTC-USD",
                        "price": "64000.4",
                        "size": "0.2",
                        "side": "SELL",
                        "time": "2024-05-01T12:00:00.6Z",
                    },
                ],
            }
        ],
    )
    assert parser.parse(raw, R) == [
        Trade("coinbase", R, "BTC-USD", 1714564800.5, "892262231", "64000.5", "0.0015", "sell"),
        Trade("coinbase", R, "BTC-USD", 1714564800.6, "892262232", "64000.4", "0.2", "buy"),
    ]


def test_ticker_and_ticker_batch(parser: CoinbaseParser) -> None:
    ticker = {
        "type": "ticker",
        "product_id": "BTC-USD",
        "price": "64000.5",
        "volume_24_h": "15328.1",
        "low_24_h": "62000",
        "high_24_h": "65000",
        "low_52_w": "25000",
        "high_52_w": "73800",
        "price_percent_chg_24_h": "1.85",
        "best_bid": "64000.4",
        "best_bid_quantity": "0.3",
        "best_ask": "64000.5",
        "best_ask_quantity": "0.7",
    }
    full = Ticker(
        "coinbase",
        R,
        "BTC-USD",
        T,
        price="64000.5",
        bid="64000.4",
        bid_size="0.3",
        ask="64000.5",
        ask_size="0.7",
        volume_24h="15328.1",
        low_24h="62000",
        high_24h="65000",
        change_pct_24h="1.85",
    )
    assert parser.parse(frame("ticker", 0, [{"type": "snapshot", "tickers": [ticker]}]), R) == [full]
    batch = {k: v for k, v in ticker.items() if not k.startswith("best_")}
    assert parser.parse(frame("ticker_batch", 1, [{"type": "update", "tickers": [batch]}]), R) == [
        Ticker(
            "coinbase",
            R,
            "BTC-USD",
            T,
            price="64000.5",
            volume_24h="15328.1",
            low_24h="62000",
            high_24h="65000",
            change_pct_24h="1.85",
        ),
    ]


def test_candles_are_five_minute_buckets(parser: CoinbaseParser) -> None:
    raw = frame(
        "candles",
        0,
        [
            {
                "type": "snapshot",
                "candles": [
                    {
                        "start": "1714564800",
                        "high": "64100",
                        "low": "63900",
                        "open": "64000",
                        "close": "64050",
                        "volume": "12.5",
                        "product_id": "BTC-USD",
                    }
                ],
            }
        ],
    )
    assert parser.parse(raw, R) == [
        Candle("coinbase", R, "BTC-USD", T, 1714564800, 300, "64000", "64100", "63900", "64050", "12.5"),
    ]


def test_heartbeats_integer_counter_and_go_time(parser: CoinbaseParser) -> None:
    events = [{"current_time": "2024-05-01 12:00:00.1234567 +0000 UTC m=+3049.52", "heartbeat_counter": 3049}]
    assert parser.parse(frame("heartbeats", 0, events), R) == [Heartbeat("coinbase", R, "coinbase", 3049, T)]
    events[0]["heartbeat_counter"] = "3050"  # the docs' example shows a string
    assert parser.parse(frame("heartbeats", 1, events), R) == [Heartbeat("coinbase", R, "coinbase", 3050, T)]


def test_subscriptions_ack_with_and_without_client_id(parser: CoinbaseParser) -> None:
    subs = {"level2": ["BTC-USD", "ETH-USD"], "heartbeats": ["heartbeats"]}
    raw = json.dumps(
        {"channel": "subscriptions", "timestamp": TS, "sequence_num": 0, "events": [{"subscriptions": subs}]}
    )  # no client_id at all
    assert parser.parse(raw, R) == [Subscribed("coinbase", R, "coinbase", subs)]


def test_status_user_and_balance(parser: CoinbaseParser) -> None:
    status = frame(
        "status",
        0,
        [
            {
                "type": "snapshot",
                "products": [
                    {
                        "product_type": "SPOT",
                        "id": "BTC-USD",
                        "base_currency": "BTC",
                        "quote_currency": "USD",
                        "base_increment": "0.00000001",
                        "quote_increment": "0.01",
                        "display_name": "BTC/USD",
                        "status": "online",
                        "status_message": "",
                        "min_market_funds": "1",
                    }
                ],
            }
        ],
    )
    assert parser.parse(status, R) == [ProductStatus("coinbase", R, "BTC-USD", T, "online", "")]
    order = {
        "order_id": "o1",
        "client_order_id": "c1",
        "product_id": "BTC-USD",
        "order_side": "SELL",
        "order_type": "LIMIT",
        "status": "OPEN",
        "limit_price": "60000",
        "avg_price": "0",
        "cumulative_quantity": "0",
        "leaves_quantity": "0.01",
        "post_only": "false",
    }
    user = frame("user", 1, [{"type": "snapshot", "orders": [order], "positions": {}}])
    assert parser.parse(user, R) == [
        OrderUpdate(
            "coinbase",
            R,
            "BTC-USD",
            T,
            "o1",
            "sell",
            "LIMIT",
            "OPEN",
            "60000",
            "0",
            "0.01",
            "0",
            client_order_id="c1",
            snapshot=True,
        ),
    ]
    balance = frame(
        "futures_balance_summary",
        2,
        [
            {
                "type": "update",
                "fcm_balance_summary": {
                    "futures_buying_power": "100.5",
                    "intraday_margin_window_measure": {"margin_level": "BASE"},
                },
            }
        ],
    )
    assert parser.parse(balance, R) == [
        BalanceUpdate(
            "coinbase",
            R,
            T,
            {"futures_buying_power": "100.5", "intraday_margin_window_measure.margin_level": "BASE"},
        ),
    ]


def test_error_frames_are_not_enveloped(parser: CoinbaseParser) -> None:
    raw = json.dumps({"type": "error", "message": "authentication failure"})
    assert parser.parse(raw, R) == [VenueError("coinbase", R, "coinbase", "authentication failure")]
    adapter = CoinbaseAdvancedTrade()
    assert adapter.classify_error("authentication failure") == "auth"
    assert adapter.classify_error("failure to subscribe") == "command"
    assert adapter.classify_error("server busy") == "transient"


def test_sequence_is_one_counter_per_connection(parser: CoinbaseParser) -> None:
    hb = [{"current_time": "x", "heartbeat_counter": 1}]
    assert parser.parse(frame("heartbeats", 0, hb), R) == [Heartbeat("coinbase", R, "coinbase", 1, T)]
    trades = frame("market_trades", 1, [{"type": "update", "trades": []}])
    assert parser.parse(trades, R) == []
    # 2 and 3 never arrive: the next frame, whatever its channel, reports the gap first
    out = parser.parse(frame("heartbeats", 4, hb), R)
    assert out == [
        Gap("coinbase", R, "coinbase", 2, 4, "connection"),
        Heartbeat("coinbase", R, "coinbase", 1, T),
    ]
    # older or repeated numbers are out of order: ignored and counted
    assert parser.parse(frame("heartbeats", 3, hb), R) == []
    assert parser.parse(frame("heartbeats", 4, hb), R) == []
    assert parser.out_of_order == 2
    assert parser.parse(frame("heartbeats", 5, hb), R) == [Heartbeat("coinbase", R, "coinbase", 1, T)]


def test_first_frame_must_be_zero(parser: CoinbaseParser) -> None:
    out = parser.parse(frame("heartbeats", 3, [{"current_time": "x", "heartbeat_counter": 9}]), R)
    assert out[0] == Gap("coinbase", R, "coinbase", 0, 3, "connection")


def test_unknown_channels_and_types_are_ignored_counted_and_keep_the_sequence(parser: CoinbaseParser) -> None:
    assert parser.parse(frame("shiny_new_channel", 0, [{"type": "update"}]), R) == []
    assert parser.parse(json.dumps({"type": "notice", "text": "hello"}), R) == []
    assert parser.unknown == 2
    hb = frame("heartbeats", 1, [{"current_time": "x", "heartbeat_counter": 1}])
    assert parser.parse(hb, R) == [Heartbeat("coinbase", R, "coinbase", 1, T)]  # no false gap


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00garbage{",
        '{"channel":"l2_data","sequence_num":0,"events":[{"type":"upd',
        "[1,2,3]",
        frame(
            "l2_data",
            0,
            [
                {
                    "type": "update",
                    "product_id": "BTC-USD",
                    "updates": [{"side": "offer", "price_level": 64000.5, "new_quantity": "1"}],
                }
            ],
        ),  # a number, not a string
        frame(
            "l2_data",
            0,
            [
                {
                    "type": "update",
                    "product_id": "BTC-USD",
                    "updates": [{"side": "ask", "price_level": "1", "new_quantity": "1"}],
                }
            ],
        ),  # 'ask' is not an AT side
        frame(
            "l2_data",
            0,
            [
                {
                    "type": "update",
                    "product_id": "BTC-USD",
                    "updates": [{"side": "bid", "price_level": "NaN", "new_quantity": "1"}],
                }
            ],
        ),
        frame(
            "l2_data",
            0,
            [
                {
                    "type": "update",
                    "product_id": "BTC-USD",
                    "updates": [{"side": "bid", "price_level": "1", "new_quantity": "-3"}],
                }
            ],
        ),
        frame(
            "market_trades",
            0,
            [
                {
                    "type": "update",
                    "trades": [
                        {"trade_id": "1", "product_id": "X", "price": "1", "size": "1", "side": "sideways"}
                    ],
                }
            ],
        ),
        json.dumps({"channel": "l2_data", "sequence_num": "7", "events": []}),
        json.dumps({"channel": "l2_data", "sequence_num": 0, "events": {}}),
    ],
)
@pytest.mark.parametrize("wire", [False, True], ids=["text", "compact-bytes"])
def test_malformed_frames_raise_frame_error_and_leave_the_sequence(
    parser: CoinbaseParser, raw: Any, wire: bool
) -> None:
    if wire:  # compact bytes, as the venue sends them: l2_data frames take the typed fast path
        raw = compact(raw)
    with pytest.raises(FrameError):
        parser.parse(raw, R)
    # the lost frame shows as a gap on the next one
    out = parser.parse(frame("heartbeats", 1, [{"current_time": "x", "heartbeat_counter": 1}]), R)
    assert out[0] == Gap("coinbase", R, "coinbase", 0, 1, "connection")


def test_subscribe_frames_public_and_private() -> None:
    key, public = generate_cdp_key("ES256")
    adapter = CoinbaseAdvancedTrade(credentials=key, clock=lambda: 1714564800.0)
    assert adapter.subscribe_frames("book", ["BTC-USD", "ETH-USD"]) == [
        '{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"level2"}'
    ]
    assert adapter.subscribe_frames("heartbeats", ["BTC-USD"]) == [
        '{"type":"subscribe","product_ids":[],"channel":"heartbeats"}'
    ]
    assert adapter.unsubscribe_frames("level2", None) == ['{"type":"unsubscribe","channel":"level2"}']
    assert adapter.resync_frames("level2", ["ETH-USD"]) == [
        '{"type":"unsubscribe","product_ids":["ETH-USD"],"channel":"level2"}',
        '{"type":"subscribe","product_ids":["ETH-USD"],"channel":"level2"}',
    ]
    (raw,) = adapter.subscribe_frames("user", ["BTC-USD"])
    msg = json.loads(raw)
    assert list(msg) == ["type", "product_ids", "channel", "jwt"]
    claims = jwt.decode(
        msg["jwt"], public, algorithms=["ES256"], options={"verify_exp": False, "verify_nbf": False}
    )
    assert claims == {"iss": "cdp", "sub": key.name, "nbf": 1714564800, "exp": 1714564920}


def test_private_channel_without_credentials_names_the_variables() -> None:
    adapter = CoinbaseAdvancedTrade()
    with pytest.raises(
        CredentialsError, match="COINBASE_API_KEY and COINBASE_API_SECRET, or COINBASE_KEY_FILE"
    ):
        adapter.check_credentials(["level2", "user"])
    adapter.check_credentials(["level2", "ticker"])  # public channels need none


def test_channel_names_and_products() -> None:
    adapter = CoinbaseAdvancedTrade()
    assert adapter.channel("trades").name == "market_trades"
    assert adapter.channel("book").kind == "book"
    with pytest.raises(ConfigError, match="unknown channel 'level3'"):
        adapter.channel("level3")
    assert adapter.normalize_product(" btc-usd ") == "BTC-USD"
    with pytest.raises(ConfigError, match="unknown product"):
        adapter.normalize_product("BTCUSD")
