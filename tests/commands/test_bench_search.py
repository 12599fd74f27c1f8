"""`python -m bench.search` measures what it says: the postings a search of two words
that rarely meet reads per request, and the pages its cursors take to find both matches.
No timing is asserted."""

from __future__ import annotations

from bench import search as bench_search
from instastore.config import Settings
from instastore.storage import open_stores


async def test_the_bench_counts_postings_read_and_pages(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", search_postings=100)
    stores = await open_stores(settings)
    try:
        figures = await bench_search.measure(stores, settings, "embedded", 600, 2)
    finally:
        await stores.close()
    assert figures["postings"] == {"sunset": 301, "harbour": 301}  # 2 titles have both
    assert figures["first_page"]["postings_read_per_search"] == 100
    walk = figures["until_both_matches"]
    assert (walk["found"], walk["pages"], walk["postings_read"]) == (2, 4, 301)
    assert figures["other_metadata_call_during_searches"]["calls"] >= 1
