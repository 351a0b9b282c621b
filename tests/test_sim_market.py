"""The synthetic market: seeded, internally consistent, moving."""

from __future__ import annotations

from tickerterm.sim.market import DEFAULT_PRODUCTS, Market

BTC = DEFAULT_PRODUCTS[0]


def run(seed: int, n: int) -> list[tuple[object, ...]]:
    market = Market(BTC, seed, depth=500)
    out = []
    for i in range(n):
        step = market.step(1714564800.0 + i * 0.01)
        out.append(
            (tuple(step.changes), tuple((t.trade_id, t.price, t.size, t.maker_side) for t in step.trades))
        )
    return out


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    assert run(5, 2000) == run(5, 2000)
    assert run(5, 2000) != run(6, 2000)


def test_changes_describe_the_book_exactly_and_trades_hit_the_top() -> None:
    market = Market(BTC, 3, depth=400)
    bids, asks = market.book_text()
    trades = 0
    for i in range(5000):
        best_bid, best_ask = market.price_text(market.best_bid()), market.price_text(market.best_ask())
        step = market.step(1714564800.0 + i)
        for side, price, size in step.changes:
            book = bids if side == "bid" else asks
            if size == "0":
                del book[price]
            else:
                book[price] = size
        if i % 50 == 0:
            assert (bids, asks) == market.book_text()
        assert market.best_bid() < market.best_ask()
        if step.trades:
            trades += 1
            first = step.trades[0]
            assert first.price == (best_ask if first.maker_side == "ask" else best_bid)
            assert len({t.maker_side for t in step.trades}) == 1
    assert (bids, asks) == market.book_text()
    assert trades > 300
    assert len(market.bids) > 200 and len(market.asks) > 200


def test_prices_move() -> None:
    market = Market(BTC, 1, depth=2000)
    for i in range(20000):
        market.step(1714564800.0 + i)
    assert market.high_24h - market.low_24h > 1000 * market.tick  # more than $10 on BTC


def test_blast_cycle_goes_out_and_comes_back_exactly() -> None:
    import json

    from tickerterm.core.book import OrderBook
    from tickerterm.sim.coinbase import _blast_cycle
    from tickerterm.venues.coinbase import CoinbaseAdvancedTrade

    market = Market(BTC, 4, depth=300)
    cycle = _blast_cycle(market, 3000, 16)
    assert len(cycle) % 2 == 0 and len(cycle) > 100
    parser = CoinbaseAdvancedTrade().parser("coinbase")
    book = OrderBook("coinbase", "BTC-USD")
    bids, asks = market.snapshot_levels()
    book.apply_snapshot(bids, asks)
    start = (book.levels("bid"), book.levels("ask"))
    for seq, body in enumerate(cycle * 2):
        frame = json.dumps({"channel": "l2_data", "sequence_num": seq, "events": json.loads(body)})
        for ev in parser.parse(frame, 0.0):
            book.apply_changes(ev.changes)  # type: ignore[attr-defined]
            assert not book.crossed
        if seq == len(cycle) // 2 - 1:
            assert (book.levels("bid"), book.levels("ask")) != start  # the market really moved
    assert (book.levels("bid"), book.levels("ask")) == start == market.book_text()  # and came back
