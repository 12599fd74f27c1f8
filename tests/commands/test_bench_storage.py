"""`python -m bench.storage` measures what it says, on both adapters: distinct photos
written as uploads write them, NameNode objects (or local files) counted before and
after the packer, the packer's report. No timing is asserted."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from bench import storage
from instastore.config import Settings
from instastore.lifecycle import volumes
from instastore.storage import open_stores

from ..factories import remove_hdfs_root

PHOTOS = 6


@pytest.fixture(params=["embedded", pytest.param("cluster", marks=pytest.mark.cluster)])
def own_store(request, tmp_path):
    """An empty store of this test: embedded, or the session's keyspace with an HDFS
    root of its own (removed after)."""
    if request.param == "embedded":
        yield Settings(data_dir=tmp_path / "data")
        return
    settings = dataclasses.replace(
        request.getfixturevalue("cluster_settings"),
        hdfs_root=f"/storbench-test-{uuid.uuid4().hex[:8]}",
    )
    yield settings
    remove_hdfs_root(settings)


async def originals(settings: Settings, owner_id: int) -> dict[int, tuple[str, bytes]]:
    """The original of each photo of ``owner_id``: photo id -> (locator, its bytes)."""
    stores = await open_stores(settings)
    try:
        found = {}
        async for photo in stores.photos.scan_photos():
            if photo.owner_id != owner_id:
                continue
            locator = next(r.locator for r in photo.renditions if r.name == "original")
            data = b"".join([c async for c in volumes.open_locator(stores.blobs, locator)])
            found[int(photo.title.split()[1])] = (locator, data)
        return found
    finally:
        await stores.close()


def test_generated_photos_are_distinct_jpegs():
    images = [storage.distinct_jpeg(i) for i in range(200)]
    assert len(set(images)) == 200
    assert all(image[:3] == b"\xff\xd8\xff" for image in images)


async def test_measure_counts_objects_before_and_after_packing(own_store):
    body = await storage.measure(own_store, PHOTOS, 4, progress=lambda line: None, landed_grace_s=0)
    results = body["results"]
    assert results["upload"]["photos"] == PHOTOS
    before, after = results["before"], results["after"]
    assert before["files"] == 3 * PHOTOS  # original, thumb, large: one landed blob each
    assert results["pack"]["photos"] == PHOTOS
    assert results["pack"]["volumes"] == 1
    assert results["pack"]["landed_removed"] == 3 * PHOTOS
    assert after["files"] == 1  # the volume
    assert after["total"] < before["total"]
    assert after["objects_per_photo"] == round(after["total"] / PHOTOS, 5)
    if own_store.uses_cluster:
        assert before["blocks"] == 3 * PHOTOS and after["blocks"] == 1
        assert before["source"].startswith("NameNode")
        # one DataNode: one replica of each byte, in landed files and in the volume
        assert before["raw_bytes"] == before["logical_bytes"] > 0
        assert after["raw_bytes"] == after["logical_bytes"] > 0
        assert before["raw_per_logical"] == after["raw_per_logical"] == 1.0
    else:
        assert after["raw_bytes"] is None
    stored = await originals(own_store, results["upload"]["owner_id"])
    assert sorted(stored) == list(range(PHOTOS))
    for index, (locator, data) in stored.items():
        assert volumes.is_needle(locator)
        assert data == storage.distinct_jpeg(index)  # byte-identical, and distinct per photo


async def test_a_store_with_files_is_refused(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    await storage.seed_photos(settings, 1, 1, progress=lambda line: None)
    with pytest.raises(SystemExit, match="not empty"):
        await storage.measure(settings, 1, 1, progress=lambda line: None, landed_grace_s=0)


async def test_the_bulk_path_lands_locally_and_the_store_sees_only_volumes(own_store, tmp_path):
    land = tmp_path / "land"
    body = await storage.measure(
        own_store, PHOTOS, 4, progress=lambda line: None, landed_grace_s=0, land_dir=land
    )
    results = body["results"]
    assert results["landed_locally"]["files"] == 3 * PHOTOS  # every rendition landed here
    assert results["pack"]["photos"] == PHOTOS
    assert results["pack"]["landed_removed"] == 3 * PHOTOS
    assert not [f for f in (land / "blobs").rglob("*") if f.is_file()]  # and left with packing
    assert results["after"]["files"] == 1  # the volume, in the store
    if own_store.uses_cluster:
        assert results["before"]["files"] == 0  # HDFS never saw a landed blob
        assert results["after"]["blocks"] == 1
    assert results["after"]["objects_per_photo"] == round(results["after"]["total"] / PHOTOS, 5)
    stored = await originals(own_store, results["upload"]["owner_id"])
    assert sorted(stored) == list(range(PHOTOS))
    for index, (locator, data) in stored.items():
        assert volumes.is_needle(locator)
        assert data == storage.distinct_jpeg(index)
