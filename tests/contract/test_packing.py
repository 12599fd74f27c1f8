"""The packer on both adapters: landed blobs into volumes, locators switched by a
conditional write, landed blobs removed; a run cut short at any step is finished by the
next; gc and purge count a volume as referenced by every record pointing into it.

A crash is left as a kill -9 would leave it: the stores' state after some of the
packer's steps (each one a durable write), then a new run."""

from __future__ import annotations

import dataclasses
import os
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from instastore import ids
from instastore.lifecycle import gc, packing, purge, volumes
from instastore.limits import ORPHAN_GRACE
from instastore.model import Rendition
from instastore.storage.keys import MANIFEST_PREFIX, volume_key

from ..factories import exists, make_photo, new_id, one, read

HOUR_AGO_MS = ids.now_ms() - 3_600_000
MIN_AGE = timedelta(minutes=30)  # photos made below are an hour old; others' are younger


async def landed_photo(stores, sizes=(5000, 1200, 300), keys=None, at_ms=HOUR_AGO_MS):
    """A photo saved as uploads save them: one landed blob per rendition."""
    photo_id = new_id(at_ms)
    renditions, data = [], {}
    for i, (name, size) in enumerate(zip(("original", "large", "thumb"), sizes, strict=False)):
        key = keys[i] if keys else f"p{uuid.uuid4().hex[:8]}/{photo_id}.{name}.jpg"
        if not await exists(stores, key):
            await stores.blobs.put(key, one(os.urandom(size)))
        data[name] = await read(stores, key)
        renditions.append(Rendition(name, key, "image/jpeg", size))
    photo = dataclasses.replace(
        make_photo(owner_id=new_id(), photo_id=photo_id), renditions=tuple(renditions)
    )
    await stores.photos.save_photo(photo, [])
    return photo, data


async def assert_packed(stores, photo, data):
    now = await stores.photos.get_photo(photo.id)
    for r in now.renditions:
        assert volumes.is_needle(r.locator), r
        assert await read(stores, r.locator) == data[r.name]
    for r in photo.renditions:
        assert not await exists(stores, r.locator)  # the landed blob is gone


async def manifests(stores) -> list[str]:
    return [e.key async for e in stores.blobs.entries(MANIFEST_PREFIX)]


def small_volumes(settings, target=8000):
    return dataclasses.replace(settings, volume_target_bytes=target)


async def run_pack(stores, settings, **kw):
    return await packing.pack(
        stores.photos, stores.blobs, settings, min_age=MIN_AGE, landed_grace_s=0, **kw
    )


# ---- switch_locators -------------------------------------------------------------------


async def test_switch_locators_applies_only_to_the_record_it_expects(stores):
    photo, _ = await landed_photo(stores)
    old = {"thumb": photo.rendition("thumb").locator}
    new = {"thumb": f"n:{new_id()}:64:300"}
    assert await stores.photos.switch_locators(photo.id, {"thumb": "elsewhere"}, new) is False
    assert await stores.photos.switch_locators(photo.id, old, new) is True
    after = await stores.photos.get_photo(photo.id)
    assert after.rendition("thumb").locator == new["thumb"]
    assert after.rendition("original") == photo.rendition("original")  # the rest unchanged
    assert dataclasses.replace(after, renditions=photo.renditions) == photo
    # a retry of a switch that happened is recognised: safe to settle
    assert await stores.photos.switch_locators(photo.id, old, new) is True
    assert await stores.photos.switch_locators(new_id(), old, new) is False  # no record


async def test_switch_locators_never_moves_a_deleted_photo(stores):
    photo, _ = await landed_photo(stores)
    await stores.photos.set_deleted(photo, datetime.now(UTC))
    old = {"thumb": photo.rendition("thumb").locator}
    assert not await stores.photos.switch_locators(photo.id, old, {"thumb": f"n:{new_id()}:0:1"})
    assert (await stores.photos.get_photo(photo.id)).rendition("thumb").locator == old["thumb"]


# ---- packing ---------------------------------------------------------------------------


async def test_switching_a_big_volume_says_how_far_it_got(stores, adapter_settings, monkeypatch):
    monkeypatch.setattr(packing, "SWITCH_PROGRESS_EVERY", 2)
    made = [await landed_photo(stores, sizes=(500, 200, 100)) for _ in range(5)]
    lines: list[str] = []
    await run_pack(stores, adapter_settings, progress=lines.append)
    counts = [
        (int(m[1]), int(m[2]))
        for m in (re.match(r"switched (\d+)/(\d+) record\(s\) to volume \d+$", x) for x in lines)
        if m
    ]
    assert len(counts) >= 2, lines  # one volume of 5 photos at least (others' too, if old)
    assert all(done % 2 == 0 and done < total for done, total in counts), counts
    for photo, data in made:
        await assert_packed(stores, photo, data)


async def test_pack_moves_old_landed_photos_into_volumes(stores, adapter_settings):
    made = [await landed_photo(stores) for _ in range(4)]
    young, _ = await landed_photo(stores, at_ms=ids.now_ms())
    deleted, _ = await landed_photo(stores)
    await stores.photos.set_deleted(deleted, datetime.now(UTC))
    report = await run_pack(stores, small_volumes(adapter_settings))
    assert report.photos >= 4 and report.volumes >= 2  # 6.5 kB a photo, 8 kB volumes
    seen = set()
    for photo, data in made:
        await assert_packed(stores, photo, data)
        seen |= {
            volumes.blob_of(r.locator) for r in (await stores.photos.get_photo(photo.id)).renditions
        }
    assert len(seen) >= 2
    assert await stores.photos.get_photo(young.id) == young  # too young: left landed
    assert (await stores.photos.get_photo(deleted.id)).renditions == deleted.renditions
    assert all([await exists(stores, r.locator) for r in deleted.renditions])
    assert await manifests(stores) == []
    again = await run_pack(stores, small_volumes(adapter_settings))
    assert again.volumes == 0 and again.resumed == 0  # nothing left to do


async def test_a_blob_shared_by_records_becomes_one_needle_and_goes_when_all_moved(
    stores, adapter_settings
):
    first, data = await landed_photo(stores)
    keys = [r.locator for r in first.renditions]
    second, _ = await landed_photo(stores, keys=keys)
    kept, _ = await landed_photo(stores, keys=keys)
    await stores.photos.set_deleted(kept, datetime.now(UTC))  # still points at them
    await run_pack(stores, adapter_settings)
    a = await stores.photos.get_photo(first.id)
    b = await stores.photos.get_photo(second.id)
    assert a.renditions == b.renditions and all(volumes.is_needle(r.locator) for r in a.renditions)
    assert [await read(stores, r.locator) for r in a.renditions] == list(data.values())
    assert all([await exists(stores, k) for k in keys])  # the deleted record still uses them


async def test_a_volume_stays_while_any_record_points_into_it_and_gc_takes_it_after(
    stores, adapter_settings
):
    made = [await landed_photo(stores) for _ in range(2)]
    await run_pack(stores, adapter_settings)
    packed = [await stores.photos.get_photo(p.id) for p, _ in made]
    volume = volumes.blob_of(packed[0].renditions[0].locator)
    assert {volumes.blob_of(r.locator) for p in packed for r in p.renditions} == {volume}
    far = datetime.now(UTC) + 2 * ORPHAN_GRACE
    await gc.gc(stores.photos, stores.blobs, adapter_settings, now=far)
    assert await exists(stores, volume)
    for photo in packed:  # purge one, then the other: purge never removes a volume
        await stores.photos.set_deleted(photo, datetime.now(UTC) - timedelta(days=60))
        await purge.purge(stores.photos, stores.blobs, adapter_settings)
        assert await stores.photos.get_photo(photo.id) is None
        assert await exists(stores, volume)
    await gc.gc(stores.photos, stores.blobs, adapter_settings, now=far)
    assert not await exists(stores, volume)  # gc: nobody points into it, past the grace


# ---- crashes: each step's state, then a new run -------------------------------------------


async def planned(stores, settings, made):
    """What a run would write for these photos (the manifest and volume not written)."""
    landed = packing._Landed(
        [(p, {r.name: r.locator for r in p.renditions}) for p, _ in made],
        {r.locator: [p.id] for p, _ in made for r in p.renditions},
    )
    generator = ids.IdGenerator(settings.fixed_worker_id or 0)
    (draft,) = await packing._plans(stores.blobs, landed, generator, settings, lambda _: None)
    return draft


def packer(stores):
    return packing.Mover(stores.photos, stores.blobs, packing.PackReport(), print, 0)


@pytest.mark.parametrize(
    "killed_after",
    ["manifest", "volume", "half switched", "all switched", "some landed removed"],
)
async def test_a_run_killed_at_any_step_is_finished_by_the_next(
    stores, adapter_settings, killed_after
):
    made = [await landed_photo(stores) for _ in range(3)]
    draft = await planned(stores, adapter_settings, made)
    plan = draft.plan
    await stores.blobs.put(plan.key, one(plan.encode()))
    if killed_after != "manifest":
        await volumes.write_volume(stores.blobs, plan.volume_id, draft.sources)
    switched = {"half switched": 1, "all switched": 3, "some landed removed": 3}.get(
        killed_after, 0
    )
    for photo_id in sorted(plan.old)[:switched]:
        assert await stores.photos.switch_locators(photo_id, plan.old[photo_id], plan.new[photo_id])
    if killed_after == "some landed removed":
        await stores.blobs.delete(made[0][0].renditions[0].locator)

    report = await run_pack(stores, adapter_settings)
    assert report.resumed >= 1
    for photo, data in made:
        await assert_packed(stores, photo, data)
    assert await manifests(stores) == []
    in_use = {
        volumes.blob_of(r.locator)
        for p, _ in made
        for r in (await stores.photos.get_photo(p.id)).renditions
    }
    if killed_after == "manifest":  # the volume was never written: packed anew
        assert not await exists(stores, volume_key(plan.volume_id))
        assert volume_key(plan.volume_id) not in in_use
    else:  # finished where it stopped: no second volume
        assert in_use == {volume_key(plan.volume_id)}


async def test_a_volume_nobody_moved_to_goes_once_its_manifest_is_old(stores, adapter_settings):
    made = [await landed_photo(stores) for _ in range(2)]
    draft = await planned(stores, adapter_settings, made)
    await packer(stores).write(draft.plan, draft.sources)
    for photo, _ in made:  # deleted before the switch: never moved
        await stores.photos.set_deleted(photo, datetime.now(UTC))
    volume = volume_key(draft.plan.volume_id)
    await packer(stores).finish(draft.plan, may_drop_volume=False)
    assert await exists(stores, volume) and draft.plan.key in await manifests(stores)
    await run_pack(stores, adapter_settings)  # too early to call it dead
    assert await exists(stores, volume)
    later = datetime.now(UTC) + packing.DEAD_VOLUME_GRACE + timedelta(minutes=1)
    report = await run_pack(stores, adapter_settings, now=later)
    assert report.dead_volumes_removed >= 1
    assert not await exists(stores, volume) and draft.plan.key not in await manifests(stores)
    for photo, data in made:  # untouched, landed, readable
        assert (await stores.photos.get_photo(photo.id)).renditions == photo.renditions
        assert [await read(stores, r.locator) for r in photo.renditions] == list(data.values())


# ---- the pack queue ----------------------------------------------------------------------


async def queued(stores) -> set[int]:
    return {i async for i in stores.photos.pack_queue()}


async def test_the_pack_queue_holds_every_saved_photo_until_dropped(stores):
    photo, _ = await landed_photo(stores)
    assert photo.id in await queued(stores)
    await stores.photos.save_photo(photo, [])  # saved again: still one entry
    assert [i async for i in stores.photos.pack_queue()].count(photo.id) == 1
    await stores.photos.unqueue_packed([photo.id])
    await stores.photos.unqueue_packed([photo.id])  # idempotent
    assert photo.id not in await queued(stores)
    await stores.photos.queue_for_packing([photo.id, photo.id])
    assert photo.id in await queued(stores)
    await stores.photos.purge_photo(photo, [])  # purge takes its entry with it
    assert photo.id not in await queued(stores)


async def test_the_queue_comes_oldest_first(stores):
    ids_ = [new_id(HOUR_AGO_MS - 3_600_000 * k) for k in (3, 0, 2, 1)]  # other buckets too
    for photo_id in ids_:
        await stores.photos.queue_for_packing([photo_id])
    order = [i async for i in stores.photos.pack_queue() if i in ids_]
    assert order == sorted(ids_)
    await stores.photos.unqueue_packed(ids_)


async def test_the_packer_drops_what_it_packed_and_keeps_what_still_has_landed_blobs(
    stores, adapter_settings
):
    packed, data = await landed_photo(stores)
    young, _ = await landed_photo(stores, at_ms=ids.now_ms())
    deleted, _ = await landed_photo(stores)
    await stores.photos.set_deleted(deleted, datetime.now(UTC))
    report = await run_pack(stores, adapter_settings)
    await assert_packed(stores, packed, data)
    left = await queued(stores)
    assert packed.id not in left and report.unqueued >= 1
    assert {young.id, deleted.id} <= left  # landed blobs still: young, or deleted (a sharer)
    await stores.photos.set_deleted(deleted, None)  # restored: packed by the next run
    await run_pack(stores, adapter_settings)
    assert all(
        volumes.is_needle(r.locator) for r in (await stores.photos.get_photo(deleted.id)).renditions
    )
    assert deleted.id not in await queued(stores)


async def test_a_queued_id_without_a_record_goes_only_after_the_orphan_grace(
    stores, adapter_settings
):
    saving = new_id(HOUR_AGO_MS)  # a save whose batch shows its entry before its record
    await stores.photos.queue_for_packing([saving])
    await run_pack(stores, adapter_settings)
    assert saving in await queued(stores)
    later = datetime.now(UTC) + ORPHAN_GRACE
    await run_pack(stores, adapter_settings, now=later)
    assert saving not in await queued(stores)


async def test_a_record_outside_the_queue_is_packed_only_by_a_full_scan(stores, adapter_settings):
    """Photos saved before the queue existed (schema 006) or stored the old way (a folder
    per photo): ``instastore pack --scan-all`` queues them, then packs them."""
    old_way, data = await landed_photo(
        stores, keys=[f"{uuid.uuid4().hex}/{name}" for name in ("original", "large", "thumb")]
    )
    await stores.photos.unqueue_packed([old_way.id])
    await run_pack(stores, adapter_settings)
    assert await stores.photos.get_photo(old_way.id) == old_way  # not seen: not queued
    report = await run_pack(stores, adapter_settings, scan_all=True)
    assert report.queued >= 1
    await assert_packed(stores, old_way, data)
    assert old_way.id not in await queued(stores)


class SwitchesWhenDropped:
    """A PhotoStore whose record gains landed blobs of its own just after the packer
    drops it from the queue: an upload whose donor went, racing the packer."""

    def __init__(self, photos, photo_id, old, new):
        self.photos, self.photo_id, self.old, self.new = photos, photo_id, old, new

    def __getattr__(self, name):
        return getattr(self.photos, name)

    async def unqueue_packed(self, photo_ids):
        await self.photos.unqueue_packed(photo_ids)
        if self.photo_id in photo_ids:
            assert await self.photos.switch_locators(self.photo_id, self.old, self.new)


async def test_a_record_that_gains_landed_blobs_while_dropped_goes_back_in_the_queue(
    stores, adapter_settings
):
    photo, _ = await landed_photo(stores)
    await run_pack(stores, adapter_settings)
    packed = await stores.photos.get_photo(photo.id)  # needles only: dropped by the next run
    mine = {r.name: r.locator for r in packed.renditions}
    key = f"p{uuid.uuid4().hex[:8]}/{photo.id}.own.jpg"
    await stores.blobs.put(key, one(b"its own bytes"))
    racing = SwitchesWhenDropped(stores.photos, photo.id, mine, dict.fromkeys(mine, key))
    await stores.photos.queue_for_packing([photo.id])
    await packing.pack(racing, stores.blobs, adapter_settings, min_age=MIN_AGE, landed_grace_s=0)
    now = await stores.photos.get_photo(photo.id)
    assert {r.locator for r in now.renditions} == {key}
    assert photo.id in await queued(stores)  # back in the queue, so it gets packed
    await run_pack(stores, adapter_settings)
    assert all(
        volumes.is_needle(r.locator) for r in (await stores.photos.get_photo(photo.id)).renditions
    )


async def test_purge_keeps_a_landed_blob_a_queued_record_shares_even_if_the_purged_one_is_not(
    stores, adapter_settings
):
    kept, data = await landed_photo(stores, at_ms=ids.now_ms())  # young: stays landed
    keys = [r.locator for r in kept.renditions]
    gone, _ = await landed_photo(stores, keys=keys)
    await stores.photos.unqueue_packed([gone.id])  # out of the queue (it should not be)
    await stores.photos.set_deleted(gone, datetime.now(UTC) - timedelta(days=60))
    report = await purge.purge(stores.photos, stores.blobs, adapter_settings)
    assert report.purged >= 1 and await stores.photos.get_photo(gone.id) is None
    assert [await read(stores, k) for k in keys] == list(data.values())
    await stores.photos.set_deleted(kept, datetime.now(UTC) - timedelta(days=60))
    await purge.purge(stores.photos, stores.blobs, adapter_settings)
    assert not any([await exists(stores, k) for k in keys])  # the last one takes them
