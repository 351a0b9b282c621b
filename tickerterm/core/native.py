"""The hot path's per-update loops, and which implementation of them runs.

``level_changes`` (a venue's level changes checked and converted), ``apply_levels`` (a book's levels
set from them), ``trade_events`` (a batch of a venue's trades checked and made events), ``bar_span`` (what
they do to a bar), ``decimal_sum`` (sizes summed exactly), ``rfc3339`` (a frame's time), ``fresh_trades``
(restated trades left out), ``Levels`` (a book side's levels kept sorted, best first),
``data_frames`` (a socket read's plain WebSocket messages) and ``level_frame`` (a level-update frame read
straight from its JSON; None on the pure path, see below) each exist twice: in
C (``tickerterm/core/_native.c``, built at install where a C compiler is found) and here in Python,
which gives the same results more slowly (``tests/test_native.py`` checks that they agree, bad input
included). The C loops exist because per update the Python ones make some fifteen C-API calls from
bytecode, and the interpreter's dispatch around them cost more than the calls (bench/README.md).
``TICKERTERM_PURE=1`` in the environment forces the Python path; ``tickerterm --version`` says which
one runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal, localcontext
from operator import attrgetter
from operator import index as operator_index
from typing import Any

from tickerterm.core.events import DIGITS, MAX_DIGITS, Change, Trade

API = 14
"""The extension's interface version this code expects; a build of another is not used."""

_INF = float("inf")

OVERFLOW = 1
"""``apply_levels``: a new level was not kept (its side held ``cap`` levels)."""
REACHED = 2
"""``apply_levels``: a level was set at or through the other side's best price (the book may cross)."""


def level_changes_py(
    items: Sequence[Any],
    sides: dict[str, Any],
    side_attr: str,
    price_attr: str,
    size_attr: str,
    max_len: int = MAX_DIGITS,
) -> list[Change]:
    """One ``Change`` per item, in order: the side is ``sides[item.<side_attr>]`` (KeyError if absent),
    price and size the item's text as it came, checked to be plain decimal text (ASCII digits, at most
    one point, at least one digit, at most ``max_len`` characters; ValueError otherwise, TypeError for
    anything but a string)."""
    get = attrgetter(side_attr, price_attr, size_attr)
    out: list[Change] = []
    add = out.append
    for item in items:
        side, price, size = get(item)
        name = sides[side]
        _check(price, size, max_len)
        p, q = float(price), float(size)
        if not (p < _INF and q < _INF):  # not reachable within max_len digits; kept as the C loop has it
            raise ValueError("not a finite number")
        add((name, price, size, p, q))
    return out


def trade_events_py(
    items: Sequence[Any],
    make: Callable[..., Any],
    slots: tuple[str, ...] | None,
    venue: str,
    recv_ts: float,
    default_ts: float | None,
    names: tuple[str, str, str, str, str, str],
    sides: dict[Any, Any],
    times: dict[Any, float | None],
    parse: Callable[[Any], float | None],
    max_len: int = MAX_DIGITS,
) -> list[Any]:
    """A batch of a venue's trades made events, in order: ``make(venue, recv_ts, product, ts, trade_id,
    price, size, side)`` per item, its fields read by ``names`` (product, trade_id, price, size, side,
    time). The side is ``sides[side]`` (KeyError if absent), price and size are checked as
    ``level_changes_py`` checks them, the id is made a string, and ``ts`` is the time's value: from
    ``times``, else ``parse(time)`` (kept in ``times``, cleared past 256 entries); ``default_ts`` where
    the time is None or its value is. A batch's trades share their time text: it is looked up once.
    ``slots`` (``plain_slots(make)``) lets the C loop fill each event's slots instead of calling ``make``:
    the same event, as the test of the two checks."""
    get = attrgetter(*names)
    out: list[Any] = []
    add = out.append
    have_last = False
    last_when: Any = None
    last_ts = default_ts
    for item in items:
        product, trade_id, price, size, side, when = get(item)
        name = sides[side]
        _check(price, size, max_len)
        if type(trade_id) is not str:
            trade_id = str(trade_id)
        if when is None:
            ts = default_ts
        elif have_last and (
            when is last_when or (type(when) is str and type(last_when) is str and when == last_when)
        ):
            ts = last_ts
        else:
            ts = times.get(when)
            if ts is None:
                ts = parse(when)
                if len(times) > 256:
                    times.clear()
                times[when] = ts
            if ts is None:
                ts = default_ts
            have_last, last_when, last_ts = True, when, ts
        add(make(venue, recv_ts, product, ts, trade_id, price, size, name))
    return out


def plain_slots(cls: type) -> tuple[str, ...] | None:
    """The fields of ``cls`` in ``__init__``'s order when its instances may be made by filling their slots
    (``trade_events``' ``slots``): a slotted dataclass whose ``__init__`` is the generated one and only
    sets them (no defaults, no ``__post_init__``, every class of its line slotted). None otherwise, and
    then the C loop calls ``cls``."""
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__"):
        return None
    fields = dataclasses.fields(cls)
    init = getattr(cls.__init__, "__code__", None)
    slotted = all("__slots__" in vars(c) and "__dict__" not in vars(c) for c in cls.__mro__[:-1])
    missing = dataclasses.MISSING
    plain = all(f.init and f.default is missing and f.default_factory is missing for f in fields)
    if init is None or init.co_filename != "<string>" or not slotted or not plain:
        return None
    return tuple(f.name for f in fields)


def _check(price: Any, size: Any, max_len: int) -> None:
    """Both plain decimal text (``_plain``): TypeError for anything but a string, ValueError otherwise."""
    for value in (price, size):
        if type(value) is not str:
            raise TypeError(f"expected a decimal string, got {type(value).__name__}")
    if not (_plain(price, max_len) and _plain(size, max_len)):
        raise ValueError(f"not plain decimal text: {price[:20]!r} / {size[:20]!r}")


def _plain(text: Any, max_len: int = MAX_DIGITS) -> bool:
    """Plain decimal text: a string of ASCII digits with at most one point, at least one digit and at most
    ``max_len`` characters."""
    if type(text) is not str or len(text) > max_len or text.strip(DIGITS):
        return False
    points = text.count(".")
    return points <= 1 and len(text) > points


class LevelsPy:
    """One side of a book, its levels best first (``Levels`` in C does the same with sorted blocks): a
    dict of ``key -> (price, size)`` and the keys in a sorted list, the best last (``order``: the key for
    bids, minus the key for asks), so a level near the best moves few entries. Texts are exact strings and
    keys numbers, as in C."""

    __slots__ = ("_bids", "_levels", "_order")

    def __init__(self, bids: bool) -> None:
        self._bids = bool(bids)
        self._levels: dict[float, tuple[str, str]] = {}
        self._order: list[float] = []

    def _checked(self, key: Any) -> float:
        """The key as a float: TypeError unless a number, ValueError for NaN (as in C)."""
        if not isinstance(key, (int, float)):
            raise TypeError(f"a price's key is a number, not {type(key).__name__}")
        k = float(key)
        if k != k:
            raise ValueError("a price's key is not a number (NaN)")
        return k

    def _flip(self, value: float) -> float:
        """A key's place in ``_order``, and back (the key for bids, minus it for asks)."""
        return value if self._bids else -value

    def put(self, key: Any, price: Any, size: Any, cap: int) -> bool:
        """Set a level; False when it was not kept (the side holds ``cap`` levels and not this one)."""
        k = self._checked(key)
        _texts(price, size)
        if k in self._levels:
            self._levels[k] = (price, size)
            return True
        if len(self._levels) >= cap:
            return False
        insort(self._order, self._flip(k))
        self._levels[k] = (price, size)
        return True

    def remove(self, key: Any) -> None:
        k = self._checked(key)
        if self._levels.pop(k, None) is not None:
            del self._order[bisect_left(self._order, self._flip(k))]

    def best(self) -> float | None:
        return self._flip(self._order[-1]) if self._order else None

    def top(self, n: int) -> list[tuple[str, str]]:
        levels, order = self._levels, self._order
        n = max(0, min(operator_index(n), len(order)))
        return [levels[self._flip(o)] for o in order[len(order) - n :][::-1]]

    def keys(self) -> list[float]:
        return [self._flip(o) for o in reversed(self._order)]

    def values(self) -> list[tuple[str, str]]:
        return self.top(len(self._order))

    def items(self) -> list[tuple[float, tuple[str, str]]]:
        return [(k, self._levels[k]) for k in self.keys()]

    def get(self, key: Any, default: Any = None) -> Any:
        return self._levels.get(self._checked(key), default)

    def fill(self, levels: dict[Any, tuple[str, str]]) -> None:
        """The side made these levels."""
        for key, (price, size) in levels.items():
            self._checked(key)
            _texts(price, size)
        self._order = sorted(self._flip(float(k)) for k in levels)
        self._levels = {self._flip(o): levels[self._flip(o)] for o in self._order}

    def clear(self) -> None:
        self._levels.clear()
        self._order.clear()

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: Any) -> bool:
        return self._checked(key) in self._levels

    def __getitem__(self, key: Any) -> tuple[str, str]:
        k = self._checked(key)
        if k not in self._levels:
            raise KeyError(key)
        return self._levels[k]

    def __iter__(self) -> Iterator[float]:
        return iter(self.keys())


def _texts(price: Any, size: Any) -> None:
    if type(price) is not str or type(size) is not str:
        raise TypeError("a level's price and size are strings")


def apply_levels_py(changes: Sequence[Change], bids: Any, asks: Any, cap: int) -> int:
    """``OrderBook.apply_changes``' loop: each change sets a level of ``bids`` or ``asks`` (``Levels``) to
    an absolute size, or removes it when the size is zero. Bit 1 of the result (``OVERFLOW``): a new level
    was not kept because its side already held ``cap`` levels. Bit 2 (``REACHED``): a level was set at or
    through the other side's best price, so the book may have crossed; without it a book that was not
    crossed is still not (a level that goes cannot cross a book)."""
    overflow = reach = False
    for side, price, size, key, value in changes:
        is_bid = side == "bid"
        levels, other = (bids, asks) if is_bid else (asks, bids)
        if value == 0.0:
            levels.remove(key)
            continue
        if not levels.put(key, price, size, cap):
            overflow = True  # past any real book: not kept, and said so
            continue
        if not reach:
            best = other.best()
            reach = best is not None and (key >= best if is_bid else key <= best)
    return (OVERFLOW if overflow else 0) | (REACHED if reach else 0)


def bar_span_py(
    trades: Sequence[Trade],
) -> tuple[float, float, str, str, float, str, float, str] | None:
    """What a batch of trades does to a bar: the earliest and latest ``exch_ts``, the price of the first
    trade at the earliest and of the last at the latest, the highest and lowest price values and the first
    trade's price at each. None when a time is not a float or a price is not plain decimal text (the
    caller adds such trades one by one)."""
    times = [t.exch_ts for t in trades]
    prices = [t.price for t in trades]
    if not trades or any(type(t) is not float or t != t for t in times):
        return None
    if not all(map(_plain, prices)):
        return None
    first, last = min(times), max(times)  # type: ignore[type-var]
    values = [float(p) for p in prices]
    high, low = max(values), min(values)
    close = len(times) - 1 - times[::-1].index(last)
    return (
        first,  # type: ignore[return-value]
        last,
        prices[times.index(first)],
        prices[close],
        high,
        prices[values.index(high)],
        low,
        prices[values.index(low)],
    )


def decimal_parts_py(texts: Sequence[str]) -> None:
    """The C loop sums plain decimal texts as integers per count of places; without it ``decimal_sum``
    sums ``Decimal`` values (the same result)."""
    return None


def decimal_sum(texts: Sequence[str]) -> Decimal:
    """The exact sum of decimal texts (a bar's trade sizes): every digit kept, the places of the text
    with the most (``"0.5"`` + ``"0.50"`` is ``1.00``), as ``sum(map(Decimal, texts))`` gives where the
    context's precision does not round."""
    parts = decimal_parts(texts)
    if parts is None:
        with localcontext() as ctx:
            ctx.prec = 4 * 64 + 20  # no rounding: texts have at most 64 digits, lists far fewer than 10**20
            return sum(map(Decimal, texts), Decimal(0))
    if not parts:
        return Decimal(0)
    places = max(f for f, _, _ in parts)
    total = sum(((hi << 64) | lo) * 10 ** (places - f) for f, hi, lo in parts)
    return Decimal(f"{total}E-{places}")


def rfc3339_py(text: str) -> float | None:
    """The C fast path reads the common UTC form itself; without it every time goes to
    ``datetime.fromisoformat`` (``core.clock.parse_rfc3339``), which gives the same value."""
    return None


def fresh_trades_py(
    trades: Sequence[Trade], seen: dict[tuple[str, str], tuple[set[str], set[str]]], limit: int
) -> tuple[list[Trade], dict[tuple[str, str], list[Trade]]]:
    """``Store._trades``' loop: the trades whose id was not seen lately (an empty id is always new), in
    order, and the same grouped by ``(venue, product)`` in order of first appearance. ``seen`` maps a
    product to its ``(recent, older)`` ids; a new id goes into ``recent``, and when it holds ``limit``
    ids, ``older`` takes them and ``recent`` starts empty."""
    venue = product = ""
    kept: list[Trade] = []
    batches: dict[tuple[str, str], list[Trade]] = {}
    batch = kept
    recent: set[str] = set()
    older: set[str] = set()
    for ev in trades:
        if ev.product != product or ev.venue != venue:
            venue, product = ev.venue, ev.product
            key = (venue, product)
            found = batches.get(key)
            if found is None:
                found = batches[key] = []
            batch = found
            pair = seen.get(key)
            if pair is None:
                pair = seen[key] = (set(), set())
            recent, older = pair
        trade_id = ev.trade_id
        if trade_id:
            if trade_id in recent or trade_id in older:
                continue
            recent.add(trade_id)
            if len(recent) >= limit:
                older.clear()  # in place, as the C loop does: the pair stays the same objects
                older.update(recent)
                recent.clear()
        batch.append(ev)
        kept.append(ev)
    return kept, batches


class _Signed(int):
    """A JSON integer ``level_frame`` does not take as a sequence number (signed, or of 19+ digits)."""


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity: not JSON


def _int(text: str) -> int:
    return _Signed(text) if text.startswith("-") or len(text) > 18 else int(text)


_SCALAR = (str, int, float, bool, type(None))


class _Object(dict[str, Any]):
    """A JSON object, with its members as they came (a key may come twice: the dict keeps the last)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs
        self.twice = {k for k, n in Counter(k for k, _ in pairs).items() if n > 1}


def level_frame_py(
    raw: bytes, keys: tuple[bytes, ...], sides: dict[str, Any], max_len: int
) -> tuple[int | None, str | None, list[tuple[str, list[Change]]]] | None:
    """A level-update frame read straight from its JSON bytes, or None when it is not of that form
    without any doubt (the venue's general decoder then reads it): an object with an array of events,
    each an object of the update type with a product and an array of updates, each an object with a
    side (a key of ``sides``), a price and a size (plain decimal text of at most ``max_len``
    characters). ``keys``: the frame's events, sequence number and time; the event's type, product and
    updates, and the update type's value; the update's side, price and size. Doubt is also: a byte
    outside ASCII or a backslash anywhere, a known key twice in an object, any other key's value that is
    an object or an array, a signed or 19-digit sequence number."""
    if type(raw) is not bytes or type(keys) is not tuple or len(keys) != 10:
        raise TypeError("level_frame(raw: bytes, keys: tuple of 10 bytes, sides: dict, max_len)")
    if not all(type(k) is bytes for k in keys):
        raise TypeError("level_frame(): the keys are bytes")
    if len(sides) > 2 or not all(type(k) is str and k.isascii() for k in sides):
        raise TypeError("level_frame(): sides maps at most two ASCII strings")
    if not raw.isascii() or b"\\" in raw:
        return None
    k_events, k_seq, k_time, k_type, k_product, k_updates, update, k_side, k_price, k_size = (
        k.decode() for k in keys
    )
    try:
        frame = json.loads(raw, object_pairs_hook=_Object, parse_constant=_no_constant, parse_int=_int)
    except ValueError:
        return None

    def plain(obj: Any, mine: tuple[str, ...]) -> bool:
        """An object of this form: none of ``mine`` twice, every other value a scalar."""
        return (
            type(obj) is _Object
            and not obj.twice.intersection(mine)
            and all(isinstance(v, _SCALAR) for k, v in obj.pairs if k not in mine)
        )

    if not plain(frame, (k_events, k_seq, k_time)):
        return None
    events = frame.get(k_events)
    seq = frame.get(k_seq)
    stamp = frame.get(k_time)
    if type(events) is not list:
        return None
    if not (seq is None or type(seq) is int) or not (stamp is None or type(stamp) is str):
        return None
    out: list[tuple[str, list[Change]]] = []
    for ev in events:
        if not plain(ev, (k_type, k_product, k_updates)):
            return None
        product, updates = ev.get(k_product), ev.get(k_updates)
        if ev.get(k_type) != update:
            return None
        if type(product) is not str or type(updates) is not list:
            return None
        changes: list[Change] = []
        for u in updates:
            if not plain(u, (k_side, k_price, k_size)):
                return None
            side, price, size = u.get(k_side), u.get(k_price), u.get(k_size)
            if type(side) is not str or side not in sides:
                return None
            try:
                _check(price, size, max_len)
            except (TypeError, ValueError):
                return None
            changes.append((sides[side], price, size, float(price), float(size)))
        out.append((product, changes))
    return seq, stamp, out


def data_frames_py(data: bytes | bytearray, pos: int, limit: int, out: list[bytes]) -> int:
    """From ``pos`` on, every whole, unfragmented, unmasked text or binary frame (first byte 0x81 or
    0x82) of at most ``limit`` payload bytes: its payload appended to ``out``. Stops at the first frame
    that is anything else, or not whole yet, and returns where it starts (``FrameReader.feed`` takes
    it from there)."""
    if type(data) is not bytes and type(data) is not bytearray:
        raise TypeError("data_frames(): bytes or bytearray expected")
    if type(out) is not list:
        raise TypeError("data_frames(): out must be a list")
    if pos < 0 or limit < 0:
        raise ValueError("data_frames(): pos and limit cannot be negative")
    n = len(data)
    while pos <= n - 2:
        b0, b1 = data[pos], data[pos + 1]
        if (b0 != 0x81 and b0 != 0x82) or b1 & 0x80:
            break
        length = b1 & 0x7F
        head = pos + 2
        if length == 126:
            if n - head < 2:
                break
            length = (data[head] << 8) | data[head + 1]
            head += 2
        elif length == 127:
            if n - head < 8:
                break
            length = int.from_bytes(data[head : head + 8], "big")
            head += 8
        if length > limit or length > n - head:
            break
        out.append(bytes(data[head : head + length]))
        pos = head + length
    return pos


level_changes = level_changes_py
apply_levels = apply_levels_py
trade_events = trade_events_py
bar_span = bar_span_py
rfc3339: Callable[[str], float | None] = rfc3339_py
fresh_trades = fresh_trades_py
Levels: Callable[[bool], Any] = LevelsPy
decimal_parts: Callable[[Sequence[str]], list[tuple[int, int, int]] | None] = decimal_parts_py
data_frames = data_frames_py
level_frame: Callable[..., tuple[int | None, str | None, list[tuple[str, list[Change]]]] | None] | None = None
"""The C reader of level-update frames, or None on the pure path: there a venue's decoder (msgspec, itself
compiled) reads every frame, faster than ``level_frame_py`` would."""
why_pure = "not loaded yet"
"""Why the Python loops run ('' when the C ones do)."""


def _load() -> None:
    global level_changes, apply_levels, trade_events, bar_span, decimal_parts, rfc3339, fresh_trades, Levels
    global data_frames, level_frame
    global why_pure
    if os.environ.get("TICKERTERM_PURE", "") not in ("", "0"):
        why_pure = "TICKERTERM_PURE is set"
        return
    try:
        from tickerterm.core import _native  # type: ignore[attr-defined]
    except ImportError:
        why_pure = "the C extension was not built at install: no C compiler?"
        return
    if getattr(_native, "API", None) != API:
        why_pure = f"the C extension is another build (API {getattr(_native, 'API', None)}, expected {API})"
        return
    level_changes, apply_levels, trade_events = _native.changes, _native.apply_levels, _native.trade_events
    bar_span, decimal_parts, rfc3339 = _native.bar_span, _native.decimal_parts, _native.rfc3339
    fresh_trades, Levels, data_frames = _native.fresh_trades, _native.Levels, _native.data_frames
    level_frame = _native.level_frame
    why_pure = ""


_load()


def implementation() -> str:
    """Which hot path runs, for ``tickerterm --version``."""
    return "hot path in C" if not why_pure else f"hot path in pure Python ({why_pure})"
