"""The relay (issue 20): venue messages in -> broker messages out per second, and the latency from the
relay receiving a frame to a viewer's store holding it (p50/p99), with 1, 5 and 20 viewers.

The simulator blasts a level2 cycle in its own process (as bench_e2e), the relay publishes to the
machine's NATS server (JetStream), and the viewers run in one other process (``--viewers-only``), each a
``RelayFeed`` with its own consumers. All on loopback, one machine: the two cores are shared by the
simulator, the relay, the broker and the viewers, so the figures are what one small box gives.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
from typing import Any

from bench_e2e import start_sim
from common import PY, write_results

from tickerterm.core.events import BookUpdate, Event
from tickerterm.core.relay import stream_names
from tickerterm.core.store import Store
from tickerterm.stream.feed import Feed
from tickerterm.stream.relay import Relay, RelayFeed
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade

NATS = "nats://127.0.0.1:4222"
PRODUCTS = ["BTC-USD", "ETH-USD", "SOL-USD"]
CHANNELS = ["level2", "market_trades", "ticker"]


async def viewers_only(n: int, root: str, stream: str, seconds: float, warmup: float) -> None:
    """``n`` viewers for ``seconds``: one JSON line of latencies (ms, relay receive -> viewer store)."""
    latencies: list[float] = []
    counts = {"events": 0}

    def sink(events: list[Event]) -> None:
        now = time.time()
        counts["events"] += len(events)
        for ev in events:
            if type(ev) is BookUpdate and counts["events"] % 7 == 0:
                latencies.append((now - ev.recv_ts) * 1000)

    feeds = [
        RelayFeed(NATS, CoinbaseAdvancedTrade(), PRODUCTS, CHANNELS, root=root, stream=stream, sink=sink)
        for _ in range(n)
    ]
    for f in feeds:
        await f.start()
    await asyncio.sleep(warmup)  # caught up
    latencies.clear()
    counts["events"] = 0
    await asyncio.sleep(seconds)
    events = counts["events"]
    for f in feeds:
        await f.stop()
    print(json.dumps({"events_per_s": events / seconds, "latencies": latencies}))


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


async def one_run(
    viewers: int, seconds: float, blast: int, warmup: float, separate: bool = False
) -> dict[str, Any]:
    proc, url = start_sim(0 if blast else 400, blast=blast)
    root, stream = stream_names(f"bench{random.getrandbits(24):06x}")
    relay = Relay(NATS, root=root, stream=stream, history=120, max_bytes=2**30)
    counts = {"frames": 0}

    def sink(events: list[Event]) -> None:
        counts["frames"] += 1
        relay.sink(events)

    adapter = CoinbaseAdvancedTrade(urls={"market": url, "user": url})
    feed = Feed(adapter, PRODUCTS, CHANNELS, store=Store(), collect=False, sink=sink)
    try:
        async with feed:
            await relay.start(feed.store)
            groups = [1] * viewers if separate else [viewers]  # viewers per process
            watchers = []
            for n in groups:
                args = [__file__, "--viewers-only", str(n), root, stream, str(seconds), str(warmup)]
                watchers.append(
                    await asyncio.create_subprocess_exec(PY, *args, stdout=asyncio.subprocess.PIPE)
                )
            await asyncio.sleep(warmup)
            frames0, published0, t0 = counts["frames"], relay.published, time.perf_counter()
            rss: list[float] = [rss_mib()]
            for _ in range(max(1, int(seconds / 5))):
                await asyncio.sleep(seconds / max(1, int(seconds / 5)))
                rss.append(rss_mib())
            elapsed = time.perf_counter() - t0
            frames, published = counts["frames"] - frames0, relay.published - published0
            backlog = len(relay.queue)
            latencies: list[float] = []
            events = 0.0
            for w in watchers:
                out, _ = await w.communicate()
                seen = json.loads(out.decode().strip().splitlines()[-1])
                latencies += seen["latencies"]
                events += seen["events_per_s"]
            latencies.sort()
        await relay.stop()
    finally:
        proc.terminate()
        proc.wait()
        import nats

        nc = await nats.connect(NATS)
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(stream)
        await nc.close()
    return {
        "viewers": viewers,
        "frames_in_per_s": frames / elapsed,
        "messages_out_per_s": published / elapsed,
        "backlog_at_end": backlog,
        "viewer_events_per_s": events,
        "p50_ms": latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else None,
        "rss_mib": rss,
        "processes": len(groups),
    }


def main() -> None:
    if sys.argv[1:2] == ["--viewers-only"]:
        n, root, stream, seconds, warmup = sys.argv[2:7]
        asyncio.run(viewers_only(int(n), root, stream, float(seconds), float(warmup)))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--viewers", type=int, nargs="+", default=[1, 5, 20])
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring (viewers caught up)")
    ap.add_argument("--separate", action="store_true", help="each viewer in a process of its own")
    ap.add_argument(
        "--blast",
        type=int,
        default=20000,
        help="the simulator's blast cycle; 0: its live market at 400 steps/s",
    )
    args = ap.parse_args()
    results = [
        asyncio.run(one_run(n, args.seconds, args.blast, args.warmup, args.separate)) for n in args.viewers
    ]
    rows = []
    for r in results:
        n = r["viewers"]
        rows += [
            (f"{n} viewer(s): venue frames in / s", f"{r['frames_in_per_s']:,.0f}"),
            (f"{n} viewer(s): broker messages out / s", f"{r['messages_out_per_s']:,.0f}"),
            (f"{n} viewer(s): viewer processes", f"{r['processes']}"),
            (
                f"{n} viewer(s): relay process RSS over the run",
                " → ".join(f"{x:.1f}" for x in r["rss_mib"]) + " MiB",
            ),
            (f"{n} viewer(s): relay backlog at the end", f"{r['backlog_at_end']:,}"),
            (
                f"{n} viewer(s): events into the viewers' stores / s (all viewers)",
                f"{r['viewer_events_per_s']:,.0f}",
            ),
            (
                f"{n} viewer(s): relay receive → viewer store p50 / p99",
                f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms" if r["p50_ms"] is not None else "no samples",
            ),
        ]
    write_results(
        ("relay" if args.blast else "relay-market") + ("-separate" if args.separate else ""),
        rows,
        {"runs": results, "median_out": statistics.median(r["messages_out_per_s"] for r in results)},
    )


if __name__ == "__main__":
    main()
