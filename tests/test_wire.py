"""The WebSocket read side (``tickerterm.stream.wire``): frames split out of socket reads.

Frames are made by websockets' own encoder (and its permessage-deflate), an implementation independent
of ours; broken ones by hand. Then through real sockets: a hand-written server that writes exact bytes
(frames in the same write as the handshake's response, a ping, a masked frame, a close), and websockets'
server for compression and a flood.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
import struct
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from tickerterm.core.events import BookUpdate, Closed, Event, RetryScheduled
from tickerterm.stream.feed import Feed
from tickerterm.stream.wire import MESSAGE_COST, FastConnection, FrameReader, WireError
from tickerterm.venues.coinbase import CoinbaseAdvancedTrade

from .conftest import fast_policy, take_until
from .test_worker import l2

# --- the reader alone ---------------------------------------------------------------------------


def encode(frames: list[Frame], deflate: PerMessageDeflate | None = None) -> bytes:
    """Server frames as websockets writes them (compressed by its extension when given)."""
    extensions = [deflate] if deflate is not None else None
    return b"".join(frame.serialize(mask=False, extensions=extensions) for frame in frames)


def deflater() -> PerMessageDeflate:
    return PerMessageDeflate(False, False, 15, 15)


def raw(b0: int, payload: bytes, *, masked: bool = False, length: int | None = None) -> bytes:
    """A frame written by hand: first byte ``b0``, the length as sent (``length``: a lie about it)."""
    n = len(payload) if length is None else length
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = bytes([b0, mask_bit | n])
    elif n < 2**16:
        head = bytes([b0, mask_bit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mask_bit | 127]) + struct.pack("!Q", n)
    if masked:
        head += b"\x00\x00\x00\x00"
    return head + payload


def feed_in_pieces(reader: FrameReader, data: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if start < cut <= len(data):
            out += reader.feed(data[start:cut])
            start = cut
    return out


sizes = st.one_of(st.integers(0, 300), st.sampled_from([125, 126, 127, 65535, 65536, 70000]))
messages = st.lists(
    st.tuples(
        st.booleans(),  # text or binary
        sizes,
        st.integers(1, 4),  # fragments
        st.booleans(),  # compressed (when the connection negotiated it)
        st.booleans(),  # a ping before it
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(messages, st.booleans(), st.lists(st.integers(0, 400_000), max_size=30), st.randoms())
def test_any_frames_cut_anywhere_come_out_whole_and_in_order(
    spec: list[tuple[bool, int, int, bool, bool]], inflate: bool, cuts: list[int], rnd: Any
) -> None:
    deflate = deflater() if inflate else None
    wire, want, pings = b"", [], []
    for n, (text, size, parts, compress, ping) in enumerate(spec):
        body = bytes(rnd.getrandbits(8) for _ in range(min(size, 300))) * (size // 300 + 1)
        body = body[:size] if not text else (f"{n}:" + "x" * size).encode()
        want.append(body)
        if ping:
            pings.append(encode([Frame(Opcode.PING, b"p%d" % n)]))
            wire += pings[-1]
        step = max(1, len(body) // parts)
        chunks = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
        frames = [
            Frame(
                (Opcode.TEXT if text else Opcode.BINARY) if i == 0 else Opcode.CONT,
                c,
                fin=i == len(chunks) - 1,
            )
            for i, c in enumerate(chunks)
        ]
        wire += encode(frames, deflate if compress else None)
    reader = FrameReader(max_size=2**20, inflate=inflate)
    assert feed_in_pieces(reader, wire, cuts) == want
    assert reader.controls == pings
    assert reader.pending == 0


def test_nothing_after_the_venue_s_close_frame_is_data() -> None:
    close = encode([Frame(Opcode.CLOSE, struct.pack("!H", 1000))])
    reader = FrameReader(max_size=2**20)
    wire = encode([Frame(Opcode.TEXT, b"before")]) + close + encode([Frame(Opcode.TEXT, b"after")])
    assert reader.feed(wire[:-3]) == [b"before"]
    assert reader.feed(wire[-3:] + encode([Frame(Opcode.TEXT, b"later")])) == []
    assert reader.controls == [close] and reader.pending == 0


def test_a_frame_longer_than_the_limit_is_refused_from_its_header_before_its_payload_comes() -> None:
    reader = FrameReader(max_size=1000)
    with pytest.raises(WireError) as err:
        reader.feed(raw(0x82, b"", length=2**40)[:10])  # ten bytes: the header only
    assert err.value.code == 1009
    assert reader.pending <= 10


def test_a_fragmented_message_is_refused_as_it_grows_past_the_limit() -> None:
    reader = FrameReader(max_size=1000)
    first = encode([Frame(Opcode.BINARY, b"a" * 400, fin=False), Frame(Opcode.CONT, b"b" * 400, fin=False)])
    assert reader.feed(first) == []
    with pytest.raises(WireError) as err:
        reader.feed(encode([Frame(Opcode.CONT, b"c" * 400)]))
    assert err.value.code == 1009


def test_a_compressed_message_that_never_ends_is_refused_as_it_grows() -> None:
    reader = FrameReader(max_size=10_000, inflate=True)
    first = raw(0x41, b"\x00" * 1000)  # RSV1, not FIN: a compressed message begins
    assert reader.feed(first) == []
    with pytest.raises(WireError) as err:
        for _ in range(100):
            reader.feed(raw(0x00, b"\x00" * 1000))  # continuations, none the last
    assert err.value.code == 1009
    assert reader.pending <= 11_000


def test_a_compressed_message_that_inflates_past_the_limit_is_refused_without_being_held() -> None:
    bomb = encode([Frame(Opcode.BINARY, b"\0" * (50 * 2**20))], deflater())  # 50 MiB of zeros
    assert len(bomb) < 100_000
    reader = FrameReader(max_size=2**20, inflate=True)
    with pytest.raises(WireError) as err:
        reader.feed(bomb)
    assert err.value.code == 1009


def test_a_compressed_message_that_does_not_inflate_is_refused() -> None:
    reader = FrameReader(max_size=2**20, inflate=True)
    with pytest.raises(WireError) as err:
        reader.feed(raw(0xC1, b"\xff\xfe\xfd not deflate"))
    assert err.value.code == 1007


@pytest.mark.parametrize(
    ("data", "inflate", "code", "words"),
    [
        (raw(0x81, b"hi", masked=True), False, 1002, "masked"),
        (raw(0x83, b"hi"), False, 1002, "opcode 3"),
        (raw(0x8B, b""), False, 1002, "opcode 11"),
        (raw(0xC1, b"hi"), False, 1002, "reserved bits"),  # RSV1 with nothing negotiated
        (raw(0xA1, b"hi"), True, 1002, "reserved bits"),  # RSV2: no extension has it
        (raw(0x80, b"hi"), False, 1002, "continuation"),
        (raw(0x01, b"hi") + raw(0x81, b"again"), False, 1002, "before the last one ended"),
        (raw(0x09, b"ping"), False, 1002, "control frame"),  # a control frame fragmented
        (raw(0x89, b"x" * 126), False, 1002, "control frame"),  # a control frame too long
        (raw(0x01, b"hi") + raw(0xC0, b"hi"), True, 1002, "reserved bits"),  # RSV1 on a continuation
    ],
)
def test_frames_that_break_the_protocol_fail_the_connection_with_its_code(
    data: bytes, inflate: bool, code: int, words: str
) -> None:
    with pytest.raises(WireError) as err:
        FrameReader(max_size=2**20, inflate=inflate).feed(data)
    assert err.value.code == code
    assert words in err.value.reason


# --- through real sockets -----------------------------------------------------------------------

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """A frame from the client (masked, as a client's must be): its opcode and payload."""
    b0, b1 = await reader.readexactly(2)
    assert b1 & 0x80, "a client frame must be masked"
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4)
    data = await reader.readexactly(n)
    return b0 & 0x0F, bytes(c ^ mask[i % 4] for i, c in enumerate(data))


async def until_closed(reader: asyncio.StreamReader) -> None:
    """Read the client's frames until its close frame (then the server closes the socket)."""
    while (await read_client_frame(reader))[0] != Opcode.CLOSE:
        pass


class RawVenue:
    """A WebSocket server written by hand: it answers the handshake with ``first`` in the same write,
    then runs ``script`` on the socket; what the client sends is read by the script itself."""

    def __init__(self, script: Script, first: bytes = b"", dribble: bool = False) -> None:
        self.script, self.first, self.dribble = script, first, dribble
        """``dribble``: the handshake's response goes out a byte a write (every cut a read can make)."""
        self.server: asyncio.Server | None = None
        self.connections = 0

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            response = (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            if self.dribble:
                for i in range(len(response)):
                    writer.write(response[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(0.001)
                writer.write(self.first)
            else:
                writer.write(response + self.first)
            await writer.drain()
            await self.script(reader, writer, head)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("dribble", [False, True])
async def test_frames_in_the_handshake_response_s_write_and_frames_cut_byte_by_byte_arrive_in_order(
    dribble: bool,
) -> None:
    texts = [f'{{"n":{n},"pad":"{"x" * (n * 37)}"}}'.encode() for n in range(12)]
    frames = [encode([Frame(Opcode.TEXT, t)]) for t in texts]

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        rest = b"".join(frames[3:])
        for i in range(len(rest)):  # one byte a write: every cut a socket read can make
            writer.write(rest[i : i + 1])
            if i % 7 == 0:
                await writer.drain()
                await asyncio.sleep(0)
        await writer.drain()
        await until_closed(reader)

    async with RawVenue(script, first=b"".join(frames[:3]), dribble=dribble) as url:
        async with connect(url, create_connection=FastConnection, compression=None) as ws:
            assert isinstance(ws, FastConnection)
            got: list[bytes] = []
            async with asyncio.timeout(10):
                while len(got) < len(texts):
                    got += await ws.recv_batch()
            assert ws.splits_frames  # not websockets' recv() behind recv_batch
    assert got == texts


async def test_a_ping_between_data_frames_is_answered_and_the_data_still_arrives() -> None:
    pongs: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(encode([Frame(Opcode.TEXT, b"one"), Frame(Opcode.PING, b"are you there")]))
        writer.write(encode([Frame(Opcode.TEXT, b"two")]))
        await writer.drain()
        while True:
            opcode, data = await read_client_frame(reader)
            if opcode == Opcode.CLOSE:
                return
            if opcode == Opcode.PONG:
                pongs.append(data)
                writer.write(encode([Frame(Opcode.TEXT, b"three")]))
                await writer.drain()

    async with RawVenue(script) as url:
        async with connect(url, create_connection=FastConnection, compression=None, ping_interval=None) as ws:
            assert isinstance(ws, FastConnection)
            got: list[bytes] = []
            async with asyncio.timeout(10):
                while len(got) < 3:
                    got += await ws.recv_batch()
    assert got == [b"one", b"two", b"three"]
    assert pongs == [b"are you there"]


async def test_compressed_messages_from_a_real_server_arrive_inflated() -> None:
    texts = [json.dumps({"n": n, "levels": [["64000.5", "0.25"]] * (n * 20)}).encode() for n in range(30)]

    async def venue(ws: ServerConnection) -> None:
        for t in texts:
            await ws.send(t.decode())
        await ws.wait_closed()

    async with serve(venue, "127.0.0.1", 0, compression="deflate") as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", create_connection=FastConnection) as ws:
            assert isinstance(ws, FastConnection)
            assert ws.protocol.extensions, "the server did not agree to compress"
            got: list[bytes] = []
            async with asyncio.timeout(10):
                while len(got) < len(texts):
                    got += await ws.recv_batch()
    assert got == texts


async def test_a_reader_that_falls_behind_stops_the_socket_instead_of_queueing_a_flood() -> None:
    body = b"y" * 10_000
    count = 3000  # 30 MB, far past the high-water mark

    async def venue(ws: ServerConnection) -> None:
        for n in range(count):
            await ws.send(body + str(n).encode())
        await ws.wait_closed()

    async with serve(venue, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", create_connection=FastConnection, max_size=None) as ws:
            assert isinstance(ws, FastConnection)
            await asyncio.sleep(1.0)  # not reading
            held = ws.queued_bytes
            assert 0 < held <= FastConnection.high_water + 2**20, held
            got: list[bytes] = []
            async with asyncio.timeout(20):
                while len(got) < count:
                    got += await ws.recv_batch()
    assert got == [body + str(n).encode() for n in range(count)]


class SmallFrames(CoinbaseAdvancedTrade):
    max_frame_size: ClassVar[int] = 1000


def feed_for(url: str, adapter_class: type[CoinbaseAdvancedTrade] = CoinbaseAdvancedTrade) -> Feed:
    adapter = adapter_class(urls={"market": url, "user": url})
    return Feed(adapter, ["BTC-USD"], ["level2"], policy=fast_policy(), seed=1)


async def closed_and_retried(feed: Feed) -> Closed:
    seen = await take_until(feed, lambda e: isinstance(e, RetryScheduled))
    closed = [e for e in seen if isinstance(e, Closed)]
    assert closed, seen
    return closed[0]


async def test_a_frame_past_the_venue_s_limit_closes_with_1009_said_and_reconnects() -> None:
    sent_back: list[tuple[int, bytes]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(encode([Frame(Opcode.BINARY, b"z" * 5000)]))
        await writer.drain()
        while True:
            sent_back.append(await read_client_frame(reader))

    venue = RawVenue(script)
    async with venue as url, feed_for(url, SmallFrames) as feed:
        closed = await closed_and_retried(feed)
        await take_until(feed, lambda e: isinstance(e, Closed) and e is not closed)  # it goes on
    assert closed.code == 1009
    assert closed.reason.startswith("message too big: a frame of 5000 bytes (limit 1000)"), closed.reason
    closes = [data for opcode, data in sent_back if opcode == Opcode.CLOSE]
    assert closes and struct.unpack("!H", closes[0][:2])[0] == 1009  # the venue was told why
    assert venue.connections >= 2


async def test_a_venue_that_floods_pings_and_reads_no_pong_is_closed_not_queued_for() -> None:
    ping = encode([Frame(Opcode.PING, b"p" * 125)])

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        for _ in range(400):  # up to 400 x 500 pings (25 MB of pongs owed), never reading one
            writer.write(ping * 500)
            await writer.drain()

    async with RawVenue(script) as url:
        async with connect(url, create_connection=FastConnection, compression=None, ping_interval=None) as ws:
            assert isinstance(ws, FastConnection)
            async with asyncio.timeout(30):
                with pytest.raises(ConnectionClosed):
                    while True:
                        await ws.recv_batch()
            assert ws.transport.get_write_buffer_size() <= FastConnection.write_cap + 2**16
    assert ws.wire_error is not None and ws.wire_error.code == 1008


async def test_a_flood_of_empty_frames_neither_freezes_the_loop_nor_piles_up() -> None:
    """Reads of thousands of tiny frames: the event loop gets a turn every few hundred (the screen and
    keys stay live), and what waits for the session is bounded by count too, not only by bytes."""
    empty = encode([Frame(Opcode.TEXT, b"")]) * 10_000  # 20 kB, 10,000 frames
    lags: list[float] = []
    queued: list[int] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        for _ in range(60):  # 600,000 frames
            writer.write(empty)
            await writer.drain()
        await until_closed(reader)

    async def ticking(feed: Feed) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)
            ws = next(iter(feed.connections.values()))._ws
            if ws is not None:
                queued.append(ws.queued_messages)

    async with RawVenue(script) as url, feed_for(url) as feed:
        clock = asyncio.create_task(ticking(feed))
        await asyncio.sleep(2.5)
        clock.cancel()
        health = next(iter(feed.store.health.values()))
    assert health.malformed > 50_000, health.malformed  # the frames were taken (each one counted)
    assert max(lags) < 0.5, max(lags)  # 1.4 s a read when the loop got no turn
    # past the mark the socket is not read: at most one read more (256 KiB of 2-byte frames) waits
    most = FastConnection.high_water // MESSAGE_COST + 256 * 1024 // 2
    assert max(queued) <= most, max(queued)


async def test_a_masked_frame_from_the_venue_closes_with_1002_said() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        writer.write(raw(0x81, b"{}", masked=True))
        await writer.drain()
        await reader.read()

    async with RawVenue(script) as url, feed_for(url) as feed:
        closed = await closed_and_retried(feed)
    assert closed.code == 1002
    assert closed.reason == "protocol error: a masked frame from the server"


@pytest.mark.parametrize("hangs_on", [False, True])
async def test_the_venue_s_close_code_and_reason_reach_the_health_events(hangs_on: bool) -> None:
    """``hangs_on``: the venue never closes the socket after its close frame was answered; the
    connection is closed from our side ``close_timeout`` (2 s) later, not left to the stale watchdog."""
    reason = "maintenance: back soon"
    answered: list[int] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        await read_client_frame(reader)  # a subscription
        writer.write(encode([Frame(Opcode.CLOSE, struct.pack("!H", 4001) + reason.encode())]))
        await writer.drain()
        while True:
            opcode, data = await read_client_frame(reader)
            if opcode == Opcode.CLOSE:
                answered.append(struct.unpack("!H", data[:2])[0])
                if not hangs_on:
                    return  # as a server should: the socket closes after the closing handshake
                await reader.read()

    async with RawVenue(script) as url:
        adapter = CoinbaseAdvancedTrade(urls={"market": url, "user": url})
        policy = fast_policy(stale_after=30.0)
        async with Feed(adapter, ["BTC-USD"], ["level2"], policy=policy, seed=1) as feed:
            started = asyncio.get_running_loop().time()
            closed = await closed_and_retried(feed)
            took = asyncio.get_running_loop().time() - started
    assert (closed.code, closed.reason) == (4001, reason)  # made inert where it is shown (test_terminal)
    assert answered and answered[0] == 4001  # websockets answered the close, as RFC 6455 asks
    assert took < 6.0


def test_the_inflater_keeps_its_window_across_messages() -> None:
    """A venue that keeps its compression context refers back to earlier messages."""
    deflate = deflater()
    first, second = b"the same long text " * 50, b"the same long text " * 50 + b"!"
    wire = encode([Frame(Opcode.TEXT, first), Frame(Opcode.TEXT, second)], deflate)
    reader = FrameReader(max_size=2**20, inflate=True)
    assert reader.feed(wire) == [first, second]
    # the second came out smaller than on its own: it did refer back
    alone = zlib.compressobj(wbits=-15)
    assert len(wire) < 2 * len(alone.compress(first) + alone.flush(zlib.Z_SYNC_FLUSH))


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 with a certificate made here, and the file a client trusts."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


async def test_a_tls_venue_streams_through_the_same_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wss://: asyncio's TLS layer hands the decrypted bytes to the same reader; the book is the venue's."""
    context, cert_file = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the client trusts it as it trusts the system's
    levels = [("bid", f"{100 - n}.5", "1") for n in range(30)] + [
        ("offer", f"{101 + n}.5", "2") for n in range(30)
    ]
    moves = [("bid", "100.5", "0"), ("bid", "100.25", "3"), ("offer", "101.5", "0.5")]

    async def venue(ws: ServerConnection) -> None:
        async for raw in ws:
            if json.loads(raw).get("channel") == "level2":
                await ws.send(l2(0, "snapshot", levels))
                for n, move in enumerate(moves):
                    await ws.send(l2(n + 1, "update", [move]))
        await ws.wait_closed()

    async with serve(venue, "127.0.0.1", 0, ssl=context) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"wss://127.0.0.1:{port}"
        adapter = CoinbaseAdvancedTrade(urls={"market": url, "user": url})
        async with Feed(adapter, ["BTC-USD"], ["level2"], policy=fast_policy(), seed=1) as feed:
            await take_until(feed, lambda e: isinstance(e, BookUpdate) and e.changes[0][1] == "101.5")
            book = feed.store.book("coinbase", "BTC-USD")
            assert book.state == "ok"
            assert book.best_bid == ("100.25", "3") and book.best_ask == ("101.5", "0.5")
            assert len(book.bids) == 30 and len(book.asks) == 30


async def test_a_read_stopped_at_a_turn_hands_on_every_frame_it_took() -> None:
    """The worker gives the event loop a turn every ``YIELD_EVERY`` frames of a read; a connection that
    ends during that turn stops there, with every frame taken so far counted and its events handed on."""
    from tests.hostile.fake import VENUES
    from tickerterm.core.events import Trade
    from tickerterm.core.store import Store
    from tickerterm.stream import worker

    handed: list[Event] = []
    conn = worker.Connection(
        CoinbaseAdvancedTrade(), "market", Store(), products=["BTC-USD"], sink=handed.extend
    )
    conn.subs.add("market_trades", ["BTC-USD"])
    session = conn.start_session()
    raws = [json.dumps(VENUES["coinbase"].trade(n)).encode() for n in range(3 * worker.YIELD_EVERY)]

    def end() -> None:
        conn._end = worker._End(None, "stopped in the turn")

    asyncio.get_running_loop().call_soon(end)  # runs at the read's first turn
    await conn._read(session, raws)
    trades = [e for e in handed if isinstance(e, Trade)]
    assert len(trades) == worker.YIELD_EVERY  # the frame before the turn included
    assert conn.store.health[conn.conn_id].messages == worker.YIELD_EVERY


async def test_a_reads_frames_are_journaled_in_order_with_what_came_between_them() -> None:
    """The frames of a read are journaled together (one call for many frames, not one a frame), and
    before anything that can come between two frames: an awaited sink, an action of the session, the
    loop's turn. The journal is what a replay plays in order: a timer entry that came at the turn, or
    an entry written while the sink was awaited, stands between the same frames it stood between live."""
    from tests.hostile.fake import VENUES
    from tickerterm.core.store import Store
    from tickerterm.stream import worker

    entries: list[tuple[str, Any]] = []
    calls = 0

    class Journal:
        def record(
            self, conn: str, venue: str, now: float, kind: str, arg: Any = None, body: Any = None
        ) -> None:
            entries.append((kind, body if kind == "frame" else arg))

        def frames(self, conn: str, venue: str, now: float, raws: list[bytes]) -> None:
            nonlocal calls
            calls += 1
            entries.extend(("frame", raw) for raw in raws)

    handed = 0

    async def awaited() -> None:
        conn._journal("control", "while the sink was awaited")

    def sink(events: list[Event]) -> Any:
        nonlocal handed
        handed += 1
        return awaited() if handed == 5 else None

    conn = worker.Connection(CoinbaseAdvancedTrade(), "market", Store(), products=["BTC-USD"], sink=sink)
    conn.subs.add("market_trades", ["BTC-USD"])
    session = conn.start_session()
    conn.journal = Journal()
    entries.clear()
    raws = [json.dumps(VENUES["coinbase"].trade(n)).encode() for n in range(2 * worker.YIELD_EVERY + 10)]
    asyncio.get_running_loop().call_soon(lambda: conn._journal("timer"))  # runs at the read's first turn
    await conn._read(session, raws)
    frames = [body for kind, body in entries if kind == "frame"]
    assert frames == raws  # every frame once, in order
    others = {kind: i for i, (kind, _) in enumerate(entries) if kind != "frame"}
    assert others == {"control": 5, "timer": worker.YIELD_EVERY + 1}
    assert calls == 4  # after the 5th frame, at each of the two turns, at the end
