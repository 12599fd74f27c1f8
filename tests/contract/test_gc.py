"""`instastore gc`'s sweep on both adapters: orphan blobs go, blobs of photos stay, and
blobs too young to judge (an upload may still be writing its record) stay."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from instastore import ids
from instastore.model import Rendition
from instastore.uploads import ORPHAN_GRACE, blob_key, sweep_orphans

from .conftest import make_photo, new_id


async def one(data: bytes):
    yield data


async def test_sweep_removes_only_old_orphans(stores):
    now = datetime.now(UTC)
    old_ms = ids.now_ms() - int((ORPHAN_GRACE + timedelta(hours=2)).total_seconds() * 1000)
    orphan_id, kept_id, young_id = new_id(old_ms), new_id(old_ms), new_id()
    orphan_key = blob_key(orphan_id, "original", "jpg")
    kept_key = blob_key(kept_id, "original", "jpg")
    young_key = blob_key(young_id, "original", "jpg")
    for key in (orphan_key, kept_key, young_key):
        await stores.blobs.put(key, one(b"bytes"))
    photo = dataclasses.replace(make_photo(new_id(), photo_id=kept_id),
                                renditions=(Rendition("original", kept_key, "image/jpeg", 5),))
    await stores.metadata.save_photo(photo, [])

    report = await sweep_orphans(stores, now=now)
    assert report.removed >= 1 and report.young >= 1
    keys = {k async for k in stores.blobs.keys()}
    assert orphan_key not in keys
    assert kept_key in keys and young_key in keys
    again = await sweep_orphans(stores, now=now + timedelta(seconds=1))
    assert again.removed == 0  # idempotent: nothing left to remove
    assert kept_key in {k async for k in stores.blobs.keys()}
