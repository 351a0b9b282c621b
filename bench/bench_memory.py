"""4. Memory: RSS after 1M and 5M messages through parser + store (recorded frames, replayed)."""

from __future__ import annotations

import argparse
import gc

from common import recorded_frames, rss_kib, write_results

from tickerterm.core.store import Store
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--millions", type=float, nargs="+", default=[1, 5])
    ap.add_argument("--frames", type=int, default=20000)
    args = ap.parse_args()
    frames = recorded_frames(args.frames)
    adapter = CoinbaseAdvancedTrade()
    store = Store()
    checkpoints = sorted(int(m * 1_000_000) for m in args.millions)
    done = 0
    marks: list[tuple[int, int]] = [(0, rss_kib())]
    target = checkpoints.pop(0)
    while True:
        parser = adapter.parser("coinbase")  # a replay pass is a new connection: its sequence starts again
        for raw in frames:
            try:
                for ev in parser.parse(raw, 0.0):
                    store.apply(ev, "coinbase")
            except Exception:
                pass
            done += 1
            if done == target:
                gc.collect()
                marks.append((done, rss_kib()))
                if not checkpoints:
                    break
                target = checkpoints.pop(0)
        else:
            continue
        break
    rows = [(f"RSS after {n:,} messages", f"{kib / 1024:.1f} MiB") for n, kib in marks]
    if len(marks) >= 3:
        (n1, r1), (n2, r2) = marks[1], marks[-1]
        per_m = (r2 - r1) / 1024 / ((n2 - n1) / 1e6)
        rows.append(("growth per 1M messages after the first 1M", f"{per_m:.2f} MiB"))
    write_results("memory", rows, {"marks": marks})


if __name__ == "__main__":
    main()
