"""The transcode queue (``TranscodeQueue``), the record change a transcode ends with
(``VideoFinish``), and the worker over them (``instastore.video.queue``), on both
adapters: a job has one holder at a time, a lapsed lease passes it on (one more
attempt), a job done twice leaves one rendition, and a video that cannot be made is
marked failed with a reason."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import av
import pytest

from instastore import leases
from instastore.clock import utcnow
from instastore.ids import IdGenerator
from instastore.lifecycle import volumes
from instastore.model import Kind, Photo, Rendition, Transcode, VideoState, Visibility
from instastore.photos import Photos
from instastore.storage.ports import TranscodeJob
from instastore.uploads import Uploads, receive
from instastore.video import queue
from instastore.video.queue import Transcoder, rendition_key

from .. import samples
from ..factories import make_photo, make_user, new_id

pytestmark = pytest.mark.timeout(120)


def video_record(photo_id: int | None = None, **fields) -> Photo:
    photo = make_photo(new_id(), "a clip", photo_id, **fields)
    return dataclasses.replace(photo, kind=Kind.VIDEO, transcode=Transcode(VideoState.PROCESSING))


def web(photo_id: int, size: int = 1000) -> Rendition:
    return Rendition("video", rendition_key(photo_id), "video/mp4", size, 64, 48)


async def test_a_job_is_queued_once_and_listed_oldest_first(stores):
    first, second = new_id(), new_id()
    at = utcnow().replace(microsecond=0)
    for photo_id in (second, first, second):
        await stores.transcodes.queue_transcode(TranscodeJob(photo_id, None, at))
    held = await stores.transcodes.claim_transcode(
        await stores.transcodes.transcode_job(first), "me", at + timedelta(seconds=30)
    )
    await stores.transcodes.queue_transcode(TranscodeJob(first, "other", at))  # kept as it is
    jobs = [
        j
        for j in await stores.transcodes.transcode_jobs(first - 1, 1000)
        if j.photo_id in (first, second)
    ]
    assert [j.photo_id for j in jobs] == [first, second]
    assert jobs[0] == held and jobs[0].replaces is None and jobs[0].queued_at == at
    assert jobs[1] == TranscodeJob(second, None, at)
    assert [j.photo_id for j in await stores.transcodes.transcode_jobs(first, 1)] == [second]


async def test_of_two_workers_claiming_one_job_one_wins(stores):
    photo_id = new_id()
    await stores.transcodes.queue_transcode(TranscodeJob(photo_id, None, utcnow()))
    read = await stores.transcodes.transcode_job(photo_id)
    until = utcnow() + timedelta(seconds=30)
    claims = await asyncio.gather(
        *(stores.transcodes.claim_transcode(read, f"worker {i}", until) for i in range(4))
    )
    won = [c for c in claims if c is not None]
    assert len(won) == 1 and won[0].attempts == 1
    assert (await stores.transcodes.transcode_job(photo_id)).holder == won[0].holder
    # A claim from the same stale read fails too; the holder renews, no one else can.
    assert await stores.transcodes.claim_transcode(read, "late", until) is None
    assert await stores.transcodes.renew_transcode(photo_id, won[0].holder, until)
    assert not await stores.transcodes.renew_transcode(photo_id, "late", until)


async def test_a_lapsed_lease_passes_the_job_on_with_one_more_attempt(stores):
    photo_id = new_id()
    await stores.transcodes.queue_transcode(TranscodeJob(photo_id, None, utcnow()))
    dead = await stores.transcodes.claim_transcode(
        await stores.transcodes.transcode_job(photo_id), "dead", utcnow() - timedelta(seconds=1)
    )
    assert dead is not None
    again = await stores.transcodes.transcode_job(photo_id)
    assert again.lease_until <= utcnow() and again.attempts == 1
    taken = await stores.transcodes.claim_transcode(again, "next", utcnow() + timedelta(30))
    assert taken is not None and taken.attempts == 2 and taken.holder == "next"
    assert not await stores.transcodes.renew_transcode(photo_id, "dead", utcnow())


async def test_a_forgotten_job_cannot_be_claimed(stores):
    photo_id = new_id()
    await stores.transcodes.queue_transcode(TranscodeJob(photo_id, None, utcnow()))
    read = await stores.transcodes.transcode_job(photo_id)
    await stores.transcodes.forget_transcode(photo_id)
    await stores.transcodes.forget_transcode(photo_id)  # idempotent
    assert await stores.transcodes.transcode_job(photo_id) is None
    assert await stores.transcodes.claim_transcode(read, "me", utcnow()) is None
    assert not await stores.transcodes.renew_transcode(photo_id, "me", utcnow())


async def test_finishing_a_video_sets_its_rendition_once(stores):
    photo = video_record()
    await stores.photos.save_photo(photo, [])
    await stores.photos.unqueue_packed([photo.id])
    made = web(photo.id)
    assert await stores.photos.finish_video(photo.id, None, made)
    assert await stores.photos.finish_video(photo.id, None, made)  # an earlier try: settled
    saved = await stores.photos.get_photo(photo.id)
    assert saved.transcode is None and saved.rendition("video") == made
    assert saved.renditions[:-1] == photo.renditions
    assert photo.id in [i async for i in stores.photos.pack_queue()]  # landed bytes
    # Another worker's result finds the record moved on, and changes nothing.
    elsewhere = dataclasses.replace(made, locator=f"elsewhere/{photo.id}.mp4")
    assert not await stores.photos.finish_video(photo.id, None, elsewhere)
    assert not await stores.photos.finish_video(photo.id, None, "too late to fail")
    assert await stores.photos.get_photo(photo.id) == saved


async def test_a_failure_keeps_the_old_copy_and_says_why(stores):
    old = Rendition("video", "old/copy.mov", "video/quicktime", 10, 64, 48)
    photo = dataclasses.replace(video_record(), renditions=(old,), transcode=None)
    await stores.photos.save_photo(photo, [])
    assert await stores.photos.finish_video(photo.id, old.locator, "the video lasts too long")
    assert await stores.photos.finish_video(photo.id, old.locator, "the video lasts too long")
    saved = await stores.photos.get_photo(photo.id)
    assert saved.transcode == Transcode(VideoState.FAILED, "the video lasts too long")
    assert saved.rendition("video") == old


async def test_a_deleted_or_missing_video_is_left_alone(stores):
    photo = video_record()
    await stores.photos.save_photo(photo, [])
    await stores.photos.set_deleted(photo, utcnow())
    assert not await stores.photos.finish_video(photo.id, None, web(photo.id))
    assert not await stores.photos.finish_video(new_id(), None, web(photo.id))
    assert (await stores.photos.get_photo(photo.id)).rendition("video") is None


# ---- the worker, over the core ------------------------------------------------------------


class Rig:
    def __init__(self, stores, settings) -> None:
        self.stores = stores
        self.settings = settings
        self.uploads = Uploads(
            stores.claims,
            stores.photos,
            stores.blobs,
            settings,
            IdGenerator(worker_id=13),
            Photos(stores.photos, stores.search, settings),
            stores.transcodes,
        )
        self.worker = Transcoder(
            stores.transcodes, stores.photos, stores.blobs, settings, leases.holder_name("t")
        )

    async def upload(self, data: bytes) -> Photo:
        async def chunks():
            yield data

        received = await receive(chunks(), len(data), self.uploads.tmp_dir)
        try:
            photo, _ = await self.uploads.create(
                make_user(), received, "a clip", Visibility.PUBLIC, None
            )
        finally:
            received.discard()
        return photo

    async def run_job(self, photo_id: int) -> None:
        job = await self.stores.transcodes.transcode_job(photo_id)
        held = await self.stores.transcodes.claim_transcode(
            job, self.worker.holder, utcnow() + timedelta(seconds=30)
        )
        await self.worker.work(held)

    async def read(self, locator: str) -> bytes:
        return b"".join([c async for c in volumes.open_locator(self.stores.blobs, locator)])


@pytest.fixture
def rig(stores, adapter_settings, tmp_path):
    return Rig(stores, dataclasses.replace(adapter_settings, data_dir=tmp_path / "d"))


async def test_an_upload_to_transcode_is_processing_until_the_worker_makes_it(rig, tmp_path):
    data = samples.clip("mov", "libx265", rotation=-90, metadata=samples.VIDEO_METADATA)
    photo = await rig.upload(data)
    assert photo.transcode == Transcode(VideoState.PROCESSING) and photo.rendition("video") is None
    assert (photo.width, photo.height) == (48, 64)  # upright
    assert (await rig.stores.transcodes.transcode_job(photo.id)).replaces is None
    await rig.run_job(photo.id)
    ready = await rig.stores.photos.get_photo(photo.id)
    assert ready.transcode is None
    made = ready.rendition("video")
    assert (made.locator, made.content_type, made.width, made.height) == (
        rendition_key(photo.id),
        "video/mp4",
        48,
        64,
    )
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(await rig.read(made.locator))
    assert made.size == copy.stat().st_size and b"37.7858" not in copy.read_bytes()
    with av.open(str(copy)) as played:
        stream = played.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.profile) == ("h264", "High")
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in played.decode(video=0)) == 12
    assert await rig.read(ready.rendition("original").locator) == data
    assert await rig.stores.transcodes.transcode_job(photo.id) is None


async def test_a_job_whose_worker_died_after_storing_uses_that_blob(rig, monkeypatch):
    photo = await rig.upload(samples.clip("mp4", "mpeg4"))
    await rig.run_job(photo.id)
    made = (await rig.stores.photos.get_photo(photo.id)).rendition("video")
    # The same job again, as if its worker died after the blob and before the record:
    # it transcodes nothing, and the record keeps its one rendition.

    async def no_transcode(*args):
        raise AssertionError("transcoded twice")

    monkeypatch.setattr(queue.child, "run", no_transcode)
    stale = dataclasses.replace(photo, transcode=Transcode(VideoState.PROCESSING))
    assert stale.rendition("video") is None
    assert await rig.worker._rendition(stale) == made
    await rig.stores.transcodes.queue_transcode(TranscodeJob(photo.id, None, utcnow()))
    await rig.run_job(photo.id)  # the record shows it done: the job goes
    assert await rig.stores.transcodes.transcode_job(photo.id) is None
    keys = [e.key async for e in rig.stores.blobs.entries() if str(photo.id) in e.key]
    assert sorted(keys) == sorted([*(r.locator for r in photo.renditions), made.locator])


async def test_a_video_past_the_bounds_when_transcoded_is_marked_failed(rig):
    photo = await rig.upload(samples.clip("mp4", "mpeg4", frames=24))
    rig.worker.limits = dataclasses.replace(rig.worker.limits, max_seconds=1)
    await rig.run_job(photo.id)
    failed = await rig.stores.photos.get_photo(photo.id)
    assert failed.transcode.state is VideoState.FAILED
    assert "lasts 2 s, over the limit of 1 s" in failed.transcode.reason
    assert failed.rendition("video") is None
    assert await rig.stores.transcodes.transcode_job(photo.id) is None


async def test_a_video_whose_bytes_do_not_decode_fails_without_harm(rig):
    """The decoder runs in a child process: garbage given to it fails the video only."""
    photo = await rig.upload(samples.clip("mp4", "mpeg4"))
    garbage = f"garbage/{photo.id}.original.mp4"

    async def chunks():
        yield b"\x00\x00\x00\x18ftypmp42" + bytes(5000)

    await rig.stores.blobs.put(garbage, chunks())
    bad = dataclasses.replace(
        photo,
        id=new_id(),
        secret="y" * 16,
        renditions=(Rendition("original", garbage, "video/mp4", 5012),),
    )
    await rig.stores.photos.save_photo(bad, [])
    await rig.stores.transcodes.queue_transcode(TranscodeJob(bad.id, None, utcnow()))
    await rig.run_job(bad.id)
    failed = await rig.stores.photos.get_photo(bad.id)
    assert failed.transcode.state is VideoState.FAILED and "decode" in failed.transcode.reason
    assert garbage not in failed.transcode.reason and "tmp" not in failed.transcode.reason


async def test_a_job_that_stopped_its_worker_too_often_is_given_up(rig):
    # Bytes of its own: a copy of a video transcoded already reuses that rendition.
    photo = await rig.upload(samples.clip("mp4", "mpeg4", metadata={"title": uuid.uuid4().hex}))
    for k in range(queue.MAX_TRANSCODE_ATTEMPTS):
        job = await rig.stores.transcodes.transcode_job(photo.id)
        assert job.attempts == k
        # Each holder "dies" holding a lease no other worker of the session may take over
        # (the queue is shared by every test on this store).
        held_until = utcnow() + timedelta(hours=1)
        assert await rig.stores.transcodes.claim_transcode(job, f"dies {k}", held_until)
    await rig.run_job(photo.id)
    failed = await rig.stores.photos.get_photo(photo.id)
    assert failed.transcode.state is VideoState.FAILED and "given up" in failed.transcode.reason


async def test_a_job_whose_record_is_not_saved_waits_then_goes(rig):
    """Queued before its record: the save may still come (a retried upload) until the
    upload's key could no longer be retried; the job is looked at again now and then."""
    from instastore.limits import ORPHAN_GRACE

    young, waited, old = new_id(), new_id(), new_id()
    await rig.stores.transcodes.queue_transcode(TranscodeJob(young, None, utcnow()))
    await rig.stores.transcodes.queue_transcode(
        TranscodeJob(waited, None, utcnow() - timedelta(hours=1))
    )
    await rig.stores.transcodes.queue_transcode(
        TranscodeJob(old, None, utcnow() - ORPHAN_GRACE - timedelta(minutes=1))
    )
    before = utcnow()
    for photo_id in (young, waited, old):
        await rig.run_job(photo_id)
    # Just queued: its upload is likely still writing blobs; looked at again in seconds.
    soon = await rig.stores.transcodes.transcode_job(young)
    assert before + timedelta(seconds=1) < soon.lease_until < utcnow() + timedelta(seconds=10)
    later = await rig.stores.transcodes.transcode_job(waited)  # an hour: every 10 minutes
    assert later.lease_until > utcnow() + timedelta(minutes=9)
    assert await rig.stores.transcodes.transcode_job(old) is None
