"""docs/adding-a-venue.md, checked against the code.

A toy venue is added here exactly as the guide says — an adapter and a parser (the generic session is
enough), one registry line — without touching ``stream/``, ``core/`` or ``venues/base.py``, and run over
a real socket: its book, a sequence gap, the resync the session asks for and the book rebuilt. And every
class member and path the guide names must exist.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import fast_policy, take_until
from tests.hostile.fake import FakeConnection, FakeVenue, keep_open
from tickerterm.core.events import (
    BookResynced,
    BookResyncing,
    BookSnapshot,
    BookUnsafe,
    BookUpdate,
    Event,
    Gap,
    Trade,
    change,
    value_of,
)
from tickerterm.stream.feed import Feed
from tickerterm.venues import VENUES, venue_class
from tickerterm.venues.base import ChannelSpec, Parser, VenueAdapter
from tickerterm.venues.session import Session
from tickerterm.venues.sync import RestSynced

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "adding-a-venue.md"

# --- the toy venue: what tickerterm/venues/toy.py would hold --------------------------------------


class ToyParser(Parser):
    """``{"type": "snapshot"|"update"|"trade", "symbol", "seq", ...}``, one sequence per connection."""

    def __init__(self, venue: str, conn: str) -> None:
        super().__init__(venue, conn)
        self.seq: int | None = None

    def parse(self, raw: bytes | str, recv_ts: float) -> list[Event]:
        msg = json.loads(raw)
        kind, product, seq = msg["type"], msg["symbol"], msg["seq"]
        if type(seq) is not int:
            raise TypeError("seq is not an integer")
        out: list[Event] = []
        if kind == "snapshot":
            self.seq = seq
            bids = [(p, s) for p, s in msg["bids"] if value_of(p) >= 0 and value_of(s) >= 0]
            asks = [(p, s) for p, s in msg["asks"] if value_of(p) >= 0 and value_of(s) >= 0]
            return [BookSnapshot(self.venue, recv_ts, product, None, bids, asks)]
        if self.seq is not None and seq != self.seq + 1:
            out.append(Gap(self.venue, recv_ts, self.conn, self.seq + 1, seq, "connection"))
        self.seq = seq
        if kind == "update":
            out.append(
                BookUpdate(
                    self.venue, recv_ts, product, None, [change(msg["side"], msg["price"], msg["size"])]
                )
            )
        elif kind == "trade":
            out.append(
                Trade(self.venue, recv_ts, product, None, str(seq), msg["price"], msg["size"], msg["side"])
            )
        else:
            self.unknown += 1
        return out


class Toy(VenueAdapter):
    name = "toy"
    title = "Toy"
    endpoints: ClassVar[dict[str, str]] = {"market": "wss://toy.example/ws"}
    channels: ClassVar[dict[str, ChannelSpec]] = {
        "book": ChannelSpec("book", "book"),
        "trades": ChannelSpec("trades", "trades"),
    }
    default_channels = ("book", "trades")
    default_products = ("TOY-USD",)

    def parser(self, conn: str) -> ToyParser:
        return ToyParser(self.name, conn)

    def _ops(self, op: str, channel: str, products: list[str]) -> list[str]:
        return [json.dumps({"op": op, "channel": channel, "symbol": p}) for p in products]

    def subscribe_frames(self, channel: str, products: list[str]) -> list[str]:
        return self._ops("subscribe", channel, products)

    def unsubscribe_frames(
        self, channel: str, products: list[str] | None, *, listed: list[str] | None = None
    ) -> list[str]:
        return self._ops("unsubscribe", channel, products if products is not None else (listed or []))

    def resync_frames(self, channel: str, products: list[str]) -> list[str]:
        return self.unsubscribe_frames(channel, products) + self.subscribe_frames(channel, products)


# --- the toy venue's server side: what tickerterm/sim/toy.py would do -------------------------------


def snapshot(seq: int, bid: str) -> dict[str, Any]:
    return {"type": "snapshot", "symbol": "TOY-USD", "seq": seq, "bids": [[bid, "1"]], "asks": [["11", "1"]]}


async def toy_server(conn: FakeConnection) -> None:
    await conn.send(snapshot(1, "10"))
    await conn.send(
        {"type": "update", "symbol": "TOY-USD", "seq": 2, "side": "bid", "price": "10.5", "size": "2"}
    )
    await conn.send(
        {"type": "trade", "symbol": "TOY-USD", "seq": 3, "side": "buy", "price": "10.6", "size": "1"}
    )
    await conn.send(
        {"type": "update", "symbol": "TOY-USD", "seq": 9, "side": "bid", "price": "9", "size": "3"}
    )
    for _ in range(100):  # the client resubscribes the book: a new snapshot follows
        if sum('"subscribe"' in f and '"book"' in f for f in conn.received) >= 2:
            break
        await asyncio.sleep(0.05)
    await conn.send(snapshot(10, "10.25"))
    await conn.send(
        {"type": "update", "symbol": "TOY-USD", "seq": 11, "side": "ask", "price": "11", "size": "4"}
    )
    await keep_open(conn)


async def test_a_venue_added_as_the_guide_says_runs_gap_and_resync_included(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(VENUES, Toy.name, Toy)  # the one registry line
    assert venue_class("toy") is Toy and Toy.session_type is Session  # the generic session is enough
    async with FakeVenue(toy_server) as server:
        feed = Feed(Toy(urls={"market": server.url}), ["TOY-USD"], policy=fast_policy())
        async with feed:
            events = await take_until(
                feed, lambda e: isinstance(e, BookUpdate) and e.changes[0][0] == "ask", 10
            )
            book = feed.store.book("toy", "TOY-USD")  # read while connected: closing makes it UNSAFE
            assert (book.state, book.levels("bid"), book.levels("ask")) == ("ok", {"10.25": "1"}, {"11": "4"})
    kinds = [
        type(e)
        for e in events
        if type(e) in (BookSnapshot, BookUpdate, Gap, BookUnsafe, BookResyncing, BookResynced, Trade)
    ]
    assert kinds == [
        BookSnapshot,
        BookUpdate,
        Trade,
        Gap,  # seq 9 after 3: the book it updates can no longer be trusted
        BookUnsafe,
        BookUpdate,
        BookResyncing,  # the session resubscribes the book (the toy's resync_frames)
        BookSnapshot,
        BookResynced,
        BookUpdate,
    ]
    unsafe = next(e for e in events if isinstance(e, BookUnsafe))
    assert unsafe.reason == "sequence gap: expected 4, got 9"
    sent = [json.loads(f) for f in server.connections[0].received]
    assert [(f["op"], f["channel"]) for f in sent] == [
        ("subscribe", "book"),
        ("subscribe", "trades"),
        ("unsubscribe", "book"),
        ("subscribe", "book"),
    ]


# --- the guide's names exist ---------------------------------------------------------------------

OWNERS: dict[str, Any] = {
    "VenueAdapter": VenueAdapter,
    "Parser": Parser,
    "Session": Session,
    "RestSynced": RestSynced,
}


def test_every_member_and_path_the_guide_names_exists() -> None:
    text = GUIDE.read_text()
    names = re.findall(r"`(VenueAdapter|Parser|Session|RestSynced)\.(\w+)`", text)
    assert len(names) > 30
    missing = [f"{owner}.{attr}" for owner, attr in names if not hasattr(OWNERS[owner], attr)]
    assert not missing, missing
    paths = {p for p in re.findall(r"`((?:tickerterm|tests|docs)/[\w/.<>-]+)`", text) if "<new>" not in p}
    assert {"tickerterm/venues/__init__.py", "tickerterm/sim/__init__.py", "tests/hostile/fake.py"} <= paths
    assert not [p for p in paths if not (ROOT / p).exists()]
    for registry, where in (
        ("VENUES", "tickerterm/venues/__init__.py"),
        ("SIMULATORS", "tickerterm/sim/__init__.py"),
    ):
        assert f"{registry}: dict[" in (ROOT / where).read_text()
