"""How WebHDFS files are read: block reads from the DataNodes, cached DataNode URLs, and
the NameNode's redirect, each falling back on the next.

A file that never changes once closed (``immutable``: a sealed volume) is read block by
block from the DataNodes' data-transfer port (``datatransfer``) with its block map
cached, when ``block_reads`` is on. Whatever that cannot serve, and every other file,
goes through WebHDFS: OPEN in two explicit steps (the NameNode names a DataNode with
``noredirect=true``, then the bytes come from it), excluding a DataNode that refuses.

Reads skip the NameNode once a file was read: the OPEN redirect names a DataNode URL
(with ``namenoderpcaddress``) that serves any ``offset``/``length`` of the file, so it is
kept per file (``DataNodeLocations``, bounded) and called directly. The DataNode opens
the file by its path, so a cached URL never serves another file's bytes: a file that
was deleted answers 404 there, one replaced under the same path reads as the new file.
When the direct read fails before its first byte (the DataNode is gone: refused or
reset; or it answers 403, 404, 410 or any other error), the entry is dropped and the
NameNode asked, as on a first read. A file written, renamed or deleted through this
client keeps nothing (``_forget``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Generic, TypeVar

import aiohttp
from yarl import URL

from instastore.errors import NotFound, StorageError, Unavailable
from instastore.storage.hdfs import datatransfer
from instastore.storage.hdfs.datatransfer import BlockMap, BlockReadError
from instastore.storage.hdfs.webhdfs.client import (
    DATANODE_ATTEMPTS,
    WebHdfsClient,
    raise_for,
)

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024  # bytes per chunk handed to the caller when streaming a read
# Files whose DataNode URL is kept for direct reads (least recently read dropped first):
# ~300 bytes each, so ~3 MB; enough for every volume a process reads from.
LOCATION_CACHE_FILES = 10_000
# A block map no DataNode of which served a block is asked for again only once it is this
# old: until then that block's reads go to WebHDFS (whose DataNode rebuilds a missing
# cell), and a volume with a dead DataNode costs the NameNode two requests a minute or
# so per process, not two per read.
MAP_RECHECK_S = 30.0
RANGE_PARAMS = ("offset", "length")  # what a cached DataNode URL gets per read

V = TypeVar("V")


class FileCache(Generic[V]):
    """Something kept per file path, least recently used dropped past ``capacity``."""

    def __init__(self, capacity: int = LOCATION_CACHE_FILES) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, path: str) -> V | None:
        item = self._items.get(path)
        if item is not None:
            self._items.move_to_end(path)
        return item

    def put(self, path: str, item: V) -> None:
        self._items[path] = item
        self._items.move_to_end(path)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def forget(self, path: str, tree: bool = False) -> None:
        """Drop ``path``, and with ``tree`` every file under it (a recursive delete or a
        rename of a folder)."""
        self._items.pop(path, None)
        if tree:
            under = path.rstrip("/") + "/"
            for cached in [p for p in self._items if p.startswith(under)]:
                del self._items[cached]


class DataNodeLocations(FileCache[URL]):
    """Per file, the DataNode URL its last OPEN was redirected to (without offset and
    length)."""

    def remember(self, path: str, location: str) -> None:
        self.put(path, URL(location, encoded=True).without_query_params(*RANGE_PARAMS))


class WebHdfs(WebHdfsClient):
    """The WebHDFS client with its read strategy (see the module's docstring)."""

    def __init__(
        self,
        base_url: str,
        user: str,
        block_reads: bool = True,
        datanodes: frozenset[str] | None = None,
    ) -> None:
        super().__init__(base_url, user, datanodes)
        self.locations = DataNodeLocations()
        self.block_reads = block_reads
        self.block_maps: FileCache[BlockMap] = FileCache()
        self._maps_loading: FileCache[asyncio.Task[BlockMap]] = FileCache()
        self.transfers = datatransfer.Connections()  # to DataNodes, kept between block reads

    async def close(self) -> None:
        self.transfers.close()
        await super().close()

    async def open(
        self, path: str, offset: int = 0, length: int | None = None, immutable: bool = False
    ) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes (to the end when None) from ``offset``, in chunks. A file
        that never changes once closed (``immutable``: a sealed volume) is read block by
        block from the DataNodes' data-transfer port with its block map cached
        (``datatransfer``), when ``block_reads`` is on; whatever that cannot serve, and
        every other file, through WebHDFS: straight from the DataNode the file was last
        read from when it still answers, else through the NameNode."""
        if immutable and self.block_reads:
            try:
                async with contextlib.aclosing(self._read_blocks(path, offset, length)) as blocks:
                    async for chunk in blocks:
                        offset += len(chunk)
                        length = None if length is None else length - len(chunk)
                        yield chunk
                return
            except BlockReadError as exc:
                log.info("block read of %s failed (%s); the rest through WebHDFS", path, exc)
                if length == 0:
                    return
        resp = await self._open_direct(path, offset, length)
        if resp is None:
            resp = await self._open_via_namenode(path, offset, length)
        async with resp:
            try:
                async for chunk in resp.content.iter_chunked(READ_CHUNK):
                    yield chunk
            except aiohttp.ClientError as exc:
                raise Unavailable(f"WebHDFS OPEN {path}: read failed: {exc}") from exc

    async def _read_blocks(
        self, path: str, offset: int, length: int | None
    ) -> AsyncGenerator[bytes, None]:
        """The bytes from the DataNodes' data-transfer port, one block read after another;
        ``BlockReadError`` (after the bytes it could serve) for WebHDFS to go on from."""
        blocks = await self._cached_map(path)
        end = blocks.length if length is None else min(blocks.length, offset + length)
        if not 0 <= offset < end:  # nothing to read, or past the end: WebHDFS's own answer
            raise BlockReadError(f"bytes {offset}..{end} of a file of {blocks.length}")
        for read in blocks.reads(offset, end - offset):
            if read.block_id in blocks.unserved:
                raise BlockReadError(f"block {read.block_id} had no DataNode to serve it")
            served = 0  # by replicas that failed after serving part: the next goes on from there
            for address in read.addresses:
                self.requests["block"] += 1
                rest = dataclasses.replace(
                    read, offset=read.offset + served, length=read.length - served
                )
                try:
                    async with contextlib.aclosing(
                        datatransfer.read_block(address, rest, self.transfers)
                    ) as got:
                        async for chunk in got:
                            served += len(chunk)
                            yield chunk
                    blocks.holders[read.block_id] = address
                    break
                except BlockReadError as exc:
                    log.info("DataNode %s did not serve a block of %s: %s", address, path, exc)
            else:  # every replica failed: the blocks moved, or their DataNodes went
                blocks.unserved.add(read.block_id)
                raise BlockReadError(f"no DataNode served block {read.block_id}")

    async def _cached_map(self, path: str) -> BlockMap:
        """The file's block map: the one kept, unless a block of it found no DataNode and
        it is ``MAP_RECHECK_S`` old; else asked of the NameNode, once however many reads
        of the file ask at the same time (each waits for that one answer)."""
        blocks = self.block_maps.get(path)
        if blocks is not None and not (blocks.unserved and blocks.age() > MAP_RECHECK_S):
            return blocks
        loading = self._maps_loading.get(path)
        if loading is None:
            loading = asyncio.create_task(self.block_map(path))
            self._maps_loading.put(path, loading)
            loading.add_done_callback(lambda task: self._map_loaded(path, task))
        # shielded: a reader that gives up does not cancel the answer the others wait for
        return await asyncio.shield(loading)

    def _map_loaded(self, path: str, task: asyncio.Task[BlockMap]) -> None:
        failed = task.cancelled() or task.exception() is not None  # retrieved, even if unused
        if self._maps_loading.get(path) is not task:
            return  # the file was deleted or renamed meanwhile: keep nothing of it
        self._maps_loading.forget(path)
        if not failed:
            self.block_maps.put(path, task.result())
        elif (stale := self.block_maps.get(path)) is not None:
            stale.fetched = time.monotonic()  # no answer: keep it, and ask again in a while

    async def block_map(self, path: str) -> BlockMap:
        """Where the blocks of a closed file are (``GET_BLOCK_LOCATIONS``) and how it is
        striped (``GETFILESTATUS``): two NameNode requests. ``NotFound`` for a missing
        file; ``BlockReadError`` for anything else that gives no usable map (a file still
        being written, a NameNode or gateway without the op, a map that does not add up),
        so that WebHDFS serves the read instead."""
        try:
            status = await self.get_file_status(path)
            located = (await self._json("GET", path, "GET_BLOCK_LOCATIONS"))["LocatedBlocks"]
            if located.get("isUnderConstruction") or not located.get("isLastBlockComplete", 1):
                raise BlockReadError(f"{path} is still being written")
            return BlockMap.from_json(located, status)
        except (NotFound, BlockReadError):
            raise
        except (StorageError, LookupError, TypeError, ValueError) as exc:
            raise BlockReadError(f"no block map of {path}: {exc!r}") from exc

    def _forget(self, path: str, tree: bool = False) -> None:
        """Drop what is kept of ``path`` (with ``tree``, of every file under it): a file
        deleted or renamed keeps no DataNode URL and no block map, and a map still being
        asked for is not kept when it comes."""
        for cache in (self.locations, self.block_maps, self._maps_loading):
            cache.forget(path, tree)

    async def _open_direct(
        self, path: str, offset: int, length: int | None
    ) -> aiohttp.ClientResponse | None:
        """The DataNode's answer to a read at its cached URL, or None (and the entry
        dropped) when there is none or the DataNode failed before the first byte."""
        url = self.locations.get(path)
        if url is None:
            return None
        self.requests["datanode"] += 1
        try:
            resp = await self._session.get(
                url.update_query(_range(offset, length)), allow_redirects=False
            )
        except aiohttp.ClientError as exc:  # refused, reset, timed out: gone or going
            log.info("cached DataNode for %s failed (%r); asking the NameNode", path, exc)
            self.locations.forget(path)
            return None
        if resp.status >= 300:  # 403/404/410: the file moved or the DataNode left; or worse
            log.info("cached DataNode for %s answered %d; asking the NameNode", path, resp.status)
            resp.release()
            self.locations.forget(path)
            return None
        return resp

    async def _open_via_namenode(
        self, path: str, offset: int, length: int | None
    ) -> aiohttp.ClientResponse:
        """Ask the NameNode for a DataNode (excluding each that refuses), remember it for
        the next read of this file, and return the DataNode's answer."""
        excluded: list[str] = []
        for attempt in range(DATANODE_ATTEMPTS):
            location = await self._datanode_url(
                "GET", path, "OPEN", excluded, **_range(offset, length)
            )
            self.requests["datanode"] += 1
            try:
                resp = await self._session.get(URL(location, encoded=True), allow_redirects=False)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                await self._refused(exc, "OPEN", path, location, excluded, attempt)
                continue
            except aiohttp.ClientError as exc:
                raise Unavailable(f"WebHDFS OPEN {path}: {exc}") from exc
            if resp.status >= 300:
                try:
                    await raise_for(resp, f"OPEN {path}")
                finally:
                    resp.release()
            self.locations.remember(path, location)
            return resp
        raise AssertionError("unreachable")


def _range(offset: int, length: int | None) -> dict[str, str]:
    """The query parameters of a ranged OPEN (none for a whole file)."""
    params = {"offset": str(offset)} if offset else {}
    if length is not None:
        params["length"] = str(length)
    return params
