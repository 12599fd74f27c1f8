"""The HTTP tests' fixtures: the real app on a real port, once per adapter."""

from __future__ import annotations

import dataclasses

import pytest
from instastore.server.app import create_app

from ..factories import Api


@pytest.fixture
async def api(aiohttp_client, adapter_settings):
    settings = dataclasses.replace(
        adapter_settings, uploads_per_minute=1000, max_upload_bytes=8 * 2**20
    )
    client = await aiohttp_client(create_app(settings))
    return Api(client, settings)
