"""The async connection loop shared by every venue: backoff, watchdog, resubscribe, resync."""

from __future__ import annotations

from tickerterm.stream.feed import Feed
from tickerterm.stream.policy import RateLimiter, RetryPolicy
from tickerterm.stream.worker import Connection

__all__ = ["Connection", "Feed", "RateLimiter", "RetryPolicy"]
