"""The real command in a pseudo-terminal: what a person's terminal would receive, byte for byte."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
import time
from collections.abc import Sequence
from pathlib import Path


def terminal_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) for a program drawn on a terminal of the test's making: colour
    on (no NO_COLOR), TERM xterm-256color, and no COLUMNS / LINES (pytest-xdist's workers set 80x24),
    which would override the terminal's own size for the program."""
    drop = ("NO_COLOR", "COLUMNS", "LINES")
    full = {k: v for k, v in (env if env is not None else os.environ).items() if k not in drop}
    full["TERM"] = "xterm-256color"
    return full


def spawn(
    command: Sequence[str],
    *,
    rows: int = 40,
    cols: int = 120,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``command`` on a new pseudo-terminal of ``rows`` x ``cols`` (colour, no NO_COLOR); returns
    the process and the terminal's non-blocking master side (close it when done)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    full = terminal_env(env)
    proc = subprocess.Popen(
        list(command), stdin=slave, stdout=slave, stderr=slave, env=full, cwd=cwd, start_new_session=True
    )
    os.close(slave)
    os.set_blocking(master, False)
    return proc, master


def read_pty(fd: int, seconds: float, until: bytes | tuple[bytes, ...] | None = None) -> bytes:
    """What the terminal receives for ``seconds``, or until ``until`` shows (every one of them, for a
    tuple), or the program closes it."""
    out = bytearray()
    deadline = time.monotonic() + seconds
    wanted = (until,) if isinstance(until, bytes) else until or ()
    while time.monotonic() < deadline and (not wanted or not all(w in out for w in wanted)):
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.02)
            continue
        except OSError:  # the program closed the terminal
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)


def finish(proc: subprocess.Popen[bytes], master: int) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    os.close(master)
