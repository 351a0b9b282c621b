"""The built-in exchange simulator: real WebSocket servers on loopback speaking each venue's protocol."""

from __future__ import annotations

from tickerterm.core.errors import ConfigError
from tickerterm.sim.bitzoom import BitzoomSim
from tickerterm.sim.coinapi import CoinApiSim
from tickerterm.sim.coinbase import CoinbaseSim
from tickerterm.sim.coinbase_exchange import CoinbaseExchangeSim
from tickerterm.sim.faults import Faults
from tickerterm.sim.market import DEFAULT_PRODUCTS, Market, ProductSpec
from tickerterm.sim.oxarchive import OxArchiveSim
from tickerterm.sim.server import SimServer, SimTiming

SIMULATORS: dict[str, type[SimServer]] = {
    CoinbaseSim.venue: CoinbaseSim,
    CoinbaseExchangeSim.venue: CoinbaseExchangeSim,
    BitzoomSim.venue: BitzoomSim,
    CoinApiSim.venue: CoinApiSim,
    OxArchiveSim.venue: OxArchiveSim,
}

SIM_PRODUCTS: tuple[str, ...] = tuple(p.product for p in DEFAULT_PRODUCTS)


def simulator_class(venue: str) -> type[SimServer]:
    cls = SIMULATORS.get(venue)
    if cls is None:
        raise ConfigError(f"no simulator for venue {venue!r} (choose from: {', '.join(sorted(SIMULATORS))})")
    return cls


__all__ = [
    "DEFAULT_PRODUCTS",
    "SIMULATORS",
    "SIM_PRODUCTS",
    "BitzoomSim",
    "CoinApiSim",
    "CoinbaseExchangeSim",
    "CoinbaseSim",
    "Faults",
    "Market",
    "OxArchiveSim",
    "ProductSpec",
    "SimServer",
    "SimTiming",
    "simulator_class",
]
