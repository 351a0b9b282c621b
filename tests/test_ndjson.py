"""The NDJSON output is a public interface: its exact shape per type."""

from __future__ import annotations

import json

from tickerterm.core.events import (
    BookSnapshot,
    BookUnsafe,
    BookUpdate,
    Closed,
    Gap,
    GaveUp,
    Heartbeat,
    RetryScheduled,
    Stale,
    Subscribed,
    Trade,
    VenueError,
    change,
)
from tickerterm.core.ndjson import dumps, record
from tickerterm.core.store import Store


def test_trade_line_keeps_the_venue_strings() -> None:
    line = dumps(
        Trade("coinbase", 1714564800.1234567, "BTC-USD", 1714564800.0, "42", "64000.10", "0.00010000", "buy")
    )
    assert line == (
        '{"type":"trade","venue":"coinbase","recv_ts":1714564800.123457,"product":"BTC-USD",'
        '"exch_ts":1714564800.0,"trade_id":"42","price":"64000.10","size":"0.00010000","side":"buy"}'
    )


def test_book_line_after_each_book_message() -> None:
    store = Store()
    snap = BookSnapshot("coinbase", 1.0, "BTC-USD", 2.0, [("100.50", "1.0")], [("101", "2")])
    store.apply(snap)
    assert record(snap, store) == {
        "type": "book",
        "venue": "coinbase",
        "product": "BTC-USD",
        "recv_ts": 1.0,
        "exch_ts": 2.0,
        "snapshot": True,
        "bid": "100.50",
        "bid_size": "1.0",
        "ask": "101",
        "ask_size": "2",
        "state": "ok",
    }
    upd = BookUpdate("coinbase", 3.0, "BTC-USD", None, [change("ask", "100.40", "1")])
    store.apply(upd)
    problem = store.book_problem("coinbase", "BTC-USD")  # the session marks it before the line is written
    assert problem is not None
    store.apply(BookUnsafe("coinbase", 3.0, "coinbase", "BTC-USD", problem))
    rec = record(upd, store)
    assert rec is not None
    assert (rec["snapshot"], rec["state"], rec["reason"]) == (
        False,
        "unsafe",
        "crossed book: bid 100.50 >= ask 100.40",
    )


def test_health_lines() -> None:
    lines = [
        record(e)
        for e in (
            Closed("coinbase", 1.0, "coinbase", 1011, "internal"),
            RetryScheduled("coinbase", 1.0, "coinbase", 2, 0.75, "connect failed: connection refused"),
            GaveUp("coinbase", 1.0, "coinbase/user", "authentication failure"),
            Gap("coinbase", 1.0, "coinbase", 5, 9, "connection"),
            VenueError("coinbase", 1.0, "coinbase", "failure to subscribe", True),
            Stale("coinbase", 1.0, "coinbase", 12.5),
            Subscribed("coinbase", 1.0, "coinbase", {"level2": ["BTC-USD"]}),
        )
    ]
    base = {"venue": "coinbase", "recv_ts": 1.0}
    assert lines == [
        {
            **base,
            "type": "closed",
            "conn": "coinbase",
            "code": 1011,
            "reason": "internal",
            "meaning": "server internal error",
        },
        {
            **base,
            "type": "retry",
            "conn": "coinbase",
            "attempt": 2,
            "delay": 0.75,
            "reason": "connect failed: connection refused",
        },
        {
            **base,
            "type": "gave_up",
            "conn": "coinbase/user",
            "reason": "authentication failure",
            "bad_input": False,
        },
        {
            **base,
            "type": "gap",
            "conn": "coinbase",
            "expected": 5,
            "received": 9,
            "scope": "connection",
            "kind": "sequence",
        },
        {**base, "type": "venue_error", "conn": "coinbase", "message": "failure to subscribe", "fatal": True},
        {**base, "type": "stale", "conn": "coinbase", "age": 12.5},
        {**base, "type": "subscribed", "conn": "coinbase", "subscriptions": {"level2": ["BTC-USD"]}},
    ]
    assert all(json.loads(json.dumps(line)) == line for line in lines)


def test_heartbeats_only_on_request() -> None:
    hb = Heartbeat("coinbase", 1.0, "coinbase", 7, None)
    assert dumps(hb) is None
    assert record(hb, heartbeats=True) == {
        "type": "heartbeat",
        "venue": "coinbase",
        "recv_ts": 1.0,
        "conn": "coinbase",
        "counter": 7,
    }
