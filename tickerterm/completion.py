"""Shell completion from the argparse definition: bash and zsh by shtab, fish written here from the
same parser (shtab has no fish). ``tickerterm completion bash|zsh|fish`` prints the script."""

from __future__ import annotations

import argparse

SUBCOMMANDS = {
    "sim": "run a standalone simulator",
    "replay": "replay a recording",
    "config": "the settings in effect (--init writes a starting file)",
    "completion": "a shell completion script",
}


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    if shell == "fish":
        return _fish(parser)
    import shtab

    text: str = shtab.complete(parser, shell=shell)
    return text


def _fish(parser: argparse.ArgumentParser) -> str:
    prog = parser.prog
    lines = [
        f"# fish completion for {prog} (tickerterm completion fish > ~/.config/fish/completions/{prog}.fish)"
    ]
    lines.append(f"complete -c {prog} -f")
    for name, text in SUBCOMMANDS.items():
        lines.append(f"complete -c {prog} -n __fish_use_subcommand -a {name} -d {_quote(text)}")
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        longs = [o[2:] for o in action.option_strings if o.startswith("--")]
        shorts = [o[1:] for o in action.option_strings if o.startswith("-") and not o.startswith("--")]
        if not longs and not shorts:
            continue
        parts = [f"complete -c {prog}"]
        parts += [f"-l {name}" for name in longs]
        parts += [f"-s {name}" for name in shorts]
        if action.nargs != 0:
            parts.append("-r")
            if action.choices:
                parts.append("-a " + _quote(" ".join(str(c) for c in action.choices)))
            elif action.metavar in ("PATH", "FILE"):
                parts[-1] = "-r -F"
        if action.help:
            parts.append("-d " + _quote(action.help.split("(")[0].strip()[:60]))
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
