"""The HDFS blob adapter: an asyncio WebHDFS client on aiohttp."""

from instastore.storage.hdfs.blobs import HdfsBlobStore

__all__ = ["HdfsBlobStore"]
