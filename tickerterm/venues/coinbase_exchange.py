"""Coinbase Exchange feed, the one the ``cbpro`` client used (``--venue coinbase-exchange``).
See protocols.md section 2.

Wire facts this adapter relies on:
- one subscribe frame may name several channels, as names (top-level ``product_ids``) or
  ``{name, product_ids}`` objects; the ``subscriptions`` ack is the cumulative state;
- ``level2`` (needs auth) and ``level2_batch`` (public): ``snapshot`` then ``l2update`` with changes
  ``[side, price, size]``, sides ``buy``/``sell``, a removal's size any zero spelling; no sequence;
- ``full`` (L3, needs auth): ``received``/``open``/``done``/``match``/``change``/``activate``; there is no
  snapshot on the socket: the book comes from REST ``/products/<id>/book?level=3`` (with its
  ``sequence``) and the messages after it are applied; the messages that arrive meanwhile are kept;
- ``sequence`` is per product, shared by ticker/match/full/heartbeat: only the full channel sees every
  number, so a jump there is a gap (that product's book is UNSAFE and refetched); a number at or below
  the last is old and ignored (per channel kind: a ticker repeats its match's number);
- ``matches``: ``last_match`` then ``match``; ``match.side`` is the MAKER side;
- errors: ``{"type":"error","message":…,"reason":…}``; "Failed to subscribe" is final for that request;
- HMAC auth fields on the subscribe frame (protocols.md: key, base64 secret, passphrase, timestamp,
  signature over timestamp + GET + /users/self/verify).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import msgspec

from tickerterm.core.clock import parse_rfc3339
from tickerterm.core.errors import FrameError
from tickerterm.core.events import (
    BookSide,
    BookSnapshot,
    BookUpdate,
    Candle,
    Change,
    Event,
    Gap,
    Heartbeat,
    Level,
    OrderUpdate,
    ProductStatus,
    Side,
    Subscribed,
    Ticker,
    Trade,
    VenueError,
    change,
)
from tickerterm.core.l3 import L3Book
from tickerterm.venues.auth import (
    EXCHANGE_ENV_KEY,
    EXCHANGE_ENV_KEY_FILE,
    EXCHANGE_ENV_PASSPHRASE,
    EXCHANGE_ENV_SECRET,
    ExchangeKey,
    exchange_auth_fields,
    load_exchange_key,
)
from tickerterm.venues.base import ChannelSpec, ErrorClass, Parser, VenueAdapter, decode_object, peek_object
from tickerterm.venues.fields import (
    amount,
    change_percent,
    decode_exact,
    number,
    optional_amount,
    text,
    whole,
)
from tickerterm.venues.session import Session
from tickerterm.venues.sync import RestSynced, Synced

MARKET_URL = "wss://ws-feed.exchange.coinbase.com"
REST_URL = "https://api.exchange.coinbase.com"
SANDBOX_URL = "wss://ws-feed-public.sandbox.exchange.coinbase.com"
SANDBOX_REST_URL = "https://api-public.sandbox.exchange.coinbase.com"

CHANNELS: dict[str, ChannelSpec] = {
    "heartbeat": ChannelSpec("heartbeat", "heartbeat"),
    "status": ChannelSpec("status", "status", per_product=False),
    "ticker": ChannelSpec("ticker", "ticker"),
    "ticker_batch": ChannelSpec("ticker_batch", "ticker"),
    "matches": ChannelSpec("matches", "trades"),
    "level2_batch": ChannelSpec("level2_batch", "book"),
    "level2": ChannelSpec("level2", "book", private=True),
    "full": ChannelSpec("full", "book", private=True),
    "user": ChannelSpec("user", "user", private=True),
}
FULL_TYPES = frozenset({"received", "open", "done", "match", "change", "activate"})
MAX_BUFFERED = 50_000
"""Full-channel messages kept per product while its REST snapshot is on the way."""

_decode = msgspec.json.decode


_SIDE: dict[str, BookSide] = {"buy": "bid", "sell": "ask"}
_ORDER_SIDE: dict[str, Side] = {"buy": "buy", "sell": "sell"}
_MAKER_TO_AGGRESSOR: dict[str, Side] = {"buy": "sell", "sell": "buy"}


class CoinbaseExchangeSession(Session):
    """The ``heartbeat`` channel is per product on this venue: it follows the products subscribed on the
    connection (every product then has a heartbeat, and a quiet channel is not taken for a dead one)."""

    def _follow(self, products: list[str]) -> list[str]:
        """Adds the heartbeat for ``products``; returns the frames for those that were new."""
        new = self.wanted.subs.add(HEARTBEAT, products)
        return self.adapter.subscribe_frames(HEARTBEAT, new) if new else []

    def restore_frames(self) -> list[str]:
        self._follow(self.wanted.all_products())
        return super().restore_frames()

    def add_frames(self, channel: str, products: list[str]) -> list[str]:
        return super().add_frames(channel, products) + self._follow(products)


HEARTBEAT = "heartbeat"


class CoinbaseExchange(VenueAdapter):
    name = "coinbase-exchange"
    title = "Coinbase Exchange (cbpro feed)"
    endpoints: ClassVar[dict[str, str]] = {"market": MARKET_URL, "rest": REST_URL}
    sandbox_endpoints: ClassVar[dict[str, str]] = {"market": SANDBOX_URL, "rest": SANDBOX_REST_URL}
    channels = CHANNELS
    aliases: ClassVar[dict[str, str]] = {
        "book": "level2_batch",
        "l2": "level2_batch",
        "l3": "full",
        "trades": "matches",
        "heartbeats": "heartbeat",
    }
    default_channels = ("ticker", "level2_batch", "matches")
    keepalive_channels = (HEARTBEAT,)
    session_type = CoinbaseExchangeSession
    max_frame_size = 32 * 2**20
    outbound_per_second = 50.0  # the venue allows 100 client messages/s per IP
    stale_after = 10.0  # heartbeats every second per product
    credential_help = (
        f"set {EXCHANGE_ENV_KEY}, {EXCHANGE_ENV_SECRET} and {EXCHANGE_ENV_PASSPHRASE}, "
        f"or {EXCHANGE_ENV_KEY_FILE}"
    )

    credential_name = "a Coinbase Exchange API key"

    credentials: ExchangeKey | None

    @classmethod
    def load_credentials(cls, key_file: str | None = None) -> ExchangeKey | None:
        return load_exchange_key(key_file=key_file)

    def parser(self, conn: str) -> CoinbaseExchangeParser:
        return CoinbaseExchangeParser(self.name, conn)

    def _frame(self, kind: str, channel: str, products: list[str] | None) -> str:
        spec = self.channel(channel)
        msg: dict[str, Any] = {"type": kind}
        if spec.per_product:
            # an object names its own products, so one frame can carry channels of different products
            msg["channels"] = [{"name": spec.name, "product_ids": products or []}]
        else:
            msg["channels"] = [spec.name]
        if spec.private and kind == "subscribe":
            if self.credentials is None:
                raise self.missing_credentials(spec.name)
            msg.update(exchange_auth_fields(self.credentials, self.clock()))
        return json.dumps(msg, separators=(",", ":"))

    def subscribe_frames(self, channel: str, products: list[str]) -> list[str]:
        return [self._frame("subscribe", channel, products)]

    def unsubscribe_frames(
        self, channel: str, products: list[str] | None, *, listed: list[str] | None = None
    ) -> list[str]:
        if products is None:
            return [
                json.dumps(
                    {"type": "unsubscribe", "channels": [self.channel(channel).name]}, separators=(",", ":")
                )
            ]
        return [self._frame("unsubscribe", channel, products)]

    def resync_frames(self, channel: str, products: list[str]) -> list[str]:
        if channel == "full":
            return []  # the parser has asked for a REST snapshot; the socket stays as it is
        # resubscribing a level2 channel makes the venue send a fresh snapshot for each product
        return self.unsubscribe_frames(channel, products) + self.subscribe_frames(channel, products)

    def snapshot_url(self, channel: str, product: str) -> str | None:
        base = self.urls["rest"].rstrip("/")
        if channel == "candles":  # this venue has no candle channel: the chart's past comes from REST
            return f"{base}/products/{product}/candles?granularity=60"
        if channel != "full":
            return None
        return f"{base}/products/{product}/book?level=3"

    def classify_error(self, message: str) -> ErrorClass:
        text = message.lower()
        if (
            "authentication" in text
            or "invalid signature" in text
            or "invalid api key" in text
            or "passphrase" in text
        ):
            if "require authentication" in text or "requires authentication" in text:
                return "command"  # a public client asked for an auth-only channel: drop that request
            return "auth"
        if "failed to subscribe" in text or "invalid" in text or "unknown" in text:
            return "command"
        return "transient"


class _FullState(Synced):
    """One product's L3 state on one connection: its order book and the last applied sequence."""

    __slots__ = ("book", "last_seq")

    def __init__(self) -> None:
        super().__init__()
        self.book = L3Book()
        self.last_seq: int | None = None

    def reset(self) -> None:
        self.last_seq = None


_NO_BOOK = frozenset({"heartbeat", "subscriptions", "ticker", "last_match", "status", "error"})
"""Message types that never change a book."""


class CoinbaseExchangeParser(Parser):
    def __init__(self, venue: str, conn: str) -> None:
        super().__init__(venue, conn)
        self._last: dict[tuple[str, str], int] = {}
        """(channel kind, product) -> last sequence: older messages are ignored."""
        self.full = RestSynced("full", self.snapshot_wanted, _FullState, limit=MAX_BUFFERED)
        """Products subscribed on the full channel (from the acks), with their L3 books."""
        self._filled: dict[str, Decimal] = {}  # own orders: cumulative filled size
        self._handlers: dict[str, Callable[[dict[str, Any], float], list[Event]]] = {
            "heartbeat": self._heartbeat,
            "subscriptions": self._subscriptions,
            "ticker": self._ticker,
            "last_match": self._match,
            "match": self._match,
            "snapshot": self._l2_snapshot,
            "l2update": self._l2_update,
            "status": self._status,
            "error": self._error,
        }

    def parse(self, raw: bytes | str, recv_ts: float) -> list[Event]:
        self.last_exch_ts = None
        msg = decode_object(raw, _decode)
        kind = msg.get("type")
        if not isinstance(kind, str):
            raise FrameError("no type")
        t = msg.get("time")
        if isinstance(t, str):
            self.last_exch_ts = parse_rfc3339(t)
        try:
            if kind in FULL_TYPES:
                return self._full(kind, msg, recv_ts)
            handler = self._handlers.get(kind)
            if handler is None:
                self.unknown += 1
                return []
            return handler(msg, recv_ts)
        except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
            raise FrameError(f"{kind}: {type(exc).__name__} {exc}") from None

    def books_of(self, raw: bytes | str) -> list[str] | None:
        msg = peek_object(raw, _decode)
        if msg is None:
            return None
        kind, product = msg.get("type"), msg.get("product_id")
        if kind in _NO_BOOK or (kind in FULL_TYPES and product not in self.full):
            return []  # tickers, matches without an L3 book, heartbeats, acks: no book changed
        return [product] if isinstance(product, str) else None  # book data, or a frame that may be

    # --- helpers ---------------------------------------------------------------------------

    def _seq(self, msg: dict[str, Any]) -> int | None:
        seq = msg.get("sequence")
        if seq is None:
            return None
        if type(seq) is not int:
            raise TypeError("sequence is not an integer")
        return seq

    def _stale(self, group: str, product: str, seq: int | None) -> bool:
        """True (and counted) when ``seq`` is at or below the last one of this kind for the product."""
        if seq is None or not self.accepts(product):  # no state for products nobody asked for
            return False
        key = (group, product)
        last = self._last.get(key)
        if last is not None and seq <= last:
            self.out_of_order += 1
            return True
        self._last[key] = seq
        return False

    # --- channels --------------------------------------------------------------------------

    def _error(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        text = str(msg.get("message") or "error without a message")
        reason = msg.get("reason")
        if reason:
            text = f"{text}: {reason}"
        return [VenueError(self.venue, recv_ts, self.conn, text)]

    def _subscriptions(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        subs: dict[str, list[str]] = {}
        for ch in msg["channels"]:
            if isinstance(ch, str):
                subs[ch] = []
            else:
                subs[str(ch["name"])] = [str(p) for p in ch.get("product_ids") or ()]
        for product in subs.get("matches", ()):  # the minutes before the first match
            self.want_history("candles", product)
        full = {p for p in subs.get("full", ()) if self.accepts(p)}
        self.full.forget([p for p in self.full.books if p not in full])  # unsubscribed: its L3 book is gone
        for product in full:
            if self.full.get(product) is None:
                self.full.start(product)
        return [Subscribed(self.venue, recv_ts, self.conn, subs)]

    def _heartbeat(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        product = str(msg["product_id"])
        seq = self._seq(msg)
        out: list[Event] = [Heartbeat(self.venue, recv_ts, self.conn, seq, self.last_exch_ts)]
        state = self.full.get(product)
        if (
            state is not None
            and state.synced
            and seq is not None
            and state.last_seq is not None
            and seq > state.last_seq
        ):
            # the heartbeat says the product is further on than the last full message we got: lost
            out.append(self._lose(product, state, state.last_seq + 1, seq, recv_ts))
        return out

    def _ticker(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        product = str(msg["product_id"])
        if self._stale("ticker", product, self._seq(msg)):
            return []
        price = optional_amount(msg, "price")
        opened = optional_amount(msg, "open_24h")
        pct = None if price is None or opened is None else change_percent(price, opened, "0.00000001")
        return [
            Ticker(
                self.venue,
                recv_ts,
                product,
                self.last_exch_ts,
                price=price,
                bid=optional_amount(msg, "best_bid"),
                bid_size=optional_amount(msg, "best_bid_size"),
                ask=optional_amount(msg, "best_ask"),
                ask_size=optional_amount(msg, "best_ask_size"),
                volume_24h=optional_amount(msg, "volume_24h"),
                low_24h=optional_amount(msg, "low_24h"),
                high_24h=optional_amount(msg, "high_24h"),
                change_pct_24h=pct,
            )
        ]

    def _trade(self, msg: dict[str, Any], recv_ts: float) -> Trade:
        return Trade(
            self.venue,
            recv_ts,
            str(msg["product_id"]),
            self.last_exch_ts,
            str(msg["trade_id"]),
            amount(msg["price"]),
            amount(msg["size"]),
            _MAKER_TO_AGGRESSOR[msg["side"]],
        )

    def _match(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        """A ``matches``-channel trade (``last_match`` is the most recent one, sent on subscribe)."""
        product = str(msg["product_id"])
        trade = self._trade(msg, recv_ts)
        if self._stale("match", product, self._seq(msg)):
            return []
        return [trade]

    def _status(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        return [
            ProductStatus(
                self.venue,
                recv_ts,
                str(p["id"]),
                self.last_exch_ts,
                str(p.get("status", "")),
                str(p.get("status_message") or ""),
            )
            for p in msg.get("products") or ()
        ]

    def _l2_snapshot(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        bids: list[Level] = [(amount(p), amount(s)) for p, s, *_ in msg["bids"]]
        asks: list[Level] = [(amount(p), amount(s)) for p, s, *_ in msg["asks"]]
        return [BookSnapshot(self.venue, recv_ts, str(msg["product_id"]), self.last_exch_ts, bids, asks)]

    def _l2_update(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        changes = [change(_SIDE[side], text(price), text(size)) for side, price, size in msg["changes"]]
        return [BookUpdate(self.venue, recv_ts, str(msg["product_id"]), self.last_exch_ts, changes)]

    # --- full (L3) and user ----------------------------------------------------------------

    def _full(self, kind: str, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        product = str(msg["product_id"])
        seq = self._seq(msg)
        out: list[Event] = []
        if "user_id" in msg or "profile_id" in msg:
            out.extend(self._own_order(kind, msg, recv_ts))
        if kind == "match" and not self._stale("match", product, seq):
            out.append(self._trade(msg, recv_ts))
        state = self.full.get(product)
        if state is None or seq is None:
            return out  # not on the full channel here (user channel only): no L3 book to keep
        if not state.synced:
            self.full.hold(product, state, msg)
            return out
        last = state.last_seq
        if last is not None and seq <= last:
            self.out_of_order += 1
            return out
        if last is not None and seq != last + 1:
            out.append(self._lose(product, state, last + 1, seq, recv_ts, msg))
            return out
        state.last_seq = seq
        update = self._apply_full(state.book, kind, msg)
        if update is not None:
            out.append(BookUpdate(self.venue, recv_ts, product, self.last_exch_ts, [update]))
        return out

    def _lose(
        self,
        product: str,
        state: _FullState,
        expected: int,
        received: int,
        recv_ts: float,
        msg: dict[str, Any] | None = None,
    ) -> Gap:
        """A gap on the full channel: the L3 book is dropped and refetched; messages are kept meanwhile."""
        self.full.lose(product, state, msg)
        return Gap(self.venue, recv_ts, self.conn, expected, received, f"sequence:{product}")

    @staticmethod
    def _apply_full(book: L3Book, kind: str, msg: dict[str, Any]) -> Change | None:
        if kind == "open":
            return book.open(
                str(msg["order_id"]), _SIDE[msg["side"]], amount(msg["price"]), amount(msg["remaining_size"])
            )
        if kind == "done":
            return book.done(str(msg["order_id"]))
        if kind == "match":
            return book.match(str(msg["maker_order_id"]), amount(msg["size"]))
        if kind == "change":
            new_size = msg.get("new_size")
            if new_size is None:
                return None  # a market order's funds changed: not on the book
            return book.change(str(msg["order_id"]), amount(new_size))
        return None  # received (not on the book yet), activate (a stop order armed)

    def want_snapshot(self, channel: str, product: str) -> None:
        if channel == "full":
            self.full.resync(product)

    def apply_snapshot(self, channel: str, product: str, body: bytes, recv_ts: float) -> list[Event]:
        if channel == "candles":
            return self._candles(product, body, recv_ts)
        state = self.full.get(product)
        if state is None:
            return []  # unsubscribed meanwhile
        try:
            data = _decode(body)
            seq = data["sequence"]
            if type(seq) is not int:
                raise TypeError("sequence is not an integer")
            bids = [(amount(p), amount(s), str(oid)) for p, s, oid in data["bids"]]
            asks = [(amount(p), amount(s), str(oid)) for p, s, oid in data["asks"]]
        except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
            raise FrameError(f"{product} level-3 snapshot: {type(exc).__name__} {exc}") from None
        state.book.load(bids, asks)
        state.last_seq = seq
        top_bids, top_asks = state.book.levels()
        snapshot: list[Event] = [BookSnapshot(self.venue, recv_ts, product, None, top_bids, top_asks)]

        def replay(msg: dict[str, Any]) -> list[Event]:  # held while the snapshot was on its way
            t = msg.get("time")
            self.last_exch_ts = parse_rfc3339(t) if isinstance(t, str) else None
            events = self._full(str(msg["type"]), msg, recv_ts)
            return [e for e in events if not isinstance(e, (Trade, OrderUpdate))]  # shown when they came

        return self.full.load(product, state, replay, snapshot)

    def _candles(self, product: str, body: bytes, recv_ts: float) -> list[Event]:
        """REST candles ``[[time, low, high, open, close, volume], …]``, newest first, as JSON numbers
        (decoded from their text: exact)."""
        try:
            rows = decode_exact(body)
            out: list[Event] = [
                Candle(
                    self.venue,
                    recv_ts,
                    product,
                    None,
                    whole(t),
                    60,
                    number(o),
                    number(h),
                    number(lo),
                    number(c),
                    number(v),
                )
                for t, lo, h, o, c, v in reversed(rows)
            ]
        except (msgspec.DecodeError, TypeError, ValueError) as exc:
            raise FrameError(f"{product} candles: {type(exc).__name__} {exc}") from None
        return out

    def _own_order(self, kind: str, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        if kind == "match":  # our order is the taker when the taker ids are filled in, else the maker
            order_id = str(msg["taker_order_id"] if msg.get("taker_user_id") else msg["maker_order_id"])
        else:
            order_id = str(msg["order_id"])
        filled = self._filled.get(order_id, Decimal(0))
        status = kind
        leaves = optional_amount(msg, "remaining_size") or (
            optional_amount(msg, "size") if kind == "received" else None
        )
        if kind == "match":
            filled += Decimal(amount(msg["size"]))
            self._filled[order_id] = filled
            if len(self._filled) > 1000:
                self._filled.pop(next(iter(self._filled)))
        elif kind == "done":
            status = f"done ({msg.get('reason', '')})"
            self._filled.pop(order_id, None)
        elif kind == "change":
            leaves = optional_amount(msg, "new_size")
        return [
            OrderUpdate(
                self.venue,
                recv_ts,
                str(msg["product_id"]),
                self.last_exch_ts,
                order_id,
                _ORDER_SIDE[msg["side"]],
                str(msg.get("order_type", "")),
                status,
                optional_amount(msg, "price"),
                format(filled, "f") if filled else None,
                leaves,
                None,
                client_order_id=str(msg.get("client_oid", "")),
            )
        ]
