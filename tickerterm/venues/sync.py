"""Books built from a REST snapshot plus the stream's diffs: the procedure, written once.

Venues whose stream carries only changes (Bitzoom's diff depth, Coinbase Exchange's ``full`` channel)
are synced the same way: the diffs that arrive while the snapshot is on its way are held; the snapshot
is loaded; the held diffs are replayed in order by the venue's own linking rule (an update id, a
sequence number), those already in the snapshot skipped; when a link is broken (a gap) the book is
dropped, the diff that broke it kept, and a new snapshot asked for. What differs per venue is only the
linking rule and what a snapshot holds; the session fetches the snapshot (``Parser.snapshot_wanted``,
``VenueAdapter.snapshot_url``), retries it, and gives up on the connection after a few attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from tickerterm.core.events import Event, Gap


class Synced:
    """One product's sync state on one connection (venues subclass it for their linking state)."""

    __slots__ = ("buffer", "synced")

    def __init__(self) -> None:
        self.buffer: list[dict[str, Any]] = []
        """Diffs held while the snapshot is on its way (or since the link broke)."""
        self.synced = False

    def reset(self) -> None:
        """Forget the linking state (a venue's subclass clears its own ids)."""


S = TypeVar("S", bound=Synced)


class RestSynced(Generic[S]):
    """The REST-synced books of one connection, by product."""

    def __init__(
        self, channel: str, want: list[tuple[str, str]], make: Callable[[], S], limit: int = 50_000
    ) -> None:
        self.channel = channel
        """The channel name the snapshots are asked for on (``snapshot_url``'s ``channel``)."""
        self._want = want
        """The parser's ``snapshot_wanted`` list: the session fetches what is put there."""
        self._make = make
        self.limit = limit
        """Diffs held at most per book: past it they are dropped and a newer snapshot asked for."""
        self.books: dict[str, S] = {}

    def __contains__(self, product: object) -> bool:
        return product in self.books

    def get(self, product: str) -> S | None:
        return self.books.get(product)

    def start(self, product: str) -> S:
        """A book to sync from scratch (its first diff, or its subscription acknowledged)."""
        state = self.books[product] = self._make()
        self._want.append((self.channel, product))
        return state

    def hold(self, product: str, state: S, msg: dict[str, Any]) -> None:
        """A diff that arrived before the snapshot: kept to replay (bounded: past ``limit``, what was
        held is dropped and a newer snapshot asked for, since the one on its way is too old by then)."""
        if len(state.buffer) >= self.limit:
            state.buffer.clear()
            self._want.append((self.channel, product))
        state.buffer.append(msg)

    def lose(self, product: str, state: S, keep: dict[str, Any] | None = None) -> None:
        """The link is broken (diffs were lost): the book is rebuilt from a new snapshot; ``keep`` is
        the diff that broke it (a newer snapshot may cover it)."""
        state.synced = False
        state.reset()
        state.buffer = [keep] if keep is not None else []
        self._want.append((self.channel, product))

    def resync(self, product: str) -> None:
        """The session wants the book rebuilt (it was crossed, or a frame was malformed)."""
        state = self.books.get(product)
        if state is not None and state.synced:
            self.lose(product, state)

    def forget(self, products: list[str]) -> None:
        """``products`` left (or joined anew): a new stream syncs afresh, it is not a gap."""
        for product in products:
            self.books.pop(product, None)

    def load(
        self, product: str, state: S, replay: Callable[[dict[str, Any]], list[Event]], first: list[Event]
    ) -> list[Event]:
        """The snapshot is in (``first``: its events; the venue's subclass state already holds its id):
        the held diffs are replayed by ``replay`` while the book stays synced, the rest kept for the next
        snapshot. Only the snapshot's gaps are returned when the book did not come out synced, so a
        book that does not fit the stream is never shown."""
        state.synced = True
        held, state.buffer = state.buffer, []
        out = list(first)
        for msg in held:
            if state.synced:
                out.extend(replay(msg))
            else:
                state.buffer.append(msg)  # a gap while replaying: kept for the next snapshot
        if not state.synced:
            return [e for e in out if isinstance(e, Gap)]
        return out
