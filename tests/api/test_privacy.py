"""The privacy rules over HTTP, on both adapters: what a viewer may not see, it
cannot infer either.

- videos: viewers get a copy without metadata, never the uploaded bytes (item 10);
- a private account's follow lists are for its owner and approved followers (item 11);
- shared caches keep media only of public photos of public accounts (item 12);
- a hidden thing answers like a missing one; cursors are sealed (item 13);
- usernames match whole strings; titles and display names refuse control, bidi and
  invisible format characters (item 14);
- a declared huge video frame is refused before decoding (item 18);
- media answers HEAD, and 416 as a problem with Content-Range (item 19's media part).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import struct

import av
import pytest
from instastore.server.keys import SERVICES

from instastore import ids

from .. import samples
from ..factories import problem, store_calls


def secret_free(data: bytes) -> list[bytes]:
    """The uploader's metadata found in ``data`` (none, for a viewer's copy)."""
    needles = [
        b"\xa9xyz",
        b"37.7858",
        b"122.4064",
        b"com.apple.quicktime",
        b"iPhone",
        b"Apple",
        b"Secret Title Atom",
        b"shot at home",
        b"Core Media",
        b"Lavf",
    ]
    return [n for n in needles if n in data]


# ---- item 10: videos ------------------------------------------------------------------


@pytest.mark.parametrize("container", ["mov", "mp4"])
async def test_viewers_get_a_video_without_location_and_the_owner_keeps_the_original(
    api, container
):
    _owner, owner_h = await api.user()
    _, stranger_h = await api.user()
    data = samples.video_with_metadata(container)
    if container == "mov":
        assert b"\xa9xyz" in data and b"37.7858" in data  # the leak this test is about
    body = await api.photo(owner_h, data, "where was this")

    seen = await (await api.get(f"/v1/photos/{body['id']}", headers=stranger_h)).json()
    assert set(seen["media"]) == {"thumb", "large", "poster", "video"}
    anonymous = await (await api.get(f"/v1/photos/{body['id']}")).json()
    assert anonymous["media"] == seen["media"]
    resp = await api.get(seen["media"]["video"])
    assert resp.status == 200
    copy = await resp.read()
    assert copy != data and secret_free(copy) == []
    with av.open(io.BytesIO(copy)) as played:
        assert dict(played.metadata).keys() <= {"major_brand", "minor_version", "compatible_brands"}
        assert all(
            not s.metadata.get("handler_name", "").startswith("Core") for s in played.streams
        )
        assert sum(1 for _ in played.decode(video=0)) == 12
    assert copy.index(b"moov") < copy.index(b"mdat")  # faststart: playable while it downloads

    original = body["media"]["original"]
    assert original == seen["media"]["video"].rsplit("/", 1)[0] + "/original"
    await problem(await api.get(original), 401)
    await problem(await api.get(original, headers=stranger_h), 403)
    assert await (await api.get(original, headers=owner_h)).read() == data


async def test_a_legacy_video_without_a_copy_shows_viewers_no_video(api):
    """A video stored before the metadata-free copy existed: its only playable bytes are
    the upload itself, so viewers get no video URL and the owner keeps the original."""
    _owner, owner_h = await api.user()
    _, stranger_h = await api.user()
    body = await api.photo(owner_h, samples.video_with_metadata(), "old clip")
    svc = api.client.app[SERVICES]
    photo = await svc.photos.get(int(body["id"]))
    legacy = dataclasses.replace(
        photo,
        id=svc.uploads.ids.next_id(),
        renditions=tuple(r for r in photo.renditions if r.name != "video"),
    )
    await svc.photos.save(legacy)
    seen = await (await api.get(f"/v1/photos/{legacy.id}", headers=stranger_h)).json()
    assert set(seen["media"]) == {"thumb", "large", "poster"}
    url = f"/v1/media/{legacy.id}/{legacy.secret}"
    await problem(await api.get(f"{url}/video"), 404)
    await problem(await api.get(f"{url}/original", headers=stranger_h), 403)
    mine = await (await api.get(f"/v1/photos/{legacy.id}", headers=owner_h)).json()
    assert set(mine["media"]) == {"thumb", "large", "poster", "original"}


# ---- item 11: follow lists of private accounts -----------------------------------------


async def test_follow_lists_of_a_private_account_are_for_its_followers(api):
    owner, owner_h = await api.user(private=True)
    fan, fan_h = await api.user()
    _asker, asker_h = await api.user()
    _, stranger_h = await api.user()
    assert (await (await api.put(f"/v1/users/{owner}/follow", headers=fan_h)).json())[
        "state"
    ] == "requested"
    assert (await api.post(f"/v1/me/requests/{fan}/approve", headers=owner_h)).status == 200
    assert (await (await api.put(f"/v1/users/{owner}/follow", headers=asker_h)).json())[
        "state"
    ] == "requested"
    await api.put(f"/v1/users/{fan}/follow", headers=owner_h)  # the owner follows someone too

    for which in ("followers", "following"):
        url = f"/v1/users/{owner}/{which}"
        for headers in ({}, stranger_h, asker_h):  # anonymous, a stranger, a pending request
            body = await problem(await api.get(url, headers=headers), 403)
            assert "this account is private" in body["detail"]
        for headers in (owner_h, fan_h):
            resp = await api.get(url, headers=headers)
            assert resp.status == 200
            assert [u["username"] for u in (await resp.json())["items"]] == [fan]
    # The same answer for a private account that follows nobody: the lists' size is not told.
    lonely, _ = await api.user(private=True)
    await problem(await api.get(f"/v1/users/{lonely}/followers"), 403)
    # Public accounts' lists stay public.
    assert (await api.get(f"/v1/users/{fan}/followers")).status == 200


# ---- item 12: Cache-Control from the owner's state --------------------------------------


async def test_media_of_private_accounts_is_never_publicly_cached(api):
    _owner, owner_h = await api.user()
    public = await api.photo(owner_h, samples.image(), "public now")
    friends = await api.photo(owner_h, samples.image(), "for friends", visibility="followers")
    for name in ("thumb", "large"):
        resp = await api.get(public["media"][name])
        assert resp.headers["Cache-Control"].startswith("public, ")
        assert (
            (await api.get(friends["media"][name])).headers["Cache-Control"].startswith("private, ")
        )

    assert (await api.patch("/v1/me", json={"private": True}, headers=owner_h)).status == 200
    now = (await (await api.get(f"/v1/photos/{public['id']}", headers=owner_h)).json())["media"]
    for name in ("thumb", "large"):
        resp = await api.get(now[name])  # the owner's URL as the API hands it out now
        assert resp.status == 200 and resp.headers["Cache-Control"].startswith("private, ")
        again = await api.get(now[name], headers={"If-None-Match": resp.headers["ETag"]})
        assert again.status == 304 and again.headers["Cache-Control"].startswith("private, ")
    late = await api.photo(owner_h, samples.image(), "posted while private")
    assert (await api.get(late["media"]["thumb"])).headers["Cache-Control"].startswith("private, ")

    assert (await api.patch("/v1/me", json={"private": False}, headers=owner_h)).status == 200
    assert (await api.get(public["media"]["thumb"])).headers["Cache-Control"].startswith("public, ")


async def _media(api, photo_id: str, headers: dict) -> dict[str, str]:
    """The media URLs the API hands this viewer now."""
    resp = await api.get(f"/v1/photos/{photo_id}", headers=headers)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["media"]


async def test_media_urls_stop_working_when_an_account_turns_private(api):
    """A stranger's URL of a public photo of an account that turns private is refused
    (as a missing photo's); the owner's and an approved follower's URLs, handed out
    after, work; a URL taken before works again once the account is public again."""
    owner, owner_h = await api.user()
    _, stranger_h = await api.user()
    follower, follower_h = await api.user()
    photo = await api.photo(owner_h, samples.image(), "public for now")
    seen = await _media(api, photo["id"], stranger_h)
    for name in ("thumb", "large"):
        resp = await api.get(seen[name])
        assert resp.status == 200 and "max-age=3600," in resp.headers["Cache-Control"]

    assert (await api.patch("/v1/me", json={"private": True}, headers=owner_h)).status == 200
    assert (await api.put(f"/v1/users/{owner}/follow", headers=follower_h)).status == 200
    approve = f"/v1/me/requests/{follower}/approve"
    assert (await api.post(approve, headers=owner_h)).status == 200
    for name in ("thumb", "large"):
        body = await problem(await api.get(seen[name]), 404)
        assert body["detail"] == f"no media {photo['id']}/{name}"
        await problem(await api.get(seen[name], headers=stranger_h), 404)
    for viewer_h in (owner_h, follower_h):
        now = await _media(api, photo["id"], viewer_h)
        assert now["large"] != seen["large"]
        resp = await api.get(now["large"])  # no token: an <img> sends none
        assert resp.status == 200 and resp.headers["Cache-Control"].startswith("private, ")
    assert (await api.patch("/v1/me", json={"private": False}, headers=owner_h)).status == 200
    assert (await api.get(seen["large"])).status == 200


@pytest.mark.parametrize("account", ["private", "public"])
async def test_media_urls_stop_working_for_a_follower_who_leaves(api, account):
    """A follower's URLs of a private account's photos, or of a followers-only photo,
    stop working once they unfollow; another follower's keep working, and the leaver
    cannot put that follower's id into their own URL."""
    owner, owner_h = await api.user(private=account == "private")
    visibility = "public" if account == "private" else "followers"
    photo = await api.photo(owner_h, samples.image(), "for followers", visibility=visibility)
    urls = {}
    for _ in range(2):
        name, headers = await api.user()
        assert (await api.put(f"/v1/users/{owner}/follow", headers=headers)).status == 200
        if account == "private":
            await api.post(f"/v1/me/requests/{name}/approve", headers=owner_h)
        urls[name] = (headers, await _media(api, photo["id"], headers))
    (leaver_h, left), (_, kept) = urls.values()
    assert left["thumb"] != kept["thumb"]  # each URL is bound to its follower
    assert (await api.get(left["thumb"])).status == 200

    assert (await api.delete(f"/v1/users/{owner}/follow", headers=leaver_h)).status == 204
    for name in ("thumb", "large"):
        await problem(await api.get(left[name]), 404)
        await problem(await api.get(left[name], headers=leaver_h), 404)
        assert (await api.get(kept[name])).status == 200
    _, photo_id, access, thumb = kept["thumb"].rsplit("/", 3)
    secret, stayer_id, _tag = access.split(".")
    mine = left["thumb"].rsplit("/", 2)[1].split(".")
    forged = [f"{secret}.{stayer_id}.{mine[2]}", f"{secret}.{mine[1]}", f"{secret}.{stayer_id}.x"]
    for access in forged:
        await problem(await api.get(f"/v1/media/{photo_id}/{access}/{thumb}"), 404)


async def test_media_urls_of_a_deleted_photo_stop_working(api):
    owner, owner_h = await api.user()
    _, follower_h = await api.user()
    photo = await api.photo(owner_h, samples.image(), "soon gone", visibility="followers")
    assert (await api.put(f"/v1/users/{owner}/follow", headers=follower_h)).status == 200
    urls = [photo["media"]["large"], (await _media(api, photo["id"], follower_h))["large"]]
    assert [(await api.get(u)).status for u in urls] == [200, 200]
    assert (await api.delete(f"/v1/photos/{photo['id']}", headers=owner_h)).status == 204
    for url in urls:
        await problem(await api.get(url), 404)


# ---- item 13: a hidden thing answers like a missing one ----------------------------------


async def test_deleting_a_photo_you_cannot_see_is_404_like_a_missing_one(api):
    _owner, owner_h = await api.user()
    _, other_h = await api.user()
    hidden = await api.photo(owner_h, samples.image(), "mine alone", visibility="private")
    friends = await api.photo(owner_h, samples.image(), "friends only", visibility="followers")
    visible = await api.photo(owner_h, samples.image(), "for all")
    missing = ids.IdGenerator(worker_id=99).next_id()

    gone = await problem(await api.delete(f"/v1/photos/{missing}", headers=other_h), 404)
    for photo in (hidden, friends):
        body = await problem(await api.delete(f"/v1/photos/{photo['id']}", headers=other_h), 404)
        assert body["detail"] == gone["detail"].replace(str(missing), photo["id"])
        assert body.keys() == gone.keys()
    await problem(
        await api.delete(f"/v1/photos/{visible['id']}", headers=other_h), 403
    )  # seen, not owned
    for photo in (hidden, friends, visible):  # nothing changed
        assert (await api.get(f"/v1/photos/{photo['id']}", headers=owner_h)).status == 200
    for verb in (api.put, api.delete):  # likes, and undoing them, of hidden photos
        await problem(await verb(f"/v1/photos/{hidden['id']}/like", headers=other_h), 404)
        await problem(await verb(f"/v1/photos/{missing}/like", headers=other_h), 404)
    body = await problem(await api.post(f"/v1/photos/{hidden['id']}/restore", headers=other_h), 404)
    assert body["detail"] == gone["detail"].replace(str(missing), hidden["id"])


async def test_media_of_a_missing_photo_answers_like_a_wrong_secret(api):
    _, owner_h = await api.user()
    body = await api.photo(owner_h, samples.image(), "a photo")
    secret = body["media"]["thumb"].split("/")[4]
    missing = ids.IdGenerator(worker_id=99).next_id()
    wrong = await problem(await api.get(f"/v1/media/{body['id']}/{'A' * len(secret)}/thumb"), 404)
    absent = await problem(await api.get(f"/v1/media/{missing}/{'A' * len(secret)}/thumb"), 404)
    assert wrong["detail"].replace(body["id"], "ID") == absent["detail"].replace(str(missing), "ID")


async def test_cursors_are_sealed(api):
    owner, owner_h = await api.user()
    made = [await api.photo(owner_h, samples.image(size=(32, 32)), f"p{i}") for i in range(3)]
    page = await (await api.get(f"/v1/users/{owner}/photos?limit=1")).json()
    raw = base64.urlsafe_b64decode(page["next_cursor"] + "==")
    assert struct.pack(">Q", int(made[-1]["id"])) not in raw
    assert (
        page["next_cursor"]
        != (await (await api.get(f"/v1/users/{owner}/photos?limit=1")).json())["next_cursor"]
    )
    # A cursor made by hand (the old, readable format, or a changed sealed one) is a 400.
    forged = (
        base64.urlsafe_b64encode(b"i1" + struct.pack(">Q", int(made[1]["id"])))
        .rstrip(b"=")
        .decode()
    )
    await problem(await api.get(f"/v1/users/{owner}/photos?limit=1&cursor={forged}"), 400)
    flipped = (
        page["next_cursor"][:-3]
        + ("A" if page["next_cursor"][-3] != "A" else "B")
        + page["next_cursor"][-2:]
    )
    await problem(await api.get(f"/v1/users/{owner}/photos?limit=1&cursor={flipped}"), 400)
    rest = await (
        await api.get(f"/v1/users/{owner}/photos?limit=5&cursor={page['next_cursor']}")
    ).json()
    assert [p["id"] for p in rest["items"]] == [made[1]["id"], made[0]["id"]]


# ---- item 14: names and text --------------------------------------------------------------


async def test_usernames_match_whole_strings(api):
    name = f"u{ids.IdGenerator(worker_id=98).next_id()}"
    for bad in (name + "\n", name + "\r\n", "\n" + name, name + "\x00"):
        await problem(
            await api.post(
                "/v1/users", json={"username": bad, "password": "correct horse battery"}
            ),
            400,
        )
    assert (
        await api.post("/v1/users", json={"username": name, "password": "correct horse battery"})
    ).status == 201


@pytest.mark.parametrize(
    "char",
    [
        "\x00",
        "\x1b",
        "\n",
        "\x7f",
        "\x85",
        "\u202e",
        "\u2066",
        "\u200b",
        "\ufeff",
        "\u2028",
        "\U000e0041",
    ],
)
async def test_titles_and_display_names_refuse_control_and_bidi_characters(api, char):
    name, headers = await api.user()
    code = f"U+{ord(char):04X}"
    body = await problem(await api.upload(headers, samples.image(), f"cat{char}gnp.exe"), 400)
    assert code in body["detail"] and "title" in body["detail"]
    body = await problem(
        await api.patch("/v1/me", json={"display_name": f"Eve{char}lyn"}, headers=headers), 400
    )
    assert code in body["detail"] and "display_name" in body["detail"]
    resp = await api.post(
        "/v1/users",
        json={
            "username": f"{name}x",
            "password": "correct horse battery",
            "display_name": f"x{char}y",
        },
    )
    await problem(resp, 400)
    assert (await (await api.get(f"/v1/users/{name}")).json())["display_name"] == ""
    assert (await (await api.get(f"/v1/users/{name}/photos", headers=headers)).json())[
        "items"
    ] == []
    await problem(await api.get(f"/v1/users/{name}x"), 404)  # nothing half-made


async def test_a_lone_surrogate_in_a_display_name_is_a_400(api):
    _, headers = await api.user()
    body = b'{"display_name": "Eve\\ud800"}'
    resp = await api.patch(
        "/v1/me", data=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert "U+D800" in (await problem(resp, 400))["detail"]


async def test_text_people_write_keeps_its_scripts_and_emoji(api):
    _, headers = await api.user()
    scotland = (
        "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # tag characters
    )
    text = f"Zoë 🏳️‍🌈 ناصر\u200cی 東京 {scotland}"  # ZWJ emoji, a Persian zero-width non-joiner, CJK
    assert (await api.patch("/v1/me", json={"display_name": text}, headers=headers)).status == 200
    assert (await api.photo(headers, samples.image(), text))["title"] == text


# ---- item 18: declared video frame size ------------------------------------------------------


async def test_a_video_declaring_huge_frames_is_refused_before_decoding(api):
    _, headers = await api.user()
    body = await problem(await api.upload(headers, samples.mjpeg_mov((9000, 9000))), 422)
    assert "declares 9000x9000" in body["detail"]


# ---- media HEAD and 416 ----------------------------------------------------------------------


async def test_media_answers_head_with_the_get_headers_and_no_body(api):
    _, headers = await api.user()
    body = await api.photo(headers, samples.image(), "head")
    for name in ("thumb", "large", "original"):
        got = await api.get(body["media"][name], headers=headers)
        head = await api.head(body["media"][name], headers=headers)
        assert head.status == 200 and await head.read() == b""
        for header in ("Content-Length", "Content-Type", "ETag", "Cache-Control", "Accept-Ranges"):
            assert head.headers[header] == got.headers[header], header
    ranged = await api.head(body["media"]["large"], headers={"Range": "bytes=0-9"})
    assert ranged.status == 206 and ranged.headers["Content-Length"] == "10"


async def test_an_unsatisfiable_range_is_a_problem_with_content_range(api):
    _, headers = await api.user()
    body = await api.photo(headers, samples.image(), "range")
    size = len(await (await api.get(body["media"]["thumb"])).read())
    for header in (f"bytes={size}-", "bytes=-0", f"bytes={size + 5}-{size + 9}"):
        resp = await api.get(body["media"]["thumb"], headers={"Range": header})
        assert resp.headers["Content-Range"] == f"bytes */{size}"
        await problem(resp, 416)
    for header in ("bytes=\u00b2-", "bytes=0-" + "9" * 5000):  # not a range of ours: the whole body
        resp = await api.get(body["media"]["thumb"], headers={"Range": header})
        assert resp.status == 200 and len(await resp.read()) == size


async def calls_made(request) -> dict[tuple[str, str], float]:
    before = store_calls()
    await problem(await request(), 404)
    after = store_calls()
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


async def reads_of_both(hidden, missing) -> list:
    """The store reads of two 404 requests, measured alike. Background work (the
    transcode worker's poll, the fan-out sweep of photos other tests queued) may land in
    one count: a real difference shows in every try, that noise in few."""
    tries = []
    for _ in range(3):
        tries.append([await calls_made(hidden), await calls_made(missing)])
        if tries[-1][0] == tries[-1][1]:
            break
    return tries


@pytest.mark.parametrize("signed_in", [True, False])
async def test_a_hidden_photo_costs_the_store_reads_of_a_missing_one(api, signed_in):
    """The time of a 404 must not tell a hidden photo from a missing id: both read the
    same stores the same number of times (a private photo, a followers-only one, one of a
    private account, and an id that was never a photo)."""
    _, owner_h = await api.user()
    _, private_h = await api.user(private=True)
    _, stranger_h = await api.user()
    # Bytes of their own: a deduplicated upload removes its own blobs after answering,
    # and those removals would be counted as the 404s' work.
    hidden = [
        await api.photo(owner_h, samples.image(color=(1, 2, 3)), "mine", visibility="private"),
        await api.photo(owner_h, samples.image(color=(4, 5, 6)), "ours", visibility="followers"),
        await api.photo(private_h, samples.image(color=(7, 8, 9)), "a private account's"),
    ]
    missing = str(ids.IdGenerator(worker_id=99).next_id())
    headers = stranger_h if signed_in else {}
    # A copy of bytes stored already (by another test) removes its own blobs after its
    # answer: done before the 404s are counted.
    await api.client.app[SERVICES].uploads.removals_done()
    await api.client.app[SERVICES].fanout.drain()  # the uploads' fan-outs, in the background
    for photo_id in [p["id"] for p in hidden]:
        paths = [f"/v1/photos/{photo_id}", f"/v1/photos/{missing}"]
        for path in paths:  # warm the owner cache, as for requests in a row
            await problem(await api.get(path, headers=headers), 404)
        tries = await reads_of_both(*[lambda p=path: api.get(p, headers=headers) for path in paths])
        hidden_reads, missing_reads = tries[-1]
        assert hidden_reads == missing_reads and hidden_reads, tries


# ---- a profile's photo count: of what the viewer may see ------------------------------


async def test_a_profiles_photo_count_is_of_what_its_viewer_may_see(api):
    """Counting photos a viewer may not see would tell them those photos exist: the
    owner counts all, a follower public and followers-only ones, anyone else public ones,
    and nobody but approved followers anything of a private account."""
    owner, owner_h = await api.user()
    _, fan_h = await api.user()
    _, stranger_h = await api.user()
    await api.put(f"/v1/users/{owner}/follow", headers=fan_h)
    for visibility, n in (("public", 1), ("followers", 2), ("private", 3)):
        for _ in range(n):
            await api.photo(owner_h, samples.image("PNG", (32, 32)), visibility=visibility)

    async def count(headers: dict | None) -> int:
        resp = await api.get(f"/v1/users/{owner}", headers=headers or {})
        assert resp.status == 200
        return (await resp.json())["counts"]["photos"]

    assert await count(owner_h) == 6
    assert (await (await api.get("/v1/me", headers=owner_h)).json())["counts"]["photos"] == 6
    assert await count(fan_h) == 3
    assert await count(stranger_h) == 1
    assert await count(None) == 1

    resp = await api.patch("/v1/me", json={"private": True}, headers=owner_h)
    assert resp.status == 200
    assert await count(fan_h) == 3  # an approved follower still sees what they saw
    assert await count(stranger_h) == 0
    assert await count(None) == 0
    assert await count(owner_h) == 6


# ---- cursors belong to their list -----------------------------------------------------


async def test_a_private_list_gives_a_stranger_no_cursor_to_date_its_photos_by(api):
    """A stranger reading a private account's photos gets an empty last page, not a
    cursor sitting on one of its hidden photos (which, given to search, would answer with
    the public matches older than that photo, and so date it)."""
    owner, owner_h = await api.user(private=True)
    _, poster_h = await api.user()
    _, stranger_h = await api.user()
    older = await api.photo(poster_h, samples.image(size=(32, 32)), "sunset early")
    for i in range(20):
        await api.photo(owner_h, samples.image(size=(32, 32)), f"sunset private {i}")
    await api.photo(poster_h, samples.image(size=(32, 32)), "sunset late")
    for headers in (stranger_h, {}):
        page = await (await api.get(f"/v1/users/{owner}/photos?limit=1", headers=headers)).json()
        assert page == {"items": [], "next_cursor": None}
    # The owner's own cursor, handed to the stranger, opens nothing.
    mine = await (await api.get(f"/v1/users/{owner}/photos?limit=1", headers=owner_h)).json()
    for url in (f"/v1/users/{owner}/photos", "/v1/search/photos?q=sunset"):
        sep = "&" if "?" in url else "?"
        body = await problem(
            await api.get(f"{url}{sep}cursor={mine['next_cursor']}", headers=stranger_h), 400
        )
        assert "cursor" in body["detail"]
    found = await (await api.get("/v1/search/photos?q=sunset", headers=stranger_h)).json()
    assert older["id"] in [p["id"] for p in found["items"]]


async def test_a_cursor_is_refused_by_every_other_list(api):
    me, me_h = await api.user()
    other, other_h = await api.user()
    for name in (me, other):
        for i in range(2):
            await api.photo(
                me_h if name == me else other_h, samples.image(size=(32, 32)), f"sunset {i}"
            )
    await api.put(f"/v1/users/{other}/follow", headers=me_h)
    fans = [await api.user() for _ in range(2)]
    for _, fan_h in fans:
        await api.put(f"/v1/users/{other}/follow", headers=fan_h)
        await api.put(f"/v1/users/{me}/follow", headers=fan_h)
    lists = {
        "my photos": f"/v1/users/{me}/photos?limit=1",
        "their photos": f"/v1/users/{other}/photos?limit=1",
        "search sunset": "/v1/search/photos?q=sunset&limit=1",
        "search Sunset 1": "/v1/search/photos?q=sunset%201&limit=1",
        "recent": "/v1/timeline?order=recent&limit=1",
        "top": "/v1/timeline?order=top&limit=1",
        "their followers": f"/v1/users/{other}/followers?limit=1",
        "my followers": f"/v1/users/{me}/followers?limit=1",
        "their following": f"/v1/users/{fans[0][0]}/following?limit=1",
    }
    cursors = {}
    for name, url in lists.items():
        page = await (await api.get(url, headers=me_h)).json()
        assert page["next_cursor"], name
        cursors[name] = page["next_cursor"]
        # Each list takes its own cursor.
        assert (await api.get(f"{url}&cursor={page['next_cursor']}", headers=me_h)).status == 200
    for name, url in lists.items():
        for other_name, cursor in cursors.items():
            if other_name != name:
                resp = await api.get(f"{url}&cursor={cursor}", headers=me_h)
                await problem(resp, 400)
    # The same list read by someone else (or nobody signed in): the viewer differs.
    for name in ("their photos", "search sunset"):
        for headers in (other_h, {}):
            resp = await api.get(f"{lists[name]}&cursor={cursors[name]}", headers=headers)
            await problem(resp, 400)


# ---- comments and likers follow the photo ---------------------------------------------


async def test_comments_and_likers_follow_the_photos_visibility(api):
    """The sweep over every operation on what hangs off a photo (its comments, adding and
    deleting one, its likers, its counts, reporting it), for each kind of viewer: nobody
    signed in, a stranger, a pending follower, an approved follower, a follower the owner
    then blocked, and the owner. A photo hidden from a viewer answers each exactly as a
    missing id does."""
    private_owner, private_h = await api.user(private=True)
    public_owner, public_h = await api.user()
    follower, follower_h = await api.user()
    _pending, pending_h = await api.user()
    _, stranger_h = await api.user()
    blocked, blocked_h = await api.user()
    for owner in (private_owner, public_owner):
        await api.put(f"/v1/users/{owner}/follow", headers=follower_h)
        await api.put(f"/v1/users/{owner}/follow", headers=pending_h)
        await api.put(f"/v1/users/{owner}/follow", headers=blocked_h)
    await api.post(f"/v1/me/requests/{follower}/approve", headers=private_h)
    await api.post(f"/v1/me/requests/{blocked}/approve", headers=private_h)
    for owner_h in (private_h, public_h):  # the blocked viewer followed each until now
        assert (await api.put(f"/v1/users/{blocked}/block", headers=owner_h)).status == 204
    # The pending viewer follows the public account at once: a request only to the private.
    await api.delete(f"/v1/users/{public_owner}/follow", headers=pending_h)

    image = samples.image(size=(32, 32))
    photos = {
        "private account": (await api.photo(private_h, image, "p"), private_h),
        "followers only": (await api.photo(public_h, image, "f", visibility="followers"), public_h),
        "owner only": (await api.photo(public_h, image, "o", visibility="private"), public_h),
        "public": (await api.photo(public_h, image, "pub"), public_h),
    }
    viewers = {
        "nobody": {},
        "stranger": stranger_h,
        "pending": pending_h,
        "follower": follower_h,
        "blocked": blocked_h,
    }
    sees = {
        "private account": {"follower"},
        "followers only": {"follower"},
        "owner only": set(),
        "public": set(viewers) - {"blocked"},
    }
    missing = ids.IdGenerator(worker_id=99).next_id()

    async def answers(pid, headers, comment_id) -> list[tuple[int, dict | None]]:
        calls = [
            api.get(f"/v1/photos/{pid}/comments", headers=headers),
            api.post(f"/v1/photos/{pid}/comments", json={"text": "hi"}, headers=headers),
            api.delete(f"/v1/photos/{pid}/comments/{comment_id}", headers=headers),
            api.get(f"/v1/photos/{pid}/likers", headers=headers),
            api.get(f"/v1/photos/{pid}", headers=headers),
            api.post(f"/v1/photos/{pid}/report", json={"reason": "spam"}, headers=headers),
        ]
        out = []
        for call in calls:
            resp = await call
            body = await resp.json() if resp.content_type.endswith("json") else None
            out.append((resp.status, body))
        return out

    for what, (photo, owner_h) in photos.items():
        pid = photo["id"]
        theirs = await api.post(f"/v1/photos/{pid}/comments", json={"text": "own"}, headers=owner_h)
        assert theirs.status == 201
        comment_id = (await theirs.json())["id"]
        assert (await api.put(f"/v1/photos/{pid}/like", headers=owner_h)).status == 200
        for who, headers in viewers.items():
            got = await answers(pid, headers, comment_id)
            if who in sees[what]:
                statuses = [s for s, _ in got]
                signed = 401 if not headers else None
                assert statuses == [200, signed or 201, signed or 403, 200, 200, signed or 204], (
                    what,
                    who,
                )
                assert got[4][1]["comments"] >= 1 and got[4][1]["liked"] is False
                assert [u["id"] for u in got[3][1]["items"]] == [photo["owner"]["id"]]
                continue
            absent = await answers(missing, headers, comment_id)
            for (status, body), (gone_status, gone) in zip(got, absent, strict=True):
                assert status == gone_status, (what, who)
                if gone_status == 404:
                    assert body["detail"] == gone["detail"].replace(str(missing), pid), (what, who)
            assert [s for s, _ in got] == (
                [404, 401, 401, 404, 404, 401] if not headers else [404] * 6
            )
        # The owner: everything, its own comment deleted last.
        got = await answers(pid, owner_h, comment_id)
        assert [s for s, _ in got] == [200, 201, 204, 200, 200, 403], what
        assert got[4][1]["liked"] is True
        # Nothing a refused viewer tried was stored: the owner's two, and one per viewer
        # who sees it and is signed in, less the owner's deleted one.
        listed = (await (await api.get(f"/v1/photos/{pid}/comments", headers=owner_h)).json())[
            "items"
        ]
        signed_seeing = len([w for w in sees[what] if viewers[w]])
        assert len(listed) == 1 + signed_seeing, what


# ---- permalinks and oEmbed: a stranger's view, whoever asks ------------------------------


async def _previews(api, photo_id: str, headers: dict) -> list:
    """The photo's page and its oEmbed document, as ``headers`` asks for them."""
    url = f"http://{api.client.host}:{api.client.port}/p/{photo_id}"
    return [
        await api.get(f"/p/{photo_id}", headers=headers),
        await api.get("/oembed", params={"url": url}, headers=headers),
    ]


def _same_headers(resp) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k not in ("Date", "Content-Length")}


async def test_a_photo_a_stranger_may_not_see_has_no_preview_for_anyone(api):
    """Private, followers-only, a private account's, and deleted photos: the page and
    oEmbed answer exactly as for a missing id (body, headers, store reads), with no
    credentials, a stranger's, a pending follower's, an approved follower's and even the
    owner's: the page is what a crawler would see, never its caller's view."""
    owner, owner_h = await api.user()
    locked, locked_h = await api.user(private=True)
    fan, fan_h = await api.user()
    _, pending_h = await api.user()
    _, stranger_h = await api.user()
    await api.put(f"/v1/users/{owner}/follow", headers=fan_h)
    await api.put(f"/v1/users/{locked}/follow", headers=fan_h)
    await api.post(f"/v1/me/requests/{fan}/approve", headers=locked_h)
    asked = await api.put(f"/v1/users/{locked}/follow", headers=pending_h)
    assert (await asked.json())["state"] == "requested"  # not approved
    hidden = {
        "private": await api.photo(
            owner_h, samples.image(color=(11, 1, 1)), "mine", visibility="private"
        ),
        "followers": await api.photo(
            owner_h, samples.image(color=(12, 1, 1)), "ours", visibility="followers"
        ),
        "private account": await api.photo(locked_h, samples.image(color=(13, 1, 1)), "locked"),
        "deleted": await api.photo(owner_h, samples.image(color=(14, 1, 1)), "gone"),
    }
    assert (
        await api.delete(f"/v1/photos/{hidden['deleted']['id']}", headers=owner_h)
    ).status == 204
    missing = str(ids.IdGenerator(worker_id=99).next_id())
    viewers = {
        "nobody": {},
        "stranger": stranger_h,
        "pending follower": pending_h,
        "follower": fan_h,
        "owner": owner_h,
        "private owner": locked_h,
    }
    for who, headers in viewers.items():
        absent = await _previews(api, missing, headers)
        for what, photo in hidden.items():
            for got, gone in zip(await _previews(api, photo["id"], headers), absent, strict=True):
                body = await problem(got, 404)
                expected = await problem(gone, 404)
                assert body == {
                    **expected,
                    "detail": expected["detail"].replace(missing, photo["id"]),
                }, (who, what)
                assert _same_headers(got) == _same_headers(gone), (who, what)
    # What each of them does see of the same photos through the API, to show the 404s
    # above are the previews' own rule and not the viewers' lack of access.
    ours = hidden["followers"]["id"]
    assert (await api.get(f"/v1/photos/{ours}", headers=fan_h)).status == 200
    assert (
        await api.get(f"/v1/photos/{hidden['private account']['id']}", headers=fan_h)
    ).status == 200
    await api.client.app[SERVICES].uploads.removals_done()
    for photo_id in [hidden[k]["id"] for k in ("private", "followers", "private account")]:
        for path in (f"/p/{photo_id}", f"/p/{missing}"):  # warm the owner cache
            await problem(await api.get(path), 404)
        tries = await reads_of_both(
            *[lambda p=p: api.get(p) for p in (f"/p/{photo_id}", f"/p/{missing}")]
        )
        assert tries[-1][0] == tries[-1][1] and tries[-1][0], tries


async def test_a_public_photos_preview_is_the_same_for_every_viewer(api):
    """One page and one oEmbed document per photo, byte for byte, whoever asks: nothing
    of the caller's view (the owner's original, a follower's bound URLs) reaches them;
    a bad token is refused as on every route."""
    owner, owner_h = await api.user()
    _, fan_h = await api.user()
    _, stranger_h = await api.user()
    await api.put(f"/v1/users/{owner}/follow", headers=fan_h)
    photo = await api.photo(owner_h, samples.image(color=(15, 1, 1)), "for everyone")
    answers = []
    for headers in ({}, stranger_h, fan_h, owner_h):
        page, oembed = await _previews(api, photo["id"], headers)
        assert page.status == oembed.status == 200
        answers.append((await page.read(), await oembed.read()))
    assert all(a == answers[0] for a in answers)
    assert b"/original" not in answers[0][0] and b"/original" not in answers[0][1]
    for got in await _previews(api, photo["id"], {"Authorization": "Bearer not-a-token"}):
        await problem(got, 401)


async def test_a_photo_that_stops_being_public_loses_its_preview(api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(color=(16, 1, 1)), "public for now")
    assert [r.status for r in await _previews(api, photo["id"], {})] == [200, 200]
    assert (await api.patch("/v1/me", json={"private": True}, headers=owner_h)).status == 200
    for got in await _previews(api, photo["id"], owner_h):
        await problem(got, 404)
    assert (await api.patch("/v1/me", json={"private": False}, headers=owner_h)).status == 200
    assert [r.status for r in await _previews(api, photo["id"], {})] == [200, 200]


# ---- a block: as missing to the blocked, in the reads too ---------------------------------


async def test_a_blockers_photo_costs_a_blocked_viewer_the_reads_of_a_missing_one(api):
    """The time of a 404 must not tell a blocker's photo from a missing id either: the
    blocked viewer's look-up of each reads the same stores the same number of times."""
    _, owner_h = await api.user()
    blocked, blocked_h = await api.user()
    photo = await api.photo(owner_h, samples.image(color=(11, 12, 13)), "not for you")
    assert (await api.put(f"/v1/users/{blocked}/block", headers=owner_h)).status == 204
    missing = str(ids.IdGenerator(worker_id=99).next_id())
    await api.client.app[SERVICES].uploads.removals_done()
    await api.client.app[SERVICES].fanout.drain()
    paths = [f"/v1/photos/{photo['id']}", f"/v1/photos/{missing}"]
    for path in paths:  # warm the owner cache, as for requests in a row
        await problem(await api.get(path, headers=blocked_h), 404)
    tries = await reads_of_both(*[lambda p=path: api.get(p, headers=blocked_h) for path in paths])
    hidden_reads, missing_reads = tries[-1]
    assert hidden_reads == missing_reads and hidden_reads, tries
    assert any(op == "blockers_among" for _, op in hidden_reads), hidden_reads


@pytest.mark.parametrize("signed_in", [True, False])
async def test_a_first_look_at_a_hidden_photo_reads_what_one_at_a_missing_id_does(api, signed_in):
    """Each process keeps whether an item is hidden for a few seconds: the first look at
    an id never asked for reads it from the store, whether a photo has that id or not."""
    _, owner_h = await api.user()
    _, stranger_h = await api.user()
    headers = stranger_h if signed_in else {}
    hidden = await api.photo(owner_h, samples.image(color=(21, 22, 23)), "p", visibility="private")
    await api.client.app[SERVICES].uploads.removals_done()
    await api.client.app[SERVICES].fanout.drain()
    await problem(await api.get(f"/v1/photos/{hidden['id']}", headers=stranger_h), 404)  # warm
    fresh = [
        await api.photo(owner_h, samples.image(color=(24, 25, 26)), "q", visibility="private"),
        {"id": str(ids.IdGenerator(worker_id=99).next_id())},
    ]
    await api.client.app[SERVICES].uploads.removals_done()
    await api.client.app[SERVICES].fanout.drain()
    takedown_reads = []
    for photo in fresh:
        made = await calls_made(lambda p=photo: api.get(f"/v1/photos/{p['id']}", headers=headers))
        takedown_reads.append({k: v for k, v in made.items() if k[1] == "hidden_among"})
    assert takedown_reads[0] == takedown_reads[1] and takedown_reads[0], takedown_reads


# ---- the activity inbox: its reader's alone, and only what they may see ------------------


async def _activity(api, headers, query: str = "") -> dict:
    resp = await api.get(f"/v1/activity{query}", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _unread(api, headers) -> dict:
    resp = await api.get("/v1/activity/unread", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_the_activity_inbox_is_its_readers_alone(api):
    """Each kind of viewer (nobody signed in, a stranger, a pending follower, an approved
    follower, the owner) reads only their own inbox, and is told of a mention only in
    what they may see: a comment mentioning everyone on a private account's photo tells
    its follower, and nobody else, that it exists."""
    owner, owner_h = await api.user(private=True)
    follower, follower_h = await api.user()
    pending, pending_h = await api.user()
    stranger, stranger_h = await api.user()
    for headers in (follower_h, pending_h):
        await api.put(f"/v1/users/{owner}/follow", headers=headers)
    await api.post(f"/v1/me/requests/{follower}/approve", headers=owner_h)
    photo = await api.photo(owner_h, samples.image(size=(32, 32)), "home")
    text = f"@{pending} @{stranger} @{follower} @{owner}"
    resp = await api.post(
        f"/v1/photos/{photo['id']}/comments", json={"text": text}, headers=follower_h
    )
    assert resp.status == 201
    assert (await api.put(f"/v1/photos/{photo['id']}/like", headers=follower_h)).status == 200

    for path in ("/v1/activity", "/v1/activity/unread"):
        await problem(await api.get(path), 401)
    await problem(await api.post("/v1/activity/read", json={}), 401)
    inboxes = {
        name: (await _activity(api, headers))["items"]
        for name, headers in (
            ("owner", owner_h),
            ("follower", follower_h),
            ("pending", pending_h),
            ("stranger", stranger_h),
        )
    }
    # The follower's request, approved, is no longer an event; the pending one's is.
    assert [(i["kind"], i["actor"]["username"]) for i in inboxes["owner"]] == [
        ("like", follower),
        ("comment", follower),
        ("request", pending),
    ]
    assert [i["kind"] for i in inboxes["follower"]] == ["approved"]
    # Neither the pending follower nor the stranger may see the photo: no event, no count,
    # no cursor, whatever they ask.
    for name, headers in (("pending", pending_h), ("stranger", stranger_h)):
        assert inboxes[name] == [], name
        assert await _unread(api, headers) == {"unread": 0, "more": False}, name
        assert (await _activity(api, headers, "?limit=1"))["next_cursor"] is None, name


async def test_events_about_a_photo_its_reader_may_no_longer_see_are_gone(api):
    _, owner_h = await api.user()
    reader, reader_h = await api.user()
    fans = [await api.user() for _ in range(2)]
    await api.put(f"/v1/users/{reader}/follow", headers=fans[0][1])
    await api.photo(owner_h, samples.image(size=(32, 32)), f"hello @{reader}")
    await api.put(f"/v1/users/{reader}/follow", headers=fans[1][1])
    assert [i["kind"] for i in (await _activity(api, reader_h))["items"]] == [
        "follow",
        "mention",
        "follow",
    ]
    # The account turns private: the reader, who does not follow it, may no longer see
    # the photo, and its event is gone from pages, counts and page sizes alike.
    assert (await api.patch("/v1/me", json={"private": True}, headers=owner_h)).status == 200
    first = await _activity(api, reader_h, "?limit=2")
    assert [i["actor"]["username"] for i in first["items"]] == [fans[1][0], fans[0][0]]
    assert first["next_cursor"] is None  # read past the hidden event: no shorter page
    assert await _unread(api, reader_h) == {"unread": 2, "more": False}
    # Its cursor is the reader's alone.
    page = await _activity(api, reader_h, "?limit=1")
    resp = await api.get(f"/v1/activity?cursor={page['next_cursor']}", headers=owner_h)
    await problem(resp, 400)
    # Public again: the event is back (it was never removed).
    assert (await api.patch("/v1/me", json={"private": False}, headers=owner_h)).status == 200
    assert len((await _activity(api, reader_h))["items"]) == 3


# ---- hashtags and title edits: the sweep over each kind of viewer ------------------------


async def test_tags_and_title_edits_follow_the_photos_visibility(api):
    """A tag's page, tags by prefix and a title edit, for each kind of viewer (nobody
    signed in, a stranger, a pending follower, an approved follower, a follower the owner
    then blocked, and the owner), over photos of a private account, followers-only,
    owner-only, hidden by an operator, deleted and public ones. A tag whose photos are all
    hidden from a viewer answers as a tag nobody used (no item, no cursor, no listing); an
    edit of a hidden photo answers as one of a missing id; nothing refused is stored."""
    private_owner, private_h = await api.user(private=True)
    public_owner, public_h = await api.user()
    follower, follower_h = await api.user()
    _pending, pending_h = await api.user()
    _, stranger_h = await api.user()
    blocked, blocked_h = await api.user()
    for owner in (private_owner, public_owner):
        await api.put(f"/v1/users/{owner}/follow", headers=follower_h)
        await api.put(f"/v1/users/{owner}/follow", headers=pending_h)
        await api.put(f"/v1/users/{owner}/follow", headers=blocked_h)
    await api.post(f"/v1/me/requests/{follower}/approve", headers=private_h)
    await api.post(f"/v1/me/requests/{blocked}/approve", headers=private_h)
    for owner_h in (private_h, public_h):
        assert (await api.put(f"/v1/users/{blocked}/block", headers=owner_h)).status == 204
    await api.delete(f"/v1/users/{public_owner}/follow", headers=pending_h)

    stem = f"t{ids.IdGenerator(worker_id=98).next_id()}"  # tags no other test uses
    image = samples.image(size=(32, 32))
    kinds = {
        "private account": (private_h, None),
        "followers only": (public_h, "followers"),
        "owner only": (public_h, "private"),
        "hidden": (public_h, None),
        "deleted": (public_h, None),
        "public": (public_h, None),
    }
    photos = {}
    for n, (what, (owner_h, visibility)) in enumerate(kinds.items()):
        tag = f"{stem}x{n}"
        photo = await api.photo(owner_h, image, f"#{tag} {what}", visibility=visibility)
        photos[what] = (photo, owner_h, tag)
    svc = api.client.app[SERVICES]
    await svc.moderation.hide("photo", int(photos["hidden"][0]["id"]))
    assert (
        await api.delete(f"/v1/photos/{photos['deleted'][0]['id']}", headers=public_h)
    ).status == 204
    viewers = {
        "nobody": {},
        "stranger": stranger_h,
        "pending": pending_h,
        "follower": follower_h,
        "blocked": blocked_h,
    }
    sees = {
        "private account": {"follower"},
        "followers only": {"follower"},
        "owner only": set(),
        "hidden": set(),
        "deleted": set(),
        "public": set(viewers) - {"blocked"},
    }
    missing = ids.IdGenerator(worker_id=99).next_id()
    unused = f"{stem}unused"

    async def body(resp) -> tuple[int, dict]:
        return resp.status, await resp.json()

    async def listed(headers) -> list[str]:
        resp = await api.get("/v1/tags", params={"prefix": stem}, headers=headers)
        assert resp.status == 200
        return (await resp.json())["tags"]

    async def edit(pid, headers) -> tuple[int, dict]:
        return await body(
            await api.patch(f"/v1/photos/{pid}", json={"title": "mine now"}, headers=headers)
        )

    for what, (photo, owner_h, tag) in photos.items():
        pid = photo["id"]
        for who, headers in viewers.items():
            status, page = await body(
                await api.get(f"/v1/tags/{tag}/photos", params={"limit": "1"}, headers=headers)
            )
            assert status == 200
            tags = await listed(headers)
            edited = await edit(pid, headers)
            if who in sees[what]:
                assert [p["id"] for p in page["items"]] == [pid], (what, who)
                assert tag in tags, (what, who)
                assert edited[0] == (401 if not headers else 403), (what, who)
                continue
            nothing = await body(
                await api.get(f"/v1/tags/{unused}/photos", params={"limit": "1"}, headers=headers)
            )
            assert (status, page) == nothing, (what, who)  # no item, no cursor
            assert tag not in tags, (what, who)
            gone = await edit(missing, headers)
            assert edited[0] == gone[0] == (401 if not headers else 404), (what, who)
            assert edited[1]["detail"] == gone[1]["detail"].replace(str(missing), pid), (what, who)
        # The owner sees its own, hidden or not; a deleted photo is gone for everyone.
        status, page = await body(await api.get(f"/v1/tags/{tag}/photos", headers=owner_h))
        shown = [p["id"] for p in page["items"]]
        assert shown == ([] if what == "deleted" else [pid]), what
        # Nothing a refused viewer tried was stored.
        record = await svc.photos.photos.get_photo(int(pid))
        assert record is not None and record.title == f"#{tag} {what}", what
        if what != "deleted":
            resp = await api.patch(
                f"/v1/photos/{pid}", json={"title": f"#{tag} ok"}, headers=owner_h
            )
            assert resp.status == 200 and (await resp.json())["title"] == f"#{tag} ok", what
