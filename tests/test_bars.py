"""``--bars``: the cbpro seed's VolumeAnalyzer as NDJSON (issue 18): each bar built from trades said as a
``candle`` line with its exact volume and VWAP when it closes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal

from tickerterm.core.bars import GRACE, BarCloser
from tickerterm.core.events import Candle, Trade
from tickerterm.core.store import Store

V = "coinbase"


def trade(ts: float, price: str, size: str, product: str = "BTC-USD") -> Trade:
    return Trade(V, ts, product, ts, f"t{ts}", price, size, "buy")


def test_a_bar_is_said_when_the_next_one_starts_with_exact_volume_and_vwap() -> None:
    closer = BarCloser(60, V)
    store = Store()
    assert (
        closer.check(
            [trade(60.0, "100", "1"), trade(70.0, "110", "3"), trade(119.9, "90", "1")], store, 120.0
        )
        == []
    )
    out = closer.check([trade(121.0, "95", "2")], store, 121.0)
    assert out == [
        Candle(V, 121.0, "BTC-USD", None, 60, 60, "100", "110", "90", "90", "5", source="trades", vwap="104")
    ]  # (100*1 + 110*3 + 90*1) / 5 = 104
    assert closer.check([trade(100.0, "1", "1")], store, 122.0) == []  # a late trade of a bar said: not again


def test_the_clock_closes_a_bar_on_a_quiet_market() -> None:
    closer = BarCloser(60, V)
    store = Store()
    closer.check([trade(60.0, "100.5", "0.25"), trade(61.0, "100.7", "0.75")], store, 61.0)
    assert closer.tick(store, 120.0 + GRACE - 0.1) == []
    (bar,) = closer.tick(store, 120.0 + GRACE)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.vwap) == (
        "100.5",
        "100.7",
        "100.5",
        "100.7",
        "1.00",
        "100.65",
    )
    assert closer.tick(store, 500.0) == []


def test_bars_from_trades_do_not_enter_the_venues_candles() -> None:
    store = Store()
    store.apply(
        Candle(V, 1.0, "BTC-USD", None, 60, 60, "1", "2", "0.5", "1.5", "3", source="trades", vwap="1.2")
    )
    assert store.venue_candles == {}
    store.apply(Candle(V, 1.0, "BTC-USD", None, 60, 60, "1", "2", "0.5", "1.5", "3"))
    assert 60 in store.venue_candles[(V, "BTC-USD")]


def test_headless_bars_add_up_to_the_trades_printed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tickerterm", "--sim", "--headless", "--products", "BTC-USD,ETH-USD",
         "--channels", "market_trades", "--bars", "1s", "--duration", "3.5", "--rate", "300"],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    bars = [r for r in lines if r["type"] == "candle" and r.get("source") == "trades"]
    trades = [r for r in lines if r["type"] == "trade"]
    assert len(bars) >= 3
    volume: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    notional: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for t in trades:
        key = (t["product"], int(t.get("exch_ts", t["recv_ts"])))
        volume[key] += Decimal(t["size"])
        notional[key] += Decimal(t["size"]) * Decimal(t["price"])
    for bar in bars:
        key = (bar["product"], bar["start"])
        assert bar["interval"] == 1 and Decimal(bar["volume"]) == volume[key]
        assert abs(Decimal(bar["vwap"]) - notional[key] / volume[key]) < Decimal("1e-8")
