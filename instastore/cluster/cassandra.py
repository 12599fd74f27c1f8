"""Cassandra nodes of the local cluster: configuration, command line, readiness.

Node i (1-based) listens on the i-th address from ``first_address`` (127.0.0.1,
127.0.0.2, ... as Cassandra's own ccm does), with the same storage and CQL ports on every
node, its own JMX port, ``num_tokens: 1`` and evenly spaced initial tokens, every node a
seed and ``auto_bootstrap: false`` so all nodes can start at once.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from instastore.cluster import toolchain
from instastore.errors import ClusterError

MIN_TOKEN = -(2**63)
NODETOOL_HEAP = "128m"
NODETOOL_TIMEOUT_S = 120


@dataclass
class CassandraNode:
    name: str
    index: int
    address: str
    cql_port: int
    storage_port: int
    jmx_port: int
    dir: str
    pid: int | None = None

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def logs(self) -> list[Path]:
        return [self.path / "logs" / "system.log", self.path / "logs" / "stdout.log"]

    @property
    def marker(self) -> str:
        """A string in the node's command line that no other process has."""
        return f"-Dcassandra.storagedir={self.dir}"


def plan_nodes(count: int, first_address: str, port_offset: int, root: Path) -> list[CassandraNode]:
    first = ipaddress.IPv4Address(first_address)
    return [
        CassandraNode(
            name=f"cassandra{i}",
            index=i,
            address=str(first + (i - 1)),
            cql_port=9042 + port_offset,
            storage_port=7000 + port_offset,
            jmx_port=7000 + 100 * i + port_offset,
            dir=str(root / "cassandra" / f"node{i}"),
        )
        for i in range(1, count + 1)
    ]


def initial_token(index: int, count: int) -> int:
    return MIN_TOKEN + (index - 1) * (2**64 // count)


def write_config(node: CassandraNode, nodes: list[CassandraNode], cluster_name: str) -> None:
    conf = node.path / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (node.path / "logs").mkdir(exist_ok=True)
    seeds = ",".join(f"{n.address}:{n.storage_port}" for n in nodes)
    (conf / "cassandra.yaml").write_text(
        toolchain.render(
            "cassandra.yaml",
            cluster_name=cluster_name,
            initial_token=initial_token(node.index, len(nodes)),
            node_dir=node.dir,
            seeds=seeds,
            address=node.address,
            storage_port=node.storage_port,
            cql_port=node.cql_port,
        )
    )
    (conf / "logback.xml").write_text(toolchain.template("logback.xml"))
    (conf / "logback-tools.xml").write_text(toolchain.template("logback-tools.xml"))


def command(node: CassandraNode, java: str, lib: Path, heap: str) -> list[str]:
    jamm = sorted(lib.glob("jamm-*.jar"))
    if not jamm:
        raise ClusterError(f"no jamm jar in {lib}; remove the folder to resolve the jars again")
    conf = node.path / "conf"
    return [
        java,
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:+HeapDumpOnOutOfMemoryError",
        "-XX:+ExitOnOutOfMemoryError",  # a node that ran out of heap must not limp on
        f"-XX:HeapDumpPath={node.dir}/logs",
        f"-javaagent:{jamm[0]}",
        *toolchain.jvm_options("jvm17-cassandra.options"),
        f"-Dcassandra.config=file://{conf}/cassandra.yaml",
        node.marker,
        f"-Dcassandra.logdir={node.dir}/logs",
        f"-Dlogback.configurationFile={conf}/logback.xml",
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.jmx.local.port={node.jmx_port}",
        "-Dcom.sun.management.jmxremote.authenticate=false",
        "-Djava.net.preferIPv4Stack=true",
        "-Dchronicle.analytics.disable=true",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-cp",
        toolchain.classpath(conf, f"{lib}/*"),
        "org.apache.cassandra.service.CassandraDaemon",
    ]


def nodetool(
    node: CassandraNode, java: str, lib: Path, args: list[str]
) -> subprocess.CompletedProcess[str]:
    conf = node.path / "conf"
    argv = [
        java,
        f"-Xmx{NODETOOL_HEAP}",
        *toolchain.jvm_options("jvm17-cassandra.options"),
        f"-Dlogback.configurationFile={conf}/logback-tools.xml",
        f"-Dcassandra.config=file://{conf}/cassandra.yaml",
        "-cp",
        toolchain.classpath(conf, f"{lib}/*"),
        "org.apache.cassandra.tools.NodeTool",
        "-h",
        "127.0.0.1",
        "-p",
        str(node.jmx_port),
        *args,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=NODETOOL_TIMEOUT_S)


def count_up_normal(status_output: str) -> int:
    """Nodes that `nodetool status` shows as UN (up, normal)."""
    return sum(1 for line in status_output.splitlines() if line.startswith("UN "))
