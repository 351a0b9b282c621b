"""Desktop notifications through the terminal (``notify = true``): OSC 9 where the terminal shows it
(iTerm2, WezTerm, kitty, ghostty), OSC 777 where that is the one it knows (foot, rxvt, VTE terminals);
nothing where it knows neither, or inside tmux/screen (they would swallow or garble it). The text is made
inert first and loses the separators these sequences use, so a venue's text cannot end the sequence early
and drive the terminal."""

from __future__ import annotations

from collections.abc import Mapping

from tickerterm.core.safe import inert

_OSC9 = ("iTerm.app", "WezTerm", "ghostty")


def desktop_notification(title: str, body: str, env: Mapping[str, str]) -> str | None:
    """The escape sequence that asks this terminal for a desktop notification, or None."""
    if env.get("TMUX") or env.get("STY"):
        return None
    title = _clean(title)
    body = _clean(body)
    term, program = env.get("TERM", ""), env.get("TERM_PROGRAM", "")
    if program in _OSC9 or "kitty" in term or env.get("KITTY_WINDOW_ID"):
        return f"\x1b]9;{title}: {body}\x07"
    if term.startswith(("foot", "rxvt")) or env.get("VTE_VERSION"):
        return f"\x1b]777;notify;{title};{body}\x07"
    return None


def _clean(text: str) -> str:
    return inert(text, one_line=True).replace(";", ",")[:200]
