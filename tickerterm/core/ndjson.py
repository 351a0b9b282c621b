"""The headless output: one JSON object per event, a public interface for jq and scripts.

Every record has ``type``, ``venue`` and ``recv_ts`` (local receive time, UNIX seconds), ``product``
where one applies, ``exch_ts`` where the venue gives a time, and ``conn`` on health records. Prices
and sizes are the venue's decimal strings, untouched. Book messages are reported as one ``book``
record after they are applied: the best bid/ask and the book's state. See the README for every type.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from typing import Any

from tickerterm.core.events import BookSnapshot, BookUpdate, Closed, Event, Heartbeat
from tickerterm.core.health import close_meaning
from tickerterm.core.store import Store

_SKIP = {"venue", "recv_ts", "exch_ts", "product", "conn"}
_FIELDS: dict[type, tuple[str, ...]] = {}


def record(event: Event, store: Store | None = None, *, heartbeats: bool = False) -> dict[str, Any] | None:
    """The NDJSON record for ``event`` (``None`` for heartbeats unless ``heartbeats``)."""
    cls = type(event)
    if cls is Heartbeat and not heartbeats:
        return None
    if cls is BookSnapshot or cls is BookUpdate:
        return _book_record(event, store)  # type: ignore[arg-type]
    out: dict[str, Any] = {"type": cls.type, "venue": event.venue, "recv_ts": round(event.recv_ts, 6)}
    product = getattr(event, "product", None)
    if product is not None:
        out["product"] = product
    exch_ts = getattr(event, "exch_ts", None)
    if exch_ts is not None:
        out["exch_ts"] = round(exch_ts, 6)
    conn = getattr(event, "conn", None)
    if conn is not None:
        out["conn"] = conn
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(event) if f.name not in _SKIP)
    for name in names:
        value = getattr(event, name)
        if value is not None:
            out[name] = value
    if cls is Closed:
        out["meaning"] = close_meaning(event.code)  # type: ignore[attr-defined]
    return out


def _book_record(event: BookSnapshot | BookUpdate, store: Store | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "book",
        "venue": event.venue,
        "product": event.product,
        "recv_ts": round(event.recv_ts, 6),
    }
    if event.exch_ts is not None:
        out["exch_ts"] = round(event.exch_ts, 6)
    out["snapshot"] = isinstance(event, BookSnapshot)
    if store is not None:
        book = store.book(event.venue, event.product)
        bid, ask = book.best_bid, book.best_ask
        out["bid"], out["bid_size"] = bid if bid is not None else (None, None)
        out["ask"], out["ask_size"] = ask if ask is not None else (None, None)
        out["state"] = book.state
        if book.reason and book.state != "ok":
            out["reason"] = book.reason
    return out


def dumps(event: Event, store: Store | None = None, *, heartbeats: bool = False) -> str | None:
    rec = record(event, store, heartbeats=heartbeats)
    return None if rec is None else json.dumps(rec, separators=(",", ":"))


def _types() -> dict[str, type[Event]]:
    out: dict[str, type[Event]] = {}
    pending: list[type[Event]] = [Event]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "type" in cls.__dict__:
            out[cls.type] = cls
    return out


_BY_TYPE: dict[str, type[Event]] = {}


def event_class(name: str) -> type[Event] | None:
    """The event class whose records are of type ``name`` (never the base class), or None."""
    if not _BY_TYPE:
        _BY_TYPE.update(_types())
    cls = _BY_TYPE.get(name)
    return None if cls is Event else cls


def event_of(rec: dict[str, Any]) -> Event:
    """The event an NDJSON record was written from (a recording keeps the worker's own events so:
    connecting, connected, closed, retry, gave_up, stale). ValueError for a record of no known type."""
    cls = event_class(str(rec.get("type")))
    if cls is None:
        raise ValueError(f"no event type {rec.get('type')!r}")
    args: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in rec:
            args[f.name] = rec[f.name]
        elif f.default is MISSING and f.default_factory is MISSING:
            args[f.name] = None
    return cls(**args)
