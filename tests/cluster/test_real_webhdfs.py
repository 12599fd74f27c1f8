"""The HDFS that the cluster command starts is real: WebHDFS's two-step CREATE, ranged
OPEN, a refused second CREATE with overwrite=false, DELETE. Raw HTTP on purpose: this
checks the service underneath, not instastore's own client."""

from __future__ import annotations

import os
import uuid

import aiohttp
import pytest

pytestmark = pytest.mark.hdfs


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def _url(local_cluster, path: str) -> str:
    return f"{local_cluster.webhdfs_url}/webhdfs/v1{path}"


async def _create(http, local_cluster, path: str, data: bytes) -> aiohttp.ClientResponse:
    params = {"op": "CREATE", "overwrite": "false", "user.name": "instastore"}
    async with http.put(_url(local_cluster, path), params=params, allow_redirects=False) as step1:
        assert step1.status == 307, await step1.text()
        datanode = step1.headers["Location"]
    assert ":9870" not in datanode  # the NameNode sends the bytes elsewhere: a DataNode
    async with http.put(datanode, data=data) as step2:
        await step2.read()
        return step2


async def test_create_open_range_refuse_overwrite_delete(http, local_cluster):
    path = f"/realcheck/{uuid.uuid4().hex}.bin"
    data = os.urandom(300_000)

    created = await _create(http, local_cluster, path, data)
    assert created.status == 201

    params = {"op": "OPEN", "offset": "1000", "length": "5000", "user.name": "instastore"}
    async with http.get(_url(local_cluster, path), params=params) as resp:
        assert resp.status == 200
        assert await resp.read() == data[1000:6000]

    async with http.get(_url(local_cluster, path), params={"op": "GETFILESTATUS"}) as resp:
        assert (await resp.json())["FileStatus"]["length"] == len(data)

    refused = await _create(http, local_cluster, path, b"other bytes")
    assert refused.status == 403
    async with http.get(
        _url(local_cluster, path), params={"op": "OPEN", "user.name": "instastore"}
    ) as resp:
        assert await resp.read() == data  # the first file is untouched

    async with http.delete(
        _url(local_cluster, path), params={"op": "DELETE", "user.name": "instastore"}
    ) as resp:
        assert (await resp.json()) == {"boolean": True}
    async with http.get(_url(local_cluster, path), params={"op": "GETFILESTATUS"}) as resp:
        assert resp.status == 404
        assert (await resp.json())["RemoteException"]["exception"] == "FileNotFoundException"
