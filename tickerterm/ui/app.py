"""The dashboard: five panels over the store, redrawn on a timer, driven from the keyboard.

The stream worker writes to the store as fast as frames arrive; this app reads it on a timer (10 Hz
by default) and re-renders only the panels whose data or view changed. Channel keys subscribe and
unsubscribe on the running connection: the venue really receives the frames.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar, Protocol

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.filter import LineFilter
from textual.geometry import Size
from textual.screen import Screen
from textual.widgets import Footer, Header

from tickerterm.core.alerts import parse_rule
from tickerterm.core.errors import TickertermError
from tickerterm.core.safe import inert
from tickerterm.core.store import Store
from tickerterm.ui.notify import desktop_notification
from tickerterm.ui.screens import AlertForm, HelpScreen, ProductPicker
from tickerterm.ui.widgets import (
    CandleChart,
    DepthLadder,
    HealthPanel,
    InertLines,
    OrdersPanel,
    Panel,
    TickersTable,
    TradeTape,
    VenueView,
    View,
)

PANEL_KINDS = ("ticker", "book", "trades", "candles")
BEHIND = 2
"""Writes queued for the terminal from which the next frame waits (a frame is one write or two)."""
LOW_BANDWIDTH = {"book": 0.5, "ticker": 1.0, "trades": 1.0, "health": 2.0, "candles": 5.0, "orders": 1.0}
"""``--low-bandwidth``: seconds between two redraws of each panel at least (a key still redraws at once)."""


class FeedLike(Protocol):
    """What the app needs of a feed (``tickerterm.Feed`` is one)."""

    store: Store
    products: list[str]

    async def subscribe(self, channel: str, products: list[str] | None = None) -> None: ...

    async def unsubscribe(self, channel: str, products: list[str] | None = None) -> None: ...

    def subscriptions(self) -> dict[str, list[str]]: ...

    async def control(self, action: str, **args: Any) -> None: ...


class Recordable(Protocol):
    """A feed that records on demand (``tickerterm.Feed``; a replay does not)."""

    recorder: Any

    async def start_recording(self, recorder: Any) -> None: ...

    async def stop_recording(self) -> Any: ...


RecorderFactory = Callable[[Any], Awaitable[Any]]
"""Makes a started recorder for a new recording of the feed it is given (the command line gives one:
the app stays on core)."""

Opener = Callable[[Store], AbstractAsyncContextManager[FeedLike]]


class TickertermApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "tickerterm"
    BINDINGS: ClassVar[list[BindingType]] = [
        # first: the footer shows bindings in this order and cuts the rest on a narrow screen
        Binding("question_mark", "show_help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("k", "toggle_channel('ticker')", "Ticker", id="channel.ticker"),
        Binding("b", "toggle_channel('book')", "Book", id="channel.book"),
        Binding("t", "toggle_channel('trades')", "Trades", id="channel.trades"),
        Binding("c", "toggle_channel('candles')", "Candles", id="channel.candles"),
        Binding("n,right_square_bracket", "next_product", "Next", id="product.next"),
        Binding("p,left_square_bracket", "previous_product", "Prev", id="product.previous", show=False),
        Binding("slash", "pick_product", "Find", id="product.pick"),
        Binding("i", "cycle_interval", "Interval", id="chart.interval"),
        Binding("g", "cycle_grouping", "Group", id="ladder.grouping"),
        Binding("1", "focus_panel(1)", "Tickers", id="panel.tickers", show=False),
        Binding("2", "focus_panel(2)", "Depth", id="panel.depth", show=False),
        Binding("3", "focus_panel(3)", "Chart", id="panel.chart", show=False),
        Binding("4", "focus_panel(4)", "Tape", id="panel.tape", show=False),
        Binding("5", "focus_panel(5)", "Health", id="panel.health", show=False),
        Binding("z", "toggle_maximize", "Max", id="panel.maximize"),
        Binding("space", "toggle_pause", "Pause", id="display.pause"),
        Binding("left", "replay_seek(-60)", "Back 1m", id="replay.back", show=False),
        Binding("right", "replay_seek(60)", "On 1m", id="replay.forward", show=False),
        Binding("plus,equals_sign", "replay_speed(2.0)", "Faster", id="replay.faster", show=False),
        Binding("minus", "replay_speed(0.5)", "Slower", id="replay.slower", show=False),
        Binding("x", "replay_stop", "Stop replay", id="replay.stop", show=False),
        Binding("G", "replay_before_gap", "Before the gap", id="replay.before_gap", show=False),
        Binding("r", "toggle_record", "Record", id="record.toggle", show=False),
        Binding("L", "toggle_light", "Light/dark", id="display.theme", show=False),
        Binding("w", "next_watchlist", "Watchlist", id="product.watchlist", show=False),
        Binding("o,6", "toggle_orders", "Orders", id="panel.orders", show=False),
        Binding("a", "add_alert", "Alert", id="alert.add", show=False),
        Binding("v", "toggle_consolidated", "Consolidated", id="ladder.consolidated", show=False),
        # Ctrl-C quits, as in every terminal dashboard (Textual's own default only says to press ctrl+q)
        Binding("ctrl+c", "quit", "Quit", id="quit.interrupt", show=False, priority=True),
    ]
    KEYS: ClassVar[list[tuple[str, str]]] = [  # one line each at 80 columns: the help fits 80x24
        ("? / q, ctrl+c", "this help / quit"),
        ("ctrl+p", "command palette: every action"),
        ("k b t c", "ticker, book, trades, candles channel on / off"),
        ("n or ] / p or [", "next / previous product"),
        ("/", "find a product (fuzzy)"),
        ("w", "next watchlist ([watchlists] in the config file)"),
        ("i / g", "candle interval (the venue's) / ladder price grouping"),
        ("1 2 3 4 5", "focus tickers, depth, chart, tape, health"),
        ("o or 6", "your orders, fills and balances (needs a key)"),
        ("tab, shift+tab", "next / previous panel"),
        ("z", "maximise the focused panel (escape restores)"),
        ("space", "pause / resume the display (in a replay: the replay)"),
        ("← → + = - x", "replay: seek a minute, faster, slower, stop"),
        ("G", "replay: a minute before the last gap"),
        ("r", "start / stop recording (REC in the header)"),
        ("L", "light / dark (ctrl+p Theme: every theme, remembered)"),
        ("a", "new alert for the selected product (and the rules set)"),
        ("v", "several venues: the consolidated ladder of the product's asset"),
    ]

    def __init__(
        self,
        opener: Opener,
        *,
        venue: str,
        products: list[str],
        channels: dict[str, str],
        simulated: bool = False,
        fps: float = 10.0,
        clock: Callable[[], float] = time.time,
        light: bool = False,
        theme: str | None = None,
        store: Store | None = None,
        replay: bool = False,
        log_file: str | None = None,
        recorder: RecorderFactory | None = None,
        intervals: Mapping[str, int] | None = None,
        palette: str = "standard",
        keys: Mapping[str, str] | None = None,
        watchlists: Mapping[str, list[str]] | None = None,
        remember_theme: Callable[[str], None] | None = None,
        bell: bool = True,
        notify: bool = False,
        venues: Mapping[str, VenueView] | None = None,
        assets: Mapping[str, list[Any]] | None = None,
        apart: list[str] | None = None,
        low_bandwidth: bool = False,
        show_rate: bool = False,
    ) -> None:
        """``venues``: several venues on one screen (the feed is a ``tickerterm.Feeds``), each with its
        products, channels and intervals; ``venue``/``products``/``channels`` are then the first's.
        ``assets``: the consolidated assets and their markets (``core.consolidated.assets``)."""
        super().__init__()
        self.recorder_factory = recorder
        """Makes a recorder when ``r`` starts a recording (None: this session cannot record)."""
        self.log_file = log_file
        """Where log lines go (``-v``/``--log-file``): said in a toast at start and in the help."""
        self.opener = opener
        self.clock = clock
        self.store = store or Store(clock=clock)
        self.view = View(venue=venue, products=list(products), channels=dict(channels), simulated=simulated)
        if intervals:  # the venue's candle intervals, by name (``VenueAdapter.candle_intervals``)
            self.view.intervals = {seconds: name for name, seconds in intervals.items()}
            if self.view.interval not in self.view.intervals:
                self.view.interval = min(self.view.intervals, key=lambda s: abs(s - self.view.interval))
        if venues and len(venues) > 1:
            self.view.venues = dict(venues)
            first = self.view.venues.setdefault(venue, VenueView(list(products)))
            first.channels, first.intervals = self.view.channels, self.view.intervals
        self.view.assets = {name: list(members) for name, members in (assets or {}).items()}
        self.view.apart = list(apart or [])
        self.fps = fps
        self.feed: FeedLike | None = None
        self.feed_ready = asyncio.Event()
        self.paused = False
        self._last_draw = 0.0
        """When a frame last drew new data (monotonic seconds)."""
        self._dirty = False
        self._draw_pending = False
        self.replaying = replay
        """The feed replays history: space, arrows, + - and x drive the replay."""
        self.ticks = 0
        self._light = light
        self._theme = theme
        self.palette = palette
        """``standard`` (up/down in green/red) or ``colorblind`` (blue/orange)."""
        self._keys = dict(keys or {})
        self.watchlists = {name: list(ps) for name, ps in (watchlists or {}).items()}
        """Named product lists (the config file's ``[watchlists]``); ``w`` switches to the next."""
        self.watchlist: str | None = next(
            (name for name, ps in self.watchlists.items() if ps == list(products)), None
        )
        self._remember_theme = remember_theme
        self.bell_on_alert = bell
        """Ring the terminal bell when an alert fires (``bell = false`` in the config file: silent)."""
        self._alerts_seen = self.store.alerts_version
        self.desktop_notify = notify
        """Ask the terminal for a desktop notification per alert, where it has them (``ui.notify``)."""
        self._grouping_steps: list[str | None] = [None]
        self._laid_out_for = Size(0, 0)
        self._health_seen = -1
        self._inert_lines = InertLines()
        self.low_bandwidth = low_bandwidth
        """Slower panels for slow links (``LOW_BANDWIDTH``; the CLI also picks the terminal's colours)."""
        self.show_rate = show_rate
        """The bytes a second written to the terminal, measured, in the header (``--show-rate``)."""
        self.bytes_out = 0
        """Bytes written to the terminal so far (counted when ``show_rate``)."""
        self._rate_text = ""
        self._frame_time = 0.0
        """Seconds between frames while the terminal is behind (0: ``1 / fps``)."""
        self._slow_text = ""
        self.frames_held = 0
        """Frames not drawn because the terminal had not taken the previous ones."""
        self._rate_mark = (time.monotonic(), 0)
        self.sub_title = self._subtitle()

    def get_line_filters(self) -> list[LineFilter]:
        """Textual's filters, then ``InertLines``: no control character reaches the terminal as text."""
        return [*super().get_line_filters(), self._inert_lines]

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≋")
        yield TickersTable(id="tickers")
        with Horizontal(id="middle"):
            yield DepthLadder(id="ladder")
            yield CandleChart(id="chart")
            with Vertical(id="side"):
                yield TradeTape(id="tape")
                yield OrdersPanel(id="orders")
                yield HealthPanel(id="health")
        yield Footer(compact=True)

    @property
    def panels(self) -> list[Panel]:
        return list(self.query(Panel))

    def on_mount(self) -> None:
        if self._theme:
            self.theme = self._theme
        elif self._light:
            self.theme = "textual-light"
        if self._keys:
            self.set_keymap(self._keys)  # the config file's [keys]: binding id -> keys
        self.screen.set_class(self.palette == "colorblind", "-colorblind")
        self.screen.set_class(self.view.several, "-several")
        if self._remember_theme is not None:  # a theme chosen here (L, ctrl+p > Theme) is kept for next time
            remember = self._remember_theme
            self.theme_changed_signal.subscribe(self, lambda theme: remember(theme.name))
        self._layout_for(self.size.width, self.size.height)
        if self.low_bandwidth:
            for panel in self.panels:
                panel.min_interval = max(panel.min_interval, LOW_BANDWIDTH.get(panel.kind, 0.0))
        if self.show_rate:
            self._count_bytes()
            self.set_interval(1.0, self._say_rate, name="output-rate")
        if self.log_file:
            # the file's name first: a long directory folds in a toast, and the name stays whole
            where = os.path.dirname(self.log_file) or "."
            self.notify(f"logging to {os.path.basename(self.log_file)} in {where}", timeout=6)
        self.run_worker(
            self._run_feed(), name=f"stream:{self.view.venue}", group="streams", exit_on_error=False
        )
        self.set_interval(1.0 / self.fps, self._tick, name="render-tick")
        self.store.on_frame = self._data_arrived
        self.query_one("#ladder").focus()
        self.render_tick(force=True)

    def _layout_for(self, width: int, height: int) -> None:
        self._laid_out_for = self.size
        for screen in self.screen_stack:
            screen.set_class(width < 110 or height < 30, "-narrow")

    @property
    def frame_time(self) -> float:
        """Seconds between two frames that draw new data: ``1 / fps``, longer while the terminal is slow
        to take what is written (``_terminal_behind``)."""
        return self._frame_time or 1.0 / self.fps

    def _terminal_behind(self) -> bool:
        """True (skip this frame) when writes to the terminal are still queued: a slow link is not sent
        frame after frame to queue up (and block the app once the queue is full). Each frame skipped so
        lengthens the frame time by half, up to a second; each frame the terminal took shortens it again."""
        waiting = self.writes_waiting()
        base = 1.0 / self.fps
        if waiting >= BEHIND:
            self._frame_time = min(1.0, max(self._frame_time, base) * 1.5)
            self.frames_held += 1
            self._say_slow()
            return True
        if self._frame_time:
            shorter = self._frame_time / 1.2
            self._frame_time = 0.0 if shorter <= base else shorter
            self._say_slow()
        return False

    def writes_waiting(self) -> int:
        """Writes the terminal has not taken yet (Textual's output thread queues them)."""
        thread = getattr(self._driver, "_writer_thread", None)
        queue = getattr(thread, "_queue", None)
        return queue.qsize() if queue is not None else 0

    def _say_slow(self) -> None:
        text = f"SLOW TERMINAL {1 / self._frame_time:.1f} fps" if self._frame_time else ""
        if text != self._slow_text:
            self._slow_text = text
            self.sub_title = self._subtitle()

    def _count_bytes(self) -> None:
        """Count what the driver writes to the terminal (``--show-rate``)."""
        driver = self._driver
        if driver is None:
            return
        write = driver.write

        def counted(data: str) -> None:
            self.bytes_out += len(data.encode("utf-8", "replace"))
            write(data)

        driver.write = counted  # type: ignore[method-assign]

    def _say_rate(self) -> None:
        now = time.monotonic()
        since, before = self._rate_mark
        self._rate_mark = (now, self.bytes_out)
        if now > since:
            self._rate_text = f"out {(self.bytes_out - before) / (now - since) / 1000:.1f} kB/s"
            self.sub_title = self._subtitle()

    def _subtitle(self) -> str:
        parts = [" + ".join(self.view.venues) if self.view.several else self.view.venue]
        if self.view.simulated:
            parts.append("SIMULATED")
        trouble = connection_trouble(self.store, named=self.view.several)
        if trouble:
            parts.append(trouble)  # visible even when the health panel is not (80x24)
        refused = {p: r for h in self.store.health.values() for p, r in h.refused.items()}
        if refused:  # a product the venue refused, or never sent anything for, is named
            parts.append(", ".join(f"{p} {'refused' if r else 'no data'}" for p, r in refused.items()))
        if self.replaying:
            parts.append(replay_mark(self.store))
        rec = recording_mark(self.store)
        if rec:
            parts.append(rec)
        if self.paused:
            parts.append("PAUSED")
        if self._slow_text:
            parts.append(self._slow_text)
        if self._rate_text:
            parts.append(self._rate_text)
        return inert(" · ".join(parts), one_line=True)  # reasons in it may be a venue's text

    # --- data --------------------------------------------------------------------------------

    async def _run_feed(self) -> None:
        try:
            async with self.opener(self.store) as feed:
                self.feed = feed
                assets = getattr(feed, "assets", None)  # several venues: the consolidated assets
                if assets:
                    self.view.assets = {name: list(members) for name, members in assets.items()}
                self.view.apart = list(getattr(feed, "apart", None) or self.view.apart)
                self._sync_subscriptions()
                self.view.changed()
                self.feed_ready.set()
                await asyncio.Event().wait()  # until the app exits and cancels this worker
        except TickertermError as exc:
            self.notify(inert(str(exc)), title="feed", severity="error", timeout=30)

    def _data_arrived(self) -> None:
        """New data: draw it now if the last frame that drew data is at least a frame's time old (a quiet
        market shows a change at once); otherwise the next tick does (a busy one: ``fps`` times a second)."""
        self._dirty = True
        if self._draw_pending or self.paused:
            return
        if time.monotonic() - self._last_draw >= self.frame_time:
            self._draw_pending = True
            asyncio.get_running_loop().call_soon(self._draw_now)

    def _draw_now(self) -> None:
        self._draw_pending = False
        if self._dirty and time.monotonic() - self._last_draw >= self.frame_time:
            self.render_tick()

    def _tick(self) -> None:
        # the regular frame: data that came in since the last one, and what moves with time (ages, countdowns)
        if not self._dirty or time.monotonic() - self._last_draw >= 0.9 * self.frame_time:
            self.render_tick()

    def render_tick(self, force: bool = False, slow_later: bool = False) -> None:
        """Pull the store into the panels that changed (the timer calls this ``fps`` times a second).

        ``slow_later``: after a key, paint the cheap panels now and the chart (plotext, tens of ms)
        right after the screen has been updated, so the key's effect shows without waiting for it.
        """
        if self.paused and not force:
            return
        if not force and self._terminal_behind():
            return  # the data waits in the store: the next frame the terminal can take draws it
        if self._dirty:  # only frames that draw new data count against the frame rate
            self._last_draw = time.monotonic()
            self._dirty = False
        self.ticks += 1
        if self.size != self._laid_out_for:  # the layout follows the terminal size
            self._layout_for(self.size.width, self.size.height)
        if self.feed is not None:
            self._sync_subscriptions()
        if self.view.connecting and (
            any(h.state in ("connected", "subscribed") for h in self.store.health.values())
            or any(self.view.subscriptions.values())
        ):  # from now on a channel that is not subscribed is off (and says which key turns it on)
            self.view.connecting = False
            self.view.changed()
        if self.store.health_version != self._health_seen:
            self._health_seen = self.store.health_version
            subtitle = self._subtitle()
            if subtitle != self.sub_title:
                self.sub_title = subtitle
        if self.store.alerts_version != self._alerts_seen:
            self._say_alerts()
        now = self.clock()
        self.view.learn(self.store)
        later: list[Panel] = []
        with self.batch_update():
            for panel in self.panels:
                if panel.display and (panel.region.width or force):
                    if slow_later and panel.expensive:
                        later.append(panel)
                        continue
                    panel.sync(self.store, self.view, now, force=force)
        for panel in later:
            self.call_after_refresh(panel.sync, self.store, self.view, now, True)

    def _venue_feed(self, venue: str) -> FeedLike | None:
        """The feed of ``venue``: the feed itself, or one of several (``tickerterm.Feeds``)."""
        feeds = getattr(self.feed, "feeds", None)
        if isinstance(feeds, dict):
            return feeds.get(venue)
        return self.feed

    def _sync_subscriptions(self) -> None:
        """What each venue keeps subscribed, as the venue's feed says (a key press, a reconnect)."""
        view = self.view
        for name in view.venues if view.several else [view.venue]:
            feed = self._venue_feed(name)
            if feed is None:
                continue
            subs = feed.subscriptions()
            if name == view.venue:
                if subs != view.subscriptions:
                    view.subscriptions = subs
                    view.changed()
            elif subs != view.venues[name].subscriptions:
                view.venues[name].subscriptions = subs

    def _say_alerts(self) -> None:
        """A toast for each alert that fired since the last frame (and the bell, once)."""
        new = self.store.alerts_version - self._alerts_seen
        self._alerts_seen = self.store.alerts_version
        for alert in list(self.store.alerts)[-min(new, 5) :]:
            self.notify(
                inert(f"{alert.rule} ({alert.value})", one_line=True),
                title="ALERT",
                severity="warning",
                timeout=10,
            )
        if self.bell_on_alert:
            self.bell()
        if self.desktop_notify and self._driver is not None:
            for alert in list(self.store.alerts)[-min(new, 5) :]:
                sequence = desktop_notification(
                    "tickerterm alert", f"{alert.rule} ({alert.value})", os.environ
                )
                if sequence is not None:
                    self._driver.write(sequence)

    # --- actions -----------------------------------------------------------------------------

    async def action_toggle_channel(self, kind: str) -> None:
        """The channel of ``kind`` on or off at the selected product's venue (the venue gets the frames)."""
        channel = self.view.channels.get(kind)
        feed = self._venue_feed(self.view.venue) if self.feed is not None else None
        if channel is None or feed is None:
            self.notify(f"{kind}: not available on {self.view.venue}", severity="warning")
            return
        where = f"{self.view.venue} " if self.view.several else ""
        try:
            if self.view.channel_on(kind):
                await feed.unsubscribe(channel)
                self.notify(f"{where}{channel} off", timeout=2)
            else:
                await feed.subscribe(channel, list(self.view.products))
                self.notify(f"{where}{channel} on", timeout=2)
        except TickertermError as exc:
            self.notify(inert(str(exc)), severity="error")
        self.view.subscriptions = feed.subscriptions()
        self.view.changed()
        self.render_tick(force=True, slow_later=True)

    def _select(self, index: int) -> None:
        """Select ``view.markets[index]``: every (venue, product) on the screen, one after another."""
        if not self.view.markets:
            return
        self.view.select(index)
        self._grouping_steps = [None]
        self.view.grouping = None
        self.view.changed()
        self.render_tick(force=True, slow_later=True)

    def action_next_product(self) -> None:
        self._select(self.view.market_index + 1)

    def action_previous_product(self) -> None:
        self._select(self.view.market_index - 1)

    def action_toggle_consolidated(self) -> None:
        """The ladder shows every venue's levels of the selected product's asset, or its own book again."""
        if not self.view.assets:
            why = "one venue" if not self.view.several else "no asset is on two venues (see --same-quote)"
            self.notify(f"consolidated book: {why}", severity="warning", timeout=4)
            return
        self.view.consolidated = not self.view.consolidated
        self.view.changed()
        self.query_one("#ladder").focus()
        self.render_tick(force=True, slow_later=True)

    def action_add_alert(self) -> None:
        """A rule for the selected product, from a small form (the rules set so far listed under it)."""
        feed = self.feed
        add = getattr(feed, "add_alert", None)
        if feed is None or add is None:
            self.notify("alerts: not in a replay", severity="warning")
            return
        rules = feed.alert_rules() if hasattr(feed, "alert_rules") else []

        def check(text: str) -> str | None:
            try:
                parse_rule(text)
            except TickertermError as exc:
                return str(exc)
            return None

        def added(text: str | None) -> None:
            if not text:
                return
            try:
                add(text)
            except TickertermError as exc:
                self.notify(inert(str(exc)), severity="error")
                return
            self.notify(inert(f"alert set: {' '.join(text.split())}", one_line=True), timeout=4)

        product = f"{self.view.venue}:{self.view.product}" if self.view.several else self.view.product
        self.push_screen(AlertForm(f"{product} > ", rules, check), added)

    def action_pick_product(self) -> None:
        several = self.view.several
        names = [f"{v}:{p}" if several else p for v, p in self.view.markets]

        def picked(product: str | None) -> None:
            if product in names:
                self._select(names.index(product))

        self.push_screen(ProductPicker(names), picked)

    def action_cycle_interval(self) -> None:
        offered = sorted(self.view.intervals)
        i = offered.index(self.view.interval) if self.view.interval in offered else -1
        self.view.interval = offered[(i + 1) % len(offered)]
        self.view.changed()
        self.render_tick(force=True, slow_later=True)
        self.notify(f"candles {self.view.intervals[self.view.interval]}", timeout=2)

    def action_cycle_grouping(self) -> None:
        if self._grouping_steps == [None]:
            self._grouping_steps = grouping_steps(self.store, self.view.venue, self.view.product)
        steps = self._grouping_steps
        i = steps.index(self.view.grouping) if self.view.grouping in steps else 0
        self.view.grouping = steps[(i + 1) % len(steps)]
        self.view.changed()
        self.render_tick(force=True, slow_later=True)

    def action_focus_panel(self, n: int) -> None:
        ids = ["tickers", "ladder", "chart", "tape", "health"]
        panel = self.query_one(f"#{ids[n - 1]}", Panel)
        screen = self.screen
        screen.set_class(n == 3, "-view-chart")
        screen.set_class(n == 5, "-view-health")
        panel.focus()
        self.render_tick(force=True, slow_later=True)

    def action_toggle_orders(self) -> None:
        """Your orders, fills and balances in place of the trade tape (again: the tape)."""
        screen = self.screen
        showing = not screen.has_class("-view-orders")
        screen.set_class(showing, "-view-orders")
        self.query_one("#orders" if showing else "#tape", Panel).focus()
        self.render_tick(force=True, slow_later=True)

    def action_toggle_maximize(self) -> None:
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
        elif isinstance(self.focused, Panel):
            screen.maximize(self.focused)
        self.call_after_refresh(self.render_tick, True)

    async def action_replay_seek(self, seconds: float) -> None:
        state = self.store.replay
        if not self.replaying or self.feed is None or state is None or state.current is None:
            return
        target = state.current + seconds
        if state.start is not None and state.end is not None:
            target = min(max(target, state.start), state.end)
        await self.feed.control("seek", timestamp=target)

    async def action_replay_speed(self, factor: float) -> None:
        state = self.store.replay
        if not self.replaying or self.feed is None:
            return
        speed = (state.speed if state is not None and state.speed else 1.0) * factor
        await self.feed.control("speed", speed=max(0.25, min(speed, 10_000.0)))

    async def action_toggle_record(self) -> None:
        feed = self.feed
        if feed is None or not hasattr(feed, "start_recording") or self.recorder_factory is None:
            why = "record one venue at a time" if self.view.several else "a replay plays a recording"
            self.notify(f"this session cannot record ({why})", timeout=3)
            return
        recordable: Recordable = feed  # type: ignore[assignment]
        try:
            if recordable.recorder is None:
                recorder = await self.recorder_factory(feed)
                await recordable.start_recording(recorder)
                self.notify(inert(f"recording to {recorder.path}"), timeout=4)
            else:
                status = await recordable.stop_recording()
                where = f"{status.path} ({status.bytes / 2**20:.1f} MB)" if status is not None else ""
                self.notify(inert(f"recording stopped: {where}"), timeout=6)
        except TickertermError as exc:
            self.notify(inert(str(exc)), severity="error")
        self.sub_title = self._subtitle()

    async def action_replay_before_gap(self) -> None:
        if not self.replaying or self.feed is None:
            return
        try:
            await self.feed.control("before_gap")
        except TickertermError as exc:
            self.notify(inert(str(exc)), severity="error")

    async def action_replay_stop(self) -> None:
        if self.replaying and self.feed is not None:
            await self.feed.control("stop")

    async def action_toggle_pause(self) -> None:
        if self.replaying and self.feed is not None:  # a replay pauses at the venue: history waits
            state = self.store.replay
            paused = state is not None and state.state == "paused"
            await self.feed.control("resume" if paused else "pause")
            return
        self.paused = not self.paused
        self.sub_title = self._subtitle()
        if not self.paused:
            self.render_tick(force=True, slow_later=True)

    async def action_next_watchlist(self) -> None:
        """The next watchlist's products, on every channel subscribed now (the others are dropped)."""
        if self.view.several:
            self.notify("watchlists name one venue's products: not with several venues", severity="warning")
            return
        if not self.watchlists or self.feed is None:
            self.notify("no watchlists: add a [watchlists] table to the config file", severity="warning")
            return
        names = list(self.watchlists)
        i = names.index(self.watchlist) if self.watchlist in names else -1
        name = names[(i + 1) % len(names)]
        new, old = self.watchlists[name], list(self.view.products)
        try:
            for channel, products in self.feed.subscriptions().items():
                if channel in self.view.channels.values() and products:
                    added = [p for p in new if p not in products]
                    removed = [p for p in products if p not in new]
                    if added:
                        await self.feed.subscribe(channel, added)
                    if removed:
                        await self.feed.unsubscribe(channel, removed)
        except TickertermError as exc:
            self.notify(inert(str(exc)), severity="error")
            return
        self.watchlist = name
        self.view.products = list(new)
        self.view.selected = 0
        self.view.subscriptions = self.feed.subscriptions()
        self.view.changed()
        self.render_tick(force=True, slow_later=True)
        self.notify(
            f"watchlist {name}: {', '.join(new)}" + (f" (was {', '.join(old)})" if old else ""), timeout=3
        )

    @classmethod
    def binding_ids(cls) -> list[str]:
        """The ids ``[keys]`` in the config file may rebind."""
        return [b.id for b in cls.BINDINGS if isinstance(b, Binding) and b.id]

    def action_toggle_light(self) -> None:
        pairs = {"textual-light": "textual-dark", "ansi-light": "ansi-dark", "ansi-dark": "ansi-light"}
        self.theme = pairs.get(self.theme, "textual-light")

    def action_show_help(self) -> None:
        self.push_screen(HelpScreen(self.KEYS, log_file=self.log_file))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # Textual's own commands, but one entry per action: its Keys, Maximize/Minimize and Quit have
        # ours below (with our keys); its Theme picker and Screenshot have no equivalent here
        for command in super().get_system_commands(screen):
            if command.title in ("Theme", "Screenshot"):
                yield command
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if binding.id in ("quit.interrupt", "help"):
                continue
            title = _COMMAND_TITLES.get(binding.id or "", binding.description)
            yield SystemCommand(
                title, f"key: {key_names(binding.key)}", partial(self.run_action, binding.action)
            )
        yield SystemCommand("Help: every key", "key: ?", self.action_show_help)


_KEY_NAMES = {
    "right_square_bracket": "]",
    "left_square_bracket": "[",
    "slash": "/",
    "question_mark": "?",
    "plus": "+",
    "equals_sign": "=",
    "minus": "-",
    "left": "←",
    "right": "→",
}


def key_names(keys: str) -> str:
    """Binding keys as people write them: ``n,right_square_bracket`` -> ``n or ]``."""
    return " or ".join(_KEY_NAMES.get(k, k.replace("_", " ")) for k in keys.split(","))


_COMMAND_TITLES = {
    "channel.ticker": "Toggle the ticker channel",
    "channel.book": "Toggle the book (level2) channel",
    "channel.trades": "Toggle the trades channel",
    "channel.candles": "Toggle the candles channel",
    "product.next": "Next product",
    "product.previous": "Previous product",
    "product.pick": "Find a product",
    "chart.interval": "Next candle interval",
    "ladder.grouping": "Next ladder grouping",
    "panel.tickers": "Focus the tickers",
    "panel.depth": "Focus the depth ladder",
    "panel.chart": "Focus / show the candle chart",
    "panel.tape": "Focus the trade tape",
    "panel.health": "Focus / show connection health",
    "panel.maximize": "Maximise or restore the focused panel",
    "display.pause": "Pause or resume the display",
    "display.theme": "Light or dark theme",
    "quit": "Quit",
    "replay.back": "Replay: seek back a minute",
    "replay.forward": "Replay: seek on a minute",
    "replay.faster": "Replay: twice as fast",
    "replay.slower": "Replay: half as fast",
    "replay.stop": "Replay: stop",
    "replay.before_gap": "Replay: a minute before the last gap or disconnect",
    "record.toggle": "Start or stop recording",
    "product.watchlist": "Next watchlist",
    "panel.orders": "Show / hide your orders, fills and balances",
    "alert.add": "New alert for the selected product",
    "ladder.consolidated": "Consolidated ladder across venues / one venue's book",
}


def replay_mark(store: Store) -> str:
    """``REPLAY 12:01:30 x10`` (and PAUSED, DONE or STOPPED): where the history being replayed stands."""
    state = store.replay
    if state is None:
        return "REPLAY"
    text = "REPLAY"
    if state.current is not None:
        text += " " + time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(state.current))
    if state.speed:
        text += f" x{state.speed:g}"
    extra = {"paused": "PAUSED", "completed": "DONE", "stopped": "STOPPED"}.get(state.state)
    return f"{text} {extra}" if extra else text


def recording_mark(store: Store) -> str:
    """``REC session.db 12.4 MB`` (FULL, FAILED, or behind/lost counts when the writer lags)."""
    rec = store.recording
    if rec is None:
        return ""
    name = os.path.basename(rec.path)
    size = f"{rec.bytes / 2**20:.1f} MB"
    if rec.state == "closed":  # stopped: the toast said where it went
        return ""
    text = {"on": "REC", "full": "REC FULL", "failed": "REC FAILED"}.get(rec.state, f"REC {rec.state}")
    text = f"{text} {name} {size}"
    if rec.state == "full":
        text += f" ({rec.error})" if rec.error else f" (limit {rec.limit / 2**20:.0f} MB)"
    if rec.lost:
        text += f" lost {rec.lost}"
    elif rec.behind > 1000:
        text += f" behind {rec.behind}"
    return text


def connection_trouble(store: Store, named: bool = False) -> str:
    """One word for the header when a connection is not healthy: the worst state among them (``named``:
    with several venues every connection is named, the market one too)."""
    states = {h.state: h for h in store.health.values()}
    for state, label in (
        ("gave_up", "GAVE UP"),
        ("stale", "STALE"),
        ("retrying", "RECONNECTING"),
        ("closed", "RECONNECTING"),
        ("connecting", "CONNECTING"),
    ):
        if state in states:
            h = states[state]
            name = "" if h.conn == h.venue and not named else f"{h.conn} "  # one venue's market: unsaid
            if not h.retries or state == "gave_up":
                return f"{name}{label}"
            why = h.last_failure.removeprefix("connect failed: ")
            why = f": {why[:40]}{'…' if len(why) > 40 else ''}" if why else ""
            return f"{name}{label} (retry {h.retries}{why})"
    return ""


def grouping_steps(store: Store, venue: str, product: str) -> list[str | None]:
    """None (every level) then three price steps sized to the product's price (e.g. 1, 10, 100 for
    BTC at 64000)."""
    book = store.books.get((venue, product))
    best = (book.best_bid or book.best_ask) if book is not None else None
    if best is None:
        return [None]
    price = Decimal(best[0])
    if price <= 0:
        return [None]
    exponent = price.adjusted()
    return [None, *(format(Decimal(1).scaleb(exponent - k), "f") for k in (4, 3, 2))]
