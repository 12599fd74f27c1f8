"""Where the WebHDFS client lets itself be sent: only to the DataNodes the NameNode
lists (or to the configured ``hdfs_datanodes``). A stand-in NameNode (a small aiohttp
app speaking the two WebHDFS steps and /jmx) points the client elsewhere, and a
stand-in host records whether it was ever contacted; the real cluster shows that reads
and writes through a real NameNode still pass the check."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from instastore.errors import StorageError
from instastore.storage.hdfs.webhdfs import WebHdfs

HOSTILE_BYTES = b"not a DataNode's bytes"


@dataclass
class Host:
    """A stand-in HTTP server: what it was asked, what it answers."""

    server: TestServer
    asked: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.server.host}:{self.server.port}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.address}{path}"


async def _host(handler) -> Host:
    app = web.Application()
    host = Host(TestServer(app, host="127.0.0.1"))

    async def recorded(request: web.Request) -> web.StreamResponse:
        host.asked.append(request.path_qs)
        await request.read()
        return await handler(request)

    app.router.add_route("*", "/{tail:.*}", recorded)
    await host.server.start_server()
    return host


@pytest.fixture
async def hostile() -> AsyncIterator[Host]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=HOSTILE_BYTES, status=201 if request.method == "PUT" else 200)

    host = await _host(answer)
    yield host
    await host.server.close()


@pytest.fixture
async def datanode(hostile) -> AsyncIterator[Host]:
    """A listed DataNode that answers every request with a redirect to the hostile host."""

    async def answer(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(hostile.url("/webhdfs/v1/f"))

    host = await _host(answer)
    yield host
    await host.server.close()


async def _namenode(target: Host, listed: Host) -> Host:
    """A NameNode that names ``target`` as the DataNode of every CREATE and OPEN, and
    lists ``listed`` as its one DataNode."""

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/jmx":
            nodes = {
                f"127.0.0.1:{listed.server.port + 1}": {
                    "infoAddr": listed.address,
                    "xferaddr": f"127.0.0.1:{listed.server.port + 1}",
                }
            }
            return web.json_response({"beans": [{"LiveNodes": json.dumps(nodes)}]})
        return web.json_response({"Location": target.url(request.path_qs)})

    return await _host(answer)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _read(client: WebHdfs, path: str) -> bytes:
    return b"".join([chunk async for chunk in client.open(path)])


async def test_a_location_outside_the_namenodes_datanodes_is_refused_unvisited(hostile, datanode):
    namenode = await _namenode(hostile, listed=datanode)
    client = WebHdfs(namenode.url(), "instastore")
    try:
        with pytest.raises(StorageError, match="not a DataNode"):
            await _read(client, "/f")
        with pytest.raises(StorageError, match="not a DataNode"):
            await client.create("/f", _one(b"bytes"))
    finally:
        await client.close()
        await namenode.server.close()
    assert hostile.asked == []
    assert client.locations.get("/f") is None


async def test_a_listed_datanode_that_redirects_is_not_followed(hostile, datanode):
    namenode = await _namenode(datanode, listed=datanode)
    client = WebHdfs(namenode.url(), "instastore")
    try:
        with pytest.raises(StorageError, match="307"):
            await _read(client, "/f")
        with pytest.raises(StorageError, match="307"):
            await client.create("/f", _one(b"bytes"))
    finally:
        await client.close()
        await namenode.server.close()
    assert len(datanode.asked) == 2
    assert hostile.asked == []


async def test_a_configured_set_replaces_the_namenodes_list(hostile, datanode):
    namenode = await _namenode(hostile, listed=datanode)
    trusting = WebHdfs(namenode.url(), "instastore", datanodes=frozenset({hostile.address}))
    strict = WebHdfs(namenode.url(), "instastore", datanodes=frozenset({datanode.address}))
    try:
        assert await _read(trusting, "/f") == HOSTILE_BYTES  # the operator named it
        with pytest.raises(StorageError, match="not a DataNode"):
            await _read(strict, "/g")
    finally:
        await trusting.close()
        await strict.close()
        await namenode.server.close()
    assert [asked.partition("?")[0] for asked in hostile.asked] == ["/webhdfs/v1/f"]
    assert all("/jmx" not in asked for asked in namenode.asked)  # the list was never needed


@pytest.mark.hdfs
async def test_reads_and_writes_through_the_real_namenode_pass_the_check(local_cluster):
    client = WebHdfs(local_cluster.webhdfs_url, "instastore")
    folder = f"/redirects-{os.getpid()}-{uuid.uuid4().hex}"
    data = os.urandom(100_000)
    try:
        assert await client.create(f"{folder}/f", _one(data)) == len(data)
        assert await _read(client, f"{folder}/f") == data
        location = client.locations.get(f"{folder}/f")
        assert location is not None
        assert f"{location.host}:{location.port}" in client._transfer_addresses
    finally:
        await client.delete(folder, recursive=True)
        await client.close()


@pytest.mark.hdfs
async def test_the_real_namenodes_datanode_is_refused_when_not_configured(local_cluster):
    elsewhere = WebHdfs(
        local_cluster.webhdfs_url, "instastore", datanodes=frozenset({"127.0.0.1:1"})
    )
    path = f"/redirects-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        with pytest.raises(StorageError, match="not a DataNode"):
            await elsewhere.create(path, _one(b"bytes"))
        assert await elsewhere.delete(path) is False  # the refused write left nothing
    finally:
        await elsewhere.close()
