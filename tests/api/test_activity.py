"""The activity inbox over HTTP: events from likes, comments, follows, requests,
approvals and mentions; newest first and paged; read at read time against what the
reader may see; the unread count and the read mark; every rejection."""

from __future__ import annotations

import pytest

from instastore import ids

from .. import samples
from ..factories import problem

MISSING = ids.IdGenerator(worker_id=99).next_id()


def _image() -> bytes:
    return samples.image(size=(32, 32))


async def _ok(resp, status: int = 200) -> dict:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _inbox(api, headers, query: str = "") -> list[dict]:
    return (await _ok(await api.get(f"/v1/activity{query}", headers=headers)))["items"]


async def _unread(api, headers) -> dict:
    return await _ok(await api.get("/v1/activity/unread", headers=headers))


async def _comment(api, headers, photo_id, text) -> dict:
    url = f"/v1/photos/{photo_id}/comments"
    return await _ok(await api.post(url, json={"text": text}, headers=headers), 201)


async def test_likes_comments_and_follows_reach_the_owner_newest_first(api):
    owner, owner_h = await api.user()
    fan, fan_h = await api.user()
    photo = await api.photo(owner_h, _image())
    await _ok(await api.put(f"/v1/users/{owner}/follow", headers=fan_h))
    await _ok(await api.put(f"/v1/photos/{photo['id']}/like", headers=fan_h))
    comment = await _comment(api, fan_h, photo["id"], "lovely")

    items = await _inbox(api, owner_h)
    assert [i["kind"] for i in items] == ["comment", "like", "follow"]
    assert all(i["actor"]["username"] == fan and i["unread"] for i in items)
    assert items[0]["photo"] == {"id": photo["id"], "title": photo["title"]}
    assert items[0]["comment_id"] == comment["id"] and "comment_id" not in items[1]
    assert "photo" not in items[2]
    assert items[0]["created_at"] >= items[1]["created_at"] >= items[2]["created_at"]
    assert await _unread(api, owner_h) == {"unread": 3, "more": False}
    assert await _inbox(api, fan_h) == []  # what one does oneself is no event of one's own


async def test_nobody_is_told_of_their_own_actions(api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, _image())
    await _ok(await api.put(f"/v1/photos/{photo['id']}/like", headers=owner_h))
    await _comment(api, owner_h, photo["id"], "mine")
    assert await _inbox(api, owner_h) == []


async def test_an_action_repeated_is_one_event(api):
    owner, owner_h = await api.user()
    _, fan_h = await api.user()
    photo = await api.photo(owner_h, _image())
    url = f"/v1/photos/{photo['id']}/like"
    for _ in range(2):  # a retry of an answered like
        await _ok(await api.put(url, headers=fan_h))
    await _ok(await api.delete(url, headers=fan_h))
    assert await _inbox(api, owner_h) == []  # an undone like is left out
    await _ok(await api.put(url, headers=fan_h))  # liked again: the same event, once
    for _ in range(2):
        await _ok(await api.put(f"/v1/users/{owner}/follow", headers=fan_h))
    kinds = [i["kind"] for i in await _inbox(api, owner_h)]
    assert sorted(kinds) == ["follow", "like"]


async def test_requests_and_approvals(api):
    owner, owner_h = await api.user(private=True)
    asker, asker_h = await api.user()
    resp = await api.put(f"/v1/users/{owner}/follow", headers=asker_h)
    assert (await _ok(resp))["state"] == "requested"
    (request,) = await _inbox(api, owner_h)
    assert request["kind"] == "request" and request["actor"]["username"] == asker
    await _ok(await api.post(f"/v1/me/requests/{asker}/approve", headers=owner_h))
    (approved,) = await _inbox(api, asker_h)
    assert approved["kind"] == "approved" and approved["actor"]["username"] == owner
    # The request is no longer pending: its event is left out; the follower is there.
    assert await _inbox(api, owner_h) == []


async def test_a_declined_request_and_an_ended_follow_are_left_out(api):
    owner, owner_h = await api.user(private=True)
    asker, asker_h = await api.user()
    await _ok(await api.put(f"/v1/users/{owner}/follow", headers=asker_h))
    resp = await api.delete(f"/v1/me/requests/{asker}", headers=owner_h)
    assert resp.status == 204
    assert await _inbox(api, owner_h) == []
    public, public_h = await api.user()
    await _ok(await api.put(f"/v1/users/{public}/follow", headers=asker_h))
    assert [i["kind"] for i in await _inbox(api, public_h)] == ["follow"]
    assert (await api.delete(f"/v1/users/{public}/follow", headers=asker_h)).status == 204
    assert await _inbox(api, public_h) == []
    assert await _unread(api, public_h) == {"unread": 0, "more": False}


async def test_events_about_deleted_or_hidden_things_are_left_out(api):
    _, owner_h = await api.user()
    _, fan_h = await api.user()
    photo = await api.photo(owner_h, _image())
    gone = await api.photo(owner_h, _image())
    comment = await _comment(api, fan_h, photo["id"], "hmm")
    await _comment(api, fan_h, gone["id"], "bye")
    assert len(await _inbox(api, owner_h)) == 2
    url = f"/v1/photos/{photo['id']}/comments/{comment['id']}"
    assert (await api.delete(url, headers=owner_h)).status == 204
    assert (await api.delete(f"/v1/photos/{gone['id']}", headers=owner_h)).status == 204
    assert await _inbox(api, owner_h) == []
    assert await _unread(api, owner_h) == {"unread": 0, "more": False}
    # Restored, its comment's event is back (nothing was removed).
    await _ok(await api.post(f"/v1/photos/{gone['id']}/restore", headers=owner_h))
    assert [i["photo"]["id"] for i in await _inbox(api, owner_h)] == [gone["id"]]


async def test_the_inbox_is_paged_newest_first(api):
    owner, owner_h = await api.user()
    fans = [await api.user() for _ in range(5)]
    for _, fan_h in fans:
        await _ok(await api.put(f"/v1/users/{owner}/follow", headers=fan_h))
    seen, query = [], "?limit=2"
    while True:
        body = await _ok(await api.get(f"/v1/activity{query}", headers=owner_h))
        seen += body["items"]
        if body["next_cursor"] is None:
            break
        query = f"?limit=2&cursor={body['next_cursor']}"
    assert [i["actor"]["username"] for i in seen] == [name for name, _ in reversed(fans)]
    assert len({i["id"] for i in seen}) == 5


async def test_marking_read(api):
    owner, owner_h = await api.user()
    fans = [await api.user() for _ in range(3)]
    for _, fan_h in fans:
        await _ok(await api.put(f"/v1/users/{owner}/follow", headers=fan_h))
    items = await _inbox(api, owner_h)
    oldest = items[-1]["id"]
    body = await _ok(await api.post("/v1/activity/read", json={"up_to": oldest}, headers=owner_h))
    assert body == {"read_up_to": oldest, "unread": 2, "more": False}
    assert [i["unread"] for i in await _inbox(api, owner_h)] == [True, True, False]
    # An older mark later changes nothing: the mark only rises.
    body = await _ok(await api.post("/v1/activity/read", json={}, headers=owner_h))
    assert body == {"read_up_to": items[0]["id"], "unread": 0, "more": False}
    body = await _ok(await api.post("/v1/activity/read", json={"up_to": oldest}, headers=owner_h))
    assert body["read_up_to"] == items[0]["id"] and body["unread"] == 0
    # A mark past the newest event stops at it: what comes later is unread.
    ahead = str(ids.IdGenerator(worker_id=98).next_id() + (1 << 40))
    await _ok(await api.post("/v1/activity/read", json={"up_to": ahead}, headers=owner_h))
    _, late_h = await api.user()
    await _ok(await api.put(f"/v1/users/{owner}/follow", headers=late_h))
    assert await _unread(api, owner_h) == {"unread": 1, "more": False}


async def test_an_empty_inbox(api):
    _, headers = await api.user()
    body = await _ok(await api.get("/v1/activity", headers=headers))
    assert body == {"items": [], "next_cursor": None}
    body = await _ok(await api.post("/v1/activity/read", json={}, headers=headers))
    assert body == {"read_up_to": None, "unread": 0, "more": False}


# ---- rejections ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/activity"), ("GET", "/v1/activity/unread"), ("POST", "/v1/activity/read")],
)
async def test_the_inbox_needs_a_token(api, method, path):
    await problem(await api.request(method, path, json={}), 401)


async def test_a_cursor_of_another_list_or_reader_is_refused(api):
    owner, owner_h = await api.user()
    other, other_h = await api.user()
    for _ in range(3):
        _, fan_h = await api.user()
        await _ok(await api.put(f"/v1/users/{owner}/follow", headers=fan_h))
    body = await _ok(await api.get("/v1/activity?limit=1", headers=owner_h))
    cursor = body["next_cursor"]
    await problem(await api.get(f"/v1/activity?cursor={cursor}", headers=other_h), 400)
    # A cursor of another list (the owner's followers) is not an inbox cursor either.
    followers = await _ok(await api.get(f"/v1/users/{owner}/followers?limit=1"))
    url = f"/v1/activity?cursor={followers['next_cursor']}"
    await problem(await api.get(url, headers=owner_h), 400)
    await problem(await api.get("/v1/activity?cursor=not-a-cursor!", headers=owner_h), 400)
    await problem(await api.get("/v1/activity?cursor=" + "A" * 40, headers=owner_h), 400)
    await problem(await api.get("/v1/activity?limit=0", headers=owner_h), 400)
    assert other  # the other reader's own inbox is untouched by the attempt
    assert await _inbox(api, other_h) == []


@pytest.mark.parametrize(
    "body",
    [
        {"up_to": 5},
        {"up_to": None},
        {"up_to": "0"},
        {"up_to": "007"},
        {"up_to": "-1"},
        {"up_to": "9223372036854775808"},
        {"up_to": "12a"},
        {"everything": True},
    ],
)
async def test_a_bad_read_mark_is_refused_and_changes_nothing(api, body):
    owner, owner_h = await api.user()
    _, fan_h = await api.user()
    await _ok(await api.put(f"/v1/users/{owner}/follow", headers=fan_h))
    await problem(await api.post("/v1/activity/read", json=body, headers=owner_h), 400)
    assert await _unread(api, owner_h) == {"unread": 1, "more": False}


async def test_a_read_mark_needs_a_json_object(api):
    _, headers = await api.user()
    resp = await api.post("/v1/activity/read", data=b"up_to=1", headers=headers)
    await problem(resp, 400)
    resp = await api.post("/v1/activity/read", json=["1"], headers=headers)
    await problem(resp, 400)


async def test_a_missing_photo_id_is_not_an_event(api):
    # Liking a missing photo is a 404 and leaves nothing in anyone's inbox.
    _, fan_h = await api.user()
    await problem(await api.put(f"/v1/photos/{MISSING}/like", headers=fan_h), 404)
    assert await _inbox(api, fan_h) == []


# ---- mentions ------------------------------------------------------------------------


async def test_a_comment_mentions_accounts_and_tells_them(api):
    owner, owner_h = await api.user()
    fan, fan_h = await api.user()
    ada, ada_h = await api.user()
    photo = await api.photo(owner_h, _image())
    text = f"look @{ada.upper()} and @{owner}, not @nobody_here or @{fan} (me) @{ada}"
    comment = await _comment(api, fan_h, photo["id"], text)
    ada_id = (await _ok(await api.get(f"/v1/users/{ada}")))["id"]
    assert [m["username"] for m in comment["mentions"]] == [ada, owner, fan]
    assert comment["mentions"][0] == {"id": ada_id, "username": ada}
    listed = (await _ok(await api.get(f"/v1/photos/{photo['id']}/comments")))["items"]
    assert listed[0]["mentions"] == comment["mentions"]

    (mention,) = await _inbox(api, ada_h)
    assert mention["kind"] == "mention" and mention["actor"]["username"] == fan
    assert mention["comment_id"] == comment["id"] and mention["photo"]["id"] == photo["id"]
    # The owner is told of the comment once, not of a mention besides; its author nothing.
    assert [i["kind"] for i in await _inbox(api, owner_h)] == ["comment"]
    assert await _inbox(api, fan_h) == []
    # The comment deleted, the mention is gone.
    url = f"/v1/photos/{photo['id']}/comments/{comment['id']}"
    assert (await api.delete(url, headers=fan_h)).status == 204
    assert await _inbox(api, ada_h) == []


async def test_a_title_mentions_accounts_and_tells_them(api):
    owner, owner_h = await api.user()
    ada, ada_h = await api.user()
    photo = await api.photo(owner_h, _image(), f"with @{ada} and @{owner}")
    assert [m["username"] for m in photo["mentions"]] == [ada, owner]
    got = await _ok(await api.get(f"/v1/photos/{photo['id']}"))
    assert got["mentions"] == photo["mentions"]
    (mention,) = await _inbox(api, ada_h)
    assert mention["kind"] == "mention" and mention["id"] == photo["id"]
    assert mention["photo"] == {"id": photo["id"], "title": photo["title"]}
    assert "comment_id" not in mention
    assert await _inbox(api, owner_h) == []  # mentioning oneself tells nobody


async def test_a_replayed_upload_writes_its_mentions_once(api):
    _, owner_h = await api.user()
    ada, ada_h = await api.user()
    headers = {**owner_h, "Idempotency-Key": "mention-once"}
    first = await api.photo(headers, _image(), f"hi @{ada}")
    again = await api.upload(headers, _image(), f"hi @{ada}")
    assert again.status == 200 and (await again.json())["mentions"] == first["mentions"]
    assert [i["id"] for i in await _inbox(api, ada_h)] == [first["id"]]


async def test_mentions_past_the_limit_tell_nobody(api):
    _, owner_h = await api.user()
    named = [await api.user() for _ in range(api.settings.max_mentions + 1)]
    title = " ".join(f"@{name}" for name, _ in named)
    photo = await api.photo(owner_h, _image(), title)
    assert len(photo["mentions"]) == api.settings.max_mentions
    assert len(await _inbox(api, named[0][1])) == 1
    assert await _inbox(api, named[-1][1]) == []


async def test_a_mention_in_what_the_named_may_not_see_tells_them_nothing(api):
    owner, owner_h = await api.user()
    ada, ada_h = await api.user()
    await api.photo(owner_h, _image(), f"secret @{ada}", visibility="followers")
    assert await _inbox(api, ada_h) == []
    assert await _unread(api, ada_h) == {"unread": 0, "more": False}
    # Following later shows nothing written before: there was nothing to tell then.
    await _ok(await api.put(f"/v1/users/{owner}/follow", headers=ada_h))
    assert await _inbox(api, ada_h) == []
