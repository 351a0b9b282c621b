"""Fault injection for the simulator. Every field can be changed while the server runs (tests do)."""

from __future__ import annotations

from dataclasses import dataclass, fields

CLOSE_CODES = (1000, 1001, 1006, 1008, 1011)
"""Close codes the simulator can end a connection with (1006 = the TCP connection is cut, no close frame)."""


@dataclass(slots=True)
class Faults:
    drop_rate: float = 0.0
    """Fraction of data frames not sent (their sequence numbers are used up, so clients see a gap)."""
    drop_next: int = 0
    """Drop the next N data frames (deterministic)."""
    close_code: int | None = None
    """End connections with this code once ``close_after_messages`` or ``close_after_seconds`` is reached."""
    close_after_messages: int | None = None
    close_after_seconds: float | None = None
    close_reason: str = "simulated close"
    close_connections: int = 1
    """How many connections the close fault ends before it is spent (0 = every connection)."""
    refuse_auth: bool = False
    """Reject every JWT: private channels get ``authentication failure``."""
    malformed_rate: float = 0.0
    """Fraction of frames followed by an extra malformed one (truncated JSON, not JSON, not an object)."""
    malformed_next: int = 0
    corrupt_rate: float = 0.0
    """Fraction of data frames sent with a value spoiled (a price that is not a number) but their sequence
    number intact: the frame's changes are lost to the client although no number is skipped."""
    corrupt_next: int = 0
    unknown_rate: float = 0.0
    """Fraction of frames followed by an extra frame of a channel/type the protocol does not have."""
    stall_after_messages: int | None = None
    """Stop sending anything (heartbeats too) after N frames; the socket stays open."""
    stall_connections: int = 1
    """How many connections the stall fault freezes before it is spent (0 = every connection)."""
    shutdown_after_seconds: float | None = None
    """Venues with maintenance notices (Bitzoom): after S seconds send the notice, then close with 1001."""
    reconnect_notice_after: float | None = None
    """Venues with reconnect notices (CoinAPI): after S seconds announce a close, then close 1 s later."""
    gap_notice_after: float | None = None
    """Venues that announce their own gaps (0xArchive): after S seconds a gap notice for every live book."""
    snapshot_delay: float = 0.0
    """Seconds a venue that resends a book snapshot (a resubscribe on the same connection) takes to do it."""

    @classmethod
    def parse(cls, specs: list[str]) -> Faults:
        """Faults from ``name=value`` strings, as given to ``tickerterm sim --fault``."""
        faults = cls()
        kinds = {f.name: f.type for f in fields(cls)}
        for spec in specs:
            name, sep, value = spec.partition("=")
            name = name.strip().replace("-", "_")
            if name not in kinds:
                raise ValueError(f"unknown fault {name!r} (choose from: {', '.join(kinds)})")
            kind = str(kinds[name])
            if not sep and "bool" in kind:
                value = "true"
            try:
                parsed: object
                if "bool" in kind:
                    parsed = value.lower() in ("1", "true", "yes", "on")
                elif "float" in kind:
                    parsed = float(value)
                elif "int" in kind:
                    parsed = int(value)
                else:
                    parsed = value
            except ValueError:
                raise ValueError(f"fault {name}: bad value {value!r}") from None
            setattr(faults, name, parsed)
        if faults.close_code is not None and faults.close_code not in CLOSE_CODES:
            raise ValueError(f"close_code must be one of {', '.join(map(str, CLOSE_CODES))}")
        for name in ("drop_rate", "malformed_rate", "corrupt_rate", "unknown_rate"):
            if not 0.0 <= getattr(faults, name) <= 1.0:
                raise ValueError(f"fault {name} must be between 0 and 1")
        return faults
