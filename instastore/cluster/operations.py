"""Growing, shrinking and mending a running local cluster, as an operator of Cassandra and
HDFS does it (docs/OPERATIONS.md, "Adding, removing and replacing nodes"):

- ``add_cassandra``: a new node bootstraps (streams its ranges) with the token in the
  middle of the widest range; once it is UN every other node runs ``nodetool cleanup``.
- ``add_datanode``: a new DataNode registers; the balancer then runs.
- ``remove``: a Cassandra node leaves with ``nodetool decommission`` (it streams its
  ranges to the others first); a DataNode is put in the NameNode's exclude file and
  ``dfsadmin -refreshNodes`` run, and it is stopped once the NameNode reports it
  Decommissioned (every block it held copied or rebuilt elsewhere).
- ``replace``: a dead Cassandra node's ranges go to a new node started with
  ``-Dcassandra.replace_address_first_boot``.
- ``repair``: ``nodetool repair -pr -full`` on every node, one after the other.

Each refuses, before changing anything, what would lose data or cannot finish: removing a
Cassandra node below a keyspace's replication factor, or a DataNode below the replication
or erasure-coding width, or any node while another one is down.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from instastore.cluster import cassandra, hdfs, processes
from instastore.cluster.cassandra import CassandraNode
from instastore.cluster.hdfs import HdfsDaemon
from instastore.cluster.manager import SEALED_VOLUMES, LocalCluster
from instastore.errors import ClusterError
from instastore.storage.hdfs import erasure

JOIN_TIMEOUT_S = 900.0  # a bootstrap or replacement streams every range the node takes
DECOMMISSION_TIMEOUT_S = 1800.0
REPORT_EVERY_S = 10.0
POLL_S = 1.0
CLUSTER_NAME = "instastore-local"

Progress = Callable[[str], None]


def _quiet(line: str) -> None:
    pass


# ---- Cassandra ------------------------------------------------------------------------


def add_cassandra(cluster: LocalCluster, progress: Progress = _quiet) -> CassandraNode:
    """Bootstrap one more Cassandra node into the running ring; return it once it is UN
    and the other nodes have dropped the ranges they gave it (cleanup)."""
    others = _whole_ring(cluster, "add a node")
    assert cluster.spec is not None
    token = cassandra.token_between([_token(cluster, n) for n in others])
    node = cassandra.plan_node(
        max(n.index for n in others) + 1,
        cluster.spec.first_address,
        cluster.spec.port_offset,
        cluster.root,
        token,
    )
    _join(cluster, node, others, progress, f"bootstrapping {node.name} ({node.address})")

    def cleanup(other: CassandraNode) -> None:
        started = time.monotonic()
        _nodetool(cluster, ["cleanup"], other, DECOMMISSION_TIMEOUT_S)
        progress(f"nodetool cleanup on {other.name}: {time.monotonic() - started:.0f} s")

    # Each node drops only the ranges it no longer owns, from its own disk: the nodes
    # clean up at once (a local cluster; a production ring staggers them, OPERATIONS.md).
    with ThreadPoolExecutor(max_workers=len(others)) as pool:
        list(pool.map(cleanup, others))  # the first failure is raised here
    return node


def replace(cluster: LocalCluster, name: str, progress: Progress = _quiet) -> CassandraNode:
    """Give a dead Cassandra node's ranges to a new node (its data streamed from the
    replicas); return the new node once it is UN."""
    dead = _cassandra_node(cluster, name)
    if processes.is_running(dead.pid, dead.marker):
        raise ClusterError(
            f"{name} is running: replace is for a dead node; `instastore cluster remove {name}` "
            "takes a live one out"
        )
    others = [n for n in cluster.cassandra_nodes if n is not dead]
    if not others:
        raise ClusterError(f"{name} is the only Cassandra node: there is nothing to stream from")
    _wait_for(
        cluster,
        lambda: _states(cluster, others).get(dead.address) == "DN" or None,
        60.0,
        f"the other nodes to see {name} down",
        progress,
    )
    down = [n.name for n in others if _states(cluster, others).get(n.address) != "UN"]
    if down:
        raise ClusterError(f"{', '.join(down)} not UN as well: start them before replacing {name}")
    assert cluster.spec is not None
    node = cassandra.plan_node(
        max(n.index for n in cluster.cassandra_nodes) + 1,
        cluster.spec.first_address,
        cluster.spec.port_offset,
        cluster.root,
        _token(cluster, dead),
    )
    node.replace_address = dead.address
    cluster.cassandra_nodes.remove(dead)
    _join(cluster, node, others, progress, f"{node.name} ({node.address}) replacing {name}")
    node.replace_address = None
    cluster.save()
    shutil.rmtree(dead.path, ignore_errors=True)
    return node


def repair(cluster: LocalCluster, progress: Progress = _quiet) -> None:
    """A full repair of every node's primary ranges, node after node."""
    nodes = _whole_ring(cluster, "repair")
    for node in nodes:
        started = time.monotonic()
        _nodetool(
            cluster,
            ["repair", "-pr", "-full", "--ignore-unreplicated-keyspaces"],
            node,
            DECOMMISSION_TIMEOUT_S,
        )
        progress(f"repaired the primary ranges of {node.name}: {time.monotonic() - started:.0f} s")


def _remove_cassandra(cluster: LocalCluster, node: CassandraNode, progress: Progress) -> None:
    if not processes.is_running(node.pid, node.marker):
        raise ClusterError(
            f"{node.name} is down: a node leaves with its data only while it runs; start it, "
            f"or `instastore cluster replace {node.name}`"
        )
    nodes = _whole_ring(cluster, f"remove {node.name}")
    left = len(nodes) - 1
    if not left:
        raise ClusterError(f"{node.name} is the last Cassandra node: every record lives there")
    described = _nodetool(cluster, ["describecluster"], node).stdout
    for keyspace, factor in sorted(cassandra.replication_factors(described).items()):
        if factor > left and not keyspace.startswith("system"):
            raise ClusterError(
                f"removing {node.name} leaves {left} Cassandra node(s), but keyspace {keyspace} "
                f"keeps {factor} replicas of each row: add a node first"
            )
    progress(f"decommissioning {node.name}: it streams its ranges to the others")
    started = time.monotonic()
    _nodetool(cluster, ["decommission"], node, DECOMMISSION_TIMEOUT_S)
    progress(f"{node.name} left the ring in {time.monotonic() - started:.0f} s")
    cluster.stop_nodes([node.name])
    cluster.cassandra_nodes.remove(node)
    cluster.save()
    shutil.rmtree(node.path, ignore_errors=True)


def _join(
    cluster: LocalCluster,
    node: CassandraNode,
    seeds: list[CassandraNode],
    progress: Progress,
    what: str,
) -> None:
    processes.require_free_ports(
        [
            (node.address, node.cql_port, f"{node.name} CQL"),
            (node.address, node.storage_port, f"{node.name} storage"),
            ("127.0.0.1", node.jmx_port, f"{node.name} JMX"),
        ]
    )
    cassandra.write_config(node, seeds, CLUSTER_NAME, bootstrap=True)
    cluster.cassandra_nodes.append(node)
    progress(what)
    started = time.monotonic()
    system_log = node.logs[0]
    seen = system_log.stat().st_size if system_log.exists() else 0
    cluster.spawn(node)

    def started_up() -> bool | None:
        # The node's own log says when it has joined and serves (cheap to read, where a
        # `nodetool status` a second is a JVM a second on a busy machine).
        if not processes.is_running(node.pid, node.marker):
            processes.raise_dead(node.name, node.logs)
        if not system_log.exists():
            return None
        with open(system_log, "rb") as log:
            log.seek(seen)
            return b"Startup complete" in log.read() or None

    _wait_for(cluster, started_up, JOIN_TIMEOUT_S, f"{node.name} to join", progress)

    def seen_up() -> bool | None:  # and the others see it so
        return _states(cluster, seeds).get(node.address) == "UN" or None

    _wait_for(cluster, seen_up, 120.0, f"the others to see {node.name} UN", progress)
    progress(f"{node.name} is UN after {time.monotonic() - started:.0f} s")


def _whole_ring(cluster: LocalCluster, doing: str) -> list[CassandraNode]:
    """Every Cassandra node, when every one is UN; else refuse to do ``doing``."""
    nodes = list(cluster.cassandra_nodes)
    states = _states(cluster, nodes)
    not_up = [n.name for n in nodes if states.get(n.address) != "UN"]
    if not_up:
        raise ClusterError(
            f"cannot {doing} while {', '.join(not_up)} is not UN (nodetool status); start or "
            "replace it first"
        )
    return nodes


def _states(cluster: LocalCluster, nodes: list[CassandraNode]) -> dict[str, str]:
    """`nodetool status` of the first of ``nodes`` that answers: address -> state."""
    for node in nodes:
        if processes.is_running(node.pid, node.marker):
            done = cluster.nodetool(["status"], node=node.name)
            if done.returncode == 0:
                return cassandra.states(done.stdout)
    return {}


def _token(cluster: LocalCluster, node: CassandraNode) -> int:
    if node.token is not None:
        return node.token
    assert cluster.spec is not None  # a state file of before tokens were kept
    return cassandra.initial_token(node.index, cluster.spec.cassandra_nodes)


def _cassandra_node(cluster: LocalCluster, name: str) -> CassandraNode:
    node = cluster.node(name)
    if not isinstance(node, CassandraNode):
        raise ClusterError(f"{name} is not a Cassandra node")
    return node


def _nodetool(
    cluster: LocalCluster, args: list[str], node: CassandraNode, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    done = cluster.nodetool(args, node=node.name, timeout=timeout)
    if done.returncode != 0:
        raise ClusterError(
            f"nodetool {' '.join(args)} on {node.name} failed (exit {done.returncode})",
            (done.stderr or done.stdout)[-3000:],
        )
    return done


# ---- HDFS -------------------------------------------------------------------------------


def add_datanode(cluster: LocalCluster, progress: Progress = _quiet) -> HdfsDaemon:
    """Start one more DataNode, wait until the NameNode counts it live, then balance."""
    namenode = _namenode(cluster)
    assert cluster.spec is not None
    index = max((int(d.name.removeprefix("datanode")) for d in cluster.datanodes), default=0) + 1
    daemon = hdfs.plan_datanode(index, cluster.spec.port_offset, cluster.root)
    processes.require_free_ports(daemon.ports())
    hdfs.write_config(daemon, namenode, _replication(namenode))
    cluster.datanodes.append(daemon)
    progress(f"starting {daemon.name} (transfer port {daemon.transfer_port})")
    started = time.monotonic()
    cluster.spawn(daemon)
    address = _address(daemon)

    def registered() -> bool | None:
        if not processes.is_running(daemon.pid, daemon.marker):
            processes.raise_dead(daemon.name, daemon.logs)
        return hdfs.datanode_states(namenode).get(address, {}).get("live") or None

    _wait_for(cluster, registered, JOIN_TIMEOUT_S, f"{daemon.name} to register", progress)
    cluster.save()
    progress(f"{daemon.name} is live after {time.monotonic() - started:.0f} s; balancing")
    balanced = cluster.hdfs_tool("balancer", ["-threshold", "10"])
    if balanced.returncode != 0:
        raise ClusterError(
            f"the balancer failed (exit {balanced.returncode})", balanced.stderr[-3000:]
        )
    last = [line for line in balanced.stdout.splitlines() if line.strip()][-1:]
    progress(f"balancer: {last[0] if last else 'done'}")
    return daemon


def _remove_datanode(cluster: LocalCluster, daemon: HdfsDaemon, progress: Progress) -> None:
    namenode = _namenode(cluster)
    states = hdfs.datanode_states(namenode)
    others = [
        d for d in cluster.datanodes if d is not daemon and states.get(_address(d), {}).get("live")
    ]
    policy = _sealed_policy(cluster)
    width = erasure.width(policy) if policy else 0
    need = max(_replication(namenode), width)
    if len(others) < need:
        why = f"erasure-coded with {policy}" if width >= _replication(namenode) else "replicated"
        raise ClusterError(
            f"removing {daemon.name} leaves {len(others)} live DataNode(s), but blocks are {why} "
            f"over {need}: some would have nowhere to go; add a DataNode first"
        )
    address = _address(daemon)
    exclude = hdfs.exclude_file(namenode)
    listed = set(exclude.read_text().split()) if exclude.exists() else set()
    exclude.write_text("".join(f"{a}\n" for a in sorted(listed | {address})))
    refreshed = cluster.hdfs_tool("dfsadmin", ["-refreshNodes"])
    if refreshed.returncode != 0:
        raise ClusterError("dfsadmin -refreshNodes failed", refreshed.stderr[-3000:])
    progress(f"decommissioning {daemon.name}: its blocks are copied to the other DataNodes")
    started = time.monotonic()

    def decommissioned() -> bool | None:
        state = hdfs.datanode_states(namenode).get(address, {})
        return state.get("adminState") == "Decommissioned" or None

    def detail() -> str:
        state = hdfs.datanode_states(namenode).get(address, {})
        waiting = state.get("underReplicatedBlocks")
        return f"{state.get('adminState', '?')}" + (
            f", {waiting} block(s) still to copy" if waiting is not None else ""
        )

    _wait_for(
        cluster,
        decommissioned,
        DECOMMISSION_TIMEOUT_S,
        f"{daemon.name} to be Decommissioned",
        progress,
        detail,
    )
    progress(f"{daemon.name} decommissioned in {time.monotonic() - started:.0f} s; stopping it")
    cluster.stop_nodes([daemon.name])
    cluster.datanodes.remove(daemon)
    cluster.save()


def _namenode(cluster: LocalCluster) -> HdfsDaemon:
    namenode = cluster.namenode
    if namenode is None or not processes.is_running(namenode.pid, namenode.marker):
        raise ClusterError("the NameNode is not running; `instastore cluster start namenode`")
    return namenode


def _address(daemon: HdfsDaemon) -> str:
    return f"127.0.0.1:{daemon.transfer_port}"


def _replication(namenode: HdfsDaemon) -> int:
    """dfs.replication as the cluster was set up with (its hdfs-site.xml)."""
    text = (namenode.path / "conf" / "hdfs-site.xml").read_text()
    found = re.search(r"<name>dfs\.replication</name><value>(\d+)</value>", text)
    return int(found.group(1)) if found else 3


def _sealed_policy(cluster: LocalCluster) -> str | None:
    done = cluster.hdfs_tool("ec", ["-getPolicy", "-path", SEALED_VOLUMES])
    if done.returncode != 0:
        return None  # no such folder: nothing erasure-coded
    words = done.stdout.split()
    return words[0] if words and "-" in words[0] else None


# ---- both ---------------------------------------------------------------------------------


def remove(cluster: LocalCluster, name: str, progress: Progress = _quiet) -> None:
    """Take one node out of the running cluster with its data moved elsewhere first."""
    node = cluster.node(name)
    if isinstance(node, CassandraNode):
        _remove_cassandra(cluster, node, progress)
    elif node.role == "datanode":
        _remove_datanode(cluster, node, progress)
    else:
        raise ClusterError("the NameNode cannot be removed: the namespace lives there")


def _wait_for(
    cluster: LocalCluster,
    done: Callable[[], bool | None],
    timeout: float,
    what: str,
    progress: Progress,
    detail: Callable[[], str] | None = None,
) -> None:
    started = time.monotonic()
    reported = started
    while not done():
        now = time.monotonic()
        if now - started > timeout:
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")
        if now - reported >= REPORT_EVERY_S:
            reported = now
            extra = f" ({detail()})" if detail else ""
            progress(f"waiting for {what}: {now - started:.0f} s{extra}")
        time.sleep(POLL_S)
