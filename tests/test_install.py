"""The way users install the command (``pipx install .``: a non-editable wheel in a venv of its own) works
outside the source tree: the wheel carries every package file, ``--version`` answers, and the dashboard
starts and shows live prices from the built-in simulator."""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def read_until(fd: int, done: bytes, seconds: float) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and done not in out:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.05)
            continue
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (not in the source tree) with the wheel built from this checkout; its ``bin``."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "src"  # what a fresh clone has: no egg-info or build leftovers to hide a missing file
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(source)],
        check=True,
        capture_output=True,
    )
    wheels = list((tmp / "dist").glob("tickerterm-*.whl"))
    assert len(wheels) == 1
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
    subprocess.run(
        [str(tmp / "venv/bin/python"), "-m", "pip", "install", "-q", str(wheels[0])],
        check=True,
        capture_output=True,
    )
    return tmp / "venv/bin"


def test_the_wheel_carries_every_package_file(installed: Path) -> None:
    site = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import tickerterm, os; print(os.path.dirname(tickerterm.__file__))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    assert not site.startswith(str(ROOT))  # the installed copy, not this checkout
    shipped = {
        p.relative_to(site).as_posix()
        for p in Path(site).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    source = {
        p.relative_to(ROOT / "tickerterm").as_posix()
        for p in (ROOT / "tickerterm").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert source <= shipped, f"not in the wheel: {sorted(source - shipped)}"


def test_version_from_the_wheel(installed: Path) -> None:
    result = subprocess.run(
        [str(installed / "tickerterm"), "--version"], capture_output=True, text=True, cwd="/"
    )
    assert result.returncode == 0 and result.stdout.startswith("tickerterm 0.")


def test_the_installed_dashboard_starts_and_shows_live_prices(installed: Path, tmp_path: Path) -> None:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PYTHONPATH", "VIRTUAL_ENV")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [str(installed / "tickerterm"), "--sim", "--products", "BTC-USD"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    os.set_blocking(master, False)
    try:
        screen = read_until(master, b"spread", 30)
        os.write(master, b"q")
        proc.wait(10)
        screen += read_until(master, b"\x00never", 1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = screen.decode("utf-8", "replace")
    assert "Traceback" not in text and "StylesheetError" not in text
    assert "SIMULATED" in text and "spread" in text and "BTC-USD" in text
    assert proc.returncode == 0
