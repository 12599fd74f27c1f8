"""References: which blobs and needles the photo records point at, the one place every
job that removes or moves bytes reads them from.

Two reads, by what a job may afford:

- every record (``scan_references``, ``count_references``): gc and compaction, which
  judge whole volumes, and the packer when compaction's old volumes are in play;
- the pack queue's records (``read_queue``, ``queued_references``): the packer and
  purge, which judge landed blobs only. A record with a landed blob is always queued
  (``instastore.lifecycle.packing``), so the queue holds every record that can point at
  one, and the read grows with what is left to pack, not with every photo stored.

A record deleted but not purged still points at its bytes: it may be restored. This
module only reads records; it never writes one or touches a blob.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from instastore.lifecycle import volumes
from instastore.model import Photo
from instastore.storage.ports import PackQueue, PhotoScan, PhotoStore

PROGRESS_EVERY = 10_000  # records read between two progress lines of a full scan
RECORDS_PER_READ = 500  # records fetched at a time by id


@dataclass(frozen=True)
class NeedleUse:
    """One record's use of a needle, under one of its renditions."""

    photo_id: int
    rendition: str
    deleted: bool


@dataclass
class References:
    """What one scan of the photo records points at: every blob (a needle's blob is its
    volume), and inside each volume every needle with the records that use it."""

    blobs: Counter[str] = field(default_factory=Counter)
    needles: dict[str, dict[str, list[NeedleUse]]] = field(
        default_factory=dict
    )  # volume -> locator

    def live_bytes(self, volume: str) -> int:
        """Bytes of the volume's needles some record (deleted or not) points at: header,
        payload and padding of each, counted once however many records share it."""
        return sum(
            volumes.needle_size(uses[0].rendition, volumes.parse_locator(locator).length)
            for locator, uses in self.needles.get(volume, {}).items()
        )

    def records_in(self, volume: str) -> set[int]:
        """Every record (deleted ones included) pointing into the volume."""
        return {u.photo_id for uses in self.needles.get(volume, {}).values() for u in uses}


async def scan_references(photos: PhotoScan, progress: Callable[[str], None]) -> References:
    """Read every photo record (deleted ones included) once: what each points at."""
    found = References()
    records = 0
    async for photo in photos.scan_photos():
        found.blobs.update({volumes.blob_of(r.locator) for r in photo.renditions})
        for r in photo.renditions:
            if volumes.is_needle(r.locator):
                needles = found.needles.setdefault(volumes.blob_of(r.locator), {})
                needles.setdefault(r.locator, []).append(
                    NeedleUse(photo.id, r.name, photo.deleted_at is not None)
                )
        records += 1
        if records % PROGRESS_EVERY == 0:
            progress(f"read {records} photo record(s)")
    progress(f"read {records} photo record(s) pointing at {len(found.blobs)} blob(s)")
    return found


async def count_references(photos: PhotoScan, progress: Callable[[str], None]) -> Counter[str]:
    """How many photo records (deleted ones included) point at each blob (a needle's
    blob is its volume: a volume goes only when no record points into it)."""
    return (await scan_references(photos, progress)).blobs


class QueuedRecords(PackQueue, PhotoStore, Protocol):
    """What reading the pack queue's records takes: the queue, and records by id."""


async def read_queue(photos: QueuedRecords) -> tuple[list[int], dict[int, Photo]]:
    """The queued ids, and the records of those that exist."""
    queued = [photo_id async for photo_id in photos.pack_queue()]
    return queued, await read_records(photos, queued)


async def queued_references(photos: QueuedRecords) -> tuple[Counter[str], set[int]]:
    """How many records of the pack queue point at each landed blob (every record that
    points at one: ``instastore.lifecycle.packing``), and the ids of the records counted."""
    _, queued = await read_queue(photos)
    counts = Counter(key for photo in queued.values() for key in set(landed_of(photo).values()))
    return counts, set(queued)


def landed_of(photo: Photo) -> dict[str, str]:
    """The photo's renditions that are landed blobs (not needles): name -> key."""
    return {r.name: r.locator for r in photo.renditions if not volumes.is_needle(r.locator)}


async def read_records(photos: PhotoStore, photo_ids: Sequence[int]) -> dict[int, Photo]:
    """The records that exist among ``photo_ids``, ``RECORDS_PER_READ`` at a time."""
    found: dict[int, Photo] = {}
    for start in range(0, len(photo_ids), RECORDS_PER_READ):
        found.update(await photos.get_photos(photo_ids[start : start + RECORDS_PER_READ]))
    return found
