"""CoinAPI WebSocket API v1 (``--venue coinapi``). See protocols.md section 3.

Wire facts this adapter relies on:
- one ``hello`` states the whole scope (data types x symbol filters) and may be resent at any time;
  tickerterm sends a new ``hello`` whenever its subscriptions change (``subscribe``/``unsubscribe`` add
  and remove, but the scope is a cross product either way);
- ``subscribe_filter_symbol_id`` entries are prefix matches; a trailing ``$`` makes them exact, which
  is what tickerterm sends;
- products are ``EXCHANGE:BASE-QUOTE`` (``COINBASE:BTC-USD``) for the symbol ids ``EXCHANGE_SPOT_BASE_QUOTE``;
- prices and sizes are JSON numbers: decoded straight to ``Decimal`` from their text, so kept exact;
- ``sequence`` is per (type, symbol) and per connection: a jump on ``book`` makes that book unsafe
  (a new snapshot is asked for by resending ``hello``); on trades and quotes it is reported;
- ``book`` sends ``is_snapshot`` true first, but updates may come before it: they are dropped (counted)
  until the snapshot; ``book5/20/50`` are whole top-N books every time;
- the heartbeat type is spelt ``hearbeat``; ``reconnect`` announces a close before ``before_time``;
  errors are final (the server closes): shown, not retried in a loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

from tickerterm.core.clock import parse_rfc3339
from tickerterm.core.errors import ConfigError, CredentialsError, FrameError
from tickerterm.core.events import (
    BookSnapshot,
    BookUpdate,
    Candle,
    Change,
    Event,
    Gap,
    Heartbeat,
    Level,
    Side,
    Ticker,
    Trade,
    VenueError,
    change,
)
from tickerterm.venues.auth import ApiToken, load_token
from tickerterm.venues.base import ChannelSpec, ErrorClass, Parser, VenueAdapter, decode_object, peek_object
from tickerterm.venues.fields import decode_exact, number
from tickerterm.venues.session import Session

MARKET_URL = "wss://ws.coinapi.io/v1/"
REST_URL = "https://rest.coinapi.io"
ENV_KEY = "COINAPI_KEY"
DEFAULT_EXCHANGE = "COINBASE"
PERIOD = "1MIN"

CHANNELS: dict[str, ChannelSpec] = {  # every data type needs the API key
    "trade": ChannelSpec("trade", "trades", private=True),
    "quote": ChannelSpec("quote", "ticker", private=True),
    "book": ChannelSpec("book", "book", private=True),
    "book5": ChannelSpec("book5", "book", private=True),
    "book20": ChannelSpec("book20", "book", private=True),
    "book50": ChannelSpec("book50", "book", private=True),
    "ohlcv": ChannelSpec("ohlcv", "candles", private=True),
}
PERIODS: dict[str, int] = {"1SEC": 1, "1MIN": 60, "5MIN": 300, "15MIN": 900, "1HRS": 3600, "1DAY": 86400}
_PRODUCT = re.compile(r"^([A-Z0-9]{1,32}):([A-Z0-9]{1,20})-([A-Z0-9]{1,20})$")
_SYMBOL = re.compile(r"^([A-Z0-9]{1,32})_SPOT_([A-Z0-9]{1,20})_([A-Z0-9]{1,20})$")
_TAKER: dict[str, Side] = {"BUY": "buy", "SELL": "sell", "BUY_ESTIMATED": "buy", "SELL_ESTIMATED": "sell"}
_decode = decode_exact  # prices are JSON numbers: decoded from their own text, exact


def symbol_id(product: str) -> str:
    """``COINBASE:BTC-USD`` -> ``COINBASE_SPOT_BTC_USD``."""
    m = _PRODUCT.match(product)
    if m is None:
        raise ConfigError(
            f"unknown product {product!r}: expected EXCHANGE:BASE-QUOTE such as COINBASE:BTC-USD"
        )
    return f"{m.group(1)}_SPOT_{m.group(2)}_{m.group(3)}"


def product_of(symbol: str) -> str:
    """``COINBASE_SPOT_BTC_USD`` -> ``COINBASE:BTC-USD``."""
    m = _SYMBOL.match(symbol)
    if m is None:
        raise ValueError(f"not a spot symbol id: {symbol[:40]!r}")
    return f"{m.group(1)}:{m.group(2)}-{m.group(3)}"


class CoinApiSession(Session):
    """CoinAPI takes the whole subscription in one ``hello``: every change (a product added or left, a
    resync) sends the whole scope again. It ignores a symbol it does not know instead of refusing it, so
    a product that brought no data at all after ``CoinApi.silent_after`` seconds is reported by name."""

    adapter: CoinApi

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._quiet_at: float | None = None
        self._heard: set[str] = set()

    def _scope(self) -> list[str]:
        scope = self.wanted.scope()
        return self.adapter.scope_frames(scope) if scope else []

    def restore_frames(self) -> list[str]:
        return self._scope()

    def add_frames(self, channel: str, products: list[str]) -> list[str]:
        return self._scope()

    def remove_frames(self, channel: str, removed: list[str], whole: bool) -> list[str]:
        return self._scope()

    def resubscribe_frames(self, again: dict[str, list[str]]) -> list[str]:
        return self._scope()

    def resync_frames(self, channel: str, products: list[str]) -> list[str] | None:
        return self._scope()  # a new hello brings new book snapshots

    def opened(self, now: float) -> list[Event]:
        self._quiet_at = now + self.adapter.silent_after
        return super().opened(now)

    def received(self, raw: bytes | str, now: float) -> list[Event]:
        out = super().received(raw, now)
        if self._quiet_at is not None:
            heard = self._heard
            for ev in out:
                product = getattr(ev, "product", None)
                if product is not None and type(ev) in _MARKET:
                    heard.add(product)
        return out

    def wake_at(self) -> float | None:
        base = super().wake_at()
        if self._quiet_at is None:
            return base
        return self._quiet_at if base is None else min(base, self._quiet_at)

    def timer(self, now: float) -> list[Event]:
        out = super().timer(now)
        if self._quiet_at is not None and now >= self._quiet_at:
            self._quiet_at = None  # once per connection
            out += self._integrity([self._silence(p, now) for p in self._silent()], now)
        return out

    def _silent(self) -> list[str]:
        """Products subscribed here for market data that has not brought any."""
        subs, wanted = self.wanted.subs, {}
        for channel in subs.channels():
            if self.adapter.channel(channel).kind in ("ticker", "trades", "book", "candles"):
                wanted.update(dict.fromkeys(subs.products(channel)))
        return [p for p in wanted if p not in self._heard]

    def _silence(self, product: str, now: float) -> VenueError:
        return VenueError(
            self.venue,
            now,
            self.conn,
            f"no data for {product} ({symbol_id(product)}) after {self.adapter.silent_after:.0f} s: "
            f"{self.adapter.title} sends nothing for a symbol it does not know; check the product",
            product=product,
        )


_MARKET = (Ticker, Trade, BookSnapshot, BookUpdate, Candle)

SILENT_AFTER = 15.0
"""No acknowledgement and no error for an unknown symbol: only silence says it."""


class CoinApi(VenueAdapter):
    name = "coinapi"
    title = "CoinAPI"
    endpoints: ClassVar[dict[str, str]] = {"market": MARKET_URL, "rest": REST_URL}
    channels = CHANNELS
    aliases: ClassVar[dict[str, str]] = {
        "trades": "trade",
        "ticker": "quote",
        "l2": "book",
        "candles": "ohlcv",
    }
    default_channels = ("quote", "book", "trade", "ohlcv")
    default_products = ("COINBASE:BTC-USD", "COINBASE:ETH-USD")
    session_type = CoinApiSession
    silent_after = SILENT_AFTER
    stale_after = 10.0  # a hearbeat after every second of silence
    outbound_per_second = 4.0
    credential_help = f'set {ENV_KEY} (or --key-file with {{"apikey": …}})'

    credential_name = "a CoinAPI key"

    credentials: ApiToken | None

    @classmethod
    def load_credentials(cls, key_file: str | None = None) -> ApiToken | None:
        return load_token(ENV_KEY, "apikey", key_file=key_file)

    def normalize_product(self, product: str) -> str:
        p = product.strip().upper()
        if _SYMBOL.match(p):
            return product_of(p)
        if ":" not in p:
            p = f"{DEFAULT_EXCHANGE}:{p}"
        symbol_id(p)  # raises ConfigError naming the form
        return p

    def base_quote(self, product: str) -> tuple[str, str] | None:
        """``COINBASE:BTC-USD`` -> ``("BTC", "USD")``: the exchange is where, not what."""
        return super().base_quote(product.partition(":")[2])

    def connect_headers(self, endpoint: str) -> dict[str, str]:
        if self.credentials is None:
            raise CredentialsError(f"CoinAPI needs {self.credential_name}: {self.credential_help}")
        return {"X-CoinAPI-Key": self.credentials.secret.reveal()}  # the key never goes in a frame

    def snapshot_url(self, channel: str, product: str) -> str | None:
        if channel != "ohlcv":
            return None
        base = self.urls["rest"].rstrip("/")
        return f"{base}/v1/ohlcv/{symbol_id(product)}/latest?period_id={PERIOD}&limit=300"

    def snapshot_headers(self, channel: str, product: str) -> dict[str, str]:
        return self.connect_headers("market")

    def parser(self, conn: str) -> CoinApiParser:
        return CoinApiParser(self.name, conn)

    def scope_frames(self, subs: Mapping[str, list[str]]) -> list[str]:
        types = [c for c in subs if c in CHANNELS]
        products = sorted({p for c in types for p in subs[c]})
        msg: dict[str, Any] = {
            "type": "hello",
            "heartbeat": True,
            "subscribe_data_type": types,
            "subscribe_filter_symbol_id": [f"{symbol_id(p)}$" for p in products],  # $: exact, not a prefix
        }
        if "ohlcv" in types:
            msg["subscribe_filter_period_id"] = [PERIOD]
        return [json.dumps(msg, separators=(",", ":"))]

    def subscribe_frames(self, channel: str, products: list[str]) -> list[str]:
        return self.scope_frames({channel: products})

    def unsubscribe_frames(
        self, channel: str, products: list[str] | None, *, listed: list[str] | None = None
    ) -> list[str]:
        return [json.dumps({"type": "unsubscribe", "subscribe_data_type": [channel]})]

    def gap_products(self, gap: Gap, book_products: list[str]) -> list[str]:
        kind, _, product = gap.scope.partition(":")
        return [product] if kind.startswith("book") and product in book_products else []

    def wire_symbol(self, product: str) -> str:
        return symbol_id(product)

    def classify_error(self, message: str) -> ErrorClass:
        text = message.lower()
        if "api key" in text or "apikey" in text or "unauthorized" in text or "forbidden" in text:
            return "auth"
        if "reconnect before" in text:
            return "reconnect"
        if "buffered messages" in text:
            return "transient"  # the client was too slow: the server drops it; come back
        return "fatal"  # CoinAPI errors are final: the server closes after sending one


class CoinApiParser(Parser):
    def __init__(self, venue: str, conn: str) -> None:
        super().__init__(venue, conn)
        self._seq: dict[tuple[str, str], int] = {}
        self._snapshotted: set[str] = set()
        """Symbols whose ``book`` snapshot has come (updates before it are dropped)."""
        self.before_snapshot = 0
        self._handlers: dict[str, Callable[[dict[str, Any], float], list[Event]]] = {
            "trade": self._trade,
            "quote": self._quote,
            "book": self._book,
            "book5": self._top,
            "book20": self._top,
            "book50": self._top,
            "ohlcv": self._ohlcv,
            "hearbeat": self._heartbeat,
            "heartbeat": self._heartbeat,  # in case the spelling is ever fixed
            "reconnect": self._reconnect,
            "error": self._error,
        }

    def parse(self, raw: bytes | str, recv_ts: float) -> list[Event]:
        self.last_exch_ts = None
        msg = decode_object(raw, _decode)
        kind = msg.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            self.unknown += 1
            return []
        try:
            t = msg.get("time_exchange")
            if isinstance(t, str):
                self.last_exch_ts = parse_rfc3339(t)
            return handler(msg, recv_ts)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise FrameError(f"{kind}: {type(exc).__name__} {exc}") from None

    def books_of(self, raw: bytes | str) -> list[str] | None:
        msg = peek_object(raw, _decode)
        if msg is None:
            return None
        if msg.get("type") not in ("book", "book5", "book20", "book50"):
            return []
        try:
            return [product_of(str(msg["symbol_id"]))]
        except (KeyError, ValueError):
            return None

    def want_snapshot(self, channel: str, product: str) -> None:
        if channel == "book":  # the resent hello brings a new snapshot; updates wait for it
            self._snapshotted.discard(symbol_id(product))

    def _sequenced(self, kind: str, msg: dict[str, Any], recv_ts: float) -> tuple[str, list[Event]] | None:
        """The product, and a Gap when this (type, symbol) skipped numbers; None if the message is old."""
        symbol = str(msg["symbol_id"])
        product = product_of(symbol)
        if not self.accepts(product):  # no sequence state for products nobody asked for
            self.unsolicited += 1
            return None
        seq = msg.get("sequence")
        out: list[Event] = []
        if seq is not None:
            if type(seq) is not int:
                raise TypeError("sequence is not an integer")
            key = (kind, symbol)
            last = self._seq.get(key)
            if last is not None and seq <= last:
                self.out_of_order += 1
                return None
            self._seq[key] = seq
            if last is not None and seq != last + 1:
                out.append(Gap(self.venue, recv_ts, self.conn, last + 1, seq, f"{kind}:{product}"))
                if kind == "book":
                    self._snapshotted.discard(symbol)  # updates are useless until a new snapshot
        return product, out

    def _trade(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        got = self._sequenced("trade", msg, recv_ts)
        if got is None:
            return []
        product, out = got
        size = number(msg["size"])
        side = _TAKER.get(str(msg.get("taker_side")))
        if Decimal(size) == 0 or side is None:
            return out  # size 0 is an index point, UNKNOWN an aggressor we cannot show: not a trade
        out.append(
            Trade(
                self.venue,
                recv_ts,
                product,
                self.last_exch_ts,
                str(msg["uuid"]),
                number(msg["price"]),
                size,
                side,
            )
        )
        return out

    def _quote(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        got = self._sequenced("quote", msg, recv_ts)
        if got is None:
            return []
        product, out = got
        bid_size, ask_size = number(msg["bid_size"]), number(msg["ask_size"])
        out.append(
            Ticker(
                self.venue,
                recv_ts,
                product,
                self.last_exch_ts,
                bid=number(msg["bid_price"]),
                bid_size=None if Decimal(bid_size) == 0 else bid_size,
                ask=number(msg["ask_price"]),
                ask_size=None if Decimal(ask_size) == 0 else ask_size,
            )
        )
        return out

    def _levels(self, entries: list[Any]) -> list[Level]:
        return [(number(e["price"]), number(e["size"])) for e in entries]

    def _book(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        got = self._sequenced("book", msg, recv_ts)
        if got is None:
            return []
        product, out = got
        symbol = str(msg["symbol_id"])
        if msg.get("is_snapshot") is True:
            self._snapshotted.add(symbol)
            bids, asks = self._levels(msg["bids"]), self._levels(msg["asks"])
            out.append(BookSnapshot(self.venue, recv_ts, product, self.last_exch_ts, bids, asks))
            return out
        if symbol not in self._snapshotted:
            self.before_snapshot += 1  # an update before the first snapshot: it would build nothing
            return out
        changes: list[Change] = [change("bid", p, s) for p, s in self._levels(msg["bids"])]
        changes += [change("ask", p, s) for p, s in self._levels(msg["asks"])]
        out.append(BookUpdate(self.venue, recv_ts, product, self.last_exch_ts, changes))
        return out

    def _top(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        got = self._sequenced(str(msg["type"]), msg, recv_ts)
        if got is None:
            return []
        product, out = got
        bids, asks = self._levels(msg["bids"]), self._levels(msg["asks"])
        out.append(BookSnapshot(self.venue, recv_ts, product, self.last_exch_ts, bids, asks))
        return out

    def _ohlcv(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        got = self._sequenced("ohlcv", msg, recv_ts)
        if got is None:
            return []
        product, out = got
        self.want_history("ohlcv", product)
        out.append(self._bar(product, msg, recv_ts))
        return out

    def apply_snapshot(self, channel: str, product: str, body: bytes, recv_ts: float) -> list[Event]:
        """REST ``/v1/ohlcv/<symbol>/latest``: bars newest first, numbers exact from their text."""
        self.last_exch_ts = None
        try:
            rows = _decode(body)
            if not isinstance(rows, list):
                raise TypeError("not a list of bars")
            return [self._bar(product, row, recv_ts) for row in reversed(rows)]
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise FrameError(f"{product} ohlcv history: {type(exc).__name__} {exc}") from None

    def _bar(self, product: str, msg: dict[str, Any], recv_ts: float) -> Candle:
        interval = PERIODS[str(msg.get("period_id", PERIOD))]
        started = parse_rfc3339(str(msg["time_period_start"]))
        if started is None:
            raise ValueError("time_period_start is not a time")
        return Candle(
            self.venue,
            recv_ts,
            product,
            self.last_exch_ts,
            int(started),
            interval,
            number(msg["price_open"]),
            number(msg["price_high"]),
            number(msg["price_low"]),
            number(msg["price_close"]),
            number(msg["volume_traded"]),
        )

    def _heartbeat(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        return [Heartbeat(self.venue, recv_ts, self.conn, None)]

    def _reconnect(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        before = msg.get("before_time", "")
        return [VenueError(self.venue, recv_ts, self.conn, f"the venue asks to reconnect before {before}")]

    def _error(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        return [
            VenueError(self.venue, recv_ts, self.conn, str(msg.get("message") or "error without a message"))
        ]
