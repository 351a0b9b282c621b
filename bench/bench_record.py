"""Recording: what it costs end to end, whether the writer keeps up, and how fast a recording replays.

The same simulator blast (a prepared level2 cycle sent as fast as the socket takes it), the feed
headless, with and without ``--record`` to a SQLite file, alternated in one run; then the recording
replayed through the venue sessions as fast as it goes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_e2e import start_sim
from common import write_results

from tickerterm.api import open_recording
from tickerterm.core.events import Event
from tickerterm.core.store import Store
from tickerterm.record.replay import FileReplay
from tickerterm.stream.feed import Feed
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade

PRODUCTS = ["BTC-USD", "ETH-USD", "SOL-USD"]
CHANNELS = ["level2", "market_trades", "ticker"]


async def measure(url: str, seconds: float, record: str | None) -> dict[str, Any]:
    store = Store()
    counts = {"msgs": 0}

    def sink(events: list[Event]) -> None:
        counts["msgs"] += 1

    adapter = CoinbaseAdvancedTrade(urls={"market": url, "user": url})
    limit = 64 * 2**30  # the 2 GB default would stop a long run at blast rate (~80 MB/s)
    recorder = await open_recording(record, adapter, PRODUCTS, CHANNELS, limit) if record else None
    feed = Feed(adapter, PRODUCTS, CHANNELS, store=store, collect=False, sink=sink, recorder=recorder)
    async with feed:
        for _ in range(300):  # the books in (the simulator prepares its blast first)
            if all(store.book("coinbase", p).state == "ok" for p in PRODUCTS):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        counts["msgs"] = 0
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        msgs = counts["msgs"]
        behind = recorder.status(0.0).behind if recorder is not None else 0
    out: dict[str, Any] = {
        "msgs_per_s": msgs / elapsed,
        "behind_at_end": behind,
        "cpu_us_per_msg": cpu / msgs * 1e6 if msgs else None,  # the feed's process, its writer included
    }
    if recorder is not None:
        status = recorder.status(0.0)
        out.update(rows=status.rows, lost=status.lost, bytes=status.bytes)
    return out


async def replay_speed(path: str) -> dict[str, Any]:
    frames = 0

    def sink(events: list[Event]) -> None:
        pass

    replay = FileReplay(path, sink=sink, speed=0.0)
    import sqlite3

    with sqlite3.connect(path) as db:
        frames = db.execute(
            "SELECT sum(CASE WHEN kind = 'batch' THEN json_extract(arg, '$.n') ELSE 1 END) FROM journal"
        ).fetchone()[0]
    start = time.perf_counter()
    async with replay:
        await replay.wait_finished()
    elapsed = time.perf_counter() - start
    return {"frames": frames, "replay_msgs_per_s": frames / elapsed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--blast", type=int, default=20000)
    args = ap.parse_args()
    plain: list[dict[str, Any]] = []
    recorded: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        last = ""
        for i in range(args.runs):
            for record in (None, str(Path(tmp) / f"run{i}.db")):
                proc, url = start_sim(0, blast=args.blast)
                try:
                    result = asyncio.run(measure(url, args.seconds, record))
                finally:
                    proc.terminate()
                    proc.wait()
                (recorded if record else plain).append(result)
                if record:
                    # one run's file goes before the next: its dirty pages would otherwise be written
                    # back during the following runs and charge them for it (a falling trend)
                    if last:
                        for suffix in ("", "-wal", "-shm"):
                            Path(last + suffix).unlink(missing_ok=True)
                    last = record
        replay = asyncio.run(replay_speed(last))
    off = statistics.median(r["msgs_per_s"] for r in plain)
    on = statistics.median(r["msgs_per_s"] for r in recorded)
    # each run's cost against the run just before it: the machine's speed drifts between runs
    costs = [1 - r["msgs_per_s"] / p["msgs_per_s"] for p, r in zip(plain, recorded, strict=True)]
    rows = [
        (f"headless msgs/s, not recording (median of {args.runs})", f"{off:,.0f}"),
        ("headless msgs/s, recording to SQLite", f"{on:,.0f}"),
        (
            "cost of recording (median of each pair of runs; lowest, highest)",
            f"{statistics.median(costs) * 100:.1f}% ({min(costs) * 100:.1f}%, {max(costs) * 100:.1f}%)",
        ),
        (
            "the feed process's CPU per message, not recording / recording (medians; the writer's thread"
            " included: other tenants move it less than msgs/s)",
            f"{statistics.median(r['cpu_us_per_msg'] for r in plain):.1f} / "
            f"{statistics.median(r['cpu_us_per_msg'] for r in recorded):.1f} µs",
        ),
        (
            "rows waiting at the end of each recorded run",
            ", ".join(str(r["behind_at_end"]) for r in recorded),
        ),
        ("rows lost", ", ".join(str(r["lost"]) for r in recorded)),
        ("replay, as fast as it goes (frames/s)", f"{replay['replay_msgs_per_s']:,.0f}"),
    ]
    write_results("record", rows, {"plain": plain, "recorded": recorded, "replay": replay})


if __name__ == "__main__":
    main()
