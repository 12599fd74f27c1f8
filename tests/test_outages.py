"""Cassandra or HDFS going down gives instastore's own Unavailable error, and the stores
work again once the service is back. On a cluster of its own (other ports), so the
shared test cluster is never disturbed."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from instastore.cluster import ClusterSpec, LocalCluster
from instastore.config import Settings
from instastore.errors import Unavailable
from instastore.storage import open_stores
from instastore.storage.cassandra.metadata import build_cluster
from instastore.storage.cassandra.migrate import migrate

from .contract.conftest import make_photo, new_id

pytestmark = [pytest.mark.slow, pytest.mark.cassandra, pytest.mark.hdfs, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def outage_cluster(tmp_path_factory, local_cluster):
    cluster = LocalCluster(tmp_path_factory.mktemp("outage"))
    cluster.up(ClusterSpec(port_offset=2000, cassandra_heap="512m"))
    yield cluster
    cluster.down()


@pytest.fixture(scope="module")
def outage_settings(outage_cluster, tmp_path_factory) -> Settings:
    settings = Settings.from_sources(
        environ=outage_cluster.client_settings(), overrides={"data_dir": tmp_path_factory.mktemp("d")}
    )
    driver = build_cluster(settings)
    migrate(driver.connect(), settings, progress=lambda line: None)
    driver.shutdown()
    return settings


async def eventually(action, timeout: float = 60.0):
    """Retry ``action`` until it stops raising Unavailable (the store recovered)."""
    deadline = time.monotonic() + timeout
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
        await stores.metadata.save_photo(photo, [])
        outage_cluster.kill_node("cassandra1")
        with pytest.raises(Unavailable):
            await stores.metadata.get_photo(photo.id)
        with pytest.raises(Unavailable):
            await stores.metadata.save_photo(make_photo(new_id()), [])
        assert (await stores.ping())["cassandra"] != "ok"

        await asyncio.to_thread(outage_cluster.start_node, "cassandra1")
        assert await eventually(lambda: stores.metadata.get_photo(photo.id)) == photo
        assert (await stores.ping())["cassandra"] == "ok"
    finally:
        await stores.close()


async def test_hdfs_down_then_back(outage_cluster, outage_settings):
    stores = await open_stores(outage_settings)

    async def one(data: bytes):
        yield data

    try:
        key = f"outage/{uuid.uuid4().hex}"
        await stores.blobs.put(key, one(b"kept"))
        outage_cluster.kill_node("namenode")
        with pytest.raises(Unavailable):
            await stores.blobs.size(key)
        with pytest.raises(Unavailable):
            await stores.blobs.put(key + "-2", one(b"x"))

        await asyncio.to_thread(outage_cluster.start_node, "namenode")
        assert await eventually(lambda: stores.blobs.size(key)) == 4

        async def read():
            return b"".join([c async for c in stores.blobs.open(key)])

        assert await eventually(read) == b"kept"
    finally:
        await stores.close()
