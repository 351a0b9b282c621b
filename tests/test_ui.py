"""Pilot tests: every key binding, asserting what the simulated venue received and what the store and
the panels show."""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

import pytest
from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual.command import CommandPalette
from textual.geometry import Region
from textual.widgets import Static

from tickerterm.core.events import BookUnsafe, BookUpdate, GaveUp, change
from tickerterm.sim.coinbase import CoinbaseSim
from tickerterm.stream.feed import Feed
from tickerterm.ui.app import TickertermApp, grouping_steps
from tickerterm.ui.screens import HelpScreen, ProductPicker
from tickerterm.ui.widgets import CandleChart, DepthLadder, HealthPanel, Panel, TickersTable, TradeTape

from .conftest import make_sim
from .ui_support import live_app, static_app, until

PRODUCTS = ["BTC-USD", "ETH-USD", "SOL-USD"]


def text_of(panel: Panel) -> str:
    return panel.plain()


def banner_of(ladder: Panel) -> list[str]:
    """The ladder's warning banner: its label, then the reason re-joined from its wrapped lines."""
    lines = [line.strip() for line in text_of(ladder).splitlines()]
    if not lines or "not trusted" not in lines[0]:
        return []
    reason = []
    for line in lines[1:3]:
        if re.match(r"^\d[\d.]* +[\d.]+", line) or line.startswith(("spread", "Price")):
            break  # a price level, or the ladder's header
        reason.append(line)
    return [lines[0], " ".join(reason)]


def plain(renderable: Any) -> str:
    console = Console(width=120, file=io.StringIO(), color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


def received(sim: CoinbaseSim) -> list[dict[str, Any]]:
    """What the venue received on its newest connection (a slow machine may have reconnected a stale
    feed: the fast tests call 0.6 s of silence stale)."""
    return sim.all_connections[-1].received


@pytest.fixture
async def sim() -> Any:
    # a modest rate: Pilot waits for the process to go idle after each key press
    async with make_sim(warmup=2000, rate=40.0) as server:
        yield server


async def ready(app: TickertermApp, pilot: Any) -> None:
    await until(
        pilot,
        lambda: (
            app.feed is not None
            and app.store.book("coinbase", "BTC-USD").state == "ok"
            and app.store.health["coinbase"].state == "subscribed"
        ),
    )


@pytest.mark.parametrize(
    ("key", "channel", "kind"),
    [
        ("t", "market_trades", "trades"),
        ("b", "level2", "book"),
        ("k", "ticker", "ticker"),
        ("c", "candles", "candles"),
    ],
)
async def test_channel_keys_unsubscribe_and_subscribe_on_the_venue(
    sim: CoinbaseSim, key: str, channel: str, kind: str
) -> None:
    app = live_app(sim, PRODUCTS)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press(key)
        await until(pilot, lambda: received(sim)[-1] == {"type": "unsubscribe", "channel": channel})
        await until(
            pilot, lambda: channel not in app.store.health["coinbase"].subscriptions
        )  # the venue's ack
        assert not app.view.channel_on(kind)
        if kind in ("book", "trades"):
            panel = app.query_one(DepthLadder if kind == "book" else TradeTape)
            await until(pilot, lambda: f"{channel} is off" in text_of(panel))
        await pilot.press(key)
        await until(
            pilot,
            lambda: received(sim)[-1] == {"type": "subscribe", "product_ids": PRODUCTS, "channel": channel},
        )
        await until(pilot, lambda: app.store.health["coinbase"].subscriptions.get(channel) == PRODUCTS)
        assert app.view.channel_on(kind)
        if kind == "book":
            await until(pilot, lambda: "spread" in text_of(app.query_one(DepthLadder)))


async def test_product_keys_and_fuzzy_picker(sim: CoinbaseSim) -> None:
    app = live_app(sim, PRODUCTS)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        ladder = app.query_one(DepthLadder)
        for key, product in (
            ("n", "ETH-USD"),
            ("right_square_bracket", "SOL-USD"),
            ("n", "BTC-USD"),
            ("p", "SOL-USD"),
            ("left_square_bracket", "ETH-USD"),
        ):
            await pilot.press(key)
            assert app.view.product == product
            assert product in str(ladder.border_title)
        await pilot.press("slash")
        assert isinstance(app.screen, ProductPicker)
        await pilot.press("s", "o", "l", "enter")
        assert app.view.product == "SOL-USD"
        assert not isinstance(app.screen, ProductPicker)
        table = text_of(app.query_one(TickersTable))
        assert "SOL-USD" in table
        await pilot.press("slash", "escape")
        assert app.view.product == "SOL-USD"


async def test_interval_and_grouping_keys(sim: CoinbaseSim) -> None:
    app = live_app(sim, PRODUCTS)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        chart = app.query_one(CandleChart)
        seen = []
        for _ in range(4):
            await pilot.press("i")
            seen.append(app.view.interval)
            await until(
                pilot,
                lambda: (
                    {60: "1m", 300: "5m", 900: "15m", 3600: "1h"}[app.view.interval]
                    in str(chart.border_title)
                ),
            )
        assert seen == [900, 3600, 60, 300]
        assert "(venue" in str(chart.border_title)  # Coinbase sends 5-minute candles itself
        await pilot.press("i")
        # its 5m bars, folded (and carried on by trade-built bars if trades have gone past its last one)
        await until(pilot, lambda: "15m (venue 5m" in str(chart.border_title))
        steps = grouping_steps(app.store, "coinbase", "BTC-USD")
        assert steps == [None, "1", "10", "100"]
        await pilot.press("g")
        assert app.view.grouping == "1"
        ladder = app.query_one(DepthLadder)
        await until(pilot, lambda: "·1" in str(ladder.border_title))
        prices = [
            line.split()[0]
            for line in text_of(ladder).splitlines()
            if line.strip() and not line.strip().startswith(("spread", "Price"))
        ]
        assert prices and all("." not in p for p in prices)  # whole-dollar groups
        await pilot.press("g", "g", "g")
        assert app.view.grouping is None


async def test_focus_maximise_and_compact_views(sim: CoinbaseSim) -> None:
    app = live_app(sim, PRODUCTS)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        chart, health, ladder, tape = (
            app.query_one(c) for c in (CandleChart, HealthPanel, DepthLadder, TradeTape)
        )
        assert app.screen.has_class("-narrow")
        assert not chart.display and not health.display and ladder.display and tape.display
        await pilot.press("3")
        assert app.focused is chart and chart.display and not ladder.display
        await pilot.press("5")
        assert app.focused is health and health.display and not chart.display
        await until(pilot, lambda: "SUBSCRIBED" in text_of(health))
        await pilot.press("4")
        assert app.focused is tape and ladder.display and tape.display and not health.display
        await pilot.press("1")
        assert app.focused is app.query_one(TickersTable)
        await pilot.press("2", "z")
        assert app.screen.maximized is ladder
        await pilot.press("z")
        assert app.screen.maximized is None
        await pilot.press("tab")
        assert app.focused is not ladder


async def test_pause_freezes_the_display_not_the_data(sim: CoinbaseSim) -> None:
    app = live_app(sim, PRODUCTS)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        ladder = app.query_one(DepthLadder)
        await pilot.press("space")
        assert app.paused and "PAUSED" in app.sub_title
        renders, book_version = ladder.renders, app.store.book("coinbase", "BTC-USD").version
        await until(pilot, lambda: app.store.book("coinbase", "BTC-USD").version > book_version + 5)
        assert ladder.renders == renders
        await pilot.press("space")
        assert not app.paused and "PAUSED" not in app.sub_title
        await until(pilot, lambda: ladder.renders > renders)


async def test_help_palette_and_quit() -> None:
    app = static_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_screen = app.screen
        listed = " ".join(key for key, _ in help_screen.keys)
        shown_on_screen = plain(app.screen.query_one("#help-keys", Static).content)
        for _, description in help_screen.keys:
            assert description in shown_on_screen
        for binding in app.BINDINGS:
            for key in binding.key.split(","):  # type: ignore[union-attr]
                shown = {
                    "question_mark": "?",
                    "slash": "/",
                    "right_square_bracket": "]",
                    "left_square_bracket": "[",
                    "space": "space",
                    "left": "←",
                    "right": "→",
                    "plus": "+",
                    "equals_sign": "=",
                    "minus": "-",
                }.get(key, key)
                assert shown in listed, key
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in (
            "Toggle the ticker channel",
            "Toggle the book (level2) channel",
            "Toggle the trades channel",
            "Toggle the candles channel",
            "Next product",
            "Previous product",
            "Find a product",
            "Next candle interval",
            "Next ladder grouping",
            "Maximise or restore the focused panel",
            "Pause or resume the display",
            "Light or dark theme",
            "Help: every key",
        ):
            assert title in titles
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"toggle the trades", "enter")
        await until(pilot, lambda: not isinstance(app.screen, CommandPalette))
        feed = app.feed
        assert feed is not None and feed.calls[-1] == ("unsubscribe", "market_trades", None)  # type: ignore[attr-defined]
        await pilot.press("L")
        assert app.theme == "textual-light"
        await pilot.press("q")
    assert app.return_code == 0


async def test_unsafe_book_is_never_drawn_as_good() -> None:
    app = static_app("unsafe")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        ladder = app.query_one(DepthLadder)
        assert banner_of(ladder) == ["UNSAFE — not trusted", "sequence gap: expected 9120, got 9124"]
        assert ladder.has_class("-unsafe")
        shown = ladder.shown
        assert isinstance(shown, Text)
        levels = [span for span in shown.spans if shown.plain[span.start : span.end].lstrip()[:1].isdigit()]
        assert len(levels) > 10  # price levels are drawn struck through and dimmed, never as a good book
        assert all(isinstance(span.style, Style) and span.style.strike and span.style.dim for span in levels)
        tickers = text_of(app.query_one(TickersTable))
        assert "BTC-USD" in tickers
        app.store.apply(BookUnsafe("coinbase", 1.0, "coinbase", "ETH-USD", "crossed book: bid 2 >= ask 1"))
        await pilot.press("n")
        await until(
            pilot, lambda: banner_of(ladder) == ["UNSAFE — not trusted", "crossed book: bid 2 >= ask 1"]
        )


async def test_reconnecting_connection_in_the_health_panel() -> None:
    app = static_app("reconnecting")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        health = text_of(app.query_one(HealthPanel))
        assert "coinbase RETRYING" in health
        assert "retries 2 · next in 1.6s (attempt 2)" in health
        assert "close 1006: dropped, no close frame" in health
        assert "failed: dropped, no close frame" in health  # why, from the first failure on
        assert app.sub_title == "coinbase · SIMULATED · RECONNECTING (retry 2: dropped, no close frame)"
        ladder = text_of(app.query_one(DepthLadder))
        assert ladder.splitlines()[0].strip() == "UNSAFE — not trusted"
        assert (
            " ".join(line.strip() for line in ladder.splitlines()[1:3])
            == "connection lost: server internal error"
        )


async def test_resizing_never_crashes(sim: CoinbaseSim) -> None:
    app = live_app(sim, PRODUCTS)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        for size in [(80, 24), (40, 12), (200, 60), (81, 25), (20, 8), (109, 29), (110, 30), (120, 40)]:
            await pilot.resize_terminal(*size)
            await pilot.pause(0.15)
            assert app.screen.has_class("-narrow") == (size[0] < 110 or size[1] < 30)
        await pilot.press("3", "5", "2")
        await until(pilot, lambda: "spread" in text_of(app.query_one(DepthLadder)))
        assert app.return_code is None  # still running, nothing raised


async def test_ansi_theme_uses_the_terminal_palette() -> None:
    app = static_app(theme="ansi-dark")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == "ansi-dark" and app.native_ansi_color
        await pilot.press("L")
        assert app.theme == "ansi-light"


async def test_gave_up_shows_its_reason_and_hint_in_full() -> None:
    app = static_app()
    reason = (
        "3 connection attempts failed in a row (2 retries allowed); last: connect failed: "
        "[Errno 111] Connect call failed "
        "('127.0.0.1', 9) (check the URL (--url) and the network; --sim runs the built-in simulator)"
    )
    app.store.apply(GaveUp("coinbase", 1.0, "coinbase", reason))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        health = app.query_one(HealthPanel)
        await until(pilot, lambda: "GAVE UP" in text_of(health))

        def shown() -> str:
            lines = [line.strip() for line in text_of(health).splitlines()]
            start = next((i for i, line in enumerate(lines) if line.startswith("gave up:")), len(lines))
            return " ".join(lines[start : start + 3])

        # the panel may draw once more at its maximized width (a busy machine): the whole reason, at last
        await until(pilot, lambda: shown() == f"gave up: {reason}")
        assert app.sub_title == "coinbase · SIMULATED · GAVE UP"


async def test_a_small_book_change_repaints_only_the_lines_it_changed() -> None:
    """The ladder's line diff must survive its title being set on every render (assigning a border
    title repaints the whole panel in Textual, so the panel sets it only when it changes)."""
    app = static_app()
    async with app.run_test(size=(120, 40)) as pilot:
        ladder = app.query_one(DepthLadder)
        await until(pilot, lambda: "spread" in text_of(ladder))
        for _ in range(3):  # let layout settle (a slow machine may still be sizing panels)
            await pilot.pause(0.1)
        book = app.store.book("coinbase", "BTC-USD")
        bids, _ = book.top((ladder.size.height - 3) // 2)  # under the header and the spread line
        deep_price, deep_size = bids[-1]  # the ladder's last bid at 120x40: no other line depends on it
        new_size = f"{float(deep_size) + 1e-8:.8f}"  # too small a change to move its bar
        calls: list[tuple[Any, ...]] = []
        original = ladder.refresh

        def spy(*regions: Any, **kwargs: Any) -> Any:
            calls.append(regions)
            return original(*regions, **kwargs)

        ladder.refresh = spy  # type: ignore[method-assign]
        renders = ladder.renders
        app.store.apply(BookUpdate("coinbase", 1.0, "BTC-USD", None, [change("bid", deep_price, new_size)]))
        await until(pilot, lambda: ladder.renders > renders)
        await pilot.pause()
        lines = text_of(ladder).splitlines()
        y = next(i for i, line in enumerate(lines) if line.split()[:2] == [deep_price, new_size])
        # that one line, not the panel; and of it only the cells that changed: the size's last digit
        x = lines[y].index(new_size) + len(new_size) - 1
        assert deep_size[-1] != new_size[-1] and deep_size[:-1] == new_size[:-1]
        assert calls == [(Region(x, y, 1, 1),)]


async def test_dashboard_on_coinbase_exchange_l3_book_key_sends_the_venues_frames() -> None:
    """The same keys on another venue: the ladder draws the L3 (full) book aggregated, and the book key
    sends the Exchange's own unsubscribe/subscribe frames."""
    from tickerterm.sim.coinbase_exchange import CoinbaseExchangeSim
    from tickerterm.venues.coinbase_exchange import CoinbaseExchange

    from .conftest import FAST, fast_policy

    products = ["BTC-USD", "ETH-USD"]
    channels = {"ticker": "ticker", "book": "full", "trades": "matches"}
    async with CoinbaseExchangeSim(rate=40.0, depth=300, seed=7, timing=FAST, warmup=500) as sim:
        credentials = sim.client_credentials()

        def opener(store: Any) -> Feed:
            adapter = CoinbaseExchange(
                urls={"market": sim.url, "rest": sim.http_url}, credentials=credentials
            )
            return Feed(
                adapter, products, list(channels.values()), policy=fast_policy(), collect=False, store=store
            )

        app = TickertermApp(
            opener, venue="coinbase-exchange", products=products, channels=channels, simulated=True
        )
        async with app.run_test(size=(120, 40)) as pilot:
            ladder = app.query_one(DepthLadder)
            await until(pilot, lambda: "spread" in text_of(ladder))
            frames = sim.all_connections[0].received
            await pilot.press("b")
            await until(pilot, lambda: frames[-1] == {"type": "unsubscribe", "channels": ["full"]})
            await until(pilot, lambda: "full is off" in text_of(ladder))
            await pilot.press("b")
            await until(
                pilot, lambda: frames[-1].get("channels") == [{"name": "full", "product_ids": products}]
            )
            assert "signature" in frames[-1]  # full is private: the frame is signed
            await until(pilot, lambda: "spread" in text_of(ladder))
            book = app.store.book("coinbase-exchange", "BTC-USD")
            assert book.state == "ok" and len(book) > 100


async def test_dashboard_on_bitzoom_keys_send_binance_style_frames_and_show_funding() -> None:
    from tickerterm.sim.bitzoom import BitzoomSim
    from tickerterm.venues.bitzoom import Bitzoom

    from .conftest import FAST, fast_policy

    products = ["BTC-USDT", "ETH-USDT"]
    channels = {"ticker": "ticker", "book": "depth@100ms", "trades": "aggTrade", "candles": "kline_1m"}
    async with BitzoomSim(rate=40.0, depth=300, seed=7, timing=FAST, warmup=500) as sim:

        def opener(store: Any) -> Feed:
            adapter = Bitzoom(urls={"market": sim.url, "rest": sim.http_url})
            names = [*channels.values(), "markPrice@1s"]
            policy = fast_policy(stale_after=5.0)  # no heartbeats here; the first subscribes take ~1 s
            return Feed(adapter, products, names, policy=policy, collect=False, store=store)

        app = TickertermApp(opener, venue="bitzoom", products=products, channels=channels, simulated=True)
        async with app.run_test(size=(120, 40)) as pilot:
            ladder, tickers = app.query_one(DepthLadder), app.query_one(TickersTable)
            await until(pilot, lambda: "spread" in text_of(ladder) and "+0.0100%" in text_of(tickers))
            assert "Funding" in text_of(tickers) and "Mark" in text_of(tickers)
            frames = sim.all_connections[0].received
            await pilot.press("b")
            await until(pilot, lambda: any(f.get("method") == "UNSUBSCRIBE" for f in frames))
            unsub = next(f for f in frames if f.get("method") == "UNSUBSCRIBE")
            assert unsub["params"] == ["btcusdt@depth@100ms", "ethusdt@depth@100ms"]
            await until(pilot, lambda: "depth@100ms is off" in text_of(ladder))
            await pilot.press("b")
            await until(pilot, lambda: "spread" in text_of(ladder))  # resynced from a new REST snapshot
            subs = [f for f in frames if f.get("method") == "SUBSCRIBE"]
            assert subs[-1]["params"] == ["btcusdt@depth@100ms", "ethusdt@depth@100ms"]
            await pilot.resize_terminal(80, 24)
            await until(pilot, lambda: "Funding" in text_of(tickers))  # still there at 80x24


async def test_dashboard_on_coinapi_shows_the_exchange_and_keys_resend_the_hello() -> None:
    from tickerterm.sim.coinapi import CoinApiSim
    from tickerterm.venues.coinapi import CoinApi

    from .conftest import FAST, fast_policy

    products = ["COINBASE:BTC-USD", "BITSTAMP:BTC-USD"]
    channels = {"ticker": "quote", "book": "book", "trades": "trade", "candles": "ohlcv"}
    async with CoinApiSim(rate=40.0, depth=300, seed=7, timing=FAST, warmup=500) as sim:
        credentials = sim.client_credentials()

        def opener(store: Any) -> Feed:
            adapter = CoinApi(urls={"market": sim.url, "rest": sim.http_url}, credentials=credentials)
            return Feed(
                adapter, products, list(channels.values()), policy=fast_policy(), collect=False, store=store
            )

        app = TickertermApp(opener, venue="coinapi", products=products, channels=channels, simulated=True)
        async with app.run_test(size=(80, 24)) as pilot:
            tickers = app.query_one(TickersTable)
            await until(
                pilot,
                lambda: "BITSTAMP:BTC-USD" in text_of(tickers) and "COINBASE:BTC-USD" in text_of(tickers),
            )
            await until(pilot, lambda: app.store.book("coinapi", "COINBASE:BTC-USD").state == "ok")
            frames = sim.all_connections[0].received
            await pilot.press("b")
            await until(pilot, lambda: frames[-1]["subscribe_data_type"] == ["quote", "trade", "ohlcv"])
            assert frames[-1]["type"] == "hello"  # the whole scope, without book
            await pilot.press("b")
            await until(pilot, lambda: "book" in frames[-1]["subscribe_data_type"])
            await until(pilot, lambda: app.store.book("coinapi", "COINBASE:BTC-USD").state == "ok")


async def test_replay_keys_drive_the_venues_replay_and_the_header_says_replay() -> None:
    from tickerterm.sim.oxarchive import OxArchiveSim
    from tickerterm.stream.worker import ReplayPlan
    from tickerterm.venues.oxarchive import OxArchive

    from .conftest import FAST, fast_policy

    channels = {"book": "orderbook", "trades": "trades", "candles": "candles"}
    async with OxArchiveSim(rate=40.0, depth=300, seed=7, timing=FAST, warmup=6000) as sim:
        credentials = sim.client_credentials()
        now = sim.clock()
        plan = ReplayPlan("BTC", list(channels.values()), now - 3000, now - 600, 50.0)

        def opener(store: Any) -> Feed:
            adapter = OxArchive(urls={"market": sim.url}, credentials=credentials)
            names = list(channels.values())
            # a paused replay is a silent venue: the fast tests' 0.6 s staleness would reconnect it
            policy = fast_policy(stale_after=5.0)
            return Feed(adapter, ["BTC"], names, policy=policy, collect=False, store=store, replay=plan)

        app = TickertermApp(
            opener, venue="0xarchive", products=["BTC"], channels=channels, simulated=True, replay=True
        )
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "spread" in text_of(app.query_one(DepthLadder)))
            await until(pilot, lambda: "REPLAY 20" in str(app.sub_title) and "x50" in str(app.sub_title))
            # no ticker channel on this venue: the last price is the last (replayed) trade, not a dash
            await until(
                pilot,
                lambda: re.search(r"BTC\s+[▲▼ ]*\d+\.\d", text_of(app.query_one(TickersTable))) is not None,
            )
            ops = lambda: [m["op"] for m in sim.all_connections[0].received]  # noqa: E731
            await pilot.press("space")
            await until(pilot, lambda: ops()[-1] == "replay.pause" and "PAUSED" in str(app.sub_title))
            await pilot.press("space")
            await until(pilot, lambda: ops()[-1] == "replay.resume")
            await pilot.press("right")
            await until(pilot, lambda: ops()[-1] == "replay.seek")
            await pilot.press("plus")
            await until(
                pilot, lambda: ops()[-1] == "replay" and sim.all_connections[0].received[-1]["speed"] == 100.0
            )
            await pilot.press("x")
            await until(pilot, lambda: ops()[-1] == "replay.stop" and "STOPPED" in str(app.sub_title))


async def test_a_change_on_a_quiet_market_is_drawn_at_once_not_at_the_next_frame() -> None:
    app = static_app(fps=0.2)  # a frame every 5 s: only the data-driven draw can be quick
    async with app.run_test(size=(120, 40)) as pilot:
        ladder = app.query_one(DepthLadder)
        await until(pilot, lambda: "spread" in text_of(ladder))
        await pilot.pause(0.3)
        bids, _ = app.store.book("coinbase", "BTC-USD").top(10)
        price, size = bids[-1]
        new_size = f"{float(size) + 1e-8:.8f}"
        app.store.apply(BookUpdate("coinbase", 1.0, "BTC-USD", None, [change("bid", price, new_size)]))
        app.store.frame_applied()  # what the stream worker calls after each frame
        async with asyncio.timeout(1.0):  # well before the next 5-second frame
            await until(pilot, lambda: f"{price} {new_size}" in text_of(ladder))
