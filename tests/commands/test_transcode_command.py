"""`instastore transcode --backfill`: videos stored before the transcode queue (a stream
copy in QuickTime, HEVC copied into MP4, or no copy at all) get their browser-safe
rendition, with progress on stdout; a copy that plays everywhere already is left as it
is, and so are photos."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys

import av

from instastore.config import Settings
from instastore.lifecycle import volumes
from instastore.model import Kind, Rendition
from instastore.storage import open_stores
from instastore.storage.keys import blob_key
from instastore.video.queue import rendition_key

from .. import samples
from ..factories import make_photo, new_id

# name -> (the upload, the old "video" copy's bytes and type, or None: no copy)
LEGACY = {
    "mov-copy": (samples.clip("mov", "mpeg4"), "video/quicktime", "mov"),
    "hevc-in-mp4": (samples.clip("mp4", "libx265"), "video/mp4", "mp4"),
    "no-copy": (samples.clip("webm", "libvpx"), None, None),
    "h264-copy": (samples.clip("mp4", "h264"), "video/mp4", "mp4"),
}


async def store_legacy(settings: Settings) -> dict[str, int]:
    stores = await open_stores(settings)
    ids = {}
    try:

        async def put(key: str, data: bytes) -> None:
            async def chunks():
                yield data

            await stores.blobs.put(key, chunks())

        for name, (data, copy_type, ext) in LEGACY.items():
            photo_id = new_id()
            original = blob_key(photo_id, "original", "bin")
            await put(original, data)
            renditions = [Rendition("original", original, "video/mp4", len(data), 64, 48)]
            if copy_type is not None:
                copy = blob_key(photo_id, "video", ext)
                await put(copy, data)  # as the old stream copy was: the same streams
                renditions.append(Rendition("video", copy, copy_type, len(data), 64, 48))
            photo = dataclasses.replace(
                make_photo(new_id(), name, photo_id), kind=Kind.VIDEO, renditions=tuple(renditions)
            )
            await stores.photos.save_photo(photo, [])
            ids[name] = photo_id
        await stores.photos.save_photo(make_photo(new_id(), "a photo"), [])
    finally:
        await stores.close()
    return ids


async def renditions(settings: Settings, ids: dict[str, int], tmp_path) -> dict[str, tuple]:
    stores = await open_stores(settings)
    found = {}
    try:
        for name, photo_id in ids.items():
            photo = await stores.photos.get_photo(photo_id)
            video = photo.rendition("video")
            path = tmp_path / f"{name}.mp4"
            path.write_bytes(
                b"".join([c async for c in volumes.open_locator(stores.blobs, video.locator)])
            )
            with av.open(str(path)) as played:
                codec = played.streams.video[0].codec_context.name
            found[name] = (video.locator, video.content_type, codec, photo.transcode)
        assert await stores.transcodes.transcode_jobs(-1, 100) == []
    finally:
        await stores.close()
    return found


def test_backfill_makes_the_renditions_of_videos_stored_before_the_queue(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    ids = asyncio.run(store_legacy(settings))
    command = [sys.executable, "-m", "instastore", "transcode", "--backfill"]
    done = subprocess.run(
        [*command, "--data-dir", str(settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "backfill: 4 video(s) read, 3 queued" in lines
    assert lines[-1] == "transcode: 3 job(s) done, 0 queued"
    found = asyncio.run(renditions(settings, ids, tmp_path))
    for name in ("mov-copy", "hevc-in-mp4", "no-copy"):
        assert found[name] == (rendition_key(ids[name]), "video/mp4", "h264", None), name
    assert found["h264-copy"][:3] == (
        blob_key(ids["h264-copy"], "video", "mp4"),
        "video/mp4",
        "h264",
    )
    again = subprocess.run(
        [*command, "--data-dir", str(settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "backfill: 4 video(s) read, 0 queued" in again.stdout.splitlines()
