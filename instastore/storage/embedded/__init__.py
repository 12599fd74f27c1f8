"""The embedded adapters: SQLite metadata and local-file blobs under ``data_dir``.

The default, so a newcomer runs the service with nothing else installed. Held to the same
contract suite as the cluster adapters.
"""

from instastore.storage.embedded.blobs import LocalBlobStore
from instastore.storage.embedded.metadata import SqliteMetadataStore

__all__ = ["LocalBlobStore", "SqliteMetadataStore"]
