"""Hashtags and title edits over HTTP: a tag's page, tags by prefix, PATCH of a photo's
title, and every rejection of each (a problem document with its status, nothing
stored changed)."""

from __future__ import annotations

import uuid

import pytest

from instastore import ids

from .. import samples
from ..factories import problem

MISSING = ids.IdGenerator(worker_id=99).next_id()


def _tag() -> str:
    return f"t{uuid.uuid4().hex[:10]}"  # a tag no other test uses


async def _ids(api, url, headers=None, **params) -> list[str]:
    resp = await api.get(url, params=params, headers=headers or {})
    assert resp.status == 200, await resp.text()
    return [p["id"] for p in (await resp.json())["items"]]


async def _title(api, photo_id: str, headers: dict) -> str:
    resp = await api.get(f"/v1/photos/{photo_id}", headers=headers)
    return (await resp.json())["title"]


async def test_an_upload_is_filed_under_its_tags_and_an_edit_moves_it(api):
    old, new = _tag(), _tag()
    named, _ = await api.user()
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(size=(32, 32)), f"Beach #{old.upper()} day")
    assert await _ids(api, f"/v1/tags/{old}/photos") == [photo["id"]]
    assert await _ids(api, f"/v1/tags/%23{old}/photos") == [photo["id"]]  # with its '#'
    resp = await api.get("/v1/tags", params={"prefix": old[:6]})
    assert old in (await resp.json())["tags"]

    resp = await api.patch(
        f"/v1/photos/{photo['id']}",
        json={"title": f"Dunes #{new} with @{named}"},
        headers=owner_h,
    )
    assert resp.status == 200, await resp.text()
    edited = await resp.json()
    assert edited["title"] == f"Dunes #{new} with @{named}"
    assert [m["username"] for m in edited["mentions"]] == [named]
    assert await _ids(api, f"/v1/tags/{old}/photos") == []
    assert await _ids(api, f"/v1/tags/{new}/photos") == [photo["id"]]
    assert await _ids(api, "/v1/search/photos", q="beach") == []
    assert photo["id"] in await _ids(api, "/v1/search/photos", q=f"dunes {new}")


async def test_a_tag_page_is_paged_newest_first(api):
    tag = _tag()
    _, headers = await api.user()
    made = [
        (await api.photo(headers, samples.image(size=(32, 32)), f"#{tag} {k}"))["id"]
        for k in range(3)
    ]
    resp = await api.get(f"/v1/tags/{tag}/photos", params={"limit": "2"})
    first = await resp.json()
    resp = await api.get(
        f"/v1/tags/{tag}/photos", params={"limit": "2", "cursor": first["next_cursor"]}
    )
    second = await resp.json()
    assert [p["id"] for p in first["items"] + second["items"]] == made[::-1]
    assert second["next_cursor"] is None
    resp = await api.get(f"/v1/tags/{_tag()}/photos", params={"cursor": first["next_cursor"]})
    await problem(resp, 400)  # a cursor of another tag


@pytest.mark.parametrize("tag", ["a_b", "x" * 65, "%23", "a%20b", "%23%23ab", "a.b", "a-b"])
async def test_a_tag_not_of_the_declared_shape_is_a_400(api, tag):
    body = await problem(await api.get(f"/v1/tags/{tag}/photos"), 400)
    assert "tag" in body["detail"]


@pytest.mark.parametrize("tag", ["12345", "%C3%A9%C2%BD", "%C2%BF"])
async def test_a_tag_no_title_can_have_is_an_empty_page(api, tag):
    resp = await api.get(f"/v1/tags/{tag}/photos")
    assert resp.status == 200
    assert await resp.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"prefix": ""},
        {"prefix": "a"},
        {"prefix": "#"},
        {"prefix": "x" * 65},
        {"prefix": "a-b"},
        {"prefix": "ab", "limit": "0"},
        {"prefix": "ab", "limit": "x"},
    ],
)
async def test_a_bad_tag_prefix_is_a_400(api, params):
    body = await problem(await api.get("/v1/tags", params=params), 400)
    assert "prefix" in body["detail"] or "limit" in body["detail"]


async def test_tag_search_is_bounded_and_folds_its_prefix(api):
    stem = _tag()
    _, headers = await api.user()
    for start in (0, 13):  # 25 tags, over two titles (a title has at most 200 characters)
        title = " ".join(f"#{stem}{chr(ord('a') + k)}" for k in range(start, min(start + 13, 25)))
        await api.photo(headers, samples.image(size=(32, 32)), title)
    resp = await api.get("/v1/tags", params={"prefix": f"#{stem.upper()}"})
    tags = (await resp.json())["tags"]
    assert tags == [f"{stem}{chr(ord('a') + k)}" for k in range(20)]  # at most 20, in order
    resp = await api.get("/v1/tags", params={"prefix": stem, "limit": "3"})
    assert (await resp.json())["tags"] == tags[:3]


async def _photo(api):
    _, owner_h = await api.user()
    photo = await api.photo(owner_h, samples.image(size=(32, 32)), "as uploaded")
    return photo, owner_h


async def test_only_the_owner_edits_a_title(api):
    photo, owner_h = await _photo(api)
    _, other_h = await api.user()
    url = f"/v1/photos/{photo['id']}"
    await problem(await api.patch(url, json={"title": "mine"}), 401)
    await problem(await api.patch(url, json={"title": "mine"}, headers=other_h), 403)
    await problem(
        await api.patch(f"/v1/photos/{MISSING}", json={"title": "x"}, headers=owner_h), 404
    )
    await problem(await api.patch("/v1/photos/0", json={"title": "x"}, headers=owner_h), 400)
    assert await _title(api, photo["id"], owner_h) == "as uploaded"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", {"Content-Type": "application/json"}),
        (b'{"title": "x"}', {"Content-Type": "text/plain"}),
        (b'["title"]', {"Content-Type": "application/json"}),
        (b'{"title": "x", "visibility": "public"}', {"Content-Type": "application/json"}),
        (b'{"title": null}', {"Content-Type": "application/json"}),
        (b'{"title": 5}', {"Content-Type": "application/json"}),
        (b"{}", {"Content-Type": "application/json"}),
        (b'{"title": "\\ud800"}', {"Content-Type": "application/json"}),
        (b'{"title": "   "}', {"Content-Type": "application/json"}),
        (b'{"title": "a \\u202e b"}', {"Content-Type": "application/json"}),
        (b'{"title": "a \\u0000 b"}', {"Content-Type": "application/json"}),
        (b'{"title": "\xff"}', {"Content-Type": "application/json"}),
    ],
)
async def test_a_bad_edit_is_a_400_and_changes_nothing(api, body, headers):
    photo, owner_h = await _photo(api)
    resp = await api.patch(f"/v1/photos/{photo['id']}", data=body, headers={**owner_h, **headers})
    await problem(resp, 400)
    assert await _title(api, photo["id"], owner_h) == "as uploaded"


async def test_a_title_over_the_limit_is_a_400(api):
    photo, owner_h = await _photo(api)
    longest = api.settings.max_title_chars
    url = f"/v1/photos/{photo['id']}"
    body = await problem(
        await api.patch(url, json={"title": "x" * (longest + 1)}, headers=owner_h), 400
    )
    assert str(longest) in body["detail"]
    resp = await api.patch(url, json={"title": "x" * longest}, headers=owner_h)
    assert resp.status == 200
