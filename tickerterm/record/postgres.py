"""Recording into PostgreSQL (``--record postgresql://…``): the same tables as the SQLite file, for a
store several people query.

asyncpg writes the rows in batches, one transaction each, on the event loop (the feed only appends to
a bounded buffer; the driver's network I/O never blocks it). Trades are idempotent by venue, product and
trade id, so a batch sent again after a lost connection is never doubled. While the server is away the
writer reconnects with backoff and says so (``recording`` events: ``reconnecting``, ``behind``); rows
past the buffer spill to a local file and are written when the server is back; nothing is dropped
silently (``lost`` counts what even the spill file could not take).

The journal (what replays a session) stays in SQLite files: PostgreSQL keeps the queryable tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import tempfile
from collections import deque
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tickerterm.core.errors import ConfigError
from tickerterm.core.events import Event, Recording
from tickerterm.core.store import Store
from tickerterm.record.rows import Rows, inserts, schema
from tickerterm.venues.base import redact_url

log = logging.getLogger(__name__)

BUFFER_ROWS = 100_000
"""Rows kept in memory while the server is away; past it they spill to a local file."""
SPILL_MAX_BYTES = 2 * 2**30
BATCH_ROWS = 2000
CLOSE_WITHIN = 10.0
"""Seconds a closing recorder waits for the server to take what is buffered."""
APPLICATION_NAME = "tickerterm-recorder"

SCHEMA = schema("DOUBLE PRECISION", "BIGINT")


def _upsert(sql: str, key: tuple[str, ...]) -> str:
    return f"{sql} ON CONFLICT ({', '.join(key)}) DO UPDATE SET " + ", ".join(
        f"{c} = EXCLUDED.{c}" for c in ("open", "high", "low", "close", "volume")
    )


_INSERT = inserts(lambda n: f"${n}", "{sql} ON CONFLICT DO NOTHING", _upsert)


def split_dsn(dsn: str) -> tuple[str, str | None]:
    """``postgresql://…?schema=NAME`` -> the DSN without ``schema`` and the schema (tables go there)."""
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PgRecorder:
    """A recording into PostgreSQL (see the module docstring)."""

    def __init__(
        self,
        dsn: str,
        *,
        buffer_rows: int = BUFFER_ROWS,
        spill_path: str | None = None,
        retry_base: float = 0.5,
    ) -> None:
        self.dsn, self.schema = split_dsn(dsn)
        self.path = redact_url(dsn)
        """The DSN as it may be shown (a password in it replaced)."""
        self.buffer_rows = buffer_rows
        self._spill_path = spill_path
        self.retry_base = retry_base
        self.state = "on"
        self.error = ""
        self.rows = 0
        self.retries = 0
        self.lost = 0
        self.spilled = 0
        """Rows in the spill file, waiting for the server."""
        self._buffer: deque[tuple[str, tuple[Any, ...]]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._closing = False
        self._rows = Rows(self._put)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and create the tables (ConfigError when the server cannot be used at all)."""
        try:
            import asyncpg  # noqa: F401  (an optional dependency: say how to get it)
        except ImportError:
            raise ConfigError(
                "--record postgresql://… needs asyncpg: pip install 'tickerterm[postgres]' "
                "(pipx inject tickerterm asyncpg)"
            ) from None
        try:
            self._conn = await self._connect()
        except Exception as exc:
            raise ConfigError(f"cannot record to {self.path}: {_reason(exc)}") from None
        self._task = asyncio.create_task(self._writer(), name="recorder:postgres")

    async def _connect(self) -> Any:
        import asyncpg

        settings = {"application_name": APPLICATION_NAME}
        if self.schema:
            settings["search_path"] = self.schema
        conn = await asyncpg.connect(self.dsn, timeout=10, server_settings=settings)
        if self.schema:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema.replace(chr(34), "")}"')
        await conn.execute(SCHEMA)
        return conn

    async def aclose(self) -> None:
        """Write what is buffered (and spilled) within ``CLOSE_WITHIN`` seconds, then close."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), CLOSE_WITHIN)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        left = len(self._buffer) + self.spilled
        if left:
            self.lost += left
            self.error = f"{left} rows not written: the server did not come back in time"
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        if self.state in ("on", "reconnecting"):
            self.state = "closed"

    def status(self, now: float) -> Recording:
        return Recording(
            "recorder",
            now,
            "recorder",
            self.path,
            self.state,
            0,
            self.rows,
            len(self._buffer) + self.spilled,
            self.lost,
            0,
            self.error,
            self.retries,
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
        """The journal is kept in SQLite recordings only."""

    def frames(self, conn: str, venue: str, now: float, raws: list[bytes]) -> None:
        """The journal is kept in SQLite recordings only."""

    def events(self, events: list[Event], store: Store | None) -> None:
        self._rows.add(events, store)

    def flush(self, store: Store | None, now: float, venue: str | None = None) -> None:
        self._rows.flush(store, now, venue)

    def _put(self, table: str, row: tuple[Any, ...]) -> None:
        if self._closing and self._task is None:
            self.lost += 1
            return
        self._buffer.append((table, row))
        if len(self._buffer) > self.buffer_rows:
            self._spill()
        if len(self._buffer) >= BATCH_ROWS:
            self._wake.set()

    # --- the writer ------------------------------------------------------------------------

    async def _writer(self) -> None:
        attempt = 0
        while True:
            if not self._buffer and not self.spilled:
                if self._closing:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.25)
                continue
            try:
                if self._conn is None or self._conn.is_closed():
                    if self._conn is not None:  # the server closed it: a restart, an admin's terminate
                        self._conn = None
                        self.retries += 1
                        self.state, self.error = "reconnecting", "the server closed the connection"
                        log.info("recording to %s: %s", self.path, self.error)
                    self._conn = await self._connect()
                if self.spilled and len(self._buffer) < self.buffer_rows // 2:
                    self._unspill()
                batch = [self._buffer.popleft() for _ in range(min(BATCH_ROWS, len(self._buffer)))]
                try:
                    await self._write(batch)
                except BaseException:
                    self._buffer.extendleft(reversed(batch))  # sent again: trades are idempotent
                    raise
                self.rows += len(batch)
                if self.state == "reconnecting":
                    self.state = "on"
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self.retries += 1
                self.state = "reconnecting"
                self.error = _reason(exc)
                log.info("recording to %s: %s (retry %d)", self.path, self.error, attempt)
                with contextlib.suppress(Exception):
                    if self._conn is not None:
                        self._conn.terminate()
                self._conn = None
                if self._closing and attempt >= 3:
                    return
                delay = min(30.0, self.retry_base * 2 ** (attempt - 1)) * (1 - 0.5 * random.random())
                await asyncio.sleep(delay)

    async def _write(self, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        by_table: dict[str, list[tuple[Any, ...]]] = {}
        for table, row in batch:
            by_table.setdefault(table, []).append(row)
        async with self._conn.transaction():
            for table, rows in by_table.items():
                await self._conn.executemany(_INSERT[table], rows)

    # --- spilling --------------------------------------------------------------------------

    def _spill_file(self) -> str:
        if self._spill_path is None:
            fd, self._spill_path = tempfile.mkstemp(prefix="tickerterm-spill-", suffix=".ndjson")
            os.close(fd)
        return self._spill_path

    def _spill(self) -> None:
        """Half the buffer (the oldest rows) to the spill file, in order."""
        path = self._spill_file()
        count = len(self._buffer) // 2
        try:
            if os.path.getsize(path) > SPILL_MAX_BYTES:
                raise OSError("spill file full")
            with open(path, "a", encoding="utf-8") as f:
                for _ in range(count):
                    table, row = self._buffer.popleft()
                    f.write(json.dumps([table, row]) + "\n")
            self.spilled += count
        except OSError as exc:
            for _ in range(count):  # nowhere to keep them: dropped, and counted
                if self._buffer:
                    self._buffer.popleft()
                    self.lost += 1
            self.error = f"spill: {exc}"

    def _unspill(self) -> None:
        """The spilled rows back into the buffer, before the newer ones."""
        path = self._spill_file()
        rows: list[tuple[str, tuple[Any, ...]]] = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                table, row = json.loads(line)
                rows.append((table, tuple(row)))
        open(path, "w").close()
        self.spilled = 0
        self._buffer.extendleft(reversed(rows))


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}"
