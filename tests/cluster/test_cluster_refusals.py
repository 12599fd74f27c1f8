"""What `instastore cluster add|remove|replace` refuse, before changing anything: removing
the last node or going below the replication factor or the erasure-coding width,
replacing a node that runs, removing the NameNode or a node that is not there. On the
local 1 + 1 cluster, which stays as it was (its state file unchanged)."""

from __future__ import annotations

import pytest

from instastore.cluster import LocalCluster, operations
from instastore.errors import ClusterError

pytestmark = [pytest.mark.cassandra, pytest.mark.hdfs]


@pytest.fixture
def unchanged(local_cluster):
    """The local cluster, checked to be exactly as it was after the test."""
    before = local_cluster.state_file.read_text()
    yield local_cluster
    assert local_cluster.state_file.read_text() == before
    assert len(local_cluster.running()) == len(local_cluster.daemons())


@pytest.mark.parametrize(
    ("operation", "name", "refusal"),
    [
        (operations.remove, "cassandra1", "the last Cassandra node"),
        (operations.remove, "datanode1", r"leaves 0 live DataNode\(s\)"),
        (operations.remove, "namenode", "the NameNode cannot be removed"),
        (operations.remove, "cassandra9", "no node named 'cassandra9'"),
        (operations.replace, "cassandra1", "cassandra1 is running: replace is for a dead node"),
        (operations.replace, "datanode1", "datanode1 is not a Cassandra node"),
    ],
)
def test_refused_with_the_reason(unchanged: LocalCluster, operation, name, refusal):
    lines: list[str] = []
    with pytest.raises(ClusterError, match=refusal):
        operation(unchanged, name, progress=lines.append)
    assert not lines  # refused before it began


def test_the_cli_says_why_and_exits_1(unchanged: LocalCluster, capsys):
    from instastore.cli import main

    assert main(["cluster", "--dir", str(unchanged.root), "remove", "datanode1"]) == 1
    assert "add a DataNode first" in capsys.readouterr().err


def test_replication_factors_and_states_are_read_from_nodetool():
    from instastore.cluster.cassandra import replication_factors, states

    described = """Keyspaces:
	system_auth -> Replication class: SimpleStrategy {replication_factor=1}
	system_schema -> Replication class: LocalStrategy {}
	photos -> Replication class: NetworkTopologyStrategy {datacenter1=3, dc2=2}
"""
    assert replication_factors(described) == {"system_auth": 1, "photos": 5}
    status = (
        "UN  127.0.0.11  30 KiB  1  100.0%  id  rack1\nDN  127.0.0.12  ?  1  100.0%  id  rack1\n"
    )
    assert states(status) == {"127.0.0.11": "UN", "127.0.0.12": "DN"}


def test_a_joining_node_takes_the_middle_of_the_widest_range():
    from instastore.cluster.cassandra import MIN_TOKEN, initial_token, token_between

    three = [initial_token(i, 3) for i in (1, 2, 3)]
    widest = 2**64 - (three[2] - three[0])  # from node 3 round to node 1: 1 token wider
    assert token_between(three) == three[2] + widest // 2
    assert token_between(list(reversed(three))) == three[2] + widest // 2
    assert token_between([MIN_TOKEN]) == 0  # one node: the far side of the ring
    assert token_between([-100, 100]) == MIN_TOKEN  # the wrap-around range is the widest
    assert token_between([]) == MIN_TOKEN
