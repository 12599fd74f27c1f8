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
