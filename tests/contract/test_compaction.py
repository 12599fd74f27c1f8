"""Compaction on both adapters: a volume whose dead share passes the threshold is
rewritten with its live needles only (a shared needle copied once, still shared), the
old volume goes once no record points into it, a volume nobody points into goes; a run
cut short at any step (each one a durable write, left as kill -9 would leave it) is
finished by the next. gc leaves unfinished manifests and their volumes alone and reports
the dead bytes inside volumes in use."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime, timedelta

import pytest

from instastore import ids
from instastore.lifecycle import compaction, gc, volumes
from instastore.lifecycle import purge as purging
from instastore.lifecycle.references import scan_references
from instastore.limits import ORPHAN_GRACE
from instastore.model import Rendition
from instastore.storage.keys import MANIFEST_PREFIX, VOLUME_PREFIX, volume_key

from ..factories import exists, make_photo, new_id, one, read

SIZES = {"original": 6000, "thumb": 500}


async def packed_volume(stores, count: int = 6):
    """``count`` photos in one new volume, the last two sharing every needle; returns
    the volume key, the photos and each photo's bytes by rendition."""
    photo_ids = [new_id() for _ in range(count)]
    data = {p: {n: os.urandom(s) for n, s in SIZES.items()} for p in photo_ids[:-1]}
    data[photo_ids[-1]] = data[photo_ids[-2]]  # the same bytes: one needle each, shared
    sources = [
        volumes.NeedleSource(p, n, len(b), lambda b=b: one(b))
        for p in photo_ids[:-1]
        for n, b in data[p].items()
    ]
    volume_id = new_id()
    locators = iter(await volumes.write_volume(stores.blobs, volume_id, sources))
    by_photo = {p: {n: str(next(locators)) for n in SIZES} for p in photo_ids[:-1]}
    by_photo[photo_ids[-1]] = by_photo[photo_ids[-2]]
    photos = []
    for p in photo_ids:
        renditions = tuple(
            Rendition(n, by_photo[p][n], "image/jpeg", len(data[p][n])) for n in SIZES
        )
        photo = dataclasses.replace(
            make_photo(owner_id=new_id(), photo_id=p), renditions=renditions
        )
        await stores.photos.save_photo(photo, [])
        photos.append(photo)
    return volume_key(volume_id), photos, data


async def purge(stores, settings, photos) -> None:
    for photo in photos:
        await stores.photos.set_deleted(photo, datetime.now(UTC) - timedelta(days=60))
    report = await purging.purge(stores.photos, stores.blobs, settings)
    assert report.failed == 0


async def assert_compacted(stores, old_volume, live, data) -> str:
    """Every live photo reads back byte-identical from ONE new volume holding each
    distinct needle once (shared ones shared); the old volume is gone. Returns it."""
    now = [await stores.photos.get_photo(p.id) for p in live]
    homes = {volumes.blob_of(r.locator) for p in now for r in p.renditions}
    assert len(homes) == 1 and old_volume not in homes
    for photo in now:
        for r in photo.renditions:
            assert await read(stores, r.locator) == data[photo.id][r.name]
    assert now[-1].renditions == now[-2].renditions  # the shared needles stay shared
    (home,) = homes
    distinct = {r.locator for p in now for r in p.renditions}
    scanned = [
        n
        async for n in volumes.VolumeScan(
            stores.blobs, volumes.parse_locator(next(iter(distinct))).volume_id
        )
    ]
    assert {str(n.needle.locator) for n in scanned} == distinct  # no needle copied twice
    assert all(n.intact for n in scanned)
    assert not await exists(stores, old_volume)
    return home


async def manifests(stores) -> list[str]:
    return [e.key async for e in stores.blobs.entries(MANIFEST_PREFIX)]


async def run_compact(stores, settings, **kw):
    kw.setdefault("threshold", 0.3)
    return await compaction.compact(stores.photos, stores.blobs, settings, landed_grace_s=0, **kw)


async def test_compact_keeps_the_live_needles_only_and_drops_the_old_volume(
    stores, adapter_settings
):
    old, photos, data = await packed_volume(stores)
    before = await stores.blobs.size(old)
    await purge(stores, adapter_settings, photos[:3])  # half the photos, the volume stays
    assert await exists(stores, old)
    report = await run_compact(stores, adapter_settings)
    assert report.compacted >= 1 and report.moved.photos >= 3
    home = await assert_compacted(stores, old, photos[3:], data)
    assert await stores.blobs.size(home) < before / 2  # two photos' bytes: one is shared
    assert await manifests(stores) == []
    again = await run_compact(stores, adapter_settings)
    assert await exists(stores, home) and again.moved.resumed == 0


async def test_a_volume_below_the_threshold_is_left_as_it_is(stores, adapter_settings):
    old, photos, _ = await packed_volume(stores)
    await purge(stores, adapter_settings, photos[:1])
    await run_compact(stores, adapter_settings, threshold=0.9)
    now = [await stores.photos.get_photo(p.id) for p in photos[1:]]
    assert {volumes.blob_of(r.locator) for p in now for r in p.renditions} == {old}


async def test_a_deleted_photo_keeps_its_old_volume_until_it_is_purged(stores, adapter_settings):
    old, photos, data = await packed_volume(stores)
    await purge(stores, adapter_settings, photos[:3])
    await stores.photos.set_deleted(photos[3], datetime.now(UTC))  # may still be restored
    report = await run_compact(stores, adapter_settings)
    assert report.kept_for_deleted >= 1 and await exists(stores, old)
    assert (await stores.photos.get_photo(photos[3].id)).renditions == photos[3].renditions
    assert await read(stores, photos[3].renditions[0].locator) == data[photos[3].id]["original"]
    await purge(stores, adapter_settings, photos[3:4])
    assert await exists(stores, old)  # purge never removes a volume: the next compact does
    report = await run_compact(stores, adapter_settings)
    assert report.dead_volumes_removed >= 1 and not await exists(stores, old)


async def test_a_volume_nobody_points_into_goes(stores, adapter_settings):
    old, photos, _ = await packed_volume(stores, count=2)
    await purge(stores, adapter_settings, photos[:1])
    await stores.photos.purge_photo(photos[1], [])  # as a crash of purge could leave it
    report = await run_compact(stores, adapter_settings)
    assert report.dead_volumes_removed >= 1 and not await exists(stores, old)


# ---- crashes: each step's state, then a new run -------------------------------------------


async def planned(stores, settings, old):
    """What a run would write for this volume (nothing written yet)."""
    references = await scan_references(stores.photos, lambda _: None)
    (entry,) = [e async for e in stores.blobs.entries(VOLUME_PREFIX) if e.key == old]
    generator = ids.IdGenerator(settings.fixed_worker_id or 0)
    report = compaction.CompactReport()
    (draft,) = compaction._plans(stores.blobs, [entry], references, generator, settings, report)
    return draft


@pytest.mark.parametrize(
    "killed_after",
    ["manifest", "volume", "half switched", "all switched", "old volume removed"],
)
async def test_a_run_killed_at_any_step_is_finished_by_the_next(
    stores, adapter_settings, killed_after
):
    old, photos, data = await packed_volume(stores)
    await purge(stores, adapter_settings, photos[:3])
    draft = await planned(stores, adapter_settings, old)
    plan = draft.plan
    await stores.blobs.put(plan.key, one(plan.encode()))
    if killed_after != "manifest":
        await volumes.write_volume(stores.blobs, plan.volume_id, draft.sources)
    switched = {"half switched": 1, "all switched": 3, "old volume removed": 3}.get(killed_after, 0)
    for photo_id in sorted(plan.old)[:switched]:
        assert await stores.photos.switch_locators(photo_id, plan.old[photo_id], plan.new[photo_id])
    if killed_after == "old volume removed":
        await stores.blobs.delete(old)

    # gc meanwhile: the unfinished manifest and its volume are not its to judge
    far = datetime.now(UTC) + 2 * ORPHAN_GRACE
    await gc.gc(stores.photos, stores.blobs, adapter_settings, now=far)
    assert plan.key in await manifests(stores)
    new = volume_key(plan.volume_id)
    assert await exists(stores, new) is (killed_after != "manifest")

    report = await run_compact(stores, adapter_settings)
    assert report.moved.resumed >= 1
    home = await assert_compacted(stores, old, photos[3:], data)
    assert await manifests(stores) == []
    if killed_after == "manifest":  # never written: compacted anew, into another volume
        assert home != new and not await exists(stores, new)
    else:  # finished where it stopped: no second volume
        assert home == new


async def test_gc_reports_the_dead_bytes_inside_a_volume_in_use(stores, adapter_settings):
    old, photos, _ = await packed_volume(stores)
    size = await stores.blobs.size(old)
    await purge(stores, adapter_settings, photos[:3])
    far = datetime.now(UTC) + 2 * ORPHAN_GRACE
    report = await gc.gc(stores.photos, stores.blobs, adapter_settings, now=far)
    assert await exists(stores, old)  # records point into it: never removed by gc
    dead = 3 * sum(volumes.needle_size(n, s) for n, s in SIZES.items())
    assert report.dead_bytes >= dead and report.volume_bytes >= size and report.sparse >= 1
    await run_compact(stores, adapter_settings)
    after = await gc.gc(stores.photos, stores.blobs, adapter_settings, now=far)
    assert after.dead_bytes <= report.dead_bytes - dead
