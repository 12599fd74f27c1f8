"""Media of a photo packed into a volume while the service runs, on both adapters, with
the media cache on and off: every rendition (whole and ranged) answers the same bytes
before, while (the service's record cache still names the landed blobs) and after."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import pytest
from instastore.server.app import create_app
from instastore.server.keys import SERVICES

from instastore.lifecycle import packing, volumes
from instastore.storage import open_stores

from .. import samples
from ..factories import Api


@pytest.fixture(params=["cached", "streamed"])
async def media_api(request, aiohttp_client, adapter_settings):
    cache = 0 if request.param == "streamed" else adapter_settings.media_cache_bytes
    settings = dataclasses.replace(
        adapter_settings, uploads_per_minute=1000, media_cache_bytes=cache
    )
    return Api(await aiohttp_client(create_app(settings)), settings)


async def every_rendition(api: Api, headers, media: dict) -> dict[str, tuple[bytes, bytes]]:
    """Each rendition's whole body and bytes 10-19 of it."""
    got = {}
    for name, url in media.items():
        whole = await api.get(url, headers=headers)
        part = await api.get(url, headers={**headers, "Range": "bytes=10-19"})
        assert whole.status == 200 and part.status == 206, (name, whole.status, part.status)
        got[name] = (await whole.read(), await part.read())
    return got


async def pack_one(stores, settings, photo_id: int) -> None:
    """The packer's steps, for this test's photo alone (other tests' photos share the
    cluster's keyspace), with its real wait for other processes' record caches."""
    photo = await stores.photos.get_photo(photo_id)
    mine = {r.name: r.locator for r in photo.renditions}
    landed = packing._Landed([(photo, mine)], {key: [photo_id] for key in mine.values()})
    generator = packing.ids.IdGenerator(settings.fixed_worker_id or 0)
    (draft,) = await packing._plans(stores.blobs, landed, generator, settings, lambda _: None)
    packer = packing.Mover(
        stores.photos, stores.blobs, packing.PackReport(), lambda _: None, packing.LANDED_GRACE_S
    )
    await packer.write(draft.plan, draft.sources)
    await packer.finish(draft.plan, may_drop_volume=False)


async def test_media_reads_the_same_before_while_and_after_packing(media_api):
    _, headers = await media_api.user()
    # bytes of its own: the same bytes would reuse another test's photo, packed already
    data = samples.picture(size=(1600, 1200), seed=random.randrange(2**31))
    body = await media_api.photo(headers, data, "packed")
    services = media_api.client.app[SERVICES]
    before = await every_rendition(media_api, headers, body["media"])
    assert len(before) >= 3

    stores = await open_stores(media_api.settings)  # the packer's own, as in its process
    try:
        packing_task = asyncio.create_task(pack_one(stores, media_api.settings, int(body["id"])))
        await asyncio.sleep(1)  # switched by now; the landed blobs wait out the record cache
        assert await every_rendition(media_api, headers, body["media"]) == before
        await packing_task
        record = await stores.photos.get_photo(int(body["id"]))
    finally:
        await stores.close()
    assert all(volumes.is_needle(r.locator) for r in record.renditions)
    services.photos.media.drop_prefix(f"{body['id']}/")  # read every byte from the volume
    assert await every_rendition(media_api, headers, body["media"]) == before
