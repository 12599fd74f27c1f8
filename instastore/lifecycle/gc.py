"""gc (``instastore gc``): blobs no photo record points at, and the leftovers of crashed
writes.

Idempotent and restartable, and run beside a live service. gc decides from what the
photo records actually reference, never from the shape of a key: it reads every record
first (``instastore.lifecycle.references``), then removes only blobs that no record
names AND that are older than ``ORPHAN_GRACE`` by their own modification time, so a blob
of an upload still in flight (or one a retried upload may still adopt through its
Idempotency-Key) is never removed. A volume is one blob to gc: it goes whole once no
record points into it; the dead bytes inside a volume records still use are only
reported (``instastore compact`` reclaims them). Manifests, and the volumes of
unfinished ones, are left to their job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from instastore.clock import utcnow
from instastore.config import Settings
from instastore.lifecycle.compaction import COMPACT_THRESHOLD
from instastore.lifecycle.packing import pending_volumes
from instastore.lifecycle.references import References, count_references, scan_references
from instastore.limits import ORPHAN_GRACE
from instastore.storage.keys import MANIFEST_PREFIX
from instastore.storage.ports import BlobEntry, BlobStore, PhotoScan
from instastore.uploads import remove_abandoned_uploads


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
    photos: PhotoScan,
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
    pending = await pending_volumes(blobs)
    # References next: a blob written after this scan is younger than the grace, so it
    # is judged by its age below, never by its absence from this set.
    references = await scan_references(photos, progress)
    orphans: list[BlobEntry] = []
    async for entry in blobs.entries():
        report.checked += 1
        if entry.key in pending or entry.key.startswith(MANIFEST_PREFIX):
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
