"""`instastore storage stats` on both adapters, against a known dataset in stores of its
own (a fresh keyspace and HDFS folder on the cluster): N photos uploaded and packed are N
photos, 1 volume, nothing landed, no dead byte; a shared blob counts as saved by
dedupe; a photo deleted and purged leaves exactly its needles dead. The command prints
the same numbers (--json) and a readable summary. On HDFS, a volume lives in the sealed
volume folder (written through that folder's own .tmp), and the NameNode's counts come
along."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from instastore import ids
from instastore.config import Settings
from instastore.lifecycle import packing, purge, volumes
from instastore.lifecycle.stats import collect
from instastore.model import Rendition
from instastore.storage import open_stores
from instastore.storage.hdfs import HdfsBlobStore
from instastore.storage.keys import VOLUME_PREFIX

from ..factories import make_photo, new_id

PHOTOS = 4
SIZES = {"original": 5000, "large": 1200, "thumb": 300}  # bytes
HOUR_AGO_MS = ids.now_ms() - 3_600_000


async def one(data: bytes):
    yield data


@pytest.fixture(params=["embedded", pytest.param("cluster", marks=pytest.mark.cluster)])
def own_settings(request, tmp_path):
    """Settings of stores of this test alone: a data folder, or on the cluster a fresh
    keyspace (migrated here, dropped after) and HDFS folder (removed after)."""
    if request.param == "embedded":
        yield Settings(data_dir=tmp_path / "data")
        return
    from instastore.storage.cassandra.migrate import migrate
    from instastore.storage.cassandra.session import build_cluster

    base = request.getfixturevalue("cluster_settings")
    tag = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(
        base, cassandra_keyspace=f"stats_{tag}", hdfs_root=f"/stats-{tag}", data_dir=tmp_path
    )
    driver = build_cluster(settings)
    session = driver.connect()
    migrate(session, settings, progress=lambda line: None)
    yield settings
    session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
    driver.shutdown()  # the test removes its HDFS folder itself


async def landed_photo(stores, at_ms=HOUR_AGO_MS, keys=None):
    """A photo saved as uploads save them: one landed blob per rendition."""
    photo_id = new_id(at_ms)
    renditions = []
    for i, (name, size) in enumerate(SIZES.items()):
        key = keys[i] if keys else f"{ids.bucket_of(photo_id)}/{photo_id}.{name}.jpg"
        if not keys:
            await stores.blobs.put(key, one(os.urandom(size)))
        renditions.append(Rendition(name, key, "image/jpeg", size))
    photo = dataclasses.replace(
        make_photo(owner_id=new_id(), photo_id=photo_id), renditions=tuple(renditions)
    )
    await stores.photos.save_photo(photo, [])
    return photo


def env_of(settings: Settings) -> dict[str, str]:
    names = ["data_dir"]
    if settings.uses_cluster:
        names += ["cassandra_hosts", "cassandra_port", "webhdfs_url"]
        names += ["cassandra_keyspace", "hdfs_root"]
    return {f"INSTASTORE_{n.upper()}": str(getattr(settings, n)) for n in names}


def stats_command(settings: Settings, *flags: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "instastore", "storage", "stats", *flags],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **env_of(settings)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_stats_of_a_known_dataset(own_settings):
    stores = await open_stores(own_settings)
    try:
        await _check_known_dataset(stores, own_settings)
    finally:
        if isinstance(stores.blobs, HdfsBlobStore):
            await stores.blobs.client.delete(own_settings.hdfs_root, recursive=True)
        await stores.close()


async def _check_known_dataset(stores, settings: Settings) -> None:
    per_photo = sum(SIZES.values())
    made = [await landed_photo(stores) for _ in range(PHOTOS)]
    before = await collect(stores.photos, stores.blobs)
    assert (before.photos_live, before.photos_deleted, before.volumes) == (PHOTOS, 0, [])
    assert (before.landed_blobs, before.landed_bytes) == (3 * PHOTOS, per_photo * PHOTOS)
    assert before.logical_bytes == per_photo * PHOTOS and before.dedupe_saved_bytes == 0

    await packing.pack(
        stores.photos, stores.blobs, settings, min_age=timedelta(minutes=30), landed_grace_s=0
    )
    packed = await collect(stores.photos, stores.blobs)
    assert (packed.photos_live, len(packed.volumes), packed.landed_blobs) == (PHOTOS, 1, 0)
    volume = packed.volumes[0]
    needles = sum(volumes.needle_size(n, s) for n, s in SIZES.items())
    assert volume.bytes == PHOTOS * needles == packed.logical_bytes
    assert (volume.dead_bytes, packed.dead_bytes, packed.dedupe_saved_bytes) == (0, 0, 0)

    # a second record sharing the first one's needles: saved once per rendition
    first = await stores.photos.get_photo(made[0].id)
    await landed_photo(stores, keys=[r.locator for r in first.renditions])
    shared = await collect(stores.photos, stores.blobs)
    assert shared.dedupe_saved_bytes == per_photo and shared.photos_live == PHOTOS + 1
    assert shared.landed_blobs == 0 and shared.volumes == packed.volumes

    # delete and purge another: its needles, and only they, are dead
    gone = await stores.photos.get_photo(made[1].id)
    await stores.photos.set_deleted(gone, datetime.now(UTC) - timedelta(days=60))
    deleted = await collect(stores.photos, stores.blobs)
    assert (deleted.photos_live, deleted.photos_deleted, deleted.dead_bytes) == (PHOTOS, 1, 0)
    await purge.purge(stores.photos, stores.blobs, settings)
    purged = await collect(stores.photos, stores.blobs)
    assert (purged.photos_live, purged.photos_deleted) == (PHOTOS, 0)
    assert purged.volumes[0].dead_bytes == needles
    assert purged.volumes[0].dead_share == pytest.approx(1 / PHOTOS)

    shown = json.loads(stats_command(settings, "--json"))
    assert shown["photos_live"] == PHOTOS and shown["volume_count"] == 1
    assert shown["dead_bytes"] == needles and shown["landed_blobs"] == 0
    assert shown["volumes"][0]["dead_share"] == pytest.approx(1 / PHOTOS)
    assert shown["dedupe_saved_bytes"] == per_photo
    text = stats_command(settings)
    assert f"photos: {PHOTOS} live, 0 deleted" in text
    assert f"volumes: 1 ({PHOTOS * needles:,} bytes), 0 erasure-coded, 1 replicated" in text
    assert f"dead bytes in volumes: {needles:,}" in text
    if settings.uses_cluster:
        await _check_cluster_part(stores, shown, volume.key)


async def _check_cluster_part(stores, shown: dict, key: str) -> None:
    """The volume is a file of the sealed-volume folder (one DataNode: replicated), and
    the NameNode's numbers are its own: our root holds the volume, the folders above it
    and the two .tmp folders, and nothing else."""
    store: HdfsBlobStore = stores.blobs
    path = f"{store.volumes}/{key.removeprefix(VOLUME_PREFIX)}"
    status = await store.client.get_file_status(path)
    assert status["length"] == shown["volumes"][0]["bytes"]
    assert [s["pathSuffix"] async for s in store.client.iter_status(f"{store.volumes}/.tmp")] == []
    cluster = shown["cluster"]
    assert cluster["namenode_files"] == 1  # the volume; the landed blobs were removed
    assert cluster["logical_bytes"] == cluster["volume_folder_logical_bytes"] == status["length"]
    assert cluster["raw_bytes"] == status["length"]  # replication 1 on the 1 + 1 cluster
    assert cluster["namenode_total_blocks"] >= 1
    assert cluster["namenode_total_files_and_directories"] > cluster["namenode_files"]
    assert (cluster["volumes_erasure_coded"], shown["volumes_erasure_coded"]) == (0, 0)
