"""tickerterm: a terminal live market dashboard, and the engine under it as a library.

    import tickerterm

    async for event in tickerterm.stream("coinbase", ["BTC-USD"], ["level2", "market_trades"], sim=True):
        ...

See ``open_feed`` for a feed you can also (un)subscribe on while it runs (``open_feeds`` for several
venues on one store, with the consolidated book), and its ``store`` for books,
tape, candles, tickers and connection health. The I/O parts load on first use, so importing
``tickerterm.core`` stays free of websockets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tickerterm.core.errors import ConfigError, CredentialsError, FrameError, TickertermError
from tickerterm.core.store import Store

if TYPE_CHECKING:
    from tickerterm.api import open_feed, open_feeds, stream
    from tickerterm.stream.feed import Feed
    from tickerterm.stream.feeds import Feeds
    from tickerterm.stream.policy import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "CredentialsError",
    "Feed",
    "Feeds",
    "FrameError",
    "RetryPolicy",
    "Store",
    "TickertermError",
    "__version__",
    "open_feed",
    "open_feeds",
    "stream",
]

_LAZY = {
    "open_feed": "tickerterm.api",
    "open_feeds": "tickerterm.api",
    "stream": "tickerterm.api",
    "Feed": "tickerterm.stream.feed",
    "Feeds": "tickerterm.stream.feeds",
    "RetryPolicy": "tickerterm.stream.policy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tickerterm' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
