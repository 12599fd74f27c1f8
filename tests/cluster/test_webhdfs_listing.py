"""Listing a folder of more than one page (``dfs.ls.limit``: 1,000 entries a
LISTSTATUS_BATCH answer) on the real WebHDFS: every entry once, and the listing ends.
The packer's resume, gc and storage stats walk folders this way."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from instastore.storage.hdfs.webhdfs import WebHdfs

pytestmark = pytest.mark.hdfs

ENTRIES = 1_001  # one more than a LISTSTATUS_BATCH page holds by default
IN_FLIGHT = 32  # concurrent MKDIRS while filling the folder


async def test_a_folder_of_more_than_one_page_lists_every_entry_once(local_cluster):
    client = WebHdfs(local_cluster.webhdfs_url, "instastore")
    folder = f"/listing-{uuid.uuid4().hex[:8]}"
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def make(i: int) -> None:
        async with gate:
            await client.mkdirs(f"{folder}/{i:05d}")

    try:
        await asyncio.gather(*(make(i) for i in range(ENTRIES)))
        names = []
        async for status in client.iter_status(folder):
            names.append(status["pathSuffix"])
            if len(names) > 2 * ENTRIES:
                break  # a listing that starts over never ends: stop and fail below
        assert names == [f"{i:05d}" for i in range(ENTRIES)]
    finally:
        await client.delete(folder, recursive=True)
        await client.close()
