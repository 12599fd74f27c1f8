"""Direct DataNode reads against the real 1 + 1 cluster: once a file was read, the next
ranged read goes straight to the DataNode its OPEN was redirected to (the client's own
request counts show no NameNode request), with the right bytes; a cached DataNode that
is gone, or a file deleted or replaced behind the client's back, falls back to the
NameNode and still reads right. (A real DataNode killed under a cached URL: the
erasure-coding test on the 3 + 3 cluster, tests/cluster/test_erasure_coding.py.)"""

from __future__ import annotations

import os
import uuid

import pytest

from instastore.errors import NotFound
from instastore.storage.hdfs.webhdfs import DataNodeLocations, WebHdfs

from ..serving import free_port

pytestmark = pytest.mark.hdfs

SIZE = 3 * 2**20  # bytes: several chunks, one block


@pytest.fixture
async def client(local_cluster):
    client = WebHdfs(local_cluster.webhdfs_url, "instastore")
    yield client
    await client.delete(f"/direct-reads-{os.getpid()}", recursive=True)
    await client.close()


@pytest.fixture
def path() -> str:
    return f"/direct-reads-{os.getpid()}/{uuid.uuid4().hex}.bin"


async def _one(data: bytes):
    yield data


async def _read(client: WebHdfs, path: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in client.open(path, offset, length)])


async def test_second_ranged_read_makes_no_namenode_request(client, path):
    data = os.urandom(SIZE)
    await client.create(path, _one(data))
    assert await _read(client, path, 1000, 5000) == data[1000:6000]

    before = dict(client.requests)
    assert await _read(client, path, 2_000_000, 300_000) == data[2_000_000:2_300_000]
    assert await _read(client, path) == data  # a whole read goes the same way
    assert await _read(client, path, SIZE - 10) == data[-10:]  # from an offset to the end
    assert client.requests["namenode"] == before["namenode"]
    assert client.requests["datanode"] == before["datanode"] + 3


async def test_a_dead_cached_datanode_falls_back_to_the_namenode(client, path):
    data = os.urandom(SIZE)
    await client.create(path, _one(data))
    assert await _read(client, path, 0, 10) == data[:10]
    real = client.locations.get(path)
    assert real is not None
    client.locations.remember(path, str(real.with_port(free_port())))

    before = dict(client.requests)
    assert await _read(client, path, 500_000, 1_000_000) == data[500_000:1_500_000]
    assert client.requests["namenode"] == before["namenode"] + 1  # asked again, once
    assert client.locations.get(path) == real  # and the live DataNode is cached again


async def test_a_file_deleted_or_replaced_behind_the_client_reads_as_it_is_now(
    client, local_cluster, path
):
    other = WebHdfs(local_cluster.webhdfs_url, "instastore")
    try:
        await client.create(path, _one(b"first bytes"))
        assert await _read(client, path) == b"first bytes"
        assert await other.delete(path)  # not through this client: its cache still has it
        assert client.locations.get(path) is not None
        with pytest.raises(NotFound):
            await _read(client, path)

        await other.create(path, _one(b"second, longer bytes"))
        assert await _read(client, path) == b"second, longer bytes"
        assert await _read(client, path, 8, 6) == b"longer"
    finally:
        await other.close()


async def test_delete_and_rename_through_the_client_drop_the_cached_location(client, path):
    await client.create(path, _one(b"x" * 100))
    await _read(client, path)
    moved = path + ".moved"
    assert await client.rename(path, moved)
    assert client.locations.get(path) is None
    await _read(client, moved)
    assert client.locations.get(moved) is not None
    await client.delete(os.path.dirname(path), recursive=True)
    assert len(client.locations) == 0


def test_the_location_cache_is_bounded_least_recently_read_first():
    locations = DataNodeLocations(capacity=2)
    for name in ("a", "b"):
        locations.remember(f"/{name}", f"http://dn:9864/webhdfs/v1/{name}?op=OPEN&offset=5")
    assert locations.get("/a") is not None  # read: now the most recent
    locations.remember("/c", "http://dn:9864/webhdfs/v1/c?op=OPEN")
    assert len(locations) == 2
    assert locations.get("/b") is None
    url = locations.get("/a")
    assert url is not None
    assert "offset" not in url.query  # each read sets its own range


async def test_a_datanode_is_excluded_by_its_transfer_address(client, local_cluster):
    """excludedatanodes names a DataNode's transfer address; the NameNode ignores any
    other (a redirect's HTTP address would exclude nothing)."""
    datanode = local_cluster.datanodes[0]
    http, transfer = f"127.0.0.1:{datanode.http_port}", f"127.0.0.1:{datanode.transfer_port}"
    assert await client.transfer_address(http) == transfer
    assert await client.transfer_address("127.0.0.1:1") == "127.0.0.1:1"  # unknown: as is
