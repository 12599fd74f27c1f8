"""The sealed-volume folder and its erasure coding, on real HDFS.

On the shared 1 + 1 cluster the folder is made and keeps plain replication (one DataNode
cannot hold a block group). On the shared 3 + 3 cluster (``cluster3``) ``cluster up``
enabled XOR-2-1-1024k and set it on the default folder, the service sets it on its own
folder, and a multi-MiB file written there (one CREATE, closed, as a sealed volume is) is
erasure-coded: ~1.5 raw bytes per byte, read back byte-identical, also with the DataNode
the client reads from SIGKILLed (the client falls back to the NameNode; the DataNode is
started again before the test ends, so the fixture stays whole); read block by block from
the DataNodes' transfer port too, cell by cell, before and after the kill."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import uuid

import pytest

from instastore.cluster import manager
from instastore.config import Settings
from instastore.storage.hdfs import HdfsBlobStore, erasure
from instastore.storage.hdfs.datatransfer import Striping

pytestmark = pytest.mark.hdfs

VOLUME_BYTES = 6 * 2**20 + 12_345  # several 1 MiB cells per stripe, and a partial stripe
MAX_RAW_PER_BYTE = 1.6  # the storage target: on 3 DataNodes, at most this many raw bytes per byte


async def _one(data: bytes):
    yield data


async def _read(store: HdfsBlobStore, path: str, offset: int = 0, length: int | None = None):
    return b"".join([chunk async for chunk in store.client.open(path, offset, length)])


async def _blocks(store: HdfsBlobStore, path: str, offset: int = 0, length: int | None = None):
    """Read as a sealed volume is read: its blocks from the DataNodes' transfer port."""
    return b"".join([c async for c in store.client.open(path, offset, length, immutable=True)])


@pytest.fixture
async def own_root_store(request):
    """An HDFS blob store on a root of its own, over the settings the test names."""
    stores = []

    async def connect(settings: Settings) -> HdfsBlobStore:
        root = f"/ec-{uuid.uuid4().hex[:8]}"
        store = await HdfsBlobStore.connect(dataclasses.replace(settings, hdfs_root=root))
        stores.append((store, root))
        return store

    yield connect
    for store, root in stores:
        await store.client.delete(root, recursive=True)
        await store.close()


def test_policy_from_the_number_of_datanodes():
    assert [erasure.policy_for(n) for n in range(1, 11)] == [
        None,
        None,
        *["XOR-2-1-1024k"] * 2,
        *["RS-3-2-1024k"] * 4,
        *["RS-6-3-1024k"] * 2,
    ]
    assert erasure.wanted_policy("auto", 5) == "RS-3-2-1024k"
    assert erasure.wanted_policy("replication", 9) is None
    assert erasure.wanted_policy("RS-10-4-1024k", 3) == "RS-10-4-1024k"


async def test_on_one_datanode_the_volume_folder_is_made_and_replicated(
    cluster_settings, own_root_store, caplog
):
    with caplog.at_level(logging.INFO, logger="instastore.storage.hdfs.blobs"):
        store = await own_root_store(cluster_settings)
    assert f"sealed volumes in {store.volumes}: replication (wanted: replication" in caplog.text
    assert store.volumes.endswith("/volumes")
    assert (await store.client.get_file_status(store.volumes))["type"] == "DIRECTORY"
    assert await store.client.get_ec_policy(store.volumes) is None
    folder = await store.volume_folder()
    assert folder.as_dict() == {
        "path": store.volumes,
        "policy": "replication",
        "wanted": "replication",
        "live_datanodes": 1,
    }
    path = f"{store.volumes}/replicated"
    await store.client.create(path, _one(b"v" * 1000))
    status = await store.client.get_file_status(path)
    assert "ecPolicy" not in status
    assert status["replication"] == 1


@pytest.mark.slow
@pytest.mark.cassandra
@pytest.mark.timeout(600)
async def test_sealed_volumes_are_erasure_coded_on_three_datanodes(cluster3, own_root_store):
    shown = await _tool(cluster3, "ec", "-getPolicy", "-path", manager.SEALED_VOLUMES)
    assert "XOR-2-1-1024k" in shown  # `cluster up` enabled the policy and set it

    store = await own_root_store(Settings.from_sources(environ=cluster3.client_settings()))
    folder = await store.volume_folder()
    assert (folder.policy, folder.wanted, folder.live_datanodes) == ("XOR-2-1-1024k",) * 2 + (3,)

    data = os.urandom(VOLUME_BYTES)
    path = f"{store.volumes}/volume-1"
    assert await store.client.create(path, _one(data)) == len(data)
    assert (await store.client.get_file_status(path))["ecPolicy"] == "XOR-2-1-1024k"
    logical, raw = map(int, (await _tool(cluster3, "dfs", "-du", "-s", path)).split()[:2])
    assert logical == len(data)
    assert raw / logical <= MAX_RAW_PER_BYTE, f"{raw:,} raw bytes for {logical:,}"

    assert await _read(store, path, 3_000_000, 2_000_000) == data[3_000_000:5_000_000]
    # Block reads: each cell from its internal block, no NameNode once the map is known.
    assert await _blocks(store, path, 0, 10) == data[:10]
    assert store.client.block_maps.get(path).striping == Striping(2**20, 2)
    asked, read_before = store.client.requests["namenode"], store.client.requests["block"]
    assert await _blocks(store, path) == data  # 7 cells (the last partial): 7 reads
    assert await _blocks(store, path, 2**20 - 100, 200) == data[2**20 - 100 : 2**20 + 100]
    assert store.client.requests["namenode"] == asked
    assert store.client.requests["block"] - read_before == 7 + 2
    cached = store.client.locations.get(path)
    assert cached is not None
    victim = next(d for d in cluster3.datanodes if d.http_port == cached.port)
    await asyncio.to_thread(cluster3.kill_node, victim.name)
    try:
        asked = store.client.requests["namenode"]
        assert await _read(store, path) == data  # decoded from the other two
        assert await _read(store, path, 1_048_000, 3_000) == data[1_048_000:1_051_000]
        assert store.client.requests["namenode"] > asked  # the dead DataNode was skipped
        assert store.client.locations.get(path).port != victim.http_port
        # Its internal block is gone: those cells go through WebHDFS (decoded there).
        assert await _blocks(store, path) == data
        assert await _blocks(store, path, 4_000_000, 3_000) == data[4_000_000:4_003_000]
    finally:
        await asyncio.to_thread(cluster3.start_node, victim.name)


async def _tool(cluster, tool: str, *args: str) -> str:
    done = await asyncio.to_thread(cluster.hdfs_tool, tool, list(args))
    assert done.returncode == 0, done.stderr
    return done.stdout
