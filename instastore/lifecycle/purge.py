"""Purge (``instastore purge``): photos deleted past their undo window go for good.

Idempotent and restartable, and run beside a live service. It reads only what is due
and the pack queue's records (``instastore.lifecycle.references``), never every record:
a purged photo's landed blobs go when no other record points at them, its needles stay
(their volume goes whole, once no record points into it, by compaction or gc).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

from instastore import search
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.errors import InstastoreError
from instastore.lifecycle.references import QueuedRecords, landed_of, queued_references
from instastore.limits import PURGE_BATCH
from instastore.model import Photo
from instastore.storage.ports import BlobStore, PurgeQueue

log = logging.getLogger(__name__)


class PurgePorts(PurgeQueue, QueuedRecords, Protocol):
    """What purge reads and writes: the purge queue, records, and the pack queue."""


@dataclass
class PurgeReport:
    purged: int = 0
    blobs_removed: int = 0
    skipped: int = 0  # restored meanwhile, or not yet past the window
    failed: int = 0


async def purge(
    photos: PurgePorts,
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
    ``instastore.lifecycle.packing``), and purges only photos deleted before that count
    began. An upload reuses a donor's bytes only if the donor is still live after its own
    record is saved (``uploads``), so any record sharing a purged photo's bytes was saved
    before the count and is in it. Needles stay: their volume goes whole, once no record points into
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


def _own_blobs(photo: Photo, references: Counter[str], counted: bool) -> list[str]:
    """The photo's landed blobs that no other record points at (and forget its references,
    if ``counted`` says they are in the count). Never a needle's volume: compaction and gc
    remove volumes."""
    own = []
    for locator in set(landed_of(photo).values()):
        if counted:
            references[locator] -= 1
        if references[locator] <= 0:
            own.append(locator)
    return own
