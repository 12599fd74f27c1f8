"""Which term a title search walks, on both adapters: the rarest, whatever its length.

A search walks the postings of one term and probes the others for each; the longest
term used to be walked, so a rare short word beside a common long one read the common
word's postings up to the budget, and its cursors led through all of them."""

from __future__ import annotations

import uuid

from instastore import ids, search

from ..factories import make_photo, new_id

DAY_MS = 24 * 3600 * 1000


async def test_the_rarest_term_is_walked_whatever_its_length(stores):
    tag = uuid.uuid4().hex[:8]  # words no other test uses
    common, rare = f"commonplace{tag}", f"r{tag}"
    owner = new_id()
    now = ids.now_ms()
    saved = []
    for k in range(30):  # newest first, half a day apart: over 3 buckets
        title = f"{common} {rare}" if k == 20 else f"{common} {k}"
        photo = make_photo(owner, title, photo_id=new_id(now - k * DAY_MS // 2))
        saved.append(photo.id)
        await stores.photos.save_photo(photo, search.terms(title))

    hits = await stores.search.search_terms(search.terms(f"{common} {rare}"), None, 10, 1000)
    assert (hits.ids, hits.stopped_at) == ([saved[20]], None)
    assert hits.read == 1  # the rare word's one posting, not the common word's 30
    assert hits.counted <= 2 * search.RARITY_PROBE

    # Under a budget of 5 the common word's walk stopped after 5 postings, short of the match.
    hits = await stores.search.search_terms(search.terms(f"{rare} {common}"), None, 10, 5)
    assert (hits.ids, hits.stopped_at, hits.read) == ([saved[20]], None, 1)


def test_the_walk_order_is_rarest_then_longest():
    assert search.walk_order(["aa", "b", "cccc"], {"aa": 3, "b": 1, "cccc": 3}) == [
        "b",
        "cccc",
        "aa",
    ]
    assert search.walk_order(["x", "yyy", "x"], {"x": 7, "yyy": 7}) == ["yyy", "x"]
