"""Local-file blob store: one file per blob under ``<data_dir>/blobs``.

A blob is written to a temporary file in ``blobs/.tmp``, fsynced, hard-linked to its
real name (which fails if the name exists: blobs are never overwritten), and every folder
from its own up to ``blobs`` fsynced (whoever created them), so a blob that ``put``
returned is on disk and a crash never leaves half a blob under a real name. A crash
leaves only a temporary file, named after its writer (``instastore.storage.scratch``),
which ``remove_abandoned_parts`` removes. A delete removes the folders it leaves empty.
File work runs in worker threads, off the event loop, in chunks: a blob is never held in
memory whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from instastore.config import Settings
from instastore.errors import Conflict, NotFound, StorageError, Unavailable
from instastore.storage import scratch
from instastore.storage.ports import BlobEntry, check_key

READ_CHUNK = 256 * 1024  # bytes per read from disk and per chunk handed to the caller
WRITE_BATCH = 1024 * 1024  # bytes gathered before one write call in a worker thread
LINK_ATTEMPTS = 3  # a concurrent delete may remove the blob's (empty) folder under a put
PART_SUFFIX = ".part"


class LocalBlobStore:
    name = "files"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / ".tmp"

    @classmethod
    async def connect(cls, settings: Settings) -> LocalBlobStore:
        store = cls(Path(settings.data_dir) / "blobs")
        await asyncio.to_thread(store._make_folders)
        return store

    def _make_folders(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        _fsync_dir(self.root.parent)
        _fsync_dir(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def ping(self) -> None:
        def check() -> None:
            for folder in (self.root, self.tmp):
                if not folder.is_dir() or not os.access(folder, os.W_OK):
                    raise Unavailable(f"blob folder {folder} is missing or not writable")

        await asyncio.to_thread(check)

    async def close(self) -> None:
        return None

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        final = self._path(key)
        tmp = self.tmp / scratch.scratch_name(suffix=PART_SUFFIX)
        try:
            f = await asyncio.to_thread(open, tmp, "xb")
        except OSError as exc:
            raise Unavailable(f"cannot write blobs under {self.root}: {exc}") from exc
        size = 0
        try:
            try:
                # Writes reach the file in batches, and a slow source may stall between
                # them: the heartbeat keeps its modification time young meanwhile.
                async with scratch.renewed(lambda: asyncio.to_thread(os.utime, tmp), str(tmp)):
                    pending: list[bytes] = []
                    pending_size = 0
                    async for chunk in chunks:
                        pending.append(chunk)
                        pending_size += len(chunk)
                        if pending_size >= WRITE_BATCH:
                            await asyncio.to_thread(f.writelines, pending)
                            size += pending_size
                            pending, pending_size = [], 0
                    await asyncio.to_thread(f.writelines, pending)
                    size += pending_size
                    await asyncio.to_thread(_flush_and_sync, f)
            finally:
                await asyncio.to_thread(f.close)
            await asyncio.to_thread(_link_into_place, tmp, final, self.root)
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
        return size

    async def open(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            f = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"no blob {key!r}") from exc
        try:
            await asyncio.to_thread(f.seek, offset)
            remaining = length
            while remaining is None or remaining > 0:
                want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await asyncio.to_thread(f.read, want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            # Closing a file opened for reading does no I/O worth a thread, and doing it
            # here means a cancelled or abandoned stream never leaks the descriptor.
            f.close()

    async def size(self, key: str) -> int:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError as exc:
            raise NotFound(f"no blob {key!r}") from exc

    async def delete(self, key: str) -> bool:
        path = self._path(key)

        def remove() -> bool:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            _sync_after_removal(_remove_empty_parents(path.parent, self.root))
            return True

        return await asyncio.to_thread(remove)

    async def entries(self, prefix: str = "") -> AsyncIterator[BlobEntry]:
        def walk() -> list[BlobEntry]:
            found = []
            for folder, dirs, files in os.walk(self.root):
                if Path(folder) == self.root and ".tmp" in dirs:
                    dirs.remove(".tmp")
                for name in files:
                    path = Path(folder) / name
                    key = str(path.relative_to(self.root))
                    if key.startswith(prefix):
                        try:
                            info = path.stat()
                        except FileNotFoundError:
                            continue  # deleted meanwhile
                        found.append(
                            BlobEntry(key, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))
                        )
            return found

        for entry in await asyncio.to_thread(walk):
            yield entry

    async def remove_empty_folders(self) -> int:
        def prune() -> int:
            removed = 0
            for folder, dirs, files in os.walk(self.root, topdown=False):
                path = Path(folder)
                if path in (self.root, self.tmp) or files or any((path / d).exists() for d in dirs):
                    continue
                try:
                    path.rmdir()  # refuses a folder a put has just written into
                except OSError:
                    continue
                _sync_after_removal(path.parent)
                removed += 1
            return removed

        return await asyncio.to_thread(prune)

    async def remove_abandoned_parts(
        self, now: datetime, grace: timedelta = scratch.SCRATCH_GRACE
    ) -> int:
        return await asyncio.to_thread(
            scratch.remove_abandoned_files, self.tmp, "", PART_SUFFIX, now, grace
        )


def _flush_and_sync(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())


def _link_into_place(tmp: Path, final: Path, root: Path) -> None:
    for attempt in range(LINK_ATTEMPTS):
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(tmp, final)  # atomic, and refuses an existing name
            break
        except FileExistsError as exc:
            raise Conflict(f"blob {str(final)!r} exists; blobs are never overwritten") from exc
        except FileNotFoundError:
            if attempt == LINK_ATTEMPTS - 1:
                raise StorageError(
                    f"cannot store blob at {final}: its folder keeps vanishing"
                ) from None
        except OSError as exc:
            raise StorageError(f"cannot store blob at {final}: {exc}") from exc
    # Every folder up to the root, not only those this call made: a folder another put
    # made may not be synced yet, and the blob is only durable once its whole path is.
    folder = final.parent
    while True:
        _fsync_dir(folder)
        if folder == root:
            break
        folder = folder.parent


def _remove_empty_parents(folder: Path, root: Path) -> Path:
    """Remove ``folder`` and its parents below ``root`` while they are empty; return the
    first folder kept (whose entries changed, to be synced)."""
    while folder != root:
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass  # a concurrent delete removed it: go on with its parent
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                break
            raise
        folder = folder.parent
    return folder


def _sync_after_removal(folder: Path) -> None:
    # A concurrent delete may have removed the folder too: nothing left to sync then.
    with contextlib.suppress(FileNotFoundError):
        _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
