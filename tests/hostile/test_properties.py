"""Properties, with hypothesis:

- the sanitizer: any string comes out with no live control character, as long as it went in, and
  unchanged when it had none;
- every venue: frames recorded from its simulator, one of them with an arbitrary JSON value put in any
  field, go through the venue's session and the store as the worker hands them over
  (``Connection.receive``: the session's error boundary, its integrity checks): no exception escapes, and
  when the spoiled frame was refused, no book is ``ok`` and different from the book the unspoiled frames
  build.
"""

from __future__ import annotations

import asyncio
import unicodedata
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FAST, fast_policy
from tickerterm.core.safe import inert, is_inert, strip_unsafe
from tickerterm.core.store import Store
from tickerterm.sim import simulator_class
from tickerterm.sim.faults import Faults
from tickerterm.stream import worker
from tickerterm.stream.feed import Feed
from tickerterm.stream.worker import Connection
from tickerterm.venues import venue_class

# --- the sanitizer ---------------------------------------------------------------------------------


def live(ch: str) -> bool:
    """A character a terminal may act on: C0 (newline and tab aside), DEL, C1, or a format/separator
    control that reorders or breaks what is shown."""
    code = ord(ch)
    if ch in "\n\t":
        return False
    return (
        code < 0x20
        or 0x7F <= code < 0xA0
        or unicodedata.category(ch) in ("Zl", "Zp")
        or 0x202A <= code <= 0x202E
        or 0x2066 <= code <= 0x2069
    )


@given(st.text())
def test_inert_leaves_nothing_a_terminal_acts_on(text: str) -> None:
    safe = inert(text)
    assert len(safe) == len(text)  # code point for code point: styled spans stay in place
    assert not [c for c in safe if live(c)]
    assert inert(safe) == safe and is_inert(safe)
    one = inert(text, one_line=True)
    assert "\n" not in one and "\t" not in one and len(one) == len(text)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp", "Cs"))))
def test_text_without_controls_is_left_alone(text: str) -> None:
    assert inert(text) == text and strip_unsafe(text) == text


@given(st.text())
def test_strip_unsafe_removes_exactly_what_inert_replaces(text: str) -> None:
    stripped = strip_unsafe(text)
    assert not [c for c in stripped if live(c) or c in "\n\t"]
    assert len(stripped) == len(text) - sum(
        1 for a, b in zip(text, inert(text, one_line=True), strict=True) if a != b
    )


def test_inert_shows_each_kind_visibly() -> None:
    assert inert("\x1b]2;t\x07\x9b6n\x7f\u202e\x00") == "␛]2;t␇\ufffd6n␡\ufffd␀"
    assert inert("a\nb\tc") == "a\nb\tc" and inert("a\nb\tc", one_line=True) == "a␊b␉c"


# --- every venue's frames, spoiled --------------------------------------------------------------

CASES: dict[str, tuple[list[str], list[str]]] = {
    "coinbase": (["BTC-USD", "ETH-USD"], ["level2", "market_trades", "ticker"]),
    "coinbase-exchange": (["BTC-USD", "ETH-USD"], ["level2", "matches", "ticker", "heartbeat"]),
    "coinapi": (["COINBASE:BTC-USD", "COINBASE:ETH-USD"], ["book", "trade", "quote"]),
    "bitzoom": (["BTC-USDT", "ETH-USDT"], ["depth20@100ms", "trade", "ticker"]),
    "0xarchive": (["BTC", "ETH"], ["orderbook", "trades"]),
}
FRAMES = 120
_decode = msgspec.json.Decoder(float_hook=Decimal).decode
_encode = msgspec.json.Encoder(decimal_format="number").encode


async def record(venue: str) -> list[bytes]:
    """The first ``FRAMES`` frames a real feed of ``venue`` receives from its simulator."""
    products, channels = CASES[venue]
    cls = venue_class(venue)
    got: list[bytes] = []
    enough = asyncio.Event()
    original = worker.through

    def recording(session: Any, store: Any, raw: bytes | str, now: float) -> Any:
        if len(got) < FRAMES:
            got.append(raw if isinstance(raw, bytes) else raw.encode())
        else:
            enough.set()
        return original(session, store, raw, now)

    options: dict[str, Any] = dict(rate=400.0, depth=40, seed=7, timing=FAST, faults=Faults())
    async with simulator_class(venue)(**options) as sim:
        urls = {n: sim.http_url if n == "rest" else sim.url for n in cls.endpoints}
        adapter = cls(urls=urls, credentials=sim.client_credentials())
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(worker, "through", recording)
            async with Feed(adapter, products, channels, policy=fast_policy(), collect=False):
                await asyncio.wait_for(enough.wait(), 20)
    return got


_RECORDED: dict[str, list[bytes]] = {}


def recorded(venue: str) -> list[bytes]:
    if venue not in _RECORDED:
        _RECORDED[venue] = asyncio.run(record(venue))
    return _RECORDED[venue]


def offline(venue: str) -> Connection:
    """A connection that never connects: frames are handed to ``receive`` by the test."""
    products, channels = CASES[venue]
    adapter = venue_class(venue)()
    conn = Connection(adapter, "market", Store(), products=products)
    for channel in channels:
        conn.subs.add(adapter.channel(channel).name, products if adapter.channel(channel).per_product else [])
    conn.start_session()
    return conn


def books(conn: Connection) -> dict[str, tuple[str, dict[Decimal, Decimal], dict[Decimal, Decimal]]]:
    out = {}
    for (_venue, product), book in conn.store.books.items():
        bids = {Decimal(p): Decimal(s) for p, s in book.levels("bid").items()}
        asks = {Decimal(p): Decimal(s) for p, s in book.levels("ask").items()}
        out[product] = (book.state, bids, asks)
    return out


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a decoded frame a value sits at (the frame itself excluded)."""
    out: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        out.append((*prefix, key))
        out.extend(paths(item, (*prefix, key)))
    return out


def put(value: Any, path: tuple[Any, ...], new: Any) -> None:
    for key in path[:-1]:
        value = value[key]
    value[path[-1]] = new


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
        st.sampled_from(["1_0.5", " 3 ", "١٢٣", "inf", "NaN", "1e999", "-1", "", "0x1f", "\x1b]2;x\x07"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.mark.parametrize("venue", list(CASES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_spoiled_field_never_escapes_the_boundary_or_leaves_a_wrong_book_ok(venue: str, data: Any) -> None:
    frames = recorded(venue)
    index = data.draw(st.integers(min_value=0, max_value=len(frames) - 1), label="frame")
    msg = _decode(frames[index])
    where = paths(msg)
    if not where:
        return
    path = data.draw(st.sampled_from(where), label="path")
    put(msg, path, data.draw(json_values, label="value"))
    spoiled = _encode(msg)

    reference, fuzzed = offline(venue), offline(venue)
    for n, raw in enumerate(frames):
        reference.receive(raw, 1_714_564_800.0 + n)
        fuzzed.receive(spoiled if n == index else raw, 1_714_564_800.0 + n)  # raises nothing, whatever it is

    if fuzzed.health.malformed == reference.health.malformed:
        return  # the spoiled frame was still valid venue data: nobody could tell it from the truth
    truth = books(reference)
    for product, (state, bids, asks) in books(fuzzed).items():
        if state == "ok":
            assert product in truth and truth[product] == (state, bids, asks), (product, path)
