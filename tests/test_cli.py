"""The real command: exit codes, one-line errors, the NDJSON stream, the standalone simulator."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CMD = [sys.executable, "-m", "tickerterm"]


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CMD, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--venue", "kraken"],
            "unknown venue 'kraken' (choose from: 0xarchive, bitzoom, coinapi, coinbase, coinbase-exchange)",
        ),
        (
            ["--sim", "--products", "FOO-USD"],
            "unknown product 'FOO-USD' (the simulator has: BTC-USD, ETH-USD, ",
        ),
        (["--products", "BTCUSD"], "unknown product 'BTCUSD': expected BASE-QUOTE such as BTC-USD"),
        (["--channels", "level3"], "unknown channel 'level3' for coinbase"),
        (
            ["--channels", "user", "--headless"],
            "channel 'user' needs a Coinbase API key: set COINBASE_API_KEY and "
            "COINBASE_API_SECRET, or COINBASE_KEY_FILE",
        ),
        (["--url", "https://example.com"], "--url must start with ws:// or wss://"),
        (["--duration", "soon"], "argument --duration: expected a number, got 'soon'"),
        (["--max-events", "0"], "argument --max-events: must be positive, got '0'"),
        (["--sim", "--fault", "explode=1"], "unknown fault 'explode'"),
        (["--sim", "--fault", "close_code=4242"], "close_code must be one of 1000, 1001, 1006, 1008, 1011"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["sim", "--venue", "nowhere"], "no simulator for venue 'nowhere'"),
        (
            ["--venue", "coinbase-exchange", "--channels", "full", "--headless"],
            "channel 'full' needs a Coinbase Exchange API key: set COINBASE_EXCHANGE_API_KEY, "
            "COINBASE_EXCHANGE_API_SECRET and COINBASE_EXCHANGE_PASSPHRASE, or COINBASE_EXCHANGE_KEY_FILE",
        ),
        (
            ["--venue", "coinbase-exchange", "--sim", "--channels", "full,level2_batch"],
            "choose one book channel, not full and level2_batch",
        ),
        (["--venue", "coinbase-exchange", "--channels", "candles"], "unknown channel 'candles'"),
        (["--sandbox"], "coinbase has no sandbox"),
        (["--venue", "bitzoom", "--products", "BTC-XYZ"], "the quote asset must be one of"),
        (["--venue", "bitzoom", "--sim", "--products", "BTC-USD"], "(the simulator has: BTC-USDT, ETH-USDT"),
        (
            ["--venue", "bitzoom", "--channels", "user", "--headless"],
            "needs a Bitzoom API token: set BITZOOM_API_TOKEN",
        ),
        (["--replay", "now-1h..now"], "coinbase has no replay (0xarchive has)"),
        (
            ["--venue", "0xarchive", "--sim", "--replay", "now-1h..now"],
            "--replay takes one product (--products BTC)",
        ),
        (
            ["--venue", "0xarchive", "--sim", "--products", "BTC", "--replay", "now..now-1h"],
            "START must come before END",
        ),
        (
            ["--venue", "0xarchive", "--sim", "--products", "BTC", "--replay", "yesterday..now"],
            "is not a time",
        ),
        (["--venue", "0xarchive", "--headless"], "needs a 0xArchive API key: set OXARCHIVE_API_KEY"),
        (["--venue", "coinapi", "--headless"], "channel 'quote' needs a CoinAPI key: set COINAPI_KEY"),
        (
            ["--venue", "coinapi", "--products", "BTCUSD"],
            "expected EXCHANGE:BASE-QUOTE such as COINBASE:BTC-USD",
        ),
        (["--sim", "--depth", "0"], "argument --depth: must be at least 1, got '0'"),
        (["sim", "--port", "99999"], "argument --port: must be at most 65535, got '99999'"),
        (["sim", "--port", "-1"], "argument --port: must be 0 or more, got '-1'"),
        (["--sim", "--rate", "-1"], "argument --rate: must be 0 or more, got '-1'"),
        (["--sim", "--rate", "nan"], "argument --rate: expected a finite number, got 'nan'"),
        (["--sim", "--warmup", "-1"], "argument --warmup: must be 0 or more, got '-1'"),
        (["--products", ""], "--products is empty (leave it out for the default)"),
        (["--channels", ","], "--channels is empty (leave it out for the default)"),
        (["--url", "ws://"], "--url: not a valid URL: 'ws://'"),
        (["--url", "ws://host:99999"], "--url: not a valid URL"),
        (["--rest-url", "ws://host"], "--rest-url must start with http:// or https://"),
        (["--fps", "0"], "argument --fps: must be positive, got '0'"),
        (["--fps", "-1"], "argument --fps: must be positive, got '-1'"),
        (["--duration", "abc"], "argument --duration: expected a number, got 'abc'"),
        (["--retries", "-2"], "argument --retries: must be at least -1, got '-2'"),
        (["--retries", "1.5"], "argument --retries: expected a whole number, got '1.5'"),
        (
            ["--venue", "coinapi", "--headless", "--key-file", __file__],
            "key file named by --key-file is not JSON",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    no_keys = [f"COINBASE_{name}" for name in ("API_KEY", "API_SECRET", "KEY_FILE")]
    no_keys += [f"COINBASE_EXCHANGE_{name}" for name in ("API_KEY", "API_SECRET", "PASSPHRASE", "KEY_FILE")]
    no_keys += ["BITZOOM_API_TOKEN", "COINAPI_KEY", "OXARCHIVE_API_KEY"]
    result = run(*args, env=dict.fromkeys(no_keys, ""))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tickerterm: error: ") and message in lines[0], (
        result.stderr
    )


def test_max_events_stops_as_soon_as_the_limit_is_reached() -> None:
    started = time.monotonic()
    result = run("--sim", "--headless", "--max-events", "1")
    took = time.monotonic() - started
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 1
    assert took < 3.0, took  # it waited 5 s for a connection nobody wanted any more


def test_missing_secret_names_the_variable() -> None:
    result = run(
        "--channels",
        "user",
        "--headless",
        env={
            "COINBASE_API_KEY": "organizations/o/apiKeys/k",
            "COINBASE_API_SECRET": "",
            "COINBASE_KEY_FILE": "",
        },
    )
    assert result.returncode == 2
    assert result.stderr == (
        "tickerterm: error: COINBASE_API_SECRET is not set "
        "(both COINBASE_API_KEY and COINBASE_API_SECRET are needed)\n"
    )


def test_headless_ndjson_on_the_simulator() -> None:
    result = run(
        "--sim", "--headless", "--products", "BTC-USD,ETH-USD", "--max-events", "150", "--rate", "400"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # nothing on stderr unless asked for (-v)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 150
    assert all({"type", "venue", "recv_ts"} <= set(line) for line in lines)
    types = {line["type"] for line in lines}
    assert {"connecting", "connected", "subscribed", "book", "ticker"} <= types
    books = [line for line in lines if line["type"] == "book"]
    assert books[0]["snapshot"] is True and books[0]["state"] == "ok"
    for line in books:
        assert line["product"] in ("BTC-USD", "ETH-USD")
        assert isinstance(line["bid"], str) and isinstance(line["ask"], str)
        assert float(line["bid"]) < float(line["ask"])
        assert "exch_ts" in line
    for line in lines:
        if line["type"] == "trade":
            assert line["side"] in ("buy", "sell") and isinstance(line["price"], str)


def test_closed_pipe_exits_quietly() -> None:
    proc = subprocess.Popen(
        [*CMD, "--sim", "--headless", "--rate", "500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert json.loads(first)["type"] == "connecting"
    proc.stdout.close()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "Traceback" not in err


def test_ctrl_c_exits_zero() -> None:
    proc = subprocess.Popen(
        [*CMD, "--sim", "--headless"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "Traceback" not in err


def test_duration_stops_the_stream() -> None:
    started = time.monotonic()
    result = run("--sim", "--headless", "--duration", "1")
    assert result.returncode == 0
    assert time.monotonic() - started < 20
    assert result.stdout.count("\n") > 5


def test_unreachable_endpoint_shows_retries_and_a_hint() -> None:
    result = run("--headless", "--url", "ws://127.0.0.1:9", "--retries", "2")
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["attempt"] for line in lines if line["type"] == "retry"] == [1, 2]
    assert len([line for line in lines if line["type"] == "connecting"]) == 3  # --retries 2: 3 attempts
    reasons = [line["reason"] for line in lines if line["type"] == "retry"]  # why, from the first failure
    assert reasons == ["connect failed: connection refused (nothing listens there)"] * 2
    assert lines[-1]["type"] == "gave_up"
    assert result.stderr.startswith(
        "tickerterm: gave up on coinbase: 3 connection attempts failed in a row (2 retries allowed); "
        "last: connect failed:"
    )


def test_retries_zero_gives_up_at_the_first_failure() -> None:
    result = run("--headless", "--url", "ws://127.0.0.1:9", "--retries", "0")
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["connecting", "gave_up"]
    assert result.stderr.startswith(
        "tickerterm: gave up on coinbase: 1 connection attempt failed in a row (0 retries allowed); "
    )
    assert "--sim runs the built-in simulator" in result.stderr and "Traceback" not in result.stderr


@contextlib.contextmanager
def standalone_sim(venue: str, key_file: Path, *extra: str) -> Iterator[tuple[str, str]]:
    """``tickerterm sim --venue VENUE`` on a free port writing a key file: yields (its URL, its hint line);
    Ctrl-C afterwards must end it cleanly. The key file must be private (0600)."""
    sim = subprocess.Popen(
        [
            *CMD,
            "sim",
            "--venue",
            venue,
            "--port",
            "0",
            "--rate",
            "300",
            "--write-key-file",
            str(key_file),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None and sim.stderr is not None
        url = sim.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:")
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        yield url, sim.stderr.readline()
    finally:
        sim.send_signal(signal.SIGINT)
        sim.communicate(timeout=30)
    assert sim.returncode == 0


def test_standalone_simulator_with_a_key_file_and_no_secret_leaks(tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    with standalone_sim("coinbase", key_file, "--heartbeat", "0.2") as (url, _hint):
        secret = json.loads(key_file.read_text())["privateKey"]
        result = run(
            "--url",
            url,
            "--key-file",
            str(key_file),
            "--channels",
            "user,level2",
            "--products",
            "BTC-USD",
            "--headless",
            "--max-events",
            "40",
            "-vv",
        )
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        orders = [line for line in lines if line["type"] == "order"]
        assert orders and all(o["product"] == "BTC-USD" for o in orders)
        body = secret.split("-----")[2].strip().splitlines()
        for text in (result.stdout, result.stderr):
            assert "PRIVATE KEY" not in text and all(part not in text for part in body)
            assert '"jwt"' not in text and "eyJ" not in text  # no token either


def test_standalone_exchange_simulator_l3_with_hmac_key_file_and_no_secret_leaks(tmp_path: Path) -> None:
    key_file = tmp_path / "exchange-key.json"
    with standalone_sim("coinbase-exchange", key_file, "--heartbeat", "0.2") as (url, hint):
        rest = hint.split("--rest-url ")[1].split()[0]
        assert rest == url.replace("ws://", "http://")
        account = json.loads(key_file.read_text())
        result = run(
            *("--venue", "coinbase-exchange", "--url", url, "--rest-url", rest, "--key-file", str(key_file)),
            *("--channels", "full,matches,user", "--products", "BTC-USD", "--headless", "--max-events", "80"),
            "-vv",
        )
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        books = [line for line in lines if line["type"] == "book"]
        assert books[0]["snapshot"] is True and books[0]["state"] == "ok"  # the L3 book from REST
        assert all(float(b["bid"]) < float(b["ask"]) for b in books)
        assert {"trade", "book"} <= {line["type"] for line in lines}
        for text in (result.stdout, result.stderr):
            assert account["secret"] not in text and account["passphrase"] not in text
            assert '"signature"' not in text


def test_standalone_bitzoom_simulator_user_data_and_no_token_leaks(tmp_path: Path) -> None:
    key_file = tmp_path / "bitzoom.json"
    with standalone_sim("bitzoom", key_file) as (url, hint):
        assert url.endswith("/ws")  # the raw form; the client connects to /stream
        rest = hint.split("--rest-url ")[1].split()[0]
        token = json.loads(key_file.read_text())["token"]
        result = run(
            *(
                "--venue",
                "bitzoom",
                "--url",
                url,
                "--user-url",
                url,
                "--rest-url",
                rest,
                "--key-file",
                str(key_file),
            ),
            *("--channels", "user,depth@100ms,aggTrade", "--products", "BTC-USDT", "--headless"),
            *("--max-events", "100", "-vv"),  # the account's first order comes ~2 s in, after ~50 lines
        )
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        types = {line["type"] for line in lines}
        assert {"order", "balance", "book"} <= types
        books = [line for line in lines if line["type"] == "book"]
        assert books[0]["snapshot"] is True and all(float(b["bid"]) < float(b["ask"]) for b in books)
        for text in (result.stdout, result.stderr):
            assert token not in text
        connecting = [line["url"] for line in lines if line["type"] == "connecting"]
        assert any(u.endswith("/ws/<listenKey>") for u in connecting)  # the key itself is never shown


def test_standalone_coinapi_simulator_with_a_key_file_and_no_key_leaks(tmp_path: Path) -> None:
    key_file = tmp_path / "coinapi.json"
    with standalone_sim("coinapi", key_file) as (url, _hint):
        key = json.loads(key_file.read_text())["apikey"]
        result = run(
            *("--venue", "coinapi", "--url", url, "--key-file", str(key_file), "--channels", "book,trade"),
            *("--products", "BITSTAMP:BTC-USD,COINBASE:BTC-USD", "--headless", "--max-events", "60", "-vv"),
        )
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        products = {line["product"] for line in lines if line["type"] == "book"}
        assert products == {"BITSTAMP:BTC-USD", "COINBASE:BTC-USD"}  # the exchange is part of the product
        for text in (result.stdout, result.stderr):
            assert key not in text


def test_headless_replay_on_the_simulator() -> None:
    result = run(
        *(
            "--venue",
            "0xarchive",
            "--sim",
            "--products",
            "BTC",
            "--replay",
            "now-20m..now-18m",
            "--speed",
            "300",
        ),
        "--headless",  # no --duration: the run ends when the replay has completed
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    states = [line["state"] for line in lines if line["type"] == "replay"]
    assert states[0] == "started" and states[-1] == "completed" and lines[-1]["type"] == "replay"
    books = [line for line in lines if line["type"] == "book"]
    assert books and all(line["product"] == "BTC" and line["snapshot"] for line in books)
    started = next(line for line in lines if line["type"] == "replay")
    assert all(started["start"] - 1 <= b["exch_ts"] <= started["end"] + 1 for b in books[1:])  # history only
