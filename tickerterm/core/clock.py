"""Time sources. Code that reads the time takes a clock so tests can freeze it."""

from __future__ import annotations

import time
from datetime import datetime

from tickerterm.core import native


def wall() -> float:
    """UNIX seconds now."""
    return time.time()


class FrozenClock:
    """A clock that moves only when told to (for tests and snapshots)."""

    def __init__(self, now: float = 1_714_564_800.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def parse_rfc3339(text: str) -> float | None:
    """UNIX seconds from an RFC 3339 time such as ``2024-05-01T12:00:00.123456789Z``; None if unparsable.

    Python 3.11's ``fromisoformat`` accepts the ``Z`` and any number of fractional digits. The common
    form (UTC, ``Z``, up to 9 digits of fraction) is read by ``native.rfc3339`` (in C where it was built:
    one per frame), with the same value.
    """
    fast = native.rfc3339(text)
    if fast is not None:
        return fast
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, TypeError):
        return None
