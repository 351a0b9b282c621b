"""Bitzoom (Binance-style streams), served by the simulator (protocols.md section 4, futures rules).

WebSocket paths: ``/ws`` (raw payloads), ``/stream`` (every event wrapped as ``{"stream","data"}``),
``/stream?streams=a/b`` and ``/ws/<stream>`` (subscribed from the URL), ``/ws/<listenKey>`` (user data).
Control frames SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY with their
``{"result":…,"id"}`` answers and nested ``{"error":{"code","msg"},"id"}`` errors. Limits enforced as
the venue does: more than 10 incoming messages in a second or more than 200 streams closes the
connection with 1008; a sixth connection is closed with 1008.

Market data: diff depth with update ids shared by every symbol (so not consecutive per symbol) and
``pu`` = the previous event's ``u`` on that stream; REST ``GET /api/v1/depth`` with ``lastUpdateId``;
partial depth (5/10/20); trades and aggTrades (``m``: the buyer was the maker); klines for all 15
intervals built from the trades; tickers, mini tickers, ``!ticker@arr``; mark price with index and
funding. User data: ``POST``/``PUT /api/v1/listenKey`` with a Bearer token (its own REST port), keys that
expire (``listenKeyExpired``), ``ORDER_TRADE_UPDATE`` and ``ACCOUNT_UPDATE``. Diff depth is batched on
the simulator's ``l2_batch`` tick whatever the stream's speed suffix. A ``serverShutdown`` notice is
sent before a planned close (``--fault shutdown_after_seconds=S``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from decimal import Decimal
from typing import Any, ClassVar

from tickerterm.sim.http import RestServer
from tickerterm.sim.market import ProductSpec, SimTrade, Step
from tickerterm.sim.server import SimConnection, SimServer
from tickerterm.venues.auth import ApiToken, Secret
from tickerterm.venues.bitzoom import (
    CHANNELS,
    DEPTH_PATH,
    KLINE_INTERVALS,
    KLINES_PATH,
    LISTEN_KEY_PATH,
    MAX_CONNECTIONS,
    MAX_STREAMS,
)

BITZOOM_PRODUCTS: tuple[ProductSpec, ...] = (
    ProductSpec("BTC-USDT", "64000.0", "0.1"),
    ProductSpec("ETH-USDT", "3100.00", "0.01"),
    ProductSpec("SOL-USDT", "145.000", "0.001"),
    ProductSpec("DOGE-USDT", "0.150000", "0.000001"),
    ProductSpec("ETH-BTC", "0.04850", "0.00001"),
)
MAX_MESSAGES_PER_SECOND = 10
LISTEN_KEY_TTL = 3600.0
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode
_PARTIAL_LEVELS = {f"depth{n}{s}": n for n in (5, 10, 20) for s in ("", "@100ms", "@250ms", "@500ms")}


def ms(ts: float) -> int:
    return int(ts * 1000)


class BitzoomSimConnection(SimConnection):
    server: BitzoomSim

    def __init__(self, server: BitzoomSim, ws: Any) -> None:
        super().__init__(server, ws)
        path: str = ws.request.path if ws.request is not None else "/ws"
        self.path, _, query = path.partition("?")
        self.combined = self.path.startswith("/stream")
        self.streams: dict[str, None] = {}
        self.listen_key: str | None = None
        self.pending_depth: dict[str, dict[tuple[str, str], str]] = {}
        self.first_id: dict[str, int] = {}
        self.last_u: dict[str, int] = {}
        self.arrivals: deque[float] = deque()
        if self.path.startswith("/ws/") and len(self.path) > 4:
            name = self.path[4:]
            if name in server.listen_keys:
                self.listen_key = name
            else:
                self.streams[name] = None
        elif query.startswith("streams="):
            for name in query[len("streams=") :].split("/"):
                if name:
                    self.streams[name] = None

    # --- framing ---------------------------------------------------------------------------

    def event(self, stream: str, data: Any, *, data_frame: bool = True) -> None:
        body = _DUMPS(data)
        self.push(f'{{"stream":"{stream}","data":{body}}}' if self.combined else body, data=data_frame)

    def reply(self, msg: dict[str, Any]) -> None:
        self.push(_DUMPS(msg))

    def error(self, code: int, msg: str, req_id: Any) -> None:
        self.reply({"error": {"code": code, "msg": msg}, "id": req_id})

    def unknown_frame(self) -> str:
        return _DUMPS({"e": "mysteryEvent", "E": ms(self.server.clock())})

    # --- client frames ---------------------------------------------------------------------

    async def on_open(self) -> None:
        self.subscribed_once.set()  # no subscribe deadline on this venue
        server = self.server
        if len(server.connections) > MAX_CONNECTIONS:
            self.close_with(1008, "too many connections")
            return
        if len(self.streams) > MAX_STREAMS or any(not server.valid_stream(s) for s in self.streams):
            self.close_with(1008, "invalid or too many streams in the URL")
            return
        for name in self.streams:
            self._initial(name)

    async def on_frame(self, msg: Any) -> None:
        now = time.monotonic()
        arrivals = self.arrivals
        arrivals.append(now)
        while arrivals and now - arrivals[0] > 1.0:
            arrivals.popleft()
        if len(arrivals) > MAX_MESSAGES_PER_SECOND:
            self.server.stats["rate_closes"] = self.server.stats.get("rate_closes", 0) + 1
            self.close_with(1008, "Too many requests")
            return
        if msg is None:
            self.error(3, "Invalid JSON: expected value at line 1 column 1", None)
            return
        if not isinstance(msg, dict):
            self.error(2, "Invalid request: request must be an object", None)
            return
        req_id = msg.get("id")
        if not (req_id is None or type(req_id) is int or (isinstance(req_id, str) and len(req_id) <= 36)):
            self.error(2, "Invalid request: invalid id", None)
            return
        method = msg.get("method")
        params = msg.get("params", [])
        if method == "LIST_SUBSCRIPTIONS":
            self.reply({"result": list(self.streams), "id": req_id})
            return
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not isinstance(params, list) or not params or params[0] != "combined":
                self.error(0, "Unknown property", req_id)
            elif method == "GET_PROPERTY":
                self.reply({"result": self.combined, "id": req_id})
            elif len(params) != 2 or type(params[1]) is not bool:
                self.error(1, "Invalid value type: expected Boolean", req_id)
            else:
                self.combined = params[1]
                self.reply({"result": None, "id": req_id})
            return
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            self.error(
                2, "Invalid request: unknown method" if method else "Invalid request: missing method", req_id
            )
            return
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            self.error(2, "Invalid request: params must be a list of stream names", req_id)
            return
        bad = [p for p in params if not self.server.valid_stream(p)]
        if bad:
            self.error(2, f"Invalid request: invalid stream {bad[0][:40]}", req_id)
            return
        if method == "SUBSCRIBE":
            new = [p for p in params if p not in self.streams]
            if len(self.streams) + len(new) > MAX_STREAMS:
                self.close_with(1008, f"more than {MAX_STREAMS} streams on one connection")
                return
            for name in new:
                self.streams[name] = None
            self.reply({"result": None, "id": req_id})
            for name in new:
                self._initial(name)
        else:
            for name in params:
                self.streams.pop(name, None)
                channel, product = self.server.parse_stream(name)
                if product is not None and channel.startswith("depth") and not self._has_diff(product):
                    self.pending_depth.pop(product, None)
            self.reply({"result": None, "id": req_id})

    def _has_diff(self, product: str) -> bool:
        sym = _symbol(product)
        return any(
            n.startswith(f"{sym}@depth") and self.server.parse_stream(n)[0] not in _PARTIAL_LEVELS
            for n in self.streams
        )

    def _initial(self, name: str) -> None:
        channel, product = self.server.parse_stream(name)
        if product is not None and channel.startswith("depth") and channel not in _PARTIAL_LEVELS:
            self.last_u.pop(product, None)  # a fresh diff stream: its first event has no pu link to check

    # --- market ----------------------------------------------------------------------------

    def on_step(self, step: Step) -> None:
        product = step.product
        sym = _symbol(product)
        streams = self.streams
        if step.changes and self._has_diff(product):
            pending = self.pending_depth.setdefault(product, {})
            if not pending:
                self.first_id[product] = self.server.step_id
            for side, px, sz in step.changes:
                pending[(side, px)] = sz
        if step.trades:
            now = self.server.clock()
            if f"{sym}@trade" in streams:
                for t in step.trades:
                    self.event(f"{sym}@trade", self.server.trade_event(product, t, now))
            if f"{sym}@aggTrade" in streams:
                for agg in self.server.step_aggs:
                    self.event(f"{sym}@aggTrade", agg)

    def on_timer(self, kind: str) -> None:
        server = self.server
        now = server.clock()
        if kind == "l2_batch":
            pending, self.pending_depth = self.pending_depth, {}
            for product, levels in pending.items():
                sym = _symbol(product)
                u = server.last_id[product]
                prev = self.last_u.get(product, 0)
                data = {
                    "e": "depthUpdate",
                    "E": ms(now),
                    "T": ms(now),
                    "s": sym.upper(),
                    "U": self.first_id[product],
                    "u": u,
                    "pu": prev,
                    "b": [[p, z] for (s, p), z in levels.items() if s == "bid"],
                    "a": [[p, z] for (s, p), z in levels.items() if s == "ask"],
                }
                self.last_u[product] = u
                for name in list(self.streams):
                    if (
                        name.startswith(f"{sym}@depth")
                        and self.server.parse_stream(name)[0] not in _PARTIAL_LEVELS
                    ):
                        self.event(name, data)
            for name in list(self.streams):
                channel, of = self.server.parse_stream(name)
                levels_n = _PARTIAL_LEVELS.get(channel)
                if levels_n is not None and of is not None:
                    self.event(name, server.partial_depth(of, levels_n, now))
        elif kind == "heartbeat":  # once a second: tickers, mark prices, klines in progress
            for name in list(self.streams):
                channel, target = self.server.parse_stream(name)
                if channel == "!ticker@arr":
                    self.event(name, [server.ticker(p, now) for p in server.markets])
                elif target is None:
                    continue
                elif channel == "ticker":
                    self.event(name, server.ticker(target, now))
                elif channel == "miniTicker":
                    self.event(name, server.mini_ticker(target, now))
                elif channel.startswith("markPrice"):
                    self.event(name, server.mark_price(target, now))
                elif channel.startswith("kline_"):
                    kline = server.kline_event(target, channel[6:], now)
                    if kline is not None:
                        self.event(name, kline)
        elif kind == "user" and self.listen_key is not None:
            expires = server.listen_keys.get(self.listen_key)
            if expires is None or expires < now:
                self.push(_DUMPS({"e": "listenKeyExpired", "E": ms(now), "listenKey": self.listen_key}))
                self.close_with(1000, "listen key expired")
                return
            for event in server.user_events(now):
                self.push(_DUMPS(event), data=True)


def _symbol(product: str) -> str:
    """``BTC-USDT`` -> ``btcusdt``: the venue's symbol (base and quote run together), as stream names
    spell it."""
    return product.replace("-", "").lower()


class BitzoomSim(SimServer):
    """Bitzoom on a loopback port (WebSocket) plus a REST port (``http_url``). ``tokens`` are the API
    tokens its REST API accepts (the test account)."""

    venue = "bitzoom"
    connection_class: ClassVar[type[SimConnection]] = BitzoomSimConnection
    default_products = BITZOOM_PRODUCTS

    def __init__(
        self, *, tokens: set[str] | None = None, listen_key_ttl: float = LISTEN_KEY_TTL, **kwargs: Any
    ) -> None:
        kwargs.pop("public_keys", None)
        kwargs.pop("blast", None)
        super().__init__(**kwargs)
        self.tokens = set(tokens or ())
        self.listen_key_ttl = listen_key_ttl
        self.listen_keys: dict[str, float] = {}
        """listen key -> expiry (clock seconds)"""
        self.rest = RestServer(self._rest, self.host)
        self.step_id = 0
        self.last_id: dict[str, int] = dict.fromkeys(self.markets, 0)
        self._by_symbol = {_symbol(p): p for p in self.markets}
        self.step_aggs: list[dict[str, Any]] = []
        self._agg = 5000
        self._order_id = 8_000_000
        self._position = Decimal(0)
        self._shutdown_task: asyncio.Task[None] | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.rest.port}"

    async def start(self) -> str:
        await self.rest.start()
        url = await super().start()
        if self.faults.shutdown_after_seconds is not None:
            self._shutdown_task = asyncio.create_task(
                self._shutdown_later(self.faults.shutdown_after_seconds)
            )
        return url

    async def stop(self) -> None:
        if self._shutdown_task is not None:
            self._shutdown_task.cancel()
        await super().stop()
        await self.rest.stop()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    async def _shutdown_later(self, delay: float) -> None:
        """Maintenance: every connection gets a ``serverShutdown`` notice, then a 1001 close."""
        await asyncio.sleep(delay)
        for conn in list(self.connections):
            assert isinstance(conn, BitzoomSimConnection)
            notice = {"e": "serverShutdown", "E": ms(self.clock())}
            if conn.combined:
                conn.push(_DUMPS({"stream": "!serverShutdown", "data": notice}))
            else:
                conn.push(_DUMPS(notice))
        await asyncio.sleep(0.5)
        self.stats["shutdowns"] = self.stats.get("shutdowns", 0) + 1
        self.close_all(1001, "server shutdown")

    def client_credentials(self) -> ApiToken:
        token = secrets.token_hex(16)
        self.tokens.add(token)
        return ApiToken(Secret(token), "simulator")

    def write_key_file(self, path: str) -> None:
        self._write_private(path, {"token": self.client_credentials().secret.reveal()})

    def product_of(self, symbol: str) -> str:
        """The product this venue lists as ``symbol`` (any case); ValueError for one it does not list."""
        product = self._by_symbol.get(symbol.lower())
        if product is None:
            raise ValueError(f"unknown symbol {symbol[:20]!r}")
        return product

    def parse_stream(self, name: str) -> tuple[str, str | None]:
        """``btcusdt@depth@100ms`` -> (``depth@100ms``, ``BTC-USDT``); ``!ticker@arr`` -> (it, None)."""
        if name.startswith("!"):
            return name, None
        symbol, _, channel = name.partition("@")
        return channel, self.product_of(symbol)

    def valid_stream(self, name: str) -> bool:
        try:
            channel, product = self.parse_stream(name)
        except ValueError:
            return False
        if name.split("@", 1)[0] != name.split("@", 1)[0].lower():
            return False  # the symbol part is lowercase (btcusdt@markPrice@1s)
        if product is None:
            return channel == "!ticker@arr"
        return channel in CHANNELS and channel != "user" and product in self.markets

    # --- market state ----------------------------------------------------------------------

    def prepare_step(self, step: Step) -> None:
        product = step.product
        if step.changes:
            self.step_id += 1  # ids shared by every symbol: not consecutive per symbol
            self.last_id[product] = self.step_id
        self.step_aggs = []
        if step.trades:
            for t in step.trades:
                self._agg += 1
                self.step_aggs.append(
                    {
                        "e": "aggTrade",
                        "E": ms(t.ts),
                        "s": _symbol(product).upper(),
                        "a": self._agg,
                        "p": t.price,
                        "q": t.size,
                        "f": t.trade_id,
                        "l": t.trade_id,
                        "T": ms(t.ts),
                        "m": t.maker_side == "bid",
                    }
                )

    def trade_event(self, product: str, t: SimTrade, now: float) -> dict[str, Any]:
        return {
            "e": "trade",
            "E": ms(now),
            "s": _symbol(product).upper(),
            "t": t.trade_id,
            "p": t.price,
            "q": t.size,
            "T": ms(t.ts),
            "m": t.maker_side == "bid",
        }

    def partial_depth(self, product: str, n: int, now: float) -> dict[str, Any]:
        m = self.markets[product]
        bids, asks = m.top_levels(n)
        u = self.last_id[product]
        return {
            "e": "depthUpdate",
            "E": ms(now),
            "T": ms(now),
            "s": _symbol(product).upper(),
            "U": u,
            "u": u,
            "pu": u,
            "b": [list(lv) for lv in bids[:n]],
            "a": [list(lv) for lv in asks[:n]],
        }

    def ticker(self, product: str, now: float) -> dict[str, Any]:
        m = self.markets[product]
        pt = m.price_text
        last, opened = Decimal(pt(m.last_price)), Decimal(pt(m.open_24h))
        pct = ((last - opened) / opened * 100).quantize(Decimal("0.001")) if opened else Decimal(0)
        return {
            "e": "24hrTicker",
            "E": ms(now),
            "s": _symbol(product).upper(),
            "p": format(last - opened, "f"),
            "P": format(pct, "f"),
            "w": pt(m.last_price),
            "c": pt(m.last_price),
            "Q": "0",
            "o": pt(m.open_24h),
            "h": pt(m.high_24h),
            "l": pt(m.low_24h),
            "v": m.size_text(m.volume_24h),
            "q": "0",
            "O": ms(now - 86400),
            "C": ms(now),
            "F": 1000,
            "L": m.trade_id,
            "n": m.trade_id - 1000,
        }

    def mini_ticker(self, product: str, now: float) -> dict[str, Any]:
        m = self.markets[product]
        pt = m.price_text
        return {
            "e": "24hrMiniTicker",
            "E": ms(now),
            "s": _symbol(product).upper(),
            "c": pt(m.last_price),
            "o": pt(m.open_24h),
            "h": pt(m.high_24h),
            "l": pt(m.low_24h),
            "v": m.size_text(m.volume_24h),
            "q": "0",
        }

    def mark_price(self, product: str, now: float) -> dict[str, Any]:
        m = self.markets[product]
        mid = (m.best_bid() + m.best_ask()) // 2
        mid -= mid % m.tick
        funding_every = 8 * 3600
        return {
            "e": "markPriceUpdate",
            "E": ms(now),
            "s": _symbol(product).upper(),
            "p": m.price_text(mid),
            "i": m.price_text(mid + m.tick),
            "P": m.price_text(mid),
            "r": "0.00010000",
            "T": ms((now // funding_every + 1) * funding_every),
        }

    def kline_event(self, product: str, interval: str, now: float) -> dict[str, Any] | None:
        """The latest bar of ``interval``, folded from the market's one-minute bars (as REST klines are)."""
        m = self.markets[product]
        seconds = KLINE_INTERVALS[interval]
        bars = m.bars(seconds, 1)
        if not bars:
            return None
        k = bars[-1]
        pt = m.price_text
        sym = _symbol(product).upper()
        return {
            "e": "kline",
            "E": ms(now),
            "s": sym,
            "k": {
                "t": k.start * 1000,
                "T": (k.start + seconds) * 1000 - 1,
                "s": sym,
                "i": interval,
                "f": 0,
                "L": 0,
                "o": pt(k.open),
                "c": pt(k.close),
                "h": pt(k.high),
                "l": pt(k.low),
                "v": m.size_text(k.volume),
                "n": k.trades,
                "x": now >= k.start + seconds,
                "q": "0",
                "V": "0",
                "Q": "0",
                "B": "0",
            },
        }

    def user_events(self, now: float) -> list[dict[str, Any]]:
        """The test account trades a little: a new order, its fill, and the balance/position after."""
        product = next(iter(self.markets))
        m = self.markets[product]
        self._order_id += 1
        price = m.price_text(m.best_bid())
        self._position += Decimal("0.001")
        sym = _symbol(product).upper()
        order = {
            "e": "ORDER_TRADE_UPDATE",
            "E": ms(now),
            "T": ms(now),
            "o": {
                "s": sym,
                "c": f"sim-{self._order_id}",
                "S": "BUY",
                "o": "LIMIT",
                "f": "GTC",
                "q": "0.002",
                "p": price,
                "ap": price,
                "sp": "0",
                "x": "TRADE",
                "X": "PARTIALLY_FILLED",
                "i": self._order_id,
                "l": "0.001",
                "z": "0.001",
                "L": price,
                "T": ms(now),
                "t": m.trade_id,
                "n": "0.0256",  # the commission so far, in N
                "N": "USDT",
                "rp": "0",
            },
        }
        account = {
            "e": "ACCOUNT_UPDATE",
            "E": ms(now),
            "T": ms(now),
            "a": {
                "m": "ORDER",
                "B": [{"a": "USDT", "wb": "10000.00", "cw": "9500.00"}],
                "P": [{"s": sym, "pa": format(self._position, "f"), "ep": price, "up": "0.00"}],
            },
        }
        return [order, account]

    # --- REST ------------------------------------------------------------------------------

    async def _rest(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Any]:
        if path == DEPTH_PATH and method == "GET":
            symbol = query.get("symbol", "")
            try:
                product = self.product_of(symbol)
            except ValueError:
                product = ""
            if product not in self.markets:
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            limit = min(int(query.get("limit", "500") or 500), 1000)
            m = self.markets[product]
            bids, asks = m.snapshot_levels()
            body = {
                "lastUpdateId": self.last_id[product],
                "E": ms(self.clock()),
                "T": ms(self.clock()),
                "bids": [list(lv) for lv in bids[:limit]],
                "asks": [list(lv) for lv in asks[:limit]],
            }
            if self.faults.snapshot_delay:  # taken now, delivered late: the stream moves on meanwhile
                await asyncio.sleep(self.faults.snapshot_delay)
            return 200, body
        if path == KLINES_PATH and method == "GET":
            try:
                product = self.product_of(query.get("symbol", ""))
            except ValueError:
                product = ""
            interval = query.get("interval", "")
            if product not in self.markets or interval not in KLINE_INTERVALS:
                return 400, {"code": -1121, "msg": "Invalid symbol or interval."}
            m = self.markets[product]
            seconds = KLINE_INTERVALS[interval]
            limit = min(int(query.get("limit", "500") or 500), 1500)
            pt = m.price_text
            rows = [
                [
                    b.start * 1000,
                    pt(b.open),
                    pt(b.high),
                    pt(b.low),
                    pt(b.close),
                    m.size_text(b.volume),
                    (b.start + seconds) * 1000 - 1,
                    "0",
                    0,
                    "0",
                    "0",
                    "0",
                ]
                for b in m.bars(max(60, seconds), limit)
            ]
            return 200, rows
        if path == LISTEN_KEY_PATH and method in ("POST", "PUT", "DELETE"):
            auth = headers.get("authorization", "")
            token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
            if token not in self.tokens or self.faults.refuse_auth:
                return 401, {"code": 401, "msg": "Unauthorized"}
            now = self.clock()
            if method == "POST":
                key = secrets.token_hex(32)
                self.listen_keys[key] = now + self.listen_key_ttl
                return 200, {"code": 0, "data": {"listenKey": key}}
            for key in self.listen_keys:  # a keepalive extends the account's live keys
                if method == "PUT" and self.listen_keys[key] >= now:
                    self.listen_keys[key] = now + self.listen_key_ttl
            self.stats["keepalives"] = self.stats.get("keepalives", 0) + (method == "PUT")
            return 200, {"code": 0, "data": {}}
        return 404, {"code": -1, "msg": "Not found"}
