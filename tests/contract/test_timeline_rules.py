"""The home timeline on both adapters: the merge over the real stores' UserPhoto rows,
whose ids span several time buckets, pages through exactly the sorted merge of every
followee's photos (no duplicates, no gaps), across prefetch batches and with followees
that never posted; "recent" pages leave deleted photos out; a page reads no more
followees' rows than its budget, whatever its cursor, and paging on gives every photo."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

from instastore import ids
from instastore.limits import PREFETCH
from instastore.merge import Position
from instastore.model import User
from instastore.photos import Photos
from instastore.timeline import Timeline

from ..factories import make_photo, new_id

BUCKET_MS = 1 << (ids.BUCKET_SHIFT - ids.TIME_SHIFT)
FOLLOWEES = PREFETCH * 2 + 3  # more than two batches of first reads


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
    timeline = Timeline(
        stores.graph, stores.photos, stores.likes, stores.accounts, adapter_settings, photos
    )
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
    timeline = Timeline(
        stores.graph,
        counted,
        stores.likes,
        stores.accounts,
        adapter_settings,
        photos,
        page_reads=3,
    )
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
    timeline = Timeline(
        stores.graph, counted, stores.likes, stores.accounts, adapter_settings, photos
    )
    page = await timeline.page(reader, "top", None, 3)
    assert 0 < counted.reads <= timeline.page_reads
    shown = [p.id for p in page.items]
    while page.next_cursor is not None:
        counted.reads = 0
        other_process = Timeline(  # no cached window there: the cursor alone carries it
            stores.graph, counted, stores.likes, stores.accounts, adapter_settings, photos
        )
        page = await other_process.page(reader, "top", page.next_cursor, 3)
        assert counted.reads == 0
        shown += [p.id for p in page.items]
    assert sorted(shown) == sorted(i for i in expected if i not in deleted)
