"""HDFS daemons of the local cluster: one NameNode and M DataNodes on 127.0.0.1.

Every daemon gets its own conf folder (core-site.xml, hdfs-site.xml, log4j.properties),
so DataNode ports and data folders are plain configuration rather than command-line
overrides. Ready means: the NameNode's /jmx reports M live DataNodes and safe mode is off.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instastore.cluster import toolchain
from instastore.cluster.processes import tail
from instastore.errors import ClusterError
from instastore.storage.hdfs import erasure

NAMENODE_CLASS = "org.apache.hadoop.hdfs.server.namenode.NameNode"
DATANODE_CLASS = "org.apache.hadoop.hdfs.server.datanode.DataNode"
FORMAT_TIMEOUT_S = 180


@dataclass
class HdfsDaemon:
    name: str
    role: str  # "namenode" or "datanode"
    dir: str
    http_port: int
    rpc_port: int  # NameNode RPC, or DataNode IPC
    transfer_port: int = 0  # DataNode data transfer; 0 for the NameNode
    pid: int | None = None

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def logs(self) -> list[Path]:
        return [self.path / "logs" / f"{self.name}.log"]

    @property
    def marker(self) -> str:
        return f"-Dhadoop.log.dir={self.dir}/logs"

    def ports(self) -> list[tuple[str, int, str]]:
        ports = [
            ("127.0.0.1", self.http_port, f"{self.name} http"),
            ("127.0.0.1", self.rpc_port, f"{self.name} rpc"),
        ]
        if self.transfer_port:
            ports.append(("127.0.0.1", self.transfer_port, f"{self.name} data transfer"))
        return ports


def plan(datanodes: int, port_offset: int, root: Path) -> tuple[HdfsDaemon, list[HdfsDaemon]]:
    hdfs = root / "hdfs"
    namenode = HdfsDaemon(
        "namenode", "namenode", str(hdfs / "namenode"), 9870 + port_offset, 8020 + port_offset
    )
    return namenode, [plan_datanode(i, port_offset, root) for i in range(1, datanodes + 1)]


def plan_datanode(index: int, port_offset: int, root: Path) -> HdfsDaemon:
    """DataNode ``index`` (1-based): ports 10 apart per DataNode."""
    step = 10 * (index - 1) + port_offset
    return HdfsDaemon(
        name=f"datanode{index}",
        role="datanode",
        dir=str(root / "hdfs" / f"datanode{index}"),
        http_port=9864 + step,
        rpc_port=9867 + step,
        transfer_port=9866 + step,
    )


def exclude_file(namenode: HdfsDaemon) -> Path:
    """The NameNode's dfs.hosts.exclude: DataNodes (127.0.0.1:<transfer port>) to retire."""
    return namenode.path / "dfs.exclude"


def _property(name: str, value: object) -> str:
    return f"  <property><name>{name}</name><value>{value}</value></property>"


def write_config(daemon: HdfsDaemon, namenode: HdfsDaemon, replication: int) -> None:
    conf = daemon.path / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (daemon.path / "logs").mkdir(exist_ok=True)
    extra = ""
    if daemon.role == "datanode":
        extra = "\n".join(
            [
                _property("dfs.datanode.data.dir", f"file://{daemon.dir}/data"),
                _property("dfs.datanode.address", f"127.0.0.1:{daemon.transfer_port}"),
                _property("dfs.datanode.http.address", f"127.0.0.1:{daemon.http_port}"),
                _property("dfs.datanode.ipc.address", f"127.0.0.1:{daemon.rpc_port}"),
            ]
        )
    if daemon.role == "namenode":
        exclude_file(namenode).touch()
    common = {"nn_rpc_port": namenode.rpc_port, "hdfs_dir": daemon.dir}
    (conf / "core-site.xml").write_text(toolchain.render("core-site.xml", **common))
    (conf / "hdfs-site.xml").write_text(
        toolchain.render(
            "hdfs-site.xml",
            nn_http_port=namenode.http_port,
            replication=replication,
            extra=extra,
            hdfs_dir=namenode.dir,
            nn_rpc_port=namenode.rpc_port,
        )
    )
    (conf / "log4j.properties").write_text(toolchain.template("log4j.properties"))


def _java_args(daemon: HdfsDaemon, java: str, lib: Path, heap: str) -> list[str]:
    return [
        java,
        f"-Xmx{heap}",
        *toolchain.jvm_options("jvm17-hadoop.options"),
        daemon.marker,
        f"-Dhadoop.log.file={daemon.name}.log",
        f"-Dhadoop.home.dir={daemon.dir}",
        "-Djava.net.preferIPv4Stack=true",
        "-cp",
        toolchain.classpath(daemon.path / "conf", f"{lib}/*"),
    ]


def command(daemon: HdfsDaemon, java: str, lib: Path, heap: str) -> list[str]:
    main = NAMENODE_CLASS if daemon.role == "namenode" else DATANODE_CLASS
    return [*_java_args(daemon, java, lib, heap), main]


TOOLS = {
    "dfs": "org.apache.hadoop.fs.FsShell",
    "dfsadmin": "org.apache.hadoop.hdfs.tools.DFSAdmin",
    "fsck": "org.apache.hadoop.hdfs.tools.DFSck",
    "ec": "org.apache.hadoop.hdfs.tools.ECAdmin",
    "balancer": "org.apache.hadoop.hdfs.server.balancer.Balancer",
}
TOOL_TIMEOUT_S = 120


def run_tool(
    namenode: HdfsDaemon, java: str, lib: Path, tool: str, args: list[str], binary: bool = False
) -> subprocess.CompletedProcess[Any]:  # str output, or bytes with ``binary``
    """Hadoop's own command-line tools (``hdfs dfs``, ``dfsadmin``, ``fsck``, ``ec``)
    against this cluster, with the NameNode's configuration. With ``binary`` the output
    is bytes as the tool wrote them (``dfs -cat`` of a JPEG), else text."""
    if tool not in TOOLS:
        raise ClusterError(f"unknown HDFS tool {tool!r}; one of: {', '.join(TOOLS)}")
    argv = [
        java,
        *toolchain.TOOL_JVM_OPTIONS,
        "-Xmx256m",
        *toolchain.jvm_options("jvm17-hadoop.options"),
        "-Dhadoop.root.logger=WARN,console",
        f"-Dhadoop.home.dir={namenode.dir}",
        "-cp",
        toolchain.classpath(namenode.path / "conf", f"{lib}/*"),
        TOOLS[tool],
        *args,
    ]
    return subprocess.run(
        argv,
        capture_output=True,
        text=not binary,
        timeout=TOOL_TIMEOUT_S,
        env={"HADOOP_USER_NAME": "instastore", "PATH": "/usr/bin:/bin"},
    )


def setup_erasure_coding(
    namenode: HdfsDaemon, java: str, lib: Path, datanodes: int, folder: str
) -> str | None:
    """Enable the erasure-coding policy that fits ``datanodes`` and set it on ``folder``
    (made if missing), with Hadoop's own ``hdfs ec`` (ECAdmin); return the policy, or
    None below 3 DataNodes (the folder is then made and keeps plain replication)."""
    _mkdirs(namenode, folder)
    policy = erasure.policy_for(datanodes)
    if policy is None:
        return None
    for args in (
        ["-enablePolicy", "-policy", policy],
        ["-setPolicy", "-path", folder, "-policy", policy],
    ):
        done = run_tool(namenode, java, lib, "ec", args)
        if done.returncode != 0:
            raise ClusterError(
                f"hdfs ec {' '.join(args)} failed (exit {done.returncode})", done.stderr[-3000:]
            )
    return policy


def _mkdirs(namenode: HdfsDaemon, folder: str) -> None:
    url = f"http://127.0.0.1:{namenode.http_port}/webhdfs/v1{folder}?op=MKDIRS&user.name=instastore"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=30):
            pass
    except (urllib.error.URLError, OSError) as exc:
        raise ClusterError(f"cannot make {folder} on the NameNode: {exc}") from exc


def format_namenode(namenode: HdfsDaemon, java: str, lib: Path, heap: str, cluster_id: str) -> None:
    """Format the NameNode's metadata folder, once (a formatted one is kept)."""
    if (namenode.path / "name" / "current" / "VERSION").exists():
        return
    argv = [
        *_java_args(namenode, java, lib, heap),
        NAMENODE_CLASS,
        "-format",
        "-clusterid",
        cluster_id,
        "-force",
        "-nonInteractive",
    ]
    log_path = namenode.logs[0]
    with open(log_path, "ab") as out:
        done = subprocess.run(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=FORMAT_TIMEOUT_S,
        )
    if done.returncode != 0:
        raise ClusterError(
            f"formatting the NameNode failed (exit {done.returncode})", tail(log_path)
        )


def _jmx(namenode: HdfsDaemon, bean: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{namenode.http_port}/jmx?qry=Hadoop:service=NameNode,name={bean}"
    with urllib.request.urlopen(url, timeout=2) as response:
        beans = json.load(response).get("beans", [])
    return beans[0] if beans else {}


def datanode_states(namenode: HdfsDaemon) -> dict[str, dict[str, Any]]:
    """127.0.0.1:<transfer port> -> what the NameNode knows of that DataNode: ``live``,
    ``adminState`` (In Service, Decommission In Progress, Decommissioned), and for one
    being decommissioned the blocks it still waits for (``underReplicatedBlocks``)."""
    info = _jmx(namenode, "NameNodeInfo")
    nodes: dict[str, dict[str, Any]] = {}
    for key, live in (("LiveNodes", True), ("DeadNodes", False)):
        for name, node in json.loads(info.get(key) or "{}").items():
            nodes[_transfer_address(name, node)] = {**node, "live": live}
    for name, node in json.loads(info.get("DecomNodes") or "{}").items():
        nodes.setdefault(_transfer_address(name, node), {}).update(node)
    return nodes


def _transfer_address(name: str, node: dict[str, Any]) -> str:
    address = node.get("xferaddr") or name
    return address.replace("localhost", "127.0.0.1")


def live_datanodes_and_safemode(namenode: HdfsDaemon) -> tuple[int, bool] | None:
    """(live DataNodes, safe mode on) from the NameNode's JMX, or None if it does not answer yet."""
    try:
        state = _jmx(namenode, "FSNamesystemState")
        info = _jmx(namenode, "NameNodeInfo")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if not state or not info:
        return None
    return int(state.get("NumLiveDataNodes", 0)), bool(info.get("Safemode"))
