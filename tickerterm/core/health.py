"""Per-connection health: what the connection-health panel and the ``stale``/``gap`` checks read."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

CLOSE_MEANINGS: dict[int, str] = {
    1000: "normal closure",
    1001: "going away (server restart)",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status code",
    1006: "dropped, no close frame",
    1007: "invalid payload",
    1008: "policy violation (limits, auth)",
    1009: "message too big",
    1011: "server internal error",
    1012: "service restart",
    1013: "try again later",
    1015: "TLS handshake failed",
}


def close_meaning(code: int | None) -> str:
    """Plain words for a WebSocket close code."""
    if code is None:
        return "no close frame"
    if code in CLOSE_MEANINGS:
        return CLOSE_MEANINGS[code]
    if 4000 <= code < 5000:
        return "application-specific close"
    return "unknown close code"


LATENCY_WINDOW = 60.0
"""Seconds of frames the latency figures are taken over."""


@dataclass(slots=True)
class GapRecord:
    expected: int
    received: int
    at: float
    scope: str
    text: str = ""
    """The gap in words (``Gap.describe``)."""


@dataclass(slots=True)
class ConnectionHealth:
    conn: str
    venue: str
    state: str = "idle"
    """idle, connecting, connected, subscribed, stale, closed, retrying, gave_up."""
    state_since: float = 0.0
    url: str = ""
    connected_at: float | None = None
    attempt: int = 0
    """Consecutive failed attempts (reset once a connection proves stable)."""
    retries: int = 0
    """Reconnects scheduled since start."""
    next_retry_at: float | None = None
    last_close_code: int | None = None
    last_close_reason: str = ""
    closes: int = 0
    gaps: int = 0
    last_gap: GapRecord | None = None
    malformed: int = 0
    unknown: int = 0
    out_of_order: int = 0
    unsolicited: int = 0
    """Market data for products nobody asked for (dropped)."""
    stale_count: int = 0
    resyncs: int = 0
    messages: int = 0
    last_msg_at: float | None = None
    last_heartbeat_at: float | None = None
    gave_up_reason: str = ""
    refused: dict[str, bool] = field(default_factory=dict)
    """Products the venue refused (True) or never sent anything for (False), from errors naming them."""
    bad_input: bool = False
    """It gave up because the venue refused every product asked for."""
    last_failure: str = ""
    """Why the last attempt ended (set from the first retry on)."""
    subscriptions: dict[str, list[str]] = field(default_factory=dict)
    errors: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=20))
    latencies_ms: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=2048))
    """``(receive time, milliseconds)`` of recent frames; ``latency()`` reads the last minute of them."""
    _rate: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=11))

    def set_state(self, state: str, now: float) -> None:
        if state != self.state:
            self.state = state
            self.state_since = now

    def note_message(self, now: float, exch_ts: float | None) -> None:
        """Count one received frame."""
        self.note_messages(now, 1, () if exch_ts is None else (exch_ts,))

    def note_messages(self, now: float, count: int, exch_times: Iterable[float]) -> None:
        """Count ``count`` frames received together at ``now`` (one socket read), ``exch_times`` the
        venue's times of those that had one (each a latency sample)."""
        self.messages += count
        self.last_msg_at = now
        sec = int(now)
        rate = self._rate
        if rate and rate[-1][0] == sec:
            rate[-1] = (sec, rate[-1][1] + count)
        else:
            rate.append((sec, count))
        self.latencies_ms.extend([(now, (now - t) * 1000.0) for t in exch_times])

    def rate(self, now: float, window: int = 5) -> float:
        """Messages per second over the last ``window`` whole seconds."""
        sec = int(now)
        total = sum(n for s, n in self._rate if sec - window <= s < sec)
        return total / window

    def latency(self, now: float | None = None, window: float = LATENCY_WINDOW) -> tuple[float, float] | None:
        """Exchange-to-local latency p50 and p99 in milliseconds over the frames of the last ``window``
        seconds before ``now`` (default: the last frame's time): a slow start (a deep REST snapshot
        parsed while frames queue) ages out instead of showing for thousands of frames."""
        if not self.latencies_ms:
            return None
        end = self.latencies_ms[-1][0] if now is None else now
        data = sorted(ms for at, ms in self.latencies_ms if end - window <= at <= end)
        if not data:
            return None
        n = len(data)
        return data[(n - 1) // 2], data[min(n - 1, int(n * 0.99))]

    def uptime(self, now: float) -> float | None:
        if self.connected_at is None or self.state not in ("connected", "subscribed", "stale"):
            return None
        return now - self.connected_at

    def last_message_age(self, now: float) -> float | None:
        return None if self.last_msg_at is None else now - self.last_msg_at
