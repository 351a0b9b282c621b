"""The relay's messages, without I/O: how an event is named and carried through the broker, and what a
viewer makes of what it receives (``tickerterm relay``, ``tickerterm --from nats://``).

A relay holds the venue connections once and publishes every normalized event as one message on
``tickerterm.<venue>.<product>.<kind>`` (``_`` for the product of connection-wide events): ``book``
carries a book's snapshots, updates and state changes in one order, ``trade``, ``ticker``, ``candle``,
``status``... as the event's type says, ``health`` its connections' health. Each message has headers:

- ``Tt-Type``: the event type (the NDJSON ``type``);
- ``Tt-Seq``: the subject's own sequence number, 1, 2, 3... per relay run;
- ``Tt-Epoch``: the relay run (a restarted relay numbers its subjects from 1 again);
- ``Tt-Restate: 1`` on a connection's health restated for viewers that join late.

The body is the event's fields as JSON (``msgspec``), a large body zlib-compressed (``Tt-Encoding``).
Every ``snapshot_every`` seconds the relay publishes each book whole on its ``book`` subject (a
``book_snapshot``) and a pointer to it on ``…<product>.book_at`` (the stream sequence of that snapshot),
so a viewer that joins late starts at the last snapshot and goes on from there.

Everything a viewer receives is untrusted, as a venue's frames are: decoded against the event's type,
numbers checked as plain decimal text (and converted again, not taken from the message), text bounded and
scrubbed. A gap in a subject's numbers is shown; on a book's subject it marks the book UNSAFE until the
relay's next snapshot of it comes, as a venue's gap does.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec

from tickerterm.core.boundary import Boundary
from tickerterm.core.errors import ConfigError
from tickerterm.core.events import (
    BookDropped,
    BookResynced,
    BookResyncing,
    BookSnapshot,
    BookUnsafe,
    BookUpdate,
    Candle,
    Event,
    Gap,
    Malformed,
    Ticker,
    Trade,
    VenueError,
    change,
    value_of,
)
from tickerterm.core.ndjson import event_class

ROOT = "tickerterm"
STREAM = "TICKERTERM"
CONNECTION = "_"
"""The product token of events that belong to a connection, not a product."""
BOOK_KINDS = frozenset((BookSnapshot, BookUpdate, BookUnsafe, BookResyncing, BookResynced, BookDropped))
COMPRESS_OVER = 32 * 1024
"""Bodies larger than this (book snapshots) are zlib-compressed."""
MAX_BODY = 64 * 2**20
"""The largest body a viewer inflates (a compressed book snapshot is far smaller)."""

_DECIMALS: dict[type, tuple[str, ...]] = {
    Trade: ("price", "size"),
    Ticker: ("price", "bid", "bid_size", "ask", "ask_size", "volume_24h", "low_24h", "high_24h"),
    Candle: ("open", "high", "low", "close", "volume"),
}
_encode = msgspec.json.Encoder().encode
_decoders: dict[type, msgspec.json.Decoder[Any]] = {}


def token(text: str) -> str:
    """``text`` as one subject token: the characters NATS gives a meaning (``.``, ``*``, ``>``, spaces)
    and ``%`` are written ``%XX``."""
    if text.isalnum():
        return text
    return "".join(c if c.isalnum() or c in "-_+:/=@#~^!" else f"%{ord(c):02X}" for c in text)


def kind_of(event: Event) -> str:
    return "book" if type(event) in BOOK_KINDS else type(event).type


def subject_of(event: Event, root: str = ROOT) -> str:
    return subject(event.venue, getattr(event, "product", None), kind_of(event), root)


def subject(venue: str, product: str | None, kind: str, root: str = ROOT) -> str:
    return f"{root}.{token(venue)}.{token(product) if product else CONNECTION}.{kind}"


def encode(event: Event) -> tuple[bytes, bool]:
    """The body for ``event`` and whether it is compressed."""
    body = _encode(event)
    if len(body) > COMPRESS_OVER:
        return zlib.compress(body, 1), True
    return body, False


def decode(type_name: str, body: bytes, compressed: bool, boundary: Boundary) -> Event:
    """The event a relay message carries, checked as venue input is; ValueError says what is wrong."""
    cls = event_class(type_name)
    if cls is None:
        raise ValueError(f"no event type {type_name[:40]!r}")
    if compressed:
        inflate = zlib.decompressobj()
        body = inflate.decompress(body, MAX_BODY)
        if inflate.unconsumed_tail:
            raise ValueError(f"a body over {MAX_BODY} bytes")
    decoder = _decoders.get(cls)
    if decoder is None:
        decoder = _decoders[cls] = msgspec.json.Decoder(cls)
    try:
        ev: Any = decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{type_name}: {exc}") from None
    if cls is BookUpdate:  # the values are converted here from the checked text, never taken as sent
        ev.changes = [change(side, price, size) for side, price, size, _, _ in ev.changes]
    elif cls is BookSnapshot:
        for levels in (ev.bids, ev.asks):
            for i, (price, size) in enumerate(levels):
                value_of(price), value_of(size)
                levels[i] = (price, size)
    else:
        for name in _DECIMALS.get(cls, ()):
            text = getattr(ev, name)
            if text is not None:
                value_of(text)
        boundary.scrub(ev)
    product = getattr(ev, "product", None)
    if isinstance(product, str):
        ev.product = boundary.text(product, 64)
    return ev  # type: ignore[no-any-return]


@dataclass(slots=True)
class _Subject:
    epoch: str
    seq: int
    retired: set[str] = field(default_factory=set)
    """The runs this subject has seen end (a few): one of them back again means two relays publish."""


@dataclass
class RelayInput:
    """A viewer's side of the relay, for one venue: each message in, the events for the store out.

    Per subject the numbers must follow on (a repeat is dropped: a consumer that restarted delivers again
    from where it was). A gap is a ``Gap`` event; on a book it also makes the book UNSAFE until the next
    snapshot, and until then the book's updates are not applied. A book's first message, when it is not
    a snapshot, waits for one the same way (a late joiner that found no snapshot to start from)."""

    venue: str
    conn: str
    products: list[str] = field(default_factory=list)
    boundary: Boundary = field(default_factory=Boundary)
    subjects: dict[str, _Subject] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)
    """Books waiting for a snapshot, and why."""
    malformed: int = 0
    conflicts: int = 0
    """Messages dropped because another relay publishes to the same stream."""

    def received(
        self, subject_name: str, headers: dict[str, str] | None, body: bytes, now: float
    ) -> list[Event]:
        if subject_name.endswith((".book_at", ".raw")):
            return []  # where the last snapshot is, for screens that start; the venue's frames (--raw)
        headers = headers or {}
        try:
            seq = int(headers.get("Tt-Seq", ""))
            epoch = headers.get("Tt-Epoch", "")[:64]
            ev = decode(headers.get("Tt-Type", ""), body, headers.get("Tt-Encoding") == "zlib", self.boundary)
        except (ValueError, TypeError) as exc:
            return self._malformed(subject_name, str(exc), now)
        if ev.venue != self.venue:
            return self._malformed(
                subject_name, f"an event of {ev.venue[:40]!r} on {self.venue}'s subject", now
            )
        product = getattr(ev, "product", None)
        where = [token(ev.venue), token(product) if product else CONNECTION, kind_of(ev)]
        if subject_name.split(".")[-3:] != where:  # its numbers are another subject's: not to be trusted
            return self._malformed(
                subject_name, f"a {ev.type} for {'.'.join(where)[:80]} on this subject", now
            )
        if headers.get("Tt-Restate") and subject_name in self.subjects:
            return []  # a connection's state said again for late joiners: this viewer has it already
        last = self.subjects.get(subject_name)
        gap: Gap | None = None
        restarted = last is not None and last.epoch != epoch
        if last is not None and not restarted:
            if seq <= last.seq:
                return []
            if seq != last.seq + 1:
                gap = Gap(self.venue, now, self.conn, last.seq + 1, seq, f"relay {subject_name}")
        if last is None:
            self.subjects[subject_name] = _Subject(epoch, seq)
        elif restarted:
            if epoch in last.retired:  # a subject's messages are in publishing order: two relays publish
                return self._two_relays(subject_name, last.epoch, epoch, now)
            last.retired = {*list(last.retired)[-7:], last.epoch}
            last.epoch, last.seq = epoch, seq
        else:
            last.seq = seq
        if type(ev) in BOOK_KINDS:
            return self._book(ev, gap, restarted, last is None, now)
        return [ev] if gap is None else [gap, ev]

    def _book(self, ev: Event, gap: Gap | None, restarted: bool, first: bool, now: float) -> list[Event]:
        product: str = ev.product  # type: ignore[attr-defined]
        if type(ev) is BookSnapshot:
            out: list[Event] = [] if gap is None else [gap]
            out.append(ev)
            if self.waiting.pop(product, None) is not None:
                out.append(BookResynced(self.venue, now, self.conn, product))
            return out
        why = self.waiting.get(product)
        if why is None and first and type(ev) is BookUpdate:  # joined between two snapshots
            return self.start_book(product, "waiting for the relay's next snapshot", now)
        if why is None:
            if gap is not None:
                why = f"relay gap ({gap.describe()}): waiting for the relay's next snapshot"
            elif restarted:
                why = "the relay restarted: waiting for its snapshot"
            else:
                return [ev]
            self.waiting[product] = why
            out = [] if gap is None else [gap]
            return [*out, BookUnsafe(self.venue, now, self.conn, product, why)]
        return [] if gap is None else [gap]  # nothing applies to the book until its snapshot comes

    def _two_relays(self, subject_name: str, current: str, other: str, now: float) -> list[Event]:
        """A message of a relay run this subject saw end: another relay publishes to the same stream.
        This viewer keeps to the run it follows; the other's messages are dropped and said."""
        self.conflicts += 1
        if self.conflicts == 1 or self.conflicts % 1000 == 0:
            text = (
                f"two relays publish to this stream ({subject_name}: runs {current} and {other}); "
                f"following {current}, {self.conflicts} messages of the other dropped: give each relay "
                "its own --stream"
            )
            return [VenueError(self.venue, now, self.conn, self.boundary.text(text))]
        return []

    def start_book(self, product: str, why: str, now: float) -> list[Event]:
        """A book that has no snapshot to start from yet (the relay has published none)."""
        if product in self.waiting:
            return []
        self.waiting[product] = why
        return [BookResyncing(self.venue, now, self.conn, product)]

    def forget(self, subject_name: str) -> None:
        """A subject this viewer stopped reading: its numbers start afresh when it reads it again."""
        self.subjects.pop(subject_name, None)

    def _malformed(self, subject_name: str, reason: str, now: float) -> list[Event]:
        self.malformed += 1
        text = self.boundary.text(f"{subject_name}: {reason}")
        out: list[Event] = [Malformed(self.venue, now, self.conn, text)]
        parts = subject_name.split(".")
        product = next((p for p in self.products if token(p) == parts[-2]), None)
        if parts[-1] == "book" and product is not None:
            why = f"a malformed relay message ({reason[:80]}): waiting for the relay's next snapshot"
            if product not in self.waiting:
                self.waiting[product] = why
                out.append(BookUnsafe(self.venue, now, self.conn, product, why))
        return out


def broker_url(text: str) -> str:
    """``text`` if it is a NATS URL (``nats://host:port``); ConfigError in one line otherwise."""
    parts = urlsplit(text)
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise ConfigError(f"{text!r} is not a NATS URL (nats://host:4222)")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ConfigError(f"{text!r}: the port is not a number") from None
    return text


def stream_names(name: str) -> tuple[str, str]:
    """The subject root and the JetStream stream name for a relay called ``name`` (``--stream``)."""
    if not name or len(name) > 32 or not all(c.isascii() and (c.isalnum() or c in "_-") for c in name):
        raise ConfigError(f"--stream {name[:40]!r}: letters, digits, - and _ only (at most 32)")
    return name, name.upper()


def shown_url(url: str) -> str:
    """The URL without any user or password in it (for the screen and the log)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"
