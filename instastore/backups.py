"""Backups of a local cluster's data: a Cassandra snapshot of the keyspace on every node
and HDFS snapshots of the blob root, under one name, listed and restored together
(docs/OPERATIONS.md, "Backups and the restore drill").

``create`` takes, in this order:

1. the HDFS snapshot ``NAME.before`` of ``hdfs_root``;
2. ``nodetool snapshot -t NAME <keyspace>`` on every Cassandra node (a flush, then hard
   links: seconds, whatever the size);
3. the HDFS snapshot ``NAME.after``.

Why no restored record points at missing bytes: a record in the Cassandra snapshot names
blobs that were written, closed and renamed into place before the record was saved (the
upload order), so before step 2. Such a blob was there at step 1 (and is in
``NAME.before``), or it was written between steps 1 and 2; blobs are never rewritten,
and nothing deletes a blob a record references while it is that young (the packer
deletes landed blobs of photos older than ``--min-age``, purge those of photos deleted
``retention_days`` ago, compaction volumes it has emptied, gc only what no record
references), so it is still there at step 3 (and in ``NAME.after``). The union of the
two snapshots therefore holds every blob the metadata snapshot references, and
``restore`` makes the blob root that union; blobs of later uploads go, as the records
that named them do. ``restore`` ends by checking it: every locator of every restored
record is read back from the blob listing (``RestoreReport.missing``). The one way around
it is ``pack --min-age 0`` running during ``create``; do not.

``restore`` is offline for Cassandra, as its documentation has it for a full restore:
every node is drained and stopped, each table folder of the keyspace gets the snapshot's
SSTables (hard links), the commit log, hints and saved caches are cleared (everything was
flushed by the drain; a replay would bring back writes made after the backup), and the
nodes start again. Stop the service first; start it after (its caches are of the
present). The same topology is required (the local cluster's tokens are fixed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from instastore import leases, volumes
from instastore.cluster import LocalCluster
from instastore.cluster.cassandra import CassandraNode
from instastore.config import Settings
from instastore.errors import ClusterError, InvalidInput
from instastore.storage import open_stores
from instastore.storage.hdfs.webhdfs import WebHdfs
from instastore.storage.ports import Stores

log = logging.getLogger(__name__)

BEFORE, AFTER = ".before", ".after"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
NOT_SSTABLES = {"manifest.json", "schema.cql"}  # what a snapshot folder holds beside them
CLEARED_ON_RESTORE = ("commitlog", "hints", "saved_caches")
COPY_CONCURRENCY = 8


def default_name(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("backup-%Y%m%dT%H%M%SZ")


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidInput(
            f"a backup name is 1-64 letters, digits, '-' or '_' (first a letter or digit), "
            f"not {name!r}"
        )
    return name


@dataclass
class Backup:
    name: str
    created: datetime | None = None  # of the HDFS snapshot NAME.before
    hdfs: list[str] = field(default_factory=list)  # which of NAME.before, NAME.after exist
    cassandra: list[str] = field(default_factory=list)  # nodes holding the snapshot

    def missing(self, nodes: list[str]) -> list[str]:
        """What this backup lacks to be restorable; empty when it is complete."""
        gaps = [f"HDFS snapshot {self.name}{s}" for s in (BEFORE, AFTER) if s not in self.hdfs]
        gaps += [f"Cassandra snapshot on {n}" for n in nodes if n not in self.cassandra]
        return gaps


@dataclass
class RestoreReport:
    tables: int = 0  # table folders restored, over every node
    copied: int = 0  # blobs copied back from the snapshots
    removed: int = 0  # blobs written after the backup, removed
    photos: int = 0  # records checked after the restore
    missing: list[str] = field(default_factory=list)  # locators with no blob: must be empty


Progress = Callable[[str], None]


def _quiet(line: str) -> None:
    pass


class Backups:
    """The backups of one local cluster and one deployment's keyspace and blob root."""

    def __init__(self, cluster: LocalCluster, settings: Settings) -> None:
        if not cluster.cassandra_nodes or cluster.namenode is None:
            raise ClusterError(f"no cluster in {cluster.root}; run `instastore cluster up`")
        self.cluster = cluster
        self.settings = settings
        self.keyspace = settings.cassandra_keyspace
        self.root = "/" + settings.hdfs_root.strip("/")

    def _hdfs(self) -> WebHdfs:
        return WebHdfs(self.cluster.webhdfs_url, self.settings.hdfs_user)

    def _nodetool(self, node: CassandraNode, args: list[str]) -> str:
        done = self.cluster.nodetool(args, node=node.name)
        if done.returncode != 0:
            raise ClusterError(
                f"nodetool {' '.join(args)} on {node.name} failed (exit {done.returncode})",
                (done.stderr or done.stdout)[-3000:],
            )
        return done.stdout

    # ---- create, list, delete ---------------------------------------------------------

    async def create(self, name: str | None = None, progress: Progress = _quiet) -> Backup:
        name = check_name(name or default_name())
        if name in {b.name for b in await self.list()}:
            raise InvalidInput(f"a backup named {name!r} exists already")
        for node in self.cluster.cassandra_nodes:
            if not _table_folders(node, self.keyspace):
                raise InvalidInput(
                    f"{node.name} holds no table of keyspace {self.keyspace!r}: is it the "
                    "service's keyspace, and migrated (`instastore migrate`)?"
                )
        hdfs = self._hdfs()
        try:
            await hdfs.mkdirs(self.root)  # a deployment that has stored nothing yet
            await hdfs.allow_snapshot(self.root)
            await hdfs.create_snapshot(self.root, name + BEFORE)
            progress(f"HDFS snapshot {self.root}/.snapshot/{name}{BEFORE}")
            for node in self.cluster.cassandra_nodes:
                await asyncio.to_thread(
                    self._nodetool, node, ["snapshot", "-t", name, self.keyspace]
                )
                progress(f"Cassandra snapshot {name} of {self.keyspace} on {node.name}")
            await hdfs.create_snapshot(self.root, name + AFTER)
            progress(f"HDFS snapshot {self.root}/.snapshot/{name}{AFTER}")
        except BaseException:
            log.warning("backup %s failed; removing what it made", name)
            with contextlib.suppress(Exception):
                await self.delete(name)
            raise
        finally:
            await hdfs.close()
        return await self.get(name)

    async def list(self) -> list[Backup]:
        """Every backup of this keyspace and blob root, complete or not, oldest first."""
        found: dict[str, Backup] = {}
        hdfs = self._hdfs()
        try:
            for status in await hdfs.snapshots(self.root):
                snapshot = status["pathSuffix"]
                for suffix in (BEFORE, AFTER):
                    if snapshot.endswith(suffix):
                        backup = found.setdefault(
                            snapshot[: -len(suffix)], Backup(snapshot[: -len(suffix)])
                        )
                        backup.hdfs.append(suffix)
                        if suffix == BEFORE:
                            backup.created = datetime.fromtimestamp(
                                status["modificationTime"] / 1000, UTC
                            )
        finally:
            await hdfs.close()
        for node in self.cluster.cassandra_nodes:
            for tag in _snapshot_tags(node, self.keyspace):
                found.setdefault(tag, Backup(tag)).cassandra.append(node.name)
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(found.values(), key=lambda b: (b.created or epoch, b.name))

    async def get(self, name: str) -> Backup:
        for backup in await self.list():
            if backup.name == name:
                return backup
        raise InvalidInput(f"no backup named {name!r}; `instastore backup list` shows them")

    async def delete(self, name: str, progress: Progress = _quiet) -> None:
        backup = await self.get(check_name(name))
        for node_name in backup.cassandra:
            node = self.cluster.node(node_name)
            assert isinstance(node, CassandraNode)
            await asyncio.to_thread(
                self._nodetool, node, ["clearsnapshot", "-t", name, "--", self.keyspace]
            )
            progress(f"removed the Cassandra snapshot on {node_name}")
        hdfs = self._hdfs()
        try:
            for suffix in backup.hdfs:
                await hdfs.delete_snapshot(self.root, name + suffix)
                progress(f"removed HDFS snapshot {name}{suffix}")
        finally:
            await hdfs.close()

    # ---- restore -------------------------------------------------------------------------

    async def restore(self, name: str, progress: Progress = _quiet) -> RestoreReport:
        """Bring the keyspace and the blob root back to the backup ``name``, then check
        through the stores that every restored record's blobs are there."""
        backup = await self.get(check_name(name))
        gaps = backup.missing([n.name for n in self.cluster.cassandra_nodes])
        if gaps:
            raise InvalidInput(
                f"backup {name!r} is incomplete, so it cannot be restored: " + "; ".join(gaps)
            )
        report = RestoreReport()
        # One storage job at a time (instastore.leases): refused while pack, compact, gc
        # or purge runs anywhere. The lock lives in the keyspace being replaced, so it is
        # taken before the nodes stop and again the moment they are back (the backup's
        # tables hold no live lease: their TTLs have run out), and held to the end.
        stores = await open_stores(self.settings)
        try:
            before = await leases.Lease.take(
                stores.leases, leases.JOB, "instastore backup restore", "the storage job lock"
            )
            progress(f"holding the storage job lock ({before.holder})")
            # Renewed until the nodes stop (draining them can outlast its TTL); renewals
            # that fail once they are down are only logged.
            keeper = asyncio.create_task(before.keep())
            try:
                await asyncio.to_thread(self._restore_cassandra, name, report, progress)
            except BaseException:
                keeper.cancel()
                await asyncio.wait({keeper})
                await before.release()  # best effort: the nodes may be down
                raise
            keeper.cancel()
            await asyncio.wait({keeper})
        finally:
            await stores.close()
        stores = await open_stores(self.settings)
        try:
            async with leases.job_lease(stores.leases, "instastore backup restore"):
                await self._restore_blobs(name, report, progress)
                await _check(stores, report, progress)
        finally:
            await stores.close()
        return report

    def _restore_cassandra(self, name: str, report: RestoreReport, progress: Progress) -> None:
        nodes = self.cluster.cassandra_nodes
        for node in nodes:
            self._nodetool(node, ["drain"])
        progress(f"drained {len(nodes)} Cassandra node(s)")
        self.cluster.stop_nodes([n.name for n in nodes])
        progress("stopped them")
        for node in nodes:
            for table in _table_folders(node, self.keyspace):
                snapshot = table / "snapshots" / name
                _replace_sstables(table, snapshot)  # none: a table made after the backup
                report.tables += 1
            for folder in CLEARED_ON_RESTORE:
                _empty(node.path / folder)
        progress(f"put back the SSTables of {report.tables} table folder(s)")
        for node in nodes:
            self.cluster.start_node(node.name, wait=False)
        self.cluster.wait_ready()
        progress(f"started {len(nodes)} Cassandra node(s) again")

    async def _restore_blobs(self, name: str, report: RestoreReport, progress: Progress) -> None:
        hdfs = self._hdfs()
        try:
            live = {p async for p in _files(hdfs, self.root)}
            wanted: dict[str, str] = {}  # path under the root -> the snapshot holding it
            for suffix in (AFTER, BEFORE):  # blobs never change: either copy will do
                snapshot = f"{self.root}/.snapshot/{name}{suffix}"
                async for path in _files(hdfs, snapshot):
                    wanted[path] = snapshot
            gone = sorted(set(wanted) - live)
            extra = sorted(live - set(wanted))
            progress(f"blobs: {len(gone)} to copy back, {len(extra)} written since, to remove")
            semaphore = asyncio.Semaphore(COPY_CONCURRENCY)

            async def copy(path: str) -> None:
                async with semaphore:
                    target = f"{self.root}/{path}"
                    await hdfs.create(target, hdfs.open(f"{wanted[path]}/{path}"))
                    report.copied += 1
                    if report.copied % 500 == 0:
                        progress(f"copied {report.copied} of {len(gone)} blob(s)")

            async def remove(path: str) -> None:
                async with semaphore:
                    if await hdfs.delete(f"{self.root}/{path}"):
                        report.removed += 1

            await asyncio.gather(*(copy(p) for p in gone))
            await asyncio.gather(*(remove(p) for p in extra))
            progress(f"copied back {report.copied} blob(s), removed {report.removed}")
        finally:
            await hdfs.close()


async def _check(stores: Stores, report: RestoreReport, progress: Progress) -> None:
    """Every locator of every record (deleted ones too: purge still needs their blobs)
    names a blob the store lists."""
    present = {entry.key async for entry in stores.blobs.entries()}
    async for photo in stores.photos.scan_photos():
        report.photos += 1
        for rendition in photo.renditions:
            key = volumes.blob_of(rendition.locator)
            if key not in present:
                report.missing.append(f"photo {photo.id} {rendition.name}: {key}")
    found = f"{len(report.missing)} locator(s) with no blob" if report.missing else "all there"
    progress(f"checked the blobs of {report.photos} photo record(s): {found}")


async def _files(hdfs: WebHdfs, root: str) -> AsyncIterator[str]:
    """Every file under ``root``, as a path relative to it (the ``.snapshot`` folder of a
    snapshottable root is not listed by HDFS, so it is never walked)."""
    pending = [""]
    while pending:
        folder = pending.pop()
        async for status in hdfs.iter_status(f"{root}/{folder}".rstrip("/")):
            path = f"{folder}/{status['pathSuffix']}".lstrip("/")
            if status["type"] == "DIRECTORY":
                pending.append(path)
            else:
                yield path


def _snapshot_tags(node: CassandraNode, keyspace: str) -> set[str]:
    tags: set[str] = set()
    for table in _table_folders(node, keyspace):
        snapshots = table / "snapshots"
        if snapshots.is_dir():
            tags.update(p.name for p in snapshots.iterdir() if p.is_dir())
    return tags


def _table_folders(node: CassandraNode, keyspace: str) -> list[Path]:
    folder = node.path / "data" / keyspace
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _replace_sstables(table: Path, snapshot: Path) -> None:
    """The table folder's SSTables become the snapshot's (hard links, as a snapshot is
    made: an SSTable is never changed in place), or none when there is no snapshot (a
    table made after the backup is empty at its point). Subfolders (snapshots, backups)
    stay."""
    for path in table.iterdir():
        if path.is_file():
            path.unlink()
    if not snapshot.is_dir():
        return
    for path in snapshot.iterdir():
        if path.is_file() and path.name not in NOT_SSTABLES:
            os.link(path, table / path.name)


def _empty(folder: Path) -> None:
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
