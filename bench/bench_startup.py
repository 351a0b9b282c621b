"""5. Startup: launch ``tickerterm --sim`` in a real PTY at 120x40 and time the first live frame (the depth
ladder showing a spread)."""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import statistics
import struct
import subprocess
import termios
import time

from common import PY, write_results


def spawn(args: list[str], cols: int, rows: int) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
    proc = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True, start_new_session=True
    )
    os.close(slave)
    return proc, master


def read_until(master: int, needle: bytes, timeout: float) -> tuple[float, bytes]:
    start = time.perf_counter()
    seen = b""
    while time.perf_counter() - start < timeout:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            seen += chunk
            if needle in seen:
                return time.perf_counter() - start, seen
    raise TimeoutError(f"{needle!r} never appeared")


def once() -> float:
    start = time.perf_counter()
    proc, master = spawn([PY, "-m", "tickerterm", "--sim"], 120, 40)
    try:
        read_until(master, b"spread", 30)
        return time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait()
        os.close(master)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    times = [once() for _ in range(args.runs)]
    write_results(
        "startup",
        [
            (
                f"launch → first live frame, median of {args.runs}",
                f"{statistics.median(times) * 1000:.0f} ms",
            ),
            ("all runs", ", ".join(f"{t * 1000:.0f}" for t in times) + " ms"),
        ],
        {"runs": times},
    )


if __name__ == "__main__":
    main()
