"""Coinbase Advanced Trade WebSocket (``--venue coinbase``). See protocols.md section 1.

Wire facts this adapter relies on:
- one channel per subscribe frame; ``heartbeats`` (plural) always subscribed so quiet channels live;
- a fresh ES256/EdDSA JWT on every frame for a private channel (``user``, ``futures_balance_summary``),
  none for public ones;
- ``sequence_num`` is ONE counter per connection across every channel, restarting at 0: a jump is a
  gap (every level2 book on the connection is unsafe), a lower number is stale and ignored;
- level2 arrives on channel ``l2_data`` with sides ``bid``/``offer`` and absolute sizes;
- ``market_trades.side`` is the MAKER side: the aggressor is the opposite;
- errors are not enveloped: ``{"type":"error","message":…}``; unknown message types are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from tickerterm.core import native
from tickerterm.core.clock import parse_rfc3339
from tickerterm.core.errors import FrameError
from tickerterm.core.events import (
    MAX_DIGITS,
    BalanceUpdate,
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
from tickerterm.venues.auth import ENV_KEY, ENV_KEY_FILE, ENV_SECRET, CdpKey, build_jwt, load_cdp_key
from tickerterm.venues.base import ChannelSpec, ErrorClass, Parser, VenueAdapter, decode_object, peek_object
from tickerterm.venues.fields import amount, optional_amount, optional_signed, text, whole

MARKET_URL = "wss://advanced-trade-ws.coinbase.com"
USER_URL = "wss://advanced-trade-ws-user.coinbase.com"
CANDLE_INTERVAL = 300
"""Advanced Trade candles are 5-minute buckets."""

CHANNELS: dict[str, ChannelSpec] = {
    "heartbeats": ChannelSpec("heartbeats", "heartbeat", per_product=False),
    "status": ChannelSpec("status", "status"),
    "ticker": ChannelSpec("ticker", "ticker"),
    "ticker_batch": ChannelSpec("ticker_batch", "ticker"),
    "level2": ChannelSpec("level2", "book"),
    "market_trades": ChannelSpec("market_trades", "trades"),
    "candles": ChannelSpec("candles", "candles"),
    "user": ChannelSpec("user", "user", private=True, endpoint="user"),
    "futures_balance_summary": ChannelSpec(
        "futures_balance_summary", "balance", private=True, endpoint="user", per_product=False
    ),
}

_decode = msgspec.json.decode  # 2.3x the stdlib's speed on recorded frames (bench/README.md)


_Decimal = Annotated[str, msgspec.Meta(max_length=MAX_DIGITS)]
"""Decimal text of bounded length, checked in C while decoding (the characters are checked after)."""


class _L2Level(msgspec.Struct, gc=False):  # strings only: never in a cycle, so never tracked
    side: Literal["bid", "offer"]  # decoded to the literal itself: no string made per update
    price_level: _Decimal
    new_quantity: _Decimal


class _L2Event(msgspec.Struct, gc=False):  # its list of updates holds untracked structs only
    type: Literal["snapshot", "update"]
    product_id: str
    updates: list[_L2Level]


class _L2Frame(msgspec.Struct, gc=False):
    events: list[_L2Event]
    sequence_num: int | None = None
    timestamp: str | None = None


_decode_l2 = msgspec.json.Decoder(_L2Frame).decode
"""Typed decoding of ``l2_data`` frames, the bulk of the feed: fields we do not use are skipped in C
instead of becoming dicts. A frame it rejects goes through the generic path, which names the fault."""
_L2_PREFIX = b'{"channel":"l2_data",'
_L2_KEYS = (
    *(b"events", b"sequence_num", b"timestamp"),
    *(b"type", b"product_id", b"updates", b"update"),
    *(b"side", b"price_level", b"new_quantity"),
)
"""An ``l2_data`` frame's shape for ``native.level_frame``: the frame's events, sequence number and time;
an event's type, product and updates, and the type it reads (updates: snapshots go to msgspec); an
update's side, price and size."""


class _Trade(msgspec.Struct, gc=False):
    trade_id: str | int
    product_id: str
    price: _Decimal
    size: _Decimal
    side: Literal["BUY", "SELL"]
    time: str | None = None


class _TradeEvent(msgspec.Struct, gc=False):
    trades: list[_Trade]


class _TradeFrame(msgspec.Struct, gc=False):
    events: list[_TradeEvent]
    sequence_num: int | None = None
    timestamp: str | None = None


_decode_trades = msgspec.json.Decoder(_TradeFrame).decode
"""Typed decoding of ``market_trades`` frames: a trade is a small struct, not a dict of six keys (a
subscription's first frame restates hundreds of trades)."""
_TRADES_PREFIX = b'{"channel":"market_trades",'

_NO_BOOK = frozenset(set(CHANNELS) - {"level2"} | {"subscriptions"})
"""Channels whose frames never change a book (``l2_data`` and anything unnamed may)."""
_MAKER_TO_AGGRESSOR: dict[str, Side] = {"BUY": "sell", "SELL": "buy"}
_ORDER_SIDE: dict[str, Side] = {"BUY": "buy", "SELL": "sell"}
_TRADE_FIELDS = ("product_id", "trade_id", "price", "size", "side", "time")
"""A ``market_trades`` trade's fields, in the order ``native.trade_events`` reads them."""
_TRADE_SLOTS = native.plain_slots(Trade)
_BOOK_SIDE: dict[str, BookSide] = {"bid": "bid", "offer": "ask"}


class CoinbaseAdvancedTrade(VenueAdapter):
    name = "coinbase"
    title = "Coinbase Advanced Trade"
    endpoints: ClassVar[dict[str, str]] = {"market": MARKET_URL, "user": USER_URL}
    channels = CHANNELS
    aliases: ClassVar[dict[str, str]] = {
        "book": "level2",
        "l2": "level2",
        "trades": "market_trades",
        "heartbeat": "heartbeats",
        "balance": "futures_balance_summary",
    }
    default_channels = ("ticker", "level2", "market_trades", "candles")
    keepalive_channels = ("heartbeats",)
    max_frame_size = 32 * 2**20  # BTC-USD snapshots are several MB
    outbound_per_second = 8.0
    stale_after = 10.0  # heartbeats come every second
    credential_help = f"set {ENV_KEY} and {ENV_SECRET}, or {ENV_KEY_FILE}"

    credential_name = "a Coinbase API key"

    credentials: CdpKey | None

    @classmethod
    def load_credentials(cls, key_file: str | None = None) -> CdpKey | None:
        return load_cdp_key(key_file=key_file)

    def parser(self, conn: str) -> CoinbaseParser:
        return CoinbaseParser(self.name, conn)

    def _frame(self, kind: str, channel: str, products: list[str] | None) -> str:
        spec = self.channel(channel)
        msg: dict[str, Any] = {"type": kind}
        if products is not None:
            msg["product_ids"] = products if spec.per_product else []
        msg["channel"] = spec.name
        if spec.private:
            if self.credentials is None:
                raise self.missing_credentials(spec.name)
            msg["jwt"] = build_jwt(self.credentials, self.clock())
        return json.dumps(msg, separators=(",", ":"))

    def subscribe_frames(self, channel: str, products: list[str]) -> list[str]:
        return [self._frame("subscribe", channel, products)]

    def unsubscribe_frames(
        self, channel: str, products: list[str] | None, *, listed: list[str] | None = None
    ) -> list[str]:
        return [self._frame("unsubscribe", channel, products)]

    def resync_frames(self, channel: str, products: list[str]) -> list[str]:
        # resubscribing level2 makes the venue send a fresh snapshot for each product
        return self.unsubscribe_frames("level2", products) + self.subscribe_frames("level2", products)

    def classify_error(self, message: str) -> ErrorClass:
        text = message.lower()
        if "authentication" in text or "unauthorized" in text or "jwt" in text:
            return "auth"
        if "failure to subscribe" in text or "failed to subscribe" in text or "invalid" in text:
            return "command"
        return "transient"


class CoinbaseParser(Parser):
    def __init__(self, venue: str, conn: str) -> None:
        super().__init__(venue, conn)
        self.last_seq: int | None = None
        self._times: dict[str, float | None] = {}  # trades of one batch share their time text
        self._handlers: dict[str, Callable[[list[Any], float | None, float, list[Event]], None]] = {
            "l2_data": self._l2,
            "market_trades": self._trades,
            "ticker": self._ticker,
            "ticker_batch": self._ticker,
            "heartbeats": self._heartbeat,
            "subscriptions": self._subscriptions,
            "candles": self._candles,
            "status": self._status,
            "user": self._user,
            "futures_balance_summary": self._balance,
        }

    def parse(self, raw: bytes | str, recv_ts: float) -> list[Event]:
        self.last_exch_ts = None
        if type(raw) is bytes:
            if raw.startswith(_L2_PREFIX):
                scan = native.level_frame  # straight from the JSON, when it reads it without any doubt
                if scan is not None:
                    scanned = scan(raw, _L2_KEYS, _BOOK_SIDE, MAX_DIGITS)
                    if scanned is not None:
                        return self._l2_scanned(*scanned, recv_ts)
                try:
                    frame = _decode_l2(raw)
                except msgspec.DecodeError:  # ValidationError included
                    pass
                else:
                    return self._l2_typed(frame, recv_ts)
            elif raw.startswith(_TRADES_PREFIX):
                try:
                    trades = _decode_trades(raw)
                except msgspec.DecodeError:  # the generic path names what is wrong
                    pass
                else:
                    return self._trades_typed(trades, recv_ts)
        msg = decode_object(raw, _decode)
        channel = msg.get("channel")
        if channel is None:
            if msg.get("type") == "error":
                text = str(msg.get("message", "")) or "error without a message"
                return [VenueError(self.venue, recv_ts, self.conn, text)]
            self.unknown += 1
            return []
        seq = msg.get("sequence_num")
        if seq is not None and not isinstance(seq, int):
            raise FrameError("sequence_num is not an integer")
        last = self.last_seq
        if seq is not None and last is not None and seq <= last:
            self.out_of_order += 1
            return []
        handler = self._handlers.get(channel)
        if handler is None:
            self.unknown += 1
            if seq is not None:
                return self._advance(seq, last, recv_ts, [])
            return []
        ts = msg.get("timestamp")
        exch_ts = parse_rfc3339(ts) if isinstance(ts, str) else None
        self.last_exch_ts = exch_ts
        events = msg.get("events")
        if not isinstance(events, list):
            raise FrameError(f"{channel}: events is not a list")
        out: list[Event] = []
        try:
            handler(events, exch_ts, recv_ts, out)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # the frame is lost to us: leave last_seq alone so the next frame shows the gap
            raise FrameError(f"{channel}: {type(exc).__name__} {exc}") from None
        if seq is None:
            return out
        return self._advance(seq, last, recv_ts, out)

    def books_of(self, raw: bytes | str) -> list[str] | None:
        # level2 is on the connection-wide sequence: a lost l2_data frame may have touched any book
        msg = peek_object(raw, _decode)
        if msg is not None and msg.get("channel") in _NO_BOOK:
            return []
        return None

    def _l2_typed(self, frame: _L2Frame, recv_ts: float) -> list[Event]:
        """``_l2`` for a typed frame: the same events, with the update loop written inline."""
        seq, last = frame.sequence_num, self.last_seq
        if seq is not None and last is not None and seq <= last:
            self.out_of_order += 1
            return []
        ts = frame.timestamp
        exch_ts = self.last_exch_ts = parse_rfc3339(ts) if ts is not None else None
        venue = self.venue
        sides = _BOOK_SIDE
        out: list[Event] = []
        try:
            for ev in frame.events:
                if ev.type != "update":
                    self._l2([msgspec.to_builtins(ev)], exch_ts, recv_ts, out)
                    continue
                changes = native.level_changes(
                    ev.updates, sides, "side", "price_level", "new_quantity", MAX_DIGITS
                )
                out.append(BookUpdate(venue, recv_ts, ev.product_id, exch_ts, changes))
        except (KeyError, TypeError, ValueError) as exc:
            raise FrameError(f"l2_data: {type(exc).__name__} {exc}") from None
        if seq is None:
            return out
        return self._advance(seq, last, recv_ts, out)

    def _l2_scanned(
        self, seq: int | None, ts: str | None, events: list[tuple[str, list[Change]]], recv_ts: float
    ) -> list[Event]:
        """``_l2_typed`` for a frame read by ``native.level_frame``: its updates are checked and converted."""
        last = self.last_seq
        if seq is not None and last is not None and seq <= last:
            self.out_of_order += 1
            return []
        exch_ts = self.last_exch_ts = parse_rfc3339(ts) if ts is not None else None
        venue = self.venue
        out: list[Event] = [
            BookUpdate(venue, recv_ts, product, exch_ts, changes) for product, changes in events
        ]
        if seq is None:
            return out
        return self._advance(seq, last, recv_ts, out)

    def _trades_typed(self, frame: _TradeFrame, recv_ts: float) -> list[Event]:
        """``_trades`` for a typed frame: the same events and checks, written inline."""
        seq, last = frame.sequence_num, self.last_seq
        if seq is not None and last is not None and seq <= last:
            self.out_of_order += 1
            return []
        ts = frame.timestamp
        exch_ts = self.last_exch_ts = parse_rfc3339(ts) if ts is not None else None
        venue, times = self.venue, self._times
        out: list[Event] = []
        try:
            for ev in frame.events:  # checked and made events in one loop (in C where it was built)
                out += native.trade_events(
                    ev.trades,
                    Trade,
                    _TRADE_SLOTS,
                    venue,
                    recv_ts,
                    exch_ts,
                    _TRADE_FIELDS,
                    _MAKER_TO_AGGRESSOR,
                    times,
                    parse_rfc3339,
                    MAX_DIGITS,
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise FrameError(f"market_trades: {type(exc).__name__} {exc}") from None
        if seq is None:
            return out
        return self._advance(seq, last, recv_ts, out)

    def _advance(self, seq: int, last: int | None, recv_ts: float, out: list[Event]) -> list[Event]:
        expected = 0 if last is None else last + 1
        self.last_seq = seq
        if seq != expected:
            out.insert(0, Gap(self.venue, recv_ts, self.conn, expected, seq, "connection"))
        return out

    # --- channels --------------------------------------------------------------------------

    def _l2(self, events: list[Any], exch_ts: float | None, recv_ts: float, out: list[Event]) -> None:
        venue = self.venue
        for ev in events:
            product = ev["product_id"]
            kind = ev["type"]
            if kind == "snapshot":
                bids: list[Level] = []
                asks: list[Level] = []
                for u in ev["updates"]:
                    side = u["side"]
                    level = (amount(u["price_level"]), amount(u["new_quantity"]))
                    if side == "bid":
                        bids.append(level)
                    elif side == "offer":
                        asks.append(level)
                    else:
                        raise ValueError(f"unknown side {side!r}")
                out.append(BookSnapshot(venue, recv_ts, product, exch_ts, bids, asks))
            elif kind == "update":
                changes = [
                    change(_BOOK_SIDE[u["side"]], text(u["price_level"]), text(u["new_quantity"]))
                    for u in ev["updates"]
                ]
                out.append(BookUpdate(venue, recv_ts, product, exch_ts, changes))
            else:
                raise ValueError(f"unknown l2_data event type {kind!r}")

    def _trades(self, events: list[Any], exch_ts: float | None, recv_ts: float, out: list[Event]) -> None:
        venue = self.venue
        times = self._times
        for ev in events:
            for t in ev["trades"]:
                text = t.get("time")
                t_ts = times.get(text) if text is not None else None
                if t_ts is None and text is not None:
                    t_ts = parse_rfc3339(text) if isinstance(text, str) else None
                    if len(times) > 256:
                        times.clear()
                    times[text] = t_ts
                out.append(
                    Trade(
                        venue,
                        recv_ts,
                        t["product_id"],
                        t_ts if t_ts is not None else exch_ts,
                        str(t["trade_id"]),
                        amount(t["price"]),
                        amount(t["size"]),
                        _MAKER_TO_AGGRESSOR[t["side"]],
                    )
                )

    def _ticker(self, events: list[Any], exch_ts: float | None, recv_ts: float, out: list[Event]) -> None:
        venue = self.venue
        for ev in events:
            for t in ev["tickers"]:
                out.append(
                    Ticker(
                        venue,
                        recv_ts,
                        t["product_id"],
                        exch_ts,
                        price=optional_amount(t, "price"),
                        bid=optional_amount(t, "best_bid"),
                        bid_size=optional_amount(t, "best_bid_quantity"),
                        ask=optional_amount(t, "best_ask"),
                        ask_size=optional_amount(t, "best_ask_quantity"),
                        volume_24h=optional_amount(t, "volume_24_h"),
                        low_24h=optional_amount(t, "low_24_h"),
                        high_24h=optional_amount(t, "high_24_h"),
                        change_pct_24h=optional_signed(t, "price_percent_chg_24_h"),
                    )
                )

    def _candles(self, events: list[Any], exch_ts: float | None, recv_ts: float, out: list[Event]) -> None:
        venue = self.venue
        for ev in events:
            for c in ev["candles"]:
                out.append(
                    Candle(
                        venue,
                        recv_ts,
                        c["product_id"],
                        exch_ts,
                        whole(c["start"]),
                        CANDLE_INTERVAL,
                        amount(c["open"]),
                        amount(c["high"]),
                        amount(c["low"]),
                        amount(c["close"]),
                        amount(c["volume"]),
                    )
                )

    def _heartbeat(self, events: list[Any], exch_ts: float | None, recv_ts: float, out: list[Event]) -> None:
        for ev in events:
            counter = ev.get("heartbeat_counter")
            if counter is not None:  # the docs' example shows a string; the wire sends an integer
                counter = whole(counter)
            out.append(Heartbeat(self.venue, recv_ts, self.conn, counter, exch_ts))

    def _subscriptions(
        self, events: list[Any], exch_ts: float | None, recv_ts: float, out: list[Event]
    ) -> None:
        for ev in events:
            subs = ev["subscriptions"]
            if not isinstance(subs, dict):
                raise TypeError("subscriptions is not an object")
            out.append(
                Subscribed(
                    self.venue, recv_ts, self.conn, {str(k): [str(p) for p in v] for k, v in subs.items()}
                )
            )

    def _status(self, events: list[Any], exch_ts: float | None, recv_ts: float, out: list[Event]) -> None:
        for ev in events:
            for p in ev["products"]:
                out.append(
                    ProductStatus(
                        self.venue,
                        recv_ts,
                        p["id"],
                        exch_ts,
                        str(p.get("status", "")),
                        str(p.get("status_message", "")),
                    )
                )

    def _user(self, events: list[Any], exch_ts: float | None, recv_ts: float, out: list[Event]) -> None:
        for ev in events:
            snapshot = ev.get("type") == "snapshot"
            for o in ev.get("orders") or ():
                out.append(
                    OrderUpdate(
                        self.venue,
                        recv_ts,
                        o["product_id"],
                        exch_ts,
                        str(o["order_id"]),
                        _ORDER_SIDE[o["order_side"]],
                        str(o.get("order_type", "")),
                        str(o["status"]),
                        optional_amount(o, "limit_price"),
                        optional_amount(o, "cumulative_quantity"),
                        optional_amount(o, "leaves_quantity"),
                        optional_amount(o, "avg_price"),
                        client_order_id=str(o.get("client_order_id", "")),
                        snapshot=snapshot,
                        fee=optional_amount(o, "total_fees"),
                    )
                )

    def _balance(self, events: list[Any], exch_ts: float | None, recv_ts: float, out: list[Event]) -> None:
        for ev in events:
            summary = ev["fcm_balance_summary"]
            out.append(BalanceUpdate(self.venue, recv_ts, exch_ts, _flatten(summary)))


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif value is not None:
            out[name] = str(value)
    return out
