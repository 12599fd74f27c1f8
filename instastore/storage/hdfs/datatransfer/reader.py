"""One read of one block from a DataNode's data-transfer port: HDFS's own
DataTransferProtocol (``OP_READ_BLOCK``), the protocol Hadoop's Java client reads
blocks with.

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
mismatch, like any failure of a replica, is a ``BlockReadError``, and the caller moves
the read to the next replica from where it got to. A DataNode that offers no checksums
(CHECKSUM_NULL) is such a failure: its bytes are never served. Nothing the DataNode says
is allocated before it is checked against the read: a packet longer than the rest of
the range asked for (to the end of its last chunk) is refused from its length prefix.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncGenerator
from typing import Any

import google_crc32c

from instastore.storage.hdfs.datatransfer.blockmap import BlockReadError, Read
from instastore.storage.hdfs.datatransfer.connections import Connections
from instastore.storage.hdfs.datatransfer.proto import (
    bytes_field,
    decode,
    first,
    read_delimited,
    varint,
    varint_field,
)

DATA_TRANSFER_VERSION = 28  # DataTransferProtocol.DATA_TRANSFER_VERSION, Hadoop 3
OP_READ_BLOCK = 81
CLIENT_NAME = "instastore"
READ_TIMEOUT_S = 60.0  # a packet that takes longer: the DataNode is stuck; try another
MAX_RESPONSE_BYTES = 64 * 1024  # a BlockOpResponseProto: a status, a few numbers, a message
MAX_PACKET_HEADER_BYTES = 256  # a PacketHeaderProto is 27 bytes; room for unknown fields
# Bytes per checksum a DataNode may use (dfs.bytes-per-checksum, 512 by default): a
# packet may carry this much past the range asked for (the rest of its last chunk).
MAX_BYTES_PER_CHECKSUM = 64 * 1024

STATUS_SUCCESS = 0
STATUS_CHECKSUM_OK = 6
CHECKSUM_NULL, CHECKSUM_CRC32, CHECKSUM_CRC32C = 0, 1, 2
_CHECKSUM_OK = b"\x02\x08\x06"  # ClientReadStatusProto{status: CHECKSUM_OK}, delimited
_PACKET_LENGTHS = struct.Struct(">iH")
_CRC = struct.Struct(">I")
_HEADER_FIELDS = {1: "offset", 2: "seqno", 3: "last", 4: "data_len"}


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
        status = first(response, 1, -1, int)
        if status != STATUS_SUCCESS:
            message = first(response, 5, b"", bytes).decode(errors="replace")
            raise BlockReadError(f"{address}: status {status}: {message[:300]}")
        if 4 not in response:
            raise BlockReadError(f"{address}: a success without its checksum information")
        info = decode(first(response, 4, b"", bytes))
        checksum = decode(first(info, 1, b"", bytes))
        kind, per_chunk = first(checksum, 1, -1, int), first(checksum, 2, 0, int)
        if kind not in (CHECKSUM_CRC32, CHECKSUM_CRC32C):
            # SECURITY: unchecksummed bytes could be anything; never serve them.
            raise BlockReadError(f"{address}: checksum type {kind}, not CRC32 or CRC32C")
        at = first(info, 2, -1, int)  # the DataNode starts at the chunk holding the offset
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
    return decode(await _timed(read_delimited(reader, MAX_RESPONSE_BYTES)))


def read_request(read: Read, client: str = CLIENT_NAME, block_bytes: int | None = None) -> bytes:
    """The bytes of one OP_READ_BLOCK, as Hadoop's ``Sender.readBlock`` writes them (it
    also sends the block's length, which a read ignores: ``block_bytes``, when given)."""
    block = (
        bytes_field(1, read.pool.encode())
        + varint_field(2, read.block_id)
        + varint_field(3, read.generation)
        + (b"" if block_bytes is None else varint_field(4, block_bytes))
    )
    token = (
        bytes_field(1, b"") + bytes_field(2, b"") + bytes_field(3, b"") + bytes_field(4, b"")
    )  # none: no security
    header = bytes_field(1, bytes_field(1, block) + bytes_field(2, token)) + bytes_field(
        2, client.encode()
    )
    op = (
        bytes_field(1, header)
        + varint_field(2, read.offset)
        + varint_field(3, read.length)
        + varint_field(4, 1)  # sendChecksums
        + bytes_field(5, b"")  # the default caching strategy
    )
    return struct.pack(">hB", DATA_TRANSFER_VERSION, OP_READ_BLOCK) + varint(len(op)) + op


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
    fields = decode(await reader.readexactly(header_len))
    header = {name: first(fields, number, 0, int) for number, name in _HEADER_FIELDS.items()}
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
