"""Reads straight from a DataNode's data-transfer port: HDFS's own DataTransferProtocol
(``OP_READ_BLOCK``), the protocol Hadoop's Java client reads blocks with, for files that
never change once closed (sealed volumes).

A WebHDFS read is two HTTP requests (the NameNode names a DataNode, then the DataNode's
HTTP server opens the file through a client of its own, which asks the NameNode again
where the blocks are). Here the block map of a file (its blocks, their ids and
generation stamps, and where their replicas are: ``GET_BLOCK_LOCATIONS``; for an
erasure-coded file also its cell size and data units, from ``GETFILESTATUS``) is asked
for once and kept, and a needle is one TCP request to a DataNode that holds its bytes:
no NameNode and no HTTP server on the way (Haystack's and f4's read: the location of a
volume is cached, a photo is one read from a storage machine).

The wire format (Hadoop 3, security off: no SASL handshake, an empty block token):

    request   version 28 (2 bytes, big-endian), opcode 81 (1 byte), then an
              OpReadBlockProto, varint-length-delimited
    response  a BlockOpResponseProto, varint-length-delimited: the status, and on
              success the checksum type, bytes per checksum and the chunk offset the
              DataNode starts at (the start of the chunk holding the wanted offset)
    packets   4-byte payload length (itself included), 2-byte header length, a
              PacketHeaderProto (offset in block, seqno, last, data length), the
              checksums of the packet's chunks, its data; an empty packet marks the end
    closing   a ClientReadStatusProto (CHECKSUM_OK once every chunk was verified); the
              DataNode then waits 4 s for another op on the same connection, and
              ``Connections`` keeps it for the next read

Every chunk is checked against its CRC32C (or CRC32) as Hadoop's client checks it; a
mismatch, like any failure of a replica, moves the read to the next replica from where
it got to. A DataNode that offers no checksums (CHECKSUM_NULL) is such a failure: its
bytes are never served. Nothing the DataNode says is allocated before it is checked
against the read: a packet longer than the rest of the range asked for (to the end of
its last chunk) is refused from its length prefix. Protocol messages are encoded and
decoded here by hand (a few fields of proto2 messages), not through a protobuf runtime.

An erasure-coded block group is striped: cell ``c`` of the group (``cell_size`` bytes)
is in internal block ``c % data_units``, whose id is the group's plus that index, at
``(c // data_units) * cell_size``. The NameNode lists a group's DataNodes in index order
while the group is whole; which one holds which index is confirmed by asking (a
DataNode without it answers "replica not found") and remembered. A group missing a data
block is not decoded here: that read fails over to WebHDFS, whose DataNode reconstructs
it from parity.
"""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from typing import Any

import google_crc32c

DATA_TRANSFER_VERSION = 28  # DataTransferProtocol.DATA_TRANSFER_VERSION, Hadoop 3
OP_READ_BLOCK = 81
CLIENT_NAME = "instastore"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0  # a packet that takes longer: the DataNode is stuck; try another
MAX_RESPONSE_BYTES = 64 * 1024  # a BlockOpResponseProto: a status, a few numbers, a message
MAX_PACKET_HEADER_BYTES = 256  # a PacketHeaderProto is 27 bytes; room for unknown fields
# Bytes per checksum a DataNode may use (dfs.bytes-per-checksum, 512 by default): a
# packet may carry this much past the range asked for (the rest of its last chunk).
MAX_BYTES_PER_CHECKSUM = 64 * 1024
IDLE_S = 3.0  # a connection kept longer is not used again (the DataNode waits 4 s)
IDLE_PER_DATANODE = 16  # connections kept per DataNode, at most

STATUS_SUCCESS = 0
STATUS_CHECKSUM_OK = 6
CHECKSUM_NULL, CHECKSUM_CRC32, CHECKSUM_CRC32C = 0, 1, 2
_CHECKSUM_OK = b"\x02\x08\x06"  # ClientReadStatusProto{status: CHECKSUM_OK}, delimited
_UINT64 = 0xFFFFFFFFFFFFFFFF
_PACKET_LENGTHS = struct.Struct(">iH")
_CRC = struct.Struct(">I")
_HEADER_FIELDS = {1: "offset", 2: "seqno", 3: "last", 4: "data_len"}

Json = dict[str, Any]


class BlockReadError(Exception):
    """One replica could not serve a read (gone, refused, replica not found, a bad
    checksum, a broken stream): the caller tries another, or WebHDFS."""


# ---- the block map of a file ------------------------------------------------------------


@dataclass(frozen=True)
class Striping:
    cell_size: int
    data_units: int


@dataclass(frozen=True)
class Block:
    """One block of a file (a block group, when striped): where it starts in the file,
    its length there, and the transfer addresses (``ip:port``) of its DataNodes."""

    pool: str
    block_id: int
    generation: int
    start: int
    length: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Read:
    """One contiguous read of ``length`` bytes at ``offset`` in one (internal) block,
    with the DataNodes to try, in order."""

    pool: str
    block_id: int
    generation: int
    offset: int
    length: int
    addresses: tuple[str, ...]


@dataclass
class BlockMap:
    length: int
    blocks: tuple[Block, ...]
    striping: Striping | None = None
    # internal block id -> the address that served it (striped groups: confirmed indexes)
    holders: dict[int, str] = field(default_factory=dict)
    # when the NameNode gave this map (time.monotonic()), and the (internal) blocks that no
    # DataNode in it served since: reads of those go to WebHDFS until the map is asked again
    fetched: float = field(default_factory=time.monotonic, compare=False)
    unserved: set[int] = field(default_factory=set, compare=False)

    def age(self) -> float:
        return time.monotonic() - self.fetched

    @classmethod
    def from_json(cls, located: Json, status: Json) -> BlockMap:
        """From the NameNode's ``GET_BLOCK_LOCATIONS`` (its ``LocatedBlocks``) and the
        file's ``GETFILESTATUS`` (its erasure-coding policy, if any)."""
        blocks = tuple(
            Block(
                pool=str(b["block"]["blockPoolId"]),
                block_id=int(b["block"]["blockId"]),
                generation=int(b["block"]["generationStamp"]),
                start=int(b["startOffset"]),
                length=int(b["block"]["numBytes"]),
                addresses=tuple(f"{d['ipAddr']}:{d['xferPort']}" for d in b["locations"]),
            )
            for b in located["locatedBlocks"]
        )
        policy = status.get("ecPolicyObj") or {}
        striping = None
        if status.get("ecBit") or any(b.block_id < 0 for b in blocks):
            if not (policy.get("cellSize") and policy.get("numDataUnits")):
                # A block group read as a plain block would serve another cell's bytes.
                raise BlockReadError("an erasure-coded file without its cell layout")
            striping = Striping(int(policy["cellSize"]), int(policy["numDataUnits"]))
        length = int(located["fileLength"])
        covered = 0
        for block in blocks:
            if block.start != covered:
                raise BlockReadError(f"a block map with a gap at byte {covered}")
            covered += block.length
        if covered != length:
            raise BlockReadError(f"a block map of {covered} bytes for a file of {length}")
        return cls(length, blocks, striping)

    def reads(self, offset: int, length: int) -> Iterator[Read]:
        """The block reads that make up ``length`` bytes from ``offset`` of the file."""
        end = offset + length
        for block in self.blocks:
            lo, hi = max(offset, block.start), min(end, block.start + block.length)
            if lo >= hi:
                continue
            if self.striping is None:
                yield Read(
                    block.pool,
                    block.block_id,
                    block.generation,
                    lo - block.start,
                    hi - lo,
                    self._ordered(block.block_id, block.addresses),
                )
            else:
                yield from self._striped(block, lo - block.start, hi - block.start)

    def _striped(self, group: Block, lo: int, hi: int) -> Iterator[Read]:
        assert self.striping is not None
        cell, units = self.striping.cell_size, self.striping.data_units
        while lo < hi:
            index, stripe = (lo // cell) % units, lo // (cell * units)
            n = min(hi - lo, cell - lo % cell)
            guess = group.addresses[index : index + 1]  # index order while the group is whole
            internal = group.block_id + index
            yield Read(
                group.pool,
                internal,
                group.generation,
                stripe * cell + lo % cell,
                n,
                self._ordered(internal, guess + group.addresses),
            )
            lo += n

    def _ordered(self, block_id: int, addresses: tuple[str, ...]) -> tuple[str, ...]:
        known = self.holders.get(block_id)
        first = (known,) if known is not None else ()
        return tuple(dict.fromkeys(first + addresses))  # no address twice, order kept


# ---- one read from one DataNode ---------------------------------------------------------


Kept = tuple[float, asyncio.StreamReader, asyncio.StreamWriter]  # since when, the connection


class Connections:
    """Connections to DataNodes' transfer ports kept between reads, as Hadoop's client
    keeps them (its ``PeerCache``): after a read of a whole range and the client's
    CHECKSUM_OK, the DataNode waits ``dfs.datanode.socket.reuse.keepalive`` (4 s) for the
    next op on the same connection, so the next read skips the TCP handshake and the
    DataNode's new thread. A connection idle for ``idle_s`` is not used again (Hadoop's
    ``dfs.client.socketcache.expiryMsec`` is 3 s, under the DataNode's 4), nor one seen
    closed or reset at the other end; one the DataNode closed unseen costs one failed
    write and a new connection, never the read. At most every ``idle_s``, a keep or take
    closes the connections past their time to every DataNode, so none stays open
    half-closed for long, and a read does not walk them all."""

    def __init__(self, idle_s: float = IDLE_S, per_datanode: int = IDLE_PER_DATANODE) -> None:
        self.idle_s = idle_s
        self.per_datanode = per_datanode
        self._idle: dict[str, list[Kept]] = {}
        self._swept = time.monotonic()
        self.closed = False
        self.opened = 0  # connections made and kept ones used (metrics for tests and benches)
        self.reused = 0

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._idle.values())

    async def open(self, address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, _, port = address.rpartition(":")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port)), CONNECT_TIMEOUT_S
        )
        self.opened += 1
        return reader, writer

    def take(self, address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The most recently kept connection to ``address`` that is still young and not
        closed at the other end (as far as this side has seen), if any."""
        young_from = self._sweep()
        kept = self._idle.get(address, [])
        while kept:
            since, reader, writer = kept.pop()
            if since >= young_from and _usable(reader, writer):
                self.reused += 1
                return reader, writer
            writer.close()
        self._idle.pop(address, None)
        return None

    def give(
        self, address: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Keep the connection of a read that went to the end (a pool that keeps none, or
        is closed, closes it)."""
        if self.closed or not _usable(reader, writer):
            writer.close()
            return
        self._sweep()
        kept = self._idle.setdefault(address, [])
        kept.append((time.monotonic(), reader, writer))
        while len(kept) > self.per_datanode:
            kept.pop(0)[2].close()
        if not kept:
            del self._idle[address]

    def _sweep(self) -> float:
        """Close the kept connections past their time or seen closed, to every DataNode,
        if the last sweep is ``idle_s`` old; the time from which a connection is young."""
        now = time.monotonic()
        young_from = now - self.idle_s
        if now - self._swept < self.idle_s:
            return young_from
        self._swept = now
        for address, kept in list(self._idle.items()):
            keep = []
            for item in kept:
                since, reader, writer = item
                if since >= young_from and _usable(reader, writer):
                    keep.append(item)
                else:
                    writer.close()
            if keep:
                self._idle[address] = keep
            else:
                del self._idle[address]
        return young_from

    def close(self) -> None:
        self.closed = True
        for kept in self._idle.values():
            for _, _, writer in kept:
                writer.close()
        self._idle.clear()


def _usable(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    return not (reader.at_eof() or reader.exception() is not None or writer.is_closing())


async def read_block(
    address: str, read: Read, connections: Connections | None = None
) -> AsyncGenerator[bytes, None]:
    """Stream ``read.length`` bytes at ``read.offset`` of one block from the DataNode at
    ``address``, every chunk checked against its checksum and every packet against where
    it should start. ``BlockReadError`` on any failure, whatever the DataNode (or whatever
    now listens at its address) sent (the bytes yielded before it are good). With
    ``connections``, a kept connection is used if there is one, and the connection is
    kept after a read that went to the end."""
    pool = connections if connections is not None else Connections(per_datanode=0)
    writer = None
    kept = False
    try:
        request = read_request(read)
        reader, writer, response = await _request(pool, address, request)
        status = _first(response, 1, -1, int)
        if status != STATUS_SUCCESS:
            message = _first(response, 5, b"", bytes).decode(errors="replace")
            raise BlockReadError(f"{address}: status {status}: {message[:300]}")
        if 4 not in response:
            raise BlockReadError(f"{address}: a success without its checksum information")
        info = _decode(_first(response, 4, b"", bytes))
        checksum = _decode(_first(info, 1, b"", bytes))
        kind, per_chunk = _first(checksum, 1, -1, int), _first(checksum, 2, 0, int)
        if kind not in (CHECKSUM_CRC32, CHECKSUM_CRC32C):
            # SECURITY: unchecksummed bytes could be anything; never serve them.
            raise BlockReadError(f"{address}: checksum type {kind}, not CRC32 or CRC32C")
        at = _first(info, 2, -1, int)  # the DataNode starts at the chunk holding the offset
        if not 0 < per_chunk <= MAX_BYTES_PER_CHECKSUM or not 0 <= read.offset - at < per_chunk:
            raise BlockReadError(f"{address}: chunk offset {at} of {per_chunk} for {read}")
        end = read.offset + read.length
        skip, left = read.offset - at, read.length
        while True:
            most = -((at - end) // per_chunk) * per_chunk  # the whole chunks left to the end
            header, sums, data = await _timed(_packet(reader, most, per_chunk))
            if header["offset"] != at:
                raise BlockReadError(f"{address}: a packet at {header['offset']}, not {at}")
            at += len(data)
            if bool(header["last"]) != (not data):  # the DataNode marks the empty one last
                last = header["last"]
                raise BlockReadError(f"{address}: a packet of {len(data)} bytes, last {last}")
            if not data:
                if left:
                    raise BlockReadError(f"{address}: the block ended {left} bytes early")
                break  # the empty packet that ends the range: the DataNode sent it all
            if not left:
                raise BlockReadError(f"{address}: {len(data)} bytes past the end of the range")
            _verify(kind, per_chunk, sums, data, address)
            piece = data[skip : skip + left]
            skip = max(0, skip - len(data))
            if piece:
                left -= len(piece)
                yield piece
        # Read to the end and checked: the DataNode logs it, and waits for the next op.
        writer.write(_CHECKSUM_OK)
        await _timed(writer.drain())
        pool.give(address, reader, writer)
        kept = True
    except BlockReadError:
        raise
    except Exception as exc:  # any failure of a replica is one (a cancel is not an Exception)
        raise BlockReadError(f"{address}: {exc!r}") from exc
    finally:
        if writer is not None and not kept:
            writer.close()


async def _request(
    pool: Connections, address: str, request: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[int, list[Any]]]:
    """Send ``request`` on a kept connection to ``address`` or a new one, and read the
    DataNode's answer. A kept connection that the DataNode closed meanwhile (at the end of
    its keepalive, or on a restart) gives no answer at all: then a new one is made."""
    kept = pool.take(address)
    if kept is not None:
        try:
            return (*kept, await _ask(*kept, request))
        except (ConnectionError, asyncio.IncompleteReadError):
            kept[1].close()  # closed at the other end: a new connection asks again
        except BaseException:
            kept[1].close()
            raise
    reader, writer = await pool.open(address)
    try:
        return reader, writer, await _ask(reader, writer, request)
    except BaseException:
        writer.close()
        raise


async def _ask(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> dict[int, list[Any]]:
    writer.write(request)
    return _decode(await _timed(_delimited(reader)))


def read_request(read: Read, client: str = CLIENT_NAME, block_bytes: int | None = None) -> bytes:
    """The bytes of one OP_READ_BLOCK, as Hadoop's ``Sender.readBlock`` writes them (it
    also sends the block's length, which a read ignores: ``block_bytes``, when given)."""
    block = (
        _bytes(1, read.pool.encode())
        + _varint_field(2, read.block_id)
        + _varint_field(3, read.generation)
        + (b"" if block_bytes is None else _varint_field(4, block_bytes))
    )
    token = _bytes(1, b"") + _bytes(2, b"") + _bytes(3, b"") + _bytes(4, b"")  # none: no security
    header = _bytes(1, _bytes(1, block) + _bytes(2, token)) + _bytes(2, client.encode())
    op = (
        _bytes(1, header)
        + _varint_field(2, read.offset)
        + _varint_field(3, read.length)
        + _varint_field(4, 1)  # sendChecksums
        + _bytes(5, b"")  # the default caching strategy
    )
    return struct.pack(">hB", DATA_TRANSFER_VERSION, OP_READ_BLOCK) + _varint(len(op)) + op


async def _packet(
    reader: asyncio.StreamReader, most: int, per_chunk: int
) -> tuple[dict[str, int], bytes, bytes]:
    """One packet of at most ``most`` data bytes (and their checksums, 4 bytes for each
    chunk of ``per_chunk``), refused from its lengths before its body is read."""
    payload, header_len = _PACKET_LENGTHS.unpack(await reader.readexactly(6))
    largest = 4 + most + 4 * -(-most // per_chunk)
    if not 4 <= payload <= largest:
        raise BlockReadError(f"a packet of {payload} bytes where {largest} at most were due")
    if header_len > MAX_PACKET_HEADER_BYTES:
        raise BlockReadError(f"a packet header of {header_len} bytes")
    fields = _decode(await reader.readexactly(header_len))
    header = {name: _first(fields, number, 0, int) for number, name in _HEADER_FIELDS.items()}
    body = await reader.readexactly(payload - 4)
    data_len = header["data_len"]
    if not 0 <= data_len <= min(most, len(body)):
        raise ValueError(f"packet data of {data_len} bytes in a body of {len(body)}")
    split = len(body) - data_len
    return header, body[:split], body[split:]


def _verify(kind: int, per_chunk: int, sums: bytes, data: bytes, address: str) -> None:
    crc = google_crc32c.value if kind == CHECKSUM_CRC32C else zlib.crc32
    chunks = range(0, len(data), per_chunk)
    if kind not in (CHECKSUM_CRC32, CHECKSUM_CRC32C) or len(sums) != 4 * len(chunks):
        raise BlockReadError(f"{address}: checksum type {kind}, {len(sums)} bytes of sums")
    for i, start in enumerate(chunks):
        if crc(data[start : start + per_chunk]) != _CRC.unpack_from(sums, 4 * i)[0]:
            raise BlockReadError(f"{address}: checksum mismatch in chunk {i} of a packet")


async def _timed(awaitable: Any) -> Any:
    async with asyncio.timeout(READ_TIMEOUT_S):  # no task per packet, as wait_for makes
        return await awaitable


# ---- a few proto2 fields, by hand -------------------------------------------------------


def _varint(n: int) -> bytes:
    n &= _UINT64  # negative ids (striped groups) go as two's complement uint64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


async def _delimited(reader: asyncio.StreamReader) -> bytes:
    value = shift = 0
    while True:
        byte = (await reader.readexactly(1))[0]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
        if shift > 28:
            raise ValueError("overlong length prefix")
    if value > MAX_RESPONSE_BYTES:
        raise ValueError(f"a message of {value} bytes")
    return await reader.readexactly(value)


def _decode(buf: bytes) -> dict[int, list[Any]]:
    """A proto2 message's fields by number: varints as ints (signed when they were
    negative int64s), fixed64 and fixed32 as little-endian signed ints, bytes as bytes."""
    fields: dict[int, list[Any]] = {}
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            if value >= 1 << 63:
                value -= 1 << 64
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise ValueError("truncated fixed-size field")
            (value,) = struct.unpack_from("<q" if wire == 1 else "<i", buf, pos)
            pos += size
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated length-delimited field")
            value, pos = bytes(buf[pos : pos + size]), pos + size
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _first(fields: dict[int, list[Any]], number: int, default: Any, kind: type) -> Any:
    """The first value of field ``number`` (``default`` when absent); ValueError when it
    is not of the wire type the message says it is."""
    value = fields.get(number, [default])[0]
    if not isinstance(value, kind):
        raise ValueError(f"field {number} is {type(value).__name__}, not {kind.__name__}")
    return value
