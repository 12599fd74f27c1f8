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
while new photos arrive. When the window is used up "top" falls through to the older
photos, newest first, from strictly below the oldest candidate the window read, through
the same bounded "recent" machinery (``page_reads``, scan cursors), down to the reader's
oldest visible photo: a reader scrolling "top" sees every photo "recent" shows, once.

The followee list is read whole (``FOLLOWEES_PAGE`` rows a read), never cut short: the
``max_following`` setting (``instastore.social``) bounds it, and nothing here trusts the
cap to hold exactly. Cache keys are small frozen dataclasses, one class per kind of key,
so two kinds never collide.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from instastore import merge, ranking
from instastore.background import SingleFlight
from instastore.clock import utcnow
from instastore.config import Settings
from instastore.errors import BadCursor
from instastore.fanout import Fanout
from instastore.hotcache import TtlCache
from instastore.ids import MAX_ID
from instastore.limits import (
    FOLLOWEES_PAGE,
    NEWEST_REFRESH_KEYS,
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
from instastore.storage.ports import AccountStore, FollowGraph, InboxStore, LikeStore, PhotoStore

log = logging.getLogger(__name__)

Order = Literal["top", "recent"]

INBOX = 0  # the reader's inbox, as a source of the merge beside its followees (ids > 0)


@dataclass(frozen=True)
class FolloweesOf:
    """Key: the followee list of a reader."""

    reader_id: int


@dataclass(frozen=True)
class OwedTo:
    """Key: the follows whose followee's recent photos a reader's inbox still lacks."""

    reader_id: int


@dataclass(frozen=True)
class NewestFor:
    """Key: a background refresh of the newest ids of a reader's followees."""

    reader_id: int


@dataclass(frozen=True)
class RankedWindow:
    """Key: a reader's current ranked "top" window."""

    reader_id: int


@dataclass(frozen=True)
class Window:
    """A ranked "top" window: its visible candidates, best first; where the pages after
    it go on, newest first (strictly below the oldest candidate it read; None: it read
    every photo of the reader's followees); and the followees' rows ranking it read."""

    ranked: tuple[int, ...]
    tail: merge.Position | None
    reads: int = 0


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
        top_window: int = TOP_WINDOW,
        followees_page: int = FOLLOWEES_PAGE,
        inbox: InboxStore | None = None,
        fanout: Fanout | None = None,
    ) -> None:
        self.graph = graph  # the followee lists
        self.photo_store = photo_store  # newest ids, photo rows, records
        self.likes = likes  # the "top" ranking
        self.accounts = accounts  # owners, for who may see what
        self.settings = settings
        self.photos = photos
        self.clock = clock
        self.page_reads = page_reads  # followees' rows a "recent" page may read
        self.top_window = top_window  # newest candidates a "top" window ranks
        self.followees_page = followees_page  # rows per read of a followee list
        # Without both, every page merges the followees' rows (the inboxes are not read).
        self.inbox = inbox
        self.fanout = (
            fanout if inbox is not None and fanout is not None and fanout.enabled else None
        )
        # Seals its cursors: by default those of ``photos``, the same deployment's.
        self.cursors = cursors or photos.cursors
        # Who may see what, for a reader (the services give the one with blocks and
        # takedowns: ``Social.audience``).
        self.audience_of: Callable[[User], Audience] = lambda user: Audience(
            accounts, graph, user, photos.users
        )
        self._followees: TtlCache[FolloweesOf, list[int]] = _stale_while_revalidate("followees")
        self._owed: TtlCache[OwedTo, list[tuple[int, datetime]]] = _stale_while_revalidate(
            "inbox_backfills"
        )
        # A user's newest photo id and fan-out mark ((0, 0): no photo), by user id: a
        # plain int key, as a page looks up every followee's (a dataclass key's hash,
        # in Python, took twice as long at 7,500 followees).
        self._latest: TtlCache[int, tuple[int, int]] = _stale_while_revalidate("newest_ids")
        self._ranked: TtlCache[RankedWindow, Window] = TtlCache("ranked_timelines", RANKED_TTL_S)
        self._flights: dict[RankedWindow, asyncio.Future[Window]] = {}
        # Refreshes of stale cache entries, one per key at a time.
        self._refreshes = SingleFlight(_refresh_failed)

    def note_photo(self, owner_id: int, photo_id: int) -> None:
        """A photo was just posted through this process: followers' timelines here see
        it at once (other processes within TIMELINE_FRESH_S)."""
        cached, _ = self._latest.lookup(owner_id)
        if cached is not None and cached[0] < photo_id:
            self._latest.put(owner_id, (photo_id, cached[1]))

    def forget(self, user_id: int) -> None:
        """Drop what is cached for a reader who just followed or unfollowed someone: the
        followee list, the backfills its inbox is owed and the ranked "top" first page."""
        self._followees.drop(FolloweesOf(user_id))
        self._owed.drop(OwedTo(user_id))
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
                self._refreshes.start(FolloweesOf(user_id), lambda: self._load_followees(user_id))
            return cached, fresh
        return await self._load_followees(user_id), True

    async def _load_followees(self, user_id: int) -> list[int]:
        """The whole followee list, however long: the ``max_following`` setting bounds
        it, but a few follows racing on several hosts pass the cap, and an operator may
        lower it below what users follow already; neither hides anyone here."""
        found: list[int] = []
        after = None
        while True:
            page = await self.graph.following(user_id, after, self.followees_page)
            found += page
            if len(page) < self.followees_page:
                break
            after = page[-1]
        self._followees.put(FolloweesOf(user_id), found)
        return found

    async def latest(self, user_ids: list[int], reader: int = 0) -> dict[int, tuple[int, int]]:
        """Each user's newest photo id and fan-out mark (users without photos left out),
        from the cache; missing ones read now, stale ones refreshed in the background,
        ``NEWEST_REFRESH_KEYS`` of them at a time (the next page starts the next slice)."""
        known: dict[int, tuple[int, int]] = {}
        missing, stale = [], []
        looked_up = self._latest.lookup_many(user_ids)
        for uid, (value, fresh) in zip(user_ids, looked_up, strict=True):
            if value is None:
                missing.append(uid)
                continue
            if not fresh:
                stale.append(uid)
            if value[0]:
                known[uid] = value
        if stale:
            stale = stale[:NEWEST_REFRESH_KEYS]
            self._refreshes.start(NewestFor(reader), lambda: self._load_latest(stale))
        if missing:
            known.update(await self._load_latest(missing))
        return known

    async def _load_latest(self, user_ids: list[int]) -> dict[int, tuple[int, int]]:
        if self.inbox is not None:
            fresh = await self.inbox.latest_marks(user_ids)
        else:
            fresh = {
                u: (p, 0) for u, p in (await self.photo_store.latest_photo_ids(user_ids)).items()
            }
        cached = self._latest.lookup_many(user_ids)
        for uid, (current, _) in zip(user_ids, cached, strict=True):
            newest, mark = fresh.get(uid, (0, 0))
            if current is not None:  # a photo noted here since the read is kept
                newest = max(newest, current[0])
            self._latest.put(uid, (newest, mark))
        return {uid: value for uid, value in fresh.items() if value[0]}

    async def _owed_to(self, user_id: int) -> list[tuple[int, datetime]]:
        """The follows whose followee's recent photos the reader's inbox lacks (cached as
        the followee list is); each one's backfill is started here, in the background."""
        assert self.inbox is not None and self.fanout is not None
        key = OwedTo(user_id)
        owed, fresh = self._owed.lookup(key)
        if owed is None:
            owed = await self._load_owed(user_id)
        elif not fresh:
            self._refreshes.start(key, lambda: self._load_owed(user_id))
        for followee, since in owed:
            self.fanout.schedule_backfill(user_id, followee, since)
        return owed

    async def _load_owed(self, user_id: int) -> list[tuple[int, datetime]]:
        assert self.inbox is not None
        owed = await self.inbox.inbox_backfills(user_id)
        self._owed.put(OwedTo(user_id), owed)
        return owed

    async def merged(
        self, user_id: int, at: merge.Position, n: int, budget: int = PAGE_READS
    ) -> merge.Merged:
        """The next ``n`` photo ids from ``at`` of the user's followees, in at most
        ``budget`` reads of rows (fewer ids when it runs out).

        Inside the inbox window the sources are the reader's inbox and, from their own
        rows, the followees the inbox may lack photos of: those whose newest id is past
        their fan-out mark (only what is above the mark), and new follows not yet
        backfilled (all of the window). Below the window, and for a deep scan, every
        followee's rows, as without inboxes. The two give the same ids: the inbox only
        saves reads. A page that ends the window goes on below it in the same call."""
        marks = await self.latest(await self.followees(user_id), reader=user_id)
        if self.fanout is not None and at.scanned is None:
            floor = self.fanout.window_floor()
            if at.before is None or at.before - 1 > floor:
                owed = {f for f, _ in await self._owed_to(user_id)}
                got = await self._from_inbox(user_id, marks, owed, floor, at, n, budget)
                if got is not None:
                    if got.after is not None:
                        return got
                    below = merge.Position(floor + 1)
                    if len(got.ids) >= n or got.reads >= budget:
                        return merge.Merged(got.ids, below, got.reads)
                    rest = await self._from_rows(marks, below, n - len(got.ids), budget - got.reads)
                    return merge.Merged(got.ids + rest.ids, rest.after, got.reads + rest.reads)
        return await self._from_rows(marks, at, n, budget)

    async def _from_rows(
        self, marks: dict[int, tuple[int, int]], at: merge.Position, n: int, budget: int
    ) -> merge.Merged:
        newest = {f: top for f, (top, _) in marks.items()}
        return await merge.merge_timeline(
            newest, self.photo_store.user_photo_ids, at, n, budget=budget
        )

    async def _from_inbox(
        self,
        user_id: int,
        marks: dict[int, tuple[int, int]],
        owed: set[int],
        floor: int,
        at: merge.Position,
        n: int,
        budget: int,
    ) -> merge.Merged | None:
        """The merge of the inbox and the followees it may lack, above ``floor``; None
        when more of them are tied at the cursor than the budget reads (a deep scan's
        work: the caller merges every followee's rows instead)."""
        assert self.inbox is not None
        inbox = self.inbox
        floors = {INBOX: floor}
        for followee, (top, mark) in marks.items():
            lowest = floor if followee in owed else max(mark, floor)
            if top > lowest:
                floors[followee] = lowest
        ceiling = MAX_ID if at.before is None else at.before - 1
        if sum(1 for f in floors if f != INBOX and marks[f][0] >= ceiling) >= budget:
            return None

        async def rows(source: int, before: int | None, count: int) -> list[int]:
            if source == INBOX:  # a page's worth at once: one read serves most pages
                return await inbox.inbox_ids(user_id, before, floor, max(count, n + 1))
            got = await self.photo_store.user_photo_ids(source, before, count)
            return [i for i in got if i > floors[source]]

        sources = {f: (MAX_ID if f == INBOX else marks[f][0]) for f in floors}
        return await merge.merge_timeline(sources, rows, at, n, budget=budget)

    async def page(self, user: User, order: Order, cursor: str | None, limit: int) -> Page[Photo]:
        followees, fresh = await self._followees_of(user.id)
        audience = self.audience_of(user)
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
        found, after = await self._chronological(user, audience, at, limit, self.page_reads)
        return Page(found, None if after is None else _recent_cursor(self.cursors, after, scope))

    async def _chronological(
        self, user: User, audience: Audience, at: merge.Position, limit: int, budget: int
    ) -> tuple[list[Photo], merge.Position | None]:
        """Up to ``limit`` visible photos from ``at``, newest first, in at most ``budget``
        reads of followees' rows; and where the next page starts (None: no more)."""
        found: list[Photo] = []
        left = budget
        for _ in range(OVERFETCH_ROUNDS):
            if left <= 0:
                break
            got = await self.merged(user.id, at, limit + 1 - len(found), left)
            left -= got.reads
            found += await self._visible(user, audience, got.ids)
            if len(found) > limit:
                return found[:limit], merge.Position(found[limit - 1].id)
            if got.after is None:
                return found, None
            at = got.after
        return found, at

    async def _top(
        self, user: User, audience: Audience, cursor: str | None, limit: int
    ) -> Page[Photo]:
        """The reader's ranked window, a page at a time, then the older photos newest
        first. The first page ranks the window (or takes it from the cache); its cursor
        carries the rest of the window's ids and where the older photos start, so later
        window pages read no followee's rows and stay stable while new photos and likes
        arrive. Once the window is used up, each page is a "recent" page from below the
        window's oldest candidate, its cursor still sealed for "timeline top"."""
        limit = clamp_limit(limit, self.settings.max_page_size)
        scope = Scope("timeline top", (user.id,))
        carried = _top_parts(self.cursors.decode_top_cursor(cursor, scope), cursor)
        if carried is None:
            window, ranked_here = await self._ranked_window(user, audience)
            # What ranking left this page, when this request ranked (a cached window or
            # another request's ranking cost this page nothing).
            budget = self.page_reads - (window.reads if ranked_here else 0)
        else:
            ranked, tail = carried
            window = Window(ranked, _position(tail) if tail else None)
            budget = self.page_reads
        if window.ranked:
            # Deleted since ranking, or no longer visible to this reader (an account turned
            # private, a follow ended: a window outlives such a change), are left out.
            page = await self._visible(user, audience, window.ranked[:limit])
            return Page(page, self._top_cursor(window.ranked[limit:], window.tail, scope))
        if window.tail is None:
            return Page([], None)
        older, after = await self._chronological(user, audience, window.tail, limit, budget)
        return Page(older, self._top_cursor((), after, scope))

    async def _visible(
        self, user: User, audience: Audience, photo_ids: Sequence[int]
    ) -> list[Photo]:
        """The photos of ``photo_ids`` the reader may see in its timeline: live, visible
        to it, and of an account it follows (an inbox keeps the rows of a followee it
        has since unfollowed until they expire)."""
        following = set(await self.followees(user.id))
        live = [p for p in await self.photos.live(photo_ids) if p.owner_id in following]
        return await audience.filter(live)

    def _top_cursor(
        self, ranked: tuple[int, ...], tail: merge.Position | None, scope: Scope
    ) -> str | None:
        if not ranked and tail is None:
            return None
        tail_numbers = _numbers(tail) if tail else ()
        return self.cursors.encode_top_cursor([len(ranked), *ranked, *tail_numbers], scope)

    async def _ranked_window(self, user: User, audience: Audience) -> tuple[Window, bool]:
        """The reader's current window, from the cache or ranked now, and whether this
        call ranked it; concurrent first pages of one reader rank it once (single
        flight)."""
        key = RankedWindow(user.id)
        cached = self._ranked.get(key)
        if cached is not None:
            return cached, False
        flight = self._flights.get(key)
        ranks = flight is None
        if flight is None:
            flight = asyncio.ensure_future(self._rank_window(user, audience))
            self._flights[key] = flight
            flight.add_done_callback(lambda _: self._flights.pop(key, None))
        window = await asyncio.shield(flight)
        self._ranked.put(key, window)
        return window, ranks

    async def _rank_window(self, user: User, audience: Audience) -> Window:
        """The ids of the visible ones among the newest ``top_window`` photos, best first
        (as many as the merge reaches in ``page_reads`` reads), and where the older ones
        start. Ranked once and kept for RANKED_TTL_S."""
        merged = await self.merged(user.id, merge.Position(None), self.top_window, self.page_reads)
        live = await self._visible(user, audience, merged.ids)
        likes = await self.likes.like_counts([p.id for p in live])
        return Window(tuple(ranking.rank(live, likes, self.clock())), merged.after, merged.reads)


def _position(values: tuple[int, ...] | None) -> merge.Position:
    """The merge position a "recent" cursor's numbers stand for."""
    if values is None:
        return merge.Position(None)
    if len(values) == 1:
        return merge.Position(values[0])
    before, scanned, size, *found = values
    return merge.Position(before or None, scanned, size, tuple(found))


def _numbers(at: merge.Position) -> tuple[int, ...]:
    """A merge position as a cursor carries it: (before,) for a plain position, else
    a deep scan's numbers (``_position`` reads both back)."""
    if at.scanned is None:
        assert at.before is not None  # a plain position past the first page names its id
        return (at.before,)
    return (at.before or 0, at.scanned, at.size, *at.found)


def _top_parts(
    values: tuple[int, ...] | None, cursor: str | None
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """A "top" cursor's numbers as ``Timeline._top_cursor`` laid them out: (the window's
    ids still to show, best first; where the older photos start, as ``_numbers`` gives a
    position, empty when there are none). At most 99 ids and a plain position or an
    empty scan's three numbers, or no ids and any position: well under a cursor's size."""
    if values is None:
        return None
    count = values[0] if values else -1
    tail = values[1 + count :]
    if not 0 <= count < len(values) or len(tail) == 2 or (len(tail) == 1 and not tail[0]):
        raise BadCursor(f"cursor {(cursor or '')[:40]!r} is not a top-timeline cursor")
    return values[1 : 1 + count], tail


def _recent_cursor(cursors: Cursors, at: merge.Position, scope: Scope) -> str:
    if at.scanned is None:
        return cursors.encode_cursor(_numbers(at)[0], scope)
    return cursors.encode_scan_cursor(_numbers(at), scope)


def _refresh_failed(key: object, exc: Exception) -> None:
    log.warning("timeline cache refresh of %s failed: %s", key, exc)


def _stale_while_revalidate(name: str) -> TtlCache[Any, Any]:
    """A timeline cache: fresh for TIMELINE_FRESH_S, then served stale (and refreshed in
    the background) up to TIMELINE_STALE_MAX_S."""
    return TtlCache(
        name, TIMELINE_FRESH_S, TIMELINE_CACHE_ITEMS, stale_until_s=TIMELINE_STALE_MAX_S
    )
