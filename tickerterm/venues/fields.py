"""Checks on the values venues send, shared by every adapter.

Prices and sizes stay the venue's exact text; these only make sure the text is what it claims to be.
Anything else makes the frame malformed (the parser turns the exception into a ``FrameError``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from tickerterm.core.events import value_of

decode_exact = msgspec.json.Decoder(float_hook=Decimal).decode
"""JSON with numbers that have a fraction decoded to ``Decimal`` from their own text: exact, never a float
(for venues that send prices as JSON numbers)."""

_INF = float("inf")


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
    """A finite decimal string that may be negative (a change, a funding rate, a position)."""
    t = text(value)
    if not -_INF < float(t) < _INF:
        raise ValueError(f"not a finite number: {t[:20]!r}")
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


def integer(value: Any) -> int:
    """An integer (a sequence number, an update id): TypeError for anything else, bools included."""
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def number(value: Any) -> str:
    """A JSON number decoded by ``decode_exact`` (``Decimal``, or an int) as exact decimal text; it must be
    finite and non-negative."""
    if type(value) is int:
        if value < 0:
            raise ValueError("negative")
        return str(value)
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise TypeError(f"expected a non-negative number, got {type(value).__name__}")
    return format(value, "f")


def change_percent(last: str, opened: str, places: str) -> str | None:
    """The change from ``opened`` to ``last`` in percent, rounded to ``places`` (e.g. ``"0.01"``), exact
    arithmetic; None when ``opened`` is zero."""
    base = Decimal(opened)
    if base == 0:
        return None
    return format(((Decimal(last) - base) / base * 100).quantize(Decimal(places)), "f")
