"""Several venues on one screen, and the consolidated book (issue 18).

The consolidated book is checked from scripted books (crossed, locked, an UNSAFE book excluded with
its reason, a connection gone stale), then end to end on three simulators: every venue's events in one
stream, and after every frame the consolidated best bid/ask equal to the best of the venues' trusted
books at that moment. The dashboard: the venue column, a health section per venue, the consolidated
row with its exclusions, product switching over every (venue, product), and channel keys acting on
the selected product's venue (that venue receives the frames, the others nothing).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

import tickerterm
from tickerterm.api import alerts_by_venue
from tickerterm.core.consolidated import Consolidator, Member, assets, consolidate, depth, parse_same_quote
from tickerterm.core.errors import ConfigError
from tickerterm.core.events import (
    BookSnapshot,
    BookUnsafe,
    Connected,
    Consolidated,
    Event,
    Stale,
)
from tickerterm.core.ndjson import record
from tickerterm.core.store import Store
from tickerterm.stream.feeds import split_products
from tickerterm.venues import venue_class

from .ui_support import until

BTC = [
    Member("coinbase", "BTC-USD", "coinbase"),
    Member("bitzoom", "BTC-USDT", "bitzoom"),
    Member("coinapi", "COINBASE:BTC-USD", "coinapi"),
]


def book(store: Store, venue: str, product: str, bid: str, ask: str, now: float = 1.0) -> None:
    store.apply(Connected(venue, now, venue, "ws://x"))
    store.apply(
        BookSnapshot(venue, now, product, now, [(bid, "1.5"), ("1", "9")], [(ask, "2.5"), ("999999", "1")])
    )


def three_books(cb: tuple[str, str], bz: tuple[str, str], ca: tuple[str, str]) -> Store:
    store = Store()
    book(store, "coinbase", "BTC-USD", *cb)
    book(store, "bitzoom", "BTC-USDT", *bz)
    book(store, "coinapi", "COINBASE:BTC-USD", *ca)
    return store


# --- the consolidated book, from scripted books ------------------------------------------------


def test_the_best_bid_and_ask_across_venues_and_who_holds_each() -> None:
    store = three_books(("100.10", "100.30"), ("100.2", "100.4"), ("100.05", "100.25"))
    c = consolidate(store, "BTC-USD", BTC, 5.0)
    assert (c.bid, c.bid_size, c.bid_venue) == ("100.2", "1.5", "bitzoom")
    assert (c.ask, c.ask_size, c.ask_venue) == ("100.25", "2.5", "coinapi")
    assert (c.spread, c.market) == ("0.05", "normal")
    assert c.counted == ["coinbase", "bitzoom", "coinapi"] and c.excluded == []


def test_markets_crossed_across_venues_are_marked_crossed() -> None:
    # each venue's own book is fine; across venues Bitzoom bids above Coinbase's ask: arbitrage
    store = three_books(("100.10", "100.30"), ("100.5", "100.6"), ("100.05", "100.40"))
    c = consolidate(store, "BTC-USD", BTC, 5.0)
    assert (c.bid, c.bid_venue, c.ask, c.ask_venue) == ("100.5", "bitzoom", "100.30", "coinbase")
    assert (c.spread, c.market) == ("-0.2", "crossed")


def test_markets_locked_across_venues_are_marked_locked() -> None:
    store = three_books(("100.10", "100.30"), ("100.3", "100.6"), ("100.05", "100.40"))
    c = consolidate(store, "BTC-USD", BTC, 5.0)
    assert (c.bid, c.bid_venue, c.ask, c.ask_venue, c.market) == (
        "100.3",
        "bitzoom",
        "100.30",
        "coinbase",
        "locked",
    )
    assert Decimal(c.spread or "x") == 0


def test_an_unsafe_book_is_excluded_with_its_reason_and_the_others_still_count() -> None:
    store = three_books(("100.10", "100.30"), ("100.5", "100.6"), ("100.05", "100.40"))
    store.apply(BookUnsafe("bitzoom", 2.0, "bitzoom", "BTC-USDT", "sequence gap: expected 7, got 9"))
    c = consolidate(store, "BTC-USD", BTC, 5.0)
    # Bitzoom's bid, the highest, no longer counts: the market is not crossed any more
    assert (c.bid, c.bid_venue, c.market) == ("100.10", "coinbase", "normal")
    assert c.excluded == [
        {"venue": "bitzoom", "product": "BTC-USDT", "reason": "UNSAFE: sequence gap: expected 7, got 9"}
    ]
    assert c.counted == ["coinbase", "coinapi"]


def test_a_stale_connection_and_a_missing_book_are_excluded() -> None:
    store = three_books(("100.10", "100.30"), ("100.2", "100.6"), ("100.05", "100.40"))
    store.apply(Stale("coinbase", 3.0, "coinbase", 12.0))
    members = [*BTC, Member("coinbase-exchange", "BTC-USD", "coinbase-exchange")]
    c = consolidate(store, "BTC-USD", members, 5.0)
    reasons = {e["venue"]: e["reason"] for e in c.excluded}
    assert reasons == {"coinbase": "connection stale", "coinbase-exchange": "no book yet"}
    assert (c.bid, c.bid_venue, c.ask, c.ask_venue) == ("100.2", "bitzoom", "100.40", "coinapi")


def test_the_consolidated_ladder_marks_each_level_with_its_venue() -> None:
    store = three_books(("100.10", "100.30"), ("100.2", "100.6"), ("100.05", "100.40"))
    store.apply(BookUnsafe("coinapi", 2.0, "coinapi", "COINBASE:BTC-USD", "connection lost"))
    bids, asks, excluded = depth(store, BTC, 3)
    assert bids == [("100.2", "1.5", "bitzoom"), ("100.10", "1.5", "coinbase"), ("1", "9", "coinbase")]
    assert asks == [("100.30", "2.5", "coinbase"), ("100.6", "2.5", "bitzoom"), ("999999", "1", "coinbase")]
    assert excluded == [("coinapi", "UNSAFE: connection lost")]


def test_the_consolidator_says_a_change_once_and_follows_health() -> None:
    store = three_books(("100.10", "100.30"), ("100.2", "100.6"), ("100.05", "100.40"))
    consolidator = Consolidator({"BTC-USD": BTC})
    first = consolidator.tick(store, 1.0)
    assert [type(e) for e in first] == [Consolidated]
    assert consolidator.tick(store, 1.5) == []  # nothing changed: nothing said
    snapshot = BookSnapshot("coinbase", 2.0, "BTC-USD", 2.0, [("100.25", "3")], [("100.30", "1")])
    store.apply(snapshot)
    said = consolidator.check([snapshot], store, 2.0)
    assert len(said) == 1 and (said[0].bid, said[0].bid_venue) == ("100.25", "coinbase")  # type: ignore[attr-defined]
    unrelated = BookSnapshot("coinbase", 2.1, "ETH-USD", 2.1, [("1", "1")], [("2", "1")])
    store.apply(unrelated)
    assert consolidator.check([unrelated], store, 2.1) == []  # another asset's book
    stale = Stale("coinbase", 3.0, "coinbase", 12.0)
    store.apply(stale)
    said = consolidator.check([stale], store, 3.0)  # a health event of a member venue re-checks
    assert said and said[0].excluded == [  # type: ignore[attr-defined]
        {"venue": "coinbase", "product": "BTC-USD", "reason": "connection stale"}
    ]
    rec = record(said[0])
    assert rec is not None and rec["type"] == "consolidated" and rec["venue"] == "*"
    assert rec["product"] == "BTC-USD" and rec["bid_venue"] == "bitzoom"


# --- which markets are one asset --------------------------------------------------------------


def markets(*pairs: tuple[str, str]) -> list[tuple[str, str, tuple[str, str] | None]]:
    return [(v, p, venue_class(v)().base_quote(p)) for v, p in pairs]


def test_quotes_are_never_guessed_the_same() -> None:
    given = markets(("coinbase", "BTC-USD"), ("bitzoom", "BTC-USDT"), ("coinapi", "COINBASE:BTC-USD"))
    groups, apart = assets(given, {})
    assert {a: [m.venue for m in ms] for a, ms in groups.items()} == {"BTC-USD": ["coinbase", "coinapi"]}
    assert apart == ["BTC: quotes USD, USDT kept apart (--same-quote USDT=USD joins them)"]
    groups, apart = assets(given, parse_same_quote(["usdt=usd"]))
    assert [m.venue for m in groups["BTC-USD"]] == ["coinbase", "bitzoom", "coinapi"]
    assert apart == []


def test_each_venue_says_its_base_and_quote() -> None:
    assert venue_class("coinapi")().base_quote("BITSTAMP:BTC-USD") == ("BTC", "USD")
    assert venue_class("0xarchive")().base_quote("BTC") == ("BTC", "USD-PERP")  # a perpetual is not spot
    assert venue_class("0xarchive")().base_quote("HYPE-USDC") == ("HYPE", "USDC")
    assert venue_class("0xarchive")().base_quote("km:US500") is None
    # two markets of one venue (CoinAPI's exchanges) are named with their product
    groups, _ = assets(markets(("coinapi", "COINBASE:BTC-USD"), ("coinapi", "BITSTAMP:BTC-USD")), {})
    assert [m.label for m in groups["BTC-USD"]] == ["coinapi COINBASE:BTC-USD", "coinapi BITSTAMP:BTC-USD"]
    # a perpetual joins spot only when told
    groups, _ = assets(markets(("coinbase", "BTC-USD"), ("0xarchive", "BTC")), {})
    assert groups == {}
    groups, _ = assets(markets(("coinbase", "BTC-USD"), ("0xarchive", "BTC")), {"USD-PERP": "USD"})
    assert [m.venue for m in groups["BTC-USD"]] == ["coinbase", "0xarchive"]


@pytest.mark.parametrize("text", ["USDT", "USDT=", "=USD", "USDT=USD=X", "USD=USD", "US DT=USD"])
def test_a_bad_quote_mapping_is_bad_input(text: str) -> None:
    with pytest.raises(ConfigError, match="same-quote"):
        parse_same_quote([text])


def test_products_per_venue_or_for_every_venue() -> None:
    venues = ["coinbase", "bitzoom", "coinapi"]
    got = split_products(
        venues, ["coinbase:BTC-USD", "bitzoom:BTC-USDT", "coinapi:COINBASE:ETH-USD", "SOL-USD"]
    )
    assert got == {
        "coinbase": ["BTC-USD", "SOL-USD"],
        "bitzoom": ["BTC-USDT", "SOL-USD"],
        "coinapi": ["COINBASE:ETH-USD", "SOL-USD"],
    }
    # CoinAPI's exchange prefix is not a venue: a plain product, for every venue (Coinbase will refuse it)
    assert split_products(["coinapi"], ["COINBASE:ETH-USD"]) == {"coinapi": ["COINBASE:ETH-USD"]}
    with pytest.raises(ConfigError, match="names venue '0xarchive'"):
        split_products(venues, ["0xarchive:BTC"])


def test_alert_rules_go_to_the_venues_they_apply_to() -> None:
    adapters = {n: venue_class(n)() for n in ("coinbase", "bitzoom")}
    shown = {"coinbase": ["BTC-USD", "ETH-USD"], "bitzoom": ["BTC-USDT", "BTC-USD"]}
    got = alerts_by_venue(
        [
            "BTC-USD > 65000",
            "bitzoom:BTC-USDT < 60000",
            "reconnects > 3 in 10m",
            "coinbase:BTC-USD move 1% 5m",
        ],
        adapters,
        shown,
    )
    assert got == {
        "coinbase": ["BTC-USD > 65000", "reconnects > 3 in 10m", "coinbase:BTC-USD move 1% 5m"],
        "bitzoom": ["BTC-USD > 65000", "bitzoom:BTC-USDT < 60000", "reconnects > 3 in 10m"],
    }
    for bad in ("ETH-USDT > 1", "bitzoom:ETH-USD > 1"):  # shown nowhere / not by the venue it names
        with pytest.raises(ConfigError, match="no venue here"):
            alerts_by_venue([bad], adapters, shown)


# --- on the simulators -------------------------------------------------------------------------


def trusted_best(store: Store, members: list[Member]) -> tuple[Decimal | None, Decimal | None]:
    """The best bid and ask over the members' trusted books, computed here from the books themselves."""
    bids, asks = [], []
    for m in members:
        b = store.books.get((m.venue, m.product))
        if b is None or b.state != "ok" or b.crossed:
            continue
        if any(
            h.venue == m.venue and h.conn == m.venue and h.state not in ("connected", "subscribed")
            for h in store.health.values()
        ):
            continue
        if b.best_bid:
            bids.append(Decimal(b.best_bid[0]))
        if b.best_ask:
            asks.append(Decimal(b.best_ask[0]))
    return (max(bids) if bids else None), (min(asks) if asks else None)


async def test_three_venues_in_one_stream_with_the_consolidated_book_current_after_every_frame() -> None:
    products = {"coinbase": ["BTC-USD", "ETH-USD"], "bitzoom": ["BTC-USDT"], "coinapi": ["COINBASE:BTC-USD"]}
    seen: dict[str, set[str]] = {}
    checked = 0
    wrong: list[str] = []
    store = Store()
    async with tickerterm.open_feeds(
        products, sim=True, sim_options={"rate": 200.0, "seed": 3}, same_quote={"USDT": "USD"}, store=store
    ) as feeds:
        members = feeds.assets["BTC-USD"]
        assert [m.venue for m in members] == ["coinbase", "bitzoom", "coinapi"]
        async with asyncio.timeout(30):
            async for ev in feeds:
                seen.setdefault(ev.venue, set()).add(ev.type)
                said = store.consolidated.get("BTC-USD")
                if said is not None and ev.type in ("book_update", "book_snapshot"):
                    bid, ask = trusted_best(store, members)  # the store is as it was after this frame
                    checked += 1
                    if (said.bid and Decimal(said.bid), said.ask and Decimal(said.ask)) != (bid, ask):
                        wrong.append(f"{said.bid}/{said.ask} said, {bid}/{ask} in the books")
                if checked >= 300 and all({"ticker", "trade"} <= seen.get(v, set()) for v in products):
                    break
        last = store.consolidated["BTC-USD"]  # before the feeds close (closing excludes every venue)
    assert not wrong, wrong[:3]
    for venue in products:  # every venue's events came through the one stream
        assert {"ticker", "trade", "book_snapshot", "subscribed"} <= seen[venue] | {"subscribed"}, (
            venue,
            seen[venue],
        )
    assert "consolidated" in seen["*"]
    assert last.counted == ["coinbase", "bitzoom", "coinapi"]


async def test_a_gap_on_one_venue_excludes_its_book_until_it_is_rebuilt() -> None:
    from collections.abc import Callable

    from tickerterm.sim.faults import Faults

    said: list[Consolidated] = []
    news = asyncio.Event()

    def sink(events: list[Event]) -> None:
        said.extend(e for e in events if type(e) is Consolidated)
        news.set()

    async def until_said(condition: Callable[[], bool]) -> None:
        while not condition():
            news.clear()
            await news.wait()

    def unsafe(e: Consolidated) -> bool:
        return any(
            x["venue"] == "coinbase" and x["reason"].startswith(("UNSAFE", "RESYNCING")) for x in e.excluded
        )

    products = {"coinbase": ["BTC-USD"], "coinbase-exchange": ["BTC-USD"]}
    async with tickerterm.open_feeds(products, sim=True, sim_options={"rate": 200.0}, sink=sink) as feeds:
        async with asyncio.timeout(30):
            await until_said(lambda: bool(said) and len(said[-1].counted) == 2)
            feeds.feeds["coinbase"].sim.faults = Faults(drop_next=1)  # type: ignore[attr-defined]
            await until_said(lambda: any(unsafe(e) for e in said))
            gone = next(e for e in said if unsafe(e))
            await until_said(lambda: said[-1] is not gone and len(said[-1].counted) == 2)  # rebuilt
    assert "gap" in gone.excluded[0]["reason"], gone.excluded
    assert gone.counted == ["coinbase-exchange"]  # the other venue still counted meanwhile
    assert gone.bid_venue == gone.ask_venue == "coinbase-exchange"


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKERTERM_")}
    return subprocess.run(
        [sys.executable, "-m", "tickerterm", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_headless_several_venues_on_the_simulators() -> None:
    out = run_cli(
        "--venue", "coinbase,bitzoom,coinapi",
        "--products", "coinbase:BTC-USD,bitzoom:BTC-USDT,coinapi:COINBASE:BTC-USD",
        "--same-quote", "USDT=USD",
        "--sim", "--headless", "--duration", "4", "--rate", "100",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    by_venue: dict[str, set[str]] = {}
    for rec in lines:
        by_venue.setdefault(rec["venue"], set()).add(rec["type"])
    for venue in ("coinbase", "bitzoom", "coinapi"):
        assert {"ticker", "trade", "book"} <= by_venue[venue], (venue, by_venue[venue])
    cons = [r for r in lines if r["type"] == "consolidated"]
    assert cons and cons[-1]["product"] == "BTC-USD"
    assert set(cons[-1]["counted"]) == {"coinbase", "bitzoom", "coinapi"}
    assert {cons[-1]["bid_venue"], cons[-1]["ask_venue"]} <= {"coinbase", "bitzoom", "coinapi"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--venue", "coinbase,bitzoom", "--products", "BTC-USD", "--sim"],
            "bitzoom: unknown product 'BTC-USD'",
        ),
        (["--venue", "coinbase,bitzoom", "--url", "ws://127.0.0.1:1"], "--url is for one venue"),
        (["--venue", "coinbase,bitzoom", "--record", "x.db"], "--record is for one venue"),
        (["--venue", "coinbase,nope"], "unknown venue 'nope'"),
        (["--venue", "coinbase,", "--sim"], "names no venue"),
        (["--venue", "coinbase,bitzoom", "--channels", "nope"], "no venue here (coinbase, bitzoom) has it"),
        (["--venue", "coinbase,bitzoom", "--same-quote", "USDT"], "not QUOTE=QUOTE"),
        (["--venue", "coinbase,bitzoom", "--alert", "XRP-EUR > 1", "--sim"], "no venue here"),
    ],
)
def test_bad_input_for_several_venues_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    out = run_cli(*args, "--headless", "--duration", "1")
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


# --- the dashboard -----------------------------------------------------------------------------


async def test_the_dashboard_shows_every_venue_its_health_and_the_consolidated_row() -> None:
    from .ui_support import several_app

    app = several_app(unsafe="bitzoom")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        tickers = app.query_one("#tickers").plain()  # type: ignore[attr-defined]
        rows = [line for line in tickers.splitlines() if line.strip()]
        assert rows[0].split()[:2] == ["Product", "Venue"]
        venues_shown = [line.replace("▶", " ").split()[1] for line in rows[1:7]]
        assert venues_shown == ["coinbase", "coinbase", "bitzoom", "bitzoom", "coinapi", "coinapi"]
        c = app.store.consolidated["BTC-USD"]
        row = next(line for line in rows if line.startswith("Σ BTC-USD"))
        assert c.bid and c.ask and c.bid_venue and c.ask_venue
        assert f"bid {c.bid} {c.bid_venue}" in row and f"ask {c.ask} {c.ask_venue}" in row
        assert "✗ bitzoom BTC-USDT not counted: UNSAFE: sequence gap: expected 9120, got 9124" in tickers
        health = app.query_one("#health").plain()  # type: ignore[attr-defined]
        sections = [line.split()[1] for line in health.splitlines() if line.startswith("━━")]
        assert sections == ["coinbase", "bitzoom", "coinapi"]
        assert "━━ bitzoom books 2 ok · 1 UNSAFE" in health and "━━ coinapi books 3 ok" in health


async def test_product_keys_walk_every_venue_and_v_shows_the_consolidated_ladder() -> None:
    from .ui_support import several_app

    app = several_app(unsafe=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        walked = []
        for _ in range(6):
            walked.append((app.view.venue, app.view.product))
            await pilot.press("n")
        assert walked == [
            ("coinbase", "BTC-USD"),
            ("coinbase", "ETH-USD"),
            ("bitzoom", "BTC-USDT"),
            ("bitzoom", "ETH-USDT"),
            ("coinapi", "COINBASE:BTC-USD"),
            ("coinapi", "COINBASE:ETH-USD"),
        ]
        assert (app.view.venue, app.view.product) == ("coinbase", "BTC-USD")  # round again
        await pilot.press("p")
        assert app.view.channels["book"] == venue_class("coinapi")().channel_for_kind("book").name  # type: ignore[union-attr]
        ladder = app.query_one("#ladder")
        assert "COINBASE:ETH-USD" in ladder.border_title  # type: ignore[operator]
        await pilot.press("v")
        await pilot.pause()
        text = ladder.plain()  # type: ignore[attr-defined]
        assert "Σ ETH-USD" in str(ladder.border_title)  # the asset of the selected product
        lines = [line.split() for line in text.splitlines()]
        middle = next(n for n, words in enumerate(lines) if words and words[0] == "spread")
        c = app.store.consolidated["ETH-USD"]  # the best ask just above the spread, the best bid below
        assert Decimal(lines[middle - 1][0]) == Decimal(c.ask or "0") and lines[middle - 1][2] == c.ask_venue
        assert Decimal(lines[middle + 1][0]) == Decimal(c.bid or "0") and lines[middle + 1][2] == c.bid_venue
        levels = [words for words in lines[1:] if words and words[0][0].isdigit()]
        assert len(levels) > 20 and {w[2] for w in levels} <= {"coinbase", "bitzoom", "coinapi"}
        await pilot.press("v")
        await pilot.pause()
        assert "Σ" not in str(ladder.border_title)


async def test_channel_keys_act_on_the_selected_products_venue() -> None:
    """Two simulators: t on a Bitzoom product unsubscribes Bitzoom's trades; Coinbase receives nothing."""
    from tickerterm.ui.app import TickertermApp
    from tickerterm.ui.widgets import VenueView

    products = {"coinbase": ["BTC-USD"], "bitzoom": ["BTC-USDT"]}

    def opener(store: Store) -> Any:
        return tickerterm.open_feeds(
            products, sim=True, sim_options={"rate": 40.0}, collect=False, store=store
        )

    cb = {"ticker": "ticker", "book": "level2", "trades": "market_trades", "candles": "candles"}
    bz = {"ticker": "ticker", "book": "depth@100ms", "trades": "aggTrade", "candles": "kline_1m"}
    app = TickertermApp(
        opener,
        venue="coinbase",
        products=products["coinbase"],
        channels=cb,
        simulated=True,
        venues={
            "coinbase": VenueView(products["coinbase"], cb),
            "bitzoom": VenueView(products["bitzoom"], bz),
        },
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await until(
            pilot,
            lambda: (
                app.feed is not None
                and {h.state for h in app.store.health.values()} == {"subscribed"}
                and len(app.store.health) == 2
            ),
            timeout=20,
        )
        feeds = app.feed
        sims = {name: feeds.feeds[name].sim for name in products}  # type: ignore[union-attr]
        before = {name: len(sim.all_connections[-1].received) for name, sim in sims.items()}
        await pilot.press("n")
        assert (app.view.venue, app.view.product) == ("bitzoom", "BTC-USDT")
        await pilot.press("t")
        bitzoom = sims["bitzoom"].all_connections[-1]
        await until(pilot, lambda: len(bitzoom.received) > before["bitzoom"])
        new = [f for f in bitzoom.received[before["bitzoom"] :] if f.get("method") != "LIST_SUBSCRIPTIONS"]
        assert [(f["method"], f["params"]) for f in new] == [("UNSUBSCRIBE", ["btcusdt@aggTrade"])]
        await until(pilot, lambda: not app.view.channel_on("trades"))
        assert len(sims["coinbase"].all_connections[-1].received) == before["coinbase"]
        # back on Coinbase, its trades are still on; the tape shows Coinbase's
        await pilot.press("n")
        assert app.view.venue == "coinbase" and app.view.channel_on("trades")


async def test_the_dashboard_on_two_simulators_shows_an_unsafe_book_left_out_until_rebuilt() -> None:
    """Coinbase and Coinbase Exchange, both BTC-USD, live: the venue column, a health section each, the
    consolidated row; Coinbase loses a frame and takes 3 s to resend its book: the row says it is not
    counted (and why) meanwhile, and counts it again once rebuilt."""
    from tickerterm.sim.faults import Faults
    from tickerterm.ui.app import TickertermApp
    from tickerterm.ui.widgets import VenueView

    products = {"coinbase": ["BTC-USD"], "coinbase-exchange": ["BTC-USD"]}
    channels = {
        name: {
            k: s.name for k in ("ticker", "book", "trades") if (s := venue_class(name)().channel_for_kind(k))
        }
        for name in products
    }

    def opener(store: Store) -> Any:
        return tickerterm.open_feeds(
            products, sim=True, sim_options={"rate": 40.0}, collect=False, store=store
        )

    app = TickertermApp(
        opener,
        venue="coinbase",
        products=products["coinbase"],
        channels=channels["coinbase"],
        simulated=True,
        venues={name: VenueView(products[name], channels[name]) for name in products},
    )
    async with app.run_test(size=(120, 40)) as pilot:
        tickers, health = app.query_one("#tickers"), app.query_one("#health")

        def shown() -> str:
            return tickers.plain()  # type: ignore[attr-defined,no-any-return]

        await until(pilot, lambda: "Σ BTC-USD bid" in shown() and "✗" not in shown(), timeout=20)
        rows = [line.replace("▶", " ").split() for line in shown().splitlines()[1:3]]
        assert [(r[0], r[1]) for r in rows] == [("BTC-USD", "coinbase"), ("BTC-USD", "coinbase-exchange")]
        sections = [line.split()[1] for line in health.plain().splitlines() if line.startswith("━━")]  # type: ignore[attr-defined]
        assert sections == ["coinbase", "coinbase-exchange"]
        app.feed.feeds["coinbase"].sim.faults = Faults(drop_next=1, snapshot_delay=3.0)  # type: ignore[union-attr]
        await until(pilot, lambda: "✗ coinbase BTC-USD not counted: " in shown(), timeout=20)
        line = next(x for x in shown().splitlines() if "✗ coinbase" in x)
        assert "gap" in line and ("UNSAFE" in line or "RESYNCING" in line), line
        row = next(x for x in shown().splitlines() if x.startswith("Σ BTC-USD"))
        assert row.count("coinbase-exchange") == 2  # both sides from the venue still counted
        await until(pilot, lambda: "✗" not in shown(), timeout=20)  # rebuilt: counted again
