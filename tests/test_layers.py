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
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'nats')\n"  # nats-py: 70 ms, relays only
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


KEY_TYPES = {"ApiToken", "CdpKey", "ExchangeKey", "Secret"}
"""What a simulator may take from the client besides wire constants: the types its test account's
credentials are handed to the client in (``client_credentials``)."""


def test_simulators_take_nothing_from_the_client_but_wire_constants_and_key_types() -> None:
    """A client bug mirrored by its own simulator could never be caught by a test: a simulator imports
    no parsing, symbol or verification function of the client (UPPER_CASE constants and key types only)."""
    import ast
    from pathlib import Path

    sim = Path(__file__).resolve().parent.parent / "tickerterm" / "sim"
    taken: list[str] = []
    for path in sorted(sim.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tickerterm.venues"):
                taken += [
                    f"{path.name}: {node.module}.{alias.name}"
                    for alias in node.names
                    if not (alias.name.isupper() or alias.name in KEY_TYPES)
                ]
            elif isinstance(node, ast.Import):
                taken += [
                    f"{path.name}: {a.name}" for a in node.names if a.name.startswith("tickerterm.venues")
                ]
    assert not taken, taken
