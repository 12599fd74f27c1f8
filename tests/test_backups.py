"""Backups and the restore drill (issue 13 item 3), on the real local cluster, through the
`instastore backup` command: back up, store more, delete and purge some, pack, restore;
exactly the backed-up photos read back byte-identical, and no record names a missing blob."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from instastore import jobs
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.packing import pack
from instastore.storage import open_stores

from .factories import land_photos, read_back, remove_hdfs_root
from .runbook import run_block

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
        report = await jobs.purge(stores.photos, stores.blobs, settings, now=later)
        assert report.purged == 3  # the two, and the one deleted before the backup
        await pack(stores.photos, stores.blobs, settings, timedelta(0), landed_grace_s=0)
        for photo_id in purged:
            assert await stores.photos.get_photo(photo_id) is None
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
        assert (await jobs.gc(stores.photos, stores.blobs, settings)).removed == 0
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
