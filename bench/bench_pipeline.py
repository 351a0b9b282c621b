"""1. Pipeline: parse + normalize + apply to the book/store, on recorded simulator frames.

Reports msgs/s and L2 updates/s (number conversion included: the book keys levels by float value),
the top-20 read time, and — when cryptofeed is installed (optional, never a dependency) — its Coinbase
handler on the same frames in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from common import median_of, recorded_frames, write_results

from tickerterm.core.store import Store
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade


def count_updates(frames: list[bytes]) -> int:
    n = 0
    for raw in frames:
        msg = json.loads(raw)
        if msg.get("channel") == "l2_data":
            for ev in msg["events"]:
                if ev["type"] == "update":
                    n += len(ev["updates"])
    return n


def tickerterm_pipeline(frames: list[bytes]) -> float:
    parser = CoinbaseAdvancedTrade().parser("coinbase")
    store = Store()
    apply = store.apply
    parse = parser.parse
    start = time.perf_counter()
    for raw in frames:
        for ev in parse(raw, 0.0):
            apply(ev, "coinbase")
    return time.perf_counter() - start


def top20_read(frames: list[bytes], reads: int = 2000) -> float:
    parser = CoinbaseAdvancedTrade().parser("coinbase")
    store = Store()
    for raw in frames:
        for ev in parser.parse(raw, 0.0):
            store.apply(ev, "coinbase")
    book = store.book("coinbase", "BTC-USD")
    start = time.perf_counter()
    for _ in range(reads):
        book.top(20)
    return (time.perf_counter() - start) / reads


def cryptofeed_pipeline(frames: list[bytes]) -> float | None:
    try:
        from cryptofeed.exchanges.coinbase import Coinbase  # type: ignore[import-not-found]
    except ImportError:
        return None
    import asyncio

    feed: Any = Coinbase(symbols=["BTC-USD", "ETH-USD", "SOL-USD"], channels=["l2_book"], callbacks={})
    handler = feed.message_handler

    async def go() -> float:
        start = time.perf_counter()
        for raw in frames:
            await handler(raw.decode(), None, 0.0)
        return time.perf_counter() - start

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    frames = recorded_frames(args.frames)
    updates = count_updates(frames)
    kinds: dict[str, int] = {}
    for raw in frames:
        ch = json.loads(raw).get("channel", "?")
        kinds[ch] = kinds.get(ch, 0) + 1
    seconds, runs = median_of(args.runs, lambda: tickerterm_pipeline(frames))
    top = median_of(args.runs, lambda: top20_read(frames))[0]
    rows = [
        ("frames", f"{len(frames):,} ({', '.join(f'{k} {v:,}' for k, v in sorted(kinds.items()))})"),
        ("L2 updates in them", f"{updates:,}"),
        (f"tickerterm msgs/s (median of {args.runs})", f"{len(frames) / seconds:,.0f}"),
        ("tickerterm L2 updates/s", f"{updates / seconds:,.0f}"),
        ("top-20 read", f"{top * 1e6:.1f} µs"),
    ]
    extra: dict[str, Any] = {"frames": len(frames), "updates": updates, "seconds": runs, "top20_s": top}
    cf = cryptofeed_pipeline(frames)
    if cf is not None:
        rows.append(("cryptofeed msgs/s (same run)", f"{len(frames) / cf:,.0f}"))
        rows.append(("ratio tickerterm / cryptofeed", f"{cf / seconds:.2f}x"))
        extra["cryptofeed_s"] = cf
    else:
        rows.append(("cryptofeed", "not installed (pip install cryptofeed to compare)"))
    write_results("pipeline", rows, extra)


if __name__ == "__main__":
    main()
