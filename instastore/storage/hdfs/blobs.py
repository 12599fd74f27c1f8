"""HDFS blob store over WebHDFS."""

from __future__ import annotations

from instastore.config import Settings
from instastore.storage.hdfs.webhdfs import WebHdfs


class HdfsBlobStore:
    name = "hdfs"

    def __init__(self, client: WebHdfs, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    @classmethod
    async def connect(cls, settings: Settings) -> HdfsBlobStore:
        return cls(WebHdfs(settings.webhdfs_url, settings.hdfs_user), settings)

    async def ping(self) -> None:
        await self.client.get_file_status("/")

    async def close(self) -> None:
        await self.client.close()
