"""The benchmarks run (tiny sizes) so they don't rot; their numbers are taken on demand with bench/run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import nats_or_skip

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize(
    "args",
    [
        ["bench_pipeline.py", "--frames", "300", "--runs", "1"],
        ["bench_e2e.py", "--seconds", "0.5", "--runs", "1", "--floor-frames", "300"],
        ["bench_memory.py", "--millions", "0.0005", "0.001", "--frames", "300"],
        ["bench_startup.py", "--runs", "1"],
        ["bench_screen.py", "--seconds", "0.5", "--presses", "2"],
        ["bench_latency.py", "--samples", "3", "--every", "0.05"],
        ["bench_relay.py", "--seconds", "0.5", "--viewers", "1", "--warmup", "0.5"],
        ["bench_transport.py", "--rounds", "1", "--seconds", "0.3", "--warmup", "0.3", "--blast", "300"],
        ["bench_record.py", "--seconds", "0.5", "--runs", "1", "--blast", "300"],
    ],
)
def test_benchmark_runs(args: list[str], tmp_path: Path) -> None:
    if args[0] == "bench_relay.py":
        asyncio.run(nats_or_skip())
    env = {
        **os.environ,
        "TICKERTERM_BENCH_RESULTS": str(tmp_path / "results"),
        "TICKERTERM_BENCH_DATA": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, *args], cwd=BENCH, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-2000:]
    name = args[0].removeprefix("bench_").removesuffix(".py")
    table = (tmp_path / "results" / f"{name}.md").read_text()
    assert table.startswith(f"## {name}") and "| measure | value |" in table
