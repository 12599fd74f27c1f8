"""/openapi.json describes exactly the routes the app serves, and what they answer: a
scripted session over every operation and its error paths is checked against it,
response by response (status declared, body valid for its content type, headers)."""

from __future__ import annotations

import dataclasses

import pytest
from instastore.server.app import create_app
from instastore.server.openapi import spec as build
from instastore.server.routes import ROUTES
from jsonschema import Draft202012Validator

from instastore.config import Settings

from .. import samples
from ..factories import PASSWORD
from ..openapi_check import Session, Spec


async def test_openapi_lists_every_route_and_nothing_else(aiohttp_client, embedded_settings):
    client = await aiohttp_client(create_app(embedded_settings))
    spec = await (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    served = {(method, path) for method, path, _ in ROUTES}
    assert documented == served
    web_page = {"/", "/static"}  # the web page's files: not part of the API
    registered = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource.canonical not in web_page
    }
    assert registered == served
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["responses"] and op["operationId"], (
                f"{method} {path} is undocumented"
            )


def test_every_operation_declares_ids_schemas_and_common_errors():
    spec = Spec(build(Settings(), ROUTES))
    operation_ids = [op["operationId"] for _, _, op in spec.operations()]
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"
    for schema in spec.document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for method, path, op in spec.operations():
        responses = {code: spec.resolve(r) for code, r in op["responses"].items()}
        assert {"400", "401", "500", "503"} <= set(responses), f"{method} {path}"
        for code, response in responses.items():
            where = f"{method} {path} {code}"
            if code in ("204", "304") or method == "HEAD":
                assert "content" not in response, f"{where}: declares a body it never sends"
            elif int(code) >= 400:
                assert "application/problem+json" in response["content"], where
                problem = spec.resolve(response["content"]["application/problem+json"]["schema"])
                assert problem["required"] == ["type", "title", "status", "detail"], where
            else:
                assert response["content"], f"{where}: no schema for its body"
            for media in response.get("content", {}).values():
                Draft202012Validator.check_schema(
                    {"allOf": [media["schema"]], "components": spec.document["components"]}
                )
        for code in {"429", "503"} & set(responses):
            assert "Retry-After" in responses[code].get("headers", {}), f"{method} {path} {code}"
        if "requestBody" in op:
            assert {"408", "413"} <= set(responses), (
                f"{method} {path}: a body can be too slow or too large"
            )


@pytest.fixture
async def session(aiohttp_client, embedded_settings) -> Session:
    client = await aiohttp_client(create_app(embedded_settings))
    return Session(client, Spec(await (await client.get("/openapi.json")).json()))


BAD_TOKENS = [
    {"Authorization": "Bearer not-a-token"},
    {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer"},
]


async def test_live_session_matches_the_spec(session: Session):
    s = session
    await s.expect(200, "GET", "/healthz")
    await s.expect(200, "GET", "/readyz")
    await s.expect(200, "GET", "/openapi.json")
    alice, a = await s.user()
    bob, b = await s.user(private=True)
    _, c = await s.user()
    await s.expect(409, "POST", "/v1/users", json_body={"username": alice, "password": PASSWORD})
    await s.expect(400, "POST", "/v1/users", json_body={"username": "A!", "password": PASSWORD})
    await s.expect(
        400, "POST", "/v1/users", raw=b"username=x", headers={"Content-Type": "text/plain"}
    )
    await s.expect(
        400, "POST", "/v1/users", raw=b"{not json", headers={"Content-Type": "application/json"}
    )
    await s.expect(
        413, "POST", "/v1/users", json_body={"username": "x" * 70_000, "password": PASSWORD}
    )
    await s.expect(
        413, "POST", "/v1/sessions", json_body={"username": alice, "password": "p" * 70_000}
    )
    await s.expect(413, "PATCH", "/v1/me", a, json_body={"display_name": "d" * 70_000})
    await s.expect(
        401, "POST", "/v1/sessions", json_body={"username": alice, "password": "wrong password"}
    )
    await s.expect(400, "POST", "/v1/sessions", json_body=["a list"])
    await s.expect(200, "GET", "/v1/me", a)
    await s.expect(401, "GET", "/v1/me")
    await s.expect(200, "PATCH", "/v1/me", a, json_body={"display_name": "Alice"})
    await s.expect(400, "PATCH", "/v1/me", a, json_body={"private": "yes"})
    await s.expect(400, "PATCH", "/v1/me", a, json_body={"admin": True})
    a = await session_exchanges(s, alice, a, b)

    photo = s.json(await s.upload(201, a, samples.image("JPEG", (320, 240)), "a cat on a mat"))
    video = s.json(
        await s.upload(201, a, samples.video("mp4", "h264"), "a cat video", visibility="followers")
    )
    key = {"Idempotency-Key": "k1"}
    first = s.json(await s.upload(201, {**a, **key}, samples.image("PNG", (64, 64)), "keyed"))
    assert (
        s.json(await s.upload(200, {**a, **key}, samples.image("PNG", (64, 64)), "keyed"))["id"]
        == first["id"]
    )
    await s.upload(400, {**a, "Idempotency-Key": "\t"}, samples.image("PNG", (64, 64)))
    await s.upload(400, a, samples.image("PNG", (64, 64)), "")
    await s.upload(400, a, samples.image("PNG", (64, 64)), visibility="everyone")
    await s.upload(415, a, b"just some text, not a picture")
    await s.upload(422, a, samples.image("JPEG", (320, 240))[:200])
    await s.upload(401, {}, samples.image("PNG", (64, 64)))
    await s.expect(400, "POST", "/v1/photos", a, json_body={"title": "not multipart"})

    pid, vid = photo["id"], video["id"]
    await s.expect(200, "GET", f"/v1/photos/{pid}")
    await s.expect(200, "GET", f"/v1/photos/{pid}", a)
    await s.expect(404, "GET", f"/v1/photos/{vid}")  # followers only
    await s.expect(400, "GET", "/v1/photos/abc")
    await s.expect(400, "GET", "/v1/photos/99999999999999999999")
    await s.expect(404, "GET", "/v1/photos/12345")

    await media_exchanges(s, photo, video, a, b)
    await share_exchanges(s, pid, vid, a)

    await s.expect(200, "GET", f"/v1/users/{alice}")
    await s.expect(200, "GET", f"/v1/users/{alice}", b)
    await s.expect(404, "GET", "/v1/users/nobody_here")
    await s.expect(200, "PUT", f"/v1/users/{bob}/follow", a)  # requested: bob is private
    await s.expect(400, "PUT", f"/v1/users/{alice}/follow", a)
    await s.expect(404, "PUT", "/v1/users/nobody_here/follow", a)
    await s.expect(401, "PUT", f"/v1/users/{bob}/follow")
    await s.expect(200, "GET", "/v1/me/requests", b)
    await s.expect(400, "GET", "/v1/me/requests?limit=0", b)
    await s.expect(400, "GET", "/v1/me/requests?cursor=garbage", b)
    await s.expect(200, "POST", f"/v1/me/requests/{alice}/approve", b)
    await s.expect(404, "POST", f"/v1/me/requests/{alice}/approve", b)
    await s.expect(200, "PUT", f"/v1/users/{alice}/follow", b)
    for who in (alice, bob):
        for listing in ("followers", "following"):
            await s.call(
                "GET", f"/v1/users/{who}/{listing}"
            )  # 403 on a private list, once privacy merges
            await s.expect(200, "GET", f"/v1/users/{who}/{listing}?limit=1", b)
    await s.expect(404, "GET", "/v1/users/nobody_here/followers")
    await s.expect(200, "GET", f"/v1/users/{alice}/photos?limit=1")
    page = s.json(await s.expect(200, "GET", f"/v1/users/{alice}/photos?limit=1", a))
    await s.expect(200, "GET", f"/v1/users/{alice}/photos?cursor={page['next_cursor']}", a)
    await s.expect(404, "GET", "/v1/users/nobody_here/photos")

    await s.expect(200, "GET", "/v1/timeline", b)
    await s.expect(200, "GET", "/v1/timeline?order=recent&limit=1", b)
    await s.expect(400, "GET", "/v1/timeline?order=sideways", b)
    await s.expect(401, "GET", "/v1/timeline")
    await s.expect(200, "GET", "/v1/search/photos?q=cat")
    await s.expect(200, "GET", "/v1/search/photos?q=cat&limit=1", b)
    await s.expect(400, "GET", "/v1/search/photos")
    await s.expect(400, "GET", "/v1/search/photos?q=" + "a" * 201)

    await s.expect(200, "PUT", f"/v1/photos/{pid}/like", b)
    await s.expect(200, "DELETE", f"/v1/photos/{pid}/like", b)
    await s.expect(404, "PUT", f"/v1/photos/{vid}/like", c)  # followers only
    await s.expect(401, "PUT", f"/v1/photos/{pid}/like")
    await s.expect(404, "PUT", "/v1/photos/12345/like", b)
    await s.expect(400, "DELETE", "/v1/photos/x/like", b)
    await s.expect(200, "PUT", f"/v1/photos/{pid}/like", a)
    await s.expect(200, "GET", f"/v1/photos/{pid}/likers?limit=1")
    await s.expect(404, "GET", f"/v1/photos/{vid}/likers", c)
    comment = s.json(
        await s.expect(201, "POST", f"/v1/photos/{pid}/comments", b, json_body={"text": "hi"})
    )
    await s.expect(400, "POST", f"/v1/photos/{pid}/comments", b, json_body={"text": " "})
    await s.expect(404, "POST", f"/v1/photos/{vid}/comments", c, json_body={"text": "hi"})
    await s.expect(200, "GET", f"/v1/photos/{pid}/comments?limit=1")
    await s.expect(404, "GET", f"/v1/photos/{vid}/comments", c)
    await s.expect(403, "DELETE", f"/v1/photos/{pid}/comments/{comment['id']}", c)
    await s.expect(204, "DELETE", f"/v1/photos/{pid}/comments/{comment['id']}", a)
    await s.expect(404, "DELETE", f"/v1/photos/{pid}/comments/{comment['id']}", b)
    await s.expect(200, "GET", f"/v1/search/users?q={alice[:2]}")
    await s.expect(400, "GET", "/v1/search/users?q=a")
    await s.expect(404, "DELETE", f"/v1/me/requests/{alice}", b)
    await s.expect(204, "DELETE", f"/v1/me/followers/{alice}", b)
    await s.expect(404, "DELETE", "/v1/me/followers/nobody_here", b)
    await s.expect(200, "PATCH", f"/v1/photos/{pid}", a, json_body={"title": "a cat #cat"})
    await s.expect(403, "PATCH", f"/v1/photos/{pid}", b, json_body={"title": "mine"})
    await s.expect(404, "PATCH", f"/v1/photos/{vid}", c, json_body={"title": "mine"})
    await s.expect(400, "PATCH", f"/v1/photos/{pid}", a, json_body={"title": " "})
    await s.expect(401, "PATCH", f"/v1/photos/{pid}", json_body={"title": "mine"})
    await s.expect(200, "GET", "/v1/tags/cat/photos?limit=1")
    await s.expect(400, "GET", "/v1/tags/a_b/photos")
    await s.expect(200, "GET", "/v1/tags?prefix=ca", b)
    await s.expect(400, "GET", "/v1/tags?prefix=c")
    await s.expect(403, "DELETE", f"/v1/photos/{pid}", b)
    await s.expect(400, "DELETE", "/v1/photos/x", a)
    await s.expect(404, "DELETE", "/v1/photos/12345", a)
    await s.expect(204, "DELETE", f"/v1/photos/{pid}", a)
    await s.expect(404, "GET", f"/v1/photos/{pid}")
    await s.expect(200, "POST", f"/v1/photos/{pid}/restore", a)
    await s.expect(404, "POST", f"/v1/photos/{pid}/restore", b)
    await s.expect(400, "POST", "/v1/photos/x/restore", a)

    await s.expect(204, "DELETE", f"/v1/users/{bob}/follow", a)
    await s.expect(404, "DELETE", "/v1/users/nobody_here/follow", a)

    for bad in BAD_TOKENS:
        for method, path, _ in ROUTES:
            target = path.format(
                username=alice,
                photo_id=pid,
                secret="s",
                name="thumb",
                session_id="12345",
                comment_id="12345",
                tag="cat",
            )
            await s.expect(401, method, target, bad)
    await s.expect(405, "PUT", "/v1/me", a)
    await s.expect(405, "POST", "/healthz")
    await s.expect(404, "GET", "/v1/nothing-here")
    await s.expect(204, "DELETE", "/v1/sessions/current", b)
    await s.expect(401, "GET", "/v1/me", b)  # logged out
    await s.expect(401, "DELETE", "/v1/sessions/current", b)

    routed = [s.spec.operation(e.method, e.path) for e in s.seen]
    exercised = {found[1]["operationId"] for found in routed if found}
    assert exercised == {op["operationId"] for _, _, op in s.spec.operations()}
    assert s.report() == []


async def session_exchanges(s: Session, alice: str, a: dict, other: dict) -> dict:
    """Alice's sessions: listed, one revoked, her password changed, all ended (``other``'s
    token stays valid); a new token of hers."""
    credentials = {"username": alice, "password": PASSWORD}
    token = s.json(await s.expect(201, "POST", "/v1/sessions", json_body=credentials))["token"]
    second = {"Authorization": f"Bearer {token}"}
    listed = s.json(await s.expect(200, "GET", "/v1/me/sessions", a))["items"]
    newest = listed[0]["id"]
    await s.expect(401, "GET", "/v1/me/sessions")
    await s.expect(400, "DELETE", "/v1/me/sessions/x", a)
    await s.expect(404, "DELETE", f"/v1/me/sessions/{newest}", other)  # not theirs
    await s.expect(204, "DELETE", f"/v1/me/sessions/{newest}", a)
    await s.expect(401, "GET", "/v1/me", second)
    await s.expect(404, "DELETE", f"/v1/me/sessions/{newest}", a)
    change = {"password": PASSWORD, "new_password": "short"}
    await s.expect(400, "PUT", "/v1/me/password", a, json_body=change)
    change = {"password": "not the password", "new_password": "a new password"}
    await s.expect(403, "PUT", "/v1/me/password", a, json_body=change)
    await s.expect(400, "PUT", "/v1/me/password", a, json_body={"admin": True})
    change = {"password": PASSWORD, "new_password": PASSWORD}
    await s.expect(204, "PUT", "/v1/me/password", a, json_body=change)
    await s.expect(413, "PUT", "/v1/me/password", a, json_body={"password": "p" * 70_000})
    token = s.json(await s.expect(201, "POST", "/v1/sessions", json_body=credentials))["token"]
    third = {"Authorization": f"Bearer {token}"}
    await s.expect(204, "DELETE", "/v1/me/sessions", third)
    await s.expect(401, "GET", "/v1/me", third)
    await s.expect(401, "GET", "/v1/me", a)
    await s.expect(200, "GET", "/v1/me", other)
    token = s.json(await s.expect(201, "POST", "/v1/sessions", json_body=credentials))["token"]
    return {"Authorization": f"Bearer {token}"}


async def share_exchanges(s: Session, pid: str, vid: str, owner: dict) -> None:
    """The photo page and oEmbed: answered, refused, and 404 for a hidden photo."""
    base = f"http://{s.client.host}:{s.client.port}"
    await s.expect(200, "GET", f"/p/{pid}")
    await s.expect(200, "HEAD", f"/p/{pid}")
    await s.expect(404, "GET", f"/p/{vid}", owner)  # followers only: no page, even for its owner
    await s.expect(404, "GET", "/p/12345")
    await s.expect(400, "GET", "/p/abc")
    await s.expect(200, "GET", f"/oembed?url={base}/p/{pid}&maxwidth=200&format=json")
    await s.expect(200, "HEAD", f"/oembed?url={base}/p/{pid}")
    await s.expect(404, "GET", f"/oembed?url={base}/p/{vid}")
    await s.expect(404, "GET", "/oembed?url=https://elsewhere.example/p/1")
    await s.expect(400, "GET", "/oembed")
    await s.expect(400, "GET", f"/oembed?url={base}/p/{pid}&maxheight=0")
    await s.expect(501, "GET", f"/oembed?url={base}/p/{pid}&format=xml")


async def media_exchanges(s: Session, photo: dict, video: dict, owner: dict, other: dict) -> None:
    thumb, original = photo["media"]["thumb"], photo["media"]["original"]
    full = await s.expect(200, "GET", thumb)
    etag = full.response_headers["etag"]
    await s.expect(304, "GET", thumb, {"If-None-Match": etag})
    await s.expect(206, "GET", thumb, {"Range": "bytes=0-9"})
    await s.expect(206, "GET", thumb, {"Range": "bytes=-5"})
    await s.expect(200, "GET", thumb, {"Range": "bytes=0-1,4-5"})  # several ranges: the whole body
    await s.expect(200, "HEAD", thumb)
    await s.expect(206, "HEAD", thumb, {"Range": "bytes=0-9"})
    await s.expect(304, "HEAD", thumb, {"If-None-Match": etag})
    await s.expect(416, "GET", thumb, {"Range": "bytes=99999999-"})
    await s.expect(416, "HEAD", thumb, {"Range": "bytes=99999999-"})
    await s.expect(200, "GET", original, owner)
    await s.expect(401, "GET", original)
    await s.expect(403, "GET", original, other)
    await s.expect(404, "HEAD", original.rsplit("/", 2)[0] + "/wrong-secret/thumb")
    await s.expect(206, "GET", video["media"]["video"], {"Range": "bytes=10-"})
    await s.expect(200, "GET", video["media"]["poster"])
    await s.expect(404, "GET", original.rsplit("/", 1)[0] + "/poster")
    await s.expect(404, "GET", original.rsplit("/", 2)[0] + "/wrong-secret/thumb")
    await s.expect(400, "GET", "/v1/media/x/secret/thumb")
    await s.expect(404, "GET", "/v1/media/12345/secret/thumb")
    await s.expect(200, "GET", thumb, {"Range": "items=0-1"})  # another unit: the whole body


async def test_gone_and_throttled_match_the_spec(aiohttp_client, embedded_settings):
    """410 (past the undelete window) and 429 (the upload limit), on an app where both
    come at once."""
    settings = dataclasses.replace(embedded_settings, retention_days=0, uploads_per_minute=1)
    client = await aiohttp_client(create_app(settings))
    s = Session(client, Spec(await (await client.get("/openapi.json")).json()))
    _, a = await s.user()
    photo = s.json(await s.upload(201, a, samples.image("PNG", (64, 64))))
    limited = await s.upload(429, a, samples.image("PNG", (64, 64)))
    assert int(limited.response_headers["retry-after"]) >= 1
    await s.expect(204, "DELETE", f"/v1/photos/{photo['id']}", a)
    await s.expect(410, "POST", f"/v1/photos/{photo['id']}/restore", a)
    assert s.report() == []


async def test_405_carries_allow(session: Session):
    exchange = await session.expect(405, "DELETE", "/v1/me")
    assert set(exchange.response_headers["allow"].split(",")) == {"GET", "HEAD", "PATCH"}
    assert session.report() == []


async def test_an_unknown_expectation_is_ignored(session: Session):
    """Expect other than 100-continue: answered as if absent (RFC 9110 10.1.1), not with
    aiohttp's text/plain 417 that no operation declares."""
    exchange = await session.send_raw("GET", "/healthz", {"Expect": "the-unexpected"}, None)
    assert exchange.status == 200, exchange.describe()
    _, a = await session.user()
    exchange = await session.send_raw(
        "PATCH",
        "/v1/me",
        {**a, "Expect": "100-continue", "Content-Type": "application/json"},
        b'{"private": true}',
    )
    assert exchange.status == 200, exchange.describe()
    assert session.report() == []


async def test_json_answers_are_nosniff_and_no_store(session: Session):
    """The token, the viewer's own data, and errors: never cached, never sniffed."""
    _, a = await session.user()
    for exchange in [
        *session.seen,
        await session.expect(200, "GET", "/v1/me", a),
        await session.expect(401, "GET", "/v1/timeline"),
    ]:
        assert exchange.response_headers["x-content-type-options"] == "nosniff", exchange.describe()
        assert exchange.response_headers["cache-control"] == "no-store", exchange.describe()


async def test_every_get_answers_head_with_its_status_and_headers(session: Session):
    """HEAD of every GET route: the status and headers GET answers, and no body (a probe
    that asks HEAD /healthz must not read 405)."""
    s = session
    alice, a = await s.user()
    photo = s.json(await s.upload(201, a, samples.image("PNG", (64, 64))))
    thumb = photo["media"]["thumb"]
    gets = {path for method, path, _ in ROUTES if method == "GET"}
    assert {path for method, path, _ in ROUTES if method == "HEAD"} == gets
    for template in sorted(gets):
        path = template.format(
            username=alice, photo_id=photo["id"], secret="s", name="thumb", tag="cat"
        )
        if "{secret}" in template:
            path = thumb
        query = {
            "/v1/search/photos": "?q=x",
            "/v1/search/users": "?q=xx",
            "/v1/tags": "?prefix=ca",
            "/oembed": f"?url=http://{s.client.host}:{s.client.port}/p/{photo['id']}",
        }.get(template, "")
        status = 401 if template == "/metrics" else 200  # its own token, not a user's
        get = await s.expect(status, "GET", path + query, a)
        head = await s.expect(status, "HEAD", path + query, a)
        assert head.response_body == b"", template
        names = ["content-type", "cache-control", "etag"]
        if template != "/metrics":  # its counters count the GET just made
            names.append("content-length")
        for name in names:
            assert head.response_headers.get(name) == get.response_headers.get(name), (
                f"{template}: {name}"
            )
    await s.expect(404, "HEAD", "/v1/users/nobody_at_all")
    assert s.report() == []
