"""Cassandra or HDFS going down gives instastore's own Unavailable error (503 with
Retry-After over HTTP, and /readyz says so), and the stores work again once the service
is back; with the NameNode down, a volume whose block map is known still reads. On a
cluster of its own (other ports), so the shared test cluster is never disturbed."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import uuid

import pytest
from instastore.server.app import create_app

from instastore.cluster import ClusterSpec, LocalCluster
from instastore.config import Settings
from instastore.errors import Unavailable
from instastore.storage import open_stores
from instastore.storage.cassandra.migrate import migrate
from instastore.storage.cassandra.session import build_cluster
from instastore.storage.keys import volume_key

from .. import samples
from ..factories import make_photo, new_id, sign_up, upload_form

pytestmark = [
    pytest.mark.slow,
    pytest.mark.cassandra,
    pytest.mark.hdfs,
    pytest.mark.own_cluster,
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def outage_cluster(tmp_path_factory, local_cluster):
    cluster = LocalCluster(tmp_path_factory.mktemp("outage"))
    cluster.up(ClusterSpec(port_offset=2000, cassandra_heap="512m"))
    yield cluster
    cluster.down()


@pytest.fixture(scope="module")
def outage_settings(outage_cluster, tmp_path_factory) -> Settings:
    settings = Settings.from_sources(
        environ=outage_cluster.client_settings(),
        overrides={"data_dir": tmp_path_factory.mktemp("d")},
    )
    driver = build_cluster(settings)
    migrate(driver.connect(), settings, progress=lambda line: None)
    driver.shutdown()
    return settings


async def eventually(action, within_s: float = 60.0):
    """Retry ``action`` until it stops raising Unavailable (the store recovered); past
    ``within_s`` seconds, the last Unavailable is the failure."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await action()
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_cassandra_down_then_back(outage_cluster, outage_settings):
    stores = await open_stores(outage_settings)
    try:
        photo = make_photo(new_id(), "before the outage")
        await stores.photos.save_photo(photo, [])
        outage_cluster.kill_node("cassandra1")
        with pytest.raises(Unavailable):
            await stores.photos.get_photo(photo.id)
        with pytest.raises(Unavailable):
            await stores.photos.save_photo(make_photo(new_id()), [])
        assert (await stores.ping())["cassandra"] != "ok"

        await asyncio.to_thread(outage_cluster.start_node, "cassandra1")
        assert await eventually(lambda: stores.photos.get_photo(photo.id)) == photo
        assert (await stores.ping())["cassandra"] == "ok"
    finally:
        await stores.close()


async def _read(blobs, key: str, offset: int, length: int) -> bytes:
    return b"".join([chunk async for chunk in blobs.open(key, offset, length)])


async def test_hdfs_down_then_back(outage_cluster, outage_settings):
    stores = await open_stores(outage_settings)

    async def one(data: bytes):
        yield data

    try:
        key = f"outage/{uuid.uuid4().hex}"
        await stores.blobs.put(key, one(b"kept"))
        volume, packed = volume_key(new_id()), os.urandom(50_000)
        await stores.blobs.put(volume, one(packed))
        assert await _read(stores.blobs, volume, 0, 10) == packed[:10]  # its block map is kept
        outage_cluster.kill_node("namenode")
        with pytest.raises(Unavailable):
            await stores.blobs.size(key)
        with pytest.raises(Unavailable):
            await stores.blobs.put(key + "-2", one(b"x"))
        # A volume whose block map is known reads on: no NameNode on the way (block reads).
        assert await _read(stores.blobs, volume, 20_000, 7_000) == packed[20_000:27_000]

        await asyncio.to_thread(outage_cluster.start_node, "namenode")
        assert await eventually(lambda: stores.blobs.size(key)) == 4

        async def read():
            return b"".join([c async for c in stores.blobs.open(key)])

        assert await eventually(read) == b"kept"
    finally:
        await stores.close()


async def test_uploads_and_readiness_wait_for_a_datanode_after_a_namenode_restart(
    outage_cluster, outage_settings, aiohttp_client, tmp_path
):
    settings = dataclasses.replace(
        outage_settings, hdfs_root=f"/ready-{uuid.uuid4().hex[:8]}", data_dir=tmp_path
    )
    client = await aiohttp_client(create_app(settings))
    _, auth = await sign_up(client)
    sizes = iter([(64, 48), (66, 50), (68, 52)])

    async def upload():
        # Distinct bytes each time: identical ones would be deduplicated and write no blob.
        image = samples.image("JPEG", next(sizes))
        form = upload_form(image, "after the restart", filename="x.jpg")
        return await client.post("/v1/photos", data=form, headers=auth)

    assert (await upload()).status == 201
    assert (await client.get("/readyz")).status == 200

    # The NameNode comes back before any DataNode has registered with it.
    outage_cluster.kill_node("datanode1")
    outage_cluster.kill_node("namenode")
    await asyncio.to_thread(outage_cluster.start_node, "namenode", wait=False)
    stores = await open_stores(settings)
    try:
        await eventually(stores.blobs.client.namenode_state)  # its HTTP port answers
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert "hdfs" in (await ready.json())["checks"]

        async def out_of_safe_mode() -> int:
            """It stays in safe mode while blocks are unreported: make it leave, as it
            would with few blocks, once it has loaded its namespace."""
            left = await asyncio.to_thread(
                outage_cluster.hdfs_tool, "dfsadmin", ["-safemode", "leave"]
            )
            live, safe_mode = await stores.blobs.client.namenode_state()
            if left.returncode != 0 or safe_mode:
                raise Unavailable(f"the NameNode is still starting: {left.stderr[-300:]}")
            return live

        assert await eventually(out_of_safe_mode, within_s=120) == 0
        # CREATE now gets "Failed to find datanode": transient, so 503 and Retry-After, not 500.
        refused = await upload()
        assert refused.status == 503, await refused.text()
        assert refused.headers["Retry-After"]
        body = await refused.json()
        assert "datanode" in body["detail"].lower(), body
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert "DataNode" in (await ready.json())["checks"]["hdfs"]
    finally:
        await stores.close()
        await asyncio.to_thread(outage_cluster.start_node, "datanode1")
    assert (await upload()).status == 201
    assert (await client.get("/readyz")).status == 200
