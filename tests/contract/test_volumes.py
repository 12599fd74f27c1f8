"""Volumes on both blob adapters: the needle format, needle locators read through the one
open function, volumes written whole and scanned back."""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import uuid
import zlib

import pytest

from instastore.errors import CorruptNeedle, CorruptRecord, StorageError
from instastore.lifecycle import volumes
from instastore.lifecycle.volumes import NeedleLocator
from instastore.storage.keys import volume_key

from ..factories import new_id


async def chunks_of(data: bytes, size: int = 64 * 1024):
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read(blobs, locator: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([c async for c in volumes.open_locator(blobs, locator, offset, length)])


def test_header_layout_is_the_documented_bytes():
    sha = hashlib.sha256(b"payload").digest()
    header = volumes.encode_header(1234, "thumb", 7, sha)
    assert len(header) == 56 + len("thumb") + 4 == volumes.header_size("thumb")
    assert header[:4] == b"INDL" and header[4] == 1 and header[5] == 5 and header[6:8] == b"\0\0"
    assert struct.unpack(">qQ", header[8:24]) == (1234, 7)
    assert header[24:56] == sha and header[56:61] == b"thumb"
    assert struct.unpack(">I", header[61:]) == (zlib.crc32(header[:61]),)
    assert volumes.needle_size("thumb", 7) == 72  # 65 + 7 = 72: already a multiple of 8
    assert volumes.needle_size("thumb", 8) == 80


def test_locator_string_form_round_trips_and_is_not_a_blob_key():
    locator = NeedleLocator(new_id(), 4096, 123_456)
    text = str(locator)
    assert text == f"n:{locator.volume_id}:4096:123456"
    assert volumes.is_needle(text) and volumes.parse_locator(text) == locator
    assert volumes.blob_of(text) == locator.volume_key
    assert locator.volume_key.startswith("volumes/") and locator.volume_key.endswith(".vol")
    old = f"{new_id() >> 52}/{new_id()}.original.jpg"  # the form uploads write
    assert not volumes.is_needle(old) and volumes.blob_of(old) == old


@pytest.mark.parametrize("bad", ["n:", "n:1:2", "n:x:1:2", "n:1:2:3:4", "n:0:1:2", "n:1:-2:3"])
def test_a_malformed_needle_locator_is_a_corrupt_record(bad):
    with pytest.raises(CorruptRecord):
        volumes.parse_locator(bad)


async def test_open_locator_reads_a_blob_key_as_before(stores):
    key, data = f"t/{uuid.uuid4().hex}/blob", os.urandom(300_000)
    await stores.blobs.put(key, chunks_of(data))
    assert await read(stores.blobs, key) == data
    assert await read(stores.blobs, key, 1000, 2000) == data[1000:3000]


def needle(photo_id: int, rendition: str, payload: bytes) -> bytes:
    """A needle's bytes as write_volume lays them out (header, payload, padding)."""
    header = volumes.encode_header(
        photo_id, rendition, len(payload), hashlib.sha256(payload).digest()
    )
    return header + payload + bytes(volumes.padding(len(header) + len(payload)))


async def test_a_needle_is_read_with_its_header_never_past_its_payload(stores):
    """A read from the start of the payload is one ranged read of the header (at most
    315 bytes before the payload) and the payload; a read from further in, one of the
    header, then one of the range; bytes past the payload are never read."""
    volume_id = new_id()
    first = needle(new_id(), "original", os.urandom(1000))
    payload = os.urandom(200_000)
    second = needle(new_id(), "thumb", payload)
    await stores.blobs.put(
        volume_key(volume_id), chunks_of(first + second + needle(7, "x", b"after"))
    )
    at = len(first) + volumes.header_size("thumb")
    locator = str(NeedleLocator(volume_id, at, len(payload)))
    assert await read(stores.blobs, locator) == payload
    assert await read(stores.blobs, locator, 0, 100) == payload[:100]
    assert await read(stores.blobs, locator, 5, 100) == payload[5:105]
    assert await read(stores.blobs, locator, 199_990, 100) == payload[199_990:]
    assert await read(stores.blobs, locator, 300_000) == b""
    opened = []

    class Recording:  # the real store, with its open calls written down
        def open(self, key, offset=0, length=None):
            opened.append((key, offset, length))
            return stores.blobs.open(key, offset, length)

    key = volume_key(volume_id)
    assert await read(Recording(), locator) == payload
    assert await read(Recording(), locator, 5, 100) == payload[5:105]
    assert opened == [
        (key, at - 315, 315 + len(payload)),
        (key, at - 315, 315),
        (key, at + 5, 100),
    ]


async def test_a_locator_that_points_at_no_needle_header_reads_nothing(stores):
    volume_id = new_id()
    payload = os.urandom(5000)
    bytes_ = needle(new_id(), "large", payload)
    await stores.blobs.put(volume_key(volume_id), chunks_of(bytes_))
    at = volumes.header_size("large")
    for offset, length in [
        (at + 8, len(payload) - 8),  # inside the payload: no header ends there
        (at, len(payload) - 1),  # the header is of another length
        (at - 1, len(payload)),  # not where the header ends
    ]:
        locator = str(NeedleLocator(volume_id, offset, length))
        for start, size in [(0, None), (0, 10), (3, 10)]:
            with pytest.raises(CorruptNeedle, match="no needle header"):
                await read(stores.blobs, locator, start, size)
    past_the_end = str(NeedleLocator(volume_id, at + len(payload) + 800, 10))
    with pytest.raises(StorageError):  # HDFS refuses the offset; local files read short
        await read(stores.blobs, past_the_end)


@pytest.mark.parametrize("garbled", ["magic", "name", "crc"])
async def test_a_needle_whose_header_fails_its_checks_reads_nothing(stores, garbled):
    volume_id = new_id()
    payload = os.urandom(3000)
    bytes_ = bytearray(needle(new_id(), "large", payload))
    at = {"magic": 0, "name": 57, "crc": volumes.header_size("large") - 1}[garbled]
    bytes_[at] ^= 0x10
    await stores.blobs.put(volume_key(volume_id), chunks_of(bytes(bytes_)))
    locator = str(NeedleLocator(volume_id, volumes.header_size("large"), len(payload)))
    for start, size in [(0, None), (100, 10)]:
        with pytest.raises(CorruptNeedle, match="no needle header"):
            await read(stores.blobs, locator, start, size)


@pytest.mark.parametrize("size", [10_000, 1_500_000], ids=["held", "streamed"])
async def test_a_whole_payload_that_fails_its_sha256_is_refused(stores, size):
    """A small payload is held until checked: nothing of it is handed on. A large one is
    handed on as it comes, and its read ends in CorruptNeedle, never cleanly. A read of
    part of a payload checks the header only (the sha256 is of the whole)."""
    volume_id = new_id()
    payload = os.urandom(size)
    bytes_ = bytearray(needle(new_id(), "original", payload))
    at = volumes.header_size("original")
    bytes_[at + size - 1] ^= 0x01  # the payload's last byte
    await stores.blobs.put(volume_key(volume_id), chunks_of(bytes(bytes_)))
    locator = str(NeedleLocator(volume_id, at, size))
    handed = []
    with pytest.raises(CorruptNeedle, match="does not match its header's sha256"):
        async for chunk in volumes.open_locator(stores.blobs, locator):
            handed.append(chunk)
    assert (sum(map(len, handed)) > 0) == (size > volumes.HELD_PAYLOAD_BYTES)
    assert await read(stores.blobs, locator, 0, 100) == payload[:100]


def source(photo_id: int, rendition: str, data: bytes) -> volumes.NeedleSource:
    return volumes.NeedleSource(photo_id, rendition, len(data), lambda: chunks_of(data))


def some_sources() -> list[tuple[volumes.NeedleSource, bytes]]:
    made = []
    for i, size in enumerate([0, 1, 7, 8, 9, 70_000, 300_001, 1_000_000]):
        data = os.urandom(size)
        made.append((source(new_id(), ("original", "large", "thumb")[i % 3], data), data))
    return made


async def whole(blobs, volume_id: int) -> bytes:
    return b"".join([c async for c in blobs.open(volume_key(volume_id))])


async def scan(blobs, volume_id: int) -> tuple[list[volumes.ScannedNeedle], volumes.VolumeScan]:
    scanner = volumes.VolumeScan(blobs, volume_id)
    return [n async for n in scanner], scanner


async def test_a_volume_is_written_whole_and_every_needle_reads_back(stores, monkeypatch):
    # Payloads past this are hashed in a first read and streamed in a second one.
    monkeypatch.setattr(volumes, "SMALL_PAYLOAD_BYTES", 100_000)
    made = some_sources()
    volume_id = new_id()
    locators = await volumes.write_volume(stores.blobs, volume_id, [s for s, _ in made])
    assert locators == volumes.layout(volume_id, [s for s, _ in made])
    expected_size = sum(volumes.needle_size(s.rendition, s.length) for s, _ in made)
    assert await stores.blobs.size(volume_key(volume_id)) == expected_size
    assert expected_size % volumes.ALIGNMENT == 0
    for locator, (source_, data) in zip(locators, made, strict=True):
        header = volumes.header_size(source_.rendition)
        assert (locator.offset - header) % volumes.ALIGNMENT == 0  # needles start aligned
        assert await read(stores.blobs, str(locator)) == data


async def test_a_scan_rebuilds_the_index_the_writer_returned(stores):
    made = some_sources()
    volume_id = new_id()
    locators = await volumes.write_volume(stores.blobs, volume_id, [s for s, _ in made])
    found, scanner = await scan(stores.blobs, volume_id)
    assert [n.needle.locator for n in found] == locators
    assert all(n.intact for n in found)
    assert [(n.needle.photo_id, n.needle.rendition) for n in found] == [
        (s.photo_id, s.rendition) for s, _ in made
    ]
    assert [n.needle.sha256 for n in found] == [hashlib.sha256(d).digest() for _, d in made]
    assert scanner.torn_at is None and scanner.end == await stores.blobs.size(volume_key(volume_id))


async def copy_volume(blobs, volume_id: int, change) -> int:
    """A new volume holding ``change(bytes of volume_id)``: volumes are never rewritten."""
    copy_id = new_id()
    await blobs.put(volume_key(copy_id), chunks_of(change(await whole(blobs, volume_id))))
    return copy_id


async def test_a_corrupted_payload_is_detected_and_the_scan_goes_on(stores):
    made = some_sources()
    volume_id = new_id()
    locators = await volumes.write_volume(stores.blobs, volume_id, [s for s, _ in made])
    hit = locators[5]  # 70,000 bytes

    def flip(data: bytes) -> bytes:
        at = hit.offset + 12_345
        return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1 :]

    found, scanner = await scan(stores.blobs, await copy_volume(stores.blobs, volume_id, flip))
    assert [n.intact for n in found] == [i != 5 for i in range(len(made))]
    assert [(n.needle.locator.offset, n.needle.locator.length) for n in found] == [
        (loc.offset, loc.length) for loc in locators
    ]
    assert scanner.torn_at is None


async def test_a_corrupted_header_stops_the_scan_with_an_error(stores):
    made = some_sources()
    volume_id = new_id()
    locators = await volumes.write_volume(stores.blobs, volume_id, [s for s, _ in made])
    header_at = locators[3].offset - volumes.header_size(made[3][0].rendition)

    def garble(data: bytes) -> bytes:
        at = header_at + 20  # inside the payload length
        return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]

    scanner = volumes.VolumeScan(stores.blobs, await copy_volume(stores.blobs, volume_id, garble))
    seen = []
    with pytest.raises(CorruptNeedle, match=f"byte {header_at}"):
        async for needle in scanner:
            seen.append(needle.needle.locator.offset)
    assert seen == [loc.offset for loc in locators[:3]]


@pytest.mark.parametrize("cut_into", ["header", "payload", "padding"])
async def test_a_truncated_volume_yields_the_whole_needles_before_the_cut(stores, cut_into):
    made = some_sources()
    volume_id = new_id()
    locators = await volumes.write_volume(stores.blobs, volume_id, [s for s, _ in made])
    last = locators[-2]  # 300,001 bytes: 3 bytes of padding after it
    needle_at = last.offset - volumes.header_size(made[-2][0].rendition)
    cut = {
        "header": needle_at + 30,
        "payload": last.offset + 100,
        "padding": last.offset + last.length + 1,
    }[cut_into]
    found, scanner = await scan(
        stores.blobs, await copy_volume(stores.blobs, volume_id, lambda data: data[:cut])
    )
    assert [n.needle.locator.offset for n in found] == [loc.offset for loc in locators[:-2]]
    assert all(n.intact for n in found)
    assert scanner.torn_at == scanner.end == needle_at


async def test_a_source_of_the_wrong_length_leaves_no_volume(stores):
    volume_id = new_id()
    liar = volumes.NeedleSource(new_id(), "original", 10, lambda: chunks_of(b"eleven byte"))
    with pytest.raises(CorruptNeedle, match="11 bytes, not 10"):
        await volumes.write_volume(stores.blobs, volume_id, [source(new_id(), "thumb", b"x"), liar])
    assert [e async for e in stores.blobs.entries(volume_key(volume_id))] == []


def test_volumes_are_planned_up_to_the_target_size():
    sizes = [100, 100, 100, 5000, 100]
    sources = [source(i + 1, "thumb", bytes(n)) for i, n in enumerate(sizes)]
    needle = [volumes.needle_size("thumb", n) for n in sizes]
    planned = volumes.plan_volumes(sources, target_bytes=needle[0] * 2)
    assert [[s.length for s in v] for v in planned] == [[100, 100], [100], [5000], [100]]
    assert volumes.plan_volumes([], 1000) == []


async def test_small_payloads_are_read_ahead_within_the_bounds_and_in_order(stores):
    reading = {"now": 0, "most": 0}
    payloads = [os.urandom(100 + i) for i in range(40)]

    def source(i: int) -> volumes.NeedleSource:
        async def read():
            reading["now"] += 1
            reading["most"] = max(reading["most"], reading["now"])
            await asyncio.sleep(0.01)  # a round trip to a DataNode
            reading["now"] -= 1
            yield payloads[i]

        return volumes.NeedleSource(new_id(), "thumb", len(payloads[i]), read)

    volume_id = new_id()
    locators = await volumes.write_volume(stores.blobs, volume_id, [source(i) for i in range(40)])
    assert 1 < reading["most"] <= volumes.READ_AHEAD + 1
    for locator, payload in zip(locators, payloads, strict=True):
        got = b"".join([c async for c in volumes.open_locator(stores.blobs, str(locator))])
        assert got == payload


async def test_a_failed_read_ahead_leaves_no_volume_and_no_read_running(stores):
    started, finished = [], []

    def source(i: int) -> volumes.NeedleSource:
        async def read():
            started.append(i)
            if i == 1:
                raise CorruptNeedle("a landed blob went bad")
            await asyncio.sleep(0.3 if i >= 2 else 0)  # those read ahead are slow
            finished.append(i)
            yield b"x" * 10

        return volumes.NeedleSource(new_id(), "thumb", 10, read)

    volume_id = new_id()
    with pytest.raises(CorruptNeedle):
        await volumes.write_volume(stores.blobs, volume_id, [source(i) for i in range(30)])
    assert [e async for e in stores.blobs.entries(volume_key(volume_id))] == []
    await asyncio.sleep(0.4)
    assert len(started) > 2  # reads had begun ahead of the failed one
    assert [i for i in finished if i >= 2] == []  # and were cancelled, not left running
