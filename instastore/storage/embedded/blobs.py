"""Local-file blob store: one file per blob under ``<data_dir>/blobs``.

A blob is written to a temporary file, fsynced, hard-linked to its real name (which
fails if the name exists: blobs are never overwritten), and its folder fsynced, so a
blob that ``put`` returned is on disk and a crash never leaves half a blob under a real
name. File work runs in worker threads, off the event loop, in chunks: a blob is never
held in memory whole.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from instastore.config import Settings
from instastore.errors import Conflict, NotFound, StorageError, Unavailable
from instastore.storage.ports import check_key

READ_CHUNK = 256 * 1024  # bytes per read from disk and per chunk handed to the caller
WRITE_BATCH = 1024 * 1024  # bytes gathered before one write call in a worker thread


class LocalBlobStore:
    name = "files"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / ".tmp"

    @classmethod
    async def connect(cls, settings: Settings) -> LocalBlobStore:
        store = cls(Path(settings.data_dir) / "blobs")
        await asyncio.to_thread(store.tmp.mkdir, parents=True, exist_ok=True)
        return store

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def ping(self) -> None:
        def check() -> None:
            if not self.root.is_dir() or not os.access(self.root, os.W_OK):
                raise Unavailable(f"blob folder {self.root} is missing or not writable")

        await asyncio.to_thread(check)

    async def close(self) -> None:
        return None

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        final = self._path(key)
        tmp = self.tmp / f"{uuid.uuid4().hex}.part"
        try:
            f = await asyncio.to_thread(open, tmp, "xb")
        except OSError as exc:
            raise Unavailable(f"cannot write blobs under {self.root}: {exc}") from exc
        size = 0
        try:
            try:
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
            await asyncio.to_thread(_link_into_place, tmp, final)
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
        return size

    async def open(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
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
            _fsync_dir(path.parent)
            return True

        return await asyncio.to_thread(remove)

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        def walk() -> list[str]:
            found = []
            for folder, dirs, files in os.walk(self.root):
                if Path(folder) == self.root and ".tmp" in dirs:
                    dirs.remove(".tmp")
                for name in files:
                    key = str((Path(folder) / name).relative_to(self.root))
                    if key.startswith(prefix):
                        found.append(key)
            return found

        for key in await asyncio.to_thread(walk):
            yield key


def _flush_and_sync(f) -> None:
    f.flush()
    os.fsync(f.fileno())


def _link_into_place(tmp: Path, final: Path) -> None:
    created = [d for d in [final.parent, *final.parent.parents] if not d.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    for folder in reversed(created):  # a new folder is durable once its parent is synced
        _fsync_dir(folder.parent)
    try:
        os.link(tmp, final)  # atomic, and refuses an existing name
    except FileExistsError as exc:
        raise Conflict(f"blob {str(final)!r} exists; blobs are never overwritten") from exc
    except OSError as exc:
        raise StorageError(f"cannot store blob at {final}: {exc}") from exc
    _fsync_dir(final.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
