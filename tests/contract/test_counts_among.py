"""The stores' part of counts as a viewer with blocks sees them: who blocks a user, and
of some accounts (the viewer's walls) which follow or are followed by a user, how many
likes and comments on each photo are theirs. Both adapters, same behaviour."""

from __future__ import annotations

from datetime import UTC, datetime

from instastore import ids
from instastore.model import Comment

from ..factories import make_photo, new_id

AT = datetime(2026, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)
BUCKET_MS = 1 << (ids.BUCKET_SHIFT - ids.TIME_SHIFT)  # milliseconds of ids in one bucket


def _comment(photo_id: int, author_id: int, at_ms: int | None = None) -> Comment:
    comment_id = new_id(at_ms)
    at = datetime.fromtimestamp(ids.unix_ms_of(comment_id) / 1000, tz=UTC)
    return Comment(comment_id, photo_id, author_id, "hi", at)


async def test_who_blocks_a_user_in_id_order_paged(stores):
    user, others = new_id(), sorted(new_id() for _ in range(5))
    for other in reversed(others):
        await stores.blocks.block(other, user, AT)
    await stores.blocks.block(user, new_id(), AT)  # whom the user blocks is another list
    assert await stores.blocks.blockers(user, None, 10) == others
    assert await stores.blocks.blockers(user, None, 2) == others[:2]
    assert await stores.blocks.blockers(user, others[1], 2) == others[2:4]
    assert await stores.blocks.blockers(user, others[-1], 2) == []
    await stores.blocks.unblock(others[0], user)
    assert await stores.blocks.blockers(user, None, 10) == others[1:]
    assert await stores.blocks.blockers(new_id(), None, 10) == []


async def test_follows_among_some_accounts_each_way(stores):
    user, fan, idol, both, stranger = (new_id() for _ in range(5))
    assert await stores.graph.follow(fan, user, AT)
    assert await stores.graph.follow(user, idol, AT)
    assert await stores.graph.follow(both, user, AT)
    assert await stores.graph.follow(user, both, AT)
    assert await stores.graph.follow(stranger, idol, AT)  # not the user's
    among = [fan, idol, both, stranger, new_id()]
    assert await stores.graph.follows_among(user, among) == ({fan, both}, {idol, both})
    assert await stores.graph.follows_among(user, [stranger]) == (set(), set())
    assert await stores.graph.follows_among(user, []) == (set(), set())
    await stores.graph.unfollow(fan, user)
    assert await stores.graph.follows_among(user, among) == ({both}, {idol, both})


async def test_likes_among_some_accounts_per_photo(stores):
    liked, other, unliked = new_id(), new_id(), new_id()
    walls, fans = [new_id() for _ in range(3)], [new_id() for _ in range(2)]
    for user in [*walls[:2], *fans]:
        assert await stores.likes.like(liked, user, AT)
    assert await stores.likes.like(other, walls[2], AT)
    assert await stores.likes.like(other, fans[0], AT)
    photos = [liked, other, unliked]
    assert await stores.likes.like_counts_among(photos, walls) == {liked: 2, other: 1}
    assert await stores.likes.like_counts_among(photos, fans[1:]) == {liked: 1}
    assert await stores.likes.like_counts_among(photos, []) == {}
    assert await stores.likes.like_counts_among([], walls) == {}
    assert await stores.likes.unlike(liked, walls[0])
    assert await stores.likes.like_counts_among(photos, walls) == {liked: 1, other: 1}


async def test_comments_among_some_authors_per_photo_across_buckets(stores):
    photo, other, quiet = make_photo(new_id()), make_photo(new_id()), make_photo(new_id())
    for p in (photo, other, quiet):
        await stores.photos.save_photo(p, [])
    walled, walled_too, friend = new_id(), new_id(), new_id()
    start = ids.unix_ms_of(photo.id)
    # The walled author's comments lie in three time buckets of the photo.
    theirs = [_comment(photo.id, walled, start + 1000 + i * BUCKET_MS) for i in range(3)]
    for comment in [
        *theirs,
        _comment(photo.id, walled_too),
        _comment(photo.id, friend),
        _comment(other.id, walled_too),
        _comment(quiet.id, friend),
    ]:
        assert await stores.comments.add_comment(comment)
    assert len({ids.bucket_of(c.id) for c in theirs}) == 3
    photos = [photo.id, other.id, quiet.id]
    walls = [walled, walled_too, new_id()]
    assert await stores.comments.comment_counts_among(photos, walls) == {photo.id: 4, other.id: 1}
    assert await stores.comments.comment_counts_among(photos, [friend]) == {
        photo.id: 1,
        quiet.id: 1,
    }
    assert await stores.comments.comment_counts_among(photos, []) == {}
    assert await stores.comments.delete_comment(theirs[1])
    assert await stores.comments.comment_counts_among([photo.id], walls) == {photo.id: 3}
