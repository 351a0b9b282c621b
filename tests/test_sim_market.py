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
