"""One feed, many screens: the relay publishes to NATS JetStream, viewers read it back.

The tests that need the broker use the machine's NATS server (``tests.conftest.nats_or_skip``: skipped
with one line without one, failed under CI), each in a stream of its own that it deletes afterwards.
Broker trouble is made with a TCP proxy on loopback between a client and the broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import FAST, fast_policy, nats_or_skip
from tickerterm.api import open_feed
from tickerterm.core.events import (
    BookResynced,
    BookSnapshot,
    BookUnsafe,
    BookUpdate,
    Event,
    Gap,
    Malformed,
    ReplayState,
    Trade,
    VenueError,
    change,
)
from tickerterm.core.relay import RelayInput, stream_names, subject
from tickerterm.core.store import Store
from tickerterm.stream.relay import Relay, RelayFeed, RelayReplay
from tickerterm.venues import venue_class

PRODUCTS = ["BTC-USD", "ETH-USD"]
CHANNELS = ["level2", "market_trades", "ticker"]
SIM = {"timing": FAST, "rate": 40.0, "depth": 300}


@contextlib.asynccontextmanager
async def a_stream(url: str) -> AsyncIterator[tuple[str, str]]:
    """A relay name of this test's own; its JetStream stream is deleted afterwards."""
    import nats

    root, stream = stream_names(f"tt{random.getrandbits(32):08x}")
    try:
        yield root, stream
    finally:
        nc = await nats.connect(url)
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(stream)
        await nc.close()


class Proxy:
    """A TCP proxy on loopback to the broker that can cut every connection and refuse new ones."""

    def __init__(self, upstream: str) -> None:
        host_port = upstream.split("//", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.upstream_port = int(port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    async def close(self) -> None:
        if self.server is not None:
            await self.cut()


@contextlib.asynccontextmanager
async def relayed(
    url: str,
    root: str,
    stream: str,
    products: list[str] = PRODUCTS,
    channels: list[str] = CHANNELS,
    **sim: Any,
) -> AsyncIterator[tuple[Relay, Any]]:
    """A relay (snapshots every 0.5 s) publishing a Coinbase simulator's feed: (the relay, the feed)."""
    relay = Relay(url, root=root, stream=stream, snapshot_every=0.5, history=120)
    async with open_feed(
        "coinbase", products, channels, sim=True, sim_options={**SIM, **sim}, collect=False, sink=relay.sink
    ) as feed:
        await relay.start(feed.store)
        yield relay, feed


def book_subject(relay: Relay, product: str) -> str:
    return subject("coinbase", product, "book", relay.root)


async def in_step(relay: Relay, viewer: RelayFeed, timeout: float = 15.0) -> None:
    """Until the viewer has applied every book message the relay has published (and every book is good),
    checked at one instant: from then on both books must be equal."""
    deadline = time.monotonic() + timeout
    while True:
        seen = [viewer.input.subjects.get(book_subject(relay, p)) for p in PRODUCTS]
        if (
            not relay.queue
            and all(s is not None and s.epoch == relay.epoch for s in seen)
            and [s.seq for s in seen if s] == [relay._seq.get(book_subject(relay, p)) for p in PRODUCTS]
            and all(viewer.store.book("coinbase", p).state == "ok" for p in PRODUCTS)
        ):
            return
        if time.monotonic() > deadline:
            states = {
                p: (viewer.store.book("coinbase", p).state, viewer.store.book("coinbase", p).reason)
                for p in PRODUCTS
            }
            raise AssertionError(f"the viewer never caught up: {seen} vs {relay._seq}, books {states}")
        await asyncio.sleep(0.002)


async def until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


def assert_same_books(venue_store: Store, viewer_store: Store) -> None:
    for product in PRODUCTS:
        mine, theirs = venue_store.book("coinbase", product), viewer_store.book("coinbase", product)
        assert len(theirs) > 100, product
        assert theirs.levels("bid") == mine.levels("bid") and theirs.levels("ask") == mine.levels("ask")
        assert theirs.top(10) == mine.top(10)


def viewer(url: str, root: str, stream: str, **options: Any) -> RelayFeed:
    return RelayFeed(
        url,
        venue_class("coinbase")(),
        PRODUCTS,
        CHANNELS,
        root=root,
        stream=stream,
        collect=False,
        policy=fast_policy(budget=None),
        **options,
    )


async def test_two_viewers_and_a_late_joiner_show_exactly_the_relays_books() -> None:
    url = await nats_or_skip()
    async with a_stream(url) as (root, stream):
        async with relayed(url, root, stream) as (relay, feed):
            first = viewer(url, root, stream)
            async with first:
                await asyncio.sleep(1.5)  # the relay has published snapshots and deltas before this one joins
                late = viewer(url, root, stream, alerts=["BTC-USD spread > 0"])  # alerts run on the screen
                async with late:
                    for one in (first, late):
                        await in_step(relay, one)
                        assert_same_books(feed.store, one.store)
                    # the late joiner started at a snapshot, not at the relay's first message
                    assert late.input.subjects[book_subject(relay, "BTC-USD")].seq > 1
                    assert not late.input.waiting and late.input.malformed == 0

                    def tape(store: Store) -> list[tuple[str, str]]:
                        return [(t.product, t.trade_id) for t in store.tape][-5:]

                    await until(lambda: tape(feed.store) and tape(late.store) == tape(feed.store))
                    key = ("coinbase", "BTC-USD")  # its own consumer, started at the last ticker
                    await until(lambda: late.store.tickers.get(key) == feed.store.tickers.get(key))
                    # the health panel: the broker connection, and the relay's venue connection as it reports
                    assert late.store.health["relay"].state == "subscribed"
                    assert late.store.health["coinbase"].state == feed.store.health["coinbase"].state
                    await until(lambda: bool(late.store.alerts))
                    assert late.store.alerts[0].product == "BTC-USD" and not first.store.alerts
        await relay.stop()


async def test_the_viewers_broker_connection_cut_mid_stream_is_shown_and_the_books_come_back() -> None:
    url = await nats_or_skip()
    proxy = Proxy(url)
    await proxy.start()
    async with a_stream(url) as (root, stream):
        async with relayed(url, root, stream) as (relay, feed):
            seen: list[Event] = []
            one = viewer(proxy.url, root, stream, sink=seen.extend)
            async with one:
                await in_step(relay, one)
                await proxy.cut()
                await asyncio.sleep(1.5)  # the relay goes on publishing meanwhile
                health = one.store.health["relay"]
                assert health.state in ("closed", "retrying")
                assert health.last_close_reason == "broker connection lost"
                await proxy.start()  # the broker is back on the same address
                await in_step(relay, one, timeout=20)
                assert_same_books(feed.store, one.store)
                assert one.store.health["relay"].state == "subscribed"
                assert one.store.health["relay"].closes >= 1
        await relay.stop()
    await proxy.close()


async def test_the_relay_buffers_while_the_broker_is_away_and_keeps_the_venue() -> None:
    url = await nats_or_skip()
    proxy = Proxy(url)
    await proxy.start()
    async with a_stream(url) as (root, stream):
        relay = Relay(proxy.url, root=root, stream=stream, snapshot_every=0.5, history=120)
        async with open_feed(
            "coinbase", PRODUCTS, CHANNELS, sim=True, sim_options=SIM, collect=False, sink=relay.sink
        ) as feed:
            await relay.start(feed.store)
            one = viewer(url, root, stream)
            async with one:
                await in_step(relay, one)
                await proxy.cut()
                await asyncio.sleep(1.0)
                assert not relay.connected and len(relay.queue) > 0  # held, not lost
                await proxy.start()
                await in_step(relay, one, timeout=20)
                assert_same_books(feed.store, one.store)
                assert relay.dropped == 0
                assert not any(
                    s.seq and name.endswith(".book") and name in one.input.waiting
                    for name, s in one.input.subjects.items()
                )
                assert feed.store.health["coinbase"].closes == 0  # the venue connection stayed up throughout
        await relay.stop()
    await proxy.close()


async def test_a_restarted_relay_is_followed_by_its_viewers() -> None:
    url = await nats_or_skip()
    async with a_stream(url) as (root, stream):
        first = Relay(url, root=root, stream=stream, snapshot_every=0.5, history=120)
        one = viewer(url, root, stream)
        async with open_feed(
            "coinbase", PRODUCTS, CHANNELS, sim=True, sim_options=SIM, collect=False, sink=first.sink
        ) as feed:
            await first.start(feed.store)
            await one.start()
            await in_step(first, one)
        await first.stop()
        second = Relay(url, root=root, stream=stream, snapshot_every=0.5, history=120)
        assert second.epoch != first.epoch
        other = {**SIM, "seed": 7}  # another market: the viewer must show the new relay's books
        async with open_feed(
            "coinbase", PRODUCTS, CHANNELS, sim=True, sim_options=other, collect=False, sink=second.sink
        ) as feed:
            await second.start(feed.store)
            await in_step(second, one)
            assert_same_books(feed.store, one.store)
        await one.stop()
        await second.stop()


async def test_the_relays_history_replays_to_the_same_books_and_seeks() -> None:
    url = await nats_or_skip()
    async with a_stream(url) as (root, stream):
        relay = Relay(url, root=root, stream=stream, snapshot_every=0.3, history=120)
        async with open_feed(
            "coinbase", PRODUCTS, CHANNELS, sim=True, sim_options=SIM, collect=False, sink=relay.sink
        ) as feed:
            await relay.start(feed.store)
            await asyncio.sleep(2.0)
        await relay.stop()  # what it had is published: its books are the last word
        states: list[str] = []

        def sink(events: list[Event]) -> None:
            states.extend(e.state for e in events if isinstance(e, ReplayState))  # type: ignore[attr-defined]

        replay = RelayReplay(
            url, venue_class("coinbase")(), PRODUCTS, root=root, stream=stream, speed=0.0, sink=sink
        )
        async with replay:
            await asyncio.wait_for(replay.wait_finished(), 30)
        assert states == ["started", "completed"]
        assert_same_books(feed.store, replay.store)
        # a seek rebuilds the books from the history before it, then plays on to the same end
        seeking = RelayReplay(url, venue_class("coinbase")(), PRODUCTS, root=root, stream=stream, speed=1.0)
        async with seeking:
            assert seeking.start is not None and seeking.end is not None
            await seeking.control("seek", timestamp=seeking.end - 0.5)
            await asyncio.wait_for(seeking.wait_finished(), 30)
            assert seeking.position >= seeking.end - 0.5
        assert_same_books(feed.store, seeking.store)
        # G / --before-gap: a minute before the history's last gap, close or stale feed (the venue
        # connection's close when the relay's feed ended), as a file replay does
        before = RelayReplay(
            url, venue_class("coinbase")(), PRODUCTS, root=root, stream=stream, speed=0.0, before_gap=True
        )
        async with before:
            trouble = await before._last_trouble()
            assert trouble is not None and before.last - 1.0 <= trouble <= before.last
            assert before.start == before.first  # a minute before it is before the history began
            await before.control("before_gap")
            await asyncio.wait_for(before.wait_finished(), 30)
        assert_same_books(feed.store, before.store)


async def test_a_viewer_with_no_broker_says_why_from_the_first_retry() -> None:
    seen: list[Event] = []
    one = RelayFeed(
        "nats://127.0.0.1:1", venue_class("coinbase")(), PRODUCTS, CHANNELS, sink=seen.extend,
        policy=fast_policy(budget=1),
    )  # fmt: skip
    async with one:
        await asyncio.wait_for(one.wait_finished(), 15)
    kinds = [type(e).__name__ for e in seen]
    assert kinds == ["Connecting", "RetryScheduled", "Connecting", "GaveUp"]
    assert "no broker answered" in seen[1].reason  # type: ignore[attr-defined]
    assert one.store.health["relay"].state == "gave_up"


def test_replaying_a_relay_that_is_not_there_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tickerterm", "replay", "nats://127.0.0.1:1", "--headless"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("tickerterm: error: cannot read history at nats://127.0.0.1:1")


async def test_several_venues_through_one_relay_with_the_consolidated_book() -> None:
    import tickerterm

    url = await nats_or_skip()
    products = {"coinbase": ["BTC-USD"], "bitzoom": ["BTC-USDT"]}
    async with a_stream(url) as (root, stream):
        relay = Relay(url, root=root, stream=stream, snapshot_every=0.5, history=120)
        async with tickerterm.open_feeds(
            products, sim=True, sim_options={"timing": FAST, "rate": 40.0}, collect=False, sink=relay.sink
        ) as venues:
            await relay.start(venues.store)
            async with tickerterm.open_feeds(
                products, source=url, relay=root, collect=False, same_quote={"USDT": "USD"}
            ) as screen:

                def good() -> bool:
                    return all(
                        screen.store.book(v, p).state == "ok" and len(screen.store.book(v, p)) > 50
                        for v, ps in products.items()
                        for p in ps
                    )

                await until(good, timeout=20)
                assert set(screen.store.health) >= {
                    "coinbase/relay",
                    "bitzoom/relay",
                    "coinbase",
                    "bitzoom",
                }
                await until(lambda: "BTC-USD" in screen.store.consolidated)
                await until(
                    lambda: set(screen.store.consolidated["BTC-USD"].counted) == {"coinbase", "bitzoom"}
                )
        await relay.stop()


async def test_raw_frames_are_published_as_they_came_with_secrets_removed() -> None:
    import nats

    url = await nats_or_skip()
    async with a_stream(url) as (root, stream):
        frames: list[bytes] = []
        async with relayed(url, root, stream, ["BTC-USD"], ["level2"]) as (relay, feed):
            relay.tap(feed)
            nc = await nats.connect(url)
            got: list[Any] = []

            async def take(msg: Any) -> None:
                got.append(msg)

            sub = await nc.subscribe(f"{root}.coinbase.raw", cb=take)
            await until(lambda: len(got) >= 20)
            await sub.unsubscribe()
            await nc.close()
            # a frame that echoes a secret of the venue's key: the broker never sees the secret
            tap = feed.connections["market"].journal
            assert tap is not None
            feed.adapter.credentials = None
            from tickerterm.core.safe import Redactor

            tap.redact = Redactor(["s3cr3t-api-key-0123456789"])  # type: ignore[attr-defined]
            tap.record("coinbase", "coinbase", 1.0, "frame", None, b'{"echo":"s3cr3t-api-key-0123456789"}')
            tap.frames("coinbase", "coinbase", 1.0, [b'{"echo":"s3cr3t-api-key-0123456789","n":2}'])
            frames = [o.body for o in relay.queue if o.subject.endswith(".raw")]
        await relay.stop()
    first = got[0]
    assert first.headers["Tt-Conn"] == "coinbase" and int(first.headers["Tt-Seq"]) >= 1
    assert json.loads(first.data)["channel"] in ("l2_data", "subscriptions", "heartbeats")
    seqs = [int(m.headers["Tt-Seq"]) for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # every frame, in order
    assert all(b"s3cr3t" not in f for f in frames)
    assert any(b'"echo":"***"}' in f for f in frames) and any(b'"echo":"***","n":2' in f for f in frames)


async def test_a_message_the_broker_would_refuse_is_counted_not_retried_for_ever() -> None:
    url = await nats_or_skip()
    rng = random.Random(5)
    levels = [
        (f"{rng.randrange(10**9)}.{rng.randrange(10**8):08d}", f"{rng.random():.8f}") for _ in range(90_000)
    ]
    huge = BookSnapshot("coinbase", 1.0, "BTC-USD", None, levels, [])
    async with a_stream(url) as (root, stream):
        relay = Relay(url, root=root, stream=stream, history=120)
        relay.sink([huge, Trade("coinbase", 1.0, "BTC-USD", None, "1", "100", "1", "buy")])
        await relay.start(Store())
        await until(lambda: not relay.queue)
        assert relay.too_large == 1 and relay.published == 1  # the trade went; the snapshot is counted
        await relay.stop()


async def test_a_failure_starting_the_consumers_is_said_and_retried_not_silent(monkeypatch: Any) -> None:
    url = await nats_or_skip()
    async with a_stream(url) as (root, stream), relayed(url, root, stream) as (relay, feed):
        seen: list[Event] = []
        one = viewer(url, root, stream, sink=seen.extend)
        real, calls = one._read, []

        async def flaky(channel: str, products: list[str]) -> None:
            calls.append(channel)
            if len(calls) == 1:
                raise TimeoutError("consumer create timed out")
            await real(channel, products)

        monkeypatch.setattr(one, "_read", flaky)
        async with one:
            await in_step(relay, one)
            assert_same_books(feed.store, one.store)
        retries = [e for e in seen if type(e).__name__ == "RetryScheduled"]
        assert any("consumer create timed out" in r.reason for r in retries)  # type: ignore[attr-defined]
        await relay.stop()


async def test_an_unexpected_publishing_failure_drops_one_message_and_the_relay_goes_on() -> None:
    url = await nats_or_skip()
    async with a_stream(url) as (root, stream):
        relay = Relay(url, root=root, stream=stream, history=120)
        await relay.start(Store())
        await until(lambda: relay.connected)
        assert relay._nc is not None
        real = relay._nc.publish
        failed: list[str] = []

        async def once_broken(subject_name: str, *args: Any, **kwargs: Any) -> None:
            if not failed:
                failed.append(subject_name)
                raise ValueError("a bug in a client library")
            await real(subject_name, *args, **kwargs)

        relay._nc.publish = once_broken  # type: ignore[method-assign]
        relay.sink([Trade("coinbase", 1.0, "BTC-USD", None, str(i), "100", "1", "buy") for i in range(3)])
        await until(lambda: not relay.queue)
        assert (relay.dropped, relay.published) == (1, 2) and failed == [f"{root}.coinbase.BTC-USD.trade"]
        await relay.stop()


async def test_the_library_refuses_venue_options_with_a_relay_source() -> None:
    from tickerterm.core.errors import ConfigError

    with pytest.raises(ConfigError, match="source= reads a relay: sim, record cannot apply"):
        async with open_feed("coinbase", PRODUCTS, sim=True, record="x.db", source="nats://127.0.0.1:1"):
            pass


def _messages(relay: Relay) -> list[tuple[str, dict[str, str], bytes]]:
    out = [(o.subject, dict(o.headers), o.body) for o in relay.queue]
    relay.queue.clear()
    return out


def test_a_gap_in_a_books_numbers_makes_it_unsafe_until_the_relays_next_snapshot() -> None:
    relay = Relay("nats://127.0.0.1:1", root="t", stream="T")
    relay.sink([BookSnapshot("coinbase", 1.0, "BTC-USD", None, [("100", "1")], [("101", "2")])])
    relay.sink([BookUpdate("coinbase", 2.0, "BTC-USD", None, [change("bid", "100.5", "3")])])  # seq 2
    relay.sink([BookUpdate("coinbase", 3.0, "BTC-USD", None, [change("bid", "99", "1")])])  # seq 3: lost
    relay.sink([BookUpdate("coinbase", 4.0, "BTC-USD", None, [change("ask", "101", "0")])])  # seq 4
    relay.sink([BookSnapshot("coinbase", 5.0, "BTC-USD", None, [("100", "7")], [("102", "1")])])  # seq 5
    msgs = _messages(relay)
    del msgs[2]
    got = RelayInput("coinbase", "relay", ["BTC-USD"])
    store = Store()
    out: list[list[Event]] = []
    for name, headers, body in msgs[:3]:
        out.append(got.received(name, headers, body, 10.0))
        store.apply_all(out[-1])
    assert [type(e) for e in out[0]] == [BookSnapshot] and [type(e) for e in out[1]] == [BookUpdate]
    gap, unsafe = out[2]
    assert isinstance(gap, Gap) and (gap.expected, gap.received) == (3, 4)
    assert isinstance(unsafe, BookUnsafe) and "relay gap" in unsafe.reason
    assert store.book("coinbase", "BTC-USD").state == "unsafe"
    assert store.book("coinbase", "BTC-USD").levels("ask") == {"101": "2"}  # seq 4 was not applied
    out.append(got.received(*msgs[3], 11.0))
    store.apply_all(out[-1])
    assert [type(e) for e in out[3]] == [BookSnapshot, BookResynced]
    book = store.book("coinbase", "BTC-USD")
    assert book.state == "ok" and book.levels("bid") == {"100": "7"} and book.levels("ask") == {"102": "1"}
    # a message delivered again (a consumer that resumed) is dropped, not applied twice
    assert got.received(*msgs[-1], 11.0) == []


def test_a_restarted_relay_and_two_relays_on_one_stream_never_leave_a_wrong_book_shown_as_good() -> None:
    def book_messages(relay: Relay, bid: str) -> list[tuple[str, dict[str, str], bytes]]:
        relay.sink([BookSnapshot("coinbase", 1.0, "BTC-USD", None, [(bid, "1")], [("200", "1")])])
        relay.sink([BookUpdate("coinbase", 2.0, "BTC-USD", None, [change("bid", bid, "2")])])
        relay.sink([BookUpdate("coinbase", 3.0, "BTC-USD", None, [change("bid", bid, "3")])])
        return _messages(relay)

    a = book_messages(Relay("nats://127.0.0.1:1", root="t", stream="T"), "100")
    b = book_messages(Relay("nats://127.0.0.1:1", root="t", stream="T"), "150")
    got, store = RelayInput("coinbase", "relay", ["BTC-USD"]), Store()

    def take(msg: tuple[str, dict[str, str], bytes]) -> list[type]:
        events = got.received(*msg, 1.0)
        store.apply_all(events)
        return [type(e) for e in events]

    assert take(a[0]) == [BookSnapshot] and take(a[1]) == [BookUpdate]
    # the relay restarted: its first message is an update (the snapshot was lost): wait for one
    assert take(b[1]) == [BookUnsafe]
    book = store.book("coinbase", "BTC-USD")
    assert book.state == "unsafe" and "restarted" in book.reason
    assert take(b[2]) == []  # not applied to a book that is not the new relay's
    # the old relay is still publishing too: its messages are dropped and it is said once
    events = got.received(*a[2], 1.0)
    assert [type(e) for e in events] == [VenueError] and "two relays publish" in events[0].message  # type: ignore[attr-defined]
    assert got.received(*a[2], 1.0) == [] and got.conflicts == 2
    b_again = book_messages(Relay("nats://127.0.0.1:1", root="t", stream="T"), "150")
    assert take(b_again[0]) == [BookSnapshot, BookResynced]  # a third run's snapshot: good again
    assert store.book("coinbase", "BTC-USD").state == "ok"


@pytest.mark.parametrize(
    ("change_body", "why"),
    [
        (lambda b: b.replace(b'"100.5"', b'"1e5"'), "not plain decimal text"),
        (lambda b: b.replace(b'"100.5"', b'"NaN"'), "not plain decimal text"),
        (lambda b: b[:-5], "truncated"),
        (lambda b: b.replace(b'"coinbase"', b'"bitzoom"'), "an event of 'bitzoom'"),
        (lambda b: b.replace(b'"BTC-USD"', b'"ETH-USD"'), "for coinbase.ETH-USD.book on this subject"),
    ],
)
def test_a_bad_relay_message_is_counted_and_its_book_rebuilt(change_body: Any, why: str) -> None:
    relay = Relay("nats://127.0.0.1:1", root="t", stream="T")
    relay.sink([BookSnapshot("coinbase", 1.0, "BTC-USD", None, [("100", "1")], [("101", "2")])])
    relay.sink([BookUpdate("coinbase", 2.0, "BTC-USD", None, [change("bid", "100.5", "3")])])
    (s1, h1, b1), (s2, h2, b2) = _messages(relay)
    got = RelayInput("coinbase", "relay", ["BTC-USD"])
    assert [type(e) for e in got.received(s1, h1, b1, 1.0)] == [BookSnapshot]
    events = got.received(s2, h2, change_body(b2), 2.0)
    assert [type(e) for e in events] == [Malformed, BookUnsafe]
    assert why in events[0].reason  # type: ignore[attr-defined]
    assert got.malformed == 1 and "BTC-USD" in got.waiting


def test_relayed_venue_text_is_scrubbed_and_account_data_never_published() -> None:
    from tickerterm.core.events import BalanceUpdate, OrderUpdate

    relay = Relay("nats://127.0.0.1:1", root="t", stream="T")
    relay.sink([Trade("coinbase", 1.0, "BTC-USD", None, "id\x1b]0;owned\x07" + "x" * 500, "100", "1", "buy")])
    relay.sink(
        [OrderUpdate("coinbase", 1.0, "BTC-USD", None, "o1", "buy", "limit", "open", "1", None, "1", None)]
    )
    relay.sink([BalanceUpdate("coinbase", 1.0, None, {"USD": "1"})])
    msgs = _messages(relay)
    assert [m[0] for m in msgs] == ["t.coinbase.BTC-USD.trade"]  # orders and balances stay home
    (trade,) = RelayInput("coinbase", "relay", ["BTC-USD"]).received(*msgs[0], 1.0)
    assert isinstance(trade, Trade) and len(trade.trade_id) <= 128


def test_an_unchanged_book_is_not_published_whole_again_until_it_must_be() -> None:
    relay = Relay("nats://127.0.0.1:1", root="t", stream="T", history=120)
    store = Store()
    store.apply(BookSnapshot("coinbase", 1.0, "BTC-USD", None, [("100", "1")], [("101", "1")]))

    def snapshots() -> int:
        return sum(o.subject == "t.coinbase.BTC-USD.book" for o in relay.queue)

    relay.snapshot(store, 100.0)
    relay.snapshot(store, 105.0)  # a quiet market: nothing changed
    assert snapshots() == 1
    store.apply(BookUpdate("coinbase", 2.0, "BTC-USD", None, [change("bid", "100", "2")]))
    relay.snapshot(store, 110.0)
    assert snapshots() == 2
    relay.snapshot(store, 110.0 + 59.0)
    relay.snapshot(store, 110.0 + 60.0)  # unchanged, but its last snapshot must stay in the history
    assert snapshots() == 3


def test_the_relays_memory_is_bounded_while_the_broker_is_away() -> None:
    relay = Relay("nats://127.0.0.1:1", root="t", stream="T", buffer=1000)
    for i in range(30_000):
        relay.sink([Trade("coinbase", float(i), "BTC-USD", None, str(i), "100", "1", "buy")])
    assert len(relay.queue) == 1000 and relay.dropped == 29_000
    assert len(relay._seq) == 1  # one number per subject, however long it runs
    names = [o.headers["Tt-Seq"] for o in relay.queue]
    assert names[0] == "29001" and names[-1] == "30000"  # the newest kept: viewers see the gap


def test_relay_and_from_bad_input_is_one_line_and_exit_2() -> None:
    cases = [
        (["relay", "--sim", "--to", "http://127.0.0.1:4222"], "not a NATS URL"),
        (["relay", "--sim"], "--to"),
        (["relay", "--sim", "--to", "nats://127.0.0.1:4222", "--stream", "a.b"], "--stream"),
        (["--from", "nats://127.0.0.1:4222", "--sim"], "--from and --sim exclude each other"),
        (["--from", "nats://127.0.0.1:4222", "--alert-exec", "cat"], "--from and --alert-exec exclude"),
        (["--from", "nats://127.0.0.1:4222", "--channels", "user"], "market data only"),
        (["--from", "redis://127.0.0.1:6379", "--headless"], "not a NATS URL"),
    ]
    for args, text in cases:
        result = subprocess.run(
            [sys.executable, "-m", "tickerterm", *args], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0], (args, result.stderr)


async def test_the_relay_command_and_a_headless_viewer_from_the_command_line() -> None:
    url = await nats_or_skip()
    async with a_stream(url) as (root, _stream):
        relay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tickerterm", "relay", "--sim", "--products", "BTC-USD",
            "--to", url, "--stream", root, "--snapshot-every", "0.5", "--duration", "20",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert relay.stderr is not None
            line = (await asyncio.wait_for(relay.stderr.readline(), 15)).decode()
            assert line.startswith("tickerterm: relaying coinbase BTC-USD") and f"as {root}.*" in line
            view = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tickerterm", "--from", url, "--stream", root, "--products", "BTC-USD",
                "--headless", "--max-events", "80",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(view.communicate(), 30)
            assert view.returncode == 0, err.decode()
            records = [json.loads(x) for x in out.decode().splitlines()]
            kinds = {r["type"] for r in records}
            assert {"connected", "book", "trade"} <= kinds, kinds
            books = [r for r in records if r["type"] == "book" and r["product"] == "BTC-USD"]
            assert books[0]["snapshot"] and books[-1]["state"] == "ok" and books[-1]["bid"] < books[-1]["ask"]
            assert any(r["type"] == "connected" and r["conn"] == "relay" for r in records)
        finally:
            with contextlib.suppress(ProcessLookupError):
                relay.terminate()
            await relay.wait()


async def test_the_dashboard_on_a_relay_shows_its_books_and_health_and_t_stops_this_screens_trades() -> None:
    from tests.ui_support import until as until_shown
    from tickerterm.ui.app import TickertermApp

    url = await nats_or_skip()
    async with a_stream(url) as (root, stream):
        async with relayed(url, root, stream) as (relay, feed):
            panels = {"ticker": "ticker", "book": "level2", "trades": "market_trades"}
            app = TickertermApp(
                lambda store: viewer(url, root, stream, store=store),
                venue="coinbase",
                products=PRODUCTS,
                channels=panels,
            )
            async with app.run_test(size=(120, 40)) as pilot:
                one: Any = None

                def ready() -> bool:
                    nonlocal one
                    one = app.feed
                    return one is not None and all(
                        app.store.book("coinbase", p).state == "ok" for p in PRODUCTS
                    )

                await until_shown(pilot, ready, timeout=20)
                await in_step(relay, one)
                assert_same_books(feed.store, app.store)

                def health() -> str:
                    return str(app.query_one("#health").plain())  # type: ignore[attr-defined]

                # the broker connection and the relay's venue connection, as the relay reports it
                await until_shown(pilot, lambda: "relay SUBSCRIBED" in health() and "coinbase" in health())
                trade = subject("coinbase", "BTC-USD", "trade", root)
                assert trade in one._subs
                await pilot.press("t")  # this screen stops reading trades; the relay goes on publishing
                await until_shown(pilot, lambda: trade not in one._subs)
                assert "market_trades" not in one.subscriptions()
                published = relay._seq.get(trade, 0)
                await until(lambda: relay._seq.get(trade, 0) > published + 3)
                seen = len(app.store.tape)
                await asyncio.sleep(0.3)
                assert len(app.store.tape) == seen  # nothing more reaches this screen's tape
                await pilot.press("t")
                await until_shown(pilot, lambda: trade in one._subs)
        await relay.stop()
