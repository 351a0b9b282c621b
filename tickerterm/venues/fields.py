"""Checks on the values venues send, shared by every adapter.

Prices and sizes stay the venue's exact text; these only make sure the text is what it claims to be.
Anything else makes the frame malformed (the parser turns the exception into a ``FrameError``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from tickerterm.core.events import MAX_DIGITS, value_of

decode_exact = msgspec.json.Decoder(float_hook=Decimal).decode
"""JSON with numbers that have a fraction decoded to ``Decimal`` from their own text: exact, never a float
(for venues that send prices as JSON numbers)."""


def text(value: Any) -> str:
    """A decimal as the venue's string; TypeError for anything but a string."""
    if type(value) is not str:
        raise TypeError(f"expected a decimal string, got {type(value).__name__}")
    return value


def amount(value: Any) -> str:
    """A price or size: a finite, non-negative decimal string, returned as it came."""
    t = text(value)
    value_of(t)
    return t


def signed(value: Any) -> str:
    """Plain decimal text that may be negative (a change, a funding rate, a position): an optional ``-``,
    then what ``amount`` takes."""
    t = text(value)
    value_of(t[1:] if t[:1] == "-" else t)
    return t


def optional_amount(obj: dict[str, Any], key: str) -> str | None:
    """``obj[key]`` as an amount; None when absent, null or empty."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    return amount(value)


def optional_signed(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    return signed(value)


LARGEST_INT = 2**63 - 1
"""Sequence numbers, ids and millisecond times fit in 64 bits on every venue; a larger integer (JSON
allows 400 digits) is malformed, not an ``OverflowError`` later."""


def integer(value: Any) -> int:
    """An integer (a sequence number, an update id) within 64 bits: TypeError for anything else, bools
    included; ValueError when it is out of range."""
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    if not -LARGEST_INT <= value <= LARGEST_INT:
        raise ValueError("integer out of range")
    return value


def whole(value: Any) -> int:
    """An integer sent as a JSON integer or as ASCII digits (``"1688998200"``), within 64 bits."""
    if type(value) is str:
        if not (value.isascii() and value.isdigit()) or len(value) > 19:
            raise ValueError(f"not an integer: {value[:20]!r}")
        value = int(value)
    return integer(value)


def millis(value: Any) -> float:
    """A venue time in integer milliseconds as UNIX seconds (64-bit range, see ``integer``)."""
    return integer(value) / 1000


def optional_millis(value: Any) -> float | None:
    """``millis`` for a time that may be absent (None, or not an integer: then the caller's own)."""
    if type(value) is not int:
        return None
    return millis(value)


MAX_EXPONENT = 40
"""Prices and sizes sent as JSON numbers are within 10**-40 .. 10**40: ``1e-999999999`` is valid JSON and a
billion characters once written out."""


def number(value: Any) -> str:
    """A JSON number decoded by ``decode_exact`` (``Decimal``, or an int) as exact decimal text; it must be
    finite, non-negative, of at most ``MAX_DIGITS`` digits and within 10**±``MAX_EXPONENT``. The bounds
    are checked before the number is written out."""
    if type(value) is int:
        if not 0 <= value <= LARGEST_INT:
            raise ValueError("integer out of range")
        return str(value)
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise TypeError(f"expected a non-negative number, got {type(value).__name__}")
    shape = value.as_tuple()
    exponent = shape.exponent
    assert isinstance(exponent, int)  # finite
    if len(shape.digits) > MAX_DIGITS or not -MAX_EXPONENT <= exponent <= value.adjusted() <= MAX_EXPONENT:
        raise ValueError("number out of range")
    return format(value, "f")


def change_percent(last: str, opened: str, places: str) -> str | None:
    """The change from ``opened`` to ``last`` in percent, rounded to ``places`` (e.g. ``"0.01"``), exact
    arithmetic; None when ``opened`` is zero."""
    base = Decimal(opened)
    if base == 0:
        return None
    return format(((Decimal(last) - base) / base * 100).quantize(Decimal(places)), "f")
