"""Hot media answered from a response built once (``server/handlers/media.py``, ``Ready``):
the same bytes on the wire as a fresh build, byte for byte (200, 206, 304, HEAD); ranges
and conditional GETs from the reused answer; never a stale answer when the photo is
deleted, its account turns private or an operator hides it, through this process or
through another (here: the store changed directly and this process's few-second record,
owner or hidden-item entry dropped, as its expiry would); and the request metrics exact
under many concurrent requests, counted without a lock."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime

from instastore.server.handlers.media import Ready
from instastore.server.keys import SERVICES

from .. import samples
from ..factories import Api, problem
from .test_metrics import samples as parse_metrics
from .test_metrics import total

DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")


async def raw(api: Api, method: str, path: str, *headers: str) -> bytes:
    """One request on a connection of its own, and every byte of its answer, the Date
    line taken out (it is the only line that may differ between two answers)."""
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close", *headers, "", ""]
    writer.write("\r\n".join(lines).encode())
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return DATE.sub(b"\r\n", answer, count=1)


def kept(api: Api, photo: dict, name: str) -> dict:
    """The ready answers the media cache keeps beside a rendition's bytes ({} if none)."""
    media = api.client.app[SERVICES].photos.media
    for key in list(media._items):
        if key.startswith(f"{photo['id']}/{name}/"):
            return media._beside.get(key, {})
    return {}


def path_of(url: str) -> str:
    return url if url.startswith("/") else "/" + url.split("/", 3)[3]


async def test_a_reused_answer_is_byte_identical_to_a_fresh_one(api: Api):
    _, owner_h = await api.user()
    data = samples.image(size=(200, 150), color=(10, 200, 30))
    photo = await api.photo(owner_h, data, "built once")
    url = path_of(photo["media"]["large"])
    media = api.client.app[SERVICES].photos.media
    asks = [
        ("GET", ()),
        ("HEAD", ()),
        ("GET", ("Range: bytes=10-19",)),
        ("GET", ("Range: bytes=-7",)),
        ("HEAD", ("Range: bytes=0-9",)),
        ("GET", (f'If-None-Match: "x", "{photo["id"]}-large"',)),
        ("GET", ("Range: bytes=999999999-",)),
    ]
    for method, headers in asks:
        media.drop_prefix(f"{photo['id']}/")  # nothing kept: the answer is built afresh
        fresh = await raw(api, method, url, *headers)
        await raw(api, "GET", url)  # the bytes, and their answer, kept from here on
        built = dict(kept(api, photo, "large"))
        reused = [await raw(api, method, url, *headers) for _ in range(3)]
        assert reused == [fresh] * 3, (method, headers)
        now = kept(api, photo, "large")
        assert built and all(now[k] is built[k] for k in built)  # reused, not rebuilt
    media.drop_prefix(f"{photo['id']}/")
    first = await raw(api, "GET", url)
    again = await raw(api, "GET", url)
    (ready,) = kept(api, photo, "large").values()
    assert isinstance(ready, Ready) and ready.body is not None
    size = len(ready.body)
    # The wire format of before the reuse, header by header in its order.
    head = (
        f'HTTP/1.1 200 OK\r\nETag: "{photo["id"]}-large"\r\n'
        "Cache-Control: public, max-age=3600, immutable\r\nAccept-Ranges: bytes\r\n"
        "Content-Type: image/jpeg\r\nX-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {size}\r\n"
    ).encode()
    assert first == again
    assert first.startswith(head)
    assert first.endswith(b"\r\n\r\n" + ready.body)
    assert re.fullmatch(rb"Server: [^\r]*\r\nConnection: close", first[len(head) :][: -size - 4])


async def test_ranges_and_conditional_gets_of_a_reused_answer(api: Api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(size=(120, 90)), "ranges")
    url = photo["media"]["large"]
    whole = await (await api.get(url)).read()
    assert kept(api, photo, "large")  # from here on, every answer is the reused one
    size = len(whole)
    for header, status, body in (
        ("bytes=10-19", 206, whole[10:20]),
        ("bytes=-5", 206, whole[-5:]),
        (f"bytes={size - 3}-", 206, whole[-3:]),
        (f"bytes=5-{size + 100}", 206, whole[5:]),
        ("bytes=0-1,4-5", 200, whole),
        ("items=0-1", 200, whole),
    ):
        resp = await api.get(url, headers={"Range": header})
        assert resp.status == status, header
        assert await resp.read() == body, header
        assert resp.headers["Content-Length"] == str(len(body))
        if status == 206:
            first = (
                size - len(body) if header.startswith("bytes=-") else int(header[6:].split("-")[0])
            )
            assert resp.headers["Content-Range"] == f"bytes {first}-{first + len(body) - 1}/{size}"
    resp = await api.get(url, headers={"Range": f"bytes={size}-"})
    assert resp.headers["Content-Range"] == f"bytes */{size}"
    await problem(resp, 416)

    etag = (await api.get(url)).headers["ETag"]
    for matches in (etag, f'"other", {etag}', f'{etag} , W/"x"'):
        resp = await api.get(url, headers={"If-None-Match": matches})
        assert resp.status == 304 and await resp.read() == b""
        assert "Cache-Control" in resp.headers and "Content-Range" not in resp.headers
        assert resp.headers["ETag"] == etag
    resp = await api.get(url, headers={"If-None-Match": '"not-it"'})
    assert resp.status == 200 and await resp.read() == whole
    head = await api.head(url)
    assert head.status == 200 and await head.read() == b""
    assert head.headers["Content-Length"] == str(size)


def _other_host_forgets(
    api: Api, *, record: int | None = None, owner: int | None = None, hidden: int | None = None
) -> None:
    """What another host's few-second caches do when their entries expire: read anew."""
    services = api.client.app[SERVICES]
    if record is not None:
        services.photos.records.drop(record)
    if owner is not None:
        services.photos.users.drop(owner)
    if hidden is not None:
        services.social.hidden_items.drop(hidden)


async def test_a_photo_deleted_elsewhere_is_never_served_from_its_reused_answer(api: Api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(size=(90, 90)), "deleted elsewhere")
    for _ in range(2):
        assert (await api.get(photo["media"]["large"])).status == 200
    assert kept(api, photo, "large")
    services = api.client.app[SERVICES]
    record = await services._stores.photos.get_photo(int(photo["id"]))
    await services._stores.photos.set_deleted(record, datetime.now(UTC))  # another host's delete
    _other_host_forgets(api, record=int(photo["id"]))
    assert kept(api, photo, "large")  # the bytes and the answer are still in memory...
    for name in ("large", "thumb"):
        await problem(await api.get(photo["media"][name]), 404)  # ...and never served
        assert (await api.head(photo["media"][name])).status == 404
        resp = await api.get(
            photo["media"][name], headers={"If-None-Match": f'"{photo["id"]}-{name}"'}
        )
        await problem(resp, 404)


async def test_a_photo_deleted_here_drops_its_reused_answer(api: Api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(size=(90, 90)), "deleted here")
    assert (await api.get(photo["media"]["large"])).status == 200
    assert kept(api, photo, "large")
    assert (await api.delete(f"/v1/photos/{photo['id']}", headers=owner_h)).status == 204
    assert kept(api, photo, "large") == {}
    await problem(await api.get(photo["media"]["large"]), 404)


async def test_an_account_turning_private_elsewhere_changes_the_reused_answer(api: Api):
    """The public URL stops working; the owner's URL, bound to them, is answered
    ``private`` (another answer kept beside the same bytes), never the public one."""
    owner_name, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(size=(90, 90)), "public, then not")
    public = photo["media"]["large"]
    resp = await api.get(public)
    assert resp.headers["Cache-Control"].startswith("public, ")
    services = api.client.app[SERVICES]
    user = await services._stores.accounts.get_user_by_name(owner_name)
    await services._stores.accounts.update_user(dataclasses.replace(user, private=True))
    _other_host_forgets(api, owner=user.id)
    await problem(await api.get(public), 404)
    await problem(await api.get(public, headers={"If-None-Match": resp.headers["ETag"]}), 404)
    own = (await (await api.get(f"/v1/photos/{photo['id']}", headers=owner_h)).json())["media"]
    for _ in range(2):
        mine = await api.get(own["large"])
        assert mine.status == 200 and mine.headers["Cache-Control"].startswith("private, ")
        assert await mine.read() == await resp.read()
    assert set(kept(api, photo, "large")) == {True, False}

    await services._stores.accounts.update_user(user)  # public again
    _other_host_forgets(api, owner=user.id)
    again = await api.get(public)
    assert again.status == 200 and again.headers["Cache-Control"].startswith("public, ")


async def test_a_photo_hidden_by_an_operator_is_never_served_from_its_reused_answer(api: Api):
    _, owner_h = await api.user()
    _, viewer_h = await api.user()
    photo = await api.photo(owner_h, samples.image(size=(90, 90)), "taken down")
    for _ in range(2):
        assert (await api.get(photo["media"]["large"])).status == 200
    services = api.client.app[SERVICES]
    await services._stores.moderation.set_hidden(int(photo["id"]), "photo", datetime.now(UTC))
    _other_host_forgets(api, hidden=int(photo["id"]))
    assert kept(api, photo, "large")
    for headers in ({}, viewer_h):
        await problem(await api.get(photo["media"]["large"], headers=headers), 404)
        await problem(await api.get(photo["media"]["thumb"], headers=headers), 404)
    await services._stores.moderation.set_hidden(int(photo["id"]), "photo", None)
    _other_host_forgets(api, hidden=int(photo["id"]))
    assert (await api.get(photo["media"]["large"])).status == 200


async def test_a_wrong_secret_stays_404_with_the_answer_kept(api: Api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(size=(90, 90)), "secret")
    assert (await api.get(photo["media"]["large"])).status == 200
    assert kept(api, photo, "large")
    secret = photo["media"]["large"].split("/")[-2]
    wrong = photo["media"]["large"].replace(secret, "B" * len(secret))
    body = await problem(await api.get(wrong), 404)
    assert body["detail"] == f"no media {photo['id']}/large"


async def test_metrics_are_exact_under_many_concurrent_requests(api: Api, aiohttp_client):
    from instastore.server.app import metrics_app

    operator = await aiohttp_client(metrics_app(api.settings))
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(size=(150, 100)), "counted")
    url = photo["media"]["large"]
    size = len(await (await api.get(url)).read())
    route = "/v1/media/{photo_id}/{secret}/{name}"

    async def scrape() -> dict:
        resp = await operator.get("/metrics")
        return parse_metrics(await resp.text())

    before = await scrape()
    many = 300

    async def one(i: int) -> int:
        headers = {"Range": "bytes=0-9"} if i % 3 == 0 else {}
        resp = await api.get(url, headers=headers)
        await resp.read()
        return resp.status

    statuses = await asyncio.gather(*(one(i) for i in range(many)))
    after = await scrape()

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    ranged = len(range(0, many, 3))
    assert statuses.count(206) == ranged and statuses.count(200) == many - ranged
    assert moved("instastore_http_requests_total", route=route, status="200") == many - ranged
    assert moved("instastore_http_requests_total", route=route, status="206") == ranged
    assert moved("instastore_http_request_duration_seconds_count", route=route) == many
    assert moved("instastore_http_request_duration_seconds_bucket", route=route, le="+Inf") == many
    assert moved("instastore_media_bytes_served_total", rendition="large") == (
        (many - ranged) * size + ranged * 10
    )
    assert moved("instastore_cache_lookups_total", cache="media", result="hit") == many
    assert moved("instastore_http_requests_in_flight") == 0
