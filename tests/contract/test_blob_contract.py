"""The blob store contract: both adapters, same behaviour, bytes streamed both ways."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from instastore.errors import Conflict, InstastoreError, InvalidInput, NotFound
from instastore.storage import scratch

MiB = 1024 * 1024


async def chunks_of(data: bytes, size: int = 64 * 1024):
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read_all(stores, key, offset=0, length=None) -> bytes:
    return b"".join([c async for c in stores.blobs.open(key, offset, length)])


def new_key(name: str = "blob") -> str:
    return f"t/{uuid.uuid4().hex}/{name}"


async def test_put_get_size_ranges_delete(stores):
    key, data = new_key(), os.urandom(700_000)
    assert await stores.blobs.put(key, chunks_of(data)) == len(data)
    assert await stores.blobs.size(key) == len(data)
    assert await read_all(stores, key) == data
    assert await read_all(stores, key, 1000, 5000) == data[1000:6000]
    assert await read_all(stores, key, 699_990) == data[699_990:]
    assert await read_all(stores, key, 5, 0) == b""
    assert await stores.blobs.delete(key) is True
    assert await stores.blobs.delete(key) is False
    with pytest.raises(NotFound):
        await stores.blobs.size(key)
    with pytest.raises(NotFound):
        await read_all(stores, key)


async def test_a_key_is_written_once_and_can_be_reput_after_delete(stores):
    key, first, second = new_key(), os.urandom(10_000), os.urandom(20_000)
    await stores.blobs.put(key, chunks_of(first))
    with pytest.raises(Conflict):
        await stores.blobs.put(key, chunks_of(second))
    assert await read_all(stores, key) == first  # the refused put changed nothing
    assert await stores.blobs.delete(key)
    assert await stores.blobs.put(key, chunks_of(second)) == len(second)
    assert await read_all(stores, key) == second


async def test_empty_blob(stores):
    key = new_key()
    assert await stores.blobs.put(key, chunks_of(b"")) == 0
    assert await stores.blobs.size(key) == 0
    assert await read_all(stores, key) == b""


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/"])
async def test_bad_keys_are_refused(stores, key):
    with pytest.raises(InvalidInput):
        await stores.blobs.put(key, chunks_of(b"x"))


async def test_entries_list_by_prefix_with_size_and_age(stores):
    prefix = f"k/{uuid.uuid4().hex}"
    wanted = {f"{prefix}/a/1", f"{prefix}/a/2", f"{prefix}/b/3"}
    before = datetime.now(UTC) - timedelta(minutes=1)  # clocks of the NameNode and ours
    for key in wanted:
        await stores.blobs.put(key, chunks_of(b"x" * len(key)))
    entries = {e.key: e async for e in stores.blobs.entries(prefix)}
    assert set(entries) == wanted
    assert all(e.size == len(e.key) for e in entries.values())
    assert all(
        before < e.modified < datetime.now(UTC) + timedelta(minutes=1) for e in entries.values()
    )
    assert {e.key async for e in stores.blobs.entries(prefix + "/a/")} == {
        f"{prefix}/a/1",
        f"{prefix}/a/2",
    }


async def failing_after(data: bytes, chunks: int):
    for i in range(0, chunks * 64 * 1024, 64 * 1024):
        yield data[i : i + 64 * 1024]
    raise RuntimeError("the client went away")


async def test_a_failed_put_leaves_nothing_behind(stores):
    key, data = new_key(), os.urandom(10 * MiB)
    with pytest.raises(RuntimeError):
        await stores.blobs.put(key, failing_after(data, 100))
    with pytest.raises(NotFound):
        await stores.blobs.size(key)
    assert [e async for e in stores.blobs.entries(key)] == []
    assert await stores.blobs.remove_abandoned_parts(datetime.now(UTC) + timedelta(days=1)) == 0


GRACE = timedelta(seconds=1.5)  # stands for scratch.SCRATCH_GRACE (an hour), to be quick


async def slow_chunks(count: int, pause_s: float, gate: asyncio.Event | None = None):
    """``count`` chunks of 64 KiB, ``pause_s`` apart; the last waits for ``gate``."""
    for i in range(count):
        if gate is not None and i == count - 1:
            await gate.wait()
        yield bytes([i]) * 65536
        await asyncio.sleep(pause_s)


async def test_a_put_longer_than_the_grace_renews_its_part_and_completes(stores, monkeypatch):
    """On HDFS an open file's modification time stays at its creation until it is closed
    (and local writes land in 1 MiB batches): the writer renews its temporary file while
    it writes, so gc and server starts, deciding by age, never take a long write for a
    leftover."""
    monkeypatch.setattr(scratch, "SCRATCH_HEARTBEAT", timedelta(seconds=0.25))
    key = new_key("slow")
    put = asyncio.create_task(stores.blobs.put(key, slow_chunks(16, 0.3)))  # ~5 s: > 3 graces
    while not put.done():
        await asyncio.sleep(0.4)
        await stores.blobs.remove_abandoned_parts(datetime.now(UTC), GRACE)
    assert await put == 16 * 65536
    assert b"".join([c async for c in stores.blobs.open(key)]) == b"".join(
        [c async for c in slow_chunks(16, 0)]
    )


async def test_a_part_its_writer_stopped_renewing_is_removed_past_the_grace(stores, monkeypatch):
    """The other side: a writer that renews nothing (a hung one, as far as anyone can
    tell) leaves a part that ages past the grace and is removed; its put then fails."""
    monkeypatch.setattr(scratch, "SCRATCH_HEARTBEAT", timedelta(hours=1))
    key = new_key("hung")
    gate = asyncio.Event()
    put = asyncio.create_task(stores.blobs.put(key, slow_chunks(3, 0.1, gate)))
    await asyncio.sleep(GRACE.total_seconds() + 1)
    assert await stores.blobs.remove_abandoned_parts(datetime.now(UTC), GRACE) >= 1
    gate.set()
    with pytest.raises(InstastoreError):
        await put
    with pytest.raises(NotFound):
        await stores.blobs.size(key)


# A put in a process of its own that is SIGKILLed mid-write, as a crash would.
KILLED_WRITER = """
import asyncio, os, sys, pickle
from instastore.storage import open_stores
settings, key = pickle.loads(bytes.fromhex(sys.argv[1]))

async def chunks():
    block = os.urandom(1024 * 1024)
    for i in range(6):
        yield block
    print("written", flush=True)
    await asyncio.sleep(3600)  # the client stalls: killed here

async def main():
    stores = await open_stores(settings)
    await stores.blobs.put(key, chunks())

asyncio.run(main())
"""


async def test_a_write_killed_midway_leaves_no_blob_under_its_key(stores, adapter_settings):
    key = new_key("killed")
    argv = [sys.executable, "-c", KILLED_WRITER, pickle.dumps((adapter_settings, key)).hex()]
    writer = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(writer.stdout.readline(), 60)
        assert line == b"written\n"
        await asyncio.sleep(1)  # let the bytes reach the store
    finally:
        writer.kill()
        await writer.wait()
    with pytest.raises(NotFound):
        await stores.blobs.size(key)
    assert [e async for e in stores.blobs.entries(key)] == []
    # Its temporary file is the crash's only trace, and its writer is provably gone.
    assert await stores.blobs.remove_abandoned_parts(datetime.now(UTC)) >= 1


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(600)
async def test_256_mib_streams_both_ways_in_flat_memory(stores):
    size = 256 * MiB
    block = os.urandom(MiB)
    samples = [rss_mb()]

    async def produce():
        for i in range(size // MiB):
            if i % 16 == 0:
                samples.append(rss_mb())
            yield i.to_bytes(8, "big") + block[8:]  # every MiB different

    def expected_digest() -> str:
        digest = hashlib.sha256()
        for i in range(size // MiB):
            digest.update(i.to_bytes(8, "big") + block[8:])
        return digest.hexdigest()

    expected = await asyncio.to_thread(expected_digest)

    key = new_key("big")
    assert await stores.blobs.put(key, produce()) == size
    assert await stores.blobs.size(key) == size

    got, n = hashlib.sha256(), 0
    async for chunk in stores.blobs.open(key):
        got.update(chunk)
        n += len(chunk)
        if n % (16 * MiB) < len(chunk):
            samples.append(rss_mb())
    assert n == size
    assert got.hexdigest() == expected
    growth = max(samples) - samples[0]
    assert growth < 64, f"memory grew {growth:.0f} MB while streaming 256 MiB (samples {samples})"
    await stores.blobs.delete(key)
