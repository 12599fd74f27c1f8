"""Comments, likers, "liked by me", account search by username prefix, declining a
follow request and removing a follower, over HTTP: every route and every rejection."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from instastore.server.app import create_app

from instastore import ids

from .. import samples
from ..factories import Api, problem

MISSING = ids.IdGenerator(worker_id=99).next_id()


def _image() -> bytes:
    return samples.image(size=(32, 32))


async def _comment(api, headers, photo_id, text="nice") -> dict:
    resp = await api.post(f"/v1/photos/{photo_id}/comments", json={"text": text}, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _page(api, url, headers=None) -> dict:
    resp = await api.get(url, headers=headers or {})
    assert resp.status == 200, await resp.text()
    return await resp.json()


# ---- comments ----------------------------------------------------------------------------


async def test_comments_are_added_listed_oldest_first_and_counted(api):
    owner, owner_h = await api.user()
    fan, fan_h = await api.user()
    photo = await api.photo(owner_h, _image(), "talk to me")
    assert photo["comments"] == 0
    made = [
        await _comment(api, h, photo["id"], f"  c{i}  ") for i, h in enumerate([fan_h, owner_h] * 3)
    ]
    assert made[0]["text"] == "c0"  # trimmed
    assert made[0]["author"]["username"] == fan and made[1]["author"]["username"] == owner
    assert made[0]["photo_id"] == photo["id"]

    url = f"/v1/photos/{photo['id']}/comments?limit=4"
    first = await _page(api, url)  # nobody signed in reads a public photo's comments
    rest = await _page(api, f"{url}&cursor={first['next_cursor']}")
    assert [c["id"] for c in first["items"] + rest["items"]] == [c["id"] for c in made]
    assert first["items"] == made[:4] and rest["next_cursor"] is None
    body = await _page(api, f"/v1/photos/{photo['id']}")
    assert body["comments"] == 6
    listed = await _page(api, f"/v1/users/{owner}/photos")
    assert listed["items"][0]["comments"] == 6


async def test_comment_text_rules(api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, _image())
    url = f"/v1/photos/{photo['id']}/comments"
    most = api.settings.max_comment_chars
    for body in (
        {},
        {"text": ""},
        {"text": "   "},
        {"text": None},
        {"text": 7},
        {"text": "x" * (most + 1)},
        {"text": "a\u202eb"},  # bidi override
        {"text": "a\u0000b"},
        {"text": "a\u200bb"},  # zero-width space
        {"text": "ok", "extra": 1},
    ):
        detail = (await problem(await api.post(url, json=body, headers=owner_h), 400))["detail"]
        assert detail
    await problem(await api.post(url, data=b"text=hi", headers=owner_h), 400)  # not JSON
    await problem(
        await api.post(url, data=b"{", headers={**owner_h, "Content-Type": "application/json"}), 400
    )
    assert (await _comment(api, owner_h, photo["id"], "x" * most))["text"] == "x" * most
    assert (await _comment(api, owner_h, photo["id"], "שלום 👋🏽 نعم"))["text"] == "שלום 👋🏽 نعم"
    assert (await _page(api, url))["items"][-1]["text"] == "שלום 👋🏽 نعم"
    assert len((await _page(api, url))["items"]) == 2  # nothing refused was stored


async def test_comment_rejections(api):
    _, owner_h = await api.user()
    _, stranger_h = await api.user()
    photo = await api.photo(owner_h, _image())
    hidden = await api.photo(owner_h, _image(), visibility="private")
    await problem(await api.post(f"/v1/photos/{photo['id']}/comments", json={"text": "hi"}), 401)
    await problem(
        await api.post("/v1/photos/abc/comments", json={"text": "hi"}, headers=owner_h), 400
    )
    await problem(await api.get("/v1/photos/0/comments"), 400)
    for pid in (MISSING, hidden["id"]):
        await problem(
            await api.post(f"/v1/photos/{pid}/comments", json={"text": "hi"}, headers=stranger_h),
            404,
        )
        await problem(await api.get(f"/v1/photos/{pid}/comments", headers=stranger_h), 404)
    await problem(await api.get(f"/v1/photos/{photo['id']}/comments?cursor=bogus!"), 400)
    await problem(await api.get(f"/v1/photos/{photo['id']}/comments?limit=0"), 400)
    # A deleted photo's comments go with it, and come back with a restore.
    await _comment(api, owner_h, photo["id"])
    assert (await api.delete(f"/v1/photos/{photo['id']}", headers=owner_h)).status == 204
    await problem(await api.get(f"/v1/photos/{photo['id']}/comments", headers=owner_h), 404)
    await problem(
        await api.post(f"/v1/photos/{photo['id']}/comments", json={"text": "x"}, headers=owner_h),
        404,
    )
    assert (await api.post(f"/v1/photos/{photo['id']}/restore", headers=owner_h)).status == 200
    assert len((await _page(api, f"/v1/photos/{photo['id']}/comments"))["items"]) == 1


async def test_a_cursor_of_one_photos_comments_opens_no_other_list(api):
    _, owner_h = await api.user()
    _, other_h = await api.user()
    a, b = await api.photo(owner_h, _image()), await api.photo(owner_h, _image())
    for photo in (a, b):
        for _ in range(2):
            await _comment(api, owner_h, photo["id"])
    first = await _page(api, f"/v1/photos/{a['id']}/comments?limit=1", owner_h)
    cursor = first["next_cursor"]
    assert (
        await api.get(f"/v1/photos/{a['id']}/comments?cursor={cursor}", headers=owner_h)
    ).status == 200
    await problem(
        await api.get(f"/v1/photos/{b['id']}/comments?cursor={cursor}", headers=owner_h), 400
    )
    await problem(
        await api.get(f"/v1/photos/{a['id']}/comments?cursor={cursor}", headers=other_h), 400
    )
    await problem(
        await api.get(f"/v1/photos/{a['id']}/likers?cursor={cursor}", headers=owner_h), 400
    )


async def test_a_comment_is_deleted_by_its_author_or_the_photos_owner_only(api):
    _, owner_h = await api.user()
    _, author_h = await api.user()
    _, other_h = await api.user()
    photo = await api.photo(owner_h, _image())
    url = f"/v1/photos/{photo['id']}/comments"
    by_author = [await _comment(api, author_h, photo["id"], f"a{i}") for i in range(2)]
    by_owner = await _comment(api, owner_h, photo["id"], "mine")

    for comment in (*by_author, by_owner):  # seen, neither written nor owned: 403
        await problem(await api.delete(f"{url}/{comment['id']}", headers=other_h), 403)
    await problem(await api.delete(f"{url}/{by_owner['id']}", headers=author_h), 403)
    await problem(await api.delete(f"{url}/{by_author[0]['id']}"), 401)
    await problem(await api.delete(f"{url}/x1", headers=author_h), 400)
    await problem(await api.delete(f"{url}/{MISSING}", headers=author_h), 404)
    assert (await api.delete(f"{url}/{by_author[0]['id']}", headers=author_h)).status == 204
    assert (await api.delete(f"{url}/{by_author[1]['id']}", headers=owner_h)).status == 204
    await problem(await api.delete(f"{url}/{by_author[0]['id']}", headers=author_h), 404)  # gone
    assert [c["id"] for c in (await _page(api, url))["items"]] == [by_owner["id"]]
    assert (await _page(api, f"/v1/photos/{photo['id']}"))["comments"] == 1
    # A comment id of another photo is not this photo's.
    other = await api.photo(owner_h, _image())
    await problem(
        await api.delete(f"/v1/photos/{other['id']}/comments/{by_owner['id']}", headers=owner_h),
        404,
    )


async def test_comments_per_minute_are_limited(aiohttp_client, adapter_settings):
    settings = dataclasses.replace(adapter_settings, comments_per_minute=2, uploads_per_minute=100)
    api = Api(await aiohttp_client(create_app(settings)), settings)
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, _image())
    url = f"/v1/photos/{photo['id']}/comments"
    for _ in range(2):
        await _comment(api, owner_h, photo["id"])
    resp = await api.post(url, json={"text": "one too many"}, headers=owner_h)
    await problem(resp, 429)
    assert int(resp.headers["Retry-After"]) >= 1
    # Refusals spend nothing: a bad text is a 400, not a hit.
    await problem(await api.post(url, json={"text": ""}, headers=owner_h), 400)
    assert len((await _page(api, url))["items"]) == 2


# ---- likes: liked by me, likers ----------------------------------------------------------


async def test_photos_say_whether_the_viewer_likes_them(api):
    owner, owner_h = await api.user()
    _, fan_h = await api.user()
    liked = await api.photo(owner_h, _image(), "liked")
    other = await api.photo(owner_h, _image(), "not liked")
    assert (await api.put(f"/v1/photos/{liked['id']}/like", headers=fan_h)).status == 200
    assert (await _page(api, f"/v1/photos/{liked['id']}", fan_h))["liked"] is True
    assert (await _page(api, f"/v1/photos/{other['id']}", fan_h))["liked"] is False
    assert (await _page(api, f"/v1/photos/{liked['id']}", owner_h))["liked"] is False
    assert (await _page(api, f"/v1/photos/{liked['id']}"))["liked"] is False
    page = await _page(api, f"/v1/users/{owner}/photos", fan_h)
    assert {p["id"]: p["liked"] for p in page["items"]} == {liked["id"]: True, other["id"]: False}
    found = await _page(api, "/v1/search/photos?q=liked", fan_h)
    assert {p["id"]: p["liked"] for p in found["items"]}[liked["id"]] is True
    assert (await api.delete(f"/v1/photos/{liked['id']}/like", headers=fan_h)).status == 200
    assert (await _page(api, f"/v1/photos/{liked['id']}", fan_h))["liked"] is False


async def test_likers_are_listed_paged_for_those_who_see_the_photo(api):
    _, owner_h = await api.user()
    fans = [await api.user() for _ in range(3)]
    photo = await api.photo(owner_h, _image())
    for _, headers in fans:
        await api.put(f"/v1/photos/{photo['id']}/like", headers=headers)
    first = await _page(api, f"/v1/photos/{photo['id']}/likers?limit=2")
    rest = await _page(
        api, f"/v1/photos/{photo['id']}/likers?limit=2&cursor={first['next_cursor']}"
    )
    assert sorted(u["username"] for u in first["items"] + rest["items"]) == sorted(
        n for n, _ in fans
    )
    assert rest["next_cursor"] is None
    hidden = await api.photo(owner_h, _image(), visibility="followers")
    await api.put(f"/v1/photos/{hidden['id']}/like", headers=owner_h)
    for pid in (hidden["id"], MISSING):
        await problem(await api.get(f"/v1/photos/{pid}/likers", headers=fans[0][1]), 404)
    assert len((await _page(api, f"/v1/photos/{hidden['id']}/likers", owner_h))["items"]) == 1
    await problem(await api.get("/v1/photos/abc/likers"), 400)


# ---- follow requests and followers ---------------------------------------------------------


async def test_a_private_account_declines_a_request(api):
    owner, owner_h = await api.user(private=True)
    fan, fan_h = await api.user()
    await problem(await api.delete(f"/v1/me/requests/{fan}", headers=owner_h), 404)  # none
    await api.put(f"/v1/users/{owner}/follow", headers=fan_h)
    await problem(await api.delete(f"/v1/me/requests/{fan}"), 401)
    await problem(await api.delete("/v1/me/requests/nobody-here", headers=owner_h), 404)
    await problem(await api.delete("/v1/me/requests/No!", headers=owner_h), 404)  # as any name
    assert (await api.delete(f"/v1/me/requests/{fan}", headers=owner_h)).status == 204
    assert (await _page(api, "/v1/me/requests", owner_h))["items"] == []
    assert (await _page(api, f"/v1/users/{owner}", fan_h))["viewer"] == {
        "following": False,
        "requested": False,
    }
    await problem(await api.delete(f"/v1/me/requests/{fan}", headers=owner_h), 404)  # gone
    await problem(await api.post(f"/v1/me/requests/{fan}/approve", headers=owner_h), 404)
    # The requester may ask again.
    assert (await (await api.put(f"/v1/users/{owner}/follow", headers=fan_h)).json()) == {
        "state": "requested"
    }


async def test_a_removed_follower_no_longer_sees_followers_only_photos(api):
    owner, owner_h = await api.user(private=True)
    fan, fan_h = await api.user()
    await api.put(f"/v1/users/{owner}/follow", headers=fan_h)
    await api.post(f"/v1/me/requests/{fan}/approve", headers=owner_h)
    photo = await api.photo(owner_h, _image(), "for friends")
    timeline = await _page(api, "/v1/timeline", fan_h)  # the fan's followee list is cached now
    assert [p["id"] for p in timeline["items"]] == [photo["id"]]
    media = timeline["items"][0]["media"]["thumb"]
    assert (await api.get(media)).status == 200

    await problem(await api.delete(f"/v1/me/followers/{fan}"), 401)
    await problem(await api.delete("/v1/me/followers/nobody-here", headers=owner_h), 404)
    assert (await api.delete(f"/v1/me/followers/{fan}", headers=owner_h)).status == 204
    assert (await _page(api, "/v1/timeline", fan_h))["items"] == []
    await problem(await api.get(f"/v1/photos/{photo['id']}", headers=fan_h), 404)
    await problem(await api.get(media), 404)  # the media URL handed out stops working
    assert (await _page(api, f"/v1/users/{owner}", owner_h))["counts"]["followers"] == 0
    assert (await api.delete(f"/v1/me/followers/{fan}", headers=owner_h)).status == 204  # again


# ---- accounts by username prefix -----------------------------------------------------------


async def test_accounts_are_found_by_a_username_prefix_private_ones_too(api):
    stem = "s" + uuid.uuid4().hex[:6]
    names = sorted([f"{stem}{s}" for s in ("", "_b", "a", "c.d")])
    made = {}
    for i, name in enumerate(names):
        made[name] = await api.user(name, private=i == 1)
    _, viewer_h = await api.user()
    first = await _page(api, f"/v1/search/users?q={stem.upper()}&limit=3")  # folded to lower case
    rest = await _page(api, f"/v1/search/users?q={stem}&limit=3&cursor={first['next_cursor']}")
    found = first["items"] + rest["items"]
    assert [u["username"] for u in found] == names
    assert [u["private"] for u in found] == [i == 1 for i in range(4)]
    assert set(found[0]) == {"id", "username", "display_name", "private"}  # as a profile names it
    assert rest["next_cursor"] is None
    signed_in = await _page(api, f"/v1/search/users?q={stem}a", viewer_h)
    assert [u["username"] for u in signed_in["items"]] == [f"{stem}a"]
    # A cursor belongs to its prefix.
    await problem(await api.get(f"/v1/search/users?q={stem}a&cursor={first['next_cursor']}"), 400)


@pytest.mark.parametrize("q", ["", "a", "ab cd", "ab-", "é" * 3, "a" * 31])
async def test_a_username_prefix_is_two_to_thirty_username_characters(api, q):
    await problem(await api.get("/v1/search/users", params={"q": q}), 400)


async def test_a_missing_prefix_is_a_400(api):
    await problem(await api.get("/v1/search/users"), 400)


async def test_account_searches_without_a_token_are_limited_per_address(
    aiohttp_client, adapter_settings
):
    # Clients named by a trusted proxy, at an address of this test alone: the hits of a
    # test session's store are shared by its tests. The budget is the title search's.
    settings = dataclasses.replace(
        adapter_settings, searches_per_address=2, trusted_proxies="127.0.0.1"
    )
    api = Api(await aiohttp_client(create_app(settings)), settings)
    _, token = await api.user()
    one = {"X-Forwarded-For": f"2001:db8::{uuid.uuid4().hex[:4]}:1"}
    assert (await api.get("/v1/search/users?q=zz", headers=one)).status == 200
    assert (await api.get("/v1/search/photos?q=zz", headers=one)).status == 200
    body = await problem(await api.get("/v1/search/users?q=zz", headers=one), 429)
    assert "searches without a token" in body["detail"]
    assert (await api.get("/v1/search/users?q=zz", headers={**one, **token})).status == 200
