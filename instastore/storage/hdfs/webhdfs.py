"""An asyncio WebHDFS client on one pooled aiohttp session.

Speaks ``/webhdfs/v1/<path>?op=...``; translates WebHDFS ``RemoteException`` bodies and
connection failures into instastore's errors in one place (``_raise_for``), so no raw
HTTP status escapes.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from instastore.errors import Conflict, NotFound, StorageError, Unavailable

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5, sock_read=60)

_EXCEPTIONS: dict[str, type[Exception]] = {
    "FileNotFoundException": NotFound,
    "FileAlreadyExistsException": Conflict,
    "SafeModeException": Unavailable,
    "RetriableException": Unavailable,
    "StandbyException": Unavailable,
}


class WebHdfs:
    def __init__(self, base_url: str, user: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.user = user
        self._session = aiohttp.ClientSession(timeout=TIMEOUT, connector=aiohttp.TCPConnector(limit=64))

    def url(self, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"WebHDFS paths are absolute, not {path!r}")
        return f"{self.base_url}/webhdfs/v1{path}"

    def params(self, op: str, **extra: Any) -> dict[str, str]:
        params = {"op": op, "user.name": self.user}
        params.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in extra.items()})
        return params

    async def get_file_status(self, path: str) -> dict:
        body = await self._json("GET", path, "GETFILESTATUS")
        return body["FileStatus"]

    async def _json(self, method: str, path: str, op: str, **extra: Any) -> dict:
        try:
            async with self._session.request(method, self.url(path), params=self.params(op, **extra)) as resp:
                if resp.status >= 400:
                    await _raise_for(resp, f"{op} {path}")
                return await resp.json()
        except aiohttp.ClientError as exc:
            raise Unavailable(f"WebHDFS {op} {path}: {exc}") from exc

    async def close(self) -> None:
        await self._session.close()


async def _raise_for(resp: aiohttp.ClientResponse, what: str) -> None:
    try:
        body = await resp.json(content_type=None)
        remote = body.get("RemoteException", {})
    except (ValueError, aiohttp.ContentTypeError):
        remote = {}
    name = remote.get("exception", "")
    message = remote.get("message") or resp.reason or ""
    error = _EXCEPTIONS.get(name)
    if error is None:
        error = Unavailable if resp.status >= 500 else StorageError
    raise error(f"WebHDFS {what}: {resp.status} {name}: {message}".rstrip(": "))
