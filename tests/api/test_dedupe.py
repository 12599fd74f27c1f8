"""Content dedupe through the HTTP API, on both adapters: an upload of bytes already
stored answers exactly as any upload does (201, the same fields, its own id and media
URLs), for photos and videos; its media read the same bytes; two users upload the same
image, one deletes and is purged, the other's photo still reads byte-identical."""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

import pytest
from instastore.server.app import create_app
from instastore.server.keys import SERVICES

from instastore.clock import utcnow
from instastore.lifecycle import gc, purge
from instastore.storage import open_stores

from .. import samples
from ..factories import Api, store_calls


@pytest.fixture
async def uncached_api(aiohttp_client, adapter_settings):
    """Media read from the stores on every request (no media cache)."""
    settings = dataclasses.replace(adapter_settings, uploads_per_minute=1000, media_cache_bytes=0)
    return Api(await aiohttp_client(create_app(settings)), settings)


def unique(kind: str) -> bytes:
    """Bytes no other test uploads (the cluster's keyspace is shared by the session)."""
    if kind == "video":
        return samples.video(frames=random.randrange(6, 30), size=(64, 48))
    return samples.picture(size=(480, 360), seed=random.randrange(2**31))


async def media_bytes(api: Api, headers, body: dict) -> dict[str, bytes]:
    got = {}
    for name, url in body["media"].items():
        resp = await api.get(url, headers=headers)
        assert resp.status == 200, (name, resp.status)
        got[name] = await resp.read()
    return got


def shape(body: dict) -> dict:
    """The answer without what is each photo's own (id, title, owner, time, URLs)."""
    own = {"id", "title", "owner", "created_at", "media"}
    return {k: v for k, v in body.items() if k not in own} | {"media": sorted(body["media"])}


@pytest.mark.parametrize("kind", ["photo", "video"])
async def test_a_deduplicated_upload_answers_like_any_upload(uncached_api, kind):
    api = uncached_api
    data = unique(kind)
    _, alice = await api.user()
    _, bob = await api.user()
    first = await api.upload(alice, data, "first")
    again = await api.upload(bob, data, "again")
    assert first.status == again.status == 201
    assert sorted(first.headers) == sorted(again.headers)
    a, b = await first.json(), await again.json()
    assert set(a) == set(b) and shape(a) == shape(b)
    assert a["id"] != b["id"] and a["title"] == "first" and b["title"] == "again"
    assert set(a["media"].values()).isdisjoint(b["media"].values())  # their own secrets
    assert await media_bytes(api, alice, a) == await media_bytes(api, bob, b)
    assert (await media_bytes(api, bob, b))["original"] == data
    # the same shape as a photo stored with bytes of its own
    other = await api.photo(alice, unique(kind), "other bytes")
    assert set(other) == set(b) and sorted(other["media"]) == sorted(b["media"])


async def test_a_deduplicated_upload_writes_before_answering_what_a_stored_one_does(
    uncached_api,
):
    """Its client cannot tell by the time either that someone stores these bytes: it
    processes and writes the same blobs as a stored upload before answering (they go
    after), so the two answers wait for the same store calls."""
    api = uncached_api
    data = unique("photo")
    _, alice = await api.user()
    _, stranger = await api.user()

    async def upload(headers) -> tuple[dict, dict]:
        before = store_calls()
        resp = await api.upload(headers, data, "the same bytes")
        assert resp.status == 201, await resp.text()
        after = store_calls()
        calls = {k: v - before.get(k, 0) for k, v in after.items()}
        writes = {k: n for k, n in calls.items() if k[1] == "put" and n}
        return writes, await resp.json()

    (stored, first), (deduplicated, again) = [await upload(h) for h in (alice, stranger)]
    assert stored == deduplicated and stored
    await api.client.app[SERVICES].uploads.removals_done()  # its own blobs are gone now
    assert await media_bytes(api, stranger, again) == await media_bytes(api, alice, first)


async def test_one_of_two_users_deletes_and_is_purged_the_other_still_reads(uncached_api):
    api = uncached_api
    data = unique("photo")
    _, alice = await api.user()
    _, bob = await api.user()
    a = await api.photo(alice, data, "alice's")
    b = await api.photo(bob, data, "bob's")
    expected = await media_bytes(api, bob, b)
    assert (await api.delete(f"/v1/photos/{a['id']}", headers=alice)).status == 204

    stores = await open_stores(api.settings)  # the purge job's own, as in its process
    try:
        later = utcnow() + timedelta(days=api.settings.retention_days, seconds=1)
        report = await purge.purge(stores.photos, stores.blobs, api.settings, now=later)
        assert report.purged >= 1
        assert await stores.photos.get_photo(int(a["id"])) is None
        assert (await gc.gc(stores.photos, stores.blobs, api.settings)).removed == 0
    finally:
        await stores.close()
    assert (await api.get(a["media"]["large"])).status == 404
    assert await media_bytes(api, bob, b) == expected  # byte-identical
