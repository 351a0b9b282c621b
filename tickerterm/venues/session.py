"""A venue session: one connection's protocol as an object that does no I/O.

The shape of python-websockets' protocol objects, h11 and wsproto. The stream worker tells a session
what happened and the session answers with what follows:

==============================  ===========================================================
the worker calls                 when
==============================  ===========================================================
``connect(now)``                 a connection is wanted (the answer is ``Open``, or a ``Fetch``
                                 first: a listen key)
``opened(now)``                  the WebSocket is open (the answer: the frames that subscribe)
``received(raw, now)``           a frame arrived
``applied(now)``                 the events of the last call are in the store (books are checked)
``fetched(key, status, body)``   a REST answer (``fetch_failed`` when there was none)
``timer(now)``                   ``wake_at()`` has come (pings, renewals, retries, timeouts)
``subscribed`` / ``unsubscribed``  the user changed what this connection carries
``closed(reason, now)``          the connection ended
==============================  ===========================================================

Each call returns the events for the store and the sink, and queues actions (``Open``, ``Send``,
``Fetch``, ``Close``) that ``take_actions()`` hands to the worker. Nothing here waits, sleeps or touches a
socket, so a session is tested by feeding it bytes and reading what it answers.

The session is also where integrity lives: it is the error boundary around the venue's code (whatever
the parser raises makes a counted malformed frame and marks the books it could have touched UNSAFE), it
decides which books a gap taints and how they are rebuilt (a resubscribe, a reconnect, a REST snapshot
with the diffs buffered meanwhile), it checks every book a frame changed once the store has applied it
(crossed, past the level cap, an update before any snapshot), and it gives a resync that does not
complete a deadline. The store only applies events.

One venue = one ``Session`` subclass in the venue's module when it needs more than the generic protocol
(``VenueAdapter.session_type``): listen keys, replay controls, application pings, a whole-scope
subscription. Optional capabilities are declared once, as class attributes here (``replays``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from tickerterm.core.boundary import Boundary, secrets_of
from tickerterm.core.errors import ConfigError, FrameError
from tickerterm.core.events import (
    BookDropped,
    BookResynced,
    BookResyncing,
    BookSnapshot,
    BookUnsafe,
    BookUpdate,
    Event,
    Gap,
    Malformed,
    Trade,
    VenueError,
)

if TYPE_CHECKING:
    from tickerterm.venues.base import Parser, VenueAdapter

log = logging.getLogger("tickerterm.stream.worker")
"""The worker's logger: one place to read a connection's story (``-v``)."""

SNAPSHOT_ATTEMPTS = 3
"""REST snapshot attempts before the connection is restarted (history: before it is given up)."""

MALFORMED_PER_SECOND = 5.0
"""``malformed`` events a connection emits at most per second (each counts the frames it stands for)."""


# --- what a session asks the worker to do -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A REST call the worker makes for a session."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Open:
    """Open the WebSocket at ``url`` (the answer to ``connect``)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Send:
    """Send these frames, in order, under the venue's outbound rate."""

    frames: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Fetch:
    """Make this REST call; answer with ``fetched(key, …)`` or ``fetch_failed(key, …)``."""

    key: str
    request: HttpRequest


@dataclass(frozen=True, slots=True)
class Close:
    """End the connection. ``planned``: the venue announced it (reconnect at once, not a failure);
    ``fatal``: do not retry (shown as the reason); ``bad_input``: the venue refused what the user asked
    for (the command exits 2)."""

    reason: str
    planned: bool = False
    fatal: str | None = None
    bad_input: bool = False


Action = Open | Send | Fetch | Close


# --- what a session is given --------------------------------------------------------------------


class BookView(Protocol):
    """The store as a session sees it: read only, and only what integrity needs."""

    def book_state(self, venue: str, product: str) -> str:
        """``empty``, ``ok``, ``unsafe`` or ``resyncing``."""
        ...

    def book_problem(self, venue: str, product: str) -> str | None:
        """Why a book the store holds cannot be trusted as it stands (crossed, past the level cap, an
        update before any snapshot), or None."""
        ...


class Subscriptions:
    """Tracked subscription state: channel -> products (insertion-ordered), restored on reconnect."""

    def __init__(self) -> None:
        self._subs: dict[str, dict[str, None]] = {}
        self.version = 0
        """Changes whenever a subscription is added or removed (for caches derived from them)."""

    def add(self, channel: str, products: Iterable[str]) -> list[str]:
        """Add products; returns those that were new."""
        have = self._subs.setdefault(channel, {})
        new = [p for p in products if p not in have]
        for p in new:
            have[p] = None
        self.version += 1
        return new

    def remove(self, channel: str, products: Iterable[str] | None = None) -> list[str]:
        """Remove products (all of the channel when ``products`` is None); returns those removed."""
        have = self._subs.get(channel)
        if have is None:
            return []
        self.version += 1
        if products is None:
            del self._subs[channel]
            return list(have)
        gone = [p for p in products if p in have]
        for p in gone:
            del have[p]
        if not have:
            del self._subs[channel]
        return gone

    def channels(self) -> list[str]:
        return list(self._subs)

    def has(self, channel: str, product: str) -> bool:
        have = self._subs.get(channel)
        return have is not None and product in have

    def products(self, channel: str) -> list[str]:
        return list(self._subs.get(channel, ()))

    def __contains__(self, channel: object) -> bool:
        return channel in self._subs

    def as_dict(self) -> dict[str, list[str]]:
        return {c: list(p) for c, p in self._subs.items()}


@dataclass(slots=True)
class ReplayPlan:
    """History to replay instead of live subscriptions (sessions with ``replays``)."""

    product: str
    channels: list[str]
    start: float
    end: float
    speed: float = 1.0
    position: float | None = None
    """The history time replayed so far (a reconnect resumes from it)."""

    def resume_from(self) -> float:
        at = self.position
        return at if at is not None and self.start <= at <= self.end else self.start


class Wanted:
    """What one connection is asked to carry, kept across its reconnects: the subscriptions, the feed's
    products, the products the venue refused (dropped for good), a replay plan."""

    def __init__(
        self,
        adapter: VenueAdapter,
        products: Iterable[str] = (),
        subs: Subscriptions | None = None,
        replay: ReplayPlan | None = None,
    ) -> None:
        self.adapter = adapter
        self.subs = subs or Subscriptions()
        self.products = list(products)
        """The feed's products: market data for these (and whatever is subscribed here) is wanted."""
        self.rejected: set[str] = set()
        self.replay = replay
        self._book_channels = adapter.book_channels()
        self._accepted: tuple[int, frozenset[str]] = (-1, frozenset())
        self._books: tuple[int, dict[str, str]] = (-1, {})

    def accepts(self, product: str) -> bool:
        """Whether market data for ``product`` is wanted: a product of the feed, or one subscribed here.
        Everything else a venue sends is counted and dropped, never acted on."""
        version, accepted = self._accepted
        if version != self.subs.version:
            names = set(self.products)
            for channel in self.subs.channels():
                names.update(self.subs.products(channel))
            accepted = frozenset(names)
            self._accepted = (self.subs.version, accepted)
        return product in accepted

    def books(self) -> dict[str, str]:
        """Product -> its book channel here (a venue may have several: L2, L3...), in channel order;
        kept until the subscriptions change (asked for every book message)."""
        if self._books[0] != self.subs.version:
            books: dict[str, str] = {}
            for channel in self._book_channels:
                for product in self.subs.products(channel):
                    books.setdefault(product, channel)
            self._books = (self.subs.version, books)
        return self._books[1]

    def all_products(self) -> list[str]:
        out: dict[str, None] = {}
        for channel in self.subs.channels():
            out.update(dict.fromkeys(self.subs.products(channel)))
        return list(out)

    def scope(self) -> dict[str, list[str]]:
        """What this connection keeps subscribed, channels without products left out."""
        channel = self.adapter.channel
        return {
            c: self.subs.products(c)
            for c in self.subs.channels()
            if self.subs.products(c) or not channel(c).per_product
        }


@dataclass(slots=True)
class _Pending:
    """A REST fetch on its way or waiting to be retried."""

    channel: str
    product: str
    attempt: int = 1
    retry_at: float | None = None


class _Bucket:
    """A token bucket on the times the session is given (never waits)."""

    __slots__ = ("_last", "_tokens", "rate")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = max(1.0, rate)
        self._last: float | None = None

    def take(self, now: float) -> bool:
        if self._last is not None:
            self._tokens = min(max(1.0, self.rate), self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


_REPAIRED = ("unsafe", "resyncing")
"""Book states a snapshot ends (also those left by an earlier connection's session)."""


# --- the session --------------------------------------------------------------------------------


class Session:
    """One connection of one venue (see the module docstring)."""

    replays: ClassVar[bool] = False
    """The venue replays history (``Wanted.replay``, ``control``)."""

    def __init__(
        self,
        adapter: VenueAdapter,
        endpoint: str,
        conn: str,
        wanted: Wanted,
        books: BookView,
        *,
        resync_timeout: float = 10.0,
        retry_base: float = 0.5,
    ) -> None:
        self.adapter = adapter
        self.venue = adapter.name
        self.endpoint = endpoint
        self.conn = conn
        self.wanted = wanted
        self.books = books
        self.resync_timeout = resync_timeout
        self.retry_base = retry_base
        self.parser: Parser = adapter.parser(conn)
        self.parser.accepts = wanted.accepts
        self.boundary = Boundary(secrets_of(adapter.credentials), wanted.accepts)
        self.is_open = False
        self.offline = False
        """Replaying a recording: the same events, but no action is built (no frame is signed, no
        request made): answers come from the recording."""
        self.exch_ts: float | None = None
        """The venue's time on the frame just received (for latency); None when it gave none."""
        self.replayed_at: float | None = None
        """In a replay: the history time of the frame just received."""
        self._actions: list[Action] = []
        self._closing = False
        self._touched: dict[str, None] = {}
        """Books the last frame changed: checked once the store has applied them."""
        self._repairing: set[str] = set()
        """Books marked UNSAFE or RESYNCING here: their next snapshot is a resync."""
        self._resyncing: dict[str, float] = {}
        """Books asked to resync -> when (a resync that does not complete in time reconnects)."""
        self._resync_wanted: dict[str, None] = {}
        self._fetches: dict[str, _Pending] = {}
        self._malformed_budget = _Bucket(MALFORMED_PER_SECOND)
        self._unreported = 0
        """Malformed frames not reported yet (the next ``malformed`` event counts them)."""
        self._unreported_reason = ""
        self._last_sub: tuple[str, list[str]] | None = None
        self._resubscribe: dict[str, list[str]] = {}
        """Channels to subscribe again without the products the venue refused (it refused the frame)."""

    # --- the worker's side ---------------------------------------------------------------------

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    @property
    def has_actions(self) -> bool:
        return bool(self._actions)

    def ignored(self) -> tuple[int, int, int]:
        """Frames ignored so far, counted: of an unknown type, out of order, for products not asked for."""
        parser = self.parser
        return parser.unknown, parser.out_of_order, parser.unsolicited + self.boundary.dropped

    def wake_at(self) -> float | None:
        """When ``timer`` wants to be called next (None: not before something happens)."""
        times = [p.retry_at for p in self._fetches.values() if p.retry_at is not None]
        if self._resyncing:
            times.append(min(self._resyncing.values()) + self.resync_timeout)
        return min(times) if times else None

    def connect(self, now: float) -> list[Event]:
        """A connection is wanted: where to open it."""
        self._act(Open(self.adapter.url(self.endpoint), self.adapter.connect_headers(self.endpoint)))
        return []

    def opened(self, now: float) -> list[Event]:
        """The WebSocket is open: subscribe to everything tracked (the books start from the snapshots
        the subscriptions bring)."""
        self.is_open = True
        self._send_built(self.restore_frames)
        return []

    def received(self, raw: bytes | str, now: float) -> list[Event]:
        """One frame: its events (admitted through the trust boundary, with what they imply).

        The error boundary: whatever the venue's code raises on a frame (not only ``FrameError``) makes
        it a counted malformed frame, and the books it could have touched are marked UNSAFE and rebuilt.
        No frame can end the stream, and none can leave a wrong book shown as good."""
        parser = self.parser
        try:
            events = parser.parse(raw, now)
            if parser.replayed_at is not None:  # history: its times say nothing of the latency
                self.exch_ts = None
                self.replayed_at, parser.replayed_at = parser.replayed_at, None
                if self.wanted.replay is not None:
                    self.wanted.replay.position = self.replayed_at
            else:
                self.exch_ts = parser.last_exch_ts
                self.replayed_at = None
            out = self._integrity(events, now) if events else []
        except Exception as exc:
            self.exch_ts = self.replayed_at = None
            out = self._integrity(self._malformed(raw, exc, now), now)
        else:
            if self._unreported:  # the end of a flood: what was held back is counted now
                out += self._integrity(self._report_malformed(now), now)
        if parser.snapshot_wanted:
            self._fetch_wanted(now)
        return out

    def applied(self, now: float) -> list[Event]:
        """The last call's events are in the store: every book they changed is checked, and one that
        cannot be trusted as it stands is marked UNSAFE (and rebuilt)."""
        if not self._touched:
            return []
        touched, self._touched = self._touched, {}
        venue, books = self.venue, self.books
        out: list[Event] = []
        for product in touched:
            reason = books.book_problem(venue, product)
            if reason is not None:
                out.append(BookUnsafe(venue, now, self.conn, product, reason))
        return self._integrity(out, now) if out else out

    def fetched(self, key: str, status: int, body: bytes, now: float) -> list[Event]:
        """The REST answer to ``Fetch(key)``."""
        pending = self._fetches.get(key)
        if pending is None:
            return []
        if status >= 400:
            return self.fetch_failed(key, f"HTTP {status}", now)
        del self._fetches[key]
        try:
            events = self.parser.apply_snapshot(pending.channel, pending.product, body, now)
        except Exception as exc:  # the body is venue input like any frame
            what = str(exc) if isinstance(exc, FrameError) else f"{type(exc).__name__}: {exc}"
            self._fetches[key] = pending
            return self._retry(key, pending, now, malformed=what)
        out = self._integrity(events, now) if events else []
        if self.parser.snapshot_wanted:
            self._fetch_wanted(now)
        return out

    def fetch_failed(self, key: str, reason: str, now: float) -> list[Event]:
        """``Fetch(key)`` got no answer (``reason``: the transport error, or an HTTP status)."""
        pending = self._fetches.get(key)
        if pending is None:
            return []
        return self._retry(key, pending, now, failed=reason)

    def timer(self, now: float) -> list[Event]:
        """Time passed (``wake_at`` came, or the worker's regular tick)."""
        out: list[Event] = []
        if self._unreported:  # a flood that ended: what was held back is counted, a frame or not
            out += self._integrity(self._report_malformed(now), now)
        for key, pending in list(self._fetches.items()):
            if pending.retry_at is not None and now >= pending.retry_at:
                pending.retry_at = None
                self._request_fetch(key, pending)
        late = [p for p, t in self._resyncing.items() if now - t > self.resync_timeout]
        if late:
            self._close(Close(f"resync of {', '.join(late)} did not complete"))
        return out

    def subscribed(self, channel: str, products: list[str], now: float) -> list[Event]:
        """``products`` were added to ``channel`` (already in ``wanted.subs``): subscribe them now."""
        self._last_sub = (channel, products)
        self.parser.restarted(channel, products)
        if self.is_open:
            self._send_built(lambda: self.add_frames(channel, products))
        return []

    def unsubscribed(self, channel: str, removed: list[str], whole: bool, now: float) -> list[Event]:
        """``removed`` left ``channel`` (already out of ``wanted.subs``; ``whole``: the whole channel)."""
        out: list[Event] = []
        if self.adapter.channel(channel).kind == "book":
            for p in removed:  # a book nobody updates any more must not be shown as live
                self._resyncing.pop(p, None)
                self._repairing.discard(p)
                out.append(BookDropped(self.venue, now, self.conn, p))
        self.parser.restarted(channel, removed)
        if self.is_open:
            self._send_built(lambda: self.remove_frames(channel, removed, whole))
        return out

    def closed(self, reason: str, now: float) -> list[Event]:
        """The connection ended: what arrives until the next snapshot is lost, so every book it fed
        that was shown as good (or on its way back) is UNSAFE, with the reason."""
        self.is_open = False
        why = f"connection lost: {reason}"
        venue, books = self.venue, self.books
        return [
            BookUnsafe(venue, now, self.conn, p, why)
            for p in self.wanted.books()
            if books.book_state(venue, p) in ("ok", "resyncing")
        ]

    def control(self, action: str, now: float, **args: Any) -> list[Event]:
        """A replay control (sessions with ``replays``)."""
        raise ConfigError(f"{self.adapter.name} has no replay")

    # --- what a venue's session may change ----------------------------------------------------

    def restore_frames(self) -> list[str]:
        """The frames that subscribe a new connection to everything tracked."""
        frames: list[str] = []
        subs = self.wanted.subs
        for channel in subs.channels():
            products = subs.products(channel)
            if self.adapter.channel(channel).per_product and not products:
                continue
            frames += self.adapter.subscribe_frames(channel, products)
        return frames

    def add_frames(self, channel: str, products: list[str]) -> list[str]:
        return self.adapter.subscribe_frames(channel, products)

    def remove_frames(self, channel: str, removed: list[str], whole: bool) -> list[str]:
        return self.adapter.unsubscribe_frames(channel, None if whole else removed, listed=removed)

    def resubscribe_frames(self, again: dict[str, list[str]]) -> list[str]:
        """Frames that subscribe ``again`` (channel -> products left after a refusal)."""
        return [
            f for channel, products in again.items() for f in self.adapter.subscribe_frames(channel, products)
        ]

    def resync_frames(self, channel: str, products: list[str]) -> list[str] | None:
        """Frames that make the venue resend ``channel`` books for ``products``; None = reconnect;
        ``[]`` = nothing to send (the parser asks for a REST snapshot, or the venue resends anyway)."""
        return self.adapter.resync_frames(channel, products)

    # --- inside -------------------------------------------------------------------------------

    def _act(self, action: Action) -> None:
        self._actions.append(action)

    def _send(self, frames: list[str]) -> None:
        if frames and self.is_open and not self.offline:
            self._actions.append(Send(tuple(frames)))

    def _send_built(self, build: Callable[[], list[str]]) -> None:
        """Frames built only when they can go (a replay builds none: it has no keys to sign them with)."""
        if self.is_open and not self.offline:
            self._send(build())

    def _fetch(self, key: str, build: Callable[[], HttpRequest]) -> None:
        if not self.offline:
            self._act(Fetch(key, build()))

    def _close(self, close: Close) -> None:
        if not self._closing:
            self._closing = True
            self._actions.append(close)

    def _integrity(self, events: list[Event], now: float) -> list[Event]:
        """Admit ``events`` through the boundary and act on what they mean: a gap taints books, an UNSAFE
        book is rebuilt, a snapshot ends a repair, a venue error may end the connection. Returns every
        event for the store, in order, with those they imply."""
        events = self.boundary.admit(events)
        books = self.wanted.books()
        touched = self._touched
        out: list[Event] = []
        i = 0
        while i < len(events):
            ev = events[i]
            i += 1
            cls = type(ev)
            if cls is Trade:  # the most numerous (a batch restates hundreds): nothing to act on
                out.append(ev)
                continue
            if cls is BookUpdate:
                product = ev.product  # type: ignore[attr-defined]
                if product not in books:
                    continue  # still in flight after an unsubscribe: that book is gone, don't revive it
                touched[product] = None
            elif cls is BookSnapshot:
                product = ev.product  # type: ignore[attr-defined]
                if product not in books:
                    continue
                touched[product] = None
                out.append(ev)
                if product in self._repairing or self.books.book_state(self.venue, product) in _REPAIRED:
                    self._repairing.discard(product)
                    self._resyncing.pop(product, None)
                    out.append(BookResynced(self.venue, ev.recv_ts, self.conn, product))
                continue
            elif cls is Gap:
                events[i:i] = self._tainted(ev, books)  # type: ignore[arg-type]
            elif cls is BookUnsafe:
                product = ev.product  # type: ignore[attr-defined]
                self._repairing.add(product)
                self._resync_wanted[product] = None
            elif cls is BookResyncing:
                self._repairing.add(ev.product)  # type: ignore[attr-defined]
            elif cls is VenueError:
                try:
                    self._on_error(ev)  # type: ignore[arg-type]
                except Exception as exc:  # venue code (classify_error...): the error is still shown
                    log.info("%s: venue error not classified (%r)", self.conn, exc)
            out.append(ev)
        if self._resync_wanted:
            out += self._resync(now)
        if self._resubscribe:
            again, self._resubscribe = self._resubscribe, {}
            self._send_built(lambda: self.resubscribe_frames(again))
        return out

    def _tainted(self, gap: Gap, books: dict[str, str]) -> list[Event]:
        """The books a gap makes UNSAFE (the venue says which: a per-product counter or the connection's)."""
        if not books:
            return []
        reason = gap.describe()
        try:
            tainted = self.adapter.gap_products(gap, list(books))
        except Exception:  # venue code: when it cannot say, every book is suspect
            tainted = list(books)
        return [BookUnsafe(gap.venue, gap.recv_ts, self.conn, p, reason) for p in tainted if p in books]

    def _malformed(self, raw: bytes | str, exc: Exception, now: float) -> list[Event]:
        """A frame the venue's code could not use (whatever it raised): counted and shown, and every book
        it could have touched is marked UNSAFE and rebuilt, so a lost change is never shown as good."""
        what = str(exc) if isinstance(exc, FrameError) else f"{type(exc).__name__}: {exc}"
        reason = self.boundary.text(what, 200)
        self._unreported += 1
        self._unreported_reason = reason
        events = self._report_malformed(now)  # a flood is reported a few times a second, every frame counted
        try:
            touched = self.parser.books_of(raw)  # venue code too: it may fail on the same frame
        except Exception:
            touched = None
        books = self.wanted.books()
        venue, view = self.venue, self.books
        for product in books if touched is None else touched:
            if product in books and view.book_state(venue, product) == "ok":
                events.append(BookUnsafe(venue, now, self.conn, product, f"malformed frame: {reason}"))
        return events

    def _report_malformed(self, now: float) -> list[Event]:
        """A ``malformed`` event for the frames not reported yet, if the rate allows one now."""
        if not self._unreported or not self._malformed_budget.take(now):
            return []
        count, self._unreported = self._unreported, 0
        return [Malformed(self.venue, now, self.conn, self._unreported_reason, count)]

    def _on_error(self, ev: VenueError) -> None:
        kind = self.adapter.classify_error(ev.message)
        log.info("%s: venue error (%s): %s", self.conn, kind, ev.message)  # scrubbed; logs make it inert
        if kind == "transient":
            return
        if kind == "reconnect":
            self._close(Close(ev.message, planned=True))
            return
        if kind == "fatal":
            self._close(Close(ev.message, fatal=ev.message))
            return
        ev.fatal = True
        if kind == "auth":
            help_ = self.adapter.credential_help
            self._close(Close(ev.message, fatal=f"{ev.message} (check the API key: {help_})"))
            return
        wanted = self.wanted
        named = self.adapter.rejected_products(ev.message, [*wanted.all_products(), *wanted.rejected])
        if named:  # the venue refused these products: they go, every other product goes on
            ev.product = named[0]
            self._reject([p for p in named if p not in wanted.rejected], ev.message)
        elif self._last_sub is not None:
            channel, products = self._last_sub
            wanted.subs.remove(channel, products)  # stop widening: don't send it again on reconnect
            self._last_sub = None

    def _reject(self, products: list[str], message: str) -> None:
        """Drop ``products`` from every channel here (the venue refused them) and subscribe the channels
        again with the rest, since the venue may have refused the whole frame; with none left, give up."""
        if not products:
            return
        wanted = self.wanted
        wanted.rejected.update(products)
        wanted.products = [p for p in wanted.products if p not in wanted.rejected]
        left = False
        keepalive = self.adapter.keepalive_channels
        for channel in wanted.subs.channels():
            spec = self.adapter.channel(channel)
            if not spec.per_product:
                continue
            gone = wanted.subs.remove(channel, products)
            if spec.kind == "book":
                for p in gone:
                    self._touched.pop(p, None)
                    self._resyncing.pop(p, None)
                    self._repairing.discard(p)
            rest = wanted.subs.products(channel)
            if gone and rest:
                self._resubscribe[channel] = rest
            left = left or (bool(rest) and channel not in keepalive)
        self._last_sub = None
        if not left:
            self._close(
                Close(message, fatal=f"{message} (the venue refused every product asked for)", bad_input=True)
            )

    def _resync(self, now: float) -> list[Event]:
        books = self.wanted.books()
        by_channel: dict[str, list[str]] = {}
        for p in self._resync_wanted:
            channel = books.get(p)
            if channel is not None and p not in self._resyncing:
                by_channel.setdefault(channel, []).append(p)
        self._resync_wanted.clear()
        out: list[Event] = []
        for channel, products in by_channel.items():
            try:
                frames = self.resync_frames(channel, products)
            except Exception as exc:  # venue code: a reconnect rebuilds the books whatever it was
                # offline (a replay without the keys that signed them live): they went, live
                log.info("%s: no resync frames (%r): reconnecting instead", self.conn, exc)
                frames = [] if self.offline else None
            for p in products:  # the parser drops the book and waits for (or asks for) a new one
                self.parser.want_snapshot(channel, p)
            out += [BookResyncing(self.venue, now, self.conn, p) for p in products]
            if frames is None:
                self._close(Close(f"reconnecting to resync {', '.join(products)}"))
                return out
            for p in products:
                self._resyncing[p] = now
            self._send(frames)
        if self.parser.snapshot_wanted:
            self._fetch_wanted(now)
        return out

    def _fetch_wanted(self, now: float) -> None:
        """A REST fetch for each snapshot or history the parser asked for (one at a time per key), for
        products wanted here only: a venue naming other products starts no work."""
        wanted = list(self.parser.snapshot_wanted)
        self.parser.snapshot_wanted.clear()  # in place: a venue's sync helper holds this list
        for channel, product in wanted:
            if not self.wanted.accepts(product):
                continue
            key = f"{channel} {product}"
            if key not in self._fetches:
                pending = self._fetches[key] = _Pending(channel, product)
                self._request_fetch(key, pending)

    def _request_fetch(self, key: str, pending: _Pending) -> None:
        url = self.adapter.snapshot_url(pending.channel, pending.product)
        if url is None:
            del self._fetches[key]
            return
        channel, product = pending.channel, pending.product
        self._fetch(key, lambda: HttpRequest("GET", url, self.adapter.snapshot_headers(channel, product)))

    def _retry(
        self, key: str, pending: _Pending, now: float, *, failed: str = "", malformed: str = ""
    ) -> list[Event]:
        """A snapshot or history fetch that failed: shown, retried with backoff while the book waits as
        RESYNCING; after ``SNAPSHOT_ATTEMPTS`` the connection restarts (history is only given up)."""
        channel, product, attempt = pending.channel, pending.product, pending.attempt
        book = channel in self.adapter.book_channels()
        what_for = "book snapshot" if book else f"{channel} history"
        tries = f"attempt {attempt} of {SNAPSHOT_ATTEMPTS}"
        events: list[Event] = (
            [VenueError(self.venue, now, self.conn, f"{product} {what_for} failed ({failed}), {tries}")]
            if failed
            else [Malformed(self.venue, now, self.conn, f"{what_for}, {tries}: {malformed}")]
        )
        if book and self.books.book_state(self.venue, product) != "resyncing":
            events.append(BookResyncing(self.venue, now, self.conn, product))
        if attempt >= SNAPSHOT_ATTEMPTS:
            del self._fetches[key]
            if book:
                self._close(Close(f"no {product} book snapshot after {SNAPSHOT_ATTEMPTS} attempts"))
        else:
            pending.attempt += 1
            pending.retry_at = now + min(2.0**attempt, 8.0) * self.retry_base
        return self._integrity(events, now)
