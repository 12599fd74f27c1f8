"""What one title search costs when two common words rarely meet: postings read and time
per search, and on the embedded store how long other metadata calls wait meanwhile.

    python -m bench.search [--store embedded|cluster] [--photos N] [--searches N] [--commit C]

Seeds a store of its own (a temporary folder, or a fresh keyspace on the running local
cluster, dropped after) with N photo records over 60 days: titled "sunset <k>" and
"harbour <k>" in turn, and the two oldest "sunset harbour". Then it times the first page
of "sunset harbour" through the core (``Photos.search``, 20 a page) again and again, and
follows its cursors until both matches are found. Meanwhile a task reads one photo record
in a loop: its latency is how long a search holds the store from every other call (the
SQLite thread, on the embedded store).

It then times "sunset <k>" for one photo's own number k in the middle: a common word
beside a rare, shorter one (the rarest term walked, or the longest), with the postings
read until the search has said all it has (its cursors followed to the end).

``--commit C`` runs the same against an export of that commit (the figures before a
change). Postings read are counted by the index (``TermHits.read``); where the index does
not count them (before the bound), they are what its plan reads for the query: every
posting of both words (SQLite's GROUP BY) or of the longest (the Cassandra walk).
Results: bench/results/search-<store>-<photos>[-<commit>].json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

# The commit is read as the run starts (bench.report). With --commit the measuring child
# runs this file with that commit's tree first on the path: its bench.report then.
from bench import report

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = ("sunset", "harbour")  # "harbour", the longest, is the word a search walks
QUERY = "sunset harbour"
DAYS_MS = 60 * 24 * 3600 * 1000  # the photos' ids spread over this (Cassandra's buckets)
SEED_CONCURRENCY = 16  # saves in flight while seeding


class CountedIndex:
    """The title index, counting what the searches through it read."""

    def __init__(self, index: Any, plan_postings: int) -> None:
        self.index = index
        self.plan_postings = plan_postings  # what an index that does not count reads
        self.read = 0
        self.counted = 0  # index entries counted to choose the term walked

    async def search_terms(self, *args: Any) -> Any:
        hits = await self.index.search_terms(*args)
        self.read += getattr(hits, "read", self.plan_postings)
        self.counted += getattr(hits, "counted", 0)
        return hits


async def seed(stores: Any, count: int) -> tuple[dict[str, int], int]:
    """``count`` photo records, newest first: one word each, the two oldest both. Returns
    the postings of each word and the newest photo's id."""
    from instastore import ids, search
    from instastore.model import Kind, Photo

    now = ids.now_ms()
    gate = asyncio.Semaphore(SEED_CONCURRENCY)
    postings = dict.fromkeys(WORDS, 0)

    async def save(k: int) -> None:
        title = QUERY if k >= count - 2 else f"{WORDS[k % 2]} {k}"
        photo_id = ids.make_id(now - k * DAYS_MS // count, 9, k % 1024)
        for word in WORDS:
            postings[word] += word in title.split()
        photo = Photo(
            id=photo_id,
            owner_id=1,
            title=title,
            kind=Kind.PHOTO,
            secret=uuid.uuid4().hex,
            sha256="ab" * 32,
            created_at=ids.created_at(photo_id),
        )
        async with gate:
            await stores.photos.save_photo(photo, search.terms(title))

    await asyncio.gather(*(save(k) for k in range(count)))
    return postings, ids.make_id(now, 9, 0)


async def measure(stores: Any, settings: Any, store: str, count: int, searches: int) -> dict:
    from instastore.photos import Photos

    postings, photo_id = await seed(stores, count)
    plan = sum(postings.values()) if store == "embedded" else postings["harbour"]
    index = CountedIndex(stores.search, plan)
    photos = Photos(stores.photos, index, settings)  # type: ignore[arg-type]
    waits: list[float] = []
    done = asyncio.Event()

    async def other_calls() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await stores.photos.get_photo(photo_id)
            waits.append(time.perf_counter() - started)
            await asyncio.sleep(0.002)

    watcher = asyncio.ensure_future(other_calls())
    times = []
    for _ in range(searches):
        started = time.perf_counter()
        await photos.search(QUERY, limit=20)
        times.append(time.perf_counter() - started)
    first_read = index.read / searches

    index.read = 0
    started = time.perf_counter()
    found: list[int] = []
    pages, cursor = 0, None
    while True:
        page = await photos.search(QUERY, cursor=cursor, limit=20)
        pages += 1
        found += [p.id for p in page.items]
        if page.next_cursor is None or len(found) == 2:
            break
        cursor = page.next_cursor
    both_s = time.perf_counter() - started
    both_read = index.read
    rare = await rare_beside_common(photos, index, count, searches)
    done.set()
    await watcher
    times.sort()
    waits.sort()
    return {
        "photos": count,
        "postings": postings,
        "first_page": {
            "searches": searches,
            "postings_read_per_search": round(first_read),
            "ms_p50": round(times[len(times) // 2] * 1000, 1),
            "ms_max": round(times[-1] * 1000, 1),
        },
        "until_both_matches": {
            "pages": pages,
            "found": len(found),
            "postings_read": both_read,
            "ms": round(both_s * 1000, 1),
        },
        "rare_beside_common": rare,
        "other_metadata_call_during_searches": {
            "calls": len(waits),
            "ms_p50": round(waits[len(waits) // 2] * 1000, 2),
            "ms_p99": round(waits[int(len(waits) * 0.99)] * 1000, 2),
            "ms_max": round(waits[-1] * 1000, 2),
        },
    }


async def rare_beside_common(photos: Any, index: CountedIndex, count: int, searches: int) -> dict:
    """ "sunset <k>" (one photo's own number, shorter than "sunset"): time per search to
    its end (every cursor followed), postings walked and entries counted per search."""
    k = count // 2 - (count // 2) % 2  # an even k: a "sunset" photo
    query = f"{WORDS[0]} {k}"
    index.read = index.counted = 0
    times, found = [], 0
    for _ in range(searches):
        started = time.perf_counter()
        cursor = None
        while True:
            page = await photos.search(query, cursor=cursor, limit=20)
            found += len(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        times.append(time.perf_counter() - started)
    times.sort()
    return {
        "query": query,
        "found_per_search": found / searches,
        "postings_read_per_search": round(index.read / searches),
        "entries_counted_per_search": round(index.counted / searches),
        "ms_p50": round(times[len(times) // 2] * 1000, 1),
        "ms_max": round(times[-1] * 1000, 1),
    }


async def run(store: str, count: int, searches: int) -> dict:
    from instastore.config import Settings

    folder = Path(tempfile.mkdtemp(prefix="bench-search-"))
    try:
        if store == "embedded":
            return await _measured(Settings(data_dir=folder / "data"), store, count, searches)
        return await _on_cluster(folder, count, searches)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _on_cluster(folder: Path, count: int, searches: int) -> dict:
    """The figures on the running local cluster, in a keyspace of their own (dropped)."""
    from instastore.cluster import LocalCluster, default_cluster_dir
    from instastore.config import Settings
    from instastore.storage.cassandra.migrate import migrate
    from instastore.storage.cassandra.session import build_cluster

    settings = Settings.from_sources(
        environ=LocalCluster(default_cluster_dir()).client_settings(),
        overrides={
            "data_dir": folder / "data",
            "cassandra_keyspace": f"bench_search_{uuid.uuid4().hex[:8]}",
            "hdfs_root": f"/bench-search-{uuid.uuid4().hex[:8]}",
        },
    )
    driver = build_cluster(settings)
    session = driver.connect()
    try:
        migrate(session, settings, progress=lambda line: None)
        return await _measured(settings, "cluster", count, searches)
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=60)
        driver.shutdown()


async def _measured(settings: Any, store: str, count: int, searches: int) -> dict:
    from instastore.storage import open_stores

    stores = await open_stores(settings)
    try:
        return await measure(stores, settings, store, count, searches)
    finally:
        await stores.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    parser.add_argument("--store", choices=("embedded", "cluster"), default="embedded")
    parser.add_argument("--photos", type=int, default=40_000)
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--commit", default=None, help="measure this commit's code instead")
    parser.add_argument("--served", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.commit:
        from bench.hosts import export

        code = export(args.commit, Path(tempfile.mkdtemp(prefix="bench-search-code-")))
        argv = [a for a in sys.argv[1:] if a not in ("--commit", args.commit)]
        try:
            subprocess.run(
                [sys.executable, __file__, *argv, "--served", args.commit],
                env={**os.environ, "PYTHONPATH": str(code)},  # that commit's instastore
                check=True,
            )
        finally:
            shutil.rmtree(code, ignore_errors=True)
        return
    figures = asyncio.run(run(args.store, args.photos, args.searches))
    _write(f"{args.store}-{args.photos}", args.served, figures)
    print(figures)


def _write(name: str, commit: str | None, figures: dict) -> None:
    settings = {"query": QUERY, "page": 20}
    if commit is None:
        from instastore.config import Settings

        settings["search_postings"] = Settings().search_postings
    body = {
        "machine": report.machine(),
        "store": name.split("-")[0],
        "commit_served": commit or "this one",
        "settings": settings,
        "results": figures,
    }
    report.write(RESULTS, f"search-{name}{'-' + commit if commit else ''}", body)


if __name__ == "__main__":
    main()
