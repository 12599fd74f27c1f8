"""The home timeline on both adapters: the merge over the real stores' UserPhoto rows,
whose ids span several time buckets, pages through exactly the sorted merge of every
followee's photos (no duplicates, no gaps), across prefetch batches and with followees
that never posted; "recent" pages leave deleted photos out."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

from instastore import ids
from instastore.limits import PREFETCH
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
        pages, before = [], None
        while True:
            page = await timeline.merged_ids(reader.id, before, size)
            pages.append(page)
            if len(page) < size:
                break
            before = page[-1]
        assert [i for page in pages for i in page] == expected, size

    live, cursor = [], None
    while True:
        page = await timeline.page(reader, "recent", cursor, 4)
        live += [p.id for p in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert live == [i for i in expected if i not in deleted]
