"""The Cassandra that the cluster command starts is real: the DataStax driver creates a
keyspace and a table, writes a row and reads it back."""

from __future__ import annotations

import logging
import uuid

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import Cluster
from cassandra.query import SimpleStatement

pytestmark = pytest.mark.cassandra


@pytest.fixture
def cql(local_cluster):
    cluster = Cluster(
        [n.address for n in local_cluster.cassandra_nodes],
        port=local_cluster.cql_port,
        protocol_version=5,
    )
    session = cluster.connect()
    yield session
    cluster.shutdown()


def test_keyspace_table_write_and_read(cql):
    keyspace = f"realcheck_{uuid.uuid4().hex[:8]}"
    cql.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}}"
    )
    try:
        cql.execute(f"CREATE TABLE {keyspace}.notes (id int PRIMARY KEY, body text, data blob)")
        cql.execute(
            f"INSERT INTO {keyspace}.notes (id, body, data) VALUES (%s, %s, %s)",
            (7, "hello", b"\x00\xff"),
        )
        read = SimpleStatement(
            f"SELECT body, data FROM {keyspace}.notes WHERE id = %s",
            consistency_level=ConsistencyLevel.QUORUM,
        )
        row = cql.execute(read, (7,)).one()
        assert (row.body, row.data) == ("hello", b"\x00\xff")
        version = cql.execute("SELECT release_version FROM system.local").one().release_version
        assert version.startswith("5.0")
    finally:
        cql.execute(f"DROP KEYSPACE {keyspace}", timeout=120)  # schema agreement


def test_rows_are_named_tuples_of_one_class_per_column_list(local_cluster, cluster_settings):
    """``build_cluster``'s row factory: rows read as the driver's default gives them (by
    name, by index, ``[applied]`` as ``applied``), but the class of a column list is made
    once, not per result."""
    from instastore.storage.cassandra.session import build_cluster

    driver = build_cluster(cluster_settings)
    session = driver.connect(cluster_settings.cassandra_keyspace)
    try:
        name = f"realcheck-{uuid.uuid4().hex[:8]}"
        insert = "INSERT INTO server_keys (name, secret) VALUES (%s, %s) IF NOT EXISTS"
        (first,) = session.execute(insert, (name, b"one"))
        (second,) = session.execute(insert, (name, b"two"))
        assert (first.applied, first[0]) == (True, True)
        assert (second.applied, second.secret, second[2]) == (False, b"one", b"one")
        select = "SELECT name, secret FROM server_keys WHERE name = %s"
        (a,), (b,) = session.execute(select, (name,)), session.execute(select, (name,))
        assert (a.name, a.secret, tuple(a)) == (name, b"one", (name, b"one"))
        assert type(a) is type(b)
        session.execute("DELETE FROM server_keys WHERE name = %s", (name,))
    finally:
        driver.shutdown()


async def test_the_store_prepares_its_statements_with_no_server_warning(cluster_settings, caplog):
    """Cassandra 5 warns of a statement prepared under ``USE <keyspace>`` (an
    anti-pattern: its table is ambiguous); the adapter names each table in its keyspace."""
    from instastore.storage.cassandra.metadata import CassandraMetadataStore

    with caplog.at_level(logging.WARNING, logger="cassandra"):
        store = await CassandraMetadataStore.connect(cluster_settings)
        try:
            assert await store.server_key("warning-check", b"x") == b"x"
        finally:
            await store.close()
    assert "Server warning" not in caplog.text, caplog.text[-2000:]
