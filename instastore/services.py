"""The core's composition: one function builds the services over a pair of stores and
wires the caches that depend on each change to the service that makes it, so the
server, tests and any other caller of the core get one coherent core.

Who tells whom (each within this process; other processes see it within the cache's
few seconds):

- ``Transcoder`` -> ``Photos`` record and media caches: a video made ready (or failed)
  by this process's transcode worker is read again at once here.
- ``Uploads`` -> ``Timeline.note_photo``: a new photo is in its owner's followers'
  timelines at once; and -> ``Fanout.schedule``: its id goes into their inboxes, in the
  background (``instastore.fanout``);
- ``Social`` -> ``Timeline.forget``: a follow, unfollow or approval drops the reader's
  followee list and ranked first page;
- ``Accounts`` -> the owner cache (``Photos.users``): a change of privacy or display name
  is seen at once by visibility and by the owners shown beside photos.
- ``Viewing`` (a like), ``Comments`` (a comment) and ``Social`` (a follow, a request, an
  approval) -> ``Activity``: the event goes into the inbox of whom it is about, before
  the change is stored and answered (``instastore.activity``).
- ``Photos`` (an upload's record about to be saved) -> ``Tags.index_upload``: its tag
  rows first; ``Tags`` (a title edit) -> ``Activity.retitled``: the mentions it adds.

Ids are made under a worker number this process leases from the metadata store
(``instastore.leases.WorkerIds``), so any number of processes and hosts can serve one
store with no setting. Callers reach the stores only through the services: ``health``
answers readiness.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field

from instastore import paging
from instastore.accounts import Accounts
from instastore.activity import Activity
from instastore.blocks import Blocks
from instastore.comments import Comments
from instastore.config import Settings
from instastore.errors import InstastoreError
from instastore.fanout import Fanout
from instastore.ids import IdGenerator
from instastore.leases import WorkerIds, holder_name
from instastore.lifecycle.gc import remove_scratch
from instastore.model import Photo
from instastore.moderation import Moderation, Reports
from instastore.photos import Photos
from instastore.ratelimit import SharedLimit
from instastore.social import Social
from instastore.storage import open_stores
from instastore.storage.ports import BlobStore, Stores
from instastore.tags import Tags
from instastore.timeline import Timeline
from instastore.uploads import Uploads
from instastore.video.queue import Transcoder
from instastore.viewing import Viewing

log = logging.getLogger(__name__)

START_CLEANUP_TIMEOUT_S = 10.0  # a slow store delays no start for long; gc finishes the job
FANOUT_DRAIN_S = 10.0  # fan-outs under way a closing process waits for


@dataclass
class Services:
    """The core services of one process, sharing one pair of stores and their caches."""

    accounts: Accounts
    photos: Photos
    social: Social
    timeline: Timeline
    fanout: Fanout
    uploads: Uploads
    viewing: Viewing
    comments: Comments
    upload_limiter: SharedLimit
    activity: Activity
    blocks: Blocks
    reports: Reports
    moderation: Moderation
    tags: Tags
    _stores: Stores = field(repr=False)
    _worker: WorkerIds | None = field(default=None, repr=False)
    _transcoding: asyncio.Task[None] | None = field(default=None, repr=False)

    def start_transcoding(self, settings: Settings) -> None:
        """Run the transcode queue in this process (``transcode_workers`` at once, in
        child processes) until ``close``; with 0 workers, nothing."""
        if settings.transcode_workers < 1 or self._transcoding is not None:
            return
        worker = Transcoder(
            self._stores.transcodes,
            self._stores.photos,
            self._stores.blobs,
            settings,
            holder_name("transcode"),
        )

        def finished(photo_id: int) -> None:  # other processes see it within RECORD_TTL_S
            self.photos.records.drop(photo_id)
            self.photos.media.drop_prefix(f"{photo_id}/")

        worker.on_finished = finished
        self._transcoding = asyncio.get_running_loop().create_task(worker.run())

    async def health(self) -> dict[str, str]:
        """Each store's name mapped to "ok" or the reason it does not answer, and "ids"
        unless this process may make ids now."""
        report = await self._stores.ping()
        if self._worker is not None and (ids := self._worker.check()) != "ok":
            report["ids"] = ids
        return report

    async def close(self) -> None:
        if self._transcoding is not None:  # its job's lease lapses: another worker takes it
            self._transcoding.cancel()
            await asyncio.gather(self._transcoding, return_exceptions=True)
        self.accounts.close()
        self.uploads.close()
        try:
            await self.uploads.removals_done()
            try:  # what is cut short stays queued: another process's sweep finishes it
                await asyncio.wait_for(self.fanout.drain(), FANOUT_DRAIN_S)
            except TimeoutError:
                log.warning("fan-outs still running at close are left to the sweep")
            if self._worker is not None:
                await self._worker.close()
        finally:
            await self._stores.close()


def build_services(
    stores: Stores,
    settings: Settings,
    worker: WorkerIds | None = None,
    media_key: bytes | None = None,
    cursor_key: bytes | None = None,
) -> Services:
    """The services over ``stores``, with the caches wired to the changes they depend on
    (see the module's docstring). Ids come from ``worker``'s leased number; without one
    (a single process, as in tests) from the fixed ``worker_id``, or 0. Every list's
    cursors are sealed under ``cursor_key`` (without one, a random key of this call's)."""
    ids = worker.generator if worker else IdGenerator(settings.fixed_worker_id or 0)
    cursors = paging.Cursors(cursor_key)
    photos = Photos(stores.photos, stores.search, settings, cursors=cursors)
    accounts = Accounts(
        stores.accounts, stores.photos, stores.graph, settings, ids, limits=stores.leases
    )
    social = Social(
        stores.accounts,
        stores.graph,
        settings.max_page_size,
        cursors=cursors,
        max_following=settings.max_following,
        blocks=stores.blocks,
        moderation=stores.moderation,
    )
    fanout = Fanout(stores.inbox, stores.graph, stores.photos, settings)
    timeline = Timeline(
        stores.graph,
        stores.photos,
        stores.likes,
        stores.accounts,
        settings,
        photos,
        cursors=cursors,
        inbox=stores.inbox,
        fanout=fanout,
    )
    uploads = Uploads(
        stores.claims, stores.photos, stores.blobs, settings, ids, photos, stores.transcodes
    )

    def note(photo: Photo) -> None:
        timeline.note_photo(photo.owner_id, photo.id)
        fanout.schedule(photo.owner_id)

    uploads.on_photo = note
    uploads.blocklist = stores.moderation
    moderation = Moderation(stores.moderation, stores.photos, stores.accounts)
    moderation.on_change = social.hidden_items.drop
    fanout.on_backfilled = timeline.forget
    social.on_follows_change = timeline.forget
    timeline.audience_of = lambda user: social.audience(user, photos.users)
    accounts.on_change = photos.users.drop
    viewing = Viewing(
        photos,
        accounts,
        social,
        timeline,
        likes=stores.likes,
        blobs=stores.blobs,
        media_key=media_key,
        searches=SharedLimit(stores.leases, "searches", settings.searches_per_address),
        comments=stores.comments,
    )
    comments = Comments(
        stores.comments,
        viewing,
        ids,
        SharedLimit(stores.leases, "comments", settings.comments_per_minute),
        settings.max_comment_chars,
        cursors,
        settings.max_page_size,
    )
    activity = _activity(stores, settings, viewing, ids, cursors)
    viewing.on_liked = activity.liked
    viewing.on_titled = activity.titled
    viewing.mentions_of = comments.mentions_of = activity.mentions_of
    comments.on_comment = activity.commented
    social.on_activity = activity.tell
    tags = Tags(stores.tags, photos, viewing, settings)
    photos.on_save = tags.index_upload
    tags.on_retitled = activity.retitled
    return Services(
        accounts=accounts,
        photos=photos,
        social=social,
        timeline=timeline,
        fanout=fanout,
        uploads=uploads,
        viewing=viewing,
        comments=comments,
        upload_limiter=SharedLimit(stores.leases, "uploads", settings.uploads_per_minute),
        activity=activity,
        blocks=Blocks(stores.blocks, social, cursors, settings.max_page_size),
        reports=Reports(
            stores.moderation,
            viewing,
            comments,
            social,
            SharedLimit(stores.leases, "reports", settings.reports_per_minute),
        ),
        moderation=moderation,
        tags=tags,
        _stores=stores,
        _worker=worker,
    )


def _activity(
    stores: Stores, settings: Settings, viewing: Viewing, ids: IdGenerator, cursors: paging.Cursors
) -> Activity:
    return Activity(
        stores.activity,
        stores.accounts,
        stores.photos,
        stores.likes,
        stores.comments,
        stores.graph,
        viewing.audience,
        ids,
        cursors,
        settings.activity_days,
        settings.max_mentions,
        settings.max_page_size,
    )


async def open_services(settings: Settings) -> Services:
    """Open the stores the settings name, lease a worker number, clean up after crashed
    processes, read the deployment's cursor and media keys, and build the services.
    ``close()`` them when done."""
    stores = await open_stores(settings, meter=True)
    log.info("stores open: metadata=%s blobs=%s", stores.metadata.name, stores.blobs.name)
    worker = None
    try:
        worker = await WorkerIds.start(stores.leases, settings.fixed_worker_id, "instastore serve")
        await _remove_scratch(stores.blobs, settings)
        # SECURITY: one cursor key for every worker and server of the deployment.
        cursor_key = await stores.keys.server_key("cursor", secrets.token_bytes(paging.KEY_BYTES))
        # SECURITY: one key binding media URLs to their holders, for every host.
        media_key = await stores.keys.server_key("media", secrets.token_bytes(paging.KEY_BYTES))
    except BaseException:
        if worker is not None:
            await worker.close()
        await stores.close()
        raise
    services = build_services(stores, settings, worker, media_key, cursor_key)
    services.start_transcoding(settings)
    return services


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
