"""Compaction (``instastore compact``): volumes whose dead bytes (no record points at
them: purged photos, dedupe leftovers, crash leftovers) reach a share of the volume are
rewritten into new volumes holding their live needles only.

It moves bytes with the packer's machinery (``instastore.lifecycle.packing.Mover``), so it is
crash-safe the same way: a manifest per new volume (each record's old and new needle
locators, and every record that pointed into each old volume), the new volume written
whole, each record switched with a conditional write; then, once for the run, a wait for
other processes' record caches, each old volume deleted once none of its records (nor
any queued record: ``packing.Mover.clean``) points into it, and the manifests dropped.
Killed anywhere, the next ``compact`` or ``pack`` finishes the manifest first. A needle
several records share is copied once and stays shared.

What it reads, in this order: the volumes, then the unfinished manifests (their
volumes may still gain records, so they are not judged), then every record. A volume
no record points into is deleted at once (nobody can be switched into a volume without
a manifest). A deleted photo's needle is live (it may be restored) but never moved
(``switch_locators`` refuses it): its old volume stays until purge removes the photo
and a later compaction finds the volume unused. Run one compaction or packer at a time
(see packing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from instastore import ids
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.errors import NotFound
from instastore.lifecycle import packing, volumes
from instastore.lifecycle.references import NeedleUse, References, scan_references
from instastore.storage.keys import VOLUME_PREFIX
from instastore.storage.ports import BlobEntry, BlobStore

log = logging.getLogger(__name__)

# Share of a volume's bytes dead (no record points at them) from which `instastore
# compact` rewrites it by default (gc reports the volumes past it): half, so a volume is
# rewritten at most once per halving and copying it costs at most as many bytes as it frees.
COMPACT_THRESHOLD = 0.5


@dataclass
class CompactReport:
    volumes: int = 0  # volumes looked at
    compacted: int = 0  # volumes whose live needles were rewritten
    dead_volumes_removed: int = 0  # volumes no record pointed into
    bytes_before: int = 0  # size of the compacted and removed volumes
    kept_for_deleted: int = 0  # old volumes deleted photos still use (until they are purged)
    moved: packing.PackReport = field(default_factory=packing.PackReport)


async def compact(
    photos: packing.MoverPorts,
    blobs: BlobStore,
    settings: Settings,
    threshold: float = COMPACT_THRESHOLD,
    now: datetime | None = None,
    progress: Callable[[str], None] = lambda line: None,
    landed_grace_s: float = packing.LANDED_GRACE_S,
    generator: ids.IdGenerator | None = None,
) -> CompactReport:
    """Finish what earlier runs left, then rewrite every volume whose dead share is at
    least ``threshold`` (0 to 1) with its live needles, and delete volumes no record
    points into. New volume ids come from ``generator`` (the command's makes them under a
    leased worker number: ``instastore.leases``)."""
    now = now or utcnow()
    report = CompactReport()
    mover = packing.Mover(photos, blobs, report.moved, progress, landed_grace_s)
    finished = await mover.resume(now)
    listed = [e async for e in blobs.entries(VOLUME_PREFIX)]
    pending = await packing.pending_volumes(blobs)
    references = await scan_references(photos, progress)
    sparse: list[BlobEntry] = []
    for entry in listed:
        report.volumes += 1
        if entry.key in pending:
            continue
        if not references.records_in(entry.key):
            if await blobs.delete(entry.key):
                report.dead_volumes_removed += 1
                report.bytes_before += entry.size
                progress(f"removed volume {entry.key}: no record points into it")
        elif _dead_share(entry, references) >= threshold:
            sparse.append(entry)
    generator = generator or ids.IdGenerator(settings.fixed_worker_id or 0)
    for draft in _plans(blobs, sparse, references, generator, settings, report):
        await mover.write(draft.plan, draft.sources)
        await mover.switch(draft.plan)
        finished.append((draft.plan, False))
    await mover.clean(finished)
    report.kept_for_deleted = sum([await _exists(blobs, e.key) for e in sparse])
    return report


def _dead_share(entry: BlobEntry, references: References) -> float:
    if not entry.size:
        return 0.0
    return max(0, entry.size - references.live_bytes(entry.key)) / entry.size


@dataclass
class _Draft:
    plan: packing.Plan
    sources: list[volumes.NeedleSource] = field(default_factory=list)
    size: int = 0  # bytes of its needles


def _plans(
    blobs: BlobStore,
    sparse: list[BlobEntry],
    references: References,
    generator: ids.IdGenerator,
    settings: Settings,
    report: CompactReport,
) -> list[_Draft]:
    """The live needles of the sparse volumes, in volume and offset order, grouped into
    new volumes up to the target size. Each needle is copied once; every record using it
    is switched by the manifest of the volume it lands in."""
    drafts: list[_Draft] = []
    for entry in sorted(sparse, key=lambda e: e.key):
        needles = references.needles[entry.key]
        live = {loc: [u for u in uses if not u.deleted] for loc, uses in needles.items()}
        live = {loc: uses for loc, uses in live.items() if uses}
        if not live:
            continue  # only deleted photos use it: it goes once purge has taken them all
        report.compacted += 1
        report.bytes_before += entry.size
        sharers = sorted(references.records_in(entry.key))
        for locator in sorted(live, key=lambda loc: volumes.parse_locator(loc).offset):
            uses = live[locator]
            first = min(uses, key=lambda u: u.photo_id)  # named in the needle's header
            length = volumes.parse_locator(locator).length
            grow = volumes.needle_size(first.rendition, length)
            if not drafts or drafts[-1].size + grow > settings.volume_target_bytes:
                drafts.append(_Draft(packing.Plan(generator.next_id())))
            draft = drafts[-1]
            new = volumes.NeedleLocator(
                draft.plan.volume_id,
                draft.size + volumes.header_size(first.rendition),
                length,
            )
            draft.sources.append(
                volumes.blob_source(blobs, first.photo_id, first.rendition, locator, length)
            )
            draft.size += grow
            _add(draft.plan, uses, locator, str(new))
            draft.plan.sharers[entry.key] = sharers
    return drafts


def _add(plan: packing.Plan, uses: list[NeedleUse], old: str, new: str) -> None:
    for use in uses:
        plan.old.setdefault(use.photo_id, {})[use.rendition] = old
        plan.new.setdefault(use.photo_id, {})[use.rendition] = new


async def _exists(blobs: BlobStore, key: str) -> bool:
    try:
        await blobs.size(key)
    except NotFound:
        return False
    return True
