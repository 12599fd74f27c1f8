"""The HTTP tests' fixtures: the real app on a real port, once per adapter."""

from __future__ import annotations

import dataclasses
import io
import uuid

import aiohttp
import pytest
from instastore.server.app import create_app

from ..contract.conftest import (  # noqa: F401  (fixtures)
    adapter_settings,
    contract_cluster_settings,
)


class Api:
    """A thin client for tests: the aiohttp test client plus sign-up and log-in."""

    def __init__(self, client, settings) -> None:
        self.client = client
        self.settings = settings

    def __getattr__(self, name):
        return getattr(self.client, name)

    async def user(self, name: str | None = None, private: bool = False) -> tuple[str, dict]:
        """A new user, logged in: (username, Authorization headers)."""
        name = name or f"u{uuid.uuid4().hex[:12]}"
        resp = await self.client.post(
            "/v1/users", json={"username": name, "password": "correct horse battery"}
        )
        assert resp.status == 201, await resp.text()
        resp = await self.client.post(
            "/v1/sessions", json={"username": name, "password": "correct horse battery"}
        )
        assert resp.status == 201
        headers = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        if private:
            resp = await self.client.patch("/v1/me", json={"private": True}, headers=headers)
            assert resp.status == 200
        return name, headers

    async def upload(
        self,
        headers,
        data: bytes,
        title: str = "a photo",
        *,
        visibility: str | None = None,
        filename: str = "f.bin",
        extra_headers: dict | None = None,
    ) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        form.add_field("title", title)
        if visibility:
            form.add_field("visibility", visibility)
        form.add_field(
            "file", io.BytesIO(data), filename=filename, content_type="application/octet-stream"
        )
        return await self.client.post(
            "/v1/photos", data=form, headers={**headers, **(extra_headers or {})}
        )

    async def photo(self, headers, data: bytes, title: str = "a photo", **kw) -> dict:
        resp = await self.upload(headers, data, title, **kw)
        assert resp.status == 201, await resp.text()
        return await resp.json()


@pytest.fixture
async def api(aiohttp_client, adapter_settings):  # noqa: F811
    settings = dataclasses.replace(
        adapter_settings, uploads_per_minute=1000, max_upload_bytes=8 * 2**20
    )
    client = await aiohttp_client(create_app(settings))
    return Api(client, settings)


async def problem(resp: aiohttp.ClientResponse, status: int) -> dict:
    """Assert the response is a problem document with this status; return it."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == status and body["type"].startswith("https://instastore.dev/problems/")
    assert body["detail"]
    return body
