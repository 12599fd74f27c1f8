"""Reads from the DataNodes' data-transfer port (``instastore.storage.hdfs.datatransfer``):
the request is byte for byte what Hadoop's own client sends; a striped group's cells map
to the right internal blocks; and against the real 1 + 1 cluster, a file of several
blocks reads right at any range with no NameNode request once its block map is known, a
DataNode that is gone or a replica that fails its checksum is never served (the read
goes on through WebHDFS, or fails; a block none served goes to WebHDFS at once until its
map is old enough to ask again), reads at once ask for a map once, a file still open
is read through WebHDFS, and reads one after another use one connection to the DataNode
(kept only after a read that went to the end; one the DataNode closed is replaced). (An
erasure-coded volume read with one of 3 DataNodes down: tests/cluster/test_erasure_coding.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import struct
import time
import uuid

import google_crc32c
import pytest

from instastore.errors import InstastoreError
from instastore.storage.hdfs import datatransfer, webhdfs
from instastore.storage.hdfs.datatransfer import Block, BlockMap, BlockReadError, Read, Striping
from instastore.storage.hdfs.webhdfs import WebHdfs

from ..serving import free_port

BLOCK = 2**20  # the smallest block size HDFS accepts (dfs.namenode.fs-limits.min-block-size)
SIZE = 3 * BLOCK + 123_457  # four blocks, the last one partial


def test_a_read_request_is_what_hadoops_sender_writes():
    # Sender.readBlock of Hadoop 3.5.0 for this block, client "cli", 200 bytes at 100
    # (a striped group's negative id included), as the JVM wrote it.
    read = Read("BP-1", -9223372036854775792, 1001, 100, 200, ())
    assert datatransfer.read_request(read, client="cli", block_bytes=1234) == bytes.fromhex(
        "001c51 35 0a2a 0a23 0a17"  # version, opcode, lengths of op, header, base header
        "0a04 42502d31"  # block: pool "BP-1"
        "10 90808080808080808001 18e907 20d209"  # id (two's complement), stamp, length
        "1208 0a00 1200 1a00 2200"  # the empty token
        "1203 636c69"  # client name "cli"
        "1064 18c801 2001 2a00"  # offset 100, length 200, checksums, caching strategy
    )


def test_the_cells_of_a_striped_group_come_from_their_internal_blocks():
    # A group of 3 data units of 4-byte cells over 7 DataNodes' worth of bytes: build the
    # internal blocks by the striping rule independently, then read every range back
    # through the map's reads.
    cell, units, size = 4, 3, 53
    data = bytes(random.Random(7).randrange(256) for _ in range(size))
    internal: dict[int, bytearray] = {i: bytearray() for i in range(units)}
    for n, start in enumerate(range(0, size, cell)):
        internal[n % units] += data[start : start + cell]
    group = Block("BP-1", -1_000_000, 5, 0, size, ("a:1", "b:1", "c:1", "p:1"))
    blocks = BlockMap(size, (group,), Striping(cell, units))
    for offset in range(size):
        for length in range(1, size - offset + 1):
            got = b""
            for read in blocks.reads(offset, length):
                index = read.block_id - group.block_id
                assert read.addresses[0] == group.addresses[index]  # index order first
                assert set(read.addresses) == set(group.addresses)  # then every other
                got += internal[index][read.offset : read.offset + read.length]
            assert got == data[offset : offset + length], (offset, length)


def test_a_confirmed_holder_is_tried_first():
    group = Block("BP-1", -64, 5, 0, 8, ("a:1", "b:1", "p:1"))
    blocks = BlockMap(8, (group,), Striping(4, 2))
    blocks.holders[-64] = "p:1"  # index 0 found on "p" (the group was rebuilt elsewhere)
    first, second = blocks.reads(0, 8)
    assert first.addresses == ("p:1", "a:1", "b:1")
    assert second.addresses == ("b:1", "a:1", "p:1")


def _located(*blocks: tuple[int, int, int]) -> dict:
    """A LocatedBlocks JSON of blocks (id, start, length), one DataNode each."""
    return {
        "fileLength": sum(length for _, _, length in blocks),
        "locatedBlocks": [
            {
                "block": {"blockPoolId": "BP-1", "blockId": i, "generationStamp": 1, "numBytes": n},
                "startOffset": start,
                "locations": [{"ipAddr": "127.0.0.1", "xferPort": 9866}],
            }
            for i, start, n in blocks
        ],
    }


@pytest.mark.parametrize(
    ("located", "status", "why"),
    [
        (_located((-64, 0, 10)), {}, "cell layout"),  # a block group, no policy said
        (_located((5, 0, 10)), {"ecBit": True, "ecPolicy": "RS-3-2-1024k"}, "cell layout"),
        (_located((5, 0, 10), (6, 12, 10)), {}, "gap at byte 10"),
        ({**_located((5, 0, 10)), "fileLength": 11}, {}, "10 bytes for a file of 11"),
    ],
)
def test_a_block_map_that_could_serve_wrong_bytes_is_refused(located, status, why):
    with pytest.raises(BlockReadError, match=why):
        BlockMap.from_json(located, status)


@pytest.mark.parametrize(
    "reply",
    [
        b"",  # the connection closes at once
        bytes.fromhex("03 08 00 29"),  # a truncated fixed64
        bytes.fromhex("04 08 01 28 05"),  # an error whose message is a number
        bytes.fromhex("02 08 00"),  # success without the checksum information
        bytes.fromhex("0c 08 00 22 08 0a 04 08 02 10 00 10 00"),  # 0 bytes per checksum
        b"HTTP/1.1 400 Bad Request\r\n\r\n",  # another server at the address
    ],
)
async def test_whatever_a_datanode_answers_is_a_block_read_error(reply):
    async def answer(reader, writer):
        await reader.read(100)
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        read = Read("BP-1", 5, 1, 0, 100, ())
        with pytest.raises(BlockReadError):
            _ = [chunk async for chunk in datatransfer.read_block(f"127.0.0.1:{port}", read)]
    finally:
        server.close()
        await server.wait_closed()


# ---- against the real 1 + 1 cluster -----------------------------------------------------


@pytest.fixture
async def client(local_cluster):
    client = WebHdfs(local_cluster.webhdfs_url, "instastore")
    yield client
    await client.delete(f"/block-reads-{os.getpid()}", recursive=True)
    await client.close()


@pytest.fixture
async def stored(client):
    """A file of four blocks and its bytes."""
    path = f"/block-reads-{os.getpid()}/{uuid.uuid4().hex}.vol"
    data = os.urandom(SIZE)
    await client.create(path, _one(data), block_size=BLOCK)
    return path, data


async def _one(data: bytes):
    yield data


async def _read(client: WebHdfs, path: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([c async for c in client.open(path, offset, length, immutable=True)])


@pytest.mark.hdfs
async def test_any_range_reads_right_and_only_the_first_asks_the_namenode(client, stored):
    path, data = stored
    assert await _read(client, path, 10, 100) == data[10:110]
    blocks = client.block_maps.get(path)
    assert blocks is not None and len(blocks.blocks) == 4 and blocks.striping is None

    before = dict(client.requests)
    ranges = [
        (0, None),  # the whole file: four block reads
        (BLOCK - 1, 2),  # one byte each side of a block boundary
        (BLOCK, BLOCK),  # exactly the second block
        (777, 513),  # neither end on a 512-byte chunk
        (SIZE - 5, None),  # the end of the last, partial block
        (SIZE - 5, 100),  # past the end: to the end, as WebHDFS answers
        (2 * BLOCK - 300, BLOCK + 600),  # across three blocks
    ]
    for offset, length in ranges:
        end = None if length is None else offset + length
        assert await _read(client, path, offset, length) == data[offset:end], (offset, length)
    assert client.requests["namenode"] == before["namenode"]  # the block map was known
    assert client.requests["datanode"] == before["datanode"]  # and no WebHDFS read needed
    assert client.requests["block"] - before["block"] == 4 + 2 + 1 + 1 + 1 + 1 + 3


def _dead_first_block(known: BlockMap, age_s: float) -> BlockMap:
    """``known`` with its first block on a DataNode that is gone, given ``age_s`` ago."""
    dead = dataclasses.replace(known.blocks[0], addresses=(f"127.0.0.1:{free_port()}",))
    return dataclasses.replace(
        known, blocks=(dead, *known.blocks[1:]), holders={}, fetched=time.monotonic() - age_s
    )


@pytest.mark.hdfs
async def test_a_block_no_datanode_serves_reads_through_webhdfs_until_the_map_is_old(
    client, stored
):
    path, data = stored
    assert await _read(client, path, 0, 10) == data[:10]
    stale = _dead_first_block(client.block_maps.get(path), age_s=0)
    client.block_maps.put(path, stale)

    before = dict(client.requests)
    assert await _read(client, path, BLOCK - 50, 100) == data[BLOCK - 50 : BLOCK + 50]
    assert client.requests["block"] - before["block"] == 1  # the dead DataNode, tried once
    assert stale.unserved == {stale.blocks[0].block_id}  # WebHDFS served from there on
    assert client.block_maps.get(path) is stale  # a map just given is not asked again

    before = dict(client.requests)
    assert await _read(client, path, 5, 10) == data[5:15]
    assert client.requests["block"] == before["block"]  # not tried again: straight to WebHDFS
    assert client.requests["namenode"] == before["namenode"]  # the DataNode it read from
    assert await _read(client, path, 2 * BLOCK, 10) == data[2 * BLOCK : 2 * BLOCK + 10]
    assert client.requests["block"] - before["block"] == 1  # the other blocks: block reads

    stale.fetched -= webhdfs.MAP_RECHECK_S  # once the map is that old, it is asked again
    assert await _read(client, path, 5, 10) == data[5:15]
    fresh = client.block_maps.get(path)
    assert fresh is not stale and not fresh.unserved
    assert fresh.blocks[0].addresses != stale.blocks[0].addresses


@pytest.mark.hdfs
async def test_a_map_given_long_ago_whose_datanode_is_gone_is_asked_again(client, stored):
    path, data = stored
    assert await _read(client, path, 0, 10) == data[:10]
    stale = _dead_first_block(client.block_maps.get(path), age_s=webhdfs.MAP_RECHECK_S + 1)
    client.block_maps.put(path, stale)

    assert await _read(client, path, BLOCK - 50, 100) == data[BLOCK - 50 : BLOCK + 50]
    before = dict(client.requests)
    assert await _read(client, path, 5, 10) == data[5:15]
    assert client.requests["namenode"] - before["namenode"] == 2  # GETFILESTATUS, the map
    assert (
        client.requests["block"] - before["block"] == 1
        and client.requests["datanode"] == (before["datanode"])
    )  # and the block read from where the block is now
    assert client.block_maps.get(path).blocks[0].addresses != stale.blocks[0].addresses


@pytest.mark.hdfs
async def test_reads_of_a_file_at_once_ask_for_its_map_once(client, stored):
    path, data = stored
    before = dict(client.requests)
    first = asyncio.create_task(_read(client, path, 0, 10))
    await asyncio.sleep(0)  # it is waiting for the map now
    first.cancel()  # and gives up: the others still get the map it asked for
    ranges = [(i * BLOCK // 3, 1000 + i) for i in range(8)]
    got = await asyncio.gather(*(_read(client, path, o, n) for o, n in ranges))
    assert got == [data[o : o + n] for o, n in ranges]
    assert client.requests["namenode"] - before["namenode"] == 2  # GETFILESTATUS, the map
    assert client.requests["datanode"] == before.get("datanode", 0)
    with pytest.raises(asyncio.CancelledError):
        await first


@pytest.mark.hdfs
async def test_a_replica_that_fails_its_checksum_is_never_served(
    client, stored, local_cluster, caplog
):
    path, data = stored
    assert await _read(client, path, 0, 10) == data[:10]
    second = client.block_maps.get(path).blocks[1]
    (replica,) = [
        f
        for f in local_cluster.root.rglob(f"blk_{second.block_id}")
        if f.is_file() and f.stat().st_size == BLOCK
    ]
    with replica.open("r+b") as f:  # flip one byte of the second block on disk
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))

    with (
        caplog.at_level(logging.INFO, logger="instastore.storage.hdfs.webhdfs"),
        pytest.raises(InstastoreError),  # one replica only: nothing can serve the byte
    ):
        await _read(client, path, BLOCK + 900, 200)
    assert "checksum mismatch in chunk 0" in caplog.text  # the block read caught it first
    assert await _read(client, path, 0, BLOCK) == data[:BLOCK]  # the good block still reads


@pytest.mark.hdfs
async def test_a_file_that_is_not_immutable_or_past_its_end_reads_through_webhdfs(client, stored):
    path, data = stored
    assert b"".join([c async for c in client.open(path, 5, 10)]) == data[5:15]
    assert client.block_maps.get(path) is None and client.requests["block"] == 0
    assert await _read(client, path, SIZE, 10) == b""  # WebHDFS's answer: nothing
    client.block_reads = False
    asked = client.requests["block"]
    assert await _read(client, path, 5, 10) == data[5:15]
    assert client.requests["block"] == asked


@pytest.mark.hdfs
async def test_reads_one_after_another_use_one_datanode_connection(client, stored):
    """After a read of its whole range and the client's CHECKSUM_OK the DataNode waits for
    the next op on the same connection: the next reads are made on it."""
    path, data = stored
    assert await _read(client, path, 0, 10) == data[:10]
    opened, reused = client.transfers.opened, client.transfers.reused
    ranges = [(BLOCK * i + 7 * i, 1000 * i + 1) for i in range(4)] + [(BLOCK - 5, 10)]
    for offset, length in ranges:
        assert await _read(client, path, offset, length) == data[offset : offset + length]
    assert client.transfers.opened == opened  # one DataNode, one connection, kept
    assert client.transfers.reused - reused == 6  # 4 reads, then one across two blocks


@pytest.mark.hdfs
async def test_a_kept_connection_the_datanode_closed_is_replaced_not_failed(client, stored):
    path, data = stored
    assert await _read(client, path, 0, 10) == data[:10]
    client.transfers.idle_s = 60  # kept past the DataNode's 4 s: it closes its end first
    await asyncio.sleep(5)
    opened = client.transfers.opened
    before = dict(client.requests)
    assert await _read(client, path, 100, 10) == data[100:110]
    assert client.transfers.opened - opened == 1  # a new connection
    assert client.requests["datanode"] == before["datanode"]  # and no WebHDFS fallback


def _packet(data: bytes, last: bool, offset: int = 0, sums: bool = True) -> bytes:
    """One packet as a DataNode sends it: CRC32C sums of its 512-byte chunks (none with
    ``sums`` off: CHECKSUM_NULL), then the data."""
    header = (
        b"\x09" + offset.to_bytes(8, "little")  # offsetInBlock (sfixed64)
        + b"\x11" + bytes(8)  # seqno 0
        + bytes([0x18, int(last)])  # lastPacketInBlock
        + b"\x25" + len(data).to_bytes(4, "little")  # dataLen (sfixed32)
    )  # fmt: skip
    crcs = b"".join(
        struct.pack(">I", google_crc32c.value(data[at : at + 512]))
        for at in range(0, len(data), 512)
    )
    body = (crcs if sums else b"") + data
    return struct.pack(">iH", 4 + len(body), len(header)) + header + body


# BlockOpResponseProto{SUCCESS, checksum {CRC32C or NULL, 512 bytes per checksum}, chunk 0}
_SUCCESS = bytes.fromhex("0d 0800 2209 0a05 0802 108004 1000")
_SUCCESS_NO_CHECKSUMS = bytes.fromhex("0d 0800 2209 0a05 0800 108004 1000")


@contextlib.asynccontextmanager
async def _datanode(*replies: bytes):
    """A stand-in DataNode at an address: each connection gets the next reply to its
    request, then waits for the client to close."""
    pending = list(replies)

    async def answer(reader, writer):
        await reader.read(100)
        writer.write(pending.pop(0))
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_datanode_that_sends_no_checksums_is_never_served():
    data = os.urandom(100)
    reply = _SUCCESS_NO_CHECKSUMS + _packet(data, False, sums=False) + _packet(b"", True, 100)
    async with _datanode(reply) as address:
        with pytest.raises(BlockReadError, match="checksum type 0, not CRC32"):
            _ = [c async for c in datatransfer.read_block(address, Read("BP-1", 5, 1, 0, 100, ()))]


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        # 64 KiB of well-checksummed data for a read of 100 bytes (one 512-byte chunk)
        (_packet(os.urandom(65536), False), "66052 bytes where 520 at most were due"),
        # a length prefix of 16 MiB, and nothing after it
        (struct.pack(">iH", 2**24, 25), "16777216 bytes where 520 at most were due"),
        # a header of 60,000 bytes
        (struct.pack(">iH", 4, 60_000), "a packet header of 60000 bytes"),
    ],
    ids=["64 KiB of data", "a 16 MiB prefix", "a 60,000-byte header"],
)
async def test_a_packet_larger_than_the_read_asked_for_is_refused_unread(packet, why):
    async with _datanode(_SUCCESS + packet) as address:
        with pytest.raises(BlockReadError, match=why):
            async with asyncio.timeout(5):  # refused from its prefix, not waited for
                read = Read("BP-1", 5, 1, 0, 100, ())
                _ = [c async for c in datatransfer.read_block(address, read)]


async def test_a_packet_of_the_whole_last_chunk_is_read():
    """The DataNode sends whole chunks: a read of 100 bytes at 10 gets the chunk from 0,
    all 512 bytes of it (the bound is the range asked for, to the end of its chunk)."""
    data = os.urandom(512)
    async with _datanode(_SUCCESS + _packet(data, False) + _packet(b"", True, 512)) as address:
        read = Read("BP-1", 5, 1, 10, 100, ())
        assert b"".join([c async for c in datatransfer.read_block(address, read)]) == data[10:110]


async def test_only_an_empty_packet_marked_last_ends_a_read():
    """The DataNode marks the empty packet that ends a range last, and only that one: an
    empty packet not marked last (or a last one with data) is not the end, and the
    connection, which may still carry bytes, is never kept."""
    replies = [_SUCCESS + _packet(b"", last=False), _SUCCESS + _packet(b"\x00" * 4, last=True)]
    pool = datatransfer.Connections()
    try:
        async with _datanode(*replies) as address:
            for length in (0, 4):
                read = Read("BP-1", 5, 1, 0, length, ())
                with pytest.raises(BlockReadError, match=f"a packet of {length} bytes"):
                    _ = [c async for c in datatransfer.read_block(address, read, pool)]
            assert len(pool) == 0 and pool.opened == 2
    finally:
        pool.close()


async def test_kept_connections_past_their_time_are_closed_whichever_datanode_is_read():
    async def datanode(reader, writer):
        await reader.read()
        writer.close()

    servers = [await asyncio.start_server(datanode, "127.0.0.1", 0) for _ in range(2)]
    first, second = (f"127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in servers)
    pool = datatransfer.Connections(idle_s=0.05)
    try:
        old = await pool.open(first)
        pool.give(first, *old)
        await asyncio.sleep(0.1)
        pool.give(second, *await pool.open(second))  # another DataNode's connection kept
        assert old[1].is_closing() and len(pool) == 1  # the first one's, past its time, closed
        pool.close()
        late = await pool.open(second)
        pool.give(second, *late)  # a read that ends after the pool was closed
        assert late[1].is_closing() and len(pool) == 0
    finally:
        pool.close()
        for server in servers:
            server.close()
            await server.wait_closed()


async def test_a_kept_connection_seen_closed_is_not_taken():
    accepted = []

    async def datanode(reader, writer):
        accepted.append(writer)
        if len(accepted) == 1:
            await reader.read()  # the older one stays open
        writer.close()  # the newer at once: as a DataNode does at the end of its keepalive

    server = await asyncio.start_server(datanode, "127.0.0.1", 0)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    pool = datatransfer.Connections()
    try:
        older = await pool.open(address)
        pool.give(address, *older)
        newer = await pool.open(address)
        pool.give(address, *newer)
        for _ in range(500):  # the FIN arrives: the event loop marks the stream's end
            if newer[0].at_eof():
                break
            await asyncio.sleep(0.01)
        assert newer[0].at_eof() and not older[0].at_eof()
        assert pool.take(address) == older  # the newer one, closed, is passed over
        assert newer[1].is_closing() and pool.take(address) is None
        older[1].close()
    finally:
        pool.close()
        server.close()
        await server.wait_closed()


async def test_a_kept_connection_that_gives_no_answer_is_replaced():
    """The DataNode closed a kept connection just as it was taken (its FIN not seen yet):
    the request gets no answer, and goes again on a new connection."""
    accepted = []

    async def datanode(reader, writer):
        accepted.append(writer)
        await reader.read(100)
        if len(accepted) > 1:  # BlockOpResponseProto{status: ERROR, message: "gone"}
            writer.write(bytes.fromhex("08 0801 2a04") + b"gone")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(datanode, "127.0.0.1", 0)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    pool = datatransfer.Connections()
    try:
        pool.give(address, *await pool.open(address))  # kept, as after a read
        with pytest.raises(BlockReadError, match="status 1: gone"):
            read = Read("BP-1", 5, 1, 0, 100, ())
            _ = [chunk async for chunk in datatransfer.read_block(address, read, pool)]
        assert (pool.reused, pool.opened, len(accepted)) == (1, 2, 2)
    finally:
        pool.close()
        server.close()
        await server.wait_closed()


@pytest.mark.hdfs
async def test_only_a_read_that_went_to_the_end_keeps_its_connection(client, stored):
    path, data = stored
    assert await _read(client, path, 0, 10) == data[:10]
    blocks = client.block_maps.get(path)
    first = blocks.blocks[0]
    (address,) = first.addresses
    client.transfers.close()
    pool = client.transfers = datatransfer.Connections()  # each step below starts empty

    # A read given up after its first piece: the DataNode is still sending, so the
    # connection cannot carry another op.
    whole = Read(first.pool, first.block_id, first.generation, 0, BLOCK, first.addresses)
    async with contextlib.aclosing(datatransfer.read_block(address, whole, pool)) as got:
        assert len(await anext(got)) > 0
    # A read the DataNode refuses (no such replica): it closes the connection.
    missing = dataclasses.replace(whole, block_id=first.block_id + 10**9, length=10)
    with pytest.raises(BlockReadError, match="status"):
        _ = [c async for c in datatransfer.read_block(address, missing, pool)]
    opened, reused = pool.opened, pool.reused
    assert await _read(client, path, 0, 10) == data[:10]
    assert (pool.opened - opened, pool.reused - reused) == (1, 0)  # nothing was kept
    assert await _read(client, path, 20, 10) == data[20:30]
    assert (pool.opened - opened, pool.reused - reused) == (1, 1)  # that one was
