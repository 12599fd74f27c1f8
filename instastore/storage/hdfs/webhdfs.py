"""An asyncio WebHDFS client on one pooled aiohttp session.

Speaks ``/webhdfs/v1/<path>?op=...``. CREATE and OPEN go in two explicit steps (the
NameNode names a DataNode with ``noredirect=true``, then the bytes go to or come from it),
so that a DataNode that refuses the connection can be excluded and the NameNode asked
again, as Hadoop's own WebHDFS client does. WebHDFS ``RemoteException`` bodies and
connection failures become instastore's errors in one place (``_raise_for``); no raw
HTTP status escapes.

Reads skip the NameNode once a file was read: the OPEN redirect names a DataNode URL
(with ``namenoderpcaddress``) that serves any ``offset``/``length`` of the file, so it is
kept per file (``DataNodeLocations``, bounded) and called directly. The DataNode opens
the file by its path, so a cached URL never serves another file's bytes: a file that
was deleted answers 404 there, one replaced under the same path reads as the new file.
When the direct read fails before its first byte (the DataNode is gone: refused or
reset; or it answers 403, 404, 410 or any other error), the entry is dropped and the
NameNode asked, as on a first read. ``requests`` counts what was sent, by target.

SECURITY: the bytes a DataNode URL serves become media, so a URL is followed only to a
DataNode: the NameNode's ``Location`` must name the HTTP address of a DataNode the
NameNode lists (its /jmx; the list is asked again once for an address not in it), or
one of a configured set (``hdfs_datanodes``), over the NameNode's own scheme; any other
is a ``StorageError`` and never contacted. No request follows an HTTP redirect by
itself: a DataNode that answers one is failing, not pointing elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from instastore.errors import Conflict, NotFound, StorageError, Unavailable
from instastore.storage.hdfs import datatransfer
from instastore.storage.hdfs.datatransfer import BlockMap, BlockReadError

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5, sock_connect=5, sock_read=60)
READ_CHUNK = 256 * 1024  # bytes per chunk handed to the caller when streaming a read
DATANODE_ATTEMPTS = 3  # DataNodes tried (excluding each that refused) before giving up
RETRY_BACKOFF_S = 0.2  # doubled after each failed attempt
# Files whose DataNode URL is kept for direct reads (least recently read dropped first):
# ~300 bytes each, so ~3 MB; enough for every volume a process reads from.
LOCATION_CACHE_FILES = 10_000
# A block map no DataNode of which served a block is asked for again only once it is this
# old: until then that block's reads go to WebHDFS (whose DataNode rebuilds a missing
# cell), and a volume with a dead DataNode costs the NameNode two requests a minute or
# so per process, not two per read.
MAP_RECHECK_S = 30.0
RANGE_PARAMS = ("offset", "length")  # what a cached DataNode URL gets per read

Target = Literal["namenode", "datanode", "block"]
V = TypeVar("V")
Json = dict[str, Any]  # a WebHDFS JSON object

_EXCEPTIONS: dict[str, type[Exception]] = {
    "FileNotFoundException": NotFound,
    "FileAlreadyExistsException": Conflict,
    "PathIsNotEmptyDirectoryException": Conflict,  # a non-recursive DELETE of a folder in use
    "SafeModeException": Unavailable,
    "RetriableException": Unavailable,
    "StandbyException": Unavailable,
    # A DataNode whose own connection to the NameNode broke (a NameNode restart) answers
    # with the Java network exception: transient, so retry later.
    "EOFException": Unavailable,
    "ConnectException": Unavailable,
    "SocketException": Unavailable,
    "SocketTimeoutException": Unavailable,
    "NoRouteToHostException": Unavailable,
    "NotReplicatedYetException": Unavailable,
}


# IOExceptions that mean "not yet", not "never": right after a NameNode restart it knows
# a file but not where its blocks are until the DataNodes report them again.
# And until a DataNode has registered, the NameNode has nowhere to put a new block: the
# NameNode step of CREATE (or APPEND) says "Failed to find datanode", adding a block says
# "could only be written to 0 of the 1 minReplication nodes".
_TRANSIENT_MESSAGES = (
    "No active and not excluded nodes contain this block",
    "Could not obtain block",
    "BlockMissingException",
    "Failed to find datanode",
    "minReplication nodes",
    "NotReplicatedYetException",
    "Cannot obtain block length",
)


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


class WebHdfs:
    def __init__(
        self,
        base_url: str,
        user: str,
        block_reads: bool = True,
        datanodes: frozenset[str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.user = user
        # The DataNode HTTP addresses (host:port) a Location may name: these when given,
        # else those the NameNode lists (``_transfer_addresses``' keys).
        self.datanodes = datanodes
        self._session = aiohttp.ClientSession(
            timeout=TIMEOUT, connector=aiohttp.TCPConnector(limit=64)
        )
        self.locations = DataNodeLocations()
        self.block_reads = block_reads
        self.block_maps: FileCache[BlockMap] = FileCache()
        self._maps_loading: FileCache[asyncio.Task[BlockMap]] = FileCache()
        self.transfers = datatransfer.Connections()  # to DataNodes, kept between block reads
        self._transfer_addresses: dict[str, str] = {}  # DataNode HTTP -> transfer address
        # Requests sent, by target (a metric for tests and benchmarks, not a mock).
        self.requests: Counter[Target] = Counter()

    def url(self, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"WebHDFS paths are absolute, not {path!r}")
        return f"{self.base_url}/webhdfs/v1{path}"

    def params(self, op: str, **extra: Any) -> dict[str, str]:
        params = {"op": op, "user.name": self.user}
        for key, value in extra.items():
            if value is not None:
                params[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return params

    # ---- metadata operations --------------------------------------------------------

    async def get_file_status(self, path: str) -> Json:
        status: Json = (await self._json("GET", path, "GETFILESTATUS"))["FileStatus"]
        return status

    async def list_status(self, path: str) -> list[Json]:
        statuses: list[Json] = (await self._json("GET", path, "LISTSTATUS"))["FileStatuses"][
            "FileStatus"
        ]
        return statuses

    async def iter_status(self, path: str) -> AsyncIterator[Json]:
        """The entries of a folder, a page at a time (LISTSTATUS_BATCH: a folder of a
        million files is never one response)."""
        after = None
        while True:
            # The parameter is "startafter": WebHDFS ignores "startAfter" and answers the first
            # page again (dfs.ls.limit entries, 1,000), so a larger folder never ended.
            listing = (await self._json("GET", path, "LISTSTATUS_BATCH", startafter=after))[
                "DirectoryListing"
            ]
            statuses = listing["partialListing"]["FileStatuses"]["FileStatus"]
            for status in statuses:
                yield status
            if not listing.get("remainingEntries") or not statuses:
                return
            after = statuses[-1]["pathSuffix"]

    async def content_summary(self, path: str) -> Json:
        """GETCONTENTSUMMARY: the NameNode's count of files (fileCount) and folders
        (directoryCount, ``path`` included) under ``path``, their bytes (length) and the
        raw bytes they take on the DataNodes (spaceConsumed: replicas and parity)."""
        summary: Json = (await self._json("GET", path, "GETCONTENTSUMMARY"))["ContentSummary"]
        return summary

    async def namesystem(self) -> Json:
        """The NameNode's FSNamesystem bean (FilesTotal: files and folders; BlocksTotal)."""
        return await self._jmx("FSNamesystem")

    async def mkdirs(self, path: str) -> bool:
        return bool((await self._json("PUT", path, "MKDIRS"))["boolean"])

    async def rename(self, path: str, destination: str) -> bool:
        """Move ``path`` to ``destination`` (atomic on the NameNode). False, not an error,
        when the destination exists or its folder is missing."""
        self._forget(path, tree=True)
        self._forget(destination, tree=True)
        return bool((await self._json("PUT", path, "RENAME", destination=destination))["boolean"])

    async def touch(self, path: str) -> None:
        """Set the file's modification time to now (SETTIMES; works on a file still being
        written, whose own modification time stays at its creation until it is closed)."""
        now_ms = int(time.time() * 1000)
        await self._json("PUT", path, "SETTIMES", modificationtime=now_ms, accesstime=-1)

    async def get_ec_policy(self, path: str) -> str | None:
        """The erasure-coding policy files created under ``path`` get, or None when they
        are replicated (GETECPOLICY answers ``null`` then)."""
        body: Json | None = await self._json("GET", path, "GETECPOLICY")
        name = (body or {}).get("name")
        return None if name in (None, "replication") else str(name)

    async def set_ec_policy(self, path: str, policy: str) -> None:
        """Make new files under the folder ``path`` erasure-coded with ``policy`` (which
        must be enabled on the cluster: ``hdfs ec -enablePolicy``)."""
        await self._json("PUT", path, "SETECPOLICY", ecpolicy=policy)

    async def namenode_state(self) -> tuple[int, bool]:
        """(live DataNodes, safe mode on), from the NameNode's /jmx on the WebHDFS port."""
        state = await self._jmx("FSNamesystemState")
        return int(state.get("NumLiveDataNodes", 0)), state.get("FSState") != "Operational"

    async def transfer_address(self, http_address: str) -> str:
        """The data-transfer address (``host:port``, what ``excludedatanodes`` names) of
        the DataNode whose HTTP server is at ``http_address``, from the NameNode's list
        of DataNodes; ``http_address`` itself when the NameNode does not list it."""
        if http_address not in self._transfer_addresses:
            await self._list_datanodes()
        return self._transfer_addresses.get(http_address, http_address)

    async def _list_datanodes(self) -> None:
        """Ask the NameNode for its DataNodes: each one's HTTP address, by IP and by the
        host name it registered with (what a redirect names), to its transfer address."""
        nodes: dict[str, Json] = {}
        info = await self._jmx("NameNodeInfo")
        for key in ("LiveNodes", "DeadNodes"):
            nodes |= json.loads(info.get(key) or "{}")
        addresses = {}
        for name, node in nodes.items():
            if "infoAddr" in node and "xferaddr" in node:
                port = node["infoAddr"].rpartition(":")[2]
                addresses[node["infoAddr"]] = node["xferaddr"]
                addresses[f"{name.rpartition(':')[0]}:{port}"] = node["xferaddr"]
        self._transfer_addresses = addresses

    async def _checked_location(self, location: str, what: str) -> str:
        """``location`` if it names a DataNode's HTTP server (see the module docstring);
        else ``StorageError``, and nothing is sent there."""
        # SECURITY: a Location elsewhere would be fetched and its answer served as media.
        try:
            url = URL(location, encoded=True)
            address = f"{url.host}:{url.port}"
            scheme_ok = url.scheme == URL(self.base_url).scheme and bool(url.host)
        except ValueError:
            scheme_ok, address = False, ""
        if scheme_ok:
            if self.datanodes is not None:
                if address in self.datanodes:
                    return location
            else:
                if address not in self._transfer_addresses:
                    await self._list_datanodes()
                if address in self._transfer_addresses:
                    return location
        raise StorageError(f"WebHDFS {what}: redirected to {location[:200]!r}, not a DataNode")

    async def _jmx(self, bean: str) -> Json:
        """One bean of the NameNode's /jmx (on the WebHDFS port)."""
        query = {"qry": f"Hadoop:service=NameNode,name={bean}"}
        self.requests["namenode"] += 1
        try:
            async with self._session.get(
                f"{self.base_url}/jmx", params=query, allow_redirects=False
            ) as resp:
                if resp.status >= 300:
                    raise Unavailable(f"WebHDFS NameNode /jmx: {resp.status} {resp.reason}")
                beans = (await resp.json(content_type=None)).get("beans") or [{}]
        except (aiohttp.ClientError, ValueError) as exc:
            raise Unavailable(f"WebHDFS NameNode /jmx: {exc}") from exc
        state: Json = beans[0]
        return state

    async def allow_snapshot(self, path: str) -> None:
        """Make ``path`` snapshottable (an HDFS superuser's right; idempotent)."""
        await self._json("PUT", path, "ALLOWSNAPSHOT")

    async def create_snapshot(self, path: str, name: str) -> str:
        """Snapshot the folder ``path`` as ``name``; return the snapshot's path."""
        made: str = (await self._json("PUT", path, "CREATESNAPSHOT", snapshotname=name))["Path"]
        return made

    async def delete_snapshot(self, path: str, name: str) -> None:
        await self._json("DELETE", path, "DELETESNAPSHOT", snapshotname=name)

    async def snapshots(self, path: str) -> list[Json]:
        """The snapshots of the folder ``path`` (each a FileStatus of ``.snapshot``), or
        an empty list when it is not snapshottable."""
        try:
            return await self.list_status(f"{path.rstrip('/')}/.snapshot")
        except NotFound:  # no such folder
            return []
        except StorageError as exc:
            if "not a snapshottable directory" in str(exc):
                return []
            raise

    async def delete(self, path: str, recursive: bool = False) -> bool:
        """True if something was deleted; False if there was nothing (WebHDFS answers
        200 with ``false`` then, not an error)."""
        self._forget(path, tree=recursive)
        return bool((await self._json("DELETE", path, "DELETE", recursive=recursive))["boolean"])

    async def _json(self, method: str, path: str, op: str, **extra: Any) -> Json:
        self.requests["namenode"] += 1
        try:
            async with self._session.request(
                method, self.url(path), params=self.params(op, **extra), allow_redirects=False
            ) as resp:
                if resp.status >= 300:
                    await _raise_for(resp, f"{op} {path}")
                body: Json = await resp.json(content_type=None)  # SETECPOLICY: empty
                return body
        except aiohttp.ClientError as exc:
            raise Unavailable(f"WebHDFS {op} {path}: {exc}") from exc

    # ---- data operations --------------------------------------------------------------

    async def _datanode_url(
        self, method: str, path: str, op: str, excluded: list[str], **extra: Any
    ) -> str:
        params = self.params(
            op, noredirect=True, excludedatanodes=",".join(excluded) or None, **extra
        )
        self.requests["namenode"] += 1
        try:
            async with self._session.request(
                method, self.url(path), params=params, allow_redirects=False
            ) as resp:
                if resp.status >= 300:
                    await _raise_for(resp, f"{op} {path}")
                location = str((await resp.json())["Location"])
        except aiohttp.ClientError as exc:
            raise Unavailable(f"WebHDFS {op} {path} (NameNode): {exc}") from exc
        return await self._checked_location(location, f"{op} {path}")

    async def create(
        self,
        path: str,
        chunks: AsyncIterable[bytes],
        replication: int | None = None,
        block_size: int | None = None,
    ) -> int:
        """Write a new file from the chunks (never overwriting: ``Conflict`` if it
        exists), in blocks of ``block_size`` bytes (the cluster's dfs.blocksize when
        None); return its size. Returns once the DataNodes acknowledged the closed file."""
        body = _CountingBody(chunks)
        excluded: list[str] = []
        self._forget(path)
        for attempt in range(DATANODE_ATTEMPTS):
            location = await self._datanode_url(
                "PUT",
                path,
                "CREATE",
                excluded,
                overwrite=False,
                replication=replication,
                blocksize=block_size,
            )
            self.requests["datanode"] += 1
            try:
                async with self._session.put(
                    location,
                    data=body.stream(),
                    headers={"Content-Type": "application/octet-stream"},
                    allow_redirects=False,
                ) as resp:
                    if resp.status >= 300:
                        await _raise_for(resp, f"CREATE {path}")
                    return body.size
            except aiohttp.ClientConnectorError as exc:
                await self._refused(
                    exc, "CREATE", path, location, excluded, attempt, can_retry=not body.started
                )
            except aiohttp.ClientError as exc:
                if body.failure is not None:  # the caller's chunks failed, not the store
                    raise body.failure from exc
                raise Unavailable(f"WebHDFS CREATE {path}: {exc}") from exc
        raise AssertionError("unreachable")

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
            except aiohttp.ClientConnectorError as exc:
                await self._refused(exc, "OPEN", path, location, excluded, attempt)
                continue
            except aiohttp.ClientError as exc:
                raise Unavailable(f"WebHDFS OPEN {path}: {exc}") from exc
            if resp.status >= 300:
                try:
                    await _raise_for(resp, f"OPEN {path}")
                finally:
                    resp.release()
            self.locations.remember(path, location)
            return resp
        raise AssertionError("unreachable")

    async def _refused(
        self,
        exc: Exception,
        op: str,
        path: str,
        location: str,
        excluded: list[str],
        attempt: int,
        can_retry: bool = True,
    ) -> None:
        """A DataNode refused the connection (right after it died the NameNode still
        names it): exclude it (by its transfer address: the NameNode ignores any other)
        and back off before asking the NameNode again, as Hadoop's own WebHDFS client
        does; raise Unavailable once out of attempts or when a retry is unsafe."""
        if not can_retry or attempt == DATANODE_ATTEMPTS - 1:
            raise Unavailable(f"WebHDFS {op} {path}: DataNode unreachable: {exc}") from exc
        try:
            excluded.append(await self.transfer_address(_host_port(location)))
        except Unavailable:
            excluded.append(_host_port(location))
        log.warning(
            "DataNode %s refused %s %s; asking the NameNode for another", excluded[-1], op, path
        )
        await asyncio.sleep(RETRY_BACKOFF_S * 2**attempt)

    async def close(self) -> None:
        self.transfers.close()
        await self._session.close()

    async def file_checksum(self, path: str) -> Json:
        """GETFILECHECKSUM (``algorithm``, ``bytes``, ``length``): an MD5 of the MD5s of
        each block's CRCs, which the DataNodes compute from the checksums they keep, not
        by reading the data. Two files' checksums agree when their bytes do and their
        layouts (block size, bytes per CRC, erasure coding) are the same."""
        location = await self._datanode_url("GET", path, "GETFILECHECKSUM", [])
        self.requests["datanode"] += 1
        try:
            async with self._session.get(
                URL(location, encoded=True), allow_redirects=False
            ) as resp:
                if resp.status >= 300:
                    await _raise_for(resp, f"GETFILECHECKSUM {path}")
                checksum: Json = (await resp.json(content_type=None))["FileChecksum"]
                return checksum
        except aiohttp.ClientError as exc:
            raise Unavailable(f"WebHDFS GETFILECHECKSUM {path}: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"WebHDFS GETFILECHECKSUM {path}: not a checksum: {exc}") from exc


class _CountingBody:
    """Wraps the caller's chunks: counts bytes, remembers whether any were consumed (a
    retry is only safe before the first chunk left) and what they raised (aiohttp wraps
    it in a connection error; it is the caller's, and goes back to the caller as is)."""

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = chunks
        self.size = 0
        self.started = False
        self.failure: Exception | None = None  # what the caller's chunks raised, if anything

    async def stream(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks:
                self.started = True
                self.size += len(chunk)
                yield chunk
        except Exception as exc:
            self.failure = exc
            raise


def _range(offset: int, length: int | None) -> dict[str, str]:
    """The query parameters of a ranged OPEN (none for a whole file)."""
    params = {"offset": str(offset)} if offset else {}
    if length is not None:
        params["length"] = str(length)
    return params


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


async def _raise_for(resp: aiohttp.ClientResponse, what: str) -> None:
    try:
        body = await resp.json(content_type=None)
        remote = body.get("RemoteException", {}) if isinstance(body, dict) else {}
    except (ValueError, aiohttp.ContentTypeError):
        remote = {}
    name = remote.get("exception", "")
    message = remote.get("message") or resp.reason or ""
    error = _EXCEPTIONS.get(name)
    if error is None and any(hint in message for hint in _TRANSIENT_MESSAGES):
        error = Unavailable
    if error is None:
        error = Unavailable if resp.status >= 500 else StorageError
    raise error(f"WebHDFS {what}: {resp.status} {name}: {message}")
