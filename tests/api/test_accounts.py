"""Accounts over HTTP: sign up, log in and out, the current user, profiles."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
from instastore.server.app import create_app

from ..factories import PASSWORD, Api, problem


async def test_sign_up_log_in_me_log_out(api):
    name = f"u{uuid.uuid4().hex[:10]}"
    resp = await api.post(
        "/v1/users", json={"username": name, "password": "long enough", "display_name": "Ada L."}
    )
    assert resp.status == 201
    body = await resp.json()
    assert (
        body["username"] == name
        and body["display_name"] == "Ada L."
        and "password" not in str(body)
    )

    resp = await api.post("/v1/sessions", json={"username": name, "password": "long enough"})
    assert resp.status == 201
    token = (await resp.json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    me = await (await api.get("/v1/me", headers=headers)).json()
    assert me["username"] == name and me["counts"] == {"photos": 0, "followers": 0, "following": 0}

    assert (await api.delete("/v1/sessions/current", headers=headers)).status == 204
    await problem(await api.get("/v1/me", headers=headers), 401)


async def test_patch_me_and_profile(api):
    name, headers = await api.user()
    resp = await api.patch(
        "/v1/me", json={"display_name": "Grace", "private": True}, headers=headers
    )
    assert resp.status == 200
    profile = await (await api.get(f"/v1/users/{name}")).json()
    assert profile["display_name"] == "Grace" and profile["private"] is True


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"username": "ab", "password": "long enough"}, "username must be"),
        ({"username": "Has Spaces", "password": "long enough"}, "username must be"),
        ({"username": "okname", "password": "short"}, "password must be"),
        ({"password": "long enough"}, "username must be"),
        ({"username": "okname2", "password": "long enough", "display_name": 5}, "display_name"),
    ],
)
async def test_sign_up_rejections(api, body, detail):
    assert detail in (await problem(await api.post("/v1/users", json=body), 400))["detail"]


async def test_a_taken_username_is_409(api):
    name, _ = await api.user()
    await problem(
        await api.post("/v1/users", json={"username": name, "password": "another one"}), 409
    )


async def test_not_json_is_400(api):
    resp = await api.post(
        "/v1/users",
        data="username=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    await problem(resp, 400)
    resp = await api.post("/v1/users", data="{nope", headers={"Content-Type": "application/json"})
    assert "not valid JSON" in (await problem(resp, 400))["detail"]
    resp = await api.post("/v1/users", json=["a", "list"])
    await problem(resp, 400)


async def test_a_json_body_over_the_limit_is_413(api):
    resp = await api.post(
        "/v1/users", json={"username": "x" * (api.settings.max_json_bytes + 10), "password": "p"}
    )
    await problem(resp, 413)


async def test_wrong_password_and_unknown_user_look_the_same(api):
    name, _ = await api.user()
    wrong = await problem(
        await api.post("/v1/sessions", json={"username": name, "password": "not it at all"}), 401
    )
    unknown = await problem(
        await api.post("/v1/sessions", json={"username": "nobody" + name, "password": "x" * 10}),
        401,
    )
    assert wrong["detail"] == unknown["detail"] == "wrong username or password"


@pytest.mark.parametrize("header", ["Bearer", "Basic abc", "Bearer not-a-real-token", "token"])
async def test_bad_tokens_are_401(api, header):
    resp = await api.get("/v1/me", headers={"Authorization": header})
    await problem(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_no_token_is_401(api):
    await problem(await api.get("/v1/me"), 401)
    await problem(await api.patch("/v1/me", json={}), 401)


async def test_patch_me_refuses_unknown_fields_and_bad_types(api):
    _, headers = await api.user()
    await problem(await api.patch("/v1/me", json={"username": "new"}, headers=headers), 400)
    await problem(await api.patch("/v1/me", json={"private": "yes"}, headers=headers), 400)


async def test_a_field_given_as_null_is_refused_not_ignored(api):
    """The spec says private is a boolean and display_name a string: null is neither."""
    _, headers = await api.user()
    for body in ({"private": None}, {"display_name": None}, {"display_name": "x", "private": None}):
        await problem(await api.patch("/v1/me", json=body, headers=headers), 400)
    me = await (await api.get("/v1/me", headers=headers)).json()
    assert me["private"] is False and me["display_name"] == ""
    name = f"u{uuid.uuid4().hex[:10]}"
    signup = {"username": name, "password": PASSWORD, "display_name": None}
    await problem(await api.post("/v1/users", json=signup), 400)


async def test_ids_limits_and_cursors_out_of_the_spec_bounds_are_refused(api):
    """What the spec's patterns and bounds refuse, the handlers refuse (400)."""
    _, headers = await api.user()
    for target in (
        "/v1/photos/0",
        "/v1/photos/007",
        "/v1/photos/9223372036854775808",
        "/v1/me/requests?limit=1000000000",
        "/v1/me/requests?cursor=short",
        "/v1/me/requests?cursor=" + "a" * 2049,
    ):
        await problem(await api.get(target, headers=headers), 400)
    await problem(await api.delete("/v1/me/sessions/0", headers=headers), 400)
    resp = await api.get("/v1/me/requests?limit=999999999", headers=headers)
    assert resp.status == 200  # the largest limit the spec allows, clamped to the page size


async def test_unknown_profile_is_404(api):
    await problem(await api.get("/v1/users/nobody-here"), 404)


# A hash slow enough that a flood of them fills a pool (about 20 ms on these machines).
FLOOD_COSTS = {"password_hash_time_cost": 1, "password_hash_memory_kib": 16 * 1024}


async def flood_api(aiohttp_client, adapter_settings) -> Api:
    settings = dataclasses.replace(adapter_settings, **FLOOD_COSTS)
    return Api(await aiohttp_client(create_app(settings)), settings)


async def test_sign_ups_of_a_taken_name_are_refused_before_any_hashing(
    aiohttp_client, adapter_settings
):
    """A taken name costs no password hash: a flood of them is all 409, none shed."""
    api = await flood_api(aiohttp_client, adapter_settings)
    name, _ = await api.user()
    body = {"username": name, "password": "another one"}
    answers = await asyncio.gather(*(api.post("/v1/users", json=body) for _ in range(30)))
    assert sorted(resp.status for resp in answers) == [409] * 30


async def test_log_ins_are_served_while_a_sign_up_flood_is_shed(aiohttp_client, adapter_settings):
    """Sign-ups hash on a pool of their own and are shed first (503, Retry-After), so an
    existing user logs in while 20 clients loop sign-ups."""
    api = await flood_api(aiohttp_client, adapter_settings)
    name, _ = await api.user()
    shed, logged_in = asyncio.Event(), asyncio.Event()
    answers: list = []

    async def loop_sign_ups() -> None:
        while not logged_in.is_set():
            body = {"username": f"f{uuid.uuid4().hex[:12]}", "password": "x" * 9}
            resp = await api.post("/v1/users", json=body)
            answers.append((resp, await resp.read()))
            if resp.status == 503:
                shed.set()

    flood = [asyncio.ensure_future(loop_sign_ups()) for _ in range(20)]
    try:
        await asyncio.wait_for(shed.wait(), 60)  # the flood fills what sign-ups may use
        login = await api.post("/v1/sessions", json={"username": name, "password": PASSWORD})
        assert login.status == 201, await login.text()
    finally:
        logged_in.set()
        await asyncio.gather(*flood)
    assert {resp.status for resp, _ in answers} <= {201, 503}
    for resp, _ in answers:
        if resp.status == 503:
            assert int(resp.headers["Retry-After"]) >= 1
            assert "sign-ups" in (await problem(resp, 503))["detail"]


async def log_in(api, name: str, password: str = PASSWORD) -> dict:
    resp = await api.post("/v1/sessions", json={"username": name, "password": password})
    assert resp.status == 201, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def test_my_sessions_say_when_and_where_and_which_is_this_one(api):
    name, _ = await api.user()
    second = await log_in(api, name)
    resp = await api.get("/v1/me/sessions", headers=second)
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    items = (await resp.json())["items"]
    assert len(items) == 2 and int(items[0]["id"]) > int(items[1]["id"])  # newest first
    assert [item["current"] for item in items] == [True, False]
    assert all(item["address"] == "127.0.0.1" for item in items)
    assert all(item["last_used_at"] >= item["created_at"] for item in items)
    assert all(set(item) >= {"created_at", "expires_at"} for item in items)
    assert "token" not in str(items)


async def test_a_revoked_session_ends_and_another_users_session_id_is_404(api):
    name, first = await api.user()
    _, other = await api.user()
    second = await log_in(api, name)
    items = (await (await api.get("/v1/me/sessions", headers=first)).json())["items"]
    second_id = next(item["id"] for item in items if not item["current"])
    await problem(await api.delete(f"/v1/me/sessions/{second_id}", headers=other), 404)
    assert (await api.get("/v1/me", headers=second)).status == 200  # still valid
    assert (await api.delete(f"/v1/me/sessions/{second_id}", headers=first)).status == 204
    await problem(await api.get("/v1/me", headers=second), 401)
    await problem(await api.delete(f"/v1/me/sessions/{second_id}", headers=first), 404)
    assert (await api.get("/v1/me", headers=first)).status == 200


@pytest.mark.parametrize("session_id", ["x", "0", "99999999999999999999", "1e5"])
async def test_a_malformed_session_id_is_400(api, session_id):
    _, headers = await api.user()
    await problem(await api.delete(f"/v1/me/sessions/{session_id}", headers=headers), 400)


async def test_log_out_everywhere_ends_every_session_and_no_one_elses(api):
    name, first = await api.user()
    _, other = await api.user()
    second = await log_in(api, name)
    assert (await api.delete("/v1/me/sessions", headers=second)).status == 204
    for headers in (first, second):
        await problem(await api.get("/v1/me", headers=headers), 401)
    assert (await api.get("/v1/me", headers=other)).status == 200
    await log_in(api, name)  # the password still logs in


async def test_a_new_password_ends_every_other_session(api):
    name, first = await api.user()
    second = await log_in(api, name)
    change = {"password": PASSWORD, "new_password": "a brand new one"}
    assert (await api.put("/v1/me/password", json=change, headers=first)).status == 204
    await problem(await api.get("/v1/me", headers=second), 401)
    assert (await api.get("/v1/me", headers=first)).status == 200  # the one that changed it
    items = (await (await api.get("/v1/me/sessions", headers=first)).json())["items"]
    assert [item["current"] for item in items] == [True]
    wrong = {"username": name, "password": PASSWORD}
    await problem(await api.post("/v1/sessions", json=wrong), 401)
    await log_in(api, name, "a brand new one")


@pytest.mark.parametrize(
    "body, status, detail",
    [
        ({"password": PASSWORD, "new_password": "short"}, 400, "new_password must be"),
        ({"password": PASSWORD}, 400, "new_password must be"),
        ({"password": PASSWORD, "new_password": 12345678}, 400, "new_password must be"),
        ({"password": PASSWORD, "new_password": "x" * 1025}, 400, "new_password must be"),
        ({"password": "not it at all", "new_password": "a brand new one"}, 403, "wrong"),
        ({"new_password": "a brand new one"}, 403, "wrong"),
        ({"password": PASSWORD, "new_password": "long enough", "admin": 1}, 400, "unknown"),
    ],
)
async def test_password_change_rejections(api, body, status, detail):
    name, headers = await api.user()
    resp = await api.put("/v1/me/password", json=body, headers=headers)
    assert detail in (await problem(resp, status))["detail"]
    assert (await api.get("/v1/me", headers=headers)).status == 200  # nothing ended
    await log_in(api, name)  # the old password still logs in


async def test_session_routes_need_a_token(api):
    await problem(await api.get("/v1/me/sessions"), 401)
    await problem(await api.delete("/v1/me/sessions"), 401)
    await problem(await api.delete("/v1/me/sessions/12345"), 401)
    body = {"password": PASSWORD, "new_password": "a brand new one"}
    await problem(await api.put("/v1/me/password", json=body), 401)


def fresh_address() -> dict[str, str]:
    """An X-Forwarded-For of an address no other test uses (the cluster's limit counts
    are shared by every test of the run)."""
    return {"X-Forwarded-For": "10." + ".".join(str(b) for b in uuid.uuid4().bytes[:3])}


async def test_wrong_passwords_at_a_password_change_are_throttled(aiohttp_client, adapter_settings):
    """A stolen token cannot guess its user's password faster than a log-in could."""
    settings = dataclasses.replace(
        adapter_settings, login_failures_per_address=2, trusted_proxies="127.0.0.1"
    )
    api = Api(await aiohttp_client(create_app(settings)), settings)
    name, credentials = f"u{uuid.uuid4().hex[:12]}", fresh_address()
    body = {"username": name, "password": PASSWORD}
    assert (await api.post("/v1/users", json=body, headers=credentials)).status == 201
    resp = await api.post("/v1/sessions", json=body, headers=credentials)
    token = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    thief = {**token, **fresh_address()}
    wrong = {"password": "not it at all", "new_password": "a brand new one"}
    for _ in range(2):
        await problem(await api.put("/v1/me/password", json=wrong, headers=thief), 403)
    resp = await api.put("/v1/me/password", json=wrong, headers=thief)
    await problem(resp, 429)
    assert int(resp.headers["Retry-After"]) >= 1
