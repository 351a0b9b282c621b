"""The config file and the conventions people expect (issue 17): precedence command line > environment >
file > defaults with where each value came from, a bad file as one line naming file, line and key,
``config --init``, key remapping, watchlists switched with ``w`` (the frames the venue receives), the
colour-blind palette, a remembered theme, shell completion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.style import Style

from tickerterm.config import Config, load, remember, remembered, resolve, write_starter
from tickerterm.core.errors import ConfigError
from tickerterm.ui.app import TickertermApp
from tickerterm.ui.widgets import DepthLadder, TradeTape

from .conftest import make_sim
from .ui_support import live_app, static_app, until

CMD = [sys.executable, "-m", "tickerterm"]


def run(
    args: list[str], env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CMD, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}, **kwargs
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_precedence_command_line_over_environment_over_file_over_defaults(tmp_path: Path) -> None:
    config = load(
        str(write(tmp_path / "c.toml", 'venue = "bitzoom"\nfps = 20\nretries = 4\npalette = "colorblind"\n'))
    )
    env = {"TICKERTERM_FPS": "30", "TICKERTERM_RETRIES": "7"}
    effective = resolve({"retries": 9}, {"venue": "coinbase", "fps": 10.0, "retries": 10}, env, config)
    assert effective.values["venue"] == "bitzoom" and effective.sources["venue"] == f"{tmp_path}/c.toml:1"
    assert effective.values["fps"] == 30.0 and effective.sources["fps"] == "environment TICKERTERM_FPS"
    assert effective.values["retries"] == 9 and effective.sources["retries"] == "command line"
    assert effective.values["palette"] == "colorblind"
    nothing = resolve({}, {"venue": "coinbase"}, {}, Config("none"))
    assert nothing.values["venue"] == "coinbase" and nothing.sources["venue"] == "default"


def test_tickerterm_config_prints_each_value_and_where_it_came_from(tmp_path: Path) -> None:
    write(tmp_path / "tickerterm" / "config.toml", 'products = ["SOL-USD"]\nfps = 20\n')
    out = run(["config", "--retries", "3"], {"XDG_CONFIG_HOME": str(tmp_path), "TICKERTERM_FPS": "25"})
    assert out.returncode == 0, out.stderr
    lines = {line.split("=")[0].strip(): line for line in out.stdout.splitlines() if "=" in line}
    assert f"{tmp_path}/tickerterm/config.toml (read)" in out.stdout
    assert '["SOL-USD"]' in lines["products"] and "config.toml:1" in lines["products"]
    assert "25.0" in lines["fps"] and "environment TICKERTERM_FPS" in lines["fps"]
    assert "3" in lines["retries"] and "command line" in lines["retries"]
    assert "default" in lines["venue"]


def test_a_top_level_products_key_in_the_file_is_what_the_feed_subscribes(tmp_path: Path) -> None:
    write(tmp_path / "tickerterm" / "config.toml", 'products = ["SOL-USD"]\n')
    out = run(["--sim", "--headless", "--max-events", "40"], {"XDG_CONFIG_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    products = {
        line.split('"product":"')[1].split('"')[0]
        for line in out.stdout.splitlines()
        if '"product":"' in line
    }
    assert products == {"SOL-USD"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('fps = "fast"\n', "c.toml:1: fps must be a number"),
        ('venue = "coinbase"\nproduct = ["X"]\n', "c.toml:2: unknown key 'product'"),
        ("fps = [\n", "c.toml: "),
        ('products = ["NOPE-USD"]\n', "(products from"),
        (
            '[watchlists]\nmine = ["BTC-USD", "NOPE-USD"]\n',
            "c.toml:2: watchlist 'mine': unknown product 'NOPE-USD'",
        ),
        ('watchlist = "gone"\n', "c.toml:1: watchlist 'gone' is not in [watchlists]"),
        ('[keys]\n"no.such" = "j"\n', "c.toml:2: [keys] has no action 'no.such'"),
        ('theme = "no-such-theme"\n', "theme 'no-such-theme' ("),
        ('[recording]\nmax = "lots"\n', "c.toml:2: max must be"),
    ],
)
def test_a_bad_file_is_one_line_naming_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "c.toml", text)
    out = run(["--config", str(path), "--sim"])
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert expected in out.stderr, out.stderr


def test_a_bad_environment_variable_names_the_variable() -> None:
    out = run(["--sim"], {"TICKERTERM_FPS": "-1"})
    assert (
        out.returncode == 2 and out.stderr == "tickerterm: error: TICKERTERM_FPS must be a number above 0\n"
    )


def test_config_init_writes_a_commented_file_that_loads_and_is_never_overwritten(tmp_path: Path) -> None:
    out = run(["config", "--init"], {"XDG_CONFIG_HOME": str(tmp_path)})
    path = tmp_path / "tickerterm" / "config.toml"
    assert out.returncode == 0 and path.exists() and str(path) in out.stdout
    assert load(str(path)).values == {}  # everything in it is a comment to uncomment
    text = path.read_text()
    for key in ("venue", "products", "fps", "theme", "palette", "[watchlists]", "[keys]"):
        assert key in text
    uncommented = "\n".join(
        line.removeprefix("# ") for line in text.splitlines() if "=" in line or "[" in line
    )
    assert load(str(write(tmp_path / "all.toml", uncommented))).watchlists  # its examples are valid
    again = run(["config", "--init"], {"XDG_CONFIG_HOME": str(tmp_path)})
    assert again.returncode == 2 and "exists" in again.stderr
    with pytest.raises(ConfigError):
        write_starter(str(path))


async def test_keys_from_the_file_rebind_an_action() -> None:
    app = static_app(keys={"product.next": "j"})
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("j")
        assert app.view.selected == 1
        await pilot.press("n")  # rebound: n no longer does it
        assert app.view.selected == 1


async def test_w_switches_watchlist_and_the_venue_receives_the_frames() -> None:
    async with make_sim() as sim:
        app = live_app(
            sim, ["BTC-USD", "ETH-USD"], watchlists={"majors": ["BTC-USD", "ETH-USD"], "alts": ["SOL-USD"]}
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.store.book("coinbase", "BTC-USD").state == "ok")
            conn = sim.all_connections[-1]
            seen = len(conn.received)
            await pilot.press("w")
            await until(pilot, lambda: app.view.products == ["SOL-USD"])
            await until(pilot, lambda: any(m.get("type") == "unsubscribe" for m in conn.received[seen:]))
            frames = conn.received[seen:]
            subscribed = {p for m in frames if m.get("type") == "subscribe" for p in m["product_ids"]}
            unsubscribed = {p for m in frames if m.get("type") == "unsubscribe" for p in m["product_ids"]}
            assert subscribed == {"SOL-USD"} and unsubscribed == {"BTC-USD", "ETH-USD"}
            assert app.watchlist == "alts"
            await until(pilot, lambda: "SOL-USD" in str(app.query_one(DepthLadder).border_title))
            await pilot.press("w")
            await until(
                pilot, lambda: app.view.products == ["BTC-USD", "ETH-USD"] and app.watchlist == "majors"
            )


async def test_the_colorblind_palette_draws_bids_and_buys_in_blue() -> None:
    app = static_app(palette="colorblind")
    async with app.run_test(size=(120, 40)) as pilot:
        ladder = app.query_one(DepthLadder)
        await until(pilot, lambda: "spread" in ladder.plain())
        bid = ladder.get_component_rich_style("depth-ladder--bid", partial=True)
        buy = app.query_one(TradeTape).get_component_rich_style("trade-tape--buy", partial=True)
        for style in (bid, buy):
            assert isinstance(style, Style) and style.color is not None
            r, g, b = style.color.get_truecolor()
            assert b > r and b > g  # blue, not green
    plain = static_app()
    async with plain.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.1)
        r, g, b = (
            plain.query_one(DepthLadder).get_component_rich_style("depth-ladder--bid").color.get_truecolor()
        )  # type: ignore[union-attr]
        assert g > r and g > b  # the standard palette: green


async def test_a_theme_chosen_in_the_dashboard_is_remembered(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    kept: list[str] = []
    app = static_app(remember_theme=kept.append)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("L")
        await until(pilot, lambda: kept[-1:] == ["textual-light"])
    remember("theme", "nord", env)
    assert remembered("theme", env) == "nord"


def test_the_command_starts_with_the_remembered_theme(tmp_path: Path) -> None:
    from tickerterm.cli import _theme, feed_parser

    remember("theme", "gruvbox")  # the tests' own state directory (conftest)
    try:
        assert _theme(feed_parser().parse_args(["--sim"])) == "gruvbox"
        assert _theme(feed_parser().parse_args(["--sim", "--theme", "nord"])) == "nord"
        assert _theme(feed_parser().parse_args(["--sim", "--light"])) is None  # textual-light
        assert _theme(feed_parser().parse_args(["--sim", "--ansi"])) == "ansi-dark"
    finally:
        remember("theme", None)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_is_generated_from_the_parser(shell: str) -> None:
    out = run(["completion", shell])
    assert out.returncode == 0, out.stderr
    for option in ("--venue", "--products", "--headless", "--record", "--palette"):
        assert option.lstrip("-") in out.stdout
    if shell == "fish":
        assert "-l palette -r -a 'standard colorblind'" in out.stdout
    checker = {"bash": ["bash", "-n"], "zsh": ["zsh", "-n"], "fish": ["fish", "--no-execute"]}[shell]
    if shutil.which(checker[0]):
        check = subprocess.run([*checker], input=out.stdout, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    assert run(["completion", "tcsh"]).returncode == 2


def test_the_app_rejects_no_setting_it_was_not_given() -> None:
    """The dashboard defaults hold without any config (the tests' empty config directory)."""
    app = TickertermApp(lambda store: None, venue="coinbase", products=["BTC-USD"], channels={})  # type: ignore[arg-type, return-value]
    assert app.palette == "standard" and app.watchlists == {} and app.watchlist is None


def test_the_readme_names_every_action_id_keys_can_rebind() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [i for i in TickertermApp.binding_ids() if i != "quit.interrupt" and f"`{i}`" not in section]
    assert not missing


def test_a_replay_takes_the_users_palette_theme_and_keys(tmp_path: Path, monkeypatch: Any) -> None:
    from tickerterm.cli import _replay_settings, replay_parser

    write(tmp_path / "tickerterm" / "config.toml", 'theme = "nord"\nfps = 4\n[keys]\n"product.next" = "j"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("TICKERTERM_PALETTE", "colorblind")
    ns = replay_parser().parse_args(["rec.db"])
    _replay_settings(ns)
    assert (ns.palette, ns.theme, ns.fps) == ("colorblind", "nord", 4.0)
    assert ns.settings.config.keys == {"product.next": "j"}
    ns = replay_parser().parse_args(["rec.db", "--fps", "30"])
    _replay_settings(ns)
    assert ns.fps == 30.0  # its own option wins


def test_no_ansi_and_the_other_flags_on_the_command_line_win_over_the_file(tmp_path: Path) -> None:
    write(tmp_path / "tickerterm" / "config.toml", "ansi = true\nlow-bandwidth = true\nshow-rate = true\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    said = run(["config", "--no-ansi", "--no-low-bandwidth", "--no-show-rate"], env).stdout.splitlines()
    for name in ("ansi", "low-bandwidth", "show-rate"):
        assert any(line.startswith(name) and "false" in line and "command line" in line for line in said)
    kept = run(["config"], env).stdout.splitlines()
    assert any(line.startswith("ansi") and "true" in line and "config.toml:1" in line for line in kept)


def test_dark_on_the_command_line_wins_over_light_in_the_file(tmp_path: Path) -> None:
    write(tmp_path / "tickerterm" / "config.toml", "light = true\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    light = run(["config"], env).stdout
    dark = run(["config", "--dark"], env).stdout
    assert any(
        line.startswith("light") and "true" in line and "config.toml:1" in line for line in light.splitlines()
    )
    assert any(
        line.startswith("light") and "false" in line and "command line" in line for line in dark.splitlines()
    )
