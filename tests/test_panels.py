"""Every panel usable at every size (issue 17): the footer keeps help and quit, every panel maximises to
the whole screen and escape gives the focus back, the health panel uses the width it has, the chart
says when its channel is off and labels prices at the product's decimals."""

from __future__ import annotations

import re
from typing import Any

import pytest
from textual.widgets import Footer

from tickerterm.core.events import Gap
from tickerterm.ui.widgets import CandleChart, HealthPanel, Panel

from .conftest import make_sim
from .ui_support import NOW, live_app, static_app, until

PANELS = ["tickers", "ladder", "chart", "tape", "health"]


def text_of(panel: Panel) -> str:
    return panel.plain()


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40), (200, 60)])
async def test_the_footer_always_shows_help_and_quit(size: tuple[int, int]) -> None:
    app = static_app()
    async with app.run_test(size=size) as pilot:
        footer = app.query_one(Footer)

        def shown() -> list[str]:
            return [str(key.render()) for key in footer.children if key.region.width]

        await until(pilot, lambda: len(shown()) >= 2)  # the footer is laid out
        assert any("Help" in k for k in shown()) and any("Quit" in k for k in shown()), shown()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
async def test_every_panel_maximises_to_the_screen_and_escape_restores_it(n: int) -> None:
    app = static_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        await pilot.press(str(n))
        panel = app.query_one(f"#{PANELS[n - 1]}", Panel)
        before = panel.size
        await pilot.press("z")
        await until(pilot, lambda: app.screen.maximized is panel)
        await pilot.pause(0.1)
        assert panel.size.width >= 118 and panel.size.height >= 36  # all but the header and footer
        await pilot.press("escape")
        await until(pilot, lambda: app.screen.maximized is None)
        await pilot.pause(0.1)
        assert app.focused is panel and panel.size == before


async def test_the_health_panel_uses_the_width_it_is_given() -> None:
    app = static_app()
    async with app.run_test(size=(200, 60)) as pilot:
        health = app.query_one(HealthPanel)
        await until(pilot, lambda: "SUBSCRIBED" in text_of(health))
        assert health.size.width > 42
        app.store.apply(Gap("coinbase", NOW - 0.2, "coinbase", 9120, 9124, "connection"))
        await until(pilot, lambda: "gaps 1" in text_of(health))
        text = text_of(health)
        assert "…" not in text
        assert "expected 9120, got 9124" in text and "candles 3" in text and "up 00:" in text


async def test_a_narrow_health_panel_wraps_instead_of_cutting() -> None:
    app = static_app()
    async with app.run_test(size=(120, 40)) as pilot:
        health = app.query_one(HealthPanel)
        await until(pilot, lambda: "SUBSCRIBED" in text_of(health))
        text = text_of(health)
        assert "…" not in text and "candles 3" in text  # the last subscription, on a line of its own


async def test_chart_labels_use_the_products_decimals() -> None:
    app = static_app()
    async with app.run_test(size=(120, 40)) as pilot:
        chart = app.query_one(CandleChart)
        await until(pilot, lambda: "┤" in text_of(chart))
        labels = re.findall(r"^\s*([\d.]+)┤", text_of(chart), re.M)
        prices = [label for label in labels if float(label) > 1000]
        assert prices and all(re.fullmatch(r"\d+\.\d\d", p) for p in prices), labels


async def test_turning_candles_off_says_so_in_the_chart() -> None:
    async with make_sim() as sim:
        app = live_app(sim, ["BTC-USD"])
        async with app.run_test(size=(120, 40)) as pilot:
            chart = app.query_one(CandleChart)
            await until(pilot, lambda: app.view.channel_on("candles"))
            await pilot.press("c")
            await until(pilot, lambda: "candles is off — press c" in text_of(chart), timeout=15)
            assert "(venue)" not in str(chart.border_title)


async def test_the_command_palette_has_one_entry_per_action_with_keys_as_people_write_them() -> None:
    from tickerterm.ui.app import key_names

    app = static_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.1)
        commands = list(app.get_system_commands(app.screen))
        titles = [c.title for c in commands]
        assert len(titles) == len(set(titles))
        for textual_own in ("Keys", "Maximize", "Minimize"):
            assert textual_own not in titles  # ours do the same, with our keys
        assert titles.count("Quit") == 1
        helps = [c.help for c in commands]
        assert "key: n or ]" in helps and "key: + or =" in helps and "key: /" in helps
        assert not any("square" in h or "_" in h for h in helps), helps
    assert key_names("p,left_square_bracket") == "p or ["


async def test_the_interval_key_offers_the_venues_intervals() -> None:
    from tickerterm.core.events import Candle
    from tickerterm.venues.bitzoom import KLINE_INTERVALS, Bitzoom

    app = static_app(intervals=Bitzoom.candle_intervals)
    async with app.run_test(size=(120, 40)) as pilot:
        chart = app.query_one(CandleChart)
        app.store.apply(
            Candle(
                "coinbase", NOW, "BTC-USD", NOW, int(NOW // 7200 * 7200), 7200, "1", "2", "0.5", "1.5", "3"
            )
        )
        seen = []
        for _ in KLINE_INTERVALS:
            await pilot.press("i")
            seen.append(app.view.intervals[app.view.interval])
        assert sorted(seen, key=KLINE_INTERVALS.__getitem__) == list(KLINE_INTERVALS)  # all fifteen
        while app.view.intervals[app.view.interval] != "2h":
            await pilot.press("i")
        await until(pilot, lambda: "2h (venue)" in str(chart.border_title))


def test_one_candle_is_drawn_narrow_not_across_the_chart() -> None:
    from decimal import Decimal

    from rich.text import Text

    from tickerterm.core.candles import Bar
    from tickerterm.ui.widgets import _plot

    bar = Bar(1795906080, "63999.9", "63999.9", "63999.5", "63999.8", Decimal("0.0103"), 0.0, 0.0)
    lines = Text.from_ansi(_plot([bar], 60, 20, 1, 24)).plain.splitlines()
    widest = max(line.count("█") for line in lines)
    assert 0 < widest <= 3, lines  # one candle body, one volume bar: a few cells, not the width


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40), (200, 60)])
async def test_every_shown_panel_is_on_the_screen(size: tuple[int, int]) -> None:
    app = static_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.2)
        shown = [p for p in app.panels if p.display]
        assert {p.id for p in shown} >= {"tickers", "ladder", "tape"}
        for panel in shown:
            region = panel.region
            assert region.width >= 20 and region.right <= size[0] and region.bottom <= size[1], (
                panel.id,
                region,
            )


async def test_the_help_fits_80x24_without_scrolling() -> None:
    from textual.containers import VerticalScroll

    from tickerterm.ui.screens import HelpScreen

    app = static_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause(0.1)
        box = app.screen.query_one(VerticalScroll)
        assert box.max_scroll_y == 0  # every key and the palette line are on the screen
        assert all(len(key) + len(text) + 6 <= 78 for key, text in app.KEYS)  # one line each


async def test_low_bandwidth_redraws_the_busy_panels_less_often_and_a_key_at_once() -> None:
    """``--low-bandwidth``: with the book changing every 20 ms for a second the ladder redraws at most
    three times (twice a second), against nearly every frame by default; a key still redraws it at once."""
    import asyncio

    from tickerterm.core.events import BookUpdate, change
    from tickerterm.ui.widgets import DepthLadder

    async def ladder_renders(app: Any) -> tuple[int, dict[str, float]]:
        async with app.run_test(size=(120, 40)) as pilot:
            ladder = app.query_one(DepthLadder)
            await until(pilot, lambda: "spread" in text_of(ladder))
            book = app.store.book("coinbase", "BTC-USD")
            price = book.top(3)[0][-1][0]
            before = ladder.renders
            for i in range(50):
                app.store.apply(
                    BookUpdate("coinbase", NOW, "BTC-USD", None, [change("bid", price, f"{i + 1}.5")])
                )
                app.store.frame_applied()
                await asyncio.sleep(0.02)
            drawn = ladder.renders - before
            renders = ladder.renders
            await pilot.press("n")  # a key: drawn now, whatever the rate
            assert ladder.renders > renders and "ETH-USD" in str(ladder.border_title)
            return drawn, {
                p.kind: p.min_interval for p in app.panels if p.kind in ("book", "trades", "candles")
            }

    slow, rates = await ladder_renders(static_app(low_bandwidth=True))
    assert slow <= 3, slow
    assert rates == {
        "book": 0.5,
        "trades": 1.0,
        "candles": 5.0,
    }
    normal, _ = await ladder_renders(static_app())
    assert normal >= 3 * slow and normal >= 8, (normal, slow)


def test_low_bandwidth_uses_the_terminals_own_colours() -> None:
    from tickerterm.cli import _theme, feed_parser

    assert _theme(feed_parser().parse_args(["--low-bandwidth"])) == "ansi-dark"
    assert _theme(feed_parser().parse_args(["--low-bandwidth", "--light"])) == "ansi-light"


async def test_frames_wait_while_the_terminal_is_behind_and_the_rate_comes_back() -> None:
    """While writes to the terminal are queued, a frame of new data is held (the store keeps it) and the
    frame time grows, said in the header; once the terminal takes them, frames draw and the rate returns
    to --fps."""
    import asyncio

    from tickerterm.core.events import BookUpdate, change
    from tickerterm.ui.widgets import DepthLadder

    app = static_app()
    waiting = [0]
    app.writes_waiting = lambda: waiting[0]  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        ladder = app.query_one(DepthLadder)
        await until(pilot, lambda: "spread" in text_of(ladder))
        price = app.store.book("coinbase", "BTC-USD").top(3)[0][-1][0]
        waiting[0] = 5
        renders = ladder.renders
        for i in range(10):
            app.store.apply(
                BookUpdate("coinbase", NOW, "BTC-USD", None, [change("bid", price, f"{i + 1}.25")])
            )
            app.store.frame_applied()
            await asyncio.sleep(0.05)
        assert ladder.renders == renders and app.frames_held >= 3
        assert app.frame_time > 0.1 and "SLOW TERMINAL" in app.sub_title
        waiting[0] = 0
        await until(pilot, lambda: "10.25" in text_of(ladder))  # the held data, drawn
        await until(pilot, lambda: app.frame_time == 0.1 and "SLOW" not in app.sub_title)
