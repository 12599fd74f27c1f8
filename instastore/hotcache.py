"""In-process caches for the read path: media is immutable, so its bytes can be kept.

``ByteCache`` is an LRU of small renditions (thumbnails, feed-size JPEGs) under a byte
budget, so hot media is served from memory instead of a NameNode and a DataNode round
trip. ``TtlCache`` keeps records for a few seconds; for photos (the media path only) a
delete through this process drops the entry at once, and other processes see it within
``RECORD_TTL_S`` (media URLs are served ``immutable`` anyway, so downstream HTTP caches
keep them far longer).
"""

from __future__ import annotations

import time
from collections import OrderedDict

RECORD_TTL_S = 5.0
MAX_RECORDS = 100_000
MAX_ITEM_BYTES = 2 * 2**20  # larger renditions (originals, videos) always stream from the store


class ByteCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.used = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def fits(self, size: int) -> bool:
        return 0 < size <= min(MAX_ITEM_BYTES, self.budget)

    def get(self, key: str) -> bytes | None:
        data = self._items.get(key)
        if data is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return data

    def put(self, key: str, data: bytes) -> None:
        if not self.fits(len(data)) or key in self._items:
            return
        self._items[key] = data
        self.used += len(data)
        while self.used > self.budget:
            _, evicted = self._items.popitem(last=False)
            self.used -= len(evicted)

    def drop_prefix(self, prefix: str) -> None:
        for key in [k for k in self._items if k.startswith(prefix)]:
            self.used -= len(self._items.pop(key))


class TtlCache:
    """A few seconds of memory for small, rarely changing records (users by id)."""

    def __init__(self, ttl: float = RECORD_TTL_S, max_items: int = MAX_RECORDS) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._items: dict[object, tuple[float, object]] = {}

    def get(self, key: object) -> object | None:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: object, value: object) -> None:
        if len(self._items) >= self.max_items:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl, value)

    def drop(self, key: object) -> None:
        self._items.pop(key, None)
