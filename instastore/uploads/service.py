"""The upload service: make a photo of a received upload (``Uploads.create``).

Write path: blobs first (original, then renditions), then the photo record and its index
rows in one batch, then the caller answers 201. A crash in between leaves only blobs no
record points at, which ``instastore gc`` (``instastore.lifecycle.gc``) removes after its grace.
A write whose outcome is unknown (``OutcomeUnknown``: a timeout) is read back, never
undone: its blobs stay, and so does its Idempotency-Key.

A video that is not already what every browser plays is answered with its original
stored and its "video" rendition "processing": the transcode queue (``instastore.video``)
makes it after the answer, from a job queued before the record is saved.

An upload with an Idempotency-Key is fenced by its claim (``idempotency``); one of bytes
stored already reuses them (``dedupe``). Media are processed on the decoding pool, never
on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

from instastore import ids as idlib
from instastore import media, metrics
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.errors import (
    Blocklisted,
    Conflict,
    InstastoreError,
    NotFound,
    OutcomeUnknown,
    Overloaded,
)
from instastore.ids import IdGenerator
from instastore.lifecycle import volumes
from instastore.model import Photo, Rendition, Transcode, User, VideoState, Visibility
from instastore.photos import Photos
from instastore.pools import ShedPool
from instastore.storage.keys import blob_key
from instastore.storage.ports import (
    BlobStore,
    IdempotencyStore,
    KeyClaim,
    ModerationStore,
    PhotoPorts,
    TranscodeJob,
    TranscodeQueue,
)
from instastore.uploads.dedupe import Dedupe, reuse
from instastore.uploads.idempotency import Fence
from instastore.uploads.receive import Received, file_chunks

log = logging.getLogger(__name__)

REMOVALS_WAIT_S = 10.0  # how long a closing server waits for removals left after answers
# A shed upload retries after about this many seconds: a few decodes of the largest images.
DECODE_RETRY_AFTER_S = 5


class Uploads:
    def __init__(
        self,
        claims: IdempotencyStore,
        photo_store: PhotoPorts,
        blobs: BlobStore,
        settings: Settings,
        ids: IdGenerator,
        photos: Photos,
        transcodes: TranscodeQueue,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.claims = claims
        self.transcodes = transcodes  # videos whose rendition is made after the answer
        self.photo_store = photo_store  # reads back what a key's earlier attempt saved
        self.blobs = blobs
        self.settings = settings
        self.ids = ids
        self.photos = photos
        self.clock = clock
        self.dedupe = Dedupe(photo_store, blobs, settings)
        self.tmp_dir = Path(settings.data_dir) / "tmp"
        # Media are decoded here, never on the default executor: each decode holds up to
        # about 5 bytes a pixel, so their number is capped and the queue past it shed.
        self.decoding = ShedPool(
            "decode",
            settings.decode_threads,
            settings.decode_queue,
            "too many uploads are being decoded on this server; retry shortly",
            DECODE_RETRY_AFTER_S,
        )
        # Told of the photo an upload made or found again (timelines note it at once).
        self.on_photo: Callable[[Photo], None] | None = None
        # Bytes operators took down (None: none are refused).
        self.blocklist: ModerationStore | None = None
        self._background: set[asyncio.Task[None]] = set()  # removals after the answer

    def close(self) -> None:
        self.decoding.close()

    @property
    def stale_after(self) -> timedelta:
        """A claim not renewed for this long belongs to an attempt that died."""
        return timedelta(seconds=self.settings.upload_claim_stale_seconds)

    async def create(
        self,
        user: User,
        received: Received,
        title: str,
        visibility: Visibility,
        idempotency_key: str | None,
    ) -> tuple[Photo, bool]:
        """Make a photo from a received upload; (photo, created). With a key already
        used by this user, the photo of the first upload and created=False."""
        started = time.perf_counter()
        metrics.UPLOAD_BYTES.inc(received.size)
        try:
            # SECURITY: bytes taken down are refused before anything is stored.
            if self.blocklist is not None and await self.blocklist.blocklisted(received.sha256):
                raise Blocklisted("these bytes were taken down and may not be uploaded again")
            photo, created = await self._create(user, received, title, visibility, idempotency_key)
        except Overloaded:
            metrics.UPLOADS.labels("shed").inc()
            raise
        except BaseException:
            metrics.UPLOADS.labels("failed").inc()
            raise
        if not created:
            metrics.UPLOADS.labels("replayed").inc()
        metrics.UPLOAD_SECONDS.observe(time.perf_counter() - started)
        if self.on_photo is not None:
            self.on_photo(photo)
        return photo, created

    async def _create(
        self,
        user: User,
        received: Received,
        title: str,
        visibility: Visibility,
        idempotency_key: str | None,
    ) -> tuple[Photo, bool]:
        photo_id = self.ids.next_id()
        fence = None
        if idempotency_key:
            fence = Fence(
                self.claims,
                user.id,
                idempotency_key,
                photo_id,
                self.clock,
                self.stale_after,
            )
            earlier = await fence.hold(self._finish)
            if earlier is not None:
                return earlier, False
        return await self._make(user, received, title, visibility, photo_id, fence), True

    async def _finish(self, claim: KeyClaim) -> Photo | None:
        """The photo of an earlier attempt: saved already, or saved now from the record it
        meant to save (the same rows a late write of its own would make). None if there
        is none, or its blobs are not all there."""
        photo = await self.photo_store.get_photo(claim.photo_id)
        if photo is not None or claim.intent is None:
            return photo
        for rendition in claim.intent.renditions:
            try:
                await self.blobs.size(volumes.blob_of(rendition.locator))
            except NotFound:
                return None
        await self._save(claim.intent)
        return claim.intent

    async def _make(
        self,
        user: User,
        received: Received,
        title: str,
        visibility: Visibility,
        photo_id: int,
        fence: Fence | None,
    ) -> Photo:
        written: list[str] = []
        try:
            donor = await self.dedupe.donor(received)
            # SECURITY: an upload of bytes stored already does the work of any other
            # (processing, writing its renditions) before it answers, so the time of the
            # answer does not tell its client that someone stores these bytes; its own
            # blobs go once it is answered (``_reused``).
            own = await self._write_blobs(
                user, received, title, visibility, photo_id, written, fence, shed=True
            )
            photo = own if donor is None else reuse(donor, own, user, received)
        except BaseException:
            await self._discard(written)
            if fence:
                await fence.release()
            raise
        if fence and not await fence.record_intent(photo):
            await self._discard(
                written
            )  # fenced off: a retry took the key over; these are ours alone
            raise Conflict("this upload's Idempotency-Key was taken over by a retry")
        try:
            await self._save(photo)
        except (OutcomeUnknown, asyncio.CancelledError):
            raise  # it may land yet: blobs (and the key) stay; gc or a retry settles it
        except BaseException:
            if not fence:  # nothing refers to them; with a key, a retry re-applies the intent
                await self._discard(written)
            raise
        if donor is None:
            await self.dedupe.offer(photo)
            metrics.UPLOADS.labels("stored").inc()
            return photo
        return await self._reused(photo, donor, own, written)

    async def _reused(self, photo: Photo, donor: Photo, own: Photo, written: list[str]) -> Photo:
        """A saved record on ``donor``'s bytes, once the donor is confirmed
        (``Dedupe.confirm``); this upload's own blobs (at ``written``) go after the answer
        when the reuse stands."""
        photo, reused = await self.dedupe.confirm(photo, donor, own)
        if reused:
            metrics.UPLOADS.labels("deduplicated").inc()
            self._discard_later(written)
        else:
            metrics.UPLOADS.labels("stored").inc()
        return photo

    async def removals_done(self, timeout_s: float = REMOVALS_WAIT_S) -> None:
        """Wait for the removals of blobs that uploads left to do after answering, at
        most ``timeout_s``; those not done by then are cancelled (gc removes the blobs)."""
        if not self._background:
            return
        _, pending = await asyncio.wait(self._background, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _discard_later(self, keys: list[str]) -> None:
        """``_discard`` once the upload is answered (what a crash leaves is gc's)."""
        task = asyncio.get_running_loop().create_task(self._discard(keys))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_blobs(
        self,
        user: User,
        received: Received,
        title: str,
        visibility: Visibility,
        photo_id: int,
        written: list[str],
        fence: Fence | None,
        *,
        shed: bool,
    ) -> Photo:
        """Process the media and write its blobs (their keys appended to ``written``);
        the photo record to save. A fence is renewed meanwhile. ``shed``: ``Overloaded``
        when the decoding queue is full, rather than waiting.

        The writes overlap: the original's while the media are decoded (CPU on the
        decoding pool against I/O to the blob store), then every rendition's at once.
        Nothing refers to a blob before the record is saved, after the last write, so a
        crash in between leaves only blobs for gc, whatever was in flight."""
        heartbeat = asyncio.create_task(fence.keep_alive()) if fence else None
        writes = _Writes(self.blobs, written)
        decoded: asyncio.Future[media.Processed] | None = None
        try:
            media_type = media.sniff(received.head)
            decoded = self.decoding.start(
                media.process,
                received.path,
                media_type,
                self.settings.max_image_pixels,
                self.settings,
                shed=shed,
            )
            original_key = blob_key(photo_id, "original", media_type.extension)
            writes.start(original_key, file_chunks(received.path))
            processed = await decoded
            renditions = [
                Rendition(
                    "original",
                    original_key,
                    media_type.content_type,
                    received.size,
                    processed.width,
                    processed.height,
                )
            ]
            for r in processed.renditions:
                key = blob_key(photo_id, r.name, r.extension)
                writes.start(key, file_chunks(r.path) if r.path else _one(r.data))
                renditions.append(Rendition(r.name, key, r.content_type, r.size, r.width, r.height))
            if processed.transcode is not None:
                # Queued before the record is saved, so no saved record lacks its job; a
                # job whose record never comes is dropped after the upload's retries.
                await self.transcodes.queue_transcode(TranscodeJob(photo_id, None, self.clock()))
            await writes.done()
        except BaseException:
            if decoded is not None:
                decoded.cancel()  # queued: never runs; running: its result is dropped
            await writes.abandon()
            raise
        finally:
            if heartbeat:
                heartbeat.cancel()
        return Photo(
            id=photo_id,
            owner_id=user.id,
            title=title,
            kind=media_type.kind,
            secret=idlib.new_media_secret(),
            sha256=received.sha256,
            created_at=idlib.created_at(photo_id),
            visibility=visibility,
            renditions=tuple(renditions),
            width=processed.width,
            height=processed.height,
            duration_s=processed.duration_s,
            transcode=None if processed.transcode is None else Transcode(VideoState.PROCESSING),
        )

    async def _save(self, photo: Photo) -> None:
        """Save the record; on an unknown outcome (the store tried again already), read
        it back: there, it is saved; not there (or unreadable), still unknown."""
        try:
            await self.photos.save(photo)
        except OutcomeUnknown:
            try:
                landed = await self.photo_store.get_photo(photo.id) is not None
            except InstastoreError:
                landed = False
            if not landed:
                raise
            # The record is there, but a logged batch may show it before its other rows:
            # its pack-queue entry is written again before the upload is answered.
            await self.photo_store.queue_for_packing([photo.id])

    async def _discard(self, keys: list[str]) -> None:
        """Best effort: blobs no record refers to; what stays is gc's after its grace."""
        for key in keys:
            try:
                await self.blobs.delete(key)
            except InstastoreError:
                log.warning("could not remove blob %s of a failed upload; gc will", key)


class _Writes:
    """Blob writes in flight at once; each key joins ``written`` once its blob is durable
    (a ``put`` that fails leaves no blob)."""

    def __init__(self, blobs: BlobStore, written: list[str]) -> None:
        self._blobs = blobs
        self._written = written
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        self._tasks.append(asyncio.create_task(self._put(key, chunks)))

    async def _put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        await self._blobs.put(key, chunks)
        self._written.append(key)

    async def done(self) -> None:
        """Wait for every write; the first failure raises (then ``abandon``)."""
        await asyncio.gather(*self._tasks)

    async def abandon(self) -> None:
        """Wait until every write has ended, so that ``written`` names each blob they
        left. Not cancelled: a write cut short in the middle of a step of its own could
        leave its temporary file open until gc's grace."""
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
