"""The stores' part of comments, likers, "liked by me" and accounts by username prefix:
both adapters, same behaviour."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from instastore import ids, search
from instastore.errors import Conflict
from instastore.model import Comment

from ..factories import make_photo, make_user, new_id

DAY_MS = 24 * 3600 * 1000
BUCKET_MS = 1 << (ids.BUCKET_SHIFT - ids.TIME_SHIFT)  # milliseconds of ids in one bucket


def _comment(photo_id: int, author_id: int, text: str, at_ms: int | None = None) -> Comment:
    comment_id = new_id(at_ms)
    at = datetime.fromtimestamp(ids.unix_ms_of(comment_id) / 1000, tz=UTC)
    return Comment(comment_id, photo_id, author_id, text, at)


# ---- comments --------------------------------------------------------------------------


async def test_comments_list_oldest_first_paged_across_buckets(stores):
    photo = make_photo(new_id())
    await stores.photos.save_photo(photo, [])
    start = ids.unix_ms_of(photo.id)
    # Spread over three time buckets, added out of order: the list is by id, oldest first.
    made = [
        _comment(photo.id, new_id(), f"c{i}", start + 1000 + (i // 3) * BUCKET_MS + i)
        for i in range(8)
    ]
    for comment in reversed(made):
        assert await stores.comments.add_comment(comment) is True
    assert len({ids.bucket_of(c.id) for c in made}) == 3

    seen, after = [], None
    while True:
        page = await stores.comments.comments(photo.id, after, 3)
        seen += page
        if len(page) < 3:
            break
        after = page[-1].id
    assert seen == made  # every field back as written, oldest first
    assert await stores.comments.comments(photo.id, made[4].id, 100) == made[5:]
    assert await stores.comments.comments(photo.id, made[-1].id, 100) == []
    assert await stores.comments.comments(new_id(), None, 10) == []


async def test_a_comment_is_stored_once_and_counted_once(stores):
    photo, other = make_photo(new_id()), make_photo(new_id())
    comment = _comment(photo.id, new_id(), "first!")
    assert await stores.comments.add_comment(comment) is True
    assert await stores.comments.add_comment(comment) is False  # a retry: counted once
    with pytest.raises(Conflict):  # the id holds another comment: nothing changes
        await stores.comments.add_comment(dataclasses.replace(comment, text="not mine"))
    second = _comment(photo.id, new_id(), "second")
    await stores.comments.add_comment(second)
    assert await stores.comments.comment_counts([photo.id, other.id]) == {photo.id: 2, other.id: 0}
    assert await stores.comments.get_comment(photo.id, comment.id) == comment
    assert await stores.comments.get_comment(other.id, comment.id) is None  # another photo's

    assert await stores.comments.delete_comment(comment) is True
    assert await stores.comments.delete_comment(comment) is False  # gone: counted once
    assert await stores.comments.get_comment(photo.id, comment.id) is None
    assert await stores.comments.comments(photo.id, None, 10) == [second]
    assert await stores.comments.comment_counts([photo.id]) == {photo.id: 1}


async def test_a_purged_photo_takes_its_comments_and_their_count(stores):
    tag = uuid.uuid4().hex[:8]
    photo = make_photo(new_id(), f"talked about {tag}")
    terms = search.terms(photo.title)
    await stores.photos.save_photo(photo, terms)
    start = ids.unix_ms_of(photo.id)
    for i in range(3):
        await stores.comments.add_comment(
            _comment(photo.id, new_id(), f"c{i}", start + 1 + i * BUCKET_MS)
        )
    kept = make_photo(new_id())
    await stores.comments.add_comment(_comment(kept.id, new_id(), "stays"))
    await stores.photos.set_deleted(photo, datetime(2026, 3, 1, tzinfo=UTC))
    stored = await stores.photos.get_photo(photo.id)
    await stores.photos.purge_photo(stored, terms)
    assert await stores.comments.comments(photo.id, None, 10) == []
    assert await stores.comments.comment_counts([photo.id, kept.id]) == {photo.id: 0, kept.id: 1}
    await stores.photos.purge_photo(stored, terms)  # again: a no-op


# ---- likers and "liked by me" ------------------------------------------------------------


async def test_likers_in_id_order_paged_and_liked_by_one_read(stores):
    photos = [make_photo(new_id()) for _ in range(3)]
    fans = sorted(new_id() for _ in range(5))
    now = datetime.now(UTC)
    for fan in fans:
        await stores.likes.like(photos[0].id, fan, now)
    await stores.likes.like(photos[2].id, fans[0], now)
    first = await stores.likes.likers(photos[0].id, None, 3)
    assert first + await stores.likes.likers(photos[0].id, first[-1], 3) == fans
    assert await stores.likes.likers(photos[1].id, None, 3) == []
    ids_ = [p.id for p in photos]
    assert await stores.likes.liked_by(fans[0], ids_) == {photos[0].id, photos[2].id}
    assert await stores.likes.liked_by(fans[1], ids_) == {photos[0].id}
    assert await stores.likes.liked_by(new_id(), ids_) == set()
    assert await stores.likes.liked_by(fans[0], []) == set()
    await stores.likes.unlike(photos[0].id, fans[0])
    assert await stores.likes.liked_by(fans[0], ids_) == {photos[2].id}
    assert fans[0] not in await stores.likes.likers(photos[0].id, None, 10)


# ---- accounts by username prefix ----------------------------------------------------------


async def test_usernames_by_prefix_in_name_order_paged(stores):
    stem = "p" + uuid.uuid4().hex[:6]
    names = [f"{stem}{suffix}" for suffix in ("", "_a", ".b", "0", "zz", "a9")]
    users = {name: make_user(name) for name in names}
    for user in users.values():
        await stores.accounts.create_user(user)
    await stores.accounts.create_user(make_user(f"q{stem[1:]}"))  # another prefix
    expected = [(n, users[n].id) for n in sorted(names)]
    assert await stores.accounts.usernames_from(stem, None, 100) == expected
    first = await stores.accounts.usernames_from(stem, None, 4)
    rest = await stores.accounts.usernames_from(stem, first[-1][0], 4)
    assert first + rest == expected
    assert await stores.accounts.usernames_from(f"{stem}_", None, 10) == [
        (f"{stem}_a", users[f"{stem}_a"].id)
    ]
    assert await stores.accounts.usernames_from(f"{stem}q", None, 10) == []


async def test_a_name_lost_to_another_account_is_not_listed_as_its(stores):
    name = "l" + uuid.uuid4().hex[:10]
    winner = make_user(name)
    await stores.accounts.create_user(winner)
    with pytest.raises(Conflict):
        await stores.accounts.create_user(make_user(name))
    assert await stores.accounts.usernames_from(name, None, 10) == [(name, winner.id)]
