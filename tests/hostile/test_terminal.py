"""Venue text never drives the user's terminal and never carries the user's key out: every venue, the
real command, a real socket."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import quote

import pytest

from tests.hostile.fake import (
    CMD,
    OSC_TITLE,
    PAYLOAD,
    RAW_CONTROLS,
    VENUES,
    FakeConnection,
    FakeVenue,
    keep_open,
    run,
)
from tests.pty_support import finish, read_pty, spawn


def echoed(secret: str) -> str:
    """Venue text quoting the key the ways venues do: as is, URL-encoded, in CoinAPI's path form."""
    return f"key {secret} quoted ?apiKey={quote(secret, safe='')} path /APIKEY-{secret}/"


@pytest.mark.parametrize("name", list(VENUES))
async def test_venue_error_and_close_reason_reach_ndjson_and_stderr_inert_and_without_the_key(
    name: str,
) -> None:
    v = VENUES[name]

    async def script(conn: FakeConnection) -> None:
        await conn.send(v.error(f"{PAYLOAD} {echoed(v.echo)}"))
        await conn.send(v.trade(1))
        await asyncio.sleep(0.3)
        await conn.close(4000, f"{OSC_TITLE} bye {v.echo}")

    args = ["--venue", name, "--products", v.product, "--channels", v.channels, "--headless", "-v"]
    async with FakeVenue(script) as venue:
        code, out, err = await run(venue, [*args, "--retries", "0"], env=v.secret_env)
    assert code == 1, err
    for stream in (out, err):
        assert v.echo not in stream and quote(v.echo, safe="") not in stream
        assert not [c for c in RAW_CONTROLS if c in stream], stream[-400:]
    assert "Traceback" not in err
    # shown, visibly: in the -v log of the close or the error, and in the gave-up line
    logged = [line for line in err.splitlines() if " INFO " in line and "venue error" in line]
    assert logged and "␛]2;pwned␇" in logged[0] and "key *** quoted" in logged[0], err
    assert "␛]2;pwned␇" in err.splitlines()[-1] and err.splitlines()[-1].startswith("tickerterm: gave up on")
    records = [json.loads(line) for line in out.splitlines()]
    message = next(r["message"] for r in records if r["type"] == "venue_error")
    assert OSC_TITLE in message and "\x9b31m" in message  # NDJSON keeps the text, JSON-escaped
    assert "key *** quoted ?apiKey=*** path /APIKEY-***/" in message
    gave_up = next(r for r in records if r["type"] == "gave_up")
    closes = [r for r in records if r["type"] == "closed" and r.get("code") == 4000]
    if closes:  # the venue's close reason ended it
        assert closes[0]["reason"] == f"{OSC_TITLE} bye ***" and closes[0]["reason"] in gave_up["reason"]
        assert any(r["type"] == "trade" for r in records)  # the stream went on after the error
    else:  # a venue whose errors are final (CoinAPI): its error ended it, and the line says why
        assert "key ***" in gave_up["reason"] and "check the API key" in gave_up["reason"]


async def test_the_url_with_a_key_in_the_path_is_never_shown() -> None:
    v = VENUES["coinapi"]

    async def script(conn: FakeConnection) -> None:
        await conn.close(4000, "go away")

    async with FakeVenue(script) as venue:
        url = f"{venue.url}/APIKEY-{v.echo}/"
        code, out, err = await run(
            venue,
            ["--venue", "coinapi", "--products", v.product, "--headless", "--retries", "0", "--url", url],
            env=v.secret_env,
        )
    assert code == 1
    assert v.echo not in out + err
    connecting = next(json.loads(line) for line in out.splitlines() if '"connecting"' in line)
    assert connecting["url"].endswith("/APIKEY-***/")


async def test_dashboard_shows_venue_text_but_never_sends_it_to_the_terminal() -> None:
    """The dashboard in a real pseudo-terminal at 120x40: a venue error, a close reason and a channel
    name in a subscriptions ack carry a title change, a clipboard write, a cursor report and C1
    controls. The bytes that reach the terminal carry none of them; the health panel shows them as text."""
    evil = f"l2{OSC_TITLE}\x9b6n"

    async def script(conn: FakeConnection) -> None:
        ack = {
            "channel": "subscriptions", "client_id": "", "timestamp": "2024-05-01T12:00:00Z",
            "sequence_num": 0, "events": [{"subscriptions": {evil: ["BTC-USD"]}}],
        }  # fmt: skip
        await conn.send(ack)
        await conn.send({"type": "error", "message": PAYLOAD})
        await keep_open(conn)

    async with FakeVenue(script) as venue:
        proc, master = spawn([*CMD, "--venue", "coinbase", "--products", "BTC-USD", "--url", venue.url])
        try:
            screen = await asyncio.to_thread(read_pty, master, 6.0)
            os.write(master, b"q")
            screen += await asyncio.to_thread(read_pty, master, 1.5)
        finally:
            finish(proc, master)
    text = screen.decode("utf-8", "replace")
    assert "BTC-USD" in text  # the dashboard did draw
    assert b"\x1b]2;" not in screen and b"\x1b]52;" not in screen and b"\x1b]0;" not in screen
    assert b"pwned\x07" not in screen and b"\x1b[6n" not in screen  # (Textual's own OSC 22 ends in BEL)
    assert not [c for c in text if 0x80 <= ord(c) < 0xA0], "a C1 control reached the terminal"
    assert "␛]2;pwned␇" in text  # the venue's text is shown, as text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--products", f"BTC-USD,{OSC_TITLE}"], "tickerterm: error: unknown product"),
        (["--url", f"ws://x{OSC_TITLE}"], "tickerterm: error:"),
    ],
)
def test_bad_input_quoting_control_characters_is_one_inert_line(args: list[str], expected: str) -> None:
    import subprocess

    result = subprocess.run([*CMD, "--headless", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1
    assert not [c for c in RAW_CONTROLS if c in result.stderr]


def test_a_key_file_nested_too_deep_is_one_clear_line(tmp_path: Any) -> None:
    import subprocess

    key = tmp_path / "key.json"
    key.write_text("[" * 5000 + "]" * 5000)
    result = subprocess.run(
        [*CMD, "--venue", "coinapi", "--products", "COINBASE:BTC-USD", "--headless", "--key-file", str(key)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "tickerterm: error: key file named by --key-file is not JSON\n"
