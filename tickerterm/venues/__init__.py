"""Venue adapters: one module per venue, each pure (frames in, normalized events out)."""

from __future__ import annotations

from tickerterm.core.errors import ConfigError
from tickerterm.venues.base import ChannelSpec, Parser, Subscriptions, VenueAdapter
from tickerterm.venues.bitzoom import Bitzoom
from tickerterm.venues.coinapi import CoinApi
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade
from tickerterm.venues.coinbase_exchange import CoinbaseExchange
from tickerterm.venues.oxarchive import OxArchive

VENUES: dict[str, type[VenueAdapter]] = {
    CoinbaseAdvancedTrade.name: CoinbaseAdvancedTrade,
    CoinbaseExchange.name: CoinbaseExchange,
    Bitzoom.name: Bitzoom,
    CoinApi.name: CoinApi,
    OxArchive.name: OxArchive,
}


def venue_class(name: str) -> type[VenueAdapter]:
    """The adapter class for ``name``; ConfigError naming the choices if there is none."""
    cls = VENUES.get(name.strip().lower())
    if cls is None:
        raise ConfigError(f"unknown venue {name!r} (choose from: {', '.join(sorted(VENUES))})")
    return cls


__all__ = ["VENUES", "ChannelSpec", "Parser", "Subscriptions", "VenueAdapter", "venue_class"]
