"""The home timeline: photos of everyone a user follows, merged from their UserPhoto rows.

Cost does not grow with the followees' whole history:

1. the followee list (one partition) and each followee's newest photo id
   (``user_latest``, read in chunks of 100 keys concurrently) are cached for a few seconds;
2. a lazy k-way merge keeps a heap keyed by an upper bound of each followee's next id
   (at first their newest id); a followee's rows are read only when it reaches the top
   of the heap, and a few of the next candidates are read concurrently with it;
3. each read asks one or two buckets of one UserPhoto row for at most a page of ids.

So a page of 20 reads the rows of roughly the 20 followees who posted most recently,
not of all 1,000, and each such read is one query in the bucket of the followee's newest
photo. The price of the cache: a photo posted through another server process appears in
its followers' timelines CACHE_TTL_S later while they keep reading, and up to STALE_MAX_S
later on the first page after a pause (at once through the same process). "recent" is
newest first with an id cursor; "top" ranks a window of the newest ``TOP_WINDOW`` photos
by likes decayed by age, with a cursor that pins the window, so pages stay stable while
new photos arrive.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from instastore import ids
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.hotcache import TtlCache
from instastore.model import Photo, User
from instastore.paging import Page, decode_top_cursor, encode_top_cursor
from instastore.photos import Photos
from instastore.social import Audience
from instastore.storage.ports import Stores

log = logging.getLogger(__name__)

Order = Literal["top", "recent"]
CACHE_TTL_S = 5.0  # followee lists and newest ids are refreshed after this long...
STALE_MAX_S = 60.0  # ...in the background, serving the old value meanwhile, up to this age
FOLLOWEES_PAGE = 1000  # rows per read of the followee list
MAX_FOLLOWEES = 10_000  # followees considered; beyond this the oldest follows are ignored
PREFETCH = 12  # followees' rows read concurrently with the one at the top of the heap
FIRST_READ = 4  # ids asked of a followee at first: most give a page one or two photos
TOP_WINDOW = 100  # newest candidate photos ranked for "top" (about 5 pages)
GRAVITY = 1.5  # how fast age decays a photo's likes in "top"
RANKED_TTL_S = 10.0  # a ranked "top" window is reused this long (new likes re-rank after it)


class _StaleWhileRevalidate:
    """Entries are fresh for ``fresh_s``, then served stale (and refreshed in the
    background by the caller) until ``max_s``, so a busy reader never waits for a refresh."""

    def __init__(self, fresh_s: float, max_s: float) -> None:
        self.fresh_s = fresh_s
        self.max_s = max_s
        self._items: dict[int, tuple[float, object]] = {}

    def get(self, key: int) -> tuple[object | None, bool]:
        """(value, fresh); (None, False) when absent or too old to serve."""
        hit = self._items.get(key)
        if hit is None:
            return None, False
        age = time.monotonic() - hit[0]
        if age > self.max_s:
            return None, False
        return hit[1], age <= self.fresh_s

    def put(self, key: int, value: object) -> None:
        if len(self._items) > 200_000:
            self._items.clear()
        self._items[key] = (time.monotonic(), value)

    def drop(self, key: int) -> None:
        self._items.pop(key, None)


class Timeline:
    def __init__(
        self,
        stores: Stores,
        settings: Settings,
        photos: Photos,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.stores = stores
        self.settings = settings
        self.photos = photos
        self.clock = clock
        self._followees = _StaleWhileRevalidate(CACHE_TTL_S, STALE_MAX_S)
        self._latest = _StaleWhileRevalidate(CACHE_TTL_S, STALE_MAX_S)
        self._ranked = TtlCache(RANKED_TTL_S)
        self._flights: dict[tuple, asyncio.Future] = {}
        self._refreshing: set[int] = set()
        self._tasks: set[asyncio.Task] = set()

    def _in_background(self, key: int, coro) -> None:
        if key in self._refreshing:
            coro.close()
            return
        self._refreshing.add(key)
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            self._refreshing.discard(key)
            if not t.cancelled() and t.exception() is not None:
                log.warning("timeline cache refresh failed: %s", t.exception())

        task.add_done_callback(done)

    def note_photo(self, owner_id: int, photo_id: int) -> None:
        """A photo was just posted through this process: followers' timelines here see
        it at once (other processes within CACHE_TTL_S)."""
        cached, _ = self._latest.get(owner_id)
        if cached is not None and cached < photo_id:
            self._latest.put(owner_id, photo_id)

    def forget(self, user_id: int) -> None:
        """Drop what is cached for a reader who just followed or unfollowed someone: the
        followee list and the ranked "top" first page."""
        self._followees.drop(user_id)
        self._ranked.drop((user_id, None))

    async def followees(self, user_id: int) -> list[int]:
        cached, fresh = self._followees.get(user_id)
        if cached is not None:
            if not fresh:
                self._in_background(-user_id - 1, self._load_followees(user_id))
            return cached
        return await self._load_followees(user_id)

    async def _load_followees(self, user_id: int) -> list[int]:
        found: list[int] = []
        after = None
        while len(found) < MAX_FOLLOWEES:
            page = await self.stores.metadata.following(user_id, after, FOLLOWEES_PAGE)
            found += page
            if len(page) < FOLLOWEES_PAGE:
                break
            after = page[-1]
        self._followees.put(user_id, found)
        return found

    async def latest(self, user_ids: list[int], reader: int = 0) -> dict[int, int]:
        known: dict[int, int] = {}
        missing, stale = [], []
        for uid in user_ids:
            value, fresh = self._latest.get(uid)
            if value is None:
                missing.append(uid)
                continue
            if not fresh:
                stale.append(uid)
            if value:
                known[uid] = value
        if stale:
            self._in_background(reader, self._load_latest(stale))
        if missing:
            known.update(await self._load_latest(missing))
        return known

    async def _load_latest(self, user_ids: list[int]) -> dict[int, int]:
        fresh = await self.stores.metadata.latest_photo_ids(user_ids)
        for uid in user_ids:
            current, _ = self._latest.get(uid)
            self._latest.put(uid, max(fresh.get(uid, 0), current or 0))
        return {uid: value for uid, value in fresh.items() if value}

    async def merged_ids(self, user_id: int, before: int | None, n: int) -> list[int]:
        """The ``n`` newest photo ids (strictly before ``before``) of the user's followees."""
        followees = await self.followees(user_id)
        latest = await self.latest(followees, reader=user_id)
        ceiling = (before - 1) if before is not None else ids.MAX_ID
        # Heap entries: (-upper bound of the next id, followee, fetched?)
        heap = [
            (-min(newest, ceiling), f, False)
            for f, newest in latest.items()
            if min(newest, ceiling) > 0
        ]
        heapq.heapify(heap)
        rows: dict[int, deque[int]] = {}
        exhausted: set[int] = set()
        out: list[int] = []

        async def read(followee: int, below: int | None, count: int) -> None:
            got = await self.stores.metadata.user_photo_ids(followee, below, count)
            rows[followee] = deque(got)
            if len(got) < count:
                exhausted.add(followee)
            if got:
                heapq.heappush(heap, (-got[0], followee, True))

        first_read = min(n, FIRST_READ)
        while heap and len(out) < n:
            bound, followee, fetched = heapq.heappop(heap)
            if not fetched:
                batch = [(followee, -bound)]
                while heap and len(batch) <= PREFETCH and not heap[0][2]:
                    negative_bound, other, _ = heapq.heappop(heap)
                    batch.append((other, -negative_bound))
                # Strictly below bound + 1: from the followee's newest photo (or the
                # cursor) down, starting in that photo's bucket.
                await asyncio.gather(*(read(f, b + 1, first_read) for f, b in batch))
                continue
            queue = rows[followee]
            out.append(queue.popleft())
            if queue:
                heapq.heappush(heap, (-queue[0], followee, True))
            elif followee not in exhausted:
                await read(followee, out[-1], n)
        return out

    async def page(self, user: User, order: Order, cursor: str | None, limit: int) -> Page[Photo]:
        followees = set(await self.followees(user.id))
        audience = Audience(self.stores, user, self.photos.users)
        audience.assume_following(followees)
        if order == "recent":
            return await self.photos.live_page(
                lambda before, n: self.merged_ids(user.id, before, n),
                cursor,
                limit,
                audience.filter,
            )
        return await self._top(user, audience, cursor, limit)

    async def _top(
        self, user: User, audience: Audience, cursor: str | None, limit: int
    ) -> Page[Photo]:
        limit = max(1, min(limit, self.settings.max_page_size))
        pinned = decode_top_cursor(cursor)
        window_top, offset = pinned if pinned else (None, 0)
        key = (user.id, window_top)
        ranked = self._ranked.get(key)
        if ranked is None:
            # Single flight: concurrent first pages of one reader rank the window once.
            flight = self._flights.get(key)
            if flight is None:
                flight = asyncio.ensure_future(self._rank_window(user, audience, window_top))
                self._flights[key] = flight
                flight.add_done_callback(lambda _: self._flights.pop(key, None))
            window_top, ranked = await asyncio.shield(flight)
            self._ranked.put((user.id, window_top), ranked)
            if pinned is None:
                self._ranked.put(key, (window_top, ranked))
        elif pinned is None:
            window_top, ranked = ranked
        if not ranked:
            return Page([], None)
        page_ids = ranked[offset : offset + limit]
        photos = await self.stores.metadata.get_photos(page_ids)
        page = [
            photos[i] for i in page_ids if i in photos and not photos[i].deleted
        ]  # deleted since ranking
        more = offset + limit < len(ranked)
        return Page(page, encode_top_cursor(window_top, offset + limit) if more else None)

    async def _rank_window(
        self, user: User, audience: Audience, window_top: int | None
    ) -> tuple[int, list[int]]:
        """The ids of the newest TOP_WINDOW visible photos up to ``window_top``, best first.
        Ranked once and kept for RANKED_TTL_S, so paging through "top" is cheap and stable."""
        candidates = await self.merged_ids(
            user.id, window_top + 1 if window_top else None, TOP_WINDOW
        )
        if not candidates:
            return window_top or 0, []
        window_top = window_top or candidates[0]
        photos = await self.stores.metadata.get_photos(candidates)
        live = await audience.filter(
            photos[i] for i in candidates if i in photos and not photos[i].deleted
        )
        likes = await self.stores.metadata.like_counts([p.id for p in live])
        now_ms = self.clock().timestamp() * 1000

        def score(photo: Photo) -> tuple[float, int]:
            age_hours = max(0.0, (now_ms - ids.unix_ms_of(photo.id)) / 3_600_000)
            return ((likes[photo.id] + 1) / (age_hours + 2) ** GRAVITY, photo.id)

        return window_top, [p.id for p in sorted(live, key=score, reverse=True)]
