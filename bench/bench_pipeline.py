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


class Passes:
    """A process that runs one pass over the frames per request and answers its seconds: cryptofeed's
    handler (in its own interpreter), or our pipeline on the pure-Python path (``TICKERTERM_PURE=1``).
    Kept running, so its passes interleave with ours one by one."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.version = self.stdout.readline().strip()

    def run(self) -> float:
        self.stdin.write("\n")
        self.stdin.flush()
        return float(self.stdout.readline())

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait(30)


def cryptofeed_passes(path: Path, python: str | None) -> Passes | None:
    """cryptofeed's Coinbase handler on the same frames, in an interpreter that has it (this one, or
    ``--cryptofeed-python``); None when there is none."""
    exe = python or sys.executable
    probe = subprocess.run([exe, "-c", "import cryptofeed"], capture_output=True)
    if probe.returncode != 0:
        return None
    return Passes([exe, str(Path(__file__).with_name("cryptofeed_runner.py")), str(path), "serve"])


def serve(frames: list[bytes]) -> None:
    """``--serve``: our pipeline's passes on request (the parent runs this with ``TICKERTERM_PURE=1``)."""
    print(native.implementation(), flush=True)
    for _ in sys.stdin:
        print(tickerterm_pipeline(frames), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--cryptofeed-python", help="an interpreter with cryptofeed installed (bench/run --cryptofeed)"
    )
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the pure-Python child
    args = ap.parse_args()
    tune_gc()  # as the command line runs (tickerterm/tuning.py)
    frames = recorded_frames(args.frames)
    if args.serve:
        serve(frames)
        return
    updates = count_updates(frames)
    kinds: dict[str, int] = {}
    for raw in frames:
        ch = json.loads(raw).get("channel", "?")
        kinds[ch] = kinds.get(ch, 0) + 1
    # The machine's speed drifts by tens of percent within seconds (a shared VM): our pass, the
    # pure-Python path's and cryptofeed's run one after the other, each in a process kept running, and
    # each ratio is taken from one such round; the median of the rounds is reported.
    pure = Passes(
        [sys.executable, __file__, "--frames", str(args.frames), "--serve"],
        env={**os.environ, "TICKERTERM_PURE": "1"},
    )
    cf = cryptofeed_passes(recorded_path(args.frames), args.cryptofeed_python)
    ours: list[float] = []
    pure_s: list[float] = []
    theirs: list[float] = []
    tickerterm_pipeline(frames)  # each warm before the first round, as a running feed is
    pure.run()
    if cf is not None:
        cf.run()
    for _ in range(args.runs):
        ours.append(tickerterm_pipeline(frames))
        pure_s.append(pure.run())
        if cf is not None:
            theirs.append(cf.run())
    pure.close()
    version = ""
    if cf is not None:
        version = cf.version
        cf.close()
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
        ("pure-Python path (TICKERTERM_PURE=1) msgs/s", f"{len(frames) / statistics.median(pure_s):,.0f}"),
        (
            "ratio C / pure-Python path (paired runs)",
            f"{statistics.median(p / o for p, o in zip(pure_s, ours, strict=True)):.2f}x",
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
        "pure_seconds": pure_s,
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
                "ratio tickerterm / cryptofeed (median of rounds; lowest, highest)",
                f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}x, {max(ratios):.2f}x)",
            )
        )
        rows.append(
            (
                "ratio pure-Python path / cryptofeed",
                f"{statistics.median(t / p for t, p in zip(theirs, pure_s, strict=True)):.2f}x",
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
