"""Receiving an upload: stream it to a temporary file under a size cap while hashing,
and read it back in chunks for the blob store.

Every byte goes to local disk first, in a worker thread, so a slow client never holds
a blob-store write open. This module never decodes media and never touches a store.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from instastore import media
from instastore.errors import TooLarge
from instastore.storage import scratch

HASH_BATCH = 1024 * 1024  # bytes gathered before one write + hash step in a worker thread
FILE_CHUNK = 256 * 1024  # bytes per chunk when streaming the temporary file to the blob store
UPLOAD_PREFIX = "upload-"  # temporary files of uploads in flight, under <data_dir>/tmp


@dataclass
class Received:
    """An upload on local disk: where, how big, its sha256 and its first bytes."""

    path: Path
    size: int
    sha256: str
    head: bytes

    def discard(self) -> None:
        """Remove the upload and every file processing made beside it."""
        for path in (self.path, *(media.derived_path(self.path, name) for name in media.DERIVED)):
            path.unlink(missing_ok=True)


async def receive(chunks: AsyncIterable[bytes], max_bytes: int, tmp_dir: Path) -> Received:
    """Stream ``chunks`` to a temporary file, hashing as it goes; ``TooLarge`` (and no
    file left) past ``max_bytes``."""
    await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
    prefix = UPLOAD_PREFIX + scratch.owner_tag()  # so a cleaner can tell when its writer is gone
    fd, name = await asyncio.to_thread(tempfile.mkstemp, dir=tmp_dir, prefix=prefix)
    path = Path(name)
    digest = hashlib.sha256()
    size, head = 0, b""
    pending: list[bytes] = []
    pending_size = 0

    def flush(parts: list[bytes]) -> None:
        for part in parts:
            digest.update(part)
            view = memoryview(part)
            while view:
                view = view[os.write(fd, view) :]

    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"upload is over the limit of {max_bytes:,} bytes")
            if len(head) < media.SNIFF_BYTES:
                head += chunk[: media.SNIFF_BYTES - len(head)]
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= HASH_BATCH:
                await asyncio.to_thread(flush, pending)
                pending, pending_size = [], 0
        await asyncio.to_thread(flush, pending)
    except BaseException:
        os.close(fd)
        # Not awaited: on cancellation the clean-up must run to its end, and this is one
        # unlink of a local scratch file.
        path.unlink(missing_ok=True)  # noqa: ASYNC240
        raise
    os.close(fd)
    return Received(path, size, digest.hexdigest(), head)


def remove_abandoned_uploads(tmp_dir: Path, now: datetime) -> int:
    """Remove the temporary files of uploads whose process is gone (a crash); return how
    many. Blocking: run it in a worker thread. Uploads in flight are left alone."""
    return scratch.remove_abandoned_files(tmp_dir, UPLOAD_PREFIX, "", now)


async def file_chunks(path: Path) -> AsyncGenerator[bytes, None]:
    """The bytes of a local file (the upload, or a rendition processing wrote beside
    it), ``FILE_CHUNK`` at a time, each read in a worker thread."""
    f = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, FILE_CHUNK):
            yield chunk
    finally:
        f.close()  # read-only: no flush, nothing to wait for
