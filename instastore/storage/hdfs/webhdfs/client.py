"""The WebHDFS REST protocol: an asyncio client on one pooled aiohttp session.

Speaks ``/webhdfs/v1/<path>?op=...``. CREATE goes in two explicit steps (the NameNode
names a DataNode with ``noredirect=true``, then the bytes go to it), so that a DataNode
that refuses the connection can be excluded and the NameNode asked again, as Hadoop's
own WebHDFS client does; reads take the same steps (``reads``). WebHDFS
``RemoteException`` bodies and connection failures become instastore's errors in one
place (``raise_for``); no raw HTTP status escapes. ``requests`` counts what was sent,
by target.

SECURITY: the bytes a DataNode URL serves become media, so a URL is followed only to a
DataNode: the NameNode's ``Location`` must name the HTTP address of a DataNode the
NameNode lists (its /jmx; the list is asked again once for an address not in it), or
one of a configured set (``hdfs_datanodes``), over the NameNode's own scheme; any other
is a ``StorageError`` and never contacted. No request follows an HTTP redirect by
itself: a DataNode that answers one is failing, not pointing elsewhere.

This module keeps nothing per file: what reads keep (``reads``) is dropped through
``_forget`` before a file is written, renamed or deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from instastore.errors import Conflict, NotFound, StorageError, Unavailable

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5, sock_connect=5, sock_read=60)
DATANODE_ATTEMPTS = 3  # DataNodes tried (excluding each that refused) before giving up
RETRY_BACKOFF_S = 0.2  # doubled after each failed attempt

Target = Literal["namenode", "datanode", "block"]
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


class WebHdfsClient:
    def __init__(
        self,
        base_url: str,
        user: str,
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
                    await raise_for(resp, f"{op} {path}")
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
                    await raise_for(resp, f"{op} {path}")
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
                        await raise_for(resp, f"CREATE {path}")
                    return body.size
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                await self._refused(
                    exc, "CREATE", path, location, excluded, attempt, can_retry=not body.started
                )
            except aiohttp.ClientError as exc:
                if body.failure is not None:  # the caller's chunks failed, not the store
                    raise body.failure from exc
                raise Unavailable(f"WebHDFS CREATE {path}: {exc}") from exc
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
        does; raise Unavailable once out of attempts or when a retry is unsafe. A
        connection that timed out reached no DataNode either (nothing was sent), but the
        node may be only slow (a JVM paused, a loaded host): asked again, not excluded."""
        if not can_retry or attempt == DATANODE_ATTEMPTS - 1:
            raise Unavailable(f"WebHDFS {op} {path}: DataNode unreachable: {exc}") from exc
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            log.warning("DataNode %s timed out %s %s; asking again", _host_port(location), op, path)
            await asyncio.sleep(RETRY_BACKOFF_S * 2**attempt)
            return
        try:
            excluded.append(await self.transfer_address(_host_port(location)))
        except Unavailable:
            excluded.append(_host_port(location))
        log.warning(
            "DataNode %s refused %s %s; asking the NameNode for another", excluded[-1], op, path
        )
        await asyncio.sleep(RETRY_BACKOFF_S * 2**attempt)

    async def close(self) -> None:
        await self._session.close()

    def _forget(self, path: str, tree: bool = False) -> None:
        """Drop what is kept of ``path`` (with ``tree``, of every file under it), before
        it is written, renamed or deleted. Nothing here: the read strategy keeps DataNode
        URLs and block maps (``reads.WebHdfs``)."""

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
                    await raise_for(resp, f"GETFILECHECKSUM {path}")
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


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


async def raise_for(resp: aiohttp.ClientResponse, what: str) -> None:
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
