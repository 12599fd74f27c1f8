"""The transcode queue's worker (``Transcoder``) and the backfill of videos stored before
it existed.

A job (``TranscodeJob``) is queued before its video's record is saved; a worker claims it
under a lease (a conditional write: of two workers one wins), renews the lease while it
works, and ends it by writing the record (``finish_video``: the "video" rendition, or the
failure and its reason) and then forgetting the job. Every step may be cut by kill -9:
- before the record is written, the lease lapses (at once when the dead worker was a
  process of the same host) and the next worker takes the job (one more attempt; past
  MAX_TRANSCODE_ATTEMPTS the video is marked failed, so a file that kills its worker
  every time does not kill every worker);
- the rendition's blob key is fixed by the photo id (``blob_key(id, "web", "mp4")``) and a
  blob store never writes a key twice, so a job done twice leaves one blob: a worker that
  finds it written already uses it and transcodes nothing;
- after the record is written, the next worker finds it done and forgets the job.
Transcodes run in child processes (``instastore.video.child``), ``transcode_workers`` at
once per process, never on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from instastore import leases, media
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.errors import Conflict, InstastoreError, NotFound
from instastore.lifecycle import volumes
from instastore.limits import MAX_TRANSCODE_ATTEMPTS, ORPHAN_GRACE
from instastore.model import Kind, Photo, Rendition, VideoState
from instastore.storage import scratch
from instastore.storage.keys import blob_key
from instastore.storage.ports import BlobStore, PhotoPorts, TranscodeJob, TranscodeQueue
from instastore.uploads.receive import file_chunks
from instastore.video import child, rendition
from instastore.video.probe import VideoLimits

log = logging.getLogger(__name__)

LEASE_S = 30.0  # a job's lease; renewed every third of it while its worker lives
POLL_S = 1.0  # how often an idle worker looks for jobs
# A job whose record is not saved (yet) is looked at again after as long as it has waited,
# within these bounds: soon while its upload is likely still writing blobs (a worker may
# claim a job in the seconds between its queueing and its record's save), rarely after.
ORPHAN_RECHECK_MIN = timedelta(seconds=2)
ORPHAN_RECHECK = timedelta(minutes=10)
JOBS_READ = 100  # jobs read at a time
WORK_PREFIX = "transcode-"  # a job's folder in data_dir/tmp: the original and the rendition
BLOB_NAME = "web"  # a transcoded rendition's key: <bucket>/<id>.web.mp4 (one per photo)


def rendition_key(photo_id: int) -> str:
    return blob_key(photo_id, BLOB_NAME, rendition.EXTENSION)


class Transcoder:
    """Claims jobs from the queue and makes their renditions, ``settings.transcode_workers``
    at a time in this process."""

    def __init__(
        self,
        queue: TranscodeQueue,
        photos: PhotoPorts,
        blobs: BlobStore,
        settings: Settings,
        holder: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.queue = queue
        self.photos = photos
        self.blobs = blobs
        self.settings = settings
        self.holder = holder
        self.clock = clock
        self.limits = media.video_limits(settings.max_image_pixels, settings)
        self.lease = timedelta(seconds=LEASE_S)
        self.tmp_dir = Path(settings.data_dir) / "tmp"
        self.done = 0  # jobs this worker ended (made, failed or moot)
        # Told of each photo whose record it changed (its process drops its caches of it).
        self.on_finished: Callable[[int], None] | None = None

    async def run(self, *, until_empty: bool = False) -> None:
        """Work until cancelled; with ``until_empty``, until the queue is empty."""
        await asyncio.to_thread(remove_abandoned_work, self.tmp_dir, self.clock())
        slots = asyncio.Semaphore(max(1, self.settings.transcode_workers))
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                claimed = 0
                try:
                    jobs = await self._open_jobs()
                except InstastoreError as exc:
                    log.warning("transcode queue unreadable, trying again: %s", exc)
                    jobs = None
                for job in jobs or []:
                    await slots.acquire()
                    try:
                        held = await self.queue.claim_transcode(
                            job, self.holder, self.clock() + self.lease
                        )
                    except InstastoreError as exc:
                        log.warning("could not claim transcode %d: %s", job.photo_id, exc)
                        held = None
                    if held is None:
                        slots.release()
                        continue
                    claimed += 1
                    task = asyncio.create_task(self._one(held, slots))
                    running.add(task)
                    task.add_done_callback(running.discard)
                if (
                    until_empty
                    and jobs == []
                    and not running
                    and not await self.queue.transcode_jobs(-1, 1)
                ):
                    return
                if not claimed:
                    await asyncio.sleep(POLL_S)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _open_jobs(self) -> list[TranscodeJob]:
        """Queued jobs no live worker holds, oldest first: never held, lease lapsed, or
        held by a process of this host that provably ended (killed: taken at once)."""
        now, after, found = self.clock(), -1, []
        while True:
            page = await self.queue.transcode_jobs(after, JOBS_READ)
            found += [
                j
                for j in page
                if j.lease_until is None
                or j.lease_until <= now
                or (j.holder is not None and leases.gone(j.holder))
            ]
            if len(page) < JOBS_READ:
                return found
            after = page[-1].photo_id

    async def _one(self, job: TranscodeJob, slots: asyncio.Semaphore) -> None:
        renewing = asyncio.create_task(self._renew(job.photo_id))
        try:
            await self.work(job)
        except InstastoreError as exc:  # a store unavailable: the lease lapses, tried again
            log.warning("transcode of %d stopped, to be tried again: %s", job.photo_id, exc)
        finally:
            renewing.cancel()
            slots.release()

    async def _renew(self, photo_id: int) -> None:
        while True:
            await asyncio.sleep(LEASE_S / 3)
            with contextlib.suppress(InstastoreError):
                if not await self.queue.renew_transcode(
                    photo_id, self.holder, self.clock() + self.lease
                ):
                    log.warning("lost the lease of transcode %d", photo_id)
                    return

    async def work(self, job: TranscodeJob) -> None:
        """Do one claimed job to its end: the record written, the job forgotten."""
        photo = await self.photos.get_photo(job.photo_id)
        if photo is None:
            # Queued before its record is saved: the save may still come, until the
            # upload could no longer be retried; looked at again now and then till then.
            waited = self.clock() - job.queued_at
            if waited > ORPHAN_GRACE:
                await self._end(job)
            else:
                await self.queue.renew_transcode(
                    job.photo_id, self.holder, self.clock() + orphan_recheck(waited)
                )
            return
        if photo.deleted or _done(photo, job):
            await self._end(job)
            return
        if job.attempts > MAX_TRANSCODE_ATTEMPTS:
            tries = MAX_TRANSCODE_ATTEMPTS
            await self._finish(job, f"the transcode stopped its worker {tries} times; given up")
            return
        result = await self._rendition(photo)
        await self._finish(job, result)

    async def _finish(self, job: TranscodeJob, result: Rendition | str) -> None:
        if isinstance(result, str):
            log.warning("video %d failed: %s", job.photo_id, result)
        await self.photos.finish_video(job.photo_id, job.replaces, result)
        if self.on_finished is not None:
            self.on_finished(job.photo_id)
        await self._end(job)

    async def _end(self, job: TranscodeJob) -> None:
        await self.queue.forget_transcode(job.photo_id)
        self.done += 1

    async def _rendition(self, photo: Photo) -> Rendition | str:
        """The photo's browser-safe rendition, stored; or why it cannot have one."""
        key = rendition_key(photo.id)
        original = photo.rendition("original")
        if original is None:
            return "the original upload is missing"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        prefix = WORK_PREFIX + scratch.owner_tag()  # a cleaner tells when its worker is gone
        with tempfile.TemporaryDirectory(dir=self.tmp_dir, prefix=prefix) as work:
            source, target = Path(work) / "source", Path(work) / "rendition.mp4"
            try:  # made by an earlier attempt that died before writing the record
                await self._fetch(key, source)
            except NotFound:
                await self._fetch(volumes.blob_of(original.locator), source, original.locator)
                made = await child.run(
                    source,
                    target,
                    self.limits,
                    self.settings.transcode_cpu_seconds,
                    self.settings.transcode_wall_seconds,
                )
                if isinstance(made, child.Failed):
                    return made.reason
                # Conflict: another worker's lease lapsed while it worked; its bytes stand.
                # Closed here whatever put did with it: a stream put stopped reading (a
                # conflict, a failure) would otherwise hold the file open until collected.
                with contextlib.suppress(Conflict):
                    async with contextlib.aclosing(file_chunks(target)) as chunks:
                        await self.blobs.put(key, chunks)
                return Rendition(
                    "video", key, rendition.CONTENT_TYPE, made.size, made.width, made.height
                )
            found, _ = await asyncio.to_thread(rendition.inspect, source, "mp4", self.limits)
            size = source.stat().st_size
            width, height = found.shown
            return Rendition("video", key, rendition.CONTENT_TYPE, size, width, height)

    async def _fetch(self, key: str, path: Path, locator: str | None = None) -> None:
        chunks = (
            volumes.open_locator(self.blobs, locator)
            if locator is not None
            else self.blobs.open(key)
        )
        with path.open("wb") as out:
            async for chunk in chunks:
                await asyncio.to_thread(out.write, chunk)


def orphan_recheck(waited: timedelta) -> timedelta:
    """When a job whose record is not saved yet is looked at again: after as long as it
    has waited (so a few claims cover its upload's last seconds), within bounds."""
    return min(ORPHAN_RECHECK, max(ORPHAN_RECHECK_MIN, waited))


def remove_abandoned_work(tmp_dir: Path, now: datetime) -> int:
    """Remove the work folders of killed workers of this host; how many. Blocking."""
    removed = 0
    for path in tmp_dir.glob(f"{WORK_PREFIX}*"):
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if scratch.abandoned(path.name, WORK_PREFIX, modified, now, ORPHAN_GRACE):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _done(photo: Photo, job: TranscodeJob) -> bool:
    """Has the record moved past what the job replaces (finished by another worker)?"""
    current = photo.rendition("video")
    return (current.locator if current else None) != job.replaces or (
        photo.transcode is not None and photo.transcode.state is VideoState.FAILED
    )


def needs_backfill(photo: Photo) -> bool:
    """A live video stored before the queue, with no browser-safe rendition: none at all,
    or a stream copy in another container than MP4 (a copy in MP4 is checked by
    ``backfill``, which reads its codecs)."""
    if photo.kind is not Kind.VIDEO or photo.deleted or photo.transcode is not None:
        return False
    current = photo.rendition("video")
    return current is None or current.content_type != rendition.CONTENT_TYPE


def limits_of(settings: Settings) -> VideoLimits:
    return media.video_limits(settings.max_image_pixels, settings)


async def backfill(
    photos: PhotoPorts,
    queue: TranscodeQueue,
    blobs: BlobStore,
    settings: Settings,
    progress: Callable[[str], None] = print,
    clock: Callable[[], datetime] = utcnow,
) -> tuple[int, int]:
    """Queue a job for every live video stored without a browser-safe rendition (a full
    scan of the records: a batch job); (videos seen, jobs queued)."""
    limits = limits_of(settings)
    tmp_dir = Path(settings.data_dir) / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    seen = queued = 0
    async for photo in photos.scan_photos():
        if photo.kind is not Kind.VIDEO or photo.deleted or photo.transcode is not None:
            continue
        seen += 1
        current = photo.rendition("video")
        if (
            not needs_backfill(photo)
            and current is not None
            and await _plays_everywhere(blobs, current, limits, tmp_dir)
        ):
            continue
        await queue.queue_transcode(
            TranscodeJob(photo.id, current.locator if current else None, clock())
        )
        queued += 1
        if queued % 100 == 0:
            progress(f"backfill: {seen} video(s) read, {queued} queued")
    progress(f"backfill: {seen} video(s) read, {queued} queued")
    return seen, queued


async def _plays_everywhere(
    blobs: BlobStore, current: Rendition, limits: VideoLimits, tmp_dir: Path
) -> bool:
    """Is a stored MP4 copy what every browser plays (H.264 and AAC in bounds)?"""
    from instastore.errors import InvalidMedia
    from instastore.video.probe import transcode_reason

    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix="backfill-") as work:
        path = Path(work) / "copy.mp4"
        with path.open("wb") as out:
            async for chunk in volumes.open_locator(blobs, current.locator):
                await asyncio.to_thread(out.write, chunk)
        try:
            found, _ = await asyncio.to_thread(rendition.inspect, path, "mp4", limits)
        except InvalidMedia:
            return False
        return transcode_reason(found, limits) is None
