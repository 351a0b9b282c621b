"""The async connection loop shared by every venue: backoff, watchdog, resubscribe, resync.

``tickerterm.stream`` is also the library's one-call entry point, ``tickerterm.stream(venue, products,
...)`` (``tickerterm.api.stream``). Python binds the name to this package as soon as any of its modules
is imported, so the package itself is made callable: both spellings work whatever was imported first.
"""

from __future__ import annotations

import sys
import types
from collections.abc import AsyncIterator
from typing import Any

from tickerterm.stream.feed import Feed
from tickerterm.stream.policy import RateLimiter, RetryPolicy
from tickerterm.stream.worker import Connection

__all__ = ["Connection", "Feed", "RateLimiter", "RetryPolicy"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        from tickerterm.api import stream

        return stream(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
