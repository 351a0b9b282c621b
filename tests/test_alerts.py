"""Alerts (issue 18, first part): rules that fire on a crossing and re-arm, moves, spreads, health rules
on a clock; NDJSON ``alert`` lines from a live simulator run; the dashboard's toast, bell and list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickerterm.config import Config, load, resolve
from tickerterm.core.alerts import Alerts, Extremes, parse_rule
from tickerterm.core.errors import ConfigError
from tickerterm.core.events import (
    Alert,
    BookSnapshot,
    BookUnsafe,
    Closed,
    Connected,
    Connecting,
    GaveUp,
    RetryScheduled,
    Ticker,
    Trade,
)
from tickerterm.core.store import Store
from tickerterm.ui.widgets import HealthPanel

from .ui_support import NOW, static_app, until

V = "coinbase"


def ticks(engine: Alerts, store: Store, prices: list[str], product: str = "BTC-USD") -> list[list[str]]:
    """The values of the alerts each price fired."""
    out = []
    for i, price in enumerate(prices):
        ev = Ticker(V, 100.0 + i, product, None, price=price)
        store.apply(ev)
        out.append([a.value for a in engine.check([ev], store, 100.0 + i)])
    return out


def test_a_level_fires_once_per_crossing_and_re_arms_when_it_crosses_back() -> None:
    store = Store()
    engine = Alerts([parse_rule("BTC-USD > 65000")], V)
    fired = ticks(engine, store, ["64000", "64500", "65000", "65100", "64900", "65200", "65300"])
    assert fired == [[], [], ["65000"], [], [], ["65200"], []]
    below = Alerts([parse_rule("BTC-USD < 60000")], V)
    assert ticks(below, Store(), ["61000", "59999.5", "59000", "60001", "60000"]) == [
        [],
        ["59999.5"],
        [],
        [],
        ["60000"],
    ]


def test_the_first_price_never_fires_a_crossing() -> None:
    engine = Alerts([parse_rule("BTC-USD > 65000")], V)
    assert ticks(engine, Store(), ["66000", "67000"]) == [[], []]  # already above: no crossing seen


def test_trades_count_as_prices_and_other_products_do_not() -> None:
    store = Store()
    engine = Alerts([parse_rule("coinbase:BTC-USD > 100")], V)
    first = [
        Trade(V, 1.0, "BTC-USD", None, "1", "99", "1", "buy"),
        Trade(V, 1.0, "ETH-USD", None, "2", "500", "1", "buy"),
    ]
    assert engine.check(first, store, 1.0) == []
    fired = engine.check([Trade(V, 2.0, "BTC-USD", None, "3", "101", "1", "sell")], store, 2.0)
    assert [(a.venue, a.product, a.rule, a.value, a.recv_ts) for a in fired] == [
        (V, "BTC-USD", "coinbase:BTC-USD > 100", "101", 2.0)
    ]
    assert Alerts([parse_rule("bitzoom:BTC-USD > 100")], V).check(first, store, 1.0) == []  # another venue's


def test_a_move_within_a_window() -> None:
    store = Store()
    engine = Alerts([parse_rule("ETH-USD move 1% 5m")], V)
    out = []
    for t, price in [(0, "3000"), (60, "3010"), (120, "3030"), (180, "3031"), (600, "3032"), (660, "3000")]:
        ev = Ticker(V, float(t), "ETH-USD", None, price=price)
        out.append([a.value for a in engine.check([ev], store, float(t))])
    # 3000 -> 3030 is 1.00%: fires; still moved at 180 (no repeat); by 600 the window forgot 3000: re-armed;
    # 3032 -> 3000 within 60 s is 1.07%: fires again
    assert out == [[], [], ["1.00%"], [], [], ["1.07%"]]


def test_a_move_is_seen_however_many_prices_the_window_holds() -> None:
    """A busy product sends a price every few milliseconds: an hour holds hundreds of thousands. The low
    at the window's start still counts (a window cut to its last 10,000 prices once forgot it and missed
    this move), and the window's memory stays a thousand slices."""
    store = Store()
    rule = parse_rule("ETH-USD move 1% 1h")
    engine = Alerts([rule], V)
    fired = engine.check([Ticker(V, 0.0, "ETH-USD", None, price="3000")], store, 0.0)
    for i in range(1, 40_001):
        fired += engine.check([Ticker(V, 0.0, "ETH-USD", None, price="3010")], store, i * 0.025)
    fired += engine.check([Ticker(V, 0.0, "ETH-USD", None, price="3031")], store, 1001.0)
    assert [a.value for a in fired] == ["1.03%"]
    assert rule.window is not None and len(rule.window.slices) <= Extremes.SLICES + 1


@settings(max_examples=500)
@given(
    st.lists(st.tuples(st.floats(0, 5), st.integers(1, 50)), min_size=1, max_size=60),  # (time step, price)
    st.sampled_from([0.0, 0.5, 3.0, 10.0, 60.0]),
)
def test_the_windows_low_and_high_are_those_of_the_window(
    steps: list[tuple[float, int]], seconds: float
) -> None:
    """Against every price kept: the low and high reported lie between those of the exact window
    ``[now - seconds, now]`` and those of the window one slice longer (what slicing may add)."""
    window = Extremes(seconds)
    seen: list[tuple[float, Decimal]] = []
    now = 0.0
    for step, value in steps:
        now += step
        price = Decimal(value)
        seen.append((now, price))
        low, high = window.add(now, price)
        exact = [p for t, p in seen if t >= now - seconds]
        wider = [p for t, p in seen if t >= now - seconds - window.width * 1.001]  # rounding's ulps
        assert min(wider) <= low <= min(exact) and max(exact) <= high <= max(wider)
    assert len(window.slices) <= Extremes.SLICES + 1


def test_a_wide_spread_on_a_trusted_book_only() -> None:
    store = Store()
    engine = Alerts([parse_rule("BTC-USD spread > 5")], V)
    store.apply(BookSnapshot(V, 1.0, "BTC-USD", None, [("100", "1")], [("104", "1")]))
    assert engine.check([], store, 1.0) == []
    store.apply(BookSnapshot(V, 2.0, "BTC-USD", None, [("100", "1")], [("106", "1")]))
    assert [a.value for a in engine.check([], store, 2.0)] == ["6"]
    assert engine.check([], store, 3.0) == []  # still wide: once
    store.apply(BookUnsafe(V, 4.0, V, "BTC-USD", "sequence gap"))
    assert engine.check([], store, 4.0) == []  # an untrusted book says nothing


def test_health_rules_on_the_clock() -> None:
    store = Store()
    store.apply(Connecting(V, 0.0, V, "ws://x", 1))
    store.apply(Connected(V, 0.1, V, "ws://x"))
    store.apply(BookSnapshot(V, 0.2, "BTC-USD", None, [("100", "1")], [("101", "1")]))
    engine = Alerts(
        [parse_rule(r) for r in ("BTC-USD unsafe > 10s", "BTC-USD quiet 30s", "reconnects > 1 in 10m")], V
    )
    assert engine.tick(store, 1.0) == []
    store.apply(BookUnsafe(V, 2.0, V, "BTC-USD", "sequence gap"))
    assert engine.tick(store, 2.0) == []
    assert engine.tick(store, 11.0) == []  # 9 s
    assert [a.rule for a in engine.tick(store, 12.5)] == ["BTC-USD unsafe > 10s"]
    assert engine.tick(store, 20.0) == []  # once
    store.apply(Trade(V, 20.0, "BTC-USD", None, "1", "100", "1", "buy"))
    fired = engine.tick(store, 51.0)
    assert [(a.rule, a.value) for a in fired] == [("BTC-USD quiet 30s", "31s")]
    for n in (1, 2):
        store.apply(Closed(V, 52.0, V, 1011, "server error"))
        store.apply(RetryScheduled(V, 52.0, V, n, 0.1, "server error"))
    assert [(a.rule, a.value) for a in engine.tick(store, 53.0)] == [("reconnects > 1 in 10m", "2")]
    assert engine.tick(store, 700.0) == []  # the window moved on: re-armed, nothing new


def test_gave_up_fires_with_the_reason() -> None:
    engine = Alerts([parse_rule("gave up")], V)
    fired = engine.check([GaveUp(V, 5.0, V, "10 connection attempts failed in a row")], Store(), 5.0)
    assert [(a.rule, a.value) for a in fired] == [("gave up", "10 connection attempts failed in a row")]


@pytest.mark.parametrize("text", ["BTC-USD >> 1", "BTC-USD move 1 5m", "spread > 1", "latency > fast", ""])
def test_a_bad_rule_names_the_forms(text: str) -> None:
    with pytest.raises(ConfigError, match="rules look like"):
        parse_rule(text)


def test_rules_add_up_from_the_file_the_environment_and_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('alerts = ["BTC-USD > 65000"]\n')
    effective = resolve({"alerts": ["ETH-USD < 3000"]}, {}, {"TICKERTERM_ALERTS": "gave up"}, load(str(path)))
    assert effective.values["alerts"] == ["BTC-USD > 65000", "gave up", "ETH-USD < 3000"]
    path.write_text('alerts = ["BTC-USD >> 1"]\n')
    with pytest.raises(ConfigError, match=r"c\.toml:1: alerts must be"):
        load(str(path))
    assert resolve({}, {}, {}, Config("none")).values["alerts"] == []


def test_headless_alert_lines_from_a_live_simulator() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tickerterm", "--sim", "--headless", "--products", "BTC-USD",
         "--duration", "4", "--alert", "BTC-USD spread > 0", "--alert", "BTC-USD move 0% 1m"],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    alerts = [json.loads(line) for line in out.stdout.splitlines() if '"type":"alert"' in line]
    rules = sorted(a["rule"] for a in alerts)
    assert rules == ["BTC-USD move 0% 1m", "BTC-USD spread > 0"]  # each once: they stay true, never re-arm
    for a in alerts:
        assert a["venue"] == "coinbase" and a["product"] == "BTC-USD" and a["value"] and a["recv_ts"]


def test_a_bad_alert_on_the_command_line_is_one_line_and_exit_2() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tickerterm", "--sim", "--alert", "BTC-USD >> 1"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "rules look like" in out.stderr


async def test_the_dashboard_says_an_alert_with_a_toast_the_bell_and_in_the_health_panel() -> None:
    app = static_app()
    rung: list[int] = []
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        app.bell = lambda: rung.append(1)  # type: ignore[method-assign]
        await pilot.pause(0.1)
        app.store.apply(Alert(V, NOW, "BTC-USD", "BTC-USD > 65000", "65000.5"))
        app.render_tick()
        await until(pilot, lambda: any("BTC-USD > 65000" in str(n.message) for n in app._notifications))
        assert rung == [1]
        health = app.query_one(HealthPanel)
        await until(
            pilot, lambda: "alerts 1" in health.plain() and "BTC-USD > 65000 (65000.5)" in health.plain()
        )
    quiet = static_app(bell=False)
    async with quiet.run_test(size=(120, 40)) as pilot:
        rung.clear()
        quiet.bell = lambda: rung.append(1)  # type: ignore[method-assign]
        quiet.store.apply(Alert(V, NOW, "BTC-USD", "BTC-USD > 65000", "65000.5"))
        quiet.render_tick()
        await pilot.pause(0.1)
        assert rung == []


async def _run_with_command(
    command: str, timeout: float = 10.0, seconds: float = 2.0
) -> tuple[list[Any], list[float]]:
    """A simulator feed with one rule that fires once, ``command`` run for it; the alert events seen
    and when each trade arrived."""
    from tickerterm.api import open_feed

    seen: list[Any] = []
    trades: list[float] = []

    def sink(events: list[Any]) -> None:
        for ev in events:
            if isinstance(ev, Alert):
                seen.append(ev)
            elif isinstance(ev, Trade):
                trades.append(ev.recv_ts)

    async with open_feed(
        "coinbase", ["BTC-USD"], ["level2", "market_trades"], sim=True, sim_options={"rate": 400.0},
        sink=sink, alerts=["BTC-USD spread > 0"], alert_exec=command, alert_exec_timeout=timeout,
    ):  # fmt: skip
        import asyncio

        await asyncio.sleep(seconds)
    return seen, trades


async def test_alert_exec_gets_the_alert_as_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    seen, _ = await _run_with_command(f"cat > {out}")
    assert [a.rule for a in seen] == ["BTC-USD spread > 0"]
    got = json.loads(out.read_text())
    assert (got["type"], got["rule"], got["product"], got["venue"]) == (
        "alert",
        "BTC-USD spread > 0",
        "BTC-USD",
        "coinbase",
    )


async def test_a_failing_alert_command_is_said_as_an_alert() -> None:
    seen, _ = await _run_with_command("echo 'no such hook' >&2; exit 3")
    failures = [a for a in seen if a.rule == "alert command"]
    assert [a.value for a in failures] == ["exit 3: no such hook (for BTC-USD spread > 0)"]


async def test_a_slow_alert_command_never_holds_the_feed_and_is_killed() -> None:
    seen, trades = await _run_with_command("sleep 30", timeout=1.0, seconds=3.0)
    fired = next(a for a in seen if a.rule == "BTC-USD spread > 0")
    killed = next(a for a in seen if a.rule == "alert command")
    assert killed.value == "killed after 1s (for BTC-USD spread > 0)"
    assert killed.recv_ts - fired.recv_ts >= 1.0
    assert sum(fired.recv_ts < t < killed.recv_ts for t in trades) >= 3  # trades kept coming meanwhile


async def test_a_in_the_dashboard_adds_a_rule_that_fires() -> None:
    from textual.widgets import Input

    from tickerterm.stream.feed import Feed
    from tickerterm.ui.screens import AlertForm
    from tickerterm.venues.coinbase import CoinbaseAdvancedTrade

    from .conftest import fast_policy, make_sim
    from .ui_support import CHANNELS

    async with make_sim() as sim:
        feeds: list[Feed] = []

        def opener(store: Store) -> Feed:
            adapter = CoinbaseAdvancedTrade(urls={"market": sim.url, "user": sim.url})
            feed = Feed(adapter, ["BTC-USD"], list(CHANNELS.values()), policy=fast_policy(), collect=False,
                        store=store, alerts=Alerts([], "coinbase"))  # fmt: skip
            feeds.append(feed)
            return feed

        from tickerterm.ui.app import TickertermApp

        app = TickertermApp(opener, venue="coinbase", products=["BTC-USD"], channels=CHANNELS, simulated=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.store.book("coinbase", "BTC-USD").state == "ok")
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, AlertForm))
            box = app.screen.query_one(Input)
            assert box.value == "BTC-USD > "
            box.value = "BTC-USD >> 1"
            await pilot.press("enter")
            await until(
                pilot, lambda: "rules look like" in str(app.screen.query_one("#alert-error").render())
            )
            assert isinstance(app.screen, AlertForm)  # still open: nothing was added
            box.value = "BTC-USD spread > 0"
            await pilot.press("enter")
            await until(pilot, lambda: not isinstance(app.screen, AlertForm))
            assert feeds[0].alert_rules()[0][0] == "BTC-USD spread > 0"
            await until(pilot, lambda: any(a.rule == "BTC-USD spread > 0" for a in app.store.alerts))
            assert feeds[0].alert_rules() == [("BTC-USD spread > 0", False)]  # fired
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, AlertForm))
            assert "fired  BTC-USD spread > 0" in str(app.screen.query_one("#alert-rules").render())


def test_desktop_notifications_only_where_the_terminal_has_them_and_inert() -> None:
    from tickerterm.ui.notify import desktop_notification

    hostile = "gave up (\x1b]0;pwned\x07; \x9b31m)"
    osc9 = desktop_notification("tickerterm alert", hostile, {"TERM_PROGRAM": "WezTerm"})
    assert osc9 is not None and osc9.startswith("\x1b]9;tickerterm alert: ") and osc9.endswith("\x07")
    inner = osc9[len("\x1b]9;") : -1]
    assert inner.isprintable() and ";" not in inner  # nothing can end it early or start another
    osc777 = desktop_notification("t", "x", {"TERM": "foot"})
    assert osc777 == "\x1b]777;notify;t;x\x07"
    assert desktop_notification("t", "x", {"TERM": "xterm-256color"}) is None
    assert (
        desktop_notification("t", "x", {"TERM_PROGRAM": "iTerm.app", "TMUX": "/tmp/tmux-0/default"}) is None
    )


async def test_the_dashboard_asks_for_a_desktop_notification_when_configured(monkeypatch: Any) -> None:
    monkeypatch.setenv("TERM_PROGRAM", "WezTerm")
    monkeypatch.delenv("TMUX", raising=False)
    app = static_app(notify=True)
    async with app.run_test(size=(120, 40)) as pilot:
        written: list[str] = []
        assert app._driver is not None
        monkeypatch.setattr(app._driver, "write", written.append)
        app.store.apply(Alert(V, NOW, "BTC-USD", "BTC-USD > 65000", "65000.5"))
        app.render_tick()
        await pilot.pause(0.05)
        assert [w for w in written if w.startswith("\x1b]9;")] == [
            "\x1b]9;tickerterm alert: BTC-USD > 65000 (65000.5)\x07"
        ]


def test_two_reconnect_rules_each_count_every_reconnect_once() -> None:
    store = Store()
    store.apply(Connecting(V, 0.0, V, "ws://x", 1))
    store.apply(Connected(V, 0.1, V, "ws://x"))
    engine = Alerts([parse_rule("reconnects > 2 in 10m"), parse_rule("reconnects > 1 in 1h")], V)
    assert engine.tick(store, 1.0) == []
    for n in (1, 2):
        store.apply(Closed(V, 2.0, V, 1011, "server error"))
        store.apply(RetryScheduled(V, 2.0, V, n, 0.1, "server error"))
    # two reconnects: the 1h rule (> 1) fires, the 10m rule (> 2) does not (a shared window counted 4)
    assert [(a.rule, a.value) for a in engine.tick(store, 3.0)] == [("reconnects > 1 in 1h", "2")]
