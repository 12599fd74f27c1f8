"""Blocking an account over HTTP: what a block ends, what it hides (each of the two from
the other, as for a missing account), the blocks list, and every rejection."""

from __future__ import annotations

import uuid

from instastore.server.keys import SERVICES

from .. import samples
from ..factories import problem


def _image(shade: int = 0) -> bytes:
    return samples.image(size=(32, 32), color=(shade, 40, 80))


async def _status(api, method: str, url: str, headers: dict, **kw) -> int:
    return (await api.request(method, url, headers=headers, **kw)).status


async def _names(api, url: str, headers: dict) -> list[str]:
    resp = await api.get(url, headers=headers)
    assert resp.status == 200, await resp.text()
    return [u["username"] for u in (await resp.json())["items"]]


async def _answer(api, method: str, url: str, headers: dict, **kw) -> tuple[int, str | None]:
    resp = await api.request(method, url, headers=headers, **kw)
    body = await resp.json() if resp.content_type.endswith("json") else {}
    return resp.status, body.get("detail")


async def test_a_block_ends_follows_both_ways_and_pending_requests(api):
    blocker, blocker_h = await api.user(private=True)
    blocked, blocked_h = await api.user(private=True)
    assert (await (await api.put(f"/v1/users/{blocked}/follow", headers=blocker_h)).json())[
        "state"
    ] == "requested"
    await api.put(f"/v1/users/{blocker}/follow", headers=blocked_h)
    assert (
        await _status(api, "POST", f"/v1/me/requests/{blocked}/approve", blocker_h, data=b"") == 200
    )
    assert await _names(api, f"/v1/users/{blocker}/followers", blocker_h) == [blocked]

    assert await _status(api, "PUT", f"/v1/users/{blocked}/block", blocker_h) == 204
    assert await _names(api, f"/v1/users/{blocker}/followers", blocker_h) == []
    assert await _names(api, "/v1/me/requests", blocked_h) == []  # the blocker's request went
    me = await (await api.get(f"/v1/users/{blocker}", headers=blocker_h)).json()
    assert me["counts"]["followers"] == 0 and me["counts"]["following"] == 0
    # The blocked cannot follow or ask again: the blocker is missing to them.
    gone = await problem(await api.put(f"/v1/users/{blocker}/follow", headers=blocked_h), 404)
    assert gone["detail"] == f"no user {blocker!r}"
    # The blocker must unblock first (it knows whom it blocks).
    body = await problem(await api.put(f"/v1/users/{blocked}/follow", headers=blocker_h), 409)
    assert "unblock" in body["detail"]
    assert await _names(api, "/v1/me/requests", blocker_h) == []


async def test_a_blocked_account_sees_the_blocker_as_missing_everywhere(api):
    """Every operation naming the blocker, or a photo of theirs, answers the blocked
    exactly as for an account or id that does not exist; the blocker's comments on a
    third account's photo and its name in lists and search are gone for them."""
    blocker, blocker_h = await api.user()
    blocked, blocked_h = await api.user()
    third, third_h = await api.user()
    photo = await api.photo(blocker_h, _image(1), "mine")
    theirs = await api.photo(third_h, _image(2), "a third's")
    await api.post(f"/v1/photos/{theirs['id']}/comments", json={"text": "hi"}, headers=blocker_h)
    await api.put(f"/v1/photos/{theirs['id']}/like", headers=blocker_h)
    await api.put(f"/v1/users/{third}/follow", headers=blocker_h)
    await api.put(f"/v1/users/{blocker}/follow", headers=blocked_h)
    assert await _status(api, "PUT", f"/v1/users/{blocked}/block", blocker_h) == 204

    missing_user = f"nobody{uuid.uuid4().hex[:8]}"
    missing_photo = str(api.client.app[SERVICES].uploads.ids.next_id())
    for method, template in [
        ("GET", "/v1/users/{u}"),
        ("GET", "/v1/users/{u}/photos"),
        ("GET", "/v1/users/{u}/followers"),
        ("GET", "/v1/users/{u}/following"),
        ("PUT", "/v1/users/{u}/follow"),
        ("DELETE", "/v1/users/{u}/follow"),
        ("DELETE", "/v1/me/followers/{u}"),
        ("DELETE", "/v1/me/requests/{u}"),
        ("PUT", "/v1/users/{u}/block"),
    ]:
        got = await _answer(api, method, template.format(u=blocker), blocked_h)
        absent = await _answer(api, method, template.format(u=missing_user), blocked_h)
        assert got == (404, absent[1].replace(missing_user, blocker)), (method, template)
    for method, template, kw in [
        ("GET", "/v1/photos/{p}", {}),
        ("GET", "/v1/photos/{p}/comments", {}),
        ("POST", "/v1/photos/{p}/comments", {"json": {"text": "hey"}}),
        ("PUT", "/v1/photos/{p}/like", {}),
        ("GET", "/v1/photos/{p}/likers", {}),
    ]:
        got = await _answer(api, method, template.format(p=photo["id"]), blocked_h, **kw)
        absent = await _answer(api, method, template.format(p=missing_photo), blocked_h, **kw)
        assert got == (404, absent[1].replace(missing_photo, photo["id"])), (method, template)

    # On the third account's photo: the blocker's comment, like and follow are not shown.
    comments = await (
        await api.get(f"/v1/photos/{theirs['id']}/comments", headers=blocked_h)
    ).json()
    assert comments["items"] == []
    assert await _names(api, f"/v1/photos/{theirs['id']}/likers", blocked_h) == []
    assert await _names(api, f"/v1/users/{third}/followers", blocked_h) == []
    assert await _names(api, f"/v1/search/users?q={blocker[:5]}", blocked_h) == []
    # Others still see all of it.
    assert await _names(api, f"/v1/photos/{theirs['id']}/likers", third_h) == [blocker]
    assert await _names(api, f"/v1/search/users?q={blocker[:5]}", third_h) == [blocker]
    # The blocked's timeline no longer holds the blocker's photo (the follow ended).
    timeline = await (await api.get("/v1/timeline", headers=blocked_h)).json()
    assert photo["id"] not in [p["id"] for p in timeline["items"]]
    # A block hides each from the other: the blocker no longer sees the blocked either.
    assert (await api.get(f"/v1/users/{blocked}", headers=blocker_h)).status == 404
    # Nobody signed in still sees the blocker's public photo.
    assert (await api.get(f"/v1/photos/{photo['id']}")).status == 200


async def test_the_blocks_list_is_paged_and_unblock_shows_the_account_again(api):
    _me, me_h = await api.user()
    others = [(await api.user())[0] for _ in range(3)]
    for name in others:
        assert await _status(api, "PUT", f"/v1/users/{name}/block", me_h) == 204
    assert await _status(api, "PUT", f"/v1/users/{others[0]}/block", me_h) == 204  # again
    first = await (await api.get("/v1/me/blocks?limit=2", headers=me_h)).json()
    rest = await (
        await api.get(f"/v1/me/blocks?limit=2&cursor={first['next_cursor']}", headers=me_h)
    ).json()
    assert sorted(u["username"] for u in first["items"] + rest["items"]) == sorted(others)
    assert rest["next_cursor"] is None

    assert await _status(api, "DELETE", f"/v1/users/{others[1]}/block", me_h) == 204
    assert await _status(api, "DELETE", f"/v1/users/{others[1]}/block", me_h) == 204  # idempotent
    assert others[1] not in await _names(api, "/v1/me/blocks", me_h)
    assert (await api.get(f"/v1/users/{others[1]}", headers=me_h)).status == 200
    assert await _status(api, "PUT", f"/v1/users/{others[1]}/follow", me_h) == 200


async def test_block_rejections(api):
    me, me_h = await api.user()
    other, other_h = await api.user()
    body = await problem(await api.put(f"/v1/users/{me}/block", headers=me_h), 400)
    assert "yourself" in body["detail"]
    await problem(await api.put("/v1/users/nobody_at_all_here/block", headers=me_h), 404)
    await problem(await api.delete("/v1/users/nobody_at_all_here/block", headers=me_h), 404)
    for method, url in [
        ("PUT", f"/v1/users/{other}/block"),
        ("DELETE", f"/v1/users/{other}/block"),
        ("GET", "/v1/me/blocks"),
    ]:
        await problem(await api.request(method, url), 401)
    await problem(
        await api.get("/v1/me/blocks?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", headers=me_h),
        400,
    )
    # One the viewer is blocked by is missing to them: neither blocked nor unblocked.
    assert await _status(api, "PUT", f"/v1/users/{me}/block", other_h) == 204
    blocked = await problem(await api.put(f"/v1/users/{other}/block", headers=me_h), 404)
    assert blocked["detail"] == f"no user {other!r}"
    await problem(await api.delete(f"/v1/users/{other}/block", headers=me_h), 404)
    # Nothing was stored by the refusals: the viewer blocks nobody.
    assert await _names(api, "/v1/me/blocks", me_h) == []


class _BlockedMidFollow:
    """The follow graph, with a block landing between a follow's checks and its write
    (another host's request, as it may)."""

    def __init__(self, graph, blocks) -> None:
        self.graph = graph
        self.blocks = blocks

    def __getattr__(self, name: str):
        return getattr(self.graph, name)

    async def follow(self, follower_id: int, followee_id: int, at) -> bool:
        await self.blocks.block(followee_id, follower_id, at)
        return await self.graph.follow(follower_id, followee_id, at)


async def test_a_follow_written_while_a_block_is_made_ends_itself(api):
    svc = api.client.app[SERVICES]
    blocker, _blocker_h = await api.user()
    _follower, follower_h = await api.user()
    graph = svc.social.graph
    svc.social.graph = _BlockedMidFollow(graph, svc.blocks.store)
    try:
        gone = await problem(await api.put(f"/v1/users/{blocker}/follow", headers=follower_h), 404)
    finally:
        svc.social.graph = graph
    assert gone["detail"] == f"no user {blocker!r}"
    owner = await svc.accounts.by_name(blocker)
    assert await graph.followers(owner.id, None, 10) == []
    assert await graph.count_follows(owner.id) == (0, 0)


async def test_a_block_hides_mentions_and_activity_across_it(api):
    """A blocked account's @name of the blocker links nothing for it, and the blocker's
    activity inbox shows nothing the blocked did (its follow before the block, its
    mention after)."""
    blocker, blocker_h = await api.user()
    blocked, blocked_h = await api.user()
    third, third_h = await api.user()
    photo = await api.photo(third_h, _image(3), "meeting place")
    assert (await api.put(f"/v1/users/{blocker}/follow", headers=blocked_h)).status == 200
    assert await _status(api, "PUT", f"/v1/users/{blocked}/block", blocker_h) == 204

    resp = await api.post(
        f"/v1/photos/{photo['id']}/comments",
        json={"text": f"hey @{blocker} and @{third}"},
        headers=blocked_h,
    )
    assert resp.status == 201, await resp.text()
    assert [m["username"] for m in (await resp.json())["mentions"]] == [third]
    # The third account, who sees both, sees both named.
    listed = await (await api.get(f"/v1/photos/{photo['id']}/comments", headers=third_h)).json()
    assert sorted(m["username"] for m in listed["items"][0]["mentions"]) == sorted([blocker, third])
    mine = await (await api.get(f"/v1/photos/{photo['id']}/comments", headers=blocked_h)).json()
    assert [m["username"] for m in mine["items"][0]["mentions"]] == [third]
    inbox = await (await api.get("/v1/activity", headers=blocker_h)).json()
    assert [e for e in inbox["items"] if e["actor"]["username"] == blocked] == []


async def _json(api, url: str, headers: dict | None = None) -> dict:
    resp = await api.get(url, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _seen(api, photo_id: str, user: str, headers: dict | None) -> dict:
    """What one viewer is told of a photo and of an account: each count beside the
    length of the list it counts."""
    card = await _json(api, f"/v1/photos/{photo_id}", headers)
    profile = await _json(api, f"/v1/users/{user}", headers)
    grid = await _json(api, f"/v1/users/{user}/photos", headers)
    (in_grid,) = [p for p in grid["items"] if p["id"] == photo_id]
    lists = {
        "likers": f"/v1/photos/{photo_id}/likers",
        "comments": f"/v1/photos/{photo_id}/comments",
        "followers": f"/v1/users/{user}/followers",
        "following": f"/v1/users/{user}/following",
    }
    lengths = {k: len((await _json(api, url, headers))["items"]) for k, url in lists.items()}
    counts = {
        "likers": card["likes"],
        "comments": card["comments"],
        "followers": profile["counts"]["followers"],
        "following": profile["counts"]["following"],
    }
    assert (in_grid["likes"], in_grid["comments"]) == (card["likes"], card["comments"])
    return {"counts": counts, "lists": lengths}


async def test_counts_leave_out_what_an_account_hidden_by_a_block_did(api):
    """A third account's counts, and the blocker's own photo's, as each side of a block
    sees them: every count is the length of the list it counts, so the blocked learn
    nothing a stranger could not (a stranger's counts and lists both hold everyone)."""
    blocker, blocker_h = await api.user()
    blocked, blocked_h = await api.user()
    third, third_h = await api.user()
    _, fan_h = await api.user()
    theirs = await api.photo(third_h, _image(3), "a third's")
    mine = await api.photo(blocker_h, _image(4), "the blocker's")
    for who_h in (blocker_h, blocked_h, fan_h):
        url = f"/v1/photos/{theirs['id']}"
        assert (await api.put(f"{url}/like", headers=who_h)).status == 200
        await api.post(f"{url}/comments", json={"text": "hi"}, headers=who_h)
        await api.put(f"/v1/users/{third}/follow", headers=who_h)
    await api.put(f"/v1/users/{blocker}/follow", headers=third_h)
    # The blocked liked and commented on the blocker's photo before the block.
    assert (await api.put(f"/v1/photos/{mine['id']}/like", headers=blocked_h)).status == 200
    await api.post(f"/v1/photos/{mine['id']}/comments", json={"text": "yo"}, headers=blocked_h)
    assert await _status(api, "PUT", f"/v1/users/{blocked}/block", blocker_h) == 204

    everyone = {"likers": 3, "comments": 3, "followers": 3, "following": 1}
    stranger = await _seen(api, theirs["id"], third, None)
    assert stranger == {"counts": everyone, "lists": everyone}
    assert await _seen(api, theirs["id"], third, fan_h) == stranger
    # Each side of the block: the other's like, comment and follow are in no count (nor
    # the third's follow of the blocker, to the blocked).
    for side_h, follows in ((blocked_h, 0), (blocker_h, 1)):
        seen = await _seen(api, theirs["id"], third, side_h)
        less = {"likers": 2, "comments": 2, "followers": 2, "following": follows}
        assert seen == {"counts": less, "lists": less}
    # A like given now answers the count the liker sees.
    resp = await api.delete(f"/v1/photos/{theirs['id']}/like", headers=fan_h)
    assert (await resp.json())["likes"] == 2
    resp = await api.put(f"/v1/photos/{theirs['id']}/like", headers=fan_h)
    assert (await resp.json())["likes"] == 3
    resp = await api.delete(f"/v1/photos/{theirs['id']}/like", headers=blocked_h)
    assert (await resp.json())["likes"] == 1  # the fan's; the blocker's is not counted
    # The blocker's own photo: the blocked's like and comment are gone from its counts.
    own = await _json(api, f"/v1/photos/{mine['id']}", blocker_h)
    assert (own["likes"], own["comments"]) == (0, 0)
    public = await _json(api, f"/v1/photos/{mine['id']}")
    assert (public["likes"], public["comments"]) == (1, 1)
    # Unblocked, each counts the other again.
    assert await _status(api, "DELETE", f"/v1/users/{blocked}/block", blocker_h) == 204
    own = await _json(api, f"/v1/photos/{mine['id']}", blocker_h)
    assert (own["likes"], own["comments"]) == (1, 1)


async def _pages(api, url: str, headers: dict, limit: int) -> list[list[str]]:
    """Every page of a list, following its cursors: the ids of each page's items."""
    pages, cursor = [], None
    while True:
        query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = await _json(api, f"{url}?{query}", headers)
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if not cursor:
            return pages


async def test_pages_read_past_what_a_block_hides(api):
    """Lists a block thins are still full pages: the size of a page, and a page that
    ends the list, tell the blocked nothing of the accounts left out."""
    viewer, viewer_h = await api.user()
    third, third_h = await api.user()
    photo = await api.photo(third_h, _image(5), "popular")
    url = f"/v1/photos/{photo['id']}"
    shown = []
    for i in range(9):  # ids in creation order: hidden ones among and after the shown
        _, who_h = await api.user()
        assert (await api.put(f"{url}/like", headers=who_h)).status == 200
        await api.post(f"{url}/comments", json={"text": f"c{i}"}, headers=who_h)
        await api.put(f"/v1/users/{third}/follow", headers=who_h)
        me = await _json(api, "/v1/me", who_h)
        if i % 3 == 0:
            shown.append(me["id"])
        else:
            assert await _status(api, "PUT", f"/v1/users/{viewer}/block", who_h) == 204
    for list_url in (f"{url}/likers", f"/v1/users/{third}/followers"):
        pages = await _pages(api, list_url, viewer_h, 1)
        assert pages == [[i] for i in shown], list_url
        assert len(await _pages(api, list_url, third_h, 4)) == 3  # 9 for those who see all
    comments = await _pages(api, f"{url}/comments", viewer_h, 1)
    assert len(comments) == 3 and all(len(p) == 1 for p in comments)
