"""In-process caches for the read path: media is immutable, so its bytes can be kept.

``ByteCache`` is an LRU of small renditions (thumbnails, feed-size JPEGs) under a byte
budget, so hot media is served from memory instead of a NameNode and a DataNode round
trip. ``TtlCache`` keeps small values for a few seconds, optionally served stale a while
longer: photo and owner records (for photos, the media path only: a delete through this
process drops the entry at once, and other processes see it within ``RECORD_TTL_S``;
downstream HTTP caches may keep media up to its max-age, an hour), and the timeline's
followee lists, newest ids and ranked windows.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from instastore import metrics
from instastore.limits import MAX_ITEM_BYTES, MAX_RECORDS, RECORD_TTL_S

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteCache:
    def __init__(self, budget_bytes: int, name: str = "media") -> None:
        self.name = name  # its label in the cache metrics
        self.budget = budget_bytes
        self.used = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        # Beside an entry's bytes, what callers derive from them (``held``): dropped with
        # the bytes, so it never outlives or contradicts them.
        self._beside: dict[str, dict[Hashable, Any]] = {}
        self.hits = 0
        self.misses = 0
        self._counted = _Lookups(name)

    def fits(self, size: int) -> bool:
        return 0 < size <= min(MAX_ITEM_BYTES, self.budget)

    def get(self, key: str) -> bytes | None:
        data = self._items.get(key)
        if data is None:
            self.misses += 1
            self._counted.miss.inc()
            return None
        self._items.move_to_end(key)
        self.hits += 1
        self._counted.hit.inc()
        return data

    def held(self, key: str) -> tuple[bytes, dict[Hashable, Any]] | None:
        """``get``, with the dict kept beside the bytes for what a caller derives from them
        (the media handler's ready answers); None, counted as a miss, when not held."""
        data = self.get(key)
        if data is None:
            return None
        return data, self._beside.setdefault(key, {})

    def put(self, key: str, data: bytes) -> dict[Hashable, Any] | None:
        """Keep ``data`` (unless it does not fit, or ``key`` is held already: a key's bytes
        never change); the dict beside ``key``'s bytes while they are held, else None."""
        if self.fits(len(data)) and key not in self._items:
            self._items[key] = data
            self.used += len(data)
            while self.used > self.budget:
                evicted, old = self._items.popitem(last=False)
                self._beside.pop(evicted, None)
                self.used -= len(old)
        return self._beside.setdefault(key, {}) if key in self._items else None

    def drop_prefix(self, prefix: str) -> None:
        for key in [k for k in self._items if k.startswith(prefix)]:
            self.used -= len(self._items.pop(key))
            self._beside.pop(key, None)


class TtlCache(Generic[K, V]):
    """Seconds of memory for small, rarely changing values (records, followee lists).

    An entry is fresh for ``ttl_s``. With ``stale_until_s`` (an age past ``ttl_s``),
    ``lookup`` keeps serving it, marked stale, up to that age, so a busy reader never
    waits for a refresh (the caller refreshes in the background); ``get`` answers fresh
    entries only. Past ``max_items`` the cache is emptied: cheaper than an LRU, and rare.
    """

    def __init__(
        self,
        name: str,
        ttl_s: float = RECORD_TTL_S,
        max_items: int = MAX_RECORDS,
        stale_until_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name  # its label in the cache metrics
        self.clock = clock
        self.ttl_s = ttl_s
        self.max_age_s = ttl_s if stale_until_s is None else max(ttl_s, stale_until_s)
        self.max_items = max_items
        self._items: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Task[V]] = {}  # see ``through``
        self._batches: dict[K, asyncio.Task[Mapping[K, V]]] = {}  # see ``through_many``
        self._counted = _Lookups(name)

    def lookup(self, key: K) -> tuple[V | None, bool]:
        """(value, fresh); (None, False) when absent or too old to serve."""
        hit = self._items.get(key)
        age = 0.0 if hit is None else self.clock() - hit[0]
        if hit is None or age > self.max_age_s:
            self._counted.miss.inc()
            return None, False
        fresh = age <= self.ttl_s
        (self._counted.hit if fresh else self._counted.stale).inc()
        return hit[1], fresh

    def lookup_many(self, keys: Iterable[K]) -> list[tuple[V | None, bool]]:
        """``lookup`` of each key, counted in the metrics once per outcome, not once per
        key (a timeline page looks up each followee's newest id: 7,500 counter updates a
        page were most of its time)."""
        now = self.clock()
        found: list[tuple[V | None, bool]] = []
        hits = stale = misses = 0
        for key in keys:
            hit = self._items.get(key)
            age = 0.0 if hit is None else now - hit[0]
            if hit is None or age > self.max_age_s:
                misses += 1
                found.append((None, False))
                continue
            fresh = age <= self.ttl_s
            if fresh:
                hits += 1
            else:
                stale += 1
            found.append((hit[1], fresh))
        for counter, n in ((self._counted.hit, hits), (self._counted.stale, stale)):
            if n:
                counter.inc(n)
        if misses:
            self._counted.miss.inc(misses)
        return found

    def get(self, key: K) -> V | None:
        """The value while it is fresh; None otherwise."""
        value, fresh = self.lookup(key)
        return value if fresh else None

    def put(self, key: K, value: V) -> None:
        if len(self._items) >= self.max_items:
            self._items.clear()
        self._items[key] = (self.clock(), value)

    async def through(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The fresh value, else what ``load()`` gives, kept. Callers missing the same key
        while a load of it is in flight share that load: when an entry expires under
        many concurrent readers, one store read refills it, not one per reader."""
        value = self.get(key)
        if value is not None:
            return value
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(key, load))
            loading.add_done_callback(_retrieved)
            self._loading[key] = loading
        # One caller cancelled (its client gone) does not cancel the others' load.
        return await asyncio.shield(loading)

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        me = asyncio.current_task()
        try:
            value = await load()
            # Not dropped meanwhile: still current. None is no value (``get``), not kept.
            if self._loading.get(key) is me and value is not None:
                self.put(key, value)
            return value
        finally:
            if self._loading.get(key) is me:
                del self._loading[key]

    def drop(self, key: K) -> None:
        """Forget ``key``, and a load of it in flight: callers after this read anew."""
        self._loading.pop(key, None)
        self._batches.pop(key, None)
        self._items.pop(key, None)

    async def through_many(
        self, keys: Iterable[K], load: Callable[[list[K]], Awaitable[Mapping[K, V]]]
    ) -> dict[K, V]:
        """The values of ``keys`` (found missing or stale by the caller's lookup), read and
        kept: keys whose read is in flight (another caller's batch) share it, the others
        are read together by one ``load(keys)``, which answers every key it is given. When
        an entry expires under many concurrent readers, one read refills it."""
        wanted = list(dict.fromkeys(keys))
        shared = {k: self._batches[k] for k in wanted if k in self._batches}
        rest = [k for k in wanted if k not in shared]
        if rest:
            batch = asyncio.ensure_future(self._load_many(rest, load))
            batch.add_done_callback(_retrieved)
            for key in rest:
                self._batches[key] = batch
                shared[key] = batch
        tasks = list(dict.fromkeys(shared.values()))
        # One caller cancelled (its client gone) does not cancel the others' read.
        answers = dict(zip(tasks, await asyncio.gather(*map(asyncio.shield, tasks)), strict=True))
        return {k: answers[task][k] for k, task in shared.items()}

    async def _load_many(
        self, keys: list[K], load: Callable[[list[K]], Awaitable[Mapping[K, V]]]
    ) -> Mapping[K, V]:
        me = asyncio.current_task()
        try:
            values = await load(keys)
            for key in keys:
                if self._batches.get(key) is me:  # not dropped meanwhile: still current
                    self.put(key, values[key])
            return values
        finally:
            for key in keys:
                if self._batches.get(key) is me:
                    del self._batches[key]


class _Lookups:
    """A cache's lookup counters, bound to their labels once (``labels()`` on every
    lookup was a few per cent of a hot media request) and counted without a lock
    (``metrics.LoopCounter``)."""

    def __init__(self, name: str) -> None:
        self.hit = metrics.LoopCounter(metrics.CACHE_LOOKUPS.labels(name, "hit"))
        self.stale = metrics.LoopCounter(metrics.CACHE_LOOKUPS.labels(name, "stale"))
        self.miss = metrics.LoopCounter(metrics.CACHE_LOOKUPS.labels(name, "miss"))


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Marks a shared load's failure as seen when every caller had gone already."""
    if not task.cancelled():
        task.exception()
