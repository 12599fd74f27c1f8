"""Uploads: stream to a temporary file under a size cap while hashing, recognise and
process the media off the event loop, write the blobs, then the metadata.

Write path: blobs first (original, then renditions), then the photo record and its index
rows in one batch, then the caller answers 201. A crash in between leaves only blobs no
record points at, which ``instastore gc`` (``instastore.lifecycle.gc``) removes after its grace.
A write whose outcome is unknown (``OutcomeUnknown``: a timeout) is read back, never
undone: its blobs stay, and so does its Idempotency-Key.

With an ``Idempotency-Key`` the upload is fenced by its claim: claim the key for a new
photo id, write the blobs (renewing the claim meanwhile), record the intended photo in
the claim only while it is still ours, then save the photo. A retry with the same key
returns the holder's photo, re-applies its intended record (the same rows again), takes
over a claim gone stale without an intent (the old attempt, if alive, is then fenced off
and removes only its own blobs), or answers ``InProgress`` while the holder is alive.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from instastore import ids as idlib
from instastore import media, metrics
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.errors import (
    Conflict,
    InProgress,
    InstastoreError,
    InvalidInput,
    NotFound,
    OutcomeUnknown,
    Overloaded,
    TooLarge,
)
from instastore.ids import IdGenerator
from instastore.lifecycle import volumes
from instastore.limits import IDEMPOTENCY_TTL, MAX_IDEMPOTENCY_KEY
from instastore.model import Photo, Rendition, User, Visibility
from instastore.photos import Photos
from instastore.pools import ShedPool
from instastore.storage import scratch
from instastore.storage.keys import blob_key
from instastore.storage.ports import BlobStore, IdempotencyStore, KeyClaim, PhotoPorts, settle
from instastore.text import check_text

log = logging.getLogger(__name__)

HASH_BATCH = 1024 * 1024  # bytes gathered before one write + hash step in a worker thread
FILE_CHUNK = 256 * 1024  # bytes per chunk when streaming the temporary file to the blob store
TAKEOVER_ROUNDS = 3  # claim -> take over -> claim again, when retries race for a stale key
HEARTBEATS_PER_WINDOW = 3  # claim renewals per stale window while an upload works
UPLOAD_PREFIX = "upload-"  # temporary files of uploads in flight, under <data_dir>/tmp
REMOVALS_WAIT_S = 10.0  # how long a closing server waits for removals left after answers
# Reads of a donor after saving a record that reuses its bytes, each following a locator
# switch of the donor (packing, compaction) that happened meanwhile.
CONFIRM_ROUNDS = 3
# A shed upload retries after about this many seconds: a few decodes of the largest images.
DECODE_RETRY_AFTER_S = 5


@dataclass
class Received:
    """An upload on local disk: where, how big, its sha256 and its first bytes."""

    path: Path
    size: int
    sha256: str
    head: bytes

    def discard(self) -> None:
        """Remove the upload and every file processing made beside it."""
        for path in (self.path, *(media.derived_path(self.path, name) for name in media.DERIVED)):
            path.unlink(missing_ok=True)


async def receive(chunks: AsyncIterable[bytes], max_bytes: int, tmp_dir: Path) -> Received:
    """Stream ``chunks`` to a temporary file, hashing as it goes; ``TooLarge`` (and no
    file left) past ``max_bytes``."""
    await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
    prefix = UPLOAD_PREFIX + scratch.owner_tag()  # so a cleaner can tell when its writer is gone
    fd, name = await asyncio.to_thread(tempfile.mkstemp, dir=tmp_dir, prefix=prefix)
    path = Path(name)
    digest = hashlib.sha256()
    size, head = 0, b""
    pending: list[bytes] = []
    pending_size = 0

    def flush(parts: list[bytes]) -> None:
        for part in parts:
            digest.update(part)
            view = memoryview(part)
            while view:
                view = view[os.write(fd, view) :]

    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"upload is over the limit of {max_bytes:,} bytes")
            if len(head) < media.SNIFF_BYTES:
                head += chunk[: media.SNIFF_BYTES - len(head)]
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= HASH_BATCH:
                await asyncio.to_thread(flush, pending)
                pending, pending_size = [], 0
        await asyncio.to_thread(flush, pending)
    except BaseException:
        os.close(fd)
        # Not awaited: on cancellation the clean-up must run to its end, and this is one
        # unlink of a local scratch file.
        path.unlink(missing_ok=True)  # noqa: ASYNC240
        raise
    os.close(fd)
    return Received(path, size, digest.hexdigest(), head)


def check_title(title: object, max_chars: int) -> str:
    if not isinstance(title, str) or not title.strip():
        raise InvalidInput("title is required")
    title = title.strip()
    if len(title) > max_chars:
        raise InvalidInput(f"title is {len(title)} characters; the limit is {max_chars}")
    return check_text(title, "title")


def check_visibility(value: str | None) -> Visibility:
    try:
        return Visibility(value or "public")
    except ValueError:
        raise InvalidInput("visibility must be public, followers or private") from None


def check_idempotency_key(key: object) -> str | None:
    if key is None:
        return None
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY
        or not key.isprintable()
    ):
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"
        )
    return key


def remove_abandoned_uploads(tmp_dir: Path, now: datetime) -> int:
    """Remove the temporary files of uploads whose process is gone (a crash); return how
    many. Blocking: run it in a worker thread. Uploads in flight are left alone."""
    return scratch.remove_abandoned_files(tmp_dir, UPLOAD_PREFIX, "", now)


class Uploads:
    def __init__(
        self,
        claims: IdempotencyStore,
        photo_store: PhotoPorts,
        blobs: BlobStore,
        settings: Settings,
        ids: IdGenerator,
        photos: Photos,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.claims = claims
        self.photo_store = photo_store  # reads back what a key's earlier attempt saved
        self.blobs = blobs
        self.settings = settings
        self.ids = ids
        self.photos = photos
        self.clock = clock
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
            fence = _Fence(
                self.claims,
                user.id,
                idempotency_key,
                photo_id,
                self.clock,
                self.stale_after,
            )
            earlier = await self._claim(fence)
            if earlier is not None:
                return earlier, False
        return await self._make(user, received, title, visibility, photo_id, fence), True

    async def _claim(self, fence: _Fence) -> Photo | None:
        """Hold the key for ``fence.photo_id`` (claimed, or taken over from a dead
        attempt), or return the photo an earlier attempt with this key made."""
        for _ in range(TAKEOVER_ROUNDS):
            claim = await fence.claim()
            if claim.photo_id == fence.photo_id:
                return None
            earlier = await self._finish(claim)
            if earlier is not None:
                return earlier
            wait = fence.wait_for(claim)
            if wait > 0:
                raise InProgress(
                    "an upload with this Idempotency-Key is still in progress; retry shortly", wait
                )
            await fence.take_over(claim)  # won or lost, the next claim says who holds the key
        raise InProgress("other retries with this Idempotency-Key are racing; retry shortly", 1)

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
        fence: _Fence | None,
    ) -> Photo:
        written: list[str] = []
        try:
            donor = await self._donor(received)
            # SECURITY: an upload of bytes stored already does the work of any other
            # (processing, writing its renditions) before it answers, so the time of the
            # answer does not tell its client that someone stores these bytes; its own
            # blobs go once it is answered (``_confirm``).
            own = await self._write_blobs(
                user, received, title, visibility, photo_id, written, fence, shed=True
            )
            photo = own if donor is None else _reuse(donor, own, user, received)
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
            await self._become_donor(photo)
            metrics.UPLOADS.labels("stored").inc()
            return photo
        return await self._confirm(photo, donor, own, written)

    # ---- content dedupe (issue 12 item 3; docs/DESIGN.md, "Dedupe") -------------------

    async def _donor(self, received: Received) -> Photo | None:
        """A live photo of exactly these bytes whose stored renditions this upload may
        reuse, or None (then it stores its own). Sniffing first keeps the answers to
        unsupported bytes the same either way."""
        kind = media.sniff(received.head).kind
        try:
            donor_id = await self.photo_store.content_donor(received.sha256)
            donor = None if donor_id is None else await self.photo_store.get_photo(donor_id)
        except InstastoreError as exc:
            log.warning("content index unreadable, storing the upload's own bytes: %s", exc)
            return None
        if (
            donor is None
            or donor.deleted
            or donor.sha256 != received.sha256
            or donor.kind is not kind
            or donor.rendition("original") is None
            # SECURITY: the pixel limit may have been lowered since the donor was stored
            or (donor.width or 0) * (donor.height or 0) > self.settings.max_image_pixels
        ):
            return None
        for key in {volumes.blob_of(r.locator) for r in donor.renditions}:
            try:
                await self.blobs.size(key)  # a lost blob is never handed on
            except InstastoreError:
                return None
        return donor

    async def _confirm(self, photo: Photo, donor: Photo, own: Photo, written: list[str]) -> Photo:
        """After saving a record that reuses ``donor``'s locators, read the donor again.
        Still live with the same locators: every later purge, pack or gc that could
        remove those bytes reads references after this point and sees this record
        (docs/DESIGN.md, "Dedupe"), and this upload's own blobs (``own``, at ``written``)
        go after the answer. Moved by the packer meanwhile: follow it (the same bytes) and
        check again. Deleted or gone: point the record at this upload's own blobs."""
        for _ in range(CONFIRM_ROUNDS):
            current = await self.photo_store.get_photo(donor.id)
            mine = _locators(photo)
            if current is None or current.deleted or current.sha256 != photo.sha256:
                break
            theirs = _locators(current)
            if theirs == mine:
                metrics.UPLOADS.labels("deduplicated").inc()
                self._discard_later(written)
                return photo
            if theirs.keys() != mine.keys():
                break
            if not await settle(
                "following a deduplicated photo's donor",
                lambda: self.photo_store.switch_locators(photo.id, mine, theirs),  # noqa: B023
            ):
                break
            photo = photo.with_locators(theirs)
        photo = await self._own_bytes(photo, own)
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

    async def _own_bytes(self, photo: Photo, own: Photo) -> Photo:
        """Point a saved record that reused a donor's bytes at this upload's own blobs
        (``own``: written already). Failing, they stay for gc: the switch may have landed."""
        new = _locators(own)
        # Queued again around the switch to landed blobs (the queue holds every record
        # with landed blobs: instastore/lifecycle/packing.py): before, so a crash after the
        # switch leaves it queued; after, so a packer that read the record before the
        # switch and dropped its entry meanwhile cannot leave it out.
        await self.photo_store.queue_for_packing([photo.id])
        if not await settle(
            "pointing a deduplicated photo at its own bytes",
            lambda: self.photo_store.switch_locators(photo.id, _locators(photo), new),
        ):
            raise Conflict(f"photo {photo.id} changed while it was being stored")
        await self.photo_store.queue_for_packing([photo.id])
        log.info("photo %d: its donor went meanwhile; stored its own bytes", photo.id)
        photo = photo.with_locators(new)
        await self._become_donor(photo)
        return photo

    async def _become_donor(self, photo: Photo) -> None:
        """Offer the photo's bytes to later uploads of the same bytes (best effort)."""
        try:
            await self.photo_store.set_content_donor(photo.sha256, photo.id)
        except InstastoreError as exc:
            log.warning("could not index the content of photo %d: %s", photo.id, exc)

    async def _write_blobs(
        self,
        user: User,
        received: Received,
        title: str,
        visibility: Visibility,
        photo_id: int,
        written: list[str],
        fence: _Fence | None,
        *,
        shed: bool,
    ) -> Photo:
        """Process the media and write its blobs (their keys appended to ``written``);
        the photo record to save. A fence is renewed meanwhile. ``shed``: ``Overloaded``
        when the decoding queue is full, rather than waiting."""
        heartbeat = asyncio.create_task(fence.keep_alive()) if fence else None
        try:
            media_type = media.sniff(received.head)
            processed = await self.decoding.run(
                media.process,
                received.path,
                media_type,
                self.settings.max_image_pixels,
                shed=shed,
            )
            original_key = blob_key(photo_id, "original", media_type.extension)
            await self.blobs.put(original_key, _file_chunks(received.path))
            written.append(original_key)
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
                await self.blobs.put(key, _file_chunks(r.path) if r.path else _one(r.data))
                written.append(key)
                renditions.append(Rendition(r.name, key, r.content_type, r.size, r.width, r.height))
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


@dataclass
class _Fence:
    """One upload attempt's hold on an Idempotency-Key: ``photo_id`` holds it while the
    attempt works; a retry may take it over once it is ``stale_after`` old."""

    claims: IdempotencyStore
    user_id: int
    key: str
    photo_id: int
    clock: Callable[[], datetime]
    stale_after: timedelta

    async def claim(self) -> KeyClaim:
        now = self.clock()
        return await settle(
            "claim Idempotency-Key",
            lambda: self.claims.claim_idempotency_key(
                self.user_id, self.key, self.photo_id, now, now + IDEMPOTENCY_TTL
            ),
        )

    def wait_for(self, claim: KeyClaim) -> int:
        """Seconds until ``claim`` goes stale (0: stale now)."""
        if claim.claimed_at is None:
            return 0
        left = (claim.claimed_at + self.stale_after - self.clock()).total_seconds()
        return max(0, math.ceil(left))

    async def take_over(self, claim: KeyClaim) -> None:
        now = self.clock()
        await settle(
            "take over Idempotency-Key",
            lambda: self.claims.take_over_idempotency_key(
                self.user_id, self.key, claim, self.photo_id, now, now + IDEMPOTENCY_TTL
            ),
        )

    async def record_intent(self, photo: Photo) -> bool:
        """Record the photo about to be saved, only while the key is ours."""
        now = self.clock()
        return await settle(
            "record upload intent",
            lambda: self.claims.renew_idempotency_key(
                self.user_id, self.key, self.photo_id, now, now + IDEMPOTENCY_TTL, intent=photo
            ),
        )

    async def keep_alive(self) -> None:
        """Renew the claim a few times per stale window, so that a long upload is never
        taken for a dead one. Failures are only logged: the intent write is the fence."""
        while True:
            await asyncio.sleep(self.stale_after.total_seconds() / HEARTBEATS_PER_WINDOW)
            now = self.clock()
            try:
                if not await self.claims.renew_idempotency_key(
                    self.user_id, self.key, self.photo_id, now, now + IDEMPOTENCY_TTL
                ):
                    return  # taken over: the intent write will refuse this attempt
            except InstastoreError as exc:
                log.warning(
                    "could not renew the claim of Idempotency-Key for photo %d: %s",
                    self.photo_id,
                    exc,
                )

    async def release(self) -> None:
        """Free the key after a failure that left nothing behind; if this fails, the
        claim goes stale and a retry takes it over."""
        try:
            await self.claims.release_idempotency_key(self.user_id, self.key, self.photo_id)
        except InstastoreError as exc:
            log.warning("could not release Idempotency-Key of photo %d: %s", self.photo_id, exc)


def _locators(photo: Photo) -> dict[str, str]:
    return {r.name: r.locator for r in photo.renditions}


def _reuse(donor: Photo, own: Photo, user: User, received: Received) -> Photo:
    """The upload ``own`` on the donor's bytes: the donor's renditions (the same bytes make
    the same renditions); its own id, owner, title, visibility and media secret."""
    return Photo(
        id=own.id,
        owner_id=user.id,
        title=own.title,
        kind=donor.kind,
        secret=own.secret,  # SECURITY: never the donor's capability
        sha256=received.sha256,
        created_at=own.created_at,
        visibility=own.visibility,
        renditions=donor.renditions,
        width=donor.width,
        height=donor.height,
        duration_s=donor.duration_s,
    )


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, FILE_CHUNK):
            yield chunk
    finally:
        f.close()  # read-only: no flush, nothing to wait for
