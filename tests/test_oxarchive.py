"""0xArchive: exact parsing, whole-book replacement, the L4 rebuild, gap notices, errors by code, the
key never shown, application pings, replay and its controls (through reconnects), and every fault."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from tickerterm.core.events import (
    BookResynced,
    BookSnapshot,
    BookUnsafe,
    BookUpdate,
    Candle,
    Closed,
    Connecting,
    Event,
    Gap,
    GaveUp,
    Heartbeat,
    Malformed,
    ReplayState,
    Subscribed,
    Trade,
    change,
)
from tickerterm.sim.faults import Faults
from tickerterm.sim.oxarchive import OxArchiveSim
from tickerterm.stream.feed import Feed
from tickerterm.stream.worker import ReplayPlan
from tickerterm.venues.oxarchive import PING, OxArchive, OxArchiveParser

from .conftest import FAST, ExactBook, fast_policy, feed_book, sim_book, take_until

V = "0xarchive"
R = 5.0


def enc(msg: Any) -> bytes:
    return json.dumps(msg).encode()


@pytest.fixture
def parser() -> OxArchiveParser:
    return OxArchive().parser(V)


def book_msg(
    kind: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], time: int = 1714564800123
) -> bytes:
    levels = [[{"px": p, "sz": s, "n": 1} for p, s in bids], [{"px": p, "sz": s, "n": 2} for p, s in asks]]
    return enc(
        {
            "type": kind,
            "channel": "orderbook",
            "coin": "BTC",
            "symbol": "BTC",
            "data": {"coin": "BTC", "time": time, "levels": levels},
        }
    )


def test_orderbook_is_a_whole_book_every_time(parser: OxArchiveParser) -> None:
    first = parser.parse(book_msg("data", [("64000.0", "1.5")], [("64001.0", "0.7")]), R)
    assert first == [BookSnapshot(V, R, "BTC", 1714564800.123, [("64000.0", "1.5")], [("64001.0", "0.7")])]
    # the next message replaces it (never diffed): a level missing from it is gone
    second = parser.parse(book_msg("data", [("63999.0", "2")], [("64001.0", "0.5")], 1714564801000), R)
    assert second == [BookSnapshot(V, R, "BTC", 1714564801.0, [("63999.0", "2")], [("64001.0", "0.5")])]
    # replayed data is the same shape under another type
    assert parser.parse(book_msg("historical_data", [("1", "1")], []), R)[0].bids == [("1", "1")]  # type: ignore[attr-defined]


def test_trades_candles_acks_pong(parser: OxArchiveParser) -> None:
    trades = {
        "type": "data",
        "channel": "trades",
        "coin": "BTC",
        "symbol": "BTC",
        "data": [
            {
                "coin": "BTC",
                "side": "B",
                "px": "64000.5",
                "sz": "0.01",
                "time": 1714564800123,
                "hash": "0x1",
                "tid": 123456,
                "users": ["0xm", "0xt"],
            },
            {
                "coin": "BTC",
                "side": "A",
                "px": "64000.0",
                "sz": "0.02",
                "time": 1714564800124,
                "hash": "0x2",
                "tid": 123457,
            },
        ],
    }
    assert parser.parse(enc(trades), R) == [
        Trade(V, R, "BTC", 1714564800.123, "123456", "64000.5", "0.01", "buy"),
        Trade(V, R, "BTC", 1714564800.124, "123457", "64000.0", "0.02", "sell"),
    ]
    candle = {
        "type": "data",
        "channel": "candles",
        "coin": "BTC",
        "data": {
            "t": 1714564800000,
            "T": 1714564859999,
            "s": "BTC",
            "i": "1m",
            "o": "1",
            "c": "2",
            "h": "3",
            "l": "0.5",
            "v": "10",
            "n": 4,
        },
    }
    assert parser.parse(enc(candle), R) == [
        Candle(V, R, "BTC", None, 1714564800, 60, "1", "3", "0.5", "2", "10")
    ]
    ack = {
        "type": "subscribed",
        "channel": "orderbook",
        "coin": "BTC",
        "symbol": "BTC",
        "version": "2026-10-01",
    }
    assert parser.parse(enc(ack), R) == [Subscribed(V, R, V, {"orderbook": ["BTC"]})]
    parser.parse(enc({**ack, "channel": "trades"}), R)
    assert parser.parse(enc({**ack, "type": "unsubscribed"}), R) == [Subscribed(V, R, V, {"trades": ["BTC"]})]
    assert parser.parse(b'{"type":"pong"}', R) == [Heartbeat(V, R, V, None)]


def test_l4_rebuild_skips_diffs_older_than_the_snapshot(parser: OxArchiveParser) -> None:
    snap = {
        "type": "l4_snapshot",
        "channel": "l4_diffs",
        "coin": "BTC",
        "symbol": "BTC",
        "last_block_number": 123,
        "timestamp": 1714564800000,
        "data": {
            "bids": [
                {"oid": 1, "side": "B", "px": "64000", "sz": "0.5"},
                {"oid": 4, "side": "B", "px": "64000", "sz": "0.25"},
            ],
            "asks": [{"oid": 3, "side": "A", "px": "64001", "sz": "1"}],
        },
    }
    assert parser.parse(enc(snap), R) == [
        BookSnapshot(V, R, "BTC", 1714564800.0, [("64000", "0.75")], [("64001", "1")])
    ]
    batch = {
        "type": "l4_batch",
        "channel": "l4_diffs",
        "coin": "BTC",
        "symbol": "BTC",
        "data": [
            {
                "dt": "new",
                "oid": 9,
                "side": "A",
                "px": "64002",
                "sz": "9",
                "ts": 1714564800000,
            },  # in the snapshot
            {
                "dt": "new",
                "oid": 2,
                "side": "A",
                "px": "64001",
                "sz": "0.2",
                "user": "0x",
                "ts": 1714564800100,
            },
            {"dt": "update", "oid": 1, "side": "B", "sz": "0.3", "ts": 1714564800101},
            {"dt": "remove", "oid": 3, "side": "A", "ts": 1714564800102},
        ],
    }
    assert parser.parse(enc(batch), R) == [
        BookUpdate(
            V,
            R,
            "BTC",
            None,
            [change("ask", "64001", "1.2"), change("bid", "64000", "0.55"), change("ask", "64001", "0.2")],
        )
    ]


def test_gaps_errors_and_replay_messages(parser: OxArchiveParser) -> None:
    gap = {
        "type": "gap_detected",
        "channel": "orderbook",
        "coin": "BTC",
        "gap_start": 1,
        "gap_end": 300001,
        "duration_minutes": 5,
    }
    [ev] = parser.parse(enc(gap), R)
    assert ev == Gap(V, R, V, 1, 300001, "orderbook:BTC", kind="time")  # millisecond times, not numbers
    assert ev.describe() == "time gap from 00:00:00.001 to 00:05:00.001 (venue notice)"
    assert OxArchive().gap_products(ev, ["BTC", "ETH"]) == ["BTC"]  # type: ignore[arg-type]
    adapter = OxArchive()
    cases = {
        ("Invalid or missing API key", "forbidden"): "auth",
        ("Unknown Lighter symbol NOPE.", "invalid_parameter"): "command",
        ("Dropped ~120 live trades messages for BTC: you are reading too slowly", None): "transient",
        ("Stopped the trades stream for BTC: backlog. Re-subscribe to resume.", None): "reconnect",
        ("slow down", "rate_limited"): "transient",
    }
    for (message, code), expected in cases.items():
        msg = {"type": "error", "message": message, **({"error_code": code} if code else {})}
        [err] = parser.parse(enc(msg), R)
        assert adapter.classify_error(err.message) == expected, err.message  # type: ignore[attr-defined]
    started = {
        "type": "replay_started",
        "channels": ["orderbook"],
        "coin": "BTC",
        "start": 1000,
        "end": 9000,
        "speed": 10,
    }
    assert parser.parse(enc(started), R) == [
        ReplayState(V, R, V, "started", product="BTC", start=1.0, end=9.0, speed=10.0)
    ]
    assert parser.parse(b'{"type":"replay_paused","current_timestamp":4000}', R) == [
        ReplayState(V, R, V, "paused", current=4.0)
    ]


def test_frames_and_the_key_kept_out_of_urls() -> None:
    adapter = OxArchive(urls={"market": "wss://api.0xarchive.io/ws?apiKey=0xa_secret&version=2026-10-01"})
    assert adapter.display_url("market") == "wss://api.0xarchive.io/ws?apiKey=***&version=2026-10-01"
    assert [json.loads(f) for f in adapter.subscribe_frames("candles", ["BTC", "km:US500"])] == [
        {"op": "subscribe", "channel": "candles", "symbol": "BTC", "interval": "1m"},
        {"op": "subscribe", "channel": "candles", "symbol": "km:US500", "interval": "1m"},
    ]
    assert adapter.normalize_product("btc") == "BTC" and adapter.normalize_product("km:US500") == "km:US500"
    assert json.loads(PING) == {"op": "ping"}
    assert json.loads(adapter.replay_frames("BTC", ["orderbook", "trades"], 1.5, 2.5, 10)[0]) == {
        "op": "replay",
        "channels": ["orderbook", "trades"],
        "symbol": "BTC",
        "start": 1500,
        "end": 2500,
        "speed": 10,
    }
    assert json.loads(adapter.control_frames("seek", timestamp=2.0)[0]) == {
        "op": "replay.seek",
        "timestamp": 2000,
    }
    assert [json.loads(adapter.control_frames(a)[0]) for a in ("pause", "resume", "stop")] == [
        {"op": "replay.pause"},
        {"op": "replay.resume"},
        {"op": "replay.stop"},
    ]


# --- against the simulator ----------------------------------------------------------------------


def make_ox_sim(**kwargs: Any) -> OxArchiveSim:
    options: dict[str, Any] = dict(rate=400.0, depth=300, seed=7, timing=FAST, faults=Faults())
    options.update(kwargs)
    return OxArchiveSim(**options)


def ox_feed(sim: OxArchiveSim, channels: list[str], products: list[str] | None = None, **kw: Any) -> Feed:
    adapter = kw.pop("adapter", None) or OxArchive(
        urls={"market": sim.url}, credentials=sim.client_credentials()
    )
    return Feed(
        adapter,
        products or ["BTC", "ETH"],
        channels,
        policy=kw.pop("policy", None) or fast_policy(),
        seed=3,
        **kw,
    )


def top(book: ExactBook, n: int = 20) -> ExactBook:
    bids, asks = book
    return ({p: bids[p] for p in sorted(bids, reverse=True)[:n]}, {p: asks[p] for p in sorted(asks)[:n]})


async def quiet(feed: Feed, sim: OxArchiveSim) -> None:
    """Pause the market and wait for two whole books stamped after the pause."""
    sim.pause()
    paused = sim.clock()
    seen = 0

    def after(e: Event) -> bool:
        nonlocal seen
        seen += isinstance(e, BookSnapshot) and e.exch_ts is not None and e.exch_ts > paused + 0.02
        return seen >= 4

    await take_until(feed, after, 10)


async def test_orderbook_channel_shows_the_true_top_20() -> None:
    async with make_ox_sim() as sim:
        feed = ox_feed(sim, ["orderbook", "trades"])
        async with feed:
            await take_until(feed, lambda e: isinstance(e, Trade), 10)
            await quiet(feed, sim)
            for product in ("BTC", "ETH"):
                assert feed_book(feed, V, product) == top(sim_book(sim, product))


async def test_l4_book_rebuilt_after_a_gap_notice_equals_the_true_book() -> None:
    async with make_ox_sim(faults=Faults(gap_notice_after=0.4)) as sim:
        feed = ox_feed(sim, ["l4_diffs"])
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, BookResynced), 10)
            assert any(isinstance(e, Gap) and e.scope == "l4_diffs:BTC" for e in events)
            unsafe = [e for e in events if isinstance(e, BookUnsafe) and e.product == "BTC"]
            assert unsafe and unsafe[0].reason.startswith("time gap from ")  # ms times, not sequence numbers
            assert feed.store.health["0xarchive"].last_gap.text.startswith("time gap from ")  # type: ignore[union-attr]
            frames = [m for m in sim.all_connections[0].received if m.get("channel") == "l4_diffs"]
            assert [m["op"] for m in frames][-2:] == ["unsubscribe", "subscribe"]  # a new l4_snapshot
            sim.pause()
            await asyncio.sleep(0.1)
            await take_until(
                feed, lambda _e: all(feed.store.book(V, p).state == "ok" for p in ("BTC", "ETH")), 10
            )
            sim.resume()
            await take_until(feed, lambda e: isinstance(e, BookUpdate), 10)
            await quiet(feed, sim)
            for product in ("BTC", "ETH"):
                assert feed_book(feed, V, product) == sim_book(sim, product)


async def test_application_pings_are_sent_and_answered() -> None:
    async with make_ox_sim() as sim:
        adapter = OxArchive(urls={"market": sim.url}, credentials=sim.client_credentials())
        adapter.keepalive_every = 0.1  # type: ignore[misc]
        feed = ox_feed(sim, ["trades"], adapter=adapter)
        async with feed:
            await take_until(feed, lambda e: isinstance(e, Heartbeat), 10)  # a pong
            assert {"op": "ping"} in sim.all_connections[0].received


async def test_key_goes_in_a_header_and_is_never_shown() -> None:
    async with make_ox_sim(faults=Faults(refuse_auth=True)) as sim:
        credentials = sim.client_credentials()
        adapter = OxArchive(
            urls={"market": sim.url + "/ws?apiKey=" + credentials.secret.reveal()}, credentials=credentials
        )
        feed = ox_feed(sim, ["trades"], adapter=adapter)
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, GaveUp), 10)
        assert "OXARCHIVE_API_KEY" in events[-1].reason  # type: ignore[attr-defined]
        assert sim.stats["connections"] == 1  # an auth error is not retried
        shown = [e.url for e in events if isinstance(e, Connecting)]
        assert shown and all(credentials.secret.reveal() not in u and "apiKey=***" in u for u in shown)


async def test_replay_controls_pause_seek_speed_stop() -> None:
    async with make_ox_sim(warmup=1200) as sim:
        now = sim.clock()
        plan = ReplayPlan("BTC", ["orderbook", "trades"], now - 1800, now - 600, 20.0)
        feed = ox_feed(sim, ["orderbook", "trades"], ["BTC"], replay=plan)
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, ReplayState), 10)
            assert events[-1].state == "started" and events[-1].speed == 20.0  # type: ignore[attr-defined]
            events = await take_until(feed, lambda e: isinstance(e, BookSnapshot), 10)  # the replay_snapshot
            await take_until(feed, lambda e: isinstance(e, BookSnapshot), 10)  # then historical_data
            await feed.control("pause")
            events = await take_until(feed, lambda e: isinstance(e, ReplayState) and e.state == "paused", 10)
            paused_at = feed.store.replay.current if feed.store.replay else None
            assert paused_at is not None and plan.start <= paused_at <= plan.end
            await asyncio.sleep(0.3)
            assert feed.store.replay is not None and feed.store.replay.current == paused_at  # history waits
            await feed.control("resume")
            await take_until(feed, lambda e: isinstance(e, ReplayState) and e.state == "resumed", 10)
            await feed.control("seek", timestamp=plan.start + 60)
            await take_until(
                feed,
                lambda e: (
                    isinstance(e, BookSnapshot) and e.exch_ts is not None and e.exch_ts <= plan.start + 61
                ),
                10,
            )
            await feed.control("speed", speed=1000.0)
            await take_until(
                feed, lambda e: isinstance(e, ReplayState) and e.state == "started" and e.speed == 1000.0, 10
            )
            await feed.control("stop")
            await take_until(feed, lambda e: isinstance(e, ReplayState) and e.state == "stopped", 10)
            ops = [m["op"] for m in sim.all_connections[0].received]
            assert ops == ["replay", "replay.pause", "replay.resume", "replay.seek", "replay", "replay.stop"]
            assert not feed.store.health[V].latencies_ms  # historical times are not latencies


async def test_replay_runs_to_completion_and_survives_a_reconnect() -> None:
    async with make_ox_sim(warmup=1200, faults=Faults(close_code=1011, close_after_messages=15)) as sim:
        now = sim.clock()
        plan = ReplayPlan("BTC", ["orderbook", "trades"], now - 2400, now - 1200, 300.0)
        feed = ox_feed(sim, ["orderbook", "trades"], ["BTC"], replay=plan)
        async with feed:
            events = await take_until(
                feed, lambda e: isinstance(e, ReplayState) and e.state == "completed", 20
            )
            assert any(isinstance(e, Closed) and e.code == 1011 for e in events)
            replays = [m for c in sim.all_connections for m in c.received if m.get("op") == "replay"]
            assert len(replays) == 2 and replays[1]["start"] > replays[0]["start"]  # resumed where it stood
            assert all(not isinstance(e, Trade) or plan.start <= (e.exch_ts or 0) <= plan.end for e in events)


@pytest.mark.parametrize(
    "faults",
    [
        Faults(close_code=1011, close_after_messages=100),
        Faults(close_code=1006, close_after_seconds=0.5),
        Faults(malformed_rate=0.05, unknown_rate=0.05),
        Faults(stall_after_messages=80),
    ],
    ids=["close-1011", "cut-1006", "malformed-unknown", "stall"],
)
async def test_faults_are_survived(faults: Faults) -> None:
    async with make_ox_sim(faults=faults) as sim:
        feed = ox_feed(sim, ["orderbook", "trades"])
        async with feed:
            if faults.malformed_rate:
                await take_until(feed, lambda e: isinstance(e, Malformed), 10)
            else:
                events = await take_until(feed, lambda e: isinstance(e, BookResynced), 15)
                assert any(isinstance(e, BookUnsafe) and "connection lost" in e.reason for e in events)
            sim.faults.malformed_rate = sim.faults.unknown_rate = 0.0
            await quiet(feed, sim)
            assert feed_book(feed, V, "BTC") == top(sim_book(sim, "BTC"))


async def test_reconnects_are_logged_with_code_reason_retry_and_restored_subscriptions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The seed's rule, for every venue: log close code, reason, retry count and restored subscriptions."""
    caplog.set_level(logging.INFO, logger="tickerterm.stream.worker")
    async with make_ox_sim(faults=Faults(close_code=1011, close_after_messages=50)) as sim:
        feed = ox_feed(sim, ["orderbook"], ["BTC"])
        async with feed:
            await take_until(feed, lambda e: isinstance(e, BookResynced), 10)
    text = caplog.text
    assert "closed (code 1011: simulated close); retry 1" in text
    assert "restoring {'orderbook': ['BTC']} (retries so far 1, last close 1011)" in text
