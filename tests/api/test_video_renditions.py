"""Video that plays in every browser, through the HTTP API: what phones and cameras
write (HEVC in QuickTime with a rotation and a location, VP9 in MP4, ProRes, H.264 of odd
size, 10-bit, variable frame rate, with and without audio) is answered "processing" and
then has a "video" rendition in H.264 High, yuv420p, in MP4, upright, with no location in
any byte a viewer can fetch; a failure is "failed" to viewers and says why to its owner;
bounds are checked before decoding (422)."""

from __future__ import annotations

import dataclasses
import io

import av
import pytest
from instastore.server.app import create_app
from instastore.server.keys import SERVICES
from PIL import Image

from .. import samples
from ..factories import Api, problem
from .test_photos import ready

RED, BLUE = (230, 20, 20), (20, 40, 220)
# (what it is, the clip, whether it is stream-copied, its upright width and height)
CLIPS = {
    "hevc-mov-rotated-with-location": (
        lambda: samples.clip(
            "mov", "libx265", rotation=-90, audio="aac", metadata=samples.VIDEO_METADATA
        ),
        False,
        (48, 64),
    ),
    "vp9-in-mp4-with-opus": (
        lambda: samples.clip("mp4", "libvpx-vp9", audio="libopus"),
        False,
        (64, 48),
    ),
    "prores": (lambda: samples.clip("mov", "prores_ks", pix_fmt="yuv422p10le"), False, (64, 48)),
    "h264-odd-size": (
        lambda: samples.clip("mp4", "libx264", (65, 47), pix_fmt="yuv444p"),
        False,
        (65, 47),
    ),
    "h264-10-bit": (lambda: samples.clip("mp4", "libx264", pix_fmt="yuv420p10le"), False, (64, 48)),
    "h264-variable-rate": (lambda: samples.clip("mp4", "h264", vfr=True), True, (64, 48)),
    "h264-60-fps": (lambda: samples.clip("mp4", "h264", rate=60, frames=30), False, (64, 48)),
    "h264-aac-portrait": (
        lambda: samples.clip("mov", "h264", rotation=90, audio="aac"),
        True,
        (48, 64),
    ),
}


def near(pixel, colour) -> bool:
    return all(abs(a - b) < 60 for a, b in zip(pixel[:3], colour, strict=True))


def assert_upright(image: Image.Image, rotation: int) -> None:
    """The red quadrant where the upright picture has it: top left of the stored picture,
    turned as the display matrix says (here -90: clockwise, to the top right)."""
    w, h = image.size
    red = {0: (w // 4, h // 4), 90: (w // 4, 3 * h // 4), -90: (3 * w // 4, h // 4)}[rotation]
    assert near(image.getpixel(red), RED), image.getpixel(red)
    assert near(image.getpixel((w - 1 - red[0], h - 1 - red[1])), BLUE)


@pytest.mark.parametrize("name", list(CLIPS))
async def test_every_kind_of_video_gets_a_browser_safe_rendition(api, name):
    make, copied, shown = CLIPS[name]
    data = make()
    _, owner = await api.user()
    _, stranger = await api.user()
    body = await api.photo(owner, data, name)
    assert body["video_status"] == ("ready" if copied else "processing")
    assert (body["width"], body["height"]) == shown
    body = await ready(api, body["id"], owner)
    seen = await (await api.get(f"/v1/photos/{body['id']}", headers=stranger)).json()
    assert seen["video_status"] == "ready" and set(seen["media"]) == {
        "thumb",
        "large",
        "poster",
        "video",
    }
    fetched = {n: await (await api.get(url)).read() for n, url in seen["media"].items()}
    for blob in (*fetched.values(), str(seen).encode()):
        for needle in (b"37.7858", b"\xa9xyz", b"iPhone", b"com.apple.quicktime"):
            assert needle not in blob
    rotation = {"hevc-mov-rotated-with-location": -90, "h264-aac-portrait": 90}.get(name, 0)
    poster = Image.open(io.BytesIO(fetched["poster"]))
    assert poster.size == shown
    assert_upright(poster, rotation)
    with av.open(io.BytesIO(fetched["video"])) as played:
        stream = played.streams.video[0]
        assert played.format.name.startswith("mov,mp4")
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert stream.codec_context.profile in ("High", "Main", "Constrained Baseline")
        assert [s.codec_context.name for s in played.streams.audio] in ([], ["aac"])
        first = next(played.decode(video=0))
        # A stream copy keeps the display matrix, which players apply; a transcode turns
        # the pixels themselves.
        turned = first.to_image().rotate(first.rotation or 0, expand=True)
        assert turned.size[0] == pytest.approx(shown[0], abs=1)
        assert_upright(turned, rotation)
        assert max(turned.size) <= 1080
    assert fetched["video"].index(b"moov") < fetched["video"].index(b"mdat")  # faststart
    original = await api.get(body["media"]["original"], headers=owner)
    assert await original.read() == data  # the owner's upload, byte for byte


async def test_a_failed_video_tells_its_owner_why_and_viewers_only_that_it_failed(api):
    _, owner = await api.user()
    _, stranger = await api.user()
    body = await api.photo(owner, samples.clip("webm", "libvpx"), "doomed")
    services = api.client.app[SERVICES]
    # What the worker writes when a transcode fails (its paths: tests/contract).
    await services._stores.photos.finish_video(
        int(body["id"]), None, "the decoder crashed (SIGSEGV)"
    )
    services.photos.records.drop(int(body["id"]))
    mine = await (await api.get(f"/v1/photos/{body['id']}", headers=owner)).json()
    assert mine["video_status"] == "failed"
    assert mine["video_failure"] == "the decoder crashed (SIGSEGV)"
    assert "original" in mine["media"] and "video" not in mine["media"]
    theirs = await (await api.get(f"/v1/photos/{body['id']}", headers=stranger)).json()
    assert theirs["video_status"] == "failed" and "video_failure" not in theirs
    assert set(theirs["media"]) == {"thumb", "large", "poster"}


@pytest.fixture
async def strict_api(aiohttp_client, adapter_settings):
    settings = dataclasses.replace(
        adapter_settings, uploads_per_minute=1000, max_video_seconds=1, transcode_workers=0
    )
    client = await aiohttp_client(create_app(settings))
    return Api(client, settings)


async def test_a_video_longer_than_the_limit_is_refused_before_decoding(strict_api):
    _, headers = await strict_api.user()
    resp = await strict_api.upload(headers, samples.clip(frames=36), "three seconds")
    assert "over the limit of 1 s" in (await problem(resp, 422))["detail"]


async def test_a_video_declaring_a_frame_rate_past_the_limit_is_refused(strict_api):
    _, headers = await strict_api.user()
    resp = await strict_api.upload(headers, samples.clip(rate=1000, frames=4), "fast")
    assert "frames a second, over 240" in (await problem(resp, 422))["detail"]


async def test_a_replaced_rendition_is_never_served_from_memory_of_the_old_one(api):
    """A backfill replaces a stream copy by a transcode; a process that kept the old
    copy's bytes in memory serves the new ones once its record cache has the new record
    (here: the record dropped, the media bytes left, as on another host)."""
    _, owner = await api.user()
    body = await api.photo(owner, samples.clip("mp4", "h264", frames=6), "old copy")
    old = await (await api.get(body["media"]["video"])).read()  # now in memory
    services = api.client.app[SERVICES]
    stores, photo_id = services._stores, int(body["id"])
    photo = await stores.photos.get_photo(photo_id)
    new = samples.clip("mp4", "h264", frames=12)
    key = f"replaced/{photo_id}.web.mp4"

    async def chunks():
        yield new

    await stores.blobs.put(key, chunks())
    made = dataclasses.replace(photo.rendition("video"), locator=key, size=len(new))
    assert await stores.photos.finish_video(photo_id, photo.rendition("video").locator, made)
    services.photos.records.drop(photo_id)
    served = await (await api.get(body["media"]["video"])).read()
    assert served == new != old


@pytest.mark.parametrize("container", ["mp4", "mov"])
async def test_sound_without_a_picture_is_refused(api, container):
    _, headers = await api.user()
    resp = await api.upload(headers, samples.audio_only(container), "just sound")
    assert "no video stream" in (await problem(resp, 422))["detail"]
