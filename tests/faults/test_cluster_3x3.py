"""A 3 + 3 cluster: every node UN, 3 live DataNodes, and a replication-factor-3 keyspace
that answers QUORUM reads and writes, and keeps answering them while a Cassandra node is
SIGKILLed. Runs on the session's shared 3 + 3 cluster (``cluster3`` in conftest.py),
beside the 1 + 1 test cluster. The node comes back in tests/faults/test_cluster_faults.py,
which kills and restarts it under the service's load (and tests/cluster/test_cluster_operations.py
replaces it); starting it here again as well cost ~45 s of the suite's 30 minutes."""

from __future__ import annotations

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import SimpleStatement

from instastore.cluster import cassandra as cassandra_nodes
from instastore.cluster import hdfs, processes

pytestmark = [pytest.mark.slow, pytest.mark.cassandra, pytest.mark.hdfs, pytest.mark.timeout(900)]


def quorum(session, cql, params=()):
    return session.execute(
        SimpleStatement(cql, consistency_level=ConsistencyLevel.QUORUM), params, timeout=30
    )


def read_all(session, keys):
    """Single-partition QUORUM reads, as the service issues them (never a range scan)."""
    rows = {}
    for k in keys:
        row = quorum(session, "SELECT v FROM rf3.kv WHERE k = %s", (k,)).one()
        if row is not None:
            rows[k] = row.v
    return rows


def test_three_plus_three_survives_a_killed_cassandra_node(cluster3):
    status = cluster3.nodetool(["status"])
    assert cassandra_nodes.count_up_normal(status.stdout) == 3, status.stdout
    assert hdfs.live_datanodes_and_safemode(cluster3.namenode) == (3, False)

    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy("datacenter1"))
    )
    driver = Cluster(
        [n.address for n in cluster3.cassandra_nodes],
        port=cluster3.cql_port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    session = driver.connect()
    try:
        session.execute(
            "CREATE KEYSPACE IF NOT EXISTS rf3 WITH replication = "
            "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}"
        )
        session.execute("CREATE TABLE IF NOT EXISTS rf3.kv (k int PRIMARY KEY, v text)")
        for k in range(20):
            quorum(session, "INSERT INTO rf3.kv (k, v) VALUES (%s, %s)", (k, f"before-{k}"))

        victim = cluster3.node("cassandra2")
        cluster3.kill_node("cassandra2")
        assert not processes.is_running(victim.pid, victim.marker)
        for k in range(20, 40):
            quorum(session, "INSERT INTO rf3.kv (k, v) VALUES (%s, %s)", (k, f"during-{k}"))
        assert read_all(session, range(40)) == {
            k: f"{'before' if k < 20 else 'during'}-{k}" for k in range(40)
        }
        cluster3.start_node("cassandra2", wait=False)  # back while the next test starts
    finally:
        driver.shutdown()
