"""The one in-process record cache (``instastore.hotcache.TtlCache``), with and without
its stale window, and the timeline's named cache keys."""

from __future__ import annotations

import asyncio

from instastore.hotcache import ByteCache, TtlCache
from instastore.timeline import FolloweesOf, NewestFor, OwedTo, RankedWindow


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
    keys = [FolloweesOf(5), NewestFor(5), OwedTo(5), RankedWindow(5)]
    assert len(set(keys)) == len(keys)
    cache: TtlCache[object, str] = TtlCache("test", 5.0, clock=Clock())
    for key in keys:
        cache.put(key, repr(key))
    assert [cache.get(key) for key in keys] == [repr(key) for key in keys]
    assert FolloweesOf(5) == FolloweesOf(5)


async def test_concurrent_misses_of_one_key_share_one_load() -> None:
    cache: TtlCache[int, str] = TtlCache("t", ttl_s=5)
    loads = 0
    release = asyncio.Event()

    async def load() -> str:
        nonlocal loads
        loads += 1
        await release.wait()
        return f"record {loads}"

    readers = [asyncio.ensure_future(cache.through(7, load)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*readers) == ["record 1"] * 20
    assert loads == 1
    assert await cache.through(7, load) == "record 1"  # kept: no second load


async def test_a_failed_shared_load_fails_every_caller_and_keeps_nothing() -> None:
    cache: TtlCache[int, str] = TtlCache("t", ttl_s=5)

    async def missing() -> str:
        await asyncio.sleep(0)
        raise LookupError("no such record")

    readers = [asyncio.ensure_future(cache.through(1, missing)) for _ in range(3)]
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)
    assert cache.get(1) is None


async def test_a_drop_during_a_load_is_not_undone_by_it() -> None:
    """A photo deleted while its record is being read: the read in flight neither puts
    the old record back nor is joined by callers that come after the drop."""
    cache: TtlCache[int, str] = TtlCache("t", ttl_s=5)
    release = asyncio.Event()
    versions = iter(["before the delete", "after the delete"])

    async def load() -> str:
        value = next(versions)
        await release.wait()
        return value

    early = asyncio.ensure_future(cache.through(3, load))
    await asyncio.sleep(0)
    cache.drop(3)
    late = asyncio.ensure_future(cache.through(3, load))
    await asyncio.sleep(0)
    release.set()
    assert await early == "before the delete"
    assert await late == "after the delete"
    assert cache.get(3) == "after the delete"


async def test_a_caller_that_goes_away_leaves_the_shared_load_to_the_others() -> None:
    cache: TtlCache[int, str] = TtlCache("t", ttl_s=5)
    release = asyncio.Event()

    async def load() -> str:
        await release.wait()
        return "record"

    first = asyncio.ensure_future(cache.through(5, load))
    second = asyncio.ensure_future(cache.through(5, load))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == "record"
    assert first.cancelled()


def test_many_lookups_answer_as_one_each_and_count_once_per_outcome() -> None:
    from instastore import metrics

    def counted(result: str) -> float:
        metrics.fold()  # what the lookups counted without a lock, into prometheus
        return metrics.CACHE_LOOKUPS.labels("many", result)._value.get()

    clock = Clock()
    cache: TtlCache[int, int] = TtlCache("many", 5.0, stale_until_s=60.0, clock=clock)
    cache.put(1, 10)
    clock.now += 30.0
    cache.put(2, 20)
    keys = [1, 2, 3, 2]
    before = {r: counted(r) for r in ("hit", "stale", "miss")}
    many = cache.lookup_many(keys)
    assert many == [(10, False), (20, True), (None, False), (20, True)]
    after = {r: counted(r) - before[r] for r in before}
    assert after == {"hit": 2, "stale": 1, "miss": 1}
    assert many == [cache.lookup(k) for k in keys]  # the same answers as one at a time


def test_what_is_kept_beside_bytes_goes_with_them() -> None:
    """``held``'s dict lives exactly as long as its key's bytes: evicted, dropped by
    prefix, or never made for bytes that were not kept."""
    cache = ByteCache(budget_bytes=10)
    assert cache.held("1/a") is None
    beside = cache.put("1/a", b"aaaa")
    assert beside is not None
    beside["answer"] = "built from aaaa"
    held = cache.held("1/a")
    assert held is not None and held[0] == b"aaaa" and held[1] is beside
    assert cache.put("1/a", b"xxxx") is beside  # a key's bytes never change
    assert cache.put("2/b", b"bbbb") == {}
    assert cache.put("3/c", b"cccc") == {}  # past the budget: 1/a, the oldest, evicted
    assert cache.held("1/a") is None
    again = cache.put("1/a", b"aaaa")
    assert again == {}  # nothing left over from the evicted bytes
    assert cache.put("4/toolarge", b"x" * 11) is None  # not kept: nothing beside
    again["answer"] = "built from aaaa again"
    cache.drop_prefix("1/")
    assert cache.held("1/a") is None and cache.put("1/a", b"aa") == {}


async def test_many_callers_missing_the_same_keys_share_one_read() -> None:
    cache: TtlCache[int, bool] = TtlCache("batches", ttl_s=5)
    reads: list[list[int]] = []
    release = asyncio.Event()

    async def load(keys: list[int]) -> dict[int, bool]:
        reads.append(sorted(keys))
        await release.wait()
        return {k: k % 2 == 0 for k in keys}

    callers = [asyncio.ensure_future(cache.through_many([1, 2], load)) for _ in range(20)]
    await asyncio.sleep(0)
    wider = asyncio.ensure_future(cache.through_many([2, 3], load))  # 2 in flight, 3 not
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*callers) == [{1: False, 2: True}] * 20
    assert await wider == {2: True, 3: False}
    assert reads == [[1, 2], [3]]
    assert [cache.get(k) for k in (1, 2, 3)] == [False, True, False]  # kept


async def test_a_key_dropped_during_its_batch_read_is_not_put_back() -> None:
    cache: TtlCache[int, bool] = TtlCache("batches-drop", ttl_s=5)
    release = asyncio.Event()

    async def load(keys: list[int]) -> dict[int, bool]:
        await release.wait()
        return dict.fromkeys(keys, False)  # read before a takedown landed

    early = asyncio.ensure_future(cache.through_many([7, 8], load))
    await asyncio.sleep(0)
    cache.drop(7)  # the takedown, through this process

    async def after(keys: list[int]) -> dict[int, bool]:
        return dict.fromkeys(keys, True)

    assert await cache.through_many([7], after) == {7: True}  # a new read, not the old one
    release.set()
    assert await early == {7: False, 8: False}
    assert cache.get(7) is True and cache.get(8) is False


async def test_a_failed_batch_read_fails_its_callers_and_keeps_nothing() -> None:
    cache: TtlCache[int, bool] = TtlCache("batches-fail", ttl_s=5)

    async def load(keys: list[int]) -> dict[int, bool]:
        raise RuntimeError("the store is down")

    for _ in range(2):  # and a second try reads again
        try:
            await cache.through_many([1], load)
        except RuntimeError as exc:
            assert "down" in str(exc)
        else:
            raise AssertionError("the failure was not passed on")
    assert cache.get(1) is None


async def test_a_missing_value_is_answered_and_never_kept() -> None:
    cache: TtlCache[int, str] = TtlCache("none-values", ttl_s=5)
    reads = 0

    async def load() -> str:
        nonlocal reads
        reads += 1
        return None  # type: ignore[return-value]  (no such user: what get_user answers)

    assert await cache.through(1, load) is None
    assert await cache.through(1, load) is None
    assert reads == 2 and cache.lookup(1) == (None, False)
