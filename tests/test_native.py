"""The hot path's C loops (tickerterm/core/_native.c) and their Python twins (tickerterm/core/native.py)
agree on every input: the same changes, values and exceptions from venue text, good or hostile, and the
same levels, heaps and overflow from applying them. Where the extension is not built these tests skip
(one line); under CI it must be built, so the fast path is what CI tests."""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickerterm.core import native
from tickerterm.core.book import OrderBook
from tickerterm.core.events import MAX_DIGITS

try:
    from tickerterm.core import _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - CI builds it (test below)
    _native = None

needs_c = pytest.mark.skipif(_native is None, reason="the C extension is not built (pure Python path only)")
SIDES = {"bid": "bid", "offer": "ask"}


@dataclass
class Level:
    side: Any
    price_level: Any
    new_quantity: Any


def test_ci_builds_and_uses_the_c_extension() -> None:
    if os.environ.get("CI") != "true":
        pytest.skip("only CI insists on the C extension (a machine without a compiler runs the pure path)")
    assert native.why_pure == "", native.implementation()
    assert native.level_changes is _native.changes and native.apply_levels is _native.apply_levels


def run(fn: Any, items: list[Any], max_len: int = MAX_DIGITS) -> tuple[str, Any]:
    try:
        out = fn(items, SIDES, "side", "price_level", "new_quantity", max_len)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return type(exc).__name__, str(exc)
    # floats compared by their bits: 0.1 and a near miss of it must not pass as equal
    return "ok", [(s, p, q, struct.pack("<d", a), struct.pack("<d", b)) for s, p, q, a, b in out]


decimal_text = st.one_of(
    st.from_regex(r"\A[0-9]{1,30}(\.[0-9]{0,30})?\Z"),
    st.from_regex(r"\A\.[0-9]{1,30}\Z"),
    st.decimals(min_value=0, max_value=10**12, allow_nan=False, places=8).map(lambda d: format(d, "f")),
    st.integers(0, 2**64).map(str),
)
hostile_text = st.one_of(
    st.sampled_from(
        [
            "",
            ".",
            "..",
            "1.2.3",
            "1e5",
            "1E5",
            " 1",
            "1 ",
            "+1",
            "-1",
            "1_0",
            "inf",
            "nan",
            "0x10",
            "١٢",
            "１",
        ]
    ),
    st.text(max_size=8),
    st.from_regex(r"\A[0-9.]{0,80}\Z"),
    st.sampled_from([None, 1, 1.5, b"1"]),
)


@needs_c
@settings(max_examples=400)
@given(
    st.lists(
        st.builds(
            Level,
            st.sampled_from(["bid", "offer", "bid", "offer", "ask", 7, None, ("bid",)]),
            st.one_of(decimal_text, decimal_text, hostile_text),
            st.one_of(decimal_text, decimal_text, hostile_text),
        ),
        max_size=6,
    )
)
def test_level_changes_agree_with_the_python_twin_on_any_text(items: list[Level]) -> None:
    assert run(_native.changes, items) == run(native.level_changes_py, items)


@needs_c
@settings(max_examples=300)
@given(st.lists(decimal_text, min_size=1, max_size=8))
def test_every_decimal_converts_to_exactly_what_float_gives(texts: list[str]) -> None:
    texts = [t for t in texts if len(t) <= MAX_DIGITS]
    kind, out = run(_native.changes, [Level("bid", t, t) for t in texts])
    assert kind == "ok"
    assert [a for _, _, _, a, _ in out] == [struct.pack("<d", float(t)) for t in texts]


@needs_c
def test_conversion_edges_are_exact_and_bad_text_is_refused_with_one_reason() -> None:
    edges = [
        "0", "0.0", "00.000", "9007199254740993", "9007199254740992", "0.1", "0.3", "123456789012345678",
        "1234567890123456789", "0.0000000000000000000001", "0.00000000000000000000001", "1" * 64, "5.", ".5",
        "0.000000000000000000000000000000123456789", "179769313486231570000000000000000000000000000000",
    ]  # fmt: skip
    kind, out = run(_native.changes, [Level("bid", t, "1") for t in edges])
    assert kind == "ok"
    assert [a for _, _, _, a, _ in out] == [struct.pack("<d", float(t)) for t in edges]
    for bad, reason in [
        ("1.2.3", "ValueError"), (".", "ValueError"), ("", "ValueError"), ("1" * 65, "ValueError"),
        ("١", "ValueError"), (None, "TypeError"),
    ]:  # fmt: skip
        assert run(_native.changes, [Level("bid", bad, "1")])[0] == reason
        assert run(_native.changes, [Level("bid", bad, "1")]) == run(
            native.level_changes_py, [Level("bid", bad, "1")]
        )
    assert run(_native.changes, [Level("middle", "1", "1")]) == ("KeyError", "'middle'")
    long = "9" * 40
    assert run(_native.changes, [Level("bid", long + "x", "1")]) == (
        "ValueError",
        f"not plain decimal text: {long[:20]!r} / '1'",
    )


a_change = st.tuples(
    st.sampled_from(["bid", "ask"]), st.integers(1, 40), st.sampled_from(["0", "0.00", "1", "2.5", "0.001"])
).map(lambda c: (c[0], f"{c[1] / 4}", c[2], c[1] / 4, float(c[2])))


PAIRS = [(native.apply_levels_py, native.LevelsPy)] + (
    [(_native.apply_levels, _native.Levels)] if _native is not None else []
)
"""Each ``apply_levels`` with the ``Levels`` it works on: the Python twins, and C's where it was built."""


def read_side(side: Any) -> tuple[Any, ...]:
    """Everything a side answers: its size, best price, best levels at several depths, every key, level
    and item best first, membership and lookups of keys it has and has not."""
    keys = list(side)
    probes = [*keys[:3], 0.0, 999.0]
    return (
        len(side),
        side.best(),
        [side.top(n) for n in (-1, 0, 1, 5, 1000)],
        keys,
        side.keys(),
        side.values(),
        side.items(),
        [(k in side, side.get(k), side.get(k, "absent")) for k in probes],
        [side[k] for k in keys],
    )


@needs_c
@settings(max_examples=300)
@given(st.lists(st.lists(a_change, max_size=60), min_size=1, max_size=4), st.integers(1, 30))
def test_applying_levels_leaves_the_same_sides_and_flags(frames: list[Any], cap: int) -> None:
    results = []
    for loop, levels in PAIRS:
        bids, asks = levels(True), levels(False)
        flags = [loop(changes, bids, asks, cap) for changes in frames]
        # the levels best first, what each side answers, and when a level was not kept or reached across
        results.append((read_side(bids), read_side(asks), flags))
    assert results[0] == results[1]


a_key = st.one_of(st.integers(-3, 300).map(lambda i: i / 8), st.just(-0.0))
a_step = st.one_of(
    st.tuples(st.just("put"), a_key, st.sampled_from(["1", "2.5", "0.125"])),
    st.tuples(st.just("remove"), a_key, st.just("")),
    st.tuples(st.just("fill"), st.lists(st.integers(0, 300), max_size=90), st.just("")),
    st.tuples(st.just("clear"), st.just(0), st.just("")),
)


@needs_c
@settings(max_examples=300)
@given(st.lists(a_step, max_size=400), st.booleans(), st.integers(1, 200))
def test_a_sides_levels_are_kept_and_read_as_the_python_twin_keeps_and_reads_them(
    steps: list[Any], bids: bool, cap: int
) -> None:
    """Levels set, removed, filled from a snapshot and cleared, thousands deep (blocks split and merge):
    every read the same as the twin's after every step, the order best first, -0.0 and 0.0 one price."""
    sides = [native.LevelsPy(bids), _native.Levels(bids)]
    for op, arg, size in steps:
        for side in sides:
            if op == "put":
                side.put(arg, str(arg), size, cap)
            elif op == "remove":
                side.remove(arg)
            elif op == "fill":
                side.fill({k / 4: (str(k / 4), "1") for k in arg})
            else:
                side.clear()
        assert read_side(sides[1]) == read_side(sides[0])
    c_side = sides[1]
    assert c_side.blocks() <= len(c_side) // 16 + 2  # nearly empty blocks merge: the memory stays bounded


@needs_c
def test_a_side_refuses_what_is_not_a_level_as_its_twin_does() -> None:
    """A price key that is not a number or is NaN, a price or size that is not a string: the same error
    from C and from the twin, from every way in, and the side unchanged."""

    def outcome(levels: Any, call: Any) -> tuple[str, str]:
        side = levels(False)
        side.fill({1.0: ("1", "1")})
        try:
            call(side)
        except (TypeError, ValueError, KeyError) as exc:
            return type(exc).__name__, str(exc)
        finally:
            assert side.items() == [(1.0, ("1", "1"))]
        return "ok", ""

    calls = [
        lambda s: s.fill({float("nan"): ("1", "1")}),
        lambda s: s.fill({"2": ("2", "1")}),
        lambda s: s.fill({2.0: ("2", 1)}),
        lambda s: s[float("nan")],
        lambda s: s["1"],
        lambda s: s[2.0],
        lambda s: s.get(b"1"),
    ]
    for call in calls:
        assert outcome(_native.Levels, call) == outcome(native.LevelsPy, call)
    for change in [
        ("ask", "1", "1", float("nan"), 1.0),
        ("ask", "1", "1", "1", 1.0),
        ("ask", 1, "1", 2.0, 1.0),
    ]:
        shown = []
        for loop, levels in PAIRS:
            with pytest.raises((TypeError, ValueError)) as caught:
                loop([change], levels(True), levels(False), 10)
            shown.append((caught.type, str(caught.value)))
        assert shown[0] == shown[1]
    with pytest.raises(TypeError):
        _native.apply_levels([], {}, {}, 10)  # sides are Levels


@settings(max_examples=300)
@given(st.lists(st.lists(a_change, max_size=12), min_size=1, max_size=12))
def test_a_crossing_is_found_after_the_frame_that_made_it(frames: list[Any]) -> None:
    """The crossed-book check runs only after a frame that set a level at or through the other side's
    top: whatever the frames, it never misses a crossing the full check would find."""
    in_use = native.apply_levels, native.Levels
    try:
        for loop, levels in PAIRS:
            native.apply_levels, native.Levels = loop, levels
            book = OrderBook("v", "P")
            book.apply_snapshot([("5", "1")], [("5.25", "1")])
            for changes in frames:
                book.apply_changes(changes)
                truly = bool(book.bids and book.asks and max(book.bids) >= min(book.asks))
                reason = book.problem()
                assert (reason is not None) == truly, (loop, reason, book.bids, book.asks)
                if reason is not None:  # the session rebuilds it: a fresh snapshot that is not crossed
                    bids = [v for k, v in book.bids.items() if k < 5]
                    asks = [v for k, v in book.asks.items() if k > 5]
                    book.apply_snapshot(bids, asks)
    finally:
        native.apply_levels, native.Levels = in_use


def test_a_level_away_from_the_other_side_needs_no_crossed_check() -> None:
    for loop, levels in PAIRS:
        bids, asks = levels(True), levels(False)
        bids.fill({9.0: ("9", "1")})
        asks.fill({10.0: ("10", "1")})
        assert loop([("bid", "9.5", "1", 9.5, 1.0), ("ask", "9.75", "1", 9.75, 1.0)], bids, asks, 100) == 0
        assert loop([("bid", "9.75", "1", 9.75, 1.0)], bids, asks, 100) == native.REACHED  # the ask at 9.75
        assert loop([("ask", "9.75", "0", 9.75, 0.0)], bids, asks, 100) == 0  # a level that goes never
        assert loop([("ask", "9.5", "1", 9.5, 1.0)], bids, asks, 100) == native.REACHED  # at the best bid


def test_the_book_on_the_path_in_use_equals_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The OrderBook calls whichever loop runs; switching it mid-book changes nothing."""
    changes = [
        [("bid", "100", "1", 100.0, 1.0), ("ask", "101", "2", 101.0, 2.0), ("bid", "99.5", "3", 99.5, 3.0)],
        [("bid", "100", "0", 100.0, 0.0), ("ask", "100.5", "1", 100.5, 1.0), ("ask", "101", "0", 101.0, 0.0)],
    ]
    shown = []
    for loop, levels in [(native.apply_levels, native.Levels), (native.apply_levels_py, native.LevelsPy)]:
        monkeypatch.setattr(native, "apply_levels", loop)
        monkeypatch.setattr(native, "Levels", levels)
        book = OrderBook("v", "P", max_levels=3)
        book.apply_snapshot([("98", "1")], [("102", "1")])
        for frame in changes:
            book.apply_changes(frame)
        shown.append((book.top(5), book.best_bid, book.best_ask, book.overflow))
    assert (
        shown[0]
        == shown[1]
        == (
            ([("99.5", "3"), ("98", "1")], [("100.5", "1"), ("102", "1")]),
            ("99.5", "3"),
            ("100.5", "1"),
            False,
        )
    )


def test_pure_path_is_forced_by_the_environment() -> None:
    import subprocess
    import sys

    code = "from tickerterm.core import native; print(native.implementation())"
    env = {**os.environ, "TICKERTERM_PURE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "hot path in pure Python (TICKERTERM_PURE is set)"


@dataclass
class Timed:
    exch_ts: Any
    price: Any


@needs_c
@settings(max_examples=500)
@given(
    st.lists(
        st.builds(
            Timed,
            st.one_of(
                st.sampled_from([1.0, 2.0, 2.0, 3.5, -0.0, 0.0]),
                st.floats(allow_nan=True),
                st.sampled_from([None, 2, "2"]),
            ),
            st.one_of(st.sampled_from(["1", "1.0", "2", "0.5"]), decimal_text, hostile_text),
        ),
        max_size=6,
    )
)
def test_what_a_batch_does_to_a_bar_is_read_as_the_python_twin_reads_it(trades: list[Timed]) -> None:
    """The same span (times and values to the bit, and which trade's price opens, closes, and sets the
    high and low when several tie), or None for the same batches: a time that is not a float or is NaN,
    a price that is not plain decimal text."""

    def outcome(fn: Any) -> Any:
        span = fn(trades)
        if span is None:
            return None
        first, last, open_, close, high, high_p, low, low_p = span
        bits = [struct.pack("<d", v) for v in (first, last, high, low)]
        return bits, [id(open_), id(close), id(high_p), id(low_p)]

    assert outcome(_native.bar_span) == outcome(native.bar_span_py)


@needs_c
@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(decimal_text, st.sampled_from(["0", "0.00", "5.", ".5", "0.10", "1" * 30])), max_size=40
    )
)
def test_an_exact_sum_of_sizes_is_the_same_decimal_with_or_without_c(texts: list[str]) -> None:
    texts = [t for t in texts if len(t) <= MAX_DIGITS] + ["999999999999999999"] * 20  # past 2**64: a carry
    fast = native.decimal_sum(texts)
    assert _native.decimal_parts(texts) is not None or any(
        len(t.replace(".", "").lstrip("0")) > 18 for t in texts
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(native, "decimal_parts", native.decimal_parts_py)
        slow = native.decimal_sum(texts)
    assert str(fast) == str(slow)  # the same digits and the same places
    with localcontext() as ctx:
        ctx.prec = 400
        assert fast == sum(map(Decimal, texts), Decimal(0))


@dataclass(slots=True)
class Slotted:
    side: Any
    price_level: Any
    new_quantity: Any


class Shown(Slotted):
    """A subclass whose price is a property: read through it, never from the slot underneath."""

    @property  # type: ignore[misc]
    def price_level(self) -> str:
        return "7"


@needs_c
def test_fields_are_read_from_slots_as_getattr_reads_them() -> None:
    """The C loops read a slotted type's fields at their offsets: msgspec structs, slotted dataclasses, a
    list mixing types, a subclass that overrides a field, a field never set."""
    import msgspec

    class Struct(msgspec.Struct):
        side: str
        price_level: str
        new_quantity: str

    lists: list[list[Any]] = [
        [Struct("bid", "1.5", "2"), Struct("offer", "3", "0")],
        [Slotted("bid", "1", "1"), Level("offer", "2", "2"), Struct("bid", "3", "3")],
        [Level("offer", "2", "2"), Slotted("bid", "1", "1")],
    ]
    for items in lists:
        assert run(_native.changes, items) == run(native.level_changes_py, items)
    shown = Shown.__new__(Shown)
    object.__setattr__(shown, "side", "bid")
    object.__setattr__(shown, "new_quantity", "1")
    items = [Slotted("bid", "1", "1"), shown]
    assert run(_native.changes, items) == run(native.level_changes_py, items)
    assert run(_native.changes, items)[1][1][1] == "7"
    unset = Slotted.__new__(Slotted)
    assert run(_native.changes, [Slotted("bid", "1", "1"), unset])[0] == "AttributeError"


def _iso(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


@needs_c
@settings(max_examples=500)
@given(
    st.datetimes(
        min_value=__import__("datetime").datetime(1, 1, 2),
        max_value=__import__("datetime").datetime(9999, 12, 30),
    ),
    st.integers(0, 9),
    st.integers(0, 999_999_999),
)
def test_a_utc_time_reads_as_fromisoformat_reads_it(moment: Any, places: int, fraction: int) -> None:
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"
    if places:
        text += "." + str(fraction).zfill(9)[:places]
    text += "Z"
    fast = _native.rfc3339(text)
    if not 1685 < moment.year < 2255:  # microseconds past what a double holds exactly: the slow way
        assert fast is None or fast == _iso(text)
        return
    assert fast is not None and struct.pack("<d", fast) == struct.pack("<d", _iso(text))  # type: ignore[arg-type]


@needs_c
def test_times_the_fast_path_does_not_take_are_left_to_fromisoformat() -> None:
    """Nothing is guessed: a time the C reader does not take whole gives None, and the caller asks Python
    (which refuses the impossible dates itself)."""
    from tickerterm.core.clock import parse_rfc3339

    for text in [
        "2023-02-29T00:00:00Z", "2024-02-30T00:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z", "2024-01-01T00:00:60Z", "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00.1234567890Z", "2024-01-01T00:00:00z", "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00.5+02:00", "0000-01-01T00:00:00Z",
        "2024-01-01T00:00:0xZ", "２０２４-01-01T00:00:00Z", "2024-1-01T00:00:00Z", "",
    ]:  # fmt: skip
        assert _native.rfc3339(text) is None, text
        assert parse_rfc3339(text) == _iso(text), text
    assert _native.rfc3339("2024-02-29T23:59:59.999999999Z") == _iso("2024-02-29T23:59:59.999999Z")
    assert parse_rfc3339("2024-01-01T00:00:00.5+02:00") == 1704060000.5  # offsets: the slow way, same value


@needs_c
@settings(max_examples=300)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["a", "b"]),
                st.sampled_from(["X-USD", "Y-USD"]),
                st.sampled_from(["", "1", "2", "3", "4", "5", "6", "7"]),
            ),
            max_size=25,
        ),
        max_size=5,
    ),
    st.integers(1, 6),
)
def test_restated_trades_are_left_out_as_the_python_twin_leaves_them(frames: list[Any], limit: int) -> None:
    from tickerterm.core.events import Trade

    results = []
    for loop in (_native.fresh_trades, native.fresh_trades_py):
        seen: dict[Any, Any] = {}
        out = []
        for frame in frames:
            trades = [Trade(v, 1.0, p, None, i, "1", "1", "buy") for v, p, i in frame]
            kept, batches = loop(trades, seen, limit)
            out.append(
                (
                    [(t.venue, t.product, t.trade_id) for t in kept],
                    {k: [t.trade_id for t in b] for k, b in batches.items()},
                    list(batches),
                )
            )
        results.append((out, seen))
    assert results[0] == results[1]


@dataclass
class RawTrade:
    product_id: Any
    trade_id: Any
    price: Any
    size: Any
    side: Any
    time: Any


TRADE_NAMES = ("product_id", "trade_id", "price", "size", "side", "time")
AGGRESSOR = {"BUY": "sell", "SELL": "buy"}


def made(loop: Any, items: list[Any], slots: Any, times: dict[Any, Any]) -> tuple[Any, ...]:
    """What ``trade_events`` answers (events as plain tuples, or the error), the times it parsed and
    the cache it left."""
    from tickerterm.core.events import Trade

    parsed: list[Any] = []

    def parse(text: Any) -> float | None:
        parsed.append(text)
        if text == "boom":
            raise ValueError("unreadable time")
        return _iso(text) if isinstance(text, str) else None

    try:
        out = loop(items, Trade, slots, "cb", 5.0, 7.0, TRADE_NAMES, AGGRESSOR, times, parse, MAX_DIGITS)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return type(exc).__name__, str(exc), parsed, times
    import gc

    shown = [(type(t), gc.is_tracked(t), *(getattr(t, f) for f in Trade.__dataclass_fields__)) for t in out]
    return "ok", shown, parsed, times


trade_times = st.sampled_from(
    [None, "2024-05-01T12:00:00.5Z", "2024-05-01T12:00:01Z", "2024-05-01T12:00:00+02:00", "soon", "boom", 17]
)


@needs_c
@settings(max_examples=500)
@given(
    st.lists(
        st.builds(
            RawTrade,
            st.sampled_from(["BTC-USD", "ETH-USD"]),
            st.one_of(st.sampled_from(["t1", "t2", ""]), st.integers(0, 10**20)),
            st.one_of(decimal_text, decimal_text, hostile_text),
            st.one_of(decimal_text, decimal_text, decimal_text, hostile_text),
            st.sampled_from(["BUY", "SELL", "BUY", "SELL", "buy", None]),
            trade_times,
        ),
        max_size=8,
    ),
    st.dictionaries(trade_times.filter(lambda t: t is not None), st.floats(0, 2e9), max_size=2),
)
def test_trades_are_made_events_as_the_python_twin_makes_them(
    items: list[RawTrade], cache: dict[Any, Any]
) -> None:
    """The same events (each field, its type, tracked by the collector as a made one is), or the same
    error, from any trade text; the same times parsed, in the same order, and the same cache left, whether
    the C loop fills each event's slots or calls the class."""
    from tickerterm.core.events import Trade

    slots = native.plain_slots(Trade)
    assert slots is not None
    twin = made(native.trade_events_py, items, None, dict(cache))
    assert made(_native.trade_events, items, slots, dict(cache)) == twin
    assert made(_native.trade_events, items, None, dict(cache)) == twin


@needs_c
def test_only_a_plain_slotted_dataclass_is_made_by_filling_its_slots() -> None:
    """``plain_slots`` says which classes the C loop may make without calling them; the C loop itself
    refuses names that are not plain slots of the class."""
    from dataclasses import field

    from tickerterm.core.events import BookUpdate, Ticker, Trade

    @dataclass(slots=True)
    class Checked:
        a: str

        def __post_init__(self) -> None:
            raise ValueError

    @dataclass(slots=True)
    class Defaulted:
        a: str = "x"

    @dataclass(slots=True)
    class Factory:
        a: list[str] = field(default_factory=list)

    @dataclass
    class Loose:
        a: str

    @dataclass(slots=True)
    class OwnInit:
        a: str

        def __init__(self, a: str) -> None:
            object.__setattr__(self, "a", a.upper())

    assert native.plain_slots(Trade) == tuple(f.name for f in dataclasses.fields(Trade))
    assert native.plain_slots(BookUpdate) == ("venue", "recv_ts", "product", "exch_ts", "changes")
    for cls in (Checked, Defaulted, Factory, Loose, OwnInit, Ticker, Level, int):
        assert native.plain_slots(cls) is None, cls
    trade = RawTrade("P", "1", "1", "1", "BUY", None)
    args = ("cb", 1.0, None, TRADE_NAMES, AGGRESSOR, {}, _iso, MAX_DIGITS)
    named = ("venue", "recv_ts", "product", "exch_ts", "trade_id", "price", "size", "nope")
    for slots in (("venue",) * 7, named):
        with pytest.raises(TypeError):
            _native.trade_events([trade], Trade, slots, *args)
    with pytest.raises(TypeError):
        _native.trade_events([trade], Loose, ("a",) * 8, *args)


@needs_c
def test_the_c_loops_keep_no_reference_they_do_not_return_even_when_they_raise() -> None:
    """Every reference taken is given back, on success and on each way out with an error: the
    objects handed in have the same reference counts after 500 calls as before."""
    import sys

    from tickerterm.core.events import Trade

    price, size, bad, side = (
        "".join(["1", ".5"]),
        "".join(["2", "0"]),
        "".join(["1.", "2.3"]),
        "".join(["bi", "d"]),
    )
    good = [Slotted(side, price, size), Level(side, price, size)]
    refused = [Slotted(side, price, size), Slotted(side, bad, size)]
    no_side = [Slotted("".join(["mid", "dle"]), price, size)]
    trades = [Trade("v", 1.0, "P", None, "".join(["i", "d"]), price, size, "buy") for _ in range(3)]
    when = "".join(["2024-05-01T12:00:00", ".5Z"])
    timed = [Timed(1.5, price), Timed(0.5, size), Timed(2.5, price)]
    raw_trades = [RawTrade("P", tid, price, size, "BUY", when) for tid in ("".join(["t", "1"]), 12, 13)]
    raw_bad = [raw_trades[0], RawTrade("P", "t", price, bad, "BUY", when)]
    raw_no_side = [raw_trades[0], RawTrade("P", "t", price, size, side, when)]
    raw_boom = [RawTrade("P", "t", price, size, "SELL", "".join(["bo", "om"]))]

    def boom(text: str) -> float | None:
        if text == "boom":
            raise ValueError(text)
        return _iso(text)

    gone, live = float(price) + 6, float(size) + 0.5  # 7.5 and 20.5, objects of their own
    frames = b"\x81\x02ab\x82\x01c\x89\x00"
    l2 = (
        b'{"sequence_num":3,"timestamp":"t","events":[{"type":"update","product_id":"P","updates":'
        b'[{"side":"bid","price_level":"1.5","new_quantity":"2"},{"side":"offer","price_level":"3",'
        b'"new_quantity":"0"}]}]}'
    )
    sides = {"".join(["b", "id"]): side, "".join(["off", "er"]): "".join(["as", "k"])}
    watched = [
        price,
        size,
        bad,
        side,
        *good,
        *refused,
        *trades,
        *timed,
        *raw_trades,
        *raw_bad,
        *raw_no_side,
        *raw_boom,
        when,
        gone,
        live,
        frames,
        l2,
        *sides,
        *sides.values(),
    ]

    def once() -> None:
        _native.changes(good, {side: side}, "side", "price_level", "new_quantity", 64)
        for items in (refused, no_side, [*good, Slotted.__new__(Slotted)]):
            with pytest.raises((ValueError, KeyError, AttributeError)):
                _native.changes(items, {side: side}, "side", "price_level", "new_quantity", 64)
        for slots in (native.plain_slots(Trade), None):
            made_ = (Trade, slots, "cb", 1.0, None, TRADE_NAMES, AGGRESSOR)
            _native.trade_events(raw_trades, *made_, {}, _iso, 64)
            _native.trade_events(raw_trades, *made_, {when: 1.0}, _iso, 64)
            for bad, caught in ((raw_bad, ValueError), (raw_no_side, KeyError), (raw_boom, ValueError)):
                with pytest.raises(caught):
                    _native.trade_events(bad, *made_, {}, boom, 64)
        _native.bar_span(timed)
        assert _native.bar_span([*timed, Timed(2.0, bad)]) is None
        with pytest.raises(AttributeError):
            _native.bar_span([*timed, Slotted(side, price, size)])
        _native.decimal_parts([price, size])
        _native.decimal_parts([price, bad])
        _native.rfc3339("2024-05-01T12:00:00.5Z")
        book_sides = _native.Levels(True), _native.Levels(False)
        book_sides[0].fill({gone: (price, size)})
        _native.apply_levels(
            [("bid", price, size, live, 20.0), ("ask", price, "0", gone, 0.0)], *book_sides, 10
        )
        many = [("ask", size, price, float(k), 1.0) for k in range(200)]  # blocks split, then merge
        _native.apply_levels(many, *book_sides, 1000)
        _native.apply_levels([(s, p, q, k, 0.0) for s, p, q, k, _ in many], *book_sides, 1000)
        for levels in book_sides:
            levels.best(), levels.top(3), levels.items(), list(levels), levels.get(live), live in levels
            levels.put(gone, price, size, 5), levels.remove(gone)
        with pytest.raises(TypeError):
            _native.apply_levels([("bid", price, 1, live, 1.0)], *book_sides, 10)
        with pytest.raises(KeyError):
            book_sides[1][live]
        book_sides[0].clear()
        _native.fresh_trades(trades, {}, 2)
        _native.data_frames(frames, 0, 1000, [])
        _native.level_frame(l2, L2_KEYS, sides, 64)
        for doubt in (l2[:-1], l2.replace(b"update", b"snapshot"), l2.replace(b'"1.5"', b'"1.5.5"')):
            assert _native.level_frame(doubt, L2_KEYS, sides, 64) is None
        with pytest.raises(ValueError):
            _native.data_frames(frames, -1, 1000, [])

    once()  # caches warmed (interned names, method lookups)
    before = [sys.getrefcount(x) for x in watched]
    for _ in range(500):
        once()
    assert [sys.getrefcount(x) for x in watched] == before


def _ws_frame(b0: int, payload: bytes, masked: bool = False, wide: int = 0) -> bytes:
    """One server frame: ``wide`` 0 picks the shortest length encoding, 2 or 8 forces that one."""
    n = len(payload)
    mask = 0x80 if masked else 0
    if wide == 8 or n > 0xFFFF:
        head = bytes([b0, mask | 127]) + n.to_bytes(8, "big")
    elif wide == 2 or n > 125:
        head = bytes([b0, mask | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mask | n])
    return head + (b"\x00\x00\x00\x00" if masked else b"") + payload


ws_frames = st.builds(
    _ws_frame,
    st.sampled_from([0x81, 0x82, 0x81, 0x82, 0x01, 0x80, 0x89, 0x8A, 0x88, 0xC1, 0x83]),
    st.binary(max_size=300),
    st.sampled_from([False, False, False, True]),
    st.sampled_from([0, 0, 2, 8]),
)


def split(fn: Any, data: bytes | bytearray, pos: int, limit: int) -> tuple[Any, ...]:
    out: list[bytes] = []
    try:
        end = fn(data, pos, limit, out)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc), out
    return "ok", end, out


@needs_c
@settings(max_examples=400)
@given(
    st.lists(ws_frames, max_size=8).map(b"".join),
    st.data(),
    st.sampled_from([0, 1, 125, 126, 300, 2**62]),
    st.booleans(),
)
def test_a_reads_plain_messages_are_split_out_as_the_python_twin_splits_them(
    stream: bytes, data: Any, limit: int, as_bytearray: bool
) -> None:
    """Any run of frames (plain, control, fragments, masked, too long, each length encoding), cut
    anywhere and started anywhere: the same messages and the same place to go on from, or the same
    error."""
    cut = data.draw(st.integers(0, len(stream)))
    pos = data.draw(st.integers(0, cut + 2))
    chunk: bytes | bytearray = bytearray(stream[:cut]) if as_bytearray else stream[:cut]
    assert split(_native.data_frames, chunk, pos, limit) == split(native.data_frames_py, chunk, pos, limit)


@needs_c
def test_splitting_refuses_what_it_cannot_read_and_stops_where_the_general_reader_must_look() -> None:
    plain = _ws_frame(0x81, b'{"a":1}') + _ws_frame(0x82, b"x" * 200) + _ws_frame(0x81, b"y" * 70000)
    for fn in (_native.data_frames, native.data_frames_py):
        out: list[bytes] = []
        assert fn(plain, 0, 2**20, out) == len(plain)
        assert out == [b'{"a":1}', b"x" * 200, b"y" * 70000]
        ping = _ws_frame(0x89, b"p")
        out = []
        assert fn(plain[:9] + ping + plain[9:], 0, 2**20, out) == 9  # the control is the reader's
        assert out == [b'{"a":1}']
        out = []
        assert fn(plain, 0, 100, out) == 9  # past the limit: the reader fails the connection
        out = []
        assert fn(plain[:-1], 0, 2**20, out) == 9 + 204  # the last is not whole yet
        with pytest.raises(TypeError):
            fn(memoryview(plain), 0, 10, [])
        with pytest.raises(TypeError):
            fn(plain, 0, 10, ())
        with pytest.raises(ValueError):
            fn(plain, -1, 10, [])
        with pytest.raises(ValueError):
            fn(plain, 0, -1, [])
    assert _native.data_frames(plain, len(plain) + 5, 10, []) == len(plain) + 5


L2_KEYS = (
    *(b"events", b"sequence_num", b"timestamp"),
    *(b"type", b"product_id", b"updates", b"update"),
    *(b"side", b"price_level", b"new_quantity"),
)


def _json(value: Any, draw: Any) -> str:
    """``value`` as JSON text with whitespace drawn between tokens; an object is a list of pairs (a key
    may come twice)."""
    gap = draw(st.sampled_from(["", "", "", " ", "\n", "\t "]))
    if isinstance(value, _Pairs):
        inner = ",".join(f"{gap}{_json(k, draw)}{gap}:{_json(v, draw)}" for k, v in value.pairs)
        return "{" + inner + gap + "}"
    if isinstance(value, list):
        return "[" + ",".join(gap + _json(v, draw) for v in value) + gap + "]"
    if isinstance(value, _Raw):
        return value.text
    if isinstance(value, bytes):
        return json.dumps(value.decode("latin-1"))
    return json.dumps(value, ensure_ascii=draw(st.booleans()))


@dataclass
class _Pairs:
    pairs: list[tuple[str, Any]]


@dataclass
class _Raw:
    text: str  # JSON text as it stands (numbers json.dumps would not write)


scalars = st.one_of(
    st.text(max_size=6),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.sampled_from([_Raw("1e5"), _Raw("-0"), _Raw("0.5E-3"), _Raw("NaN"), _Raw("01"), _Raw("1.")]),
)
containers = st.sampled_from([[], [1], _Pairs([]), _Pairs([("a", 1)])])


def _object(draw: Any, known: dict[str, Any], clean: bool) -> _Pairs:
    """An object with the ``known`` keys and other scalar ones, in any order; unless ``clean``, now and
    then a key missing, a key twice, or an object or array as another key's value."""
    pairs = [(k, v) for k, v in known.items() if clean or draw(st.integers(0, 12))]
    for _ in range(draw(st.integers(0, 2))):
        pairs.append((draw(st.sampled_from(["client_id", "event_time", "x"])), draw(scalars)))
    if not clean and draw(st.integers(0, 8)) == 0:
        pairs.append((draw(st.sampled_from(["x", "event_time", "side", "type"])), draw(containers)))
    if not clean and pairs and draw(st.integers(0, 8)) == 0:
        pairs.append(draw(st.sampled_from(pairs)))  # a key twice
    return _Pairs(draw(st.permutations(pairs)))


@st.composite
def l2_frames(draw: Any) -> bytes:
    """Frames of ``l2_data``'s shape: half of them good (the C reader must answer them), the rest with
    faults anywhere."""
    clean = draw(st.booleans())

    def pick(good: Any, bad: Any) -> Any:
        return draw(good if clean else st.one_of(good, good, bad))

    def update() -> _Pairs:
        side = pick(st.sampled_from(["bid", "offer"]), st.sampled_from(["ask", 1, "Bid"]))
        price = pick(decimal_text, hostile_text)
        size = pick(decimal_text, hostile_text)
        known = {
            "side": side,
            "event_time": "2024-05-01T12:00:00Z",
            "price_level": price,
            "new_quantity": size,
        }
        return _object(draw, known, clean)

    def event() -> _Pairs:
        kind = pick(st.just("update"), st.sampled_from(["snapshot", "other", 3]))
        product = pick(st.sampled_from(["BTC-USD", "ETH-USD", ""]), st.sampled_from([5, None]))
        updates = [update() for _ in range(draw(st.integers(0, 5)))]
        return _object(draw, {"type": kind, "product_id": product, "updates": updates}, clean)

    seq = pick(st.one_of(st.integers(0, 10**18 - 1), st.none()), st.one_of(st.integers(-5, 2**64), scalars))
    stamp = pick(st.sampled_from(["2024-05-01T12:00:00.123456Z", None]), st.sampled_from([7, "not a time"]))
    events = [event() for _ in range(draw(st.integers(0, 3)))]
    frame = _object(
        draw, {"channel": "l2_data", "timestamp": stamp, "sequence_num": seq, "events": events}, clean
    )
    raw = _json(frame, draw).encode()
    mutation = 9 if clean else draw(st.integers(0, 5))
    if raw and mutation == 0:  # a byte changed
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.sampled_from(b'"\\{}[],:0.- \x01\x7f\x80a'))]) + raw[at + 1 :]
    elif raw and mutation == 1:  # cut short, or something after it
        raw = raw[: draw(st.integers(0, len(raw) - 1))] if draw(st.booleans()) else raw + b"x"
    return raw


def _decoder_reads(raw: bytes) -> tuple[Any, ...] | None:
    """What the general path makes of a frame the C reader answered: msgspec's typed decode of it, each
    event's updates through the same checks and conversions (the parser's ``_l2_typed``)."""
    from tickerterm.venues import coinbase

    frame = coinbase._decode_l2(raw)
    events = [
        (ev.product_id, native.level_changes_py(ev.updates, SIDES, "side", "price_level", "new_quantity"))
        for ev in frame.events
    ]
    return frame.sequence_num, frame.timestamp, events


@needs_c
@settings(max_examples=1500)
@given(l2_frames())
def test_a_level_frame_is_read_straight_from_its_json_as_the_decoder_reads_it(raw: bytes) -> None:
    """Any frame of that shape, good or broken (keys missing, twice, in any order, other keys, nested
    values, whitespace, bad numbers and text, a byte changed, cut short): the C reader and its twin give
    the same answer, and where they answer, it is what msgspec and the checked conversion make of it."""
    got = _native.level_frame(raw, L2_KEYS, SIDES, MAX_DIGITS)
    assert got == native.level_frame_py(raw, L2_KEYS, SIDES, MAX_DIGITS)
    if got is not None:
        assert got == _decoder_reads(raw)
        assert [struct.pack("<2d", *c[3:]) for _, cs in got[2] for c in cs] == [
            struct.pack("<2d", *c[3:]) for _, cs in _decoder_reads(raw)[2] for c in cs
        ]


@needs_c
def test_the_simulators_level_frames_are_read_straight_and_its_snapshots_by_the_decoder() -> None:
    frame = (
        b'{"channel":"l2_data","client_id":"","timestamp":"2024-05-01T12:00:00.5Z","sequence_num":7,'
        b'"events":[{"type":"update","product_id":"BTC-USD","updates":[{"side":"bid","event_time":'
        b'"2024-05-01T12:00:00.5Z","price_level":"64000.10","new_quantity":"0.5"},{"side":"offer",'
        b'"event_time":"2024-05-01T12:00:00.5Z","price_level":"64001","new_quantity":"0"}]}]}'
    )
    assert _native.level_frame(frame, L2_KEYS, SIDES, MAX_DIGITS) == (
        7,
        "2024-05-01T12:00:00.5Z",
        [("BTC-USD", [("bid", "64000.10", "0.5", 64000.1, 0.5), ("ask", "64001", "0", 64001.0, 0.0)])],
    )
    for doubt in (
        frame.replace(b'"update"', b'"snapshot"'),  # the decoder's
        frame.replace(b"64001", b"6400\\u0031"),  # an escape
        frame.replace(b'"sequence_num":7', b'"sequence_num":-7'),
        frame.replace(b'"client_id":""', b'"client_id":{}'),
        frame.replace(b'"0.5"', b'"0.5e1"'),  # not plain: the decoder's path names it
        frame.replace(b"BTC-USD", "BTC-€".encode()),
        frame + b"{}",
    ):
        assert _native.level_frame(doubt, L2_KEYS, SIDES, MAX_DIGITS) is None
        assert native.level_frame_py(doubt, L2_KEYS, SIDES, MAX_DIGITS) is None
    for fn in (_native.level_frame, native.level_frame_py):
        with pytest.raises(TypeError):
            fn(frame.decode(), L2_KEYS, SIDES, MAX_DIGITS)
        with pytest.raises(TypeError):
            fn(frame, L2_KEYS[:-1], SIDES, MAX_DIGITS)
        with pytest.raises(TypeError):
            fn(frame, (*L2_KEYS[:-1], "new_quantity"), SIDES, MAX_DIGITS)
        with pytest.raises(TypeError):
            fn(frame, L2_KEYS, {**SIDES, "mid": "mid"}, MAX_DIGITS)
