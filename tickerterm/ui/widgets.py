"""The five panels. Each is one rendered widget (no DataTable: a single render per tick is far cheaper
over SSH) that the app's render tick asks to ``sync`` from the store; a panel re-renders only when the
store's version counter for its data, or the view, changed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import io
import itertools
import math
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from rich.console import Console, Group, RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.color import Color
from textual.filter import LineFilter
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from tickerterm.core.candles import INTERVALS, Bar
from tickerterm.core.consolidated import depth
from tickerterm.core.events import Ticker
from tickerterm.core.health import ConnectionHealth, close_meaning
from tickerterm.core.safe import inert, strip_unsafe
from tickerterm.core.store import Store
from tickerterm.ui.numbers import Precision, align, pad, places

LEARN_LEVELS = 50
"""Book levels per side and recent trades a product's decimals are learned from on each frame."""
INTERVAL_NAMES = {seconds: name for name, seconds in INTERVALS.items()}
"""The intervals built from trades, by seconds (a venue may offer more: ``View.intervals``)."""


@dataclass(slots=True)
class VenueView:
    """What the view keeps of a venue while another venue's product is selected."""

    products: list[str]
    channels: dict[str, str] = field(default_factory=dict)
    intervals: dict[int, str] = field(default_factory=lambda: dict(INTERVAL_NAMES))
    subscriptions: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class View:
    """What the user chose to look at; panels re-render when it changes.

    ``venue``, ``products``, ``channels``, ``intervals`` and ``subscriptions`` are those of the venue of
    the selected product; with several venues (``venues``) selecting another venue's product swaps them
    (``select``), so every panel shows the selected (venue, product) and channel keys act on its venue."""

    venue: str
    products: list[str]
    selected: int = 0
    interval: int = 300
    grouping: str | None = None
    subscriptions: dict[str, list[str]] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    """Panel kind (``ticker``, ``book``, ``trades``, ``candles``) -> the venue's channel name."""
    simulated: bool = False
    connecting: bool = True
    """No subscription is known yet: panels say so instead of calling a channel off."""
    intervals: dict[int, str] = field(default_factory=lambda: dict(INTERVAL_NAMES))
    """Candle intervals ``i`` cycles through (seconds -> name): the venue's."""
    precision: Precision = field(default_factory=Precision)
    """Decimals per product for prices and sizes (every panel shows a product's numbers alike)."""
    venues: dict[str, VenueView] = field(default_factory=dict)
    """Every venue on the screen, in order (empty or one: a single venue)."""
    assets: dict[str, list[Any]] = field(default_factory=dict)
    """Consolidated assets and their markets (``core.consolidated.Member``), for the consolidated ladder."""
    apart: list[str] = field(default_factory=list)
    """Markets of one base kept apart for their quote, said under the consolidated rows."""
    consolidated: bool = False
    """The ladder shows the consolidated book of the selected product's asset (``v``)."""
    version: int = 0
    _learned: tuple[int, ...] = ()
    """The versions ``learn`` last looked at."""

    @property
    def product(self) -> str:
        return self.products[self.selected] if self.products else ""

    @property
    def several(self) -> bool:
        return len(self.venues) > 1

    @property
    def markets(self) -> list[tuple[str, str]]:
        """Every (venue, product) on the screen, venue by venue."""
        if not self.several:
            return [(self.venue, p) for p in self.products]
        return [
            (name, p)
            for name, v in self.venues.items()
            for p in (self.products if name == self.venue else v.products)
        ]

    @property
    def market_index(self) -> int:
        """The selected product's place in ``markets``."""
        if not self.several:
            return self.selected
        before = 0
        for name, v in self.venues.items():
            if name == self.venue:
                return before + self.selected
            before += len(v.products)
        return self.selected

    def select(self, index: int) -> None:
        """Select ``markets[index]`` (modulo their number), swapping in its venue's channels and intervals."""
        markets = self.markets
        if not markets:
            return
        venue, product = markets[index % len(markets)]
        if venue != self.venue and venue in self.venues:
            here = self.venues.get(self.venue)
            if here is not None:  # what changed while this venue was selected stays with it
                here.products, here.subscriptions = self.products, self.subscriptions
            there = self.venues[venue]
            self.venue, self.products = venue, there.products
            self.channels, self.subscriptions = there.channels, there.subscriptions
            self.intervals = there.intervals
            if self.interval not in self.intervals:
                self.interval = min(self.intervals, key=lambda s: abs(s - self.interval))
        self.selected = self.products.index(product)

    def asset(self) -> str | None:
        """The consolidated asset the selected product belongs to (or the first, when it is in none)."""
        for name, members in self.assets.items():
            if any(m.venue == self.venue and m.product == self.product for m in members):
                return name
        return next(iter(self.assets), None)

    def channel_on(self, kind: str) -> bool:
        name = self.channels.get(kind)
        return bool(name and name in self.subscriptions and (self.subscriptions[name] or kind == "heartbeat"))

    def changed(self) -> None:
        self.version += 1

    def learn(self, store: Store) -> None:
        """Every product's decimals from all it shows (ticker, top of book, recent trades) before any
        panel draws it, so each panel shows a number alike whichever of them draws first."""
        seen = (self.version, store.tickers_version, store.books_version, store.tape_version)
        if seen == self._learned:
            return  # nothing new to learn from: most frames of a quiet market
        self._learned = seen
        prec = self.precision
        for venue, product in self.markets:
            key = (venue, product)
            tick = store.tickers.get(key)
            book = store.books.get(key)
            tape = store.tapes.get(key)
            prices: list[str | None] = [tick.price, tick.bid, tick.ask] if tick else []
            sizes: list[str | None] = []
            if book is not None:
                bids, asks = book.top(LEARN_LEVELS)
                prices += [p for p, _ in bids + asks]
                sizes += [q for _, q in bids + asks]
            if tape:
                recent = list(itertools.islice(reversed(tape), LEARN_LEVELS))
                prices += [t.price for t in recent]
                sizes += [t.size for t in recent]
            prec.learn(venue, product, "price", prices)
            prec.learn(venue, product, "size", sizes)


def inert_renderable(renderable: RenderableType) -> RenderableType:
    """``renderable`` with all its text made inert (``core.safe.inert``) before it is laid out: outside
    text (a venue's error, a close reason) shows its control characters instead of sending them to the
    terminal. ``inert`` keeps the length of a text, so the styles over it stay where they were."""
    if isinstance(renderable, str):
        return inert(renderable)
    if isinstance(renderable, Text):
        plain = renderable.plain
        safe = inert(plain)
        if safe is not plain:
            renderable.plain = safe
        return renderable
    if isinstance(renderable, Table):
        for column in renderable.columns:
            column._cells[:] = [inert_renderable(cell) for cell in column._cells]
        return renderable
    if isinstance(renderable, Group):
        renderable.renderables[:] = [inert_renderable(r) for r in renderable.renderables]
    return renderable


class InertLines(LineFilter):
    """The last guard before the terminal, for every widget (Textual's own included): a control
    character still in laid-out text is removed (each takes no cell, so the layout is unchanged).
    Panels show them visibly (``inert_renderable``); this catches whatever another path lets through."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        out = segments
        for i, segment in enumerate(segments):
            text = segment.text
            if segment.control or text.isprintable():
                continue
            clean = strip_unsafe(text)
            if clean != text:
                if out is segments:
                    out = list(segments)
                out[i] = Segment(clean, segment.style, segment.control)
        return out


class Panel(Widget, can_focus=True):
    """A focusable panel with a title rule. ``sync`` re-renders it when its inputs changed, and only
    the lines whose content changed are sent to the terminal (a line-API widget with a line diff)."""

    DEFAULT_CSS = """
    Panel { border: none; border-top: solid $panel; border-title-color: $text-muted; border-title-style: bold;
            padding: 0 1 0 0; }
    Panel:focus { border-top: heavy $primary; border-title-color: $text-primary; }
    """
    kind: ClassVar[str] = ""
    title: ClassVar[str] = ""
    key: ClassVar[str] = ""
    min_interval: float = 0.0
    """Shortest time between two renders, seconds (the chart is expensive)."""
    expensive: ClassVar[bool] = False
    """Drawing it takes tens of milliseconds (the chart): after a key it draws once the screen shows the
    key's effect, so the key is not kept waiting for it."""
    wrap: ClassVar[bool] = False
    """Long lines wrap to the panel's width (else they are cut with an ellipsis)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._stamp: tuple[Any, ...] | None = None
        self._last_render = 0.0
        self._lines: list[Strip] = []
        self._natural_height = 0
        self.renders = 0
        """How many times the panel re-rendered (tests and benchmarks read it)."""
        self.lines_sent = 0
        """How many lines were marked for the terminal (the rest were unchanged)."""
        self.cells_sent = 0
        """How many cells of those lines were marked (only the span that changed is sent)."""
        self.shown: RenderableType = ""
        self._job: Later | None = None
        self._next: tuple[Later, bool] | None = None
        self._title = ""
        self.set_title(f"{self.key} {self.title}" if self.key else self.title)

    def set_title(self, title: str) -> None:
        """Set the border title when it changes: assigning ``border_title`` repaints the whole panel
        even when the text is the same, which would defeat the per-line diff."""
        if title != self._title:
            self._title = title
            self.border_title = title

    def stamp(self, store: Store, view: View, now: float) -> tuple[Any, ...]:
        """What the panel's content depends on; a new value means re-render."""
        return (view.version,)

    def sync(self, store: Store, view: View, now: float, force: bool = False) -> bool:
        size = (self.size.width, self.size.height)
        stamp = (*self.stamp(store, view, now), *size)
        if not force and stamp == self._stamp:
            return False
        resized = self._stamp is None or self._stamp[-2:] != size
        wall = time.monotonic()  # the rate is real time's, whatever clock the data is shown by
        if not (force or resized) and self.min_interval and wall - self._last_render < self.min_interval:
            return False
        self._stamp = stamp
        self._last_render = wall
        shown = self.render_panel(store, view, now)
        if isinstance(shown, Later):
            self._draw_later(shown, full=force or resized)
            return True
        self.renders += 1
        self.shown = shown
        self._show(shown, full=force or resized)
        return True

    @property
    def drawing(self) -> bool:
        """Content is being made off the event loop (``Later``): the screen shows the previous one."""
        return self._job is not None

    def _draw_later(self, job: Later, full: bool) -> None:
        """Make ``job``'s content in the drawing thread and show it when ready: the event loop, and the
        keys it handles, never wait for it. One at a time; a newer job replaces one still waiting."""
        if self._job is not None:  # one is being drawn: the newest wish is drawn after it
            self._next = (job, full or (self._next is not None and self._next[1]))
            return
        self._job = job
        future = asyncio.get_running_loop().run_in_executor(_drawing_thread(), job.make)

        def done(f: asyncio.Future[RenderableType]) -> None:
            self._job = None
            if f.cancelled() or not self.is_mounted:
                return
            error = f.exception()
            shown = Text(f"cannot draw: {error}", style="dim") if error is not None else f.result()
            self.renders += 1
            self.shown = shown
            self._show(shown, full=full)
            waiting, self._next = self._next, None
            if waiting is not None:
                self._draw_later(*waiting)

        future.add_done_callback(done)

    def _show(self, renderable: RenderableType, full: bool) -> None:
        width, height = self.size.width, self.size.height
        if width <= 0 or height <= 0:
            self._lines = []
            return
        console = self.app.console
        options = console.options.update(
            width=width,
            min_width=width,
            max_width=width,
            height=None,
            no_wrap=not self.wrap,
            overflow="fold" if self.wrap else "ellipsis",
            highlight=False,
            justify=None,
        )
        style = self.rich_style
        rendered = console.render_lines(inert_renderable(renderable), options, style=style, pad=True)
        if len(rendered) != self._natural_height:  # panels of height auto follow their content
            self._natural_height = len(rendered)
            if self.styles.height is not None and self.styles.height.is_auto:
                self.refresh(layout=True)
        # simplify: adjacent segments of one style become one, so one colour code per run, not per cell
        lines = [Strip(segments, width).simplify() for segments in rendered[:height]]
        lines += [Strip.blank(width, style)] * (height - len(lines))
        old, self._lines = self._lines, lines
        if full or len(old) != len(lines):
            self.lines_sent += len(lines)
            self.refresh()
            return
        for y, (before, after) in enumerate(zip(old, lines, strict=True)):
            if before == after:
                # keep the strip the screen has drawn: Textual's strips cache themselves (a cycle), so
                # each one dropped is garbage for the cyclic collector, whose passes a key waits for
                lines[y] = before
            else:
                self.lines_sent += 1
                start, end = changed_span(before, after, width)
                self.cells_sent += end - start
                self.refresh(Region(start, y, end - start, 1))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(1, self._natural_height)

    def render_line(self, y: int) -> Strip:
        if y < len(self._lines):
            return self._lines[y]
        return Strip.blank(self.size.width, self.rich_style)

    def on_resize(self) -> None:
        if self.shown != "":
            self._show(self.shown, full=True)

    def plain(self) -> str:
        """What the panel shows, as plain text (for tests and screen readers of the source)."""
        console = Console(
            width=max(20, self.content_size.width),
            file=io.StringIO(),
            color_system=None,
            record=True,
            legacy_windows=False,
        )
        console.print(
            self.shown, no_wrap=not self.wrap, overflow="fold" if self.wrap else "ellipsis", crop=True
        )
        return console.export_text()

    def render_panel(self, store: Store, view: View, now: float) -> RenderableType | Later:
        raise NotImplementedError

    def off_message(self, view: View, kind: str, key: str) -> Text | None:
        if view.channel_on(kind):
            return None
        if view.connecting:
            return Text("connecting…", style="dim italic")
        name = view.channels.get(kind, kind)
        return Text(f"{name} is off — press {key} to subscribe", style="dim italic")


@dataclass(frozen=True, slots=True)
class Later:
    """Content made off the event loop: ``render_panel`` returns it for what takes tens of milliseconds
    (the chart's plotext); ``make`` runs in the drawing thread on data copied for it (never the store's
    own objects, which the loop goes on changing)."""

    make: Callable[[], RenderableType]


_DRAWING: list[concurrent.futures.ThreadPoolExecutor] = []


def _drawing_thread() -> concurrent.futures.ThreadPoolExecutor:
    """One thread for content made off the event loop (a pure-Python plot holds the GIL in slices of
    5 ms at most, so a key waits that long instead of the whole plot)."""
    if not _DRAWING:
        _DRAWING.append(concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tickerterm-draw"))
    return _DRAWING[0]


def changed_span(before: Strip, after: Strip, width: int) -> tuple[int, int]:
    """The cells ``[start, end)`` of a line that differ between two renders of it: only they are sent to
    the terminal (a price that changed in a ladder row is a few cells, not the row). The whole line when
    a character takes more than one cell (cells cannot be told from characters then). One span from the
    first change to the last: several spans per line measured worse (each is written with its own cursor
    move and colours: 36 -> 48 kB/s at 120x40)."""
    a, b = _cells(before), _cells(after)
    if a is None or b is None or len(a) != len(b):
        return 0, width
    n = len(a)
    start = 0
    while start < n and a[start] == b[start]:
        start += 1
    end = n
    while end > start and a[end - 1] == b[end - 1]:
        end -= 1
    return (start, end) if start < end else (0, width)


def _cells(strip: Strip) -> list[tuple[str, Style | None]] | None:
    """Each cell's character and style, or None when a character takes more than one cell."""
    out: list[tuple[str, Style | None]] = []
    for segment in strip:
        text, style = segment.text, segment.style
        if segment.cell_length != len(text):
            return None
        out.extend((ch, style) for ch in text)
    return out


@dataclass(slots=True)
class Column:
    """One column of a ``grid``: its cells as text (numbers aligned on their decimal point unless
    ``text``), a style per cell, and how much it matters: when the panel is too narrow the columns
    with the highest ``drop`` go first, so numbers are never cut."""

    header: str
    cells: list[str]
    styles: list[Style | str]
    drop: int = 0
    text: bool = False


def grid(columns: list[Column], width: int, header: Style | str = "bold") -> Text:
    """The columns that fit ``width`` (one space between), a header line, then one line per row."""
    for column in columns:
        if not column.text:
            column.cells = align(column.cells)
    widths = [max(len(c.header), *(len(x) for x in c.cells)) if c.cells else len(c.header) for c in columns]
    keep = set(range(len(columns)))
    for i in sorted(range(len(columns)), key=lambda i: -columns[i].drop):
        if sum(widths[j] + 1 for j in keep) - 1 <= width or columns[i].drop == 0:
            break
        keep.discard(i)
    shown = [i for i in range(len(columns)) if i in keep]
    out = Text(no_wrap=True, overflow="ellipsis")
    for n, i in enumerate(shown):
        c = columns[i]
        out.append(
            (" " if n else "") + (c.header.ljust if c.text else c.header.rjust)(widths[i]), style=header
        )
    rows = max((len(c.cells) for c in columns), default=0)
    for r in range(rows):
        out.append("\n")
        for n, i in enumerate(shown):
            c = columns[i]
            cell = c.cells[r] if r < len(c.cells) else ""
            if n:
                out.append(" ")
            out.append(cell.ljust(widths[i]) if c.text else cell.rjust(widths[i]), style=c.styles[r] or "")
    return out


# --- tickers --------------------------------------------------------------------------------------


class TickersTable(Panel):
    """Every product: last, 24h change, best bid/ask, spread, 24h volume; the selected one marked."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"tickers--up", "tickers--down", "tickers--selected"}
    DEFAULT_CSS = """
    TickersTable { height: auto; }
    TickersTable > .tickers--up { color: $success; text-style: bold; }
    TickersTable > .tickers--down { color: $error; text-style: bold; }
    TickersTable > .tickers--selected { text-style: bold; }
    """
    kind = "ticker"
    title = "Tickers"
    key = "1"
    min_interval = 0.2
    """Five redraws a second at most: every trade moves a row's last price and volumes (bytes over SSH;
    the ladder, where a trader watches the market move, keeps the full frame rate)."""
    FLASH = 0.6

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._last: dict[tuple[str, str], tuple[float, float, int]] = {}  # market -> (price, at, direction)

    def stamp(self, store: Store, view: View, now: float) -> tuple[Any, ...]:
        flashing = any(now - t < self.FLASH for _, t, _ in self._last.values())
        # best bid/ask come from the books when they are trusted, so book changes count too
        # without a ticker the last price comes from the tape, so trades count then
        tape = store.tape_version if any(m not in store.tickers for m in view.markets) else 0
        return (
            view.version,
            store.tickers_version,
            store.books_version,
            tape,
            flashing,
            store.consolidated_version,
            store.health_version if view.several else 0,
        )

    def render_panel(self, store: Store, view: View, now: float) -> RenderableType:
        up = self.get_component_rich_style("tickers--up", partial=True)
        down = self.get_component_rich_style("tickers--down", partial=True)
        selected = self.get_component_rich_style("tickers--selected", partial=True)
        prec = view.precision
        markets, chosen = view.markets, view.market_index
        derivatives = any((t := store.tickers.get(m)) is not None and t.mark is not None for m in markets)
        names = ["", "Product", " ", "Last", "24h Δ", "24h %", "Bid", "Ask", "Spread", "Vol 24h", "Notional"]
        drops = [0, 0, 0, 0, 6, 3, 1, 1, 5, 4, 7]
        if view.several:  # which venue each row is from, right after the product
            names.insert(2, "Venue")
            drops.insert(2, 0)
        if derivatives:  # perpetuals: the mark price and the funding rate with time to the next payment
            names += ["Mark", "Funding"]
            drops += [8, 2]
        columns = [
            Column(n, [], [], d, text=n.strip() in ("", "Product", "Venue"))
            for n, d in zip(names, drops, strict=True)
        ]
        for i, (venue, product) in enumerate(markets):
            tick = store.tickers.get((venue, product))
            book = store.books.get((venue, product))
            good = book if book is not None and book.state == "ok" else None
            price = tick.price if tick else None
            if price is None:  # venues without a ticker channel (0xArchive): the last trade
                tape = store.tapes.get((venue, product))
                price = tape[-1].price if tape else None
            bid = (good.best_bid[0] if good and good.best_bid else None) or (tick.bid if tick else None)
            ask = (good.best_ask[0] if good and good.best_ask else None) or (tick.ask if tick else None)
            mark = tick.mark if tick else None
            places = prec.learn(venue, product, "price", [price, bid, ask, mark])
            flash, flash_style = "", Style()
            if price is not None:
                value = float(price)
                prev = self._last.get((venue, product))
                if prev is None:
                    self._last[(venue, product)] = (value, 0.0, 0)
                elif value != prev[0]:
                    self._last[(venue, product)] = (value, now, 1 if value > prev[0] else -1)
                _, at, direction = self._last[(venue, product)]
                if now - at < self.FLASH and direction:  # a column of its own: Last never moves
                    flash, flash_style = ("▲", up) if direction > 0 else ("▼", down)
            pct = tick.change_pct_24h if tick else None
            pct_style = (
                up
                if pct and not pct.startswith("-") and float(pct)
                else down
                if pct and pct[0] == "-"
                else ""
            )
            spread = good.spread() if good is not None else _diff(ask, bid)
            volume = tick.volume_24h if tick else None
            notional = _notional(volume, price)
            cells: list[tuple[str, Style | str]] = [
                ("▶" if i == chosen else " ", ""),
                (product, selected if i == chosen else ""),
                (flash, flash_style),
                (pad(price, places) if price else "—", flash_style),
                (pad(_change(price, pct) or "—", places), ""),
                (f"{_signed(_percent(pct))}%" if pct else "—", pct_style),
                (pad(bid, places) if bid else "—", ""),
                (pad(ask, places) if ask else "—", ""),
                (pad(spread, places) if spread else "—", ""),
                (_short(volume) if volume else "—", ""),
                (_short(notional) if notional else "—", ""),
            ]
            if view.several:
                cells.insert(2, (venue, selected if i == chosen else ""))
            if derivatives:
                cells += [(pad(mark, places) if mark else "—", ""), (_funding(tick, now), "")]
            for column, (text, style) in zip(columns, cells, strict=True):
                column.cells.append(text)
                column.styles.append(style)
        out = grid(columns, max(20, self.size.width))
        if "ticker" in view.channels and not view.channel_on("ticker"):
            out.append("\n")
            out.append(
                "connecting…" if view.connecting else "ticker is off — press k to subscribe", style="dim"
            )
        if view.assets:
            _consolidated_rows(out, store, view, up, down)
        return out


def _consolidated_rows(out: Text, store: Store, view: View, up: Style, down: Style) -> None:
    """Under the venues' rows, one per consolidated asset: the best bid and ask across venues and where
    each is, the spread across venues, LOCKED or CROSSED, and each venue's book left out with why."""
    for asset in view.assets:
        c = store.consolidated.get(asset)
        out.append("\n")
        out.append(f"Σ {asset} ", style="bold")
        if c is None:
            out.append("best across venues: waiting for the books…", style="dim")
            continue
        price = view.precision.learn("*", asset, "price", [c.bid, c.ask])
        if c.market in ("crossed", "locked"):  # first: it must show on the narrowest screen
            out.append(f"{c.market.upper()} ", style=down if c.market == "crossed" else up)
        out.append(f"bid {pad(c.bid, price) if c.bid else '—'}")
        if c.bid_venue:
            out.append(f" {c.bid_venue}", style="dim")
        out.append(f"  ask {pad(c.ask, price) if c.ask else '—'}")
        if c.ask_venue:
            out.append(f" {c.ask_venue}", style="dim")
        if c.spread is not None:
            out.append(f"  spread {c.spread}")
            if c.bid and c.ask:
                out.append(_bps(c.spread, str((Decimal(c.bid) + Decimal(c.ask)) / 2)))
        for gone in c.excluded:
            out.append("\n")
            name = gone["venue"] if " " in gone["venue"] else f"{gone['venue']} {gone['product']}"
            out.append(f"  ✗ {name} not counted: {gone['reason']}", style="dim")
    for line in view.apart:
        out.append("\n")
        out.append(f"  {line}", style="dim")


def _notional(volume: str | None, price: str | None) -> str | None:
    """The 24h volume in the quote currency (base volume times the last price), for display."""
    if not volume or not price:
        return None
    try:
        return repr(float(volume) * float(price))
    except ValueError:
        return None


def _percent(text: str) -> str:
    """A percent for the table, two decimals (``-0.03448276`` -> ``-0.03``); NDJSON keeps it whole."""
    try:
        return format(Decimal(text).quantize(Decimal("0.01")), "f")
    except InvalidOperation:
        return text


def _funding(tick: Ticker | None, now: float) -> str:
    """``+0.0100% 3h12m``: the funding rate per period in percent, and the time to the next payment."""
    if tick is None or tick.funding_rate is None:
        return "—"
    try:
        pct = (Decimal(tick.funding_rate) * 100).quantize(Decimal("0.0001"))
    except InvalidOperation:
        return "—"
    text = f"{_signed(format(pct, 'f'))}%"
    if tick.next_funding is not None:
        left = max(0, int(tick.next_funding - now))
        text += f" {left // 3600}h{left % 3600 // 60:02d}m"
    return text


def _change(price: str | None, pct: str | None) -> str | None:
    """The absolute 24h change implied by the last price and the venue's percent, at the price's precision."""
    if not price or not pct:
        return None
    try:
        p, c = Decimal(price), Decimal(pct)
        opened = p / (1 + c / 100)
        delta = (p - opened).quantize(Decimal(1).scaleb(p.as_tuple().exponent))  # type: ignore[arg-type]
    except (InvalidOperation, ZeroDivisionError):
        return None
    return _signed(str(delta))


def _signed(text: str | None) -> str:
    if not text:
        return ""
    return text if text.startswith("-") else f"+{text}"


def _diff(a: str | None, b: str | None) -> str | None:
    if not a or not b:
        return None
    return format(Decimal(a) - Decimal(b), "f")


def _short(volume: str) -> str:
    """Volume with two decimals and a unit (`` ``, k, M, B) so a column's decimal points line up
    (display only; the exact figure is in the NDJSON output)."""
    try:
        v = float(volume)
    except ValueError:
        return volume
    if not math.isfinite(v):
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= size:
            return f"{v / size:.2f}{unit}"
    return f"{v:.2f} "


# --- trade tape -----------------------------------------------------------------------------------


class TradeTape(Panel):
    """The selected product's trades, newest first; the aggressor side in colour and as a marker."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"trade-tape--buy", "trade-tape--sell", "trade-tape--large"}
    DEFAULT_CSS = """
    TradeTape { height: 1fr; }
    TradeTape > .trade-tape--buy { color: $success; }
    TradeTape > .trade-tape--sell { color: $error; }
    TradeTape > .trade-tape--large { text-style: bold reverse; }
    """
    kind = "trades"
    title = "Trades"
    min_interval = 0.25
    """Four redraws a second at most: each new trade moves every line of the tape down, so each redraw
    rewrites the panel (the busiest panel's bytes halve; a key still redraws at once)."""
    key = "4"

    def stamp(self, store: Store, view: View, now: float) -> tuple[Any, ...]:
        tape = store.tapes.get((view.venue, view.product))
        return (view.version, id(tape), tape[-1].trade_id if tape else None, len(tape) if tape else 0)

    def render_panel(self, store: Store, view: View, now: float) -> RenderableType:
        off = self.off_message(view, "trades", "t")
        if off is not None:
            return off
        tape = store.tapes.get((view.venue, view.product))
        if not tape:
            return Text(f"waiting for {view.product} trades…", style="dim")
        rows = max(1, self.size.height)
        trades = list(tape)[-rows:][::-1]
        sizes = sorted(float(t.size) for t in tape)
        large = sizes[int(len(sizes) * 0.95)] if len(sizes) >= 20 else math.inf
        buy = self.get_component_rich_style("trade-tape--buy", partial=True)
        sell = self.get_component_rich_style("trade-tape--sell", partial=True)
        big = self.get_component_rich_style("trade-tape--large", partial=True)
        prec, venue, product = view.precision, view.venue, view.product
        dp = prec.learn(venue, product, "price", [t.price for t in trades])
        ds = prec.learn(venue, product, "size", [t.size for t in trades])
        prices = [pad(t.price, dp) for t in trades]
        amounts = [pad(t.size, ds) for t in trades]
        pw = max(len(x) for x in prices)
        sw = max(len(x) for x in amounts)
        # narrow: the milliseconds go first, then the clock; a number is never cut
        room = self.size.width - (3 + pw + 1 + sw)
        clock_width = 13 if room >= 13 else 9 if room >= 9 else 0
        out = Text(no_wrap=True, overflow="ellipsis")
        for t, price, size in zip(trades, prices, amounts, strict=True):
            ts = t.exch_ts if t.exch_ts is not None else t.recv_ts
            if clock_width:
                clock = time.strftime("%H:%M:%S", time.localtime(ts))
                if clock_width == 13:
                    clock += f".{int(ts * 1000) % 1000:03d}"
                out.append(f"{clock} ", style="dim")
            marker = "B▲" if t.side == "buy" else "S▼"
            style = buy if t.side == "buy" else sell
            if float(t.size) >= large:
                style = style + big
            out.append(f"{marker} {price:>{pw}} {size:>{sw}}", style=style)
            out.append("\n")
        out.rstrip()
        return out


# --- depth ladder ---------------------------------------------------------------------------------


class DepthLadder(Panel):
    """Top N asks over top N bids with cumulative-size bars, spread and mid; says so when the book is
    not trustworthy and never draws a broken book as if it were good."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "depth-ladder--bid",
        "depth-ladder--ask",
        "depth-ladder--warning",
    }
    DEFAULT_CSS = """
    DepthLadder { height: 1fr; }
    DepthLadder > .depth-ladder--bid { color: $success; }
    DepthLadder > .depth-ladder--ask { color: $error; }
    DepthLadder > .depth-ladder--warning { color: $warning; text-style: bold reverse; }
    DepthLadder.-unsafe { border-top: heavy $warning; }
    """
    kind = "book"
    title = "Depth"
    key = "2"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._scale = 0.0
        self._scale_key: tuple[str, str | None, int] = ("", None, 0)

    def stamp(self, store: Store, view: View, now: float) -> tuple[Any, ...]:
        if view.consolidated and view.assets:  # every venue's book of the asset counts
            return (view.version, store.books_version, store.consolidated_version, store.health_version)
        book = store.books.get((view.venue, view.product))
        return (view.version, id(book), book.version if book else -1, book.state if book else None)

    def render_panel(self, store: Store, view: View, now: float) -> RenderableType:
        if view.consolidated and view.assets:
            return self._consolidated(store, view)
        book = store.books.get((view.venue, view.product))
        self.set_class(book is not None and book.state in ("unsafe", "resyncing"), "-unsafe")
        group = f" ·{view.grouping}" if view.grouping else ""
        self.set_title(f"{self.key} {self.title} {view.product}{group}")
        off = self.off_message(view, "book", "b")
        if off is not None:
            return off
        if book is None or book.state == "empty":
            return Text(f"waiting for the {view.product} snapshot…", style="dim")
        height = max(4, self.size.height)
        width = max(20, self.size.width)
        n = max(1, (height - 3) // 2)  # the header, the spread line
        if view.grouping:
            bids, asks = book.grouped(view.grouping, n)
        else:
            bids, asks = book.top(n)
        out = Text(no_wrap=True, overflow="ellipsis")
        warning = self.get_component_rich_style("depth-ladder--warning", partial=True)
        trusted = book.state == "ok"
        if not trusted:
            label = "UNSAFE — not trusted" if book.state == "unsafe" else "RESYNCING — not trusted"
            reason = inert(book.reason, one_line=True)
            banner = [label, *textwrap.wrap(reason, width - 2, max_lines=2, placeholder="…")]
            for line in banner:
                out.append(f" {line} ".ljust(width)[:width], style=warning)
                out.append("\n")
            n = max(1, n - (len(banner) + 1) // 2)
            bids, asks = bids[:n], asks[:n]
        bid_style = self.get_component_rich_style("depth-ladder--bid", partial=True)
        ask_style = self.get_component_rich_style("depth-ladder--ask", partial=True)
        if not trusted:
            bid_style = ask_style = Style(dim=True, strike=True)
        cum_bids = _cumulative(bids)
        cum_asks = _cumulative(asks)
        # each level's bar is its own size: a change at one level redraws that line alone (cumulative
        # bars redrew every line behind it: the most bytes of the whole screen); Cum says the depth
        deepest = max((float(q) for _, q in bids + asks), default=0.0) or 1.0
        scale_key = (view.product, view.grouping, n)
        if not self._scale / 2 <= deepest <= self._scale or self._scale_key != scale_key:
            # the bar scale moves only when the depth outgrows it or halves: lines whose levels did not
            # change stay identical, and are not sent to the terminal again
            self._scale, self._scale_key = deepest * 1.25, scale_key
        top = self._scale
        prec, venue, product = view.precision, view.venue, view.product
        dp = (  # a group's price has the group's decimals (rounded the safe way by the book)
            places(view.grouping)
            if view.grouping
            else prec.learn(venue, product, "price", [p for p, _ in bids + asks])
        )
        ds = prec.learn(venue, product, "size", [q for _, q in bids + asks])
        base, _, quote = product.rsplit(":", 1)[-1].partition("-")  # CoinAPI's COINBASE:BTC-USD too
        heads = (f"Price {quote}".strip(), f"Size {base}".strip(), f"Cum {base}".strip())
        prices = [pad(p, dp) for p, _ in bids + asks]
        sizes = [pad(q, ds) for _, q in bids + asks]
        cum_texts = [f"{c:.{min(ds, 8)}f}" for c in cum_bids + cum_asks]
        pw = max(len(heads[0]), *(len(x) for x in prices)) if prices else len(heads[0])
        sw = max(len(heads[1]), *(len(x) for x in sizes)) if sizes else len(heads[1])
        cw = max(len(heads[2]), *(len(x) for x in cum_texts)) if cum_texts else len(heads[2])
        show_cum = width - (pw + sw + cw + 3) >= 8  # narrow: the bars alone show the depth
        bar_width = max(0, width - pw - sw - 2 - (cw + 1 if show_cum else 0))
        head = f"{heads[0]:>{pw}} {heads[1]:>{sw}}" + (f" {heads[2]:>{cw}}" if show_cum else "")
        out.append(head.ljust(width)[:width], style="bold")
        out.append("\n")

        def level(price: str, size: str, cum: float, style: Style) -> None:
            line = f"{pad(price, dp):>{pw}} {pad(size, ds):>{sw}} "
            if show_cum:
                line += f"{cum:>{cw}.{min(ds, 8)}f} "
            out.append(line, style=style)
            out.append(_bar(float(size) / top, bar_width), style=style)

        for (price, size), cum in reversed(list(zip(asks, cum_asks, strict=True))):
            level(price, size, cum, ask_style)
            out.append("\n")
        spread, mid = book.spread(), book.mid()
        middle = "one-sided book"
        if spread is not None and mid is not None:  # as much as fits: the spread first
            bps = _bps(spread, mid)
            for middle in (
                f"spread {pad(spread, dp)}{bps}  mid {mid}",
                f"spread {pad(spread, dp)}{bps}",
                f"spread {pad(spread, dp)}",
            ):
                if len(middle) <= width:
                    break
        out.append(middle.center(width)[:width], style="bold" if trusted else Style(dim=True))
        for (price, size), cum in zip(bids, cum_bids, strict=True):
            out.append("\n")
            level(price, size, cum, bid_style)
        return out

    def _consolidated(self, store: Store, view: View) -> Text:
        """Every counted venue's levels in one ladder, each marked with its venue; the best bid and ask
        across venues in the middle (CROSSED or LOCKED when so), and each book left out with why."""
        asset = view.asset() or ""
        members = view.assets.get(asset, [])
        self.set_class(False, "-unsafe")
        self.set_title(f"{self.key} {self.title} Σ {asset} ({len(members)} markets) · v: one venue")
        height = max(4, self.size.height)
        width = max(20, self.size.width)
        n = max(1, (height - 3) // 2)
        bids, asks, excluded = depth(store, members, n)
        warning = self.get_component_rich_style("depth-ladder--warning", partial=True)
        out = Text(no_wrap=True, overflow="ellipsis")
        for label, reason in excluded:
            out.append(f" ✗ {label}: {inert(reason, one_line=True)} ".ljust(width)[:width], style=warning)
            out.append("\n")
        n = max(1, n - (len(excluded) + 1) // 2)
        bids, asks = bids[:n], asks[:n]
        if not bids and not asks:
            out.append(f"no trusted book of {asset} yet", style="dim")
            return out
        prec = view.precision
        dp = prec.learn("*", asset, "price", [p for p, _, _ in bids + asks])
        ds = max((prec.learn(m.venue, m.product, "size", []) for m in members), default=0)
        prices = [pad(p, dp) for p, _, _ in bids + asks]
        sizes = [pad(q, ds) for _, q, _ in bids + asks]
        pw = max(5, *(len(x) for x in prices))
        sw = max(4, *(len(x) for x in sizes))
        out.append(f"{'Price':>{pw}} {'Size':>{sw}} Venue".ljust(width)[:width], style="bold")
        out.append("\n")
        bid_style = self.get_component_rich_style("depth-ladder--bid", partial=True)
        ask_style = self.get_component_rich_style("depth-ladder--ask", partial=True)
        best_bid = Decimal(bids[0][0]) if bids else None
        best_ask = Decimal(asks[0][0]) if asks else None
        for price, size, label in reversed(asks):
            through = best_bid is not None and Decimal(price) <= best_bid  # an ask at or under a bid
            out.append(
                f"{pad(price, dp):>{pw}} {pad(size, ds):>{sw}} {label}",
                style=warning if through else ask_style,
            )
            out.append("\n")
        c = store.consolidated.get(asset)
        middle = "one-sided"
        if best_bid is not None and best_ask is not None:
            spread = best_ask - best_bid
            state = " CROSSED" if spread < 0 else " LOCKED" if spread == 0 else ""
            middle = f"spread {spread}{_bps(str(spread), str((best_bid + best_ask) / 2))}{state}"
        elif c is not None and c.market != "empty":
            middle = c.market
        out.append(middle.center(width)[:width], style=warning if "CROSSED" in middle else "bold")
        for price, size, label in bids:
            through = best_ask is not None and Decimal(price) >= best_ask
            out.append("\n")
            out.append(
                f"{pad(price, dp):>{pw}} {pad(size, ds):>{sw}} {label}",
                style=warning if through else bid_style,
            )
        return out


def _bps(spread: str, mid: str) -> str:
    """`` (1.6 bps)``: the spread in basis points of the mid."""
    try:
        value = float(spread) / float(mid) * 10_000
    except (ValueError, ZeroDivisionError):
        return ""
    return f" ({value:.2g} bps)" if math.isfinite(value) else ""


def _cumulative(levels: Sequence[tuple[str, str]]) -> list[float]:
    total = 0.0
    out = []
    for _, size in levels:
        total += float(size)
        out.append(total)
    return out


_EIGHTHS = " ▏▎▍▌▋▊▉"


def _bar(fraction: float, width: int) -> str:
    """A horizontal bar ``fraction`` of ``width`` cells long, in eighths of a cell."""
    cells = max(0.0, min(1.0, fraction)) * width
    full = int(cells)
    part = _EIGHTHS[int((cells - full) * 8)] if full < width else ""
    return ("█" * full + part.strip()).ljust(width)


# --- candle chart ---------------------------------------------------------------------------------


class CandleChart(Panel):
    """OHLC candles with volume for the selected product (the venue's candles where it sends them for
    the interval, else built from trades). Redrawn at most once a second: plotext is expensive."""

    DEFAULT_CSS = """
    CandleChart { height: 1fr; }
    """
    kind = "candles"
    title = "Candles"
    key = "3"
    min_interval = 1.0
    expensive = True

    def stamp(self, store: Store, view: View, now: float) -> tuple[Any, ...]:
        return (view.version, store.candles_version)

    def render_panel(self, store: Store, view: View, now: float) -> RenderableType | Later:
        name = view.intervals.get(view.interval) or INTERVAL_NAMES.get(view.interval, f"{view.interval}s")
        series = store.candle_series(view.venue, view.product, view.interval)
        source = store.candle_source(view.venue, view.product, view.interval)
        if "candles" in view.channels and not view.channel_on("candles"):
            self.set_title(f"{self.key} {self.title} {view.product} {name}")
            off = self.off_message(view, "candles", "c")
            assert off is not None
            return off
        self.set_title(f"{self.key} {self.title} {view.product} {name} ({source})")
        if series is None or not len(series):
            hint = "" if view.channel_on("trades") or view.channel_on("candles") else " — press t or c"
            return Text(f"no {name} candles yet for {view.product}{hint}", style="dim")
        width, height = max(20, self.size.width), max(8, self.size.height)
        slots = max(2, (width - 12) // 3)  # three cells a bar: a body and a gap at any width
        bars = [_Candle.of(b) for b in list(series.bars)[-slots:]]  # copies: the loop changes the bars
        decimals = view.precision.learn(view.venue, view.product, "price", [b.close for b in bars])
        return Later(functools.partial(_plot_text, bars, width, height, decimals, slots))


@dataclass(frozen=True, slots=True)
class _Candle:
    """What the chart reads of a bar, copied on the event loop before the plot is drawn in its thread."""

    start: int
    open: str
    high: str
    low: str
    close: str
    volume: Decimal

    @classmethod
    def of(cls, bar: Bar) -> _Candle:
        return cls(bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume)


def _plot_text(bars: list[Any], width: int, height: int, decimals: int, slots: int) -> Text:
    return Text.from_ansi(_plot(bars, width, height, decimals, slots))


def _plot(bars: Sequence[Any], width: int, height: int, decimals: int = 2, slots: int = 0) -> str:
    """Candles (and volume) at a fixed width each: the x axis always has ``slots`` places and the bars
    fill it from the right, so a session with one bar shows one narrow candle, not one as wide as the
    chart."""
    from plotext._figure import _figure_class

    fig = _figure_class()  # our own instance: never plotext's global state
    fig._limit_size(False, False)  # plotext would clip to the real terminal; the widget is the canvas
    vol_height = 5 if height >= 14 else 0
    slots = max(slots, len(bars))
    xs = list(range(slots - len(bars), slots))
    if vol_height:
        fig.subplots(2, 1)
        fig.plotsize(width, height)
        top = fig.subplot(1, 1)
        top.plotsize(width, height - vol_height)
    else:
        fig.plotsize(width, height)
        top = fig
    top.theme("clear")
    top.candlestick(
        xs,
        {
            "Open": [float(b.open) for b in bars],
            "Close": [float(b.close) for b in bars],
            "High": [float(b.high) for b in bars],
            "Low": [float(b.low) for b in bars],
        },
    )
    top.xlim(-1, slots)
    ticks, price_labels = _price_ticks(bars, decimals)
    top.yticks(ticks, price_labels)
    top.xticks([])
    if vol_height:
        bottom = fig.subplot(2, 1)
        bottom.plotsize(width, vol_height)
        bottom.theme("clear")
        bottom.bar(xs, [float(b.volume) for b in bars], width=0.1, marker="sd")
        bottom.xlim(-1, slots)
        most = max(float(b.volume) for b in bars)
        label_width = max(len(x) for x in price_labels)  # both panes' axes in one column
        bottom.yticks([0.0, most], [f"{v:.3g}".rjust(label_width) for v in (0.0, most)])
        bottom.xticks([])
    text: str = fig.build()
    _dispose(fig)
    # the time axis is ours: plotext drops colliding labels, and which one it drops varied
    label_width = max(len(x) for x in price_labels)
    return text.rstrip("\n") + "\n" + _time_axis(bars, xs[0], slots, width, label_width)


def _dispose(fig: Any) -> None:
    """Break a plotext figure's cycles (each refers to its parent, master, active and dummy figures), so
    its thousand lists go when the figure does instead of waiting for the cyclic collector, whose passes
    a key would wait for."""
    stack, seen = [fig], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for value in vars(obj).values():
            items = value if isinstance(value, list) else [value]
            for item in items:
                for x in item if isinstance(item, list) else [item]:
                    if type(x).__module__.startswith("plotext"):
                        stack.append(x)
        vars(obj).clear()


def _time_axis(bars: Sequence[Any], first: int, slots: int, width: int, label_width: int) -> str:
    """``HH:MM`` under the bars, as many as fit with a space between them (the plot's area starts after
    the y labels and the axis, and spans ``slots + 1`` places from -1 to ``slots``)."""
    left = label_width + 1
    area = max(1, width - left - 1)
    line = [" "] * width
    free = 0
    for i, bar in enumerate(bars):
        col = left + round((first + i + 1) / (slots + 1) * (area - 1))
        label = time.strftime("%H:%M", time.localtime(bar.start))
        start = col - len(label) // 2
        if start < free or start + len(label) > width:
            continue
        if i % max(1, len(bars) // 4) and i != len(bars) - 1:
            continue  # about four labels: the first, every quarter
        line[start : start + len(label)] = label
        free = start + len(label) + 2
    return "".join(line).rstrip()


def _price_ticks(bars: Sequence[Any], decimals: int) -> tuple[list[float], list[str]]:
    """Five price labels at the product's decimals (plotext's own have as many as the division gives)."""
    low = min(float(b.low) for b in bars)
    high = max(float(b.high) for b in bars)
    if high <= low:
        high = low + 10.0**-decimals
    ticks = [low + (high - low) * i / 4 for i in range(5)]
    return ticks, [f"{t:.{decimals}f}" for t in ticks]


# --- connection health ----------------------------------------------------------------------------


class HealthPanel(Panel):
    """Per connection: state, uptime, retries and next retry, last close code with reason and meaning,
    gaps and the last gap, messages/s, last-message age, latency, subscriptions."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"health--ok", "health--bad", "health--warn"}
    DEFAULT_CSS = """
    HealthPanel { height: auto; }
    HealthPanel > .health--ok { color: $success; }
    HealthPanel > .health--bad { color: $error; text-style: bold; }
    HealthPanel > .health--warn { color: $warning; }
    """
    kind = "health"
    title = "Health"
    key = "5"
    wrap = True

    def stamp(self, store: Store, view: View, now: float) -> tuple[Any, ...]:
        # ages and rates tick once a second
        return (view.version, store.health_version, store.alerts_version, int(now))

    def render_panel(self, store: Store, view: View, now: float) -> RenderableType:
        ok = self.get_component_rich_style("health--ok", partial=True)
        bad = self.get_component_rich_style("health--bad", partial=True)
        warn = self.get_component_rich_style("health--warn", partial=True)
        out = Text()  # long lines (a reason, the subscriptions) wrap to the width the panel has
        if not store.health:
            return Text("no connection yet", style="dim")
        order = {name: i for i, name in enumerate(view.venues)}
        venue = None
        for n, h in enumerate(sorted(store.health.values(), key=lambda h: (order.get(h.venue, 99), h.conn))):
            if n:
                out.append("\n")
            if view.several and h.venue != venue:  # a section per venue
                venue = h.venue
                out.append(f"━━ {venue} ", style="bold")
                out.append(_venue_summary(store, venue), style="dim")
                out.append("\n")
            _health_lines(out, h, now, ok, bad, warn, self.size.width)
        if store.alerts:  # the alerts that fired, newest first
            out.append(f"\n● alerts {len(store.alerts)}", style=warn)
            for alert in list(store.alerts)[::-1][:3]:
                clock = time.strftime("%H:%M:%S", time.localtime(alert.recv_ts))
                out.append(f"\n  {clock} {inert(alert.rule, one_line=True)} ({alert.value})")
        rec = store.recording
        if rec is not None and rec.state != "closed":  # the recorder's health beside the feed's
            trouble = rec.state not in ("on",) or rec.lost
            out.append(f"\n● recording {rec.state}", style=bad if trouble else ok)
            out.append(
                f"\n  rows {rec.rows:,} · behind {rec.behind:,} · lost {rec.lost:,}",
                style=bad if rec.lost else "",
            )
            if rec.error:
                for line in textwrap.wrap(
                    inert(rec.error, one_line=True), max(20, self.size.width - 4), max_lines=2
                ):
                    out.append(f"\n  {line}", style=warn)
        return out


def _venue_summary(store: Store, venue: str) -> str:
    """``2 books ok · 1 UNSAFE``: the state of a venue's books at a glance."""
    states: dict[str, int] = {}
    for (v, _), book in store.books.items():
        if v == venue:
            states[book.state] = states.get(book.state, 0) + 1
    if not states:
        return "no book"
    return "books " + " · ".join(
        f"{count} {'ok' if state == 'ok' else state.upper()}"
        for state, count in sorted(states.items(), key=lambda sc: sc[0] != "ok")  # ok first, then trouble
    )


_STATE_STYLE = {
    "subscribed": "ok",
    "connected": "ok",
    "connecting": "warn",
    "retrying": "warn",
    "closed": "warn",
    "stale": "bad",
    "gave_up": "bad",
    "idle": "warn",
}


def _health_lines(
    out: Text, h: ConnectionHealth, now: float, ok: Style, bad: Style, warn: Style, width: int = 80
) -> None:
    """Short lines (they must fit a 40-column panel): state, retries, traffic, last close, integrity."""
    style = {"ok": ok, "warn": warn, "bad": bad}[_STATE_STYLE.get(h.state, "warn")]
    out.append("● ", style=style)
    out.append(f"{h.conn} ", style="bold")
    out.append(h.state.upper().replace("_", " "), style=style)
    uptime = h.uptime(now)
    if uptime is not None:
        out.append(f" up {_duration(uptime)}")
    out.append(f"\n  retries {h.retries}")
    if h.next_retry_at is not None and h.state == "retrying":
        out.append(f" · next in {max(0.0, h.next_retry_at - now):.1f}s (attempt {h.attempt})", style=warn)
    if h.last_failure and h.state in ("retrying", "connecting", "closed"):  # why, from the first failure
        failure = inert(f"failed: {h.last_failure}", one_line=True)
        for line in textwrap.wrap(failure, max(20, width - 6), max_lines=3, placeholder="…"):
            out.append(f"\n    {line}", style=warn)
    lat = h.latency(now)
    out.append(f"\n  {h.rate(now):,.0f} msg/s · age {_age(h.last_message_age(now))}")
    if lat is not None:
        out.append(f" · p50 {lat[0]:.0f}ms p99 {lat[1]:.0f}ms")
    if h.last_close_code is not None or h.last_close_reason:
        code = h.last_close_code if h.last_close_code is not None else "none"
        out.append(f"\n  close {code}: {close_meaning(h.last_close_code)}", style=warn)
        if h.last_close_reason and h.last_close_reason != close_meaning(h.last_close_code):
            out.append(f"\n    “{inert(h.last_close_reason, one_line=True)}”", style=warn)
    out.append(f"\n  gaps {h.gaps}", style=bad if h.gaps else "")
    if h.last_gap is not None:
        out.append(
            f" ({h.last_gap.text.removeprefix('sequence gap: ')}, {_age(now - h.last_gap.at)} ago)",
            style=bad,
        )
    out.append(f"\n  malformed {h.malformed} · unknown {h.unknown} · stale {h.stale_count}")
    if h.unsolicited:  # data for products nobody asked for: dropped, but worth knowing about
        out.append(f" · not asked {h.unsolicited}", style=warn)
    message, style = (
        (f"gave up: {h.gave_up_reason}", bad)
        if h.gave_up_reason
        else ((f"venue error: {h.errors[-1][1]}", warn) if h.errors else ("", warn))
    )
    # venue text: made inert before Rich sees it (Rich silently drops BEL, CR and a few others); the
    # reason for giving up is shown whole, a venue's passing error in at most four lines
    message = inert(message, one_line=True)
    whole = bool(h.gave_up_reason)
    for line in textwrap.wrap(message, max(20, width - 4), max_lines=None if whole else 4, placeholder="…"):
        out.append(f"\n  {line}", style=style)  # the reason and its hint are worth whole lines
    subs = {c: p for c, p in h.subscriptions.items() if c != "heartbeats"}
    if subs:
        names = inert(" · ".join(f"{c} {len(p)}" if p else c for c, p in subs.items()), one_line=True)
        for line in textwrap.wrap(names, max(20, width - 4)):  # every subscription, over more lines
            out.append(f"\n  {line}", style="dim")


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.1f}s" if seconds < 60 else _duration(seconds)


# --- your orders ----------------------------------------------------------------------------------

_DONE = ("FILLED", "CANCEL", "EXPIRED", "REJECT", "DONE", "FAILED")
"""Order statuses that end an order (every venue's spelling starts with one of these)."""


class OrdersPanel(Panel):
    """Your open orders with their status, your fills with their fees, and your balances and positions,
    from the venue's user channel (a key is needed); newest first."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"orders--buy", "orders--sell", "orders--heading"}
    DEFAULT_CSS = """
    OrdersPanel { height: 1fr; }
    OrdersPanel > .orders--buy { color: $success; }
    OrdersPanel > .orders--sell { color: $error; }
    OrdersPanel > .orders--heading { text-style: bold; }
    """
    kind = "orders"
    title = "Orders"
    key = "6"

    def stamp(self, store: Store, view: View, now: float) -> tuple[Any, ...]:
        return (view.version, store.orders_version)

    def render_panel(self, store: Store, view: View, now: float) -> RenderableType:
        balances = store.balances.get(view.venue, {})
        orders = [o for (venue, _), o in reversed(store.orders.items()) if venue == view.venue]
        if not orders and not balances:
            return Text(
                "no orders or balances yet:\nthey come from the venue's\nuser channel, which needs a key\n"
                "(tickerterm --help: credentials)",
                style="dim",
            )
        heading = self.get_component_rich_style("orders--heading", partial=True)
        styles = {
            "buy": self.get_component_rich_style("orders--buy", partial=True),
            "sell": self.get_component_rich_style("orders--sell", partial=True),
        }
        width = max(20, self.size.width)
        live = [o for o in orders if not o.status.upper().startswith(_DONE)]
        fills = [o for o in orders if _nonzero(o.filled_size)]
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(f"Open orders ({len(live)})\n", style=heading)
        if live:
            out.append_text(_order_grid(live, view, styles, width, fills=False))
            out.append("\n")
        out.append(f"Fills ({len(fills)})\n", style=heading)
        if fills:
            out.append_text(_order_grid(fills, view, styles, width, fills=True))
            out.append("\n")
        out.append(f"Balances and positions ({len(balances)})", style=heading)
        if balances:
            names = sorted(balances)
            out.append("\n")
            out.append_text(
                grid(
                    [
                        Column("", names, [""] * len(names), text=True),
                        Column("", [balances[n] for n in names], [""] * len(names)),
                    ],
                    width,
                )
            )
        return out


def _order_grid(orders: list[Any], view: View, styles: dict[str, Style], width: int, *, fills: bool) -> Text:
    prec = view.precision
    columns = [  # narrow: a fill keeps its fee, an open order its status
        Column("Product", [], [], text=True),
        Column("Side", [], [], text=True),
        Column("Status", [], [], drop=2 if fills else 0, text=True),
        Column("Price", [], [], drop=1 if fills else 0),
        Column("Filled" if fills else "Size", [], []),
        Column("Avg" if fills else "Left", [], [], drop=3),
        Column("Fee" if fills else "Type", [], [], drop=0 if fills else 1, text=not fills),
    ]
    for o in orders[:200]:
        dp = prec.learn(view.venue, o.product, "price", [])
        ds = prec.learn(view.venue, o.product, "size", [])
        fee = f"{o.fee} {o.fee_asset}" if o.fee and o.fee_asset else (o.fee or "—")
        cells = [
            o.product,
            "B▲" if o.side == "buy" else "S▼",  # as on the tape: readable without colour
            _STATUS_SHORT.get(o.status, o.status),
            pad(o.price, dp) if o.price else "market",
            pad((o.filled_size if fills else _size_of(o)) or "—", ds),
            pad((o.avg_price if fills else o.leaves_size) or "—", dp if fills else ds),
            fee if fills else o.order_type,
        ]
        for column, cell in zip(columns, cells, strict=True):
            column.cells.append(cell)
            column.styles.append(styles.get(o.side, ""))
    return grid(columns, width)


_STATUS_SHORT = {"PARTIALLY_FILLED": "PARTIAL", "PARTIALLY_FILLED_CANCELLED": "PART_CXL"}
"""Display only (the NDJSON keeps the venue's word): a narrow panel keeps the order's size."""


def _size_of(order: Any) -> str | None:
    """An order's whole size: what is filled and what is left."""
    try:
        return format(Decimal(order.filled_size or "0") + Decimal(order.leaves_size or "0"), "f")
    except InvalidOperation:
        return order.leaves_size  # type: ignore[no-any-return]


def _nonzero(text: str | None) -> bool:
    try:
        return bool(text) and Decimal(text or "0") != 0
    except InvalidOperation:
        return False
