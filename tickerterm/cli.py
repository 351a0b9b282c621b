"""Command line: ``tickerterm [options]`` (the feed), ``tickerterm sim [options]`` (a standalone simulator).

Bad input exits 2 with one line on stderr; a feed that gives up exits 1 with the reason and a hint;
Ctrl-C, ``--duration``, ``--max-events`` and a closed stdout pipe exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC
from typing import Any, NoReturn

from tickerterm import __version__
from tickerterm.api import alerts_by_venue, open_feed, open_feeds, open_recording
from tickerterm.config import (
    SETTINGS,
    Effective,
    default_path,
    load,
    remember,
    remembered,
    resolve,
    show,
    write_starter,
)
from tickerterm.core.alerts import parse_rule
from tickerterm.core.consolidated import parse_same_quote
from tickerterm.core.errors import ConfigError, TickertermError
from tickerterm.core.events import Event, GaveUp, ReplayState
from tickerterm.core.native import implementation
from tickerterm.core.ndjson import dumps
from tickerterm.core.relay import broker_url, stream_names
from tickerterm.core.safe import InertFormatter, inert
from tickerterm.core.store import Store
from tickerterm.record.sqlite import DEFAULT_MAX_BYTES, parse_limits
from tickerterm.sim import SIMULATORS, simulator_class
from tickerterm.sim.faults import Faults
from tickerterm.sim.server import SimTiming
from tickerterm.stream.feeds import split_products
from tickerterm.stream.policy import RetryPolicy
from tickerterm.tuning import DASHBOARD_GEN0, tune_gc
from tickerterm.venues import VENUES, venue_class
from tickerterm.venues.session import ReplayPlan

log = logging.getLogger("tickerterm")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        _fail(message)


def _fail(message: str, code: int = 2) -> NoReturn:
    _say(f"error: {message}")
    raise SystemExit(code)


def _say(message: str) -> None:
    """One line on stderr. Every such line may quote outside text (a venue's reason, a URL, a file's
    content): it is made inert, so nothing in it can drive the terminal."""
    sys.stderr.write(f"tickerterm: {inert(message, one_line=True)}\n")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _positive(kind: type[float] | type[int]) -> Any:
    return _number(kind, low=0, low_included=False)


def _number(
    kind: type[float] | type[int], low: float, high: float | None = None, low_included: bool = True
) -> Any:
    """An argparse type: a number of ``kind`` in ``low`` .. ``high`` (a finite one)."""
    import math

    def check(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if value < low or (value == low and not low_included):
            raise argparse.ArgumentTypeError(
                f"must be {'at least' if low_included else 'more than'} {low}, got {text!r}"
                if low
                else f"must be {'0 or more' if low_included else 'positive'}, got {text!r}"
            )
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {text!r}")
        return value

    return check


def _sim_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("simulator")
    g.add_argument("--seed", type=int, default=1, help="market seed: the same seed gives the same market")
    g.add_argument(
        "--rate",
        type=_number(float, 0),
        default=50.0,
        help="market steps per second over all products; 0 = as fast as it can go (default 50)",
    )
    g.add_argument(
        "--depth",
        type=_number(int, 1, 100_000),
        default=2000,
        help="price levels per book side (default 2000)",
    )
    g.add_argument(
        "--warmup",
        type=_number(int, 0),
        default=6000,
        help="market steps simulated before start, spread over the last hour (default 6000)",
    )
    g.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="inject a fault, e.g. drop_rate=0.01, close_code=1011 close_after_messages=500, "
        "malformed_rate=0.01, stall_after_messages=300, refuse_auth (repeatable)",
    )


FEED_EPILOG = """\
credentials (public channels need none; never given on the command line):
  coinbase           COINBASE_API_KEY + COINBASE_API_SECRET, or COINBASE_KEY_FILE
  coinbase-exchange  COINBASE_EXCHANGE_API_KEY + _API_SECRET + _PASSPHRASE, or COINBASE_EXCHANGE_KEY_FILE
  bitzoom            BITZOOM_API_TOKEN
  coinapi            COINAPI_KEY
  0xarchive          OXARCHIVE_API_KEY
  or --key-file PATH for any of them

exit codes:
  0  normal end (q, Ctrl-C, SIGTERM, --duration, --max-events, a closed stdout pipe)
  1  every connection gave up (the reason and a hint on stderr)
  2  bad input (one line on stderr naming the option)

examples:
  tickerterm --sim                                    the dashboard on the built-in simulator
  tickerterm --venue coinbase --products BTC-USD,ETH-USD
  tickerterm --sim --headless --max-events 100        NDJSON events on stdout
  tickerterm --venue bitzoom --products BTC-USDT --channels depth@100ms,trade
  tickerterm sim --venue coinapi                      a standalone simulator (prints how to connect)
  tickerterm relay --sim --to nats://127.0.0.1:4222   one feed for many screens, through NATS JetStream
  tickerterm --from nats://127.0.0.1:4222             a screen on that relay's feed

settings (command line > TICKERTERM_* variables > config file > defaults):
  tickerterm config --init                            write a commented config file to start from
  tickerterm config                                   what is in effect, and where each value came from
  the file: $XDG_CONFIG_HOME/tickerterm/config.toml (or --config PATH, TICKERTERM_CONFIG); keys named
  like the long options, e.g.  venue = "bitzoom"  products = ["BTC-USDT"]  fps = 20  palette = "colorblind"
  [watchlists] majors = ["BTC-USD", "ETH-USD"]   (w switches; --watchlist majors starts with one)
  [keys] "product.next" = "j,n"                  (an action's id from ? in the dashboard, to keys)
  variables: TICKERTERM_VENUE, TICKERTERM_PRODUCTS=BTC-USD,ETH-USD, TICKERTERM_FPS, TICKERTERM_THEME...

tickerterm sim --help: the simulator's own options.
tickerterm completion bash|zsh|fish: shell completion (e.g. tickerterm completion bash >> ~/.bashrc)."""

SIM_EPILOG = """\
faults (--fault NAME=VALUE, repeatable): drop_rate, drop_next, corrupt_rate, corrupt_next, close_code with
close_after_messages or close_after_seconds, refuse_auth, malformed_rate, unknown_rate, stall_after_messages,
shutdown_after_seconds, reconnect_notice_after, gap_notice_after, snapshot_delay (see the README)

exit codes: 0 stopped (Ctrl-C, SIGTERM); 2 bad input or the port cannot be used

examples:
  tickerterm sim --venue coinbase --port 8765
  tickerterm sim --venue coinapi --port 0 --fault drop_rate=0.01
  tickerterm sim --venue bitzoom --write-key-file /tmp/bitzoom-key.json"""


def feed_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tickerterm",
        description="Live market data in the terminal: tickers, trades, candles, a depth ladder and "
        "connection health, from a venue's WebSocket feed (or the built-in simulator).",
        epilog=FEED_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"tickerterm {__version__}, {implementation()}")
    p.add_argument(
        "--venue",
        default="coinbase",
        help=f"one of: {', '.join(sorted(VENUES))} (default coinbase); several, comma-separated, share one "
        "screen with the consolidated book",
    )
    p.add_argument(
        "--products",
        type=_csv,
        default=None,
        help="comma-separated, e.g. BTC-USD,ETH-USD; with several venues venue:PRODUCT is for one venue "
        "(coinbase:BTC-USD,bitzoom:BTC-USDT), a plain product for every venue",
    )
    p.add_argument(
        "--channels",
        type=_csv,
        default=None,
        help="comma-separated venue channels (default: ticker, book, trades, candles)",
    )
    p.add_argument("--url", help="market-data WebSocket URL (default: the venue's)")
    p.add_argument("--user-url", help="user-data WebSocket URL, where the venue has one")
    p.add_argument("--rest-url", help="REST base URL for book snapshots, where the venue needs them")
    p.add_argument("--sandbox", action="store_true", help="the venue's sandbox/testnet endpoints")
    p.add_argument(
        "--replay",
        metavar="START..END",
        help="replay history instead of live data (0xarchive): times as 2024-01-01T12:00, UNIX seconds, "
        "or relative to now like now-30m..now-10m or now-1h..now",
    )
    p.add_argument("--speed", type=_positive(float), default=10.0, help="replay speed (default 10x)")
    p.add_argument("--key-file", help="API key file (else the venue's environment variables)")
    p.add_argument(
        "--sim", action="store_true", help="run against the built-in simulator (no network, no keys)"
    )
    p.add_argument(
        "--from",
        dest="source",
        metavar="NATS_URL",
        help="read the feed from a relay (tickerterm relay) through NATS JetStream instead of the venue",
    )
    p.add_argument(
        "--stream",
        default="tickerterm",
        metavar="NAME",
        help="the relay's name on the broker: its subjects NAME.<venue>.<product>.<kind> and the JetStream "
        "stream NAME in capitals (default tickerterm)",
    )
    p.add_argument(
        "--headless", action="store_true", help="print NDJSON events to stdout instead of the dashboard"
    )
    p.add_argument("--duration", type=_positive(float), help="stop after this many seconds")
    p.add_argument("--max-events", type=_positive(int), help="stop after this many output lines")
    p.add_argument(
        "--retries",
        type=_number(int, -1),
        default=10,
        help="reconnect attempts after a failed or lost connection before giving up: N allows N+1 "
        "attempts in a row (0 = give up at the first failure, -1 = never; default 10)",
    )
    p.add_argument("--heartbeats", action="store_true", help="also print heartbeat lines")
    p.add_argument(
        "--fps", type=_positive(float), default=10.0, help="dashboard redraws per second (default 10)"
    )
    p.add_argument("--light", action="store_true", help="light theme (NO_COLOR is respected)")
    p.add_argument(
        "--dark", dest="light", action="store_false", help="dark theme (over light = true in the config file)"
    )
    p.add_argument("--theme", help="a Textual theme by name (textual-dark, nord, gruvbox, dracula...)")
    p.add_argument(
        "--palette", choices=("standard", "colorblind"), help="up/down colours: green/red or blue/orange"
    )
    p.add_argument("--watchlist", metavar="NAME", help="start with a watchlist from the config file")
    p.add_argument(
        "--alert",
        dest="alerts",
        action="append",
        metavar="RULE",
        help="alert when a rule fires (repeatable): 'BTC-USD > 65000', 'ETH-USD move 1%% 5m', "
        "'BTC-USD spread > 5', 'BTC-USD unsafe > 10s', 'BTC-USD quiet 30s', 'reconnects > 3 in 10m', "
        "'latency > 500ms', 'gave up'",
    )
    p.add_argument(
        "--bars",
        type=_bar_interval,
        metavar="INTERVAL",
        help="print a candle line (source trades, volume, vwap) for each bar built from trades as it "
        "closes: 1m, 5m, 15m, 1h, or any such as 30s (the cbpro seed's VolumeAnalyzer)",
    )
    p.add_argument(
        "--alert-exec",
        metavar="CMD",
        help="run CMD for each alert, the alert as a JSON line on its stdin (at most 4 at once, each "
        "killed after 10 s; failures are alerts too)",
    )
    p.add_argument(
        "--same-quote",
        dest="same_quote",
        action="append",
        metavar="QUOTE=QUOTE",
        help="several venues: count one quote as another in the consolidated book (USDT=USD puts "
        "Bitzoom's BTC-USDT with Coinbase's BTC-USD; never guessed; repeatable)",
    )
    p.add_argument("--config", metavar="PATH", help="the config file (default: see settings below)")
    p.add_argument(
        "--ansi",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="use the terminal's own 16-colour palette and background (fewest bytes over SSH)",
    )
    p.add_argument(
        "--low-bandwidth",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="for slow SSH links: the terminal's own colours, the ladder twice a second, tickers and tape "
        "once, the chart every 5 s (about a quarter of the bytes)",
    )
    p.add_argument(
        "--show-rate",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="show in the header how many bytes a second the dashboard writes to the terminal",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log reconnects, close codes and venue errors (-vv: debug): to stderr with --headless, to "
        "--log-file or ~/.local/state/tickerterm/tickerterm.log with the dashboard",
    )
    p.add_argument("--log-file", metavar="PATH", help="append log lines to PATH instead of stderr")
    p.add_argument(
        "--record",
        nargs="?",
        const="",
        metavar="PATH",
        help="keep the session in a SQLite file (default ./tickerterm-VENUE-TIME.db): every frame for "
        "`tickerterm replay`, and tables of trades, tickers, candles, books and health to query",
    )
    p.add_argument(
        "--record-max",
        type=_limits,
        default=(DEFAULT_MAX_BYTES, 0.0),
        metavar="LIMIT",
        help="stop recording at a size (500M, 2G), an age (30m, 6h) or either (2G,6h); default 2G",
    )
    _sim_options(p)
    return p


def relay_parser() -> argparse.ArgumentParser:
    p = feed_parser()
    p.prog = "tickerterm relay"
    p.description = (
        "Hold the venue connections once and publish every normalized event to NATS JetStream, for any "
        "number of screens (tickerterm --from NATS_URL) and scripts. Takes the feed's options."
    )
    p.epilog = None
    p.add_argument("--to", required=True, metavar="NATS_URL", help="the broker, e.g. nats://127.0.0.1:4222")
    p.add_argument(
        "--keep",
        type=_limits,
        default=(2**30, 3600.0),
        metavar="LIMIT",
        help="history JetStream keeps: a size (500M, 2G), an age (30m, 6h) or both (1G,1h; the default)",
    )
    p.add_argument(
        "--snapshot-every",
        type=_positive(float),
        default=5.0,
        metavar="SECONDS",
        help="publish each book whole this often, for viewers that join late or lost messages (default 5)",
    )
    p.add_argument(
        "--buffer",
        type=_positive(int),
        default=200_000,
        metavar="N",
        help="messages kept while the broker is away (past it the oldest are dropped, and counted; "
        "default 200000)",
    )
    p.add_argument(
        "--raw",
        action="store_true",
        help="also publish the venue's frames as they came (<stream>.<venue>.raw; secrets removed)",
    )
    return p


def _bar_interval(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    value = text.strip()
    if len(value) >= 2 and value[-1] in units and value[:-1].isdigit() and int(value[:-1]) > 0:
        seconds = int(value[:-1]) * units[value[-1]]
        if seconds <= 86400:
            return seconds
    raise argparse.ArgumentTypeError(f"not a bar interval: {text!r} (such as 1m, 5m, 30s, 1h)")


def _limits(text: str) -> tuple[int, float]:
    try:
        return parse_limits(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


REPLAY_EPILOG = """\
keys (the dashboard): space pause / resume, <- -> seek a minute, + - speed, x stop, q quit

exit codes: 0 the replay ended or was stopped; 2 bad input (not a recording, a bad time)

examples:
  tickerterm --sim --record session.db --duration 60     record a minute of the simulator
  tickerterm replay session.db                            the dashboard, in recorded time
  tickerterm replay session.db --headless --speed 0       the NDJSON the live run printed, at once
  tickerterm replay session.db --before-gap               from a minute before the last gap or close"""


def replay_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tickerterm replay",
        description="Play a recording (--record) back through the same venue code: the same panels and "
        "keys as the live session, or with --headless the NDJSON the live run printed.",
        epilog=REPLAY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "file",
        metavar="FILE",
        help="a recording made with --record, or a relay's broker (nats://host:4222) to play its history",
    )
    p.add_argument("--stream", default="tickerterm", metavar="NAME", help="with nats://: the relay's name")
    p.add_argument("--venue", default="coinbase", help="with nats://: the venue to play (default coinbase)")
    p.add_argument("--products", type=_csv, default=None, help="with nats://: the products to play")
    p.add_argument(
        "--speed",
        type=_number(float, 0.0),
        default=None,
        help="recorded seconds per second (0: as fast as it goes; default 1, or 0 with --headless)",
    )
    p.add_argument("--from", dest="start", metavar="TIME", help="start at TIME (ISO, UNIX seconds, now-1h)")
    p.add_argument("--to", dest="end", metavar="TIME", help="stop at TIME")
    p.add_argument(
        "--before-gap",
        action="store_true",
        help="start a minute before the most recent gap, close or stale feed of the recording",
    )
    p.add_argument("--headless", action="store_true", help="print NDJSON events instead of the dashboard")
    p.add_argument("--max-events", type=_positive(int), help="stop after this many output lines")
    p.add_argument("--heartbeats", action="store_true", help="also print heartbeat lines")
    p.add_argument("--fps", type=_positive(float), default=10.0, help="dashboard redraws per second")
    p.add_argument("--light", action="store_true", help="light theme")
    p.add_argument("--ansi", action="store_true", help="the terminal's own 16-colour palette")
    return p


def sim_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tickerterm sim",
        description="Run the built-in exchange simulator of one venue as a standalone server on a loopback "
        "port; it prints its URL on stdout and, on stderr, a tickerterm command that connects to it.",
        epilog=SIM_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--venue", default="coinbase", help=f"one of: {', '.join(sorted(SIMULATORS))}")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)"
    )
    p.add_argument(
        "--port", type=_number(int, 0, 65535), default=8765, help="0 picks a free port (default 8765)"
    )
    p.add_argument(
        "--write-key-file",
        metavar="PATH",
        help="write the test account's API key here for clients (--key-file PATH); venues whose default "
        "channels need a key (coinapi, 0xarchive) get one in a private temporary file without it",
    )
    p.add_argument("--heartbeat", type=_positive(float), default=1.0, help="heartbeat interval, seconds")
    p.add_argument(
        "--blast",
        type=_number(int, 0),
        default=0,
        metavar="STEPS",
        help="benchmark mode: replay a prepared level2 cycle of STEPS market steps (and their "
        "undoing) to every subscriber as fast as its socket takes it",
    )
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="log connections and faults to stderr (-vv: debug)"
    )
    p.add_argument("--log-file", metavar="PATH", help="append log lines to PATH instead of stderr")
    _sim_options(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    tune_gc()
    try:
        if args[:1] == ["sim"]:
            ns = sim_parser().parse_args(args[1:])
            _logging(ns.verbose, ns.log_file)
            return asyncio.run(run_sim(ns))
        if args[:1] == ["replay"]:
            ns = replay_parser().parse_args(args[1:])
            _replay_settings(ns)
            return run_replay(ns)
        if args[:1] == ["relay"]:
            ns = relay_parser().parse_args(args[1:])
            settings(ns, args[1:], relay_parser)
            plan = _explained(ns, _plan)
            _logging(ns.verbose, ns.log_file)  # a broker or venue that is away: warnings
            return asyncio.run(run_relay(ns, plan))
        if args[:1] == ["config"]:
            return run_config(args[1:])
        if args[:1] == ["completion"]:
            return run_completion(args[1:])
        ns = feed_parser().parse_args(args)
        settings(ns, args)
        plan = _explained(ns, _plan)
        if ns.headless:
            _logging(ns.verbose, ns.log_file)
            return asyncio.run(run_feed(ns, plan))
        # the dashboard owns the terminal: log lines go to a file, never over the screen
        log_file = ns.log_file or (default_log_file() if ns.verbose else None)
        ns.log_file = _logging(ns.verbose, log_file, stderr=False)
        return run_dashboard(ns, plan)
    except KeyboardInterrupt:
        return 0
    except TickertermError as exc:
        _fail(str(exc))
    except ValueError as exc:  # fault specs and other option values
        _fail(str(exc))


def _logging(verbose: int, log_file: str | None = None, *, stderr: bool = True) -> str | None:
    """Log to ``log_file`` (appended) or stderr (not for the dashboard: then nothing without a file);
    returns the file's path, if any."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler: logging.Handler
    if log_file:
        path = os.path.abspath(os.path.expanduser(log_file))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--log-file: cannot write {log_file!r}: {exc.strerror}") from None
    elif stderr:
        path, handler = None, logging.StreamHandler(sys.stderr)
    else:
        path, handler = None, logging.NullHandler()
    handler.setFormatter(InertFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    return path


def default_log_file() -> str:
    """Where the dashboard logs with ``-v`` and no ``--log-file``: the user's state directory
    (``$XDG_STATE_HOME/tickerterm/tickerterm.log``, by default ``~/.local/state/tickerterm/``)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "tickerterm", "tickerterm.log")


def _replay_settings(ns: argparse.Namespace) -> None:
    """A replay's dashboard with the user's theme, palette and keys (environment and config file; its
    own options ``--fps``, ``--light`` and ``--ansi`` win)."""
    config = load(default_path(), required=bool(os.environ.get("TICKERTERM_CONFIG")))
    given = {"fps": ns.fps} if ns.fps != 10.0 else {}
    given |= {name: True for name in ("light", "ansi") if getattr(ns, name)}
    effective = resolve(given, {"fps": ns.fps, "light": ns.light, "ansi": ns.ansi}, os.environ, config)
    for name in ("fps", "light", "ansi", "theme", "palette"):
        setattr(ns, name, effective.values.get(name))
    ns.settings = effective


def _theme(ns: argparse.Namespace) -> str | None:
    """``--ansi`` > ``theme`` (command line, environment, file) > ``--light`` > the last theme chosen."""
    if ns.ansi or getattr(ns, "low_bandwidth", False):
        return "ansi-light" if ns.light else "ansi-dark"
    if ns.theme:
        return str(ns.theme)
    if ns.light:
        return None
    last = remembered("theme")
    return last if isinstance(last, str) else None


def _keys(ns: argparse.Namespace, ids: list[str]) -> dict[str, str]:
    """The config file's ``[keys]``, each naming an action the dashboard has."""
    effective: Effective | None = getattr(ns, "settings", None)
    if effective is None:
        return {}
    config = effective.config
    for action in config.keys:
        if action not in ids:
            raise ConfigError(
                f"{config.where(action)}: [keys] has no action {action!r} (choose from: {', '.join(ids)})"
            )
    return dict(config.keys)


def _given(args: Sequence[str], parser: Callable[[], argparse.ArgumentParser] = feed_parser) -> set[str]:
    """The options given on the command line (their ``dest``), defaults aside."""
    p = parser()
    for action in p._actions:
        action.default = argparse.SUPPRESS
    return set(vars(p.parse_args(args)))


def settings(
    ns: argparse.Namespace, args: Sequence[str], parser: Callable[[], argparse.ArgumentParser] = feed_parser
) -> Effective:
    """``ns`` with the environment and the config file filled in where the command line said nothing
    (command line > ``TICKERTERM_*`` > file > defaults); the result is kept in ``ns.settings``."""
    given = _given(args, parser)
    path = ns.config or default_path()
    config = load(path, required=bool(ns.config or os.environ.get("TICKERTERM_CONFIG")))
    names = list(SETTINGS)
    effective = resolve(
        {n: getattr(ns, n) for n in names if n in given},
        {n: getattr(ns, n, None) for n in names},
        os.environ,
        config,
    )
    for name, value in effective.values.items():
        setattr(ns, name, value)
    ns.settings = effective
    return effective


def _explained(ns: argparse.Namespace, check: Callable[[argparse.Namespace], Any]) -> Any:
    """``check(ns)``, its ConfigError saying where a setting it names came from when that was not the
    command line (a product from the config file is wrong in the file, not in an option)."""
    try:
        return check(ns)
    except ConfigError as exc:
        effective: Effective | None = getattr(ns, "settings", None)
        if effective is None:
            raise
        text = str(exc)
        origins = [
            f"{name.replace('_', '-')} from {effective.sources[name]}"
            for name, word in (("venue", "venue"), ("products", "product"), ("channels", "channel"))
            if word in text and effective.sources.get(name, "command line") not in ("command line", "default")
        ]
        if origins:
            raise ConfigError(f"{text} ({'; '.join(origins)})") from None
        raise


def run_config(args: Sequence[str]) -> int:
    """``tickerterm config [--init [--force]] [options]``: what is in effect and where each value came
    from, or a commented starting file."""
    init = "--init" in args
    force = "--force" in args
    rest = [a for a in args if a not in ("--init", "--force")]
    if init:
        ns = feed_parser().parse_args(rest)
        path = write_starter(ns.config or default_path(), force=force)
        print(f"wrote {path}: uncomment what you want to set")
        return 0
    if force:
        raise ConfigError("--force goes with --init")
    ns = feed_parser().parse_args(rest)
    print(show(settings(ns, rest)))
    return 0


def run_completion(args: Sequence[str]) -> int:
    """``tickerterm completion bash|zsh|fish``: a completion script generated from the option parser."""
    from tickerterm.completion import script

    if len(args) != 1 or args[0] not in ("bash", "zsh", "fish"):
        raise ConfigError("completion takes one shell: bash, zsh or fish")
    sys.stdout.write(script(args[0], feed_parser()))
    return 0


def _plan(ns: argparse.Namespace) -> dict[str, Any]:
    """Validate everything before any connection is made."""
    names = [part.strip() for part in str(ns.venue).split(",")]
    if not all(names):
        raise ConfigError(f"--venue: {ns.venue!r} names no venue (one, or several comma-separated)")
    venues = list(dict.fromkeys(venue_class(name).name for name in names))
    for option, given in (("--products", ns.products), ("--channels", ns.channels)):
        if given is not None and not given:
            raise ConfigError(f"{option} is empty (leave it out for the default)")
    _check_relay_options(ns, venues)
    if len(venues) > 1:
        return _plan_several(ns, venues)
    ns.venue = venues[0]
    cls = venue_class(ns.venue)
    adapter = cls()
    products = [adapter.normalize_product(p) for p in (ns.products or adapter.default_products)]
    channels = [adapter.channel(c).name for c in (ns.channels or adapter.default_channels)]
    _check_venue(adapter, products, channels, ns.sim)
    _relay_market_only(ns, cls, channels)
    if ns.sim and (ns.url or ns.user_url):
        raise ConfigError("--url and --sim exclude each other")
    for option, url, schemes in (
        ("--url", ns.url, ("ws", "wss")),
        ("--user-url", ns.user_url, ("ws", "wss")),
        ("--rest-url", ns.rest_url, ("http", "https")),
    ):
        if url:
            _check_url(option, url, schemes)
    if not ns.sim and any(cls.channels[c].private for c in channels):
        cls(credentials=cls.load_credentials(ns.key_file)).check_credentials(channels)
    if ns.sandbox and not cls.sandbox_endpoints:
        raise ConfigError(f"{cls.name} has no sandbox")
    for rule in getattr(ns, "alerts", None) or ():
        parse_rule(rule)  # a bad rule is bad input: one line, exit 2
    faults = Faults.parse(ns.fault)
    replay = None
    if ns.replay:
        if not cls.session_type.replays:
            raise ConfigError(f"{cls.name} has no replay (0xarchive has)")
        if len(products) != 1:
            raise ConfigError("--replay takes one product (--products BTC)")
        start, end = _replay_window(ns.replay)
        replay = ReplayPlan(products[0], channels, start, end, ns.speed)
    record = ns.record
    if record == "":  # --record without a path: a new file here, named for the venue and the time
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        record = f"tickerterm-{cls.name}-{stamp}.db"
    watchlists = _watchlists(ns, adapter, cls)
    return {
        "products": products,
        "channels": channels,
        "faults": faults,
        "replay": replay,
        "record": record,
        "watchlists": watchlists,
    }


def _check_relay_options(ns: argparse.Namespace, venues: list[str]) -> None:
    """``--from`` (a viewer) and ``relay --to``: what they cannot be combined with, in one line each."""
    stream_names(ns.stream)  # a name the broker takes
    to = getattr(ns, "to", None)
    if to is not None:
        broker_url(to)
        if ns.source:
            raise ConfigError("relay: --from and --to exclude each other (a relay reads the venue)")
    if not ns.source:
        return
    broker_url(ns.source)
    for option, given in (
        ("--sim", ns.sim),
        ("--url", ns.url),
        ("--user-url", ns.user_url),
        ("--rest-url", ns.rest_url),
        ("--sandbox", ns.sandbox),
        ("--key-file", ns.key_file),
        ("--replay", ns.replay),
        ("--record", ns.record is not None),
        ("--alert-exec", ns.alert_exec),
        ("--bars", ns.bars),
    ):
        if given:
            raise ConfigError(
                f"--from and {option} exclude each other (the relay holds the venue connection)"
            )


def _relay_market_only(ns: argparse.Namespace, cls: Any, channels: list[str]) -> None:
    """A relay publishes market data only: account channels are refused by the relay and its viewers."""
    if ns.source or getattr(ns, "to", None):
        for name in channels:
            if cls.channels[name].private:
                raise ConfigError(f"--channels {name}: a relay carries market data only (never account data)")


def _check_venue(adapter: Any, products: list[str], channels: list[str], sim: bool) -> None:
    """One book channel at most; on the simulator, only products it has (ConfigError naming them)."""
    books = [c for c in channels if adapter.channel(c).kind == "book"]
    if len(set(books)) > 1:
        raise ConfigError(f"choose one book channel, not {' and '.join(dict.fromkeys(books))}")
    if sim:
        offered = [p.product for p in simulator_class(adapter.name).default_products]
        unknown = [p for p in products if p not in offered]
        if unknown:
            raise ConfigError(f"unknown product {unknown[0]!r} (the simulator has: {', '.join(offered)})")


def _plan_several(ns: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """Several venues on one screen: products and channels per venue (``venue:NAME`` for one venue, a
    plain name for every venue), each checked as for one venue; the options that name one venue's
    endpoint, key or history are refused."""
    for option, given in (
        ("--url", ns.url),
        ("--user-url", ns.user_url),
        ("--rest-url", ns.rest_url),
        ("--sandbox", ns.sandbox),
        ("--replay", ns.replay),
        ("--record", ns.record is not None),
        ("--key-file", ns.key_file),
    ):
        if given:
            raise ConfigError(f"{option} is for one venue, not several ({', '.join(names)})")
    products_of = split_products(names, ns.products or [])
    channels_of = _split_channels(names, ns.channels or [])
    venues: dict[str, dict[str, list[str]]] = {}
    adapters = {name: venue_class(name)() for name in names}
    for name, adapter in adapters.items():
        cls = type(adapter)
        try:
            products = [adapter.normalize_product(p) for p in (products_of[name] or adapter.default_products)]
            channels = channels_of[name] or [adapter.channel(c).name for c in adapter.default_channels]
            _check_venue(adapter, products, channels, ns.sim)
            _relay_market_only(ns, cls, channels)
            if not ns.sim and any(cls.channels[c].private for c in channels):
                cls(credentials=cls.load_credentials(None)).check_credentials(channels)
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None
        venues[name] = {"products": products, "channels": channels}
    alerts_by_venue(ns.alerts or (), adapters, {name: v["products"] for name, v in venues.items()})
    first = venues[names[0]]
    return {
        "venues": venues,
        "products": first["products"],
        "channels": first["channels"],
        "faults": Faults.parse(ns.fault),
        "replay": None,
        "record": None,
        "watchlists": {},  # a watchlist names one venue's products
        "same_quote": parse_same_quote(ns.same_quote or ()),
    }


def _split_channels(names: list[str], channels: list[str]) -> dict[str, list[str]]:
    """``--channels`` for several venues: ``bitzoom:trade`` for one venue; a plain channel for each venue
    that has it (venues name their channels differently), and bad input when none has."""
    out: dict[str, list[str]] = {name: [] for name in names}
    for text in channels:
        venue, sep, channel = text.partition(":")
        if sep and venue in out:
            out[venue].append(venue_class(venue)().channel(channel).name)
            continue
        took = False
        for name in names:
            with contextlib.suppress(ConfigError):
                out[name].append(venue_class(name)().channel(text).name)
                took = True
        if not took:
            raise ConfigError(f"unknown channel {text!r}: no venue here ({', '.join(names)}) has it")
    return out


def _watchlists(ns: argparse.Namespace, adapter: Any, cls: Any) -> dict[str, list[str]]:
    """The config file's watchlists, each product checked like ``--products`` (ConfigError naming the
    file and line)."""
    effective: Effective | None = getattr(ns, "settings", None)
    if effective is None:
        return {}
    config = effective.config
    out = {}
    offered = [p.product for p in simulator_class(cls.name).default_products] if ns.sim else None
    for name, products in config.watchlists.items():
        try:
            normalized = [adapter.normalize_product(p) for p in products]
        except ConfigError as exc:
            raise ConfigError(f"{config.where(name)}: watchlist {name!r}: {exc}") from None
        unknown = [p for p in normalized if offered is not None and p not in offered]
        if unknown:
            raise ConfigError(
                f"{config.where(name)}: watchlist {name!r}: unknown product {unknown[0]!r} "
                f"(the simulator has: {', '.join(offered or [])})"
            )
        out[name] = normalized
    return out


def _check_url(option: str, url: str, schemes: tuple[str, ...]) -> None:
    """A URL the user gave: one of ``schemes``, a host, nothing unprintable; ConfigError naming the option."""
    from urllib.parse import urlsplit

    wanted = " or ".join(f"{s}://" for s in schemes)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        host = None
    if not url.isprintable() or " " in url or host is None:
        raise ConfigError(f"{option}: not a valid URL: {url[:60]!r}")
    if parts.scheme not in schemes:
        raise ConfigError(f"{option} must start with {wanted}, got {url[:40]!r}")


def _moment(part: str, option: str) -> float:
    """One time: ISO (UTC unless it says), UNIX seconds, ``now``, or ``now-30m`` / ``-30m``."""
    from datetime import datetime

    part = part.strip()
    now = time.time()
    if part == "now":
        return now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    ago = part.removeprefix("now")
    if ago[:1] == "-" and ago[-1:] in units and ago[1:-1].replace(".", "", 1).isdigit():
        return now - float(ago[1:-1]) * units[ago[-1]]
    try:
        return float(part)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(part)
    except ValueError:
        raise ConfigError(
            f"{option}: {part[:30]!r} is not a time (2024-01-01T12:00, UNIX seconds, -30m, now)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _replay_window(text: str) -> tuple[float, float]:
    """``START..END``: ISO times, UNIX seconds, ``now``, or offsets from now such as ``-30m``."""
    start_text, sep, end_text = text.partition("..")
    if not sep:
        raise ConfigError("--replay takes START..END, e.g. now-30m..now-10m")
    start, end = _moment(start_text, "--replay"), _moment(end_text, "--replay")
    if not start < end:
        raise ConfigError("--replay: START must come before END")
    return start, end


def _sim_options_of(ns: argparse.Namespace, plan: dict[str, Any]) -> dict[str, Any]:
    return {
        "seed": ns.seed,
        "rate": ns.rate,
        "depth": ns.depth,
        "faults": plan["faults"],
        "warmup": ns.warmup,
    }


def _panel_channels(adapter: Any, channels: list[str]) -> dict[str, str]:
    """Panel kind -> the venue's channel: the channels asked for first, then the venue's own per kind."""
    out: dict[str, str] = {}
    for name in channels:
        out.setdefault(adapter.channel(name).kind, name)
    for kind in ("ticker", "book", "trades", "candles"):
        spec = adapter.channel_for_kind(kind)
        if spec is not None:
            out.setdefault(kind, spec.name)
    return out


def _open(ns: argparse.Namespace, plan: dict[str, Any], policy: RetryPolicy, **options: Any) -> Any:
    """The feed ``plan`` asks for, not yet entered: one venue (``open_feed``), or several on one store
    (``open_feeds``); ``options`` say where its events go (``sink``, ``collect``, ``store``)."""
    common = {
        "sim": ns.sim,
        "sim_options": _sim_options_of(ns, plan),
        "policy": policy,
        "alerts": ns.alerts or (),
        "alert_exec": ns.alert_exec,
        "bars": ns.bars,
        "source": getattr(ns, "source", None),
        "relay": ns.stream,
        **options,
    }
    venues = plan.get("venues")
    if venues:
        return open_feeds(
            {name: v["products"] for name, v in venues.items()},
            {name: v["channels"] for name, v in venues.items()},
            same_quote=plan["same_quote"],
            **common,
        )
    return open_feed(
        ns.venue,
        plan["products"],
        plan["channels"],
        url=ns.url,
        user_url=ns.user_url,
        key_file=ns.key_file,
        sandbox=ns.sandbox,
        rest_url=ns.rest_url,
        replay=plan["replay"],
        record=plan["record"],
        record_max=ns.record_max[0],
        record_for=ns.record_max[1],
        **common,
    )


def run_dashboard(ns: argparse.Namespace, plan: dict[str, Any]) -> int:
    from tickerterm.ui.app import TickertermApp  # textual loads only for the dashboard
    from tickerterm.ui.widgets import VenueView

    adapter = venue_class(ns.venue.split(",")[0])()
    channels = _panel_channels(adapter, plan["channels"])
    policy = RetryPolicy(budget=None if ns.retries < 0 else ns.retries)
    several: dict[str, VenueView] = {}
    for name, v in plan.get("venues", {}).items():
        other = venue_class(name)()
        intervals = {seconds: label for label, seconds in other.candle_intervals.items()}
        several[name] = VenueView(list(v["products"]), _panel_channels(other, v["channels"]))
        if intervals:
            several[name].intervals = intervals

    def opener(store: Store) -> Any:
        return _open(ns, plan, policy, collect=False, store=store)

    async def new_recording(feed: Any) -> Any:  # with the feed's adapter: its keys are kept off the disk
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        path = f"tickerterm-{adapter.name}-{stamp}.db"
        size, age = ns.record_max
        return await open_recording(path, feed.adapter, feed.products, plan["channels"], size, age)

    app = TickertermApp(
        opener,
        recorder=None if several or ns.source else new_recording,
        venue=adapter.name,
        products=plan["products"],
        channels=channels,
        simulated=ns.sim,
        fps=ns.fps,
        light=ns.light,
        theme=_theme(ns),
        replay=plan["replay"] is not None,
        log_file=ns.log_file,
        intervals=adapter.candle_intervals,
        palette=ns.palette,
        keys=_keys(ns, TickertermApp.binding_ids()),
        watchlists=plan["watchlists"],
        remember_theme=lambda name: remember("theme", name),
        bell=bool(ns.bell),
        notify=bool(ns.notify),
        venues=several or None,
        low_bandwidth=bool(ns.low_bandwidth),
        show_rate=bool(ns.show_rate),
    )
    if app._theme and app._theme not in app.available_themes:
        source = ns.settings.sources.get("theme", "command line") if hasattr(ns, "settings") else "--theme"
        known = ", ".join(sorted(t for t in app.available_themes if not t.startswith("ansi")))
        raise ConfigError(f"theme {app._theme!r} ({source}) is not a theme (choose from: {known})")
    tune_gc(DASHBOARD_GEN0)  # again, now that textual is loaded: short passes (a key never waits long)
    app.run()
    if app.return_code:  # the dashboard itself failed (Textual has shown why): not a normal end
        return app.return_code
    ended = list(app.store.health.values())
    if not ended or any(h.state != "gave_up" for h in ended):
        return 0
    return _gave_up((h.conn, h.gave_up_reason, h.bad_input) for h in ended)


async def run_relay(ns: argparse.Namespace, plan: dict[str, Any]) -> int:
    """``tickerterm relay``: the feed's events published to the broker until SIGTERM, Ctrl-C or
    ``--duration``; every connection giving up ends it as it ends a headless feed."""
    from tickerterm.core.relay import shown_url
    from tickerterm.stream.relay import Relay

    root, stream = stream_names(ns.stream)
    size, age = ns.keep
    relay = Relay(
        ns.to,
        root=root,
        stream=stream,
        history=age or 3600.0,
        max_bytes=size,
        snapshot_every=ns.snapshot_every,
        buffer=ns.buffer,
    )
    done = asyncio.Event()
    gave_up: list[GaveUp] = []

    def sink(events: list[Event]) -> None:
        gave_up.extend(ev for ev in events if type(ev) is GaveUp)
        relay.sink(events)

    def on_signal() -> None:
        done.set()
        _exit_within(5.0)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal)
    policy = RetryPolicy(budget=None if ns.retries < 0 else ns.retries)
    async with _open(ns, plan, policy, sink=sink, collect=False) as feed:
        await relay.start(feed.store)
        if ns.raw:
            relay.tap(feed)
        venues = plan.get("venues") or {ns.venue: plan}
        what = "; ".join(
            f"{name} {','.join(v['products'])} ({', '.join(v['channels'])})" for name, v in venues.items()
        )
        _say(f"relaying {what} to {shown_url(ns.to)} as {root}.* (stream {stream}); Ctrl-C ends")
        waiters = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(feed.wait_finished())]
        try:
            await asyncio.wait(waiters, timeout=ns.duration, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        stopped = not feed.running
    await relay.stop()
    said = f"relay: published {relay.published}, dropped {relay.dropped} while the broker was away"
    if relay.too_large:
        said += f", {relay.too_large} too large for the broker"
    _say(said)
    if stopped and gave_up:
        return _gave_up((ev.conn, ev.reason, ev.bad_input) for ev in gave_up)
    return 0


def _gave_up(ended: Iterable[tuple[str, str, bool]]) -> int:
    """Exit status once every connection gave up, with each reason on stderr: 2 when the venue refused
    what was asked for (every product: bad input), else 1."""
    code = 1
    for conn, reason, bad_input in ended:
        if bad_input:
            _say(f"error: {reason}")
            code = 2
        else:
            _say(f"gave up on {conn}: {reason}")
    return code


async def run_feed(ns: argparse.Namespace, plan: dict[str, Any]) -> int:
    out = sys.stdout
    done = asyncio.Event()
    ended = asyncio.Event()
    replaying = plan.get("replay") is not None
    state = {"count": 0, "broken": False}
    gave_up: list[GaveUp] = []
    store_ref: list[Store] = []

    def sink(events: list[Event]) -> None:
        if done.is_set():
            return
        store = store_ref[0] if store_ref else None
        for ev in events:
            if type(ev) is GaveUp:
                gave_up.append(ev)
            line = dumps(ev, store, heartbeats=ns.heartbeats)
            if type(ev) is ReplayState and ev.state in ("completed", "stopped") and replaying:
                ended.set()  # a replay's end is the end of a headless run (after its line is printed)
            if line is None:
                continue
            try:
                out.write(line + "\n")
                out.flush()
            except BrokenPipeError:
                state["broken"] = True
                done.set()
                return
            state["count"] += 1
            if ns.max_events and state["count"] >= ns.max_events:
                done.set()
                return

    def on_signal() -> None:  # SIGTERM, SIGINT: end now, and for certain within a couple of seconds
        done.set()
        _exit_within(2.0)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal)
    policy = RetryPolicy(budget=None if ns.retries < 0 else ns.retries)
    opened = _open(ns, plan, policy, sink=sink)
    async with opened as feed:
        store_ref.append(feed.store)
        waiters = [
            asyncio.ensure_future(done.wait()),
            asyncio.ensure_future(ended.wait()),
            asyncio.ensure_future(feed.wait_finished()),
        ]
        try:
            await asyncio.wait(waiters, timeout=ns.duration, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            done.set()
    if state["broken"]:
        with contextlib.suppress(OSError):  # keep Python quiet about the closed pipe at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if not feed.running and gave_up and not done_by_limit(ns, state):
        return _gave_up((ev.conn, ev.reason, ev.bad_input) for ev in gave_up)
    return 0


def _relay_replay(ns: argparse.Namespace, speed: float, **options: Any) -> Any:
    """The relay history ``ns`` names (``tickerterm replay nats://…``), not yet opened."""
    from tickerterm.stream.relay import RelayReplay

    broker_url(ns.file)
    root, stream = stream_names(ns.stream)
    adapter = venue_class(ns.venue)()
    products = [adapter.normalize_product(p) for p in (ns.products or adapter.default_products)]
    start = _moment(ns.start, "--from") if ns.start else None
    end = _moment(ns.end, "--to") if ns.end else None
    if start is not None and end is not None and not start < end:
        raise ConfigError("--from must come before --to")
    return RelayReplay(
        ns.file,
        adapter,
        products,
        root=root,
        stream=stream,
        speed=speed,
        start=start,
        end=end,
        before_gap=bool(ns.before_gap),
        **options,
    )


def run_replay(ns: argparse.Namespace) -> int:
    from tickerterm.record.replay import FileReplay, last_trouble, meta_of, open_file

    if ns.file.startswith(("nats://", "tls://")):
        return _run_relay_replay(ns)

    db = open_file(ns.file)
    try:
        meta = meta_of(db)
        start = _moment(ns.start, "--from") if ns.start else None
        end = _moment(ns.end, "--to") if ns.end else None
        if ns.before_gap:
            trouble = last_trouble(db)
            if trouble is None:
                raise ConfigError("--before-gap: the recording has no gap, close or stale feed")
            start = trouble - 60.0
    finally:
        db.close()
    if start is not None and end is not None and not start < end:
        raise ConfigError("--from must come before --to")
    speed = ns.speed if ns.speed is not None else (0.0 if ns.headless else 1.0)
    if ns.headless:
        return asyncio.run(_replay_headless(ns, speed, start, end))

    venue = str(meta.get("venue", ""))
    adapter = venue_class(venue)()
    channels: dict[str, str] = {}
    for name in meta.get("channels", []):
        with contextlib.suppress(ConfigError):
            channels.setdefault(adapter.channel(name).kind, adapter.channel(name).name)
    return _replay_dashboard(
        ns,
        lambda store: FileReplay(ns.file, store=store, collect=False, speed=speed, start=start, end=end),
        adapter,
        list(meta.get("products", [])),
        channels,
    )


async def _replay_headless(
    ns: argparse.Namespace, speed: float, start: float | None, end: float | None
) -> int:
    from tickerterm.record.replay import FileReplay

    out = sys.stdout
    count = 0
    done = asyncio.Event()
    replay: FileReplay | None = None

    def sink(events: list[Event]) -> None:
        nonlocal count
        if done.is_set():
            return
        for ev in events:
            line = dumps(ev, replay.store if replay is not None else None, heartbeats=ns.heartbeats)
            if line is None:
                continue
            try:
                out.write(line + "\n")
            except BrokenPipeError:
                done.set()
                return
            count += 1
            if ns.max_events and count >= ns.max_events:
                done.set()
                return
        with contextlib.suppress(BrokenPipeError):
            out.flush()

    if ns.file.startswith(("nats://", "tls://")):
        replay = _relay_replay(ns, speed, sink=sink)
    else:
        replay = FileReplay(ns.file, sink=sink, speed=speed, start=start, end=end)
    async with replay:
        waiters = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(replay.wait_finished())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
    with contextlib.suppress(BrokenPipeError, OSError):
        out.flush()
    return 0


def _run_relay_replay(ns: argparse.Namespace) -> int:
    speed = ns.speed if ns.speed is not None else (0.0 if ns.headless else 1.0)
    if ns.headless:
        return asyncio.run(_replay_headless(ns, speed, None, None))
    first = _relay_replay(ns, speed)
    asyncio.run(_probe(first))  # no history to play: one line and exit 2, before the screen is taken
    adapter = first.adapter
    return _replay_dashboard(
        ns,
        lambda store: _relay_replay(ns, speed, store=store, collect=False),
        adapter,
        first.products,
        _panel_channels(adapter, list(adapter.default_channels)),
    )


def _replay_dashboard(
    ns: argparse.Namespace, opener: Callable[[Store], Any], adapter: Any, products: list[str], channels: Any
) -> int:
    """The dashboard on a replay (a recording's, or a relay's history): the replay keys drive it."""
    from tickerterm.ui.app import TickertermApp

    app = TickertermApp(
        opener,
        venue=adapter.name,
        products=products,
        channels=channels,
        fps=ns.fps,
        light=ns.light,
        theme=_theme(ns),
        replay=True,
        intervals=adapter.candle_intervals,
        palette=ns.palette,
        keys=_keys(ns, TickertermApp.binding_ids()),
        remember_theme=lambda name: remember("theme", name),
    )
    app.run()
    return app.return_code or 0


async def _probe(replay: Any) -> None:
    await replay.open()
    await replay.stop()


def _exit_within(seconds: float) -> None:
    """A deadline for shutting down that holds even if the event loop is stuck: a timer thread flushes
    stdout and ends the process (exit 0, as for any Ctrl-C) if it is still running by then."""

    def hard_exit() -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(0)

    timer = threading.Timer(seconds, hard_exit)
    timer.daemon = True
    timer.start()


def done_by_limit(ns: argparse.Namespace, state: dict[str, Any]) -> bool:
    return bool(ns.max_events and state["count"] >= ns.max_events)


async def run_sim(ns: argparse.Namespace) -> int:
    cls = simulator_class(ns.venue)
    for rule in getattr(ns, "alerts", None) or ():
        parse_rule(rule)  # a bad rule is bad input: one line, exit 2
    faults = Faults.parse(ns.fault)
    options: dict[str, Any] = {
        "host": ns.host,
        "port": ns.port,
        "seed": ns.seed,
        "rate": ns.rate,
        "depth": ns.depth,
        "faults": faults,
        "timing": SimTiming(heartbeat=ns.heartbeat),
        "warmup": ns.warmup,
        **({"blast": ns.blast} if ns.blast else {}),
    }
    server = cls(**options)
    venue = venue_class(ns.venue)
    key_file, made = ns.write_key_file, None
    if key_file is None and any(venue.channels[c].private for c in venue.default_channels):
        # the venue's default channels need a key: the hint must work as printed, so the test account's
        # key goes to a private temporary file (removed when the simulator stops)
        fd, key_file = tempfile.mkstemp(prefix=f"tickerterm-{ns.venue}-key-", suffix=".json")
        os.close(fd)
        made = key_file
    if key_file:
        server.write_key_file(key_file)
    try:
        url = await server.start()
    except OSError as exc:
        _fail(f"cannot listen on {ns.host}:{ns.port}: {exc.strerror}")
    print(url, flush=True)
    hint = ["tickerterm", "--venue", ns.venue, "--url", url]
    if "rest" in venue.endpoints:
        hint += ["--rest-url", server.http_url]
    hint.append("--headless")
    if key_file:
        hint += ["--key-file", os.path.abspath(key_file)]  # noqa: ASYNC240 (a getcwd, no I/O wait)
    _say(f"{ns.venue} simulator on {url}; connect with {shlex.join(hint)}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        if made is not None:
            with contextlib.suppress(OSError):
                os.unlink(made)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
