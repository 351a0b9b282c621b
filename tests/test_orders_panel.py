"""Your own orders and balances in the dashboard (issue 17): ``o`` shows open orders with their status,
fills with their fee, balances and positions in place of the tape; change-only rendering; from a real
Bitzoom user-data stream."""

from __future__ import annotations

from tickerterm.core.events import BalanceUpdate, BookUpdate, OrderUpdate, change
from tickerterm.stream.feed import Feed
from tickerterm.ui.app import TickertermApp
from tickerterm.ui.widgets import OrdersPanel, TradeTape

from .conftest import fast_policy
from .test_bitzoom import make_bitzoom_sim
from .ui_support import NOW, static_app, until


def text_of(panel: OrdersPanel) -> str:
    return panel.plain()


async def test_o_shows_open_orders_fills_with_fees_and_balances_in_place_of_the_tape() -> None:
    app = static_app()
    store = app.store
    store.apply(
        OrderUpdate(
            "coinbase", NOW, "BTC-USD", NOW, "o-1", "buy", "LIMIT", "OPEN", "63990.5", "0", "0.04", "0"
        )
    )
    store.apply(
        OrderUpdate(
            "coinbase", NOW, "ETH-USD", NOW, "o-2", "sell", "LIMIT", "FILLED", "3100.1", "0.5", "0", "3100.1",
            fee="0.77", fee_asset="USD",
        )
    )  # fmt: skip
    store.apply(BalanceUpdate("coinbase", NOW, NOW, {"USD.available": "1234.5", "BTC-USD.position": "0.25"}))
    async with app.run_test(size=(120, 40)) as pilot:
        orders, tape = app.query_one(OrdersPanel), app.query_one(TradeTape)
        await pilot.pause(0.1)
        assert not orders.display and tape.display
        await pilot.press("o")
        await until(pilot, lambda: orders.display and not tape.display and "Open orders" in text_of(orders))
        text = text_of(orders)
        lines = text.splitlines()
        open_line = next(line for line in lines if "o-1" in line or "BTC-USD" in line)
        assert "B▲" in open_line and "OPEN" in open_line and "63990.50" in open_line  # the product's decimals
        fill = next(line for line in lines if "ETH-USD" in line)
        assert "S▼" in fill and "0.77 USD" in fill and "0.5" in fill  # narrow: size and fee stay
        assert "Open orders (1)" in text and "Fills (1)" in text
        assert "USD.available" in text and "1234.5" in text and "BTC-USD.position" in text
        assert app.focused is orders
        await pilot.press("z")  # the whole screen: every column
        await until(pilot, lambda: "Avg" in text_of(orders))
        fill = next(line for line in text_of(orders).splitlines() if "ETH-USD" in line)
        assert "FILLED" in fill and "0.77 USD" in fill
        await pilot.press("escape")
        await until(pilot, lambda: app.screen.maximized is None)
        await pilot.pause(0.2)  # laid out again at its own size (a resize redraws it)
        app.render_tick()
        renders = orders.renders
        store.apply(BookUpdate("coinbase", NOW, "BTC-USD", None, [change("bid", "1", "1")]))
        app.render_tick()
        assert orders.renders == renders  # a book change does not redraw it
        store.apply(
            OrderUpdate(
                "coinbase", NOW, "BTC-USD", NOW, "o-1", "buy", "LIMIT", "CANCELLED", "63990.5", "0", "0", "0"
            )
        )
        app.render_tick()
        assert orders.renders == renders + 1 and "Open orders (0)" in text_of(orders)
        await pilot.press("o")
        await until(pilot, lambda: tape.display and not orders.display)


async def test_the_orders_panel_says_where_orders_come_from_without_a_key() -> None:
    app = static_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        orders = app.query_one(OrdersPanel)
        await until(pilot, lambda: "user channel" in text_of(orders))


async def test_a_bitzoom_user_data_stream_fills_the_orders_panel() -> None:
    from tickerterm.venues.bitzoom import Bitzoom

    async with make_bitzoom_sim() as sim:

        def opener(store: object) -> Feed:
            adapter = Bitzoom(
                urls={"market": sim.url, "user": sim.url, "rest": sim.http_url},
                credentials=sim.client_credentials(),
            )
            return Feed(
                adapter,
                ["BTC-USDT"],
                ["user", "trade"],
                policy=fast_policy(stale_after=2.0),
                store=store,
                collect=False,
            )  # type: ignore[arg-type]

        app = TickertermApp(
            opener, venue="bitzoom", products=["BTC-USDT"], channels={"trades": "trade"}, simulated=True
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("o")
            orders = app.query_one(OrdersPanel)
            await until(
                pilot,
                lambda: "0.0256 USDT" in text_of(orders) and "USDT.wallet_balance" in text_of(orders),
                15,
            )
            text = text_of(orders)
            fill = next(line for line in text.splitlines() if "0.0256 USDT" in line)
            assert "BTC-USDT" in fill and "B▲" in fill
            assert any("PARTIAL" in line and "…" not in line for line in text.splitlines())  # still open
            assert "BTC-USDT.position" in text
