"""The timeline merge: the newest photo ids of many followees, as one list, newest first.

A pure function over an injected reader: it holds no cache and no store, so it is
tested against a plain sorted merge (``tests/unit/test_timeline_merge.py``). Its cost does
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

A page never reads more than ``budget`` followees' rows (``PAGE_READS``), whatever its
cursor. Below a deep cursor every followee who posted since is tied at the cursor, and
all of them must be read before the first id is known: when there are more than the
budget, the page reads ``budget`` of them in followee order and ends empty, at a
``Position`` that carries how far that scan got and the newest ids it found (at most a
page); the page that reads the last of them returns those ids. A page that runs out of
budget after some ids ends short, at its last id. Either way paging goes on exactly
where it stopped. This module never does I/O of its own.

A source need not be one followee: the timeline also merges the reader's inbox (a copy
of many followees' ids) with the rows of the followees it may lack. Two sources may
then hold the same id; it is output once.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from instastore.ids import MAX_ID
from instastore.limits import FIRST_READ, PAGE_READS, PREFETCH, SCAN_IDS

# (followee, before, n) -> at most n of the followee's photo ids strictly below ``before``
# (None: from the newest), newest first; fewer than n only when there are no more.
RowReader = Callable[[int, int | None, int], Awaitable[list[int]]]

# A heap entry: (-upper bound of the followee's next id, followee, rows read yet?)
_Entry = tuple[int, int, bool]


@dataclass(frozen=True)
class Position:
    """Where a page of the merge starts: strictly below ``before`` (None: the newest).

    ``scanned`` None: an ordinary page. Otherwise a deep scan is under way: every
    followee with an id below ``scanned`` (0: none yet) has been read, and ``found``
    holds the newest ``size`` ids below ``before`` among theirs, newest first."""

    before: int | None
    scanned: int | None = None
    size: int = 0
    found: tuple[int, ...] = ()


@dataclass(frozen=True)
class Merged:
    ids: list[int]  # the merge's next ids, newest first: fewer than asked if the budget ran out
    after: Position | None  # where the next page starts; None: there are no more
    reads: int  # followee rows read (each one query of at most a page of ids)


class _Merge:
    """The state of one merge: the heap, each followee's unread ids, the output."""

    def __init__(self, read_rows: RowReader, n: int, budget: int) -> None:
        self.read_rows = read_rows
        self.n = n
        self.budget = budget
        self.reads = 0
        self.stopped = False  # the budget ran out before the page was full
        self.heap: list[_Entry] = []
        self.rows: dict[int, deque[int]] = {}
        self.exhausted: set[int] = set()
        self.out: list[int] = []

    async def read(self, followee: int, before: int | None, count: int) -> None:
        self.reads += 1
        got = await self.read_rows(followee, before, count)
        self.rows[followee] = deque(got)
        if len(got) < count:
            self.exhausted.add(followee)
        if got:
            heapq.heappush(self.heap, (-got[0], followee, True))

    async def first_reads(self, followee: int, bound: int, prefetch: int, count: int) -> None:
        """Read the followee at the top and up to ``prefetch`` unread ones below it (as
        the budget allows), each strictly below its bound + 1: from its newest photo (or
        the cursor) down."""
        batch = [(followee, bound)]
        room = min(prefetch + 1, self.budget - self.reads)
        while self.heap and len(batch) < room and not self.heap[0][2]:
            negative_bound, other, _ = heapq.heappop(self.heap)
            batch.append((other, -negative_bound))
        await asyncio.gather(*(self.read(f, _above(b), count) for f, b in batch))

    async def take(self, followee: int) -> None:
        """Move the followee's newest unread id to the output; read on if it ran out
        (or stop the page there, when the budget is spent)."""
        queue = self.rows[followee]
        photo_id = queue.popleft()
        if not self.out or self.out[-1] != photo_id:  # two sources may hold one id: once
            self.out.append(photo_id)
        if queue:
            heapq.heappush(self.heap, (-queue[0], followee, True))
        elif followee not in self.exhausted:
            if self.reads >= self.budget:
                self.stopped = True
            else:
                await self.read(followee, photo_id, self.n)


def _ceiling(before: int | None) -> int:
    return (before - 1) if before is not None else MAX_ID


def _above(bound: int) -> int | None:
    """The ``before`` of a read from ``bound`` down (None: from the newest)."""
    return None if bound >= MAX_ID else bound + 1


async def merge_timeline(
    newest: Mapping[int, int],
    read_rows: RowReader,
    at: Position,
    n: int,
    *,
    budget: int = PAGE_READS,
    prefetch: int = PREFETCH,
    first_read: int = FIRST_READ,
) -> Merged:
    """The next ``n`` ids from ``at`` of the followees in ``newest`` (followee -> its
    newest photo id), read through ``read_rows`` in at most ``budget`` reads."""
    ceiling = _ceiling(at.before)
    tied = sum(1 for top in newest.values() if top >= ceiling)
    if at.scanned is not None or tied > budget:
        return await _scan(newest, read_rows, at, n, budget, prefetch)
    merge = _Merge(read_rows, n, budget)
    merge.heap = [
        (-min(top, ceiling), f, False) for f, top in newest.items() if min(top, ceiling) > 0
    ]
    heapq.heapify(merge.heap)
    count = min(n, first_read)
    while merge.heap and len(merge.out) < n and not merge.stopped:
        bound, followee, fetched = heapq.heappop(merge.heap)
        if fetched:
            await merge.take(followee)
        elif merge.reads >= merge.budget:
            merge.stopped = True
        else:
            await merge.first_reads(followee, -bound, prefetch, count)
    if not merge.stopped and not merge.heap:
        return Merged(merge.out, None, merge.reads)
    if merge.out:
        return Merged(merge.out, Position(merge.out[-1]), merge.reads)
    stalled = Position(at.before, scanned=0, size=min(n, SCAN_IDS))  # read on in a scan
    return Merged([], stalled, merge.reads)


async def _scan(
    newest: Mapping[int, int],
    read_rows: RowReader,
    at: Position,
    n: int,
    budget: int,
    prefetch: int,
) -> Merged:
    """One step of a deep scan: the next ``budget`` followees (in followee order) that
    may hold one of the newest ``size`` ids below the cursor, a page of ids each."""
    ceiling = _ceiling(at.before)
    size = at.size if at.scanned is not None else min(n, SCAN_IDS)
    found = list(at.found)
    floor = found[size - 1] if len(found) >= size else 0  # no id at or below it can place
    todo = sorted(
        f for f, top in newest.items() if f >= (at.scanned or 0) and min(top, ceiling) > floor
    )
    step = todo[:budget]
    for start in range(0, len(step), prefetch + 1):  # prefetch + 1 reads at a time
        group = step[start : start + prefetch + 1]
        for got in await asyncio.gather(*(read_rows(f, _above(ceiling), size) for f in group)):
            found += got
    found = sorted(set(found), reverse=True)[:size]
    if len(todo) > len(step):
        return Merged([], Position(at.before, step[-1] + 1, size, tuple(found)), len(step))
    ids = found[:n]
    if len(ids) == len(found) < size:
        return Merged(ids, None, len(step))  # the scan saw every id below the cursor
    return Merged(ids, Position(ids[-1]), len(step))
