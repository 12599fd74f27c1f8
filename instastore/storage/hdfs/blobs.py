"""HDFS blob store over WebHDFS: one file per blob, under ``<hdfs_root>/blobs/<key>`` but for
volumes (below).

A blob is written whole to a temporary file in its folder's ``.tmp`` (created with
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
wanted policy on it if it has none, and logs what it has (``volume_folder``). Keys under
``volumes/`` (``instastore.storage.keys.VOLUME_PREFIX``) live there: ``volumes/<bucket>/<id>.vol``
is ``<hdfs_root>/<hdfs_volume_dir>/<bucket>/<id>.vol``, written through that folder's own
``.tmp`` (a policy applies when a file is created, by the folder it is created in, and a
RENAME keeps it: so a volume is erasure-coded from its first byte). Every other key lives
under ``<hdfs_root>/blobs``, replicated.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from instastore.config import Settings
from instastore.errors import Conflict, InstastoreError, NotFound, StorageError, Unavailable
from instastore.storage import scratch
from instastore.storage.hdfs import erasure
from instastore.storage.hdfs.webhdfs import Json, WebHdfs
from instastore.storage.keys import VOLUME_PREFIX
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
        self.volumes = f"{settings.hdfs_root.rstrip('/')}/{settings.hdfs_volume_dir}"
        # (folder, key prefix) of each area; its temporary files go to <folder>/.tmp.
        self.areas = ((self.volumes, VOLUME_PREFIX), (self.root, ""))

    @classmethod
    async def connect(cls, settings: Settings) -> HdfsBlobStore:
        client = WebHdfs(
            settings.webhdfs_url,
            settings.hdfs_user,
            settings.hdfs_block_reads,
            settings.datanode_addresses,
        )
        store = cls(client, settings)
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

    def _area(self, key: str) -> tuple[str, str]:
        """The folder a key lives under and the key's path inside it."""
        check_key(key)
        for folder, prefix in self.areas:
            if key.startswith(prefix):
                return folder, key[len(prefix) :]
        raise AssertionError("the last area takes every key")

    def path(self, key: str) -> str:
        """The HDFS path of a key's file."""
        folder, rest = self._area(key)
        return f"{folder}/{rest}"

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
        folder, rest = self._area(key)
        final = f"{folder}/{rest}"
        part = f"{folder}/.tmp/{scratch.scratch_name(suffix=PART_SUFFIX)}"
        try:
            # HDFS keeps an open file's modification time at its creation: the heartbeat
            # renews it, so a write longer than the grace is not taken for a leftover.
            async with scratch.renewed(lambda: self.client.touch(part), part):
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
        # A volume is never changed once closed (and never renamed over): its blocks can be
        # read straight from the DataNodes with their locations cached.
        immutable = key.startswith(VOLUME_PREFIX)
        async for chunk in self.client.open(self.path(key), offset, length, immutable):
            yield chunk

    async def size(self, key: str) -> int:
        return int((await self.client.get_file_status(self.path(key)))["length"])

    async def delete(self, key: str) -> bool:
        root, rest = self._area(key)
        path = f"{root}/{rest}"
        if not await self.client.delete(path):
            return False
        folder = posixpath.dirname(path)
        while folder != root and await self._remove_if_empty(folder):
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
        for root, area_prefix in self.areas:
            if root == self.root and prefix.startswith(VOLUME_PREFIX):
                continue  # no volume lives in the blob folder
            if not (prefix.startswith(area_prefix) or area_prefix.startswith(prefix)):
                continue
            async for key, status in self._files(root, area_prefix):
                if key.startswith(prefix):
                    yield BlobEntry(key, status["length"], _time(status["modificationTime"]))

    async def _files(self, root: str, prefix: str) -> AsyncIterator[tuple[str, Json]]:
        """(key, file status) of every file under ``root`` but its .tmp; for the blobs
        area, not the volume folder's keys (a volume never lives there)."""
        skipped = {f"{root}/.tmp", f"{self.root}/{VOLUME_PREFIX.rstrip('/')}"}
        pending = [root]
        while pending:
            folder = pending.pop()
            try:
                async for status in self.client.iter_status(folder):
                    path = f"{folder}/{status['pathSuffix']}"
                    if status["type"] == "DIRECTORY":
                        if path not in skipped:
                            pending.append(path)
                    else:
                        yield prefix + path[len(root) + 1 :], status
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
                    if status["type"] == "FILE" or path in kept_folders or not await prune(path):
                        kept = True
            except NotFound:
                return True
            if kept or folder in kept_folders or not await self._remove_if_empty(folder):
                return False
            removed[0] += 1
            return True

        kept_folders = {path for root, _ in self.areas for path in (root, f"{root}/.tmp")}
        for root, _ in self.areas:
            await prune(root)
        return removed[0]

    async def cluster_stats(self) -> dict[str, Any]:
        """What the NameNode says of this store (for ``instastore storage stats``): files
        and folders under hdfs_root (GETCONTENTSUMMARY), blocks and files + folders of the
        whole namespace (/jmx FSNamesystem), logical and raw bytes (spaceConsumed) of
        hdfs_root and of the volume folder, and how many volumes are erasure-coded."""
        root = await self.client.content_summary(self.settings.hdfs_root)
        sealed = await self.client.content_summary(self.volumes)
        namesystem = await self.client.namesystem()
        coded = [s async for _, s in self._files(self.volumes, VOLUME_PREFIX) if s.get("ecPolicy")]
        return {
            "namenode_files": root["fileCount"],
            "namenode_directories": root["directoryCount"],
            "namenode_total_files_and_directories": namesystem.get("FilesTotal"),
            "namenode_total_blocks": namesystem.get("BlocksTotal"),
            "logical_bytes": root["length"],
            "raw_bytes": root["spaceConsumed"],
            "volume_folder_logical_bytes": sealed["length"],
            "volume_folder_raw_bytes": sealed["spaceConsumed"],
            "volume_folder_policy": await self.client.get_ec_policy(self.volumes) or "replication",
            "volumes_erasure_coded": len(coded),
        }

    async def remove_abandoned_parts(
        self, now: datetime, grace: timedelta = scratch.SCRATCH_GRACE
    ) -> int:
        abandoned = []
        for root, _ in self.areas:
            tmp = f"{root}/.tmp"
            try:
                async for status in self.client.iter_status(tmp):
                    name = status["pathSuffix"]
                    if name.endswith(PART_SUFFIX) and scratch.abandoned(
                        name, "", _time(status["modificationTime"]), now, grace
                    ):
                        abandoned.append(f"{tmp}/{name}")
            except NotFound:
                continue  # nothing was ever written there
        return sum([await self.client.delete(path) for path in abandoned])


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
