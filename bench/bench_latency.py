"""3b. Message → bytes on the terminal: the time from the venue sending a book change to its text
reaching the terminal.

The simulator runs in this process (so the moment a marker frame leaves it is known); the dashboard runs
in a real PTY at 120x40 and connects to it. The market runs at ``--rate`` steps a second (background
load); every ``--every`` seconds the best bid of BTC-USD gets a unique size, pushed to the client at
once, and the PTY output is read until that size's text appears. Both clocks are this machine's
``perf_counter``. The dashboard draws at most ``fps`` times a second, so the wait for the next frame is
part of the figure (up to 100 ms at 10 Hz).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import os
import statistics
import time

from bench_startup import spawn
from common import PY, write_results

from tickerterm.sim.coinbase import CoinbaseSim
from tickerterm.sim.market import Step


async def measure(rate: float, samples: int, every: float, fps: float) -> list[float]:
    async with CoinbaseSim(rate=rate, seed=3, depth=300, warmup=600) as sim:
        proc, master = spawn(
            [PY, "-m", "tickerterm", "--url", sim.url, "--products", "BTC-USD,ETH-USD", "--fps", str(fps)],
            120,
            40,
        )
        loop = asyncio.get_running_loop()
        seen = bytearray()
        arrived = asyncio.Event()

        def readable() -> None:
            try:
                seen.extend(os.read(master, 1 << 20))
            except OSError:
                loop.remove_reader(master)
                return
            arrived.set()

        loop.add_reader(master, readable)
        try:
            async with asyncio.timeout(30):
                while b"spread" not in seen:
                    arrived.clear()
                    await arrived.wait()
            await asyncio.sleep(1.0)
            market = sim.market("BTC-USD")
            latencies = []
            lost = 0
            for i in range(samples):
                best = heapq.nlargest(8, market.bids)[-1]  # 8th best: shown, and rarely touched by the flow
                lots = 77_000_000 + i * 1013  # 0.77000000 + i: a size nobody else has
                market.bids[best] = lots
                text = market.size_text(lots).encode()
                del seen[:]
                step = Step("BTC-USD", changes=[("bid", market.price_text(best), market.size_text(lots))])
                start = time.perf_counter()
                for conn in sim.connections:
                    conn.on_step(step)
                    conn.flush_l2()  # type: ignore[attr-defined]
                try:
                    async with asyncio.timeout(2):
                        while text not in seen:
                            arrived.clear()
                            await arrived.wait()
                except TimeoutError:
                    lost += 1  # the market changed that level again before a frame showed it
                else:
                    latencies.append(time.perf_counter() - start)
                await asyncio.sleep(every)
            if lost:
                print(f"{lost} markers overwritten by the market before a frame", flush=True)
            return latencies
        finally:
            loop.remove_reader(master)
            proc.terminate()
            proc.wait()
            os.close(master)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument(
        "--every", type=float, default=0.137, help="seconds between markers (not a frame multiple)"
    )
    ap.add_argument("--rate", type=float, default=400.0, help="background market steps per second")
    args = ap.parse_args()
    rows = []
    extra = {}
    for fps in (10.0, 30.0):
        lat = asyncio.run(measure(args.rate, args.samples, args.every, fps))
        extra[f"fps{fps:g}"] = lat
        rows.append(
            (
                f"message → bytes at {fps:g} fps, p50 / p99 "
                f"({args.samples} markers, market at {args.rate:g} steps/s)",
                f"{pct(lat, 0.5):.0f} / {pct(lat, 0.99):.0f} ms (median {statistics.median(lat) * 1000:.0f})",
            )
        )
    write_results("latency", rows, extra)


if __name__ == "__main__":
    main()
