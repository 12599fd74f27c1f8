"""The service answers /healthz and /readyz on both adapters, and errors are problem+json."""

from __future__ import annotations

import shutil

import pytest
from instastore.server.app import create_app


@pytest.fixture
async def embedded_client(aiohttp_client, embedded_settings):
    return await aiohttp_client(create_app(embedded_settings))


async def test_healthz(embedded_client):
    resp = await embedded_client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_readyz_on_the_embedded_default(embedded_client):
    resp = await embedded_client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready", "checks": {"sqlite": "ok", "files": "ok"}}


async def test_readyz_is_503_with_the_reason_when_a_store_is_gone(
    embedded_client, embedded_settings
):
    shutil.rmtree(embedded_settings.data_dir / "blobs")
    resp = await embedded_client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["sqlite"] == "ok"
    assert "not writable" in body["checks"]["files"]


@pytest.mark.cassandra
@pytest.mark.hdfs
async def test_readyz_on_the_cluster(aiohttp_client, cluster_settings):
    client = await aiohttp_client(create_app(cluster_settings))
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready", "checks": {"cassandra": "ok", "hdfs": "ok"}}


async def test_unknown_path_is_a_problem_document(embedded_client):
    resp = await embedded_client.get("/no/such/path")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    assert await resp.json() == {
        "type": "https://instastore.dev/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "Not Found",
    }


async def test_wrong_method_is_a_problem_document(embedded_client):
    resp = await embedded_client.post("/healthz")
    assert resp.status == 405
    body = await resp.json()
    assert body["status"] == 405
    assert body["title"] == "Method Not Allowed"
