"""The packer (``instastore pack``): landed blobs into volumes.

An upload lands as its own blobs (one per rendition) and its record joins the pack queue
(``PackQueue.pack_queue``: ``save_photo`` queues every photo it saves, before its record).
A run reads the queue, never every record: its work grows with what is left to pack, not
with every photo ever stored. It takes the landed blobs of queued photos older than
``min_age``, and for each new volume:

1. writes a manifest, ``packing/<volume id>.json``: for each photo the locators it has
   (old) and will have (new: needles, whose offsets are known before writing), and for
   each landed blob every record that pointed at it when the queue was read;
2. writes the volume whole (``instastore.lifecycle.volumes.write_volume``: one put, closed);
3. switches each photo's locators with a conditional write (``switch_locators``: only
   if the record still has the old ones and is not deleted);

then, once for all the run's volumes:

4. waits for other processes' record caches (``LANDED_GRACE_S``), then deletes each
   landed blob that no record points at, by references read again now from the queue
   and from the manifest's sharers (a deduplicated upload may have reused a blob since
   the first read: docs/DESIGN.md, "Dedupe");
5. deletes the manifests;
6. drops from the queue the photos whose records have no landed blob left (and the
   records long gone). Deleted photos keep their landed blobs and their place.

Why the queue is enough: a record with a landed blob is always queued. It is saved with
its entry (a save found done already, or an unknown outcome read back, writes the entry
again: a logged batch may show the record before its other rows); ``Uploads`` queues a
photo again before and after pointing it at bytes of its own; an entry goes only once
its record is older than ``min_age`` and has no landed blob, and the records dropped are
read again afterwards and queued back if one gained a landed blob meanwhile. So every
record that could point at a landed blob is read at steps 1 and 4. (Compaction's old
volumes may be pointed into by any record: for those, step 4 reads every record.)

Crash-safe: killed anywhere, the next run first finishes every manifest it finds (a
volume that was never written: nothing was switched, the manifest goes; else steps 3-5
again, all idempotent), so what a crash leaves is at most unreferenced bytes: a volume
no record points at, which a later run removes once its manifest is older than
``DEAD_VOLUME_GRACE`` (``instastore gc`` would too, after its own grace). A deleted photo
is never switched (purge counts references from a scan taken before it removes bytes,
and must never see a record move under it); it is packed if it is restored.

Records saved before the queue existed are queued by schema 006's migration; records a
server still on older code saved after it, or stored the old way, by
``pack(scan_all=True)`` (``instastore pack --scan-all``), the one full scan.

Run one packer at a time: two packers finishing the same manifest at once are safe but
for one race (a photo restored between one's "nobody points at this volume" and its
removal of the volume while the other switches the photo into it).

This module never infers a photo from a key's shape: it reads the records (through
``instastore.lifecycle.references``, like every job).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, TypeVar, cast

from instastore import ids, limits
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.errors import NotFound
from instastore.lifecycle import volumes
from instastore.lifecycle.references import (
    QueuedRecords,
    count_references,
    landed_of,
    read_queue,
    read_records,
)
from instastore.model import Photo
from instastore.storage.keys import MANIFEST_PREFIX, VOLUME_PREFIX, manifest_key, volume_key
from instastore.storage.ports import BlobStore, LocatorSwitch, PackQueue, PhotoScan, settle

log = logging.getLogger(__name__)

LANDED_GRACE_S = limits.LANDED_GRACE_S
# A manifest younger than this may belong to a packer still running: its volume is not
# judged dead yet (a packer writes and switches a volume in minutes).
DEAD_VOLUME_GRACE = timedelta(hours=1)
DEFAULT_MIN_AGE_S = 300  # seconds; far past an upload's own retries of its save
QUEUE_WRITES = 500  # photos queued at a time by a full scan
CONCURRENCY = 16  # blob sizes, conditional switches and deletes in flight at once
SWITCH_PROGRESS_EVERY = 10_000  # records: a progress line while a big volume is switched
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


class MoverPorts(QueuedRecords, LocatorSwitch, PhotoScan, Protocol):
    """What moving records' bytes takes: records by id, the pack queue, the switch, and
    (for compaction's old volumes) the full scan."""


@dataclass
class PackReport:
    photos: int = 0  # records switched to needles
    needles: int = 0  # landed blobs written into volumes
    volumes: int = 0  # volumes written
    bytes: int = 0  # payload bytes packed
    landed_removed: int = 0  # landed blobs (old volumes, compacting) deleted once unused
    skipped: int = 0  # records changed meanwhile (deleted, purged, switched elsewhere)
    resumed: int = 0  # manifests of earlier runs finished
    dead_volumes_removed: int = 0
    queued: int = 0  # photos queued by a full scan (``scan_all``)
    unqueued: int = 0  # photos dropped from the pack queue (nothing landed left)


@dataclass
class Plan:
    """One volume's manifest: what it holds and whom it moves."""

    volume_id: int
    old: dict[int, dict[str, str]] = field(default_factory=dict)  # photo -> name -> locator
    new: dict[int, dict[str, str]] = field(default_factory=dict)
    sharers: dict[str, list[int]] = field(default_factory=dict)  # landed key -> photos

    @property
    def key(self) -> str:
        return manifest_key(self.volume_id)

    def encode(self) -> bytes:
        return json.dumps(
            {
                "volume_id": self.volume_id,
                "photos": [
                    {"id": p, "old": self.old[p], "new": self.new[p]} for p in sorted(self.old)
                ],
                "sharers": self.sharers,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> Plan:
        doc = json.loads(data)
        plan = cls(int(doc["volume_id"]), sharers=doc["sharers"])
        for entry in doc["photos"]:
            plan.old[int(entry["id"])] = entry["old"]
            plan.new[int(entry["id"])] = entry["new"]
        return plan


@dataclass
class _Landed:
    """What one scan of the records says about landed blobs."""

    candidates: list[tuple[Photo, dict[str, str]]]  # photo, its landed renditions
    sharers: dict[str, list[int]]  # landed key -> every record pointing at it


async def pack(
    photos: MoverPorts,
    blobs: BlobStore,
    settings: Settings,
    min_age: timedelta = timedelta(seconds=DEFAULT_MIN_AGE_S),
    now: datetime | None = None,
    progress: Callable[[str], None] = lambda line: None,
    landed_grace_s: float = LANDED_GRACE_S,
    scan_all: bool = False,
    generator: ids.IdGenerator | None = None,
) -> PackReport:
    """Finish what earlier runs left, then pack the landed blobs of every queued photo
    (not deleted) older than ``min_age`` into new volumes of ``volume_target_bytes``.
    With ``scan_all``, first queue every record that has landed blobs (a full scan).
    New volume ids come from ``generator`` (the command's makes them under a leased
    worker number: ``instastore.leases``)."""
    now = now or utcnow()
    report = PackReport()
    packer = Mover(photos, blobs, report, progress, landed_grace_s)
    if scan_all:
        report.queued = await queue_landed(photos, progress)
    finished = await packer.resume(now)
    born_before = now - min_age
    landed = await _scan(photos, born_before, progress)
    generator = generator or ids.IdGenerator(settings.fixed_worker_id or 0)
    for draft in await _plans(blobs, landed, generator, settings, progress):
        await packer.write(draft.plan, draft.sources)
        await packer.switch(draft.plan)
        finished.append((draft.plan, False))
    queued = await packer.clean(finished)
    await _unqueue(photos, queued, born_before, now, report)
    progress(
        f"packed {report.photos} photo(s), {report.needles} blob(s), "
        f"{report.bytes:,} bytes into {report.volumes} volume(s); "
        f"{report.unqueued} photo(s) left the pack queue"
    )
    return report


class ScanAndQueue(PhotoScan, PackQueue, Protocol):
    """What queueing every record with landed blobs takes."""


async def queue_landed(photos: ScanAndQueue, progress: Callable[[str], None]) -> int:
    """Queue every record (deleted ones included) that has a landed blob: records saved
    before the pack queue existed, or stored the old way. A full scan."""
    batch: list[int] = []
    queued = 0
    async for photo in photos.scan_photos():
        if any(not volumes.is_needle(r.locator) for r in photo.renditions):
            batch.append(photo.id)
        if len(batch) >= QUEUE_WRITES:
            await photos.queue_for_packing(batch)
            queued, batch = queued + len(batch), []
    await photos.queue_for_packing(batch)
    queued += len(batch)
    progress(f"queued {queued} photo(s) with landed blobs for packing")
    return queued


async def _unqueue(
    photos: QueuedRecords,
    queued: tuple[list[int], dict[int, Photo]],
    born_before: datetime,
    now: datetime,
    report: PackReport,
) -> None:
    """Step 6: drop the queued photos older than ``born_before`` whose records (read after
    the switches) have no landed blob, and ids whose record is gone past the orphan grace
    (a save whose batch is still being applied shows its queue entry before its record)."""
    ids_, records = queued
    done = []
    for photo_id in ids_:
        photo = records.get(photo_id)
        born = ids.created_at(photo_id)
        if photo is None:
            if born <= now - limits.ORPHAN_GRACE:
                done.append(photo_id)
        elif born <= born_before and not landed_of(photo):
            done.append(photo_id)
    await photos.unqueue_packed(done)
    # Read again after dropping: a record pointed at landed blobs of its own meanwhile
    # (an upload whose donor went, docs/DESIGN.md "Dedupe") goes back in the queue.
    again = await read_records(photos, done)
    back = [photo.id for photo in again.values() if landed_of(photo)]
    await photos.queue_for_packing(back)
    report.unqueued += len(done) - len(back)


async def _scan(
    metadata: QueuedRecords, born_before: datetime, progress: Callable[[str], None]
) -> _Landed:
    landed = _Landed([], {})
    young: set[int] = set()  # live records with landed blobs, too young to switch
    queued, records = await read_queue(metadata)
    for photo_id in queued:
        photo = records.get(photo_id)
        mine = {} if photo is None else landed_of(photo)
        if photo is None or not mine:
            continue
        for key in set(mine.values()):
            landed.sharers.setdefault(key, []).append(photo.id)
        if photo.deleted:
            continue
        if ids.created_at(photo.id) <= born_before:
            landed.candidates.append((photo, mine))
        else:
            young.add(photo.id)
    progress(f"{len(queued)} photo(s) in the pack queue")
    # A landed blob a young record shares (a deduplicated upload) waits until all its
    # sharers can move together: packed now, it would be packed again with the young one.
    ready = [
        (photo, mine)
        for photo, mine in landed.candidates
        if not any(young.intersection(landed.sharers[key]) for key in mine.values())
    ]
    if len(ready) < len(landed.candidates):
        progress(f"{len(landed.candidates) - len(ready)} photo(s) wait for younger sharers")
    landed.candidates = sorted(ready, key=lambda item: item[0].id)
    progress(f"{len(landed.candidates)} photo(s) have landed blobs to pack")
    return landed


@dataclass
class _Draft:
    plan: Plan
    keys: list[str] = field(default_factory=list)  # landed key of each source
    sources: list[volumes.NeedleSource] = field(default_factory=list)
    size: int = 0  # bytes of its needles


async def _plans(
    blobs: BlobStore,
    landed: _Landed,
    generator: ids.IdGenerator,
    settings: Settings,
    progress: Callable[[str], None],
) -> list[_Draft]:
    """Group the candidates, photo by photo, into volumes up to the target size; a
    landed blob shared by several records becomes one needle they all point at."""
    drafts: list[_Draft] = []
    placed: set[str] = set()
    sizes = await _sizes(blobs, sorted({k for _, mine in landed.candidates for k in mine.values()}))
    for photo, mine in landed.candidates:
        fresh = _sources(blobs, photo, mine, placed, sizes)
        if fresh is None:
            progress(f"photo {photo.id}: a landed blob is missing; left as it is")
            continue
        grow = sum(volumes.needle_size(s.rendition, s.length) for _, s in fresh)
        if not drafts or (grow and drafts[-1].size + grow > settings.volume_target_bytes):
            drafts.append(_Draft(Plan(generator.next_id())))
        draft = drafts[-1]
        for key, source in fresh:
            draft.keys.append(key)
            draft.sources.append(source)
            placed.add(key)
        draft.size += grow
        draft.plan.old[photo.id] = mine
        for key in mine.values():
            draft.plan.sharers[key] = landed.sharers[key]
    locators = {
        key: str(locator)
        for d in drafts
        for key, locator in zip(d.keys, volumes.layout(d.plan.volume_id, d.sources), strict=True)
    }
    for d in drafts:
        d.plan.new = {
            p: {n: locators[k] for n, k in mine.items()} for p, mine in d.plan.old.items()
        }
    return drafts


async def _each(
    items: Sequence[_Item], step: Callable[[_Item], Awaitable[_Result]]
) -> list[_Result]:
    """``step`` of every item, ``CONCURRENCY`` at a time; the results in item order. A
    few workers take the items in turn (not a task per item: a volume of small photos
    is a hundred thousand records to switch)."""
    results: list[_Result | None] = [None] * len(items)
    queue = iter(enumerate(items))

    async def worker() -> None:
        for index, item in queue:
            results[index] = await step(item)

    await asyncio.gather(*(worker() for _ in range(min(CONCURRENCY, len(items)))))
    return cast(list[_Result], results)


async def _sizes(blobs: BlobStore, keys: Sequence[str]) -> dict[str, int]:
    """The size of each landed blob that exists, asked ``CONCURRENCY`` at a time."""

    async def size(key: str) -> int | None:
        try:
            return await blobs.size(key)
        except NotFound:
            return None

    found = zip(keys, await _each(keys, size), strict=True)
    return {key: length for key, length in found if length is not None}


def _sources(
    blobs: BlobStore,
    photo: Photo,
    mine: dict[str, str],
    placed: set[str],
    sizes: dict[str, int],
) -> list[tuple[str, volumes.NeedleSource]] | None:
    """Needle sources for the photo's landed blobs not placed yet; None if one is gone."""
    fresh: dict[str, volumes.NeedleSource] = {}
    for name, key in mine.items():
        if key in placed or key in fresh:
            continue
        if key not in sizes:
            return None
        fresh[key] = volumes.blob_source(blobs, photo.id, name, key, sizes[key])
    return list(fresh.items())


class Mover:
    """The steps that move records' bytes into a new volume, crash-safe (the module's
    steps 1 to 5, resumed from the manifests): the packer's, and compaction's
    (``instastore.lifecycle.compaction``), whose "landed" blobs are the old volumes."""

    def __init__(
        self,
        metadata: MoverPorts,
        blobs: BlobStore,
        report: PackReport,
        progress: Callable[[str], None],
        landed_grace_s: float,
    ) -> None:
        self.metadata = metadata
        self.blobs = blobs
        self.report = report
        self.progress = progress
        self.landed_grace_s = landed_grace_s
        self._switched = 0  # records switched since the last clean

    async def write(self, plan: Plan, sources: Sequence[volumes.NeedleSource]) -> None:
        """Steps 1 and 2: the manifest, then the volume."""
        await self.blobs.put(plan.key, _one(plan.encode()))
        await volumes.write_volume(self.blobs, plan.volume_id, sources)
        self.report.volumes += 1
        self.report.needles += len(sources)
        self.report.bytes += sum(s.length for s in sources)
        self.progress(
            f"wrote volume {plan.volume_id}: {len(plan.old)} photo(s), {len(sources)} blob(s)"
        )

    async def resume(self, now: datetime) -> list[tuple[Plan, bool]]:
        """Switch again the records of every manifest earlier runs left (killed, or their
        volume found dead); the plans, with whether each volume may go if nobody uses it
        (its manifest is old enough), for ``clean``."""
        resumed = []
        async for entry in self.blobs.entries(MANIFEST_PREFIX):
            data = b"".join([c async for c in self.blobs.open(entry.key)])
            plan = Plan.decode(data)
            self.report.resumed += 1
            self.progress(f"finishing volume {plan.volume_id} of an earlier run")
            try:
                await self.blobs.size(volume_key(plan.volume_id))
            except NotFound:  # never written, so nothing points at it
                await self.blobs.delete(plan.key)
                continue
            await self.switch(plan)
            resumed.append((plan, now - entry.modified >= DEAD_VOLUME_GRACE))
        return resumed

    async def finish(self, plan: Plan, may_drop_volume: bool) -> None:
        """Steps 3 to 5 for one plan: ``switch``, then ``clean``."""
        await self.switch(plan)
        await self.clean([(plan, may_drop_volume)])

    async def switch(self, plan: Plan) -> None:
        """Step 3 (idempotent): switch every record of the plan that still has its old
        locators and is live."""
        total, counted = len(plan.old), 0

        async def one(photo_id: int) -> bool:
            nonlocal counted
            switched = await self._switch(plan, photo_id)
            counted += 1
            if counted % SWITCH_PROGRESS_EVERY == 0 and counted < total:
                self.progress(f"switched {counted}/{total} record(s) to volume {plan.volume_id}")
            return switched

        done = await _each(sorted(plan.old), one)
        switched = sum(done)
        self.report.skipped += len(done) - switched
        self.report.photos += switched
        self._switched += switched

    async def clean(self, plans: list[tuple[Plan, bool]]) -> tuple[list[int], dict[int, Photo]]:
        """Steps 4 and 5 (idempotent), once for the switched plans: wait, then delete the
        old blobs (landed blobs; old volumes when compacting) no record points at, and
        the manifests. A volume nobody was switched to stays with its manifest unless
        its flag says it may go. Returns the pack queue as read after the switches."""
        if self._switched and self.landed_grace_s:
            await asyncio.sleep(self.landed_grace_s)
        self._switched = 0
        # References read after the switches: a deduplicated upload saved since the scan,
        # pointing at a blob it read from a record before its switch, is queued (saved
        # with its entry) or among the sharers the manifest names (docs/DESIGN.md, "Dedupe").
        queued = await read_queue(self.metadata)
        now_used = {volumes.blob_of(r.locator) for p in queued[1].values() for r in p.renditions}
        if any(k.startswith(VOLUME_PREFIX) for plan, _ in plans for k in plan.sharers):
            # Compaction's old volumes: any record may point into one (the queue holds only
            # those with landed blobs), so every record's references, as compaction read them.
            now_used |= set(await count_references(self.metadata, self.progress))
        # Every record a manifest names (sharers of its old blobs, photos moved into its
        # volume), read now: what any of them points at is in use.
        named = sorted(
            {i for plan, _ in plans for sharers in plan.sharers.values() for i in sharers}
            | {i for plan, _ in plans for i in plan.old}
        )
        now_used |= {
            volumes.blob_of(r.locator)
            for photo in (await read_records(self.metadata, named)).values()
            for r in photo.renditions
        }
        old = sorted({k for plan, _ in plans for k in plan.sharers} - now_used)
        removed = await _delete_each(self.blobs, old)
        self.report.landed_removed += removed
        for plan, may_drop_volume in plans:
            if volume_key(plan.volume_id) not in now_used:  # nobody was switched to it
                if not may_drop_volume:
                    continue  # a later run decides, once no packer can be switching into it
                await self.blobs.delete(volume_key(plan.volume_id))
                self.report.dead_volumes_removed += 1
            await self.blobs.delete(plan.key)
        return queued

    async def _switch(self, plan: Plan, photo_id: int) -> bool:
        def attempt() -> Awaitable[bool]:
            return self.metadata.switch_locators(photo_id, plan.old[photo_id], plan.new[photo_id])

        return await settle(f"switching the locators of photo {photo_id}", attempt)


async def _delete_each(blobs: BlobStore, keys: Sequence[str]) -> int:
    """Delete the blobs, ``CONCURRENCY`` at a time; how many were there."""
    return sum(await _each(keys, blobs.delete))


async def pending_volumes(blobs: BlobStore) -> set[str]:
    """The volumes of the manifests not finished yet: records may still be switched into
    them, so no job judges them by who points into them until the manifest is gone. A
    job lists these BEFORE it reads the records (a volume is written after its manifest,
    which goes only once every switch is done)."""
    pending = set()
    async for entry in blobs.entries(MANIFEST_PREFIX):
        try:
            data = b"".join([c async for c in blobs.open(entry.key)])
        except NotFound:
            continue  # finished meanwhile
        pending.add(volume_key(Plan.decode(data).volume_id))
    return pending


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
