"""Volumes: many blobs packed as needles into one large, immutable blob (Haystack's
volume), so that a photo costs the NameNode a few bytes of a file instead of a file.

This module owns the needle format, the needle locator and its string form, writing a
volume whole (one ``BlobStore.put``), scanning one back, and the one function that opens
the bytes behind any locator a photo record holds. It never touches metadata. A volume's
blob key (``volumes/<bucket>/<id>.vol``) is the storage port's (``instastore.storage.keys``),
which the blob adapters read too.

A volume is a sequence of needles; needle ``i + 1`` starts where needle ``i`` ends.
Every integer is big-endian. One needle, starting at a multiple of 8 bytes:

    offset    size  field
    0         4     magic, b"INDL"
    4         1     format version, 1
    5         1     N: length of the rendition name in bytes (1..255)
    6         2     reserved, zero
    8         8     photo id (signed)
    16        8     L: payload length in bytes (unsigned)
    24        32    sha256 of the payload
    56        N     rendition name (UTF-8)
    56+N      4     CRC-32 (zlib) of bytes 0 .. 56+N of this header
    60+N      L     payload: the blob's bytes, as they were
    60+N+L    P     zero padding, so that the needle ends on a multiple of 8 (P < 8)

So a volume can be checked and rebuilt on its own: each header says whose bytes follow
and how many, and both the header and the payload carry their own checksum.

A needle locator is (volume id, payload offset, payload length); its string form
``n:<volume id>:<offset>:<length>`` lives in a photo record where a blob key lives
otherwise. Blob keys written by uploads (``<bucket>/<photo_id>.<rendition>.<ext>``)
never start with ``n:``. Reading a needle checks its header, every time: a read from
the start of the payload is ONE ranged read of the header and the payload (the header
ends where the payload starts; its name length is found by trying each, checked by the
magic, the alignment, the payload length and the header's CRC), a read from further in
is a read of the header, then one of the range. A read of the whole payload is also
checked against the header's sha256: held until checked when small
(``HELD_PAYLOAD_BYTES``), else checked as it streams, a mismatch raising at its end.
``CorruptNeedle`` in every case: a locator that points at no needle, or at bytes that
are not what was packed, never reads as a photo.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from instastore import ids
from instastore.errors import CorruptNeedle, CorruptRecord, InvalidInput
from instastore.storage.keys import volume_key
from instastore.storage.ports import BlobStore

MAGIC = b"INDL"  # "instastore needle"
FORMAT_VERSION = 1
_FIXED = struct.Struct(">4sBBHqQ32s")  # magic .. sha256: 56 bytes
_CRC = struct.Struct(">I")
FIXED_HEADER_BYTES = _FIXED.size  # 56
ALIGNMENT = 8  # bytes; needles start on multiples of it
MAX_NAME_BYTES = 255  # the name length is one byte
MAX_HEADER_BYTES = FIXED_HEADER_BYTES + MAX_NAME_BYTES + _CRC.size  # 315: read before a payload
# A whole payload up to this size (thumbnails, feed images) is held until its sha256 is
# checked, so nothing unchecked is handed on; a larger one is checked as it streams.
HELD_PAYLOAD_BYTES = 2**20
MAX_PAYLOAD_BYTES = 2**62  # far above any upload; a bigger length read back is corruption
LOCATOR_PREFIX = "n:"
_LOCATOR = re.compile(r"n:([0-9]{1,19}):([0-9]{1,20}):([0-9]{1,20})")
# Bytes a small payload may be held in memory while it is hashed before its needle is
# written (a needle's header carries the payload's sha256, so it must be known first);
# larger payloads are read twice instead.
SMALL_PAYLOAD_BYTES = 16 * 2**20
# Small payloads read ahead of the one being written (a landed blob is a round trip or
# two: reading one at a time, the packer waits on them): at most this many, and bytes.
READ_AHEAD = 16
READ_AHEAD_BYTES = 32 * 2**20
COPY_CHUNK = 256 * 1024  # bytes per chunk handed to put when streaming a held payload


@dataclass(frozen=True)
class NeedleLocator:
    """Where a needle's payload lives: ``length`` bytes at ``offset`` of a volume."""

    volume_id: int
    offset: int  # of the payload, from the start of the volume
    length: int  # of the payload

    def __str__(self) -> str:
        return f"{LOCATOR_PREFIX}{self.volume_id}:{self.offset}:{self.length}"

    @property
    def volume_key(self) -> str:
        return volume_key(self.volume_id)


def is_needle(locator: str) -> bool:
    return locator.startswith(LOCATOR_PREFIX)


def parse_locator(locator: str) -> NeedleLocator:
    """A needle locator from its string form; ``CorruptRecord`` if it is malformed."""
    match = _LOCATOR.fullmatch(locator)
    if match is None:
        raise CorruptRecord(f"malformed needle locator {locator!r:.80}")
    volume_id, offset, length = (int(g) for g in match.groups())
    if not 0 < volume_id <= ids.MAX_ID:
        raise CorruptRecord(f"needle locator {locator!r} names no valid volume id")
    return NeedleLocator(volume_id, offset, length)


def blob_of(locator: str) -> str:
    """The blob whose bytes a locator points into: its volume for a needle, else the
    blob key itself (what gc and purge count references of)."""
    return parse_locator(locator).volume_key if is_needle(locator) else locator


async def open_locator(
    blobs: BlobStore, locator: str, offset: int = 0, length: int | None = None
) -> AsyncIterator[bytes]:
    """Stream ``length`` bytes (all, when None) from ``offset`` of the bytes behind any
    locator a record holds: a blob key, or a needle (its header checked, never read past
    its payload: see the module docstring). Errors are raised on first iteration, as
    ``BlobStore.open`` does."""
    if not is_needle(locator):
        source = blobs.open(locator, offset, length)
    else:
        needle = parse_locator(locator)
        start = min(max(offset, 0), needle.length)
        wanted = needle.length - start if length is None else min(length, needle.length - start)
        source = _needle_bytes(blobs, needle, start, wanted)
    async with _closing(source):
        async for chunk in source:
            yield chunk


async def _needle_bytes(
    blobs: BlobStore, needle: NeedleLocator, start: int, wanted: int
) -> AsyncIterator[bytes]:
    """``wanted`` bytes from ``start`` of the needle's payload, after its header."""
    head_at = max(0, needle.offset - MAX_HEADER_BYTES)
    with_payload = start == 0  # then one read: the header, and the payload after it
    stream = blobs.open(
        needle.volume_key, head_at, needle.offset - head_at + (wanted if with_payload else 0)
    )
    async with _closing(stream):
        reader = _Reader(stream)
        sha = _header_before(needle, await reader.read(needle.offset - head_at))
        if with_payload:
            whole = wanted == needle.length
            async for chunk in _checked(needle, reader.rest(), sha if whole else None):
                yield chunk
            return
    if wanted:
        stream = blobs.open(needle.volume_key, needle.offset + start, wanted)
        async with _closing(stream):
            async for chunk in stream:
                yield chunk


def _header_before(needle: NeedleLocator, region: bytes) -> bytes:
    """The payload sha256 of the header that ``region`` (the bytes up to the payload)
    ends with; ``CorruptNeedle`` when no valid header of a payload of this length ends
    there. The name length is not in the locator: each is tried, the CRC decides."""
    end = len(region)
    region_at = needle.offset - end
    for name_len in range(1, MAX_NAME_BYTES + 1):
        at = end - FIXED_HEADER_BYTES - name_len - _CRC.size
        if at < 0:
            break
        if (region_at + at) % ALIGNMENT:
            continue
        magic, version, n, reserved, _, length, sha = _FIXED.unpack_from(region, at)
        if (magic, version, n, reserved, length) != (
            MAGIC,
            FORMAT_VERSION,
            name_len,
            0,
            needle.length,
        ):
            continue
        if zlib.crc32(region[at : end - _CRC.size]) == _CRC.unpack_from(region, end - _CRC.size)[0]:
            return bytes(sha)
    raise CorruptNeedle(
        f"no needle header of a {needle.length}-byte payload ends at byte {needle.offset} "
        f"of volume {needle.volume_id}"
    )


async def _checked(
    needle: NeedleLocator, chunks: AsyncIterator[bytes], sha: bytes | None
) -> AsyncIterator[bytes]:
    """The payload's chunks, checked against ``sha`` when it is given (a whole read):
    held until checked when small, else handed on as they come and checked at the end."""
    if sha is None:
        async for chunk in chunks:
            yield chunk
        return
    digest = hashlib.sha256()
    held: list[bytes] | None = [] if needle.length <= HELD_PAYLOAD_BYTES else None
    async for chunk in chunks:
        digest.update(chunk)
        if held is None:
            yield chunk
        else:
            held.append(chunk)
    if digest.digest() != sha:
        raise CorruptNeedle(f"the payload at {needle} does not match its header's sha256")
    for chunk in held or ():
        yield chunk


@contextlib.asynccontextmanager
async def _closing(stream: AsyncIterator[bytes]) -> AsyncIterator[AsyncIterator[bytes]]:
    """``contextlib.aclosing`` for a port's stream (typed as an iterator; in fact an
    async generator), so an abandoned read never leaks its file or connection."""
    try:
        yield stream
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


# ---- the needle format -------------------------------------------------------------


def encode_header(photo_id: int, rendition: str, length: int, sha256: bytes) -> bytes:
    name = rendition.encode()
    if not 1 <= len(name) <= MAX_NAME_BYTES:
        raise InvalidInput(f"rendition name must be 1 to {MAX_NAME_BYTES} bytes: {rendition!r}")
    if not 0 <= length <= MAX_PAYLOAD_BYTES or len(sha256) != 32:
        raise InvalidInput(f"bad needle payload: {length} bytes, {len(sha256)}-byte digest")
    head = _FIXED.pack(MAGIC, FORMAT_VERSION, len(name), 0, photo_id, length, sha256) + name
    return head + _CRC.pack(zlib.crc32(head))


def header_size(rendition: str) -> int:
    return FIXED_HEADER_BYTES + len(rendition.encode()) + _CRC.size


def padding(needle_bytes: int) -> int:
    """Zero bytes after a needle of this size, to the next multiple of ALIGNMENT."""
    return -needle_bytes % ALIGNMENT


def needle_size(rendition: str, length: int) -> int:
    """Bytes a needle of a ``length``-byte payload takes in a volume, padding included."""
    raw = header_size(rendition) + length
    return raw + padding(raw)


@dataclass(frozen=True)
class Needle:
    """What a needle's header says, and where its payload is."""

    photo_id: int
    rendition: str
    sha256: bytes
    locator: NeedleLocator


# ---- writing a volume ----------------------------------------------------------------


@dataclass(frozen=True)
class NeedleSource:
    """One blob to pack: whose bytes, how many, and how to read them (each call of
    ``read`` starts a fresh stream of all of them)."""

    photo_id: int
    rendition: str
    length: int
    read: Callable[[], AsyncIterator[bytes]]


def blob_source(
    blobs: BlobStore, photo_id: int, rendition: str, key: str, length: int
) -> NeedleSource:
    """A source reading a landed blob (or another needle) through ``open_locator``."""
    return NeedleSource(photo_id, rendition, length, lambda: open_locator(blobs, key))


def plan_volumes(sources: Sequence[NeedleSource], target_bytes: int) -> list[list[NeedleSource]]:
    """Split sources, in order, into volumes of at most ``target_bytes`` each (a needle
    bigger than the target gets a volume of its own)."""
    volumes: list[list[NeedleSource]] = []
    size = 0
    for source in sources:
        grow = needle_size(source.rendition, source.length)
        if not volumes or size + grow > target_bytes:
            volumes.append([])
            size = 0
        volumes[-1].append(source)
        size += grow
    return volumes


def layout(volume_id: int, sources: Sequence[NeedleSource]) -> list[NeedleLocator]:
    """The locators the sources' needles get in a volume, known before it is written."""
    locators = []
    at = 0
    for source in sources:
        locators.append(NeedleLocator(volume_id, at + header_size(source.rendition), source.length))
        at += needle_size(source.rendition, source.length)
    return locators


async def write_volume(
    blobs: BlobStore, volume_id: int, sources: Sequence[NeedleSource]
) -> list[NeedleLocator]:
    """Write the sources as needles into a new volume, whole, in one ``put`` (durable
    once it returns; ``Conflict`` if the volume exists), and return their locators in
    the order of ``sources``. A source whose bytes are not ``length`` long, or change
    between two reads, fails the put: no volume is left."""
    locators = layout(volume_id, sources)
    size = await blobs.put(volume_key(volume_id), _volume_chunks(sources))
    expected = sum(needle_size(s.rendition, s.length) for s in sources)
    if size != expected:  # _volume_chunks checks each needle; this is the sum of them
        raise CorruptNeedle(f"volume {volume_id} is {size} bytes, not {expected}")
    return locators


async def _volume_chunks(sources: Sequence[NeedleSource]) -> AsyncIterator[bytes]:
    ahead = _ReadAhead(sources)
    try:
        async for chunk in _needles(sources, ahead):
            yield chunk
    finally:
        await ahead.cancel()


class _ReadAhead:
    """Reads of small payloads started ahead, in order (``READ_AHEAD``, ``READ_AHEAD_BYTES``)."""

    def __init__(self, sources: Sequence[NeedleSource]) -> None:
        self.sources = sources
        self.next = 0  # index of the next source to start reading
        self.reads: dict[int, asyncio.Task[bytes]] = {}

    def start(self, after: int) -> None:
        """Start reads of the small payloads after index ``after``, within the bounds."""
        self.next = max(self.next, after + 1)
        held = sum(self.sources[i].length for i in self.reads)
        while self.next < len(self.sources) and len(self.reads) < READ_AHEAD:
            source = self.sources[self.next]
            if source.length > SMALL_PAYLOAD_BYTES or held + source.length > READ_AHEAD_BYTES:
                return
            self.reads[self.next] = asyncio.ensure_future(_read_checked(source))
            held += source.length
            self.next += 1

    async def payload(self, index: int) -> bytes:
        read = self.reads.pop(index, None)
        if read is None:
            read = asyncio.ensure_future(_read_checked(self.sources[index]))
        self.start(index)
        return await read

    async def cancel(self) -> None:
        reads, self.reads = list(self.reads.values()), {}
        for read in reads:
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)


async def _needles(sources: Sequence[NeedleSource], ahead: _ReadAhead) -> AsyncIterator[bytes]:
    for index, source in enumerate(sources):
        if source.length <= SMALL_PAYLOAD_BYTES:
            payload = await ahead.payload(index)
            digest = hashlib.sha256(payload).digest()
            yield encode_header(source.photo_id, source.rendition, source.length, digest)
            for at in range(0, len(payload), COPY_CHUNK):
                yield payload[at : at + COPY_CHUNK]
        else:
            digest = await _hash(source)
            yield encode_header(source.photo_id, source.rendition, source.length, digest)
            async for chunk in _stream_checked(source, digest):
                yield chunk
        yield bytes(padding(header_size(source.rendition) + source.length))


async def _read_checked(source: NeedleSource) -> bytes:
    payload = b"".join([chunk async for chunk in source.read()])
    _check_length(source, len(payload))
    return payload


async def _hash(source: NeedleSource) -> bytes:
    digest = hashlib.sha256()
    size = 0
    async for chunk in source.read():
        digest.update(chunk)
        size += len(chunk)
    _check_length(source, size)
    return digest.digest()


async def _stream_checked(source: NeedleSource, expected: bytes) -> AsyncIterator[bytes]:
    digest = hashlib.sha256()
    size = 0
    stream = source.read()
    async with _closing(stream):
        async for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
            if size > source.length:
                break
            yield chunk
    _check_length(source, size)
    if digest.digest() != expected:
        raise CorruptNeedle(f"{_what(source)} changed between two reads")


def _check_length(source: NeedleSource, size: int) -> None:
    if size != source.length:
        raise CorruptNeedle(f"{_what(source)} is {size} bytes, not {source.length}")


def _what(source: NeedleSource) -> str:
    return f"the {source.rendition} of photo {source.photo_id}"


# ---- scanning a volume -----------------------------------------------------------------


@dataclass(frozen=True)
class ScannedNeedle:
    needle: Needle
    intact: bool  # the payload's sha256 matches its header's


class VolumeScan:
    """Read a volume sequentially (one streamed read), check every header's CRC and
    every payload's sha256, and yield its needles in order. A volume cut short (a torn
    tail: its last needle incomplete) ends the scan cleanly after the last whole needle;
    ``torn_at`` then says where the cut needle began. A header that fails its checks
    before the end raises ``CorruptNeedle`` (its length cannot be trusted, so nothing
    after it can be found)."""

    def __init__(self, blobs: BlobStore, volume_id: int) -> None:
        self.blobs = blobs
        self.volume_id = volume_id
        self.end = 0  # where the last whole needle ended
        self.torn_at: int | None = None

    async def __aiter__(self) -> AsyncIterator[ScannedNeedle]:
        reader = _Reader(self.blobs.open(volume_key(self.volume_id)))
        async with _closing(reader.source):
            while True:
                fixed = await reader.read(FIXED_HEADER_BYTES)
                if not fixed:
                    return
                found = await self._needle(reader, fixed)
                if found is None:
                    self.torn_at = self.end
                    return
                self.end = reader.position
                yield found

    async def _needle(self, reader: _Reader, fixed: bytes) -> ScannedNeedle | None:
        start = self.end
        if len(fixed) < FIXED_HEADER_BYTES:
            return None
        magic, version, name_len, reserved, photo_id, length, sha = _FIXED.unpack(fixed)
        if magic != MAGIC or version != FORMAT_VERSION or reserved or not name_len:
            raise CorruptNeedle(f"volume {self.volume_id}: no needle header at byte {start}")
        rest = await reader.read(name_len + _CRC.size)
        if len(rest) < name_len + _CRC.size:
            return None
        (crc,) = _CRC.unpack(rest[name_len:])
        if zlib.crc32(fixed + rest[:name_len]) != crc or length > MAX_PAYLOAD_BYTES:
            raise CorruptNeedle(f"volume {self.volume_id}: bad header checksum at byte {start}")
        name = rest[:name_len].decode(errors="replace")
        payload_at = reader.position
        digest, got = await reader.digest(length)
        pad = padding(FIXED_HEADER_BYTES + name_len + _CRC.size + length)
        if got < length or len(await reader.read(pad)) < pad:
            return None
        needle = Needle(photo_id, name, sha, NeedleLocator(self.volume_id, payload_at, length))
        return ScannedNeedle(needle, intact=digest == sha)


class _Reader:
    """Exact-size reads over a stream of chunks, counting the position."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self.source = source
        self.buffer = b""
        self.at = 0  # of the next unread byte in buffer
        self.position = 0  # in the stream

    async def read(self, size: int) -> bytes:
        """``size`` bytes, fewer only at the end of the stream."""
        while len(self.buffer) - self.at < size:
            chunk = await anext(self.source, b"")
            if not chunk:
                break
            self.buffer = self.buffer[self.at :] + chunk
            self.at = 0
        out = self.buffer[self.at : self.at + size]
        self.at += len(out)
        self.position += len(out)
        return out

    async def rest(self) -> AsyncIterator[bytes]:
        """What is left of the stream, as it comes."""
        if self.at < len(self.buffer):
            yield self.buffer[self.at :]
        self.buffer, self.at = b"", 0
        async for chunk in self.source:
            yield chunk

    async def digest(self, size: int) -> tuple[bytes, int]:
        """The sha256 of the next ``size`` bytes (fewer at the end), without holding
        them all, and how many there were."""
        digest = hashlib.sha256()
        left = size
        while left:
            piece = await self.read(min(left, COPY_CHUNK))
            if not piece:
                break
            digest.update(piece)
            left -= len(piece)
        return digest.digest(), size - left
