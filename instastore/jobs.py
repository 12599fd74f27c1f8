"""The batch jobs: ``purge`` (photos deleted past their undo window go for good) and
``gc`` (blobs no photo record points at, and the leftovers of crashed writes).

Both are idempotent and restartable, and run beside a live service. gc decides from what
the photo records actually reference, never from the shape of a key: it reads every
record first, then removes only blobs that no record names AND that are older than
``ORPHAN_GRACE`` by their own modification time, so a blob of an upload still in flight
(or one a retried upload may still adopt through its Idempotency-Key) is never removed.
A volume is one blob to gc: it goes whole once no record points into it; the dead bytes
inside a volume records still use are only reported (``instastore compact`` reclaims
them). Manifests, and the volumes of unfinished ones, are left to their job.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from instastore import packing, search, volumes
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.errors import InstastoreError
from instastore.limits import ORPHAN_GRACE, PURGE_BATCH
from instastore.model import Photo
from instastore.storage.ports import BlobEntry, BlobStore, PhotoStore
from instastore.uploads import remove_abandoned_uploads

log = logging.getLogger(__name__)

PROGRESS_EVERY = 10_000  # records read between two progress lines of gc
# Share of a volume's bytes dead (no record points at them) from which `instastore
# compact` rewrites it by default: half, so a volume is rewritten at most once per
# halving and copying it costs at most as many bytes as it frees.
COMPACT_THRESHOLD = 0.5


@dataclass
class PurgeReport:
    purged: int = 0
    blobs_removed: int = 0
    skipped: int = 0  # restored meanwhile, or not yet past the window
    failed: int = 0


async def purge(
    photos: PhotoStore,
    blobs: BlobStore,
    settings: Settings,
    now: datetime | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> PurgeReport:
    """Remove for good every photo deleted more than ``retention_days`` ago.

    Landed blobs go first (with the folders they leave empty), then the rows and the
    queue entries in one batch, so a crash leaves the entry queued and the next run
    finishes the job (deleting a blob that is already gone is a no-op). A landed blob that
    another record also points at (records may share blobs: dedupe and the bench's seeded
    pool make them) stays: the run counts, once before its first removal, the references
    of the pack queue's records, which hold every record with a landed blob (see
    ``instastore.packing``), and purges only photos deleted before that count began. An
    upload reuses a donor's bytes only if the donor is still live after its own record is
    saved (``uploads``), so any record sharing a purged photo's bytes was saved before the
    count and is in it. Needles stay: their volume goes whole, once no record points into
    it, by ``instastore compact`` (at once) or ``instastore gc`` (past its grace), the jobs
    that read every record; so purge reads only what is due and the queue."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.retention_days)
    report = PurgeReport()
    through: date = cutoff.date()
    seen: set[int] = set()
    references: Counter[str] | None = None
    counted: set[int] = set()  # the records whose references are in the count
    scanned_at = now  # replaced by the start of the reference scan, once it runs
    while True:
        entries = [
            e for e in await photos.due_purges(through, PURGE_BATCH) if e.photo_id not in seen
        ]
        if not entries:
            return report
        for entry in entries:
            seen.add(entry.photo_id)
            photo = await photos.get_photo(entry.photo_id)
            if photo is None or photo.deleted_at is None:
                await photos.forget_purge(entry)
                report.skipped += 1
                continue
            if photo.deleted_at > cutoff:  # deleted later on the cutoff day
                report.skipped += 1
                continue
            try:
                if references is None:
                    scanned_at = utcnow()
                    references, counted = await queued_references(photos)
                if photo.deleted_at >= scanned_at:  # deleted after the scan began: next run
                    report.skipped += 1
                    continue
                for locator in _own_blobs(photo, references, photo.id in counted):
                    if await blobs.delete(locator):
                        report.blobs_removed += 1
                await photos.purge_photo(photo, search.terms(photo.title))
            except InstastoreError as exc:
                log.error("purging photo %d failed: %s", photo.id, exc)
                report.failed += 1
                continue
            report.purged += 1
            progress(f"purged photo {photo.id} (deleted {photo.deleted_at:%Y-%m-%d})")


async def count_references(photos: PhotoStore, progress: Callable[[str], None]) -> Counter[str]:
    """How many photo records (deleted ones included) point at each blob (a needle's
    blob is its volume: a volume goes only when no record points into it)."""
    return (await scan_references(photos, progress)).blobs


@dataclass(frozen=True)
class User:
    """A record pointing at a needle, under one of its renditions."""

    photo_id: int
    rendition: str
    deleted: bool


@dataclass
class References:
    """What one scan of the photo records points at: every blob (a needle's blob is its
    volume), and inside each volume every needle with the records that use it."""

    blobs: Counter[str] = field(default_factory=Counter)
    needles: dict[str, dict[str, list[User]]] = field(default_factory=dict)  # volume -> locator

    def live_bytes(self, volume: str) -> int:
        """Bytes of the volume's needles some record (deleted or not) points at: header,
        payload and padding of each, counted once however many records share it."""
        return sum(
            volumes.needle_size(users[0].rendition, volumes.parse_locator(locator).length)
            for locator, users in self.needles.get(volume, {}).items()
        )

    def users(self, volume: str) -> set[int]:
        """Every record (deleted ones included) pointing into the volume."""
        return {u.photo_id for users in self.needles.get(volume, {}).values() for u in users}


async def scan_references(photos: PhotoStore, progress: Callable[[str], None]) -> References:
    """Read every photo record (deleted ones included) once: what each points at."""
    found = References()
    records = 0
    async for photo in photos.scan_photos():
        found.blobs.update({volumes.blob_of(r.locator) for r in photo.renditions})
        for r in photo.renditions:
            if volumes.is_needle(r.locator):
                needles = found.needles.setdefault(volumes.blob_of(r.locator), {})
                needles.setdefault(r.locator, []).append(
                    User(photo.id, r.name, photo.deleted_at is not None)
                )
        records += 1
        if records % PROGRESS_EVERY == 0:
            progress(f"read {records} photo record(s)")
    progress(f"read {records} photo record(s) pointing at {len(found.blobs)} blob(s)")
    return found


async def queued_references(photos: PhotoStore) -> tuple[Counter[str], set[int]]:
    """How many records of the pack queue point at each landed blob (every record that
    points at one: ``instastore.packing``), and the ids of the records counted."""
    _, records = await packing.read_queue(photos)
    counts = Counter(
        key
        for photo in records.values()
        for key in {r.locator for r in photo.renditions if not volumes.is_needle(r.locator)}
    )
    return counts, set(records)


def _own_blobs(photo: Photo, references: Counter[str], counted: bool) -> list[str]:
    """The photo's landed blobs that no other record points at (and forget its references,
    if ``counted`` says they are in the count). Never a needle's volume: compaction and gc
    remove volumes."""
    own = []
    for locator in {r.locator for r in photo.renditions if not volumes.is_needle(r.locator)}:
        if counted:
            references[locator] -= 1
        if references[locator] <= 0:
            own.append(locator)
    return own


@dataclass
class GcReport:
    checked: int = 0  # blobs looked at
    removed: int = 0  # orphans removed (landed blobs and whole volumes no record points at)
    young: int = 0  # orphans left: younger than ORPHAN_GRACE
    scratch_removed: int = 0  # temporary files of crashed writes and uploads
    folders_removed: int = 0  # empty folders (of the one-folder-per-photo layout)
    pending: int = 0  # volumes and manifests of unfinished packing or compaction: left alone
    volumes: int = 0  # volumes some record points into
    volume_bytes: int = 0  # their size
    dead_bytes: int = 0  # bytes inside them no record points at: compaction reclaims them
    sparse: int = 0  # of those volumes, the ones whose dead share passes compaction's default


async def gc(
    photos: PhotoStore,
    blobs: BlobStore,
    settings: Settings,
    now: datetime | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> GcReport:
    """Remove blobs that no photo record points at and that are older than ORPHAN_GRACE
    (whole volumes nobody points into included), report the dead bytes inside the
    volumes that records do point into, then remove abandoned temporary files and empty
    folders. Manifests and the volumes of unfinished ones belong to their job."""
    now = now or utcnow()
    report = GcReport()
    # Unfinished manifests first: records may still be switched into their volumes.
    pending = await packing.pending_volumes(blobs)
    # References next: a blob written after this scan is younger than the grace, so it
    # is judged by its age below, never by its absence from this set.
    references = await scan_references(photos, progress)
    orphans: list[BlobEntry] = []
    async for entry in blobs.entries():
        report.checked += 1
        if entry.key in pending or entry.key.startswith(packing.MANIFEST_PREFIX):
            report.pending += 1
        elif entry.key in references.needles:
            _count_volume(report, entry, references, progress)
        elif entry.key in references.blobs:
            continue
        elif now - entry.modified < ORPHAN_GRACE:
            report.young += 1
        else:
            orphans.append(entry)
    if orphans:
        # A second scan, begun after the first ended: an old blob can change hands
        # during one scan (a deduplicated upload saved a record pointing at it, read
        # before it existed; then its donor was switched away, read after), never
        # unseen by both (docs/DESIGN.md, "Dedupe").
        referenced = await count_references(photos, progress)
    for entry in orphans:
        if entry.key not in referenced and await blobs.delete(entry.key):
            report.removed += 1
            progress(
                f"removed orphan blob {entry.key} "
                f"({entry.size} bytes, written {entry.modified:%Y-%m-%d %H:%M})"
            )
    report.scratch_removed = await remove_scratch(blobs, settings, now)
    report.folders_removed = await blobs.remove_empty_folders()
    return report


def _count_volume(
    report: GcReport, entry: BlobEntry, references: References, progress: Callable[[str], None]
) -> None:
    """A volume records point into: add up its dead bytes (never removed here)."""
    dead = max(0, entry.size - references.live_bytes(entry.key))
    report.volumes += 1
    report.volume_bytes += entry.size
    report.dead_bytes += dead
    if entry.size and dead / entry.size >= COMPACT_THRESHOLD:
        report.sparse += 1
        progress(f"volume {entry.key}: {dead:,} of {entry.size:,} bytes dead")


async def remove_scratch(blobs: BlobStore, settings: Settings, now: datetime | None = None) -> int:
    """Remove the temporary files of writes and uploads whose writer is gone (also done
    when the service starts); return how many."""
    now = now or utcnow()
    uploads = await asyncio.to_thread(
        remove_abandoned_uploads, Path(settings.data_dir) / "tmp", now
    )
    return uploads + await blobs.remove_abandoned_parts(now)
