"""Numbers people can read at a glance (issue 17): every column aligned on its decimal point, values
padded never rounded, nothing moving when a marker appears, columns dropped (never numbers cut) on a
small screen, and panels that say "connecting…" until the feed is there."""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickerterm.core.events import Ticker, Trade
from tickerterm.core.store import Store
from tickerterm.ui.app import TickertermApp
from tickerterm.ui.numbers import Precision, align, pad, places
from tickerterm.ui.widgets import DepthLadder, Panel, TickersTable, TradeTape

from .ui_support import CHANNELS, NOW, static_app, until

NUMBER = re.compile(r"[+-]?\d+\.\d+")


def dots(line: str) -> list[int]:
    """The cell of each decimal point on a line."""
    return [m.start() + m.group().index(".") for m in NUMBER.finditer(line)]


def text_of(panel: Panel) -> str:
    return panel.plain()


def test_pad_adds_or_removes_zeros_only() -> None:
    assert pad("0.0046109", 8) == "0.00461090"
    assert pad("0.50000000", 2) == "0.50"
    assert pad("64000", 2) == "64000.00"
    assert pad("64000.000", 0) == "64000"
    assert pad("0.123456789", 2) == "0.123456789"  # more decimals than the column: shown whole
    assert places("0.50000000") == 1 and places("7") == 0 and places("1.230") == 2


@given(st.decimals(min_value=0, max_value=10**9, places=8, allow_nan=False), st.integers(0, 10))
def test_pad_never_changes_a_value(value: Any, decimals: int) -> None:
    from decimal import Decimal

    text = format(value, "f")
    assert Decimal(pad(text, decimals)) == Decimal(text)


def test_precision_is_learned_per_product_and_never_shrinks() -> None:
    prec = Precision()
    assert prec.learn("v", "BTC-USD", "size", ["0.0046109", "0.00316149"]) == 8
    assert prec.learn("v", "BTC-USD", "size", ["1.5"]) == 8
    assert prec.learn("v", "ETH-USD", "size", ["1.5"]) == 1
    assert prec.learn("v", "BTC-USD", "size", ["1e-40", "0." + "1" * 30]) == 8  # hostile: not learned


def test_align_puts_the_decimal_points_in_one_cell() -> None:
    cells = align(["64000.23", "144.949", "—", "1.25k", "+0.05%"])
    assert len({len(c) for c in cells}) == 1
    assert {c.index(".") for c in cells if "." in c} == {5}


async def test_every_numeric_column_of_the_tickers_shares_its_decimal_cell() -> None:
    app = static_app()
    async with app.run_test(size=(120, 40)) as pilot:
        tickers = app.query_one(TickersTable)
        await until(pilot, lambda: "Notional" in text_of(tickers))  # laid out at its full width
        lines = [line for line in text_of(tickers).splitlines() if "-USD" in line]
        assert len(lines) == 3
        columns = list(zip(*(dots(line) for line in lines), strict=True))
        assert len(columns) >= 6, lines  # last, change, %, bid, ask, spread, volumes
        assert all(len(set(col)) == 1 for col in columns), lines
        assert "Notional" in text_of(tickers)  # the 24h volume in the quote currency too


async def test_a_price_flash_does_not_move_the_last_column() -> None:
    app = static_app()
    async with app.run_test(size=(120, 40)) as pilot:
        tickers = app.query_one(TickersTable)
        await until(pilot, lambda: "Notional" in text_of(tickers))
        before = next(line for line in text_of(tickers).splitlines() if "BTC-USD" in line)
        tick = app.store.tickers[("coinbase", "BTC-USD")]
        app.store.apply(Ticker("coinbase", NOW, "BTC-USD", NOW, price="64100.5", bid=tick.bid, ask=tick.ask))
        await until(pilot, lambda: "▲" in text_of(tickers))
        after = next(line for line in text_of(tickers).splitlines() if "BTC-USD" in line)
        assert "64100.50" in after  # padded to the product's decimals
        assert dots(after)[0] == dots(before)[0], (before, after)  # the marker has a column of its own


async def test_the_tape_and_the_ladder_align_and_pad_sizes() -> None:
    app = static_app()
    async with app.run_test(size=(120, 40)) as pilot:
        tape, ladder = app.query_one(TradeTape), app.query_one(DepthLadder)
        await until(pilot, lambda: "spread" in text_of(ladder) and "B▲" in text_of(tape))
        app.store.apply(Trade("coinbase", NOW, "BTC-USD", NOW, "t-odd", "64000.5", "0.001", "buy"))
        await until(pilot, lambda: "64000.50" in text_of(tape))
        lines = [line for line in text_of(tape).splitlines() if line.strip()]
        assert any(" 0.00100000" in line for line in lines)  # padded, the same decimals as the rest
        assert all(len(set(col)) == 1 for col in zip(*(dots(line) for line in lines), strict=True))
        text = text_of(ladder)
        head = text.splitlines()[0]
        assert "Price USD" in head and "Size BTC" in head
        assert re.search(r"spread \d+\.\d+ \([\d.e-]+ bps\)", text)
        levels = [line for line in text.splitlines() if NUMBER.match(line.strip())]
        assert len(levels) > 10
        assert all(len(set(col)) == 1 for col in zip(*(dots(line)[:2] for line in levels), strict=True))


async def test_a_wide_ladder_shows_cumulative_size_with_its_unit() -> None:
    app = static_app()
    async with app.run_test(size=(200, 60)) as pilot:
        ladder = app.query_one(DepthLadder)
        await until(pilot, lambda: "spread" in text_of(ladder))
        assert "Cum BTC" in text_of(ladder).splitlines()[0]


@pytest.mark.parametrize("size", [(60, 20), (80, 24)])
async def test_a_small_screen_drops_columns_and_never_cuts_a_number(size: tuple[int, int]) -> None:
    app = static_app()
    async with app.run_test(size=size) as pilot:
        tickers, ladder, tape = (
            app.query_one(TickersTable),
            app.query_one(DepthLadder),
            app.query_one(TradeTape),
        )
        await until(
            pilot, lambda: ("spread" in text_of(ladder) and "▲" in text_of(tape)) or "▼" in text_of(tape)
        )
        for panel in (tickers, ladder, tape):
            for line in text_of(panel).splitlines():
                assert "…" not in line, (panel.id, line)
                assert not re.search(r"\d\.$|\.\d*…", line)
        # the rows still carry last, bid and ask whole
        btc = next(line for line in text_of(tickers).splitlines() if "BTC-USD" in line)
        assert len(dots(btc)) >= 3


class NeverConnects:
    """A feed that is still connecting: no subscription is known yet."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def subscriptions(self) -> dict[str, list[str]]:
        return {}


async def test_panels_say_connecting_until_the_feed_is_there() -> None:
    @asynccontextmanager
    async def opener(store: Store) -> Any:
        yield NeverConnects(store)

    app = TickertermApp(opener, venue="coinbase", products=["BTC-USD"], channels=CHANNELS)
    async with app.run_test(size=(120, 40)) as pilot:
        ladder, tape = app.query_one(DepthLadder), app.query_one(TradeTape)
        await until(pilot, lambda: app.feed is not None)
        await pilot.pause(0.2)
        assert "connecting…" in text_of(ladder) and "connecting…" in text_of(tape)
        assert "is off" not in text_of(ladder) + text_of(tape)
