"""The WebSocket connection's read side: a venue's frames taken a socket read at a time.

websockets (``websockets.asyncio.client``) opens the connection: the proxy, TLS, the HTTP handshake and
the extensions it negotiates, and it keeps doing the control side for its whole life: pings and pongs,
the closing handshake, the close code, sending. What it does per message is the cost we measured
(bench/README.md: ~11 µs of CPU per message on the blast simulator, against a budget of 20 for the
whole path), so the data frames (text, binary, continuation) are split out of each socket read here,
without the per-frame generator, the message assembler's queue and a task switch per message: the
stream worker gets every message of one read at once (``FastConnection.recv_batch``).

``FrameReader`` is the sans-I/O part (RFC 6455 §5, RFC 7692 for compressed messages): bytes in,
whole messages out, the control frames handed back unchanged for websockets' protocol, any violation a
``WireError`` with the close code to fail the connection with (1002 protocol error, 1009 too big, 1007
bad compressed data). Its memory is bounded: a message's length is checked against the limit from its
header before its payload is waited for, a fragmented or compressed one as it grows.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.protocol import OPEN

from tickerterm.core.native import data_frames

__all__ = ["FastConnection", "FrameReader", "WireError"]

MESSAGE_COST = 64
"""What a message held costs beyond its bytes (the bytes object and its place in the list)."""
_TAIL = b"\x00\x00\xff\xff"
"""The end of a compressed message, left out by its sender (RFC 7692 §7.2.2)."""


class WireError(Exception):
    """The venue broke the WebSocket protocol: the connection fails with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FrameReader:
    """Server-to-client frames split out of a byte stream.

    ``feed(data)`` returns the whole messages the bytes completed, in order; the control frames they
    held (ping, pong, close: each whole, header included) wait in ``controls``. Nothing after a close
    frame is read. ``max_size`` bounds a
    message (after inflating, for a compressed one). ``inflate``: the connection negotiated
    permessage-deflate, so a message may come compressed (RSV1 on its first frame)."""

    __slots__ = (
        "_buf",
        "_inflater",
        "_parts",
        "_size",
        "_zipped",
        "closed",
        "controls",
        "inflate",
        "max_size",
    )

    def __init__(self, max_size: int, inflate: bool = False) -> None:
        self.max_size = max_size
        self.inflate = inflate
        self.controls: list[bytes] = []
        self.closed = False
        """A close frame came: what follows it is not read."""
        self._buf = bytearray()
        self._parts: list[bytes] | None = None
        """The fragments of a message in progress (None: none is)."""
        self._size = 0
        self._zipped = False
        self._inflater: Any = None

    @property
    def pending(self) -> int:
        """Bytes held: an incomplete frame and the fragments of an incomplete message."""
        return len(self._buf) + self._size

    def feed(self, data: bytes) -> list[bytes]:
        if self.closed:
            return []
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = data
        out: list[bytes] = []
        n = len(view)
        pos = 0
        limit = self.max_size
        while True:
            if self._parts is None:  # the common case, a run of whole plain messages (in C where built)
                pos = data_frames(view, pos, limit, out)
            if n - pos < 2:
                break
            b0 = view[pos]
            b1 = view[pos + 1]
            if b1 & 0x80:
                raise WireError(1002, "a masked frame from the server")
            length = b1 & 0x7F
            head = pos + 2
            if length >= 126:
                if length == 126:
                    if n - pos < 4:
                        break
                    length = (view[head] << 8) | view[head + 1]
                    head += 2
                else:
                    if n - pos < 10:
                        break
                    length = int.from_bytes(view[head : head + 8], "big")
                    head += 8
            opcode = b0 & 0x0F
            if opcode >= 8:
                if opcode > 10:
                    raise WireError(1002, f"unknown opcode {opcode}")
                if length > 125 or not b0 & 0x80 or b0 & 0x70:
                    raise WireError(1002, "a malformed control frame")
            elif length > limit:
                raise WireError(1009, f"a frame of {length} bytes (limit {limit})")
            end = head + length
            if end > n:
                break
            if opcode >= 8:
                self.controls.append(bytes(view[pos:end]))
                if opcode == 8:  # the venue's close: nothing after it is data (RFC 6455 §5.5.1)
                    self.closed = True
                    buf.clear()
                    self._parts, self._size = None, 0
                    return out
            elif (b0 == 0x81 or b0 == 0x82) and self._parts is None:  # a whole plain message
                out.append(bytes(view[head:end]))
            else:
                message = self._fragment(b0, opcode, bytes(view[head:end]))
                if message is not None:
                    out.append(message)
            pos = end
        if buf:
            del buf[:pos]
        elif pos < n:
            buf += view[pos:]
        return out

    def _fragment(self, b0: int, opcode: int, payload: bytes) -> bytes | None:
        """A frame of a fragmented or compressed message; the message once it is whole."""
        if b0 & 0x30 or (b0 & 0x40 and (not self.inflate or opcode == 0)):
            raise WireError(1002, "reserved bits set that no extension negotiated")
        if opcode > 2:
            raise WireError(1002, f"unknown opcode {opcode}")
        if opcode == 0:
            if self._parts is None:
                raise WireError(1002, "a continuation frame with no message in progress")
        elif self._parts is not None:
            raise WireError(1002, "a new message before the last one ended")
        else:
            self._parts = []
            self._size = 0
            self._zipped = bool(b0 & 0x40)
        self._size += len(payload)
        if self._size > self.max_size:  # compressed too: deflate never makes data much larger
            raise WireError(1009, f"a message of more than {self.max_size} bytes")
        self._parts.append(payload)
        if not b0 & 0x80:
            return None
        parts, self._parts, self._size = self._parts, None, 0
        message = parts[0] if len(parts) == 1 else b"".join(parts)
        return self._inflated(message) if self._zipped else message

    def _inflated(self, data: bytes) -> bytes:
        if self._inflater is None:
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        room = self.max_size + 1
        try:
            out: bytes = self._inflater.decompress(data + _TAIL, room)
        except zlib.error as exc:
            raise WireError(1007, f"a compressed message that does not inflate: {exc}") from None
        if len(out) > self.max_size or self._inflater.unconsumed_tail:
            raise WireError(1009, f"a message of more than {self.max_size} bytes inflated")
        return out


class FastConnection(ClientConnection):
    """websockets' client connection, its data frames read by a ``FrameReader`` once it is open.

    Up to the end of the handshake's response every byte goes to websockets; from there on data frames
    go to the reader and control frames back to websockets, whole, so it answers pings, matches pongs
    and runs the closing handshake as it always does. ``recv_batch()`` gives every message read so far.
    """

    high_water = 4 * 2**20
    """Bytes of messages waiting for the reader past which the socket is not read (a flood waits in
    the kernel, not in our memory). Each message counts ``MESSAGE_COST`` more than its length: a flood
    of empty frames is bounded too."""
    write_cap = 2**20
    """Bytes waiting to be sent past which the venue is taken not to read what we send (pongs to its
    own pings, say): the connection fails rather than queueing them without end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reader: FrameReader | None = None
        self._head_tail = b""
        self._ready: list[bytes] = []
        self._ready_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self.wire_error: WireError | None = None
        """Set when the venue broke the protocol and we failed the connection."""

    # --- the socket side --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is not None:
            self._frames(reader, data)
            return
        if self.protocol.state is not OPEN and self.response is None:
            # the handshake: websockets gets the response up to its blank line, the reader the rest
            seen = self._head_tail + data
            end = seen.find(b"\r\n\r\n")
            if end >= 0:
                cut = end + 4 - len(self._head_tail)
                super().data_received(data[:cut])
                if self.protocol.state is OPEN:
                    self._open()
                    assert self._reader is not None
                    if cut < len(data):
                        self._frames(self._reader, data[cut:])
                    return
                data = data[cut:]
            else:
                self._head_tail = seen[-3:]
        super().data_received(data)

    def _open(self) -> None:
        inflate = any(isinstance(e, PerMessageDeflate) for e in self.protocol.extensions)
        protocol = self.protocol  # the limit given to connect(max_size=...): websockets 16 renamed it
        size = getattr(protocol, "max_message_size", getattr(protocol, "max_size", None))
        self._reader = FrameReader(size if size is not None else 2**62, inflate)

    def _frames(self, reader: FrameReader, data: bytes) -> None:
        if self.protocol.state is not OPEN or self.wire_error is not None:
            # closing: websockets takes what follows (a close frame; data after it is dropped there)
            super().data_received(data)
            return
        try:
            messages = reader.feed(data)
        except WireError as exc:
            self.wire_error = exc
            messages = []
        if messages:
            self._ready += messages
            self._ready_bytes += sum(map(len, messages)) + MESSAGE_COST * len(messages)
            self._wake()
            if self._ready_bytes > self.high_water and not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()
        if reader.controls:
            controls, reader.controls = reader.controls, []
            for frame in controls:
                super().data_received(frame)
            if self.transport.get_write_buffer_size() > self.write_cap and self.wire_error is None:
                self.wire_error = WireError(1008, "the venue does not read what we send (pongs to its pings)")
        broken = self.wire_error
        if broken is not None:
            self.protocol.fail(broken.code, broken.reason[:120])
            self.send_data()
            if self.transport.get_write_buffer_size() > self.write_cap:
                self.transport.abort()  # what waits to be sent will never be read: not waited for
            else:  # the close frame goes out first; a venue that does not read it is not waited for long
                self.transport.close()
                self.loop.call_later(self.close_timeout or 0.0, self._give_up_closing)
        elif self.protocol.state is not OPEN:
            # the venue's close frame was answered; it should now close the socket: at most
            # ``close_timeout`` later it is closed from here (websockets leaves a reader waiting)
            self.loop.call_later(self.close_timeout or 0.0, self._give_up_closing)

    def _give_up_closing(self) -> None:
        if not self.connection_lost_waiter.done():
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the reader's side ------------------------------------------------------------------

    @property
    def splits_frames(self) -> bool:
        """Whether the frame reader took the data frames over (from the end of the handshake's response
        on; websockets reads them otherwise, one ``recv`` at a time)."""
        return self._reader is not None

    @property
    def queued_messages(self) -> int:
        """Whole messages waiting for ``recv_batch``."""
        return len(self._ready)

    @property
    def queued_bytes(self) -> int:
        """Bytes of whole messages waiting for ``recv_batch``, ``MESSAGE_COST`` more for each."""
        return self._ready_bytes

    async def recv_batch(self) -> list[bytes]:
        """Every message received so far (at least one: waits for it); ConnectionClosed once the
        connection has closed and every message before the close was taken."""
        while not self._ready:
            if self.protocol.state is not OPEN and self.connection_lost_waiter.done():
                raise self.protocol.close_exc
            if self._reader is None and self.protocol.state is OPEN:
                # not open through data_received (cannot happen with a real handshake): websockets reads
                return [await self.recv(decode=False)]
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch, self._ready, self._ready_bytes = self._ready, [], 0
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        return batch
