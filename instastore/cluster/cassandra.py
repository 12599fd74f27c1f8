"""Cassandra nodes of the local cluster: configuration, command line, readiness.

Node i (1-based) listens on the i-th address from ``first_address`` (127.0.0.1,
127.0.0.2, ... as Cassandra's own ccm does), with the same storage and CQL ports on every
node, its own JMX port, ``num_tokens: 1`` and evenly spaced initial tokens, every node a
seed and ``auto_bootstrap: false`` so all nodes can start at once. A node added later
(``instastore cluster add cassandra``, ``replace``) is no seed and bootstraps: it streams
its ranges from the others before it serves. Each node's token is kept in the state file.
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
# Not shorter: at 3000 ms a replacing node's late schema pull met its pending-range
# calculation and Cassandra 5.0.6 deadlocked (MigrationStage opening a keyspace waits on
# PendingRangeCalculatorService, which waits on that keyspace; jstack, 2026-12-03).
RING_DELAY_MS = 5000
BROADCAST_INTERVAL_MS = 10_000


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
    token: int | None = None  # None in state files of before `cluster add`: the even spacing
    replace_address: str | None = None  # the dead node this one replaces, until it has

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
    return [
        plan_node(i, first_address, port_offset, root, initial_token(i, count))
        for i in range(1, count + 1)
    ]


def plan_node(
    index: int, first_address: str, port_offset: int, root: Path, token: int
) -> CassandraNode:
    """Node ``index``: the index-th address from ``first_address``, its own JMX port."""
    return CassandraNode(
        name=f"cassandra{index}",
        index=index,
        address=str(ipaddress.IPv4Address(first_address) + (index - 1)),
        cql_port=9042 + port_offset,
        storage_port=7000 + port_offset,
        jmx_port=7000 + 100 * index + port_offset,
        dir=str(root / "cassandra" / f"node{index}"),
        token=token,
    )


def token_between(tokens: list[int]) -> int:
    """The middle of the widest range between ``tokens`` on the ring: a joining node's
    token, taking half of the range that has the most."""
    ring = sorted(tokens)
    if not ring:
        return MIN_TOKEN
    span = 2**64
    gaps = [((ring[(i + 1) % len(ring)] - t) % span or span, t) for i, t in enumerate(ring)]
    width, start = max(gaps)
    return (start + width // 2 + 2**63) % span - 2**63


def initial_token(index: int, count: int) -> int:
    return MIN_TOKEN + (index - 1) * (2**64 // count)


def write_config(
    node: CassandraNode, seeds: list[CassandraNode], cluster_name: str, bootstrap: bool = False
) -> None:
    """The node's configuration: ``seeds`` are the nodes it first gossips with; with
    ``bootstrap`` it streams its ranges before serving (a node joining a running ring)."""
    conf = node.path / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (node.path / "logs").mkdir(exist_ok=True)
    token = node.token if node.token is not None else initial_token(node.index, len(seeds))
    (conf / "cassandra.yaml").write_text(
        toolchain.render(
            "cassandra.yaml",
            cluster_name=cluster_name,
            initial_token=token,
            auto_bootstrap=str(bootstrap).lower(),
            node_dir=node.dir,
            seeds=",".join(f"{n.address}:{n.storage_port}" for n in seeds),
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
        # A joining node waits this long, twice, for gossip (30 s each by default): one
        # machine's loopback ring learns everything in well under it.
        f"-Dcassandra.ring_delay_ms={RING_DELAY_MS}",
        # A replacing node also sleeps one load-broadcast interval (60 s by default) to be
        # sure the node it replaces is dead; the loopback ring knows that within seconds.
        f"-Dcassandra.broadcast_interval_ms={BROADCAST_INTERVAL_MS}",
        *(
            [f"-Dcassandra.replace_address_first_boot={node.replace_address}"]
            if node.replace_address
            else []
        ),
        "-cp",
        toolchain.classpath(conf, f"{lib}/*"),
        "org.apache.cassandra.service.CassandraDaemon",
    ]


def nodetool(
    node: CassandraNode, java: str, lib: Path, args: list[str], timeout: float = NODETOOL_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    conf = node.path / "conf"
    argv = [
        java,
        *toolchain.TOOL_JVM_OPTIONS,
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
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def states(status_output: str) -> dict[str, str]:
    """Address -> state (UN, UJ, UL, DN, ...) of each node `nodetool status` shows."""
    found = {}
    for line in status_output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 2 and parts[0][0] in "UD":
            found[parts[1]] = parts[0]
    return found


def replication_factors(describecluster_output: str) -> dict[str, int]:
    """Keyspace -> replicas per data centre summed, from `nodetool describecluster`'s
    Keyspaces section (LocalStrategy keyspaces left out)."""
    factors = {}
    for line in describecluster_output.splitlines():
        name, arrow, rest = line.strip().partition(" -> ")
        if not arrow or "LocalStrategy" in rest or "{" not in rest:
            continue
        options = rest[rest.index("{") + 1 : rest.rindex("}")]
        counts = [
            int(v)
            for _, _, v in (o.partition("=") for o in options.split(","))
            if v.strip().isdigit()
        ]
        if counts:
            factors[name] = sum(counts)
    return factors


def count_up_normal(status_output: str) -> int:
    """Nodes that `nodetool status` shows as UN (up, normal)."""
    return sum(1 for line in status_output.splitlines() if line.startswith("UN "))
