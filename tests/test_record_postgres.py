"""Recording into a real PostgreSQL server: the same tables, every trade once through a connection the
server kills mid-run (``pg_terminate_backend``), and a server that cannot be reached said at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from typing import Any

from tests.conftest import FAST, fast_policy, postgres_or_skip
from tickerterm.api import open_feed
from tickerterm.core.events import Event, Recording, Trade
from tickerterm.sim.faults import Faults


async def test_every_trade_once_through_a_killed_connection() -> None:
    import asyncpg

    dsn = await postgres_or_skip()
    schema = f"tickerterm_test_{uuid.uuid4().hex[:10]}"
    live: set[tuple[str, str]] = set()
    statuses: list[Recording] = []

    def sink(events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, Trade):
                live.add((ev.product, ev.trade_id))
            elif isinstance(ev, Recording):
                statuses.append(ev)

    options: dict[str, Any] = dict(rate=600.0, depth=50, seed=5, timing=FAST, faults=Faults())
    admin = await asyncpg.connect(dsn)
    try:
        async with open_feed(
            "coinbase",
            ["BTC-USD", "ETH-USD"],
            ["market_trades", "ticker", "level2"],
            sim=True,
            sim_options=options,
            policy=fast_policy(stale_after=3.0),
            sink=sink,
            record=f"{dsn}?schema={schema}",
        ) as feed:
            await asyncio.sleep(1.0)
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                "tickerterm-recorder",
            )
            assert killed >= 1
            for _ in range(100):  # said, then recovered
                if any(s.retries for s in statuses) and statuses[-1].state == "on":
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            recorder: Any = feed.recorder
        said = [s for s in statuses if s.retries]
        assert said and said[0].error.startswith(
            ("AdminShutdownError", "ConnectionDoesNotExistError", "the server closed the connection")
        ), said
        assert recorder.lost == 0 and recorder.state == "closed"
        rows = await admin.fetch(f'SELECT product, trade_id FROM "{schema}".trades')
        stored = [(r["product"], r["trade_id"]) for r in rows]
        assert len(live) > 100
        assert len(stored) == len(set(stored))  # none twice
        assert set(stored) == live  # none lost
        tickers = await admin.fetchval(f'SELECT count(*) FROM "{schema}".tickers')
        tops = await admin.fetchval(f'SELECT count(*) FROM "{schema}".top_of_book')
        assert tickers > 0 and tops > 0
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


def test_a_server_that_cannot_be_reached_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickerterm",
            "--sim",
            "--headless",
            "--record",
            "postgresql://nobody@127.0.0.1:9/x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("tickerterm: error: cannot record to postgresql://")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


async def test_rows_wait_and_spill_while_the_server_is_away_then_all_go_in() -> None:
    import asyncpg

    from tickerterm.record.postgres import PgRecorder

    dsn = await postgres_or_skip()
    schema = f"tickerterm_test_{uuid.uuid4().hex[:10]}"
    recorder = PgRecorder(f"{dsn}?schema={schema}", buffer_rows=200, retry_base=0.02)
    await recorder.start()
    real_connect = recorder._connect
    away = True

    async def connect() -> Any:
        if away:
            raise OSError("connection refused")
        return await real_connect()

    recorder._connect = connect  # type: ignore[method-assign]
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            "tickerterm-recorder",
        )
        trades = [Trade("v", 1.0, "P", 1.0 + i, str(i), "1", "2", "buy") for i in range(1000)]
        for i in range(0, 1000, 50):
            recorder.events(trades[i : i + 50], None)
            await asyncio.sleep(0.01)
        for _ in range(100):  # the writer finds the server away, and says so
            if recorder.state == "reconnecting":
                break
            await asyncio.sleep(0.05)
        status = recorder.status(0.0)
        assert recorder.spilled > 0 and status.behind == 1000 and status.state == "reconnecting"
        assert status.retries >= 1 and "connection refused" in status.error
        assert status.lost == 0
        away = False
        for _ in range(200):
            if not recorder.status(0.0).behind:
                break
            await asyncio.sleep(0.05)
        await recorder.aclose()
        ids = [r["trade_id"] for r in await admin.fetch(f'SELECT trade_id FROM "{schema}".trades')]
        assert sorted(ids, key=int) == [str(i) for i in range(1000)] and recorder.lost == 0
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
