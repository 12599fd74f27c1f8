"""The Cassandra metadata adapter (DataStax cassandra-driver)."""

from instastore.storage.cassandra.metadata import CassandraMetadataStore

__all__ = ["CassandraMetadataStore"]
