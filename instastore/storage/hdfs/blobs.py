"""HDFS blob store over WebHDFS: one file per blob under ``<hdfs_root>/blobs/<key>``.

A blob is written whole to a temporary file in ``<hdfs_root>/blobs/.tmp`` (created with
overwrite=false and the replication factor from the settings; with
``dfs.datanode.synconclose=true`` on the cluster, CREATE's 201 means the bytes are on
disk on every replica), then RENAMEd to its key, which the NameNode does atomically and
refuses over an existing file: a key is written once, and a write cut off by a crash
leaves only a temporary file (named after its writer, ``instastore.storage.scratch``)
that ``remove_abandoned_parts`` removes, never part of a blob under its key. A delete
removes the folders it leaves empty, so a purged photo leaves no NameNode object. The
layout behind the key is this adapter's business: packing many small blobs into large
volume files later would not change a caller.

Sealed volumes go to ``<hdfs_root>/<hdfs_volume_dir>``, a folder with an erasure-coding
policy (``instastore.storage.hdfs.erasure``): ``connect`` makes it if missing, sets the
wanted policy on it if it has none, and logs what it has (``volume_folder``).
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime

from instastore.config import Settings
from instastore.errors import Conflict, InstastoreError, NotFound, StorageError, Unavailable
from instastore.storage import scratch
from instastore.storage.hdfs import erasure
from instastore.storage.hdfs.webhdfs import WebHdfs
from instastore.storage.ports import BlobEntry, check_key

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
RENAME_ATTEMPTS = 3  # a concurrent delete may remove the blob's (empty) folder under a put
MIN_LIVE_DATANODES = 1  # a new block needs at least one DataNode to go to
VOLUME_FOLDER_CHECK_S = 10.0  # a slow NameNode delays no start for long; the next start checks


class HdfsBlobStore:
    name = "hdfs"

    def __init__(self, client: WebHdfs, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.root = settings.hdfs_root.rstrip("/") + "/blobs"
        self.tmp = self.root + "/.tmp"
        self.volumes = f"{settings.hdfs_root.rstrip('/')}/{settings.hdfs_volume_dir}"

    @classmethod
    async def connect(cls, settings: Settings) -> HdfsBlobStore:
        store = cls(WebHdfs(settings.webhdfs_url, settings.hdfs_user), settings)
        try:
            await asyncio.wait_for(store.volume_folder(), VOLUME_FOLDER_CHECK_S)
        except (InstastoreError, TimeoutError) as exc:  # HDFS down: no reason not to start
            log.warning("could not check the sealed-volume folder %s: %r", store.volumes, exc)
        return store

    async def volume_folder(self) -> erasure.VolumeFolder:
        """Make the sealed-volume folder if missing; set the wanted erasure-coding policy
        on it when it has none (never change one it has); log and return what it has."""
        live, _ = await self.client.namenode_state()
        wanted = erasure.wanted_policy(self.settings.hdfs_ec_policy, live)
        await self.client.mkdirs(self.volumes)
        policy = await self.client.get_ec_policy(self.volumes)
        if policy is None and wanted is not None:
            try:
                await self.client.set_ec_policy(self.volumes, wanted)
                policy = wanted
            except StorageError as exc:  # not enabled, or not ours to set: the operator's
                log.warning(
                    "cannot set %s on %s (%s); enable and set it with `hdfs ec -enablePolicy "
                    "-policy %s` and `hdfs ec -setPolicy -path %s -policy %s`",
                    wanted,
                    self.volumes,
                    exc,
                    wanted,
                    self.volumes,
                    wanted,
                )
        folder = erasure.VolumeFolder(self.volumes, policy, wanted, live)
        log.log(
            logging.INFO if folder.as_wanted else logging.WARNING,
            "sealed volumes in %s: %s (wanted: %s, %d live DataNode(s))",
            folder.path,
            folder.describe(),
            wanted or erasure.REPLICATION,
            live,
        )
        return folder

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    async def ping(self) -> None:
        """Ready means a write can succeed: the NameNode answers, is out of safe mode,
        and has a live DataNode (after a NameNode restart, until the DataNodes register
        again, it has none, and every CREATE fails)."""
        live, safe_mode = await self.client.namenode_state()
        if safe_mode:
            raise Unavailable("the NameNode is in safe mode")
        if live < MIN_LIVE_DATANODES:
            raise Unavailable(
                f"the NameNode has {live} live DataNode(s); a write needs {MIN_LIVE_DATANODES}"
            )

    async def close(self) -> None:
        await self.client.close()

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        final = self._path(key)
        part = f"{self.tmp}/{scratch.scratch_name(suffix=PART_SUFFIX)}"
        try:
            size = await self.client.create(
                part, chunks, replication=self.settings.hdfs_replication
            )
            await self._rename_into_place(part, final)
        except BaseException:
            # A failed CREATE can leave a partial file: remove it (best effort; if this
            # fails too, gc removes it once it is abandoned). Never the final name.
            try:
                await self.client.delete(part)
            except InstastoreError:
                log.warning("could not remove the temporary file %s of a failed put", part)
            raise
        return size

    async def _rename_into_place(self, part: str, final: str) -> None:
        """RENAME answers 200 with false (no error) when the destination exists or its
        folder is missing: make the folder, and tell the two apart when refused."""
        folder = posixpath.dirname(final)
        for _ in range(RENAME_ATTEMPTS):
            await self.client.mkdirs(folder)
            if await self.client.rename(part, final):
                return
            if await self._exists(final):
                raise Conflict(f"blob {final!r} exists; blobs are never overwritten")
            # else a delete removed the (then empty) folder between MKDIRS and RENAME
        raise StorageError(f"cannot rename {part} to {final}: its folder keeps vanishing")

    async def _exists(self, path: str) -> bool:
        try:
            await self.client.get_file_status(path)
        except NotFound:
            return False
        return True

    async def open(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        if length == 0:
            await self.size(key)  # still NotFound for a missing key
            return
        async for chunk in self.client.open(self._path(key), offset, length):
            yield chunk

    async def size(self, key: str) -> int:
        return int((await self.client.get_file_status(self._path(key)))["length"])

    async def delete(self, key: str) -> bool:
        path = self._path(key)
        if not await self.client.delete(path):
            return False
        folder = posixpath.dirname(path)
        while folder != self.root and await self._remove_if_empty(folder):
            folder = posixpath.dirname(folder)
        return True

    async def _remove_if_empty(self, folder: str) -> bool:
        """A non-recursive DELETE: the NameNode refuses it for a folder with anything in
        it (one cheap call, however big the folder), so a put's file is never lost."""
        try:
            await self.client.delete(folder)
        except Conflict:
            return False  # not empty
        return True  # removed now, or by a concurrent delete

    async def entries(self, prefix: str = "") -> AsyncIterator[BlobEntry]:
        pending = [self.root]
        while pending:
            folder = pending.pop()
            try:
                async for status in self.client.iter_status(folder):
                    path = f"{folder}/{status['pathSuffix']}"
                    if status["type"] == "DIRECTORY":
                        if path != self.tmp:
                            pending.append(path)
                    elif (key := path[len(self.root) + 1 :]).startswith(prefix):
                        yield BlobEntry(key, status["length"], _time(status["modificationTime"]))
            except NotFound:
                continue  # removed meanwhile

    async def remove_empty_folders(self) -> int:
        removed = [0]

        async def prune(folder: str) -> bool:
            """Remove the empty folders under ``folder``, then it if it is empty: True then."""
            kept = False
            try:
                async for status in self.client.iter_status(folder):
                    path = f"{folder}/{status['pathSuffix']}"
                    if status["type"] == "FILE" or path == self.tmp or not await prune(path):
                        kept = True
            except NotFound:
                return True
            if kept or folder == self.root or not await self._remove_if_empty(folder):
                return False
            removed[0] += 1
            return True

        await prune(self.root)
        return removed[0]

    async def remove_abandoned_parts(self, now: datetime) -> int:
        abandoned = []
        try:
            async for status in self.client.iter_status(self.tmp):
                name = status["pathSuffix"]
                if name.endswith(PART_SUFFIX) and scratch.abandoned(
                    name, "", _time(status["modificationTime"]), now
                ):
                    abandoned.append(f"{self.tmp}/{name}")
        except NotFound:
            return 0  # nothing was ever written
        return sum([await self.client.delete(path) for path in abandoned])


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
