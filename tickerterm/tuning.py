"""Process-wide settings for a long-running feed, applied by the command line (the process owner).

The hot path allocates many short-lived objects (events, level tuples) and no reference cycles, so
the cyclic collector's frequent young-generation passes are pure overhead there: on the recorded
stream they cost about a quarter of the pipeline's time (bench/README.md). ``tune_gc`` moves every
object alive after start-up out of the collector's sight (``gc.freeze``) and collects the young
generation every 50,000 allocations instead of every 700. Cycles are still collected.

The dashboard makes cyclic garbage of its own (Textual's strips keep caches that refer back to them, a
plot's figure objects): tens of thousands of objects a second. Collected 50,000 allocations at a time,
one pass took 25-85 ms, and a key pressed then waited for it (the p99 of key -> screen). The dashboard
collects every ``DASHBOARD_GEN0`` allocations: passes of a few milliseconds, the same work in all.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000
DASHBOARD_GEN0 = 5_000


def tune_gc(young: int = GEN0_THRESHOLD) -> None:
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(young, gen1, gen2)
