"""Issue 10, item 13, on both adapters: the deployment's cursor key is made once and
shared, and a page whose photos are all hidden ends on a cursor that tells nothing."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import struct
import uuid

from instastore import paging
from instastore.model import User, Visibility
from instastore.photos import Photos
from instastore.social import Audience
from instastore.storage import open_stores

from ..factories import make_photo, new_id


async def test_server_key_is_made_once_and_every_caller_gets_it(stores, adapter_settings):
    name = f"test-{uuid.uuid4().hex[:8]}"
    candidates = [os.urandom(32) for _ in range(8)]
    got = await asyncio.gather(*(stores.keys.server_key(name, c) for c in candidates))
    assert len(set(got)) == 1 and got[0] in candidates
    other = await open_stores(adapter_settings)  # another process or server of the deployment
    try:
        assert await other.keys.server_key(name, os.urandom(32)) == got[0]
    finally:
        await other.close()
    assert await stores.keys.server_key(f"{name}-2", candidates[0]) == candidates[0]  # per name


async def test_a_page_of_hidden_photos_ends_on_a_cursor_that_tells_nothing(
    stores, adapter_settings
):
    owner = new_id()
    hidden = [
        dataclasses.replace(make_photo(owner, f"hidden {i}"), visibility=Visibility.PRIVATE)
        for i in range(20)
    ]
    for photo in hidden:
        await stores.photos.save_photo(photo, [])
    photos = Photos(stores.photos, stores.search, adapter_settings)
    stranger = User(new_id(), "stranger", "")
    page = await photos.by_user(
        owner,
        limit=1,
        allowed=Audience(stores.accounts, stores.graph, stranger).filter,
        viewer_id=stranger.id,
    )
    assert page.items == [] and page.next_cursor is not None  # the rounds ran out on hidden photos
    raw = base64.urlsafe_b64decode(page.next_cursor + "=" * (-len(page.next_cursor) % 4))
    for photo in hidden:
        for fragment in (
            struct.pack(">Q", photo.id),
            struct.pack(">Q", photo.id)[:5],
        ):  # the id, its time bits
            assert fragment not in raw
    scope = paging.Scope("user photos", (owner, stranger.id))
    assert photos.cursors.decode_cursor(page.next_cursor, scope) in {
        p.id for p in hidden
    }  # still a working cursor
