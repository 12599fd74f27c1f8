"""The home timeline on both adapters: the merge over the real stores' UserPhoto rows,
whose ids span several time buckets, pages through exactly the sorted merge of every
followee's photos (no duplicates, no gaps), across prefetch batches and with followees
that never posted; "recent" pages leave deleted photos out; a page reads no more
followees' rows than its budget, whatever its cursor, and paging on gives every photo.
"top" ranks its window, then goes on newest first down to the oldest visible photo.
Following is capped by ``max_following``; the timeline reads every followee all the same."""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instastore import ids
from instastore.errors import LimitReached
from instastore.limits import PREFETCH
from instastore.merge import Position
from instastore.model import User, Visibility
from instastore.paging import Scope
from instastore.photos import Photos
from instastore.social import Social
from instastore.timeline import Timeline

from ..factories import make_photo, new_id

BUCKET_MS = 1 << (ids.BUCKET_SHIFT - ids.TIME_SHIFT)
FOLLOWEES = PREFETCH * 2 + 3  # more than two batches of first reads


def timeline_over(stores, settings, photos: Photos, rows=None, **options) -> Timeline:
    """A Timeline over the stores and ``photos`` (their cursors with it); ``rows``: what it
    reads followees' rows from, the photo store unless given (``CountedRows``)."""
    return Timeline(
        stores.graph,
        rows or stores.photos,
        stores.likes,
        stores.accounts,
        settings,
        photos,
        **options,
    )


async def followed_photos(stores, reader: User) -> tuple[list[int], set[int]]:
    """Photos of the reader's followees over four buckets; (their ids newest first,
    the ids of the deleted ones). Three followees never posted."""
    tag = uuid.uuid4().hex[:8]
    rng = random.Random(tag)
    now = datetime.now(UTC)
    posted: list[int] = []
    deleted: set[int] = set()
    for n in range(FOLLOWEES):
        followee = User(new_id(), f"f{n}_{tag}", "x")
        await stores.accounts.create_user(followee)
        await stores.graph.follow(reader.id, followee.id, now)
        for _ in range(rng.choice([0, 0, 1, 2, 3]) if n >= 3 else 0):
            at_ms = ids.now_ms() - rng.randrange(4 * BUCKET_MS)
            photo = make_photo(followee.id, "p", photo_id=new_id(at_ms))
            await stores.photos.save_photo(photo, [])
            posted.append(photo.id)
            if rng.random() < 0.2:
                await stores.photos.set_deleted(photo, now)
                deleted.add(photo.id)
    return sorted(posted, reverse=True), deleted


async def test_merged_ids_page_through_the_sorted_merge_across_buckets(stores, adapter_settings):
    reader = User(new_id(), f"reader_{uuid.uuid4().hex[:8]}", "x")
    await stores.accounts.create_user(reader)
    expected, deleted = await followed_photos(stores, reader)
    assert len({ids.bucket_of(i) for i in expected}) >= 3
    photos = Photos(stores.photos, stores.search, adapter_settings)
    timeline = timeline_over(stores, adapter_settings, photos)
    for size in (1, 4, 9, 100):
        pages: list[list[int]] = []
        at: Position | None = Position(None)
        while at is not None:
            merged = await timeline.merged(reader.id, at, size)
            pages.append(merged.ids)
            at = merged.after
        assert [i for page in pages for i in page] == expected, size
        assert all(len(page) == size for page in pages[:-1])

    live, cursor = [], None
    while True:
        page = await timeline.page(reader, "recent", cursor, 4)
        live += [p.id for p in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert live == [i for i in expected if i not in deleted]


class CountedRows:
    """A store whose followee-row reads are counted (everything else is the store's)."""

    def __init__(self, store) -> None:
        self.store = store
        self.reads = 0

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    async def user_photo_ids(self, user_id: int, before: int | None, limit: int) -> list[int]:
        self.reads += 1
        return await self.store.user_photo_ids(user_id, before, limit)


async def test_a_recent_page_reads_at_most_its_budget_and_paging_goes_on(stores, adapter_settings):
    """With a budget of 3 reads a page, 24 followees who posted are more than any page
    may read below a cursor: pages end short or, while a deep scan is under way, empty,
    and paging on gives exactly the live photos, newest first."""
    reader = User(new_id(), f"reader_{uuid.uuid4().hex[:8]}", "x")
    await stores.accounts.create_user(reader)
    expected, deleted = await followed_photos(stores, reader)
    photos = Photos(stores.photos, stores.search, adapter_settings)
    counted = CountedRows(stores.photos)
    timeline = timeline_over(stores, adapter_settings, photos, rows=counted, page_reads=3)
    live, cursor, sizes = [], None, []
    while True:
        counted.reads = 0
        page = await timeline.page(reader, "recent", cursor, 4)
        assert counted.reads <= 3
        live += [p.id for p in page.items]
        sizes.append(len(page.items))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert live == [i for i in expected if i not in deleted]
    assert 0 in sizes[:-1]  # a deep scan ran: pages went on with nothing in them


async def test_top_pages_after_the_first_read_no_followee_rows(stores, adapter_settings):
    """The first "top" page ranks the window within the budget; its cursor carries the
    rest of the window, so later pages, in any process, read no followee's rows (however
    many followees posted since) and every live photo of the window comes once."""
    reader = User(new_id(), f"reader_{uuid.uuid4().hex[:8]}", "x")
    await stores.accounts.create_user(reader)
    expected, deleted = await followed_photos(stores, reader)
    photos = Photos(stores.photos, stores.search, adapter_settings)
    counted = CountedRows(stores.photos)
    timeline = timeline_over(stores, adapter_settings, photos, rows=counted)
    page = await timeline.page(reader, "top", None, 3)
    assert 0 < counted.reads <= timeline.page_reads
    shown = [p.id for p in page.items]
    while page.next_cursor is not None:
        counted.reads = 0
        # Another process: no cached window there, the cursor alone carries it.
        other_process = timeline_over(stores, adapter_settings, photos, rows=counted)
        page = await other_process.page(reader, "top", page.next_cursor, 3)
        assert counted.reads == 0
        shown += [p.id for p in page.items]
    assert sorted(shown) == sorted(i for i in expected if i not in deleted)


async def walk(timeline: Timeline, reader: User, order: str, limit: int) -> list[int]:
    """Every page of the reader's timeline in ``order``, followed to the end: the ids."""
    shown: list[int] = []
    cursor = None
    for _ in range(1000):
        page = await timeline.page(reader, order, cursor, limit)  # type: ignore[arg-type]
        shown += [p.id for p in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return shown
    raise AssertionError("the timeline never ended")


async def test_top_goes_on_newest_first_past_its_window(stores, adapter_settings):
    """With a window of 5, "top" shows the window's live photos (ranked), then every older
    live photo newest first, each once; the walk ends with no cursor. The window's
    candidates are the 5 newest photos, deleted ones too (they are left out when shown)."""
    reader = User(new_id(), f"reader_{uuid.uuid4().hex[:8]}", "x")
    await stores.accounts.create_user(reader)
    expected, deleted = await followed_photos(stores, reader)
    photos = Photos(stores.photos, stores.search, adapter_settings)
    timeline = timeline_over(stores, adapter_settings, photos, top_window=5)
    live = [i for i in expected if i not in deleted]
    window = [i for i in expected[:5] if i not in deleted]
    for limit in (2, 3, 100):
        shown = await walk(timeline, reader, "top", limit)
        assert sorted(shown[: len(window)]) == sorted(window), limit
        assert shown[len(window) :] == live[len(window) :], limit
    assert await walk(timeline, reader, "recent", 4) == live


async def test_a_top_cursor_made_before_the_fall_through_still_pages(stores, adapter_settings):
    """A "top" cursor of the layout made before "top" went on past its window (kind
    ``t``: the window's ids still to show, nothing else) is still read after an upgrade:
    it shows those ids and ends, as it did; it is not a 400."""
    reader = User(new_id(), f"reader_{uuid.uuid4().hex[:8]}", "x")
    await stores.accounts.create_user(reader)
    expected, deleted = await followed_photos(stores, reader)
    photos = Photos(stores.photos, stores.search, adapter_settings)
    timeline = timeline_over(stores, adapter_settings, photos)
    scope = Scope("timeline top", (reader.id,))
    rest = [i for i in expected[:6] if i not in deleted]
    legacy = timeline.cursors._seal(scope, b"t", rest)
    page = await timeline.page(reader, "top", legacy, len(rest) - 1)
    assert [p.id for p in page.items] == rest[:-1]
    assert page.next_cursor is not None
    last = await timeline.page(reader, "top", page.next_cursor, 10)
    assert ([p.id for p in last.items], last.next_cursor) == (rest[-1:], None)


async def test_a_cached_window_leaves_the_first_page_its_whole_budget(stores, adapter_settings):
    """Ranking reads followees' rows, and a first page that ranked has only what ranking
    left it; a first page that took the window from the cache read nothing for it and
    keeps its whole ``page_reads`` for the older photos. One followee, whose two newest
    photos (the whole window) are deleted; one read a page."""
    tag = uuid.uuid4().hex[:8]
    reader = User(new_id(), f"reader_{tag}", "x")
    followee = User(new_id(), f"f_{tag}", "x")
    for user in (reader, followee):
        await stores.accounts.create_user(user)
    now = datetime.now(UTC)
    await stores.graph.follow(reader.id, followee.id, now)
    posted = []
    for n in range(4):
        photo = make_photo(followee.id, "p", photo_id=new_id(ids.now_ms() - 1000 + n))
        await stores.photos.save_photo(photo, [])
        posted.append(photo)
    for photo in posted[2:]:
        await stores.photos.set_deleted(photo, now)
    photos = Photos(stores.photos, stores.search, adapter_settings)
    timeline = timeline_over(stores, adapter_settings, photos, page_reads=1, top_window=2)
    ranked_now = await timeline.page(reader, "top", None, 10)
    assert ranked_now.items == [] and ranked_now.next_cursor is not None  # ranking took it
    from_cache = await timeline.page(reader, "top", None, 10)
    assert [p.id for p in from_cache.items] == [p.id for p in reversed(posted[:2])]


async def test_top_pages_past_the_window_read_within_the_budget(stores, adapter_settings):
    """Past the window, "top" pages are "recent" pages: each reads at most ``page_reads``
    followees' rows (pages may end short or empty while a deep scan runs), and they give
    every older live photo once, newest first."""
    reader = User(new_id(), f"reader_{uuid.uuid4().hex[:8]}", "x")
    await stores.accounts.create_user(reader)
    expected, deleted = await followed_photos(stores, reader)
    photos = Photos(stores.photos, stores.search, adapter_settings)
    counted = CountedRows(stores.photos)
    timeline = timeline_over(
        stores, adapter_settings, photos, rows=counted, page_reads=3, top_window=2
    )
    shown, cursor = [], None
    while True:
        counted.reads = 0
        page = await timeline.page(reader, "top", cursor, 4)
        assert counted.reads <= 3
        shown += [p.id for p in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    live = [i for i in expected if i not in deleted]
    window = [i for i in expected[:2] if i not in deleted]
    assert sorted(shown[: len(window)]) == sorted(window)
    assert shown[len(window) :] == live[len(window) :]


async def test_every_followee_counts_however_long_the_list(stores, adapter_settings):
    """The followee list is read whole, several reads of 4 here: every one of 25
    followees counts, the highest user id too (the newest account, which a cut list in
    ascending id order lost first), though 25 is far past a max_following of 3 (a cap
    lowered after the follows, or raced past, hides nobody)."""
    reader = User(new_id(), f"reader_{uuid.uuid4().hex[:8]}", "x")
    await stores.accounts.create_user(reader)
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    posted = {}
    for n in range(25):
        followee = User(new_id(), f"f{n}_{tag}", "x")
        await stores.accounts.create_user(followee)
        await stores.graph.follow(reader.id, followee.id, now)
        photo = make_photo(followee.id, "p")
        await stores.photos.save_photo(photo, [])
        posted[followee.id] = photo.id
    settings_ = dataclasses.replace(adapter_settings, max_following=3)
    photos = Photos(stores.photos, stores.search, settings_)
    timeline = timeline_over(stores, settings_, photos, followees_page=4)
    assert sorted(await timeline.followees(reader.id)) == sorted(posted)
    newest_account = max(posted)
    for order in ("recent", "top"):
        shown = await walk(timeline, reader, order, 10)
        assert sorted(shown) == sorted(posted.values()), order
        assert posted[newest_account] in shown


async def test_following_past_max_following_is_refused(stores, adapter_settings):
    """At a cap of 3, a fourth follow (or request) is LimitReached naming the cap; an
    approval that would pass it is refused too and its request kept; an unfollow makes
    room again, for a follow or the approval."""
    tag = uuid.uuid4().hex[:8]
    social = Social(stores.accounts, stores.graph, max_following=3)
    users = []
    for n, private in enumerate([False] * 5 + [True]):
        user = User(new_id(), f"u{n}_{tag}", "x", private=private)
        await stores.accounts.create_user(user)
        users.append(user)
    me, (a, b, c, d), locked = users[0], users[1:5], users[5]
    assert await social.follow(me, locked.username) == "requested"  # 1 request, 0 follows
    for other in (a, b, c):
        assert await social.follow(me, other.username) == "following"
    for refused in (d, users[5]):
        with pytest.raises(LimitReached, match=r"follow is 3 \(max_following\)"):
            await social.follow(me, refused.username)
    with pytest.raises(LimitReached, match=r"follow is 3 \(max_following\)"):
        await social.approve(locked, me.username)
    assert await stores.graph.has_follow_request(locked.id, me.id)  # kept
    assert not await stores.graph.is_following(me.id, locked.id)
    assert await social.follow(me, a.username) == "following"  # already: no new follow
    await social.unfollow(me, c.username)
    assert await social.follow(me, d.username) == "following"
    await social.unfollow(me, d.username)
    await social.approve(locked, me.username)
    assert await stores.graph.is_following(me.id, locked.id)
    assert await stores.graph.count_follows(me.id) == (0, 3)
    with pytest.raises(LimitReached):
        await social.follow(me, c.username)
    await social.unfollow(me, b.username)
    assert await social.follow(me, c.username) == "following"


@st.composite
def followed_world(draw: st.DrawFn) -> list[tuple[bool, list[tuple[int, Visibility, bool]]]]:
    """Followees: (account private?, their photos as (minutes ago, visibility, deleted?))."""
    photo = st.tuples(
        st.integers(0, 3 * 24 * 60),
        st.sampled_from(
            [Visibility.PUBLIC, Visibility.PUBLIC, Visibility.FOLLOWERS, Visibility.PRIVATE]
        ),
        st.booleans(),
    )
    return draw(
        st.lists(st.tuples(st.booleans(), st.lists(photo, max_size=6)), min_size=1, max_size=6)
    )


def whole_walks(world: st.SearchStrategy):
    """A property test of whole timeline walks: over ``world`` (what the reader follows),
    with a "top" window, a page size and a read budget each drawn small."""

    def given_walks(test):
        return settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )(
            given(
                world=world,
                window=st.integers(1, 6),
                limit=st.integers(1, 5),
                page_reads=st.integers(1, 4),
            )(test)
        )

    return given_walks


@whole_walks(followed_world())
async def test_whole_walks_of_top_and_recent_are_the_sorted_merge(
    stores, adapter_settings, world, window, limit, page_reads
):
    """Whatever the follows, photos, deletions, private photos and private accounts: the
    whole "recent" walk is the sorted merge of every followee's photos the reader may
    see, and the whole "top" walk holds the same photos, each once, the ones below its
    window in that same order."""
    reader = User(new_id(), f"reader_{uuid.uuid4().hex[:8]}", "x")
    await stores.accounts.create_user(reader)
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    visible: set[int] = set()
    for n, (private, posts) in enumerate(world):
        followee = User(new_id(), f"w{n}_{tag}", "x", private=private)
        await stores.accounts.create_user(followee)
        await stores.graph.follow(reader.id, followee.id, now)
        for minutes, visibility, gone in posts:
            photo_id = new_id(ids.now_ms() - minutes * 60_000)
            photo = make_photo(followee.id, "p", photo_id=photo_id, visibility=visibility)
            await stores.photos.save_photo(photo, [])
            if gone:
                await stores.photos.set_deleted(photo, now)
            elif visibility is not Visibility.PRIVATE:
                visible.add(photo.id)
    oracle = sorted(visible, reverse=True)
    photos = Photos(stores.photos, stores.search, adapter_settings)
    timeline = timeline_over(
        stores, adapter_settings, photos, page_reads=page_reads, top_window=window
    )
    assert await walk(timeline, reader, "recent", limit) == oracle
    top = await walk(timeline, reader, "top", limit)
    assert sorted(top, reverse=True) == oracle  # every visible photo, once
    # The ranked window first (at most ``window`` photos, in any order, all newer than
    # the rest), then every older photo newest first.
    assert any(
        top[k:] == sorted(top[k:], reverse=True)
        and min(top[:k], default=ids.MAX_ID) > max(top[k:], default=0)
        for k in range(min(window, len(top)) + 1)
    ), top


async def test_stale_newest_ids_are_refreshed_a_slice_a_page(stores, adapter_settings, monkeypatch):
    """A reader's followees' newest ids go stale together (they were read together); each
    page refreshes ``NEWEST_REFRESH_KEYS`` of them in the background, the next page the
    next slice, until every one is fresh: a stale one is served meanwhile, never a wrong
    one once its slice came round."""
    monkeypatch.setattr("instastore.timeline.NEWEST_REFRESH_KEYS", 10)
    reader = User(new_id(), f"reader_{uuid.uuid4().hex[:8]}", "x")
    await stores.accounts.create_user(reader)
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    followees = []
    for n in range(25):
        followee = User(new_id(), f"f{n}_{tag}", "x")
        await stores.accounts.create_user(followee)
        await stores.graph.follow(reader.id, followee.id, now)
        await stores.photos.save_photo(make_photo(followee.id, "p"), [])
        followees.append(followee.id)
    photos = Photos(stores.photos, stores.search, adapter_settings)
    timeline = timeline_over(stores, adapter_settings, photos)
    seconds = [0.0]
    timeline._latest.clock = lambda: seconds[0]
    first = await timeline.latest(followees, reader=reader.id)
    assert sorted(first) == sorted(followees)  # read now: nothing was cached

    newer = {}  # every followee posts again; the cache still has the first photo
    for followee in followees:
        photo = make_photo(followee, "p")
        await stores.photos.save_photo(photo, [])
        newer[followee] = photo.id
    seconds[0] += timeline._latest.ttl_s + 1  # every entry stale, none too old to serve

    def fresh() -> int:
        return sum(f for _, f in timeline._latest.lookup_many(followees))

    for expected in (10, 20, 25):
        served = await timeline.latest(followees, reader=reader.id)
        await timeline._refreshes.drain()
        assert fresh() == expected
        refreshed = {u for u in followees if timeline._latest.get(u) == (newer[u], 0)}
        assert len(refreshed) == expected  # the fresh ones carry the new photo
        assert all(served[u][0] in (first[u][0], newer[u]) for u in followees)
