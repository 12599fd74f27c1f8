"""Follows, private accounts and requests, visibility, the timeline and search over HTTP."""

from __future__ import annotations

import dataclasses
import uuid

from instastore.server.app import create_app
from instastore.server.keys import SERVICES

from .. import samples
from ..factories import Api, problem


async def ids_of(resp) -> list[str]:
    assert resp.status == 200, await resp.text()
    return [p["id"] for p in (await resp.json())["items"]]


async def test_follow_unfollow_and_lists(api):
    star, star_h = await api.user()
    fans = [await api.user() for _ in range(3)]
    for _, headers in fans:
        resp = await api.put(f"/v1/users/{star}/follow", headers=headers)
        assert await resp.json() == {"state": "following"}
    page1 = await (await api.get(f"/v1/users/{star}/followers?limit=2")).json()
    page2 = await (
        await api.get(f"/v1/users/{star}/followers?limit=2&cursor={page1['next_cursor']}")
    ).json()
    assert sorted(u["username"] for u in page1["items"] + page2["items"]) == sorted(
        n for n, _ in fans
    )
    assert page2["next_cursor"] is None
    following = await (await api.get(f"/v1/users/{fans[0][0]}/following")).json()
    assert [u["username"] for u in following["items"]] == [star]
    assert (await api.delete(f"/v1/users/{star}/follow", headers=fans[0][1])).status == 204
    profile = await (await api.get(f"/v1/users/{star}")).json()
    assert profile["counts"]["followers"] == 2
    await problem(await api.put(f"/v1/users/{star}/follow", headers=star_h), 400)  # yourself
    await problem(await api.put("/v1/users/nobody-at-all/follow", headers=star_h), 404)
    await problem(await api.put(f"/v1/users/{star}/follow"), 401)


async def test_private_account_request_flow_and_visibility(api):
    owner, owner_h = await api.user(private=True)
    fan, fan_h = await api.user()
    photo = await api.photo(owner_h, samples.image(), "private life")

    await problem(await api.get(f"/v1/photos/{photo['id']}"), 404)  # not signed in
    await problem(await api.get(f"/v1/photos/{photo['id']}", headers=fan_h), 404)
    assert await ids_of(await api.get(f"/v1/users/{owner}/photos", headers=fan_h)) == []

    resp = await api.put(f"/v1/users/{owner}/follow", headers=fan_h)
    assert await resp.json() == {"state": "requested"}
    assert await ids_of(await api.get(f"/v1/users/{owner}/photos", headers=fan_h)) == []
    requests = await (await api.get("/v1/me/requests", headers=owner_h)).json()
    assert [u["username"] for u in requests["items"]] == [fan]
    await problem(
        await api.post(f"/v1/me/requests/{owner}/approve", headers=fan_h), 404
    )  # nothing to approve
    assert (await api.post(f"/v1/me/requests/{fan}/approve", headers=owner_h)).status == 200
    assert (await (await api.get("/v1/me/requests", headers=owner_h)).json())["items"] == []

    assert (await api.get(f"/v1/photos/{photo['id']}", headers=fan_h)).status == 200
    assert await ids_of(await api.get(f"/v1/users/{owner}/photos", headers=fan_h)) == [photo["id"]]
    await problem(await api.get(f"/v1/photos/{photo['id']}"), 404)  # still not for everyone


async def test_photo_visibility_levels(api):
    owner, owner_h = await api.user()
    _follower, follower_h = await api.user()
    _, stranger_h = await api.user()
    await api.put(f"/v1/users/{owner}/follow", headers=follower_h)
    public = await api.photo(owner_h, samples.image(), "for all", visibility="public")
    followers = await api.photo(owner_h, samples.image(), "for friends", visibility="followers")
    private = await api.photo(owner_h, samples.image(), "for me", visibility="private")
    seen = {
        "owner": await ids_of(await api.get(f"/v1/users/{owner}/photos", headers=owner_h)),
        "follower": await ids_of(await api.get(f"/v1/users/{owner}/photos", headers=follower_h)),
        "stranger": await ids_of(await api.get(f"/v1/users/{owner}/photos", headers=stranger_h)),
        "anonymous": await ids_of(await api.get(f"/v1/users/{owner}/photos")),
    }
    assert seen["owner"] == [private["id"], followers["id"], public["id"]]
    assert seen["follower"] == [followers["id"], public["id"]]
    assert seen["stranger"] == seen["anonymous"] == [public["id"]]
    await problem(await api.get(f"/v1/photos/{private['id']}", headers=follower_h), 404)
    await problem(await api.put(f"/v1/photos/{followers['id']}/like", headers=stranger_h), 404)


async def test_timeline_recent_and_top(api):
    _me, me_h = await api.user()
    a, a_h = await api.user()
    b, b_h = await api.user()
    _, stranger_h = await api.user()
    for name in (a, b):
        await api.put(f"/v1/users/{name}/follow", headers=me_h)
    made = []
    for i in range(3):
        made.append((await api.photo(a_h, samples.image(size=(64, 64)), f"a{i}"))["id"])
        made.append((await api.photo(b_h, samples.image(size=(64, 64)), f"b{i}"))["id"])
    await api.photo(stranger_h, samples.image(size=(64, 64)), "not followed")
    hidden = await api.photo(
        a_h, samples.image(size=(64, 64)), "a private one", visibility="private"
    )
    deleted = await api.photo(b_h, samples.image(size=(64, 64)), "deleted")
    await api.delete(f"/v1/photos/{deleted['id']}", headers=b_h)

    first = await (await api.get("/v1/timeline?order=recent&limit=4", headers=me_h)).json()
    rest = await (
        await api.get(
            f"/v1/timeline?order=recent&limit=4&cursor={first['next_cursor']}", headers=me_h
        )
    ).json()
    recent = [p["id"] for p in first["items"] + rest["items"]]
    assert recent == made[::-1]
    assert hidden["id"] not in recent and deleted["id"] not in recent
    assert rest["next_cursor"] is None

    # A new photo arriving between pages does not shift the next page.
    page1 = await (await api.get("/v1/timeline?order=recent&limit=3", headers=me_h)).json()
    await api.photo(a_h, samples.image(size=(64, 64)), "late arrival")
    page2 = await (
        await api.get(
            f"/v1/timeline?order=recent&limit=3&cursor={page1['next_cursor']}", headers=me_h
        )
    ).json()
    assert [p["id"] for p in page1["items"] + page2["items"]] == made[::-1]

    # "top": likes lift an older photo above newer ones.
    for _, fan_h in [await api.user() for _ in range(3)]:
        await api.put(f"/v1/photos/{made[0]}/like", headers=fan_h)
    top = await (await api.get("/v1/timeline?limit=3", headers=me_h)).json()
    assert top["items"][0]["id"] == made[0] and top["items"][0]["likes"] == 3
    top2 = await (
        await api.get(f"/v1/timeline?limit=10&cursor={top['next_cursor']}", headers=me_h)
    ).json()
    everything = [p["id"] for p in top["items"] + top2["items"]]
    assert len(everything) == len(set(everything)) == 7  # 6 + the late arrival, each once

    await problem(await api.get("/v1/timeline"), 401)
    await problem(await api.get("/v1/timeline?order=best", headers=me_h), 400)
    await problem(await api.get("/v1/timeline?order=top&cursor=nonsense", headers=me_h), 400)
    await problem(
        await api.get(f"/v1/timeline?order=top&cursor={first['next_cursor']}", headers=me_h), 400
    )


async def test_following_past_max_following_is_a_409_naming_the_cap(
    aiohttp_client, adapter_settings
):
    settings = dataclasses.replace(adapter_settings, max_following=3, uploads_per_minute=1000)
    api = Api(await aiohttp_client(create_app(settings)), settings)
    me, me_h = await api.user()
    others = [(await api.user())[0] for _ in range(4)]
    locked, locked_h = await api.user(private=True)
    resp = await api.put(f"/v1/users/{locked}/follow", headers=me_h)
    assert await resp.json() == {"state": "requested"}
    for name in others[:3]:
        assert (await api.put(f"/v1/users/{name}/follow", headers=me_h)).status == 200
    refused = await problem(await api.put(f"/v1/users/{others[3]}/follow", headers=me_h), 409)
    assert refused["type"].endswith("/limit-reached")
    assert "3 (max_following)" in refused["detail"]
    # Approving the request would put the requester past the cap: refused, request kept.
    approve = f"/v1/me/requests/{me}/approve"
    refused = await problem(await api.post(approve, headers=locked_h), 409)
    assert "3 (max_following)" in refused["detail"] and me in refused["detail"]
    requests = await (await api.get("/v1/me/requests", headers=locked_h)).json()
    assert [u["username"] for u in requests["items"]] == [me]
    # Unfollowing makes room: follow again, then the approval.
    assert (await api.delete(f"/v1/users/{others[0]}/follow", headers=me_h)).status == 204
    assert (await api.put(f"/v1/users/{others[3]}/follow", headers=me_h)).status == 200
    await problem(await api.put(f"/v1/users/{others[0]}/follow", headers=me_h), 409)
    assert (await api.delete(f"/v1/users/{others[3]}/follow", headers=me_h)).status == 204
    assert (await api.put(f"/v1/users/{others[0]}/follow", headers=me_h)).status == 200
    assert (await api.delete(f"/v1/users/{others[1]}/follow", headers=me_h)).status == 204
    assert (await api.post(approve, headers=locked_h)).status == 200
    following = await (await api.get(f"/v1/users/{me}/following", headers=me_h)).json()
    assert sorted(u["username"] for u in following["items"]) == sorted(
        [locked, others[0], others[2]]
    )


async def test_top_goes_on_newest_first_past_its_ranked_window(api):
    """With a ranked window of 5 candidates, "top" shows the visible ones among them (likes
    first), then every older photo newest first, each once; private and deleted photos
    never; then no cursor."""
    api.client.app[SERVICES].timeline.top_window = 5
    _me, me_h = await api.user()
    a, a_h = await api.user()
    b, b_h = await api.user()
    for name in (a, b):
        await api.put(f"/v1/users/{name}/follow", headers=me_h)
    made, hidden = [], []
    for i in range(4):
        for owner_h in (a_h, b_h):
            made.append((await api.photo(owner_h, samples.image(size=(32, 32)), f"p{i}"))["id"])
        private = await api.photo(a_h, samples.image(size=(32, 32)), "mine", visibility="private")
        deleted = await api.photo(b_h, samples.image(size=(32, 32)), "gone")
        await api.delete(f"/v1/photos/{deleted['id']}", headers=b_h)
        hidden += [private["id"], deleted["id"]]
    newest_first = made[::-1]
    _, fan_h = await api.user()
    await api.put(f"/v1/photos/{made[-2]}/like", headers=fan_h)  # 2nd newest goes first
    shown, cursor, half = [], None, None
    for _ in range(20):
        query = "/v1/timeline?limit=2" + (f"&cursor={cursor}" if cursor else "")
        resp = await api.get(query, headers=me_h)
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        shown += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if len(shown) == 4:
            half = cursor  # past the window (2 photos) and one page of the older ones
        if cursor is None:
            break
    assert cursor is None
    assert not set(shown) & set(hidden)
    assert sorted(shown) == sorted(made) and len(shown) == len(made)
    assert shown[0] == made[-2]
    # The window is the 5 newest candidates (hidden ones too): its visible ones first.
    window = [i for i in sorted(made + hidden, key=int, reverse=True)[:5] if i in made]
    assert window == [made[-1], made[-2]]
    assert sorted(shown[: len(window)]) == sorted(window)
    assert shown[len(window) :] == [i for i in newest_first if i not in window]
    # A cursor past the window is sealed for "top": "recent" refuses it, and back.
    page = await (await api.get(f"/v1/timeline?limit=1&cursor={half}", headers=me_h)).json()
    assert page["items"][0]["id"] == shown[4]
    await problem(await api.get(f"/v1/timeline?order=recent&cursor={half}", headers=me_h), 400)
    recent = await (await api.get("/v1/timeline?order=recent&limit=2", headers=me_h)).json()
    await problem(
        await api.get(f"/v1/timeline?order=top&cursor={recent['next_cursor']}", headers=me_h),
        400,
    )


async def test_search_every_word_case_and_accents(api):
    tag = uuid.uuid4().hex[:8]
    _, headers = await api.user()
    one = await api.photo(headers, samples.image(), f"Crème brûlée {tag}")
    two = await api.photo(headers, samples.image(), f"CREME caramel {tag}")
    gone = await api.photo(headers, samples.image(), f"creme deleted {tag}")
    mine = await api.photo(headers, samples.image(), f"creme secret {tag}", visibility="private")
    await api.delete(f"/v1/photos/{gone['id']}", headers=headers)
    assert await ids_of(await api.get(f"/v1/search/photos?q=creme+{tag}")) == [two["id"], one["id"]]
    assert await ids_of(await api.get(f"/v1/search/photos?q=creme+{tag}", headers=headers)) == [
        mine["id"],
        two["id"],
        one["id"],
    ]
    assert await ids_of(await api.get(f"/v1/search/photos?q=BRULEE+{tag}")) == [one["id"]]
    first = await (await api.get(f"/v1/search/photos?q={tag}&limit=1")).json()
    second = await (
        await api.get(f"/v1/search/photos?q={tag}&limit=1&cursor={first['next_cursor']}")
    ).json()
    assert [p["id"] for p in first["items"] + second["items"]] == [two["id"], one["id"]]
    await problem(await api.get("/v1/search/photos"), 400)
    await problem(await api.get("/v1/search/photos?q=%20%2C"), 400)
    await problem(await api.get("/v1/search/photos?q=" + "x" * 201), 400)
    # A q with no word the title index holds (a sign, or only words longer than a
    # term) finds nothing; no cursor was ever made for it, so any cursor is refused.
    for q in ("%E2%82%AC", "x" * 65):
        assert await ids_of(await api.get(f"/v1/search/photos?q={q}")) == []
        forged = first["next_cursor"]  # a real cursor, of another search
        await problem(await api.get(f"/v1/search/photos?q={q}&cursor={forged}"), 400)


async def test_searches_without_a_token_are_limited_per_address(aiohttp_client, adapter_settings):
    # Clients named by a trusted proxy, at addresses of this test alone: the hits of a
    # test session's store are shared by its tests.
    settings = dataclasses.replace(
        adapter_settings, searches_per_address=2, trusted_proxies="127.0.0.1"
    )
    api = Api(await aiohttp_client(create_app(settings)), settings)
    _, token = await api.user()
    block = uuid.uuid4().hex[:4]
    one, other = ({"X-Forwarded-For": f"2001:db8::{block}:{n}"} for n in (1, 2))
    query = f"/v1/search/photos?q=limited+{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        assert await ids_of(await api.get(query, headers=one)) == []
    refused = await api.get(query, headers=one)
    body = await problem(refused, 429)
    assert "searches without a token" in body["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    # A signed-in user is not counted; another address has its own budget.
    for _ in range(3):
        assert await ids_of(await api.get(query, headers={**one, **token})) == []
    assert await ids_of(await api.get(query, headers=other)) == []
    await problem(await api.get(query, headers=one), 429)
