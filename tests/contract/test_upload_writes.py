"""The upload's blob writes overlap, on both adapters: the original is written while the
media are decoded and the renditions all at once, and an upload that fails (a write, or
the decode) leaves none of its blobs behind, whatever was in flight when it failed.

Faults are injected by wrapping the real blob store, never by mocking it."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import random

import pytest
from PIL import Image

from instastore import errors
from instastore.ids import IdGenerator
from instastore.model import Visibility
from instastore.photos import Photos
from instastore.uploads import Uploads, receive

from ..factories import make_user

WAIT_S = 3  # how long a write waits for the ones it must overlap: a deadlock guard only


class WatchedBlobs:
    """The real blob store; it notes every ``put`` begun (by rendition name) and fails
    the puts named in ``failing``."""

    def __init__(self, real) -> None:
        self.real = real
        self.begun: dict[str, asyncio.Event] = {}
        self.keys: list[str] = []
        self.failing: set[str] = set()
        self.wait_for: dict[str, str] = {}  # a put of the first waits for one of the second

    def __getattr__(self, name):
        return getattr(self.real, name)

    async def put(self, key, chunks):
        name = key.rsplit(".", 2)[-2]  # <bucket>/<photo>.<rendition>.<extension>
        self.keys.append(key)
        self.begun.setdefault(name, asyncio.Event()).set()
        if (other := self.wait_for.get(name)) is not None:
            event = self.begun.setdefault(other, asyncio.Event())
            await asyncio.wait_for(event.wait(), WAIT_S)
        if name in self.failing:
            raise errors.Unavailable(f"injected: the {name} write failed")
        return await self.real.put(key, chunks)

    async def left(self) -> list[str]:
        """The keys put so far that hold a blob now."""
        present = []
        for key in self.keys:
            try:
                await self.real.size(key)
            except errors.NotFound:
                continue
            present.append(key)
        return present


@dataclasses.dataclass
class Rig:
    uploads: Uploads
    blobs: WatchedBlobs

    async def upload(self, data: bytes):
        async def chunks():
            yield data

        received = await receive(chunks(), len(data), self.uploads.tmp_dir)
        try:
            return await self.uploads.create(
                make_user(), received, "a photo", Visibility.PUBLIC, None
            )
        finally:
            received.discard()


@pytest.fixture
async def rig(stores, adapter_settings, tmp_path):
    settings = dataclasses.replace(adapter_settings, data_dir=tmp_path / "d")
    blobs = WatchedBlobs(stores.blobs)
    uploads = Uploads(
        stores.claims,
        stores.photos,
        blobs,
        settings,
        IdGenerator(worker_id=12),
        Photos(stores.photos, stores.search, settings),
        stores.transcodes,
    )
    yield Rig(uploads, blobs)
    uploads.close()


def jpeg(size=(1600, 1200)) -> bytes:
    """Bytes no other upload has (the cluster's keyspace is shared by the session)."""
    image = Image.effect_noise(size, 40).convert("RGB")
    image.paste(tuple(random.randrange(256) for _ in range(3)), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


async def test_the_original_is_written_beside_the_renditions(rig):
    """The original's write is still open when the renditions' begin: each waits for
    the other (written one after the other, the upload would fail after WAIT_S)."""
    rig.blobs.wait_for = {"original": "large", "large": "thumb"}
    photo, created = await rig.upload(jpeg())
    assert created
    assert {r.name for r in photo.renditions} == {"original", "large", "thumb"}
    assert sorted(await rig.blobs.left()) == sorted(r.locator for r in photo.renditions)


@pytest.mark.parametrize("failing", ["original", "large"])
async def test_a_failed_write_leaves_none_of_the_uploads_blobs(rig, failing):
    """One write fails while the others are in flight or done: the upload fails and
    every blob it wrote is removed."""
    rig.blobs.failing = {failing}
    rig.blobs.wait_for = {failing: "thumb"}  # fail once the other writes are under way
    with pytest.raises(errors.Unavailable):
        await rig.upload(jpeg())
    assert {"original", "large", "thumb"} <= set(rig.blobs.begun)
    assert await rig.blobs.left() == []


async def test_an_image_that_does_not_decode_leaves_no_blob(rig):
    """The original's write begins before the decode fails: it ends, then is removed."""
    data = jpeg()
    with pytest.raises(errors.InvalidMedia):
        await rig.upload(data[: len(data) // 2])
    assert set(rig.blobs.begun) == {"original"}
    assert await rig.blobs.left() == []
