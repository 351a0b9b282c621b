"""2. End to end: the simulator (its own process, as fast as it can go) blasting over a real loopback
socket into the stream worker and store, with the real dashboard reading the store at 10 Hz.

Reports sustained msgs/s and L2 updates/s, and receive-to-store latency (the frame's venue timestamp,
stamped by the simulator as it sends, to the moment its events are in the store) p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
from typing import Any

from common import PY, recorded_frames, write_results

from tickerterm.core.events import BookUpdate, Event
from tickerterm.core.store import Store
from tickerterm.stream.feed import Feed
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade

L2 = b'{"channel":"l2_data",'


def start_sim(rate: float, port: int = 0, blast: int = 0) -> tuple[subprocess.Popen[str], str]:
    """The simulator in its own process; ``blast`` replays a prepared level2 cycle at socket speed."""
    blast_args = ["--blast", str(blast)] if blast else []
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "tickerterm",
            "sim",
            "--port",
            str(port),
            "--rate",
            str(rate),
            "--warmup",
            "0",
            *blast_args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    return proc, url


async def measure(url: str, seconds: float, ui: bool) -> dict[str, Any]:
    store = Store()
    latencies: list[float] = []
    counts = {"msgs": 0, "updates": 0}

    def sink(events: list[Event]) -> None:
        now = time.time()
        counts["msgs"] += 1
        for ev in events:
            if type(ev) is BookUpdate:
                counts["updates"] += len(ev.changes)
                if ev.exch_ts is not None and counts["msgs"] % 10 == 0:
                    latencies.append(now - ev.exch_ts)

    adapter = CoinbaseAdvancedTrade(urls={"market": url, "user": url})
    products = ["BTC-USD", "ETH-USD", "SOL-USD"]
    feed = Feed(
        adapter, products, ["level2", "market_trades", "ticker"], store=store, collect=False, sink=sink
    )

    async def body() -> None:
        async with feed:
            # warm-up: every book's snapshot in (the simulator prepares its blast first: 1-2 s)
            for _ in range(300):  # at most 15 s
                if all(store.book("coinbase", p).state == "ok" for p in products):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            counts["msgs"] = counts["updates"] = 0
            latencies.clear()
            start, cpu = time.perf_counter(), time.process_time()
            await asyncio.sleep(seconds)
            counts["elapsed"] = time.perf_counter() - start  # type: ignore[assignment]
            counts["cpu"] = time.process_time() - cpu  # type: ignore[assignment]

    if ui:
        from tickerterm.ui.app import TickertermApp

        channels = {"ticker": "ticker", "book": "level2", "trades": "market_trades", "candles": "candles"}

        class _Opened:
            async def __aenter__(self) -> Feed:
                return feed

            async def __aexit__(self, *exc: object) -> None:
                return None

        app = TickertermApp(
            lambda s: _Opened(),
            venue="coinbase",
            products=products,
            channels=channels,  # type: ignore[arg-type,return-value]
            store=store,
        )
        async with app.run_test(size=(120, 40)):
            await body()
        renders = app.ticks
    else:
        await body()
        renders = 0
    elapsed = counts.pop("elapsed")
    cpu = counts.pop("cpu")
    latencies.sort()
    n = len(latencies)
    return {
        "msgs_per_s": counts["msgs"] / elapsed,
        "cpu_us_per_msg": cpu / counts["msgs"] * 1e6 if counts["msgs"] else None,
        "cpu_share": cpu / elapsed,
        "updates_per_s": counts["updates"] / elapsed,
        "p50_ms": latencies[n // 2] * 1000 if n else None,
        "p99_ms": latencies[int(n * 0.99)] * 1000 if n else None,
        "ui_ticks": renders,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--blast",
        type=int,
        default=20000,
        help="simulator blast cycle (market steps); 0 = the live market at full speed",
    )
    ap.add_argument(
        "--floor-frames",
        type=int,
        default=20000,
        help="recorded frames for the floor loop, the machine's own yardstick taken in the same run",
    )
    args = ap.parse_args()
    from bench_pipeline import floor_loop  # the floor loop itself, not a copy of it

    # update frames only (snapshots are thousands of levels: not what the blast sends)
    updates = [f for f in recorded_frames(args.floor_frames) if f.startswith(L2) and len(f) < 20000]
    results = []
    floors: list[float] = []
    for _ in range(args.runs):
        floors.append(min(floor_loop(updates) for _ in range(3)) / len(updates) * 1e6)
        proc, url = start_sim(0, blast=args.blast)
        try:
            results.append(asyncio.run(measure(url, args.seconds, ui=True)))
        finally:
            proc.terminate()
            proc.wait()
    med = {
        k: statistics.median(r[k] for r in results)
        for k in ("msgs_per_s", "updates_per_s", "p50_ms", "p99_ms", "cpu_us_per_msg", "cpu_share")
    }
    rows = [
        (f"sustained msgs/s, UI at 10 Hz (median of {args.runs})", f"{med['msgs_per_s']:,.0f}"),
        ("L2 updates/s", f"{med['updates_per_s']:,.0f}"),
        (
            "client CPU per message (all its threads; less moved by other tenants than msgs/s)",
            f"{med['cpu_us_per_msg']:.1f} µs, {med['cpu_share']:.2f} of a core",
        ),
        (
            "the floor loop on this machine in the same run (typed decode and a dict entry per update, "
            "nothing else): µs per update frame",
            f"{statistics.median(floors):.1f} µs",
        ),
        (
            "client CPU per message / the floor's per frame (the machine's speed divided out)",
            f"{med['cpu_us_per_msg'] / statistics.median(floors):.2f}",
        ),
        ("venue send → store latency p50", f"{med['p50_ms']:.1f} ms"),
        ("venue send → store latency p99", f"{med['p99_ms']:.1f} ms"),
        ("UI render ticks in the window", f"{results[-1]['ui_ticks']}"),
    ]
    write_results("e2e", rows, {"runs": results, "floor_us_per_frame": floors})


if __name__ == "__main__":
    main()
