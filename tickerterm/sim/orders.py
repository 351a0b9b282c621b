"""The orders behind the synthetic market's levels, for venues with order-by-order (L3/L4) feeds.

The market is an L2 book; ``OrderBookL3.derive`` turns each of its steps into order operations that
always add up to it: a level that grows gets a new order, one that shrinks through a trade fills its
oldest orders (match, then done when filled), one that shrinks otherwise cancels its newest orders or
resizes the last one. Each venue formats the operations its own way (Coinbase Exchange ``full``,
0xArchive ``l4_diffs``), so every L3 feed can be checked against one true book.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tickerterm.sim.market import SIZE_DECIMALS, Market, Step


def lots_of(text: str) -> int:
    return int(Decimal(text).scaleb(SIZE_DECIMALS))


@dataclass(slots=True)
class OrderOp:
    kind: str
    """``open`` (a new resting order), ``match`` (part of a resting order filled), ``done`` (it left the
    book: ``reason`` filled or canceled), ``change`` (its size changed), ``taker`` / ``taker_done`` (the
    aggressor of the step's trades arrives / has finished)."""
    order_id: str
    side: str
    """``bid`` or ``ask``: the side of the resting order (for takers, the side they take from)."""
    price: str = ""
    size: str = ""
    """open: its size; match: the filled size; done: what was left; change: the new size."""
    old_size: str = ""
    reason: str = ""
    trade_id: int = 0
    taker_id: str = ""
    left: str = ""
    """match: what is left of the resting order after the fill."""
    own: bool = False
    """An order of the simulator's test account."""


class OrderBookL3:
    """One product's orders, oldest first per level."""

    def __init__(self, market: Market, rng: random.Random) -> None:
        self.rng = rng
        self.levels: dict[tuple[str, str], list[list[Any]]] = {}
        """(side, price) -> [[order id, lots], ...], oldest first"""
        self.own: set[str] = set()
        pt = market.price_text
        for side, book in (("bid", market.bids), ("ask", market.asks)):
            for price, lots in book.items():
                self.levels[(side, pt(price))] = [[self.new_id(), lots]]

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def total(self, key: tuple[str, str]) -> int:
        return sum(int(o[1]) for o in self.levels.get(key, ()))

    def orders(self, side: str) -> list[tuple[str, str, str]]:
        """``(price, size, order_id)`` of every resting order on ``side``, best price first, oldest first."""
        keys = sorted(
            (k for k in self.levels if k[0] == side), key=lambda k: float(k[1]), reverse=side == "bid"
        )
        return [
            (k[1], Market.size_text(int(o[1])), str(o[0]))
            for k in keys
            for o in self.levels[k]
            if int(o[1]) > 0
        ]

    def derive(self, step: Step) -> list[OrderOp]:
        ops: list[OrderOp] = []
        trades = list(step.trades)
        taker: str | None = None
        for side, px, sz in step.changes:
            key = (side, px)
            orders = self.levels.setdefault(key, [])
            old, new = sum(int(o[1]) for o in orders), lots_of(sz)
            if new > old:
                oid = self.new_id()
                own = self.rng.random() < 0.05
                if own:
                    self.own.add(oid)
                ops.append(OrderOp("open", oid, side, px, Market.size_text(new - old), own=own))
                orders.append([oid, new - old])
            elif new < old:
                cut = old - new
                if trades and trades[0].price == px and trades[0].maker_side == side:
                    trade = trades.pop(0)
                    if taker is None:
                        taker = self.new_id()
                        ops.append(OrderOp("taker", taker, side))
                    while cut > 0:
                        order = orders[0]
                        left = int(order[1])
                        take = min(left, cut)
                        order[1] = left - take
                        cut -= take
                        oid = str(order[0])
                        ops.append(
                            OrderOp(
                                "match",
                                oid,
                                side,
                                px,
                                Market.size_text(take),
                                trade_id=trade.trade_id,
                                taker_id=taker,
                                own=oid in self.own,
                                left=Market.size_text(int(order[1])),
                            )
                        )
                        if order[1] == 0:
                            orders.pop(0)
                            ops.append(
                                OrderOp("done", oid, side, px, "0", reason="filled", own=oid in self.own)
                            )
                            self.own.discard(oid)
                else:
                    while cut > 0:
                        order = orders[-1]
                        oid, left = str(order[0]), int(order[1])
                        if left <= cut:
                            orders.pop()
                            cut -= left
                            ops.append(
                                OrderOp(
                                    "done",
                                    oid,
                                    side,
                                    px,
                                    Market.size_text(left),
                                    reason="canceled",
                                    own=oid in self.own,
                                )
                            )
                            self.own.discard(oid)
                        else:
                            order[1] = left - cut
                            cut = 0
                            ops.append(
                                OrderOp(
                                    "change",
                                    oid,
                                    side,
                                    px,
                                    Market.size_text(int(order[1])),
                                    old_size=Market.size_text(left),
                                    own=oid in self.own,
                                )
                            )
            if not orders:
                del self.levels[key]
        if taker is not None:
            ops.append(OrderOp("taker_done", taker, step.trades[0].maker_side))
        return ops
