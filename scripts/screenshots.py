"""Regenerate screenshots/: the real dashboard drawing seeded scenes (the simulator's market with a seed,
a frozen clock), the same scenes the snapshot tests draw, so the README's pictures are what the app
draws today. ``tests/test_screenshots.py`` regenerates them and fails when they differ from these files.

    .venv/bin/python scripts/screenshots.py [OUT_DIR]        (or: bash scripts/screenshots)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ui_support import several_app, static_app  # noqa: E402  (the seeded scenes live beside the tests)

SCENES: list[tuple[str, dict[str, Any], tuple[int, int], tuple[str, ...]]] = [
    ("dashboard-120x40", {}, (120, 40), ()),
    ("dashboard-80x24", {}, (80, 24), ()),
    ("unsafe-book-120x40", {"state": "unsafe"}, (120, 40), ()),
    ("health-after-faults-80x24", {"state": "reconnecting"}, (80, 24), ("5",)),
    ("bitzoom-120x40", {"venue": "bitzoom"}, (120, 40), ()),
    ("0xarchive-replay-120x40", {"venue": "0xarchive", "state": "replay"}, (120, 40), ()),
    ("several-venues-120x40", {"several": "bitzoom"}, (120, 40), ("v",)),
]


async def shoot(
    name: str, options: dict[str, Any], size: tuple[int, int], keys: tuple[str, ...], out: Path
) -> Path:
    app = several_app(unsafe=options["several"]) if "several" in options else static_app(**options)
    async with app.run_test(size=size) as pilot:
        await app.feed_ready.wait()
        await pilot.pause()
        if keys:
            await pilot.press(*keys)
        app.render_tick(force=True)
        while any(p.drawing for p in app.panels):  # the chart is drawn in its own thread
            await pilot.pause(0.02)
        await pilot.pause()
        await pilot.pause()
        path = out / f"{name}.svg"
        path.write_text(app.export_screenshot(title="tickerterm"))
    return path


async def main(out: Path) -> None:
    """Every scene into ``out`` (which must exist)."""
    for name, options, size, keys in SCENES:
        path = await shoot(name, options, size, keys, out)
        print(path)


if __name__ == "__main__":
    import os
    import time

    os.environ["TZ"] = "UTC"  # the clock on the tape and the chart's axis
    time.tzset()
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(target))
