"""The user's path through the dashboard: quitting the way terminal dashboards quit, the exit status
after giving up, a reason shown whole."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.pty_support import finish, read_pty, spawn
from tests.ui_support import static_app, until
from tickerterm.core.events import GaveUp
from tickerterm.ui.widgets import HealthPanel


def text_of(panel: HealthPanel) -> str:
    return panel.plain()


CMD = [sys.executable, "-m", "tickerterm"]


async def test_ctrl_c_quits_the_dashboard() -> None:
    app = static_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code == 0 and not app.is_running


async def test_a_long_gave_up_reason_is_wrapped_whole_not_cut() -> None:
    app = static_app()
    reason = "the venue refused the API key: " + " ".join(f"word{i}" for i in range(60)) + " END"
    app.store.apply(GaveUp("coinbase", 1.0, "coinbase", reason))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        health = app.query_one(HealthPanel)
        await until(pilot, lambda: "GAVE UP" in text_of(health))
        words = " ".join(text_of(health).split())
        assert f"gave up: {reason}" in words


def run_in_pty(
    args: list[str], keys: bytes, wait_for: bytes | tuple[bytes, ...], seconds: float = 30
) -> tuple[int, str]:
    """The real command in a pseudo-terminal: wait until ``wait_for`` shows (all of a tuple), type
    ``keys``; returns the exit status and everything the terminal received."""
    proc, master = spawn([*CMD, *args])
    wanted = (wait_for,) if isinstance(wait_for, bytes) else wait_for
    try:
        out = read_pty(master, seconds, until=wanted)
        if all(w in out for w in wanted):
            time.sleep(0.3)
            os.write(master, keys)
        out += read_pty(master, 10)
        code = proc.wait(10)
    finally:
        finish(proc, master)
    return code, out.decode("utf-8", "replace")


def test_quitting_after_the_feed_gave_up_exits_1_with_the_reason() -> None:
    code, screen = run_in_pty(["--url", "ws://127.0.0.1:9", "--retries", "0"], b"q", b"GAVE UP")
    assert code == 1
    assert "tickerterm: gave up on coinbase: 1 connection attempt failed in a row" in screen


def test_ctrl_c_quits_the_real_command_with_exit_0() -> None:
    code, screen = run_in_pty(["--sim", "--products", "BTC-USD"], b"\x03", b"spread")
    assert code == 0 and "Traceback" not in screen


async def test_a_handshake_refused_with_403_gives_up_at_once_with_the_reason() -> None:
    import asyncio
    import json

    from websockets.asyncio.server import serve

    def refuse(connection: Any, request: Any) -> Any:
        return connection.respond(403, "forbidden\n")

    async def never(ws: Any) -> None:
        await ws.wait_closed()

    async with serve(never, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            *CMD, "--headless", "--url", f"ws://127.0.0.1:{port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert proc.returncode == 1
    assert [line["type"] for line in lines] == ["connecting", "gave_up"]  # no retry loop
    assert (
        "HTTP 403 on the handshake" in lines[-1]["reason"] and "retrying cannot help" in lines[-1]["reason"]
    )
    assert err.decode().startswith(
        "tickerterm: gave up on coinbase: the venue refused the connection (HTTP 403"
    )


@pytest.mark.parametrize("venue", ["coinbase", "coinbase-exchange", "coinapi", "bitzoom", "0xarchive"])
def test_the_simulators_hint_works_exactly_as_printed(venue: str, tmp_path: Path) -> None:
    """``tickerterm sim`` prints a command; run verbatim by a shell, from another directory, with no
    tickerterm variables set, it gets market data."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COINBASE", "COINAPI", "BITZOOM", "OXARCHIVE"))
    }
    clean["PATH"] = (
        f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}"  # `tickerterm` is on it
    )
    sim = subprocess.Popen(
        [*CMD, "sim", "--venue", venue, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean,
    )
    client = None
    try:
        assert sim.stderr is not None
        line = sim.stderr.readline()
        assert "; connect with " in line, line
        hint = line.split("; connect with ", 1)[1].strip()
        assert hint.startswith(f"tickerterm --venue {venue} ")
        client = subprocess.Popen(
            ["bash", "-c", hint],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean,
            cwd=tmp_path,
        )
        assert client.stdout is not None
        kinds: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(kinds) & {"trade", "ticker", "book", "candle"}:
            out = client.stdout.readline()
            if not out:
                break
            kinds.append(json.loads(out)["type"])
        assert set(kinds) & {"trade", "ticker", "book", "candle"}, (
            kinds,
            client.stderr.read() if client.poll() is not None else "",
        )
    finally:
        for proc in (client, sim):
            if proc is not None:
                if proc.poll() is None:
                    proc.terminate()
                proc.communicate(timeout=10)  # reaps it and closes its pipes
    if "--key-file" in hint:  # the temporary key file goes with the simulator
        assert not Path(hint.split("--key-file ", 1)[1].split()[0]).exists()


def test_dashboard_logs_go_to_a_file_never_over_the_screen(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))  # run_in_pty passes the environment on
    code, screen = run_in_pty(
        ["-v", "--url", "ws://127.0.0.1:9", "--retries", "1"], b"q", (b"GAVE UP", b"logging to")
    )  # both: on a loaded machine the feed can give up before the toast is drawn
    log = tmp_path / "tickerterm" / "tickerterm.log"
    assert code == 1
    assert " INFO tickerterm" not in screen  # nothing drawn over the dashboard
    # and it says where they went: the toast is drawn in pieces around what it covers (cursor moves
    # between them), so the text is read with the terminal's control sequences taken out
    shown = re.sub(r"\x1b\[[0-9;?<>=$]*[A-Za-z~]", "", screen)
    assert "logging to tickerterm.log in " in shown
    text = log.read_text()
    assert "coinbase: closed (code None: connect failed: connection refused" in text and "giving up" in text


def test_headless_log_file(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "run.log"
    result = subprocess.run(
        [*CMD, "--headless", "-v", "--log-file", str(log), "--url", "ws://127.0.0.1:9", "--retries", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("tickerterm: gave up on coinbase:") and result.stderr.count("\n") == 1
    assert "giving up" in log.read_text()


def test_every_option_is_described_with_variables_exit_codes_and_examples() -> None:
    from tickerterm.cli import feed_parser, sim_parser

    for parser in (feed_parser(), sim_parser()):
        undescribed = [a.option_strings for a in parser._actions if not a.help]
        assert not undescribed, undescribed
        assert parser.epilog is not None and "exit codes" in parser.epilog and "examples" in parser.epilog
    feed = feed_parser().epilog or ""
    for variable in (
        "COINBASE_API_KEY",
        "COINBASE_EXCHANGE_API_KEY",
        "BITZOOM_API_TOKEN",
        "COINAPI_KEY",
        "OXARCHIVE_API_KEY",
    ):
        assert variable in feed


def test_the_readme_stands_alone_in_a_clone() -> None:
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    assert "../shared" not in readme
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        if "://" not in link:
            assert (root / link).exists(), link
    lines = readme.splitlines()
    for i, line in enumerate(lines):  # an example that connects to a local port comes after the server
        m = re.search(r"--url ws://127\.0\.0\.1:(\d+)", line)
        if m and not line.lstrip().startswith("|"):
            before = "\n".join(lines[:i])
            assert f"--port {m.group(1)}" in before, line


async def test_a_refused_product_is_named_in_the_header() -> None:
    from tickerterm.core.events import VenueError

    app = static_app()
    app.store.apply(
        VenueError(
            "coinbase", 1.0, "coinbase", "failure to subscribe: unknown product FOO-BAR", True, "FOO-BAR"
        )
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "FOO-BAR refused" in app.sub_title)
    assert app.sub_title == "coinbase · SIMULATED · FOO-BAR refused"


def test_show_rate_puts_the_measured_output_rate_in_the_header() -> None:
    """``--show-rate``: the bytes a second the dashboard writes to the terminal, counted where they are
    written, in the header once a second."""

    def rate(*extra: str) -> float:
        code, screen = run_in_pty(["--sim", "--products", "BTC-USD", "--show-rate", *extra], b"q", b"kB/s")
        shown = re.sub(r"\x1b\[[0-9;?<>=$]*[A-Za-z~]", "", screen)
        figures = re.findall(r"out (\d+\.\d) kB/s", shown)
        assert code == 0 and figures, shown[-500:]
        return float(figures[-1])

    assert rate() > 0


def test_a_terminal_that_stops_reading_gets_fewer_frames_not_a_queue_of_them() -> None:
    """A link that takes nothing for a few seconds (the test stops reading the terminal): the dashboard
    holds its frames instead of queueing them, says SLOW TERMINAL with the rate it fell to in the header,
    and quits on q once the link takes data again."""
    proc, master = spawn([*CMD, "--sim", "--products", "BTC-USD", "--rate", "200"])
    try:
        read_pty(master, 30, until=b"spread")
        time.sleep(3)  # nothing read: the terminal's buffer fills, then the app's output queue
        os.write(master, b"n")
        out = read_pty(master, 4)
        shown = re.sub(r"\x1b\[[0-9;?<>=$]*[A-Za-z~]", "", out.decode("utf-8", "replace"))
        assert re.search(r"SLOW TERMINAL \d+\.\d fps", shown), shown[-800:]
        os.write(master, b"q")
        read_pty(master, 15)  # the link takes data again while it quits (until it closes the terminal)
        assert proc.wait(10) == 0
    finally:
        finish(proc, master)
