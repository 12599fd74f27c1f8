"""What "top photos" means (``instastore.ranking``): likes decayed by age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from instastore import ids
from instastore.model import Kind, Photo, Visibility
from instastore.ranking import rank, score

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def posted(hours_ago: float, sequence: int = 0) -> Photo:
    at = NOW - timedelta(hours=hours_ago)
    photo_id = ids.make_id(int(at.timestamp() * 1000), 1, sequence)
    return Photo(
        id=photo_id,
        owner_id=1,
        title="a photo",
        kind=Kind.PHOTO,
        secret=ids.new_media_secret(),
        sha256="ab" * 32,
        created_at=at,
        visibility=Visibility.PUBLIC,
        renditions=(),
        width=10,
        height=10,
    )


def test_likes_raise_a_photo_and_age_decays_it() -> None:
    fresh, day_old = posted(0), posted(24)
    assert score(fresh.id, 0, NOW) > score(day_old.id, 0, NOW)
    assert score(day_old.id, 10, NOW) > score(day_old.id, 0, NOW)
    # (26 / 2) ** 1.5 = 46.9: a day-old photo needs 46 likes to beat a new one with none.
    assert score(day_old.id, 45, NOW) < score(fresh.id, 0, NOW) < score(day_old.id, 46, NOW)


def test_rank_orders_best_first_and_breaks_ties_by_newest() -> None:
    old_liked, new_plain, new_liked = posted(5), posted(1), posted(1, sequence=1)
    likes = {old_liked.id: 50, new_liked.id: 3}  # new_plain has none (missing from counts)
    assert rank([new_plain, old_liked, new_liked], likes, NOW) == [
        old_liked.id,
        new_liked.id,
        new_plain.id,
    ]
    twins = [posted(2, sequence=s) for s in range(3)]
    assert rank(twins, {}, NOW) == sorted((p.id for p in twins), reverse=True)


def test_a_photo_from_the_future_counts_as_new() -> None:
    """A clock behind an id's time (another server's) gives age 0, not a negative one."""
    ahead = posted(-3)
    assert score(ahead.id, 0, NOW) == score(posted(0).id, 0, NOW)
