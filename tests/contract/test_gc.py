"""`instastore gc` and purge on both adapters: gc removes only blobs no record points at
(whatever their keys look like) and older than the grace by their own age; purge never
removes a blob another record shares; both leave no empty folder; temporary files of
crashed writers go, those of writers in flight stay."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from instastore.server.app import create_app

from bench import seed as bench_seed
from instastore import ids
from instastore.errors import NotFound
from instastore.lifecycle.gc import gc
from instastore.lifecycle.purge import purge
from instastore.limits import IDEMPOTENCY_TTL, ORPHAN_GRACE
from instastore.model import Rendition
from instastore.storage import scratch
from instastore.storage.hdfs.webhdfs import WebHdfs
from instastore.storage.keys import blob_key

from ..factories import exists, make_photo, new_id, one


def later() -> datetime:
    """A moment when every blob written so far is past the grace."""
    return datetime.now(UTC) + ORPHAN_GRACE + timedelta(minutes=5)


async def photo_with(stores, keys: list[str], deleted: bool = False):
    photo = make_photo(new_id(), "gc")
    photo = dataclasses.replace(
        photo, renditions=tuple(Rendition(f"r{i}", k, "image/jpeg", 5) for i, k in enumerate(keys))
    )
    await stores.photos.save_photo(photo, [])
    if deleted:
        await stores.photos.set_deleted(photo, datetime.now(UTC))
    return photo


def test_the_grace_covers_a_retry_that_adopts_saved_blobs():
    assert IDEMPOTENCY_TTL + timedelta(hours=1) <= ORPHAN_GRACE


async def test_gc_removes_only_unreferenced_blobs_whatever_their_keys(stores, adapter_settings):
    tag = uuid.uuid4().hex[:8]
    other_id, own_id = new_id(), new_id()
    shared = f"bench-pool/{tag}/0/original.jpg"  # no photo id in it at all
    foreign = blob_key(other_id, "original", "jpg")  # names a photo that does not exist
    old_layout = f"{ids.bucket_of(own_id)}/{own_id}/thumb.jpg"
    of_deleted = f"x/{tag}/deleted"  # a soft-deleted photo still owns its bytes
    orphan, orphan_like_photo = f"x/{tag}/orphan", blob_key(own_id, "stray", "jpg")
    for key in (shared, foreign, old_layout, of_deleted, orphan, orphan_like_photo):
        await stores.blobs.put(key, one(b"bytes"))
    await photo_with(stores, [shared, old_layout])
    await photo_with(stores, [shared, foreign])
    await photo_with(stores, [of_deleted], deleted=True)

    young = await gc(stores.photos, stores.blobs, adapter_settings)
    assert await exists(stores, orphan) and await exists(
        stores, orphan_like_photo
    )  # too young to judge
    assert young.young >= 2

    report = await gc(stores.photos, stores.blobs, adapter_settings, now=later())
    assert not await exists(stores, orphan) and not await exists(stores, orphan_like_photo)
    for key in (shared, foreign, old_layout, of_deleted):
        assert await exists(stores, key), key
    assert report.removed >= 2
    again = await gc(stores.photos, stores.blobs, adapter_settings, now=later())
    assert again.removed == 0


async def test_gc_judges_age_by_the_blob_not_by_the_id_in_its_key(stores, adapter_settings):
    ancient_id = ids.make_id(ids.now_ms() - 40 * 86_400_000, 8, 1)  # an id from 40 days ago
    key = blob_key(ancient_id, f"r{uuid.uuid4().hex[:8]}", "jpg")
    await stores.blobs.put(key, one(b"written just now"))
    await gc(stores.photos, stores.blobs, adapter_settings)
    assert await exists(stores, key)  # a retried upload may still adopt it


async def seeded(adapter_settings, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bench_seed, "STATE_DIR", tmp_path / "state")
    await bench_seed.seed(
        adapter_settings, posters=2, readers=1, photos=30, pool=3, days=3, follows_per_reader=2
    )


async def test_gc_and_purge_on_a_bench_seeded_dataset(
    stores, adapter_settings, tmp_path, monkeypatch
):
    await seeded(adapter_settings, tmp_path, monkeypatch)
    seeded_photos = [
        p async for p in stores.photos.scan_photos() if p.sha256 == "00" * 32
    ]  # the seeder's mark
    assert len(seeded_photos) >= 30
    pool = {r.locator for p in seeded_photos for r in p.renditions}

    await gc(stores.photos, stores.blobs, adapter_settings, now=later())
    assert all(
        [await exists(stores, key) for key in pool]
    )  # shared blobs under keys naming no photo

    by_image: dict[str, list] = {}
    for p in seeded_photos:
        by_image.setdefault(p.renditions[0].locator, []).append(p)
    gone_image, kept_image = sorted(by_image, key=lambda k: len(by_image[k]))[:2]
    doomed = (
        by_image[gone_image] + by_image[kept_image][:1]
    )  # every user of one image, one of another
    for p in doomed:
        await stores.photos.set_deleted(p, datetime.now(UTC) - timedelta(days=60))
    report = await purge(stores.photos, stores.blobs, adapter_settings)
    assert report.failed == 0 and report.purged >= len(doomed)
    live = [p for p in seeded_photos if p not in doomed]
    assert all(
        [await exists(stores, r.locator) for p in live for r in p.renditions]
    )  # shared: kept
    assert not any([await exists(stores, r.locator) for r in by_image[gone_image][0].renditions])

    stray = f"bench-pool/{uuid.uuid4().hex}.stray"
    await stores.blobs.put(stray, one(b"no record points here"))
    await gc(stores.photos, stores.blobs, adapter_settings, now=later())
    assert {key for key in pool | {stray} if not await exists(stores, key)} == {
        r.locator for r in by_image[gone_image][0].renditions
    } | {stray}
    assert all([await exists(stores, r.locator) for p in live for r in p.renditions])


async def folders(stores, adapter_settings) -> set[str]:
    """Every folder under the blob store's root (its temporary folder aside)."""
    if not adapter_settings.uses_cluster:
        root = Path(adapter_settings.data_dir) / "blobs"
        return {
            str(Path(d).relative_to(root))
            for d, _, _ in os.walk(root)
            if Path(d) not in (root, root / ".tmp")
        }
    client = WebHdfs(adapter_settings.webhdfs_url, adapter_settings.hdfs_user)
    root = adapter_settings.hdfs_root + "/blobs"
    found, pending = set(), [root]
    try:
        while pending:
            folder = pending.pop()
            for status in await client.list_status(folder):
                path = f"{folder}/{status['pathSuffix']}"
                if status["type"] == "DIRECTORY" and path != root + "/.tmp":
                    found.add(path[len(root) + 1 :])
                    pending.append(path)
    finally:
        await client.close()
    return found


async def test_purge_and_gc_leave_no_empty_folder(stores, adapter_settings):
    tag = uuid.uuid4().hex[:8]
    photo_id = new_id()
    old_layout = [f"f{tag}/{photo_id}/original.jpg", f"f{tag}/{photo_id}/thumb.jpg"]
    for key in old_layout:
        await stores.blobs.put(key, one(b"bytes"))
    photo = await photo_with(stores, old_layout)
    await stores.photos.set_deleted(photo, datetime.now(UTC) - timedelta(days=60))
    await purge(stores.photos, stores.blobs, adapter_settings)
    assert not any(f.startswith(f"f{tag}") for f in await folders(stores, adapter_settings))

    # Folders that an older purge left behind (blobs deleted, folders kept): gc takes them.
    await stores.blobs.put(f"g{tag}/{photo_id}/x/original.jpg", one(b"bytes"))
    await stores.blobs.put(f"g{tag}/{photo_id}/kept.jpg", one(b"bytes"))
    await photo_with(stores, [f"g{tag}/{photo_id}/kept.jpg"])
    await _leave_empty_folder(stores, adapter_settings, f"g{tag}/{photo_id}/x/original.jpg")
    assert f"g{tag}/{photo_id}/x" in await folders(stores, adapter_settings)
    report = await gc(stores.photos, stores.blobs, adapter_settings)
    assert report.folders_removed >= 1
    left = {f for f in await folders(stores, adapter_settings) if f.startswith(f"g{tag}")}
    assert left == {f"g{tag}", f"g{tag}/{photo_id}"}  # the folder of a live blob stays


async def _leave_empty_folder(stores, adapter_settings, key: str) -> None:
    """Remove a blob the way the old code did: the file only, never its folder."""
    if not adapter_settings.uses_cluster:
        (Path(adapter_settings.data_dir) / "blobs" / key).unlink()
        return
    client = WebHdfs(adapter_settings.webhdfs_url, adapter_settings.hdfs_user)
    try:
        assert await client.delete(f"{adapter_settings.hdfs_root}/blobs/{key}")
    finally:
        await client.close()


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


async def test_gc_removes_temporary_files_of_dead_writers_only(stores, adapter_settings):
    tmp = Path(adapter_settings.data_dir) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    host = scratch.host()
    crashed = tmp / f"upload-{host}_{dead_pid()}_abc"
    in_flight = tmp / f"upload-{host}_{os.getpid()}_def"  # this process: alive
    elsewhere = tmp / f"upload-otherhost_{dead_pid()}_ghi"  # another host's: only age tells
    stale = tmp / "upload-otherhost_1_jkl"
    for path in (crashed, in_flight, elsewhere, stale):
        path.write_bytes(b"part of an upload")
    hours_ago = (datetime.now(UTC) - scratch.SCRATCH_GRACE - timedelta(minutes=1)).timestamp()
    os.utime(stale, (hours_ago, hours_ago))

    report = await gc(stores.photos, stores.blobs, adapter_settings)
    assert report.scratch_removed >= 2
    assert not crashed.exists() and not stale.exists()
    assert in_flight.exists() and elsewhere.exists()
    in_flight.unlink()
    elsewhere.unlink()


async def test_the_service_removes_leftovers_of_dead_writers_when_it_starts(
    adapter_settings, aiohttp_client
):
    tmp = Path(adapter_settings.data_dir) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    upload = tmp / f"upload-{scratch.host()}_{dead_pid()}_xyz"
    upload.write_bytes(b"half an upload")
    part = f"{scratch.host()}_{dead_pid()}_{uuid.uuid4().hex}.part"
    if adapter_settings.uses_cluster:
        client = WebHdfs(adapter_settings.webhdfs_url, adapter_settings.hdfs_user)
        part_path = f"{adapter_settings.hdfs_root}/blobs/.tmp/{part}"
        try:
            await client.create(part_path, one(b"half a blob"))
        finally:
            await client.close()
    else:
        part_path = Path(adapter_settings.data_dir) / "blobs" / ".tmp" / part
        part_path.parent.mkdir(parents=True, exist_ok=True)
        part_path.write_bytes(b"half a blob")

    await aiohttp_client(create_app(adapter_settings))
    assert not upload.exists()
    if adapter_settings.uses_cluster:
        client = WebHdfs(adapter_settings.webhdfs_url, adapter_settings.hdfs_user)
        try:
            with pytest.raises(NotFound):
                await client.get_file_status(part_path)
        finally:
            await client.close()
    else:
        assert not part_path.exists()


async def test_scan_photos_pages_through_every_record(stores, monkeypatch):
    from instastore.storage.cassandra import metadata as cassandra_metadata
    from instastore.storage.embedded import metadata as embedded_metadata

    monkeypatch.setattr(cassandra_metadata, "SCAN_PAGE", 3)
    monkeypatch.setattr(embedded_metadata, "SCAN_PAGE", 3)
    saved = {
        (await photo_with(stores, [f"s/{uuid.uuid4().hex}"], deleted=i % 2 == 0)).id
        for i in range(10)
    }
    scanned = [p async for p in stores.photos.scan_photos()]
    assert saved <= {p.id for p in scanned}  # deleted ones too: they still own their blobs
    assert len(scanned) == len({p.id for p in scanned})  # each once


# An upload received in a process of its own that is SIGKILLed mid-body, as a crash would.
KILLED_UPLOAD = """
import asyncio, sys
from pathlib import Path
from instastore.uploads import receive

async def body():
    yield b"x" * 2_000_000
    print("receiving", flush=True)
    await asyncio.sleep(3600)  # the client stalls: killed here

asyncio.run(receive(body(), 10_000_000, Path(sys.argv[1])))
"""


async def test_gc_removes_the_temporary_file_of_an_upload_whose_process_died(
    stores, adapter_settings
):
    tmp = Path(adapter_settings.data_dir) / "tmp"
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_UPLOAD, str(tmp), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert await asyncio.wait_for(receiver.stdout.readline(), 60) == b"receiving\n"
    finally:
        receiver.kill()
        await receiver.wait()
    left = list(tmp.glob("upload-*"))
    assert left  # the crash's trace
    await gc(stores.photos, stores.blobs, adapter_settings)
    assert not any(p.exists() for p in left)
