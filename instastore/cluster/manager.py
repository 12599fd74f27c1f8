"""The local cluster as a whole: plan, start, wait until ready, report, stop.

State lives in ``<dir>/state.json`` (pids, ports, folders), so ``status`` and ``down``
work from any shell and a second ``up`` finds the running cluster instead of starting
another one. Data folders are kept across ``down``/``up`` unless ``down --wipe``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instastore.cluster import cassandra, hdfs, processes, toolchain
from instastore.cluster.cassandra import CassandraNode
from instastore.cluster.hdfs import HdfsDaemon
from instastore.config import Settings
from instastore.errors import ClusterError

log = logging.getLogger(__name__)

# The default settings' sealed-volume folder: erasure-coded by `up` for its DataNodes.
SEALED_VOLUMES = f"{Settings().hdfs_root.rstrip('/')}/{Settings().hdfs_volume_dir}"
READY_TIMEOUT_S = 240.0  # 3 + 3 on 2 cores is up in ~25 s; cold JIT and slow disks need slack
POLL_INTERVAL_S = 0.5


def default_cluster_dir() -> Path:
    env = os.environ.get("INSTASTORE_CLUSTER_DIR")
    if env:
        return Path(env)
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state_home) / "instastore" / "cluster"


@dataclass(frozen=True)
class ClusterSpec:
    cassandra_nodes: int = 1
    datanodes: int = 1
    first_address: str = "127.0.0.1"
    port_offset: int = 0
    cassandra_heap: str = "1g"
    hdfs_heap: str = "256m"

    def __post_init__(self) -> None:
        if not 1 <= self.cassandra_nodes <= 9 or not 1 <= self.datanodes <= 9:
            raise ClusterError("a local cluster has 1 to 9 Cassandra nodes and 1 to 9 DataNodes")


class LocalCluster:
    """One local cluster, identified by its folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.state_file = self.root / "state.json"
        self.spec: ClusterSpec | None = None
        self.cassandra_nodes: list[CassandraNode] = []
        self.namenode: HdfsDaemon | None = None
        self.datanodes: list[HdfsDaemon] = []
        self.versions = {
            "cassandra": toolchain.CASSANDRA_VERSION,
            "hadoop": toolchain.HADOOP_VERSION,
        }
        if self.state_file.exists():
            self._load()

    # ---- state -----------------------------------------------------------------

    def reload(self) -> None:
        """Read the state file again (another process added or removed nodes)."""
        self._load()

    def _load(self) -> None:
        state = json.loads(self.state_file.read_text())
        self.spec = ClusterSpec(**state["spec"])
        self.versions = state["versions"]
        self.cassandra_nodes = [CassandraNode(**n) for n in state["cassandra"]]
        self.namenode = HdfsDaemon(**state["namenode"])
        self.datanodes = [HdfsDaemon(**d) for d in state["datanodes"]]

    def _save(self) -> None:
        assert self.spec is not None and self.namenode is not None
        state = {
            "spec": dataclasses.asdict(self.spec),
            "versions": self.versions,
            "cassandra": [dataclasses.asdict(n) for n in self.cassandra_nodes],
            "namenode": dataclasses.asdict(self.namenode),
            "datanodes": [dataclasses.asdict(d) for d in self.datanodes],
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, self.state_file)

    def daemons(self) -> list[CassandraNode | HdfsDaemon]:
        hdfs_daemons = [self.namenode, *self.datanodes] if self.namenode else []
        return [*self.cassandra_nodes, *hdfs_daemons]

    def node(self, name: str) -> CassandraNode | HdfsDaemon:
        for daemon in self.daemons():
            if daemon.name == name:
                return daemon
        names = ", ".join(d.name for d in self.daemons()) or "none (is the cluster up?)"
        raise ClusterError(f"no node named {name!r}; nodes: {names}")

    def running(self) -> list[CassandraNode | HdfsDaemon]:
        return [d for d in self.daemons() if processes.is_running(d.pid, d.marker)]

    # ---- what clients need -------------------------------------------------------

    @property
    def cassandra_hosts(self) -> str:
        return ",".join(n.address for n in self.cassandra_nodes)

    @property
    def cql_port(self) -> int:
        return self.cassandra_nodes[0].cql_port

    @property
    def webhdfs_url(self) -> str:
        assert self.namenode is not None
        return f"http://127.0.0.1:{self.namenode.http_port}"

    def client_settings(self) -> dict[str, str]:
        """The INSTASTORE_* variables that point the service at this cluster."""
        return {
            "INSTASTORE_CASSANDRA_HOSTS": self.cassandra_hosts,
            "INSTASTORE_CASSANDRA_PORT": str(self.cql_port),
            "INSTASTORE_WEBHDFS_URL": self.webhdfs_url,
        }

    # ---- up ----------------------------------------------------------------------

    def up(self, spec: ClusterSpec, timeout: float = READY_TIMEOUT_S) -> bool:
        """Start the cluster and wait until it is ready. Returns False (and starts
        nothing) when it is already running with the same spec."""
        if self.running():
            if self.spec != spec:
                raise ClusterError(
                    f"a different cluster is already running from {self.root} ({self.spec}); "
                    "run `instastore cluster down` first"
                )
            return False
        java = toolchain.find_java()
        if self.spec is not None and self.spec != spec:
            raise ClusterError(
                f"{self.root} holds the data of a different cluster ({self.spec}); "
                "run `instastore cluster down --wipe` or pick another --dir"
            )
        self.spec = spec
        if not self.cassandra_nodes or self.namenode is None:  # new; else as last saved
            self.cassandra_nodes = cassandra.plan_nodes(
                spec.cassandra_nodes, spec.first_address, spec.port_offset, self.root
            )
            self.namenode, self.datanodes = hdfs.plan(spec.datanodes, spec.port_offset, self.root)
        ports = [p for d in [self.namenode, *self.datanodes] for p in d.ports()]
        for n in self.cassandra_nodes:
            ports += [
                (n.address, n.cql_port, f"{n.name} CQL"),
                (n.address, n.storage_port, f"{n.name} storage"),
                ("127.0.0.1", n.jmx_port, f"{n.name} JMX"),
            ]
        processes.require_free_ports(ports)
        cassandra_lib = toolchain.resolve_jars("cassandra", self.versions["cassandra"])
        hadoop_lib = toolchain.resolve_jars("hadoop", self.versions["hadoop"])
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._start_all(java, cassandra_lib, hadoop_lib)
            self.wait_ready(timeout)
            policy = hdfs.setup_erasure_coding(
                self.namenode, java, hadoop_lib, len(self.datanodes), SEALED_VOLUMES
            )
            log.info("sealed volumes in %s: %s", SEALED_VOLUMES, policy or "replication")
        except BaseException:
            self.stop_all()
            raise
        return True

    def _start_all(self, java: str, cassandra_lib: Path, hadoop_lib: Path) -> None:
        assert self.spec is not None and self.namenode is not None
        replication = min(3, len(self.datanodes))
        for daemon in [self.namenode, *self.datanodes]:
            hdfs.write_config(daemon, self.namenode, replication)
        hdfs.format_namenode(
            self.namenode, java, hadoop_lib, self.spec.hdfs_heap, cluster_id="instastore-local"
        )
        for node in self.cassandra_nodes:
            cassandra.write_config(node, self.cassandra_nodes, cluster_name="instastore-local")
            self._spawn(node, java, cassandra_lib, hadoop_lib)
        for daemon in [self.namenode, *self.datanodes]:
            self._spawn(daemon, java, cassandra_lib, hadoop_lib)
        self._save()

    def save(self) -> None:
        """Record the nodes (after one joined or left) in the state file."""
        assert self.spec is not None
        self.spec = dataclasses.replace(
            self.spec, cassandra_nodes=len(self.cassandra_nodes), datanodes=len(self.datanodes)
        )
        self._save()

    def _spawn(
        self, daemon: CassandraNode | HdfsDaemon, java: str, cassandra_lib: Path, hadoop_lib: Path
    ) -> None:
        assert self.spec is not None
        if isinstance(daemon, CassandraNode):
            argv = cassandra.command(daemon, java, cassandra_lib, self.spec.cassandra_heap)
            log_path = daemon.logs[1]
        else:
            argv = hdfs.command(daemon, java, hadoop_lib, self.spec.hdfs_heap)
            log_path = daemon.logs[0]
        daemon.pid = processes.spawn(argv, log_path, daemon.path)
        log.info("started %s (pid %d)", daemon.name, daemon.pid)

    def spawn(self, daemon: CassandraNode | HdfsDaemon) -> None:
        """Start one planned node (its configuration written) and record it."""
        self._spawn(
            daemon,
            toolchain.find_java(),
            toolchain.resolve_jars("cassandra", self.versions["cassandra"]),
            toolchain.resolve_jars("hadoop", self.versions["hadoop"]),
        )
        self._save()

    def start_node(self, name: str, timeout: float = READY_TIMEOUT_S, wait: bool = True) -> None:
        """Start one stopped node again (after a kill) and, with ``wait``, wait until the
        cluster is ready (without, while other nodes are still down, for failure tests)."""
        daemon = self.node(name)
        if processes.is_running(daemon.pid, daemon.marker):
            raise ClusterError(f"{name} is already running (pid {daemon.pid})")
        java = toolchain.find_java()
        self._spawn(
            daemon,
            java,
            toolchain.resolve_jars("cassandra", self.versions["cassandra"]),
            toolchain.resolve_jars("hadoop", self.versions["hadoop"]),
        )
        self._save()
        if wait:
            self.wait_ready(timeout)

    def stop_nodes(self, names: list[str]) -> None:
        """Stop these nodes cleanly (SIGTERM; SIGKILL past the timeout), together."""
        daemons = [self.node(name) for name in names]
        processes.stop([(d.pid, d.marker) for d in daemons if d.pid])

    def kill_node(self, name: str) -> None:
        """SIGKILL one node, as a crash would (failure tests)."""
        daemon = self.node(name)
        if daemon.pid:
            processes.kill(daemon.pid, daemon.marker)

    # ---- readiness ----------------------------------------------------------------

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Block until every CQL port answers, nodetool shows every node UN, and the
        NameNode reports every DataNode live with safe mode off. A node that dies meanwhile
        fails at once with the tail of its log."""
        deadline = time.monotonic() + timeout
        pending = "the cluster"
        while time.monotonic() < deadline:
            self._check_alive()
            pending = self._not_ready()
            if not pending:
                return
            time.sleep(POLL_INTERVAL_S)
        raise ClusterError(
            f"timed out after {timeout:.0f} s waiting for {pending}; see `instastore cluster logs`"
        )

    def _check_alive(self) -> None:
        for daemon in self.daemons():
            if not processes.is_running(daemon.pid, daemon.marker):
                processes.raise_dead(daemon.name, daemon.logs)

    def _not_ready(self) -> str:
        """What is not ready yet, or "" when everything is."""
        assert self.namenode is not None
        for node in self.cassandra_nodes:
            if not processes.accepts_connections(node.address, node.cql_port):
                return f"{node.name} to answer CQL on {node.address}:{node.cql_port}"
        state = hdfs.live_datanodes_and_safemode(self.namenode)
        if state is None:
            return "the NameNode's HTTP server"
        live, safemode = state
        if live < len(self.datanodes):
            return f"{len(self.datanodes)} live DataNodes (NameNode sees {live})"
        if safemode:
            return "the NameNode to leave safe mode"
        up = cassandra.count_up_normal(self.nodetool(["status"]).stdout)
        if up < len(self.cassandra_nodes):
            return f"nodetool to show {len(self.cassandra_nodes)} nodes UN (shows {up})"
        return ""

    # ---- report and stop ------------------------------------------------------------

    def nodetool(
        self,
        args: list[str],
        node: str | None = None,
        timeout: float = cassandra.NODETOOL_TIMEOUT_S,
    ) -> subprocess.CompletedProcess[str]:
        live = [n for n in self.cassandra_nodes if processes.is_running(n.pid, n.marker)]
        if node:
            target = self.node(node)
            if not isinstance(target, CassandraNode):
                raise ClusterError(f"{node} is not a Cassandra node")
        elif live:
            target = live[0]
        else:
            raise ClusterError("no Cassandra node is running; run `instastore cluster up`")
        return cassandra.nodetool(
            target,
            toolchain.find_java(),
            toolchain.resolve_jars("cassandra", self.versions["cassandra"]),
            args,
            timeout,
        )

    def hdfs_tool(
        self, tool: str, args: list[str], binary: bool = False
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``hdfs dfs|dfsadmin|fsck ARGS`` against this cluster (output as bytes
        with ``binary``, else text)."""
        if self.namenode is None:
            raise ClusterError(f"no cluster in {self.root}; run `instastore cluster up`")
        return hdfs.run_tool(
            self.namenode,
            toolchain.find_java(),
            toolchain.resolve_jars("hadoop", self.versions["hadoop"]),
            tool,
            args,
            binary,
        )

    def status(self) -> list[dict[str, str | int | None]]:
        rows = []
        for d in self.daemons():
            alive = processes.is_running(d.pid, d.marker)
            if isinstance(d, CassandraNode):
                endpoint = f"cql {d.address}:{d.cql_port}  jmx {d.jmx_port}"
            elif d.role == "namenode":
                endpoint = f"webhdfs http://127.0.0.1:{d.http_port}  rpc {d.rpc_port}"
            else:
                endpoint = f"http {d.http_port}  transfer {d.transfer_port}"
            rows.append(
                {
                    "name": d.name,
                    "state": "running" if alive else "stopped",
                    "pid": d.pid if alive else None,
                    "rss_mb": _rss_mb(d.pid) if alive else None,
                    "endpoint": endpoint,
                    "log": str(d.logs[0]),
                }
            )
        return rows

    def stop_all(self) -> list[int]:
        pids = [(d.pid, d.marker) for d in self.daemons() if d.pid]
        return processes.stop(pids)

    def down(self, wipe: bool = False) -> list[int]:
        killed = self.stop_all()
        for d in self.daemons():
            d.pid = None
        if self.spec is not None and self.namenode is not None and not wipe:
            self._save()
        if wipe and self.root.exists():
            shutil.rmtree(self.root)
        return killed


def _rss_mb(pid: int | None) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except (FileNotFoundError, ValueError):
        return None
    return None
