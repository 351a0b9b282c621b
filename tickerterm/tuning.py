"""Process-wide settings for a long-running feed, applied by the command line (the process owner).

The hot path allocates many short-lived objects (events, level tuples) and no reference cycles, so
the cyclic collector's frequent young-generation passes are pure overhead there: on the recorded
stream they cost about a quarter of the pipeline's time (bench/README.md). ``tune_gc`` moves every
object alive after start-up out of the collector's sight (``gc.freeze``) and collects the young
generation every 50,000 allocations instead of every 700. Cycles are still collected.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
