"""Shared benchmark helpers: machine description, recorded simulator frames, results table."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("TICKERTERM_BENCH_DATA", ROOT / "bench" / ".data"))
RESULTS = Path(os.environ.get("TICKERTERM_BENCH_RESULTS", ROOT / "bench" / "results"))


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
    }


async def _record(n: int, rate: float, products: list[str], channels: list[str]) -> list[bytes]:
    from websockets.asyncio.client import connect

    from tickerterm.sim.coinbase import CoinbaseSim

    frames: list[bytes] = []
    async with (
        CoinbaseSim(rate=rate, seed=3, depth=2000) as sim,
        connect(sim.url, max_size=None, compression=None) as ws,
    ):
        for channel in ("heartbeats", *channels):
            await ws.send(json.dumps({"type": "subscribe", "product_ids": products, "channel": channel}))
        while len(frames) < n:
            frames.append(await ws.recv(decode=False))
    return frames


def recorded_path(n: int, channels: list[str] | None = None) -> Path:
    channels = channels or ["level2", "market_trades", "ticker"]
    return DATA / f"frames-{n}-{'-'.join(channels)}.ndjson"


def recorded_frames(
    n: int, rate: float = 0.0, products: list[str] | None = None, channels: list[str] | None = None
) -> list[bytes]:
    """``n`` frames the simulator sent over a real socket (cached under bench/.data)."""
    products = products or ["BTC-USD", "ETH-USD", "SOL-USD"]
    channels = channels or ["level2", "market_trades", "ticker"]
    DATA.mkdir(parents=True, exist_ok=True)
    path = recorded_path(n, channels)
    if path.exists():
        return [line for line in path.read_bytes().split(b"\n") if line]
    frames = asyncio.run(_record(n, rate, products, channels))
    path.write_bytes(b"\n".join(frames) + b"\n")
    return frames


def median_of(runs: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    values = [fn() for _ in range(runs)]
    return statistics.median(values), values


def write_results(name: str, rows: list[tuple[str, str]], extra: dict[str, Any] | None = None) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    lines = [
        f"## {name}",
        "",
        f"{info['date']} · {info['cpu']} · {info['cores']} cores · Python {info['python']}",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in rows]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    if extra is not None:
        (RESULTS / f"{name}.json").write_text(json.dumps({**info, **extra}, indent=2))
    print(text)
    return text


def rss_kib(pid: int | None = None) -> int:
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kwargs)


PY = sys.executable
