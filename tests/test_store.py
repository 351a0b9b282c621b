"""The store: applying events (what they imply is the session's: test_session), candles, health, bounds."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tickerterm.core.candles import CandleSeries
from tickerterm.core.events import (
    BookSnapshot,
    Candle,
    Closed,
    Event,
    Gap,
    RetryScheduled,
    Ticker,
    Trade,
)
from tickerterm.core.store import Store


def snap(product: str = "BTC-USD") -> BookSnapshot:
    return BookSnapshot("cb", 1.0, product, None, [("100", "1")], [("101", "1")])


def test_restated_trades_are_not_doubled_and_the_tape_is_bounded() -> None:
    store = Store(tape_len=5)
    for i in range(20):
        store.apply(Trade("cb", 1.0, "BTC-USD", 60.0 + i, str(i), "100", "1", "buy"))
    store.apply(Trade("cb", 1.0, "BTC-USD", 79.0, "19", "100", "1", "buy"))  # seen already
    assert [t.trade_id for t in store.tapes[("cb", "BTC-USD")]] == ["15", "16", "17", "18", "19"]
    assert len(store.tape) == 5
    # after many more trades, a restatement of the last tape's worth is still recognised...
    for i in range(20, 1000):
        store.apply(Trade("cb", 1.0, "BTC-USD", 60.0 + i, str(i), "100", "1", "buy"))
    for i in range(995, 1000):
        store.apply(Trade("cb", 1.0, "BTC-USD", 60.0 + i, str(i), "100", "1", "buy"))
    assert [t.trade_id for t in store.tapes[("cb", "BTC-USD")]] == ["995", "996", "997", "998", "999"]
    # ...and the ids remembered stay bounded (at most four tape lengths)
    assert sum(map(len, store._seen_trades[("cb", "BTC-USD")])) <= 20


def test_a_frames_trades_applied_together_equal_them_applied_one_by_one() -> None:
    """A frame's trades go into the store as a run (products interleaved, a book event between, ids
    restated inside the run and across the rotation of remembered ids): the same tapes, bars and
    versions as one event at a time."""
    events: list[Event] = []
    for i in range(60):
        product = ("BTC-USD", "ETH-USD", "ETH-USD", "SOL-USD")[i % 4]
        events.append(
            Trade("cb", 1.0, product, 1714564800.0 + i * 7, str(i // 2), f"{100 + i % 9}.5", "0.1", "buy")
        )
        if i == 30:
            events.append(snap("BTC-USD"))
    events += events[40:50]  # restated
    one, run = Store(tape_len=4), Store(tape_len=4)
    for ev in events:
        one.apply(ev)
    run.apply_all(events)
    assert {k: list(t) for k, t in run.tapes.items()} == {k: list(t) for k, t in one.tapes.items()}
    assert list(run.tape) == list(one.tape) and len(run.tapes[("cb", "ETH-USD")]) == 4
    assert run._seen_trades == one._seen_trades
    for key in one.candles:
        bars = [
            (b.start, b.open, b.high, b.low, b.close, b.volume_text, b.trades) for b in one.candles[key].bars
        ]
        assert bars == [
            (b.start, b.open, b.high, b.low, b.close, b.volume_text, b.trades) for b in run.candles[key].bars
        ]
    assert (run.tape_version, run.candles_version) == (one.tape_version, one.candles_version) > (0, 0)
    assert run.book("cb", "BTC-USD").state == "ok"


a_trade = st.builds(
    lambda ts, price, size, late: Trade(
        "cb", 1714564900.0 + ts, "BTC-USD", None if late else 1714564800.0 + ts, "", price, size, "buy"
    ),
    st.sampled_from([0.0, 0.5, 1.0, 59.0, 59.999, 60.0, 61.0, 125.0]),
    st.sampled_from(["100", "100.0", "100.50", "100.5", "99.99", "101", "0.001"]),
    st.sampled_from(["0.1", "0.10", "2", "0.00000001", "123456789.123456789123"]),
    st.sampled_from([False] * 7 + [True]),  # most trades have a venue time
)  # fmt: skip


def at(ts: float, price: str) -> Trade:
    return Trade("cb", 1714564900.0 + ts, "BTC-USD", 1714564800.0 + ts, "", price, "1", "buy")


@settings(max_examples=300)
@given(st.lists(st.lists(a_trade, max_size=12), max_size=6))
@example([[at(5, "100")], [at(9, "100"), at(9, "101"), at(1, "99"), at(1, "98"), at(4, "101.0")]])
def test_a_batch_of_trades_makes_the_bars_that_one_trade_at_a_time_makes(batches: list[list[Trade]]) -> None:
    """``CandleSeries.add_trades`` (a batch at once when it falls in the last bar) against ``add_trade``
    for each: equal prices spelled two ways, equal and out-of-order times, minute edges, trades without
    a venue time. The first trade at the highest price is the high, the last at the latest time the
    close."""
    one, batched = CandleSeries(60, 10), CandleSeries(60, 10)
    for batch in batches:
        for t in batch:
            one.add_trade(t.exch_ts if t.exch_ts is not None else t.recv_ts, t.price, t.size)
        batched.add_trades(batch)

    def shown(series: CandleSeries) -> list[tuple[object, ...]]:
        return [
            (b.start, b.open, b.high, b.low, b.close, b.volume_text, b.trades, b.open_ts, b.close_ts)
            for b in series.bars
        ]

    assert shown(batched) == shown(one) and batched.version == one.version


def test_candles_from_trades_per_interval_exact_volume() -> None:
    store = Store()
    t0 = 1714564800.0  # a whole hour
    for ts, price, size in [
        (t0 + 1, "100.10", "0.1"),
        (t0 + 30, "99.90", "0.2"),
        (t0 + 59, "100.00", "0.3"),
        (t0 + 61, "101", "1"),
        (t0 + 10, "98.5", "0.05"),
    ]:  # the last one arrives late
        store.apply(Trade("cb", 1.0, "BTC-USD", ts, f"{ts}", price, size, "sell"))
    minute = store.candle_series("cb", "BTC-USD", 60)
    assert minute is not None
    first, second = minute.bars
    assert (first.start, first.open, first.high, first.low, first.close, first.volume_text) == (
        int(t0),
        "100.10",
        "100.10",
        "98.5",
        "100.00",
        "0.65",
    )
    assert (second.open, second.close, second.volume_text) == ("101", "101", "1")
    hour = store.candle_series("cb", "BTC-USD", 3600)
    assert hour is not None and len(hour) == 1 and hour.bars[0].volume_text == "1.65"


def test_venue_candles_win_over_trade_built_ones() -> None:
    store = Store()
    store.apply(Trade("cb", 1.0, "BTC-USD", 1714564800.0, "1", "100", "1", "buy"))
    store.apply(Candle("cb", 1.0, "BTC-USD", None, 1714564800, 300, "99", "110", "90", "105", "12.5"))
    series = store.candle_series("cb", "BTC-USD", 300)
    assert series is not None
    bar = series.bars[-1]
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume_text) == ("99", "110", "90", "105", "12.5")
    assert store.candle_series("cb", "BTC-USD", 60) is not None  # other intervals still from trades


def test_ticker_batch_keeps_known_best_prices_without_touching_the_event() -> None:
    store = Store()
    store.apply(Ticker("cb", 1.0, "BTC-USD", None, price="1", bid="0.9", ask="1.1"))
    batch = Ticker("cb", 2.0, "BTC-USD", None, price="2")
    store.apply(batch)
    merged = store.tickers[("cb", "BTC-USD")]
    assert (merged.price, merged.bid, merged.ask) == ("2", "0.9", "1.1")
    assert batch.bid is None  # what was emitted stays what the venue sent


def test_health_counts() -> None:
    store = Store()
    store.apply(Gap("cb", 5.0, "cb", 3, 7, "connection"))
    store.apply(Closed("cb", 6.0, "cb", 1011, "boom"))
    store.apply(RetryScheduled("cb", 6.0, "cb", 1, 0.5))
    h = store.health["cb"]
    assert (h.gaps, h.last_gap.expected, h.last_gap.received) == (1, 3, 7)  # type: ignore[union-attr]
    assert (h.last_close_code, h.last_close_reason, h.state, h.retries, h.next_retry_at) == (
        1011,
        "boom",
        "retrying",
        1,
        6.5,
    )
    for i in range(30):
        h.note_message(100.0 + i * 0.1, 100.0 + i * 0.1 - 0.002)
    assert h.rate(103.0, window=3) == 10.0 and h.rate(103.0) == 6.0  # 30 messages over the last 5 s
    p50, p99 = h.latency()  # type: ignore[misc]
    assert abs(p50 - 2.0) < 0.01 and abs(p99 - 2.0) < 0.01


def test_venue_candles_are_folded_into_coarser_intervals() -> None:
    from tickerterm.core.events import Candle

    store = Store()
    t0 = 1714564800  # a whole hour
    for i, (o, h, low, c, v) in enumerate([("10", "12", "9", "11", "1"), ("11", "15", "10", "14", "2.5")]):
        store.apply(Candle("bz", 1.0, "BTC-USDT", None, t0 + 60 * i, 60, o, h, low, c, v))
    assert store.candle_source("bz", "BTC-USDT", 60) == "venue"
    assert store.candle_source("bz", "BTC-USDT", 900) == "venue 1m"
    series = store.candle_series("bz", "BTC-USDT", 900)
    assert series is not None and len(series) == 1
    bar = series.bars[0]
    assert (bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume_text) == (
        t0,
        "10",
        "15",
        "9",
        "14",
        "3.5",
    )
    assert store.candle_source("bz", "BTC-USDT", 90) == "from trades"  # 90 s is not made of whole minutes


def test_venue_history_goes_on_from_the_trades() -> None:
    """Venue bars that stop (history only, or a channel turned off) are followed by trade-built bars."""
    from tickerterm.core.events import Candle

    store = Store()
    t0 = 1714564800
    for i in range(3):
        store.apply(Candle("x", 1.0, "BTC-USD", None, t0 + 60 * i, 60, "10", "11", "9", "10", "1"))
    assert store.candle_source("x", "BTC-USD", 60) == "venue"
    store.apply(
        Trade("x", 1.0, "BTC-USD", t0 + 60 * 2 + 5, "a", "99", "1", "buy")
    )  # within the venue's last bar
    series = store.candle_series("x", "BTC-USD", 60)
    assert series is not None and [b.start for b in series.bars] == [t0, t0 + 60, t0 + 120]
    assert series.bars[-1].close == "10"  # the venue's own bar wins where it has one
    store.apply(Trade("x", 1.0, "BTC-USD", t0 + 60 * 4 + 1, "b", "12", "2", "buy"))  # after it: from trades
    series = store.candle_series("x", "BTC-USD", 60)
    assert series is not None and [b.start for b in series.bars] == [t0, t0 + 60, t0 + 120, t0 + 240]
    assert (series.bars[-1].close, series.bars[-1].volume_text) == ("12", "2")
    assert store.candle_source("x", "BTC-USD", 60) == "venue + trades"
    hourly = store.candle_series("x", "BTC-USD", 3600)
    assert hourly is not None and len(hourly) == 1 and hourly.bars[0].high == "11"


def test_latency_is_taken_over_the_last_minute_so_a_slow_start_ages_out() -> None:
    from tickerterm.core.health import ConnectionHealth

    h = ConnectionHealth("c", "v")
    for i in range(50):  # a slow start: frames queued behind a deep REST snapshot
        h.note_message(1000.0 + i * 0.01, 1000.0 + i * 0.01 - 0.6)
    for i in range(100):  # then a steady feed
        h.note_message(1070.0 + i, 1070.0 + i - 0.002)
    assert h.latency() == pytest.approx((2.0, 2.0), abs=0.01)
    assert h.latency(now=1010.0, window=60.0) == pytest.approx((600.0, 600.0), abs=0.01)
