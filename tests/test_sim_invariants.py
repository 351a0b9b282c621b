"""What a real client relies on in everything a simulator sends for a few seconds, checked on the raw
frames of a plain WebSocket client (not tickerterm's own parser, which could share a mistake).

Where each invariant comes from is said next to it: the venue's documentation, ``docs/protocols.md``
(the project's protocol notes) or recorded real traffic described in the issues.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect

from tests.conftest import FAST
from tickerterm.sim import simulator_class
from tickerterm.sim.faults import Faults


async def record(
    venue: str,
    subscribe: list[dict[str, Any]] | Callable[[str], list[dict[str, Any]]],
    seconds: float = 3.0,
    *,
    bearer: bool = False,
) -> list[dict[str, Any]]:
    """Every frame a raw client receives from ``venue``'s simulator for ``seconds`` after sending
    ``subscribe`` (or ``subscribe(key)``, with the test account's key; ``bearer``: the key also as an
    ``Authorization: Bearer`` header) at 400 market steps a second: many trades, several makers per taker."""
    options: dict[str, Any] = dict(rate=400.0, depth=60, seed=11, timing=FAST, faults=Faults(), warmup=300)
    got: list[dict[str, Any]] = []
    async with simulator_class(venue)(**options) as sim:
        credentials = sim.client_credentials()
        secret = getattr(getattr(credentials, "secret", None), "reveal", lambda: "")()
        headers = {"Authorization": f"Bearer {secret}"} if bearer else None
        frames = subscribe(secret) if callable(subscribe) else subscribe
        async with connect(sim.url, max_size=None, additional_headers=headers) as ws:
            for frame in frames:
                await ws.send(json.dumps(frame))
            try:
                async with asyncio.timeout(seconds):
                    async for raw in ws:
                        got.append(json.loads(raw))
            except TimeoutError:
                pass
    return got


def never_backwards(frames: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any], seq: str) -> None:
    last: dict[Any, int] = {}
    for f in frames:
        if seq in f and key(f) is not None:
            k = key(f)
            assert f[seq] >= last.get(k, -1), (k, f[seq], last.get(k), f)
            last[k] = f[seq]


async def test_coinbase_exchange_sequences_trade_ids_tickers_and_heartbeats() -> None:
    products = ["BTC-USD", "ETH-USD"]
    frames = await record(
        "coinbase-exchange",
        [{"type": "subscribe", "product_ids": products, "channels": ["heartbeat", "ticker", "matches"]}],
    )
    live = [f for f in frames if f.get("type") in ("ticker", "match", "last_match", "heartbeat")]
    matches = [f for f in live if f["type"] == "match"]
    assert len(matches) > 50
    # protocols.md (Exchange, sequence rules) and recorded traffic: one sequence per product across its
    # channels, never going backwards in what one client receives
    never_backwards(live, lambda f: f.get("product_id"), "sequence")
    # recorded real traffic: every match has its own trade id, strictly increasing per product
    for p in products:
        ids = [f["trade_id"] for f in matches if f["product_id"] == p]
        assert ids == sorted(set(ids)), p
    # recorded real traffic (107 of 107): the ticker a match produces carries that match's sequence,
    # trade id, price and size; the first ticker matches last_match
    by_seq = {(f["product_id"], f["sequence"]): f for f in live if f["type"] in ("match", "last_match")}
    tickers = [f for f in live if f["type"] == "ticker"]
    assert len(tickers) > 20
    for t in tickers:
        m = by_seq.get((t["product_id"], t["sequence"]))
        assert m is not None, t
        assert (t["trade_id"], t["price"], t["last_size"]) == (m["trade_id"], m["price"], m["size"]), (t, m)
    # cbpro docs (heartbeat channel): last_trade_id is the latest trade; never behind a delivered match
    seen: dict[str, int] = {}
    for f in live:
        if f["type"] in ("match", "last_match"):
            seen[f["product_id"]] = max(seen.get(f["product_id"], 0), f["trade_id"])
        elif f["type"] == "heartbeat":
            assert f["last_trade_id"] >= seen.get(f["product_id"], 0), f
    # the subscription is acknowledged with the cumulative state
    acks = [f for f in frames if f.get("type") == "subscriptions"]
    assert acks and {c["name"] for c in acks[-1]["channels"]} >= {"heartbeat", "ticker", "matches"}


async def test_coinbase_advanced_trade_sequence_acks_and_trades() -> None:
    products = ["BTC-USD", "ETH-USD"]
    frames = await record(
        "coinbase",
        [
            {"type": "subscribe", "channel": "heartbeats"},
            {"type": "subscribe", "channel": "ticker", "product_ids": products},
            {"type": "subscribe", "channel": "market_trades", "product_ids": products},
            {"type": "subscribe", "channel": "level2", "product_ids": products},
        ],
    )
    # protocols.md §1 (sequence_num): one counter per connection over every channel, from 0, no holes
    assert [f["sequence_num"] for f in frames] == list(range(len(frames)))
    # acknowledgements are cumulative: each states everything subscribed so far
    acks = [f["events"][0]["subscriptions"] for f in frames if f["channel"] == "subscriptions"]
    assert len(acks) == 4 and set(acks[-1]) >= {"heartbeats", "ticker", "market_trades", "level2"}
    for before, after in itertools.pairwise(acks):
        assert set(after) >= set(before)
    # trades: every trade id once per product (a trade is reported once)
    for p in products:
        ids = [
            t["trade_id"]
            for f in frames
            if f["channel"] == "market_trades"
            for e in f["events"]
            for t in e["trades"]
            if t["product_id"] == p
        ]
        assert len(ids) > 10 and len(ids) == len(set(ids)), p
    # heartbeats: the counter goes up by one
    counters = [e["heartbeat_counter"] for f in frames if f["channel"] == "heartbeats" for e in f["events"]]
    assert counters == list(range(counters[0], counters[0] + len(counters)))


async def test_coinapi_sequences_per_type_and_symbol() -> None:
    symbols = ["COINBASE_SPOT_BTC_USD", "COINBASE_SPOT_ETH_USD"]
    frames = await record(
        "coinapi",
        lambda key: [
            {
                "type": "hello",
                "apikey": key,
                "heartbeat": True,
                "subscribe_data_type": ["trade", "quote", "book"],
                "subscribe_filter_symbol_id": [f"{s}$" for s in symbols],
            }
        ],
    )
    data = [f for f in frames if f["type"] in ("trade", "quote", "book")]
    assert {f["symbol_id"] for f in data} == set(symbols)
    # protocols.md §3 (sequence rules): per (type, symbol_id), consecutive on one connection
    last: dict[tuple[str, str], int] = {}
    for f in data:
        k = (f["type"], f["symbol_id"])
        if k in last:
            assert f["sequence"] == last[k] + 1, (k, f["sequence"], last[k])
        last[k] = f["sequence"]
    uuids = [f["uuid"] for f in data if f["type"] == "trade"]
    assert len(uuids) > 10 and len(uuids) == len(set(uuids))
    # a book snapshot comes for every symbol asked for (updates before it may come, as the venue allows)
    assert {f["symbol_id"] for f in data if f["type"] == "book" and f.get("is_snapshot")} == set(symbols)


async def test_bitzoom_depth_links_trade_ids_and_acks() -> None:
    frames = await record(
        "bitzoom",
        [
            {
                "method": "SUBSCRIBE",
                "params": ["btcusdt@trade", "btcusdt@depth@100ms", "ethusdt@trade"],
                "id": 7,
            }
        ],
    )
    # the docs' control answer: {"result": null, "id": N} for the request N
    assert frames[0] == {"result": None, "id": 7}
    events = frames[1:]
    # futures diff depth (protocols.md §4): each event links to the one before (pu == previous u)
    depth = [e for e in events if e.get("e") == "depthUpdate"]
    assert len(depth) > 5
    for a, b in itertools.pairwise(depth):
        assert b["pu"] == a["u"] and b["U"] <= b["u"], (a, b)
    # trade ids strictly increasing per symbol; event times never go backwards
    for symbol in ("BTCUSDT", "ETHUSDT"):
        trades = [e for e in events if e.get("e") == "trade" and e["s"] == symbol]
        ids = [t["t"] for t in trades]
        assert len(ids) > 10 and ids == sorted(set(ids)), symbol
        times = [t["T"] for t in trades]
        assert times == sorted(times)


async def test_oxarchive_acks_and_trades() -> None:
    frames = await record(
        "0xarchive",
        [{"op": "subscribe", "channel": "trades", "symbol": c} for c in ("BTC", "ETH")],
        bearer=True,
    )
    # every subscribe is acknowledged, in order (0xArchive's docs and SDK tests)
    acks = [(f["channel"], f.get("symbol") or f.get("coin")) for f in frames if f["type"] == "subscribed"]
    assert acks == [("trades", "BTC"), ("trades", "ETH")]
    for coin in ("BTC", "ETH"):
        trades = [
            t
            for f in frames
            if f["type"] == "data" and f["channel"] == "trades" and f["symbol"] == coin
            for t in f["data"]
        ]
        ids = [t["tid"] for t in trades]
        assert len(ids) > 5 and ids == sorted(set(ids)), coin
        times = [t["time"] for t in trades]
        assert times == sorted(times), coin
