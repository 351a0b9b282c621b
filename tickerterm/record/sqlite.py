"""Recording into one SQLite file: the journal every replay is built from, and tables to query.

The journal keeps what each venue session was fed (the raw wire frames with their receive times, REST
answers, ticks of the clock, subscription changes) and the worker's own events (connects, closes,
retries): replayed through the same venue code, it gives the same events, so any venue can be replayed.
Beside it, normalized tables for SQL: trades, tickers, candles (the venue's and those built from
trades), top-of-book changes (at most a few a second per product), full book snapshots every minute,
and health events. The README documents the schema with example queries.

Recording never slows the feed: the event loop only puts rows on a bounded queue; a thread writes them
in batches (WAL). A writer that falls behind or fails is said, with counts (``Recording`` events:
``behind``, ``lost``); at the size limit recording stops and says so. Every configured secret is
removed from frames and REST bodies before they reach the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Any

import msgspec

from tickerterm import __version__
from tickerterm.core.events import (
    Event,
    Recording,
)
from tickerterm.core.safe import Redactor
from tickerterm.core.store import Store
from tickerterm.record.rows import Rows, inserts, schema

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_MAX_BYTES = 2 * 2**30
"""Recording stops at this size (``--record-max``): a long session cannot fill the disk."""
QUEUE_ROWS = 200_000
"""Rows waiting for the writer at most; past it rows are dropped and counted (``lost``)."""

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
        self._queue: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue(maxsize=queue_rows)
        self.state = "on"
        self.error = ""
        self.rows = 0
        self.lost = 0
        self.bytes = 0
        self._meta = dict(meta or {})
        self._rows = Rows(self._put)
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
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
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
            self._queue.qsize(),
            self.lost,
            self.max_bytes,
            self.error,
        )

    # --- on the event loop -----------------------------------------------------------------

    def record(
        self, conn: str, venue: str, now: float, kind: str, arg: str | None = None, body: bytes | None = None
    ) -> None:
        """One journal row (the stream worker's ``Journal``)."""
        self._put("journal", (conn, venue, now, kind, arg, body))

    def events(self, events: list[Event], store: Store | None) -> None:
        """The normalized rows for ``events``, once they are applied to ``store``."""
        self._rows.add(events, store)

    def _put(self, table: str, row: tuple[Any, ...]) -> None:
        if self.state != "on":
            self.lost += 1
            return
        try:
            self._queue.put_nowait((table, row))
        except queue.Full:
            self.lost += 1

    # --- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            db = _connect(self.path)
            done = False
            while not done:
                item = self._queue.get()
                batch: dict[str, list[tuple[Any, ...]]] = {}
                count = 0
                while True:
                    if item is None:
                        done = True
                        break
                    table, row = item
                    if table == "journal" and self._redact:
                        row = self._scrub(row)
                    batch.setdefault(table, []).append(row)
                    count += 1
                    if count >= 5000:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if self.state != "on":
                    self.lost += count
                    continue
                journal = batch.get("journal")
                if journal is not None and len(journal) > 1:
                    batch["journal"] = _packed(journal)
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
        except Exception as exc:  # a full disk, a file removed: said, never raised into the feed
            self.state = "failed"
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("recording %s failed: %s", self.path, self.error)
            while True:  # what is still queued is lost, and counted
                try:
                    if self._queue.get_nowait() is not None:
                        self.lost += 1
                except queue.Empty:
                    break
        finally:
            if db is not None:
                db.close()

    def _scrub(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        conn, venue, now, kind, arg, body = row
        if arg is not None:
            arg = self._redact(arg)
        if body is not None:
            body = self._redact(body.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        return (conn, venue, now, kind, arg, body)


PACK = 1000
"""Journal entries per ``batch`` row: a row per frame costs the writer a GIL hand-over each, and at a
few thousand frames a second beside a busy event loop that is what it cannot keep up with."""
_encode = msgspec.msgpack.Encoder().encode


def _packed(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Consecutive journal rows as ``batch`` rows: ``time`` the first entry's, ``arg`` the last entry's
    time and the count, ``body`` the entries (msgpack ``[conn, venue, time, kind, arg, body]``)."""
    out = []
    for i in range(0, len(rows), PACK):
        chunk = rows[i : i + PACK]
        arg = json.dumps({"until": chunk[-1][2], "n": len(chunk)})
        out.append(("", "", chunk[0][2], "batch", arg, _encode([list(r) for r in chunk])))
    return out


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
