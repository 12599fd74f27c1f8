"""What the WebHDFS client does when the DataNode the NameNode named cannot be reached:
refused, it is excluded and the NameNode asked for another; timed out (nothing was sent:
a node paused or a loaded host, not a dead one), it is asked again as it is. Either way
a retry only while nothing of the body left, and Unavailable once out of attempts."""

from __future__ import annotations

import pytest
from aiohttp import ConnectionTimeoutError

from instastore.errors import Unavailable
from instastore.storage.hdfs.webhdfs import client as webhdfs

LOCATION = "http://127.0.0.1:9864/webhdfs/v1/a/b?op=CREATE"


@pytest.fixture
async def hdfs(monkeypatch):
    monkeypatch.setattr(webhdfs, "RETRY_BACKOFF_S", 0.0)
    client = webhdfs.WebHdfsClient("http://127.0.0.1:1", "instastore")
    yield client
    await client.close()


async def test_a_timed_out_datanode_is_asked_again_not_excluded(hdfs):
    excluded: list[str] = []
    timeout = ConnectionTimeoutError("Connection timeout to host http://127.0.0.1:9864")
    await hdfs._refused(timeout, "CREATE", "/a/b", LOCATION, excluded, attempt=0)
    assert excluded == []
    with pytest.raises(Unavailable, match="DataNode unreachable"):
        await hdfs._refused(
            timeout, "CREATE", "/a/b", LOCATION, excluded, attempt=webhdfs.DATANODE_ATTEMPTS - 1
        )


async def test_a_timed_out_datanode_is_not_tried_again_once_the_body_started(hdfs):
    timeout = ConnectionTimeoutError("Connection timeout")
    with pytest.raises(Unavailable):
        await hdfs._refused(timeout, "CREATE", "/a/b", LOCATION, [], attempt=0, can_retry=False)


async def test_a_namenode_request_whose_connection_timed_out_is_sent_again(monkeypatch):
    """Nothing reached the NameNode when the connection timed out, whatever the
    operation: it is sent again (here to a small server answering as a NameNode)."""
    from aiohttp import web

    async def status(request: web.Request) -> web.Response:
        assert request.query["op"] == "GETFILESTATUS"
        return web.json_response({"FileStatus": {"type": "FILE", "length": 3}})

    app = web.Application()
    app.router.add_get("/webhdfs/v1/a/b", status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    monkeypatch.setattr(webhdfs, "RETRY_BACKOFF_S", 0.0)
    client = webhdfs.WebHdfsClient(f"http://127.0.0.1:{port}", "instastore")
    sent = client._session.request
    timeouts = iter([True, True])  # the first two connections time out, the third lands

    async def flaky(*args, **kwargs):
        if next(timeouts, False):
            raise ConnectionTimeoutError("Connection timeout to host")
        return await sent(*args, **kwargs)

    monkeypatch.setattr(client._session, "request", flaky)
    try:
        assert (await client.get_file_status("/a/b"))["length"] == 3
        timeouts = iter([True] * webhdfs.DATANODE_ATTEMPTS)  # every attempt: unavailable
        with pytest.raises(Unavailable, match="GETFILESTATUS"):
            await client.get_file_status("/a/b")
    finally:
        await client.close()
        await runner.cleanup()
