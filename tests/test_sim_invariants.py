"""What a real client relies on in everything a simulator sends for a few seconds, checked on the raw
frames of a plain WebSocket client (not tickerterm's own parser, which could share a mistake).

Where each invariant comes from is said next to it: the venue's documentation, ``docs/protocols.md``
(the project's protocol notes) or recorded real traffic described in the issues.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect

from tests.conftest import FAST
from tickerterm.sim import simulator_class
from tickerterm.sim.faults import Faults


async def record(
    venue: str, subscribe: list[dict[str, Any]], seconds: float = 3.0, path: str = ""
) -> list[dict[str, Any]]:
    """Every frame a raw client receives from ``venue``'s simulator for ``seconds`` after sending
    ``subscribe`` (rate 400 steps/s: many matches, several makers per taker)."""
    options: dict[str, Any] = dict(rate=400.0, depth=60, seed=11, timing=FAST, faults=Faults(), warmup=300)
    got: list[dict[str, Any]] = []
    async with simulator_class(venue)(**options) as sim:
        async with connect(sim.url + path, max_size=None) as ws:
            for frame in subscribe:
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
