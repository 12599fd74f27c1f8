"""``instastore storage stats``: what the stores hold, from the records and the blobs.

Owns the counting over the ports (one scan of the photo records, one listing of the
blobs); what only a cluster can say (NameNode objects, raw bytes on the DataNodes,
erasure coding) comes from the blob adapter (``HdfsBlobStore.cluster_stats``) and is
attached by the caller. Definitions:

- landed: a blob some record points at directly (not a needle): not packed yet;
- logical bytes: the sizes of every blob listed (volumes, landed, anything else);
- saved by dedupe: over every locator more than one rendition points at,
  (references - 1) x its payload length;
- dead bytes of a volume: its length minus the needles some record (deleted ones
  included: purge has not removed them yet) points into, headers and padding counted.
  A needle's extent is taken from its locator and the record's rendition name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from instastore.lifecycle import volumes
from instastore.storage.keys import VOLUME_PREFIX
from instastore.storage.ports import BlobStore, PhotoScan


@dataclass
class VolumeStats:
    key: str
    bytes: int
    dead_bytes: int

    @property
    def dead_share(self) -> float:
        return self.dead_bytes / self.bytes if self.bytes else 0.0


@dataclass
class StorageStats:
    photos_live: int = 0
    photos_deleted: int = 0
    volumes: list[VolumeStats] = field(default_factory=list)
    volumes_erasure_coded: int = 0  # the rest are plain files (replicated on HDFS)
    landed_blobs: int = 0
    landed_bytes: int = 0
    logical_bytes: int = 0
    dedupe_saved_bytes: int = 0
    cluster: dict[str, Any] | None = None  # the blob adapter's own numbers, if any

    @property
    def volume_bytes(self) -> int:
        return sum(v.bytes for v in self.volumes)

    @property
    def dead_bytes(self) -> int:
        return sum(v.dead_bytes for v in self.volumes)

    def attach_cluster(self, cluster: dict[str, Any]) -> None:
        self.cluster = cluster
        self.volumes_erasure_coded = int(cluster.get("volumes_erasure_coded", 0))

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        for entry in doc["volumes"]:
            entry["dead_share"] = (
                round(entry["dead_bytes"] / entry["bytes"], 6) if entry["bytes"] else 0.0
            )
        doc |= {"volume_count": len(self.volumes), "volume_bytes": self.volume_bytes}
        doc |= {"dead_bytes": self.dead_bytes}
        return doc

    def describe(self) -> list[str]:
        lines = [
            f"photos: {self.photos_live} live, {self.photos_deleted} deleted",
            f"volumes: {len(self.volumes)} ({self.volume_bytes:,} bytes), "
            f"{self.volumes_erasure_coded} erasure-coded, "
            f"{len(self.volumes) - self.volumes_erasure_coded} replicated",
            f"landed, not packed yet: {self.landed_blobs} blob(s), {self.landed_bytes:,} bytes",
            f"logical bytes: {self.logical_bytes:,}",
            f"saved by dedupe: {self.dedupe_saved_bytes:,} bytes",
            f"dead bytes in volumes: {self.dead_bytes:,}",
        ]
        lines += [
            f"  {v.key}: {v.bytes:,} bytes, {v.dead_bytes:,} dead ({v.dead_share:.1%})"
            for v in self.volumes
        ]
        lines += [f"{name}: {value}" for name, value in (self.cluster or {}).items()]
        return lines


async def collect(photos: PhotoScan, blobs: BlobStore) -> StorageStats:
    """Count, from one scan of the records and one listing of the blobs."""
    stats = StorageStats()
    references: Counter[str] = Counter()  # locator -> renditions pointing at it
    live: dict[str, dict[int, tuple[int, int]]] = {}  # volume -> offset -> needle extent
    async for photo in photos.scan_photos():
        if photo.deleted:
            stats.photos_deleted += 1
        else:
            stats.photos_live += 1
        for rendition in photo.renditions:
            references[rendition.locator] += 1
            if volumes.is_needle(rendition.locator):
                needle = volumes.parse_locator(rendition.locator)
                extent = _extent(needle, rendition.name)
                live.setdefault(needle.volume_key, {}).setdefault(needle.offset, extent)
    sizes = {entry.key: entry.size async for entry in blobs.entries()}
    stats.logical_bytes = sum(sizes.values())
    landed = {key for key in references if not volumes.is_needle(key) and key in sizes}
    stats.landed_blobs = len(landed)
    stats.landed_bytes = sum(sizes[key] for key in landed)
    stats.dedupe_saved_bytes = sum(
        (count - 1) * _length(locator, sizes) for locator, count in references.items() if count > 1
    )
    for key in sorted(k for k in sizes if k.startswith(VOLUME_PREFIX)):
        used = sum(end - start for start, end in live.get(key, {}).values())
        stats.volumes.append(VolumeStats(key, sizes[key], max(sizes[key] - used, 0)))
    return stats


def _extent(needle: volumes.NeedleLocator, rendition: str) -> tuple[int, int]:
    """(start, end) of the whole needle, header and padding included, in its volume."""
    end = needle.offset + needle.length
    return needle.offset - volumes.header_size(rendition), end + volumes.padding(end)


def _length(locator: str, sizes: dict[str, int]) -> int:
    if volumes.is_needle(locator):
        return volumes.parse_locator(locator).length
    return sizes.get(locator, 0)
