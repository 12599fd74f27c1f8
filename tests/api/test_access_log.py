"""One structured access-log line per request, never a password or token."""

from __future__ import annotations

import json
import logging

from instastore.server.app import create_app


async def test_access_log_lines(aiohttp_client, embedded_settings, caplog):
    client = await aiohttp_client(create_app(embedded_settings))
    caplog.set_level(logging.INFO, logger="instastore.access")
    password = "a very secret password"
    await client.post("/v1/users", json={"username": "logged", "password": password})
    token = (
        await (
            await client.post("/v1/sessions", json={"username": "logged", "password": password})
        ).json()
    )["token"]
    await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    await client.get("/v1/users/logged")
    await client.get("/nowhere")

    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "instastore.access"]
    assert [(x["method"], x["route"], x["status"]) for x in lines] == [
        ("POST", "/v1/users", 201),
        ("POST", "/v1/sessions", 201),
        ("GET", "/v1/me", 200),
        ("GET", "/v1/users/{username}", 200),
        ("GET", "(unmatched)", 404),
    ]
    assert lines[2]["user"] is not None and lines[0]["user"] is None
    assert all(isinstance(x["ms"], float) for x in lines)
    everything = caplog.text
    assert password not in everything and token not in everything
