"""CoinAPI WebSocket v1, served by the simulator (protocols.md section 3).

``hello`` replaces the connection's scope (data types x symbol filters) and can be resent; ``subscribe``
adds to it and ``unsubscribe`` removes from it. Filters are prefix matches on symbol ids, exact with a
trailing ``$``; ``book*`` types need a filter. There is no acknowledgement: data simply starts. The API
key is taken from the ``X-CoinAPI-Key`` header, ``?apikey=`` or the hello's ``apikey`` field; a bad one
gets ``{"type":"error","message":"Invalid API key"}`` and a close, as any error does.

Data: ``trade`` per trade (``taker_side``), ``quote`` when the best bid/ask moved, ``book`` as a
snapshot (``is_snapshot``) on every hello, sometimes preceded by an update, as the venue allows, then
batched updates; ``book5`` on every batch, ``book20``/``book50`` once a second; ``ohlcv`` 1MIN bars every
candle tick; ``hearbeat`` (sic) after a second of silence. Numbers are JSON numbers written from the
market's exact text. ``sequence`` counts per (type, symbol) per connection. ``--fault
reconnect_notice_after=S`` sends the ``reconnect`` notice, then closes a second later.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import msgspec

from tickerterm.sim.market import Market, ProductSpec, SimCandle, Step
from tickerterm.sim.server import SimConnection, SimServer, rfc3339
from tickerterm.venues.auth import ApiToken, Secret
from tickerterm.venues.coinapi import PERIOD

COINAPI_PRODUCTS: tuple[ProductSpec, ...] = (
    ProductSpec("COINBASE:BTC-USD", "64000.00", "0.01"),
    ProductSpec("COINBASE:ETH-USD", "3100.00", "0.01"),
    ProductSpec("COINBASE:SOL-USD", "145.000", "0.001"),
    ProductSpec("BITSTAMP:BTC-USD", "64010.00", "1.00"),
    ProductSpec("BINANCE:BTC-USDT", "64005.00", "0.01"),
)
DATA_TYPES = ("trade", "quote", "book", "book5", "book20", "book50", "ohlcv")
_ENCODE = msgspec.json.Encoder(decimal_format="number").encode
_TAKER = {"bid": "SELL", "ask": "BUY"}  # a resting bid was hit by a seller, an ask lifted by a buyer


def _d(text: str) -> Decimal:
    return Decimal(text)


def _symbol_id(product: str) -> str:
    """``COINBASE:BTC-USD`` -> ``COINBASE_SPOT_BTC_USD``: CoinAPI's symbol id of a spot pair (the
    simulator's own products are always ``EXCHANGE:BASE-QUOTE``)."""
    exchange, _, pair = product.partition(":")
    base, _, quote = pair.partition("-")
    return f"{exchange}_SPOT_{base}_{quote}"


class CoinApiSimConnection(SimConnection):
    server: CoinApiSim

    def __init__(self, server: CoinApiSim, ws: Any) -> None:
        super().__init__(server, ws)
        request = ws.request
        key = request.headers.get("X-CoinAPI-Key") if request is not None else None
        if key is None and request is not None:
            key = dict(parse_qsl(urlsplit(request.path).query)).get("apikey")
        self.key: str | None = key
        self.types: set[str] = set()
        self.filters: list[str] = []
        self.heartbeat = False
        self.seq: dict[tuple[str, str], int] = {}
        self.pending: dict[str, dict[tuple[str, str], str]] = {}
        self.last_quote: dict[str, tuple[int, int]] = {}
        self.last_sent = time.monotonic()

    # --- framing ---------------------------------------------------------------------------

    def send(self, kind: str, product: str | None, body: dict[str, Any], *, data: bool = True) -> None:
        msg: dict[str, Any] = {}
        if product is not None:
            sid = _symbol_id(product)
            key = (kind, sid)
            n = self.seq.get(key, 0) + 1
            self.seq[key] = n
            msg |= {"symbol_id": sid, "sequence": n}
        msg |= body
        msg["type"] = kind  # last, as on the wire: never rely on key order
        self.last_sent = time.monotonic()
        self.push(_ENCODE(msg).decode(), data=data)

    def fail(self, message: str) -> None:
        """CoinAPI errors are final: the message, then the server closes."""
        self.push(_ENCODE({"type": "error", "message": message}).decode())
        self.close_with(1008, message[:100])

    def unknown_frame(self) -> str:
        return '{"type":"mystery_type","symbol_id":"COINBASE_SPOT_BTC_USD"}'

    # --- client frames ---------------------------------------------------------------------

    def in_scope(self, product: str) -> bool:
        sid = _symbol_id(product)
        return any(sid == f[:-1] if f.endswith("$") else sid.startswith(f) for f in self.filters)

    async def on_frame(self, msg: Any) -> None:
        if not isinstance(msg, dict) or msg.get("type") not in ("hello", "subscribe", "unsubscribe"):
            self.fail("Invalid message type")
            return
        kind = msg["type"]
        if kind == "hello":
            self.subscribed_once.set()
            if isinstance(msg.get("apikey"), str):
                self.key = msg["apikey"]
        if self.key not in self.server.keys or self.server.faults.refuse_auth:
            self.fail("Invalid API key")
            return
        types = msg.get("subscribe_data_type", [])
        filters = msg.get("subscribe_filter_symbol_id", [])
        if not isinstance(types, list) or not isinstance(filters, list):
            self.fail("subscribe_data_type and subscribe_filter_symbol_id must be arrays")
            return
        unknown = [t for t in types if t not in DATA_TYPES]
        if unknown:
            self.fail(f"Unknown data type: {str(unknown[0])[:30]}")
            return
        before = {p for p in self.server.markets if self.in_scope(p)}
        if kind == "hello":
            self.types, self.filters = set(types), [str(f) for f in filters]
            self.heartbeat = msg.get("heartbeat") is True
        elif kind == "subscribe":
            self.types |= set(types)
            self.filters += [str(f) for f in filters if f not in self.filters]
        else:
            self.types -= set(types)
            self.filters = [f for f in self.filters if f not in filters]
        if any(t.startswith("book") for t in self.types) and not self.filters:
            self.fail("book data types require a subscribe_filter_symbol_id filter")
            return
        if "book" in self.types:  # a snapshot after every hello (and for symbols new to the scope)
            server = self.server
            for product in server.markets:
                if self.in_scope(product) and (kind == "hello" or product not in before):
                    if server.fault_rng.random() < 0.5 and self.pending.get(product):
                        self._book_update(product)  # an update may come before the snapshot
                    self.pending.pop(product, None)
                    self._book_snapshot(product)

    # --- market ----------------------------------------------------------------------------

    def _levels(self, levels: list[tuple[str, str]]) -> list[dict[str, Decimal]]:
        return [{"price": _d(p), "size": _d(s)} for p, s in levels]

    def _book_snapshot(self, product: str) -> None:
        bids, asks = self.server.markets[product].snapshot_levels()
        now = rfc3339(self.server.clock())
        body = {"time_exchange": now, "time_coinapi": now, "is_snapshot": True}
        self.send("book", product, body | {"asks": self._levels(asks), "bids": self._levels(bids)})

    def _book_update(self, product: str) -> None:
        levels = self.pending.pop(product, {})
        if not levels:
            return
        now = rfc3339(self.server.clock())
        bids = [(p, z) for (s, p), z in levels.items() if s == "bid"]
        asks = [(p, z) for (s, p), z in levels.items() if s == "ask"]
        body = {"time_exchange": now, "time_coinapi": now, "is_snapshot": False}
        self.send("book", product, body | {"asks": self._levels(asks), "bids": self._levels(bids)})

    def on_step(self, step: Step) -> None:
        product = step.product
        if not self.types or not self.in_scope(product):
            return
        if step.changes and "book" in self.types:
            pending = self.pending.setdefault(product, {})
            for side, px, sz in step.changes:
                pending[(side, px)] = sz
        if step.trades and "trade" in self.types:
            for t in step.trades:
                ts = rfc3339(t.ts)
                self.send(
                    "trade",
                    product,
                    {
                        "time_exchange": ts,
                        "time_coinapi": ts,
                        "uuid": self.server.uuid(),
                        "price": _d(t.price),
                        "size": _d(t.size),
                        "taker_side": _TAKER[t.maker_side],
                    },
                )

    def on_timer(self, kind: str) -> None:
        server = self.server
        if not self.types:
            return
        now = rfc3339(server.clock())
        if kind == "l2_batch":
            for product in list(self.pending):
                self._book_update(product)
            for product, m in server.markets.items():
                if not self.in_scope(product):
                    continue
                if "quote" in self.types:
                    top = (m.best_bid(), m.best_ask())
                    if self.last_quote.get(product) != top:
                        self.last_quote[product] = top
                        bb, ba = top
                        self.send(
                            "quote",
                            product,
                            {
                                "time_exchange": now,
                                "time_coinapi": now,
                                "ask_price": _d(m.price_text(ba)),
                                "ask_size": _d(m.size_text(m.asks[ba])),
                                "bid_price": _d(m.price_text(bb)),
                                "bid_size": _d(m.size_text(m.bids[bb])),
                            },
                        )
                if "book5" in self.types:
                    self._top(product, m, 5, now)
        elif kind == "heartbeat":
            for product, m in server.markets.items():
                if self.in_scope(product):
                    for n in (20, 50):
                        if f"book{n}" in self.types:
                            self._top(product, m, n, now)
            if self.heartbeat and time.monotonic() - self.last_sent >= 0.9 * server.timing.heartbeat:
                self.send("hearbeat", None, {}, data=False)
        elif kind == "candles" and "ohlcv" in self.types:
            for product in server.markets:
                bars = server.markets[product].minute_bars
                if bars and self.in_scope(product):
                    self.send("ohlcv", product, server.ohlcv(product, bars[-1]))

    def _top(self, product: str, m: Market, n: int, now: str) -> None:
        bids, asks = m.top_levels(n)
        body = {"time_exchange": now, "time_coinapi": now}
        self.send(
            f"book{n}", product, body | {"asks": self._levels(asks[:n]), "bids": self._levels(bids[:n])}
        )


class CoinApiSim(SimServer):
    """CoinAPI on a loopback port; ``keys`` are the API keys it accepts (the test account)."""

    venue = "coinapi"
    connection_class: ClassVar[type[SimConnection]] = CoinApiSimConnection
    default_products = COINAPI_PRODUCTS

    def __init__(self, *, keys: set[str] | None = None, **kwargs: Any) -> None:
        kwargs.pop("public_keys", None)
        kwargs.pop("blast", None)
        super().__init__(**kwargs)
        self.keys = set(keys or ())
        self._notice_task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        url = await super().start()
        if self.faults.reconnect_notice_after is not None:
            self._notice_task = asyncio.create_task(self._notice(self.faults.reconnect_notice_after))
        return url

    async def stop(self) -> None:
        if self._notice_task is not None:
            self._notice_task.cancel()
        await super().stop()

    async def _notice(self, delay: float) -> None:
        await asyncio.sleep(delay)
        before = rfc3339(self.clock() + 1.0)
        noticed = list(self.connections)  # only these close: a client's fresh connection is not touched
        for conn in noticed:
            conn.push(_ENCODE({"type": "reconnect", "within_seconds": 1, "before_time": before}).decode())
        await asyncio.sleep(1.0)
        self.stats["notices"] = self.stats.get("notices", 0) + 1
        for conn in noticed:
            conn.close_with(1001, "maintenance")

    def uuid(self) -> str:
        return "%08x-%04x-4%03x-8%03x-%012x" % tuple(  # noqa: UP031 - a UUID's fixed layout
            self.fault_rng.getrandbits(b) for b in (32, 16, 12, 12, 48)
        )

    def client_credentials(self) -> ApiToken:
        key = secrets.token_hex(16)
        self.keys.add(key)
        return ApiToken(Secret(key), "simulator")

    def write_key_file(self, path: str) -> None:
        self._write_private(path, {"apikey": self.client_credentials().secret.reveal()})

    async def http_get(self, path: str, query: dict[str, str], headers: Mapping[str, str]) -> tuple[int, Any]:
        """REST ``/v1/ohlcv/<symbol id>/latest?period_id=1MIN&limit=N``: bars newest first, numbers exact."""
        if headers.get("X-CoinAPI-Key") not in self.keys:
            return 401, {"error": "Invalid API key"}
        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v1", "ohlcv"] or parts[3] != "latest":
            return 404, {"error": "Not found"}
        product = next((p for p in self.markets if _symbol_id(p) == parts[2]), None)
        if product is None or query.get("period_id", PERIOD) != PERIOD:
            return 400, {"error": "Unknown symbol or period"}
        limit = min(int(query.get("limit", "100") or 100), 1000)
        rows = [self.ohlcv(product, b) for b in reversed(self.markets[product].bars(60, limit))]
        return 200, _ENCODE(rows)

    def ohlcv(self, product: str, bar: SimCandle) -> dict[str, Any]:
        """A 1MIN bar as the WebSocket and REST send it (numbers exact)."""
        m = self.markets[product]
        pt = m.price_text
        return {
            "period_id": PERIOD,
            "time_period_start": rfc3339(bar.start),
            "time_period_end": rfc3339(bar.start + 60),
            "time_open": rfc3339(bar.start),
            "time_close": rfc3339(bar.start + 59),
            "price_open": _d(pt(bar.open)),
            "price_high": _d(pt(bar.high)),
            "price_low": _d(pt(bar.low)),
            "price_close": _d(pt(bar.close)),
            "volume_traded": _d(m.size_text(bar.volume)),
            "trades_count": bar.trades,
        }
