"""Alerts: rules checked against what the store holds after each frame, and on a clock.

Rules are short text, as on the command line (``--alert``) and in the config file::

    BTC-USD > 65000            the price crosses above 65000 (fires once per crossing, re-arms below)
    BTC-USD < 60000            ... crosses below
    ETH-USD move 1% 5m         the price moved 1% or more (either way) within 5 minutes
    BTC-USD spread > 5         the best ask minus the best bid is wider than 5 (a trusted book only)
    BTC-USD unsafe > 10s       the book has not been trustworthy for more than 10 seconds
    BTC-USD quiet 30s          no trade and no ticker for 30 seconds
    reconnects > 3 in 10m      more than 3 reconnects within 10 minutes
    latency > 500ms            the p99 of venue-to-here latency is above 500 ms
    gave up                    a connection gave up

A product may carry its venue (``coinbase:BTC-USD > 65000``). Like the cbpro seed's ``PriceMonitor``, a
crossing fires when the previous price was below the level and the current one is at or above it (not
while the price stays above); every rule re-arms once its condition has stopped holding.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from tickerterm.core.errors import ConfigError
from tickerterm.core.events import Alert, Event, GaveUp, Ticker, Trade
from tickerterm.core.store import Store

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PRODUCT = r"(?P<product>[A-Za-z0-9:._/-]+)"
_NUMBER = r"(?P<level>[0-9]+(?:\.[0-9]+)?)"
_SECONDS = r"(?P<seconds>[0-9]+(?:\.[0-9]+)?)(?P<unit>ms|s|m|h)"
_FORMS = [
    ("cross", re.compile(rf"^{_PRODUCT}\s*(?P<op>>=|<=|>|<)\s*{_NUMBER}$")),
    ("move", re.compile(rf"^{_PRODUCT}\s+move\s+(?P<pct>[0-9]+(?:\.[0-9]+)?)%\s+{_SECONDS}$")),
    ("spread", re.compile(rf"^{_PRODUCT}\s+spread\s*>\s*{_NUMBER}$")),
    ("unsafe", re.compile(rf"^{_PRODUCT}\s+unsafe\s*>\s*{_SECONDS}$")),
    ("quiet", re.compile(rf"^{_PRODUCT}\s+quiet\s+{_SECONDS}$")),
    ("reconnects", re.compile(rf"^reconnects\s*>\s*(?P<count>[0-9]+)\s+in\s+{_SECONDS}$")),
    ("latency", re.compile(rf"^latency\s*>\s*{_SECONDS}$")),
    ("gave_up", re.compile(r"^gave[ _]up$")),
]
_WORDS = {"spread", "move", "unsafe", "quiet", "reconnects", "latency", "gave"}
HELP = (
    "'BTC-USD > 65000', 'BTC-USD < 60000', 'ETH-USD move 1% 5m', 'BTC-USD spread > 5', "
    "'BTC-USD unsafe > 10s', 'BTC-USD quiet 30s', 'reconnects > 3 in 10m', 'latency > 500ms', 'gave up'"
)


@dataclass(slots=True)
class Rule:
    text: str
    kind: str
    venue: str | None = None
    product: str | None = None
    above: bool = True
    level: Decimal = Decimal(0)
    seconds: float = 0.0
    count: int = 0
    armed: bool = True
    """False once fired, until the condition stops holding."""
    last: Decimal | None = None
    window: Extremes | None = None
    """The lowest and highest price of the last ``seconds`` (``move`` rules)."""
    since: float | None = None
    seen: int = -1
    """Reconnects counted so far (``reconnects`` rules)."""
    times: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """When each reconnect was seen (``reconnects`` rules: every rule its own window)."""


class _Slice:
    __slots__ = ("high", "low", "number")

    def __init__(self, number: int, price: Decimal) -> None:
        self.number, self.low, self.high = number, price, price


class Extremes:
    """The lowest and highest price seen within the last ``seconds``, in constant memory and constant
    time per price however many prices come: the window is cut into ``SLICES`` time slices, each keeping
    its own low and high, and a slice goes once wholly older than the window (so the window reaches back
    ``seconds`` and at most one slice, a thousandth of it, more). The window's own low and high are kept
    as prices come; a slice that goes holding one of them has the rest looked over once."""

    SLICES = 1000

    __slots__ = ("high", "low", "seconds", "slices", "width")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.width = seconds / self.SLICES if seconds > 0 else 1.0
        self.slices: deque[_Slice] = deque()  # oldest first
        self.low: Decimal | None = None
        self.high: Decimal | None = None

    def add(self, now: float, price: Decimal) -> tuple[Decimal, Decimal]:
        """``price`` seen at ``now``: the window's (low, high) with it."""
        slices = self.slices
        number = math.floor(now / self.width)  # as cut below is reckoned: a time in the window stays
        if slices and number <= slices[-1].number:  # this slice (or a clock that stepped back)
            last = slices[-1]
            last.low, last.high = min(last.low, price), max(last.high, price)
        else:
            slices.append(_Slice(number, price))
        cut = (now - self.seconds) / self.width  # a slice that ends at or before the window's start goes
        low, high = self.low, self.high
        stale = low is None or high is None
        while slices[0].number + 1 <= cut:  # never the newest: it ends after now
            gone = slices.popleft()
            stale = stale or gone.low == low or gone.high == high
        if stale or low is None or high is None:
            low = min(sl.low for sl in slices)
            high = max(sl.high for sl in slices)
        else:
            low, high = min(low, price), max(high, price)
        self.low, self.high = low, high
        return low, high


def parse_rule(text: str) -> Rule:
    """One rule (ConfigError naming the forms it can take)."""
    clean = " ".join(text.split())
    for kind, pattern in _FORMS:
        m = pattern.match(clean)
        if m is None:
            continue
        groups = m.groupdict()
        rule = Rule(clean, kind)
        product = groups.get("product")
        if product and product.lower() in _WORDS:
            continue  # "spread > 1" names no product: not a crossing of a product called "spread"
        if product:
            venue, sep, name = product.partition(":")
            if sep and venue.islower():  # coinbase:BTC-USD (CoinAPI's COINBASE:BTC-USD is a product)
                rule.venue, rule.product = venue, name
            else:
                rule.product = product
        if groups.get("level"):
            rule.level = Decimal(groups["level"])
        if groups.get("op"):
            rule.above = groups["op"].startswith(">")
        if groups.get("pct"):
            rule.level = Decimal(groups["pct"])
        if groups.get("seconds"):
            rule.seconds = float(groups["seconds"]) * _UNITS[groups["unit"]]
        if groups.get("count"):
            rule.count = int(groups["count"])
        return rule
    raise ConfigError(f"not an alert rule: {text!r} (rules look like {HELP})")


class Alerts:
    """Checks rules against the store; ``check`` after each frame's events, ``tick`` on a clock. Both
    return the ``Alert`` events that fired (the caller applies and hands them on)."""

    def __init__(self, rules: list[Rule], venue: str) -> None:
        self.rules = rules
        self.venue = venue

    def _mine(self, rule: Rule) -> bool:
        return rule.venue is None or rule.venue == self.venue

    def add(self, text: str, normalize: Callable[[str], str] | None = None) -> Rule:
        """One more rule while the feed runs (ConfigError when it is not one)."""
        rule = parse_rule(text)
        if rule.product is not None and normalize is not None:
            rule.product = normalize(rule.product)
        self.rules.append(rule)
        return rule

    def check(self, events: list[Event], store: Store, now: float) -> list[Alert]:
        if not self.rules:
            return []
        fired: list[Alert] = []
        prices: dict[str, str] = {}
        for ev in events:
            cls = type(ev)
            if cls is Trade or cls is Ticker:
                price = ev.price  # type: ignore[attr-defined]
                if price:
                    prices[ev.product] = price  # type: ignore[attr-defined]
            elif cls is GaveUp:
                for rule in self.rules:
                    if rule.kind == "gave_up" and self._mine(rule):
                        fired.append(self._alert(rule, None, ev.reason, now))  # type: ignore[attr-defined]
        for product, text in prices.items():
            try:
                price = Decimal(text)
            except InvalidOperation:
                continue
            for rule in self.rules:
                if rule.product != product or not self._mine(rule):
                    continue
                if rule.kind == "cross":
                    fired += self._cross(rule, price, now)
                elif rule.kind == "move":
                    fired += self._move(rule, price, now)
        for rule in self.rules:
            if rule.kind == "spread" and self._mine(rule) and rule.product is not None:
                fired += self._spread(rule, store, now)
        return fired

    def tick(self, store: Store, now: float) -> list[Alert]:
        """Rules about time passing: an UNSAFE book, a quiet product, reconnects, latency."""
        fired: list[Alert] = []
        for rule in self.rules:
            if not self._mine(rule):
                continue
            if rule.kind == "unsafe" and rule.product is not None:
                state = store.book_state(self.venue, rule.product)
                bad = state in ("unsafe", "resyncing")
                rule.since = (rule.since or now) if bad else None
                fired += self._hold(rule, bad and now - (rule.since or now) > rule.seconds, state, now)
            elif rule.kind == "quiet" and rule.product is not None:
                last = _last_seen(store, self.venue, rule.product)
                if last is None:
                    rule.since = rule.since or now
                    last = rule.since
                quiet = now - last
                fired += self._hold(rule, quiet > rule.seconds, f"{quiet:.0f}s", now)
            elif rule.kind == "reconnects":
                retries = sum(h.retries for h in store.health.values() if h.venue == self.venue)
                if rule.seen >= 0:
                    rule.times.extend([now] * max(0, retries - rule.seen))
                rule.seen = retries
                window = [t for t in rule.times if now - t <= rule.seconds]
                fired += self._hold(rule, len(window) > rule.count, str(len(window)), now)
            elif rule.kind == "latency":
                worst = None
                for h in store.health.values():
                    lat = h.latency(now) if h.venue == self.venue else None
                    if lat is not None and (worst is None or lat[1] > worst):
                        worst = lat[1]
                high = worst is not None and worst / 1000 > rule.seconds
                fired += self._hold(rule, high, f"{worst:.0f}ms" if worst is not None else "", now)
        return fired

    # --- rule kinds ----------------------------------------------------------------------------

    def _cross(self, rule: Rule, price: Decimal, now: float) -> list[Alert]:
        previous, rule.last = rule.last, price
        if previous is None:
            return []
        crossed = previous < rule.level <= price if rule.above else previous > rule.level >= price
        return [self._alert(rule, rule.product, format(price, "f"), now)] if crossed else []

    def _move(self, rule: Rule, price: Decimal, now: float) -> list[Alert]:
        if rule.window is None:
            rule.window = Extremes(rule.seconds)
        low, high = rule.window.add(now, price)
        moved = (high - low) / low * 100 if low else Decimal(0)
        return self._hold(rule, moved >= rule.level, f"{moved:.2f}%", now)

    def _spread(self, rule: Rule, store: Store, now: float) -> list[Alert]:
        book = store.books.get((self.venue, rule.product or ""))
        if book is None or book.state != "ok":
            return []
        spread = book.spread()
        wide = spread is not None and Decimal(spread) > rule.level
        return self._hold(rule, wide, spread or "", now)

    def _hold(self, rule: Rule, holds: bool, value: str, now: float) -> list[Alert]:
        """Fire when the condition starts holding; re-arm when it stops."""
        if holds and rule.armed:
            rule.armed = False
            return [self._alert(rule, rule.product, value, now)]
        if not holds:
            rule.armed = True
        return []

    def _alert(self, rule: Rule, product: str | None, value: str, now: float) -> Alert:
        return Alert(self.venue, now, product or "", rule.text, value)


def _last_seen(store: Store, venue: str, product: str) -> float | None:
    tick = store.tickers.get((venue, product))
    tape = store.tapes.get((venue, product))
    times = [t for t in (tick.recv_ts if tick else None, tape[-1].recv_ts if tape else None) if t]
    return max(times) if times else None
