"""SVG snapshots of the dashboard: a store filled from the seeded simulator market, a frozen clock, at
80x24 and 120x40, including an UNSAFE book and a reconnecting connection. Update with
``bash scripts/test tests/test_snapshots.py --snapshot-update`` after a deliberate change, and look at
the SVGs in tests/__snapshots__/ before committing them."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from .ui_support import static_app, until

SIZES = [(80, 24), (120, 40)]


async def settled(pilot: Pilot[None]) -> None:
    """The feed handed over and every panel drawn at the final size, before the picture is taken (the
    panels draw on a timer, and a panel of automatic height lays out again after its first draw: under
    load the picture could catch the layout in between)."""
    app = pilot.app
    await app.feed_ready.wait()  # type: ignore[attr-defined]
    await pilot.pause()
    app.render_tick(force=True)  # type: ignore[attr-defined]
    await until(pilot, lambda: not any(p.drawing for p in app.panels))  # type: ignore[attr-defined]
    await pilot.pause()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_normal(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(static_app(), terminal_size=size, run_before=settled)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_unsafe_book(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(static_app("unsafe"), terminal_size=size, run_before=settled)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_reconnecting(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(static_app("reconnecting"), terminal_size=size, press=["5"], run_before=settled)


def test_chart_view_80x24(snap_compare: Any) -> None:
    assert snap_compare(static_app(), terminal_size=(80, 24), press=["3"], run_before=settled)


def test_grouped_ladder_and_next_product_120x40(snap_compare: Any) -> None:
    assert snap_compare(static_app(), terminal_size=(120, 40), press=["n", "g", "g"], run_before=settled)


def test_help_80x24(snap_compare: Any) -> None:
    assert snap_compare(static_app(), terminal_size=(80, 24), press=["question_mark"], run_before=settled)


def test_light_theme_120x40(snap_compare: Any) -> None:
    assert snap_compare(static_app(light=True), terminal_size=(120, 40), run_before=settled)


def test_no_color_80x24(snap_compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")  # side and state still read from the text markers
    assert snap_compare(static_app("unsafe"), terminal_size=(80, 24), run_before=settled)


VENUES = ["coinbase", "coinbase-exchange", "coinapi", "bitzoom", "0xarchive"]
ALL_SIZES = [(60, 20), (80, 24), (120, 40), (200, 60)]


@pytest.mark.parametrize("size", ALL_SIZES, ids=[f"{w}x{h}" for w, h in ALL_SIZES])
@pytest.mark.parametrize("venue", VENUES)
def test_every_venue_at_every_size(snap_compare: Any, venue: str, size: tuple[int, int]) -> None:
    assert snap_compare(static_app(venue=venue), terminal_size=size, run_before=settled)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_several_venues_with_the_consolidated_row(snap_compare: Any, size: tuple[int, int]) -> None:
    """Three venues: the venue column, the consolidated row with Bitzoom's UNSAFE book left out."""
    from .ui_support import several_app

    assert snap_compare(several_app(), terminal_size=size, run_before=settled)


def test_several_venues_consolidated_ladder_120x40(snap_compare: Any) -> None:
    from .ui_support import several_app

    assert snap_compare(several_app(unsafe=None), terminal_size=(120, 40), press=["v"], run_before=settled)
