"""The core's photo rules on both adapters: deleted photos vanish from every read at
once, restore works inside the retention window and not after it, and purge removes
rows, index entries and blobs for good, idempotently, resuming after a crash."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from instastore.errors import Gone, NotAllowed, NotFound, StorageError
from instastore.lifecycle.purge import purge
from instastore.model import Rendition
from instastore.photos import Photos

from ..factories import make_photo, new_id, one


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def stored_photo(stores, photos: Photos, owner: int, title: str):
    photo = make_photo(owner, title)
    key = f"p/{photo.id}/thumb"
    await stores.blobs.put(key, one(b"jpeg bytes"))
    photo = dataclasses.replace(
        photo, renditions=(Rendition("thumb", key, "image/jpeg", 10, 150, 100),)
    )
    await photos.save(photo)
    return photo


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def photos(stores, adapter_settings, clock):
    return Photos(stores.photos, stores.search, adapter_settings, clock=clock)


async def test_delete_hides_at_once_and_restore_brings_back(stores, photos, clock):
    tag = uuid.uuid4().hex[:10]
    owner = new_id()
    kept = await stored_photo(stores, photos, owner, f"kept {tag}")
    gone = await stored_photo(stores, photos, owner, f"gone {tag}")

    with pytest.raises(NotAllowed):
        await photos.delete(gone.id, new_id())
    await photos.delete(gone.id, owner)
    with pytest.raises(NotFound):
        await photos.get(gone.id)
    assert [p.id for p in (await photos.by_user(owner)).items] == [kept.id]
    assert [p.id for p in (await photos.search(tag)).items] == [kept.id]
    with pytest.raises(NotFound):
        await photos.delete(gone.id, owner)  # already deleted

    clock.now += timedelta(days=29)
    with pytest.raises(NotFound):
        await photos.restore(gone.id, new_id())  # not the owner's to restore
    restored = await photos.restore(gone.id, owner)
    assert restored == gone
    assert await photos.get(gone.id) == gone
    assert [p.id for p in (await photos.search(tag)).items] == [gone.id, kept.id]


async def test_restore_after_the_window_is_gone(stores, photos, clock):
    owner = new_id()
    photo = await stored_photo(stores, photos, owner, "late")
    await photos.delete(photo.id, owner)
    clock.now += timedelta(days=30, seconds=1)
    with pytest.raises(Gone):
        await photos.restore(photo.id, owner)


async def test_pages_skip_deleted_photos_and_cursors_continue(stores, photos):
    owner = new_id()
    made = [await stored_photo(stores, photos, owner, f"p{i}") for i in range(7)]
    for p in made[1:5]:
        await photos.delete(p.id, owner)
    first = await photos.by_user(owner, limit=2)
    assert [p.id for p in first.items] == [made[6].id, made[5].id]
    second = await photos.by_user(owner, cursor=first.next_cursor, limit=2)
    assert [p.id for p in second.items] == [made[0].id]
    assert second.next_cursor is None


async def test_a_search_reads_a_bounded_share_and_its_cursor_finds_the_rest(
    stores, adapter_settings
):
    # Two words on many titles that meet on few: each page reads at most search_postings
    # of the walked word's postings, and answers what it found with a cursor. The walked
    # word is the rarer, of equals the longer: the other has older titles of its own.
    settings = dataclasses.replace(adapter_settings, search_postings=4)
    photos = Photos(stores.photos, stores.search, settings)
    tag = uuid.uuid4().hex[:8]
    walked, other = f"walked{tag}", f"o{tag}"
    owner = new_id()
    for i in range(16):  # as many postings as the walked word has, all older
        await photos.save(make_photo(owner, f"{other} z{i}"))
    titles = [f"{walked} {other} 1", *(f"{walked} x{i}" for i in range(10))]
    titles += [f"{walked} {other} 2", f"{walked} {other} deleted"]
    titles += [f"{walked} y{i}" for i in range(3)]
    made = []
    for title in titles:  # oldest first
        photo = make_photo(owner, title)
        await photos.save(photo)
        made.append(photo)
    await photos.delete(made[12].id, owner)

    pages, cursor = [], None
    while True:
        page = await photos.search(f"{other} {walked}", cursor=cursor, limit=20)
        pages.append([p.id for p in page.items])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    # 15 postings, 4 a page: the deleted match is skipped, the other two found once each.
    assert pages == [[], [made[11].id], [], [made[0].id], []]

    whole = await Photos(stores.photos, stores.search, adapter_settings).search(
        f"{other} {walked}", limit=20
    )
    assert ([p.id for p in whole.items], whole.next_cursor) == ([made[11].id, made[0].id], None)


async def test_purge_removes_rows_and_blobs_past_the_window_only(
    stores, photos, adapter_settings, clock
):
    tag = uuid.uuid4().hex[:10]
    owner = new_id()
    old = await stored_photo(stores, photos, owner, f"old {tag}")
    recent = await stored_photo(stores, photos, owner, f"recent {tag}")
    clock.now -= timedelta(days=40)
    await photos.delete(old.id, owner)
    clock.now += timedelta(days=35)
    await photos.delete(recent.id, owner)
    now = clock.now + timedelta(days=5)

    report = await purge(stores.photos, stores.blobs, adapter_settings, now=now)
    assert report.purged >= 1
    assert await stores.photos.get_photo(old.id) is None
    with pytest.raises(NotFound):
        await stores.blobs.size(old.renditions[0].locator)
    assert (await stores.photos.get_photo(recent.id)).deleted  # inside its window
    assert await stores.blobs.size(recent.renditions[0].locator) == 10

    again = await purge(stores.photos, stores.blobs, adapter_settings, now=now)
    assert old.id not in [e.photo_id for e in await stores.photos.due_purges(now.date(), 10_000)]
    assert again.failed == 0


class CrashOnce:
    """Wraps a real photo port; its first purge_photo fails as a crash would."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.crashed = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def purge_photo(self, photo, terms):
        if not self.crashed:
            self.crashed = True
            raise StorageError("simulated crash between blob deletion and row deletion")
        await self.inner.purge_photo(photo, terms)


async def test_purge_resumes_after_a_crash(stores, photos, adapter_settings, clock):
    owner = new_id()
    photo = await stored_photo(stores, photos, owner, "crashy")
    clock.now -= timedelta(days=31)
    await photos.delete(photo.id, owner)
    now = clock.now + timedelta(days=31)

    first = await purge(CrashOnce(stores.photos), stores.blobs, adapter_settings, now=now)
    assert first.failed == 1
    assert (await stores.photos.get_photo(photo.id)).deleted  # rows still there, entry still queued
    with pytest.raises(NotFound):
        await stores.blobs.size(photo.renditions[0].locator)  # its blob went first

    second = await purge(stores.photos, stores.blobs, adapter_settings, now=now)
    assert second.failed == 0
    assert await stores.photos.get_photo(photo.id) is None
