"""A hostile venue: a real WebSocket server on loopback (and a raw REST server beside it) that sends
whatever a test scripts, byte for byte, to the real command or a real feed.

Each venue gets what it needs to take its frames: the product the command asks for, the credential
variable it reads, a trade frame that proves the stream still flows after a poison frame, and the
shape of its error message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

CMD = [sys.executable, "-m", "tickerterm"]
SECRET = "SENTINEL1234567890abcdefKEY"
"""A key the venue echoes back: it must never reach stdout, stderr or the screen."""
TS = "2024-05-01T12:00:00.123456Z"
MS = 1714564800123

OSC_TITLE = "\x1b]2;pwned\x07"
OSC_CLIPBOARD = "\x1b]52;c;" + base64.b64encode(b"rm -rf ~").decode() + "\x07"
PAYLOAD = f"boom {OSC_TITLE}{OSC_CLIPBOARD}\x1b[6n\x9b31m\x90q\x9c\x7f"
"""Venue text that drives a terminal: window title, clipboard, a cursor report, C1 CSI and DCS, DEL."""
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\x90", "\x9c", "\x7f")
"""None of these may reach a terminal or a log from venue text."""

Script = Callable[["FakeConnection"], Any]


@dataclass
class Venue:
    name: str
    product: str
    secret_env: dict[str, str]
    """The credential variables."""
    echo: str
    """The secret among them, as a venue would echo it back."""
    error: Callable[[str], dict[str, Any]]
    """The venue's error frame carrying a message."""
    trade: Callable[[int], dict[str, Any]]
    """A valid trade frame (``n`` makes it a new one)."""
    channels: str
    """A channel list that takes trades (``--channels``)."""


def _coinbase_trade(n: int) -> dict[str, Any]:
    trade = {
        "trade_id": str(1000 + n), "product_id": "BTC-USD", "price": "64000.5", "size": "0.0015",
        "side": "BUY", "time": TS,
    }  # fmt: skip
    return {
        "channel": "market_trades", "client_id": "", "timestamp": TS, "sequence_num": n,
        "events": [{"type": "update", "trades": [trade]}],
    }  # fmt: skip


def _exchange_trade(n: int) -> dict[str, Any]:
    return {
        "type": "match", "trade_id": 1000 + n, "maker_order_id": "m", "taker_order_id": "t", "side": "sell",
        "size": "0.5", "price": "64000.5", "product_id": "BTC-USD", "sequence": 100 + n, "time": TS,
    }  # fmt: skip


def _coinapi_trade(n: int) -> dict[str, Any]:
    return {
        "time_exchange": TS, "time_coinapi": TS, "uuid": f"u{n}", "price": 64000.5, "size": 0.5,
        "taker_side": "BUY", "symbol_id": "COINBASE_SPOT_BTC_USD", "sequence": n, "type": "trade",
    }  # fmt: skip


def _bitzoom_trade(n: int) -> dict[str, Any]:
    return {
        "e": "trade",
        "E": MS,
        "s": "BTCUSDT",
        "t": 1000 + n,
        "p": "64000.5",
        "q": "0.5",
        "T": MS,
        "m": True,
    }


def _oxarchive_trade(n: int) -> dict[str, Any]:
    trade = {"coin": "BTC", "side": "B", "px": "64000.5", "sz": "0.5", "time": MS + n, "tid": 1000 + n}
    return {"type": "data", "channel": "trades", "coin": "BTC", "symbol": "BTC", "data": [trade]}


def _ed25519_secret() -> str:
    return base64.b64encode(SECRET.encode()[:32].ljust(32, b"x")).decode()


VENUES: dict[str, Venue] = {
    "coinbase": Venue(
        "coinbase",
        "BTC-USD",
        {"COINBASE_API_KEY": "organizations/o/apiKeys/k", "COINBASE_API_SECRET": _ed25519_secret()},
        _ed25519_secret(),
        lambda text: {"type": "error", "message": text},
        _coinbase_trade,
        "market_trades",
    ),
    "coinbase-exchange": Venue(
        "coinbase-exchange",
        "BTC-USD",
        {
            "COINBASE_EXCHANGE_API_KEY": "key-id",
            "COINBASE_EXCHANGE_API_SECRET": base64.b64encode(SECRET.encode()).decode(),
            "COINBASE_EXCHANGE_PASSPHRASE": SECRET,
        },
        SECRET,
        lambda text: {"type": "error", "message": "Failed", "reason": text},
        _exchange_trade,
        "matches",
    ),
    "coinapi": Venue(
        "coinapi",
        "COINBASE:BTC-USD",
        {"COINAPI_KEY": SECRET},
        SECRET,
        lambda text: {"type": "error", "message": text},
        _coinapi_trade,
        "trade",
    ),
    "bitzoom": Venue(
        "bitzoom",
        "BTC-USDT",
        {"BITZOOM_API_TOKEN": SECRET},
        SECRET,
        lambda text: {"error": {"code": 5, "msg": text}, "id": 1},
        _bitzoom_trade,
        "trade",
    ),
    "0xarchive": Venue(
        "0xarchive",
        "BTC",
        {"OXARCHIVE_API_KEY": SECRET},
        SECRET,
        lambda text: {"type": "error", "message": text, "error_code": "E1"},
        _oxarchive_trade,
        "trades",
    ),
}


class FakeConnection:
    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.received: list[str] = []

    async def send(self, frame: str | bytes | dict[str, Any]) -> None:
        if isinstance(frame, dict):
            frame = json.dumps(frame)
        await self.ws.send(frame)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)


class FakeVenue:
    """``async with FakeVenue(script) as venue``: ``venue.url`` serves every connection with ``script``
    (called once the client sent its first frame, its subscription); ``venue.rest`` answers REST calls
    with ``rest(path)`` -> ``(status, body bytes)``, and ``venue.requests`` lists the paths asked for."""

    def __init__(self, script: Script, rest: Callable[[str], tuple[int, bytes]] | None = None) -> None:
        self.script = script
        self.rest_handler = rest or (lambda path: (404, b"{}"))
        self.connections: list[FakeConnection] = []
        self.requests: list[str] = []
        self.url = ""
        self.rest_url = ""

    async def _handle(self, ws: ServerConnection) -> None:
        conn = FakeConnection(ws)
        self.connections.append(conn)
        with contextlib.suppress(Exception):
            first = await asyncio.wait_for(ws.recv(), 10)
            conn.received.append(str(first))
            reader = asyncio.ensure_future(self._read(conn))
            try:
                await self.script(conn)
                await ws.wait_closed()
            finally:
                reader.cancel()

    async def _read(self, conn: FakeConnection) -> None:
        async for message in conn.ws:
            conn.received.append(str(message))

    async def _rest(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            self.requests.append(path)
            status, body = self.rest_handler(path)
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> FakeVenue:
        self._ws_server = await serve(self._handle, "127.0.0.1", 0, max_size=None, compression=None)
        self.url = f"ws://127.0.0.1:{self._ws_server.sockets[0].getsockname()[1]}"  # type: ignore[index]
        self._rest_server = await asyncio.start_server(self._rest, "127.0.0.1", 0)
        self.rest_url = f"http://127.0.0.1:{self._rest_server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._ws_server.close()
        self._rest_server.close()


async def keep_open(conn: FakeConnection, heartbeat: dict[str, Any] | None = None) -> None:
    """Hold the connection open (sending ``heartbeat`` twice a second when given)."""
    while True:
        if heartbeat is not None:
            await conn.send(heartbeat)
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def command(
    venue: FakeVenue, args: list[str], env: dict[str, str] | None = None, pty: bool = False
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The real ``tickerterm`` command pointed at ``venue`` (stdout/stderr piped), killed at the end."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COINBASE", "COINAPI", "BITZOOM", "OXARCHIVE"))
    }
    full_env.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        *CMD,
        "--url",
        venue.url,
        "--rest-url",
        venue.rest_url,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=full_env,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def run(
    venue: FakeVenue, args: list[str], env: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, str, str]:
    """Run the command to its end; returns (exit code, stdout, stderr) as text."""
    async with command(venue, args, env) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
