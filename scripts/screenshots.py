"""Regenerate screenshots/: the real dashboard on a real feed to the built-in simulator, with real faults.

    .venv/bin/python scripts/screenshots.py        (or: bash scripts/screenshots)
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tickerterm.core.store import Store
from tickerterm.sim.coinbase import CoinbaseSim
from tickerterm.stream.feed import Feed
from tickerterm.stream.policy import RetryPolicy
from tickerterm.ui.app import TickertermApp
from tickerterm.ui.widgets import DepthLadder
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade

OUT = Path(__file__).resolve().parent.parent / "screenshots"
PRODUCTS = ["BTC-USD", "ETH-USD", "SOL-USD"]
CHANNELS = {"ticker": "ticker", "book": "level2", "trades": "market_trades", "candles": "candles"}


async def shoot(name: str, size: tuple[int, int], ready: Callable[[TickertermApp, CoinbaseSim], bool],
                prepare: Callable[[CoinbaseSim], None] | None = None, keys: tuple[str, ...] = (),
                during: Callable[[CoinbaseSim], Awaitable[None]] | None = None) -> None:
    async with CoinbaseSim(rate=60, warmup=6000, seed=1) as sim:
        if prepare is not None:
            prepare(sim)

        def opener(store: Store) -> Feed:
            adapter = CoinbaseAdvancedTrade(urls={"market": sim.url, "user": sim.url})
            policy = RetryPolicy(base=0.2, min_after_short=0.3)
            return Feed(adapter, PRODUCTS, list(CHANNELS.values()), policy=policy, collect=False, store=store)

        app = TickertermApp(opener, venue="coinbase", products=PRODUCTS, channels=CHANNELS, simulated=True)
        async with app.run_test(size=size) as pilot:
            await pilot.pause(2.0)
            if during is not None:
                await during(sim)
            deadline = time.monotonic() + 30
            while not ready(app, sim):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: the state to capture never came")
                await pilot.pause(0.05)
            if keys:
                await pilot.press(*keys)
            await pilot.pause(1.2)
            path = OUT / f"{name}.svg"
            app.save_screenshot(str(path))
            print(path.relative_to(OUT.parent))


def flowing(app: TickertermApp, sim: CoinbaseSim) -> bool:
    return bool(app.store.tapes.get(("coinbase", "BTC-USD"))) and app.store.book("coinbase", "BTC-USD").state == "ok"


def resyncing(app: TickertermApp, sim: CoinbaseSim) -> bool:
    return "RESYNCING" in app.query_one(DepthLadder).plain()


async def drop_one(sim: CoinbaseSim) -> None:
    sim.faults.snapshot_delay = 60.0  # a slow venue: the fresh book takes its time
    sim.faults.drop_next = 1


def after_faults(app: TickertermApp, sim: CoinbaseSim) -> bool:
    h = app.store.health.get("coinbase")
    return h is not None and h.retries >= 1 and h.gaps >= 1 and h.malformed >= 1 and h.state == "subscribed"


def faulty(sim: CoinbaseSim) -> None:
    sim.faults.close_code = 1011
    sim.faults.close_after_messages = 250
    sim.faults.close_reason = "simulated server error"
    sim.faults.malformed_rate = 0.01


async def gap_later(sim: CoinbaseSim) -> None:
    await asyncio.sleep(2.0)
    sim.faults.drop_next = 2


async def shoot_venue(name: str, size: tuple[int, int], venue: str, products: list[str],
                      channels: dict[str, str], extra: list[str], ready: Callable[[TickertermApp], bool],
                      replay_minutes: tuple[float, float] | None = None) -> None:
    """Another venue's dashboard on its simulator (the same app, the same keys)."""
    from tickerterm.sim import simulator_class
    from tickerterm.stream.worker import ReplayPlan
    from tickerterm.venues import venue_class

    async with simulator_class(venue)(rate=60, warmup=6000, seed=1) as sim:
        cls = venue_class(venue)
        credentials = sim.client_credentials()
        urls = {e: sim.http_url if e == "rest" else sim.url for e in cls.endpoints}
        plan = None
        if replay_minutes is not None:
            now = sim.clock()
            plan = ReplayPlan(products[0], list(channels.values()), now - replay_minutes[0] * 60,
                              now - replay_minutes[1] * 60, 20.0)

        def opener(store: Store) -> Feed:
            adapter = cls(urls=urls, credentials=credentials)
            names = [*channels.values(), *extra]
            return Feed(adapter, products, names, policy=RetryPolicy(stale_after=30), collect=False, store=store,
                        replay=plan)

        app = TickertermApp(opener, venue=venue, products=products, channels=channels, simulated=True,
                            replay=plan is not None)
        async with app.run_test(size=size) as pilot:
            deadline = time.monotonic() + 30
            while not ready(app):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: the state to capture never came")
                await pilot.pause(0.05)
            await pilot.pause(1.5)
            path = OUT / f"{name}.svg"
            app.save_screenshot(str(path))
            print(path.relative_to(OUT.parent))


def book_and_funding(app: TickertermApp) -> bool:
    tick = app.store.tickers.get(("bitzoom", "BTC-USDT"))
    return tick is not None and tick.funding_rate is not None and app.store.book("bitzoom", "BTC-USDT").state == "ok"


def replaying(app: TickertermApp) -> bool:
    return app.store.replay is not None and bool(app.store.tapes.get(("0xarchive", "BTC")))


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    await shoot_venue("bitzoom-120x40", (120, 40), "bitzoom", ["BTC-USDT", "ETH-USDT", "SOL-USDT"],
                      {"ticker": "ticker", "book": "depth@100ms", "trades": "aggTrade", "candles": "kline_1m"},
                      ["markPrice@1s"], book_and_funding)
    await shoot_venue("0xarchive-replay-120x40", (120, 40), "0xarchive", ["BTC"],
                      {"book": "orderbook", "trades": "trades", "candles": "candles"}, [], replaying,
                      replay_minutes=(50, 5))
    await shoot("dashboard-120x40", (120, 40), flowing)
    await shoot("dashboard-80x24", (80, 24), flowing)
    await shoot("unsafe-book-120x40", (120, 40), resyncing, during=drop_one)
    await shoot("health-after-faults-80x24", (80, 24), after_faults, prepare=faulty, keys=("5",), during=gap_later)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
