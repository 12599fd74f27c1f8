"""What "top photos" means: likes decayed by age, Hacker News style.

A photo's score is ``(likes + 1) / (age_hours + 2) ** GRAVITY``, its age taken from its
time-sortable id; ties go to the newer photo. The timeline ranks a window of recent
candidates with it (``instastore.timeline``). Pure: no I/O, the time is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime

from instastore.ids import unix_ms_of
from instastore.model import Photo

GRAVITY = 1.5  # how fast age decays likes: a day-old photo needs ~47x a new one's likes
MS_PER_HOUR = 3_600_000


def score(photo_id: int, likes: int, now: datetime) -> float:
    """The photo's rank score at ``now``: higher is better."""
    age_hours = max(0.0, (now.timestamp() * 1000 - unix_ms_of(photo_id)) / MS_PER_HOUR)
    return (likes + 1) / math.pow(age_hours + 2, GRAVITY)


def rank(photos: Iterable[Photo], likes: Mapping[int, int], now: datetime) -> list[int]:
    """The photos' ids, best first (a photo missing from ``likes`` has none)."""
    return [
        p.id
        for p in sorted(
            photos, key=lambda p: (score(p.id, likes.get(p.id, 0), now), p.id), reverse=True
        )
    ]
