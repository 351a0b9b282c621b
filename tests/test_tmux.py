"""The real ``tickerterm`` command in a real terminal (tmux) at 80x24: keys in, screen out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.pty_support import terminal_env

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"
)


def capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True
    ).stdout


def wait_screen(session: str, condition: Callable[[str], bool], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(session)
        if condition(screen):
            return screen
        time.sleep(0.1)
    raise AssertionError(f"screen never matched; last screen:\n{screen}")


def keys(session: str, *names: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, *names], check=True)


def test_dashboard_in_tmux_at_80x24() -> None:
    session = f"tickerterm-test-{os.getpid()}"
    command = f"{sys.executable} -m tickerterm --sim --products BTC-USD,ETH-USD --rate 100"
    env = terminal_env()
    started = time.monotonic()
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command], check=True, env=env
    )
    try:
        screen = wait_screen(
            session, lambda s: "spread" in s and "Depth BTC-USD" in s and ("B▲" in s or "S▼" in s)
        )
        first_frame = time.monotonic() - started
        lines = screen.splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        assert "SIMULATED" in lines[0]
        assert "Tickers" in screen and "Trades" in screen and "ETH-USD" in screen
        keys(session, "5")
        wait_screen(session, lambda s: "Health" in s and "SUBSCRIBED" in s and "msg/s" in s)
        keys(session, "3")
        wait_screen(session, lambda s: "Candles BTC-USD 5m" in s)
        keys(session, "2", "b")
        wait_screen(session, lambda s: "level2 is off" in s)
        keys(session, "b")
        wait_screen(session, lambda s: "spread" in s)
        keys(session, "n")
        wait_screen(session, lambda s: "Depth ETH-USD" in s)
        keys(session, "?")
        wait_screen(session, lambda s: "Keys" in s and "command palette" in s)
        keys(session, "Escape")
        wait_screen(session, lambda s: "Keys" not in s)
        keys(session, "q")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode != 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("q did not quit")
        assert first_frame < 15  # startup itself is measured by the benchmarks; this only catches a hang
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
