"""A recording played back through the same venue code: the same events, for every venue.

Each session of the recording is made again (``Session`` of the venue, with the subscriptions it
started with) and fed what it was fed live, at the times it was fed; the worker's own events (connects,
closes, retries) are played back as they were. No socket is opened and no action is carried out: the
events come out as they did live, so the NDJSON of a replay is the NDJSON of the live run.

``FileReplay`` behaves as a feed for the dashboard and the command line: it fills a store, hands
events to a sink or an async iterator, and takes the replay controls (pause, resume, seek, speed,
stop) the venue-side replay of 0xArchive takes.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import zstandard

from tickerterm.core.errors import ConfigError
from tickerterm.core.events import Event
from tickerterm.core.ndjson import event_of
from tickerterm.core.store import Store
from tickerterm.stream.playback import Replaying
from tickerterm.stream.worker import Sink, take_events, take_frame
from tickerterm.venues import venue_class
from tickerterm.venues.session import ReplayPlan, Session, Subscriptions, Wanted

Row = tuple[int, str, str, float, str, str | None, bytes | None]


def open_file(path: str) -> sqlite3.Connection:
    """The recording at ``path``, read only; ConfigError naming the problem otherwise."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        db.execute("SELECT 1 FROM journal LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"{path} is not a tickerterm recording ({exc})") from None
    return db


def meta_of(db: sqlite3.Connection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in db.execute("SELECT key, value FROM meta"):
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def span_of(db: sqlite3.Connection) -> tuple[float, float]:
    first, last = db.execute(
        "SELECT min(time), max(CASE WHEN kind = 'batch' THEN json_extract(arg, '$.until') ELSE time END) "
        "FROM journal"
    ).fetchone()
    if first is None:
        raise ConfigError("the recording is empty")
    return float(first), float(last)


def last_trouble(db: sqlite3.Connection) -> float | None:
    """When the most recent gap, close or stale feed of the recording happened."""
    row = db.execute("SELECT max(time) FROM health WHERE type IN ('gap', 'closed', 'stale')").fetchone()
    return None if row is None or row[0] is None else float(row[0])


class FileReplay(Replaying):
    """A recording as a feed (see the module docstring)."""

    def __init__(
        self,
        path: str,
        *,
        store: Store | None = None,
        sink: Sink | None = None,
        collect: bool = True,
        speed: float = 1.0,
        start: float | None = None,
        end: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._db = open_file(path)
        self.meta = meta_of(self._db)
        self.venue = str(self.meta.get("venue", ""))
        venue_class(self.venue)  # ConfigError for a venue this version does not know
        self.products: list[str] = list(self.meta.get("products", []))
        self.first, self.last = span_of(self._db)
        self.start = self.first if start is None else start
        self.end = self.last if end is None else end
        self._replaying(store, sink, collect, speed, clock)
        self.position = self.start
        self.replay = ReplayPlan(self.venue, [], self.start, self.end, speed)

    async def __aenter__(self) -> FileReplay:
        await self.start_replay()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start_replay(self) -> None:
        self._start_task(f"replay:{self.path}")

    async def stop(self) -> None:
        await self._stop_task()
        self._db.close()

    async def _last_trouble(self) -> float | None:
        return last_trouble(self._db)

    async def _play(self, at: float) -> float | None:
        """Play from the recording's start, silent before ``at``; returns where to seek to (None: done)."""
        self._rebuilding()
        sessions: dict[str, Session] = {}
        playback = self.playback
        for row in self._rows():
            _seq, conn, venue, now, kind, arg, body = row
            if now > self.end:
                break
            if playback.stopped:
                return None
            seek = playback.take_seek()
            if seek is not None:
                return seek
            live = now >= at
            if live:
                await playback.pace(now)
            events = self._feed(sessions, conn, venue, now, kind, arg, body)
            self.position = now
            if live and events:
                await self._hand_on(events)
            elif live:
                await asyncio.sleep(0)
        return None

    def _rows(self) -> Iterator[Row]:
        cursor = self._db.execute("SELECT seq, conn, venue, time, kind, arg, body FROM journal ORDER BY seq")
        decode = msgspec.msgpack.Decoder().decode
        while True:
            chunk = cursor.fetchmany(200)
            if not chunk:
                return
            for row in chunk:
                if row[4] == "batch":  # entries the writer packed into one row (record/sqlite.py)
                    try:
                        entries = decode(unpack_batch(row[5], row[6]))
                    except (msgspec.DecodeError, ValueError, TypeError) as exc:
                        raise ConfigError(f"a journal batch that does not read ({exc}): damaged") from None
                    for conn, venue, now, kind, arg, body in entries:
                        yield (row[0], conn, venue, now, kind, arg, body)
                else:
                    yield row

    def _feed(
        self,
        sessions: dict[str, Session],
        conn: str,
        venue: str,
        now: float,
        kind: str,
        arg: str | None,
        body: bytes | str | None,
    ) -> list[Event]:
        """One journal row: what its session answers, or the worker's event it recorded."""
        store = self.store
        if kind == "event":
            ev = event_of(json.loads(arg or "{}"))
            store.apply(ev)
            return [ev]
        if kind == "session":
            sessions[conn] = self._session(conn, venue, json.loads(arg or "{}"))
            return []
        session = sessions.get(conn)
        if session is None:
            return []
        if kind == "frame":
            out = take_frame(session, store, body or b"", now)
        else:
            data = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else body
            out = take_events(session, store, self._input(session, kind, arg, data, now), now)
        session.take_actions()  # nothing is carried out: no socket, no REST
        return out

    @staticmethod
    def _input(session: Session, kind: str, arg: str | None, body: bytes | None, now: float) -> list[Event]:
        data: Any = json.loads(arg) if arg and kind != "closed" else None
        if kind == "opened":
            return session.opened(now)
        if kind == "timer":
            return session.timer(now)
        if kind == "fetched":
            return session.fetched(data["key"], int(data["status"]), body or b"", now)
        if kind == "fetch_failed":
            return session.fetch_failed(data["key"], str(data["reason"]), now)
        if kind == "subscribed":
            new = session.wanted.subs.add(data["channel"], data["products"])
            return session.subscribed(data["channel"], new, now) if new or not data["products"] else []
        if kind == "unsubscribed":
            whole = bool(data["whole"])
            removed = session.wanted.subs.remove(data["channel"], None if whole else data["removed"])
            return session.unsubscribed(data["channel"], removed, whole, now)
        if kind == "control":
            return session.control(data["action"], now, **data["args"])
        if kind == "closed":
            return session.closed(arg or "", now)
        return []

    def _session(self, conn: str, venue: str, state: dict[str, Any]) -> Session:
        adapter = venue_class(venue)()
        subs = Subscriptions()
        for channel, products in state.get("subs", {}).items():
            subs.add(channel, products)
        plan = state.get("replay")
        wanted = Wanted(adapter, state.get("products", []), subs, ReplayPlan(**plan) if plan else None)
        wanted.rejected.update(state.get("rejected", []))
        session = adapter.session_type(
            adapter,
            str(state.get("endpoint", "market")),
            conn,
            wanted,
            self.store,
            resync_timeout=float(state.get("resync_timeout", 10.0)),
            retry_base=float(state.get("retry_base", 0.5)),
        )
        session.offline = True  # answers come from the recording; nothing is sent or signed
        return session


CODEC = "zstd"
"""How the writer compresses a journal batch (``arg``'s ``codec``; ``record/sqlite.py`` writes it)."""
MAX_BATCH = 256 * 2**20
"""The most a batch row may inflate to (the writer packs at most 8 MiB of frames into one): a file
that claims more is refused, not allocated."""


def unpack_batch(arg: str | None, body: bytes) -> bytes:
    """A batch row's entries as msgpack: compressed since the recording format's zstd batches (the
    codec is in ``arg``), plain in files recorded before."""
    codec = json.loads(arg).get("codec") if arg else None
    if not codec:
        return body
    if codec != CODEC:
        raise ConfigError(f"a journal batch compressed with {str(codec)[:20]!r}: not known here")
    try:
        size = zstandard.frame_content_size(body)
        if size > MAX_BATCH:
            raise ConfigError(f"a journal batch that claims {size} bytes: damaged")
        return zstandard.ZstdDecompressor().decompress(body, max_output_size=MAX_BATCH)
    except zstandard.ZstdError as exc:
        raise ConfigError(f"a journal batch that does not decompress ({exc}): damaged") from None
