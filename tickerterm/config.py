"""Settings from a config file and the environment, beside the command line.

``$XDG_CONFIG_HOME/tickerterm/config.toml`` (the platform's config directory where XDG is not set, or
``--config PATH`` / ``TICKERTERM_CONFIG``). Its keys are named like the long options (``venue``,
``products``, ``channels``, ``fps``, ``theme``...; ``log-file`` or ``log_file``), plus tables:
``[watchlists]`` (named product lists, ``w`` switches between them), ``[keys]`` (an action's binding id
to the keys that run it) and ``[recording]`` (``max``). Precedence: command line > environment
(``TICKERTERM_VENUE``, ``TICKERTERM_PRODUCTS``...) > file > defaults. A bad file or variable is one line
naming the file, the line and the key.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tickerterm.core.errors import ConfigError

ENV_PREFIX = "TICKERTERM_"
PALETTES = ("standard", "colorblind")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a non-empty string")
    return value.strip()


def _names(value: Any) -> list[str]:
    """A list of names, or one comma-separated string (as on the command line)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError('a list of names such as ["BTC-USD", "ETH-USD"]')
    return [v.strip() for v in value]


def _positive(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError("a number above 0")
    return number


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("a finite number")
    return number


def _retries(value: Any) -> int:
    number = _number(value)
    if number != int(number) or number < -1:
        raise ValueError("a whole number, -1 or more")
    return int(number)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("true or false")


def _rules(value: Any) -> list[str]:
    """Alert rules: a list of rule texts (or one, or several separated by ``;``), each checked."""
    from tickerterm.core.alerts import parse_rule

    if isinstance(value, str):
        value = [part for part in value.split(";") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError('a list of rules such as ["BTC-USD > 65000", "ETH-USD move 1% 5m"]')
    for text in value:
        try:
            parse_rule(text)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    return [" ".join(v.split()) for v in value]


def _venues(value: Any) -> str:
    """One venue, or several: a list or one comma-separated string (as on the command line)."""
    return ",".join(_names(value))


def _quotes(value: Any) -> list[str]:
    """Quotes counted as others in the consolidated book: ``["USDT=USD"]`` (or ``"USDT=USD,USDC=USD"``)."""
    from tickerterm.core.consolidated import parse_same_quote

    texts = _names(value)
    try:
        parse_same_quote(texts)
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix("--same-quote: ")) from None
    return texts


def _palette(value: Any) -> str:
    text = _text(value).lower().replace("-", "")
    if text not in PALETTES:
        raise ValueError(f"one of: {', '.join(PALETTES)}")
    return text


def _limits(value: Any) -> tuple[int, float]:
    from tickerterm.record.sqlite import parse_limits

    return parse_limits(_text(value))


@dataclass(frozen=True, slots=True)
class Setting:
    parse: Callable[[Any], Any]
    help: str


SETTINGS: dict[str, Setting] = {
    "venue": Setting(
        _venues, "the venue, or several (coinbase, coinbase-exchange, coinapi, bitzoom, 0xarchive)"
    ),
    "products": Setting(_names, "products to show (venue:PRODUCT for one venue of several)"),
    "watchlist": Setting(_text, "the watchlist to start with (a name from [watchlists])"),
    "channels": Setting(_names, "venue channels to subscribe"),
    "fps": Setting(_positive, "dashboard redraws per second"),
    "theme": Setting(_text, "a Textual theme: textual-dark, textual-light, nord, gruvbox, dracula..."),
    "palette": Setting(_palette, "up/down colours: standard (green/red) or colorblind (blue/orange)"),
    "light": Setting(_flag, "light theme"),
    "ansi": Setting(_flag, "the terminal's own 16-colour palette"),
    "low_bandwidth": Setting(_flag, "for slow links: terminal colours, slower ladder, tape and chart"),
    "show_rate": Setting(_flag, "the bytes a second written to the terminal, in the header"),
    "retries": Setting(_retries, "reconnect attempts before giving up (-1: never)"),
    "log_file": Setting(_text, "where log lines go"),
    "record_max": Setting(_limits, "recording limit: 500M, 2G, 6h or 2G,6h"),
    "alerts": Setting(_rules, "alert rules (every source adds its own): BTC-USD > 65000, ..."),
    "notify": Setting(_flag, "a desktop notification per alert, where the terminal has them (OSC 9/777)"),
    "bell": Setting(_flag, "ring the terminal bell when an alert fires"),
    "alert_exec": Setting(_text, "a command run for each alert, the alert as JSON on its stdin"),
    "same_quote": Setting(_quotes, "quotes counted as one in the consolidated book: USDT=USD, ..."),
}
"""Top-level keys, named like the long options (dashes or underscores)."""
TABLES = ("watchlists", "keys", "recording")
DEFAULTS: dict[str, Any] = {"palette": "standard", "alerts": [], "bell": True}
"""Defaults of the settings that have no command-line option."""

STARTER = """\
# tickerterm settings. Keys are named like the long options; the command line and the environment
# (TICKERTERM_VENUE, TICKERTERM_PRODUCTS, ...) override them. `tickerterm config` shows what is in
# effect and where each value came from.

# venue = "coinbase"            # coinbase, coinbase-exchange, coinapi, bitzoom, 0xarchive
# products = ["BTC-USD", "ETH-USD"]
# channels = ["ticker", "level2", "market_trades", "candles"]
# fps = 10                      # dashboard redraws per second
# theme = "textual-dark"        # any Textual theme (ctrl+p > Theme to try them; the last one is remembered)
# palette = "colorblind"        # up/down in blue/orange instead of green/red
# retries = 10                  # reconnect attempts before giving up (-1: never)
# log-file = "~/tickerterm.log"

# Several venues on one screen share it with the consolidated book (best bid/ask across venues):
#   venue "coinbase,bitzoom" with products "coinbase:BTC-USD,bitzoom:BTC-USDT" (lists work too)
# same-quote = ["USDT=USD"]     # several venues: BTC-USDT counts with BTC-USD (never guessed)

# Named product lists: `w` in the dashboard switches to the next one; `watchlist` picks the first.
# watchlist = "majors"
# [watchlists]
# majors = ["BTC-USD", "ETH-USD"]
# alts = ["SOL-USD", "DOGE-USD"]

# Keys: an action's id (see `?` in the dashboard, or the README) to the keys that run it.
# [keys]
# "product.next" = "j,n"
# "product.previous" = "k,p"

# [recording]
# max = "2G,6h"                 # --record-max
"""


@dataclass(slots=True)
class Config:
    """What a config file holds, checked; ``lines`` says where each key was (for messages)."""

    path: str
    found: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    watchlists: dict[str, list[str]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def where(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.path}:{line}" if line else self.path


def default_path(env: Mapping[str, str] | None = None) -> str:
    """``$TICKERTERM_CONFIG``, else ``$XDG_CONFIG_HOME/tickerterm/config.toml``, else the platform's
    user config directory (``~/.config`` on Linux, ``~/Library/Application Support`` on macOS)."""
    env = os.environ if env is None else env
    if env.get(f"{ENV_PREFIX}CONFIG"):
        return os.path.expanduser(env[f"{ENV_PREFIX}CONFIG"])
    if env.get("XDG_CONFIG_HOME"):
        return os.path.join(env["XDG_CONFIG_HOME"], "tickerterm", "config.toml")
    import platformdirs

    return os.path.join(platformdirs.user_config_dir("tickerterm", appauthor=False), "config.toml")


def load(path: str, *, required: bool = False) -> Config:
    """The file at ``path`` checked (ConfigError naming the file, line and key); an absent file is an
    empty config unless ``required``."""
    config = Config(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such file") from None
        return config
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    config.found = True
    text = raw.decode("utf-8", "replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config.lines = _key_lines(text)
    for key, value in data.items():
        name = key.replace("-", "_")
        if name in SETTINGS:
            config.values[name] = _checked(config, name, key, value)
        elif name == "watchlists":
            config.watchlists = _watchlists(config, value)
        elif name == "keys":
            config.keys = _keys(config, value)
        elif name == "recording":
            _recording(config, value)
        else:
            known = ", ".join([*(k.replace("_", "-") for k in SETTINGS), *(f"[{t}]" for t in TABLES)])
            raise ConfigError(f"{config.where(key)}: unknown key {key!r} (known: {known})")
    chosen = config.values.get("watchlist")
    if chosen is not None and chosen not in config.watchlists:
        raise ConfigError(
            f"{config.where('watchlist')}: watchlist {chosen!r} is not in [watchlists] "
            f"({', '.join(config.watchlists) or 'none defined'})"
        )
    return config


def _checked(config: Config, name: str, key: str, value: Any, where: str | None = None) -> Any:
    try:
        return SETTINGS[name].parse(value)
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"{where or config.where(key)}: {key} must be {exc}") from None


def _watchlists(config: Config, value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{config.where('watchlists')}: [watchlists] must be a table of product lists")
    out = {}
    for name, products in value.items():
        try:
            out[name] = _names(products)
        except ValueError as exc:
            raise ConfigError(f"{config.where(name)}: watchlist {name!r} must be {exc}") from None
    return out


def _keys(config: Config, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{config.where('keys')}: [keys] must be a table of action = keys")
    out = {}
    for action, keys in value.items():
        if not isinstance(keys, str) or not keys.strip():
            raise ConfigError(f'{config.where(action)}: [keys] {action} must be keys such as "j" or "j,down"')
        out[action] = keys.strip()
    return out


def _recording(config: Config, value: Any) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{config.where('recording')}: [recording] must be a table")
    for key, item in value.items():
        if key != "max":
            raise ConfigError(f"{config.where(key)}: unknown key {key!r} in [recording] (known: max)")
        config.values["record_max"] = _checked(config, "record_max", "max", item)
        config.lines["record_max"] = config.lines.get("max", 0)


def _key_lines(text: str) -> dict[str, int]:
    """The line of each key's first assignment (tomllib keeps no positions)."""
    lines: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"""\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_.-]+))\s*=""", line) or re.match(
            r"\s*\[+\s*([A-Za-z0-9_.-]+)\s*\]+", line
        )
        if m:
            key = next(g for g in m.groups() if g)
            lines.setdefault(key, n)
            lines.setdefault(key.replace("-", "_"), n)
    return lines


def from_env(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Settings from ``TICKERTERM_*`` variables, checked (ConfigError naming the variable), and the
    variable each came from."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, setting in SETTINGS.items():
        var = f"{ENV_PREFIX}{name.upper()}"
        if var in env:
            try:
                values[name] = setting.parse(env[var])
            except (ValueError, ConfigError) as exc:
                raise ConfigError(f"{var} must be {exc}") from None
            sources[name] = f"environment {var}"
    return values, sources


@dataclass(slots=True)
class Effective:
    """The settings in effect and where each came from (``command line``, ``environment VAR``,
    ``FILE:LINE`` or ``default``)."""

    values: dict[str, Any]
    sources: dict[str, str]
    config: Config


def resolve(
    given: Mapping[str, Any], defaults: Mapping[str, Any], env: Mapping[str, str], config: Config
) -> Effective:
    """``given`` (the options on the command line) over the environment over the file over ``defaults``."""
    env_values, env_sources = from_env(env)
    values: dict[str, Any] = {**defaults}
    for name, value in DEFAULTS.items():
        if values.get(name) is None:
            values[name] = value
    sources = dict.fromkeys(values, "default")
    for name, value in config.values.items():
        values[name] = value
        sources[name] = config.where(name)
    values.update(env_values)
    sources.update(env_sources)
    for name, value in given.items():
        values[name] = value
        sources[name] = "command line"
    # alert rules add up: the file's standing rules, the environment's, the command line's
    rules: list[str] = []
    origins: list[str] = []
    for source_values, source in (
        (config.values, config.where("alerts")),
        (env_values, "environment TICKERTERM_ALERTS"),
        (given, "command line"),
    ):
        if source_values.get("alerts"):
            rules += [r for r in source_values["alerts"] if r not in rules]
            origins.append(source)
    values["alerts"] = rules
    sources["alerts"] = " + ".join(origins) or "default"
    watchlist = values.get("watchlist")
    if watchlist is not None and watchlist not in config.watchlists:
        raise ConfigError(
            f"watchlist {watchlist!r} ({sources.get('watchlist')}) is not in [watchlists] of {config.path}"
        )
    if watchlist is not None and _rank(sources["watchlist"]) > _rank(sources.get("products", "default")):
        # the watchlist was chosen somewhere more important than where the products were named
        values["products"] = list(config.watchlists[watchlist])
        sources["products"] = f"watchlist {watchlist!r} ({config.where(watchlist)})"
    return Effective(values, sources, config)


def _rank(source: str) -> int:
    if source == "command line":
        return 3
    if source.startswith("environment"):
        return 2
    return 0 if source == "default" else 1


def show(effective: Effective) -> str:
    """``tickerterm config``: the settings in effect, and where each came from."""
    config = effective.config
    out = [f"# config file: {config.path} ({'read' if config.found else 'none there'})"]
    width = max(len(name) for name in effective.values)
    for name in sorted(effective.values):
        value = effective.values[name]
        if name == "record_max":
            value = _limits_text(value)
        shown = "(the venue's)" if value is None and name in ("products", "channels") else _toml(value)
        out.append(f"{name.replace('_', '-'):<{width}} = {shown:<28} # {effective.sources[name]}")
    for name, products in config.watchlists.items():
        out.append(f"[watchlists] {name} = {_toml(products)}")
    for action, keys in config.keys.items():
        out.append(f"[keys] {action} = {_toml(keys)}")
    return "\n".join(out)


def _limits_text(value: Any) -> str:
    size, age = value
    parts = [f"{size / 2**30:g}G" if size % 2**30 == 0 else f"{size / 2**20:g}M"]
    if age:
        parts.append(f"{age / 3600:g}h" if age % 3600 == 0 else f"{age / 60:g}m")
    return ",".join(parts)


def _toml(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def state_path(env: Mapping[str, str] | None = None) -> str:
    """Where the dashboard keeps what it remembers (the last theme chosen): the user's state directory."""
    env = os.environ if env is None else env
    state = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "tickerterm", "state.json")


def remembered(key: str, env: Mapping[str, str] | None = None) -> Any:
    try:
        with open(state_path(env), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data.get(key) if isinstance(data, dict) else None


def remember(key: str, value: Any, env: Mapping[str, str] | None = None) -> None:
    """Keep ``value`` for next time (a state file that cannot be written is no reason to fail)."""
    path = state_path(env)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[key] = value
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f)
    except OSError:
        pass


def write_starter(path: str, *, force: bool = False) -> str:
    """``tickerterm config --init``: a commented starting file at ``path`` (never over an existing one
    unless ``force``)."""
    if os.path.exists(path) and not force:
        raise ConfigError(f"{path} exists (--force replaces it)")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(STARTER)
    return path
