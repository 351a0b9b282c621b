"""The trust boundary between a venue's code and everything after it (store, sink, screen, logs).

Every event a connection produces passes ``Boundary.admit`` before it is applied or emitted:

- market data for a product this connection did not ask for is counted and dropped (a venue cannot grow
  our memory, or start work such as REST snapshots, by naming new products);
- text the venue controls (error messages, close reasons, channel names in an acknowledgement, trade and
  order ids, status texts) is bounded in length and scrubbed of every configured secret, so a venue that
  echoes the API key back cannot put it on stdout, stderr or the screen.

Making text inert for a terminal is not done here: NDJSON carries it JSON-escaped, and the dashboard,
the log handlers and stderr apply ``core.safe.inert`` where text reaches a person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any

from tickerterm.core.events import BookSnapshot, BookUpdate, Candle, Event, ProductStatus, Ticker, Trade
from tickerterm.core.safe import Redactor, clip

TEXT_LIMIT = 500
"""Characters kept of one venue text (an error message, a close reason)."""
ID_LIMIT = 64
"""Characters kept of an id (trade, order)."""
MAP_LIMIT = 256
"""Entries kept of a venue-sent mapping (channels in an acknowledgement, balance fields)."""

_PER_PRODUCT = frozenset((Ticker, Trade, BookSnapshot, BookUpdate, Candle, ProductStatus))
"""Market data that is only wanted for the products asked for (orders and balances are the account's)."""
_CHECKED = frozenset((Ticker, BookSnapshot, BookUpdate, Candle))
"""Their text is validated decimal text and products checked against the subscription: nothing to scrub."""


class Boundary:
    """One connection's checks on what its venue sends (see the module docstring)."""

    def __init__(self, secrets: Iterable[str] = (), accepts: Callable[[str], bool] | None = None) -> None:
        self.redact = Redactor(secrets)
        self.accepts: Callable[[str], bool] = accepts or (lambda product: True)
        self.dropped = 0
        """Market events dropped for products nobody subscribed."""
        self._text_fields: dict[type, tuple[str, ...]] = {}

    def admit(self, events: list[Event]) -> list[Event]:
        """``events`` without unsolicited market data, their venue text bounded and scrubbed (in place)."""
        out = events
        accepts = self.accepts
        asked, wanted = "", False  # runs of one product's events (a trade batch) ask once
        redact = self.redact
        for i, ev in enumerate(events):
            cls = type(ev)
            if cls in _PER_PRODUCT:
                product = ev.product  # type: ignore[attr-defined]
                if product != asked or not asked:
                    asked, wanted = product, accepts(product)
                if not wanted:
                    if out is events:
                        out = events[:i]
                    self.dropped += 1
                    continue
            if cls is Trade:  # the hot path: its only free text is the id
                trade_id = ev.trade_id  # type: ignore[attr-defined]
                if redact:
                    trade_id = redact(trade_id)
                if len(trade_id) > ID_LIMIT:
                    trade_id = clip(trade_id, ID_LIMIT)
                ev.trade_id = trade_id  # type: ignore[attr-defined]
            elif cls not in _CHECKED:
                self.scrub(ev)
            if out is not events:
                out.append(ev)
        return out

    def text(self, value: str, limit: int = TEXT_LIMIT) -> str:
        """One venue text, with secrets removed, then bounded (cut first, half a key could be left)."""
        if self.redact:
            value = self.redact(value)
        return clip(value, limit)

    def scrub(self, ev: Event) -> Event:
        """Bound and scrub every text field of ``ev`` (in place; returns it)."""
        names = self._text_fields.get(type(ev))
        if names is None:
            names = self._text_fields[type(ev)] = tuple(
                f.name for f in fields(ev) if f.name not in ("venue", "conn", "type")
            )
        for name in names:
            value = getattr(ev, name)
            if isinstance(value, str):
                limit = ID_LIMIT if name.endswith("_id") or name == "product" else TEXT_LIMIT
                setattr(ev, name, self.text(value, limit))
            elif isinstance(value, dict):
                setattr(ev, name, self._mapping(value))
        return ev

    def _mapping(self, value: dict[Any, Any]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, item in list(value.items())[:MAP_LIMIT]:
            if isinstance(item, list):
                item = [self.text(str(x), ID_LIMIT) for x in item[:MAP_LIMIT]]
            elif isinstance(item, str):
                item = self.text(item)
            out[self.text(str(key), ID_LIMIT)] = item
        return out


def secrets_of(credentials: object | None) -> list[str]:
    """The secret values held by a venue's credentials (every ``Secret`` among their attributes)."""
    if credentials is None:
        return []
    values: list[str] = []
    names = getattr(credentials, "__slots__", ()) or vars(credentials)
    for name in names:
        value = getattr(credentials, name, None)
        reveal = getattr(value, "reveal", None)
        if callable(reveal):
            values.append(str(reveal()))
    return values
