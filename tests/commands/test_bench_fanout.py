"""`python -m bench.fanout rows` counts what a page reads through the real services:
after `bench seed` fills the inboxes, a first page merges one inbox query; a page below
the inbox window merges followees' rows, as before the fan-out."""

from __future__ import annotations

import argparse

from bench import fanout, seed
from instastore.config import Settings


def rows_args(**overrides) -> argparse.Namespace:
    values = dict(reader="reader0", order="recent", days_back=0, samples=3, walk=False)
    return argparse.Namespace(**(values | overrides))


async def test_rows_counts_one_inbox_query_a_first_page_and_followee_rows_below(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(seed, "STATE_DIR", tmp_path / "state")
    settings = Settings(data_dir=tmp_path / "data")
    await seed.seed(
        settings, posters=30, readers=1, photos=300, pool=1, days=90, follows_per_reader=1
    )

    first = (await fanout.measure_rows(rows_args(), settings))["results"]
    assert first["warm_items"]["p50"] == 20
    assert first["warm_example"]["by_call"].get("inbox_ids") == 1
    assert "user_photo_ids" not in first["warm_example"]["by_call"]
    # A page of 20 asks 21 ids (one tells whether more follow); the inbox reads one more.
    assert 21 <= first["warm_merge_rows"]["max"] <= 22

    deep = rows_args(days_back=60, walk=True)
    below = (await fanout.measure_rows(deep, settings))["results"]
    assert "inbox_ids" not in below["warm_example"]["by_call"]
    assert below["warm_merge_queries"]["p50"] >= 1
    assert below["walk_to_first_page_of_photos"]["items"] >= 20
