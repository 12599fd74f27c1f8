"""The upload's write path under faults, on both adapters: a save whose outcome is unknown
is never undone, and an Idempotency-Key is never stuck nor makes two photos.

Faults are injected by wrapping the real stores (a save that raises ``OutcomeUnknown``
after writing or without writing; a release that fails as if the store were down; a blob
write held back), never by mocking Cassandra or HDFS."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from instastore import errors
from instastore.ids import IdGenerator
from instastore.model import User, Visibility
from instastore.photos import Photos
from instastore.uploads import Uploads, receive

from .. import samples
from ..factories import make_user, new_id

STALE_S = 30  # the claim window of these tests; the clock is moved past it, never waited


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FaultyPhotos:
    """The real photo port, with a save fault a test switches on."""

    def __init__(self, real) -> None:
        self.real = real
        self.save_fault: str | None = None  # "after writing" or "without writing", once
        self.saved: list = []

    def __getattr__(self, name):
        return getattr(self.real, name)

    async def save_photo(self, photo, terms):
        self.saved.append(photo)
        fault, self.save_fault = self.save_fault, None
        if fault != "without writing":
            await self.real.save_photo(photo, terms)
        if fault:
            raise errors.OutcomeUnknown(f"injected: save timed out {fault}")


class FaultyClaims:
    """The real Idempotency-Key claims port; its release fails while ``release_down``."""

    def __init__(self, real) -> None:
        self.real = real
        self.release_down = False

    def __getattr__(self, name):
        return getattr(self.real, name)

    async def release_idempotency_key(self, user_id, key, photo_id):
        if self.release_down:
            raise errors.Unavailable("injected: the store is down")
        await self.real.release_idempotency_key(user_id, key, photo_id)


class HeldBlobs:
    """The real blob store; ``put`` of the first blob waits while ``hold`` is set, and
    fails while ``down`` is set."""

    def __init__(self, real) -> None:
        self.real = real
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()
        self.down = False

    def __getattr__(self, name):
        return getattr(self.real, name)

    async def put(self, key, chunks):
        if self.down:
            raise errors.Unavailable("injected: the blob store is down")
        if self.hold is not None and key.endswith("original.jpg"):
            self.holding.set()
            await self.hold.wait()
        return await self.real.put(key, chunks)


@dataclasses.dataclass
class Rig:
    uploads: Uploads
    photos: FaultyPhotos
    claims: FaultyClaims
    blobs: HeldBlobs
    clock: Clock
    user: User

    async def upload(self, key: str | None, title: str = "a photo"):
        # Bytes of its own, so that it writes blobs of its own (not deduplicated against
        # another test's upload: the cluster's keyspace is shared by the session).
        data = samples.image(color=tuple(random.randrange(256) for _ in range(3)))

        async def chunks():
            yield data

        received = await receive(chunks(), len(data), self.uploads.tmp_dir)
        try:
            return await self.uploads.create(self.user, received, title, Visibility.PUBLIC, key)
        finally:
            received.discard()

    async def photo_ids(self) -> list[int]:
        return await self.photos.user_photo_ids(self.user.id, None, 100)

    async def blob_keys(self, photo_id: int) -> list[str]:
        every = self.blobs.real.entries()
        return [e.key async for e in every if str(photo_id) in e.key]


@pytest.fixture
async def rig(stores, adapter_settings, tmp_path):
    settings = dataclasses.replace(
        adapter_settings, data_dir=tmp_path / "d", upload_claim_stale_seconds=STALE_S
    )
    photos, claims = FaultyPhotos(stores.photos), FaultyClaims(stores.claims)
    blobs = HeldBlobs(stores.blobs)
    clock = Clock()
    uploads = Uploads(
        claims,
        photos,
        blobs,
        settings,
        IdGenerator(worker_id=11),
        Photos(photos, stores.search, settings),
        stores.transcodes,
        clock,
    )
    user = make_user(created_at=clock())
    return Rig(uploads, photos, claims, blobs, clock, user)


async def test_a_claim_left_by_a_failed_upload_is_taken_over_once_stale(rig):
    key = uuid.uuid4().hex
    rig.blobs.down = rig.claims.release_down = True  # the upload fails; so does freeing its key
    with pytest.raises(errors.Unavailable):
        await rig.upload(key)
    rig.blobs.down = rig.claims.release_down = False

    with pytest.raises(errors.Conflict) as young:  # the claim may belong to a live upload
        await rig.upload(key)
    assert 1 <= young.value.retry_after <= STALE_S + 1

    rig.clock.advance(STALE_S + 1)
    photo, created = await rig.upload(key)
    assert created and await rig.photo_ids() == [photo.id]
    again, created = await rig.upload(key)
    assert (again.id, created) == (photo.id, False)
    assert await rig.photo_ids() == [photo.id]


async def test_the_old_attempt_is_fenced_off_after_a_takeover(rig):
    key = uuid.uuid4().hex
    gate = rig.blobs.hold = asyncio.Event()
    old = asyncio.create_task(rig.upload(key, "old attempt"))
    await rig.blobs.holding.wait()  # the old attempt holds the key, writing its first blob
    now = rig.clock()
    old_id = (
        await rig.claims.claim_idempotency_key(
            rig.user.id, key, new_id(), now, now + timedelta(days=1)
        )
    ).photo_id
    rig.blobs.hold = None
    rig.clock.advance(STALE_S + 1)  # ... and looks dead (no heartbeat within the window)

    photo, created = await rig.upload(key, "the retry")
    assert created and photo.title == "the retry"

    gate.set()
    with pytest.raises(errors.Conflict):
        await old  # it wrote its blobs, then found the key taken over
    assert [p.id for p in rig.photos.saved] == [photo.id]  # the old attempt never saved
    assert await rig.photo_ids() == [photo.id]
    assert await rig.blob_keys(old_id) == [], "the fenced attempt left blobs behind"
    assert (await rig.upload(key))[0].id == photo.id


@pytest.mark.parametrize("keyed", [True, False])
async def test_a_save_with_an_unknown_outcome_that_landed_is_acknowledged(rig, keyed):
    rig.photos.save_fault = "after writing"
    photo, created = await rig.upload(uuid.uuid4().hex if keyed else None)
    assert created and await rig.photo_ids() == [photo.id]
    assert len(await rig.blob_keys(photo.id)) == len(photo.renditions)  # its media are all there


async def test_a_save_with_an_unknown_outcome_keeps_blobs_and_key_and_the_retry_settles_it(rig):
    key = uuid.uuid4().hex
    rig.photos.save_fault = "without writing"
    with pytest.raises(errors.OutcomeUnknown):
        await rig.upload(key, "first")
    (meant,) = rig.photos.saved
    assert len(await rig.blob_keys(meant.id)) == len(meant.renditions)  # nothing undone

    photo, created = await rig.upload(key, "the retry")  # re-applies the first attempt's record
    assert photo == meant and not created
    assert await rig.photo_ids() == [meant.id]
    assert await rig.photos.get_photo(meant.id) == meant
    assert (await rig.upload(key))[0].id == meant.id


async def test_a_late_landing_of_an_unknown_save_is_the_photo_the_retry_returns(rig):
    key = uuid.uuid4().hex
    rig.photos.save_fault = "without writing"
    with pytest.raises(errors.OutcomeUnknown):
        await rig.upload(key)
    (meant,) = rig.photos.saved
    await rig.photos.real.save_photo(meant, [])  # Cassandra's batch log replays the batch
    photo, created = await rig.upload(key)
    assert photo.id == meant.id and not created
    assert await rig.photo_ids() == [meant.id]
    assert len(await rig.blob_keys(meant.id)) == len(meant.renditions)


async def test_without_a_key_an_unknown_save_leaves_its_blobs(rig):
    rig.photos.save_fault = "without writing"
    with pytest.raises(errors.OutcomeUnknown):
        await rig.upload(None)
    (meant,) = rig.photos.saved
    # If the batch lands later, its photo is whole: the blobs stay until gc's grace.
    assert len(await rig.blob_keys(meant.id)) == len(meant.renditions)
