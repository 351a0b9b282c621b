"""3. Screen: the dashboard in a real PTY (80x24 and 120x40) fed by the simulator in its own process at
full speed: redraws/s, CPU% of the dashboard process, bytes written to the terminal per second, and
key → screen latency (a product switch until the new product's ladder title is on the terminal)."""

from __future__ import annotations

import argparse
import os
import re
import select
import time
from pathlib import Path

from bench_e2e import start_sim
from bench_startup import read_until, spawn
from common import PY, write_results

MOVE = re.compile(rb"\x1b\[\d+;\d+H")  # Textual positions the cursor once per widget line it rewrites


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(master: int, seconds: float) -> bytes:
    out = b""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        ready, _, _ = select.select([master], [], [], 0.02)
        if ready:
            out += os.read(master, 1 << 20)
    return out


def measure(
    size: tuple[int, int], seconds: float, presses: int, extra: tuple[str, ...] = (), rate: float = 0.0
) -> dict[str, float]:
    sim, url = start_sim(rate)
    proc, master = spawn(
        [PY, "-m", "tickerterm", "--url", url, "--products", "BTC-USD,ETH-USD", *extra], *size
    )
    try:
        read_until(master, b"spread", 30)
        drain(master, 2.0)  # settle
        cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        out = drain(master, seconds)
        elapsed = time.perf_counter() - t0
        cpu = (cpu_seconds(proc.pid) - cpu0) / elapsed * 100
        latencies = []
        for i in range(presses):
            product = b"ETH-USD" if i % 2 == 0 else b"BTC-USD"
            start = time.perf_counter()
            os.write(master, b"n")
            read_until(master, b"Depth " + product, 5)
            latencies.append(time.perf_counter() - start)
            drain(master, 0.05)
        latencies.sort()
        return {
            "bytes_per_s": len(out) / elapsed,
            "line_writes_per_s": len(MOVE.findall(out)) / elapsed,
            "cpu_pct": cpu,
            "key_p50_ms": latencies[len(latencies) // 2] * 1000,
            "key_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        }
    finally:
        proc.terminate()
        proc.wait()
        os.close(master)
        sim.terminate()
        sim.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--presses", type=int, default=20)
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="simulator market steps/s (default 0: full speed, harsher than the simulator's own default, 50)",
    )
    args = ap.parse_args()
    rows = []
    extra = {}
    for size, flags in (((80, 24), ()), ((120, 40), ()), ((120, 40), ("--ansi",))):
        r = measure(size, args.seconds, args.presses, flags, args.rate)
        tag = f"{size[0]}x{size[1]}" + (" --ansi" if flags else "")
        extra[tag] = r
        rows += [
            (f"{tag} bytes to the terminal", f"{r['bytes_per_s'] / 1000:.1f} kB/s"),
            (f"{tag} widget lines rewritten/s", f"{r['line_writes_per_s']:.0f}"),
            (f"{tag} CPU of the dashboard", f"{r['cpu_pct']:.0f}%"),
            (f"{tag} key → screen p50 / p99", f"{r['key_p50_ms']:.0f} / {r['key_p99_ms']:.0f} ms"),
        ]
    rows.append(("simulator rate", "full speed" if not args.rate else f"{args.rate:g} market steps/s"))
    write_results("screen" if not args.rate else f"screen-rate-{args.rate:g}", rows, extra)


if __name__ == "__main__":
    main()
