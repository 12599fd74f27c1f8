"""The storage ports: what the core asks of a metadata store and of a blob store.

Both adapters (embedded, cluster) implement these and are held to them by one contract
suite (``tests/contract``). Every method is a coroutine and never blocks the event loop.
Failures are ``instastore.errors`` exceptions: ``Unavailable`` when the store cannot be
reached (retry later), ``NotFound``, ``Conflict``; never a driver's or WebHDFS's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class MetadataStore(Protocol):
    """Users, photo records and their index rows (user photos, follows, title terms, likes)."""

    name: str

    async def ping(self) -> None:
        """Return when the store answers a trivial query; raise ``Unavailable`` if not."""

    async def close(self) -> None:
        """Release connections and threads. Idempotent."""


class BlobStore(Protocol):
    """Immutable byte blobs addressed by an opaque locator."""

    name: str

    async def ping(self) -> None:
        """Return when the store answers; raise ``Unavailable`` if not."""

    async def close(self) -> None:
        """Release connections. Idempotent."""


@dataclass
class Stores:
    metadata: MetadataStore
    blobs: BlobStore

    async def ping(self) -> dict[str, str]:
        """Ping both stores; map each store's name to "ok" or the reason it is not."""
        from instastore.errors import InstastoreError

        report = {}
        for store in (self.metadata, self.blobs):
            try:
                await store.ping()
                report[store.name] = "ok"
            except InstastoreError as exc:
                report[store.name] = str(exc)
        return report

    async def close(self) -> None:
        try:
            await self.blobs.close()
        finally:
            await self.metadata.close()
