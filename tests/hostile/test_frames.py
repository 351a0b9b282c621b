"""Frames no venue should send: each is a counted malformed frame, never a crash, a hang or a memory
hog, and the stream goes on. Every venue, the real command, a real socket."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import pytest

from tests.hostile.fake import MS, VENUES, FakeConnection, FakeVenue, command, keep_open, run

DEEP_ARRAY = "[" * 1200 + "]" * 1200  # 2.4 KB
DEEP_OBJECT = '{"a":' * 1500 + "1" + "}" * 1500


def headless(name: str, *extra: str) -> list[str]:
    v = VENUES[name]
    return ["--venue", name, "--products", v.product, "--channels", v.channels, "--headless", *extra]


def records(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("name", list(VENUES))
async def test_frames_nested_too_deep_are_malformed_and_the_stream_goes_on(name: str) -> None:
    v = VENUES[name]

    async def script(conn: FakeConnection) -> None:
        await conn.send(DEEP_ARRAY)
        await conn.send(DEEP_OBJECT)
        await conn.send(v.trade(1))
        await keep_open(conn)

    async with FakeVenue(script) as venue:
        code, out, err = await run(venue, headless(name, "--duration", "2.5"), env=v.secret_env)
    assert code == 0 and "Traceback" not in err, err
    got = records(out)
    malformed = [r for r in got if r["type"] == "malformed"]
    assert [r["reason"] for r in malformed] == ["nested too deeply", "nested too deeply"]
    kinds = [r["type"] for r in got]
    assert "trade" in kinds[kinds.index("malformed") :]  # after them, data still flows
    health = [r for r in got if r["type"] in ("closed", "gave_up")]
    assert not health  # the connection was never lost over it


def coinapi_trade_text(n: int, price: str) -> str:
    return (
        f'{{"time_exchange":"2024-05-01T12:00:00Z","time_coinapi":"2024-05-01T12:00:00Z","uuid":"u{n}",'
        f'"price":{price},"size":0.5,"taker_side":"BUY","symbol_id":"COINBASE_SPOT_BTC_USD","sequence":{n},'
        '"type":"trade"}'
    )


BAD_NUMBERS: dict[str, list[str]] = {
    # CoinAPI prices are JSON numbers: valid JSON, billions of digits once written out
    "coinapi": [coinapi_trade_text(1, "1e-999999999"), coinapi_trade_text(2, "9e999999999")],
    # Bitzoom times in milliseconds, 400 digits long
    "bitzoom": [
        json.dumps({**VENUES["bitzoom"].trade(1), "E": int("9" * 400), "T": int("9" * 400)}),
    ],
    # what float() takes and no venue means: underscores, spaces, other scripts' digits, inf, exponents
    "coinbase": [
        json.dumps(
            {
                **VENUES["coinbase"].trade(n),
                "events": [
                    {
                        "type": "update",
                        "trades": [
                            {
                                "trade_id": str(n),
                                "product_id": "BTC-USD",
                                "price": price,
                                "size": "1",
                                "side": "BUY",
                                "time": "2024-05-01T12:00:00Z",
                            }
                        ],
                    }
                ],
            }
        )
        for n, price in enumerate(["1_00.5", " 3 ", "١٢٣", "inf", "1e5", "0x10", "+5", "9" * 80], start=1)
    ],
    "coinbase-exchange": [
        json.dumps({**VENUES["coinbase-exchange"].trade(1), "price": "1_00.5"}),
        json.dumps({**VENUES["coinbase-exchange"].trade(2), "size": " 3 "}),
    ],
    "0xarchive": [
        json.dumps(
            {
                **VENUES["0xarchive"].trade(1),
                "data": [{"px": "٣", "sz": "1", "side": "B", "time": MS, "tid": 1}],
            }
        ),
        json.dumps(
            {
                **VENUES["0xarchive"].trade(2),
                "data": [{"px": "1", "sz": "1", "side": "B", "time": int("9" * 400), "tid": 2}],
            }
        ),
    ],
}


@pytest.mark.parametrize("name", list(BAD_NUMBERS))
async def test_numbers_no_price_needs_are_malformed_frames_not_crashes(name: str) -> None:
    v = VENUES[name]
    bad = BAD_NUMBERS[name]

    async def script(conn: FakeConnection) -> None:
        for frame in bad:
            await conn.send(frame)
        await conn.send(v.trade(99))
        await keep_open(conn)

    async with FakeVenue(script) as venue:
        started = time.monotonic()
        code, out, err = await run(venue, headless(name, "--duration", "2.5"), env=v.secret_env)
    assert code == 0 and "Traceback" not in err, err
    assert time.monotonic() - started < 15
    assert len(out) < 20_000  # no 56 MB line
    got = records(out)
    malformed = [r for r in got if r["type"] == "malformed"]
    assert sum(r["count"] for r in malformed) == len(bad), (
        malformed
    )  # a flood is reported, every frame counted
    trades = [r for r in got if r["type"] == "trade"]
    assert len(trades) == 1 and trades[0]["price"] in ("64000.5", "64000.5")  # only the good one


def depth_update(
    first: int, last: int, prev: int | None, symbol: str = "BTCUSDT", bid: str = "100.0"
) -> dict[str, Any]:
    return {
        "e": "depthUpdate", "E": MS, "T": MS, "s": symbol, "U": first, "u": last, "pu": prev,
        "b": [[bid, "2"]], "a": [],
    }  # fmt: skip


async def test_bitzoom_snapshot_that_is_not_json_is_retried_while_the_book_shows_resyncing() -> None:
    snapshot = {"lastUpdateId": 3, "bids": [["99.0", "1"]], "asks": [["101.0", "1"]]}
    bodies = [(200, b"<html>not json</html>"), (200, json.dumps(snapshot).encode())]

    def rest(path: str) -> tuple[int, bytes]:
        return bodies.pop(0) if len(bodies) > 1 else bodies[0]

    async def script(conn: FakeConnection) -> None:
        await conn.send(depth_update(1, 5, None))
        await asyncio.sleep(1.5)  # the first snapshot failed meanwhile; the retry comes after a backoff
        await conn.send(depth_update(6, 7, 5, bid="100.5"))
        await keep_open(conn)

    async with FakeVenue(script, rest) as venue:
        code, out, err = await run(
            venue,
            [
                "--venue",
                "bitzoom",
                "--products",
                "BTC-USDT",
                "--channels",
                "depth",
                "--headless",
                "--duration",
                "3.5",
            ],
        )
        asked = [p for p in venue.requests if "depth" in p]
    assert code == 0 and "Traceback" not in err, err
    got = [r for r in records(out) if r["type"] in ("malformed", "book_resyncing", "book")]
    assert got[0]["type"] == "malformed" and "book snapshot" in got[0]["reason"]
    assert got[1] == {**got[1], "type": "book_resyncing", "product": "BTC-USDT"}
    books = [r for r in got if r["type"] == "book"]
    assert (
        books[0]["state"] == "ok" and books[0]["bid"] == "100.0"
    )  # the buffered event, on the good snapshot
    assert books[-1]["state"] == "ok" and books[-1]["bid"] == "100.5"
    assert len(asked) == 2


async def test_bitzoom_data_for_symbols_never_subscribed_starts_nothing_and_sigterm_ends_at_once() -> None:
    others = ["ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "DOTUSDT", "LTCUSDT", "BNBUSDT"]

    async def script(conn: FakeConnection) -> None:
        for n, symbol in enumerate(others * 3):
            await conn.send(depth_update(n * 10, n * 10 + 5, None, symbol=symbol))
            await conn.send({**VENUES["bitzoom"].trade(n), "s": symbol})
        await keep_open(conn)

    def rest(path: str) -> tuple[int, bytes]:
        return 200, json.dumps({"lastUpdateId": 1, "bids": [], "asks": []}).encode()

    async with FakeVenue(script, rest) as venue:
        args = ["--venue", "bitzoom", "--products", "BTC-USDT", "--channels", "depth,trade", "--headless"]
        async with command(venue, args) as proc:
            await asyncio.sleep(2.0)
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            out, _ = await asyncio.wait_for(proc.communicate(), 10)
            took = time.monotonic() - started
        asked = list(venue.requests)
    assert proc.returncode == 0 and took < 2.5, (proc.returncode, took)
    assert not [p for p in asked if "BTCUSDT" not in p.upper()]  # no REST call for a symbol nobody asked for
    got = records(out.decode())
    assert not [r for r in got if r.get("product") not in (None, "BTC-USDT")]


async def test_a_frame_that_made_the_parser_raise_typeerror_no_longer_ends_the_stream() -> None:
    """``channel`` as a list made the Coinbase parser raise ``TypeError`` (not in its list of exceptions
    to convert): the connection task ended with no event at all and the screen said connected for ever."""
    v = VENUES["coinbase"]

    async def script(conn: FakeConnection) -> None:
        await conn.send('{"channel":[1],"sequence_num":5,"events":[]}')
        await conn.send('{"channel":"l2_data","sequence_num":{"a":1},"events":null}')
        await conn.send(v.trade(7))
        await keep_open(conn)

    async with FakeVenue(script) as venue:
        code, out, err = await run(venue, headless("coinbase", "--duration", "2.5"))
    assert code == 0 and "Traceback" not in err, err
    got = records(out)
    assert sum(r["count"] for r in got if r["type"] == "malformed") == 2
    assert [r["trade_id"] for r in got if r["type"] == "trade"] == ["1007"]
    assert not [r for r in got if r["type"] in ("closed", "gave_up", "retry")]
