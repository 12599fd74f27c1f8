"""The timeline merge (``instastore.merge``) against a plain sorted merge.

Followees' photo ids are spread over several time buckets; some followees have no
photos (left out of the newest-id hints, or with a hint whose photos were purged);
hints may be above a followee's newest id (a photo deleted or purged since). Across
prefetch batch sizes, first-read sizes, page sizes and starting cursors, paging through
every page gives exactly the oracle's order: no duplicates, no gaps, nothing extra.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from instastore import ids
from instastore.limits import PAGE_READS, SCAN_IDS
from instastore.merge import Merged, Position, merge_timeline

BUCKET_MS = 1 << (ids.BUCKET_SHIFT - ids.TIME_SHIFT)  # ms per time bucket of the wide rows
BUCKETS = 6  # buckets the generated ids span
DAY_MS = 86_400_000


@dataclass
class Rows:
    """Followees' UserPhoto rows in memory, read as the store port says: at most ``n``
    ids strictly below ``before``, newest first. Counts the reads."""

    by_followee: dict[int, list[int]]
    reads: list[tuple[int, int | None, int]] = field(default_factory=list)

    async def read(self, followee: int, before: int | None, n: int) -> list[int]:
        self.reads.append((followee, before, n))
        await asyncio.sleep(0)  # let concurrent reads interleave
        rows = self.by_followee.get(followee, [])
        return [i for i in rows if before is None or i < before][:n]


@st.composite
def photo_id(draw: st.DrawFn) -> int:
    bucket = draw(st.integers(1, BUCKETS))  # not 0: the epoch's first ms would make id 0
    # Near bucket edges as often as inside them.
    offset = draw(st.one_of(st.integers(0, 3), st.integers(BUCKET_MS - 4, BUCKET_MS - 1)))
    ms = ids.EPOCH_MS + bucket * BUCKET_MS + offset
    return ids.make_id(ms, draw(st.integers(0, 3)), draw(st.integers(0, ids.MAX_SEQUENCE)))


@st.composite
def followings(draw: st.DrawFn) -> tuple[dict[int, int], dict[int, list[int]]]:
    """(newest-id hints, rows): what ``Timeline.latest`` and the store would give."""
    all_ids = draw(st.lists(photo_id(), unique=True, max_size=80))
    followees = draw(st.integers(0, 30))
    owner = st.integers(0, followees - 1) if followees else st.nothing()
    rows: dict[int, list[int]] = {f: [] for f in range(followees)}
    for photo in all_ids:
        rows[draw(owner)].append(photo)
    hints: dict[int, int] = {}
    for f, photos in rows.items():
        photos.sort(reverse=True)
        above = draw(st.sampled_from([0, 0, 1, BUCKET_MS << ids.TIME_SHIFT]))
        if photos:
            hints[f] = photos[0] + above  # above: its newest photo was purged since
        elif above:
            hints[f] = draw(photo_id())  # all its photos purged; the hint stayed
    return hints, rows


def oracle(rows: dict[int, list[int]], before: int | None) -> list[int]:
    everything = sorted((i for photos in rows.values() for i in photos), reverse=True)
    return [i for i in everything if before is None or i < before]


async def all_pages(
    hints: dict[int, int],
    rows: Rows,
    start: int | None,
    size: int,
    prefetch: int,
    first: int,
    budget: int = PAGE_READS,
) -> list[list[int]]:
    """Every page from ``start`` on, following each page's position to the end; each
    page's reads are checked against the budget."""
    pages: list[list[int]] = []
    at: Position | None = Position(start)
    while at is not None:
        reads = len(rows.reads)
        merged = await merge_timeline(
            hints, rows.read, at, size, prefetch=prefetch, first_read=first, budget=budget
        )
        assert merged.reads == len(rows.reads) - reads <= budget
        assert len(merged.ids) == size or merged.after is None or merged.reads == budget
        pages.append(merged.ids)
        at = merged.after
    return pages


@settings(max_examples=300)
@given(
    following=followings(),
    size=st.integers(1, 25),
    prefetch=st.integers(0, 15),
    first=st.integers(1, 6),
    cursor=st.one_of(st.none(), photo_id()),
    budget=st.one_of(st.just(PAGE_READS), st.integers(1, 12)),
)
def test_paging_through_the_merge_gives_the_sorted_merge(
    following: tuple[dict[int, int], dict[int, list[int]]],
    size: int,
    prefetch: int,
    first: int,
    cursor: int | None,
    budget: int,
) -> None:
    """Exactly the sorted merge, in pages of ``size`` unless the budget of reads ran out
    (then short or, while a deep scan is under way, empty)."""
    hints, by_followee = following
    rows = Rows(by_followee)
    pages = asyncio.run(all_pages(hints, rows, cursor, size, prefetch, first, budget))
    expected = oracle(by_followee, cursor)
    merged = [i for page in pages for i in page]
    assert merged == expected
    if budget == PAGE_READS:  # more than these followees ever need: never short
        assert all(len(page) == size for page in pages[:-1])
    assert all(n > 0 for _, _, n in rows.reads)


@settings(max_examples=100)
@given(following=followings(), size=st.integers(1, 10), prefetch=st.integers(0, 5))
def test_a_page_reads_few_followees(
    following: tuple[dict[int, int], dict[int, list[int]]], size: int, prefetch: int
) -> None:
    """The merge is lazy: with exact hints, each batch of first reads puts its top
    followee's newest photo on the page, so a page of ``size`` reads the rows of at most
    ``size * (prefetch + 1)`` followees, however many there are."""
    _, by_followee = following
    hints = {f: photos[0] for f, photos in by_followee.items() if photos}
    rows = Rows(by_followee)
    merged = asyncio.run(merge_timeline(hints, rows.read, Position(None), size, prefetch=prefetch))
    assert merged.ids == oracle(by_followee, None)[:size]
    assert len({f for f, _, _ in rows.reads}) <= size * (prefetch + 1)


async def test_no_followees_and_followees_without_photos_give_an_empty_page() -> None:
    rows = Rows({1: [], 2: []})
    assert (await merge_timeline({}, rows.read, Position(None), 20)).ids == []
    assert await merge_timeline({2: 12345}, rows.read, Position(None), 20) == Merged([], None, 1)
    assert rows.reads == [(2, 12346, 4)]


def many_followees(count: int, per_followee: int, days: int) -> dict[int, list[int]]:
    """``count`` followees, each with ``per_followee`` photos spread over ``days``."""
    rng = random.Random(count)
    now = ids.EPOCH_MS + 400 * DAY_MS
    return {
        f: sorted(
            (
                ids.make_id(now - rng.randrange(days * DAY_MS), 0, f % 1024)
                for _ in range(per_followee)
            ),
            reverse=True,
        )
        for f in range(1, count + 1)
    }


async def test_a_page_reads_at_most_the_budget_whatever_its_cursor() -> None:
    """2,000 followees posting over a year: a page 300 days back would read every
    followee's rows (all of them posted since); it reads PAGE_READS of them, and the
    pages after it go on exactly, every one within the budget."""
    by_followee = many_followees(2000, 12, 365)
    hints = {f: photos[0] for f, photos in by_followee.items()}
    rows = Rows(by_followee)
    deep = ids.make_id(ids.EPOCH_MS + 100 * DAY_MS, 0, 0)  # 300 days before "now"
    expected = oracle(by_followee, deep)
    pages: list[list[int]] = []
    at: Position | None = Position(deep)
    while at is not None and sum(map(len, pages)) < 60:
        reads = len(rows.reads)
        merged = await merge_timeline(hints, rows.read, at, 20)
        assert len(rows.reads) - reads <= PAGE_READS
        pages.append(merged.ids)
        at = merged.after
    assert [i for page in pages for i in page] == expected[: sum(map(len, pages))]
    assert sum(map(len, pages)) >= 60
    # The first page, from the newest, stays as cheap as it was.
    first = Rows(by_followee)
    merged = await merge_timeline(hints, first.read, Position(None), 20)
    assert merged.ids == oracle(by_followee, None)[:20] and len(first.reads) < 40


async def test_a_deep_scan_keeps_at_most_scan_ids_and_pages_stay_exact() -> None:
    """A page of more than SCAN_IDS ids below a deep cursor: the scan's cursor keeps
    SCAN_IDS of them (its size stays bounded whatever the page size), and paging on
    still gives exactly the sorted merge."""
    by_followee = many_followees(300, 3, 30)
    hints = {f: photos[0] for f, photos in by_followee.items()}
    rows = Rows(by_followee)
    deep = ids.make_id(ids.EPOCH_MS + 395 * DAY_MS, 0, 0)  # 5 days before "now"
    merged_ids: list[int] = []
    at: Position | None = Position(deep)
    while at is not None:
        merged = await merge_timeline(hints, rows.read, at, 150, budget=50)
        assert merged.reads <= 50 and len(merged.ids) <= SCAN_IDS
        merged_ids += merged.ids
        at = merged.after
        assert at is None or len(at.found) <= SCAN_IDS
    assert merged_ids == oracle(by_followee, deep)
