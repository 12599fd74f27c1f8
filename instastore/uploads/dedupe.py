"""Content dedupe: an upload of bytes a live photo stores already reuses that photo's
stored renditions (docs/DESIGN.md, "Dedupe").

The content index names one donor per sha256. An upload that finds a usable donor
saves a record pointing at the donor's locators, then reads the donor again
(``Dedupe.confirm``): still live with the same locators, the reuse stands; moved by the
packer meanwhile, the record follows it; deleted or gone, the record is pointed at the
upload's own blobs (written already), which then become the donor. This module never
writes blobs or removes them: the upload service does both.
"""

from __future__ import annotations

import logging

from instastore import media
from instastore.config import Settings
from instastore.errors import Conflict, InstastoreError
from instastore.lifecycle import volumes
from instastore.model import Photo, User
from instastore.storage.ports import BlobStore, PhotoPorts, settle
from instastore.uploads.receive import Received

log = logging.getLogger(__name__)

# Reads of a donor after saving a record that reuses its bytes, each following a locator
# switch of the donor (packing, compaction) that happened meanwhile.
CONFIRM_ROUNDS = 3


class Dedupe:
    def __init__(self, photo_store: PhotoPorts, blobs: BlobStore, settings: Settings) -> None:
        self.photo_store = photo_store  # the content index, donors' records
        self.blobs = blobs  # checked: a lost blob is never handed on
        self.settings = settings

    async def donor(self, received: Received) -> Photo | None:
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

    async def confirm(self, photo: Photo, donor: Photo, own: Photo) -> tuple[Photo, bool]:
        """After saving a record that reuses ``donor``'s locators, read the donor again;
        (the record as it stands, whether it still reuses the donor's bytes). Still live
        with the same locators: every later purge, pack or gc that could remove those
        bytes reads references after this point and sees this record (docs/DESIGN.md,
        "Dedupe"), and this upload's own blobs (``own``) may go. Moved by the packer
        meanwhile: follow it (the same bytes) and check again. Deleted or gone: point the
        record at this upload's own blobs."""
        for _ in range(CONFIRM_ROUNDS):
            current = await self.photo_store.get_photo(donor.id)
            mine = _locators(photo)
            if current is None or current.deleted or current.sha256 != photo.sha256:
                break
            theirs = _locators(current)
            if theirs == mine:
                return photo, True
            if theirs.keys() != mine.keys():
                break
            if not await settle(
                "following a deduplicated photo's donor",
                lambda: self.photo_store.switch_locators(photo.id, mine, theirs),  # noqa: B023
            ):
                break
            photo = photo.with_locators(theirs)
        return await self._own_bytes(photo, own), False

    async def offer(self, photo: Photo) -> None:
        """Offer the photo's bytes to later uploads of the same bytes (best effort)."""
        try:
            await self.photo_store.set_content_donor(photo.sha256, photo.id)
        except InstastoreError as exc:
            log.warning("could not index the content of photo %d: %s", photo.id, exc)

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
        await self.offer(photo)
        return photo


def reuse(donor: Photo, own: Photo, user: User, received: Received) -> Photo:
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
        transcode=donor.transcode,  # its "video" rendition, made or still coming
    )


def _locators(photo: Photo) -> dict[str, str]:
    return {r.name: r.locator for r in photo.renditions}
