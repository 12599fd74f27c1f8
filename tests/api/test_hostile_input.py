"""Malformed encodings on both adapters: each a 400 problem saying what was wrong, and
nothing stored (a lone surrogate used to reach SQLite and the Cassandra driver, which
cannot encode it, as a 500). The raw-socket cases are in tests/api/test_hostile_clients.py."""

from __future__ import annotations

import pytest

from ..factories import problem

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "path, body, detail",
    [
        (
            "/v1/users",
            b'{"username": "surrogate", "password": "\\ud800abcdefgh"}',
            "lone surrogate",
        ),
        (
            "/v1/users",
            b'{"username": "surr\\udfffogate", "password": "abcdefghij"}',
            "lone surrogate",
        ),
        ("/v1/sessions", b'{"username": "\\ud800", "password": "abcdefghij"}', "lone surrogate"),
        ("/v1/sessions", b"[" * 30000 + b"]" * 30000, "nested too deeply"),
        ("/v1/users", b'{"username": "\xff"}', "not UTF-8"),
    ],
    ids=["password", "username", "log-in", "nesting", "not UTF-8"],
)
async def test_bad_json_bodies_are_400_and_store_nothing(api, path, body, detail):
    body_problem = await problem(await api.post(path, data=body, headers=JSON), 400)
    assert detail in body_problem["detail"]
    await problem(await api.get("/v1/users/surrogate"), 404)


async def test_a_lone_surrogate_in_a_display_name_is_400_and_changes_nothing(api):
    name, headers = await api.user()
    resp = await api.patch(
        "/v1/me", data=b'{"display_name": "\\ud83d"}', headers={**headers, **JSON}
    )
    assert "lone surrogate" in (await problem(resp, 400))["detail"]
    assert (await (await api.get(f"/v1/users/{name}")).json())["display_name"] == ""


async def test_a_json_charset_other_than_utf8_is_400(api):
    resp = await api.post(
        "/v1/sessions", data=b"{}", headers={"Content-Type": "application/json; charset=bogus"}
    )
    assert "charset" in (await problem(resp, 400))["detail"]


@pytest.mark.parametrize("raw", ["%C2%B2", "%E2%91%A0", "%D9%A1", "1" * 5000])
async def test_ids_and_limits_take_ascii_digits_only(api, raw):
    name, headers = await api.user()
    await problem(await api.get(f"/v1/photos/{raw}"), 400)
    await problem(await api.delete(f"/v1/photos/{raw}", headers=headers), 400)
    await problem(await api.get(f"/v1/users/{name}/photos?limit={raw}"), 400)
