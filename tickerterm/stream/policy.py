"""Reconnect policy and the outbound rate limiter, shared by every venue."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class RetryPolicy:
    """How a connection retries. Defaults suit a live venue; tests use millisecond values."""

    base: float = 0.5
    """First retry delay, seconds."""
    factor: float = 2.0
    cap: float = 30.0
    """Largest delay, seconds (the backoff is capped, never unbounded)."""
    jitter: float = 0.5
    """Each delay is shortened by up to this fraction at random, so clients don't retry in step."""
    budget: int | None = 10
    """Retries after a failed or lost connection before giving up (``budget + 1`` attempts in a row);
    0 gives up at the first failure, None retries forever."""
    short_lived: float = 10.0
    """A connection that dies within this many seconds of opening counts as short-lived..."""
    min_after_short: float = 1.0
    """...and is followed by at least this delay, so a venue that accepts then drops can't spin us."""
    stable_after: float = 30.0
    """A connection that lived this long resets the consecutive-attempt count."""
    open_timeout: float = 10.0
    resync_timeout: float = 10.0
    """A book still resyncing after this long makes the connection reconnect."""
    stale_after: float | None = None
    """Seconds of silence (no frame at all) that make a connection stale; None = the venue's own value."""

    def delay(self, attempt: int, rng: random.Random) -> float:
        raw = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        return raw * (1.0 - self.jitter * rng.random())


class Budget:
    """A token bucket that never waits: ``take()`` says whether one more may go now (``rate`` a second,
    bursts up to ``burst``)."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.clock = clock
        self._tokens = self.burst
        self._last = clock()

    def take(self) -> bool:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateLimiter:
    """A token bucket: at most ``rate`` sends per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate)
