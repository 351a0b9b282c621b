"""The Coinbase Advanced Trade protocol, served by the simulator (protocols.md section 1).

What it does as the venue does: one channel per subscribe frame; snapshots then a cumulative
``subscriptions`` ack; one ``sequence_num`` per connection across every channel starting at 0; level2
on channel ``l2_data`` with ``bid``/``offer``; maker-side ``market_trades`` batched every 250 ms;
``ticker`` per match and ``ticker_batch`` every 5 s; 5-minute ``candles``; heartbeats with an integer
counter and a Go-formatted ``current_time``; unenveloped ``{"type":"error"}`` frames; a JWT checked on
private channels; the 5-second subscribe deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any, ClassVar

import jwt as pyjwt

from tickerterm.sim.auth import verify_cdp_jwt
from tickerterm.sim.keys import generate_cdp_key
from tickerterm.sim.market import Market, SimTrade, Step
from tickerterm.sim.server import SimConnection, SimServer, rfc3339
from tickerterm.venues.auth import CdpKey
from tickerterm.venues.coinbase import CHANNELS

_WIRE_SIDE = {"bid": "bid", "ask": "offer"}
_MAKER = {"bid": "BUY", "ask": "SELL"}
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode


def go_time(ts: float, uptime: float) -> str:
    """Go's ``time.String()``: ``2024-05-01 12:00:00.1234567 +0000 UTC m=+3049.52``."""
    sec, frac = divmod(int(ts * 1e7), 10**7)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec)) + f".{frac:07d} +0000 UTC m=+{uptime:.2f}"


class CoinbaseSimConnection(SimConnection):
    server: CoinbaseSim

    def __init__(self, server: CoinbaseSim, ws: Any) -> None:
        super().__init__(server, ws)
        self.seq = 0
        self.subs: dict[str, dict[str, None]] = {}
        self.pending_trades: list[tuple[str, SimTrade]] = []
        self.heartbeat_counter = 0
        self.key_name: str | None = None
        self.snapshotted: set[str] = set()
        self.pending_l2: dict[str, dict[tuple[str, str], str]] = {}
        self.pending_tickers: dict[str, None] = {}
        self.blast_at: dict[str, int] = {}
        self.blast_task: asyncio.Task[None] | None = None

    # --- framing ---------------------------------------------------------------------------

    def emit(self, channel: str, events: Any, *, data: bool = False) -> None:
        if self.pending_l2 and channel != "l2_data":
            self.flush_l2()  # whatever is sent later reflects every book change made before it
        body = events if isinstance(events, str) else _DUMPS(events)
        seq = self.seq
        self.seq += 1
        ts = rfc3339(self.server.clock())
        self.push(
            f'{{"channel":"{channel}","client_id":"","timestamp":"{ts}","sequence_num":{seq},'
            f'"events":{body}}}',
            data=data,
        )

    def error(self, message: str) -> None:
        self.push(_DUMPS({"type": "error", "message": message}))

    def unknown_frame(self) -> str:
        seq = self.seq
        self.seq += 1
        ts = rfc3339(self.server.clock())
        return (
            f'{{"channel":"mystery_channel","client_id":"","timestamp":"{ts}","sequence_num":{seq},'
            f'"events":[{{"type":"update","surprise":true}}]}}'
        )

    def _ack(self) -> None:
        subs = {c: (list(p) if c != "heartbeats" else ["heartbeats"]) for c, p in self.subs.items()}
        self.emit("subscriptions", [{"subscriptions": subs}])

    # --- client frames ---------------------------------------------------------------------

    async def on_frame(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            self.error("failure to parse message")
            return
        kind = msg.get("type")
        if kind not in ("subscribe", "unsubscribe"):
            self.error(f"unknown message type {kind!r}" if kind else "message has no type")
            return
        if kind == "subscribe":
            self.subscribed_once.set()
        channel = msg.get("channel")
        if not isinstance(channel, str):
            self.error("failure to subscribe: channel must be a string")
            return
        spec = CHANNELS.get(channel)
        token = msg.get("jwt")
        if spec is None:
            # the real venue says "authentication failure" for an unknown channel when a JWT is attached
            self.error(
                "authentication failure" if token else f"failure to subscribe: unknown channel {channel}"
            )
            return
        if (spec.private or token is not None) and not self._authenticate(token):
            self.error("authentication failure")
            return
        products = msg.get("product_ids")
        if products is not None and (
            not isinstance(products, list) or not all(isinstance(p, str) for p in products)
        ):
            self.error("failure to subscribe: product_ids must be a list of strings")
            return
        if spec.per_product and channel != "user":
            unknown = [p for p in products or () if p not in self.server.markets]
            if unknown:
                self.error(f"failure to subscribe: unknown product {unknown[0]}")
                return
        if kind == "subscribe":
            self._subscribe(channel, products or [])
        else:
            self._unsubscribe(channel, products)

    def _authenticate(self, token: Any) -> bool:
        if not isinstance(token, str) or self.server.faults.refuse_auth:
            return False
        try:
            self.key_name = verify_cdp_jwt(token, self.server.public_keys, self.server.clock())
        except pyjwt.InvalidTokenError:
            return False
        return True

    def _subscribe(self, channel: str, products: list[str], *, late: bool = False) -> None:
        server = self.server
        delay = server.faults.snapshot_delay
        if channel == "level2" and delay > 0 and not late and any(p in self.snapshotted for p in products):
            # a slow venue: the book comes back only after a while (the product is not live until then)
            again = [p for p in products if p in self.snapshotted]
            products = [p for p in products if p not in self.snapshotted]
            asyncio.get_running_loop().call_later(delay, self._late_subscribe, again)
        if channel in ("heartbeats", "futures_balance_summary"):
            self.subs.setdefault(channel, {})
            new: list[str] = []
        else:
            if channel == "status" and not products:
                products = list(server.markets)
            have = self.subs.setdefault(channel, {})
            new = [p for p in products if p not in have]
            for p in new:
                have[p] = None
        now = server.clock()
        if channel == "level2":
            self.snapshotted.update(new)
            if server.blast:
                for p in new:
                    if p not in server.blast_cycle:
                        server.blast_cycle[p] = _blast_cycle(
                            server.markets[p], server.blast, server.timing.l2_batch_max
                        )
                    self.blast_at[p] = 0
                if self.blast_task is None:
                    self.blast_task = asyncio.get_running_loop().create_task(self._blast())
            for p in new:
                bids, asks = server.markets[p].snapshot_levels()
                ts = rfc3339(now)
                updates = [
                    {"side": "bid", "event_time": ts, "price_level": px, "new_quantity": sz}
                    for px, sz in bids
                ]
                updates += [
                    {"side": "offer", "event_time": ts, "price_level": px, "new_quantity": sz}
                    for px, sz in asks
                ]
                self.emit("l2_data", [{"type": "snapshot", "product_id": p, "updates": updates}])
        elif channel == "market_trades" and new:
            trades = [self._trade(p, t) for p in new for t in server.markets[p].recent_trades[-50:]]
            self.emit("market_trades", [{"type": "snapshot", "trades": trades}])
        elif channel in ("ticker", "ticker_batch") and new:
            tickers = [self._ticker(server.markets[p], channel == "ticker") for p in new]
            self.emit(channel, [{"type": "snapshot", "tickers": tickers}])
        elif channel == "candles" and new:
            candles = [self._candle(p, c) for p in new for c in server.markets[p].candles[-30:]]
            self.emit("candles", [{"type": "snapshot", "candles": candles}])
        elif channel == "status" and new:
            self.emit("status", [{"type": "snapshot", "products": [self._status(p) for p in new]}])
        elif channel == "user":
            self._user_snapshot()
        elif channel == "futures_balance_summary":
            self.emit(channel, [{"type": "snapshot", "fcm_balance_summary": server.balance_summary()}])
        self._ack()

    def on_close(self) -> None:
        if self.blast_task is not None:
            self.blast_task.cancel()

    async def _blast(self) -> None:
        """Benchmark mode: send the prepared level2 cycle as fast as the socket takes it."""
        cycles = self.server.blast_cycle
        sent = 0
        while not self.closing:
            for product in list(self.subs.get("level2", ())):
                cycle = cycles[product]
                i = self.blast_at.get(product, 0)
                self.emit("l2_data", cycle[i], data=True)
                self.blast_at[product] = (i + 1) % len(cycle)
            sent += 1
            if self.queue.qsize() > 2000:
                while self.queue.qsize() > 500 and not self.closing:  # noqa: ASYNC110
                    await asyncio.sleep(0.0005)
            elif sent % 64 == 0:
                await asyncio.sleep(0)
            if not self.subs.get("level2"):
                await asyncio.sleep(0.01)

    def _late_subscribe(self, products: list[str]) -> None:
        if not self.closing:
            self._subscribe(
                "level2", [p for p in products if p not in self.subs.get("level2", {})], late=True
            )

    def _unsubscribe(self, channel: str, products: list[str] | None) -> None:
        if channel == "level2":  # changes not sent yet are not sent at all
            for p in list(self.pending_l2) if products is None else products:
                self.pending_l2.pop(p, None)
        have = self.subs.get(channel)
        if have is not None:
            if products is None or channel in ("heartbeats", "futures_balance_summary"):
                del self.subs[channel]
            else:
                for p in products:
                    have.pop(p, None)
                if not have:
                    del self.subs[channel]
        self._ack()

    # --- market ----------------------------------------------------------------------------

    def on_step(self, step: Step) -> None:
        product = step.product
        subs = self.subs
        if step.changes and product in subs.get("level2", ()):
            pending = self.pending_l2.get(product)
            if pending is None:
                pending = self.pending_l2[product] = {}
            for side, px, sz in step.changes:  # net change per level, as the venue batches them
                pending[(side, px)] = sz
            if len(pending) >= self.server.timing.l2_batch_max:
                self.flush_l2([product])
        if step.trades:
            if product in subs.get("market_trades", ()):
                self.pending_trades.extend((product, t) for t in step.trades)
            if product in subs.get("ticker", ()):
                self.pending_tickers[product] = None  # matches in one batch cascade into one ticker

    def flush_l2(self, products: list[str] | None = None) -> None:
        """Send the batched book changes (of ``products``, default all): one frame, an event per product."""
        if products is None:
            pending, self.pending_l2 = self.pending_l2, {}
        else:
            pending = {p: self.pending_l2.pop(p) for p in products if p in self.pending_l2}
        ts = rfc3339(self.server.clock())
        events = []
        for product, changes in pending.items():
            updates = ",".join(
                f'{{"side":"{_WIRE_SIDE[side]}","event_time":"{ts}","price_level":"{px}","new_quantity":"{sz}"}}'
                for (side, px), sz in changes.items()
            )
            events.append(f'{{"type":"update","product_id":"{product}","updates":[{updates}]}}')
        if events:
            self.emit("l2_data", "[" + ",".join(events) + "]", data=True)

    def on_timer(self, kind: str) -> None:
        server = self.server
        if kind == "l2_batch":
            if self.pending_l2:
                self.flush_l2()
            if self.pending_tickers:
                markets = self.server.markets
                tickers = [self._ticker(markets[p], True) for p in self.pending_tickers]
                self.pending_tickers.clear()
                self.emit("ticker", [{"type": "update", "tickers": tickers}], data=True)
        elif kind == "heartbeat" and "heartbeats" in self.subs:
            self.heartbeat_counter += 1
            now = server.clock()
            self.emit(
                "heartbeats",
                [
                    {
                        "current_time": go_time(now, time.monotonic() - self.opened_at),
                        "heartbeat_counter": self.heartbeat_counter,
                    }
                ],
            )
        elif kind == "trades_batch" and self.pending_trades:
            trades = [self._trade(p, t) for p, t in self.pending_trades]
            self.pending_trades.clear()
            self.emit("market_trades", [{"type": "update", "trades": trades}], data=True)
        elif kind == "candles" and self.subs.get("candles"):
            candles = [
                self._candle(p, server.markets[p].candles[-1])
                for p in self.subs["candles"]
                if server.markets[p].candles
            ]
            if candles:
                self.emit("candles", [{"type": "update", "candles": candles}], data=True)
        elif kind == "ticker_batch" and self.subs.get("ticker_batch"):
            tickers = [self._ticker(server.markets[p], False) for p in self.subs["ticker_batch"]]
            self.emit("ticker_batch", [{"type": "update", "tickers": tickers}], data=True)
        elif kind == "status" and self.subs.get("status"):
            self.emit(
                "status", [{"type": "update", "products": [self._status(p) for p in self.subs["status"]]}]
            )
        elif kind == "user":
            if "user" in self.subs:
                order = server.account_step()
                if order is not None and self._wants_order(order):
                    self.emit(
                        "user",
                        [
                            {
                                "type": "update",
                                "orders": [order],
                                "positions": {
                                    "perpetual_futures_positions": [],
                                    "expiring_futures_positions": [],
                                },
                            }
                        ],
                    )
            if "futures_balance_summary" in self.subs:
                self.emit(
                    "futures_balance_summary",
                    [{"type": "update", "fcm_balance_summary": server.balance_summary()}],
                )

    def _wants_order(self, order: dict[str, Any]) -> bool:
        products = self.subs.get("user") or {}
        return not products or order["product_id"] in products

    def _user_snapshot(self) -> None:
        orders = [o for o in self.server.orders if o["status"] == "OPEN" and self._wants_order(o)]
        # open orders come in batches of 50; the first batch with fewer than 50 ends the dump
        for i in range(0, len(orders) + 1, 50):
            self.emit(
                "user",
                [
                    {
                        "type": "snapshot",
                        "orders": orders[i : i + 50],
                        "positions": {"perpetual_futures_positions": [], "expiring_futures_positions": []},
                    }
                ],
            )

    # --- payloads --------------------------------------------------------------------------

    def _trade(self, product: str, t: SimTrade) -> dict[str, str]:
        return {
            "trade_id": str(t.trade_id),
            "product_id": product,
            "price": t.price,
            "size": t.size,
            "side": _MAKER[t.maker_side],
            "time": rfc3339(t.ts),
        }

    def _ticker(self, m: Market, with_book: bool) -> dict[str, str]:
        last, opened = Decimal(m.price_text(m.last_price)), Decimal(m.price_text(m.open_24h))
        change = ((last - opened) / opened * 100).quantize(Decimal("0.00000001"))
        out = {
            "type": "ticker",
            "product_id": m.product,
            "price": m.price_text(m.last_price),
            "volume_24_h": m.size_text(m.volume_24h),
            "low_24_h": m.price_text(m.low_24h),
            "high_24_h": m.price_text(m.high_24h),
            "low_52_w": m.price_text(m.low_24h // 2),
            "high_52_w": m.price_text(m.high_24h * 2),
            "price_percent_chg_24_h": format(change, "f"),
        }
        if with_book:
            bb, ba = m.best_bid(), m.best_ask()
            out |= {
                "best_bid": m.price_text(bb),
                "best_bid_quantity": m.size_text(m.bids[bb]),
                "best_ask": m.price_text(ba),
                "best_ask_quantity": m.size_text(m.asks[ba]),
            }
        return out

    def _candle(self, product: str, c: Any) -> dict[str, str]:
        m = self.server.markets[product]
        pt = m.price_text
        return {
            "start": str(c.start),
            "high": pt(c.high),
            "low": pt(c.low),
            "open": pt(c.open),
            "close": pt(c.close),
            "volume": m.size_text(c.volume),
            "product_id": product,
        }

    def _status(self, product: str) -> dict[str, str]:
        m = self.server.markets[product]
        base, _, quote = product.partition("-")
        inc = m.price_text(m.tick)
        return {
            "product_type": "SPOT",
            "id": product,
            "base_currency": base,
            "quote_currency": quote,
            "base_increment": "0.00000001",
            "quote_increment": inc,
            "display_name": f"{base}/{quote}",
            "status": "online",
            "status_message": "",
            "min_market_funds": "1",
        }


def _blast_cycle(market: Market, steps: int, batch: int) -> list[str]:
    """``l2_data`` event bodies that take a copy of ``market`` through ``steps`` steps and back again."""
    import copy

    m = copy.deepcopy(market)
    forward: list[list[tuple[str, str, str]]] = []
    undo: list[list[tuple[str, str, str]]] = []
    pending: dict[tuple[str, str], str] = {}
    before: dict[tuple[str, str], str] = {}
    bids, asks = m.snapshot_levels()
    levels = {("bid", p): s for p, s in bids} | {("ask", p): s for p, s in asks}  # the book as sent
    for _ in range(steps):
        for side, px, sz in m.step(0.0).changes:
            key = (side, px)
            if key not in before:  # the level as it was before this batch: what undoing restores
                before[key] = levels.get(key, "0")
            pending[key] = sz
            if sz == "0":
                levels.pop(key, None)
            else:
                levels[key] = sz
        if len(pending) >= batch:
            forward.append([(s, p, z) for (s, p), z in pending.items()])
            undo.append([(s, p, before[(s, p)]) for (s, p) in pending])
            pending, before = {}, {}
    frames = forward + undo[::-1]
    ts = "1970-01-01T00:00:00Z"
    return [
        f'[{{"type":"update","product_id":"{market.product}","updates":['
        + ",".join(
            f'{{"side":"{_WIRE_SIDE[s]}","event_time":"{ts}","price_level":"{p}","new_quantity":"{z}"}}'
            for s, p, z in changes
        )
        + "]}]"
        for changes in frames
    ]


class CoinbaseSim(SimServer):
    """Coinbase Advanced Trade on a loopback port; ``public_keys`` maps API key names to the public
    keys the simulator accepts JWTs from (the test account)."""

    venue = "coinbase"
    connection_class: ClassVar[type[SimConnection]] = CoinbaseSimConnection

    def __init__(self, *, public_keys: dict[str, Any] | None = None, blast: int = 0, **kwargs: Any) -> None:
        """``blast=N``: a benchmark mode. N market steps per product are rendered into level2 frames in
        advance, followed by the frames that undo them, and each level2 subscriber gets that cycle as
        fast as its socket takes it (the live market is stopped, so the books stay true)."""
        if blast:
            kwargs["rate"] = 0.0
        super().__init__(**kwargs)
        self.public_keys: dict[str, Any] = dict(public_keys or {})
        self.blast = blast
        self.blast_cycle: dict[str, list[str]] = {}
        """Prepared on the first level2 subscription of each product."""
        if blast:
            self.pause()
        self.orders: list[dict[str, Any]] = []
        self._order_seq = 0
        self._balance_tick = 0
        for product, side in (("BTC-USD", "BUY"), ("ETH-USD", "SELL"), ("BTC-USD", "SELL")):
            if product in self.markets:
                self._new_order(product, side)

    def client_credentials(self) -> CdpKey:
        key, public = generate_cdp_key("ES256")
        self.public_keys[key.name] = public
        return key

    def write_key_file(self, path: str) -> None:
        key = self.client_credentials()
        self._write_private(path, {"name": key.name, "privateKey": key.private_key.reveal()})

    def _new_order(self, product: str, side: str) -> dict[str, Any]:
        m = self.markets[product]
        self._order_seq += 1
        away = m.tick * 50
        price = m.best_bid() - away if side == "BUY" else m.best_ask() + away
        now = rfc3339(self.clock())
        order = {
            "order_id": f"sim-order-{self._order_seq:06d}",
            "client_order_id": f"cli-{self._order_seq:06d}",
            "product_id": product,
            "product_type": "SPOT",
            "order_side": side,
            "order_type": "LIMIT",
            "status": "OPEN",
            "time_in_force": "GOOD_UNTIL_CANCELLED",
            "limit_price": m.price_text(price),
            "stop_price": "",
            "avg_price": "0",
            "cumulative_quantity": "0",
            "leaves_quantity": "0.04",
            "filled_value": "0",
            "number_of_fills": "0",
            "total_fees": "0",
            "total_value_after_fees": "0",
            "outstanding_hold_amount": "0",
            "completion_percentage": "0",
            "post_only": "false",
            "cancel_reason": "",
            "reject_reason": "",
            "retail_portfolio_id": "sim-portfolio",
            "risk_managed_by": "UNKNOWN_RISK_MANAGEMENT_TYPE",
            "trigger_status": "INVALID_ORDER_TYPE",
            "contract_expiry_type": "UNKNOWN_CONTRACT_EXPIRY_TYPE",
            "creation_time": now,
            "end_time": "0001-01-01T00:00:00Z",
            "start_time": "0001-01-01T00:00:00Z",
        }
        self.orders.append(order)
        return order

    def account_step(self) -> dict[str, Any] | None:
        """Fill a quarter of the oldest open order (a new one replaces it once filled)."""
        open_orders = [o for o in self.orders if o["status"] == "OPEN"]
        if not open_orders:
            return None
        order = open_orders[0]
        filled = Decimal(order["cumulative_quantity"]) + Decimal("0.01")
        leaves = Decimal(order["leaves_quantity"]) - Decimal("0.01")
        order["cumulative_quantity"] = format(filled, "f")
        order["leaves_quantity"] = format(leaves, "f")
        order["avg_price"] = order["limit_price"]
        order["number_of_fills"] = str(int(order["number_of_fills"]) + 1)
        if leaves <= 0:
            order["status"] = "FILLED"
            self._new_order(order["product_id"], order["order_side"])
        if len(self.orders) > 100:
            self.orders = [o for o in self.orders if o["status"] == "OPEN"]
        return dict(order)

    def balance_summary(self) -> dict[str, Any]:
        self._balance_tick += 1
        pnl = Decimal(self._balance_tick) * Decimal("1.25")
        return {
            "futures_buying_power": "10000.00",
            "total_usd_balance": "25000.00",
            "cbi_usd_balance": "15000.00",
            "cfm_usd_balance": "10000.00",
            "total_open_orders_hold_amount": "0",
            "unrealized_pnl": format(pnl, "f"),
            "daily_realized_pnl": "0",
            "initial_margin": "0",
            "available_margin": "10000.00",
            "liquidation_threshold": "0",
            "liquidation_buffer_amount": "10000.00",
            "liquidation_buffer_percentage": "1000",
            "intraday_margin_window_measure": {
                "margin_window_type": "FCM_MARGIN_WINDOW_TYPE_INTRADAY",
                "margin_level": "MARGIN_LEVEL_TYPE_BASE",
                "initial_margin": "0",
                "maintenance_margin": "0",
                "liquidation_buffer_percentage": "1000",
                "total_hold": "0",
                "futures_buying_power": "10000.00",
            },
        }
