"""cryptofeed's Coinbase handler on recorded frames, for the pipeline benchmark's ratio.

Runs in whatever interpreter has cryptofeed (its pins are not ours, so `bench/run --cryptofeed`
keeps it in its own venv, bench/.venv-cryptofeed). Offline: the symbol table that cryptofeed would
fetch over REST when the feed is built is filled in by hand. Prints one JSON line:
``{"seconds": [...], "version": ...}``, the handler's time per run over every frame. With ``serve`` as
the run count it prints its version, then runs one pass per line read from stdin and prints its seconds
(the pipeline benchmark interleaves these passes with its own).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

PRODUCTS = ["BTC-USD", "ETH-USD", "SOL-USD"]


def main() -> None:
    path, runs = Path(sys.argv[1]), sys.argv[2]

    from cryptofeed.defines import COINBASE  # type: ignore[import-not-found]
    from cryptofeed.exchanges.coinbase import Coinbase  # type: ignore[import-not-found]
    from cryptofeed.symbols import Symbols  # type: ignore[import-not-found]

    logging.disable(logging.CRITICAL)  # it logs every ticker frame as "invalid message type"
    Symbols.set(COINBASE, {p: p for p in PRODUCTS}, {"tick_size": {}, "instrument_type": {}})
    frames = [line.decode() for line in path.read_bytes().split(b"\n") if line]

    async def one() -> float:
        feed: Any = Coinbase(symbols=PRODUCTS, channels=["l2_book", "trades"], callbacks={})
        handler = feed.message_handler
        start = time.perf_counter()
        for raw in frames:
            await handler(raw, None, 0.0)
        return time.perf_counter() - start

    if runs == "serve":
        print(version("cryptofeed"), flush=True)
        for _ in sys.stdin:
            print(asyncio.run(one()), flush=True)
        return
    seconds = [asyncio.run(one()) for _ in range(int(runs))]
    print(json.dumps({"seconds": seconds, "version": version("cryptofeed")}))


if __name__ == "__main__":
    main()
