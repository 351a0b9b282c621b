"""Venue sessions without any I/O: bytes and times in, events and actions out.

Each test drives one venue's session the way the stream worker does (``connect``, ``opened``,
``received`` then ``applied`` once the store holds the events, ``fetched``, ``timer``, subscription
changes) and asserts exactly what it answers. No socket, no event loop, no sleeping: time is the
number handed in.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tickerterm.core.errors import ConfigError
from tickerterm.core.events import (
    BookDropped,
    BookResynced,
    BookResyncing,
    BookSnapshot,
    BookUnsafe,
    BookUpdate,
    Gap,
    Malformed,
    Ticker,
    VenueError,
    change,
)
from tickerterm.core.store import Store
from tickerterm.stream.worker import take_events, take_frame
from tickerterm.venues.auth import ApiToken, Secret
from tickerterm.venues.base import VenueAdapter
from tickerterm.venues.bitzoom import Bitzoom
from tickerterm.venues.coinapi import SILENT_AFTER, CoinApi
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade
from tickerterm.venues.coinbase_exchange import CoinbaseExchange
from tickerterm.venues.oxarchive import PING, OxArchive
from tickerterm.venues.session import (
    SNAPSHOT_ATTEMPTS,
    Close,
    Fetch,
    HttpRequest,
    Open,
    ReplayPlan,
    Send,
    Session,
    Wanted,
)

T0 = 1_714_564_800.0
TS = "2024-05-01T12:00:00Z"


def make(
    adapter: VenueAdapter,
    channels: list[str],
    products: list[str],
    endpoint: str = "market",
    replay: ReplayPlan | None = None,
) -> tuple[Session, Store]:
    store = Store()
    wanted = Wanted(adapter, products, replay=replay)
    for channel in [*adapter.keepalive_channels, *channels]:
        spec = adapter.channel(channel)
        wanted.subs.add(spec.name, products if spec.per_product else [])
    session = adapter.session_type(
        adapter, endpoint, adapter.connection_id(endpoint), wanted, store, resync_timeout=5.0, retry_base=1.0
    )
    return session, store


feed = take_frame
"""What the worker does with one frame: the session's events into the store, then its checks."""
answer = take_events
"""What the worker does with the events a session answers outside the frame path."""


def frames(actions: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(f) for a in actions if isinstance(a, Send) for f in a.frames]


# --- Coinbase Advanced Trade: integrity in the session ------------------------------------------


def cb(channel: str, seq: int, events: list[Any]) -> str:
    return json.dumps(
        {"channel": channel, "client_id": "", "timestamp": TS, "sequence_num": seq, "events": events}
    )


def l2(seq: int, kind: str, updates: list[tuple[str, str, str]], product: str = "BTC-USD") -> str:
    rows = [{"side": s, "event_time": TS, "price_level": p, "new_quantity": q} for s, p, q in updates]
    return cb("l2_data", seq, [{"type": kind, "product_id": product, "updates": rows}])


def test_connect_then_open_subscribes_everything_tracked() -> None:
    session, _ = make(CoinbaseAdvancedTrade(), ["level2"], ["BTC-USD", "ETH-USD"])
    assert session.connect(T0) == []
    assert session.take_actions() == [Open("wss://advanced-trade-ws.coinbase.com", {})]
    assert session.opened(T0) == []
    sent = frames(session.take_actions())
    assert [(f["type"], f["channel"], f.get("product_ids") or None) for f in sent] == [
        ("subscribe", "heartbeats", None),
        ("subscribe", "level2", ["BTC-USD", "ETH-USD"]),
    ]


def test_a_crossed_book_is_marked_unsafe_resynced_and_shown_good_only_after_a_new_snapshot() -> None:
    session, store = make(CoinbaseAdvancedTrade(), ["level2"], ["BTC-USD"])
    session.opened(T0)
    session.take_actions()
    snap = feed(session, store, l2(0, "snapshot", [("bid", "100", "1"), ("offer", "101", "1")]), T0)
    assert [type(e) for e in snap] == [BookSnapshot] and store.book("coinbase", "BTC-USD").state == "ok"

    out = feed(session, store, l2(1, "update", [("offer", "99", "2")]), T0 + 1)
    reason = "crossed book: bid 100 >= ask 99"
    assert out[1:] == [
        BookUnsafe("coinbase", T0 + 1, "coinbase", "BTC-USD", reason),
        BookResyncing("coinbase", T0 + 1, "coinbase", "BTC-USD"),
    ]
    assert store.book("coinbase", "BTC-USD").state == "resyncing"
    resync = frames(session.take_actions())  # the venue resends a book on a new subscription
    assert [(f["type"], f["channel"], f["product_ids"]) for f in resync] == [
        ("unsubscribe", "level2", ["BTC-USD"]),
        ("subscribe", "level2", ["BTC-USD"]),
    ]
    out = feed(session, store, l2(2, "snapshot", [("bid", "100", "1"), ("offer", "101", "3")]), T0 + 2)
    assert out[1:] == [BookResynced("coinbase", T0 + 2, "coinbase", "BTC-USD")]
    book = store.book("coinbase", "BTC-USD")
    assert (book.state, book.best_ask) == ("ok", ("101", "3"))
    assert session.wake_at() is None  # nothing left to wait for


def test_the_store_only_applies_the_session_decides() -> None:
    store = Store()
    store.apply(BookSnapshot("v", 1.0, "P", None, [("100", "1")], [("101", "1")]))
    assert store.apply(BookUpdate("v", 2.0, "P", None, [change("ask", "99", "1")])) is None
    assert store.book_state("v", "P") == "ok"  # nothing implied behind the session's back
    assert store.book_problem("v", "P") == "crossed book: bid 100 >= ask 99"
    store.apply(BookUpdate("v", 2.0, "Q", None, [change("bid", "1", "1")]))
    assert (store.book_state("v", "Q"), store.book_problem("v", "Q")) == ("empty", "update before snapshot")


def test_an_update_before_any_snapshot_is_unsafe_and_rebuilt() -> None:
    session, store = make(CoinbaseAdvancedTrade(), ["level2"], ["BTC-USD"])
    session.opened(T0)
    session.take_actions()
    out = feed(session, store, l2(0, "update", [("bid", "100", "1")]), T0)
    assert out[1:] == [
        BookUnsafe("coinbase", T0, "coinbase", "BTC-USD", "update before snapshot"),
        BookResyncing("coinbase", T0, "coinbase", "BTC-USD"),
    ]
    assert frames(session.take_actions())[-1]["type"] == "subscribe"


def test_a_sequence_gap_taints_every_book_on_the_connection_counter() -> None:
    session, store = make(CoinbaseAdvancedTrade(), ["level2"], ["BTC-USD", "ETH-USD"])
    session.opened(T0)
    session.take_actions()
    feed(session, store, l2(0, "snapshot", [("bid", "100", "1")]), T0)
    feed(session, store, l2(1, "snapshot", [("bid", "10", "1")], "ETH-USD"), T0)
    out = feed(session, store, l2(5, "update", [("bid", "100", "2")]), T0 + 1)
    gap = Gap("coinbase", T0 + 1, "coinbase", 2, 5, "connection")
    assert gap in out
    unsafe = [e.product for e in out if isinstance(e, BookUnsafe)]
    assert unsafe == ["BTC-USD", "ETH-USD"]
    assert {store.book_state("coinbase", p) for p in unsafe} == {"resyncing"}


def test_a_poison_frame_is_counted_and_its_books_rebuilt_never_raised() -> None:
    session, store = make(CoinbaseAdvancedTrade(), ["level2"], ["BTC-USD"])
    session.opened(T0)
    session.take_actions()
    feed(session, store, l2(0, "snapshot", [("bid", "100", "1")]), T0)
    out = feed(session, store, '{"channel":[1],"sequence_num":5,"events":[]}', T0 + 1)
    assert [type(e) for e in out] == [Malformed, BookUnsafe, BookResyncing]
    assert out[1].reason.startswith("malformed frame: ")  # type: ignore[attr-defined]
    assert frames(session.take_actions())  # a resync went out
    out = feed(session, store, l2(1, "snapshot", [("bid", "100", "2")]), T0 + 2)
    assert [type(e) for e in out] == [BookSnapshot, BookResynced]
    assert store.book("coinbase", "BTC-USD").best_bid == ("100", "2")


def test_a_resync_that_does_not_complete_closes_the_connection() -> None:
    session, store = make(CoinbaseAdvancedTrade(), ["level2"], ["BTC-USD"])
    session.opened(T0)
    feed(session, store, l2(0, "snapshot", [("bid", "100", "1")]), T0)
    feed(session, store, l2(4, "update", [("bid", "100", "2")]), T0 + 1)  # a gap: resync asked
    session.take_actions()
    assert session.wake_at() == T0 + 1 + 5.0
    assert session.timer(T0 + 5.0) == [] and not session.take_actions()
    session.timer(T0 + 6.5)
    assert session.take_actions() == [Close("resync of BTC-USD did not complete")]


def test_unsubscribing_a_book_drops_it_and_sends_the_unsubscribe() -> None:
    session, store = make(CoinbaseAdvancedTrade(), ["level2"], ["BTC-USD", "ETH-USD"])
    session.opened(T0)
    session.take_actions()
    feed(session, store, l2(0, "snapshot", [("bid", "100", "1")]), T0)
    removed = session.wanted.subs.remove("level2", ["BTC-USD"])
    out = answer(session, store, session.unsubscribed("level2", removed, False, T0), T0)
    assert out == [BookDropped("coinbase", T0, "coinbase", "BTC-USD")]
    assert ("coinbase", "BTC-USD") not in store.books
    assert [(f["type"], f["product_ids"]) for f in frames(session.take_actions())] == [
        ("unsubscribe", ["BTC-USD"])
    ]
    # still in flight after the unsubscribe: not revived
    assert feed(session, store, l2(1, "update", [("bid", "100", "3")]), T0) == []
    assert ("coinbase", "BTC-USD") not in store.books


def test_closing_marks_every_book_it_fed_unsafe() -> None:
    session, store = make(CoinbaseAdvancedTrade(), ["level2"], ["BTC-USD", "ETH-USD"])
    feed(session, store, l2(0, "snapshot", [("bid", "100", "1")]), T0)
    assert session.closed("server going away", T0) == [
        BookUnsafe("coinbase", T0, "coinbase", "BTC-USD", "connection lost: server going away")
    ]


# --- Bitzoom: REST snapshot plus buffered diffs, listen keys --------------------------------------


def depth(first: int, last: int, prev: int, bids: list[list[str]]) -> bytes:
    data = {"e": "depthUpdate", "E": 1000, "T": 1000, "s": "BTCUSDT", "U": first, "u": last, "pu": prev}
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": {**data, "b": bids, "a": []}}).encode()


SNAPSHOT_URL = "https://api.bitzoom.com/api/v1/depth?symbol=BTCUSDT&limit=1000"


def test_a_diff_book_is_fetched_over_rest_and_the_buffered_diffs_applied() -> None:
    session, store = make(Bitzoom(), ["depth@100ms"], ["BTC-USDT"])
    session.opened(T0)
    session.take_actions()
    assert feed(session, store, depth(90, 95, 80, [["100", "1"]]), T0) == []
    assert session.take_actions() == [Fetch("depth BTC-USDT", HttpRequest("GET", SNAPSHOT_URL, {}))]
    assert feed(session, store, depth(96, 104, 95, [["101", "2"]]), T0) == []
    assert not session.take_actions()  # one fetch per book at a time
    body = json.dumps({"lastUpdateId": 100, "bids": [["100", "5"]], "asks": [["102", "1"]]}).encode()
    out = answer(session, store, session.fetched("depth BTC-USDT", 200, body, T0 + 1), T0 + 1)
    assert out == [
        BookSnapshot("bitzoom", T0 + 1, "BTC-USDT", None, [("100", "5")], [("102", "1")]),
        BookUpdate("bitzoom", T0 + 1, "BTC-USDT", 1.0, [change("bid", "101", "2")]),
    ]
    assert store.book("bitzoom", "BTC-USDT").best_bid == ("101", "2")


def test_a_failing_snapshot_is_retried_with_backoff_then_the_connection_restarts() -> None:
    session, store = make(Bitzoom(), ["depth@100ms"], ["BTC-USDT"])
    session.opened(T0)
    session.take_actions()
    feed(session, store, depth(90, 95, 80, [["100", "1"]]), T0)
    (fetch,) = session.take_actions()
    assert isinstance(fetch, Fetch)
    now = T0
    for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
        out = answer(session, store, session.fetched(fetch.key, 503, b"busy", now), now)
        assert isinstance(out[0], VenueError)
        assert out[0].message == f"BTC-USDT book snapshot failed (HTTP 503), attempt {attempt} of 3"
        assert store.book_state("bitzoom", "BTC-USDT") == "resyncing"  # waits, never shown as good
        if attempt < SNAPSHOT_ATTEMPTS:
            assert not session.take_actions()
            wake = session.wake_at()
            assert wake == now + min(2.0**attempt, 8.0)
            now = wake
            session.timer(now)
            assert session.take_actions() == [fetch]
    assert session.take_actions() == [Close("no BTC-USDT book snapshot after 3 attempts")]


def test_a_snapshot_body_that_is_not_the_venues_is_malformed_and_retried() -> None:
    session, store = make(Bitzoom(), ["depth@100ms"], ["BTC-USDT"])
    session.opened(T0)
    session.take_actions()
    feed(session, store, depth(90, 95, 80, [["100", "1"]]), T0)
    (fetch,) = session.take_actions()
    out = session.fetched(fetch.key, 200, b'{"lastUpdateId": "x"}', T0)  # type: ignore[union-attr]
    assert [type(e) for e in out] == [Malformed, BookResyncing]
    assert session.wake_at() == T0 + 2.0


def token() -> ApiToken:
    return ApiToken(Secret("tok-123456"), "test")


def test_the_user_stream_connects_through_a_listen_key_and_renews_it() -> None:
    session, _ = make(Bitzoom(credentials=token()), ["user"], [], endpoint="user")
    session.connect(T0)
    listen = HttpRequest(
        "POST", "https://api.bitzoom.com/api/v1/listenKey", {"Authorization": "Bearer tok-123456"}
    )
    assert session.take_actions() == [Fetch("listen-key", listen)]
    session.fetched("listen-key", 200, b'{"data": {"listenKey": "LK1"}}', T0)
    assert session.take_actions() == [Open("wss://stream.bitzoom.com/ws/LK1", {})]
    session.opened(T0)
    session.take_actions()
    assert session.wake_at() == T0 + 30 * 60
    session.timer(T0 + 30 * 60)
    (renew,) = session.take_actions()
    assert isinstance(renew, Fetch) and renew.request.method == "PUT"
    session.fetched("listen-key-keepalive", 200, b"{}", T0 + 30 * 60)
    assert session.wake_at() == T0 + 60 * 60
    session.timer(T0 + 60 * 60)
    session.take_actions()
    out = session.fetch_failed("listen-key-keepalive", "ConnectTimeout", T0 + 60 * 60)
    assert [e.message for e in out if isinstance(e, VenueError)] == [
        "listen key keepalive failed (ConnectTimeout)"
    ]
    assert session.take_actions() == [Close("listen key keepalive failed (ConnectTimeout)", planned=True)]


@pytest.mark.parametrize(
    ("status", "body", "close"),
    [
        (401, b"", Close("listen key refused (HTTP 401)", fatal="the venue refused the API token")),
        (500, b"", Close("listen key request failed (HTTP 500)")),
        (200, b"[]", Close("listen key request failed: listen key response without data.listenKey")),
    ],
)
def test_a_listen_key_refused_or_garbled_is_a_close_with_the_reason(
    status: int, body: bytes, close: Close
) -> None:
    session, _ = make(Bitzoom(credentials=token()), ["user"], [], endpoint="user")
    session.connect(T0)
    session.take_actions()
    session.fetched("listen-key", status, body, T0)
    (got,) = session.take_actions()
    assert isinstance(got, Close) and got.reason == close.reason
    assert (got.fatal or "").startswith(close.fatal or "") and bool(got.fatal) == bool(close.fatal)


# --- CoinAPI: the whole scope in one hello; silence names the product ---------------------------


def test_coinapi_sends_the_whole_scope_on_every_change() -> None:
    session, _store = make(CoinApi(credentials=token()), ["quote"], ["COINBASE:BTC-USD"])
    session.opened(T0)
    (hello,) = frames(session.take_actions())
    assert hello["subscribe_filter_symbol_id"] == ["COINBASE_SPOT_BTC_USD$"]
    new = session.wanted.subs.add("trade", ["COINBASE:ETH-USD"])
    session.subscribed("trade", new, T0)
    (hello,) = frames(session.take_actions())
    assert hello["type"] == "hello" and hello["subscribe_data_type"] == ["quote", "trade"]
    assert hello["subscribe_filter_symbol_id"] == ["COINBASE_SPOT_BTC_USD$", "COINBASE_SPOT_ETH_USD$"]


def test_coinapi_names_a_product_that_brought_nothing() -> None:
    session, store = make(CoinApi(credentials=token()), ["quote"], ["COINBASE:BTC-USD", "COINBASE:NOPE-USD"])
    session.opened(T0)
    quote = {
        "type": "quote",
        "symbol_id": "COINBASE_SPOT_BTC_USD",
        "time_exchange": TS,
        "time_coinapi": TS,
        "ask_price": 101,
        "ask_size": 1,
        "bid_price": 100,
        "bid_size": 1,
    }
    assert [type(e) for e in feed(session, store, json.dumps(quote), T0 + 1)] == [Ticker]
    assert session.wake_at() == T0 + SILENT_AFTER
    assert session.timer(T0 + 5) == []
    (silent,) = session.timer(T0 + SILENT_AFTER)
    assert isinstance(silent, VenueError) and silent.product == "COINBASE:NOPE-USD"
    assert "no data for COINBASE:NOPE-USD (COINBASE_SPOT_NOPE_USD) after 15 s" in silent.message
    assert session.timer(T0 + 2 * SILENT_AFTER) == []  # said once


# --- 0xArchive: pings and replay controls; the capability declared once ---------------------------


def test_oxarchive_pings_and_replays_from_where_it_stood() -> None:
    plan = ReplayPlan("BTC", ["orderbook"], T0 - 3600, T0 - 600, 10.0)
    session, _store = make(OxArchive(credentials=token()), ["orderbook"], ["BTC"], replay=plan)
    session.opened(T0)
    (replay,) = frames(session.take_actions())
    assert replay == {
        "op": "replay",
        "channels": ["orderbook"],
        "symbol": "BTC",
        "start": int((T0 - 3600) * 1000),
        "end": int((T0 - 600) * 1000),
        "speed": 10.0,
    }
    assert session.wake_at() == T0 + 25.0
    session.timer(T0 + 25.0)
    assert session.take_actions() == [Send((PING,))]
    session.control("seek", T0, timestamp=T0 - 1800)
    assert frames(session.take_actions()) == [{"op": "replay.seek", "timestamp": int((T0 - 1800) * 1000)}]
    assert plan.resume_from() == T0 - 1800  # a reconnect goes on from there
    assert OxArchive.session_type.replays and not CoinbaseAdvancedTrade.session_type.replays
    other, _ = make(CoinbaseAdvancedTrade(), ["level2"], ["BTC-USD"])
    with pytest.raises(ConfigError, match="has no replay"):
        other.control("pause", T0)


# --- Coinbase Exchange: the heartbeat follows the products ----------------------------------------


def test_exchange_heartbeats_follow_the_products_subscribed() -> None:
    session, _ = make(CoinbaseExchange(), ["matches"], ["BTC-USD"])
    session.opened(T0)
    sent = frames(session.take_actions())
    assert {(f["channels"][0]["name"], tuple(f["channels"][0]["product_ids"])) for f in sent} >= {
        ("heartbeat", ("BTC-USD",)),
        ("matches", ("BTC-USD",)),
    }
    new = session.wanted.subs.add("matches", ["SOL-USD"])
    session.subscribed("matches", new, T0)
    sent = frames(session.take_actions())
    assert [(f["channels"][0]["name"], f["channels"][0]["product_ids"]) for f in sent] == [
        ("matches", ["SOL-USD"]),
        ("heartbeat", ["SOL-USD"]),
    ]
