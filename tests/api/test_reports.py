"""Reports and takedowns over HTTP: reporting a photo, a comment or an account and
every rejection; a hidden item answering 404 to everyone but its owner; a takedown's
blocklist refusing the same bytes at upload with 451."""

from __future__ import annotations

import dataclasses

import pytest
from instastore.server.app import create_app
from instastore.server.keys import SERVICES

from instastore import ids
from instastore.moderation import MAX_NOTE_CHARS, Moderation

from .. import samples
from ..factories import Api, problem, store_calls

MISSING = ids.IdGenerator(worker_id=99).next_id()


def _image(shade: int) -> bytes:
    return samples.image(size=(32, 32), color=(shade, 90, 30))


def _moderation(api) -> Moderation:
    """The serving process's own (its takedowns drop its cache of hidden items)."""
    return api.client.app[SERVICES].moderation


async def _reports_of(api, item_id: int) -> list:
    return [r for r in await _moderation(api).open_reports(None, 10_000) if r.item_id == item_id]


async def _comment(api, headers, photo_id) -> dict:
    resp = await api.post(f"/v1/photos/{photo_id}/comments", json={"text": "meh"}, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_a_photo_a_comment_and_an_account_are_reported(api):
    owner, owner_h = await api.user()
    _, reporter_h = await api.user()
    photo = await api.photo(owner_h, _image(1), "look")
    comment = await _comment(api, owner_h, photo["id"])
    urls = {
        "photo": (f"/v1/photos/{photo['id']}/report", photo["id"]),
        "comment": (f"/v1/photos/{photo['id']}/comments/{comment['id']}/report", comment["id"]),
        "account": (f"/v1/users/{owner}/report", photo["owner"]["id"]),
    }
    for kind, (url, item_id) in urls.items():
        resp = await api.post(url, json={"reason": "spam", "text": "  ads  "}, headers=reporter_h)
        assert resp.status == 204, await resp.text()
        (report,) = await _reports_of(api, int(item_id))
        assert (report.kind, report.reason, report.note) == (kind, "spam", "ads")
    # Again, with another reason and no text: one report per reporter, replaced.
    url, item_id = urls["photo"]
    assert (await api.post(url, json={"reason": "nudity"}, headers=reporter_h)).status == 204
    (report,) = await _reports_of(api, int(item_id))
    assert (report.reason, report.note) == ("nudity", "")


@pytest.mark.parametrize(
    "body, words",
    [
        ({}, "reason must be one of"),
        ({"reason": "boring"}, "reason must be one of"),
        ({"reason": 3}, "reason must be one of"),
        ({"reason": "spam", "text": 5}, "text must be"),
        ({"reason": "spam", "text": "x" * (MAX_NOTE_CHARS + 1)}, "the limit is"),
        ({"reason": "spam", "text": "a\u202eb"}, "RIGHT-TO-LEFT OVERRIDE"),
        ({"reason": "spam", "text": "a\x00b"}, "text contains U+0000"),
        ({"reason": "spam", "why": "x"}, "unknown fields"),
    ],
)
async def test_a_bad_report_is_a_400_and_stores_nothing(api, body, words):
    owner, owner_h = await api.user()
    _, reporter_h = await api.user()
    photo = await api.photo(owner_h, _image(2), "fine")
    comment = await _comment(api, owner_h, photo["id"])
    for url, item_id in [
        (f"/v1/photos/{photo['id']}/report", photo["id"]),
        (f"/v1/photos/{photo['id']}/comments/{comment['id']}/report", comment["id"]),
        (f"/v1/users/{owner}/report", photo["owner"]["id"]),
    ]:
        found = await problem(await api.post(url, json=body, headers=reporter_h), 400)
        assert words in found["detail"], found
        assert await _reports_of(api, int(item_id)) == []


async def test_report_rejections(api):
    owner, owner_h = await api.user()
    _private, private_h = await api.user(private=True)
    _, reporter_h = await api.user()
    photo = await api.photo(owner_h, _image(3), "mine")
    comment = await _comment(api, owner_h, photo["id"])
    hidden = await api.photo(private_h, _image(4), "a private account's")
    good = {"reason": "spam"}
    # One's own photo, comment and account: 403.
    for url in (
        f"/v1/photos/{photo['id']}/report",
        f"/v1/photos/{photo['id']}/comments/{comment['id']}/report",
        f"/v1/users/{owner}/report",
    ):
        body = await problem(await api.post(url, json=good, headers=owner_h), 403)
        assert "you may not report your" in body["detail"]
        await problem(await api.post(url, json=good), 401)
    # Missing things, and things hidden from the reporter, are 404 alike.
    missing = await problem(
        await api.post(f"/v1/photos/{MISSING}/report", json=good, headers=reporter_h), 404
    )
    invisible = await problem(
        await api.post(f"/v1/photos/{hidden['id']}/report", json=good, headers=reporter_h), 404
    )
    assert invisible["detail"] == missing["detail"].replace(str(MISSING), hidden["id"])
    await problem(
        await api.post(
            f"/v1/photos/{photo['id']}/comments/{MISSING}/report", json=good, headers=reporter_h
        ),
        404,
    )
    unknown = await problem(
        await api.post("/v1/users/nobody_here_at_all/report", json=good, headers=reporter_h), 404
    )
    assert unknown["detail"] == "no user 'nobody_here_at_all'"
    # One who blocks the reporter is missing to them.
    _, blocker_h = await api.user()
    blocker = (await (await api.get("/v1/me", headers=blocker_h)).json())["username"]
    reporter = (await (await api.get("/v1/me", headers=reporter_h)).json())["username"]
    assert (await api.put(f"/v1/users/{reporter}/block", headers=blocker_h)).status == 204
    blocked = await problem(
        await api.post(f"/v1/users/{blocker}/report", json=good, headers=reporter_h), 404
    )
    assert blocked["detail"] == f"no user {blocker!r}"
    for item_id in (photo["id"], comment["id"], hidden["id"], photo["owner"]["id"]):
        assert await _reports_of(api, int(item_id)) == []


async def test_a_hidden_photo_answers_404_to_all_but_its_owner_until_restored(api):
    owner, owner_h = await api.user()
    _, viewer_h = await api.user()
    photo = await api.photo(owner_h, _image(5), "takedown candidate")
    assert (
        await api.post(
            f"/v1/photos/{photo['id']}/report", json={"reason": "hate"}, headers=viewer_h
        )
    ).status == 204
    await _moderation(api).hide("photo", int(photo["id"]))
    assert await _reports_of(api, int(photo["id"])) == []  # closed by the takedown

    url = f"/v1/photos/{photo['id']}"
    for headers in ({}, viewer_h):
        gone = await problem(await api.get(url, headers=headers), 404)
        absent = await problem(await api.get(f"/v1/photos/{MISSING}", headers=headers), 404)
        assert gone["detail"] == absent["detail"].replace(str(MISSING), photo["id"])
        await problem(await api.get(f"{url}/comments", headers=headers), 404)
        listed = await (await api.get(f"/v1/users/{owner}/photos", headers=headers)).json()
        assert listed["items"] == []
        await problem(await api.get(photo["media"]["large"], headers=headers), 404)
    assert (await api.get(url, headers=owner_h)).status == 200

    await _moderation(api).restore("photo", int(photo["id"]))
    assert (await api.get(url, headers=viewer_h)).status == 200
    assert (await api.get(url)).status == 200


async def test_a_hidden_comment_and_a_hidden_account(api):
    owner, owner_h = await api.user()
    _author, author_h = await api.user()
    _, viewer_h = await api.user()
    photo = await api.photo(owner_h, _image(6), "talk")
    comment = await _comment(api, author_h, photo["id"])
    await _moderation(api).hide("comment", int(comment["id"]))
    url = f"/v1/photos/{photo['id']}/comments"
    for headers in ({}, viewer_h, owner_h):
        assert (await (await api.get(url, headers=headers)).json())["items"] == []
    assert [c["id"] for c in (await (await api.get(url, headers=author_h)).json())["items"]] == [
        comment["id"]
    ]

    await _moderation(api).hide("account", int(photo["owner"]["id"]))
    for headers in ({}, viewer_h, author_h):
        gone = await problem(await api.get(f"/v1/users/{owner}", headers=headers), 404)
        assert gone["detail"] == f"no user {owner!r}"
        await problem(await api.get(f"/v1/photos/{photo['id']}", headers=headers), 404)
    assert (await api.get(f"/v1/users/{owner}", headers=owner_h)).status == 200
    assert (await api.get(f"/v1/photos/{photo['id']}", headers=owner_h)).status == 200
    await _moderation(api).restore("account", int(photo["owner"]["id"]))
    assert (await api.get(f"/v1/users/{owner}", headers=viewer_h)).status == 200


async def test_a_blocklisted_original_is_refused_at_upload_with_451(api):
    _, owner_h = await api.user()
    _, other_h = await api.user()
    data = _image(7)
    photo = await api.photo(owner_h, data, "taken down")
    digest = await _moderation(api).hide("photo", int(photo["id"]), blocklist=True)
    assert digest is not None and len(digest) == 64
    for headers in (owner_h, other_h):
        body = await problem(await api.upload(headers, data, "again"), 451)
        assert "taken down" in body["detail"]
    assert (await api.upload(other_h, _image(8), "other bytes")).status == 201


async def test_moderation_refuses_what_it_cannot_do(api):
    from instastore.errors import InvalidInput, NotFound

    moderation = _moderation(api)
    with pytest.raises(InvalidInput, match="--blocklist takes a photo"):
        await moderation.hide("account", MISSING, blocklist=True)
    with pytest.raises(InvalidInput, match="kind must be"):
        await moderation.hide("album", MISSING)
    with pytest.raises(NotFound):
        await moderation.hide("photo", MISSING)
    with pytest.raises(NotFound):
        await moderation.restore("account", MISSING)


async def test_media_requests_read_no_takedown_row_each(api):
    """The hidden rule is asked on every media request: the process keeps the answer for
    a few seconds rather than read it from the store each time."""
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, _image(9), "served often")
    url = photo["media"]["thumb"]
    assert (await api.get(url)).status == 200
    before = store_calls()
    for _ in range(3):
        assert (await api.get(url)).status == 200
    after = store_calls()
    assert [k for k in after if k[1] == "hidden_among" and after[k] != before.get(k, 0)] == []
    # A takedown through this process shows at once all the same.
    await _moderation(api).hide("photo", int(photo["id"]))
    await problem(await api.get(url), 404)


async def test_reports_per_minute_are_limited_whatever_is_reported(
    aiohttp_client, adapter_settings
):
    settings = dataclasses.replace(adapter_settings, reports_per_minute=2, uploads_per_minute=100)
    api = Api(await aiohttp_client(create_app(settings)), settings)
    owner, owner_h = await api.user()
    _, reporter_h = await api.user()
    _, other_h = await api.user()
    photo = await api.photo(owner_h, _image(9), "reported")
    comment = await _comment(api, owner_h, photo["id"])
    good = {"reason": "spam"}
    photo_url = f"/v1/photos/{photo['id']}/report"
    # Refusals spend nothing: a bad reason, a missing photo, one's own photo.
    await problem(await api.post(photo_url, json={"reason": "x"}, headers=reporter_h), 400)
    await problem(
        await api.post(f"/v1/photos/{MISSING}/report", json=good, headers=reporter_h), 404
    )
    await problem(await api.post(photo_url, json=good, headers=owner_h), 403)
    assert (await api.post(photo_url, json=good, headers=reporter_h)).status == 204
    comment_url = f"/v1/photos/{photo['id']}/comments/{comment['id']}/report"
    assert (await api.post(comment_url, json=good, headers=reporter_h)).status == 204
    # The third in the minute, of any kind, is a 429 with Retry-After; nothing is filed.
    resp = await api.post(f"/v1/users/{owner}/report", json=good, headers=reporter_h)
    body = await problem(resp, 429)
    assert "too many reports" in body["detail"]
    assert 1 <= int(resp.headers["Retry-After"]) <= 121
    assert await _reports_of(api, int(photo["owner"]["id"])) == []
    # The limit is the reporter's own: another user still reports.
    assert (await api.post(f"/v1/users/{owner}/report", json=good, headers=other_h)).status == 204
    assert len(await _reports_of(api, int(photo["owner"]["id"]))) == 1
