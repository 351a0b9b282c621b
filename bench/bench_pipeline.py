"""1. Pipeline: parse + normalize + apply to the book/store, on recorded simulator frames.

Reports msgs/s and L2 updates/s (number conversion included: the book keys levels by float value),
the top-20 read time, and — when cryptofeed is installed (optional, never a dependency) — its Coinbase
handler on the same frames in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
from common import median_of, recorded_frames, recorded_path, write_results

from tickerterm.core import native
from tickerterm.core.store import Store
from tickerterm.tuning import tune_gc
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
    """The parser and the store alone."""
    parser = CoinbaseAdvancedTrade().parser("coinbase")
    store = Store()
    apply_all = store.apply_all  # a frame's events together, as the venue session hands them over
    parse = parser.parse
    start = time.perf_counter()
    for raw in frames:
        apply_all(parse(raw, 0.0))
    return time.perf_counter() - start


def connection_pipeline(frames: list[bytes]) -> float:
    """What the stream worker does with each frame, minus the socket: the venue session (the parser, the
    trust boundary, integrity: gaps, the books checked after every frame) and the store
    (``Connection.receive``, the same call before and after the sessions redesign)."""
    from tickerterm.stream.worker import Connection

    products = ["BTC-USD", "ETH-USD", "SOL-USD"]
    conn = Connection(CoinbaseAdvancedTrade(), "market", Store(), products=products)
    for channel in ("level2", "market_trades", "ticker"):
        conn.subs.add(channel, products)
    conn.start_session()
    receive = conn.receive
    start = time.perf_counter()
    for raw in frames:
        receive(raw, 0.0)
    return time.perf_counter() - start


class _Level(msgspec.Struct):
    side: str
    price_level: str
    new_quantity: str


class _Ev(msgspec.Struct):
    type: str = ""
    updates: list[_Level] = []


class _Frame(msgspec.Struct):
    channel: str
    events: list[_Ev] = []


def floor_loop(frames: list[bytes]) -> float:
    """The least any Python pipeline can do with these frames: decode (msgspec, typed), convert both
    numbers, set or delete one dict entry per update. No events, no validation, no trades or tickers.
    It bounds what the real pipeline can reach on this machine."""
    decode = msgspec.json.Decoder(_Frame).decode
    books: dict[str, dict[float, tuple[str, str]]] = {"bid": {}, "offer": {}}
    start = time.perf_counter()
    for raw in frames:
        msg = decode(raw)
        if msg.channel != "l2_data":
            continue
        for ev in msg.events:
            for u in ev.updates:
                price, size = u.price_level, u.new_quantity
                key, value = float(price), float(size)
                levels = books[u.side]
                if value == 0.0:
                    levels.pop(key, None)
                else:
                    levels[key] = (price, size)
    return time.perf_counter() - start


def top20_read(frames: list[bytes], reads: int = 2000) -> float:
    parser = CoinbaseAdvancedTrade().parser("coinbase")
    store = Store()
    for raw in frames:
        for ev in parser.parse(raw, 0.0):
            store.apply(ev)
    book = store.book("coinbase", "BTC-USD")
    start = time.perf_counter()
    for _ in range(reads):
        book.top(20)
    return (time.perf_counter() - start) / reads


def cryptofeed_pipeline(path: Path, python: str | None) -> tuple[float, str] | None:
    """cryptofeed's Coinbase handler on the same frames, in an interpreter that has it (this one, or
    ``--cryptofeed-python``): seconds of its second pass over them (the first warms it, as our runs are
    warm) and its version, or None when there is none."""
    exe = python or sys.executable
    probe = subprocess.run([exe, "-c", "import cryptofeed"], capture_output=True)
    if probe.returncode != 0:
        return None
    runner = Path(__file__).with_name("cryptofeed_runner.py")
    out = subprocess.run([exe, str(runner), str(path), "2"], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"][-1], str(result["version"])


def pure_pipeline(n: int) -> float:
    """The same pipeline on the pure-Python path (``TICKERTERM_PURE=1``: the C loops not loaded), in a
    process of its own: seconds of its second pass."""
    out = subprocess.run(
        [sys.executable, __file__, "--frames", str(n), "--one-pass"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TICKERTERM_PURE": "1"},
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--cryptofeed-python", help="an interpreter with cryptofeed installed (bench/run --cryptofeed)"
    )
    ap.add_argument("--one-pass", action="store_true", help=argparse.SUPPRESS)  # pure_pipeline's child
    args = ap.parse_args()
    tune_gc()  # as the command line runs (tickerterm/tuning.py)
    frames = recorded_frames(args.frames)
    if args.one_pass:
        tickerterm_pipeline(frames)
        print(tickerterm_pipeline(frames))
        return
    updates = count_updates(frames)
    kinds: dict[str, int] = {}
    for raw in frames:
        ch = json.loads(raw).get("channel", "?")
        kinds[ch] = kinds.get(ch, 0) + 1
    # the machine's speed drifts by tens of percent within minutes: each ratio is taken from runs made
    # back to back (ours, the pure path's, cryptofeed's), and the median of those ratios is reported
    tickerterm_pipeline(frames)  # warm
    ours: list[float] = []
    pure: list[float] = []
    theirs: list[float] = []
    version = ""
    for _ in range(args.runs):
        ours.append(tickerterm_pipeline(frames))
        pure.append(pure_pipeline(args.frames))
        cf = cryptofeed_pipeline(recorded_path(args.frames), args.cryptofeed_python)
        if cf is not None:
            theirs.append(cf[0])
            version = cf[1]
    seconds = statistics.median(ours)
    conn_seconds = median_of(args.runs, lambda: connection_pipeline(frames))[0]
    floor = median_of(args.runs, lambda: floor_loop(frames))[0]
    top = median_of(args.runs, lambda: top20_read(frames))[0]
    rows = [
        ("frames", f"{len(frames):,} ({', '.join(f'{k} {v:,}' for k, v in sorted(kinds.items()))})"),
        ("L2 updates in them", f"{updates:,}"),
        ("hot path", native.implementation()),
        (f"tickerterm msgs/s (median of {args.runs})", f"{len(frames) / seconds:,.0f}"),
        ("tickerterm L2 updates/s", f"{updates / seconds:,.0f}"),
        ("pure-Python path (TICKERTERM_PURE=1) msgs/s", f"{len(frames) / statistics.median(pure):,.0f}"),
        (
            "ratio C / pure-Python path (paired runs)",
            f"{statistics.median(p / o for p, o in zip(pure, ours, strict=True)):.2f}x",
        ),
        ("with the session (Connection.receive, no socket): msgs/s", f"{len(frames) / conn_seconds:,.0f}"),
        ("with the session: L2 updates/s", f"{updates / conn_seconds:,.0f}"),
        ("floor: typed decode + dict set per update, nothing else (L2 updates/s)", f"{updates / floor:,.0f}"),
        ("tickerterm / floor", f"{floor / seconds:.2f}"),
        ("top-20 read", f"{top * 1e6:.1f} µs"),
    ]
    extra: dict[str, Any] = {
        "frames": len(frames),
        "updates": updates,
        "seconds": ours,
        "pure_seconds": pure,
        "connection_s": conn_seconds,
        "floor_s": floor,
        "top20_s": top,
    }
    if theirs:
        ratios = [t / o for t, o in zip(theirs, ours, strict=True)]
        cf_seconds = statistics.median(theirs)
        rows.append(
            (f"cryptofeed {version} msgs/s (same run, same frames)", f"{len(frames) / cf_seconds:,.0f}")
        )
        rows.append((f"cryptofeed {version} L2 updates/s", f"{updates / cf_seconds:,.0f}"))
        rows.append(
            (
                "ratio tickerterm / cryptofeed (median of paired runs; lowest, highest)",
                f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}x, {max(ratios):.2f}x)",
            )
        )
        rows.append(
            (
                "ratio pure-Python path / cryptofeed",
                f"{statistics.median(t / p for t, p in zip(theirs, pure, strict=True)):.2f}x",
            )
        )
        rows.append(("ratio floor / cryptofeed", f"{cf_seconds / floor:.2f}x"))
        extra["cryptofeed_s"] = theirs
        extra["cryptofeed_version"] = version
    else:
        rows.append(("cryptofeed", "not available (bash bench/run --cryptofeed installs it in its own venv)"))
    write_results("pipeline", rows, extra)


if __name__ == "__main__":
    main()
