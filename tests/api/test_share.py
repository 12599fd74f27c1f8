"""Permalinks (/p/{id}) and oEmbed (/oembed) over HTTP, on both adapters, read as the
platforms a link is pasted into read them.

The Open Graph consumer here is html5lib (the WHATWG parsing algorithm browsers and
crawlers use) under BeautifulSoup, both written elsewhere: no Open Graph library
(opengraph_py3, extruct, metadata_parser) is installable from this machine's package
index, so the tags are read from the parsed document the way those libraries do
(``<meta property|name=... content=...>`` in the head; the first of each name wins).
The oEmbed consumer discovers the document from the page's
``<link rel="alternate" type="application/json+oembed">``, as oembed.com 4 says.
Chromium renders both in tests/api/test_web_page.py.
"""

from __future__ import annotations

import dataclasses
import io
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from bs4 import BeautifulSoup
from instastore.server.app import create_app
from instastore.server.keys import SERVICES
from PIL import Image

from instastore import ids

from .. import samples
from ..factories import Api, problem

HOSTILE_TITLES = [
    'She said "hi" & left',
    "it's <b>bold</b>",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</title><script>alert(2)</script>",
    "&amp; &lt;not an entity&gt;",
    "שלום עולם and مرحبا",  # right-to-left scripts beside left-to-right text
]


def parse(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html5lib")


def open_graph(soup: BeautifulSoup) -> dict[str, str]:
    """What an Open Graph consumer reads: each og:, twitter: and plain meta name's first
    content in the head."""
    found: dict[str, str] = {}
    for meta in soup.head.find_all("meta"):
        key = meta.get("property") or meta.get("name")
        if key and meta.has_attr("content"):
            found.setdefault(key, meta["content"])
    return found


def link(soup: BeautifulSoup, rel: str, kind: str | None = None) -> str:
    (found,) = [
        tag
        for tag in soup.head.find_all("link")
        if rel in tag.get("rel", []) and (kind is None or tag.get("type") == kind)
    ]
    return found["href"]


def local(api: Api, url: str) -> str:
    """An absolute URL of this service as the test client asks for it (path and query)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def page(api: Api, photo_id: str, headers: dict | None = None) -> BeautifulSoup:
    resp = await api.get(f"/p/{photo_id}", headers=headers or {})
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/html" and resp.charset == "utf-8"
    return parse(await resp.text())


def base_of(api: Api) -> str:
    return f"http://{api.client.host}:{api.client.port}"


@pytest.fixture
async def public_api(aiohttp_client, adapter_settings):
    """The app as deployed behind its public origin (public_url set)."""
    settings = dataclasses.replace(
        adapter_settings,
        uploads_per_minute=1000,
        max_upload_bytes=8 * 2**20,
        public_url="https://photos.example",
    )
    return Api(await aiohttp_client(create_app(settings)), settings)


# ---- the page, read by an Open Graph consumer -----------------------------------------


async def test_an_open_graph_consumer_finds_title_author_image_and_its_size(api):
    owner, owner_h = await api.user()
    await api.patch("/v1/me", json={"display_name": "Ada Lovelace"}, headers=owner_h)
    photo = await api.photo(owner_h, samples.picture((1600, 1200), seed=3), "Harbour at dawn")
    soup = await page(api, photo["id"])
    og = open_graph(soup)
    url = f"{base_of(api)}/p/{photo['id']}"
    assert og["og:title"] == og["twitter:title"] == "Harbour at dawn"
    assert og["og:url"] == link(soup, "canonical") == url
    assert og["og:type"] == "website" and og["og:site_name"] == "instastore"
    assert og["author"] == "Ada Lovelace" and f"@{owner}" in og["og:description"]
    assert og["twitter:card"] == "summary_large_image"
    assert og["og:image"] == og["twitter:image"] == base_of(api) + photo["media"]["large"]
    assert "og:video" not in og and "og:image:secure_url" not in og  # http: no secure_url
    # The image is the large rendition, of the size the tags say, and any stranger may load it.
    resp = await api.get(local(api, og["og:image"]))
    assert resp.status == 200 and resp.content_type == og["og:image:type"] == "image/jpeg"
    with Image.open(io.BytesIO(await resp.read())) as image:
        assert image.size == (int(og["og:image:width"]), int(og["og:image:height"])) == (1080, 810)
    # A reader without script sees the title, the author and the picture.
    assert soup.h1.get_text() == "Harbour at dawn"
    assert soup.select_one(".byline .author").get_text() == "Ada Lovelace"
    assert soup.select_one(".byline .handle").get_text() == f"@{owner}"
    (img,) = soup.select("figure img")
    assert img["src"] == photo["media"]["large"] and img["alt"] == "Harbour at dawn"
    assert [s["src"] for s in soup.find_all("script")] == ["/static/share.js"]
    assert soup.select_one(".share-url")["value"] == url


@pytest.mark.parametrize("title", HOSTILE_TITLES)
async def test_hostile_titles_come_back_as_the_same_text_and_no_markup(api, title):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(color=(9, 9, 9)), title)
    resp = await api.get(f"/p/{photo['id']}")
    raw = await resp.text()
    soup = parse(raw)
    og = open_graph(soup)
    for key in ("og:title", "twitter:title", "og:image:alt", "twitter:image:alt"):
        assert og[key] == title, key
    assert soup.title.get_text() == f"{title} · instastore"
    assert soup.h1.get_text() == title and soup.h1.bdi is not None  # isolated from its line
    assert soup.select_one("figure img")["alt"] == title
    # Nothing the title carries became an element or an attribute.
    assert [s.get("src") for s in soup.find_all("script")] == ["/static/share.js"]
    assert len(soup.find_all("img")) == 1 and not soup.find_all("b")
    assert not [t for t in soup.find_all(True) if any(a.startswith("on") for a in t.attrs)]
    assert "<script>alert" not in raw and "<b>" not in raw
    # The share intents carry it percent-encoded, as their one parameter.
    x = soup.select_one("a[data-share=x]")["href"]
    assert parse_qs(urlsplit(x).query)["text"] == [title]
    # oEmbed gives it back as JSON text.
    document = await (
        await api.get("/oembed", params={"url": f"{base_of(api)}/p/{photo['id']}"})
    ).json()
    assert document["title"] == title


async def test_a_bidi_override_stored_before_the_text_rules_stays_inside_its_element(api):
    """A title the upload would refuse today (an override that reverses what follows),
    stored directly as an older record might be: the page escapes nothing away, but the
    override is isolated in <bdi> and cannot reorder the author line after it."""
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(color=(8, 8, 8)), "plain")
    svc = api.client.app[SERVICES]
    stored = await svc.photos.get(int(photo["id"]))
    forged = dataclasses.replace(
        stored, id=svc.uploads.ids.next_id(), title="cat\u202egnp.exe <i>x</i>"
    )
    await svc.photos.save(forged)
    soup = await page(api, str(forged.id))
    assert soup.h1.bdi.get_text() == forged.title
    assert soup.select_one(".byline").find_parent("h1") is None
    assert open_graph(soup)["og:title"] == forged.title and not soup.find_all("i")


async def test_a_video_page_carries_og_video_of_the_viewer_safe_copy(api):
    _, owner_h = await api.user()
    video = await api.photo(owner_h, samples.video_with_metadata("mov"), "a clip")
    og = open_graph(await page(api, video["id"]))
    assert og["og:type"] == "video.other"
    assert og["og:video"] == base_of(api) + video["media"]["video"]
    assert og["og:image"] == base_of(api) + video["media"]["large"]
    assert og["og:video:type"] == "video/mp4"  # the browser-safe copy, whatever the upload
    assert int(og["og:video:width"]) > 0 and int(og["og:video:height"]) > 0
    resp = await api.get(local(api, og["og:video"]))
    assert resp.status == 200
    copy = await resp.read()
    assert b"37.7858" not in copy and b"\xa9xyz" not in copy  # the location atom is gone


async def test_a_legacy_video_without_a_copy_has_no_og_video(api):
    _, owner_h = await api.user()
    body = await api.photo(owner_h, samples.video_with_metadata(), "old clip")
    svc = api.client.app[SERVICES]
    photo = await svc.photos.get(int(body["id"]))
    legacy = dataclasses.replace(
        photo,
        id=svc.uploads.ids.next_id(),
        renditions=tuple(r for r in photo.renditions if r.name != "video"),
    )
    await svc.photos.save(legacy)
    soup = await page(api, str(legacy.id))
    og = open_graph(soup)
    assert "og:video" not in og and og["og:type"] == "website"
    assert soup.find("video") is None and soup.select_one("figure img") is not None
    assert "/original" not in str(soup)
    document = await (
        await api.get("/oembed", params={"url": f"{base_of(api)}/p/{legacy.id}"})
    ).json()
    assert document["type"] == "photo" and "html" not in document


async def test_head_of_a_page_has_its_headers_and_no_body(api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(color=(7, 7, 7)), "head")
    got = await api.get(f"/p/{photo['id']}")
    head = await api.head(f"/p/{photo['id']}")
    assert head.status == 200 and await head.read() == b""
    for name in ("Content-Type", "Content-Length", "Cache-Control", "Content-Security-Policy"):
        assert head.headers[name] == got.headers[name], name


# ---- the base URL and caching ----------------------------------------------------------


async def test_with_public_url_the_page_names_it_and_caches_may_keep_it(public_api):
    api = public_api
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(color=(6, 6, 6)), "behind a proxy")
    for host in ({}, {"Host": "evil.example"}):
        resp = await api.get(f"/p/{photo['id']}", headers=host)
        assert resp.headers["Cache-Control"] == "public, max-age=300"
        assert "Vary" not in resp.headers
        soup = parse(await resp.text())
        og = open_graph(soup)
        assert og["og:url"] == f"https://photos.example/p/{photo['id']}"
        assert og["og:image"] == og["og:image:secure_url"]
        assert og["og:image"] == "https://photos.example" + photo["media"]["large"]
        assert "evil.example" not in str(soup)
        oembed = link(soup, "alternate", "application/json+oembed")
        assert oembed.startswith("https://photos.example/oembed?url=https%3A%2F%2Fphotos.")
        resp = await api.get(local(api, oembed), headers=host)
        assert resp.status == 200 and resp.headers["Cache-Control"] == "public, max-age=300"
        assert (await resp.json())["url"] == og["og:image"]
    # The URL the test client used is not the public one: not ours.
    await problem(await api.get("/oembed", params={"url": f"{base_of(api)}/p/{photo['id']}"}), 404)


async def test_without_public_url_the_host_is_the_requests_and_caches_keep_nothing(api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(color=(5, 5, 5)), "no public url")
    resp = await api.get(f"/p/{photo['id']}", headers={"Host": "other.example:8443"})
    assert resp.headers["Cache-Control"] == "private, max-age=300"
    og = open_graph(parse(await resp.text()))
    assert og["og:url"] == f"http://other.example:8443/p/{photo['id']}"
    for host in ('evil.example"><script>', "a b", "x.example/path", "@evil.example"):
        body = await problem(await api.get(f"/p/{photo['id']}", headers={"Host": host}), 400)
        assert "Host" in body["detail"] and "public_url" in body["detail"]


# ---- rejections of the page ------------------------------------------------------------


@pytest.mark.parametrize("bad", ["x", "0", "-1", "1.5", "٣", "9" * 20, "01"])
async def test_a_malformed_id_is_a_400(api, bad):
    body = await problem(await api.get(f"/p/{quote(bad)}"), 400)
    assert "photo id" in body["detail"]


async def test_a_missing_photo_is_a_404_problem(api):
    missing = ids.IdGenerator(worker_id=99).next_id()
    body = await problem(await api.get(f"/p/{missing}"), 404)
    assert body["detail"] == f"no photo {missing}"


# ---- oEmbed ----------------------------------------------------------------------------


async def discover(api: Api, photo_id: str, **params: str) -> dict:
    """The oEmbed document a consumer finds from the page, with ``params`` added."""
    href = link(await page(api, photo_id), "alternate", "application/json+oembed")
    target = local(api, href) + "".join(f"&{k}={v}" for k, v in params.items())
    resp = await api.get(target)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    assert resp.headers["Cache-Control"] == "private, max-age=300"
    return await resp.json()


async def test_oembed_answers_a_photo_within_maxwidth_and_maxheight(api):
    owner, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.picture((1600, 1200), seed=4), "Harbour at dawn")
    base = base_of(api)
    whole = await discover(api, photo["id"])
    assert whole == {
        "version": "1.0",
        "type": "photo",
        "title": "Harbour at dawn",
        "author_name": owner,
        "author_url": f"{base}/#/u/{owner}",
        "provider_name": "instastore",
        "provider_url": f"{base}/",
        "cache_age": 300,
        "url": base + photo["media"]["large"],
        "width": 1080,
        "height": 810,
        "thumbnail_url": base + photo["media"]["thumb"],
        "thumbnail_width": 150,
        "thumbnail_height": 150,
    }
    # The consumer shows the image it was told of, at the size it was told.
    resp = await api.get(local(api, whole["url"]))
    with Image.open(io.BytesIO(await resp.read())) as image:
        assert image.size == (whole["width"], whole["height"])
    small = await discover(api, photo["id"], maxwidth="600")
    assert (small["url"], small["width"], small["height"]) == (
        base + photo["media"]["thumb"],
        150,
        150,
    )
    assert (await discover(api, photo["id"], maxheight="810"))["width"] == 1080
    assert (await discover(api, photo["id"], maxheight="809"))["width"] == 150
    # Nothing fits: a link, with no image and no thumbnail (the spec's bounds hold for both).
    tiny = await discover(api, photo["id"], maxwidth="100", maxheight="5000")
    assert tiny["type"] == "link" and tiny["title"] == "Harbour at dawn"
    assert not {"url", "width", "height", "thumbnail_url", "html"} & tiny.keys()


async def test_oembed_answers_rich_html5_video_scaled_to_fit(api):
    _, owner_h = await api.user()
    video = await api.photo(owner_h, samples.video("mp4", "libx264", size=(320, 240)), "a clip")
    base = base_of(api)
    document = await discover(api, video["id"])
    assert document["type"] == "rich" and (document["width"], document["height"]) == (320, 240)
    tag = parse(document["html"]).video
    assert tag["src"] == base + video["media"]["video"]
    assert tag["poster"] == base + video["media"]["large"]
    assert (tag["width"], tag["height"]) == ("320", "240")
    assert "/original" not in document["html"]
    scaled = await discover(api, video["id"], maxwidth="160")
    assert (scaled["width"], scaled["height"]) == (160, 120)
    assert parse(scaled["html"]).video["width"] == "160"
    assert (await discover(api, video["id"], maxheight="60"))["width"] == 80


async def test_oembed_takes_our_permalinks_in_any_spelling_a_consumer_sends(api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(color=(4, 4, 4)), "spellings")
    host, port = api.client.host, api.client.port
    for url in (
        f"http://{host}:{port}/p/{photo['id']}",
        f"https://{host}:{port}/p/{photo['id']}",  # the same page behind TLS
        f"HTTP://{host.upper()}:{port}/p/{photo['id']}/",
        f"http://{host}:{port}/p/{photo['id']}?utm_source=x#top",
    ):
        resp = await api.get("/oembed", params={"url": url, "format": "json"})
        assert resp.status == 200, url
        assert (await resp.json())["title"] == "spellings"


async def test_oembed_of_a_url_that_is_not_ours_is_a_404(api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(color=(3, 3, 3)), "ours")
    host, port, pid = api.client.host, api.client.port, photo["id"]
    for url in (
        f"http://evil.example/p/{pid}",
        f"http://{host}:{port + 1}/p/{pid}",
        f"http://{host}/p/{pid}",
        f"ftp://{host}:{port}/p/{pid}",
        f"http://{host}:{port}/v1/photos/{pid}",
        f"http://{host}:{port}/p/{pid}/extra",
        f"http://{host}:{port}/p/x",
        f"http://{host}:{port}/p/0",
        f"http://{host}:{port}/p/{'9' * 25}",
        f"http://{host}:{port}@evil.example/p/{pid}",
        f"http://[{host}:{port}/p/{pid}",  # not a URL at all
        "javascript:alert(1)",
        "not a url",
    ):
        body = await problem(await api.get("/oembed", params={"url": url}), 404)
        assert "not a photo page of this service" in body["detail"], url


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"url": None}, "url is required"),
        ({"url": ""}, "url is required"),
        ({"url": "http://x/p/1" + "1" * 2040}, "at most 2048"),
        ({"maxwidth": "0"}, "maxwidth must be an integer"),
        ({"maxwidth": "-5"}, "maxwidth must be an integer"),
        ({"maxwidth": "abc"}, "maxwidth must be an integer"),
        ({"maxwidth": "²"}, "maxwidth must be an integer"),
        ({"maxwidth": "100001"}, "maxwidth must be an integer"),
        ({"maxheight": "1e3"}, "maxheight must be an integer"),
        ({"maxheight": "9" * 5000}, "maxheight must be an integer"),
        ({"format": "yaml"}, "format must be json"),
        ({"format": "JSON "}, "format must be json"),
    ],
)
async def test_oembed_refuses_bad_input_with_a_400(api, query, words):
    given = {"url": "http://127.0.0.1/p/1", **query}
    params = {k: v for k, v in given.items() if v is not None}
    body = await problem(await api.get("/oembed", params=params), 400)
    assert words in body["detail"]


async def test_oembed_as_xml_is_501_as_the_spec_says(api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(color=(2, 2, 2)), "xml")
    url = f"{base_of(api)}/p/{photo['id']}"
    body = await problem(await api.get("/oembed", params={"url": url, "format": "xml"}), 501)
    assert "json" in body["detail"]
    assert (await api.get("/oembed", params={"url": url, "format": "json"})).status == 200
