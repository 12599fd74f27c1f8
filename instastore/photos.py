"""Photos: reading them as the rules say, soft delete and restore.

The rules live here, not in the stores: a deleted photo vanishes from every read at once;
its owner can restore it within ``retention_days``; after that the purge job
(``instastore.lifecycle.purge``) removes its rows, index entries and blobs for good. This module
never speaks HTTP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from instastore import search
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.errors import Gone, NotAllowed, NotFound
from instastore.hotcache import ByteCache, TtlCache
from instastore.limits import OVERFETCH_ROUNDS
from instastore.model import Photo, User
from instastore.paging import Cursors, Page, Scope, clamp_limit
from instastore.storage.ports import PhotoStore, SearchIndex

# fetch(before, n): up to n photo ids, newest first, strictly before ``before`` (None: newest).
IdFetch = Callable[[int | None, int], Awaitable[list[int]]]


@dataclass(frozen=True)
class Batch:
    """Ids a ``BatchFetch`` read, newest first, and where it got to: ``resume``, the id
    the next read goes on strictly before (None: there is no more); ``last``: the page
    ends here (the fetch spent its reading budget)."""

    ids: list[int]
    resume: int | None
    last: bool = False


# fetch(before, n): up to n ids strictly before ``before``, and where the read got to.
BatchFetch = Callable[[int | None, int], Awaitable[Batch]]
# The viewer's filter over a batch of live photos (e.g. ``Audience.filter``).
PhotoFilter = Callable[[list[Photo]], Awaitable[list[Photo]]]


def live_in_order(photo_ids: Sequence[int], records: Mapping[int, Photo]) -> list[Photo]:
    """The live photos among ``photo_ids``, in that order: one without a record (never
    was, or purged) or deleted is left out. The one filter every list of photos goes
    through; invisible photos are the viewer's filter (``social.Audience``)."""
    return [records[i] for i in photo_ids if i in records and not records[i].deleted]


def user_photos_scope(user_id: int, viewer_id: int) -> Scope:
    """The list of ``user_id``'s photos as ``viewer_id`` (0: nobody signed in) reads it."""
    return Scope("user photos", (user_id, viewer_id))


class Photos:
    def __init__(
        self,
        photos: PhotoStore,
        index: SearchIndex,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
        cursors: Cursors | None = None,
    ) -> None:
        self.photos = photos
        self.index = index  # the title search
        self.settings = settings
        self.clock = clock
        # Seals the cursors of its lists (by default under a random key of its own).
        self.cursors = cursors or Cursors()
        # Photo records of the media path.
        self.records: TtlCache[int, Photo] = TtlCache("photo_records")
        self.media = ByteCache(settings.media_cache_bytes)
        # Owners shown beside photos. A change of privacy or display name reaches
        # other processes within the TTL; this process drops its entry at once.
        self.users: TtlCache[int, User] = TtlCache("owners")
        # Told of a photo before its record is saved: the rows of other indexes of its
        # title (``Tags.index_upload``), on the same path as the title index's.
        self.on_save: Callable[[Photo], Awaitable[None]] | None = None

    async def get_for_media(self, photo_id: int) -> Photo:
        """Like ``get``, through a few-second record cache (the media hot path), which
        concurrent misses of one photo fill with one read."""
        return await self.records.through(photo_id, lambda: self.get(photo_id))

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.settings.retention_days)

    async def get(self, photo_id: int) -> Photo:
        """A live photo; ``NotFound`` for one that never was, is deleted or purged."""
        photo = await self.photos.get_photo(photo_id)
        if photo is None or photo.deleted:
            raise NotFound(f"no photo {photo_id}")
        return photo

    async def live(self, photo_ids: Sequence[int]) -> list[Photo]:
        """The live photos among ``photo_ids``, in that order (see ``live_in_order``)."""
        return live_in_order(photo_ids, await self.photos.get_photos(photo_ids))

    async def live_page(
        self,
        fetch: IdFetch,
        cursor: str | None,
        limit: int,
        allowed: PhotoFilter | None,
        scope: Scope,
    ) -> Page[Photo]:
        """Fill a page from ``fetch(before, n) -> ids``, skipping deleted photos and,
        with ``allowed`` (an async filter, e.g. ``Audience.filter``), invisible ones.
        Its cursors are ``scope``'s: no other list takes them."""

        async def batch(before: int | None, n: int) -> Batch:
            ids = await fetch(before, n)
            # Fewer than asked for: the store has no more.
            return Batch(ids, ids[-1] if ids and len(ids) >= n else None)

        return await self.batch_page(batch, cursor, limit, allowed, scope)

    async def batch_page(
        self,
        fetch: BatchFetch,
        cursor: str | None,
        limit: int,
        allowed: PhotoFilter | None,
        scope: Scope,
    ) -> Page[Photo]:
        """``live_page`` over a fetch that says itself where it got to, and may end the
        page early (a bounded search): what was found, and a cursor to go on from there."""
        limit = clamp_limit(limit, self.settings.max_page_size)
        before = self.cursors.decode_cursor(cursor, scope)
        found: list[Photo] = []
        for _ in range(OVERFETCH_ROUNDS):
            got = await fetch(before, limit + 1 - len(found))
            live = await self.live(got.ids) if got.ids else []
            found += await allowed(live) if allowed else live
            if len(found) > limit:
                return Page(found[:limit], self.cursors.encode_cursor(found[limit - 1].id, scope))
            if got.resume is None:
                return Page(found, None)
            before = got.resume
            if got.last:
                break
        # Many deleted photos in a row, or the fetch's reading budget spent: hand back
        # what we have and a cursor past what was read.
        assert before is not None  # OVERFETCH_ROUNDS > 0: the loop ran and moved it
        return Page(found, self.cursors.encode_cursor(before, scope))

    async def by_user(
        self,
        user_id: int,
        cursor: str | None = None,
        limit: int = 20,
        allowed: PhotoFilter | None = None,
        viewer_id: int = 0,
    ) -> Page[Photo]:
        """A user's live photos, newest first, as ``viewer_id`` (0: nobody signed in)
        pages through them."""

        async def own(photos: list[Photo]) -> list[Photo]:
            # A user-photos row left by a save that found its id taken (Conflict) points
            # at another user's photo: never shown as this user's.
            mine = [p for p in photos if p.owner_id == user_id]
            return await allowed(mine) if allowed is not None else mine

        return await self.live_page(
            lambda before, n: self.photos.user_photo_ids(user_id, before, n),
            cursor,
            limit,
            own,
            user_photos_scope(user_id, viewer_id),
        )

    async def search(
        self,
        query: str,
        cursor: str | None = None,
        limit: int = 20,
        allowed: PhotoFilter | None = None,
        viewer_id: int = 0,
    ) -> Page[Photo]:
        """Live photos whose titles contain every word of ``query``, newest first, as
        ``viewer_id`` (0: nobody signed in) pages through them. A page may hold fewer
        than ``limit``, even none, and still have a cursor: one request reads at most
        about ``search_postings`` postings of the title index."""
        terms = search.terms(query)
        if not terms:  # no word the title index holds (a sign, or words over its length)
            # It finds nothing, and no cursor was ever made for it: any is refused.
            self.cursors.decode_cursor(cursor, Scope("search", (viewer_id,)))
            return Page([], None)

        async def matching(photos: list[Photo]) -> list[Photo]:
            # A title-index row left by a save that found its id taken (Conflict) points
            # at another photo: only photos whose own title has every word are results.
            hits = [p for p in photos if set(terms) <= set(search.terms(p.title))]
            return await allowed(hits) if allowed is not None else hits

        # SECURITY: one search reads at most about ``search_postings`` postings, over all
        # its rounds: two common words that rarely meet would otherwise walk every
        # posting of one of them. It answers what it found and a cursor past what it read.
        budget = self.settings.search_postings

        async def walk(before: int | None, n: int) -> Batch:
            nonlocal budget
            hits = await self.index.search_terms(terms, before, n, budget)
            budget -= hits.read
            if hits.stopped_at is not None:
                return Batch(hits.ids, hits.stopped_at, last=True)
            resume = hits.ids[-1] if hits.ids and len(hits.ids) >= n else None
            return Batch(hits.ids, resume, last=budget <= 0)

        return await self.batch_page(
            walk, cursor, limit, matching, Scope("search", (viewer_id, *sorted(terms)))
        )

    async def save(self, photo: Photo) -> None:
        """Store the record and its index rows (the blobs are already written)."""
        if self.on_save is not None:
            await self.on_save(photo)
        await self.photos.save_photo(photo, search.terms(photo.title))

    async def delete(self, photo_id: int, user_id: int) -> Photo:
        """Soft delete by its owner: gone from every read at once, restorable for a while."""
        photo = await self.get(photo_id)
        if photo.owner_id != user_id:
            raise NotAllowed("only the owner can delete a photo")
        deleted_at = self.clock()
        await self.photos.set_deleted(photo, deleted_at)
        self.records.drop(photo_id)
        self.media.drop_prefix(f"{photo_id}/")
        return photo.with_deleted_at(deleted_at)

    async def restore(self, photo_id: int, user_id: int) -> Photo:
        """Undo a delete inside the retention window; ``Gone`` after it."""
        photo = await self.photos.get_photo(photo_id)
        if photo is None or photo.owner_id != user_id:
            raise NotFound(f"no photo {photo_id}")
        if photo.deleted_at is None:  # not deleted
            return photo
        if self.clock() - photo.deleted_at > self.retention:
            raise Gone(
                f"photo {photo_id} was deleted more than {self.settings.retention_days} days ago"
            )
        await self.photos.set_deleted(photo, None)
        return photo.with_deleted_at(None)
