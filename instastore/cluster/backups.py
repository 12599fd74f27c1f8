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
that named them do. "That young" holds however long ``create`` takes: it holds the
storage job lock (``leases.job_lease``) from before step 1 to after step 3, so no
``pack``, ``compact``, ``gc`` or ``purge`` runs meanwhile (one already running when it
starts makes it refuse, naming the job: take the backup again later).

``restore`` copies each blob back under a temporary name (``<path>.restoring``) and
renames it to its path only once whole, so a path holds the backup's bytes or nothing
whatever cuts a copy off (a DataNode, Ctrl-C, SIGKILL); it compares every file already
at a path with the backup's (length, then HDFS's file checksum, or the bytes when the two
files' layouts differ) and copies again any that differ; it removes the temporary copies
an interrupted run left. So a restore cut off in its blob phase is finished by running it
again. The first copy that fails stops the others. It ends by checking the blob root
against the backup (every file, length and checksum: ``RestoreReport.damaged``) and every
locator of every restored record against the blob listing (``RestoreReport.missing``: a
blob there, and a needle inside its volume).

``restore`` is offline for Cassandra, as its documentation has it for a full restore:
every node is drained and stopped, each table folder of the keyspace gets the snapshot's
SSTables (hard links), the commit log, hints and saved caches are cleared (everything was
flushed by the drain; a replay would bring back writes made after the backup), and the
nodes start again. Stop the service first; start it after (its caches are of the
present). The same topology is required (the local cluster's tokens are fixed). From
before the drain until the nodes are ready again a marker file stands in the cluster's
folder (``restoring-<keyspace>``): a restore cut off meanwhile leaves the nodes drained,
stopped or starting and the lock out of reach in the keyspace being replaced, so the next
restore, finding the marker, goes on from there without taking the lock first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from instastore import leases
from instastore.cluster import LocalCluster
from instastore.cluster.cassandra import CassandraNode
from instastore.config import Settings
from instastore.errors import (
    ClusterError,
    Conflict,
    InstastoreError,
    InvalidInput,
    StorageError,
    Unavailable,
)
from instastore.lifecycle import volumes
from instastore.storage import open_stores
from instastore.storage.hdfs.webhdfs import Json, WebHdfs
from instastore.storage.ports import Stores

log = logging.getLogger(__name__)

BEFORE, AFTER = ".before", ".after"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
NOT_SSTABLES = {"manifest.json", "schema.cql"}  # what a snapshot folder holds beside them
CLEARED_ON_RESTORE = ("commitlog", "hints", "saved_caches")
COPY_CONCURRENCY = 8  # blobs copied back (or checked) at a time
RESTORING = ".restoring"  # a copy's suffix until it is whole and renamed to its path
COPY_TRIES = 4  # tries of one copy whose temporary file a cut-off run left (1 s apart, more)
# A restore going on from one cut off while the nodes were starting again waits this long
# for nodetool to reach them (a node's JMX answers some seconds into its start).
DRAIN_PATIENCE_S = 180.0
DRAIN_RETRY_S = 5.0
# What a restore keeps of each file's status (a whole one is ~0.5 KB; a root holds millions)
STATUS_KEPT = ("length", "blockSize", "replication", "ecPolicy")
BACKUP_CREATE_ROLE = "instastore backup create"  # its holder name in the job lock


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
    repaired: int = 0  # of them, files that were at their path but not the backup's
    removed: int = 0  # blobs written after the backup, removed
    unfinished: int = 0  # temporary copies an interrupted restore left, removed
    photos: int = 0  # records checked after the restore
    missing: list[str] = field(default_factory=list)  # locators with no blob: must be empty
    damaged: list[str] = field(default_factory=list)  # files not the backup's: must be empty


Progress = Callable[[str], None]
Differences = list[str]  # a line per file of the blob root that is not as in the backup


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
        return WebHdfs(
            self.cluster.webhdfs_url,
            self.settings.hdfs_user,
            self.settings.hdfs_block_reads,
            self.settings.datanode_addresses,
        )

    def _nodetool(self, node: CassandraNode, args: list[str]) -> str:
        done = self.cluster.nodetool(args, node=node.name)
        if done.returncode != 0:
            raise ClusterError(
                f"nodetool {' '.join(args)} on {node.name} failed (exit {done.returncode})",
                (done.stderr or done.stdout)[-3000:],
            )
        return done.stdout

    def _drain(self, node: CassandraNode, patience_s: float) -> None:
        deadline = time.monotonic() + patience_s
        while True:
            try:
                self._nodetool(node, ["drain"])
                return
            except ClusterError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(DRAIN_RETRY_S)

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
        # No storage job runs while the snapshots are taken (see the module's docstring);
        # one running now refuses the backup, naming itself.
        stores = await open_stores(self.settings)
        try:
            async with leases.job_lease(stores.leases, BACKUP_CREATE_ROLE) as lease:
                progress(f"holding the storage job lock ({lease.holder})")
                await self._take_snapshots(name, progress)
        finally:
            await stores.close()
        return await self.get(name)

    async def _take_snapshots(self, name: str, progress: Progress) -> None:
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
        marker = self.cluster.root / f"restoring-{self.keyspace}"
        if marker.exists():
            # A restore was cut off between draining the nodes and starting them again:
            # they are drained, stopped or starting, the lock it held is out of reach
            # (in the keyspace it was replacing), and no job can run meanwhile.
            progress(
                f"a restore of {marker.read_text().strip()} was cut off with the Cassandra "
                "nodes drained or stopped: going on from there"
            )
            await asyncio.to_thread(
                self._restore_cassandra, name, report, progress, marker, DRAIN_PATIENCE_S
            )
        else:
            await self._restore_cassandra_locked(name, report, progress, marker)
        stores = await open_stores(self.settings)
        try:
            await _forget_the_backups_own_lock(stores, progress)
            async with leases.job_lease(stores.leases, "instastore backup restore"):
                await self.restore_blobs(name, report, progress)
                await _check(stores, report, progress)
        finally:
            await stores.close()
        return report

    async def _restore_cassandra_locked(
        self, name: str, report: RestoreReport, progress: Progress, marker: Path
    ) -> None:
        # One storage job at a time (instastore.leases): refused while pack, compact, gc
        # or purge runs anywhere. The lock lives in the keyspace being replaced, so it is
        # taken before the nodes stop and again the moment they are back (the lock the
        # backup itself was taken under is released first), and held to the end.
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
                await asyncio.to_thread(self._restore_cassandra, name, report, progress, marker)
            except BaseException:
                keeper.cancel()
                await asyncio.wait({keeper})
                await before.release()  # best effort: the nodes may be down
                raise
            keeper.cancel()
            await asyncio.wait({keeper})
        finally:
            await stores.close()

    def _restore_cassandra(
        self,
        name: str,
        report: RestoreReport,
        progress: Progress,
        marker: Path,
        patience_s: float = 0.0,
    ) -> None:
        """Drain and stop the nodes, put the backup's SSTables in place, start them. The
        marker file stands from before the drain until they are ready again, so that the
        next restore knows to go on without the lock when this one is cut off. Nodes
        that are not running are left as they are; one still starting is drained once
        nodetool reaches it, within ``patience_s``."""
        marker.write_text(f"{name}\n")
        nodes = self.cluster.cassandra_nodes
        running = {d.name for d in self.cluster.running()}
        for node in nodes:
            if node.name in running:  # a drained node drains again at once
                self._drain(node, patience_s)
        progress(f"drained {len(running & {n.name for n in nodes})} Cassandra node(s)")
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
        marker.unlink()
        progress(f"started {len(nodes)} Cassandra node(s) again")

    async def restore_blobs(
        self, name: str, report: RestoreReport, progress: Progress = _quiet
    ) -> None:
        """Make the blob root the union of the backup's HDFS snapshots (the blob phase of
        ``restore``; see the module's docstring), then check it (``report.damaged``)."""
        hdfs = self._hdfs()
        try:
            backup = await _Snapshots.read(hdfs, self.root, name)
            live = await _statuses(hdfs, self.root)
            present = sorted(set(live) & set(backup.files))
            extra = sorted(set(live) - set(backup.files))
            progress(
                f"blobs: {len(backup.files) - len(present)} to copy back, {len(present)} "
                f"to compare with the backup, {len(extra)} not in it to remove"
            )

            async def remove(path: str) -> None:
                if await hdfs.delete(f"{self.root}/{path}"):
                    if path.endswith(RESTORING):
                        report.unfinished += 1
                    else:
                        report.removed += 1

            differing: list[str] = []

            async def compare(path: str) -> None:
                differs = await backup.differs(hdfs, path, f"{self.root}/{path}", live[path])
                if differs is not None:
                    progress(f"{path}: {differs}; copying it back again")
                    await hdfs.delete(f"{self.root}/{path}")
                    differing.append(path)

            async def copy(path: str) -> None:
                await self._copy(hdfs, backup, path)
                report.copied += 1
                if report.copied % 500 == 0:
                    progress(f"copied {report.copied} blob(s)")

            try:
                await _each(extra, remove)
                await _each(present, compare)
                report.repaired = len(differing)
                await _each(sorted(set(backup.files) - set(live)) + differing, copy)
            except InstastoreError as exc:
                raise (Unavailable if isinstance(exc, Unavailable) else StorageError)(
                    f"restoring the blobs stopped: {exc}; no file at a blob's path is cut off "
                    f"(copies are renamed into place once whole): run the restore again to "
                    f"finish it"
                ) from exc
            progress(
                f"copied back {report.copied} blob(s) ({report.repaired} that were not the "
                f"backup's), removed {report.removed} written since and {report.unfinished} "
                f"unfinished copies"
            )
            report.damaged = await self._compare_all(hdfs, backup)
            found = f"{len(report.damaged)} differ" if report.damaged else "all as in the backup"
            progress(f"checked the {len(backup.files)} file(s) of the blob root: {found}")
        finally:
            await hdfs.close()

    async def verify_blobs(self, name: str) -> Differences:
        """How the blob root differs from the backup ``name``: a line per file missing,
        not in the backup, or not of the backup's length or checksum; empty when equal."""
        hdfs = self._hdfs()
        try:
            return await self._compare_all(hdfs, await _Snapshots.read(hdfs, self.root, name))
        finally:
            await hdfs.close()

    async def _compare_all(self, hdfs: WebHdfs, backup: _Snapshots) -> Differences:
        live = await _statuses(hdfs, self.root)
        found = [f"{p}: missing" for p in sorted(set(backup.files) - set(live))]
        found += [f"{p}: not in the backup" for p in sorted(set(live) - set(backup.files))]

        async def compare(path: str) -> None:
            differs = await backup.differs(hdfs, path, f"{self.root}/{path}", live[path])
            if differs is not None:
                found.append(f"{path}: {differs}")

        await _each(sorted(set(live) & set(backup.files)), compare)
        return found

    async def _copy(self, hdfs: WebHdfs, backup: _Snapshots, path: str) -> None:
        """Copy one file of the backup to its path: whole under a temporary name, with the
        original's block size and replication (so their checksums can agree), then
        renamed (atomic on the NameNode, refused over an existing file)."""
        source, status = backup.files[path]
        target = f"{self.root}/{path}"
        coded = bool(status.get("ecPolicy"))  # its folder's policy gives the copy its layout
        for attempt in range(COPY_TRIES):
            try:
                size = await hdfs.create(
                    target + RESTORING,
                    hdfs.open(source),
                    replication=None if coded else status.get("replication") or None,
                    block_size=None if coded else status.get("blockSize") or None,
                )
                break
            except (Conflict, StorageError) as exc:
                # Left by a run cut off a moment ago: a DataNode may create the file of a
                # request whose client is gone after this run listed the root, or still
                # hold it open under the killed client's lease (AlreadyBeingCreated).
                held = "AlreadyBeingCreatedException" in str(exc)
                if not (isinstance(exc, Conflict) or held) or attempt == COPY_TRIES - 1:
                    raise
                await hdfs.delete(target + RESTORING)  # deleting it ends its lease
                await asyncio.sleep(attempt)
        if size != status["length"]:
            raise StorageError(f"{source} gave {size} bytes, not its {status['length']}")
        if not await hdfs.rename(target + RESTORING, target):
            raise StorageError(f"cannot rename {target}{RESTORING} to {target}")


@dataclass
class _Snapshots:
    """The files of a backup's two HDFS snapshots, by path under the root: each one's
    path in a snapshot and its status (blobs never change: either copy will do)."""

    files: dict[str, tuple[str, Json]]
    checksums: dict[str, Json] = field(default_factory=dict)  # asked once per file

    @classmethod
    async def read(cls, hdfs: WebHdfs, root: str, name: str) -> _Snapshots:
        files: dict[str, tuple[str, Json]] = {}
        for suffix in (AFTER, BEFORE):
            snapshot = f"{root}/.snapshot/{name}{suffix}"
            for path, status in (await _statuses(hdfs, snapshot)).items():
                files[path] = (f"{snapshot}/{path}", status)
        return cls(files)

    async def differs(self, hdfs: WebHdfs, path: str, live_path: str, live: Json) -> str | None:
        """How the file at ``live_path`` differs from the backup's ``path``, or None."""
        source, status = self.files[path]
        if live["length"] != status["length"]:
            return f"{live['length']} bytes where the backup has {status['length']}"
        if _layout(live) == _layout(status):
            if path not in self.checksums:
                self.checksums[path] = await hdfs.file_checksum(source)
            mine = await hdfs.file_checksum(live_path)
            if mine["algorithm"] == self.checksums[path]["algorithm"]:
                return None if mine == self.checksums[path] else "its checksum is not the backup's"
        # Other blocks, erasure coding or CRC: the checksums cannot agree; read both.
        if await _sha256(hdfs, live_path) != await _sha256(hdfs, source):
            return "its bytes are not the backup's"
        return None


def _layout(status: Json) -> tuple[object, ...]:
    """What a file's HDFS checksum depends on besides its bytes."""
    return status.get("blockSize"), status.get("ecPolicy")


async def _sha256(hdfs: WebHdfs, path: str) -> str:
    digest = hashlib.sha256()
    async for chunk in hdfs.open(path):
        digest.update(chunk)
    return digest.hexdigest()


async def _each(items: Iterable[str], work: Callable[[str], Awaitable[None]]) -> None:
    """``work`` on every item, ``COPY_CONCURRENCY`` at a time. The first failure cancels
    the others and waits for them to end, then is raised as it was."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await work(item)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(COPY_CONCURRENCY):
                group.create_task(worker())
    except BaseExceptionGroup as failed:
        first = failed.exceptions[0]
        if isinstance(first, Exception) and not isinstance(first, ExceptionGroup):
            raise first from None
        raise


async def _check(stores: Stores, report: RestoreReport, progress: Progress) -> None:
    """Every locator of every record (deleted ones too: purge still needs their blobs)
    names a blob the store lists."""
    sizes = {entry.key: entry.size async for entry in stores.blobs.entries()}
    async for photo in stores.photos.scan_photos():
        report.photos += 1
        for rendition in photo.renditions:
            key = volumes.blob_of(rendition.locator)
            if key not in sizes:
                report.missing.append(f"photo {photo.id} {rendition.name}: {key}")
            elif volumes.is_needle(rendition.locator):
                needle = volumes.parse_locator(rendition.locator)
                if needle.offset + needle.length > sizes[key]:
                    report.missing.append(
                        f"photo {photo.id} {rendition.name}: {key} ends at {sizes[key]} bytes, "
                        f"before its needle's end"
                    )
    found = f"{len(report.missing)} locator(s) with no blob" if report.missing else "all there"
    progress(f"checked the blobs of {report.photos} photo record(s): {found}")


async def _statuses(hdfs: WebHdfs, root: str) -> dict[str, Json]:
    """Every file under ``root``, by its path relative to it, with what a restore needs
    of its status (the ``.snapshot`` folder of a snapshottable root is not listed by
    HDFS, so never walked)."""
    found: dict[str, Json] = {}
    pending = [""]
    while pending:
        folder = pending.pop()
        async for status in hdfs.iter_status(f"{root}/{folder}".rstrip("/")):
            path = f"{folder}/{status['pathSuffix']}".lstrip("/")
            if status["type"] == "DIRECTORY":
                pending.append(path)
            else:
                found[path] = {k: status[k] for k in STATUS_KEPT if k in status}
    return found


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


async def _forget_the_backups_own_lock(stores: Stores, progress: Progress) -> None:
    """``backup create`` holds the storage job lock while it takes its snapshots, so a
    backup's leases table holds that lock, live until its TTL runs out: restored within
    that time, it would refuse the restore its own lock. It was the backup's, whose
    process no longer holds anything here: released, as its holder would have."""
    state = await stores.leases.read_lease(leases.JOB)
    if state is not None and state.holder and BACKUP_CREATE_ROLE in state.holder:
        progress(f"releasing the storage job lock the backup was taken under ({state.holder})")
        await stores.leases.release_lease(leases.JOB, state.holder, state.high_ms)
