"""The connection loop, written once for every venue.

connect → subscribe (tracked state) → read → on close: classify, back off, reconnect, restore.

Each frame is parsed by the venue's per-connection parser, applied to the store, and the events (with
the ones the store implies) handed to the sink. Integrity rules live here, not in the venues: a
sequence gap makes the affected books UNSAFE and triggers a resync; a crossed book does too; a resync
that does not complete in time reconnects; a feed that goes silent longer than the venue's heartbeat
allows is stale and is reconnected; auth and command errors stop that subscription instead of looping.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from tickerterm.core.errors import ConfigError, FrameError, no_debug
from tickerterm.core.events import (
    BookResynced,
    BookResyncing,
    BookSnapshot,
    BookUnsafe,
    BookUpdate,
    Closed,
    Connected,
    Connecting,
    Event,
    Gap,
    GaveUp,
    Malformed,
    RetryScheduled,
    Stale,
    VenueError,
)
from tickerterm.core.health import close_meaning
from tickerterm.core.store import Store
from tickerterm.stream.boundary import Boundary, secrets_of
from tickerterm.stream.policy import Budget, RateLimiter, RetryPolicy
from tickerterm.venues.base import Parser, Subscriptions, VenueAdapter, redact_url

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)
_wire_log = logging.getLogger("tickerterm.stream.wire")
_wire_log.addFilter(no_debug)

Sink = Callable[[list[Event]], Awaitable[None] | None]

SNAPSHOT_ATTEMPTS = 3
"""REST book snapshot attempts before the connection is restarted."""

MALFORMED_PER_SECOND = 5.0
"""``malformed`` events a connection emits at most per second (each counts the frames it stands for)."""

MAX_REST_BODY = 64 * 2**20
"""The largest REST response read (a deep book snapshot is a few MB)."""

UNREACHABLE_HINT = "check the URL (--url) and the network; --sim runs the built-in simulator"


@dataclass(slots=True)
class ReplayPlan:
    """History to replay instead of live subscriptions (venues with replay: 0xArchive)."""

    product: str
    channels: list[str]
    start: float
    end: float
    speed: float = 1.0


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
    ) -> None:
        self.adapter = adapter
        self.endpoint = endpoint
        self.shard = shard
        """1 for the endpoint's first connection; 2, 3... for more under a per-connection stream limit."""
        self.started = False
        self.replay = replay
        """When set, the session replays this history instead of subscribing (resumed where it stood
        after a reconnect)."""
        self.conn_id = adapter.connection_id(endpoint) + ("" if shard == 1 else f"#{shard}")
        self.store = store
        self.subs = subscriptions or Subscriptions()
        self.sink = sink
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.rng = rng or random.Random()
        self.health = store.connection(self.conn_id, adapter.name)
        self.stale_after = self.policy.stale_after or adapter.stale_after
        self._limiter = RateLimiter(adapter.outbound_per_second, adapter.outbound_burst)
        self._ws: ClientConnection | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._end: _End | None = None
        self._resyncing: dict[str, float] = {}
        self._resync_wanted: dict[str, None] = {}
        self._last_sub: tuple[str, list[str]] | None = None
        self._last_rx = 0.0
        self.finished = asyncio.Event()
        self._book_channels = adapter.book_channels()
        self._books_of: tuple[int, dict[str, str]] = (-1, {})
        self._snapshot_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._http: httpx.AsyncClient | None = None
        self._listen_key = ""
        self._parser: Parser | None = None
        self._connecting: asyncio.Future[ClientConnection] | None = None
        self._malformed_limit = Budget(MALFORMED_PER_SECOND)
        self._unreported = 0
        """Malformed frames not reported yet (the next ``malformed`` event counts them)."""
        self._unreported_reason = ""
        self._rejected: set[str] = set()
        """Products the venue refused (an error naming them): dropped from every channel, for good."""
        self._resubscribe: dict[str, list[str]] = {}
        """Channels to subscribe again without the products the venue refused (it refused the frame)."""
        self._products = list(products or ())
        """The feed's products: market data for these (and for whatever is subscribed here) is wanted."""
        self._accepted: tuple[int, frozenset[str]] = (-1, frozenset())
        self.boundary = Boundary(secrets_of(adapter.credentials), self.accepts)
        for channel in adapter.keepalive_channels:  # on every endpoint: quiet channels stay open
            self.subs.add(channel, [])

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
            reason = self.boundary.text(f"internal error: {type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                await self._emit([GaveUp(self.adapter.name, self.clock(), self.conn_id, reason)])
        finally:
            if self._http is not None:
                await self._http.aclose()
                self._http = None
            self.finished.set()

    def stream_count(self) -> int:
        """Streams (channel x product, or a venue-wide channel) this connection carries."""
        return sum(len(self.subs.products(c)) or 1 for c in self.subs.channels())

    def book_channel(self, product: str) -> str | None:
        """The book channel ``product`` is subscribed on here (a venue may have several: L2, L3...).
        Asked for every book message, so the answer is kept until the subscriptions change."""
        return self._books().get(product)

    def accepts(self, product: str) -> bool:
        """Whether market data for ``product`` is wanted here: a product of the feed, or one subscribed on
        this connection. Everything else a venue sends is counted and dropped, never acted on."""
        version, accepted = self._accepted
        if version != self.subs.version:
            names = set(self._products)
            for channel in self.subs.channels():
                names.update(self.subs.products(channel))
            accepted = frozenset(names)
            self._accepted = (self.subs.version, accepted)
        return product in accepted

    def _books(self) -> dict[str, str]:
        """Product -> its book channel, in channel order (rebuilt when the subscriptions change)."""
        if self._books_of[0] != self.subs.version:
            books: dict[str, str] = {}
            for channel in self._book_channels:
                for product in self.subs.products(channel):
                    books.setdefault(product, channel)
            self._books_of = (self.subs.version, books)
        return self._books_of[1]

    async def control(self, action: str, **args: Any) -> None:
        """A replay control: ``pause``, ``resume``, ``stop``, ``seek`` (``timestamp``), ``speed``."""
        plan = self.replay
        if plan is None:
            raise ConfigError("not replaying")
        if action == "speed":  # a new replay from where it stands, at the new speed
            plan.speed = float(args["speed"])
            plan.start = self._replay_position()
            await self._send(
                self.adapter.replay_frames(plan.product, plan.channels, plan.start, plan.end, plan.speed)
            )
            return
        if action == "seek":
            plan.start = float(args["timestamp"])
        await self._send(self.adapter.control_frames(action, **args))

    def _replay_position(self) -> float:
        plan = self.replay
        assert plan is not None
        state = self.store.replay
        if state is not None and state.current is not None and plan.start <= state.current <= plan.end:
            return state.current
        return plan.start

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
        self._last_sub = (spec.name, new)
        if self._parser is not None:
            self._parser.restarted(spec.name, new)
        if self._ws is not None:
            if self.adapter.scoped:  # the venue takes the whole scope in one message
                await self._send(self.adapter.scope_frames(self._scope()))
                return
            await self._send(self.adapter.subscribe_frames(spec.name, new))
            for keepalive, added in self._follow_keepalive(new).items():
                await self._send(self.adapter.subscribe_frames(keepalive, added))

    def _all_products(self) -> list[str]:
        out: dict[str, None] = {}
        for channel in self.subs.channels():
            out.update(dict.fromkeys(self.subs.products(channel)))
        return list(out)

    def _follow_keepalive(self, products: list[str]) -> dict[str, list[str]]:
        """Per-product keepalive channels (Coinbase Exchange's heartbeat) follow the products
        subscribed on this connection; returns what was added."""
        added: dict[str, list[str]] = {}
        for name in self.adapter.keepalive_channels:
            if self.adapter.channel(name).per_product:
                new = self.subs.add(name, products)
                if new:
                    added[name] = new
        return added

    async def unsubscribe(self, channel: str, products: list[str] | None = None) -> None:
        """Remove products (or the whole channel) now and from the restored state."""
        spec = self.adapter.channel(channel)
        removed = self.subs.remove(spec.name, products if spec.per_product else None)
        if not removed and spec.per_product:
            return
        if spec.kind == "book":
            for p in removed:  # a book nobody updates any more must not be shown as live
                self.store.drop_book(self.adapter.name, p)
                self._resyncing.pop(p, None)
        if self._parser is not None:
            self._parser.restarted(spec.name, removed)
        if self._ws is not None:
            if self.adapter.scoped:
                await self._send(self.adapter.scope_frames(self._scope()))
                return
            await self._send(
                self.adapter.unsubscribe_frames(
                    spec.name, None if products is None else removed, listed=removed
                )
            )

    def _scope(self) -> dict[str, list[str]]:
        """What this connection keeps subscribed, channels without products left out."""
        return {
            c: self.subs.products(c)
            for c in self.subs.channels()
            if self.subs.products(c) or not self.adapter.channel(c).per_product
        }

    # --- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        adapter, policy = self.adapter, self.policy
        attempt = 0
        shown = adapter.display_url(self.endpoint)
        while not self._stopping:
            await self._emit([Connecting(adapter.name, self.clock(), self.conn_id, shown, attempt + 1)])
            opened: float | None = None
            try:
                url = await self._connect_url()
                self._connecting = asyncio.ensure_future(
                    connect(
                        url,
                        additional_headers=adapter.connect_headers(self.endpoint) or None,
                        max_size=adapter.max_frame_size,
                        compression=None if _is_loopback(url) else "deflate",
                        proxy=None if _is_loopback(url) else True,
                        open_timeout=policy.open_timeout,
                        ping_interval=20,
                        ping_timeout=20,
                        close_timeout=2,
                        user_agent_header="tickerterm",
                        logger=_wire_log,
                    )
                )
                try:
                    ws = await self._connecting
                finally:
                    self._connecting = None
            except asyncio.CancelledError:
                if self._stopping:  # stop() while the handshake was on its way
                    break
                raise
            except _ListenKeyError as exc:
                end = _End(None, str(exc), fatal=exc.fatal)
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                end = _End(None, self.boundary.text(f"connect failed: {_describe(exc)}"))
                if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
                    status = exc.response.status_code
                    end.fatal = (
                        f"the venue refused the connection (HTTP {status} on the handshake): retrying "
                        f"cannot help; check the URL and {adapter.credential_help or 'the API key'}"
                    )
            else:
                opened = time.monotonic()
                end = await self._session(ws)
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

    def _client(self) -> httpx.AsyncClient:
        import httpx  # only venues with REST calls need it (and importing it pulls in rich)

        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.policy.open_timeout, headers={"User-Agent": "tickerterm"}
            )
        return self._http

    async def _get(self, url: str, headers: dict[str, str]) -> bytes:
        """A REST body, at most ``MAX_REST_BODY`` bytes (a larger one is an error, not a memory hog);
        ``httpx.HTTPStatusError`` for a status of 400 or more."""
        import httpx

        async with self._client().stream("GET", url, headers=headers) as response:
            response.raise_for_status()
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_REST_BODY:
                    raise httpx.DecodingError(f"response larger than {MAX_REST_BODY >> 20} MiB")
                chunks.append(chunk)
        return b"".join(chunks)

    async def _connect_url(self) -> str:
        """The endpoint's URL; for a user-data stream, with a fresh listen key from the venue's REST API."""
        request = self.adapter.listen_key_request(self.endpoint)
        if request is None:
            return self.adapter.url(self.endpoint)
        import httpx

        try:
            response = await self._client().request(
                request.method, request.url, headers=dict(request.headers)
            )
        except httpx.HTTPError as exc:
            raise _ListenKeyError(f"listen key request failed: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise _ListenKeyError(
                f"listen key refused (HTTP {response.status_code})",
                fatal=f"the venue refused the API token (HTTP {response.status_code}): "
                f"{self.adapter.credential_help}",
            )
        if response.status_code >= 400:
            raise _ListenKeyError(f"listen key request failed (HTTP {response.status_code})")
        self._listen_key = self.adapter.parse_listen_key(response.content)
        return self.adapter.url_with_key(self.endpoint, self._listen_key)

    async def _ping(self) -> None:
        """Application-level pings, for venues that ask for them (0xArchive: every 25 s)."""
        frame = self.adapter.keepalive_frame()
        while frame is not None:
            await asyncio.sleep(self.adapter.keepalive_every)
            await self._send([frame])

    async def _keep_listen_key(self) -> None:
        """Renew the listen key while the session lasts; a refusal ends the session (a new key next)."""
        import httpx

        every = self.adapter.listen_key_keepalive
        while True:
            await asyncio.sleep(every)
            request = self.adapter.listen_key_keepalive_request(self.endpoint, self._listen_key)
            if request is None:
                return
            try:
                response = await self._client().request(
                    request.method, request.url, headers=dict(request.headers)
                )
                failed = f"HTTP {response.status_code}" if response.status_code >= 400 else ""
            except httpx.HTTPError as exc:
                failed = type(exc).__name__
            if failed:
                message = f"listen key keepalive failed ({failed})"
                await self._emit([VenueError(self.adapter.name, self.clock(), self.conn_id, message)])
                self._end = _End(None, message, planned=True)
                if self._ws is not None:
                    await self._ws.close(1000, "new listen key")
                return

    async def _session(self, ws: ClientConnection) -> _End:
        adapter = self.adapter
        self._ws = ws
        self._end = None
        parser = self.start_session()
        health = self.health
        store = self.store
        await self._emit(
            [Connected(adapter.name, self.clock(), self.conn_id, adapter.display_url(self.endpoint))]
        )
        restored = self.subs.as_dict()
        log.info(
            "%s: connected; restoring %s (retries so far %d, last close %s)",
            self.conn_id,
            restored,
            health.retries,
            health.last_close_code,
        )
        self._last_rx = time.monotonic()
        watchdog = asyncio.create_task(self._watchdog(ws))
        pinger = asyncio.create_task(self._ping()) if adapter.keepalive_every else None
        keeper = (
            asyncio.create_task(self._keep_listen_key())
            if self.adapter.listen_key_keepalive and self._listen_key
            else None
        )
        end: _End
        try:
            self._follow_keepalive(self._all_products())
            if self.replay is not None:  # history instead of live data, from where it stood
                plan = self.replay
                start = self._replay_position()
                await self._send(
                    adapter.replay_frames(plan.product, plan.channels, start, plan.end, plan.speed)
                )
            elif adapter.scoped:
                await self._send(adapter.scope_frames(self._scope()))
            for channel in self.subs.channels() if not (adapter.scoped or self.replay) else ():
                products = self.subs.products(channel)
                if adapter.channel(channel).per_product and not products:
                    continue
                await self._send(adapter.subscribe_frames(channel, products))
            # the books this connection feeds start from the snapshots the subscriptions bring
            while True:
                raw = await ws.recv(decode=False)
                self._last_rx = time.monotonic()
                out = self.receive(raw, self.clock())
                if out:
                    await self._emit(out, applied=True)
                if parser.snapshot_wanted:
                    self._fetch_snapshots(parser)
                if self._resync_wanted:
                    await self._resync()
                if self._resubscribe:
                    await self._subscribe_again()
                if self._end is not None:
                    await ws.close(1000, "client closing")
                    end = self._end
                    break
        except ConnectionClosed as exc:
            if self._end is not None:
                end = self._end
            else:
                rcvd = exc.rcvd
                code = rcvd.code if rcvd is not None else 1006
                reason = self.boundary.text(rcvd.reason if rcvd is not None else "")
                end = _End(code, reason or close_meaning(code))
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            for task in (keeper, pinger):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            for task in self._snapshot_tasks.values():
                task.cancel()
            self._snapshot_tasks.clear()
            self._ws = None
            self._resyncing.clear()
        now = self.clock()
        closed: list[Event] = [Closed(adapter.name, now, self.conn_id, end.code, end.reason)]
        reason = f"connection lost: {end.reason}"  # what arrives until the next snapshot is lost: say so
        closed += [
            BookUnsafe(adapter.name, now, self.conn_id, p, reason)
            for p in self._book_products()
            if store.book(adapter.name, p).state in ("ok", "resyncing")
        ]
        await self._emit(closed)
        return end

    def receive(self, raw: bytes | str, now: float) -> list[Event]:
        """One frame from the venue, through its parser into the store; returns the events to hand on.

        This is the error boundary: whatever the venue's code raises on a frame (not only ``FrameError``)
        makes it a counted malformed frame, and the books it could have touched are marked UNSAFE and
        rebuilt. No frame can end the stream, and none can leave a wrong book shown as good."""
        parser = self._parser
        assert parser is not None, "receive() before a session started"
        health = self.health
        try:
            events = parser.parse(raw, now)
            if parser.replayed_at is not None:  # history: its times say nothing of the latency
                health.note_message(now, None)
                self.store.replay_progress(parser.replayed_at)
                parser.replayed_at = None
            else:
                health.note_message(now, parser.last_exch_ts)
            out = self._apply(events) if events else []
        except Exception as exc:
            health.note_message(now, None)
            out = self._apply(self._malformed(parser, raw, exc, now))
        else:
            if self._unreported:  # the end of a flood: what was held back is counted now
                out += self._apply(self._report_malformed(now))
        health.unknown = parser.unknown
        health.out_of_order = parser.out_of_order
        health.unsolicited = self.boundary.dropped + parser.unsolicited
        return out

    def start_session(self) -> Parser:
        """A new parser for a new connection (its protocol state starts clean)."""
        parser = self._parser = self.adapter.parser(self.conn_id)
        parser.accepts = self.accepts
        self._resyncing.clear()
        self._resync_wanted.clear()
        return parser

    def _malformed(self, parser: Parser, raw: bytes | str, exc: Exception, now: float) -> list[Event]:
        """A frame the venue's code could not use (whatever it raised): counted and shown, and every book
        it could have touched is marked UNSAFE and rebuilt, so a lost change is never shown as good."""
        what = str(exc) if isinstance(exc, FrameError) else f"{type(exc).__name__}: {exc}"
        reason = self.boundary.text(what, 200)
        self._unreported += 1
        self._unreported_reason = reason
        events = self._report_malformed(now)  # a flood is reported a few times a second, every frame counted
        try:
            books = parser.books_of(raw)  # venue code too: it may fail on the same frame
        except Exception:
            books = None
        venue, store = self.adapter.name, self.store
        for product in self._book_products() if books is None else books:
            if self.book_channel(product) is not None and store.book(venue, product).state == "ok":
                events.append(BookUnsafe(venue, now, self.conn_id, product, f"malformed frame: {reason}"))
        return events

    def _report_malformed(self, now: float) -> list[Event]:
        """A ``malformed`` event for the frames not reported yet, if the rate allows one now."""
        if not self._unreported or not self._malformed_limit.take():
            return []
        count, self._unreported = self._unreported, 0
        return [Malformed(self.adapter.name, now, self.conn_id, self._unreported_reason, count)]

    async def _dispatch(self, events: list[Event]) -> None:
        await self._emit(self._apply(events), applied=True)

    def _apply(self, events: list[Event]) -> list[Event]:
        """Admit ``events`` through the boundary, apply them with what they imply (gap -> UNSAFE books,
        a crossed book...), and return everything that was applied, in order."""
        events = self.boundary.admit(events)
        store = self.store
        out: list[Event] = []
        conn = self.conn_id
        apply = store.apply
        book_channel = self.book_channel
        i = 0
        while i < len(events):
            ev = events[i]
            i += 1
            cls = type(ev)
            if (cls is BookUpdate or cls is BookSnapshot) and book_channel(ev.product) is None:  # type: ignore[attr-defined]
                continue  # still in flight after an unsubscribe: that book is gone, don't revive it
            out.append(ev)
            implied = apply(ev, conn)
            if cls is Gap:
                self._on_gap(ev, events, i)  # type: ignore[arg-type]
            elif cls is BookUnsafe:
                self._resync_wanted[ev.product] = None  # type: ignore[attr-defined]
            elif cls is BookResynced:
                self._resyncing.pop(ev.product, None)  # type: ignore[attr-defined]
            elif cls is VenueError:
                self._on_error(ev)  # type: ignore[arg-type]
            if implied:
                events[i:i] = implied
        store.frame_applied()
        return out

    def _book_products(self) -> list[str]:
        return list(self._books())

    def _on_gap(self, gap: Gap, events: list[Event], at: int) -> None:
        books = self._book_products()
        if not books:
            return
        reason = gap.describe()
        unsafe: list[Event] = [
            BookUnsafe(gap.venue, gap.recv_ts, self.conn_id, p, reason)
            for p in self.adapter.gap_products(gap, books)
        ]
        events[at:at] = unsafe

    def _on_error(self, ev: VenueError) -> None:
        kind = self.adapter.classify_error(ev.message)
        log.info("%s: venue error (%s): %s", self.conn_id, kind, ev.message)  # scrubbed; logs make it inert
        if kind == "transient":
            return
        if kind == "reconnect":
            self._end = _End(None, ev.message, planned=True)
            return
        if kind == "fatal":
            self._end = _End(None, ev.message, fatal=ev.message)
            return
        ev.fatal = True
        if kind == "auth":
            self._end = _End(
                None, ev.message, fatal=f"{ev.message} (check the API key: {self.adapter.credential_help})"
            )
            return
        named = self.adapter.rejected_products(ev.message, [*self._all_products(), *self._rejected])
        if named:  # the venue refused these products: they go, every other product goes on
            ev.product = named[0]
            self._reject([p for p in named if p not in self._rejected], ev.message)
        elif self._last_sub is not None:
            channel, products = self._last_sub
            self.subs.remove(channel, products)  # stop widening: don't send it again on reconnect
            self._last_sub = None

    def _reject(self, products: list[str], message: str) -> None:
        """Drop ``products`` from every channel here (the venue refused them) and subscribe the channels
        again with the rest, since the venue may have refused the whole frame; with none left, give up."""
        if not products:
            return
        self._rejected.update(products)
        self._products = [p for p in self._products if p not in self._rejected]
        left = False
        for channel in self.subs.channels():
            spec = self.adapter.channel(channel)
            if not spec.per_product:
                continue
            gone = self.subs.remove(channel, products)
            if spec.kind == "book":
                for p in gone:
                    self.store.drop_book(self.adapter.name, p)
            rest = self.subs.products(channel)
            if gone and rest:
                self._resubscribe[channel] = rest
            left = left or (bool(rest) and channel not in self.adapter.keepalive_channels)
        self._last_sub = None
        if not left:
            self._end = _End(
                None, message, fatal=f"{message} (the venue refused every product asked for)", bad_input=True
            )

    async def _subscribe_again(self) -> None:
        again, self._resubscribe = self._resubscribe, {}
        if self.adapter.scoped:
            await self._send(self.adapter.scope_frames(self._scope()))
            return
        for channel, products in again.items():
            await self._send(self.adapter.subscribe_frames(channel, products))

    async def _resync(self) -> None:
        by_channel: dict[str, list[str]] = {}
        for p in self._resync_wanted:
            channel = self.book_channel(p)
            if channel is not None and p not in self._resyncing:
                by_channel.setdefault(channel, []).append(p)
        self._resync_wanted.clear()
        for channel, products in by_channel.items():
            frames = (
                self.adapter.scope_frames(self._scope())
                if self.adapter.scoped
                else self.adapter.resync_frames(channel, products)
            )
            if self._parser is not None:
                for p in products:  # the parser drops the book and waits for (or asks for) a new one
                    self._parser.want_snapshot(channel, p)
                if self._parser.snapshot_wanted:
                    self._fetch_snapshots(self._parser)
            now = self.clock()
            await self._emit([BookResyncing(self.adapter.name, now, self.conn_id, p) for p in products])
            if frames is None:
                self._end = _End(None, f"reconnecting to resync {', '.join(products)}")
                return
            started = time.monotonic()
            for p in products:
                self._resyncing[p] = started
            await self._send(frames)

    def _fetch_snapshots(self, parser: Parser) -> None:
        """Start a REST fetch for each snapshot the parser asked for (one at a time per book), for
        products wanted here only: a venue naming other products starts no work."""
        wanted, parser.snapshot_wanted = parser.snapshot_wanted, []
        for key in wanted:
            if not self.accepts(key[1]):
                continue
            task = self._snapshot_tasks.get(key)
            if task is None or task.done():
                self._snapshot_tasks[key] = asyncio.create_task(self._fetch_snapshot(parser, *key))

    async def _fetch_snapshot(self, parser: Parser, channel: str, product: str) -> None:
        """Fetch one REST snapshot and hand it to the parser, retrying with backoff when the request
        fails or the body is not what the venue should send; a book waits as RESYNCING meanwhile, and
        after ``SNAPSHOT_ATTEMPTS`` failures the connection is restarted."""
        url = self.adapter.snapshot_url(channel, product)
        if url is None:
            return
        import httpx  # only venues with REST snapshots need it (and importing it pulls in rich)

        book = channel in self._book_channels
        what_for = "book snapshot" if book else f"{channel} history"
        for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
            try:
                body = await self._get(url, self.adapter.snapshot_headers(channel, product))
                events = parser.apply_snapshot(channel, product, body, self.clock())
            except httpx.HTTPError as exc:
                what = (
                    f"HTTP {exc.response.status_code}"
                    if isinstance(exc, httpx.HTTPStatusError)
                    else type(exc).__name__
                )
                failed: list[Event] = [
                    VenueError(
                        self.adapter.name,
                        self.clock(),
                        self.conn_id,
                        f"{product} {what_for} failed ({what}), attempt {attempt} of {SNAPSHOT_ATTEMPTS}",
                    )
                ]
            except Exception as exc:  # the body: venue input like any frame
                what = str(exc) if isinstance(exc, FrameError) else f"{type(exc).__name__}: {exc}"
                failed = [
                    Malformed(
                        self.adapter.name,
                        self.clock(),
                        self.conn_id,
                        f"{what_for}, attempt {attempt} of {SNAPSHOT_ATTEMPTS}: {what}",
                    )
                ]
            else:
                if events:
                    await self._dispatch(events)
                return
            if book and self.store.book(self.adapter.name, product).state != "resyncing":
                failed.append(BookResyncing(self.adapter.name, self.clock(), self.conn_id, product))
            await self._dispatch(failed)
            await asyncio.sleep(min(2.0**attempt, 8.0) * self.policy.base)
        if not book:
            return  # history for a chart: shown as an error, not worth the connection
        self._end = _End(None, f"no {product} book snapshot after {SNAPSHOT_ATTEMPTS} attempts")
        if self._ws is not None:
            self._ws.transport.abort()

    async def _watchdog(self, ws: ClientConnection) -> None:
        check = min(1.0, self.stale_after / 4)
        started = time.monotonic()
        silent_after = self.adapter.silent_after
        told: set[str] = set()
        while True:
            await asyncio.sleep(check)
            now = time.monotonic()
            if self._unreported:  # a flood that ended: what was held back is counted, a frame or not
                await self._emit(self._apply(self._report_malformed(self.clock())), applied=True)
            if silent_after and now - started > silent_after:
                quiet = [p for p in self._silent_products() if p not in told]
                if quiet:
                    told.update(quiet)
                    await self._emit([self._silence(p, silent_after) for p in quiet])
            age = now - self._last_rx
            if age > self.stale_after:
                self._end = _End(None, f"stale: no message for {age:.1f}s")
                await self._emit([Stale(self.adapter.name, self.clock(), self.conn_id, round(age, 3))])
                ws.transport.abort()
                return
            late = [p for p, t in self._resyncing.items() if now - t > self.policy.resync_timeout]
            if late:
                self._end = _End(None, f"resync of {', '.join(late)} did not complete")
                ws.transport.abort()
                return

    def _silent_products(self) -> list[str]:
        """Products subscribed here for market data that has not brought any yet."""
        store, venue = self.store, self.adapter.name

        def has_data(product: str) -> bool:
            key = (venue, product)
            book = store.books.get(key)
            return key in store.tickers or key in store.tapes or key in store.venue_candles or bool(book)

        wanted: dict[str, None] = {}
        for channel in self.subs.channels():
            if self.adapter.channel(channel).kind in ("ticker", "trades", "book", "candles"):
                wanted.update(dict.fromkeys(self.subs.products(channel)))
        return [p for p in wanted if not has_data(p)]

    def _silence(self, product: str, after: float) -> VenueError:
        name = self.adapter.wire_symbol(product)
        return VenueError(
            self.adapter.name,
            self.clock(),
            self.conn_id,
            f"no data for {product} ({name}) after {after:.0f} s: {self.adapter.title} sends nothing for a "
            "symbol it does not know; check the product",
            product=product,
        )

    async def _send(self, frames: list[str]) -> None:
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
            for ev in events:
                self.store.apply(self.boundary.scrub(ev), self.conn_id)
        if self.sink is not None and events:
            result = self.sink(events)
            if result is not None:
                await result


class _ListenKeyError(Exception):
    def __init__(self, message: str, fatal: str | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal


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
