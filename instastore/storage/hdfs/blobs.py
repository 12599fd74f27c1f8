"""HDFS blob store over WebHDFS: one file per blob under ``<hdfs_root>/blobs/<key>``.

Files are created with overwrite=false (a key is written once) and the replication
factor from the settings; with ``dfs.datanode.synconclose=true`` on the cluster, CREATE's
201 means the bytes are on disk on every replica. The layout behind the key is this
adapter's business: packing many small blobs into large volume files later would not
change a caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from instastore.config import Settings
from instastore.errors import Conflict, InstastoreError, NotFound
from instastore.storage.ports import check_key
from instastore.storage.hdfs.webhdfs import WebHdfs


class HdfsBlobStore:
    name = "hdfs"

    def __init__(self, client: WebHdfs, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.root = settings.hdfs_root.rstrip("/") + "/blobs"

    @classmethod
    async def connect(cls, settings: Settings) -> HdfsBlobStore:
        return cls(WebHdfs(settings.webhdfs_url, settings.hdfs_user), settings)

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    async def ping(self) -> None:
        await self.client.get_file_status("/")

    async def close(self) -> None:
        await self.client.close()

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        path = self._path(key)
        try:
            return await self.client.create(path, chunks, replication=self.settings.hdfs_replication)
        except Conflict:
            raise
        except BaseException:
            # A failed CREATE can leave a partial file behind: remove it (best effort),
            # so a failed put leaves no blob. Never remove on Conflict: that one is not ours.
            try:
                await self.client.delete(path)
            except InstastoreError:
                pass
            raise

    async def open(self, key: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        if length == 0:
            await self.size(key)  # still NotFound for a missing key
            return
        async for chunk in self.client.open(self._path(key), offset, length):
            yield chunk

    async def size(self, key: str) -> int:
        return (await self.client.get_file_status(self._path(key)))["length"]

    async def delete(self, key: str) -> bool:
        return await self.client.delete(self._path(key))

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        pending = [self.root]
        while pending:
            folder = pending.pop()
            try:
                entries = await self.client.list_status(folder)
            except NotFound:
                continue
            for entry in entries:
                path = f"{folder}/{entry['pathSuffix']}"
                if entry["type"] == "DIRECTORY":
                    pending.append(path)
                else:
                    key = path[len(self.root) + 1 :]
                    if key.startswith(prefix):
                        yield key
