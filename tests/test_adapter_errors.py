"""Adapter boundaries: WebHDFS and driver failures leave instastore/storage/ as
instastore's own errors, never as aiohttp, WebHDFS or cassandra-driver exceptions."""

from __future__ import annotations

import dataclasses
import socket
import uuid

import pytest

from instastore.errors import Conflict, NotFound, Unavailable
from instastore.storage.cassandra import CassandraMetadataStore
from instastore.storage.hdfs import HdfsBlobStore
from instastore.storage.hdfs.webhdfs import WebHdfs


async def chunks(data: bytes):
    yield data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def webhdfs(local_cluster):
    client = WebHdfs(local_cluster.webhdfs_url, "instastore")
    yield client
    await client.close()


@pytest.mark.hdfs
async def test_webhdfs_remote_exceptions_are_mapped(webhdfs):
    folder = f"/errors-{uuid.uuid4().hex}"
    with pytest.raises(NotFound, match="FileNotFoundException"):
        await webhdfs.get_file_status(folder + "/missing")
    with pytest.raises(NotFound):
        _ = [c async for c in webhdfs.open(folder + "/missing")]
    assert await webhdfs.create(folder + "/f", chunks(b"one")) == 3
    with pytest.raises(Conflict, match="FileAlreadyExistsException"):
        await webhdfs.create(folder + "/f", chunks(b"two"))
    assert [e["pathSuffix"] for e in await webhdfs.list_status(folder)] == ["f"]
    assert await webhdfs.delete(folder + "/nothing-here") is False
    assert await webhdfs.delete(folder, recursive=True) is True


@pytest.mark.hdfs
async def test_safe_mode_is_unavailable_not_an_http_error(local_cluster, webhdfs):
    path = f"/safemode-{uuid.uuid4().hex}"
    entered = local_cluster.hdfs_tool("dfsadmin", ["-safemode", "enter"])
    assert entered.returncode == 0, entered.stderr
    try:
        with pytest.raises(Unavailable, match="SafeModeException"):
            await webhdfs.create(path, chunks(b"x"))
    finally:
        left = local_cluster.hdfs_tool("dfsadmin", ["-safemode", "leave"])
        assert left.returncode == 0, left.stderr
    assert await webhdfs.create(path, chunks(b"x")) == 1
    await webhdfs.delete(path)


async def test_nothing_listening_is_unavailable_for_webhdfs(embedded_settings):
    settings = dataclasses.replace(embedded_settings, webhdfs_url=f"http://127.0.0.1:{free_port()}", cassandra_hosts="x")
    store = await HdfsBlobStore.connect(settings)
    try:
        with pytest.raises(Unavailable, match="WebHDFS"):
            await store.ping()
        with pytest.raises(Unavailable):
            await store.put("a/b", chunks(b"x"))
    finally:
        await store.close()


async def test_nothing_listening_is_unavailable_for_cassandra(embedded_settings):
    settings = dataclasses.replace(
        embedded_settings, cassandra_hosts="127.0.0.1", cassandra_port=free_port(), webhdfs_url="http://x"
    )
    with pytest.raises(Unavailable, match="Cassandra"):
        await CassandraMetadataStore.connect(settings)


@pytest.mark.cassandra
async def test_a_missing_schema_says_to_migrate(cluster_settings):
    settings = dataclasses.replace(cluster_settings, cassandra_keyspace=f"never_{uuid.uuid4().hex[:8]}")
    with pytest.raises(Unavailable, match="run `instastore migrate`"):
        await CassandraMetadataStore.connect(settings)
