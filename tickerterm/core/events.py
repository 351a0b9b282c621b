"""Normalized events: what every venue adapter produces and the store consumes.

Prices and sizes are carried as the exact decimal strings the venue sent (never floats), so what is
shown or emitted is exactly the venue's number. Times are UNIX seconds as floats: ``recv_ts`` is the
local receive time, ``exch_ts`` the venue's own time where it gives one.

Market events carry ``venue`` and ``product`` (normalized ``BASE-QUOTE``). Health events carry
``venue`` and ``conn``, the connection they describe (``"coinbase"``, ``"coinbase/user"``...).

Every class has a ``type`` class attribute: the name used in the NDJSON output.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar, Literal

Side = Literal["buy", "sell"]
BookSide = Literal["bid", "ask"]
Level = tuple[str, str]
"""A book level: ``(price, size)`` as the venue's decimal strings."""
Change = tuple[BookSide, str, str, float, float]
"""A level change: ``(side, price, size, price_value, size_value)``. The strings are the venue's text;
the floats are converted once, by the adapter that validated them, and used by the book as keys."""

_INF = float("inf")
DIGITS = "0123456789."
"""What a venue's decimal text may contain: ASCII digits and one point. ``float()`` alone also takes
``"1_00.5"``, ``" 3 "``, ``"inf"``, ``"1e999"`` and other scripts' digits; none of them is a price."""
MAX_DIGITS = 64
"""Longer decimal text is no real price or size (and would cost memory and time to convert)."""


def value_of(text: str) -> float:
    """The value of a venue's price or size text; ValueError unless it is plain decimal text (ASCII digits,
    at most one point, at most ``MAX_DIGITS`` characters) of a finite, non-negative number."""
    if text.strip(DIGITS) or len(text) > MAX_DIGITS:
        raise ValueError(f"not plain decimal text: {text[:20]!r}")
    value = float(text)
    if not value < _INF:
        raise ValueError(f"not a finite number: {text[:20]!r}")
    return value


def change(side: BookSide, price: str, size: str) -> Change:
    """A validated level change; ValueError unless both are plain decimal text (see ``value_of``).

    The check is ``value_of``'s, written inline: this runs once per book update (the hot path)."""
    if price.strip(DIGITS) or size.strip(DIGITS) or len(price) > MAX_DIGITS or len(size) > MAX_DIGITS:
        raise ValueError(f"not plain decimal text: {price[:20]!r} / {size[:20]!r}")
    p, s = float(price), float(size)
    if not (p < _INF and s < _INF):
        raise ValueError(f"not a finite number: {price[:20]!r} / {size[:20]!r}")
    return (side, price, size, p, s)


def _clock_ms(ms: int) -> str:
    """UNIX milliseconds as ``HH:MM:SS.mmm`` UTC."""
    seconds, milli = divmod(ms, 1000)
    return f"{time.strftime('%H:%M:%S', time.gmtime(seconds))}.{milli:03d}"


@dataclass(slots=True)
class Event:
    type: ClassVar[str] = "event"
    venue: str
    recv_ts: float


# --- market data ------------------------------------------------------------------------------


@dataclass(slots=True)
class Ticker(Event):
    type: ClassVar[str] = "ticker"
    product: str
    exch_ts: float | None
    price: str | None = None
    bid: str | None = None
    bid_size: str | None = None
    ask: str | None = None
    ask_size: str | None = None
    volume_24h: str | None = None
    low_24h: str | None = None
    high_24h: str | None = None
    change_pct_24h: str | None = None
    """24h price change in percent, as the venue sent it."""
    mark: str | None = None
    """Derivatives: the mark price, the index price, the funding rate (a fraction per funding period,
    signed) and the next funding time (UNIX seconds)."""
    index: str | None = None
    funding_rate: str | None = None
    next_funding: float | None = None


@dataclass(slots=True)
class Trade(Event):
    type: ClassVar[str] = "trade"
    product: str
    exch_ts: float | None
    trade_id: str
    price: str
    size: str
    side: Side
    """The aggressor (taker) side: ``buy`` lifted an ask, ``sell`` hit a bid."""


@dataclass(slots=True)
class BookSnapshot(Event):
    type: ClassVar[str] = "book_snapshot"
    product: str
    exch_ts: float | None
    bids: list[Level]
    asks: list[Level]


@dataclass(slots=True)
class BookUpdate(Event):
    type: ClassVar[str] = "book_update"
    product: str
    exch_ts: float | None
    changes: list[Change]
    """See ``Change``; the size is absolute, a numerically-zero size removes the level."""


@dataclass(slots=True)
class Candle(Event):
    type: ClassVar[str] = "candle"
    product: str
    exch_ts: float | None
    start: int
    """Bucket start, UNIX seconds."""
    interval: int
    """Bucket length in seconds."""
    open: str
    high: str
    low: str
    close: str
    volume: str
    source: str | None = None
    """``trades`` for a bar built here from trades (``--bars``); None for the venue's own candles."""
    vwap: str | None = None
    """Volume-weighted average price, for bars built from trades."""


@dataclass(slots=True)
class ProductStatus(Event):
    type: ClassVar[str] = "status"
    product: str
    exch_ts: float | None
    status: str
    message: str = ""


@dataclass(slots=True)
class OrderUpdate(Event):
    type: ClassVar[str] = "order"
    product: str
    exch_ts: float | None
    order_id: str
    side: Side
    order_type: str
    status: str
    price: str | None
    filled_size: str | None
    leaves_size: str | None
    avg_price: str | None
    client_order_id: str = ""
    snapshot: bool = False
    """True when the venue restates an open order (initial dump), not a new change."""
    fee: str | None = None
    """Fees paid on the order so far (the venue's decimal text), where the venue says."""
    fee_asset: str | None = None
    """What the fee is paid in, where the venue says (Bitzoom's commission asset)."""


@dataclass(slots=True)
class Alert(Event):
    """A rule of ``tickerterm.core.alerts`` fired: ``rule`` as written, ``value`` what made it fire (the
    price, the move, the spread, how long...)."""

    type: ClassVar[str] = "alert"
    product: str
    rule: str
    value: str


@dataclass(slots=True)
class Consolidated(Event):
    """One asset's best bid and best ask across venues (``tickerterm.core.consolidated``), said when
    either changes or a venue's book is counted or excluded. ``venue`` is ``"*"``; ``product`` the asset
    (``BTC-USD``, the quote after the explicit mapping). ``market``: ``normal``, ``locked`` (the best
    bid equals the best ask, on different venues), ``crossed`` (the best bid is above the best ask: an
    arbitrage signal) or ``one-sided``/``empty``. ``spread`` is ask minus bid (negative when crossed).
    ``excluded`` lists the venues' books not counted, each with why (an UNSAFE book and its reason)."""

    type: ClassVar[str] = "consolidated"
    product: str
    bid: str | None = None
    bid_size: str | None = None
    bid_venue: str | None = None
    ask: str | None = None
    ask_size: str | None = None
    ask_venue: str | None = None
    spread: str | None = None
    market: str = "empty"
    counted: list[str] = field(default_factory=list)
    """The venues whose books were counted (``venue`` or ``venue product`` where a venue lists two)."""
    excluded: list[dict[str, str]] = field(default_factory=list)
    """``{"venue", "product", "reason"}`` for each book not counted."""


@dataclass(slots=True)
class BalanceUpdate(Event):
    type: ClassVar[str] = "balance"
    exch_ts: float | None
    fields: dict[str, str] = field(default_factory=dict)


# --- health -----------------------------------------------------------------------------------


@dataclass(slots=True)
class HealthEvent(Event):
    conn: str


@dataclass(slots=True)
class Connecting(HealthEvent):
    type: ClassVar[str] = "connecting"
    url: str
    """The endpoint with any credential removed."""
    attempt: int


@dataclass(slots=True)
class Connected(HealthEvent):
    type: ClassVar[str] = "connected"
    url: str


@dataclass(slots=True)
class Subscribed(HealthEvent):
    type: ClassVar[str] = "subscribed"
    subscriptions: dict[str, list[str]]
    """What the venue's acknowledgement says is now subscribed: channel -> products."""


@dataclass(slots=True)
class Closed(HealthEvent):
    type: ClassVar[str] = "closed"
    code: int | None
    reason: str


@dataclass(slots=True)
class RetryScheduled(HealthEvent):
    type: ClassVar[str] = "retry"
    attempt: int
    delay: float
    reason: str = ""
    """Why the last attempt ended, in words (connection refused, name not resolved, HTTP 403 on the
    handshake, a close code and its reason...)."""


@dataclass(slots=True)
class GaveUp(HealthEvent):
    type: ClassVar[str] = "gave_up"
    reason: str
    bad_input: bool = False
    """The venue refused what was asked for (every product): retrying cannot help; the command exits 2."""


@dataclass(slots=True)
class Gap(HealthEvent):
    type: ClassVar[str] = "gap"
    expected: int
    received: int
    scope: str = ""
    """What the sequence counts: ``connection``, a product, a channel..."""
    kind: str = "sequence"
    """``sequence``: numbers were skipped (``expected`` the next one, ``received`` the one that came);
    ``time``: the venue says data is missing between two times (``expected`` .. ``received``, UNIX ms)."""

    def describe(self) -> str:
        """The gap in words, as the health panel and a book's UNSAFE reason show it."""
        if self.kind == "time":
            return f"time gap from {_clock_ms(self.expected)} to {_clock_ms(self.received)} (venue notice)"
        return f"sequence gap: expected {self.expected}, got {self.received}"


@dataclass(slots=True)
class BookUnsafe(HealthEvent):
    type: ClassVar[str] = "book_unsafe"
    product: str
    reason: str


@dataclass(slots=True)
class BookResyncing(HealthEvent):
    type: ClassVar[str] = "book_resyncing"
    product: str


@dataclass(slots=True)
class BookResynced(HealthEvent):
    type: ClassVar[str] = "book_resynced"
    product: str


@dataclass(slots=True)
class BookDropped(HealthEvent):
    """The book's channel was unsubscribed (or the venue refused the product): nobody updates it any
    more, so it is no longer shown."""

    type: ClassVar[str] = "book_dropped"
    product: str


@dataclass(slots=True)
class VenueError(HealthEvent):
    type: ClassVar[str] = "venue_error"
    message: str
    fatal: bool = False
    """True when the error ends a subscription (auth, bad command) rather than being transient."""
    product: str | None = None
    """The product the venue refused, when its error names one (the others go on)."""


@dataclass(slots=True)
class Stale(HealthEvent):
    type: ClassVar[str] = "stale"
    age: float
    """Seconds since the last message of any kind."""


@dataclass(slots=True)
class Malformed(HealthEvent):
    type: ClassVar[str] = "malformed"
    reason: str
    count: int = 1
    """Malformed frames this event stands for: a flood is reported a few times a second, each event
    counting the frames since the last one (the reason is the latest frame's)."""


@dataclass(slots=True)
class Heartbeat(HealthEvent):
    type: ClassVar[str] = "heartbeat"
    counter: int | None
    exch_ts: float | None = None


@dataclass(slots=True)
class ReplayState(HealthEvent):
    type: ClassVar[str] = "replay"
    state: str
    """``started``, ``paused``, ``resumed``, ``completed``, ``stopped`` (the venue's ``replay_*`` names)."""
    product: str = ""
    current: float | None = None
    """Where the replay stands, UNIX seconds of history."""
    start: float | None = None
    end: float | None = None
    speed: float | None = None


@dataclass(slots=True)
class Recording(HealthEvent):
    """Where a recording stands (``--record``): said when it changes, at most every few seconds."""

    type: ClassVar[str] = "recording"
    path: str
    state: str
    """``on``, ``full`` (the size limit was reached: nothing more is written), ``failed``, ``closed``."""
    bytes: int = 0
    rows: int = 0
    behind: int = 0
    """Rows waiting to be written."""
    lost: int = 0
    """Rows dropped because the writer fell too far behind, or after it stopped."""
    limit: int = 0
    """The size limit in bytes."""
    error: str = ""
    """The last error (kept after a recovery: ``retries`` says there was one)."""
    retries: int = 0
    """Times a server store lost its connection and reconnected."""


MARKET_TYPES = (Ticker, Trade, BookSnapshot, BookUpdate, Candle, ProductStatus, OrderUpdate, BalanceUpdate)
