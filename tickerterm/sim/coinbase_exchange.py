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
import uuid
from decimal import Decimal
from typing import Any, ClassVar

from tickerterm.sim.coinbase import rfc3339
from tickerterm.sim.market import SIZE_DECIMALS, Market, Step
from tickerterm.sim.server import SimConnection, SimServer
from tickerterm.venues.auth import ExchangeKey, Secret, verify_exchange_auth
from tickerterm.venues.coinbase_exchange import CHANNELS

_DUMPS = json.JSONEncoder(separators=(",", ":")).encode
_WIRE_SIDE = {"bid": "buy", "ask": "sell"}
_ZEROS = ("0", "0.00", "0.00000000", "0.0", "0.000")
"""The spellings of a removed level seen on the real feed."""
AUTH_REQUIRED = "level2, level3, and full channels now require authentication."
USER_ID = "5f1a0c7e9b3d2a0012345678"
PROFILE_ID = "0c9a2d4e-7f31-4b6a-9d2e-5a1b3c4d5e6f"


def lots_of(text: str) -> int:
    return int(Decimal(text).scaleb(SIZE_DECIMALS))


class _Orders:
    """The orders behind one product's levels, oldest first per level."""

    def __init__(self, market: Market, rng: random.Random) -> None:
        self.rng = rng
        self.levels: dict[tuple[str, str], list[list[Any]]] = {}
        self.seq = 0
        self.own: set[str] = set()
        pt = market.price_text
        for side, book in (("bid", market.bids), ("ask", market.asks)):
            for price, lots in book.items():
                self.levels[(side, pt(price))] = [[self.new_id(), lots]]

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def total(self, key: tuple[str, str]) -> int:
        return sum(o[1] for o in self.levels.get(key, ()))


class CoinbaseExchangeSimConnection(SimConnection):
    server: CoinbaseExchangeSim

    def __init__(self, server: CoinbaseExchangeSim, ws: Any) -> None:
        super().__init__(server, ws)
        self.subs: dict[str, dict[str, None]] = {}
        self.account: str | None = None
        self.pending_l2: dict[str, dict[tuple[str, str], str]] = {}

    # --- framing ---------------------------------------------------------------------------

    def send(self, msg: dict[str, Any], *, data: bool = False) -> None:
        self.push(_DUMPS(msg), data=data)

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
                self.send({"type": "l2update", "product_id": product, "changes": changes, "time": ts})
            if product in subs.get("level2_batch", ()):
                pending = self.pending_l2.setdefault(product, {})
                for side, px, sz in step.changes:
                    pending[(side, px)] = sz
        messages = server.step_messages
        full = product in subs.get("full", ())
        user = product in subs.get("user", ())
        for msg, own in messages:
            if full or (user and own and self.account is not None):
                out = {**msg, "user_id": USER_ID, "profile_id": PROFILE_ID} if own and self.account else msg
                self.send(out, data=True)
        if product in subs.get("matches", ()):
            for msg, _ in messages:
                if msg["type"] == "match":
                    self.send(msg, data=True)
        if product in subs.get("ticker", ()) and any(m["type"] == "match" for m, _ in messages):
            self.send(server.ticker(product), data=True)

    def on_timer(self, kind: str) -> None:
        server = self.server
        if kind == "l2_batch" and self.pending_l2:
            pending, self.pending_l2 = self.pending_l2, {}
            ts = rfc3339(server.clock())
            for product, levels in pending.items():
                changes = [
                    [_WIRE_SIDE[s], p, server.zero() if z == "0" else z] for (s, p), z in levels.items()
                ]
                self.send({"type": "l2update", "product_id": product, "changes": changes, "time": ts})
        elif kind == "heartbeat" and self.subs.get("heartbeat"):
            ts = rfc3339(server.clock())
            for p in self.subs["heartbeat"]:
                m = server.markets[p]
                self.send(
                    {
                        "type": "heartbeat",
                        "last_trade_id": m.trade_id,
                        "product_id": p,
                        "sequence": server.orders[p].seq,
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
        self.orders = {p: _Orders(m, random.Random(rng.random())) for p, m in self.markets.items()}
        self.step_messages: list[tuple[dict[str, Any], bool]] = []
        self.last_match: dict[str, dict[str, Any]] = {}
        for p, m in self.markets.items():  # a market with a past has a last match to send first
            if m.recent_trades:
                t = m.recent_trades[-1]
                self.last_match[p] = {
                    "type": "match", "trade_id": t.trade_id, "maker_order_id": self.orders[p].new_id(),
                    "taker_order_id": self.orders[p].new_id(), "side": _WIRE_SIDE[t.maker_side],
                    "size": t.size, "price": t.price, "product_id": p, "sequence": 0, "time": rfc3339(t.ts),
                }  # fmt: skip
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
        trades = list(step.trades)
        taker: str | None = None

        def emit(msg: dict[str, Any], own: bool = False) -> None:
            book.seq += 1
            msg["sequence"] = book.seq
            msg["time"] = ts
            msg["product_id"] = product
            out.append((msg, own))

        for side, px, sz in step.changes:
            key = (side, px)
            orders = book.levels.setdefault(key, [])
            old, new = sum(o[1] for o in orders), lots_of(sz)
            wire = _WIRE_SIDE[side]
            if new > old:
                oid = book.new_id()
                own = book.rng.random() < 0.05
                if own:
                    book.own.add(oid)
                size = Market.size_text(new - old)
                emit(
                    {
                        "order_id": oid,
                        "order_type": "limit",
                        "size": size,
                        "price": px,
                        "client_oid": "",
                        "type": "received",
                        "side": wire,
                    },
                    own,
                )
                emit(
                    {"price": px, "order_id": oid, "remaining_size": size, "type": "open", "side": wire}, own
                )
                orders.append([oid, new - old])
            elif new < old:
                cut = old - new
                if trades and trades[0].price == px and trades[0].maker_side == side:
                    trade = trades.pop(0)
                    if taker is None:
                        taker = book.new_id()
                        emit(
                            {
                                "order_id": taker,
                                "order_type": "market",
                                "funds": "1000000.00",
                                "client_oid": "",
                                "type": "received",
                                "side": _WIRE_SIDE["ask" if side == "bid" else "bid"],
                            }
                        )
                    while cut > 0:
                        order = orders[0]
                        take = min(order[1], cut)
                        order[1] -= take
                        cut -= take
                        match = {
                            "type": "match",
                            "trade_id": trade.trade_id,
                            "maker_order_id": order[0],
                            "taker_order_id": taker,
                            "side": wire,
                            "size": Market.size_text(take),
                            "price": px,
                        }
                        emit(match, order[0] in book.own)
                        self.last_match[product] = dict(match)
                        if order[1] == 0:
                            orders.pop(0)
                            emit(
                                {
                                    "order_id": order[0],
                                    "reason": "filled",
                                    "price": px,
                                    "remaining_size": "0",
                                    "type": "done",
                                    "side": wire,
                                },
                                order[0] in book.own,
                            )
                            book.own.discard(order[0])
                else:
                    while cut > 0:
                        order = orders[-1]
                        if order[1] <= cut:
                            orders.pop()
                            cut -= order[1]
                            emit(
                                {
                                    "order_id": order[0],
                                    "reason": "canceled",
                                    "price": px,
                                    "remaining_size": Market.size_text(order[1]),
                                    "type": "done",
                                    "side": wire,
                                },
                                order[0] in book.own,
                            )
                            book.own.discard(order[0])
                        else:
                            old_size = Market.size_text(order[1])
                            order[1] -= cut
                            cut = 0
                            emit(
                                {
                                    "order_id": order[0],
                                    "side": wire,
                                    "price": px,
                                    "old_size": old_size,
                                    "new_size": Market.size_text(order[1]),
                                    "type": "change",
                                },
                                order[0] in book.own,
                            )
            if not orders:
                del book.levels[key]
        if taker is not None:
            emit(
                {
                    "order_id": taker,
                    "reason": "filled",
                    "type": "done",
                    "side": _WIRE_SIDE["ask" if step.trades[0].maker_side == "bid" else "bid"],
                }
            )
        if self.markets[product].steps % 97 == 0:  # now and then a stop order is armed
            emit(
                {
                    "type": "activate",
                    "order_id": book.new_id(),
                    "stop_type": "entry",
                    "side": "buy",
                    "stop_price": px if step.changes else "1",
                    "size": "0.01",
                    "funds": "0",
                    "private": False,
                }
            )
        self.step_messages = out

    # --- payloads --------------------------------------------------------------------------

    def ticker(self, product: str) -> dict[str, Any]:
        m = self.markets[product]
        pt = m.price_text
        bb, ba = m.best_bid(), m.best_ask()
        last = self.last_match.get(product)
        return {
            "type": "ticker",
            "sequence": self.orders[product].seq,
            "product_id": product,
            "price": pt(m.last_price),
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
            "time": rfc3339(self.clock()),
            "trade_id": m.trade_id,
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

    async def http_get(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "products" or parts[2] != "book":
            return 404, {"message": "NotFound"}
        product = parts[1]
        if product not in self.markets:
            return 404, {"message": "NotFound"}
        book = self.orders[product]
        m = self.markets[product]
        level = query.get("level", "1")
        bids = sorted((k for k in book.levels if k[0] == "bid"), key=lambda k: -float(k[1]))
        asks = sorted((k for k in book.levels if k[0] == "ask"), key=lambda k: float(k[1]))
        if level == "3":

            def rows(keys: list[tuple[str, str]]) -> list[list[str]]:
                return [
                    [k[1], Market.size_text(o[1]), o[0]] for k in keys for o in book.levels[k] if o[1] > 0
                ]
        elif level == "2":

            def rows(keys: list[tuple[str, str]]) -> list[list[str]]:
                return [[k[1], Market.size_text(book.total(k)), str(len(book.levels[k]))] for k in keys[:50]]
        else:
            return 400, {"message": "level must be 2 or 3 here"}
        _ = m
        body = {"bids": rows(bids), "asks": rows(asks), "sequence": book.seq}
        if self.faults.snapshot_delay:  # taken now, delivered late: the feed moves on meanwhile
            await asyncio.sleep(self.faults.snapshot_delay)
        return 200, body
