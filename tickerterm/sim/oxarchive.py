"""0xArchive, served by the simulator (protocols.md section 5), live and replayed.

Live: ``subscribe``/``unsubscribe`` (with ``symbol`` or ``coin``) answered per channel and symbol;
``{"op":"ping"}`` answered by ``pong``; ``orderbook`` as a whole top-20 book every tick; ``trades``
(``B``/``A``); 1-minute ``candles``; ``l4_diffs`` as an ``l4_snapshot`` of every order then
``l4_batch`` diffs derived from the market's orders (``sim/orders.py``). The key comes as
``Authorization: Bearer`` or ``?apiKey=``; a wrong one gets a ``forbidden`` error and a close.

Replay runs over the simulator's own recorded history (its warm-up hour and everything since): the
``replay`` op (``channel`` or ``channels``) gets ``replay_started``, a ``replay_snapshot`` of the book at
the start, then ``historical_data`` paced by ``speed``; ``replay.pause``/``resume``/``seek``/``stop``
answer ``replay_paused``/``replay_resumed``/a new snapshot/``replay_stopped``; the end is
``replay_completed``. A hole of more than two minutes in the recorded books is a ``gap_detected``.

Faults as for every venue, plus ``--fault gap_notice_after=S`` (a ``gap_detected`` for every live
book after S seconds).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import secrets
from collections import deque
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from tickerterm.sim.market import Market, ProductSpec, SimCandle, Step
from tickerterm.sim.orders import OrderBookL3
from tickerterm.sim.server import SimConnection, SimServer
from tickerterm.venues.auth import ApiToken, Secret
from tickerterm.venues.oxarchive import CHANNELS

OX_PRODUCTS: tuple[ProductSpec, ...] = (
    ProductSpec("BTC", "64000.0", "0.1"),
    ProductSpec("ETH", "3100.00", "0.01"),
    ProductSpec("SOL", "145.000", "0.001"),
    ProductSpec("HYPE-USDC", "25.000", "0.001"),
)
BOOK_LEVELS = 20
HISTORY = 50_000
"""Recorded entries kept per product (books, trades, candles)."""
GAP_MINUTES = 2
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode
_SIDE = {"bid": "B", "ask": "A"}


def ms(ts: float) -> int:
    return int(ts * 1000)


class OxArchiveSimConnection(SimConnection):
    server: OxArchiveSim

    def __init__(self, server: OxArchiveSim, ws: Any) -> None:
        super().__init__(server, ws)
        request = ws.request
        auth = request.headers.get("Authorization", "") if request is not None else ""
        key = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if key is None and request is not None:
            key = dict(parse_qsl(urlsplit(request.path).query)).get("apiKey")
        self.key = key
        self.subs: dict[str, dict[str, None]] = {}
        self.replay_task: asyncio.Task[None] | None = None
        self.replay_run = asyncio.Event()
        self.replay_run.set()
        self.replay_seek: float | None = None
        self.replay_now = 0.0

    def send(self, msg: dict[str, Any], *, data: bool = False) -> None:
        self.push(_DUMPS(msg), data=data)

    def error(self, message: str, code: str) -> None:
        self.send({"type": "error", "message": message, "error_code": code})

    def unknown_frame(self) -> str:
        return '{"type":"mystery","channel":"orderbook","coin":"BTC"}'

    async def on_open(self) -> None:
        self.subscribed_once.set()  # no deadline on this venue
        if self.key not in self.server.keys or self.server.faults.refuse_auth:
            self.error("Invalid or missing API key", "forbidden")
            self.close_with(1008, "forbidden")

    def on_close(self) -> None:
        if self.replay_task is not None:
            self.replay_task.cancel()

    # --- client frames ---------------------------------------------------------------------

    async def on_frame(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            self.error("Invalid message", "invalid_parameter")
            return
        op = msg.get("op")
        if op == "ping":
            self.send({"type": "pong"})
            return
        if op in ("stream", "stream.stop"):
            self.error("Bulk streaming is discontinued; use REST or replay", "endpoint_unsupported")
            return
        if isinstance(op, str) and op.startswith("replay"):
            self._replay_op(op, msg)
            return
        if op not in ("subscribe", "unsubscribe"):
            self.error(f"Unknown op {str(op)[:20]!r}", "invalid_parameter")
            return
        channel = msg.get("channel")
        symbol = msg.get("symbol") or msg.get("coin")  # the TS SDK sends coin
        if channel not in CHANNELS:
            self.error(f"Unknown channel {str(channel)[:30]}.", "invalid_parameter")
            return
        if symbol not in self.server.markets:
            self.error(f"Unknown symbol {str(symbol)[:30]}.", "invalid_parameter")
            return
        have = self.subs.setdefault(channel, {})
        if op == "subscribe":
            have[symbol] = None
            self.send({"type": "subscribed", "channel": channel, "coin": symbol, "symbol": symbol})
            if channel == "l4_diffs":
                self._l4_snapshot(symbol)
            elif channel == "orderbook":
                self._book(symbol)
        else:
            have.pop(symbol, None)
            self.send({"type": "unsubscribed", "channel": channel, "coin": symbol, "symbol": symbol})

    # --- live ------------------------------------------------------------------------------

    def _book(self, symbol: str) -> None:
        data = self.server.book_data(symbol)
        self.send(
            {"type": "data", "channel": "orderbook", "coin": symbol, "symbol": symbol, "data": data},
            data=True,
        )

    def _l4_snapshot(self, symbol: str) -> None:
        book = self.server.orders[symbol]
        now = self.server.clock()

        def rows(side: str) -> list[dict[str, Any]]:
            return [
                {"oid": oid, "side": _SIDE[side], "px": px, "sz": sz} for px, sz, oid in book.orders(side)
            ]

        self.send(
            {
                "type": "l4_snapshot",
                "channel": "l4_diffs",
                "coin": symbol,
                "symbol": symbol,
                "last_block_number": self.server.block,
                "timestamp": ms(now),
                "data": {"bids": rows("bid"), "asks": rows("ask")},
            }
        )

    def on_step(self, step: Step) -> None:
        symbol = step.product
        server = self.server
        if step.trades and symbol in self.subs.get("trades", ()):
            self.send(
                {
                    "type": "data",
                    "channel": "trades",
                    "coin": symbol,
                    "symbol": symbol,
                    "data": [server.trade_data(symbol, t) for t in step.trades],
                },
                data=True,
            )
        if server.step_diffs and symbol in self.subs.get("l4_diffs", ()):
            self.send(
                {
                    "type": "l4_batch",
                    "channel": "l4_diffs",
                    "coin": symbol,
                    "symbol": symbol,
                    "data": server.step_diffs,
                },
                data=True,
            )

    def on_timer(self, kind: str) -> None:
        if kind == "heartbeat":  # about once a second, as Hyperliquid books come
            for symbol in self.subs.get("orderbook", ()):
                self._book(symbol)
        elif kind == "candles":
            for symbol in self.subs.get("candles", ()):
                bar = self.server.minute_bar(symbol)
                if bar is not None:
                    self.send(
                        {"type": "data", "channel": "candles", "coin": symbol, "symbol": symbol, "data": bar},
                        data=True,
                    )

    # --- replay ----------------------------------------------------------------------------

    def _replay_op(self, op: str, msg: dict[str, Any]) -> None:
        if op == "replay":
            channels = msg.get("channels") or ([msg["channel"]] if msg.get("channel") else [])
            symbol = msg.get("symbol") or msg.get("coin")
            start, end, speed = msg.get("start"), msg.get("end"), msg.get("speed", 1)
            if not channels or any(c not in ("orderbook", "trades", "candles") for c in channels):
                self.error("Replay channels: orderbook, trades, candles", "invalid_parameter")
                return
            if symbol not in self.server.markets:
                self.error(f"Unknown symbol {str(symbol)[:30]}.", "invalid_parameter")
                return
            if not (isinstance(start, int) and isinstance(end, int) and start < end):
                self.error(
                    "start and end must be millisecond timestamps, start before end", "invalid_parameter"
                )
                return
            if not isinstance(speed, (int, float)) or speed <= 0:
                self.error("speed must be positive", "invalid_parameter")
                return
            if self.replay_task is not None:
                self.replay_task.cancel()
            self.replay_run.set()
            self.replay_task = asyncio.get_running_loop().create_task(
                self._replay(symbol, list(channels), start / 1000, end / 1000, float(speed))
            )
        elif self.replay_task is None or self.replay_task.done():
            self.error("No replay in progress", "invalid_parameter")
        elif op == "replay.pause":
            self.replay_run.clear()
            self.send({"type": "replay_paused", "current_timestamp": ms(self.replay_now)})
        elif op == "replay.resume":
            self.replay_run.set()
            self.send({"type": "replay_resumed", "current_timestamp": ms(self.replay_now)})
        elif op == "replay.seek" and isinstance(msg.get("timestamp"), int):
            self.replay_seek = msg["timestamp"] / 1000
        elif op == "replay.stop":
            self.replay_task.cancel()
            self.send({"type": "replay_stopped"})
        else:
            self.error(f"Unknown replay op {op[:20]!r}", "invalid_parameter")

    async def _replay(self, symbol: str, channels: list[str], start: float, end: float, speed: float) -> None:
        history = self.server.history[symbol]
        self.send(
            {
                "type": "replay_started",
                "channels": channels,
                "coin": symbol,
                "symbol": symbol,
                "start": ms(start),
                "end": ms(end),
                "speed": speed,
            }
        )
        snapshots = 0
        position = start
        while True:
            snap = self.server.book_at(symbol, position)
            if snap is not None and "orderbook" in channels:
                self.send(
                    {
                        "type": "replay_snapshot",
                        "channel": "orderbook",
                        "coin": symbol,
                        "symbol": symbol,
                        "timestamp": snap["time"],
                        "data": snap,
                    }
                )
                snapshots += 1
            times = [e[0] for e in history]
            i = bisect.bisect_right(times, position)
            self.replay_seek = None
            last_book = position
            previous = position
            sought = False
            while i < len(history) and history[i][0] <= end:
                ts, channel, data = history[i]
                i += 1
                if channel not in channels:
                    continue
                await asyncio.sleep(max(0.0, ts - previous) / speed)
                await self.replay_run.wait()
                if self.replay_seek is not None:
                    position = min(max(self.replay_seek, start), end)
                    sought = True
                    break
                previous = self.replay_now = ts
                if channel == "orderbook":
                    if ts - last_book > GAP_MINUTES * 60:  # the record has a hole: say so
                        self.send(
                            {
                                "type": "gap_detected",
                                "channel": "orderbook",
                                "coin": symbol,
                                "gap_start": ms(last_book),
                                "gap_end": ms(ts),
                                "duration_minutes": round((ts - last_book) / 60),
                            }
                        )
                    last_book = ts
                self.send(
                    {
                        "type": "historical_data",
                        "channel": channel,
                        "coin": symbol,
                        "symbol": symbol,
                        "timestamp": ms(ts),
                        "data": data,
                    },
                    data=True,
                )
            if not sought:
                break
        self.send(
            {"type": "replay_completed", "channels": channels, "coin": symbol, "snapshots_sent": snapshots}
        )


class OxArchiveSim(SimServer):
    """0xArchive on a loopback port; ``keys`` are the API keys it accepts (its test account)."""

    venue = "0xarchive"
    connection_class: ClassVar[type[SimConnection]] = OxArchiveSimConnection
    default_products = OX_PRODUCTS

    def __init__(self, *, keys: set[str] | None = None, **kwargs: Any) -> None:
        kwargs.pop("public_keys", None)
        kwargs.pop("blast", None)
        warmup = kwargs.pop("warmup", 0)
        span = kwargs.pop("warmup_span", 3600.0)
        super().__init__(**kwargs)
        self.keys = set(keys or ())
        self.history: dict[str, deque[tuple[float, str, Any]]] = {
            p: deque(maxlen=HISTORY) for p in self.markets
        }
        self._bar_recorded: dict[str, int] = {}
        """The start of the last closed minute bar put in the history, per symbol."""
        self._last_book: dict[str, float] = dict.fromkeys(self.markets, 0.0)
        self.block = 800_000_000
        rng = random.Random(self.seed ^ 0x4A4)
        self.orders = {p: OrderBookL3(m, random.Random(rng.random())) for p, m in self.markets.items()}
        self.step_diffs: list[dict[str, Any]] = []
        self._gap_task: asyncio.Task[None] | None = None
        if warmup:  # the recorded past that replays run over
            start = self.clock() - span
            markets = list(self.markets.values())
            for i in range(warmup):
                m = markets[i % len(markets)]
                self._record(m.product, m.step(start + i * span / warmup), start + i * span / warmup)

    async def start(self) -> str:
        url = await super().start()
        if self.faults.gap_notice_after is not None:
            self._gap_task = asyncio.create_task(self._gap_notice(self.faults.gap_notice_after))
        return url

    async def stop(self) -> None:
        if self._gap_task is not None:
            self._gap_task.cancel()
        await super().stop()

    async def _gap_notice(self, delay: float) -> None:
        await asyncio.sleep(delay)
        now = self.clock()
        for conn in list(self.connections):
            assert isinstance(conn, OxArchiveSimConnection)
            for channel in ("orderbook", "l4_diffs"):
                for symbol in conn.subs.get(channel, ()):
                    conn.send(
                        {
                            "type": "gap_detected",
                            "channel": channel,
                            "coin": symbol,
                            "gap_start": ms(now - 180),
                            "gap_end": ms(now),
                            "duration_minutes": 3,
                        }
                    )

    def client_credentials(self) -> ApiToken:
        key = "0xa_" + secrets.token_hex(12)
        self.keys.add(key)
        return ApiToken(Secret(key), "simulator")

    def write_key_file(self, path: str) -> None:
        self._write_private(path, {"apiKey": self.client_credentials().secret.reveal()})

    # --- market state ----------------------------------------------------------------------

    def prepare_step(self, step: Step) -> None:
        now = self.clock()
        self.block += 1
        self.step_diffs = self._diffs(step, now)
        self._record(step.product, step, now, derived=True)

    def _diffs(self, step: Step, now: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        t = ms(now)
        for op in self.orders[step.product].derive(step):
            side = _SIDE[op.side]
            if op.kind == "open":
                out.append(
                    {
                        "dt": "new",
                        "oid": op.order_id,
                        "side": side,
                        "px": op.price,
                        "sz": op.size,
                        "user": "0x" + op.order_id[:8],
                        "ts": t,
                    }
                )
            elif op.kind == "match" and op.left != "0":
                out.append({"dt": "update", "oid": op.order_id, "side": side, "sz": op.left, "ts": t})
            elif op.kind == "change":
                out.append({"dt": "update", "oid": op.order_id, "side": side, "sz": op.size, "ts": t})
            elif op.kind == "done":
                out.append({"dt": "remove", "oid": op.order_id, "side": side, "ts": t})
        return out

    def _record(self, symbol: str, step: Step, now: float, derived: bool = False) -> None:
        """Keep the history replays run over: trades, minute bars, and a book every second."""
        history = self.history[symbol]
        if step.trades:
            history.append((now, "trades", [self.trade_data(symbol, t) for t in step.trades]))
            bars = self.markets[symbol].minute_bars
            if len(bars) > 1 and bars[-2].start > self._bar_recorded.get(symbol, -1):
                self._bar_recorded[symbol] = bars[-2].start  # a minute has closed: it goes in the record
                history.append((now, "candles", self._bar_data(symbol, bars[-2])))
        if now - self._last_book[symbol] >= 1.0:
            self._last_book[symbol] = now
            history.append((now, "orderbook", self.book_data(symbol, now)))
        if not derived:  # a warm-up step: the orders follow the book as live steps' do
            self.orders[symbol].derive(step)

    def book_data(self, symbol: str, now: float | None = None) -> dict[str, Any]:
        m = self.markets[symbol]
        bids, asks = m.top_levels(BOOK_LEVELS)
        return {
            "coin": symbol,
            "time": ms(self.clock() if now is None else now),
            "levels": [
                [{"px": p, "sz": s, "n": 1} for p, s in bids[:BOOK_LEVELS]],
                [{"px": p, "sz": s, "n": 1} for p, s in asks[:BOOK_LEVELS]],
            ],
        }

    def book_at(self, symbol: str, ts: float) -> dict[str, Any] | None:
        """The last recorded book at or before ``ts``."""
        best = None
        for when, channel, data in self.history[symbol]:
            if when > ts:
                break
            if channel == "orderbook":
                best = data
        return best

    def trade_data(self, symbol: str, t: Any) -> dict[str, Any]:
        return {
            "coin": symbol,
            "side": "B" if t.maker_side == "ask" else "A",
            "px": t.price,
            "sz": t.size,
            "time": ms(t.ts),
            "hash": "0x" + secrets.token_hex(8),
            "tid": t.trade_id,
            "users": ["0xmaker", "0xtaker"],
        }

    def minute_bar(self, symbol: str) -> dict[str, Any] | None:
        bars = self.markets[symbol].minute_bars
        return self._bar_data(symbol, bars[-1]) if bars else None

    def _bar_data(self, symbol: str, bar: SimCandle) -> dict[str, Any]:
        m: Market = self.markets[symbol]
        pt = m.price_text
        return {
            "t": bar.start * 1000,
            "T": (bar.start + 60) * 1000 - 1,
            "s": symbol,
            "i": "1m",
            "o": pt(bar.open),
            "c": pt(bar.close),
            "h": pt(bar.high),
            "l": pt(bar.low),
            "v": m.size_text(bar.volume),
            "n": bar.trades,
        }
