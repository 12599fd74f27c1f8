"""The core's composition: one function builds the services over a pair of stores and
wires the caches that depend on each change to the service that makes it, so the
server, tests and any other caller of the core get one coherent core.

Who tells whom (each within this process; other processes see it within the cache's
few seconds):

- ``Uploads`` -> ``Timeline.note_photo``: a new photo is in its owner's followers'
  timelines at once;
- ``Social`` -> ``Timeline.forget``: a follow, unfollow or approval drops the reader's
  followee list and ranked first page;
- ``Accounts`` -> the owner cache (``Photos.users``): a change of privacy or display name
  is seen at once by visibility and by the owners shown beside photos.

Callers reach the stores only through the services: ``health`` answers readiness.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field

from instastore import paging
from instastore.accounts import Accounts
from instastore.config import Settings
from instastore.errors import InstastoreError
from instastore.ids import IdGenerator
from instastore.jobs import remove_scratch
from instastore.model import Photo
from instastore.photos import Photos
from instastore.ratelimit import RateLimiter
from instastore.social import Social
from instastore.storage import open_stores
from instastore.storage.ports import BlobStore, Stores
from instastore.timeline import Timeline
from instastore.uploads import Uploads
from instastore.viewing import Viewing

log = logging.getLogger(__name__)

START_CLEANUP_TIMEOUT_S = 10.0  # a slow store delays no start for long; gc finishes the job


@dataclass
class Services:
    """The core services of one process, sharing one pair of stores and their caches."""

    accounts: Accounts
    photos: Photos
    social: Social
    timeline: Timeline
    uploads: Uploads
    viewing: Viewing
    upload_limiter: RateLimiter
    _stores: Stores = field(repr=False)

    async def health(self) -> dict[str, str]:
        """Each store's name mapped to "ok" or the reason it does not answer."""
        return await self._stores.ping()

    async def close(self) -> None:
        self.accounts.close()
        await self._stores.close()


def build_services(stores: Stores, settings: Settings) -> Services:
    """The services over ``stores``, with the caches wired to the changes they depend on
    (see the module's docstring)."""
    ids = IdGenerator(settings.worker_id)
    photos = Photos(stores.photos, stores.search, settings)
    accounts = Accounts(stores.accounts, stores.photos, stores.graph, settings, ids)
    social = Social(stores.accounts, stores.graph, settings.max_page_size)
    timeline = Timeline(
        stores.graph, stores.photos, stores.likes, stores.accounts, settings, photos
    )
    uploads = Uploads(stores.claims, stores.photos, stores.blobs, settings, ids, photos)

    def note(photo: Photo) -> None:
        timeline.note_photo(photo.owner_id, photo.id)

    uploads.on_photo = note
    social.on_follows_change = timeline.forget
    accounts.on_change = photos.users.drop
    viewing = Viewing(photos, accounts, social, timeline, likes=stores.likes, blobs=stores.blobs)
    return Services(
        accounts=accounts,
        photos=photos,
        social=social,
        timeline=timeline,
        uploads=uploads,
        viewing=viewing,
        upload_limiter=RateLimiter(settings.uploads_per_minute),
        _stores=stores,
    )


async def open_services(settings: Settings) -> Services:
    """Open the stores the settings name, clean up after crashed processes, install the
    deployment's cursor key, and build the services. ``close()`` them when done."""
    stores = await open_stores(settings, meter=True)
    log.info("stores open: metadata=%s blobs=%s", stores.metadata.name, stores.blobs.name)
    try:
        await _remove_scratch(stores.blobs, settings)
        # SECURITY: one cursor key for every worker and server of the deployment (issue 10).
        paging.use_key(
            await stores.keys.server_key("cursor", secrets.token_bytes(paging.KEY_BYTES))
        )
    except BaseException:
        await stores.close()
        raise
    return build_services(stores, settings)


async def _remove_scratch(blobs: BlobStore, settings: Settings) -> None:
    """Temporary files that crashed processes left; a store that is down does not stop
    the start (gc removes them later)."""
    try:
        removed = await asyncio.wait_for(remove_scratch(blobs, settings), START_CLEANUP_TIMEOUT_S)
    except (InstastoreError, TimeoutError) as exc:
        log.warning("could not remove abandoned temporary files at start: %r", exc)
        return
    if removed:
        log.info("removed %d abandoned temporary file(s)", removed)
