"""What is untrusted is validated and bounded: numbers, memory (books, orders, candles, products), text
(length, secrets), logs. Units first, then a flood over a real socket."""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import fast_policy, take_until
from tests.hostile.fake import OSC_TITLE, FakeConnection, FakeVenue, keep_open
from tickerterm.core import l3
from tickerterm.core.boundary import ID_LIMIT, MAP_LIMIT, Boundary, secrets_of
from tickerterm.core.candles import PENDING, CandleSeries
from tickerterm.core.events import (
    BalanceUpdate,
    BookSnapshot,
    BookUnsafe,
    BookUpdate,
    Candle,
    Event,
    GaveUp,
    Subscribed,
    Trade,
    VenueError,
    change,
    value_of,
)
from tickerterm.core.safe import InertFormatter, Redactor, clip
from tickerterm.core.store import MAX_INTERVALS, Store
from tickerterm.stream.feed import Feed
from tickerterm.stream.worker import Connection
from tickerterm.venues.auth import ApiToken, CdpKey, ExchangeKey, Secret
from tickerterm.venues.base import redact_url
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade
from tickerterm.venues.fields import integer, millis, number, signed, whole

# --- numbers ---------------------------------------------------------------------------------------

NOT_DECIMALS = [
    "1_00.5",
    " 3 ",
    "3 ",
    "١٢٣",
    "inf",
    "nan",
    "Infinity",
    "1e5",
    "0x10",
    "+5",
    "-0",
    "",
    ".",
    "1.2.3",
]


@pytest.mark.parametrize("text", [*NOT_DECIMALS, "9" * 65])
def test_only_plain_decimal_text_is_a_price(text: str) -> None:
    with pytest.raises(ValueError):
        value_of(text)
    with pytest.raises(ValueError):
        change("bid", text, "1")
    with pytest.raises(ValueError):
        change("ask", "1", text)


@pytest.mark.parametrize("text", ["0", "0.5", "64000.50", "0.00000001", "1.", "9" * 64])
def test_plain_decimal_text_is_kept_as_sent(text: str) -> None:
    assert value_of(text) == float(text)
    assert change("bid", text, text)[1:3] == (text, text)


def test_signed_takes_one_leading_minus_only() -> None:
    assert signed("-0.5") == "-0.5" and signed("2") == "2"
    for bad in ("--1", "- 1", "−1", "+1", "1-"):
        with pytest.raises(ValueError):
            signed(bad)


@pytest.mark.parametrize(
    "value",
    [
        Decimal("1e-999999999"),
        Decimal("9e999999999"),
        Decimal("1e-41"),
        Decimal("1e41"),
        Decimal("1" * 65),
        2**64,
    ],
)
def test_json_numbers_out_of_range_are_refused_before_they_are_written_out(value: Any) -> None:
    with pytest.raises(ValueError):
        number(value)


def test_json_numbers_in_range_stay_exact() -> None:
    assert number(Decimal("95495.10")) == "95495.10" and number(Decimal("1E-8")) == "0.00000001"
    assert number(5) == "5"


@pytest.mark.parametrize("value", [2**63, -(2**63), int("9" * 400)])
def test_integers_past_64_bits_are_refused(value: int) -> None:
    with pytest.raises(ValueError):
        integer(value)
    with pytest.raises(ValueError):
        millis(value)


def test_integer_text() -> None:
    assert whole("1688998200") == 1688998200 and whole(7) == 7
    for bad in ("", "1.5", "١٢", "9" * 20, " 1"):
        with pytest.raises(ValueError):
            whole(bad)


# --- memory ----------------------------------------------------------------------------------------


def test_candle_volume_of_unread_bars_stays_bounded_and_exact() -> None:
    series = CandleSeries(60)
    for _ in range(10 * PENDING + 3):
        series.add_trade(1_714_564_800.0, "100.5", "0.001")
    bar = series.bars[-1]
    assert len(bar._pending) < PENDING  # headless never reads the volume: it must not pile up
    assert bar.volume == Decimal("0.001") * (10 * PENDING + 3)


def levels(n: int, start: int = 100) -> list[tuple[str, str]]:
    return [(str(start + i), "1") for i in range(n)]


def test_a_book_past_the_level_cap_is_unsafe_with_the_reason_not_cut_silently() -> None:
    from tickerterm.venues.coinbase import CoinbaseAdvancedTrade
    from tickerterm.venues.session import Wanted

    store = Store(max_levels=100)
    wanted = Wanted(CoinbaseAdvancedTrade(), ["P"])
    wanted.subs.add("level2", ["P"])
    session = CoinbaseAdvancedTrade.session_type(CoinbaseAdvancedTrade(), "market", "c", wanted, store)

    def through(event: Event) -> list[Event]:  # what the worker does with a frame's events
        out = session._integrity([event], event.recv_ts)
        store.apply_all(out)
        checked = session.applied(event.recv_ts)
        store.apply_all(checked)
        return out + checked

    reason = "more than 100 price levels on a side: levels past it were not kept"
    through(BookSnapshot("coinbase", 1.0, "P", None, levels(50), levels(50, 1000)))
    changes = [change("bid", str(200 + i), "1") for i in range(80)]  # new levels, not in the book
    out = through(BookUpdate("coinbase", 2.0, "P", None, changes))
    book = store.book("coinbase", "P")
    assert len(book.bids) == 100 and book.state != "ok"
    assert BookUnsafe("coinbase", 2.0, "c", "P", reason) in out and book.reason == reason
    # a snapshot that is too deep already: the best levels are kept, the book is not shown as good
    out = through(BookSnapshot("coinbase", 3.0, "P", None, levels(150), levels(10, 1000)))
    assert book.state != "ok" and len(book.bids) == 100 and book.best_bid == ("249", "1")
    assert BookUnsafe("coinbase", 3.0, "c", "P", reason) in out


def test_an_l3_book_past_the_order_cap_refuses_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(l3, "MAX_ORDERS", 3)
    book = l3.L3Book()
    for i in range(3):
        book.open(f"o{i}", "bid", "100", "1")
    with pytest.raises(ValueError, match="more than 3 open orders"):
        book.open("o3", "bid", "100", "1")  # the parser's frame is malformed: the book is rebuilt
    book.open("o1", "bid", "101", "1")  # replacing an order is not growth


def test_made_up_candle_intervals_and_balance_fields_do_not_grow_the_store() -> None:
    store = Store()
    for interval in range(60, 60 * (MAX_INTERVALS + 20), 60):
        store.apply(Candle("v", 1.0, "P", None, 0, interval, "1", "1", "1", "1", "1"))
    store.apply(Candle("v", 1.0, "P", None, 0, 0, "1", "1", "1", "1", "1"))  # 0 s: would divide by zero
    assert len(store.venue_candles[("v", "P")]) == MAX_INTERVALS
    for i in range(3):
        store.apply(BalanceUpdate("v", 1.0, None, {f"asset{i}-{j}": "1" for j in range(1000)}))
    assert len(store.balances["v"]) == 1024


# --- text ------------------------------------------------------------------------------------------


def test_the_boundary_drops_unsolicited_products_and_bounds_and_scrubs_text() -> None:
    boundary = Boundary(["s3cr3t/key+1"], accepts=lambda p: p == "BTC-USD")
    trade = Trade("v", 1.0, "BTC-USD", None, "x" * 10_000, "1", "1", "buy")
    other = Trade("v", 1.0, "DOGE-USD", None, "1", "1", "1", "buy")
    error = VenueError(
        "v", 1.0, "c", "bad key s3cr3t/key+1, s3cr3t%2Fkey%2B1 and s3cr3t%2Fkey%2B1 " + "y" * 9000
    )
    subs = Subscribed("v", 1.0, "c", {f"ch{i}": ["P"] * 1000 for i in range(1000)})
    out = boundary.admit([trade, other, error, subs])
    assert out == [trade, error, subs] and boundary.dropped == 1
    assert len(trade.trade_id) == ID_LIMIT
    assert error.message.startswith("bad key ***, *** and *** ") and len(error.message) == 500
    assert len(subs.subscriptions) == MAP_LIMIT and all(
        len(p) == MAP_LIMIT for p in subs.subscriptions.values()
    )


def test_every_secret_of_every_credential_kind_is_found() -> None:
    cdp = CdpKey(
        "organizations/o/apiKeys/k",
        Secret("-----BEGIN EC-----\nMHcCAQEEIAbcdefghijklmnop\n-----END EC-----"),
        "x",
    )
    exchange = ExchangeKey("id", Secret("c2VjcmV0"), Secret("passphrase1"), "x")
    token = ApiToken(Secret("tok-123456"), "x")
    assert secrets_of(cdp) == [cdp.private_key.reveal()]
    assert sorted(secrets_of(exchange)) == ["c2VjcmV0", "passphrase1"]
    assert secrets_of(token) == ["tok-123456"] and secrets_of(None) == []
    redact = Redactor(secrets_of(cdp))
    assert redact("echo MHcCAQEEIAbcdefghijklmnop here") == "echo *** here"  # one line of a PEM


def test_urls_are_shown_without_the_keys_in_them() -> None:
    assert (
        redact_url("wss://ws.coinapi.io/v1/APIKEY-73034021/?x=1") == "wss://ws.coinapi.io/v1/APIKEY-***/?x=1"
    )
    assert redact_url("wss://u:p@h/ws?apiKey=k&v=2") == "wss://***@h/ws?apiKey=***&v=2"


def test_clip() -> None:
    assert clip("abc", 5) == "abc" and clip("abcdef", 5) == "abcd…"


def test_log_lines_carry_no_control_and_stay_one_line() -> None:
    formatter = InertFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord(
        "x", logging.INFO, "f", 1, "closed: %s", (f"{OSC_TITLE}\nFAKE LINE\x9b",), None
    )
    assert formatter.format(record) == "INFO closed: ␛]2;pwned␇␊FAKE LINE\ufffd"


# --- over a real socket ----------------------------------------------------------------------------


def l2(seq: int, product: str, updates: list[dict[str, str]], kind: str = "update") -> dict[str, Any]:
    return {
        "channel": "l2_data", "client_id": "", "timestamp": "2024-05-01T12:00:00Z", "sequence_num": seq,
        "events": [{"type": kind, "product_id": product, "updates": updates}],
    }  # fmt: skip


def level(price: int, side: str = "bid") -> dict[str, str]:
    return {
        "side": side,
        "event_time": "2024-05-01T12:00:00Z",
        "price_level": str(price),
        "new_quantity": "1",
    }


async def test_a_flood_of_levels_and_of_other_products_stays_bounded_and_is_shown() -> None:
    """A venue floods new price levels past the cap and trades for 400 products nobody asked for: the
    book is UNSAFE with the reason and resubscribed (a fresh snapshot asked for), and nothing is kept
    for the other products."""

    async def script(conn: FakeConnection) -> None:
        await conn.send(l2(0, "BTC-USD", [level(100), level(100_000, "offer")], "snapshot"))
        seq = 1
        for chunk in range(5):
            await conn.send(l2(seq, "BTC-USD", [level(1000 + chunk * 100 + i) for i in range(100)]))
            seq += 1
        for n in range(400):
            trade = {"trade_id": str(n), "product_id": f"X{n}-USD", "price": "1", "size": "1", "side": "BUY",
                     "time": "2024-05-01T12:00:00Z"}  # fmt: skip
            frame = {"channel": "market_trades", "client_id": "", "timestamp": "2024-05-01T12:00:00Z",
                     "sequence_num": seq, "events": [{"type": "update", "trades": [trade]}]}  # fmt: skip
            await conn.send(frame)
            seq += 1
        await keep_open(conn)

    async with FakeVenue(script) as venue:
        store = Store(max_levels=300)
        adapter = CoinbaseAdvancedTrade(urls={"market": venue.url})
        feed = Feed(adapter, ["BTC-USD"], ["level2", "market_trades"], store=store, policy=fast_policy())
        async with feed:
            events = await take_until(feed, lambda e: isinstance(e, BookUnsafe), 10)
            await asyncio.sleep(0.5)
            received = [json.loads(m) for m in venue.connections[0].received]
        book = store.book("coinbase", "BTC-USD")
        assert len(book.bids) <= 300 and book.state in ("unsafe", "resyncing")
        assert events[-1].reason.startswith("more than 300 price levels on a side")
        assert [(m["type"], m["channel"]) for m in received if m["channel"] == "level2"][-2:] == [
            ("unsubscribe", "level2"),
            ("subscribe", "level2"),
        ]
        assert set(store.tapes) <= {("coinbase", "BTC-USD")} and not store.tickers
        assert store.health["coinbase"].unsolicited == 400


async def test_a_stream_that_dies_of_an_internal_error_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: Connection, session: Any, ws: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Connection, "_session", broken)

    async def script(conn: FakeConnection) -> None:
        await keep_open(conn)

    async with FakeVenue(script) as venue:
        feed = Feed(
            CoinbaseAdvancedTrade(urls={"market": venue.url}), ["BTC-USD"], ["level2"], policy=fast_policy()
        )
        async with feed:
            events: list[Event] = await take_until(feed, lambda e: isinstance(e, GaveUp), 10)
    assert events[-1].reason == "internal error: RuntimeError: a bug"  # type: ignore[attr-defined]
    assert not feed.running


def test_a_flood_of_malformed_frames_is_reported_a_few_times_a_second_and_every_frame_counted() -> None:
    from tickerterm.core.events import Malformed

    conn = Connection(CoinbaseAdvancedTrade(), "market", Store(), products=["BTC-USD"])
    conn.subs.add("market_trades", ["BTC-USD"])
    conn.start_session()
    emitted: list[Event] = []
    for n in range(500):  # the session's rate is on the times it is given: all in one instant here
        emitted += conn.receive(b"not json %d" % n, 1_714_564_800.0)
    reports = [e for e in emitted if isinstance(e, Malformed)]
    assert 1 <= len(reports) <= 10  # not 500 lines of NDJSON
    good = json.dumps({"channel": "heartbeats", "client_id": "", "timestamp": "2024-05-01T12:00:00Z",
                       "sequence_num": 0, "events": [{"heartbeat_counter": 1}]})  # fmt: skip
    tail = conn.receive(good.encode(), 1_714_564_800.0)
    assert not [e for e in tail if isinstance(e, Malformed)]  # not before the rate allows
    tail = conn.receive(good.encode(), 1_714_564_801.0)  # the held-back count goes out with a later frame
    counted = sum(e.count for e in [*reports, *tail] if isinstance(e, Malformed))
    assert counted == 500 and conn.health.malformed == 500


async def test_a_failure_beside_the_reader_ends_the_connection_visibly_and_it_reconnects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The clock (timers, the staleness watchdog) runs beside the socket reader: if it failed silently,
    the stream would go on without a watchdog. It ends the connection with the reason instead."""
    from tickerterm.core.events import Closed, RetryScheduled
    from tickerterm.venues.session import Session

    calls = {"n": 0}
    original = Session.timer

    def timer(self: Session, now: float) -> list[Event]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("a bug in a timer")
        return original(self, now)

    monkeypatch.setattr(Session, "timer", timer)

    async def script(conn: FakeConnection) -> None:
        await keep_open(conn, {"channel": "heartbeats", "client_id": "", "timestamp": "2024-05-01T12:00:00Z",
                               "sequence_num": 0, "events": [{"heartbeat_counter": 1}]})  # fmt: skip

    async with FakeVenue(script) as venue:
        feed = Feed(
            CoinbaseAdvancedTrade(urls={"market": venue.url}), ["BTC-USD"], ["level2"], policy=fast_policy()
        )
        async with feed:
            events: list[Event] = await take_until(feed, lambda e: isinstance(e, RetryScheduled), 10)
            closed = [e for e in events if isinstance(e, Closed)]
            assert closed[0].reason == "internal error in the clock: RuntimeError: a bug in a timer"
            await take_until(feed, lambda e: type(e).__name__ == "Connected", 10)
            assert feed.running
