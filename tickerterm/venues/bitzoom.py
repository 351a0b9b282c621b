"""Bitzoom, a Binance-style venue (``--venue bitzoom``). See protocols.md section 4 (futures rules).

Wire facts this adapter relies on:
- control frames ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS`` with ids, acked ``{"result":…,"id":N}``;
  errors arrive nested, ``{"error":{"code":2,"msg":…},"id":N}`` (the docs table shows them flat);
- stream names lowercase (``btcusdt@depth@100ms``), payload symbols uppercase (``BTCUSDT``); on a
  combined connection (``/stream``, which tickerterm uses) every event comes as ``{"stream","data"}``,
  on a raw one (``/ws``) bare;
- diff depth is synced from a REST snapshot by the futures rule: drop ``u < lastUpdateId``, the first
  applied event has ``U <= lastUpdateId <= u``, then each ``pu`` equals the previous ``u``; a broken link
  is a gap (that book UNSAFE, a new snapshot); partial depth (``depth5/10/20``) is a whole top-N book;
- ``m`` = the buyer is the maker, so the aggressor sold;
- limits: 10 incoming messages/s per connection (more is a 1008 close), 200 streams per connection,
  5 connections; user data through a listen key from REST, kept alive every 30 minutes.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import msgspec

from tickerterm.core.errors import ConfigError, FrameError
from tickerterm.core.events import (
    BalanceUpdate,
    BookSnapshot,
    BookUpdate,
    Candle,
    Change,
    Event,
    Gap,
    Level,
    OrderUpdate,
    Side,
    Subscribed,
    Ticker,
    Trade,
    VenueError,
    change,
)
from tickerterm.venues.auth import ApiToken, load_token
from tickerterm.venues.base import (
    ChannelSpec,
    ErrorClass,
    HttpRequest,
    Parser,
    VenueAdapter,
    decode_json,
    peek_object,
)
from tickerterm.venues.fields import (
    amount,
    change_percent,
    integer,
    optional_amount,
    optional_millis,
    signed,
    text,
    whole,
)
from tickerterm.venues.session import Close, Fetch, Open, Session
from tickerterm.venues.sync import RestSynced, Synced

MARKET_URL = "wss://stream.bitzoom.com/ws"
REST_URL = "https://api.bitzoom.com"
TESTNET_URL = "wss://stream-testnet.bitzoom.com/ws"
TESTNET_REST_URL = "https://api-testnet.bitzoom.com"
DEPTH_PATH = "/api/v1/depth"
LISTEN_KEY_PATH = "/api/v1/listenKey"
KLINES_PATH = "/api/v1/klines"
ENV_TOKEN = "BITZOOM_API_TOKEN"

KLINE_INTERVALS: dict[str, int] = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
    "3d": 259200,
    "1w": 604800,
    "1M": 2592000,
}
"""The 15 kline intervals, in seconds (``1M`` counted as 30 days for the candle's width)."""
QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "BTC", "ETH", "BNB", "EUR", "TRY", "DAI")
"""Quote assets, longest first: how ``BTCUSDT`` splits into ``BTC-USDT``."""
MAX_STREAMS = 200
MAX_CONNECTIONS = 5


def _channels() -> dict[str, ChannelSpec]:
    out = {
        "ticker": ChannelSpec("ticker", "ticker"),
        "miniTicker": ChannelSpec("miniTicker", "ticker"),
        "!ticker@arr": ChannelSpec("!ticker@arr", "ticker", per_product=False),
        "trade": ChannelSpec("trade", "trades"),
        "aggTrade": ChannelSpec("aggTrade", "trades"),
        "markPrice": ChannelSpec("markPrice", "mark"),
        "markPrice@1s": ChannelSpec("markPrice@1s", "mark"),
        "user": ChannelSpec("user", "user", private=True, endpoint="user", per_product=False),
    }
    for speed in ("", "@100ms", "@250ms", "@500ms"):
        out[f"depth{speed}"] = ChannelSpec(f"depth{speed}", "book")
        for levels in (5, 10, 20):
            out[f"depth{levels}{speed}"] = ChannelSpec(f"depth{levels}{speed}", "book")
    for interval in KLINE_INTERVALS:
        out[f"kline_{interval}"] = ChannelSpec(f"kline_{interval}", "candles")
    return out


CHANNELS = _channels()
_decode = msgspec.json.decode


def symbol_of(product: str) -> str:
    """``BTC-USDT`` -> ``btcusdt`` (the stream-name form)."""
    return product.replace("-", "").lower()


def product_of(symbol: str) -> str:
    """``BTCUSDT`` or ``btcusdt`` -> ``BTC-USDT``."""
    s = symbol.upper()
    for quote in QUOTES:
        if s.endswith(quote) and len(s) > len(quote):
            return f"{s[: -len(quote)]}-{quote}"
    raise ValueError(f"cannot tell the quote asset of {symbol[:20]!r}")


def stream_of(channel: str, product: str | None) -> str:
    return channel if product is None else f"{symbol_of(product)}@{channel}"


def parse_stream(name: str) -> tuple[str, str | None]:
    """``btcusdt@depth@100ms`` -> (``depth@100ms``, ``BTC-USDT``); ``!ticker@arr`` -> (it, None)."""
    if name.startswith("!"):
        return name, None
    symbol, _, channel = name.partition("@")
    return channel, product_of(symbol)


class BitzoomSession(Session):
    """The user-data stream is reached through a listen key from the REST API, renewed every
    ``listen_key_keepalive`` seconds; a refused renewal (or the venue's ``listenKeyExpired``) reconnects
    with a new key. The market endpoint is the generic session."""

    adapter: Bitzoom

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._renew_at: float | None = None

    def connect(self, now: float) -> list[Event]:
        if self.endpoint != "user":
            return super().connect(now)
        self._act(Fetch("listen-key", self.adapter.listen_key_request()))
        return []

    def opened(self, now: float) -> list[Event]:
        if self.endpoint == "user":
            self._renew_at = now + self.adapter.listen_key_keepalive
        return super().opened(now)

    def wake_at(self) -> float | None:
        base = super().wake_at()
        if self._renew_at is None:
            return base
        return self._renew_at if base is None else min(base, self._renew_at)

    def timer(self, now: float) -> list[Event]:
        out = super().timer(now)
        if self._renew_at is not None and now >= self._renew_at:
            self._renew_at = None  # the next one is set when this one is answered
            self._fetch("listen-key-keepalive", self.adapter.listen_key_keepalive_request)
        return out

    def fetched(self, key: str, status: int, body: bytes, now: float) -> list[Event]:
        if key == "listen-key":
            if status in (401, 403):
                fatal = f"the venue refused the API token (HTTP {status}): {self.adapter.credential_help}"
                self._close(Close(f"listen key refused (HTTP {status})", fatal=fatal))
            elif status >= 400:
                self._close(Close(f"listen key request failed (HTTP {status})"))
            else:
                try:
                    listen_key = self.adapter.parse_listen_key(body)
                except FrameError as exc:
                    self._close(Close(f"listen key request failed: {exc}"))
                else:
                    url = self.adapter.url_with_key(self.endpoint, listen_key)
                    self._act(Open(url, self.adapter.connect_headers(self.endpoint)))
            return []
        if key == "listen-key-keepalive":
            if status >= 400:
                return self.fetch_failed(key, f"HTTP {status}", now)
            self._renew_at = now + self.adapter.listen_key_keepalive
            return []
        return super().fetched(key, status, body, now)

    def fetch_failed(self, key: str, reason: str, now: float) -> list[Event]:
        if key == "listen-key":
            self._close(Close(f"listen key request failed: {reason}"))
            return []
        if key == "listen-key-keepalive":  # the key may lapse: reconnect with a new one now
            message = f"listen key keepalive failed ({reason})"
            self._close(Close(message, planned=True))
            return self._integrity([VenueError(self.venue, now, self.conn, message)], now)
        return super().fetch_failed(key, reason, now)


class Bitzoom(VenueAdapter):
    name = "bitzoom"
    title = "Bitzoom (Binance-style)"
    endpoints: ClassVar[dict[str, str]] = {"market": MARKET_URL, "user": MARKET_URL, "rest": REST_URL}
    sandbox_endpoints: ClassVar[dict[str, str]] = {
        "market": TESTNET_URL,
        "user": TESTNET_URL,
        "rest": TESTNET_REST_URL,
    }
    channels = CHANNELS
    aliases: ClassVar[dict[str, str]] = {
        "book": "depth@100ms",
        "l2": "depth@100ms",
        "trades": "aggTrade",
        "candles": "kline_1m",
        "mark": "markPrice@1s",
        "tickers": "!ticker@arr",
    }
    candle_intervals = KLINE_INTERVALS
    default_channels = ("ticker", "depth@100ms", "aggTrade", "kline_1m", "markPrice@1s")
    default_products = ("BTC-USDT", "ETH-USDT")
    max_frame_size = 16 * 2**20
    outbound_per_second = 9.0
    outbound_burst = 1.0
    """At most 10 messages in any second (the venue closes with 1008 past that): one every 1/9 s."""
    stale_after = 30.0  # no heartbeat channel: a quiet market may be silent for a while
    max_streams_per_connection = MAX_STREAMS
    max_connections = MAX_CONNECTIONS
    listen_key_keepalive = 30 * 60.0
    """Seconds between renewals of the user-data stream's listen key."""
    session_type = BitzoomSession
    credential_help = f'set {ENV_TOKEN} (or --key-file with {{"token": …}})'

    credential_name = "a Bitzoom API token"

    credentials: ApiToken | None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ids = itertools.count(1)

    @classmethod
    def load_credentials(cls, key_file: str | None = None) -> ApiToken | None:
        return load_token(ENV_TOKEN, "token", key_file=key_file)

    def normalize_product(self, product: str) -> str:
        p = super().normalize_product(product)
        quote = p.partition("-")[2]
        if quote not in QUOTES:
            raise ConfigError(
                f"unknown product {product!r}: the quote asset must be one of {', '.join(QUOTES)}"
            )
        return p

    def url(self, endpoint: str) -> str:
        base = self.urls[endpoint].rstrip("/")
        if endpoint == "market":  # the combined form: every event says which stream it belongs to
            return (base[: -len("/ws")] if base.endswith("/ws") else base) + "/stream"
        return base

    def display_url(self, endpoint: str) -> str:
        return self.url(endpoint) + ("/<listenKey>" if endpoint == "user" else "")

    def parser(self, conn: str) -> BitzoomParser:
        return BitzoomParser(self.name, conn)

    def _control(self, method: str, streams: list[str]) -> list[str]:
        frames = []
        if streams:
            frames.append(json.dumps({"method": method, "params": streams, "id": next(self._ids)}))
        frames.append(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": next(self._ids)}))
        return frames

    def subscribe_frames(self, channel: str, products: list[str]) -> list[str]:
        spec = self.channel(channel)
        if spec.endpoint == "user":
            return []  # the listen key in the URL is the subscription
        streams = [stream_of(spec.name, p) for p in products] if spec.per_product else [spec.name]
        return self._control("SUBSCRIBE", streams)

    def unsubscribe_frames(
        self, channel: str, products: list[str] | None, *, listed: list[str] | None = None
    ) -> list[str]:
        spec = self.channel(channel)
        if spec.endpoint == "user":
            return []
        chosen = products if products is not None else (listed or [])
        streams = [stream_of(spec.name, p) for p in chosen] if spec.per_product else [spec.name]
        return self._control("UNSUBSCRIBE", streams)

    def resync_frames(self, channel: str, products: list[str]) -> list[str] | None:
        # diff depth: a new REST snapshot (the worker asks the parser); partial depth: every message
        # is a whole book, so the next one restores it. Nothing to send either way.
        return []

    def snapshot_url(self, channel: str, product: str) -> str | None:
        base, symbol = self.urls["rest"].rstrip("/"), product.replace("-", "")
        if channel.startswith("kline_"):  # the bars before the stream's: the chart starts with a past
            return f"{base}{KLINES_PATH}?symbol={symbol}&interval={channel[6:]}&limit=500"
        return f"{base}{DEPTH_PATH}?symbol={symbol}&limit=1000"

    def _bearer(self) -> dict[str, str]:
        if self.credentials is None:
            raise self.missing_credentials("user")
        return {"Authorization": f"Bearer {self.credentials.secret.reveal()}"}

    def listen_key_request(self) -> HttpRequest:
        return HttpRequest("POST", f"{self.urls['rest'].rstrip('/')}{LISTEN_KEY_PATH}", self._bearer())

    def listen_key_keepalive_request(self) -> HttpRequest:
        return HttpRequest("PUT", f"{self.urls['rest'].rstrip('/')}{LISTEN_KEY_PATH}", self._bearer())

    def parse_listen_key(self, body: bytes) -> str:
        try:
            key = _decode(body)["data"]["listenKey"]
        except (msgspec.DecodeError, KeyError, TypeError):
            raise FrameError("listen key response without data.listenKey") from None
        if not isinstance(key, str) or not key:
            raise FrameError("listen key response without data.listenKey")
        return key

    def url_with_key(self, endpoint: str, key: str) -> str:
        """The user-data stream's URL: the listen key is its path."""
        base = self.urls[endpoint].rstrip("/")
        return f"{base}/{key}" if base.endswith("/ws") else f"{base}/ws/{key}"

    def wire_symbol(self, product: str) -> str:
        return symbol_of(product)

    def classify_error(self, message: str) -> ErrorClass:
        text = message.lower()
        if "server shutdown" in text or "listen key expired" in text:
            return "reconnect"
        if text.startswith(("error 0:", "error 1:", "error 2:")):
            return "command"
        return "transient"


class _Depth(Synced):
    """One product's diff-depth sync on one connection: the snapshot's id and the last applied ``u``."""

    __slots__ = ("last_u", "snap_id")

    def __init__(self) -> None:
        super().__init__()
        self.snap_id = 0
        """The snapshot's lastUpdateId."""
        self.last_u: int | None = None
        """The last applied event's ``u``; None until the first event after the snapshot."""

    def reset(self) -> None:
        self.last_u = None


_PARTIAL = {f"depth{n}{s}" for n in (5, 10, 20) for s in ("", "@100ms", "@250ms", "@500ms")}


class BitzoomParser(Parser):
    def __init__(self, venue: str, conn: str) -> None:
        super().__init__(venue, conn)
        self.depth = RestSynced("depth", self.snapshot_wanted, _Depth, limit=10_000)
        self._handlers: dict[str, Callable[[dict[str, Any], str | None, float], list[Event]]] = {
            "24hrTicker": self._ticker,
            "24hrMiniTicker": self._mini,
            "trade": self._trade,
            "aggTrade": self._trade,
            "kline": self._kline,
            "markPriceUpdate": self._mark,
            "depthUpdate": self._depth,
            "ACCOUNT_UPDATE": self._account,
            "ORDER_TRADE_UPDATE": self._order,
            "listenKeyExpired": self._notice,
            "serverShutdown": self._notice,
        }

    def parse(self, raw: bytes | str, recv_ts: float) -> list[Event]:
        self.last_exch_ts = None
        msg = decode_json(raw, _decode)
        try:
            return self._parse(msg, recv_ts)
        except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
            raise FrameError(f"{type(exc).__name__} {exc}") from None

    def books_of(self, raw: bytes | str) -> list[str] | None:
        msg = peek_object(raw, _decode)
        if msg is None:
            return None
        stream, data = msg.get("stream"), msg.get("data", msg)
        if isinstance(stream, str):  # combined form: the stream name says what it was
            channel, product = parse_stream(stream)
            spec = CHANNELS.get(channel or "")
            if spec is not None and spec.kind == "book":
                return [product] if product is not None else None
        elif "data" in msg:
            return None  # a combined frame that does not say which stream: it may have been a book
        if not isinstance(data, dict):
            return [] if isinstance(data, list) else None  # a list: all-market tickers
        if data.get("e") == "depthUpdate" or "lastUpdateId" in data:
            symbol = data.get("s")
            return [product_of(symbol)] if isinstance(symbol, str) else None
        return []

    def _parse(self, msg: Any, recv_ts: float) -> list[Event]:
        channel: str | None = None
        if isinstance(msg, dict) and "stream" in msg and "data" in msg:
            channel = parse_stream(str(msg["stream"]))[0]
            msg = msg["data"]
        if isinstance(msg, list):  # !ticker@arr
            return [e for item in msg for e in self._event(item, channel, recv_ts)]
        if not isinstance(msg, dict):
            raise TypeError("not a JSON object")
        if "e" not in msg:
            return self._control(msg, recv_ts)
        return self._event(msg, channel, recv_ts)

    def _event(self, msg: dict[str, Any], channel: str | None, recv_ts: float) -> list[Event]:
        kind = msg["e"]
        handler = self._handlers.get(kind)
        if handler is None:
            self.unknown += 1
            return []
        self.last_exch_ts = optional_millis(msg.get("E"))
        return handler(msg, channel, recv_ts)

    def _control(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        if "error" in msg:
            err = msg["error"]
            if isinstance(err, dict):
                text = f"error {err.get('code')}: {err.get('msg', '')}"
            else:
                text = f"error: {err}"
            return [VenueError(self.venue, recv_ts, self.conn, text)]
        if "code" in msg and "msg" in msg:  # the flat form the docs show
            return [VenueError(self.venue, recv_ts, self.conn, f"error {msg['code']}: {msg['msg']}")]
        if "result" in msg:
            result = msg["result"]
            if isinstance(result, list):  # LIST_SUBSCRIPTIONS: the connection's whole state
                subs: dict[str, list[str]] = {}
                for name in result:
                    ch, product = parse_stream(str(name))
                    subs.setdefault(ch, [])
                    if product is not None:
                        subs[ch].append(product)
                return [Subscribed(self.venue, recv_ts, self.conn, subs)]
            return []  # {"result":null,"id":N}: a plain ack
        self.unknown += 1
        return []

    # --- market ----------------------------------------------------------------------------

    def _ticker(self, msg: dict[str, Any], channel: str | None, recv_ts: float) -> list[Event]:
        return [
            Ticker(
                self.venue,
                recv_ts,
                product_of(msg["s"]),
                self.last_exch_ts,
                price=amount(msg["c"]),
                bid=optional_amount(msg, "b"),
                bid_size=optional_amount(msg, "B"),
                ask=optional_amount(msg, "a"),
                ask_size=optional_amount(msg, "A"),
                volume_24h=amount(msg["v"]),
                low_24h=amount(msg["l"]),
                high_24h=amount(msg["h"]),
                change_pct_24h=signed(msg["P"]),
            )
        ]

    def _mini(self, msg: dict[str, Any], channel: str | None, recv_ts: float) -> list[Event]:
        close, opened = amount(msg["c"]), amount(msg["o"])
        pct = change_percent(close, opened, "0.01")
        return [
            Ticker(
                self.venue,
                recv_ts,
                product_of(msg["s"]),
                self.last_exch_ts,
                price=close,
                volume_24h=amount(msg["v"]),
                low_24h=amount(msg["l"]),
                high_24h=amount(msg["h"]),
                change_pct_24h=pct,
            )
        ]

    def _mark(self, msg: dict[str, Any], channel: str | None, recv_ts: float) -> list[Event]:
        rate = msg.get("r")
        nxt = msg.get("T")
        return [
            Ticker(
                self.venue,
                recv_ts,
                product_of(msg["s"]),
                self.last_exch_ts,
                mark=amount(msg["p"]),
                index=optional_amount(msg, "i"),
                funding_rate=signed(rate) if rate else None,
                next_funding=optional_millis(nxt) if nxt else None,
            )
        ]

    def _trade(self, msg: dict[str, Any], channel: str | None, recv_ts: float) -> list[Event]:
        maker = msg["m"]
        if type(maker) is not bool:
            raise TypeError("m is not a boolean")
        trade_id = msg["a"] if msg["e"] == "aggTrade" else msg["t"]
        side: Side = "sell" if maker else "buy"  # the buyer made the market: the seller took it
        t = msg.get("T")
        ts = optional_millis(t) or self.last_exch_ts
        return [
            Trade(
                self.venue,
                recv_ts,
                product_of(msg["s"]),
                ts,
                str(trade_id),
                amount(msg["p"]),
                amount(msg["q"]),
                side,
            )
        ]

    def _kline(self, msg: dict[str, Any], channel: str | None, recv_ts: float) -> list[Event]:
        k = msg["k"]
        self.want_history(f"kline_{k['i']}", product_of(msg["s"]))
        interval = KLINE_INTERVALS[k["i"]]
        return [
            Candle(
                self.venue,
                recv_ts,
                product_of(msg["s"]),
                self.last_exch_ts,
                whole(k["t"]) // 1000,
                interval,
                amount(k["o"]),
                amount(k["h"]),
                amount(k["l"]),
                amount(k["c"]),
                amount(k["v"]),
            )
        ]

    # --- depth -----------------------------------------------------------------------------

    def _depth(self, msg: dict[str, Any], channel: str | None, recv_ts: float) -> list[Event]:
        product = product_of(msg["s"])
        if channel in _PARTIAL:  # a whole top-N book every time: replace
            bids: list[Level] = [(amount(p), amount(q)) for p, q in msg["b"]]
            asks: list[Level] = [(amount(p), amount(q)) for p, q in msg["a"]]
            return [BookSnapshot(self.venue, recv_ts, product, self.last_exch_ts, bids, asks)]
        state = self.depth.get(product)
        if state is None:
            if not self.accepts(product):  # no book state, and no REST snapshot, for other products
                self.unsolicited += 1
                return []
            state = self.depth.start(product)
        integer(msg["U"]), integer(msg["u"])
        if not state.synced:
            self.depth.hold(product, state, msg)
            return []
        return self._apply_depth(product, state, msg, recv_ts)

    def _apply_depth(self, product: str, state: _Depth, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        """One diff event on a synced book. The first after the snapshot must cover the snapshot's id
        (``U <= lastUpdateId <= u``) or link to it (``pu == lastUpdateId``: nothing happened between);
        every later one must link to the previous event (``pu == previous u``)."""
        first, last, prev = integer(msg["U"]), integer(msg["u"]), msg.get("pu")
        link = integer(prev) if prev is not None else None
        if state.last_u is None:  # the first event after the snapshot
            snap = state.snap_id
            if last < snap:
                return []  # already in the snapshot
            if not (first <= snap <= last or link == snap):
                return [self._lose(product, state, msg, snap, first, recv_ts)]
        elif last <= state.last_u:
            self.out_of_order += 1
            return []
        elif link != state.last_u:
            return [
                self._lose(product, state, msg, state.last_u, link if link is not None else first, recv_ts)
            ]
        state.last_u = last
        changes: list[Change] = [change("bid", text(p), text(q)) for p, q in msg["b"]]
        changes += [change("ask", text(p), text(q)) for p, q in msg["a"]]
        exch = msg.get("T") or msg.get("E")
        return [BookUpdate(self.venue, recv_ts, product, optional_millis(exch), changes)]

    def _lose(
        self, product: str, state: _Depth, msg: dict[str, Any], expected: int, received: int, recv_ts: float
    ) -> Gap:
        """The link is broken (events were lost): the book is rebuilt from a new snapshot."""
        self.depth.lose(product, state, msg)
        return Gap(self.venue, recv_ts, self.conn, expected, received, f"depth:{product}")

    def restarted(self, channel: str, products: list[str]) -> None:
        if CHANNELS[channel].kind == "book" and channel not in _PARTIAL:
            self.depth.forget(products)  # a new depth stream numbers afresh: its first event links to nothing

    def want_snapshot(self, channel: str, product: str) -> None:
        if channel not in _PARTIAL:
            self.depth.resync(product)

    def apply_snapshot(self, channel: str, product: str, body: bytes, recv_ts: float) -> list[Event]:
        if channel.startswith("kline_"):
            return self._kline_rows(channel[6:], product, body, recv_ts)
        state = self.depth.get(product)
        if state is None:
            return []
        try:
            data = _decode(body)
            last_id = integer(data["lastUpdateId"])
            bids = [(amount(p), amount(q)) for p, q, *_ in data["bids"]]
            asks = [(amount(p), amount(q)) for p, q, *_ in data["asks"]]
        except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
            raise FrameError(f"{product} depth snapshot: {type(exc).__name__} {exc}") from None
        state.snap_id, state.last_u = last_id, None
        snapshot: list[Event] = [BookSnapshot(self.venue, recv_ts, product, None, bids, asks)]
        # what arrived while the snapshot was on its way, by the same rules
        return self.depth.load(
            product, state, lambda msg: self._apply_depth(product, state, msg, recv_ts), snapshot
        )

    def _kline_rows(self, interval: str, product: str, body: bytes, recv_ts: float) -> list[Event]:
        """REST klines: ``[[open ms, o, h, l, c, v, close ms, …], …]``, oldest first."""
        try:
            rows = _decode(body)
            seconds = KLINE_INTERVALS[interval]
            return [
                Candle(
                    self.venue,
                    recv_ts,
                    product,
                    None,
                    integer(r[0]) // 1000,
                    seconds,
                    amount(r[1]),
                    amount(r[2]),
                    amount(r[3]),
                    amount(r[4]),
                    amount(r[5]),
                )
                for r in rows
            ]
        except (msgspec.DecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise FrameError(f"{product} klines: {type(exc).__name__} {exc}") from None

    # --- user data -------------------------------------------------------------------------

    def _account(self, msg: dict[str, Any], channel: str | None, recv_ts: float) -> list[Event]:
        a = msg["a"]
        fields: dict[str, str] = {"reason": str(a.get("m", ""))}
        for b in a.get("B") or ():
            fields[f"{b['a']}.wallet_balance"] = signed(b["wb"])
            fields[f"{b['a']}.cross_wallet"] = signed(b["cw"])
        for p in a.get("P") or ():
            product = product_of(p["s"])
            fields[f"{product}.position"] = signed(p["pa"])
            fields[f"{product}.entry_price"] = amount(p["ep"])
            fields[f"{product}.unrealized_pnl"] = signed(p["up"])
        return [BalanceUpdate(self.venue, recv_ts, self.last_exch_ts, fields)]

    def _order(self, msg: dict[str, Any], channel: str | None, recv_ts: float) -> list[Event]:
        o = msg["o"]
        qty, filled = Decimal(amount(o["q"])), Decimal(amount(o["z"]))
        side: Side = "buy" if o["S"] == "BUY" else "sell" if o["S"] == "SELL" else _bad_side(o["S"])
        return [
            OrderUpdate(
                self.venue,
                recv_ts,
                product_of(o["s"]),
                self.last_exch_ts,
                str(o["i"]),
                side,
                str(o["o"]),
                str(o["X"]),
                amount(o["p"]),
                format(filled, "f"),
                format(qty - filled, "f"),
                amount(o["ap"]),
                client_order_id=str(o.get("c", "")),
                fee=optional_amount(o, "n"),  # the commission so far, in N
                fee_asset=text(o["N"]) if o.get("N") else None,
            )
        ]

    def _notice(self, msg: dict[str, Any], channel: str | None, recv_ts: float) -> list[Event]:
        text = "listen key expired" if msg["e"] == "listenKeyExpired" else "server shutdown notice"
        return [VenueError(self.venue, recv_ts, self.conn, text)]


def _bad_side(value: Any) -> Side:
    raise ValueError(f"unknown side {str(value)[:10]!r}")
