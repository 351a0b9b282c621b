"""The WebSocket read side alone: a client that only counts the blast simulator's messages, its CPU time
(user and system: the kernel's loopback copies are part of it) per message.

Two readers of the same connection code, alternated in one run: websockets' own (``recv()`` per
message) and ours (``FastConnection.recv_batch()``: every message of one socket read at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from bench_e2e import start_sim
from common import write_results
from websockets.asyncio.client import connect

from tickerterm.stream.wire import FastConnection


def _spin(us: float) -> None:
    """``us`` microseconds of the CPU, standing in for the session and store's work per message."""
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass


async def count(url: str, seconds: float, warmup: float, fast: bool, work: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"create_connection": FastConnection} if fast else {}
    async with connect(url, max_size=16 * 2**20, compression=None, **kwargs) as ws:
        products = ["BTC-USD", "ETH-USD", "SOL-USD"]
        await ws.send(json.dumps({"type": "subscribe", "product_ids": products, "channel": "level2"}))
        n = 0
        counting = False
        t_end = time.perf_counter() + warmup
        cpu0 = wall0 = 0.0
        batches = 0
        while True:
            if fast:
                assert isinstance(ws, FastConnection)
                got = len(await ws.recv_batch())
                if work:
                    _spin(work * got)
            else:
                await ws.recv(decode=False)
                got = 1
                if work:
                    _spin(work)
            n += got
            batches += 1
            now = time.perf_counter()
            if now >= t_end:
                if counting:
                    break
                counting, n, batches = True, 0, 0
                cpu0, wall0 = time.process_time(), now
                t_end = now + seconds
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        ws.transport.abort()  # the blasting simulator would answer a close only after its queue
    return {
        "msgs_per_s": n / wall,
        "cpu_us_per_msg": cpu / n * 1e6 - work,
        "msgs_per_read": n / batches,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--blast", type=int, default=20000)
    ap.add_argument(
        "--work", type=float, default=0.0, help="µs of CPU spent per message (the path beyond the socket)"
    )
    args = ap.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"websockets": [], "ours": []}
    for _ in range(args.rounds):
        for name in runs:
            proc, url = start_sim(0, blast=args.blast)
            try:
                runs[name].append(
                    asyncio.run(count(url, args.seconds, args.warmup, name == "ours", args.work))
                )
            finally:
                proc.terminate()
                proc.wait()
            print(name, runs[name][-1], flush=True)
    rows = []
    for name, results in runs.items():
        cpu = statistics.median(r["cpu_us_per_msg"] for r in results)
        rate = statistics.median(r["msgs_per_s"] for r in results)
        per_read = statistics.median(r["msgs_per_read"] for r in results)
        rows.append((f"{name}: CPU per message (median of {args.rounds})", f"{cpu:.2f} µs"))
        rows.append((f"{name}: msgs/s, messages per read", f"{rate:,.0f}, {per_read:.1f}"))
    write_results("transport", rows, runs)


if __name__ == "__main__":
    main()
