"""Record and replay: a simulator session with faults is recorded for every venue, replayed through the
same venue code, and the replayed NDJSON is the live NDJSON; the tables hold what the session saw; the
recording keeps no key; a writer that cannot keep up says so."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.conftest import FAST, fast_policy
from tickerterm.api import open_feed
from tickerterm.core.errors import ConfigError
from tickerterm.core.events import Event
from tickerterm.core.ndjson import dumps
from tickerterm.record.replay import MAX_BATCH, FileReplay, unpack_batch
from tickerterm.record.sqlite import DEFAULT_MAX_BYTES, PACK_BYTES, Recorder, parse_limits, parse_size
from tickerterm.sim.faults import Faults

CMD = [sys.executable, "-m", "tickerterm"]

CASES: dict[str, tuple[list[str], list[str]]] = {
    "coinbase": (["BTC-USD", "ETH-USD"], ["level2", "market_trades", "ticker"]),
    "coinbase-exchange": (["BTC-USD", "ETH-USD"], ["level2_batch", "matches", "ticker", "full"]),
    "bitzoom": (["BTC-USDT", "ETH-USDT"], ["depth@100ms", "trade", "ticker", "kline_1m"]),
    "coinapi": (["COINBASE:BTC-USD", "COINBASE:ETH-USD"], ["book", "trade", "quote"]),
    "0xarchive": (["BTC", "ETH"], ["orderbook", "trades"]),
}
SKIP = ('"type":"recording"', '"type":"replay"')


async def record_live(
    venue: str, path: Path, seconds: float = 2.5, ends: dict[str, Any] | None = None
) -> list[str]:
    """``venue``'s simulator with faults, recorded to ``path`` for ``seconds``: the NDJSON lines the live
    sink printed (``ends``: filled with each book's top and state as the feed stopped)."""
    ends = {} if ends is None else ends
    products, channels = CASES[venue]
    lines: list[str] = []
    feed_ref: list[Any] = []

    def sink(events: list[Event]) -> None:
        store = feed_ref[0].store if feed_ref else None
        for ev in events:
            line = dumps(ev, store)
            if line is not None:
                lines.append(line)

    faults = Faults(drop_rate=0.03, close_code=1011, close_after_seconds=1.0)
    options = dict(rate=300.0, depth=50, seed=11, timing=FAST, faults=faults)
    async with open_feed(
        venue,
        products,
        channels,
        sim=True,
        sim_options=options,
        policy=fast_policy(stale_after=3.0),
        sink=sink,
        record=str(path),
    ) as feed:
        feed_ref.append(feed)
        await asyncio.sleep(seconds)
    ends.update(
        {
            p: (b.best_bid, b.best_ask, b.state)
            for (v, p), b in feed_ref[0].store.books.items()
            if b.state != "empty"
        }
    )
    return lines


async def replay_all(path: Path) -> list[str]:
    lines: list[str] = []
    replay: FileReplay | None = None

    def sink(events: list[Event]) -> None:
        for ev in events:
            line = dumps(ev, replay.store if replay is not None else None)
            if line is not None:
                lines.append(line)

    replay = FileReplay(str(path), sink=sink, speed=0.0)
    async with replay:
        await replay.wait_finished()
    return lines


def kept(lines: list[str]) -> list[str]:
    return [line for line in lines if not any(s in line for s in SKIP)]


@pytest.mark.parametrize("venue", list(CASES))
async def test_a_replay_prints_what_the_live_run_printed(venue: str, tmp_path: Path) -> None:
    path = tmp_path / f"{venue}.db"
    ends: dict[str, Any] = {}
    live = kept(await record_live(venue, path, ends=ends))
    replayed = kept(await replay_all(path))
    types = [json.loads(line)["type"] for line in live]
    assert "closed" in types and "retry" in types, types  # the fault happened, live
    assert "trade" in types and "book" in types
    # the live sink stops with the feed; the replay also plays the closing that came after it
    assert replayed[: len(live)] == live
    with sqlite3.connect(path) as db:
        trades = db.execute(
            "SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT product, trade_id FROM trades)) "
            "FROM trades"
        ).fetchone()
        records = [json.loads(x) for x in live]
        live_trades = {(r["product"], r["trade_id"]) for r in records if r["type"] == "trade"}
        assert trades[0] == trades[1] == len(live_trades) > 0  # every trade once
        closes = db.execute("SELECT count(*) FROM health WHERE type = 'closed'").fetchone()[0]
        assert closes >= 1
        tops = db.execute("SELECT count(*) FROM top_of_book").fetchone()[0]
        assert tops > 0
        # each book's last top row is the top it had when the recording ended (the last look)
        assert ends
        for product, (bid, ask, state) in ends.items():
            last = db.execute(
                "SELECT bid, bid_size, ask, ask_size, state FROM top_of_book WHERE product = ? "
                "ORDER BY time DESC, rowid DESC LIMIT 1",
                (product,),
            ).fetchone()
            assert last == (*(bid or (None, None)), *(ask or (None, None)), state), product


def test_replay_from_a_minute_before_the_last_close(tmp_path: Path) -> None:
    path = tmp_path / "coinbase.db"
    asyncio.run(record_live("coinbase", path))
    with sqlite3.connect(path) as db:
        (close_at,) = db.execute("SELECT max(time) FROM health WHERE type = 'closed'").fetchone()
    result = subprocess.run(
        [*CMD, "replay", str(path), "--headless", "--before-gap"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    timed = [r["recv_ts"] for r in records if r["type"] not in ("replay",)]
    assert timed and min(timed) >= close_at - 60.0  # nothing before a minute before the close
    assert any(r["type"] == "closed" for r in records)


def test_bad_replay_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    for args in (
        [str(junk)],
        [str(tmp_path / "missing.db")],
    ):
        result = subprocess.run(
            [*CMD, "replay", *args, "--headless"], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr and "not a tickerterm recording" in result.stderr
    result = subprocess.run(
        [*CMD, "--sim", "--record-max", "lots"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "not a limit" in result.stderr


def test_sizes_and_ages() -> None:
    assert parse_size("500M") == 500 * 2**20 and parse_size("2G") == 2 * 2**30 and parse_size("1024") == 1024
    with pytest.raises(ValueError):
        parse_size("-1G")
    assert parse_limits("2G,6h") == (2 * 2**30, 6 * 3600.0)
    assert parse_limits("500M") == (500 * 2**20, 0.0)  # M: megabytes; m: minutes
    assert parse_limits("30m") == (DEFAULT_MAX_BYTES, 1800.0)
    for bad in ("lots", "0h", "-5m", "2X"):
        with pytest.raises(ValueError, match="not a limit"):
            parse_limits(bad)


def test_the_recording_stops_at_its_age_limit(tmp_path: Path) -> None:
    recorder = Recorder(str(tmp_path / "aged.db"), max_seconds=0.3)
    recorder.start()
    for i in range(100):
        recorder.record("c", "coinbase", float(i), "timer")
        time.sleep(0.01)
        if recorder.state == "full":
            break
    assert recorder.state == "full" and recorder.error == "age limit reached (0.3s)"
    recorder.record("c", "coinbase", 0.0, "timer")
    recorder.close()
    assert recorder.lost == 1


def test_the_recording_keeps_no_key_and_stops_at_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    recorder = Recorder(str(path), max_bytes=200_000, secrets=["SeCrEt-KEY-123"])
    recorder.start()
    frame = json.dumps({"type": "error", "message": "bad key SeCrEt-KEY-123"}).encode()
    for i in range(100_000):
        body = frame + b" " * 200  # a frame journaled alone (str or bytes) or with its read: all scrubbed
        if i % 3 == 2:
            recorder.frames("c", "coinbase", float(i), [body])
        else:
            recorder.record("c", "coinbase", float(i), "frame", None, body if i % 3 else body.decode())
        if i % 500 == 0:
            time.sleep(0.01)  # let the writer catch up: this test is about the limit, not the queue
        if recorder.state == "full":
            break
    assert recorder.state == "full"
    sent = i + 1
    for i in range(10):  # past the limit: not written, counted
        recorder.record("c", "coinbase", float(i), "frame", None, frame)
    recorder.close()
    # said, with the count: every row is written or lost (those waiting when the limit came, and these 10)
    assert recorder.state == "full" and recorder.lost >= 10 and recorder.rows + recorder.lost == sent + 10
    data = path.read_bytes() + (
        Path(str(path) + "-wal").read_bytes() if Path(str(path) + "-wal").exists() else b""
    )
    assert b"SeCrEt-KEY-123" not in data
    bodies = [entry[5] for entry in journal_entries(path)]  # batch rows are compressed: looked into
    assert len(bodies) == recorder.rows and all(b"bad key ***" in body for body in bodies)
    assert not any(b"SeCrEt-KEY-123" in body for body in bodies)
    status = recorder.status(1.0)
    assert (status.state, status.lost, status.limit) == ("full", recorder.lost, 200_000)


def journal_entries(path: Path) -> list[tuple[Any, ...]]:
    """Every journal entry of a recording, batch rows unpacked (and decompressed) as a replay reads them."""
    decode = msgspec.msgpack.Decoder().decode
    out: list[tuple[Any, ...]] = []
    with sqlite3.connect(path) as db:
        for _seq, conn, venue, at, kind, arg, body in db.execute("SELECT * FROM journal ORDER BY seq"):
            if kind == "batch":
                out += [tuple(entry) for entry in decode(unpack_batch(arg, body))]
            else:
                out.append((conn, venue, at, kind, arg, body))
    return out


def test_journal_batches_are_compressed_and_replay_as_they_were_written(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    recorder = Recorder(str(path))
    recorder.start()
    frames = [json.dumps({"n": n, "levels": [["64000.50", "0.25"]] * 20}).encode() for n in range(3000)]
    for n, frame in enumerate(frames):
        recorder.record("c", "coinbase", 1000.0 + n, "frame", None, frame)
    recorder.close()
    assert [(e[2], e[3], e[5]) for e in journal_entries(path)] == [
        (1000.0 + n, "frame", f) for n, f in enumerate(frames)
    ]
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT arg, length(body) FROM journal WHERE kind = 'batch'").fetchall()
    assert rows and all(json.loads(arg)["codec"] == "zstd" for arg, _ in rows)
    assert sum(size for _, size in rows) * 5 < sum(map(len, frames))  # JSON frames shrink 10x and more


def test_large_frames_are_packed_into_batches_a_replay_can_read(tmp_path: Path) -> None:
    """A batch holds at most 8 MiB of entries (a replay refuses more than 256 MiB inflated)."""
    path = tmp_path / "big.db"
    recorder = Recorder(str(path))
    recorder.start()
    frames = [json.dumps({"n": n, "pad": "x" * 2**20}).encode() for n in range(40)]  # 40 MiB
    for n, frame in enumerate(frames):
        recorder.record("c", "coinbase", 1000.0 + n, "frame", None, frame)
    recorder.close()
    assert [e[5] for e in journal_entries(path)] == frames
    with sqlite3.connect(path) as db:
        batches = db.execute("SELECT arg, body FROM journal WHERE kind = 'batch'").fetchall()
    inflated = [len(unpack_batch(arg, body)) for arg, body in batches]
    assert len(batches) >= 5 and max(inflated) <= PACK_BYTES, inflated


def test_a_recording_from_before_compression_still_replays(tmp_path: Path) -> None:
    """Batch rows written plain (no codec in ``arg``) by earlier versions read as before."""
    path = tmp_path / "old.db"
    asyncio.run(record_live("coinbase", path, seconds=2.0))
    want = journal_entries(path)
    live = kept(asyncio.run(replay_all(path)))
    with sqlite3.connect(path) as db:
        for seq, arg, body in db.execute(
            "SELECT seq, arg, body FROM journal WHERE kind = 'batch'"
        ).fetchall():
            meta = json.loads(arg)
            del meta["codec"]
            db.execute(
                "UPDATE journal SET arg = ?, body = ? WHERE seq = ?",
                (json.dumps(meta), unpack_batch(arg, body), seq),
            )
    assert journal_entries(path) == want
    assert kept(asyncio.run(replay_all(path))) == live


def test_a_damaged_journal_batch_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    asyncio.run(record_live("coinbase", path, seconds=2.0))
    with sqlite3.connect(path) as db:
        (seq,) = db.execute("SELECT max(seq) FROM journal WHERE kind = 'batch'").fetchone()
        db.execute("UPDATE journal SET body = ? WHERE seq = ?", (b"\x28\xb5\x2f\xfd" + b"\xff" * 64, seq))
    result = subprocess.run(
        [*CMD, "replay", str(path), "--headless"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "journal batch" in result.stderr


def test_a_batch_that_claims_to_inflate_past_the_limit_is_refused_unread() -> None:
    import zstandard

    bomb = zstandard.ZstdCompressor(level=1).compress(b"\0" * (MAX_BATCH + 1))
    with pytest.raises(ConfigError, match="claims"):
        unpack_batch(json.dumps({"codec": "zstd"}), bomb)


def test_a_writer_that_falls_behind_counts_what_it_lost(tmp_path: Path) -> None:
    recorder = Recorder(str(tmp_path / "slow.db"), queue_rows=10)
    # not started: nothing drains the queue, so it fills like a writer that cannot keep up
    for i in range(50):
        recorder.record("c", "coinbase", float(i), "timer")
    assert recorder.lost == 40 and recorder.status(0.0).behind == 10
    # a socket read's frames are one item for the writer, and count as the rows they are
    recorder = Recorder(str(tmp_path / "slow2.db"), queue_rows=10)
    recorder.record("c", "coinbase", 0.0, "timer")
    recorder.frames("c", "coinbase", 1.0, [b"1", b"2", b"3", b"4"])
    assert recorder.lost == 0 and recorder.status(0.0).behind == 5
    recorder.frames("c", "coinbase", 2.0, [b"5"] * 6)  # no room for all six: none is half kept
    assert recorder.lost == 6 and recorder.status(0.0).behind == 5
    recorder.frames("c", "coinbase", 3.0, [b"6"] * 5)
    assert recorder.lost == 6 and recorder.status(0.0).behind == 10


async def test_the_dashboard_replays_a_recording_with_the_replay_keys(tmp_path: Path) -> None:
    from tests.ui_support import until
    from tickerterm.ui.app import TickertermApp

    path = tmp_path / "coinbase.db"
    await record_live("coinbase", path)
    channels = {"ticker": "ticker", "book": "level2", "trades": "market_trades"}
    app = TickertermApp(
        lambda store: FileReplay(str(path), store=store, collect=False, speed=0.25),
        venue="coinbase",
        products=["BTC-USD", "ETH-USD"],
        channels=channels,
        replay=True,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.store.book("coinbase", "BTC-USD").state == "ok")
        await until(pilot, lambda: "REPLAY 20" in str(app.sub_title) and "x0.25" in str(app.sub_title))
        await pilot.press("space")
        await until(pilot, lambda: app.store.replay is not None and app.store.replay.state == "paused")
        await until(pilot, lambda: "PAUSED" in str(app.sub_title))
        at = app.store.replay.current  # type: ignore[union-attr]
        await pilot.pause(0.3)
        assert app.store.replay.current == at  # type: ignore[union-attr]  # history waits
        await pilot.press("plus")  # twice as fast, still paused until space
        await pilot.press("space")
        await until(pilot, lambda: app.store.replay.current != at)  # type: ignore[union-attr]
        await until(pilot, lambda: " x0.5" in str(app.sub_title))


def test_the_readmes_queries_run_on_a_recording(tmp_path: Path) -> None:
    """Every SQL block of the README's recording section, on a real recording: they run, and the volume
    per minute adds up to the trades."""
    import re

    path = tmp_path / "coinbase.db"
    asyncio.run(record_live("coinbase", path))
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Recording and replay", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(blocks) == 3
    with sqlite3.connect(path) as db:
        results = [db.execute(q).fetchall() for block in blocks for q in block.split(";") if q.strip()]
        total = db.execute("SELECT SUM(CAST(size AS REAL)) FROM trades").fetchone()[0]
    recent, per_minute, troubles, unsafe = results
    assert recent and per_minute and troubles and unsafe
    assert abs(sum(row[3] for row in per_minute) - total) < 1e-9
    assert any(row[2] == "closed" for row in troubles)
    assert all(row[3] is None or row[3] >= 0 for row in unsafe)


async def test_r_starts_and_stops_a_recording_that_replays_with_whole_books(tmp_path: Path) -> None:
    """Started mid-session, a recording would begin with updates to books it never saw, and with
    sequence numbers its replay cannot know: the connection reconnects when it starts, so the recording
    starts with a new connection and its replay shows whole books from the first line."""
    from tests.ui_support import until
    from tickerterm.api import open_recording
    from tickerterm.ui.app import TickertermApp

    path = tmp_path / "mid.db"
    options: dict[str, Any] = dict(rate=300.0, depth=50, seed=3, timing=FAST, faults=Faults())

    def opener(store: Any) -> Any:
        return open_feed(
            "coinbase",
            ["BTC-USD", "ETH-USD"],
            ["level2", "market_trades", "ticker"],
            sim=True,
            sim_options=options,
            policy=fast_policy(stale_after=3.0),
            collect=False,
            store=store,
        )

    async def recorder(feed: Any) -> Any:
        return await open_recording(str(path), feed.adapter, feed.products, None)

    channels = {"ticker": "ticker", "book": "level2", "trades": "market_trades"}
    app = TickertermApp(
        opener, recorder=recorder, venue="coinbase", products=["BTC-USD", "ETH-USD"], channels=channels
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.store.book("coinbase", "BTC-USD").state == "ok")
        await pilot.press("r")
        await until(pilot, lambda: "REC mid.db" in str(app.sub_title))
        from tests.test_ui import text_of
        from tickerterm.ui.widgets import HealthPanel

        await until(pilot, lambda: "recording on" in text_of(app.query_one(HealthPanel)))
        await until(pilot, lambda: app.store.book("coinbase", "BTC-USD").state == "ok")  # rebuilt
        await pilot.pause(1.0)
        await pilot.press("r")
        await until(pilot, lambda: app.store.recording is not None and app.store.recording.state == "closed")
        await until(pilot, lambda: "REC" not in str(app.sub_title))
    replayed = [json.loads(line) for line in await replay_all(path)]
    books = [r for r in replayed if r["type"] == "book" and r["product"] == "BTC-USD"]
    assert books and books[0]["snapshot"] and books[0]["state"] == "ok"  # whole from the first line
    assert books[-1]["state"] == "ok" or books[-1]["reason"].startswith("connection lost")
    assert not [r for r in replayed if r["type"] in ("gap", "malformed")]
    retry = next(r for r in replayed if r["type"] == "retry")  # the live reconnect, said in the recording
    assert retry["reason"] == "recording started: a new connection to record from" and retry["delay"] == 0


async def test_before_the_gap_plays_again_from_a_minute_before_the_last_close(tmp_path: Path) -> None:
    path = tmp_path / "coinbase.db"
    await record_live("coinbase", path)
    seen: list[str] = []

    def sink(events: list[Event]) -> None:
        seen.extend(type(e).__name__ for e in events)

    replay = FileReplay(str(path), sink=sink, speed=1.0)
    async with replay:
        for _ in range(100):
            if "Closed" in seen:
                break
            await asyncio.sleep(0.05)
        first = seen.count("Connecting")
        await replay.control("before_gap")  # the recording is shorter than a minute: from its start
        for _ in range(100):
            if seen.count("Connecting") > first:
                break
            await asyncio.sleep(0.05)
        assert seen.count("Connecting") > first


def test_a_book_that_changes_then_goes_quiet_gets_its_last_top_written() -> None:
    """Top-of-book rows come from looking at the books (``flush``, every ``FLUSH_EVERY`` s), at most
    one per ``TOP_EVERY``: a change inside the window followed by silence is written at the next look
    after it, with the time of the frame that made it; book frames themselves make no rows."""
    from tickerterm.core.events import BookSnapshot, BookUpdate, change
    from tickerterm.core.store import Store
    from tickerterm.record.rows import TOP_EVERY, Rows

    rows: list[tuple[str, tuple[Any, ...]]] = []
    builder = Rows(lambda table, row: rows.append((table, row)))
    store = Store()

    def apply(ev: Event) -> None:
        store.apply(ev)
        builder.add([ev], store)

    def tops() -> list[tuple[Any, ...]]:
        return [(t[2], *t[3:7]) for table, t in rows if table == "top_of_book"]

    apply(BookSnapshot("coinbase", 100.0, "BTC-USD", None, [("10", "1")], [("11", "2")]))
    assert tops() == []  # the frame makes none
    builder.flush(store, 100.01)
    assert tops() == [(100.0, "10", "1", "11", "2")]
    apply(BookUpdate("coinbase", 100.05, "BTC-USD", None, [change("bid", "10.5", "3")]))
    builder.flush(store, 100.01 + TOP_EVERY / 2)
    assert len(tops()) == 1  # inside the window: not yet
    builder.flush(store, 101.0)
    assert tops() == [(100.0, "10", "1", "11", "2"), (100.05, "10.5", "3", "11", "2")]
    builder.flush(store, 101.05)  # written once
    assert len(tops()) == 2
    apply(BookUpdate("coinbase", 101.1, "BTC-USD", None, [change("ask", "10.9", "1")]))
    builder.flush(store, 101.15)
    assert len(tops()) == 2  # the top was read at 101.0: less than a window ago
    builder.flush(store, math.inf)  # the recording ends: every change is due
    assert tops()[-1] == (101.1, "10.5", "3", "10.9", "1")


def test_a_top_that_stands_still_is_looked_at_once_per_window_and_its_change_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Frames deep in a book leave its top alone: the rows builder reads no top on a frame and a top
    once per ``TOP_EVERY`` at most, writes no row while it stands, and writes the change that comes
    later at the next look, with that frame's time and the top as it then stands."""
    from tickerterm.core.book import OrderBook
    from tickerterm.core.events import BookSnapshot, BookUpdate, change
    from tickerterm.core.store import Store
    from tickerterm.record.rows import Rows

    rows: list[tuple[str, tuple[Any, ...]]] = []
    builder = Rows(lambda table, row: rows.append((table, row)))
    store = Store()
    looks = 0

    def counted(best: Any) -> property:
        def read(book: OrderBook) -> Any:
            nonlocal looks
            looks += 1
            return best.fget(book)

        return property(read)

    def apply(ev: Event) -> None:
        store.apply(ev)
        builder.add([ev], store)

    apply(BookSnapshot("coinbase", 100.0, "BTC-USD", None, [("10", "1"), ("5", "1")], [("11", "2")]))
    builder.flush(store, 100.0)
    monkeypatch.setattr(OrderBook, "best_bid", counted(OrderBook.best_bid))
    monkeypatch.setattr(OrderBook, "best_ask", counted(OrderBook.best_ask))
    for i in range(200):  # 2 s of frames 10 ms apart, all at a level far from the top
        apply(BookUpdate("coinbase", 100.01 + i * 0.01, "BTC-USD", None, [change("bid", "5", str(i + 2))]))
    assert looks == 0  # no frame looks at the top
    for i in range(20):  # the feed's looks, a tenth of a second apart
        builder.flush(store, 100.1 + i * 0.1)
    assert looks <= 2 * 11  # two sides a look, a look a window
    assert len([1 for table, _ in rows if table == "top_of_book"]) == 1
    apply(BookUpdate("coinbase", 102.02, "BTC-USD", None, [change("bid", "10.5", "3")]))
    apply(BookUpdate("coinbase", 102.05, "BTC-USD", None, [change("bid", "5", "9")]))
    builder.flush(store, 102.1)
    tops = [row for table, row in rows if table == "top_of_book"]
    assert [(t[2], *t[3:7]) for t in tops][-1] == (102.05, "10.5", "3", "11", "2")


def test_the_rows_builder_writes_the_books_of_its_venue_only() -> None:
    """A store may hold several venues' books (one store, several feeds): each feed's recording writes
    the rows of its own venue's books."""
    from tickerterm.core.events import BookSnapshot
    from tickerterm.core.store import Store
    from tickerterm.record.rows import Rows

    rows: list[tuple[str, tuple[Any, ...]]] = []
    builder = Rows(lambda table, row: rows.append((table, row)))
    store = Store()
    store.apply(BookSnapshot("coinbase", 100.0, "BTC-USD", None, [("10", "1")], [("11", "2")]))
    store.apply(BookSnapshot("bitzoom", 100.0, "BTCUSDT", None, [("20", "1")], [("21", "2")]))
    builder.flush(store, 100.5, "bitzoom")
    assert {(t[0], t[1]) for table, t in rows if table == "top_of_book"} == {("bitzoom", "BTCUSDT")}
    assert {(t[0], t[1]) for table, t in rows if table == "book_snapshots"} == {("bitzoom", "BTCUSDT")}


async def test_the_feed_flushes_the_recorders_waiting_rows(tmp_path: Path) -> None:
    """The feed calls ``flush`` on its recorder while recording (the books' top rows come from it), and
    once more as it stops."""
    calls: list[float] = []
    async with open_feed(
        "coinbase", ["BTC-USD"], ["ticker"], sim=True, record=str(tmp_path / "r.db")
    ) as feed:
        assert feed.recorder is not None
        real = feed.recorder.flush
        feed.recorder.flush = lambda store, now, venue: (calls.append(now), real(store, now, venue))  # type: ignore[method-assign]
        await asyncio.sleep(1.2)
    assert len(calls) >= 6  # a look every FLUSH_EVERY
    assert calls[-1] == math.inf  # and the last one as the feed stopped, every change due


async def test_a_failing_look_at_the_books_does_not_end_the_recordings_reports(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A rows builder that raises (a bug) is logged once; the recording's status events go on."""
    seen: list[Any] = []

    def sink(events: list[Event]) -> None:
        seen.extend(ev for ev in events if type(ev).__name__ == "Recording")

    async with open_feed(
        "coinbase", ["BTC-USD"], ["ticker"], sim=True, record=str(tmp_path / "r.db"), sink=sink
    ) as feed:
        assert feed.recorder is not None

        def broken(store: Any, now: float, venue: Any) -> None:
            raise RuntimeError("boom")

        feed.recorder.flush = broken  # type: ignore[method-assign]
        await asyncio.sleep(0.5)
        before = len(seen)
        feed.recorder.lost += 1  # a change of counts the next report must say
        await asyncio.sleep(0.5)
        assert len(seen) > before
    assert [r.message for r in caplog.records].count("recording the books' rows failed") == 1


async def test_the_library_stream_records_what_it_yields(tmp_path: Path) -> None:
    import contextlib

    import tickerterm

    path = tmp_path / "lib.db"
    trades: list[str] = []
    events = tickerterm.stream(
        "coinbase", ["BTC-USD"], ["market_trades"], sim=True, sim_options={"rate": 300.0}, record=str(path)
    )
    async with contextlib.aclosing(events):  # leaving it closes the feed and the recording at once
        async for ev in events:
            if ev.type == "trade":
                trades.append(ev.trade_id)  # type: ignore[attr-defined]
            if len(trades) >= 5:
                break
    with sqlite3.connect(path) as db:
        stored = {row[0] for row in db.execute("SELECT trade_id FROM trades")}
    assert len(trades) == 5 and set(trades) <= stored
