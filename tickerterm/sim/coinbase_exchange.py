"""The Coinbase Exchange feed (the one cbpro used), served by the simulator (protocols.md section 2).

The synthetic market is an L2 book; this venue also has an L3 ``full`` channel, so the server keeps
the orders behind every level: a level that grows gets a new order (``received`` + ``open``), one that
shrinks through a trade fills its oldest orders (``match``, ``done`` filled), one that shrinks otherwise
cancels its newest (``done`` canceled) or resizes it (``change``). The orders always add up to the L2
book, so both channels can be checked against the same true book. One ``sequence`` per product counts
every full-channel message; tickers and matches carry the number of their match, heartbeats the latest.

Subscriptions: names or ``{name, product_ids}`` objects, a cumulative ``subscriptions`` ack, HMAC auth
checked on private channels (``level2``, ``full``, ``user``), "Failed to subscribe" errors with a
reason. REST ``GET /products/<id>/book?level=3`` (and ``level=2``) on the same port. ``level2`` frames
carry no sequence on this venue, so the drop fault drops only sequenced frames (a client can detect
those); ``level2_batch`` changes are batched every ``l2_batch`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

from tickerterm.sim.auth import verify_exchange_auth
from tickerterm.sim.market import Step
from tickerterm.sim.orders import OrderBookL3
from tickerterm.sim.server import SimConnection, SimServer, rfc3339
from tickerterm.venues.auth import ExchangeKey, Secret
from tickerterm.venues.coinbase_exchange import CHANNELS

_DUMPS = json.JSONEncoder(separators=(",", ":")).encode
_NUMBERS = msgspec.json.Encoder(decimal_format="number").encode
_WIRE_SIDE = {"bid": "buy", "ask": "sell"}
_ZEROS = ("0", "0.00", "0.00000000", "0.0", "0.000")
"""The spellings of a removed level seen on the real feed."""
AUTH_REQUIRED = "level2, level3, and full channels now require authentication."
USER_ID = "5f1a0c7e9b3d2a0012345678"
PROFILE_ID = "0c9a2d4e-7f31-4b6a-9d2e-5a1b3c4d5e6f"


class CoinbaseExchangeSimConnection(SimConnection):
    server: CoinbaseExchangeSim

    def __init__(self, server: CoinbaseExchangeSim, ws: Any) -> None:
        super().__init__(server, ws)
        self.subs: dict[str, dict[str, None]] = {}
        self.account: str | None = None
        self.pending_l2: dict[str, dict[tuple[str, str], str]] = {}

    # --- framing ---------------------------------------------------------------------------

    def send(self, msg: dict[str, Any], *, data: bool = False, spoilable: bool | None = None) -> None:
        self.push(_DUMPS(msg), data=data, spoilable=spoilable)

    def error(self, message: str, reason: str | None = None) -> None:
        msg = {"type": "error", "message": message}
        if reason:
            msg["reason"] = reason
        self.send(msg)

    def unknown_frame(self) -> str:
        return '{"type":"mystery","product_id":"BTC-USD"}'

    def _ack(self) -> None:
        channels = [{"name": c, "product_ids": list(p)} for c, p in self.subs.items()]
        self.send({"type": "subscriptions", "channels": channels})

    # --- client frames ---------------------------------------------------------------------

    async def on_frame(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            self.error("Failed to subscribe", "malformed JSON")
            return
        kind = msg.get("type")
        if kind not in ("subscribe", "unsubscribe"):
            self.error(f"unknown message type {kind!r}" if kind else "message has no type")
            return
        if kind == "subscribe":
            self.subscribed_once.set()
        top = msg.get("product_ids") or []
        channels = msg.get("channels")
        if not isinstance(channels, list) or not channels or not isinstance(top, list):
            self.error("Failed to subscribe", "channels must be a non-empty list")
            return
        wanted: list[tuple[str, list[str] | None]] = []  # None: every product (an unsubscribe by name)
        for item in channels:
            if isinstance(item, str):
                wanted.append((item, [str(p) for p in top] if top else None))
            elif isinstance(item, dict) and isinstance(item.get("name"), str):
                listed = item.get("product_ids") or top
                wanted.append((item["name"], [str(p) for p in listed] if listed else None))
            else:
                self.error("Failed to subscribe", "a channel must be a name or {name, product_ids}")
                return
        if "signature" in msg:
            if self.server.faults.refuse_auth:
                self.error("Authentication Failed", "invalid signature")
                return
            try:
                self.account = verify_exchange_auth(msg, self.server.accounts, self.server.clock())
            except ValueError as exc:
                self.error("Authentication Failed", str(exc))
                return
        for name, products in wanted:
            spec = CHANNELS.get(name)
            if spec is None:
                self.error("Failed to subscribe", f"{name} is not a valid channel")
                return
            if kind == "subscribe" and spec.private and self.account is None:
                self.error("Failed to subscribe", AUTH_REQUIRED)
                return
            unknown = [p for p in products or () if p not in self.server.markets]
            if unknown:
                self.error("Failed to subscribe", f"{unknown[0]} is not a valid product")
                return
        for name, products in wanted:
            if kind == "subscribe":
                self._subscribe(name, products or [])
            else:
                self._unsubscribe(name, products)
        self._ack()
        if kind == "subscribe":
            for name, products in wanted:
                self._initial(name, products or [])

    def _subscribe(self, channel: str, products: list[str]) -> None:
        have = self.subs.setdefault(channel, {})
        if channel == "status":
            products = list(self.server.markets)
        for p in products:
            have[p] = None

    def _unsubscribe(self, channel: str, products: list[str] | None) -> None:
        have = self.subs.get(channel)
        if have is None:
            return
        for p in list(have) if products is None else products:
            have.pop(p, None)
            if channel == "level2_batch":
                self.pending_l2.pop(p, None)
        if not have:
            del self.subs[channel]

    def _initial(self, channel: str, products: list[str]) -> None:
        """What the venue sends right after a subscription: snapshots, the last match, a ticker."""
        server = self.server
        for p in products:
            m = server.markets[p]
            if channel in ("level2", "level2_batch"):
                bids, asks = m.snapshot_levels()
                self.send({"type": "snapshot", "product_id": p, "bids": bids, "asks": asks})
            elif channel == "matches" and server.last_match.get(p):
                self.send({**server.last_match[p], "type": "last_match"})
            elif channel == "ticker":
                self.send(server.ticker(p))
        if channel == "status":
            self.send(server.status())

    # --- market ----------------------------------------------------------------------------

    def on_step(self, step: Step) -> None:
        product = step.product
        subs = self.subs
        server = self.server
        if step.changes:
            if product in subs.get("level2", ()):
                changes = [[_WIRE_SIDE[s], p, server.zero() if z == "0" else z] for s, p, z in step.changes]
                ts = rfc3339(server.clock())
                self.send(
                    {"type": "l2update", "product_id": product, "changes": changes, "time": ts},
                    spoilable=True,
                )
            if product in subs.get("level2_batch", ()):
                pending = self.pending_l2.setdefault(product, {})
                for side, px, sz in step.changes:
                    pending[(side, px)] = sz
        # in sequence order across channels, as the venue sends them: a client subscribed to several
        # never sees a product's sequence go backwards; each match's ticker follows that match
        full = product in subs.get("full", ())
        user = product in subs.get("user", ())
        matches = product in subs.get("matches", ())
        ticker = product in subs.get("ticker", ())
        for msg, own in server.step_messages:
            if full or (user and own and self.account is not None):
                out = {**msg, "user_id": USER_ID, "profile_id": PROFILE_ID} if own and self.account else msg
                self.send(out, data=True)
            elif matches and msg["type"] == "match":
                self.send(msg, data=True)
            if ticker and msg["type"] == "match":
                self.send(server.ticker(product, msg), data=True)

    def on_timer(self, kind: str) -> None:
        server = self.server
        if kind == "l2_batch" and self.pending_l2:
            pending, self.pending_l2 = self.pending_l2, {}
            ts = rfc3339(server.clock())
            for product, levels in pending.items():
                changes = [
                    [_WIRE_SIDE[s], p, server.zero() if z == "0" else z] for (s, p), z in levels.items()
                ]
                self.send(
                    {"type": "l2update", "product_id": product, "changes": changes, "time": ts},
                    spoilable=True,
                )
        elif kind == "heartbeat" and self.subs.get("heartbeat"):
            ts = rfc3339(server.clock())
            for p in self.subs["heartbeat"]:
                self.send(
                    {
                        "type": "heartbeat",
                        "last_trade_id": server.trade_ids[p],
                        "product_id": p,
                        "sequence": server.seq[p],
                        "time": ts,
                    }
                )
        elif kind == "ticker_batch" and self.subs.get("ticker_batch"):
            for p in self.subs["ticker_batch"]:
                self.send(server.ticker(p), data=True)
        elif kind == "status" and self.subs.get("status"):
            self.send(server.status())


class CoinbaseExchangeSim(SimServer):
    """Coinbase Exchange on a loopback port. ``accounts`` maps API keys to ``(base64 secret,
    passphrase)`` the simulator accepts (its test accounts)."""

    venue = "coinbase-exchange"
    connection_class: ClassVar[type[SimConnection]] = CoinbaseExchangeSimConnection

    def __init__(self, *, accounts: dict[str, tuple[str, str]] | None = None, **kwargs: Any) -> None:
        kwargs.pop("public_keys", None)
        kwargs.pop("blast", None)
        super().__init__(**kwargs)
        self.accounts: dict[str, tuple[str, str]] = dict(accounts or {})
        rng = random.Random(self.seed ^ 0xE3C)
        self.orders = {p: OrderBookL3(m, random.Random(rng.random())) for p, m in self.markets.items()}
        self.seq: dict[str, int] = dict.fromkeys(self.markets, 0)
        """Per product: every full-channel message takes the next number."""
        self.trade_ids: dict[str, int] = {p: m.trade_id for p, m in self.markets.items()}
        """Per product: the last trade id given. Every match has its own (a taker filling against three
        makers makes three matches, three ids), strictly increasing (recorded real traffic)."""
        self.step_messages: list[tuple[dict[str, Any], bool]] = []
        self.last_match: dict[str, dict[str, Any]] = {}
        for p, m in self.markets.items():  # a market with a past has a last match to send first
            if m.recent_trades:
                t = m.recent_trades[-1]
                self.last_match[p] = {
                    "type": "match",
                    "trade_id": t.trade_id,
                    "maker_order_id": self.orders[p].new_id(),
                    "taker_order_id": self.orders[p].new_id(),
                    "side": _WIRE_SIDE[t.maker_side],
                    "size": t.size,
                    "price": t.price,
                    "product_id": p,
                    "sequence": 0,
                    "time": rfc3339(t.ts),
                }
        self._zero = 0

    def zero(self) -> str:
        self._zero += 1
        return _ZEROS[self._zero % len(_ZEROS)]

    def client_credentials(self) -> ExchangeKey:
        n = len(self.accounts) + 1
        key = f"sim-exchange-key-{n}"
        secret = base64.b64encode(f"tickerterm simulator secret {n} {self.seed}".encode()).decode()
        passphrase = f"sim-passphrase-{n}"
        self.accounts[key] = (secret, passphrase)
        return ExchangeKey(key, Secret(secret), Secret(passphrase), "simulator")

    def write_key_file(self, path: str) -> None:
        key = self.client_credentials()
        self._write_private(
            path, {"key": key.key, "secret": key.secret.reveal(), "passphrase": key.passphrase.reveal()}
        )

    # --- L3 derivation ---------------------------------------------------------------------

    def prepare_step(self, step: Step) -> None:
        product = step.product
        book = self.orders[product]
        out: list[tuple[dict[str, Any], bool]] = []
        ts = rfc3339(self.clock())

        def emit(msg: dict[str, Any], own: bool = False) -> None:
            self.seq[product] += 1
            msg["sequence"] = self.seq[product]
            msg["time"] = ts
            msg["product_id"] = product
            out.append((msg, own))

        for op in book.derive(step):
            wire = _WIRE_SIDE[op.side]
            taker_side = _WIRE_SIDE["ask" if op.side == "bid" else "bid"]
            if op.kind == "open":
                emit(
                    {
                        "order_id": op.order_id,
                        "order_type": "limit",
                        "size": op.size,
                        "price": op.price,
                        "client_oid": "",
                        "type": "received",
                        "side": wire,
                    },
                    op.own,
                )
                emit(
                    {
                        "price": op.price,
                        "order_id": op.order_id,
                        "remaining_size": op.size,
                        "type": "open",
                        "side": wire,
                    },
                    op.own,
                )
            elif op.kind == "taker":
                emit(
                    {
                        "order_id": op.order_id,
                        "order_type": "market",
                        "funds": "1000000.00",
                        "client_oid": "",
                        "type": "received",
                        "side": taker_side,
                    }
                )
            elif op.kind == "match":
                self.trade_ids[product] += 1
                match = {
                    "type": "match",
                    "trade_id": self.trade_ids[product],
                    "maker_order_id": op.order_id,
                    "taker_order_id": op.taker_id,
                    "side": wire,
                    "size": op.size,
                    "price": op.price,
                }
                emit(match, op.own)
                self.last_match[product] = dict(match)
            elif op.kind == "done":
                emit(
                    {
                        "order_id": op.order_id,
                        "reason": op.reason,
                        "price": op.price,
                        "remaining_size": op.size,
                        "type": "done",
                        "side": wire,
                    },
                    op.own,
                )
            elif op.kind == "change":
                emit(
                    {
                        "order_id": op.order_id,
                        "side": wire,
                        "price": op.price,
                        "old_size": op.old_size,
                        "new_size": op.size,
                        "type": "change",
                    },
                    op.own,
                )
            elif op.kind == "taker_done":
                emit({"order_id": op.order_id, "reason": "filled", "type": "done", "side": taker_side})
        if self.markets[product].steps % 97 == 0:  # now and then a stop order is armed
            emit(
                {
                    "type": "activate",
                    "order_id": book.new_id(),
                    "stop_type": "entry",
                    "side": "buy",
                    "stop_price": step.changes[0][1] if step.changes else "1",
                    "size": "0.01",
                    "funds": "0",
                    "private": False,
                }
            )
        self.step_messages = out

    # --- payloads --------------------------------------------------------------------------

    def ticker(self, product: str, match: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ticker of ``match`` (default: the product's last one): it carries that match's sequence,
        trade id, price and size, as on the real feed (107 of 107 recorded tickers)."""
        m = self.markets[product]
        pt = m.price_text
        bb, ba = m.best_bid(), m.best_ask()
        last = match or self.last_match.get(product)
        return {
            "type": "ticker",
            "sequence": last["sequence"] if last else self.seq[product],
            "product_id": product,
            "price": last["price"] if last else pt(m.last_price),
            "open_24h": pt(m.open_24h),
            "volume_24h": m.size_text(m.volume_24h),
            "low_24h": pt(m.low_24h),
            "high_24h": pt(m.high_24h),
            "volume_30d": m.size_text(m.volume_24h * 30),
            "best_bid": pt(bb),
            "best_bid_size": m.size_text(m.bids[bb]),
            "best_ask": pt(ba),
            "best_ask_size": m.size_text(m.asks[ba]),
            "side": "buy" if last is None or last["side"] == "sell" else "sell",
            "time": last["time"] if last and last.get("time") else rfc3339(self.clock()),
            "trade_id": last["trade_id"] if last else self.trade_ids[product],
            "last_size": last["size"] if last else "0",
        }

    def status(self) -> dict[str, Any]:
        products = []
        for p, m in self.markets.items():
            base, _, quote = p.partition("-")
            products.append(
                {
                    "id": p,
                    "base_currency": base,
                    "quote_currency": quote,
                    "base_increment": "0.00000001",
                    "quote_increment": m.price_text(m.tick),
                    "display_name": f"{base}/{quote}",
                    "status": "online",
                    "status_message": "",
                    "trading_disabled": False,
                }
            )
        return {"type": "status", "products": products, "currencies": []}

    def _candles(self, product: str, query: dict[str, str]) -> tuple[int, Any]:
        """``[[time, low, high, open, close, volume], …]`` newest first, prices and sizes as JSON numbers."""
        granularity = int(query.get("granularity", "60") or 60)
        if granularity not in (60, 300, 900, 3600, 21600, 86400):
            return 400, {"message": "Unsupported granularity"}
        m = self.markets[product]
        pt, st = m.price_text, m.size_text
        rows = [
            [
                b.start,
                Decimal(pt(b.low)),
                Decimal(pt(b.high)),
                Decimal(pt(b.open)),
                Decimal(pt(b.close)),
                Decimal(st(b.volume)),
            ]
            for b in reversed(m.bars(granularity, 300))
        ]
        return 200, _NUMBERS(rows)

    async def http_get(self, path: str, query: dict[str, str], headers: Mapping[str, str]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "products" or parts[2] not in ("book", "candles"):
            return 404, {"message": "NotFound"}
        product = parts[1]
        if product not in self.markets:
            return 404, {"message": "NotFound"}
        if parts[2] == "candles":
            return self._candles(product, query)
        book = self.orders[product]
        m = self.markets[product]
        level = query.get("level", "1")
        if level == "3":
            bids3, asks3 = book.orders("bid"), book.orders("ask")
            body = {
                "bids": [list(o) for o in bids3],
                "asks": [list(o) for o in asks3],
                "sequence": self.seq[product],
            }
        elif level == "2":
            bids2, asks2 = m.top_levels(50)
            body = {
                "bids": [[p, s, "1"] for p, s in bids2[:50]],
                "asks": [[p, s, "1"] for p, s in asks2[:50]],
                "sequence": self.seq[product],
            }
        else:
            return 400, {"message": "level must be 2 or 3 here"}
        if self.faults.snapshot_delay:  # taken now, delivered late: the feed moves on meanwhile
            await asyncio.sleep(self.faults.snapshot_delay)
        return 200, body
