"""Order book rules, with hypothesis against a plain model."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickerterm.core.book import OrderBook
from tickerterm.core.events import change


def book_with(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> OrderBook:
    book = OrderBook("v", "BTC-USD")
    book.apply_snapshot(bids, asks)
    return book


def test_snapshot_sorts_and_drops_zero_levels() -> None:
    book = book_with(
        [("99.5", "2"), ("100.0", "1"), ("98", "0.000")], [("101", "0"), ("100.5", "3"), ("102", "1")]
    )
    assert book.top(5) == ([("100.0", "1"), ("99.5", "2")], [("100.5", "3"), ("102", "1")])
    assert book.best_bid == ("100.0", "1") and book.best_ask == ("100.5", "3")
    assert book.state == "ok" and not book.crossed
    assert (book.spread(), book.mid()) == ("0.5", "100.25")


def test_numerically_zero_sizes_remove_in_every_spelling() -> None:
    book = book_with([("1", "1"), ("2", "1"), ("3", "1")], [("4", "1")])
    book.apply_changes(
        [change("bid", "1", "0"), change("bid", "2.0", "0.00"), change("bid", "3", "0.00000000")]
    )
    assert len(book.bids) == 0 and book.top(3) == ([], [("4", "1")])


def test_a_price_is_one_level_however_spelled_and_keeps_the_latest_text() -> None:
    book = book_with([("1.50", "1")], [("2", "1")])
    book.apply_changes([change("bid", "1.5", "0.25")])
    assert book.levels("bid") == {"1.5": "0.25"}
    book.apply_changes(
        [change("ask", "9", "0"), change("ask", "2.0", "0")]
    )  # removing an unknown level is fine
    assert book.levels("ask") == {}


def test_crossed_book_is_detected() -> None:
    book = book_with([("100", "1")], [("101", "1")])
    book.apply_changes([change("bid", "101", "1")])
    assert book.crossed


def test_grouping_rounds_bids_down_asks_up_and_sums_exactly() -> None:
    book = book_with(
        [("100.7", "0.1"), ("100.2", "0.2"), ("99.9", "0.3"), ("98.0", "1")],
        [("101.1", "0.1"), ("101.4", "0.2"), ("102.0", "0.3"), ("103.5", "1")],
    )
    assert book.grouped("1", 2) == ([("100", "0.3"), ("99", "0.3")], [("102", "0.6"), ("104", "1")])
    assert book.grouped("0.5", 10)[0] == [("100.5", "0.1"), ("100", "0.2"), ("99.5", "0.3"), ("98", "1")]


prices = st.integers(min_value=1, max_value=400).map(lambda i: f"{i / 4:.2f}")
sizes = st.one_of(
    st.sampled_from(["0", "0.0", "0.00000000"]),
    st.integers(min_value=1, max_value=10**8).map(lambda i: f"{i / 10**8:.8f}".rstrip("0")),
)


@given(st.lists(st.tuples(st.sampled_from(["bid", "ask"]), prices, sizes), max_size=300))
def test_book_equals_a_model_after_any_updates(changes: list[tuple[str, str, str]]) -> None:
    book = OrderBook("v", "P")
    book.apply_snapshot([], [])
    model: dict[str, dict[Decimal, tuple[str, str]]] = {"bid": {}, "ask": {}}
    for side, price, size in changes:
        book.apply_changes([change(side, price, size)])  # type: ignore[arg-type]
        if Decimal(size) == 0:
            model[side].pop(Decimal(price), None)
        else:
            model[side][Decimal(price)] = (price, size)
        best_bid = max(model["bid"], default=None)  # read after every change, as the session does
        best_ask = min(model["ask"], default=None)
        assert book.best_bid == (None if best_bid is None else model["bid"][best_bid])
        assert book.best_ask == (None if best_ask is None else model["ask"][best_ask])
        assert book.crossed == (best_bid is not None and best_ask is not None and best_bid >= best_ask)
    bids, asks = book.top(1000)
    assert bids == [model["bid"][p] for p in sorted(model["bid"], reverse=True)]
    assert asks == [model["ask"][p] for p in sorted(model["ask"])]
    assert len(book) == len(model["bid"]) + len(model["ask"])


def test_levels_that_come_and_go_forever_keep_the_book_bounded() -> None:
    """Levels that come and go behind the best, forever: what holds them does not grow with every level
    that ever came and went (in C, a side's blocks stay few: a nearly empty one merges into a neighbour)."""
    book = book_with([("100", "1")], [("101", "1")])
    for i in range(20_000):  # levels appear and vanish behind the best, never at the top
        price = f"{90 - (i % 500) / 100:.2f}"
        book.apply_changes([change("bid", price, "1")])
        book.apply_changes([change("bid", price, "0")])
        ask = f"{110 + (i % 700) / 100:.2f}"
        book.apply_changes([change("ask", ask, "2"), change("ask", ask, "0")])
    assert len(book.bids) == 1 and len(book.asks) == 1
    for side in (book.bids, book.asks):
        if hasattr(side, "blocks"):  # the C side: one block for one level
            assert side.blocks() == 1
    assert book.top(5) == ([("100", "1")], [("101", "1")])
    book.apply_changes([change("bid", "100", "0"), change("ask", "101", "0")])  # the best go too
    assert book.best_bid is None and book.best_ask is None and book.top(5) == ([], [])


def test_a_change_carries_the_venue_text_and_its_value() -> None:
    assert change("ask", "64000.10", "0.00000000") == ("ask", "64000.10", "0.00000000", 64000.1, 0.0)
    for bad in ("NaN", "inf", "-1", "abc", ""):
        with pytest.raises(ValueError):
            change("bid", bad, "1")
