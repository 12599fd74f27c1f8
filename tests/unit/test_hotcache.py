"""The one in-process record cache (``instastore.hotcache.TtlCache``), with and without
its stale window, and the timeline's named cache keys."""

from __future__ import annotations

from instastore.hotcache import TtlCache
from instastore.timeline import FolloweesOf, NewestFor, NewestOf, RankedWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_expires_after_its_ttl_without_a_stale_window() -> None:
    clock = Clock()
    cache: TtlCache[int, str] = TtlCache("test", 5.0, clock=clock)
    cache.put(1, "one")
    clock.now += 5.0
    assert cache.get(1) == "one"
    assert cache.lookup(1) == ("one", True)
    clock.now += 0.001
    assert cache.get(1) is None
    assert cache.lookup(1) == (None, False)


def test_a_stale_window_serves_old_entries_marked_stale_then_drops_them() -> None:
    clock = Clock()
    cache: TtlCache[int, list[int]] = TtlCache("test", 5.0, stale_until_s=60.0, clock=clock)
    cache.put(7, [1, 2])
    assert cache.lookup(7) == ([1, 2], True)
    clock.now += 30.0
    assert cache.lookup(7) == ([1, 2], False)
    assert cache.get(7) is None  # get answers fresh entries only
    clock.now += 30.001
    assert cache.lookup(7) == (None, False)
    cache.put(7, [3])
    assert cache.lookup(7) == ([3], True)


def test_falsy_values_are_cached_and_drop_and_the_size_bound_work() -> None:
    cache: TtlCache[int, int] = TtlCache("test", 5.0, max_items=2, clock=Clock())
    cache.put(1, 0)
    assert cache.lookup(1) == (0, True)
    cache.drop(1)
    assert cache.lookup(1) == (None, False)
    cache.put(1, 1)
    cache.put(2, 2)
    cache.put(3, 3)  # past max_items: emptied, then kept
    assert [cache.get(k) for k in (1, 2, 3)] == [None, None, 3]


def test_timeline_keys_of_different_kinds_never_collide() -> None:
    """The same ids under two kinds of key are two entries (they were packed into one
    integer space before: -user_id - 1 for one kind, user_id for the other)."""
    keys = [FolloweesOf(5), NewestOf(5), NewestFor(5), RankedWindow(5)]
    assert len(set(keys)) == len(keys)
    cache: TtlCache[object, str] = TtlCache("test", 5.0, clock=Clock())
    for key in keys:
        cache.put(key, repr(key))
    assert [cache.get(key) for key in keys] == [repr(key) for key in keys]
    assert FolloweesOf(5) == FolloweesOf(5)
