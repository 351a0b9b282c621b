"""0xArchive (``--venue 0xarchive``): Hyperliquid market data, live and replayed. See protocols.md
section 5.

Wire facts this adapter relies on:
- ``{"op":"subscribe"|"unsubscribe","channel","symbol"}`` answered by ``subscribed``/``unsubscribed``
  per channel and symbol; ``{"op":"ping"}`` every 25 s answered by ``pong`` (and the server's WebSocket
  pings answered too);
- live data arrives as ``{"type":"data","channel","coin","data"}``; replayed data as ``historical_data``
  (and ``replay_snapshot`` for the initial state), never as ``data``;
- ``orderbook`` is a whole book in every message (``levels[0]`` bids, ``levels[1]`` asks): replaced,
  never diffed; ``l4_diffs`` is order by order: ``l4_snapshot`` then ``l4_batch`` diffs (``new``,
  ``update``, ``remove``; those not newer than the snapshot are skipped), kept as an L3 book;
- trades' ``side`` is ``B`` (a buy took the offer) or ``A`` (a sell hit the bid); Lighter's two legs
  share a ``tid`` (the store keeps one);
- ``gap_detected`` marks that symbol's book unsafe until rebuilt; errors carry ``error_code``:
  ``forbidden`` stops the connection, command errors drop that subscription, lag notices are shown
  and the stream goes on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import msgspec

from tickerterm.core.errors import ConfigError, FrameError
from tickerterm.core.events import (
    BookSnapshot,
    BookUpdate,
    Candle,
    Event,
    Gap,
    Heartbeat,
    Level,
    ReplayState,
    Side,
    Subscribed,
    Trade,
    VenueError,
    value_of,
)
from tickerterm.core.l3 import L3Book
from tickerterm.venues.auth import ApiToken, load_token
from tickerterm.venues.base import ChannelSpec, ErrorClass, Parser, VenueAdapter, decode_object, peek_object
from tickerterm.venues.fields import amount, integer, millis
from tickerterm.venues.session import Session

MARKET_URL = "wss://api.0xarchive.io/ws"
ENV_KEY = "OXARCHIVE_API_KEY"
CANDLE_INTERVALS: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "4h": 14400,
    "1d": 86400,
    "1w": 604800,
}

CHANNELS: dict[str, ChannelSpec] = {  # every channel needs the API key
    "orderbook": ChannelSpec("orderbook", "book", private=True),
    "l4_diffs": ChannelSpec("l4_diffs", "book", private=True),
    "trades": ChannelSpec("trades", "trades", private=True),
    "candles": ChannelSpec("candles", "candles", private=True),
}
_SYMBOL = re.compile(r"^(?:[A-Za-z0-9]{1,20}(?:-[A-Za-z0-9]{1,20})?|[a-z]{1,8}:[A-Za-z0-9]{1,20}|#\d{1,6})$")
_TAKER: dict[str, Side] = {"B": "buy", "A": "sell"}
_BOOK_SIDE = {"B": "bid", "A": "ask"}
_decode = msgspec.json.decode


class OxArchiveSession(Session):
    """0xArchive replays history (``Wanted.replay``, ``control``) and wants an application ping every
    ``keepalive_every`` seconds."""

    replays = True
    adapter: OxArchive

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ping_at: float | None = None

    def opened(self, now: float) -> list[Event]:
        self._ping_at = now + self.adapter.keepalive_every
        return super().opened(now)

    def restore_frames(self) -> list[str]:
        plan = self.wanted.replay
        if plan is None:
            return super().restore_frames()
        # history instead of live data, from where it stood
        return self.adapter.replay_frames(
            plan.product, plan.channels, plan.resume_from(), plan.end, plan.speed
        )

    def control(self, action: str, now: float, **args: Any) -> list[Event]:
        plan = self.wanted.replay
        if plan is None:
            raise ConfigError("not replaying")
        if action == "speed":  # a new replay from where it stands, at the new speed
            plan.speed = float(args["speed"])
            plan.start, plan.position = plan.resume_from(), None
            self._send(
                self.adapter.replay_frames(plan.product, plan.channels, plan.start, plan.end, plan.speed)
            )
            return []
        frames = self.adapter.control_frames(action, **args)
        if action == "seek":
            plan.start, plan.position = float(args["timestamp"]), None
        self._send(frames)
        return []

    def wake_at(self) -> float | None:
        base = super().wake_at()
        if self._ping_at is None:
            return base
        return self._ping_at if base is None else min(base, self._ping_at)

    def timer(self, now: float) -> list[Event]:
        out = super().timer(now)
        if self._ping_at is not None and now >= self._ping_at:
            self._ping_at = now + self.adapter.keepalive_every
            self._send([PING])
        return out


PING = '{"op":"ping"}'


class OxArchive(VenueAdapter):
    name = "0xarchive"
    title = "0xArchive (Hyperliquid)"
    endpoints: ClassVar[dict[str, str]] = {"market": MARKET_URL}
    channels = CHANNELS
    aliases: ClassVar[dict[str, str]] = {"book": "orderbook", "l4": "l4_diffs", "trade": "trades"}
    candle_intervals = CANDLE_INTERVALS
    default_channels = ("orderbook", "trades", "candles")
    default_products = ("BTC", "ETH")
    max_frame_size = 64 * 2**20  # L4 snapshots run to tens of MB
    outbound_per_second = 8.0
    stale_after = 60.0  # books come every ~1.2 s, but a quiet symbol's trades may not; pongs every 25 s
    keepalive_every = 25.0
    """Seconds between application pings (the venue closes an idle connection)."""
    session_type = OxArchiveSession
    credential_name = "a 0xArchive API key"
    credential_help = f'set {ENV_KEY} (or --key-file with {{"apiKey": …}})'

    credentials: ApiToken | None

    @classmethod
    def load_credentials(cls, key_file: str | None = None) -> ApiToken | None:
        return load_token(ENV_KEY, "apiKey", key_file=key_file)

    def normalize_product(self, product: str) -> str:
        p = product.strip()
        if not _SYMBOL.match(p):
            raise ConfigError(
                f"unknown product {product!r}: a 0xArchive symbol such as BTC, HYPE-USDC or km:US500"
            )
        return p if ":" in p else p.upper()  # HIP-3 symbols are case-sensitive

    def base_quote(self, product: str) -> tuple[str, str] | None:
        """``HYPE-USDC`` (spot) -> ``("HYPE", "USDC")``; a perpetual (``BTC``) is quoted ``USD-PERP``: a
        perpetual's price is not a spot price, so it joins a spot asset only by ``--same-quote
        USD-PERP=USD``. HIP-3 markets and spot indices (``km:US500``, ``#107``) have none."""
        if ":" in product or product.startswith("#"):
            return None
        if "-" in product:
            return super().base_quote(product)
        return (product, "USD-PERP")

    def connect_headers(self, endpoint: str) -> dict[str, str]:
        # a header, not ?apiKey=: the key then never sits in a URL (the URL is shown and logged)
        return {"Authorization": f"Bearer {self.credentials.secret.reveal()}"} if self.credentials else {}

    def parser(self, conn: str) -> OxArchiveParser:
        return OxArchiveParser(self.name, conn)

    def _ops(self, op: str, channel: str, products: list[str]) -> list[str]:
        spec = self.channel(channel)
        extra = {"interval": "1m"} if spec.name == "candles" else {}
        return [json.dumps({"op": op, "channel": spec.name, "symbol": p, **extra}) for p in products]

    def subscribe_frames(self, channel: str, products: list[str]) -> list[str]:
        return self._ops("subscribe", channel, products)

    def unsubscribe_frames(
        self, channel: str, products: list[str] | None, *, listed: list[str] | None = None
    ) -> list[str]:
        return self._ops("unsubscribe", channel, products if products is not None else (listed or []))

    def resync_frames(self, channel: str, products: list[str]) -> list[str]:
        if channel == "l4_diffs":  # a new l4_snapshot comes with a new subscription
            return self.unsubscribe_frames(channel, products) + self.subscribe_frames(channel, products)
        return []  # orderbook: every message is a whole book; the next one restores it

    def gap_products(self, gap: Gap, book_products: list[str]) -> list[str]:
        product = gap.scope.partition(":")[2]
        return [product] if product in book_products else []

    # --- replay ----------------------------------------------------------------------------

    def replay_frames(
        self, product: str, channels: list[str], start: float, end: float, speed: float
    ) -> list[str]:
        msg = {
            "op": "replay",
            "channels": channels,
            "symbol": product,
            "start": int(start * 1000),
            "end": int(end * 1000),
            "speed": speed,
        }
        return [json.dumps(msg, separators=(",", ":"))]

    def control_frames(self, action: str, **args: Any) -> list[str]:
        if action in ("pause", "resume", "stop"):
            return [json.dumps({"op": f"replay.{action}"})]
        if action == "seek":
            return [json.dumps({"op": "replay.seek", "timestamp": int(float(args["timestamp"]) * 1000)})]
        raise ConfigError(f"unknown replay control {action!r}")

    def classify_error(self, message: str) -> ErrorClass:
        text = message.lower()
        if "(forbidden)" in text or "api key" in text or "unauthorized" in text:
            return "auth"
        if "re-subscribe to resume" in text:
            return "reconnect"  # that stream was stopped: come back with everything
        if "dropped ~" in text or "(slow_consumer)" in text or "(rate_limited)" in text:
            return "transient"  # a lag notice: shown, the stream goes on
        if (
            "(invalid_parameter)" in text
            or "(unsupported_for_venue)" in text
            or "(endpoint_unsupported)" in text
        ):
            return "command"
        return "transient"


class _L4:
    __slots__ = ("book", "since")

    def __init__(self) -> None:
        self.book = L3Book()
        self.since = 0.0


class OxArchiveParser(Parser):
    def __init__(self, venue: str, conn: str) -> None:
        super().__init__(venue, conn)
        self._subs: dict[str, dict[str, None]] = {}
        self._l4: dict[str, _L4] = {}
        self._data: dict[str, Callable[[str, Any, float], list[Event]]] = {
            "orderbook": self._orderbook,
            "trades": self._trades,
            "candles": self._candles,
        }

    def parse(self, raw: bytes | str, recv_ts: float) -> list[Event]:
        self.last_exch_ts = None
        msg = decode_object(raw, _decode)
        kind = msg.get("type")
        try:
            if kind in ("data", "historical_data", "replay_snapshot"):
                if kind != "data" and isinstance(msg.get("timestamp"), int):
                    self.replayed_at = millis(msg["timestamp"])
                handler = self._data.get(str(msg.get("channel")))
                if handler is None:
                    self.unknown += 1
                    return []
                return handler(_coin(msg), msg["data"], recv_ts)
            if kind == "l4_snapshot":
                return self._l4_snapshot(msg, recv_ts)
            if kind == "l4_batch":
                return self._l4_batch(msg, recv_ts)
            if kind in ("subscribed", "unsubscribed"):
                have = self._subs.setdefault(str(msg["channel"]), {})
                coin = _coin(msg)
                if kind == "subscribed":
                    have[coin] = None
                else:
                    have.pop(coin, None)
                    if msg["channel"] == "l4_diffs":
                        self._l4.pop(coin, None)
                return [
                    Subscribed(
                        self.venue, recv_ts, self.conn, {c: list(p) for c, p in self._subs.items() if p}
                    )
                ]
            if kind == "pong":
                return [Heartbeat(self.venue, recv_ts, self.conn, None)]
            if kind == "gap_detected":
                start, end = integer(msg["gap_start"]), integer(msg["gap_end"])
                scope = f"{msg['channel']}:{_coin(msg)}"
                return [Gap(self.venue, recv_ts, self.conn, start, end, scope, kind="time")]
            if kind == "error":
                text = str(msg.get("message") or "error without a message")
                code = msg.get("error_code")
                return [VenueError(self.venue, recv_ts, self.conn, f"{text} ({code})" if code else text)]
            if isinstance(kind, str) and kind.startswith("replay_"):
                return [self._replay(kind, msg, recv_ts)]
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise FrameError(f"{kind}: {type(exc).__name__} {exc}") from None
        self.unknown += 1
        return []

    def books_of(self, raw: bytes | str) -> list[str] | None:
        msg = peek_object(raw, _decode)
        if msg is None:
            return None
        kind = msg.get("type")
        if not (msg.get("channel") == "orderbook" or (isinstance(kind, str) and kind.startswith("l4_"))):
            return []
        coin = msg.get("symbol") or msg.get("coin")
        return [coin] if isinstance(coin, str) else None

    # --- market data -----------------------------------------------------------------------

    def _orderbook(self, coin: str, data: Any, recv_ts: float) -> list[Event]:
        bids_raw, asks_raw = data["levels"]
        bids: list[Level] = [(amount(lv["px"]), amount(lv["sz"])) for lv in bids_raw]
        asks: list[Level] = [(amount(lv["px"]), amount(lv["sz"])) for lv in asks_raw]
        self.last_exch_ts = integer(data["time"]) / 1000
        return [BookSnapshot(self.venue, recv_ts, coin, self.last_exch_ts, bids, asks)]  # replace, never diff

    def _trades(self, coin: str, data: Any, recv_ts: float) -> list[Event]:
        out: list[Event] = []
        for t in data:
            ts = integer(t["time"]) / 1000
            self.last_exch_ts = ts
            out.append(
                Trade(
                    self.venue,
                    recv_ts,
                    coin,
                    ts,
                    str(t["tid"]),
                    amount(t["px"]),
                    amount(t["sz"]),
                    _TAKER[t["side"]],
                )
            )
        return out

    def _candles(self, coin: str, data: Any, recv_ts: float) -> list[Event]:
        rows = data if isinstance(data, list) else [data]
        return [
            Candle(
                self.venue,
                recv_ts,
                coin,
                None,
                integer(c["t"]) // 1000,
                CANDLE_INTERVALS[c["i"]],
                amount(c["o"]),
                amount(c["h"]),
                amount(c["l"]),
                amount(c["c"]),
                amount(c["v"]),
            )
            for c in rows
        ]

    def _l4_snapshot(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        coin = _coin(msg)
        if not self.accepts(coin):  # no L4 book for products nobody asked for
            self.unsolicited += 1
            return []
        state = self._l4[coin] = _L4()
        state.since = integer(msg["timestamp"]) / 1000
        data = msg["data"]
        bids = [(amount(o["px"]), amount(o["sz"]), str(o["oid"])) for o in data["bids"]]
        asks = [(amount(o["px"]), amount(o["sz"]), str(o["oid"])) for o in data["asks"]]
        state.book.load(bids, asks)
        top_bids, top_asks = state.book.levels()
        return [BookSnapshot(self.venue, recv_ts, coin, state.since, top_bids, top_asks)]

    def _l4_batch(self, msg: dict[str, Any], recv_ts: float) -> list[Event]:
        coin = _coin(msg)
        state = self._l4.get(coin)
        if state is None:
            return []  # before the snapshot: nothing to apply it to
        book = state.book
        changes = []
        for d in msg["data"]:
            ts = integer(d["ts"]) / 1000
            if ts <= state.since:
                continue  # already in the snapshot
            oid, kind = str(d["oid"]), d["dt"]
            if kind == "new":
                c = book.open(oid, _BOOK_SIDE[d["side"]], amount(d["px"]), amount(d["sz"]))  # type: ignore[arg-type]
            elif kind == "update":
                c = book.change(oid, amount(d["sz"]))
            elif kind == "remove":
                c = book.done(oid)
            else:
                raise ValueError(f"unknown diff type {str(kind)[:10]!r}")
            if c is not None:
                changes.append(c)
        if not changes:
            return []
        return [BookUpdate(self.venue, recv_ts, coin, None, changes)]

    def want_snapshot(self, channel: str, product: str) -> None:
        if channel == "l4_diffs":
            self._l4.pop(product, None)  # the resubscription brings a new l4_snapshot

    # --- replay ----------------------------------------------------------------------------

    def _replay(self, kind: str, msg: dict[str, Any], recv_ts: float) -> ReplayState:
        state = kind.removeprefix("replay_")
        now = msg.get("current_timestamp") or msg.get("timestamp")
        return ReplayState(
            self.venue,
            recv_ts,
            self.conn,
            state,
            product=str(msg.get("coin") or msg.get("symbol") or ""),
            current=integer(now) / 1000 if now is not None else None,
            start=integer(msg["start"]) / 1000 if "start" in msg else None,
            end=integer(msg["end"]) / 1000 if "end" in msg else None,
            speed=_speed(msg["speed"]) if "speed" in msg else None,
        )


def _speed(value: Any) -> float:
    """A replay speed: a positive number no larger than a million."""
    speed = value_of(str(value))
    if not 0 < speed <= 1e6:
        raise ValueError("speed out of range")
    return speed


def _coin(msg: Mapping[str, Any]) -> str:
    coin = msg.get("symbol") or msg.get("coin")
    if not isinstance(coin, str) or not coin:
        raise TypeError("no symbol")
    return coin
