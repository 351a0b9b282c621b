"""Normalized events, order book, candles and the store. Pure Python: no textual, no websockets."""
