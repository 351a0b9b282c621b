"""Hypothesis fuzzing of the Coinbase parser and the store: no exception escapes but FrameError, and the
store's books stay consistent whatever arrives."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickerterm.core.store import Store
from tickerterm.stream.worker import take_frame
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade
from tickerterm.venues.session import Wanted

PRODUCTS = ["BTC-USD", "ETH-USD"]

numbers = st.one_of(
    st.decimals(min_value=-10, max_value=10**6, allow_nan=False, places=4).map(str),
    st.sampled_from(["0", "0.00", "NaN", "inf", "-1", "", "1e5", "abc", "1_0"]),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.none(),
)
sides = st.sampled_from(["bid", "offer", "ask", "BUY", "SELL", "", None, 3])
products = st.sampled_from(["BTC-USD", "ETH-USD", "", None, 7])
level = st.fixed_dictionaries(
    {
        "side": sides,
        "price_level": numbers,
        "new_quantity": numbers,
        "event_time": st.just("2024-05-01T12:00:00Z"),
    }
)
l2_event = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["snapshot", "update", "other"]),
        "product_id": products,
        "updates": st.lists(level, max_size=6),
    }
)
trade = st.fixed_dictionaries(
    {
        "trade_id": st.one_of(st.text(max_size=5), st.integers()),
        "product_id": products,
        "price": numbers,
        "size": numbers,
        "side": sides,
        "time": st.sampled_from(["2024-05-01T12:00:00Z", "bad", 5]),
    }
)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
anything = st.recursive(
    json_leaf,
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=6), c, max_size=3)),
    max_leaves=10,
)


@st.composite
def frames(draw: Any) -> bytes:
    channel = draw(
        st.sampled_from(
            [
                "l2_data",
                "market_trades",
                "ticker",
                "candles",
                "heartbeats",
                "subscriptions",
                "status",
                "user",
                "futures_balance_summary",
                "mystery",
                None,
            ]
        )
    )
    if channel == "l2_data":
        events: Any = draw(st.lists(l2_event, max_size=3))
    elif channel == "market_trades":
        events = [{"type": "update", "trades": draw(st.lists(trade, max_size=4))}]
    else:
        events = draw(st.one_of(st.lists(anything, max_size=3), anything))
    msg: Any = {
        "channel": channel,
        "timestamp": draw(st.sampled_from(["2024-05-01T12:00:00Z", "x", 3])),
        "sequence_num": draw(st.one_of(st.integers(-2, 40), st.text(max_size=2), st.none())),
        "events": events,
    }
    if draw(st.booleans()):
        msg = draw(anything)
    raw = json.dumps(msg).encode()
    cut = draw(st.integers(0, len(raw)))
    return raw if draw(st.booleans()) else raw[:cut]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(frames(), min_size=1, max_size=25))
def test_parser_and_store_survive_anything(raw_frames: list[bytes]) -> None:
    adapter = CoinbaseAdvancedTrade()
    store = Store()
    wanted = Wanted(adapter, PRODUCTS)
    wanted.subs.add("level2", PRODUCTS)
    session = adapter.session_type(adapter, "market", "coinbase", wanted, store)
    for n, raw in enumerate(raw_frames):  # the session raises nothing, whatever the frame
        take_frame(session, store, raw, 1.0 + n)
    for book in store.books.values():
        bids, asks = book.top(len(book))  # the best levels as the dicts say, whatever the heaps hold
        assert bids == [book.bids[k] for k in sorted(book.bids, reverse=True)]
        assert asks == [book.asks[k] for k in sorted(book.asks)]
        assert book.best_bid == (bids[0] if bids else None) and book.best_ask == (asks[0] if asks else None)
        assert all(float(s) > 0 for _, s in book.bids.values()) and all(
            float(s) > 0 for _, s in book.asks.values()
        )
        if book.state == "ok":
            assert not book.crossed
