"""The normalized rows a recording keeps, from the events as they are applied (one builder for every
store: the SQLite file and PostgreSQL write the same tables)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tickerterm.core.book import OrderBook
from tickerterm.core.events import (
    BookSnapshot,
    BookUpdate,
    Candle,
    Event,
    HealthEvent,
    Heartbeat,
    Recording,
    Ticker,
    Trade,
)
from tickerterm.core.ndjson import record
from tickerterm.core.store import Store

TOP_EVERY = 0.2
"""Seconds between two top-of-book rows of one product (at most five a second)."""
SNAPSHOT_EVERY = 60.0
"""Seconds between two full book snapshots of one product."""
SNAPSHOT_LEVELS = 1000
"""Levels per side in a book snapshot row."""
_HEALTH_SKIP = {"type", "venue", "recv_ts", "conn", "product"}

Column = tuple[str, str]
"""``(name, type)``: ``TEXT``, ``TIME`` (UNIX seconds: REAL / DOUBLE PRECISION), ``INT`` (an integer
that may pass 2**31: INTEGER / BIGINT); ``!`` after the type: NOT NULL."""

TABLES: dict[str, tuple[Column, ...]] = {
    "trades": (
        ("venue", "TEXT!"), ("product", "TEXT!"), ("time", "TIME!"), ("price", "TEXT!"), ("size", "TEXT!"),
        ("side", "TEXT!"), ("trade_id", "TEXT"), ("recv_ts", "TIME!"),
    ),
    "tickers": (
        ("venue", "TEXT!"), ("product", "TEXT!"), ("time", "TIME!"), ("price", "TEXT"), ("bid", "TEXT"),
        ("bid_size", "TEXT"), ("ask", "TEXT"), ("ask_size", "TEXT"), ("volume_24h", "TEXT"),
        ("recv_ts", "TIME!"),
    ),
    "candles": (
        ("venue", "TEXT!"), ("product", "TEXT!"), ("interval", "INT!"), ("start", "INT!"), ("open", "TEXT!"),
        ("high", "TEXT!"), ("low", "TEXT!"), ("close", "TEXT!"), ("volume", "TEXT!"), ("source", "TEXT!"),
    ),
    "top_of_book": (
        ("venue", "TEXT!"), ("product", "TEXT!"), ("time", "TIME!"), ("bid", "TEXT"), ("bid_size", "TEXT"),
        ("ask", "TEXT"), ("ask_size", "TEXT"), ("state", "TEXT!"),
    ),
    "book_snapshots": (
        ("venue", "TEXT!"), ("product", "TEXT!"), ("time", "TIME!"), ("state", "TEXT!"), ("bids", "TEXT!"),
        ("asks", "TEXT!"),
    ),
    "health": (
        ("venue", "TEXT!"), ("conn", "TEXT!"), ("time", "TIME!"), ("type", "TEXT!"), ("product", "TEXT"),
        ("detail", "TEXT!"),
    ),
}  # fmt: skip
"""The tables every store writes (SQLite and PostgreSQL spell the types their own way)."""
UNIQUE = {
    "trades": ("venue", "product", "trade_id"),
    "candles": ("venue", "product", "interval", "start", "source"),
}
"""Rows that are one fact: a trade (written once however often it is sent), a bar (its latest values)."""
INDEXES = {"trades": ("venue", "product", "time"), "tickers": ("venue", "product", "time"),
           "top_of_book": ("venue", "product", "time"), "health": ("time",)}  # fmt: skip


def schema(time_type: str, int_type: str) -> str:
    """The tables' DDL with the store's own types for times and large integers."""
    types = {"TEXT": "TEXT", "TIME": time_type, "INT": int_type}
    out = []
    for table, columns in TABLES.items():
        cols = ", ".join(
            f"{n} {types[t.rstrip('!')]}{' NOT NULL' if t.endswith('!') else ''}" for n, t in columns
        )
        out.append(f"CREATE TABLE IF NOT EXISTS {table} ({cols});")
        if table in UNIQUE:
            out.append(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_key ON {table} ({', '.join(UNIQUE[table])});"
            )
        if table in INDEXES:
            out.append(f"CREATE INDEX IF NOT EXISTS {table}_time ON {table} ({', '.join(INDEXES[table])});")
    return "\n".join(out)


def inserts(
    placeholder: Callable[[int], str], ignore: str, replace: Callable[[str, tuple[str, ...]], str]
) -> dict[str, str]:
    """One INSERT per table in the store's dialect: a trade already there is ignored, a bar replaced."""
    out = {}
    for table, columns in TABLES.items():
        values = ", ".join(placeholder(i + 1) for i in range(len(columns)))
        sql = f"INSERT INTO {table} VALUES ({values})"
        if table == "trades":
            sql = ignore.format(sql=sql)
        elif table in UNIQUE:
            sql = replace(sql, UNIQUE[table])
        out[table] = sql
    return out


Put = Callable[[str, tuple[Any, ...]], None]
"""``put(table, row)``."""


class Rows:
    """Turns applied events into rows: trades, tickers, candles (the venue's, and one-minute bars built
    from trades when they close), health events; and, from the books as ``flush`` finds them, top of
    book (when it changed, at most every ``TOP_EVERY`` s) and book snapshots (every ``SNAPSHOT_EVERY``
    s).

    Book frames are most frames, and a row is due for few of them: ``add`` passes them over, and
    ``flush`` (the feed calls it ten times a second, ``stream.feed.FLUSH_EVERY``) looks at the books
    whose version moved since its last look. A row's time is that of the last frame that changed the
    book (``OrderBook.recv_ts``), so a book that changed and then went quiet gets its last top written
    with the time it was made."""

    def __init__(self, put: Put) -> None:
        self._put = put
        self._top: dict[tuple[str, str], tuple[float, Any, Any, str]] = {}
        """Per book: when its top was last looked at (the flush's time), and the top it had then."""
        self._seen: dict[tuple[str, str], int] = {}
        """Per book: its version at the last look."""
        self._snapped: dict[tuple[str, str], float] = {}
        self._minute: dict[tuple[str, str], int] = {}

    def add(self, events: list[Event], store: Store | None) -> None:
        """The rows for ``events``, once they are applied to ``store`` (book rows come from ``flush``)."""
        for ev in events:
            cls = type(ev)
            if cls is BookUpdate or cls is BookSnapshot:  # the most frequent first: ``flush`` does them
                continue
            if cls is Trade:
                self._trade(ev, store)  # type: ignore[arg-type]
            elif cls is Ticker:
                t: Ticker = ev  # type: ignore[assignment]
                when = t.exch_ts if t.exch_ts is not None else t.recv_ts
                row = (t.venue, t.product, when, t.price, t.bid, t.bid_size, t.ask, t.ask_size, t.volume_24h)
                self._put("tickers", (*row, t.recv_ts))
            elif cls is Candle:
                c: Candle = ev  # type: ignore[assignment]
                if c.source == "trades":
                    continue  # the rows builder writes its own bars from trades
                row2 = (c.venue, c.product, c.interval, c.start, c.open, c.high, c.low, c.close, c.volume)
                self._put("candles", (*row2, "venue"))
            elif isinstance(ev, HealthEvent) and cls is not Heartbeat and cls is not Recording:
                rec = record(ev) or {}
                detail = {k: v for k, v in rec.items() if k not in _HEALTH_SKIP}
                product = getattr(ev, "product", None)
                self._put("health", (ev.venue, ev.conn, ev.recv_ts, cls.type, product, json.dumps(detail)))

    def flush(self, store: Store | None, now: float, venue: str | None = None) -> None:
        """The rows due for the books of ``store`` (of ``venue`` only, when given) at ``now``: a top that
        changed since the last row, when ``TOP_EVERY`` has passed since the last look; a snapshot of a
        good book every ``SNAPSHOT_EVERY``. ``now`` infinite: the last look (the recording ends), every
        change due."""
        if store is None:
            return
        seen, top = self._seen, self._top
        for key, book in list(store.books.items()):
            if venue is not None and key[0] != venue:
                continue
            version = book.version
            if seen.get(key) == version:
                continue  # nothing changed since the last look
            last = top.get(key)
            if last is not None and now - last[0] < TOP_EVERY:
                continue  # looked at lately: the next flush after the window
            seen[key] = version
            self._top_row(key, book, now, last)
            if book.state == "ok" and book.recv_ts - self._snapped.get(key, 0.0) >= SNAPSHOT_EVERY:
                self._snapped[key] = book.recv_ts
                bids, asks = book.top(SNAPSHOT_LEVELS)
                self._put(
                    "book_snapshots",
                    (key[0], key[1], book.recv_ts, book.state, json.dumps(bids), json.dumps(asks)),
                )

    def _top_row(self, key: tuple[str, str], book: OrderBook, now: float, last: Any) -> None:
        """A row when the top changed since the last look (with the time of the frame that made it); the
        look's time is kept either way, so a book is looked at once per ``TOP_EVERY`` at most."""
        bid, ask, state = book.best_bid, book.best_ask, book.state
        self._top[key] = (now, bid, ask, state)
        if last is None or (bid, ask, state) != last[1:]:
            b = bid or (None, None)
            a = ask or (None, None)
            self._put("top_of_book", (key[0], key[1], book.recv_ts, b[0], b[1], a[0], a[1], state))

    def _trade(self, t: Trade, store: Store | None) -> None:
        when = t.exch_ts if t.exch_ts is not None else t.recv_ts
        self._put(
            "trades", (t.venue, t.product, when, t.price, t.size, t.side, t.trade_id or None, t.recv_ts)
        )
        if store is None:
            return
        key = (t.venue, t.product)
        minute = int(when // 60) * 60
        last = self._minute.get(key)
        if last is not None and minute > last:  # a bar closed: the one built from trades goes in
            series = store.candles.get(key)
            bar = series.find(last) if series is not None else None
            if bar is not None:
                row = (
                    t.venue,
                    t.product,
                    60,
                    last,
                    bar.open,
                    bar.high,
                    bar.low,
                    bar.close,
                    bar.volume_text,
                )
                self._put("candles", (*row, "trades"))
        if last is None or minute > last:
            self._minute[key] = minute
