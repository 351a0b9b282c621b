"""The headless layers never import textual or plotext (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys


def test_headless_layers_import_without_textual() -> None:
    code = (
        "import sys\n"
        "import tickerterm, tickerterm.core.store, tickerterm.venues, tickerterm.stream\n"
        "import tickerterm.sim, tickerterm.api, tickerterm.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'plotext', 'rich'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_core_and_venues_do_not_import_websockets() -> None:
    code = (
        "import sys\n"
        "import tickerterm.core.store, tickerterm.core.ndjson, tickerterm.venues.coinbase\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('websockets', 'textual', 'plotext'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
