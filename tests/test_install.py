"""The way users install the command (``pipx install .``: a non-editable wheel in a venv of its own) works
outside the source tree: the wheel carries every package file, ``--version`` answers, and the dashboard
starts and shows live prices from the built-in simulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pty_support import finish, read_pty, spawn, terminal_env

ROOT = Path(__file__).resolve().parent.parent


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
    # pip built the hot path's C extension (this machine has a compiler, as CI's has)
    assert result.stdout.strip().endswith(", hot path in C"), result.stdout


def test_the_installed_dashboard_starts_and_shows_live_prices(installed: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc, master = spawn(
        [str(installed / "tickerterm"), "--sim", "--products", "BTC-USD"],
        rows=30,
        cols=100,
        env=env,
        cwd=tmp_path,
    )
    try:
        screen = read_pty(master, 30, until=b"spread")
        os.write(master, b"q")
        screen += read_pty(master, 15)  # read while it quits (a terminal nobody reads holds its last writes)
        proc.wait(10)
    finally:
        finish(proc, master)
    text = screen.decode("utf-8", "replace")
    assert "Traceback" not in text and "StylesheetError" not in text
    assert "SIMULATED" in text and "spread" in text and "BTC-USD" in text
    assert proc.returncode == 0


def test_the_installed_command_records_and_replays(installed: Path, tmp_path: Path) -> None:
    """Without the optional PostgreSQL driver: a SQLite recording and its replay, NDJSON for NDJSON; and a
    postgresql:// target says which extra to install, in one line."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    cmd = str(installed / "tickerterm")
    live = subprocess.run(
        [cmd, "--sim", "--headless", "--duration", "2", "--record", "s.db"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert live.returncode == 0, live.stderr
    replay = subprocess.run(
        [cmd, "replay", "s.db", "--headless"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert replay.returncode == 0, replay.stderr

    def lines(out: str) -> list[str]:
        return [x for x in out.splitlines() if '"type":"recording"' not in x and '"type":"replay"' not in x]

    assert len(lines(live.stdout)) > 10 and lines(replay.stdout)[: len(lines(live.stdout))] == lines(
        live.stdout
    )
    pg = subprocess.run(
        [cmd, "--sim", "--headless", "--record", "postgresql://127.0.0.1/x"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert pg.returncode == 2 and "tickerterm[postgres]" in pg.stderr and pg.stderr.count("\n") == 1


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
def test_the_installed_command_in_tmux_follows_a_config_file(installed: Path, tmp_path: Path) -> None:
    """The wheel's command, a config file in a temporary XDG directory: its watchlist, key and palette
    are what the dashboard uses, and ``tickerterm config`` says where each came from."""
    from tests.test_tmux import capture, keys, wait_screen

    config = tmp_path / "config" / "tickerterm" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        'watchlist = "majors"\nfps = 20\npalette = "colorblind"\n'
        '[watchlists]\nmajors = ["BTC-USD", "ETH-USD"]\nalts = ["SOL-USD"]\n'
        '[keys]\n"product.next" = "j"\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_STATE_HOME=str(tmp_path / "state"))
    shown = subprocess.run(
        [str(installed / "tickerterm"), "config"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "watchlist 'majors'" in shown and "config.toml:2" in shown  # fps, from line 2
    session = f"tickerterm-config-{os.getpid()}"
    env = terminal_env(env)
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", "-c", str(tmp_path),
         f"{installed / 'tickerterm'} --sim"],
        check=True,
        env=env,
    )  # fmt: skip
    try:
        wait_screen(session, lambda s: "Depth BTC-USD" in s and "spread" in s and "ETH-USD" in s)
        keys(session, "j")  # the file's key for the next product
        wait_screen(session, lambda s: "Depth ETH-USD" in s)
        keys(session, "w")  # the next watchlist
        wait_screen(session, lambda s: "Depth SOL-USD" in s and "BTC-USD" not in s.split("Depth")[0])
        keys(session, "q")
        for _ in range(150):
            if subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"q did not quit:\n{capture(session)}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_the_installed_command_shows_several_venues_from_a_config_file(
    installed: Path, tmp_path: Path
) -> None:
    """Several venues named in the config file (a list, venue:PRODUCT, same-quote): headless, every venue's
    events and the consolidated lines; the dashboard, the venue column and the consolidated row."""
    config = tmp_path / "tickerterm" / "config.toml"
    config.parent.mkdir()
    config.write_text(
        'venue = ["coinbase", "bitzoom"]\n'
        'products = ["coinbase:BTC-USD", "bitzoom:BTC-USDT"]\n'
        'same-quote = ["USDT=USD"]\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    cmd = str(installed / "tickerterm")
    out = subprocess.run(
        [cmd, "--sim", "--headless", "--duration", "6"],  # two simulators to start on a busy machine
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert {r["venue"] for r in records if r["type"] == "trade"} == {"coinbase", "bitzoom"}
    consolidated = [r for r in records if r["type"] == "consolidated"]
    assert consolidated and consolidated[-1]["counted"] == ["coinbase", "bitzoom"]
    proc, master = spawn([cmd, "--sim"], rows=30, cols=120, env=env, cwd=tmp_path)
    try:
        screen = read_pty(master, 30, until=b"bid ")
        os.write(master, b"q")
        read_pty(master, 15)  # go on reading while it quits (a terminal nobody reads holds its last writes)
        proc.wait(10)
    finally:
        finish(proc, master)
    text = screen.decode("utf-8", "replace")
    assert "Traceback" not in text and "coinbase + bitzoom" in text and "Σ BTC-USD" in text


def test_the_installed_command_relays_and_a_screen_reads_it(installed: Path, tmp_path: Path) -> None:
    """``tickerterm relay`` from the wheel publishes to the machine's broker; the installed dashboard on
    ``--from`` shows the relay's book and its broker connection; headless reads it too."""
    import asyncio
    import random

    from tests.conftest import nats_or_skip

    url = asyncio.run(nats_or_skip())
    name = f"ttinstall{random.getrandbits(24):06x}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    cmd = str(installed / "tickerterm")
    relay = subprocess.Popen(
        [cmd, "relay", "--sim", "--products", "BTC-USD", "--to", url, "--stream", name],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        assert relay.stderr is not None
        assert relay.stderr.readline().startswith("tickerterm: relaying coinbase BTC-USD")
        viewer = [cmd, "--from", url, "--stream", name, "--products", "BTC-USD"]
        out = subprocess.run(
            [*viewer, "--headless", "--duration", "4"],
            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        books = [r for r in map(json.loads, out.stdout.splitlines()) if r["type"] == "book"]
        assert books and books[-1]["state"] == "ok"
        proc, master = spawn(viewer, rows=30, cols=120, env=env, cwd=tmp_path)
        try:
            screen = read_pty(master, 30, until=b"spread")
            os.write(master, b"q")
            read_pty(master, 15)
            proc.wait(10)
        finally:
            finish(proc, master)
        text = screen.decode("utf-8", "replace")
        assert "Traceback" not in text and "spread" in text and "BTC-USD" in text
    finally:
        relay.terminate()
        relay.wait(10)
        relay.stderr.close()  # type: ignore[union-attr]
        forget = (
            "import asyncio, nats\n"
            "async def m(url, name):\n"
            "    nc = await nats.connect(url)\n"
            "    await nc.jetstream().delete_stream(name)\n"
            "    await nc.close()\n"
            f"asyncio.run(m({url!r}, {name.upper()!r}))"
        )
        subprocess.run([str(installed / "python"), "-c", forget], capture_output=True, timeout=30)


def test_a_wheel_built_without_a_c_compiler_runs_the_pure_path(installed: Path, tmp_path: Path) -> None:
    """Where no C compiler is found the build goes on without the extension and the same command runs its
    pure-Python loops. (Last in this file: it reinstalls the wheel in the module's venv.)"""
    source = tmp_path / "src"
    # the fresh clone's files: not the first wheel's build directory, whose compiled module would be reused
    shutil.copytree(installed.parent.parent / "src", source, ignore=shutil.ignore_patterns("build", "*.so"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        env={**os.environ, "CC": "/bin/false"},  # the compiler fails as a missing one would
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("tickerterm-*.whl")
    subprocess.run(
        [
            str(installed / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--force-reinstall",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    version = subprocess.run(
        [str(installed / "tickerterm"), "--version"], capture_output=True, text=True, cwd="/", env=env
    )
    assert "hot path in pure Python (the C extension was not built at install" in version.stdout
    run = subprocess.run(
        [str(installed / "tickerterm"), "--sim", "--headless", "--duration", "1.5", "--products", "BTC-USD"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    books = [json.loads(x) for x in run.stdout.splitlines() if '"type":"book"' in x]
    assert len(books) > 1 and all(b["state"] == "ok" and float(b["bid"]) < float(b["ask"]) for b in books)
