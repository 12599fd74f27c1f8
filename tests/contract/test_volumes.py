"""Volumes on both blob adapters: the needle format, needle locators read through the one
open function, volumes written whole and scanned back."""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
import zlib

import pytest

from instastore import volumes
from instastore.errors import CorruptRecord
from instastore.volumes import NeedleLocator

from .conftest import new_id


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


async def test_a_needle_locator_is_one_ranged_read_of_its_payload(stores):
    """Bytes around the payload (as in a volume) are never read: the read is offset,
    length of the payload, clipped to it whatever the caller asks."""
    volume_id = new_id()
    before, payload, after = os.urandom(1000), os.urandom(200_000), os.urandom(777)
    await stores.blobs.put(volumes.volume_key(volume_id), chunks_of(before + payload + after))
    locator = str(NeedleLocator(volume_id, len(before), len(payload)))
    assert await read(stores.blobs, locator) == payload
    assert await read(stores.blobs, locator, 5, 100) == payload[5:105]
    assert await read(stores.blobs, locator, 199_990, 100) == payload[199_990:]
    assert await read(stores.blobs, locator, 300_000) == b""
