"""tickerterm: a terminal live market dashboard, and the engine under it as a library.

    import tickerterm

    async for event in tickerterm.stream("coinbase", ["BTC-USD"], ["level2", "market_trades"], sim=True):
        ...

See ``open_feed`` for a feed you can also (un)subscribe on while it runs, and its ``store`` for books,
tape, candles, tickers and connection health.
"""

from __future__ import annotations

from tickerterm.api import open_feed, stream
from tickerterm.core.errors import ConfigError, CredentialsError, FrameError, TickertermError
from tickerterm.core.store import Store
from tickerterm.stream.feed import Feed
from tickerterm.stream.policy import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "CredentialsError",
    "Feed",
    "FrameError",
    "RetryPolicy",
    "Store",
    "TickertermError",
    "__version__",
    "open_feed",
    "stream",
]
