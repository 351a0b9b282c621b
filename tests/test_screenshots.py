"""The README's screenshots are what the app draws today: regenerated from the seeded scenes (frozen
clock, seeded market) and compared with the committed files (``bash scripts/screenshots`` updates them)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_screenshots_are_current(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "scripts" / "screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    asyncio.run(module.main(tmp_path))
    made = sorted(p.name for p in tmp_path.glob("*.svg"))
    committed = sorted(p.name for p in (ROOT / "screenshots").glob("*.svg"))
    assert made == committed
    stale = [
        name for name in made if (tmp_path / name).read_text() != (ROOT / "screenshots" / name).read_text()
    ]
    assert not stale, f"stale screenshots (bash scripts/screenshots): {stale}"
    readme = (ROOT / "README.md").read_text()
    assert all(f"screenshots/{name}" in readme for name in made)  # every one is shown
