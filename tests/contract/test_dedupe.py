"""Content dedupe on both adapters (docs/DESIGN.md, "Dedupe"): an upload
of bytes already stored reuses the donor's renditions, so the bytes are stored once; a
purge of one photo never removes bytes another still points at, whether the donor is
landed or packed; the donor deleted or packed while an upload reuses it is noticed before
the upload is answered; gc finds nothing to remove afterwards."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

import pytest

from instastore import ids
from instastore.ids import IdGenerator
from instastore.lifecycle import gc, packing, purge, volumes
from instastore.model import Photo, Visibility
from instastore.photos import Photos
from instastore.uploads import Uploads, receive

from .. import samples
from ..factories import exists, make_user


def unique_picture() -> bytes:
    """Bytes no other test uploads (the cluster's keyspace is shared by the session)."""
    return samples.picture(size=(640, 480), seed=random.randrange(2**31))


class Rig:
    def __init__(self, stores, settings, photo_store=None) -> None:
        self.stores = stores
        self.settings = settings
        photos = photo_store or stores.photos
        self.uploads = Uploads(
            stores.claims,
            photos,
            stores.blobs,
            settings,
            IdGenerator(worker_id=12),
            Photos(photos, stores.search, settings),
            stores.transcodes,
        )

    async def upload(self, data: bytes, title: str = "same bytes") -> Photo:
        async def chunks():
            yield data

        received = await receive(chunks(), len(data), self.uploads.tmp_dir)
        try:
            photo, created = await self.uploads.create(
                make_user(), received, title, Visibility.PUBLIC, None
            )
            await self.uploads.removals_done()  # a deduplicated upload's own blobs
        finally:
            received.discard()
        assert created
        return photo

    async def read_all(self, photo_id: int) -> dict[str, bytes]:
        photo = await self.stores.photos.get_photo(photo_id)
        return {
            r.name: b"".join([c async for c in volumes.open_locator(self.stores.blobs, r.locator)])
            for r in photo.renditions
        }

    async def blob_bytes(self) -> dict[str, int]:
        return {e.key: e.size async for e in self.stores.blobs.entries()}

    async def purge(self, photo: Photo) -> purge.PurgeReport:
        await self.stores.photos.set_deleted(photo, datetime.now(UTC) - timedelta(days=60))
        return await purge.purge(self.stores.photos, self.stores.blobs, self.settings)

    async def gc(self) -> gc.GcReport:
        return await gc.gc(self.stores.photos, self.stores.blobs, self.settings)


@pytest.fixture
def rig(stores, adapter_settings, tmp_path):
    return Rig(stores, dataclasses.replace(adapter_settings, data_dir=tmp_path / "d"))


def locators(photo: Photo) -> dict[str, str]:
    return {r.name: r.locator for r in photo.renditions}


async def test_the_same_image_uploaded_20_times_is_stored_once(rig):
    data = unique_picture()
    before = await rig.blob_bytes()
    first = await rig.upload(data)
    stored_once = {k: s for k, s in (await rig.blob_bytes()).items() if k not in before}
    assert sum(stored_once.values()) == sum(r.size for r in first.renditions)
    others = [await rig.upload(data, f"copy {i}") for i in range(19)]
    after = await rig.blob_bytes()
    assert {k: s for k, s in after.items() if k not in before} == stored_once
    assert len({p.id for p in others}) == 19 and len({p.secret for p in others}) == 19
    for photo in others:
        assert locators(photo) == locators(first)
        assert (
            dataclasses.replace(
                photo,
                id=first.id,
                title=first.title,
                secret=first.secret,
                owner_id=first.owner_id,
                created_at=first.created_at,
            )
            == first
        )
        assert (await rig.stores.photos.get_photo(photo.id)) == photo


async def test_purging_one_photo_keeps_the_bytes_another_uses(rig):
    data = unique_picture()
    alice = await rig.upload(data, "alice's")
    bob = await rig.upload(data, "bob's")
    assert locators(bob) == locators(alice)
    expected = await rig.read_all(bob.id)
    assert expected["original"] == data

    report = await rig.purge(alice)
    assert report.purged >= 1
    assert await rig.stores.photos.get_photo(alice.id) is None
    assert await rig.read_all(bob.id) == expected  # byte-identical
    assert (await rig.gc()).removed == 0

    carol = await rig.upload(data, "carol's")  # the donor is gone: her own bytes
    assert locators(carol) != locators(bob)
    await rig.purge(bob)  # now nobody else uses them: they go
    for locator in locators(bob).values():
        assert not await exists(rig.stores, volumes.blob_of(locator))
    assert await rig.read_all(carol.id) == expected


async def test_dedupe_with_a_packed_donor(rig):
    data = unique_picture()
    donor = await rig.upload(data, "packed first")
    await pack_only(rig, donor.id)
    packed = await rig.stores.photos.get_photo(donor.id)
    assert all(volumes.is_needle(loc) for loc in locators(packed).values())
    before = await rig.blob_bytes()
    copy = await rig.upload(data, "reuses the needles")
    assert await rig.blob_bytes() == before  # nothing written
    assert locators(copy) == locators(packed)
    expected = await rig.read_all(copy.id)
    assert expected["original"] == data

    await rig.purge(packed)
    assert await rig.read_all(copy.id) == expected
    assert (await rig.gc()).removed == 0
    assert await rig.read_all(copy.id) == expected


async def test_a_landed_blob_reused_after_the_packers_scan_stays(rig):
    """The packer read the records before the upload saved its own: its references read
    after the switch keep the landed blobs the new record points at."""
    data = unique_picture()
    donor = await rig.upload(data, "packed while copied")
    draft, packer = await plan_only(rig, donor.id)
    copy = await rig.upload(data, "copied from the landed blobs")
    assert locators(copy) == locators(donor)
    expected = await rig.read_all(copy.id)
    await packer.write(draft.plan, draft.sources)
    await packer.finish(draft.plan, may_drop_volume=False)
    assert all(
        volumes.is_needle(loc)
        for loc in locators(await rig.stores.photos.get_photo(donor.id)).values()
    )
    assert await rig.read_all(copy.id) == expected
    assert (await rig.gc()).removed == 0
    assert await rig.read_all(copy.id) == expected


class DonorChangesOnSave:
    """The donor is deleted, or packed, right after an upload saves a record reusing it
    (between the save and the upload's read of the donor)."""

    def __init__(self, real, change) -> None:
        self.real = real
        self.change = change
        self.donor_id: int | None = None

    def __getattr__(self, name):
        return getattr(self.real, name)

    async def save_photo(self, photo, terms):
        await self.real.save_photo(photo, terms)
        if self.donor_id is not None and photo.id != self.donor_id:
            await self.change(self.donor_id)


async def test_a_donor_deleted_before_the_upload_is_answered_leaves_it_its_own_bytes(
    stores, adapter_settings, tmp_path
):
    async def delete(donor_id):
        donor = await stores.photos.get_photo(donor_id)
        await stores.photos.set_deleted(donor, datetime.now(UTC))

    faulty = DonorChangesOnSave(stores.photos, delete)
    rig = Rig(stores, dataclasses.replace(adapter_settings, data_dir=tmp_path / "d"), faulty)
    data = unique_picture()
    donor = await rig.upload(data, "deleted meanwhile")
    faulty.donor_id = donor.id
    copy = await rig.upload(data, "stores its own")
    saved = await stores.photos.get_photo(copy.id)
    assert saved == copy
    assert not set(locators(copy).values()) & set(locators(donor).values())
    assert all(str(copy.id) in loc for loc in locators(copy).values())
    expected = await rig.read_all(copy.id)
    assert expected["original"] == data
    assert await stores.photos.content_donor(copy.sha256) == copy.id  # the new donor
    assert copy.id in {i async for i in stores.photos.pack_queue()}  # its bytes get packed
    await rig.purge(await stores.photos.get_photo(donor.id))
    assert await rig.read_all(copy.id) == expected


async def test_a_donor_packed_before_the_upload_is_answered_is_followed(
    stores, adapter_settings, tmp_path
):
    settings = dataclasses.replace(adapter_settings, data_dir=tmp_path / "d")

    async def pack(donor_id):
        await pack_only(Rig(stores, settings), donor_id)

    faulty = DonorChangesOnSave(stores.photos, pack)
    rig = Rig(stores, settings, faulty)
    data = unique_picture()
    donor = await rig.upload(data, "packed meanwhile")
    faulty.donor_id = donor.id
    copy = await rig.upload(data, "follows it")
    packed = await stores.photos.get_photo(donor.id)
    assert all(volumes.is_needle(loc) for loc in locators(packed).values())
    assert locators(copy) == locators(packed)
    assert await stores.photos.get_photo(copy.id) == copy
    assert (await rig.read_all(copy.id))["original"] == data


async def test_the_content_index_is_a_hint_checked_against_the_record(rig):
    data = unique_picture()
    first = await rig.upload(data)
    other = await rig.upload(unique_picture(), "other bytes")
    # an index entry naming a photo of other bytes (or none) is never trusted
    await rig.stores.photos.set_content_donor(first.sha256, other.id)
    copy = await rig.upload(data, "not from the wrong donor")
    assert not set(locators(copy).values()) & set(locators(other).values())
    assert (await rig.read_all(copy.id))["original"] == data
    await rig.stores.photos.set_content_donor(first.sha256, ids.IdGenerator(3).next_id())
    again = await rig.upload(data, "no such donor")
    assert (await rig.read_all(again.id))["original"] == data


# ---- helpers ---------------------------------------------------------------------------


async def plan_only(rig: Rig, photo_id: int):
    """The packer's scan and plan, for this photo alone (others' share the keyspace)."""
    photo = await rig.stores.photos.get_photo(photo_id)
    mine = locators(photo)
    landed = packing._Landed([(photo, mine)], {key: [photo_id] for key in mine.values()})
    generator = ids.IdGenerator(rig.settings.fixed_worker_id or 0)
    (draft,) = await packing._plans(rig.stores.blobs, landed, generator, rig.settings, print)
    packer = packing.Mover(
        rig.stores.photos, rig.stores.blobs, packing.PackReport(), lambda _: None, 0
    )
    return draft, packer


async def pack_only(rig: Rig, photo_id: int) -> None:
    draft, packer = await plan_only(rig, photo_id)
    await packer.write(draft.plan, draft.sources)
    await packer.finish(draft.plan, may_drop_volume=False)
