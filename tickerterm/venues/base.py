"""What every venue adapter provides to the stream worker.

An adapter is pure: it never touches a socket. It turns intents (subscribe these products to that
channel) into frames and frames into normalized events, and declares what the shared stream worker
needs to know about the venue (endpoints, frame size, outbound rate, how staleness is judged, which
errors are final). Per-connection protocol state (sequence numbers) lives in a ``Parser`` made for
each connection, so a reconnect starts clean.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from tickerterm.core.candles import INTERVALS
from tickerterm.core.errors import ConfigError, CredentialsError, FrameError
from tickerterm.core.events import Event, Gap
from tickerterm.venues.session import HttpRequest, Session, Subscriptions

__all__ = ["ChannelSpec", "HttpRequest", "Parser", "Session", "Subscriptions", "VenueAdapter"]

ErrorClass = Literal["auth", "command", "transient", "reconnect", "fatal"]
"""``reconnect``: the venue announced the connection's end (a shutdown, an expired listen key): the
worker reconnects now and restores everything, instead of waiting to be cut off. ``fatal``: the venue
ends the connection for good (shown, not retried)."""

_PRODUCT = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """One of a venue's channels as the user and the worker see it."""

    name: str
    """The venue's own channel name (what goes on the wire)."""
    kind: str
    """What it feeds: ``ticker``, ``trades``, ``book``, ``candles``, ``status``, ``heartbeat``, ``user``,
    ``balance``."""
    private: bool = False
    """Needs credentials."""
    endpoint: str = "market"
    """Which of the venue's endpoints serves it."""
    per_product: bool = True
    """Takes a product list (else the channel is venue-wide)."""


_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:api[-_]?key|key|token|access[-_]?token|secret|signature|passphrase)=)[^&#]*"
)
_USERINFO = re.compile(r"^([a-z]+://)[^/@]*@")
_PATH_KEY = re.compile(r"(?i)(/apikey-)[^/?#]*")
"""CoinAPI's documented form: the key as a path segment, ``wss://ws.coinapi.io/v1/APIKEY-<key>/``."""


def redact_url(url: str) -> str:
    """``wss://x/ws?apiKey=0xa_123&v=2`` -> ``wss://x/ws?apiKey=***&v=2``; also user:password@ and a
    ``/APIKEY-<key>`` path segment."""
    return _PATH_KEY.sub(r"\1***", _USERINFO.sub(r"\1***@", _SECRET_PARAM.sub(r"\1***", url)))


def decode_object(raw: bytes | str, decode: Callable[[bytes | str], Any]) -> dict[str, Any]:
    """A frame that must be a JSON object; FrameError (the frame is counted and skipped) otherwise."""
    msg = decode_json(raw, decode)
    if not isinstance(msg, dict):
        raise FrameError("not a JSON object")
    return msg


def decode_json(raw: bytes | str, decode: Callable[[bytes | str], Any]) -> Any:
    try:
        return decode(raw)
    except (ValueError, UnicodeDecodeError):  # msgspec.DecodeError is a ValueError
        raise FrameError("not valid JSON") from None
    except RecursionError:
        raise FrameError("nested too deeply") from None


def peek_object(raw: bytes | str, decode: Callable[[bytes | str], Any]) -> dict[str, Any] | None:
    """The frame as a JSON object, or None when it is not one (for ``Parser.books_of``)."""
    try:
        msg = decode(raw)
    except (ValueError, RecursionError):
        return None
    return msg if isinstance(msg, dict) else None


def _everything(product: str) -> bool:
    return True


class Parser(ABC):
    """Per-connection frame parser. ``parse`` raises ``FrameError`` for a frame it cannot use."""

    def __init__(self, venue: str, conn: str) -> None:
        self.venue = venue
        self.conn = conn
        self.unknown = 0
        """Frames of a type this parser does not know (ignored, counted)."""
        self.out_of_order = 0
        """Frames older than one already seen (ignored, counted)."""
        self.unsolicited = 0
        """Frames for products this connection did not ask for (ignored, counted)."""
        self.last_exch_ts: float | None = None
        """The venue's time on the last frame, for latency."""
        self.replayed_at: float | None = None
        """In a replay: the history time of the last replayed frame (UNIX seconds)."""

        self.snapshot_wanted: list[tuple[str, str]] = []
        """``(channel, product)`` books this parser needs a REST snapshot for; the stream worker
        fetches ``VenueAdapter.snapshot_url`` and hands the body to ``apply_snapshot``."""
        self._history_asked: set[tuple[str, str]] = set()
        self.accepts: Callable[[str], bool] = _everything
        """Whether data for a product is wanted (the stream worker sets it): per-product state is kept
        only for those, so a venue naming other products cannot grow it."""

    @abstractmethod
    def parse(self, raw: bytes | str, recv_ts: float) -> list[Event]: ...

    def want_history(self, channel: str, product: str) -> None:
        """The first data of ``product`` on ``channel`` (a first bar, a first match): ask, once per
        connection and only for products wanted here, for the REST history before it (``snapshot_url``
        gives the URL, ``apply_snapshot`` takes the body), so a chart starts with bars, not empty."""
        key = (channel, product)
        if key not in self._history_asked and self.accepts(product):
            self._history_asked.add(key)
            self.snapshot_wanted.append(key)

    def books_of(self, raw: bytes | str) -> list[str] | None:
        """The books a frame that could not be used may have changed: ``[]`` when it was not book data,
        the products when they can be told, None when nothing can be said (every book on the connection
        is then marked UNSAFE and rebuilt). Called only for a frame that failed."""
        return None

    def restarted(self, channel: str, products: list[str]) -> None:  # noqa: B027 (optional hook)
        """``products`` were subscribed to or left ``channel`` on the running connection: sync state
        kept for them goes (a new stream is synced afresh: turning a book off and on is not a gap)."""

    def want_snapshot(self, channel: str, product: str) -> None:  # noqa: B027 (optional hook)
        """The worker wants ``product``'s book rebuilt (e.g. it was crossed): a REST-synced parser drops
        it and asks for a new snapshot; others need nothing (the venue resends the book)."""

    def apply_snapshot(self, channel: str, product: str, body: bytes, recv_ts: float) -> list[Event]:
        """Events from a REST snapshot this parser asked for (then whatever it buffered meanwhile)."""
        raise FrameError(f"{self.venue} takes no REST snapshots")


class VenueAdapter(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    endpoints: ClassVar[Mapping[str, str]]
    """Endpoint name -> default URL (``rest`` for a venue's REST base, where it has one)."""
    sandbox_endpoints: ClassVar[Mapping[str, str]] = {}
    """The venue's test environment (``--sandbox``), where it has one."""
    channels: ClassVar[Mapping[str, ChannelSpec]]
    aliases: ClassVar[Mapping[str, str]] = {}
    """Extra names accepted for channels (e.g. ``book`` -> ``level2``)."""
    default_channels: ClassVar[tuple[str, ...]]
    keepalive_channels: ClassVar[tuple[str, ...]] = ()
    """Subscribed on every connection, so quiet channels are not closed and staleness can be judged."""
    max_frame_size: ClassVar[int] = 16 * 2**20
    outbound_per_second: ClassVar[float] = 8.0
    outbound_burst: ClassVar[float | None] = None
    """Frames that may go at once (default: a second's worth)."""
    default_products: ClassVar[tuple[str, ...]] = ("BTC-USD", "ETH-USD")
    max_streams_per_connection: ClassVar[int | None] = None
    """Streams (channel x product) one connection may carry; beyond it the feed opens more."""
    max_connections: ClassVar[int | None] = None
    """Connections the venue allows in all, user data included (None: one per endpoint, no cap)."""
    stale_after: ClassVar[float] = 10.0
    """Seconds without any frame (heartbeats included) after which a connection is stale."""
    credential_help: ClassVar[str] = ""
    """How to provide credentials: the variables and the key file, named (never their values)."""
    candle_intervals: ClassVar[Mapping[str, int]] = INTERVALS
    """Candle intervals the chart offers (``i`` cycles them), by name: the venue's own where it sends
    candles for more than the intervals built from trades."""
    credential_name: ClassVar[str] = "an API key"
    """What the venue calls them, for messages: ``a Coinbase API key``."""

    def __init__(
        self,
        *,
        urls: Mapping[str, str] | None = None,
        credentials: object | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.urls = {**self.endpoints, **(urls or {})}
        self.credentials = credentials
        self.clock = clock

    # --- naming ----------------------------------------------------------------------------

    def channel(self, name: str) -> ChannelSpec:
        """The channel named ``name`` (the venue's name or an alias); ConfigError if unknown."""
        key = self.aliases.get(name, name)
        spec = self.channels.get(key)
        if spec is None:
            known = ", ".join(sorted(set(self.channels) | set(self.aliases)))
            raise ConfigError(f"unknown channel {name!r} for {self.name} (choose from: {known})")
        return spec

    def channel_for_kind(self, kind: str) -> ChannelSpec | None:
        for spec in self.channels.values():
            if spec.kind == kind:
                return spec
        return None

    def normalize_product(self, product: str) -> str:
        """``btc-usd`` -> ``BTC-USD``; ConfigError when it cannot be a product of this venue."""
        p = product.strip().upper()
        if not _PRODUCT.match(p):
            raise ConfigError(f"unknown product {product!r}: expected BASE-QUOTE such as BTC-USD")
        return p

    def base_quote(self, product: str) -> tuple[str, str] | None:
        """The base and quote of a normalized product (``BTC-USD`` -> ``("BTC", "USD")``), which says
        which markets of several venues are one asset (``core.consolidated``); None when it has none."""
        base, sep, quote = product.partition("-")
        return (base, quote) if sep and base and quote else None

    def connection_id(self, endpoint: str) -> str:
        return self.name if endpoint == "market" else f"{self.name}/{endpoint}"

    def url(self, endpoint: str) -> str:
        return self.urls[endpoint]

    def display_url(self, endpoint: str) -> str:
        """The URL as it may be shown or logged: credentials in it (``?apiKey=…``, a token, user:password@)
        are replaced by ``***``."""
        return redact_url(self.url(endpoint))

    def connect_headers(self, endpoint: str) -> dict[str, str]:
        return {}

    @classmethod
    def load_credentials(cls, key_file: str | None = None) -> object | None:
        """The venue's credentials from the environment or ``key_file``; None when none are set."""
        return None

    def check_credentials(self, channels: Iterable[str]) -> None:
        """Raise CredentialsError if any of ``channels`` is private and no credentials are set."""
        private = [c for c in channels if self.channel(c).private]
        if private and self.credentials is None:
            raise self.missing_credentials(private[0])

    def missing_credentials(self, channel: str) -> CredentialsError:
        return CredentialsError(f"channel {channel!r} needs {self.credential_name}: {self.credential_help}")

    # --- frames ----------------------------------------------------------------------------

    session_type: ClassVar[type[Session]] = Session
    """The venue's session (the generic one unless the venue's module has its own: listen keys, replay,
    a whole-scope subscription...). Optional capabilities are declared on it (``Session.replays``)."""

    @abstractmethod
    def parser(self, conn: str) -> Parser: ...

    @abstractmethod
    def subscribe_frames(self, channel: str, products: list[str]) -> list[str]: ...

    @abstractmethod
    def unsubscribe_frames(
        self, channel: str, products: list[str] | None, *, listed: list[str] | None = None
    ) -> list[str]:
        """Frames that end ``products`` on ``channel`` (None: the whole channel; ``listed`` then says
        which products that was, for venues whose frames must name every stream)."""

    def resync_frames(self, channel: str, products: list[str]) -> list[str] | None:
        """Frames that make the venue send fresh ``channel`` book snapshots for ``products``; None =
        reconnect; ``[]`` = nothing to send (the parser asks for a REST snapshot instead)."""
        return None

    def snapshot_url(self, channel: str, product: str) -> str | None:
        """The REST URL of a ``channel`` book snapshot for ``product``, for venues that need one."""
        return None

    def snapshot_headers(self, channel: str, product: str) -> dict[str, str]:
        """Headers for the REST call of ``snapshot_url`` (an API key, for venues whose REST needs one)."""
        return {}

    def book_channels(self) -> list[str]:
        return [spec.name for spec in self.channels.values() if spec.kind == "book"]

    def wire_symbol(self, product: str) -> str:
        """How the venue names ``product`` on the wire (``BTC-USD``; Bitzoom ``btcusdt``...)."""
        return product

    def rejected_products(self, message: str, products: Iterable[str]) -> list[str]:
        """Which of ``products`` a venue's refusal (a ``command`` error) names, by product or wire name:
        those are dropped and the rest go on."""
        named = []
        for product in products:
            for name in {product, self.wire_symbol(product)}:
                if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", message, re.IGNORECASE):
                    named.append(product)
                    break
        return named

    def classify_error(self, message: str) -> ErrorClass:
        """Whether a venue error ends things (``auth``, ``command``) or may pass (``transient``)."""
        return "transient"

    def gap_products(self, gap: Gap, book_products: list[str]) -> list[str]:
        """The books a sequence gap makes unsafe: every book on a connection-wide counter, else the
        product the counter belongs to."""
        if gap.scope in ("", "connection"):
            return list(book_products)
        product = gap.scope.rsplit(":", 1)[-1]
        return [product] if product in book_products else []
