"""An asyncio WebHDFS client: the REST protocol (``client``) and how files are read
(``reads``: block reads from the DataNodes, cached DataNode URLs, the NameNode's
redirect, and the fallbacks between them). ``WebHdfs`` is both."""

from instastore.storage.hdfs.webhdfs.client import Json, WebHdfsClient
from instastore.storage.hdfs.webhdfs.reads import (
    MAP_RECHECK_S,
    DataNodeLocations,
    FileCache,
    WebHdfs,
)

__all__ = [
    "MAP_RECHECK_S",
    "DataNodeLocations",
    "FileCache",
    "Json",
    "WebHdfs",
    "WebHdfsClient",
]
