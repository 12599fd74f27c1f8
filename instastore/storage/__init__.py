"""Storage: the ports (``instastore.storage.ports``) and their adapters.

- ``embedded``: SQLite metadata and blobs as local files; the default, needs nothing installed.
- ``cassandra``: metadata in Apache Cassandra through the DataStax driver.
- ``hdfs``: blobs in HDFS through WebHDFS over aiohttp.

``open_stores(settings)`` picks the adapters from the settings. Adapters only store and
fetch; the rules (ids, visibility, soft delete, timeline, search) live in the core.
Every failure leaves this package as an ``instastore.errors`` exception.
"""

from __future__ import annotations

from typing import cast

from instastore.config import Settings
from instastore.storage.ports import BlobStore, MetadataStore, Stores


async def open_stores(settings: Settings, meter: bool = False) -> Stores:
    """Connect the metadata and blob stores the settings name (embedded by default);
    with ``meter`` every call into them is counted and timed (``storage.metered``)."""
    stores = await _open(settings)
    if not meter:
        return stores
    from instastore.storage.metered import metered

    return Stores.over(metered(cast(MetadataStore, stores.metadata)), metered(stores.blobs))


async def _open(settings: Settings) -> Stores:
    if settings.uses_cluster:
        from instastore.storage.cassandra import CassandraMetadataStore
        from instastore.storage.hdfs import HdfsBlobStore

        metadata: MetadataStore = await CassandraMetadataStore.connect(settings)
        try:
            blobs: BlobStore = await HdfsBlobStore.connect(settings)
        except BaseException:
            await metadata.close()
            raise
        return Stores.over(metadata, blobs)
    from instastore.storage.embedded import LocalBlobStore, SqliteMetadataStore

    metadata = await SqliteMetadataStore.connect(settings)
    blobs = await LocalBlobStore.connect(settings)
    return Stores.over(metadata, blobs)
