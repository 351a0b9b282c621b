"""Recording and replay: every session kept in one SQLite file, replayed through the same venue code."""

from __future__ import annotations

from tickerterm.record.sqlite import DEFAULT_MAX_BYTES, Recorder, parse_size

__all__ = ["DEFAULT_MAX_BYTES", "Recorder", "parse_size"]
