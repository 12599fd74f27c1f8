"""The home timeline service: whom a user follows, their newest ids, caches, and pages.

The merge itself is ``instastore.merge`` (a pure function over a row reader) and what
"top" means is ``instastore.ranking``; this module wires them to the stores and keeps
the caches that make a page cheap at 1,000 followees:

1. the followee list (one partition) and each followee's newest photo id
   (``user_latest``, read in chunks of 100 keys concurrently) are cached for
   ``TIMELINE_FRESH_S`` and then refreshed in the background, served stale meanwhile up
   to ``TIMELINE_STALE_MAX_S``;
2. a ranked "top" window is kept ``RANKED_TTL_S``, computed once for concurrent readers.

The price of the cache: a photo posted through another server process appears in its
followers' timelines TIMELINE_FRESH_S later while they keep reading, and up to
TIMELINE_STALE_MAX_S later on the first page after a pause (at once through the same
process). "recent" is newest first with an id cursor; "top" ranks a window of the newest
``TOP_WINDOW`` photos, and its cursor carries the rest of the window, so pages stay stable
while new photos arrive. Cache keys are small frozen dataclasses, one class per kind of key, so two
kinds never collide.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from instastore import merge, ranking
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.hotcache import TtlCache
from instastore.limits import (
    FOLLOWEES_PAGE,
    MAX_FOLLOWEES,
    OVERFETCH_ROUNDS,
    PAGE_READS,
    RANKED_TTL_S,
    TIMELINE_CACHE_ITEMS,
    TIMELINE_FRESH_S,
    TIMELINE_STALE_MAX_S,
    TOP_WINDOW,
)
from instastore.model import Photo, User
from instastore.paging import Cursors, Page, Scope, clamp_limit
from instastore.photos import Photos
from instastore.social import Audience
from instastore.storage.ports import AccountStore, FollowGraph, LikeStore, PhotoStore

log = logging.getLogger(__name__)

Order = Literal["top", "recent"]


@dataclass(frozen=True)
class FolloweesOf:
    """Key: the followee list of a reader."""

    reader_id: int


@dataclass(frozen=True)
class NewestOf:
    """Key: a user's newest photo id (0: none)."""

    user_id: int


@dataclass(frozen=True)
class NewestFor:
    """Key: a background refresh of the newest ids of a reader's followees."""

    reader_id: int


@dataclass(frozen=True)
class RankedWindow:
    """Key: a reader's current ranked "top" window."""

    reader_id: int


class Timeline:
    def __init__(
        self,
        graph: FollowGraph,
        photo_store: PhotoStore,
        likes: LikeStore,
        accounts: AccountStore,
        settings: Settings,
        photos: Photos,
        clock: Callable[[], datetime] = utcnow,
        page_reads: int = PAGE_READS,
        cursors: Cursors | None = None,
    ) -> None:
        self.graph = graph  # the followee lists
        self.photo_store = photo_store  # newest ids, photo rows, records
        self.likes = likes  # the "top" ranking
        self.accounts = accounts  # owners, for who may see what
        self.settings = settings
        self.photos = photos
        self.clock = clock
        self.page_reads = page_reads  # followees' rows a "recent" page may read
        # Seals its cursors: by default those of ``photos``, the same deployment's.
        self.cursors = cursors or photos.cursors
        self._followees: TtlCache[FolloweesOf, list[int]] = _stale_while_revalidate("followees")
        self._latest: TtlCache[NewestOf, int] = _stale_while_revalidate("newest_ids")
        self._ranked: TtlCache[RankedWindow, list[int]] = TtlCache("ranked_timelines", RANKED_TTL_S)
        self._flights: dict[RankedWindow, asyncio.Future[list[int]]] = {}
        self._refreshing: set[FolloweesOf | NewestFor] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def _in_background(self, key: FolloweesOf | NewestFor, coro: Coroutine[Any, Any, Any]) -> None:
        if key in self._refreshing:
            coro.close()
            return
        self._refreshing.add(key)
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            self._refreshing.discard(key)
            if not t.cancelled() and t.exception() is not None:
                log.warning("timeline cache refresh failed: %s", t.exception())

        task.add_done_callback(done)

    def note_photo(self, owner_id: int, photo_id: int) -> None:
        """A photo was just posted through this process: followers' timelines here see
        it at once (other processes within TIMELINE_FRESH_S)."""
        cached, _ = self._latest.lookup(NewestOf(owner_id))
        if cached is not None and cached < photo_id:
            self._latest.put(NewestOf(owner_id), photo_id)

    def forget(self, user_id: int) -> None:
        """Drop what is cached for a reader who just followed or unfollowed someone: the
        followee list and the ranked "top" first page."""
        self._followees.drop(FolloweesOf(user_id))
        self._ranked.drop(RankedWindow(user_id))

    async def followees(self, user_id: int) -> list[int]:
        return (await self._followees_of(user_id))[0]

    async def _followees_of(self, user_id: int) -> tuple[list[int], bool]:
        """The followee list, and whether it is fresh (read within TIMELINE_FRESH_S): a
        stale one is served while a refresh runs, to choose candidates, never to decide
        who may see a private account's photos."""
        cached, fresh = self._followees.lookup(FolloweesOf(user_id))
        if cached is not None:
            if not fresh:
                self._in_background(FolloweesOf(user_id), self._load_followees(user_id))
            return cached, fresh
        return await self._load_followees(user_id), True

    async def _load_followees(self, user_id: int) -> list[int]:
        found: list[int] = []
        after = None
        while len(found) < MAX_FOLLOWEES:
            page = await self.graph.following(user_id, after, FOLLOWEES_PAGE)
            found += page
            if len(page) < FOLLOWEES_PAGE:
                break
            after = page[-1]
        self._followees.put(FolloweesOf(user_id), found)
        return found

    async def latest(self, user_ids: list[int], reader: int = 0) -> dict[int, int]:
        """Each user's newest photo id (users without photos left out), from the cache;
        stale entries are refreshed in the background, missing ones read now."""
        known: dict[int, int] = {}
        missing, stale = [], []
        for uid in user_ids:
            value, fresh = self._latest.lookup(NewestOf(uid))
            if value is None:
                missing.append(uid)
                continue
            if not fresh:
                stale.append(uid)
            if value:
                known[uid] = value
        if stale:
            self._in_background(NewestFor(reader), self._load_latest(stale))
        if missing:
            known.update(await self._load_latest(missing))
        return known

    async def _load_latest(self, user_ids: list[int]) -> dict[int, int]:
        fresh = await self.photo_store.latest_photo_ids(user_ids)
        for uid in user_ids:
            current, _ = self._latest.lookup(NewestOf(uid))
            self._latest.put(NewestOf(uid), max(fresh.get(uid, 0), current or 0))
        return {uid: value for uid, value in fresh.items() if value}

    async def merged(
        self, user_id: int, at: merge.Position, n: int, budget: int = PAGE_READS
    ) -> merge.Merged:
        """The next ``n`` photo ids from ``at`` of the user's followees, in at most
        ``budget`` reads of their rows (fewer ids when it runs out)."""
        newest = await self.latest(await self.followees(user_id), reader=user_id)
        return await merge.merge_timeline(
            newest, self.photo_store.user_photo_ids, at, n, budget=budget
        )

    async def page(self, user: User, order: Order, cursor: str | None, limit: int) -> Page[Photo]:
        followees, fresh = await self._followees_of(user.id)
        audience = Audience(self.accounts, self.graph, user, self.photos.users)
        if fresh:  # else each private owner's follow is read (another host may have ended it)
            audience.assume_following(followees)
        if order == "recent":
            return await self._recent(user, audience, cursor, limit)
        return await self._top(user, audience, cursor, limit)

    async def _recent(
        self, user: User, audience: Audience, cursor: str | None, limit: int
    ) -> Page[Photo]:
        """Newest first; deleted and invisible photos left out. However deep the cursor,
        the page reads at most ``page_reads`` followees' rows in all: it may end short,
        or empty while a deep scan is under way, with a cursor that goes on from there."""
        limit = clamp_limit(limit, self.settings.max_page_size)
        scope = Scope("timeline recent", (user.id,))
        at = _position(self.cursors.decode_recent_cursor(cursor, scope))
        found: list[Photo] = []
        left = self.page_reads
        for _ in range(OVERFETCH_ROUNDS):
            got = await self.merged(user.id, at, limit + 1 - len(found), left)
            left -= got.reads
            found += await audience.filter(await self.photos.live(got.ids))
            if len(found) > limit:
                return Page(found[:limit], self.cursors.encode_cursor(found[limit - 1].id, scope))
            if got.after is None:
                return Page(found, None)
            at = got.after
            if left <= 0:
                break
        return Page(found, _recent_cursor(self.cursors, at, scope))

    async def _top(
        self, user: User, audience: Audience, cursor: str | None, limit: int
    ) -> Page[Photo]:
        """The reader's ranked window, a page at a time: the first page ranks it (or takes
        it from the cache), and its cursor carries the rest of the window's ids, so later
        pages read no followee's rows and stay stable while new photos and likes arrive."""
        limit = clamp_limit(limit, self.settings.max_page_size)
        scope = Scope("timeline top", (user.id,))
        carried = self.cursors.decode_top_cursor(cursor, scope)
        ranked = list(carried) if carried is not None else await self._ranked_window(user, audience)
        # Deleted since ranking, or no longer visible to this reader (an account turned
        # private, a follow ended: a window outlives such a change), are left out.
        page = await audience.filter(await self.photos.live(ranked[:limit]))
        rest = ranked[limit:]
        return Page(page, self.cursors.encode_top_cursor(rest, scope) if rest else None)

    async def _ranked_window(self, user: User, audience: Audience) -> list[int]:
        """The reader's current window, from the cache or ranked now; concurrent first
        pages of one reader rank it once (single flight)."""
        key = RankedWindow(user.id)
        cached = self._ranked.get(key)
        if cached is not None:
            return cached
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._rank_window(user, audience))
            self._flights[key] = flight
            flight.add_done_callback(lambda _: self._flights.pop(key, None))
        ranked = await asyncio.shield(flight)
        self._ranked.put(key, ranked)
        return ranked

    async def _rank_window(self, user: User, audience: Audience) -> list[int]:
        """The ids of the newest TOP_WINDOW visible photos, best first (as many as the
        merge reaches in ``page_reads`` reads). Ranked once and kept for RANKED_TTL_S."""
        merged = await self.merged(user.id, merge.Position(None), TOP_WINDOW, self.page_reads)
        live = await audience.filter(await self.photos.live(merged.ids))
        likes = await self.likes.like_counts([p.id for p in live])
        return ranking.rank(live, likes, self.clock())


def _position(values: tuple[int, ...] | None) -> merge.Position:
    """The merge position a "recent" cursor's numbers stand for."""
    if values is None:
        return merge.Position(None)
    if len(values) == 1:
        return merge.Position(values[0])
    before, scanned, size, *found = values
    return merge.Position(before or None, scanned, size, tuple(found))


def _recent_cursor(cursors: Cursors, at: merge.Position, scope: Scope) -> str:
    if at.scanned is None:
        assert at.before is not None  # a plain position past the first page names its id
        return cursors.encode_cursor(at.before, scope)
    return cursors.encode_scan_cursor([at.before or 0, at.scanned, at.size, *at.found], scope)


def _stale_while_revalidate(name: str) -> TtlCache[Any, Any]:
    """A timeline cache: fresh for TIMELINE_FRESH_S, then served stale (and refreshed in
    the background) up to TIMELINE_STALE_MAX_S."""
    return TtlCache(
        name, TIMELINE_FRESH_S, TIMELINE_CACHE_ITEMS, stale_until_s=TIMELINE_STALE_MAX_S
    )
