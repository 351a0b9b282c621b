"""Recording into one SQLite file: the journal every replay is built from, and tables to query.

The journal keeps what each venue session was fed (the raw wire frames with their receive times, REST
answers, ticks of the clock, subscription changes) and the worker's own events (connects, closes,
retries): replayed through the same venue code, it gives the same events, so any venue can be replayed.
Beside it, normalized tables for SQL: trades, tickers, candles (the venue's and those built from
trades), top-of-book changes (at most a few a second per product), full book snapshots every minute,
and health events. The README documents the schema with example queries.

Recording never slows the feed: the event loop only appends rows to bounded queues; a thread takes
them every 200 ms and writes them in batches (WAL). A writer that falls behind or fails is said, with
counts (``Recording`` events: ``behind``, ``lost``); at the size limit recording stops and says so.
Every configured secret is removed from frames and REST bodies before they reach the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import zstandard

from tickerterm import __version__
from tickerterm.core.events import (
    Event,
    Recording,
)
from tickerterm.core.safe import Redactor
from tickerterm.core.store import Store
from tickerterm.record.replay import CODEC
from tickerterm.record.rows import Rows, inserts, schema

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_MAX_BYTES = 2 * 2**30
"""Recording stops at this size (``--record-max``): a long session cannot fill the disk."""
QUEUE_ROWS = 200_000
"""Rows waiting for the writer at most; past it rows are dropped and counted (``lost``)."""
WRITE_EVERY = 0.2
"""The writer takes what is waiting this often: a deque append is all the event loop pays per row
(``queue.Queue`` took a lock and notified the writer for each, and woke it for a handful of rows).
Fewer, larger transactions: at blast rate recording cost the feed 19.7% with the writer waking every
50 ms, 13.5-14.5% every 200 or 500 ms, 16% every second (megabytes more frames waiting); a crash
loses at most the last 200 ms (bench/README.md)."""
BATCH_ROWS = 20_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    conn TEXT NOT NULL, venue TEXT NOT NULL, time REAL NOT NULL,
    kind TEXT NOT NULL, arg TEXT, body BLOB
);
""" + schema("REAL", "INTEGER")

_INSERT = {
    "journal": "INSERT INTO journal (conn, venue, time, kind, arg, body) VALUES (?, ?, ?, ?, ?, ?)",
    **inserts(
        lambda n: "?",
        "{sql} ON CONFLICT DO NOTHING",
        lambda sql, key: sql.replace("INSERT INTO", "INSERT OR REPLACE INTO", 1),
    ),
}


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1024`` (bytes) -> bytes; ValueError for anything else."""
    t = text.strip().upper().removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(t[-1:], 1)
    number = t[:-1] if scale != 1 else t
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (e.g. 500M, 2G)") from None
    if not value > 0:
        raise ValueError(f"not a size: {text!r} (e.g. 500M, 2G)")
    return int(value * scale)


def parse_limits(text: str) -> tuple[int, float]:
    """``2G``, ``6h`` or ``2G,6h`` -> (bytes, seconds: 0 = no age limit); ValueError naming the forms."""
    size, age = DEFAULT_MAX_BYTES, 0.0
    for part in (p.strip() for p in text.split(",") if p.strip()):
        unit = part[-1:].lower()
        if unit in ("s", "h", "d") or (unit == "m" and part[-1:] == "m"):
            try:
                value = float(part[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
            except ValueError:
                value = 0.0
            if not value > 0:
                raise ValueError(f"not a limit: {part!r} (a size such as 500M, 2G; an age such as 30m, 6h)")
            age = value
        else:
            try:
                size = parse_size(part)
            except ValueError:
                raise ValueError(
                    f"not a limit: {part!r} (a size such as 500M, 2G; an age such as 30m, 6h)"
                ) from None
    return size, age


class Recorder:
    """One recording (see the module docstring). ``record`` and ``events`` run on the event loop and
    never block; ``close`` waits for the writer to finish."""

    def __init__(
        self,
        path: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_seconds: float = 0.0,
        secrets: Iterable[str] = (),
        queue_rows: int = QUEUE_ROWS,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        """Recording stops after this long (0: only the size limit)."""
        self._started = time.time()
        self._redact = Redactor(secrets)
        self._queue_rows = queue_rows
        self._frames: deque[tuple[Any, ...]] = deque()
        """Journal rows waiting for the writer: single rows, and the frames of a socket read as one
        item (kind ``frames``, ``body`` the list) that the writer makes rows of."""
        self._given = 0
        """Journal rows put in ``_frames`` (counted on the event loop only)."""
        self._taken = 0
        """Journal rows the writer took from ``_frames`` (counted by the writer only): two counters,
        so neither thread writes what the other writes."""
        self._pending: deque[tuple[str, tuple[Any, ...]]] = deque()
        """Rows of the other tables waiting for the writer."""
        self._closing = threading.Event()
        self.state = "on"
        self.error = ""
        self.rows = 0
        self.lost = 0
        self.bytes = 0
        self._meta = dict(meta or {})
        rows = Rows(self._put)
        self.events: Callable[[list[Event], Store | None], None] = rows.add
        """The normalized rows for ``events``, once they are applied to ``store``."""
        self._rows = rows
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the file (it must be writable: the error is raised here, before the feed starts)."""
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        db = _connect(self.path)
        try:
            rows = {
                "schema_version": str(SCHEMA_VERSION),
                "tickerterm": __version__,
                "started": repr(time.time()),
                **{k: json.dumps(v) for k, v in self._meta.items()},
            }
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", rows.items())
            db.commit()
        finally:
            db.close()
        self._thread = threading.Thread(target=self._run, name="tickerterm-recorder", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and close the file."""
        thread = self._thread
        if thread is None:
            return
        self._closing.set()
        thread.join(timeout)
        self._thread = None
        if self.state == "on":
            self.state = "closed"

    async def aclose(self) -> None:
        """``close`` off the event loop."""
        await asyncio.to_thread(self.close)

    def status(self, now: float) -> Recording:
        return Recording(
            "recorder",
            now,
            "recorder",
            self.path,
            self.state,
            self.bytes,
            self.rows,
            self._given - self._taken + len(self._pending),
            self.lost,
            self.max_bytes,
            self.error,
        )

    # --- on the event loop -----------------------------------------------------------------

    def record(
        self,
        conn: str,
        venue: str,
        now: float,
        kind: str,
        arg: str | None = None,
        body: bytes | str | None = None,
    ) -> None:
        """One journal row (the stream worker's ``Journal``): a frame's body as it came (text or bytes),
        turned into bytes by the writer, off the loop's path."""
        if self.state != "on" or self._given - self._taken >= self._queue_rows:
            self.lost += 1
        else:
            self._frames.append((conn, venue, now, kind, arg, body))
            self._given += 1

    def frames(self, conn: str, venue: str, now: float, raws: list[bytes]) -> None:
        """Frames of one socket read (``Journal.frames``): one item for the writer, however many."""
        n = len(raws)
        if self.state != "on" or self._given - self._taken + n > self._queue_rows:
            self.lost += n
        else:
            self._frames.append((conn, venue, now, "frames", None, raws))
            self._given += n

    def flush(self, store: Store | None, now: float, venue: str | None = None) -> None:
        """The rows that come from looking at the books (``Rows.flush``)."""
        self._rows.flush(store, now, venue)

    def _put(self, table: str, row: tuple[Any, ...]) -> None:
        if self.state != "on":
            self.lost += 1
            return
        if len(self._pending) >= self._queue_rows:
            self.lost += 1
        else:
            self._pending.append((table, row))

    # --- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        frames, pending = self._frames, self._pending
        buf = bytearray()
        try:
            db = _connect(self.path)
            while True:
                closing = self._closing.is_set()
                if not frames and not pending:
                    if closing:
                        break
                    self._closing.wait(WRITE_EVERY)
                    continue
                batch: dict[str, list[tuple[Any, ...]]] = {}
                journal = _take(frames, BATCH_ROWS)
                self._taken += len(journal)
                count = len(journal)
                for _ in range(min(len(pending), BATCH_ROWS)):
                    table, row = pending.popleft()
                    batch.setdefault(table, []).append(row)
                    count += 1
                if self.state != "on":
                    self.lost += count
                    continue
                if self._redact:
                    journal = [self._scrub(row) for row in journal]
                if len(journal) > 1:
                    batch["journal"] = _packed(journal, buf)
                elif journal:
                    batch["journal"] = [_as_bytes(journal[0])]
                with db:
                    for table, rows in batch.items():
                        db.executemany(_INSERT[table], rows)
                self.rows += count
                self.bytes = _size(self.path)
                if self.max_seconds and time.time() - self._started >= self.max_seconds:
                    self.state = "full"
                    self.error = f"age limit reached ({_duration(self.max_seconds)})"
                    log.warning("recording %s reached its age limit: stopped", self.path)
                elif self.bytes >= self.max_bytes:
                    self.state = "full"
                    log.warning(
                        "recording %s reached its limit (%d bytes): stopped", self.path, self.max_bytes
                    )
                if not closing and self._given - self._taken < BATCH_ROWS:
                    self._closing.wait(WRITE_EVERY)  # let rows gather: fewer, larger transactions
        except Exception as exc:  # a full disk, a file removed: said, never raised into the feed
            self.state = "failed"
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("recording %s failed: %s", self.path, self.error)
            waiting = self._given - self._taken
            frames.clear()
            self._taken += waiting
            self.lost += waiting + len(pending)  # what is still waiting is lost, and counted
            pending.clear()
        finally:
            if db is not None:
                db.close()

    def _scrub(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        conn, venue, now, kind, arg, body = row
        if arg is not None:
            arg = self._redact(arg)
        if body is not None:
            text = body if isinstance(body, str) else body.decode("utf-8", "surrogateescape")
            body = self._redact(text).encode("utf-8", "surrogateescape")
        return (conn, venue, now, kind, arg, body)


PACK = 1000
"""Journal entries per ``batch`` row: a row per frame costs the writer a GIL hand-over each, and at a
few thousand frames a second beside a busy event loop that is what it cannot keep up with."""
PACK_BYTES = 8 * 2**20
"""...and at most this many bytes of frames (a batch row is read whole by a replay)."""
_encode_into = msgspec.msgpack.Encoder().encode_into
_compress = zstandard.ZstdCompressor(level=1).compress
"""Batch rows are compressed (zstd, level 1): frames are JSON that shrinks 10-13x, and at a blast of
~40,000 frames a second SQLite writing 80 MB/s took a third of a core beside the feed on two cores;
zstd takes 0.1 (zlib at level 1 compressed 3.3x slower for a lower ratio: bench/README.md)."""


def _packed(rows: list[tuple[Any, ...]], buf: bytearray) -> list[tuple[Any, ...]]:
    """Consecutive journal rows as ``batch`` rows: ``time`` the first entry's, ``arg`` the last entry's
    time, the count and the codec, ``body`` the entries (msgpack ``[conn, venue, time, kind, arg,
    body]``) compressed. A batch over ``PACK_BYTES`` is split in halves (down to one entry). ``buf``:
    the writer's own, kept from batch to batch (a new megabytes-long buffer each batch is fresh memory
    to fault in, with the GIL held: the feed waited for it)."""
    out: list[tuple[Any, ...]] = []
    for i in range(0, len(rows), PACK):
        _pack(rows[i : i + PACK], out, buf)
    return out


def _pack(chunk: list[tuple[Any, ...]], out: list[tuple[Any, ...]], buf: bytearray) -> None:
    _encode_into(chunk, buf)
    if len(buf) > PACK_BYTES and len(chunk) > 1:
        half = len(chunk) // 2
        _pack(chunk[:half], out, buf)
        _pack(chunk[half:], out, buf)
        return
    arg = json.dumps({"until": chunk[-1][2], "n": len(chunk), "codec": CODEC})
    out.append(("", "", chunk[0][2], "batch", arg, _compress(buf)))


def _take(items: deque[tuple[Any, ...]], most: int) -> list[tuple[Any, ...]]:
    """Journal rows from the front of ``items`` until ``most`` are taken (the frames of a read are
    taken whole: a few more may come)."""
    out: list[tuple[Any, ...]] = []
    while items and len(out) < most:
        item = items.popleft()
        if item[3] == "frames":
            conn, venue, now, _kind, _arg, raws = item
            out += [(conn, venue, now, "frame", None, raw) for raw in raws]
        else:
            out.append(item)
    return out


def _as_bytes(row: tuple[Any, ...]) -> tuple[Any, ...]:
    body = row[5]
    if isinstance(body, str):
        return (*row[:5], body.encode("utf-8", "surrogateescape"))
    return row


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)
    # frames are kilobytes: large pages and rarer checkpoints halve the writer's work (bench/README.md)
    db.execute("PRAGMA page_size=32768")  # takes effect on a new file only
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA wal_autocheckpoint=2000")  # pages: a checkpoint every ~64 MB
    db.executescript(SCHEMA)
    return db


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _size(path: str) -> int:
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += os.path.getsize(path + suffix)
    return total
