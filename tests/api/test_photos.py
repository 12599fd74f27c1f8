"""Uploads, metadata, media bytes and every rejection path of the upload code."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import threading
import uuid

import aiohttp
import av
import pytest
from instastore.server.app import create_app, metrics_app
from instastore.server.keys import SERVICES
from PIL import Image

from .. import samples
from ..factories import Api, problem
from .test_metrics import scrape, total

FORMATS = [
    ("JPEG", "image/jpeg"),
    ("PNG", "image/png"),
    ("WEBP", "image/webp"),
    ("GIF", "image/gif"),
]


@pytest.mark.parametrize("fmt, content_type", FORMATS)
async def test_upload_each_image_format(api, fmt, content_type):
    _name, headers = await api.user()
    body = await api.photo(headers, samples.image(fmt, (1600, 1200)), f"A {fmt} picture")
    assert body["kind"] == "photo" and body["title"] == f"A {fmt} picture"
    assert (body["width"], body["height"]) == (1600, 1200)
    assert set(body["media"]) == {"thumb", "large", "original"}  # original: the owner sees it
    original = await api.get(body["media"]["original"], headers=headers)
    assert original.headers["Content-Type"] == content_type
    thumb = Image.open(io.BytesIO(await (await api.get(body["media"]["thumb"])).read()))
    large = Image.open(io.BytesIO(await (await api.get(body["media"]["large"])).read()))
    assert thumb.size == (150, 150)
    assert large.size == (1080, 810)
    assert thumb.format == large.format == "JPEG"
    other_view = await (await api.get(f"/v1/photos/{body['id']}")).json()
    assert set(other_view["media"]) == {"thumb", "large"}  # no original for others


async def test_exif_orientation_applied_and_gps_stripped(api):
    _, headers = await api.user()
    data = samples.image("JPEG", (800, 600), exif_gps=True, orientation=6)  # rotate 90° on display
    assert Image.open(io.BytesIO(data)).getexif().get(samples.GPS_TAG) is not None
    body = await api.photo(headers, data, "somewhere secret")
    assert (body["width"], body["height"]) == (600, 800)
    for name in ("thumb", "large"):
        rendition = await (await api.get(body["media"][name])).read()
        image = Image.open(io.BytesIO(rendition))
        assert len(image.getexif()) == 0, f"{name} kept EXIF"
        assert b"Exif" not in rendition[:4096] and "icc_profile" not in image.info
    large = Image.open(io.BytesIO(await (await api.get(body["media"]["large"])).read()))
    assert large.size == (600, 800)


@pytest.mark.parametrize(
    "container, codec, status",
    [("mp4", "h264", "ready"), ("mov", "h264", "ready"), ("webm", "libvpx", "processing")],
)
async def test_upload_video_gives_bytes_and_a_poster(api, container, codec, status):
    _, headers = await api.user()
    data = samples.video(container, codec)
    body = await api.photo(headers, data, f"clip {container}")
    assert body["kind"] == "video" and body["duration_s"] == pytest.approx(1.0, abs=0.2)
    assert body["video_status"] == status  # H.264 is copied at once, VP8 transcoded after
    if status == "processing":
        assert "video" not in body["media"]
        body = await ready(api, body["id"], headers)
    assert set(body["media"]) == {
        "thumb",
        "large",
        "poster",
        "video",
        "original",
    }  # the owner's view
    video = await api.get(body["media"]["video"])
    assert video.headers["Content-Type"] == "video/mp4"
    copy = await video.read()
    with av.open(io.BytesIO(copy)) as played:  # the same frames, in H.264
        assert played.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in played.decode(video=0)) == 12
    assert (await (await api.get(body["media"]["original"], headers=headers)).read()) == data
    poster = Image.open(io.BytesIO(await (await api.get(body["media"]["poster"])).read()))
    assert poster.size == (96, 64)


WORKER_WAIT_S = 5.0  # how long the server's own transcode worker is given first


async def ready(api, photo_id: str, headers: dict, timeout_s: float = 240.0) -> dict:
    """The photo once its video is no longer processing. The server's transcode worker
    makes it; but on a store a whole test session shares (the cluster's keyspace) the
    videos other tests left queued come first (oldest first), so past WORKER_WAIT_S the
    test claims this one job itself, whenever no worker holds it, and runs it through
    the same worker code."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        body = await (await api.get(f"/v1/photos/{photo_id}", headers=headers)).json()
        if body["video_status"] != "processing" or loop.time() > started + timeout_s:
            assert body["video_status"] == "ready", body
            return body
        if loop.time() > started + WORKER_WAIT_S:
            await run_own_job(api, int(photo_id))
        await asyncio.sleep(0.5)


async def run_own_job(api, photo_id: int) -> None:
    """Claim the video's transcode job (unless a worker holds it) and do it here."""
    from datetime import timedelta

    from instastore.clock import utcnow
    from instastore.leases import holder_name
    from instastore.video.queue import Transcoder

    services = api.client.app[SERVICES]
    stores = services._stores
    job = await stores.transcodes.transcode_job(photo_id)
    if job is None or (job.lease_until is not None and job.lease_until > utcnow()):
        return  # done, or under way in a worker
    worker = Transcoder(
        stores.transcodes, stores.photos, stores.blobs, api.settings, holder_name("test")
    )
    held = await stores.transcodes.claim_transcode(
        job, worker.holder, utcnow() + timedelta(minutes=5)
    )
    if held is not None:
        await worker.work(held)
        services.photos.records.drop(photo_id)
        services.photos.media.drop_prefix(f"{photo_id}/")


async def test_media_etag_304_ranges_416(api):
    _, headers = await api.user()
    body = await api.photo(headers, samples.video("mp4", "h264", frames=48), "ranged")
    url = body["media"]["video"]
    full = await api.get(url)
    data = await full.read()
    etag = full.headers["ETag"]
    assert "immutable" in full.headers["Cache-Control"] and full.headers["Accept-Ranges"] == "bytes"
    assert (await api.get(url, headers={"If-None-Match": etag})).status == 304

    part = await api.get(url, headers={"Range": "bytes=100-199"})
    assert part.status == 206 and await part.read() == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    tail = await api.get(url, headers={"Range": "bytes=-50"})
    assert tail.status == 206 and await tail.read() == data[-50:]
    open_end = await api.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
    assert await open_end.read() == data[-10:]
    past = await api.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert past.headers["Content-Range"] == f"bytes */{len(data)}"
    await problem(past, 416)
    several = await api.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert several.status == 200 and await several.read() == data


async def test_media_with_a_wrong_secret_or_name_is_404(api):
    _, headers = await api.user()
    body = await api.photo(headers, samples.image(), "secret")
    good = body["media"]["thumb"]
    await problem(await api.get(good.replace(good.split("/")[4], "A" * 16)), 404)
    await problem(await api.get(good.rsplit("/", 1)[0] + "/poster"), 404)
    await problem(await api.get(good.rsplit("/", 1)[0] + "/video"), 404)


async def test_the_original_is_for_its_owner_only(api):
    _, owner = await api.user()
    _, other = await api.user()
    body = await api.photo(owner, samples.image(exif_gps=True), "mine")
    url = body["media"]["original"]
    await problem(await api.get(url), 401)
    await problem(await api.get(url, headers=other), 403)
    assert (await api.get(url, headers=owner)).status == 200


# ---- rejection paths ---------------------------------------------------------------------


async def photo_count(api, name):
    return (await (await api.get(f"/v1/users/{name}")).json())["counts"]["photos"]


async def test_too_large_is_413_and_nothing_is_stored(api):
    name, headers = await api.user()
    big = samples.image("PNG", (64, 64)) + b"\0" * (api.settings.max_upload_bytes + 1)
    await problem(await api.upload(headers, big, "huge"), 413)
    assert await photo_count(api, name) == 0
    assert (await api.photo(headers, samples.image(), "small after big"))[
        "title"
    ] == "small after big"


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7 not an image",
        b"GIF",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"\x00\x00\x00\x18ftypheic" + b"\0" * 64,
    ],
)
async def test_wrong_type_is_415(api, data):
    name, headers = await api.user()
    resp = await api.upload(
        headers, data, "not media", filename="photo.jpg"
    )  # the name lies; the bytes decide
    body = await problem(resp, 415)
    assert "JPEG, PNG, WebP or GIF" in body["detail"]
    assert await photo_count(api, name) == 0


async def test_decompression_bomb_is_422(api):
    name, headers = await api.user()
    body = await problem(await api.upload(headers, samples.png_bomb(), "bomb"), 422)
    assert "decompression bomb" in body["detail"]
    assert await photo_count(api, name) == 0


async def test_a_bomb_under_pillows_own_limit_is_still_refused(aiohttp_client, adapter_settings):
    settings = dataclasses.replace(adapter_settings, max_image_pixels=100_000)
    api = Api(await aiohttp_client(create_app(settings)), settings)
    _, headers = await api.user()
    body = await problem(
        await api.upload(headers, samples.image("PNG", (400, 300)), "120k pixels"), 422
    )
    assert "over the limit of 100,000" in body["detail"]


async def test_uploads_past_the_decoding_queue_are_503_and_nothing_is_stored(
    aiohttp_client, adapter_settings
):
    """One decode at a time and none waiting: while the decoding thread is taken, an upload
    is shed with Retry-After, stores nothing and frees its Idempotency-Key for the retry."""
    settings = dataclasses.replace(
        adapter_settings, uploads_per_minute=1000, decode_threads=1, decode_queue=0
    )
    api = Api(await aiohttp_client(create_app(settings)), settings)
    name, headers = await api.user()
    decoding = api.client.app[SERVICES].uploads.decoding
    release = threading.Event()
    taken = asyncio.ensure_future(decoding.run(release.wait))  # a long decode elsewhere
    await asyncio.sleep(0)  # the call has taken the thread
    assert decoding.in_flight == 1
    key = {"Idempotency-Key": uuid.uuid4().hex}
    operator = await aiohttp_client(metrics_app(settings))  # the /metrics listener
    # Bytes no other test stored: a copy of stored bytes reuses their renditions, undecoded.
    data = samples.image(size=(600 + uuid.uuid4().int % 1000, 400))
    try:
        before, _ = await scrape(operator)
        shed = await api.upload(headers, data, "shed", extra_headers=key)
        body = await problem(shed, 503)
        assert shed.headers["Retry-After"] == "5" and "decoded" in body["detail"]
        assert await photo_count(api, name) == 0
        after, _ = await scrape(operator)
        shed_count = total(after, "instastore_uploads_total", outcome="shed")
        assert shed_count - total(before, "instastore_uploads_total", outcome="shed") == 1
    finally:
        release.set()
        await taken
    retried = await api.upload(headers, data, "shed", extra_headers=key)
    assert retried.status == 201, await retried.text()
    assert await photo_count(api, name) == 1
    assert not list(api.client.app[SERVICES].uploads.tmp_dir.iterdir())  # no upload left


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
async def test_truncated_image_is_422(api, fmt):
    name, headers = await api.user()
    data = samples.image(fmt, (800, 600))
    await problem(await api.upload(headers, data[: len(data) // 2], "cut"), 422)
    assert await photo_count(api, name) == 0


async def test_a_video_that_does_not_decode_is_422(api):
    _, headers = await api.user()
    data = samples.video("mp4", "h264")
    broken = data[:32] + bytes(len(data) - 32)
    await problem(await api.upload(headers, broken, "broken clip"), 422)


@pytest.mark.parametrize(
    "title, detail",
    [("", "title is required"), ("   ", "title is required"), ("x" * 201, "the limit is 200")],
)
async def test_bad_titles_are_400(api, title, detail):
    _, headers = await api.user()
    assert (
        detail in (await problem(await api.upload(headers, samples.image(), title), 400))["detail"]
    )


async def test_bad_visibility_missing_file_and_wrong_body_are_400(api):
    _, headers = await api.user()
    await problem(await api.upload(headers, samples.image(), "t", visibility="friends"), 400)
    resp = await api.post("/v1/photos", data={"title": "no file"}, headers=headers)
    await problem(resp, 400)
    resp = await api.post("/v1/photos", json={"title": "json"}, headers=headers)
    await problem(resp, 400)
    await problem(await api.upload(headers, b"", "empty"), 400)


async def test_upload_needs_a_token(api):
    await problem(await api.upload({}, samples.image(), "anon"), 401)


async def test_rate_limit_is_429_with_retry_after(aiohttp_client, adapter_settings):
    settings = dataclasses.replace(adapter_settings, uploads_per_minute=2)
    api = Api(await aiohttp_client(create_app(settings)), settings)
    _, headers = await api.user()
    await api.photo(headers, samples.image(), "1")
    await api.photo(headers, samples.image(), "2")
    resp = await api.upload(headers, samples.image(), "3")
    await problem(resp, 429)
    assert int(resp.headers["Retry-After"]) >= 1


async def test_idempotency_key_makes_one_photo(api):
    name, headers = await api.user()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await api.upload(headers, samples.image(), "once", extra_headers=key)
    assert first.status == 201
    again = await api.upload(headers, samples.image(color=(1, 2, 3)), "twice", extra_headers=key)
    assert again.status == 200
    assert (await again.json())["id"] == (await first.json())["id"]
    assert await photo_count(api, name) == 1
    concurrent_key = {"Idempotency-Key": uuid.uuid4().hex}
    results = await asyncio.gather(
        *(
            api.upload(headers, samples.image(), "race", extra_headers=concurrent_key)
            for _ in range(3)
        )
    )
    statuses = sorted(r.status for r in results)
    assert statuses.count(201) == 1 and set(statuses) <= {200, 201, 409}
    assert all(
        int(r.headers["Retry-After"]) >= 1 for r in results if r.status == 409
    )  # still in progress
    assert await photo_count(api, name) == 2


async def test_bad_ids_are_400_and_unknown_ones_404(api):
    await problem(await api.get("/v1/photos/abc"), 400)
    await problem(await api.get("/v1/photos/-5"), 400)
    await problem(await api.get("/v1/photos/123456789"), 404)


# ---- delete, restore, likes ------------------------------------------------------------------


async def test_delete_restore_and_who_may(api):
    name, owner = await api.user()
    _, other = await api.user()
    body = await api.photo(owner, samples.image(), "to delete")
    pid = body["id"]
    await problem(await api.delete(f"/v1/photos/{pid}", headers=other), 403)
    await problem(await api.delete(f"/v1/photos/{pid}"), 401)
    assert (await api.delete(f"/v1/photos/{pid}", headers=owner)).status == 204
    await problem(await api.get(f"/v1/photos/{pid}"), 404)
    await problem(await api.get(body["media"]["thumb"]), 404)
    await problem(await api.delete(f"/v1/photos/{pid}", headers=owner), 404)
    assert await photo_count(api, name) == 0
    await problem(await api.post(f"/v1/photos/{pid}/restore", headers=other), 404)
    restored = await api.post(f"/v1/photos/{pid}/restore", headers=owner)
    assert restored.status == 200 and (await restored.json())["id"] == pid
    assert (await api.get(f"/v1/photos/{pid}")).status == 200
    assert await photo_count(api, name) == 1


async def test_restore_after_the_window_is_410(aiohttp_client, adapter_settings):
    settings = dataclasses.replace(adapter_settings, retention_days=0)
    api = Api(await aiohttp_client(create_app(settings)), settings)
    _, owner = await api.user()
    pid = (await api.photo(owner, samples.image(), "gone soon"))["id"]
    assert (await api.delete(f"/v1/photos/{pid}", headers=owner)).status == 204
    await asyncio.sleep(0.01)
    await problem(await api.post(f"/v1/photos/{pid}/restore", headers=owner), 410)


async def test_likes(api):
    _, owner = await api.user()
    _, fan = await api.user()
    pid = (await api.photo(owner, samples.image(), "likeable"))["id"]
    assert await (await api.put(f"/v1/photos/{pid}/like", headers=fan)).json() == {
        "liked": True,
        "likes": 1,
    }
    assert await (await api.put(f"/v1/photos/{pid}/like", headers=fan)).json() == {
        "liked": True,
        "likes": 1,
    }
    assert (await (await api.get(f"/v1/photos/{pid}")).json())["likes"] == 1
    assert await (await api.delete(f"/v1/photos/{pid}/like", headers=fan)).json() == {
        "liked": False,
        "likes": 0,
    }
    await problem(await api.put(f"/v1/photos/{pid}/like"), 401)
    await problem(await api.put("/v1/photos/123456789/like", headers=fan), 404)


async def test_user_photos_paged_with_cursor(api):
    name, headers = await api.user()
    made = [
        (await api.photo(headers, samples.image(size=(64, 64)), f"n{i}"))["id"] for i in range(5)
    ]
    first = await (await api.get(f"/v1/users/{name}/photos?limit=2")).json()
    assert [p["id"] for p in first["items"]] == made[::-1][:2]
    rest = await (
        await api.get(f"/v1/users/{name}/photos?limit=10&cursor={first['next_cursor']}")
    ).json()
    assert [p["id"] for p in rest["items"]] == made[::-1][2:] and rest["next_cursor"] is None
    await problem(await api.get(f"/v1/users/{name}/photos?cursor=garbage"), 400)
    await problem(await api.get(f"/v1/users/{name}/photos?limit=0"), 400)
    await problem(await api.get(f"/v1/users/{name}/photos?limit=many"), 400)


@pytest.mark.parametrize("key", ["k" * 129, "tab\tin it"])
async def test_a_bad_idempotency_key_is_400(api, key):
    name, headers = await api.user()
    resp = await api.upload(
        headers, samples.image(), "keyed", extra_headers={"Idempotency-Key": key}
    )
    assert "Idempotency-Key" in (await problem(resp, 400))["detail"]
    assert await photo_count(api, name) == 0


async def test_malformed_forms_are_400_and_store_nothing(api):
    name, headers = await api.user()

    async def post(parts):
        form = aiohttp.FormData()
        for field, value in parts:
            if isinstance(value, bytes):
                value = io.BytesIO(value)
            form.add_field(field, value, filename="f.jpg" if field == "file" else None)
        return await api.post("/v1/photos", data=form, headers=headers)

    image = samples.image()
    cases = [
        ([("title", "t"), ("caption", "x"), ("file", image)], "unexpected form field 'caption'"),
        ([("title", "t"), ("file", image), ("file", image)], "exactly one 'file' part"),
        ([("title", "x" * 5000), ("file", image)], "over 4096 bytes"),
        ([("title", b"\xff\xfe not utf-8"), ("file", image)], "not UTF-8"),
    ]
    for parts, detail in cases:
        assert detail in (await problem(await post(parts), 400))["detail"]
    assert await photo_count(api, name) == 0
