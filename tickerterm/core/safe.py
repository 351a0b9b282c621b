"""The trust boundary's text helpers: what comes from the network is made inert and scrubbed of secrets.

Text a venue controls (error messages, close reasons, channel names, product ids, REST bodies, URLs,
key-file content) can carry terminal control sequences: ``ESC ]2;…BEL`` sets the window title,
``ESC ]52;c;…`` writes the clipboard, ``ESC [6n`` makes the terminal answer on stdin. ``inert`` turns
every such character into a visible one, code point for code point, so the text keeps its length
(styled spans over it stay valid) and nothing in it is ever interpreted. It is applied where text
leaves the process for a person: the dashboard, log lines, stderr. NDJSON needs nothing more: JSON
escapes control characters itself.

``Redactor`` removes configured secrets from venue text (a venue may echo your key back in an error)
before it is shown, logged or emitted. ``clip`` bounds the length of venue text kept in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

REPLACEMENT = "\ufffd"
"""Shown for a control that has no picture of its own (C1, bidirectional overrides, separators)."""

_INVISIBLE = (
    *range(0x80, 0xA0),  # C1: 0x9b is a one-byte CSI, 0x9d a one-byte OSC
    0x2028,  # line separator
    0x2029,  # paragraph separator
    *range(0x202A, 0x202F),  # bidirectional embeddings and overrides
    *range(0x2066, 0x206A),  # bidirectional isolates
    0x200E,  # direction marks
    0x200F,
    0x061C,
    0xFEFF,  # the byte-order mark
)


def _table(keep: str) -> dict[int, str]:
    table = {c: chr(0x2400 + c) for c in range(0x20) if chr(c) not in keep}  # C0 -> control pictures
    table[0x7F] = "\u2421"  # DEL -> ␡
    table.update(dict.fromkeys(_INVISIBLE, REPLACEMENT))
    return table


_TEXT = _table("\n\t")
_LINE = _table("")


def inert(text: str, *, one_line: bool = False) -> str:
    """``text`` with every control character made visible: C0 controls as their pictures (ESC as ``␛``,
    BEL as ``␇``), DEL as ``␡``, C1 controls, bidirectional overrides and line separators as ``�``.
    Newline and tab are kept unless ``one_line`` (a log line or a one-line message: ``␊``, ``␉``).
    The result has exactly as many code points as ``text``."""
    if text.isprintable():  # the common case: nothing to do (False for any control, newline included)
        return text
    return text.translate(_LINE if one_line else _TEXT)


def is_inert(text: str, *, one_line: bool = False) -> bool:
    """True when ``inert`` would leave ``text`` as it is."""
    return inert(text, one_line=one_line) == text


def clip(text: str, limit: int = 500) -> str:
    """``text`` cut to ``limit`` characters (marked with ``…``): venue text kept or shown is bounded."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


MIN_SECRET = 4
"""Secrets shorter than this are not searched for (they would mangle ordinary text)."""


class Redactor:
    """Replaces every configured secret in a text by ``***``: the exact value, its URL-encoded forms
    (``quote`` and ``quote_plus``), wherever it stands (``/APIKEY-<key>``, ``?apiKey=<key>``, a quote)."""

    __slots__ = ("_forms",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) < MIN_SECRET:
                continue
            forms.update((secret, quote(secret, safe=""), quote_plus(secret, safe="")))
            for line in secret.splitlines():  # a PEM key quoted a line at a time
                if len(line) >= 16:
                    forms.add(line)
        self._forms = sorted(forms, key=len, reverse=True)  # longest first: no partial leftovers

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, "***")
        return text


_UNSAFE = dict.fromkeys(_LINE, None)


def strip_unsafe(text: str) -> str:
    """``text`` without the characters ``inert`` would replace (for text already laid out, where every
    one of them takes no cell: removing them keeps the layout)."""
    if text.isprintable():
        return text
    return text.translate(_UNSAFE)


class InertFormatter(logging.Formatter):
    """A log formatter whose lines carry no live control character: the message on one line (a venue
    text cannot start a forged log line), tracebacks with their newlines, everything else ``inert``."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return inert(super().formatMessage(record), one_line=True)

    def formatException(self, ei: Any) -> str:
        return inert(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return inert(super().formatStack(stack_info))
