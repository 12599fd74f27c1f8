"""The timeline merge: the newest photo ids of many followees, as one list, newest first.

A pure function over an injected reader: it holds no cache and no store, so it is
tested against a plain sorted merge (``tests/test_timeline_merge.py``). Its cost does
not grow with the followees' whole history:

1. it starts from each followee's newest photo id (a hint the caller knows, e.g. from
   ``user_latest``): a heap keyed by an upper bound of each followee's next id;
2. a followee's rows are read only when it reaches the top of the heap, and up to
   ``prefetch`` of the next unread candidates are read concurrently with it;
3. a first read asks ``first_read`` ids, strictly below the followee's newest id + 1
   (so one or two buckets of its UserPhoto row); a later read asks a page.

So a page of 20 reads the rows of roughly the 20 followees who posted most recently,
not of all 1,000. The result is exact when every hint is at least the followee's newest
id (a hint may name a photo deleted or purged since); photos above a hint are not seen.
This module never does I/O of its own.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from instastore.ids import MAX_ID
from instastore.limits import FIRST_READ, PREFETCH

# (followee, before, n) -> at most n of the followee's photo ids strictly below ``before``
# (None: from the newest), newest first; fewer than n only when there are no more.
RowReader = Callable[[int, int | None, int], Awaitable[list[int]]]

# A heap entry: (-upper bound of the followee's next id, followee, rows read yet?)
_Entry = tuple[int, int, bool]


class _Merge:
    """The state of one merge: the heap, each followee's unread ids, the output."""

    def __init__(self, read_rows: RowReader, n: int) -> None:
        self.read_rows = read_rows
        self.n = n
        self.heap: list[_Entry] = []
        self.rows: dict[int, deque[int]] = {}
        self.exhausted: set[int] = set()
        self.out: list[int] = []

    async def read(self, followee: int, before: int, count: int) -> None:
        got = await self.read_rows(followee, before, count)
        self.rows[followee] = deque(got)
        if len(got) < count:
            self.exhausted.add(followee)
        if got:
            heapq.heappush(self.heap, (-got[0], followee, True))

    async def first_reads(self, followee: int, bound: int, prefetch: int, count: int) -> None:
        """Read the followee at the top and up to ``prefetch`` unread ones below it, each
        strictly below its bound + 1: from its newest photo (or the cursor) down."""
        batch = [(followee, bound)]
        while self.heap and len(batch) <= prefetch and not self.heap[0][2]:
            negative_bound, other, _ = heapq.heappop(self.heap)
            batch.append((other, -negative_bound))
        await asyncio.gather(*(self.read(f, b + 1, count) for f, b in batch))

    async def take(self, followee: int) -> None:
        """Move the followee's newest unread id to the output; read on if it ran out."""
        queue = self.rows[followee]
        self.out.append(queue.popleft())
        if queue:
            heapq.heappush(self.heap, (-queue[0], followee, True))
        elif followee not in self.exhausted:
            await self.read(followee, self.out[-1], self.n)


async def merge_timeline(
    newest: Mapping[int, int],
    read_rows: RowReader,
    before: int | None,
    n: int,
    *,
    prefetch: int = PREFETCH,
    first_read: int = FIRST_READ,
) -> list[int]:
    """The ``n`` newest ids strictly before ``before`` (None: from the newest) of the
    followees in ``newest`` (followee -> its newest photo id), read through ``read_rows``."""
    ceiling = (before - 1) if before is not None else MAX_ID
    merge = _Merge(read_rows, n)
    merge.heap = [
        (-min(top, ceiling), f, False) for f, top in newest.items() if min(top, ceiling) > 0
    ]
    heapq.heapify(merge.heap)
    count = min(n, first_read)
    while merge.heap and len(merge.out) < n:
        bound, followee, fetched = heapq.heappop(merge.heap)
        if fetched:
            await merge.take(followee)
        else:
            await merge.first_reads(followee, -bound, prefetch, count)
    return merge.out
