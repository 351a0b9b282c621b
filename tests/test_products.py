"""One product the venue refuses does not take the others down: it gets an error naming it, the rest
keep flowing; when every product is refused the command ends with exit 2 and the venue's message.
Each venue refuses a symbol its own way; its simulator does what the venue does, over a real socket."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import FAST, fast_policy, take_until
from tickerterm.core.events import Event, Trade, VenueError
from tickerterm.sim import simulator_class
from tickerterm.sim.faults import Faults
from tickerterm.stream.feed import Feed
from tickerterm.venues import VenueAdapter, venue_class

CASES = {  # venue: (good product, refused product, a trades channel)
    "coinbase": ("BTC-USD", "FOO-BAR", "market_trades"),
    "coinbase-exchange": ("BTC-USD", "FOO-BAR", "matches"),
    "bitzoom": ("BTC-USDT", "FOO-USDT", "trade"),
    "0xarchive": ("BTC", "FOO", "trades"),
}


@contextlib.asynccontextmanager
async def on_simulator(venue: str) -> AsyncIterator[VenueAdapter]:
    """The venue's adapter pointed at its simulator, with the simulator's test account."""
    cls = venue_class(venue)
    options: dict[str, Any] = dict(rate=400.0, depth=50, seed=7, timing=FAST, faults=Faults())
    async with simulator_class(venue)(**options) as sim:
        urls = {n: sim.http_url if n == "rest" else sim.url for n in cls.endpoints}
        yield cls(urls=urls, credentials=sim.client_credentials())


@pytest.mark.parametrize("venue", list(CASES))
async def test_a_refused_product_is_named_and_the_others_keep_flowing(venue: str) -> None:
    good, bad, trades = CASES[venue]
    async with (
        on_simulator(venue) as adapter,
        Feed(adapter, [good, bad], [trades], policy=fast_policy()) as feed,
    ):
        events = await take_until(feed, lambda e: isinstance(e, VenueError), 10)
        error = events[-1]
        assert isinstance(error, VenueError) and error.product == bad and error.fatal
        assert adapter.wire_symbol(bad) in error.message  # the venue's own name for it
        after: list[Event] = await take_until(feed, lambda e: isinstance(e, Trade) and e.product == good, 10)
        assert not [e for e in after if isinstance(e, Trade) and e.product == bad]
        assert feed.running
        assert bad not in feed.subscriptions().get(adapter.channel(trades).name, [])


def test_when_every_product_is_refused_the_command_exits_2_with_the_venues_message() -> None:
    sim = subprocess.Popen(
        [sys.executable, "-m", "tickerterm", "sim", "--venue", "coinbase", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sim.stdout is not None
        url = sim.stdout.readline().strip()
        result = subprocess.run(
            [sys.executable, "-m", "tickerterm", "--headless", "--url", url, "--products", "FOO-BAR,BAR-FOO"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        sim.terminate()
        sim.communicate(timeout=10)
    assert result.returncode == 2
    assert result.stderr.startswith("tickerterm: error: failure to subscribe: unknown product ")
    assert result.stderr.rstrip().endswith("(the venue refused every product asked for)")
    assert result.stderr.count("\n") == 1


async def test_coinapi_never_refuses_a_symbol_so_its_silence_is_named() -> None:
    """CoinAPI has no acknowledgement and no error for a symbol it does not know: it just sends nothing.
    After a while the product is named (the others keep flowing)."""
    cls = venue_class("coinapi")
    options: dict[str, Any] = dict(rate=400.0, depth=50, seed=7, timing=FAST, faults=Faults())
    async with simulator_class("coinapi")(**options) as sim:
        adapter = cls(urls={"market": sim.url, "rest": sim.http_url}, credentials=sim.client_credentials())
        adapter.silent_after = 1.0  # 15 s on the real venue
        good, bad = "COINBASE:BTC-USD", "COINBASE:FOO-USD"
        async with Feed(adapter, [good, bad], ["trade", "quote"], policy=fast_policy()) as feed:
            events = await take_until(feed, lambda e: isinstance(e, VenueError), 10)
            error = events[-1]
            assert isinstance(error, VenueError) and error.product == bad and not error.fatal
            assert error.message.startswith("no data for COINBASE:FOO-USD (COINBASE_SPOT_FOO_USD) after 1 s")
            assert any(isinstance(e, Trade) and e.product == good for e in events)
            assert feed.running


@pytest.mark.parametrize("venue", list(CASES))
async def test_every_product_refused_gives_up_as_bad_input_on_every_venue(venue: str) -> None:
    """The rule lives in the generic session: each venue's refusal, in its own words, ends the same way."""
    from tickerterm.core.events import GaveUp

    _good, bad, trades = CASES[venue]
    other = bad.replace("FOO", "BAZ")
    async with (
        on_simulator(venue) as adapter,
        Feed(adapter, [bad, other], [trades], policy=fast_policy()) as feed,
    ):
        events = await take_until(feed, lambda e: isinstance(e, GaveUp), 10)
        gave_up = events[-1]
        assert isinstance(gave_up, GaveUp) and gave_up.bad_input
        assert gave_up.reason.endswith("(the venue refused every product asked for)")
        refused = {e.product for e in events if isinstance(e, VenueError) and e.fatal}
        assert refused == {bad, other}
        await feed.wait_finished()
        assert not feed.running
