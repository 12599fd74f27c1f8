"""Uploads: stream to a temporary file under a size cap while hashing, recognise and
process the media off the event loop, write the blobs, then the metadata.

Write path: blobs first (original, then renditions), then the photo record and its index
rows in one batch, then the caller answers 201. A crash in between leaves only blobs no
record points at, which ``sweep_orphans`` (``instastore gc``) removes. An
``Idempotency-Key`` is claimed before any work, so a retried upload returns the photo the
first attempt made instead of making a second.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from instastore import ids as idlib
from instastore import media
from instastore.config import Settings
from instastore.errors import Conflict, InstastoreError, InvalidInput, NotFound, TooLarge
from instastore.ids import IdGenerator
from instastore.model import Photo, Rendition, User, Visibility
from instastore.photos import Photos, utcnow
from instastore.storage.ports import Stores
from instastore.text import check_text

log = logging.getLogger(__name__)

HASH_BATCH = 1024 * 1024  # bytes gathered before one write + hash step in a worker thread
FILE_CHUNK = 256 * 1024  # bytes per chunk when streaming the temporary file to the blob store
IDEMPOTENCY_TTL = timedelta(days=1)
MAX_IDEMPOTENCY_KEY = 128  # characters
ORPHAN_GRACE = timedelta(hours=1)  # younger blobs may belong to an upload in flight


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
    fd, name = await asyncio.to_thread(tempfile.mkstemp, dir=tmp_dir, prefix="upload-")
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
                view = view[os.write(fd, view):]

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
        path.unlink(missing_ok=True)
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


def check_visibility(value: object) -> Visibility:
    try:
        return Visibility(value or "public")
    except ValueError:
        raise InvalidInput("visibility must be public, followers or private") from None


def check_idempotency_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters")
    return key


def blob_key(photo_id: int, name: str, extension: str) -> str:
    """Where a rendition's bytes live: grouped by id time bucket, one folder per photo."""
    return f"{idlib.bucket_of(photo_id)}/{photo_id}/{name}.{extension}"


class Uploads:
    def __init__(
        self, stores: Stores, settings: Settings, ids: IdGenerator, photos: Photos, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.stores = stores
        self.settings = settings
        self.ids = ids
        self.photos = photos
        self.clock = clock
        self.tmp_dir = Path(settings.data_dir) / "tmp"

    async def create(
        self, user: User, received: Received, title: str, visibility: Visibility, idempotency_key: str | None
    ) -> tuple[Photo, bool]:
        """Make a photo from a received upload; (photo, created). With a key already
        used by this user, the photo of the first upload and created=False."""
        photo_id = self.ids.next_id()
        if idempotency_key:
            holder = await self.stores.metadata.claim_idempotency_key(
                user.id, idempotency_key, photo_id, self.clock() + IDEMPOTENCY_TTL
            )
            if holder != photo_id:
                existing = await self.stores.metadata.get_photo(holder)
                if existing is None:
                    raise Conflict("an upload with this Idempotency-Key is still in progress; retry shortly")
                return existing, False
        try:
            photo = await self._make(user, received, title, visibility, photo_id)
        except BaseException:
            if idempotency_key:
                await self.stores.metadata.release_idempotency_key(user.id, idempotency_key, photo_id)
            raise
        return photo, True

    async def _make(self, user: User, received: Received, title: str, visibility: Visibility, photo_id: int) -> Photo:
        media_type = media.sniff(received.head)
        processed = await asyncio.to_thread(media.process, received.path, media_type, self.settings.max_image_pixels)
        written: list[str] = []
        try:
            original_key = blob_key(photo_id, "original", media_type.extension)
            await self.stores.blobs.put(original_key, _file_chunks(received.path))
            written.append(original_key)
            renditions = [
                Rendition("original", original_key, media_type.content_type, received.size, processed.width, processed.height)
            ]
            for r in processed.renditions:
                key = blob_key(photo_id, r.name, r.extension)
                await self.stores.blobs.put(key, _file_chunks(r.path) if r.path else _one(r.data))
                written.append(key)
                renditions.append(Rendition(r.name, key, r.content_type, r.size, r.width, r.height))
            photo = Photo(
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
            await self.photos.save(photo)
        except BaseException:
            # Best effort: a crash here instead leaves orphans for `instastore gc`.
            for key in written:
                try:
                    await self.stores.blobs.delete(key)
                except InstastoreError:
                    log.warning("could not remove blob %s of a failed upload; gc will", key)
            raise
        return photo


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, FILE_CHUNK):
            yield chunk
    finally:
        f.close()  # read-only: no flush, nothing to wait for


@dataclass
class SweepReport:
    checked: int = 0
    removed: int = 0
    young: int = 0


async def sweep_orphans(
    stores: Stores, now: datetime | None = None, progress: Callable[[str], None] = lambda line: None
) -> SweepReport:
    """Remove blobs that no photo record points at (left by a crash between the blobs
    and the metadata of an upload). Blobs younger than ORPHAN_GRACE are left alone: their
    upload may still be in flight."""
    now = now or utcnow()
    report = SweepReport()
    known: dict[int, bool] = {}
    async for key in stores.blobs.keys():
        report.checked += 1
        parts = key.split("/")
        try:
            photo_id = int(parts[1])
        except (IndexError, ValueError):
            continue  # not a key this service writes
        if now - idlib.created_at(photo_id) < ORPHAN_GRACE:
            report.young += 1
            continue
        if photo_id not in known:
            known[photo_id] = await stores.metadata.get_photo(photo_id) is not None
        if not known[photo_id]:
            try:
                if await stores.blobs.delete(key):
                    report.removed += 1
                    progress(f"removed orphan blob {key}")
            except NotFound:
                pass
    return report
