"""The connection loop, written once for every venue: it does the I/O and the generic policy only.

connect → open → read → on close: classify, back off, reconnect, restore.

Everything a venue's protocol means lives in its session (``venues.session``), an object that does no
I/O: the worker tells it what happened (connected, a frame with its receive time, a REST answer, a
tick of the clock, a subscription change) and carries out what it answers (send these frames, fetch
that URL, close), applies its events to the store and hands them to the sink. The worker owns what is
the same for every venue: the backoff and retry budget, the outbound rate, the staleness watchdog, the
subscription bookkeeping, the health events of the connection itself. Whatever goes wrong inside ends
as a ``gave_up`` event: a connection task never ends unannounced.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from tickerterm.core.errors import ConfigError, no_debug
from tickerterm.core.events import (
    Closed,
    Connected,
    Connecting,
    Event,
    GaveUp,
    RetryScheduled,
    Stale,
)
from tickerterm.core.health import close_meaning
from tickerterm.core.ndjson import record
from tickerterm.core.store import Store
from tickerterm.stream.policy import RateLimiter, RetryPolicy
from tickerterm.stream.wire import FastConnection
from tickerterm.venues.base import VenueAdapter, redact_url
from tickerterm.venues.session import (
    Close,
    Fetch,
    HttpRequest,
    Open,
    ReplayPlan,
    Send,
    Session,
    Subscriptions,
    Wanted,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["Connection", "Journal", "ReplayPlan", "Sink", "take_events", "take_frame", "through"]

log = logging.getLogger(__name__)
_wire_log = logging.getLogger("tickerterm.stream.wire")
_wire_log.addFilter(no_debug)

Sink = Callable[[list[Event]], Awaitable[None] | None]


class Journal(Protocol):
    """Where a recording keeps what each session was fed (``tickerterm.record``): replayed through the
    same venue code, it gives the same events. ``kind``: ``session`` (a new session; ``arg`` its
    starting state as JSON), ``opened``, ``frame`` (``body``), ``fetched`` / ``fetch_failed``,
    ``timer``, ``subscribed`` / ``unsubscribed``, ``control``, ``closed``, ``event`` (an event of the
    worker's own, as its NDJSON record). Called on the event loop: it must not block."""

    def record(
        self,
        conn: str,
        venue: str,
        now: float,
        kind: str,
        arg: str | None = None,
        body: bytes | str | None = None,
    ) -> None: ...

    def frames(self, conn: str, venue: str, now: float, raws: list[bytes]) -> None:
        """Frames received together (one socket read, or the part of it taken before the loop's next
        turn): each as a ``frame`` entry, in order, with the read's time; ``raws`` is not changed
        after."""


def take_frame(session: Session, store: Store, raw: bytes | str, now: float) -> list[Event]:
    """One frame through its session into the store: the events to hand on (a recording's replay of
    the worker's path, and tests)."""
    out = through(session, store, raw, now)
    conn, venue = session.conn, session.venue
    store.note_frame(conn, venue, now, session.exch_ts, session.replayed_at)
    store.note_ignored(conn, venue, *session.ignored())
    store.frame_applied()
    return out


def through(session: Session, store: Store, raw: bytes | str, now: float) -> list[Event]:
    """One frame through its session into the store, its books checked: the events to hand on. What
    only counts frames is left to the caller (``take_frame``, or the worker once per socket read)."""
    out = session.received(raw, now)
    if out:
        store.apply_all(out)
        checked = session.applied(now)
        if checked:
            store.apply_all(checked)
            out += checked
    return out


def take_events(session: Session, store: Store, events: list[Event], now: float) -> list[Event]:
    """Events a session answered outside the frame path, applied and checked: the events to hand on."""
    if events:
        store.apply_all(events)
        checked = session.applied(now)
        if checked:
            store.apply_all(checked)
            events += checked
    return events


YIELD_EVERY = 128
"""Frames of one socket read taken before the event loop gets a turn (keys, the screen, the clock): a
read holds ~100 frames of a busy market, and a venue's flood of empty frames thousands."""

PRIVATE_FETCH = "listen-key"
"""Fetches whose answers are credentials (a listen key): never recorded."""

MAX_REST_BODY = 64 * 2**20
"""The largest REST response read (a deep book snapshot is a few MB)."""

UNREACHABLE_HINT = "check the URL (--url) and the network; --sim runs the built-in simulator"


@dataclass(slots=True)
class _End:
    code: int | None
    reason: str
    fatal: str | None = None
    """Set when the connection must not be retried (auth or command failure)."""
    planned: bool = False
    """The venue announced it (a shutdown notice, an expired listen key): reconnect at once."""
    bad_input: bool = False
    """The venue refused what the user asked for (every product): the command exits 2."""


def _end_of(close: Close) -> _End:
    return _End(None, close.reason, fatal=close.fatal, planned=close.planned, bad_input=close.bad_input)


class Connection:
    """One endpoint of one venue, kept connected and subscribed until ``stop()`` or a final failure."""

    def __init__(
        self,
        adapter: VenueAdapter,
        endpoint: str,
        store: Store,
        *,
        subscriptions: Subscriptions | None = None,
        sink: Sink | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        shard: int = 1,
        replay: ReplayPlan | None = None,
        products: list[str] | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.adapter = adapter
        self.journal = journal
        """Where a recording keeps what the sessions were fed (None: not recording)."""
        self.endpoint = endpoint
        self.shard = shard
        """1 for the endpoint's first connection; 2, 3... for more under a per-connection stream limit."""
        self.started = False
        self.conn_id = adapter.connection_id(endpoint) + ("" if shard == 1 else f"#{shard}")
        self.store = store
        self.wanted = Wanted(adapter, products or (), subscriptions, replay)
        """What this connection carries, kept across reconnects."""
        self.subs = self.wanted.subs
        self.sink = sink
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.rng = rng or random.Random()
        self.health = store.connection(self.conn_id, adapter.name)
        self.stale_after = self.policy.stale_after or adapter.stale_after
        self._limiter = RateLimiter(adapter.outbound_per_second, adapter.outbound_burst)
        self._ws: FastConnection | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._end: _End | None = None
        self._last_rx = 0.0
        self.finished = asyncio.Event()
        self._fetches: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self._connecting: asyncio.Future[ClientConnection] | None = None
        self._reading: asyncio.Task[Any] | None = None
        """The task reading the socket (it closes the connection itself when the session asks)."""
        for channel in adapter.keepalive_channels:  # on every endpoint: quiet channels stay open
            self.subs.add(channel, [])
        self.session = self.start_session()

    @property
    def replay(self) -> ReplayPlan | None:
        """When set, the session replays this history instead of subscribing (resumed where it stood
        after a reconnect)."""
        return self.wanted.replay

    # --- public ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the connection up until ``stop()`` or until it gives up. Whatever goes wrong inside
        ends as a ``gave_up`` event with the reason: the task never ends unannounced."""
        try:
            await self._run()
        except Exception as exc:  # a bug of ours or a venue's that escaped every other boundary
            # no traceback on the user's terminal (it would draw over the dashboard): -vv has it
            log.info("%s: stream ended by an internal error: %r", self.conn_id, exc)
            log.debug("%s: the internal error", self.conn_id, exc_info=True)
            reason = self.session.boundary.text(f"internal error: {type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                await self._emit([GaveUp(self.adapter.name, self.clock(), self.conn_id, reason)])
        finally:
            for task in self._fetches:
                task.cancel()
            if self._http is not None:
                await self._http.aclose()
                self._http = None
            self.finished.set()

    def stream_count(self) -> int:
        """Streams (channel x product, or a venue-wide channel) this connection carries."""
        return sum(len(self.subs.products(c)) or 1 for c in self.subs.channels())

    def book_channel(self, product: str) -> str | None:
        """The book channel ``product`` is subscribed on here (a venue may have several: L2, L3...)."""
        return self.wanted.books().get(product)

    def accepts(self, product: str) -> bool:
        """Whether market data for ``product`` is wanted here (see ``Wanted.accepts``)."""
        return self.wanted.accepts(product)

    async def control(self, action: str, **args: Any) -> None:
        """A replay control: ``pause``, ``resume``, ``stop``, ``seek`` (``timestamp``), ``speed``."""
        if self.wanted.replay is None:
            raise ConfigError("not replaying")
        session, now = self.session, self.clock()
        self._journal("control", {"action": action, "args": args}, now=now)
        await self._handle(session, session.control(action, now, **args))

    async def start_journal(self, journal: Journal) -> None:
        """Start recording on a running connection. A recording must begin where a replay can begin,
        with a new connection (a session's protocol state cannot be written down mid-stream), so a
        connection that is up reconnects at once; the books come back from their new snapshots."""
        self.journal = journal
        ws = self._ws
        if ws is not None and self._end is None:
            self._end = _End(None, "recording started: a new connection to record from", planned=True)
            ws.transport.abort()

    def stop_journal(self) -> None:
        self.journal = None

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._connecting is not None:  # nothing to close yet: stop waiting for the handshake
            self._connecting.cancel()
        ws = self._ws
        if ws is not None:
            await ws.close(1000, "client closing")

    async def subscribe(self, channel: str, products: list[str]) -> None:
        """Add products to a channel now (if connected) and in the state restored on reconnect."""
        spec = self.adapter.channel(channel)
        new = self.subs.add(spec.name, products if spec.per_product else [])
        if spec.per_product and not new:
            return
        session, now = self.session, self.clock()
        self._journal("subscribed", {"channel": spec.name, "products": new}, now=now)
        await self._handle(session, session.subscribed(spec.name, new, now))

    async def unsubscribe(self, channel: str, products: list[str] | None = None) -> None:
        """Remove products (or the whole channel) now and from the restored state."""
        spec = self.adapter.channel(channel)
        removed = self.subs.remove(spec.name, products if spec.per_product else None)
        if not removed and spec.per_product:
            return
        session, now, whole = self.session, self.clock(), products is None
        self._journal("unsubscribed", {"channel": spec.name, "removed": removed, "whole": whole}, now=now)
        await self._handle(session, session.unsubscribed(spec.name, removed, whole, now))

    # --- the loop --------------------------------------------------------------------------

    def _journal(
        self, kind: str, arg: Any = None, body: bytes | None = None, now: float | None = None
    ) -> None:
        if self.journal is not None:
            text = arg if arg is None or isinstance(arg, str) else json.dumps(arg, separators=(",", ":"))
            self.journal.record(
                self.conn_id, self.adapter.name, self.clock() if now is None else now, kind, text, body
            )

    def start_session(self) -> Session:
        """A new session for a new connection (its protocol state starts clean)."""
        self.session = self.adapter.session_type(
            self.adapter,
            self.endpoint,
            self.conn_id,
            self.wanted,
            self.store,
            resync_timeout=self.policy.resync_timeout,
            retry_base=self.policy.base,
        )
        self._journal_session()
        return self.session

    def _journal_session(self) -> None:
        if self.journal is not None:
            plan = self.wanted.replay
            self._journal(
                "session",
                {
                    "endpoint": self.endpoint,
                    "subs": self.subs.as_dict(),
                    "products": self.wanted.products,
                    "rejected": sorted(self.wanted.rejected),
                    "replay": None if plan is None else asdict(plan),
                    "resync_timeout": self.policy.resync_timeout,
                    "retry_base": self.policy.base,
                },
            )

    async def _run(self) -> None:
        adapter, policy = self.adapter, self.policy
        attempt = 0
        shown = adapter.display_url(self.endpoint)
        while not self._stopping:
            await self._emit([Connecting(adapter.name, self.clock(), self.conn_id, shown, attempt + 1)])
            session = self.start_session()
            opened: float | None = None
            try:
                how = await self._prepare(session)
                if isinstance(how, _End):
                    end = how
                else:
                    self._connecting = asyncio.ensure_future(
                        connect(
                            how.url,
                            additional_headers=dict(how.headers) or None,
                            max_size=adapter.max_frame_size,
                            compression=None if _is_loopback(how.url) else "deflate",
                            proxy=None if _is_loopback(how.url) else True,
                            open_timeout=policy.open_timeout,
                            ping_interval=20,
                            ping_timeout=20,
                            close_timeout=2,
                            user_agent_header="tickerterm",
                            logger=_wire_log,
                            create_connection=FastConnection,
                        )
                    )
                    try:
                        ws = await self._connecting
                        assert isinstance(ws, FastConnection)
                    finally:
                        self._connecting = None
                    opened = time.monotonic()
                    end = await self._session(session, ws)
            except asyncio.CancelledError:
                if self._stopping:  # stop() while the handshake was on its way
                    break
                raise
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                end = _End(None, session.boundary.text(f"connect failed: {_describe(exc)}"))
                if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
                    status = exc.response.status_code
                    end.fatal = (
                        f"the venue refused the connection (HTTP {status} on the handshake): retrying "
                        f"cannot help; check the URL and {adapter.credential_help or 'the API key'}"
                    )
            if self._stopping:
                break
            if end.fatal:
                log.info("%s: closed (code %s: %s); giving up", self.conn_id, end.code, end.reason)
                await self._emit(
                    [GaveUp(adapter.name, self.clock(), self.conn_id, end.fatal, bad_input=end.bad_input)]
                )
                return
            lived = None if opened is None else time.monotonic() - opened
            if end.planned:  # announced by the venue: not a failure, back at once with everything
                attempt = 0
                await self._emit(
                    [RetryScheduled(adapter.name, self.clock(), self.conn_id, 0, 0.0, end.reason)]
                )
                log.info("%s: %s; reconnecting now", self.conn_id, end.reason)
                continue
            if lived is not None and lived >= policy.stable_after:
                attempt = 0
            attempt += 1
            if policy.budget is not None and attempt > policy.budget:
                tried = f"{attempt} connection attempt{'s' if attempt > 1 else ''} failed in a row"
                reason = f"{tried} ({policy.budget} retries allowed); last: {end.reason}"
                if opened is None:
                    reason += f" ({UNREACHABLE_HINT})"
                log.info("%s: closed (code %s: %s); giving up", self.conn_id, end.code, end.reason)
                await self._emit([GaveUp(adapter.name, self.clock(), self.conn_id, reason)])
                return
            delay = policy.delay(attempt, self.rng)
            if lived is not None and lived < policy.short_lived:
                delay = max(delay, policy.min_after_short)
            await self._emit(
                [
                    RetryScheduled(
                        adapter.name, self.clock(), self.conn_id, attempt, round(delay, 3), end.reason
                    )
                ]
            )
            log.info(
                "%s: closed (code %s: %s); retry %d in %.2fs",
                self.conn_id,
                end.code,
                end.reason,
                attempt,
                delay,
            )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _prepare(self, session: Session) -> Open | _End:
        """Ask the session where to connect; what it needs first (a listen key) is fetched here."""
        events = session.connect(self.clock())
        while True:
            if events:
                await self._handle(session, events)
                events = []
            actions = session.take_actions()
            if not actions:
                return _End(None, "nothing to connect to")
            for action in actions:
                if isinstance(action, Open):
                    return action
                if isinstance(action, Close):
                    return _end_of(action)
                if isinstance(action, Fetch):
                    events += await self._fetch_now(session, action)

    async def _session(self, session: Session, ws: FastConnection) -> _End:
        adapter = self.adapter
        self._ws = ws
        self._end = None
        self._reading = asyncio.current_task()
        await self._emit(
            [Connected(adapter.name, self.clock(), self.conn_id, adapter.display_url(self.endpoint))]
        )
        log.info(
            "%s: connected; restoring %s (retries so far %d, last close %s)",
            self.conn_id,
            self.subs.as_dict(),
            self.health.retries,
            self.health.last_close_code,
        )
        self._last_rx = time.monotonic()
        ticker = asyncio.create_task(self._guarded(partial(self._tick, session, ws), "the clock"))
        end: _End
        try:
            now = self.clock()
            self._journal("opened", now=now)
            await self._handle(session, session.opened(now))
            while self._end is None:
                await self._read(session, await ws.recv_batch())  # every frame of a socket read
            await ws.close(1000, "client closing")
            end = self._end
        except ConnectionClosed as exc:
            end = self._end if self._end is not None else _closed(exc, ws, session)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            for task in self._fetches:
                task.cancel()
            self._fetches.clear()
            self._ws = None
            self._reading = None
        now = self.clock()
        await self._emit([Closed(adapter.name, now, self.conn_id, end.code, end.reason)])
        self._journal("closed", end.reason, now=now)
        await self._handle(session, session.closed(end.reason, now))
        return end

    def receive(self, raw: bytes | str, now: float) -> list[Event]:
        """One frame from the venue, through its session into the store; returns the events to hand on.

        No I/O: the actions the frame asks for wait in the session (``_perform`` carries them out)."""
        if self.journal is not None:
            self.journal.record(self.conn_id, self.adapter.name, now, "frame", None, raw)
        return take_frame(self.session, self.store, raw, now)

    async def _read(self, session: Session, raws: list[bytes]) -> None:
        """The frames of one socket read, in order, each through the session into the store and its
        events handed on before the next (a sink sees the store as that frame left it); what only
        counts frames is done once for the read. Stops at a close the session asked for."""
        self._last_rx = time.monotonic()
        now = self.clock()
        store, hand_on = self.store, self._hand_on
        conn, venue = self.conn_id, self.adapter.name
        times: list[float] = []
        count = 0
        kept = 0  # frames journaled so far: those taken are journaled before anything can come between
        try:
            for raw in raws:
                count += 1  # first: a frame that raises is journaled too, as it was taken
                out = through(session, store, raw, now)
                exch = session.exch_ts
                if exch is not None:
                    times.append(exch)
                elif session.replayed_at is not None:
                    store.replay_progress(session.replayed_at)
                if out:
                    result = hand_on(out)
                    if result is not None:
                        kept = self._keep(raws, kept, count, now)
                        await result
                if session.has_actions:
                    kept = self._keep(raws, kept, count, now)
                    await self._perform(session)
                    if self._end is not None:
                        break
                if not count % YIELD_EVERY:  # thousands of tiny frames in a read must not freeze the screen
                    kept = self._keep(raws, kept, count, now)
                    await asyncio.sleep(0)
                    if self._end is not None:
                        break
        finally:
            self._keep(raws, kept, count, now)
        store.note_frames(conn, venue, now, count, times)
        store.note_ignored(conn, venue, *session.ignored())
        store.frame_applied()

    def _keep(self, raws: list[bytes], kept: int, taken: int, now: float) -> int:
        """``raws[kept:taken]`` journaled (frames taken and not yet journaled); returns ``taken``."""
        if self.journal is not None and taken > kept:
            self.journal.frames(self.conn_id, self.adapter.name, now, raws[kept:taken])
        return taken

    async def _handle(self, session: Session, events: list[Event]) -> None:
        """Events from the session outside the frame path: applied, checked, handed on; then its actions."""
        if events:
            await self._emit(take_events(session, self.store, events, self.clock()), applied=True)
        if session.has_actions:
            await self._perform(session)

    async def _perform(self, session: Session) -> None:
        """Carry out what the session asked for."""
        for action in session.take_actions():
            if session is not self.session:
                return  # an answer for a connection that has ended
            if isinstance(action, Send):
                await self._send(action.frames)
            elif isinstance(action, Fetch):
                task = asyncio.create_task(
                    self._guarded(partial(self._fetch, session, action), "a REST fetch")
                )
                self._fetches.add(task)
                task.add_done_callback(self._fetches.discard)
            elif isinstance(action, Close) and self._end is None:
                self._end = _end_of(action)
                ws = self._ws
                if ws is not None and asyncio.current_task() is not self._reading:
                    ws.transport.abort()  # the reader is waiting on the socket: end it now

    async def _fetch(self, session: Session, action: Fetch) -> None:
        """A REST call for the session while it is connected; its answer goes back to the session."""
        await self._handle(session, await self._fetch_now(session, action))

    async def _fetch_now(self, session: Session, action: Fetch) -> list[Event]:
        import httpx  # only venues with REST calls need it (and importing it pulls in rich)

        try:
            status, body = await self._request(action.request)
        except httpx.HTTPError as exc:
            now, reason = self.clock(), type(exc).__name__
            if session is self.session and not action.key.startswith(PRIVATE_FETCH):
                self._journal("fetch_failed", {"key": action.key, "reason": reason}, now=now)
            return session.fetch_failed(action.key, reason, now)
        now = self.clock()
        if session is self.session and not action.key.startswith(PRIVATE_FETCH):
            self._journal("fetched", {"key": action.key, "status": status}, body, now=now)
        return session.fetched(action.key, status, body, now)

    def _client(self) -> httpx.AsyncClient:
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.policy.open_timeout, headers={"User-Agent": "tickerterm"}
            )
        return self._http

    async def _request(self, request: HttpRequest) -> tuple[int, bytes]:
        """The status and body of a REST call, the body at most ``MAX_REST_BODY`` bytes (a larger one is
        an error, not a memory hog)."""
        import httpx

        client = self._client()
        async with client.stream(request.method, request.url, headers=dict(request.headers)) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_REST_BODY:
                    raise httpx.DecodingError(f"response larger than {MAX_REST_BODY >> 20} MiB")
                chunks.append(chunk)
        return response.status_code, b"".join(chunks)

    async def _guarded(self, work: Callable[[], Awaitable[None]], what: str) -> None:
        """A task beside the socket reader (the clock, a REST fetch): whatever it raises ends the
        connection with the reason, so it reconnects and rebuilds, never goes on half-working silently.
        ``work`` is made here, so a task cancelled before it starts leaves no coroutine unawaited."""
        try:
            await work()
        except Exception as exc:
            log.info("%s: %s failed: %r", self.conn_id, what, exc)
            log.debug("%s: the error", self.conn_id, exc_info=True)
            if self._end is None:
                reason = f"internal error in {what}: {type(exc).__name__}: {exc}"
                self._end = _End(None, self.session.boundary.text(reason))
                ws = self._ws
                if ws is not None:
                    ws.transport.abort()

    async def _tick(self, session: Session, ws: FastConnection) -> None:
        """The clock: the session's timers, and the staleness watchdog (no frame at all for longer than
        the venue's heartbeat allows: the connection is dead, whatever TCP says)."""
        check = min(1.0, self.stale_after / 4)
        while self._end is None:
            delay = check
            wake = session.wake_at()
            if wake is not None:
                delay = max(0.0, min(check, wake - self.clock()))
            await asyncio.sleep(delay)
            now = self.clock()
            self._journal("timer", now=now)
            await self._handle(session, session.timer(now))
            age = time.monotonic() - self._last_rx
            if age > self.stale_after and self._end is None:
                self._end = _End(None, f"stale: no message for {age:.1f}s")
                await self._emit([Stale(self.adapter.name, self.clock(), self.conn_id, round(age, 3))])
                ws.transport.abort()
                return

    async def _send(self, frames: tuple[str, ...] | list[str]) -> None:
        ws = self._ws
        if ws is None:
            return
        for frame in frames:
            await self._limiter.acquire()
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame)

    async def _emit(self, events: list[Event], *, applied: bool = False) -> None:
        """Apply ``events`` to the store (unless already ``applied``) and hand them to the sink."""
        if not applied:
            scrub = self.session.boundary.scrub
            for ev in events:
                self.store.apply(scrub(ev))
                if self.journal is not None:
                    self._journal("event", record(ev), now=ev.recv_ts)
        result = self._hand_on(events)
        if result is not None:
            await result

    def _hand_on(self, events: list[Event]) -> Awaitable[None] | None:
        """``events`` to the sink; what an async sink returns, to be awaited (None otherwise)."""
        return self.sink(events) if self.sink is not None and events else None


def _closed(exc: ConnectionClosed, ws: FastConnection, session: Session) -> _End:
    """How a connection that closed under the reader ended: the venue's close frame, or ours when we
    failed it (the venue broke the protocol: the reason says how), or neither (1006)."""
    wire = ws.wire_error
    if wire is not None:
        return _End(wire.code, session.boundary.text(f"{close_meaning(wire.code)}: {wire.reason}"))
    rcvd, sent = exc.rcvd, exc.sent
    if rcvd is not None:
        reason = session.boundary.text(rcvd.reason)
        return _End(rcvd.code, reason or close_meaning(rcvd.code))
    if sent is not None and sent.code != 1000:  # we failed it (websockets found the protocol broken)
        reason = session.boundary.text(sent.reason)
        return _End(
            sent.code, f"{close_meaning(sent.code)}: {reason}" if reason else close_meaning(sent.code)
        )
    return _End(1006, close_meaning(1006))


def _is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # not a URL at all: connecting will say so
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _describe(exc: BaseException) -> str:
    """Why a connection attempt failed, in words a user can act on."""
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code} on the handshake"
    if isinstance(exc, TimeoutError):
        return "timed out (no answer to the handshake)"
    if isinstance(exc, socket.gaierror):
        return f"name not resolved ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted ({exc.verify_message or exc.reason})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    text = str(exc) or type(exc).__name__
    return redact_url(text.splitlines()[0][:200])  # an invalid URL is quoted whole: its key must not be
