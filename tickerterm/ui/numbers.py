"""Numbers people can read at a glance: every column of prices or sizes aligned on its decimal point.

A product's prices and sizes are shown with a fixed number of decimals: the most any of its values has
needed so far (trailing zeros aside), learned from what the venue sent and never fewer once seen, so a
column does not move when a new value arrives. A value is only ever padded with zeros, never rounded:
what is shown is still the venue's exact number.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_DECIMALS = 12
"""More decimals than this are not learned (a hostile value cannot widen every column): such a value is
shown as it came."""


def places(text: str) -> int:
    """Decimals ``text`` needs: ``"0.50000000"`` -> 1, ``"64000"`` -> 0."""
    dot = text.find(".")
    if dot < 0:
        return 0
    end = len(text)
    while end > dot + 1 and text[end - 1] == "0":
        end -= 1
    return end - dot - 1


def pad(text: str, decimals: int) -> str:
    """``text`` with exactly ``decimals`` decimals where that keeps its value exactly (zeros added, or
    trailing zeros removed); otherwise ``text`` unchanged."""
    dot = text.find(".")
    if dot < 0:
        if not text or not text.lstrip("-+").isdigit():
            return text
        return f"{text}.{'0' * decimals}" if decimals else text
    have = len(text) - dot - 1
    if have < decimals:
        return text + "0" * (decimals - have)
    if have > decimals and places(text) <= decimals:
        return text[: dot + 1 + decimals] if decimals else text[:dot]
    return text


class Precision:
    """Decimals per (venue, product, field): ``field`` is ``price`` or ``size``."""

    def __init__(self) -> None:
        self._decimals: dict[tuple[str, str, str], int] = {}

    def learn(self, venue: str, product: str, field: str, texts: Sequence[str | None]) -> int:
        """The decimals to show ``field`` of the product with, after seeing ``texts``."""
        key = (venue, product, field)
        decimals = self._decimals.get(key, 0)
        for text in texts:
            if text:
                n = places(text)
                if decimals < n <= MAX_DECIMALS:
                    decimals = n
        self._decimals[key] = decimals
        return decimals

    def show(self, venue: str, product: str, field: str, text: str | None) -> str | None:
        """``text`` with the product's decimals (learning from it first)."""
        if not text:
            return text
        return pad(text, self.learn(venue, product, field, [text]))


def align(cells: Sequence[str]) -> list[str]:
    """Cells of one column with their decimal points in one cell: integer parts right-aligned, decimals
    left-aligned (a cell that is not a number, such as ``—``, is right-aligned with the integer parts)."""
    whole: list[str] = []
    frac: list[str] = []
    for cell in cells:
        dot = cell.find(".")
        if dot < 0 or not _numeric(cell):
            whole.append(cell)
            frac.append("")
        else:
            whole.append(cell[:dot])
            frac.append(cell[dot:])
    wide = max((len(w) for w in whole), default=0)
    tail = max((len(f) for f in frac), default=0)
    return [f"{w:>{wide}}{f:<{tail}}" for w, f in zip(whole, frac, strict=True)]


def _numeric(cell: str) -> bool:
    body = cell.lstrip("+-")
    return bool(body) and body[0].isdigit()
