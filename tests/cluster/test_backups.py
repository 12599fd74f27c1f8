"""Backups and the restore drill, on the real local cluster, through the
`instastore backup` command: back up, store more, delete and purge some, pack, restore;
exactly the backed-up photos read back byte-identical, and no record names a missing blob."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from instastore import ids
from instastore.clock import utcnow
from instastore.cluster.backups import RestoreReport
from instastore.config import Settings
from instastore.errors import NotFound, StorageError
from instastore.lifecycle import gc, purge, volumes
from instastore.lifecycle.packing import pack
from instastore.storage import open_stores
from instastore.storage.keys import VOLUME_PREFIX

from ..factories import land_photos, one, read, read_back, remove_hdfs_root
from ..runbook import run_block

pytestmark = [pytest.mark.cassandra, pytest.mark.hdfs]

SIZES = {"original": 30_000, "large": 9_000, "thumb": 2_000}


def backup(cluster, settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`instastore backup --dir <cluster> ARGS` for this keyspace and blob root."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "instastore",
            "backup",
            "--dir",
            str(cluster.root),
            *args,
            "--cassandra-keyspace",
            settings.cassandra_keyspace,
            "--hdfs-root",
            settings.hdfs_root,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def drill_settings(local_cluster, tmp_path):
    """A keyspace and a blob root of this test's own, migrated; removed after, with their
    snapshots."""
    from instastore.storage.cassandra.migrate import migrate
    from instastore.storage.cassandra.session import build_cluster

    tag = uuid.uuid4().hex[:8]
    settings = Settings.from_sources(
        environ=local_cluster.client_settings(),
        overrides={
            "data_dir": tmp_path / "data",
            "cassandra_keyspace": f"drill_{tag}",
            "hdfs_root": f"/drill-{tag}",
        },
    )
    driver = build_cluster(settings)
    migrate(driver.connect(), settings, progress=lambda line: None)
    driver.shutdown()
    yield settings
    for name in ("nightly-1", "other"):
        backup(local_cluster, settings, "delete", name)  # whatever a failed test left
    # A driver of its own: one that saw the restore stop the node waits out its
    # reconnection backoff (up to 10 s) and meanwhile answers NoHostAvailable.
    driver = build_cluster(settings)
    driver.connect().execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    driver.shutdown()
    remove_hdfs_root(settings)


async def test_the_restore_drill(local_cluster, drill_settings):
    settings = drill_settings
    stores = await open_stores(settings)
    try:
        packed = await land_photos(stores, 4, SIZES)
        await pack(stores.photos, stores.blobs, settings, timedelta(0), landed_grace_s=0)
        landed = await land_photos(stores, 3, SIZES)  # not packed at backup time
        soft_deleted = next(iter(landed))
        photo = await stores.photos.get_photo(soft_deleted)
        await stores.photos.set_deleted(photo, utcnow())
    finally:
        await stores.close()
    backed_up = {**packed, **landed}

    env = {
        "INSTASTORE_CLUSTER_DIR": str(local_cluster.root),
        "INSTASTORE_CASSANDRA_KEYSPACE": settings.cassandra_keyspace,
        "INSTASTORE_HDFS_ROOT": settings.hdfs_root,
    }
    made = await asyncio.to_thread(run_block, "backup", env)  # docs/OPERATIONS.md, as written
    assert made.returncode == 0, made.stderr
    assert "backup nightly-1 taken" in made.stdout
    assert any(
        line.split()[0] == "nightly-1" and line.split()[-1] == "complete"
        for line in made.stdout.splitlines()
    ), made.stdout

    # After the backup: more photos, two backed-up photos deleted and purged, all packed.
    stores = await open_stores(settings)
    try:
        newer = await land_photos(stores, 3, SIZES)
        purged = [next(iter(packed)), list(landed)[1]]
        for photo_id in purged:
            photo = await stores.photos.get_photo(photo_id)
            await stores.photos.set_deleted(photo, utcnow())
        later = utcnow() + timedelta(days=settings.retention_days, seconds=1)
        report = await purge.purge(stores.photos, stores.blobs, settings, now=later)
        assert report.purged == 3  # the two, and the one deleted before the backup
        await pack(stores.photos, stores.blobs, settings, timedelta(0), landed_grace_s=0)
        for photo_id in purged:
            assert await stores.photos.get_photo(photo_id) is None
        # An earlier restore of the backup, cut off while copying this blob back, left
        # its first bytes at its path.
        key = f"{ids.bucket_of(purged[1])}/{purged[1]}.original.jpg"
        data = await snapshot_bytes(settings, "nightly-1", path_of(settings, key))
        await stores.blobs.put(key, one(data[:130]))
    finally:
        await stores.close()

    refused = await asyncio.to_thread(backup, local_cluster, settings, "restore", "nightly-1")
    assert refused.returncode == 2 and "--yes" in refused.stderr  # nothing is done without it
    unknown = await asyncio.to_thread(backup, local_cluster, settings, "restore", "nope", "--yes")
    assert unknown.returncode == 2 and "no backup named 'nope'" in unknown.stderr

    restored = await asyncio.to_thread(run_block, "restore", env)  # restore, then delete
    local_cluster.reload()  # the restore restarted the Cassandra node: its pid is new
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "photo record(s): all there" in restored.stdout, restored.stdout
    assert "1 that were not the backup's" in restored.stdout, restored.stdout
    assert "backup nightly-1 removed" in restored.stdout

    stores = await open_stores(settings)
    try:
        await read_back(stores, backed_up)  # byte-identical, the purged ones included
        for photo_id in newer:
            assert await stores.photos.get_photo(photo_id) is None  # made after the backup
        again = await stores.photos.get_photo(soft_deleted)
        assert again is not None and again.deleted  # as it was: deleted, still restorable
        live = [p.id async for p in stores.photos.scan_photos()]
        assert sorted(live) == sorted(backed_up)
        blobs = {e.key async for e in stores.blobs.entries()}
        assert (await gc.gc(stores.photos, stores.blobs, settings)).removed == 0
    finally:
        await stores.close()
    assert blobs, "the restored blob root is empty"


async def test_a_backup_name_is_checked_and_never_reused(local_cluster, drill_settings):
    settings = drill_settings
    bad = await asyncio.to_thread(backup, local_cluster, settings, "create", "--name", "../x")
    assert bad.returncode == 2 and "backup name" in bad.stderr
    first = await asyncio.to_thread(backup, local_cluster, settings, "create", "--name", "other")
    assert first.returncode == 0, first.stderr
    second = await asyncio.to_thread(backup, local_cluster, settings, "create", "--name", "other")
    assert second.returncode == 2 and "exists already" in second.stderr
    # A restore is a storage job: refused, before it stops a node, while another runs.
    from instastore import leases

    stores = await open_stores(settings)
    try:
        async with leases.job_lease(stores.leases, "instastore pack"):
            refused = await asyncio.to_thread(
                backup, local_cluster, settings, "restore", "other", "--yes"
            )
    finally:
        await stores.close()
    assert refused.returncode == 2, refused.stderr
    assert "the storage job lock is held by instastore pack on" in refused.stderr
    assert "drained" not in refused.stdout
    gone = await asyncio.to_thread(
        backup,
        local_cluster,
        dataclasses.replace(settings, cassandra_keyspace="no_such_ks"),
        "create",
    )
    assert gone.returncode == 2 and "holds no table of keyspace" in gone.stderr


# ---- an interrupted restore, finished by the next ------------------------------------------


async def lose_the_blob_root(settings: Settings) -> None:
    """Every blob file gone (a lost or wiped root); the backup's snapshots keep them."""
    from instastore.storage.hdfs.webhdfs import WebHdfs

    client = WebHdfs(settings.webhdfs_url, settings.hdfs_user)
    try:
        for status in await client.list_status(settings.hdfs_root):
            await client.delete(f"{settings.hdfs_root}/{status['pathSuffix']}", recursive=True)
    finally:
        await client.close()


async def cut_blobs(settings: Settings, name: str) -> dict[str, int]:
    """Each file under the blob root whose length is not the backup's (path: length), by
    the NameNode's listing alone; a file the backup does not hold counts as -1."""
    from instastore.storage.hdfs.webhdfs import WebHdfs

    client = WebHdfs(settings.webhdfs_url, settings.hdfs_user)

    async def lengths(root: str) -> dict[str, int]:
        found, pending = {}, [""]
        while pending:
            folder = pending.pop()
            for status in await client.list_status(f"{root}/{folder}".rstrip("/")):
                path = f"{folder}/{status['pathSuffix']}".lstrip("/")
                if status["type"] == "DIRECTORY":
                    pending.append(path)
                else:
                    found[path] = status["length"]
        return found

    try:
        backed_up = {}
        for suffix in (".after", ".before"):
            backed_up |= await lengths(f"{settings.hdfs_root}/.snapshot/{name}{suffix}")
        live = await lengths(settings.hdfs_root)
    finally:
        await client.close()
    return {p: n for p, n in live.items() if backed_up.get(p, -1) != n}


async def backed_up_photos(
    local_cluster, settings: Settings, sizes: dict[str, int], count: int, **blobs: bytes
):
    """``count`` photos, half packed into a volume and half landed, and ``blobs`` (key:
    bytes), in the backup nightly-1; then the blob root lost. Returns the photos (as
    ``land_photos``) and the backups."""
    from instastore.cluster.backups import Backups

    stores = await open_stores(settings)
    try:
        made = await land_photos(stores, count // 2, sizes)
        await pack(stores.photos, stores.blobs, settings, timedelta(0), landed_grace_s=0)
        made |= await land_photos(stores, count - count // 2, sizes)
        for key, data in blobs.items():
            await stores.blobs.put(key, one(data))
    finally:
        await stores.close()
    backups = Backups(local_cluster, settings)
    await backups.create("nightly-1")
    await lose_the_blob_root(settings)
    return made, backups


def path_of(settings: Settings, key: str) -> str:
    """Where the HDFS blob store keeps ``key``, under its root."""
    if key.startswith(VOLUME_PREFIX):
        return f"{settings.hdfs_volume_dir}/{key.removeprefix(VOLUME_PREFIX)}"
    return f"blobs/{key}"


async def put_file(settings: Settings, path: str, data: bytes) -> None:
    from instastore.storage.hdfs.webhdfs import WebHdfs

    client = WebHdfs(settings.webhdfs_url, settings.hdfs_user)
    try:
        await client.create(f"{settings.hdfs_root}/{path}", one(data))
    finally:
        await client.close()


async def snapshot_bytes(settings: Settings, name: str, path: str) -> bytes:
    from instastore.storage.hdfs.webhdfs import WebHdfs

    client = WebHdfs(settings.webhdfs_url, settings.hdfs_user)
    try:
        for suffix in (".before", ".after"):
            try:
                snapshot = f"{settings.hdfs_root}/.snapshot/{name}{suffix}/{path}"
                return b"".join([chunk async for chunk in client.open(snapshot)])
            except NotFound:
                continue
    finally:
        await client.close()
    raise AssertionError(f"{path} is in no snapshot of {name}")


async def test_a_restore_repairs_the_cut_files_an_interrupted_one_left(
    local_cluster, drill_settings
):
    """An earlier restore cut off mid-copy left a volume, a landed blob and a packing
    manifest shorter than the backup's, a landed blob of the right length with other
    bytes, and a temporary copy: the next restore puts back the backup's bytes."""
    settings = drill_settings
    manifest = b'{"volume": 1, "photos": []}'  # a run of `pack` killed before the backup
    made, backups = await backed_up_photos(
        local_cluster, settings, SIZES, 4, **{"packing/1.json": manifest}
    )
    stores = await open_stores(settings)
    try:
        photos = [await stores.photos.get_photo(photo_id) for photo_id in made]
    finally:
        await stores.close()
    volume = next(r.locator for p in photos for r in p.renditions if volumes.is_needle(r.locator))
    landed = [r.locator for p in photos for r in p.renditions if not volumes.is_needle(r.locator)]
    cut = {path_of(settings, volumes.blob_of(volume)): 100, path_of(settings, landed[0]): 130}
    for path, keep in cut.items():
        await put_file(settings, path, (await snapshot_bytes(settings, "nightly-1", path))[:keep])
    other = path_of(settings, landed[1])
    await put_file(settings, other, bytes(len(await snapshot_bytes(settings, "nightly-1", other))))
    await put_file(settings, path_of(settings, landed[2]) + ".restoring", b"half a copy")
    await put_file(settings, "blobs/packing/1.json", manifest[:12])

    report = RestoreReport()
    await backups.restore_blobs("nightly-1", report, progress=lambda line: None)

    assert await cut_blobs(settings, "nightly-1") == {}
    stores = await open_stores(settings)
    try:
        await read_back(stores, made)  # byte-identical, the needles past the cut included
        assert await read(stores, "packing/1.json") == manifest
    finally:
        await stores.close()
    assert report.damaged == []


async def test_the_final_check_names_a_blob_that_is_not_the_backups(local_cluster, drill_settings):
    settings = drill_settings
    made, backups = await backed_up_photos(local_cluster, settings, SIZES, 2)
    await backups.restore_blobs("nightly-1", RestoreReport(), progress=lambda line: None)
    assert await backups.verify_blobs("nightly-1") == []
    stores = await open_stores(settings)
    try:
        photo = await stores.photos.get_photo(list(made)[-1])  # landed: a file per rendition
        keys = sorted(volumes.blob_of(r.locator) for r in photo.renditions)
    finally:
        await stores.close()
    short, other = path_of(settings, keys[0]), path_of(settings, keys[1])
    size = len(await snapshot_bytes(settings, "nightly-1", other))
    await lose_one(settings, short)
    await put_file(settings, short, b"cut")
    await lose_one(settings, other)
    await put_file(settings, other, bytes(size))  # the same length, other bytes
    await put_file(settings, "blobs/x/later.jpg", b"written since")

    found = await backups.verify_blobs("nightly-1")

    assert len(found) == 3, found
    assert any(short in line and "3 bytes" in line for line in found), found
    assert any(other in line and "checksum" in line for line in found), found
    assert any("blobs/x/later.jpg" in line and "not in the backup" in line for line in found)


async def lose_one(settings: Settings, path: str) -> None:
    from instastore.storage.hdfs.webhdfs import WebHdfs

    client = WebHdfs(settings.webhdfs_url, settings.hdfs_user)
    try:
        assert await client.delete(f"{settings.hdfs_root}/{path}")
    finally:
        await client.close()


RESTORE_BLOBS = """
import asyncio, sys
from instastore.cluster.backups import Backups, RestoreReport
from instastore.cluster import LocalCluster
from instastore.config import Settings

cluster = LocalCluster(sys.argv[1])
settings = Settings.from_sources(environ=cluster.client_settings(), overrides=dict(
    cassandra_keyspace=sys.argv[2], hdfs_root=sys.argv[3]))
backups = Backups(cluster, settings)
progress = lambda line: print(line, flush=True)
asyncio.run(backups.restore_blobs("nightly-1", RestoreReport(), progress))
"""


async def test_a_restore_killed_mid_copy_leaves_no_cut_blob(local_cluster, drill_settings):
    """SIGKILLed while copying megabytes back: no file at a blob's path is shorter than
    the backup's, and the next run finishes the restore."""
    settings = drill_settings
    big = {"original": 1_500_000, "thumb": 2_000}
    made, backups = await backed_up_photos(local_cluster, settings, big, 16)
    restore = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RESTORE_BLOBS,
        str(local_cluster.root),
        settings.cassandra_keyspace,
        settings.hdfs_root,
        stdout=asyncio.subprocess.PIPE,
    )
    assert restore.stdout is not None
    line = await asyncio.wait_for(restore.stdout.readline(), 60)
    assert b"to copy back" in line, line
    await asyncio.sleep(0.5)  # well into the copies: 24 MB through one DataNode
    restore.kill()
    await restore.wait()
    cut = await cut_blobs(settings, "nightly-1")
    assert all(path.endswith(".restoring") for path in cut), cut  # only temporary copies

    report = RestoreReport()
    await backups.restore_blobs("nightly-1", report, progress=lambda line: None)

    assert await cut_blobs(settings, "nightly-1") == {}
    assert report.copied > 0 and report.damaged == []
    stores = await open_stores(settings)
    try:
        await read_back(stores, made)
    finally:
        await stores.close()


async def test_a_failed_copy_stops_the_restore_and_the_next_run_finishes(
    local_cluster, drill_settings
):
    """A copy refused by the NameNode (the root's name quota: a real refusal, no mock)
    stops the others: nothing is left running, no blob path holds a cut file, and the
    error says to run the restore again; which then finishes it."""
    settings = drill_settings
    made, backups = await backed_up_photos(local_cluster, settings, SIZES, 6)
    root = settings.hdfs_root
    quota = await asyncio.to_thread(local_cluster.hdfs_tool, "dfsadmin", ["-setQuota", "8", root])
    assert quota.returncode == 0, quota.stderr
    try:
        with pytest.raises(StorageError, match="run the restore again") as failed:
            await backups.restore_blobs("nightly-1", RestoreReport(), progress=lambda line: None)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not [t for t in others if "copy" in repr(t.get_coro())], others
        assert "Quota" in str(failed.value), failed.value
    finally:
        cleared = await asyncio.to_thread(local_cluster.hdfs_tool, "dfsadmin", ["-clrQuota", root])
        assert cleared.returncode == 0, cleared.stderr
    assert all(path.endswith(".restoring") for path in await cut_blobs(settings, "nightly-1"))

    await backups.restore_blobs("nightly-1", RestoreReport(), progress=lambda line: None)

    assert await cut_blobs(settings, "nightly-1") == {}
    stores = await open_stores(settings)
    try:
        await read_back(stores, made)
    finally:
        await stores.close()


# ---- a backup holds the storage job lock ----------------------------------------------------


async def test_a_backup_is_refused_while_a_storage_job_runs(local_cluster, drill_settings):
    """A job running during a backup could remove a blob its records name once they are
    older than the packer's minimum age: no job runs while a backup is taken."""
    from instastore import leases

    settings = drill_settings
    stores = await open_stores(settings)
    try:
        async with leases.job_lease(stores.leases, "instastore pack"):
            refused = await asyncio.to_thread(
                backup, local_cluster, settings, "create", "--name", "nightly-1"
            )
    finally:
        await stores.close()
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "the storage job lock is held by instastore pack on" in refused.stderr
    listed = await asyncio.to_thread(backup, local_cluster, settings, "list")
    assert "nightly-1" not in listed.stdout  # nothing was taken


async def test_no_storage_job_runs_while_a_backup_is_taken(local_cluster, drill_settings):
    from instastore import leases
    from instastore.cluster.backups import Backups

    settings = drill_settings
    # Connected first: connecting (preparing every statement) takes seconds under load,
    # and the backup could be over by then.
    stores = await open_stores(settings)
    started = asyncio.Event()
    backups = Backups(local_cluster, settings)
    taking = asyncio.create_task(backups.create("nightly-1", progress=lambda line: started.set()))
    await started.wait()  # the first HDFS snapshot is taken; Cassandra's takes seconds
    try:
        with pytest.raises(leases.LeaseHeld, match="held by instastore backup create"):
            async with leases.job_lease(stores.leases, "instastore pack"):
                pass
        assert not taking.done()
        await taking
        async with leases.job_lease(stores.leases, "instastore pack"):
            pass  # free again once the backup is taken
    finally:
        await stores.close()


@pytest.mark.timeout(900)
async def test_a_restore_killed_with_the_nodes_down_is_finished_by_the_next(
    local_cluster, drill_settings
):
    """SIGKILLed once it stopped the Cassandra nodes: the next restore, which cannot take
    the storage job lock in a keyspace that does not answer, goes on from there."""
    settings = drill_settings
    made, _ = await backed_up_photos(local_cluster, settings, SIZES, 2)
    command = [sys.executable, "-m", "instastore", "backup", "--dir", str(local_cluster.root)]
    flags = ["--cassandra-keyspace", settings.cassandra_keyspace, "--hdfs-root", settings.hdfs_root]
    restore = await asyncio.create_subprocess_exec(
        *command,
        "restore",
        "nightly-1",
        "--yes",
        *flags,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert restore.stdout is not None
    try:
        while b"stopped them" not in (
            line := await asyncio.wait_for(restore.stdout.readline(), 300)
        ):
            assert line, "the restore ended before it stopped the nodes"
        restore.kill()
        await restore.wait()

        again = await asyncio.to_thread(
            backup, local_cluster, settings, "restore", "nightly-1", "--yes"
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert "was cut off with the Cassandra nodes drained or stopped" in again.stdout
        assert "photo record(s): all there" in again.stdout, again.stdout
    finally:
        local_cluster.reload()
        for node in local_cluster.cassandra_nodes:  # the cluster is shared: never leave it down
            if node.name not in {d.name for d in local_cluster.running()}:
                await asyncio.to_thread(local_cluster.start_node, node.name)
    assert not (local_cluster.root / f"restoring-{settings.cassandra_keyspace}").exists()
    stores = await open_stores(settings)
    try:
        await read_back(stores, made)
    finally:
        await stores.close()


async def test_files_of_another_block_size_are_compared_by_their_bytes(
    local_cluster, drill_settings
):
    """HDFS checksums of two files with other block sizes never agree, whatever their
    bytes: those are read and compared instead."""
    from instastore.storage.hdfs.webhdfs import WebHdfs

    settings = drill_settings
    made, backups = await backed_up_photos(local_cluster, settings, SIZES, 2)
    await backups.restore_blobs("nightly-1", RestoreReport(), progress=lambda line: None)
    path = path_of(settings, f"{ids.bucket_of(list(made)[-1])}/{list(made)[-1]}.large.jpg")
    data = await snapshot_bytes(settings, "nightly-1", path)
    client = WebHdfs(settings.webhdfs_url, settings.hdfs_user)

    async def replace(content: bytes) -> None:
        await client.delete(f"{settings.hdfs_root}/{path}")
        await client.create(f"{settings.hdfs_root}/{path}", one(content), block_size=2**20)

    try:
        await replace(data)
        assert await backups.verify_blobs("nightly-1") == []
        await replace(bytes(len(data)))
        assert await backups.verify_blobs("nightly-1") == [
            f"{path}: its bytes are not the backup's"
        ]
    finally:
        await client.close()
